//! The watches behind the fleet view, through kube-rs: run pods (metadata only, by the run
//! selector, finished pods left out) and, for every object the config references, one
//! metadata-only watch with `fieldSelector=metadata.name=<name>` — the one form of list and
//! watch that RBAC's `resourceNames` can authorize, so no Secret is ever listed and no secret
//! byte reaches the process. Lists are paged; no streaming lists (a 1.20 apiserver never ends
//! them). A failing watch drops its stream and lists again after a backoff, so its data is
//! trusted again only after a complete relist (a relist replaces, never adds).

use super::view::{Failure, Fleet, NamedWatch, View, WatchState};
use crate::fleet::RunPod;
use crate::plan::Plan;
use crate::references::{self, ObjectKind, ObjectRef};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, ServiceAccount};
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Small pages keep the transient list memory small (the kube-rs reflector advice).
const PAGE_SIZE: u32 = 100;
/// Pods that have finished run no more: not counted.
const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";
/// Events between two hand-backs of freed memory (each event's object is freed once reduced).
const COLLECT_EVERY: u32 = 1024;

/// One watch a plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Pods { selector: String },
    Named(ObjectRef),
}

/// The watches `plan` needs.
pub fn targets(plan: &Plan) -> Vec<Target> {
    let mut t = vec![Target::Pods {
        selector: selector(plan),
    }];
    t.extend(references::of_plan(plan).into_iter().map(Target::Named));
    t
}

/// The run selector as a label selector.
pub fn selector(plan: &Plan) -> String {
    plan.policy
        .selector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The ClusterRole rule a watch needs, as one YAML flow mapping.
pub fn rule(target: &Target) -> String {
    match target {
        Target::Pods { .. } => {
            r#"{apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"]}"#.to_string()
        }
        Target::Named(r) => format!(
            r#"{{apiGroups: [""], resources: ["{}"], resourceNames: ["{}"], verbs: ["get", "list", "watch"]}}"#,
            r.kind.resource(),
            r.name
        ),
    }
}

/// The running watches, kept in step with the plan.
pub struct Watches {
    client: Client,
    fleet: Arc<Fleet>,
    running: HashMap<Target, JoinHandle<()>>,
}

impl Watches {
    pub fn new(client: Client, fleet: Arc<Fleet>) -> Self {
        Watches {
            client,
            fleet,
            running: HashMap::new(),
        }
    }

    /// Start the watches `plan` needs, stop (and forget) the others.
    pub fn follow(&mut self, plan: &Plan) {
        let want = targets(plan);
        let gone: Vec<Target> = self
            .running
            .keys()
            .filter(|t| !want.contains(t))
            .cloned()
            .collect();
        for t in gone {
            if let Some(h) = self.running.remove(&t) {
                h.abort();
            }
            let mut v = self.fleet.write();
            match &t {
                Target::Pods { .. } => {
                    v.pods.clear();
                    v.pods_watch = WatchState::default();
                }
                Target::Named(r) => {
                    if let Some(m) = v.named.get_mut(&r.kind) {
                        m.remove(&r.name);
                    }
                }
            }
        }
        for t in want {
            if self.running.contains_key(&t) {
                continue;
            }
            let handle = self.spawn(&t);
            self.running.insert(t, handle);
        }
    }

    fn spawn(&self, t: &Target) -> JoinHandle<()> {
        let fleet = self.fleet.clone();
        let client = self.client.clone();
        let rule = rule(t);
        match t.clone() {
            Target::Pods { selector } => {
                fleet.write().pods_watch = WatchState::default();
                let config = watcher::Config::default()
                    .labels(&selector)
                    .fields(LIVE_PODS)
                    .page_size(PAGE_SIZE);
                let api = Api::<PartialObjectMeta<Pod>>::all(client);
                tokio::spawn(run(api, config, PodSink { fleet, rule }))
            }
            Target::Named(r) => {
                fleet
                    .write()
                    .named
                    .entry(r.kind)
                    .or_default()
                    .insert(r.name.clone(), NamedWatch::default());
                let config = watcher::Config::default()
                    .fields(&format!("metadata.name={}", r.name))
                    .page_size(PAGE_SIZE);
                let sink = NamedSink {
                    fleet,
                    rule,
                    target: r.clone(),
                };
                match r.kind {
                    ObjectKind::Secret => spawn_named::<Secret>(client, config, sink),
                    ObjectKind::ConfigMap => spawn_named::<ConfigMap>(client, config, sink),
                    ObjectKind::PersistentVolumeClaim => {
                        spawn_named::<PersistentVolumeClaim>(client, config, sink)
                    }
                    ObjectKind::ServiceAccount => {
                        spawn_named::<ServiceAccount>(client, config, sink)
                    }
                }
            }
        }
    }
}

/// One named object's watch, cluster-wide, metadata only.
fn spawn_named<K>(client: Client, config: watcher::Config, sink: NamedSink) -> JoinHandle<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    tokio::spawn(run(Api::<PartialObjectMeta<K>>::all(client), config, sink))
}

