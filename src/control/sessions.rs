//! Console sessions. Signing in with an Account SID and auth token, or an API key SID and
//! secret, gives a session cookie (HttpOnly, SameSite=Strict, Secure over HTTPS, 8 hours)
//! that the API then accepts in place of HTTP Basic credentials: the Console is a client of
//! the same v1 endpoints as the helper libraries. A request that changes anything with a
//! session must also carry the session's CSRF token in [`CSRF_HEADER`]; the Console keeps
//! that token in memory only, never in a URL or in storage.
//!
//! A session is a record in the metadata store (so any control-plane replica accepts it),
//! named by the sha256 of the cookie's secret (the store never holds the secret itself) and
//! filed under the credential it was signed in with: deleting that API key ends its sessions.

use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use serde::{Deserialize, Serialize};

use super::{json_response, ApiError, ApiResult, ControlPlane, Params};
use crate::accounts::{ct_eq, sha256_hex};
use crate::sid::Prefix;
use crate::store::{Kind, Record, Write};

/// The session cookie's name.
pub const COOKIE: &str = "sigil_console";
/// The request header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-sigil-csrf";
/// What the Console's requests carry, and a sign-in request must: a header a cross-site
/// form cannot send, so nobody signs a visitor into an account of theirs.
const SIGN_IN_HEADER: &str = "x-requested-with";
/// How long a session lasts.
pub const TTL_SECS: i64 = 8 * 3600;

#[derive(Serialize, Deserialize)]
struct SessionData {
    /// The CSRF token.
    csrf: String,
    /// Unix seconds.
    expires: i64,
}

/// Whether the Console sent the request (it marks every call with a header that a
/// cross-site form cannot send).
pub fn from_console(headers: &HeaderMap) -> bool {
    headers.get(SIGN_IN_HEADER).and_then(|v| v.to_str().ok()) == Some("sigil-console")
}

/// The cookie's secret, if the request carries one.
fn cookie_secret(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The record a cookie secret names.
fn record_sid(secret: &str) -> String {
    format!("CS{}", &sha256_hex(secret)[..32])
}

/// Whether the request reached sigil over HTTPS (directly, or through sigil's edge, which
/// sets `X-Forwarded-Proto`): the cookie is then `Secure`.
fn over_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("hex and fixed attributes make a valid header")
}

fn rejected() -> ApiError {
    // The same words whichever part was wrong.
    ApiError::unauthorized("Those credentials were not accepted")
}

impl ControlPlane {
    /// `POST /console/session` (form: `AccountSid`, `AuthToken` — or an API key SID and
    /// secret): signs in.
    pub(super) async fn sign_in(&self, headers: &HeaderMap, form: &Params) -> ApiResult {
        if !from_console(headers) {
            return Err(ApiError::forbidden("Sign in from the Console"));
        }
        let user = form.get("AccountSid").unwrap_or("").trim().to_owned();
        let pass = form.get("AuthToken").unwrap_or("").to_owned();
        let (u, p) = (user.clone(), pass);
        let account = self
            .db(move |s| crate::accounts::authenticate(s, &u, &p))
            .await?
            .ok_or_else(rejected)?;
        // Filed under the API key when signed in with one.
        let parent = Prefix::ApiKey
            .parse(&user)
            .unwrap_or_else(|| account.clone());
        let secret = crate::sid::random_hex(32);
        let csrf = crate::sid::random_hex(16);
        let rec = Record::new(
            Kind::ConsoleSession,
            record_sid(&secret),
            account.clone(),
            Some(parent),
            &SessionData {
                csrf: csrf.clone(),
                expires: crate::clock::now() + TTL_SECS,
            },
        );
        self.db(move |s| s.commit(vec![Write::Insert(rec)])).await?;
        let mut resp = json_response(
            StatusCode::CREATED,
            &serde_json::json!({"account_sid": account, "csrf_token": csrf, "expires_in": TTL_SECS}),
        );
        resp.headers_mut().insert(
            header::SET_COOKIE,
            cookie(&secret, TTL_SECS, over_https(headers)),
        );
        Ok(resp)
    }

