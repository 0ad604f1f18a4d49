//! `search` and `fetch`: the two tools, named exactly so, that ChatGPT's deep research and
//! company-knowledge modes call, with OpenAI's shapes (`{"results":[{"id","title","url"}]}` and
//! `{"id","title","text","url","metadata"}`, each also as the JSON text of the result).
//!
//! They are the hub's own, offered over the first built-in fs upstream, and answered through
//! that upstream's tools (`list_roots`, `find_files`, `search_text`, `read_file`), so every
//! check is the fs server's own: roots, deny globs, Bastion's protected paths, `.gitignore`,
//! the output budget and its continuation, redaction. The hub only ranks and reshapes. They
//! are read-tier tools of that upstream (scope `{fs}:read`), pass the approval gate as the fs
//! tool they read with, and are journaled under their own names by [`crate::router::Hub::call`].
//!
//! An id is the base64url of `root \n line \n char \n path`: opaque to the model, stable for a
//! document (line 1, char 0), and for a continuation the position `read_file` gave. Nothing in
//! it is trusted: `fetch` hands root and path to `read_file`, so a forged id is a path request
//! refused like any other.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bastion_policy::{ErrorCode, Tier};
use rmcp::model::{CallToolResponse, CallToolResult, JsonObject, Tool, ToolAnnotations};
use rmcp::service::Peer;
use serde_json::{Value, json};

use crate::router::{CallSite, Catalogue, Entry, Hub, tool_error};
use crate::upstream::{Builtin, Source, Upstream};

/// Most results `search` returns.
const MAX_RESULTS: usize = 20;
/// Most query terms searched for.
const MAX_TERMS: usize = 8;
/// Matching lines asked of `search_text` per root (the fs server's budget may cut it sooner).
const CONTENT_MATCHES: u64 = 500;
/// File names asked of `find_files` per root.
const NAME_MATCHES: u64 = 200;

/// Words too common to rank by.
const STOPWORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how", "in", "is", "it", "of",
    "on", "or", "that", "the", "this", "to", "what", "when", "where", "which", "who", "why", "with",
];

/// One of the hub's own tools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HubTool {
    /// `search(query)`.
    Search,
    /// `fetch(id)`.
    Fetch,
}

impl HubTool {
    /// Its name, exactly as ChatGPT looks for it.
    pub fn name(self) -> &'static str {
        match self {
            HubTool::Search => "search",
            HubTool::Fetch => "fetch",
        }
    }

    /// The fs tools it calls; it is offered only when the upstream offers them all (so an
    /// upstream's `deny_tools` also withdraws what is built on them).
    fn needs(self) -> &'static [&'static str] {
        match self {
            HubTool::Search => &["list_roots", "find_files", "search_text"],
            HubTool::Fetch => &["list_roots", "read_file"],
        }
    }

    /// What the approval gate judges: the fs tool it reads with and its arguments (`fetch` is
    /// `read_file` of the path its id names; an id that does not decode names no path, and is
    /// refused after the gate).
    pub fn gated(self, args: Option<&JsonObject>) -> (&'static str, JsonObject) {
        match self {
            HubTool::Search => ("search_text", args.cloned().unwrap_or_default()),
            HubTool::Fetch => {
                let mut out = JsonObject::new();
                if let Some(doc) = args.and_then(|a| a.get("id")).and_then(Value::as_str).and_then(DocId::decode) {
                    out.insert("root".into(), doc.root.into());
                    out.insert("path".into(), doc.path.into());
                }
                ("read_file", out)
            }
        }
    }

    fn definition(self) -> Tool {
        let object = |v: Value| match v {
            Value::Object(m) => Arc::new(m),
            _ => Arc::new(JsonObject::new()),
        };
        let (title, description, input, output) = match self {
            HubTool::Search => (
                "Search files",
                "Search the files of the hub's roots by name and content (.gitignore-aware; secret files \
                 excluded) and return the best matches, each with an id to pass to fetch. Use plain words; \
                 for regular expressions use the fs server's search_text.",
                json!({"type": "object", "properties": {
                    "query": {"type": "string", "description": "Words to look for in file names and contents."}
                }, "required": ["query"]}),
                json!({"type": "object", "properties": {"results": {"type": "array", "items": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string", "description": "Pass to fetch."},
                        "title": {"type": "string", "description": "The file's path in its root."},
                        "url": {"type": "string", "description": "Where the file can be read."}
                    },
                    "required": ["id", "title", "url"]
                }}}, "required": ["results"]}),
            ),
            HubTool::Fetch => (
                "Fetch a file",
                "Read a file found by search, by its id. Long files come in parts: when metadata.truncated \
                 is true, fetch metadata.next_id for the rest.",
                json!({"type": "object", "properties": {
                    "id": {"type": "string", "description": "An id from search's results (or a metadata.next_id)."}
                }, "required": ["id"]}),
                json!({"type": "object", "properties": {
                    "id": {"type": "string"},
                    "title": {"type": "string"},
                    "text": {"type": "string"},
                    "url": {"type": "string"},
                    "metadata": {"type": "object"}
                }, "required": ["id", "title", "text", "url", "metadata"]}),
            ),
        };
        let mut annotations = ToolAnnotations::with_title(title);
        annotations.read_only_hint = Some(true);
        annotations.destructive_hint = Some(false);
        annotations.idempotent_hint = Some(true);
        annotations.open_world_hint = Some(false);
        Tool::new(self.name(), description, object(input))
            .with_title(title)
            .with_raw_output_schema(object(output))
            .with_annotations(annotations)
    }
}

