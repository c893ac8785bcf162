//! A strict one-pass JSON reader for the request hot path: it hands out borrowed keys and
//! strings and skips what the caller does not want, with no visitor per field. It answers
//! [`Unsure`] on anything it does not handle itself (surrogate escapes, negative
//! or non-integer numbers where an integer is wanted, depth past [`MAX_DEPTH`], a repeated field,
//! and of course invalid JSON); callers then fall back to the serde model, which decides and
//! explains. So this reader only ever accepts a subset of what serde accepts, and must read that
//! subset identically (tested against serde in `engine::pod_scan` and `admission`).

use std::borrow::Cow;

/// "Not on the fast path": let the serde reader decide (it may well accept the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unsure;

pub type Scan<T> = Result<T, Unsure>;

/// Nesting deeper than this is left to serde (which has its own limit, 128).
pub const MAX_DEPTH: u32 = 64;

/// A position in a JSON text.
pub struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    depth: u32,
    /// Entries [`Cursor::list`] and callers of [`Cursor::spend`] may still build.
    entries_left: usize,
    over_budget: bool,
}

/// Which fields of one object were seen: serde refuses a repeated known field (even if the first
/// was `null`), so the fast path gives up on one.
#[derive(Default)]
pub struct Seen(u32);

impl Seen {
    /// Mark field `bit` (< 32) as seen; [`Unsure`] the second time.
    pub fn once(&mut self, bit: u32) -> Scan<()> {
        let mask = 1 << bit;
        if self.0 & mask != 0 {
            return Err(Unsure);
        }
        self.0 |= mask;
        Ok(())
    }
}

