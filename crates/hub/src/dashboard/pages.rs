//! The dashboard's HTML, rendered on the server from plain data. Every value that came from a
//! caller, a tool or the journal goes through [`esc`]; nothing is ever put in a script, a style
//! or an event attribute (the CSP allows neither inline script nor inline style). Each page is a
//! layout around one live region (`#live`), which the page script re-fetches from
//! `/dashboard/fragment/PAGE` when the live feed says something it shows changed.

use std::fmt::Write;

use serde_json::Value;

/// The pages, in navigation order: (slug, title, what the live feed must say to refresh it).
pub const PAGES: &[(&str, &str, &str)] = &[
    ("now", "Now", "call refused inflight switch"),
    ("approvals", "Approvals", "approval switch"),
    ("upstreams", "Upstreams", "upstream call"),
    ("access", "Access", "access switch"),
    ("journal", "Journal", ""),
    ("health", "Health", "call"),
];

/// HTML-escapes text for element content and quoted attribute values (the consent page's
/// escaping, one definition).
pub use bastion_auth::html::escape as esc;

/// What every page shows around its content.
pub struct Frame<'a> {
    /// The page's slug (`now`, …).
    pub slug: &'a str,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// Whether calls are paused.
    pub paused: bool,
    /// `normal` or `observe`.
    pub mode: &'a str,
    /// Watching a server alone (journal and control socket), not the hub.
    pub standalone: bool,
    /// What the last form post did.
    pub flash: Option<String>,
}

/// A hidden CSRF field.
fn csrf_field(csrf: &str) -> String {
    format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", esc(csrf))
}

/// A one-button form posting to `action`.
pub fn button_form(action: &str, csrf: &str, label: &str, class: &str, extra: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}{extra}<button type=\"submit\" class=\"{class}\">{}</button></form>",
        esc(action),
        csrf_field(csrf),
        esc(label)
    )
}

fn head(title: &str, csrf: &str) -> String {
    // Pages outside a session (sign-in) have no token to carry.
    let csrf =
        if csrf.is_empty() { String::new() } else { format!("<meta name=\"csrf-token\" content=\"{}\">", esc(csrf)) };
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         {csrf}<title>{} · Bastion</title>\
         <link rel=\"stylesheet\" href=\"/dashboard/assets/dashboard.css\">\
         <script src=\"/dashboard/assets/dashboard.js\" defer></script></head>",
        esc(title)
    )
}

/// A whole page: header (state and the pause switch), navigation, the live region.
pub fn layout(f: &Frame<'_>, fragment: &str) -> String {
    let (title, kinds) =
        PAGES.iter().find(|(s, ..)| *s == f.slug).map(|(_, t, k)| (*t, *k)).unwrap_or(("Dashboard", ""));
    let mut out = head(title, f.csrf);
    out.push_str("<body><a class=\"skip\" href=\"#main\">Skip to content</a><header class=\"top\">");
    let state = match (f.paused, f.mode) {
        (true, _) => "<strong class=\"state paused\">Paused: every call is refused</strong>".to_owned(),
        (false, "observe") => "<strong class=\"state observe\">Observe mode: reading only</strong>".to_owned(),
        _ => "<span class=\"state running\">Running</span>".to_owned(),
    };
    let who = if f.standalone { "Bastion server" } else { "Bastion hub" };
    let _ = write!(out, "<p class=\"brand\">{who}</p><div class=\"switch\" id=\"switch\">{state}");
    if f.paused {
        out.push_str(&button_form("/dashboard/resume", f.csrf, "Resume calls", "go", ""));
    } else {
        out.push_str(&button_form("/dashboard/pause", f.csrf, "Pause all calls", "stop", ""));
    }
    out.push_str(&button_form("/dashboard/logout", f.csrf, "Sign out", "quiet", ""));
    out.push_str("</div><nav aria-label=\"Dashboard pages\"><ul>");
    for (slug, name, _) in PAGES {
        let current = if *slug == f.slug { " aria-current=\"page\"" } else { "" };
        let _ = write!(out, "<li><a href=\"/dashboard/{slug}\"{current}>{name}</a></li>");
    }
    out.push_str("</ul></nav></header>");
    let _ = write!(
        out,
        "<main id=\"main\" tabindex=\"-1\" data-page=\"{}\" data-kinds=\"{}\"><h1>{}</h1>",
        esc(f.slug),
        esc(kinds),
        esc(title)
    );
    if let Some(msg) = &f.flash {
        let _ = write!(out, "<p class=\"flash\" role=\"status\">{}</p>", esc(msg));
    }
    let _ = write!(out, "<div id=\"live\">{fragment}</div></main></body></html>");
    out
}

