//! OGC API – Features Part 4 on one feature: PUT (replace), PATCH (RFC 7396 merge patch) and
//! DELETE with optimistic concurrency (ETag = version, If-Match required), and its history.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::auth::{change_reason, check_scope, require, role_for_layer, Caller};
use super::error::{ApiError, ApiResult};
use super::params::{base_url, media_type_essence, unsupported_media_type, Params};
use super::AppState;
use crate::auth::Principal;
use crate::formats::geojson::{self, PropertySelection, StreamOptions};
use crate::geom::crs::Crs;
use crate::geom::validate_topology;
use crate::model::Feature;
use crate::store::{EditError, HistoryEntry, StoreError};

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/collections/{collection}/items/{feature}",
            axum::routing::put(replace).patch(patch).delete(delete),
        )
        .route(
            "/collections/{collection}/items/{feature}/history",
            get(history),
        )
        .route(
            "/collections/{collection}/items/{feature}/history/{version}",
            get(history_version),
        )
}

/// The version an `If-Match` names: `"7"`, `W/"7.…"` (the ETag of GET) or `*` (any).
/// 428 when missing, 400 when it names no version.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_REQUIRED,
            "PreconditionRequired",
            "send If-Match with the feature's ETag (its version), as GET returned it",
        )
        .with_details(json!({"parameter": "If-Match"})));
    };
    let text = v.to_str().unwrap_or("").trim();
    if text == "*" {
        return Ok(None);
    }
    let inner = text.trim_start_matches("W/").trim_matches('"');
    let digits = inner.split('.').next().unwrap_or("");
    digits.parse::<i64>().map(Some).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            format!("If-Match '{text}' names no feature version; send the ETag GET returned"),
        )
        .with_details(json!({"parameter": "If-Match", "value": text}))
    })
}

fn version_tag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

fn not_found(layer: &str, fid: &str) -> ApiError {
    ApiError::not_found(format!("collection '{layer}' has no feature '{fid}'"))
        .with_details(json!({"collection": layer, "feature": fid}))
}

fn edit_error(e: EditError, layer: &str, fid: &str) -> ApiError {
    match e {
        EditError::NotFound => not_found(layer, fid),
        EditError::Stale { current } => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            format!("feature '{fid}' is now at version {current}: fetch it again and re-apply the change"),
        )
        .with_details(json!({"collection": layer, "feature": fid, "currentVersion": current, "etag": format!("\"{current}\"")})),
        EditError::Store(StoreError::Busy) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "another write to the database is in progress and did not finish in time; nothing was changed",
        )
        .retry_after(5),
        EditError::Store(e) => ApiError::internal(e),
    }
}

/// The CRS of a body's coordinates: `Content-Crs: <uri>` (Part 2) or `?crs=`.
fn body_crs(headers: &HeaderMap, params: &Params) -> Result<Option<Crs>, ApiError> {
    if let Some(v) = headers.get("content-crs") {
        let text = v.to_str().unwrap_or("").trim();
        let uri = text.trim_start_matches('<').trim_end_matches('>');
        return Crs::parse(uri)
            .map(Some)
            .map_err(|e| ApiError::parameter("Content-Crs", text, e));
    }
    match params.get("crs")? {
        None => Ok(None),
        Some(c) => Crs::parse(c)
            .map(Some)
            .map_err(|e| ApiError::parameter("crs", c, e)),
    }
}

