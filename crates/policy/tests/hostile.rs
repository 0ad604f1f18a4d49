//! Data-driven hostile-input tests for `bastion-policy`: path confinement (reads, writes,
//! directory creation, removal, renames), deny globs on real paths, client-root narrowing and
//! symlink-swap races. Every case runs under both resolvers (`ResolveMode::Auto`, i.e. `openat2`,
//! and `ResolveMode::Walk`, the `O_NOFOLLOW` fallback), each in its own temporary directory.
//!
//! After every table the fixture checks that nothing outside the root changed: the sentinel file
//! still holds `SENTINEL-OUTSIDE`, no entry appeared or changed in `outside/` or `root-evil/`, and no
//! content returned by the policy ever contained the sentinel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bastion_policy::roots::WriteOutcome;
use bastion_policy::{
    CreateMode, DenyRules, EntryKind, ErrorCode, Policy, PolicyConfig, RelPath, ResolveMode, Roots, Tier,
};
use tempfile::TempDir;

const SENTINEL: &str = "SENTINEL-OUTSIDE";
const MODES: [ResolveMode; 2] = [ResolveMode::Auto, ResolveMode::Walk];

const A_TXT: &[u8] = b"a-content\n";
const B_TXT: &[u8] = b"b-content\n";
const GIT_CONFIG: &[u8] = b"[core]\n\tbare = false\n";
const OWN_TXT: &[u8] = b"own-outside-file\n";
const VICTIM: &[u8] = b"victim-original\n";
const NFC: &str = "caf\u{e9}.txt";
const NFD: &str = "cafe\u{301}.txt";

// ---------------------------------------------------------------------------------------------
// Fixture
// ---------------------------------------------------------------------------------------------

/// What a directory tree looks like, without following symlinks.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    File { content: Vec<u8>, mode: u32, ino: u64 },
    Dir,
    Link(PathBuf),
    Other,
}

type Snapshot = BTreeMap<PathBuf, Node>;

fn snapshot(dir: &Path) -> Snapshot {
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

struct Fx {
    _tmp: TempDir,
    base: PathBuf,
    root: PathBuf,
    outside: PathBuf,
    evil: PathBuf,
    outside_before: Snapshot,
    evil_before: Snapshot,
    base_before: Vec<String>,
}

impl Fx {
    /// A fixture on the default temporary directory (the research matrix used ext4).
    fn new() -> Self {
        Self::build(tempfile::tempdir().unwrap())
    }

    /// A fixture on tmpfs when available: the race tests do thousands of fsyncs.
    fn new_fast() -> Self {
        let shm = Path::new("/dev/shm");
        let tmp = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap())
        } else {
            tempfile::tempdir().unwrap()
        };
        Self::build(tmp)
    }

    fn build(tmp: TempDir) -> Self {
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

    fn roots(&self, mode: ResolveMode) -> Roots {
        let roots = Roots::open(std::slice::from_ref(&self.root), mode).unwrap();
        assert_eq!(roots.mode(), mode);
        roots
    }

    /// Absolute host path of `rel` under the temporary base directory, as a string.
    fn abs(&self, rel: &str) -> String {
        self.base.join(rel).to_str().unwrap().to_string()
    }

    fn in_root(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Nothing outside the root changed.
    fn assert_outside_intact(&self, ctx: &str) {
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
    fn assert_no_temp_left(&self, ctx: &str) {
        for path in snapshot(&self.root).keys() {
            let name = path.file_name().unwrap().to_string_lossy();
            assert!(!name.starts_with(".bastion-tmp"), "{ctx}: temporary file left behind: {}", path.display());
        }
    }
}

fn list_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Panics with every mismatch of a table at once.
fn report(ctx: &str, failures: Vec<String>) {
    assert!(failures.is_empty(), "{ctx}: {} case(s) failed:\n  {}", failures.len(), failures.join("\n  "));
}

/// Compares an outcome carrying an owned path with an expectation carrying a `&str`.
fn same(got: &Result<String, ErrorCode>, want: &Result<&str, ErrorCode>) -> bool {
    match (got, want) {
        (Ok(a), Ok(b)) => a == b,
        (Err(a), Err(b)) => a == b,
        _ => false,
    }
}

/// Shortens long hostile inputs in failure messages.
fn show(input: &str) -> String {
    let escaped = input.escape_debug().to_string();
    if escaped.len() > 80 { format!("{}…({} bytes)", &escaped[..60], input.len()) } else { escaped }
}

// ---------------------------------------------------------------------------------------------
// Operations, reduced to (result, error code)
// ---------------------------------------------------------------------------------------------

/// `target` + `open_file` + read. Never returns content that contains the sentinel (asserted).
fn read(roots: &Roots, deny: &DenyRules, p: &str) -> Result<(String, Vec<u8>), ErrorCode> {
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

fn write(roots: &Roots, deny: &DenyRules, p: &str, data: &[u8], create: CreateMode) -> Result<WriteOutcome, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    let parent = roots.parent(&t, deny).map_err(|e| e.code)?;
    roots.write_atomic(&parent, data, create).map_err(|e| e.code)
}

fn mkdirs(roots: &Roots, deny: &DenyRules, p: &str) -> Result<bool, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    roots.create_dir_all(&t, deny).map_err(|e| e.code)
}

fn remove(roots: &Roots, deny: &DenyRules, p: &str, recursive: bool) -> Result<EntryKind, ErrorCode> {
    let t = roots.target(p, None).map_err(|e| e.code)?;
    let parent = roots.parent(&t, deny).map_err(|e| e.code)?;
    roots.remove(&parent, recursive, deny).map_err(|e| e.code)
}

fn rename(roots: &Roots, deny: &DenyRules, from: &str, to: &str, overwrite: bool) -> Result<EntryKind, ErrorCode> {
    let tf = roots.target(from, None).map_err(|e| e.code)?;
    let pf = roots.parent(&tf, deny).map_err(|e| e.code)?;
    let tt = roots.target(to, None).map_err(|e| e.code)?;
    let pt = roots.parent(&tt, deny).map_err(|e| e.code)?;
    roots.rename(&pf, &pt, overwrite, deny).map_err(|e| e.code)
}

/// Runs `f` on another thread and fails if it does not finish in time (a FIFO must never block).
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(5)).unwrap_or_else(|_| panic!("{what} blocked for more than 5 s"))
}

