//! The HTTP surface: a public [`router`] (tests drive it with `oneshot`, no sockets), the plain
//! admin router for probes and metrics, and the listeners in [`run`]. Handlers are thin: decode,
//! call the engine, encode, count, log.

pub mod budget;
pub mod conn;
mod error;
pub mod health;
pub mod reload;
pub mod run;
pub mod serve;
pub mod tls;

pub use error::ApiError;
pub use health::Health;

use crate::admission::{self, Stage};
use crate::decision_log::{Decision, DecisionLog};
use crate::fleet::{report, Fleet};
use crate::metrics::Metrics;
use crate::plan::Plan;
use crate::references::References;
use arc_swap::ArcSwap;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, StatusCode, Uri, Version};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use budget::{BodyRate, Budget};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tower_http::catch_panic::CatchPanicLayer;

/// The apiserver sends review bodies up to 3 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 3 * 1024 * 1024;

/// Per-request protections.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    pub body_limit: usize,
    /// Whole request, body read included (a slow body cannot hold a slot forever).
    pub request_timeout: Duration,
    /// Requests served at once; past it, 503 at once rather than queueing.
    pub max_concurrent: usize,
    /// Bytes of bodies, work and unsent responses held at once ([`budget`]); past it, 503.
    pub memory_budget: usize,
    /// The slowest a request body may arrive.
    pub body_rate: BodyRate,
}

impl Guards {
    /// The defaults, in one place (the CLI's flags take theirs from here). The budget's share of
    /// the Deployment's 128 MiB is in README "Memory".
    pub const DEFAULT: Guards = Guards {
        body_limit: DEFAULT_BODY_LIMIT,
        request_timeout: Duration::from_secs(10),
        max_concurrent: 512,
        memory_budget: 32 * 1024 * 1024,
        body_rate: BodyRate::DEFAULT,
    };
}

/// Reviews with bodies up to this size are decided on the runtime's worker (a real run pod's
/// review is 5–15 KB, decided in tens of microseconds); larger ones on the blocking pool, so a
/// huge pod never stalls the probes, the metrics or other reviews.
pub const INLINE_BODY_MAX: usize = 64 * 1024;

impl Default for Guards {
    fn default() -> Self {
        Guards::DEFAULT
    }
}

/// Shared state: the current plan (swapped whole on reload), health, metrics.
#[derive(Clone)]
pub struct AppState {
    pub plan: Arc<ArcSwap<Plan>>,
    pub health: Arc<Health>,
    pub metrics: Arc<Metrics>,
    pub guards: Guards,
    pub budget: Budget,
    /// Where each review's decision line goes.
    pub decision_log: DecisionLog,
    /// Large reviews decided at once on the blocking pool (one per core): the rest wait, within
    /// their request timeout.
    pub heavy: Arc<Semaphore>,
    /// The fleet view (`--fleet`), and the signal that the plan changed (its watches follow).
    pub fleet: Option<Arc<Fleet>>,
    pub plan_changed: Arc<tokio::sync::Notify>,
}

impl AppState {
    pub fn new(plan: Plan) -> Self {
        Self::with_guards(plan, Guards::default())
    }

    pub fn with_guards(plan: Plan, guards: Guards) -> Self {
        let metrics = Metrics::new();
        metrics.set_config(&plan.config_hash, plan.store_name());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        AppState {
            plan: Arc::new(ArcSwap::from_pointee(plan)),
            health: Arc::new(Health::loaded()),
            metrics: Arc::new(metrics),
            guards,
            budget: Budget::new(guards.memory_budget),
            decision_log: DecisionLog::tracing(),
            heavy: Arc::new(Semaphore::new(cores)),
            fleet: None,
            plan_changed: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

/// The TLS port's routes, with every guard applied.
pub fn router(state: AppState) -> Router {
    let guards = state.guards;
    let routes = Router::new()
        .route("/mutate", post(mutate).fallback(method_not_allowed))
        .route("/validate", post(validate).fallback(method_not_allowed))
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(
            Gate {
                slots: Arc::new(Semaphore::new(guards.max_concurrent.max(1))),
                health: state.health.clone(),
            },
            admit,
        ))
        .with_state(state);
    with_guards(routes, guards)
}

/// The admin port's routes (plain HTTP): probes and metrics, no admission.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(method_not_allowed))
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .route("/metrics", get(metrics).fallback(method_not_allowed))
        .route("/fleet", get(fleet_report).fallback(method_not_allowed))
        .fallback(not_found)
        .with_state(state)
}

/// Body limit (413 past it), whole-request timeout (408) and panic → 500 (never a dead
/// connection), shared by every router this crate serves. Every error body is JSON, and on
/// HTTP/1.1 the answers that may leave part of a request unread (408, 413, 503) also say
/// `Connection: close` (the connection then closes the lingering way: `conn`).
pub fn with_guards(routes: Router, guards: Guards) -> Router {
    routes
        .layer(DefaultBodyLimit::max(guards.body_limit))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("the handler panicked; the request was not processed".into())
                .into_response()
        }))
        .layer(middleware::from_fn_with_state(
            guards.request_timeout,
            bound_time,
        ))
}

