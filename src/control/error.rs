//! Twilio JSON errors: `{"code", "message", "more_info", "status"}` (CONTRACT.md §7).
//!
//! Codes: 20001 bad or missing parameter, 20003 authentication, 20004 method not allowed,
//! 20404 not found, 20500 internal error — Twilio's own numbers. Twilio's serverless 408, 409,
//! 413 and 414 bodies carry no known code; sigil answers [GUESS] 20408, 20409, 20413 and
//! 20414 so that every error
//! is the same shape (the toolkit and SDKs read `code`, falling back to the status).

use http::{header, HeaderValue, Response, StatusCode};

use crate::store::StoreError;
use crate::Body;

/// An API error, turned into a response in exactly one place ([`ApiError::into_response`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Twilio error code.
    pub code: u32,
    /// Human-readable message.
    pub message: String,
    /// For 405: the methods the route has.
    pub allow: Option<&'static str>,
    /// A record the operation read changed before its write (another request, possibly on
    /// another replica, got there first): the operation may read again and retry.
    pub stale: bool,
}

impl ApiError {
    fn new(status: StatusCode, code: u32, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
            stale: false,
        }
    }

    /// 404 / 20404 for `path` (the request path without `/v1`, as Twilio words it).
    pub fn not_found(path: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            20404,
            format!("The requested resource {path} was not found"),
        )
    }

    /// 400 / 20001.
    pub fn bad_param(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, 20001, message)
    }

    /// 400 / 20001 for a missing required parameter.
    pub fn missing(name: &str) -> ApiError {
        ApiError::bad_param(format!(
            "Missing required parameter {name} in the post body"
        ))
    }

    /// 401 / 20003.
    pub fn unauthorized(message: &str) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, 20003, message)
    }

    /// 403 / 20403: authenticated, but this request may not do this.
    pub fn forbidden(message: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, 20403, message)
    }

    /// 405 / 20004 with the route's methods.
    pub fn method_not_allowed(method: &http::Method, allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                20004,
                format!("Method {method} not allowed; this resource allows {allow}"),
            )
        }
    }

    /// 409 / 20409 [GUESS].
    pub fn conflict(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, 20409, message)
    }

    /// 408 / 20408 [GUESS]: the request body did not arrive within `--body-read-timeout`.
    pub fn body_timeout(e: impl std::fmt::Display) -> ApiError {
        ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            20408,
            format!("Timed out: {e}"),
        )
    }

    /// 414 / 20414 [GUESS]: the request target is longer than `--max-uri-bytes`.
    /// 414.
    pub fn uri_too_long(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            20414,
            format!("The request URI is longer than {limit} bytes"),
        )
    }

    /// 413 / 20413 [GUESS].
    pub fn too_large(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, 20413, message)
    }

    /// 415 / 20001: a body in a format the route does not take.
    pub fn unsupported_media(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, 20001, message)
    }

    /// 500 / 20500. The detail goes to the log, never to the client.
    pub fn internal(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "internal error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            20500,
            "Internal server error",
        )
    }

    /// 503 / 20503: storage full or unavailable; nothing was written.
    pub fn unavailable(detail: impl std::fmt::Display) -> ApiError {
        tracing::error!(%detail, "storage unavailable");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            20503,
            "Storage is unavailable; nothing was written. Try again later",
        )
    }

    /// The JSON response.
    pub fn into_response(self) -> Response<Body> {
        let mut resp = crate::wire::error_response(self.status, self.code, &self.message);
        let h = resp.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"Twilio API\""),
            );
        }
        if let Some(allow) = self.allow {
            h.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::Conflict(_) => {
                ApiError::conflict("A resource with these values already exists")
            }
            // Retried by the operation; what is left after the last attempt is a 409.
            StoreError::Stale(_) => ApiError {
                stale: true,
                ..ApiError::conflict(
                    "The resource was changed by another request at the same time; try again",
                )
            },
            // A full disk is the same answer whether the blob or the metadata hit it.
            StoreError::Full(why) | StoreError::Unavailable(why) => ApiError::unavailable(why),
            other => ApiError::internal(other),
        }
    }
}
