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
//! and the router for the rest of its life. So hyper decides everything but the plain case,
//! and its limits and errors (`limits.rs`) apply unchanged.
//!
//! At shutdown a connection waiting here for its next request is closed at once, as hyper
//! closes an idle one; one being answered is answered first.
//!
//! A connection has `--header-timeout` from its opening, and from each answer, to send a whole
//! request head. Waiting here, it stamps the wait with a coarse clock (two atomic stores a
//! request, no timer); a sweeper task ticking several times a timeout closes the connections
//! whose wait is over, with a 408 JSON problem when part of a head had come. hyper's own
//! header-read timer, set to the same budget, does the same for the connections handed to it
//! (it closes without an answer). A connection handed to hyper that moves no byte either way
//! for that budget and `--request-timeout` together (an HTTP/2 connection left open, a client
//! that stops reading its answer) is closed by the sweeper too.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderName};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit};

use super::error::ApiError;
use super::fast::{Connection, Fast, Head};
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

/// A connection's wait stamp while it is answering a request (the sweeper passes it by).
const BUSY: u64 = u64::MAX;
/// A connection's wait stamp once the sweeper has timed it out.
const EXPIRED: u64 = u64::MAX - 1;

/// The lean path, hyper behind it, and the connections waiting here for a request.
pub struct Front {
    fast: Arc<Fast>,
    hyper: Builder<TokioExecutor>,
    /// The connections the front reads, each with its stop signal (sent: timed out; dropped:
    /// shutdown) and wait stamp; `None` once shutdown has begun.
    open: Mutex<Option<HashMap<u64, Open>>>,
    next: AtomicU64,
    header_timeout: Duration,
    /// How long a connection handed to hyper may move no byte either way: the head budget and
    /// the longest a request may take (`--request-timeout`) together.
    idle_timeout: Duration,
    /// The coarse clock: milliseconds from `epoch` at the sweeper's last tick.
    clock_ms: Arc<AtomicU64>,
    epoch: Instant,
}

/// An open connection as the sweeper sees it.
struct Open {
    stop: oneshot::Sender<()>,
    /// Read by the front: when its wait for a request head began ([`Front::clock_ms`]), or
    /// [`BUSY`], [`EXPIRED`]. Handed to hyper: when a byte last moved, or [`EXPIRED`].
    waiting: Arc<AtomicU64>,
    /// How long that wait may last, in milliseconds.
    limit_ms: u64,
}

impl Front {
    pub fn new(fast: Arc<Fast>) -> Arc<Front> {
        let header_timeout = fast.state().settings.header_timeout;
        let idle_timeout = header_timeout + fast.state().settings.request_timeout;
        // HTTP/1.1, or HTTP/2 when the client opens with its preface, as under `axum::serve`;
        // the same budget for a request head as here.
        let mut hyper = Builder::new(TokioExecutor::new());
        hyper
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        hyper.http2().timer(TokioTimer::new());
        Arc::new(Front {
            fast,
            hyper,
            open: Mutex::new(Some(HashMap::new())),
            next: AtomicU64::new(0),
            header_timeout,
            idle_timeout,
            clock_ms: Arc::new(AtomicU64::new(0)),
            epoch: Instant::now(),
        })
    }