/// One known field of an object reader: mark it seen (a repeat is [`Unsure`]), read it into its
/// slot; evaluates to `Ok(())` for the member callback of [`Cursor::object`].
macro_rules! field {
    ($seen:ident, $bit:expr, $slot:expr, $read:expr) => {{
        $seen.once($bit)?;
        $slot = $read;
        Ok(())
    }};
}
pub(crate) use field;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The high bit set in each byte of `w` that is `"`, `\` or a control character; only the
/// lowest set byte is exact (borrows may mark bytes above it), which is the one used.
fn specials(w: u64) -> u64 {
    let quote = w ^ (ONES * u64::from(b'"'));
    let slash = w ^ (ONES * u64::from(b'\\'));
    let zero = |v: u64| v.wrapping_sub(ONES) & !v;
    (zero(quote) | zero(slash) | w.wrapping_sub(ONES * 0x20) & !w) & HIGH
}

impl<'a> Cursor<'a> {
    pub fn new(text: &'a str) -> Self {
        Self::with_budget(text, usize::MAX)
    }

    /// A cursor that builds at most `entries` list elements and map entries: past them it
    /// answers [`Unsure`] and [`Cursor::over_budget`] says why.
    pub fn with_budget(text: &'a str, entries: usize) -> Self {
        Cursor {
            text,
            pos: 0,
            depth: 0,
            entries_left: entries,
            over_budget: false,
        }
    }

    /// Count one entry about to be built.
    pub fn spend(&mut self) -> Scan<()> {
        if self.entries_left == 0 {
            self.over_budget = true;
            return Err(Unsure);
        }
        self.entries_left -= 1;
        Ok(())
    }

    /// Whether the read stopped because the entry budget ran out (not because it was unsure).
    pub fn over_budget(&self) -> bool {
        self.over_budget
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next significant byte, not consumed.
    fn peek(&mut self) -> Scan<u8> {
        self.ws();
        self.bytes().get(self.pos).copied().ok_or(Unsure)
    }

    fn expect(&mut self, c: u8) -> Scan<()> {
        if self.peek()? != c {
            return Err(Unsure);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Scan<()> {
        if !self.bytes()[self.pos..].starts_with(word.as_bytes()) {
            return Err(Unsure);
        }
        self.pos += word.len();
        Ok(())
    }

    /// Only whitespace may follow the document.
    pub fn finish(mut self) -> Scan<()> {
        self.ws();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Unsure)
        }
    }

    /// `None` for `null`, else what `read` makes of the value (an `Option` field in serde).
    pub fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Scan<T>) -> Scan<Option<T>> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            return Ok(None);
        }
        read(self).map(Some)
    }

    pub fn bool(&mut self) -> Scan<bool> {
        match self.peek()? {
            b't' => self.literal("true").map(|_| true),
            b'f' => self.literal("false").map(|_| false),
            _ => Err(Unsure),
        }
    }

    /// A non-negative integer up to `max` written without fraction or exponent (what serde reads
    /// into an `i32`/`i64`; negatives, `-0` and floats are left to serde).
    pub fn uint(&mut self, max: u64) -> Scan<u64> {
        self.ws();
        let b = self.bytes();
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(d @ b'0'..=b'9') = b.get(self.pos) {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(d - b'0')))
                .ok_or(Unsure)?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        let leading_zero = digits > 1 && b[start] == b'0';
        if digits == 0 || leading_zero || value > max {
            return Err(Unsure);
        }
        if let Some(b'.' | b'e' | b'E') = b.get(self.pos) {
            return Err(Unsure);
        }
        Ok(value)
    }

    /// A string, borrowed from the text unless it has escapes (as serde_json does).
    pub fn str(&mut self) -> Scan<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        let escaped = self.string_tail()?;
        let raw = &self.text[start..self.pos - 1];
        Ok(if escaped {
            Cow::Owned(unescape(raw)?)
        } else {
            Cow::Borrowed(raw)
        })
    }

    /// A string checked and dropped (nothing decoded).
    fn skip_str(&mut self) -> Scan<()> {
        self.expect(b'"')?;
        self.string_tail().map(|_| ())
    }

    /// Move past the rest of a string whose opening quote is consumed, checking it as serde_json
    /// does (no raw control characters, valid escapes; any surrogate escape is left to serde).
    /// Says whether it had escapes.
    fn string_tail(&mut self) -> Scan<bool> {
        let b = self.bytes();
        let mut escaped = false;
        loop {
            while let Some(chunk) = b.get(self.pos..self.pos + 8) {
                let mut word = [0u8; 8];
                word.copy_from_slice(chunk);
                let hits = specials(u64::from_le_bytes(word));
                if hits != 0 {
                    self.pos += (hits.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            match b.get(self.pos).copied().ok_or(Unsure)? {
                b'"' => {
                    self.pos += 1;
                    return Ok(escaped);
                }
                b'\\' => {
                    escaped = true;
                    match b.get(self.pos + 1).copied().ok_or(Unsure)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.pos += 2,
                        b'u' => {
                            let unit = hex4(b.get(self.pos + 2..self.pos + 6).ok_or(Unsure)?)?;
                            if (0xD800..0xE000).contains(&unit) {
                                return Err(Unsure);
                            }
                            self.pos += 6;
                        }
                        _ => return Err(Unsure),
                    }
                }
                c if c < 0x20 => return Err(Unsure),
                _ => self.pos += 1,
            }
        }
    }

    fn enter(&mut self) -> Scan<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Unsure);
        }
        Ok(())
    }

    /// An object: `member` is called with each key (decoded, as serde matches field names) and
    /// must consume its value.
    pub fn object(&mut self, member: impl FnMut(&mut Self, Cow<'a, str>) -> Scan<()>) -> Scan<()> {
        self.members(Self::str, member)
    }

    fn members<K>(
        &mut self,
        key: fn(&mut Self) -> Scan<K>,
        mut member: impl FnMut(&mut Self, K) -> Scan<()>,
    ) -> Scan<()> {
        self.delimited(b'{', b'}', |c| {
            let key = key(c)?;
            c.expect(b':')?;
            member(c, key)
        })
    }

    /// An array: `item` is called for each element and must consume it.
    pub fn array(&mut self, item: impl FnMut(&mut Self) -> Scan<()>) -> Scan<()> {
        self.delimited(b'[', b']', item)
    }

    /// `open`, then `each` separated by commas (none trailing), then `close`.
    fn delimited(
        &mut self,
        open: u8,
        close: u8,
        mut each: impl FnMut(&mut Self) -> Scan<()>,
    ) -> Scan<()> {
        self.expect(open)?;
        self.enter()?;
        if self.peek()? == close {
            self.pos += 1;
        } else {
            loop {
                each(self)?;
                match self.peek()? {
                    b',' => self.pos += 1,
                    c if c == close => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(Unsure),
                }
            }
        }
        self.depth -= 1;
        Ok(())
    }

    /// An array read into a `Vec`, each element spending one entry of the budget; room for 8 is
    /// made at the first element (a pod's lists are mostly short, and growing 4 → 8 → 16 moved
    /// every env entry twice), none for `[]`.
    pub fn list<T>(&mut self, mut read: impl FnMut(&mut Self) -> Scan<T>) -> Scan<Vec<T>> {
        let mut out = Vec::new();
        self.array(|c| {
            c.spend()?;
            let item = read(c)?;
            if out.capacity() == 0 {
                out.reserve_exact(8);
            }
            out.push(item);
            Ok(())
        })?;
        Ok(out)
    }

    /// Any value, checked and dropped.
    pub fn skip(&mut self) -> Scan<()> {
        match self.peek()? {
            b'"' => self.skip_str(),
            b'{' => self.members(Self::skip_str, |c, ()| c.skip()),
            b'[' => self.array(Self::skip),
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number(),
        }
    }

    /// A number as JSON writes it: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    fn number(&mut self) -> Scan<()> {
        let b = self.bytes();
        let digits = |pos: &mut usize| {
            let start = *pos;
            while let Some(b'0'..=b'9') = b.get(*pos) {
                *pos += 1;
            }
            *pos - start
        };
        let mut p = self.pos;
        if b.get(p) == Some(&b'-') {
            p += 1;
        }
        let first = b.get(p).copied();
        let n = digits(&mut p);
        if n == 0 || (n > 1 && first == Some(b'0')) {
            return Err(Unsure);
        }
        if b.get(p) == Some(&b'.') {
            p += 1;
            if digits(&mut p) == 0 {
                return Err(Unsure);
            }
        }
        if let Some(b'e' | b'E') = b.get(p) {
            p += 1;
            if let Some(b'+' | b'-') = b.get(p) {
                p += 1;
            }
            if digits(&mut p) == 0 {
                return Err(Unsure);
            }
        }
        self.pos = p;
        Ok(())
    }
}

fn hex4(digits: &[u8]) -> Scan<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16).ok_or(Unsure)?;
        Ok(acc * 16 + v)
    })
}

/// Decode the escapes of a string already checked by `string_tail` (no surrogates): one byte
/// loop copying the runs between escapes (a `find` per escape cost more than the copying).
fn unescape(raw: &str) -> Scan<String> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let (mut run, mut i) = (0, 0);
    while i < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        out.push_str(raw.get(run..i).ok_or(Unsure)?);
        let (c, len) = match b.get(i + 1).copied().ok_or(Unsure)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let unit = hex4(b.get(i + 2..i + 6).ok_or(Unsure)?)?;
                (char::from_u32(unit).ok_or(Unsure)?, 6)
            }
            _ => return Err(Unsure),
        };
        out.push(c);
        i += len;
        run = i;
    }
    out.push_str(raw.get(run..).ok_or(Unsure)?);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::IgnoredAny;

    /// What the fast path makes of `text` as one string, next to serde_json's reading.
    fn both_str(text: &str) -> (Scan<String>, Option<String>) {
        let mut c = Cursor::new(text);
        let fast = c.str().and_then(|s| c.finish().map(|_| s.into_owned()));
        (fast, serde_json::from_str::<String>(text).ok())
    }

    #[test]
    fn strings_read_as_serde_reads_them_or_not_at_all() {
        let cases = [
            r#""plain""#,
            r#""with \"quotes\" and \\ and \/""#,
            r#""\b\f\n\r\t""#,
            r#""\u00e9\u0041\u2603""#,
            r#""é ☃ 𝄞 – exactly eight""#,
            r#""12345678""#,
            r#""1234567""#,
            r#""""#,
            r#""\ud834\udd1e""#,
            r#""\ud834""#,
            "\"raw\ttab\"",
            "\"raw\u{1}control\"",
            r#""bad \x escape""#,
            r#""\u12g4""#,
            r#""unterminated"#,
            r#""trailing" x"#,
        ];
        for text in cases {
            let (fast, serde) = both_str(text);
            // Unsure is always allowed: deciding is then the fallback's job.
            if let Ok(s) = fast {
                assert_eq!(Some(s), serde, "{text}");
            }
        }
        // The common cases stay on the fast path.
        for text in [r#""plain""#, r#""\u00e9\n""#, r#""é ☃ 𝄞 – exactly eight""#] {
            assert!(both_str(text).0.is_ok(), "{text}");
        }
    }

    #[test]
    fn strings_without_escapes_are_borrowed() {
        let text = r#"["abc", "a\nb"]"#;
        let mut c = Cursor::new(text);
        let v = c.list(Cursor::str).unwrap();
        assert!(matches!(v[0], Cow::Borrowed("abc")));
        assert!(matches!(&v[1], Cow::Owned(s) if s == "a\nb"));
    }

    #[test]
    fn a_control_character_or_quote_found_in_any_lane_of_a_word() {
        for lane in 0..8 {
            for special in [b'"', b'\\', 0x01, 0x1f] {
                let mut w = [b'a'; 8];
                w[lane] = special;
                let hits = specials(u64::from_le_bytes(w));
                assert_eq!(
                    hits.trailing_zeros() / 8,
                    lane as u32,
                    "{special} at {lane}"
                );
            }
        }
        let clean = u64::from_le_bytes(*b"\x20\x7f\x80\xff\xc3\xa9ok");
        assert_eq!(specials(clean), 0);
    }

    #[test]
    fn skipping_accepts_only_what_serde_accepts() {
        let cases = [
            "0",
            "-0",
            "12.5e-3",
            "1E+9",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "[1,2,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[]",
            "{}",
            "[true,false,null]",
            "[tru]",
            "nul",
            "{\"a\":{\"b\":[{\"c\":\"d\\u0041\"}]}}",
            "[\"\\ud800\"]",
            "{\"k\\u0041\":1}",
            "{\"k:{\\\"name\\\":\\\"c\\\"}\":{}}",
            "  [ 1 , 2 ]  ",
            "[1] [2]",
            "",
        ];
        for text in cases {
            let mut c = Cursor::new(text);
            let fast = c.skip().and_then(|_| c.finish());
            let serde = serde_json::from_str::<IgnoredAny>(text).is_ok();
            if fast.is_ok() {
                assert!(serde, "fast path accepted what serde refuses: {text:?}");
            }
        }
        // What real requests carry stays on the fast path: escaped keys (managedFields), numbers.
        for text in [
            "{\"f:k:{\\\"name\\\":\\\"c\\\"}\":{}}",
            "[0, -1.5e3, \"\\u00e9\", true]",
        ] {
            let mut c = Cursor::new(text);
            assert_eq!(c.skip().and_then(|_| c.finish()), Ok(()), "{text}");
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let mut c = Cursor::new(&deep);
        assert_eq!(c.skip(), Err(Unsure));
    }

    #[test]
    fn integers_are_plain_non_negative_and_in_range() {
        let read = |t: &str, max: u64| {
            let mut c = Cursor::new(t);
            c.uint(max).and_then(|v| c.finish().map(|_| v))
        };
        assert_eq!(read("0", 10), Ok(0));
        assert_eq!(read("420", i32::MAX as u64), Ok(420));
        assert_eq!(read("2147483648", i32::MAX as u64), Err(Unsure));
        for t in [
            "-1",
            "-0",
            "1.0",
            "1e3",
            "01",
            "",
            "99999999999999999999999",
        ] {
            assert_eq!(read(t, u64::MAX), Err(Unsure), "{t}");
        }
    }

    #[test]
    fn a_repeated_field_is_unsure() {
        let mut seen = Seen::default();
        assert_eq!(seen.once(3), Ok(()));
        assert_eq!(seen.once(4), Ok(()));
        assert_eq!(seen.once(3), Err(Unsure));
    }
}

/// Mutated JSON texts for the tests that hold the fast readers to serde's answers.
#[cfg(test)]
pub(crate) mod mutants {
    /// Snippets a mutation inserts: the fields the readers know, in and out of type and range,
    /// escapes, repeats and plain structure.
    const SNIPPETS: &[&str] = &[
        "null",
        "\"x\"",
        "1",
        "-1",
        "0.5",
        "1e3",
        "true",
        "{}",
        "[]",
        ",",
        " ",
        "\"name\": \"n\", ",
        "\"name\": null, ",
        "\"name\": 1, ",
        "\"mountPath\": \"/m\", ",
        "\"readOnly\": true, ",
        "\"readOnly\": \"true\", ",
        "\"runAsUser\": 1000, ",
        "\"runAsUser\": -1, ",
        "\"runAsUser\": -0, ",
        "\"runAsUser\": 1.0, ",
        "\"fsGroup\": 2147483648, ",
        "\"defaultMode\": 420, ",
        "\"defaultMode\": 4294967296, ",
        "\"labels\": {\"a\": \"b\", \"a\": \"c\"}, ",
        "\"labels\": {\"a\": 1}, ",
        "\"env\": [], ",
        "\"env\": [{\"name\": \"E\", \"value\": \"v\\n\"}], ",
        "\"secret\": {\"secretName\": \"s\", \"items\": [{\"key\": \"k\", \"path\": \"p\"}]}, ",
        "\"downwardAPI\": null, ",
        "\"projected\": {}, ",
        "\"a\\u00e9b\"",
        "\"\\ud800\"",
        "\"\\ud83d\\ude00\"",
        "\"k\\\"q\"",
        "\"n\\u0061me\": \"x\", ",
        "\"metadata\": {}, ",
        "\"spec\": null, ",
        "\"uid\": \"u\", ",
        "\"object\": null, ",
        "\"dryRun\": true, ",
        "\"apiVersion\": \"admission.k8s.io/v1beta1\", ",
    ];

    /// A small deterministic generator (xorshift64*), so a failure reproduces.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Rng(seed | 1)
        }
        pub fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n.max(1)
        }
    }

    /// `seed` with one to three random edits, or `None` when the edits broke UTF-8.
    pub fn mutate(seed: &str, rng: &mut Rng) -> Option<String> {
        let mut b = seed.as_bytes().to_vec();
        for _ in 0..=rng.below(3) {
            // Edits land after structural bytes more often than by chance, where fields start.
            let mut at = rng.below(b.len() + 1);
            if rng.below(2) == 0 {
                if let Some(p) = b[at..].iter().position(|c| matches!(c, b'{' | b',' | b':')) {
                    at += p + 1;
                }
            }
            match rng.below(4) {
                0 => {
                    let end = (at + 1 + rng.below(8)).min(b.len());
                    b.drain(at.min(end)..end);
                }
                1 => {
                    let s = SNIPPETS[rng.below(SNIPPETS.len())];
                    b.splice(at..at, s.bytes());
                }
                2 if at < b.len() => b[at] = b"{}[],:0-1.eE\\\"ntu \x01"[rng.below(18)],
                _ => {
                    let from = rng.below(b.len());
                    let end = (from + 1 + rng.below(40)).min(b.len());
                    let copy = b[from..end].to_vec();
                    b.splice(at..at, copy);
                }
            }
        }
        String::from_utf8(b).ok()
    }
}
