//! Plans, indicators and project progress as resources: `/plans`, `/indicators` (with computed
//! status), observations and progress reports. Writes go through [`authorize_write`].

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};
use std::fmt::Write as _;

use super::auth::{require, Caller};
use super::error::{ApiError, ApiResult};
use super::html;
use super::params::{base_url, etag, not_modified, respond, Format, Params};
use super::query::{lookup_error, text_param};
use super::AppState;
use crate::auth::Role;
use crate::monitor::indicators::{assess, IndicatorStatus, CATEGORIES};
use crate::monitor::lifecycle::PROJECT_LAYERS;
use crate::monitor::report::IndicatorRow;
use crate::monitor::service::MonitorError;
use crate::monitor::{format_date, parse_date, today};
use crate::store::AuditEntry;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/plans", get(plans))
        .route("/plans/{id}", get(plan))
        .route("/indicators", get(indicators))
        .route("/indicators/{id}", get(indicator))
        .route(
            "/indicators/{id}/observations",
            get(observations).post(add_observation),
        )
        .route("/projects/{id}/progress", get(progress).post(add_progress))
}

/// Who writes.
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    caller: Caller,
    role: Role,
}

/// THE gate for every write of indicators and progress: the actor when the caller is signed in
/// as an editor (or higher) whose districts/towns include `scope_code` (the indicator's scope or
/// the project's admin code; a district-wide record needs a district-wide editor). 401 without
/// a token, 403 for a viewer or another district's editor; every refusal is audited.
pub async fn authorize_write(
    state: &AppState,
    caller: &Caller,
    scope_code: &str,
    action: &str,
    target: &str,
) -> Result<Actor, ApiError> {
    let p = require(
        state,
        caller,
        Role::Editor,
        action,
        target,
        &[scope_code.to_string()],
    )
    .await?;
    if p.scoped() && !p.scope.iter().any(|s| scope_code.starts_with(s.as_str())) {
        let _ = state
            .app
            .store
            .audit(&AuditEntry {
                user: Some(p.name.clone()),
                role: Some(p.role.as_str().into()),
                address: caller.address.clone(),
                action: action.into(),
                layer: Some(target.into()),
                ids: vec![scope_code.to_string()],
                reason: None,
                request_id: caller.request_id.clone(),
                outcome: format!("refused: {scope_code} is outside {}", p.scope.join(",")),
            })
            .await;
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "OutOfScope",
            format!(
                "'{}' may write in {} only; this record belongs to {scope_code}",
                p.name,
                p.scope.join(", ")
            ),
        )
        .with_details(json!({"user": p.name, "districts": p.scope, "scope": scope_code})));
    }
    Ok(Actor {
        name: p.name.clone(),
        caller: caller.clone(),
        role: p.role,
    })
}

/// The audit row of a write that went through.
async fn audit_done(state: &AppState, actor: &Actor, action: &str, target: &str, id: &str) {
    let entry = AuditEntry {
        user: Some(actor.name.clone()),
        role: Some(actor.role.as_str().into()),
        address: actor.caller.address.clone(),
        action: action.into(),
        layer: Some(target.into()),
        ids: vec![id.to_string()],
        reason: None,
        request_id: actor.caller.request_id.clone(),
        outcome: "ok".into(),
    };
    if let Err(e) = state.app.store.audit(&entry).await {
        tracing::error!(error = %e, action, "could not append the audit row of a write that was made");
    }
}

/// An error as a response; a 401 says how to authenticate.
pub fn error_response(e: ApiError) -> Response {
    let unauthorized = e.status == StatusCode::UNAUTHORIZED;
    let mut r = e.into_response();
    if unauthorized {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

pub fn monitor_error(e: MonitorError) -> ApiError {
    match e {
        MonitorError::Invalid(problems) => {
            ApiError::new(StatusCode::BAD_REQUEST, "InvalidInput", problems.join("; "))
                .with_details(json!({"problems": problems}))
        }
        MonitorError::NotFound(what) => ApiError::not_found(what),
        MonitorError::Store(crate::store::StoreError::Busy) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Busy",
            "the database is busy with another write; try again shortly",
        )
        .retry_after(1),
        other => ApiError::internal(other),
    }
}

/// Parses the usual parameters: only `known` (and `f`), none empty; returns the format.
pub fn parse_params(
    q: Option<&str>,
    headers: &HeaderMap,
    known: &[&str],
) -> ApiResult<(Params, Format)> {
    let params = Params::parse(q);
    params.reject_unknown(known, |k| k == "f")?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, headers)?;
    Ok((params, format))
}

