//! Tool search: instead of every tool's definition, `tools/list` shows two tools, `find_tools`
//! (ranked by [`crate::search`] over the tools the caller may call) and `call_tool` (which
//! calls one of them by name), plus the few tools pinned by configuration. A model then pays for
//! about 1.5 KB of definitions whatever the number of upstream tools, and looks up the rest
//! when it needs them.
//!
//! `call_tool` is unwrapped at the top of [`crate::router::Hub::call`]: scopes, approvals, the
//! journal and the metrics see the real tool, never `call_tool`. A real tool stays callable by
//! its own name with search on (a client that kept the names of an earlier list still works).
//!
//! `tool_search = "auto"` turns search on for a caller whose visible surface would be larger
//! than the budget (30 KB unless `tool_search_budget` says otherwise); it is decided at each
//! `tools/list`, so an upstream that comes up with many tools switches it on, and the usual
//! `notifications/tools/list_changed` tells clients that keep a stream open.

use std::sync::Arc;

use bastion_policy::ErrorCode;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::router::tool_error;
use crate::search::{Doc, Index};

/// The search tool's name.
pub const FIND_TOOLS: &str = "find_tools";
/// The indirect call's name.
pub const CALL_TOOL: &str = "call_tool";
/// Above this many bytes of `tools/list`, `auto` turns search on.
pub const DEFAULT_BUDGET: usize = 30_000;
/// Most tools `find_tools` returns.
const MAX_LIMIT: usize = 20;
/// Tools `find_tools` returns unless told.
const DEFAULT_LIMIT: usize = 5;

/// When the hub shows the search tools instead of the whole surface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Every tool listed, no search tools (the default).
    #[default]
    Off,
    /// The search tools and the pinned tools only.
    On,
    /// On for a caller whose visible surface passes the byte budget.
    Auto,
}

/// The tool search settings (`tool_search`, `tool_search_budget`, `pinned_tools`).
#[derive(Clone, Debug, Default)]
pub struct ToolSearch {
    /// When search is on.
    pub mode: Mode,
    /// The byte budget of `auto` (0: [`DEFAULT_BUDGET`]).
    pub budget: usize,
    /// Tools listed beside the search tools (offered names).
    pub pinned: Vec<String>,
}

impl ToolSearch {
    /// Whether `find_tools` and `call_tool` can be called at all.
    pub fn enabled(&self) -> bool {
        self.mode != Mode::Off
    }

    fn budget(&self) -> usize {
        if self.budget == 0 { DEFAULT_BUDGET } else { self.budget }
    }

    /// What `tools/list` shows a caller who may call `visible`.
    pub fn listed(&self, visible: Vec<Tool>) -> Vec<Tool> {
        let on = match self.mode {
            Mode::Off => false,
            Mode::On => true,
            Mode::Auto => surface_bytes(&visible) > self.budget(),
        };
        if !on {
            return visible;
        }
        let mut listed = meta_tools();
        listed.extend(visible.into_iter().filter(|t| self.pinned.iter().any(|p| p == t.name.as_ref())));
        listed
    }
}

/// Bytes of `{"tools": [...]}` as JSON.
pub fn surface_bytes(tools: &[Tool]) -> usize {
    serde_json::to_vec(&json!({ "tools": tools })).map(|v| v.len()).unwrap_or(usize::MAX)
}

fn schema(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(o) => Arc::new(o),
        _ => Arc::new(JsonObject::new()),
    }
}

