//! How sigil's own log lines are written (stderr): `TIME LEVEL TARGET: message field=value…`,
//! the shape of tracing-subscriber's default, formatted for less. Every edge request writes an
//! access-log line, and the default formatter's styling pass, `Debug` visiting of every field
//! and a calendar computation per line cost about 10% of a small request (README,
//! "Performance"); here the date is formatted once a second per thread, integers and text are
//! written directly, and only text fields are quoted (as the default does). The access line
//! itself ([`access`]) skips tracing's machinery and is written in the same shape straight
//! into the gathered lines.
//!
//! And where they go: [`buffered`] gathers lines in memory and a thread of its own writes them
//! out every [`FLUSH_EVERY`] — a line costs a copy into a vector, no system call and no
//! thread wake-up (a channel to a writer thread woke it for nearly every line: a context
//! switch each, on a busy CPU); [`WRITE_FROM`] waiting bytes wake it early. Past
//! [`BUFFER_MAX`] waiting bytes, the thread that logs writes them itself: memory stays bounded
//! and no line is dropped. A `kill -9` loses at most the last [`FLUSH_EVERY`] of lines.

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
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
        let meta = event.metadata();
        prefix(&mut writer, SystemTime::now(), meta.level(), meta.target())?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// Writes `TIME LEVEL TARGET:`, the start of every line.
fn prefix(w: &mut impl fmt::Write, now: SystemTime, level: &Level, target: &str) -> fmt::Result {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    STAMP.with(|stamp| {
        let mut stamp = stamp.borrow_mut();
        if stamp.0 != now.as_secs() {
            stamp.0 = now.as_secs();
            let iso = crate::clock::iso(i64::try_from(now.as_secs()).unwrap_or(i64::MAX));
            stamp.1.clear();
            stamp.1.push_str(iso.trim_end_matches('Z'));
        }
        w.write_str(&stamp.1)
    })?;
    // `.{micros:06}Z {level:>5} {target}:`, without `fmt`'s padding machinery.
    let mut micros = itoa::Buffer::new();
    let micros = micros.format(now.subsec_micros());
    w.write_char('.')?;
    w.write_str(&"000000"[micros.len().min(6)..])?;
    w.write_str(micros)?;
    w.write_str(match *level {
        Level::ERROR => "Z ERROR ",
        Level::WARN => "Z  WARN ",
        Level::INFO => "Z  INFO ",
        Level::DEBUG => "Z DEBUG ",
        Level::TRACE => "Z TRACE ",
    })?;
    w.write_str(target)?;
    w.write_char(':')
}

/// Writes ` name=`.
fn name(w: &mut impl fmt::Write, name: &str) -> fmt::Result {
    w.write_char(' ')?;
    w.write_str(name)?;
    w.write_char('=')
}

/// Writes text as `Debug` quotes it, without escaping it character by character when it
/// needs none.
fn text(w: &mut impl fmt::Write, value: &str) -> fmt::Result {
    if plain(value) {
        w.write_char('"')?;
        w.write_str(value)?;
        w.write_char('"')
    } else {
        write!(w, "{value:?}")
    }
}

