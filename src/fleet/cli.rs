//! The `fleet` command's cluster access, as kubectl's: `--kubeconfig`, `--context`, and errors
//! that name the API server and the cause.

use super::report::Report;
use std::path::Path;

/// A client for `kubeconfig` (else $KUBECONFIG, ~/.kube/config, or in-cluster) and `context`,
/// checked by asking the API server its version, so an unreachable server is named at once.
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<String>,
) -> anyhow::Result<kube::Client> {
    let options = kube::config::KubeConfigOptions {
        context,
        cluster: None,
        user: None,
    };
    let config = match kubeconfig {
        Some(p) => {
            let kc = kube::config::Kubeconfig::read_from(p)
                .map_err(|e| anyhow::anyhow!("kubeconfig {}: {}", p.display(), chain(&e)))?;
            kube::Config::from_custom_kubeconfig(kc, &options).await
        }
        None if options.context.is_some() => kube::Config::from_kubeconfig(&options).await,
        None => kube::Config::infer().await.map_err(|e| {
            kube::config::KubeconfigError::ReadConfig(
                std::io::Error::other(chain(&e)),
                "KUBECONFIG, ~/.kube/config or in-cluster".into(),
            )
        }),
    }
    .map_err(|e| anyhow::anyhow!("no Kubernetes client: {}", chain(&e)))?;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config)
        .map_err(|e| anyhow::anyhow!("Kubernetes API {server}: {}", chain(&e)))?;
    client
        .apiserver_version()
        .await
        .map_err(|e| anyhow::anyhow!("Kubernetes API {server}: {}", chain(&e)))?;
    Ok(client)
}

/// An error and its causes in one line (kube's own message stops at "client error (Connect)").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = c.source();
    }
    out
}

/// Keep only `namespace`'s run pods and missing objects, counts recomputed from them.
pub fn only_namespace(r: &mut Report, namespace: &str) {
    r.pods.retain(|p| p.namespace == namespace);
    r.missing_references.retain(|m| m.namespace == namespace);
    for n in r.counts.values_mut() {
        *n = 0;
    }
    for p in &r.pods {
        *r.counts.entry(p.state).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::report::{MissingRow, PodRow};
    use std::collections::BTreeMap;

    #[test]
    fn one_namespace_keeps_its_rows_and_recounts() {
        let pod = |ns: &str, state: &'static str| PodRow {
            namespace: ns.into(),
            pod: "p".into(),
            run: String::new(),
            store: "s".into(),
            rule: String::new(),
            state,
            why: String::new(),
        };
        let mut r = Report {
            synced: true,
            config_hash: "h".into(),
            counts: BTreeMap::from([("current", 2), ("missing", 1)]),
            pods: vec![
                pod("a", "current"),
                pod("b", "current"),
                pod("b", "missing"),
            ],
            missing_references: vec![MissingRow {
                kind: "secret",
                name: "x".into(),
                namespace: "a".into(),
                runs: 1,
            }],
            watches: Vec::new(),
        };
        only_namespace(&mut r, "b");
        assert_eq!(r.pods.len(), 2);
        assert!(r.missing_references.is_empty());
        assert_eq!(r.counts, BTreeMap::from([("current", 1), ("missing", 1)]));
    }
}