/// `asof=YYYY-MM-DD`, default today.
pub fn parse_asof(params: &Params) -> ApiResult<time::Date> {
    match text_param(params, "asof")? {
        None => Ok(today()),
        Some(t) => parse_date(t).map_err(|e| ApiError::parameter("asof", t, e)),
    }
}

/// JSON or an HTML page, with an ETag over the body.
pub fn answer(
    headers: &HeaderMap,
    format: Format,
    title: &str,
    doc: &Value,
    body: impl FnOnce() -> String,
) -> Response {
    let (ct, text) = if format == Format::Html {
        ("text/html; charset=utf-8", html::page(title, &body()))
    } else {
        ("application/json", doc.to_string())
    };
    let tag = etag(&[ct, &text]);
    if let Some(r) = not_modified(headers, &tag) {
        return r;
    }
    respond(ct, Some(&tag), text)
}

fn store_error(e: crate::store::StoreError) -> ApiError {
    monitor_error(MonitorError::Store(e))
}

async fn plans(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (_, format) = parse_params(q.as_deref(), &headers, &[])?;
    let base = base_url(&headers);
    let list = state.app.store.plans().await.map_err(store_error)?;
    let items: Vec<Value> = list
        .iter()
        .map(|p| {
            let mut v = json!(p);
            v["links"] = json!([{"href": format!("{base}/plans/{}", p.id), "rel": "item", "type": "application/json", "title": p.title}]);
            v
        })
        .collect();
    let doc = json!({"plans": items, "links": [{"href": format!("{base}/plans"), "rel": "self", "type": "application/json"}]});
    Ok(answer(&headers, format, "规划 Plans", &doc, || {
        let mut b = String::from(
            "<table><tr><th>id</th><th>规划</th><th>发文机关</th><th>期限</th><th>区县</th></tr>",
        );
        for p in &list {
            let _ = write!(
                b,
                "<tr><td><a href=\"/plans/{0}?f=html\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}–{4}</td><td>{5}</td></tr>",
                html::escape(&p.id),
                html::escape(&p.title),
                html::escape(&p.issuer),
                p.period.start,
                p.period.end,
                html::escape(&p.district)
            );
        }
        b.push_str("</table>");
        b
    }))
}

