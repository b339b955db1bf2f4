//! Request plumbing shared by the resources: query-string parsing, format negotiation,
//! base URLs for links, ETags and conditional requests.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::error::{ApiError, ApiResult};

/// The decoded query string, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn parse(raw: Option<&str>) -> Params {
        Params(
            raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
                .unwrap_or_default(),
        )
    }

    /// The value of a parameter given once; 400 when it is given twice.
    pub fn get(&self, name: &str) -> ApiResult<Option<&str>> {
        let mut found = self.0.iter().filter(|(k, _)| k == name);
        let first = found.next();
        if let Some((_, second)) = found.next() {
            return Err(ApiError::parameter(name, second, "given more than once"));
        }
        Ok(first.map(|(_, v)| v.as_str()))
    }

    /// 400 for the first parameter not in `known` (and not accepted by `extra`).
    pub fn reject_unknown(&self, known: &[&str], extra: impl Fn(&str) -> bool) -> ApiResult<()> {
        for (k, v) in &self.0 {
            if !known.contains(&k.as_str()) && !extra(k) {
                return Err(ApiError::parameter(k, v, "unknown parameter").with_details(
                    serde_json::json!({"parameter": k, "value": v, "allowed": known}),
                ));
            }
        }
        Ok(())
    }

    /// 400 for the first parameter given with an empty value (`?filter=`): leaving a parameter
    /// out and giving it empty are different requests, and an empty one is a client's mistake.
    pub fn reject_empty(&self) -> ApiResult<()> {
        match self.0.iter().find(|(_, v)| v.is_empty()) {
            Some((k, v)) => Err(ApiError::parameter(
                k,
                v,
                "empty; leave the parameter out or give it a value",
            )),
            None => Ok(()),
        }
    }

    /// Re-encodes the query with `name` set to `value` (or removed when `None`).
    pub fn with(&self, name: &str, value: Option<&str>) -> String {
        let mut out = form_urlencoded::Serializer::new(String::new());
        let mut set = false;
        for (k, v) in &self.0 {
            if k == name {
                if let (Some(value), false) = (value, set) {
                    out.append_pair(k, value);
                    set = true;
                }
            } else {
                out.append_pair(k, v);
            }
        }
        if let (Some(value), false) = (value, set) {
            out.append_pair(name, value);
        }
        out.finish()
    }

    /// A canonical form for cache keys: sorted pairs.
    pub fn canonical(&self) -> String {
        let mut pairs = self.0.clone();
        pairs.sort();
        pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The representations the API offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// application/geo+json for features, application/json for everything else.
    Json,
    /// application/json forced, even for features (asked by Accept).
    PlainJson,
    Html,
}

impl Format {
    /// `f=json|geojson|html` wins; then the Accept header (a browser's prefers HTML).
    pub fn negotiate(params: &Params, headers: &HeaderMap) -> ApiResult<Format> {
        if let Some(f) = params.get("f")? {
            return match f {
                "json" | "geojson" | "application/json" | "application/geo+json" => {
                    Ok(Format::Json)
                }
                "html" | "text/html" => Ok(Format::Html),
                other => Err(ApiError::parameter("f", other, "use json, geojson or html")),
            };
        }
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        Ok(Format::accepted(accept))
    }

    /// The representation an `Accept` value (as text, `""` when absent) asks for, with no `f`
    /// parameter.
    pub fn accepted(accept: &str) -> Format {
        if accept.is_empty() || accept == "*/*" {
            // What the searches below conclude for these, without setting up four searches.
            return Format::Json;
        }
        let pos = |needle: &str| accept.find(needle);
        let html = pos("text/html");
        let json = [pos("application/geo+json"), pos("application/json")]
            .into_iter()
            .flatten()
            .min();
        match (html, json) {
            (Some(h), Some(j)) if h < j => Format::Html,
            (Some(_), None) => Format::Html,
            (_, Some(_)) if pos("application/geo+json").is_none() => Format::PlainJson,
            _ => Format::Json,
        }
    }

    /// The representation, for ETags: each media type gets its own tag.
    pub fn code(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::PlainJson => "plain-json",
            Format::Html => "html",
        }
    }
}

/// The media type of the request body without parameters, lower-cased
/// (`Application/JSON; charset=utf-8` → `application/json`); `None` without a `Content-Type`.
/// A malformed value comes back whole, so it matches no accepted type.
pub fn media_type_essence(headers: &HeaderMap) -> Option<String> {
    let raw = headers.get(header::CONTENT_TYPE)?;
    let text = String::from_utf8_lossy(raw.as_bytes())
        .trim()
        .to_ascii_lowercase();
    let essence = text.split(';').next().unwrap_or("").trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((kind, sub)) if token(kind) && token(sub) => Some(essence.to_string()),
        _ => Some(text),
    }
}

/// 415 naming the media type sent and the ones accepted.
pub fn unsupported_media_type(sent: &str, accepted: &[&str]) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "UnsupportedMediaType",
        format!(
            "Content-Type '{sent}' is not accepted; send {}",
            accepted.join(" or ")
        ),
    )
    .with_details(serde_json::json!({"contentType": sent, "accepted": accepted}))
}

