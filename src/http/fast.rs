//! The lean path for the hottest read, a plain `GET /collections/{c}/items/{f}` (issue 15).
//!
//! [`Fast`] sits in front of the whole [`router`](super::router). A request it can answer
//! exactly as the router would (no query string, a JSON answer, an id needing no decoding, no
//! conditional request, an answer too short to be compressed, a public server) is answered
//! here, straight from the engine's compact form, with the headers the router's layers would
//! add (CORS, request id) and with the same metrics and access log line. Everything else, and
//! every error (an unknown collection or feature), goes to the router untouched.
//!
//! A lean answer is written two ways: as a response for hyper to send ([`Fast::lean`], on
//! connections hyper serves) and as the HTTP/1.1 bytes hyper would send
//! ([`Fast::lean_http1`], by the connection front, `front.rs`, which then skips hyper).
//!
//! The answers of both paths are compared header for header and byte for byte in
//! `tests/fast_path.rs`; `benches/landsurvey.rs` measures what this saves.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::future::RouteFuture;
use axum::Router;
use futures_util::future::Either;
use tower::Service;

use super::error::ApiError;
use super::params::{
    base_url_of, Format, Params, X_FORWARDED_HOST, X_FORWARDED_PROTO, X_REQUEST_ID,
};
use super::{ogc, AppState};

/// The route the router's metrics and access log name these requests by.
pub const FEATURE_ROUTE: &str = "/collections/{collection}/items/{feature}";

/// The router with the lean path in front (see the module comment), shared by every
/// connection.
pub struct Fast {
    router: Router,
    state: AppState,
    /// `Access-Control-Expose-Headers` as the router's CORS layer writes it.
    exposed: HeaderValue,
}

impl Fast {
    pub fn new(router: Router, state: AppState) -> Fast {
        let exposed_names = super::EXPOSED_HEADERS;
        let names: Vec<&str> = exposed_names.iter().map(|h| h.as_str()).collect();
        // A static value: copying it into each answer touches no reference count shared by
        // the threads (the names are fixed for the process's life).
        let names: &'static str = Box::leak(names.join(",").into_boxed_str());
        let exposed = HeaderValue::from_static(names);
        Fast {
            router,
            state,
            exposed,
        }
    }

    /// The lean path's answer to `req`, or `None` when the router must make it. A panic here
    /// is answered as the router's catch-panic layer answers one.
    pub fn lean<B>(&self, req: &axum::http::Request<B>) -> Option<Response> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lean_feature(&self.state, &Head::of(req)?).map(|a| a.into_response(&self.exposed))
        }))
        .unwrap_or_else(|_| Some(ApiError::internal("a handler panicked").into_response()))
    }

    /// The lean path's answer to `req` as HTTP/1.1 bytes (status line, the headers hyper would
    /// write, body) appended to `out`, for the connection front (`front.rs`); `false`, with
    /// `out` as it was, when the router must answer (a panic included: the router then answers
    /// the request, and its catch-panic layer any panic of its own).
    pub fn lean_http1(&self, head: &Head<'_>, out: &mut Vec<u8>) -> bool {
        let had = out.len();
        let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lean_feature(&self.state, head).map(|a| a.write_http1(out, &self.exposed))
        }))
        .ok()
        .flatten()
        .is_some();
        if written {
            self.state.metrics.front.fetch_add(1, Ordering::Relaxed);
        } else {
            // Nothing of an answer cut short by a panic.
            out.truncate(had);
        }
        written
    }

    pub(super) fn state(&self) -> &AppState {
        &self.state
    }
}

/// One connection's service: the lean path, else the router, which sees the client's address
/// as `ConnectInfo` (as under `axum::serve`). hyper calls it by reference, so a request
/// answered on the lean path copies nothing shared (no reference count, no extension map, no
/// boxed body).
#[derive(Clone)]
pub struct Connection {
    fast: Arc<Fast>,
    peer: SocketAddr,
}

