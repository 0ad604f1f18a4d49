//! Project code run by `make` in the build-test profile trying to leave the kernel sandbox through
//! the real `bastion shell` binary: files, network, UNIX sockets, signals, /proc, namespaces,
//! capabilities, process escapes and rlimits. The box and the checks after each case are in
//! `common/mod.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bastion_testkit::write;
use serde_json::json;

mod common;
use common::*;

// ---------------------------------------------------------------------------------------------
// e. Project code in the build-test profile against the sandbox
// ---------------------------------------------------------------------------------------------

#[test]
fn sandbox_files_outside_cannot_be_read() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for path in [
        "{outside}/sentinel.txt",
        "{base}/proj-evil/data.txt",
        "{base}/loot.txt",
        "/etc/shadow",
        "/root/.bashrc",
        "/root/.profile",
        "/proc/self/root{outside}/sentinel.txt",
        "link_sentinel",
        "link_out/sentinel.txt",
    ] {
        let text = b.probe(&mut s, &["read", path]);
        assert!(text.contains("DENIED read") && !text.contains("READ:"), "{path} {text}");
    }
    for d in ["/root", "/home", "/tmp", "{outside}", "{base}", "/var", "/etc", "link_slash/tmp"] {
        let text = b.probe(&mut s, &["listdir", d]);
        assert!(text.contains("DENIED listdir"), "{d} {text}");
    }
    let out = b.sandboxed(&mut s, "cat {outside}/sentinel.txt; ls /root; head -c 100 /root/.bashrc; echo done", 20_000);
    assert!(
        (stderr(&out).contains("Permission denied") || stderr(&out).contains("Read-only file system"))
            && out["stdout"] == "done\n",
        "{out}"
    );
    // A symlink made inside the root does not help, nor does a hardlink.
    let out = b.sandboxed(
        &mut s,
        "ln -s {outside}/sentinel.txt l1 && cat l1; ln {outside}/sentinel.txt l2; cat l2; echo done",
        20_000,
    );
    assert!(out["stdout"] == "done\n" && !b.root.join("l2").exists(), "{out}");
    // Inside the root: readable (the probe's positive control).
    let text = b.probe(&mut s, &["read", "in.txt"]);
    assert!(text.contains("READ:hello"));
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_writes_outside_are_denied() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for path in [
        "{outside}/{m}",
        "{base}/{m}",
        "/tmp/{m}",
        "/root/{m}",
        "/{m}",
        "/dev/shm/{m}",
        "/var/tmp/{m}",
        "link_out/{m}",
        "link_slash/tmp/{m}",
    ] {
        let text = b.probe(&mut s, &["write", path]);
        assert!(text.contains("DENIED write") && !text.contains("WROTE"), "{path} {text}");
    }
    b.sandboxed(
        &mut s,
        "touch {outside}/{m}; mkdir {outside}/{m}d; cp in.txt /tmp/{m}; mv a.txt {outside}/{m}; \
         ln -s / {outside}/{m}l; echo x > {base}/{m}; echo x >> {outside}/sentinel.txt; \
         rm -f {outside}/sentinel.txt; true",
        20_000,
    );
    assert!(b.root.join("a.txt").exists(), "a root file was moved out");
    // Inside the root: writable (the positive control).
    let text = b.probe(&mut s, &["write", "made-inside.txt"]);
    assert!(text.contains("WROTE") && std::fs::read_to_string(b.root.join("made-inside.txt")).unwrap() == "x");
    std::fs::remove_file(b.root.join("made-inside.txt")).unwrap();
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_metadata_outside_cannot_change() {
    let mut b = build_box();
    let secret = b.outside.join("sentinel.txt");
    let (before_file, before_dir) = (std::fs::metadata(&secret).unwrap(), std::fs::metadata(&b.outside).unwrap());
    let mut s = shell(&b.root, "build-test");
    b.sandboxed(
        &mut s,
        "chmod 4777 {outside}/sentinel.txt; chmod 777 {outside}; touch -d 2001-01-01 {outside}/sentinel.txt; \
         python3 -c 'import os; os.setxattr(\"{outside}/sentinel.txt\", \"user.bastion\", b\"1\")'; true",
        20_000,
    );
    drop(s);
    let (after_file, after_dir) = (std::fs::metadata(&secret).unwrap(), std::fs::metadata(&b.outside).unwrap());
    let changed = (
        after_file.permissions().mode() & 0o7777 != before_file.permissions().mode() & 0o7777,
        after_dir.permissions().mode() & 0o7777 != before_dir.permissions().mode() & 0o7777,
        (after_file.mtime(), after_file.mtime_nsec()) != (before_file.mtime(), before_file.mtime_nsec()),
        !xattrs(&secret).is_empty(),
    );
    // Put things back before asserting, so a failure here leaves no setuid file behind.
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(before_file.permissions().mode() & 0o7777))
        .unwrap();
    std::fs::set_permissions(&b.outside, std::fs::Permissions::from_mode(before_dir.permissions().mode() & 0o7777))
        .unwrap();
    let f = std::fs::File::options().write(true).open(&secret).unwrap();
    f.set_times(
        std::fs::FileTimes::new()
            .set_accessed(before_file.accessed().unwrap())
            .set_modified(before_file.modified().unwrap()),
    )
    .unwrap();
    for name in xattrs(&secret) {
        let _ = rustix::fs::removexattr(&secret, name.as_str());
    }
    assert!(!changed.0, "chmod of a file outside the root worked");
    assert!(!changed.1, "chmod of a directory outside the root worked");
    assert!(!changed.2, "utimes of a file outside the root worked");
    assert!(!changed.3, "setxattr on a file outside the root worked");
    b.assert_contained(false);
}

