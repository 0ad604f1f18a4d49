use super::*;
use clap::Parser;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    serve: ServeArgs,
}

fn settings(argv: &[&str]) -> Result<HubSettings, Problems> {
    let flags = Flags::try_parse_from(std::iter::once("bastion").chain(argv.iter().copied())).unwrap();
    HubSettings::from_serve_args(&flags.serve)
}

#[test]
fn profiles_get_their_own_upstreams_and_roots() {
    let dir = tempfile::tempdir().unwrap();
    let (root, web) = (dir.path().join("proj"), dir.path().join("web"));
    std::fs::create_dir(&root).unwrap();
    std::fs::create_dir(&web).unwrap();
    let state = dir.path().join("state");
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!("[profile.web]\nroots = [{:?}]\nupstreams = [\"fs\"]\ntool_search = \"on\"\n[profile.all]\n", web),
    )
    .unwrap();
    let (root_s, state_s, file_s) = (root.to_str().unwrap(), state.to_str().unwrap(), file.to_str().unwrap());
    let s = settings(&["--config", file_s, "--root", root_s, "--state-dir", state_s]).unwrap();
    let got: Vec<_> = s.profiles.iter().map(|p| (p.name.as_str(), p.upstreams.len(), p.roots.clone())).collect();
    assert_eq!(got, [("all", 3, vec![root.clone()]), ("web", 1, vec![web.clone()])]);
    let Source::Builtin { args, .. } = &s.profiles[1].upstreams[0].source else { panic!() };
    let at = args.iter().position(|a| a == "--root").unwrap();
    assert_eq!(Path::new(&args[at + 1]), web.canonicalize().unwrap());
    assert!(s.profiles[1].tool_search.enabled() && !s.tool_search.enabled());
    assert_eq!(s.upstreams.len(), 3, "the hub's own surface is unchanged");
    // --stdio --profile serves that profile alone; an unknown one is a problem.
    let s = settings(&["--config", file_s, "--root", root_s, "--state-dir", state_s, "--stdio", "--profile", "web"])
        .unwrap();
    assert!(s.profiles.is_empty() && s.upstreams.len() == 1 && s.roots == [web.clone()]);
    assert_eq!(s.profile.as_ref().map(|p| p.0.as_str()), Some("web"));
    let e = settings(&["--config", file_s, "--state-dir", state_s, "--stdio", "--profile", "nope"]).err().unwrap();
    assert_eq!(e.errors[0].code(), "unknown_profile");
    assert!(e.to_string().contains("--profile nope: the configuration has no [profile.nope]"), "{e}");
    // Over HTTP --profile is refused by the flags (every profile is served at /mcp/NAME).
    assert!(Flags::try_parse_from(["bastion", "--profile", "web"]).is_err());
    // check-config names the profiles and checks their roots.
    let summary = HubSettings::check_file(&file).unwrap();
    assert!(summary.contains("profile web: /mcp/web; upstreams: fs"), "{summary}");
    std::fs::write(&file, "[profile.web]\nroots = [\"/no/such/dir\"]\n").unwrap();
    let e = HubSettings::check_file(&file).unwrap_err().to_string();
    assert!(e.contains("/no/such/dir"), "{e}");
}

#[test]
fn the_host_builtin_runs_only_when_listed_without_roots() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("proj");
    std::fs::create_dir(&root).unwrap();
    let state = dir.path().join("state");
    let (root, state) = (root.to_str().unwrap(), state.to_str().unwrap());
    let defaults = settings(&["--root", root, "--state-dir", state]).unwrap();
    assert!(defaults.upstreams.iter().all(|u| u.name != "host"), "never started by default");
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        format!(
            "roots = [\"{root}\"]\n[[upstream]]\nname = \"host\"\nbuiltin = \"host\"\nargs = [\"--allow-operate\"]\n"
        ),
    )
    .unwrap();
    let s = settings(&["--config", file.to_str().unwrap(), "--state-dir", state, "--allow-write"]).unwrap();
    let [u] = s.upstreams.as_slice() else { panic!("{:?}", s.upstreams) };
    assert!(u.source.runs_programs(), "its operate tier is exec");
    assert_eq!(u.source.kind(), "host");
    let Source::Builtin { server: Builtin::Host, args, .. } = &u.source else { panic!("{u:?}") };
    assert!(!args.iter().any(|a| a == "--root" || a == "--allow-write"), "{args:?}");
    assert!(args.iter().any(|a| a == "--no-approvals"), "{args:?}");
    let at = args.iter().position(|a| a == "--state-dir").unwrap();
    assert_eq!(args[at + 1], state);
    assert_eq!(args.last().map(String::as_str), Some("--allow-operate"));
}

