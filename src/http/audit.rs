//! `GET /audit`: the audit log for admins, as JSON or CSV, filtered by time, user and layer.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::auth::{require, Caller};
use super::error::{ApiError, ApiResult};
use super::params::Params;
use super::AppState;
use crate::auth::Role;
use crate::store::AuditFilter;

/// Most rows one request returns (page on with `since`).
pub const MAX_AUDIT_ROWS: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(audit))
}

async fn audit(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    _headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["since", "user", "layer", "f", "limit"], |_| false)?;
    params.reject_empty()?;
    require(
        &state,
        &caller,
        Role::Admin,
        "read the audit log",
        "audit",
        &[],
    )
    .await?;
    let since = match params.get("since")? {
        None => None,
        Some(t) => {
            Some(crate::store::parse_instant(t).map_err(|e| ApiError::parameter("since", t, e))?)
        }
    };
    let limit = match params.get("limit")? {
        None => MAX_AUDIT_ROWS,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| ApiError::parameter("limit", l, "a positive whole number"))?
            .min(MAX_AUDIT_ROWS),
    };
    let csv = match params.get("f")? {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(ApiError::parameter("f", other, "json or csv")),
    };
    let filter = AuditFilter {
        since,
        user: params.get("user")?.map(str::to_string),
        layer: params.get("layer")?.map(str::to_string),
        limit,
    };
    let rows = state
        .app
        .store
        .audit_rows(&filter)
        .await
        .map_err(ApiError::internal)?;
    if csv {
        let mut out = String::new();
        let head = [
            "seq",
            "at",
            "user",
            "role",
            "address",
            "action",
            "layer",
            "ids",
            "reason",
            "request_id",
            "outcome",
            "prev_hash",
            "hash",
        ];
        crate::formats::csv::write_row(&mut out, head.into_iter());
        for r in &rows {
            let e = &r.entry;
            let cells = [
                r.seq.to_string(),
                r.at.clone(),
                e.user.clone().unwrap_or_default(),
                e.role.clone().unwrap_or_default(),
                e.address.clone().unwrap_or_default(),
                e.action.clone(),
                e.layer.clone().unwrap_or_default(),
                e.ids.join(" "),
                e.reason.clone().unwrap_or_default(),
                e.request_id.clone().unwrap_or_default(),
                e.outcome.clone(),
                r.prev_hash.clone(),
                r.hash.clone(),
            ];
            crate::formats::csv::write_row(&mut out, cells.iter().map(String::as_str));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            out,
        )
            .into_response());
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        json!({"rows": rows, "returned": rows.len()}).to_string(),
    )
        .into_response())
}

/// The OpenAPI path item of `/audit`, with the shared 401/403/429 answers.
pub fn openapi_path(auth: &Value) -> Value {
    let qp = |name: &str, d: &str| json!({"name": name, "in": "query", "required": false, "description": d, "schema": {"type": "string", "minLength": 1}});
    let mut responses = auth.clone();
    responses["200"] = json!({"description": "audit rows, oldest first", "content": {"application/json": {"schema": {"type": "object"}}, "text/csv": {"schema": {"type": "string"}}}});
    responses["400"] = json!({"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}});
    json!({"get": {"summary": "The hash-chained audit log (admins)", "operationId": "getAudit",
        "parameters": [qp("since", "RFC 3339 time: rows at or after it"), qp("user", "user name"), qp("layer", "layer id"),
                       {"name": "f", "in": "query", "required": false, "schema": {"type": "string", "enum": ["json", "csv"]}},
                       {"name": "limit", "in": "query", "required": false, "schema": {"type": "integer", "minimum": 1}}],
        "responses": responses, "security": [{"bearer": []}]}})
}
