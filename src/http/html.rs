//! Plain, readable HTML views of the API's resources: the same data as the JSON, for people.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::params::{Format, Params};

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole page around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"zh-CN\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t} · yizhangtu</title><link rel=\"icon\" href=\"/favicon.ico\" type=\"image/svg+xml\">\
         <script type=\"module\" src=\"/viewer/minimap.js\"></script><style>\
         body{{font:15px/1.5 system-ui,-apple-system,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:0 auto;max-width:70rem;padding:1rem 1.5rem;color:#1d2733}}\
         header a{{color:#256;text-decoration:none;font-weight:600}}table{{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}}\
         th,td{{border:1px solid #d5dbe1;padding:.25rem .5rem;text-align:left;vertical-align:top}}th{{background:#f1f4f7}}\
         code{{background:#f1f4f7;padding:0 .25rem}}nav a{{margin-right:1rem}}.muted{{color:#6a7682}}details summary{{cursor:pointer}}</style></head>\
         <body><header><a href=\"/\">一张图 yizhangtu</a> · <a href=\"/collections\">图层 Layers</a> · \
         <a href=\"/api?f=html\">API</a></header><h1>{t}</h1>{body}</body></html>",
        t = escape(title),
    )
}

/// Whether a request asks for HTML: `f=html` (or `f=text/html`), or no `f` and an `Accept` that
/// prefers `text/html` (a browser's), as [`Format::negotiate`] decides for resources.
pub fn wants_html(query: Option<&str>, headers: &HeaderMap) -> bool {
    matches!(
        Format::negotiate(&Params::parse(query), headers),
        Ok(Format::Html)
    )
}

/// Errors answered as HTML pages to whoever asked for HTML (`f=html`, a browser): the JSON
/// problem's code, description and details in a table, same status and headers. Everyone else
/// keeps the JSON problem. `/api` declares `text/html` beside `application/json` for every error.
pub async fn html_errors(req: Request, next: Next) -> Response {
    let wants = wants_html(req.uri().query(), req.headers());
    let r = next.run(req).await;
    let is_json = r
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.starts_with("application/json") || ct.starts_with("application/problem+json")
        });
    if !wants || r.status().as_u16() < 400 || !is_json {
        return r;
    }
    let (mut parts, body) = r.into_parts();
    // Problems are small; one that is not (or not JSON) is passed on as it was.
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Ok(problem) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    };
    let html = error_page(parts.status, &problem);
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Response::from_parts(parts, axum::body::Body::from(html))
}

