//! Reading the audit journal for the dashboard: the last lines of `audit.jsonl` (Now, Health),
//! a search through it and its rotated siblings `audit.jsonl.1`, `audit.jsonl.2`, … (newest
//! first; each `.N.gz` instead where the journal compresses them, read through bastion-policy's
//! readers), and following it as it grows (the live feed).
//!
//! A line is a call (`tool`, `principal`, `args`, `outcome`, `duration_ms`, `result_bytes`) or
//! an event (`event`, `detail`): approvals, switches, elevations, and refused HTTP requests
//! (`http_refused`). Lines that are not JSON objects are skipped.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::Value;

/// How much of the end of the journal Now and Health read.
const TAIL_BYTES: u64 = 512 * 1024;
/// Rotated files looked at, at most.
const MAX_ROTATED: usize = 100;

/// What a journal line is about, for the live feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A tool call.
    Call,
    /// A refused HTTP request.
    Refused,
    /// A request for approval, a decision, an expiry.
    Approval,
    /// Mode, pause, resume.
    Switch,
    /// Elevations, revocations.
    Access,
    /// Anything else (start-up events).
    Other,
}

impl Kind {
    /// The name the live feed sends.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Call => "call",
            Kind::Refused => "refused",
            Kind::Approval => "approval",
            Kind::Switch => "switch",
            Kind::Access => "access",
            Kind::Other => "other",
        }
    }

    /// The kind of a journal line.
    pub fn of(line: &Value) -> Kind {
        match line.get("event").and_then(Value::as_str) {
            None if line.get("tool").is_some() => Kind::Call,
            None => Kind::Other,
            Some("http_refused") => Kind::Refused,
            Some(e) if e.starts_with("approval_") => Kind::Approval,
            Some("mode_change" | "pause" | "resume") => Kind::Switch,
            Some("elevation" | "revoke_all" | "token_created" | "token_revoked") => Kind::Access,
            Some(_) => Kind::Other,
        }
    }
}

/// The journal and its rotated siblings, newest first: `audit.jsonl`, `audit.jsonl.1` (or
/// `audit.jsonl.1.gz`), ….
pub fn files(journal: &Path) -> Vec<PathBuf> {
    let mut out = vec![journal.to_path_buf()];
    out.extend(bastion_policy::audit::rotated_files(journal).into_iter().take(MAX_ROTATED));
    out
}

fn parse(text: &str) -> impl DoubleEndedIterator<Item = Value> + '_ {
    text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok().filter(Value::is_object))
}

/// The lines of the last [`TAIL_BYTES`] of the journal, oldest first (the first, partial line
/// dropped).
pub fn tail(journal: &Path) -> Vec<Value> {
    let Ok(mut f) = File::open(journal) else { return Vec::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let start = len.saturating_sub(TAIL_BYTES);
    if f.seek(SeekFrom::Start(start)).is_err() {
        return Vec::new();
    }
    let mut bytes = Vec::new();
    if f.read_to_end(&mut bytes).is_err() {
        return Vec::new();
    }
    let text = String::from_utf8_lossy(&bytes);
    let text = if start > 0 { text.split_once('\n').map_or("", |(_, rest)| rest) } else { &text };
    parse(text).collect()
}

/// A journal search: every field optional.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Lines at or after this time (an RFC 3339 prefix such as `2026-12-05T07:30`).
    pub from: String,
    /// Lines before this time.
    pub to: String,
    /// The principal contains this.
    pub principal: String,
    /// The tool (or event name) contains this.
    pub tool: String,
    /// The outcome is exactly this (`ok`, an error code; `event` for events).
    pub outcome: String,
    /// The whole line contains this (case-insensitive).
    pub text: String,
}

/// One page of results, newest first.
pub struct Page {
    /// The lines.
    pub lines: Vec<Value>,
    /// Whether older lines match too.
    pub more: bool,
    /// The files searched.
    pub files: usize,
}

/// Journal times are RFC 3339 UTC with a fixed layout, so text order is time order; a
/// `datetime-local` value (`2026-12-05T07:30`) compares as its prefix.
fn in_range(time: &str, q: &Query) -> bool {
    (q.from.is_empty() || time >= q.from.as_str()) && (q.to.is_empty() || time < q.to.as_str())
}

fn matches(line: &Value, raw: &str, q: &Query) -> bool {
    let s = |k: &str| line.get(k).and_then(Value::as_str).unwrap_or("");
    let name = line.get("event").and_then(Value::as_str).unwrap_or_else(|| s("tool"));
    let outcome = if line.get("event").is_some() { "event" } else { s("outcome") };
    let principal = match line.get("detail").and_then(|d| d.get("principal")).and_then(Value::as_str) {
        Some(p) => p,
        None => s("principal"),
    };
    in_range(s("time"), q)
        && (q.principal.is_empty() || principal.contains(q.principal.as_str()))
        && (q.tool.is_empty() || name.contains(q.tool.as_str()))
        && (q.outcome.is_empty() || outcome == q.outcome)
        && (q.text.is_empty() || raw.to_lowercase().contains(&q.text.to_lowercase()))
}