/// The sign-in page (owner secret), with an optional error.
pub fn login(error: Option<&str>) -> String {
    let mut out = head("Sign in", "");
    out.push_str("<body><main id=\"main\" class=\"narrow\"><h1>Sign in to the Bastion dashboard</h1>");
    if let Some(e) = error {
        let _ = write!(out, "<p class=\"error\" role=\"alert\">{}</p>", esc(e));
    }
    out.push_str(
        "<p>Open the one-time link that <code>bastion dashboard</code> prints, or type the owner secret \
         (<code>bastion owner-secret</code> sets it).</p>\
         <form method=\"post\" action=\"/dashboard/login\"><p><label for=\"owner_secret\">Owner secret</label>\
         <input id=\"owner_secret\" name=\"owner_secret\" type=\"password\" autocomplete=\"current-password\" required></p>\
         <p><button type=\"submit\" class=\"go\">Sign in</button></p></form></main></body></html>",
    );
    out
}

/// The page a one-time link lands on: it sets the cookie, then moves on to Now by a same-origin
/// navigation (so the `SameSite=Strict` cookie is sent even when the link was opened from
/// another application).
pub fn signed_in() -> String {
    let mut out = head("Signed in", "");
    out.push_str(
        "<body><main id=\"main\" class=\"narrow\"><h1>Signed in</h1>\
         <p><a id=\"continue\" href=\"/dashboard/now\">Continue to the dashboard</a></p></main></body></html>",
    );
    out.replacen("<title>", "<meta http-equiv=\"refresh\" content=\"0; url=/dashboard/now\"><title>", 1)
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// A table with a caption, inside a focusable scroll box (narrow screens scroll it sideways).
fn table(caption: &str, headers: &[&str], rows: &[String], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<h2>{}</h2><p class=\"empty\">{}</p>", esc(caption), esc(empty));
    }
    let mut out = format!(
        "<h2>{0}</h2><div class=\"scroll\" role=\"region\" aria-label=\"{0}\" tabindex=\"0\"><table><thead><tr>",
        esc(caption)
    );
    for h in headers {
        let _ = write!(out, "<th scope=\"col\">{}</th>", esc(h));
    }
    out.push_str("</tr></thead><tbody>");
    for r in rows {
        out.push_str(r);
    }
    out.push_str("</tbody></table></div>");
    out
}

fn time_cell(t: &str) -> String {
    // `2026-12-05T07:30:00.123Z` → `07:30:00` shown, the full time on hover and for readers.
    let short = t.get(11..19).unwrap_or(t);
    format!("<td><time datetime=\"{}\" title=\"{0}\">{}</time></td>", esc(t), esc(short))
}

fn outcome_cell(o: &str) -> String {
    let class = if o == "ok" { "ok" } else { "bad" };
    format!("<td><span class=\"outcome {class}\">{}</span></td>", esc(o))
}

fn args_cell(args: &Value) -> String {
    let text = match args {
        Value::Null => String::new(),
        v => v.to_string(),
    };
    format!("<td><code class=\"args\">{}</code></td>", esc(&text))
}

/// A call in flight (hub only).
pub struct InFlight {
    /// When it arrived.
    pub time: String,
    /// Who.
    pub principal: String,
    /// Which tool.
    pub tool: String,
    /// Redacted arguments.
    pub args: Value,
}

