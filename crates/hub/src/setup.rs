//! `bastion setup CLIENT`: adds Bastion to an MCP client's own configuration file.
//!
//! Each client keeps its servers in a file at a documented place (on Linux):
//!
//! | client           | file                                          | servers live under        |
//! |------------------|-----------------------------------------------|---------------------------|
//! | `claude-desktop` | `$XDG_CONFIG_HOME/Claude/claude_desktop_config.json` | `mcpServers`       |
//! | `claude-code`    | `~/.claude.json` (user scope)                 | `mcpServers`              |
//! | `cursor`         | `~/.cursor/mcp.json` (global)                 | `mcpServers`              |
//! | `vscode`         | `$XDG_CONFIG_HOME/Code/User/mcp.json`         | `servers`                 |
//! | `codex`          | `~/.codex/config.toml`                        | `[mcp_servers.NAME]`      |
//!
//! (`$XDG_CONFIG_HOME` defaults to `~/.config`.) The file is read, the one entry named `bastion`
//! (or `--name`) is added or brought up to date, and everything else — other servers, unknown
//! fields, key order, TOML comments — is written back as it was. A changed file is first copied
//! to `FILE.bastion-backup-UNIXTIME`, then replaced atomically (same mode, symlinks followed). A
//! second run with the same flags finds nothing to change and writes nothing. `--dry-run` prints
//! the diff and writes nothing.
//!
//! Without `--hub`, the client starts `bastion serve --stdio --root DIR...` itself (every built-in
//! server, each in its own process, no token needed: the client is the parent). With `--hub URL`
//! it connects to a running hub over streamable HTTP and sends the bearer token found in an
//! environment variable (`--token-env`, default `BASTION_TOKEN`) through the client's own
//! variable syntax, so the secret never lands in the client's file.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// The clients `bastion setup` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// Claude Desktop (local servers only; a remote hub is added as a connector in its settings).
    ClaudeDesktop,
    /// Claude Code, user scope (every project).
    ClaudeCode,
    /// Cursor, global configuration.
    Cursor,
    /// Visual Studio Code, user profile.
    Vscode,
    /// OpenAI Codex (CLI, IDE extension and app share one file).
    Codex,
}

/// Flags of `bastion setup`.
#[derive(Args, Debug)]
pub struct SetupArgs {
    /// The client whose configuration to edit.
    pub client: Client,
    /// A directory the client may use through Bastion (repeatable; default: the current
    /// directory). Ignored with --hub (the hub's own configuration decides).
    #[arg(long = "root", value_name = "DIR")]
    pub roots: Vec<PathBuf>,
    /// Offer the write tools of the built-in fs and git servers (default: read-only).
    #[arg(long)]
    pub allow_write: bool,
    /// Connect to a running hub at this URL (e.g. https://host.example/mcp) instead of starting
    /// Bastion as a local stdio server.
    #[arg(long, value_name = "URL")]
    pub hub: Option<String>,
    /// With --hub: the environment variable the client reads the bearer token from.
    #[arg(long, value_name = "VAR", default_value = "BASTION_TOKEN")]
    pub token_env: String,
    /// The name of the entry in the client's configuration.
    #[arg(long, default_value = "bastion")]
    pub name: String,
    /// Edit this file instead of the client's default one (e.g. a VS Code profile's mcp.json).
    #[arg(long, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Print the change as a diff and write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// What the client should run or connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Start `command args...` as a stdio server.
    Stdio { command: String, args: Vec<String> },
    /// Connect over streamable HTTP, with the token from an environment variable.
    Http { url: String, token_env: String },
}

/// Where a client's user-level configuration lives, from `HOME` and `XDG_CONFIG_HOME`.
pub fn config_path(client: Client, home: &Path, xdg_config: Option<&Path>) -> PathBuf {
    let config = xdg_config.map(Path::to_path_buf).unwrap_or_else(|| home.join(".config"));
    match client {
        Client::ClaudeDesktop => config.join("Claude").join("claude_desktop_config.json"),
        Client::ClaudeCode => home.join(".claude.json"),
        Client::Cursor => home.join(".cursor").join("mcp.json"),
        Client::Vscode => config.join("Code").join("User").join("mcp.json"),
        Client::Codex => home.join(".codex").join("config.toml"),
    }
}

