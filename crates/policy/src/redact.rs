//! Secret redaction: values of well-known secret formats (private key blocks, cloud access keys,
//! GitHub, GitLab, Slack, OpenAI, Anthropic and Stripe tokens, JWTs, `password=`-style
//! assignments) are replaced in what a tool returns by a marker naming the kind, such as
//! `[REDACTED:github_token]`.
//!
//! It is pattern matching, so best effort: a secret in an unknown format, split across reads, or
//! guessed from search results character by character is not caught. It keeps well-known
//! credentials out of a model's context (and out of whatever the model's provider logs) when a
//! tool reads a file or runs a command that happens to print one.
//!
//! The engine sits on the hot path of every read, so the common case — no secret — costs one
//! scan with one vectorised literal prefilter and no allocation: [`Redactor::redact`] returns the input borrowed.
//!
//! ```
//! use bastion_policy::redact::{RedactConfig, Redactor};
//!
//! let r = Redactor::new(&RedactConfig::default()).expect("built-in patterns compile");
//! let out = r.redact("GITHUB_TOKEN=ghp_0123456789abcdefghijklmnopqrstuvwxyzAB\n");
//! assert_eq!(out.text, "GITHUB_TOKEN=[REDACTED:github_token]\n");
//! assert_eq!(out.count, 1);
//! assert!(matches!(r.redact("fn main() {}").text, std::borrow::Cow::Borrowed(_)));
//! ```

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, Result};

/// What every marker starts with; a marker is `[REDACTED:kind]`.
pub const MARKER_PREFIX: &str = "[REDACTED:";

/// The `[redact]` table of the policy.
///
/// ```toml
/// [redact]
/// enabled = true                 # the default
/// disabled = ["jwt"]             # built-in kinds turned off
///
/// [[redact.extra]]
/// kind = "acme_token"            # the marker says [REDACTED:acme_token]
/// pattern = "acme_[A-Za-z0-9]{32}"
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedactConfig {
    /// Redact tool output at all (on by default).
    pub enabled: bool,
    /// Built-in kinds not to redact (see [`BUILTIN_KINDS`]).
    pub disabled: Vec<String>,
    /// Additional patterns, each with the kind its marker names.
    pub extra: Vec<ExtraPattern>,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig { enabled: true, disabled: Vec::new(), extra: Vec::new() }
    }
}

/// An operator's own secret pattern (`[[redact.extra]]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraPattern {
    /// `snake_case` name shown in the marker.
    pub kind: String,
    /// A regular expression (Rust `regex` syntax). A capture group named `s` narrows what is
    /// replaced to that group; otherwise the whole match is.
    pub pattern: String,
}

/// The result of [`Redactor::redact`]: the text (borrowed when nothing was found) and how many
/// secrets were replaced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Redacted<'a> {
    /// The text with every secret replaced by its marker.
    pub text: Cow<'a, str>,
    /// Secrets replaced.
    pub count: usize,
}

impl Redacted<'_> {
    /// The text as an owned string (moves it when it was already rewritten).
    pub fn into_owned(self) -> String {
        self.text.into_owned()
    }
}

/// A test a candidate must also pass, for formats a regular expression alone would over-match.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// The pattern is specific enough.
    None,
    /// At least one ASCII letter and one digit (real API keys are random; `sk-some-long-word`
    /// in prose is not).
    Random,
    /// The value of a `password=`-style assignment: not a placeholder, a type name, a variable
    /// reference or a piece of code.
    AssignedValue,
}

/// One built-in kind: its name, pattern and extra check.
struct Builtin {
    kind: &'static str,
    /// A cheap pattern (mostly a literal) every secret of this kind contains: the set of all
    /// triggers is the prefilter that one pass over the text runs.
    trigger: &'static str,
    /// The full pattern. Every kind but `private_key` fits on one line and is only ever run on
    /// the lines where its trigger was found, so the costly patterns (`secret_assignment`) never
    /// scan a whole file.
    pattern: &'static str,
    check: Check,
}

