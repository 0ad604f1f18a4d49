//! Paths outside the roots through the real `bastion shell` binary: `..`, absolute paths,
//! symlinks and /proc, deny globs, recursive readers and the host's TLS keys; and the read-only
//! profile cannot write even inside the root. The box and the checks after each case are in
//! `common/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::PathBuf;
use std::time::Duration;

use bastion_testkit::{missing_prerequisite, write};
use serde_json::{Value, json};

mod common;
use common::*;

const PATH_CASES: [(&str, &[&str], Option<&str>, &str); 70] = [
    ("cat", &["/etc/passwd"], None, "path_outside_root"),
    ("cat", &["/etc/shadow"], None, "path_outside_root"),
    ("cat", &["../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["{outside}/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["{base}/proj-evil/data.txt"], None, "path_outside_root"),
    ("cat", &["../proj-evil/data.txt"], None, "path_outside_root"),
    ("cat", &["{root}/../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["sub/../../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["../../outside/sentinel.txt"], Some("sub"), "path_outside_root"),
    ("cat", &["link_sentinel"], None, "path_outside_root"),
    ("cat", &["rel_link_sentinel"], None, "path_outside_root"),
    ("cat", &["link_out/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["link_out/../proj/in.txt"], None, "path_outside_root"),
    ("cat", &["link_slash/etc/passwd"], None, "path_outside_root"),
    ("cat", &["link_environ"], None, "path_outside_root"),
    ("cat", &["/proc/self/environ"], None, "path_outside_root"),
    ("cat", &["/proc/1/environ"], None, "path_outside_root"),
    ("cat", &["/proc/self/root{outside}/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["/proc/self/cwd/../outside/sentinel.txt"], None, "path_outside_root"),
    ("cat", &["/dev/zero"], None, "path_outside_root"),
    ("head", &["-c", "10", "/dev/urandom"], None, "path_outside_root"),
    ("ls", &["{outside}"], None, "path_outside_root"),
    ("ls", &["link_out"], None, "path_outside_root"),
    ("ls", &["-L", "link_out"], None, "path_outside_root"),
    ("ls", &["/"], None, "path_outside_root"),
    ("ls", &[".."], None, "path_outside_root"),
    ("find", &["..", "-name", "sentinel.txt"], None, "path_outside_root"),
    ("find", &["/", "-maxdepth", "0"], None, "path_outside_root"),
    ("find", &[".", "-newer", "{outside}/sentinel.txt"], None, "path_outside_root"),
    ("find", &[".", "-samefile", "link_sentinel"], None, "path_outside_root"),
    ("grep", &["-r", "SENTINEL", "{outside}"], None, "path_outside_root"),
    ("grep", &["-f", "{outside}/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("grep", &["--file=../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("grep", &["--exclude-from=../outside/sentinel.txt", "x", "in.txt"], None, "path_outside_root"),
    ("rg", &["-f", "../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("rg", &["--ignore-file=../outside/sentinel.txt", "x"], None, "path_outside_root"),
    ("rg", &["x", "/etc"], None, "path_outside_root"),
    ("diff", &["in.txt", "../outside/sentinel.txt"], None, "path_outside_root"),
    ("diff", &["--from-file=../outside/sentinel.txt", "in.txt"], None, "path_outside_root"),
    ("diff", &["-r", ".", "{outside}"], None, "path_outside_root"),
    ("cmp", &["in.txt", "link_sentinel"], None, "path_outside_root"),
    ("realpath", &["--relative-to=/etc", "in.txt"], None, "path_outside_root"),
    ("date", &["-r", "{outside}/sentinel.txt"], None, "path_outside_root"),
    ("stat", &["{outside}/sentinel.txt"], None, "path_outside_root"),
    ("du", &["-s", ".."], None, "path_outside_root"),
    ("tree", &["{outside}"], None, "path_outside_root"),
    ("file", &["link_sentinel"], None, "path_outside_root"),
    ("sha256sum", &["/etc/passwd"], None, "path_outside_root"),
    ("wc", &["-c", "/proc/self/environ"], None, "path_outside_root"),
    ("ls", &[], Some("/etc"), "path_outside_root"),
    ("ls", &[], Some("/"), "path_outside_root"),
    ("ls", &[], Some(".."), "path_outside_root"),
    ("ls", &[], Some("../outside"), "path_outside_root"),
    ("ls", &[], Some("{outside}"), "path_outside_root"),
    ("ls", &[], Some("{base}/proj-evil"), "path_outside_root"),
    ("ls", &[], Some("link_out"), "path_outside_root"),
    ("ls", &[], Some("link_slash"), "path_outside_root"),
    ("ls", &[], Some("/proc/self"), "path_outside_root"),
    ("ls", &[], Some("/proc/self/cwd"), "path_outside_root"),
    ("ls", &[], Some("sub/../.."), "path_outside_root"),
    ("cat", &[".env"], None, "denied_by_glob"),
    ("cat", &["id_rsa"], None, "denied_by_glob"),
    ("cat", &["./sub/../.env"], None, "denied_by_glob"),
    ("cat", &["{root}/.env"], None, "denied_by_glob"),
    ("cat", &["link_env"], None, "denied_by_glob"),
    ("head", &["-n1", "in.txt", ".env"], None, "denied_by_glob"),
    ("grep", &["TOKEN", ".env"], None, "denied_by_glob"),
    ("sha256sum", &["id_rsa"], None, "denied_by_glob"),
    ("diff", &["in.txt", ".env"], None, "denied_by_glob"),
    ("sort", &["id_rsa"], None, "denied_by_glob"),
];

// ---------------------------------------------------------------------------------------------
// c. Paths
// ---------------------------------------------------------------------------------------------

#[test]
fn paths_outside_the_root_are_refused() {
    each(
        &PATH_CASES,
        |(p, a, c, _)| format!("{p} {} cwd={c:?}", a.join(" ")),
        |&(program, args, cwd, want)| {
            if !installed(program) {
                // A program the profile allows but the machine lacks is refused as
                // command_not_allowed before its operands are looked at, hiding what this checks.
                missing_prerequisite(&format!("`{program}` is not installed"));
                return;
            }
            let mut b = build_box();
            let argv = b.sub_all(args);
            let cwd = cwd.map(|c| b.sub(c));
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, program, &argv, cwd.as_deref());
            assert_eq!(code.as_deref(), Some(want), "{program} {args:?} {cwd:?}: {out}");
            let mut a = json!({"program": program, "args": argv});
            if let Some(c) = &cwd {
                a["cwd"] = json!(c);
            }
            let (code, out) = b.call(&mut s, "start_process", a);
            assert_eq!(code.as_deref(), Some(want), "start_process {program} {args:?} {cwd:?}: {out}");
            drop(s);
            for text in &b.outputs {
                assert!(!text.contains("inside-root-dotenv-secret") && !text.contains("inside-root-key-secret"));
            }
            b.assert_contained(false);
        },
    );
}

#[test]
fn literal_tilde_and_variables_stay_inside() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    for arg in ["~/.bashrc", "~root/.bashrc", "$HOME/.bashrc", "${HOME}/.profile", "*", "*.txt", "{a,b}.txt"] {
        let (code, out) = b.run(&mut s, "cat", &[arg.to_string()], None);
        assert!(code.is_none() && out["exit_code"] == 1 && stderr(&out).contains("No such file"), "{arg} {out}");
        assert_eq!(out["stdout"], "");
    }
    drop(s);
    b.assert_contained(false);
}

#[test]
fn fifo_cannot_hang_the_server() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let t0 = std::time::Instant::now();
    let (code, _) = b.run_with(&mut s, "cat", &["fifo".into()], json!({"timeout_ms": 800}));
    assert!(code.as_deref() == Some("timeout") && t0.elapsed() < Duration::from_secs(5), "{code:?}");
    let (code, out) = b.run(&mut s, "echo", &["still".into(), "here".into()], None);
    assert!(code.is_none() && out["stdout"] == "still here\n");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn recursive_readers_do_not_reveal_denied_files() {
    let cases: [(&str, &[&str]); 6] = [
        ("grep", &["-r", "secret", "."]),
        ("grep", &["-R", "secret"]),
        ("rg", &["secret"]),
        ("rg", &["--hidden", "secret"]),
        ("rg", &["-uuu", "secret"]),
        ("diff", &["-r", "sub", "."]),
    ];
    each(
        &cases,
        |(p, a)| format!("{p} {}", a.join(" ")),
        |&(program, args)| {
            let mut b = build_box();
            write(b.root.join("sub/.env"), "NESTED=inside-root-dotenv-secret\n");
            let mut s = shell(&b.root, "read-only");
            let (code, out) = b.run(&mut s, program, &b.sub_all(args), None);
            assert!(
                code.is_none()
                    || ["denied_by_glob", "argument_not_allowed"].contains(&code.as_deref().unwrap_or_default()),
                "{code:?} {out}"
            );
            let text = out.to_string();
            assert!(!text.contains("inside-root-dotenv-secret"), "{out}");
            assert!(!text.contains("inside-root-key-secret"), "{out}");
            drop(s);
            b.assert_contained(false);
        },
    );
}

fn readable_private_key() -> Option<PathBuf> {
    let rd = std::fs::read_dir("/etc/ssl/private").ok()?;
    rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).find(|p| std::fs::read(p).is_ok())
}

#[test]
fn system_private_keys_stay_unreadable() {
    let Some(key) = readable_private_key() else {
        missing_prerequisite(
            "no readable key in /etc/ssl/private on this host (Debian package `ssl-cert`, read as root)",
        );
        return;
    };
    let mut b = build_box();
    let first_line: String = String::from_utf8_lossy(&std::fs::read(&key).unwrap())
        .lines()
        .nth(1)
        .unwrap_or_default()
        .chars()
        .take(20)
        .collect();
    symlink(key.parent().unwrap(), b.root.join("sub/certs")).unwrap();
    let mut s = shell(&b.root, "build-test");
    let (code, out) =
        b.run(&mut s, "make", &["-s".into(), "sh".into(), format!("CMD=cat {} || true", key.display())], None);
    assert!(code.is_none());
    assert!(!stdout(&out).contains(&first_line), "project code read a TLS private key of the host");
    let (code, out) = b.run(
        &mut s,
        "make",
        &["-s".into(), "sh".into(), "CMD=cat /etc/ssl/certs/ca-certificates.crt | head -c 30".into()],
        None,
    );
    assert!(code.is_none() && stdout(&out).contains("BEGIN CERTIFICATE"), "the CA roots stay readable: {out}");
    drop(s);
    let mut s = shell(&b.root, "read-only");
    let (_, out) = b.run(&mut s, "grep", &["-R".into(), "-h".into(), "".into(), "sub".into()], None);
    assert!(!out.to_string().contains(&first_line), "grep -R followed a symlink to a TLS private key");
    drop(s);
    b.assert_contained(false);
}

// ---------------------------------------------------------------------------------------------
// The read-only profile cannot write, even inside the root
// ---------------------------------------------------------------------------------------------

#[test]
fn read_only_profile_cannot_write() {
    let mut b = build_box();
    let mut s = shell(&b.root, "read-only");
    let (code, out) = b.run(&mut s, "cat", &["in.txt".into()], None);
    assert!(code.is_none() && out["stdout"] == "hello\nworld\n");
    for args in [&["-o", "out.txt", "a.txt"][..], &["--output=out.txt", "a.txt"], &["-ro", "a.txt", "a.txt"]] {
        assert_eq!(b.run(&mut s, "sort", &b.sub_all(args), None).0.as_deref(), Some("argument_not_allowed"));
    }
    assert_eq!(
        b.run(&mut s, "make", &["sh".into(), "CMD=touch x".into()], None).0.as_deref(),
        Some("command_not_allowed")
    );
    assert_eq!(b.run(&mut s, "cargo", &["build".into()], None).0.as_deref(), Some("command_not_allowed"));
    drop(s);
    // Even a writing program added by the operator's config cannot write: the roots are
    // read-only in the read-only profile's sandbox.
    let config = b.cfg.join("ro.toml");
    write(
        &config,
        "[shell]\nprofile = \"read-only\"\n[shell.programs.touch]\noperands = \"paths\"\n[shell.programs.cp]\noperands = \"paths\"\n",
    );
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let denied = |out: &Value| {
        out["exit_code"] != 0
            && (stderr(out).contains("Permission denied") || stderr(out).contains("Read-only file system"))
    };
    let (code, out) = b.run(&mut s, "touch", &["new.txt".into()], None);
    assert!(code.is_none() && denied(&out), "{out}");
    let (code, out) = b.run(&mut s, "cp", &["in.txt".into(), "copy.txt".into()], None);
    assert!(code.is_none() && denied(&out), "{out}");
    let target = format!("{}/x", b.outside.display());
    let (code, _) = b.run(&mut s, "cp", &["in.txt".into(), target], None);
    assert_eq!(code.as_deref(), Some("path_outside_root"));
    drop(s);
    b.assert_contained(true);
    b.assert_contained(false);
}
