//! One reading of every request to `/mcp`: what the hub authorises, journals and forwards is what
//! any upstream would read from the same bytes, or the request is refused.
//!
//! - **Media type** ([`media_type`]): `application/json`; `application/octet-stream` only with a
//!   verified bearer token (ChatGPT's connector sends it); every other type, and above all the
//!   CORS-safelisted `text/plain`, `application/x-www-form-urlencoded` and `multipart/form-data` a
//!   web page can post cross-site without a preflight, is 415 before anything runs
//!   (GHSA-89xv-2j6f-qhc8).
//! - **Keys** ([`check_body`]): parsers disagree on duplicate keys (first or last wins), on
//!   keys that differ in case (Go's `encoding/json` matches `"Method"` to `method`) and on Unicode
//!   case folding (`ſ` folds to `s`, the Kelvin sign `K` to `k`): go-sdk CVE-2026-27896, Envoy AI
//!   Gateway GHSA-4gph-2hhr-5mwg. A body with a duplicate key anywhere, two keys of one object that
//!   fold to the same key, or a key of the JSON-RPC envelope or of `params` that folds to a
//!   protocol key without being it, is refused (400, JSON-RPC -32600) with a stable code.
//!   Escapes (`"\u006dethod"`) are no ambiguity: every JSON parser decodes them alike.
//! - **SEP-2243 headers** ([`check_headers`]): an `Mcp-Method` or `Mcp-Name` header must say what
//!   the body says (a proxy may route or authorise on the header), whatever the protocol version;
//!   otherwise 400 with JSON-RPC -32020 (header mismatch).

use std::borrow::Cow;
use std::fmt;

use axum::http::{HeaderMap, HeaderValue, header};
use base64::Engine;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// A request the hub does not read one way only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ambiguous {
    /// Stable code: `duplicate_json_key`, `ambiguous_json_key` or `header_mismatch`.
    pub code: &'static str,
    /// For people.
    pub message: String,
}

impl Ambiguous {
    fn new(code: &'static str, message: String) -> Ambiguous {
        Ambiguous { code, message }
    }
}

/// What a `Content-Type` is to `/mcp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaType {
    /// `application/json`.
    Json,
    /// `application/octet-stream`: JSON-RPC from a connector that labels it so; served only to a
    /// request with a verified bearer token.
    OctetStream,
    /// Anything else, or none: 415.
    Refused,
}

/// Reads the `Content-Type` of a POST (one header; parameters such as `charset` ignored).
pub fn media_type(headers: &HeaderMap) -> MediaType {
    let mut values = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(value), None) = (values.next(), values.next()) else { return MediaType::Refused };
    let essence = value.to_str().ok().and_then(|v| v.split(';').next()).unwrap_or("").trim();
    if essence.eq_ignore_ascii_case("application/json") {
        MediaType::Json
    } else if essence.eq_ignore_ascii_case("application/octet-stream") {
        MediaType::OctetStream
    } else {
        MediaType::Refused
    }
}

/// The `Content-Type` rmcp is handed for an octet-stream body (it serves JSON only).
pub const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// Keys of a JSON-RPC message and of its `params` that a case-insensitive parser would take for
/// protocol keys.
const ENVELOPE_KEYS: &[&str] = &["jsonrpc", "id", "method", "params", "result", "error"];
const PARAMS_KEYS: &[&str] = &["name", "arguments", "_meta", "uri", "cursor", "taskId", "task"];

/// Simple Unicode case folding as Go's `strings.EqualFold` applies it: lower case, and the two
/// letters outside ASCII that fold into it (`ſ` → `s`, Kelvin `K` → `k`).
fn fold(key: &str) -> Cow<'_, str> {
    if key.bytes().all(|b| b.is_ascii() && !b.is_ascii_uppercase()) {
        return Cow::Borrowed(key);
    }
    Cow::Owned(
        key.chars()
            .flat_map(char::to_lowercase)
            .map(|c| match c {
                '\u{17f}' => 's',
                '\u{212a}' => 'k',
                c => c,
            })
            .collect(),
    )
}

