//! Command rules: which programs may run, with which flags, and which operands are paths.
//!
//! Commands are argv, never shell strings, so shell syntax is only ever a literal argument. What
//! remains is option injection, which is closed here by parsing every argument with the
//! program's own option grammar (bundled short flags, `--long=value`, GNU abbreviations, options
//! after operands, `--`) against an allowlist, and by rewriting abbreviations to the full flag so
//! the program and the rules can never disagree about what a flag means.
//!
//! ```
//! use bastion_policy::commands::CommandRules;
//!
//! let rules = CommandRules::shipped("read-only").unwrap();
//! let ok = rules.check("sort", &["-r".into(), "data.txt".into()]).unwrap();
//! assert_eq!(ok.paths, vec!["data.txt".to_string()]);
//! let refused = rules.check("sort", &["--compress-prog=./x".into()]).unwrap_err();
//! assert_eq!(refused.code.as_str(), "argument_not_allowed");
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::deny::{Access, DenyRules};
use crate::error::{Error, ErrorCode, Result, truncate_for_message};
use crate::path::RelPath;
use crate::roots::{Roots, Target};
use crate::tier::Tier;

/// The shipped profiles, in the same TOML format operators use.
const SHIPPED: &[(&str, &str)] = &[
    ("read-only", include_str!("../profiles/read-only.toml")),
    ("build-test", include_str!("../profiles/build-test.toml")),
];

/// Names of the shipped profiles.
pub const SHIPPED_PROFILES: &[&str] = &["read-only", "build-test"];

/// Programs that run other programs or are shells: never allowed, whatever a config says.
pub const NEVER_ALLOWED: &[&str] = &[
    "sh",
    "bash",
    "dash",
    "zsh",
    "ksh",
    "csh",
    "tcsh",
    "fish",
    "busybox",
    "env",
    "xargs",
    "timeout",
    "nice",
    "nohup",
    "stdbuf",
    "setsid",
    "flock",
    "time",
    "watch",
    "chroot",
    "unshare",
    "nsenter",
    "sudo",
    "su",
    "doas",
    "pkexec",
    "strace",
    "ltrace",
    "gdb",
    "script",
    "expect",
    "parallel",
    "ssh",
    "eval",
    "exec",
    "command",
    "builtin",
    "git",
    "perl",
    "ruby",
    "php",
    "lua",
    "awk",
    "gawk",
    "mawk",
    "sed",
    "tclsh",
    "wish",
    "systemd-run",
    "runuser",
];

/// Environment variables that never reach a child, whatever a profile passes or sets: they make
/// programs load code or configuration, or carry credentials.
pub const ENV_NEVER: &[&str] = &[
    "LD_*",
    "GIT_*",
    "NODE_OPTIONS",
    "NODE_PATH",
    "RIPGREP_CONFIG_PATH",
    "LESSOPEN",
    "LESSCLOSE",
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "BASH_ENV",
    "ENV",
    "PERL5OPT",
    "PERL5LIB",
    "RUBYOPT",
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_TARGET_*_RUNNER",
    "MAKEFLAGS",
    "MFLAGS",
    "SSH_AUTH_SOCK",
    "SSH_AGENT_PID",
    "DBUS_SESSION_BUS_ADDRESS",
    "XDG_RUNTIME_DIR",
    "PAGER",
    "EDITOR",
    "VISUAL",
    "BROWSER",
    "JQ_LIBRARY_PATH",
    "GCONV_PATH",
    "HOSTALIASES",
    "*TOKEN*",
    "*SECRET*",
    "*PASSWORD*",
    "*PASSWD*",
    "*_KEY",
    "*APIKEY*",
    "*CREDENTIAL*",
    "AWS_*",
    "AZURE_*",
    "GOOGLE_*",
    "GH_*",
    "GITHUB_*",
    "NPM_TOKEN",
    "npm_config_script_shell",
    "npm_config_node_options",
    "npm_config_userconfig",
    "npm_config_globalconfig",
];

/// True when `name` matches an [`ENV_NEVER`] pattern (`*` at either end).
pub fn env_never(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ENV_NEVER.iter().any(|p| {
        let p = p.to_ascii_uppercase();
        match (p.strip_prefix('*'), p.strip_suffix('*')) {
            (Some(rest), _) if rest.ends_with('*') => upper.contains(&rest[..rest.len() - 1]),
            (Some(rest), _) => upper.ends_with(rest),
            (None, Some(head)) if head.contains('*') => {
                let (a, b) = head.split_once('*').unwrap_or((head, ""));
                upper.starts_with(a) && upper.contains(b)
            }
            (None, Some(head)) => upper.starts_with(head),
            (None, None) => upper == p,
        }
    })
}

/// How a program reads its arguments.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grammar {
    /// getopt_long: bundled short flags, `--long=value`, abbreviations, options after operands.
    #[default]
    Gnu,
    /// `find`: leading options, start points, then an expression of `-primary` words.
    Find,
    /// Nothing is an option (`echo`).
    Literal,
    /// Only the denied flags and the path-valued flags are checked (build tools, which run
    /// arbitrary code by design and are contained by the sandbox, not by their arguments).
    Permissive,
}

/// What a program's operands are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operands {
    /// Files or directories, resolved beneath the roots.
    #[default]
    Paths,
    /// Plain text, never touching the filesystem.
    Text,
    /// The first is a pattern (unless a pattern flag was given), the rest are paths.
    PatternThenPaths,
    /// No operands.
    None,
}

/// One program of a profile, as written in TOML.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProgramConfig {
    /// Executable to run: a name looked up in the system directories, or an absolute path.
    /// Defaults to the entry's name.
    pub program: Option<String>,
    /// Option grammar.
    pub grammar: Grammar,
    /// Allowed flags: `-n` (no value), `-n=` (a value), `-f=path` (a path value), `--x=?`
    /// (optional value, only as `--x=V`), `--arg=2` (two values).
    pub flags: Vec<String>,
    /// Refused flags with the reason shown to the model.
    pub deny: BTreeMap<String, String>,
    /// What operands are.
    pub operands: Operands,
    /// Most operands.
    pub max_operands: Option<usize>,
    /// Arguments always placed first (e.g. `rg --no-config`).
    pub prepend: Vec<String>,
    /// `-5` means `-n 5` (head, tail, grep context).
    pub numeric_short: bool,
    /// Flags that supply the pattern, so no operand is the pattern.
    pub pattern_flags: Vec<String>,
    /// When set, the first operand must be one of these (cargo's and npm's subcommands).
    pub subcommands: Vec<String>,
    /// Arguments the command must start with (`python -m pytest`).
    pub require_prefix: Vec<String>,
    /// The program's stdin is an interpreter (node): no stdin data, no `write_process_input`.
    pub stdin_interpreter: bool,
    /// The program accepts `--` before its operands (default true). When false (jq 1.6), no
    /// `--` is inserted and operands starting with `-` are refused instead.
    pub double_dash: Option<bool>,
    /// How the program is told to skip files and directories, for programs that read
    /// directories recursively (rg, grep -r, diff -r): the deny globs are passed this way so
    /// a recursive read never opens a secret. `{}` stands for the glob.
    pub exclude: Option<ExcludeConfig>,
}