// ---------------------------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------------------------

#[derive(Debug)]
enum ReadWant {
    /// Opens, the real root-relative path is `rel`, the content is exactly this.
    Ok(&'static str, Vec<u8>),
    Err(ErrorCode),
}

fn read_cases(fx: &Fx) -> Vec<(String, ReadWant)> {
    use ErrorCode::*;
    use ReadWant::Err as E;
    let ok = |rel: &'static str, content: &[u8]| ReadWant::Ok(rel, content.to_vec());
    let root = fx.root.to_str().unwrap().to_string();
    let s = |x: &str| x.to_string();
    vec![
        // Climbing and absolute paths.
        (s("../outside/secret.txt"), E(PathOutsideRoot)),
        (s("../outside/plain.txt"), E(PathOutsideRoot)),
        (s("sub/../../outside/secret.txt"), E(PathOutsideRoot)),
        (s("sub/../../outside/plain.txt"), E(PathOutsideRoot)),
        (s(".."), E(PathOutsideRoot)),
        (s("./../outside/plain.txt"), E(PathOutsideRoot)),
        (s(".git/../../outside/plain.txt"), E(PathOutsideRoot)),
        (s("/etc/hostname"), E(PathOutsideRoot)),
        (s("//etc/hostname"), E(PathOutsideRoot)),
        (s("/proc/self/root/etc/hostname"), E(PathOutsideRoot)),
        (s("/proc/self/cwd/Cargo.toml"), E(PathOutsideRoot)),
        (fx.abs("outside/secret.txt"), E(PathOutsideRoot)),
        (fx.abs("outside/plain.txt"), E(PathOutsideRoot)),
        (format!("{root}/../outside/plain.txt"), E(PathOutsideRoot)),
        (format!("{root}/sub/../../outside/plain.txt"), E(PathOutsideRoot)),
        // Prefix confusion: `root-evil` starts with the string `root`.
        (s("../root-evil/s.txt"), E(PathOutsideRoot)),
        (s("sub/../../root-evil/s.txt"), E(PathOutsideRoot)),
        (fx.abs("root-evil/s.txt"), E(PathOutsideRoot)),
        (format!("{root}-evil/s.txt"), E(PathOutsideRoot)),
        // Symlinks that lead out.
        (s("abs_esc"), E(PathOutsideRoot)),
        (s("rel_esc"), E(PathOutsideRoot)),
        (s("rel_esc_plain"), E(PathOutsideRoot)),
        (s("outdir/plain.txt"), E(PathOutsideRoot)),
        (s("outdir/own.txt"), E(PathOutsideRoot)),
        (s("sub/../rel_esc_plain"), E(PathOutsideRoot)),
        (format!("{root}/rel_esc_plain"), E(PathOutsideRoot)),
        (s("rootlink/etc/hostname"), E(PathOutsideRoot)),
        (s("rootlink"), E(PathOutsideRoot)),
        (s("proclink/etc/hostname"), E(PathOutsideRoot)),
        (s("proclink"), E(PathOutsideRoot)),
        (s("dangling"), E(PathOutsideRoot)),
        (s("loop1"), E(PathOutsideRoot)),
        (s("loop2/x"), E(PathOutsideRoot)),
        // Deny globs, matched on the real path (symlinks inside the root do not launder).
        (s(".env"), E(DeniedByGlob)),
        (s(".ENV"), E(DeniedByGlob)),
        (s("./.env"), E(DeniedByGlob)),
        (s("sub/../.env"), E(DeniedByGlob)),
        (s(".env/"), E(DeniedByGlob)),
        (format!("{root}/.env"), E(DeniedByGlob)),
        (s("notes.txt"), E(DeniedByGlob)),
        (format!("{root}/notes.txt"), E(DeniedByGlob)),
        (s("chain"), E(DeniedByGlob)),
        (s("sub/envlink"), E(DeniedByGlob)),
        // A denied name is refused before it is looked up (no existence oracle).
        (s("sub/.env"), E(DeniedByGlob)),
        (s(".ssh/id_rsa"), E(DeniedByGlob)),
        (s("~/.ssh/id_rsa"), E(DeniedByGlob)),
        // `.git` is only write-denied: reading through the `cfgdir` link reports the real path.
        (s("cfgdir/config"), ok(".git/config", GIT_CONFIG)),
        (s(".git/config"), ok(".git/config", GIT_CONFIG)),
        // Not regular files.
        (s("sub"), E(NotARegularFile)),
        (s(""), E(NotARegularFile)),
        (s("."), E(NotARegularFile)),
        (s("./"), E(NotARegularFile)),
        (s("sub/.."), E(NotARegularFile)),
        (root.clone(), E(NotARegularFile)),
        (s(".git"), E(NotARegularFile)),
        (s("cfgdir"), E(NotARegularFile)),
        // Malformed.
        (s("a.txt\0/../x"), E(InvalidPath)),
        (s("\0"), E(InvalidPath)),
        (format!("{root}/a.txt\0"), E(InvalidPath)),
        ("a/".repeat(2500), E(InvalidPath)),
        (vec!["y".repeat(255); 16].join("/") + "/z", E(InvalidPath)),
        ("x".repeat(256), E(InvalidPath)),
        (format!("sub/{}", "x".repeat(256)), E(InvalidPath)),
        (format!("{root}/{}", "x".repeat(256)), E(InvalidPath)),
        // Just under the limits: well-formed, simply absent.
        ("x".repeat(255), E(NotFound)),
        (vec!["y".repeat(255); 16].join("/"), E(NotFound)),
        // Other not-a-file / not-found shapes.
        (s("a.txt/x"), E(NotADirectory)),
        (s("inner/x"), E(NotADirectory)),
        (s("nonexistent"), E(NotFound)),
        (s("A.TXT"), E(NotFound)),
        // Encodings are names, never decoded. (Names containing `secret` hit the `*secret*` deny
        // glob first, which is also a refusal that reveals nothing.)
        (s("..%2f..%2foutside%2fsecret.txt"), E(DeniedByGlob)),
        (s("%2e%2e/secret"), E(DeniedByGlob)),
        (s("..%2f..%2foutside%2fplain.txt"), E(NotFound)),
        (s("%2e%2e/plain.txt"), E(NotFound)),
        (s("%2e%2e%2f%2e%2e%2foutside%2fplain.txt"), E(NotFound)),
        (s("..%252f..%252foutside%252fplain.txt"), E(NotFound)),
        (s("..%c0%af..%c0%afoutside%c0%afplain.txt"), E(NotFound)),
        (s("..\\..\\outside"), E(NotFound)),
        (s("..\\..\\outside\\plain.txt"), E(NotFound)),
        (s("\u{ff0e}\u{ff0e}/\u{ff0e}\u{ff0e}/outside/plain.txt"), E(NotFound)),
        (s("..\u{2215}..\u{2215}outside\u{2215}plain.txt"), E(NotFound)),
        (s("file:///etc/hostname"), E(NotFound)),
        (s("~/plain.txt"), E(NotFound)),
        (s("$HOME/plain.txt"), E(NotFound)),
        (s("..."), E(NotFound)),
        (s(".../outside/plain.txt"), E(NotFound)),
        (s("a.txt\n"), E(NotFound)),
        (s(" a.txt"), E(NotFound)),
        (s("a.txt\u{200b}"), E(NotFound)),
        // Allowed reads.
        (s("a.txt"), ok("a.txt", A_TXT)),
        (s("./a.txt"), ok("a.txt", A_TXT)),
        (s("a.txt/"), ok("a.txt", A_TXT)),
        (s("sub/b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub//b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub/./b.txt"), ok("sub/b.txt", B_TXT)),
        (s("sub/../a.txt"), ok("a.txt", A_TXT)),
        (s("inner"), ok("a.txt", A_TXT)),
        (format!("{root}/a.txt"), ok("a.txt", A_TXT)),
        (format!("{root}//sub/./b.txt"), ok("sub/b.txt", B_TXT)),
        (format!("{root}/sub/../a.txt"), ok("a.txt", A_TXT)),
        (format!("{root}/inner"), ok("a.txt", A_TXT)),
        (s(NFC), ok(NFC, b"nfc")),
        (s(NFD), ok(NFD, b"nfd")),
        (format!("{root}/{NFD}"), ok(NFD, b"nfd")),
        // Reads of a hard link are allowed (only writes refuse `st_nlink > 1`, see §1.3); its
        // content is the outside file's, which the fixture keeps sentinel-free on purpose.
        (s("hl"), ok("hl", OWN_TXT)),
    ]
}

#[test]
fn reads_hostile_table() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let mut failures = Vec::new();
        let cases = read_cases(&fx);
        assert!(cases.len() > 90);
        for (input, want) in &cases {
            let got = read(&roots, &deny, input);
            let pass = match (&got, want) {
                (Ok((rel, content)), ReadWant::Ok(wrel, wcontent)) => rel == wrel && content == wcontent,
                (Err(code), ReadWant::Err(wcode)) => code == wcode,
                _ => false,
            };
            if !pass {
                let got = got.map(|(rel, c)| (rel, String::from_utf8_lossy(&c).into_owned()));
                failures.push(format!("{}: got {got:?}, want {want:?}", show(input)));
            }
        }
        report(&format!("reads {mode:?}"), failures);
        fx.assert_outside_intact(&format!("reads {mode:?}"));
    }
}

