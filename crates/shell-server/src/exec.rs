//! Preparing, spawning, capturing and killing sandboxed commands.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};

use bastion_policy::commands::{CommandRules, ShellConfig, check_executable, check_path_argument, find_executable};
use bastion_policy::{Access, Error, ErrorCode, Policy, Result, Tier};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Child;

use crate::sandbox::{Spec, Status};

/// The environment every child starts from; nothing else of the server's environment reaches
/// it except the profile's `pass_env` toolchain locations.
const BASE_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Everything fixed at start-up that a command needs.
#[derive(Debug)]
pub struct Launcher {
    /// The executable re-run as the trampoline (`/proc/self/exe` works even if the file was
    /// replaced on disk since the server started).
    pub exe: PathBuf,
    /// Rules of the profile.
    pub rules: CommandRules,
    /// Shell settings.
    pub config: ShellConfig,
    /// Readable and executable in the sandbox besides the system directories.
    pub toolchain_read: Vec<PathBuf>,
    /// `PATH` of children.
    pub path_var: String,
    /// Variables from the server's environment and the profile.
    pub env: Vec<(String, String)>,
    /// Per-command scratch directories are created beneath this.
    pub scratch: PathBuf,
    counter: AtomicU64,
}

/// A command ready to spawn.
#[derive(Debug)]
pub struct Prepared {
    /// The trampoline's specification.
    pub spec: Spec,
    /// Scratch directory (HOME and TMPDIR of the child), removed when the command ends.
    pub scratch: PathBuf,
    /// The program's stdin is an interpreter.
    pub stdin_interpreter: bool,
    /// Where the command runs, as shown to the model.
    pub cwd_shown: String,
}

