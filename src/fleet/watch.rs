//! The watches behind the fleet view, through kube-rs: run pods (whole pods, by the run
//! selector, finished pods left out), each judged on arrival by the core's [`judge`] — the
//! `/validate` check — and reduced to its small record, the pod itself dropped; and, for every
//! object the config references, one metadata-only watch with `fieldSelector=metadata.name=<name>`
//! (the one form of list and watch that RBAC's `resourceNames` can authorize). Each watch looks
//! where [`scope`](super::scope) says: cluster-wide, or namespace by namespace. Lists are paged
//! in small pages; no streaming lists (a 1.20 apiserver never ends them). A failing watch drops
//! its stream and lists again after a backoff, so its data is trusted again only after a
//! complete relist (a relist replaces, never adds). A config change restarts the pod watches:
//! the records are judgements under one plan.

use super::scope;
use super::view::{Failure, Fleet, NamedWatch, View, WatchState};
use crate::fleet::{judge, RunPod};
use crate::plan::Plan;
use crate::references::{ObjectKind, ObjectRef};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::NamespaceResourceScope;
use kube::core::PartialObjectMeta;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Pods per list page: a page is held whole while it is read (its body and each pod decoded),
/// so a relist's peak is about one page of the largest pods, not the fleet.
const POD_PAGE: u32 = 10;
/// Named objects per page (metadata only, one name: a page holds at most one per namespace).
const NAMED_PAGE: u32 = 100;
/// Pods that have finished run no more: not counted.
const LIVE_PODS: &str = "status.phase!=Succeeded,status.phase!=Failed";
/// Events between two hand-backs of freed memory (each event's object is freed once reduced).
const COLLECT_EVERY: u32 = 256;
/// A quiet stream for this long after events: their freed memory is handed back.
const QUIET: Duration = Duration::from_secs(1);

/// One watch a plan needs.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// Run pods, judged under the config with this hash (a new config restarts the watch).
    Pods {
        selector: String,
        config: String,
        namespace: Option<String>,
    },
    Named {
        object: ObjectRef,
        namespace: Option<String>,
    },
}

/// The watches `plan` needs.
pub fn targets(plan: &Plan) -> Vec<Target> {
    let s = scope::of(plan);
    let mut t: Vec<Target> = s
        .pods
        .each()
        .into_iter()
        .map(|namespace| Target::Pods {
            selector: selector(plan),
            config: plan.config_hash.clone(),
            namespace,
        })
        .collect();
    for (object, at) in &s.named {
        t.extend(at.each().into_iter().map(|namespace| Target::Named {
            object: object.clone(),
            namespace,
        }));
    }
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

/// The RBAC rule a watch needs, as one YAML flow mapping (in a Role of its namespace when it
/// has one, else in the ClusterRole).
pub fn rule(target: &Target) -> String {
    let (rule, ns) = match target {
        Target::Pods { namespace, .. } => (
            r#"{apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"]}"#.to_string(),
            namespace,
        ),
        Target::Named { object, namespace } => (
            format!(
                r#"{{apiGroups: [""], resources: ["{}"], resourceNames: ["{}"], verbs: ["list", "watch"]}}"#,
                object.kind.resource(),
                object.name
            ),
            namespace,
        ),
    };
    match ns {
        Some(ns) => format!("{rule} in a Role of namespace {ns}"),
        None => rule,
    }
}

/// A run pod as the watch reads it: its text as the engine reads a pod (metadata's labels and
/// annotations, and the spec; never managedFields or status), and the little metadata the
/// watcher tracks. Built per object while a page or event is read, dropped once judged. Labels,
/// annotations and spec are kept as the API's own text (`RawValue`), never parsed into a tree
/// here: a tenant's pod costs its size once, and the engine reads it under the pod limits.
#[derive(Debug, Clone)]
pub struct RawPod {
    metadata: ObjectMeta,
    text: String,
}

impl<'de> Deserialize<'de> for RawPod {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: Meta,
            #[serde(default)]
            spec: Option<Box<RawValue>>,
        }
        #[derive(Deserialize, Default)]
        #[serde(rename_all = "camelCase")]
        struct Meta {
            #[serde(default)]
            name: Option<String>,
            #[serde(default)]
            namespace: Option<String>,
            #[serde(default)]
            resource_version: Option<String>,
            #[serde(default)]
            uid: Option<String>,
            #[serde(default)]
            labels: Option<Box<RawValue>>,
            #[serde(default)]
            annotations: Option<Box<RawValue>>,
        }
        let w = Wire::deserialize(d)?;
        let m = w.metadata;
        let raw = |v: &Option<Box<RawValue>>| v.as_deref().map_or("null", RawValue::get).len();
        let mut text = String::with_capacity(
            64 + raw(&m.labels)
                + raw(&m.annotations)
                + raw(&w.spec)
                + m.name.as_deref().map_or(0, str::len)
                + m.namespace.as_deref().map_or(0, str::len),
        );
        text.push_str("{\"metadata\":{");
        for (key, value) in [("name", &m.name), ("namespace", &m.namespace)] {
            if let Some(v) = value {
                text.push_str(&format!("{key:?}:"));
                text.push_str(&serde_json::to_string(v).map_err(serde::de::Error::custom)?);
                text.push(',');
            }
        }
        for (key, value) in [("labels", &m.labels), ("annotations", &m.annotations)] {
            text.push_str(&format!("{key:?}:"));
            text.push_str(value.as_deref().map_or("null", RawValue::get));
            text.push(',');
        }
        text.pop();
        text.push_str("},\"spec\":");
        text.push_str(w.spec.as_deref().map_or("null", RawValue::get));
        text.push('}');
        Ok(RawPod {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                resource_version: m.resource_version,
                uid: m.uid,
                ..ObjectMeta::default()
            },
            text,
        })
    }
}

