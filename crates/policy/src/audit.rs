//! The audit journal: one JSON line per tool call. Arguments are recorded with secret-looking
//! values redacted and bulky values (file contents, patches) replaced by their size; results are
//! recorded by size only. Never file contents.
//!
//! The journal rotates by size and age ([`Rotation`]): when the next line would take
//! `audit.jsonl` past `max_bytes`, or the file is older than `max_age`, it becomes `audit.jsonl.1` (the older ones shift to `.2`, `.3`, … and the
//! one past `keep` is deleted) and a new `audit.jsonl` starts with that line. Rotation happens
//! under the same lock as the write, so no line is split across two files or lost; readers
//! read `audit.jsonl` and then its siblings `.1`, `.2`, … (newest first), each as
//! `audit.jsonl.N.gz` where that exists ([`rotated_files`], [`read_journal`]).
//!
//! With `compress`, a thread of its own gzips each rotated file after the rotation, off the
//! path of the call that rotated: it reads `.N` into a temporary file beside it, fsyncs it, and
//! only then, under the journal's lock (so no rotation shifts the files meanwhile), renames it
//! to `.N.gz` (`N` found again by the file's inode: a rotation may have moved it) and deletes
//! `.N`. A crash at any point leaves `.N`, or `.N` and a complete `.N.gz` (readers take the
//! `.gz`; the next start deletes the `.N`), and at worst a stale temporary file, removed then.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::{Map, Value};

/// Argument keys whose values are contents, never journaled verbatim.
const CONTENT_KEYS: &[&str] = &["content", "old_text", "new_text", "patch", "stdin", "text", "data", "body"];
/// Substrings of argument keys whose values are secrets.
const SECRET_KEY_PARTS: &[&str] = &[
    "token",
    "secret",
    "password",
    "passwd",
    "apikey",
    "api_key",
    "authorization",
    "credential",
    "private_key",
    "cookie",
];
/// String values longer than this are summarised by length.
const MAX_JOURNALED_STRING: usize = 512;

/// One journal line.
#[derive(Clone, Debug, Serialize)]
pub struct AuditRecord<'a> {
    /// RFC 3339 time the call finished.
    pub time: String,
    /// Which server handled it (`fs`, `shell`, `git`, `hub`).
    pub server: &'a str,
    /// Who called (a token name or OAuth client; `local` on stdio).
    pub principal: &'a str,
    /// Tool name.
    pub tool: &'a str,
    /// Arguments after redaction.
    pub args: Value,
    /// `ok` or the error code.
    pub outcome: &'a str,
    /// Wall time of the call in milliseconds.
    pub duration_ms: f64,
    /// Size of the result as sent (bytes of JSON).
    pub result_bytes: usize,
}

/// When the journal is rotated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Rotation {
    /// Size in bytes past which `audit.jsonl` is rotated; 0: never.
    pub max_bytes: u64,
    /// How many rotated files are kept (`audit.jsonl.1` … `.keep`); at least 1.
    pub keep: u32,
    /// Age past which the file is rotated at its next line (`"7d"`, `"24h"`); `None`: never.
    /// Counted from when the file was started (its birth time, else its first line here).
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Gzip each rotated file (`audit.jsonl.N.gz`), in the background; off by default. Journal
    /// lines compress about tenfold.
    pub compress: bool,
}

impl Default for Rotation {
    /// 64 MiB, five rotated files: about a million calls in all, a few hundred megabytes at most.
    fn default() -> Self {
        Rotation { max_bytes: 64 * 1024 * 1024, keep: 5, max_age: None, compress: false }
    }
}

/// An append-only JSON-lines journal. Without a path it records nothing.
#[derive(Debug, Default)]
pub struct AuditLog {
    file: Option<Arc<Mutex<Sink>>>,
}

