//! Client roots (MCP `roots/list`) only ever narrow the configured roots, and narrowing never
//! weakens the deny globs.
//!
//! Every case runs under both resolvers (`ResolveMode::Auto`, i.e. `openat2`, and
//! `ResolveMode::Walk`, the `O_NOFOLLOW` fallback), each in its own temporary directory
//! ([`common::Fx`]); after every table the fixture checks that nothing outside the root changed
//! and no content returned ever contained the sentinel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

use bastion_policy::{CreateMode, DenyRules, ErrorCode, Policy, PolicyConfig, Tier};

use common::*;

// ---------------------------------------------------------------------------------------------
// Client roots: narrowing only
// ---------------------------------------------------------------------------------------------

fn client(paths: &[PathBuf]) -> Vec<(PathBuf, Option<String>)> {
    paths.iter().map(|p| (p.clone(), None)).collect()
}

#[test]
fn narrow_never_widens() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let secret_abs = fx.abs("outside/secret.txt");
        let plain_abs = fx.abs("outside/plain.txt");

        // Client roots that are outside, siblings by prefix, escaping links or climbing paths are
        // all ignored; with nothing left, nothing is reachable.
        let ignored = [
            fx.outside.clone(),
            fx.evil.clone(),
            fx.base.join("root-evil"),
            fx.root.join("rootlink"),
            fx.root.join("outdir"),
            fx.root.join("cfgdir"),
            fx.root.join("../outside"),
            fx.root.join("sub/../.."),
            fx.root.join("no-such-dir"),
            fx.root.join("a.txt"),
            PathBuf::from("/proc/self/root"),
        ];
        for c in &ignored {
            let (narrowed, notes) = roots.narrow(&client(std::slice::from_ref(c)));
            assert!(narrowed.is_empty(), "{mode:?}: client root {} was accepted", c.display());
            assert!(!notes.is_empty(), "{mode:?}: no note for ignored {}", c.display());
            for p in [secret_abs.as_str(), plain_abs.as_str(), "a.txt", "../outside/plain.txt"] {
                assert_eq!(
                    read(&narrowed, &deny, p).err(),
                    Some(PathOutsideRoot),
                    "{mode:?}: {p} after narrowing to {}",
                    c.display()
                );
            }
        }
        let (narrowed, _) = roots.narrow(&client(&ignored));
        assert!(narrowed.is_empty(), "{mode:?}");

        // Client roots that contain the configured root keep it as it is: never widened.
        for c in [fx.base.clone(), PathBuf::from("/"), fx.root.clone()] {
            let (narrowed, _) = roots.narrow(&client(&[c.clone(), fx.outside.clone()]));
            assert_eq!(narrowed.len(), 1, "{mode:?}: {}", c.display());
            assert_eq!(narrowed.iter().next().unwrap().real_path(), fx.root.as_path());
            for p in [secret_abs.as_str(), plain_abs.as_str(), "../outside/plain.txt", "rel_esc_plain"] {
                assert_eq!(
                    read(&narrowed, &deny, p).err(),
                    Some(PathOutsideRoot),
                    "{mode:?}: {p} after narrowing to {}",
                    c.display()
                );
            }
            assert_eq!(read(&narrowed, &deny, "a.txt"), Ok(("a.txt".into(), A_TXT.to_vec())));
        }

        // Same through the Policy.
        let config =
            PolicyConfig { roots: vec![fx.root.clone()], resolve: mode, max_tier: Tier::Write, ..Default::default() };
        let policy = Policy::new(config).unwrap();
        let notes = policy.narrow_to_client_roots(&client(std::slice::from_ref(&fx.outside)));
        assert!(!notes.is_empty());
        assert_eq!(policy.roots().target(&secret_abs, None).unwrap_err().code, PathOutsideRoot, "{mode:?}");
        assert_eq!(policy.roots().target("a.txt", None).unwrap_err().code, PathOutsideRoot, "{mode:?}");
        // An empty declaration changes nothing (the previous narrowing stays).
        assert!(policy.narrow_to_client_roots(&[]).is_empty());
        assert!(policy.roots().is_empty());
        policy.narrow_to_client_roots(&client(std::slice::from_ref(&fx.root)));
        assert_eq!(read(&policy.roots(), &policy.deny, "a.txt"), Ok(("a.txt".into(), A_TXT.to_vec())));
        fx.assert_outside_intact(&format!("narrow never widens {mode:?}"));
    }
}

/// Expected read: (real root-relative path, content) or an error code.
type Expected = Result<(&'static str, &'static [u8]), ErrorCode>;

