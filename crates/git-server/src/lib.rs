//! `bastion-git` will expose git through libgit2 only (no `git` CLI, so no hooks, filters or
//! option injection), with repositories discovered beneath the roots of `bastion-policy`.
//!
//! Not built yet: this crate only reserves its place in the workspace.
#![deny(missing_docs)]