/// Words one of which the key of a secret assignment contains, in the spellings keys use. Plain
/// literals rather than `(?i)`: a set of literals is found by a vectorised prefilter, where a
/// case-insensitive pattern makes the DFA visit every byte (2.7 µs per KiB instead of well
/// under 1). The full pattern, run on the line, is case-insensitive.
const SECRET_WORDS: &str = concat!(
    "password|Password|PASSWORD|passwd|Passwd|PASSWD|passphrase|Passphrase|PASSPHRASE|",
    "secret|Secret|SECRET|token|Token|TOKEN|",
    "api_key|api-key|apikey|apiKey|ApiKey|APIKEY|API_KEY|API-KEY|",
    "access_key|accessKey|AccessKey|ACCESS_KEY|private_key|privateKey|PrivateKey|PRIVATE_KEY|",
    "auth_key|authKey|AuthKey|AUTH_KEY"
);

/// The built-in kinds, most specific first: when two patterns claim the same text, the earlier
/// wins, so a GitHub token assigned to `TOKEN=` is reported as `github_token`.
///
/// `(?-u:\b)` is an ASCII word boundary: the lazy DFA cannot handle a Unicode one on non-ASCII
/// text and would fall back to a much slower engine.
fn builtins() -> Vec<Builtin> {
    vec![
        Builtin {
            kind: "private_key",
            trigger: r"-----BEGIN[ A-Z0-9]*PRIVATE KEY",
            // A whole block; or, when its END line is missing (a cut read), the block up to the
            // end of its base64 body. `\\` keeps JSON-escaped blocks (GCP service accounts) whole.
            pattern: r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----(?:(?s:.*?)-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\\\r\n \t]*)",
            check: Check::None,
        },
        Builtin {
            kind: "github_token",
            trigger: r"gh[pousr]_|github_pat_",
            pattern: r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?-u:\b)",
            check: Check::None,
        },
        Builtin {
            kind: "gitlab_token",
            trigger: "glpat-",
            pattern: r"(?-u:\b)glpat-[A-Za-z0-9_-]{20,}",
            check: Check::None,
        },
        Builtin {
            kind: "slack_token",
            trigger: "xox[abpr]-",
            pattern: r"(?-u:\b)xox[abpr]-[A-Za-z0-9-]{10,}",
            check: Check::None,
        },
        Builtin {
            kind: "slack_webhook",
            trigger: r"hooks\.slack\.com/",
            pattern: r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/]{8,}",
            check: Check::None,
        },
        Builtin {
            kind: "anthropic_api_key",
            trigger: "sk-ant-",
            pattern: r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}",
            check: Check::Random,
        },
        Builtin {
            kind: "openai_api_key",
            trigger: "sk-",
            pattern: r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}",
            check: Check::Random,
        },
        Builtin {
            kind: "stripe_key",
            trigger: "(?:sk|rk)_(?:live|test)_|whsec_",
            pattern: r"(?-u:\b)(?:(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{20,}|whsec_[A-Za-z0-9]{20,})",
            check: Check::None,
        },
        Builtin {
            kind: "aws_access_key_id",
            trigger: "AKIA|ASIA|ABIA|ACCA",
            pattern: r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)",
            check: Check::None,
        },
        Builtin {
            kind: "aws_secret_access_key",
            trigger: "aws_secret|awsSecret|AwsSecret|AWS_SECRET|AWSSECRET|awssecret",
            pattern: r#"(?i-u:aws_?secret_?(?:access_?)?key)["']?[ \t]*[:=][ \t]*["']?(?P<s>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+=]|$)"#,
            check: Check::None,
        },
        Builtin {
            kind: "gcp_api_key",
            trigger: "AIza",
            pattern: r"(?-u:\b)AIza[0-9A-Za-z_-]{35}(?-u:\b)",
            check: Check::None,
        },
        Builtin {
            kind: "azure_connection_string",
            trigger: "AccountKey=|SharedAccessKey=|SharedAccessSignature=",
            pattern: r"(?:AccountKey|SharedAccessKey|SharedAccessSignature)=(?P<s>[A-Za-z0-9+/=%]{20,})",
            check: Check::None,
        },
        Builtin {
            kind: "jwt",
            trigger: r"eyJ[A-Za-z0-9_-]{5,}\.ey",
            pattern: r"(?-u:\b)eyJ[A-Za-z0-9_-]{5,}\.ey[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*",
            check: Check::None,
        },
        Builtin {
            kind: "url_credentials",
            trigger: "://",
            pattern: r"(?-u:\b)[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:(?P<s>[^\s:/@]{3,})@",
            check: Check::AssignedValue,
        },
        Builtin {
            kind: "secret_assignment",
            trigger: SECRET_WORDS,
            // `KEY=value`, `KEY: value`, `export KEY=value`, `- KEY=value` on a line of their own
            // (quoted, or bare up to the end of the line or a `#` comment): what env-like files
            // look like, and what code mostly does not. The key must end with a secret word, so
            // `max_tokens`, `token_type` and `tokenizer` are not secrets.
            pattern: concat!(
                r#"(?m)^[ \t]*(?:export[ \t]+|-[ \t]+)?["']?[A-Za-z0-9_.-]*(?i-u:"#,
                r"password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?key|client[_-]?secret",
                r#")["']?[ \t]*[=:][ \t]*(?:"(?P<dq>[^"\r\n]*)"|'(?P<sq>[^'\r\n]*)'|(?P<s>[^\s"']+))[ \t]*(?:[ \t]#.*)?\r?$"#
            ),
            check: Check::AssignedValue,
        },
        Builtin {
            kind: "secret_assignment",
            trigger: SECRET_WORDS,
            // JSON (`"password": "…"`), anywhere on a line.
            pattern: concat!(
                r#""[A-Za-z0-9_.-]*(?i-u:"#,
                r"password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key|secret[_-]?key|private[_-]?key|auth[_-]?key|client[_-]?secret",
                r#")"[ \t]*:[ \t]*"(?P<s>[^"\\\r\n]+)""#
            ),
            check: Check::AssignedValue,
        },
    ]
}

