//! Changing: write_file, edit_file, apply_patch, create_directory, move_path, delete_path.
//!
//! Every change goes through `bastion-policy`: the parent directory is opened beneath the root and
//! the final name is acted on through that handle; file contents are replaced atomically
//! (temporary file, fsync, rename), so a crash leaves the old or the new content, never a mix.

use bastion_policy::{CreateMode, EntryKind, Error, ErrorCode, ParentDir, Result, Target, Tier};
use bastion_server_kit::Json;
use diffy::patch_set::{FileOperation, ParseOptions, PatchSet};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use similar::TextDiff;

use super::read::kind_name;
use bastion_policy::redact::{MARKER_PREFIX, first_marker, redacted_content};

use super::{read_all, shown_path};
use crate::text::{Content, Encoding, decode, sha256_hex, to_crlf, uses_crlf};
use crate::{Failure, FsServer};

/// Arguments of `write_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct WriteArgs {
    /// File path, relative to the root (or absolute inside a root).
    pub path: String,
    /// The complete new content.
    pub content: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Replace an existing file (default true). With false, an existing file is refused with already_exists.
    #[serde(default)]
    pub overwrite: Option<bool>,
    /// Only write if the current file's SHA-256 (from read_file) matches; refused with precondition_failed otherwise.
    #[serde(default)]
    pub expected_sha256: Option<String>,
    /// Create missing parent directories (default true).
    #[serde(default)]
    pub create_parents: Option<bool>,
}

/// Result of `write_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct WriteOut {
    /// Path written.
    pub path: String,
    /// Bytes written.
    pub bytes: u64,
    /// True when the file did not exist before.
    pub created: bool,
    /// SHA-256 of the new content.
    pub sha256: String,
    /// `lf` or `crlf` (an existing file's CRLF endings are kept).
    pub line_endings: String,
    /// Permission bits now, octal.
    pub mode: String,
}

/// One replacement.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct Edit {
    /// Exact text to find (include enough surrounding lines to be unique).
    pub old_text: String,
    /// Replacement text.
    pub new_text: String,
    /// How many occurrences must be found and replaced (default 1).
    #[serde(default)]
    pub expected_replacements: Option<u64>,
}

/// Arguments of `edit_file`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct EditArgs {
    /// File path, relative to the root (or absolute inside a root).
    pub path: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Exact text to find (for a single edit).
    #[serde(default)]
    pub old_text: Option<String>,
    /// Replacement text (for a single edit).
    #[serde(default)]
    pub new_text: Option<String>,
    /// Occurrences of old_text that must be found and replaced (default 1).
    #[serde(default)]
    pub expected_replacements: Option<u64>,
    /// Several edits applied in order, all or nothing (instead of old_text/new_text).
    #[serde(default)]
    pub edits: Option<Vec<Edit>>,
    /// Return the unified diff without writing.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// Only edit if the current file's SHA-256 matches.
    #[serde(default)]
    pub expected_sha256: Option<String>,
}

/// Result of `edit_file`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EditOut {
    /// Path edited.
    pub path: String,
    /// Unified diff of the change.
    pub diff: String,
    /// Occurrences replaced.
    pub replacements: u64,
    /// True when nothing was written (dry_run).
    pub dry_run: bool,
    /// SHA-256 of the resulting content.
    pub sha256: String,
}

/// Arguments of `apply_patch`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PatchArgs {
    /// A unified diff (one or more files; `--- a/x` / `+++ b/x` headers; /dev/null to create or delete).
    pub patch: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Check that every hunk applies and return the result without writing.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// One file of a patch.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PatchFileOut {
    /// Path.
    pub path: String,
    /// `modify`, `create` or `delete`.
    pub operation: String,
}

/// Result of `apply_patch`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PatchOut {
    /// Files changed (or that would be, with dry_run).
    pub files: Vec<PatchFileOut>,
    /// True when nothing was written.
    pub dry_run: bool,
}

/// Arguments of `create_directory`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MkdirArgs {
    /// Directory path; missing parents are created too.
    pub path: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
}

