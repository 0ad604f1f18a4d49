//! Bastion's own state, out of reach of every tool.
//!
//! At start the hub and every server resolve what they trust — the state directory (tokens,
//! OAuth store, owner secret, control socket, journals), the configuration files they loaded,
//! the audit journal and the running binary — into a [`Protected`] set. The set travels inside
//! [`DenyRules`](crate::DenyRules), so every check that applies the deny globs applies it too,
//! on the same real paths: reads, listings, stats, walks, writes, moves, deletes, shell path
//! operands and git pathspecs. It is built from the command line and the process itself, never
//! from a configuration value a tool could write.
//!
//! Paths are compared by their real (canonical) form, ASCII case folded like the deny globs (a
//! root on a case-folding filesystem opens `.BST/tokens.json` as `.bst/tokens.json`), and what
//! existed at start is also remembered by device and inode, so a hard link or a bind mount of a
//! protected file inside a root is refused too.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::Stat;

use crate::error::{Error, ErrorCode};

/// One protected path.
#[derive(Clone, Debug)]
struct Entry {
    /// The real path (canonical; for a path that does not exist yet, its nearest existing
    /// ancestor canonicalised with the rest appended).
    real: PathBuf,
    /// `real`, ASCII-lowercased, for comparisons.
    lowered: Vec<u8>,
    /// Device and inode at start, when it existed.
    id: Option<(u64, u64)>,
}

/// The paths no tool may touch, whatever the roots: Bastion's own state.
#[derive(Clone, Debug, Default)]
pub struct Protected {
    entries: Vec<Entry>,
    /// Device and inode of the files found directly in protected directories at start, with
    /// their paths.
    inodes: Vec<((u64, u64), PathBuf)>,
}

impl Protected {
    /// Resolves `paths` to real paths. Relative paths are taken against the current directory;
    /// paths that do not exist yet (a state directory created on first use) are resolved through
    /// their nearest existing ancestor, so they are protected before they appear.
    pub fn resolve<P: AsRef<Path>>(paths: &[P]) -> Self {
        let mut set = Protected::default();
        set.extend(paths);
        set
    }

    /// Adds more paths (see [`Protected::resolve`]).
    pub fn extend<P: AsRef<Path>>(&mut self, paths: &[P]) {
        for p in paths {
            let Some(real) = real_path_of(p.as_ref()) else { continue };
            let meta = std::fs::metadata(&real).ok();
            let id = meta.as_ref().map(|m| (m.dev(), m.ino()));
            let lowered = real.as_os_str().as_bytes().to_ascii_lowercase();
            if self.entries.iter().any(|e| e.lowered == lowered) {
                continue;
            }
            // The files directly in a protected directory (tokens, OAuth store, owner secret)
            // are remembered by inode too, so a hard link to one elsewhere in a root is refused.
            if meta.is_some_and(|m| m.is_dir())
                && let Ok(entries) = std::fs::read_dir(&real)
            {
                for e in entries.flatten().take(1024) {
                    if let Ok(m) = e.metadata()
                        && m.is_file()
                    {
                        self.inodes.push(((m.dev(), m.ino()), e.path()));
                    }
                }
            }
            self.entries.push(Entry { real, lowered, id });
        }
    }

    /// True when nothing is protected.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The protected real paths.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.entries.iter().map(|e| e.real.as_path())
    }

    /// Whether the real path `root/rel` is a protected path or lies inside one (`root` is a
    /// root's real path, `rel` a root-relative path). A root that itself lies inside a
    /// protected directory is protected throughout.
    pub fn covers_in(&self, root: &Path, rel: &Path) -> bool {
        if self.entries.is_empty() {
            return false;
        }
        let root = root.as_os_str().as_bytes();
        let rel = rel.as_os_str().as_bytes();
        self.entries.iter().any(|e| has_prefix_ci(root, rel, &e.lowered))
    }

    /// Whether the real path `path` is a protected path or lies inside one.
    pub fn covers(&self, path: &Path) -> bool {
        self.covers_in(path, Path::new(""))
    }

    /// Whether a protected path lies strictly beneath the real path `root/rel` (a directory that
    /// holds Bastion's state cannot be moved or deleted wholesale).
    pub fn any_beneath(&self, root: &Path, rel: &Path) -> bool {
        let dir = if rel.as_os_str().is_empty() { root.to_path_buf() } else { root.join(rel) };
        let dir = dir.as_os_str().as_bytes().to_ascii_lowercase();
        self.entries.iter().any(|e| {
            e.lowered.len() > dir.len()
                && e.lowered.starts_with(&dir)
                && (dir.ends_with(b"/") || e.lowered[dir.len()] == b'/')
        })
    }

    /// The protected paths that lie strictly beneath the real directory `dir`, for the shell
    /// sandbox to hide.
    pub fn beneath(&self, dir: &Path) -> Vec<PathBuf> {
        self.entries.iter().filter(|e| e.real != dir && e.real.starts_with(dir)).map(|e| e.real.clone()).collect()
    }

    /// Whether an opened file is one of the protected files or directories, by device and inode
    /// (a hard link or bind mount of it under another name). A match is confirmed on the
    /// protected path itself, so an inode number freed by a replaced state file and reused by an
    /// ordinary file is not mistaken for it.
    pub fn is_same_file(&self, st: &Stat) -> bool {
        let key = (st.st_dev, st.st_ino);
        let still = |path: &Path| std::fs::symlink_metadata(path).is_ok_and(|m| (m.dev(), m.ino()) == key);
        self.entries.iter().any(|e| e.id == Some(key) && still(&e.real))
            || self.inodes.iter().any(|(k, path)| *k == key && still(path))
    }
}

