//! Counters for Prometheus (`GET /metrics` on the API listener), kept as atomics: no lock and
//! no allocation on the request path.

use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Status codes 100..=599, one counter each.
const STATUSES: usize = 500;

/// The edge's counters.
pub struct Metrics {
    requests: Vec<AtomicU64>,
    bytes_sent: AtomicU64,
    sendfile_bytes: AtomicU64,
    signature_failures: AtomicU64,
    active_connections: AtomicI64,
    connections_total: AtomicU64,
    kernel_tls_connections: AtomicU64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: (0..STATUSES).map(|_| AtomicU64::new(0)).collect(),
            bytes_sent: AtomicU64::new(0),
            sendfile_bytes: AtomicU64::new(0),
            signature_failures: AtomicU64::new(0),
            active_connections: AtomicI64::new(0),
            connections_total: AtomicU64::new(0),
            kernel_tls_connections: AtomicU64::new(0),
        }
    }
}

/// Decrements the active-connection gauge when dropped.
pub struct ConnectionGuard<'a>(&'a Metrics);

impl Drop for ConnectionGuard<'_> {
    fn drop(&mut self) {
        self.0.active_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Metrics {
    /// Counts a response.
    pub fn request(&self, status: u16, body_bytes: u64) {
        if let Some(c) = usize::from(status)
            .checked_sub(100)
            .and_then(|i| self.requests.get(i))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.bytes_sent.fetch_add(body_bytes, Ordering::Relaxed);
    }

    /// Counts body bytes the kernel sent from a blob's file (`sendfile`), not copied.
    pub fn sent_from_file(&self, bytes: u64) {
        self.sendfile_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a refused signature.
    pub fn signature_failure(&self) {
        self.signature_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTPS connection whose encryption the kernel took over (`--ktls`).
    pub fn kernel_tls(&self) {
        self.kernel_tls_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection for as long as the guard lives.
    pub fn connection(&self) -> ConnectionGuard<'_> {
        self.active_connections.fetch_add(1, Ordering::Relaxed);
        self.connections_total.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self)
    }

    /// The Prometheus text exposition.
    /// `logs`: request-log lines (dropped, left out over the rate).
    pub fn render(&self, cache: (u64, u64, u64), sites: usize, logs: (u64, u64)) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP sigil_requests_total Edge responses by status code."
        );
        let _ = writeln!(out, "# TYPE sigil_requests_total counter");
        for (i, c) in self.requests.iter().enumerate() {
            let n = c.load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(out, "sigil_requests_total{{status=\"{}\"}} {n}", i + 100);
            }
        }
        let counters = [
            (
                "sigil_bytes_sent_total",
                "Body bytes sent by the edge.",
                self.bytes_sent.load(Ordering::Relaxed),
            ),
            (
                "sigil_sendfile_bytes_total",
                "Body bytes of those sent by the kernel from the blob's file (plain HTTP/1.1, sendfile).",
                self.sendfile_bytes.load(Ordering::Relaxed),
            ),
            (
                "sigil_signature_failures_total",
                "Protected requests refused for a missing or bad X-Twilio-Signature.",
                self.signature_failures.load(Ordering::Relaxed),
            ),
            ("sigil_cache_hits_total", "Blob cache hits.", cache.0),
            ("sigil_cache_misses_total", "Blob cache misses.", cache.1),
            (
                "sigil_cache_downloads_total",
                "Blobs downloaded from the bucket (one per digest at a time).",
                cache.2,
            ),
            (
                "sigil_connections_total",
                "Edge connections accepted.",
                self.connections_total.load(Ordering::Relaxed),
            ),
            (
                "sigil_kernel_tls_connections_total",
                "HTTPS connections whose encryption the kernel took over after the handshake (--ktls).",
                self.kernel_tls_connections.load(Ordering::Relaxed),
            ),
            (
                "sigil_request_logs_dropped_total",
                "Request-log lines dropped because the writer fell behind or the store refused them.",
                logs.0,
            ),
            (
                "sigil_request_logs_over_rate_total",
                "Request-log lines left out for being over an Environment's --request-logs-rate.",
                logs.1,
            ),
        ];
        write_families(&mut out, "counter", &counters);
        let gauges = [
            (
                "sigil_active_connections",
                "Edge connections open now.",
                self.active_connections.load(Ordering::Relaxed),
            ),
            (
                "sigil_environments_served",
                "Environments with a deployed Build.",
                i64::try_from(sites).unwrap_or(i64::MAX),
            ),
        ];
        write_families(&mut out, "gauge", &gauges);
        out
    }
}

/// Writes Prometheus families of one type (`counter` or `gauge`): each one's `# HELP`,
/// `# TYPE` and value.
pub fn write_families<V: std::fmt::Display>(
    out: &mut String,
    kind: &str,
    families: &[(&str, &str, V)],
) {
    for (name, help, v) in families {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters() {
        let m = Metrics::default();
        m.request(200, 10);
        m.request(200, 5);
        m.request(403, 0);
        m.request(42, 0); // out of range: ignored
        m.signature_failure();
        m.sent_from_file(7);
        let g = m.connection();
        let text = m.render((3, 1, 0), 2, (0, 4));
        assert!(text.contains("sigil_requests_total{status=\"200\"} 2"));
        assert!(text.contains("sigil_requests_total{status=\"403\"} 1"));
        assert!(text.contains("sigil_bytes_sent_total 15"));
        assert!(text.contains("sigil_signature_failures_total 1"));
        assert!(text.contains("sigil_sendfile_bytes_total 7"));
        assert!(text.contains("sigil_request_logs_over_rate_total 4"));
        assert!(text.contains("sigil_cache_hits_total 3"));
        assert!(text.contains("sigil_active_connections 1"));
        drop(g);
        assert!(m
            .render((0, 0, 0), 0, (0, 0))
            .contains("sigil_active_connections 0"));
    }
}
