//! What the approval gate costs an allowed call, measured without any transport:
//!
//! ```sh
//! cargo run --release -p bastion-control --example approval_overhead
//! ```
//!
//! - a read call: the switches (two atomic loads) and `may_act` (the default rules never act
//!   on a read), which is all the gate does for it;
//! - an allowed write (`write_file src/lib.rs`, not an execute-on-open file): the arguments as
//!   JSON, the target's real path resolved beneath the root (what `real_paths` in server-kit
//!   does: `Roots::target` then `Roots::stat`), the programs, and `decide` on the defaults.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use bastion_control::Engine;
use bastion_policy::approval::{ApprovalRules, CallFacts, path_arguments, program_arguments};
use bastion_policy::audit::AuditLog;
use bastion_policy::{Policy, PolicyConfig, Tier};
use serde_json::json;

fn per_call(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_nanos() as f64 / f64::from(n)
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    std::fs::write(dir.path().join("src/lib.rs"), "fn main() {}\n").unwrap();
    let policy = Policy::new(PolicyConfig { roots: vec![dir.path().into()], ..Default::default() }).unwrap();
    let rules = ApprovalRules::default();
    let engine = Engine::new("fs", Arc::new(AuditLog::disabled()));

    let read = per_call(5_000_000, || {
        let ok = engine.admit("read_file", Tier::Read).is_ok() && !rules.may_act(black_box(Tier::Read));
        black_box(ok);
    });
    let args_map = json!({"path": "src/lib.rs", "content": "fn main() { println!(\"hi\"); }\n"});
    let args_map = args_map.as_object().unwrap().clone();
    let write = per_call(200_000, || {
        engine.admit("write_file", Tier::Write).unwrap();
        let args = serde_json::Value::Object(black_box(&args_map).clone());
        let roots = policy.roots();
        let paths: Vec<String> = path_arguments(&args)
            .iter()
            .map(|raw| {
                let t = roots.target(raw, None).unwrap();
                let (_, _, real) = roots.stat(&t, &policy.deny).unwrap();
                real.display()
            })
            .collect();
        let programs = program_arguments(&args);
        let facts = CallFacts {
            server: "fs",
            tool: "write_file",
            tier: Tier::Write,
            paths: &paths,
            programs: &programs,
            principal: "local",
            client: Some("bench"),
        };
        black_box(rules.decide(&facts));
    });
    println!("allowed read call:  {read:.1} ns of gate per call");
    println!("allowed write call: {:.2} µs of gate per call", write / 1000.0);
}
