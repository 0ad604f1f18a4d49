//! Roots: the directories a server may touch, opened once as directory handles, and every file
//! operation Bastion performs beneath them.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, Stat};
use rustix::io::Errno;

use crate::deny::{Access, DenyRules};
use crate::error::{Error, ErrorCode, Result, truncate_for_message};
use crate::path::{RelPath, check_final_name};
use crate::protect::protected_error;
use crate::resolve::{Links, ResolveMode, open_beneath, real_path};

/// One allowed directory, held open for the life of the server.
#[derive(Debug)]
pub struct Root {
    name: String,
    real: PathBuf,
    dir: OwnedFd,
    /// Where this root lies inside the configured root it was narrowed from (None for a
    /// configured root). Deny globs are matched on `prefix/rel`.
    prefix: Option<PathBuf>,
}

impl Root {
    /// Opens `path` as a root. `name` is how tools refer to it.
    pub fn open(path: &Path, name: String) -> Result<Self> {
        let shown = path.display().to_string();
        let real = std::fs::canonicalize(path).map_err(|e| Error::from_io(&e, &shown))?;
        let dir = rustix::fs::open(&real, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| Error::from_errno(e, &shown))?;
        Ok(Root { name, real, dir, prefix: None })
    }

    /// The root's name (the directory's base name, made unique).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The root's canonical host path.
    pub fn real_path(&self) -> &Path {
        &self.real
    }

    /// For a root narrowed from a configured root: its path inside that root.
    pub fn prefix(&self) -> Option<&Path> {
        self.prefix.as_deref()
    }

    /// The directory handle everything is resolved beneath.
    pub fn dir(&self) -> BorrowedFd<'_> {
        self.dir.as_fd()
    }

    /// Maps the real path of an opened descriptor back to a root-relative path. `None` when the
    /// descriptor is not beneath this root (possible only if the root itself was moved).
    fn relative_of(&self, fd: BorrowedFd<'_>) -> Option<RelPath> {
        let real = real_path(fd)?;
        let rel = real.strip_prefix(&self.real).ok()?;
        RelPath::from_normalized(rel).ok()
    }
}

/// A path the caller named, mapped to a root: not yet opened, so not yet trusted beyond its form.
#[derive(Clone, Debug)]
pub struct Target {
    /// The root the path is relative to.
    pub root: Arc<Root>,
    /// The normalised root-relative path.
    pub rel: RelPath,
}

impl Target {
    /// The path as shown to the model (root-relative; prefixed with the root name when several
    /// roots are configured).
    pub fn shown(&self) -> String {
        self.rel.display()
    }
}

/// The set of roots in force.
#[derive(Clone, Debug)]
pub struct Roots {
    roots: Vec<Arc<Root>>,
    mode: ResolveMode,
}

/// A regular file opened for reading beneath a root, after every check passed.
#[derive(Debug)]
pub struct OpenedFile {
    /// The open file.
    pub file: File,
    /// Its metadata at open time.
    pub stat: Stat,
    /// Its real root-relative path (after in-root symlinks).
    pub rel: RelPath,
}

/// A directory opened beneath a root.
#[derive(Debug)]
pub struct OpenedDir {
    /// Directory handle (`O_RDONLY | O_DIRECTORY`).
    pub fd: OwnedFd,
    /// Real root-relative path.
    pub rel: RelPath,
}

/// The parent directory of a path to be created, changed, moved or deleted, plus the final name.
/// Every mutation acts on `(parent handle, one name)`, so no path is resolved twice.
#[derive(Debug)]
pub struct ParentDir {
    /// Parent directory handle (`O_RDONLY | O_DIRECTORY`, so it can be fsynced).
    pub fd: OwnedFd,
    /// Real root-relative path of the parent.
    pub rel: RelPath,
    /// The final component.
    pub name: OsString,
    /// The root.
    pub root: Arc<Root>,
}

impl ParentDir {
    /// Real root-relative path of the final component.
    pub fn child_rel(&self) -> RelPath {
        self.rel.join_name(&self.name)
    }

