//! Facts read straight from the kernel's files (`/proc`, `/etc/os-release`, the mount table,
//! `statvfs`) by the server itself: nothing here runs a program or writes anything, and the
//! server sees what its user may see (another user's sockets have no owner it can name).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use schemars::JsonSchema;
use serde::Serialize;

/// One listening TCP socket or bound UDP socket.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Listener {
    /// `tcp`, `tcp6`, `udp` or `udp6`.
    pub proto: String,
    /// Local address (`0.0.0.0`, `::`, `127.0.0.1`, …).
    pub address: String,
    /// Local port.
    pub port: u16,
    /// The processes holding it (empty when the server may not see them).
    pub owners: Vec<Owner>,
    #[serde(skip)]
    #[schemars(skip)]
    inode: u64,
}

/// A process holding a socket.
#[derive(Clone, Debug, Serialize, JsonSchema, PartialEq, Eq)]
pub struct Owner {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub command: String,
    /// User name (or uid).
    pub user: String,
    /// The systemd unit it runs in, when it runs in one.
    pub unit: Option<String>,
}

fn read(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// `/proc/net/{tcp,tcp6}` in LISTEN state and `/proc/net/{udp,udp6}` bound, with owners.
pub fn listeners() -> Vec<Listener> {
    let mut out = Vec::new();
    for (proto, state) in [("tcp", "0A"), ("tcp6", "0A"), ("udp", "07"), ("udp6", "07")] {
        let Some(text) = read(format!("/proc/net/{proto}")) else { continue };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != state {
                continue;
            }
            let Some((addr, port)) = f[1].split_once(':') else { continue };
            let (Some(address), Ok(port), Ok(inode)) =
                (parse_addr(addr), u16::from_str_radix(port, 16), f[9].parse::<u64>())
            else {
                continue;
            };
            out.push(Listener { proto: proto.into(), address, port, owners: Vec::new(), inode });
        }
    }
    let owners = socket_owners();
    for l in &mut out {
        if let Some(o) = owners.get(&l.inode) {
            l.owners = o.clone();
        }
    }
    out.sort_by(|a, b| (a.port, &a.proto, &a.address).cmp(&(b.port, &b.proto, &b.address)));
    out.dedup_by(|a, b| a.port == b.port && a.proto == b.proto && a.address == b.address);
    out
}

/// A listener without owners (tests).
#[cfg(test)]
pub(crate) fn listener(proto: &str, address: &str, port: u16) -> Listener {
    Listener { proto: proto.into(), address: address.into(), port, owners: Vec::new(), inode: 0 }
}

/// A `/proc/net` address: 8 hex digits (IPv4, little-endian) or 32 (IPv6, four little-endian
/// words).
fn parse_addr(hex: &str) -> Option<String> {
    match hex.len() {
        8 => {
            let n = u32::from_str_radix(hex, 16).ok()?;
            Some(Ipv4Addr::from(n.swap_bytes()).to_string())
        }
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                let word = u32::from_str_radix(hex.get(i * 8..i * 8 + 8)?, 16).ok()?;
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word.to_le_bytes());
            }
            let v6 = Ipv6Addr::from(bytes);
            Some(v6.to_ipv4_mapped().map(|v4| v4.to_string()).unwrap_or_else(|| v6.to_string()))
        }
        _ => None,
    }
}

/// Socket inode → the processes with a descriptor on it (those the server may look into).
fn socket_owners() -> HashMap<u64, Vec<Owner>> {
    let mut map: HashMap<u64, Vec<Owner>> = HashMap::new();
    let users = users();
    for pid in pids() {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        let mut inodes = Vec::new();
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else { continue };
            let target = target.to_string_lossy();
            if let Some(n) = target.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']'))
                && let Ok(n) = n.parse::<u64>()
            {
                inodes.push(n);
            }
        }
        if inodes.is_empty() {
            continue;
        }
        let owner = owner_of(pid, &users);
        for n in inodes {
            let list = map.entry(n).or_default();
            if !list.iter().any(|o| o.pid == pid) {
                list.push(owner.clone());
            }
        }
    }
    map
}

fn owner_of(pid: u32, users: &HashMap<u32, String>) -> Owner {
    let uid = uid_of(pid);
    Owner {
        pid,
        command: command_of(pid),
        user: uid.map(|u| users.get(&u).cloned().unwrap_or_else(|| u.to_string())).unwrap_or_default(),
        unit: unit_of(pid),
    }
}

/// Every pid in `/proc`.
pub fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    let mut out: Vec<u32> = dir.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect();
    out.sort_unstable();
    out
}

