//! Downloads: `GET /export` (layers × area/bbox/filter, in GeoJSON, GeoPackage, Shapefile, CSV or
//! the ministry TXT, in any supported CRS) and `GET /export/land-consolidation` (the plan bundle).

use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::query::{lookup_error, parse_crs};
use super::view::View;
use super::AppState;
use crate::engine::{Budget, Stop};
use crate::export::{self, ExportFile, ExportFormat, Selection};
use crate::formats::DbfEncoding;
use crate::geom::crs::{Crs, CrsRequest};
use crate::geom::Bbox;
use geo::CoordsIter;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/export", get(export_handler))
        .route("/export/land-consolidation", get(land_consolidation))
}

fn layers_param(state: &AppState, params: &Params) -> ApiResult<Vec<String>> {
    super::areas::parse_layers(&state.app.engine, params, |_| true)
}

fn attachment(file: ExportFile) -> Response {
    let mut r = (StatusCode::OK, file.bytes).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(file.content_type),
    );
    if let Ok(v) = HeaderValue::from_str(&content_disposition(&file.filename)) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&file.features.to_string()) {
        h.insert("x-feature-count", v);
    }
    r
}

/// `attachment` with an ASCII-only `filename=` (the name's ASCII part, e.g. the unit's code
/// `500111100.zip`, for clients such as curl that ignore `filename*`) and the full name, Chinese
/// included, as UTF-8 in `filename*=` (RFC 6266).
fn content_disposition(filename: &str) -> String {
    let (stem, ext) = filename.rsplit_once('.').unwrap_or((filename, "bin"));
    let ascii: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let ascii = ascii
        .split('_')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("_");
    let ascii = if ascii.is_empty() {
        "yizhangtu"
    } else {
        &ascii
    };
    let encoded =
        percent_encoding::utf8_percent_encode(filename, percent_encoding::NON_ALPHANUMERIC);
    format!("attachment; filename=\"{ascii}.{ext}\"; filename*=UTF-8''{encoded}")
}

/// Sends what a blocking writer produces down a channel, 64 KiB at a time; stops when the
/// client has gone (the channel is closed) or the request's budget runs out.
struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
    budget: Budget,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 * 1024 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.budget.check().map_err(std::io::Error::other)?;
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(Ok(chunk))
                .map_err(|_| std::io::Error::other("client went away"))?;
        }
        Ok(())
    }
}

async fn export_handler(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(
        &[
            "layers", "area", "bbox", "filter", "format", "crs", "encoding", "f", "plan", "asof",
        ],
        |_| false,
    )?;
    params.reject_empty()?;
    let format = match params.get("format")?.or(params.get("f")?) {
        None => ExportFormat::GeoJson,
        Some(f) => ExportFormat::parse(f).ok_or_else(|| {
            ApiError::parameter("format", f, "use geojson, gpkg, shp, csv or txt")
        })?,
    };
    let encoding = match params.get("encoding")? {
        None => DbfEncoding::Gbk,
        Some(e) => DbfEncoding::parse(e)
            .ok_or_else(|| ApiError::parameter("encoding", e, "use gbk or utf-8"))?,
    };
    let engine = Arc::clone(&state.app.engine);
    let area = match params.get("area")? {
        None => None,
        Some(code) => {
            let unit = engine
                .resolve_admin(code)
                .map_err(|e| lookup_error("area", e))?;
            let a = engine
                .admin_area(&unit)
                .ok_or_else(|| ApiError::parameter("area", code, "the unit has no polygon"))?;
            Some((unit, a))
        }
    };
    let bbox = match params.get("bbox")? {
        None => None,
        Some(v) => Some(
            Bbox::parse(v)
                .map_err(|e| ApiError::parameter("bbox", v, e))?
                .to_rect(),
        ),
    };
    let name = area.as_ref().map_or("yizhangtu".to_string(), |(u, _)| {
        format!("{}_{}", u.code, u.name)
    });
    let sel = Selection {
        layers: layers_param(&state, &params)?,
        area,
        bbox,
        filter: params.get("filter")?.map(String::from),
        plan: params.get("plan")?.map(String::from),
    };
    let crs_req = parse_crs(&params, "crs")?;
    // `asof`: the layers as they stood then (the area is today's unit); `plan` is the selection's.
    let engine = View::parse_asof(&params)?
        .engine(&state, &sel.layers)
        .await?;
    let filter_text = sel.filter.clone().unwrap_or_default();
    let max_bytes = state.settings.max_export_bytes;
    let streamed = format == ExportFormat::GeoJson;
    let chosen = {
        let engine = Arc::clone(&engine);
        state
            .heavy
            .run(move |budget| {
                let chosen = match export::select_within(&engine, &sel, budget)? {
                    Ok(c) => c,
                    Err(e) => return Ok(Err(ApiError::parameter("filter", &filter_text, e))),
                };
                if !streamed {
                    let estimate = estimated_bytes(&chosen, budget)?;
                    if estimate > max_bytes {
                        return Ok(Err(too_large(estimate, max_bytes)));
                    }
                }
                Ok(Ok((chosen, sel)))
            })
            .await??
    };
    let (chosen, sel) = chosen;
    let default_crs = match format {
        ExportFormat::Txt => CrsRequest::AutoGk { zone_prefix: true },
        ExportFormat::GeoJson => CrsRequest::Fixed(Crs::Crs84),
        _ => CrsRequest::Fixed(Crs::Epsg4490),
    };
    let crs = crs_req.unwrap_or(default_crs).resolve(export::centre_lon(
        &chosen,
        sel.area.as_ref().map(|(_, a)| a.as_ref()),
    ));
    if format == ExportFormat::GeoJson {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        let count = chosen.iter().map(|(_, f)| f.len()).sum::<usize>();
        // The stream outlives this handler: it holds a heavy slot and stops at the deadline or
        // when the client stops reading.
        let admission = state.heavy.admit().await?;
        let budget = admission.budget.clone();
        let permit = admission.permit;
        admission.cancel_on_drop.disarm();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut w = ChannelWriter {
                tx: tx.clone(),
                buf: Vec::with_capacity(64 * 1024),
                budget,
            };
            let result = export::write_geojson_stream(&chosen, &crs, &mut w)
                .and_then(|_| std::io::Write::flush(&mut w));
            if let Err(e) = result {
                tracing::warn!(error = %e, "GeoJSON export stopped");
                let _ = tx.blocking_send(Err(e));
            }
        });
        let stream = futures_stream(rx);
        let mut r = Response::new(Body::from_stream(stream));
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/geo+json"),
        );
        if let Ok(v) = HeaderValue::from_str(&content_disposition(&format!("{name}.geojson"))) {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        if let Ok(v) = HeaderValue::from_str(&format!("<{}>", crs.uri())) {
            h.insert("content-crs", v);
        }
        if let Ok(v) = HeaderValue::from_str(&count.to_string()) {
            h.insert("x-feature-count", v);
        }
        return Ok(r);
    }
    let details = json!({"format": format.extension(), "crs": crs.uri()});
    let file = build_in_pool(&state, details, async move {
        export::write(&chosen, format, &crs, encoding, &name).await
    })
    .await?;
    let mut r = attachment(file);
    if let Ok(v) = HeaderValue::from_str(&format!("<{}>", crs.uri())) {
        r.headers_mut().insert("content-crs", v);
    }
    Ok(r)
}