#[test]
fn sandbox_git_metadata_stays_read_only() {
    let mut b = build_box();
    let git = b.root.join(".git");
    write(git.join("config"), "[core]\n\tbare = false\n");
    write(git.join("HEAD"), "ref: refs/heads/main\n");
    std::fs::create_dir_all(git.join("hooks")).unwrap();
    let before = state(&git, &[]);
    let mut s = shell(&b.root, "build-test");
    b.sandboxed(
        &mut s,
        "printf '%s\\n' '#!/bin/sh' 'touch /tmp/{m}' > .git/hooks/pre-commit; chmod +x .git/hooks/pre-commit; \
         printf '\\tfsmonitor = touch /tmp/{m}\\n' >> .git/config; echo x > .git/HEAD; rm -rf .git/hooks; true",
        20_000,
    );
    b.sandboxed(
        &mut s,
        "mv .git .git-old && mkdir -p .git/hooks && echo evil > .git/hooks/post-checkout; true",
        20_000,
    );
    drop(s);
    let after = if git.is_dir() { state(&git, &[]) } else { BTreeMap::new() };
    assert!(after == before, "project code changed .git: {:?}", after.keys().collect::<Vec<_>>());
    assert!(!b.root.join(".git-old").exists());
    b.assert_contained(false);
}

#[test]
fn node_never_reads_code_from_stdin() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let stdin = b.sub("require('fs').writeFileSync('{m}', '')");
    let (code, _) = b.run_with(&mut s, "node", &[], json!({"stdin": stdin}));
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    let (code, p) =
        b.call(&mut s, "start_process", json!({"program": "node", "args": ["-e", "setTimeout(() => {}, 5000)"]}));
    assert!(code.is_none(), "{p}");
    let (code, _) = b.call(&mut s, "write_process_input", json!({"id": p["id"], "data": "process.exit(3)\n"}));
    assert_eq!(code.as_deref(), Some("argument_not_allowed"));
    b.call(&mut s, "kill_process", json!({"id": p["id"]}));
    drop(s);
    b.assert_contained(false);
}

fn assert_would_block<T>(r: std::io::Result<T>, what: &str) {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: something reached it from the sandbox"),
    }
}

