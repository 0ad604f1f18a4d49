//! Finding: find_files (names) and search_text (contents, on the ripgrep engine).
//!
//! Both run in two phases. A parallel, `.gitignore`-aware walk (the `ignore` crate, never
//! following symlinks) collects candidate names; they are sorted so that pages and cursors are
//! deterministic. `search_text` also searches files during the walk, until a page's worth of
//! matches has been seen (so a whole-tree search overlaps walking and reading, as `rg` does);
//! then it settles the sorted files in parallel and stops as soon as the sorted prefix holds the
//! page, so the cost follows the size of the answer, not of the tree. Every file searched is
//! reopened beneath the root with symlinks refused, so a directory swapped for a link mid-walk is
//! never read.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use bastion_policy::{Access, Error, ErrorCode, RelPath, Result, Root, Target};
use bastion_server_kit::Json;
use globset::{Glob, GlobMatcher};
use grep_regex::RegexMatcherBuilder;
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkContextKind, SinkMatch};
use ignore::{WalkBuilder, WalkState, overrides::OverrideBuilder};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{blocking, path_prefix};
use crate::text::clip_line;
use crate::{Failure, FsServer};

/// Longest line shown in a search result; longer lines are clipped with '…'.
const MAX_LINE_CHARS: usize = 300;

/// Arguments of `find_files`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FindArgs {
    /// Glob over names, e.g. "*.rs" or "Cargo.toml"; a glob containing '/' matches the path below `path`, e.g. "src/**/*.ts".
    pub pattern: String,
    /// Directory to search; default the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// `file` (default), `directory` or `any`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Include hidden names (starting with '.'); default false.
    #[serde(default)]
    pub include_hidden: Option<bool>,
    /// Honour .gitignore/.ignore files; default true.
    #[serde(default)]
    pub respect_gitignore: Option<bool>,
    /// Most paths per page (default 500).
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Continuation cursor from a previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// Result of `find_files`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FindOut {
    /// Matching paths relative to the root, sorted.
    pub matches: Vec<String>,
    /// Matches in the whole walk (when complete).
    pub total: u64,
    /// True when more matches follow; pass next_cursor as cursor.
    pub truncated: bool,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// False when the walk stopped at the server's entry limit; narrow `path` or `pattern`.
    pub complete: bool,
}

/// Arguments of `search_text`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// Regular expression (Rust/ripgrep syntax), or a plain string with literal=true.
    pub pattern: String,
    /// Directory or file to search; default the root.
    #[serde(default)]
    pub path: Option<String>,
    /// Root name, if several.
    #[serde(default)]
    pub root: Option<String>,
    /// Treat pattern as a plain string, not a regex.
    #[serde(default)]
    pub literal: Option<bool>,
    /// `smart` (default: insensitive unless the pattern has an uppercase letter), `sensitive` or `insensitive`.
    #[serde(default)]
    pub case: Option<String>,
    /// File globs like ripgrep's -g: "*.rs" includes, "!*.min.js" excludes.
    #[serde(default)]
    pub globs: Option<Vec<String>>,
    /// Lines of context before and after each match (0-10, default 0).
    #[serde(default)]
    pub context_lines: Option<u32>,
    /// Include hidden files; default false.
    #[serde(default)]
    pub include_hidden: Option<bool>,
    /// Honour .gitignore/.ignore files; default true.
    #[serde(default)]
    pub respect_gitignore: Option<bool>,
    /// Most matches per page (default 200).
    #[serde(default)]
    pub max_results: Option<u64>,
    /// Continuation cursor from a previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// One match.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct MatchOut {
    /// File path relative to the root.
    pub path: String,
    /// 1-based line number.
    pub line: u64,
    /// The matching line (clipped to 300 characters).
    pub text: String,
    /// Context lines before.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub before: Vec<String>,
    /// Context lines after.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub after: Vec<String>,
    /// Secrets replaced by markers in these lines (for the audit journal; not sent).
    #[serde(skip)]
    pub(crate) redactions: usize,
}

