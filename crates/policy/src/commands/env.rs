//! Environment rules: the variables that may never reach a command.

use std::sync::LazyLock;

use globset::{Glob, GlobSet, GlobSetBuilder};

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

/// [`ENV_NEVER`] compiled once, in ASCII upper case. Names are upper-cased the same way before
/// they are matched, rather than using globset's case-insensitive mode, which folds Unicode as
/// well (the Kelvin sign would match `K`) and sends every pattern to the regex engine; this way
/// the whole-name patterns are a hash lookup and `LD_*`, `*_KEY` prefix and suffix tests.
static NEVER: LazyLock<Option<GlobSet>> = LazyLock::new(|| {
    let mut set = GlobSetBuilder::new();
    for pattern in ENV_NEVER {
        set.add(Glob::new(&pattern.to_ascii_uppercase()).ok()?);
    }
    set.build().ok()
});

/// True when `name` matches an [`ENV_NEVER`] pattern: the whole name, ASCII case-insensitively,
/// `*` standing for any run of characters.
pub fn env_never(name: &str) -> bool {
    match &*NEVER {
        Some(set) => set.is_match(name.to_ascii_uppercase()),
        // The patterns are constants and compile (the unit test below); were one ever broken,
        // every name is refused rather than every name let through.
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patterns_compile() {
        assert!(NEVER.is_some());
    }
}