/// `find_tools` and `call_tool` as listed.
pub fn meta_tools() -> Vec<Tool> {
    let read_only = ToolAnnotations::new().read_only(true).destructive(false).idempotent(true).open_world(false);
    let mut find = Tool::new(
        FIND_TOOLS,
        "Find the tools for a task among all this hub offers; returns their names, descriptions and input \
         schemas. Then call one with call_tool.",
        schema(json!({
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "The task in a few words, e.g. \"git commit history\"."},
                "limit": {"type": "integer", "description": "Most tools returned (default 5, at most 20)."}
            },
            "required": ["query"]
        })),
    );
    find.title = Some("Find tools".to_owned());
    find.annotations = Some(read_only);
    let mut call = Tool::new(
        CALL_TOOL,
        "Call a tool found with find_tools, by name, with its arguments.",
        schema(json!({
            "type": "object",
            "properties": {
                "name": {"type": "string", "description": "The tool's name as find_tools gave it."},
                "arguments": {"type": "object", "description": "Arguments for its input schema."}
            },
            "required": ["name"]
        })),
    );
    call.title = Some("Call tool".to_owned());
    // What it does depends on the tool it calls: the conservative hints.
    call.annotations = Some(ToolAnnotations::new().read_only(false).destructive(true).open_world(true));
    vec![find, call]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FindArgs {
    query: String,
    limit: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CallArgs {
    name: String,
    #[serde(default)]
    arguments: Option<JsonObject>,
}

/// `find_tools` over the tools the caller may call.
pub fn find(visible: &[Tool], arguments: Option<&JsonObject>) -> CallToolResult {
    let args: FindArgs = match serde_json::from_value(Value::Object(arguments.cloned().unwrap_or_default())) {
        Ok(a) => a,
        Err(e) => return tool_error(ErrorCode::InvalidArgument, &format!("find_tools: {e}")),
    };
    let limit = args.limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let index = Index::new(visible.iter().map(Doc::of_tool).collect());
    let tools: Vec<Value> = index
        .rank(&args.query, limit)
        .into_iter()
        .filter_map(|i| visible.get(i))
        .map(|t| {
            json!({
                "name": t.name,
                "description": first_sentence(t.description.as_deref().unwrap_or("")),
                "inputSchema": t.input_schema,
            })
        })
        .collect();
    let value = json!({ "tools": tools });
    let mut r = CallToolResult::success(vec![ContentBlock::text(value.to_string())]);
    r.structured_content = Some(value);
    r
}

/// The tool `call_tool` names and its arguments, or the error to answer.
pub fn unwrap_call(arguments: Option<&JsonObject>) -> Result<(String, Option<JsonObject>), CallToolResult> {
    let args: CallArgs = serde_json::from_value(Value::Object(arguments.cloned().unwrap_or_default()))
        .map_err(|e| tool_error(ErrorCode::InvalidArgument, &format!("call_tool: {e}")))?;
    if args.name == FIND_TOOLS || args.name == CALL_TOOL {
        return Err(tool_error(ErrorCode::InvalidArgument, "call_tool calls the tools find_tools finds, not itself"));
    }
    Ok((args.name, args.arguments))
}

/// The first sentence of a description (up to the first ". "), for a short answer.
fn first_sentence(text: &str) -> &str {
    match text.find(". ") {
        Some(i) => &text[..=i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, description: &str) -> Tool {
        Tool::new(name.to_owned(), description.to_owned(), schema(json!({"type": "object"})))
    }

    #[test]
    fn modes_decide_what_is_listed() {
        let big: Vec<Tool> = (0..40).map(|i| tool(&format!("ext__t{i}"), &"word ".repeat(200))).collect();
        let small = vec![tool("fs__read_file", "Read a file.")];
        let names = |tools: Vec<Tool>| tools.into_iter().map(|t| t.name.to_string()).collect::<Vec<_>>();
        let off = ToolSearch::default();
        assert_eq!(names(off.listed(small.clone())), ["fs__read_file"]);
        let on = ToolSearch { mode: Mode::On, pinned: vec!["fs__read_file".into()], ..Default::default() };
        assert_eq!(names(on.listed(small.clone())), [FIND_TOOLS, CALL_TOOL, "fs__read_file"]);
        let auto = ToolSearch { mode: Mode::Auto, ..Default::default() };
        assert_eq!(names(auto.listed(small)), ["fs__read_file"]);
        assert!(surface_bytes(&big) > DEFAULT_BUDGET);
        assert_eq!(names(auto.listed(big)), [FIND_TOOLS, CALL_TOOL]);
        assert!(surface_bytes(&meta_tools()) < 2_000, "{}", surface_bytes(&meta_tools()));
    }

    #[test]
    fn find_ranks_and_call_unwraps() {
        let visible =
            vec![tool("git__log", "The commit history. More words."), tool("fs__read_file", "Read a text file.")];
        let mut args = JsonObject::new();
        args.insert("query".into(), json!("commit history"));
        let r = find(&visible, Some(&args));
        let found = &r.structured_content.unwrap()["tools"];
        assert_eq!(found[0]["name"], "git__log");
        assert_eq!(found[0]["description"], "The commit history.");
        assert_eq!(found.as_array().map(Vec::len), Some(1));
        let mut bad = JsonObject::new();
        bad.insert("q".into(), json!("x"));
        assert_eq!(find(&visible, Some(&bad)).is_error, Some(true));

        let mut call = JsonObject::new();
        call.insert("name".into(), json!("git__log"));
        call.insert("arguments".into(), json!({"max_count": 1}));
        let (name, inner) = unwrap_call(Some(&call)).unwrap();
        assert_eq!((name.as_str(), inner.unwrap()["max_count"].clone()), ("git__log", json!(1)));
        call.insert("name".into(), json!(CALL_TOOL));
        assert!(unwrap_call(Some(&call)).is_err());
    }
}
