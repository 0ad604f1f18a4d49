//! Fetching client ID metadata documents (AS-05) without letting a client point the hub at its
//! own network (SSRF).
//!
//! The host is resolved here, every address is classified, and the connection goes to the
//! checked address (reqwest's `resolve` override pins it), so a DNS answer that changes between
//! the check and the connection cannot reach a private address. Redirects are refused, not
//! followed. Only `200` with a JSON content type, at most [`MAX_DOCUMENT`] bytes, within
//! [`FETCH_TIMEOUT`] overall.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use url::{Host, Url};

/// Largest document accepted (a 5 KiB cap broke claude.ai's document).
pub const MAX_DOCUMENT: usize = 64 * 1024;
/// Longest a fetch may take, resolution included.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a fetched document is cached, whatever its `max-age`.
pub const MAX_CACHE: u64 = 3600;
/// How long a document without caching headers is cached.
pub const DEFAULT_CACHE: u64 = 300;

/// Why an address is not a public unicast address, or `None` if it is.
pub fn blocked(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => blocked_v4(a),
        IpAddr::V6(a) => blocked_v6(a),
    }
}

fn blocked_v4(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, o2, _] = a.octets();
    Some(match (o0, o1, o2) {
        (0, _, _) => "unspecified (0.0.0.0/8)",
        (10, _, _) => "private (10.0.0.0/8)",
        (100, 64..=127, _) => "shared address space (100.64.0.0/10, CGNAT)",
        (127, _, _) => "loopback (127.0.0.0/8)",
        (169, 254, _) => "link-local (169.254.0.0/16)",
        (172, 16..=31, _) => "private (172.16.0.0/12)",
        (192, 0, 0) => "IETF protocol assignments (192.0.0.0/24)",
        (192, 0, 2) => "documentation (192.0.2.0/24)",
        (192, 88, 99) => "6to4 relay anycast (192.88.99.0/24)",
        (192, 168, _) => "private (192.168.0.0/16)",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (198, 51, 100) => "documentation (198.51.100.0/24)",
        (203, 0, 113) => "documentation (203.0.113.0/24)",
        (224..=239, _, _) => "multicast (224.0.0.0/4)",
        (240..=255, _, _) => "reserved or broadcast (240.0.0.0/4)",
        _ => return None,
    })
}

fn blocked_v6(a: Ipv6Addr) -> Option<&'static str> {
    let s = a.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if a.is_unspecified() {
        return Some("unspecified (::)");
    }
    if a.is_loopback() {
        return Some("loopback (::1)");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and the deprecated IPv4-compatible (::a.b.c.d): the v4 rules.
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        return blocked_v4(embedded(s[6], s[7])).or((s[5] == 0).then_some("IPv4-compatible (::/96)"));
    }
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return blocked_v4(embedded(s[6], s[7]));
    }
    // 6to4 (2002::/16) embeds an IPv4 address in bits 16..48.
    if s[0] == 0x2002 {
        return blocked_v4(embedded(s[1], s[2]));
    }
    Some(match s[0] {
        0x0064 if s[1] == 0xff9b && s[2] == 1 => "local-use NAT64 (64:ff9b:1::/48)",
        0x0100 if s[1..4] == [0, 0, 0] => "discard-only (100::/64)",
        0x2001 if s[1] < 0x0200 => "IETF protocol assignments, Teredo, ORCHID (2001::/23)",
        0x2001 if s[1] == 0x0db8 => "documentation (2001:db8::/32)",
        0x3fff if s[1] < 0x1000 => "documentation (3fff::/20)",
        x if x & 0xfe00 == 0xfc00 => "unique local (fc00::/7)",
        x if x & 0xffc0 == 0xfe80 => "link-local (fe80::/10)",
        x if x & 0xffc0 == 0xfec0 => "site-local (fec0::/10)",
        x if x & 0xff00 == 0xff00 => "multicast (ff00::/8)",
        _ => return None,
    })
}

/// Whether `client_id` names a metadata document: an `https://` URL with a path.
pub fn is_metadata_url(client_id: &str) -> bool {
    client_id.starts_with("https://") && metadata_url(client_id).is_ok()
}

/// Parses and checks a metadata document URL (draft-ietf-oauth-client-id-metadata-document §3):
/// https, a host, a path other than `/`, no fragment, no user information, no dot segments.
pub fn metadata_url(client_id: &str) -> Result<Url, String> {
    let url = Url::parse(client_id).map_err(|e| format!("client_id '{client_id}' is not a URL: {e}"))?;
    if url.scheme() != "https" {
        return Err(format!("client_id '{client_id}' must be an https URL"));
    }
    if url.host().is_none() {
        return Err(format!("client_id '{client_id}' has no host"));
    }
    if url.path() == "/" || url.path().is_empty() {
        return Err(format!("client_id '{client_id}' needs a path"));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(format!("client_id '{client_id}' must have neither fragment nor user information"));
    }
    // `Url` removes dot segments; a URL that changed on parsing is not the one the client sent.
    if url.as_str() != client_id {
        return Err(format!("client_id '{client_id}' is not in normal form (expected '{url}')"));
    }
    Ok(url)
}