/// Runs `bastion setup`.
pub fn setup(args: SetupArgs) -> anyhow::Result<()> {
    if !is_entry_name(&args.name) {
        bail!("--name must be letters, digits, '-' or '_' (got {:?})", args.name);
    }
    let target = target(&args)?;
    let path = match &args.config_file {
        Some(p) => p.clone(),
        None => {
            let home = std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(PathBuf::from)
                .context("HOME is not set: pass --config-file")?;
            let xdg = std::env::var_os("XDG_CONFIG_HOME").filter(|x| !x.is_empty()).map(PathBuf::from);
            config_path(args.client, &home, xdg.as_deref())
        }
    };
    // A dotfiles manager often makes the file a symlink: edit what it points to, keep the link.
    let path = match std::fs::canonicalize(&path) {
        Ok(real) => real,
        Err(_) => path,
    };
    let old = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let new = merge(args.client, old.as_deref().unwrap_or(""), &args.name, &target)
        .with_context(|| format!("{} is not a configuration this command can edit", path.display()))?;
    let old_text = old.as_deref().unwrap_or("");
    let mut out = std::io::stdout().lock();
    if new == old_text {
        writeln!(out, "{}: the '{}' entry is already up to date; nothing written", path.display(), args.name)?;
        return Ok(());
    }
    let shown = path.display().to_string();
    let diff = similar::TextDiff::from_lines(old_text, new.as_str());
    let origin = if old.is_some() { shown.clone() } else { "/dev/null".to_owned() };
    write!(out, "{}", diff.unified_diff().context_radius(3).header(&origin, &shown))?;
    if args.dry_run {
        writeln!(out, "dry run: {} was not changed", path.display())?;
        return Ok(());
    }
    if let Some(text) = &old {
        let backup = backup_path(&path);
        std::fs::write(&backup, text).with_context(|| format!("writing the backup {}", backup.display()))?;
        writeln!(out, "backup of the previous file: {}", backup.display())?;
    }
    write_atomically(&path, new.as_bytes())?;
    writeln!(out, "wrote {}; restart {} to load it", path.display(), client_name(args.client))?;
    if let Target::Http { token_env, .. } = &target {
        writeln!(
            out,
            "the client sends the token from ${token_env}: create one with `bastion token create --scopes ...` \
             and export it where the client starts"
        )?;
    }
    Ok(())
}

fn client_name(client: Client) -> &'static str {
    match client {
        Client::ClaudeDesktop => "Claude Desktop",
        Client::ClaudeCode => "Claude Code",
        Client::Cursor => "Cursor",
        Client::Vscode => "VS Code",
        Client::Codex => "Codex",
    }
}

fn is_entry_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes()[0].is_ascii_digit()
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn target(args: &SetupArgs) -> anyhow::Result<Target> {
    if let Some(url) = &args.hub {
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            bail!("--hub must be an http:// or https:// URL (got {url:?})");
        }
        if !is_env_name(&args.token_env) {
            bail!("--token-env must be an environment variable name (got {:?})", args.token_env);
        }
        if args.client == Client::ClaudeDesktop {
            bail!(
                "Claude Desktop's configuration file lists local servers only: add {url} as a custom connector \
                 in Claude Desktop's Settings > Connectors, or run `bastion setup claude-desktop --root DIR` \
                 for a local Bastion"
            );
        }
        return Ok(Target::Http { url: url.clone(), token_env: args.token_env.clone() });
    }
    let exe = std::env::current_exe().context("finding the bastion binary")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let roots = if args.roots.is_empty() {
        vec![std::env::current_dir().context("reading the current directory")?]
    } else {
        args.roots.clone()
    };
    let mut argv = vec!["serve".to_owned(), "--stdio".to_owned()];
    for root in roots {
        let real = std::fs::canonicalize(&root).with_context(|| format!("--root {}", root.display()))?;
        if !real.is_dir() {
            bail!("--root {} is not a directory", root.display());
        }
        argv.push("--root".to_owned());
        argv.push(utf8(&real)?);
    }
    if args.allow_write {
        argv.push("--allow-write".to_owned());
    }
    Ok(Target::Stdio { command: utf8(&exe)?, args: argv })
}

