//! Reading: read_file, read_many_files, list_directory, file_info, list_roots.

use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;

use base64::Engine;
use bastion_policy::limits::cut_chars;
use bastion_policy::{Access, EntryKind, Error, ErrorCode, OpenedFile, RelPath, Result};
use bastion_server_kit::Json;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{blocking, read_all, shown_path};
use crate::text::{Content, decode, image_mime, line_count, sha256_hex};
use crate::{Failure, FsServer};

/// Arguments of `read_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadFileArgs {
    /// File path, relative to the root (or absolute inside a root).
    pub path: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// First line to return, 1-based. Negative counts from the end: -20 returns the last 20 lines.
    #[serde(default)]
    pub offset: Option<i64>,
    /// Most lines to return. Default: as many as fit the output budget.
    #[serde(default)]
    pub limit: Option<u64>,
    /// Characters to skip in the first line (continuation of a very long line; pass back next_char_offset).
    #[serde(default)]
    pub char_offset: Option<u64>,
    /// Most characters to return (capped by the server's budget).
    #[serde(default)]
    pub max_chars: Option<u64>,
}

/// Result of `read_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadFileOut {
    /// Path as resolved inside the root.
    pub path: String,
    /// The text of the requested lines (absent for images).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// `utf-8`, `latin-1` when the file is not UTF-8 (decoded losslessly byte-for-character), or
    /// `utf-8-lossy` for files above the read limit (streamed; invalid bytes replaced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// MIME type for images (returned as an image content block).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// First line returned (1-based).
    pub start_line: u64,
    /// Last line returned (inclusive; start_line - 1 when nothing was returned).
    pub end_line: u64,
    /// Lines in the file.
    pub total_lines: u64,
    /// File size in bytes.
    pub size: u64,
    /// SHA-256 of the whole file; pass it as expected_sha256 to write_file to avoid overwriting
    /// changes. Absent for files above the read limit, which are streamed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// True when the output budget cut the result; continue with next_offset (and next_char_offset).
    pub truncated: bool,
    /// Line to pass as offset to continue reading, when more lines follow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<u64>,
    /// Characters of line next_offset already returned (pass as char_offset).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_char_offset: Option<u64>,
    /// Secrets replaced by markers in `content` (for the audit journal; not sent).
    #[serde(skip)]
    pub(crate) redactions: usize,
}

/// Arguments of `read_many_files`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReadManyArgs {
    /// File paths (at most 100), relative to the root or absolute inside a root.
    pub paths: Vec<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Most characters per file (the total is capped by the server's budget).
    #[serde(default)]
    pub max_chars_per_file: Option<u64>,
}

/// One file of `read_many_files`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ManyFileOut {
    /// The path as requested.
    pub path: String,
    /// Text content (absent on error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Lines in the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_lines: Option<u64>,
    /// True when this file's content was cut; read the rest with read_file.
    pub truncated: bool,
    /// Error code when this file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// Error message when this file could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Result of `read_many_files`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ReadManyOut {
    /// One entry per requested path, in order.
    pub files: Vec<ManyFileOut>,
    /// True when any file was cut or skipped for the budget.
    pub truncated: bool,
}

/// Arguments of `list_directory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListDirArgs {
    /// Directory path; default the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// How many levels to descend (1 = this directory only; at most 10).
    #[serde(default)]
    pub depth: Option<u32>,
    /// Include names starting with '.' (default true).
    #[serde(default)]
    pub include_hidden: Option<bool>,
    /// Continuation cursor from a previous truncated result.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One entry of `list_directory`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DirEntryOut {
    /// Path relative to the root.
    pub path: String,
    /// `file`, `directory`, `symlink` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size in bytes (files only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// Depth below the listed directory (1 = direct child).
    pub depth: u32,
}

/// Result of `list_directory`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListDirOut {
    /// The listed directory.
    pub path: String,
    /// Entries, directories first, then by name, depth-first.
    pub entries: Vec<DirEntryOut>,
    /// True when more entries follow; pass next_cursor as cursor.
    pub truncated: bool,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// Entries left out because they match the deny list.
    pub hidden_denied: u64,
}

/// Arguments of `file_info`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PathArgs {
    /// Path relative to the root (or absolute inside a root).
    pub path: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
}

