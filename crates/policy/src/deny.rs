//! Deny globs: paths no tool may read or write, matched on the real root-relative path.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use std::sync::{Arc, OnceLock};

use crate::error::{Error, ErrorCode, Result};
use crate::path::RelPath;
use crate::protect::{Protected, protected_error};
use crate::roots::Root;

/// Secrets nobody may read or write through Bastion, unless the operator's configuration says
/// otherwise.
pub const DEFAULT_DENY: &[&str] = &[
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "id_dsa*",
    ".ssh/**",
    ".aws/**",
    ".kube/**",
    ".gnupg/**",
    ".docker/config.json",
    ".netrc",
    ".npmrc",
    ".pypirc",
    ".git-credentials",
    "*credential*",
    "*secret*",
    // Credential containers, by extension. Measured on 7,674 files (Bastion, cargo, flask,
    // express, fastapi, tokio): no ordinary file matches. Secret *words* in names were left out
    // after the same measurement: `*token*` denies `tokens.rs`, `cancellation_token.rs`;
    // `*api_key*` denies fastapi's `security/api_key.py`; `*password*` its tests. Secret values
    // in ordinary files are redacted instead (`redact`).
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.ppk",
    "*.kdbx",
    "*.tfstate",
    "*.tfstate.*",
    ".htpasswd",
    ".pgpass",
];

/// Paths never written through the filesystem server: git metadata (hooks and config are code
/// execution for the next `git` run).
pub const DEFAULT_DENY_WRITE: &[&str] = &[".git/**"];

/// Which access a deny check is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Reading contents or listing.
    Read,
    /// Creating, changing, moving or deleting.
    Write,
}

/// Compiled deny globs.
///
/// Globs are matched case-insensitively (a root on a case-folding filesystem treats `.GIT` as
/// `.git`) against `/`-separated root-relative paths. A glob without a leading `/` matches at any
/// depth; `dir/**` also matches `dir` itself, so the directory cannot be renamed or deleted
/// wholesale either.
///
/// The rules also carry Bastion's [`Protected`] paths (its own state), matched on the real
/// path beside the globs: whoever applies the deny rules applies them too.
#[derive(Clone, Debug)]
pub struct DenyRules {
    read: GlobList,
    write: GlobList,
    read_patterns: Vec<String>,
    write_patterns: Vec<String>,
    protected: Arc<Protected>,
}

impl DenyRules {
    /// Compiles the read/write lists. `read` globs apply to reads and writes; `write_only` only to
    /// writes. Errors name the offending glob.
    pub fn new(read: &[String], write_only: &[String]) -> Result<Self> {
        // The write set holds the write-only globs alone and a write is checked against both
        // sets: compiling the read globs a second time into a combined set doubled the start-up
        // cost of every server (glob compilation is most of it) for no faster match.
        let read_set = GlobList::compiled(compile(read)?);
        let write_set = GlobList::compiled(compile(write_only)?);
        Ok(Self::from_lists(read, write_only, read_set, write_set))
    }

    /// [`DenyRules::new`], but the globs are only parsed now (a bad glob is still an error here,
    /// naming it) and compiled on the first match. Compiling is most of a server's start-up
    /// (regex construction for each glob set) and a server that is only asked `initialize` and
    /// `tools/list` never matches a path. Should the set then fail to compile (a regex size
    /// limit; the globs parsed), every path is denied and a warning logged: the rules fail
    /// closed.
    pub fn new_lazy(read: &[String], write_only: &[String]) -> Result<Self> {
        // Only the operator's globs are parsed now: the built-in ones are constants the unit
        // tests compile, and parsing them (a regex text per glob) was most of what was left.
        let operators = |list: &[String]| -> Vec<String> { list.iter().filter(|p| !is_builtin(p)).cloned().collect() };
        validate(&operators(read))?;
        validate(&operators(write_only))?;
        let (read_set, write_set) = (GlobList::lazy(read), GlobList::lazy(write_only));
        Ok(Self::from_lists(read, write_only, read_set, write_set))
    }