#[test]
fn fifo_is_refused_without_blocking() {
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let r2 = roots.clone();
        let got = within("open_file(fifo)", move || read(&r2, &DenyRules::defaults(), "fifo"));
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        let abs = fx.in_root("fifo").to_str().unwrap().to_string();
        let r3 = roots.clone();
        let got = within("open_file(/abs/fifo)", move || read(&r3, &DenyRules::defaults(), &abs));
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        // Writing over a FIFO is refused before anything opens it.
        let r4 = roots.clone();
        let got = within("write(fifo)", move || {
            write(&r4, &DenyRules::defaults(), "fifo", b"x", CreateMode::CreateOrReplace).map(|_| ())
        });
        assert_eq!(got, Err(ErrorCode::NotARegularFile), "{mode:?}");
        let r5 = roots.clone();
        let got = within("open_dir(fifo)", move || {
            let t = r5.target("fifo", None).unwrap();
            r5.open_dir(&t, &DenyRules::defaults()).map(|_| ()).map_err(|e| e.code)
        });
        assert_eq!(got, Err(ErrorCode::NotADirectory), "{mode:?}");
        assert!(fs::symlink_metadata(fx.in_root("fifo")).unwrap().file_type().is_fifo());
        fx.assert_outside_intact(&format!("fifo {mode:?}"));
    }
}

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