fn utf8(path: &Path) -> anyhow::Result<String> {
    path.to_str()
        .map(str::to_owned)
        .with_context(|| format!("{} is not UTF-8: clients take JSON strings", path.display()))
}

/// The client's file with the entry `name` set to `target`: the whole new text.
fn merge(client: Client, old: &str, name: &str, target: &Target) -> anyhow::Result<String> {
    match client {
        Client::Codex => merge_toml(old, name, target),
        _ => merge_json(client, old, name, target),
    }
}

fn merge_json(client: Client, old: &str, name: &str, target: &Target) -> anyhow::Result<String> {
    let mut doc: Json = if old.trim().is_empty() {
        Json::Object(Vec::new())
    } else {
        serde_json::from_str(old).context(
            "it is not plain JSON (comments or trailing commas?): add the entry by hand or remove them first",
        )?
    };
    let Json::Object(top) = &mut doc else { bail!("its top level is not a JSON object") };
    let section = if client == Client::Vscode { "servers" } else { "mcpServers" };
    let servers = entry(top, section, || Json::Object(Vec::new()));
    let Json::Object(servers) = servers else { bail!("`{section}` is not a JSON object") };
    let server = entry(servers, name, || Json::Object(Vec::new()));
    let Json::Object(fields) = server else { bail!("`{section}.{name}` is not a JSON object") };
    let s = |v: &str| Json::String(v.to_owned());
    // Fields of the other transport would leave the entry ambiguous; anything else the user
    // added to the entry (env, disabled, timeouts) stays.
    let (set, drop): (Vec<(&str, Json)>, &[&str]) = match target {
        Target::Stdio { command, args } => {
            let mut set = Vec::new();
            if matches!(client, Client::ClaudeCode | Client::Vscode) {
                set.push(("type", s("stdio")));
            }
            set.push(("command", s(command)));
            set.push(("args", Json::Array(args.iter().map(|a| s(a)).collect())));
            (set, &["url", "headers"])
        }
        Target::Http { url, token_env } => {
            let reference = match client {
                Client::ClaudeCode => format!("Bearer ${{{token_env}}}"),
                _ => format!("Bearer ${{env:{token_env}}}"),
            };
            let mut set = Vec::new();
            if matches!(client, Client::ClaudeCode | Client::Vscode) {
                set.push(("type", s("http")));
            }
            set.push(("url", s(url)));
            set.push(("headers", Json::Object(vec![("Authorization".to_owned(), s(&reference))])));
            (set, &["command", "args"])
        }
    };
    fields.retain(|(k, _)| !drop.contains(&k.as_str()));
    for (key, value) in set {
        *entry(fields, key, || Json::Null) = value;
    }
    let mut text = serde_json::to_string_pretty(&doc).context("serialising the configuration")?;
    text.push('\n');
    // Unchanged content keeps its own formatting: compare values, not bytes.
    if !old.trim().is_empty() {
        let before: Json = serde_json::from_str(old).context("re-reading the configuration")?;
        if before == doc {
            return Ok(old.to_owned());
        }
    }
    Ok(text)
}

/// The value of `key` in an ordered object, inserted at the end with `make` when missing.
fn entry<'a>(object: &'a mut Vec<(String, Json)>, key: &str, make: impl FnOnce() -> Json) -> &'a mut Json {
    // JSON parsers keep the last of duplicate keys; so does this.
    let index = match object.iter().rposition(|(k, _)| k == key) {
        Some(i) => i,
        None => {
            object.push((key.to_owned(), make()));
            object.len() - 1
        }
    };
    &mut object[index].1
}

