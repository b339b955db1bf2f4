//! 实施监测评估预警: `GET /monitoring/{area}` — an area's projects by status with investment,
//! late projects (预警), indicators by status, per child unit — and the same as a spreadsheet,
//! `GET /monitoring/{area}/report.xlsx`.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::fmt::Write as _;

use super::error::{ApiError, ApiResult};
use super::html;
use super::plans::{answer, monitor_error, parse_asof, parse_params};
use super::query::lookup_error;
use super::AppState;
use crate::monitor::report::{Monitoring, ProjectRow};
use crate::monitor::service;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/monitoring/{area}", get(monitoring))
        .route("/monitoring/{area}/report.xlsx", get(report_xlsx))
}

async fn build(
    state: &AppState,
    area: &str,
    q: Option<&str>,
    headers: &HeaderMap,
) -> ApiResult<(Monitoring, super::params::Format)> {
    let (params, format) = parse_params(q, headers, &["asof"])?;
    let asof = parse_asof(&params)?;
    let unit = state
        .app
        .engine
        .resolve_admin(area)
        .map_err(|e| lookup_error("area", e))?;
    let m = service::monitoring(&state.app, &unit, asof)
        .await
        .map_err(monitor_error)?;
    Ok((m, format))
}

fn late_table(rows: &[ProjectRow]) -> String {
    let mut b = String::from("<table><tr><th>项目</th><th>规划</th><th>所在区域</th><th>状态</th><th>结束日期</th><th>逾期（月）</th><th>进度</th></tr>");
    for r in rows {
        let _ = write!(
            b,
            "<tr><td><a href=\"/collections/{}/items/{}?f=html\">{}</a></td><td><a href=\"/plans/{3}?f=html\">{3}</a></td><td>{4}</td><td>{5}</td><td>{6}</td><td>{7}</td><td>{8}</td></tr>",
            html::escape(&r.layer),
            html::escape(&r.id),
            html::escape(&r.name),
            html::escape(&r.plan),
            html::escape(&r.admin_names.join("、")),
            r.status_zh,
            html::escape(r.end_date.as_deref().unwrap_or("—")),
            r.months_late.map_or("—".into(), |m| m.to_string()),
            r.progress_percent.map_or("—".into(), |p| format!("{p}%")),
        );
    }
    b.push_str("</table>");
    b
}

fn counts_cells(c: &Value) -> String {
    let p = &c["projects"];
    let n = |s: &str| p[s]["count"].as_u64().unwrap_or(0);
    let i = &c["indicators"];
    format!(
        "<td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} / {:.1}</td><td>{}</td><td>{} / {} / {} / {}</td>",
        c["projects_total"],
        n("planned"),
        n("started"),
        n("completed"),
        n("suspended") + n("cancelled"),
        c["investment_planned_wan_yuan"].as_f64().unwrap_or(0.0),
        c["investment_done_wan_yuan"].as_f64().unwrap_or(0.0),
        c["late"],
        i["achieved"], i["on_track"], i["behind"], i["no_data"],
    )
}

const COUNT_HEADER: &str = "<th>项目</th><th>计划</th><th>在建</th><th>完成</th><th>暂停/撤销</th><th>投资 计划/完成（万元）</th><th>预警</th><th>指标 达成/正常/滞后/无数据</th>";

async fn monitoring(
    State(state): State<AppState>,
    Path(area): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (m, format) = build(&state, &area, q.as_deref(), &headers).await?;
    let base = super::params::base_url(&headers);
    let mut doc = json!(m);
    let code = &m.area.code;
    doc["links"] = json!([
        {"href": format!("{base}/monitoring/{code}?asof={}", m.asof), "rel": "self", "type": "application/json"},
        {"href": format!("{base}/monitoring/{code}/report.xlsx?asof={}", m.asof), "rel": "alternate", "type": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "title": "监测报告 (.xlsx)"},
        {"href": format!("{base}/areas/{code}"), "rel": "related", "type": "application/json", "title": "the area"},
        {"href": format!("{base}/indicators?area={code}"), "rel": "related", "type": "application/json", "title": "指标 indicators"},
    ]);
    let title = format!("{} 实施监测评估预警", m.area.name);
    Ok(answer(&headers, format, &title, &doc, || {
        let mut b = format!("<p>截至 {} · <code>{}</code> · <a href=\"/monitoring/{}/report.xlsx?asof={}\">下载报告 .xlsx</a></p>",
            html::escape(&m.asof), html::escape(code), html::escape(code), html::escape(&m.asof));
        let _ = write!(
            b,
            "<h2>总体 Summary</h2><table><tr>{COUNT_HEADER}</tr><tr>{}</tr></table>",
            counts_cells(&doc["summary"])
        );
        let _ = write!(b, "<h2>预警 Late projects ({})</h2>", m.warnings.len());
        b.push_str(&late_table(&m.warnings));
        let _ = write!(
            b,
            "<h2>滞后指标 Indicators behind ({})</h2>",
            m.indicators_behind.len()
        );
        b.push_str("<table><tr><th>指标</th><th>最新</th><th>按进度应达</th><th>目标</th></tr>");
        for i in &m.indicators_behind {
            let _ = write!(
                b,
                "<tr><td><a href=\"/indicators/{0}?f=html\">{1}</a></td><td>{2}</td><td>{3}</td><td>{4} ({5})</td></tr>",
                html::escape(&i.indicator.id),
                html::escape(&i.indicator.name),
                i.assessment.latest_value.map_or("—".into(), |v| v.to_string()),
                i.assessment.expected_value.map_or("—".into(), |v| format!("{v:.2}")),
                i.indicator.target_value,
                i.indicator.target_year,
            );
        }
        b.push_str("</table><h2>分区 By unit</h2>");
        let _ = write!(b, "<table><tr><th>单位</th>{COUNT_HEADER}</tr>");
        for (row, v) in m
            .by_unit
            .iter()
            .zip(doc["by_unit"].as_array().into_iter().flatten())
        {
            let _ = write!(
                b,
                "<tr><td><a href=\"/monitoring/{0}?f=html&amp;asof={2}\">{1}</a></td>{3}</tr>",
                html::escape(&row.unit.code),
                html::escape(&row.unit.name),
                html::escape(&m.asof),
                counts_cells(v)
            );
        }
        b.push_str("</table>");
        b
    }))
}

async fn report_xlsx(
    State(state): State<AppState>,
    Path(area): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let (m, _) = build(&state, &area, q.as_deref(), &headers).await?;
    let bytes = tokio::task::spawn_blocking(move || {
        crate::monitor::xlsx::workbook(&m).map(|b| (b, m.area.code, m.asof))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let (body, code, asof) = bytes;
    let name = format!("monitoring_{code}_{asof}.xlsx");
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(r)
}
