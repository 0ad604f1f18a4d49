//! `cargo xtask interop`: the end-to-end tests in `tests/python`, driven by the official MCP
//! Python SDK from a virtual environment that xtask manages in `.cache/venv`.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::ci;
use crate::util::{cache_dir, display, output_of, repo_root, run as sh};

/// Whether `interop` must build the binaries itself first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Run `cargo build --workspace --bins` before the tests.
    Yes,
    /// The caller (`cargo xtask ci`) has just built them.
    AlreadyDone,
}

/// File beside the venv's interpreter recording what the venv was built from.
const STAMP_FILE: &str = ".bastion-requirements.sha256";

/// Builds the binaries if asked, makes sure the venv is current, then runs pytest on
/// `tests/python` with `pytest_args` appended.
pub fn run(pytest_args: &[String], build: Build) -> Result<()> {
    if build == Build::Yes {
        ci::build_bins()?;
    }
    let python = ensure_venv()?;
    let server_everything = ensure_test_servers()?;
    let axe = ensure_npm_package(AXE_CORE, "axe.min.js")?;
    let root = repo_root();
    let bin_dir = target_dir().join("debug");
    let mut cmd = Command::new(&python);
    cmd.current_dir(&root).args(["-m", "pytest"]);
    if !names_test_path(&root, pytest_args) {
        cmd.arg("tests/python");
    }
    cmd.args(["-q", "--timeout=300", "-o", "cache_dir=.cache/pytest"])
        .args(pytest_args)
        .env("BASTION_BIN_DIR", &bin_dir)
        .env("BASTION_SERVER_EVERYTHING", &server_everything)
        .env("BASTION_AXE_CORE", &axe);
    let shown = display(&cmd);
    eprintln!("xtask: $ BASTION_BIN_DIR={} {shown}", bin_dir.display());
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(5) => bail!(
            "pytest collected no tests (exit code 5) from tests/python: an interop run must run \
             at least one test — check the test files and any -k/-m filter passed to interop"
        ),
        _ => bail!("interop tests failed: `{shown}` exited with {status}"),
    }
}

/// The third-party MCP server the hub tests use as an upstream, pinned.
const SERVER_EVERYTHING: (&str, &str) = ("@modelcontextprotocol/server-everything", "2026.8.31");

/// The accessibility checker the dashboard tests inject into its pages, pinned.
const AXE_CORE: (&str, &str) = ("axe-core", "4.14.1");

/// Installs the third-party servers the tests start (npm, into `.cache/npm-test`) unless the
/// pinned version is there, and returns the path of server-everything's entry point.
fn ensure_test_servers() -> Result<PathBuf> {
    ensure_npm_package(SERVER_EVERYTHING, "dist/index.js")
}

/// Installs the npm package `(name, version)` into `.cache/npm-test` unless that version is
/// there, and returns the path of its file `entry`.
fn ensure_npm_package((package, version): (&str, &str), entry: &str) -> Result<PathBuf> {
    let dir = cache_dir().join("npm-test");
    let package_dir = dir.join("node_modules").join(package);
    let entry = package_dir.join(entry);
    let installed = fs::read_to_string(package_dir.join("package.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["version"] == version);
    if installed && entry.is_file() {
        return Ok(entry);
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let manifest = dir.join("package.json");
    if !manifest.exists() {
        fs::write(&manifest, "{\"name\": \"bastion-test-servers\", \"private\": true}\n")?;
    }
    eprintln!("xtask: installing {package}@{version} into {}", dir.display());
    sh(Command::new("npm")
        .current_dir(&dir)
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .arg(format!("{package}@{version}")))
    .with_context(|| {
        format!(
            "npm install of {package} failed; the hub and dashboard tests need node and npm (`.ci/run` installs them)"
        )
    })?;
    if !entry.is_file() {
        bail!("{} is missing after npm install", entry.display());
    }
    Ok(entry)
}

/// Whether the extra pytest arguments already name a test file, directory or node id (then
/// `tests/python` is not added, so `interop tests/python/test_x.py::test_y` runs just that).
fn names_test_path(root: &Path, pytest_args: &[String]) -> bool {
    pytest_args.iter().any(|arg| {
        let path = arg.split("::").next().unwrap_or(arg);
        !arg.starts_with('-') && !path.is_empty() && root.join(path).exists()
    })
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` (relative to the repository) or `<repo>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// `<repo>/.cache/venv`.
pub fn venv_dir() -> PathBuf {
    cache_dir().join("venv")
}

/// Creates or refreshes `.cache/venv` from `tests/python/requirements.txt` and returns the path
/// of its Python interpreter.
///
/// The venv is rebuilt from scratch whenever the requirements file or the base interpreter's
/// version changes (tracked by a SHA-256 stamp file inside the venv).
pub fn ensure_venv() -> Result<PathBuf> {
    let requirements = repo_root().join("tests/python/requirements.txt");
    let wanted = requirements_stamp(&requirements)?;
    let venv = venv_dir();
    let python = venv.join("bin").join("python");
    let stamp_path = venv.join(STAMP_FILE);
    if python.is_file() && fs::read_to_string(&stamp_path).is_ok_and(|s| s.trim() == wanted) {
        eprintln!("xtask: venv {} is up to date", venv.display());
        return Ok(python);
    }

    if venv.exists() {
        eprintln!("xtask: requirements changed; recreating venv {}", venv.display());
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    } else {
        eprintln!("xtask: creating venv {}", venv.display());
    }
    fs::create_dir_all(cache_dir())?;
    sh(Command::new(base_python()).arg("-m").arg("venv").arg(&venv))
        .context("`python3 -m venv` failed; on Debian install the `python3-venv` package (`.ci/run` does)")?;
    sh(Command::new(&python)
        .args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input", "-q", "-r"])
        .arg(&requirements))
    .context("installing tests/python/requirements.txt into the venv failed")?;
    fs::write(&stamp_path, format!("{wanted}\n")).with_context(|| format!("writing {}", stamp_path.display()))?;
    Ok(python)
}

/// The interpreter the venv is made from: `$BASTION_PYTHON` or `python3`.
fn base_python() -> String {
    std::env::var("BASTION_PYTHON").unwrap_or_else(|_| "python3".to_owned())
}

/// SHA-256 over the requirements file and the base interpreter's version, as hex.
fn requirements_stamp(requirements: &Path) -> Result<String> {
    let contents = fs::read(requirements).with_context(|| format!("reading {}", requirements.display()))?;
    let version = output_of(Command::new(base_python()).arg("--version"))
        .with_context(|| format!("`{} --version` failed: is Python 3 installed?", base_python()))?;
    let mut hasher = Sha256::new();
    hasher.update(&contents);
    hasher.update(b"\0");
    hasher.update(version.as_bytes());
    let digest = hasher.finalize();
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_test_paths_replace_the_default_directory() {
        let root = repo_root();
        let args = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(!names_test_path(&root, &args(&["-k", "read", "-x"])));
        assert!(names_test_path(&root, &args(&["tests/python"])));
        assert!(names_test_path(&root, &args(&["-q", "tests/python/conftest.py::test_x"])));
        assert!(!names_test_path(&root, &args(&["tests/python/nope.py"])));
    }
}
