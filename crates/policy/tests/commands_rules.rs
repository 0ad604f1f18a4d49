//! The command rules through their public API: the shipped profiles, what a checked command runs
//! (abbreviations rewritten, operands after `--`, path operands found), the sandbox requirement,
//! the exclusion flags of recursive readers, and configurations that may never compile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bastion_policy::commands::{CommandRules, ProfileConfig, ProgramConfig};
use bastion_policy::{ErrorCode, Tier};

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
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

/// What an allowed command becomes: (profile, program, arguments, the argv run when checked,
/// the arguments checked as paths when checked).
type Rewrite = (
    &'static str,
    &'static str,
    &'static [&'static str],
    Option<&'static [&'static str]>,
    Option<&'static [&'static str]>,
);

const REWRITES: &[Rewrite] = &[
    // Abbreviations become the full flag; operands go after `--`, options before it.
    (
        "read-only",
        "sort",
        &["--rev", "-k", "2", "f", "-n"],
        Some(&["--reverse", "-k", "2", "-n", "--", "f"]),
        Some(&["f"]),
    ),
    // A value that looks like a flag stays a value; prepended arguments come first.
    ("read-only", "rg", &["-e", "-x", "src"], Some(&["--no-config", "-e", "-x", "--", "src"]), Some(&["src"])),
    // The pattern operand is not a path.
    ("read-only", "grep", &["-rn", "TODO", "src"], None, Some(&["src"])),
    // A pattern flag's value is a path; then no operand is the pattern.
    ("read-only", "grep", &["-f", "pats", "src"], None, Some(&["pats", "src"])),
    // find: start points and path-valued primaries.
    ("read-only", "find", &["src", "-newer", "x", "-name", "*.rs"], None, Some(&["src", "x"])),
    // jq 1.6 takes no `--`.
    ("read-only", "jq", &["-r", ".a", "f.json"], Some(&["-r", ".a", "f.json"]), None),
    ("read-only", "diff", &["--from-file=a", "b"], None, Some(&["a", "b"])),
    // Permissive grammar: path-valued flags, separate or attached, are checked as paths.
    ("build-test", "cargo", &["build", "--manifest-path", "../x/Cargo.toml"], None, Some(&["../x/Cargo.toml"])),
    ("build-test", "make", &["-C/etc", "x"], None, Some(&["/etc"])),
];

#[test]
fn checked_commands_table() {
    let mut failures = Vec::new();
    for (profile, program, given, argv, paths) in REWRITES {
        let rules = CommandRules::shipped(profile).unwrap();
        let checked = match rules.check(program, &args(given)) {
            Ok(c) => c,
            Err(e) => {
                failures.push(format!("{program} {given:?}: refused: {e}"));
                continue;
            }
        };
        if let Some(argv) = argv
            && checked.argv != args(argv)
        {
            failures.push(format!("{program} {given:?}: argv {:?}, want {argv:?}", checked.argv));
        }
        if let Some(paths) = paths
            && checked.paths != args(paths)
        {
            failures.push(format!("{program} {given:?}: paths {:?}, want {paths:?}", checked.paths));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn exec_profiles_need_the_sandbox() {
    let bt = CommandRules::shipped("build-test").unwrap();
    assert_eq!(bt.check_sandbox(false, false, "no Landlock").unwrap_err().code, ErrorCode::SandboxUnavailable);
    assert!(bt.check_sandbox(false, true, "").is_ok());
    assert!(bt.check_sandbox(true, false, "").is_ok());
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
}

#[test]
fn config_cannot_allow_shells_or_secret_env() {
    let mut extra = BTreeMap::new();
    extra.insert("bash".to_string(), ProgramConfig::default());
    assert_eq!(CommandRules::load("read-only", &extra, &[]).unwrap_err().code, ErrorCode::InvalidConfig);
    let mut extra = BTreeMap::new();
    extra.insert("mytool".to_string(), ProgramConfig { program: Some("/bin/sh".into()), ..Default::default() });
    assert_eq!(CommandRules::load("read-only", &extra, &[]).unwrap_err().code, ErrorCode::InvalidConfig);
    let profile = ProfileConfig { name: "x".into(), pass_env: vec!["LD_PRELOAD".into()], ..Default::default() };
    assert_eq!(CommandRules::compile(profile, &BTreeMap::new(), &[]).unwrap_err().code, ErrorCode::InvalidConfig);
}