async fn plan(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (_, format) = parse_params(q.as_deref(), &headers, &[])?;
    let base = base_url(&headers);
    let list = state.app.store.plans().await.map_err(store_error)?;
    let p = list
        .iter()
        .find(|p| p.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no plan '{id}'; /plans lists them")))?;
    // Features of the plan in every layer (each names its plan in `plan`).
    let mut layers = Vec::new();
    for idx in state.app.engine.layers() {
        let idx = idx.read();
        let n = idx
            .iter()
            .filter(|(_, f)| f.properties.get("plan").and_then(Value::as_str) == Some(&p.id))
            .count();
        if n > 0 {
            let l = &idx.layer.id;
            layers.push(
                json!({"layer": l, "title": idx.layer.title_zh, "features": n,
                "href": format!("{base}/collections/{l}/items?plan={}", p.id)}),
            );
        }
    }
    let indicators = state.app.store.indicators().await.map_err(store_error)?;
    let n_ind = indicators.iter().filter(|i| i.plan == p.id).count();
    let mut doc = json!(p);
    doc["layers"] = json!(layers);
    doc["indicator_count"] = json!(n_ind);
    doc["links"] = json!([
        {"href": format!("{base}/plans/{}", p.id), "rel": "self", "type": "application/json"},
        {"href": format!("{base}/indicators?plan={}", p.id), "rel": "related", "type": "application/json", "title": "指标 indicators"},
        {"href": format!("{base}/collections/projects/items?plan={}", p.id), "rel": "related", "type": "application/geo+json", "title": "项目 projects"},
        {"href": format!("{base}/monitoring/{}", p.focus_code), "rel": "related", "type": "application/json", "title": "监测 monitoring"},
    ]);
    Ok(answer(&headers, format, &p.title, &doc, || {
        let mut b = html::links(&doc["links"]);
        b.push_str(
            "<h2>图层 Features by layer</h2><table><tr><th>layer</th><th>features</th></tr>",
        );
        for l in &layers {
            let _ = write!(
                b,
                "<tr><td><a href=\"{}&amp;f=html\">{}</a></td><td>{}</td></tr>",
                html::escape(l["href"].as_str().unwrap_or("")),
                html::escape(l["title"].as_str().unwrap_or("")),
                l["features"]
            );
        }
        b.push_str("</table><h2>规划 Plan</h2>");
        let mut plain = json!(p);
        plain["indicator_count"] = json!(n_ind);
        b.push_str(&html::value(&plain));
        b
    }))
}

fn indicator_json(row: &IndicatorRow, base: &str) -> Value {
    let mut v = json!(row);
    v["links"] = json!([{"href": format!("{base}/indicators/{}", row.indicator.id), "rel": "item", "type": "application/json"}]);
    v
}

fn indicator_table(rows: &[IndicatorRow]) -> String {
    let mut b = String::from("<table><tr><th>id</th><th>指标</th><th>范围</th><th>基期</th><th>目标</th><th>最新</th><th>完成进度</th><th>状态</th></tr>");
    for r in rows {
        let i = &r.indicator;
        let a = &r.assessment;
        let num = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v}"));
        let _ = write!(
            b,
            "<tr><td><a href=\"/indicators/{0}?f=html\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3} ({4})</td><td>{5} {6} ({7})</td><td>{8} {9}</td><td>{10}</td><td>{11}</td></tr>",
            html::escape(&i.id),
            html::escape(&i.name),
            html::escape(&i.scope_text),
            num(i.baseline_value),
            i.baseline_year.map_or("—".into(), |y| y.to_string()),
            i.target_value,
            html::escape(&i.unit),
            i.target_year,
            num(a.latest_value),
            html::escape(a.latest_date.as_deref().unwrap_or("")),
            a.share_of_way.map_or("—".into(), |s| format!("{:.1}%", s * 100.0)),
            r.status_zh
        );
    }
    b.push_str("</table>");
    b
}

async fn indicators(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (params, format) = parse_params(
        q.as_deref(),
        &headers,
        &["plan", "area", "category", "status", "asof"],
    )?;
    let asof = parse_asof(&params)?;
    let base = base_url(&headers);
    let store = &state.app.store;
    let all = store.indicators().await.map_err(store_error)?;
    let plan = text_param(&params, "plan")?;
    if let Some(p) = plan {
        let plans = store.plans().await.map_err(store_error)?;
        if !plans.iter().any(|x| x.id == p) {
            let ids: Vec<&str> = plans.iter().map(|x| x.id.as_str()).collect();
            return Err(ApiError::parameter(
                "plan",
                p,
                format!("no such plan; plans: {}", ids.join(", ")),
            ));
        }
    }
    let area = match text_param(&params, "area")? {
        None => None,
        Some(a) => Some(
            state
                .app
                .engine
                .resolve_admin(a)
                .map_err(|e| lookup_error("area", e))?
                .code,
        ),
    };
    let category = text_param(&params, "category")?;
    if let Some(c) = category {
        if !CATEGORIES.contains(&c) {
            return Err(ApiError::parameter(
                "category",
                c,
                format!("no such category; categories: {}", CATEGORIES.join(", ")),
            ));
        }
    }
    let status = match text_param(&params, "status")? {
        None => None,
        Some(s) => Some(IndicatorStatus::parse(s).ok_or_else(|| {
            ApiError::parameter("status", s, "use achieved, on_track, behind or no_data")
        })?),
    };
    let observations = store.observations().await.map_err(store_error)?;
    let rows: Vec<IndicatorRow> = all
        .into_iter()
        .filter(|i| plan.is_none_or(|p| i.plan == p))
        .filter(|i| area.as_deref().is_none_or(|a| i.scope_code.starts_with(a)))
        .filter(|i| category.is_none_or(|c| i.category == c))
        .map(|i| {
            let assessment = assess(&i, &observations, asof);
            IndicatorRow {
                status_zh: assessment.status.zh(),
                indicator: i,
                assessment,
            }
        })
        .filter(|r| status.is_none_or(|s| r.assessment.status == s))
        .collect();
    let mut by_status = serde_json::Map::new();
    for s in IndicatorStatus::ALL {
        let n = rows.iter().filter(|r| r.assessment.status == s).count();
        by_status.insert(s.as_str().into(), n.into());
    }
    let doc = json!({
        "asof": format_date(asof),
        "numberMatched": rows.len(),
        "by_status": by_status,
        "tolerance": crate::monitor::indicators::TOLERANCE,
        "indicators": rows.iter().map(|r| indicator_json(r, &base)).collect::<Vec<_>>(),
        "links": [{"href": format!("{base}/indicators?{}", params.with("f", None)), "rel": "self", "type": "application/json"}],
    });
    Ok(answer(&headers, format, "指标 Indicators", &doc, || {
        let mut b = format!("<p>截至 {} · {} 项</p>", format_date(asof), rows.len());
        b.push_str(&html::value(&doc["by_status"]));
        b.push_str(&indicator_table(&rows));
        b
    }))
}