// ---------------------------------------------------------------------------------------------
// Other entry points: open_dir, stat, open_walked_file, confirm_walked, target's root argument
// ---------------------------------------------------------------------------------------------

#[test]
fn other_entry_points() {
    use ErrorCode::*;
    for mode in MODES {
        let fx = Fx::new();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let open_dir = |p: &str| -> Result<String, ErrorCode> {
            let t = roots.target(p, None).map_err(|e| e.code)?;
            roots.open_dir(&t, &deny).map(|d| d.rel.display()).map_err(|e| e.code)
        };
        let mut failures = Vec::new();
        let dir_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("rootlink", Err(PathOutsideRoot)),
            ("proclink", Err(PathOutsideRoot)),
            ("outdir", Err(PathOutsideRoot)),
            ("..", Err(PathOutsideRoot)),
            ("sub/../..", Err(PathOutsideRoot)),
            ("/", Err(PathOutsideRoot)),
            ("/proc/self/root", Err(PathOutsideRoot)),
            (".ssh", Err(DeniedByGlob)),
            ("a.txt", Err(NotADirectory)),
            ("inner", Err(NotADirectory)),
            ("loop1", Err(PathOutsideRoot)),
            ("cfgdir", Ok(".git")),
            ("sub", Ok("sub")),
            ("", Ok(".")),
        ];
        for (input, want) in dir_cases {
            let got = open_dir(input);
            if !same(&got, &want) {
                failures.push(format!("open_dir {input}: got {got:?}, want {want:?}"));
            }
        }
        let stat = |p: &str| -> Result<String, ErrorCode> {
            let t = roots.target(p, None).map_err(|e| e.code)?;
            roots.stat(&t, &deny).map(|(_, _, rel)| rel.display()).map_err(|e| e.code)
        };
        let stat_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("abs_esc", Err(PathOutsideRoot)),
            ("rel_esc", Err(PathOutsideRoot)),
            ("dangling", Err(PathOutsideRoot)),
            ("rootlink/etc/hostname", Err(PathOutsideRoot)),
            ("notes.txt", Err(DeniedByGlob)),
            ("chain", Err(DeniedByGlob)),
            (".env", Err(DeniedByGlob)),
            ("../outside/plain.txt", Err(PathOutsideRoot)),
            ("inner", Ok("a.txt")),
            ("cfgdir/config", Ok(".git/config")),
            ("fifo", Ok("fifo")),
        ];
        for (input, want) in stat_cases {
            let got = stat(input);
            if !same(&got, &want) {
                failures.push(format!("stat {input}: got {got:?}, want {want:?}"));
            }
        }
        // Walked paths refuse every symlink.
        let root = roots.iter().next().unwrap().clone();
        let walked = |p: &str| -> Result<String, ErrorCode> {
            let rel = RelPath::parse(Path::new(p)).map_err(|e| e.code)?;
            roots.open_walked_file(&root, &rel, &deny).map(|f| f.rel.display()).map_err(|e| e.code)
        };
        let walked_cases: Vec<(&str, Result<&str, ErrorCode>)> = vec![
            ("notes.txt", Err(PathOutsideRoot)),
            ("inner", Err(PathOutsideRoot)),
            ("rel_esc_plain", Err(PathOutsideRoot)),
            ("cfgdir/config", Err(PathOutsideRoot)),
            ("rootlink/etc/hostname", Err(PathOutsideRoot)),
            (".env", Err(DeniedByGlob)),
            ("fifo", Err(NotARegularFile)),
            ("../outside/plain.txt", Err(PathOutsideRoot)),
            ("a.txt", Ok("a.txt")),
            (".git/config", Ok(".git/config")),
        ];
        for (input, want) in walked_cases {
            let got = walked(input);
            if !same(&got, &want) {
                failures.push(format!("open_walked_file {input}: got {got:?}, want {want:?}"));
            }
        }
        // A trailing link is reported as itself (in the root); a link on the way is refused.
        for (p, want) in [
            ("a.txt", true),
            ("sub/b.txt", true),
            ("inner", true),
            ("abs_esc", true),
            ("cfgdir/config", false),
            ("rootlink/etc", false),
            ("outdir/plain.txt", false),
        ] {
            let rel = RelPath::parse(Path::new(p)).unwrap();
            if roots.confirm_walked(&root, &rel) != want {
                failures.push(format!("confirm_walked {p}: want {want}"));
            }
        }
        // The root argument: names only, never a path that widens.
        let name = root.name().to_string();
        let target_code = |p: &str, r: Option<&str>| roots.target(p, r).map(|t| t.rel.display()).map_err(|e| e.code);
        let root_arg_cases: Vec<(String, Option<String>, Result<&str, ErrorCode>)> = vec![
            ("a.txt".into(), Some(name.clone()), Ok("a.txt")),
            ("a.txt".into(), Some(fx.root.to_str().unwrap().into()), Ok("a.txt")),
            ("plain.txt".into(), Some(fx.abs("outside")), Err(InvalidArgument)),
            ("plain.txt".into(), Some("outside".into()), Err(InvalidArgument)),
            ("plain.txt".into(), Some("../outside".into()), Err(InvalidArgument)),
            ("x".into(), Some("".into()), Err(InvalidArgument)),
            (fx.abs("outside/plain.txt"), Some(name.clone()), Err(PathOutsideRoot)),
            ("../outside/plain.txt".into(), Some(name.clone()), Err(PathOutsideRoot)),
        ];
        for (p, r, want) in root_arg_cases {
            let got = target_code(&p, r.as_deref());
            if !same(&got, &want) {
                failures.push(format!("target({p}, {r:?}): got {got:?}, want {want:?}"));
            }
        }
        report(&format!("other entry points {mode:?}"), failures);
        fx.assert_outside_intact(&format!("other entry points {mode:?}"));
    }
}

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

