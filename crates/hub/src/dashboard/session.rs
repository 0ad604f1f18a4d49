//! Who may see the dashboard: cookie sessions opened by a one-time link or the owner secret,
//! each with its CSRF token, and the checks every state-changing request passes.
//!
//! A session id is 256 random bits, sent only as an `HttpOnly; SameSite=Strict` cookie (with
//! `Secure` when the hub's public URL is https) and kept here only as its SHA-256. Sessions live
//! in memory: restarting the hub signs everyone out. They lapse after [`IDLE`] without a
//! person's action (a navigation or a form post; the live feed and its refreshes do not count)
//! and after [`LONGEST`] in any case.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use bastion_auth::secret;

/// A session unused this long is gone.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// No session outlives this.
pub const LONGEST: Duration = Duration::from_secs(12 * 3600);
/// The cookie's name.
pub const COOKIE: &str = "bastion_dashboard";

struct Session {
    csrf: String,
    created: Instant,
    last: Instant,
    /// A message for the next page shown (what a form post did).
    flash: Option<String>,
}

/// An open session, as a request presents it.
#[derive(Clone, Debug)]
pub struct Current {
    /// The SHA-256 of the cookie's value: the key of the session.
    pub key: String,
    /// Its CSRF token, to embed in forms.
    pub csrf: String,
}

/// The open sessions.
#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session; returns the cookie's value (never stored).
    pub fn open(&self) -> Result<String, String> {
        let id = secret::random_secret("bds_")?;
        let csrf = secret::random_secret("bcf_")?;
        let now = Instant::now();
        let mut map = self.lock();
        map.retain(|_, s| alive(s, now));
        map.insert(secret::sha256_hex(&id), Session { csrf, created: now, last: now, flash: None });
        Ok(id)
    }

    /// The session a request's cookie names, if it is alive; `touch` (a person acted) restarts
    /// its idle clock.
    pub fn current(&self, headers: &HeaderMap, touch: bool) -> Option<Current> {
        let id = cookie(headers, COOKIE)?;
        let key = secret::sha256_hex(id);
        let now = Instant::now();
        let mut map = self.lock();
        let s = map.get_mut(&key)?;
        if !alive(s, now) {
            map.remove(&key);
            return None;
        }
        if touch {
            s.last = now;
        }
        Some(Current { csrf: s.csrf.clone(), key })
    }

    /// Whether the session `key` is still alive (the live feed ends with it).
    pub fn alive(&self, key: &str) -> bool {
        self.lock().get(key).is_some_and(|s| alive(s, Instant::now()))
    }

    /// Ends a session.
    pub fn close(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Leaves a message for the session's next page.
    pub fn flash(&self, key: &str, message: String) {
        if let Some(s) = self.lock().get_mut(key) {
            s.flash = Some(message);
        }
    }

    /// Takes the message left for this page, if any.
    pub fn take_flash(&self, key: &str) -> Option<String> {
        self.lock().get_mut(key).and_then(|s| s.flash.take())
    }
}

fn alive(s: &Session, now: Instant) -> bool {
    now.duration_since(s.last) < IDLE && now.duration_since(s.created) < LONGEST
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// The `Set-Cookie` value opening a session.
pub fn set_cookie(id: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}={id}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}", LONGEST.as_secs())
}

/// The `Set-Cookie` value ending it.
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Why a state-changing request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// No live session.
    NoSession,
    /// Sent by a page of another origin.
    CrossOrigin,
    /// No CSRF token, or not this session's.
    Csrf,
}

/// Whether a state-changing request comes from the dashboard's own pages: its `Origin` (which
/// browsers send on every POST) is this very origin, or, without one, the browser says the
/// request is not cross-site. The guard has already refused origins the hub does not know; this
/// is stricter, because the hub accepts every loopback port (a page on another local port is
/// same-site to the browser and would carry a `SameSite=Strict` cookie).
pub fn same_origin(headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        Some(Ok(origin)) => {
            let origin = origin.to_ascii_lowercase();
            let host = host.to_ascii_lowercase();
            !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
        }
        Some(Err(_)) => false,
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none"),
    }
}

/// The checks of every state-changing request: a live session, this origin, the session's CSRF
/// token (compared in constant time).
pub fn check_post(sessions: &Sessions, headers: &HeaderMap, csrf: Option<&str>) -> Result<Current, Refused> {
    if !same_origin(headers) {
        return Err(Refused::CrossOrigin);
    }
    let current = sessions.current(headers, true).ok_or(Refused::NoSession)?;
    match csrf {
        Some(given) if secret::ct_eq(given.as_bytes(), current.csrf.as_bytes()) => Ok(current),
        _ => Err(Refused::Csrf),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn sessions_need_the_cookie_the_origin_and_the_csrf_token() {
        let s = Sessions::default();
        let id = s.open().unwrap();
        let cookie = format!("other=1; {COOKIE}={id}");
        let ok = headers(&[("host", "127.0.0.1:8765"), ("origin", "http://127.0.0.1:8765"), ("cookie", &cookie)]);
        let current = s.current(&ok, false).unwrap();
        assert_eq!(check_post(&s, &ok, Some(&current.csrf)).unwrap().key, current.key);
        assert_eq!(check_post(&s, &ok, None).unwrap_err(), Refused::Csrf);
        assert_eq!(check_post(&s, &ok, Some("bcf_wrong")).unwrap_err(), Refused::Csrf);
        // Another loopback port is another origin, though the same site.
        let other = headers(&[("host", "127.0.0.1:8765"), ("origin", "http://127.0.0.1:9999"), ("cookie", &cookie)]);
        assert_eq!(check_post(&s, &other, Some(&current.csrf)).unwrap_err(), Refused::CrossOrigin);
        let cross = headers(&[("host", "127.0.0.1:8765"), ("sec-fetch-site", "cross-site"), ("cookie", &cookie)]);
        assert_eq!(check_post(&s, &cross, Some(&current.csrf)).unwrap_err(), Refused::CrossOrigin);
        let none = headers(&[("host", "127.0.0.1:8765"), ("origin", "http://127.0.0.1:8765")]);
        assert_eq!(check_post(&s, &none, Some(&current.csrf)).unwrap_err(), Refused::NoSession);
        let forged = headers(&[("host", "127.0.0.1:8765"), ("cookie", "bastion_dashboard=bds_forged")]);
        assert!(s.current(&forged, false).is_none());
        s.flash(&current.key, "done".into());
        assert_eq!(s.take_flash(&current.key).as_deref(), Some("done"));
        assert_eq!(s.take_flash(&current.key), None);
        s.close(&current.key);
        assert!(s.current(&ok, false).is_none() && !s.alive(&current.key));
    }

    #[test]
    fn cookies_are_strict_and_http_only() {
        let c = set_cookie("bds_x", true);
        for part in ["HttpOnly", "SameSite=Strict", "Secure", "Path=/dashboard"] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("bds_x", false).contains("Secure"));
        assert!(clear_cookie(false).contains("Max-Age=0"));
    }
}
