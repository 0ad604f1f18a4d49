//! Long-running processes: started in the background, output kept in a bounded log read by
//! offset, killed on request or when the server exits.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::process::ChildStdin;
use tokio::sync::watch;

use crate::exec::Exit;

/// The combined stdout and stderr of a process, in arrival order. Only the newest
/// `retain` bytes are kept; offsets stay absolute.
#[derive(Debug, Default)]
pub struct OutputLog {
    data: std::collections::VecDeque<u8>,
    /// Absolute offset of `data[0]`.
    base: u64,
    retain: usize,
}

impl OutputLog {
    /// A log keeping the newest `retain` bytes.
    pub fn new(retain: usize) -> Self {
        OutputLog { retain, ..Default::default() }
    }

    /// Appends bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.data.extend(bytes);
        let excess = self.data.len().saturating_sub(self.retain);
        if excess > 0 {
            self.data.drain(..excess);
            self.base += excess as u64;
        }
    }

    /// Absolute offset just past the newest byte.
    pub fn end(&self) -> u64 {
        self.base + self.data.len() as u64
    }

    /// Bytes from `offset` (negative: that many from the end), at most `max`. Returns the
    /// start offset actually used (later than asked when older bytes were dropped) and the bytes.
    pub fn read(&self, offset: i64, max: usize) -> (u64, Vec<u8>) {
        let end = self.end();
        let start = if offset < 0 { end.saturating_sub(offset.unsigned_abs()) } else { offset as u64 };
        let start = start.clamp(self.base, end);
        let from = (start - self.base) as usize;
        let to = (from + max).min(self.data.len());
        (start, self.data.range(from..to).copied().collect())
    }
}

/// One managed process.
#[derive(Debug)]
pub struct Managed {
    /// Id given to the model.
    pub id: u64,
    /// Program name.
    pub program: String,
    /// Arguments as run.
    pub args: Vec<String>,
    /// Working directory as shown.
    pub cwd: String,
    /// Trampoline pid (the process group to kill).
    pub pid: u32,
    /// Start time.
    pub started: Instant,
    /// Wall-clock start (RFC 3339).
    pub started_at: String,
    /// stdin, when the program accepts input.
    pub stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    /// The output.
    pub output: Arc<Mutex<OutputLog>>,
    /// Set when it ended.
    pub exit: watch::Receiver<Option<Exit>>,
    /// The program's stdin is an interpreter.
    pub stdin_interpreter: bool,
}

impl Managed {
    /// How it ended, if it has.
    pub fn exit(&self) -> Option<Exit> {
        *self.exit.borrow()
    }
}

/// All managed processes of the server.
#[derive(Debug, Default)]
pub struct ProcessTable {
    next: u64,
    procs: BTreeMap<u64, Arc<Managed>>,
}

impl ProcessTable {
    /// A fresh id.
    pub fn next_id(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Adds a process.
    pub fn insert(&mut self, m: Arc<Managed>) {
        self.procs.insert(m.id, m);
        // Keep the table bounded: forget the oldest finished processes beyond 64 entries.
        while self.procs.len() > 64 {
            let Some(oldest_done) = self.procs.iter().find(|(_, p)| p.exit().is_some()).map(|(id, _)| *id) else {
                break;
            };
            self.procs.remove(&oldest_done);
        }
    }

    /// The process `id`.
    pub fn get(&self, id: u64) -> Option<Arc<Managed>> {
        self.procs.get(&id).cloned()
    }

    /// Every process.
    pub fn all(&self) -> Vec<Arc<Managed>> {
        self.procs.values().cloned().collect()
    }

    /// Processes still running.
    pub fn running(&self) -> usize {
        self.procs.values().filter(|p| p.exit().is_none()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_offsets_survive_dropping() {
        let mut log = OutputLog::new(8);
        log.push(b"0123456789");
        assert_eq!(log.end(), 10);
        assert_eq!(log.read(0, 100), (2, b"23456789".to_vec()));
        assert_eq!(log.read(-3, 100), (7, b"789".to_vec()));
        assert_eq!(log.read(5, 2), (5, b"56".to_vec()));
        assert_eq!(log.read(50, 2), (10, Vec::new()));
    }
}
