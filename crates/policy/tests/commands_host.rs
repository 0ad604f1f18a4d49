//! Hostile arguments for the host server's programs (`profiles/host.toml`), as data: every form
//! that changes state — `systemctl edit|set-property|enable|disable|mask|kill|daemon-reload`,
//! `journalctl --vacuum-*|--rotate|--flush`, `ip addr add`, `docker rm|exec|run` — is refused
//! by the rules, before anything runs; the reading forms pass. The service actions of the
//! operate tier are checked in `host_actions_table`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bastion_policy::commands::{CommandRules, OpsConfig, ServiceAction};

/// (program, arguments, expected code or `ok`).
type Case = (&'static str, &'static [&'static str], &'static str);

const HOST: &[Case] = &[
    // systemctl: only the reading verbs, matched exactly.
    ("systemctl", &["status", "nginx.service"], "ok"),
    ("systemctl", &["show", "-p", "ActiveState", "nginx"], "ok"),
    ("systemctl", &["list-units", "--state=failed", "--plain", "--no-legend"], "ok"),
    ("systemctl", &["list-unit-files", "--type=service"], "ok"),
    ("systemctl", &["is-active", "nginx"], "ok"),
    ("systemctl", &["is-enabled", "nginx"], "ok"),
    ("systemctl", &["is-failed", "nginx"], "ok"),
    ("systemctl", &["cat", "nginx"], "ok"),
    ("systemctl", &[], "ok"),
    ("systemctl", &["edit", "nginx"], "argument_not_allowed"),
    ("systemctl", &["set-property", "nginx", "CPUQuota=1%"], "argument_not_allowed"),
    ("systemctl", &["enable", "nginx"], "argument_not_allowed"),
    ("systemctl", &["disable", "nginx"], "argument_not_allowed"),
    ("systemctl", &["mask", "nginx"], "argument_not_allowed"),
    ("systemctl", &["kill", "nginx"], "argument_not_allowed"),
    ("systemctl", &["daemon-reload"], "argument_not_allowed"),
    ("systemctl", &["start", "nginx"], "argument_not_allowed"),
    ("systemctl", &["restart", "nginx"], "argument_not_allowed"),
    ("systemctl", &["stop", "nginx"], "argument_not_allowed"),
    ("systemctl", &["reboot"], "argument_not_allowed"),
    ("systemctl", &["poweroff"], "argument_not_allowed"),
    ("systemctl", &["isolate", "rescue.target"], "argument_not_allowed"),
    ("systemctl", &["stat", "nginx"], "argument_not_allowed"),
    ("systemctl", &["--", "kill", "nginx"], "argument_not_allowed"),
    ("systemctl", &["-H", "root@elsewhere", "status"], "argument_not_allowed"),
    ("systemctl", &["--host=root@elsewhere", "status"], "argument_not_allowed"),
    ("systemctl", &["--ho=root@elsewhere", "status"], "argument_not_allowed"),
    ("systemctl", &["-M", "box", "status"], "argument_not_allowed"),
    ("systemctl", &["--root=/mnt", "status"], "argument_not_allowed"),
    ("systemctl", &["status", "--force"], "argument_not_allowed"),
    ("systemctl", &["status", "-o", "verbose"], "argument_not_allowed"),
    // journalctl: reading only; --no-pager is always there.
    ("journalctl", &["-u", "nginx", "--since", "1 hour ago", "-n", "50", "-p", "err", "-o", "json"], "ok"),
    ("journalctl", &["-u", "nginx", "-o", "short"], "ok"),
    ("journalctl", &["-o", "export"], "argument_not_allowed"),
    ("journalctl", &["-p", "err..emerg"], "argument_not_allowed"),
    ("journalctl", &["--vacuum-size=1K"], "argument_not_allowed"),
    ("journalctl", &["--vacuum-time=1s"], "argument_not_allowed"),
    ("journalctl", &["--vacuum-files=1"], "argument_not_allowed"),
    ("journalctl", &["--vacuum", "1K"], "argument_not_allowed"),
    ("journalctl", &["--rotate"], "argument_not_allowed"),
    ("journalctl", &["--rot"], "argument_not_allowed"),
    ("journalctl", &["--flush"], "argument_not_allowed"),
    ("journalctl", &["--sync"], "argument_not_allowed"),
    ("journalctl", &["--relinquish-var"], "argument_not_allowed"),
    ("journalctl", &["--setup-keys"], "argument_not_allowed"),
    ("journalctl", &["--cursor-file=/tmp/x"], "argument_not_allowed"),
    ("journalctl", &["-f"], "argument_not_allowed"),
    ("journalctl", &["-uf", "nginx"], "ok"),
    ("journalctl", &["-ru", "nginx"], "ok"),
    ("journalctl", &["-rf"], "argument_not_allowed"),
    ("journalctl", &["-D", "/var/tmp"], "argument_not_allowed"),
    ("journalctl", &["--file=/etc/shadow"], "argument_not_allowed"),
    // ip: show only, exact words (ip reads `a a` as `address add`).
    ("ip", &["addr", "show"], "ok"),
    ("ip", &["-j", "route", "show"], "ok"),
    ("ip", &["link", "show", "dev", "lo"], "ok"),
    ("ip", &["addr"], "ok"),
    ("ip", &["addr", "add", "10.0.0.1/24", "dev", "lo"], "argument_not_allowed"),
    ("ip", &["a", "a", "10.0.0.1/24", "dev", "lo"], "argument_not_allowed"),
    ("ip", &["addr", "del", "10.0.0.1/24", "dev", "lo"], "argument_not_allowed"),
    ("ip", &["addr", "flush", "dev", "lo"], "argument_not_allowed"),
    ("ip", &["route", "add", "default", "via", "10.0.0.1"], "argument_not_allowed"),
    ("ip", &["link", "set", "lo", "down"], "argument_not_allowed"),
    ("ip", &["netns", "exec", "x", "id"], "argument_not_allowed"),
    ("ip", &["-b", "cmds"], "argument_not_allowed"),
    ("ip", &["-n", "other", "addr", "show"], "argument_not_allowed"),
    // The `--` ends the options here and is not passed on: ip runs `ip addr show`.
    ("ip", &["--", "addr", "show"], "ok"),
    ("ip", &["--", "addr", "add", "10.0.0.1/24"], "argument_not_allowed"),
    ("ip", &["addr", "show", "-x"], "argument_not_allowed"),
    // ps: allowlisted columns only.
    ("ps", &["-eo", "pid,comm,args,%cpu,rss"], "ok"),
    ("ps", &["-e", "-o", "pid=", "-o", "unit="], "ok"),
    ("ps", &["-ef", "--sort=-pcpu"], "ok"),
    ("ps", &["-eo", "pid,environ"], "argument_not_allowed"),
    ("ps", &["aux"], "argument_not_allowed"),
    ("ps", &["e"], "argument_not_allowed"),
    ("ps", &["--sort=foo"], "argument_not_allowed"),
    // ss: listing only.
    ("ss", &["-ltnp"], "ok"),
    ("ss", &["-ltn", "sport", "=", ":8080"], "ok"),
    ("ss", &["-K", "dport", "=", ":22"], "argument_not_allowed"),
    ("ss", &["--kill"], "argument_not_allowed"),
    ("ss", &["-tK"], "argument_not_allowed"),
    ("ss", &["-D", "/tmp/x"], "argument_not_allowed"),
    ("ss", &["--diag=/tmp/x"], "argument_not_allowed"),
    ("ss", &["-F", "/etc/shadow"], "argument_not_allowed"),
    ("ss", &["-N", "other"], "argument_not_allowed"),
    // the rest.
    ("df", &["-hT"], "ok"),
    ("df", &["--sync"], "argument_not_allowed"),
    ("free", &["-h"], "ok"),
    ("free", &["-s", "1"], "argument_not_allowed"),
    ("uptime", &["-p"], "ok"),
    ("vmstat", &["-s"], "ok"),
    ("vmstat", &["1"], "argument_not_allowed"),
    ("lsblk", &["-J"], "ok"),
    ("findmnt", &["-J", "-T", "/"], "ok"),
    ("findmnt", &["--poll"], "argument_not_allowed"),
    ("uname", &["-a"], "ok"),
    ("hostnamectl", &["status"], "ok"),
    ("hostnamectl", &["set-hostname", "x"], "argument_not_allowed"),
    ("hostnamectl", &["hostname", "x"], "argument_not_allowed"),
    // containers are off unless enabled; never a shell or a runner.
    ("docker", &["ps"], "command_not_allowed"),
    ("docker", &["rm", "-f", "web"], "command_not_allowed"),
    ("podman", &["ps"], "command_not_allowed"),
    ("systemd-run", &["id"], "command_not_allowed"),
    ("sh", &["-c", "systemctl restart nginx"], "command_not_allowed"),
    ("kill", &["1"], "command_not_allowed"),
    ("reboot", &[], "command_not_allowed"),
    ("busctl", &["call"], "command_not_allowed"),
    ("/usr/bin/systemctl", &["status"], "command_not_allowed"),
];

/// With `[ops] containers = true`: reads only.
const CONTAINERS: &[Case] = &[
    ("docker", &["ps", "--all"], "ok"),
    ("docker", &["inspect", "web"], "ok"),
    ("docker", &["logs", "--tail=100", "web"], "ok"),
    ("docker", &["rm", "-f", "web"], "argument_not_allowed"),
    ("docker", &["rm", "web"], "argument_not_allowed"),
    ("docker", &["exec", "web", "sh"], "argument_not_allowed"),
    ("docker", &["run", "--privileged", "-v", "/:/host", "alpine"], "argument_not_allowed"),
    ("docker", &["run", "alpine"], "argument_not_allowed"),
    ("docker", &["restart", "web"], "argument_not_allowed"),
    ("docker", &["logs", "-f", "web"], "argument_not_allowed"),
    ("docker", &["logs", "--follow", "web"], "argument_not_allowed"),
    ("docker", &["-H", "tcp://elsewhere", "ps"], "argument_not_allowed"),
    ("docker", &["--context", "prod", "ps"], "argument_not_allowed"),
    ("podman", &["ps"], "ok"),
    ("podman", &["exec", "web", "sh"], "argument_not_allowed"),
    ("podman", &["--remote", "ps"], "argument_not_allowed"),
];

fn run_table(name: &str, rules: &CommandRules, table: &[Case]) {
    let mut failures = Vec::new();
    for (program, args, want) in table {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let got = match rules.check(program, &args) {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        if got != *want {
            failures.push(format!("{name}: {program:?} {args:?}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), table.len(), failures.join("\n"));
}

#[test]
fn host_hostile_table() {
    run_table("host", &OpsConfig::default().command_rules().unwrap(), HOST);
}

#[test]
fn container_reads_hostile_table() {
    let rules = OpsConfig { containers: true, ..Default::default() }.command_rules().unwrap();
    run_table("host+containers", &rules, CONTAINERS);
}

#[test]
fn the_rules_shape_what_runs() {
    let rules = OpsConfig { containers: true, ..Default::default() }.command_rules().unwrap();
    let argv = |p: &str, a: &[&str]| rules.check(p, &a.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap().argv;
    assert_eq!(argv("journalctl", &["-u", "x", "-n", "5"]), ["--no-pager", "-u", "x", "-n", "5"]);
    assert_eq!(argv("journalctl", &["--unit=x"]), ["--no-pager", "--unit=x"]);
    assert_eq!(argv("systemctl", &["status", "x"]), ["--no-pager", "--", "status", "x"]);
    assert_eq!(argv("docker", &["logs", "--tail=5", "web"]), ["logs", "--tail=5", "--", "web"]);
    assert_eq!(argv("ip", &["-j", "addr", "show"]), ["-j", "addr", "show"]);
}

#[test]
fn host_actions_table() {
    let ops = OpsConfig { units: vec!["nginx.service".into(), "myapp-*.service".into()], ..Default::default() };
    let rules = ops.compile().unwrap();
    let table: &[(ServiceAction, &str, &str)] = &[
        (ServiceAction::Restart, "nginx", "ok"),
        (ServiceAction::Reload, "nginx.service", "ok"),
        (ServiceAction::Stop, "myapp-api.service", "ok"),
        (ServiceAction::Start, "myapp-api", "ok"),
        (ServiceAction::Restart, "sshd", "unit_not_allowed"),
        (ServiceAction::Restart, "myapp-api.socket", "unit_not_allowed"),
        (ServiceAction::Restart, "nginx.service nginx2.service", "invalid_argument"),
        (ServiceAction::Restart, "--all", "invalid_argument"),
        (ServiceAction::Restart, "*", "invalid_argument"),
        (ServiceAction::Restart, "myapp-*", "invalid_argument"),
    ];
    let mut failures = Vec::new();
    for (action, unit, want) in table {
        let got = match rules.service_argv(*action, unit) {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        if got != *want {
            failures.push(format!("{action:?} {unit}: want {want}, got {got}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
