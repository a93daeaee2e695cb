//! A request as a Function's `event`: its query and body parameters (the body's win), and
//! `event.request` with the headers and cookies, as Twilio's runtime builds it
//! (`@twilio/runtime-handler`'s `constructEvent`; RUNTIME.md §1.3, §2.1).

use http::HeaderMap;
use serde_json::{Map, Value};

/// Headers never passed to a Function: hop-by-hop and proxy headers, and `Host` (Twilio's
/// list; the edge sets `context.DOMAIN_NAME` instead).
const DROPPED: &[&str] = &[
    "connection",
    "expect",
    "host",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "referer",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
    "x-real-ip",
];
/// Header prefixes never passed on (proxies' and Twilio's own).
const DROPPED_PREFIXES: &[&str] = &[
    "x-forwarded-",
    "x-accel-",
    "i-twilio-",
    "i-t-",
    "ot-",
    "x-amz",
];

/// Why a body cannot become an `event`.
#[derive(Debug, PartialEq, Eq)]
pub enum EventError {
    /// A JSON body that does not parse, or is not an object.
    BadJson,
    /// A form body that is not UTF-8 after percent-decoding.
    BadForm,
}

/// Adds `key = value` to `params`, making repeated keys an array (as Node's `querystring`).
fn add(params: &mut Map<String, Value>, key: String, value: String) {
    match params.get_mut(&key) {
        Some(Value::Array(values)) => values.push(Value::String(value)),
        Some(first) => {
            let first = first.take();
            params.insert(key, Value::Array(vec![first, Value::String(value)]));
        }
        None => {
            params.insert(key, Value::String(value));
        }
    }
}

fn form(bytes: &[u8]) -> Result<Map<String, Value>, EventError> {
    let mut params = Map::new();
    for (k, v) in crate::wire::decode_pairs(bytes).map_err(|_| EventError::BadForm)? {
        add(&mut params, k, v);
    }
    Ok(params)
}

/// The header map a Function sees: lower-case names, repeated headers as arrays.
fn headers(map: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for (name, value) in map {
        let name = name.as_str();
        if DROPPED.contains(&name) || DROPPED_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        add(
            &mut out,
            name.to_owned(),
            String::from_utf8_lossy(value.as_bytes()).into_owned(),
        );
    }
    out
}

/// `Cookie` pairs, values percent-decoded (as `cookie-parser`); the first of a repeated name.
fn cookies(map: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for value in map.get_all(http::header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let Some((name, v)) = pair.split_once('=') else {
                continue;
            };
            let name = name.trim();
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            if name.is_empty() || out.contains_key(name) {
                continue;
            }
            let decoded = percent_encoding::percent_decode_str(v)
                .decode_utf8()
                .map_or_else(|_| v.to_owned(), |d| d.into_owned());
            out.insert(name.to_owned(), Value::String(decoded));
        }
    }
    out
}

/// The `event` of a request: `{request: {headers, cookies}, ...query, ...body}` — a body
/// parameter replaces a query parameter of the same name, and a parameter named `request`
/// replaces `event.request` (as Twilio's runtime does). Form and JSON bodies are read; other
/// bodies are not parameters.
pub fn build(
    query: Option<&str>,
    map: &HeaderMap,
    body: &[u8],
) -> Result<Map<String, Value>, EventError> {
    let mut event = Map::new();
    event.insert(
        "request".into(),
        serde_json::json!({"headers": headers(map), "cookies": cookies(map)}),
    );
    if let Some(q) = query {
        event.extend(form(q.as_bytes())?);
    }
    let essence = map
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase());
    match essence.as_deref() {
        Some("application/x-www-form-urlencoded") => event.extend(form(body)?),
        Some(t) if (t == "application/json" || t.ends_with("+json")) && !body.is_empty() => {
            match serde_json::from_slice(body) {
                Ok(Value::Object(fields)) => event.extend(fields),
                _ => return Err(EventError::BadJson),
            }
        }
        _ => {}
    }
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    #[test]
    fn parameters_from_query_and_body() {
        let form = [("content-type", "application/x-www-form-urlencoded")];
        let json = [("content-type", "application/json; charset=utf-8")];
        type Case<'a> = (Option<&'a str>, &'a [(&'a str, &'a str)], &'a str, Value);
        let cases: &[Case] = &[
            (Some("a=1&b=2"), &[], "", json!({"a": "1", "b": "2"})),
            // The body wins over the query.
            (
                Some("a=q&b=q"),
                &form,
                "a=body",
                json!({"a": "body", "b": "q"}),
            ),
            // Repeated keys are arrays; percent and plus decoding.
            (
                None,
                &form,
                "Body=hi&Body=there&x=a%20b+c",
                json!({"Body": ["hi", "there"], "x": "a b c"}),
            ),
            (
                Some("a=1"),
                &json,
                r#"{"a": {"n": 2}, "b": [1]}"#,
                json!({"a": {"n": 2}, "b": [1]}),
            ),
            // Other bodies are not parameters.
            (
                Some("a=1"),
                &[("content-type", "text/plain")],
                "a=2",
                json!({"a": "1"}),
            ),
            (None, &json, "", json!({})),
        ];
        for (query, headers, body, want) in cases {
            let mut got = build(*query, &map(headers), body.as_bytes()).unwrap();
            got.remove("request");
            assert_eq!(Value::Object(got), *want, "{query:?} {body:?}");
        }
    }

    #[test]
    fn a_parameter_named_request_replaces_it() {
        let got = build(Some("request=evil"), &HeaderMap::new(), b"").unwrap();
        assert_eq!(got["request"], json!("evil"));
    }

    #[test]
    fn bad_bodies_are_refused() {
        let json = map(&[("content-type", "application/json")]);
        assert_eq!(
            build(None, &json, b"{nope").unwrap_err(),
            EventError::BadJson
        );
        assert_eq!(
            build(None, &json, b"[1,2]").unwrap_err(),
            EventError::BadJson
        );
        let form = map(&[("content-type", "application/x-www-form-urlencoded")]);
        assert_eq!(
            build(None, &form, b"a=%FF").unwrap_err(),
            EventError::BadForm
        );
    }

    #[test]
    fn headers_and_cookies() {
        let m = map(&[
            ("host", "x.example"),
            ("x-custom", "a"),
            ("x-custom", "b"),
            ("accept", "*/*"),
            ("x-forwarded-for", "1.2.3.4"),
            ("x-real-ip", "1.2.3.4"),
            ("connection", "keep-alive"),
            ("i-twilio-idempotency-token", "t"),
            ("x-twilio-signature", "sig"),
            ("cookie", "a=1; b=hello%20there; a=2"),
            ("cookie", "c=\"q\""),
        ]);
        let got = build(None, &m, b"").unwrap();
        let request = &got["request"];
        assert_eq!(
            request["headers"],
            json!({
                "x-custom": ["a", "b"],
                "accept": "*/*",
                "x-twilio-signature": "sig",
                "cookie": ["a=1; b=hello%20there; a=2", "c=\"q\""],
            })
        );
        assert_eq!(
            request["cookies"],
            json!({"a": "1", "b": "hello there", "c": "q"})
        );
    }
}