/// A fetched document.
#[derive(Debug)]
pub struct Fetched {
    /// The body (JSON, at most [`MAX_DOCUMENT`] bytes).
    pub body: Vec<u8>,
    /// Seconds it may be cached (0: not at all).
    pub cache_for: u64,
}

/// How documents are fetched.
#[derive(Clone, Debug, Default)]
pub struct FetchPolicy {
    /// Hosts exempt from the private-address check (operator's `cimd_allow_private`).
    pub allow_private: Vec<String>,
    /// Extra trusted root certificates (PEM), e.g. an internal CA.
    pub extra_roots: Vec<Vec<u8>>,
}

impl FetchPolicy {
    fn exempt(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.allow_private.iter().any(|h| h.trim_start_matches('[').trim_end_matches(']').eq_ignore_ascii_case(host))
    }
}

/// Resolves `url`'s host and picks the address to connect to: the first public one (or the
/// first at all for an exempt host). `Ok(None)` for an IP literal that passed the check.
pub async fn pick_address(url: &Url, policy: &FetchPolicy) -> Result<Option<SocketAddr>, String> {
    let port = url.port_or_known_default().unwrap_or(443);
    let host = url.host().ok_or("no host")?;
    let name = url.host_str().unwrap_or("");
    let exempt = policy.exempt(name);
    let literal = match host {
        Host::Ipv4(a) => Some(IpAddr::V4(a)),
        Host::Ipv6(a) => Some(IpAddr::V6(a)),
        Host::Domain(_) => None,
    };
    if let Some(ip) = literal {
        return match blocked(ip) {
            Some(why) if !exempt => Err(format!("{ip} is a {why} address; metadata documents must be public")),
            _ => Ok(None),
        };
    }
    let addrs: Vec<SocketAddr> =
        tokio::net::lookup_host((name, port)).await.map_err(|e| format!("cannot resolve {name}: {e}"))?.collect();
    if exempt {
        return addrs.first().copied().map(Some).ok_or_else(|| format!("{name} has no address"));
    }
    match addrs.iter().find(|a| blocked(a.ip()).is_none()) {
        Some(a) => Ok(Some(*a)),
        None => {
            let why = addrs.first().and_then(|a| blocked(a.ip()).map(|w| format!("{} is {w}", a.ip())));
            Err(format!(
                "{name} resolves to no public address ({}); metadata documents must be public",
                why.unwrap_or_else(|| "no address".into())
            ))
        }
    }
}

/// Fetches a metadata document under the rules of this module.
pub async fn fetch(url: &Url, policy: &FetchPolicy) -> Result<Fetched, String> {
    match tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(url, policy)).await {
        Ok(r) => r,
        Err(_) => Err(format!("fetching {url} took longer than {} s", FETCH_TIMEOUT.as_secs())),
    }
}