impl RawPod {
    /// The pod's text as the engine reads it.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl Resource for RawPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(_: &()) -> Cow<'_, str> {
        "Pod".into()
    }
    fn group(_: &()) -> Cow<'_, str> {
        "".into()
    }
    fn version(_: &()) -> Cow<'_, str> {
        "v1".into()
    }
    fn plural(_: &()) -> Cow<'_, str> {
        "pods".into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
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
    pub fn follow(&mut self, plan: &Arc<Plan>) {
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
                Target::Pods { namespace, .. } => {
                    v.pods_watches.remove(&key(namespace));
                }
                Target::Named { object, namespace } => {
                    if let Some(m) = v.named.get_mut(&object.kind) {
                        m.remove(&(object.name.clone(), key(namespace)));
                    }
                }
            }
        }
        {
            // Records judged under another plan mean nothing under this one.
            let mut v = self.fleet.write();
            if v.pods_config != plan.config_hash {
                v.pods.clear();
                v.pods_config.clone_from(&plan.config_hash);
            }
        }
        for t in want {
            if self.running.contains_key(&t) {
                continue;
            }
            let handle = self.spawn(&t, plan);
            self.running.insert(t, handle);
        }
    }

    fn spawn(&self, t: &Target, plan: &Arc<Plan>) -> JoinHandle<()> {
        let fleet = self.fleet.clone();
        let client = self.client.clone();
        let rule = rule(t);
        match t.clone() {
            Target::Pods {
                selector,
                namespace,
                ..
            } => {
                fleet
                    .write()
                    .pods_watches
                    .insert(key(&namespace), WatchState::default());
                let config = watcher::Config::default()
                    .labels(&selector)
                    .fields(LIVE_PODS)
                    .page_size(POD_PAGE);
                let api = match &namespace {
                    Some(ns) => Api::<RawPod>::namespaced(client, ns),
                    None => Api::<RawPod>::all(client),
                };
                let sink = PodSink {
                    fleet,
                    rule,
                    plan: plan.clone(),
                    namespace,
                };
                tokio::spawn(run(api, config, sink))
            }
            Target::Named { object, namespace } => {
                fleet.write().named.entry(object.kind).or_default().insert(
                    (object.name.clone(), key(&namespace)),
                    NamedWatch::default(),
                );
                let config = watcher::Config::default()
                    .fields(&format!("metadata.name={}", object.name))
                    .page_size(NAMED_PAGE);
                let sink = NamedSink {
                    fleet,
                    rule,
                    target: object.clone(),
                    namespace: namespace.clone(),
                };
                let ns = namespace.as_deref();
                match object.kind {
                    ObjectKind::Secret => spawn_named::<Secret>(client, ns, config, sink),
                    ObjectKind::ConfigMap => spawn_named::<ConfigMap>(client, ns, config, sink),
                    ObjectKind::PersistentVolumeClaim => {
                        spawn_named::<PersistentVolumeClaim>(client, ns, config, sink)
                    }
                    ObjectKind::ServiceAccount => {
                        spawn_named::<ServiceAccount>(client, ns, config, sink)
                    }
                }
            }
        }
    }
}

/// A watch's namespace as the view keys it ("" for a cluster-wide watch).
fn key(namespace: &Option<String>) -> String {
    namespace.clone().unwrap_or_default()
}

