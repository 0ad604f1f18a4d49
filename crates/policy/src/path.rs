//! Validated root-relative paths: the only path type the rest of Bastion passes around.

use std::ffi::OsStr;
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, ErrorCode, Result, truncate_for_message};

/// Longest path the kernel accepts (`PATH_MAX - 1`).
pub const MAX_PATH_BYTES: usize = 4095;
/// Longest single name the kernel accepts (`NAME_MAX`).
pub const MAX_NAME_BYTES: usize = 255;

/// A path relative to a root, lexically normalised: no `.`, no `..`, no leading `/`, no NUL.
/// The empty path is the root itself.
///
/// Lexical normalisation is only a first filter that gives a clear early error for `../x`; the
/// kernel (`openat2` with `RESOLVE_BENEATH`) remains the boundary, so symlinks inside the path
/// are still resolved, and refused if they lead out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath(PathBuf);

impl RelPath {
    /// The root itself.
    pub fn root() -> Self {
        RelPath(PathBuf::new())
    }

    /// Parses a relative path as a caller wrote it. `shown` is used in error messages.
    pub fn parse(raw: &Path) -> Result<Self> {
        let bytes = raw.as_os_str().as_bytes();
        let shown = raw.to_string_lossy();
        if bytes.contains(&0) {
            return Err(Error::new(ErrorCode::InvalidPath, "the path contains a NUL byte; paths cannot contain NUL"));
        }
        if bytes.len() > MAX_PATH_BYTES {
            return Err(Error::new(
                ErrorCode::InvalidPath,
                format!(
                    "'{}' is {} bytes long; paths are limited to {MAX_PATH_BYTES} bytes",
                    truncate_for_message(&shown),
                    bytes.len()
                ),
            ));
        }
        let mut parts: Vec<&OsStr> = Vec::new();
        for component in raw.components() {
            match component {
                Component::CurDir => {}
                Component::ParentDir => {
                    if parts.pop().is_none() {
                        return Err(Error::new(
                            ErrorCode::PathOutsideRoot,
                            format!(
                                "'{}' climbs above the root with '..'; use a path inside a root (see list_roots)",
                                truncate_for_message(&shown)
                            ),
                        ));
                    }
                }
                Component::Normal(name) => {
                    if name.len() > MAX_NAME_BYTES {
                        return Err(Error::new(
                            ErrorCode::InvalidPath,
                            format!(
                                "a name in '{}' is {} bytes long; names are limited to {MAX_NAME_BYTES} bytes",
                                truncate_for_message(&shown),
                                name.len()
                            ),
                        ));
                    }
                    parts.push(name);
                }
                Component::RootDir | Component::Prefix(_) => {
                    return Err(Error::new(
                        ErrorCode::InvalidPath,
                        "internal: absolute path given where a root-relative path was expected",
                    ));
                }
            }
        }
        Ok(RelPath(parts.iter().collect()))
    }

    /// True for the root itself.
    pub fn is_root(&self) -> bool {
        self.0.as_os_str().is_empty()
    }

    /// The path as a `Path` (empty for the root).
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// The path for syscalls: `.` for the root.
    pub fn for_syscall(&self) -> &Path {
        if self.is_root() { Path::new(".") } else { &self.0 }
    }

    /// Splits into parent and final name; `None` for the root.
    pub fn split_last(&self) -> Option<(RelPath, &OsStr)> {
        let name = self.0.file_name()?;
        let parent = self.0.parent().map(Path::to_path_buf).unwrap_or_default();
        Some((RelPath(parent), name))
    }

    /// Appends one validated name.
    pub fn join_name(&self, name: &OsStr) -> RelPath {
        RelPath(self.0.join(name))
    }

    /// The path as shown to the model: `/`-separated, `.` for the root, lossy UTF-8.
    pub fn display(&self) -> String {
        if self.is_root() { ".".to_string() } else { self.0.to_string_lossy().into_owned() }
    }

    /// Builds from a path produced by a directory walk beneath the root (names joined from
    /// `readdir`, so already normalised) without re-parsing it. The kernel still resolves it
    /// beneath the root, so a malformed value could only fail to open, never escape.
    pub fn from_walked(p: &Path) -> Self {
        RelPath(p.to_path_buf())
    }

    /// Builds from a path already known to be normalised and relative (e.g. from a directory walk
    /// beneath the root). Re-validates cheaply and falls back to parsing.
    pub fn from_normalized(p: &Path) -> Result<Self> {
        RelPath::parse(p)
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.display())
    }
}

/// Checks that `name` is usable as the final component of a mutation: not empty, `.` or `..`,
/// and without `/` or NUL.
pub fn check_final_name(name: &OsStr, shown: &str) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Error::new(ErrorCode::InvalidPath, format!("'{shown}' does not end in a file or directory name")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_refuses_climbing() {
        let cases: &[(&str, Result<&str, ErrorCode>)] = &[
            ("a/b", Ok("a/b")),
            ("./a/./b/", Ok("a/b")),
            ("a/../b", Ok("b")),
            ("a//b", Ok("a/b")),
            ("", Ok("")),
            (".", Ok("")),
            ("..", Err(ErrorCode::PathOutsideRoot)),
            ("../x", Err(ErrorCode::PathOutsideRoot)),
            ("a/../../x", Err(ErrorCode::PathOutsideRoot)),
            ("a\0b", Err(ErrorCode::InvalidPath)),
        ];
        for (input, want) in cases {
            let got = RelPath::parse(Path::new(input));
            match (got, want) {
                (Ok(p), Ok(w)) => assert_eq!(p.as_path(), Path::new(w), "{input}"),
                (Err(e), Err(code)) => assert_eq!(e.code, *code, "{input}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn refuses_overlong() {
        let long_name = "x".repeat(256);
        assert_eq!(RelPath::parse(Path::new(&long_name)).unwrap_err().code, ErrorCode::InvalidPath);
        let long_path = "a/".repeat(2100);
        assert_eq!(RelPath::parse(Path::new(&long_path)).unwrap_err().code, ErrorCode::InvalidPath);
    }
}
