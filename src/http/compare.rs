//! The map as it stood (`asof=` on items) and what changed between two times
//! (`GET /collections/{id}/changes`, 对比分析), both answered from the feature history.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::RwLock;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use super::html;
use super::params::{Format, Params};
use super::AppState;
use crate::engine::LayerIndex;
use crate::geom::{geodesic_area_m2, M2_PER_MU};
use crate::model::Feature;
use crate::store::{parse_instant, precise_now};

pub fn router() -> Router<AppState> {
    Router::new().route("/collections/{collection}/changes", get(changes))
}

/// For the items handler: with `asof=<RFC 3339>`, the layer rebuilt from the history as it
/// stood then; without, the live layer. Also returns the parameters without `asof`.
pub async fn as_of(
    state: &AppState,
    id: &str,
    layer: Arc<RwLock<LayerIndex>>,
    params: &Params,
) -> ApiResult<(Arc<RwLock<LayerIndex>>, Params)> {
    let rest = Params(
        params
            .0
            .iter()
            .filter(|(k, _)| k != "asof")
            .cloned()
            .collect(),
    );
    let Some(t) = params.get("asof")? else {
        return Ok((layer, rest));
    };
    let at = parse_instant(t).map_err(|e| ApiError::parameter("asof", t, e))?;
    let (meta, revision) = {
        let l = layer.read();
        (l.layer.clone(), l.revision)
    };
    let features = state
        .app
        .store
        .layer_as_of(id, &at)
        .await
        .map_err(ApiError::internal)?;
    let idx = tokio::task::spawn_blocking(move || LayerIndex::build(meta, revision, features))
        .await
        .map_err(ApiError::internal)?;
    Ok((Arc::new(RwLock::new(idx)), rest))
}

fn property_map(f: &Feature) -> serde_json::Map<String, Value> {
    let mut m = f.properties.clone();
    if let Some(n) = &f.name {
        m.insert("name".into(), Value::String(n.clone()));
    }
    if let Some(c) = &f.admin_code {
        m.insert("admin_code".into(), Value::String(c.clone()));
    }
    m
}