/// Every built-in kind, for `disabled` and documentation.
pub const BUILTIN_KINDS: &[&str] = &[
    "private_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "slack_webhook",
    "anthropic_api_key",
    "openai_api_key",
    "stripe_key",
    "aws_access_key_id",
    "aws_secret_access_key",
    "gcp_api_key",
    "azure_connection_string",
    "jwt",
    "url_credentials",
    "secret_assignment",
];

struct Rule {
    kind: String,
    marker: String,
    trigger: Regex,
    regex: Regex,
    /// Run on the whole text (key blocks span lines; an operator's pattern may), rather than on
    /// the lines where the trigger was found.
    whole: bool,
    /// The trigger is a key name that must be followed by `=` or `:` (see [`assigned_after`]).
    assignment: bool,
    check: Check,
}

/// One rule before compilation.
struct Spec {
    kind: String,
    trigger: String,
    pattern: String,
    whole: bool,
    check: Check,
}

/// The redaction engine. Build it once per policy; it is cheap to share.
///
/// The built-in patterns are compiled on first use, not when the policy is built: compiling
/// them takes about 4.7 ms, which was the whole difference in a server's start-up to its first
/// `initialize` (5 ms → 10 ms). A configuration with its own patterns or disabled kinds is
/// compiled at once, so a bad one still fails at start.
pub struct Redactor {
    config: RedactConfig,
    compiled: std::sync::OnceLock<Compiled>,
}

/// The compiled patterns.
struct Compiled {
    /// Every trigger in one alternation, `None` when redaction is off (or every kind is
    /// disabled).
    ///
    /// Measured on 1 KiB of source without a secret: a `RegexSet` of the triggers costs 1.9 µs
    /// (a multi-pattern set gets no literal prefilter, so its DFA visits every byte) and about
    /// 20 µs to say which patterns matched; one `Regex` of the alternation gets a vectorised
    /// literal prefilter and answers in a fraction of that. Which kinds are present is then
    /// asked of each trigger alone, each with its own prefilter.
    set: Option<Regex>,
    rules: Vec<Rule>,
}

impl Compiled {
    fn empty() -> Compiled {
        Compiled { set: None, rules: Vec::new() }
    }
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = self.compiled();
        let kinds: Vec<&str> = c.rules.iter().map(|r| r.kind.as_str()).collect();
        f.debug_struct("Redactor").field("enabled", &c.set.is_some()).field("kinds", &kinds).finish()
    }
}

impl Default for Redactor {
    /// A redactor that changes nothing (what [`Redactor::new`] builds with `enabled = false`).
    fn default() -> Self {
        Redactor {
            config: RedactConfig { enabled: false, ..RedactConfig::default() },
            compiled: Compiled::empty().into(),
        }
    }
}