/// Builds an export file on the heavy pool (under its deadline); a failure is a 400
/// `ExportFailed` carrying `details`.
async fn build_in_pool(
    state: &AppState,
    details: serde_json::Value,
    build: impl std::future::Future<Output = Result<ExportFile, String>> + Send + 'static,
) -> ApiResult<ExportFile> {
    let handle = tokio::runtime::Handle::current();
    state
        .heavy
        .run(move |budget| {
            budget.check()?;
            Ok(handle.block_on(build).map_err(|e| {
                ApiError::new(StatusCode::BAD_REQUEST, "ExportFailed", e).with_details(details)
            }))
        })
        .await?
}

/// A receiver as a stream of body chunks.
fn futures_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures_core::Stream<Item = Result<Bytes, std::io::Error>> {
    async_stream_from(move |cx| rx.poll_recv(cx))
}

fn async_stream_from<F>(poll: F) -> PollStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Bytes, std::io::Error>>>
        + Unpin,
{
    PollStream(poll)
}

struct PollStream<F>(F);

impl<F> futures_core::Stream for PollStream<F>
where
    F: FnMut(&mut std::task::Context<'_>) -> std::task::Poll<Option<Result<Bytes, std::io::Error>>>
        + Unpin,
{
    type Item = Result<Bytes, std::io::Error>;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        (self.0)(cx)
    }
}

async fn land_consolidation(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["area", "layers", "asof", "plan"], |_| false)?;
    params.reject_empty()?;
    let code = params.get("area")?.ok_or_else(|| {
        ApiError::parameter("area", "", "name an admin unit: ?area=<code or name>")
    })?;
    let live = Arc::clone(&state.app.engine);
    let unit = live
        .resolve_admin(code)
        .map_err(|e| lookup_error("area", e))?;
    let area = live
        .admin_area(&unit)
        .ok_or_else(|| ApiError::parameter("area", code, "the unit has no polygon"))?;
    let layers = layers_param(&state, &params)?;
    // `asof`/`plan`: the layers as they stood then, or one plan's; the units are today's.
    let view = View::parse(&params)?.engine(&state, &layers).await?;
    let file = build_in_pool(&state, json!({}), async move {
        export::land_consolidation(&live, &view, &unit, area, layers).await
    })
    .await?;
    Ok(attachment(file))
}

/// Bytes an export built in memory is reckoned to need: 24 per coordinate (a WKB point is 16,
/// text more) and 512 per feature for its properties and record overhead.
fn estimated_bytes(chosen: &export::Chosen, budget: &Budget) -> Result<usize, Stop> {
    let mut total = 0usize;
    for (i, f) in chosen.iter().flat_map(|(_, fs)| fs).enumerate() {
        budget.check_every(i)?;
        let coords = f.geometry.as_ref().map_or(0, |g| g.coords_count());
        total = total.saturating_add(coords.saturating_mul(24) + 512);
    }
    Ok(total)
}

/// 413 for an export over the in-memory limit.
fn too_large(estimate: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "ExportTooLarge",
        format!(
            "this export would need about {} MiB in memory, over the server's limit of {} MiB (--max-export-mb); export fewer layers or a smaller area, or ask for format=geojson, which is streamed",
            estimate >> 20,
            max >> 20
        ),
    )
    .with_details(json!({"limit": "max-export-mb", "max_bytes": max, "estimated_bytes": estimate}))
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn filenames_are_ascii_safe_with_the_chinese_name_in_utf8() {
        assert_eq!(
            content_disposition("500111100_龙水镇.zip"),
            "attachment; filename=\"500111100.zip\"; filename*=UTF-8''500111100%5F%E9%BE%99%E6%B0%B4%E9%95%87%2Ezip"
        );
        assert_eq!(
            content_disposition("yizhangtu.geojson"),
            "attachment; filename=\"yizhangtu.geojson\"; filename*=UTF-8''yizhangtu%2Egeojson"
        );
        assert!(
            content_disposition("龙水镇.csv").starts_with("attachment; filename=\"yizhangtu.csv\"")
        );
    }
}