/// Adds `search` and `fetch` to `cat`, over the first built-in fs upstream that is ready and
/// offers the tools they need. A name already taken (an alias, another upstream) keeps its
/// tool; the hub's is reported in [`Catalogue::problems`] instead.
pub fn offer(cat: &mut Catalogue, upstreams: &[Arc<Upstream>]) {
    let fs = upstreams.iter().enumerate().find(|(i, u)| {
        matches!(u.spec.source, Source::Builtin { server: Builtin::Fs, .. })
            && cat.entries.iter().any(|e| e.upstream == *i)
    });
    let Some((index, _)) = fs else { return };
    for tool in [HubTool::Search, HubTool::Fetch] {
        let offered = |inner: &&str| cat.entries.iter().any(|e| e.upstream == index && e.inner == *inner);
        if !tool.needs().iter().all(offered) {
            continue;
        }
        if cat.entries.iter().any(|e| e.tool.name == tool.name()) {
            cat.problems.push(format!("the hub's '{}' not offered: the name is taken", tool.name()));
            continue;
        }
        cat.entries.push(Entry {
            upstream: index,
            inner: tool.name().to_owned(),
            tier: Tier::Read,
            approval_tier: Tier::Read,
            tool: tool.definition(),
            hub_tool: Some(tool),
        });
    }
}

/// Where a `search` or `fetch` runs: the hub, its fs upstream, the caller.
pub struct Via<'a> {
    /// The hub (its `forward`: timeout and cancellation).
    pub hub: &'a Hub,
    /// The fs upstream.
    pub upstream: &'a Upstream,
    /// Its connection.
    pub peer: &'a Peer<rmcp::RoleClient>,
    /// The caller.
    pub site: &'a CallSite,
}