/// Where in the message an object is, for the envelope rule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// The message itself (or one message of a batch).
    Envelope,
    /// Its `params`.
    Params,
    /// Anything deeper (`arguments` and below).
    Inner,
}

/// Checks a body's keys (see the module documentation). A body that is not JSON passes: its
/// parse error is answered elsewhere, by one parser.
pub fn check_body(body: &[u8]) -> Result<(), Ambiguous> {
    let mut de = serde_json::Deserializer::from_slice(body);
    match (Walk { level: Level::Envelope, top: true }).deserialize(&mut de) {
        Ok(()) => Ok(()),
        Err(e) => match Ambiguous::from_error(&e) {
            Some(a) => Err(a),
            None => Ok(()),
        },
    }
}

/// The marker in a walk error's text that carries an [`Ambiguous`] out of serde.
const MARK: &str = "\u{0}bastion:";

impl Ambiguous {
    fn to_error<E: de::Error>(&self) -> E {
        E::custom(format!("{MARK}{}:{}", self.code, self.message))
    }

    fn from_error(e: &serde_json::Error) -> Option<Ambiguous> {
        let text = e.to_string();
        let rest = &text[text.find(MARK)? + MARK.len()..];
        let (code, message) = rest.split_once(':')?;
        // serde_json appends " at line L column C"; the message is ours up to there.
        let message = message.rsplit_once(" at line ").map_or(message, |(m, _)| m);
        let code = ["duplicate_json_key", "ambiguous_json_key"].into_iter().find(|c| *c == code)?;
        Some(Ambiguous::new(code, message.to_owned()))
    }
}

/// A walk over one JSON value that keeps nothing but the keys of the object being read.
struct Walk {
    level: Level,
    /// The top of the body: an array there is a batch, whose elements are envelopes.
    top: bool,
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let level = if self.top && self.level == Level::Envelope { Level::Envelope } else { Level::Inner };
        while seq.next_element_seed(Walk { level, top: false })?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Objects are small: a linear scan beats hashing below a few dozen keys.
        let mut seen: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let folded = fold(&key);
            if let Some(twin) = seen.iter().find(|k| fold(k) == folded) {
                let a = if *twin == key {
                    Ambiguous::new("duplicate_json_key", format!("the key '{key}' appears twice in one object"))
                } else {
                    Ambiguous::new(
                        "ambiguous_json_key",
                        format!("the keys '{twin}' and '{key}' of one object differ only in case"),
                    )
                };
                return Err(a.to_error());
            }
            let protocol = match self.level {
                Level::Envelope => ENVELOPE_KEYS,
                Level::Params => PARAMS_KEYS,
                Level::Inner => &[],
            };
            if let Some(real) = protocol.iter().find(|p| fold(p) == folded)
                && *real != key
            {
                let a = Ambiguous::new(
                    "ambiguous_json_key",
                    format!("the key '{key}' is not the protocol's '{real}', but some parsers read it as that"),
                );
                return Err(a.to_error());
            }
            let next = match (self.level, key.as_ref()) {
                (Level::Envelope, "params") => Level::Params,
                _ => Level::Inner,
            };
            map.next_value_seed(Walk { level: next, top: false })?;
            seen.push(key);
        }
        Ok(())
    }
}