/// Flags a recursive reader takes to skip a file glob and a directory name.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExcludeConfig {
    /// Flag for a file-name glob, `{}` replaced by the glob (`--exclude={}`).
    pub file: String,
    /// Flag for a directory name (`--exclude-dir={}`).
    pub dir: String,
}

/// A command profile, as written in TOML (the shipped ones live in `crates/policy/profiles`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProfileConfig {
    /// Profile name.
    pub name: String,
    /// One line for `list_allowed_commands`.
    pub description: String,
    /// The tier of running these programs (`read` or `exec`).
    pub tier: Option<Tier>,
    /// Refuse to run unless the kernel sandbox (Landlock) is active.
    pub requires_sandbox: bool,
    /// Another shipped profile whose programs are included.
    pub includes: Option<String>,
    /// Variables passed through from the server's environment when set.
    pub pass_env: Vec<String>,
    /// Variables set for every child.
    pub set_env: BTreeMap<String, String>,
    /// TCP ports children may connect to (none by default).
    pub tcp_connect: Vec<u16>,
    /// The programs.
    pub programs: BTreeMap<String, ProgramConfig>,
}

/// The `[shell]` table of the policy configuration.
///
/// ```toml
/// [shell]
/// profile = "build-test"
/// allow_degraded = false          # refuse exec-tier profiles without Landlock
/// extra_read = ["/opt/toolchains"] # readable and executable inside the sandbox
/// remove = ["jq"]
/// [shell.programs.shellcheck]     # add a program with its flag rules
/// flags = ["-f=", "--format=", "-S=", "--severity="]
/// operands = "paths"
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShellConfig {
    /// The command profile (`read-only` or `build-test`).
    pub profile: String,
    /// Programs added to (or replacing those of) the profile.
    pub programs: BTreeMap<String, ProgramConfig>,
    /// Programs removed from the profile.
    pub remove: Vec<String>,
    /// Variables passed through in addition to the profile's.
    pub pass_env: Vec<String>,
    /// Variables set in addition to the profile's.
    pub set_env: BTreeMap<String, String>,
    /// TCP ports children may connect to, in addition to the profile's.
    pub tcp_connect: Vec<u16>,
    /// Directories readable and executable inside the sandbox besides the system ones.
    pub extra_read: Vec<PathBuf>,
    /// Run exec-tier profiles even without Landlock (the operator accepts a weaker sandbox).
    pub allow_degraded: bool,
    /// Default `run_command` timeout.
    pub timeout_ms: u64,
    /// Largest timeout a call may ask for.
    pub max_timeout_ms: u64,
    /// Bytes kept of each of stdout and stderr per `run_command`, and of a process's output.
    pub max_output_bytes: usize,
    /// Most processes started with `start_process` alive at once.
    pub max_processes: usize,
    /// Resource limits of every child.
    pub rlimits: RlimitConfig,
}

impl Default for ShellConfig {
    fn default() -> Self {
        ShellConfig {
            profile: "read-only".into(),
            programs: BTreeMap::new(),
            remove: Vec::new(),
            pass_env: Vec::new(),
            set_env: BTreeMap::new(),
            tcp_connect: Vec::new(),
            extra_read: Vec::new(),
            allow_degraded: false,
            timeout_ms: 30_000,
            max_timeout_ms: 600_000,
            max_output_bytes: 1 << 20,
            max_processes: 8,
            rlimits: RlimitConfig::default(),
        }
    }
}

impl ShellConfig {
    /// Compiles the rules this configuration describes.
    pub fn rules(&self) -> Result<CommandRules> {
        let mut profile = parse_profile(&self.profile)?;
        profile.pass_env.extend(self.pass_env.iter().cloned());
        profile.set_env.extend(self.set_env.clone());
        profile.tcp_connect.extend(self.tcp_connect.iter().copied());
        CommandRules::compile(profile, &self.programs, &self.remove)
    }
}

/// Resource limits applied to every child (soft = hard).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RlimitConfig {
    /// CPU seconds.
    pub cpu_seconds: u64,
    /// Address space in MiB (0: unlimited; JVMs need it).
    pub address_space_mib: u64,
    /// Largest file a child may write, in MiB.
    pub file_size_mib: u64,
    /// Open files.
    pub open_files: u64,
}

impl Default for RlimitConfig {
    fn default() -> Self {
        RlimitConfig { cpu_seconds: 900, address_space_mib: 8192, file_size_mib: 2048, open_files: 4096 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Value {
    None,
    Text,
    Path,
    Optional,
    Two,
}

/// A program the rules allow, compiled from its [`ProgramConfig`].
#[derive(Clone, Debug)]
pub struct Program {
    /// Name the model uses.
    pub name: String,
    /// Absolute path of the executable, `None` when it is not installed.
    pub exe: Option<PathBuf>,
    /// The program's stdin is an interpreter.
    pub stdin_interpreter: bool,
    grammar: Grammar,
    short: HashMap<char, Value>,
    long: BTreeMap<String, Value>,
    denied: BTreeMap<String, String>,
    operands: Operands,
    max_operands: Option<usize>,
    prepend: Vec<String>,
    numeric_short: bool,
    pattern_flags: Vec<String>,
    subcommands: Vec<String>,
    require_prefix: Vec<String>,
    double_dash: bool,
    exclude: Option<ExcludeConfig>,
}

/// A command that passed the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedArgs {
    /// The arguments to run with (prepended arguments added, abbreviations expanded).
    pub argv: Vec<String>,
    /// Every argument that names a file, to be resolved beneath the roots before running.
    pub paths: Vec<String>,
}

/// The compiled rules of one profile.
#[derive(Clone, Debug)]
pub struct CommandRules {
    /// Profile name.
    pub profile: String,
    /// Profile description.
    pub description: String,
    /// Tier of the profile's programs.
    pub tier: Tier,
    /// Whether the sandbox must be active.
    pub requires_sandbox: bool,
    /// Variables passed through when set.
    pub pass_env: Vec<String>,
    /// Variables set for every child.
    pub set_env: Vec<(String, String)>,
    /// TCP ports children may connect to.
    pub tcp_connect: Vec<u16>,
    programs: BTreeMap<String, Program>,
}

fn invalid_config(msg: String) -> Error {
    Error::new(ErrorCode::InvalidConfig, msg)
}

fn parse_profile(name: &str) -> Result<ProfileConfig> {
    let (_, text) = SHIPPED.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        invalid_config(format!("unknown command profile '{name}'; shipped profiles: {}", SHIPPED_PROFILES.join(", ")))
    })?;
    toml::from_str(text).map_err(|e| invalid_config(format!("shipped profile {name}: {e}")))
}