/// Page `page` (from 0) of `per_page` matching lines, newest first, through every rotated file.
pub fn search(journal: &Path, q: &Query, page: usize, per_page: usize) -> Page {
    let files = files(journal);
    let skip = page.saturating_mul(per_page);
    let mut seen = 0usize;
    let mut lines = Vec::new();
    for f in &files {
        let Ok(text) = bastion_policy::audit::read_journal(f) else { continue };
        // A whole file older than `from` ends the search (files are in time order).
        for raw in text.lines().rev() {
            let Ok(line) = serde_json::from_str::<Value>(raw) else { continue };
            if !line.is_object() || !matches(&line, raw, q) {
                continue;
            }
            if seen >= skip {
                if lines.len() == per_page {
                    return Page { lines, more: true, files: files.len() };
                }
                lines.push(line);
            }
            seen += 1;
        }
    }
    Page { lines, more: false, files: files.len() }
}

/// Follows the journal as it grows: each [`Follower::read`] returns the lines appended since
/// the last. A journal replaced or truncated (rotation) is read again from its start.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    inode: u64,
    partial: Vec<u8>,
}

impl Follower {
    /// Starts at the journal's current end.
    pub fn at_end(path: &Path) -> Follower {
        let (len, inode) = std::fs::metadata(path).map(|m| (m.len(), inode(&m))).unwrap_or((0, 0));
        Follower { path: path.to_path_buf(), offset: len, inode, partial: Vec::new() }
    }

    /// The complete lines appended since the last call.
    pub fn read(&mut self) -> Vec<Value> {
        let Ok(meta) = std::fs::metadata(&self.path) else { return Vec::new() };
        if inode(&meta) != self.inode || meta.len() < self.offset {
            self.inode = inode(&meta);
            self.offset = 0;
            self.partial.clear();
        }
        if meta.len() == self.offset {
            return Vec::new();
        }
        let Ok(mut f) = File::open(&self.path) else { return Vec::new() };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut bytes = Vec::new();
        let Ok(n) = f.read_to_end(&mut bytes) else { return Vec::new() };
        self.offset += n as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(end) = self.partial.iter().rposition(|b| *b == b'\n') else { return Vec::new() };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        parse(&String::from_utf8_lossy(&complete)).collect()
    }
}

fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn call(time: &str, tool: &str, outcome: &str) -> String {
        format!(
            "{{\"time\":\"{time}\",\"server\":\"hub\",\"principal\":\"owner\",\"tool\":\"{tool}\",\"args\":{{}},\"outcome\":\"{outcome}\",\"duration_ms\":1.0,\"result_bytes\":2}}\n"
        )
    }

    #[test]
    fn search_pages_through_rotated_and_compressed_files_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("audit.jsonl");
        // The oldest compressed (`[journal] compress = true`).
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(call("2026-12-01T00:00:00.000Z", "fs__a", "ok").as_bytes()).unwrap();
        std::fs::write(dir.path().join("audit.jsonl.2.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(
            dir.path().join("audit.jsonl.1"),
            call("2026-12-02T00:00:00.000Z", "fs__b", "ok") + "not json\n",
        )
        .unwrap();
        let refused = "{\"time\":\"2026-12-03T00:00:01.000Z\",\"server\":\"hub\",\"event\":\"http_refused\",\"detail\":{\"status\":401,\"reason\":\"invalid_token\"}}\n";
        std::fs::write(&j, call("2026-12-03T00:00:00.000Z", "fs__c", "paused") + refused).unwrap();
        assert_eq!(files(&j).len(), 3);
        let all = search(&j, &Query::default(), 0, 2);
        let tools: Vec<_> = all.lines.iter().map(|l| l["tool"].as_str().unwrap_or("event")).collect();
        assert_eq!((tools, all.more), (vec!["event", "fs__c"], true));
        let next = search(&j, &Query::default(), 1, 2);
        let tools: Vec<_> = next.lines.iter().map(|l| l["tool"].as_str().unwrap()).collect();
        assert_eq!((tools, next.more), (vec!["fs__b", "fs__a"], false));
        let q = Query { from: "2026-12-02".into(), to: "2026-12-03".into(), ..Query::default() };
        assert_eq!(search(&j, &q, 0, 10).lines.len(), 1);
        let q = Query { outcome: "paused".into(), ..Query::default() };
        assert_eq!(search(&j, &q, 0, 10).lines[0]["tool"], "fs__c");
        let q = Query { text: "INVALID_TOKEN".into(), ..Query::default() };
        assert_eq!(Kind::of(&search(&j, &q, 0, 10).lines[0]), Kind::Refused);
        assert_eq!(tail(&j).len(), 2);
    }

    #[test]
    fn a_follower_sees_appended_lines_and_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let j = dir.path().join("audit.jsonl");
        std::fs::write(&j, call("t0", "old", "ok")).unwrap();
        let mut f = Follower::at_end(&j);
        assert!(f.read().is_empty());
        let mut file = std::fs::OpenOptions::new().append(true).open(&j).unwrap();
        let line = call("t1", "new", "ok");
        file.write_all(&line.as_bytes()[..10]).unwrap();
        assert!(f.read().is_empty(), "half a line waits");
        file.write_all(&line.as_bytes()[10..]).unwrap();
        assert_eq!(f.read()[0]["tool"], "new");
        std::fs::rename(&j, dir.path().join("audit.jsonl.1")).unwrap();
        std::fs::write(&j, call("t2", "rotated", "ok")).unwrap();
        assert_eq!(f.read()[0]["tool"], "rotated");
    }
}