/// One named object's watch, metadata only, cluster-wide or in one namespace.
fn spawn_named<K>(
    client: Client,
    namespace: Option<&str>,
    config: watcher::Config,
    sink: NamedSink,
) -> JoinHandle<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let api = match namespace {
        Some(ns) => Api::<PartialObjectMeta<K>>::namespaced(client, ns),
        None => Api::<PartialObjectMeta<K>>::all(client),
    };
    tokio::spawn(run(api, config, sink))
}

impl Drop for Watches {
    fn drop(&mut self) {
        for h in self.running.values() {
            h.abort();
        }
    }
}

/// Where one watch's events go: each object reduced to what the view keeps of it.
trait Sink<O>: Send + 'static {
    type Item: Send;
    fn item(&self, o: &O) -> Option<Self::Item>;
    fn replace(&self, items: Vec<Self::Item>);
    fn apply(&self, o: &O);
    fn delete(&self, o: &O);
    fn state<'v>(&self, v: &'v mut View) -> Option<&'v mut WatchState>;
    fn rule(&self) -> &str;
    fn what(&self) -> String;
    fn fleet(&self) -> &Fleet;
}

async fn run<O, S>(api: Api<O>, config: watcher::Config, sink: S)
where
    O: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    S: Sink<O>,
{
    let mut delay = BACKOFF_MIN;
    let mut since_collect = 0u32;
    loop {
        let stream = watcher::watcher(api.clone(), config.clone());
        futures::pin_mut!(stream);
        let mut listing: Option<Vec<S::Item>> = None;
        loop {
            // After a burst, the freed memory goes back once the stream is quiet for a moment.
            let event = if since_collect > 0 {
                match tokio::time::timeout(QUIET, stream.next()).await {
                    Ok(e) => e,
                    Err(_) => {
                        since_collect = 0;
                        crate::allocator::release_free_memory();
                        continue;
                    }
                }
            } else {
                stream.next().await
            };
            let Some(event) = event else { break };
            match event {
                Ok(Event::Init) => listing = Some(Vec::new()),
                Ok(Event::InitApply(o)) => {
                    if let (Some(l), Some(i)) = (listing.as_mut(), sink.item(&o)) {
                        l.push(i);
                    }
                    since_collect += 1;
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
                    drop(v);
                    delay = BACKOFF_MIN;
                    // The list's pages and the replaced entries are free now: give them back
                    // (the watches run on their own thread, so this is their whole heap).
                    since_collect = COLLECT_EVERY;
                }
                Ok(Event::Apply(o)) => {
                    sink.apply(&o);
                    since_collect += 1;
                }
                Ok(Event::Delete(o)) => {
                    sink.delete(&o);
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
                                    "fleet watch forbidden: add this rule to the webhook's RBAC (plx-store-webhook rbac --config …)");
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
        if since_collect > 0 {
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

/// Run pods, each judged under `plan` and kept as its small record.
struct PodSink {
    fleet: Arc<Fleet>,
    rule: String,
    plan: Arc<Plan>,
    /// The one namespace this watch lists (`None`: all).
    namespace: Option<String>,
}

impl PodSink {
    /// The view, if it still holds judgements under this sink's plan (a config change may have
    /// moved on while this watch was being stopped).
    fn view(&self) -> Option<std::sync::RwLockWriteGuard<'_, View>> {
        let v = self.fleet.write();
        (v.pods_config == self.plan.config_hash).then_some(v)
    }
}

fn pod_key(o: &RawPod) -> Option<(String, String)> {
    Some((o.metadata.namespace.clone()?, o.metadata.name.clone()?))
}

impl Sink<RawPod> for PodSink {
    type Item = RunPod;

    fn item(&self, o: &RawPod) -> Option<RunPod> {
        let (ns, name) = (
            o.metadata.namespace.as_deref()?,
            o.metadata.name.as_deref()?,
        );
        judge(ns, name, &o.text, &self.plan)
    }

    fn replace(&self, items: Vec<RunPod>) {
        let Some(mut v) = self.view() else { return };
        let mut old = match &self.namespace {
            None => std::mem::take(&mut v.pods),
            Some(ns) => {
                let (mine, others) = std::mem::take(&mut v.pods)
                    .into_iter()
                    .partition(|((n, _), _)| n == ns);
                v.pods = others;
                mine
            }
        };
        for p in items {
            v.pods.insert((p.namespace.clone(), p.name.clone()), p);
        }
        // The old records are dropped after the lock (admission reads it).
        drop(v);
        old.clear();
    }

    fn apply(&self, o: &RawPod) {
        let Some(key) = pod_key(o) else { return };
        // Judged before the lock: the spec is read and dropped here.
        let judged = self.item(o);
        let Some(mut v) = self.view() else { return };
        match judged {
            Some(p) => v.pods.insert(key, p),
            None => v.pods.remove(&key),
        };
    }

    fn delete(&self, o: &RawPod) {
        let Some(key) = pod_key(o) else { return };
        if let Some(mut v) = self.view() {
            v.pods.remove(&key);
        }
    }

    fn state<'v>(&self, v: &'v mut View) -> Option<&'v mut WatchState> {
        if v.pods_config != self.plan.config_hash {
            return None;
        }
        v.pods_watches.get_mut(&key(&self.namespace))
    }

    fn rule(&self) -> &str {
        &self.rule
    }

    fn what(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("pods in {ns}"),
            None => "pods".into(),
        }
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
    namespace: Option<String>,
}

impl NamedSink {
    fn namespace_of<K>(&self, o: &PartialObjectMeta<K>) -> Option<String> {
        // The field selector already holds the name; checked again all the same.
        (o.metadata.name.as_deref() == Some(self.target.name.as_str()))
            .then(|| o.metadata.namespace.clone())
            .flatten()
    }

    fn watch<'v>(&self, v: &'v mut View) -> Option<&'v mut NamedWatch> {
        v.named
            .get_mut(&self.target.kind)
            .and_then(|m| m.get_mut(&(self.target.name.clone(), key(&self.namespace))))
    }
}