/// Result of `create_directory`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MkdirOut {
    /// Path.
    pub path: String,
    /// False when it already existed.
    pub created: bool,
}

/// Arguments of `move_path`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct MoveArgs {
    /// Existing file or directory.
    pub source: String,
    /// New path (in the same root).
    pub destination: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Replace an existing destination file (default false; directories are never replaced).
    #[serde(default)]
    pub overwrite: Option<bool>,
}

/// Result of `move_path`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct MoveOut {
    /// Old path.
    pub source: String,
    /// New path.
    pub destination: String,
    /// What was moved: file, directory, symlink, other.
    #[serde(rename = "type")]
    pub kind: String,
}

/// Arguments of `delete_path`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteArgs {
    /// File, symlink or directory to delete (a symlink is removed, never its target).
    pub path: String,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Delete a non-empty directory with everything in it.
    #[serde(default)]
    pub recursive: Option<bool>,
}

/// Result of `delete_path`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct DeleteOut {
    /// Path deleted.
    pub path: String,
    /// What was deleted.
    #[serde(rename = "type")]
    pub kind: String,
}

#[tool_router(router = write_router, vis = "pub(crate)")]
impl FsServer {
    /// Create a new file, or overwrite one, with the complete content, atomically; keeps
    /// permissions and CRLF. expected_sha256 (from read_file) guards against lost updates; small
    /// changes go better with edit_file.
    #[tool(name = "write_file", output_schema = bastion_server_kit::output_schema_of(Self::write_file))]
    async fn write_file(&self, Parameters(a): Parameters<WriteArgs>) -> Result<Json<WriteOut>, Failure> {
        Ok(Json(self.write_impl(a)?))
    }

    /// Replace exact text in an existing file: old_text must match expected_replacements times
    /// (default 1). dry_run returns the diff; a miss shows the closest region.
    #[tool(name = "edit_file", output_schema = bastion_server_kit::output_schema_of(Self::edit_file))]
    async fn edit_file(&self, Parameters(a): Parameters<EditArgs>) -> Result<Json<EditOut>, Failure> {
        Ok(Json(self.edit_impl(a)?))
    }

    /// Apply a unified diff to one or more files, all or nothing. /dev/null creates files; deleting
    /// needs the destructive tier. dry_run checks first.
    #[tool(name = "apply_patch", output_schema = bastion_server_kit::output_schema_of(Self::apply_patch))]
    async fn apply_patch(&self, Parameters(a): Parameters<PatchArgs>) -> Result<Json<PatchOut>, Failure> {
        Ok(Json(self.patch_impl(a)?))
    }

    /// Make a new directory with any missing parents (like mkdir -p); fine if it exists.
    #[tool(name = "create_directory", output_schema = bastion_server_kit::output_schema_of(Self::create_directory))]
    async fn create_directory(&self, Parameters(a): Parameters<MkdirArgs>) -> Result<Json<MkdirOut>, Failure> {
        let policy = self.policy();
        let roots = policy.roots();
        let t = roots.target(&a.path, a.root.as_deref())?;
        if t.rel.is_root() {
            return Ok(Json(MkdirOut { path: ".".into(), created: false }));
        }
        let created = roots.create_dir_all(&t, &policy.deny)?;
        Ok(Json(MkdirOut { path: shown_path(self, t.root.name(), &t.rel), created }))
    }

