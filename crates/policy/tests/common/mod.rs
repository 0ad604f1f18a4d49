//! The fixture shared by the hostile-input tests (`tests/hostile_*.rs`): a temporary directory
//! holding a root full of hostile entries (links out, loops, a FIFO, a hard link to an outside
//! file, NFC/NFD twins) beside `outside/` and `root-evil/`, a check that nothing outside the
//! root changed, and the policy operations reduced to (result, error code).
// Each test file is its own crate and uses part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use bastion_policy::roots::WriteOutcome;
use bastion_policy::{CreateMode, DenyRules, EntryKind, ErrorCode, ResolveMode, Roots};
use tempfile::TempDir;

pub const SENTINEL: &str = "SENTINEL-OUTSIDE";
pub const MODES: [ResolveMode; 2] = [ResolveMode::Auto, ResolveMode::Walk];

pub const A_TXT: &[u8] = b"a-content\n";
pub const B_TXT: &[u8] = b"b-content\n";
pub const GIT_CONFIG: &[u8] = b"[core]\n\tbare = false\n";
pub const OWN_TXT: &[u8] = b"own-outside-file\n";
pub const VICTIM: &[u8] = b"victim-original\n";
pub const NFC: &str = "caf\u{e9}.txt";
pub const NFD: &str = "cafe\u{301}.txt";

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// What a directory tree looks like, without following symlinks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    File { content: Vec<u8>, mode: u32, ino: u64 },
    Dir,
    Link(PathBuf),
    Other,
}

pub type Snapshot = BTreeMap<PathBuf, Node>;

pub fn snapshot(dir: &Path) -> Snapshot {
    fn walk(base: &Path, dir: &Path, out: &mut Snapshot) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        entries.sort();
        for path in entries {
            let rel = path.strip_prefix(base).unwrap().to_path_buf();
            let md = fs::symlink_metadata(&path).unwrap();
            let ft = md.file_type();
            let node = if ft.is_symlink() {
                Node::Link(fs::read_link(&path).unwrap())
            } else if ft.is_dir() {
                walk(base, &path, out);
                Node::Dir
            } else if ft.is_file() {
                Node::File { content: fs::read(&path).unwrap(), mode: md.mode() & 0o7777, ino: md.ino() }
            } else {
                Node::Other
            };
            out.insert(rel, node);
        }
    }
    let mut out = Snapshot::new();
    walk(dir, dir, &mut out);
    out
}

pub struct Fx {
    pub _tmp: TempDir,
    pub base: PathBuf,
    pub root: PathBuf,
    pub outside: PathBuf,
    pub evil: PathBuf,
    pub outside_before: Snapshot,
    pub evil_before: Snapshot,
    pub base_before: Vec<String>,
}

impl Fx {
    /// A fixture on the default temporary directory (the research matrix used ext4).
    pub fn new() -> Self {
        Self::build(tempfile::tempdir().unwrap())
    }

