//! `cargo xtask tidy`: checks that keep the repository's map true.
//!
//! * **The tool index.** ARCHITECTURE.md carries a table of every MCP tool the built-in servers
//!   offer, with the file and function that implement it, between two HTML comment markers. The
//!   table is derived from the source (each `#[tool(...)]` attribute and the `fn` after it); a
//!   tool added, renamed or moved without the table following fails the check, and
//!   `cargo xtask tidy --fix` rewrites the table.
//! * **File size.** No Rust source file under `crates/` is longer than [`MAX_LINES`]: a file that
//!   grows past it holds more than one concern and is split by concern.
//! * **Where `unsafe` lives.** The workspace denies `unsafe_code`; a file may lift that only if
//!   it is in [`UNSAFE_FILES`], the list ARCHITECTURE.md repeats. A new one is a decision.
//!
//! The same checks run as a unit test of this crate, so `cargo test --workspace` fails too.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::util::repo_root;

/// Longest Rust source file allowed under `crates/`.
pub const MAX_LINES: usize = 1_000;

/// The only files allowed `#[allow(unsafe_code)]`, each for syscalls or FFI with no safe
/// wrapper (see the `// SAFETY:` comments there).
pub const UNSAFE_FILES: &[&str] = &[
    // fork, unshare, capability drop, close_range, the Landlock ABI query.
    "crates/sandbox/src/sys.rs",
    // Registering our own duplicate of stdin/stdout with tokio's reactor.
    "crates/server-kit/src/stdio.rs",
    // libgit2's process-global options (owner validation, object cache).
    "crates/git-server/src/lib.rs",
];

const START: &str = "<!-- tool-index:start (cargo xtask tidy --fix rewrites this table) -->";
const END: &str = "<!-- tool-index:end -->";

/// One tool of a built-in server, as found in the source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ToolRow {
    server: String,
    tool: String,
    file: String,
    function: String,
}

/// Runs every check; with `fix`, rewrites the tool index instead of failing on it.
pub fn run(fix: bool) -> Result<()> {
    let root = repo_root();
    let mut problems = Vec::new();

    let rows = tool_rows(&root)?;
    let table = render(&rows);
    let arch_path = root.join("ARCHITECTURE.md");
    let arch = fs::read_to_string(&arch_path).with_context(|| format!("reading {}", arch_path.display()))?;
    match replace_index(&arch, &table) {
        None => problems.push(format!("ARCHITECTURE.md has no tool index between `{START}` and `{END}`")),
        Some(updated) if updated != arch => {
            if fix {
                fs::write(&arch_path, updated).with_context(|| format!("writing {}", arch_path.display()))?;
                eprintln!("xtask: tidy: rewrote the tool index in ARCHITECTURE.md ({} tools)", rows.len());
            } else {
                problems.push(format!(
                    "ARCHITECTURE.md's tool index does not match the source; run `cargo xtask tidy --fix`. Expected:\n{table}"
                ));
            }
        }
        Some(_) => {}
    }

    for (path, lines) in long_files(&root.join("crates"))? {
        let shown = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        problems.push(format!("{shown} has {lines} lines (at most {MAX_LINES}): split it by concern"));
    }

    for file in rust_files(&root.join("crates"))? {
        let shown = file.strip_prefix(&root).unwrap_or(&file).display().to_string();
        let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        if text.contains("allow(unsafe_code)") && !UNSAFE_FILES.contains(&shown.as_str()) {
            problems.push(format!(
                "{shown} allows unsafe_code but is not in UNSAFE_FILES (xtask/src/tidy.rs, ARCHITECTURE.md)"
            ));
        }
    }

    if problems.is_empty() {
        eprintln!("xtask: tidy: ok ({} tools indexed)", rows.len());
        Ok(())
    } else {
        bail!("tidy found {} problem(s):\n{}", problems.len(), problems.join("\n"))
    }
}

