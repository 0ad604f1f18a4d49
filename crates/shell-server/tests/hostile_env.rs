//! The environment a sandboxed command sees through the real `bastion shell` binary: an allowlist,
//! a private scratch home removed afterwards, and no program found through a root on `PATH`.
//! The box and the checks after each case are in `common/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use bastion_testkit::write;

mod common;
use common::*;

const SECRET_ENV: [(&str, &str); 19] = [
    ("GITHUB_TOKEN", "ghp_SECRETVALUE-github"),
    ("MY_SECRET", "SECRETVALUE-my"),
    ("AWS_SECRET_ACCESS_KEY", "SECRETVALUE-aws"),
    ("OPENAI_API_KEY", "SECRETVALUE-openai"),
    ("SSH_AUTH_SOCK", "/tmp/SECRETVALUE-agent.sock"),
    ("LD_PRELOAD", "/nonexistent/SECRETVALUE.so"),
    ("LD_LIBRARY_PATH", "/nonexistent/SECRETVALUE"),
    ("NODE_OPTIONS", "--require /nonexistent/SECRETVALUE.js"),
    ("RIPGREP_CONFIG_PATH", "{root}/rgrc"),
    ("PYTEST_ADDOPTS", "-p SECRETVALUE"),
    ("PYTHONPATH", "{root}/evilpy"),
    ("PYTHONSTARTUP", "{root}/evilpy/sitecustomize.py"),
    ("GIT_DIR", "/nonexistent/SECRETVALUE-git"),
    ("LESSOPEN", "|/nonexistent/SECRETVALUE %s"),
    ("BASH_ENV", "{root}/pre.sh"),
    ("ENV", "{root}/pre.sh"),
    ("MAKEFLAGS", "--eval=$(info SECRETVALUE-makeflags)"),
    ("PAGER", "/nonexistent/SECRETVALUE-pager"),
    ("DBUS_SESSION_BUS_ADDRESS", "unix:path=/tmp/SECRETVALUE-bus"),
];

/// What a command may see: the fixed variables, the profile's set_env and pass_env, and what
/// make and the shell add themselves.
const ALLOWED_ENV: [&str; 35] = [
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "TERM",
    "CARGO_NET_OFFLINE",
    "CARGO_TERM_COLOR",
    "NO_COLOR",
    "GOFLAGS",
    "GOPROXY",
    "npm_config_offline",
    "npm_config_update_notifier",
    "PYTHONDONTWRITEBYTECODE",
    "CARGO_HOME",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOROOT",
    "GOPATH",
    "GOCACHE",
    "GOMODCACHE",
    "PYENV_ROOT",
    "PYENV_VERSION",
    "VIRTUAL_ENV",
    "JAVA_HOME",
    "MAKELEVEL",
    "MAKEFLAGS",
    "MFLAGS",
    "MAKE_TERMOUT",
    "MAKE_TERMERR",
    "MAKEOVERRIDES",
    "CMD",
    "ARGS",
    "PWD",
    "OLDPWD",
    "SHLVL",
];

#[test]
fn sandbox_environment_is_allowlisted() {
    let mut b = build_box();
    write(b.root.join("rgrc"), "--pre=./pre.sh\n");
    write(b.root.join("evilpy/sitecustomize.py"), format!("print('RAN-{}')\n", b.marker));
    let env: Vec<(String, String)> = SECRET_ENV.iter().map(|(k, v)| (k.to_string(), b.sub(v))).collect();
    let mut s = shell_with(&b.root, Some("build-test"), None, &env);
    let out = b.sandboxed(&mut s, "env", 20_000);
    let lines: BTreeMap<&str, &str> = stdout(&out).lines().filter_map(|l| l.split_once('=')).collect();
    let unexpected: Vec<&&str> = lines.keys().filter(|k| !ALLOWED_ENV.contains(k) && **k != "_").collect();
    assert!(unexpected.is_empty(), "unexpected variables: {unexpected:?}");
    for k in ["PATH", "HOME", "TMPDIR", "LANG", "TERM"] {
        assert!(lines.contains_key(k), "{k}");
    }
    assert!(!out.to_string().contains("SECRETVALUE"));
    // make puts its own flags and command-line variables there (`s -- CMD=env`), nothing else.
    assert_eq!(lines["MAKEFLAGS"], "s -- CMD=env");
    assert!(lines["LANG"] == "C.UTF-8" && lines["TERM"] == "dumb");
    assert!(!lines["HOME"].starts_with("/root") && lines["HOME"] == lines["TMPDIR"]);
    let base = b.base.display().to_string();
    assert!(
        lines["PATH"].split(':').all(|p| ["/usr/local/bin", "/usr/bin", "/bin"].contains(&p) || !p.starts_with(&base))
    );
    let text = b.probe(&mut s, &["env"]);
    assert!(!text.contains("SECRETVALUE") && !text.contains(&format!("RAN-{}", b.marker)));
    let (code, out) = b.run(&mut s, "rg", &["hello".into(), "in.txt".into()], None);
    assert!(code.is_none() && out["stdout"] == "hello\n", "{out}");
    drop(s);
    let mut s = shell_with(&b.root, Some("read-only"), None, &env);
    let (code, out) = b.run(&mut s, "rg", &["hello".into()], None);
    assert!(code.is_none() && !stdout(&out).contains(&format!("RAN-{}", b.marker)));
    let (_, out) = b.run(&mut s, "echo", &["$GITHUB_TOKEN".into(), "${MY_SECRET}".into()], None);
    assert_eq!(out["stdout"], "$GITHUB_TOKEN ${MY_SECRET}\n");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_scratch_home_is_private_and_removed() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let out = b.sandboxed(&mut s, "echo x > $HOME/f && echo HOME=$HOME && ls $TMPDIR/.. ; echo rc=$?", 20_000);
    let home = PathBuf::from(stdout(&out).lines().find_map(|l| l.strip_prefix("HOME=")).unwrap());
    assert!(!stdout(&out).contains("rc=0"), "a command can list the other commands' scratch directories");
    assert!(!home.exists(), "the scratch directory outlived its command");
    let parent = home.parent().unwrap().to_path_buf();
    assert!(parent.is_dir() && std::fs::metadata(&parent).unwrap().permissions().mode() & 0o7777 == 0o700);
    s.close();
    assert!(!parent.exists(), "the server's scratch directory outlived the server");
    b.assert_contained(false);
}

#[test]
fn sandbox_program_on_a_root_in_path_is_refused() {
    let mut b = build_box();
    // A root on the server's PATH must never provide a "trusted" program.
    for name in ["go", "pytest"] {
        let fake = b.root.join("bin").join(name);
        write(&fake, format!("#!/bin/sh\necho RAN-{}\n", b.marker));
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", b.root.join("bin").display());
    let mut s = shell_with(&b.root, Some("build-test"), None, &[("PATH".into(), path)]);
    for (program, args) in [("go", "version"), ("pytest", "-q")] {
        let (code, out) = b.run(&mut s, program, &[args.to_string()], None);
        assert_eq!(code.as_deref(), Some("command_not_allowed"), "{program} {out}");
    }
    drop(s);
    b.assert_contained(false);
}
