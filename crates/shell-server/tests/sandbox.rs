//! The trampoline on its own: a shell script (which no profile allows, so it stands for arbitrary
//! project code) tries to leave the sandbox. Each attempt must fail and leave no trace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use bastion_shell::sandbox::{SANDBOX_ARG, Spec};

fn spec(root: &Path, script: &str) -> Spec {
    Spec {
        program: PathBuf::from("/bin/sh"),
        argv0: "sh".into(),
        args: vec!["-c".into(), script.into()],
        cwd: root.to_path_buf(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        read_paths: vec![],
        write_paths: vec![root.to_path_buf()],
        readonly_paths: vec![],
        hidden_paths: vec![],
        tcp_connect: vec![],
        network: false,
        landlock: true,
        seccomp: true,
        namespaces: true,
        rlimits: Default::default(),
        parent_pid: std::process::id() as i32,
        probe: false,
        host_proc: false,
        local_sockets: false,
    }
}

fn run(spec: &Spec) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bastion-shell"))
        .arg(SANDBOX_ARG)
        .arg(serde_json::to_string(spec).unwrap())
        .output()
        .unwrap()
}

struct Dirs {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    outside: PathBuf,
}

fn dirs() -> Dirs {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), "SENTINEL-7f3a").unwrap();
    std::fs::write(root.join("inside.txt"), "inside").unwrap();
    Dirs { _tmp: tmp, root, outside }
}

#[test]
fn probe_reports_the_full_sandbox_here() {
    let d = dirs();
    let mut s = spec(&d.root, "");
    s.probe = true;
    let out = run(&s);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // The machines Bastion is tested on have Landlock ABI >= 6 and user namespaces.
    assert_eq!(status["landlock"], "full", "{status}");
    assert_eq!(status["seccomp"], true);
    assert_eq!(status["userns"], true);
    assert_eq!(status["no_new_privs"], true);
    assert_eq!(status["capabilities_dropped"], true);
    assert_eq!(status["readonly_mounts"], true, "{status}");
}

#[test]
fn files_outside_the_roots_are_out_of_reach() {
    let d = dirs();
    let secret = d.outside.join("secret");
    let marker = d.outside.join("marker");
    let script = format!(
        "cat inside.txt; cat {secret}; echo x > {marker}; cp inside.txt {outside}/copy; ln -s {secret} link; cat link; \
         ln {secret} hard; cat /etc/shadow; ls /root; chmod 600 {secret}; touch -d 2001-01-01 {secret}",
        secret = secret.display(),
        marker = marker.display(),
        outside = d.outside.display()
    );
    let out = run(&spec(&d.root, &script));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("inside"), "{stdout}");
    assert!(!stdout.contains("SENTINEL"), "{stdout}");
    assert!(!marker.exists());
    assert!(!d.outside.join("copy").exists());
    assert!(!d.root.join("hard").exists(), "a hard link to an outside file was created");
    // Landlock does not govern metadata; the read-only mounts do.
    let meta = std::fs::metadata(&secret).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_ne!(meta.permissions().mode() & 0o777, 0o600, "chmod outside the roots worked");
    assert!(meta.modified().unwrap() > std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
}

#[test]
fn network_namespaces_ptrace_and_privileges_are_denied() {
    let d = dirs();
    let script = "exec 3<>/dev/tcp/127.0.0.1/9 && echo TCP-OPEN; \
                  unshare -r true && echo UNSHARED; \
                  grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status; \
                  ps -e | wc -l";
    let mut s = spec(&d.root, script);
    s.program = PathBuf::from("/bin/bash");
    s.argv0 = "bash".into();
    let out = run(&s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("TCP-OPEN"), "{stdout}");
    assert!(!stdout.contains("UNSHARED"), "{stdout}");
    assert!(stdout.contains("CapEff:\t0000000000000000"), "{stdout}");
    assert!(stdout.contains("NoNewPrivs:\t1"), "{stdout}");
    // Only this shell, ps and wc (plus the header line) exist in the private /proc.
    let count: usize = stdout.lines().last().unwrap().trim().parse().unwrap();
    assert!(count <= 5, "{stdout}");
}

#[test]
fn killing_the_group_kills_detached_descendants() {
    let d = dirs();
    // A descendant that leaves the process group and session, then waits. Its command line is
    // built at run time, so only the detached sleep itself matches the tag.
    let digits = std::process::id();
    let tag = format!("sleep 300.{digits}");
    let script = format!("N={digits}; setsid sleep 300.$N & sleep 301");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bastion-shell"))
        .arg(SANDBOX_ARG)
        .arg(serde_json::to_string(&spec(&d.root, &script)).unwrap())
        .spawn()
        .unwrap();
    let alive =
        |tag: &str| Command::new("pgrep").args(["-f", tag]).output().map(|o| o.status.success()).unwrap_or(false);
    let started = Instant::now();
    while !alive(&tag) && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(alive(&tag), "the detached sleep never started");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    let _ = child.wait();
    let started = Instant::now();
    while alive(&tag) && started.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(&tag), "a detached descendant survived the kill");
}

#[test]
fn rlimits_apply() {
    let d = dirs();
    let mut s = spec(&d.root, "head -c 3000000 /dev/zero > big; cat /proc/self/limits");
    s.rlimits.file_size_mib = 1;
    s.rlimits.open_files = 64;
    let out = run(&s);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(std::fs::metadata(d.root.join("big")).unwrap().len() <= 1 << 20);
    assert!(stdout.lines().any(|l| l.starts_with("Max open files") && l.contains(" 64 ")), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("Max core file size") && l.contains(" 0 ")), "{stdout}");
}