/// The whole request, body read included, within `limit`, else a JSON 408; and
/// `Connection: close` on HTTP/1.1 answers after which the client may still be sending. One
/// middleware, not two: each `from_fn` layer clones and boxes the inner service per request.
async fn bound_time(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let http1 = req.version() <= Version::HTTP_11;
    let mut resp = match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::Timeout {
            seconds: limit.as_secs(),
        }
        .into_response(),
    };
    let refused = matches!(
        resp.status(),
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::SERVICE_UNAVAILABLE
    );
    if http1 && refused {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

async fn mutate(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    review(state, req, Stage::Mutate).await
}

/// The enforcing webhook (a ValidatingWebhookConfiguration, `manifests/enforce`).
async fn validate(State(state): State<AppState>, req: Request) -> Result<Response, ApiError> {
    review(state, req, Stage::Validate).await
}

async fn review(state: AppState, mut req: Request, stage: Stage) -> Result<Response, ApiError> {
    let started = Instant::now();
    let fail = |e: ApiError| {
        state.metrics.observe_error(started.elapsed().as_secs_f64());
        e
    };
    let slot = req.extensions_mut().remove::<Slot>();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let guards = state.guards;
    let (body, charge) = budget::read(
        req.into_body(),
        declared,
        guards.body_limit,
        &state.budget,
        guards.body_rate,
    )
    .await
    .map_err(fail)?;
    let inline = body.len() <= INLINE_BODY_MAX;
    let plan = state.plan.load_full();
    let metrics = state.metrics.clone();
    let log = state.decision_log.clone();
    let fleet = state.fleet.clone();
    let budget = state.budget.clone();
    let work = move || {
        let refs = fleet.as_deref().map(|f| f as &dyn References);
        let mut charge = charge;
        let answer = answer(
            &body,
            &plan,
            stage,
            refs,
            (&budget, &mut charge),
            &metrics,
            &log,
            started,
        );
        (answer, charge)
    };
    let (answer, mut charge) = if inline {
        work()
    } else {
        // Bounded: at most one large review per core at once; if the request times out while
        // it runs, the work finishes on its thread and its charge is given back then.
        let Ok(turn) = state.heavy.clone().acquire_owned().await else {
            return Err(fail(ApiError::Internal("the engine pool is closed".into())));
        };
        tokio::task::spawn_blocking(move || {
            let _turn = turn;
            let done = work();
            crate::allocator::release_free_memory();
            done
        })
        .await
        .map_err(|e| fail(ApiError::Internal(format!("the engine failed: {e}"))))?
    };
    let bytes = answer.map_err(fail)?;
    // Keep what the response needs of the charge until it is sent; give back the rest now.
    let need = bytes.len();
    if need > charge.num_permits() {
        let more = state
            .budget
            .try_take(need - charge.num_permits())
            .ok_or_else(|| fail(ApiError::MemoryBudget))?;
        charge.merge(more);
    } else if let Some(rest) = charge.split(charge.num_permits() - need.max(1)) {
        drop(rest);
    }
    let body = budget::HeldBody::new(Bytes::from(bytes), (charge, slot)).into_body();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Decode, decide, count, log and encode one review: the synchronous part of `POST /mutate`.
/// The request's charge grows by the patch's share once its containers are counted.
#[allow(clippy::too_many_arguments)]
fn answer(
    body: &[u8],
    plan: &Plan,
    stage: Stage,
    refs: Option<&dyn References>,
    (budget, charge): (&Budget, &mut budget::Charge),
    metrics: &Metrics,
    log: &DecisionLog,
    started: Instant,
) -> Result<Vec<u8>, ApiError> {
    let review = admission::Review::parse_with(body, &plan.limits).map_err(|e| {
        tracing::warn!(error = %e, "rejected a malformed AdmissionReview");
        ApiError::BadRequest(e.to_string())
    })?;
    let within = matches!(review.object, plx_store_core::engine::Decoded::Pod(_));
    let produced = budget::produced_reserve(body.len(), review.object.containers(), within);
    if produced > 0 {
        charge.merge(budget.try_take(produced).ok_or(ApiError::MemoryBudget)?);
    }
    let (outcome, bytes) = admission::answer(&review, plan, stage, refs);
    let elapsed = started.elapsed();
    match stage {
        Stage::Mutate => {
            metrics.observe(&outcome, review.api_version.label(), elapsed.as_secs_f64())
        }
        Stage::Validate => metrics.observe_validation(&outcome),
    }
    log.write(&Decision::of(
        &review,
        &outcome,
        &plan.config_hash,
        elapsed.as_micros() as u64,
    ));
    // An answer that cannot be encoded is a 500 with a message, never an empty 200.
    bytes.map_err(|e| ApiError::Internal(e.to_string()))
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<AppState>) -> Response {
    let (ready, detail) = state.health.readiness();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(detail)).into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let (ready, _) = state.health.readiness();
    state.metrics.ready.set(i64::from(ready));
    if let (Some(fleet), true) = (state.fleet.clone(), state.metrics.fleet.is_some()) {
        // Classifying every live run pod takes the view's lock for a few milliseconds with
        // thousands of pods: on the blocking pool, not on a runtime worker that serves reviews.
        let plan = state.plan.load_full();
        if let Ok(r) =
            tokio::task::spawn_blocking(move || report::build(&fleet.read(), &plan, false)).await
        {
            if let Some(gauges) = &state.metrics.fleet {
                report::set_gauges(gauges, &r);
            }
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
        .into_response()
}

/// `GET /fleet` (admin port): every live run pod and missing object, as JSON.
async fn fleet_report(State(state): State<AppState>) -> Response {
    let Some(fleet) = &state.fleet else {
        return ApiError::NotFound("/fleet (the fleet view is off: start with --fleet)".into())
            .into_response();
    };
    let (fleet, plan) = (fleet.clone(), state.plan.load_full());
    // On the blocking pool (a row per live run pod, under the view's lock), whose thread then
    // gives the rows' memory back (rare requests: humans and scripts).
    let body = tokio::task::spawn_blocking(move || {
        let body = serde_json::to_vec(&report::build(&fleet.read(), &plan, true));
        crate::allocator::release_free_memory();
        body
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|b| b.map_err(|e| e.to_string()));
    match body {
        Ok(b) => ([(header::CONTENT_TYPE, "application/json")], b).into_response(),
        Err(e) => ApiError::Internal(e).into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_string())
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// The TLS port's admission gate: request slots and drain state.
#[derive(Clone)]
struct Gate {
    slots: Arc<Semaphore>,
    health: Arc<Health>,
}

/// A request slot, handed to the handler so a response can keep it until it is sent.
#[derive(Clone)]
struct Slot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// At most N requests at once, past it a clear 503 instead of an unbounded queue; while
/// draining, ask HTTP/1.1 clients to close (the apiserver pools keep-alive connections and would
/// otherwise keep reusing them until the listener goes away).
async fn admit(State(gate): State<Gate>, mut req: Request, next: Next) -> Response {
    let Ok(permit) = gate.slots.clone().try_acquire_owned() else {
        return ApiError::Overloaded.into_response();
    };
    let http1 = req.version() <= Version::HTTP_11;
    req.extensions_mut().insert(Slot(Arc::new(permit)));
    let mut resp = next.run(req).await;
    if http1 && gate.health.draining() {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}
