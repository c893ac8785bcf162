//! The one way a warning leaves the engine, bounded where it is written: whatever a pod holds,
//! a review's warnings stay within what the kube-apiserver keeps of them (it cuts each past 256
//! characters once a response's warnings pass 4096 in all, and drops the rest), so a tenant
//! cannot make the webhook build, log or send more. Findings about one item each (an `envFrom`
//! entry, a variable, a volume) are folded into one warning per container and kind of finding
//! that names a few items and counts the rest.

use std::fmt;

/// Characters one warning may have (the apiserver's per-warning cut).
pub const MAX_CHARS: usize = 256;
/// Warnings kept per review: with [`MAX_CHARS`] each and the header's few bytes, within the
/// apiserver's 4096-character total; one more line says how many were not shown.
pub const MAX_WARNINGS: usize = 12;
/// Items a folded finding names before "and N more".
pub const MAX_ITEMS: usize = 3;
/// Characters of a pod-supplied name kept in a message (a DNS label's length).
pub const NAME_CHARS: usize = 63;
/// Characters of the pod's name kept for the decision log (a DNS subdomain's length).
pub const POD_NAME_CHARS: usize = 253;
/// Characters a denial message may have.
pub const MAX_DENIAL_CHARS: usize = 2048;

/// A kind of per-item finding. Findings of one kind in one container make one warning:
/// `[code ]container "NAME": <lead> "a", "b", "c" and N more<tail>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// The stable message code (empty: none).
    pub code: &'static str,
    /// What the container does with the items, before they are named.
    pub lead: &'static str,
}

/// A pod-supplied name in a message: quoted as `{:?}` does, cut to [`NAME_CHARS`].
pub struct Quoted<'a>(pub &'a str);

/// [`Quoted`], for `format!("container {}", q(name))`.
pub fn q(name: &str) -> Quoted<'_> {
    Quoted(name)
}

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.char_indices().nth(NAME_CHARS) {
            None => write!(f, "{:?}", self.0),
            Some((at, _)) => write!(f, "{:?}…", &self.0[..at]),
        }
    }
}

/// `text` cut to `max` characters, the last one an ellipsis when cut.
pub fn cut(mut text: String, max: usize) -> String {
    if let Some((at, _)) = text.char_indices().nth(max.saturating_sub(1)) {
        if text.len() > at + text[at..].chars().next().map_or(0, char::len_utf8) {
            text.truncate(at);
            text.push('…');
        }
    }
    text
}

/// One folded finding: where its warning is, and what it has named.
#[derive(Debug, Clone)]
struct Group {
    index: usize,
    container: String,
    finding: Finding,
    items: Vec<String>,
    more: usize,
    tail: String,
}

impl Group {
    fn render(&self) -> String {
        use fmt::Write as _;
        let mut s = String::new();
        if !self.finding.code.is_empty() {
            let _ = write!(s, "{} ", self.finding.code);
        }
        let _ = write!(
            s,
            "container {}: {} ",
            q(&self.container),
            self.finding.lead
        );
        for (i, item) in self.items.iter().enumerate() {
            let _ = write!(s, "{}{}", if i > 0 { ", " } else { "" }, q(item));
        }
        if self.more > 0 {
            let _ = write!(s, " and {} more", self.more);
        }
        s.push_str(&self.tail);
        cut(s, MAX_CHARS)
    }
}

/// A review's warnings, bounded as they are written (see the module doc).
#[derive(Debug, Clone, Default)]
pub struct Warnings {
    list: Vec<String>,
    groups: Vec<Group>,
    /// Warnings not kept (past [`MAX_WARNINGS`]).
    dropped: usize,
    /// The list ends with the line counting them.
    counted: bool,
}

impl Warnings {
    pub fn new() -> Self {
        Warnings::default()
    }

    /// A warning on its own: cut to [`MAX_CHARS`]; a repeat of one kept is dropped; past
    /// [`MAX_WARNINGS`] only counted.
    pub fn push(&mut self, message: String) {
        let message = cut(message, MAX_CHARS);
        if self.list[..self.kept()].contains(&message) {
            return;
        }
        if self.kept() >= MAX_WARNINGS {
            self.dropped += 1;
            return self.write_dropped();
        }
        self.list.push(message);
    }

    /// One item of a finding about `container`, folded with the others of its kind there;
    /// `tail` (the rest of the sentence) is asked for once per container and kind.
    pub fn finding(
        &mut self,
        container: &str,
        finding: Finding,
        item: &str,
        tail: impl FnOnce() -> String,
    ) {
        let at = self
            .groups
            .iter()
            .position(|g| g.finding == finding && g.container == cut_name(container));
        let i = match at {
            Some(i) => i,
            None if self.kept() >= MAX_WARNINGS => {
                self.dropped += 1;
                return self.write_dropped();
            }
            None => {
                self.groups.push(Group {
                    index: self.list.len(),
                    container: cut_name(container).to_string(),
                    finding,
                    items: Vec::new(),
                    more: 0,
                    tail: cut(tail(), MAX_CHARS),
                });
                self.list.push(String::new());
                self.groups.len() - 1
            }
        };
        let g = &mut self.groups[i];
        let item = cut_name(item);
        if g.items.iter().any(|named| named == item) {
            return;
        } else if g.items.len() < MAX_ITEMS {
            g.items.push(item.to_string());
        } else {
            g.more += 1;
        }
        self.list[g.index] = g.render();
    }

