//! The request-log sink the edge writes one line through per request it serves for an
//! Environment (the API's Logs resource reads them).
//!
//! It never blocks a request: lines go into a bounded channel and a background task writes
//! them in batches (one transaction per batch). When the store falls behind or is down,
//! lines are dropped and counted (`sigil_request_logs_dropped_total`) rather than slowing
//! the edge.
//!
//! Each Environment gets at most `--request-logs-rate` lines a second, counted lock-free in
//! its [`RateWindow`]: a line in the store costs several times what serving a small asset
//! does, and at load-test rates every line would make the database the bottleneck (README,
//! "Performance"). Lines over the rate are counted (`sigil_request_logs_over_rate_total`),
//! and the next line written for the Environment says how many were left out
//! ([`Admit::Yes`]). The access log keeps every line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use crate::sid::Prefix;
use crate::store::{Kind, Metadata, Record, Write};

const CHANNEL_CAPACITY: usize = 65_536;
const MAX_BATCH: usize = 2_000;
/// How long the writer waits after a batch before it takes the next.
const BATCH_EVERY: Duration = Duration::from_millis(250);

/// The stored fields of a Log line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogData {
    /// The Service.
    pub service_sid: String,
    /// The Build that served the request.
    pub build_sid: String,
    /// The Deployment that made that Build live.
    pub deployment_sid: Option<String>,
    /// The Function, when a function path was requested.
    pub function_sid: Option<String>,
    /// The request (`RQ…`).
    pub request_sid: String,
    /// `info`, `warn` or `error` [GUESS: lower case, CONTRACT.md §4.9].
    pub level: String,
    /// The line.
    pub message: String,
}

/// One request-log line, as the edge hands it over.
#[derive(Debug, Clone)]
pub struct LogEntry {
    /// Owner of the Environment.
    pub account_sid: String,
    /// The Environment.
    pub environment_sid: String,
    /// When, Unix seconds.
    pub created: i64,
    /// Everything else.
    pub data: LogData,
}

/// The edge's handle for writing log lines.
pub struct LogSink {
    tx: mpsc::Sender<LogEntry>,
    dropped: Arc<AtomicU64>,
    per_second: u32,
    over: AtomicU64,
    /// Set by [`LogSink::close`]: the writer writes what is queued and ends.
    closing: watch::Sender<bool>,
    writer: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Whether a line may be written now.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Over the Environment's rate this second: leave it out.
    No,
    /// Write it; `skipped` lines of this Environment were left out since the last one.
    Yes {
        /// Lines left out before this one.
        skipped: u64,
    },
}

/// One Environment's count of lines in the current second, kept with what the edge serves
/// for it (lock-free: every request of that Environment touches it, on any worker).
#[derive(Debug, Default)]
pub struct RateWindow {
    /// The second (low 32 bits of Unix time) in the high half, lines admitted in the low.
    state: AtomicU64,
    /// Lines left out since the last one admitted.
    skipped: AtomicU64,
}

impl RateWindow {
    fn admit(&self, now: i64, per_second: u32) -> Admit {
        let second = now as u32; // wraps in 2106: only equality matters
        let mut state = self.state.load(Ordering::Relaxed);
        loop {
            let (at, admitted) = ((state >> 32) as u32, state as u32);
            let next = if at != second {
                // (`^ 1` would do the same: the low half is zero after the shift.)
                (u64::from(second) << 32) | 1
            } else if admitted < per_second {
                state + 1
            } else {
                self.skipped.fetch_add(1, Ordering::Relaxed);
                return Admit::No;
            };
            match self.state.compare_exchange_weak(
                state,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(now_state) => state = now_state,
            }
        }
        // The load spares the common case a read-modify-write; without the first arm the
        // answer is the same (a mutation that deletes it is equivalent).
        let skipped = match self.skipped.load(Ordering::Relaxed) {
            0 => 0,
            _ => self.skipped.swap(0, Ordering::Relaxed),
        };
        Admit::Yes { skipped }
    }
}

/// The line that says how many were left out for being over the rate.
pub fn skipped_note(skipped: u64) -> String {
    format!("{skipped} request lines left out: over --request-logs-rate")
}