/// Decodes one GeoJSON Feature of `layer` the way imports do (valid geometry, inside China).
fn decode_one(body: &[u8], layer: &str, crs: Option<Crs>) -> Result<Feature, ApiError> {
    let options = StreamOptions {
        crs,
        allow_single_feature: true,
        ..Default::default()
    };
    let mut got: Vec<Feature> = Vec::new();
    let read = geojson::stream_feature_collection(
        serde_json::de::SliceRead::new(body),
        layer,
        &options,
        &mut |f| {
            got.push(f);
            got.len() < 2
        },
    );
    match read {
        Ok(s) if s.single && got.len() == 1 => {
            let f = got.remove(0);
            // An edit is one feature: its rings are also checked for crossings (imports of
            // whole files leave that to `yizhangtu check`).
            if let Some(p) = f.geometry.as_ref().and_then(|g| validate_topology(g).err()) {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidFeatures",
                    format!("nothing was changed: the geometry is invalid: {p}"),
                )
                .with_details(json!({"problems": [format!("geometry: {p}")]})));
            }
            Ok(f)
        }
        Ok(_) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "send one GeoJSON Feature (not a FeatureCollection); nothing was changed",
        )),
        Err(geojson::DecodeError::Syntax(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            format!("body is not JSON: {e}; nothing was changed"),
        )),
        Err(e) => {
            let details = match &e {
                geojson::DecodeError::Features { problems, .. } => json!({"problems": problems}),
                _ => json!({}),
            };
            Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidFeatures",
                format!("nothing was changed: {e}"),
            )
            .with_details(details))
        }
    }
}

fn json_body(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    let ct = media_type_essence(headers).unwrap_or_default();
    if accepted.contains(&ct.as_str()) {
        Ok(())
    } else {
        Err(unsupported_media_type(&ct, accepted))
    }
}

fn read_only(state: &AppState) -> Result<(), ApiError> {
    if state.settings.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ReadOnly",
            "this server was started with --read-only",
        ));
    }
    Ok(())
}

/// RFC 7396 JSON merge patch: objects merge member by member, `null` removes, anything else
/// replaces. (Ten lines; a crate would bring RFC 6902 patch machinery we do not use.)
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(serde_json::Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.shift_remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

/// One write to one feature, after its preamble: the signed-in user (401/403 before anything
/// else is looked at), the query parameters and the version If-Match names.
struct Edit<'a> {
    state: &'a AppState,
    caller: &'a Caller,
    headers: &'a HeaderMap,
    layer: &'a str,
    fid: &'a str,
    principal: Principal,
    params: Params,
    expected: Option<i64>,
}

impl<'a> Edit<'a> {
    async fn begin(
        state: &'a AppState,
        caller: &'a Caller,
        headers: &'a HeaderMap,
        (layer, fid): (&'a str, &'a str),
        query: Option<&str>,
        action: &str,
    ) -> ApiResult<Edit<'a>> {
        read_only(state)?;
        let principal = require(
            state,
            caller,
            role_for_layer(layer),
            action,
            layer,
            &[fid.to_string()],
        )
        .await?;
        let params = Params::parse(query);
        params.reject_unknown(&["crs"], |_| false)?;
        params.reject_empty()?;
        let expected = if_match(headers)?;
        Ok(Edit {
            state,
            caller,
            headers,
            layer,
            fid,
            principal,
            params,
            expected,
        })
    }

    /// The feature as the database holds it now (404 when there is none).
    async fn current(&self) -> ApiResult<Feature> {
        if self.state.app.engine.layer(self.layer).is_none() {
            return Err(ApiError::not_found(format!(
                "no collection '{}'; see /collections",
                self.layer
            ))
            .with_details(json!({"collection": self.layer})));
        }
        self.state
            .app
            .store
            .current_feature(self.layer, self.fid)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(|| not_found(self.layer, self.fid))
    }

    /// PUT and PATCH: checks the scope of the old and new feature, writes the new one if the
    /// old is still at the version If-Match names, shows it to readers, answers its new ETag.
    async fn replace(
        &self,
        current: Feature,
        mut new: Feature,
        reason_member: Option<&str>,
        action: &str,
    ) -> ApiResult<Response> {
        let reason = change_reason(self.state, self.headers, reason_member)?;
        check_scope(
            self.state,
            self.caller,
            &self.principal,
            action,
            &[&current, &new],
        )
        .await?;
        new.id = self.fid.to_string();
        new.layer = self.layer.to_string();
        let expected = self.expected.unwrap_or(current.version);
        let version = self
            .state
            .app
            .store
            .replace_feature(&new, expected, &self.caller.actor(reason), action)
            .await
            .map_err(|e| edit_error(e, self.layer, self.fid))?;
        self.state
            .app
            .catch_up()
            .await
            .map_err(ApiError::internal)?;
        let mut r = (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json!({"collection": self.layer, "feature": self.fid, "version": version}).to_string(),
        )
            .into_response();
        r.headers_mut().insert(header::ETAG, version_tag(version));
        Ok(r)
    }
}