/// Result of `file_info`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FileInfoOut {
    /// Path as given.
    pub path: String,
    /// Real path inside the root (differs when the path goes through a symlink).
    pub real_path: String,
    /// `file`, `directory`, `symlink` or `other` (of the target, after in-root links).
    #[serde(rename = "type")]
    pub kind: String,
    /// True when the path itself is a symlink.
    pub is_symlink: bool,
    /// Size in bytes.
    pub size: u64,
    /// Permission bits, octal (e.g. "0644").
    pub mode: String,
    /// Permission bits as `rwxr-xr-x`.
    pub permissions: String,
    /// Hard links.
    pub links: u64,
    /// Last modification, RFC 3339.
    pub modified: String,
    /// Last access, RFC 3339.
    pub accessed: String,
    /// Last status change, RFC 3339.
    pub changed: String,
    /// Lines, for text files within the read limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_count: Option<u64>,
    /// `text`, `binary` or an image MIME type, for files within the read limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
}

/// Arguments of `list_roots` (none).
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NoArgs {}

/// One root.
#[derive(Debug, Serialize, JsonSchema)]
pub struct RootOut {
    /// Name to pass as `root`.
    pub name: String,
    /// Absolute host path.
    pub path: String,
}

/// Result of `list_roots`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ListRootsOut {
    /// Roots; relative paths resolve against the first.
    pub roots: Vec<RootOut>,
    /// Highest tier of tool this server allows (`read`, `write`, `destructive`).
    pub max_tier: String,
    /// Globs nobody may read or write.
    pub deny_read: Vec<String>,
    /// Globs never written (includes deny_read).
    pub deny_write: Vec<String>,
    /// Most characters in one result.
    pub output_chars: u64,
}

#[tool_router(router = read_router, vis = "pub(crate)")]
impl FsServer {
    /// Read a text file's contents (an image comes back as an image). offset/limit pick lines
    /// (negative offset: the tail); a cut result says truncated=true with next_offset. Binary
    /// files: binary_file.
    #[tool(name = "read_file")]
    async fn read_file(&self, Parameters(a): Parameters<ReadFileArgs>) -> Result<CallToolResult, Failure> {
        let budget = self.budget(a.max_chars);
        let (out, image) = self.read_file_impl(&a, budget)?;
        bastion_server_kit::count_redactions(out.redactions);
        let mut result = CallToolResult::structured(serde_json::to_value(&out).map_err(internal)?);
        if let Some((data, mime)) = image {
            result.content.insert(0, ContentBlock::image(data, mime));
        }
        Ok(result)
    }

