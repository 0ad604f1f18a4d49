//! Rate limits and concurrency caps of the hub's HTTP front: a token bucket per client address
//! (checked before authentication, so a flood of bad tokens costs a bucket lookup), a token
//! bucket and a cap on calls in flight per principal (a token or an OAuth grant), and a cap on
//! stateful sessions, and per-tool rate limits (`[[limits.tool]]`: a glob on the tool name
//! and/or a tier, a rate and a burst, per principal; bastion-policy's [`RateLimiter`], the same
//! check the standalone servers make on stdio). A refusal is HTTP 429 with `Retry-After` and a
//! JSON-RPC error whose data code is `rate_limited` (or `too_many_requests_in_flight`,
//! `too_many_sessions`).
//!
//! The defaults are far above what a model calling tools back to back needs (a few calls a
//! second, one at a time; a script may burst thousands): 500 requests a second per principal
//! after a burst of 5 000, 64 in flight, 1 000 a second per address after 10 000. They stop a
//! runaway loop or a flood. The hub itself serves about 12 000 calls a second on two cores, so
//! a benchmark of the hub (`cargo xtask bench hub`, the load test) runs with
//! `--no-rate-limits`. Written here rather than taken from `governor`: the hub serves
//! requests on one thread, so a `Mutex<HashMap>` is uncontended, and what it needs around the
//! bucket (keys that expire, a bounded table, the in-flight count held until the response body
//! ends, our own 429 body) is most of the code either way.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bastion_policy::ratelimit::{RateLimited, RateLimiter, TokenBucket, ToolRate};
use serde::Deserialize;

/// The `[limits]` table of the hub's configuration file (and its flags).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Requests per second a principal may make on average (0: no limit).
    pub requests_per_second: f64,
    /// Requests a principal may make at once before the average applies.
    pub burst: u32,
    /// Requests of one principal in flight at once (0: no limit).
    pub concurrent: u32,
    /// Requests per second from one client address, before authentication (0: no limit).
    /// Behind a reverse proxy every client shares the proxy's address.
    pub address_requests_per_second: f64,
    /// Burst of the per-address bucket.
    pub address_burst: u32,
    /// Stateful sessions open at once (`--stateful`; idle ones expire after 30 minutes).
    pub max_sessions: u32,
    /// Per-tool rate limits (`[[limits.tool]]`), per principal; none by default.
    pub tool: Vec<ToolRate>,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            requests_per_second: 500.0,
            burst: 5000,
            concurrent: 64,
            address_requests_per_second: 1000.0,
            address_burst: 10_000,
            max_sessions: 1000,
            tool: Vec::new(),
        }
    }
}

impl LimitsConfig {
    /// No limit at all (tests and benchmarks that measure the hub itself).
    pub fn unlimited() -> Self {
        LimitsConfig {
            requests_per_second: 0.0,
            burst: 0,
            concurrent: 0,
            address_requests_per_second: 0.0,
            address_burst: 0,
            max_sessions: 0,
            tool: Vec::new(),
        }
    }

    /// Checks the values: rates finite and not negative, a burst of at least 1 where a rate is set.
    pub fn check(&self) -> Result<(), String> {
        for (name, rate, burst) in [
            ("requests_per_second", self.requests_per_second, self.burst),
            ("address_requests_per_second", self.address_requests_per_second, self.address_burst),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!("limits.{name} must be a number of at least 0 (got {rate})"));
            }
            if rate > 0.0 && burst == 0 {
                return Err(format!("limits.{name} is set, so its burst must be at least 1"));
            }
        }
        Ok(())
    }
}

/// The tool a `tools/call` body calls and its arguments, read only when a per-tool limit is
/// set and the call did not take the direct path (which parsed them already).
pub fn called(body: &[u8]) -> Option<(String, Option<rmcp::model::JsonObject>)> {
    #[derive(Deserialize)]
    struct Call {
        method: Option<String>,
        params: Option<Params>,
    }
    #[derive(Deserialize)]
    struct Params {
        name: Option<String>,
        arguments: Option<rmcp::model::JsonObject>,
    }
    let call: Call = serde_json::from_slice(body).ok()?;
    if call.method.as_deref() != Some("tools/call") {
        return None;
    }
    let params = call.params?;
    Some((params.name?, params.arguments))
}