    /// Rename or move a file or directory within a root. An existing destination is replaced only
    /// with overwrite=true (never a directory).
    #[tool(name = "move_path", output_schema = bastion_server_kit::output_schema_of(Self::move_path))]
    async fn move_path(&self, Parameters(a): Parameters<MoveArgs>) -> Result<Json<MoveOut>, Failure> {
        let policy = self.policy();
        let roots = policy.roots();
        let from_t = roots.target(&a.source, a.root.as_deref())?;
        let to_t = roots.target(&a.destination, a.root.as_deref())?;
        if !std::sync::Arc::ptr_eq(&from_t.root, &to_t.root) {
            return Err(Error::new(
                ErrorCode::InvalidArgument,
                "source and destination are in different roots; move within one root",
            )
            .into());
        }
        let from = roots.parent(&from_t, &policy.deny)?;
        if from.lstat()?.is_none() {
            return Err(
                Error::new(ErrorCode::NotFound, format!("'{}' does not exist", from.child_rel().display())).into()
            );
        }
        let to = match roots.parent(&to_t, &policy.deny) {
            Err(e) if e.code == ErrorCode::NotFound => {
                self.ensure_parent_dirs(&to_t)?;
                roots.parent(&to_t, &policy.deny)?
            }
            other => other?,
        };
        let kind = roots.rename(&from, &to, a.overwrite.unwrap_or(false), &policy.deny)?;
        Ok(Json(MoveOut {
            source: shown_path(self, from_t.root.name(), &from.child_rel()),
            destination: shown_path(self, to_t.root.name(), &to.child_rel()),
            kind: kind_name(kind).into(),
        }))
    }

    /// Delete a file, symlink or directory (recursive=true when not empty); symlinks are removed,
    /// not followed. Deny-listed paths, and directories holding them, are refused.
    #[tool(name = "delete_path", output_schema = bastion_server_kit::output_schema_of(Self::delete_path))]
    async fn delete_path(&self, Parameters(a): Parameters<DeleteArgs>) -> Result<Json<DeleteOut>, Failure> {
        let policy = self.policy();
        let roots = policy.roots();
        let t = roots.target(&a.path, a.root.as_deref())?;
        let p = roots.parent(&t, &policy.deny)?;
        let kind = roots.remove(&p, a.recursive.unwrap_or(false), &policy.deny)?;
        Ok(Json(DeleteOut { path: shown_path(self, t.root.name(), &p.child_rel()), kind: kind_name(kind).into() }))
    }
}

impl FsServer {
    fn ensure_parent_dirs(&self, t: &Target) -> Result<()> {
        if let Some((parent, _)) = t.rel.split_last()
            && !parent.is_root()
        {
            let policy = self.policy();
            policy.roots().create_dir_all(&Target { root: t.root.clone(), rel: parent }, &policy.deny)?;
        }
        Ok(())
    }

    /// The first `n` bytes of the regular file behind `p` (None if there is none).
    fn current_head(&self, p: &ParentDir, n: u64) -> Result<Option<Vec<u8>>> {
        use std::io::Read;
        match p.lstat()? {
            Some(st) if EntryKind::from_mode(st.st_mode) == EntryKind::File => {
                let mut head = Vec::new();
                p.open_existing()?
                    .take(n)
                    .read_to_end(&mut head)
                    .map_err(|e| Error::from_io(&e, &p.child_rel().display()))?;
                Ok(Some(head))
            }
            _ => Ok(None),
        }
    }

    /// Current bytes of the file behind `p` (None if it does not exist).
    fn current_bytes(&self, p: &ParentDir) -> Result<Option<Vec<u8>>> {
        let shown = p.child_rel().display();
        match p.lstat()? {
            None => Ok(None),
            Some(st) if EntryKind::from_mode(st.st_mode) != EntryKind::File => Ok(None),
            Some(st) => {
                let file = p.open_existing()?;
                let mut opened = bastion_policy::OpenedFile { file, stat: st, rel: p.child_rel() };
                Ok(Some(read_all(&mut opened, self.policy().limits.max_read_bytes, &shown)?))
            }
        }
    }