/// Now: in-flight calls, the last calls, refused requests.
pub fn now(inflight: Option<&[InFlight]>, calls: &[Value], refused: &[Value]) -> String {
    let mut out = String::new();
    if let Some(inflight) = inflight {
        let rows: Vec<String> = inflight
            .iter()
            .map(|c| {
                format!(
                    "<tr>{}<td>{}</td><td>{}</td>{}</tr>",
                    time_cell(&c.time),
                    esc(&c.principal),
                    esc(&c.tool),
                    args_cell(&c.args)
                )
            })
            .collect();
        out.push_str(&table(
            "In flight",
            &["Started", "Principal", "Tool", "Arguments"],
            &rows,
            "No call is running (calls started before this page opened are not shown).",
        ));
    }
    let rows: Vec<String> = calls
        .iter()
        .map(|c| {
            let ms = c.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0);
            let bytes = c.get("result_bytes").and_then(Value::as_u64).unwrap_or(0);
            format!(
                "<tr>{}<td>{}</td><td>{}</td>{}{}<td class=\"num\">{ms:.1} ms</td><td class=\"num\">{bytes}</td></tr>",
                time_cell(s(c, "time")),
                esc(s(c, "principal")),
                esc(&shown_tool(c)),
                args_cell(c.get("args").unwrap_or(&Value::Null)),
                outcome_cell(s(c, "outcome")),
            )
        })
        .collect();
    out.push_str(&table(
        "Recent calls",
        &["Time", "Principal", "Tool", "Arguments (redacted)", "Outcome", "Duration", "Bytes"],
        &rows,
        "No calls yet.",
    ));
    let rows: Vec<String> = refused
        .iter()
        .map(|e| {
            let d = e.get("detail").unwrap_or(&Value::Null);
            let status = d.get("status").and_then(Value::as_u64).map(|n| n.to_string()).unwrap_or_default();
            format!(
                "<tr>{}<td class=\"num\">{}</td><td>{}</td><td>{} {}</td><td>{}</td><td>{}</td></tr>",
                time_cell(s(e, "time")),
                esc(&status),
                esc(s(d, "reason")),
                esc(s(d, "method")),
                esc(s(d, "path")),
                esc(s(d, "client")),
                esc(s(d, "user_agent")),
            )
        })
        .collect();
    out.push_str(&table(
        "Refused requests",
        &["Time", "Status", "Reason", "Request", "Client", "User agent"],
        &rows,
        "No refused requests.",
    ));
    out
}

/// Approvals: the pending queue with forms, recent decisions.
pub fn approvals(csrf: &str, pending: &[Value], recent: &[Value]) -> String {
    let mut out = String::from("<h2>Waiting for you</h2>");
    if pending.is_empty() {
        out.push_str("<p class=\"empty\">Nothing is waiting for approval.</p>");
    }
    for p in pending {
        let id = s(p, "id");
        let client = match s(p, "client") {
            "" => String::new(),
            c => format!(" via {}", esc(c)),
        };
        let _ = write!(
            out,
            "<article class=\"request\" aria-labelledby=\"req-{0}\"><h3 id=\"req-{0}\">{1} <span class=\"tier\">{2}</span></h3>\
             <p>By <strong>{3}</strong>{client} · rule: {4} · {5} mode · waiting {6} s, expires in {7} s · id <code>{0}</code></p>\
             <pre class=\"rendering\" tabindex=\"0\" aria-label=\"What the call will do\">{8}</pre>\
             <form method=\"post\" action=\"/dashboard/approvals/decide\" class=\"decide\">{9}\
             <input type=\"hidden\" name=\"id\" value=\"{0}\">\
             <label for=\"reason-{0}\">Reason (optional, told to the model when denied)</label>\
             <input id=\"reason-{0}\" name=\"reason\" type=\"text\" maxlength=\"500\">\
             <button type=\"submit\" name=\"decision\" value=\"approve\" class=\"go\">Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" class=\"stop\">Deny</button></form></article>",
            esc(id),
            esc(s(p, "tool")),
            esc(s(p, "tier")),
            esc(s(p, "principal")),
            esc(s(p, "rule")),
            esc(s(p, "mode")),
            p.get("waiting_s").and_then(Value::as_u64).unwrap_or(0),
            p.get("expires_in_s").and_then(Value::as_u64).unwrap_or(0),
            esc(s(p, "rendering")),
            csrf_field(csrf),
        );
    }
    let rows: Vec<String> = recent
        .iter()
        .map(|e| {
            let d = e.get("detail").unwrap_or(&Value::Null);
            let what = match s(e, "event") {
                "approval_decision" => s(d, "decision").to_owned(),
                other => other.trim_start_matches("approval_").to_owned(),
            };
            format!(
                "<tr>{}<td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                time_cell(s(e, "time")),
                esc(s(d, "id")),
                esc(s(d, "tool")),
                esc(s(d, "principal")),
                esc(&what),
                esc(s(d, "channel")),
                esc(s(d, "reason")),
            )
        })
        .collect();
    out.push_str(&table(
        "Recent decisions",
        &["Time", "Id", "Tool", "Principal", "Decision", "Channel", "Reason"],
        &rows,
        "No decisions yet.",
    ));
    out
}