/// Every `#[tool(...)]` of the server crates (`crates/*-server/src`), sorted.
fn tool_rows(root: &Path) -> Result<Vec<ToolRow>> {
    let mut rows = Vec::new();
    let crates = root.join("crates");
    for entry in fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))? {
        let dir = entry?.path();
        let Some(server) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix("-server")) else {
            continue;
        };
        for file in rust_files(&dir.join("src"))? {
            let text = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
            let shown = file.strip_prefix(root).unwrap_or(&file).display().to_string();
            for (tool, function) in tools_in(&text) {
                rows.push(ToolRow { server: server.to_owned(), tool, file: shown.clone(), function });
            }
        }
    }
    rows.sort();
    Ok(rows)
}

/// `(tool name, function name)` of each `#[tool(...)]` attribute in `text`: the name is the
/// attribute's `name = "..."`, else the function's own name (rmcp's rule).
fn tools_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending: Option<Option<String>> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(attr) = t.strip_prefix("#[tool(").or_else(|| (t == "#[tool]").then_some("")) {
            pending = Some(quoted_after(attr, "name"));
            continue;
        }
        if let Some(name) = &pending
            && let Some(function) = fn_name(t)
        {
            out.push((name.clone().unwrap_or_else(|| function.clone()), function));
            pending = None;
        }
    }
    out
}

/// The string literal after `key =` in an attribute's arguments.
fn quoted_after(attr: &str, key: &str) -> Option<String> {
    let at = attr.find(key)?;
    let rest = attr[at + key.len()..].trim_start().strip_prefix('=')?.trim_start().strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_owned())
}

/// The name of the function a line declares (`pub async fn read_file(`), if it declares one.
fn fn_name(line: &str) -> Option<String> {
    let at = line.find("fn ")?;
    let before = &line[..at];
    if !before.split_whitespace().all(|w| matches!(w, "pub" | "pub(crate)" | "async" | "const" | "unsafe")) {
        return None;
    }
    let rest = &line[at + 3..];
    let end = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    (end > 0).then(|| rest[..end].to_owned())
}

fn render(rows: &[ToolRow]) -> String {
    let mut s = String::from("| server | tool | file | function |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(s, "| {} | `{}` | `{}` | `{}` |", r.server, r.tool, r.file, r.function);
    }
    s
}

/// `doc` with the text between the markers replaced by `table`; `None` without markers.
fn replace_index(doc: &str, table: &str) -> Option<String> {
    let start = doc.find(START)? + START.len();
    let end = start + doc[start..].find(END)?;
    Some(format!("{}\n{}{}", &doc[..start], table, &doc[end..]))
}

/// Rust files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else { continue };
        for entry in entries {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Rust files under `dir` longer than [`MAX_LINES`], with their line counts.
fn long_files(dir: &Path) -> Result<Vec<(PathBuf, usize)>> {
    let mut out = Vec::new();
    for file in rust_files(dir)? {
        let lines = fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?.lines().count();
        if lines > MAX_LINES {
            out.push((file, lines));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tools_with_and_without_a_name() {
        let src = "#[tool(name = \"read_file\", description = \"x\")]\n    async fn read_file(&self) {}\n\
                   #[tool]\n    pub fn ping(&self) {}\n#[tool(description = \"y\")]\n    /// doc\n    fn other_name(&self) {}\n";
        assert_eq!(
            tools_in(src),
            vec![
                ("read_file".to_owned(), "read_file".to_owned()),
                ("ping".to_owned(), "ping".to_owned()),
                ("other_name".to_owned(), "other_name".to_owned()),
            ]
        );
    }

    #[test]
    fn index_is_replaced_between_markers() {
        let doc = format!("a\n{START}\nold\n{END}\nb\n");
        assert_eq!(replace_index(&doc, "new\n"), Some(format!("a\n{START}\nnew\n{END}\nb\n")));
        assert_eq!(replace_index("no markers", "x"), None);
    }

    /// The repository itself passes: the index matches the source and no file is too long.
    #[test]
    fn repository_is_tidy() -> Result<()> {
        run(false)
    }
}
