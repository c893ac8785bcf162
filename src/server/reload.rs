//! Watching files for changes the way Kubernetes makes them: a mounted Secret or ConfigMap is
//! updated by swapping the `..data` symlink in its directory, not by writing the file, so the
//! *directory* is watched (a watch on the file dies after the first swap), events are debounced,
//! and a periodic poll comparing contents is the safety net. The callback decides what a change
//! means; it never sees the same contents twice in a row. Access events are ignored: they are our
//! own reads, and an idle replica must not wake for them.

use notify::{RecursiveMode, Watcher};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::mpsc;

pub use crate::config::FileContents as Contents;

/// Read every file (following symlinks) on the blocking pool, never on the runtime's workers.
pub async fn read_all(paths: &[PathBuf]) -> Contents {
    let paths = paths.to_vec();
    let fallback = paths.clone();
    tokio::task::spawn_blocking(move || crate::config::read_files(&paths))
        .await
        .unwrap_or_else(|e| {
            let err = crate::config::FileError {
                missing: false,
                message: format!("reading files: {e}"),
            };
            fallback.iter().map(|_| Err(err.clone())).collect()
        })
}

fn watch_dirs(paths: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = paths
        .iter()
        .map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf()
        })
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Watch `paths` until the returned task is aborted; call `on_change` with the new contents
/// whenever they differ from the last seen, starting from `initial`: the exact bytes the caller
/// loaded, so a change made between that load and this watch is still seen.
pub fn spawn<F>(
    paths: Vec<PathBuf>,
    initial: Contents,
    poll: Duration,
    mut on_change: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(&Contents) + Send + 'static,
{
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<()>(1);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            // Our own reads (the poll, the re-read after an event) open and close the files:
            // reacting to those access events made every read schedule the next one, forever.
            if res.is_ok_and(|e| e.kind.is_access()) {
                return;
            }
            let _ = tx.try_send(());
        });
        let _watcher = match watcher {
            Ok(mut w) => {
                for d in watch_dirs(&paths) {
                    if let Err(e) = w.watch(&d, RecursiveMode::NonRecursive) {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch directory; relying on polling");
                    }
                }
                Some(w)
            }
            Err(e) => {
                tracing::warn!(error = %e, "file watching unavailable; relying on polling");
                None
            }
        };
        let mut last = initial;
        let mut tick = tokio::time::interval(poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                got = rx.recv() => {
                    if got.is_none() { break; }
                    // Debounce: a symlink swap is several events.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    while rx.try_recv().is_ok() {}
                }
                _ = tick.tick() => {}
            }
            let now = read_all(&paths).await;
            if now != last {
                on_change(&now);
                last = now;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The caller loads bytes, then starts watching from those same bytes: a change made in
    /// between (before the watch exists) is still delivered.
    #[tokio::test]
    async fn a_change_between_load_and_watch_is_seen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, "a").expect("write");
        let paths = vec![path.clone()];
        let loaded = read_all(&paths).await;
        std::fs::write(&path, "b").expect("write");
        let (tx, mut rx) = mpsc::channel(4);
        let task = spawn(paths, loaded, Duration::from_millis(100), move |now| {
            let _ = tx.try_send(now.clone());
        });
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the change was lost")
            .expect("watcher ended");
        assert_eq!(got, vec![Ok(b"b".to_vec())]);
        task.abort();
    }
}
