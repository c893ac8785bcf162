//! Readiness: ready only once a valid certificate and config are loaded, and not while draining.
//! The last reload error of each is kept for `/readyz` to show.

use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
struct Component {
    loaded: bool,
    last_error: Option<String>,
}

#[derive(Debug, Default)]
pub struct Health {
    cert: Mutex<Component>,
    config: Mutex<Component>,
    draining: AtomicBool,
}

fn set(c: &Mutex<Component>, result: Result<(), String>) {
    if let Ok(mut c) = c.lock() {
        match result {
            Ok(()) => {
                c.loaded = true;
                c.last_error = None;
            }
            Err(e) => c.last_error = Some(e),
        }
    }
}

fn describe(c: &Mutex<Component>) -> (bool, serde_json::Value) {
    match c.lock() {
        Ok(c) => (
            c.loaded,
            json!({"loaded": c.loaded, "lastError": c.last_error}),
        ),
        Err(_) => (false, json!({"loaded": false})),
    }
}

impl Health {
    /// Health with both parts already loaded (tests, and servers built from memory).
    pub fn loaded() -> Self {
        let h = Health::default();
        h.cert_result(Ok(()));
        h.config_result(Ok(()));
        h
    }

    /// Record a certificate load: success marks it loaded; a failure is kept as the last error.
    pub fn cert_result(&self, r: Result<(), String>) {
        set(&self.cert, r);
    }

    pub fn config_result(&self, r: Result<(), String>) {
        set(&self.config, r);
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Ready, and the detail for `/readyz`.
    pub fn readiness(&self) -> (bool, serde_json::Value) {
        let (cert_ok, cert) = describe(&self.cert);
        let (config_ok, config) = describe(&self.config);
        let draining = self.draining();
        let ready = cert_ok && config_ok && !draining;
        (
            ready,
            json!({"ready": ready, "draining": draining, "cert": cert, "config": config}),
        )
    }
}
