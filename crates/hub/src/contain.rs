//! Third-party stdio upstreams, contained: a scrubbed environment and, unless the configuration
//! says `sandbox = false`, the kernel sandbox shell commands run in (`bastion-sandbox`).
//!
//! * **Environment.** The child gets [`ENV_ALLOWLIST`] from the hub's environment, the variables
//!   its `pass_env` names, and its `env` entries; nothing else (not the hub's `BASTION_*`
//!   settings, other upstreams' tokens, cloud credentials or `SSH_AUTH_SOCK`). Contained, its
//!   `HOME` and `TMPDIR` are its scratch directory, so package runners (`npx`, `uvx`) cache there.
//! * **Files.** Readable: the system directories of the sandbox, the program's install directory
//!   (the one holding it, or the one above a `bin`), its interpreter's, the package tree of a
//!   file named in its arguments, and `sandbox.read`. Writable: its scratch directory
//!   `<state dir>/upstreams/<name>` and `sandbox.write`. Bastion's own files (state directory,
//!   configuration, journal) are cut out of every grant, whatever the configuration says.
//! * **Network.** On by default (`sandbox.network = true`: a third-party server is most often
//!   a client of some web API, and package runners fetch at start): any IPv4/IPv6 TCP and UDP.
//!   With `network = false`, no socket at all. UNIX, netlink and raw sockets are always denied
//!   (the SSH agent, a container daemon, the hub's control socket).
//! * **The rest** is the shell's: seccomp, user/pid/mount namespaces (a private `/proc`),
//!   no-new-privileges, no capabilities, and death with the hub.
//!
//! Where Landlock is unavailable a contained upstream does not start (its status says why);
//! `sandbox = false` runs it uncontained, with a warning at start.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The variables of the hub's environment every third-party child gets (when set).
pub const ENV_ALLOWLIST: &[&str] =
    &["PATH", "HOME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", "TZ", "USER", "LOGNAME"];

/// The `sandbox` key of an `[[upstream]]`: `false`, `true` or a table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SandboxSetting {
    /// `sandbox = true` (the default) or `sandbox = false` (uncontained, warned about).
    Switch(bool),
    /// `sandbox = { read = [...], write = [...], network = false }`: contained, with these grants.
    Grants(SandboxGrants),
}

impl Default for SandboxSetting {
    fn default() -> Self {
        SandboxSetting::Switch(true)
    }
}

impl SandboxSetting {
    /// The grants, or `None` when the upstream runs uncontained.
    pub fn grants(&self) -> Option<SandboxGrants> {
        match self {
            SandboxSetting::Switch(false) => None,
            SandboxSetting::Switch(true) => Some(SandboxGrants::default()),
            SandboxSetting::Grants(g) => Some(g.clone()),
        }
    }
}

/// What a contained upstream may use besides its defaults.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SandboxGrants {
    /// Also readable (and executable) beneath these.
    #[serde(default)]
    pub read: Vec<PathBuf>,
    /// Also writable beneath these.
    #[serde(default)]
    pub write: Vec<PathBuf>,
    /// IPv4/IPv6 traffic allowed (default: yes).
    #[serde(default = "yes")]
    pub network: bool,
}

impl Default for SandboxGrants {
    fn default() -> Self {
        SandboxGrants { read: vec![], write: vec![], network: true }
    }
}

fn yes() -> bool {
    true
}

/// How a contained upstream is started, resolved from the settings.
#[derive(Clone, Debug)]
pub struct Containment {
    /// This binary: the trampoline (`bastion __sandbox-exec SPEC`).
    pub trampoline: PathBuf,
    /// Its own writable directory, `<state dir>/upstreams/<name>`: working directory, `HOME`
    /// and `TMPDIR`.
    pub scratch: PathBuf,
    /// The configured grants (absolute).
    pub grants: SandboxGrants,
    /// Bastion's own files, cut out of every grant.
    pub protect: Vec<PathBuf>,
}