    /// Read several text files in one call (up to 100); each file reports its own error. The output
    /// budget is shared in order.
    #[tool(name = "read_many_files", output_schema = bastion_server_kit::output_schema_of(Self::read_many_files))]
    async fn read_many_files(&self, Parameters(a): Parameters<ReadManyArgs>) -> Result<Json<ReadManyOut>, Failure> {
        if a.paths.len() > 100 {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                format!("{} paths given; read at most 100 per call", a.paths.len()),
            )
            .into());
        }
        let mut remaining = self.budget(None);
        let per_file = a.max_chars_per_file.map(|m| m as usize).unwrap_or(usize::MAX);
        let mut files = Vec::new();
        let mut any_cut = false;
        for path in &a.paths {
            if remaining == 0 {
                any_cut = true;
                files.push(ManyFileOut {
                    path: path.clone(),
                    content: None,
                    total_lines: None,
                    truncated: true,
                    error_code: Some(ErrorCode::BudgetExceeded.as_str().to_string()),
                    error: Some("output budget used up by earlier files; read this one with read_file".into()),
                });
                continue;
            }
            let args = ReadFileArgs {
                path: path.clone(),
                root: a.root.clone(),
                offset: None,
                limit: None,
                char_offset: None,
                max_chars: None,
            };
            match self.read_file_impl(&args, remaining.min(per_file)) {
                Ok((out, None)) => {
                    bastion_server_kit::count_redactions(out.redactions);
                    let content = out.content.unwrap_or_default();
                    remaining = remaining.saturating_sub(content.chars().count());
                    any_cut |= out.truncated;
                    files.push(ManyFileOut {
                        path: path.clone(),
                        content: Some(content),
                        total_lines: Some(out.total_lines),
                        truncated: out.truncated,
                        error_code: None,
                        error: None,
                    });
                }
                Ok((_, Some(_))) => files.push(ManyFileOut {
                    path: path.clone(),
                    content: None,
                    total_lines: None,
                    truncated: false,
                    error_code: Some(ErrorCode::BinaryFile.as_str().into()),
                    error: Some("this is an image; read it alone with read_file".into()),
                }),
                Err(e) => files.push(ManyFileOut {
                    path: path.clone(),
                    content: None,
                    total_lines: None,
                    truncated: false,
                    error_code: Some(e.code.as_str().into()),
                    error: Some(e.message),
                }),
            }
        }
        Ok(Json(ReadManyOut { files, truncated: any_cut }))
    }

    /// List a directory's entries, directories first, with sizes; depth > 1 descends (not through
    /// symlinks or .git). Paged with cursor.
    #[tool(name = "list_directory", output_schema = bastion_server_kit::output_schema_of(Self::list_directory))]
    async fn list_directory(&self, Parameters(a): Parameters<ListDirArgs>) -> Result<Json<ListDirOut>, Failure> {
        let budget = self.budget(None);
        // One directory is a readdir and a stat per entry: cheaper inline than a hand-off to the
        // blocking pool. Deeper walks go to the pool so they never stall the transport.
        if a.depth.unwrap_or(1) <= 1 {
            return Ok(Json(self.list_impl(a, budget)?));
        }
        let this = self.clone();
        Ok(Json(blocking(move || this.list_impl(a, budget)).await?))
    }

    /// Metadata of a path: type, size, permissions, times, links, line count. Check a path before
    /// reading or writing it.
    #[tool(name = "file_info", output_schema = bastion_server_kit::output_schema_of(Self::file_info))]
    async fn file_info(&self, Parameters(a): Parameters<PathArgs>) -> Result<Json<FileInfoOut>, Failure> {
        Ok(Json(self.info_impl(&a)?))
    }

    /// The directories this server may touch, the highest tool tier allowed and the deny list.
    /// Relative paths resolve against the first root.
    #[tool(name = "list_roots", output_schema = bastion_server_kit::output_schema_of(Self::list_roots))]
    async fn list_roots(&self, Parameters(_a): Parameters<NoArgs>) -> Result<Json<ListRootsOut>, Failure> {
        let p = self.policy();
        Ok(Json(ListRootsOut {
            roots: p
                .roots()
                .iter()
                .map(|r| RootOut { name: r.name().to_string(), path: r.real_path().display().to_string() })
                .collect(),
            max_tier: p.max_tier.as_str().to_string(),
            deny_read: p.deny.patterns(Access::Read).to_vec(),
            deny_write: p.deny.patterns(Access::Write).to_vec(),
            output_chars: p.limits.output_chars as u64,
        }))
    }
}

fn internal(e: serde_json::Error) -> Failure {
    Failure(Error::new(ErrorCode::IoError, format!("internal: cannot serialise result: {e}")))
}

type Image = (String, &'static str);

/// The 0-based line range `[start, end)` a read asks for: `offset` is 1-based, negative counts
/// from the end; `limit` caps the count.
fn window(a: &ReadFileArgs, total: usize) -> (usize, usize) {
    let start = match a.offset {
        None | Some(0) => 0,
        Some(n) if n > 0 => (n as usize - 1).min(total),
        Some(n) => total.saturating_sub(n.unsigned_abs() as usize),
    };
    let end = match a.limit {
        Some(l) => start.saturating_add(l as usize).min(total),
        None => total,
    };
    (start, end)
}

/// A window of lines cut to the output budget.
struct Page {
    content: String,
    start: usize,
    last: usize,
    total: usize,
    truncated: bool,
    next_offset: Option<u64>,
    next_char_offset: Option<u64>,
}

impl Page {
    fn into_out(self, path: String, encoding: &str, size: u64, sha256: Option<String>) -> ReadFileOut {
        ReadFileOut {
            path,
            content: Some(self.content),
            encoding: Some(encoding.to_string()),
            mime_type: None,
            start_line: self.start as u64 + 1,
            end_line: self.last as u64,
            total_lines: self.total as u64,
            size,
            sha256,
            truncated: self.truncated,
            next_offset: self.next_offset,
            next_char_offset: self.next_char_offset,
            redactions: 0,
        }
    }
}

/// Joins `lines` (the window, starting at 0-based line `start`) up to `budget` characters. A line
/// longer than the whole budget is cut, with `next_char_offset` saying where to resume.
fn assemble(lines: &[&str], start: usize, total: usize, char_offset: Option<u64>, budget: usize) -> Page {
    let mut page = Page {
        content: String::new(),
        start,
        last: start,
        total,
        truncated: false,
        next_offset: None,
        next_char_offset: None,
    };
    let mut used = 0usize;
    for (i, line) in lines.iter().enumerate() {
        let idx = start + i;
        let skip = if i == 0 { char_offset.unwrap_or(0) as usize } else { 0 };
        let line: &str =
            if skip > 0 { line.char_indices().nth(skip).map(|(b, _)| &line[b..]).unwrap_or("") } else { line };
        let n = line.chars().count();
        if used + n > budget {
            page.truncated = true;
            page.next_offset = Some(idx as u64 + 1);
            if page.content.is_empty() {
                let (kept, _) = cut_chars(line, budget);
                page.content.push_str(kept);
                page.next_char_offset = Some((skip + kept.chars().count()) as u64);
                page.last = idx + 1;
            }
            return page;
        }
        used += n;
        page.content.push_str(line);
        page.last = idx + 1;
    }
    if start + lines.len() < total {
        page.next_offset = Some((start + lines.len()) as u64 + 1);
    }
    page
}

/// Secrets replaced in `content`, the part returned of a text in which `whole` were replaced:
/// its markers (a file may hold marker text of its own, hence the cap).
fn redactions_in(content: Option<&str>, whole: usize) -> usize {
    match content {
        Some(c) if whole > 0 => c.matches(bastion_policy::redact::MARKER_PREFIX).count().min(whole),
        _ => 0,
    }
}

/// Feeds a file to `f` in 64 KiB chunks from the start, without loading it.
fn stream_chunks(file: &std::fs::File, mut f: impl FnMut(&[u8])) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut pos = 0u64;
    loop {
        let n = file.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(());
        }
        f(&buf[..n]);
        pos += n as u64;
    }
}