/// The page of an error: what went wrong in Chinese and English, the problem's members.
pub fn error_page(status: StatusCode, problem: &Value) -> String {
    let zh = match status.as_u16() {
        400 => "请求有误",
        401 => "需要登录",
        403 => "无权访问",
        404 => "找不到",
        405 => "不支持该方法",
        406 => "无法提供所要求的格式",
        409 | 412 => "版本冲突",
        413 => "请求过大",
        415 => "不支持的内容类型",
        428 => "需要版本号（If-Match）",
        429 => "请求过于频繁",
        503 => "服务繁忙",
        _ => "出错了",
    };
    let title = format!(
        "{} {zh} · {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let description = problem
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut details = problem.clone();
    if let Some(m) = details.as_object_mut() {
        m.remove("description");
    }
    let body = format!(
        "<p class=\"error\"><strong>{}</strong></p>{}\
         <p class=\"muted\">JSON：在地址后加 <code>f=json</code>（或 Accept: application/json）。</p>",
        escape(description),
        value(&details)
    );
    page(&title, &body)
}

/// Coverage by town or village as one pivot table: a row per unit (its area in 亩), a column per
/// layer that has features in any of them, each cell the covered 亩 and the share of the unit.
pub fn coverage_pivot(breakdown: &Value) -> String {
    let parts = breakdown.as_array().map(Vec::as_slice).unwrap_or_default();
    if parts.is_empty() {
        return String::new();
    }
    let mut layers: Vec<(String, String)> = Vec::new();
    for part in parts {
        for l in part["layers"].as_array().into_iter().flatten() {
            let id = l["layer"].as_str().unwrap_or("").to_string();
            if l["feature_count"].as_u64().unwrap_or(0) > 0 && !layers.iter().any(|(x, _)| *x == id)
            {
                layers.push((id, l["title"].as_str().unwrap_or("").to_string()));
            }
        }
    }
    let mu = |v: &Value| v.as_f64().map(|x| format!("{x:.1}")).unwrap_or_default();
    let mut out = String::from(
        "<h2>按单位 By unit</h2><table class=\"pivot\"><tr><th>名称 <span class=\"muted\">name</span></th>\
         <th>代码 <span class=\"muted\">code</span></th><th>面积（亩）</th>",
    );
    for (id, title) in &layers {
        out.push_str(&format!(
            "<th>{} <span class=\"muted\">{}</span>（亩）</th>",
            escape(title),
            escape(id)
        ));
    }
    out.push_str("</tr>");
    for part in parts {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            escape(part["name"].as_str().unwrap_or("")),
            escape(part["code"].as_str().unwrap_or("")),
            mu(&part["area"]["mu"])
        ));
        for (id, _) in &layers {
            let cell = part["layers"].as_array().into_iter().flatten().find(|l| {
                l["layer"].as_str() == Some(id.as_str())
                    && l["feature_count"].as_u64().unwrap_or(0) > 0
            });
            match cell {
                Some(l) => out.push_str(&format!(
                    "<td title=\"{} 项\">{}{}</td>",
                    l["feature_count"],
                    mu(&l["covered_area"]["mu"]),
                    l["share_of_area"]
                        .as_f64()
                        .map(|s| format!(" <span class=\"muted\">({:.1}%)</span>", s * 100.0))
                        .unwrap_or_default()
                )),
                None => out.push_str("<td></td>"),
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}

/// A link list from OGC `links` objects.
pub fn links(links: &Value) -> String {
    let mut out = String::from("<nav>");
    for l in links.as_array().into_iter().flatten() {
        let href = l.get("href").and_then(Value::as_str).unwrap_or("");
        let title = l
            .get("title")
            .and_then(Value::as_str)
            .or_else(|| l.get("rel").and_then(Value::as_str))
            .unwrap_or(href);
        out.push_str(&format!(
            "<a href=\"{}\">{}</a>",
            escape(href),
            escape(title)
        ));
    }
    out.push_str("</nav>");
    out
}

/// Text longer than this (in characters) is shown folded, its start as the summary.
const LONG_TEXT: usize = 160;

/// Chinese names of the properties a planner reads most, shown before the key.
const KEY_LABELS: &[(&str, &str)] = &[
    ("name", "名称"),
    ("admin_code", "行政区划代码"),
    ("district", "区县"),
    ("level", "级别"),
    ("category", "类别"),
    ("area_mu", "面积（亩，文本所述）"),
    ("geometry_area_mu", "示意图形面积（亩）"),
    ("investment_wan_yuan", "投资（万元）"),
    ("target_year", "目标年份"),
    ("status", "状态"),
    ("responsible_units", "责任单位"),
    ("lead_units", "牵头单位"),
    ("geometry_method", "位置说明"),
    ("approximate", "示意位置"),
    ("source", "来源"),
    ("quote", "原文"),
    ("plan_title", "规划"),
    ("attributes", "属性"),
    ("m2", "平方米"),
    ("ha", "公顷"),
    ("mu", "亩"),
    ("code", "代码"),
    ("id", "编号"),
    ("geometry", "几何类型"),
    ("plan", "规划编号"),
    ("town", "乡镇"),
    ("type", "类型"),
    ("year", "年份"),
    ("period", "建设期限"),
    ("start_date", "开始日期"),
    ("end_date", "结束日期"),
    ("progress_percent", "进度（%）"),
    ("investment_done_wan_yuan", "已完成投资（万元）"),
    ("admin_names", "所在单位"),
    ("village", "村（社区）"),
    ("households", "户数"),
    ("people", "人数"),
];

/// `名称 name` for a known key, the key alone otherwise (escaped).
pub fn key_label(key: &str) -> String {
    match KEY_LABELS.iter().find(|(k, _)| *k == key) {
        Some((_, zh)) => format!("{zh} <span class=\"muted\">{}</span>", escape(key)),
        None => escape(key),
    }
}

/// A JSON value as readable HTML: objects as tables (the name first), arrays as lists, long text
/// folded.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "<span class=\"muted\">—</span>".into(),
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            format!("<a href=\"{0}\">{0}</a>", escape(s))
        }
        Value::String(s) if s.chars().count() > LONG_TEXT => {
            let head: String = s.chars().take(LONG_TEXT / 2).collect();
            format!(
                "<details><summary>{}…</summary>{}</details>",
                escape(&head),
                escape(s)
            )
        }
        Value::String(s) => escape(s),
        Value::Array(items) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(value).collect::<Vec<_>>().join(", ")
        }
        Value::Array(items) => {
            let inner: String = items
                .iter()
                .map(|i| format!("<li>{}</li>", value(i)))
                .collect();
            format!("<ul>{inner}</ul>")
        }
        Value::Object(map) => {
            // The name first, then the rest in their order.
            let rows: String = map
                .iter()
                .filter(|(k, _)| k.as_str() == "name")
                .chain(map.iter().filter(|(k, _)| k.as_str() != "name"))
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", key_label(k), value(v)))
                .collect();
            format!("<table>{rows}</table>")
        }
        other => escape(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_show_the_name_first_with_chinese_labels_and_long_text_folded() {
        let long = "长".repeat(LONG_TEXT + 1);
        let html = value(&json!({"target_year": 2025, "name": "龙水镇", "note": long}));
        let name = html
            .find("名称 <span class=\"muted\">name</span>")
            .expect(&html);
        let year = html.find("目标年份").expect(&html);
        assert!(name < year, "{html}");
        assert!(html.contains("<details><summary>"), "{html}");
        assert_eq!(value(&json!("<b>")), "&lt;b&gt;");
    }

    #[test]
    fn coverage_by_unit_is_one_pivot_table() {
        let b = json!([
            {"name": "甲村", "code": "500111100201", "area": {"mu": 1000.0},
             "layers": [{"layer": "projects", "title": "项目", "feature_count": 2, "covered_area": {"mu": 12.34}, "share_of_area": 0.01234},
                        {"layer": "markets", "title": "市场", "feature_count": 0, "covered_area": {"mu": 0.0}, "share_of_area": 0.0}]},
            {"name": "乙村", "code": "500111100202", "area": {"mu": 500.0},
             "layers": [{"layer": "markets", "title": "市场", "feature_count": 1, "covered_area": {"mu": 5.0}, "share_of_area": 0.01}]},
        ]);
        let p = coverage_pivot(&b);
        assert_eq!(p.matches("<table").count(), 1, "{p}");
        assert_eq!(p.matches("<tr>").count(), 3, "{p}");
        assert!(
            p.contains("项目 <span class=\"muted\">projects</span>"),
            "{p}"
        );
        assert!(
            p.contains("12.3 <span class=\"muted\">(1.2%)</span>"),
            "{p}"
        );
        let row2 = &p[p.find("乙村").unwrap()..];
        assert!(
            row2.starts_with(
                "乙村</td><td>500111100202</td><td>500.0</td><td></td><td title=\"1 项\">5.0"
            ),
            "{row2}"
        );
        assert_eq!(coverage_pivot(&json!([])), "");
    }

    #[test]
    fn errors_are_pages_for_whoever_asks_for_html() {
        let mut h = HeaderMap::new();
        assert!(wants_html(Some("f=html&limit=x"), &h));
        assert!(!wants_html(Some("f=json"), &h));
        assert!(!wants_html(None, &h));
        h.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/html,application/xhtml+xml,*/*;q=0.8"),
        );
        assert!(wants_html(None, &h));
        assert!(!wants_html(Some("f=json"), &h));
        h.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        assert!(!wants_html(None, &h));
        let p = error_page(
            StatusCode::BAD_REQUEST,
            &json!({"code": "InvalidParameterValue", "description": "limit 'x' <is> not a number", "parameter": "limit"}),
        );
        assert!(p.contains("400 请求有误"), "{p}");
        assert!(
            p.contains("limit &#39;x&#39; &lt;is&gt; not a number"),
            "{p}"
        );
        assert!(
            p.contains("InvalidParameterValue") && p.contains("parameter"),
            "{p}"
        );
    }

    #[test]
    fn pages_carry_a_favicon_and_the_small_map() {
        let p = page("T", "");
        assert!(p.contains("/favicon.ico") && p.contains("/viewer/minimap.js"));
        assert!(!p.contains("<script>"));
    }
}