#[test]
fn flags_win_over_the_file_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let root = dir.path().to_str().unwrap();
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:9001\"\nstateful = true\ncall_timeout = \"90s\"\nroots = [\"{root}\"]\n\
             [[upstream]]\nname = \"files\"\nbuiltin = \"fs\"\n\
             [[upstream]]\nname = \"run\"\nbuiltin = \"shell\"\n\
             [[upstream]]\nname = \"docs\"\ncommand = \"docs-mcp\"\nenv = {{ A = \"1\" }}\n\
             [[upstream]]\nname = \"far\"\nurl = \"https://far.example/mcp\"\nping_interval = \"2s\"\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let s = settings(&["--config", file, "--state-dir", root, "--listen", "127.0.0.1:9002"]).unwrap();
    let Transport::Http(http) = &s.transport else { panic!("not http") };
    assert_eq!(http.listen.port(), 9002, "the flag wins");
    assert!(http.stateful, "the file's, no flag");
    assert!(matches!(http.auth, AuthSettings::Tokens));
    assert_eq!(s.call_timeout, Duration::from_secs(90));
    let names: Vec<_> = s.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["files", "run", "docs", "far"]);
    // The source decides the exec tier, not a name.
    let runs: Vec<_> = s.upstreams.iter().map(|u| u.source.runs_programs()).collect();
    assert_eq!(runs, [false, true, false, false]);
    match &s.upstreams[0].source {
        Source::Builtin { server: Builtin::Fs, args, .. } => assert_eq!(args[0], "--root"),
        other => panic!("{other:?}"),
    }
    match &s.upstreams[2].source {
        Source::Command { program, env, sandbox, .. } => {
            assert_eq!(program, Path::new("docs-mcp"));
            assert!(env.contains(&("A".to_owned(), "1".to_owned())), "{env:?}");
            // Contained by default: its scratch directory is its home, beneath the state
            // directory, which is cut out of every grant.
            let c = sandbox.as_ref().unwrap();
            assert_eq!(c.scratch, Path::new(root).join("upstreams/docs"));
            assert!(env.contains(&("HOME".to_owned(), c.scratch.to_string_lossy().into_owned())), "{env:?}");
            assert!(c.protect.contains(&PathBuf::from(root)) && c.grants.network);
        }
        other => panic!("{other:?}"),
    }
    match &s.upstreams[3].source {
        Source::Remote(r) => {
            assert_eq!((r.url.as_str(), r.ping_interval), ("https://far.example/mcp", Duration::from_secs(2)))
        }
        other => panic!("{other:?}"),
    }
    let s = settings(&["--config", file, "--state-dir", root, "--stdio", "--call-timeout", "5s"]).unwrap();
    assert!(matches!(s.transport, Transport::Stdio));
    assert_eq!(s.call_timeout, Duration::from_secs(5));
}

#[test]
fn limits_and_journal_from_the_file_under_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hub.toml");
    let root = dir.path().to_str().unwrap();
    std::fs::write(
        &file,
        format!(
            "roots = [\"{root}\"]\n[limits]\nrequests_per_second = 5\nburst = 7\nconcurrent = 3\n\
             [journal]\nmax_bytes = 1024\nkeep = 2\n"
        ),
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let limits = |argv: &[&str]| {
        let s = settings(&[&["--config", file, "--state-dir", root], argv].concat()).unwrap();
        assert_eq!(s.journal, bastion_policy::audit::Rotation { max_bytes: 1024, keep: 2, ..Default::default() });
        let Transport::Http(http) = s.transport else { panic!("not http") };
        http.limits
    };
    let l = limits(&[]);
    assert_eq!((l.requests_per_second, l.burst, l.concurrent), (5.0, 7, 3));
    assert_eq!(l.address_burst, crate::limits::LimitsConfig::default().address_burst, "unset keys keep the default");
    let l = limits(&["--rate-limit", "2", "--max-in-flight", "9", "--max-sessions", "4"]);
    assert_eq!((l.requests_per_second, l.burst, l.concurrent, l.max_sessions), (2.0, 20, 9, 4));
    let l = limits(&["--no-rate-limits"]);
    assert_eq!((l.requests_per_second, l.address_requests_per_second, l.concurrent), (0.0, 0.0, 3));
    let e = settings(&["--config", file, "--state-dir", root, "--rate-limit=-1"]).err().unwrap();
    assert!(e.to_string().contains("limits.requests_per_second"), "{e}");
}

