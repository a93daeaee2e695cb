//! How sigil's own log lines are written (stderr): `TIME LEVEL TARGET: message field=value…`,
//! the shape of tracing-subscriber's default, formatted for less. Every edge request writes an
//! access-log line, and the default formatter's styling pass, `Debug` visiting of every field
//! and a calendar computation per line cost about 10% of a small request (README,
//! "Performance"); here the date is formatted once a second per thread, integers and text are
//! written directly, and only text fields are quoted (as the default does).
//!
//! And where they go: [`buffered`] gathers lines in memory and a thread of its own writes them
//! out every [`FLUSH_EVERY`] — a line costs a copy into a vector, no system call and no
//! thread wake-up (a channel to a writer thread woke it for nearly every line: a context
//! switch each, on a busy CPU). Past [`BUFFER_MAX`] waiting bytes, the thread that logs
//! writes them itself: memory stays bounded and no line is dropped. A `kill -9` loses at most
//! the last [`FLUSH_EVERY`] of lines.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The event formatter (`tracing_subscriber::fmt().event_format(Lines)`).
pub struct Lines;

thread_local! {
    /// The second last formatted on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static STAMP: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

impl<S, N> FormatEvent<S, N> for Lines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        STAMP.with(|stamp| {
            let mut stamp = stamp.borrow_mut();
            if stamp.0 != now.as_secs() {
                stamp.0 = now.as_secs();
                let iso = crate::clock::iso(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
                stamp.1.clear();
                stamp.1.push_str(iso.trim_end_matches('Z'));
            }
            writer.write_str(&stamp.1)
        })?;
        let meta = event.metadata();
        write!(
            writer,
            ".{:06}Z {:>5} {}:",
            now.subsec_micros(),
            meta.level().as_str(),
            meta.target()
        )?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes ` name=value` per field (the message bare, first).
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    /// Writes ` name=` (` ` for the message), then the value `write` writes.
    fn with(&mut self, field: &Field, write: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_err() {
            return;
        }
        self.result = self.writer.write_char(' ').and_then(|()| {
            if field.name() != "message" {
                self.writer.write_str(field.name())?;
                self.writer.write_char('=')?;
            }
            write(self.writer)
        });
    }

    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        self.with(field, |w| w.write_fmt(value));
    }
}

/// Whether `text` reads the same quoted by `Debug` as between two quotes: printable ASCII
/// other than `"` and `\` (what a site, a path or a method nearly always is).
fn plain(text: &str) -> bool {
    text.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.with(field, |w| w.write_str(value));
        } else if plain(value) {
            // What `{value:?}` writes, without escaping it character by character.
            self.with(field, |w| {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            });
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.with(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, format_args!("{value}"));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// How often the writer thread writes what has gathered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes gathered at most before the logging thread writes them itself.
pub const BUFFER_MAX: usize = 1 << 20;

/// Where lines gather (`tracing_subscriber::fmt().with_writer(…)`).
#[derive(Clone)]
pub struct Buffered(Arc<Shared>);

struct Shared {
    lines: Mutex<Vec<u8>>,
    /// The output, held while writing, so that what is taken is written in order, and the
    /// buffer the lines are taken into: the two change places at each flush and keep their
    /// capacity (a fresh buffer after each flush grew again by reallocation, ~1% of the CPU of
    /// a logged request).
    out: Mutex<(Box<dyn std::io::Write + Send>, Vec<u8>)>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Shared {
    /// Writes what has gathered.
    fn flush(&self) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        let (out, taken) = &mut *out;
        std::mem::swap(
            taken,
            &mut *self.lines.lock().unwrap_or_else(|p| p.into_inner()),
        );
        if !taken.is_empty() {
            // Nowhere to say it if the output fails.
            let _ = out.write_all(taken);
            let _ = out.flush();
            taken.clear();
        }
    }
}

/// Stops the writer thread and writes the rest when dropped (keep it until exit).
pub struct Flusher {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        *self.shared.stop.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.flush();
    }
}

