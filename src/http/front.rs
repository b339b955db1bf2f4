//! The connection front (issue 15): every accepted connection is read here first.
//!
//! While a connection asks only what the lean path answers (`fast.rs`: a plain keep-alive
//! HTTP/1.1 `GET /collections/{c}/items/{f}`), its requests are parsed here with `httparse`
//! (the parser hyper itself uses) and the answers written here, one write for all the requests
//! a read brought. That skips hyper's per-request machinery, about 0.7 µs of CPU an answer.
//!
//! At the first request the lean path does not take — anything else at all: another method or
//! path, a query string, HTTP/1.0 or HTTP/2, `Connection` (but `keep-alive`), `Upgrade` or
//! `Expect`, a body, a request head over 8 KiB, a head `httparse` rejects — the answers so far
//! are written, and the connection, with every byte read and not yet answered, goes to hyper
//! and the router for the rest of its life. So hyper decides everything but the plain case, and its limits and errors
//! (`limits.rs`) apply unchanged.
//!
//! At shutdown a connection waiting here for its next request is closed at once, as hyper
//! closes an idle one; one being answered is answered first.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderName, HeaderValue, Request, Uri};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use super::fast::{Connection, Fast};
use super::limits::LimitIo;

/// The longest request head the front reads; a longer one goes to hyper, whose own buffer and
/// limits then apply.
const READ_BYTES: usize = 8 * 1024;

/// Answers are written once they reach this many bytes, so that pipelined requests for large
/// features hold no more than this (plus one answer) in memory.
const WRITE_BYTES: usize = 64 * 1024;

/// Header fields a lean request may have (the lean path leaves more to the router).
const MAX_FIELDS: usize = 32;

/// Fields whose meaning is hyper's to carry out (connection management, upgrades, a body).
const HYPER_FIELDS: [HeaderName; 6] = [
    header::CONNECTION,
    header::UPGRADE,
    header::EXPECT,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    HeaderName::from_static("keep-alive"),
];

/// The lean path, hyper behind it, and the connections waiting here for a request.
pub struct Front {
    fast: Arc<Fast>,
    hyper: Builder<TokioExecutor>,
    /// Each open connection's stop signal; `None` once shutdown has begun.
    open: Mutex<Option<HashMap<u64, oneshot::Sender<()>>>>,
    next: AtomicU64,
}

impl Front {
    pub fn new(fast: Arc<Fast>) -> Arc<Front> {
        Arc::new(Front {
            fast,
            // HTTP/1.1, or HTTP/2 when the client opens with its preface, as under
            // `axum::serve`.
            hyper: Builder::new(TokioExecutor::new()),
            open: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(0),
        })
    }

    /// Serves one connection until it closes (see the module comment). `watcher` holds the
    /// server's graceful shutdown until the connection has ended.
    pub async fn serve(self: Arc<Self>, mut io: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, stop) = oneshot::channel();
        match self.open.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            Some(open) => open.insert(key, tx),
            None => return,
        };
        let rest = self.lean_requests(&mut io, stop).await;
        if let Some(open) = self.open.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            open.remove(&key);
        }
        let Some(rest) = rest else {
            return;
        };
        self.fast
            .state()
            .metrics
            .handed_over
            .fetch_add(1, Ordering::Relaxed);
        let service = Connection::new(Arc::clone(&self.fast), peer);
        // hyper's automatic error answers become JSON problems (`limits.rs`).
        let io = LimitIo::new(Prefixed {
            prefix: rest,
            at: 0,
            inner: io,
        });
        let conn = self
            .hyper
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        if let Err(e) = watcher.watch(conn).await {
            tracing::trace!(error = %e, "connection ended");
        }
    }

    /// Closes the connections waiting here for a request, and any accepted from now on.
    pub fn stop(&self) {
        // Dropping a sender ends its connection's wait.
        drop(self.open.lock().unwrap_or_else(|e| e.into_inner()).take());
    }

    /// Answers the lean requests of `io`: `None` when the connection has ended, else the bytes
    /// read and not answered, for hyper.
    async fn lean_requests(
        &self,
        io: &mut TcpStream,
        mut stop: oneshot::Receiver<()>,
    ) -> Option<Vec<u8>> {
        let mut read = Vec::with_capacity(READ_BYTES);
        let mut out = Vec::new();
        loop {
            let n = tokio::select! {
                biased;
                n = io.read_buf(&mut read) => n,
                _ = &mut stop => return None,
            };
            if matches!(n, Ok(0) | Err(_)) {
                return None;
            }
            // Where the answered requests end, and what stopped the front there (`None`: the
            // end of what was read).
            let mut at = 0;
            let mut stopped = None;
            while at < read.len() {
                if out.len() >= WRITE_BYTES {
                    io.write_all(&out).await.ok()?;
                    out.clear();
                }
                match self.answer(&read[at..], &mut out) {
                    Next::Whole(len) => at += len,
                    other => {
                        stopped = Some(other);
                        break;
                    }
                }
            }
            if !out.is_empty() {
                io.write_all(&out).await.ok()?;
                out.clear();
                if out.capacity() > WRITE_BYTES {
                    out = Vec::new();
                }
            }
            read.drain(..at);
            match stopped {
                None => {}
                // The rest of the head is still on its way: read on, unless it would not fit.
                Some(Next::Partial) if read.len() < READ_BYTES => {}
                Some(_) => return Some(read),
            }
        }
    }

    /// Appends the answer to the request at the start of `bytes` to `out` when the lean path
    /// answers it.
    fn answer(&self, bytes: &[u8], out: &mut Vec<u8>) -> Next {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        let len = match req.parse(bytes) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Next::Partial,
            Err(_) => return Next::Hyper,
        };
        match request(&req) {
            Some(req) if self.fast.lean_http1(&req, out) => Next::Whole(len),
            _ => Next::Hyper,
        }
    }
}