/// One call under the per-tool limits: the tool it really calls (`call_tool` seen through) is
/// looked up in the hub, and a refusal is journaled as the call's outcome (`rate_limited`). The
/// caller answers it 429 with `Retry-After` ([`tool_refusal`] on `/mcp`).
pub fn check_tool(
    limiter: &Limiter,
    hub: &crate::router::Hub,
    principal: &bastion_auth::Principal,
    tool: &str,
    arguments: Option<&rmcp::model::JsonObject>,
) -> Result<(), RateLimited> {
    let Some((tool, tier)) = hub.called_tool_tier(tool, arguments) else { return Ok(()) };
    let refused = limiter.tool(&principal.name, &tool, tier);
    if refused.is_err() {
        hub.refused(principal, &tool, bastion_policy::ErrorCode::RateLimited.as_str());
    }
    refused
}

/// The 429 of a per-tool rate limit on `/mcp`: a JSON-RPC error whose data has the code and
/// `retry_after_ms`.
pub fn tool_refusal(limited: &RateLimited) -> axum::response::Response {
    use axum::http::{HeaderValue, StatusCode, header};
    let error = limited.to_error();
    let body = serde_json::json!({
        "jsonrpc": "2.0",
        "id": null,
        "error": {
            "code": -32000,
            "message": format!("Too Many Requests: {}", error.message),
            "data": {"code": error.code, "retry_after_ms": limited.retry_after_ms()},
        },
    });
    let mut r = crate::refused::json_rpc(StatusCode::TOO_MANY_REQUESTS, -32000, error.code.as_str(), "");
    *r.body_mut() = axum::body::Body::from(body.to_string());
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(limited.retry_after_secs()));
    r
}

/// Why a request was refused with 429.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limited {
    /// A token bucket is empty; retry after this long.
    Rate(Duration),
    /// The principal has `concurrent` requests in flight.
    InFlight,
    /// `max_sessions` stateful sessions are open.
    Sessions,
}

impl Limited {
    /// The stable code in the refusal's JSON-RPC error data and in the journal.
    pub fn code(self) -> &'static str {
        match self {
            Limited::Rate(_) => "rate_limited",
            Limited::InFlight => "too_many_requests_in_flight",
            Limited::Sessions => "too_many_sessions",
        }
    }

    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after(self) -> u64 {
        match self {
            Limited::Rate(d) => d.as_secs() + u64::from(d.subsec_nanos() > 0),
            Limited::InFlight | Limited::Sessions => 1,
        }
        .max(1)
    }
}

/// Buckets by key, bounded: past [`MAX_KEYS`] the refilled ones are forgotten, and if all are in
/// use the table starts over (a flood from that many addresses is not stopped by this anyway).
#[derive(Debug)]
struct Buckets<K> {
    rate: f64,
    burst: u32,
    table: HashMap<K, TokenBucket>,
}

/// Most keys a bucket table holds.
const MAX_KEYS: usize = 16 * 1024;

impl<K: std::hash::Hash + Eq> Buckets<K> {
    fn new(rate: f64, burst: u32) -> Self {
        Buckets { rate, burst, table: HashMap::new() }
    }

    fn take(&mut self, key: K, now: Instant) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        if self.table.len() >= MAX_KEYS && !self.table.contains_key(&key) {
            let (rate, burst) = (self.rate, self.burst);
            self.table.retain(|_, b| !b.idle(rate, burst, now));
            if self.table.len() >= MAX_KEYS {
                self.table.clear();
            }
        }
        let (rate, burst) = (self.rate, self.burst);
        self.table.entry(key).or_insert_with(|| TokenBucket::full(burst, now)).take(rate, burst, now)
    }
}

/// The limiter of one hub. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Limiter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: LimitsConfig,
    addresses: Mutex<Buckets<AddressKey>>,
    principals: Mutex<Buckets<String>>,
    tools: RateLimiter,
    in_flight: Mutex<HashMap<String, u32>>,
}

/// A client address as limited: an IPv4 address, or an IPv6 /64 (one host's whole prefix).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
enum AddressKey {
    V4(u32),
    V6(u64),
    /// No address known (requests not from a socket, such as in-process tests).
    Unknown,
}

impl AddressKey {
    fn of(ip: Option<IpAddr>) -> AddressKey {
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(a)) => AddressKey::V4(a.to_bits()),
            Some(IpAddr::V6(a)) => AddressKey::V6((a.to_bits() >> 64) as u64),
            None => AddressKey::Unknown,
        }
    }
}

/// One request of a principal in flight; dropping it (when the response body has been sent)
/// frees its place.
#[derive(Debug)]
pub struct InFlight {
    inner: Arc<Inner>,
    name: String,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut table = self.inner.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = table.get_mut(&self.name) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                table.remove(&self.name);
            }
        }
    }
}