/// The property keys whose values differ (added, removed or changed), and `geometry` when it moved.
pub fn changed_keys(before: &Feature, after: &Feature) -> Vec<String> {
    let (a, b) = (property_map(before), property_map(after));
    let mut keys: Vec<String> = a
        .iter()
        .filter(|(k, v)| b.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(b.keys().filter(|k| !a.contains_key(*k)).cloned())
        .collect();
    keys.sort();
    if before.geometry != after.geometry {
        keys.push("geometry".into());
    }
    keys
}

fn mu(f: &Feature) -> f64 {
    f.geometry.as_ref().map_or(0.0, geodesic_area_m2) / M2_PER_MU
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// GET /collections/{id}/changes?from=&to=[&area=]: added, changed (keys and 亩 difference),
/// removed between two times.
async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["from", "to", "area", "f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    super::ogc::layer_or_404(&state, &id)?;
    let time = |name: &str| -> ApiResult<Option<String>> {
        params
            .get(name)?
            .map(|t| parse_instant(t).map_err(|e| ApiError::parameter(name, t, e)))
            .transpose()
    };
    let Some(from) = time("from")? else {
        return Err(ApiError::parameter(
            "from",
            "",
            "give from=<RFC 3339 time> (and to=, default now)",
        ));
    };
    let to = time("to")?.unwrap_or_else(precise_now);
    if to < from {
        return Err(ApiError::parameter("to", &to, "to must not be before from"));
    }
    let area =
        match params.get("area")? {
            None => None,
            Some(code) => {
                let unit = state.app.engine.resolve_admin(code).map_err(|_| {
                    ApiError::parameter("area", code, "no admin unit with that code or name")
                })?;
                Some((
                    unit.code.clone(),
                    state.app.engine.admin_area(&unit).ok_or_else(|| {
                        ApiError::parameter("area", code, "the unit has no boundary")
                    })?,
                ))
            }
        };
    let store = &state.app.store;
    let before = store
        .layer_as_of(&id, &from)
        .await
        .map_err(ApiError::internal)?;
    let after = store
        .layer_as_of(&id, &to)
        .await
        .map_err(ApiError::internal)?;
    let touches = |f: &Feature| match (&area, &f.geometry) {
        (None, _) => true,
        (Some((code, a)), g) => {
            g.as_ref().is_some_and(|g| a.intersects(g))
                || f.admin_code
                    .as_deref()
                    .is_some_and(|c| c.starts_with(code.as_str()))
        }
    };
    let before: BTreeMap<&str, &Feature> = before.iter().map(|f| (f.id.as_str(), f)).collect();
    let after: BTreeMap<&str, &Feature> = after.iter().map(|f| (f.id.as_str(), f)).collect();
    let summary = |f: &Feature| json!({"id": f.id, "name": f.name, "version": f.version, "mu": round2(mu(f))});
    let added: Vec<Value> = after
        .iter()
        .filter(|(k, f)| !before.contains_key(*k) && touches(f))
        .map(|(_, f)| summary(f))
        .collect();
    let removed: Vec<Value> = before
        .iter()
        .filter(|(k, f)| !after.contains_key(*k) && touches(f))
        .map(|(_, f)| summary(f))
        .collect();
    let changed: Vec<Value> = before
        .iter()
        .filter_map(|(k, b)| after.get(k).map(|a| (b, a)))
        .filter(|(b, a)| b.version != a.version && (touches(b) || touches(a)))
        .map(|(b, a)| {
            json!({"id": a.id, "name": a.name, "from_version": b.version, "to_version": a.version,
                   "changed": changed_keys(b, a), "mu_before": round2(mu(b)), "mu_after": round2(mu(a)),
                   "mu_difference": round2(mu(a) - mu(b))})
        })
        .collect();
    let doc = json!({"collection": id, "from": from, "to": to, "area": area.as_ref().map(|(c, _)| c),
                     "added": added, "changed": changed, "removed": removed});
    if format == Format::Html {
        let mut body = format!("<p>{} → {}</p>", html::escape(&from), html::escape(&to));
        for (title, key) in [
            ("新增 Added", "added"),
            ("变更 Changed", "changed"),
            ("删除 Removed", "removed"),
        ] {
            let rows = doc[key].as_array().cloned().unwrap_or_default();
            let _ = write!(body, "<h2>{title} ({})</h2>", rows.len());
            body.push_str(&html::value(&Value::Array(rows)));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            html::page(&format!("{id}: changes"), &body),
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        doc.to_string(),
    )
        .into_response())
}

/// The OpenAPI path item of `/collections/{collectionId}/changes`.
pub fn openapi_path() -> Value {
    let problem = json!({"description": "Bad parameter or unknown collection", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}});
    let t = |name: &str, required: bool, d: &str| json!({"name": name, "in": "query", "required": required, "description": d, "schema": {"type": "string", "minLength": 1}});
    json!({"get": {"summary": "Features added, changed (keys, 亩 difference) and removed between two times (对比分析)", "operationId": "getChanges",
        "parameters": [{"$ref": "#/components/parameters/collectionId"}, t("from", true, "RFC 3339 time"), t("to", false, "RFC 3339 time (default now)"),
                       t("area", false, "admin code or name: only features meeting it"), {"$ref": "#/components/parameters/f"}],
        "responses": {"200": {"description": "the changes", "content": {"application/json": {"schema": {"type": "object"}}, "text/html": {}}},
                      "400": problem.clone(), "404": problem}}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_keys_name_properties_and_geometry() {
        let mut props = serde_json::Map::new();
        props.insert("status".into(), json!("planned"));
        props.insert("gone".into(), json!(1));
        let a = Feature::from_parts("p", "1".into(), props, None);
        let mut b = a.clone();
        b.properties.insert("status".into(), json!("started"));
        b.properties.shift_remove("gone");
        b.properties.insert("new".into(), json!(true));
        b.name = Some("x".into());
        b.geometry = Some(geo::Geometry::Point(geo::point!(x: 105.7, y: 29.7)));
        assert_eq!(
            changed_keys(&a, &b),
            ["gone", "name", "new", "status", "geometry"]
        );
        assert!(changed_keys(&a, &a).is_empty());
    }
}
