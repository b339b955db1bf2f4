//! The JSON problem for the few errors hyper answers itself, before any of our code sees the
//! request: a request target of 65,535 bytes or more (414, a limit fixed inside hyper), more
//! header fields than hyper parses or a head larger than its read buffer (431), and a head that
//! does not parse (400). hyper writes those as a bare status line with `content-length: 0` and
//! then closes the connection; neither hyper 1 nor `axum::serve` lets us give them a body.
//!
//! [`LimitIo`] wraps each connection hyper serves (`front.rs`) and recognises such an automatic
//! answer by its exact shape — a whole `HTTP/1.x 400|414|431` head whose only fields are
//! `content-length: 0`, `date` and `connection`, at the very end of what hyper writes — and
//! writes our JSON problem (with `Connection: close`) in its place. Every answer our handlers
//! make carries a content type, so none of them has that shape. Requests under hyper's limits
//! but over ours are refused as JSON by `request_limits` in `http/mod.rs`; both name the same
//! limits.

use axum::http::StatusCode;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::error::ApiError;
use super::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_URI_BYTES};

/// A connection whose automatic hyper error answers are replaced by JSON problems.
pub struct LimitIo<I> {
    inner: I,
    /// Bytes read since the last write: the head hyper was reading when it gave up.
    read_since_write: usize,
    rewrite: Option<Rewrite>,
}

/// The JSON answer being written in place of hyper's `claimed` bytes.
struct Rewrite {
    bytes: Vec<u8>,
    written: usize,
    claimed: usize,
}

impl<I> LimitIo<I> {
    pub fn new(inner: I) -> Self {
        LimitIo {
            inner,
            read_since_write: 0,
            rewrite: None,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for LimitIo<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        self.read_since_write = self.read_since_write.saturating_add(n);
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for LimitIo<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.rewrite.is_none() {
            match automatic_answer(buf) {
                Some((start, status, version)) => {
                    let mut bytes = buf[..start].to_vec();
                    bytes.extend(json_answer(status, version, this.read_since_write));
                    this.rewrite = Some(Rewrite {
                        bytes,
                        written: 0,
                        claimed: buf.len(),
                    });
                }
                None => {
                    let r = Pin::new(&mut this.inner).poll_write(cx, buf);
                    if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
                        this.read_since_write = 0;
                    }
                    return r;
                }
            }
        }
        let Some(rw) = this.rewrite.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        while rw.written < rw.bytes.len() {
            match ready!(Pin::new(&mut this.inner).poll_write(cx, &rw.bytes[rw.written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => rw.written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        let claimed = rw.claimed;
        this.rewrite = None;
        this.read_since_write = 0;
        Poll::Ready(Ok(claimed))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Where hyper's automatic error answer starts in `buf`, if `buf` ends with one; with its status
/// and HTTP version (`"1.0"` or `"1.1"`).
fn automatic_answer(buf: &[u8]) -> Option<(usize, StatusCode, &'static str)> {
    if !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    // The head is short (a status line and at most three fields): look only at the tail.
    let from = buf.len().saturating_sub(256);
    let tail = &buf[from..];
    let start = tail
        .windows(9)
        .rposition(|w| w == b"HTTP/1.1 " || w == b"HTTP/1.0 ")?;
    let head = std::str::from_utf8(&tail[start..]).ok()?;
    let mut lines = head.strip_suffix("\r\n\r\n")?.split("\r\n");
    let status_line = lines.next()?;
    let version = if status_line.starts_with("HTTP/1.0") {
        "1.0"
    } else {
        "1.1"
    };
    let status = match status_line.get(9..12)? {
        "400" => StatusCode::BAD_REQUEST,
        "414" => StatusCode::URI_TOO_LONG,
        "431" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let mut zero_length = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        match (name.to_ascii_lowercase().as_str(), value.trim()) {
            ("content-length", "0") => zero_length = true,
            ("date" | "connection", _) => {}
            _ => return None,
        }
    }
    zero_length.then_some((from + start, status, version))
}

/// Our JSON problem for `status`, as bytes for the wire.
fn json_answer(status: StatusCode, version: &str, head_bytes: usize) -> Vec<u8> {
    let error = match status {
        StatusCode::URI_TOO_LONG => ApiError::new(
            status,
            "UriTooLong",
            format!("the request target is too long; at most {MAX_URI_BYTES} bytes are read"),
        )
        .with_details(serde_json::json!({"limit": "uri-bytes", "max": MAX_URI_BYTES})),
        // hyper stops at its field count or at its buffer: which one, the bytes read tell.
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE if head_bytes > MAX_HEADER_BYTES => {
            ApiError::new(
                status,
                "HeadersTooLarge",
                format!(
                    "the request headers have more than {MAX_HEADER_BYTES} bytes; at most \
                     {MAX_HEADER_BYTES} are read"
                ),
            )
            .with_details(serde_json::json!({"limit": "header-bytes", "max": MAX_HEADER_BYTES}))
        }
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            status,
            "HeadersTooLarge",
            format!(
                "the request has more than {MAX_HEADER_FIELDS} header fields; at most \
                 {MAX_HEADER_FIELDS} are read"
            ),
        )
        .with_details(serde_json::json!({"limit": "header-count", "max": MAX_HEADER_FIELDS})),
        _ => ApiError::new(
            status,
            "BadRequest",
            "the request head is not valid HTTP/1.1 (request line or a header field)",
        ),
    };
    problem_http1(&error, version)
}

/// `error` as a whole HTTP/1.x answer that closes the connection, for those written below the
/// router (here, and by the connection front when a request head does not arrive in time).
pub(super) fn problem_http1(error: &ApiError, version: &str) -> Vec<u8> {
    let status = error.status;
    let body = error.body().to_string();
    let reason = status.canonical_reason().unwrap_or("");
    let mut out = format!(
        "HTTP/{version} {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\ncache-control: no-store\r\n\r\n",
        status.as_u16(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_only_hyper_s_bare_answers() {
        let bare = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\ndate: Sun, 29 Nov 2026 23:50:00 GMT\r\n\r\n";
        let mut buf = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec();
        let before = buf.len();
        buf.extend_from_slice(bare);
        assert_eq!(
            automatic_answer(&buf),
            Some((before, StatusCode::URI_TOO_LONG, "1.1"))
        );
        // Ours: a content type, a body.
        let ours = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_answer(ours), None);
        // Another status.
        let other = b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(automatic_answer(other), None);
        let answer = json_answer(StatusCode::URI_TOO_LONG, "1.1", 70_000);
        let text = String::from_utf8(answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let doc: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(doc["limit"], "uri-bytes");
    }
}