impl Connection {
    pub fn new(fast: Arc<Fast>, peer: SocketAddr) -> Connection {
        Connection { fast, peer }
    }
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for Connection {
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response, Infallible>>, RouteFuture<Infallible>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(r) = self.fast.lean(&req) {
            return Either::Left(ready(Ok(r)));
        }
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        let mut router = self.fast.router.clone();
        Either::Right(Service::<Request>::call(&mut router, req))
    }
}

/// What the lean path reads of a request: from hyper's request ([`Head::of`]), or from the
/// head the connection front parsed (`front.rs`), which makes no header map. A header's value
/// is its first.
#[derive(Debug, Default, PartialEq)]
pub struct Head<'a> {
    /// The path, when the request is a GET with no query string.
    pub path: &'a str,
    /// Header fields, and their bytes as the router's limits count them (name, value, 4).
    pub fields: usize,
    pub field_bytes: usize,
    /// Any of [`ROUTER_HEADERS`].
    pub router: bool,
    /// Any of [`FORWARDED`].
    pub forwarded: bool,
    pub accept: Option<&'a [u8]>,
    pub accept_encoding: bool,
    pub host: Option<&'a [u8]>,
    pub forwarded_host: Option<&'a [u8]>,
    pub forwarded_proto: Option<&'a [u8]>,
    pub request_id: Option<&'a [u8]>,
}

impl<'a> Head<'a> {
    /// The head of a GET with no query string.
    pub(super) fn of<B>(req: &'a axum::http::Request<B>) -> Option<Head<'a>> {
        if req.method() != Method::GET || req.uri().query().is_some() {
            return None;
        }
        let headers = req.headers();
        let get = |name| headers.get(name).map(HeaderValue::as_bytes);
        Some(Head {
            path: req.uri().path(),
            fields: headers.len(),
            field_bytes: headers
                .iter()
                .map(|(k, v)| k.as_str().len() + v.len() + 4)
                .sum(),
            router: ROUTER_HEADERS.iter().any(|h| headers.contains_key(h)),
            forwarded: FORWARDED.iter().any(|h| headers.contains_key(h)),
            accept: get(header::ACCEPT),
            accept_encoding: headers.contains_key(header::ACCEPT_ENCODING),
            host: get(header::HOST),
            forwarded_host: get(X_FORWARDED_HOST),
            forwarded_proto: get(X_FORWARDED_PROTO),
            request_id: get(X_REQUEST_ID),
        })
    }

    /// Takes field `name` (lower case) with `value` into account, as [`Head::of`] reads it
    /// from a header map; the front calls it for each field in order.
    pub fn field(&mut self, name: &[u8], value: &'a [u8]) {
        self.fields += 1;
        self.field_bytes += name.len() + value.len() + 4;
        let first = |slot: &mut Option<&'a [u8]>| {
            slot.get_or_insert(value);
        };
        match name {
            b"accept" => first(&mut self.accept),
            b"accept-encoding" => self.accept_encoding = true,
            b"host" => first(&mut self.host),
            b"x-forwarded-host" => {
                self.forwarded = true;
                first(&mut self.forwarded_host);
            }
            b"x-forwarded-proto" => {
                self.forwarded = true;
                first(&mut self.forwarded_proto);
            }
            b"x-request-id" => first(&mut self.request_id),
            _ if ROUTER_HEADERS.iter().any(|h| h.as_str().as_bytes() == name) => {
                self.router = true;
            }
            _ => {}
        }
    }
}

/// A header value as text, as `HeaderValue::to_str` gives it: visible ASCII, spaces and tabs.
fn header_text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// The collection and feature ids of a path `/collections/{c}/items/{f}` whose segments are
/// plain (no percent-encoding, so the router would decode them to themselves).
fn feature_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/collections/")?;
    // A byte search for '/' (no substring searcher to set up for each request).
    let (collection, rest) = rest.split_once('/')?;
    let feature = rest.strip_prefix("items/")?;
    let plain = |s: &str| !s.is_empty() && !s.contains(['/', '%']);
    (plain(collection) && plain(feature)).then_some((collection, feature))
}

/// Headers after which the lean path leaves the request to the router: conditional requests
/// and a body (whose limits the router checks). A token is not checked on a public server's
/// GET: the router ignores it there too.
const ROUTER_HEADERS: [header::HeaderName; 4] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
];

