//! The section a YAML position is in (`injection.rules[1].match`), read from the indentation of
//! the lines above it: so a parser error names the section it is in, not the one the parser
//! was asked for. Block style only; inside a flow collection it names the enclosing key.

/// The path of the mapping or sequence holding the node at `line`:`column` (1-based).
pub fn at(text: &str, line: usize, column: usize) -> String {
    // (indent, segment, a sequence item's index)
    let mut stack: Vec<(usize, String, Option<usize>)> = Vec::new();
    for raw in text.lines().take(line.saturating_sub(1)) {
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let mut content = raw[indent..].trim_end();
        let mut key_indent = indent;
        if content.is_empty() || content.starts_with('#') || content.starts_with("---") {
            continue;
        }
        if let Some(rest) = content
            .strip_prefix('-')
            .filter(|r| r.is_empty() || r.starts_with(' '))
        {
            while stack.last().is_some_and(|t| t.0 > indent) {
                stack.pop();
            }
            let mut index = 0;
            if let Some((_, _, Some(i))) = stack.last().filter(|t| t.0 == indent) {
                index = i + 1;
                stack.pop();
            }
            stack.push((indent, format!("[{index}]"), Some(index)));
            let trimmed = rest.trim_start();
            key_indent = indent + 1 + (rest.len() - trimmed.len());
            content = trimmed;
        }
        if let Some(key) = key_of(content) {
            while stack.last().is_some_and(|t| t.0 >= key_indent) {
                stack.pop();
            }
            stack.push((key_indent, key, None));
        }
    }
    let col = column.saturating_sub(1);
    while stack.last().is_some_and(|t| t.0 >= col) {
        stack.pop();
    }
    let mut out = String::new();
    for (_, seg, item) in &stack {
        if item.is_none() && !out.is_empty() {
            out.push('.');
        }
        out.push_str(seg);
    }
    out
}

/// The key of a `key: value` or `key:` line.
fn key_of(content: &str) -> Option<String> {
    if content.starts_with(['{', '[', '"', '\'', '|', '>', '&', '*', '!']) {
        let quoted = content.starts_with(['"', '\'']);
        if !quoted {
            return None;
        }
        let q = content.chars().next()?;
        let end = content[1..].find(q)? + 1;
        let after = &content[end + 1..];
        return (after.starts_with(':')).then(|| content[1..end].to_string());
    }
    let i = content.find(':')?;
    let after = &content[i + 1..];
    (after.is_empty() || after.starts_with(' ')).then(|| content[..i].to_string())
}

#[cfg(test)]
mod tests {
    use super::at;

    #[test]
    fn names_the_section_of_a_position() {
        let text = "artifactsStore:\n  name: a\n  secret:\n    name: x\n    mountpath: /x\ninjection:\n  rules:\n    - name: a\n      match:\n        namespacs: [x]\n    - name: b\n      stor: y\n  onConflct: deny\n";
        assert_eq!(at(text, 5, 5), "artifactsStore.secret");
        assert_eq!(at(text, 2, 3), "artifactsStore");
        assert_eq!(at(text, 10, 9), "injection.rules[0].match");
        assert_eq!(at(text, 12, 7), "injection.rules[1]");
        assert_eq!(at(text, 13, 3), "injection");
        assert_eq!(at(text, 6, 1), "");
        let flat = "injection:\n  rules:\n  - name: a\n    stor: x\n";
        assert_eq!(at(flat, 4, 5), "injection.rules[0]");
    }
}
