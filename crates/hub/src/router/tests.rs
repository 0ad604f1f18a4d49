use super::*;
use crate::upstream::Builtin;
use rmcp::model::ToolAnnotations;
use serde_json::json;

fn tool(name: &str, read_only: Option<bool>) -> Tool {
    let mut t = Tool::new(name.to_owned(), "d", Arc::new(JsonObject::new()));
    t.title = Some(format!("T {name}"));
    if let Some(r) = read_only {
        let mut a = ToolAnnotations::with_title("A");
        a.read_only_hint = Some(r);
        a.destructive_hint = Some(false);
        t.annotations = Some(a);
    }
    t
}

#[test]
fn merge_prefixes_fills_and_reports() {
    let fs = [tool("read_file", Some(true)), tool("write_file", Some(false)), tool("read_file", Some(true))];
    let ext = [
        tool("search", None),
        tool("Bad(Name)", Some(true)),
        tool("get-sum", Some(true)),
        tool("get_sum", Some(true)),
        tool(&"x".repeat(70), Some(true)),
        tool("run", Some(false)),
    ];
    let sh = [tool("run_command", Some(false))];
    let builtin = |server| Source::Builtin { server, program: "bastion".into(), args: vec![] };
    let (fs_source, shell_source) = (builtin(Builtin::Fs), builtin(Builtin::Shell));
    let ext_source = Source::Command { program: "ext".into(), args: vec![], env: vec![], sandbox: None };
    let cat = merge(
        [(0, "fs", &fs_source, &fs[..]), (1, "ext", &ext_source, &ext[..]), (2, "shell", &shell_source, &sh[..])]
            .into_iter(),
        &scope::Naming { max_len: scope::MAX_TOOL_LEN, aliases: vec![] },
    );
    let got: Vec<_> = cat.entries.iter().map(|e| (e.tool.name.to_string(), e.upstream, e.tier)).collect();
    assert_eq!(
        got,
        [
            ("fs__read_file".to_owned(), 0, Tier::Read),
            ("fs__write_file".to_owned(), 0, Tier::Write),
            ("ext__search".to_owned(), 1, Tier::Destructive),
            ("ext__get_sum".to_owned(), 1, Tier::Read),
            ("ext__run".to_owned(), 1, Tier::Write),
            ("shell__run_command".to_owned(), 2, Tier::Exec),
        ]
    );
    // Titles, descriptions and schemas pass through; missing hints are filled.
    let search = &cat.entries[2].tool;
    assert_eq!(search.title.as_deref(), Some("T search"));
    let a = search.annotations.as_ref().unwrap();
    assert_eq!((a.read_only_hint, a.destructive_hint, a.open_world_hint), (Some(false), Some(true), Some(true)));
    // A tool that does not declare destructiveHint is destructive for scopes, but the
    // default approval rules see it as a write (only declared deletions ask by default).
    assert_eq!((cat.entries[2].tier, cat.entries[2].approval_tier), (Tier::Destructive, Tier::Write));
    assert_eq!(cat.entries[1].approval_tier, Tier::Write);
    // The upstream's own name is kept for routing.
    assert_eq!(cat.entries[3].inner, "get-sum");
    assert_eq!(cat.problems.len(), 4, "{:?}", cat.problems);
    assert!(cat.problems[0].contains("listed twice"));
    assert!(cat.problems[1].contains("Bad(Name)") && cat.problems[1].contains("character other than"));
    assert!(cat.problems[2].contains("'get_sum'") && cat.problems[2].contains("listed twice"));
    assert!(cat.problems[3].contains("longer than 64"));
}

#[test]
fn long_names_are_reported_unless_aliased() {
    let long = "fetch_the_documentation_page_with_every_section_expanded";
    let ext = [tool(long, Some(true)), tool("x", Some(true)), tool("lookup", Some(true))];
    let source = Source::Command { program: "ext".into(), args: vec![], env: vec![], sandbox: None };
    let alias = |tool: &str, name: &str| scope::Alias { upstream: "ext".into(), tool: tool.into(), name: name.into() };
    // Without an alias: reported, not offered, and never cut.
    let cat = merge([(0, "ext", &source, &ext[..])].into_iter(), &scope::Naming::default());
    let names: Vec<_> = cat.entries.iter().map(|e| e.tool.name.to_string()).collect();
    assert_eq!(names, ["ext__x", "ext__lookup"]);
    assert_eq!(cat.problems.len(), 1, "{:?}", cat.problems);
    assert!(cat.problems[0].contains("longer than 48") && cat.problems[0].contains("[[alias]]"), "{:?}", cat.problems);
    // With aliases: offered under them, routed by the upstream's own name; an alias that
    // names no tool, and one that takes a name already offered, are reported.
    let naming = scope::Naming {
        aliases: vec![
            alias(long, "ext__fetch_page"),
            alias("lookup", "search"),
            alias("gone", "g"),
            alias("x", "search"),
        ],
        ..Default::default()
    };
    let cat = merge([(0, "ext", &source, &ext[..])].into_iter(), &naming);
    let got: Vec<_> = cat.entries.iter().map(|e| (e.tool.name.to_string(), e.inner.clone())).collect();
    assert_eq!(got, [("ext__fetch_page".to_owned(), long.to_owned()), ("search".to_owned(), "x".to_owned())]);
    assert_eq!(cat.problems.len(), 2, "{:?}", cat.problems);
    assert!(cat.problems[0].contains("names no tool 'gone'"));
    assert!(cat.problems[1].contains("'search' is listed twice"));
}

#[test]
fn tool_errors_have_the_bastion_shape() {
    let r = tool_error(ErrorCode::UpstreamUnavailable, "gone");
    assert_eq!(r.is_error, Some(true));
    assert_eq!(r.structured_content, Some(json!({"code": "upstream_unavailable", "message": "gone"})));
}
