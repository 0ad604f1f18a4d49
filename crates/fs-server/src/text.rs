//! Text decoding, binary detection and line handling shared by the tools.

use sha2::{Digest, Sha256};

/// How a file's bytes were turned into text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// Valid UTF-8.
    Utf8,
    /// Not UTF-8 and no NUL bytes: decoded as ISO-8859-1, which maps every byte to one character,
    /// so the text can be edited and written back byte-for-byte.
    Latin1,
}

impl Encoding {
    /// Name reported to the model.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Utf8 => "utf-8",
            Encoding::Latin1 => "latin-1",
        }
    }

    /// Encodes text back to bytes. `None` when a character does not fit the encoding.
    pub fn encode(self, text: &str) -> Option<Vec<u8>> {
        match self {
            Encoding::Utf8 => Some(text.as_bytes().to_vec()),
            Encoding::Latin1 => text.chars().map(|c| u8::try_from(u32::from(c)).ok()).collect(),
        }
    }
}

/// What a file's bytes are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// Text in the given encoding.
    Text(String, Encoding),
    /// An image format clients can show.
    Image(&'static str),
    /// Anything else with NUL bytes.
    Binary,
}

/// Sniffs an image MIME type from magic bytes.
pub fn image_mime(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(b"\xff\xd8\xff") {
        Some("image/jpeg")
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some("image/gif")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// Classifies and decodes file bytes.
pub fn decode(bytes: Vec<u8>) -> Content {
    if let Some(mime) = image_mime(&bytes) {
        return Content::Image(mime);
    }
    let head = &bytes[..bytes.len().min(8192)];
    if head.contains(&0) {
        return Content::Binary;
    }
    match String::from_utf8(bytes) {
        Ok(s) => Content::Text(s, Encoding::Utf8),
        Err(e) => {
            let bytes = e.into_bytes();
            if bytes.contains(&0) {
                Content::Binary
            } else {
                Content::Text(bytes.iter().map(|&b| char::from(b)).collect(), Encoding::Latin1)
            }
        }
    }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The file's dominant line ending: CRLF when its first line break is CRLF.
pub fn uses_crlf(text: &str) -> bool {
    text.find('\n').is_some_and(|i| i > 0 && text.as_bytes()[i - 1] == b'\r')
}

/// Converts LF line breaks to CRLF, leaving existing CRLFs alone.
pub fn to_crlf(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 32);
    let mut prev = '\0';
    for c in text.chars() {
        if c == '\n' && prev != '\r' {
            out.push('\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

/// Number of lines (a final line without a newline counts; an empty file has 0).
pub fn line_count(text: &str) -> usize {
    if text.is_empty() {
        return 0;
    }
    text.bytes().filter(|&b| b == b'\n').count() + usize::from(!text.ends_with('\n'))
}

/// Shortens a line for display in search results, on a char boundary.
pub fn clip_line(line: &str, max: usize) -> String {
    let line = line.trim_end_matches(['\n', '\r']);
    let (kept, cut) = bastion_policy::limits::cut_chars(line, max);
    if cut { format!("{kept}…") } else { kept.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_detects() {
        assert_eq!(decode(b"hello\n".to_vec()), Content::Text("hello\n".into(), Encoding::Utf8));
        assert_eq!(decode(b"caf\xe9\n".to_vec()), Content::Text("café\n".into(), Encoding::Latin1));
        assert_eq!(Encoding::Latin1.encode("café\n"), Some(b"caf\xe9\n".to_vec()));
        assert_eq!(Encoding::Latin1.encode("€"), None);
        assert_eq!(decode(b"a\0b".to_vec()), Content::Binary);
        assert_eq!(decode(b"\x89PNG\r\n\x1a\nrest".to_vec()), Content::Image("image/png"));
    }

    #[test]
    fn lines_and_endings() {
        assert_eq!(line_count(""), 0);
        assert_eq!(line_count("a"), 1);
        assert_eq!(line_count("a\n"), 1);
        assert_eq!(line_count("a\nb"), 2);
        assert!(uses_crlf("a\r\nb\r\n"));
        assert!(!uses_crlf("a\nb\r\n"));
        assert_eq!(to_crlf("a\nb\r\nc"), "a\r\nb\r\nc");
    }
}
