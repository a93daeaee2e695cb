//! The request-log sink the edge writes one line through per request it serves for an
//! Environment (the API's Logs resource reads them).
//!
//! It never blocks a request: lines go into a bounded channel and a background task writes
//! them in batches (one transaction per batch). When the store falls behind or is down,
//! lines are dropped and counted (`sigil_request_logs_dropped_total`) rather than slowing
//! the edge.

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
}

impl LogSink {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Arc<dyn Metadata>) -> Arc<LogSink> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let dropped = Arc::new(AtomicU64::new(0));
        tokio::spawn(write_batches(store, rx, Arc::clone(&dropped)));
        Arc::new(LogSink { tx, dropped })
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