impl CommandRules {
    /// Compiles a shipped profile (`read-only`, `build-test`).
    pub fn shipped(name: &str) -> Result<Self> {
        Self::compile(parse_profile(name)?, &BTreeMap::new(), &[])
    }

    /// Compiles `profile` (its `includes` resolved against the shipped profiles), then adds or
    /// replaces `extra` programs and removes `remove`.
    pub fn compile(profile: ProfileConfig, extra: &BTreeMap<String, ProgramConfig>, remove: &[String]) -> Result<Self> {
        let mut programs_cfg = BTreeMap::new();
        if let Some(base) = &profile.includes {
            let base = parse_profile(base)?;
            programs_cfg.extend(base.programs);
        }
        programs_cfg.extend(profile.programs.clone());
        programs_cfg.extend(extra.clone());
        for name in remove {
            programs_cfg.remove(name);
        }
        let mut programs = BTreeMap::new();
        for (name, cfg) in programs_cfg {
            programs.insert(name.clone(), Program::compile(&name, &cfg)?);
        }
        for var in profile.pass_env.iter().chain(profile.set_env.keys()) {
            if env_never(var) {
                return Err(invalid_config(format!(
                    "profile {}: the environment variable {var} may never reach a command (it loads code or carries credentials)",
                    profile.name
                )));
            }
        }
        let tier = profile.tier.unwrap_or(Tier::Read);
        if !matches!(tier, Tier::Read | Tier::Exec) {
            return Err(invalid_config(format!("profile {}: tier must be read or exec", profile.name)));
        }
        Ok(CommandRules {
            profile: profile.name,
            description: profile.description,
            tier,
            requires_sandbox: profile.requires_sandbox || tier == Tier::Exec,
            pass_env: profile.pass_env,
            set_env: profile.set_env.into_iter().collect(),
            tcp_connect: profile.tcp_connect,
            programs,
        })
    }

    /// Loads a shipped profile by name and applies a config's additions.
    pub fn load(name: &str, extra: &BTreeMap<String, ProgramConfig>, remove: &[String]) -> Result<Self> {
        Self::compile(parse_profile(name)?, extra, remove)
    }

    /// Every allowed program, by name.
    pub fn programs(&self) -> impl Iterator<Item = &Program> {
        self.programs.values()
    }

    /// The program `name`, or `command_not_allowed`.
    pub fn program(&self, name: &str) -> Result<&Program> {
        if let Some(p) = self.programs.get(name) {
            return Ok(p);
        }
        let shown = truncate_for_message(name);
        let why = if name.contains('/') {
            "programs are named without a path (e.g. 'ls')".to_string()
        } else if name.chars().any(|c| c.is_whitespace() || ";|&$`<>(){}'\"\\*?".contains(c)) {
            "program is one name: put each argument in args[]; nothing is interpreted by a shell".to_string()
        } else if NEVER_ALLOWED.contains(&name) {
            "it runs other programs or is a shell or interpreter, which the sandbox rules never allow".to_string()
        } else {
            format!("it is not in the '{}' profile", self.profile)
        };
        Err(Error::new(
            ErrorCode::CommandNotAllowed,
            format!("'{shown}' cannot be run: {why}; call list_allowed_commands for the programs and flags allowed"),
        ))
    }

    /// Refuses a profile that needs the sandbox (`build-test`) when Landlock is not active,
    /// unless the operator accepted a degraded sandbox. `why` says what the probe found.
    pub fn check_sandbox(&self, landlock_active: bool, allow_degraded: bool, why: &str) -> Result<()> {
        if self.requires_sandbox && !landlock_active && !allow_degraded {
            return Err(Error::new(
                ErrorCode::SandboxUnavailable,
                format!(
                    "the '{}' profile runs project code and needs the Landlock sandbox, which this kernel does not provide ({why}); the operator can accept a weaker sandbox with allow_degraded = true",
                    self.profile
                ),
            ));
        }
        Ok(())
    }

    /// Checks `args` for `program` and returns what to run.
    pub fn check(&self, program: &str, args: &[String]) -> Result<CheckedArgs> {
        self.program(program)?.check(args)
    }
}

impl Program {
    fn compile(name: &str, cfg: &ProgramConfig) -> Result<Self> {
        let fail = |m: String| invalid_config(format!("command rule '{name}': {m}"));
        if name.is_empty() || name.contains('/') || name.chars().any(char::is_whitespace) {
            return Err(fail("the name must be a plain program name".into()));
        }
        if NEVER_ALLOWED.contains(&name) {
            return Err(fail("this program runs other programs or is a shell; it cannot be allowed".into()));
        }
        let target = cfg.program.clone().unwrap_or_else(|| name.to_string());
        let base = Path::new(&target).file_name().and_then(|n| n.to_str()).unwrap_or("");
        if NEVER_ALLOWED.contains(&base) {
            return Err(fail(format!("'{target}' runs other programs or is a shell; it cannot be allowed")));
        }
        let mut short = HashMap::new();
        let mut long = BTreeMap::new();
        for spec in &cfg.flags {
            let (flag, value) = match spec.split_once('=') {
                None => (spec.as_str(), Value::None),
                Some((f, "")) => (f, Value::Text),
                Some((f, "path")) => (f, Value::Path),
                Some((f, "?")) => (f, Value::Optional),
                Some((f, "2")) => (f, Value::Two),
                Some((_, other)) => return Err(fail(format!("flag '{spec}': unknown value kind '{other}'"))),
            };
            if cfg.deny.contains_key(flag) {
                return Err(fail(format!("'{flag}' is both allowed and denied")));
            }
            match flag_kind(flag, cfg.grammar) {
                Some(FlagKind::Short(c)) => {
                    short.insert(c, value);
                }
                Some(FlagKind::Long(l)) => {
                    long.insert(l.to_string(), value);
                }
                None => return Err(fail(format!("'{spec}' is not a flag"))),
            }
        }
        Ok(Program {
            name: name.to_string(),
            exe: find_executable(&target),
            stdin_interpreter: cfg.stdin_interpreter,
            grammar: cfg.grammar,
            short,
            long,
            denied: cfg.deny.clone(),
            operands: cfg.operands,
            max_operands: cfg.max_operands,
            prepend: cfg.prepend.clone(),
            numeric_short: cfg.numeric_short,
            pattern_flags: cfg.pattern_flags.clone(),
            subcommands: cfg.subcommands.clone(),
            require_prefix: cfg.require_prefix.clone(),
            double_dash: cfg.double_dash.unwrap_or(true),
            exclude: cfg.exclude.clone(),
        })
    }