/// The environment of a third-party child: the allowlist from `hub` (the hub's environment),
/// the variables `pass_env` names, then `env`. Contained (`scratch`), `HOME` and `TMPDIR` are
/// the scratch directory. A name in `pass_env` that is unset is left out.
pub fn environment(
    hub: impl IntoIterator<Item = (OsString, OsString)>,
    pass_env: &[String],
    env: &BTreeMap<String, String>,
    scratch: Option<&Path>,
) -> Vec<(String, String)> {
    let mut out: BTreeMap<String, String> = hub
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| ENV_ALLOWLIST.contains(&k.as_str()) || pass_env.contains(k))
        .collect();
    if let Some(dir) = scratch {
        out.insert("HOME".into(), dir.to_string_lossy().into_owned());
        out.insert("TMPDIR".into(), dir.join("tmp").to_string_lossy().into_owned());
    }
    out.extend(env.iter().map(|(k, v)| (k.clone(), v.clone())));
    out.into_iter().collect()
}

/// Why `pass_env` may not name `name`, if it may not: the hub's own `BASTION_*` settings and
/// secrets never reach a third-party server, even asked for.
pub fn refused_pass_env(name: &str) -> Option<&'static str> {
    if name.to_ascii_uppercase().starts_with("BASTION_") {
        Some("the hub's own BASTION_* variables are never passed to an upstream")
    } else if name.is_empty() || name.contains('=') {
        Some("not a variable name")
    } else {
        None
    }
}

/// `program` as the child would run it with `path` (its `PATH`): a path if it has a `/`, else
/// the first executable match.
pub fn find_program(program: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let executable = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
    if program.contains('/') {
        let p = std::path::absolute(program).ok()?;
        return executable(&p).then_some(p);
    }
    std::env::split_paths(path?).map(|d| d.join(program)).find(|p| executable(p))
}

/// Where a program is installed: its directory, or the one above when that is a `bin`/`sbin`
/// (a virtual environment, `~/.local`, a Node or Python prefix). `None` for the root itself.
fn install_dir(program: &Path) -> Option<PathBuf> {
    let dir = program.parent()?;
    let dir = if matches!(dir.file_name().and_then(|n| n.to_str()), Some("bin" | "sbin" | "shims")) {
        dir.parent()?
    } else {
        dir
    };
    (dir != Path::new("/")).then(|| dir.to_path_buf())
}

/// The interpreter of a `#!` script (through `/usr/bin/env NAME` too), if any.
fn interpreter(program: &Path, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(program).and_then(|mut f| f.read(&mut head)).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = String::from_utf8_lossy(line.split(|b| *b == b'\n').next()?).into_owned();
    let mut words = line.split_whitespace();
    let first = words.next()?;
    if Path::new(first).file_name().is_some_and(|n| n == "env") {
        let name = words.find(|w| !w.starts_with('-'))?;
        find_program(name, path)
    } else {
        Some(PathBuf::from(first))
    }
}

/// What a file named in the arguments needs readable: the outermost `node_modules` tree it is
/// in (a package imports its dependencies from there), else its directory — unless that is
/// `/`, the home directory or above it (then the file alone).
fn argument_grant(file: &Path, home: Option<&Path>) -> PathBuf {
    let mut acc = PathBuf::new();
    for c in file.components() {
        acc.push(c);
        if c.as_os_str() == "node_modules" {
            return acc;
        }
    }
    match file.parent() {
        Some(dir) if dir != Path::new("/") && !home.is_some_and(|h| h.starts_with(dir)) => dir.to_path_buf(),
        _ => file.to_path_buf(),
    }
}

/// `grant` with every protected path cut out: a grant beneath a protected path is dropped; a
/// grant above one is replaced by its entries that hold none, recursing along the way to it
/// (entries created later in those directories are then not granted: less, never more).
pub fn subtract(grant: &Path, protect: &[PathBuf]) -> Vec<PathBuf> {
    if protect.iter().any(|p| grant.starts_with(p)) {
        return vec![];
    }
    if !protect.iter().any(|p| p.starts_with(grant)) {
        return vec![grant.to_path_buf()];
    }
    let Ok(entries) = std::fs::read_dir(grant) else { return vec![] };
    let mut out = vec![];
    for e in entries.flatten() {
        out.extend(subtract(&e.path(), protect));
    }
    out
}

/// Both the path and its real path (a symlinked install resolves elsewhere).
fn with_real(p: PathBuf) -> Vec<PathBuf> {
    match p.canonicalize() {
        Ok(real) if real != p => vec![p, real],
        _ => vec![p],
    }
}