    /// `lstat` of the final component; `None` when it does not exist.
    pub fn lstat(&self) -> Result<Option<Stat>> {
        match rustix::fs::statat(&self.fd, self.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => Ok(Some(st)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(Error::from_errno(e, &self.child_rel().display())),
        }
    }

    /// Opens the existing final component for reading without following a symlink.
    pub fn open_existing(&self) -> Result<File> {
        let fd = rustix::fs::openat(
            &self.fd,
            self.name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NOCTTY | OFlags::NONBLOCK,
            Mode::empty(),
        )
        .map_err(|e| Error::from_errno(e, &self.child_rel().display()))?;
        Ok(File::from(fd))
    }
}

/// What an atomic write may do to an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CreateMode {
    /// Create a new file; fail with `already_exists` if there is one.
    CreateNew,
    /// Replace an existing file; fail with `not_found` if there is none.
    ReplaceExisting,
    /// Either.
    CreateOrReplace,
}

/// Result of an atomic write.
#[derive(Clone, Copy, Debug)]
pub struct WriteOutcome {
    /// True when the file did not exist before.
    pub created: bool,
    /// Permission bits of the file now.
    pub mode: u32,
}

/// Kind of a directory entry, without following symlinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Directory,
    /// Symbolic link (never followed by listings).
    Symlink,
    /// FIFO, socket, device.
    Other,
}

impl EntryKind {
    /// Kind from a `stat` mode.
    pub fn from_mode(mode: u32) -> Self {
        match FileType::from_raw_mode(mode) {
            FileType::RegularFile => EntryKind::File,
            FileType::Directory => EntryKind::Directory,
            FileType::Symlink => EntryKind::Symlink,
            _ => EntryKind::Other,
        }
    }
}

/// One directory entry.
#[derive(Clone, Debug)]
pub struct DirEntry {
    /// The entry's name.
    pub name: OsString,
    /// Its kind (not following symlinks).
    pub kind: EntryKind,
    /// Its `lstat`.
    pub stat: Stat,
}

fn is_regular(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
}