    fn from_lists(read: &[String], write_only: &[String], read_set: GlobList, write_set: GlobList) -> Self {
        let mut all_write: Vec<String> = read.to_vec();
        all_write.extend(write_only.iter().cloned());
        DenyRules {
            read: read_set,
            write: write_set,
            read_patterns: read.to_vec(),
            write_patterns: all_write,
            protected: Arc::default(),
        }
    }

    /// The built-in defaults.
    pub fn defaults() -> Self {
        let read: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        let write: Vec<String> = DEFAULT_DENY_WRITE.iter().map(|s| s.to_string()).collect();
        // The defaults are constants and compile; an error here is a bug caught by the unit tests.
        let empty = || GlobList::compiled(Globs { names: GlobSet::empty(), paths: GlobSet::empty() });
        Self::new(&read, &write).unwrap_or_else(|_| DenyRules {
            read: empty(),
            write: empty(),
            read_patterns: Vec::new(),
            write_patterns: Vec::new(),
            protected: Arc::default(),
        })
    }

    /// These rules with `protected` as Bastion's own state (replacing any set before).
    pub fn with_protected(mut self, protected: Protected) -> Self {
        self.protected = Arc::new(protected);
        self
    }

    /// Bastion's own state, refused to every access.
    pub fn protected(&self) -> &Protected {
        &self.protected
    }

    /// Whether `rel`, relative to `root`, is Bastion's own state (or inside it). Matched on the
    /// root's real path, so a narrowed root is judged where it really is.
    pub fn is_protected_in(&self, root: &Root, rel: &Path) -> bool {
        self.protected.covers_in(root.real_path(), rel)
    }

    /// The error for a refusal of `rel` (relative to `root`): `protected_path` for Bastion's own
    /// state, `denied_by_glob` with `glob_message` otherwise.
    pub fn refusal(&self, root: &Root, rel: &Path, shown: &str, glob_message: String) -> Error {
        if self.is_protected_in(root, rel) {
            protected_error(shown)
        } else {
            Error::new(ErrorCode::DeniedByGlob, glob_message)
        }
    }

    /// Whether `rel` is denied for `access`.
    pub fn is_denied(&self, rel: &Path, access: Access) -> bool {
        if rel.as_os_str().is_empty() {
            return false;
        }
        // Case-insensitivity is done by lowering ASCII here and in the patterns rather than with
        // globset's case-insensitive mode, which forces every glob onto the regex engine. With
        // lowered literals, globset matches `.env` by a hash lookup of the base name and `*.pem`
        // by extension: this check runs on every entry of every directory walk.
        let lowered = rel.as_os_str().as_bytes().to_ascii_lowercase();
        match access {
            Access::Read => self.read.is_match(&lowered),
            Access::Write => self.read.is_match(&lowered) || self.write.is_match(&lowered),
        }
    }

    /// Whether `rel`, relative to `root`, is denied: Bastion's own state, or a glob. Globs are
    /// matched on the path relative to the *configured* root, so a root narrowed by a client to
    /// `.git` still denies writes there.
    pub fn is_denied_in(&self, root: &Root, rel: &Path, access: Access) -> bool {
        if self.is_protected_in(root, rel) {
            return true;
        }
        match root.prefix() {
            Some(prefix) => self.is_denied(&prefix.join(rel), access),
            None => self.is_denied(rel, access),
        }
    }

    /// Returns `protected_path` for Bastion's own state, `denied_by_glob` when `rel` (relative
    /// to `root`) is denied for `access`.
    pub fn check_in(&self, root: &Root, rel: &RelPath, access: Access) -> Result<()> {
        if self.is_protected_in(root, rel.as_path()) {
            return Err(protected_error(&rel.display()));
        }
        if self.is_denied_in(root, rel.as_path(), access) {
            let what = match access {
                Access::Read => "may not be read or written",
                Access::Write => "may not be written, moved or deleted",
            };
            return Err(Error::new(
                ErrorCode::DeniedByGlob,
                format!(
                    "'{}' {what}: it matches the server's deny list (secrets, or git metadata). This is policy, not an error to work around; ask the user to change the file directly if needed",
                    rel.display()
                ),
            ));
        }
        Ok(())
    }

