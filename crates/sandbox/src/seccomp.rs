//! The seccomp deny-list: the gaps Landlock leaves on current kernels (UDP, pathname UNIX
//! sockets) and the kernel surfaces a build or test never needs (namespaces, mounts, ptrace,
//! bpf, io_uring, keyrings, modules). Denied calls fail with `EPERM`; `clone3` fails with `ENOSYS`
//! so libc falls back to `clone`, whose flags a filter can read.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule, TargetArch,
};

const ALWAYS_DENIED: &[libc::c_long] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_fsopen,
    libc::SYS_fsmount,
    libc::SYS_fsconfig,
    libc::SYS_fspick,
    libc::SYS_move_mount,
    libc::SYS_open_tree,
    libc::SYS_mount_setattr,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_vhangup,
    libc::SYS_landlock_create_ruleset,
];

const CLONE_NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWCGROUP as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    0x80, // CLONE_NEWTIME
];

fn arch() -> Result<TargetArch, String> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| format!("seccomp: unsupported architecture: {e:?}"))
}

fn cond(arg: u8, len: SeccompCmpArgLen, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, len, op, value).map_err(|e| format!("seccomp condition: {e}"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp rule: {e}"))
}

/// Which sockets a sandboxed program may open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    /// None (`socketpair(2)` keeps working for pipes between processes).
    None,
    /// `AF_INET`/`AF_INET6` stream sockets; Landlock then decides the ports.
    Tcp,
    /// `AF_INET`/`AF_INET6` of any kind but raw (UDP for name resolution).
    Internet,
    /// `AF_UNIX` and `AF_NETLINK` only, no network (the host server's D-Bus and netlink
    /// readers: `systemctl`, `ss`, `ip`).
    Local,
}

impl Net {
    /// What `spec` asks for.
    pub fn of(spec: &super::Spec) -> Net {
        if spec.network {
            Net::Internet
        } else if !spec.tcp_connect.is_empty() {
            Net::Tcp
        } else if spec.local_sockets {
            Net::Local
        } else {
            Net::None
        }
    }
}

/// The two filters (EPERM list, then `clone3` → ENOSYS). Sockets as `net` says; UNIX and
/// netlink sockets only with `Local`, packet, vsock and bluetooth sockets never.
pub fn filters(net: Net) -> Result<Vec<BpfProgram>, String> {
    let arch = arch()?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for nr in ALWAYS_DENIED {
        rules.insert(*nr, Vec::new());
    }
    let mut clone_rules = Vec::new();
    for flag in CLONE_NAMESPACE_FLAGS {
        clone_rules.push(rule(vec![cond(0, SeccompCmpArgLen::Qword, SeccompCmpOp::MaskedEq(*flag), *flag)?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let mut ioctl_rules = Vec::new();
    for request in [libc::TIOCSTI, libc::TIOCLINUX] {
        ioctl_rules.push(rule(vec![cond(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, request)?])?);
    }
    rules.insert(libc::SYS_ioctl, ioctl_rules);
    if net == Net::None {
        rules.insert(libc::SYS_socket, Vec::new());
    } else if net == Net::Local {
        let not = |domain: i32| cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, domain as u64);
        rules.insert(libc::SYS_socket, vec![rule(vec![not(libc::AF_UNIX)?, not(libc::AF_NETLINK)?])?]);
    } else {
        let mut socket_rules = Vec::new();
        for domain in [libc::AF_UNIX, libc::AF_NETLINK, libc::AF_PACKET, libc::AF_VSOCK, libc::AF_BLUETOOTH] {
            socket_rules.push(rule(vec![cond(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, domain as u64)?])?);
        }
        // Only stream sockets for `Tcp` (Landlock has no UDP rules yet); never raw sockets.
        let kinds: &[libc::c_int] =
            if net == Net::Tcp { &[libc::SOCK_DGRAM, libc::SOCK_RAW, libc::SOCK_SEQPACKET] } else { &[libc::SOCK_RAW] };
        for kind in kinds {
            socket_rules.push(rule(vec![cond(
                1,
                SeccompCmpArgLen::Dword,
                SeccompCmpOp::MaskedEq(0xf),
                *kind as u64,
            )?])?);
        }
        rules.insert(libc::SYS_socket, socket_rules);
    }
    let deny = SeccompFilter::new(rules, SeccompAction::Allow, SeccompAction::Errno(libc::EPERM as u32), arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    let mut clone3 = BTreeMap::new();
    clone3.insert(libc::SYS_clone3, Vec::new());
    let enosys = SeccompFilter::new(clone3, SeccompAction::Allow, SeccompAction::Errno(libc::ENOSYS as u32), arch)
        .map_err(|e| format!("seccomp filter: {e}"))?;
    let first: BpfProgram = deny.try_into().map_err(|e| format!("seccomp compile: {e}"))?;
    let second: BpfProgram = enosys.try_into().map_err(|e| format!("seccomp compile: {e}"))?;
    Ok(vec![first, second])
}

/// Installs the filters on the calling thread (inherited by every child). Needs
/// no-new-privileges.
pub fn apply(net: Net) -> Result<(), String> {
    for program in filters(net)? {
        seccompiler::apply_filter(&program).map_err(|e| format!("seccomp install: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_network_setting_compiles_and_follows_the_spec() {
        for net in [Net::None, Net::Tcp, Net::Internet, Net::Local] {
            assert_eq!(filters(net).unwrap().len(), 2, "{net:?}");
        }
        let mut spec = crate::Spec::default();
        assert_eq!(Net::of(&spec), Net::None);
        spec.tcp_connect = vec![5432];
        assert_eq!(Net::of(&spec), Net::Tcp);
        spec.network = true;
        assert_eq!(Net::of(&spec), Net::Internet);
        // More rules with ports only than with the whole network: UDP is denied there.
        assert!(filters(Net::Tcp).unwrap()[0].len() > filters(Net::Internet).unwrap()[0].len());
    }
}
