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
    /// Whether the volume is a Secret (plain or projected).
    pub fn is_secret(&self) -> bool {
        !matches!(self, Layout::NotSecret)
    }

    /// The layout of a pod's volume; a projected volume's Secret sources together (every key of
    /// a source without `items`, whose names cannot be seen here, may be any file).
    pub fn of_volume(v: &'x super::pod::Volume<'_>) -> Self {
        if let Some(p) = &v.projected {
            let secrets: Vec<_> = p
                .sources
                .as_deref()
                .unwrap_or_default()
                .iter()
                .filter_map(|s| s.secret.as_ref())
                .collect();
            if secrets.is_empty() {
                return Layout::NotSecret;
            }
            if secrets
                .iter()
                .any(|s| s.items.as_ref().is_none_or(Vec::is_empty))
            {
                return Layout::AllKeys;
            }
            return Layout::Items(
                secrets
                    .iter()
                    .flat_map(|s| s.items.as_deref().unwrap_or_default())
                    .map(|i| (i.key.as_ref(), i.path.as_ref()))
                    .collect(),
            );
        }
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

/// What a secret volume holds, as paths relative to its root, built once per volume (so a pod
/// with many mounts of one volume with many items stays linear).
#[derive(Debug)]
pub enum Entries {
    NotSecret,
    /// Every key, whose names cannot be seen here: any flat name may be one.
    AllKeys,
    Paths(Tree),
}

/// Listed file paths (relative, cleaned), each stored once, sorted: "is there a file or a
/// directory the kubelet makes at X" and "is there anything under X" are binary searches over
/// slices. Storing every directory above each path instead costs the square of a path's depth
/// (a 24 KB review reached 157 MB), so memory here is the input's size.
#[derive(Debug, Default)]
pub struct Tree(Vec<String>);

impl Tree {
    fn insert(&mut self, p: &str) {
        let p = clean(p);
        self.0.push(p.trim_start_matches('/').to_string());
    }

    fn seal(&mut self) {
        self.0.sort_unstable();
        self.0.dedup();
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes held: the paths once (tests hold this linear in the input).
    pub fn stored_bytes(&self) -> usize {
        self.0.iter().map(String::len).sum()
    }

    /// A file at `p`, or a directory the kubelet makes there (a path lies under it).
    pub fn has(&self, p: &str) -> bool {
        self.0.binary_search_by(|x| x.as_str().cmp(p)).is_ok() || self.has_below(p)
    }

    /// Some path has the components `run` (e.g. `.config/gcloud`) in a row, anywhere in it.
    pub fn has_run(&self, run: &str) -> bool {
        let run = run.trim_matches('/');
        self.0.iter().any(|p| {
            p.match_indices(run).any(|(i, _)| {
                (i == 0 || p.as_bytes()[i - 1] == b'/')
                    && matches!(p.as_bytes().get(i + run.len()), None | Some(b'/'))
            })
        })
    }

    /// Some path lies strictly under `p`: those sort together, first at or after `p/`.
    pub fn has_below(&self, p: &str) -> bool {
        let dir = format!("{p}/");
        let i = self.0.partition_point(|x| x.as_str() < dir.as_str());
        self.0.get(i).is_some_and(|x| x.starts_with(&dir))
    }
}

impl Entries {
    pub fn of(layout: &Layout<'_>) -> Self {
        match layout {
            Layout::NotSecret => Entries::NotSecret,
            Layout::AllKeys => Entries::AllKeys,
            Layout::Items(items) => {
                let mut paths = Tree::default();
                for (_, p) in items {
                    paths.insert(p);
                }
                paths.seal();
                Entries::Paths(paths)
            }
        }
    }

    /// Whether this volume, mounted at `mount_path` (optionally with `sub_path`), puts something
    /// at `target` — a file there, or a directory the runtime puts there. The one notion of
    /// "where a key lands" for every way a Secret reaches a path: a directory mount, `items` that
    /// rename a key into place, and `subPath` mounts of one entry.
    pub fn reach(&self, mount_path: &str, sub_path: Option<&str>, target: &str) -> bool {
        if matches!(self, Entries::NotSecret) {
            return false;
        }
        let mount = clean(mount_path);
        if same_path(&mount, target) {
            return true;
        }
        if !is_strictly_under(target, &mount) {
            return false;
        }
        let rel = target[mount.trim_end_matches('/').len()..].trim_start_matches('/');
        let inside = match sub_path.map(sub_root).filter(|s| s.as_ref() != "/") {
            Some(sp) => format!("{}/{rel}", sp.trim_start_matches('/')),
            None => rel.to_string(),
        };
        match self {
            Entries::AllKeys => !inside.contains('/'),
            Entries::Paths(paths) => paths.has(&inside),
            Entries::NotSecret => false,
        }
    }
}

/// What any volume can put under its mount, as paths relative to its root: the one answer to
/// "can a file from this volume be at P?" for every source. Secret/ConfigMap/downward API items
/// and projected sources are listed paths; a Secret or ConfigMap without `items` may hold any
/// flat name; hostPath, claims, CSI, ephemeral and unknown sources may hold anything at any
/// depth; an emptyDir (or a volume without a source) starts empty.
#[derive(Debug, Default)]
pub struct Files {
    /// Any path at any depth.
    pub any: bool,
    /// Any flat name (keys cannot contain `/`).
    pub flat: bool,
    /// Listed paths (a directory above one is found by searching them).
    pub paths: Tree,
    /// [`Tree::has_run`] answers, once per volume and run (a pod may mount one volume many times).
    runs: std::collections::HashMap<String, bool>,
}

impl Files {
    pub fn of_volume(v: &super::pod::Volume<'_>) -> Self {
        let mut f = Files::default();
        let keys = |items: Option<&[super::pod::KeyPath<'_>]>, f: &mut Files| match items {
            Some(items) if !items.is_empty() => {
                for i in items {
                    f.add(&i.path);
                }
            }
            _ => f.flat = true,
        };
        let paths = |items: Option<&[super::pod::PathOnly<'_>]>, f: &mut Files| {
            for i in items.unwrap_or_default() {
                f.add(&i.path);
            }
        };
        let mut known = false;
        if let Some(s) = &v.secret {
            known = true;
            keys(s.items.as_deref(), &mut f);
        }
        if let Some(c) = &v.config_map {
            known = true;
            keys(c.items.as_deref(), &mut f);
        }
        if let Some(d) = &v.downward_api {
            known = true;
            paths(d.items.as_deref(), &mut f);
        }
        if let Some(p) = &v.projected {
            known = true;
            for s in p.sources.as_deref().unwrap_or_default() {
                if let Some(x) = &s.secret {
                    keys(x.items.as_deref(), &mut f);
                }
                if let Some(x) = &s.config_map {
                    keys(x.items.as_deref(), &mut f);
                }
                if let Some(x) = &s.downward_api {
                    paths(x.items.as_deref(), &mut f);
                }
                if let Some(t) = &s.service_account_token {
                    f.add(&t.path);
                }
                let listed = s.secret.is_some()
                    || s.config_map.is_some()
                    || s.downward_api.is_some()
                    || s.service_account_token.is_some();
                // clusterTrustBundle and sources to come: anything.
                f.any |= !listed;
            }
        }
        // The apiserver defaults a volume without a source to an emptyDir before webhooks see it,
        // so no emptyDir here means some other source: hostPath, a claim, CSI, ephemeral, NFS…
        f.any |= !known && v.empty_dir.is_none();
        f.paths.seal();
        f
    }

    fn add(&mut self, p: &str) {
        self.paths.insert(p);
    }

    /// Whether this volume, mounted at `mount_path`, may put something at `D/rel` or under it for
    /// SOME directory `D` — the question for `~/rel` when the container's `HOME` cannot be read
    /// (set by `valueFrom` or `$(VAR)`). Errs towards yes: a `subPath` is not narrowed, and a
    /// mount ending in one of `rel`'s leading components is taken to hold the rest.
    pub fn reach_any_home(&mut self, mount_path: &str, rel: &str) -> bool {
        if !self.any && !self.flat && self.paths.is_empty() {
            return false;
        }
        let comps: Vec<&str> = rel.trim_matches('/').split('/').collect();
        let mount = clean(mount_path);
        let m: Vec<&str> = mount.split('/').filter(|s| !s.is_empty()).collect();
        self.any
            || (self.flat && comps.len() == 1)
            || m.windows(comps.len()).any(|w| w == comps.as_slice())
            || m.last()
                .is_some_and(|l| comps[..comps.len() - 1].contains(l))
            || *self
                .runs
                .entry(rel.to_string())
                .or_insert_with(|| self.paths.has_run(rel))
    }

    /// Whether this volume, mounted at `mount_path` with `sub_path` (`None`: the volume's root;
    /// `Some(None)`: a `subPathExpr`, any entry), can put something at `target` or, with
    /// `below`, anywhere under it.
    pub fn reach(
        &self,
        mount_path: &str,
        sub_path: Option<Option<&str>>,
        target: &str,
        below: bool,
    ) -> bool {
        if !self.any && !self.flat && self.paths.is_empty() {
            return false;
        }
        let mount = clean(mount_path);
        let target = clean(target);
        if same_path(&mount, &target) || (below && is_strictly_under(&mount, &target)) {
            return true;
        }
        if !is_strictly_under(&target, &mount) {
            return false;
        }
        let rel = target[mount.trim_end_matches('/').len()..].trim_start_matches('/');
        let inside = match sub_path {
            // A subPathExpr picks an entry only known at run time: any of them.
            Some(None) => return true,
            Some(Some(sp)) => match sub_root(sp) {
                sp if sp == "/" => rel.to_string(),
                sp => format!("{}/{rel}", sp.trim_start_matches('/')),
            },
            None => rel.to_string(),
        };
        self.any
            || (self.flat && !inside.contains('/'))
            || self.paths.has(&inside)
            || (below && self.paths.has_below(&inside))
    }
}

/// [`Entries::reach`] for one question (tests; the engine builds [`Entries`] once per volume).
pub fn reaches(
    layout: &Layout<'_>,
    mount_path: &str,
    sub_path: Option<&str>,
    target: &str,
) -> bool {
    Entries::of(layout).reach(mount_path, sub_path, target)
}

/// A `subPath` as the entry of the volume it names, cleaned. The kubelet writes a Secret,
/// ConfigMap, downward API or projected volume through `..data` (a symlink to the directory of
/// the current files), so `subPath: ..data` (or `..data/x`) is the volume's root (or `x`).
fn sub_root(sp: &str) -> std::borrow::Cow<'_, str> {
    let sp = clean(sp);
    match sp.strip_prefix("/..data") {
        Some("") => "/".into(),
        Some(rest) if rest.starts_with('/') => rest.to_string().into(),
        _ => sp,
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

    /// Finding 01: a deep `items` path is stored once, not once per directory above it, and the
    /// questions still see every directory the kubelet would make.
    #[test]
    fn a_deep_items_path_costs_linear_memory() {
        for depth in [10usize, 1_000, 20_000] {
            let path = "d/".repeat(depth) + "key";
            let json = format!(
                r#"{{"name":"v","secret":{{"secretName":"s","items":[{{"key":"k","path":"{path}"}}]}}}}"#
            );
            let v: super::super::pod::Volume<'_> = serde_json::from_str(&json).unwrap();
            let files = Files::of_volume(&v);
            assert!(files.paths.stored_bytes() <= path.len(), "depth {depth}");
            let Entries::Paths(tree) = Entries::of(&Layout::of_volume(&v)) else {
                panic!("items")
            };
            assert!(tree.stored_bytes() <= path.len(), "depth {depth}");
            let mid = "/m/".to_string() + &"d/".repeat(depth / 2);
            let mid = mid.trim_end_matches('/');
            assert!(
                files.reach("/m", None, mid, false),
                "directory above the file"
            );
            assert!(
                files.reach("/m", None, &format!("/m/{path}"), false),
                "the file"
            );
            assert!(!files.reach("/m", None, &format!("/m/{path}x"), false));
            assert!(!files.reach("/m", None, "/m/e", true));
            assert!(files.reach("/m", None, "/m/d", true));
            assert!(Entries::Paths(tree).reach("/m", None, mid));
        }
    }

    #[test]
    fn a_secret_reaches_a_path_through_a_directory_items_or_a_sub_path() {
        let key = "/plx-context/.gc/gc-secret.json";
        let renamed = Layout::Items(vec![("k", ".gc/gc-secret.json")]);
        let elsewhere = Layout::Items(vec![("k", "other.json")]);
        for (layout, mount, sub, want) in [
            (&Layout::AllKeys, "/plx-context/.gc", None, true),
            (&Layout::AllKeys, "/plx-context/.gc/", None, true),
            (
                &Layout::AllKeys,
                "/plx-context/.gc/gc-secret.json",
                None,
                true,
            ),
            (
                &Layout::AllKeys,
                "/plx-context/.gc/gc-secret.json",
                Some("gc-secret.json"),
                true,
            ),
            (&Layout::AllKeys, "/plx-context", None, false),
            (&renamed, "/plx-context", None, true),
            (&renamed, "/plx-context", Some(".gc"), false),
            (&renamed, "/plx-context/.gc", Some(".gc"), true),
            (&elsewhere, "/plx-context/.gc", None, false),
            (&Layout::AllKeys, "/etc/gcs", None, false),
            (&Layout::NotSecret, "/plx-context/.gc", None, false),
        ] {
            assert_eq!(reaches(layout, mount, sub, key), want, "{mount} {sub:?}");
        }
    }

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
