//! A deterministic, source-like file tree for the filesystem benchmarks.
//!
//! Layout (about 50 000 files, about 500 MB):
//!
//! ```text
//! .gitignore                      ignores `generated/`
//! .git/                           from `git init`, so rg and `ignore` honour the .gitignore
//! fixtures/one_kib.txt            exactly 1024 bytes: the small-read target
//! src/pkg_NN/mod_NN/part_N/*      48 000 visible files (.rs .py .js .md .toml .json .txt)
//! generated/chunk_NN/*            2 000 ignored files
//! ```
//!
//! Every file's name and contents are a pure function of its index, so two runs (and two
//! machines) produce byte-identical trees. About one visible file in 160 contains a line with
//! `BASTION_NEEDLE_<index>` (the content-search target) and about one `.rs` file in 32 is named
//! `*_widget.rs` (the name-search target); the exact counts are in the manifest written next to
//! the tree.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::util::{fmt_duration, succeeds};

/// Bump when the generator's output changes, so stale trees are regenerated.
const TREE_VERSION: u64 = 1;
const PACKAGES: usize = 20;
const MODULES: usize = 24;
const PARTS: usize = 4;
const FILES_PER_PART: usize = 25;
const IGNORED_CHUNKS: usize = 20;
const FILES_PER_CHUNK: usize = 100;
/// One visible file in this many carries a needle.
const NEEDLE_EVERY: u64 = 160;
/// One `.rs` file in this many is named `*_widget.rs`.
const WIDGET_EVERY: u64 = 32;

/// What the generated tree holds; written as JSON next to it.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    files: u64,
    bytes: u64,
    needle_files: u64,
    widget_files: u64,
    rs_files: u64,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.files += other.files;
        self.bytes += other.bytes;
        self.needle_files += other.needle_files;
        self.widget_files += other.widget_files;
        self.rs_files += other.rs_files;
    }
}

/// Makes sure the benchmark tree exists at `root` (generating it once) and returns the path of
/// its manifest, `<root>.manifest.json`.
pub fn ensure(root: &Path) -> Result<PathBuf> {
    let manifest = manifest_path(root);
    if root.is_dir()
        && fs::read_to_string(&manifest)
            .ok()
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .is_some_and(|m| m["version"] == TREE_VERSION)
    {
        eprintln!("xtask: bench tree {} is up to date", root.display());
        return Ok(manifest);
    }
    let started = Instant::now();
    eprintln!("xtask: generating bench tree {} (about 50 000 files, 500 MB)...", root.display());
    let tmp = sibling(root, ".tmp");
    for stale in [&tmp, &root.to_path_buf()] {
        if stale.exists() {
            fs::remove_dir_all(stale).with_context(|| format!("removing {}", stale.display()))?;
        }
    }
    let (visible, ignored) = generate(&tmp)?;
    fs::rename(&tmp, root).with_context(|| format!("renaming {} into place", tmp.display()))?;
    // A `.git` marks the tree as a repository, so rg and the `ignore` crate apply .gitignore.
    if !succeeds(Command::new("git").args(["init", "-q"]).arg(root)) {
        fs::create_dir_all(root.join(".git"))?;
    }
    let doc = json!({
        "version": TREE_VERSION,
        "root": root,
        "one_kib_file": "fixtures/one_kib.txt",
        "list_dir": "src/pkg_00/mod_00/part_0",
        "name_glob": "*_widget.rs",
        "content_regex": "BASTION_NEEDLE_[0-9]+",
        "visible": counts_json(visible),
        "ignored": counts_json(ignored),
        "total_files": visible.files + ignored.files + 2,
        "total_bytes": visible.bytes + ignored.bytes,
    });
    fs::write(&manifest, serde_json::to_string_pretty(&doc)?)
        .with_context(|| format!("writing {}", manifest.display()))?;
    eprintln!(
        "xtask: generated {} files, {:.0} MB in {} ({} needle files, {} widget files visible)",
        visible.files + ignored.files,
        (visible.bytes + ignored.bytes) as f64 / 1e6,
        fmt_duration(started.elapsed()),
        visible.needle_files,
        visible.widget_files,
    );
    Ok(manifest)
}

/// `<root>.manifest.json`, beside the tree so searches inside it never see it.
pub fn manifest_path(root: &Path) -> PathBuf {
    sibling(root, ".manifest.json")
}

fn sibling(root: &Path, suffix: &str) -> PathBuf {
    let mut name = root.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    root.with_file_name(name)
}

fn counts_json(c: Counts) -> serde_json::Value {
    json!({
        "files": c.files,
        "bytes": c.bytes,
        "needle_files": c.needle_files,
        "widget_files": c.widget_files,
        "rs_files": c.rs_files,
    })
}

