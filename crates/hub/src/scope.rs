//! Names and scopes: which names the hub accepts, the tier each tool is given from its
//! annotations, and whether a token's scopes allow a tool.
//!
//! The rule, in one place:
//!
//! * a tool whose `readOnlyHint` is true is `read`;
//! * otherwise, on the built-in `shell` upstream (bastion-shell), it is `exec`: every non-read tool
//!   of bastion-shell runs a program (with `--profile build-test`, project code), and its
//!   annotations alone cannot say so (exec tools carry the same hints as destructive ones);
//! * otherwise `destructiveHint: false` makes it `write`;
//! * otherwise (destructive, or hints missing) it is `destructive`.
//!
//! Missing annotations are filled conservatively before the rule runs: not read-only,
//! destructive, open-world. What a token's scopes allow is decided by
//! [`bastion_auth::scope`].

pub use bastion_auth::scope::{MAX_UPSTREAM_LEN, Scope, allowed, allowed_tool, valid_upstream_name};
use bastion_policy::Tier;
use rmcp::model::{Tool, ToolAnnotations};

/// Longest namespaced tool name.
pub const MAX_TOOL_LEN: usize = 64;
/// The separator between upstream and tool.
pub const SEPARATOR: &str = "__";

/// Whether `name` is a valid namespaced tool name: `^[a-z][a-z0-9_]{0,63}$`.
pub fn valid_tool_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= MAX_TOOL_LEN
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// The name a tool is offered under: `{upstream}__{tool}` with the tool's own name put in
/// snake case (`get-tiny-image`, `getTinyImage` and `get.tiny image` all become
/// `get_tiny_image`), since clients such as ChatGPT accept only `^[a-z][a-z0-9_]{0,63}$`. The
/// hub keeps the upstream's own name for routing. A name with any other character, or one that
/// would be longer than 64 characters, cannot be offered; the reason is returned.
pub fn namespaced(upstream: &str, tool: &str) -> Result<String, String> {
    let mut name = format!("{upstream}{SEPARATOR}");
    let mut previous_lower = false;
    for c in tool.chars() {
        match c {
            'A'..='Z' => {
                if previous_lower {
                    name.push('_');
                }
                name.push(c.to_ascii_lowercase());
                previous_lower = false;
            }
            'a'..='z' | '0'..='9' => {
                name.push(c);
                previous_lower = true;
            }
            '_' | '-' | '.' | ' ' | '/' => {
                name.push('_');
                previous_lower = false;
            }
            _ => {
                return Err(format!(
                    "{tool:?} has a character other than letters, digits, '_', '-', '.', '/' and space"
                ));
            }
        }
    }
    if name.len() > MAX_TOOL_LEN {
        return Err(format!("'{name}' is longer than {MAX_TOOL_LEN} characters"));
    }
    if !valid_tool_name(&name) {
        return Err(format!("'{name}' does not match ^[a-z][a-z0-9_]{{0,63}}$"));
    }
    Ok(name)
}

/// Longest name the hub offers unless `max_tool_name` says otherwise: Claude Code prefixes
/// every tool with `mcp__<server>__` and fails a whole session on a name past 64 characters,
/// so 48 leaves room for a server name of up to 11.
pub const DEFAULT_MAX_TOOL_NAME: usize = 48;

/// How the hub names the tools it offers: `{upstream}__{tool}`, at most `max_len` characters,
/// except where an alias names a tool outright.
#[derive(Clone, Debug)]
pub struct Naming {
    /// Longest name offered; a longer one is reported, never cut.
    pub max_len: usize,
    /// `[[alias]]` entries, each checked when the file was read.
    pub aliases: Vec<Alias>,
}

impl Default for Naming {
    fn default() -> Self {
        Naming { max_len: DEFAULT_MAX_TOOL_NAME, aliases: vec![] }
    }
}

/// One `[[alias]]`: the upstream's tool `tool` (its own name) is offered as `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alias {
    /// The upstream.
    pub upstream: String,
    /// The tool's own name on that upstream.
    pub tool: String,
    /// The name the hub offers it under (any valid tool name, with or without a prefix).
    pub name: String,
}

impl Naming {
    /// The name `upstream`'s tool `tool` is offered under, or why it cannot be.
    pub fn name_for(&self, upstream: &str, tool: &str) -> Result<String, String> {
        if let Some(a) = self.aliases.iter().find(|a| a.upstream == upstream && a.tool == tool) {
            return Ok(a.name.clone());
        }
        let name = namespaced(upstream, tool)?;
        if name.len() > self.max_len {
            return Err(format!(
                "'{name}' is longer than {} characters (max_tool_name); name it with an [[alias]] \
                 (upstream = \"{upstream}\", tool = \"{tool}\", name = \"...\")",
                self.max_len
            ));
        }
        Ok(name)
    }
}

/// Splits a namespaced name into `(upstream, tool)`.
pub fn split(name: &str) -> Option<(&str, &str)> {
    name.split_once(SEPARATOR).filter(|(u, t)| !u.is_empty() && !t.is_empty())
}