impl Limiter {
    /// A limiter with these limits.
    pub fn new(config: LimitsConfig) -> Limiter {
        let inner = Inner {
            addresses: Mutex::new(Buckets::new(config.address_requests_per_second, config.address_burst)),
            principals: Mutex::new(Buckets::new(config.requests_per_second, config.burst)),
            in_flight: Mutex::new(HashMap::new()),
            tools: RateLimiter::new(&config.tool),
            config,
        };
        Limiter { inner: Arc::new(inner) }
    }

    /// The limits.
    pub fn config(&self) -> &LimitsConfig {
        &self.inner.config
    }

    /// One request from `ip`, before it is authenticated.
    pub fn address(&self, ip: Option<IpAddr>) -> Result<(), Limited> {
        self.address_at(ip, Instant::now())
    }

    fn address_at(&self, ip: Option<IpAddr>, now: Instant) -> Result<(), Limited> {
        let mut buckets = self.inner.addresses.lock().unwrap_or_else(PoisonError::into_inner);
        buckets.take(AddressKey::of(ip), now).map_err(Limited::Rate)
    }

    /// One request of the principal `name`: its rate, then its place among the calls in flight.
    pub fn principal(&self, name: &str) -> Result<Option<InFlight>, Limited> {
        self.principal_at(name, Instant::now())
    }

    fn principal_at(&self, name: &str, now: Instant) -> Result<Option<InFlight>, Limited> {
        {
            let mut buckets = self.inner.principals.lock().unwrap_or_else(PoisonError::into_inner);
            if buckets.rate > 0.0 {
                buckets.take(name.to_owned(), now).map_err(Limited::Rate)?;
            }
        }
        let cap = self.inner.config.concurrent;
        if cap == 0 {
            return Ok(None);
        }
        let mut table = self.inner.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        let n = table.entry(name.to_owned()).or_insert(0);
        if *n >= cap {
            return Err(Limited::InFlight);
        }
        *n += 1;
        Ok(Some(InFlight { inner: self.inner.clone(), name: name.to_owned() }))
    }

    /// Whether any per-tool rate limit is set (without one, a call's tool is not looked up).
    pub fn has_tool_limits(&self) -> bool {
        !self.inner.tools.is_empty()
    }

    /// One call of `tool` (of `tier`) by the principal `name`, under the per-tool limits.
    pub fn tool(&self, name: &str, tool: &str, tier: bastion_policy::Tier) -> Result<(), RateLimited> {
        self.inner.tools.check(name, tool, tier)
    }

