//! Logs (`NO`): CONTRACT.md §4.9, and the [`LogSink`] through which the edge records one
//! line per request it serves for an Environment.
//!
//! The sink never blocks a request: lines go into a bounded channel and a background task
//! writes them in batches (one transaction per batch). When the store falls behind, lines
//! are dropped and counted rather than slowing the edge. Lines older than 30 days (Twilio's
//! retention) are purged hourly.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{json_response, ApiError, ApiResult, ControlPlane, Ctx, ListFilter};
use crate::clock::{iso, now, parse_iso};
use crate::sid::Prefix;
use crate::store::{Kind, Metadata, Record, Write};

/// How long log lines are kept.
pub const RETENTION_SECS: i64 = 30 * 24 * 3600;
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
    dropped: AtomicU64,
}

impl LogSink {
    /// Starts the writer task on the current runtime.
    pub fn spawn(store: Arc<dyn Metadata>) -> Arc<LogSink> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        tokio::spawn(write_batches(store, rx));
        Arc::new(LogSink {
            tx,
            dropped: AtomicU64::new(0),
        })
    }

    /// Queues a line; never waits. A full queue drops the line (and counts it).
    pub fn record(&self, entry: LogEntry) {
        if self.tx.try_send(entry).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Lines dropped because the writer fell behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(store: Arc<dyn Metadata>, mut rx: mpsc::Receiver<LogEntry>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
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
        let store2 = Arc::clone(&store);
        // Lines older than RETENTION_SECS go in the upkeep (control/maintenance.rs).
        match tokio::task::spawn_blocking(move || store2.commit(writes)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "could not write request logs"),
            Err(e) => tracing::error!(error = %e, "request log writer panicked"),
        }
        // Batch small bursts together instead of one transaction per line.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl ControlPlane {
    fn render_log(&self, rec: &Record, d: &LogData) -> Value {
        let env = rec.parent_sid.as_deref().unwrap_or_default();
        json!({
            "sid": rec.sid,
            "account_sid": rec.account_sid,
            "service_sid": d.service_sid,
            "environment_sid": env,
            "build_sid": d.build_sid,
            "deployment_sid": d.deployment_sid,
            "function_sid": d.function_sid,
            "request_sid": d.request_sid,
            "level": d.level,
            "message": d.message,
            "date_created": iso(rec.created),
            "url": self.url(&format!(
                "/Services/{}/Environments/{env}/Logs/{}",
                d.service_sid, rec.sid
            )),
        })
    }

    pub(super) async fn list_logs(&self, ctx: &Ctx, svc: &str, env: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        let mut filter = ListFilter::default();
        let date = |name: &'static str| -> Result<Option<i64>, ApiError> {
            ctx.query
                .get(name)
                .map(|v| {
                    parse_iso(v).ok_or_else(|| {
                        ApiError::bad_param(format!(
                            "Invalid value for parameter {name}: {v:?} is not an ISO 8601 date-time"
                        ))
                    })
                })
                .transpose()
        };
        let start = date("StartDate")?;
        let end = date("EndDate")?;
        filter.created_from = Some(start.unwrap_or_else(|| now() - 24 * 3600));
        filter.created_to = Some(end.unwrap_or_else(now));
        for (name, given) in [("StartDate", start), ("EndDate", end)] {
            if given.is_some() {
                let raw = ctx.query.get(name).unwrap_or_default().to_owned();
                filter.echo.push((name, raw));
            }
        }
        if let Some(f) = ctx.query.get("FunctionSid") {
            let sid = Prefix::Resource.parse(f).ok_or_else(|| {
                ApiError::bad_param(format!(
                    "Invalid value for parameter FunctionSid: {f:?} is not a Function SID (ZH…)"
                ))
            })?;
            filter.echo.push(("FunctionSid", sid.clone()));
            filter.tag = Some(sid);
        }
        self.list_page(ctx, Kind::Log, Some(env.sid), "logs", filter, |r| {
            Ok(self.render_log(r, &r.decode()?))
        })
        .await
    }

    pub(super) async fn fetch_log(&self, ctx: &Ctx, svc: &str, env: &str, id: &str) -> ApiResult {
        let (_, env, _) = self.environment(ctx, svc, env).await?;
        let rec = self
            .load(ctx, Kind::Log, Prefix::Log, id, Some(&env.sid))
            .await?;
        Ok(json_response(
            StatusCode::OK,
            &self.render_log(&rec, &rec.decode()?),
        ))
    }
}
