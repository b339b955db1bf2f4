//! The HTTP face: axum routers, one module per resource, one error type.
//! Handlers are thin: parse parameters, ask the engine, encode.

mod areas;
mod audit;
pub mod auth;
mod compare;
mod edit;
pub mod error;
mod export;
pub mod fast;
mod front;
pub mod heavy;
mod html;
mod limits;
mod monitoring;
mod ogc;
mod openapi;
pub mod ops;
mod params;
mod plans;
pub mod query;
mod tiles;
pub mod view;
pub mod viewer;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::config::HttpSettings;
use error::ApiError;

pub use query::{DEFAULT_LIMIT, MAX_LIMIT};

/// What every handler can reach: one shared [`Shared`], so that the copies axum makes for each
/// request and middleware cost one reference count.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of [`AppState`].
pub struct Shared {
    pub app: Arc<App>,
    pub settings: Arc<HttpSettings>,
    pub tiles: Arc<tiles::TileCache>,
    /// Slots, queue and deadline for heavy requests.
    pub heavy: Arc<heavy::Heavy>,
    /// Verified tokens and failed sign-ins.
    pub auth: Arc<auth::AuthState>,
    /// Request counts and latencies for `/metrics`.
    pub metrics: Arc<ops::Metrics>,
    /// Layers rebuilt for `asof`/`plan` answers, kept for the next request.
    pub snapshots: Arc<view::Snapshots>,
}

impl AppState {
    pub fn new(app: Arc<App>, settings: HttpSettings) -> AppState {
        let tiles = Arc::new(tiles::TileCache::new(settings.tile_cache_bytes));
        let heavy = Arc::new(heavy::Heavy::new(
            settings.heavy_jobs,
            settings.heavy_queue,
            settings.request_timeout,
        ));
        AppState(Arc::new(Shared {
            app,
            settings: Arc::new(settings),
            tiles,
            heavy,
            auth: Arc::default(),
            metrics: Arc::default(),
            snapshots: Arc::default(),
        }))
    }
}

/// Longest request target we read (hyper itself refuses 64 KiB and more: `limits` makes that
/// answer the same JSON problem).
pub const MAX_URI_BYTES: usize = 32 * 1024;
/// Most bytes of request headers we read (hyper itself stops at its read buffer, ~400 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields we read: hyper's own limit for HTTP/1, ours for HTTP/2.
pub const MAX_HEADER_FIELDS: usize = 100;

/// `GET /healthz`: cheap, never queued behind heavy work; says what the heavy pool is doing.
async fn healthz(State(state): State<AppState>) -> Response {
    let doc = serde_json::json!({
        "status": "ok",
        "heavy": {
            "slots": state.heavy.jobs,
            "request_timeout_s": state.heavy.timeout.as_secs_f64(),
            "jobs": state.heavy.stats.to_json(),
        },
    });
    let mut r = (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 414 and 431 as JSON for request targets and headers over our limits.
async fn request_limits(req: Request, next: Next) -> Response {
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "UriTooLong",
            format!("the request target has {uri_len} bytes; at most {MAX_URI_BYTES} are read"),
        )
        .with_details(serde_json::json!({"limit": "uri-bytes", "max": MAX_URI_BYTES}))
        .into_response();
    }
    let fields = req.headers().len();
    if fields > MAX_HEADER_FIELDS {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HeadersTooLarge",
            format!("the request has {fields} header fields; at most {MAX_HEADER_FIELDS} are read"),
        )
        .with_details(serde_json::json!({"limit": "header-count", "max": MAX_HEADER_FIELDS}))
        .into_response();
    }
    let header_len: usize = req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if header_len > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "HeadersTooLarge",
            format!(
                "the request headers have {header_len} bytes; at most {MAX_HEADER_BYTES} are read"
            ),
        )
        .with_details(serde_json::json!({"limit": "header-bytes", "max": MAX_HEADER_BYTES}))
        .into_response();
    }
    next.run(req).await
}

/// Limit answers made by axum or tower (413 from the body limits, …) become the JSON problem.
///
/// A 413 may be answered before the body has been read; the connection then cannot carry another
/// request, so the answer says `Connection: close` and a client does not put it back in its pool
/// (without it, the client's next request on that connection fails with an incomplete message).
async fn json_limit_errors(State(max_body): State<usize>, r: Response) -> Response {
    let status = r.status();
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let mut r = match status {
        _ if is_json => r,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::body_too_large(max_body).into_response(),
        StatusCode::URI_TOO_LONG => {
            ApiError::new(status, "UriTooLong", "the request target is too long").into_response()
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            status,
            "HeadersTooLarge",
            "the request headers are too large",
        )
        .into_response(),
        _ => r,
    };
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// X-Forwarded-Host/-Proto reach the handlers only with `--trust-forwarded-headers`; then the
/// answers depend on them, and `Vary` says so.
async fn forwarded_headers(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    if !state.settings.trust_forwarded_headers {
        let h = req.headers_mut();
        h.remove("x-forwarded-host");
        h.remove("x-forwarded-proto");
        return next.run(req).await;
    }
    let mut r = next.run(req).await;
    r.headers_mut()
        .append(header::VARY, HeaderValue::from_static(FORWARDED_VARY));
    r
}

/// The `Vary` of every answer of a server that trusts forwarded headers.
const FORWARDED_VARY: &str = "X-Forwarded-Host, X-Forwarded-Proto";

/// The span of one request: its id (`x-request-id`, the client's or a new UUID), method and path.
fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    span_of(id, req.method(), req.uri().path())
}

