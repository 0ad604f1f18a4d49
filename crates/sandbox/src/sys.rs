//! The few system calls with no safe wrapper. Every `unsafe` block of the crate is here.
#![allow(unsafe_code)]

/// The Landlock ABI version of the running kernel (0: unavailable).
pub fn landlock_abi() -> u32 {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_long = 1;
    // SAFETY: landlock_create_ruleset(NULL, 0, VERSION) only returns a number; no memory is
    // passed and no descriptor is created.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0 as libc::size_t,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(ret).unwrap_or(0)
}

/// Result of [`fork`].
pub enum Forked {
    /// In the parent, with the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// `fork(2)`. Only called by the sandbox trampoline, which is single-threaded.
pub fn fork() -> std::io::Result<Forked> {
    // SAFETY: the trampoline process runs no other thread (it is started by exec and never
    // spawns one), so the child gets a consistent copy of the whole address space, including
    // allocator state; it goes on to exec or exit.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// Marks every descriptor from 3 up close-on-exec, so nothing inherited reaches the program.
pub fn cloexec_from_3() -> bool {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags of this process.
    let ret =
        unsafe { libc::syscall(libc::SYS_close_range, 3 as libc::c_uint, libc::c_uint::MAX, CLOSE_RANGE_CLOEXEC) };
    ret == 0
}

/// `unshare(2)` of the namespaces the sandbox uses. No network namespace: seccomp already
/// denies `socket(2)` when the profile allows no TCP port, and when it allows some, Landlock
/// limits connections to those ports (a network namespace would only add ~0.6 ms per command
/// and make the allowed ports unreachable).
///
/// `pid: false` keeps the host's pid namespace (the host server's inspection programs read every
/// process in `/proc`).
pub fn unshare_namespaces(pid: bool) -> std::io::Result<()> {
    use rustix::thread::UnshareFlags;
    let pid = if pid { UnshareFlags::NEWPID } else { UnshareFlags::empty() };
    let flags = UnshareFlags::NEWUSER | pid | UnshareFlags::NEWNS | UnshareFlags::NEWIPC | UnshareFlags::NEWUTS;
    // SAFETY: the trampoline is single-threaded and none of these flags unshares descriptors or
    // the filesystem context behind the back of other threads (the hazard `unshare_unsafe`
    // documents concerns CLONE_FILES/CLONE_FS with other threads sharing them).
    unsafe { rustix::thread::unshare_unsafe(flags) }.map_err(std::io::Error::from)
}

/// Drops every capability from the bounding set, so no later `execve` (of a setuid-root or
/// file-capability binary, or as uid 0) can gain one. Returns whether all drops succeeded.
pub fn drop_capability_bounding_set() -> bool {
    let mut ok = true;
    for cap in 0..64 {
        // SAFETY: PR_CAPBSET_DROP takes an integer and changes only this thread's bounding set.
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if ret != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
            ok = false;
        }
    }
    ok
}

/// `mount_setattr(2)` with `AT_RECURSIVE`: sets or clears the read-only flag of the mount at
/// `path` and every mount beneath it.
pub fn set_mount_readonly(path: &std::path::Path, readonly: bool) -> std::io::Result<()> {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let (attr_set, attr_clr) = if readonly { (MOUNT_ATTR_RDONLY, 0) } else { (0, MOUNT_ATTR_RDONLY) };
    let attr = MountAttr { attr_set, attr_clr, propagation: 0, userns_fd: 0 };
    let c_path = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
        .map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: the path is a valid NUL-terminated string and `attr` a live, correctly sized
    // `struct mount_attr` for the duration of the call; the kernel only reads both.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            AT_RECURSIVE,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
}