    /// How many leading arguments of a checked argv the rules put there (`require_prefix`,
    /// `prepend`): where [`Program::exclusion_args`] go.
    pub fn fixed_prefix_len(&self) -> usize {
        self.require_prefix.len() + self.prepend.len()
    }

    /// The flags that make a recursive reader skip everything the deny globs cover (empty for
    /// programs that do not read directories recursively). A glob `dir/**` or `dir/file`
    /// becomes the directory `dir`; a glob without `/` a file-name glob.
    pub fn exclusion_args(&self, deny_globs: &[String]) -> Vec<String> {
        let Some(ex) = &self.exclude else { return Vec::new() };
        let mut out = Vec::new();
        for glob in deny_globs {
            let glob = glob.trim_start_matches("**/").trim_start_matches('/');
            let arg = match glob.split_once('/') {
                Some((dir, _)) => ex.dir.replace("{}", dir),
                None => ex.file.replace("{}", glob),
            };
            if !out.contains(&arg) {
                out.push(arg);
            }
        }
        out
    }

    /// The allowed flags, for `list_allowed_commands`.
    pub fn allowed_flags(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .short
            .iter()
            .map(|(c, v)| format!("-{c}{}", value_suffix(*v)))
            .chain(self.long.iter().map(|(l, v)| format!("{l}{}", value_suffix(*v))))
            .collect();
        out.sort();
        out
    }

    /// The denied flags with their reasons.
    pub fn denied_flags(&self) -> &BTreeMap<String, String> {
        &self.denied
    }

    /// A short description of the operands and grammar.
    pub fn operand_summary(&self) -> String {
        let grammar = match self.grammar {
            Grammar::Gnu => "",
            Grammar::Find => "find expression; ",
            Grammar::Literal => "every argument is literal text; ",
            Grammar::Permissive => "runs project code inside the sandbox; any flag except the denied ones; ",
        };
        let operands = match self.operands {
            Operands::Paths => "operands are paths inside the roots",
            Operands::Text => "operands are text",
            Operands::PatternThenPaths => "first operand is the pattern, then paths inside the roots",
            Operands::None => "no operands",
        };
        let mut s = format!("{grammar}{operands}");
        if !self.subcommands.is_empty() {
            s.push_str(&format!("; subcommands: {}", self.subcommands.join(" ")));
        }
        if !self.require_prefix.is_empty() {
            s.push_str(&format!("; must start with: {}", self.require_prefix.join(" ")));
        }
        if let Some(max) = self.max_operands {
            s.push_str(&format!("; at most {max} operand(s)"));
        }
        s
    }

    /// Checks `args` and returns what to run.
    pub fn check(&self, args: &[String]) -> Result<CheckedArgs> {
        for a in args {
            if a.contains('\0') {
                return Err(self.refuse("an argument contains a NUL byte, which no program can receive".into()));
            }
        }
        if !self.require_prefix.is_empty() && !args.starts_with(&self.require_prefix) {
            return Err(self.refuse(format!(
                "{} may only be run as '{} {} ...'",
                self.name,
                self.name,
                self.require_prefix.join(" ")
            )));
        }
        let rest = &args[self.require_prefix.len().min(args.len())..];
        let mut checked = match self.grammar {
            Grammar::Gnu => self.check_gnu(rest)?,
            Grammar::Permissive => self.check_permissive(rest)?,
            Grammar::Find => self.check_find(rest)?,
            Grammar::Literal => CheckedArgs { argv: rest.to_vec(), paths: Vec::new() },
        };
        let mut argv = self.require_prefix.clone();
        argv.extend(self.prepend.iter().cloned());
        argv.append(&mut checked.argv);
        checked.argv = argv;
        Ok(checked)
    }

    fn refuse(&self, why: String) -> Error {
        Error::new(
            ErrorCode::ArgumentNotAllowed,
            format!("{why}; call list_allowed_commands for what {} accepts", self.name),
        )
    }

    fn denied_reason(&self, flag: &str) -> Option<&str> {
        self.denied.get(flag).map(String::as_str)
    }

    /// The full long flag `given` (without `=value`) stands for: exact, or the one allowed flag
    /// it abbreviates. Abbreviations of denied flags are refused.
    fn resolve_long(&self, given: &str) -> Result<(String, Value)> {
        let shown = truncate_for_message(given);
        if let Some(reason) = self.denied_reason(given) {
            return Err(self.refuse(format!("{shown} is not allowed: it {reason}")));
        }
        if let Some(v) = self.long.get(given) {
            return Ok((given.to_string(), *v));
        }
        if let Some((full, reason)) = self.denied.iter().find(|(d, _)| d.starts_with("--") && d.starts_with(given)) {
            return Err(self.refuse(format!("{shown} abbreviates {full}, which is not allowed: it {reason}")));
        }
        let candidates: Vec<(&String, &Value)> = self.long.iter().filter(|(l, _)| l.starts_with(given)).collect();
        match candidates.as_slice() {
            [(full, v)] => Ok(((*full).clone(), **v)),
            [] => Err(self.refuse(format!("{shown} is not an allowed flag of {}", self.name))),
            many => Err(self.refuse(format!(
                "{shown} is ambiguous ({}); write the flag in full",
                many.iter().map(|(l, _)| l.as_str()).collect::<Vec<_>>().join(", ")
            ))),
        }
    }

