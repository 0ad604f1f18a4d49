//! A real PostgreSQL for the tests: Debian's server binaries, one cluster per test binary in a
//! temporary directory, listening only on a Unix socket there (no port taken), each test in a
//! database of its own. Without PostgreSQL installed the tests skip, except under CI (`CI`
//! set), where that fails them: CI installs it (`cargo xtask provision`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

struct Cluster {
    /// The socket directory (also the data directory's parent).
    socket: PathBuf,
    /// Runs a client program as the cluster's owner.
    owner: Option<&'static str>,
    bin: PathBuf,
    /// Stops the cluster once this process is gone; never waited for, it outlives the tests.
    _watcher: std::process::Child,
}

/// The server binaries: `/usr/lib/postgresql/N/bin`, newest first.
fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists() && p.join("pg_ctl").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn command(owner: Option<&str>, program: &Path) -> Command {
    match owner {
        // initdb and the server refuse to run as root.
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", user, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}

fn run(mut c: Command) {
    let out = c.output().unwrap_or_else(|e| panic!("{c:?}: {e}"));
    assert!(
        out.status.success(),
        "{c:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start() -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        assert!(std::env::var_os("CI").is_none(), "PostgreSQL is not installed (cargo xtask provision installs it)");
        eprintln!("PostgreSQL is not installed: skipping the PostgreSQL store tests");
        return None;
    };
    let owner = rustix::process::geteuid().is_root().then_some("postgres");
    let base = tempfile::Builder::new().prefix("bastion-pg-").tempdir().expect("temp dir").keep();
    let data = base.join("data");
    if owner.is_some() {
        run({
            let mut c = Command::new("chown");
            c.arg("postgres:postgres").arg(&base);
            c
        });
    }
    let opts = format!("-c listen_addresses='' -c unix_socket_directories='{}' -c fsync=off", base.display());
    let watcher = init_and_start(owner, &bin, &base, &data, &opts);
    Some(Cluster { socket: base, owner, bin, _watcher: watcher })
}

/// `initdb` in `data`, the server started with `opts`, and a watcher: the cluster outlives no
/// test binary, the watcher stops it and removes `base` when this process is gone, however it
/// ended.
fn init_and_start(
    owner: Option<&'static str>,
    bin: &std::path::Path,
    base: &std::path::Path,
    data: &std::path::Path,
    opts: &str,
) -> std::process::Child {
    let mut c = command(owner, &bin.join("initdb"));
    c.args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"]).arg(data);
    run(c);
    let mut c = command(owner, &bin.join("pg_ctl"));
    c.args(["-w", "-s", "-D"]).arg(data).args(["-l"]).arg(base.join("log")).args(["-o", opts, "start"]);
    run(c);
    let stop = format!(
        "while [ -e /proc/{pid} ]; do sleep 1; done; {as_owner}{ctl} -D '{data}' -m immediate stop >/dev/null 2>&1; rm -rf '{base}'",
        pid = std::process::id(),
        as_owner = owner.map(|u| format!("runuser -u {u} -- ")).unwrap_or_default(),
        ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        base = base.display()
    );
    let mut w = Command::new("/bin/sh");
    w.args(["-c", &stop]).stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null());
    w.spawn().expect("watcher")
}

/// The URL of a new, empty database on the tests' cluster; `None` (the test skips) when
/// PostgreSQL is not installed outside CI.
pub(crate) fn fresh_database() -> Option<String> {
    static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let cluster = CLUSTER.get_or_init(start).as_ref()?;
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut c = command(cluster.owner, &cluster.bin.join("createdb"));
    c.arg("-h").arg(&cluster.socket).args(["-U", "postgres", &name]);
    run(c);
    Some(format!("host={} user=postgres dbname={name}", cluster.socket.display()))
}

/// A second cluster for the TLS tests: TCP on a private port of 127.0.0.1 (PostgreSQL speaks
/// TLS only over TCP), `ssl=on` with a certificate for `localhost` made by
/// `openssl` with a CA of its own. Its port and the CA's certificate; `None` when PostgreSQL or
/// openssl is missing outside CI.
pub(crate) fn tls_cluster() -> Option<(u16, PathBuf)> {
    static TLS: OnceLock<Option<(u16, PathBuf, Cluster)>> = OnceLock::new();
    let found = TLS.get_or_init(|| {
        let bin = bin_dir()?;
        let openssl = std::env::var_os("PATH")
            .and_then(|p| std::env::split_paths(&p).map(|d| d.join("openssl")).find(|p| p.is_file()));
        let Some(openssl) = openssl else {
            assert!(std::env::var_os("CI").is_none(), "openssl is not installed (cargo xtask provision installs it)");
            eprintln!("openssl is not installed: skipping the PostgreSQL TLS tests");
            return None;
        };
        let owner = rustix::process::geteuid().is_root().then_some("postgres");
        let base = tempfile::Builder::new().prefix("bastion-pgtls-").tempdir().expect("temp dir").keep();
        let data = base.join("data");
        // A CA of its own and a server certificate it signs (a self-signed server certificate
        // is a CA used as an end entity, which WebPKI rightly refuses).
        let mut c = Command::new(&openssl);
        c.args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=bastion test CA"])
            .arg("-keyout")
            .arg(base.join("ca.key"))
            .arg("-out")
            .arg(base.join("ca.crt"));
        run(c);
        let mut c = Command::new(&openssl);
        c.args(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout"])
            .arg(base.join("server.key"))
            .arg("-out")
            .arg(base.join("server.csr"));
        run(c);
        std::fs::write(base.join("ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
            .expect("extensions file");
        let mut c = Command::new(&openssl);
        c.args(["x509", "-req", "-days", "2", "-CAcreateserial", "-in"])
            .arg(base.join("server.csr"))
            .arg("-CA")
            .arg(base.join("ca.crt"))
            .arg("-CAkey")
            .arg(base.join("ca.key"))
            .arg("-extfile")
            .arg(base.join("ext"))
            .arg("-out")
            .arg(base.join("server.crt"));
        run(c);
        if owner.is_some() {
            let mut c = Command::new("chown");
            c.args(["-R", "postgres:postgres"]).arg(&base);
            run(c);
        }
        let mut c = Command::new("chmod");
        c.arg("0600").arg(base.join("server.key"));
        run(c);
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("port").port();
        let opts = format!(
            "-c listen_addresses='127.0.0.1' -c port={port} -c unix_socket_directories='{b}' -c fsync=off -c ssl=on \
             -c ssl_cert_file='{b}/server.crt' -c ssl_key_file='{b}/server.key'",
            b = base.display()
        );
        let watcher = init_and_start(owner, &bin, &base, &data, &opts);
        let cert = base.join("ca.crt");
        let cluster = Cluster { socket: base, owner, bin, _watcher: watcher };
        let mut c = command(cluster.owner, &cluster.bin.join("createdb"));
        c.arg("-h").arg(&cluster.socket).args(["-p", &port.to_string(), "-U", "postgres", "tls"]);
        run(c);
        Some((port, cert, cluster))
    });
    found.as_ref().map(|(port, cert, _)| (*port, cert.clone()))
}