/// How a body that stopped arriving answers: 413 when a body limit cut it, else 400.
fn body_read_error(e: axum::Error, max: usize) -> ApiError {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(c) = cause {
        if c.to_string().contains("length limit exceeded") {
            return ApiError::body_too_large(max);
        }
        cause = c.source();
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidBody",
        format!("the request body could not be read ({e}); nothing was imported"),
    )
}

/// Streams an upload (zipped Shapefile, GeoPackage) to a temporary file as it arrives, so a
/// write holds a few chunks in memory whatever its size; refuses it (413) as soon as it passes
/// `max` bytes. `suffix` names the file's kind (`.gpkg`). The file is deleted when dropped.
pub(super) async fn spool_upload(
    body: axum::body::Body,
    max: usize,
    suffix: &str,
) -> ApiResult<tempfile::NamedTempFile> {
    use std::io::Write as _;
    let file = tempfile::Builder::new()
        .prefix("yizhangtu-upload-")
        .suffix(suffix)
        .tempfile()
        .map_err(ApiError::internal)?;
    let mut out = file.reopen().map_err(ApiError::internal)?;
    // The disk writes run on a blocking thread, fed a few chunks at a time.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.flush()
    });
    let mut stream = body.into_data_stream();
    let mut total = 0usize;
    let read = loop {
        let next = std::future::poll_fn(|cx| {
            futures_core::Stream::poll_next(std::pin::Pin::new(&mut stream), cx)
        })
        .await;
        match next {
            None => break Ok(()),
            Some(Err(e)) => break Err(body_read_error(e, max)),
            Some(Ok(chunk)) => {
                total = total.saturating_add(chunk.len());
                if total > max {
                    break Err(ApiError::body_too_large(max));
                }
                if tx.send(chunk).await.is_err() {
                    break Ok(()); // the writer failed: its error is reported below
                }
            }
        }
    };
    drop(tx);
    let written = writer.await.map_err(ApiError::internal)?;
    read?;
    written.map_err(ApiError::internal)?;
    Ok(file)
}

/// Why an upload was not imported.
pub(super) enum UploadFailure {
    /// The caller may not write what the file holds (403/409), refused before any of it was kept.
    Refused(ApiError),
    /// The file or the store failed.
    Import(crate::app::AppError),
}

