//! Opening repositories beneath the roots, and turning the model's paths, revisions and branch
//! names into values libgit2 can be trusted with.
//!
//! Everything the model names passes through here once and comes out as a type the tools use
//! without re-checking: a [`Repo`] whose git directory, work tree and object stores all lie
//! beneath its root, [`Pathspecs`] that are literal paths beneath the work tree, and revisions
//! that libgit2's revparse accepted.

use std::ffi::OsStr;
use std::ops::{Deref, DerefMut};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bastion_policy::resolve::{Links, open_beneath};
use bastion_policy::{Access, Error, ErrorCode, Policy, RelPath, ResolveMode, Result, Root};
use git2::{Commit, Object, Repository, RepositoryOpenFlags};
use rustix::fs::OFlags;
use rustix::io::Errno;

use bastion_policy::error::truncate_for_message;

/// A repository opened beneath a root, after every containment check passed.
pub(crate) struct Repo {
    /// The libgit2 handle.
    pub(crate) git: Repository,
    /// The root the repository lies beneath.
    pub(crate) root: Arc<Root>,
    /// The work tree (the git directory for a bare repository), real, relative to the root.
    pub(crate) rel: RelPath,
    /// The same directory as a real absolute path.
    pub(crate) dir: PathBuf,
    /// How paths are resolved beneath the root.
    mode: ResolveMode,
}

/// Literal paths beneath a work tree, ready to hand to libgit2 as a pathspec.
#[derive(Debug, Default)]
pub(crate) struct Pathspecs {
    /// Paths relative to the work tree; empty means the whole tree.
    pub(crate) paths: Vec<PathBuf>,
}

impl Pathspecs {
    /// True when the whole work tree is meant.
    pub(crate) fn is_all(&self) -> bool {
        self.paths.is_empty()
    }
}

/// Opens the repository at `repo` (a directory beneath a root; default the root itself), or the
/// one that contains it, searching upwards no further than the root. With a `cache`, a
/// repository kept there is used again when it is still the same (see [`RepoCache`]), and the
/// handle goes back into the cache when dropped.
pub(crate) fn open<'c>(
    policy: &Policy,
    repo: Option<&str>,
    root: Option<&str>,
    cache: Option<&'c RepoCache>,
) -> Result<Opened<'c>> {
    let roots = policy.roots();
    let raw = repo.filter(|r| !r.is_empty()).unwrap_or(".");
    let target = roots.target(raw, root)?;
    let opened = roots.open_dir(&target, &policy.deny).map_err(|e| match e.code {
        ErrorCode::NotADirectory | ErrorCode::NotARegularFile => Error::new(
            ErrorCode::NotARepository,
            format!("'{}' is not a directory; repo names a repository directory", truncate_for_message(raw)),
        ),
        _ => e,
    })?;
    drop(opened.fd);
    let root_real = target.root.real_path().to_path_buf();
    let mut rel = opened.rel;
    loop {
        let dir = root_real.join(rel.as_path());
        if let Some(cache) = cache
            && let Some((repo, stamp)) = cache.take(&dir, &root_real, raw)
        {
            return Ok(Opened { repo: Some(repo), keep: Some((cache, dir, stamp)) });
        }
        match Repository::open_ext(&dir, RepositoryOpenFlags::NO_SEARCH, std::iter::empty::<&OsStr>()) {
            Ok(git) => {
                let repo = finish(git, target.root.clone(), roots.mode(), raw)?;
                let keep = cache.and_then(|c| Stamp::of(&repo.git, &dir).map(|s| (c, dir, s)));
                return Ok(Opened { repo: Some(repo), keep });
            }
            Err(e) if e.code() == git2::ErrorCode::NotFound => {}
            Err(e) if e.code() == git2::ErrorCode::Owner => return Err(not_owned(raw)),
            Err(e) => {
                return Err(Error::new(
                    ErrorCode::NotARepository,
                    format!(
                        "'{}' holds a git repository libgit2 cannot open: {}",
                        rel.display(),
                        scrub(e.message(), &root_real)
                    ),
                ));
            }
        }
        match rel.split_last() {
            Some((parent, _)) => rel = parent,
            None => break,
        }
    }
    Err(Error::new(
        ErrorCode::NotARepository,
        format!(
            "'{}' is not in a git repository beneath the root '{}' (repositories above a root are not used); pass repo = a repository directory inside the root. This server never creates repositories",
            truncate_for_message(raw),
            target.root.name()
        ),
    ))
}

