//! Ranking tools by a task phrased in words: BM25 over each tool's name, title, description and
//! parameter names. The hub's `find_tools` answers from it, and the selection eval
//! (`tests/context.rs`) checks with it that every built-in tool's description still wins the
//! task it is for.
//!
//! Words are folded to a crude stem (lower case, `-ing`/`-ed`/`-es`/`-s` and a final `e` cut)
//! so that "staged", "stage" and "staging" meet; names are split at `_` and case changes, so
//! `git__create_branch` is found by "create a branch". The name counts three times and the title
//! twice: a tool named for the task should beat one that mentions it in passing.
//!
//! ```
//! use bastion_hub::search::{Doc, Index};
//!
//! let index = Index::new(vec![
//!     Doc::new("fs__read_file", "Read file", "Read a text file.", &["path"]),
//!     Doc::new("git__log", "Git log", "Commit history, newest first.", &["rev"]),
//! ]);
//! assert_eq!(index.rank("show the commit history", 1), [1]);
//! ```

use std::collections::HashMap;

use rmcp::model::Tool;

/// BM25's term-frequency saturation.
const K1: f64 = 1.2;
/// BM25's length normalisation.
const B: f64 = 0.75;

/// Words too common in task phrasings and tool descriptions to tell tools apart.
const STOP_WORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "by", "at", "from", "is", "are", "be", "it",
    "its", "this", "that", "these", "those", "as", "me", "my", "i", "we", "you", "your", "do", "does", "what", "which",
    "all", "any", "one", "some", "into", "than", "then", "when", "can", "may", "use", "using", "there", "here",
];

/// One tool as the index sees it.
#[derive(Clone, Debug)]
pub struct Doc {
    /// The name it is offered under.
    pub name: String,
    terms: Vec<String>,
}

impl Doc {
    /// A document of a tool's name, title, description and parameter names.
    pub fn new(name: &str, title: &str, description: &str, params: &[&str]) -> Doc {
        let mut terms = vec![];
        let name_terms = tokens(name);
        for _ in 0..3 {
            terms.extend(name_terms.iter().cloned());
        }
        let title_terms = tokens(title);
        terms.extend(title_terms.iter().cloned());
        terms.extend(title_terms);
        terms.extend(tokens(description));
        for p in params {
            terms.extend(tokens(p));
        }
        Doc { name: name.to_owned(), terms }
    }

    /// A document of an MCP tool definition.
    pub fn of_tool(tool: &Tool) -> Doc {
        let params: Vec<&str> = tool
            .input_schema
            .get("properties")
            .and_then(|p| p.as_object())
            .map(|p| p.keys().map(String::as_str).collect())
            .unwrap_or_default();
        let title = tool.title.as_deref().or_else(|| tool.annotations.as_ref().and_then(|a| a.title.as_deref()));
        Doc::new(&tool.name, title.unwrap_or(""), tool.description.as_deref().unwrap_or(""), &params)
    }
}

/// An index over a fixed set of documents.
#[derive(Clone, Debug)]
pub struct Index {
    docs: Vec<(Doc, HashMap<String, usize>)>,
    df: HashMap<String, usize>,
    avg_len: f64,
}

impl Index {
    /// Indexes `docs`; results are positions in this list.
    pub fn new(docs: Vec<Doc>) -> Index {
        let mut df: HashMap<String, usize> = HashMap::new();
        let mut total = 0usize;
        let docs: Vec<_> = docs
            .into_iter()
            .map(|d| {
                let mut tf: HashMap<String, usize> = HashMap::new();
                for t in &d.terms {
                    *tf.entry(t.clone()).or_default() += 1;
                }
                for t in tf.keys() {
                    *df.entry(t.clone()).or_default() += 1;
                }
                total += d.terms.len();
                (d, tf)
            })
            .collect();
        let avg_len = if docs.is_empty() { 1.0 } else { total as f64 / docs.len() as f64 };
        Index { docs, df, avg_len }
    }

    /// The BM25 score of every document for `query`, in document order.
    pub fn scores(&self, query: &str) -> Vec<f64> {
        let n = self.docs.len() as f64;
        let mut terms = tokens(query);
        terms.sort();
        terms.dedup();
        self.docs
            .iter()
            .map(|(d, tf)| {
                let len = d.terms.len() as f64;
                terms
                    .iter()
                    .map(|t| {
                        let f = tf.get(t).copied().unwrap_or(0) as f64;
                        if f == 0.0 {
                            return 0.0;
                        }
                        let df = self.df.get(t).copied().unwrap_or(0) as f64;
                        let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
                        idf * f * (K1 + 1.0) / (f + K1 * (1.0 - B + B * len / self.avg_len))
                    })
                    .sum()
            })
            .collect()
    }

    /// Positions of the best `limit` documents for `query` with a score above zero, best
    /// first; ties keep document order.
    pub fn rank(&self, query: &str, limit: usize) -> Vec<usize> {
        let scores = self.scores(query);
        let mut order: Vec<usize> = (0..scores.len()).filter(|&i| scores[i] > 0.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.truncate(limit);
        order
    }

    /// The document at `i`.
    pub fn doc(&self, i: usize) -> Option<&Doc> {
        self.docs.get(i).map(|(d, _)| d)
    }
}

/// The index terms of `text`: words split at anything not a letter or digit and at case
/// changes, lower-cased, stop words dropped, crudely stemmed.
pub fn tokens(text: &str) -> Vec<String> {
    let mut words = vec![];
    let mut word = String::new();
    let mut previous_lower = false;
    for c in text.chars() {
        if c.is_alphanumeric() {
            if c.is_uppercase() && previous_lower && !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
            previous_lower = c.is_lowercase() || c.is_ascii_digit();
            word.extend(c.to_lowercase());
        } else {
            previous_lower = false;
            if !word.is_empty() {
                words.push(std::mem::take(&mut word));
            }
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words.into_iter().filter(|w| !STOP_WORDS.contains(&w.as_str())).map(|w| stem(&w)).collect()
}

/// A crude stem: enough for "changes", "changed" and "change" to meet.
fn stem(word: &str) -> String {
    let mut w = word;
    for suffix in ["ing", "ed", "es", "s"] {
        if w.len() > suffix.len() + 2 && w.ends_with(suffix) && !(suffix == "s" && w.ends_with("ss")) {
            w = &w[..w.len() - suffix.len()];
            break;
        }
    }
    w.strip_suffix('e').filter(|s| s.len() >= 3).unwrap_or(w).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_fold_to_the_same_stem() {
        assert_eq!(tokens("Staged changes"), tokens("stage change"));
        assert_eq!(tokens("staging"), tokens("stage"));
        assert_eq!(tokens("processes"), ["process"]);
        assert_eq!(tokens("git__create_branch"), ["git", "creat", "branch"]);
        assert_eq!(tokens("getTinyImage"), ["get", "tiny", "imag"]);
        assert_eq!(tokens("the file"), ["fil"]);
    }

    #[test]
    fn names_weigh_more_than_mentions() {
        let index = Index::new(vec![
            Doc::new("fs__read_file", "", "Read a text file; see git__log for history.", &[]),
            Doc::new("git__log", "", "Commit history.", &[]),
            Doc::new("x__y", "", "Unrelated.", &[]),
        ]);
        assert_eq!(index.rank("log", 3), [1, 0]);
        assert_eq!(index.rank("nothing matches", 3), Vec::<usize>::new());
        assert_eq!(index.doc(1).map(|d| d.name.as_str()), Some("git__log"));
    }
}
