//! The audit journal: one JSON line per tool call. Arguments are recorded with secret-looking
//! values redacted and bulky values (file contents, patches) replaced by their size; results are
//! recorded by size only. Never file contents.
//!
//! The journal rotates by size and age ([`Rotation`]): when the next line would take
//! `audit.jsonl` past `max_bytes`, or the file is older than `max_age`, it becomes `audit.jsonl.1` (the older ones shift to `.2`, `.3`, … and the
//! one past `keep` is deleted) and a new `audit.jsonl` starts with that line. Rotation happens
//! under the same lock as the write, so no line is split across two files or lost; readers
//! read `audit.jsonl` and then its siblings `.1`, `.2`, … (newest first).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
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
}

impl Default for Rotation {
    /// 64 MiB, five rotated files: about a million calls in all, a few hundred megabytes at most.
    fn default() -> Self {
        Rotation { max_bytes: 64 * 1024 * 1024, keep: 5, max_age: None }
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
}

/// Open sinks by path, so that opening a journal twice in one process shares its lock.
static SINKS: Mutex<Option<HashMap<PathBuf, Weak<Mutex<Sink>>>>> = Mutex::new(None);

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).mode(0o600).open(path)
}

/// `audit.jsonl.N`.
pub fn rotated_path(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
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

    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.rotation.keep.max(1);
        match std::fs::remove_file(rotated_path(&self.path, keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            match std::fs::rename(rotated_path(&self.path, n), rotated_path(&self.path, n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        std::fs::rename(&self.path, rotated_path(&self.path, 1))?;
        self.file = open_append(&self.path)?;
        self.size = 0;
        self.started = SystemTime::now();
        Ok(())
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
        let sink = Arc::new(Mutex::new(Sink { file, path: key.clone(), size, started, rotation }));
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
        let log =
            Arc::new(AuditLog::open_rotating(&path, Rotation { max_bytes: 4096, keep: 1000, max_age: None }).unwrap());
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
        let log = AuditLog::open_rotating(&path, Rotation { max_bytes: 100, keep: 2, max_age: None }).unwrap();
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
        let rotation = Rotation { max_bytes: 0, keep: 3, max_age: Some(Duration::from_millis(150)) };
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