/// Forwarded host and scheme: the router drops them unless `--trust-forwarded-headers`.
const FORWARDED: [header::HeaderName; 2] = [X_FORWARDED_HOST, X_FORWARDED_PROTO];

/// A lean answer: a stored feature's GeoJSON and what its headers need. [`Lean::into_response`]
/// makes it a response for hyper to write, [`Lean::write_http1`] writes the same bytes itself;
/// `tests/fast_path.rs` holds both to the router's answer.
struct Lean {
    content_type: &'static str,
    tag: String,
    body: String,
    /// `Vary` on the forwarded headers (`--trust-forwarded-headers`).
    forwarded: bool,
    request_id: RequestId,
}

/// The client's request id (checked as a header value), or a new UUID, as `tower_http`'s
/// request-id layers give it; held in place, not allocated.
enum RequestId {
    Given(HeaderValue),
    Made([u8; uuid::fmt::Hyphenated::LENGTH]),
}

impl RequestId {
    fn for_request(given: Option<&[u8]>) -> Option<RequestId> {
        Some(match given {
            Some(v) => RequestId::Given(HeaderValue::from_bytes(v).ok()?),
            None => {
                let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
                uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text);
                RequestId::Made(text)
            }
        })
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            RequestId::Given(v) => v.as_bytes(),
            RequestId::Made(text) => text,
        }
    }

    fn into_header_value(self) -> HeaderValue {
        match self {
            RequestId::Given(v) => v,
            // Hex digits and hyphens: a valid value.
            RequestId::Made(text) => {
                HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static(""))
            }
        }
    }
}

impl Lean {
    /// The answer as the router makes it: `ogc`'s headers for a stored feature, then those of
    /// the outer layers (CORS, request id).
    fn into_response(self, exposed: &HeaderValue) -> Response {
        let mut r = ogc::stored_feature_response(self.content_type, &self.tag, self.body);
        if self.forwarded {
            r.headers_mut().append(
                header::VARY,
                HeaderValue::from_static(super::FORWARDED_VARY),
            );
        }
        outer_headers(&mut r, exposed, self.request_id.into_header_value());
        r
    }

    /// The bytes hyper writes for [`Lean::into_response`]: the status line, the headers in the
    /// order of its header map (each name's values together, where the name first came), then
    /// `content-length` and `date` as hyper adds them, then the body.
    fn write_http1(&self, out: &mut Vec<u8>, exposed: &HeaderValue) {
        out.reserve(512 + self.body.len());
        field(
            out,
            "HTTP/1.1 200 OK\r\ncontent-type",
            self.content_type.as_bytes(),
        );
        // As `respond` inserts it: only a valid header value.
        if HeaderValue::from_str(&self.tag).is_ok() {
            field(out, "etag", self.tag.as_bytes());
        }
        field(out, "cache-control", b"no-cache");
        field(out, "vary", super::params::VARY_ACCEPT.as_bytes());
        if self.forwarded {
            field(out, "vary", super::FORWARDED_VARY.as_bytes());
        }
        field(out, "content-crs", ogc::CRS84_HEADER.as_bytes());
        field(out, "access-control-expose-headers", exposed.as_bytes());
        field(out, "access-control-allow-origin", b"*");
        field(out, "x-request-id", self.request_id.as_bytes());
        field(
            out,
            "content-length",
            itoa::Buffer::new().format(self.body.len()).as_bytes(),
        );
        super::front::date(|d| field(out, "date", d));
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.body.as_bytes());
    }
}