impl<K: Send + Sync + 'static> Sink<PartialObjectMeta<K>> for NamedSink {
    type Item = String;

    fn item(&self, o: &PartialObjectMeta<K>) -> Option<String> {
        self.namespace_of(o)
    }

    fn replace(&self, items: Vec<String>) {
        let namespaces = items.into_iter().collect();
        let mut v = self.fleet.write();
        if let Some(w) = self.watch(&mut v) {
            w.namespaces = namespaces;
        }
    }

    fn apply(&self, o: &PartialObjectMeta<K>) {
        let Some(ns) = self.namespace_of(o) else {
            return;
        };
        let mut v = self.fleet.write();
        if let Some(w) = self.watch(&mut v) {
            w.namespaces.insert(ns);
        }
    }

    fn delete(&self, o: &PartialObjectMeta<K>) {
        let Some(ns) = self.namespace_of(o) else {
            return;
        };
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
        match &self.namespace {
            Some(ns) => format!(
                "{} {} in {ns}",
                self.target.kind.resource(),
                self.target.name
            ),
            None => format!("{} {}", self.target.kind.resource(), self.target.name),
        }
    }

    fn fleet(&self) -> &Fleet {
        &self.fleet
    }
}

#[cfg(test)]
mod tests {
    use super::RawPod;

    /// Pods arrive in list pages and in watch events (`type` first, as the apiserver writes
    /// them); both keep the API's own text of labels, annotations and spec, nothing else.
    #[test]
    fn a_pod_is_read_as_its_own_text_from_lists_and_events() {
        let pod = r#"{"metadata":{"name":"p","namespace":"n","uid":"u","resourceVersion":"7",
            "labels":{"a":"b"},"annotations":{"x":"y"},"managedFields":[{"manager":"m"}]},
            "spec":{"containers":[{"name":"c","env":[{"name":"A"}]}]},"status":{"phase":"Running"}}"#;
        let list =
            format!(r#"{{"apiVersion":"v1","kind":"PodList","metadata":{{}},"items":[{pod}]}}"#);
        let l: kube::core::ObjectList<RawPod> = serde_json::from_str(&list).unwrap();
        let event = format!(r#"{{"type":"ADDED","object":{pod}}}"#);
        let e: kube::core::WatchEvent<RawPod> = serde_json::from_str(&event).unwrap();
        let kube::core::WatchEvent::Added(from_event) = e else {
            panic!("an ADDED event")
        };
        for p in [&l.items[0], &from_event] {
            let v: serde_json::Value = serde_json::from_str(p.text()).unwrap();
            assert_eq!(
                v,
                serde_json::json!({"metadata": {"name": "p", "namespace": "n",
                    "labels": {"a": "b"}, "annotations": {"x": "y"}},
                    "spec": {"containers": [{"name": "c", "env": [{"name": "A"}]}]}})
            );
            assert_eq!(p.metadata.uid.as_deref(), Some("u"));
            assert_eq!(p.metadata.resource_version.as_deref(), Some("7"));
        }
        // No labels, annotations or spec at all.
        let bare: RawPod = serde_json::from_str(r#"{"metadata":{"name":"q"}}"#).unwrap();
        let v: serde_json::Value = serde_json::from_str(bare.text()).unwrap();
        assert_eq!(v["spec"], serde_json::Value::Null);
    }
}
