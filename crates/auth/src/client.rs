//! Clients: where they come from (dynamic registration, a metadata document, the hub's
//! configuration), what a registration request may ask for (AS-04), and the checks on a client
//! ID metadata document (AS-05).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::redirect;

/// Longest client name kept (longer ones are cut).
pub const MAX_NAME: usize = 100;

/// Where a client's metadata came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// `POST /register` (RFC 7591).
    Dynamic,
    /// A client ID metadata document fetched from its `client_id` URL.
    Metadata,
    /// `[[oauth.client]]` in the hub's configuration.
    Static,
}

impl Source {
    /// How the consent page describes it.
    pub fn describe(self) -> &'static str {
        match self {
            Source::Dynamic => "registered itself with this hub (dynamic client registration)",
            Source::Metadata => "identified by a client metadata document at its client ID URL",
            Source::Static => "configured by the hub's operator",
        }
    }
}

/// A client the hub knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    /// Its `client_id`.
    pub id: String,
    /// Display name (untrusted text: always escaped).
    pub name: String,
    /// Redirect URIs, compared byte for byte.
    pub redirect_uris: Vec<String>,
    /// Where it came from.
    pub source: Source,
}

/// A client from the hub's configuration (`[[oauth.client]]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticClient {
    /// The `client_id` to give the app.
    pub client_id: String,
    /// Display name.
    pub client_name: String,
    /// Allowed redirect URIs.
    pub redirect_uris: Vec<String>,
}

impl StaticClient {
    /// Checks the entry (id characters, redirect URIs).
    pub fn validate(&self) -> Result<(), String> {
        let id = &self.client_id;
        if id.is_empty() || id.len() > 200 || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("oauth.client '{id}': client_id must be 1 to 200 printable ASCII characters"));
        }
        if id.starts_with("https://") {
            return Err(format!("oauth.client '{id}': an https client_id is a metadata document URL; pick another id"));
        }
        if self.redirect_uris.is_empty() {
            return Err(format!("oauth.client '{id}': redirect_uris is empty"));
        }
        for u in &self.redirect_uris {
            redirect::check(u).map_err(|e| format!("oauth.client '{id}': {e}"))?;
        }
        Ok(())
    }

    /// As a [`Client`].
    pub fn client(&self) -> Client {
        Client {
            id: self.client_id.clone(),
            name: clean_name(&self.client_name, &self.client_id),
            redirect_uris: self.redirect_uris.clone(),
            source: Source::Static,
        }
    }
}

/// A display name: control characters and bidirectional overrides (which could make
/// "Evil\u{202E}tpGtahC" read as "ChatGpt..." on the consent page) removed, cut to [`MAX_NAME`]
/// characters, `fallback` if nothing is left.
pub fn clean_name(name: &str, fallback: &str) -> String {
    let bidi = |c: char| matches!(c, '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
    let name: String = name.chars().filter(|c| !c.is_control() && !bidi(*c)).take(MAX_NAME).collect();
    let name = name.trim();
    if name.is_empty() { fallback.chars().take(MAX_NAME).collect() } else { name.to_owned() }
}

/// An RFC 7591 error.
#[derive(Debug, PartialEq, Eq)]
pub struct RegistrationError {
    /// `invalid_redirect_uri` or `invalid_client_metadata`.
    pub error: &'static str,
    /// Why.
    pub description: String,
}

fn bad_metadata(description: impl Into<String>) -> RegistrationError {
    RegistrationError { error: "invalid_client_metadata", description: description.into() }
}

/// What a registration request asked for, after the checks: the name and redirect URIs to
/// store. Unknown fields (`application_type`, `scope`, `logo_uri`, ...) are ignored.
/// `token_endpoint_auth_method` is answered with `none` whatever was asked: every client of the
/// hub is public and PKCE protects its codes, and RFC 7591 §3.2.1 lets the server replace a
/// requested value (a client that cannot live without a secret sees `none` and may give up).
pub fn registration(body: &[u8]) -> Result<(String, Vec<String>), RegistrationError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| bad_metadata(format!("body is not JSON: {e}")))?;
    let obj = v.as_object().ok_or_else(|| bad_metadata("body is not a JSON object"))?;
    let uris = match obj.get("redirect_uris") {
        Some(Value::Array(a)) => a
            .iter()
            .map(|u| u.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| bad_metadata("redirect_uris must be an array of strings"))?,
        Some(_) => return Err(bad_metadata("redirect_uris must be an array of strings")),
        None => {
            return Err(RegistrationError {
                error: "invalid_redirect_uri",
                description: "redirect_uris is required".into(),
            });
        }
    };
    if uris.len() > 20 {
        return Err(bad_metadata("at most 20 redirect_uris"));
    }
    if uris.is_empty() {
        return Err(RegistrationError { error: "invalid_redirect_uri", description: "redirect_uris is empty".into() });
    }
    // One unacceptable URI refuses the whole registration: a client that asks for a plain-http
    // or script redirect is not one to trust with the others. Real clients' sets (Cursor's
    // three, with its private-use scheme) are all acceptable, which is what AS-03 needs.
    let mut kept: Vec<String> = vec![];
    for u in uris {
        redirect::check(&u).map_err(|e| RegistrationError { error: "invalid_redirect_uri", description: e })?;
        if !kept.contains(&u) {
            kept.push(u);
        }
    }
    check_list(obj.get("grant_types"), "grant_types", "authorization_code")?;
    check_list(obj.get("response_types"), "response_types", "code")?;
    let name = match obj.get("client_name") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(bad_metadata("client_name must be a string")),
    };
    Ok((clean_name(&name, "unnamed client"), kept))
}