/// Result of `search_text`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchOut {
    /// Matches in path order, then line order.
    pub matches: Vec<MatchOut>,
    /// Files whose contents were searched for this page.
    pub files_searched: u64,
    /// True when more matches may follow; pass next_cursor as cursor.
    pub truncated: bool,
    /// Cursor for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    /// False when the walk stopped at the server's entry limit; narrow `path` or `globs`.
    pub complete: bool,
}

#[tool_router(router = search_router, vis = "pub(crate)")]
impl FsServer {
    /// Find files or directories by name glob (.gitignore-aware, sorted, paged). Better than
    /// listing directories recursively.
    #[tool(name = "find_files", output_schema = bastion_server_kit::output_schema_of(Self::find_files))]
    async fn find_files(&self, Parameters(a): Parameters<FindArgs>) -> Result<Json<FindOut>, Failure> {
        let this = self.clone();
        Ok(Json(blocking(move || this.find_impl(a)).await?))
    }

    /// Search file contents for a regex or literal (ripgrep engine: .gitignore-aware, glob filters,
    /// context lines, paged). Binary files are skipped.
    #[tool(name = "search_text", output_schema = bastion_server_kit::output_schema_of(Self::search_text))]
    async fn search_text(&self, Parameters(a): Parameters<SearchArgs>) -> Result<Json<SearchOut>, Failure> {
        let this = self.clone();
        let out = blocking(move || this.search_impl(a)).await?;
        bastion_server_kit::count_redactions(out.matches.iter().map(|m| m.redactions).sum());
        Ok(Json(out))
    }
}

/// A cursor is the sort key of the next item plus an index inside it, opaque to the model.
fn encode_cursor(path: &str, n: usize) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{n}:{path}"))
}

fn decode_cursor(c: &str) -> Result<(RelPath, usize)> {
    let bad = || Error::new(ErrorCode::InvalidArgument, "cursor is not one this tool returned; omit it to start over");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(c).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (n, path) = raw.split_once(':').ok_or_else(bad)?;
    // Sorting is by path components, so the cursor is compared as a path, not as a string.
    let path = RelPath::parse(Path::new(path)).map_err(|_| bad())?;
    Ok((path, n.parse().map_err(|_| bad())?))
}

/// One walked entry: relative path, whether it is a directory, and its matches when a search
/// already looked inside it during the walk.
type Walk = (RelPath, bool, Option<Vec<MatchOut>>);

/// A file's matches once searched (by the walk or the sorted phase).
type Slot = Mutex<Option<Vec<MatchOut>>>;

/// What a walk found: the root, and its entries sorted by path.
struct Walked {
    root: Arc<Root>,
    entries: Vec<Walk>,
    complete: bool,
}

/// Searching files for `search_text`, shared by the walk (speculatively, while it still has
/// budget) and the sorted phase. Both produce identical per-file results, so a file's matches do
/// not depend on which phase found them and pages stay deterministic.
struct FileSearch<'a> {
    matcher: &'a grep_regex::RegexMatcher,
    roots: &'a bastion_policy::Roots,
    root: Arc<Root>,
    deny: &'a bastion_policy::DenyRules,
    redactor: &'a bastion_policy::Redactor,
    prefix: String,
    /// Most matches kept per file (the page size plus what the cursor skips, plus one).
    need: usize,
    context: usize,
    /// Matches found by the speculative search so far; it stops once this reaches `need`.
    speculated: AtomicUsize,
    /// Speculate only on files at or after the cursor.
    from: Option<&'a RelPath>,
}