/// Lines to `out`, written by a thread named `sigil-log`.
pub fn buffered(out: Box<dyn std::io::Write + Send>) -> (Buffered, Flusher) {
    let shared = Arc::new(Shared {
        lines: Mutex::new(Vec::with_capacity(64 * 1024)),
        out: Mutex::new((out, Vec::with_capacity(64 * 1024))),
        stop: Mutex::new(false),
        wake: Condvar::new(),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("sigil-log".into())
        .spawn(move || loop {
            let stop = writer.stop.lock().unwrap_or_else(|p| p.into_inner());
            let (stop, _) = writer
                .wake
                .wait_timeout_while(stop, FLUSH_EVERY, |stop| !*stop)
                .unwrap_or_else(|p| p.into_inner());
            let stopping = *stop;
            drop(stop);
            writer.flush();
            if stopping {
                return;
            }
        })
        .ok();
    (Buffered(Arc::clone(&shared)), Flusher { shared, thread })
}

impl std::io::Write for &Buffered {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut lines = self.0.lines.lock().unwrap_or_else(|p| p.into_inner());
            lines.extend_from_slice(bytes);
            lines.len() >= BUFFER_MAX
        };
        if full {
            self.0.flush();
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(()) // the writer thread's
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffered {
    type Writer = &'a Buffered;

    fn make_writer(&'a self) -> Self::Writer {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn gathered_lines_are_written_in_order_by_the_thread_by_a_burst_and_at_the_end() {
        let sink = Sink::default();
        let (lines, flusher) = buffered(Box::new(sink.clone()));
        let written = || sink.0.lock().expect("lock").clone();
        (&lines).write_all(b"one\n").expect("write");
        assert!(written().is_empty(), "gathered, not written at once");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while written().is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "the thread writes them"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(written(), b"one\n");
        // A burst past the bound is written by the one logging, in order.
        let line = vec![b'x'; 1000];
        for _ in 0..(BUFFER_MAX / 1000 + 1) {
            (&lines).write_all(&line).expect("write");
        }
        assert!(written().len() > BUFFER_MAX, "written without waiting");
        (&lines).write_all(b"last\n").expect("write");
        drop(flusher);
        let all = written();
        assert!(all.starts_with(b"one\nxxx") && all.ends_with(b"xxxlast\n"));
        assert_eq!(all.len(), 4 + (BUFFER_MAX / 1000 + 1) * 1000 + 5);
    }

    #[test]
    fn lines_have_time_level_target_message_and_fields() {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Lines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "sigil::access", site = "a.localhost", method = %"GET", status = 200u64, micros = 12u64);
            tracing::warn!(error = %"disk full", lines = 3, "request logs dropped");
            tracing::info!(path = "/a \"b\"\\c\u{7f}é", empty = "", n = u64::MAX, "");
        });
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        // 2026-11-29T18:28:01.123456Z
        let (time, rest) = lines[0].split_once(' ').expect("time");
        assert_eq!(time.len(), 27, "{time}");
        assert!(time.ends_with('Z') && time.as_bytes()[19] == b'.', "{time}");
        assert!(crate::clock::parse_iso(time).is_some(), "{time}");
        assert_eq!(
            rest,
            " INFO sigil::access: site=\"a.localhost\" method=GET status=200 micros=12"
        );
        assert!(
            lines[1].ends_with(
                " WARN sigil::logline::tests: request logs dropped error=disk full lines=3"
            ),
            "{}",
            lines[1]
        );
        // Text that needs escaping is written as `Debug` writes it; plain text just quoted.
        assert!(
            lines[2].ends_with(&format!(
                " INFO sigil::logline::tests:  path={:?} empty=\"\" n={}",
                "/a \"b\"\\c\u{7f}é",
                u64::MAX
            )),
            "{}",
            lines[2]
        );
    }
}
