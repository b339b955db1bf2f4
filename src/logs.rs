//! Where the log lines go: stderr, through a buffer written out every [`FLUSH_EVERY`] and
//! whenever it holds [`FLUSH_BYTES`].
//!
//! A busy server logs a line for every request (`yizhangtu::access`). Written one by one, each
//! line is a system call on the request's thread; handed to a writer thread, each wakes that
//! thread. Both cost a 2-core machine a third of its by-id throughput (issue 15). Here a line
//! costs a short lock and a copy, and a background thread writes the buffer out 20 times a
//! second, as nginx's `access_log … buffer= flush=` does. Lines are never dropped: a full buffer
//! is written out by the thread that filled it. [`LogBuffer::flush`] writes out what is left
//! (the `yizhangtu` command calls it before it exits).
//!
//! The lean path's access line (`src/http/fast.rs`) can skip `tracing` altogether: going
//! through it means a span made, entered and closed and an event formatted field by field,
//! ~1.5 µs of a 15 µs answer. When the command's subscriber would write the line exactly as
//! [`AccessLine::write`] does (colourless text or JSON, a filter without span directives; see
//! [`write_access_lines_directly`]), the line is written here, straight into the buffer.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the background thread writes the buffer out.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full is written out at once.
pub const FLUSH_BYTES: usize = 256 << 10;

/// The buffer and its destination (see the module comment).
pub struct LogBuffer {
    inner: Mutex<Inner>,
}

struct Inner {
    buf: Vec<u8>,
    out: Box<dyn Write + Send>,
    /// No thread writes the buffer out: every line is written at once.
    unbuffered: bool,
}

impl Inner {
    fn write_out(&mut self) {
        // A log that cannot be written (a closed stderr) has nowhere to report it.
        let _ = self.out.write_all(&self.buf);
        let _ = self.out.flush();
        self.buf.clear();
    }
}

impl LogBuffer {
    /// A buffer in front of `out`, with a thread that writes it out every [`FLUSH_EVERY`].
    pub fn start(out: Box<dyn Write + Send>) -> Arc<LogBuffer> {
        let buffer = Arc::new(LogBuffer {
            inner: Mutex::new(Inner {
                buf: Vec::with_capacity(FLUSH_BYTES),
                out,
                unbuffered: false,
            }),
        });
        let weak = Arc::downgrade(&buffer);
        let spawned = std::thread::Builder::new()
            .name("yizhangtu-logs".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                match weak.upgrade() {
                    Some(b) => b.flush(),
                    None => return,
                }
            });
        if spawned.is_err() {
            buffer.lock().unbuffered = true;
        }
        buffer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A thread that panicked while holding the lock left whole lines or an empty buffer.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes out what the buffer holds.
    pub fn flush(&self) {
        let mut inner = self.lock();
        if !inner.buf.is_empty() {
            inner.write_out();
        }
    }

    fn append(&self, line: &[u8]) {
        let mut inner = self.lock();
        inner.buf.extend_from_slice(line);
        if inner.buf.len() >= FLUSH_BYTES || inner.unbuffered {
            inner.write_out();
        }
    }
}

/// The writer `tracing_subscriber` gets for each line.
#[derive(Clone)]
pub struct LogWriter(pub Arc<LogBuffer>);

impl Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.append(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        self.clone()
    }
}

/// Where [`AccessLine`]s go when they skip `tracing`.
struct DirectAccess {
    buffer: Arc<LogBuffer>,
    json: bool,
}

static DIRECT_ACCESS: std::sync::OnceLock<DirectAccess> = std::sync::OnceLock::new();

/// Says that access lines may be written straight into `buffer`: the caller installed a
/// `tracing_subscriber::fmt` subscriber writing to it with the default (`Full`) format without
/// colour, or the JSON format with the current span and no span list, as `json` says, and a
/// filter whose directives name no spans (`[...]`), so that whether a line is written depends
/// on its target and level alone. The first call wins.
pub fn write_access_lines_directly(buffer: Arc<LogBuffer>, json: bool) {
    let _ = DIRECT_ACCESS.set(DirectAccess { buffer, json });
}

/// Whether `filter` (an `EnvFilter`'s directives, as in `RUST_LOG`) names spans.
pub fn filter_names_spans(filter: &str) -> bool {
    filter.contains('[')
}

/// One request's access line: event `answered` (target `yizhangtu::access`) in span `request`,
/// as `src/http/ops.rs` logs it through `tracing`.
pub struct AccessLine<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub route: &'a str,
    /// Milliseconds, rounded to a tenth.
    pub ms: f64,
}

thread_local! {
    static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
}

