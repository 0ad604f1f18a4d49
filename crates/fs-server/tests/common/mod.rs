//! Shared parts of the fs integration suites.

pub mod hostile;
pub mod project;
