//! Kubernetes name rules the config and the engine both need (RFC 1123 labels and subdomains,
//! env var names), so a config error is caught at load time instead of as a rejected pod.

/// RFC 1123 label: what volume names must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what Secret, ConfigMap and PVC names must be.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Kubernetes' env var name rule (`[-._a-zA-Z][-._a-zA-Z0-9]*`).
pub fn is_env_var_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    match bytes.next() {
        Some(b) if b.is_ascii_alphabetic() || matches!(b, b'-' | b'.' | b'_') => {}
        _ => return false,
    }
    bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
}

/// Turn any name into a valid volume name (RFC 1123 label), keeping it recognisable.
pub fn to_dns_label(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    out.truncate(63);
    let trimmed = out.trim_matches('-');
    if trimmed.is_empty() {
        "store".to_string()
    } else {
        trimmed.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(is_dns_label("gcs-secret"));
        assert!(!is_dns_label("gcs.secret"));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_dns_subdomain("gcs.secret"));
        assert!(!is_dns_subdomain("Gcs"));
        assert!(is_env_var_name("GC_KEY_PATH"));
        assert!(is_env_var_name("gc-secret.json"));
        assert!(!is_env_var_name("1ABC"));
        assert!(!is_env_var_name("A B"));
        assert_eq!(to_dns_label("My.Secret_x"), "my-secret-x");
        assert_eq!(to_dns_label("..."), "store");
        assert!(is_dns_label(&to_dns_label(&"x.".repeat(60))));
    }
}
