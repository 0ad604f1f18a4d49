//! Per-tool rate limits: token buckets per rule and caller, checked once per call where the
//! caller, the tool and its tier are known (a server's choke point, the hub's HTTP guard).
//!
//! A rule (`[[limits.tool]]`) names the tools it covers by a glob on the tool name, a tier, or
//! both (neither: every tool), and gives a rate and a burst. Each caller (a token or an OAuth
//! grant on the hub; the one local client on stdio) has its own bucket per rule, shared by every
//! tool the rule covers: `tier = "exec"` with 2 a second means two commands a second in all, not
//! two of each. A call covered by several rules takes a token from each, or from none when one
//! is empty (a refused call costs nothing).
//!
//! ```
//! use bastion_policy::Tier;
//! use bastion_policy::ratelimit::{RateLimiter, ToolRate};
//!
//! let rule = ToolRate::new(Some("run_*"), None, 1.0, 2).unwrap();
//! let limiter = RateLimiter::new(&[rule]);
//! assert!(limiter.check("local", "run_command", Tier::Exec).is_ok());
//! assert!(limiter.check("local", "run_command", Tier::Exec).is_ok());
//! let refused = limiter.check("local", "run_command", Tier::Exec).unwrap_err();
//! assert_eq!(refused.to_error().code.as_str(), "rate_limited");
//! assert!(limiter.check("local", "read_file", Tier::Read).is_ok(), "not covered");
//! ```

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode};
use crate::tier::Tier;

/// One token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Clone, Copy, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(burst: u32, now: Instant) -> TokenBucket {
        TokenBucket { tokens: f64::from(burst), last: now }
    }

    fn refill(&mut self, rate: f64, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.last = now;
    }

    /// How long until one token is there (zero when one is there now), after refilling.
    pub fn wait(&mut self, rate: f64, burst: u32, now: Instant) -> Duration {
        self.refill(rate, burst, now);
        if self.tokens >= 1.0 || rate <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / rate)
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, rate: f64, burst: u32, now: Instant) -> Result<(), Duration> {
        let wait = self.wait(rate, burst, now);
        if wait.is_zero() {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(wait)
        }
    }

    /// Whether it has refilled completely (and can be forgotten).
    pub fn idle(&self, rate: f64, burst: u32, now: Instant) -> bool {
        self.tokens + now.saturating_duration_since(self.last).as_secs_f64() * rate >= f64::from(burst)
    }
}

/// A rule as written in a configuration file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tool: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tier: Option<Tier>,
    requests_per_second: f64,
    burst: u32,
}

/// One per-tool rate limit (`[[limits.tool]]`): which tools, how fast. Checked when it is read:
/// a rate that is not a positive number, a burst of 0 or a glob that does not parse is a
/// configuration error.
///
/// ```toml
/// [[limits.tool]]
/// tool = "shell__*"          # a glob on the tool name; absent: every tool
/// tier = "exec"              # read | write | destructive | exec; absent: every tier
/// requests_per_second = 2
/// burst = 10
/// ```
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "RawRule", into = "RawRule")]
pub struct ToolRate {
    raw: RawRule,
    glob: Option<GlobMatcher>,
}

