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