impl LogSink {
    /// Starts the writer task on the current runtime; each Environment gets at most
    /// `per_second` lines a second.
    pub fn spawn(store: Arc<dyn Metadata>, per_second: u32) -> Arc<LogSink> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        let (closing, closed) = watch::channel(false);
        let writer = tokio::spawn(write_batches(store, rx, Arc::clone(&dropped), closed));
        Arc::new(LogSink {
            tx,
            dropped,
            per_second,
            over: AtomicU64::new(0),
            closing,
            writer: std::sync::Mutex::new(Some(writer)),
        })
    }

    /// Writes the lines queued so far and stops writing (at a graceful stop, once the
    /// connections are drained): waits at most `within`. Whether they were all written.
    pub async fn close(&self, within: Duration) -> bool {
        self.closing.send_replace(true);
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        match writer {
            Some(writer) => tokio::time::timeout(within, writer).await.is_ok(),
            None => true,
        }
    }

    /// Whether a line of the Environment whose window this is may be written at `now` (Unix
    /// seconds): asked before the line is made.
    pub fn admit(&self, window: &RateWindow, now: i64) -> Admit {
        let admit = window.admit(now, self.per_second);
        if admit == Admit::No {
            self.over.fetch_add(1, Ordering::Relaxed);
        }
        admit
    }

    /// Lines left out for being over an Environment's rate.
    pub fn over_rate(&self) -> u64 {
        self.over.load(Ordering::Relaxed)
    }

    /// Queues a line; never waits. A full queue drops the line (and counts it).
    pub fn record(&self, entry: LogEntry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped: the writer fell behind, or the store refused a batch.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(
    store: Arc<dyn Metadata>,
    mut rx: mpsc::Receiver<LogEntry>,
    dropped: Arc<AtomicU64>,
    mut closing: watch::Receiver<bool>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut said = std::time::Instant::now();
    loop {
        tokio::select! {
            // Lines first: once closing, what is queued is still written, then it ends.
            biased;
            n = rx.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
            _ = closing.wait_for(|c| *c) => return,
        }
        let writes: Vec<Write> = batch
            .drain(..)
            .map(|e| {
                let mut rec = Record::new(
                    Kind::Log,
                    Prefix::Log.generate(),
                    e.account_sid,
                    Some(e.environment_sid),
                    &e.data,
                );
                rec.created = e.created;
                rec.tag = e.data.function_sid.clone();
                // Lines of an Environment deleted meanwhile are dropped, not the batch.
                Write::Append(rec)
            })
            .collect();
        let lines = writes.len() as u64;
        let store2 = Arc::clone(&store);
        // Lines older than the Logs' retention go in the upkeep (control/maintenance.rs).
        let failed = match tokio::task::spawn_blocking(move || store2.commit(writes)).await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        if let Some(e) = failed {
            // Counted, and said once a minute at most: the store may be down for a while.
            if dropped.fetch_add(lines, Ordering::Relaxed) == 0
                || said.elapsed() > Duration::from_secs(60)
            {
                tracing::error!(error = %e, lines, "request logs dropped: the store refused them");
                said = std::time::Instant::now();
            }
        }
        // Batch lines together instead of one transaction per line: under load the store
        // takes at most four commits a second from here (each a durable write). Closing cuts
        // the wait short.
        tokio::select! {
            _ = tokio::time::sleep(BATCH_EVERY) => {}
            _ = closing.wait_for(|c| *c) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_window_keeps_its_rate_and_hears_what_was_left_out() {
        let (a, b) = (RateWindow::default(), RateWindow::default());
        let yes = |skipped| Admit::Yes { skipped };
        assert_eq!(a.admit(100, 2), yes(0));
        assert_eq!(a.admit(100, 2), yes(0));
        assert_eq!(a.admit(100, 2), Admit::No);
        assert_eq!(a.admit(100, 2), Admit::No);
        // Another Environment has its own.
        assert_eq!(b.admit(100, 2), yes(0));
        // The next second: the first line says two were left out, once.
        assert_eq!(a.admit(101, 2), yes(2));
        assert_eq!(a.admit(101, 2), yes(0));
        assert_eq!(a.admit(101, 2), Admit::No);
        assert_eq!(a.admit(105, 2), yes(1));
        // Any later second starts afresh, however far on.
        assert_eq!(a.admit(1_800_000_000, 1), yes(0));
        assert_eq!(a.admit(1_800_000_000, 1), Admit::No);
    }

    /// The sink counts what windows leave out, across Environments.
    #[tokio::test]
    async fn the_sink_counts_lines_left_out() {
        let dir = tempfile::tempdir().expect("dir");
        let store = crate::store::SqliteStore::open(&dir.path().join("m.db")).expect("store");
        let sink = LogSink::spawn(Arc::new(store), 2);
        let (a, b) = (RateWindow::default(), RateWindow::default());
        for _ in 0..5 {
            sink.admit(&a, 10);
        }
        assert_eq!(sink.admit(&b, 10), Admit::Yes { skipped: 0 });
        assert_eq!(sink.over_rate(), 3);
        assert_eq!(sink.admit(&b, 10), Admit::Yes { skipped: 0 });
        assert_eq!(sink.admit(&b, 10), Admit::No);
        assert_eq!(sink.over_rate(), 4);
    }

    /// Workers admitting at once: exactly the rate gets through each second, and every line
    /// left out is said once.
    #[test]
    fn concurrent_admissions_keep_to_the_rate() {
        let w = std::sync::Arc::new(RateWindow::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = std::sync::Arc::clone(&w);
                std::thread::spawn(move || {
                    let (mut yes, mut no) = (0u64, 0u64);
                    for _ in 0..10_000 {
                        match w.admit(7, 100) {
                            Admit::Yes { .. } => yes += 1,
                            Admit::No => no += 1,
                        }
                    }
                    (yes, no)
                })
            })
            .collect();
        let (yes, no) = threads
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .fold((0, 0), |(y, n), (a, b)| (y + a, n + b));
        assert_eq!(yes, 100);
        assert_eq!(no, 39_900);
        assert_eq!(w.admit(8, 100), Admit::Yes { skipped: 39_900 });
    }
}
