//! The built-in map viewer: `/map` (and `/` for browsers) is a MapLibre GL JS map of every layer.
//!
//! - The viewer's own files (`viewer/`: index.html, app.js, style.css) are compiled into the binary
//!   and served at `/viewer/…`. Set `YIZHANGTU_VIEWER_DIR` to a folder to serve them from disk
//!   instead (edit and reload without rebuilding).
//! - MapLibre GL JS is never copied into the repository: it comes from npm (`package.json`) and is
//!   served from `node_modules/maplibre-gl/dist/` at `/vendor/maplibre-gl/…`. The folder is looked
//!   up on every request, in this order: `$YIZHANGTU_MAPLIBRE_DIR`, `./node_modules/maplibre-gl/dist`
//!   (the working directory), `$CARGO_MANIFEST_DIR/node_modules/maplibre-gl/dist` (the source tree
//!   the binary was built from). [`prepare_maplibre`] runs `npm ci` once at start when none is found
//!   and npm is there; without it `/map` is a plain page saying how to install it.

use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use include_dir::{include_dir, Dir};
use serde_json::json;

use super::auth::Caller;
use super::error::ApiError;
use super::AppState;

static VIEWER: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/viewer");

/// npm packages the viewer loads besides MapLibre, as their browser builds from
/// `node_modules/{package}/{folder}/`: drawing (terra-draw and its MapLibre adapter), coordinate
/// conversion for the cursor read-out (proj4) and spreadsheets of feature lists (write-excel-file).
/// Charts of the monitoring view come from Chart.js (`chart.umd.min.js`).
const VENDOR_PACKAGES: [(&str, &str); 5] = [
    ("terra-draw", "dist"),
    ("terra-draw-maplibre-gl-adapter", "dist"),
    ("proj4", "dist"),
    ("write-excel-file", "bundle"),
    ("chart.js", "dist"),
];

/// The viewer's routes: `/map`, `/map/config.json`, `/me`, `/viewer/{*path}`,
/// `/vendor/maplibre-gl/{*path}`, `/vendor/{package}/{*path}` for [`VENDOR_PACKAGES`], and
/// `/favicon.ico`.
pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/map", get(map))
        .route("/map/config.json", get(map_config))
        .route("/me", get(me))
        .route("/favicon.ico", get(favicon))
        .route("/viewer/{*path}", get(viewer_asset))
        .route("/vendor/maplibre-gl/{*path}", get(maplibre_asset));
    for (package, folder) in VENDOR_PACKAGES {
        r = r.route(
            &format!("/vendor/{package}/{{*path}}"),
            get(move |path: UrlPath<String>, headers: HeaderMap| {
                vendor_asset(package, folder, path, headers)
            }),
        );
    }
    r
}