    fn write_impl(&self, a: WriteArgs) -> Result<WriteOut> {
        let policy = self.policy();
        let roots = policy.roots();
        let t = roots.target(&a.path, a.root.as_deref())?;
        let shown = shown_path(self, t.root.name(), &t.rel);
        policy.check_write_size(a.content.len(), &shown)?;
        // Every check runs before missing parents are created, so a refused write leaves nothing.
        let p = match roots.parent(&t, &policy.deny) {
            Err(e) if e.code == ErrorCode::NotFound && a.create_parents.unwrap_or(true) => {
                if a.expected_sha256.is_some() {
                    return Err(Error::new(
                        ErrorCode::PreconditionFailed,
                        format!("'{shown}' does not exist, so it cannot match expected_sha256"),
                    ));
                }
                self.ensure_parent_dirs(&t)?;
                roots.parent(&t, &policy.deny)?
            }
            other => other?,
        };
        // The whole current content is read only to check a precondition; keeping CRLF endings
        // needs just the first line break.
        if let Some(expected) = &a.expected_sha256 {
            let actual = self.current_bytes(&p)?.as_deref().map(sha256_hex);
            if actual.as_deref() != Some(expected.to_ascii_lowercase().as_str()) {
                return Err(Error::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "'{shown}' changed since you read it (sha256 differs{}); read it again before writing",
                        if actual.is_none() { ", or it does not exist" } else { "" }
                    ),
                ));
            }
        }
        // New content holding a redaction marker is checked against the file it replaces, so a
        // model cannot write back a redacted read over the secret (read only in that rare case).
        if a.content.contains(MARKER_PREFIX)
            && let Some(Content::Text(old, _)) = self.current_bytes(&p)?.map(decode)
        {
            policy.redactor.check_no_markers_written(&old, &a.content, &shown)?;
        }
        let crlf = self.current_head(&p, 64 << 10)?.is_some_and(|b| uses_crlf(&String::from_utf8_lossy(&b)));
        let content = if crlf && !a.content.contains('\r') { to_crlf(&a.content) } else { a.content };
        let mode = if a.overwrite.unwrap_or(true) { CreateMode::CreateOrReplace } else { CreateMode::CreateNew };
        let outcome = roots.write_atomic(&p, content.as_bytes(), mode)?;
        Ok(WriteOut {
            path: shown,
            bytes: content.len() as u64,
            created: outcome.created,
            sha256: sha256_hex(content.as_bytes()),
            line_endings: if crlf { "crlf" } else { "lf" }.into(),
            mode: format!("{:04o}", outcome.mode),
        })
    }

    fn edit_impl(&self, a: EditArgs) -> Result<EditOut> {
        let edits: Vec<Edit> = match (a.edits, a.old_text, a.new_text) {
            (Some(e), None, None) if !e.is_empty() => e,
            (None, Some(old_text), Some(new_text)) => {
                vec![Edit { old_text, new_text, expected_replacements: a.expected_replacements }]
            }
            _ => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    "pass either old_text and new_text, or a non-empty edits list (not both)",
                ));
            }
        };
        let policy = self.policy();
        let roots = policy.roots();
        let t = roots.target(&a.path, a.root.as_deref())?;
        let shown = shown_path(self, t.root.name(), &t.rel);
        let p = roots.parent(&t, &policy.deny)?;
        let Some(original) = self.current_bytes(&p)? else {
            return Err(match p.lstat()? {
                None => Error::new(ErrorCode::NotFound, format!("'{shown}' does not exist; create it with write_file")),
                Some(_) => Error::new(
                    ErrorCode::NotARegularFile,
                    format!("'{shown}' is not a regular file (a symlink or directory); edit the real file"),
                ),
            });
        };
        let sha_before = sha256_hex(&original);
        if let Some(expected) = &a.expected_sha256
            && expected.to_ascii_lowercase() != sha_before
        {
            return Err(Error::new(
                ErrorCode::PreconditionFailed,
                format!("'{shown}' changed since you read it; read it again"),
            ));
        }
        let (text, encoding) = match decode(original) {
            Content::Text(t, e) => (t, e),
            _ => {
                return Err(Error::new(
                    ErrorCode::BinaryFile,
                    format!("'{shown}' is binary and cannot be edited as text"),
                ));
            }
        };
        let crlf = uses_crlf(&text);
        let mut new = text.clone();
        let mut total = 0u64;
        for (i, e) in edits.iter().enumerate() {
            let label = if edits.len() > 1 { format!("edit {}: ", i + 1) } else { String::new() };
            if e.old_text.is_empty() {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("{label}old_text is empty; to write a whole file use write_file"),
                ));
            }
            let fix = |s: &str| if crlf && !s.contains('\r') { to_crlf(s) } else { s.to_string() };
            let (old, replacement) = (fix(&e.old_text), fix(&e.new_text));
            let want = e.expected_replacements.unwrap_or(1);
            let found = new.matches(old.as_str()).count() as u64;
            if found == 0
                && let Some(kind) = first_marker(&old)
                && policy.redactor.redact(&new).text.contains(old.as_str())
            {
                // old_text was copied from a redacted read: it matches what was shown, not the file.
                return Err(redacted_content(&shown, kind));
            }
            if found != want {
                let msg = if found == 0 {
                    format!("{label}old_text was not found in '{shown}'.{}", near_miss(&new, &old))
                } else {
                    format!(
                        "{label}old_text occurs {found} times in '{shown}', expected {want}; include more surrounding lines to make it unique, or set expected_replacements={found}"
                    )
                };
                return Err(Error::new(ErrorCode::EditMismatch, msg));
            }
            new = new.replacen(old.as_str(), &replacement, want as usize);
            total += want;
        }
        policy.redactor.check_no_markers_written(&text, &new, &shown)?;
        let diff = unified(&shown, &text, &new);
        let bytes = encoding.encode(&new).ok_or_else(|| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("'{shown}' is latin-1 encoded and the new text has characters latin-1 cannot hold"),
            )
        })?;
        let sha256 = sha256_hex(&bytes);
        let dry_run = a.dry_run.unwrap_or(false);
        if !dry_run {
            self.policy().check_write_size(bytes.len(), &shown)?;
            // Someone else may have written between our read and now: re-check before replacing.
            if self.current_bytes(&p)?.as_deref().map(sha256_hex).as_deref() != Some(sha_before.as_str()) {
                return Err(Error::new(
                    ErrorCode::PreconditionFailed,
                    format!("'{shown}' changed while being edited; read it again and retry"),
                ));
            }
            roots.write_atomic(&p, &bytes, CreateMode::ReplaceExisting)?;
        }
        Ok(EditOut { path: shown, diff, replacements: total, dry_run, sha256 })
    }

    fn patch_impl(&self, a: PatchArgs) -> Result<PatchOut> {
        let policy = self.policy();
        let roots = policy.roots();
        let opts = if a.patch.contains("\ndiff --git ") || a.patch.starts_with("diff --git ") {
            ParseOptions::gitdiff()
        } else {
            ParseOptions::unidiff()
        };
        let mut plan: Vec<Planned> = Vec::new();
        for (i, fp) in PatchSet::parse(&a.patch, opts).enumerate() {
            let fp = fp.map_err(|e| {
                Error::new(ErrorCode::PatchFailed, format!("file {} of the patch does not parse: {e}", i + 1))
            })?;
            let (op, path) = match fp.operation() {
                FileOperation::Create(p) => ("create", strip_ab(p)),
                FileOperation::Delete(p) => ("delete", strip_ab(p)),
                FileOperation::Modify { original, modified } => {
                    if strip_ab(original) != strip_ab(modified) {
                        return Err(Error::new(
                            ErrorCode::PatchFailed,
                            "renames in patches are not supported; use move_path, then patch the file",
                        ));
                    }
                    ("modify", strip_ab(modified))
                }
                _ => {
                    return Err(Error::new(
                        ErrorCode::PatchFailed,
                        "renames and copies in patches are not supported; use move_path",
                    ));
                }
            };
            let Some(patch) = fp.patch().as_text() else {
                return Err(Error::new(ErrorCode::PatchFailed, format!("'{path}': binary patches are not supported")));
            };
            if op == "delete" {
                policy.check_tier("apply_patch (deleting a file)", Tier::Destructive)?;
            }
            let t = roots.target(&path, a.root.as_deref())?;
            let shown = shown_path(self, t.root.name(), &t.rel);
            if plan.iter().any(|p| p.shown == shown) {
                return Err(Error::new(
                    ErrorCode::PatchFailed,
                    format!("'{shown}' appears twice in the patch; merge its hunks into one section"),
                ));
            }
            let parent = match roots.parent(&t, &policy.deny) {
                Ok(p) => Some(p),
                Err(e) if e.code == ErrorCode::NotFound && op == "create" => None,
                Err(e) => return Err(e),
            };
            let existing = parent.as_ref().map(ParentDir::lstat).transpose()?.flatten();
            if op == "create" && existing.is_some() {
                return Err(Error::new(
                    ErrorCode::AlreadyExists,
                    format!("the patch creates '{shown}', which already exists"),
                ));
            }
            if let Some(st) = existing
                && EntryKind::from_mode(st.st_mode) != EntryKind::File
            {
                return Err(Error::new(
                    ErrorCode::NotARegularFile,
                    format!(
                        "'{shown}' is not a regular file (a symlink, directory or special file); patch the real file"
                    ),
                ));
            }
            let old = match &parent {
                Some(p) => self.current_bytes(p)?,
                None => None,
            };
            let base = match (&old, op) {
                (Some(_), "create") => {
                    return Err(Error::new(
                        ErrorCode::AlreadyExists,
                        format!("the patch creates '{shown}', which already exists"),
                    ));
                }
                (None, "modify" | "delete") => {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        format!("the patch changes '{shown}', which does not exist"),
                    ));
                }
                (None, _) => String::new(),
                (Some(b), _) => match decode(b.clone()) {
                    Content::Text(t, Encoding::Utf8) => t,
                    _ => {
                        return Err(Error::new(
                            ErrorCode::PatchFailed,
                            format!("'{shown}' is not UTF-8 text; edit it with edit_file"),
                        ));
                    }
                },
            };
            // A hunk whose context was copied from a redacted read does not apply; say why.
            let refused = |e| match first_marker(&a.patch) {
                Some(kind) if policy.redactor.redact(&base).count > 0 => redacted_content(&shown, kind),
                _ => hunk_error(&shown, e),
            };
            let applied = match diffy::apply(&base, patch) {
                Ok(t) => t,
                // A CRLF file patched with an LF diff (what models usually produce).
                Err(_) if uses_crlf(&base) => {
                    diffy::apply(&base.replace("\r\n", "\n"), patch).map(|t| to_crlf(&t)).map_err(refused)?
                }
                Err(e) => return Err(refused(e)),
            };
            policy.redactor.check_no_markers_written(&base, &applied, &shown)?;
            let new = if op == "delete" { None } else { Some(applied.into_bytes()) };
            if let Some(n) = &new {
                self.policy().check_write_size(n.len(), &shown)?;
            }
            plan.push(Planned { target: t, parent, shown, op, old, new });
        }
        if plan.is_empty() {
            return Err(Error::new(
                ErrorCode::PatchFailed,
                "no file sections found; the patch needs '--- a/path' and '+++ b/path' headers and @@ hunks",
            ));
        }
        let dry_run = a.dry_run.unwrap_or(false);
        if !dry_run {
            // All hunks applied in memory; now write. If a write fails, put back what was done.
            for i in 0..plan.len() {
                let result = self.write_planned(&mut plan[i]);
                if let Err(e) = result {
                    for done in plan[..i].iter().rev() {
                        let Some(parent) = &done.parent else { continue };
                        let _ = match &done.old {
                            Some(old) => roots.write_atomic(parent, old, CreateMode::CreateOrReplace).map(|_| ()),
                            None => roots.remove(parent, false, &policy.deny).map(|_| ()),
                        };
                    }
                    return Err(Error::new(
                        e.code,
                        format!("{} (no file was changed: earlier files were restored)", e.message),
                    ));
                }
            }
        }
        Ok(PatchOut {
            files: plan.into_iter().map(|p| PatchFileOut { path: p.shown, operation: p.op.into() }).collect(),
            dry_run,
        })
    }
}

