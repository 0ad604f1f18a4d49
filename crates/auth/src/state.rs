//! The state directory (tokens, OAuth grants, the owner secret, the audit journal): created
//! once, mode 0700, owned by the user running Bastion; its store files are 0600 and checked
//! for owner and mode whenever they are opened. A state directory or store file that someone
//! else owns, or that others may read or write, is refused rather than used: whoever can write
//! the store can mint tokens.

use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bastion_policy::state::{StateFault, state_fault};

/// The default state directory: `$XDG_STATE_HOME/bastion`, else `~/.local/state/bastion`
/// (one definition, [`bastion_policy::state::default_state_dir`], which the servers also use to
/// protect it).
pub fn default_dir() -> io::Result<PathBuf> {
    bastion_policy::state::default_state_dir()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "neither XDG_STATE_HOME nor HOME is set"))
}

fn refuse(path: &Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, format!("{}: {why}", path.display()))
}

fn foreign_owner(path: &Path, uid: u32, me: u32) -> io::Error {
    refuse(path, &format!("owned by uid {uid}, not by this user (uid {me}); refusing to use it"))
}

fn owned_by_us(path: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(foreign_owner(path, meta.uid(), me));
    }
    Ok(())
}

/// Creates the state directory if needed, makes it 0700 and checks that this user owns it.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir).map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())))?;
    let meta = fs::metadata(dir)?;
    if !meta.is_dir() {
        return Err(refuse(dir, "not a directory"));
    }
    owned_by_us(dir, &meta)?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Checks an existing store file: a regular file this user owns that no one else may read or
/// write. The judgement is `bastion_policy::state::state_fault`'s (the state directory's own
/// check), with any access by group or others refused rather than only writing.
pub fn check_private_file(path: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(path)?;
    if !meta.is_file() {
        return Err(refuse(path, "not a regular file"));
    }
    match state_fault(&meta, 0o077) {
        None => Ok(()),
        // A link is not a regular file: refused above.
        Some(StateFault::Link) => Err(refuse(path, "not a regular file")),
        Some(StateFault::Owner { uid, euid }) => Err(foreign_owner(path, uid, euid)),
        Some(StateFault::Mode { mode }) => {
            let mode = mode & 0o777;
            Err(refuse(path, &format!("mode {mode:o} lets other users in; run chmod 600 on it")))
        }
    }
}

/// Creates `path` (mode 0600) if it does not exist, in a directory made by [`ensure_dir`], then
/// checks it with [`check_private_file`].
pub fn create_private_file(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        ensure_dir(dir)?;
    }
    match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io::Error::new(e.kind(), format!("creating {}: {e}", path.display()))),
    }
    check_private_file(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_is_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("a/state");
        ensure_dir(&state).unwrap();
        assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&state).unwrap();
        assert_eq!(fs::metadata(&state).unwrap().permissions().mode() & 0o777, 0o700);
        let file = dir.path().join("file");
        fs::write(&file, "").unwrap();
        assert!(ensure_dir(&file).is_err());
    }

    #[test]
    fn store_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s/x.sqlite3");
        create_private_file(&f).unwrap();
        assert_eq!(fs::metadata(&f).unwrap().permissions().mode() & 0o777, 0o600);
        create_private_file(&f).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o644)).unwrap();
        let e = check_private_file(&f).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("chmod 600"), "{e}");
        let link = dir.path().join("s/link");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        assert!(check_private_file(&link).is_err());
    }
}
