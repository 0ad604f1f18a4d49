//! The audit journal: one JSON line per tool call. Arguments are recorded with secret-looking
//! values redacted and bulky values (file contents, patches) replaced by their size; results are
//! recorded by size only. Never file contents.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;
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

/// An append-only JSON-lines journal. Without a path it records nothing.
#[derive(Debug, Default)]
pub struct AuditLog {
    file: Option<Mutex<File>>,
}

impl AuditLog {
    /// A journal that records nothing.
    pub fn disabled() -> Self {
        AuditLog { file: None }
    }

    /// Opens (creating with mode 0600) an append-only journal.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
        Ok(AuditLog { file: Some(Mutex::new(file)) })
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
            && let Err(e) = f.write_all(&line)
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
            let _ = f.write_all(&line);
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
