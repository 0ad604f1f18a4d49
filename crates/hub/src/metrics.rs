//! Prometheus metrics of the hub (`GET /metrics`, text format 0.0.4, behind the same bearer
//! check as `/mcp`): calls by upstream, tool and outcome, a latency histogram per upstream and
//! tool, whether each upstream is up and how often it was restarted. Labels are bounded: a tool
//! label is a name the hub offers (anything else is `unknown`, upstream `none`), an outcome is a
//! short snake_case code (anything else is `other`).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;
use std::sync::Mutex;
use std::time::Duration;

/// Upper bounds of the latency buckets, in seconds: from a cached read through the hub
/// (under a millisecond) to a long build (minutes).
const BUCKETS: [f64; 16] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 300.0];

/// Everything recorded for one tool.
#[derive(Default)]
struct ToolStats {
    upstream: String,
    outcomes: BTreeMap<String, u64>,
    /// Observations per bucket (not cumulative; summed when rendered), then `+Inf`.
    buckets: [u64; BUCKETS.len() + 1],
    seconds: f64,
    count: u64,
}

/// Counters, shared by every clone of the hub.
#[derive(Default)]
pub struct Metrics {
    tools: Mutex<HashMap<String, ToolStats>>,
}

/// `code` if it is a short snake_case word, else `other`.
fn outcome_label(code: &str) -> &str {
    let ok = !code.is_empty() && code.len() <= 40 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok { code } else { "other" }
}

/// What the hub knows of one upstream when the metrics are rendered.
pub struct UpstreamGauge {
    /// Its name.
    pub name: String,
    /// Initialised and listed.
    pub ready: bool,
    /// Restarts since the hub started.
    pub restarts: u64,
}

/// Calls, errors and latency of one upstream since the hub started (the dashboard's Health).
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamStats {
    /// The upstream (`none` for calls to tools the hub does not offer).
    pub upstream: String,
    /// Calls answered.
    pub calls: u64,
    /// Of which not `ok`.
    pub errors: u64,
    /// Median latency in seconds, interpolated within its histogram bucket.
    pub p50: f64,
    /// 95th percentile latency in seconds, likewise.
    pub p95: f64,
}

/// The `q` quantile of a histogram (per-bucket counts, then `+Inf`), interpolated linearly
/// within the bucket it falls in, as Prometheus' `histogram_quantile` does; the open `+Inf`
/// bucket answers with the last finite bound.
fn quantile(buckets: &[u64; BUCKETS.len() + 1], q: f64) -> f64 {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return 0.0;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n > 0 && (seen + n) as f64 >= rank {
            let Some(upper) = BUCKETS.get(i) else { return BUCKETS[BUCKETS.len() - 1] };
            let lower = if i == 0 { 0.0 } else { BUCKETS[i - 1] };
            return lower + (upper - lower) * ((rank - seen as f64) / *n as f64).clamp(0.0, 1.0);
        }
        seen += n;
    }
    BUCKETS[BUCKETS.len() - 1]
}

impl Metrics {
    /// Calls, errors, p50 and p95 per upstream, sorted by upstream name.
    pub fn per_upstream(&self) -> Vec<UpstreamStats> {
        let tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        let mut by: BTreeMap<&str, ([u64; BUCKETS.len() + 1], u64)> = BTreeMap::new();
        for s in tools.values() {
            let entry = by.entry(s.upstream.as_str()).or_insert(([0; BUCKETS.len() + 1], 0));
            for (sum, n) in entry.0.iter_mut().zip(s.buckets.iter()) {
                *sum += n;
            }
            entry.1 += s.outcomes.iter().filter(|(o, _)| o.as_str() != "ok").map(|(_, n)| n).sum::<u64>();
        }
        by.into_iter()
            .map(|(upstream, (buckets, errors))| UpstreamStats {
                upstream: upstream.to_owned(),
                calls: buckets.iter().sum(),
                errors,
                p50: quantile(&buckets, 0.5),
                p95: quantile(&buckets, 0.95),
            })
            .collect()
    }

    /// Records one call; `tool` must already be an offered name or `unknown`, and `upstream`
    /// the name of its upstream (or `none`).
    pub fn record(&self, upstream: &str, tool: &str, outcome: &str, took: Duration) {
        let mut tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        if !tools.contains_key(tool) {
            tools.insert(tool.to_owned(), ToolStats { upstream: upstream.to_owned(), ..ToolStats::default() });
        }
        let Some(stats) = tools.get_mut(tool) else { return };
        let outcome = outcome_label(outcome);
        match stats.outcomes.get_mut(outcome) {
            Some(n) => *n += 1,
            None => {
                stats.outcomes.insert(outcome.to_owned(), 1);
            }
        }
        let secs = took.as_secs_f64();
        let bucket = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        stats.buckets[bucket] += 1;
        stats.seconds += secs;
        stats.count += 1;
    }

