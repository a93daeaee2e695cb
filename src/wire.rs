//! What the control plane and the edge both put on (or read from) the wire, so that neither
//! depends on the other: Twilio's JSON error body, form decoding (the API's parameters and a
//! signed webhook's), and the change-feed position a write answers with.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use percent_encoding::percent_decode;

use crate::Body;

/// Response header with the change feed's position after a write that changed what edges
/// serve (a Deployment, an Environment or Service deleted): an edge that proxied the request
/// waits until it has applied the feed that far before it answers, so its client sees the
/// change on that edge at once. Not part of Twilio's API; clients ignore it.
pub const FEED_POSITION: &str = "sigil-feed-position";

/// How long an answer waits for an edge to apply the change it made.
pub const FEED_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Twilio's JSON error: `{code, message, more_info, status}` with that status.
pub fn error_response(status: StatusCode, code: u32, message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status.as_u16(),
    });
    let mut resp = Response::new(Body::new(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

fn decode(part: &[u8]) -> Result<String, ()> {
    let plus_as_space: Vec<u8> = part
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| ())
}

/// Decodes `a=1&b=2` (`application/x-www-form-urlencoded`) into pairs in arrival order (`+`
/// is a space), strictly: a name or value that is not UTF-8 after percent-decoding is an
/// error naming it, never a silently mangled string.
pub fn decode_pairs(input: &[u8]) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for part in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match part.iter().position(|&b| b == b'=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, &b""[..]),
        };
        let name = decode(name)
            .map_err(|_| "A parameter name is not valid UTF-8 after percent-decoding".to_owned())?;
        let value = decode(value).map_err(|_| {
            format!("Invalid value for parameter {name}: not valid UTF-8 after percent-decoding")
        })?;
        pairs.push((name, value));
    }
    Ok(pairs)
}