    fn check_gnu(&self, args: &[String]) -> Result<CheckedArgs> {
        let mut argv = Vec::with_capacity(args.len() + 1);
        let mut paths = Vec::new();
        let mut operands: Vec<String> = Vec::new();
        let mut pattern_given = false;
        let mut i = 0;
        let mut end_of_options = false;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if end_of_options || a == "-" || !a.starts_with('-') {
                operands.push(a.clone());
                continue;
            }
            if a == "--" {
                end_of_options = true;
                continue;
            }
            if let Some(body) = a.strip_prefix("--") {
                let (name, inline) = match body.split_once('=') {
                    Some((n, v)) => (format!("--{n}"), Some(v.to_string())),
                    None => (a.clone(), None),
                };
                let (full, kind) = self.resolve_long(&name)?;
                pattern_given |= self.pattern_flags.contains(&full);
                match (kind, inline) {
                    (Value::None, Some(_)) => return Err(self.refuse(format!("{full} takes no value"))),
                    (Value::None, None) => argv.push(full),
                    (Value::Optional, v) => argv.push(match v {
                        Some(v) => format!("{full}={v}"),
                        None => full,
                    }),
                    (Value::Two, inline) => {
                        let first = match inline {
                            Some(v) => v,
                            None => self.take_value(args, &mut i, &full)?,
                        };
                        let second = self.take_value(args, &mut i, &full)?;
                        argv.extend([full, first, second]);
                    }
                    (kind, inline) => {
                        let v = match inline {
                            Some(v) => v,
                            None => self.take_value(args, &mut i, &full)?,
                        };
                        if kind == Value::Path {
                            paths.push(v.clone());
                        }
                        argv.push(format!("{full}={v}"));
                    }
                }
                continue;
            }
            // A bundle of short flags: `-abc`, `-n5`, `-n 5`.
            let body = &a[1..];
            if self.numeric_short && body.bytes().all(|b| b.is_ascii_digit()) {
                argv.push(a.clone());
                continue;
            }
            argv.push(a.clone());
            for (pos, c) in body.char_indices() {
                let flag = format!("-{c}");
                if let Some(reason) = self.denied_reason(&flag) {
                    return Err(self.refuse(format!("{flag} is not allowed: it {reason}")));
                }
                let Some(kind) = self.short.get(&c) else {
                    return Err(self.refuse(format!(
                        "-{} is not an allowed flag of {}",
                        truncate_for_message(&c.to_string()),
                        self.name
                    )));
                };
                pattern_given |= self.pattern_flags.contains(&flag);
                match kind {
                    Value::None | Value::Optional => {}
                    Value::Two => {
                        return Err(self.refuse(format!("{flag} takes two values; give it on its own")));
                    }
                    Value::Text | Value::Path => {
                        let attached = &body[pos + c.len_utf8()..];
                        let v = if attached.is_empty() {
                            let v = self.take_value(args, &mut i, &flag)?;
                            argv.push(v.clone());
                            v
                        } else {
                            attached.to_string()
                        };
                        if *kind == Value::Path {
                            paths.push(v);
                        }
                        break;
                    }
                }
            }
        }
        self.classify_operands(&operands, pattern_given, &mut paths)?;
        if !operands.is_empty() {
            if self.double_dash {
                // Operands go after `--`, so one that starts with '-' stays an operand.
                argv.push("--".to_string());
            } else if let Some(dashed) = operands.iter().find(|o| o.starts_with('-') && o.as_str() != "-") {
                return Err(self.refuse(format!(
                    "{} cannot take an operand starting with '-' ('{}'): it does not accept '--'",
                    self.name,
                    truncate_for_message(dashed)
                )));
            }
            argv.extend(operands);
        }
        Ok(CheckedArgs { argv, paths })
    }

    fn take_value(&self, args: &[String], i: &mut usize, flag: &str) -> Result<String> {
        let v = args.get(*i).cloned().ok_or_else(|| self.refuse(format!("{flag} needs a value")))?;
        *i += 1;
        Ok(v)
    }

    fn classify_operands(&self, operands: &[String], pattern_given: bool, paths: &mut Vec<String>) -> Result<()> {
        if let Some(max) = self.max_operands
            && operands.len() > max
        {
            return Err(self.refuse(format!("{} takes at most {max} operand(s), got {}", self.name, operands.len())));
        }
        match self.operands {
            Operands::Paths => paths.extend(operands.iter().cloned()),
            Operands::Text => {}
            Operands::PatternThenPaths => {
                let skip = usize::from(!pattern_given);
                paths.extend(operands.iter().skip(skip).cloned());
            }
            Operands::None if !operands.is_empty() => {
                return Err(self.refuse(format!("{} takes no operands", self.name)));
            }
            Operands::None => {}
        }
        Ok(())
    }

    /// Build tools: the subcommand must be allowed, denied flags (and abbreviations of denied
    /// long flags, and denied letters anywhere in a short bundle) are refused, path-valued flags
    /// are confined; everything else is the sandbox's business.
    fn check_permissive(&self, args: &[String]) -> Result<CheckedArgs> {
        if !self.subcommands.is_empty() {
            let first = args.iter().find(|a| !a.starts_with('-') || self.subcommands.contains(a));
            match first {
                Some(sub) if self.subcommands.contains(sub) => {}
                Some(sub) => {
                    return Err(self.refuse(format!(
                        "'{}' is not an allowed subcommand of {}; allowed: {}",
                        truncate_for_message(sub),
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
                None => {
                    return Err(self.refuse(format!(
                        "{} needs a subcommand; allowed: {}",
                        self.name,
                        self.subcommands.join(", ")
                    )));
                }
            }
        }
        let mut paths = Vec::new();
        let mut i = 0;
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if a == "--" {
                break;
            }
            if !a.starts_with('-') || a == "-" {
                continue;
            }
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (a.as_str(), None),
            };
            if let Some(reason) = self.denied_reason(name) {
                return Err(self.refuse(format!("{name} is not allowed: it {reason}")));
            }
            if name.starts_with("--") {
                if name.len() > 3
                    && let Some((full, reason)) =
                        self.denied.iter().find(|(d, _)| d.starts_with("--") && d.starts_with(name))
                {
                    return Err(self.refuse(format!("{name} abbreviates {full}, which is not allowed: it {reason}")));
                }
            } else if !name.starts_with("--") {
                // Go's single-dash long flags (`-toolexec`) and bundled short letters.
                if let Some((flag, reason)) = self.denied.iter().find(|(d, _)| {
                    !d.starts_with("--") && d.len() > 2 && (name == d.as_str() || name.starts_with(&format!("{d}=")))
                }) {
                    return Err(self.refuse(format!("{flag} is not allowed: it {reason}")));
                }
                for c in name[1..].chars() {
                    let flag = format!("-{c}");
                    if let Some(reason) = self.denied_reason(&flag) {
                        return Err(self.refuse(format!("{flag} (in {name}) is not allowed: it {reason}")));
                    }
                }
            }
            let path_flag = self.long.get(name).copied().or_else(|| {
                let mut chars = name.chars();
                match (chars.next(), chars.next(), chars.next()) {
                    (Some('-'), Some(c), None) => self.short.get(&c).copied(),
                    _ => None,
                }
            });
            if path_flag == Some(Value::Path) {
                let v = match inline {
                    Some(v) => v.to_string(),
                    None => self.take_value(args, &mut i, name)?,
                };
                paths.push(v);
            } else if let Some(c) =
                name.strip_prefix('-').filter(|n| !n.starts_with('-')).and_then(|n| n.chars().next())
                && self.short.get(&c) == Some(&Value::Path)
                && name.len() > 2
            {
                paths.push(name[2..].to_string());
            }
        }
        Ok(CheckedArgs { argv: args.to_vec(), paths })
    }

    fn check_find(&self, args: &[String]) -> Result<CheckedArgs> {
        let mut paths = Vec::new();
        let mut i = 0;
        // Leading options (-P, -D ..., -O...).
        while i < args.len() && matches!(args[i].as_str(), "-P" | "-H" | "-L") {
            if let Some(reason) = self.denied_reason(&args[i]) {
                return Err(self.refuse(format!("{} is not allowed: it {reason}", args[i])));
            }
            i += 1;
        }
        let is_expr = |a: &str| (a.starts_with('-') && a.len() > 1) || matches!(a, "(" | ")" | "!" | ",");
        while i < args.len() && !is_expr(&args[i]) {
            paths.push(args[i].clone());
            i += 1;
        }
        while i < args.len() {
            let a = &args[i];
            i += 1;
            if matches!(a.as_str(), "(" | ")" | "!" | ",") {
                continue;
            }
            if let Some(reason) = self.denied_reason(a) {
                return Err(self.refuse(format!("{a} is not allowed: it {reason}")));
            }
            let Some(kind) = self.long.get(a.as_str()) else {
                return Err(self.refuse(format!(
                    "'{}' is not an allowed find primary here (start points come first, then the expression)",
                    truncate_for_message(a)
                )));
            };
            match kind {
                Value::None => {}
                Value::Text | Value::Optional => {
                    self.take_value(args, &mut i, a)?;
                }
                Value::Path => {
                    let v = self.take_value(args, &mut i, a)?;
                    paths.push(v);
                }
                Value::Two => {
                    self.take_value(args, &mut i, a)?;
                    self.take_value(args, &mut i, a)?;
                }
            }
        }
        Ok(CheckedArgs { argv: args.to_vec(), paths })
    }
}

enum FlagKind<'a> {
    Short(char),
    Long(&'a str),
}

fn flag_kind(flag: &str, grammar: Grammar) -> Option<FlagKind<'_>> {
    let body = flag.strip_prefix('-')?;
    if body.is_empty() {
        return None;
    }
    if grammar == Grammar::Find || body.starts_with('-') {
        return Some(FlagKind::Long(flag));
    }
    let mut chars = body.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(FlagKind::Short(c)),
        // Single-dash long flags (go's -race, find's -name) are matched whole.
        _ => Some(FlagKind::Long(flag)),
    }
}