fn is_dir(st: &Stat) -> bool {
    FileType::from_raw_mode(st.st_mode) == FileType::Directory
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Roots {
    /// Opens each directory as a root. Names are base names, made unique with `-2`, `-3`, ….
    pub fn open(paths: &[PathBuf], mode: ResolveMode) -> Result<Self> {
        let mut roots: Vec<Arc<Root>> = Vec::new();
        for path in paths {
            let base = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "root".to_string());
            let mut name = base.clone();
            let mut n = 2;
            while roots.iter().any(|r| r.name == name) {
                name = format!("{base}-{n}");
                n += 1;
            }
            roots.push(Arc::new(Root::open(path, name)?));
        }
        Ok(Roots { roots, mode })
    }

    /// The roots, first one first.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Root>> {
        self.roots.iter()
    }

    /// Number of roots.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// True when there are no roots (every path is refused).
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The resolution mode.
    pub fn mode(&self) -> ResolveMode {
        self.mode
    }

    fn root_by_name(&self, which: &str) -> Result<Arc<Root>> {
        self.roots.iter().find(|r| r.name == which || r.real.as_os_str() == which).cloned().ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("there is no root named '{}'; roots are: {}", truncate_for_message(which), self.names()),
            )
        })
    }

    fn names(&self) -> String {
        self.roots.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", ")
    }

    /// Maps a caller's path to a root. Absolute paths must lie inside a root; relative paths are
    /// relative to `root` (a root name) or to the first root.
    pub fn target(&self, raw: &str, root: Option<&str>) -> Result<Target> {
        if self.roots.is_empty() {
            return Err(Error::new(
                ErrorCode::PathOutsideRoot,
                "no roots are in force (the client's declared roots do not overlap the server's configured roots)",
            ));
        }
        if raw.as_bytes().contains(&0) {
            return Err(Error::new(ErrorCode::InvalidPath, "the path contains a NUL byte; paths cannot contain NUL"));
        }
        // `name:path` addresses a root by name: it is how paths are shown when several roots are
        // configured, so the model can pass them back unchanged.
        if root.is_none()
            && let Some((name, rest)) = raw.split_once(':')
            && self.roots.iter().any(|r| r.name == name)
        {
            return self.target(rest, Some(name));
        }
        let path = Path::new(raw);
        if path.is_absolute() {
            // Longest matching root wins, so nested roots behave.
            let best = self
                .roots
                .iter()
                .filter_map(|r| path.strip_prefix(&r.real).ok().map(|rest| (r, rest)))
                .max_by_key(|(r, _)| r.real.as_os_str().len());
            let Some((r, rest)) = best else {
                return Err(Error::new(
                    ErrorCode::PathOutsideRoot,
                    format!(
                        "'{}' is outside every allowed root; use a path relative to a root or inside one of: {}",
                        truncate_for_message(raw),
                        self.roots.iter().map(|r| r.real.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            if let Some(which) = root {
                let named = self.root_by_name(which)?;
                if !Arc::ptr_eq(&named, r) {
                    return Err(Error::new(
                        ErrorCode::InvalidArgument,
                        format!(
                            "the absolute path is inside root '{}', not '{}'; drop the root argument",
                            r.name, named.name
                        ),
                    ));
                }
            }
            return Ok(Target { root: r.clone(), rel: RelPath::parse(rest)? });
        }
        let r = match root {
            Some(which) => self.root_by_name(which)?,
            None => self.roots[0].clone(),
        };
        Ok(Target { root: r, rel: RelPath::parse(path)? })
    }

    /// Opens a regular file for reading: resolved beneath the root, deny globs checked on the real
    /// path, FIFOs/devices/sockets/directories refused.
    pub fn open_file(&self, t: &Target, deny: &DenyRules) -> Result<OpenedFile> {
        let shown = t.shown();
        let flags = OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK;
        let (fd, rel) = self.open_checked(t, flags, Some(deny), Access::Read)?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::from_errno(e, &shown))?;
        if !is_regular(&stat) {
            let what = if is_dir(&stat) {
                "a directory; use list_directory"
            } else {
                "a special file (FIFO, socket or device)"
            };
            return Err(Error::new(ErrorCode::NotARegularFile, format!("'{shown}' is {what}")));
        }
        Ok(OpenedFile { file: File::from(fd), stat, rel })
    }

    /// Opens a file found by a directory walk: symlinks anywhere in the path are refused by the
    /// kernel, so the walked path is the real path and no `/proc` lookup is needed.
    pub fn open_walked_file(&self, root: &Arc<Root>, rel: &RelPath, deny: &DenyRules) -> Result<OpenedFile> {
        deny.check_in(root, rel, Access::Read)?;
        let fd = open_beneath(
            root.dir(),
            rel.for_syscall(),
            OFlags::RDONLY | OFlags::NOCTTY | OFlags::NONBLOCK,
            Links::Refuse,
            self.mode,
        )
        .map_err(|e| {
            let t = Target { root: root.clone(), rel: rel.clone() };
            self.refuse_protected_or(&t, Some(deny), Error::from_errno(e, &rel.display()))
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| Error::from_errno(e, &rel.display()))?;
        if deny.protected().is_same_file(&stat) {
            return Err(protected_error(&rel.display()));
        }
        if !is_regular(&stat) {
            return Err(Error::new(ErrorCode::NotARegularFile, format!("'{}' is not a regular file", rel.display())));
        }
        Ok(OpenedFile { file: File::from(fd), stat, rel: rel.clone() })
    }

    /// Checks that a walked path is still beneath the root with no symlink on the way
    /// (for reporting names found by a walk without opening their contents).
    pub fn confirm_walked(&self, root: &Arc<Root>, rel: &RelPath) -> bool {
        open_beneath(root.dir(), rel.for_syscall(), OFlags::PATH | OFlags::NOFOLLOW, Links::Refuse, self.mode).is_ok()
    }

    /// Opens a directory for listing.
    pub fn open_dir(&self, t: &Target, deny: &DenyRules) -> Result<OpenedDir> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY;
        let (fd, rel) = self.open_checked(t, flags, Some(deny), Access::Read)?;
        Ok(OpenedDir { fd, rel })
    }

    /// `stat` of the target (following in-root symlinks) and `lstat` of its final component.
    pub fn stat(&self, t: &Target, deny: &DenyRules) -> Result<(Stat, Option<Stat>, RelPath)> {
        let shown = t.shown();
        let (fd, rel) = self.open_checked(t, OFlags::PATH, Some(deny), Access::Read)?;
        let st = rustix::fs::fstat(&fd).map_err(|e| Error::from_errno(e, &shown))?;
        let link = match t.rel.split_last() {
            Some((parent, name)) => {
                let pfd = open_beneath(
                    t.root.dir(),
                    parent.for_syscall(),
                    OFlags::PATH | OFlags::DIRECTORY,
                    Links::FollowBeneath,
                    self.mode,
                )
                .map_err(|e| Error::from_errno(e, &shown))?;
                rustix::fs::statat(&pfd, name, AtFlags::SYMLINK_NOFOLLOW).ok()
            }
            None => None,
        };
        Ok((st, link, rel))
    }

    /// Opens with `openat2` beneath the root and applies the deny globs to the real path.
    ///
    /// Fast path: refuse symlinks, in which case the lexical path *is* the real path. Only when
    /// the path goes through an in-root symlink is it reopened following links, and the real path
    /// read back from `/proc/self/fd` so that `notes.txt -> .env` is still denied.
    fn open_checked(
        &self,
        t: &Target,
        flags: OFlags,
        deny: Option<&DenyRules>,
        access: Access,
    ) -> Result<(OwnedFd, RelPath)> {
        let shown = t.shown();
        if let Some(deny) = deny {
            deny.check_in(&t.root, &t.rel, access)?;
        }
        match open_beneath(t.root.dir(), t.rel.for_syscall(), flags, Links::Refuse, self.mode) {
            Ok(fd) => {
                check_not_protected_file(deny, fd.as_fd(), &shown)?;
                return Ok((fd, t.rel.clone()));
            }
            Err(Errno::LOOP) | Err(Errno::NOTDIR) | Err(Errno::XDEV) => {}
            Err(e) => return Err(Error::from_errno(e, &shown)),
        }
        // The name read back from /proc is only trustworthy if it still names the same inode: a
        // file replaced or unlinked after the open (an editor saving `.env`) reads back as
        // `.env (deleted)`, which no glob would match. Resolve again until the two agree.
        let mut tries = 0;
        let (fd, rel) = loop {
            let fd = open_beneath(t.root.dir(), t.rel.for_syscall(), flags, Links::FollowBeneath, self.mode)
                .map_err(|e| self.refuse_protected_or(t, deny, Error::from_errno(e, &shown)))?;
            let rel = t.root.relative_of(fd.as_fd()).ok_or_else(|| {
                Error::new(
                    ErrorCode::PathOutsideRoot,
                    format!("'{shown}' does not resolve to a location inside the root"),
                )
            })?;
            // A deny match on the name, even a stale one, is final: refusing is always safe.
            let stale = rel.as_path().to_str().and_then(|s| s.strip_suffix(" (deleted)")).map(Path::new);
            if let Some(d) = deny
                && (d.is_denied_in(&t.root, rel.as_path(), access)
                    || stale.is_some_and(|p| d.is_denied_in(&t.root, p, access)))
            {
                let protected =
                    d.is_protected_in(&t.root, rel.as_path()) || stale.is_some_and(|p| d.is_protected_in(&t.root, p));
                if protected {
                    return Err(protected_error(&shown));
                }
                return Err(Error::new(
                    ErrorCode::DeniedByGlob,
                    format!(
                        "'{shown}' is a link to a path on the server's deny list (secrets or git metadata); it cannot be used"
                    ),
                ));
            }
            if self.same_inode(&t.root, &rel, fd.as_fd()) {
                break (fd, rel);
            }
            tries += 1;
            if tries >= 16 {
                return Err(Error::new(
                    ErrorCode::Busy,
                    format!(
                        "'{shown}' keeps changing while it is opened (a link target is being replaced); retry the call"
                    ),
                ));
            }
        };
        check_not_protected_file(deny, fd.as_fd(), &shown)?;
        Ok((fd, rel))
    }

    /// `protected_path` instead of `err` when `t` could not be opened but leads, through
    /// in-root links, into Bastion's own state: the deepest ancestor that resolves is read back
    /// and the rest of the path appended. Without this, `link_to_state/missing` would answer
    /// `not_found` where `link_to_state/tokens.json` answers `protected_path`, telling the model
    /// which of Bastion's files exist.
    fn refuse_protected_or(&self, t: &Target, deny: Option<&DenyRules>, err: Error) -> Error {
        let Some(deny) = deny else { return err };
        if deny.protected().is_empty() {
            return err;
        }
        let mut ancestor = t.rel.split_last().map(|(p, _)| p);
        while let Some(dir) = ancestor {
            if let Ok(fd) = open_beneath(t.root.dir(), dir.for_syscall(), OFlags::PATH, Links::FollowBeneath, self.mode)
            {
                let Some(real) = t.root.relative_of(fd.as_fd()) else { return err };
                let rest = t.rel.as_path().strip_prefix(dir.as_path()).unwrap_or(t.rel.as_path());
                if deny.is_protected_in(&t.root, &real.as_path().join(rest)) {
                    return protected_error(&t.shown());
                }
                return err;
            }
            ancestor = dir.split_last().map(|(p, _)| p);
        }
        err
    }

    fn same_inode(&self, root: &Root, rel: &RelPath, fd: BorrowedFd<'_>) -> bool {
        let Ok(opened) = rustix::fs::fstat(fd) else { return false };
        let Ok(again) =
            open_beneath(root.dir(), rel.for_syscall(), OFlags::PATH | OFlags::NOFOLLOW, Links::Refuse, self.mode)
        else {
            return false;
        };
        rustix::fs::fstat(&again).is_ok_and(|st| st.st_dev == opened.st_dev && st.st_ino == opened.st_ino)
    }

    /// Opens the parent of `t` for a mutation and checks the write deny globs on the real path of
    /// the final component. The final component itself is never resolved.
    pub fn parent(&self, t: &Target, deny: &DenyRules) -> Result<ParentDir> {
        let shown = t.shown();
        let Some((parent, name)) = t.rel.split_last() else {
            return Err(Error::new(
                ErrorCode::InvalidPath,
                "the root itself cannot be created, changed, moved or deleted",
            ));
        };
        check_final_name(name, &shown)?;
        // The path as written is checked first, so a refused write never reveals (or asks the
        // model to create) a missing denied directory. Then the parent is resolved like any path
        // (in-root links allowed) and the real path of the parent plus the final name is checked.
        deny.check_in(&t.root, &t.rel, Access::Write)?;
        let (fd, rel) = self
            .open_checked(
                &Target { root: t.root.clone(), rel: parent },
                OFlags::RDONLY | OFlags::DIRECTORY,
                None,
                Access::Write,
            )
            .map_err(|e| self.refuse_protected_or(t, Some(deny), e))?;
        let p = ParentDir { fd, rel, name: name.to_os_string(), root: t.root.clone() };
        deny.check_in(&t.root, &p.child_rel(), Access::Write)?;
        Ok(p)
    }

    /// Creates every missing directory of `t` (like `mkdir -p`), each through its parent handle.
    /// Returns true when the final directory was created.
    pub fn create_dir_all(&self, t: &Target, deny: &DenyRules) -> Result<bool> {
        // Refuse before creating anything, so a refused call leaves no directories behind.
        deny.check_in(&t.root, &t.rel, Access::Write)?;
        let mut created = false;
        let mut so_far = RelPath::root();
        let comps: Vec<OsString> = t.rel.as_path().iter().map(OsStr::to_os_string).collect();
        for name in comps {
            so_far = so_far.join_name(&name);
            let step = Target { root: t.root.clone(), rel: so_far.clone() };
            match open_beneath(
                t.root.dir(),
                so_far.for_syscall(),
                OFlags::PATH | OFlags::DIRECTORY,
                Links::FollowBeneath,
                self.mode,
            ) {
                Ok(_) => {
                    created = false;
                    continue;
                }
                Err(Errno::NOENT) => {}
                Err(e) => return Err(self.refuse_protected_or(t, Some(deny), Error::from_errno(e, &so_far.display()))),
            }
            let p = self.parent(&step, deny)?;
            if let Some(st) = p.lstat()? {
                let what = if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
                    "a symlink that does not lead to a directory inside the root"
                } else {
                    "not a directory"
                };
                return Err(Error::new(
                    ErrorCode::NotADirectory,
                    format!("'{}' exists and is {what}", so_far.display()),
                ));
            }
            match rustix::fs::mkdirat(&p.fd, p.name.as_os_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => created = true,
                Err(e) => return Err(Error::from_errno(e, &so_far.display())),
            }
        }
        Ok(created)
    }

    /// Writes `data` to the final component of `p` atomically: a temporary file in the same
    /// directory, fsync, rename over the target, fsync the directory. A reader (or a crash) sees
    /// the old content or the new, never a torn file. Refuses symlinks, non-regular files and
    /// files with more than one hard link. The existing permission bits are kept.
    pub fn write_atomic(&self, p: &ParentDir, data: &[u8], create: CreateMode) -> Result<WriteOutcome> {
        let shown = p.child_rel().display();
        let existing = p.lstat()?;
        let mode = match (&existing, create) {
            (None, CreateMode::ReplaceExisting) => {
                return Err(Error::new(ErrorCode::NotFound, format!("'{shown}' does not exist")));
            }
            (Some(_), CreateMode::CreateNew) => {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!("'{shown}' already exists; pass overwrite=true to replace it"),
                ));
            }
            (Some(st), _) => {
                check_replaceable(st, &shown)?;
                // Like a write(2) by an unprivileged user, replacing content drops set-user-ID and
                // set-group-ID bits: new content must not inherit privileges.
                st.st_mode & 0o1777
            }
            (None, _) => 0o644,
        };
        let tmp = temp_name();
        let tmp_fd = rustix::fs::openat(
            &p.fd,
            tmp.as_os_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| Error::from_errno(e, &shown))?;
        let result = (|| -> std::result::Result<(), Errno> {
            let mut f = File::from(tmp_fd);
            f.write_all(data).map_err(|e| Errno::from_io_error(&e).unwrap_or(Errno::IO))?;
            rustix::fs::fchmod(&f, Mode::from_raw_mode(mode))?;
            rustix::fs::fsync(&f)?;
            let flags = if existing.is_none() { RenameFlags::NOREPLACE } else { RenameFlags::empty() };
            rustix::fs::renameat_with(&p.fd, tmp.as_os_str(), &p.fd, p.name.as_os_str(), flags)?;
            Ok(())
        })();
        if let Err(e) = result {
            let _ = rustix::fs::unlinkat(&p.fd, tmp.as_os_str(), AtFlags::empty());
            return Err(Error::from_errno(e, &shown));
        }
        // Durability of the rename itself; the data is already safe, so a failure here is not an
        // error for the caller.
        let _ = rustix::fs::fsync(&p.fd);
        Ok(WriteOutcome { created: existing.is_none(), mode })
    }

    /// Lists a directory's entries (unsorted, without `.`/`..`), never following symlinks.
    pub fn read_dir(&self, dir: BorrowedFd<'_>, shown: &str) -> Result<Vec<DirEntry>> {
        let iter = rustix::fs::Dir::read_from(dir).map_err(|e| Error::from_errno(e, shown))?;
        let mut out = Vec::new();
        for entry in iter {
            let entry = entry.map_err(|e| Error::from_errno(e, shown))?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let Ok(stat) = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) else { continue };
            out.push(DirEntry { name: name.to_os_string(), kind: EntryKind::from_mode(stat.st_mode), stat });
        }
        Ok(out)
    }

    /// Opens a subdirectory of an open directory without following a symlink.
    pub fn open_subdir(&self, dir: BorrowedFd<'_>, name: &OsStr, shown: &str) -> Result<OwnedFd> {
        rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::from_errno(e, shown))
    }

    /// Finds the first path beneath `dir` (relative `rel`) that is denied for writing, so that a
    /// directory holding secrets or git metadata is not moved or deleted wholesale.
    pub fn first_denied_inside(
        &self,
        root: &Root,
        dir: BorrowedFd<'_>,
        rel: &RelPath,
        deny: &DenyRules,
        budget: &mut usize,
    ) -> Result<Option<RelPath>> {
        for entry in self.read_dir(dir, &rel.display())? {
            if *budget == 0 {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!("'{}' holds too many entries to check; delete or move smaller parts", rel.display()),
                ));
            }
            *budget -= 1;
            let child = rel.join_name(&entry.name);
            if deny.is_denied_in(root, child.as_path(), Access::Write) {
                return Ok(Some(child));
            }
            if entry.kind == EntryKind::Directory {
                let sub = self.open_subdir(dir, &entry.name, &child.display())?;
                if let Some(found) = self.first_denied_inside(root, sub.as_fd(), &child, deny, budget)? {
                    return Ok(Some(found));
                }
            }
        }
        Ok(None)
    }

    /// Removes the final component of `p`. Directories need `recursive` unless empty. Symlinks
    /// are removed, never followed.
    pub fn remove(&self, p: &ParentDir, recursive: bool, deny: &DenyRules) -> Result<EntryKind> {
        let shown = p.child_rel().display();
        let Some(st) = p.lstat()? else {
            return Err(Error::new(ErrorCode::NotFound, format!("'{shown}' does not exist")));
        };
        let kind = EntryKind::from_mode(st.st_mode);
        if kind != EntryKind::Directory {
            rustix::fs::unlinkat(&p.fd, p.name.as_os_str(), AtFlags::empty())
                .map_err(|e| Error::from_errno(e, &shown))?;
            return Ok(kind);
        }
        if !recursive {
            rustix::fs::unlinkat(&p.fd, p.name.as_os_str(), AtFlags::REMOVEDIR)
                .map_err(|e| Error::from_errno(e, &shown))?;
            return Ok(kind);
        }
        if deny.protected().any_beneath(p.root.real_path(), p.child_rel().as_path()) {
            return Err(holds_protected(&shown, "nothing was deleted"));
        }
        let dir = self.open_subdir(p.fd.as_fd(), &p.name, &shown)?;
        let mut budget = 200_000;
        if let Some(found) = self.first_denied_inside(&p.root, dir.as_fd(), &p.child_rel(), deny, &mut budget)? {
            if deny.is_protected_in(&p.root, found.as_path()) {
                return Err(holds_protected(&shown, "nothing was deleted"));
            }
            return Err(Error::new(
                ErrorCode::DeniedByGlob,
                format!("'{shown}' contains '{}', which is on the deny list; nothing was deleted", found.display()),
            ));
        }
        self.remove_contents(dir.as_fd(), &shown)?;
        rustix::fs::unlinkat(&p.fd, p.name.as_os_str(), AtFlags::REMOVEDIR)
            .map_err(|e| Error::from_errno(e, &shown))?;
        Ok(kind)
    }

    fn remove_contents(&self, dir: BorrowedFd<'_>, shown: &str) -> Result<()> {
        for entry in self.read_dir(dir, shown)? {
            if entry.kind == EntryKind::Directory {
                let sub = self.open_subdir(dir, &entry.name, shown)?;
                self.remove_contents(sub.as_fd(), shown)?;
                rustix::fs::unlinkat(dir, entry.name.as_os_str(), AtFlags::REMOVEDIR)
                    .map_err(|e| Error::from_errno(e, shown))?;
            } else {
                rustix::fs::unlinkat(dir, entry.name.as_os_str(), AtFlags::empty())
                    .map_err(|e| Error::from_errno(e, shown))?;
            }
        }
        Ok(())
    }

    /// Renames `from` to `to` (each a parent handle plus a name). Without `overwrite` an existing
    /// destination is refused atomically (`RENAME_NOREPLACE`).
    pub fn rename(&self, from: &ParentDir, to: &ParentDir, overwrite: bool, deny: &DenyRules) -> Result<EntryKind> {
        let from_shown = from.child_rel().display();
        let to_shown = to.child_rel().display();
        let Some(st) = from.lstat()? else {
            return Err(Error::new(ErrorCode::NotFound, format!("'{from_shown}' does not exist")));
        };
        let kind = EntryKind::from_mode(st.st_mode);
        if kind == EntryKind::Directory {
            if deny.protected().any_beneath(from.root.real_path(), from.child_rel().as_path()) {
                return Err(holds_protected(&from_shown, "it cannot be moved"));
            }
            let dir = self.open_subdir(from.fd.as_fd(), &from.name, &from_shown)?;
            let mut budget = 200_000;
            if let Some(found) =
                self.first_denied_inside(&from.root, dir.as_fd(), &from.child_rel(), deny, &mut budget)?
            {
                if deny.is_protected_in(&from.root, found.as_path()) {
                    return Err(holds_protected(&from_shown, "it cannot be moved"));
                }
                return Err(Error::new(
                    ErrorCode::DeniedByGlob,
                    format!(
                        "'{from_shown}' contains '{}', which is on the deny list; it cannot be moved",
                        found.display()
                    ),
                ));
            }
        }
        if let Some(dst) = to.lstat()? {
            if !overwrite {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!("'{to_shown}' already exists; pass overwrite=true to replace it"),
                ));
            }
            if is_dir(&dst) {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!("'{to_shown}' is a directory; it is never replaced by a move"),
                ));
            }
        }
        let flags = if overwrite { RenameFlags::empty() } else { RenameFlags::NOREPLACE };
        rustix::fs::renameat_with(&from.fd, from.name.as_os_str(), &to.fd, to.name.as_os_str(), flags).map_err(
            |e| match e {
                Errno::EXIST => Error::new(ErrorCode::AlreadyExists, format!("'{to_shown}' already exists")),
                Errno::XDEV => Error::new(
                    ErrorCode::InvalidArgument,
                    "source and destination are on different filesystems (or roots); move within one root".to_string(),
                ),
                other => Error::from_errno(other, &from_shown),
            },
        )?;
        let _ = rustix::fs::fsync(&from.fd);
        let _ = rustix::fs::fsync(&to.fd);
        Ok(kind)
    }

    /// Narrows these roots to the ones a client declared: client roots inside a configured root
    /// become roots (opened beneath it); configured roots inside a client root stay. Nothing
    /// outside the configured roots is ever added. Returns the narrowed set and notes for the log.
    pub fn narrow(&self, client: &[(PathBuf, Option<String>)]) -> (Roots, Vec<String>) {
        let mut kept: Vec<Arc<Root>> = Vec::new();
        let mut notes = Vec::new();
        for (path, name) in client {
            let mut matched = false;
            for r in &self.roots {
                if r.real.starts_with(path) {
                    if !kept.iter().any(|k| Arc::ptr_eq(k, r)) {
                        kept.push(r.clone());
                    }
                    matched = true;
                    continue;
                }
                let Ok(rest) = path.strip_prefix(&r.real) else { continue };
                let Ok(rel) = RelPath::parse(rest) else { continue };
                match open_beneath(
                    r.dir(),
                    rel.for_syscall(),
                    OFlags::PATH | OFlags::DIRECTORY,
                    Links::Refuse,
                    self.mode,
                ) {
                    Ok(dir) => {
                        let base = name.clone().unwrap_or_else(|| {
                            path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| r.name.clone())
                        });
                        let mut unique = base.clone();
                        let mut n = 2;
                        while kept.iter().any(|k| k.name == unique) {
                            unique = format!("{base}-{n}");
                            n += 1;
                        }
                        let prefix = match &r.prefix {
                            Some(p) => p.join(rel.as_path()),
                            None => rel.as_path().to_path_buf(),
                        };
                        kept.push(Arc::new(Root {
                            name: unique,
                            real: r.real.join(rel.as_path()),
                            dir,
                            prefix: Some(prefix),
                        }));
                        matched = true;
                    }
                    Err(_) => notes.push(format!(
                        "client root {} is not a directory inside root '{}' (ignored)",
                        path.display(),
                        r.name
                    )),
                }
            }
            if !matched {
                notes.push(format!(
                    "client root {} is outside the configured roots (ignored: client roots can only narrow)",
                    path.display()
                ));
            }
        }
        (Roots { roots: kept, mode: self.mode }, notes)
    }
}

