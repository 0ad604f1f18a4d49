//! Redirect URIs (AS-03, RFC 8252): which ones a client may register, and how the hub shows and
//! uses them.
//!
//! Accepted: `https://` with a host; `http://` only to a loopback host (`127.0.0.1`,
//! `localhost`, `[::1]`, any port, RFC 8252 §7.3); a private-use scheme such as
//! `cursor://anysphere.cursor-mcp/oauth/callback` (RFC 8252 §7.1; PKCE protects it). Refused:
//! fragments, user info, `http://` elsewhere, and schemes a browser would run or read locally
//! (`javascript:`, `data:`, `file:`, ...). Registered values are later compared byte for byte.

use url::{Host, Url};

/// Longest redirect URI accepted.
pub const MAX_LEN: usize = 2000;

/// Schemes never accepted as a redirect target: a browser would run them, read local files, or
/// they carry no callback at all.
const DENIED_SCHEMES: &[&str] = &[
    "javascript",
    "data",
    "file",
    "vbscript",
    "about",
    "blob",
    "filesystem",
    "view-source",
    "chrome",
    "ftp",
    "ws",
    "wss",
    "mailto",
    "tel",
    "sms",
    "jar",
];

/// What kind of target a valid redirect URI is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `https://host/...`.
    Https,
    /// `http://127.0.0.1:PORT/...` and friends: a program on the user's own machine.
    Loopback,
    /// `cursor://...`: an app registered for the scheme.
    PrivateUse,
}

/// Checks one redirect URI; the reason is meant for `error_description`.
pub fn check(uri: &str) -> Result<Kind, String> {
    if uri.len() > MAX_LEN {
        return Err(format!("redirect URI longer than {MAX_LEN} characters"));
    }
    // Only the characters RFC 3986 allows in a URI: no spaces, quotes, angle brackets or
    // controls that could leak into HTML, headers or a CSP.
    if let Some(c) = uri.chars().find(|c| !uri_char(*c)) {
        return Err(format!("redirect URI contains the character {c:?}"));
    }
    let url = Url::parse(uri).map_err(|e| format!("redirect URI '{uri}' is not an absolute URI: {e}"))?;
    // What goes into a Location is the parsed URL serialised again, and the parser decodes
    // percent-escapes in host names (`https:/a%27b` becomes `https://a'b/`): the serialisation
    // must pass the same check as the text.
    if let Some(c) = url.as_str().chars().find(|c| !uri_char(*c)) {
        return Err(format!("redirect URI '{uri}' names a host with the character {c:?}"));
    }
    if url.fragment().is_some() || uri.contains('#') {
        return Err(format!("redirect URI '{uri}' has a fragment"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("redirect URI '{uri}' has user information"));
    }
    match url.scheme() {
        "https" => match url.host() {
            Some(_) => Ok(Kind::Https),
            None => Err(format!("redirect URI '{uri}' has no host")),
        },
        "http" => {
            if url.host().is_some_and(|h| is_loopback(&h)) {
                Ok(Kind::Loopback)
            } else {
                Err(format!(
                    "redirect URI '{uri}': plain http is only for loopback (127.0.0.1, localhost, [::1]); use https"
                ))
            }
        }
        s if DENIED_SCHEMES.contains(&s) => Err(format!("redirect URI '{uri}': the scheme '{s}' is not allowed")),
        _ if url.cannot_be_a_base() && url.path().is_empty() => Err(format!("redirect URI '{uri}' has no target")),
        _ => Ok(Kind::PrivateUse),
    }
}

/// A character RFC 3986 allows in a URI.
fn uri_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&()*+,;=%".contains(c)
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(a) => *a == std::net::Ipv4Addr::LOCALHOST,
        Host::Ipv6(a) => *a == std::net::Ipv6Addr::LOCALHOST,
    }
}

/// Keeps the valid URIs of a metadata document; errors if none is left. The reasons for the dropped
/// ones are returned too (logged).
pub fn filter(uris: &[String]) -> Result<(Vec<String>, Vec<String>), String> {
    let mut kept = vec![];
    let mut dropped = vec![];
    for u in uris {
        match check(u) {
            Ok(_) if !kept.contains(u) => kept.push(u.clone()),
            Ok(_) => {}
            Err(why) => dropped.push(why),
        }
    }
    if kept.is_empty() {
        return Err(dropped.first().cloned().unwrap_or_else(|| "redirect_uris is empty".to_owned()));
    }
    Ok((kept, dropped))
}

/// What the consent page names as the destination: the host (`chatgpt.com`), with the port for
/// loopback (`127.0.0.1:8976`), or `scheme://host` for an app scheme.
pub fn display_target(uri: &str) -> String {
    let Ok(url) = Url::parse(uri) else { return uri.to_owned() };
    let host = url.host_str().unwrap_or("");
    match url.scheme() {
        "https" => host.to_owned(),
        "http" => match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        },
        s => format!("{s}://{host}"),
    }
}

/// The CSP source expression that lets the consent form's redirect reach this URI
/// (`https://chatgpt.com`, `http://127.0.0.1:8976`, `cursor:`). Chromium applies `form-action`
/// to the redirects that follow a form submission, so `'self'` alone would block the 303.
pub fn csp_source(uri: &str) -> Option<String> {
    let url = Url::parse(uri).ok()?;
    let safe = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'[' | b']' | b':'));
    let src = match url.scheme() {
        "http" | "https" => {
            url.host_str()?;
            url.origin().ascii_serialization()
        }
        s => format!("{s}:"),
    };
    let body = src.replace("://", "");
    safe(&body).then_some(src)
}