/// What the map page needs from the server's settings: the 天地图 key (`--tianditu-key`), so
/// the basemap is on by default when the server has one.
async fn map_config(State(state): State<AppState>) -> Response {
    let mut r = Json(json!({
        "tianditu_key": state.settings.tianditu_key.as_deref().filter(|k| !k.is_empty()),
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The signed-in user (the map's sign-in box): name, role and the units they may write in,
/// with names. 401 without a valid `Authorization: Bearer` token.
async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Response {
    let Some(p) = caller.principal else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "not signed in: send Authorization: Bearer <token>",
        )
        .into_response();
    };
    let scoped = p.scoped();
    let scope: Vec<_> = p
        .scope
        .iter()
        .map(|code| {
            let name = state.app.engine.admin_unit(code).map(|u| u.name);
            json!({"code": code, "name": name})
        })
        .collect();
    let mut r = Json(json!({
        "name": p.name,
        "role": p.role.as_str(),
        "scoped": scoped,
        "scope": scope,
    }))
    .into_response();
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn favicon(headers: HeaderMap) -> Response {
    match viewer_file("favicon.svg") {
        Some(bytes) => with_revalidation(
            &headers,
            bytes_response(bytes, "image/svg+xml", "public, max-age=86400"),
        ),
        None => asset_not_found("favicon.svg"),
    }
}

/// A file of an npm package in [`VENDOR_PACKAGES`], from the `node_modules` next to MapLibre's.
async fn vendor_asset(
    package: &'static str,
    folder: &'static str,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let Some(rel) = safe_relative(&path) else {
        return asset_not_found(&path);
    };
    let roots = [
        maplibre_dir().and_then(|d| d.parent().and_then(Path::parent).map(Path::to_path_buf)),
        Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules")),
    ];
    for root in roots.into_iter().flatten() {
        if let Ok(bytes) = tokio::fs::read(root.join(package).join(folder).join(&rel)).await {
            return with_revalidation(
                &headers,
                bytes_response(bytes, content_type(&rel), "public, max-age=3600"),
            );
        }
    }
    ApiError::not_found(format!(
        "no file '{path}' of the npm package {package}: run `npm ci` in the yizhangtu source folder"
    ))
    .into_response()
}

async fn map(headers: HeaderMap) -> Response {
    with_revalidation(&headers, map_page())
}

/// The map page (HTML). When MapLibre GL JS cannot be found, a plain bilingual page that says how
/// to install it (still 200, so a browser shows it as it is).
pub fn map_page() -> Response {
    if maplibre_dir().is_none() {
        return html_response(StatusCode::OK, missing_maplibre_page());
    }
    match viewer_file("index.html") {
        Some(bytes) => bytes_response(bytes, "text/html; charset=utf-8", "no-cache"),
        None => ApiError::internal("viewer/index.html is missing from the build").into_response(),
    }
}

/// Where MapLibre GL JS's `dist/` folder is, if anywhere (see the module docs).
pub fn maplibre_dir() -> Option<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("YIZHANGTU_MAPLIBRE_DIR").filter(|d| !d.is_empty()) {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(PathBuf::from("node_modules/maplibre-gl/dist"));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/maplibre-gl/dist"));
    candidates
        .into_iter()
        .find(|d| d.join("maplibre-gl.js").is_file() && d.join("maplibre-gl.css").is_file())
}

/// Called once by `serve` before it listens: when MapLibre GL JS is missing, `npm` is on the PATH
/// and the source tree with `package-lock.json` is there, runs `npm ci --omit=dev` in it (a few
/// seconds; needs the npm registry). Never fails: what happened is logged, and without MapLibre the
/// map page says how to install it. `YIZHANGTU_NO_NPM=1` turns this off.
pub fn prepare_maplibre() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    if let Some(dir) = maplibre_dir() {
        // The other packages too: a node_modules installed before one was added lacks it.
        let modules = dir.parent().and_then(Path::parent).map(Path::to_path_buf);
        let missing: Vec<&str> = VENDOR_PACKAGES
            .iter()
            .filter(|(package, folder)| {
                [modules.clone(), Some(root.join("node_modules"))]
                    .into_iter()
                    .flatten()
                    .all(|m| !m.join(package).join(folder).is_dir())
            })
            .map(|(package, _)| *package)
            .collect();
        if missing.is_empty() {
            tracing::info!(dir = %dir.display(), "map viewer: MapLibre GL JS found");
            return;
        }
        tracing::warn!(?missing, "map viewer: npm packages missing");
    }
    if std::env::var_os("YIZHANGTU_NO_NPM").is_some_and(|v| !v.is_empty() && v != "0") {
        tracing::warn!("map viewer: MapLibre GL JS not found and YIZHANGTU_NO_NPM is set; /map will say how to install it");
        return;
    }
    if !root.join("package-lock.json").is_file() {
        tracing::warn!(
            "map viewer: MapLibre GL JS not found (no node_modules/maplibre-gl and no package-lock.json at {}); \
             set YIZHANGTU_MAPLIBRE_DIR to a maplibre-gl/dist folder",
            root.display()
        );
        return;
    }
    println!(
        "map viewer: MapLibre GL JS or another of its npm packages is not installed; running `npm ci --omit=dev` in {} …",
        root.display()
    );
    let status = Command::new("npm")
        .args(["ci", "--omit=dev", "--no-audit", "--no-fund"])
        .current_dir(root)
        .stdin(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && maplibre_dir().is_some() => {
            println!("map viewer: MapLibre GL JS installed");
        }
        Ok(s) => {
            tracing::warn!(%s, "map viewer: `npm ci` failed; /map will say how to install MapLibre GL JS");
        }
        Err(e) => {
            tracing::warn!(error = %e, "map viewer: npm not found (install Node.js and npm, then run `npm ci`); /map will say so");
        }
    }
}

async fn viewer_asset(UrlPath(path): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rel) = safe_relative(&path) else {
        return asset_not_found(&path);
    };
    match viewer_file(&rel) {
        Some(bytes) => with_revalidation(
            &headers,
            bytes_response(bytes, content_type(&rel), "no-cache"),
        ),
        None => asset_not_found(&path),
    }
}

async fn maplibre_asset(UrlPath(path): UrlPath<String>, headers: HeaderMap) -> Response {
    let Some(rel) = safe_relative(&path) else {
        return asset_not_found(&path);
    };
    let Some(dir) = maplibre_dir() else {
        return ApiError::not_found(
            "MapLibre GL JS is not installed: install Node.js and npm, then run `npm ci` in the \
             yizhangtu source folder (or set YIZHANGTU_MAPLIBRE_DIR)",
        )
        .into_response();
    };
    let file = dir.join(&rel);
    match tokio::fs::read(&file).await {
        Ok(bytes) => with_revalidation(
            &headers,
            bytes_response(bytes, content_type(&rel), "public, max-age=3600"),
        ),
        Err(_) => asset_not_found(&path),
    }
}

/// A file of the viewer: from `$YIZHANGTU_VIEWER_DIR` when set, else the embedded copy.
fn viewer_file(rel: &str) -> Option<Vec<u8>> {
    if let Some(dir) = std::env::var_os("YIZHANGTU_VIEWER_DIR").filter(|d| !d.is_empty()) {
        return std::fs::read(Path::new(&dir).join(rel)).ok();
    }
    VIEWER.get_file(rel).map(|f| f.contents().to_vec())
}

/// `path` as a relative path of plain components (no `..`, no root, no backslashes), or None.
fn safe_relative(path: &str) -> Option<String> {
    if path.is_empty() || path.contains('\\') || path.contains('\0') {
        return None;
    }
    let p = Path::new(path);
    let mut parts = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(s.to_str()?.to_string()),
            Component::CurDir => {}
            _ => return None,
        }
    }
    if parts.is_empty() {
        return None;
    }
    Some(parts.join("/"))
}

fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        "d.ts" | "ts" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn asset_not_found(path: &str) -> Response {
    ApiError::not_found(format!("no viewer file '{path}'")).into_response()
}

fn bytes_response(bytes: Vec<u8>, content_type: &'static str, cache: &'static str) -> Response {
    let tag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&bytes));
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}

/// 304 when the request's `If-None-Match` names the response's ETag.
fn with_revalidation(headers: &HeaderMap, r: Response) -> Response {
    let (Some(inm), Some(tag)) = (
        headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok()),
        r.headers().get(header::ETAG).cloned(),
    ) else {
        return r;
    };
    let want = tag
        .to_str()
        .unwrap_or("")
        .trim_start_matches("W/")
        .to_string();
    if inm
        .split(',')
        .any(|t| t.trim() == "*" || t.trim().trim_start_matches("W/") == want)
    {
        let mut nm = StatusCode::NOT_MODIFIED.into_response();
        nm.headers_mut().insert(header::ETAG, tag);
        return nm;
    }
    r
}

fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn missing_maplibre_page() -> String {
    let root = super::html::escape(env!("CARGO_MANIFEST_DIR"));
    super::html::page(
        "地图不可用 · Map unavailable",
        &format!(
            "<p><strong>地图需要 MapLibre GL JS，本机尚未安装。</strong>请安装 Node.js 和 npm，然后在 yizhangtu \
             源码目录运行 <code>npm ci</code>，再重新启动 <code>yizhangtu serve</code>（有 npm 时首次启动会自动安装）。</p>\
             <p><strong>The map needs MapLibre GL JS, which is not installed on this machine.</strong> Install \
             Node.js and npm, run <code>npm ci</code> in the yizhangtu source folder, then restart \
             <code>yizhangtu serve</code> (when npm is present, the first start installs it by itself).</p>\
             <pre>cd {root}\nnpm ci\ncargo run --release -- serve</pre>\
             <p class=\"muted\">或设置 / or set <code>YIZHANGTU_MAPLIBRE_DIR</code> to a \
             <code>maplibre-gl/dist</code> folder.</p>\
             <p>数据仍可通过 API 获取 · The data is still served: <a href=\"/collections\">图层 Layers</a> · \
             <a href=\"/api?f=html\">API</a></p>"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_are_checked() {
        assert_eq!(safe_relative("app.js").as_deref(), Some("app.js"));
        assert_eq!(safe_relative("./a/b.css").as_deref(), Some("a/b.css"));
        assert_eq!(safe_relative("../Cargo.toml"), None);
        assert_eq!(safe_relative("a/../../x"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
        assert_eq!(safe_relative(""), None);
        assert_eq!(safe_relative("a\\..\\b"), None);
    }

    #[test]
    fn the_viewer_is_embedded() {
        assert!(VIEWER.get_file("index.html").is_some());
        assert!(VIEWER.get_file("app.js").is_some());
        assert!(VIEWER.get_file("style.css").is_some());
        assert_eq!(content_type("app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("maplibre-gl.css"), "text/css; charset=utf-8");
    }
}