/// One upstream as the Upstreams page shows it.
pub struct UpstreamRow {
    /// Its name.
    pub name: String,
    /// `fs`, `git`, `shell`, `stdio`, `http`.
    pub kind: String,
    /// `ready`, `starting`, `failed`.
    pub state: String,
    /// Tools offered.
    pub tools: usize,
    /// Restarts.
    pub restarts: u64,
    /// The last error.
    pub last_error: Option<String>,
    /// Calls answered, errors, p50 and p95 in seconds.
    pub stats: Option<(u64, u64, f64, f64)>,
}

/// Upstreams (hub): state and a restart button each.
pub fn upstreams(csrf: &str, rows: &[UpstreamRow]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|u| {
            let (calls, errors, p50, p95) = u.stats.unwrap_or((0, 0, 0.0, 0.0));
            let restart = button_form(
                &format!("/dashboard/upstreams/{}/restart", u.name),
                csrf,
                &format!("Restart {}", u.name),
                "quiet",
                "",
            );
            format!(
                "<tr><th scope=\"row\">{}</th><td>{}</td><td><span class=\"outcome {}\">{}</span></td><td class=\"num\">{}</td>\
                 <td class=\"num\">{}</td><td class=\"num\">{calls}</td><td class=\"num\">{errors}</td>\
                 <td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td><td>{}</td><td>{restart}</td></tr>",
                esc(&u.name),
                esc(&u.kind),
                if u.state == "ready" { "ok" } else { "bad" },
                esc(&u.state),
                u.tools,
                u.restarts,
                p50 * 1000.0,
                p95 * 1000.0,
                esc(u.last_error.as_deref().unwrap_or("")),
            )
        })
        .collect();
    table(
        "Upstreams",
        &["Name", "Kind", "State", "Tools", "Restarts", "Calls", "Errors", "p50", "p95", "Last error", "Action"],
        &rows,
        "No upstreams.",
    )
}

/// Upstreams for a server alone: what its control socket says.
pub fn standalone_status(status: &Value) -> String {
    let mut out = String::from("<h2>The server</h2><dl class=\"facts\">");
    for (k, label) in [("server", "Server"), ("pid", "Process id"), ("mode", "Mode"), ("pending", "Pending approvals")]
    {
        let v = match status.get(k) {
            Some(Value::String(x)) => x.clone(),
            Some(v) if !v.is_null() => v.to_string(),
            _ => "unknown".into(),
        };
        let _ = write!(out, "<dt>{label}</dt><dd>{}</dd>", esc(&v));
    }
    if let Some(m) = status.get("message").and_then(Value::as_str) {
        let _ = write!(out, "<dt>Control socket</dt><dd>{}</dd>", esc(m));
    }
    out.push_str("</dl><p>A server alone over stdio is started by its client; restart it there.</p>");
    out
}

/// What the Access page lists.
pub struct AccessData {
    /// Static tokens (never their secrets).
    pub tokens: Vec<bastion_auth::TokenRecord>,
    /// OAuth grants.
    pub grants: Vec<bastion_auth::GrantInfo>,
    /// Mode.
    pub mode: String,
    /// Paused.
    pub paused: bool,
    /// The hub has no token store (`--no-auth`) or this is a server alone.
    pub no_store: Option<&'static str>,
}

fn unix_time(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(t)).to_string()
}

fn scopes_text(scopes: &[bastion_auth::Scope], elevations: &[bastion_auth::Elevation]) -> String {
    let mut out = scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    for e in elevations {
        let added = e.scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        let _ = write!(out, " +{added} until {}", unix_time(e.until));
    }
    out
}