/// A list field that, if present, must be an array of strings containing `needed`.
fn check_list(v: Option<&Value>, field: &str, needed: &str) -> Result<(), RegistrationError> {
    match v {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => {
            if a.iter().any(|x| x == needed) {
                Ok(())
            } else {
                Err(bad_metadata(format!("{field} must include '{needed}' (the only flow this hub offers)")))
            }
        }
        Some(_) => Err(bad_metadata(format!("{field} must be an array of strings"))),
    }
}

/// Checks a client ID metadata document fetched from `url` (AS-05): a JSON object whose
/// `client_id` equals `url` exactly, with at least one acceptable redirect URI, and whose token
/// endpoint authentication methods include `none`. ChatGPT lists
/// `token_endpoint_auth_methods_supported: ["none", "private_key_jwt"]` beside a singular
/// `token_endpoint_auth_method: "private_key_jwt"`: the methods of both fields are pooled and
/// intersected with `none`, so that document is accepted. A document naming only secret-based
/// or key-based methods is refused (the hub cannot check them).
pub fn metadata_document(url: &str, body: &[u8]) -> Result<Client, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("metadata document is not JSON: {e}"))?;
    let obj = v.as_object().ok_or("metadata document is not a JSON object")?;
    match obj.get("client_id").and_then(Value::as_str) {
        Some(id) if id == url => {}
        Some(id) => return Err(format!("metadata document's client_id '{id}' is not its URL '{url}'")),
        None => return Err("metadata document has no client_id".into()),
    }
    let uris: Vec<String> = match obj.get("redirect_uris") {
        Some(Value::Array(a)) => a.iter().filter_map(|u| u.as_str().map(str::to_owned)).collect(),
        _ => return Err("metadata document has no redirect_uris array".into()),
    };
    let (kept, _) = redirect::filter(&uris).map_err(|e| format!("metadata document: {e}"))?;
    let mut methods: Vec<&str> = vec![];
    if let Some(m) = obj.get("token_endpoint_auth_method") {
        methods.push(m.as_str().ok_or("token_endpoint_auth_method must be a string")?);
    }
    if let Some(Value::Array(a)) = obj.get("token_endpoint_auth_methods_supported") {
        methods.extend(a.iter().filter_map(Value::as_str));
    }
    if !methods.is_empty() && !methods.contains(&"none") {
        return Err(format!(
            "metadata document allows only {} for the token endpoint; this hub supports 'none' (public clients with PKCE)",
            methods.join(", ")
        ));
    }
    let name = obj.get("client_name").and_then(Value::as_str).unwrap_or("");
    let host = url::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_owned)).unwrap_or_default();
    Ok(Client { id: url.to_owned(), name: clean_name(name, &host), redirect_uris: kept, source: Source::Metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// AS-04 / CU-01: Cursor's registration with three redirect URIs is accepted whole.
    #[test]
    fn as04_cursor_registration() {
        let body = json!({
            "client_name": "Cursor",
            "redirect_uris": [
                "cursor://anysphere.cursor-mcp/oauth/callback",
                "https://www.cursor.com/agents/mcp/oauth/callback",
                "http://localhost:8787/callback"
            ],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
            "scope": "fs:read",
            "logo_uri": "https://cursor.com/logo.png"
        });
        let (name, uris) = registration(body.to_string().as_bytes()).unwrap();
        assert_eq!(name, "Cursor");
        assert_eq!(uris.len(), 3);
    }

    /// AS-04: the error codes of RFC 7591 for bad requests.
    #[test]
    fn as04_registration_errors() {
        let cases = [
            (json!({"client_name": "x"}), "invalid_redirect_uri"),
            (json!({"redirect_uris": []}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["http://evil.example/cb"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": ["https://a.example/cb#x"]}), "invalid_redirect_uri"),
            (json!({"redirect_uris": "https://a.example/cb"}), "invalid_client_metadata"),
            (json!({"redirect_uris": [1]}), "invalid_client_metadata"),
            (
                json!({"redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect", "http://evil.example/cb"]}),
                "invalid_redirect_uri",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
                "invalid_client_metadata",
            ),
            (
                json!({"redirect_uris": ["https://a.example/cb"], "response_types": ["token"]}),
                "invalid_client_metadata",
            ),
            (json!({"redirect_uris": ["https://a.example/cb"], "client_name": 5}), "invalid_client_metadata"),
            (json!([1, 2]), "invalid_client_metadata"),
        ];
        for (body, want) in cases {
            let e = registration(body.to_string().as_bytes()).unwrap_err();
            assert_eq!(e.error, want, "{body}: {}", e.description);
        }
        assert_eq!(registration(b"{").unwrap_err().error, "invalid_client_metadata");
        // A secret-based method is answered with a public client, not refused.
        let (name, _) = registration(
            json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "client_secret_post"})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(name, "unnamed client");
    }

    /// AS-05 / CG-04: ChatGPT's document, with the singular `private_key_jwt` beside the list.
    #[test]
    fn as05_chatgpt_document_is_accepted() {
        let url = "https://chatgpt.com/oauth/client.json";
        let doc = json!({
            "client_id": url,
            "client_name": "ChatGPT",
            "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
            "jwks_uri": "https://chatgpt.com/oauth/jwks.json",
            "application_type": "web"
        });
        let c = metadata_document(url, doc.to_string().as_bytes()).unwrap();
        assert_eq!(c.name, "ChatGPT");
        assert_eq!(c.source, Source::Metadata);
        assert_eq!(c.redirect_uris, ["https://chatgpt.com/connector_platform_oauth_redirect"]);
    }

    /// AS-05: documents that must be refused.
    #[test]
    fn as05_bad_documents_are_refused() {
        let url = "https://app.example/client.json";
        let base = || json!({"client_id": url, "client_name": "A", "redirect_uris": ["https://app.example/cb"]});
        assert!(metadata_document(url, base().to_string().as_bytes()).is_ok());
        let mut mismatch = base();
        mismatch["client_id"] = json!("https://app.example/client.json/");
        let mut other = base();
        other["client_id"] = json!("https://evil.example/client.json");
        let mut none_id = base();
        none_id.as_object_mut().unwrap().remove("client_id");
        let mut secret = base();
        secret["token_endpoint_auth_method"] = json!("client_secret_basic");
        let mut jwt_only = base();
        jwt_only["token_endpoint_auth_methods_supported"] = json!(["private_key_jwt"]);
        let mut bad_uris = base();
        bad_uris["redirect_uris"] = json!(["http://app.example/cb"]);
        for (doc, want) in [
            (mismatch, "is not its URL"),
            (other, "is not its URL"),
            (none_id, "no client_id"),
            (secret, "supports 'none'"),
            (jwt_only, "supports 'none'"),
            (bad_uris, "only for loopback"),
        ] {
            let e = metadata_document(url, doc.to_string().as_bytes()).unwrap_err();
            assert!(e.contains(want), "{doc}: {e}");
        }
        assert!(metadata_document(url, b"[]").is_err());
        assert!(metadata_document(url, b"<html>").is_err());
    }

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("  A\u{7}B  ", "x"), "AB");
        assert_eq!(clean_name("Evil\u{202E}tpGtahC\u{2066}", "x"), "EviltpGtahC");
        assert_eq!(clean_name("", "fallback"), "fallback");
        assert_eq!(clean_name(&"é".repeat(300), "x").chars().count(), MAX_NAME);
    }
}