fn not_owned(raw: &str) -> Error {
    Error::new(
        ErrorCode::RepositoryNotOwned,
        format!(
            "the repository at '{}' is owned by another user, so libgit2's ownership check refuses it (its configuration could run code as you); the operator can list it in safe.directory if it is trusted",
            truncate_for_message(raw)
        ),
    )
}

/// Checks that everything the repository reads or writes lies beneath the root: the git directory,
/// the common directory (for linked work trees), the work tree (`core.worktree` can point
/// anywhere) and the object alternates.
fn finish(git: Repository, root: Arc<Root>, mode: ResolveMode, raw: &str) -> Result<Repo> {
    let (dir, rel) = contained(&git, root.real_path(), raw)?;
    Ok(Repo { git, root, rel, dir, mode })
}

/// The containment checks of [`finish`]: the work tree (real) and its path relative to the root.
fn contained(git: &Repository, root_real: &Path, raw: &str) -> Result<(PathBuf, RelPath)> {
    let outside = |what: &str| {
        Error::new(
            ErrorCode::PathOutsideRoot,
            format!(
                "the repository at '{}' has {what} outside the root; only repositories wholly inside a root can be used",
                truncate_for_message(raw)
            ),
        )
    };
    let inside = |p: &Path| std::fs::canonicalize(p).is_ok_and(|c| c.starts_with(root_real));
    if !inside(git.path()) || !inside(git.commondir()) {
        return Err(outside("its git directory"));
    }
    let dir = match git.workdir() {
        Some(w) => w.to_path_buf(),
        None => git.path().to_path_buf(),
    };
    let dir = std::fs::canonicalize(&dir).map_err(|_| outside("its work tree"))?;
    let Ok(rel) = dir.strip_prefix(root_real) else {
        return Err(outside("its work tree (core.worktree)"));
    };
    let rel = RelPath::parse(rel)?;
    if !alternates_inside(&git.commondir().join("objects"), root_real, 0) {
        return Err(outside("object alternates"));
    }
    Ok((dir, rel))
}

/// Repositories kept open between read-only calls, so that libgit2's caches (parsed commits and
/// trees, pack indexes and delta bases, attribute files) serve the next call too.
///
/// A kept repository is used again only when everything libgit2 reads once, at open, is unchanged
/// ([`Stamp`]: the directory, its `.git`, the git, common and work-tree directories, the
/// configuration files, `commondir`, `gitdir`, the alternates list and the pack directory), and
/// after the containment checks of a fresh open pass again on it. One that fails either is dropped
/// and the repository opened afresh. Repositories not owned by this user (let in by
/// `safe.directory`) are never kept, so libgit2's ownership check runs on every call for them.
/// Write tools do not use the cache: they open afresh and their handles (whose index may hold
/// unwritten changes after a failure) are never kept. Configuration files pulled in by
/// `include.path` are not in the stamp: libgit2 re-reads them itself when they change, but keeps
/// the `core.*` values it has already looked up (file mode, autocrlf, ignore case) until the
/// repository is opened afresh; none of them lets a read tool reach outside the root.
#[derive(Default)]
pub(crate) struct RepoCache {
    kept: Mutex<Vec<Kept>>,
}

/// Most repositories kept open.
const KEPT_REPOS: usize = 4;

struct Kept {
    /// The directory it was opened at.
    dir: PathBuf,
    stamp: Stamp,
    repo: Repo,
}

impl RepoCache {
    /// The kept repository opened at `dir` beneath the root at `root_real`, if it is still the
    /// same; it leaves the cache until dropped.
    fn take(&self, dir: &Path, root_real: &Path, raw: &str) -> Option<(Repo, Stamp)> {
        let kept = {
            let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
            let at = kept.iter().position(|k| k.dir == dir && k.repo.root.real_path() == root_real)?;
            kept.remove(at)
        };
        let now = Stamp::of(&kept.repo.git, dir)?;
        if now != kept.stamp {
            return None;
        }
        let (real, rel) = contained(&kept.repo.git, root_real, raw).ok()?;
        (real == kept.repo.dir && rel == kept.repo.rel).then_some((kept.repo, kept.stamp))
    }

