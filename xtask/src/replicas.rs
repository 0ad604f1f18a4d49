//! The `replicas` step of `cargo xtask ci`: several hubs on one PostgreSQL behind a round-robin
//! load balancer (`tests/python/test_replicas.py`, pytest marker `replicas`).
//!
//! Its own step because it is heavier than the rest of `interop` (a PostgreSQL cluster, three hubs
//! with their children, nginx, and two load phases): about a minute on two idle cores. PostgreSQL
//! and nginx are Debian packages that `provision` installs; the `interop` step leaves the marker
//! out (`-m "not slow and not replicas"`). Run it alone with
//! `cargo xtask interop -m replicas tests/python/test_replicas.py`.

use anyhow::Result;

use crate::interop;

/// Runs the multi-replica suite with the binaries the `build` step made.
pub fn run() -> Result<()> {
    interop::run(&["-m".into(), "replicas".into(), "tests/python/test_replicas.py".into()], interop::Build::AlreadyDone)
}
