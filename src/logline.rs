//! How sigil's own log lines are written (stderr): `TIME LEVEL TARGET: message field=value…`,
//! the shape of tracing-subscriber's default, formatted for less. Every edge request writes an
//! access-log line, and the default formatter's styling pass, `Debug` visiting of every field
//! and a calendar computation per line cost about 10% of a small request (README,
//! "Performance"); here the date is formatted once a second per thread, integers and text are
//! written directly, and only text fields are quoted (as the default does).

use std::cell::RefCell;
use std::fmt;

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
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        self.result = if field.name() == "message" {
            write!(self.writer, " {value}")
        } else {
            write!(self.writer, " {}={value}", field.name())
        };
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, format_args!("{value}"));
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
        });
        let text = String::from_utf8(sink.0.lock().expect("lock").clone()).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
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
    }
}
