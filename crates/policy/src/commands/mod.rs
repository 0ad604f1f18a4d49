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

mod env;
mod grammar;
mod host;
mod lookup;
mod operands;
mod program;
mod schema;

use std::collections::BTreeMap;

use crate::error::{Error, ErrorCode, Result, truncate_for_message};
use crate::tier::Tier;

pub use env::{ENV_NEVER, env_never};
pub use host::{OpsConfig, OpsRules, ServiceAction, check_container_name, check_unit_name};
pub use lookup::{SYSTEM_BIN_DIRS, check_executable, find_executable};
pub use operands::check_path_argument;
pub use program::{CheckedArgs, NEVER_ALLOWED, Program};
pub use schema::{
    ExcludeConfig, Grammar, HOST_PROFILE, Operands, ProfileConfig, ProgramConfig, RlimitConfig, SHIPPED_PROFILES,
    ShellConfig,
};

use schema::{invalid_config, parse_profile};

// Here rather than beside the type in `schema.rs`, so the TOML types do not depend on the compiled
// rules.
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
