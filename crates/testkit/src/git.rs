//! Git fixtures, built with the `git` program (only ever to build fixtures: the servers use
//! libgit2), with a neutral environment so the machine's configuration plays no part.

use std::path::Path;
use std::process::Command;

/// Runs `git ARGS` in `dir`; panics with git's stderr when it fails. Returns stdout.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = match git_command(dir).args(args).output() {
        Ok(o) => o,
        Err(e) => panic!("git {args:?}: {e}"),
    };
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A `git` command in `dir` with a clean environment, no global or system configuration, and
/// fixed identities and dates (reproducible object ids).
pub fn git_command(dir: &Path) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Fixture")
        .env("GIT_AUTHOR_EMAIL", "fixture@example.com")
        .env("GIT_COMMITTER_NAME", "Fixture")
        .env("GIT_COMMITTER_EMAIL", "fixture@example.com")
        .env("GIT_AUTHOR_DATE", "2024-05-01T12:00:00Z")
        .env("GIT_COMMITTER_DATE", "2024-05-01T12:00:00Z");
    c
}

/// A new repository at `dir` (branch `main`) with an identity in its own config.
pub fn init(dir: &Path) {
    if let Err(e) = std::fs::create_dir_all(dir) {
        panic!("{}: {e}", dir.display());
    }
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.name", "Repo User"]);
    git(dir, &["config", "user.email", "repo@example.com"]);
}