/// The open journal file, shared by every [`AuditLog`] of one process that names the same path
/// (the hub's calls and its approval engine write to one journal): one lock orders their lines
/// and one size counter decides when to rotate.
#[derive(Debug)]
struct Sink {
    file: File,
    path: PathBuf,
    size: u64,
    /// When the current file was started, for `max_age`.
    started: SystemTime,
    rotation: Rotation,
    /// Itself, for the compressing thread to take the lock by.
    this: Weak<Mutex<Sink>>,
    /// Whether a compressing thread is at work (set and cleared under the lock).
    compressing: bool,
}

/// Open sinks by path, so that opening a journal twice in one process shares its lock.
static SINKS: Mutex<Option<HashMap<PathBuf, Weak<Mutex<Sink>>>>> = Mutex::new(None);

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// `audit.jsonl.N`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    suffixed(path, &format!(".{n}"))
}

/// `audit.jsonl.N.gz`.
pub fn compressed_path(path: &Path, n: u32) -> PathBuf {
    suffixed(path, &format!(".{n}.gz"))
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Most rotated files a reader looks for.
const MAX_ROTATED: u32 = 1000;

/// The rotated files of the journal at `path`, newest first: for each `N` from 1, `.N.gz` if it
/// exists, else `.N`, up to the first `N` with neither.
pub fn rotated_files(path: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for n in 1..=MAX_ROTATED {
        let gz = compressed_path(path, n);
        let plain = rotated_path(path, n);
        if gz.is_file() {
            out.push(gz);
        } else if plain.is_file() {
            out.push(plain);
        } else {
            break;
        }
    }
    out
}

/// The text of a journal file, decompressed if its name ends in `.gz`. Lines that are not
/// UTF-8 are replaced, not refused (a reader should not lose a file to one bad byte).
pub fn read_journal(path: &Path) -> std::io::Result<String> {
    let mut bytes = Vec::new();
    let file = File::open(path)?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut bytes)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)?;
    }
    Ok(match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

/// Removes a path, a missing one being no error.
fn remove_if_present(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Renames, a missing source being no error.
fn rename_if_present(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Makes renames and deletions in the journal's directory durable.
fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// The temporary file a process compresses into: `audit.jsonl.gz-tmp-PID`.
fn temporary_path(path: &Path, pid: u32) -> PathBuf {
    suffixed(path, &format!(".gz-tmp-{pid}"))
}

/// Deletes temporary files left by compressing processes that are gone (a crash mid-way).
fn remove_stale_temporaries(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else { return };
    let prefix = format!("{name}.gz-tmp-");
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else { continue };
        let alive =
            pid.parse::<u32>().is_ok_and(|p| p != std::process::id() && Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Gzips `from` (an open rotated file) into a fresh temporary file, synced to disk.
fn compress_into(mut from: File, tmp: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(tmp);
    let out = OpenOptions::new().create_new(true).write(true).mode(0o600).open(tmp)?;
    let mut encoder = flate2::write::GzEncoder::new(std::io::BufWriter::new(out), flate2::Compression::default());
    std::io::copy(&mut from, &mut encoder)?;
    let out = encoder.finish()?.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    out.sync_all()
}

/// The compressing thread of one journal: one rotated file after another, until none is left
/// uncompressed. The heavy part (reading and gzipping) runs outside the lock; the lock is
/// taken only to pick a file and to put its `.gz` in place.
fn compress_rotated(sink: Weak<Mutex<Sink>>) {
    let lock = |sink: &Weak<Mutex<Sink>>| sink.upgrade();
    loop {
        let Some(arc) = lock(&sink) else { return };
        let (file, inode, path) = {
            let mut s = arc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match s.next_uncompressed() {
                Some((file, inode)) => (file, inode, s.path.clone()),
                None => {
                    s.compressing = false;
                    return;
                }
            }
        };
        drop(arc);
        let tmp = temporary_path(&path, std::process::id());
        let done = compress_into(file, &tmp).and_then(|()| {
            let Some(arc) = lock(&sink) else { return std::fs::remove_file(&tmp) };
            let s = arc.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            s.put_compressed(&tmp, inode)
        });
        if let Err(e) = done {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!(error = %e, path = %path.display(), "audit journal compression failed; the rotated file stays as it is");
            if let Some(arc) = lock(&sink) {
                arc.lock().unwrap_or_else(std::sync::PoisonError::into_inner).compressing = false;
            }
            return;
        }
    }
}

impl Sink {
    /// Appends one whole line, rotating first if it would not fit.
    fn append(&mut self, line: &[u8]) -> std::io::Result<()> {
        let len = line.len() as u64;
        let too_big = self.rotation.max_bytes > 0 && self.size + len > self.rotation.max_bytes;
        let too_old = self
            .rotation
            .max_age
            .is_some_and(|age| SystemTime::now().duration_since(self.started).is_ok_and(|d| d > age));
        if self.size > 0 && (too_big || too_old) {
            // A failed rotation keeps writing to the current file: a journal that grows past its
            // limit is better than a lost line.
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, path = %self.path.display(), "audit journal rotation failed");
            }
        }
        self.file.write_all(line)?;
        self.size += len;
        Ok(())
    }

    /// Shifts `.N` and `.N.gz` alike (a file keeps its form, whatever `compress` says now).
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep.max(1);
        remove_if_present(&rotated_path(&self.path, keep))?;
        remove_if_present(&compressed_path(&self.path, keep))?;
        for n in (1..keep).rev() {
            rename_if_present(&rotated_path(&self.path, n), &rotated_path(&self.path, n + 1))?;
            rename_if_present(&compressed_path(&self.path, n), &compressed_path(&self.path, n + 1))?;
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.started = SystemTime::now();
        self.start_compressing();
        Ok(())
    }

    /// Starts the compressing thread, unless compression is off or one is at work (it will
    /// find the new file too).
    fn start_compressing(&mut self) {
        if !self.rotation.compress || self.compressing {
            return;
        }
        let sink = self.this.clone();
        let started = std::thread::Builder::new().name("journal-gzip".into()).spawn(move || compress_rotated(sink));
        match started {
            Ok(_) => self.compressing = true,
            Err(e) => tracing::warn!(error = %e, "cannot start compressing the rotated journal"),
        }
    }

    /// The newest rotated file not yet compressed, open, with its inode. A `.N` beside a
    /// `.N.gz` (a crash between putting the `.gz` in place and deleting the `.N`) is deleted:
    /// the `.gz` was complete and synced before it got its name.
    fn next_uncompressed(&self) -> Option<(File, u64)> {
        for n in 1..=self.rotation.keep.max(1) {
            let plain = rotated_path(&self.path, n);
            if compressed_path(&self.path, n).exists() {
                let _ = remove_if_present(&plain);
                continue;
            }
            if let Ok(file) = File::open(&plain)
                && let Ok(meta) = file.metadata()
            {
                return Some((file, meta.ino()));
            }
        }
        None
    }

    /// Puts the compressed copy of the rotated file with `inode` in place as `.N.gz` and
    /// deletes `.N`, wherever rotations have moved it meanwhile; if it was rotated away, the
    /// copy is dropped.
    fn put_compressed(&self, tmp: &Path, inode: u64) -> std::io::Result<()> {
        for n in 1..=self.rotation.keep.max(1) {
            let plain = rotated_path(&self.path, n);
            if std::fs::metadata(&plain).is_ok_and(|m| m.ino() == inode) {
                std::fs::rename(tmp, compressed_path(&self.path, n))?;
                sync_dir(&self.path)?;
                std::fs::remove_file(&plain)?;
                return sync_dir(&self.path);
            }
        }
        std::fs::remove_file(tmp)
    }
}

impl AuditLog {
    /// A journal that records nothing.
    pub fn disabled() -> Self {
        AuditLog { file: None }
    }

    /// Opens (creating with mode 0600) an append-only journal, rotated by the default
    /// [`Rotation`].
    pub fn open(path: &Path) -> std::io::Result<Self> {
        Self::open_rotating(path, Rotation::default())
    }

    /// Opens (creating with mode 0600) an append-only journal rotated by `rotation`. A journal
    /// already open in this process under the same path is shared, with the rotation it was
    /// opened with.
    pub fn open_rotating(path: &Path, rotation: Rotation) -> std::io::Result<Self> {
        let mut sinks = SINKS.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let sinks = sinks.get_or_insert_with(HashMap::new);
        sinks.retain(|_, w| w.strong_count() > 0);
        let key = std::path::absolute(path)?;
        if let Some(sink) = sinks.get(&key).and_then(Weak::upgrade) {
            return Ok(AuditLog { file: Some(sink) });
        }
        let file = open_append(path)?;
        let meta = file.metadata()?;
        let size = meta.len();
        // A file kept from an earlier run is as old as its birth (or, where the filesystem does
        // not say, its last change: never older than it really is, so never rotated early).
        let started = if size == 0 { SystemTime::now() } else { meta.created().or_else(|_| meta.modified())? };
        let sink = Arc::new_cyclic(|this| {
            Mutex::new(Sink {
                file,
                path: key.clone(),
                size,
                started,
                rotation,
                this: this.clone(),
                compressing: false,
            })
        });
        if rotation.compress {
            // What an earlier run left: a crash mid-way, or files rotated before it ended.
            remove_stale_temporaries(&key);
            sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).start_compressing();
        }
        sinks.insert(key, Arc::downgrade(&sink));
        Ok(AuditLog { file: Some(sink) })
    }

    /// Whether anything is recorded.
    pub fn enabled(&self) -> bool {
        self.file.is_some()
    }

    /// Appends one record. One `write` per line, so concurrent writers never interleave lines.
    pub fn record(&self, rec: &AuditRecord<'_>) {
        self.record_counted(rec, 0);
    }

    /// Appends one record with the number of secrets redacted from the call's result, written
    /// as a last field `redactions` only when non-zero (so every other line keeps its shape).
    pub fn record_counted(&self, rec: &AuditRecord<'_>, redactions: usize) {
        self.record_noted(rec, redactions, &serde_json::Map::new());
    }

    /// Appends one record with the redaction count and what the tool noted about its outcome
    /// (a command's `exit_code` or `signal`), as last fields present only when set.
    pub fn record_noted(&self, rec: &AuditRecord<'_>, redactions: usize, notes: &serde_json::Map<String, Value>) {
        #[derive(Serialize)]
        struct Counted<'r, 'a> {
            #[serde(flatten)]
            rec: &'r AuditRecord<'a>,
            #[serde(skip_serializing_if = "is_zero")]
            redactions: usize,
            #[serde(flatten)]
            notes: &'r serde_json::Map<String, Value>,
        }
        let Some(file) = &self.file else { return };
        let Ok(mut line) = serde_json::to_vec(&Counted { rec, redactions, notes }) else { return };
        line.push(b'\n');
        if let Ok(mut f) = file.lock()
            && let Err(e) = f.append(&line)
        {
            tracing::warn!(error = %e, "audit journal write failed");
        }
    }

    /// Appends a free-form event (start-up, sandbox status) as one JSON line.
    pub fn event(&self, server: &str, event: &str, detail: Value) {
        let Some(file) = &self.file else { return };
        let v = serde_json::json!({"time": now_rfc3339(), "server": server, "event": event, "detail": detail});
        let Ok(mut line) = serde_json::to_vec(&v) else { return };
        line.push(b'\n');
        if let Ok(mut f) = file.lock() {
            let _ = f.append(&line);
        }
    }
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// The current time as RFC 3339 with milliseconds, UTC.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

/// Milliseconds with microsecond precision, for `duration_ms`.
pub fn millis(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1000.0
}

/// Redacts a tool's arguments for the journal.
pub fn redact(args: &Value) -> Value {
    redact_inner(None, args)
}

fn redact_inner(key: Option<&str>, v: &Value) -> Value {
    let lower = key.map(str::to_ascii_lowercase);
    if let Some(k) = &lower {
        if SECRET_KEY_PARTS.iter().any(|p| k.contains(p)) {
            return Value::String("[redacted]".into());
        }
        if CONTENT_KEYS.contains(&k.as_str()) {
            return match v {
                Value::String(s) => Value::String(format!("[{} bytes]", s.len())),
                Value::Null => Value::Null,
                other => Value::String(format!("[{} bytes]", other.to_string().len())),
            };
        }
    }
    match v {
        Value::Object(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                out.insert(k.clone(), redact_inner(Some(k), v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| redact_inner(key, i)).collect()),
        Value::String(s) if looks_like_secret(s) => Value::String("[redacted]".into()),
        Value::String(s) if s.len() > MAX_JOURNALED_STRING => Value::String(format!("[{} bytes]", s.len())),
        other => other.clone(),
    }
}

/// Heuristics for secret-looking strings: well-known token prefixes, JWTs, PEM blocks, and
/// `Bearer` headers.
pub fn looks_like_secret(s: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "sk-",
        "sk_live_",
        "rk_live_",
        "ghp_",
        "gho_",
        "ghs_",
        "ghu_",
        "github_pat_",
        "glpat-",
        "xoxb-",
        "xoxp-",
        "AKIA",
        "ASIA",
        "AIza",
        "eyJ",
        "npm_",
        "pypi-",
    ];
    let t = s.trim();
    if t.contains("-----BEGIN") || t.to_ascii_lowercase().starts_with("bearer ") {
        return true;
    }
    t.len() >= 16 && !t.contains(char::is_whitespace) && PREFIXES.iter().any(|p| t.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redactions_are_a_last_field_only_when_non_zero() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let log = AuditLog::open(&path).unwrap();
        let rec = AuditRecord {
            time: "t".into(),
            server: "fs",
            principal: "local",
            tool: "read_file",
            args: json!({"path": "a"}),
            outcome: "ok",
            duration_ms: 1.5,
            result_bytes: 10,
        };
        log.record(&rec);
        log.record_counted(&rec, 0);
        log.record_counted(&rec, 2);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let plain = r#"{"time":"t","server":"fs","principal":"local","tool":"read_file","args":{"path":"a"},"outcome":"ok","duration_ms":1.5,"result_bytes":10"#;
        assert_eq!(lines[0], format!("{plain}}}"));
        assert_eq!(lines[1], lines[0]);
        assert_eq!(lines[2], format!("{plain},\"redactions\":2}}"));
    }

    /// Rotation by size under 32 concurrent writers: every line lands whole in exactly one
    /// file, no file but the current one passes the limit, and only `keep` rotated files stay.
    #[test]
    fn rotation_loses_and_splits_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let log = Arc::new(
            AuditLog::open_rotating(&path, Rotation { max_bytes: 4096, keep: 1000, ..Rotation::default() }).unwrap(),
        );
        // A second handle on the same path shares the lock and the size counter.
        let other = Arc::new(AuditLog::open(&path).unwrap());
        let threads: Vec<_> = (0..32)
            .map(|t| {
                let log = if t % 2 == 0 { log.clone() } else { other.clone() };
                std::thread::spawn(move || {
                    for i in 0..100 {
                        log.event("hub", "test", json!({"t": t, "i": i, "pad": "x".repeat(i % 50)}));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let mut seen = std::collections::HashSet::new();
        let mut files = vec![path.clone()];
        files.extend((1..=1000).map(|n| rotated_path(&path, n)).take_while(|p| p.exists()));
        assert!(files.len() > 10, "rotated {} times", files.len() - 1);
        for f in &files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(text.len() as u64 <= 4096, "{} is {} bytes", f.display(), text.len());
            assert!(text.ends_with('\n'));
            for line in text.lines() {
                let v: Value = serde_json::from_str(line).unwrap();
                assert!(seen.insert((v["detail"]["t"].as_u64().unwrap(), v["detail"]["i"].as_u64().unwrap())));
            }
        }
        assert_eq!(seen.len(), 3200, "every line, once");

        // `keep` bounds the rotated files; `.1` is the newest.
        let path = dir.path().join("small.jsonl");
        let log = AuditLog::open_rotating(&path, Rotation { max_bytes: 100, keep: 2, ..Rotation::default() }).unwrap();
        for i in 0..10 {
            log.event("hub", "n", json!(i));
        }
        assert!(!rotated_path(&path, 3).exists());
        let newest: Value =
            serde_json::from_str(std::fs::read_to_string(rotated_path(&path, 1)).unwrap().trim()).unwrap();
        let older: Value =
            serde_json::from_str(std::fs::read_to_string(rotated_path(&path, 2)).unwrap().trim()).unwrap();
        assert_eq!((older["detail"].as_u64(), newest["detail"].as_u64()), (Some(7), Some(8)));
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[test]
    fn the_journal_rotates_by_age_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aged.jsonl");
        let rotation = Rotation { max_bytes: 0, keep: 3, max_age: Some(Duration::from_millis(150)), compress: false };
        let log = AuditLog::open_rotating(&path, rotation).unwrap();
        log.event("hub", "n", json!(1));
        log.event("hub", "n", json!(2));
        assert!(!rotated_path(&path, 1).exists(), "a young file is not rotated");
        std::thread::sleep(Duration::from_millis(300));
        log.event("hub", "n", json!(3));
        // The old file, with both of its lines, became `.1`; the line that found it old starts
        // the new one.
        assert_eq!(std::fs::read_to_string(rotated_path(&path, 1)).unwrap().lines().count(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
        // Read from a configuration file.
        let parsed: Rotation = toml::from_str("max_age = \"7d\"").unwrap();
        assert_eq!(parsed.max_age, Some(Duration::from_secs(7 * 86_400)));
        assert_eq!(parsed.max_bytes, Rotation::default().max_bytes);
    }

    /// Waits until the journal's compressing thread has nothing left to do.
    fn wait_compressed(log: &AuditLog) {
        let sink = log.file.as_ref().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while sink.lock().unwrap().compressing {
            assert!(std::time::Instant::now() < deadline, "compression did not finish");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every line of the journal and its rotated files, through the readers' functions.
    fn all_lines(path: &Path) -> Vec<Value> {
        let mut files = vec![path.to_path_buf()];
        files.extend(rotated_files(path));
        files
            .iter()
            .flat_map(|f| {
                read_journal(f).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Compression under 32 concurrent writers: every line is found once, in `audit.jsonl` or a
    /// `.N.gz` (no `.N` left beside one), newest first; the `.gz` files are private.
    #[test]
    fn compressed_rotation_loses_no_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation { max_bytes: 8192, keep: 1000, compress: true, ..Rotation::default() };
        let log = Arc::new(AuditLog::open_rotating(&path, rotation).unwrap());
        let threads: Vec<_> = (0..32)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..100 {
                        log.event("hub", "test", json!({"t": t, "i": i, "pad": "x".repeat(i % 50)}));
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        wait_compressed(&log);
        let rotated = rotated_files(&path);
        assert!(rotated.len() > 5, "rotated {} times", rotated.len());
        for (i, f) in rotated.iter().enumerate() {
            assert_eq!(*f, compressed_path(&path, i as u32 + 1), "every rotated file compressed");
            assert!(!rotated_path(&path, i as u32 + 1).exists(), "no plain file beside its .gz");
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(f).unwrap().permissions().mode() & 0o777, 0o600);
            assert!(std::fs::metadata(f).unwrap().len() < 8192 / 2, "compressed");
        }
        let lines = all_lines(&path);
        let seen: std::collections::HashSet<_> =
            lines.iter().map(|v| (v["detail"]["t"].as_u64().unwrap(), v["detail"]["i"].as_u64().unwrap())).collect();
        assert_eq!((lines.len(), seen.len()), (3200, 3200), "every line, once");
        // No temporary file left.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("tmp")), "{names:?}");
    }

    /// What a crash leaves is made whole at the next start: a `.N` beside its complete `.N.gz`
    /// is deleted, a `.N` never compressed is compressed, a dead process's temporary file goes;
    /// the shift after that keeps every file's form and order.
    #[test]
    fn compression_recovers_from_a_crash_at_any_step() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let gz = |text: &str| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(text.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        std::fs::write(&path, "{\"n\":0}\n").unwrap();
        // `.1` renamed into place as `.1.gz` but the crash came before `.1` was deleted.
        std::fs::write(rotated_path(&path, 1), "{\"n\":1}\n").unwrap();
        std::fs::write(compressed_path(&path, 1), gz("{\"n\":1}\n")).unwrap();
        // `.2` never compressed; `.3` compressed.
        std::fs::write(rotated_path(&path, 2), "{\"n\":2}\n").unwrap();
        std::fs::write(compressed_path(&path, 3), gz("{\"n\":3}\n")).unwrap();
        // A half-written temporary file of a process that is gone (pid 0 never names one).
        std::fs::write(temporary_path(&path, 0), b"\x1f\x8b half").unwrap();
        // What a reader sees before any recovery: the .gz wins over its plain twin.
        assert_eq!(
            rotated_files(&path),
            [compressed_path(&path, 1), rotated_path(&path, 2), compressed_path(&path, 3)]
        );
        let rotation = Rotation { max_bytes: 10, keep: 4, compress: true, ..Rotation::default() };
        let log = AuditLog::open_rotating(&path, rotation).unwrap();
        wait_compressed(&log);
        assert!(!rotated_path(&path, 1).exists() && !rotated_path(&path, 2).exists());
        assert!(!temporary_path(&path, 0).exists());
        let ns = |p: &Path| all_lines(p).iter().map(|v| v["n"].as_u64().unwrap()).collect::<Vec<_>>();
        assert_eq!(ns(&path), [0, 1, 2, 3]);
        // One more line rotates: `.3.gz` becomes `.4.gz`, the current file `.1` (then `.1.gz`).
        log.event("hub", "n", json!(4));
        wait_compressed(&log);
        assert_eq!(rotated_files(&path), (1..=4).map(|n| compressed_path(&path, n)).collect::<Vec<_>>());
        let lines = all_lines(&path);
        assert_eq!(lines[0]["detail"], 4);
        assert_eq!(lines[1..].iter().map(|v| v["n"].as_u64().unwrap()).collect::<Vec<_>>(), [0, 1, 2, 3]);
        // Read from a configuration file.
        let parsed: Rotation = toml::from_str("compress = true").unwrap();
        assert!(parsed.compress && parsed.keep == Rotation::default().keep);
    }

    #[test]
    fn redacts_secrets_and_contents() {
        let args = json!({
            "path": "src/main.rs",
            "content": "fn main() {}",
            "api_token": "abc",
            "args": ["--header", "Bearer abcdefghijklmnop", "ghp_0123456789abcdefghij"],
            "nested": {"password": "hunter2", "old_text": "x"}
        });
        let r = redact(&args);
        assert_eq!(r["path"], "src/main.rs");
        assert_eq!(r["content"], "[12 bytes]");
        assert_eq!(r["api_token"], "[redacted]");
        assert_eq!(r["args"][0], "--header");
        assert_eq!(r["args"][1], "[redacted]");
        assert_eq!(r["args"][2], "[redacted]");
        assert_eq!(r["nested"]["password"], "[redacted]");
        assert_eq!(r["nested"]["old_text"], "[1 bytes]");
    }
}
