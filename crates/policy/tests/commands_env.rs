//! Which environment variable names may never reach a command ([`env_never`]): a table of names
//! that match the [`ENV_NEVER`] patterns and names that do not. The patterns are matched on the
//! whole name, ASCII case-insensitively, with `*` standing for any run of characters (none
//! included) wherever it stands; no other character is special.

use bastion_policy::commands::{ENV_NEVER, env_never};

/// Names refused, each with the pattern that catches it.
const NEVER: &[(&str, &str)] = &[
    ("LD_PRELOAD", "LD_*"),
    ("LD_LIBRARY_PATH", "LD_*"),
    ("LD_", "LD_*"),
    ("ld_preload", "LD_*"),
    ("Ld_Audit", "LD_*"),
    ("GIT_SSH_COMMAND", "GIT_*"),
    ("GIT_DIR", "GIT_*"),
    ("git_config_global", "GIT_*"),
    ("NODE_OPTIONS", "NODE_OPTIONS"),
    ("node_options", "NODE_OPTIONS"),
    ("NODE_PATH", "NODE_PATH"),
    ("RIPGREP_CONFIG_PATH", "RIPGREP_CONFIG_PATH"),
    ("LESSOPEN", "LESSOPEN"),
    ("LESSCLOSE", "LESSCLOSE"),
    ("PYTEST_ADDOPTS", "PYTEST_ADDOPTS"),
    ("PYTEST_PLUGINS", "PYTEST_PLUGINS"),
    ("PYTHONPATH", "PYTHONPATH"),
    ("PYTHONSTARTUP", "PYTHONSTARTUP"),
    ("PYTHONHOME", "PYTHONHOME"),
    ("BASH_ENV", "BASH_ENV"),
    ("ENV", "ENV"),
    ("env", "ENV"),
    ("PERL5OPT", "PERL5OPT"),
    ("PERL5LIB", "PERL5LIB"),
    ("RUBYOPT", "RUBYOPT"),
    ("RUSTC_WRAPPER", "RUSTC_WRAPPER"),
    ("RUSTC_WORKSPACE_WRAPPER", "RUSTC_WORKSPACE_WRAPPER"),
    ("CARGO_BUILD_RUSTC_WRAPPER", "CARGO_BUILD_RUSTC_WRAPPER"),
    // cargo runs a target's runner in front of every test binary.
    ("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER", "CARGO_TARGET_*_RUNNER"),
    ("cargo_target_aarch64_apple_darwin_runner", "CARGO_TARGET_*_RUNNER"),
    ("CARGO_TARGET__RUNNER", "CARGO_TARGET_*_RUNNER"),
    ("CARGO_TARGET_*_RUNNER", "CARGO_TARGET_*_RUNNER"),
    ("MAKEFLAGS", "MAKEFLAGS"),
    ("MFLAGS", "MFLAGS"),
    ("SSH_AUTH_SOCK", "SSH_AUTH_SOCK"),
    ("SSH_AGENT_PID", "SSH_AGENT_PID"),
    ("DBUS_SESSION_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS"),
    ("XDG_RUNTIME_DIR", "XDG_RUNTIME_DIR"),
    ("PAGER", "PAGER"),
    ("EDITOR", "EDITOR"),
    ("VISUAL", "VISUAL"),
    ("BROWSER", "BROWSER"),
    ("JQ_LIBRARY_PATH", "JQ_LIBRARY_PATH"),
    ("GCONV_PATH", "GCONV_PATH"),
    ("HOSTALIASES", "HOSTALIASES"),
    ("TOKEN", "*TOKEN*"),
    ("MY_API_TOKEN", "*TOKEN*"),
    ("TOKENS_FILE", "*TOKEN*"),
    ("x_token_y", "*TOKEN*"),
    ("GITHUB_TOKEN", "*TOKEN*"),
    ("CLIENT_SECRET", "*SECRET*"),
    ("secrets_dir", "*SECRET*"),
    ("DB_PASSWORD", "*PASSWORD*"),
    ("PASSWORD_FILE", "*PASSWORD*"),
    ("MYSQL_PASSWD", "*PASSWD*"),
    ("STRIPE_KEY", "*_KEY"),
    ("_KEY", "*_KEY"),
    ("aws_secret_access_key", "*_KEY"),
    ("APIKEY", "*APIKEY*"),
    ("OPENAI_APIKEY_2", "*APIKEY*"),
    ("GOOGLE_APPLICATION_CREDENTIALS", "*CREDENTIAL*"),
    ("CREDENTIAL", "*CREDENTIAL*"),
    ("AWS_PROFILE", "AWS_*"),
    ("AWS_SECRET_ACCESS_KEY", "AWS_*"),
    ("AZURE_TENANT_ID", "AZURE_*"),
    ("GOOGLE_CLOUD_PROJECT", "GOOGLE_*"),
    ("GH_HOST", "GH_*"),
    ("GITHUB_ACTIONS", "GITHUB_*"),
    ("NPM_TOKEN", "NPM_TOKEN"),
    ("npm_config_script_shell", "npm_config_script_shell"),
    ("NPM_CONFIG_SCRIPT_SHELL", "npm_config_script_shell"),
    ("npm_config_node_options", "npm_config_node_options"),
    ("npm_config_userconfig", "npm_config_userconfig"),
    ("npm_config_globalconfig", "npm_config_globalconfig"),
    // `*` matches any character, a newline and a slash included.
    ("A\nTOKEN", "*TOKEN*"),
    ("a/b_token", "*TOKEN*"),
    ("LD_\n", "LD_*"),
    ("LD_/x", "LD_*"),
    ("\u{e9}_KEY", "*_KEY"),
    ("caf\u{e9}_SECRET_\u{e9}", "*SECRET*"),
];