fn command_of(pid: u32) -> String {
    read(format!("/proc/{pid}/comm")).map(|s| s.trim_end().to_string()).unwrap_or_default()
}

fn uid_of(pid: u32) -> Option<u32> {
    let status = read(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The systemd unit of `pid` from its cgroup path (`/system.slice/nginx.service`).
pub fn unit_of(pid: u32) -> Option<String> {
    let cgroup = read(format!("/proc/{pid}/cgroup"))?;
    let path = cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .or_else(|| cgroup.lines().find_map(|l| l.split_once(":name=systemd:").map(|(_, p)| p)))?;
    path.split('/')
        .rev()
        .find(|c| c.ends_with(".service") || c.ends_with(".scope") || c.ends_with(".socket"))
        .map(str::to_string)
}

/// uid → user name, from `/etc/passwd`.
pub fn users() -> HashMap<u32, String> {
    let mut map = HashMap::new();
    for line in read("/etc/passwd").unwrap_or_default().lines() {
        let f: Vec<&str> = line.split(':').collect();
        if let (Some(name), Some(uid)) = (f.first(), f.get(2).and_then(|u| u.parse().ok())) {
            map.insert(uid, name.to_string());
        }
    }
    map
}

/// One process in the overview.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Process {
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub command: String,
    /// User name (or uid).
    pub user: String,
    /// CPU time used so far, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory in MiB.
    pub rss_mib: f64,
    /// The systemd unit it runs in.
    pub unit: Option<String>,
}

/// Every process the server can see.
pub fn processes() -> Vec<Process> {
    let users = users();
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    let page = rustix::param::page_size() as f64;
    let mut out = Vec::new();
    for pid in pids() {
        let Some(stat) = read(format!("/proc/{pid}/stat")) else { continue };
        // The command may hold spaces and parentheses: the fields start after the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else { continue };
        let f: Vec<&str> = rest.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        // After ')': state is field 3 of stat(5), so stat field n is index n - 3.
        let cpu = (num(11) + num(12)) as f64 / ticks.max(1.0);
        let rss = num(21) as f64 * page / (1024.0 * 1024.0);
        let owner = owner_of(pid, &users);
        out.push(Process {
            pid,
            command: owner.command,
            user: owner.user,
            cpu_seconds: round2(cpu),
            rss_mib: round2(rss),
            unit: owner.unit,
        });
    }
    out
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// Memory from `/proc/meminfo`, in MiB.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Memory {
    /// MemTotal.
    pub total_mib: u64,
    /// MemAvailable.
    pub available_mib: u64,
    /// SwapTotal.
    pub swap_total_mib: u64,
    /// SwapFree.
    pub swap_free_mib: u64,
}

/// `/proc/meminfo`.
pub fn memory() -> Memory {
    let mut kib: HashMap<String, u64> = HashMap::new();
    for line in read("/proc/meminfo").unwrap_or_default().lines() {
        if let Some((k, v)) = line.split_once(':')
            && let Some(n) = v.split_whitespace().next().and_then(|n| n.parse().ok())
        {
            kib.insert(k.to_string(), n);
        }
    }
    let mib = |k: &str| kib.get(k).copied().unwrap_or(0) / 1024;
    Memory {
        total_mib: mib("MemTotal"),
        available_mib: mib("MemAvailable"),
        swap_total_mib: mib("SwapTotal"),
        swap_free_mib: mib("SwapFree"),
    }
}

/// A mounted file system with its size.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct Disk {
    /// Mount point.
    pub mount: String,
    /// Device or source.
    pub source: String,
    /// File system type.
    pub fstype: String,
    /// Size in MiB.
    pub size_mib: u64,
    /// Used in MiB.
    pub used_mib: u64,
    /// Available to unprivileged users, in MiB.
    pub available_mib: u64,
    /// Used, in percent of the size.
    pub used_percent: u64,
}

/// Kernel and runtime file systems that hold no user data.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devtmpfs",
    "devpts",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "autofs",
    "hugetlbfs",
    "fusectl",
    "configfs",
    "binfmt_misc",
    "nsfs",
    "rpc_pipefs",
    "ramfs",
    "efivarfs",
    "selinuxfs",
    "fuse.gvfsd-fuse",
    "fuse.portal",
    "squashfs",
    "nfsd",
    "tmpfs",
];