impl Redactor {
    /// The engine for `config`. Unknown kinds in `disabled`, bad kind names and patterns that
    /// do not compile are `invalid_config`, reported here; the default built-in set is
    /// compiled on first use.
    pub fn new(config: &RedactConfig) -> Result<Self> {
        let eager = !config.enabled || !config.disabled.is_empty() || !config.extra.is_empty();
        let compiled = std::sync::OnceLock::new();
        if eager {
            let _ = compiled.set(build(config)?);
        }
        Ok(Redactor { config: config.clone(), compiled })
    }

    /// The compiled patterns, compiled now if this is the first use. Only the built-in set is
    /// compiled lazily, and it always compiles (`builtins_compile` tests it); were it ever not
    /// to, nothing would be redacted rather than every call failing.
    fn compiled(&self) -> &Compiled {
        self.compiled.get_or_init(|| build(&self.config).unwrap_or_else(|_| Compiled::empty()))
    }
}

/// Compiles the built-in patterns (minus `disabled`) and the operator's `extra` ones.
fn build(config: &RedactConfig) -> Result<Compiled> {
    if !config.enabled {
        return Ok(Compiled::empty());
    }
    let bad = |m: String| Error::new(ErrorCode::InvalidConfig, format!("redact: {m}"));
    for k in &config.disabled {
        if !BUILTIN_KINDS.contains(&k.as_str()) {
            return Err(bad(format!(
                "disabled names '{k}', which is not a built-in kind ({})",
                BUILTIN_KINDS.join(", ")
            )));
        }
    }
    let mut specs: Vec<Spec> = builtins()
        .into_iter()
        .filter(|b| !config.disabled.iter().any(|d| d == b.kind))
        .map(|b| Spec {
            kind: b.kind.to_string(),
            trigger: b.trigger.to_string(),
            pattern: b.pattern.to_string(),
            whole: b.kind == "private_key",
            check: b.check,
        })
        .collect();
    for e in &config.extra {
        let valid = e.kind.len() <= 64
            && e.kind.starts_with(|c: char| c.is_ascii_lowercase())
            && e.kind.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(bad(format!("extra kind '{}' must be snake_case (a-z, 0-9, _; at most 64)", e.kind)));
        }
        specs.push(Spec {
            kind: e.kind.clone(),
            trigger: e.pattern.clone(),
            pattern: e.pattern.clone(),
            whole: true,
            check: Check::None,
        });
    }
    let mut rules = Vec::with_capacity(specs.len());
    for spec in &specs {
        let kind = &spec.kind;
        let compile = |p: &str| Regex::new(p).map_err(|e| bad(format!("pattern of '{kind}' does not compile: {e}")));
        let regex = compile(&spec.pattern)?;
        if regex.is_match("") {
            return Err(bad(format!("pattern of '{kind}' matches the empty string")));
        }
        rules.push(Rule {
            kind: kind.clone(),
            marker: marker(kind),
            trigger: compile(&spec.trigger)?,
            regex,
            whole: spec.whole,
            assignment: spec.trigger == SECRET_WORDS,
            check: spec.check,
        });
    }
    if rules.is_empty() {
        return Ok(Compiled::empty());
    }
    let any = specs.iter().map(|s| format!("(?:{})", s.trigger)).collect::<Vec<_>>().join("|");
    let set = Regex::new(&any).map_err(|e| bad(format!("patterns do not compile together: {e}")))?;
    Ok(Compiled { set: Some(set), rules })
}

impl Redactor {
    /// Whether anything is redacted at all.
    pub fn enabled(&self) -> bool {
        self.compiled().set.is_some()
    }

