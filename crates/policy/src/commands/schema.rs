//! The command rules as written in TOML: profiles, programs, the `[shell]` table, and the shipped
//! profiles (in `crates/policy/profiles`, the same format operators use).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};
use crate::tier::Tier;

/// The shipped profiles, in the same TOML format operators use.
const SHIPPED: &[(&str, &str)] = &[
    ("read-only", include_str!("../../profiles/read-only.toml")),
    ("build-test", include_str!("../../profiles/build-test.toml")),
    (HOST_PROFILE, include_str!("../../profiles/host.toml")),
];

/// The host server's profile: system inspection programs (`ps`, `ss`, `systemctl`, `journalctl`,
/// …) with reading-only grammars. Not a shell profile: its programs need the host's `/proc`,
/// systemd and the journal, which only the host server's sandbox shows.
pub const HOST_PROFILE: &str = "host";

/// Names of the shipped profiles.
pub const SHIPPED_PROFILES: &[&str] = &["read-only", "build-test"];

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
    /// When set, the first operand must be one of these (cargo's and npm's subcommands; for
    /// the `gnu` grammar matched exactly, never abbreviated: `systemctl status`).
    pub subcommands: Vec<String>,
    /// Words the operands after the subcommand must be, position by position, matched exactly
    /// (`ip addr show`: `subcommands = ["addr", ...]`, `operand_words = [["show"]]`). Operands
    /// past the listed positions are free text.
    pub operand_words: Vec<Vec<String>>,
    /// The values a flag may take (`ps -o`: the output columns), by flag as written in
    /// `flags`. A comma-separated value is checked item by item, each without a leading
    /// `+`/`-` (a sort order) and without a `=HEADER` suffix.
    pub values: BTreeMap<String, Vec<String>>,
    /// The subcommand goes first, before the flags (`docker ps --all`: a CLI whose flags
    /// before the subcommand are global ones).
    pub subcommand_first: bool,
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

pub(super) fn invalid_config(msg: String) -> Error {
    Error::new(ErrorCode::InvalidConfig, msg)
}

/// Parses the shipped profile `name`.
pub(super) fn parse_profile(name: &str) -> Result<ProfileConfig> {
    let (_, text) = SHIPPED.iter().find(|(n, _)| *n == name).ok_or_else(|| {
        invalid_config(format!("unknown command profile '{name}'; shipped profiles: {}", SHIPPED_PROFILES.join(", ")))
    })?;
    toml::from_str(text).map_err(|e| invalid_config(format!("shipped profile {name}: {e}")))
}