    /// The glob patterns in force for `access`, for `list_roots` and diagnostics.
    pub fn patterns(&self, access: Access) -> &[String] {
        match access {
            Access::Read => &self.read_patterns,
            Access::Write => &self.write_patterns,
        }
    }
}

/// A glob list of the rules: compiled, or parsed and compiled on its first match (shared by the
/// clones of the rules, so it is compiled once).
#[derive(Clone, Debug)]
struct GlobList(Arc<GlobListInner>);

#[derive(Debug)]
struct GlobListInner {
    /// The globs, until compiled (empty for a list compiled at once); each parses.
    patterns: Vec<String>,
    /// `None` when the parsed globs did not compile: everything matches (fail closed).
    compiled: OnceLock<Option<Globs>>,
}

impl GlobList {
    fn compiled(globs: Globs) -> Self {
        GlobList(Arc::new(GlobListInner { patterns: Vec::new(), compiled: OnceLock::from(Some(globs)) }))
    }

    fn lazy(patterns: &[String]) -> Self {
        GlobList(Arc::new(GlobListInner { patterns: patterns.to_vec(), compiled: OnceLock::new() }))
    }

    fn is_match(&self, lowered: &[u8]) -> bool {
        let compiled = self.0.compiled.get_or_init(|| match compile(&self.0.patterns) {
            Ok(globs) => Some(globs),
            Err(e) => {
                tracing::warn!(error = %e.message, "deny globs parsed but do not compile; every path is denied");
                None
            }
        });
        compiled.as_ref().is_none_or(|globs| globs.is_match(lowered))
    }
}

/// A compiled list, split for speed: globs without a `/` can only ever match the final name, so
/// they are matched against the base name alone (a short input for the regex engine); the rest
/// against the whole path.
#[derive(Clone, Debug)]
struct Globs {
    names: GlobSet,
    paths: GlobSet,
}

impl Globs {
    fn is_match(&self, lowered: &[u8]) -> bool {
        if self.names.is_empty() && self.paths.is_empty() {
            return false;
        }
        let name = lowered.rsplit(|&b| b == b'/').next().unwrap_or(lowered);
        self.names.is_match(Path::new(OsStr::from_bytes(name)))
            || (!self.paths.is_empty() && self.paths.is_match(Path::new(OsStr::from_bytes(lowered))))
    }
}

/// Checks that every glob of `patterns` parses, without compiling the set (the expensive part):
/// for rules compiled on first use that must still fail at start on a bad glob.
pub fn validate(patterns: &[String]) -> Result<()> {
    parse(patterns).map(|_| ())
}

/// Whether `pattern` is one of the built-in globs ([`DEFAULT_DENY`], [`DEFAULT_DENY_WRITE`]).
fn is_builtin(pattern: &str) -> bool {
    DEFAULT_DENY.contains(&pattern) || DEFAULT_DENY_WRITE.contains(&pattern)
}

fn compile(patterns: &[String]) -> Result<Globs> {
    let (names, paths) = parse(patterns)?;
    let done = |globs: Vec<globset::Glob>| {
        let mut b = GlobSetBuilder::new();
        for g in globs {
            b.add(g);
        }
        b.build().map_err(|e| Error::new(ErrorCode::InvalidConfig, format!("deny globs do not compile: {e}")))
    };
    Ok(Globs { names: done(names)?, paths: done(paths)? })
}