fn value_suffix(v: Value) -> &'static str {
    match v {
        Value::None => "",
        Value::Text => " VALUE",
        Value::Path => " PATH",
        Value::Optional => "[=VALUE]",
        Value::Two => " NAME VALUE",
    }
}

/// Directories searched for executables named without a path. `$PATH` is not used for the
/// read-only tools: a root on `$PATH` would let the model plant a program.
pub const SYSTEM_BIN_DIRS: &[&str] = &["/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin"];

/// Finds `name` in the system directories, then in the server's `$PATH` (absolute entries only),
/// and returns the path found (not canonicalised: symlinks such as rustup's proxies and pyenv's
/// shims work by their name).
pub fn find_executable(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if name.starts_with('/') {
        return is_exec(Path::new(name)).then(|| PathBuf::from(name));
    }
    let path_var = std::env::var_os("PATH").unwrap_or_default();
    SYSTEM_BIN_DIRS
        .iter()
        .map(PathBuf::from)
        .chain(std::env::split_paths(&path_var).filter(|p| p.is_absolute()))
        .map(|dir| dir.join(name))
        .find(|p| is_exec(p))
}

/// Refuses an executable that lies (or whose symlinks lead) inside a root: one found through a
/// root on the server's `PATH` would be a program the model can write.
pub fn check_executable(roots: &Roots, program: &str, exe: &Path) -> Result<()> {
    let real = exe.canonicalize().unwrap_or_else(|_| exe.to_path_buf());
    if roots.iter().any(|r| exe.starts_with(r.real_path()) || real.starts_with(r.real_path())) {
        return Err(Error::new(
            ErrorCode::CommandNotAllowed,
            format!(
                "'{}' resolves to a file inside a root, which is never run as a trusted program",
                truncate_for_message(program)
            ),
        ));
    }
    Ok(())
}

