//! `cargo xtask provision` (and the first step of `cargo xtask ci`): installs what the tests need
//! on a fresh Debian machine that has only Rust, Python 3 and git.
//!
//! This is the one list of the tests' system prerequisites. Debian packages are installed with
//! `apt-get` when xtask runs as root or with passwordless `sudo`; the npm and PyPI packages are
//! pinned and installed by `interop` into `.cache/`. What cannot be installed is reported: under CI
//! (`CI` set) that fails the run here, with the list, rather than as skipped tests later; locally
//! it is a warning and the tests that need the program skip (see `tests/python/prereq.py`).

use std::process::Command;

use anyhow::{Result, bail};

use crate::util::{cargo, in_ci, output_of, run as sh, succeeds};

/// A program the tests run, and the Debian package that provides it.
struct Need {
    /// Looked up on `PATH`.
    program: &'static str,
    package: &'static str,
    /// Who needs it, for the message when it is missing.
    why: &'static str,
}

/// Every program the test suites start, with its package.
const NEEDS: &[Need] = &[
    Need { program: "git", package: "git", why: "git fixtures" },
    Need { program: "make", package: "make", why: "the shell's build-test profile" },
    Need { program: "bash", package: "bash", why: "shell tests" },
    Need { program: "pgrep", package: "procps", why: "surviving-process checks" },
    Need { program: "jq", package: "jq", why: "read-only shell profile" },
    Need { program: "ss", package: "iproute2", why: "the host server's inspection programs (ss, ip)" },
    Need { program: "ps", package: "procps", why: "the host server's inspection programs (ps, free, uptime, vmstat)" },
    Need { program: "rg", package: "ripgrep", why: "read-only shell profile" },
    Need { program: "file", package: "file", why: "read-only shell profile" },
    Need { program: "tree", package: "tree", why: "read-only shell profile" },
    Need { program: "node", package: "nodejs", why: "the hub's third-party upstream (server-everything)" },
    Need { program: "npm", package: "npm", why: "pinned npm packages (tests, conformance)" },
    Need { program: "chromium", package: "chromium", why: "the OAuth consent page in a real browser" },
    // The caddy package's systemd unit does not run without systemd, so nothing takes 80/443.
    Need { program: "caddy", package: "caddy", why: "the TLS-terminating front of the OAuth tests" },
    // nginx is the other tested front (with openssl for its test certificate).
    Need { program: "nginx", package: "nginx", why: "the nginx front recipe's tests" },
    Need { program: "openssl", package: "openssl", why: "the nginx test's certificate" },
    // The install and system steps: unit checks, a Debian root, and booting it under systemd.
    Need {
        program: "systemd-analyze",
        package: "systemd",
        why: "systemd-analyze verify/security on the shipped units",
    },
    Need { program: "mmdebstrap", package: "mmdebstrap", why: "the Debian root the system and ops steps boot" },
    Need { program: "systemd-nspawn", package: "systemd-container", why: "boots that root under systemd" },
    Need { program: "lintian", package: "lintian", why: "the package step's check of the .deb" },
    Need { program: "fc-list", package: "fonts-liberation", why: "a font for headless Chromium to lay out pages" },
    // The server binaries are found where Debian puts them (not on PATH); the tests start their
    // own cluster in a temporary directory, as the `postgres` user when run as root.
    Need { program: "initdb", package: "postgresql", why: "the PostgreSQL store's tests (a real server)" },
    // Compose 1.29 (Python): `config` checks deploy/docker-compose.yml against the Compose
    // specification's schema without a Docker daemon.
    Need { program: "docker-compose", package: "docker-compose", why: "the deploy step's check of the compose file" },
];

/// Installs what is missing (when it may) and checks the result; see the module comment.
pub fn run() -> Result<()> {
    rustup_components();
    nextest()?;
    let mut packages: Vec<&str> = Vec::new();
    let mut missing: Vec<&Need> = Vec::new();
    for need in NEEDS {
        if !present(need.program) {
            packages.push(need.package);
            missing.push(need);
        }
    }
    // Debian splits venv support out of python3; a venv that cannot be made is a missing package.
    if !venv_works() {
        packages.push("python3-venv");
    }
    // The shell hostile tests check that a root-readable TLS key stays out of the sandbox; Debian's
    // ssl-cert package creates one (the snakeoil key).
    if !std::path::Path::new("/etc/ssl/private/ssl-cert-snakeoil.key").exists() {
        packages.push("ssl-cert");
    }
    if !packages.is_empty() {
        match apt_access() {
            Some(sudo) => apt_install(sudo, &packages)?,
            None => {
                let list = packages.join(" ");
                let whom: Vec<String> = missing.iter().map(|n| format!("{} ({})", n.program, n.why)).collect();
                let message = format!(
                    "missing Debian packages: {list}; xtask can install them only as root or with \
                     passwordless sudo (needed by: {})",
                    whom.join(", ")
                );
                if in_ci() {
                    bail!("{message}");
                }
                eprintln!("xtask: warning: {message}; the tests that need them will skip");
                return Ok(());
            }
        }
    }
    let still: Vec<&str> = NEEDS.iter().filter(|n| !present(n.program)).map(|n| n.program).collect();
    if !still.is_empty() {
        bail!("still missing after apt-get install: {}", still.join(", "));
    }
    chromium_starts()
}