impl Via<'_> {
    /// One call of an fs tool: its structured result, or the result to answer with instead
    /// (the tool's own error, which names what was refused and why).
    async fn call(&self, shown: &str, tool: &str, args: Value) -> Result<Value, CallToolResult> {
        let arguments = match args {
            Value::Object(m) => Some(m),
            _ => None,
        };
        match self.hub.forward(self.upstream, self.peer, tool, shown, arguments, self.site).await {
            Ok(CallToolResponse::Complete(r)) if r.is_error != Some(true) => r.structured_content.ok_or_else(|| {
                tool_error(ErrorCode::UpstreamError, &format!("the fs server's {tool} gave no structured result"))
            }),
            Ok(CallToolResponse::Complete(r)) => Err(r),
            Ok(_) => Err(tool_error(ErrorCode::UpstreamError, &format!("the fs server's {tool} answered out of turn"))),
            Err(e) => Err(tool_error(ErrorCode::InvalidArgument, &e.message)),
        }
    }

    /// The fs server's roots: `(name, real path)`.
    async fn roots(&self, shown: &str) -> Result<Vec<(String, String)>, CallToolResult> {
        let listed = self.call(shown, "list_roots", json!({})).await?;
        Ok(listed["roots"]
            .as_array()
            .map(|roots| {
                roots
                    .iter()
                    .filter_map(|r| Some((r["name"].as_str()?.to_owned(), r["path"].as_str()?.to_owned())))
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// A document (and a position in it) as an id names it.
#[derive(Debug, PartialEq, Eq)]
struct DocId {
    root: String,
    /// 1-based line.
    line: u64,
    /// Characters of `line` already read.
    char: u64,
    path: String,
}

impl DocId {
    fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}\n{}\n{}\n{}", self.root, self.line, self.char, self.path))
    }

    /// `None` for anything that is not an id this hub made (the path is not judged here).
    fn decode(id: &str) -> Option<DocId> {
        let text = String::from_utf8(URL_SAFE_NO_PAD.decode(id.trim()).ok()?).ok()?;
        let mut parts = text.splitn(4, '\n');
        let (root, line, char, path) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let (line, char): (u64, u64) = (line.parse().ok()?, char.parse().ok()?);
        (line >= 1 && !path.is_empty()).then(|| DocId { root: root.to_owned(), line, char, path: path.to_owned() })
    }
}

/// How `search` and `fetch` name a document's location.
#[derive(Clone, Debug, Default)]
pub struct SearchFetch {
    /// The hub's public origin (`https://hub.example.com`): a result's `url` is its read route
    /// `GET /fetch/{id}` there. `None`: a `file:` URL.
    pub public_base: Option<String>,
}

impl SearchFetch {
    /// From the hub's public URL (`https://hub.example.com/mcp`), if it has one.
    pub fn new(public_url: Option<&str>) -> SearchFetch {
        let public_base = public_url.and_then(|u| url::Url::parse(u).ok()).map(|u| u.origin().ascii_serialization());
        SearchFetch { public_base }
    }

    fn url(&self, id: &str, root_path: Option<&str>, path: &str) -> String {
        if let Some(base) = &self.public_base {
            return format!("{base}/fetch/{id}");
        }
        root_path
            .and_then(|r| url::Url::from_file_path(std::path::Path::new(r).join(path)).ok())
            .map(String::from)
            .unwrap_or_default()
    }

    /// Runs `tool` with the caller's arguments; errors are tool errors in Bastion's shape.
    pub async fn run(&self, tool: HubTool, via: &Via<'_>, args: Option<&JsonObject>) -> CallToolResult {
        let arg = |name: &str| args.and_then(|a| a.get(name)).and_then(Value::as_str);
        let out = match tool {
            HubTool::Search => match arg("query") {
                Some(q) => self.search(via, q).await,
                None => Err(tool_error(ErrorCode::InvalidArgument, "search needs a 'query' string")),
            },
            HubTool::Fetch => match arg("id") {
                Some(id) => self.fetch(via, id).await,
                None => Err(tool_error(ErrorCode::InvalidArgument, "fetch needs an 'id' string from search")),
            },
        };
        out.map(CallToolResult::structured).unwrap_or_else(|e| e)
    }

    async fn search(&self, via: &Via<'_>, query: &str) -> Result<Value, CallToolResult> {
        let terms = terms(query);
        if terms.is_empty() {
            return Ok(json!({"results": []}));
        }
        let roots = via.roots("search").await?;
        let several = roots.len() > 1;
        // (root index, path) → score.
        let mut scores: HashMap<(usize, String), u64> = HashMap::new();
        for (i, (root, _)) in roots.iter().enumerate() {
            let unprefix = |p: &str| -> String {
                let prefix = format!("{root}:");
                match p.strip_prefix(&prefix) {
                    Some(rest) if several => rest.to_owned(),
                    _ => p.to_owned(),
                }
            };
            let names = via
                .call(
                    "search",
                    "find_files",
                    json!({"pattern": name_glob(&terms), "root": root, "kind": "file", "max_results": NAME_MATCHES}),
                )
                .await?;
            for path in names["matches"].as_array().into_iter().flatten().filter_map(Value::as_str) {
                let path = unprefix(path);
                let score = name_score(&path, &terms);
                *scores.entry((i, path)).or_default() += score;
            }
            let found = via
                .call(
                    "search",
                    "search_text",
                    json!({"pattern": terms.join("|"), "root": root, "case": "insensitive",
                           "max_results": CONTENT_MATCHES}),
                )
                .await?;
            let mut lines: HashMap<String, (u64, Vec<bool>)> = HashMap::new();
            for m in found["matches"].as_array().into_iter().flatten() {
                let (Some(path), Some(text)) = (m["path"].as_str(), m["text"].as_str()) else { continue };
                let entry = lines.entry(unprefix(path)).or_insert_with(|| (0, vec![false; terms.len()]));
                entry.0 += 1;
                let text = text.to_lowercase();
                for (seen, term) in entry.1.iter_mut().zip(&terms) {
                    *seen |= text.contains(term.as_str());
                }
            }
            for (path, (count, seen)) in lines {
                let distinct = seen.iter().filter(|s| **s).count() as u64;
                let name = if scores.contains_key(&(i, path.clone())) { 0 } else { name_score(&path, &terms) };
                *scores.entry((i, path)).or_default() += name + 4 * distinct + count.min(10);
            }
        }
        let mut ranked: Vec<_> = scores.into_iter().collect();
        ranked.sort_by(|((ra, pa), sa), ((rb, pb), sb)| sb.cmp(sa).then(ra.cmp(rb)).then(pa.cmp(pb)));
        let results: Vec<Value> = ranked
            .into_iter()
            .take(MAX_RESULTS)
            .map(|((i, path), _)| {
                let (root, root_path) = &roots[i];
                let id = DocId { root: root.clone(), line: 1, char: 0, path: path.clone() }.encode();
                let title = if several { format!("{root}:{path}") } else { path.clone() };
                json!({"id": id, "title": title, "url": self.url(&id, Some(root_path), &path)})
            })
            .collect();
        Ok(json!({"results": results}))
    }

    async fn fetch(&self, via: &Via<'_>, id: &str) -> Result<Value, CallToolResult> {
        let doc = DocId::decode(id).ok_or_else(|| {
            tool_error(ErrorCode::InvalidArgument, "this id is not one search gave; search again for the file")
        })?;
        let mut args = json!({"path": doc.path, "root": doc.root});
        if doc.line > 1 {
            args["offset"] = doc.line.into();
        }
        if doc.char > 0 {
            args["char_offset"] = doc.char.into();
        }
        let read = via.call("fetch", "read_file", args).await?;
        let truncated = read["truncated"].as_bool().unwrap_or(false);
        let next_id = match (truncated, read["next_offset"].as_u64()) {
            (true, Some(line)) => Some(
                DocId {
                    root: doc.root.clone(),
                    line,
                    char: read["next_char_offset"].as_u64().unwrap_or(0),
                    path: doc.path.clone(),
                }
                .encode(),
            ),
            _ => None,
        };
        let root_path = match self.public_base {
            Some(_) => None,
            None => via.roots("fetch").await?.into_iter().find(|(name, _)| *name == doc.root).map(|(_, p)| p),
        };
        let mut metadata = json!({"root": doc.root, "path": doc.path, "truncated": truncated});
        for key in ["start_line", "end_line", "total_lines", "size", "encoding", "mime_type", "sha256"] {
            if let Some(v) = read.get(key).filter(|v| !v.is_null()) {
                metadata[key] = v.clone();
            }
        }
        if let Some(next) = next_id {
            metadata["next_id"] = next.into();
        }
        Ok(json!({
            "id": id,
            "title": doc.path,
            "text": read["content"].as_str().unwrap_or(""),
            "url": self.url(id, root_path.as_deref(), &doc.path),
            "metadata": metadata,
        }))
    }
}

/// The words of a query worth searching for: letters, digits and `_`, lower case, without
/// common words and one-letter words (unless nothing else is left), at most [`MAX_TERMS`].
/// Only such characters reach the glob and the regular expression, so nothing needs escaping.
fn terms(query: &str) -> Vec<String> {
    let words: Vec<String> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut kept: Vec<String> = vec![];
    for w in words.iter().filter(|w| w.chars().count() > 1 && !STOPWORDS.contains(&w.as_str())) {
        if !kept.contains(w) {
            kept.push(w.clone());
        }
    }
    if kept.is_empty() {
        kept = words.into_iter().take(1).collect();
    }
    kept.truncate(MAX_TERMS);
    kept
}

/// A glob matching a file name containing any term, in any case (`*{[cC]onfig,[lL]oader}*`
/// spelled out per letter).
fn name_glob(terms: &[String]) -> String {
    let spelled: Vec<String> = terms
        .iter()
        .map(|t| {
            t.chars()
                .map(|c| {
                    if c.is_ascii_alphabetic() {
                        format!("[{}{}]", c.to_ascii_lowercase(), c.to_ascii_uppercase())
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        })
        .collect();
    match spelled.as_slice() {
        [one] => format!("*{one}*"),
        many => format!("*{{{}}}*", many.join(",")),
    }
}

/// How well a path's name matches: 10 per term in the file name, 2 per term elsewhere in it.
fn name_score(path: &str, terms: &[String]) -> u64 {
    let lower = path.to_lowercase();
    let name = lower.rsplit('/').next().unwrap_or(&lower);
    terms
        .iter()
        .map(|t| {
            if name.contains(t.as_str()) {
                10
            } else if lower.contains(t.as_str()) {
                2
            } else {
                0
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_drop_noise() {
        assert_eq!(terms("How does the config loader work?"), ["config", "loader", "work"]);
        assert_eq!(terms("a"), ["a"]);
        assert_eq!(terms("  ...  "), Vec::<String>::new());
        assert_eq!(terms("x.rs x.RS"), ["rs"]);
        assert_eq!(terms("one two three four five six seven eight nine").len(), MAX_TERMS);
    }

    #[test]
    fn globs_match_names_in_any_case() {
        assert_eq!(name_glob(&["ab1".into()]), "*[aA][bB]1*");
        assert_eq!(name_glob(&["a".into(), "b_c".into()]), "*{[aA],[bB]_[cC]}*");
    }

    #[test]
    fn ids_round_trip_and_forgeries_decode_to_plain_requests() {
        let d = DocId { root: "proj".into(), line: 3, char: 7, path: "src/a\nb.rs".into() };
        assert_eq!(DocId::decode(&d.encode()), Some(d));
        for bad in ["", "!!", "cHJvag", &URL_SAFE_NO_PAD.encode("proj\n0\n0\na"), &URL_SAFE_NO_PAD.encode("p\n1\nx\na")]
        {
            assert_eq!(DocId::decode(bad), None, "{bad}");
        }
        // A forged id decodes to a path like any other; the fs server judges it.
        let forged = DocId::decode(&URL_SAFE_NO_PAD.encode("proj\n1\n0\n../../etc/passwd")).unwrap();
        assert_eq!(forged.path, "../../etc/passwd");
        let (inner, args) = HubTool::Fetch.gated(Some(&serde_json::from_value(json!({"id": d_id()})).unwrap()));
        assert_eq!((inner, args.get("path").and_then(Value::as_str)), ("read_file", Some("x.rs")));
    }

    fn d_id() -> String {
        DocId { root: "r".into(), line: 1, char: 0, path: "x.rs".into() }.encode()
    }

    #[test]
    fn urls() {
        let s = SearchFetch::new(Some("https://hub.example.com/mcp"));
        assert_eq!(s.url("ID", Some("/srv"), "a b"), "https://hub.example.com/fetch/ID");
        let s = SearchFetch::new(None);
        assert_eq!(s.url("ID", Some("/srv/p"), "a b.txt"), "file:///srv/p/a%20b.txt");
    }

    #[test]
    fn names_rank_above_paths() {
        let t = vec!["config".to_owned()];
        assert_eq!(name_score("src/config.rs", &t), 10);
        assert_eq!(name_score("config/mod.rs", &t), 2);
        assert_eq!(name_score("x.rs", &t), 0);
    }
}