    /// A fixture on tmpfs when available: the race tests do thousands of fsyncs.
    pub fn new_fast() -> Self {
        let shm = Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap())
        } else {
            tempfile::tempdir().unwrap()
        };
        Self::build(tmp)
    }

    pub fn build(tmp: TempDir) -> Self {
        let base = fs::canonicalize(tmp.path()).unwrap();
        let root = base.join("root");
        let outside = base.join("outside");
        let evil = base.join("root-evil");
        fs::create_dir(&outside).unwrap();
        fs::create_dir(&root).unwrap();
        fs::create_dir(&evil).unwrap();

        fs::write(outside.join("secret.txt"), SENTINEL).unwrap();
        // `secret.txt` matches the default `*secret*` deny glob, which could mask an escape when the
        // requested path itself names it; `plain.txt` carries the sentinel under a harmless name.
        fs::write(outside.join("plain.txt"), SENTINEL).unwrap();
        fs::write(outside.join("own.txt"), OWN_TXT).unwrap();
        fs::write(outside.join("victim.txt"), VICTIM).unwrap();
        fs::write(evil.join("s.txt"), format!("{SENTINEL} (root-evil)")).unwrap();

        fs::write(root.join("a.txt"), A_TXT).unwrap();
        fs::create_dir(root.join("sub")).unwrap();
        fs::write(root.join("sub/b.txt"), B_TXT).unwrap();
        fs::write(root.join(".env"), b"API_TOKEN=in-root-secret\n").unwrap();
        fs::write(root.join(".ENV"), b"API_TOKEN=upper-case-secret\n").unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".git/config"), GIT_CONFIG).unwrap();
        symlink(".env", root.join("notes.txt")).unwrap();
        symlink("notes.txt", root.join("chain")).unwrap();
        symlink("../.env", root.join("sub/envlink")).unwrap();
        symlink(".git", root.join("cfgdir")).unwrap();
        symlink(outside.join("secret.txt"), root.join("abs_esc")).unwrap();
        symlink("../outside/secret.txt", root.join("rel_esc")).unwrap();
        symlink("../outside/plain.txt", root.join("rel_esc_plain")).unwrap();
        symlink("../outside", root.join("outdir")).unwrap();
        symlink("/", root.join("rootlink")).unwrap();
        symlink("/proc/self/root", root.join("proclink")).unwrap();
        symlink("../outside/newfile.txt", root.join("dangling")).unwrap();
        symlink("a.txt", root.join("inner")).unwrap();
        symlink("loop2", root.join("loop1")).unwrap();
        symlink("loop1", root.join("loop2")).unwrap();
        fs::hard_link(outside.join("own.txt"), root.join("hl")).unwrap();
        let status = std::process::Command::new("mkfifo").arg(root.join("fifo")).status().unwrap();
        assert!(status.success(), "mkfifo failed");
        fs::write(root.join(NFC), b"nfc").unwrap();
        fs::write(root.join(NFD), b"nfd").unwrap();
        assert_ne!(NFC.as_bytes(), NFD.as_bytes());

        let outside_before = snapshot(&outside);
        let evil_before = snapshot(&evil);
        let base_before = list_names(&base);
        Fx { _tmp: tmp, base, root, outside, evil, outside_before, evil_before, base_before }
    }

    pub fn roots(&self, mode: ResolveMode) -> Roots {
        let roots = Roots::open(std::slice::from_ref(&self.root), mode).unwrap();
        assert_eq!(roots.mode(), mode);
        roots
    }

    /// Absolute host path of `rel` under the temporary base directory, as a string.
    pub fn abs(&self, rel: &str) -> String {
        self.base.join(rel).to_str().unwrap().to_string()
    }

    pub fn in_root(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Nothing outside the root changed.
    pub fn assert_outside_intact(&self, ctx: &str) {
        assert_eq!(
            fs::read_to_string(self.outside.join("secret.txt")).unwrap(),
            SENTINEL,
            "{ctx}: outside/secret.txt changed"
        );
        assert_eq!(snapshot(&self.outside), self.outside_before, "{ctx}: outside/ changed");
        assert_eq!(snapshot(&self.evil), self.evil_before, "{ctx}: root-evil/ changed");
        assert_eq!(list_names(&self.base), self.base_before, "{ctx}: entries appeared next to the root");
    }

    /// No temporary file of an atomic write was left behind anywhere in the root.
    pub fn assert_no_temp_left(&self, ctx: &str) {
        for path in snapshot(&self.root).keys() {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(!name.starts_with(".bastion-tmp"), "{ctx}: temporary file left behind: {}", path.display());
        }
    }
}

pub fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Panics with every mismatch of a table at once.
pub fn report(ctx: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{ctx}: {} case(s) failed:\n  {}", failures.len(), failures.join("\n  "));
}

/// Compares an outcome carrying an owned path with an expectation carrying a `&str`.
pub fn same(got: &Result<String, ErrorCode>, want: &Result<&str, ErrorCode>) -> bool {
    match (got, want) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Shortens long hostile inputs in failure messages.
pub fn show(input: &str) -> String {
    let escaped = input.escape_debug().to_string();
    if escaped.len() > 80 { format!("{}…({} bytes)", &escaped[..60], input.len()) } else { escaped }
}

// ---------------------------------------------------------------------------------------------
// Operations, reduced to (result, error code)
// ---------------------------------------------------------------------------------------------

/// `target` + `open_file` + read. Never returns content that contains the sentinel (asserted).
pub fn read(roots: &Roots, deny: &DenyRules, p: &str) -> Result<(String, Vec<u8>), ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    let mut f = roots.open_file(&t, deny).map_err(|e| e.code)?;
    let mut buf = Vec::new();
    f.file.read_to_end(&mut buf).unwrap();
    assert!(
        !String::from_utf8_lossy(&buf).contains(SENTINEL),
        "LEAK: reading {} returned the outside sentinel",
        show(p)
    );
    Ok((f.rel.display(), buf))
}

pub fn write(
    roots: &Roots,
    deny: &DenyRules,
    p: &str,
    data: &[u8],
    create: CreateMode,
) -> Result<WriteOutcome, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    let parent = roots.parent(&t, deny).map_err(|e| e.code)?;
    roots.write_atomic(&parent, data, create).map_err(|e| e.code)
}

pub fn mkdirs(roots: &Roots, deny: &DenyRules, p: &str) -> Result<bool, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    roots.create_dir_all(&t, deny).map_err(|e| e.code)
}

pub fn remove(roots: &Roots, deny: &DenyRules, p: &str, recursive: bool) -> Result<EntryKind, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    let parent = roots.parent(&t, deny).map_err(|e| e.code)?;
    roots.remove(&parent, recursive, deny).map_err(|e| e.code)
}

pub fn rename(roots: &Roots, deny: &DenyRules, from: &str, to: &str, overwrite: bool) -> Result<EntryKind, ErrorCode> {
    let tf = roots.target(from, None).map_err(|e| e.code)?;
    let pf = roots.parent(&tf, deny).map_err(|e| e.code)?;
    let tt = roots.target(to, None).map_err(|e| e.code)?;
    let pt = roots.parent(&tt, deny).map_err(|e| e.code)?;
    roots.rename(&pf, &pt, overwrite, deny).map_err(|e| e.code)
}

/// Runs `f` on another thread and fails if it does not finish in time (a FIFO must never block).
pub fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("{what} blocked for more than 5 s"))
}