/// Access: switches, tokens and grants with their forms.
pub fn access(csrf: &str, d: &AccessData, now: u64) -> String {
    let mut out = String::from("<h2>Switches</h2><div class=\"cards\">");
    let _ = write!(
        out,
        "<section class=\"card\" aria-labelledby=\"pause-h\"><h3 id=\"pause-h\">Pause</h3><p>{}</p>{}</section>",
        if d.paused {
            "Every call is refused until you resume."
        } else {
            "Calls run. Pausing refuses every call at once; calls in flight finish."
        },
        if d.paused {
            button_form("/dashboard/resume", csrf, "Resume calls", "go big", "")
        } else {
            button_form("/dashboard/pause", csrf, "Pause all calls", "stop big", "")
        }
    );
    let sel = |m: &str| if d.mode == m { " selected" } else { "" };
    let _ = write!(
        out,
        "<section class=\"card\" aria-labelledby=\"mode-h\"><h3 id=\"mode-h\">Mode</h3>\
         <form method=\"post\" action=\"/dashboard/mode\">{}<label for=\"mode\">Mode</label>\
         <select id=\"mode\" name=\"mode\"><option value=\"normal\"{}>normal: as configured</option>\
         <option value=\"observe\"{}>observe: reading only</option></select> \
         <button type=\"submit\">Set mode</button></form></section></div>",
        csrf_field(csrf),
        sel("normal"),
        sel("observe")
    );
    if let Some(why) = d.no_store {
        let _ = write!(out, "<h2>Tokens</h2><p class=\"empty\">{}</p>", esc(why));
        return out;
    }
    let rows: Vec<String> = d
        .tokens
        .iter()
        .map(|t| {
            let state = match t.check(now) {
                Ok(()) => "live",
                Err(bastion_auth::Refusal::Revoked) => "revoked",
                Err(_) => "expired",
            };
            let action = if state == "live" {
                button_form("/dashboard/access/revoke", csrf, &format!("Revoke {}", t.name), "stop", &hidden("name", &t.id))
            } else {
                String::new()
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td><code>{}</code></td><td>{state}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                esc(&t.name),
                esc(&t.id),
                esc(&t.expires.map_or("never".into(), unix_time)),
                esc(&{
                    let mut text = scopes_text(&t.scopes, if state == "live" { &t.elevations } else { &[] });
                    if !t.profiles.is_empty() {
                        text.push_str(&format!(" (profiles {})", t.profiles.join(", ")));
                    }
                    text
                }),
            )
        })
        .collect();
    out.push_str(&table("Tokens", &["Name", "Id", "State", "Expires", "Scopes", "Action"], &rows, "No tokens."));
    let rows: Vec<String> = d
        .grants
        .iter()
        .map(|g| {
            let action = if g.state == "live" {
                button_form(
                    "/dashboard/access/revoke",
                    csrf,
                    &format!("Revoke {}", g.client_name),
                    "stop",
                    &hidden("name", &g.id),
                )
            } else {
                String::new()
            };
            format!(
                "<tr><th scope=\"row\">{}</th><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{action}</td></tr>",
                esc(&g.client_name),
                esc(&g.id),
                esc(g.state),
                esc(&unix_time(g.created)),
                esc(&g.last_used.map_or("never".into(), unix_time)),
                esc(&scopes_text(&g.scopes, if g.state == "live" { &g.elevations } else { &[] })),
            )
        })
        .collect();
    out.push_str(&table(
        "OAuth grants",
        &["Client", "Id", "State", "Created", "Last used", "Scopes", "Action"],
        &rows,
        "No OAuth grants.",
    ));
    let _ = write!(
        out,
        "<div class=\"cards\"><section class=\"card\" aria-labelledby=\"create-h\"><h3 id=\"create-h\">Create a token</h3>\
         <form method=\"post\" action=\"/dashboard/access/create\">{0}\
         <p><label for=\"t-name\">Name</label><input id=\"t-name\" name=\"name\" required maxlength=\"64\"></p>\
         <p><label for=\"t-scopes\">Scopes (comma-separated, e.g. fs:read, git:*)</label><input id=\"t-scopes\" name=\"scopes\" required></p>\
         <p><label for=\"t-expires\">Expires after (e.g. 30d, 12h; empty: never)</label><input id=\"t-expires\" name=\"expires\"></p>\
         <p><button type=\"submit\" class=\"go\">Create token</button></p></form></section>\
         <section class=\"card\" aria-labelledby=\"elevate-h\"><h3 id=\"elevate-h\">Elevate for a while</h3>\
         <form method=\"post\" action=\"/dashboard/access/elevate\">{0}\
         <p><label for=\"e-name\">Token name or id, or OAuth grant id</label><input id=\"e-name\" name=\"name\" required></p>\
         <p><label for=\"e-scopes\">Scopes to add</label><input id=\"e-scopes\" name=\"scopes\" required></p>\
         <p><label for=\"e-for\">For (e.g. 30m)</label><input id=\"e-for\" name=\"for\" required value=\"30m\"></p>\
         <p><button type=\"submit\">Elevate</button></p></form></section>\
         <section class=\"card danger\" aria-labelledby=\"all-h\"><h3 id=\"all-h\">Revoke everything</h3>\
         <form method=\"post\" action=\"/dashboard/access/revoke-all\">{0}\
         <p><input id=\"confirm-all\" name=\"confirm\" type=\"checkbox\" value=\"yes\" required> \
         <label for=\"confirm-all\">Revoke every token and OAuth grant now</label></p>\
         <p><button type=\"submit\" class=\"stop\">Revoke all</button></p></form></section></div>",
        csrf_field(csrf)
    );
    out
}