/// Writes the whole tree under `dir`; returns the visible and the ignored counts.
fn generate(dir: &Path) -> Result<(Counts, Counts)> {
    fs::create_dir_all(dir.join("fixtures"))?;
    fs::write(dir.join(".gitignore"), "# bench: ignored by rg and bastion-fs\ngenerated/\n")?;
    let mut one_kib = String::with_capacity(1024);
    let mut rng = Rng::new(0xB45_7104);
    while one_kib.len() < 1024 {
        one_kib.push_str(word(&mut rng));
        one_kib.push(if rng.below(8) == 0 { '\n' } else { ' ' });
    }
    one_kib.truncate(1023);
    one_kib.push('\n');
    fs::write(dir.join("fixtures/one_kib.txt"), &one_kib)?;

    // Two workers (the machines have two cores), each taking every other package.
    let workers = 2;
    let results: Vec<Result<Counts>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|w| scope.spawn(move || write_packages(dir, w, workers))).collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("generator thread panicked"))))
            .collect()
    });
    let mut visible = Counts::default();
    for r in results {
        visible.add(r?);
    }

    let mut ignored = Counts::default();
    let base = (PACKAGES * MODULES * PARTS * FILES_PER_PART) as u64;
    for chunk in 0..IGNORED_CHUNKS {
        let chunk_dir = dir.join(format!("generated/chunk_{chunk:02}"));
        fs::create_dir_all(&chunk_dir)?;
        for f in 0..FILES_PER_CHUNK {
            let index = base + (chunk * FILES_PER_CHUNK + f) as u64;
            ignored.add(write_file(&chunk_dir, index, 40)?);
        }
    }
    Ok((visible, ignored))
}

fn write_packages(dir: &Path, worker: usize, workers: usize) -> Result<Counts> {
    let mut counts = Counts::default();
    for pkg in (worker..PACKAGES).step_by(workers) {
        for module in 0..MODULES {
            for part in 0..PARTS {
                let leaf = dir.join(format!("src/pkg_{pkg:02}/mod_{module:02}/part_{part}"));
                fs::create_dir_all(&leaf).with_context(|| format!("creating {}", leaf.display()))?;
                for f in 0..FILES_PER_PART {
                    let index = (((pkg * MODULES + module) * PARTS + part) * FILES_PER_PART + f) as u64;
                    counts.add(write_file(&leaf, index, NEEDLE_EVERY)?);
                }
            }
        }
    }
    Ok(counts)
}

/// Writes file number `index` into `dir`; one in `needle_every` gets a needle line.
fn write_file(dir: &Path, index: u64, needle_every: u64) -> Result<Counts> {
    let mut rng = Rng::new(index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5EED);
    let ext = match rng.below(100) {
        0..40 => "rs",
        40..60 => "py",
        60..75 => "js",
        75..85 => "md",
        85..90 => "toml",
        90..95 => "json",
        _ => "txt",
    };
    let widget = ext == "rs" && rng.below(WIDGET_EVERY) == 0;
    let needle = rng.below(needle_every) == 0;
    let size = match rng.below(100) {
        0..70 => 200 + rng.below(5_800),
        70..95 => 8_000 + rng.below(24_000),
        _ => 32_000 + rng.below(68_000),
    } as usize;
    let stem = word(&mut rng);
    let name = if widget { format!("{stem}_{index}_widget.{ext}") } else { format!("{stem}_{index}.{ext}") };

    let mut text = String::with_capacity(size + 200);
    let needle_at = if needle { rng.below(size as u64) as usize } else { usize::MAX };
    let mut needle_written = false;
    while text.len() < size {
        if !needle_written && text.len() >= needle_at {
            let _ = writeln!(text, "{} BASTION_NEEDLE_{index} marks this file", comment(ext));
            needle_written = true;
        }
        line(&mut text, ext, &mut rng);
    }
    if needle && !needle_written {
        let _ = writeln!(text, "{} BASTION_NEEDLE_{index} marks this file", comment(ext));
    }
    let path = dir.join(name);
    fs::write(&path, &text).with_context(|| format!("writing {}", path.display()))?;
    Ok(Counts {
        files: 1,
        bytes: text.len() as u64,
        needle_files: u64::from(needle),
        widget_files: u64::from(widget),
        rs_files: u64::from(ext == "rs"),
    })
}

fn comment(ext: &str) -> &'static str {
    match ext {
        "py" | "toml" | "txt" => "#",
        "md" => "<!--",
        "json" => "\"_note\":",
        _ => "//",
    }
}