    /// Closes the connections whose wait for a request head has outlasted `--header-timeout`,
    /// and those handed to hyper that have moved no byte for the idle timeout, every few
    /// tenths of the head budget (at most a second), until shutdown.
    pub async fn sweep(self: Arc<Self>) {
        let tick =
            (self.header_timeout / 8).clamp(Duration::from_millis(10), Duration::from_secs(1));
        let longest = u64::try_from(self.idle_timeout.as_millis()).unwrap_or(u64::MAX);
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // The clock's recent values, oldest first. A stamp `s` was taken before the clock
        // next moved on from `s`, however late a tick came: that later value bounds the
        // wait's start, so no wait is cut short.
        let mut clock = std::collections::VecDeque::new();
        loop {
            ticks.tick().await;
            let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(EXPIRED - 1);
            self.clock_ms.store(now, Ordering::Relaxed);
            clock.push_back(now);
            // Older values than a timeout and a tick ago bound no wait still in time.
            let keep_from = now.saturating_sub(longest.saturating_add(tick.as_millis() as u64));
            while clock.len() > 2 && clock.front().is_some_and(|&t| t < keep_from) {
                clock.pop_front();
            }
            let began_by = |stamp: u64| {
                clock
                    .get(clock.partition_point(|&t| t <= stamp))
                    .copied()
                    .unwrap_or(now)
            };
            let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
            let Some(open) = open.as_mut() else {
                return;
            };
            let over: Vec<u64> = open
                .iter()
                .filter(|(_, o)| {
                    let seen = o.waiting.load(Ordering::Relaxed);
                    // A connection swaps in BUSY when bytes come: it is expired only if it was
                    // still waiting when this exchange happened.
                    seen < EXPIRED
                        && now.saturating_sub(began_by(seen)) >= o.limit_ms
                        && o.waiting
                            .compare_exchange(seen, EXPIRED, Ordering::AcqRel, Ordering::Relaxed)
                            .is_ok()
                })
                .map(|(key, _)| *key)
                .collect();
            for key in over {
                if let Some(o) = open.remove(&key) {
                    let _ = o.stop.send(());
                }
            }
        }
    }

    /// The coarse clock's time, for a wait stamp.
    fn now(&self) -> u64 {
        self.clock_ms.load(Ordering::Relaxed)
    }

