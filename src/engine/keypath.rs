//! Where the kubelet puts a Secret key inside a container, given the volume and the mount. The
//! kubelet always mounts a Secret volume as a directory, one file per key (or per `items` entry);
//! `subPath` mounts a single entry of it.

use serde_json::Value;

/// The absolute file path of `key` from the secret `volume` mounted at `mount_path` (optionally
/// with `sub_path`), or `None` when that mount does not expose the key.
pub fn key_file_path(
    volume: &Value,
    key: &str,
    mount_path: &str,
    sub_path: Option<&str>,
) -> Option<String> {
    let rel = projected_path(volume, key)?;
    let rel = rel.trim_matches('/');
    let base = mount_path.trim_end_matches('/');
    match sub_path
        .map(|s| s.trim_matches('/'))
        .filter(|s| !s.is_empty())
    {
        None => Some(format!("{base}/{rel}")),
        Some(sp) if sp == rel => Some(if base.is_empty() {
            "/".into()
        } else {
            base.to_string()
        }),
        Some(sp) => rel
            .strip_prefix(sp)
            .and_then(|rest| rest.strip_prefix('/'))
            .map(|rest| format!("{base}/{rest}")),
    }
}

/// The path of `key` inside the volume: renamed by `items`, absent when `items` omits it.
fn projected_path<'a>(volume: &'a Value, key: &'a str) -> Option<&'a str> {
    let source = volume.get("secret")?;
    match source.get("items").and_then(Value::as_array) {
        Some(items) if !items.is_empty() => items
            .iter()
            .find(|i| i.get("key").and_then(Value::as_str) == Some(key))
            .and_then(|i| i.get("path").and_then(Value::as_str)),
        _ => Some(key),
    }
}

/// Whether `child` lies strictly inside directory `parent` (component-wise, not string prefix).
pub fn is_strictly_under(child: &str, parent: &str) -> bool {
    let parent = parent.trim_end_matches('/');
    let child = child.trim_end_matches('/');
    if parent.is_empty() {
        return !child.is_empty();
    }
    child.len() > parent.len()
        && child.starts_with(parent)
        && child.as_bytes()[parent.len()] == b'/'
}

/// Mount paths compare equal with or without a trailing slash.
pub fn same_path(a: &str, b: &str) -> bool {
    a.trim_end_matches('/') == b.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn directory_mount_puts_key_inside() {
        let v = json!({"name": "s", "secret": {"secretName": "s"}});
        assert_eq!(
            key_file_path(&v, "gc-secret.json", "/plx-context/.gc", None).as_deref(),
            Some("/plx-context/.gc/gc-secret.json")
        );
        // The seed's legacy form: the mount path names a file, so the key lands one level deeper.
        assert_eq!(
            key_file_path(
                &v,
                "gc-secret.json",
                "/plx-context/.gc/gc-secret.json",
                None
            )
            .as_deref(),
            Some("/plx-context/.gc/gc-secret.json/gc-secret.json")
        );
    }

    #[test]
    fn items_rename_or_hide_the_key() {
        let v = json!({"secret": {"secretName": "s", "items": [{"key": "gc-secret.json", "path": "k/key.json"}]}});
        assert_eq!(
            key_file_path(&v, "gc-secret.json", "/etc/gcs/", None).as_deref(),
            Some("/etc/gcs/k/key.json")
        );
        assert_eq!(key_file_path(&v, "other.json", "/etc/gcs", None), None);
    }

    #[test]
    fn sub_path_mounts_one_entry() {
        let v = json!({"secret": {"secretName": "s"}});
        assert_eq!(
            key_file_path(
                &v,
                "gc-secret.json",
                "/etc/key.json",
                Some("gc-secret.json")
            )
            .as_deref(),
            Some("/etc/key.json")
        );
        assert_eq!(
            key_file_path(&v, "gc-secret.json", "/etc/x", Some("other")),
            None
        );
    }

    #[test]
    fn nesting_is_component_wise() {
        assert!(is_strictly_under("/a/b", "/a"));
        assert!(is_strictly_under("/a/b", "/a/"));
        assert!(!is_strictly_under("/ab", "/a"));
        assert!(!is_strictly_under("/a", "/a"));
        assert!(is_strictly_under("/a", "/"));
        assert!(same_path("/a/", "/a"));
    }
}
