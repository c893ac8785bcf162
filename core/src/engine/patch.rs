//! Building RFC 6902 `add` operations that apply the way Go's evanphx/json-patch applies them:
//! pointers escaped token by token, a missing array created once with a one-element `add`, and
//! later appends decided from the evolving document rather than the original.

use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation};
use serde_json::Value;

/// Accumulates minimal `add` operations.
#[derive(Debug, Default)]
pub struct PatchBuilder {
    ops: Vec<PatchOperation>,
    /// Arrays created in the current scope (see [`PatchBuilder::next_scope`]).
    created: Vec<PointerBuf>,
}

/// A JSON pointer from unescaped tokens (`/` → `~1`, `~` → `~0` done here, never by hand).
pub fn pointer<'t, I, T>(tokens: I) -> PointerBuf
where
    I: IntoIterator<Item = T>,
    T: Into<json_patch::jsonptr::Token<'t>>,
{
    PointerBuf::from_tokens(tokens)
}

impl PatchBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append `value` to the array at `array`. `exists` says whether the original document has an
    /// array there (absent or `null` count as missing): then the append uses `/-`, otherwise the
    /// first append creates the array and later ones append to it.
    pub fn append(&mut self, array: PointerBuf, exists: bool, value: Value) {
        if exists || self.created.contains(&array) {
            let mut path = array;
            path.push_back("-");
            self.add(path, value);
        } else {
            self.created.push(array.clone());
            self.add(array, Value::Array(vec![value]));
        }
    }

    /// Start appending to other arrays (the next container's): the ones created so far are not
    /// appended to again, so they are forgotten. Keeps the lookup in [`PatchBuilder::append`] to
    /// one container's few arrays; a pod with N containers would otherwise make it quadratic.
    pub fn next_scope(&mut self) {
        self.created.clear();
    }

    /// Set an object member (RFC 6902 `add` replaces an existing member).
    pub fn add(&mut self, path: PointerBuf, value: Value) {
        self.ops
            .push(PatchOperation::Add(AddOperation { path, value }));
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn finish(self) -> Vec<PatchOperation> {
        self.ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn escapes_and_creates_then_appends() {
        let mut doc =
            json!({"metadata": {"annotations": {}}, "spec": {"containers": [{"name": "a"}]}});
        let mut b = PatchBuilder::new();
        let env = pointer(["spec", "containers", "0", "env"]);
        b.append(env.clone(), false, json!({"name": "A"}));
        b.append(env, false, json!({"name": "B"}));
        b.add(pointer(["metadata", "annotations", "a.io/x~y"]), json!("v"));
        let ops = b.finish();
        let text = serde_json::to_string(&ops).unwrap();
        assert!(text.contains("/metadata/annotations/a.io~1x~0y"), "{text}");
        assert!(text.contains("/spec/containers/0/env/-"), "{text}");
        json_patch::patch(&mut doc, &ops).unwrap();
        assert_eq!(
            doc["spec"]["containers"][0]["env"],
            json!([{"name": "A"}, {"name": "B"}])
        );
        assert_eq!(doc["metadata"]["annotations"]["a.io/x~y"], json!("v"));
    }
}
