//! Where the kubelet puts a Secret key inside a container, given the volume and the mount. The
//! kubelet always mounts a Secret volume as a directory, one file per key (or per `items` entry);
//! `subPath` mounts a single entry of it.

/// How a secret volume lays out its keys: each key as a file of its own name, or only the
/// listed `items`, each at its `path`.
#[derive(Debug, Clone)]
pub enum Layout<'x> {
    AllKeys,
    Items(Vec<(&'x str, &'x str)>),
    /// Not a secret volume.
    NotSecret,
}

impl<'x> Layout<'x> {
    /// The layout of a pod's volume.
    pub fn of_volume(v: &'x super::pod::Volume<'_>) -> Self {
        match &v.secret {
            None => Layout::NotSecret,
            Some(s) => match s.items.as_deref() {
                Some(items) if !items.is_empty() => Layout::Items(
                    items
                        .iter()
                        .map(|i| (i.key.as_ref(), i.path.as_ref()))
                        .collect(),
                ),
                _ => Layout::AllKeys,
            },
        }
    }
}

/// The absolute file path of `key` from a secret volume with `layout` mounted at `mount_path`
/// (optionally with `sub_path`), or `None` when that mount does not expose the key.
pub fn key_file_path(
    layout: &Layout<'_>,
    key: &str,
    mount_path: &str,
    sub_path: Option<&str>,
) -> Option<String> {
    let rel = match layout {
        Layout::AllKeys => key,
        Layout::Items(items) => items.iter().find(|(k, _)| *k == key).map(|(_, p)| *p)?,
        Layout::NotSecret => return None,
    };
    let rel = rel.trim_matches('/');
    let mount_path = clean(mount_path);
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

/// A mount path as the container runtime sees it: cleaned lexically like Go's `path.Clean` on a
/// rooted path (runc resolves a mount destination with `SecureJoin`, which does the same):
/// repeated `/` and `.` segments dropped, `..` removes the previous segment and never goes above
/// `/`, no trailing `/`. The apiserver does not clean mountPaths (it only rejects exact
/// duplicates), so every comparison goes through this.
pub fn clean(p: &str) -> std::borrow::Cow<'_, str> {
    // One pass over the bytes for the usual, already clean path (`contains`/`split` with
    // string patterns showed in the server's profile).
    let b = p.as_bytes();
    let already = b.first() == Some(&b'/')
        && (b.len() == 1
            || b[1..]
                .split(|&c| c == b'/')
                .all(|seg| !matches!(seg, b"" | b"." | b"..")));
    if already {
        return std::borrow::Cow::Borrowed(p);
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    std::borrow::Cow::Owned(format!("/{}", parts.join("/")))
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

    #[test]
    fn directory_mount_puts_key_inside() {
        let all = Layout::AllKeys;
        assert_eq!(
            key_file_path(&all, "gc-secret.json", "/plx-context/.gc", None).as_deref(),
            Some("/plx-context/.gc/gc-secret.json")
        );
        // The seed's legacy form: the mount path names a file, so the key lands one level deeper.
        assert_eq!(
            key_file_path(
                &all,
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
        let items = Layout::Items(vec![("gc-secret.json", "k/key.json")]);
        assert_eq!(
            key_file_path(&items, "gc-secret.json", "/etc/gcs/", None).as_deref(),
            Some("/etc/gcs/k/key.json")
        );
        assert_eq!(key_file_path(&items, "other.json", "/etc/gcs", None), None);
        assert_eq!(key_file_path(&Layout::NotSecret, "k", "/etc", None), None);
    }

    #[test]
    fn sub_path_mounts_one_entry() {
        let all = Layout::AllKeys;
        assert_eq!(
            key_file_path(
                &all,
                "gc-secret.json",
                "/etc/key.json",
                Some("gc-secret.json")
            )
            .as_deref(),
            Some("/etc/key.json")
        );
        assert_eq!(
            key_file_path(&all, "gc-secret.json", "/etc/x", Some("other")),
            None
        );
    }

    #[test]
    fn paths_are_cleaned_like_the_runtime() {
        for (raw, want) in [
            ("/plx-context/.gc", "/plx-context/.gc"),
            ("//plx-context//.gc", "/plx-context/.gc"),
            ("/plx-context/./.gc", "/plx-context/.gc"),
            ("/plx-context/.gc/", "/plx-context/.gc"),
            ("/plx-context/x/../.gc", "/plx-context/.gc"),
            ("/../plx-context/.gc", "/plx-context/.gc"),
            ("plx-context/.gc", "/plx-context/.gc"),
            ("/", "/"),
            ("//", "/"),
            ("/a/..", "/"),
            ("/.gc./..b", "/.gc./..b"),
            ("/.", "/"),
            ("/a/.", "/a"),
            ("/a/...", "/a/..."),
        ] {
            assert_eq!(clean(raw), want, "{raw}");
        }
        assert!(matches!(clean("/a/b"), std::borrow::Cow::Borrowed(_)));
        assert_eq!(
            key_file_path(&Layout::AllKeys, "k.json", "//etc//gcs/", None).as_deref(),
            Some("/etc/gcs/k.json")
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