impl Drop for Watches {
    fn drop(&mut self) {
        for h in self.running.values() {
            h.abort();
        }
    }
}

/// Where one watch's events go: each object reduced to what the view keeps of it.
trait Sink<K>: Send + 'static {
    type Item: Send;
    fn item(&self, o: &PartialObjectMeta<K>) -> Option<Self::Item>;
    fn replace(&self, items: Vec<Self::Item>);
    fn apply(&self, item: Self::Item);
    fn delete(&self, item: Self::Item);
    fn state<'v>(&self, v: &'v mut View) -> Option<&'v mut WatchState>;
    fn rule(&self) -> &str;
    fn what(&self) -> String;
    fn fleet(&self) -> &Fleet;
}

async fn run<K, S>(api: Api<PartialObjectMeta<K>>, config: watcher::Config, sink: S)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    S: Sink<K>,
{
    let mut delay = BACKOFF_MIN;
    let mut since_collect = 0u32;
    loop {
        let stream = watcher::watcher(api.clone(), config.clone());
        futures::pin_mut!(stream);
        let mut listing: Option<Vec<S::Item>> = None;
        while let Some(event) = stream.next().await {
            match event {
                Ok(Event::Init) => listing = Some(Vec::new()),
                Ok(Event::InitApply(o)) => {
                    if let (Some(l), Some(i)) = (listing.as_mut(), sink.item(&o)) {
                        l.push(i);
                    }
                }
                Ok(Event::InitDone) => {
                    sink.replace(listing.take().unwrap_or_default());
                    let mut v = sink.fleet().write();
                    if let Some(st) = sink.state(&mut v) {
                        if st.failure.take().is_some() {
                            tracing::info!(watch = %sink.what(), "fleet watch recovered");
                        }
                        st.synced = true;
                    }
                    delay = BACKOFF_MIN;
                    // The list's pages and the replaced entries are free now: give them back
                    // (the watches run on their own thread, so this is their whole heap).
                    crate::allocator::release_free_memory();
                }
                Ok(Event::Apply(o)) => {
                    if let Some(i) = sink.item(&o) {
                        sink.apply(i);
                    }
                    since_collect += 1;
                }
                Ok(Event::Delete(o)) => {
                    if let Some(i) = sink.item(&o) {
                        sink.delete(i);
                    }
                    since_collect += 1;
                }
                Err(e) => {
                    since_collect = COLLECT_EVERY;
                    let f = failure(&e, sink.rule());
                    let mut v = sink.fleet().write();
                    if let Some(st) = sink.state(&mut v) {
                        let changed =
                            st.failure.as_ref().map(|old| &old.message) != Some(&f.message);
                        if changed {
                            if f.forbidden {
                                tracing::warn!(watch = %sink.what(), error = %f.message, rule = %f.rule,
                                    "fleet watch forbidden: add this rule to the webhook's ClusterRole (plx-store-webhook rbac --config …)");
                            } else {
                                tracing::warn!(watch = %sink.what(), error = %f.message, "fleet watch failing; retrying");
                            }
                        }
                        st.failure = Some(f);
                    }
                    break;
                }
            }
            if since_collect >= COLLECT_EVERY {
                since_collect = 0;
                crate::allocator::release_free_memory();
            }
        }
        if since_collect >= COLLECT_EVERY {
            since_collect = 0;
            crate::allocator::release_free_memory();
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(BACKOFF_MAX);
    }
}

fn failure(e: &watcher::Error, rule: &str) -> Failure {
    let status = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => Some(s.as_ref()),
        _ => None,
    };
    let forbidden = status.is_some_and(|s| s.code == 403);
    Failure {
        message: e.to_string(),
        forbidden,
        rule: if forbidden {
            rule.to_string()
        } else {
            String::new()
        },
    }
}