/// Checks a path argument of a command run in `cwd`: it must lie beneath a root (following
/// in-root symlinks), must not be denied by the globs, and must not climb through a symlink with
/// `..` (the program resolves `..` physically). A missing path is fine: the program reports it.
pub fn check_path_argument(roots: &Roots, deny: &DenyRules, cwd: &Target, arg: &str, access: Access) -> Result<()> {
    if arg == "-" || arg.is_empty() {
        return Ok(());
    }
    let raw = Path::new(arg);
    let (target, mut prefix, remainder) = if raw.is_absolute() {
        let target = roots.target(arg, None)?;
        let remainder = raw.strip_prefix(target.root.real_path()).unwrap_or(raw).to_path_buf();
        (target, PathBuf::new(), remainder)
    } else {
        let joined = cwd.rel.as_path().join(raw);
        let target = Target { root: cwd.root.clone(), rel: RelPath::parse(&joined)? };
        (target, cwd.rel.as_path().to_path_buf(), raw.to_path_buf())
    };
    // The program resolves `a/../b` through `a`: a symlink there could lead anywhere.
    for component in remainder.components() {
        match component {
            Component::ParentDir => {
                let rel = RelPath::parse(&prefix)?;
                if !rel.is_root() && is_symlink(roots, &target, rel, deny) {
                    return Err(Error::new(
                        ErrorCode::PathOutsideRoot,
                        format!(
                            "'{}' uses '..' after a symbolic link, which the program would follow out of the root; name the target directly",
                            truncate_for_message(arg)
                        ),
                    ));
                }
                prefix.pop();
            }
            Component::Normal(n) => prefix.push(n),
            _ => {}
        }
    }
    deny.check_in(&target.root, &target.rel, access)?;
    match roots.stat(&target, deny) {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.code, ErrorCode::NotFound | ErrorCode::NotADirectory) => Ok(()),
        Err(e) => Err(e),
    }
}

