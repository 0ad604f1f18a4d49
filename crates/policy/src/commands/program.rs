//! A program of the rules, compiled from its TOML entry: its flags by kind, its denied flags, its
//! operands, and what `list_allowed_commands` shows of it. How its arguments are checked is in
//! [`grammar`](super::grammar).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorCode, Result};

use super::lookup::find_executable;
use super::schema::{ExcludeConfig, Grammar, Operands, ProgramConfig, invalid_config};

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

/// What a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value {
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
    pub(super) grammar: Grammar,
    pub(super) short: HashMap<char, Value>,
    pub(super) long: BTreeMap<String, Value>,
    pub(super) denied: BTreeMap<String, String>,
    pub(super) operands: Operands,
    pub(super) max_operands: Option<usize>,
    pub(super) prepend: Vec<String>,
    pub(super) numeric_short: bool,
    pub(super) pattern_flags: Vec<String>,
    pub(super) subcommands: Vec<String>,
    pub(super) operand_words: Vec<Vec<String>>,
    pub(super) values: BTreeMap<String, Vec<String>>,
    pub(super) subcommand_first: bool,
    pub(super) require_prefix: Vec<String>,
    pub(super) double_dash: bool,
    pub(super) exclude: Option<ExcludeConfig>,
}

/// A command that passed the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckedArgs {
    /// The arguments to run with (prepended arguments added, abbreviations expanded).
    pub argv: Vec<String>,
    /// Every argument that names a file, to be resolved beneath the roots before running.
    pub paths: Vec<String>,
}

impl Program {
    pub(super) fn compile(name: &str, cfg: &ProgramConfig) -> Result<Self> {
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
        for flag in cfg.values.keys() {
            let known = cfg.flags.iter().any(|f| f.split_once('=').is_some_and(|(name, _)| name == flag));
            if !known {
                return Err(fail(format!("values: '{flag}' is not a flag taking a value")));
            }
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
            operand_words: cfg.operand_words.clone(),
            values: cfg.values.clone(),
            subcommand_first: cfg.subcommand_first,
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
        for (i, words) in self.operand_words.iter().enumerate() {
            s.push_str(&format!("; operand {}: {}", i + 2, words.join(" ")));
        }
        for (flag, values) in &self.values {
            s.push_str(&format!("; {flag} takes: {}", values.join(",")));
        }
        if !self.require_prefix.is_empty() {
            s.push_str(&format!("; must start with: {}", self.require_prefix.join(" ")));
        }
        if let Some(max) = self.max_operands {
            s.push_str(&format!("; at most {max} operand(s)"));
        }
        s
    }

    /// Checks a flag's value against its allowlist (`values`), item by item.
    pub(super) fn check_value(&self, flag: &str, value: &str) -> Result<()> {
        let Some(allowed) = self.values.get(flag) else { return Ok(()) };
        for item in value.split(',') {
            let bare = item.trim().trim_start_matches(['+', '-']);
            let bare = bare.split_once('=').map_or(bare, |(name, _)| name);
            if !allowed.iter().any(|a| a == bare) {
                return Err(self.refuse(format!(
                    "{flag} does not take '{}'; allowed: {}",
                    crate::error::truncate_for_message(item),
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// Checks the leading operands against `subcommands` and `operand_words`, exactly.
    pub(super) fn check_words(&self, operands: &[String]) -> Result<()> {
        let mut expected: Vec<&[String]> = Vec::new();
        if !self.subcommands.is_empty() {
            expected.push(&self.subcommands);
        }
        expected.extend(self.operand_words.iter().map(Vec::as_slice));
        for (given, allowed) in operands.iter().zip(expected) {
            if !allowed.contains(given) {
                return Err(self.refuse(format!(
                    "'{}' is not allowed here; {} takes one of: {}",
                    crate::error::truncate_for_message(given),
                    self.name,
                    allowed.join(", ")
                )));
            }
        }
        Ok(())
    }

    pub(super) fn refuse(&self, why: String) -> Error {
        Error::new(
            ErrorCode::ArgumentNotAllowed,
            format!("{why}; call list_allowed_commands for what {} accepts", self.name),
        )
    }

    pub(super) fn denied_reason(&self, flag: &str) -> Option<&str> {
        self.denied.get(flag).map(String::as_str)
    }

    pub(super) fn take_value(&self, args: &[String], i: &mut usize, flag: &str) -> Result<String> {
        let v = args.get(*i).cloned().ok_or_else(|| self.refuse(format!("{flag} needs a value")))?;
        *i += 1;
        Ok(v)
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
