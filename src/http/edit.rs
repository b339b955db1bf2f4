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

/// The signed-in user a write to `layer` needs (401/403 first, before the body is looked at).
async fn writer(
    state: &AppState,
    caller: &Caller,
    layer: &str,
    fid: &str,
    action: &str,
) -> ApiResult<Principal> {
    read_only(state)?;
    require(
        state,
        caller,
        role_for_layer(layer),
        action,
        layer,
        &[fid.to_string()],
    )
    .await
}

/// Shared by PUT and PATCH: checks the scope of the old and new feature, writes it if still at
/// the version If-Match names, shows it to readers and answers with its new ETag.
#[allow(clippy::too_many_arguments)]
async fn write_replacement(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    layer: &str,
    fid: &str,
    current: Feature,
    mut new: Feature,
    expected: Option<i64>,
    reason_member: Option<&str>,
    action: &str,
    p: &Principal,
) -> ApiResult<Response> {
    let reason = change_reason(state, headers, reason_member)?;
    check_scope(state, caller, p, action, &[&current, &new]).await?;
    new.id = fid.to_string();
    new.layer = layer.to_string();
    let expected = expected.unwrap_or(current.version);
    let version = state
        .app
        .store
        .replace_feature(&new, expected, &caller.actor(reason), action)
        .await
        .map_err(|e| edit_error(e, layer, fid))?;
    state.app.catch_up().await.map_err(ApiError::internal)?;
    let mut r = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"collection": layer, "feature": fid, "version": version}).to_string(),
    )
        .into_response();
    r.headers_mut().insert(header::ETAG, version_tag(version));
    Ok(r)
}

async fn current_or_404(state: &AppState, layer: &str, fid: &str) -> ApiResult<Feature> {
    if state.app.engine.layer(layer).is_none() {
        return Err(
            ApiError::not_found(format!("no collection '{layer}'; see /collections"))
                .with_details(json!({"collection": layer})),
        );
    }
    state
        .app
        .store
        .current_feature(layer, fid)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| not_found(layer, fid))
}

/// The `reason` member of a JSON body, if any.
fn reason_member(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct WithReason {
        reason: Option<String>,
    }
    serde_json::from_slice::<WithReason>(body)
        .ok()
        .and_then(|w| w.reason)
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
    let p = writer(&state, &caller, &layer, &fid, "replace").await?;
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["crs"], |_| false)?;
    params.reject_empty()?;
    let expected = if_match(&headers)?;
    json_body(&headers, &["application/geo+json", "application/json"])?;
    let current = current_or_404(&state, &layer, &fid).await?;
    let crs = body_crs(&headers, &params)?;
    let new = decode_one(&body, &layer, crs)?;
    let reason = reason_member(&body);
    write_replacement(
        &state,
        &caller,
        &headers,
        &layer,
        &fid,
        current,
        new,
        expected,
        reason.as_deref(),
        "replace",
        &p,
    )
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
    let p = writer(&state, &caller, &layer, &fid, "update").await?;
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["crs"], |_| false)?;
    params.reject_empty()?;
    let expected = if_match(&headers)?;
    json_body(
        &headers,
        &[
            "application/merge-patch+json",
            "application/json",
            "application/geo+json",
        ],
    )?;
    let patch: Value = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            format!("body is not JSON: {e}; nothing was changed"),
        )
    })?;
    if !patch.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "a merge patch is a JSON object, e.g. {\"properties\": {\"status\": \"started\"}}",
        ));
    }
    let crs = body_crs(&headers, &params)?;
    if crs.is_some() && patch.get("geometry").is_none_or(Value::is_null) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "Content-Crs applies to a patched geometry; this patch has none",
        )
        .with_details(json!({"parameter": "Content-Crs"})));
    }
    let current = current_or_404(&state, &layer, &fid).await?;
    let mut doc = String::new();
    geojson::write_feature(&mut doc, &current, &PropertySelection::All, None, &[]);
    let mut doc: Value = serde_json::from_str(&doc).map_err(ApiError::internal)?;
    let reason = patch
        .get("reason")
        .and_then(Value::as_str)
        .map(str::to_string);
    let mut patch = patch;
    if let Some(p) = patch.as_object_mut() {
        p.shift_remove("reason");
        if p.get("id")
            .is_some_and(|id| id.as_str() != Some(fid.as_str()))
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidBody",
                "a feature's id cannot be patched",
            ));
        }
    }
    merge_patch(&mut doc, &patch);
    let bytes = serde_json::to_vec(&doc).map_err(ApiError::internal)?;
    let new = decode_one(&bytes, &layer, crs)?;
    write_replacement(
        &state,
        &caller,
        &headers,
        &layer,
        &fid,
        current,
        new,
        expected,
        reason.as_deref(),
        "update",
        &p,
    )
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
    let p = writer(&state, &caller, &layer, &fid, "delete").await?;
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&[], |_| false)?;
    let expected = if_match(&headers)?;
    let reason = change_reason(&state, &headers, None)?;
    let current = current_or_404(&state, &layer, &fid).await?;
    check_scope(&state, &caller, &p, "delete", &[&current]).await?;
    let expected = expected.unwrap_or(current.version);
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
