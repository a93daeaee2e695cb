//! The edge's answers. An asset's own — 200, 206 and 304 — lists its header fields in one
//! place ([`AssetReply::fields`]), from which they go into a `HeaderMap` for hyper and HTTP/2
//! or straight into the HTTP/1.1 fast path's output: building a `HeaderMap` per response and
//! reading it back was a tenth of the user-space CPU of a 1 KiB response (README,
//! "Performance"). Every other answer is a `Response`.

use std::sync::Arc;

use ::http::{header, HeaderMap, HeaderName, HeaderValue, Response, StatusCode};

use super::http::encoding::Coding;
use super::representation;
use super::routes::EdgeAsset;
use crate::manifest::Visibility;
use crate::Body;

/// What the edge answers a request with.
pub enum Reply {
    /// An asset's representation (or a range of it), or a 304 for it.
    Asset(AssetReply),
    /// Anything else: errors, preflights, the API, Functions.
    Response(Response<Body>),
}

/// An asset's 200, 206 or 304, with what its header fields are made of.
pub struct AssetReply {
    pub(super) status: StatusCode,
    pub(super) asset: Arc<EdgeAsset>,
    pub(super) coding: Coding,
    /// As the Site serves it (never earlier than its Deployment).
    pub(super) last_modified: HeaderValue,
    pub(super) cache_control: HeaderValue,
    /// A 206's `Content-Range`.
    pub(super) content_range: Option<HeaderValue>,
    /// `Content-Length` of a 200 or 206 (a `HEAD`'s too, whose body is empty).
    pub(super) len: u64,
    pub(super) body: Body,
}

/// A header field's value as [`AssetReply::fields`] gives it.
pub enum Value<'a> {
    /// A value as it is.
    Header(&'a HeaderValue),
    /// A length, written in decimal.
    Length(u64),
}

impl AssetReply {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Calls `f` with each header field, in order (RFC 9110 §15.4.5: a 304 carries the
    /// validators and the `Cache-Control` the 200 would have).
    pub fn fields(&self, mut f: impl FnMut(&HeaderName, Value<'_>)) {
        let rep = representation(&self.asset, self.coding);
        f(&header::ETAG, Value::Header(&rep.etag));
        f(&header::LAST_MODIFIED, Value::Header(&self.last_modified));
        if !self.asset.encoded.is_empty() {
            f(&header::VARY, Value::Header(&ACCEPT_ENCODING));
        }
        f(&header::CACHE_CONTROL, Value::Header(&self.cache_control));
        if self.status == StatusCode::NOT_MODIFIED {
            return;
        }
        f(
            &header::CONTENT_TYPE,
            Value::Header(&self.asset.content_type),
        );
        f(&header::ACCEPT_RANGES, Value::Header(&BYTES));
        if self.asset.visibility == Visibility::Public {
            f(&header::ACCESS_CONTROL_ALLOW_ORIGIN, Value::Header(&ANY));
        }
        if self.coding != Coding::Identity {
            f(
                &header::CONTENT_ENCODING,
                Value::Header(&HeaderValue::from_static(self.coding.as_str())),
            );
        }
        if let Some(range) = &self.content_range {
            f(&header::CONTENT_RANGE, Value::Header(range));
        }
        f(&header::CONTENT_LENGTH, Value::Length(self.len));
    }

    /// Its body: the bytes served, none for a `HEAD` or a 304.
    pub fn into_body(self) -> Body {
        self.body
    }

    fn into_response(self) -> Response<Body> {
        let mut headers = HeaderMap::with_capacity(12);
        self.fields(|name, value| {
            let value = match value {
                Value::Header(v) => v.clone(),
                Value::Length(n) => HeaderValue::from(n),
            };
            headers.insert(name.clone(), value);
        });
        let mut resp = Response::new(self.body);
        *resp.status_mut() = self.status;
        *resp.headers_mut() = headers;
        resp
    }
}

const ACCEPT_ENCODING: HeaderValue = HeaderValue::from_static("Accept-Encoding");
const BYTES: HeaderValue = HeaderValue::from_static("bytes");
const ANY: HeaderValue = HeaderValue::from_static("*");

impl Reply {
    /// Its status.
    pub fn status(&self) -> StatusCode {
        match self {
            Reply::Asset(a) => a.status,
            Reply::Response(r) => r.status(),
        }
    }

    /// The body's length when it is known.
    pub(super) fn body_len(&self) -> Option<u64> {
        let body = match self {
            Reply::Asset(a) => &a.body,
            Reply::Response(r) => r.body(),
        };
        hyper::body::Body::size_hint(body).exact()
    }

    /// As a `Response`.
    pub fn into_response(self) -> Response<Body> {
        match self {
            Reply::Asset(a) => a.into_response(),
            Reply::Response(r) => r,
        }
    }
}

impl From<Response<Body>> for Reply {
    fn from(resp: Response<Body>) -> Reply {
        Reply::Response(resp)
    }
}
