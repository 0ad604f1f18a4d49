//! Hostile changes through `bastion-policy`: writes, directory creation, removal and renames that
//! try to leave the root, follow a link, or touch what the deny globs protect.
//!
//! Every case runs under both resolvers (`ResolveMode::Auto`, i.e. `openat2`, and
//! `ResolveMode::Walk`, the `O_NOFOLLOW` fallback), each in its own temporary directory
//! ([`common::Fx`]); after every table the fixture checks that nothing outside the root changed
//! and no content returned ever contained the sentinel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use bastion_policy::{CreateMode, DenyRules, EntryKind, ErrorCode};

use common::*;

// ---------------------------------------------------------------------------------------------
// Writes
// ---------------------------------------------------------------------------------------------

fn write_refusals(fx: &Fx) -> Vec<(String, CreateMode, ErrorCode)> {
    use CreateMode::*;
    use ErrorCode::*;
    let root = fx.root.to_str().unwrap().to_string();
    let s = |x: &str| x.to_string();
    let unique_tmp = format!("rootlink/tmp/bastion-hostile-{}-w", std::process::id());
    vec![
        // Creating through a dangling link that points outside.
        (s("dangling"), CreateOrReplace, NotARegularFile),
        (s("dangling"), CreateNew, AlreadyExists),
        (s("dangling"), ReplaceExisting, NotARegularFile),
        (s("dangling/x"), CreateOrReplace, PathOutsideRoot),
        // A hard link to a file outside the root.
        (s("hl"), CreateOrReplace, HardlinkedFile),
        (s("hl"), ReplaceExisting, HardlinkedFile),
        // Git metadata and secrets, directly and through links.
        (s(".git/config"), CreateOrReplace, DeniedByGlob),
        (s(".git/newfile"), CreateNew, DeniedByGlob),
        (s(".git"), CreateOrReplace, DeniedByGlob),
        (s("cfgdir/config"), CreateOrReplace, DeniedByGlob),
        (s("cfgdir/hooks-new"), CreateOrReplace, DeniedByGlob),
        (s("sub/.git"), CreateOrReplace, DeniedByGlob),
        (s("sub/.GIT"), CreateOrReplace, DeniedByGlob),
        (s(".GIT"), CreateOrReplace, DeniedByGlob),
        (s(".env"), CreateOrReplace, DeniedByGlob),
        (s(".ENV"), CreateOrReplace, DeniedByGlob),
        (s("sub/.env.local"), CreateNew, DeniedByGlob),
        (s("sub/server.pem"), CreateNew, DeniedByGlob),
        (format!("{root}/.git/config"), CreateOrReplace, DeniedByGlob),
        // Symlinks are never written through, whatever they point to.
        (s("inner"), CreateOrReplace, NotARegularFile),
        (s("notes.txt"), CreateOrReplace, NotARegularFile),
        (s("sub/envlink"), CreateOrReplace, NotARegularFile),
        (s("rel_esc"), CreateOrReplace, NotARegularFile),
        (s("rel_esc_plain"), ReplaceExisting, NotARegularFile),
        (s("abs_esc"), CreateOrReplace, NotARegularFile),
        (s("rootlink"), CreateOrReplace, NotARegularFile),
        (s("proclink"), CreateOrReplace, NotARegularFile),
        (s("cfgdir"), CreateOrReplace, NotARegularFile),
        (s("loop1"), CreateOrReplace, NotARegularFile),
        // Climbing, absolute, through links that lead out.
        (s("../x"), CreateOrReplace, PathOutsideRoot),
        (s("../outside/victim.txt"), CreateOrReplace, PathOutsideRoot),
        (s("sub/../../outside/victim.txt"), CreateOrReplace, PathOutsideRoot),
        (s("../root-evil/s.txt"), CreateOrReplace, PathOutsideRoot),
        (fx.abs("outside/victim.txt"), CreateOrReplace, PathOutsideRoot),
        (fx.abs("outside/new.txt"), CreateOrReplace, PathOutsideRoot),
        (fx.abs("root-evil/s.txt"), CreateOrReplace, PathOutsideRoot),
        (format!("{root}-evil/new.txt"), CreateOrReplace, PathOutsideRoot),
        (format!("{root}/../outside/new.txt"), CreateOrReplace, PathOutsideRoot),
        (s("outdir/victim.txt"), CreateOrReplace, PathOutsideRoot),
        (s("outdir/new.txt"), CreateNew, PathOutsideRoot),
        (unique_tmp, CreateOrReplace, PathOutsideRoot),
        (s("proclink/tmp/x"), CreateOrReplace, PathOutsideRoot),
        (s("abs_esc/x"), CreateOrReplace, PathOutsideRoot),
        (s("loop1/x"), CreateOrReplace, PathOutsideRoot),
        // Not files, not names.
        (s("fifo"), CreateOrReplace, NotARegularFile),
        (s("sub"), CreateOrReplace, NotARegularFile),
        (s(""), CreateOrReplace, InvalidPath),
        (s("."), CreateOrReplace, InvalidPath),
        (s("sub/.."), CreateOrReplace, InvalidPath),
        (root.clone(), CreateOrReplace, InvalidPath),
        (s("x\0y"), CreateNew, InvalidPath),
        ("x".repeat(256), CreateNew, InvalidPath),
        ("a/".repeat(2500), CreateNew, InvalidPath),
        (s("a.txt/x"), CreateOrReplace, NotADirectory),
        (s("inner/x"), CreateOrReplace, NotADirectory),
        (s("nonexistent-dir/x"), CreateOrReplace, NotFound),
        // Create-mode semantics.
        (s("a.txt"), CreateNew, AlreadyExists),
        (s("sub/b.txt"), CreateNew, AlreadyExists),
        (s("does-not-exist.txt"), ReplaceExisting, NotFound),
    ]
}

