//! Per-program flag tricks (security-notes §4.4) through the real `bastion shell` binary: exec,
//! write and read-elsewhere flags in every spelling (abbreviated, bundled, attached, after
//! operands), and the build tools' own. The box and the checks after each case are in
//! `common/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bastion_testkit::missing_prerequisite;

mod common;
use common::*;

const FLAG_TRICKS: [(&str, &[&str]); 118] = [
    ("find", &[".", "-exec", "./touch", "{}", ";"]),
    ("find", &[".", "-exec", "./touch", "{}", "+"]),
    ("find", &[".", "-name", "*.txt", "-execdir", "./touch", ";"]),
    ("find", &[".", "-ok", "./touch", ";"]),
    ("find", &[".", "-okdir", "./touch", ";"]),
    ("find", &[".", "-delete"]),
    ("find", &[".", "-name", "a.txt", "-delete"]),
    ("find", &[".", "-fprint", "{m}"]),
    ("find", &[".", "-fprint0", "{m}"]),
    ("find", &[".", "-fprintf", "{m}", "%p"]),
    ("find", &[".", "-fls", "{m}"]),
    ("find", &[".", "(", "-name", "x", "-o", "-exec", "./touch", ";", ")"]),
    ("find", &[".", "!", "-delete"]),
    ("find", &["-L", "."]),
    ("find", &["-H", "."]),
    ("find", &[".", "-follow"]),
    ("find", &[".", "-files0-from", "names0.lst"]),
    ("find", &["-D", "exec", "."]),
    ("find", &[".", "-newerXY", "x"]),
    ("rg", &["--pre", "./pre.sh", "hello"]),
    ("rg", &["--pre=./pre.sh", "hello"]),
    ("rg", &["--pr", "./pre.sh", "hello"]),
    ("rg", &["--pre-glob", "*", "hello"]),
    ("rg", &["--pre-g=*", "hello"]),
    ("rg", &["hello", "in.txt", "--pre", "./pre.sh"]),
    ("rg", &["hello", "--", "in.txt", "--pre=./pre.sh"]),
    ("rg", &["-z", "hello"]),
    ("rg", &["-iz", "hello"]),
    ("rg", &["--search-zip", "hello"]),
    ("rg", &["--search-z", "hello"]),
    ("rg", &["--hostname-bin=./pre.sh", "hello"]),
    ("rg", &["--hostname-bin", "./pre.sh", "hello"]),
    ("rg", &["-L", "hello"]),
    ("rg", &["--follow", "hello"]),
    ("rg", &["--config-path=names.lst", "hello"]),
    ("sort", &["--compress-program=./x", "a.txt"]),
    ("sort", &["--compress-prog=./x", "a.txt"]),
    ("sort", &["--compress", "./x", "a.txt"]),
    ("sort", &["a.txt", "--compress-program=./x"]),
    ("sort", &["--out={m}", "a.txt"]),
    ("sort", &["--output={m}", "a.txt"]),
    ("sort", &["--output", "{m}", "a.txt"]),
    ("sort", &["-o", "{m}", "a.txt"]),
    ("sort", &["-o{m}", "a.txt"]),
    ("sort", &["-ro", "{m}", "a.txt"]),
    ("sort", &["-ro{m}", "a.txt"]),
    ("sort", &["-nro", "{m}", "a.txt"]),
    ("sort", &["a.txt", "-o", "{m}"]),
    ("sort", &["-T", "{outside}", "a.txt"]),
    ("sort", &["--temporary-directory={outside}", "a.txt"]),
    ("sort", &["--files0-from=names0.lst"]),
    ("sort", &["--random-source={outside}/sentinel.txt", "-R", "a.txt"]),
    ("wc", &["--files0-from=names0.lst"]),
    ("wc", &["--files0-from", "{outside}/sentinel.txt"]),
    ("wc", &["--files0=names0.lst"]),
    ("wc", &["--files=names0.lst"]),
    ("du", &["--files0-from=names0.lst"]),
    ("du", &["--files0=names0.lst"]),
    ("du", &["-X", "{outside}/sentinel.txt", "."]),
    ("du", &["--exclude-from={outside}/sentinel.txt", "."]),
    ("du", &["-L", "."]),
    ("du", &["--dereference", "."]),
    ("tree", &["-o", "{m}"]),
    ("tree", &["-ao", "{m}"]),
    ("tree", &["-o{m}"]),
    ("tree", &["-R"]),
    ("tree", &["-H", ".", "-R"]),
    ("tree", &["-l"]),
    ("tree", &["--fromfile", "names.lst"]),
    ("file", &["-C"]),
    ("file", &["-C", "-m", "{m}"]),
    ("file", &["-m", "{outside}/sentinel.txt", "in.txt"]),
    ("file", &["--magic-file", "prog.jq", "in.txt"]),
    ("file", &["-f", "names.lst"]),
    ("file", &["--files-from=names.lst"]),
    ("file", &["-z", "in.txt"]),
    ("file", &["-Z", "in.txt"]),
    ("file", &["-bz", "in.txt"]),
    ("jq", &["--rawfile", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["--slurpfile", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["--raw", "s", "{outside}/sentinel.txt", "-n", "$s"]),
    ("jq", &["-L", "{outside}", "-n", "1"]),
    ("jq", &["--library-path={outside}", "-n", "1"]),
    ("jq", &["-f", "prog.jq", "data.json"]),
    ("jq", &["--from-file", "prog.jq", "data.json"]),
    ("jq", &["-nf", "prog.jq"]),
    ("jq", &["-n", "$ARGS", "--args", "{outside}/sentinel.txt"]),
    ("jq", &["-n", "$ARGS", "--jsonargs", "1"]),
    ("jq", &[".", "--", "--rawfile"]),
    ("jq", &["--", "-L{outside}", "."]),
    ("tail", &["-f", "in.txt"]),
    ("tail", &["-F", "in.txt"]),
    ("tail", &["--follow", "in.txt"]),
    ("tail", &["--fol", "in.txt"]),
    ("tail", &["--follow=name", "in.txt"]),
    ("tail", &["--retry", "in.txt"]),
    ("tail", &["--pid=1", "in.txt"]),
    ("tail", &["-s", "1", "in.txt"]),
    ("date", &["-s", "2020-01-01"]),
    ("date", &["--set=2020-01-01"]),
    ("date", &["--se", "2020-01-01"]),
    ("date", &["-f", "{outside}/sentinel.txt"]),
    ("date", &["--file=names.lst"]),
    ("date", &["-us", "2020-01-01"]),
    ("uniq", &["a.txt", "{m}"]),
    ("uniq", &["-c", "a.txt", "{m}"]),
    ("grep", &["-D", "read", "x", "in.txt"]),
    ("grep", &["--devices=read", "x", "in.txt"]),
    ("grep", &["-d", "read", "x", "."]),
    ("grep", &["--directories=recurse", "x", "."]),
    ("sha256sum", &["-c", "sums.txt"]),
    ("md5sum", &["--check", "sums.txt"]),
    ("sha256sum", &["--ch", "sums.txt"]),
    ("ls", &["--dired"]),
    ("cat", &["--help-me"]),
    ("cat", &["-z", "in.txt"]),
    ("head", &["--bytes"]),
    ("sort", &["--compress-program"]),
];

const BUILD_TOOL_FLAG_TRICKS: [(&str, &[&str], &str); 34] = [
    ("make", &["--eval=x:;touch {outside}/{m}"], "argument_not_allowed"),
    ("make", &["--eval", "x:"], "argument_not_allowed"),
    ("make", &["--ev=x:"], "argument_not_allowed"),
    ("make", &["-E", "x:"], "argument_not_allowed"),
    ("make", &["-sE", "x:"], "argument_not_allowed"),
    ("make", &["-f", "{outside}/Makefile"], "path_outside_root"),
    ("make", &["-f../outside/Makefile"], "path_outside_root"),
    ("make", &["--file={outside}/Makefile"], "path_outside_root"),
    ("make", &["--makefile", "../outside/Makefile"], "path_outside_root"),
    ("make", &["-C", "{outside}"], "path_outside_root"),
    ("make", &["-C{outside}"], "path_outside_root"),
    ("make", &["--directory=../outside"], "path_outside_root"),
    ("make", &["-C", "link_out"], "path_outside_root"),
    ("make", &["-I", "/etc"], "path_outside_root"),
    ("make", &["-f", "/proc/self/fd/0"], "path_outside_root"),
    ("python", &["-c", "open('{outside}/{m}','w')"], "argument_not_allowed"),
    ("python", &["-m", "http.server"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "-p", "evil"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "--basetemp={outside}"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "-c", "{outside}/sentinel.txt"], "argument_not_allowed"),
    ("python", &["-m", "pytest", "--rootdir={outside}"], "path_outside_root"),
    ("cargo", &["--config", "build.rustc-wrapper='./x'", "build"], "argument_not_allowed"),
    ("cargo", &["build", "--config=x"], "argument_not_allowed"),
    ("cargo", &["-Zunstable-options", "build"], "argument_not_allowed"),
    ("cargo", &["install", "ripgrep"], "argument_not_allowed"),
    ("cargo", &["build", "--manifest-path", "{outside}/Cargo.toml"], "path_outside_root"),
    ("cargo", &["build", "--target-dir={outside}"], "path_outside_root"),
    ("cargo", &["-C", "{outside}", "build"], "argument_not_allowed"),
    ("npm", &["exec", "touch"], "argument_not_allowed"),
    ("npm", &["install", "-g", "x"], "argument_not_allowed"),
    ("npm", &["test", "--script-shell=./x"], "argument_not_allowed"),
    ("npm", &["test", "--node-options=--require=./x"], "argument_not_allowed"),
    ("npm", &["test", "--prefix={outside}"], "path_outside_root"),
    ("npx", &["-g", "x"], "argument_not_allowed"),
];

// ---------------------------------------------------------------------------------------------
// b. Per-program flag tricks (security-notes §4.4)
// ---------------------------------------------------------------------------------------------

#[test]
fn flag_tricks_are_refused() {
    each(
        &FLAG_TRICKS,
        |(p, a)| format!("{p} {}", a.join(" ")),
        |&(program, args)| {
            if !installed(program) {
                // An allowed program the machine lacks is refused before its flags are looked at.
                missing_prerequisite(&format!("`{program}` is not installed"));
                return;
            }
            let mut b = build_box();
            let argv = b.sub_all(args);
            if args.last() == Some(&"--pre=./pre.sh") && args.contains(&"--") {
                // After `--`, "--pre=./pre.sh" is a file name (a path the program looks for), never a flag.
                let mut s = shell(&b.root, "read-only");
                let (code, out) = b.run(&mut s, program, &argv, None);
                assert!(
                    code.is_none()
                        && out["exit_code"] != 0
                        && out["stderr"].as_str().unwrap().contains("--pre=./pre.sh"),
                    "{out}"
                );
            } else {
                for profile in ["read-only", "build-test"] {
                    // The build-test profile includes the same rules.
                    let mut s = shell(&b.root, profile);
                    let (code, out) = b.run(&mut s, program, &argv, None);
                    assert_eq!(code.as_deref(), Some("argument_not_allowed"), "[{profile}] {program} {args:?}: {out}");
                }
            }
            b.assert_contained(true);
            b.assert_contained(false);
        },
    );
}

#[test]
fn nul_bytes_in_arguments_are_refused() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let (code, _) = b.run(&mut s, "cat", &["in.txt\u{0}../outside/sentinel.txt".into()], None);
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    let (code, _) = b.run(&mut s, "echo", &["a\u{0}b".into()], None);
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    drop(s);
    b.assert_contained(false);
}

#[test]
fn build_tool_flag_tricks() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for (program, args, want) in BUILD_TOOL_FLAG_TRICKS {
        let argv = b.sub_all(args);
        let (code, out) = b.run(&mut s, program, &argv, None);
        assert_eq!(code.as_deref(), Some(want), "{program} {args:?}: {out}");
    }
    drop(s);
    b.assert_contained(true);
    b.assert_contained(false);
}