/// The `protected_path` error for `shown` (a root-relative path as the caller wrote it or as
/// resolved inside the root: nothing outside the roots is revealed).
pub fn protected_error(shown: &str) -> Error {
    Error::new(
        ErrorCode::ProtectedPath,
        format!(
            "'{shown}' is Bastion's own state (its tokens, configuration, journal or program); no tool may read, list, write, move or delete it. This is a fixed boundary, not an error: do not retry it with another path, link or tool"
        ),
    )
}

/// `root` + `/` + `rel` (or `root` alone when `rel` is empty), ASCII case folded, is `prefix` or
/// lies beneath it; or `prefix` lies above `root` (a root inside a protected directory). No
/// allocation: this runs on every entry of every walk.
fn has_prefix_ci(root: &[u8], rel: &[u8], prefix: &[u8]) -> bool {
    let full_len = if rel.is_empty() { root.len() } else { root.len() + 1 + rel.len() };
    let byte = |i: usize| -> u8 {
        if i < root.len() {
            root[i]
        } else if i == root.len() {
            b'/'
        } else {
            rel[i - root.len() - 1]
        }
    };
    if prefix.len() > full_len {
        return false;
    }
    if !(0..prefix.len()).all(|i| byte(i).to_ascii_lowercase() == prefix[i]) {
        return false;
    }
    prefix.len() == full_len || prefix.ends_with(b"/") || byte(prefix.len()) == b'/'
}

/// The real path of `p`, or of its nearest existing ancestor with the rest appended.
pub(crate) fn real_path_of(p: &Path) -> Option<PathBuf> {
    let absolute = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().ok()?.join(p) };
    // `..` in a path that does not exist yet is resolved lexically: there is no link to follow.
    let mut lexical = PathBuf::new();
    for c in absolute.components() {
        match c {
            Component::ParentDir => {
                lexical.pop();
            }
            Component::CurDir => {}
            other => lexical.push(other.as_os_str()),
        }
    }
    if let Ok(real) = std::fs::canonicalize(&absolute) {
        return Some(real);
    }
    let mut rest: Vec<&std::ffi::OsStr> = Vec::new();
    let mut cur = lexical.as_path();
    loop {
        if let Ok(real) = std::fs::canonicalize(cur) {
            let mut out = real;
            for name in rest.iter().rev() {
                out.push(name);
            }
            return Some(out);
        }
        rest.push(cur.file_name()?);
        cur = cur.parent()?;
    }
}

/// The running binary's real path (`/proc/self/exe`).
pub fn running_binary() -> Option<PathBuf> {
    std::fs::read_link("/proc/self/exe").ok().or_else(|| std::env::current_exe().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_whole_components_case_folded() {
        let p = b"/srv/p/.bst";
        assert!(has_prefix_ci(b"/srv/p", b".bst", p));
        assert!(has_prefix_ci(b"/srv/p", b".BST/tokens.json", p));
        assert!(has_prefix_ci(b"/srv/p/.bst", b"", p));
        assert!(has_prefix_ci(b"/srv/p/.bst/x", b"y", p));
        assert!(!has_prefix_ci(b"/srv/p", b".bstx", p));
        assert!(!has_prefix_ci(b"/srv/p", b"", p));
        assert!(!has_prefix_ci(b"/srv/p", b"a/.bst", p));
        // A root inside a protected directory is protected throughout.
        assert!(has_prefix_ci(b"/srv/p/.bst/inner", b"a", p));
    }

    #[test]
    fn missing_paths_resolve_through_their_ancestor() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        let set = Protected::resolve(&[dir.path().join("state/../state/sub")]);
        assert_eq!(set.paths().collect::<Vec<_>>(), vec![real.join("state/sub").as_path()]);
        assert!(set.covers(&real.join("state/sub/tokens.json")));
        assert!(!set.covers(&real.join("state")));
        assert!(set.any_beneath(&real, Path::new("state")));
        assert!(set.any_beneath(&real, Path::new("")));
        assert!(!set.any_beneath(&real, Path::new("state/sub")));
    }

    #[test]
    fn inode_matches_are_confirmed_on_the_protected_path() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join("tokens.json"), "[]").unwrap();
        std::fs::hard_link(state.join("tokens.json"), dir.path().join("hl")).unwrap();
        let set = Protected::resolve(&[&state]);
        let stat = |p: &Path| rustix::fs::stat(p).unwrap();
        assert!(set.is_same_file(&stat(&dir.path().join("hl"))));
        assert!(set.is_same_file(&stat(&state)));
        // The hub replaces its files atomically: the old inode is no longer Bastion's.
        std::fs::write(state.join("tokens.json.tmp"), "[1]").unwrap();
        std::fs::rename(state.join("tokens.json.tmp"), state.join("tokens.json")).unwrap();
        assert!(!set.is_same_file(&stat(&dir.path().join("hl"))));
    }
}
