//! Plain, readable HTML views of the API's resources: the same data as the JSON, for people.

use serde_json::Value;

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
];

/// `名称 name` for a known key, the key alone otherwise (escaped).
fn key_label(key: &str) -> String {
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
    fn pages_carry_a_favicon_and_the_small_map() {
        let p = page("T", "");
        assert!(p.contains("/favicon.ico") && p.contains("/viewer/minimap.js"));
        assert!(!p.contains("<script>"));
    }
}