    /// Whether a new stateful session may open when `open` are.
    pub fn session(&self, open: usize) -> Result<(), Limited> {
        let cap = self.inner.config.max_sessions as usize;
        if cap > 0 && open >= cap { Err(Limited::Sessions) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(rps: f64, burst: u32, concurrent: u32) -> LimitsConfig {
        LimitsConfig {
            requests_per_second: rps,
            burst,
            concurrent,
            address_requests_per_second: rps,
            address_burst: burst,
            max_sessions: 2,
            tool: Vec::new(),
        }
    }

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let l = Limiter::new(limits(10.0, 3, 0));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.principal_at("a", t0).is_ok());
        }
        let Err(Limited::Rate(wait)) = l.principal_at("a", t0) else { panic!("the fourth is refused") };
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        assert_eq!(Limited::Rate(wait).retry_after(), 1);
        assert_eq!(Limited::Rate(Duration::from_millis(2500)).retry_after(), 3);
        // Another principal has its own bucket; 100 ms later one token is back.
        assert!(l.principal_at("b", t0).is_ok());
        assert!(l.principal_at("a", t0 + Duration::from_millis(100)).is_ok());
        assert!(l.principal_at("a", t0 + Duration::from_millis(100)).is_err());
        // Never more than the burst, however long the wait.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(l.principal_at("a", later).is_ok());
        }
        assert!(l.principal_at("a", later).is_err());
    }

    #[test]
    fn back_to_back_calls_are_never_limited_by_default() {
        // A model calling tools back to back: a few hundred calls as fast as they come.
        let l = Limiter::new(LimitsConfig::default());
        let t0 = Instant::now();
        for i in 0..1500u32 {
            let t = t0 + Duration::from_millis(u64::from(i));
            assert!(l.address_at(Some(IpAddr::from([127, 0, 0, 1])), t).is_ok());
            assert!(l.principal_at("ci", t).is_ok(), "call {i}");
        }
    }

    #[test]
    fn addresses_by_ipv4_and_ipv6_prefix() {
        let l = Limiter::new(limits(1.0, 1, 0));
        let t = Instant::now();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(l.address_at(ip("10.0.0.1"), t).is_ok());
        assert!(l.address_at(ip("10.0.0.1"), t).is_err());
        assert!(l.address_at(ip("::ffff:10.0.0.1"), t).is_err(), "the mapped form is the same address");
        assert!(l.address_at(ip("10.0.0.2"), t).is_ok());
        assert!(l.address_at(ip("2001:db8:1:2::1"), t).is_ok());
        assert!(l.address_at(ip("2001:db8:1:2::ffff"), t).is_err(), "one /64 is one client");
        assert!(l.address_at(ip("2001:db8:1:3::1"), t).is_ok());
    }

    #[test]
    fn in_flight_cap_frees_on_drop() {
        let l = Limiter::new(limits(0.0, 0, 2));
        let a = l.principal("p").unwrap();
        let b = l.principal("p").unwrap();
        assert_eq!(l.principal("p").unwrap_err(), Limited::InFlight);
        assert!(l.principal("q").unwrap().is_some(), "per principal");
        drop(a);
        let c = l.principal("p").unwrap();
        drop((b, c));
        assert!(l.inner.in_flight.lock().unwrap().get("p").is_none(), "no entry left behind");
    }

    #[test]
    fn key_table_is_bounded() {
        let l = Limiter::new(limits(1.0, 1, 0));
        let t = Instant::now();
        for i in 0..(MAX_KEYS as u32 + 10) {
            let _ = l.address_at(Some(IpAddr::from(i.to_be_bytes())), t);
        }
        assert!(l.inner.addresses.lock().unwrap().table.len() <= MAX_KEYS);
    }

    #[test]
    fn per_tool_limits_from_the_limits_table() {
        let config: LimitsConfig = toml::from_str(
            "burst = 10\n[[tool]]\ntool = \"fs__read_*\"\nrequests_per_second = 1\nburst = 1\n\
             [[tool]]\ntier = \"exec\"\nrequests_per_second = 0.5\nburst = 2\n",
        )
        .unwrap();
        assert_eq!(config.tool.len(), 2);
        assert_eq!(config.burst, 10);
        let l = Limiter::new(config);
        assert!(l.has_tool_limits());
        assert!(l.tool("a", "fs__read_file", bastion_policy::Tier::Read).is_ok());
        let refused = l.tool("a", "fs__read_file", bastion_policy::Tier::Read).unwrap_err();
        assert_eq!((refused.retry_after_secs(), refused.to_error().code.as_str()), (1, "rate_limited"));
        assert!(l.tool("b", "fs__read_file", bastion_policy::Tier::Read).is_ok(), "per principal");
        assert!(l.tool("a", "fs__list_directory", bastion_policy::Tier::Read).is_ok());
        assert!(l.tool("a", "shell__run_command", bastion_policy::Tier::Exec).is_ok());
        assert!(l.tool("a", "shell__run_command", bastion_policy::Tier::Exec).is_ok());
        assert!(l.tool("a", "shell__run_command", bastion_policy::Tier::Exec).is_err());
        assert!(!Limiter::new(LimitsConfig::default()).has_tool_limits(), "none by default");
        // A bad rule is refused where the file is read.
        let e = toml::from_str::<LimitsConfig>("[[tool]]\nrequests_per_second = 1\nburst = 0\n").unwrap_err();
        assert!(e.to_string().contains("burst must be at least 1"), "{e}");
    }

    #[test]
    fn the_called_tool_is_read_from_a_tools_call_body() {
        // (body, tool, has arguments)
        let table: &[(&str, Option<(&str, bool)>)] = &[
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"a":1}}}"#,
                Some(("x", true)),
            ),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"_meta":{}}"#, Some(("x", false))),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, None),
            (r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#, None),
            ("not json", None),
        ];
        for (body, want) in table {
            let got = called(body.as_bytes());
            assert_eq!(got.as_ref().map(|(t, a)| (t.as_str(), a.is_some())), *want, "{body}");
        }
    }

    #[test]
    fn sessions_and_config_checks() {
        let l = Limiter::new(limits(0.0, 0, 0));
        assert!(l.session(1).is_ok());
        assert_eq!(l.session(2), Err(Limited::Sessions));
        assert!(Limiter::new(LimitsConfig::unlimited()).session(1_000_000).is_ok());
        assert!(LimitsConfig::default().check().is_ok());
        assert!(limits(-1.0, 1, 0).check().unwrap_err().contains("at least 0"));
        assert!(limits(f64::NAN, 1, 0).check().is_err());
        assert!(limits(5.0, 0, 0).check().unwrap_err().contains("burst"));
    }
}