fn merge_toml(old: &str, name: &str, target: &Target) -> anyhow::Result<String> {
    let mut doc: toml_edit::DocumentMut = old.parse().context("it is not valid TOML")?;
    let servers = doc.entry("mcp_servers").or_insert_with(|| {
        let mut t = toml_edit::Table::new();
        // `[mcp_servers.bastion]` alone, as Codex's documentation writes it.
        t.set_implicit(true);
        toml_edit::Item::Table(t)
    });
    let Some(servers) = servers.as_table_like_mut() else { bail!("`mcp_servers` is not a table") };
    let server = servers.entry(name).or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
    let Some(fields) = server.as_table_like_mut() else { bail!("`mcp_servers.{name}` is not a table") };
    match target {
        Target::Stdio { command, args } => {
            for k in ["url", "bearer_token_env_var", "http_headers", "env_http_headers"] {
                fields.remove(k);
            }
            set_toml(fields, "command", toml_edit::Value::from(command.as_str()));
            let array: toml_edit::Array = args.iter().map(String::as_str).collect();
            set_toml(fields, "args", toml_edit::Value::Array(array));
        }
        Target::Http { url, token_env } => {
            for k in ["command", "args", "env", "cwd"] {
                fields.remove(k);
            }
            set_toml(fields, "url", toml_edit::Value::from(url.as_str()));
            set_toml(fields, "bearer_token_env_var", toml_edit::Value::from(token_env.as_str()));
        }
    }
    Ok(doc.to_string())
}

/// Sets `key` only when its value differs, so an up-to-date entry keeps its exact text.
fn set_toml(table: &mut dyn toml_edit::TableLike, key: &str, value: toml_edit::Value) {
    let same = table.get(key).and_then(toml_edit::Item::as_value).is_some_and(|v| same_value(v, &value));
    if !same {
        table.insert(key, toml_edit::Item::Value(value));
    }
}

fn same_value(a: &toml_edit::Value, b: &toml_edit::Value) -> bool {
    match (a, b) {
        (toml_edit::Value::String(x), toml_edit::Value::String(y)) => x.value() == y.value(),
        (toml_edit::Value::Array(x), toml_edit::Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_value(p, q))
        }
        _ => false,
    }
}

fn backup_path(path: &Path) -> PathBuf {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(format!(".bastion-backup-{stamp}"));
    path.with_file_name(name)
}