/// Appends one plausible line of source (or prose) in the style of `ext`.
fn line(out: &mut String, ext: &str, rng: &mut Rng) {
    let (a, b, c, d) = (word(rng), word(rng), word(rng), word(rng));
    let n = rng.below(1000);
    let indent = ["", "    ", "        ", "            "][rng.below(4) as usize];
    let _ = match (ext, rng.below(6)) {
        ("rs", 0) => writeln!(out, "{indent}pub fn {a}_{b}({c}: &{d}) -> Result<{a}, Error> {{"),
        ("rs", 1) => writeln!(out, "{indent}let {a} = {b}.{c}_{d}({n})?;"),
        ("rs", 2) => writeln!(out, "{indent}// {a} {b} {c} {d}: keep {n} in sync"),
        ("rs", 3) => writeln!(out, "{indent}if {a}.{b}() > {n} {{ return Err(Error::{c}); }}"),
        ("rs", _) => writeln!(out, "{indent}}}"),
        ("py", 0) => writeln!(out, "{indent}def {a}_{b}(self, {c}, {d}={n}):"),
        ("py", 1) => writeln!(out, "{indent}{a} = self.{b}.{c}({d}, {n})"),
        ("py", 2) => writeln!(out, "{indent}# {a} {b} {c} {d}"),
        ("py", _) => writeln!(out, "{indent}return {a}_{b}"),
        ("js", 0) => writeln!(out, "{indent}export function {a}{n}({b}, {c}) {{"),
        ("js", 1) => writeln!(out, "{indent}const {a} = await {b}.{c}({d}, {n});"),
        ("js", 2) => writeln!(out, "{indent}// {a} {b} {c} {d}"),
        ("js", _) => writeln!(out, "{indent}}}"),
        ("toml", _) => writeln!(out, "{a}_{b} = \"{c}-{d}-{n}\""),
        ("json", _) => writeln!(out, "  \"{a}_{b}\": [\"{c}\", \"{d}\", {n}],"),
        (_, 0) => writeln!(out, "## The {a} {b}"),
        _ => writeln!(out, "The {a} {b} {c} the {d} after {n} steps, then {b} again."),
    };
}

/// A word from a fixed vocabulary of identifier-like words.
fn word(rng: &mut Rng) -> &'static str {
    const WORDS: [&str; 64] = [
        "alpha", "buffer", "cache", "delta", "entry", "frame", "graph", "handle", "index", "join", "kernel", "layer",
        "merge", "node", "offset", "parse", "query", "range", "scope", "token", "update", "value", "walker", "index2",
        "yield_", "zone", "actor", "batch", "chunk", "digest", "event", "filter", "gate", "hash", "inode", "journal",
        "key", "lease", "matcher", "needle", "option", "policy", "quota", "reader", "schema", "table", "unit",
        "vector", "window", "xform", "young", "zipper", "anchor", "bridge", "cursor", "driver", "engine", "fence",
        "glyph", "harbor", "island", "jitter", "ledger", "mirror",
    ];
    WORDS[rng.below(WORDS.len() as u64) as usize]
}

/// SplitMix64: tiny, fast and deterministic; quality is ample for synthetic text.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Fails early with a clear message if the tree root's parent cannot be created.
pub fn prepare_parent(root: &Path) -> Result<()> {
    match root.parent() {
        Some(parent) => fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display())),
        None => bail!("bench tree path {} has no parent", root.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_a_pure_function_of_their_index() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for index in [0, 1, 159, 4242] {
            let ca = write_file(a.path(), index, NEEDLE_EVERY).unwrap();
            let cb = write_file(b.path(), index, NEEDLE_EVERY).unwrap();
            assert_eq!((ca.files, ca.bytes, ca.needle_files), (cb.files, cb.bytes, cb.needle_files));
        }
        let names = |dir: &Path| {
            let mut v: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
            v.sort();
            v
        };
        assert_eq!(names(a.path()), names(b.path()));
        for name in names(a.path()) {
            assert_eq!(fs::read(a.path().join(&name)).unwrap(), fs::read(b.path().join(&name)).unwrap());
        }
    }

    #[test]
    fn needle_files_contain_their_needle_once() {
        let dir = tempfile::tempdir().unwrap();
        // With `needle_every == 1` every file carries a needle.
        let counts = write_file(dir.path(), 77, 1).unwrap();
        assert_eq!(counts.needle_files, 1);
        let entry = fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap();
        let text = fs::read_to_string(entry.path()).unwrap();
        assert_eq!(text.matches("BASTION_NEEDLE_77 ").count(), 1);
        assert_eq!(text.matches("BASTION_NEEDLE_").count(), 1);
    }

    #[test]
    fn rng_below_stays_in_range() {
        let mut rng = Rng::new(1);
        assert!((0..10_000).all(|_| rng.below(7) < 7));
        assert_eq!(rng.below(0), 0);
    }
}