    /// Puts a connection where the sweeper sees it, with a wait of at most `limit`: its stop
    /// signal (sent: timed out) and wait stamp; `None` once shutdown has begun.
    fn register(&self, limit: Duration) -> Option<(u64, oneshot::Receiver<()>, Arc<AtomicU64>)> {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, stop) = oneshot::channel();
        let waiting = Arc::new(AtomicU64::new(self.now()));
        let entry = Open {
            stop: tx,
            waiting: Arc::clone(&waiting),
            limit_ms: u64::try_from(limit.as_millis()).unwrap_or(u64::MAX),
        };
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()?
            .insert(key, entry);
        Some((key, stop, waiting))
    }

    fn unregister(&self, key: u64) {
        if let Some(open) = self.open.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            open.remove(&key);
        }
    }

    /// Serves one connection until it closes (see the module comment). `watcher` holds the
    /// server's graceful shutdown until the connection has ended.
    /// `slot` is the connection's place under `--max-connections`, held until it closes.
    pub async fn serve(
        self: Arc<Self>,
        io: TcpStream,
        peer: SocketAddr,
        watcher: Watcher,
        slot: OwnedSemaphorePermit,
    ) {
        let metrics = self.metrics();
        metrics.connections_open.fetch_add(1, Ordering::Relaxed);
        self.read_and_hand_over(io, peer, watcher).await;
        metrics.connections_open.fetch_sub(1, Ordering::Relaxed);
        drop(slot);
    }

    async fn read_and_hand_over(&self, mut io: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let Some((key, stop, waiting)) = self.register(self.header_timeout) else {
            return;
        };
        let rest = self.lean_requests(&mut io, stop, &waiting).await;
        self.unregister(key);
        let Some(rest) = rest else {
            return;
        };
        // hyper times out a request head itself; the sweeper ends a connection that moves no
        // byte for the idle timeout (HTTP/2 left open, a client that stops reading an answer).
        let Some((key, mut stop, moved)) = self.register(self.idle_timeout) else {
            return;
        };
        self.metrics().handed_over.fetch_add(1, Ordering::Relaxed);
        let service = Connection::new(Arc::clone(&self.fast), peer);
        // hyper's automatic error answers become JSON problems (`limits.rs`).
        let io = LimitIo::new(Prefixed {
            prefix: rest,
            at: 0,
            inner: io,
            moved,
            clock: Arc::clone(&self.clock_ms),
        });
        let conn = self
            .hyper
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let ended = tokio::select! {
            ended = watcher.watch(conn) => ended,
            // Sent by the sweeper (dropped at shutdown, which hyper's graceful end handles).
            Ok(()) = &mut stop => {
                self.metrics().idle_timeouts.fetch_add(1, Ordering::Relaxed);
                Ok(())
            }
        };
        self.unregister(key);
        if let Err(e) = ended {
            if e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_timeout)
            {
                self.metrics()
                    .header_timeouts
                    .fetch_add(1, Ordering::Relaxed);
            }
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
        waiting: &AtomicU64,
    ) -> Option<Vec<u8>> {
        let mut read = Vec::with_capacity(READ_BYTES);
        let mut out = Vec::new();
        loop {
            let n = tokio::select! {
                biased;
                n = io.read_buf(&mut read) => n,
                timed_out = &mut stop => {
                    if timed_out.is_ok() {
                        self.time_out(io, &read).await;
                    }
                    return None;
                }
            };
            if matches!(n, Ok(0) | Err(_)) {
                return None;
            }
            // Answering: the sweeper leaves the connection alone, unless its time ran out
            // before these bytes came.
            let since = waiting.swap(BUSY, Ordering::AcqRel);
            if since == EXPIRED {
                self.time_out(io, &read).await;
                return None;
            }
            // Where the answered requests end, and what stopped the front there (`None`: the
            // end of what was read).
            let mut at = 0;
            let mut stopped = None;
            while at < read.len() {
                if out.len() >= WRITE_BYTES {
                    self.write(io, &out, waiting, &mut stop).await?;
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
                self.write(io, &out, waiting, &mut stop).await?;
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
            // Waiting again: for a new head from now, or still for the one begun.
            let stamp = if at > 0 { self.now() } else { since };
            waiting.store(stamp, Ordering::Release);
        }
    }

    /// Writes answers: a wait on the client as long as the write blocks, so that the sweeper ends
    /// a client that stops reading after `--header-timeout`. `None` when the connection ends.
    async fn write(
        &self,
        io: &mut TcpStream,
        out: &[u8],
        waiting: &AtomicU64,
        stop: &mut oneshot::Receiver<()>,
    ) -> Option<()> {
        waiting.store(self.now(), Ordering::Release);
        let written = tokio::select! {
            biased;
            w = io.write_all(out) => w.is_ok(),
            timed_out = &mut *stop => {
                if timed_out.is_ok() {
                    self.metrics().idle_timeouts.fetch_add(1, Ordering::Relaxed);
                }
                return None;
            }
        };
        // Answering again (the sweeper may have expired the wait just as the write ended).
        (waiting.swap(BUSY, Ordering::AcqRel) != EXPIRED && written).then_some(())
    }

    fn metrics(&self) -> &super::ops::Metrics {
        &self.fast.state().metrics
    }

    /// Ends a connection whose request head did not come in time: with a 408 problem when
    /// part of one came (`pending`), else (an idle connection) without a word.
    async fn time_out(&self, io: &mut TcpStream, pending: &[u8]) {
        self.metrics()
            .header_timeouts
            .fetch_add(1, Ordering::Relaxed);
        if pending.is_empty() {
            return;
        }
        let seconds = self.header_timeout.as_secs_f64();
        let error = ApiError::new(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!(
                "the request head did not arrive within the server's limit of {seconds} s \
                 (--header-timeout); {} bytes of it came",
                pending.len()
            ),
        )
        .with_details(serde_json::json!({"limit": "header-timeout", "seconds": seconds}));
        let answer = super::limits::problem_http1(&error, "1.1");
        // A client that does not read gets no longer than the budget again.
        let _ = tokio::time::timeout(self.header_timeout, io.write_all(&answer)).await;
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
        match head(&req) {
            Some(head) if self.fast.lean_http1(&head, out) => Next::Whole(len),
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

/// What the lean path needs of `req` when it is a plain HTTP/1.1 GET of a path whose every byte
/// a URI path may hold as it is (no query, no percent-encoding) and it has none of
/// [`HYPER_FIELDS`] (but `Connection: keep-alive`): read in one pass over its fields, with no
/// header map made (httparse checked the names as tokens and the values' bytes, as hyper's
/// parse does).
fn head<'a>(req: &httparse::Request<'_, 'a>) -> Option<Head<'a>> {
    if req.method != Some("GET") || req.version != Some(1) {
        return None;
    }
    let path = req.path?;
    if !path.starts_with('/') || !path.bytes().all(plain_path_byte) {
        return None;
    }
    let mut head = Head {
        path,
        ..Head::default()
    };
    let mut name = [0u8; 32];
    for field in req.headers.iter() {
        // Lower case, as a header map holds names; a longer name is none the lean path reads
        // (they are at most 19 bytes) and is only counted.
        let lower = name.get_mut(..field.name.len()).map(|n| {
            n.copy_from_slice(field.name.as_bytes());
            n.make_ascii_lowercase();
            &*n
        });
        let Some(lower) = lower else {
            head.field(field.name.as_bytes(), field.value);
            continue;
        };
        if HYPER_FIELDS.iter().any(|h| h.as_str().as_bytes() == lower)
            && !(lower == b"connection" && field.value.eq_ignore_ascii_case(b"keep-alive"))
        {
            return None;
        }
        head.field(lower, field.value);
    }
    Some(head)
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

/// A connection whose first reads give back bytes already read from it, stamping the time
/// whenever a byte moves either way (for the sweeper's idle timeout).
struct Prefixed<I> {
    prefix: Vec<u8>,
    at: usize,
    inner: I,
    moved: Arc<AtomicU64>,
    clock: Arc<AtomicU64>,
}

impl<I> Prefixed<I> {
    fn stamp(&self) {
        let now = self.clock.load(Ordering::Relaxed);
        // An expired connection stays so: its stop is on its way.
        let _ = self
            .moved
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |t| {
                (t != EXPIRED).then_some(now)
            });
    }
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
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.stamp();
        }
        r
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.stamp();
        }
        r
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

    /// `f` of the head of `text`, when the front takes it.
    fn parsed<T>(text: &str, f: impl FnOnce(Option<Head<'_>>) -> T) -> T {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        assert!(req.parse(text.as_bytes()).unwrap().is_complete());
        f(head(&req))
    }

    #[test]
    fn only_plain_http11_gets_are_taken() {
        parsed(
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x\r\nACCEPT: */*\r\n\
             Connection: Keep-Alive\r\nX-Request-Id: r1\r\nAccept: text/html\r\n\
             If-None-Match: \"a\"\r\nX-A-Field-Name-Longer-Than-32-Bytes: 1\r\n\r\n",
            |head| {
                let head = head.unwrap();
                assert_eq!(head.path, "/collections/a/items/1");
                assert_eq!(head.host, Some(&b"x"[..]));
                // The first value, as a header map's `get` gives it.
                assert_eq!(head.accept, Some(&b"*/*"[..]));
                assert_eq!(head.request_id, Some(&b"r1"[..]));
                assert!(head.router && !head.forwarded && !head.accept_encoding);
                assert_eq!(head.fields, 7);
                let names = "host accept connection x-request-id accept if-none-match \
                             x-a-field-name-longer-than-32-bytes";
                let values = ["x", "*/*", "Keep-Alive", "r1", "text/html", "\"a\"", "1"];
                let bytes = names.split(' ').map(str::len).sum::<usize>()
                    + values.iter().map(|v| v.len()).sum::<usize>()
                    + 4 * 7;
                assert_eq!(head.field_bytes, bytes);
            },
        );
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
            assert!(parsed(text, |head| head.is_none()), "{text}");
        }
    }

    /// The front's reading of a head is what the lean path reads of hyper's request for it.
    #[test]
    fn the_fronts_head_is_the_one_read_from_a_header_map() {
        for text in [
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x:8080\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nHost: x\r\nAccept: text/html\r\n\
             ACCEPT: */*\r\nAccept-Encoding: gzip\r\nX-Forwarded-Host: y\r\n\
             x-forwarded-proto: https\r\nX-Request-ID: 村\r\n\r\n",
            "GET /collections/a/items/1 HTTP/1.1\r\nIf-Modified-Since: x\r\n\
             Connection: keep-alive\r\nTransfer-Encoding: x\r\n\r\n",
            "GET /c/items/1 HTTP/1.1\r\nUser-Agent: QGIS/3.34\r\nAccept-Language: zh-CN\r\n\r\n",
        ] {
            let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut req = httparse::Request::new(&mut fields);
            assert!(req.parse(text.as_bytes()).unwrap().is_complete());
            let mut built = axum::http::Request::builder().uri(req.path.unwrap());
            for f in req.headers.iter() {
                built = built.header(f.name, f.value);
            }
            let built = built.body(()).unwrap();
            let front = head(&req);
            // (Transfer-Encoding is hyper's to carry out: the front never takes it.)
            if text.contains("Transfer-Encoding") {
                assert_eq!(front, None);
                continue;
            }
            assert_eq!(front, Head::of(&built), "{text}");
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