fn hidden(name: &str, value: &str) -> String {
    format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", esc(name), esc(value))
}

/// The page shown once after a token is created: its secret.
pub fn token_created(name: &str, secret: &str) -> String {
    format!(
        "<section class=\"card secret\" aria-labelledby=\"secret-h\"><h2 id=\"secret-h\">Token '{}' created</h2>\
         <p>This is the only time the secret is shown; it is stored hashed.</p>\
         <p><label for=\"secret\">Secret</label><input id=\"secret\" readonly value=\"{}\" size=\"60\"></p>\
         <p><a href=\"/dashboard/access\">Back to Access</a></p></section>",
        esc(name),
        esc(secret)
    )
}

/// A journal line's tool as the dashboard shows it: `{profile}/{tool}` for a call made on a
/// profile's surface (as the live list and the metrics name it).
fn shown_tool(line: &Value) -> String {
    match line.get("profile").and_then(Value::as_str) {
        Some(p) => format!("{p}/{}", s(line, "tool")),
        None => s(line, "tool").to_owned(),
    }
}

/// Journal: the search form and one page of results.
pub fn journal(q: &super::journal::Query, page: usize, result: &super::journal::Page) -> String {
    let field = |id: &str, label: &str, value: &str, kind: &str| {
        format!(
            "<p><label for=\"q-{id}\">{label}</label><input id=\"q-{id}\" name=\"{id}\" type=\"{kind}\" value=\"{}\"></p>",
            esc(value)
        )
    };
    let mut out = String::from("<form method=\"get\" action=\"/dashboard/journal\" class=\"search\" role=\"search\">");
    out.push_str(&field("from", "From (UTC)", &q.from, "datetime-local"));
    out.push_str(&field("to", "To (UTC)", &q.to, "datetime-local"));
    out.push_str(&field("principal", "Principal", &q.principal, "text"));
    out.push_str(&field("tool", "Tool or event", &q.tool, "text"));
    out.push_str(&field("outcome", "Outcome (ok, a code, or event)", &q.outcome, "text"));
    out.push_str(&field("text", "Text", &q.text, "search"));
    out.push_str("<p><button type=\"submit\">Search</button></p></form>");
    let rows: Vec<String> = result
        .lines
        .iter()
        .map(|l| match l.get("event").and_then(Value::as_str) {
            Some(event) => format!(
                "<tr>{}<td>{}</td><td>event: {}</td>{}<td></td><td></td></tr>",
                time_cell(s(l, "time")),
                esc(s(l.get("detail").unwrap_or(&Value::Null), "principal")),
                esc(event),
                args_cell(l.get("detail").unwrap_or(&Value::Null)),
            ),
            None => format!(
                "<tr>{}<td>{}</td><td>{}</td>{}{}<td class=\"num\">{:.1} ms</td></tr>",
                time_cell(s(l, "time")),
                esc(s(l, "principal")),
                esc(&shown_tool(l)),
                args_cell(l.get("args").unwrap_or(&Value::Null)),
                outcome_cell(s(l, "outcome")),
                l.get("duration_ms").and_then(Value::as_f64).unwrap_or(0.0),
            ),
        })
        .collect();
    out.push_str(&table(
        &format!("Results, page {} ({} journal file(s))", page + 1, result.files),
        &["Time", "Principal", "Tool", "Arguments or detail", "Outcome", "Duration"],
        &rows,
        "Nothing matches.",
    ));
    let link = |p: usize| {
        let pairs = [
            ("from", &q.from),
            ("to", &q.to),
            ("principal", &q.principal),
            ("tool", &q.tool),
            ("outcome", &q.outcome),
            ("text", &q.text),
        ];
        let mut qs = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if !v.is_empty() {
                qs.append_pair(k, v);
            }
        }
        qs.append_pair("page", &p.to_string());
        format!("/dashboard/journal?{}", qs.finish())
    };
    out.push_str("<nav class=\"pager\" aria-label=\"Result pages\">");
    if page > 0 {
        let _ = write!(out, "<a href=\"{}\" rel=\"prev\">Newer</a> ", esc(&link(page - 1)));
    }
    if result.more {
        let _ = write!(out, "<a href=\"{}\" rel=\"next\">Older</a>", esc(&link(page + 1)));
    }
    out.push_str("</nav>");
    out
}

