//! What an operator asks a running process: `GET /readyz` (may a load balancer send it
//! traffic?) and `GET /metrics` (Prometheus text), plus the middleware that counts requests.
//!
//! Metrics use the `metrics` facade with `metrics-exporter-prometheus` (the pair the metrics-rs
//! project maintains; the exporter renders the text format and histograms itself). Each server
//! has its own recorder, used through `metrics::with_local_recorder`, not the process-global one:
//! several servers in one process (the tests) then count apart. Figures the service already keeps
//! (features per layer, tile cache, change log, pool, heavy jobs) are read when scraped.

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::Label;
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use serde_json::json;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::AppState;

/// Upper bounds (seconds) of the request-latency histogram's buckets.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Longest `/readyz` waits for the database before calling it unreachable.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// Histograms are drained into their buckets every this many requests (and at each scrape), so
/// an unscraped server does not keep every sample.
const UPKEEP_EVERY: u64 = 4096;

/// One server's metrics.
pub struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    requests: AtomicU64,
    /// Requests answered by the lean path ([`super::fast`]); also in the request counts.
    pub lean: AtomicU64,
    /// Of those, the ones the connection front wrote itself ([`super::front`]).
    pub front: AtomicU64,
    /// Connections the front handed to hyper.
    pub handed_over: AtomicU64,
    /// Connections open now (`--max-connections` bounds them).
    pub connections_open: AtomicU64,
    /// Connections the front closed because a request head did not arrive in time
    /// (`--header-timeout`).
    pub header_timeouts: AtomicU64,
    /// Connections closed because no byte moved: answers not read (front), or the idle timeout
    /// (hyper).
    pub idle_timeouts: AtomicU64,
    /// The counter and histogram of each route, method and status seen, so that a request
    /// neither builds labels nor looks them up in the recorder's registry.
    handles: parking_lot::RwLock<HashMap<String, Vec<RouteHandles>>>,
    /// The lean path's counter and histogram (a GET of the feature route answered 200), taken
    /// from `handles` once they are there.
    lean_handles: std::sync::OnceLock<(metrics::Counter, metrics::Histogram)>,
}

/// A route's counter and latency histogram for one method and status.
struct RouteHandles {
    method: axum::http::Method,
    status: u16,
    count: metrics::Counter,
    latency: metrics::Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_buckets_for_metric(
            Matcher::Full("yizhangtu_http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        ) {
            Ok(b) => b,
            // Only for an empty bucket list; a summary is then rendered instead.
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, describe);
        Metrics {
            recorder,
            handle,
            requests: AtomicU64::new(0),
            lean: AtomicU64::new(0),
            front: AtomicU64::new(0),
            handed_over: AtomicU64::new(0),
            connections_open: AtomicU64::new(0),
            header_timeouts: AtomicU64::new(0),
            idle_timeouts: AtomicU64::new(0),
            lean_handles: std::sync::OnceLock::new(),
            handles: Default::default(),
        }
    }

    /// Counts one answered request of `route` (the matched path template, e.g.
    /// `/collections/{collection}/items`) and records how long it took to its response head.
    pub fn request(&self, method: &axum::http::Method, route: &str, status: u16, seconds: f64) {
        use axum::http::Method;
        // Methods outside HTTP's own are one label: a client inventing methods must not grow
        // the metrics without bound.
        static OTHER: std::sync::LazyLock<Method> =
            std::sync::LazyLock::new(|| Method::from_bytes(b"OTHER").unwrap_or(Method::GET));
        let method = match *method {
            Method::GET
            | Method::HEAD
            | Method::POST
            | Method::PUT
            | Method::PATCH
            | Method::DELETE
            | Method::OPTIONS
            | Method::TRACE
            | Method::CONNECT => method,
            _ => &OTHER,
        };
        let recorded = self.handles.read().get(route).is_some_and(|seen| {
            seen.iter()
                .find(|h| h.status == status && h.method == method)
                .map(|h| {
                    h.count.increment(1);
                    h.latency.record(seconds);
                })
                .is_some()
        });
        if !recorded {
            let labels = vec![
                Label::new("method", method.to_string()),
                Label::new("route", route.to_string()),
                Label::new("status", status.to_string()),
            ];
            let (count, latency) = metrics::with_local_recorder(&self.recorder, || {
                (
                    metrics::counter!("yizhangtu_http_requests_total", labels.clone()),
                    metrics::histogram!("yizhangtu_http_request_duration_seconds", labels),
                )
            });
            count.increment(1);
            latency.record(seconds);
            self.handles
                .write()
                .entry(route.to_string())
                .or_default()
                .push(RouteHandles {
                    method: method.clone(),
                    status,
                    count,
                    latency,
                });
        }
        self.counted();
    }

