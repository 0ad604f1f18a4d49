//! The single-threaded trampoline: `<exe> __sandbox-exec <spec-json>`.

use std::ffi::OsString;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};

use landlock::{
    ABI, Access, AccessFs, AccessNet, CompatLevel, Compatible, NetPort, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, Scope, path_beneath_rules,
};
use rustix::process::{Resource, Rlimit, Signal};

use super::sys::{self, Forked};
use super::{Spec, Status, seccomp};

/// The first argument that turns a Bastion binary into the sandbox trampoline.
pub const SANDBOX_ARG: &str = "__sandbox-exec";

/// Exit code when the sandbox could not be set up (the program never ran).
const SETUP_FAILED: i32 = 125;
/// Exit code when the program could not be executed.
const EXEC_FAILED: i32 = 127;

/// If this process was started as the trampoline, sets up the sandbox and executes the command
/// (never returning). Call it first thing in `main`, before any runtime or thread starts.
pub fn maybe_run_trampoline() {
    let mut args = std::env::args_os();
    if args.nth(1).as_deref() != Some(std::ffi::OsStr::new(SANDBOX_ARG)) {
        return;
    }
    let spec: Spec = match args.next().map(OsString::into_string) {
        Some(Ok(json)) => match serde_json::from_str(&json) {
            Ok(spec) => spec,
            Err(e) => fail(&format!("bad sandbox specification: {e}")),
        },
        _ => fail("missing sandbox specification"),
    };
    run(spec)
}

fn fail(msg: &str) -> ! {
    let _ = writeln!(std::io::stderr(), "bastion-sandbox: {msg}");
    std::process::exit(SETUP_FAILED)
}

fn run(spec: Spec) -> ! {
    let mut status = Status { landlock_abi: sys::landlock_abi(), landlock: "none".into(), ..Default::default() };
    // A session of its own: no controlling terminal, and one process group the server can kill.
    let _ = rustix::process::setsid();
    die_with_parent(spec.parent_pid);
    if let Err(e) = std::env::set_current_dir(&spec.cwd) {
        fail(&format!("cannot enter the working directory: {e}"));
    }
    if spec.namespaces {
        enter_namespaces(&mut status, !spec.host_proc);
        if status.userns {
            confine_mounts(&spec, &mut status);
        }
    }
    if !spec.hidden_paths.is_empty() {
        if !status.userns {
            fail(
                "Bastion's own state lies beneath the command's directories and no mount namespace is available to hide it",
            );
        }
        if let Err(e) = hide_paths(&spec.hidden_paths, &spec.cwd) {
            fail(&format!("cannot hide Bastion's own state from the command: {e}"));
        }
    }
    set_rlimits(&spec);
    status.capabilities_dropped = drop_capabilities();
    status.no_new_privs = rustix::thread::set_no_new_privs(true).is_ok();
    if spec.landlock {
        apply_landlock(&spec, &mut status);
    }
    if spec.seccomp {
        match seccomp::apply(seccomp::Net::of(&spec)) {
            Ok(()) => status.seccomp = true,
            Err(e) => status.notes.push(e),
        }
    }
    if !sys::cloexec_from_3() {
        status.notes.push("close_range is unavailable; inherited descriptors rely on close-on-exec".into());
    }
    if spec.probe {
        let json = serde_json::to_string(&status).unwrap_or_default();
        let _ = writeln!(std::io::stdout(), "{json}");
        std::process::exit(0);
    }
    let err = std::process::Command::new(&spec.program)
        .arg0(&spec.argv0)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .exec();
    let _ = writeln!(std::io::stderr(), "bastion-sandbox: cannot run {}: {err}", spec.argv0);
    std::process::exit(EXEC_FAILED)
}

/// Dies with the server. The server spawns from its main thread, so the "parent" the kernel
/// watches is the server itself; if the server is already gone, stop now.
fn die_with_parent(parent: i32) {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    if rustix::process::getppid().map(|p| p.as_raw_nonzero().get()) != Some(parent) {
        fail("the server that started this command has exited");
    }
}

