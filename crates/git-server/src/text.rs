//! Text helpers: times as RFC 3339, the date filters of `log`, lossy names, and a text buffer
//! that stops at the output budget with a continuation offset.

use std::time::{SystemTime, UNIX_EPOCH};

use bastion_policy::{Error, ErrorCode, Result};

/// A git time (seconds since the epoch plus the author's UTC offset) as RFC 3339 in that offset,
/// e.g. `2024-05-01T14:03:00+02:00`. Written digit by digit: `format!` with its eight arguments
/// was a third of the cost of listing a commit in a long log.
pub(crate) fn iso_time(t: git2::Time) -> String {
    let offset = i64::from(t.offset_minutes());
    let local = t.seconds() + offset * 60;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut out = String::with_capacity(25);
    if (0..=9999).contains(&y) {
        digits(&mut out, y, 4);
    } else {
        out.push_str(&format!("{y:04}"));
    }
    out.push('-');
    digits(&mut out, i64::from(m), 2);
    out.push('-');
    digits(&mut out, i64::from(d), 2);
    out.push('T');
    digits(&mut out, secs / 3600, 2);
    out.push(':');
    digits(&mut out, secs % 3600 / 60, 2);
    out.push(':');
    digits(&mut out, secs % 60, 2);
    out.push(if offset < 0 { '-' } else { '+' });
    let off = offset.abs();
    digits(&mut out, off / 60, 2);
    out.push(':');
    digits(&mut out, off % 60, 2);
    out
}

/// Appends `n` (0 ≤ n < 10^width) as exactly `width` decimal digits.
fn digits(out: &mut String, n: i64, width: u32) {
    for place in (0..width).rev() {
        let digit = (n / 10_i64.pow(place) % 10) as u8;
        out.push(char::from(b'0' + digit));
    }
}

/// An object id as 40 lowercase hex digits (what `Oid`'s `Display` prints, without the
/// formatting machinery; a long log prints thousands).
pub(crate) fn hex(id: git2::Oid) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(40);
    for b in id.as_bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A proleptic Gregorian date to days since 1970-01-01.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Parses a `since`/`until` value into seconds since the epoch: a date (`2024-05-01`, midnight
/// UTC), an RFC 3339 time (`2024-05-01T12:00:00Z`, `2024-05-01 12:00:00+02:00`), or an age
/// (`2 weeks ago`, `3 days`, `12h`).
pub(crate) fn parse_when(raw: &str, what: &str) -> Result<i64> {
    let s = raw.trim();
    if let Some(t) = parse_date_time(s) {
        return Ok(t);
    }
    let age = s.strip_suffix("ago").unwrap_or(s).trim();
    if let Ok(d) = humantime::parse_duration(age) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        return Ok(now - d.as_secs().min(i64::MAX as u64) as i64);
    }
    Err(Error::new(
        ErrorCode::InvalidArgument,
        format!(
            "{what} '{}' is not a date; use 2024-05-01, 2024-05-01T12:00:00Z or an age such as '2 weeks ago'",
            bastion_policy::error::truncate_for_message(raw)
        ),
    ))
}

fn parse_date_time(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let part = s.get(r)?;
        if part.bytes().all(|c| c.is_ascii_digit()) { part.parse().ok() } else { None }
    };
    let (y, m, d) = (num(0..4)?, num(5..7)? as u32, num(8..10)? as u32);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = days_from_civil(y, m, d) * 86_400;
    if b.len() == 10 {
        return Some(t);
    }
    if !(b[10] == b'T' || b[10] == b' ') || b.len() < 19 || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    t += h * 3600 + mi * 60 + sec;
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        rest = frac.trim_start_matches(|c: char| c.is_ascii_digit());
    }
    match rest {
        "" | "Z" | "z" => Some(t),
        zone => {
            let zb = zone.as_bytes();
            if zb.len() != 6 || !(zb[0] == b'+' || zb[0] == b'-') || zb[3] != b':' {
                return None;
            }
            let oh: i64 = zone.get(1..3)?.parse().ok()?;
            let om: i64 = zone.get(4..6)?.parse().ok()?;
            let off = oh * 3600 + om * 60;
            Some(if zb[0] == b'+' { t - off } else { t + off })
        }
    }
}

/// Text collected up to a budget of characters, starting at a character offset of the whole.
///
/// Lines are pushed in order; the buffer skips everything before `offset`, keeps whole lines
/// while they fit, and when one does not, stops at the line boundary (or cuts a single line
/// longer than the whole budget) and records where the next page starts.
pub(crate) struct Paged {
    /// The kept text.
    pub(crate) text: String,
    kept: usize,
    pos: usize,
    offset: usize,
    budget: usize,
    /// Where the next page starts, once the budget ran out.
    pub(crate) next_offset: Option<usize>,
}

impl Paged {
    /// A buffer keeping at most `budget` characters from `offset` on.
    pub(crate) fn new(offset: usize, budget: usize) -> Self {
        Paged { text: String::new(), kept: 0, pos: 0, offset, budget: budget.max(1), next_offset: None }
    }