    /// [`Metrics::request`] for the lean path's answers (`super::fast`), without looking their
    /// labels up each time.
    pub fn lean_request(&self, seconds: f64) {
        use axum::http::Method;
        if let Some((count, latency)) = self.lean_handles.get() {
            count.increment(1);
            latency.record(seconds);
            self.counted();
            return;
        }
        self.request(&Method::GET, super::fast::FEATURE_ROUTE, 200, seconds);
        let handles = self.handles.read();
        let seen = handles.get(super::fast::FEATURE_ROUTE).and_then(|seen| {
            seen.iter()
                .find(|h| h.status == 200 && h.method == Method::GET)
        });
        if let Some(h) = seen {
            let _ = self.lean_handles.set((h.count.clone(), h.latency.clone()));
        }
    }

    /// One more request; every [`UPKEEP_EVERY`] the histograms' samples are folded in.
    fn counted(&self) {
        if self.requests.fetch_add(1, Ordering::Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    fn render(&self, state: &AppState, database: Option<i64>) -> String {
        metrics::with_local_recorder(&self.recorder, || sample(state, database));
        self.handle.run_upkeep();
        self.handle.render()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "yizhangtu_http_requests_total",
        "Requests answered, by method, matched route and status"
    );
    describe_histogram!(
        "yizhangtu_http_request_duration_seconds",
        Unit::Seconds,
        "Time to the response head, by method, matched route and status"
    );
    describe_counter!(
        "yizhangtu_http_lean_answers_total",
        "Plain feature requests answered by the lean path in front of the router (also counted \
         in yizhangtu_http_requests_total)"
    );
    describe_counter!(
        "yizhangtu_http_front_answers_total",
        "Lean answers the connection front wrote itself, without hyper (also counted in \
         yizhangtu_http_lean_answers_total)"
    );
    describe_counter!(
        "yizhangtu_http_front_handovers_total",
        "Connections the connection front handed to hyper at their first request it does not \
         answer itself"
    );
    describe_counter!(
        "yizhangtu_http_header_timeouts_total",
        "Connections closed because no whole request head arrived within --header-timeout of \
         their opening or their last answer (idle keep-alive connections included)"
    );
    describe_counter!(
        "yizhangtu_http_idle_timeouts_total",
        "Connections closed because no byte moved: a client that reads no answer for \
         --header-timeout, or a connection served by hyper idle for --header-timeout and \
         --request-timeout together (HTTP/2 left open)"
    );
    describe_gauge!("yizhangtu_http_connections_open", "Connections open now");
    describe_gauge!(
        "yizhangtu_http_connections_max",
        "Connections that may be open at once (--max-connections); past it none are accepted \
         until one closes"
    );
    describe_gauge!(
        "yizhangtu_layer_features",
        "Features per layer in the engine"
    );
    describe_gauge!(
        "yizhangtu_layer_revision",
        "Revision of each layer in the engine"
    );
    describe_counter!(
        "yizhangtu_tile_cache_hits_total",
        "Tiles answered from the cache"
    );
    describe_counter!(
        "yizhangtu_tile_cache_misses_total",
        "Tiles that had to be built"
    );
    describe_gauge!("yizhangtu_tile_cache_bytes", "Bytes held by the tile cache");
    describe_gauge!(
        "yizhangtu_tile_cache_max_bytes",
        "Most bytes the tile cache holds"
    );
    describe_gauge!("yizhangtu_tile_cache_tiles", "Tiles held by the tile cache");
    describe_gauge!(
        "yizhangtu_changelog_applied",
        "Newest change-log sequence number the engine reflects"
    );
    describe_gauge!(
        "yizhangtu_changelog_database",
        "Newest change-log sequence number in the database (absent when it cannot be read)"
    );
    describe_gauge!(
        "yizhangtu_changelog_lag",
        "Change-log entries in the database not yet applied to the engine"
    );
    describe_gauge!("yizhangtu_db_pool_connections", "Database connections open");
    describe_gauge!(
        "yizhangtu_db_pool_idle",
        "Database connections open and idle"
    );
    describe_gauge!(
        "yizhangtu_db_pool_max",
        "Most database connections the pool opens"
    );
    describe_counter!(
        "yizhangtu_engine_changes_applied_total",
        "Change-log entries applied to the engine"
    );
    describe_counter!(
        "yizhangtu_engine_layer_reloads_total",
        "Layers rebuilt whole from the database while following the change log"
    );
    describe_counter!(
        "yizhangtu_engine_layer_updates_total",
        "Layers changed feature by feature while following the change log"
    );
    describe_counter!(
        "yizhangtu_engine_follow_errors_total",
        "Times the change log could not be read"
    );
    describe_gauge!(
        "yizhangtu_heavy_slots",
        "Heavy requests that may run at once"
    );
    describe_gauge!("yizhangtu_heavy_running", "Heavy requests running");
    describe_gauge!(
        "yizhangtu_heavy_queued",
        "Heavy requests waiting for a slot"
    );
    describe_counter!(
        "yizhangtu_heavy_completed_total",
        "Heavy requests completed"
    );
    describe_counter!(
        "yizhangtu_heavy_cancelled_total",
        "Heavy requests stopped because the client went away"
    );
    describe_counter!(
        "yizhangtu_heavy_timed_out_total",
        "Heavy requests answered 503 at the deadline"
    );
    describe_counter!(
        "yizhangtu_heavy_rejected_total",
        "Heavy requests answered 503 because the queue was full"
    );
}

/// Sets the gauges and counters that mirror what the service keeps anyway.
fn sample(state: &AppState, database: Option<i64>) {
    use metrics::{counter, gauge};
    for idx in state.app.engine.layers() {
        let idx = idx.read();
        let id = idx.layer.id.clone();
        gauge!("yizhangtu_layer_features", "layer" => id.clone()).set(idx.len() as f64);
        gauge!("yizhangtu_layer_revision", "layer" => id).set(idx.revision as f64);
    }
    counter!("yizhangtu_http_lean_answers_total")
        .absolute(state.metrics.lean.load(Ordering::Relaxed));
    counter!("yizhangtu_http_front_answers_total")
        .absolute(state.metrics.front.load(Ordering::Relaxed));
    counter!("yizhangtu_http_front_handovers_total")
        .absolute(state.metrics.handed_over.load(Ordering::Relaxed));
    counter!("yizhangtu_http_header_timeouts_total")
        .absolute(state.metrics.header_timeouts.load(Ordering::Relaxed));
    counter!("yizhangtu_http_idle_timeouts_total")
        .absolute(state.metrics.idle_timeouts.load(Ordering::Relaxed));
    gauge!("yizhangtu_http_connections_open")
        .set(state.metrics.connections_open.load(Ordering::Relaxed) as f64);
    gauge!("yizhangtu_http_connections_max").set(state.settings.max_connections as f64);
    let tiles = &state.tiles;
    counter!("yizhangtu_tile_cache_hits_total").absolute(tiles.hits.load(Ordering::Relaxed));
    counter!("yizhangtu_tile_cache_misses_total").absolute(tiles.misses.load(Ordering::Relaxed));
    gauge!("yizhangtu_tile_cache_bytes").set(tiles.bytes() as f64);
    gauge!("yizhangtu_tile_cache_max_bytes").set(tiles.max_bytes() as f64);
    gauge!("yizhangtu_tile_cache_tiles").set(tiles.len() as f64);
    let applied = state.app.applied_change();
    gauge!("yizhangtu_changelog_applied").set(applied as f64);
    if let Some(db) = database {
        gauge!("yizhangtu_changelog_database").set(db as f64);
        gauge!("yizhangtu_changelog_lag").set((db - applied).max(0) as f64);
    }
    let (open, idle, max) = state.app.store.pool_status();
    gauge!("yizhangtu_db_pool_connections").set(open as f64);
    gauge!("yizhangtu_db_pool_idle").set(idle as f64);
    gauge!("yizhangtu_db_pool_max").set(max as f64);
    let follow = &state.app.follow_stats;
    let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
    counter!("yizhangtu_engine_changes_applied_total").absolute(load(&follow.changes_applied));
    counter!("yizhangtu_engine_layer_reloads_total").absolute(load(&follow.layer_reloads));
    counter!("yizhangtu_engine_layer_updates_total").absolute(load(&follow.layer_updates));
    counter!("yizhangtu_engine_follow_errors_total").absolute(load(&follow.errors));
    let heavy = &state.heavy.stats;
    gauge!("yizhangtu_heavy_slots").set(state.heavy.jobs as f64);
    gauge!("yizhangtu_heavy_running").set(heavy.running.load(Ordering::Relaxed) as f64);
    gauge!("yizhangtu_heavy_queued").set(heavy.queued.load(Ordering::Relaxed) as f64);
    counter!("yizhangtu_heavy_completed_total").absolute(load(&heavy.completed));
    counter!("yizhangtu_heavy_cancelled_total").absolute(load(&heavy.cancelled));
    counter!("yizhangtu_heavy_timed_out_total").absolute(load(&heavy.timed_out));
    counter!("yizhangtu_heavy_rejected_total").absolute(load(&heavy.rejected));
}

/// Counts every request routed to a handler (or to the fallback, as route `unmatched`).
pub async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    let method = req.method().clone();
    let started = Instant::now();
    let r = next.run(req).await;
    answered(&state, &method, route, r.status().as_u16(), started);
    r
}

/// Counts and logs (`yizhangtu::access`) one answered request; also the lean path's.
pub(super) fn answered(
    state: &AppState,
    method: &axum::http::Method,
    route: &str,
    status: u16,
    started: Instant,
) {
    let seconds = started.elapsed().as_secs_f64();
    state.metrics.request(method, route, status, seconds);
    tracing::info!(
        target: "yizhangtu::access",
        status,
        route = %route,
        ms = rounded_ms(seconds),
        "answered"
    );
}

/// The access log's `ms`: milliseconds to a tenth.
pub(super) fn rounded_ms(seconds: f64) -> f64 {
    (seconds * 1e4).round() / 10.0
}

/// The newest change in the database, or why it could not be read.
async fn database_position(state: &AppState) -> Result<i64, String> {
    match tokio::time::timeout(DATABASE_TIMEOUT, state.app.store.last_change()).await {
        Ok(Ok(n)) => Ok(n),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            DATABASE_TIMEOUT.as_secs_f64()
        )),
    }
}