impl Launcher {
    /// Builds the launcher from the rules and the server's environment.
    pub fn new(rules: CommandRules, config: ShellConfig) -> std::io::Result<Self> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut toolchain_read: Vec<PathBuf> = config.extra_read.clone();
        let mut path_dirs: Vec<PathBuf> = Vec::new();
        let mut env: Vec<(String, String)> = Vec::new();
        for var in &rules.pass_env {
            if let Ok(v) = std::env::var(var) {
                env.push((var.clone(), v));
            }
        }
        let exec_profile = rules.tier == Tier::Exec;
        if exec_profile {
            // Toolchains installed per user (rustup, pyenv) live under HOME, which children do
            // not see (their HOME is a scratch directory): name their homes explicitly and let
            // the sandbox read them. Only the parts without credentials of ~/.cargo are readable.
            let dir_of = |var: &str, default: &str| -> Option<PathBuf> {
                std::env::var_os(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)))
            };
            if let Some(cargo_home) = dir_of("CARGO_HOME", ".cargo").filter(|p| p.is_dir()) {
                for sub in ["bin", "registry", "git", "config.toml", "config"] {
                    toolchain_read.push(cargo_home.join(sub));
                }
                set_default(&mut env, "CARGO_HOME", &cargo_home);
            }
            for (var, default) in [("RUSTUP_HOME", ".rustup"), ("PYENV_ROOT", ".pyenv")] {
                if let Some(dir) = dir_of(var, default).filter(|p| p.is_dir()) {
                    toolchain_read.push(dir.clone());
                    set_default(&mut env, var, &dir);
                }
            }
            for program in rules.programs() {
                if let Some(exe) = &program.exe
                    && let Some(dir) = exe.parent()
                    && !BASE_PATH.split(':').any(|d| Path::new(d) == dir)
                {
                    if !path_dirs.iter().any(|d| d == dir) {
                        path_dirs.push(dir.to_path_buf());
                    }
                    toolchain_read.push(dir.to_path_buf());
                    if let Ok(real) = exe.canonicalize()
                        && let Some(real_dir) = real.parent()
                    {
                        toolchain_read.push(real_dir.to_path_buf());
                    }
                }
            }
        }
        for (k, v) in &rules.set_env {
            env.retain(|(name, _)| name != k);
            env.push((k.clone(), v.clone()));
        }
        let mut path_var = path_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":");
        if !path_var.is_empty() {
            path_var.push(':');
        }
        path_var.push_str(BASE_PATH);
        // A fresh directory with an unpredictable name, created 0700 (never one that another
        // user of the host could have prepared, or a symlink to follow).
        use std::os::unix::fs::PermissionsExt;
        let scratch = tempfile::Builder::new()
            .prefix("bastion-shell-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?
            .keep();
        toolchain_read.retain(|p| p.exists());
        toolchain_read.sort();
        toolchain_read.dedup();
        Ok(Launcher {
            exe: PathBuf::from("/proc/self/exe"),
            rules,
            config,
            toolchain_read,
            path_var,
            env,
            scratch,
            counter: AtomicU64::new(0),
        })
    }

    /// Checks a request against the rules and the roots and builds what to run.
    pub fn prepare(
        &self,
        policy: &Policy,
        status: &Status,
        program: &str,
        args: &[String],
        cwd: Option<&str>,
    ) -> Result<Prepared> {
        self.rules.check_sandbox(status.landlock_active(), self.config.allow_degraded, &status.notes.join("; "))?;
        let rule = self.rules.program(program)?;
        let mut checked = rule.check(args)?;
        // Recursive readers are told to skip what the deny globs cover.
        let at = rule.fixed_prefix_len();
        checked.argv.splice(at..at, rule.exclusion_args(policy.deny.patterns(Access::Read)));
        let Some(exe) = rule.exe.clone().or_else(|| find_executable(program)) else {
            return Err(Error::new(
                ErrorCode::CommandNotAllowed,
                format!("'{program}' is allowed but not installed on this host"),
            ));
        };
        let roots = policy.roots();
        check_executable(&roots, program, &exe)?;
        let cwd_target = roots.target(cwd.unwrap_or(""), None)?;
        let dir = roots.open_dir(&cwd_target, &policy.deny)?;
        let cwd_real = cwd_target.root.real_path().join(dir.rel.as_path());
        let cwd_shown = cwd_target.shown();
        for p in &checked.paths {
            check_path_argument(&roots, &policy.deny, &cwd_target, p, Access::Read)?;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let scratch = self.scratch.join(n.to_string());
        std::fs::create_dir(&scratch).map_err(|e| Error::from_io(&e, "scratch directory"))?;
        let scratch_str = scratch.display().to_string();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), self.path_var.clone()),
            ("HOME".into(), scratch_str.clone()),
            ("TMPDIR".into(), scratch_str),
            ("LANG".into(), "C.UTF-8".into()),
            ("TERM".into(), "dumb".into()),
        ];
        env.extend(self.env.iter().cloned());
        let root_paths: Vec<PathBuf> = roots.iter().map(|r| r.real_path().to_path_buf()).collect();
        let writable = self.rules.tier == Tier::Exec;
        let mut read_paths = self.toolchain_read.clone();
        let mut write_paths = vec![scratch.clone()];
        // A root's git metadata stays read-only even where the root is writable: hooks and
        // config are code the user's own `git` runs later, outside any sandbox.
        let mut readonly_paths = Vec::new();
        if writable {
            readonly_paths.extend(root_paths.iter().map(|r| r.join(".git")).filter(|g| g.exists()));
            write_paths.extend(root_paths);
        } else {
            read_paths.extend(root_paths);
        }
        // Landlock grants whole trees: Bastion's own state beneath them is covered in the
        // command's mount namespace, which must exist for that.
        let protected = policy.protected();
        let mut hidden_paths: Vec<PathBuf> =
            read_paths.iter().chain(&write_paths).flat_map(|dir| protected.beneath(dir)).collect();
        hidden_paths.sort();
        hidden_paths.dedup();
        if !hidden_paths.is_empty() && !status.userns {
            return Err(Error::new(
                ErrorCode::SandboxUnavailable,
                "Bastion's own state (its tokens, configuration or journal) lies inside the directories commands may use, and this host gives the sandbox no mount namespace to hide it; commands are refused. The operator must move the state directory out of the roots (--state-dir) or enable user namespaces",
            ));
        }
        let spec = Spec {
            program: exe,
            argv0: program.to_string(),
            args: checked.argv,
            cwd: cwd_real,
            env,
            read_paths,
            write_paths,
            readonly_paths,
            hidden_paths,
            tcp_connect: self.rules.tcp_connect.clone(),
            network: false,
            landlock: true,
            seccomp: true,
            namespaces: status.userns,
            rlimits: self.config.rlimits.clone(),
            parent_pid: std::process::id() as i32,
            probe: false,
            host_proc: false,
            local_sockets: false,
        };
        Ok(Prepared { spec, scratch, stdin_interpreter: rule.stdin_interpreter, cwd_shown })
    }

    /// Spawns the trampoline for `p`.
    pub fn spawn(&self, p: &Prepared, stdin: bool) -> Result<Child> {
        crate::sandbox::trampoline(&self.exe, &p.spec)
            .map_err(|e| Error::new(ErrorCode::IoError, format!("cannot encode the command: {e}")))?
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(ErrorCode::IoError, format!("cannot start the sandbox: {e}")))
    }
}