/// One file of a patch, fully computed before anything is written.
struct Planned {
    target: Target,
    /// None when the parent directory does not exist yet (a created file's new directory): it is
    /// made only when the patch is written, never for a dry run or a failed patch.
    parent: Option<ParentDir>,
    shown: String,
    op: &'static str,
    old: Option<Vec<u8>>,
    new: Option<Vec<u8>>,
}

impl FsServer {
    fn write_planned(&self, step: &mut Planned) -> Result<()> {
        let policy = self.policy();
        let roots = policy.roots();
        if step.parent.is_none() {
            self.ensure_parent_dirs(&step.target)?;
            step.parent = Some(roots.parent(&step.target, &policy.deny)?);
        }
        let Some(parent) = &step.parent else { return Ok(()) };
        match &step.new {
            Some(bytes) => {
                let mode = if step.old.is_some() { CreateMode::ReplaceExisting } else { CreateMode::CreateNew };
                roots.write_atomic(parent, bytes, mode).map(|_| ())
            }
            None => roots.remove(parent, false, &policy.deny).map(|_| ()),
        }
    }
}

fn strip_ab(p: &str) -> String {
    let p = p.trim();
    p.strip_prefix("a/").or_else(|| p.strip_prefix("b/")).unwrap_or(p).to_string()
}