#[test]
fn the_defaults_are_the_three_builtins_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let s = settings(&["--root", root, "--state-dir", root]).unwrap();
    let Transport::Http(http) = &s.transport else { panic!("not http") };
    assert_eq!(http.listen, DEFAULT_LISTEN);
    assert_eq!(s.call_timeout, DEFAULT_CALL_TIMEOUT);
    let got: Vec<_> = s
        .upstreams
        .iter()
        .map(|u| match &u.source {
            Source::Builtin { server, args, .. } => (server.name(), args.iter().any(|a| a == "--allow-write")),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, [("fs", false), ("git", false), ("shell", false)]);
    let s = settings(&["--root", root, "--state-dir", root, "--allow-write"]).unwrap();
    let writes: Vec<_> = s
        .upstreams
        .iter()
        .map(|u| matches!(&u.source, Source::Builtin { args, .. } if args.iter().any(|a| a == "--allow-write")))
        .collect();
    assert_eq!(writes, [true, true, false], "never for shell");
}

#[test]
fn search_and_fetch_are_on_by_default_in_oauth_mode_only() {
    let dir = tempfile::tempdir().unwrap();
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    std::fs::create_dir(&root).unwrap();
    let (root_s, state_s) = (root.to_str().unwrap(), state.to_str().unwrap());
    let oauth = ["--public-url", "https://hub.example.com/mcp"];
    let base = ["--root", root_s, "--state-dir", state_s];
    let on = |extra: &[&str]| {
        let argv: Vec<&str> = base.iter().chain(extra).copied().collect();
        settings(&argv).unwrap().search_fetch.map(|s| s.public_base)
    };
    assert_eq!(on(&oauth), Some(Some("https://hub.example.com".to_owned())));
    assert_eq!(on(&[]), None);
    assert_eq!(on(&["--search-fetch", "true"]), Some(None));
    assert_eq!(on(&[&oauth[..], &["--search-fetch", "false"]].concat()), None);
    // The file's key, under the flag.
    let file = dir.path().join("hub.toml");
    std::fs::write(&file, "search_fetch = true\n").unwrap();
    let file_s = file.to_str().unwrap();
    assert_eq!(on(&["--config", file_s]), Some(None));
    assert_eq!(on(&["--config", file_s, "--search-fetch", "false"]), None);
    let flags = Flags::try_parse_from(["bastion", "--config", file_s]).unwrap();
    assert!(HubSettings::search_fetch_of(&flags.serve.upstreams).unwrap().on);
}

#[test]
fn the_hub_protects_its_own_state_and_decides_approvals() {
    let dir = tempfile::tempdir().unwrap();
    let (root, state) = (dir.path().join("root"), dir.path().join("state"));
    std::fs::create_dir(&root).unwrap();
    let file = dir.path().join("hub.toml");
    std::fs::write(
        &file,
        "[approval]\napprove_via_elicitation = true\n[[approval.rule]]\nserver = \"fs\"\naction = \"ask\"\n",
    )
    .unwrap();
    let (root_s, state_s, file_s) = (root.to_str().unwrap(), state.to_str().unwrap(), file.to_str().unwrap());
    let s = settings(&["--root", root_s, "--state-dir", state_s, "--config", file_s, "--allow-state-in-root"]).unwrap();
    assert!(s.allow_state_in_root);
    assert_eq!(s.roots, std::slice::from_ref(&root));
    assert_eq!(s.audit_log, state.join("audit.jsonl"));
    assert!(s.approvals.config.approve_via_elicitation);
    assert_eq!(s.approvals.config.rules.len(), 1);
    assert!(s.approvals.control_socket.starts_with(&state), "{}", s.approvals.control_socket.display());
    for u in &s.upstreams {
        let Source::Builtin { args, .. } = &u.source else { panic!("{u:?}") };
        let protected: Vec<_> = args.windows(2).filter(|w| w[0] == "--protect").map(|w| w[1].as_str()).collect();
        assert_eq!(protected, [state_s, file_s, state.join("audit.jsonl").to_str().unwrap()]);
        assert!(args.iter().any(|a| a == "--no-approvals"), "{args:?}");
    }
    let s = settings(&["--root", root_s, "--state-dir", state_s, "--audit-log", file_s]).unwrap();
    assert!(!s.allow_state_in_root);
    assert_eq!(s.audit_log, file);
}