async fn indicator(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (params, format) = parse_params(q.as_deref(), &headers, &["asof"])?;
    let asof = parse_asof(&params)?;
    let base = base_url(&headers);
    let store = &state.app.store;
    let ind = store
        .indicators()
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|i| i.id == id)
        .ok_or_else(|| {
            ApiError::not_found(format!("no indicator '{id}'; /indicators lists them"))
        })?;
    let observations: Vec<_> = store
        .observations()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|o| o.indicator == id)
        .collect();
    let assessment = assess(&ind, &observations, asof);
    let row = IndicatorRow {
        status_zh: assessment.status.zh(),
        indicator: ind,
        assessment,
    };
    let mut doc = indicator_json(&row, &base);
    doc["asof"] = json!(format_date(asof));
    doc["observations"] = json!(observations);
    doc["links"] = json!([
        {"href": format!("{base}/indicators/{id}"), "rel": "self", "type": "application/json"},
        {"href": format!("{base}/plans/{}", row.indicator.plan), "rel": "up", "type": "application/json", "title": "规划 plan"},
    ]);
    Ok(answer(&headers, format, &row.indicator.name, &doc, || {
        let mut b = html::links(&doc["links"]);
        b.push_str(&indicator_table(std::slice::from_ref(&row)));
        if let Some(q) = &row.indicator.quote {
            let _ = write!(b, "<blockquote>{}</blockquote>", html::escape(q));
        }
        b.push_str("<h2>观测 Observations</h2>");
        b.push_str(&html::value(&doc["observations"]));
        b
    }))
}

async fn observations(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (_, format) = parse_params(q.as_deref(), &headers, &[])?;
    let store = &state.app.store;
    if !store
        .indicators()
        .await
        .map_err(store_error)?
        .iter()
        .any(|i| i.id == id)
    {
        return Err(ApiError::not_found(format!("no indicator '{id}'")));
    }
    let list: Vec<_> = store
        .observations()
        .await
        .map_err(store_error)?
        .into_iter()
        .filter(|o| o.indicator == id)
        .collect();
    let doc = json!({"indicator": id, "observations": list});
    Ok(answer(
        &headers,
        format,
        &format!("观测 {id}"),
        &doc,
        || html::value(&doc),
    ))
}

/// `POST /indicators/{id}/observations`: an editor of the indicator's scope (see [`authorize_write`]).
async fn add_observation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let run = async {
        let ind = state
            .app
            .store
            .indicators()
            .await
            .map_err(store_error)?
            .into_iter()
            .find(|i| i.id == id);
        let scope = ind
            .as_ref()
            .map_or("?", |i| i.scope_code.as_str())
            .to_string();
        let actor =
            authorize_write(&state, &caller, &scope, "add observation", "indicators").await?;
        let ind = ind.ok_or_else(|| ApiError::not_found(format!("no indicator '{id}'")))?;
        let mut list = parse_observation_body(&headers, &body)?;
        for (row, o) in list.iter_mut().enumerate() {
            if o.indicator.is_empty() {
                o.indicator = ind.id.clone();
            } else if o.indicator != ind.id {
                // The caller was authorized for this indicator's scope only.
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidBody",
                    format!(
                        "observation {row} is for indicator '{}', not '{}'; post it to that \
                         indicator's observations",
                        o.indicator, ind.id
                    ),
                ));
            }
        }
        let seqs = crate::monitor::service::add_observations(&state.app.store, &list, &actor.name)
            .await
            .map_err(monitor_error)?;
        audit_done(&state, &actor, "add observation", "indicators", &ind.id).await;
        Ok::<Response, ApiError>(
            (
                StatusCode::CREATED,
                axum::Json(json!({"added": seqs.len(), "seq": seqs})),
            )
                .into_response(),
        )
    };
    run.await.unwrap_or_else(error_response)
}