fn set_default(env: &mut Vec<(String, String)>, var: &str, value: &Path) {
    if !env.iter().any(|(k, _)| k == var) {
        env.push((var.to_string(), value.display().to_string()));
    }
}

/// Kills the trampoline's whole process group. Its child (pid 1 of the command's pid namespace)
/// dies with it, and the kernel then kills everything left in the namespace.
pub fn kill_tree(pid: u32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
    }
}

/// Output kept within a budget: the head and the tail, with the count of what was dropped
/// between them (build errors are usually at the end).
#[derive(Debug, Default)]
pub struct Capture {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    budget: usize,
    total: u64,
}

impl Capture {
    /// Keeps at most `budget` bytes.
    pub fn new(budget: usize) -> Self {
        Capture { budget, ..Default::default() }
    }

    /// Adds bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        let head_budget = self.budget / 2;
        let mut rest = data;
        if self.head.len() < head_budget {
            let take = (head_budget - self.head.len()).min(rest.len());
            self.head.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
        }
        let tail_budget = self.budget - head_budget;
        if rest.len() >= tail_budget {
            self.tail.clear();
            self.tail.extend(&rest[rest.len() - tail_budget..]);
        } else {
            let overflow = (self.tail.len() + rest.len()).saturating_sub(tail_budget);
            self.tail.drain(..overflow);
            self.tail.extend(rest);
        }
    }

    /// Bytes seen.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Whether something was dropped.
    pub fn truncated(&self) -> bool {
        self.total > (self.head.len() + self.tail.len()) as u64
    }

    /// The kept text, with a marker where bytes were dropped.
    pub fn text(&self) -> String {
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        if self.truncated() {
            let dropped = self.total - (self.head.len() + tail.len()) as u64;
            format!(
                "{}\n[... {dropped} bytes omitted ...]\n{}",
                String::from_utf8_lossy(&self.head),
                String::from_utf8_lossy(&tail)
            )
        } else {
            let mut all = self.head.clone();
            all.extend(tail);
            String::from_utf8_lossy(&all).into_owned()
        }
    }
}

/// Reads `r` to the end into `sink`.
pub async fn pump<R: AsyncRead + Unpin>(mut r: R, mut sink: impl FnMut(&[u8])) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => sink(&buf[..n]),
        }
    }
}

/// How a command ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal that ended it, when it was killed.
    pub signal: Option<i32>,
}

impl Exit {
    /// From the trampoline's status: it exits with the program's code, or 128 + signal.
    pub fn from_status(status: std::process::ExitStatus) -> Self {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) if code > 128 && code < 128 + 65 => Exit { code: None, signal: Some(code - 128) },
            (Some(code), _) => Exit { code: Some(code), signal: None },
            (None, signal) => Exit { code: None, signal },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_head_and_tail() {
        let mut c = Capture::new(10);
        c.push(b"abcdefghij");
        assert!(!c.truncated());
        assert_eq!(c.text(), "abcdefghij");
        c.push(b"klmnopqrstuvwxyz");
        assert!(c.truncated());
        assert_eq!(c.total(), 26);
        assert_eq!(c.text(), "abcde\n[... 16 bytes omitted ...]\nvwxyz");
        let mut small = Capture::new(10);
        for b in b"0123456789abcdef" {
            small.push(&[*b]);
        }
        assert_eq!(small.text(), "01234\n[... 6 bytes omitted ...]\nbcdef");
    }

    /// Bastion's own state beneath a root is handed to the trampoline to cover; without a mount
    /// namespace the command is refused before anything starts.
    #[test]
    fn protected_state_beneath_a_root_is_hidden_or_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(root.join(".bst")).unwrap();
        let config = bastion_policy::PolicyConfig {
            roots: vec![root.clone()],
            protect: vec![root.join(".bst")],
            ..Default::default()
        };
        let policy = Policy::new(config).unwrap();
        let rules = bastion_policy::commands::CommandRules::shipped("read-only").unwrap();
        let launcher = Launcher::new(rules, ShellConfig::default()).unwrap();
        let mut status = Status { landlock: "full".into(), userns: true, ..Default::default() };
        let prepared = launcher.prepare(&policy, &status, "ls", &[], None).unwrap();
        assert_eq!(prepared.spec.hidden_paths, vec![root.join(".bst")]);
        status.userns = false;
        let err = launcher.prepare(&policy, &status, "ls", &[], None).unwrap_err();
        assert_eq!(err.code, ErrorCode::SandboxUnavailable);
        assert!(err.message.contains("Bastion's own state"), "{}", err.message);
        assert!(!err.message.contains(&root.display().to_string()), "{}", err.message);
    }
}
