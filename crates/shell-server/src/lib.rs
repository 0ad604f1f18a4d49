//! `bastion-shell` will run allowlisted programs as argv (no shell) inside a kernel sandbox
//! (rlimits, no-new-privileges, Landlock, seccomp), with command rules from `bastion-policy`.
//!
//! Not built yet: this crate only reserves its place in the workspace. Until it lands, Bastion
//! offers no way to run commands.
#![deny(missing_docs)]