    /// Replaces every secret in `text` by its marker. A secret that spans lines (a key block) is
    /// replaced by its marker followed by as many newlines as it held, so line numbers after it
    /// stay those of the file. Borrows `text` when nothing is found.
    pub fn redact<'a>(&self, text: &'a str) -> Redacted<'a> {
        let compiled = self.compiled();
        let Some(set) = &compiled.set else { return Redacted { text: Cow::Borrowed(text), count: 0 } };
        // The common case, no secret at all: one pass of the set's DFA, nothing allocated.
        if !set.is_match(text) {
            return Redacted { text: Cow::Borrowed(text), count: 0 };
        }
        let mut spans: Vec<(usize, usize, usize)> = Vec::new();
        for (i, rule) in compiled.rules.iter().enumerate() {
            if rule.whole {
                if !rule.trigger.is_match(text) {
                    continue;
                }
                rule.collect(text, 0, i, &mut spans);
                continue;
            }
            // Each line holding a trigger, once.
            let mut done = 0usize;
            for t in rule.trigger.find_iter(text) {
                if t.start() < done || (rule.assignment && !assigned_after(text, t.end())) {
                    continue;
                }
                let start = text[..t.start()].rfind('\n').map_or(0, |n| n + 1);
                let end = text[t.end()..].find('\n').map_or(text.len(), |n| t.end() + n);
                rule.collect(&text[start..end], start, i, &mut spans);
                done = end;
            }
        }
        if spans.is_empty() {
            return Redacted { text: Cow::Borrowed(text), count: 0 };
        }
        // Earliest first; at the same start the more specific (earlier) rule wins; a span that
        // overlaps one already taken is dropped.
        spans.sort_unstable_by_key(|&(start, _, rule)| (start, rule));
        let mut out = String::with_capacity(text.len());
        let mut at = 0usize;
        let mut count = 0usize;
        for (start, end, rule) in spans {
            if start < at {
                continue;
            }
            out.push_str(&text[at..start]);
            out.push_str(&compiled.rules[rule].marker);
            for _ in text[start..end].matches('\n') {
                out.push('\n');
            }
            at = end;
            count += 1;
        }
        out.push_str(&text[at..]);
        Redacted { text: Cow::Owned(out), count }
    }

    /// Redacts `s` in place, returning how many secrets were replaced.
    pub fn redact_string(&self, s: &mut String) -> usize {
        let r = self.redact(s);
        let count = r.count;
        if let Cow::Owned(new) = r.text {
            *s = new;
        }
        count
    }

    /// Refuses new content that would write a marker over a secret: `new` holds a marker of a
    /// kind the current content `old` has a secret of, more times than `old` literally holds
    /// that marker. That is what happens when a model writes back text it read redacted. A file
    /// without secrets may receive markers (documentation about Bastion, for one).
    pub fn check_no_markers_written(&self, old: &str, new: &str, shown: &str) -> Result<()> {
        if !self.enabled() || !new.contains(MARKER_PREFIX) {
            return Ok(());
        }
        let redacted = self.redact(old);
        if redacted.count == 0 {
            return Ok(());
        }
        let secret_kinds = marker_counts(&redacted.text);
        let literal = marker_counts(old);
        for (kind, n) in marker_counts(new) {
            let had = literal.get(kind).copied().unwrap_or(0);
            if n > had && secret_kinds.get(kind).copied().unwrap_or(0) > had {
                return Err(redacted_content(shown, kind));
            }
        }
        Ok(())
    }
}

impl Rule {
    /// Adds the secrets of `hay` (which starts at byte `base` of the text) to `spans`.
    fn collect(&self, hay: &str, base: usize, index: usize, spans: &mut Vec<(usize, usize, usize)>) {
        // Most lines a trigger finds hold no secret (`token` in code and prose): a DFA answers
        // that far faster than a search for capture groups.
        if !self.regex.is_match(hay) {
            return;
        }
        for caps in self.regex.captures_iter(hay) {
            let group = ["s", "dq", "sq"].iter().find_map(|g| caps.name(g)).or_else(|| caps.get(0));
            let Some(m) = group else { continue };
            if m.is_empty() || !passes(self.check, m.as_str()) {
                continue;
            }
            spans.push((base + m.start(), base + m.end(), index));
        }
    }
}

/// Whether a key name ending at byte `end` of `text` is assigned: the rest of the key
/// (`[A-Za-z0-9_.-]`), an optional closing quote, blanks, then `=` or `:`. Most places the word
/// `token` or `password` appears (code, prose, file names) fail this at once, before any regular
/// expression runs: measured on this crate's `audit.rs` (22 such words in 7 KiB, no secret), the
/// assignment patterns went from 22 µs to well under 1.
fn assigned_after(text: &str, end: usize) -> bool {
    let mut rest =
        text.as_bytes()[end..].iter().skip_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    let mut next = rest.next();
    if matches!(next, Some(b'"' | b'\'')) {
        next = rest.next();
    }
    while matches!(next, Some(b' ' | b'\t')) {
        next = rest.next();
    }
    matches!(next, Some(b'=' | b':'))
}

