//! `cargo xtask ci`'s `fleet` step: a hub aggregating two Bastion hosts, each in its own network
//! namespace with its own roots and state, reached with OAuth client credentials
//! (`tests/python/test_fleet.py`). It needs root for `ip netns` (CI runs as root); without it
//! the test falls back to hosts on 127.0.0.2 and 127.0.0.3 in one namespace and says so. The
//! normal `interop` step skips the file: it runs only with `BASTION_FLEET=1`, set here.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::interop;
use crate::util::{display, repo_root};

/// Runs the fleet test against the debug binaries the `build` step made.
pub fn run() -> Result<()> {
    let python = interop::ensure_venv()?;
    let bin_dir = interop::target_dir().join("debug");
    let mut cmd = Command::new(&python);
    cmd.current_dir(repo_root())
        .args(["-m", "pytest", "tests/python/test_fleet.py", "-q", "-s", "--timeout=300"])
        .args(["-o", "cache_dir=.cache/pytest"])
        .env("BASTION_FLEET", "1")
        .env("BASTION_BIN_DIR", &bin_dir);
    let shown = display(&cmd);
    eprintln!("xtask: $ BASTION_FLEET=1 BASTION_BIN_DIR={} {shown}", bin_dir.display());
    let status = cmd.status().with_context(|| format!("could not start `{shown}`"))?;
    if !status.success() {
        bail!("fleet test failed: `{shown}` exited with {status}");
    }
    Ok(())
}