/// rustfmt and clippy, which the `fmt` and `clippy` steps run (when rustup manages the toolchain).
fn rustup_components() {
    let Some(installed) = output_of(Command::new("rustup").args(["component", "list", "--installed"])) else {
        eprintln!("xtask: rustup not found; assuming cargo fmt and cargo clippy are available");
        return;
    };
    for component in ["rustfmt", "clippy"] {
        if !installed.lines().any(|l| l.starts_with(component)) {
            let _ = sh(Command::new("rustup").args(["component", "add", component]));
        }
    }
}

fn present(program: &str) -> bool {
    if program == "fc-list" {
        // Any font listed is what Chromium needs.
        return output_of(&mut Command::new("fc-list")).is_some_and(|out| !out.is_empty());
    }
    if program == "initdb" {
        return postgres_bin_present() || on_path(program);
    }
    on_path(program)
}

/// Whether Debian's PostgreSQL server binaries are installed (`/usr/lib/postgresql/N/bin`), as
/// the auth store's tests look for them.
fn postgres_bin_present() -> bool {
    std::fs::read_dir("/usr/lib/postgresql").is_ok_and(|dirs| {
        dirs.filter_map(|d| d.ok())
            .any(|d| d.path().join("bin/initdb").exists() && d.path().join("bin/pg_ctl").exists())
    })
}

/// Whether an executable `program` is on `PATH` (not every program here has `--version`).
fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// cargo-nextest, which the `test` step prefers. Under CI it is installed when missing; locally
/// the step falls back to `cargo test`.
fn nextest() -> Result<()> {
    if succeeds(cargo().args(["nextest", "--version"])) || !in_ci() {
        return Ok(());
    }
    sh(cargo().args(["install", "cargo-nextest", "--locked"]))
}

fn venv_works() -> bool {
    let Ok(dir) = tempfile_dir() else { return false };
    let ok = succeeds(Command::new("python3").args(["-m", "venv"]).arg(dir.join("v")));
    let _ = std::fs::remove_dir_all(&dir);
    ok
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("xtask-probe-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `Some(false)` as root, `Some(true)` with passwordless sudo, `None` when apt-get is out of reach.
fn apt_access() -> Option<bool> {
    if !succeeds(Command::new("apt-get").arg("--version")) {
        return None;
    }
    if output_of(Command::new("id").arg("-u")).is_some_and(|uid| uid == "0") {
        return Some(false);
    }
    succeeds(Command::new("sudo").args(["-n", "true"])).then_some(true)
}

fn apt_install(sudo: bool, packages: &[&str]) -> Result<()> {
    eprintln!("xtask: installing Debian packages: {}", packages.join(" "));
    let apt = |args: &[&str]| {
        let mut cmd = if sudo {
            let mut c = Command::new("sudo");
            c.args(["-n", "env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
            c
        } else {
            let mut c = Command::new("apt-get");
            c.env("DEBIAN_FRONTEND", "noninteractive");
            c
        };
        cmd.args(args);
        cmd
    };
    sh(&mut apt(&["update", "-qq"]))?;
    sh(apt(&["install", "-y", "-qq", "--no-install-recommends"]).args(packages))
}

/// Fails here, with Chromium's own message, rather than in the middle of the browser test.
fn chromium_starts() -> Result<()> {
    let dir = tempfile_dir()?;
    let out = Command::new("timeout")
        .args(["60", "chromium", "--headless=new", "--no-sandbox", "--disable-gpu"])
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .args(["--dump-dom", "data:text/html,<p>ok</p>"])
        .stdin(std::process::Stdio::null())
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    match out {
        Ok(o) if String::from_utf8_lossy(&o.stdout).contains("<p>ok</p>") => Ok(()),
        Ok(o) => {
            let message = format!("chromium does not start headless:\n{}", String::from_utf8_lossy(&o.stderr));
            if in_ci() {
                bail!("{message}");
            }
            eprintln!("xtask: warning: {message}");
            Ok(())
        }
        Err(e) => bail!("could not run chromium: {e}"),
    }
}