    /// Put `notes` before the warnings already written (kept within the same bounds).
    pub fn prepend(&mut self, notes: Vec<String>) {
        let rest = std::mem::take(self);
        self.extend(notes);
        let kept = rest.kept();
        let mut groups = rest.groups.into_iter().peekable();
        for (j, text) in rest.list.into_iter().take(kept).enumerate() {
            let group = groups.next_if(|g| g.index == j);
            if self.kept() >= MAX_WARNINGS {
                self.dropped += 1;
                continue;
            }
            if let Some(g) = group {
                self.groups.push(Group {
                    index: self.list.len(),
                    ..g
                });
            }
            self.list.push(text);
        }
        self.dropped += rest.dropped;
        if self.dropped > 0 {
            self.write_dropped();
        }
    }

    /// Warnings kept (the line counting the others aside).
    fn kept(&self) -> usize {
        self.list.len() - usize::from(self.counted)
    }

    /// The last line says how many warnings were not kept.
    fn write_dropped(&mut self) {
        let line = format!(
            "plx-store-webhook: {} more warnings not shown (the webhook sends at most {MAX_WARNINGS})",
            self.dropped
        );
        match self.list.last_mut() {
            Some(last) if self.counted => *last = line,
            _ => self.list.push(line),
        }
        self.counted = true;
    }

    pub fn clear(&mut self) {
        *self = Warnings::default();
    }

    /// The warnings as sent.
    pub fn as_slice(&self) -> &[String] {
        &self.list
    }
}

/// The part of a name messages keep.
fn cut_name(name: &str) -> &str {
    match name.char_indices().nth(NAME_CHARS) {
        None => name,
        Some((at, _)) => &name[..at],
    }
}

impl std::ops::Deref for Warnings {
    type Target = [String];
    fn deref(&self) -> &[String] {
        &self.list
    }
}

impl Extend<String> for Warnings {
    fn extend<I: IntoIterator<Item = String>>(&mut self, iter: I) {
        for w in iter {
            self.push(w);
        }
    }
}

impl From<Vec<String>> for Warnings {
    fn from(list: Vec<String>) -> Self {
        let mut w = Warnings::new();
        w.extend(list);
        w
    }
}

/// Equal when they say the same (however they were folded).
impl PartialEq for Warnings {
    fn eq(&self, other: &Warnings) -> bool {
        self.list == other.list
    }
}

impl PartialEq<Vec<String>> for Warnings {
    fn eq(&self, other: &Vec<String>) -> bool {
        &self.list == other
    }
}

impl serde::Serialize for Warnings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.list.serialize(s)
    }
}

impl<'a> IntoIterator for &'a Warnings {
    type Item = &'a String;
    type IntoIter = std::slice::Iter<'a, String>;
    fn into_iter(self) -> Self::IntoIter {
        self.list.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ENV: Finding = Finding {
        code: "",
        lead: "takes its environment from secret",
    };

    #[test]
    fn findings_fold_per_container_and_kind() {
        let mut w = Warnings::new();
        let long = "x".repeat(8192);
        for i in 0..16_000 {
            w.finding(&long, ENV, &format!("s{}", i % 5), || {
                ", keys unseen".into()
            });
            w.finding("b", ENV, "s", || ", keys unseen".into());
        }
        assert_eq!(w.len(), 2);
        assert!(
            w[0].ends_with("\"s0\", \"s1\", \"s2\" and 6400 more, keys unseen"),
            "{}",
            w[0]
        );
        assert!(w[0].chars().count() <= MAX_CHARS);
        assert_eq!(
            w[1],
            "container \"b\": takes its environment from secret \"s\", keys unseen"
        );
    }

    #[test]
    fn warnings_are_cut_counted_and_deduplicated() {
        let mut w = Warnings::new();
        w.push("é".repeat(1000));
        w.push("same".into());
        w.push("same".into());
        assert_eq!(w[0].chars().count(), MAX_CHARS);
        assert!(w[0].ends_with('…'));
        assert_eq!(w.len(), 2);
        for i in 0..100 {
            w.push(format!("w{i}"));
        }
        assert_eq!(w.len(), MAX_WARNINGS + 1);
        assert!(
            w[MAX_WARNINGS].contains("90 more warnings not shown"),
            "{:?}",
            w.last()
        );
    }

    #[test]
    fn notes_go_first_within_the_bounds() {
        let mut w = Warnings::new();
        w.finding("c", ENV, "a", String::new);
        w.push("later".into());
        w.prepend(vec!["first".into()]);
        w.finding("c", ENV, "b", String::new);
        assert_eq!(
            w.as_slice(),
            [
                "first",
                "container \"c\": takes its environment from secret \"a\", \"b\"",
                "later"
            ]
        );
        let mut full = Warnings::from((0..20).map(|i| format!("w{i}")).collect::<Vec<_>>());
        full.prepend(vec!["n1".into(), "n2".into()]);
        assert_eq!(full.len(), MAX_WARNINGS + 1);
        assert_eq!(full[0], "n1");
        assert!(full[MAX_WARNINGS].contains("10 more"), "{:?}", full.last());
    }

    #[test]
    fn names_are_cut() {
        assert_eq!(q("ab").to_string(), "\"ab\"");
        let s = q(&"y".repeat(100)).to_string();
        assert_eq!(s, format!("\"{}\"…", "y".repeat(NAME_CHARS)));
        assert_eq!(cut("abc".into(), 3), "abc");
        assert_eq!(cut("abcd".into(), 3), "ab…");
    }
}