/// What a recursive listing has found so far.
struct Found {
    entries: Vec<DirEntryOut>,
    hidden_denied: u64,
    /// Entries the walk may still collect.
    budget: usize,
}

/// What a recursive listing is walking.
#[derive(Clone, Copy)]
struct Walk<'a> {
    root: &'a std::sync::Arc<bastion_policy::Root>,
    max_depth: u32,
    hidden: bool,
}

impl FsServer {
    pub(crate) fn read_file_impl(&self, a: &ReadFileArgs, budget: usize) -> Result<(ReadFileOut, Option<Image>)> {
        let policy = self.policy();
        let roots = policy.roots();
        let target = roots.target(&a.path, a.root.as_deref())?;
        let mut opened = roots.open_file(&target, &policy.deny)?;
        let shown = shown_path(self, target.root.name(), &opened.rel);
        if opened.stat.st_size.max(0) as u64 > policy.limits.max_read_bytes {
            return Ok((self.read_large(&opened, a, shown, budget)?, None));
        }
        let bytes = read_all(&mut opened, policy.limits.max_read_bytes, &shown)?;
        let size = bytes.len() as u64;
        let sha256 = sha256_hex(&bytes);
        if let Some(mime) = image_mime(&bytes) {
            if size > policy.limits.max_image_bytes {
                return Err(Error::new(
                    ErrorCode::TooLarge,
                    format!(
                        "'{shown}' is a {size}-byte {mime} image, above the {}-byte inline image limit",
                        policy.limits.max_image_bytes
                    ),
                ));
            }
            let data = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let out = ReadFileOut {
                path: shown,
                content: None,
                encoding: None,
                mime_type: Some(mime.to_string()),
                start_line: 0,
                end_line: 0,
                total_lines: 0,
                size,
                sha256: Some(sha256),
                truncated: false,
                next_offset: None,
                next_char_offset: None,
                redactions: 0,
            };
            return Ok((out, Some((data, mime))));
        }
        let (text, encoding) = match decode(bytes) {
            Content::Text(t, e) => (t, e),
            Content::Image(_) | Content::Binary => {
                return Err(Error::new(
                    ErrorCode::BinaryFile,
                    format!(
                        "'{shown}' is a binary file ({size} bytes) and cannot be shown as text; use file_info for its metadata"
                    ),
                ));
            }
        };
        // The whole text is redacted before the window is cut, so a secret is never split by a
        // page boundary, and a key block keeps its line count (line numbers stay the file's).
        let redacted = policy.redactor.redact(&text);
        let lines: Vec<&str> = redacted.text.split_inclusive('\n').collect();
        let total = lines.len();
        let (start, end) = window(a, total);
        let page = assemble(&lines[start..end], start, total, a.char_offset, budget);
        let mut out = page.into_out(shown, encoding.as_str(), size, Some(sha256));
        out.redactions = redactions_in(out.content.as_deref(), redacted.count);
        Ok((out, None))
    }

