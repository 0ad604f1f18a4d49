//! The OAuth parsers that take untrusted text: redirect URIs, registration requests (RFC 7591),
//! client ID metadata documents, scope lists, PKCE challenges and metadata URLs.
//!
//! Invariants: no panic; every redirect URI a parser accepts passes `redirect::check`, has no
//! fragment or user information, and stays a valid redirect URI once the authorization
//! response's parameters are appended (the `Location` the hub sends); a client name has no
//! control or bidirectional characters; a parsed scope prints back to a string that parses to
//! the same scope.
#![no_main]

use bastion_auth::{client, net, redirect, scope, secret};
use libfuzzer_sys::fuzz_target;

fn check_uri(uri: &str) {
    let kind = redirect::check(uri).unwrap_or_else(|e| panic!("accepted {uri:?} fails check: {e}"));
    assert!(!uri.contains('#'), "{uri:?} has a fragment");
    let location = redirect::with_params(uri, &[("code", "c&d= e"), ("state", "#x\r\n"), ("iss", "https://h.example")])
        .unwrap_or_else(|| panic!("{uri:?} accepted but cannot carry a response"));
    // The length limit is on what a client registers; the response's parameters may take the
    // Location past it, so a long one is checked for its characters only.
    if location.len() <= redirect::MAX_LEN {
        let again = redirect::check(&location).unwrap_or_else(|e| panic!("{uri:?} -> {location:?}: {e}"));
        assert_eq!(again, kind, "{uri:?} -> {location:?} changed kind");
    } else {
        assert!(!location.contains(['\'', '"', '<', '>', ' ', '\r', '\n']), "{uri:?} -> {location:?}");
    }
    if let Some(src) = redirect::csp_source(uri) {
        assert!(!src.contains([';', ',', ' ', '\'', '"']), "{uri:?}: CSP source {src:?}");
    }
    let _ = redirect::display_target(uri);
}

fn check_name(name: &str) {
    assert!(!name.chars().any(char::is_control), "{name:?}");
    assert!(!name.chars().any(|c| matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')), "{name:?}");
    assert!(name.chars().count() <= client::MAX_NAME, "{name:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            if let Ok(text) = std::str::from_utf8(rest)
                && redirect::check(text).is_ok()
            {
                check_uri(text);
            }
        }
        1 => {
            if let Ok((name, uris)) = client::registration(rest) {
                check_name(&name);
                assert!(!uris.is_empty() && uris.len() <= 20);
                uris.iter().for_each(|u| check_uri(u));
            }
        }
        2 => {
            let url = "https://app.example/oauth/client.json";
            if let Ok(c) = client::metadata_document(url, rest) {
                assert_eq!(c.id, url);
                check_name(&c.name);
                assert!(!c.redirect_uris.is_empty());
                c.redirect_uris.iter().for_each(|u| check_uri(u));
            }
        }
        3 => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if let Ok(list) = scope::parse_list(text) {
                let joined = scope::join(&list);
                let back = scope::parse_list(&joined).unwrap_or_else(|e| panic!("{text:?} -> {joined:?}: {}", e.0));
                assert_eq!(back, list, "{text:?}");
            }
            if secret::valid_challenge(text) {
                assert_eq!(text.len(), 43, "{text:?}");
            }
            let _ = secret::verify_pkce(text, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        }
        _ => {
            let Ok(text) = std::str::from_utf8(rest) else { return };
            if let Ok(url) = net::metadata_url(text) {
                assert_eq!(url.scheme(), "https", "{text:?}");
                assert!(net::is_metadata_url(text), "{text:?}");
            }
        }
    }
});
