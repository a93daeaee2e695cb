//! The API through an edge: requests for `serverless.{domain}` and
//! `serverless-upload.{domain}` go to the control plane at `--control-url`. The request body
//! is streamed (a 25 MiB upload is never held whole); hop-by-hop headers are dropped and
//! `X-Forwarded-For/Proto/Host` set; the control plane's answer is streamed back the same
//! way. An unreachable control plane is a Twilio JSON 502, a slow one a 504. After a write that changed what edges
//! serve, the answer waits (bounded) until this edge has applied the change, so a client
//! that deployed through it sees the new Build here as soon as it has its 201.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};

use super::feed::Follower;
use super::{ApiBody, ApiHandler, Conn};
use crate::Body;

/// Connecting to the control plane.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// From the request's end to the answer's head, and between reads of either body.
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Headers that belong to one connection, not to the request (RFC 9110 §7.6.1), and
/// `Expect`, which this edge has answered itself (hyper sends the 100 Continue when the body
/// is read).
const HOP_BY_HOP: [HeaderName; 9] = [
    header::EXPECT,
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A proxy to one control plane.
pub struct Proxy {
    client: reqwest::Client,
    /// `http(s)://host:port`, no trailing slash.
    base: String,
    /// The feed this edge follows, waited on after changes.
    follower: Option<Arc<Follower>>,
    /// Peers whose X-Forwarded-* are extended rather than replaced.
    trusted_proxies: Vec<ipnet::IpNet>,
}

/// Why the proxy could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("--control-url: {0}")]
pub struct ProxyError(String);

impl Proxy {
    /// A proxy to `base` (`http://host:port` or `https://…`).
    pub fn new(
        base: &str,
        follower: Option<Arc<Follower>>,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> Result<Proxy, ProxyError> {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| ProxyError(e.to_string()))?;
        Ok(Proxy {
            client,
            base: base.trim_end_matches('/').to_owned(),
            follower,
            trusted_proxies,
        })
    }

    async fn forward(&self, req: Request<ApiBody>, conn: Conn) -> Response<Body> {
        let (parts, body) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let url = format!("{}{target}", self.base);
        let mut headers = end_to_end(&parts.headers);
        let trusted = self
            .trusted_proxies
            .iter()
            .any(|n| n.contains(&conn.peer.ip()));
        forwarded(&mut headers, &parts.headers, conn, trusted);
        if let Some(host) = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .or_else(|| {
                parts
                    .headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_owned)
            })
        {
            if !headers.contains_key("x-forwarded-host") {
                if let Ok(v) = HeaderValue::from_str(&host) {
                    headers.insert("x-forwarded-host", v);
                }
            }
        }
        let mut request = self.client.request(parts.method, &url).headers(headers);
        // A request without a body (most GETs) is sent without one, not as an empty chunked
        // stream.
        if !hyper::body::Body::is_end_stream(&body) {
            request = request.body(reqwest::Body::wrap_stream(
                http_body_util::BodyDataStream::new(body),
            ));
        }
        let sent = request.send().await;
        let answer = match sent {
            Ok(answer) => answer,
            Err(e) => return unreachable(&e),
        };
        let status = answer.status();
        let mut out = Response::new(Body::default());
        *out.status_mut() = status;
        *out.headers_mut() = end_to_end(answer.headers());
        let position = answer
            .headers()
            .get(crate::wire::FEED_POSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<i64>().ok());
        if let (Some(position), Some(follower)) = (position, &self.follower) {
            if !follower
                .applied_up_to(position, crate::wire::FEED_WAIT)
                .await
            {
                tracing::warn!(
                    position,
                    "this edge did not apply a change in time; it goes on trying"
                );
            }
        }
        // Streamed on as it arrives (each read within READ_TIMEOUT).
        *out.body_mut() = Body::stream(reqwest::Body::from(answer));
        out
    }
}

impl ApiHandler for Proxy {
    fn handle(
        &self,
        req: Request<ApiBody>,
        conn: Conn,
    ) -> Pin<Box<dyn Future<Output = Response<Body>> + Send + '_>> {
        Box::pin(self.forward(req, conn))
    }
}

/// The headers of `from` that are end to end: without the hop-by-hop ones and those the
/// `Connection` header names.
fn end_to_end(from: &HeaderMap) -> HeaderMap {
    let named: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    let mut out = HeaderMap::with_capacity(from.len());
    for (name, value) in from {
        if HOP_BY_HOP.contains(name)
            || name == header::HOST
            || named.iter().any(|n| n == name.as_str())
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// Sets `X-Forwarded-For` and `X-Forwarded-Proto`: a trusted peer's values are extended (the
/// client it speaks for stays first), anyone else's replaced by what this edge saw.
fn forwarded(out: &mut HeaderMap, incoming: &HeaderMap, conn: Conn, trusted: bool) {
    let peer = conn.peer.ip().to_string();
    let chain = incoming
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .filter(|_| trusted)
        .map_or_else(|| peer.clone(), |prior| format!("{prior}, {peer}"));
    out.remove("x-forwarded-for");
    out.remove("x-forwarded-proto");
    if !trusted {
        out.remove("x-forwarded-host");
    }
    if let Ok(v) = HeaderValue::from_str(&chain) {
        out.insert("x-forwarded-for", v);
    }
    let proto = incoming
        .get("x-forwarded-proto")
        .filter(|_| trusted)
        .cloned()
        .unwrap_or(HeaderValue::from_static(conn.scheme));
    out.insert("x-forwarded-proto", proto);
}

/// Twilio's JSON error for a control plane that cannot be reached (502) or did not answer in
/// time (504).
fn unreachable(e: &reqwest::Error) -> Response<Body> {
    let (why, timeout) = (e.to_string(), e.is_timeout());
    let (status, message) = if timeout {
        (
            StatusCode::GATEWAY_TIMEOUT,
            "The control plane did not answer in time",
        )
    } else {
        (
            StatusCode::BAD_GATEWAY,
            "The control plane cannot be reached",
        )
    };
    tracing::warn!(error = %why, status = status.as_u16(), "API request not proxied");
    // Twilio's 20503, Service Unavailable.
    crate::wire::error_response(status, 20503, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_dropped() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert(
            header::HOST,
            HeaderValue::from_static("serverless.localhost"),
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        h.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("5"));
        let out = end_to_end(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["authorization", "content-length"]);
    }

    #[test]
    fn forwarded_headers_are_the_edges_unless_the_peer_is_trusted() {
        let conn = Conn {
            peer: "10.0.0.9:4000".parse().expect("addr"),
            scheme: "https",
        };
        let mut incoming = HeaderMap::new();
        incoming.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        incoming.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        let mut out = incoming.clone();
        forwarded(&mut out, &incoming, conn, false);
        assert_eq!(out["x-forwarded-for"], "10.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "https");
        let mut out = incoming.clone();
        forwarded(&mut out, &incoming, conn, true);
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 10.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "http");
    }
}