/// Checks the SEP-2243 headers a request carries against its body (both optional here: rmcp
/// requires them on the 2026-07-28 protocol). `Mcp-Method` must equal the body's `method`;
/// `Mcp-Name` (plain, or `=?base64?…?=`) its `params.name` (`tools/call`, `prompts/get`),
/// `params.uri` (`resources/*`) or `params.taskId` (`tasks/*`). A header on a batch or on a body
/// without a method is a mismatch too.
pub fn check_headers(headers: &HeaderMap, body: &[u8]) -> Result<(), Ambiguous> {
    let method_h = one_header(headers, "mcp-method")?;
    let name_h = one_header(headers, "mcp-name")?;
    if method_h.is_none() && name_h.is_none() {
        return Ok(());
    }
    #[derive(serde::Deserialize)]
    struct Msg {
        method: Option<String>,
        params: Option<serde_json::Map<String, serde_json::Value>>,
    }
    let msg: Option<Msg> = serde_json::from_slice(body).ok();
    let method = msg.as_ref().and_then(|m| m.method.as_deref());
    let mismatch = |m: String| Err(Ambiguous::new("header_mismatch", m));
    if let Some(h) = method_h
        && Some(h.as_str()) != method
    {
        return mismatch(format!("Mcp-Method header '{h}' does not match the body's method {method:?}"));
    }
    if let Some(raw) = name_h {
        let Some(decoded) = decode(&raw) else {
            return mismatch("Mcp-Name header is not valid Base64".into());
        };
        let key = match method {
            Some("tools/call" | "prompts/get") => "name",
            Some("resources/read" | "resources/subscribe" | "resources/unsubscribe") => "uri",
            Some("tasks/get" | "tasks/update" | "tasks/cancel") => "taskId",
            _ => return mismatch(format!("Mcp-Name header '{decoded}' on a request that names nothing")),
        };
        let expected = msg.as_ref().and_then(|m| m.params.as_ref()).and_then(|p| p.get(key)).and_then(|v| v.as_str());
        if expected != Some(decoded.as_str()) {
            return mismatch(format!("Mcp-Name header '{decoded}' does not match the body's {key} {expected:?}"));
        }
    }
    Ok(())
}

/// At most one value of a header, as text.
fn one_header(headers: &HeaderMap, name: &str) -> Result<Option<String>, Ambiguous> {
    let mut values = headers.get_all(name).iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(Ambiguous::new("header_mismatch", format!("more than one {name} header")));
    }
    match first.to_str() {
        Ok(v) => Ok(Some(v.to_owned())),
        Err(_) => Err(Ambiguous::new("header_mismatch", format!("the {name} header is not visible ASCII"))),
    }
}

