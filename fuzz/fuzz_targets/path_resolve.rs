//! A caller's path string turned into a target beneath a root, then opened.
//!
//! Invariants: `RelPath::parse` yields only normal components and is a fixpoint; a `Target` is
//! always relative to one of the roots; whatever `open_file`, `open_dir`, `stat` and `parent`
//! return was opened beneath the root (its real path, read back from `/proc/self/fd`, lies
//! inside the root's real path), in both resolution modes, whatever symlinks the tree holds.
//! Nothing is created or changed, so every run sees the same tree.
#![no_main]

use std::os::fd::AsFd;
use std::os::unix::fs::symlink;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use bastion_policy::resolve::real_path;
use bastion_policy::{DenyRules, RelPath, ResolveMode, Roots};
use libfuzzer_sys::fuzz_target;

struct Fixture {
    _dir: tempfile::TempDir,
    /// The root (real path) and the directory beside it that nothing may reach.
    root: PathBuf,
    auto: Roots,
    walk: Roots,
    deny: DenyRules,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        for d in ["a/b/c", "src", ".git/hooks", ".ssh"] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("secret"), "outside").unwrap();
        std::fs::write(root.join("a/b/c/file.txt"), "in").unwrap();
        std::fs::write(root.join("src/main.rs"), "fn main() {}").unwrap();
        std::fs::write(root.join(".env"), "KEY=1").unwrap();
        std::fs::write(root.join(".ssh/id_ed25519"), "key").unwrap();
        // Links that stay inside, leave by `..`, leave by an absolute path, loop, and dangle.
        let links: &[(&str, &Path)] = &[
            ("in", Path::new("a/b")),
            ("a/b/up", Path::new("../..")),
            ("a/b/c/escape", Path::new("../../../../outside")),
            ("abs", &outside),
            ("etc", Path::new("/etc")),
            ("loop1", Path::new("loop2")),
            ("loop2", Path::new("loop1")),
            ("dangling", Path::new("nowhere/x")),
            ("notes.txt", Path::new(".env")),
            ("a/proc", Path::new("/proc/self/root")),
        ];
        for (at, to) in links {
            symlink(to, root.join(at)).unwrap();
        }
        let auto = Roots::open(std::slice::from_ref(&root), ResolveMode::Auto).unwrap();
        let walk = Roots::open(std::slice::from_ref(&root), ResolveMode::Walk).unwrap();
        Fixture { _dir: dir, root, auto, walk, deny: DenyRules::defaults() }
    })
}

fn assert_beneath(f: &Fixture, fd: impl AsFd, what: &str, raw: &str) {
    let Some(real) = real_path(fd.as_fd()) else { return };
    assert!(real.starts_with(&f.root), "{what}({raw:?}) opened {} outside {}", real.display(), f.root.display());
}

fn check_rel(rel: &RelPath, raw: &str) {
    for c in rel.as_path().components() {
        assert!(matches!(c, Component::Normal(_)), "{raw:?} normalised to {:?}", rel.as_path());
    }
    let again = RelPath::parse(rel.as_path()).unwrap_or_else(|e| panic!("{raw:?}: re-parse failed: {e}"));
    assert_eq!(&again, rel, "{raw:?}: normalisation is not a fixpoint");
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else { return };
    let Ok(raw) = std::str::from_utf8(rest) else { return };
    if let Ok(rel) = RelPath::parse(Path::new(raw)) {
        check_rel(&rel, raw);
    }
    let roots = if mode & 1 == 0 { &f.auto } else { &f.walk };
    // A root argument by name (the root's name is its directory's name) or none.
    let root_arg = if mode & 2 == 0 { None } else { Some("root") };
    let Ok(target) = roots.target(raw, root_arg) else { return };
    check_rel(&target.rel, raw);
    assert!(target.root.real_path().starts_with(&f.root), "{raw:?}: target in another root");
    if let Ok(file) = roots.open_file(&target, &f.deny) {
        assert_beneath(f, &file.file, "open_file", raw);
        check_rel(&file.rel, raw);
        assert!(!f.deny.is_denied(file.rel.as_path(), bastion_policy::Access::Read), "{raw:?}: denied file opened");
    }
    if let Ok(dir) = roots.open_dir(&target, &f.deny) {
        assert_beneath(f, &dir.fd, "open_dir", raw);
        check_rel(&dir.rel, raw);
    }
    if let Ok((_, _, rel)) = roots.stat(&target, &f.deny) {
        check_rel(&rel, raw);
    }
    if let Ok(p) = roots.parent(&target, &f.deny) {
        assert_beneath(f, &p.fd, "parent", raw);
        check_rel(&p.child_rel(), raw);
        assert!(
            !f.deny.is_denied(p.child_rel().as_path(), bastion_policy::Access::Write),
            "{raw:?}: denied write target"
        );
    }
});
