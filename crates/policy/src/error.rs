//! The one error taxonomy: stable codes the model can act on.

use std::fmt;

use rustix::io::Errno;
use serde::Serialize;

/// A stable, `snake_case` error code. The string form is part of Bastion's interface: models and
/// scripts match on it, so a code is never renamed once released.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The path is malformed: empty, contains NUL, too long, or names `.`/`..` where a name is needed.
    InvalidPath,
    /// The path resolves outside every configured root.
    PathOutsideRoot,
    /// The path matches a deny glob (secrets, or `.git` for writes).
    DeniedByGlob,
    /// Nothing exists at the path.
    NotFound,
    /// The path exists but is not a regular file (directory, FIFO, device, socket, symlink).
    NotARegularFile,
    /// The path exists but is not a directory.
    NotADirectory,
    /// A write was refused because the file has more than one hard link.
    HardlinkedFile,
    /// The file or request exceeds a configured size limit.
    TooLarge,
    /// The tool's tier is above the server's configured cap.
    TierNotAllowed,
    /// The destination already exists.
    AlreadyExists,
    /// `edit_file` found the old text a different number of times than expected.
    EditMismatch,
    /// A unified diff did not apply.
    PatchFailed,
    /// The request cannot be answered within the output budget even after paging.
    BudgetExceeded,
    /// The file's current content does not match the caller's `expected_sha256`.
    PreconditionFailed,
    /// The file looks binary and cannot be returned as text.
    BinaryFile,
    /// A directory was not empty and `recursive` was not set.
    DirectoryNotEmpty,
    /// An argument is invalid (bad regex, bad glob, bad cursor, conflicting options).
    InvalidArgument,
    /// The operating system refused the operation (permissions).
    PermissionDenied,
    /// A transient condition (a rename raced the resolution); retrying usually succeeds.
    Busy,
    /// The operation timed out.
    Timeout,
    /// The configuration is invalid.
    InvalidConfig,
    /// Any other operating-system error.
    IoError,
    /// The program is not in the active command profile.
    CommandNotAllowed,
    /// A flag or operand is not allowed for this program by the profile.
    ArgumentNotAllowed,
    /// The kernel sandbox a profile requires is not available here.
    SandboxUnavailable,
    /// No managed process has that id.
    ProcessNotFound,
    /// No git repository at the given place beneath a root.
    NotARepository,
    /// The repository is owned by another user; libgit2's ownership check refused it.
    RepositoryNotOwned,
    /// A revision did not parse or names nothing.
    InvalidRevision,
    /// A branch or reference name is not valid.
    InvalidReferenceName,
    /// The operation would overwrite local changes.
    WouldOverwriteChanges,
    /// The index has no changes against HEAD.
    NothingToCommit,
    /// The index or work tree has unresolved conflicts.
    MergeConflict,
    /// A hub upstream is starting, restarting, failed or went away during the call.
    UpstreamUnavailable,
    /// A hub upstream answered something the hub could not use.
    UpstreamError,
    /// The caller's token does not carry the scope the tool needs.
    InsufficientScope,
    /// The call waits for the person's approval (return mode): ask them, then retry the same call.
    ApprovalPending,
    /// The person (or a rule) refused the call.
    ApprovalDenied,
    /// Nobody decided within the approval timeout.
    ApprovalTimeout,
    /// A file an approved call targets changed after the request; nothing was written.
    Stale,
    /// The server is in observe mode: writes, deletions and commands are refused.
    ModeObserve,
    /// The operator paused the server: every call is refused until they resume it.
    Paused,
    /// The path is Bastion's own state (state directory, configuration, journal, binary):
    /// no tool may touch it, whatever the roots.
    ProtectedPath,
    /// The new content would write a redaction marker (`[REDACTED:kind]`) over the secret it
    /// stands for: the caller only ever saw the file redacted.
    RedactedContent,
    /// The host server may not start, stop, restart or reload this unit: it matches none of
    /// the operator's `[ops] units` globs.
    UnitNotAllowed,
    /// The feature is off in this configuration (container actions without `[ops]
    /// container_restart`, systemd tools where systemd does not run).
    NotEnabled,
    /// A per-tool rate limit (`[[limits.tool]]`) refused the call; retry after the time it gives.
    RateLimited,
}

