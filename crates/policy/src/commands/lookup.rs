//! Executable lookup: where a program named without a path is found, and the refusal of one that
//! lies inside a root.

use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result, truncate_for_message};
use crate::roots::Roots;

/// Directories searched for executables named without a path. `$PATH` is not used for the
/// read-only tools: a root on `$PATH` would let the model plant a program.
pub const SYSTEM_BIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Finds `name` in the system directories, then in the server's `$PATH` (absolute entries only),
/// and returns the path found (not canonicalised: symlinks such as rustup's proxies and pyenv's
/// shims work by their name).
pub fn find_executable(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.starts_with('/') {
        return is_exec(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    SYSTEM_BIN_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_var).filter(|p| p.is_absolute()))
        .map(|dir| dir.join(name))
        .find(|p| is_exec(p))
}

/// Refuses an executable that lies (or whose symlinks lead) inside a root: one found through a
/// root on the server's `PATH` would be a program the model can write.
pub fn check_executable(roots: &Roots, program: &str, exe: &Path) -> Result<()> {
    let real = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    if roots.iter().any(|r| exe.starts_with(r.real_path()) || real.starts_with(r.real_path())) {
        return Err(Error::new(
            ErrorCode::CommandNotAllowed,
            format!(
                "'{}' resolves to a file inside a root, which is never run as a trusted program",
                truncate_for_message(program)
            ),
        ));
    }
    Ok(())
}