    /// `read_file` on a file above the read limit: streamed in chunks with bounded memory. One
    /// pass counts the lines (for the tail and `total_lines`), a second collects the window.
    /// Decoded as UTF-8 with invalid bytes replaced (`utf-8-lossy`); no SHA-256 (it would mean
    /// hashing the whole file for a window of it).
    fn read_large(&self, opened: &OpenedFile, a: &ReadFileArgs, shown: String, budget: usize) -> Result<ReadFileOut> {
        let file = &opened.file;
        let size = opened.stat.st_size.max(0) as u64;
        let io = |e: std::io::Error| Error::from_io(&e, &shown);
        let mut head = vec![0u8; 8192];
        let n = file.read_at(&mut head, 0).map_err(io)?;
        if head[..n].contains(&0) {
            return Err(Error::new(
                ErrorCode::BinaryFile,
                format!(
                    "'{shown}' is a binary file ({size} bytes) and cannot be shown as text; use file_info for its metadata"
                ),
            ));
        }
        let mut total = 0usize;
        let mut ends_with_newline = true;
        stream_chunks(file, |chunk| {
            total += chunk.iter().filter(|&&b| b == b'\n').count();
            ends_with_newline = chunk.last() == Some(&b'\n');
        })
        .map_err(io)?;
        if !ends_with_newline {
            total += 1;
        }
        let (start, end) = window(a, total);
        // Enough bytes of each window line for the budget (4 bytes per char at most).
        let cap = (budget + a.char_offset.unwrap_or(0) as usize).saturating_mul(4).saturating_add(4);
        let mut collected: Vec<Vec<u8>> = Vec::new();
        let mut line = 0usize;
        let mut kept_bytes = 0usize;
        stream_chunks(file, |chunk| {
            for piece in chunk.split_inclusive(|&b| b == b'\n') {
                if line >= end || kept_bytes > cap {
                    return;
                }
                if line >= start {
                    if collected.len() < line - start + 1 {
                        collected.push(Vec::new());
                    }
                    if let Some(cur) = collected.last_mut() {
                        let room = cap.saturating_sub(cur.len());
                        let take = piece.len().min(room);
                        cur.extend_from_slice(&piece[..take]);
                        kept_bytes += take;
                    }
                }
                if piece.last() == Some(&b'\n') {
                    line += 1;
                }
            }
        })
        .map_err(io)?;
        // Lines of a file this large are redacted one by one (a key block is caught by its
        // unterminated form, from its BEGIN line on).
        let redactor = &self.policy().redactor;
        let mut found = 0usize;
        let texts: Vec<String> = collected
            .iter()
            .map(|l| {
                let mut t = String::from_utf8_lossy(l).into_owned();
                found += redactor.redact_string(&mut t);
                t
            })
            .collect();
        let lines: Vec<&str> = texts.iter().map(String::as_str).collect();
        let page = assemble(&lines, start, total, a.char_offset, budget);
        let mut out = page.into_out(shown, "utf-8-lossy", size, None);
        out.redactions = redactions_in(out.content.as_deref(), found);
        // The window may have ended early because of the byte cap; say where to continue.
        if out.next_offset.is_none() && start + lines.len() < end {
            out.next_offset = Some((start + lines.len()) as u64 + 1);
            out.truncated = true;
        }
        Ok(out)
    }

    fn list_impl(&self, a: ListDirArgs, budget: usize) -> Result<ListDirOut> {
        let policy = self.policy();
        let roots = policy.roots();
        let target = roots.target(a.path.as_deref().unwrap_or("."), a.root.as_deref())?;
        let dir = roots.open_dir(&target, &policy.deny)?;
        let depth = a.depth.unwrap_or(1).clamp(1, 10);
        let hidden = a.include_hidden.unwrap_or(true);
        let skip: usize = match &a.cursor {
            Some(c) => c.parse().map_err(|_| {
                Error::new(ErrorCode::InvalidArgument, "cursor is not one this tool returned; omit it to start over")
            })?,
            None => 0,
        };
        let walk = Walk { root: &target.root, max_depth: depth, hidden };
        let mut found = Found { entries: Vec::new(), hidden_denied: 0, budget: policy.limits.max_walk_entries };
        self.walk_dir(&walk, dir.fd.as_fd(), &dir.rel, 1, &mut found)?;
        let Found { entries: all, hidden_denied, budget: walk_budget } = found;
        let mut entries = Vec::new();
        let mut used = 0usize;
        let mut next = None;
        for (i, e) in all.into_iter().enumerate().skip(skip) {
            let cost = e.path.len() + 48;
            if used + cost > budget && !entries.is_empty() {
                next = Some(i.to_string());
                break;
            }
            used += cost;
            entries.push(e);
        }
        Ok(ListDirOut {
            path: shown_path(self, target.root.name(), &dir.rel),
            entries,
            truncated: next.is_some() || walk_budget == 0,
            next_cursor: next,
            hidden_denied,
        })
    }

