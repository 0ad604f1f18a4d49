//! What `bastion serve` (and `bastion tools`) check before starting anything: every built-in
//! upstream's command line, read exactly as the child will read it (this binary's own parser),
//! and its roots judged by the function the child runs, [`PolicyConfig::check_roots`]. A root the
//! servers refuse (`/`, the home directory without `--allow-broad-roots`, a file) then stops the
//! hub with one line, instead of a hub that listens while each built-in dies at start.

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::upstream::{Source, UpstreamSpec};
use bastion_policy::PolicyConfig;

/// Whether any upstream is a built-in server (the roots, and the state directory's place
/// outside them, concern only those).
pub fn has_builtins(specs: &[UpstreamSpec]) -> bool {
    specs.iter().any(|u| matches!(u.source, Source::Builtin { .. }))
}

/// Checks each built-in upstream as its child would at start. `Err` is one line naming the
/// upstream and the reason; `Ok` carries the warnings the children will print themselves
/// (broad roots allowed by `--allow-broad-roots`).
pub fn check_builtins(specs: &[UpstreamSpec]) -> Result<Vec<String>, String> {
    let mut warnings = vec![];
    for u in specs {
        let Source::Builtin { server, args, .. } = &u.source else { continue };
        let argv = ["bastion", server.name()].into_iter().map(str::to_owned).chain(args.iter().cloned());
        let config = match Cli::try_parse_from(argv) {
            // The host server takes no roots: its flags parsed is all there is to check.
            Ok(Cli { command: Command::Host(_), .. }) => continue,
            Ok(cli) => policy_config(cli.command),
            // clap's rendering is several lines (usage, a tip); its first line says what is wrong.
            Err(e) => Err(first_line(&e.to_string()).trim_start_matches("error: ").to_owned()),
        };
        let checked = config.and_then(|c| c.check_roots().map_err(|e| e.message));
        match checked {
            Ok(w) => warnings.extend(w.into_iter().map(|w| format!("upstream '{}': {w}", u.name))),
            Err(why) => return Err(format!("upstream '{}' ({}) would refuse to start: {why}", u.name, server.name())),
        }
    }
    Ok(warnings)
}

/// The policy configuration a built-in's parsed flags give (its config file, then its flags),
/// without the side effects of starting: no approval runtime, no journal opened.
fn policy_config(command: Command) -> Result<PolicyConfig, String> {
    let loaded = match command {
        Command::Fs(mut a) => {
            a.common.no_approvals = true;
            a.common.load()
        }
        Command::Git(mut a) => {
            a.common.no_approvals = true;
            a.config()
        }
        Command::Shell(mut a) => {
            a.common.no_approvals = true;
            a.config()
        }
        _ => return Err("not a built-in server".to_owned()),
    };
    loaded.map_err(|e| e.message)
}

fn first_line(s: &str) -> &str {
    s.lines().find(|l| !l.trim().is_empty()).unwrap_or(s).trim()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::{Builtin, ToolFilter};
    use std::path::PathBuf;

    fn builtin(server: Builtin, args: &[&str]) -> UpstreamSpec {
        UpstreamSpec {
            name: server.name().to_owned(),
            source: Source::Builtin {
                server,
                program: PathBuf::from("/bin/false"),
                args: args.iter().map(|s| (*s).to_owned()).collect(),
            },
            filter: ToolFilter::default(),
            required: true,
            call_timeout: None,
        }
    }

    #[test]
    fn roots_and_flags_are_judged_as_the_children_judge_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        let file = file.to_str().unwrap();
        let ok =
            [builtin(Builtin::Fs, &["--root", root, "--no-approvals"]), builtin(Builtin::Shell, &["--root", root])];
        assert_eq!(check_builtins(&ok), Ok(vec![]));
        // (upstream args, what the one line says)
        for (args, want) in [
            (vec!["--root", "/"], "the filesystem root '/' can never be a root"),
            (vec!["--root", file], "not a directory"),
            (vec!["--root", "/nonexistent-bastion-root"], "cannot open"),
            (vec!["--root", root, "--no-such-flag"], "unexpected argument '--no-such-flag'"),
        ] {
            let e = check_builtins(&[builtin(Builtin::Git, &args)]).unwrap_err();
            assert!(e.starts_with("upstream 'git' (git) would refuse to start: ") && e.contains(want), "{args:?}: {e}");
            assert!(!e.contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn only_builtins_count() {
        let third_party = UpstreamSpec {
            name: "other".into(),
            source: Source::Command { program: "/bin/true".into(), args: vec![], env: vec![], sandbox: None },
            filter: ToolFilter::default(),
            required: true,
            call_timeout: None,
        };
        assert!(!has_builtins(std::slice::from_ref(&third_party)));
        assert_eq!(check_builtins(std::slice::from_ref(&third_party)), Ok(vec![]));
        assert!(has_builtins(&[third_party, builtin(Builtin::Fs, &["--root", "/tmp"])]));
    }
}