fn no_store(mut r: Response) -> Response {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// `GET /readyz`: 200 when the engine is loaded, the database answers and the engine is no more
/// than `--ready-max-lag` change-log entries behind it; else 503 naming what is not ready.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let layers = state.app.engine.layers();
    let features: usize = layers.iter().map(|l| l.read().len()).sum();
    let applied = state.app.applied_change();
    let max_lag = state.settings.ready_max_lag;
    let mut not_ready: Vec<&str> = Vec::new();
    let database = database_position(&state).await;
    let database_doc = match &database {
        Ok(n) => json!({"ok": true, "last_change": n}),
        Err(e) => {
            not_ready.push("database");
            json!({"ok": false, "error": e})
        }
    };
    let changelog_doc = match &database {
        Ok(n) => {
            let lag = (n - applied).max(0) as u64;
            if lag > max_lag {
                not_ready.push("changelog");
            }
            json!({"ok": lag <= max_lag, "applied": applied, "database": n, "lag": lag, "max_lag": max_lag})
        }
        Err(_) => {
            not_ready.push("changelog");
            json!({"ok": false, "applied": applied, "database": null, "lag": null, "max_lag": max_lag,
                   "error": "the database's position is unknown"})
        }
    };
    let mut doc = json!({
        "status": if not_ready.is_empty() { "ready" } else { "not ready" },
        "checks": {
            "engine": {"ok": true, "layers": layers.len(), "features": features},
            "database": database_doc,
            "changelog": changelog_doc,
        },
    });
    let status = if not_ready.is_empty() {
        StatusCode::OK
    } else {
        doc["code"] = json!("NotReady");
        doc["description"] = json!(format!("not ready: {}", not_ready.join(", ")));
        doc["not_ready"] = json!(not_ready);
        StatusCode::SERVICE_UNAVAILABLE
    };
    no_store(
        (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            doc.to_string(),
        )
            .into_response(),
    )
}