impl AccessLine<'_> {
    /// Writes the line as the subscriber would, byte for byte but for the clock's reading, and
    /// says whether it did: `false` when no direct writer is set up
    /// ([`write_access_lines_directly`]), and the caller must log it through `tracing`. The
    /// caller checks first that `tracing` would write it (the event's and the span's level).
    pub fn write(&self) -> bool {
        let Some(direct) = DIRECT_ACCESS.get() else {
            return false;
        };
        LINE.with_borrow_mut(|line| {
            line.clear();
            if direct.json {
                self.json(line, std::time::SystemTime::now());
            } else {
                self.text(line, std::time::SystemTime::now());
            }
            direct.buffer.append(line.as_bytes());
        });
        true
    }

    /// `tracing_subscriber`'s `Full` format, colourless, with the default fields' format.
    fn text(&self, out: &mut String, now: std::time::SystemTime) {
        use std::fmt::Write as _;
        timestamp(out, now);
        out.push_str("  INFO request{request_id=");
        out.push_str(self.request_id);
        out.push_str(" method=");
        out.push_str(self.method);
        out.push_str(" path=");
        out.push_str(self.path);
        out.push_str("}: yizhangtu::access: answered status=");
        out.push_str(itoa::Buffer::new().format(self.status));
        out.push_str(" route=");
        out.push_str(self.route);
        // `tracing` records an f64 with its `Debug` form, which is `ryu`'s text for the
        // tenths of a millisecond this holds (decimal from 10⁻⁴ to 10¹⁶, as `ryu` below 10¹⁶).
        out.push_str(" ms=");
        if (0.0..1e15).contains(&self.ms) {
            out.push_str(ryu::Buffer::new().format(self.ms));
        } else {
            let _ = write!(out, "{:?}", self.ms);
        }
        out.push('\n');
    }

    /// `tracing_subscriber`'s JSON format with the current span (its fields in key order, then
    /// its name) and no span list.
    fn json(&self, out: &mut String, now: std::time::SystemTime) {
        use crate::formats::geojson::json_string_inner as escaped;
        out.push_str("{\"timestamp\":\"");
        timestamp(out, now);
        out.push_str("\",\"level\":\"INFO\",\"fields\":{\"message\":\"answered\",\"status\":");
        out.push_str(itoa::Buffer::new().format(self.status));
        out.push_str(",\"route\":\"");
        escaped(out, self.route);
        out.push_str("\",\"ms\":");
        // serde_json writes a finite f64 with `ryu`.
        out.push_str(ryu::Buffer::new().format(self.ms));
        out.push_str("},\"target\":\"yizhangtu::access\",\"span\":{\"method\":\"");
        escaped(out, self.method);
        out.push_str("\",\"path\":\"");
        escaped(out, self.path);
        out.push_str("\",\"request_id\":\"");
        escaped(out, self.request_id);
        out.push_str("\",\"name\":\"request\"}}\n");
    }
}

/// `now` as `tracing_subscriber`'s default timer writes it: RFC 3339 in UTC with microseconds,
/// `2026-11-30T12:03:55.249341Z`.
fn timestamp(out: &mut String, now: std::time::SystemTime) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, day_secs) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's days-to-civil, for days since 1970-01-01 (the clock is past 1970).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    if year > 9999 {
        out.push('+');
    }
    digits(out, year, 4);
    out.push('-');
    digits(out, month, 2);
    out.push('-');
    digits(out, day, 2);
    out.push('T');
    digits(out, day_secs / 3600, 2);
    out.push(':');
    digits(out, day_secs / 60 % 60, 2);
    out.push(':');
    digits(out, day_secs % 60, 2);
    out.push('.');
    digits(out, u64::from(since.subsec_micros()), 6);
    out.push('Z');
}