fn parse_observation_body(
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Vec<crate::monitor::Observation>> {
    let text = std::str::from_utf8(body).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidBody",
            "the body is not UTF-8",
        )
    })?;
    match super::params::media_type_essence(headers).as_deref() {
        Some("text/csv") => {
            crate::monitor::service::observations_from_csv(text).map_err(monitor_error)
        }
        Some("application/json") => {
            let v: Value = serde_json::from_str(text).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidBody",
                    format!("not JSON: {e}"),
                )
            })?;
            let items = if v.is_array() { v } else { json!([v]) };
            serde_json::from_value::<Vec<crate::monitor::Observation>>(items).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidBody",
                    format!("an observation is {{value, date, source, note}}: {e}"),
                )
            })
        }
        other => Err(super::params::unsupported_media_type(
            other.unwrap_or("none"),
            &["application/json", "text/csv"],
        )),
    }
}

async fn progress(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (_, format) = parse_params(q.as_deref(), &headers, &[])?;
    let layer = PROJECT_LAYERS[0];
    let feature = state
        .app
        .engine
        .layer(layer)
        .and_then(|idx| idx.read().get(&id))
        .ok_or_else(|| ApiError::not_found(format!("no project '{id}' in layer {layer}")))?;
    let history = state
        .app
        .store
        .progress_history(layer, &id)
        .await
        .map_err(store_error)?;
    let base = base_url(&headers);
    let doc = json!({
        "layer": layer, "id": id, "name": feature.name,
        "current": crate::monitor::lifecycle::current(&feature, None),
        "history": history,
        "links": [{"href": format!("{base}/collections/{layer}/items/{id}"), "rel": "describedby", "type": "application/geo+json"}],
    });
    Ok(answer(
        &headers,
        format,
        feature.name.as_deref().unwrap_or(&id),
        &doc,
        || {
            let mut b = html::links(&doc["links"]);
            b.push_str("<h2>现状 Current</h2>");
            b.push_str(&html::value(&doc["current"]));
            b.push_str("<h2>进度记录 History</h2>");
            b.push_str(&html::value(&doc["history"]));
            b
        },
    ))
}

/// `POST /projects/{id}/progress`: an editor of the project's unit (see [`authorize_write`]).
async fn add_progress(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let run = async {
        let layer = PROJECT_LAYERS[0];
        let scope = state
            .app
            .engine
            .layer(layer)
            .and_then(|idx| idx.read().get(&id).and_then(|f| f.admin_code.clone()))
            .unwrap_or_else(|| "?".into());
        let actor = authorize_write(&state, &caller, &scope, "record progress", layer).await?;
        let update: crate::monitor::service::ProgressUpdate = serde_json::from_slice(&body)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "InvalidBody", format!("a progress report is {{status, progress_percent, investment_done_wan_yuan, reported_on, source, note}}: {e}")))?;
        let p =
            crate::monitor::service::record_progress(&state.app, layer, &id, &update, &actor.name)
                .await
                .map_err(monitor_error)?;
        audit_done(&state, &actor, "record progress", layer, &id).await;
        Ok::<Response, ApiError>((StatusCode::CREATED, axum::Json(json!(p))).into_response())
    };
    run.await.unwrap_or_else(error_response)
}