/// Imports a spooled upload (zipped Shapefile, GeoPackage) into collection `layer` in one
/// transaction, decoded as it is written (memory independent of the file's size), then shows
/// it to readers. When `guarded` (editors, scoped stewards), each batch is checked with
/// [`super::ogc::guard_posted`] before it reaches the store; a refused batch rolls back all.
#[allow(clippy::too_many_arguments)]
pub(super) async fn import_upload(
    state: &AppState,
    caller: &Caller,
    principal: &Principal,
    guarded: bool,
    layer: &str,
    input: crate::app::FileInput,
    crs: Option<Crs>,
    actor: &crate::store::Actor,
) -> Result<Vec<crate::store::ImportSummary>, UploadFailure> {
    use crate::store::{Batch, Ids, ImportMode};
    // The decoders take a column as the ids only when no value repeats (or number the records).
    let (mut decoded, decoder) = crate::app::decode_file(input, layer, crs);
    let store = &state.app.store;
    let stored = if guarded {
        let (tx, checked) = tokio::sync::mpsc::channel::<Batch>(1);
        let forward = async move {
            while let Some(batch) = decoded.recv().await {
                if let Batch::Features(features) = &batch {
                    super::ogc::guard_posted(state, caller, principal, features).await?;
                }
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
            Ok(())
        };
        let write = store.import_batches_as(
            &[],
            checked,
            ImportMode::Upsert,
            Ids::Repeatable,
            None,
            actor,
        );
        let (stored, forwarded): (_, ApiResult<()>) = tokio::join!(write, forward);
        if let Err(refused) = forwarded {
            let _ = decoder.await;
            return Err(UploadFailure::Refused(refused));
        }
        stored
    } else {
        store
            .import_batches_as(
                &[],
                decoded,
                ImportMode::Upsert,
                Ids::Repeatable,
                None,
                actor,
            )
            .await
    };
    let done = crate::app::file_import_result(decoder, stored)
        .await
        .map_err(UploadFailure::Import)?;
    state.app.catch_up().await.map_err(UploadFailure::Import)?;
    Ok(done.summaries)
}

/// A JSON body, read whole (a limit cut answers 413).
pub(super) async fn body_bytes(body: axum::body::Body, max: usize) -> ApiResult<Bytes> {
    axum::body::to_bytes(body, max)
        .await
        .map_err(|e| body_read_error(e, max))
}

/// The `reason` member of a JSON body, if any.
fn reason_member(body: &Value) -> Option<String> {
    body.get("reason")
        .and_then(Value::as_str)
        .map(str::to_string)
}

fn parse_body(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            format!("body is not JSON: {e}; nothing was changed"),
        )
    })
}

/// PUT …/items/{fid}: replaces the whole feature (a GeoJSON Feature).
async fn replace(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((layer, fid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let edit = Edit::begin(
        &state,
        &caller,
        &headers,
        (&layer, &fid),
        q.as_deref(),
        "replace",
    )
    .await?;
    json_body(&headers, &["application/geo+json", "application/json"])?;
    let current = edit.current().await?;
    let crs = body_crs(&headers, &edit.params)?;
    let new = decode_one(&body, &layer, crs)?;
    let reason = reason_member(&parse_body(&body)?);
    edit.replace(current, new, reason.as_deref(), "replace")
        .await
}

/// PATCH …/items/{fid}: an RFC 7396 merge patch of the feature's GeoJSON (properties, and the
/// geometry as a whole).
async fn patch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((layer, fid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let edit = Edit::begin(
        &state,
        &caller,
        &headers,
        (&layer, &fid),
        q.as_deref(),
        "update",
    )
    .await?;
    json_body(
        &headers,
        &[
            "application/merge-patch+json",
            "application/json",
            "application/geo+json",
        ],
    )?;
    let mut patch = parse_body(&body)?;
    let reason = reason_member(&patch);
    let Some(members) = patch.as_object_mut() else {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "a merge patch is a JSON object, e.g. {\"properties\": {\"status\": \"started\"}}",
        ));
    };
    members.shift_remove("reason");
    if members
        .get("id")
        .is_some_and(|id| id.as_str() != Some(fid.as_str()))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "a feature's id cannot be patched",
        ));
    }
    let crs = body_crs(&headers, &edit.params)?;
    if crs.is_some() && members.get("geometry").is_none_or(Value::is_null) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "Content-Crs applies to a patched geometry; this patch has none",
        )
        .with_details(json!({"parameter": "Content-Crs"})));
    }
    let current = edit.current().await?;
    let mut doc = String::new();
    geojson::write_feature(&mut doc, &current, &PropertySelection::All, None, &[]);
    let mut doc: Value = serde_json::from_str(&doc).map_err(ApiError::internal)?;
    merge_patch(&mut doc, &patch);
    let bytes = serde_json::to_vec(&doc).map_err(ApiError::internal)?;
    let new = decode_one(&bytes, &layer, crs)?;
    edit.replace(current, new, reason.as_deref(), "update")
        .await
}