    fn put(&self, dir: PathBuf, stamp: Stamp, repo: Repo) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        kept.retain(|k| k.dir != dir || k.repo.root.real_path() != repo.root.real_path());
        kept.insert(0, Kept { dir, stamp, repo });
        kept.truncate(KEPT_REPOS);
    }
}

/// An open repository; goes back into the [`RepoCache`] it came from (if any) when dropped.
pub(crate) struct Opened<'c> {
    repo: Option<Repo>,
    keep: Option<(&'c RepoCache, PathBuf, Stamp)>,
}

impl Deref for Opened<'_> {
    type Target = Repo;

    fn deref(&self) -> &Repo {
        self.repo.as_ref().unwrap_or_else(|| unreachable!("the repository is taken only on drop"))
    }
}

impl DerefMut for Opened<'_> {
    fn deref_mut(&mut self) -> &mut Repo {
        self.repo.as_mut().unwrap_or_else(|| unreachable!("the repository is taken only on drop"))
    }
}

impl Drop for Opened<'_> {
    fn drop(&mut self) {
        if let (Some(repo), Some((cache, dir, stamp))) = (self.repo.take(), self.keep.take()) {
            cache.put(dir, stamp, repo);
        }
    }
}

/// What libgit2 reads only when it opens a repository, as it looks now: device, inode, mode and
/// owner of the directory opened, the git, common and work-tree directories; the same plus size,
/// modification and change times of `.git` (a directory, a gitlink file or a symbolic link), the
/// configuration files, `commondir`, `gitdir` and `objects/info/alternates` (or their absence);
/// and the modification time of `objects/pack`.
/// `None` when a directory is missing or owned by another user (such repositories are not kept).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Stamp(Vec<Option<FileId>>);

#[derive(Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    mode: u32,
    uid: u32,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    fn of(m: &std::fs::Metadata) -> Self {
        let dir = m.is_dir();
        // A directory's times change with every file made in it (lock files), so only its
        // identity and owner count.
        FileId {
            dev: m.dev(),
            ino: m.ino(),
            mode: m.mode(),
            uid: m.uid(),
            size: if dir { 0 } else { m.size() },
            mtime: if dir { (0, 0) } else { (m.mtime(), m.mtime_nsec()) },
            ctime: if dir { (0, 0) } else { (m.ctime(), m.ctime_nsec()) },
        }
    }
}

impl Stamp {
    fn of(git: &Repository, dir: &Path) -> Option<Stamp> {
        let me = rustix::process::geteuid().as_raw();
        let (gitdir, common) = (git.path(), git.commondir());
        let mut ids = Vec::with_capacity(12);
        for d in [dir, gitdir, common, git.workdir().unwrap_or(gitdir)] {
            let m = std::fs::metadata(d).ok()?;
            if m.uid() != me {
                return None;
            }
            ids.push(Some(FileId::of(&m)));
        }
        let files = [
            dir.join(".git"),
            gitdir.join("config"),
            gitdir.join("config.worktree"),
            gitdir.join("commondir"),
            gitdir.join("gitdir"),
            common.join("config"),
            common.join("objects").join("info").join("alternates"),
        ];
        ids.extend(files.iter().map(|f| std::fs::symlink_metadata(f).ok().map(|m| FileId::of(&m))));
        // The pack directory changes only when packs come or go (gc, repack, fetch). libgit2
        // notices new packs by itself but keeps deleted ones in its list, open, for as long as the
        // handle lives; so a repack opens the repository afresh and the old packs' space is given
        // back.
        let packs = std::fs::metadata(common.join("objects").join("pack")).ok();
        ids.push(packs.map(|m| FileId { mtime: (m.mtime(), m.mtime_nsec()), ..FileId::of(&m) }));
        Some(Stamp(ids))
    }
}

