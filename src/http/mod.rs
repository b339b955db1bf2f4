//! The HTTP face: axum routers, one module per resource, one error type.
//! Handlers are thin: parse parameters, ask the engine, encode.

mod areas;
pub mod error;
mod export;
mod html;
mod ogc;
mod openapi;
mod params;
pub mod query;
mod tiles;
pub mod viewer;

use axum::extract::DefaultBodyLimit;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{Any, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::app::App;
use crate::config::HttpSettings;
use error::ApiError;

pub use query::{DEFAULT_LIMIT, MAX_LIMIT};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub app: Arc<App>,
    pub settings: Arc<HttpSettings>,
    pub tiles: Arc<tiles::TileCache>,
}

impl AppState {
    pub fn new(app: Arc<App>, settings: HttpSettings) -> AppState {
        let tiles = Arc::new(tiles::TileCache::new(settings.tile_cache_bytes));
        AppState {
            app,
            settings: Arc::new(settings),
            tiles,
        }
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([header::ACCEPT, header::IF_NONE_MATCH, header::CONTENT_TYPE])
        .expose_headers([
            header::ETAG,
            header::LOCATION,
            header::HeaderName::from_static("content-crs"),
        ]);
    let limit = state.settings.max_body_bytes;
    Router::new()
        .merge(ogc::router())
        .merge(openapi::router())
        .merge(areas::router())
        .merge(tiles::router())
        .merge(viewer::router())
        .merge(export::router())
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
        .with_state(state)
        .layer(DefaultBodyLimit::max(limit))
        .layer(RequestBodyLimitLayer::new(limit))
        .layer(CompressionLayer::new())
        .layer(cors)
        .layer(TraceLayer::new_for_http())
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::internal("a handler panicked").into_response()
            },
        ))
}

/// Serves the API on `listener` until the process is stopped (Ctrl-C or SIGTERM).
pub async fn serve(listener: tokio::net::TcpListener, state: AppState) -> std::io::Result<()> {
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
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
