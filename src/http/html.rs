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
         <title>{t} · yizhangtu</title><style>\
         body{{font:15px/1.5 system-ui,-apple-system,'Noto Sans CJK SC','Microsoft YaHei',sans-serif;margin:0 auto;max-width:70rem;padding:1rem 1.5rem;color:#1d2733}}\
         header a{{color:#256;text-decoration:none;font-weight:600}}table{{border-collapse:collapse;width:100%;margin:.5rem 0 1rem}}\
         th,td{{border:1px solid #d5dbe1;padding:.25rem .5rem;text-align:left;vertical-align:top}}th{{background:#f1f4f7}}\
         code{{background:#f1f4f7;padding:0 .25rem}}nav a{{margin-right:1rem}}.muted{{color:#6a7682}}</style></head>\
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

/// A JSON value as readable HTML: objects as tables, arrays as lists.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "<span class=\"muted\">—</span>".into(),
        Value::String(s) if s.starts_with("http://") || s.starts_with("https://") => {
            format!("<a href=\"{0}\">{0}</a>", escape(s))
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
            let rows: String = map
                .iter()
                .map(|(k, v)| format!("<tr><th>{}</th><td>{}</td></tr>", escape(k), value(v)))
                .collect();
            format!("<table>{rows}</table>")
        }
        other => escape(&other.to_string()),
    }
}