/// Temp file in the same directory, fsync, rename: the client never reads half a file. The
/// mode of the old file is kept (`~/.claude.json` is private); a new file is 0600.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600);
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(format!(".bastion-tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp)?;
        file.write_all(bytes)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// A JSON value whose objects keep their key order (the workspace's `serde_json` sorts keys,
/// and a user's file should come back in the order they wrote it).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Json, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        serde_json::Number::from_f64(v).map(Json::Number).ok_or_else(|| E::custom("a number JSON cannot hold"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut fields = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Json>()? {
            fields.push((k, v));
        }
        Ok(Json::Object(fields))
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (k, v) in fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdio() -> Target {
        Target::Stdio {
            command: "/usr/bin/bastion".into(),
            args: vec!["serve".into(), "--stdio".into(), "--root".into(), "/srv/p".into()],
        }
    }

    fn http() -> Target {
        Target::Http { url: "https://hub.example/mcp".into(), token_env: "BASTION_TOKEN".into() }
    }

    #[test]
    fn paths_follow_each_clients_documentation() {
        let home = Path::new("/home/u");
        let table = [
            (Client::ClaudeDesktop, "/home/u/.config/Claude/claude_desktop_config.json"),
            (Client::ClaudeCode, "/home/u/.claude.json"),
            (Client::Cursor, "/home/u/.cursor/mcp.json"),
            (Client::Vscode, "/home/u/.config/Code/User/mcp.json"),
            (Client::Codex, "/home/u/.codex/config.toml"),
        ];
        for (client, want) in table {
            assert_eq!(config_path(client, home, None), Path::new(want), "{client:?}");
        }
        let xdg = Path::new("/x");
        assert_eq!(config_path(Client::Vscode, home, Some(xdg)), Path::new("/x/Code/User/mcp.json"));
    }

    #[test]
    fn json_merge_keeps_other_entries_order_and_unknown_fields() {
        let old = r#"{"zeta": 1, "mcpServers": {"other": {"command": "x", "weird": [1, 2.5, null]}}, "alpha": {"b": 1, "a": 2}}"#;
        let new = merge(Client::Cursor, old, "bastion", &stdio()).unwrap();
        let keys: Vec<&str> = ["\"zeta\"", "\"mcpServers\"", "\"other\"", "\"bastion\"", "\"alpha\"", "\"b\"", "\"a\""]
            .into_iter()
            .collect();
        let mut at = 0;
        for k in keys {
            let found = new[at..].find(k).unwrap_or_else(|| panic!("{k} missing or out of order in {new}"));
            at += found;
        }
        assert!(new.contains("2.5"));
        // Idempotent: the second merge returns the text unchanged.
        assert_eq!(merge(Client::Cursor, &new, "bastion", &stdio()).unwrap(), new);
    }

    #[test]
    fn transport_switch_drops_the_other_transports_fields_only() {
        let old = r#"{"servers": {"bastion": {"type": "stdio", "command": "c", "args": [], "env": {"A": "1"}}}}"#;
        let new = merge(Client::Vscode, old, "bastion", &http()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&new).unwrap();
        let e = &v["servers"]["bastion"];
        assert_eq!(e["type"], "http");
        assert_eq!(e["url"], "https://hub.example/mcp");
        assert_eq!(e["headers"]["Authorization"], "Bearer ${env:BASTION_TOKEN}");
        assert_eq!(e["env"]["A"], "1");
        assert!(e.get("command").is_none() && e.get("args").is_none());
    }

    #[test]
    fn claude_code_uses_its_own_variable_syntax() {
        let new = merge(Client::ClaudeCode, "", "bastion", &http()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&new).unwrap();
        assert_eq!(v["mcpServers"]["bastion"]["headers"]["Authorization"], "Bearer ${BASTION_TOKEN}");
    }

    #[test]
    fn unparsable_files_are_refused() {
        for (client, text) in [
            (Client::Vscode, "{ // comment\n \"servers\": {} }"),
            (Client::Cursor, "[1]"),
            (Client::Cursor, r#"{"mcpServers": []}"#),
            (Client::Codex, "mcp_servers = 3"),
            (Client::Codex, "[broken"),
        ] {
            assert!(merge(client, text, "bastion", &stdio()).is_err(), "{client:?} {text}");
        }
    }

    #[test]
    fn toml_merge_keeps_comments_and_is_idempotent() {
        let old = "# my settings\nmodel = \"o3\" # inline\n\n[mcp_servers.other]\ncommand = \"x\"\n";
        let new = merge(Client::Codex, old, "bastion", &stdio()).unwrap();
        assert!(new.starts_with(old), "{new}");
        assert!(new.contains("[mcp_servers.bastion]"), "{new}");
        assert!(!new.contains("[mcp_servers]\n"), "{new}");
        assert_eq!(merge(Client::Codex, &new, "bastion", &stdio()).unwrap(), new);
        let remote = merge(Client::Codex, &new, "bastion", &http()).unwrap();
        let parsed: toml::Table = remote.parse().unwrap();
        let e = &parsed["mcp_servers"]["bastion"];
        assert_eq!(e["url"].as_str(), Some("https://hub.example/mcp"));
        assert_eq!(e["bearer_token_env_var"].as_str(), Some("BASTION_TOKEN"));
        assert!(e.get("command").is_none());
    }
}