    /// The exposition text.
    pub fn render(&self, upstreams: &[UpstreamGauge]) -> String {
        let tools = self.tools.lock().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<&String> = tools.keys().collect();
        names.sort();
        let mut out = String::new();
        let _ =
            writeln!(out, "# HELP bastion_hub_calls_total Tool calls through the hub, by upstream, tool and outcome.");
        let _ = writeln!(out, "# TYPE bastion_hub_calls_total counter");
        for name in &names {
            let s = &tools[*name];
            for (outcome, n) in &s.outcomes {
                let _ = writeln!(
                    out,
                    "bastion_hub_calls_total{{upstream=\"{}\",tool=\"{name}\",outcome=\"{outcome}\"}} {n}",
                    s.upstream
                );
            }
        }
        let _ = writeln!(out, "# HELP bastion_hub_call_duration_seconds Time from a call's arrival to its answer.");
        let _ = writeln!(out, "# TYPE bastion_hub_call_duration_seconds histogram");
        for name in &names {
            let s = &tools[*name];
            let labels = format!("upstream=\"{}\",tool=\"{name}\"", s.upstream);
            let mut cumulative = 0;
            for (i, le) in BUCKETS.iter().enumerate() {
                cumulative += s.buckets[i];
                let _ = writeln!(out, "bastion_hub_call_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}");
            }
            let _ = writeln!(out, "bastion_hub_call_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", s.count);
            let _ = writeln!(out, "bastion_hub_call_duration_seconds_sum{{{labels}}} {}", s.seconds);
            let _ = writeln!(out, "bastion_hub_call_duration_seconds_count{{{labels}}} {}", s.count);
        }
        let _ = writeln!(out, "# HELP bastion_hub_upstream_up Whether an upstream is initialised and listed.");
        let _ = writeln!(out, "# TYPE bastion_hub_upstream_up gauge");
        for u in upstreams {
            let _ = writeln!(out, "bastion_hub_upstream_up{{upstream=\"{}\"}} {}", u.name, u8::from(u.ready));
        }
        let _ = writeln!(out, "# HELP bastion_hub_upstream_restarts_total Times an upstream was started again.");
        let _ = writeln!(out, "# TYPE bastion_hub_upstream_restarts_total counter");
        for u in upstreams {
            let _ = writeln!(out, "bastion_hub_upstream_restarts_total{{upstream=\"{}\"}} {}", u.name, u.restarts);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_bounded_labels_and_histograms() {
        let m = Metrics::default();
        m.record("fs", "fs__read_file", "ok", Duration::from_millis(500));
        m.record("fs", "fs__read_file", "ok", Duration::from_micros(300));
        m.record("fs", "fs__read_file", "path_outside_root", Duration::ZERO);
        m.record("none", "unknown", "Weird \"code\"\n", Duration::from_secs(400));
        let gauges = [
            UpstreamGauge { name: "fs".into(), ready: true, restarts: 0 },
            UpstreamGauge { name: "git".into(), ready: false, restarts: 3 },
        ];
        let text = m.render(&gauges);
        let has = |line: &str| assert!(text.contains(&format!("{line}\n")), "{line}\n{text}");
        has("bastion_hub_calls_total{upstream=\"fs\",tool=\"fs__read_file\",outcome=\"ok\"} 2");
        has("bastion_hub_calls_total{upstream=\"fs\",tool=\"fs__read_file\",outcome=\"path_outside_root\"} 1");
        has("bastion_hub_calls_total{upstream=\"none\",tool=\"unknown\",outcome=\"other\"} 1");
        // Buckets are cumulative: 0 s and 0.3 ms fall in the first, 0.5 s in le=0.5.
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"fs\",tool=\"fs__read_file\",le=\"0.0005\"} 2");
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"fs\",tool=\"fs__read_file\",le=\"0.25\"} 2");
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"fs\",tool=\"fs__read_file\",le=\"0.5\"} 3");
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"fs\",tool=\"fs__read_file\",le=\"+Inf\"} 3");
        has("bastion_hub_call_duration_seconds_count{upstream=\"fs\",tool=\"fs__read_file\"} 3");
        // Longer than the last bound: only in +Inf.
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"none\",tool=\"unknown\",le=\"300\"} 0");
        has("bastion_hub_call_duration_seconds_bucket{upstream=\"none\",tool=\"unknown\",le=\"+Inf\"} 1");
        has("bastion_hub_upstream_up{upstream=\"fs\"} 1");
        has("bastion_hub_upstream_up{upstream=\"git\"} 0");
        has("bastion_hub_upstream_restarts_total{upstream=\"git\"} 3");
        assert!(!text.contains("Weird"));
        let stats = m.per_upstream();
        assert_eq!(stats.iter().map(|s| s.upstream.as_str()).collect::<Vec<_>>(), ["fs", "none"]);
        assert_eq!((stats[0].calls, stats[0].errors), (3, 1));
        // Two of three in the first bucket (0 to 0.5 ms): the median interpolates inside it.
        assert!((stats[0].p50 - 0.0005 * 0.75).abs() < 1e-9, "{}", stats[0].p50);
        // The 95th falls in le=0.5 (from 0.25).
        assert!(stats[0].p95 > 0.25 && stats[0].p95 <= 0.5, "{}", stats[0].p95);
        assert_eq!(stats[1].p95, 300.0, "beyond the last bound: the last bound");
    }
}
