//! `cargo xtask bench hub --replicas 1,2,3 [--threads 1,2]`: hubs on one PostgreSQL behind nginx.
//!
//! One PostgreSQL cluster (Debian's binaries, a temporary data directory, a private port, as the
//! `postgres` user when run as root), three `bastion serve` on it (`store = "env:…"`, the built-in
//! fs, git and shell children on a small root, no rate limits), and nginx with one listener per
//! replica count: the first N hubs, round robin, keep-alive connections to them. The load is
//! `bench hub`'s: 32 client threads, each on its own keep-alive connection to nginx, reading a
//! 1 KiB file with a static token; every response is checked. A row is one replica count at one
//! `--threads` value: calls per second, p50 and p99 latency. Every call authenticates against
//! PostgreSQL, so the hubs share that cost too. The row "direct" is one hub without nginx.
//!
//! Results: `.cache/bench-results/hub-replicas.md`; logs in `.cache/bench-results/logs/`.

use std::fmt::Write as _;
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::bench_hub::{Conn, HubArgs, MARKER, Proc, call_body, free_port, load, loadavg};
use crate::util::{cache_dir, output_of};

/// Runs the replica benchmark with the `bastion` binary at `bastion`.
pub fn run(args: &HubArgs, bastion: &Path) -> Result<()> {
    let max = args.replicas.iter().copied().max().unwrap_or(1).max(1);
    if args.replicas.contains(&0) {
        bail!("--replicas: counts start at 1");
    }
    let threads = if args.threads.is_empty() { vec![1] } else { args.threads.clone() };
    let nginx = which("nginx").context("nginx is needed as the load balancer (Debian package `nginx`)")?;
    let out = cache_dir().join("bench-results");
    let logs = out.join("logs");
    fs::create_dir_all(&logs)?;
    let work = cache_dir().join("bench-replicas");
    if work.exists() {
        fs::remove_dir_all(&work)?;
    }
    let root = work.join("root");
    fs::create_dir_all(&root)?;
    let mut text = format!("{MARKER}\n");
    while text.len() < 1024 {
        text.push_str("lorem ipsum dolor sit amet, consectetur adipiscing elit\n");
    }
    fs::write(root.join("small.txt"), &text[..1024])?;
    let root = root.canonicalize()?;
    let config = work.join("hub.toml");
    fs::write(&config, "store = \"env:BASTION_STORE_URL\"\n")?;

    let uptime_before = output_of(&mut Command::new("uptime")).unwrap_or_default();
    let started_at = output_of(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).unwrap_or_default();
    let pg = Postgres::start()?;
    let body = call_body("fs__read_file", "small.txt");
    let mut rows: Vec<Row> = vec![];
    // The first hub on the empty database creates the owner token and prints it; later hubs
    // (and later `--threads` runs on the same database) print none.
    let mut token: Option<String> = None;
    for &t in &threads {
        eprintln!("xtask: {max} hubs with --threads {t}");
        let mut hubs = vec![];
        for i in 0..max {
            let hub = Hub::start(bastion, &root, &config, &pg.url(), &work.join(format!("state-{t}-{i}")), t, &logs)?;
            if let Some(printed) = &hub.token {
                token.get_or_insert_with(|| printed.clone());
            }
            hubs.push(hub);
        }
        let Some(token) = token.clone() else { bail!("no hub printed a token") };
        let lb = Nginx::start(&nginx, &work.join(format!("nginx-{t}")), &hubs, &args.replicas)?;
        // One hub on its own, then each count through nginx.
        let targets = std::iter::once(("direct".to_owned(), hubs[0].port))
            .chain(args.replicas.iter().zip(&lb.ports).map(|(n, p)| (n.to_string(), *p)));
        for (label, port) in targets {
            eprintln!("xtask: {label} (--threads {t}): {} clients × {} calls", args.clients, args.load_calls);
            load(port, &token, &body, args.clients, 64)?;
            let t0 = Instant::now();
            let run = load(port, &token, &body, args.clients, args.load_calls)?;
            let seconds = t0.elapsed().as_secs_f64();
            let mut times = run.times;
            times.sort();
            let at = |q: f64| {
                times.get(((times.len() as f64 - 1.0) * q) as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
            };
            rows.push(Row {
                replicas: label,
                threads: t,
                calls: run.calls,
                errors: run.errors,
                first_error: run.first_error,
                per_second: (run.calls - run.errors) as f64 / seconds,
                p50_ms: at(0.5),
                p99_ms: at(0.99),
                load: loadavg(),
            });
        }
        drop(lb);
        drop(hubs);
    }
    drop(pg);
    let uptime_after = output_of(&mut Command::new("uptime")).unwrap_or_default();
    let mut md = String::new();
    let _ = writeln!(md, "## bastion serve replicas on PostgreSQL behind nginx ({started_at})\n");
    let _ = writeln!(
        md,
        "`cargo xtask bench hub --replicas {} --threads {}` with `{}`; {} clients × {} calls per row \
         (after 64 warm-up calls each), `fs__read_file` of 1 KiB, every call authenticated against \
         PostgreSQL.\n",
        join(&args.replicas),
        join(&threads),
        bastion.display(),
        args.clients,
        args.load_calls
    );
    let _ = writeln!(md, "uptime before: `{}`  \nuptime after: `{}`\n", uptime_before.trim(), uptime_after.trim());
    let _ = writeln!(md, "| hubs | --threads | calls/s | p50 ms | p99 ms | errors/calls | load average after |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for r in &rows {
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {:.2} | {:.2} | {}/{}{} | {} |",
            r.replicas,
            r.threads,
            r.per_second,
            r.p50_ms,
            r.p99_ms,
            r.errors,
            r.calls,
            r.first_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default(),
            r.load
        );
    }
    println!("{md}");
    fs::write(out.join("hub-replicas.md"), &md)?;
    eprintln!("xtask: results: {}", out.join("hub-replicas.md").display());
    Ok(())
}

