//! The policy configuration file (TOML): fs, shell and git servers read it with `--config`.
//!
//! Invariants: parsing never panics; a parsed configuration prints back to TOML that parses
//! again and prints the same (nothing is lost or reinterpreted on the way, so what
//! `check-config` shows is what a server runs with); and the validation a server does at start
//! (deny globs, command rules, roots) gives the same verdict on the re-parsed value. Nothing
//! is opened or created: `Policy::new` would create the audit journal.
#![no_main]

use bastion_policy::{DenyRules, PolicyConfig};
use libfuzzer_sys::fuzz_target;

/// What a server checks at start, as error codes (messages may name the source).
fn verdict(c: &PolicyConfig) -> [Option<String>; 3] {
    let code = |r: Result<(), bastion_policy::Error>| r.err().map(|e| e.code.as_str().to_owned());
    [
        code(DenyRules::new(&c.deny.read_list(), &c.deny.write_list()).map(drop)),
        code(c.shell.rules().map(drop)),
        code(c.check_roots().map(drop)),
    ]
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(config) = PolicyConfig::from_toml(text, "fuzz.toml") else { return };
    let printed = toml::to_string(&config).unwrap_or_else(|e| panic!("{text:?} parsed but does not print: {e}"));
    let again = PolicyConfig::from_toml(&printed, "printed.toml")
        .unwrap_or_else(|e| panic!("{text:?} printed as {printed:?}, which does not parse: {e}"));
    let reprinted = toml::to_string(&again).unwrap();
    assert_eq!(printed, reprinted, "{text:?}: printing is not stable");
    assert_eq!(verdict(&config), verdict(&again), "{text:?}: validation differs after a round trip");
});