// ---------------------------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------------------------

const RACE_ITERS: usize = 5_000;
const RACE_DEADLINE: Duration = Duration::from_secs(20);

/// Runs `flip(i)` on a second thread and `attempt()` on this one until both have run at least
/// `RACE_ITERS` times, and further, up to `hunt` in all, while no attempt has returned `true`
/// ("found what we are looking for"). Returns (attempts, flips).
fn race(flip: impl Fn(usize) + Sync, mut attempt: impl FnMut() -> bool, hunt: Duration) -> (usize, usize) {
    let stop = AtomicBool::new(false);
    let flips = AtomicUsize::new(0);
    let mut attempts = 0usize;
    /// Stops the flipper even when an assertion in `attempt` panics (else the scope would wait
    /// for it forever).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    std::thread::scope(|s| {
        let _stop = StopOnDrop(&stop);
        s.spawn(|| {
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                flip(i);
                i += 1;
                flips.store(i, Ordering::Relaxed);
            }
        });
        let start = Instant::now();
        let mut found = false;
        while (attempts < RACE_ITERS
            || flips.load(Ordering::Relaxed) < RACE_ITERS
            || (!found && start.elapsed() < hunt))
            && start.elapsed() < RACE_DEADLINE
        {
            found |= attempt();
            attempts += 1;
        }
        stop.store(true, Ordering::Relaxed);
    });
    (attempts, flips.load(Ordering::Relaxed))
}