    /// `GET /console/session`: the signed-in Account and the session's CSRF token (the
    /// Console asks after a reload), or 401.
    pub(super) async fn session_info(&self, headers: &HeaderMap) -> ApiResult {
        let (account, data) = self.session(headers).await?.ok_or_else(no_session)?;
        Ok(json_response(
            StatusCode::OK,
            &serde_json::json!({
                "account_sid": account,
                "csrf_token": data.csrf,
                "expires_in": data.expires - crate::clock::now(),
            }),
        ))
    }

    /// `DELETE /console/session` (with the CSRF token): signs out, here and on every replica.
    pub(super) async fn sign_out(&self, headers: &HeaderMap) -> ApiResult {
        self.session_account(&Method::DELETE, headers)
            .await?
            .ok_or_else(no_session)?;
        if let Some(secret) = cookie_secret(headers) {
            let sid = record_sid(secret);
            self.db(move |s| s.commit(vec![Write::Delete(sid)])).await?;
        }
        let mut resp = http::Response::new(crate::Body::new(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        resp.headers_mut()
            .insert(header::SET_COOKIE, cookie("", 0, over_https(headers)));
        Ok(resp)
    }

    /// The Account a request's session cookie grants, if it carries one (`None`: no
    /// cookie). A change (any method but GET and HEAD) must carry the CSRF token too.
    pub(super) async fn session_account(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        if cookie_secret(headers).is_none() {
            return Ok(None);
        }
        let (account, data) = self.session(headers).await?.ok_or_else(no_session)?;
        if method != Method::GET && method != Method::HEAD {
            let given = headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !ct_eq(given, &data.csrf) {
                return Err(ApiError::forbidden(
                    "This change did not carry the session's CSRF token",
                ));
            }
        }
        Ok(Some(account))
    }

    /// The live session a request's cookie names.
    async fn session(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<(String, SessionData)>, ApiError> {
        let Some(secret) = cookie_secret(headers) else {
            return Ok(None);
        };
        let sid = record_sid(secret);
        let Some(rec) = self.db(move |s| s.get(&sid)).await? else {
            return Ok(None);
        };
        if rec.kind != Kind::ConsoleSession {
            return Ok(None);
        }
        let data: SessionData = rec.decode()?;
        if data.expires <= crate::clock::now() {
            return Ok(None);
        }
        Ok(Some((rec.account_sid, data)))
    }
}

fn no_session() -> ApiError {
    ApiError::unauthorized("The Console session has ended; sign in again")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookie(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, v.parse().unwrap());
        h
    }

    #[test]
    fn the_cookie_is_found_among_others_and_must_be_64_hex() {
        let good = "ab".repeat(32);
        for (header, want) in [
            (format!("{COOKIE}={good}"), Some(good.as_str())),
            (format!("a=1; {COOKIE}={good}; b=2"), Some(good.as_str())),
            (format!("x{COOKIE}={good}"), None),
            (format!("{COOKIE}={}", &good[..63]), None),
            (format!("{COOKIE}={}g", &good[..63]), None),
            (format!("{COOKIE}="), None),
            ("other=1".to_owned(), None),
        ] {
            assert_eq!(cookie_secret(&with_cookie(&header)), want, "{header}");
        }
        assert_eq!(cookie_secret(&HeaderMap::new()), None);
    }

    #[test]
    fn the_record_is_named_by_a_digest_not_the_secret() {
        let secret = "ab".repeat(32);
        let sid = record_sid(&secret);
        assert!(sid.starts_with("CS") && sid.len() == 34);
        assert!(!sid.contains(&secret[..32]));
        assert_ne!(sid, record_sid(&"cd".repeat(32)));
    }

    #[test]
    fn the_cookie_is_strict_http_only_and_secure_over_https() {
        let plain = cookie("v", 10, false);
        assert_eq!(
            plain.to_str().unwrap(),
            format!("{COOKIE}=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=10")
        );
        assert!(cookie("v", 10, true)
            .to_str()
            .unwrap()
            .ends_with("; Secure"));
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_https(&h));
    }
}