#[test]
fn every_problem_is_reported_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let e = settings(&[
        "--state-dir",
        root,
        "--no-auth",
        "--listen",
        "0.0.0.0:1",
        "--public-url",
        "ftp://x",
        "--root",
        "/no/such/root",
    ])
    .err()
    .unwrap();
    let codes: Vec<_> = e.errors.iter().map(SettingsError::code).collect();
    assert_eq!(codes, ["public_url", "no_auth_needs_loopback", "root"]);
    let text = e.to_string();
    assert!(text.starts_with("3 problem(s) in the flags:\n  --public-url 'ftp://x' must be http or https"), "{text}");
    assert!(text.contains("on a loopback listen address (got 0.0.0.0:1)"), "{text}");
    // Over stdio there is no listener to check.
    let e = settings(&["--state-dir", root, "--stdio", "--no-auth", "--listen", "0.0.0.0:1", "--root", root]);
    assert!(e.is_ok());
}

/// `store`: unset is SQLite; PostgreSQL by reference or by a URL without a password; a
/// password in the file is refused, with the location but never the password.
#[test]
fn the_store_is_chosen_by_the_file_and_holds_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let file = dir.path().join("hub.toml");
    let file_s = file.to_str().unwrap();
    let with = |store: &str| {
        std::fs::write(&file, format!("store = \"{store}\"\n")).unwrap();
        settings(&["--root", root, "--state-dir", root, "--config", file_s])
    };
    assert_eq!(settings(&["--root", root, "--state-dir", root]).unwrap().store, None);
    for ok in ["env:BASTION_STORE_URL", "file:/run/secrets/store", "postgres://bastion@db.internal/auth"] {
        assert_eq!(with(ok).unwrap().store.as_deref(), Some(ok));
    }
    for bad in ["postgres://bastion:s3cret@db.internal/auth", "mysql://db/auth"] {
        let e = with(bad).err().unwrap();
        let codes: Vec<_> = e.errors.iter().map(SettingsError::code).collect();
        assert_eq!(codes, ["store"], "{bad}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}

/// `sealing_key`: a reference to the key, never the key itself (which is not echoed).
#[test]
fn the_sealing_key_is_a_reference() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let file = dir.path().join("hub.toml");
    let file_s = file.to_str().unwrap();
    let with = |key: &str| {
        std::fs::write(&file, format!("sealing_key = \"{key}\"\n")).unwrap();
        settings(&["--root", root, "--state-dir", root, "--config", file_s])
    };
    let key_of = |s: HubSettings| match s.transport {
        Transport::Http(h) => h.sealing_key,
        Transport::Stdio => None,
    };
    assert_eq!(key_of(settings(&["--root", root, "--state-dir", root]).unwrap()), None);
    for ok in ["env:BASTION_SEALING_KEY", "file:/run/secrets/sealing"] {
        assert_eq!(key_of(with(ok).unwrap()).as_deref(), Some(ok));
    }
    for bad in ["7f3a9c0e5b1d4f2a8c6e0b9d3f1a5c7e", "file:relative/key", "env:"] {
        let e = with(bad).err().unwrap();
        let codes: Vec<_> = e.errors.iter().map(SettingsError::code).collect();
        assert_eq!(codes, ["sealing_key"], "{bad}");
        assert!(!e.to_string().contains("9c0e5b1d"), "{e}");
    }
}

#[test]
fn programs_are_found_like_the_child_would_be() {
    assert!(find_program("sh").is_some());
    assert!(find_program("/bin/sh").is_some());
    assert!(find_program("no-such-program-bastion").is_none());
    assert!(find_program("/etc/passwd").is_none()); // not executable
    assert!(find_program("/").is_none());
}