impl FileSearch<'_> {
    fn searcher(&self) -> Searcher {
        SearcherBuilder::new()
            .line_number(true)
            .binary_detection(BinaryDetection::quit(b'\x00'))
            .before_context(self.context)
            .after_context(self.context)
            .build()
    }

    fn search(&self, searcher: &mut Searcher, rel: &RelPath) -> Vec<MatchOut> {
        match self.roots.open_walked_file(&self.root, rel, self.deny) {
            Ok(opened) => {
                let mut sink = Collect {
                    redactor: self.redactor,
                    before_redactions: 0,
                    prefix: &self.prefix,
                    rel,
                    path: None,
                    hits: Vec::new(),
                    before: Vec::new(),
                    max: self.need,
                };
                let _ = searcher.search_file(self.matcher, &opened.file, &mut sink);
                sink.hits
            }
            Err(_) => Vec::new(),
        }
    }

    /// The walk's search: overlaps reading files with walking directories, until enough
    /// matches for the page have been seen (after that, the sorted phase decides what else to
    /// read).
    fn speculate(&self, searcher: &mut Searcher, rel: &RelPath) -> Option<Vec<MatchOut>> {
        if self.speculated.load(Ordering::Relaxed) >= self.need || self.from.is_some_and(|f| path_order(rel, f).is_lt())
        {
            return None;
        }
        let hits = self.search(searcher, rel);
        self.speculated.fetch_add(hits.len(), Ordering::Relaxed);
        Some(hits)
    }
}

struct WalkSpec {
    /// Drop denied files from the walk (a search skips this: it opens every file through the
    /// policy, which refuses denied ones anyway).
    deny_files: bool,
    include_hidden: bool,
    respect_gitignore: bool,
    overrides: Vec<String>,
    max_filesize: Option<u64>,
}