/// Refuses an opened file that is one of Bastion's own files under another name (a hard link
/// or bind mount of it), by device and inode.
fn check_not_protected_file(deny: Option<&DenyRules>, fd: BorrowedFd<'_>, shown: &str) -> Result<()> {
    let Some(deny) = deny else { return Ok(()) };
    if deny.protected().is_empty() {
        return Ok(());
    }
    match rustix::fs::fstat(fd) {
        Ok(st) if deny.protected().is_same_file(&st) => Err(protected_error(shown)),
        _ => Ok(()),
    }
}

/// A directory that holds Bastion's own state is never moved or deleted wholesale. The message
/// does not name what is inside: it may lie outside what the model can see.
fn holds_protected(shown: &str, outcome: &str) -> Error {
    Error::new(
        ErrorCode::ProtectedPath,
        format!(
            "'{shown}' holds Bastion's own state (its tokens, configuration, journal or program); {outcome}. This is a fixed boundary, not an error: do not retry it; act on the other entries one by one"
        ),
    )
}

fn check_replaceable(st: &Stat, shown: &str) -> Result<()> {
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {}
        FileType::Symlink => {
            return Err(Error::new(
                ErrorCode::NotARegularFile,
                format!("'{shown}' is a symlink; writes never follow links, write to the link's target path instead"),
            ));
        }
        FileType::Directory => {
            return Err(Error::new(ErrorCode::NotARegularFile, format!("'{shown}' is a directory")));
        }
        _ => {
            return Err(Error::new(
                ErrorCode::NotARegularFile,
                format!("'{shown}' is a special file (FIFO, socket or device)"),
            ));
        }
    }
    if st.st_nlink > 1 {
        return Err(Error::new(
            ErrorCode::HardlinkedFile,
            format!(
                "'{shown}' has {} hard links; writing it would also change a file elsewhere, so it is refused",
                st.st_nlink
            ),
        ));
    }
    Ok(())
}

fn temp_name() -> OsString {
    let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    OsString::from(format!(".bastion-tmp-{}-{n}-{nanos:x}", std::process::id()))
}