struct Row {
    replicas: String,
    threads: u16,
    calls: u64,
    errors: u64,
    first_error: Option<String>,
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    load: String,
}

fn join<T: ToString>(v: &[T]) -> String {
    v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")
}

fn which(program: &str) -> Option<PathBuf> {
    output_of(Command::new("sh").arg("-c").arg(format!("command -v {program}"))).map(PathBuf::from)
}

/// A PostgreSQL cluster of its own, removed when dropped.
struct Postgres {
    bin: PathBuf,
    base: PathBuf,
    owner: Option<&'static str>,
    port: u16,
}

impl Postgres {
    fn start() -> Result<Postgres> {
        let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
            .context("PostgreSQL is not installed (Debian package `postgresql`)")?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("pg_ctl").exists())
            .collect();
        dirs.sort();
        let bin = dirs.pop().context("no /usr/lib/postgresql/N/bin/pg_ctl")?;
        let base = std::env::temp_dir().join(format!("bastion-bench-pg-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base)?;
        let root = rustix_is_root();
        let owner = root.then_some("postgres");
        if let Some(user) = owner {
            crate::util::run(Command::new("chown").arg(format!("{user}:{user}")).arg(&base))?;
        }
        let pg = Postgres { bin, base, owner, port: free_port()? };
        let data = pg.base.join("data");
        pg.run("initdb", &["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D", &data.to_string_lossy()])?;
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -c unix_socket_directories='{}' -c fsync=off -c max_connections=200",
            pg.port,
            pg.base.display()
        );
        let log = pg.base.join("log");
        pg.run(
            "pg_ctl",
            &["-w", "-s", "-D", &data.to_string_lossy(), "-l", &log.to_string_lossy(), "-o", &opts, "start"],
        )?;
        pg.run("createdb", &["-h", "127.0.0.1", "-p", &pg.port.to_string(), "-U", "postgres", "bastion"])?;
        Ok(pg)
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/bastion", self.port)
    }

    fn run(&self, program: &str, args: &[&str]) -> Result<()> {
        let mut cmd = match self.owner {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(self.bin.join(program));
                c
            }
            None => Command::new(self.bin.join(program)),
        };
        crate::util::run(cmd.args(args).stdout(Stdio::null()))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.base.join("data");
        let _ = self.run("pg_ctl", &["-w", "-s", "-D", &data.to_string_lossy(), "-m", "immediate", "stop"]);
        let _ = fs::remove_dir_all(&self.base);
    }
}