/// New user, pid, mount, ipc and uts namespaces; the command then runs as pid 1 of the
/// new pid namespace in a forked child, so when it dies (or is killed) the kernel kills every
/// process left in the namespace. This process stays outside as the waiting parent.
///
/// With `pid: false` (`Spec::host_proc`) there is no pid namespace, no fork and no private
/// `/proc`: the command sees the host's processes.
fn enter_namespaces(status: &mut Status, pid: bool) {
    let uid = rustix::process::getuid().as_raw();
    let gid = rustix::process::getgid().as_raw();
    if let Err(e) = sys::unshare_namespaces(pid) {
        status.notes.push(format!("namespaces unavailable: {e}"));
        return;
    }
    let maps = std::fs::write("/proc/self/setgroups", "deny")
        .and_then(|()| std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1")))
        .and_then(|()| std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1")));
    if let Err(e) = maps {
        fail(&format!("cannot map the user namespace: {e}"));
    }
    use rustix::mount::{MountFlags, MountPropagationFlags};
    if !pid {
        // No mount made for the command may reach the host's namespace.
        if let Err(e) = rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC) {
            fail(&format!("cannot make the mounts private: {e}"));
        }
        status.userns = true;
        return;
    }
    match sys::fork() {
        Err(e) => fail(&format!("cannot fork into the pid namespace: {e}")),
        Ok(Forked::Parent(child)) => wait_and_exit(child),
        Ok(Forked::Child) => {}
    }
    // pid 1 of the new namespace: die with the trampoline, which dies with the server. (The
    // parent is outside the namespace, so getppid() says 0 here; a trampoline killed before
    // this line takes this process along anyway, as both are in the group the server kills.)
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
    status.userns = true;
    // A /proc of this pid namespace: the command sees only its own processes.
    let private = rustix::mount::mount_change("/", MountPropagationFlags::PRIVATE | MountPropagationFlags::REC);
    let proc = private.and_then(|()| {
        rustix::mount::mount("proc", "/proc", "proc", MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC, None)
    });
    match proc {
        Ok(()) => status.private_proc = true,
        Err(e) => status.notes.push(format!("could not mount a private /proc: {e}")),
    }
}

/// Makes every mount read-only except the writable paths (bind-mounted onto themselves first so
/// they are mounts of their own), then the read-only paths inside them. Landlock does not govern
/// chmod, utimes or extended attributes; a read-only mount does.
fn confine_mounts(spec: &Spec, status: &mut Status) {
    let result = (|| -> std::io::Result<()> {
        for p in spec.write_paths.iter().filter(|p| p.exists()) {
            rustix::mount::mount_bind_recursive(p, p)?;
        }
        sys::set_mount_readonly(Path::new("/"), true)?;
        for p in spec.write_paths.iter().filter(|p| p.exists()) {
            sys::set_mount_readonly(p, false)?;
        }
        for p in spec.readonly_paths.iter().filter(|p| p.exists()) {
            rustix::mount::mount_bind_recursive(p, p)?;
            sys::set_mount_readonly(p, true)?;
        }
        Ok(())
    })();
    // The working directory was entered before the bind mounts: enter it again so it names the
    // writable mount, not the read-only one underneath.
    let result = result.and_then(|()| std::env::set_current_dir(&spec.cwd));
    match result {
        Ok(()) => status.readonly_mounts = true,
        Err(e) => status.notes.push(format!("could not make the other mounts read-only: {e}")),
    }
}

/// Covers each path with nothing: a directory with an empty read-only tmpfs, a file with
/// `/dev/null` (reads see an empty file, writes vanish). Paths that do not exist are skipped: a
/// command that creates one makes its own file, not Bastion's. Done in the command's mount
/// namespace, before Landlock, so the host's view is untouched and the command cannot undo it
/// (no capabilities, and Landlock forbids mount changes).
fn hide_paths(paths: &[PathBuf], cwd: &Path) -> std::io::Result<()> {
    use rustix::mount::MountFlags;
    for p in paths {
        let Ok(meta) = std::fs::symlink_metadata(p) else { continue };
        if meta.is_dir() {
            rustix::mount::mount(
                "tmpfs",
                p,
                "tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"size=4k,mode=0555",
            )?;
        } else {
            rustix::mount::mount_bind(Path::new("/dev/null"), p)?;
            sys::set_mount_readonly(p, true)?;
        }
    }
    // The working directory may be (beneath) a covered path: enter it again so it names what
    // the command may see.
    std::env::set_current_dir(cwd)
}

fn wait_and_exit(child: i32) -> ! {
    let Some(pid) = rustix::process::Pid::from_raw(child) else { std::process::exit(SETUP_FAILED) };
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, st))) => {
                if let Some(code) = st.exit_status() {
                    std::process::exit(code);
                }
                if let Some(sig) = st.terminating_signal() {
                    std::process::exit(128 + sig);
                }
            }
            Ok(None) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => std::process::exit(SETUP_FAILED),
        }
    }
}