#[test]
fn sandbox_network_is_closed() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    let mut b = build_box();
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    tcp.set_nonblocking(true).unwrap();
    let tcp_port = tcp.local_addr().unwrap().port().to_string();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let udp_port = udp.local_addr().unwrap().port().to_string();
    let unix_path = b.cfg.join("agent.sock");
    let unix = UnixListener::bind(&unix_path).unwrap();
    unix.set_nonblocking(true).unwrap();
    let inside_path = b.root.join("inside.sock");
    let inside = UnixListener::bind(&inside_path).unwrap();
    inside.set_nonblocking(true).unwrap();
    let abstract_name = format!("bastion-test-{}", token());
    let abstract_sock =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(abstract_name.as_bytes()).unwrap()).unwrap();
    abstract_sock.set_nonblocking(true).unwrap();
    let (unix_s, inside_s) = (unix_path.display().to_string(), inside_path.display().to_string());
    let mut s = shell(&b.root, "build-test");
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &tcp_port]);
    assert!(text.contains("DENIED tcp") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["tcp", "localhost", &tcp_port]);
    assert!(!text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["udp", "127.0.0.1", &udp_port]);
    assert!(text.contains("DENIED udp") && !text.contains("SENT"), "{text}");
    let text = b.probe(&mut s, &["unix", &unix_s]);
    assert!(text.contains("DENIED unix") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["unix", &inside_s]);
    assert!(text.contains("DENIED unix") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["abstract", &abstract_name]);
    assert!(text.contains("DENIED abstract") && !text.contains("CONNECTED"), "{text}");
    // Pipes between processes still work (make -j, test runners).
    let text = b.probe(&mut s, &["socketpair"]);
    assert!(text.contains("pair-ok"), "{text}");
    drop(s);
    assert_would_block(tcp.accept(), "tcp");
    assert_would_block(unix.accept(), "unix");
    assert_would_block(inside.accept(), "unix in the root");
    assert_would_block(abstract_sock.accept(), "abstract");
    assert_would_block(udp.recv_from(&mut [0u8; 100]), "udp");
    b.assert_contained(false);
}

#[test]
fn sandbox_tcp_only_to_the_configured_port() {
    let mut b = build_box();
    let allowed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    other.set_nonblocking(true).unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_nonblocking(true).unwrap();
    let allowed_port = allowed.local_addr().unwrap().port().to_string();
    let config = b.cfg.join("tcp.toml");
    write(&config, format!("[shell]\nprofile = \"build-test\"\ntcp_connect = [{allowed_port}]\n"));
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &allowed_port]);
    assert!(text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["tcp", "127.0.0.1", &other.local_addr().unwrap().port().to_string()]);
    assert!(text.contains("DENIED tcp") && !text.contains("CONNECTED"), "{text}");
    let text = b.probe(&mut s, &["udp", "127.0.0.1", &udp.local_addr().unwrap().port().to_string()]);
    assert!(!text.contains("SENT"), "{text}");
    let text = b.probe(&mut s, &["abstract", "bastion-none"]);
    assert!(text.contains("DENIED abstract"), "{text}");
    drop(s);
    assert_would_block(other.accept(), "tcp to another port");
    assert_would_block(udp.recv_from(&mut [0u8; 100]), "udp");
    b.assert_contained(false);
}