fn rustix_is_root() -> bool {
    output_of(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0")
}

/// One `bastion serve`.
struct Hub {
    _proc: Proc,
    port: u16,
    /// The token it printed (only the first hub on a database prints one).
    token: Option<String>,
}

impl Hub {
    fn start(
        bastion: &Path,
        root: &Path,
        config: &Path,
        store: &str,
        state: &Path,
        threads: u16,
        logs: &Path,
    ) -> Result<Hub> {
        let port = free_port()?;
        let mut cmd = Command::new(bastion);
        cmd.arg("serve").arg("--listen").arg(format!("127.0.0.1:{port}")).arg("--state-dir").arg(state);
        cmd.arg("--root").arg(root).arg("--config").arg(config).arg("--no-rate-limits");
        cmd.arg("--threads").arg(threads.to_string());
        cmd.env("BASTION_STORE_URL", store).env_remove("RUST_LOG");
        let shown = crate::util::display(&cmd);
        let log = logs.join(format!("hub-replica-{port}.log"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log)?)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {shown}"))?;
        let stdout = child.stdout.take().context("hub stdout")?;
        let proc = Proc { child, shown };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(t) = line.strip_prefix("token: ") {
                    let _ = tx.send(t.trim().to_owned());
                }
            }
        });
        wait_ready(port, "/readyz", &log)?;
        let token = rx.recv_timeout(Duration::from_millis(500)).ok();
        Ok(Hub { _proc: proc, port, token })
    }
}

fn wait_ready(port: u16, path: &str, log: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ready = TcpStream::connect(("127.0.0.1", port)).ok().is_some_and(|s| {
            let mut c = Conn::new(s);
            c.request(format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
                .is_ok_and(|r| r.status == 200)
        });
        if ready {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("port {port} was not ready within 60 s; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// nginx with one listener per replica count, each in front of the first N hubs.
struct Nginx {
    _proc: Proc,
    ports: Vec<u16>,
}

impl Nginx {
    fn start(nginx: &Path, base: &Path, hubs: &[Hub], counts: &[u32]) -> Result<Nginx> {
        for d in ["body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            fs::create_dir_all(base.join(d))?;
        }
        let b = base.display();
        let mut conf = format!(
            "daemon off;\nworker_processes 2;\npid {b}/nginx.pid;\nerror_log {b}/error.log warn;\n\
             events {{ worker_connections 1024; }}\nhttp {{\n    access_log off;\n\
             client_body_temp_path {b}/body;\n    proxy_temp_path {b}/proxy;\n    fastcgi_temp_path {b}/fastcgi;\n\
             uwsgi_temp_path {b}/uwsgi;\n    scgi_temp_path {b}/scgi;\n"
        );
        let mut ports = vec![];
        for &n in counts {
            let port = free_port()?;
            ports.push(port);
            let _ = writeln!(conf, "    upstream hubs{n} {{");
            for h in hubs.iter().take(n as usize) {
                let _ = writeln!(conf, "        server 127.0.0.1:{};", h.port);
            }
            let _ = writeln!(conf, "        keepalive 64;\n    }}");
            let _ = writeln!(
                conf,
                "    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n\
                 proxy_pass http://hubs{n};\n            proxy_http_version 1.1;\n\
                 proxy_set_header Host $http_host;\n            proxy_set_header Connection \"\";\n\
                 proxy_buffering off;\n        }}\n    }}"
            );
        }
        conf.push_str("}\n");
        let file = base.join("nginx.conf");
        fs::write(&file, conf)?;
        let mut cmd = Command::new(nginx);
        cmd.arg("-p").arg(base).arg("-c").arg(&file);
        let proc = Proc::spawn(cmd, &base.join("stderr.log"))?;
        for &p in &ports {
            wait_ready(p, "/healthz", &base.join("error.log"))?;
        }
        Ok(Nginx { _proc: proc, ports })
    }
}