/// The `request` span every log line of a request is in (also the lean path's, `fast.rs`).
fn span_of(request_id: &str, method: &Method, path: &str) -> tracing::Span {
    tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %path,
    )
}

/// The headers a script on another origin may read (CORS); the lean path sends the same.
const EXPOSED_HEADERS: [header::HeaderName; 4] = [
    header::ETAG,
    header::LOCATION,
    header::HeaderName::from_static("content-crs"),
    header::HeaderName::from_static("x-request-id"),
];

/// Answers shorter than this go uncompressed: they fit in three TCP segments, compression saves
/// at most two of them, and it costs ~30 µs of CPU an answer, more than the rest of a feature's
/// answer (issue 15). Longer ones (pages of features, exports) are compressed as asked.
pub const COMPRESS_FROM_BYTES: u16 = 4096;

/// The whole API.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::HEAD,
            Method::OPTIONS,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::ACCEPT,
            header::IF_NONE_MATCH,
            header::CONTENT_TYPE,
            header::AUTHORIZATION,
            header::IF_MATCH,
            header::HeaderName::from_static("x-change-reason"),
            header::HeaderName::from_static("content-crs"),
        ])
        .expose_headers(EXPOSED_HEADERS)
        // Any origin and fixed lists: no answer depends on `Origin` or the preflight's
        // headers, so none says it varies on them (tower-http's default would, splitting a
        // shared cache's copies by origin for nothing).
        .vary([] as [header::HeaderName; 0]);
    let limit = state.settings.max_body_bytes;
    Router::new()
        .merge(ogc::router())
        .merge(openapi::router())
        .merge(areas::router())
        .merge(tiles::router())
        .merge(viewer::router())
        .merge(export::router())
        .merge(plans::router())
        .merge(monitoring::router())
        .merge(edit::router())
        .merge(audit::router())
        .merge(compare::router())
        .route("/healthz", get(healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "no such resource; the landing page / lists what is served",
            )
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "method not allowed on this resource",
            )
        })
        // Per route (it sees the matched path): counts and times every routed request.
        .layer(middleware::from_fn_with_state(state.clone(), ops::observe))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            forwarded_headers,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::identify,
        ))
        .layer(middleware::map_response(auth::www_authenticate))
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(middleware::map_response_with_state(
            limit,
            json_limit_errors,
        ))
        .layer(middleware::from_fn(html::html_errors))
        .layer(middleware::from_fn(request_limits))
        .layer(
            CompressionLayer::new()
                .compress_when(DefaultPredicate::new().and(SizeAbove::new(COMPRESS_FROM_BYTES))),
        )
        .layer(cors)
        // Inside the request id: every log line of a request carries its id.
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a handler panicked").into_response()
            },
        ))
}

/// Serves the API on `listener` until the process is stopped (Ctrl-C or SIGTERM). After the
/// signal no new connections are taken; requests in flight get the shutdown grace period, then
/// this returns whether or not they finished.
pub async fn serve(mut listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    use axum::serve::Listener;
    let grace = state.settings.shutdown_grace;
    let max_connections = state.settings.max_connections;
    open_files_for(max_connections);
    let fast = Arc::new(fast::Fast::new(router(state.clone()), state));
    // Each connection is read by the front, which hands it to hyper unless it asks only what
    // the lean path answers (`front.rs`).
    let front = front::Front::new(fast);
    tokio::spawn(Arc::clone(&front).sweep());
    // A place for each connection open at once; at the limit none is accepted until one
    // closes (the kernel queues them meanwhile).
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut signal = std::pin::pin!(shutdown_signal());
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => slot,
            () = &mut signal => break,
        };
        let Ok(slot) = slot else { break };
        let (io, peer) = tokio::select! {
            accepted = Listener::accept(&mut listener) => accepted,
            () = &mut signal => break,
        };
        tokio::spawn(Arc::clone(&front).serve(io, peer, graceful.watcher(), slot));
    }
    // No new connections; those open finish the request in flight (idle ones close at once).
    drop(listener);
    front.stop();
    tracing::info!(grace_s = grace.as_secs_f64(), "shutting down");
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!(
            "requests still running after the shutdown grace period; stopping anyway"
        ),
    }
    Ok(())
}

/// Raises the process's open-file limit, where the hard limit allows, to hold
/// `connections` sockets besides the database's and the logs' files; warns when it cannot.
fn open_files_for(connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    // The database, its journal, snapshot, logs, listeners: a margin for what is not a client.
    let wanted = connections as u64 + 256;
    let limit = getrlimit(Resource::Nofile);
    let Some(current) = limit.current else {
        return; // unlimited
    };
    if current >= wanted {
        return;
    }
    let raised = limit.maximum.map_or(wanted, |max| max.min(wanted));
    let mut new = limit;
    new.current = Some(raised);
    if raised > current && setrlimit(Resource::Nofile, new).is_ok() {
        tracing::debug!(from = current, to = raised, "open-file limit raised");
    }
    let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if now < wanted {
        tracing::warn!(
            open_files = now,
            max_connections = connections,
            "the open-file limit holds fewer connections than --max-connections; past it new \
             connections wait in the kernel's queue until a file is free (raise `ulimit -n` or \
             lower --max-connections)"
        );
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