/// `uri` with `params` appended to its query (existing query parameters kept).
pub fn with_params(uri: &str, params: &[(&str, &str)]) -> Option<String> {
    let mut url = Url::parse(uri).ok()?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            q.append_pair(k, v);
        }
    }
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AS-03: the redirect URI table.
    #[test]
    fn as03_redirect_uri_table() {
        use Kind::*;
        let cases: &[(&str, Result<Kind, &str>)] = &[
            ("https://chatgpt.com/connector_platform_oauth_redirect", Ok(Https)),
            ("https://chatgpt.com/connector/oauth/abc123", Ok(Https)),
            ("https://claude.ai/api/mcp/auth_callback", Ok(Https)),
            ("https://claude.com/api/mcp/auth_callback", Ok(Https)),
            ("https://www.cursor.com/agents/mcp/oauth/callback", Ok(Https)),
            ("https://app.example/cb?x=1", Ok(Https)),
            ("http://localhost:8787/callback", Ok(Loopback)),
            ("http://127.0.0.1:8976/cb", Ok(Loopback)),
            ("http://127.0.0.1/cb", Ok(Loopback)),
            ("http://[::1]:33418/", Ok(Loopback)),
            ("cursor://anysphere.cursor-mcp/oauth/callback", Ok(PrivateUse)),
            ("com.example.app:/oauth2redirect", Ok(PrivateUse)),
            ("http://example.com/cb", Err("only for loopback")),
            ("http://127.0.0.2/cb", Err("only for loopback")),
            ("http://localhost.evil.example/cb", Err("only for loopback")),
            ("https://chatgpt.com/cb#frag", Err("fragment")),
            ("https://chatgpt.com/cb#", Err("fragment")),
            ("https://user:pw@chatgpt.com/cb", Err("user information")),
            ("javascript:alert(1)", Err("not allowed")),
            ("JavaScript:alert(1)", Err("not allowed")),
            ("data:text/html,hi", Err("not allowed")),
            ("file:///etc/passwd", Err("not allowed")),
            ("vbscript:x", Err("not allowed")),
            ("/relative/cb", Err("not an absolute URI")),
            ("", Err("not an absolute URI")),
            ("https://chatgpt.com/c b", Err("character")),
            ("https://chatgpt.com/\"><script>", Err("character")),
            ("https://chatgpt.com/'x", Err("character")),
            ("https://chatgpt.com/\ncb", Err("character")),
            // Found by the oauth_parsers fuzz target: the host is percent-decoded on parsing, so
            // the Location would have carried a quote the text did not.
            ("https:/c%27b", Err("character")),
            ("https://a%22b.example/cb", Err("character")),
            ("https://a%3Cb.example/cb", Err("not an absolute URI")),
        ];
        for (uri, want) in cases {
            match (check(uri), want) {
                (Ok(k), Ok(w)) => assert_eq!(k, *w, "{uri}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{uri}: {e}"),
                (got, _) => panic!("{uri}: got {got:?}, want {want:?}"),
            }
        }
        assert!(check(&format!("https://a.example/{}", "x".repeat(MAX_LEN))).is_err());
    }

    /// AS-03 / CU-01: Cursor's three URIs all stay; in a metadata document a bad one among good
    /// ones is dropped.
    #[test]
    fn as03_filter_keeps_good_uris() {
        let cursor: Vec<String> = [
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://www.cursor.com/agents/mcp/oauth/callback",
            "http://localhost:8787/callback",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(filter(&cursor).unwrap().0, cursor);
        let mixed = vec!["http://evil.example/cb".to_owned(), "https://ok.example/cb".to_owned()];
        let (kept, dropped) = filter(&mixed).unwrap();
        assert_eq!(kept, ["https://ok.example/cb"]);
        assert_eq!(dropped.len(), 1);
        assert!(filter(&["javascript:x".to_owned()]).unwrap_err().contains("not allowed"));
        assert!(filter(&[]).is_err());
    }

    #[test]
    fn targets_and_csp_sources() {
        assert_eq!(display_target("https://chatgpt.com/x"), "chatgpt.com");
        assert_eq!(display_target("http://127.0.0.1:8976/cb"), "127.0.0.1:8976");
        assert_eq!(display_target("cursor://anysphere.cursor-mcp/oauth/callback"), "cursor://anysphere.cursor-mcp");
        assert_eq!(csp_source("https://chatgpt.com/x?y=1").as_deref(), Some("https://chatgpt.com"));
        assert_eq!(csp_source("http://127.0.0.1:8976/cb").as_deref(), Some("http://127.0.0.1:8976"));
        assert_eq!(csp_source("http://[::1]:9/cb").as_deref(), Some("http://[::1]:9"));
        assert_eq!(csp_source("cursor://anysphere.cursor-mcp/cb").as_deref(), Some("cursor:"));
        assert_eq!(
            with_params("https://a.example/cb?x=1", &[("code", "c d"), ("iss", "https://h")]).as_deref(),
            Some("https://a.example/cb?x=1&code=c+d&iss=https%3A%2F%2Fh")
        );
    }
}