/// `n` in decimal, zero-padded to `width` digits.
fn digits(out: &mut String, n: u64, width: usize) {
    let mut b = itoa::Buffer::new();
    let text = b.format(n);
    for _ in text.len()..width {
        out.push('0');
    }
    out.push_str(text);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination the test can read.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u64| {
            let mut s = String::new();
            timestamp(
                &mut s,
                std::time::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_micros(micros),
            );
            s
        };
        // Checked with Python's datetime.fromtimestamp(s, UTC).
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(951_782_400, 500_000), "2000-02-29T00:00:00.500000Z");
        assert_eq!(at(1_796_052_345, 7), "2026-11-30T15:25:45.000007Z");
        assert_eq!(at(4_107_542_399, 999_999), "2100-02-28T23:59:59.999999Z");
        assert_eq!(at(253_402_300_800, 0), "+10000-01-01T00:00:00.000000Z");
    }

    /// What `tracing_subscriber` writes for the access line, in the text or the JSON format.
    fn through_tracing(json: bool, line: &AccessLine) -> String {
        let out = Shared::default();
        let sink = out.clone();
        let logs = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || sink.clone());
        let log = || {
            // As src/http/mod.rs's `span_of` and ops.rs's `answered` log it.
            let span = tracing::info_span!(
                "request",
                request_id = %line.request_id,
                method = %line.method,
                path = %line.path,
            );
            let _entered = span.enter();
            tracing::info!(
                target: "yizhangtu::access",
                status = line.status,
                route = %line.route,
                ms = line.ms,
                "answered"
            );
        };
        if json {
            let subscriber = logs
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .finish();
            tracing::subscriber::with_default(subscriber, log);
        } else {
            tracing::subscriber::with_default(logs.finish(), log);
        }
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    /// `line` without its timestamp.
    fn untimed(json: bool, line: &str) -> String {
        if json {
            let (head, rest) = line.split_once("\"timestamp\":\"").unwrap();
            let (_, tail) = rest.split_once('"').unwrap();
            format!("{head}{tail}")
        } else {
            line.split_once(' ').unwrap().1.to_string()
        }
    }

    /// The `ms` field written with `ryu` is its `Debug` text, as `tracing` writes it.
    #[test]
    fn milliseconds_are_written_as_debug_writes_them() {
        let line = |ms: f64| {
            let mut out = String::new();
            AccessLine {
                request_id: "r",
                method: "GET",
                path: "/",
                status: 200,
                route: "/",
                ms,
            }
            .text(&mut out, std::time::SystemTime::now());
            out.rsplit_once(" ms=").unwrap().1.trim_end().to_string()
        };
        let mut values: Vec<f64> = (0..100_000).map(|k| f64::from(k) / 10.0).collect();
        values.extend((0..40).map(|e| (10f64.powi(e) * 1e4).round() / 10.0 + 0.1));
        values.extend([f64::NAN, f64::INFINITY, 1e15, 1e16, 1e17, 0.123_456_7]);
        for ms in values {
            assert_eq!(line(ms), format!("{ms:?}"), "{ms:e}");
        }
    }

    #[test]
    fn access_lines_are_written_as_tracing_writes_them() {
        let odd_ids = ["", "a\"b\\c\td", "请求-1", "{x}: y=z"];
        let paths = [
            "/collections/parcels/items/17",
            "/collections/x/items/a.b_c~d",
        ];
        for json in [false, true] {
            for (i, request_id) in odd_ids.iter().enumerate() {
                let line = AccessLine {
                    request_id,
                    method: "GET",
                    path: paths[i % 2],
                    status: [200, 404][i % 2],
                    route: "/collections/{collection}/items/{feature}",
                    ms: [0.0, 0.1, 12.3, 123_456.7][i],
                };
                let theirs = through_tracing(json, &line);
                let mut ours = String::new();
                if json {
                    line.json(&mut ours, std::time::SystemTime::now());
                } else {
                    line.text(&mut ours, std::time::SystemTime::now());
                }
                assert_eq!(untimed(json, &ours), untimed(json, &theirs), "json: {json}");
                assert!(ours.ends_with('\n') && ours.matches('\n').count() == 1);
            }
        }
    }

    #[test]
    fn lines_arrive_whole_in_order_after_a_flush_or_a_full_buffer() {
        let out = Shared::default();
        let buffer = LogBuffer::start(Box::new(out.clone()));
        let mut w = LogWriter(Arc::clone(&buffer));
        // Four threads, 20,000 lines each: every line arrives once and whole, each thread's
        // lines in order; more than FLUSH_BYTES go through, so full buffers are written out.
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..20_000 {
                        w.write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        w.write_all(b"last\n").unwrap();
        buffer.flush();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert!(text.len() > FLUSH_BYTES);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 80_001);
        assert_eq!(lines[80_000], "last");
        for t in 0..4 {
            let own: Vec<usize> = lines
                .iter()
                .filter_map(|l| l.strip_prefix(&format!("thread {t} line ")))
                .map(|n| n.parse().unwrap())
                .collect();
            assert_eq!(own, (0..20_000).collect::<Vec<_>>());
        }
        // The background thread writes a line out without a flush.
        w.write_all(b"later\n").unwrap();
        let waited = std::time::Instant::now();
        while !String::from_utf8_lossy(&out.0.lock().unwrap()).ends_with("later\n") {
            assert!(waited.elapsed() < Duration::from_secs(10), "never written");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
