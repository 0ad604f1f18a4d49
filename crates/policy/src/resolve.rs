//! Opening paths beneath a root directory handle.
//!
//! The kernel does the confinement: `openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)` refuses
//! `..` above the root, absolute paths and symlinks that lead out, atomically with the open, so
//! there is no check-then-use window. Where `openat2` is missing (kernels before 5.6, or a seccomp
//! profile that blocks it) the same semantics are rebuilt by walking one component at a time with
//! `O_NOFOLLOW` and resolving in-root relative symlinks by hand.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// How paths are resolved beneath a root.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResolveMode {
    /// `openat2` when the kernel has it, else the walk (detected once per process).
    Auto,
    /// Always the component-by-component `O_NOFOLLOW` walk (used by tests to cover the fallback).
    Walk,
}

const OPENAT2_UNKNOWN: u8 = 0;
const OPENAT2_YES: u8 = 1;
const OPENAT2_NO: u8 = 2;
static OPENAT2: AtomicU8 = AtomicU8::new(OPENAT2_UNKNOWN);

/// Whether this process resolves with `openat2` (reported at start-up).
pub fn openat2_available() -> bool {
    match OPENAT2.load(Ordering::Relaxed) {
        OPENAT2_YES => true,
        OPENAT2_NO => false,
        _ => {
            let probe = rustix::fs::openat2(
                rustix::fs::CWD,
                ".",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH,
            );
            let yes = !matches!(probe, Err(Errno::NOSYS) | Err(Errno::PERM));
            OPENAT2.store(if yes { OPENAT2_YES } else { OPENAT2_NO }, Ordering::Relaxed);
            yes
        }
    }
}

/// How strictly symlinks inside the root are treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Follow symlinks that stay inside the root.
    FollowBeneath,
    /// Refuse any symlink anywhere in the path (`ELOOP`). Used on paths produced by a directory
    /// walk, where the lexical path is then guaranteed to be the real path.
    Refuse,
}

/// Opens `rel` (relative, normalised, `.` for the root itself) beneath `root`.
///
/// `flags` must not include `O_CREAT`: files are only ever created through a parent handle and
/// one final name (see [`crate::Roots`]). `O_CLOEXEC` is always added.
pub fn open_beneath(
    root: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
    links: Links,
    mode: ResolveMode,
) -> Result<OwnedFd, Errno> {
    debug_assert!(!flags.contains(OFlags::CREATE));
    let flags = flags | OFlags::CLOEXEC;
    if mode == ResolveMode::Auto && openat2_available() {
        let mut resolve = ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS;
        if links == Links::Refuse {
            resolve |= ResolveFlags::NO_SYMLINKS;
        }
        // EAGAIN means a rename somewhere on the host raced the lookup; the kernel asks us to
        // retry. A handful of tries is what cap-std does as well.
        let mut tries = 0;
        loop {
            match rustix::fs::openat2(root, rel, flags, Mode::empty(), resolve) {
                Err(Errno::AGAIN) if tries < 8 => tries += 1,
                Err(Errno::NOSYS) => {
                    OPENAT2.store(OPENAT2_NO, Ordering::Relaxed);
                    return walk(root, rel, flags, links);
                }
                other => return other,
            }
        }
    }
    walk(root, rel, flags, links)
}

/// Symlinks followed per resolution before giving up, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// The fallback resolver: one component at a time, never letting the kernel follow a link.
fn walk(root: BorrowedFd<'_>, rel: &Path, flags: OFlags, links: Links) -> Result<OwnedFd, Errno> {
    let final_nofollow = flags.contains(OFlags::NOFOLLOW);
    let mut pending: VecDeque<OsString> = components(rel)?;
    // Directory handles beneath the root; empty means "at the root".
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut followed = 0usize;

    loop {
        let Some(name) = pending.pop_front() else {
            // Path ended at a directory (root, or after '..'): open it with the caller's flags.
            let cur = stack.last().map(|fd| fd.as_fd()).unwrap_or(root);
            return rustix::fs::openat(cur, ".", flags, Mode::empty());
        };
        if name.as_bytes() == b".." {
            if stack.pop().is_none() {
                return Err(Errno::XDEV);
            }
            continue;
        }
        let cur = stack.last().map(|fd| fd.as_fd()).unwrap_or(root);
        let is_last = pending.is_empty();
        let open_flags = if is_last {
            flags | OFlags::NOFOLLOW
        } else {
            OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let opened = rustix::fs::openat(cur, name.as_os_str(), open_flags, Mode::empty());
        // With O_NOFOLLOW a symlink either fails (ELOOP, or ENOTDIR with O_DIRECTORY) or, with
        // O_PATH, opens the link itself. In every case, find out whether it is a link.
        let is_link = match &opened {
            Ok(fd) => rustix::fs::fstat(fd).map(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)?,
            Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                let st = rustix::fs::statat(cur, name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW)?;
                FileType::from_raw_mode(st.st_mode) == FileType::Symlink
            }
            Err(_) => false,
        };
        if is_link && !(is_last && final_nofollow) {
            if links == Links::Refuse {
                return Err(Errno::LOOP);
            }
            followed += 1;
            if followed > MAX_LINKS {
                return Err(Errno::LOOP);
            }
            let target = rustix::fs::readlinkat(cur, name.as_os_str(), Vec::new())?;
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            if target.is_absolute() {
                // RESOLVE_BENEATH refuses absolute link targets too.
                return Err(Errno::XDEV);
            }
            let mut expanded = components(&target)?;
            expanded.extend(pending.drain(..));
            pending = expanded;
            continue;
        }
        let fd = opened?;
        if is_last {
            return Ok(fd);
        }
        stack.push(fd);
    }
}

fn components(p: &Path) -> Result<VecDeque<OsString>, Errno> {
    let mut out = VecDeque::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => out.push_back(OsString::from("..")),
            Component::Normal(n) => out.push_back(n.to_os_string()),
            Component::RootDir | Component::Prefix(_) => return Err(Errno::XDEV),
        }
    }
    Ok(out)
}

/// The real path of an open descriptor, from `/proc/self/fd`. `None` when `/proc` is unavailable.
pub fn real_path(fd: BorrowedFd<'_>) -> Option<PathBuf> {
    use std::os::fd::AsRawFd;
    let link = format!("/proc/self/fd/{}", fd.as_raw_fd());
    std::fs::read_link(link).ok()
}