/// What follows a request the front has read.
enum Next {
    /// It was answered; it was this many bytes long.
    Whole(usize),
    /// Its head is not whole yet.
    Partial,
    /// It is hyper's to answer.
    Hyper,
}

/// `req` as the `http` request hyper would make of it, when it is a plain HTTP/1.1 GET of a
/// path whose every byte a URI path may hold as it is (no query, no percent-encoding) and it has
/// none of [`HYPER_FIELDS`] (but `Connection: keep-alive`).
fn request(req: &httparse::Request<'_, '_>) -> Option<Request<()>> {
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let path = req.path?;
    if !path.starts_with('/') || !path.bytes().all(plain_path_byte) {
        return None;
    }
    let mut r = Request::new(());
    *r.uri_mut() = Uri::try_from(path).ok()?;
    let headers = r.headers_mut();
    headers.reserve(req.headers.len());
    for field in req.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        // `Connection: keep-alive` (browsers send it) says what HTTP/1.1 does anyway.
        if HYPER_FIELDS.contains(&name)
            && !(name == header::CONNECTION && field.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(field.value).ok()?);
    }
    Some(r)
}

/// A byte a URI path holds as itself (RFC 3986 `pchar` but percent-encoding, and `/`).
fn plain_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b)
}

/// Calls `f` with the `Date` header's value for now, as hyper writes it (made once a second on
/// each thread).
pub(super) fn date(f: impl FnOnce(&[u8])) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(at, text)| {
        if *at != second {
            *text = httpdate::fmt_http_date(now);
            *at = second;
        }
        f(text.as_bytes());
    });
}

/// A connection whose first reads give back bytes already read from it.
struct Prefixed<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Option<Request<()>> {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        assert!(req.parse(text.as_bytes()).unwrap().is_complete());
        request(&req)
    }

    #[test]
    fn only_plain_http11_gets_are_taken() {
        let r = parsed(
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\
             Connection: Keep-Alive\r\n\r\n",
        )
        .unwrap();
        assert_eq!(r.uri().path(), "/collections/a/items/1");
        assert_eq!(r.headers()["host"], "x");
        assert_eq!(r.headers()["accept"], "*/*");
        for text in [
            "HEAD /collections/a/items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET /collections/a/items/1?f=json HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /collections/a/items/%31 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET http://x/collections/a/items/1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x\r\nKeep-Alive: 5\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nUpgrade: h2c\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
        ] {
            assert!(parsed(text).is_none(), "{text}");
        }
    }

    #[test]
    fn dates_are_hypers() {
        let mut seen = String::new();
        date(|d| seen = String::from_utf8(d.to_vec()).unwrap());
        let then = httpdate::parse_http_date(&seen).unwrap();
        let now = SystemTime::now();
        let gap = now.duration_since(then).unwrap_or_default();
        assert!(gap.as_secs() <= 1, "{seen}");
        assert_eq!(seen.len(), 29, "{seen}");
    }
}
