//! Environment rules: the variables that may never reach a command.

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