/// Replaces `at` atomically by a fresh regular file (`i` even) or a symlink to `link` (`i` odd).
fn flip_file_link(dir: &Path, at: &str, link: &str, content: &[u8], i: usize) {
    let dst = dir.join(at);
    if i.is_multiple_of(2) {
        let tmp = dir.join(format!(".flip-{at}-file"));
        fs::write(&tmp, content).unwrap();
        fs::rename(&tmp, &dst).unwrap();
    } else {
        let tmp = dir.join(format!(".flip-{at}-link"));
        symlink(link, &tmp).unwrap();
        fs::rename(&tmp, &dst).unwrap();
    }
}

/// Swaps two names atomically (`RENAME_EXCHANGE`), for flipping a directory with a symlink.
fn exchange(a: &Path, b: &Path) {
    rustix::fs::renameat_with(rustix::fs::CWD, a, rustix::fs::CWD, b, rustix::fs::RenameFlags::EXCHANGE).unwrap();
}

fn tally(map: &mut HashMap<String, usize>, key: String) {
    *map.entry(key).or_default() += 1;
}

#[test]
fn race_read_symlink_swap() {
    for mode in MODES {
        let fx = Fx::new_fast();
        fs::write(fx.in_root("swap"), b"INSIDE").unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let mut rels: HashMap<String, usize> = HashMap::new();
        let mut leaks = 0usize;
        let (attempts, flips) = race(
            |i| flip_file_link(&fx.root, "swap", "../outside/secret.txt", b"INSIDE", i),
            || {
                let t = roots.target("swap", None).unwrap();
                match roots.open_file(&t, &deny) {
                    Ok(mut f) => {
                        let mut buf = Vec::new();
                        f.file.read_to_end(&mut buf).unwrap();
                        if String::from_utf8_lossy(&buf).contains(SENTINEL) {
                            leaks += 1;
                        }
                        tally(&mut outcomes, format!("ok:{}", String::from_utf8_lossy(&buf)));
                        // The reported real path is read back from /proc/self/fd; when the file is
                        // replaced between open and readlink it reads "swap (deleted)"; the
                        // failing test `race_deny_glob_survives_replacement_of_the_link_target`
                        // shows where that matters.
                        tally(&mut rels, f.rel.display());
                    }
                    Err(e) => tally(&mut outcomes, format!("err:{}", e.code)),
                }
                false
            },
            Duration::ZERO,
        );
        eprintln!(
            "race_read_symlink_swap {mode:?}: {attempts} reads, {flips} flips, outcomes {outcomes:?}, reported paths {rels:?}"
        );
        assert_eq!(leaks, 0, "{mode:?}: {leaks} reads returned the outside secret");
        assert!(
            attempts >= RACE_ITERS && flips >= RACE_ITERS,
            "{mode:?}: only {attempts} reads / {flips} flips in time"
        );
        assert!(
            outcomes.get("ok:INSIDE").is_some_and(|n| *n > 0),
            "{mode:?}: the race never saw the file: {outcomes:?}"
        );
        for key in outcomes.keys() {
            assert!(
                ["ok:INSIDE", "err:path_outside_root", "err:busy", "err:invalid_path"].contains(&key.as_str()),
                "{mode:?}: unexpected outcome {key}"
            );
        }
        fx.assert_outside_intact(&format!("read race {mode:?}"));
    }
}