/// The Prometheus text format's media type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let database = database_position(&state).await.ok();
    let body = state.metrics.render(&state, database);
    no_store(([(header::CONTENT_TYPE, PROMETHEUS_TEXT)], body).into_response())
}

/// The OpenAPI path items of `/readyz` and `/metrics`.
pub fn openapi_paths() -> serde_json::Value {
    let readiness = json!({"type": "object", "required": ["status", "checks"],
        "properties": {"status": {"type": "string", "enum": ["ready", "not ready"]}, "checks": {"type": "object"},
                       "not_ready": {"type": "array", "items": {"type": "string", "enum": ["database", "changelog"]}},
                       "code": {"type": "string"}, "description": {"type": "string"}}});
    json!({
        "/readyz": {"get": {"summary": "Readiness: engine loaded, database reachable, change-log lag within --ready-max-lag", "operationId": "getReady",
            "responses": {
                "200": {"description": "ready", "content": {"application/json": {"schema": readiness.clone()}}},
                "503": {"description": "not ready; `not_ready` names the failing checks (database, changelog)", "content": {"application/json": {"schema": readiness}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics (text format 0.0.4): requests and latency per route and status, features per layer, tile cache, change-log position and lag, database pool, engine reloads, heavy-request pool", "operationId": "getMetrics",
            "responses": {"200": {"description": "metrics", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    })
}