fn is_symlink(roots: &Roots, t: &Target, rel: RelPath, deny: &DenyRules) -> bool {
    let probe = Target { root: t.root.clone(), rel };
    match roots.stat(&probe, deny) {
        Ok((_, Some(link), _)) => (link.st_mode & 0o170000) == 0o120000,
        Ok(_) => false,
        // A component that escapes or cannot be resolved is treated as a link.
        Err(e) => !matches!(e.code, ErrorCode::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn code(rules: &CommandRules, program: &str, a: &[&str]) -> &'static str {
        match rules.check(program, &args(a)) {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        }
    }

    #[test]
    fn shipped_profiles_compile() {
        let ro = CommandRules::shipped("read-only").unwrap();
        assert_eq!(ro.tier, Tier::Read);
        assert!(!ro.requires_sandbox);
        assert_eq!(ro.programs().count(), 29);
        let bt = CommandRules::shipped("build-test").unwrap();
        assert_eq!(bt.tier, Tier::Exec);
        assert!(bt.requires_sandbox);
        assert!(bt.program("ls").is_ok() && bt.program("cargo").is_ok());
    }

    #[test]
    fn hostile_table() {
        let ro = CommandRules::shipped("read-only").unwrap();
        let table: &[(&str, &[&str], &str)] = &[
            ("ls", &["-la", "src"], "ok"),
            ("sort", &["-o", "x"], "argument_not_allowed"),
            ("sort", &["-ro", "x"], "argument_not_allowed"),
            ("sort", &["-rox"], "argument_not_allowed"),
            ("sort", &["--output=x"], "argument_not_allowed"),
            ("sort", &["--out=x"], "argument_not_allowed"),
            ("sort", &["--compress-prog=./x"], "argument_not_allowed"),
            ("sort", &["--compress", "./x"], "argument_not_allowed"),
            ("sort", &["a.txt", "--compress-program=./x"], "argument_not_allowed"),
            ("sort", &["--", "--compress-program=./x"], "ok"),
            ("rg", &["hello", "in.txt", "--pre", "./pre.sh"], "argument_not_allowed"),
            ("rg", &["--pre=./pre.sh", "x"], "argument_not_allowed"),
            ("rg", &["--pr", "./pre.sh", "x"], "argument_not_allowed"),
            ("rg", &["-z", "x"], "argument_not_allowed"),
            ("rg", &["-iz", "x"], "argument_not_allowed"),
            ("rg", &["--search-z", "x"], "argument_not_allowed"),
            ("rg", &["--hostname-bin=/bin/id", "x"], "argument_not_allowed"),
            ("rg", &["-L", "x"], "argument_not_allowed"),
            ("find", &[".", "-exec", "rm", "{}", ";"], "argument_not_allowed"),
            ("find", &[".", "-name", "*.rs", "-execdir", "id", ";"], "argument_not_allowed"),
            ("find", &[".", "-ok", "id", ";"], "argument_not_allowed"),
            ("find", &[".", "-delete"], "argument_not_allowed"),
            ("find", &["/", "-fprint", "x"], "argument_not_allowed"),
            ("find", &[".", "-fprintf", "x", "%p"], "argument_not_allowed"),
            ("find", &["-L", "."], "argument_not_allowed"),
            ("find", &[".", "-name", "-exec"], "ok"),
            ("find", &[".", "-type", "f", "-name", "*.rs"], "ok"),
            ("tree", &["-o", "out.txt"], "argument_not_allowed"),
            ("tree", &["-ao", "out.txt"], "argument_not_allowed"),
            ("file", &["-C"], "argument_not_allowed"),
            ("file", &["-m", "magic", "x"], "argument_not_allowed"),
            ("wc", &["--files0-from=/etc/hostname"], "argument_not_allowed"),
            ("wc", &["--files0=/etc/hostname"], "argument_not_allowed"),
            ("jq", &["--rawfile", "a", "/etc/passwd", "."], "argument_not_allowed"),
            ("jq", &["--raw", "a", "/etc/passwd", "."], "argument_not_allowed"),
            ("jq", &["-n", "env"], "ok"),
            ("jq", &["--arg", "x", "5", ".a", "f.json"], "ok"),
            ("jq", &["--", "-x", "f.json"], "argument_not_allowed"),
            ("jq", &["--", ".", "-"], "ok"),
            ("tail", &["-f", "log"], "argument_not_allowed"),
            ("tail", &["--fol", "log"], "argument_not_allowed"),
            ("head", &["-5", "log"], "ok"),
            ("date", &["-s", "2020-01-01"], "argument_not_allowed"),
            ("uniq", &["in", "out"], "argument_not_allowed"),
            ("echo", &["$(id)", "; touch x", "`id`"], "ok"),
            ("sh", &["-c", "touch x"], "command_not_allowed"),
            ("bash", &["-c", "touch x"], "command_not_allowed"),
            ("env", &["touch", "x"], "command_not_allowed"),
            ("xargs", &["touch"], "command_not_allowed"),
            ("eval", &["touch x"], "command_not_allowed"),
            ("command", &["touch", "x"], "command_not_allowed"),
            ("\\touch", &["x"], "command_not_allowed"),
            ("'touch'", &["x"], "command_not_allowed"),
            ("ls\ntouch", &["x"], "command_not_allowed"),
            ("{", &["touch", "x;", "}"], "command_not_allowed"),
            ("$(echo touch)", &["x"], "command_not_allowed"),
            ("python3", &["-c", "print(1)"], "command_not_allowed"),
            ("/bin/ls", &[], "command_not_allowed"),
            ("touch", &["x"], "command_not_allowed"),
            ("git", &["log"], "command_not_allowed"),
            ("cat", &["a\0b"], "argument_not_allowed"),
        ];
        for (program, a, want) in table {
            assert_eq!(code(&ro, program, a), *want, "{program} {a:?}");
        }
    }

    #[test]
    fn rewrites_abbreviations_and_quarantines_operands() {
        let ro = CommandRules::shipped("read-only").unwrap();
        let c = ro.check("sort", &args(&["--rev", "-k", "2", "f", "-n"])).unwrap();
        assert_eq!(c.argv, args(&["--reverse", "-k", "2", "-n", "--", "f"]));
        assert_eq!(c.paths, args(&["f"]));
        let c = ro.check("rg", &args(&["-e", "-x", "src"])).unwrap();
        assert_eq!(c.argv, args(&["--no-config", "-e", "-x", "--", "src"]));
        assert_eq!(c.paths, args(&["src"]));
        let c = ro.check("grep", &args(&["-rn", "TODO", "src"])).unwrap();
        assert_eq!(c.paths, args(&["src"]));
        let c = ro.check("grep", &args(&["-f", "pats", "src"])).unwrap();
        assert_eq!(c.paths, args(&["pats", "src"]));
        let c = ro.check("find", &args(&["src", "-newer", "x", "-name", "*.rs"])).unwrap();
        assert_eq!(c.paths, args(&["src", "x"]));
        let c = ro.check("jq", &args(&["-r", ".a", "f.json"])).unwrap();
        assert_eq!(c.argv, args(&["-r", ".a", "f.json"]));
        let c = ro.check("diff", &args(&["--from-file=a", "b"])).unwrap();
        assert_eq!(c.paths, args(&["a", "b"]));
    }

    #[test]
    fn exec_profiles_need_the_sandbox() {
        let bt = CommandRules::shipped("build-test").unwrap();
        assert_eq!(bt.check_sandbox(false, false, "no Landlock").unwrap_err().code, ErrorCode::SandboxUnavailable);
        assert!(bt.check_sandbox(false, true, "").is_ok() && bt.check_sandbox(true, false, "").is_ok());
        assert!(CommandRules::shipped("read-only").unwrap().check_sandbox(false, false, "").is_ok());
    }

    #[test]
    fn recursive_readers_skip_denied_files() {
        let ro = CommandRules::shipped("read-only").unwrap();
        let globs: Vec<String> = [".env", "*.pem", ".ssh/**", ".docker/config.json"].map(String::from).to_vec();
        assert_eq!(
            ro.program("rg").unwrap().exclusion_args(&globs),
            args(&["--iglob=!.env", "--iglob=!*.pem", "--iglob=!.ssh", "--iglob=!.docker"])
        );
        assert_eq!(
            ro.program("grep").unwrap().exclusion_args(&globs),
            args(&["--exclude=.env", "--exclude=*.pem", "--exclude-dir=.ssh", "--exclude-dir=.docker"])
        );
        assert!(ro.program("cat").unwrap().exclusion_args(&globs).is_empty());
        assert_eq!(code(&ro, "grep", &["-R", "x"]), "argument_not_allowed");
    }

    #[test]
    fn build_test_rules() {
        let bt = CommandRules::shipped("build-test").unwrap();
        let table: &[(&str, &[&str], &str)] = &[
            ("cargo", &["test", "--quiet"], "ok"),
            ("cargo", &["--config", "build.rustc-wrapper='x'", "build"], "argument_not_allowed"),
            ("cargo", &["build", "--config=x"], "argument_not_allowed"),
            ("cargo", &["build", "--conf=x"], "argument_not_allowed"),
            ("cargo", &["-Zunstable-options", "build"], "argument_not_allowed"),
            ("cargo", &["install", "ripgrep"], "argument_not_allowed"),
            ("cargo", &["publish"], "argument_not_allowed"),
            ("python", &["-c", "import os"], "argument_not_allowed"),
            ("python", &["-m", "pytest", "-q"], "ok"),
            ("python", &["-m", "pytest", "--basetemp=/home"], "argument_not_allowed"),
            ("pytest", &["-p", "evil"], "argument_not_allowed"),
            ("make", &["--eval=x:"], "argument_not_allowed"),
            ("make", &["test"], "ok"),
            ("go", &["test", "-toolexec=/bin/x", "./..."], "argument_not_allowed"),
            ("npm", &["test"], "ok"),
            ("npm", &["exec", "x"], "argument_not_allowed"),
            ("npm", &["test", "--script-shell=/bin/x"], "argument_not_allowed"),
        ];
        for (program, a, want) in table {
            assert_eq!(code(&bt, program, a), *want, "{program} {a:?}");
        }
        let c = bt.check("cargo", &args(&["build", "--manifest-path", "../x/Cargo.toml"])).unwrap();
        assert_eq!(c.paths, args(&["../x/Cargo.toml"]));
        let c = bt.check("make", &args(&["-C/etc", "x"])).unwrap();
        assert_eq!(c.paths, args(&["/etc"]));
    }

    #[test]
    fn env_never_patterns() {
        for bad in
            ["LD_PRELOAD", "GIT_SSH_COMMAND", "GITHUB_TOKEN", "MY_API_TOKEN", "AWS_SECRET_ACCESS_KEY", "SSH_AUTH_SOCK"]
        {
            assert!(env_never(bad), "{bad}");
        }
        for good in ["PATH", "CARGO_HOME", "LANG", "HOME"] {
            assert!(!env_never(good), "{good}");
        }
    }

    #[test]
    fn config_cannot_allow_shells_or_secret_env() {
        let mut extra = BTreeMap::new();
        extra.insert("bash".to_string(), ProgramConfig::default());
        assert!(CommandRules::load("read-only", &extra, &[]).is_err());
        let mut extra = BTreeMap::new();
        extra.insert("mytool".to_string(), ProgramConfig { program: Some("/bin/sh".into()), ..Default::default() });
        assert!(CommandRules::load("read-only", &extra, &[]).is_err());
        let profile = ProfileConfig { name: "x".into(), pass_env: vec!["LD_PRELOAD".into()], ..Default::default() };
        assert!(CommandRules::compile(profile, &BTreeMap::new(), &[]).is_err());
    }
}
