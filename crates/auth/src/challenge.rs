//! Why a bearer token is refused, and the `WWW-Authenticate` challenges of the hub's 401 and 403
//! answers: `Bearer` (static-token mode), `Bearer resource_metadata=…, scope=…` (OAuth mode,
//! RS-03), `error="invalid_token"` for a refused token and `error="insufficient_scope"` for a
//! call the token has no scope for (RS-04).

/// Why a bearer token is refused (a static token or an OAuth access token).
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
pub enum Refusal {
    /// Not a token of this hub.
    Unknown,
    /// Revoked (itself, its grant, or every token at once).
    Revoked,
    /// Past its expiry.
    Expired,
    /// Issued for another resource (RFC 8707 audience).
    WrongAudience,
    /// The store could not be read (PostgreSQL unreachable): not a judgement of the token, so
    /// the hub answers 503 rather than a 401 that would make a client drop it.
    Unavailable,
}

impl Refusal {
    /// The `error_description` of the 401.
    pub fn describe(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown token",
            Refusal::Revoked => "token revoked",
            Refusal::Expired => "token expired",
            Refusal::WrongAudience => "token issued for another resource",
            Refusal::Unavailable => "the token store is unreachable",
        }
    }
}

/// A request that gets 401: what was wrong, and the `WWW-Authenticate` value to send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Challenge {
    /// `None`: no bearer token at all; else why the presented one was refused.
    pub refusal: Option<Refusal>,
    /// The `WWW-Authenticate` header value.
    pub www_authenticate: String,
}

/// The challenge in static-token mode: `Bearer`, plus `error="invalid_token"` when a token was
/// presented and refused.
pub fn bearer(refusal: Option<Refusal>) -> Challenge {
    let www_authenticate = match refusal {
        Some(r) => format!("Bearer error=\"invalid_token\", error_description=\"{}\"", r.describe()),
        None => "Bearer".to_owned(),
    };
    Challenge { refusal, www_authenticate }
}

/// The challenge in OAuth mode (RS-03): where the protected-resource metadata is and the scopes
/// offered, always; `error="invalid_token"` with a description when a token was refused.
pub fn oauth(resource_metadata: &str, scopes_supported: &[String], refusal: Option<Refusal>) -> Challenge {
    let mut c = format!("Bearer resource_metadata=\"{resource_metadata}\", scope=\"{}\"", scopes_supported.join(" "));
    if let Some(r) = refusal {
        c.push_str(&format!(", error=\"invalid_token\", error_description=\"{}\"", quoted(r.describe())));
    }
    Challenge { refusal, www_authenticate: c }
}

/// The `WWW-Authenticate` value of a 403 for a call the token has no scope for: the scope it
/// needs, the protected-resource metadata in OAuth mode (RS-04), and a description.
pub fn insufficient_scope(needed: &str, resource_metadata: Option<&str>, description: &str) -> String {
    let metadata = resource_metadata.map(|m| format!(", resource_metadata=\"{m}\"")).unwrap_or_default();
    format!("Bearer error=\"insufficient_scope\", scope=\"{needed}\"{metadata}, error_description=\"{description}\"")
}

/// A value safe inside a quoted-string of a challenge.
fn quoted(s: &str) -> String {
    s.replace(['"', '\\'], "'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(bearer(None).www_authenticate, "Bearer");
        assert_eq!(
            bearer(Some(Refusal::Revoked)).www_authenticate,
            "Bearer error=\"invalid_token\", error_description=\"token revoked\""
        );
        let m = "https://h.example/.well-known/oauth-protected-resource/mcp";
        let scopes = ["fs:read".to_owned(), "git:read".to_owned()];
        assert_eq!(
            oauth(m, &scopes, None).www_authenticate,
            format!("Bearer resource_metadata=\"{m}\", scope=\"fs:read git:read\"")
        );
        let refused = oauth(m, &scopes, Some(Refusal::WrongAudience));
        assert!(
            refused
                .www_authenticate
                .ends_with(", error=\"invalid_token\", error_description=\"token issued for another resource\"")
        );
        assert_eq!(refused.refusal, Some(Refusal::WrongAudience));
        assert_eq!(
            insufficient_scope("fs:write", None, "no"),
            "Bearer error=\"insufficient_scope\", scope=\"fs:write\", error_description=\"no\""
        );
        assert!(insufficient_scope("fs:write", Some(m), "no").contains(&format!(", resource_metadata=\"{m}\", ")));
        assert_eq!(quoted("token \"expired\" \\"), "token 'expired' '");
    }
}