/// Per-minute counts for the Health chart, oldest first.
pub struct Minute {
    /// `HH:MM`.
    pub label: String,
    /// Calls.
    pub calls: u64,
    /// Of which errors.
    pub errors: u64,
}

/// One row of the Health table.
pub struct HealthRow {
    /// Upstream or server.
    pub name: String,
    /// Calls.
    pub calls: u64,
    /// Errors.
    pub errors: u64,
    /// p50 in seconds.
    pub p50: f64,
    /// p95 in seconds.
    pub p95: f64,
}

/// Health: a calls-per-minute chart and latency per upstream, as inline SVG (presentation
/// attributes only: no style, no script).
pub fn health(minutes: &[Minute], rows: &[HealthRow], source: &str) -> String {
    let mut out = String::new();
    let total: u64 = minutes.iter().map(|m| m.calls).sum();
    let errors: u64 = minutes.iter().map(|m| m.errors).sum();
    let rate = if total == 0 { 0.0 } else { errors as f64 * 100.0 / total as f64 };
    let _ = write!(
        out,
        "<h2>Calls per minute, last {} minutes</h2><p>{total} calls, {errors} errors ({rate:.1} %).</p>",
        minutes.len()
    );
    let max = minutes.iter().map(|m| m.calls).max().unwrap_or(0).max(1);
    let (w, h, bar) = (minutes.len() * 12, 120usize, 10usize);
    let _ = write!(
        out,
        "<svg class=\"chart\" role=\"img\" aria-labelledby=\"cpm-t\" viewBox=\"0 0 {w} {}\" width=\"100%\" height=\"150\" preserveAspectRatio=\"none\">\
         <title id=\"cpm-t\">Calls per minute: {total} calls, {errors} errors in the last {} minutes</title>",
        h + 14,
        minutes.len()
    );
    for (i, m) in minutes.iter().enumerate() {
        let x = i * 12 + 1;
        let ch = (m.calls as f64 / max as f64 * h as f64).round() as usize;
        let eh = (m.errors as f64 / max as f64 * h as f64).round() as usize;
        let _ = write!(
            out,
            "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{ch}\" fill=\"#1d5fa8\"><title>{} {} calls, {} errors</title></rect>",
            h - ch,
            esc(&m.label),
            m.calls,
            m.errors
        );
        if eh > 0 {
            let _ = write!(
                out,
                "<rect x=\"{x}\" y=\"{}\" width=\"{bar}\" height=\"{eh}\" fill=\"#b3261e\"></rect>",
                h - eh
            );
        }
    }
    if let (Some(first), Some(last)) = (minutes.first(), minutes.last()) {
        let _ = write!(
            out,
            "<text x=\"0\" y=\"{}\" font-size=\"10\" fill=\"#222\">{}</text><text x=\"{w}\" y=\"{0}\" font-size=\"10\" fill=\"#222\" text-anchor=\"end\">{}</text>",
            h + 12,
            esc(&first.label),
            esc(&last.label)
        );
    }
    out.push_str("</svg><p class=\"legend\"><span class=\"key calls\"></span> calls <span class=\"key errors\"></span> errors</p>");
    let table_rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let rate = if r.calls == 0 { 0.0 } else { r.errors as f64 * 100.0 / r.calls as f64 };
            format!(
                "<tr><th scope=\"row\">{}</th><td class=\"num\">{}</td><td class=\"num\">{rate:.1} %</td><td class=\"num\">{:.1} ms</td><td class=\"num\">{:.1} ms</td></tr>",
                esc(&r.name),
                r.calls,
                r.p50 * 1000.0,
                r.p95 * 1000.0
            )
        })
        .collect();
    out.push_str(&table(
        &format!("Latency and errors per upstream ({source})"),
        &["Upstream", "Calls", "Error rate", "p50", "p95"],
        &table_rows,
        "No calls yet.",
    ));
    let slowest = rows.iter().map(|r| r.p95).fold(0.0f64, f64::max);
    if slowest > 0.0 {
        let h = rows.len() * 24 + 4;
        let _ = write!(
            out,
            "<svg class=\"chart\" role=\"img\" aria-labelledby=\"lat-t\" viewBox=\"0 0 400 {h}\" width=\"100%\" height=\"{h}\" preserveAspectRatio=\"xMinYMin meet\">\
             <title id=\"lat-t\">p50 and p95 latency per upstream</title>"
        );
        for (i, r) in rows.iter().enumerate() {
            let y = i * 24 + 2;
            let w95 = (r.p95 / slowest * 300.0).round();
            let w50 = (r.p50 / slowest * 300.0).round();
            let _ = write!(
                out,
                "<text x=\"0\" y=\"{}\" font-size=\"11\" fill=\"#222\">{}</text>\
                 <rect x=\"90\" y=\"{y}\" width=\"{w95}\" height=\"9\" fill=\"#7a9cc6\"></rect>\
                 <rect x=\"90\" y=\"{}\" width=\"{w50}\" height=\"9\" fill=\"#1d5fa8\"></rect>",
                y + 12,
                esc(&r.name),
                y + 10
            );
        }
        out.push_str(
            "</svg><p class=\"legend\"><span class=\"key p50\"></span> p50 <span class=\"key p95\"></span> p95</p>",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn caller_text_is_inert() {
        let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>\"'";
        let call = json!({"time": "2026-12-05T07:30:00.000Z", "principal": evil, "tool": evil,
            "args": {"path": evil}, "outcome": evil, "duration_ms": 1.0, "result_bytes": 3});
        let refused = json!({"time": "t", "event": "http_refused", "detail": {"reason": evil, "user_agent": evil}});
        let inflight = [InFlight { time: "t".into(), principal: evil.into(), tool: evil.into(), args: json!([evil]) }];
        let pending = json!({"id": evil, "tool": evil, "rendering": evil, "principal": evil});
        for html in [
            now(Some(&inflight), std::slice::from_ref(&call), &[refused]),
            approvals("csrf", &[pending], &[]),
            journal(&Default::default(), 0, &super::super::journal::Page { lines: vec![call], more: false, files: 1 }),
        ] {
            assert!(
                !html.contains("<script") && !html.contains("<img") && !html.contains("onerror=alert(2)>"),
                "{html}"
            );
            assert!(html.contains("&lt;script&gt;"));
        }
    }

    #[test]
    fn every_page_has_a_title_navigation_and_one_main() {
        for (slug, title, _) in PAGES {
            let f = Frame { slug, csrf: "c", paused: false, mode: "normal", standalone: false, flash: None };
            let html = layout(&f, "");
            assert!(html.contains(&format!("<title>{title} · Bastion</title>")));
            assert!(html.contains(&format!("href=\"/dashboard/{slug}\" aria-current=\"page\"")));
            assert_eq!(html.matches("<main").count(), 1);
            assert!(!html.contains("<script>") && !html.contains("style="), "no inline script or style");
        }
    }
}
