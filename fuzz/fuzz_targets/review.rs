//! Fuzz the request decoder + engine: any bytes are either a 400 (decode error) or a well-formed
//! response echoing the uid; an allowed patch applies to the pod and a second pass is empty.
//! Three configs: the legacy file path, `/etc/gcs` + configMap with `onConflict: skip`, and the
//! per-team rules of `examples/teams.yaml`.
//!
//! RUSTC_BOOTSTRAP=1 cargo fuzz run review fuzz/corpus/review -- -runs=1000000
//! (inputs starting with `P` are taken as a bare pod wrapped into a review, to reach the engine
//! more often than a mutated review text would.) Also holds the one-pass readers
//! (`json_scan`, `pod_scan`) to the serde model's answers on every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use plx_store_webhook::engine::{decode, mutate, pod, pod_scan};
use plx_store_webhook::{admission, load_str, Plan};
use serde_json::{json, Value};
use std::sync::LazyLock;

static PLANS: LazyLock<Vec<Plan>> = LazyLock::new(|| {
    [
        "name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: gcs-secret, mountPath: /plx-context/.gc/gc-secret.json}\n",
        "name: s\nkind: gcs\nschema: {bucket: b}\nsecret: {name: gcs-secret, mountPath: /etc/gcs}\nconfigMap: {name: gc-key-path}\ninjection: {onConflict: skip}\n",
        include_str!("../../examples/teams.yaml"),
    ]
    .iter()
    .map(|c| Plan::from_config(&load_str(c, "fuzz").expect("fuzz config")))
    .collect()
});

fuzz_target!(|data: &[u8]| {
    let plan = &PLANS[data.len() % PLANS.len()];
    let body: Vec<u8> = if data.first() == Some(&b'P') {
        let Ok(pod) = serde_json::from_slice::<Value>(&data[1..]) else {
            return;
        };
        serde_json::to_vec(&json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "fuzz", "operation": "CREATE", "namespace": "polyaxon",
                        "resource": {"group": "", "version": "v1", "resource": "pods"}, "object": pod}}))
        .expect("serialise")
    } else {
        data.to_vec()
    };
    // The one-pass readers answer as the serde model does, or step aside.
    if let Ok(text) = std::str::from_utf8(&body) {
        let fast = format!("{:?}", admission::Review::parse(&body));
        let serde = format!("{:?}", admission::Review::parse_serde(&body, text));
        assert_eq!(fast, serde, "the one-pass review reader disagrees with serde");
    }
    let pod_text = if data.first() == Some(&b'P') { &data[1..] } else { data };
    if let Ok(text) = std::str::from_utf8(pod_text) {
        if let Ok(pod) = pod_scan::pod_text(text, usize::MAX) {
            let serde = pod::decode_serde(text).expect("the one-pass pod reader accepted what serde refuses");
            assert_eq!(format!("{pod:?}"), format!("{serde:?}"));
        }
    }
    let Ok((review, outcome, bytes)) = admission::review(&body, plan) else {
        return;
    };
    let bytes = bytes.expect("an answer always encodes");
    let resp: Value = serde_json::from_slice(&bytes).expect("the response is JSON");
    assert_eq!(resp["response"]["uid"], review.uid.as_ref());
    assert_eq!(resp["apiVersion"], review.api_version.as_str());
    if outcome.allowed() && !outcome.patch.is_empty() {
        let doc: Value = serde_json::from_slice(&body).expect("an answered body is JSON");
        let mut pod = doc["request"]["object"].clone();
        assert!(pod.is_object(), "an allowed patch has an object");
        json_patch::patch(&mut pod, &outcome.patch).expect("an allowed patch applies");
        let text = pod.to_string();
        let again = mutate(&decode(&text), plan, &review.facts());
        assert!(
            again.patch.is_empty(),
            "second pass not empty: {:?}",
            again.patch
        );
    }
});
