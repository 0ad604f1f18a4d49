//! `bastion doctor [--json]`: checks the host and the installation the hub would run on, and says
//! how to fix each problem. Exit status 1 when any check fails (warnings do not fail).
//!
//! Checks, in order: the kernel features the policy and the shell sandbox rely on (`openat2`,
//! Landlock and its ABI, seccomp, unprivileged user namespaces, including Ubuntu's AppArmor
//! restriction of them), the sandbox as the trampoline actually achieves it, the state
//! directory (owner, modes), the configuration file, the public URL (https, and reachable from
//! this host), the clock against a web server's `Date` header, static tokens that never expire,
//! and free space for the journals.
//!
//! `BASTION_DOCTOR_ASSUME_NO_LANDLOCK=1` makes the Landlock checks behave as on a kernel without
//! Landlock (the tests use it; nothing else reads it).

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use clap::Args;
use serde::Serialize;

/// The environment switch that pretends the kernel has no Landlock.
pub const ASSUME_NO_LANDLOCK: &str = "BASTION_DOCTOR_ASSUME_NO_LANDLOCK";

/// Flags of `bastion doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// The hub configuration file to check (its public URL and roots are checked too).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// The state directory to check (default: $XDG_STATE_HOME/bastion or ~/.local/state/bastion).
    #[arg(long, value_name = "DIR", env = "BASTION_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The public URL to check (default: the configuration's `public_url`).
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// A web server whose `Date` header the clock is compared with.
    #[arg(long, value_name = "URL", default_value = "https://deb.debian.org/")]
    time_url: String,
    /// Print one JSON object instead of a report for people.
    #[arg(long)]
    json: bool,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Level {
    Ok,
    Warn,
    Fail,
    Skip,
}