    fn walk_dir(
        &self,
        walk: &Walk<'_>,
        fd: std::os::fd::BorrowedFd<'_>,
        rel: &RelPath,
        level: u32,
        found: &mut Found,
    ) -> Result<()> {
        let Walk { root, max_depth, hidden } = *walk;
        let policy = self.policy();
        let roots = policy.roots();
        let mut entries = roots.read_dir(fd, &rel.display())?;
        entries.sort_by(|a, b| {
            let ad = a.kind == EntryKind::Directory;
            let bd = b.kind == EntryKind::Directory;
            bd.cmp(&ad).then_with(|| a.name.cmp(&b.name))
        });
        for e in entries {
            if found.budget == 0 {
                return Ok(());
            }
            let child = rel.join_name(&e.name);
            if !hidden && e.name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            if policy.deny.is_denied_in(root, child.as_path(), Access::Read) {
                found.hidden_denied += 1;
                continue;
            }
            found.budget -= 1;
            let kind = e.kind;
            found.entries.push(DirEntryOut {
                path: shown_path(self, root.name(), &child),
                kind: kind_name(kind).to_string(),
                size: (kind == EntryKind::File).then_some(e.stat.st_size.max(0) as u64),
                depth: level,
            });
            if kind == EntryKind::Directory
                && level < max_depth
                && e.name != ".git"
                && let Ok(sub) = roots.open_subdir(fd, &e.name, &child.display())
            {
                self.walk_dir(walk, sub.as_fd(), &child, level + 1, found)?;
            }
        }
        Ok(())
    }

    fn info_impl(&self, a: &PathArgs) -> Result<FileInfoOut> {
        let policy = self.policy();
        let roots = policy.roots();
        let target = roots.target(&a.path, a.root.as_deref())?;
        let (st, lst, real) = roots.stat(&target, &policy.deny)?;
        let kind = EntryKind::from_mode(st.st_mode);
        let is_symlink = lst.is_some_and(|l| EntryKind::from_mode(l.st_mode) == EntryKind::Symlink);
        let (line_count, content_type) =
            if kind == EntryKind::File && (st.st_size as u64) <= policy.limits.max_read_bytes {
                match roots
                    .open_file(&target, &policy.deny)
                    .and_then(|mut f| read_all(&mut f, policy.limits.max_read_bytes, &a.path))
                {
                    Ok(bytes) => match decode(bytes) {
                        Content::Text(t, _) => (Some(line_count(&t) as u64), Some("text".to_string())),
                        Content::Image(m) => (None, Some(m.to_string())),
                        Content::Binary => (None, Some("binary".to_string())),
                    },
                    Err(_) => (None, None),
                }
            } else {
                (None, None)
            };
        let mode = st.st_mode & 0o7777;
        // nlink_t is u64 on x86_64 but u32 on aarch64.
        #[allow(clippy::useless_conversion)]
        let links = u64::from(st.st_nlink);
        Ok(FileInfoOut {
            path: a.path.clone(),
            real_path: shown_path(self, target.root.name(), &real),
            kind: kind_name(kind).to_string(),
            is_symlink,
            size: st.st_size.max(0) as u64,
            mode: format!("{mode:04o}"),
            permissions: rwx(mode),
            links,
            modified: time(st.st_mtime, st.st_mtime_nsec),
            accessed: time(st.st_atime, st.st_atime_nsec),
            changed: time(st.st_ctime, st.st_ctime_nsec),
            line_count,
            content_type,
        })
    }
}

pub(crate) fn kind_name(k: EntryKind) -> &'static str {
    match k {
        EntryKind::File => "file",
        EntryKind::Directory => "directory",
        EntryKind::Symlink => "symlink",
        EntryKind::Other => "other",
    }
}

fn rwx(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for shift in [6, 3, 0] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        s.push(if bits & 1 != 0 { 'x' } else { '-' });
    }
    s
}

fn time(secs: i64, nsec: impl TryInto<u32>) -> String {
    let nanos = nsec.try_into().unwrap_or(0);
    let t = if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::new(secs as u64, nanos)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    };
    humantime::format_rfc3339_seconds(t).to_string()
}
