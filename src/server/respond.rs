//! What the edge's own HTTP/1.1 and HTTP/2 servers add to a response before sending it.

use std::cell::RefCell;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, StatusCode};

/// Statuses whose responses have no body (and no `Content-Length` is added to them).
pub(super) fn bodiless(status: StatusCode) -> bool {
    status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
}

/// The `Date` header's value, formatted once a second per thread (the second from the coarse
/// clock: at most a tick behind, which a whole-second header does not show but rarely).
pub(super) fn date() -> HeaderValue {
    thread_local! {
        static DATE: RefCell<(u64, HeaderValue)> =
            const { RefCell::new((u64::MAX, HeaderValue::from_static(""))) };
    }
    let second = crate::clock::coarse_unix_seconds();
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            let text =
                httpdate::fmt_http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(second));
            if let Ok(value) = HeaderValue::from_str(&text) {
                *cached = (second, value);
            }
        }
        cached.1.clone()
    })
}