impl ErrorCode {
    /// The stable string form, e.g. `path_outside_root`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::PathOutsideRoot => "path_outside_root",
            ErrorCode::DeniedByGlob => "denied_by_glob",
            ErrorCode::NotFound => "not_found",
            ErrorCode::NotARegularFile => "not_a_regular_file",
            ErrorCode::NotADirectory => "not_a_directory",
            ErrorCode::HardlinkedFile => "hardlinked_file",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::TierNotAllowed => "tier_not_allowed",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::EditMismatch => "edit_mismatch",
            ErrorCode::PatchFailed => "patch_failed",
            ErrorCode::BudgetExceeded => "budget_exceeded",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::BinaryFile => "binary_file",
            ErrorCode::DirectoryNotEmpty => "directory_not_empty",
            ErrorCode::InvalidArgument => "invalid_argument",
            ErrorCode::PermissionDenied => "permission_denied",
            ErrorCode::Busy => "busy",
            ErrorCode::Timeout => "timeout",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::IoError => "io_error",
            ErrorCode::CommandNotAllowed => "command_not_allowed",
            ErrorCode::ArgumentNotAllowed => "argument_not_allowed",
            ErrorCode::SandboxUnavailable => "sandbox_unavailable",
            ErrorCode::ProcessNotFound => "process_not_found",
            ErrorCode::NotARepository => "not_a_repository",
            ErrorCode::RepositoryNotOwned => "repository_not_owned",
            ErrorCode::InvalidRevision => "invalid_revision",
            ErrorCode::InvalidReferenceName => "invalid_reference_name",
            ErrorCode::WouldOverwriteChanges => "would_overwrite_changes",
            ErrorCode::NothingToCommit => "nothing_to_commit",
            ErrorCode::MergeConflict => "merge_conflict",
            ErrorCode::UpstreamUnavailable => "upstream_unavailable",
            ErrorCode::UpstreamError => "upstream_error",
            ErrorCode::InsufficientScope => "insufficient_scope",
            ErrorCode::ApprovalPending => "approval_pending",
            ErrorCode::ApprovalDenied => "approval_denied",
            ErrorCode::ApprovalTimeout => "approval_timeout",
            ErrorCode::Stale => "stale",
            ErrorCode::ModeObserve => "mode_observe",
            ErrorCode::Paused => "paused",
            ErrorCode::ProtectedPath => "protected_path",
            ErrorCode::RedactedContent => "redacted_content",
            ErrorCode::UnitNotAllowed => "unit_not_allowed",
            ErrorCode::NotEnabled => "not_enabled",
            ErrorCode::RateLimited => "rate_limited",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error with a stable code and a message that tells the model what to do instead.
///
/// Messages only ever name paths relative to a root (as the caller wrote them or as resolved
/// inside the root); nothing outside the roots is revealed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    /// The stable code.
    pub code: ErrorCode,
    /// Human- and model-readable explanation with a next step.
    pub message: String,
}

/// Result alias for the policy crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds an error from a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// Maps an OS error met while working on `shown` (a root-relative path as the caller gave it).
    pub fn from_errno(errno: Errno, shown: &str) -> Self {
        let (code, message) = match errno {
            Errno::XDEV => (
                ErrorCode::PathOutsideRoot,
                format!(
                    "'{shown}' leads outside the allowed roots (through '..', an absolute path or a symlink); use a path inside a root (see list_roots)"
                ),
            ),
            Errno::LOOP => (
                ErrorCode::PathOutsideRoot,
                format!(
                    "'{shown}' goes through a symlink that cannot be followed safely (a link to /proc, a link loop, or a link where one is not allowed); use the link's target path inside the root"
                ),
            ),
            Errno::NOENT => (
                ErrorCode::NotFound,
                format!("'{shown}' does not exist; check the name with list_directory or find_files"),
            ),
            Errno::NOTDIR => (ErrorCode::NotADirectory, format!("a component of '{shown}' is not a directory")),
            Errno::ISDIR => {
                (ErrorCode::NotARegularFile, format!("'{shown}' is a directory; use list_directory for directories"))
            }
            Errno::EXIST => (ErrorCode::AlreadyExists, format!("'{shown}' already exists")),
            Errno::NOTEMPTY => (
                ErrorCode::DirectoryNotEmpty,
                format!(
                    "'{shown}' is a directory that is not empty; pass recursive=true to delete it with its contents"
                ),
            ),
            Errno::NAMETOOLONG => (
                ErrorCode::InvalidPath,
                format!("'{}' is too long (4095 bytes per path, 255 per name)", truncate_for_message(shown)),
            ),
            Errno::ACCESS | Errno::PERM | Errno::ROFS => {
                (ErrorCode::PermissionDenied, format!("the operating system refused access to '{shown}'"))
            }
            Errno::AGAIN => (
                ErrorCode::Busy,
                format!(
                    "'{shown}' could not be resolved because the filesystem changed during resolution; retry the call"
                ),
            ),
            Errno::FBIG | Errno::NOSPC | Errno::DQUOT => {
                (ErrorCode::TooLarge, format!("no space or size limit reached while writing '{shown}'"))
            }
            Errno::INVAL => (
                ErrorCode::InvalidPath,
                format!("'{}' is not a valid path for this operation", truncate_for_message(shown)),
            ),
            Errno::NXIO | Errno::NODEV => (
                ErrorCode::NotARegularFile,
                format!("'{shown}' is a special file (socket, FIFO or device) and cannot be used"),
            ),
            other => (ErrorCode::IoError, format!("operating-system error on '{shown}': {other}")),
        };
        Error { code, message }
    }

    /// Maps a `std::io::Error` the same way as [`Error::from_errno`].
    pub fn from_io(err: &std::io::Error, shown: &str) -> Self {
        match err.raw_os_error() {
            Some(raw) => Self::from_errno(Errno::from_raw_os_error(raw), shown),
            None => Error::new(ErrorCode::IoError, format!("error on '{shown}': {err}")),
        }
    }
}

/// Shortens a (possibly hostile, huge) string for inclusion in a message.
pub fn truncate_for_message(s: &str) -> String {
    const MAX: usize = 120;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
