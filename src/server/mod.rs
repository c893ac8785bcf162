//! The HTTP surface: a public [`router`] (tests drive it with `oneshot`, no sockets) and the TLS
//! listener in [`serve`]. Handlers are thin: decode, call the engine, encode, log.

mod error;
pub mod serve;
pub mod tls;

pub use error::ApiError;

use crate::admission;
use crate::plan::Plan;
use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tower_http::catch_panic::CatchPanicLayer;

/// The apiserver sends review bodies up to 3 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Shared state: the current plan (swapped whole on reload) and readiness.
#[derive(Clone)]
pub struct AppState {
    pub plan: Arc<ArcSwap<Plan>>,
    pub ready: Arc<AtomicBool>,
    pub body_limit: usize,
}

impl AppState {
    pub fn new(plan: Plan) -> Self {
        AppState {
            plan: Arc::new(ArcSwap::from_pointee(plan)),
            ready: Arc::new(AtomicBool::new(true)),
            body_limit: DEFAULT_BODY_LIMIT,
        }
    }
}

/// All routes, with the guards of [`with_guards`] applied.
pub fn router(state: AppState) -> Router {
    let limit = state.body_limit;
    let routes = Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state);
    with_guards(routes, limit)
}

/// The body limit (413 past it) and panic → 500 (never a dead connection), shared by every
/// router this crate serves.
pub fn with_guards(routes: Router, body_limit: usize) -> Router {
    routes
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("the handler panicked; the request was not processed".into())
                .into_response()
        }))
}

async fn mutate(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge {
            limit: state.body_limit,
        },
        _ => ApiError::BadRequest(e.body_text()),
    })?;
    let plan = state.plan.load();
    let (review, outcome, bytes) = admission::review(&body, &plan).map_err(|e| {
        tracing::warn!(error = %e, "rejected a malformed AdmissionReview");
        ApiError::BadRequest(e.to_string())
    })?;
    tracing::info!(
        uid = %review.uid,
        namespace = %review.facts().namespace,
        pod = %review.pod_name(),
        operation = %review.operation,
        dry_run = review.dry_run,
        api_version = review.api_version.label(),
        store = %plan.store_name,
        decision = outcome.decision.label(),
        reason = %match &outcome.decision {
            crate::Decision::Ignored(r) => r.as_str().to_string(),
            crate::Decision::Denied(m) => m.clone(),
            _ => String::new(),
        },
        warnings = ?outcome.warnings,
        patch_ops = outcome.patch.len(),
        duration_us = started.elapsed().as_micros() as u64,
        "admission decision"
    );
    Ok(([(header::CONTENT_TYPE, "application/json")], bytes).into_response())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        "ok".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready").into_response()
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