/// The globs of `patterns`, split into those matched on the base name and those matched on the
/// whole path.
fn parse(patterns: &[String]) -> Result<(Vec<globset::Glob>, Vec<globset::Glob>)> {
    let mut names = Vec::new();
    let mut paths = Vec::new();
    for pattern in patterns {
        let anchored = pattern.strip_prefix('/');
        let base = anchored.unwrap_or(pattern).trim_end_matches('/');
        let mut variants = vec![base.to_string()];
        if let Some(dir) = base.strip_suffix("/**") {
            variants.push(dir.to_string());
        }
        for v in variants {
            let v = v.to_ascii_lowercase();
            let bad = |e: globset::Error| {
                Error::new(ErrorCode::InvalidConfig, format!("deny glob '{pattern}' is invalid: {e}"))
            };
            let build =
                |g: &str| GlobBuilder::new(g).literal_separator(true).backslash_escape(true).build().map_err(bad);
            if anchored.is_none() && !v.contains('/') {
                // `**/NAME` on the whole path is exactly NAME on the base name.
                names.push(build(&v)?);
            } else {
                let full = if anchored.is_some() || v.starts_with("**/") { v } else { format!("**/{v}") };
                paths.push(build(&full)?);
            }
        }
    }
    Ok((names, paths))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_secrets_anywhere() {
        let rules = DenyRules::defaults();
        let denied_read = [
            ".env",
            ".ENV",
            "app/.env",
            ".env.local",
            "certs/server.pem",
            "tls.key",
            "home/.ssh/id_rsa",
            ".ssh",
            ".ssh/config",
            ".aws/credentials",
            ".kube/config",
            ".netrc",
            "sub/.npmrc",
            ".pypirc",
            "my_credentials.json",
            "client_secret.json",
            "id_ed25519.pub",
        ];
        for p in denied_read {
            assert!(rules.is_denied(Path::new(p), Access::Read), "{p} should be denied for read");
            assert!(rules.is_denied(Path::new(p), Access::Write), "{p} should be denied for write");
        }
        let allowed = ["src/main.rs", "README.md", "environment.txt", "keys.rs", "docs/pem.md", ".envrc.example/x"];
        for p in allowed {
            assert!(!rules.is_denied(Path::new(p), Access::Read), "{p} should be readable");
        }
        for p in [".git", ".git/config", ".GIT/hooks/pre-commit", "vendor/lib/.git/HEAD"] {
            assert!(!rules.is_denied(Path::new(p), Access::Read), "{p} is readable");
            assert!(rules.is_denied(Path::new(p), Access::Write), "{p} is never written");
        }
    }

    #[test]
    fn bad_glob_names_the_pattern() {
        let err = DenyRules::new(&["a[".to_string()], &[]).unwrap_err();
        assert_eq!(err.code, ErrorCode::InvalidConfig);
        assert!(err.message.contains("a["));
        let lazy = DenyRules::new_lazy(&[], &["b[".to_string()]).unwrap_err();
        assert_eq!(lazy.code, ErrorCode::InvalidConfig);
        assert!(lazy.message.contains("b["), "a bad glob is refused at start, not at first use");
    }

    #[test]
    fn rules_compiled_on_first_use_match_as_compiled_ones() {
        let read: Vec<String> = DEFAULT_DENY.iter().map(|s| s.to_string()).collect();
        let write: Vec<String> = DEFAULT_DENY_WRITE.iter().map(|s| s.to_string()).collect();
        let eager = DenyRules::new(&read, &write).unwrap();
        let lazy = DenyRules::new_lazy(&read, &write).unwrap();
        let shared = lazy.clone();
        for p in [".env", "a/B.PEM", ".ssh", "src/main.rs", ".git/config", "x/.git", "keys.rs", "my_secret.txt"] {
            for access in [Access::Read, Access::Write] {
                let want = eager.is_denied(Path::new(p), access);
                assert_eq!(lazy.is_denied(Path::new(p), access), want, "{p} {access:?}");
                assert_eq!(shared.is_denied(Path::new(p), access), want, "{p} {access:?} (a clone)");
            }
        }
        assert_eq!(lazy.patterns(Access::Write), eager.patterns(Access::Write));
    }
}