/// One check's result: a stable name, what was found and, unless it passed, the fix.
#[derive(Debug, Serialize)]
struct Check {
    name: &'static str,
    status: Level,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

impl Check {
    fn ok(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, status: Level::Ok, detail: detail.into(), fix: None }
    }
    fn skip(name: &'static str, detail: impl Into<String>) -> Check {
        Check { name, status: Level::Skip, detail: detail.into(), fix: None }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status: Level::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check { name, status: Level::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// Runs every check and prints the report; `false` when any check failed.
pub fn doctor(args: DoctorArgs) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let checks = runtime.block_on(run_checks(&args));
    let failed = checks.iter().any(|c| c.status == Level::Fail);
    let mut out = std::io::stdout().lock();
    if args.json {
        let report = serde_json::json!({ "ok": !failed, "checks": checks });
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        for c in &checks {
            let mark = match c.status {
                Level::Ok => "ok  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
                Level::Skip => "skip",
            };
            writeln!(out, "[{mark}] {:<16} {}", c.name, c.detail)?;
            if let Some(fix) = &c.fix {
                writeln!(out, "       {:<16} fix: {fix}", "")?;
            }
        }
        let count = |l: Level| checks.iter().filter(|c| c.status == l).count();
        writeln!(
            out,
            "{} ok, {} warnings, {} failed, {} skipped",
            count(Level::Ok),
            count(Level::Warn),
            count(Level::Fail),
            count(Level::Skip)
        )?;
    }
    Ok(!failed)
}

async fn run_checks(args: &DoctorArgs) -> Vec<Check> {
    let no_landlock = std::env::var_os(ASSUME_NO_LANDLOCK).is_some_and(|v| !v.is_empty() && v != "0");
    let mut checks = vec![openat2(), landlock(no_landlock), seccomp(), userns()];
    checks.push(sandbox(no_landlock).await);
    let state_dir = match &args.state_dir {
        Some(d) => Ok(d.clone()),
        None => bastion_auth::state::default_dir(),
    };
    match &state_dir {
        Ok(dir) => checks.push(state_directory(dir)),
        Err(e) => checks.push(Check::fail("state_dir", format!("{e:#}"), "set BASTION_STATE_DIR or pass --state-dir")),
    }
    let (config_check, config) = config(args.config.as_deref());
    checks.push(config_check);
    let public_url = args.public_url.clone().or_else(|| config.as_ref().and_then(|c| c.public_url.clone()));
    let client = http_client();
    checks.push(public_url_check(public_url.as_deref(), &client).await);
    checks.push(clock(&args.time_url, &client).await);
    match &state_dir {
        Ok(dir) => {
            checks.push(tokens(dir));
            checks.push(disk(dir));
        }
        Err(_) => {
            checks.push(Check::skip("tokens", "no state directory"));
            checks.push(Check::skip("disk", "no state directory"));
        }
    }
    checks
}

/// `openat2` with `RESOLVE_BENEATH`: how every path is resolved beneath a root. Without it the
/// policy falls back to a slower component-by-component walk.
fn openat2() -> Check {
    use rustix::fs::{CWD, Mode, OFlags, ResolveFlags};
    match rustix::fs::openat2(CWD, ".", OFlags::PATH | OFlags::CLOEXEC, Mode::empty(), ResolveFlags::BENEATH) {
        Ok(_) => Check::ok("openat2", "openat2 with RESOLVE_BENEATH works"),
        Err(e) => Check::warn(
            "openat2",
            format!("openat2 is unavailable ({e}); paths are resolved by the slower O_NOFOLLOW walk"),
            "use Linux 5.6 or later (and a seccomp profile of the container runtime that allows openat2)",
        ),
    }
}

fn landlock(no_landlock: bool) -> Check {
    let fix = "boot a kernel with CONFIG_SECURITY_LANDLOCK=y and `landlock` in its LSM list \
               (e.g. lsm=landlock,lockdown,yama,integrity,apparmor on the kernel command line); \
               until then `bastion shell` refuses the commands that need the sandbox";
    if no_landlock {
        return Check::fail("landlock", format!("Landlock is not enabled ({ASSUME_NO_LANDLOCK} is set)"), fix);
    }
    // The active security modules, from securityfs; the sandbox check asks the kernel directly.
    match std::fs::read_to_string("/sys/kernel/security/lsm") {
        Ok(lsm) if lsm.split(',').any(|m| m.trim() == "landlock") => {
            Check::ok("landlock", format!("Landlock is an active security module ({})", lsm.trim()))
        }
        Ok(lsm) => Check::fail("landlock", format!("Landlock is not among the active modules ({})", lsm.trim()), fix),
        Err(e) => Check::skip("landlock", format!("securityfs is not readable ({e}); the sandbox check decides")),
    }
}

fn seccomp() -> Check {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    match status.lines().find_map(|l| l.strip_prefix("Seccomp:")).map(str::trim) {
        Some(mode) => Check::ok("seccomp", format!("seccomp filters available (this process: mode {mode})")),
        None => Check::fail(
            "seccomp",
            "the kernel has no seccomp: the shell sandbox cannot filter system calls",
            "boot a kernel built with CONFIG_SECCOMP_FILTER=y",
        ),
    }
}

fn read_sysctl(path: &str) -> Option<i64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn userns() -> Check {
    if read_sysctl("/proc/sys/user/max_user_namespaces") == Some(0) {
        return Check::fail(
            "userns",
            "user namespaces are disabled (user.max_user_namespaces = 0)",
            "sysctl -w user.max_user_namespaces=15000 (and persist it in /etc/sysctl.d/)",
        );
    }
    if read_sysctl("/proc/sys/kernel/unprivileged_userns_clone") == Some(0) {
        return Check::fail(
            "userns",
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
            "sysctl -w kernel.unprivileged_userns_clone=1 (and persist it in /etc/sysctl.d/)",
        );
    }
    if read_sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == Some(1) {
        let profile = Path::new("/etc/apparmor.d/bastion");
        let fix = if profile.exists() {
            "the Bastion AppArmor profile is installed: load it with `apparmor_parser -r /etc/apparmor.d/bastion` \
             and run the binary it names (/usr/bin/bastion)"
        } else {
            "install the AppArmor profile (packaging/apparmor/bastion; the .deb ships it as \
             /usr/share/bastion/apparmor/bastion) as /etc/apparmor.d/bastion and load it with \
             `apparmor_parser -r /etc/apparmor.d/bastion`"
        };
        return Check::warn(
            "userns",
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1): \
             only binaries with a profile that allows `userns` get them; the sandbox check shows whether this one does",
            fix,
        );
    }
    Check::ok("userns", "unprivileged user namespaces are allowed")
}

/// The sandbox as the trampoline really sets it up here, with namespaces.
async fn sandbox(no_landlock: bool) -> Check {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return Check::fail("sandbox", format!("cannot find this binary: {e}"), "run bastion by its path"),
    };
    let status = bastion_shell::sandbox::probe(&exe, true).await;
    let landlock = if no_landlock { "none (assumed)" } else { status.landlock.as_str() };
    let detail = format!(
        "landlock {landlock} (ABI {}), seccomp {}, namespaces {}, read-only mounts {}, no_new_privs {}{}",
        if no_landlock { 0 } else { status.landlock_abi },
        yes(status.seccomp),
        yes(status.userns),
        yes(status.readonly_mounts),
        yes(status.no_new_privs),
        if status.notes.is_empty() { String::new() } else { format!("; {}", status.notes.join("; ")) },
    );
    if no_landlock || !status.landlock_active() || !status.seccomp {
        return Check::fail(
            "sandbox",
            detail,
            "see the landlock and seccomp checks; under systemd, SystemCallFilter= must allow seccomp, mount, \
             mount_setattr and landlock_* by name (systemd 252 leaves Landlock out of @system-service; see \
             packaging/systemd/bastion@.service); in a systemd-nspawn container, add \
             --system-call-filter='landlock_create_ruleset landlock_add_rule landlock_restrict_self'",
        );
    }
    if !status.userns {
        return Check::warn(
            "sandbox",
            detail,
            "commands run without their own pid and mount namespaces: see the userns check; under systemd, \
             RestrictNamespaces= must allow user mnt pid ipc uts",
        );
    }
    Check::ok("sandbox", detail)
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn state_directory(dir: &Path) -> Check {
    let meta = match std::fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::ok("state_dir", format!("{} does not exist yet (created 0700 on first use)", dir.display()));
        }
        Err(e) => {
            return Check::fail(
                "state_dir",
                format!("{}: {e}", dir.display()),
                "make it readable by the user the hub runs as",
            );
        }
    };
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Check::fail(
            "state_dir",
            format!("{} belongs to uid {}, not to this user (uid {uid})", dir.display(), meta.uid()),
            format!("chown -R {uid} {} (or run doctor as the user the hub runs as)", dir.display()),
        );
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Check::fail(
            "state_dir",
            format!("{} has mode {mode:03o}: other users can reach tokens and journals", dir.display()),
            format!("chmod 700 {}", dir.display()),
        );
    }
    let mut loose = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if let Ok(m) = e.metadata()
                && m.is_file()
                && m.permissions().mode() & 0o077 != 0
            {
                loose.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    if !loose.is_empty() {
        loose.sort();
        return Check::warn(
            "state_dir",
            format!("files readable by others in {}: {}", dir.display(), loose.join(", ")),
            format!("chmod 600 {}/*", dir.display()),
        );
    }
    Check::ok("state_dir", format!("{} is private (mode {mode:03o}, owner uid {uid})", dir.display()))
}