/// Whether every object store listed in `objects/info/alternates` (recursively, as deep as
/// libgit2 follows them) lies beneath the root.
fn alternates_inside(objects: &Path, root_real: &Path, depth: u32) -> bool {
    let Ok(text) = std::fs::read(objects.join("info").join("alternates")) else {
        return true;
    };
    if depth > 5 {
        return false;
    }
    text.split(|b| *b == b'\n').map(<[u8]>::trim_ascii).filter(|l| !l.is_empty() && !l.starts_with(b"#")).all(|line| {
        let path = objects.join(OsStr::from_bytes(line));
        std::fs::canonicalize(&path)
            .is_ok_and(|real| real.starts_with(root_real) && alternates_inside(&real, root_real, depth + 1))
    })
}

/// Replaces the root's absolute path in a libgit2 message, so messages name root-relative paths.
pub(crate) fn scrub(message: &str, root_real: &Path) -> String {
    let prefix = format!("{}/", root_real.display());
    message.replace(&prefix, "").replace(&root_real.display().to_string(), ".")
}

impl Repo {
    /// The repository as shown to the model: its directory relative to the root.
    pub(crate) fn shown(&self) -> String {
        self.rel.display()
    }

    /// The work tree, refusing a bare repository.
    pub(crate) fn workdir(&self) -> Result<&Path> {
        match self.git.workdir() {
            Some(_) => Ok(&self.dir),
            None => Err(Error::new(
                ErrorCode::NotARepository,
                format!(
                    "'{}' is a bare repository (no work tree); only log, show, branches and tags work on it",
                    self.shown()
                ),
            )),
        }
    }

    /// A libgit2 error met while `doing` something, as a Bastion error.
    pub(crate) fn err(&self, e: git2::Error, doing: &str) -> Error {
        let message = scrub(e.message(), self.root.real_path());
        let code = match e.code() {
            git2::ErrorCode::Owner => return not_owned(&self.shown()),
            git2::ErrorCode::Conflict | git2::ErrorCode::Uncommitted | git2::ErrorCode::Modified => {
                ErrorCode::WouldOverwriteChanges
            }
            git2::ErrorCode::MergeConflict | git2::ErrorCode::Unmerged => ErrorCode::MergeConflict,
            git2::ErrorCode::Locked => ErrorCode::Busy,
            git2::ErrorCode::NotFound => ErrorCode::NotFound,
            git2::ErrorCode::Exists => ErrorCode::AlreadyExists,
            git2::ErrorCode::InvalidSpec => ErrorCode::InvalidArgument,
            _ => ErrorCode::IoError,
        };
        Error::new(code, format!("{doing}: {message}"))
    }

    /// Resolves the model's paths to literal pathspecs beneath the work tree.
    ///
    /// Each path is relative to the work tree (or absolute inside it); `..` may not climb out;
    /// directories on the way may not be symbolic links (git does not look through them either,
    /// and a link could lead out of the root); `.git` may not be named; the policy's deny globs
    /// apply. `.` (or an empty list) means the whole work tree.
    pub(crate) fn pathspecs(&self, policy: &Policy, raw: &[String]) -> Result<Pathspecs> {
        let mut out = Pathspecs::default();
        let mut all = raw.is_empty();
        for p in raw {
            let rel = self.path(policy, p)?;
            if rel.as_os_str().is_empty() {
                all = true;
            } else {
                out.paths.push(rel);
            }
        }
        if all {
            out.paths.clear();
        }
        Ok(out)
    }

