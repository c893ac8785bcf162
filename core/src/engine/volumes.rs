//! Where the plan meets the pod: whether a pod's volume is the storage a mount plan names, and
//! how a planned volume lays out a secret's keys. Kept in the engine so the plan, a layer below,
//! never needs the engine's pod model.

use super::keypath::Layout;
use super::pod::Volume;
use crate::plan::VolumeSource;

/// Whether an existing pod volume refers to the same storage (matched by source, never by name).
pub fn matches(source: &VolumeSource, v: &Volume<'_>) -> bool {
    match source {
        VolumeSource::Secret { name, .. } => {
            v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some(name)
        }
        VolumeSource::ConfigMap { name, .. } => {
            v.config_map.as_ref().and_then(|c| c.name.as_deref()) == Some(name)
        }
        VolumeSource::Claim { claim_name, .. } => {
            v.persistent_volume_claim
                .as_ref()
                .and_then(|c| c.claim_name.as_deref())
                == Some(claim_name)
        }
        VolumeSource::HostPath { path } => {
            v.host_path
                .as_ref()
                .and_then(|h| h.path.as_deref())
                .map(|p| p.trim_end_matches('/'))
                == Some(path)
        }
    }
}

/// How a volume made from `source` lays out a secret's keys.
pub fn layout(source: &VolumeSource) -> Layout<'_> {
    match source {
        VolumeSource::Secret { items, .. } if items.is_empty() => Layout::AllKeys,
        VolumeSource::Secret { items, .. } => Layout::Items(
            items
                .iter()
                .map(|i| (i.key.as_str(), i.path.as_str()))
                .collect(),
        ),
        _ => Layout::NotSecret,
    }
}