/// The `redacted_content` error for `shown`, whose text the caller holds only redacted.
pub fn redacted_content(shown: &str, kind: &str) -> Error {
    Error::new(
        ErrorCode::RedactedContent,
        format!(
            "'{shown}' holds a secret that was shown to you as {MARKER_PREFIX}{kind}]; that marker is not the file's text, and writing it would destroy the secret. Edit around it: choose old_text (or patch context) that leaves the redacted line out, or ask the user to change that value"
        ),
    )
}

/// The first marker kind in `text`, if any.
pub fn first_marker(text: &str) -> Option<&str> {
    markers(text).next()
}

/// The marker of `kind`.
pub fn marker(kind: &str) -> String {
    format!("{MARKER_PREFIX}{kind}]")
}

/// The kinds of the well-formed markers in `text`, in order.
fn markers(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices(MARKER_PREFIX).filter_map(move |(i, _)| {
        let rest = &text[i + MARKER_PREFIX.len()..];
        let end = rest.find(']')?;
        let kind = &rest[..end];
        let ok = !kind.is_empty()
            && kind.len() <= 64
            && kind.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        ok.then_some(kind)
    })
}

fn marker_counts(text: &str) -> BTreeMap<&str, usize> {
    let mut m = BTreeMap::new();
    for k in markers(text) {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}

fn passes(check: Check, value: &str) -> bool {
    match check {
        Check::None => true,
        Check::Random => value.bytes().any(|b| b.is_ascii_digit()) && value.bytes().any(|b| b.is_ascii_alphabetic()),
        Check::AssignedValue => is_secret_value(value),
    }
}

/// Whether the value of a `password=`-style assignment looks like a real secret rather than a
/// placeholder, a type name, a reference to another variable or a piece of code.
fn is_secret_value(v: &str) -> bool {
    const NOT_SECRETS: &[&str] = &[
        "true",
        "false",
        "null",
        "none",
        "nil",
        "undefined",
        "yes",
        "no",
        "on",
        "off",
        "required",
        "optional",
        "string",
        "str",
        "bytes",
        "int",
        "bool",
        "boolean",
        "number",
        "any",
        "object",
        "secret",
        "secrets",
        "password",
        "passwd",
        "token",
        "changeme",
        "example",
        "redacted",
        "xxx",
        "todo",
        "tbd",
    ];
    if v.len() < 3 || v.chars().any(char::is_whitespace) || v.starts_with(MARKER_PREFIX) {
        return false;
    }
    let first = v.as_bytes()[0];
    if matches!(first, b'$' | b'<' | b'{' | b'%' | b'(' | b'[' | b'!' | b'&' | b'*' | b'|' | b'>' | b'@' | b'`') {
        return false;
    }
    if v.ends_with([',', ';', '(', '{', '[', '\\']) || v.contains("()") || v.contains("::") {
        return false;
    }
    let lower = v.to_ascii_lowercase();
    if NOT_SECRETS.contains(&lower.as_str()) || lower.bytes().all(|b| b == b'x' || b == b'*' || b == b'.' || b == b'-')
    {
        return false;
    }
    // `settings.SECRET_KEY`, `os.environ`, `config.token`: a reference in code, not a value.
    let identifier = |p: &str| {
        p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    if v.contains('.') && v.split('.').all(identifier) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The lazily compiled default set must compile: `Redactor::compiled` relies on it.
    #[test]
    fn builtins_compile() {
        let compiled = build(&RedactConfig::default()).map_err(|e| e.message).unwrap_or_else(|m| panic!("{m}"));
        assert!(compiled.set.is_some());
        assert!(compiled.rules.len() >= BUILTIN_KINDS.len());
        // Lazy: nothing compiled until the first use, then the same engine.
        let r = Redactor::new(&RedactConfig::default()).map_err(|e| e.message).unwrap_or_else(|m| panic!("{m}"));
        assert!(r.compiled.get().is_none());
        assert!(r.enabled() && r.compiled.get().is_some());
    }
}
