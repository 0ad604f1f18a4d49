//! The state directory: where the hub keeps what it trusts (tokens, OAuth store, owner secret,
//! control socket, journals), and the checks made before trusting it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};
use crate::protect::real_path_of;

/// The default state directory: `$XDG_STATE_HOME/bastion`, else `~/.local/state/bastion`.
/// `None` when neither variable is set.
pub fn default_state_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("bastion"));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(PathBuf::from(home).join(".local/state/bastion"))
}

/// Refuses a state directory that is, contains or lies inside one of `roots`, unless
/// `allowed` (and then it is still protected). The message names the flag that allows it.
pub fn check_state_dir_outside_roots(state_dir: &Path, roots: &[PathBuf], allowed: bool) -> Result<()> {
    if allowed {
        return Ok(());
    }
    let Some(state) = real_path_of(state_dir) else { return Ok(()) };
    for root in roots {
        let Some(root) = real_path_of(root) else { continue };
        if state.starts_with(&root) || root.starts_with(&state) {
            let relation = if state.starts_with(&root) { "lies inside" } else { "contains" };
            return Err(Error::new(
                ErrorCode::InvalidConfig,
                format!(
                    "the state directory {} {relation} the root {} (tokens, OAuth store and journals would sit beside the files the tools work on); choose a --state-dir outside every root, or pass --allow-state-in-root (it then stays unreachable to every tool)",
                    state_dir.display(),
                    root.display()
                ),
            ));
        }
    }
    Ok(())
}

/// What makes a state path untrustworthy: someone other than this process's user could replace
/// it. Judged by [`state_fault`]; [`check_private`] (the state directory) and
/// `bastion_auth::state::check_private_file` (a store file) each word it their own way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFault {
    /// A symbolic link (judged as itself, not followed).
    Link,
    /// Owned by `uid`, not by the effective user `euid`.
    Owner {
        /// The owner.
        uid: u32,
        /// This process's effective user.
        euid: u32,
    },
    /// Carries one of the refused permission bits; `mode` is the whole `st_mode`.
    Mode {
        /// `st_mode` as read.
        mode: u32,
    },
}

/// The first fault of a state path with metadata `meta` (from `symlink_metadata`): a link, then
/// a foreign owner, then any of the permission bits `refused` (`0o022`: writable by group or
/// others; `0o077`: any access by them). `None` when the path is this user's and private.
pub fn state_fault(meta: &std::fs::Metadata, refused: u32) -> Option<StateFault> {
    if meta.file_type().is_symlink() {
        return Some(StateFault::Link);
    }
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Some(StateFault::Owner { uid: meta.uid(), euid });
    }
    if meta.mode() & refused != 0 {
        return Some(StateFault::Mode { mode: meta.mode() });
    }
    None
}

/// Refuses a state file or directory another user or process could replace: it must be owned
/// by the effective user and carry no group or other write bit (files are created `0600`,
/// directories `0700`). A missing path is fine: it will be created with those modes. Symlinks
/// are judged by what they are, not followed: a link in the state directory is refused.
pub fn check_private(path: &Path) -> Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => {
            return Err(Error::new(ErrorCode::InvalidConfig, format!("cannot inspect {}: {e}", path.display())));
        }
    };
    let shown = path.display();
    let message = match state_fault(&meta, 0o022) {
        None => return Ok(()),
        Some(StateFault::Link) => {
            format!("{shown} is a symbolic link; Bastion's state files must be plain files it owns")
        }
        Some(StateFault::Owner { uid, euid }) => format!(
            "{shown} is owned by uid {uid} but Bastion runs as uid {euid}; another user could replace what it trusts. Fix it with: chown {euid} {shown}"
        ),
        Some(StateFault::Mode { mode }) => {
            let want = if meta.is_dir() { "700" } else { "600" };
            format!(
                "{shown} is writable by group or others (mode {:o}); another process could replace what Bastion trusts. Fix it with: chmod {want} {shown}",
                mode & 0o7777
            )
        }
    };
    Err(Error::new(ErrorCode::InvalidConfig, message))
}

/// [`check_private`] on the state directory and every entry directly in it. The directory
/// itself may be reached through a symbolic link (a state directory kept on another disk); the
/// entries in it may not.
pub fn check_private_dir(dir: &Path) -> Result<()> {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let dir = real.as_path();
    check_private(dir)?;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::new(ErrorCode::InvalidConfig, format!("cannot list {}: {e}", dir.display()))),
    };
    for entry in entries.flatten() {
        let path = entry.path();
        // The control socket is a socket: its own mode is what connect(2) checks, and the
        // directory's 0700 already keeps other users out.
        if entry.file_type().is_ok_and(|t| std::os::unix::fs::FileTypeExt::is_socket(&t)) {
            continue;
        }
        check_private(&path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn state_dir_in_a_root_is_refused_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let roots = vec![dir.path().to_path_buf()];
        let err = check_state_dir_outside_roots(&dir.path().join(".bst"), &roots, false).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert!(err.message.contains("--allow-state-in-root"), "{}", err.message);
        check_state_dir_outside_roots(&dir.path().join(".bst"), &roots, true).unwrap();
        let other = tempfile::tempdir().unwrap();
        check_state_dir_outside_roots(other.path(), &roots, false).unwrap();
    }

    #[test]
    fn state_fault_names_the_first_problem() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = std::fs::symlink_metadata(&file).unwrap();
        assert_eq!(state_fault(&meta, 0o022), None, "group-readable is fine where only writing is refused");
        assert!(matches!(state_fault(&meta, 0o077), Some(StateFault::Mode { mode }) if mode & 0o777 == 0o640));
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(state_fault(&std::fs::symlink_metadata(&link).unwrap(), 0o077), Some(StateFault::Link));
    }

    #[test]
    fn private_state_is_owned_and_not_group_writable() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        check_private_dir(&state).unwrap();
        std::fs::create_dir(&state).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let file = state.join("tokens.json");
        std::fs::write(&file, "[]").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        check_private_dir(&state).unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o620)).unwrap();
        let err = check_private_dir(&state).unwrap_err();
        assert!(err.message.contains("chmod 600"), "{}", err.message);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = check_private_dir(&state).unwrap_err();
        assert!(err.message.contains("chmod 700"), "{}", err.message);
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o700)).unwrap();
        let link = dir.path().join("state-link");
        std::os::unix::fs::symlink(&state, &link).unwrap();
        check_private_dir(&link).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", state.join("oauth.sqlite3")).unwrap();
        assert!(check_private_dir(&state).unwrap_err().message.contains("symbolic link"));
    }
}