/// DELETE …/items/{fid}: the feature goes, its history stays.
async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((layer, fid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let edit = Edit::begin(
        &state,
        &caller,
        &headers,
        (&layer, &fid),
        q.as_deref(),
        "delete",
    )
    .await?;
    let reason = change_reason(&state, &headers, None)?;
    let current = edit.current().await?;
    check_scope(&state, &caller, &edit.principal, "delete", &[&current]).await?;
    let expected = edit.expected.unwrap_or(current.version);
    state
        .app
        .store
        .delete_feature(&layer, &fid, expected, &caller.actor(reason))
        .await
        .map_err(|e| edit_error(e, &layer, &fid))?;
    state.app.catch_up().await.map_err(ApiError::internal)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn entry_json(e: &HistoryEntry, base: &str, layer: &str, fid: &str) -> Value {
    let enc = percent_encoding::utf8_percent_encode(fid, percent_encoding::NON_ALPHANUMERIC);
    json!({
        "version": e.version,
        "op": e.op,
        "at": e.at,
        "user": e.user,
        "reason": e.reason,
        "request_id": e.request_id,
        "href": format!("{base}/collections/{layer}/items/{enc}/history/{}", e.version),
    })
}

fn no_history(layer: &str, fid: &str) -> ApiError {
    ApiError::not_found(format!(
        "collection '{layer}' has no history for feature '{fid}'"
    ))
    .with_details(json!({"collection": layer, "feature": fid}))
}

/// GET …/items/{fid}/history: every version, oldest first (also of deleted features).
async fn history(
    State(state): State<AppState>,
    Path((layer, fid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    if let Some(f) = params.get("f")? {
        if f != "json" {
            return Err(ApiError::parameter("f", f, "history is served as json"));
        }
    }
    let entries = state
        .app
        .store
        .history(&layer, &fid)
        .await
        .map_err(ApiError::internal)?;
    if entries.is_empty() {
        return Err(no_history(&layer, &fid));
    }
    let base = base_url(&headers);
    let versions: Vec<Value> = entries
        .iter()
        .map(|e| entry_json(e, &base, &layer, &fid))
        .collect();
    let deleted = entries.last().is_some_and(|e| e.op == "delete");
    let doc =
        json!({"collection": layer, "feature": fid, "deleted": deleted, "versions": versions});
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        doc.to_string(),
    )
        .into_response())
}

/// GET …/items/{fid}/history/{version}: that version as a GeoJSON Feature, with who, when and why.
async fn history_version(
    State(state): State<AppState>,
    Path((layer, fid, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&[], |_| false)?;
    let v: i64 =
        version.parse().ok().filter(|v| *v >= 1).ok_or_else(|| {
            ApiError::parameter("version", &version, "a version is a number from 1")
        })?;
    let e = state
        .app
        .store
        .history_version(&layer, &fid, v)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "feature '{fid}' of collection '{layer}' has no version {v}"
            ))
            .with_details(json!({"collection": layer, "feature": fid, "version": v}))
        })?;
    let base = base_url(&headers);
    let mut out = String::new();
    let meta = entry_json(&e, &base, &layer, &fid);
    geojson::write_feature(&mut out, &e.feature, &PropertySelection::All, None, &[]);
    let mut doc: Value = serde_json::from_str(&out).map_err(ApiError::internal)?;
    // Who, when and why, as a foreign member next to the feature's own properties.
    doc["history"] = meta;
    let out = doc.to_string();
    let mut r = (
        [
            (header::CONTENT_TYPE, "application/geo+json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        out,
    )
        .into_response();
    r.headers_mut().insert(header::ETAG, version_tag(e.version));
    Ok(r)
}

/// Adds editing, history and audit to the OpenAPI document of /api: the operations, the
/// bearer security scheme, and the answers of the older POST items to anonymous callers.
pub fn add_openapi(doc: &mut Value) {
    let Value::Object(paths) = openapi_paths() else {
        return;
    };
    for (path, item) in paths {
        for (method, op) in item.as_object().into_iter().flatten() {
            doc["paths"][&path][method] = op.clone();
        }
    }
    doc["components"]["securitySchemes"]["bearer"] = json!({"type": "http", "scheme": "bearer",
        "description": "an API token from `yizhangtu user add` or `yizhangtu token rotate`"});
    doc["paths"]["/collections/{collectionId}/changes"] = super::compare::openapi_path();
    if let Some(params) =
        doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"].as_array_mut()
    {
        params.push(json!({"name": "asof", "in": "query", "required": false,
            "description": "RFC 3339 time: the features as they stood then, from the feature history",
            "schema": {"type": "string", "minLength": 1}}));
    }
    let post = &mut doc["paths"]["/collections/{collectionId}/items"]["post"];
    if post.is_object() {
        for (k, v) in auth_responses().as_object().into_iter().flatten() {
            post["responses"][k] = v.clone();
        }
        post["responses"]["409"] = json!({"description": "An editor tried to create a feature whose id exists: change it with PUT/PATCH and If-Match",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}});
        post["security"] = json!([{"bearer": []}]);
        if let Some(params) = post["parameters"].as_array_mut() {
            params.push(json!({"name": "X-Change-Reason", "in": "header", "required": false, "description": "why (percent-encoded UTF-8); required with --require-reason", "schema": {"type": "string"}}));
        }
    }
}