async fn fetch_inner(url: &Url, policy: &FetchPolicy) -> Result<Fetched, String> {
    let pinned = pick_address(url, policy).await?;
    // reqwest is built without a provider (see the workspace manifest); the hub installs ring at
    // start, and this makes the crate usable on its own too (an error only means one is set).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(true)
        .timeout(FETCH_TIMEOUT)
        .user_agent(concat!("bastion/", env!("CARGO_PKG_VERSION")));
    if let (Some(addr), Some(name)) = (pinned, url.host_str()) {
        builder = builder.resolve(name, addr);
    }
    for pem in &policy.extra_roots {
        let cert = reqwest::Certificate::from_pem(pem).map_err(|e| format!("extra CA certificate: {e}"))?;
        builder = builder.tls_certs_merge([cert]);
    }
    let client = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
    let mut resp = client
        .get(url.clone())
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|e| format!("fetching {url}: {e}"))?;
    let status = resp.status();
    if status.is_redirection() {
        return Err(format!("{url} answered {status}: redirects are not followed"));
    }
    if status != reqwest::StatusCode::OK {
        return Err(format!("{url} answered {status}, not 200"));
    }
    let headers = resp.headers();
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let essence = ctype.split(';').next().unwrap_or("").trim();
    if !(essence == "application/json" || essence.ends_with("+json")) {
        return Err(format!("{url} is not JSON (content-type '{ctype}')"));
    }
    if resp.content_length().is_some_and(|n| n > MAX_DOCUMENT as u64) {
        return Err(format!("{url} is larger than {MAX_DOCUMENT} bytes"));
    }
    let cache_for = cache_seconds(headers.get("cache-control").and_then(|v| v.to_str().ok()));
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| format!("reading {url}: {e}"))? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(format!("{url} is larger than {MAX_DOCUMENT} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Fetched { body, cache_for })
}

/// Seconds to cache a document with this `Cache-Control` value.
pub fn cache_seconds(cache_control: Option<&str>) -> u64 {
    let Some(cc) = cache_control else { return DEFAULT_CACHE };
    let mut max_age = None;
    for d in cc.split(',').map(|d| d.trim().to_ascii_lowercase()) {
        if d == "no-store" || d == "no-cache" || d == "private" {
            return 0;
        }
        if let Some(v) = d.strip_prefix("max-age=") {
            max_age = Some(v.trim_matches('"').parse::<u64>().unwrap_or(0));
        }
    }
    max_age.unwrap_or(DEFAULT_CACHE).min(MAX_CACHE)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AS-05: SSRF address classification, v4, v6 and v4 embedded in v6.
    #[test]
    fn as05_address_classification_table() {
        let blocked_cases = [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.255.255",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::10.0.0.1",
            "64:ff9b:1::1",
            "2002:7f00:0001::1",
            "2002:c0a8:0101::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "3fff::1",
            "2001::1",
            "2001:10::1",
            "100::1",
        ];
        for a in blocked_cases {
            let ip: IpAddr = a.parse().unwrap();
            assert!(blocked(ip).is_some(), "{a} should be blocked");
        }
        let public_cases = [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "104.18.0.1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "2001:4860:4860::8888",
        ];
        for a in public_cases {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(blocked(ip), None, "{a} should be public");
        }
    }

    #[test]
    fn as05_metadata_urls() {
        assert!(is_metadata_url("https://chatgpt.com/oauth/client.json"));
        assert!(is_metadata_url("https://claude.ai/oauth/mcp-oauth-client-metadata"));
        for bad in [
            "http://chatgpt.com/oauth/client.json",
            "https://chatgpt.com/",
            "https://chatgpt.com",
            "https://chatgpt.com/a#b",
            "https://u@chatgpt.com/a",
            "https://chatgpt.com/a/../b",
            "bcl_abc",
        ] {
            assert!(!is_metadata_url(bad), "{bad}");
        }
    }

    /// AS-05: a metadata URL on a private address is refused before any connection.
    #[tokio::test]
    async fn as05_private_addresses_are_refused_before_connecting() {
        let policy = FetchPolicy::default();
        for u in ["https://127.0.0.1/client.json", "https://[::1]/c", "https://10.0.0.1:8443/c", "https://localhost/c"]
        {
            let e = fetch(&Url::parse(u).unwrap(), &policy).await.unwrap_err();
            assert!(e.contains("must be public"), "{u}: {e}");
        }
        // The operator's allowlist exempts a named host (here the connection then fails: nothing
        // listens on port 9 with TLS).
        let policy = FetchPolicy { allow_private: vec!["127.0.0.1".into()], extra_roots: vec![] };
        let e = fetch(&Url::parse("https://127.0.0.1:9/c").unwrap(), &policy).await.unwrap_err();
        assert!(!e.contains("must be public"), "{e}");
    }

    /// MCP Registry CVE-2026-44430: the filter missed 6to4 (`2002::/16`), NAT64 (`64:ff9b::/96`,
    /// `64:ff9b:1::/48`), site-local (`fec0::/10`); also the IPv4-mapped and metadata-service
    /// forms. Each is refused before any connection, as a literal and as what a name resolves
    /// to; the address checked is the one connected to (`pick_address` → reqwest's `resolve`),
    /// so a second DNS answer is never asked for.
    #[tokio::test]
    async fn cve_2026_44430_ssrf_ranges_and_names() {
        for a in [
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::8.8.8.8",
            "fec0::1",
            "feff::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "169.254.169.254",
            "169.254.0.1",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            assert!(blocked(ip).is_some(), "{a} should be blocked");
            let url = match ip {
                IpAddr::V4(v4) => format!("https://{v4}/client.json"),
                IpAddr::V6(v6) => format!("https://[{v6}]/client.json"),
            };
            let e = pick_address(&Url::parse(&url).unwrap(), &FetchPolicy::default()).await.unwrap_err();
            assert!(e.contains("must be public"), "{url}: {e}");
        }
        // A name whose every address is internal (what a rebinding name answers at check time).
        let e = pick_address(&Url::parse("https://localhost/c").unwrap(), &FetchPolicy::default()).await.unwrap_err();
        assert!(e.contains("resolves to no public address"), "{e}");
    }

    #[test]
    fn cache_control() {
        assert_eq!(cache_seconds(None), DEFAULT_CACHE);
        assert_eq!(cache_seconds(Some("max-age=60")), 60);
        assert_eq!(cache_seconds(Some("public, max-age=86400")), MAX_CACHE);
        assert_eq!(cache_seconds(Some("no-store")), 0);
        assert_eq!(cache_seconds(Some("max-age=60, no-cache")), 0);
        assert_eq!(cache_seconds(Some("max-age=x")), 0);
    }
}
