//! The request-log sink the edge writes one line through per request it serves for an
//! Environment (the API's Logs resource reads them).
//!
//! It never blocks a request: lines go into a bounded channel and a background task writes
//! them in batches (one transaction per batch). When the store falls behind or is down,
//! lines are dropped and counted (`sigil_request_logs_dropped_total`) rather than slowing
//! the edge.
//!
//! Each Environment gets at most `--request-logs-rate` lines a second: a line in the store
//! costs several times what serving a small asset does, and at load-test rates every line
//! would make the database the bottleneck (README, "Performance"). Lines over the rate are
//! counted (`sigil_request_logs_over_rate_total`), and the next line that is written for the
//! Environment says how many were left out ([`Admit::Yes`]). The access log keeps every line.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::sid::Prefix;
use crate::store::{Kind, Metadata, Record, Write};

const CHANNEL_CAPACITY: usize = 65_536;
const MAX_BATCH: usize = 2_000;

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
    rate: Rate,
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

/// Lines per second per Environment.
struct Rate {
    per_second: u32,
    windows: std::sync::Mutex<HashMap<String, Window, foldhash::fast::RandomState>>,
    over: AtomicU64,
}

/// One Environment's current second.
struct Window {
    second: i64,
    admitted: u32,
    skipped: u64,
}

/// Windows kept before the idle ones are forgotten.
const WINDOWS_KEPT: usize = 10_000;

impl Rate {
    fn admit(&self, environment_sid: &str, now: i64) -> Admit {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if !windows.contains_key(environment_sid) {
            if windows.len() >= WINDOWS_KEPT {
                // Environments quiet for a minute start afresh (what they skipped was said
                // or is counted in the metric).
                windows.retain(|_, w| now - w.second < 60);
            }
            windows.insert(
                environment_sid.to_owned(),
                Window {
                    second: now,
                    admitted: 0,
                    skipped: 0,
                },
            );
        }
        let w = windows.get_mut(environment_sid).expect("inserted above");
        if w.second != now {
            w.second = now;
            w.admitted = 0;
        }
        if w.admitted < self.per_second {
            w.admitted += 1;
            Admit::Yes {
                skipped: std::mem::take(&mut w.skipped),
            }
        } else {
            w.skipped += 1;
            self.over.fetch_add(1, Ordering::Relaxed);
            Admit::No
        }
    }
}

impl LogSink {
    /// Starts the writer task on the current runtime; each Environment gets at most
    /// `per_second` lines a second.
    pub fn spawn(store: Arc<dyn Metadata>, per_second: u32) -> Arc<LogSink> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, rx, Arc::clone(&dropped)));
        Arc::new(LogSink {
            tx,
            dropped,
            rate: Rate {
                per_second,
                windows: std::sync::Mutex::default(),
                over: AtomicU64::new(0),
            },
        })
    }

    /// Whether a line of this Environment may be written at `now` (Unix seconds): call it
    /// before making the line.
    pub fn admit(&self, environment_sid: &str, now: i64) -> Admit {
        self.rate.admit(environment_sid, now)
    }

    /// Lines left out for being over an Environment's rate.
    pub fn over_rate(&self) -> u64 {
        self.rate.over.load(Ordering::Relaxed)
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
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut said = std::time::Instant::now();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
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
        // Batch small bursts together instead of one transaction per line.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(per_second: u32) -> Rate {
        Rate {
            per_second,
            windows: std::sync::Mutex::default(),
            over: AtomicU64::new(0),
        }
    }

    #[test]
    fn each_environment_gets_its_rate_and_hears_what_was_left_out() {
        let r = rate(2);
        let yes = |skipped| Admit::Yes { skipped };
        assert_eq!(r.admit("ZEa", 100), yes(0));
        assert_eq!(r.admit("ZEa", 100), yes(0));
        assert_eq!(r.admit("ZEa", 100), Admit::No);
        assert_eq!(r.admit("ZEa", 100), Admit::No);
        // Another Environment has its own.
        assert_eq!(r.admit("ZEb", 100), yes(0));
        // The next second: the first line says two were left out, once.
        assert_eq!(r.admit("ZEa", 101), yes(2));
        assert_eq!(r.admit("ZEa", 101), yes(0));
        assert_eq!(r.admit("ZEa", 101), Admit::No);
        assert_eq!(r.over.load(Ordering::Relaxed), 3);
        assert_eq!(r.admit("ZEa", 105), yes(1));
    }

    #[test]
    fn idle_windows_are_forgotten_when_there_are_many() {
        let r = rate(1);
        for i in 0..WINDOWS_KEPT {
            r.admit(&format!("ZE{i}"), 0);
        }
        r.admit("ZE0", 0); // over the rate: skipped 1
                           // A new Environment a minute later: the idle windows go.
        assert_eq!(r.admit("ZEnew", 61), Admit::Yes { skipped: 0 });
        assert_eq!(r.windows.lock().expect("lock").len(), 1);
        assert_eq!(r.admit("ZE0", 61), Admit::Yes { skipped: 0 });
    }
}