impl FsServer {
    /// Walks beneath `dir` in parallel and returns the entries `keep` accepts, sorted.
    fn walk(
        &self,
        target: &Target,
        spec: &WalkSpec,
        keep: &(dyn Fn(&Path, bool) -> bool + Sync),
        file_search: Option<&FileSearch<'_>>,
    ) -> Result<Walked> {
        let policy = self.policy();
        let roots = policy.roots();
        // Opening the start directory (or file) beneath the root gives its real path, so a start
        // path through an in-root symlink is walked at its real location.
        let (_, _, real_rel) = roots.stat(target, &policy.deny)?;
        let root_real = target.root.real_path().to_path_buf();
        let start = root_real.join(real_rel.as_path());

        let mut builder = WalkBuilder::new(&start);
        builder
            .hidden(!spec.include_hidden)
            .git_ignore(spec.respect_gitignore)
            .git_exclude(spec.respect_gitignore)
            .git_global(spec.respect_gitignore)
            .ignore(spec.respect_gitignore)
            .parents(spec.respect_gitignore)
            .require_git(false)
            .follow_links(false)
            .max_filesize(spec.max_filesize)
            .threads(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8))
            .filter_entry(|e| e.file_name() != ".git");
        if !spec.overrides.is_empty() {
            let mut ob = OverrideBuilder::new(&start);
            for g in &spec.overrides {
                ob.add(g).map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("glob '{g}' is invalid: {e}")))?;
            }
            builder.overrides(
                ob.build().map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("globs are invalid: {e}")))?,
            );
        }
        let found: Mutex<Vec<Walk>> = Mutex::new(Vec::new());
        let count = AtomicUsize::new(0);
        let limit = policy.limits.max_walk_entries;
        let complete = AtomicBool::new(true);
        let deny = &policy.deny;
        builder.build_parallel().run(|| {
            let mut flush = Flush { shared: &found, local: Vec::new() };
            let mut searcher = file_search.map(FileSearch::searcher);
            let (count, complete, root_real, start, walk_root) = (&count, &complete, &root_real, &start, &target.root);
            Box::new(move |entry| {
                let Ok(entry) = entry else { return WalkState::Continue };
                let Some(ft) = entry.file_type() else { return WalkState::Continue };
                let is_dir = ft.is_dir();
                if !is_dir && !ft.is_file() {
                    return WalkState::Continue;
                }
                // The walker joins names onto `start`, so plain byte slicing finds the relative
                // path; `Path::strip_prefix` would re-parse components for every entry.
                let Some(rel) = strip_dir_prefix(entry.path(), root_real) else { return WalkState::Continue };
                // Denied directories are pruned; denied files are dropped once they match (the
                // cheap name test first), or left to `open_walked_file`, which checks again.
                if is_dir && deny.is_denied_in(walk_root, rel, Access::Read) {
                    return WalkState::Skip;
                }
                if entry.depth() == 0 && is_dir {
                    return WalkState::Continue;
                }
                let below = strip_dir_prefix(entry.path(), start).unwrap_or(rel);
                if !keep(below, is_dir) {
                    return WalkState::Continue;
                }
                if !is_dir && spec.deny_files && deny.is_denied_in(walk_root, rel, Access::Read) {
                    return WalkState::Continue;
                }
                if count.fetch_add(1, Ordering::Relaxed) >= limit {
                    complete.store(false, Ordering::Relaxed);
                    return WalkState::Quit;
                }
                let rel = RelPath::from_walked(rel);
                let hits = match (file_search, searcher.as_mut()) {
                    (Some(fs), Some(searcher)) if !is_dir => fs.speculate(searcher, &rel),
                    _ => None,
                };
                flush.local.push((rel, is_dir, hits));
                WalkState::Continue
            })
        });
        let mut entries = match found.into_inner() {
            Ok(v) => v,
            Err(p) => p.into_inner(),
        };
        entries.sort_unstable_by(|a, b| path_order(&a.0, &b.0).then(a.1.cmp(&b.1)));
        Ok(Walked { root: target.root.clone(), entries, complete: complete.into_inner() })
    }

    fn find_impl(&self, a: FindArgs) -> Result<FindOut> {
        let glob = build_glob(&a.pattern)?;
        let by_path = a.pattern.contains('/');
        let want = match a.kind.as_deref().unwrap_or("file") {
            "file" => Some(false),
            "directory" => Some(true),
            "any" => None,
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("kind must be file, directory or any, not '{other}'"),
                ));
            }
        };
        let spec = WalkSpec {
            deny_files: true,
            include_hidden: a.include_hidden.unwrap_or(false),
            respect_gitignore: a.respect_gitignore.unwrap_or(true),
            overrides: Vec::new(),
            max_filesize: None,
        };
        let keep = |below: &Path, is_dir: bool| -> bool {
            if want.is_some_and(|w| w != is_dir) {
                return false;
            }
            if by_path {
                glob.is_match(below)
            } else {
                use std::os::unix::ffi::OsStrExt;
                let name = below.as_os_str().as_bytes().rsplit(|&b| b == b'/').next().unwrap_or_default();
                glob.is_match(std::ffi::OsStr::from_bytes(name))
            }
        };
        let target = self.policy().roots().target(a.path.as_deref().unwrap_or("."), a.root.as_deref())?;
        let walked = self.walk(&target, &spec, &keep, None)?;
        let max = a.max_results.unwrap_or(500).clamp(1, 10_000) as usize;
        let start = match &a.cursor {
            Some(c) => {
                let (after, _) = decode_cursor(c)?;
                walked.entries.partition_point(|(p, _, _)| path_order(p, &after).is_lt())
            }
            None => 0,
        };
        let budget = self.budget(None);
        let policy = self.policy();
        let roots = policy.roots();
        let prefix = path_prefix(self, walked.root.name());
        let mut matches = Vec::new();
        let mut used = 0;
        let mut next = None;
        for (rel, _, _) in walked.entries.iter().skip(start) {
            let shown = format!("{prefix}{}", rel.display());
            if matches.len() >= max || (used + shown.len() + 4 > budget && !matches.is_empty()) {
                next = Some(encode_cursor(&rel.display(), 0));
                break;
            }
            // A name from the walk is reported only if it is still beneath the root with no
            // symlink on the way (a directory swapped for a link mid-walk is dropped).
            if !roots.confirm_walked(&walked.root, rel) {
                continue;
            }
            used += shown.len() + 4;
            matches.push(shown);
        }
        Ok(FindOut {
            total: walked.entries.len() as u64,
            truncated: next.is_some(),
            next_cursor: next,
            complete: walked.complete,
            matches,
        })
    }

    fn search_impl(&self, a: SearchArgs) -> Result<SearchOut> {
        let mut mb = RegexMatcherBuilder::new();
        match a.case.as_deref().unwrap_or("smart") {
            "smart" => mb.case_smart(true),
            "sensitive" => mb.case_insensitive(false),
            "insensitive" => mb.case_insensitive(true),
            other => {
                return Err(Error::new(
                    ErrorCode::InvalidArgument,
                    format!("case must be smart, sensitive or insensitive, not '{other}'"),
                ));
            }
        };
        mb.fixed_strings(a.literal.unwrap_or(false)).line_terminator(Some(b'\n'));
        let matcher = mb.build(&a.pattern).map_err(|e| {
            Error::new(
                ErrorCode::InvalidArgument,
                format!("the pattern is not a valid regex ({e}); pass literal=true to search for it as plain text"),
            )
        })?;
        let policy = self.policy();
        let spec = WalkSpec {
            deny_files: false,
            include_hidden: a.include_hidden.unwrap_or(false),
            respect_gitignore: a.respect_gitignore.unwrap_or(true),
            overrides: a.globs.clone().unwrap_or_default(),
            max_filesize: Some(policy.limits.max_search_file_bytes),
        };
        let max = a.max_results.unwrap_or(200).clamp(1, 10_000) as usize;
        let context = a.context_lines.unwrap_or(0).min(10) as usize;
        let cursor = a.cursor.as_deref().map(decode_cursor).transpose()?;
        // Matches kept per file: the page, what the cursor skips inside its file, and one more to
        // know that more follow.
        let need = max + cursor.as_ref().map_or(0, |(_, n)| *n) + 1;
        let roots = policy.roots();
        let target = roots.target(a.path.as_deref().unwrap_or("."), a.root.as_deref())?;
        let file_search = FileSearch {
            matcher: &matcher,
            roots: &roots,
            root: target.root.clone(),
            deny: &policy.deny,
            redactor: &policy.redactor,
            prefix: path_prefix(self, target.root.name()),
            need,
            context,
            speculated: AtomicUsize::new(0),
            from: cursor.as_ref().map(|(p, _)| p),
        };
        let walked = self.walk(&target, &spec, &|_, is_dir| !is_dir, Some(&file_search))?;
        let (first, skip_in_first) = match &cursor {
            Some((path, n)) => {
                let first = walked.entries.partition_point(|(p, _, _)| path_order(p, path).is_lt());
                // The in-file index only applies if that very file is still there.
                let skip = if walked.entries.get(first).is_some_and(|(p, _, _)| p == path) { *n } else { 0 };
                (first, skip)
            }
            None => (0, 0),
        };
        let complete = walked.complete;
        // Files the walk already searched keep their matches; the rest are searched now.
        let (files, slots): (Vec<RelPath>, Vec<Slot>) =
            walked.entries.into_iter().skip(first).map(|(p, _, hits)| (p, Mutex::new(hits))).unzip();

        // Sorted phase: workers claim the next index, so the files settled always form a prefix
        // of the sorted list, and it stops once that prefix holds a page of matches.
        let next_index = AtomicUsize::new(0);
        let found = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).min(8);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    let mut searcher = file_search.searcher();
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let i = next_index.fetch_add(1, Ordering::Relaxed);
                        let Some(rel) = files.get(i) else { break };
                        let Ok(mut slot) = slots[i].lock() else { break };
                        let hits = slot.get_or_insert_with(|| file_search.search(&mut searcher, rel)).len();
                        drop(slot);
                        if found.fetch_add(hits, Ordering::Relaxed) + hits >= need {
                            stop.store(true, Ordering::Relaxed);
                        }
                    }
                });
            }
        });

        let budget = self.budget(None);
        let mut matches = Vec::new();
        let mut used = 0usize;
        let mut next = None;
        let mut searched = 0u64;
        'files: for (i, slot) in slots.into_iter().enumerate() {
            let hits = match slot.into_inner() {
                Ok(Some(h)) => h,
                _ => {
                    // Not searched: the page filled up before this file.
                    next = Some(encode_cursor(&files[i].display(), 0));
                    break;
                }
            };
            searched += 1;
            let skip = if i == 0 { skip_in_first } else { 0 };
            for (j, hit) in hits.into_iter().enumerate().skip(skip) {
                let cost = hit.path.len()
                    + hit.text.len()
                    + hit.before.iter().chain(&hit.after).map(|l| l.len() + 1).sum::<usize>()
                    + 24;
                if matches.len() >= max || (used + cost > budget && !matches.is_empty()) {
                    next = Some(encode_cursor(&files[i].display(), j));
                    break 'files;
                }
                used += cost;
                matches.push(hit);
            }
        }
        Ok(SearchOut { matches, files_searched: searched, truncated: next.is_some(), next_cursor: next, complete })
    }
}

