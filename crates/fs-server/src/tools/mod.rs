//! The tools, one module per family.

mod read;
mod search;
mod write;

use std::io::Read;

use bastion_policy::{Error, ErrorCode, OpenedFile, Result};

use crate::FsServer;

pub(crate) use bastion_server_kit::blocking;

impl FsServer {
    /// The output budget for one result: the caller's request, capped by the policy.
    pub(crate) fn budget(&self, requested: Option<u64>) -> usize {
        self.policy().limits.budget(requested)
    }
}

/// Reads a whole opened file, refusing files above `max` bytes.
pub(crate) fn read_all(opened: &mut OpenedFile, max: u64, shown: &str) -> Result<Vec<u8>> {
    let size = opened.stat.st_size.max(0) as u64;
    if size > max {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!(
                "'{shown}' is {size} bytes, above the {max}-byte read limit; use search_text to find the lines you need"
            ),
        ));
    }
    let mut buf = Vec::with_capacity(size as usize);
    (&opened.file).take(max + 1).read_to_end(&mut buf).map_err(|e| Error::from_io(&e, shown))?;
    if buf.len() as u64 > max {
        return Err(Error::new(
            ErrorCode::TooLarge,
            format!("'{shown}' grew above the {max}-byte read limit while being read"),
        ));
    }
    Ok(buf)
}

/// What [`shown_path`] puts before a root-relative path: `name:` when several roots exist.
pub(crate) fn path_prefix(server: &FsServer, root_name: &str) -> String {
    if server.policy().roots().len() > 1 { format!("{root_name}:") } else { String::new() }
}

/// Shows a path to the model: root-relative, prefixed with `root:` when several roots exist.
pub(crate) fn shown_path(server: &FsServer, root_name: &str, rel: &bastion_policy::RelPath) -> String {
    format!("{}{}", path_prefix(server, root_name), rel.display())
}
