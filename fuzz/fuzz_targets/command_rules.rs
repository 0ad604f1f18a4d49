//! `CommandRules::check` of the shipped profiles on arbitrary argv.
//!
//! Invariants: no panic; an accepted argv, read by an independent getopt model built from the
//! program's own allowed flags (`allowed_flags`), holds no denied flag in an option position
//! (for the `gnu` and `find` grammars; `literal` has no options and `permissive` passes values
//! it cannot classify); and checking an accepted argv again (without the arguments the rules
//! put in front) accepts it unchanged: normalisation is a fixpoint, so the program and the
//! rules cannot read the same argv two ways.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use bastion_policy::commands::{CommandRules, Program};
use libfuzzer_sys::fuzz_target;

/// How many arguments a flag takes, as `allowed_flags` spells it.
#[derive(Clone, Copy, PartialEq)]
enum Takes {
    Nothing,
    One,
    Optional,
    Two,
}

struct Model {
    program: Program,
    grammar: &'static str,
    takes: HashMap<String, Takes>,
    denied: BTreeMap<String, String>,
}

fn models() -> &'static Vec<(CommandRules, Vec<Model>)> {
    static M: OnceLock<Vec<(CommandRules, Vec<Model>)>> = OnceLock::new();
    M.get_or_init(|| {
        bastion_policy::commands::SHIPPED_PROFILES
            .iter()
            .map(|name| {
                let rules = CommandRules::shipped(name).unwrap();
                let programs = rules
                    .programs()
                    .map(|p| {
                        let summary = p.operand_summary();
                        let grammar = if summary.starts_with("find expression") {
                            "find"
                        } else if summary.starts_with("every argument is literal") {
                            "literal"
                        } else if summary.starts_with("runs project code") {
                            "permissive"
                        } else {
                            "gnu"
                        };
                        let takes = p
                            .allowed_flags()
                            .into_iter()
                            .map(|f| {
                                if let Some(flag) = f.strip_suffix(" NAME VALUE") {
                                    (flag.to_owned(), Takes::Two)
                                } else if let Some(flag) = f.strip_suffix("[=VALUE]") {
                                    (flag.to_owned(), Takes::Optional)
                                } else if let Some(flag) = f.strip_suffix(" VALUE").or_else(|| f.strip_suffix(" PATH"))
                                {
                                    (flag.to_owned(), Takes::One)
                                } else {
                                    (f, Takes::Nothing)
                                }
                            })
                            .collect();
                        Model { denied: p.denied_flags().clone(), program: p.clone(), grammar, takes }
                    })
                    .collect();
                (rules, programs)
            })
            .collect()
    })
}

/// Finds a denied flag in an option position of an accepted argv, reading it like getopt_long
/// (or find's expression parser) would.
fn denied_in(m: &Model, argv: &[String]) -> Option<String> {
    let mut i = m.program.fixed_prefix_len();
    while i < argv.len() {
        let a = &argv[i];
        i += 1;
        if a == "--" && m.grammar == "gnu" {
            return None;
        }
        if !a.starts_with('-') || a == "-" {
            continue;
        }
        if m.grammar == "find" || a.starts_with("--") {
            let (name, inline) = match a.split_once('=') {
                Some((n, _)) if m.grammar == "gnu" => (n, true),
                _ => (a.as_str(), false),
            };
            if m.denied.contains_key(name) {
                return Some(a.clone());
            }
            match m.takes.get(name) {
                Some(Takes::One) if !inline => i += 1,
                Some(Takes::Two) if !inline => i += 2,
                _ => {}
            }
            continue;
        }
        // Single-dash long flags (`-name`) are matched whole first, as the rules do.
        if a.chars().count() > 2 && (m.takes.contains_key(a.as_str()) || m.denied.contains_key(a.as_str())) {
            if m.denied.contains_key(a.as_str()) {
                return Some(a.clone());
            }
            if matches!(m.takes.get(a.as_str()), Some(Takes::One)) {
                i += 1;
            }
            continue;
        }
        // A bundle of short flags: the first one that takes a value ends it.
        for (at, c) in a.char_indices().skip(1) {
            let flag = format!("-{c}");
            if m.denied.contains_key(&flag) {
                return Some(a.clone());
            }
            match m.takes.get(&flag) {
                Some(Takes::One) => {
                    if at + c.len_utf8() == a.len() {
                        i += 1;
                    }
                    break;
                }
                Some(Takes::Two) => {
                    i += 2;
                    break;
                }
                Some(Takes::Optional) => break,
                _ => {}
            }
        }
    }
    None
}

/// Splits the input into a profile, a program and its arguments (U+0001 separates arguments).
fn argv(data: &[u8]) -> Option<(usize, usize, Vec<String>)> {
    let (&p, rest) = data.split_first()?;
    let (&q, rest) = rest.split_first()?;
    let text = std::str::from_utf8(rest).ok()?;
    let args = if text.is_empty() { vec![] } else { text.split('\u{1}').map(str::to_owned).collect() };
    Some((p as usize, q as usize, args))
}

fuzz_target!(|data: &[u8]| {
    let Some((p, q, args)) = argv(data) else { return };
    let all = models();
    let (rules, programs) = &all[p % all.len()];
    let profile = &rules.profile;
    let m = &programs[q % programs.len()];
    let Ok(checked) = rules.check(&m.program.name, &args) else { return };
    if matches!(m.grammar, "gnu" | "find")
        && let Some(bad) = denied_in(m, &checked.argv)
    {
        panic!("{profile}/{}: {args:?} accepted as {:?} with denied flag {bad:?}", m.program.name, checked.argv);
    }
    let again = checked.argv[m.program.fixed_prefix_len()..].to_vec();
    match rules.check(&m.program.name, &again) {
        Ok(second) => assert_eq!(second.argv, checked.argv, "{profile}/{}: {args:?} not a fixpoint", m.program.name),
        Err(e) => {
            panic!("{profile}/{}: {args:?} accepted as {:?}, refused on re-check: {e}", m.program.name, checked.argv)
        }
    }
});