/// The OpenAPI paths of plans, indicators, project progress and monitoring (merged into `/api`).
pub fn openapi_paths() -> Value {
    let problem = || {
        json!({"description": "Problem: {\"code\", \"description\"} naming the parameter or resource",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}})
    };
    let text = || json!({"type": "string", "minLength": 1});
    let f = json!({"$ref": "#/components/parameters/f"});
    let asof = json!({"name": "asof", "in": "query", "required": false,
        "description": "the date to assess on, YYYY-MM-DD (default today): observations after it are ignored, lateness is counted to it",
        "schema": {"type": "string", "format": "date", "minLength": 1}});
    let path = |name: &str, d: &str| json!({"name": name, "in": "path", "required": true, "description": d, "schema": text()});
    let q = |name: &str, d: &str, schema: Value| json!({"name": name, "in": "query", "required": false, "description": d, "schema": schema});
    let read = |summary: &str, op: &str, params: Vec<Value>| {
        json!({"summary": summary, "operationId": op, "parameters": params,
            "responses": {"200": {"description": summary, "content": {"application/json": {}, "text/html": {}}},
                "304": {"description": "Not modified (If-None-Match matched the ETag)"},
                "400": problem(), "404": problem(),
                "503": {"description": "the database is busy; Retry-After says when to come back", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}}}})
    };
    let write = |summary: &str, op: &str, params: Vec<Value>, body: Value| {
        json!({"summary": summary, "operationId": op, "parameters": params,
            "security": [{"bearer": []}],
            "requestBody": {"required": true, "content": body},
            "responses": {"201": {"description": "recorded", "content": {"application/json": {}}},
                "400": problem(), "401": {"description": "no or unknown credentials: writes need an editor's token (Authorization: Bearer)",
                    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}},
                "403": problem(), "404": problem(), "413": problem(), "415": problem(), "429": problem(),
                "503": {"description": "the database is busy", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}}}})
    };
    let id = path("id", "indicator id, e.g. 004-001");
    let plan_ids: Vec<String> = crate::monitor::plans::bundled()
        .unwrap_or_default()
        .into_iter()
        .map(|p| p.id)
        .collect();
    json!({
        "/plans": {"get": read("The five plans (规划): title, issuing body, period, district, document", "getPlans", vec![f.clone()])},
        "/plans/{id}": {"get": read("One plan with its features per layer, its indicators and projects", "getPlan", vec![path("id", "plan id, e.g. 004"), f.clone()])},
        "/indicators": {"get": read("Indicators (指标) with computed status: achieved, on_track, behind (below the line from baseline to target by more than the tolerance), no_data; and the share of the way", "getIndicators",
            vec![q("plan", "plan id (see /plans)", json!({"type": "string", "enum": plan_ids})), q("area", "admin code or name: indicators of that unit and below", text()),
                 q("category", "what the indicator measures", json!({"type": "string", "enum": CATEGORIES})),
                 q("status", "achieved, on_track, behind or no_data", json!({"type": "string", "enum": ["achieved", "on_track", "behind", "no_data"]})),
                 asof.clone(), f.clone()])},
        "/indicators/{id}": {"get": read("One indicator with its observations and status", "getIndicator", vec![id.clone(), asof.clone(), f.clone()])},
        "/indicators/{id}/observations": {
            "get": read("The indicator's observations, in the order recorded (append-only)", "getObservations", vec![id.clone(), f.clone()]),
            "post": write("Add observations {value, date, source, note} (JSON object or array, or CSV with a header indicator,value,date,source,note)", "addObservations", vec![id],
                json!({"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}))},
        "/projects/{id}/progress": {
            "get": read("A project's lifecycle: current status and every progress report", "getProjectProgress", vec![path("id", "feature id in layer projects"), f.clone()]),
            "post": write("Report a project's progress {status, start_date, end_date, progress_percent, investment_done_wan_yuan, reported_on, source, note}", "addProjectProgress",
                vec![path("id", "feature id in layer projects")], json!({"application/json": {"schema": {"type": "object"}}}))},
        "/monitoring/{area}": {"get": read("实施监测评估预警: projects by status with investment planned and done, late projects (预警, months late), indicators by status, per child unit", "getMonitoring",
            vec![path("area", "admin code or name (district, town or village)"), asof.clone(), f])},
        "/monitoring/{area}/report.xlsx": {"get": {"summary": "The monitoring report as a spreadsheet: sheets 项目, 指标, 预警", "operationId": "getMonitoringReport",
            "parameters": [path("area", "admin code or name"), asof],
            "responses": {"200": {"description": "the .xlsx", "content": {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}},
                "400": problem(), "404": problem(),
                "503": {"description": "the database is busy", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}}}}},
    })
}