/// The mounted file systems that hold data, from `/proc/self/mountinfo`, each measured once.
pub fn disks() -> Vec<Disk> {
    let mut out: Vec<Disk> = Vec::new();
    for line in read("/proc/self/mountinfo").unwrap_or_default().lines() {
        let Some((left, right)) = line.split_once(" - ") else { continue };
        let l: Vec<&str> = left.split(' ').collect();
        let r: Vec<&str> = right.split(' ').collect();
        let (Some(mount), Some(fstype), Some(source)) = (l.get(4), r.first(), r.get(1)) else { continue };
        if PSEUDO_FS.contains(fstype) {
            continue;
        }
        let mount = unescape(mount);
        let Ok(st) = rustix::fs::statvfs(mount.as_str()) else { continue };
        let frsize = st.f_frsize.max(1);
        let mib = |blocks: u64| blocks.saturating_mul(frsize) / (1024 * 1024);
        let size = mib(st.f_blocks);
        if size == 0 {
            continue;
        }
        let used = size.saturating_sub(mib(st.f_bfree));
        out.push(Disk {
            mount,
            source: unescape(source),
            fstype: fstype.to_string(),
            size_mib: size,
            used_mib: used,
            available_mib: mib(st.f_bavail),
            used_percent: used * 100 / size.max(1),
        });
    }
    out.sort_by(|a, b| a.mount.cmp(&b.mount));
    out.dedup_by(|a, b| a.mount == b.mount);
    out
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && let Some(v) = s.get(i + 1..i + 4).and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// OS facts.
#[derive(Clone, Debug, Default, Serialize, JsonSchema)]
pub struct Os {
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub name: String,
    /// Kernel release.
    pub kernel: String,
    /// Host name.
    pub hostname: String,
    /// Machine architecture.
    pub arch: String,
    /// Seconds since boot.
    pub uptime_seconds: u64,
    /// 1, 5 and 15 minute load averages.
    pub load: [f64; 3],
    /// Online CPUs.
    pub cpus: usize,
    /// systemd is the init system and is running (`/run/systemd/system` exists).
    pub systemd: bool,
}

/// `/etc/os-release`, `/proc/sys/kernel`, `/proc/uptime`, `/proc/loadavg`, `/proc/cpuinfo`.
pub fn os() -> Os {
    let release = read("/etc/os-release").or_else(|| read("/usr/lib/os-release")).unwrap_or_default();
    let name = release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default();
    let trimmed = |p: &str| read(p).map(|s| s.trim().to_string()).unwrap_or_default();
    let uptime = read("/proc/uptime")
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .unwrap_or(0);
    let loadavg = read("/proc/loadavg").unwrap_or_default();
    let mut load = [0.0; 3];
    for (i, v) in loadavg.split_whitespace().take(3).enumerate() {
        load[i] = v.parse().unwrap_or(0.0);
    }
    let cpus = read("/proc/cpuinfo").map(|c| c.lines().filter(|l| l.starts_with("processor")).count()).unwrap_or(0);
    Os {
        name,
        kernel: trimmed("/proc/sys/kernel/osrelease"),
        hostname: trimmed("/proc/sys/kernel/hostname"),
        arch: std::env::consts::ARCH.to_string(),
        uptime_seconds: uptime,
        load,
        cpus,
        systemd: Path::new("/run/systemd/system").is_dir(),
    }
}

/// Installed Debian packages (`/var/lib/dpkg/status`): name → version. Empty elsewhere.
pub fn packages() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let text = read("/var/lib/dpkg/status").unwrap_or_default();
    for para in text.split("\n\n") {
        let field = |k: &str| para.lines().find_map(|l| l.strip_prefix(k)).map(str::trim);
        if let (Some(name), Some(status), Some(version)) = (field("Package:"), field("Status:"), field("Version:"))
            && status.ends_with(" installed")
        {
            let arch = field("Architecture:").filter(|a| *a != "all" && *a != "amd64").map(|a| format!(":{a}"));
            out.insert(format!("{name}{}", arch.unwrap_or_default()), version.to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_addresses_parse() {
        assert_eq!(parse_addr("0100007F").as_deref(), Some("127.0.0.1"));
        assert_eq!(parse_addr("00000000").as_deref(), Some("0.0.0.0"));
        assert_eq!(parse_addr("00000000000000000000000000000000").as_deref(), Some("::"));
        assert_eq!(parse_addr("00000000000000000000000001000000").as_deref(), Some("::1"));
        assert_eq!(parse_addr("0000000000000000FFFF00000100007F").as_deref(), Some("127.0.0.1"));
        assert_eq!(parse_addr("zz"), None);
    }

    #[test]
    fn mountinfo_escapes_decode() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn this_process_is_seen() {
        let me = std::process::id();
        assert!(pids().contains(&me));
        let p = processes().into_iter().find(|p| p.pid == me).unwrap();
        assert!(!p.command.is_empty());
        assert!(os().cpus >= 1);
        assert!(memory().total_mib > 0);
    }
}