fn config(path: Option<&Path>) -> (Check, Option<crate::config::HubConfig>) {
    let Some(path) = path else {
        return (Check::skip("config", "no --config given (defaults apply)"), None);
    };
    match crate::config::HubConfig::load(path) {
        Ok(c) => {
            let missing: Vec<String> =
                c.roots.iter().filter(|r| !r.is_dir()).map(|r| r.display().to_string()).collect();
            if missing.is_empty() {
                (Check::ok("config", format!("{} is valid", path.display())), Some(c))
            } else {
                let detail = format!("{}: roots that are not directories: {}", path.display(), missing.join(", "));
                (Check::fail("config", detail, "create them or remove them from `roots`"), Some(c))
            }
        }
        Err(e) => (
            Check::fail(
                "config",
                format!("{e:#}"),
                format!("fix the file; `bastion check-config --config {}` says the same", path.display()),
            ),
            None,
        ),
    }
}

fn http_client() -> Option<reqwest::Client> {
    reqwest::Client::builder().timeout(Duration::from_secs(5)).redirect(reqwest::redirect::Policy::none()).build().ok()
}

async fn public_url_check(url: Option<&str>, client: &Option<reqwest::Client>) -> Check {
    let Some(url) = url else {
        return Check::skip("public_url", "no public URL configured (loopback only)");
    };
    let Ok(parsed) = url::Url::parse(url) else {
        return Check::fail("public_url", format!("{url:?} is not a URL"), "set public_url to https://HOST/mcp");
    };
    let loopback = matches!(parsed.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if parsed.scheme() != "https" && !loopback {
        return Check::fail(
            "public_url",
            format!("{url} is not https: tokens would cross the network in clear"),
            "put a TLS-terminating proxy in front (packaging/proxy/) and use its https:// URL",
        );
    }
    let Some(client) = client else {
        return Check::skip("public_url", "no HTTP client could be built");
    };
    let mut health = parsed.clone();
    health.set_path("/healthz");
    health.set_query(None);
    match client.get(health.as_str()).send().await {
        Ok(r) if r.status().is_success() => Check::ok("public_url", format!("{health} answers {}", r.status())),
        Ok(r) => Check::fail(
            "public_url",
            format!("{health} answers {}", r.status()),
            "the proxy must pass / and /mcp to the hub unchanged (see packaging/proxy/)",
        ),
        Err(e) => Check::fail(
            "public_url",
            format!("{health} is not reachable from this host: {e}"),
            "start the hub and the proxy, check DNS and the certificate (the proxy's CA must be trusted here)",
        ),
    }
}

async fn clock(time_url: &str, client: &Option<reqwest::Client>) -> Check {
    let Some(client) = client else {
        return Check::skip("clock", "no HTTP client could be built");
    };
    let sent = SystemTime::now();
    let response = match client.head(time_url).send().await {
        Ok(r) => r,
        Err(e) => return Check::skip("clock", format!("no network to compare with ({time_url}: {e})")),
    };
    let received = SystemTime::now();
    let Some(date) = response.headers().get("date").and_then(|d| d.to_str().ok()) else {
        return Check::skip("clock", format!("{time_url} sent no Date header"));
    };
    let Ok(theirs) = httpdate(date) else {
        return Check::skip("clock", format!("{time_url} sent an unreadable Date header {date:?}"));
    };
    let ours = sent + received.duration_since(sent).unwrap_or_default() / 2;
    let skew = match ours.duration_since(theirs) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    // A Date header has one-second resolution; OAuth clients tolerate a minute or so.
    if skew.abs() > 30.0 {
        Check::fail(
            "clock",
            format!("the clock is {skew:+.0} s off {time_url}: token expiry and consent links go wrong"),
            "enable time synchronisation: timedatectl set-ntp true (systemd-timesyncd or chrony)",
        )
    } else {
        Check::ok("clock", format!("within {:.0} s of {time_url}", skew.abs().max(1.0)))
    }
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send today.
fn httpdate(s: &str) -> anyhow::Result<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else { anyhow::bail!("not an IMF-fixdate") };
    let month = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        .iter()
        .position(|m| m == month)
        .context("month")? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse()?, year.parse()?);
    let hms: Vec<i64> = time.split(':').map(str::parse).collect::<Result<_, _>>()?;
    let [h, m, sec] = hms.as_slice() else { anyhow::bail!("time") };
    // Days from civil (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = u64::try_from(days * 86_400 + h * 3600 + m * 60 + sec).context("before 1970")?;
    Ok(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Static tokens with no expiry that are still live, read from the auth store in the state
/// directory (opened only if it exists: doctor never creates state). OAuth tokens always expire
/// (access 1 h, refresh 30 d by default), so only static ones are counted.
fn tokens(dir: &Path) -> Check {
    use bastion_auth::Store as _;
    let store = match bastion_auth::store::SqliteStore::open_existing(dir) {
        Ok(Some(s)) => s,
        Ok(None) => return Check::ok("tokens", format!("no token store in {}", dir.display())),
        Err(e) => {
            return Check::fail(
                "tokens",
                format!("the token store in {} cannot be opened: {e}", dir.display()),
                "run doctor as the hub's user; if the store is damaged, restore it (docs/runbooks/backup-and-restore.md)",
            );
        }
    };
    let now = bastion_auth::now();
    let records = match store.tokens(now) {
        Ok(r) => r,
        Err(e) => {
            return Check::fail("tokens", format!("reading tokens: {e}"), "restore the state directory from a backup");
        }
    };
    let live_forever: Vec<&str> =
        records.iter().filter(|r| r.revoked.is_none() && r.expires.is_none()).map(|r| r.name.as_str()).collect();
    if live_forever.is_empty() {
        Check::ok("tokens", format!("{} static tokens, each with an expiry or revoked", records.len()))
    } else {
        Check::warn(
            "tokens",
            format!("{} live token(s) never expire: {}", live_forever.len(), live_forever.join(", ")),
            "replace each with `bastion token create --expires 90d ...` and `bastion token revoke NAME`",
        )
    }
}

fn disk(dir: &Path) -> Check {
    // The directory may not exist yet: measure the nearest existing ancestor.
    let mut probe = dir;
    while !probe.exists() {
        match probe.parent() {
            Some(p) => probe = p,
            None => break,
        }
    }
    match rustix::fs::statvfs(probe) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let total = s.f_blocks.saturating_mul(s.f_frsize).max(1);
            let mib = free / (1024 * 1024);
            let detail = format!("{mib} MiB free for journals under {} ({}%)", probe.display(), free * 100 / total);
            let fix = "free space or move the state directory (docs/runbooks/moving-hosts.md); keep less \
                       journal ([journal] max_bytes, keep) or compress it ([journal] compress = true)";
            if mib < 100 {
                Check::fail("disk", detail, fix)
            } else if mib < 1024 {
                Check::warn("disk", detail, fix)
            } else {
                Check::ok("disk", detail)
            }
        }
        Err(e) => Check::warn("disk", format!("statvfs {}: {e}", probe.display()), "check the mount"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imf_fixdate_parses() {
        let t = httpdate("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
        for bad in
            ["", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC", "Sun, 06 Foo 1994 08:49:37 GMT"]
        {
            assert!(httpdate(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn state_dir_modes_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(state_directory(dir.path()).status, Level::Fail);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(state_directory(dir.path()).status, Level::Ok);
        std::fs::write(dir.path().join("tokens.json"), "[]").unwrap();
        std::fs::set_permissions(dir.path().join("tokens.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(state_directory(dir.path()).status, Level::Warn);
    }

    #[test]
    fn tokens_without_expiry_are_reported() {
        use bastion_auth::Store as _;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tokens(dir.path()).status, Level::Ok);
        let mut store = bastion_auth::store::SqliteStore::open(dir.path()).unwrap();
        let all = [bastion_auth::Scope::all()];
        store.create_token("ci", &all, None, 10).unwrap();
        store.create_token("old", &all, None, 10).unwrap();
        store.revoke_tokens("old", 11).unwrap();
        store.create_token("short", &all, Some(std::time::Duration::from_secs(3600)), 10).unwrap();
        drop(store);
        let c = tokens(dir.path());
        assert_eq!(c.status, Level::Warn);
        assert!(c.detail.contains("ci") && !c.detail.contains("old") && !c.detail.contains("short"), "{}", c.detail);
    }
}