fn number(w: &mut impl fmt::Write, value: impl itoa::Integer) -> fmt::Result {
    w.write_str(itoa::Buffer::new().format(value))
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
        self.result = if field.name() == "message" {
            self.writer.write_char(' ')
        } else {
            name(self.writer, field.name())
        }
        .and_then(|()| write(self.writer));
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
        } else {
            self.with(field, |w| text(w, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.with(field, |w| number(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.with(field, |w| number(w, value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.with(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// One edge request's access-log line (target `sigil::access`).
pub struct Access<'a> {
    /// The Site's domain, or `-`.
    pub site: &'a str,
    /// The request's method.
    pub method: &'a str,
    /// The request's path.
    pub path: &'a str,
    /// The response's status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: u64,
    /// When the request came (the line's time is when it is written).
    pub started: SystemTime,
}

/// Where [`access`] writes its lines (`None`: the filter leaves them out), set once by the
/// process that logs (`main`), after its subscriber and filter, which do not change.
static ACCESS: OnceLock<Option<Buffered>> = OnceLock::new();

/// Logs one access line. Once [`Buffered::take_access_lines`] was called, the line goes
/// straight into the gathered lines in the shape [`Lines`] writes (or nowhere, if the filter
/// leaves `sigil::access` out): tracing's dispatch, its field visitor and its own buffer
/// cost ~0.3 µs a request (README, "Performance"). Before, it is a tracing event.
pub fn access(line: &Access<'_>) {
    // Left out by the filter: not even the clock is read.
    let lines = match ACCESS.get() {
        Some(None) => return,
        lines => lines.and_then(Option::as_ref),
    };
    let now = SystemTime::now();
    let micros = now
        .duration_since(line.started)
        .unwrap_or_default()
        .as_micros() as u64;
    let Some(lines) = lines else {
        tracing::info!(
            target: "sigil::access",
            site = line.site,
            method = %line.method,
            path = line.path,
            status = line.status,
            bytes = line.bytes,
            micros,
        );
        return;
    };
    thread_local! {
        static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    }
    LINE.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        // Writing to a String does not fail.
        let _ = write_access(&mut *buf, now, micros, line);
        let _ = (&*lines).write_all(buf.as_bytes());
    });
}

fn write_access(
    w: &mut impl fmt::Write,
    now: SystemTime,
    micros: u64,
    line: &Access<'_>,
) -> fmt::Result {
    prefix(w, now, &Level::INFO, "sigil::access")?;
    name(w, "site")?;
    text(w, line.site)?;
    name(w, "method")?;
    w.write_str(line.method)?;
    name(w, "path")?;
    text(w, line.path)?;
    name(w, "status")?;
    number(w, line.status)?;
    name(w, "bytes")?;
    number(w, line.bytes)?;
    name(w, "micros")?;
    number(w, micros)?;
    w.write_char('\n')
}

/// How often the writer thread writes what has gathered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// Bytes gathered that wake the writer thread before its time. Under load its writes stay
/// small and frequent (at 150,000 lines a second, 64 KiB every 3 ms, as nginx's
/// `access_log … buffer=64k` writes), and no request waits on a large one: with only the
/// bound below, the thread that logs wrote 1 MiB itself every 50 ms, a millisecond in which
/// its connections waited (README, "Performance").
pub const WRITE_FROM: usize = 64 << 10;
/// Bytes gathered at most: past it (the writer thread fell behind) the thread that logs
/// writes them itself.
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
    signal: Mutex<Signal>,
    wake: Condvar,
}

/// What the writer thread is woken for, besides its timer.
#[derive(Default)]
struct Signal {
    /// Write the rest and end.
    stop: bool,
    /// [`WRITE_FROM`] bytes have gathered.
    due: bool,
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
        self.shared
            .signal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stop = true;
        self.shared.wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.shared.flush();
    }
}

/// Lines to `out`, written by a thread named `sigil-log`.
pub fn buffered(out: Box<dyn std::io::Write + Send>) -> (Buffered, Flusher) {
    buffered_every(out, FLUSH_EVERY)
}

/// [`buffered`], its thread writing every `every` (and whenever [`WRITE_FROM`] bytes gathered).
fn buffered_every(out: Box<dyn std::io::Write + Send>, every: Duration) -> (Buffered, Flusher) {
    let shared = Arc::new(Shared {
        lines: Mutex::new(Vec::with_capacity(WRITE_FROM * 2)),
        out: Mutex::new((out, Vec::with_capacity(WRITE_FROM * 2))),
        signal: Mutex::new(Signal::default()),
        wake: Condvar::new(),
    });
    let writer = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("sigil-log".into())
        .spawn(move || loop {
            let signal = writer.signal.lock().unwrap_or_else(|p| p.into_inner());
            let (mut signal, _) = writer
                .wake
                .wait_timeout_while(signal, every, |s| !s.stop && !s.due)
                .unwrap_or_else(|p| p.into_inner());
            signal.due = false;
            let stopping = signal.stop;
            drop(signal);
            writer.flush();
            if stopping {
                return;
            }
        })
        .ok();
    (Buffered(Arc::clone(&shared)), Flusher { shared, thread })
}

impl Buffered {
    /// Makes these the lines [`access`] writes to, for the rest of the process, if the log
    /// filter of the subscriber set now lets `sigil::access` through (asked once: the filter
    /// does not change). Only the first call in a process counts (returns whether this was it).
    pub fn take_access_lines(&self) -> bool {
        let on = tracing::enabled!(target: "sigil::access", Level::INFO);
        ACCESS.set(on.then(|| self.clone())).is_ok()
    }
}

impl std::io::Write for &Buffered {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let (before, after) = {
            let mut lines = self.0.lines.lock().unwrap_or_else(|p| p.into_inner());
            let before = lines.len();
            lines.extend_from_slice(bytes);
            (before, lines.len())
        };
        if after >= BUFFER_MAX {
            self.0.flush();
        } else if before < WRITE_FROM && after >= WRITE_FROM {
            // Once per WRITE_FROM bytes: the buffer starts empty again when taken.
            self.0.signal.lock().unwrap_or_else(|p| p.into_inner()).due = true;
            self.0.wake.notify_one();
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

    /// Waits up to 5 s for `done`.
    fn within_5s(what: &str, done: impl Fn() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !done() {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn gathered_lines_are_written_by_the_thread_on_its_timer_and_at_the_end() {
        let sink = Sink::default();
        let (lines, flusher) = buffered(Box::new(sink.clone()));
        let written = || sink.0.lock().expect("lock").clone();
        (&lines).write_all(b"one\n").expect("write");
        assert!(written().is_empty(), "gathered, not written at once");
        within_5s("the thread writes them", || !written().is_empty());
        assert_eq!(written(), b"one\n");
        (&lines).write_all(b"last\n").expect("write");
        drop(flusher);
        assert_eq!(written(), b"one\nlast\n");
    }

    #[test]
    fn enough_gathered_wakes_the_thread_before_its_time() {
        let sink = Sink::default();
        let (lines, flusher) = buffered_every(Box::new(sink.clone()), Duration::from_secs(3600));
        let written = || sink.0.lock().expect("lock").len();
        (&lines).write_all(b"one\n").expect("write");
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            written(),
            0,
            "under WRITE_FROM the thread waits for its timer"
        );
        let line = [b'x'; 1000];
        for _ in 0..WRITE_FROM / 1000 + 10 {
            (&lines).write_all(&line).expect("write");
        }
        within_5s("woken, the thread writes them", || written() > WRITE_FROM);
        drop(flusher);
        assert_eq!(written(), 4 + (WRITE_FROM / 1000 + 10) * 1000);
    }

    /// A writer thread slower than the lines: past `BUFFER_MAX` the thread that logs writes
    /// them itself, so what waits stays bounded; every line is written once, in order.
    #[test]
    fn a_slow_output_bounds_what_waits_and_keeps_the_order() {
        #[derive(Clone, Default)]
        struct Slow(Sink);
        impl std::io::Write for Slow {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                std::thread::sleep(Duration::from_millis(20));
                self.0.write(buf)
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let slow = Slow::default();
        let (lines, flusher) = buffered(Box::new(slow.clone()));
        let written = || slow.0 .0.lock().expect("lock").len();
        let count = 3 * BUFFER_MAX / 16;
        for i in 0..count {
            (&lines)
                .write_all(format!("{i:015}\n").as_bytes())
                .expect("write");
            // Waiting: at most what gathers, and what the thread has taken to write.
            assert!(written() + 2 * BUFFER_MAX >= (i + 1) * 16, "line {i}");
        }
        drop(flusher);
        let all = slow.0 .0.lock().expect("lock").clone();
        assert_eq!(all.len(), count * 16);
        for (i, line) in all.chunks(16).enumerate() {
            assert_eq!(line, format!("{i:015}\n").as_bytes());
        }
    }

    /// What the events `log` makes read as, formatted by `Lines`.
    fn traced(log: impl FnOnce()) -> String {
        let sink = Sink::default();
        let writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(Lines)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let text = sink.0.lock().expect("lock").clone();
        String::from_utf8(text).expect("utf-8")
    }

    #[test]
    fn lines_have_time_level_target_message_and_fields() {
        let text = traced(|| {
            tracing::info!(target: "sigil::access", site = "a.localhost", method = %"GET", status = 200u64, micros = 12u64);
            tracing::warn!(error = %"disk full", lines = 3, "request logs dropped");
            tracing::info!(path = "/a \"b\"\\c\u{7f}é", empty = "", n = u64::MAX, "");
        });
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

    /// The access line written directly reads as the same line through tracing and `Lines`
    /// would (after the time), for text that needs escaping too.
    #[test]
    fn access_lines_read_as_tracing_writes_them() {
        for (site, path) in [
            ("a.localhost", "/1k.bin"),
            ("-", "/a \"b\"\\c\u{7f}é"),
            ("b.localhost", ""),
        ] {
            let traced = traced(|| {
                tracing::info!(
                    target: "sigil::access",
                    site,
                    method = %"PROPFIND",
                    path,
                    status = 404u16,
                    bytes = 12_345u64,
                    micros = 1_000_007u64,
                );
            });
            let started = SystemTime::now();
            let line = Access {
                site,
                method: "PROPFIND",
                path,
                status: 404,
                bytes: 12_345,
                started,
            };
            let mut direct = String::new();
            write_access(
                &mut direct,
                started + Duration::from_micros(7),
                1_000_007,
                &line,
            )
            .expect("written");
            let after_time = |l: &str| l.split_once(' ').expect("time").1.to_owned();
            assert_eq!(after_time(&direct), after_time(&traced), "{direct}");
            assert!(direct.ends_with(" micros=1000007\n"), "{direct}");
            // The time is the one given: its microseconds zero-padded to six digits.
            let (time, _) = direct.split_once(' ').expect("time");
            let micros = (started + Duration::from_micros(7))
                .duration_since(UNIX_EPOCH)
                .expect("after 1970")
                .subsec_micros();
            assert!(time.ends_with(&format!(".{micros:06}Z")), "{time}");
            assert_eq!(time.len(), 27, "{time}");
        }
    }
}
