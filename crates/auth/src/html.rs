//! The consent page and the error pages: plain, accessible HTML with inline CSS and no external
//! assets. Every value from a client (name, URIs, state) is escaped.

use std::fmt::Write;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;\
line-height:1.5;color:#111;background:#fff}h1{font-size:1.4rem}.box{border:1px solid #ccc;border-radius:6px;\
padding:1rem;margin:1rem 0}.warn{background:#fff4d6;border-color:#d9a400}.error{background:#fde8e8;\
border-color:#c00}fieldset{border:1px solid #ccc;border-radius:6px;margin:1rem 0}label{display:block;\
margin:.3rem 0}input[type=password]{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}\
button{font-size:1rem;padding:.5rem 1.2rem;margin:.5rem .5rem 0 0}code{word-break:break-all}\
.muted{color:#555;font-size:.9rem}";

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body><main>\n{body}</main></body></html>\n",
        escape(title)
    )
}

/// An error page that redirects nowhere.
pub fn error_page(title: &str, message: &str) -> String {
    page(
        title,
        &format!(
            "<h1>{}</h1>\n<div class=\"box error\" role=\"alert\"><p>{}</p></div>\n\
             <p class=\"muted\">Nothing was shared. Close this page and start again from the app.</p>\n",
            escape(title),
            escape(message)
        ),
    )
}

/// What the consent page shows.
pub struct Consent<'a> {
    /// Opaque id of the pending authorization.
    pub request: &'a str,
    /// Its CSRF token.
    pub csrf: &'a str,
    /// The client's display name.
    pub client_name: &'a str,
    /// The client's id.
    pub client_id: &'a str,
    /// Where the client came from (a sentence).
    pub source: &'a str,
    /// Where the browser goes afterwards (host).
    pub redirect_target: &'a str,
    /// Whether that is a program on the user's own machine only.
    pub loopback: bool,
    /// Requested scopes with a description each.
    pub scopes: &'a [(String, String)],
    /// An error line above the form (wrong secret, lockout).
    pub message: Option<&'a str>,
    /// The hub's issuer (shown so the owner knows which hub asks).
    pub issuer: &'a str,
}

/// The consent page. Its form posts to `/authorize` (the hub serves OAuth at its origin root).
pub fn consent(c: &Consent<'_>) -> String {
    let mut b = String::new();
    let _ = write!(
        b,
        "<h1>Allow {name} to use this Bastion hub?</h1>\n\
         <div class=\"box\"><p><strong>{name}</strong> asks for access to the tools of the hub at \
         <code>{issuer}</code>.</p>\n\
         <p>The app {source}. Client ID: <code>{id}</code>.</p>\n\
         <p>After your decision the browser goes to <strong>{target}</strong>.</p></div>\n",
        name = escape(c.client_name),
        issuer = escape(c.issuer),
        source = escape(c.source),
        id = escape(c.client_id),
        target = escape(c.redirect_target),
    );
    if c.loopback {
        b.push_str(
            "<div class=\"box warn\" role=\"note\"><p><strong>Warning:</strong> this app receives the \
             authorization on this computer only (a loopback address). Approve only if you started \
             the sign-in yourself, from a program you trust on this machine.</p></div>\n",
        );
    }
    if let Some(m) = c.message {
        let _ = writeln!(b, "<div class=\"box error\" role=\"alert\" id=\"message\"><p>{}</p></div>", escape(m));
    }
    let _ = write!(
        b,
        "<form method=\"post\" action=\"/authorize\">\n\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
         <fieldset><legend>Permissions (uncheck to grant less)</legend>\n",
        escape(c.request),
        escape(c.csrf)
    );
    for (i, (scope, what)) in c.scopes.iter().enumerate() {
        let _ = writeln!(
            b,
            "<label for=\"scope{i}\"><input type=\"checkbox\" name=\"scope\" value=\"{s}\" id=\"scope{i}\" checked> \
             <code>{s}</code> — {w}</label>",
            s = escape(scope),
            w = escape(what)
        );
    }
    b.push_str(
        "</fieldset>\n\
         <label for=\"owner_secret\">Owner secret (printed by <code>bastion owner-secret</code> or at the \
         hub's first start)</label>\n\
         <input type=\"password\" name=\"owner_secret\" id=\"owner_secret\" autocomplete=\"current-password\" \
         autofocus>\n\
         <div><button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button>\
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></div>\n\
         </form>\n\
         <p class=\"muted\">Only approve apps you are connecting yourself. You can revoke access later with \
         <code>bastion token revoke</code>.</p>\n",
    );
    page(&format!("Authorize {}", c.client_name), &b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_client_names_are_escaped() {
        let hostile = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>";
        let scopes = vec![("fs:read".to_owned(), "read <b>".to_owned())];
        let html = consent(&Consent {
            request: "r\"1",
            csrf: "c",
            client_name: hostile,
            client_id: "bcl_<x>",
            source: "s",
            redirect_target: "evil.example\"",
            loopback: true,
            scopes: &scopes,
            message: Some("<b>wrong</b>"),
            issuer: "https://hub.example.com",
        });
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<img"));
        assert!(!html.contains("<b>"));
        assert!(html.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&quot;&gt;"));
        assert!(html.contains("value=\"r&quot;1\""));
        assert!(html.contains("Warning:"));
        assert!(html.contains("<input type=\"checkbox\" name=\"scope\" value=\"fs:read\" id=\"scope0\" checked>"));
        assert!(html.contains("<input type=\"password\" name=\"owner_secret\" id=\"owner_secret\""));
        assert!(html.contains("<label for=\"owner_secret\">"));
        assert!(html.contains("<button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">"));
        assert!(html.contains("<button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">"));
        assert!(html.contains("<form method=\"post\" action=\"/authorize\">"));
        for tag in ["<link", "<img", "<script", "url(", "@import"] {
            assert!(!html.contains(tag), "no external assets: {tag}");
        }
        let e = error_page("<t>", "<m>");
        assert!(e.contains("&lt;m&gt;") && !e.contains("<m>"));
    }
}