#[test]
fn race_write_symlink_swap() {
    for mode in MODES {
        let fx = Fx::new_fast();
        fs::write(fx.in_root("wswap"), b"INSIDE").unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let (attempts, flips) = race(
            |i| flip_file_link(&fx.root, "wswap", "../outside/victim.txt", b"INSIDE", i),
            || {
                let got = write(&roots, &deny, "wswap", b"WRITTEN", CreateMode::CreateOrReplace);
                tally(&mut outcomes, format!("{:?}", got.map(|_| ())));
                false
            },
            Duration::ZERO,
        );
        eprintln!("race_write_symlink_swap {mode:?}: {attempts} writes, {flips} flips, outcomes {outcomes:?}");
        assert_eq!(fs::read(fx.outside.join("victim.txt")).unwrap(), VICTIM, "{mode:?}: wrote through the link");
        assert!(
            attempts >= RACE_ITERS && flips >= RACE_ITERS,
            "{mode:?}: only {attempts} writes / {flips} flips in time"
        );
        assert!(outcomes.get("Ok(())").is_some_and(|n| *n > 0), "{mode:?}: {outcomes:?}");
        for key in outcomes.keys() {
            assert!(["Ok(())", "Err(NotARegularFile)"].contains(&key.as_str()), "{mode:?}: unexpected outcome {key}");
        }
        fx.assert_no_temp_left(&format!("write race {mode:?}"));
        fx.assert_outside_intact(&format!("write race {mode:?}"));
    }
}

/// A directory on the path (not the final name) flips between a real directory and a link to
/// `../outside`, by `RENAME_EXCHANGE`.
#[test]
fn race_read_directory_swap() {
    for mode in MODES {
        let fx = Fx::new_fast();
        fs::create_dir(fx.in_root("rdir")).unwrap();
        fs::write(fx.in_root("rdir/plain.txt"), b"INSIDE").unwrap();
        symlink("../outside", fx.in_root(".rdir-alt")).unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let (a, b) = (fx.in_root("rdir"), fx.in_root(".rdir-alt"));
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let mut leaks = 0usize;
        let (attempts, flips) = race(
            |_| exchange(&a, &b),
            || {
                let t = roots.target("rdir/plain.txt", None).unwrap();
                match roots.open_file(&t, &deny) {
                    Ok(mut f) => {
                        let mut buf = Vec::new();
                        f.file.read_to_end(&mut buf).unwrap();
                        if String::from_utf8_lossy(&buf).contains(SENTINEL) {
                            leaks += 1;
                        }
                        tally(&mut outcomes, format!("ok:{}", String::from_utf8_lossy(&buf)));
                    }
                    Err(e) => tally(&mut outcomes, format!("err:{}", e.code)),
                }
                false
            },
            Duration::ZERO,
        );
        eprintln!("race_read_directory_swap {mode:?}: {attempts} reads, {flips} flips, outcomes {outcomes:?}");
        assert_eq!(leaks, 0, "{mode:?}: {leaks} reads returned the outside file");
        assert!(
            attempts >= RACE_ITERS && flips >= RACE_ITERS,
            "{mode:?}: only {attempts} reads / {flips} flips in time"
        );
        assert!(outcomes.get("ok:INSIDE").is_some_and(|n| *n > 0), "{mode:?}: {outcomes:?}");
        fx.assert_outside_intact(&format!("dir read race {mode:?}"));
    }
}