impl PartialEq for ToolRate {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl TryFrom<RawRule> for ToolRate {
    type Error = Error;
    fn try_from(raw: RawRule) -> Result<Self, Error> {
        ToolRate::new(raw.tool.as_deref(), raw.tier, raw.requests_per_second, raw.burst)
    }
}

impl From<ToolRate> for RawRule {
    fn from(r: ToolRate) -> RawRule {
        r.raw
    }
}

impl ToolRate {
    /// A rule for the tools matching `tool` (a glob; `None`: all) of `tier` (`None`: all).
    pub fn new(tool: Option<&str>, tier: Option<Tier>, requests_per_second: f64, burst: u32) -> Result<Self, Error> {
        let bad = |m: String| Error::new(ErrorCode::InvalidConfig, format!("limits.tool: {m}"));
        if !requests_per_second.is_finite() || requests_per_second <= 0.0 {
            return Err(bad(format!("requests_per_second must be a number above 0 (got {requests_per_second})")));
        }
        if burst == 0 {
            return Err(bad("burst must be at least 1".to_owned()));
        }
        let glob = match tool {
            Some(g) => Some(
                globset::Glob::new(g)
                    .map_err(|e| bad(format!("tool glob '{g}' does not parse: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        let raw = RawRule { tool: tool.map(str::to_owned), tier, requests_per_second, burst };
        Ok(ToolRate { raw, glob })
    }

    /// Whether the rule covers `tool` of `tier`.
    pub fn covers(&self, tool: &str, tier: Tier) -> bool {
        self.raw.tier.is_none_or(|t| t == tier) && self.glob.as_ref().is_none_or(|g| g.is_match(tool))
    }

    /// Requests per second on average.
    pub fn rate(&self) -> f64 {
        self.raw.requests_per_second
    }

    /// Requests at once before the average applies.
    pub fn burst(&self) -> u32 {
        self.raw.burst
    }

    /// What the rule covers, for messages: `tools 'shell__*' of tier exec`.
    fn describe(&self) -> String {
        match (&self.raw.tool, self.raw.tier) {
            (Some(g), Some(t)) => format!("tools '{g}' of tier {}", t.as_str()),
            (Some(g), None) => format!("tools '{g}'"),
            (None, Some(t)) => format!("{} tools", t.as_str()),
            (None, None) => "every tool".to_owned(),
        }
    }
}

/// A call refused by a per-tool rate limit.
#[derive(Clone, Debug, PartialEq)]
pub struct RateLimited {
    /// How long until the call would be allowed.
    pub retry_after: Duration,
    /// The tool called.
    pub tool: String,
    /// The rule that refused it, described.
    rule: String,
    rate: f64,
    burst: u32,
}

impl RateLimited {
    /// Whole seconds to wait (at least 1), for an HTTP `Retry-After`.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }

    /// Milliseconds to wait (at least 1), for a tool error's `retry_after_ms`.
    pub fn retry_after_ms(&self) -> u64 {
        u64::try_from(self.retry_after.as_millis()).unwrap_or(u64::MAX).max(1)
    }

    /// The tool error: `rate_limited`, with when to retry.
    pub fn to_error(&self) -> Error {
        Error::new(
            ErrorCode::RateLimited,
            format!(
                "'{}' is rate limited ({}: {} a second, bursts of {}); retry in {:.1} s",
                self.tool,
                self.rule,
                self.rate,
                self.burst,
                self.retry_after.as_secs_f64().max(0.001)
            ),
        )
    }
}

/// Most (rule, caller) buckets kept; past it the refilled ones are forgotten, and if all are in
/// use the table starts over (as the hub's address buckets).
const MAX_BUCKETS: usize = 16 * 1024;

/// The per-tool limits of one server or hub, with their buckets.
#[derive(Debug, Default)]
pub struct RateLimiter {
    rules: Vec<ToolRate>,
    buckets: Mutex<HashMap<(usize, String), TokenBucket>>,
}

impl RateLimiter {
    /// A limiter for `rules` (none: every call allowed, at the cost of one emptiness check).
    pub fn new(rules: &[ToolRate]) -> RateLimiter {
        RateLimiter { rules: rules.to_vec(), buckets: Mutex::new(HashMap::new()) }
    }

    /// Whether any rule is set.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// One call of `tool` (of `tier`) by `caller`: a token from the bucket of every rule that
    /// covers it, or none and the longest wait.
    pub fn check(&self, caller: &str, tool: &str, tier: Tier) -> Result<(), RateLimited> {
        self.check_at(caller, tool, tier, Instant::now())
    }

    /// [`RateLimiter::check`] at `now`.
    pub fn check_at(&self, caller: &str, tool: &str, tier: Tier, now: Instant) -> Result<(), RateLimited> {
        if self.rules.is_empty() {
            return Ok(());
        }
        let covering: Vec<usize> = (0..self.rules.len()).filter(|&i| self.rules[i].covers(tool, tier)).collect();
        if covering.is_empty() {
            return Ok(());
        }
        let mut table = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() + covering.len() > MAX_BUCKETS {
            let rules = &self.rules;
            table.retain(|(i, _), b| !b.idle(rules[*i].rate(), rules[*i].burst(), now));
            if table.len() + covering.len() > MAX_BUCKETS {
                table.clear();
            }
        }
        // First every wait, then the tokens: a call refused by one rule takes nothing from the others.
        let mut refused: Option<(usize, Duration)> = None;
        for &i in &covering {
            let r = &self.rules[i];
            let wait = table.entry((i, caller.to_owned())).or_insert_with(|| TokenBucket::full(r.burst(), now)).wait(
                r.rate(),
                r.burst(),
                now,
            );
            if !wait.is_zero() && refused.is_none_or(|(_, w)| wait > w) {
                refused = Some((i, wait));
            }
        }
        if let Some((i, wait)) = refused {
            let r = &self.rules[i];
            return Err(RateLimited {
                retry_after: wait,
                tool: tool.to_owned(),
                rule: r.describe(),
                rate: r.rate(),
                burst: r.burst(),
            });
        }
        for &i in &covering {
            let r = &self.rules[i];
            if let Some(b) = table.get_mut(&(i, caller.to_owned())) {
                let _ = b.take(r.rate(), r.burst(), now);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(tool: Option<&str>, tier: Option<Tier>, rps: f64, burst: u32) -> ToolRate {
        ToolRate::new(tool, tier, rps, burst).unwrap()
    }

    #[test]
    fn a_rule_allows_its_burst_then_its_rate_per_caller() {
        let l = RateLimiter::new(&[rule(Some("shell__*"), None, 10.0, 3)]);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("a", "shell__run_command", Tier::Exec, t0).is_ok());
        }
        let e = l.check_at("a", "shell__run_command", Tier::Exec, t0).unwrap_err();
        assert!((e.retry_after.as_secs_f64() - 0.1).abs() < 1e-6, "{e:?}");
        assert_eq!((e.retry_after_secs(), e.retry_after_ms()), (1, 100));
        let err = e.to_error();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!(err.message.contains("'shell__run_command' is rate limited"), "{}", err.message);
        assert!(err.message.contains("retry in 0.1 s"), "{}", err.message);
        // The rule's tools share the bucket; another caller has its own; other tools are free.
        assert!(l.check_at("a", "shell__start_process", Tier::Exec, t0).is_err());
        assert!(l.check_at("b", "shell__run_command", Tier::Exec, t0).is_ok());
        assert!(l.check_at("a", "fs__read_file", Tier::Read, t0).is_ok());
        // 100 ms later one token is back, and never more than the burst.
        assert!(l.check_at("a", "shell__run_command", Tier::Exec, t0 + Duration::from_millis(100)).is_ok());
        assert!(l.check_at("a", "shell__run_command", Tier::Exec, t0 + Duration::from_millis(100)).is_err());
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.check_at("a", "shell__run_command", Tier::Exec, later).is_ok());
        }
        assert!(l.check_at("a", "shell__run_command", Tier::Exec, later).is_err());
    }

    #[test]
    fn rules_by_tier_and_several_rules_at_once() {
        // (rule's glob, rule's tier, tool, tool's tier, covered)
        type Case<'a> = (Option<&'a str>, Option<Tier>, &'a str, Tier, bool);
        let table: &[Case] = &[
            (None, Some(Tier::Exec), "run_command", Tier::Exec, true),
            (None, Some(Tier::Exec), "read_file", Tier::Read, false),
            (Some("git__*"), Some(Tier::Write), "git__commit", Tier::Write, true),
            (Some("git__*"), Some(Tier::Write), "git__status", Tier::Read, false),
            (Some("git__*"), Some(Tier::Write), "fs__write_file", Tier::Write, false),
            (None, None, "anything", Tier::Read, true),
            (Some("read_file"), None, "read_files", Tier::Read, false),
        ];
        for &(glob, tier, tool, tool_tier, covered) in table {
            assert_eq!(rule(glob, tier, 1.0, 1).covers(tool, tool_tier), covered, "{glob:?} {tier:?} {tool}");
        }
        // A call two rules cover needs a token from both; refused by one, it takes none from the other.
        let l = RateLimiter::new(&[rule(None, None, 1.0, 5), rule(None, Some(Tier::Exec), 1.0, 1)]);
        let t = Instant::now();
        assert!(l.check_at("p", "run", Tier::Exec, t).is_ok());
        assert!(l.check_at("p", "run", Tier::Exec, t).is_err());
        assert!(l.check_at("p", "run", Tier::Exec, t).is_err());
        // The overall rule lost one token to the allowed call only: four reads remain.
        for i in 0..4 {
            assert!(l.check_at("p", "read", Tier::Read, t).is_ok(), "read {i}");
        }
        assert!(l.check_at("p", "read", Tier::Read, t).is_err());
    }

    #[test]
    fn bad_rules_are_refused_where_they_are_read() {
        // (toml, error fragment)
        let table = [
            ("requests_per_second = 0\nburst = 1", "above 0"),
            ("requests_per_second = -1\nburst = 1", "above 0"),
            ("requests_per_second = nan\nburst = 1", "above 0"),
            ("requests_per_second = 1\nburst = 0", "burst"),
            ("tool = \"a[\"\nrequests_per_second = 1\nburst = 1", "does not parse"),
            ("tier = \"admin\"\nrequests_per_second = 1\nburst = 1", "unknown variant"),
            ("requests_per_second = 1\nburst = 1\ntools = \"x\"", "unknown field"),
        ];
        for (text, want) in table {
            let e = toml::from_str::<ToolRate>(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let ok: ToolRate =
            toml::from_str("tool = \"x*\"\ntier = \"exec\"\nrequests_per_second = 2.5\nburst = 4").unwrap();
        assert_eq!((ok.rate(), ok.burst()), (2.5, 4));
        assert_eq!(
            toml::to_string(&ok).unwrap(),
            "tool = \"x*\"\ntier = \"exec\"\nrequests_per_second = 2.5\nburst = 4\n"
        );
    }

    #[test]
    fn the_bucket_table_is_bounded() {
        let l = RateLimiter::new(&[rule(None, None, 1.0, 1)]);
        let t = Instant::now();
        for i in 0..(MAX_BUCKETS + 10) {
            let _ = l.check_at(&i.to_string(), "x", Tier::Read, t);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_BUCKETS);
        assert!(RateLimiter::default().is_empty());
    }
}