#[test]
fn writes_hostile_table() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let root_before = snapshot(&fx.root);
        let mut failures = Vec::new();
        for (input, create, want) in write_refusals(&fx) {
            let got = write(&roots, &deny, &input, b"x", create);
            if got.as_ref().err() != Some(&want) {
                failures.push(format!(
                    "{} ({create:?}): got {:?}, want Err({want:?})",
                    show(&input),
                    got.map(|o| o.created)
                ));
            }
        }
        report(&format!("write refusals {mode:?}"), failures);
        // Refused writes changed nothing at all, inside or outside the root.
        assert_eq!(snapshot(&fx.root), root_before, "{mode:?}: a refused write changed the root");
        assert!(!fx.outside.join("newfile.txt").exists(), "{mode:?}: created through the dangling link");
        assert_eq!(fs::read(fx.outside.join("own.txt")).unwrap(), OWN_TXT);
        assert_eq!(fs::read(fx.in_root("a.txt")).unwrap(), A_TXT);
        let escaped = PathBuf::from(format!("/tmp/bastion-hostile-{}-w", std::process::id()));
        let leaked = escaped.exists();
        let _ = fs::remove_file(&escaped);
        assert!(!leaked, "{mode:?}: wrote through rootlink into /tmp");
        fx.assert_no_temp_left(&format!("write refusals {mode:?}"));
        fx.assert_outside_intact(&format!("write refusals {mode:?}"));
    }
}