/// Fills missing hints conservatively (not read-only, destructive, open-world); present hints
/// and the title are kept.
pub fn fill_annotations(tool: &mut Tool) {
    let a = tool.annotations.get_or_insert_with(ToolAnnotations::default);
    a.read_only_hint.get_or_insert(false);
    a.destructive_hint.get_or_insert(true);
    a.open_world_hint.get_or_insert(true);
}

/// The tier of a tool (annotations already filled); `runs_programs` for an upstream whose every
/// non-read tool runs a program (see [`crate::upstream::Source::tier_of`]).
pub fn tier_of(tool: &Tool, runs_programs: bool) -> Tier {
    let a = tool.annotations.as_ref();
    let read_only = a.and_then(|a| a.read_only_hint).unwrap_or(false);
    let destructive = a.and_then(|a| a.destructive_hint).unwrap_or(true);
    if read_only {
        Tier::Read
    } else if runs_programs {
        Tier::Exec
    } else if !destructive {
        Tier::Write
    } else {
        Tier::Destructive
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::JsonObject;
    use std::sync::Arc;

    fn tool(a: Option<ToolAnnotations>) -> Tool {
        let mut t = Tool::new("t", "d", Arc::new(JsonObject::new()));
        t.annotations = a;
        t
    }

    #[test]
    fn tool_names() {
        assert_eq!(namespaced("fs", "read_file").as_deref(), Ok("fs__read_file"));
        let long = "a".repeat(61);
        assert!(namespaced("fs", &long).unwrap_err().contains("longer than 64"));
        assert!(namespaced("fs", &"a".repeat(MAX_TOOL_LEN - 4)).is_ok());
        for (given, offered) in [
            ("read-file", "fs__read_file"),
            ("Read", "fs__read"),
            ("read.file", "fs__read_file"),
            ("read file", "fs__read_file"),
            ("getTinyImage", "fs__get_tiny_image"),
            ("get-tiny-image", "fs__get_tiny_image"),
            ("HTTPGet", "fs__httpget"),
            ("v2Search", "fs__v2_search"),
            ("a/b", "fs__a_b"),
        ] {
            assert_eq!(namespaced("fs", given).as_deref(), Ok(offered), "{given}");
        }
        for bad in ["é", "read(file)", "x\u{0}", "tab\t", "a:b"] {
            assert!(namespaced("fs", bad).unwrap_err().contains("character other than"), "{bad}");
        }
        assert_eq!(split("fs__read_file"), Some(("fs", "read_file")));
        let naming = Naming {
            max_len: 20,
            aliases: vec![Alias { upstream: "docs".into(), tool: "searchAllTheDocs".into(), name: "search".into() }],
        };
        assert_eq!(naming.name_for("docs", "searchAllTheDocs").as_deref(), Ok("search"));
        assert_eq!(naming.name_for("docs", "read").as_deref(), Ok("docs__read"));
        let long = naming.name_for("docs", "read_every_page").unwrap_err();
        assert!(long.contains("longer than 20") && long.contains("[[alias]]"), "{long}");
        assert_eq!(Naming::default().max_len, 48);
        assert_eq!(split("fs__x__y"), Some(("fs", "x__y")));
        assert_eq!(split("fsread"), None);
        assert_eq!(split("__x"), None);
        assert_eq!(split("fs__"), None);
    }

    #[test]
    fn tiers_from_annotations() {
        let ann = |r: Option<bool>, d: Option<bool>| {
            let mut a = ToolAnnotations::default();
            a.read_only_hint = r;
            a.destructive_hint = d;
            Some(a)
        };
        let cases = [
            (ann(Some(true), Some(false)), false, Tier::Read),
            (ann(Some(true), Some(true)), false, Tier::Read),
            (ann(Some(false), Some(false)), false, Tier::Write),
            (ann(Some(false), Some(true)), false, Tier::Destructive),
            (ann(Some(false), None), false, Tier::Destructive),
            (ann(None, Some(false)), false, Tier::Write),
            (None, false, Tier::Destructive),
            (ann(Some(true), None), true, Tier::Read),
            (ann(Some(false), Some(true)), true, Tier::Exec),
            (ann(Some(false), Some(false)), true, Tier::Exec),
        ];
        for (a, runs_programs, want) in cases {
            let mut t = tool(a.clone());
            fill_annotations(&mut t);
            assert_eq!(tier_of(&t, runs_programs), want, "{a:?}, runs programs: {runs_programs}");
        }
    }

    #[test]
    fn missing_annotations_are_filled_conservatively() {
        let mut t = tool(None);
        fill_annotations(&mut t);
        let a = t.annotations.unwrap();
        assert_eq!((a.read_only_hint, a.destructive_hint, a.open_world_hint), (Some(false), Some(true), Some(true)));
        let mut given = ToolAnnotations::with_title("T");
        given.read_only_hint = Some(true);
        given.open_world_hint = Some(false);
        let mut t = tool(Some(given));
        fill_annotations(&mut t);
        let a = t.annotations.unwrap();
        assert_eq!(a.title.as_deref(), Some("T"));
        assert_eq!((a.read_only_hint, a.open_world_hint), (Some(true), Some(false)));
    }
}