    /// True once the budget ran out (pushing more has no effect).
    pub(crate) fn full(&self) -> bool {
        self.next_offset.is_some()
    }

    /// Characters pushed so far, kept or not.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Pushes one piece (normally one line with its newline). Returns false once full.
    pub(crate) fn push(&mut self, piece: &str) -> bool {
        if self.full() {
            return false;
        }
        let n = piece.chars().count();
        let start = self.pos;
        self.pos += n;
        if self.pos <= self.offset {
            return true;
        }
        let skip = self.offset.saturating_sub(start);
        let tail = if skip == 0 { piece } else { piece.char_indices().nth(skip).map_or("", |(i, _)| &piece[i..]) };
        let tail_chars = n - skip;
        if self.kept + tail_chars <= self.budget {
            self.text.push_str(tail);
            self.kept += tail_chars;
            return true;
        }
        if self.kept == 0 {
            // A single line longer than the whole budget: cut it, continue inside it.
            let (cut, _) = bastion_policy::limits::cut_chars(tail, self.budget);
            self.text.push_str(cut);
            self.kept = self.budget;
            self.next_offset = Some(start + skip + self.budget);
        } else {
            self.next_offset = Some(start + skip);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_their_offset() {
        assert_eq!(iso_time(git2::Time::new(0, 0)), "1970-01-01T00:00:00+00:00");
        assert_eq!(iso_time(git2::Time::new(1_714_565_000, 120)), "2024-05-01T14:03:20+02:00");
        assert_eq!(iso_time(git2::Time::new(1_714_565_000, -330)), "2024-05-01T06:33:20-05:30");
        assert_eq!(iso_time(git2::Time::new(-62_135_596_800, 0)), "0001-01-01T00:00:00+00:00");
        assert_eq!(iso_time(git2::Time::new(253_402_300_799, 840)), "10000-01-01T13:59:59+14:00");
        // The same text as the plain `format!` it replaced, across eras and offsets.
        let reference = |t: git2::Time| {
            let offset = i64::from(t.offset_minutes());
            let local = t.seconds() + offset * 60;
            let (y, m, d) = civil_from_days(local.div_euclid(86_400));
            let secs = local.rem_euclid(86_400);
            let sign = if offset < 0 { '-' } else { '+' };
            let off = offset.abs();
            format!(
                "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}{sign}{:02}:{:02}",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60,
                off / 60,
                off % 60
            )
        };
        for seconds in [-70_000_000_000, -62_198_755_200, -1, 0, 59, 951_782_400, 1_714_565_000, 300_000_000_000] {
            for offset in [-720, -330, 0, 60, 840] {
                let t = git2::Time::new(seconds, offset);
                assert_eq!(iso_time(t), reference(t), "{seconds} {offset}");
            }
        }
    }

    #[test]
    fn hashes_in_hex() {
        let id = git2::Oid::from_str("0123456789abcdef0123456789abcdef01234567").unwrap();
        assert_eq!(hex(id), id.to_string());
        assert_eq!(hex(git2::Oid::ZERO_SHA1), "0".repeat(40));
    }

    #[test]
    fn dates_parse() {
        assert_eq!(parse_when("1970-01-02", "since").unwrap(), 86_400);
        assert_eq!(parse_when("2024-05-01T12:03:20Z", "since").unwrap(), 1_714_565_000);
        assert_eq!(parse_when("2024-05-01 14:03:20+02:00", "since").unwrap(), 1_714_565_000);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
        let two_weeks = parse_when("2 weeks ago", "since").unwrap();
        assert!((now - 14 * 86_400 - two_weeks).abs() < 5);
        assert!((now - 3 * 86_400 - parse_when("3days", "since").unwrap()).abs() < 5);
        for bad in ["yesterday-ish", "2024-13-01", "--format=x", ""] {
            assert_eq!(parse_when(bad, "since").unwrap_err().code, ErrorCode::InvalidArgument, "{bad}");
        }
    }

    #[test]
    fn paging_keeps_whole_lines_and_continues() {
        let lines = ["aaaa\n", "bbbb\n", "cccc\n"];
        let mut p = Paged::new(0, 12);
        for l in lines {
            p.push(l);
        }
        assert_eq!(p.text, "aaaa\nbbbb\n");
        assert_eq!(p.next_offset, Some(10));
        let mut q = Paged::new(10, 12);
        for l in lines {
            q.push(l);
        }
        assert_eq!((q.text.as_str(), q.next_offset), ("cccc\n", None));
        // One line longer than the budget is cut and continued inside.
        let mut r = Paged::new(0, 3);
        r.push("héllo\n");
        assert_eq!((r.text.as_str(), r.next_offset), ("hél", Some(3)));
        let mut s = Paged::new(3, 3);
        s.push("héllo\n");
        assert_eq!((s.text.as_str(), s.next_offset), ("lo\n", None));
    }
}