#[test]
fn writes_allowed_keep_mode_and_stay_put() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();

        // A new file: created, exact content, mode 0644 whatever the umask.
        let out = write(&roots, &deny, "sub/new.txt", b"x", CreateMode::CreateOrReplace).unwrap();
        assert!(out.created, "{mode:?}");
        assert_eq!(out.mode, 0o644, "{mode:?}");
        assert_eq!(fs::read(fx.in_root("sub/new.txt")).unwrap(), b"x");
        assert_eq!(fs::metadata(fx.in_root("sub/new.txt")).unwrap().mode() & 0o7777, 0o644);
        assert_eq!(read(&roots, &deny, "sub/new.txt"), Ok(("sub/new.txt".to_string(), b"x".to_vec())));
        // Now it exists.
        assert_eq!(
            write(&roots, &deny, "sub/new.txt", b"y", CreateMode::CreateNew).err(),
            Some(ErrorCode::AlreadyExists)
        );
        assert_eq!(fs::read(fx.in_root("sub/new.txt")).unwrap(), b"x");

        // Overwriting keeps the permission bits.
        fs::set_permissions(fx.in_root("a.txt"), fs::Permissions::from_mode(0o600)).unwrap();
        let out = write(&roots, &deny, "a.txt", b"new-a", CreateMode::CreateOrReplace).unwrap();
        assert!(!out.created, "{mode:?}");
        assert_eq!(out.mode, 0o600, "{mode:?}");
        assert_eq!(fs::read(fx.in_root("a.txt")).unwrap(), b"new-a");
        assert_eq!(fs::metadata(fx.in_root("a.txt")).unwrap().mode() & 0o7777, 0o600, "{mode:?}");
        // `inner` still a link to it, and reading through it gives the new bytes.
        assert_eq!(fs::read_link(fx.in_root("inner")).unwrap(), Path::new("a.txt"));
        assert_eq!(read(&roots, &deny, "inner"), Ok(("a.txt".to_string(), b"new-a".to_vec())));

        // ReplaceExisting through an absolute in-root path.
        let abs = fx.in_root("sub/b.txt").to_str().unwrap().to_string();
        write(&roots, &deny, &abs, b"new-b", CreateMode::ReplaceExisting).unwrap();
        assert_eq!(fs::read(fx.in_root("sub/b.txt")).unwrap(), b"new-b");

        // The parent may be reached through an in-root link; the file lands at the real path.
        symlink("sub", fx.in_root("sublink")).unwrap();
        let out = write(&roots, &deny, "sublink/via-link.txt", b"v", CreateMode::CreateNew).unwrap();
        assert!(out.created);
        assert_eq!(fs::read(fx.in_root("sub/via-link.txt")).unwrap(), b"v");

        // NFC and NFD are distinct files: writing one leaves the other alone.
        write(&roots, &deny, NFC, b"nfc-2", CreateMode::ReplaceExisting).unwrap();
        assert_eq!(fs::read(fx.in_root(NFC)).unwrap(), b"nfc-2");
        assert_eq!(fs::read(fx.in_root(NFD)).unwrap(), b"nfd");

        // `.git` is readable but `.gitignore` and `git/` are ordinary names.
        write(&roots, &deny, ".gitignore", b"target\n", CreateMode::CreateNew).unwrap();
        fs::create_dir(fx.in_root("git")).unwrap();
        write(&roots, &deny, "git/config", b"not metadata", CreateMode::CreateNew).unwrap();

        fx.assert_no_temp_left(&format!("allowed writes {mode:?}"));
        fx.assert_outside_intact(&format!("allowed writes {mode:?}"));
    }
}

/// The write deny list must be applied to the requested path before anything is looked up, as
/// `open_file` does for reads: otherwise a write into a denied directory that does not exist yet
/// answers `not_found`, which tells the model to go and create that directory.
#[test]
fn write_deny_is_checked_before_the_parent_is_resolved() {
    let mut failures = Vec::new();
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        // Regression: the deny globs are checked on the path as written before the parent is
        // opened, so a missing denied directory answers `DeniedByGlob`, not `NotFound`.
        for input in
            [".GIT/x", ".git/hooks/pre-commit", "sub/.git/config", ".ssh/authorized_keys", "sub/.aws/credentials"]
        {
            let got = write(&roots, &deny, input, b"x", CreateMode::CreateOrReplace);
            if got.as_ref().err() != Some(&ErrorCode::DeniedByGlob) {
                failures.push(format!("{mode:?} {input}: got {:?}, want Err(DeniedByGlob)", got.map(|o| o.created)));
            }
        }
        fx.assert_outside_intact(&format!("write deny order {mode:?}"));
    }
    report("write deny before resolution", failures);
}

// ---------------------------------------------------------------------------------------------
// create_dir_all
// ---------------------------------------------------------------------------------------------