/// `X-Forwarded-Host`, as a name that is not parsed again at each lookup.
pub const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `X-Forwarded-Proto`, likewise.
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Request-Id`, likewise.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The scheme and authority clients used to reach us, for absolute links.
pub fn base_url(headers: &HeaderMap) -> String {
    let get = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    base_url_of(
        get(&X_FORWARDED_HOST),
        get(&header::HOST),
        get(&X_FORWARDED_PROTO),
    )
}

/// [`base_url`] from the values (as text) of `X-Forwarded-Host`, `Host` and
/// `X-Forwarded-Proto`.
pub fn base_url_of(
    forwarded_host: Option<&str>,
    host: Option<&str>,
    forwarded_proto: Option<&str>,
) -> String {
    let host = forwarded_host
        .or(host)
        .filter(|h| h.bytes().all(|b| b.is_ascii_graphic()) && !h.contains(['/', '"', '<', '>']))
        .unwrap_or("localhost");
    let proto = match forwarded_proto {
        Some("https") => "https",
        _ => "http",
    };
    let mut url = String::with_capacity(proto.len() + 3 + host.len());
    url.push_str(proto);
    url.push_str("://");
    url.push_str(host);
    url
}

/// A weak ETag over everything a response depends on.
pub fn etag(parts: &[&str]) -> String {
    let mut tag = String::with_capacity(20);
    tag.push_str("W/\"");
    push_digest(&mut tag, etag_digest(parts));
    tag.push('"');
    tag
}

/// Appends `digest` as 16 lower-case hex digits (`{:016x}`, without the formatting machinery:
/// feature ETags are on the hottest path).
pub fn push_digest(out: &mut String, digest: u64) {
    for shift in (0..16).rev() {
        let nibble = (digest >> (shift * 4)) & 0xf;
        out.push(char::from(b"0123456789abcdef"[nibble as usize]));
    }
}

/// The hash [`etag`] shows: XXH3 of the parts, each followed by a zero byte.
pub fn etag_digest(parts: &[&str]) -> u64 {
    let len: usize = parts.iter().map(|p| p.len() + 1).sum();
    let join = |bytes: &mut [u8]| {
        let mut at = 0;
        for p in parts {
            bytes[at..at + p.len()].copy_from_slice(p.as_bytes());
            bytes[at + p.len()] = 0;
            at += p.len() + 1;
        }
    };
    // A feature's parts (the hottest case) fit on the stack.
    let mut small = [0u8; 256];
    if let Some(bytes) = small.get_mut(..len) {
        join(bytes);
        xxhash_rust::xxh3::xxh3_64(bytes)
    } else {
        let mut bytes = vec![0u8; len];
        join(&mut bytes);
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }
}

/// 304 when the client's `If-None-Match` already has `tag`.
pub fn not_modified(headers: &HeaderMap, tag: &str) -> Option<Response> {
    let inm = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    let strip = |t: &str| t.trim().trim_start_matches("W/").to_string();
    let want = strip(tag);
    if inm.split(',').any(|t| t.trim() == "*" || strip(t) == want) {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(tag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        return Some(r);
    }
    None
}

/// A body with its content type, ETag and cache policy.
/// The `Vary` of every answer [`respond`] makes.
pub const VARY_ACCEPT: &str = "Accept, Accept-Encoding";

pub fn respond(content_type: &'static str, tag: Option<&str>, body: String) -> Response {
    let mut r = Response::new(axum::body::Body::from(body));
    let h = r.headers_mut();
    // Room for the headers this and the outer layers add, allocated once.
    *h = HeaderMap::with_capacity(16);
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(v) = tag.and_then(|t| HeaderValue::from_str(t).ok()) {
        h.insert(header::ETAG, v);
    }
    // Revalidate every time: the ETag makes that cheap, and edits show at once.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static(VARY_ACCEPT));
    r
}

pub fn content_type(format: Format, features: bool) -> &'static str {
    match (format, features) {
        (Format::Html, _) => "text/html; charset=utf-8",
        (Format::Json, true) => "application/geo+json",
        _ => "application/json",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is XXH3 of the parts each followed by a zero byte, on the stack or not.
    #[test]
    fn etag_digests_hash_the_parts_joined_by_zero_bytes() {
        let long = "村".repeat(100);
        for parts in [
            vec![],
            vec!["feature", "parcels", "17", "1", "0", "http://h", "json", ""],
            vec!["a", long.as_str(), "b"],
            vec![&long[..252], "x"],
            vec![&long[..252], "xy"],
            vec![&long[..252], "xyz"],
        ] {
            let mut joined = Vec::new();
            for p in &parts {
                joined.extend_from_slice(p.as_bytes());
                joined.push(0);
            }
            assert_eq!(
                etag_digest(&parts),
                xxhash_rust::xxh3::xxh3_64(&joined),
                "{} bytes",
                joined.len()
            );
        }
    }

    fn essence(ct: &str) -> Option<String> {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        media_type_essence(&h)
    }

    #[test]
    fn media_types_compare_by_essence() {
        assert_eq!(
            essence("application/json").as_deref(),
            Some("application/json")
        );
        assert_eq!(
            essence(" Application/GEO+JSON ; charset=utf-8").as_deref(),
            Some("application/geo+json")
        );
        // Prefixes are not matches.
        assert_eq!(
            essence("application/jsonfoo").as_deref(),
            Some("application/jsonfoo")
        );
        // Malformed values come back whole and match nothing accepted.
        assert_eq!(essence("json").as_deref(), Some("json"));
        assert_eq!(
            essence("application/json x; y").as_deref(),
            Some("application/json x; y")
        );
        assert_eq!(media_type_essence(&HeaderMap::new()), None);
    }

    #[test]
    fn empty_values_are_refused_by_name() {
        let p = Params::parse(Some("f=json&filter="));
        let e = p.reject_empty().unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.description.contains("'filter'"), "{}", e.description);
        assert!(Params::parse(Some("f=json")).reject_empty().is_ok());
    }
}