/// Names passed through when a profile asks for them.
const ALLOWED: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TERM",
    "CARGO_HOME",
    "CARGO_TARGET_DIR",
    "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER",
    "CARGO_TARGET_RUNNER",
    "X_CARGO_TARGET_A_RUNNER",
    "CARGO_TARGET_A_RUNNER_2",
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "GOROOT",
    "GOPATH",
    "GOCACHE",
    "PYENV_ROOT",
    "",
    "*",
    // Prefix patterns match at the start only, whole-name patterns the whole name.
    "XLD_PRELOAD",
    "OLD_PATH",
    "LD",
    "_LD_",
    "MYGIT_DIR",
    "GIT",
    "NODE_OPTIONS_X",
    "X_NODE_OPTIONS",
    "ENVIRONMENT",
    "MY_ENV",
    "PYTHONPATH2",
    "PYTHONDONTWRITEBYTECODE",
    "BASH_ENVX",
    "SSH_AUTH_SOCKET",
    "MAKEFLAGS_",
    "NPM_TOKE",
    "npm_config_cache",
    "GH",
    "GHX_1",
    "AWS",
    "AWSX_1",
    "GOOGLE",
    "GITHUB",
    // Suffix patterns match at the end only.
    "KEY",
    "MY_KEY_FILE",
    "KEYS",
    "API_KEYS",
    "MONKEY",
    // Near misses of the contains patterns.
    "TOKE",
    "T0KEN",
    "SECRE",
    "PASSWOR",
    "PASS",
    "API_KEY_ID",
    "CREDENTIA",
    // ASCII case folding only: the Kelvin sign and the long s are not 'K' and 'S'.
    "MY_\u{212a}EY",
    "\u{17f}ECRET",
    "TO\u{212a}EN",
    // Characters around a whole-name pattern.
    " PAGER",
    "PAGER ",
    "PAGER\n",
    "EDITOR\0",
    // `?`, `[`, `{` in a name are plain characters.
    "LD?PRELOAD",
    "[LD_]",
    "{PAGER}",
];

#[test]
fn env_never_table() {
    let mut failures = Vec::new();
    for (name, pattern) in NEVER {
        assert!(ENV_NEVER.contains(pattern), "{pattern} is not an ENV_NEVER pattern");
        if !env_never(name) {
            failures.push(format!("{name:?} should be refused (pattern {pattern})"));
        }
    }
    for name in ALLOWED {
        if env_never(name) {
            failures.push(format!("{name:?} should pass"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every pattern catches at least one name of the table, so none is dead.
#[test]
fn every_pattern_is_exercised() {
    for pattern in ENV_NEVER {
        assert!(NEVER.iter().any(|(_, p)| p == pattern), "no name of the table exercises {pattern}");
    }
}