#[test]
fn create_dir_all_table() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        symlink("no-such-dir", fx.in_root("indangle")).unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let unique = format!("bastion-hostile-{}-d", std::process::id());
        let root_before = snapshot(&fx.root);
        let refusals: Vec<(String, ErrorCode)> = vec![
            ("../escaped".into(), PathOutsideRoot),
            ("sub/../../escaped".into(), PathOutsideRoot),
            (fx.abs("outside/newdir"), PathOutsideRoot),
            (fx.abs("root-evil/newdir"), PathOutsideRoot),
            ("dangling".into(), PathOutsideRoot),
            ("dangling/x".into(), PathOutsideRoot),
            ("rel_esc".into(), PathOutsideRoot),
            ("abs_esc/x".into(), PathOutsideRoot),
            ("outdir/newdir".into(), PathOutsideRoot),
            (format!("rootlink/tmp/{unique}"), PathOutsideRoot),
            (format!("proclink/tmp/{unique}"), PathOutsideRoot),
            ("loop1/x".into(), PathOutsideRoot),
            (".git/hooks".into(), DeniedByGlob),
            (".git/hooks/deeper".into(), DeniedByGlob),
            ("cfgdir/hooks".into(), DeniedByGlob),
            (".GIT".into(), DeniedByGlob),
            (".GIT/x".into(), DeniedByGlob),
            ("sub/.git".into(), DeniedByGlob),
            ("sub/.git/hooks".into(), DeniedByGlob),
            (".ssh".into(), DeniedByGlob),
            ("deep/er/.aws".into(), DeniedByGlob),
            ("a.txt".into(), NotADirectory),
            ("a.txt/x".into(), NotADirectory),
            ("inner/x".into(), NotADirectory),
            ("fifo".into(), NotADirectory),
            ("hl/x".into(), NotADirectory),
            ("indangle".into(), NotADirectory),
            ("indangle/x".into(), NotADirectory),
            ("x".repeat(256), InvalidPath),
            ("x\0".into(), InvalidPath),
        ];
        let mut failures = Vec::new();
        for (input, want) in &refusals {
            let got = mkdirs(&roots, &deny, input);
            if got.as_ref().err() != Some(want) {
                failures.push(format!("{}: got {got:?}, want Err({want:?})", show(input)));
            }
        }
        // `deep/er/.aws` is refused at `.aws`, but `deep/er` may have been made on the way; drop
        // them so the "nothing changed" check below is exact.
        let _ = fs::remove_dir(fx.in_root("deep/er"));
        let _ = fs::remove_dir(fx.in_root("deep"));
        report(&format!("create_dir_all refusals {mode:?}"), failures);
        assert_eq!(snapshot(&fx.root), root_before, "{mode:?}: a refused create_dir_all changed the root");
        let p = format!("/tmp/{unique}");
        let leaked = Path::new(&p).exists();
        let _ = fs::remove_dir(&p);
        assert!(!leaked, "{mode:?}: created {p} through a link to /");

        // Allowed.
        assert_eq!(mkdirs(&roots, &deny, "sub"), Ok(false), "{mode:?}");
        assert_eq!(mkdirs(&roots, &deny, ""), Ok(false), "{mode:?}");
        assert_eq!(mkdirs(&roots, &deny, "cfgdir"), Ok(false), "{mode:?}: existing dir through an in-root link");
        assert_eq!(mkdirs(&roots, &deny, "new/a/b"), Ok(true), "{mode:?}");
        assert!(fx.in_root("new/a/b").is_dir());
        assert_eq!(mkdirs(&roots, &deny, "new/a/b"), Ok(false), "{mode:?}");
        assert_eq!(mkdirs(&roots, &deny, "sub/../new2/./c"), Ok(true), "{mode:?}");
        assert!(fx.in_root("new2/c").is_dir());
        symlink("sub", fx.in_root("sublink")).unwrap();
        assert_eq!(mkdirs(&roots, &deny, "sublink/made"), Ok(true), "{mode:?}");
        assert!(fx.in_root("sub/made").is_dir());
        assert_eq!(
            fs::metadata(fx.in_root("new/a/b")).unwrap().mode() & 0o7777 & !0o755,
            0,
            "{mode:?}: directory wider than 0755"
        );
        fx.assert_outside_intact(&format!("create_dir_all {mode:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// remove
// ---------------------------------------------------------------------------------------------

#[test]
fn remove_table() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        // A directory that hides a secret deep down, and one that holds git metadata.
        fs::create_dir_all(fx.in_root("victim/deep")).unwrap();
        fs::write(fx.in_root("victim/keep.txt"), b"keep").unwrap();
        fs::write(fx.in_root("victim/deep/.env"), b"S=1").unwrap();
        fs::create_dir_all(fx.in_root("proj/.git")).unwrap();
        fs::write(fx.in_root("proj/.git/HEAD"), b"ref: refs/heads/main\n").unwrap();
        fs::write(fx.in_root("proj/main.rs"), b"fn main() {}\n").unwrap();
        fs::create_dir_all(fx.in_root("caps/x")).unwrap();
        fs::write(fx.in_root("caps/x/ID_RSA"), b"k").unwrap();
        // A directory holding links that lead out (and a dangling one): a recursive delete must
        // unlink the links, never descend through them.
        fs::create_dir_all(fx.in_root("links/inner")).unwrap();
        symlink("../../outside", fx.in_root("links/out")).unwrap();
        symlink(fx.outside.join("plain.txt"), fx.in_root("links/inner/abs")).unwrap();
        symlink("../../outside/gone.txt", fx.in_root("links/inner/dangling")).unwrap();
        fs::write(fx.in_root("links/inner/f.txt"), b"f").unwrap();

        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let root_before = snapshot(&fx.root);
        let refusals: Vec<(String, bool, ErrorCode)> = vec![
            ("victim".into(), true, DeniedByGlob),
            ("proj".into(), true, DeniedByGlob),
            ("caps".into(), true, DeniedByGlob),
            ("victim".into(), false, DirectoryNotEmpty),
            ("sub".into(), false, DirectoryNotEmpty),
            (".env".into(), false, DeniedByGlob),
            (".ENV".into(), false, DeniedByGlob),
            ("victim/deep/.env".into(), false, DeniedByGlob),
            (".git".into(), true, DeniedByGlob),
            (".git/config".into(), false, DeniedByGlob),
            ("cfgdir/config".into(), false, DeniedByGlob),
            ("../outside/plain.txt".into(), false, PathOutsideRoot),
            ("../outside".into(), true, PathOutsideRoot),
            (fx.abs("outside/plain.txt"), false, PathOutsideRoot),
            (fx.abs("root-evil/s.txt"), false, PathOutsideRoot),
            ("outdir/plain.txt".into(), false, PathOutsideRoot),
            ("rootlink/etc/hostname".into(), false, PathOutsideRoot),
            ("proclink/etc/hostname".into(), false, PathOutsideRoot),
            ("rel_esc/x".into(), false, PathOutsideRoot),
            ("loop1/x".into(), false, PathOutsideRoot),
            ("".into(), true, InvalidPath),
            (".".into(), true, InvalidPath),
            ("sub/..".into(), true, InvalidPath),
            (fx.root.to_str().unwrap().into(), true, InvalidPath),
            ("nonexistent".into(), false, NotFound),
            ("a.txt\0".into(), false, InvalidPath),
        ];
        let mut failures = Vec::new();
        for (input, recursive, want) in &refusals {
            let got = remove(&roots, &deny, input, *recursive);
            if got.as_ref().err() != Some(want) {
                failures.push(format!("{} (recursive={recursive}): got {got:?}, want Err({want:?})", show(input)));
            }
        }
        report(&format!("remove refusals {mode:?}"), failures);
        assert_eq!(snapshot(&fx.root), root_before, "{mode:?}: a refused remove deleted something");

        // Links are removed, never followed. (`rootlink` is removed non-recursively on purpose: the
        // recursive path is exercised on `outdir` and `links`, whose targets are only the fixture.)
        assert_eq!(remove(&roots, &deny, "rootlink", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert!(fs::symlink_metadata(fx.in_root("rootlink")).is_err());
        assert!(Path::new("/etc").is_dir());
        assert_eq!(remove(&roots, &deny, "outdir", true), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(remove(&roots, &deny, "abs_esc", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(remove(&roots, &deny, "proclink", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(remove(&roots, &deny, "dangling", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(remove(&roots, &deny, "notes.txt", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert!(fx.in_root(".env").is_file(), "{mode:?}: removing the link removed its target");
        assert_eq!(remove(&roots, &deny, "cfgdir", true), Ok(EntryKind::Symlink), "{mode:?}");
        assert!(fx.in_root(".git/config").is_file(), "{mode:?}: removing cfgdir touched .git");
        assert_eq!(remove(&roots, &deny, "links", true), Ok(EntryKind::Directory), "{mode:?}");
        assert!(!fx.in_root("links").exists());
        // A hard link: only this name goes.
        assert_eq!(remove(&roots, &deny, "hl", false), Ok(EntryKind::File), "{mode:?}");
        assert_eq!(fs::read(fx.outside.join("own.txt")).unwrap(), OWN_TXT);
        assert_eq!(remove(&roots, &deny, "fifo", false), Ok(EntryKind::Other), "{mode:?}");
        // An ordinary recursive delete.
        assert_eq!(remove(&roots, &deny, "sub", true), Ok(EntryKind::Directory), "{mode:?}");
        assert!(!fx.in_root("sub").exists());
        assert!(fx.in_root("a.txt").is_file());
        fx.assert_outside_intact(&format!("remove {mode:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// rename
// ---------------------------------------------------------------------------------------------

#[test]
fn rename_table() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        fs::create_dir_all(fx.in_root("proj/.git")).unwrap();
        fs::write(fx.in_root("proj/.git/HEAD"), b"ref: refs/heads/main\n").unwrap();
        fs::create_dir_all(fx.in_root("app")).unwrap();
        fs::write(fx.in_root("app/.env.production"), b"S=1").unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let root_before = snapshot(&fx.root);
        let unique = format!("bastion-hostile-{}-r", std::process::id());
        let refusals: Vec<(String, String, bool, ErrorCode)> = vec![
            ("a.txt".into(), "../x".into(), false, PathOutsideRoot),
            ("a.txt".into(), "../outside/moved.txt".into(), true, PathOutsideRoot),
            ("a.txt".into(), "sub/../../x".into(), false, PathOutsideRoot),
            ("a.txt".into(), fx.abs("outside/moved.txt"), false, PathOutsideRoot),
            ("a.txt".into(), fx.abs("root-evil/moved.txt"), false, PathOutsideRoot),
            ("a.txt".into(), "outdir/moved.txt".into(), false, PathOutsideRoot),
            ("a.txt".into(), format!("rootlink/tmp/{unique}"), false, PathOutsideRoot),
            ("a.txt".into(), "dangling/x".into(), false, PathOutsideRoot),
            ("../outside/plain.txt".into(), "stolen.txt".into(), false, PathOutsideRoot),
            (fx.abs("outside/plain.txt"), "stolen.txt".into(), false, PathOutsideRoot),
            ("outdir/plain.txt".into(), "stolen.txt".into(), false, PathOutsideRoot),
            ("rootlink/etc/hostname".into(), "stolen.txt".into(), false, PathOutsideRoot),
            // Existing destinations.
            ("a.txt".into(), "sub/b.txt".into(), false, AlreadyExists),
            ("a.txt".into(), "a.txt".into(), false, AlreadyExists),
            ("a.txt".into(), "dangling".into(), false, AlreadyExists),
            ("a.txt".into(), "sub".into(), true, AlreadyExists),
            ("a.txt".into(), "sub".into(), false, AlreadyExists),
            // Deny globs on either side, and inside a moved directory.
            ("proj".into(), "moved".into(), false, DeniedByGlob),
            ("app".into(), "moved".into(), false, DeniedByGlob),
            ("a.txt".into(), ".env".into(), true, DeniedByGlob),
            ("a.txt".into(), "sub/.env".into(), false, DeniedByGlob),
            ("a.txt".into(), ".git/config".into(), true, DeniedByGlob),
            ("a.txt".into(), ".git/hooks-pre-commit".into(), false, DeniedByGlob),
            ("a.txt".into(), "cfgdir/config".into(), true, DeniedByGlob),
            ("a.txt".into(), "cfgdir/new".into(), false, DeniedByGlob),
            ("a.txt".into(), "sub/.git".into(), false, DeniedByGlob),
            (".env".into(), "env.txt".into(), false, DeniedByGlob),
            (".git".into(), "git2".into(), false, DeniedByGlob),
            (".git/config".into(), "c.txt".into(), false, DeniedByGlob),
            ("cfgdir/config".into(), "c.txt".into(), false, DeniedByGlob),
            ("proj/.git".into(), "g".into(), false, DeniedByGlob),
            // Malformed / missing.
            ("".into(), "x".into(), false, InvalidPath),
            ("a.txt".into(), "".into(), false, InvalidPath),
            ("a.txt".into(), ".".into(), false, InvalidPath),
            ("a.txt".into(), "x\0".into(), false, InvalidPath),
            ("nonexistent".into(), "x".into(), false, NotFound),
            // A directory into itself.
            ("sub".into(), "sub/inside".into(), false, InvalidPath),
        ];
        let mut failures = Vec::new();
        for (from, to, overwrite, want) in &refusals {
            let got = rename(&roots, &deny, from, to, *overwrite);
            if got.as_ref().err() != Some(want) {
                failures.push(format!(
                    "{} -> {} (overwrite={overwrite}): got {got:?}, want Err({want:?})",
                    show(from),
                    show(to)
                ));
            }
        }
        report(&format!("rename refusals {mode:?}"), failures);
        assert_eq!(snapshot(&fx.root), root_before, "{mode:?}: a refused rename changed the root");
        let leaked = Path::new(&format!("/tmp/{unique}")).exists();
        let _ = fs::remove_file(format!("/tmp/{unique}"));
        assert!(!leaked, "{mode:?}: renamed into /tmp through rootlink");

        // Allowed: ordinary move keeps content.
        assert_eq!(rename(&roots, &deny, "a.txt", "sub/moved.txt", false), Ok(EntryKind::File), "{mode:?}");
        assert_eq!(fs::read(fx.in_root("sub/moved.txt")).unwrap(), A_TXT);
        // Moving an escaping link moves the link; it still cannot be read through.
        assert_eq!(rename(&roots, &deny, "rel_esc_plain", "sub/rel2", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(
            read(&roots, &deny, "sub/rel2"),
            Err(NotFound),
            "{mode:?}: ../outside/plain.txt from sub/ is root/outside/plain.txt"
        );
        assert_eq!(rename(&roots, &deny, "abs_esc", "sub/abs2", false), Ok(EntryKind::Symlink), "{mode:?}");
        assert_eq!(read(&roots, &deny, "sub/abs2"), Err(PathOutsideRoot), "{mode:?}");
        // Overwriting a dangling outward link replaces the link, never creates its target.
        assert_eq!(rename(&roots, &deny, "sub/moved.txt", "dangling", true), Ok(EntryKind::File), "{mode:?}");
        assert!(fs::symlink_metadata(fx.in_root("dangling")).unwrap().is_file());
        assert_eq!(fs::read(fx.in_root("dangling")).unwrap(), A_TXT);
        // Through an in-root directory link.
        symlink("sub", fx.in_root("sublink")).unwrap();
        assert_eq!(rename(&roots, &deny, "sublink/b.txt", "b-top.txt", false), Ok(EntryKind::File), "{mode:?}");
        assert_eq!(fs::read(fx.in_root("b-top.txt")).unwrap(), B_TXT);
        fx.assert_no_temp_left(&format!("rename {mode:?}"));
        fx.assert_outside_intact(&format!("rename {mode:?}"));
    }
}