    /// One path of [`Repo::pathspecs`]; empty for the work tree itself.
    pub(crate) fn path(&self, policy: &Policy, raw: &str) -> Result<PathBuf> {
        let shown = truncate_for_message(raw);
        if raw.is_empty() {
            return Err(Error::new(
                ErrorCode::InvalidPath,
                "an empty path was given; use \".\" for the whole work tree",
            ));
        }
        if raw.as_bytes().contains(&0) {
            return Err(Error::new(ErrorCode::InvalidPath, "the path contains a NUL byte; paths cannot contain NUL"));
        }
        let as_path = Path::new(raw);
        let relative = if as_path.is_absolute() {
            as_path.strip_prefix(&self.dir).map_err(|_| {
                Error::new(
                    ErrorCode::PathOutsideRoot,
                    format!(
                        "'{shown}' is outside the repository's work tree; use a path relative to the repository's top-level directory"
                    ),
                )
            })?
        } else {
            as_path
        };
        let rel = RelPath::parse(relative).map_err(|e| match e.code {
            ErrorCode::PathOutsideRoot => Error::new(
                ErrorCode::PathOutsideRoot,
                format!(
                    "'{shown}' climbs out of the repository's work tree with '..'; paths are relative to the repository's top-level directory"
                ),
            ),
            _ => e,
        })?;
        if rel.as_path().components().any(|c| matches!(c, Component::Normal(n) if n.eq_ignore_ascii_case(".git"))) {
            return Err(Error::new(
                ErrorCode::DeniedByGlob,
                format!("'{shown}' names git metadata (.git); git tools work on the work tree's files only"),
            ));
        }
        let in_root = RelPath::parse(&self.rel.as_path().join(rel.as_path()))?;
        policy.deny.check_in(&self.root, &in_root, Access::Read)?;
        self.check_no_links(&in_root, &shown)?;
        self.check_final_link(&in_root, &shown)?;
        Ok(rel.as_path().to_path_buf())
    }

    /// Refuses a path whose existing parent directories include a symbolic link. Missing parents
    /// (a deleted directory) are fine: nothing can be reached through them.
    fn check_no_links(&self, in_root: &RelPath, shown: &str) -> Result<()> {
        let mut parent = in_root.split_last().map(|(p, _)| p);
        while let Some(dir) = parent {
            if dir == self.rel {
                // The work tree itself was resolved when the repository was opened.
                return Ok(());
            }
            match open_beneath(
                self.root.dir(),
                dir.for_syscall(),
                OFlags::PATH | OFlags::DIRECTORY,
                Links::Refuse,
                self.mode,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::NOENT) | Err(Errno::NOTDIR) => parent = dir.split_last().map(|(p, _)| p),
                Err(Errno::LOOP) | Err(Errno::XDEV) => {
                    return Err(Error::new(
                        ErrorCode::PathOutsideRoot,
                        format!(
                            "'{shown}' goes through a symbolic link to a directory; git does not follow links, name the path the link points to instead"
                        ),
                    ));
                }
                Err(e) => return Err(Error::from_errno(e, shown)),
            }
        }
        Ok(())
    }

    /// Refuses a path that is itself a symbolic link leading outside the root. (git stores a
    /// link as its target text, which is harmless, but naming one explicitly is how a model would
    /// try to reach what it points at.) Dangling links and links that stay inside are fine.
    fn check_final_link(&self, in_root: &RelPath, shown: &str) -> Result<()> {
        let is_link = std::fs::symlink_metadata(self.root.real_path().join(in_root.as_path()))
            .is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            return Ok(());
        }
        match open_beneath(self.root.dir(), in_root.for_syscall(), OFlags::PATH, Links::FollowBeneath, self.mode) {
            Err(Errno::XDEV) | Err(Errno::LOOP) => Err(Error::new(
                ErrorCode::PathOutsideRoot,
                format!("'{shown}' is a symbolic link leading outside the root; it cannot be used"),
            )),
            _ => Ok(()),
        }
    }

    /// The object a revision names.
    pub(crate) fn object(&self, spec: &str, what: &str) -> Result<Object<'_>> {
        check_revision(spec, what)?;
        self.git.revparse_single(spec).map_err(|e| bad_revision(spec, what, &e))
    }

    /// The commit a revision names (tags are peeled).
    pub(crate) fn commit(&self, spec: &str, what: &str) -> Result<Commit<'_>> {
        let object = self.object(spec, what)?;
        object.peel_to_commit().map_err(|_| {
            Error::new(
                ErrorCode::InvalidRevision,
                format!(
                    "{what} '{}' names a {}, not a commit; name a commit (a branch, tag, hash or HEAD~n)",
                    truncate_for_message(spec),
                    object.kind().map_or("object", |k| k.str())
                ),
            )
        })
    }

    /// The commit HEAD points at; `None` on an unborn branch (a repository without commits).
    pub(crate) fn head_commit(&self) -> Result<Option<Commit<'_>>> {
        match self.git.head() {
            Ok(head) => head.peel_to_commit().map(Some).map_err(|e| self.err(e, "reading HEAD")),
            Err(e) if matches!(e.code(), git2::ErrorCode::UnbornBranch | git2::ErrorCode::NotFound) => Ok(None),
            Err(e) => Err(self.err(e, "reading HEAD")),
        }
    }

    /// Whether a path inside the repository is Bastion's own state (skipped silently, like
    /// walks skip it).
    pub(crate) fn protected(&self, policy: &Policy, path: &Path) -> bool {
        policy.deny.is_protected_in(&self.root, &self.rel.as_path().join(path))
    }

    /// Whether the root-relative form of a path inside the repository is on the deny list.
    pub(crate) fn denied(&self, policy: &Policy, path: &Path) -> bool {
        policy.deny.is_denied_in(&self.root, &self.rel.as_path().join(path), Access::Read)
    }
}

