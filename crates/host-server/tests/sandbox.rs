//! The host programs' sandbox, through the real trampoline with the spec the server builds
//! (`Runner::spec`): the host's processes are visible, nothing can be written (marker files stay
//! absent), and nothing reaches the network (a listener sees no connection).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::ErrorKind;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use bastion_host::run::Runner;
use bastion_policy::commands::OpsConfig;
use bastion_policy::{Policy, PolicyConfig};
use bastion_shell::sandbox::SANDBOX_ARG;

fn exe() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bastion-host"))
}

fn runner() -> Runner {
    let status = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(bastion_shell::sandbox::probe(&exe(), true));
    let policy = Policy::without_roots(PolicyConfig::default()).unwrap();
    Runner::new(exe(), OpsConfig::default().command_rules().unwrap(), status, &policy, false)
}

fn run_script(runner: &Runner, script: &str) -> Output {
    let spec = runner.spec(&PathBuf::from("/bin/bash"), "bash", vec!["-c".into(), script.into()]);
    Command::new(exe()).arg(SANDBOX_ARG).arg(serde_json::to_string(&spec).unwrap()).output().unwrap()
}

#[test]
fn the_host_sandbox_sees_processes_writes_nothing_and_has_no_network() {
    let runner = runner();
    let status = &runner.status;
    assert!(status.landlock_active() && status.seccomp, "this test needs Landlock and seccomp: {status:?}");

    let dir = bastion_testkit::temp_dir();
    // Writable by everyone, so only the sandbox can stop the write.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let markers: Vec<PathBuf> = vec![
        dir.path().join("marker"),
        PathBuf::from(format!("/tmp/bastion-host-marker-{}", std::process::id())),
        PathBuf::from(format!("/dev/shm/bastion-host-marker-{}", std::process::id())),
    ];
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let me = std::process::id();

    let mut script = String::new();
    for m in &markers {
        script.push_str(&format!("if echo x > {0}; then echo WROTE {0}; fi; ", m.display()));
        script.push_str(&format!("if touch {0}.t; then echo TOUCHED {0}; fi; ", m.display()));
    }
    script.push_str(&format!("if mkdir {}/d; then echo MKDIR; fi; ", dir.path().display()));
    script.push_str(&format!("if echo hi > /dev/tcp/127.0.0.1/{port}; then echo CONNECTED; fi; "));
    script.push_str(&format!("if test -r /proc/{me}/status; then echo SEES_HOST_PROCESS; fi; "));
    script.push_str("if test -r /proc/1/comm; then echo SEES_PID1; fi; ");
    let out = run_script(&runner, &script);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("SEES_HOST_PROCESS") && stdout.contains("SEES_PID1"), "{stdout}\n{stderr}");
    for word in ["WROTE", "TOUCHED", "MKDIR", "CONNECTED"] {
        assert!(!stdout.contains(word), "{word}: {stdout}\n{stderr}");
    }
    for m in &markers {
        assert!(!m.exists(), "{} was written", m.display());
        assert!(!m.with_extension("t").exists());
    }
    std::thread::sleep(Duration::from_millis(200));
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the listener saw a connection: {other:?}"),
    }
}