/// The sandbox specification of a contained upstream.
pub fn spec(
    c: &Containment,
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> std::io::Result<bastion_sandbox::Spec> {
    use std::os::unix::fs::DirBuilderExt;
    let not_found = || std::io::Error::new(std::io::ErrorKind::NotFound, format!("program '{program}' not found"));
    let path = env.iter().find(|(k, _)| k == "PATH").map(|(_, v)| std::ffi::OsStr::new(v.as_str()));
    // Run by the path found, not its real path: a virtualenv's `bin/python` is a link to the
    // system interpreter, and finds its environment from the path it was started by.
    let exe = find_program(program, path).ok_or_else(not_found)?;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(c.scratch.join("tmp"))?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let mut read: Vec<PathBuf> = vec![];
    for p in [Some(exe.clone()), interpreter(&exe, path)].into_iter().flatten().flat_map(with_real) {
        read.push(p.clone());
        read.extend(install_dir(&p).into_iter().flat_map(with_real));
    }
    for a in args {
        let p = Path::new(a);
        if p.is_absolute() && p.is_file() {
            // A linked entry point imports its package's files from where it really lies.
            for f in with_real(p.to_path_buf()) {
                read.extend(with_real(argument_grant(&f, home.as_deref())));
            }
        }
    }
    read.extend(c.grants.read.iter().cloned());
    let cut = |grants: Vec<PathBuf>| -> Vec<PathBuf> {
        let mut out: Vec<PathBuf> = grants.iter().flat_map(|g| subtract(g, &c.protect)).collect();
        out.sort();
        out.dedup();
        out
    };
    // Its scratch directory lies in the state directory on purpose (the one part of it the
    // upstream may use): granted after the cut.
    let mut write = cut(c.grants.write.clone());
    write.push(c.scratch.clone());
    Ok(bastion_sandbox::Spec {
        program: exe,
        argv0: program.to_owned(),
        args: args.to_vec(),
        cwd: c.scratch.clone(),
        env: env.to_vec(),
        read_paths: cut(read),
        write_paths: write,
        network: c.grants.network,
        landlock: true,
        seccomp: true,
        namespaces: true,
        // A server lives as long as the hub: no CPU-time limit, and no address-space limit
        // (JavaScript and JVM runtimes reserve far more than they use).
        rlimits: bastion_policy::commands::RlimitConfig {
            cpu_seconds: u64::MAX,
            address_space_mib: 0,
            ..Default::default()
        },
        parent_pid: std::process::id() as i32,
        ..Default::default()
    })
}

/// The command that starts a contained upstream: the trampoline with its specification. Fails
/// when Landlock cannot confine files here (the upstream is then reported failed, never started
/// uncontained).
pub async fn command(
    c: &Containment,
    program: &str,
    args: &[String],
    env: &[(String, String)],
) -> anyhow::Result<tokio::process::Command> {
    let status = bastion_sandbox::probe(&c.trampoline, true).await;
    let status = if status.userns { status } else { bastion_sandbox::probe(&c.trampoline, false).await };
    if !status.landlock_active() {
        anyhow::bail!(
            "the sandbox cannot confine files on this host ({}); set `sandbox = false` on this upstream to run it uncontained",
            status.notes.join("; ")
        );
    }
    let spec = spec(c, program, args, env)?;
    Ok(bastion_sandbox::trampoline(&c.trampoline, &spec)?)
}

/// What `bastion check-config` says about a command upstream: code fetched at start, unpinned
/// versions, inline code, and running uncontained.
pub fn warnings(name: &str, command: &str, args: &[String], contained: bool) -> Vec<String> {
    let mut out = vec![];
    let mut say = |m: String| out.push(format!("upstream '{name}': {m}"));
    let base = Path::new(command).file_name().and_then(|n| n.to_str()).unwrap_or(command);
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let first_operand = |skip: &[&str]| words.iter().copied().find(|w| !w.starts_with('-') && !skip.contains(w));
    let fetcher = match base {
        "npx" | "pnpx" | "bunx" => Some(("npm", first_operand(&[]))),
        "uvx" => Some(("PyPI", first_operand(&[]))),
        "pipx" if words.first() == Some(&"run") => {
            Some(("PyPI", words.iter().copied().skip(1).find(|w| !w.starts_with('-'))))
        }
        "uv" if words.starts_with(&["tool", "run"]) => {
            Some(("PyPI", words.iter().copied().skip(2).find(|w| !w.starts_with('-'))))
        }
        "pnpm" | "yarn" if words.first() == Some(&"dlx") => {
            Some(("npm", words.iter().copied().skip(1).find(|w| !w.starts_with('-'))))
        }
        _ => None,
    };
    if let Some((registry, package)) = fetcher {
        let package = package.unwrap_or("?");
        say(format!(
            "`{base}` fetches {package} from {registry} and runs it at every start; install it once and run the installed entry point"
        ));
        if !pinned(registry, package) {
            say(format!("{package} is not pinned to a version (write {package}@VERSION or =={{version}})"));
        }
        if words.iter().any(|w| matches!(*w, "-y" | "--yes")) {
            say("`-y` installs without asking".into());
        }
    }
    if matches!(base, "docker" | "podman") && words.first() == Some(&"run") {
        let image = words.iter().copied().skip(1).find(|w| !w.starts_with('-'));
        match image {
            Some(i) if i.contains("@sha256:") => {}
            Some(i) => say(format!("image {i} is not pinned by digest (image@sha256:...)")),
            None => say("`docker run` without an image".into()),
        }
        if contained {
            say("the container daemon's socket is out of the sandbox's reach: this upstream needs `sandbox = false`"
                .into());
        }
    }
    let inline = match base.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.') {
        "python" | "perl" | "ruby" | "sh" | "bash" | "dash" | "zsh" => {
            words.iter().any(|w| matches!(*w, "-c" | "-e" | "-E"))
        }
        "node" | "bun" | "deno" => words.iter().any(|w| matches!(*w, "-e" | "--eval" | "-p" | "--print" | "eval")),
        _ => false,
    };
    if inline {
        say(format!("`{base}` runs inline code from its arguments"));
    }
    if !contained {
        say("runs uncontained (`sandbox = false`): it sees the hub's files and network".into());
    }
    out
}