#[test]
fn sandbox_cannot_signal_or_inspect_the_server() {
    let mut b = build_box();
    let secret = format!("SERVER-ENV-SECRET-{}", token());
    let mut helper = Command::new("sleep").arg(unique_sleep()).spawn().unwrap();
    let env = [("BASTION_TEST_SECRET".to_string(), secret.clone()), ("MY_SECRET".to_string(), secret.clone())];
    let mut s = shell_with(&b.root, Some("build-test"), None, &env);
    let server = s.pid();
    for pid in [server, helper.id(), 1] {
        let text = b.probe(&mut s, &["kill", &pid.to_string(), "0"]);
        assert!(!text.contains("SIGNALLED") || pid == 1, "{pid} {text}");
    }
    let out = b.sandboxed(
        &mut s,
        &format!(
            "kill -0 {server} && echo SIGNALLED; kill -9 {server}; kill -9 {}; kill -STOP {server}; echo done",
            helper.id()
        ),
        20_000,
    );
    assert!(!stdout(&out).contains("SIGNALLED") && stdout(&out).contains("done"), "{out}");
    for path in [
        format!("/proc/{server}/environ"),
        format!("/proc/{server}/cmdline"),
        format!("/proc/{}/environ", helper.id()),
        "/proc/1/environ".to_string(),
    ] {
        let text = b.probe(&mut s, &["read", &path]);
        assert!(!text.contains(&secret), "{path}");
    }
    let out = b.sandboxed(&mut s, "cat /proc/*/environ | tr '\\0' '\\n'; ls /proc; ps -e 2>&1 || true", 20_000);
    assert!(!out.to_string().contains(&secret));
    assert!(!stdout(&out).split_whitespace().any(|w| w == server.to_string()), "{out}");
    // Only the command's own processes are visible (its pid namespace).
    let out = b.sandboxed(&mut s, "ls -d /proc/[0-9]* | wc -l", 20_000);
    assert!(stdout(&out).trim().parse::<u32>().unwrap() <= 6, "{out}");
    // kill -9 -1 kills everything the command may signal: only its own namespace.
    let (code, _) = b.run_with(
        &mut s,
        "make",
        &["-s".into(), "sh".into(), "CMD=kill -9 -1; sleep 1".into()],
        json!({"timeout_ms": 10_000}),
    );
    assert!(code.is_none());
    assert_eq!(b.run(&mut s, "echo", &["alive".into()], None).1["stdout"], "alive\n");
    assert!(helper.try_wait().unwrap().is_none(), "a process outside the sandbox was killed");
    assert!(Path::new(&format!("/proc/{server}")).exists());
    drop(s);
    let _ = helper.kill();
    let _ = helper.wait();
    b.assert_contained(false);
}

#[test]
fn sandbox_namespaces_and_privileges() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    for kind in ["user", "net", "mount", "pid"] {
        let text = b.probe(&mut s, &["unshare", kind]);
        assert!(text.contains("DENIED unshare") && !text.contains("UNSHARED"), "{text}");
    }
    let out = b.sandboxed(
        &mut s,
        "unshare -r id && echo ESCAPED; unshare -rm sh -c 'mount -t tmpfs none sub && echo MOUNTED'; \
         mount -t tmpfs none sub && echo MOUNTED; chroot / true && echo CHROOTED; echo done",
        20_000,
    );
    for word in ["ESCAPED", "MOUNTED", "CHROOTED"] {
        assert!(!stdout(&out).contains(word), "{out}");
    }
    assert!(stdout(&out).ends_with("done\n"));
    let out = b.sandboxed(
        &mut s,
        "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):' /proc/self/status",
        20_000,
    );
    let fields: BTreeMap<&str, &str> = stdout(&out).lines().filter_map(|l| l.split_once(":\t")).collect();
    for cap in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(fields.get(cap), Some(&"0000000000000000"), "{fields:?}");
    }
    assert!(fields.get("NoNewPrivs") == Some(&"1") && fields.get("Seccomp") == Some(&"2"), "{fields:?}");
    // A setuid-root copy of id gains nothing (no-new-privileges, no capabilities).
    let out = b.sandboxed(
        &mut s,
        "cp /usr/bin/id ./suid-id && chmod u+s ./suid-id && ./suid-id -u; grep CapEff /proc/self/status; rm -f suid-id",
        20_000,
    );
    assert!(stdout(&out).contains("CapEff:\t0000000000000000"), "{out}");
    // Descriptors of the server do not reach the command (only 0, 1, 2 and the probe's own).
    let text = b.probe(&mut s, &["fds"]);
    let list = text.split("FDS: ").nth(1).unwrap().lines().next().unwrap();
    let fds: Vec<u32> = serde_json::from_str(list).unwrap();
    assert!(fds.len() >= 3 && fds[..3] == [0, 1, 2] && fds.len() <= 4, "{fds:?}");
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_timeout_escapes_are_killed() {
    let mut b = build_box();
    let marker = unique_sleep();
    let mut s = shell(&b.root, "build-test");
    let t0 = std::time::Instant::now();
    let cmd = format!(
        "CMD=setsid sleep {marker} & nohup sleep {marker} >/dev/null 2>&1 & (trap '' HUP TERM; sleep {marker}) & echo started; sleep {marker}"
    );
    let (code, out) = b.run_with(&mut s, "make", &["-s".into(), "sh".into(), cmd], json!({"timeout_ms": 1000}));
    assert!(code.as_deref() == Some("timeout") && out["stdout"] == "started\n", "{code:?} {out}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert_eq!(
        wait_gone(&marker, Duration::from_secs(2)),
        Vec::<u32>::new(),
        "a detached process survived the timeout"
    );
    // Same with start_process + kill_process.
    let (code, p) = b.call(
        &mut s,
        "start_process",
        json!({"program": "make", "args": ["-s", "sh", format!("CMD=setsid sleep {marker} & sleep {marker}")]}),
    );
    assert!(code.is_none(), "{p}");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pgrep(&marker, Some("sleep")).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(pgrep(&marker, Some("sleep")).len(), 2);
    b.call(&mut s, "kill_process", json!({"id": p["id"]}));
    assert_eq!(wait_gone(&marker, Duration::from_secs(2)), Vec::<u32>::new());
    drop(s);
    b.assert_contained(false);
}

