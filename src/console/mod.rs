//! The Console: static files embedded in the binary and served at `/console/` on the API
//! listener (and at `serverless.{domain}` through the edge). It is a client of the public
//! v1 API, signed in with a session ([`crate::control::sessions`]); nothing here reads the
//! store. Plain JavaScript modules, no build step.

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use crate::Body;

/// Every file: its name under `/console/`, content type and bytes.
const FILES: &[(&str, &str, &[u8])] = &[
    ("", "text/html; charset=utf-8", include_bytes!("index.html")),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("app.js"),
    ),
    (
        "api.js",
        "text/javascript; charset=utf-8",
        include_bytes!("api.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_bytes!("app.css"),
    ),
];

/// No inline script or style, nothing from another origin, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The answer to `method` on `path` (which starts with `/console`).
pub fn serve(method: &Method, path: &str) -> Response<Body> {
    if path == "/console" {
        let mut resp = plain(StatusCode::PERMANENT_REDIRECT, "");
        resp.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/console/"));
        return resp;
    }
    let name = path.strip_prefix("/console/").unwrap_or("");
    let Some((_, ctype, bytes)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return plain(StatusCode::NOT_FOUND, "Not found\n");
    };
    if method != Method::GET && method != Method::HEAD {
        let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed\n");
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    let body = if method == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from_static(bytes)
    };
    let mut resp = Response::new(Body::new(body));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    resp.headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
    secured(resp)
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Body::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secured(resp)
}

/// The headers every Console response carries.
fn secured(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Files change with the binary; no-cache revalidates cheaply enough for a Console.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_come_with_their_type_and_the_policy() {
        for (path, status, ctype) in [
            ("/console/", 200, Some("text/html; charset=utf-8")),
            (
                "/console/app.js",
                200,
                Some("text/javascript; charset=utf-8"),
            ),
            ("/console/app.css", 200, Some("text/css; charset=utf-8")),
            ("/console/nope.js", 404, Some("text/plain; charset=utf-8")),
            (
                "/console/../Cargo.toml",
                404,
                Some("text/plain; charset=utf-8"),
            ),
            ("/console", 308, Some("text/plain; charset=utf-8")),
        ] {
            let resp = serve(&Method::GET, path);
            assert_eq!(resp.status().as_u16(), status, "{path}");
            let h = resp.headers();
            assert_eq!(
                h.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()),
                ctype,
                "{path}"
            );
            let csp = h[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
            assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
        }
        let post = serve(&Method::POST, "/console/app.js");
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_nothing_from_elsewhere() {
        for (name, _, bytes) in FILES {
            // The only absolute URL is the SVG namespace, a name that is never fetched.
            let text = String::from_utf8_lossy(bytes).replace("'http://www.w3.org/2000/svg'", "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "{name}"
            );
            assert!(
                !text.contains("localStorage") && !text.contains("sessionStorage"),
                "{name}"
            );
            if name.is_empty() {
                assert!(
                    !text.contains("<script>") && !text.contains("style="),
                    "inline"
                );
                assert!(!text.contains("<style"), "inline style");
            }
        }
    }
}