/// Whether a package argument names an exact version.
fn pinned(registry: &str, package: &str) -> bool {
    if registry == "PyPI" {
        return package.contains("==") || package.contains('@');
    }
    // `@scope/name@1.2.3` or `name@1.2.3`: a version after the name, with a digit first.
    let name_end = match package.strip_prefix('@') {
        Some(scoped) => scoped.find('@').map(|i| i + 1),
        None => package.find('@'),
    };
    name_end.is_some_and(|i| package[i + 1..].starts_with(|c: char| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(k: &str, v: &str) -> (OsString, OsString) {
        (k.into(), v.into())
    }

    #[test]
    fn the_environment_is_an_allowlist() {
        let hub = vec![
            os("PATH", "/usr/bin"),
            os("HOME", "/home/me"),
            os("BASTION_OWNER_SECRET", "s"),
            os("AWS_SECRET_ACCESS_KEY", "k"),
            os("SSH_AUTH_SOCK", "/tmp/agent"),
            os("GITHUB_TOKEN", "ghp_x"),
            os("LD_PRELOAD", "/tmp/x.so"),
        ];
        let env = BTreeMap::from([("DOCS".to_owned(), "1".to_owned())]);
        let got = environment(hub.clone(), &["GITHUB_TOKEN".into(), "UNSET".into()], &env, None);
        let names: Vec<&str> = got.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["DOCS", "GITHUB_TOKEN", "HOME", "PATH"]);
        let contained = environment(hub, &[], &env, Some(Path::new("/s/upstreams/x")));
        assert!(contained.contains(&("HOME".into(), "/s/upstreams/x".into())));
        assert!(contained.contains(&("TMPDIR".into(), "/s/upstreams/x/tmp".into())));
        assert!(!contained.iter().any(|(k, _)| k == "GITHUB_TOKEN" || k.starts_with("BASTION")));
        assert!(refused_pass_env("BASTION_STATE_DIR").is_some() && refused_pass_env("bastion_x").is_some());
        assert!(refused_pass_env("GITHUB_TOKEN").is_none());
    }

    #[test]
    fn protected_paths_are_cut_out_of_grants() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        for d in [".local/bin", ".local/share/uv", ".local/state/bastion/upstreams/x", ".ssh"] {
            std::fs::create_dir_all(home.join(d)).unwrap();
        }
        let state = home.join(".local/state/bastion");
        let mut got = subtract(&home.join(".local"), std::slice::from_ref(&state));
        got.sort();
        assert_eq!(got, [home.join(".local/bin"), home.join(".local/share")]);
        assert!(subtract(&state.join("upstreams/x"), std::slice::from_ref(&state)).is_empty());
        assert_eq!(subtract(&home.join(".ssh"), std::slice::from_ref(&state)), [home.join(".ssh")]);
    }

    #[test]
    fn the_spec_grants_the_scratch_directory_and_never_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let state = base.join("state");
        for d in ["state/upstreams", "data", "out"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        let c = Containment {
            trampoline: PathBuf::from("/proc/self/exe"),
            scratch: state.join("upstreams/u"),
            grants: SandboxGrants {
                read: vec![base.clone()],
                write: vec![base.join("out"), state.clone()],
                network: false,
            },
            protect: vec![state.clone()],
        };
        let env = environment(std::env::vars_os(), &[], &BTreeMap::new(), Some(&c.scratch));
        let spec = spec(&c, "sh", &["-c".into(), "true".into()], &env).unwrap();
        assert!(c.scratch.join("tmp").is_dir(), "the scratch directory is made");
        assert_eq!(spec.write_paths, [base.join("out"), c.scratch.clone()]);
        assert!(spec.read_paths.contains(&base.join("data")) && spec.read_paths.contains(&base.join("out")));
        assert!(!spec.read_paths.iter().any(|p| p.starts_with(&state) || p == &base), "{:?}", spec.read_paths);
        assert!(!spec.network && spec.landlock && spec.seccomp && spec.namespaces);
        assert_eq!((spec.cwd.clone(), spec.argv0.as_str()), (c.scratch.clone(), "sh"));
        assert!(spec.program.is_absolute());
    }

    #[test]
    fn grants_follow_the_install() {
        assert_eq!(install_dir(Path::new("/opt/venv/bin/server")), Some(PathBuf::from("/opt/venv")));
        assert_eq!(install_dir(Path::new("/srv/tool/server")), Some(PathBuf::from("/srv/tool")));
        assert_eq!(install_dir(Path::new("/bin/sh")), None);
        let js = Path::new("/c/npm/node_modules/@m/server-everything/dist/index.js");
        assert_eq!(argument_grant(js, None), PathBuf::from("/c/npm/node_modules"));
        assert_eq!(argument_grant(Path::new("/srv/a/x.py"), None), PathBuf::from("/srv/a"));
        assert_eq!(
            argument_grant(Path::new("/home/me/x.py"), Some(Path::new("/home/me"))),
            PathBuf::from("/home/me/x.py")
        );
    }

    #[test]
    fn check_config_names_fetched_unpinned_and_inline_code() {
        let w = |c: &str, a: &[&str], contained: bool| {
            warnings("u", c, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>(), contained).join("\n")
        };
        let npx = w("npx", &["-y", "@modelcontextprotocol/server-everything"], true);
        assert!(npx.contains("fetches") && npx.contains("not pinned") && npx.contains("-y"), "{npx}");
        let pinned = w("npx", &["-y", "@modelcontextprotocol/server-everything@2026.8.31"], true);
        assert!(pinned.contains("fetches") && !pinned.contains("not pinned"), "{pinned}");
        assert!(w("uvx", &["mcp-server-fetch"], true).contains("not pinned"));
        assert!(!w("uvx", &["mcp-server-fetch==1.0"], true).contains("not pinned"));
        assert!(w("pipx", &["run", "srv"], true).contains("fetches"));
        assert!(w("bunx", &["srv@latest"], true).contains("not pinned"));
        let docker = w("docker", &["run", "-i", "--rm", "mcp/fetch"], true);
        assert!(docker.contains("digest") && docker.contains("sandbox = false"), "{docker}");
        assert!(!w("docker", &["run", "-i", "mcp/fetch@sha256:abc"], false).contains("digest"));
        assert!(w("python3", &["-c", "import os"], true).contains("inline code"));
        assert!(w("/usr/bin/node", &["-e", "1"], true).contains("inline code"));
        assert!(w("bash", &["-c", "x"], true).contains("inline code"));
        assert!(w("srv", &[], false).contains("uncontained"));
        assert_eq!(w("/usr/bin/docs-mcp", &["--stdio"], true), "");
    }
}
