//! Output budgets and size limits.

use serde::{Deserialize, Serialize};

/// Size and output limits. Every tool result is cut to the budget with an explicit `truncated`
/// flag and a continuation the model can pass back, never silently.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Most characters of text in one tool result.
    pub output_chars: usize,
    /// Largest file `read_file` loads (bytes).
    pub max_read_bytes: u64,
    /// Largest content a write may produce (bytes).
    pub max_write_bytes: u64,
    /// Largest image returned inline as base64 (bytes).
    pub max_image_bytes: u64,
    /// Largest file `search_text` looks inside (bytes).
    pub max_search_file_bytes: u64,
    /// Most names a directory walk collects before it stops and reports `complete: false`.
    pub max_walk_entries: usize,
    /// Per-tool rate limits (`[[limits.tool]]`), per caller; none by default (a server on stdio
    /// has one client, and the hub limits each of its callers at its own layer).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tool: Vec<crate::ratelimit::ToolRate>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            output_chars: 100_000,
            max_read_bytes: 64 << 20,
            max_write_bytes: 16 << 20,
            max_image_bytes: 5 << 20,
            max_search_file_bytes: 32 << 20,
            max_walk_entries: 200_000,
            tool: Vec::new(),
        }
    }
}

impl Limits {
    /// The output budget of one result in characters: the caller's request, capped by
    /// `output_chars` (and at least 1).
    pub fn budget(&self, requested: Option<u64>) -> usize {
        let cap = self.output_chars;
        requested.map(|r| usize::try_from(r).unwrap_or(usize::MAX).clamp(1, cap)).unwrap_or(cap)
    }
}

/// Cuts `s` to at most `max_chars` characters. Returns the kept prefix and whether it was cut.
pub fn cut_chars(s: &str, max_chars: usize) -> (&str, bool) {
    match s.char_indices().nth(max_chars) {
        Some((idx, _)) => (&s[..idx], true),
        None => (s, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_on_char_boundaries() {
        assert_eq!(cut_chars("héllo", 2), ("hé", true));
        assert_eq!(cut_chars("héllo", 5), ("héllo", false));
        assert_eq!(cut_chars("", 0), ("", false));
    }
}