#[test]
fn narrow_to_subdirectory() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        fs::create_dir(fx.in_root("sub/inner-dir")).unwrap();
        fs::write(fx.in_root("sub/inner-dir/c.txt"), b"c").unwrap();
        symlink("../a.txt", fx.in_root("sub/up")).unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let (narrowed, _) = roots.narrow(&[(fx.root.join("sub"), Some("work".to_string()))]);
        assert_eq!(narrowed.len(), 1, "{mode:?}");
        let r = narrowed.iter().next().unwrap();
        assert_eq!(r.name(), "work");
        assert_eq!(r.real_path(), fx.root.join("sub"));
        let a_abs = fx.in_root("a.txt").to_str().unwrap().to_string();
        let b_abs = fx.in_root("sub/b.txt").to_str().unwrap().to_string();
        let cases: Vec<(String, Expected)> = vec![
            ("b.txt".into(), Ok(("b.txt", B_TXT))),
            (b_abs.clone(), Ok(("b.txt", B_TXT))),
            ("inner-dir/c.txt".into(), Ok(("inner-dir/c.txt", b"c"))),
            (a_abs.clone(), Err(PathOutsideRoot)),
            ("../a.txt".into(), Err(PathOutsideRoot)),
            (format!("{b_abs}/../../a.txt"), Err(PathOutsideRoot)),
            (fx.in_root("sub/../a.txt").to_str().unwrap().into(), Err(PathOutsideRoot)),
            ("up".into(), Err(PathOutsideRoot)),
            ("envlink".into(), Err(PathOutsideRoot)),
            ("a.txt".into(), Err(NotFound)),
            (fx.abs("outside/plain.txt"), Err(PathOutsideRoot)),
        ];
        let mut failures = Vec::new();
        for (input, want) in &cases {
            let got = read(&narrowed, &deny, input);
            let ok = match (&got, want) {
                (Ok((rel, c)), Ok((wrel, wc))) => rel == wrel && c == wc,
                (Err(code), Err(wcode)) => code == wcode,
                _ => false,
            };
            if !ok {
                failures.push(format!("{}: got {got:?}, want {want:?}", show(input)));
            }
        }
        // Writes are narrowed too.
        assert_eq!(write(&narrowed, &deny, &a_abs, b"x", CreateMode::CreateOrReplace).err(), Some(PathOutsideRoot));
        assert_eq!(write(&narrowed, &deny, "../a.txt", b"x", CreateMode::CreateOrReplace).err(), Some(PathOutsideRoot));
        assert_eq!(fs::read(fx.in_root("a.txt")).unwrap(), A_TXT);
        // A nested client root inside the narrowed one and a sibling both work, others are dropped.
        let (two, _) =
            roots.narrow(&client(&[fx.root.join("sub/inner-dir"), fx.root.join(".git"), fx.outside.clone()]));
        assert_eq!(two.len(), 2, "{mode:?}");
        report(&format!("narrow to sub {mode:?}"), failures);
        fx.assert_outside_intact(&format!("narrow to sub {mode:?}"));
    }
}

/// Narrowing must never weaken the deny list. Deny globs are matched on paths relative to the
/// root in force, so a client root that *is* a denied directory turns `.git/config` into
/// `config` and `.ssh/config` into `config`, which match nothing.
#[test]
fn narrowing_into_a_denied_directory_keeps_it_denied() {
    let mut failures = Vec::new();
    for mode in MODES {
        let fx = Fx::new();
        fs::create_dir(fx.in_root(".ssh")).unwrap();
        fs::write(fx.in_root(".ssh/config"), b"Host *\n  IdentityFile ~/.ssh/id_ed25519\n").unwrap();
        fs::create_dir(fx.in_root(".git/hooks")).unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        // Configured root: both are denied.
        assert_eq!(read(&roots, &deny, ".ssh/config").err(), Some(ErrorCode::DeniedByGlob));
        assert_eq!(
            write(&roots, &deny, ".git/config", b"x", CreateMode::CreateOrReplace).err(),
            Some(ErrorCode::DeniedByGlob)
        );

        // Regression: after narrowing to <root>/.git or <root>/.ssh the deny globs keep matching
        // the path relative to the configured root, so `config` and `hooks/pre-commit` stay
        // unwritable and `.ssh/config` unreadable (DeniedByGlob).
        let (git, _) = roots.narrow(&client(&[fx.root.join(".git")]));
        let got =
            write(&git, &deny, "config", b"[core]\n\tfsmonitor = touch /tmp/pwned\n", CreateMode::CreateOrReplace);
        let got_hook = write(&git, &deny, "hooks/pre-commit", b"#!/bin/sh\nid\n", CreateMode::CreateNew);
        let (ssh, _) = roots.narrow(&client(&[fx.root.join(".ssh")]));
        let got_ssh = read(&ssh, &deny, "config");
        let refused = |c: Option<ErrorCode>| matches!(c, Some(ErrorCode::DeniedByGlob | ErrorCode::PathOutsideRoot));
        let git_config_after = fs::read(fx.in_root(".git/config")).unwrap();
        let hook_exists = fx.in_root(".git/hooks/pre-commit").exists();
        if !(refused(got.as_ref().err().copied())
            && refused(got_hook.as_ref().err().copied())
            && refused(got_ssh.as_ref().err().copied())
            && git_config_after == GIT_CONFIG
            && !hook_exists)
        {
            failures.push(format!(
                "{mode:?}: write .git/config -> {:?}, create .git/hooks/pre-commit -> {:?}, read .ssh/config -> {:?}",
                got.map(|o| o.created),
                got_hook.map(|o| o.created),
                got_ssh.map(|(rel, c)| (rel, String::from_utf8_lossy(&c).into_owned())),
            ));
        }
        fx.assert_outside_intact(&format!("narrow into denied {mode:?}"));
    }
    report("narrowing weakened the deny list", failures);
}