fn set_rlimits(spec: &Spec) {
    let r = &spec.rlimits;
    let mib = |v: u64| v.saturating_mul(1 << 20);
    let mut limits = vec![
        (Resource::Cpu, r.cpu_seconds),
        (Resource::Fsize, mib(r.file_size_mib)),
        (Resource::Nofile, r.open_files),
        (Resource::Core, 0),
    ];
    if r.address_space_mib > 0 {
        limits.push((Resource::As, mib(r.address_space_mib)));
    }
    for (resource, value) in limits {
        let _ = rustix::process::setrlimit(resource, Rlimit { current: Some(value), maximum: Some(value) });
    }
}

fn drop_capabilities() -> bool {
    let had_none = rustix::thread::capabilities(None)
        .is_ok_and(|c| c.effective.is_empty() && c.permitted.is_empty() && c.inheritable.is_empty());
    let bounding = sys::drop_capability_bounding_set();
    let empty = rustix::thread::CapabilitySet::empty();
    let cleared = rustix::thread::set_capabilities(
        None,
        rustix::thread::CapabilitySets { effective: empty, permitted: empty, inheritable: empty },
    )
    .is_ok();
    (bounding && cleared) || had_none
}

/// Files every program needs to start: the dynamic linker's cache, users and groups for name
/// lookups, time zones, TLS roots. Not the whole of /etc (it holds shadow and keys).
const ETC_READABLE: &[&str] = &[
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/nsswitch.conf",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/resolv.conf",
    "/etc/gai.conf",
    "/etc/protocols",
    "/etc/services",
    "/etc/ssl/certs",
    "/etc/ssl/openssl.cnf",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/os-release",
    "/etc/debian_version",
    "/etc/alternatives",
    "/etc/terminfo",
    "/etc/inputrc",
    "/etc/locale.alias",
    "/etc/python3",
    "/etc/npmrc",
    "/etc/papersize",
];

/// System directories that hold programs and libraries.
const SYSTEM_READABLE: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt",
    "/proc",
    "/sys/devices/system/cpu",
    "/sys/fs/cgroup",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

fn apply_landlock(spec: &Spec, status: &mut Status) {
    let abi = ABI::V6;
    let existing = |paths: Vec<PathBuf>| -> Vec<PathBuf> { paths.into_iter().filter(|p| p.exists()).collect() };
    let read: Vec<PathBuf> = existing(
        SYSTEM_READABLE
            .iter()
            .chain(ETC_READABLE)
            .map(PathBuf::from)
            .chain(spec.read_paths.iter().cloned())
            .chain([spec.program.clone()])
            .collect(),
    );
    let write: Vec<PathBuf> = existing(spec.write_paths.iter().cloned().chain([PathBuf::from("/dev/null")]).collect());
    let result = (|| -> Result<RulesetStatus, landlock::RulesetError> {
        let mut ruleset =
            Ruleset::default().set_compatibility(CompatLevel::BestEffort).handle_access(AccessFs::from_all(abi))?;
        // With `network`, TCP is not handled at all (any port); otherwise only the listed ports.
        if !spec.network {
            ruleset = ruleset.handle_access(AccessNet::from_all(abi))?;
        }
        let mut created = ruleset
            .scope(Scope::from_all(abi))?
            .create()?
            .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))?
            .add_rules(path_beneath_rules(&write, AccessFs::from_all(abi)))?;
        for port in &spec.tcp_connect {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
        Ok(created.restrict_self()?.ruleset)
    })();
    match result {
        Ok(RulesetStatus::FullyEnforced) => status.landlock = "full".into(),
        Ok(RulesetStatus::PartiallyEnforced) => status.landlock = "partial".into(),
        Ok(RulesetStatus::NotEnforced) => status.notes.push("Landlock is not enforced by this kernel".into()),
        Err(e) => status.notes.push(format!("Landlock: {e}")),
    }
    status.scoped = status.landlock_active() && status.landlock_abi >= 6;
    status.tcp_rules = status.landlock_active() && status.landlock_abi >= 4 && !spec.network;
}