/// SEP-2243's header value encoding: `=?base64?…?=` or the value itself.
fn decode(value: &str) -> Option<String> {
    match value.strip_prefix("=?base64?").and_then(|v| v.strip_suffix("?=")) {
        Some(inner) => String::from_utf8(base64::engine::general_purpose::STANDARD.decode(inner).ok()?).ok(),
        None => Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// go-sdk CVE-2026-27896 and Envoy AI Gateway GHSA-4gph-2hhr-5mwg: every reading a parser
    /// could differ on is refused with its code; escapes and ordinary bodies pass.
    #[test]
    fn cve_2026_27896_ghsa_4gph_2hhr_5mwg_key_table() {
        let call = |params: &str| format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
        let refused = [
            // Duplicates, at every level.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"a"}}"#
                    .to_owned(),
                "duplicate_json_key",
            ),
            (call(r#"{"name":"fs__read_file","name":"shell__run_command"}"#), "duplicate_json_key"),
            (call(r#"{"name":"a","arguments":{"path":"x","path":"/etc/shadow"}}"#), "duplicate_json_key"),
            (call(r#"{"name":"a","arguments":{"o":{"k":1,"k":2}}}"#), "duplicate_json_key"),
            (call(r#"{"name":"a","arguments":{"l":[{"k":1,"k":2}]}}"#), "duplicate_json_key"),
            // The same key after escapes is the same key.
            (call(r#"{"name":"a","na\u006de":"b"}"#), "duplicate_json_key"),
            // Case variants beside the real key, and alone at the protocol's levels.
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}"#.to_owned(),
                "ambiguous_json_key",
            ),
            (r#"{"jsonrpc":"2.0","id":1,"METHOD":"tools/call"}"#.to_owned(), "ambiguous_json_key"),
            (call(r#"{"Name":"shell__run_command"}"#), "ambiguous_json_key"),
            (call(r#"{"name":"a","Arguments":{}}"#), "ambiguous_json_key"),
            (call(r#"{"name":"a","arguments":{"path":"x","PATH":"y"}}"#), "ambiguous_json_key"),
            // Unicode folding: ſ (U+017F) folds to s, the Kelvin sign (U+212A) to k.
            (call(r#"{"name":"a","arguments":{"ſcope":"x","scope":"y"}}"#), "ambiguous_json_key"),
            (call(r#"{"name":"a","arguments":{"\u212aey":"x","key":"y"}}"#), "ambiguous_json_key"),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","paramſ":{"name":"a"}}"#.to_owned(),
                "ambiguous_json_key",
            ),
            // In a batch, each message is an envelope.
            (r#"[{"jsonrpc":"2.0","id":1,"Method":"tools/call"}]"#.to_owned(), "ambiguous_json_key"),
        ];
        for (body, code) in &refused {
            let e = check_body(body.as_bytes()).expect_err(body);
            assert_eq!(e.code, *code, "{body}: {}", e.message);
            assert!(!e.message.contains(MARK), "{}", e.message);
        }
        let passed = [
            call(r#"{"name":"fs__read_file","arguments":{"path":"a.txt"}}"#),
            call(r#"{"n\u0061me":"fs__read_file","arguments":{"path":"a.txt","Name":"not a protocol key down here"}}"#),
            call(r#"{"name":"a","_meta":{"progressToken":1},"arguments":{"a":{"b":[1,{"c":2}]}}}"#),
            r#"{"jsonrpc":"2.0","id":1,"method":"tasks/get","params":{"taskId":"t"}}"#.to_owned(),
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#.to_owned(),
            // Not JSON: answered by the parse error, not here.
            "{".to_owned(),
            String::new(),
        ];
        for body in &passed {
            assert_eq!(check_body(body.as_bytes()), Ok(()), "{body}");
        }
    }

    /// SEP-2243 and zentinel#443: a header naming a harmless tool while the body calls another.
    #[test]
    fn sep_2243_zentinel_443_header_must_match_body() {
        let body = br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"shell__run_command"}}"#;
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, HeaderValue::from_static(v));
            }
            m
        };
        for ok in [
            h(&[]),
            h(&[("mcp-method", "tools/call")]),
            h(&[("mcp-method", "tools/call"), ("mcp-name", "shell__run_command")]),
            h(&[("mcp-name", "=?base64?c2hlbGxfX3J1bl9jb21tYW5k?=")]),
        ] {
            assert_eq!(check_headers(&ok, body), Ok(()), "{ok:?}");
        }
        for bad in [
            h(&[("mcp-method", "tools/list")]),
            h(&[("mcp-method", "Tools/Call")]),
            h(&[("mcp-name", "fs__read_file")]),
            h(&[("mcp-method", "tools/call"), ("mcp-name", "fs__read_file")]),
            h(&[("mcp-name", "=?base64?ZnNfX3JlYWRfZmlsZQ==?=")]),
            h(&[("mcp-name", "=?base64?!!?=")]),
            h(&[("mcp-name", "shell__run_command"), ("mcp-name", "shell__run_command")]),
        ] {
            assert_eq!(check_headers(&bad, body).map_err(|e| e.code), Err("header_mismatch"), "{bad:?}");
        }
        let list = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
        assert!(check_headers(&h(&[("mcp-name", "x")]), list).is_err(), "tools/list names nothing");
        assert!(check_headers(&h(&[("mcp-method", "tools/call")]), b"[]").is_err(), "a batch has no one method");
    }

    #[test]
    fn media_types() {
        let h = |v: &'static str| {
            let mut m = HeaderMap::new();
            m.insert(header::CONTENT_TYPE, HeaderValue::from_static(v));
            m
        };
        assert_eq!(media_type(&h("application/json")), MediaType::Json);
        assert_eq!(media_type(&h("Application/JSON; charset=utf-8")), MediaType::Json);
        assert_eq!(media_type(&h("application/octet-stream")), MediaType::OctetStream);
        for refused in [
            "text/plain",
            "text/plain; charset=utf-8",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "",
        ] {
            assert_eq!(media_type(&h(refused)), MediaType::Refused, "{refused}");
        }
        assert_eq!(media_type(&HeaderMap::new()), MediaType::Refused, "none");
        let mut two = h("application/json");
        two.append(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert_eq!(media_type(&two), MediaType::Refused, "two");
    }
}
