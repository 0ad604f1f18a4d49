//! Prometheus metrics of the hub (`GET /metrics`, text format 0.0.4, behind the same bearer
//! check as `/mcp`): calls by tool and outcome, time spent per tool, and whether each upstream
//! is up. Labels are bounded: a tool label is a name the hub offers (anything else is
//! `unknown`), an outcome is a short snake_case code (anything else is `other`).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Counters, shared by every clone of the hub.
#[derive(Default)]
pub struct Metrics {
    calls: Mutex<BTreeMap<(String, String), u64>>,
    seconds: Mutex<BTreeMap<String, f64>>,
}

/// `code` if it is a short snake_case word, else `other`.
fn outcome_label(code: &str) -> &str {
    let ok = !code.is_empty() && code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok { code } else { "other" }
}

impl Metrics {
    /// Records one call; `tool` must already be an offered name or `unknown`.
    pub fn record(&self, tool: &str, outcome: &str, took: Duration) {
        let key = (tool.to_owned(), outcome_label(outcome).to_owned());
        *self.calls.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += 1;
        *self.seconds.lock().unwrap_or_else(|e| e.into_inner()).entry(tool.to_owned()).or_default() +=
            took.as_secs_f64();
    }

    /// The exposition text, with `up` as (upstream, is ready).
    pub fn render(&self, up: &[(String, bool)]) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# HELP bastion_hub_calls_total Tool calls through the hub, by tool and outcome.");
        let _ = writeln!(out, "# TYPE bastion_hub_calls_total counter");
        for ((tool, outcome), n) in self.calls.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "bastion_hub_calls_total{{tool=\"{tool}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(out, "# HELP bastion_hub_call_seconds_total Wall time spent in tool calls, by tool.");
        let _ = writeln!(out, "# TYPE bastion_hub_call_seconds_total counter");
        for (tool, s) in self.seconds.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = writeln!(out, "bastion_hub_call_seconds_total{{tool=\"{tool}\"}} {s}");
        }
        let _ = writeln!(out, "# HELP bastion_hub_upstream_up Whether an upstream is initialised and listed.");
        let _ = writeln!(out, "# TYPE bastion_hub_upstream_up gauge");
        for (name, ready) in up {
            let _ = writeln!(out, "bastion_hub_upstream_up{{upstream=\"{name}\"}} {}", u8::from(*ready));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_labels() {
        let m = Metrics::default();
        m.record("fs__read_file", "ok", Duration::from_millis(500));
        m.record("fs__read_file", "ok", Duration::from_millis(250));
        m.record("fs__read_file", "path_outside_root", Duration::ZERO);
        m.record("unknown", "Weird \"code\"\n", Duration::ZERO);
        let text = m.render(&[("fs".into(), true), ("git".into(), false)]);
        assert!(text.contains("bastion_hub_calls_total{tool=\"fs__read_file\",outcome=\"ok\"} 2\n"), "{text}");
        assert!(text.contains("outcome=\"path_outside_root\"} 1\n"));
        assert!(text.contains("bastion_hub_calls_total{tool=\"unknown\",outcome=\"other\"} 1\n"));
        assert!(text.contains("bastion_hub_call_seconds_total{tool=\"fs__read_file\"} 0.75\n"));
        assert!(
            text.contains("bastion_hub_upstream_up{upstream=\"fs\"} 1\nbastion_hub_upstream_up{upstream=\"git\"} 0\n")
        );
        assert!(!text.contains("Weird"));
    }
}