/// `path` below `dir`, by bytes (both come from the same walk, so no normalisation is needed).
fn strip_dir_prefix<'a>(path: &'a Path, dir: &Path) -> Option<&'a Path> {
    use std::os::unix::ffi::OsStrExt;
    let rest = path.as_os_str().as_bytes().strip_prefix(dir.as_os_str().as_bytes())?;
    let rest = match rest {
        [] => rest,
        [b'/', tail @ ..] => tail,
        _ => return None,
    };
    Some(Path::new(std::ffi::OsStr::from_bytes(rest)))
}

/// Path order (component by component) computed on bytes: for normalised relative paths this
/// equals comparing components, with `/` sorting before every other byte. Far cheaper than
/// `Path`'s component iterator when sorting tens of thousands of names.
fn path_order(a: &RelPath, b: &RelPath) -> std::cmp::Ordering {
    use std::os::unix::ffi::OsStrExt;
    let key = |c: u8| if c == b'/' { 0 } else { c };
    let (a, b) = (a.as_path().as_os_str().as_bytes(), b.as_path().as_os_str().as_bytes());
    a.iter().map(|&c| key(c)).cmp(b.iter().map(|&c| key(c)))
}

fn build_glob(pattern: &str) -> Result<GlobMatcher> {
    Glob::new(pattern)
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::new(ErrorCode::InvalidArgument, format!("'{pattern}' is not a valid glob: {e}")))
}