#[test]
fn sandbox_rlimits() {
    let mut b = build_box();
    let mut s = shell(&b.root, "build-test");
    let out = b.sandboxed(&mut s, "cat /proc/self/limits", 20_000);
    drop(s);
    let field = |l: &str, a: usize, z: usize| l.get(a..z.min(l.len())).unwrap_or_default().trim().to_string();
    let limits: BTreeMap<String, (String, String)> =
        stdout(&out).lines().skip(1).map(|l| (field(l, 0, 26), (field(l, 26, 47), field(l, 47, 68)))).collect();
    let pair = |a: &str| (a.to_string(), a.to_string());
    assert_eq!(limits["Max open files"], pair("4096"));
    assert_eq!(limits["Max core file size"], pair("0"));
    assert_eq!(limits["Max cpu time"], pair("900"));
    assert_eq!(limits["Max file size"], pair(&(2048u64 << 20).to_string()));
    assert_eq!(limits["Max address space"], pair(&(8192u64 << 20).to_string()));

    let config = b.cfg.join("limits.toml");
    write(
        &config,
        "[shell]\nprofile = \"build-test\"\n[shell.rlimits]\nfile_size_mib = 1\ncpu_seconds = 1\nopen_files = 64\n",
    );
    let mut s = shell_with(&b.root, None, Some(&config), &[]);
    let out = b.sandboxed(&mut s, "head -c 3000000 /dev/zero > big.bin; echo exit=$?", 20_000);
    assert!(std::fs::metadata(b.root.join("big.bin")).unwrap().len() <= 1 << 20);
    assert!(!stdout(&out).contains("exit=0"), "{out}");
    let text = b.probe(&mut s, &["bigwrite", "big2.bin", &(3u64 << 20).to_string()]);
    assert!(!text.contains("BIGWROTE") && std::fs::metadata(b.root.join("big2.bin")).unwrap().len() <= 1 << 20);
    let t0 = std::time::Instant::now();
    let out = b.sandboxed(&mut s, "python3 -c 'while True: pass'; echo exit=$?", 15_000);
    assert!(t0.elapsed() < Duration::from_secs(8) && !stdout(&out).contains("exit=0"), "{out}");
    let out = b.sandboxed(
        &mut s,
        "python3 -c 'import os; [os.open(\"/dev/null\", 0) for _ in range(100)]' 2>&1 | tail -1",
        20_000,
    );
    assert!(stdout(&out).contains("Too many open files"), "{out}");
    drop(s);
    std::fs::remove_file(b.root.join("big.bin")).unwrap();
    std::fs::remove_file(b.root.join("big2.bin")).unwrap();
    b.assert_contained(false);
}