/// Refuses revision strings that are empty, hold control characters, or start with `-` (which
/// every git program would read as an option).
pub(crate) fn check_revision(spec: &str, what: &str) -> Result<()> {
    let problem = if spec.is_empty() {
        "is empty"
    } else if spec.starts_with('-') {
        "starts with '-'; a revision never does (a branch literally named so can be given as refs/heads/<name>)"
    } else if spec.chars().any(char::is_control) {
        "contains control characters"
    } else if spec.len() > 1024 {
        "is longer than 1024 bytes"
    } else {
        return Ok(());
    };
    Err(Error::new(ErrorCode::InvalidRevision, format!("{what} '{}' {problem}", truncate_for_message(spec))))
}

/// The error for a revision libgit2 did not resolve.
pub(crate) fn bad_revision(spec: &str, what: &str, e: &git2::Error) -> Error {
    let why = match e.code() {
        git2::ErrorCode::Ambiguous => "is ambiguous; give more characters of the hash or a full reference name",
        git2::ErrorCode::InvalidSpec => "is not valid revision syntax",
        _ => "names nothing in this repository",
    };
    Error::new(
        ErrorCode::InvalidRevision,
        format!(
            "{what} '{}' {why}; use a branch or tag (see branches, tags), a hash from log, or HEAD~n",
            truncate_for_message(spec)
        ),
    )
}

/// Refuses branch names git would refuse, and any that starts with `-` or is `HEAD`.
pub(crate) fn check_branch_name(name: &str) -> Result<()> {
    let valid = !name.starts_with('-')
        && name != "HEAD"
        && name != "@"
        && !name.starts_with("refs/")
        && git2::Branch::name_is_valid(name).unwrap_or(false);
    if valid {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::InvalidReferenceName,
        format!(
            "'{}' is not a valid branch name (names cannot start with '-' or 'refs/', be HEAD or @, or contain spaces, '..', '~', '^', ':', '?', '*', '[', '\\\\' or control characters); use a short name like feature/login",
            truncate_for_message(name)
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revisions_starting_with_a_dash_are_refused() {
        for spec in ["-p", "--output=/tmp/x", "--format=x", "-", "", "a\nb", "HEAD\0"] {
            assert_eq!(check_revision(spec, "rev").unwrap_err().code, ErrorCode::InvalidRevision, "{spec:?}");
        }
        for spec in ["HEAD", "HEAD~3", "main", "v1.0^{commit}", "a..b", "refs/heads/--format=x"] {
            assert!(check_revision(spec, "rev").is_ok(), "{spec:?}");
        }
    }

    #[test]
    fn branch_names() {
        for name in ["-b", "--force", "HEAD", "a b", "a..b", "x~1", "refs/heads/x", "", "a:b", "@", "x.lock"] {
            assert_eq!(check_branch_name(name).map_err(|e| e.code), Err(ErrorCode::InvalidReferenceName), "{name:?}");
        }
        for name in ["main", "feature/login", "fix-1", "v2.0"] {
            assert!(check_branch_name(name).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn scrubbing_removes_the_root() {
        assert_eq!(scrub("failed to stat '/srv/p/a.txt'", Path::new("/srv/p")), "failed to stat 'a.txt'");
        assert_eq!(scrub("path '/srv/p' is bad", Path::new("/srv/p")), "path '.' is bad");
    }
}