fn hunk_error(shown: &str, e: diffy::ApplyError) -> Error {
    Error::new(
        ErrorCode::PatchFailed,
        format!(
            "'{shown}': {e}; the context lines must match the file exactly — read the file again and regenerate the diff, or use edit_file"
        ),
    )
}

fn unified(path: &str, old: &str, new: &str) -> String {
    TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{path}"), &format!("b/{path}"))
        .to_string()
}

/// Explains the closest region of `text` to `wanted`, so the model can retry with exact text.
fn near_miss(text: &str, wanted: &str) -> String {
    // Whitespace-insensitive comparison per line, computed once; windows are compared line by
    // line with an early exit, so the scan is linear in practice.
    let squash = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let lines: Vec<&str> = text.lines().collect();
    let norm: Vec<String> = lines.iter().map(|l| squash(l)).collect();
    let want: Vec<String> = wanted.lines().map(squash).collect();
    let n = want.len().max(1);
    let windows = lines.len().saturating_sub(n - 1).max(1);
    let show = |start: usize| lines[start..(start + n).min(lines.len())].join("\n");
    for start in 0..windows {
        if norm.get(start..start + n).is_some_and(|w| w == want.as_slice()) {
            return format!(
                " Lines {}-{} match if whitespace is ignored; the file has:\n{}\nRetry with this exact text (indentation and line endings included).",
                start + 1,
                start + n,
                show(start)
            );
        }
    }
    // Similarity scoring is quadratic; only do it when the work is bounded (~200k line pairs).
    if windows.saturating_mul(n) > 200_000 {
        return " Read the file again to copy the exact text.".into();
    }
    let wanted_joined = want.join("\n");
    // A shared deadline keeps a pathological file from stalling the reply: past it, diffs fall
    // back to a fast approximation.
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(250);
    let mut config = TextDiff::configure();
    config.deadline(deadline);
    let mut best: Option<(f32, usize)> = None;
    for start in 0..windows {
        if start % 64 == 0 && std::time::Instant::now() > deadline {
            break;
        }
        let window = norm[start..(start + n).min(norm.len())].join("\n");
        let ratio = config.diff_chars(window.as_str(), wanted_joined.as_str()).ratio();
        if best.is_none_or(|(r, _)| ratio > r) {
            best = Some((ratio, start));
        }
    }
    match best {
        Some((ratio, start)) if ratio >= 0.5 => format!(
            " The closest region is lines {}-{} ({:.0}% similar):\n{}\nRetry with the exact current text.",
            start + 1,
            (start + n).min(lines.len()),
            ratio * 100.0,
            show(start)
        ),
        _ => " Nothing similar was found; read the file again to copy the exact text.".into(),
    }
}