/// Appends a header field `name: value` to `out`.
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The router's answer to the request `head` is of, made here, or `None` when the router must
/// make it.
fn lean_feature(state: &AppState, head: &Head<'_>) -> Option<Lean> {
    if state.settings.private {
        return None;
    }
    let (id, fid) = feature_path(head.path)?;
    let trust_forwarded = state.settings.trust_forwarded_headers;
    if head.fields > 32 || head.router || (!trust_forwarded && head.forwarded) {
        return None;
    }
    // The router's request limits answer 414 and 431 past these.
    if head.path.len() > super::MAX_URI_BYTES || head.field_bytes > super::MAX_HEADER_BYTES {
        return None;
    }
    let params = Params::default();
    let format = Format::accepted(head.accept.map_or(Some(""), header_text).unwrap_or(""));
    if format == Format::Html {
        return None;
    }
    let started = Instant::now();
    let request_id = RequestId::for_request(head.request_id)?;
    let layer = state.app.engine.layer(id)?;
    let idx = layer.read();
    let stored = idx.get_compact(fid)?;
    // The router compresses answers of COMPRESS_FROM_BYTES and more when asked to; such an
    // answer (its geometry and properties alone reach the size) is left to it.
    let compressible = head.accept_encoding;
    let compress_from = usize::from(super::COMPRESS_FROM_BYTES);
    if compressible
        && stored.wkb().map_or(0, <[u8]>::len) + stored.properties_json().len() >= compress_from
    {
        return None;
    }
    fn text(v: Option<&[u8]>) -> Option<&str> {
        v.and_then(header_text)
    }
    let base = base_url_of(
        text(head.forwarded_host),
        text(head.host),
        text(head.forwarded_proto),
    );
    let tag = ogc::feature_etag(
        id,
        fid,
        stored.version,
        idx.revision,
        &base,
        format,
        &params,
    );
    let body = ogc::stored_feature_body(&idx, id, fid, stored, &base, &params, format);
    drop(idx);
    if compressible && body.len() >= compress_from {
        return None;
    }
    answered(state, request_id.as_bytes(), head.path, started);
    state.metrics.lean.fetch_add(1, Ordering::Relaxed);
    Some(Lean {
        content_type: super::params::content_type(format, true),
        tag,
        body,
        forwarded: trust_forwarded,
        request_id,
    })
}

/// Counts and logs the answer as the router's `observe` layer does in its `request` span
/// (`ops::answered`); the access line is written straight into the log buffer when the
/// subscriber allows it (`logs::AccessLine`).
fn answered(state: &AppState, request_id: &[u8], path: &str, started: Instant) {
    let request_id = header_text(request_id).unwrap_or("");
    let seconds = started.elapsed().as_secs_f64();
    if !tracing::event_enabled!(target: "yizhangtu::access", tracing::Level::INFO) {
        // No access line (`RUST_LOG=warn`, say), and no span events are configured: the
        // router's span would carry nothing, so only the metrics remain.
        state.metrics.lean_request(seconds);
        return;
    }
    if tracing::span_enabled!(target: "yizhangtu::http", tracing::Level::INFO) {
        let line = crate::logs::AccessLine {
            request_id,
            method: Method::GET.as_str(),
            path,
            status: 200,
            route: FEATURE_ROUTE,
            ms: super::ops::rounded_ms(seconds),
        };
        if line.write() {
            state.metrics.lean_request(seconds);
            return;
        }
    }
    let span = super::span_of(request_id, &Method::GET, path);
    let _entered = span.enter();
    super::ops::answered(state, &Method::GET, FEATURE_ROUTE, 200, started);
}

/// What the router's outer layers add to a plain GET's answer: CORS (any origin; the headers a
/// script may read) and the request id (the client's, else a
/// new UUID, as `tower_http`'s request-id layers make it).
fn outer_headers(r: &mut Response, exposed: &HeaderValue, request_id: HeaderValue) {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone());
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(X_REQUEST_ID, request_id);
}

#[cfg(test)]
mod tests {
    use super::feature_path;

    #[test]
    fn only_plain_feature_paths_are_taken() {
        assert_eq!(
            feature_path("/collections/parcels/items/17"),
            Some(("parcels", "17"))
        );
        for path in [
            "/collections/parcels/items/",
            "/collections//items/17",
            "/collections/parcels/items/17/history",
            "/collections/parcels/items/%E6%9D%91",
            "/collections/parcels/items",
            "/collections/parcels",
            "/collections/a/b/items/17",
        ] {
            assert_eq!(feature_path(path), None, "{path}");
        }
    }
}