fn auth_responses() -> Value {
    let problem = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}});
    json!({
        "401": {"description": "No or an invalid bearer token (WWW-Authenticate: Bearer); on a server without users every write answers 401",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}},
        "403": problem("The user's role may not write here, the feature lies outside the user's districts/towns (the body names both), or the server is read-only"),
        "429": problem("Too many failed sign-ins from this address; Retry-After says when to try again"),
    })
}

/// The OpenAPI paths and operations of editing, history and audit.
fn openapi_paths() -> Value {
    let problem = |d: &str| json!({"description": d, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}});
    let auth = auth_responses;
    let ids = json!([{"$ref": "#/components/parameters/collectionId"}, {"$ref": "#/components/parameters/featureId"}]);
    let if_match = json!({"name": "If-Match", "in": "header", "required": true, "description": "the feature's ETag (its version) from GET; * for any", "schema": {"type": "string", "minLength": 1}});
    let reason = json!({"name": "X-Change-Reason", "in": "header", "required": false, "description": "why (percent-encoded UTF-8); required with --require-reason", "schema": {"type": "string"}});
    let content_crs = json!({"name": "Content-Crs", "in": "header", "required": false, "description": "CRS of the body's coordinates, <uri>", "schema": {"type": "string"}});
    let write_op = |summary: &str, op: &str, body: Option<Value>, ok: Value| {
        let mut params = ids.as_array().cloned().unwrap_or_default();
        params.push(if_match.clone());
        params.push(reason.clone());
        if body.is_some() {
            params.push(content_crs.clone());
        }
        let mut responses = auth();
        for (k, v) in ok.as_object().into_iter().flatten() {
            responses[k] = v.clone();
        }
        responses["400"] =
            problem("Invalid body, geometry, If-Match or a missing reason; nothing was changed");
        responses["404"] = problem("No such collection or feature");
        responses["412"] =
            problem("If-Match names an older version; the body gives currentVersion");
        responses["428"] = problem("If-Match is missing");
        responses["503"] =
            problem("Another write held the database past the busy timeout; Retry-After");
        let mut doc = json!({"summary": summary, "operationId": op, "parameters": params, "responses": responses, "security": [{"bearer": []}]});
        if let Some(b) = body {
            doc["requestBody"] = b;
            doc["responses"]["415"] = problem("Unsupported Content-Type");
        }
        doc
    };
    let feature_body = |types: &[&str]| {
        let mut content = serde_json::Map::new();
        for t in types {
            content.insert((*t).into(), json!({"schema": {"type": "object"}}));
        }
        json!({"required": true, "content": content})
    };
    let changed = json!({"200": {"description": "Written; ETag is the new version", "headers": {"ETag": {"schema": {"type": "string"}}},
                                  "content": {"application/json": {"schema": {"type": "object"}}}}});
    json!({
        "/collections/{collectionId}/items/{featureId}": {
            "put": write_op("Replace a feature (GeoJSON Feature; a `reason` member is kept)", "replaceFeature",
                Some(feature_body(&["application/geo+json", "application/json"])), changed.clone()),
            "patch": write_op("Update a feature with an RFC 7396 merge patch (properties, geometry, `reason`)", "updateFeature",
                Some(feature_body(&["application/merge-patch+json", "application/json", "application/geo+json"])), changed),
            "delete": write_op("Delete a feature (its history stays)", "deleteFeature", None,
                json!({"204": {"description": "Deleted"}})),
        },
        "/collections/{collectionId}/items/{featureId}/history": {"get": {
            "summary": "Every version of a feature, oldest first (who, when, why, request id); deleted features too", "operationId": "getFeatureHistory",
            "parameters": [ids[0], ids[1], {"name": "f", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json"]}}],
            "responses": {"200": {"description": "versions", "content": {"application/json": {"schema": {"type": "object"}}}},
                          "400": problem("Bad parameter"), "404": problem("No history for that feature")}}},
        "/collections/{collectionId}/items/{featureId}/history/{version}": {"get": {
            "summary": "One version of a feature as GeoJSON", "operationId": "getFeatureVersion",
            "parameters": [ids[0], ids[1], {"name": "version", "in": "path", "required": true, "schema": {"type": "integer", "minimum": 1}}],
            "responses": {"200": {"description": "the version", "content": {"application/geo+json": {"schema": {"type": "object"}}}},
                          "400": problem("Bad version"), "404": problem("No such version")}}},
        "/audit": super::audit::openapi_path(&auth()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7396_examples() {
        // RFC 7396, appendix A (a selection).
        let cases = [
            (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
            (
                json!({"a": "b"}),
                json!({"b": "c"}),
                json!({"a": "b", "b": "c"}),
            ),
            (json!({"a": "b"}), json!({"a": null}), json!({})),
            (
                json!({"a": {"b": "c"}}),
                json!({"a": {"b": "d", "c": null}}),
                json!({"a": {"b": "d"}}),
            ),
            (
                json!({"a": [{"b": "c"}]}),
                json!({"a": [1]}),
                json!({"a": [1]}),
            ),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a": "foo"}), json!("bar"), json!("bar")),
            (
                json!({"e": null}),
                json!({"a": 1}),
                json!({"e": null, "a": 1}),
            ),
            (
                json!({}),
                json!({"a": {"bb": {"ccc": null}}}),
                json!({"a": {"bb": {}}}),
            ),
        ];
        for (mut target, patch, want) in cases {
            merge_patch(&mut target, &patch);
            assert_eq!(target, want, "{patch}");
        }
    }

    #[test]
    fn if_match_reads_versions() {
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert_eq!(if_match(&h("\"7\"")).unwrap(), Some(7));
        assert_eq!(if_match(&h("W/\"12.00ab\"")).unwrap(), Some(12));
        assert_eq!(if_match(&h("*")).unwrap(), None);
        assert!(if_match(&h("\"x\"")).is_err());
        assert_eq!(
            if_match(&HeaderMap::new()).unwrap_err().status,
            StatusCode::PRECONDITION_REQUIRED
        );
    }
}