/// Run pods, reduced to their metadata's classification facts.
struct PodSink {
    fleet: Arc<Fleet>,
    rule: String,
}

impl Sink<Pod> for PodSink {
    type Item = RunPod;

    fn item(&self, o: &PartialObjectMeta<Pod>) -> Option<RunPod> {
        let m = &o.metadata;
        Some(RunPod::from_meta(
            m.namespace.as_deref()?,
            m.name.as_deref()?,
            pairs(&m.labels),
            pairs(&m.annotations),
        ))
    }

    fn replace(&self, items: Vec<RunPod>) {
        let pods = items
            .into_iter()
            .map(|p| ((p.namespace.clone(), p.name.clone()), p))
            .collect();
        // Swapped under the lock, the old view dropped after it (admission reads the lock).
        let old = std::mem::replace(&mut self.fleet.write().pods, pods);
        drop(old);
    }

    fn apply(&self, p: RunPod) {
        self.fleet
            .write()
            .pods
            .insert((p.namespace.clone(), p.name.clone()), p);
    }

    fn delete(&self, p: RunPod) {
        self.fleet.write().pods.remove(&(p.namespace, p.name));
    }

    fn state<'v>(&self, v: &'v mut View) -> Option<&'v mut WatchState> {
        Some(&mut v.pods_watch)
    }

    fn rule(&self) -> &str {
        &self.rule
    }

    fn what(&self) -> String {
        "pods".into()
    }

    fn fleet(&self) -> &Fleet {
        &self.fleet
    }
}

/// One named object: which namespaces have it.
struct NamedSink {
    fleet: Arc<Fleet>,
    rule: String,
    target: ObjectRef,
}

impl<K> Sink<K> for NamedSink {
    type Item = String;

    fn item(&self, o: &PartialObjectMeta<K>) -> Option<String> {
        // The field selector already holds the name; checked again all the same.
        (o.metadata.name.as_deref() == Some(self.target.name.as_str()))
            .then(|| o.metadata.namespace.clone())
            .flatten()
    }

    fn replace(&self, items: Vec<String>) {
        let namespaces = items.into_iter().collect();
        let mut v = self.fleet.write();
        if let Some(w) = self.watch(&mut v) {
            w.namespaces = namespaces;
        }
    }

    fn apply(&self, ns: String) {
        let mut v = self.fleet.write();
        if let Some(w) = self.watch(&mut v) {
            w.namespaces.insert(ns);
        }
    }

    fn delete(&self, ns: String) {
        let mut v = self.fleet.write();
        if let Some(w) = self.watch(&mut v) {
            w.namespaces.remove(&ns);
        }
    }

    fn state<'v>(&self, v: &'v mut View) -> Option<&'v mut WatchState> {
        self.watch(v).map(|w| &mut w.state)
    }

    fn rule(&self) -> &str {
        &self.rule
    }

    fn what(&self) -> String {
        format!("{} {}", self.target.kind.resource(), self.target.name)
    }

    fn fleet(&self) -> &Fleet {
        &self.fleet
    }
}

impl NamedSink {
    fn watch<'v>(&self, v: &'v mut View) -> Option<&'v mut NamedWatch> {
        v.named
            .get_mut(&self.target.kind)
            .and_then(|m| m.get_mut(&self.target.name))
    }
}

fn pairs(map: &Option<std::collections::BTreeMap<String, String>>) -> Vec<(&str, &str)> {
    map.iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}
