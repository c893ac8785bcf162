//! Tiny glob matcher for container and namespace names.
//!
//! Kubernetes names are short ASCII strings, so `*` (any run) and `?` (one character) are all the
//! syntax a platform team needs here; a full glob crate would bring path semantics we do not want.

/// A parsed glob pattern, kept as text because matching is cheap.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: impl Into<String>) -> Self {
        Glob(pattern.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        matches_bytes(self.0.as_bytes(), name.as_bytes())
    }
}

/// True when any pattern in `globs` matches `name`.
pub fn any_match(globs: &[Glob], name: &str) -> bool {
    globs.iter().any(|g| g.matches(name))
}

/// Iterative wildcard match with single backtrack point: linear in practice, never recursive.
fn matches_bytes(pat: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() && (pat[p] == b'?' || pat[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pat.len() && pat[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_whole_names() {
        let g = Glob::new("polyaxon-init-artifacts-*");
        assert!(g.matches("polyaxon-init-artifacts-default"));
        assert!(g.matches("polyaxon-init-artifacts-"));
        assert!(!g.matches("polyaxon-init-auth"));
        assert!(!g.matches("x-polyaxon-init-artifacts-a"));
        assert!(Glob::new("polyaxon-main").matches("polyaxon-main"));
        assert!(!Glob::new("polyaxon-main").matches("polyaxon-main2"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("a*b*c").matches("aXXbYYc"));
        assert!(!Glob::new("a*b*c").matches("aXXbYY"));
        assert!(Glob::new("team-?").matches("team-a"));
        assert!(!Glob::new("team-?").matches("team-ab"));
    }
}