/// Collects matches with their context lines.
struct Collect<'a> {
    /// Lines are redacted before they are clipped, so a clip never leaves half a secret.
    redactor: &'a bastion_policy::Redactor,
    /// Secrets redacted in `before`.
    before_redactions: usize,
    prefix: &'a str,
    rel: &'a RelPath,
    /// The path as shown, formatted on the first match only (most files have none).
    path: Option<String>,
    hits: Vec<MatchOut>,
    before: Vec<String>,
    max: usize,
}

impl Sink for Collect<'_> {
    type Error = std::io::Error;

    fn matched(&mut self, _: &Searcher, m: &SinkMatch<'_>) -> std::result::Result<bool, Self::Error> {
        let text = String::from_utf8_lossy(m.bytes());
        let text = self.redactor.redact(&text);
        let path = self.path.get_or_insert_with(|| format!("{}{}", self.prefix, self.rel.display())).clone();
        self.hits.push(MatchOut {
            path,
            line: m.line_number().unwrap_or(0),
            text: clip_line(&text.text, MAX_LINE_CHARS),
            before: std::mem::take(&mut self.before),
            after: Vec::new(),
            redactions: text.count + std::mem::take(&mut self.before_redactions),
        });
        Ok(self.hits.len() < self.max)
    }

    fn context(&mut self, _: &Searcher, c: &SinkContext<'_>) -> std::result::Result<bool, Self::Error> {
        let raw = String::from_utf8_lossy(c.bytes());
        let redacted = self.redactor.redact(&raw);
        let line = clip_line(&redacted.text, MAX_LINE_CHARS);
        match c.kind() {
            SinkContextKind::Before => {
                self.before.push(line);
                self.before_redactions += redacted.count;
            }
            SinkContextKind::After => {
                if let Some(last) = self.hits.last_mut() {
                    last.after.push(line);
                    last.redactions += redacted.count;
                }
            }
            SinkContextKind::Other => {}
        }
        Ok(true)
    }
}

/// A walk thread's findings, handed to the shared list when the thread's visitor is dropped,
/// so threads do not contend on a lock per entry.
struct Flush<'a> {
    shared: &'a Mutex<Vec<Walk>>,
    local: Vec<Walk>,
}

impl Drop for Flush<'_> {
    fn drop(&mut self) {
        if let Ok(mut shared) = self.shared.lock() {
            shared.append(&mut self.local);
        }
    }
}