#[test]
fn race_write_directory_swap() {
    for mode in MODES {
        let fx = Fx::new_fast();
        fs::create_dir(fx.in_root("wdir")).unwrap();
        symlink("../outside", fx.in_root(".wdir-alt")).unwrap();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let (a, b) = (fx.in_root("wdir"), fx.in_root(".wdir-alt"));
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let (attempts, flips) = race(
            |_| exchange(&a, &b),
            || {
                let got = write(&roots, &deny, "wdir/dropped.txt", b"WRITTEN", CreateMode::CreateOrReplace);
                tally(&mut outcomes, format!("{:?}", got.map(|_| ())));
                false
            },
            Duration::ZERO,
        );
        eprintln!("race_write_directory_swap {mode:?}: {attempts} writes, {flips} flips, outcomes {outcomes:?}");
        assert!(!fx.outside.join("dropped.txt").exists(), "{mode:?}: a write landed outside the root");
        assert!(
            attempts >= RACE_ITERS && flips >= RACE_ITERS,
            "{mode:?}: only {attempts} writes / {flips} flips in time"
        );
        assert!(outcomes.get("Ok(())").is_some_and(|n| *n > 0), "{mode:?}: {outcomes:?}");
        fx.assert_no_temp_left(&format!("dir write race {mode:?}"));
        fx.assert_outside_intact(&format!("dir write race {mode:?}"));
    }
}

/// The deny globs are matched on the real path read back from `/proc/self/fd/N`. When the file a
/// link points to is replaced (an editor saving `.env` by write-and-rename, a `git checkout`, …)
/// between the open and that readlink, the kernel reports `/root/.env (deleted)`, which no longer
/// matches `.env` (nor `*.pem`, `*.key`, `.env.*`, …), and the secret's old content is returned.
#[test]
fn race_deny_glob_survives_replacement_of_the_link_target() {
    let mut failures = Vec::new();
    for mode in MODES {
        let fx = Fx::new_fast();
        let roots = fx.roots(mode);
        let deny = DenyRules::defaults();
        let env = fx.in_root(".env");
        let tmp = fx.in_root(".flip-env");
        let mut outcomes: HashMap<String, usize> = HashMap::new();
        let (attempts, flips) = race(
            |i| {
                fs::write(&tmp, format!("API_TOKEN=in-root-secret-{i}\n")).unwrap();
                fs::rename(&tmp, &env).unwrap();
            },
            || match roots.target("notes.txt", None).and_then(|t| roots.open_file(&t, &deny)) {
                Ok(mut f) => {
                    let mut buf = String::new();
                    f.file.read_to_string(&mut buf).unwrap();
                    let what = if buf.starts_with("API_TOKEN=") { "secret content" } else { "other content" };
                    tally(&mut outcomes, format!("ok:{} ({what})", f.rel.display()));
                    true
                }
                Err(e) => {
                    tally(&mut outcomes, format!("err:{}", e.code));
                    false
                }
            },
            // The window is a few syscalls wide: keep hunting for up to 3 s once the minimum ran.
            Duration::from_secs(3),
        );
        eprintln!(
            "race_deny_glob_survives_replacement {mode:?}: {attempts} reads, {flips} flips, outcomes {outcomes:?}"
        );
        assert!(
            attempts >= RACE_ITERS && flips >= RACE_ITERS,
            "{mode:?}: only {attempts} reads / {flips} flips in time"
        );
        let leaked: usize = outcomes.iter().filter(|(k, _)| k.starts_with("ok:")).map(|(_, n)| n).sum();
        if leaked > 0 {
            failures.push(format!(
                "{mode:?}: {leaked} of {attempts} reads of notes.txt -> .env were allowed: {outcomes:?}"
            ));
        }
        for key in outcomes.keys().filter(|k| k.starts_with("err:")) {
            assert_eq!(key, "err:denied_by_glob", "{mode:?}: unexpected refusal");
        }
    }
    // Regression: a target replaced after the open reads back from /proc as ".env (deleted)";
    // the policy re-checks the inode and treats the stale name as denied, so every attempt
    // must be `denied_by_glob`.
    report("deny glob vs. replaced link target", failures);
}
