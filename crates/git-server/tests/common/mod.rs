//! The git tests' view of the shared kit (`bastion-testkit`): the `bastion-git` binary of this
//! crate with every tier allowed, `HOME` pointing at a fixture directory (so the machine's global
//! git config plays no part), and the fixture helpers.
#![allow(dead_code, unused_imports)]

use std::path::Path;

pub use bastion_testkit::git::{git, git_command, init};
pub use bastion_testkit::{Server, ServerBuilder, files_under, write};

/// `bastion-git --root R... --allow-destructive EXTRA` with `HOME=home`.
pub fn start(roots: &[&Path], home: &Path, extra: &[&str]) -> Server {
    builder(roots, home).arg("--allow-destructive").args(extra).start()
}

/// `bastion-git --root R...` with `HOME=home`, no tier flag yet.
pub fn builder(roots: &[&Path], home: &Path) -> ServerBuilder {
    let mut b = ServerBuilder::program(env!("CARGO_BIN_EXE_bastion-git")).expect_name("bastion-git").home(home);
    for r in roots {
        b = b.root(r);
    }
    b
}
