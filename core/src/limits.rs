//! What one pod may carry. Mutating admission runs before validation, so anything a tenant may
//! create reaches the webhook, however large; these bounds keep the work and memory of one
//! request small whatever it holds. A real Polyaxon run pod (about 8 containers and a few
//! hundred list entries) is far from all of them.

/// Bounds on one pod, checked where the pod is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodLimits {
    /// Containers and init containers together: the patch grows with them, so this bounds the
    /// response.
    pub containers: usize,
    /// Entries the reader builds, all lists and maps together (containers, volumes, mounts,
    /// env, envFrom, secret items, labels, annotations): bounds the decoded pod's memory.
    pub entries: usize,
    /// JSON values in a body the one-pass reader cannot take (the serde fallback builds them).
    pub values: usize,
}

impl PodLimits {
    pub const DEFAULT: PodLimits = PodLimits {
        containers: 128,
        entries: 16_384,
        values: 65_536,
    };
}

impl Default for PodLimits {
    fn default() -> Self {
        PodLimits::DEFAULT
    }
}

/// An upper bound on the values in a JSON text — the objects and arrays it opens and the commas
/// outside strings — in one byte loop, so a body can be refused before a reader builds it.
pub fn count_values(text: &str) -> usize {
    let mut count = 0;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text.as_bytes() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else {
            match b {
                b'"' => in_string = true,
                b'{' | b'[' | b',' => count += 1,
                _ => {}
            }
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings_only() {
        assert_eq!(count_values(r#"{"a": [1, 2, 3], "b": "x,{[\",y"}"#), 5);
        assert_eq!(count_values("[]"), 1);
        assert_eq!(count_values(r#""\\",""#), 1);
    }
}
