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

/// The session cookie's name over plain HTTP.
pub const COOKIE: &str = "sigil_console";
/// Its name over HTTPS: with the `__Host-` prefix, a browser takes it only from this host,
/// `Secure` and without `Domain`, so a page on a sibling host (an Environment's site) cannot
/// plant one of its own.
pub const SECURE_COOKIE: &str = "__Host-sigil_console";
/// The request header that carries the session's CSRF token.
pub const CSRF_HEADER: &str = "x-sigil-csrf";
/// What the Console's requests carry, and a sign-in request must: a header a cross-site
/// form cannot send, so nobody signs a visitor into an account of theirs.
const CONSOLE_HEADER: &str = "x-requested-with";
/// How long a session lasts.
pub const TTL_SECS: i64 = 8 * 3600;

#[derive(Serialize, Deserialize)]
struct SessionData {
    /// The CSRF token.
    csrf: String,
    /// Unix seconds.
    expires: i64,
    /// The sha256 of the auth token it was signed in with (none for an API key): the session
    /// ends when that token stops working. A session under an Account without one (written
    /// before sigil kept it) counts as ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_sha256: Option<String>,
}

/// Whether the Console sent the request (it marks every call with a header that a
/// cross-site form cannot send).
pub fn from_console(headers: &HeaderMap) -> bool {
    headers.get(CONSOLE_HEADER).and_then(|v| v.to_str().ok()) == Some("sigil-console")
}

/// What session cookie a request carries.
#[derive(Debug, PartialEq, Eq)]
enum Presented<'a> {
    /// None.
    Nothing,
    /// One, well-formed: its secret.
    One(&'a str),
    /// A malformed one, or more than one (over plain HTTP a sibling host's page may have
    /// planted one for the parent domain): never a session, whichever came first.
    Unusable,
}

/// The session cookie a request carries: over HTTPS only the `__Host-` one counts (a plain
/// one may have been planted for the parent domain by a sibling host's page, and is
/// ignored), over plain HTTP only the plain one.
fn presented(headers: &HeaderMap) -> Presented<'_> {
    let name = if over_https(headers) {
        SECURE_COOKIE
    } else {
        COOKIE
    };
    let mut values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(n, _)| *n == name)
        .map(|(_, value)| value.trim());
    match (values.next(), values.next()) {
        (None, _) => Presented::Nothing,
        (Some(v), None) if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Presented::One(v)
        }
        _ => Presented::Unusable,
    }
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

/// The session cookie: `__Host-` named and `Secure` over HTTPS.
fn cookie(value: &str, max_age: i64, secure: bool) -> HeaderValue {
    let (name, secure) = if secure {
        (SECURE_COOKIE, "; Secure")
    } else {
        (COOKIE, "")
    };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    ))
    .expect("hex and fixed attributes make a valid header")
}

/// Set-Cookie values that end every session cookie this browser may hold for the host: both
/// names, and one planted for the parent `domain` by a sibling host's page.
fn cleared(secure: bool, domain: &str) -> Vec<HeaderValue> {
    let mut out = vec![cookie("", 0, false)];
    if secure {
        out.push(cookie("", 0, true));
    }
    if let Ok(v) = HeaderValue::from_str(&format!("{COOKIE}=; Domain={domain}; Path=/; Max-Age=0"))
    {
        out.push(v);
    }
    out
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
        let secret = crate::sid::random_hex(32);
        let csrf = crate::sid::random_hex(16);
        let (sid, data) = (
            record_sid(&secret),
            SessionData {
                csrf: csrf.clone(),
                expires: crate::clock::now() + TTL_SECS,
                token_sha256: Prefix::ApiKey
                    .parse(&user)
                    .is_none()
                    .then(|| sha256_hex(&pass)),
            },
        );
        // The credentials are checked and the session written in one commit that also checks
        // the credential's record is as read: a token rotated in between fails the commit,
        // and the next attempt checks against the new tokens.
        let account = super::retrying(|| {
            let (user, pass, sid) = (user.clone(), pass.clone(), sid.clone());
            let data = serde_json::to_value(&data).expect("session data serialises");
            async move {
                self.db(move |s| {
                    let Some(account) = crate::accounts::authenticate(s, &user, &pass)? else {
                        return Ok(None);
                    };
                    // Filed under the API key when signed in with one.
                    let parent = Prefix::ApiKey
                        .parse(&user)
                        .unwrap_or_else(|| account.clone());
                    let Some(credential) = s.get(&parent)? else {
                        return Ok(None);
                    };
                    let rec = Record::new(
                        Kind::ConsoleSession,
                        sid,
                        account.clone(),
                        Some(parent),
                        &data,
                    );
                    s.commit(vec![Write::check(&credential), Write::Insert(rec)])?;
                    Ok(Some(account))
                })
                .await
            }
        })
        .await?
        .ok_or_else(rejected)?;
        let mut resp = json_response(
            StatusCode::CREATED,
            &serde_json::json!({"account_sid": account, "csrf_token": csrf, "expires_in": TTL_SECS}),
        );
        let secure = over_https(headers);
        let h = resp.headers_mut();
        // Whatever cookies were there (a stale one, one planted for the parent domain) go;
        // then the new session's.
        for clear in cleared(secure, &self.domain) {
            h.append(header::SET_COOKIE, clear);
        }
        h.append(header::SET_COOKIE, cookie(&secret, TTL_SECS, secure));
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
        if let Presented::One(secret) = presented(headers) {
            let sid = record_sid(secret);
            self.db(move |s| s.commit(vec![Write::Delete(sid)])).await?;
        }
        let mut resp = http::Response::new(crate::Body::new(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::NO_CONTENT;
        for clear in cleared(over_https(headers), &self.domain) {
            resp.headers_mut().append(header::SET_COOKIE, clear);
        }
        Ok(resp)
    }

    /// The Account a request's session cookie grants, if it carries one (`None`: no
    /// cookie). A change (any method but GET and HEAD) must carry the CSRF token too.
    pub(super) async fn session_account(
        &self,
        method: &Method,
        headers: &HeaderMap,
    ) -> Result<Option<String>, ApiError> {
        if presented(headers) == Presented::Nothing {
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
        let Presented::One(secret) = presented(headers) else {
            return Ok(None);
        };
        let sid = record_sid(secret);
        let now = crate::clock::now();
        self.db(move |s| {
            let Some(rec) = s.get(&sid)? else {
                return Ok(None);
            };
            if rec.kind != Kind::ConsoleSession {
                return Ok(None);
            }
            let data: SessionData = rec.decode()?;
            if data.expires <= now {
                return Ok(None);
            }
            // Filed under the Account: signed in with an auth token, which must still work.
            if rec.parent_sid.as_deref() == Some(rec.account_sid.as_str()) {
                let works = match &data.token_sha256 {
                    Some(t) => crate::accounts::token_still_works(s, &rec.account_sid, t)?,
                    None => false,
                };
                if !works {
                    return Ok(None);
                }
            }
            Ok(Some((rec.account_sid, data)))
        })
        .await
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
    fn one_well_formed_cookie_of_the_schemes_name_is_a_session() {
        let good = "ab".repeat(32);
        let other = "cd".repeat(32);
        let https = |mut h: HeaderMap| {
            h.insert("x-forwarded-proto", "https".parse().unwrap());
            h
        };
        for (header, over_https, want) in [
            (format!("{COOKIE}={good}"), false, Presented::One(&good)),
            (
                format!("a=1; {COOKIE}={good}; b=2"),
                false,
                Presented::One(&good),
            ),
            (
                format!("{SECURE_COOKIE}={good}"),
                true,
                Presented::One(&good),
            ),
            // The other scheme's name does not count: over HTTPS a plain cookie may have
            // been planted for the parent domain by a sibling host's page.
            (format!("{COOKIE}={good}"), true, Presented::Nothing),
            (format!("{SECURE_COOKIE}={good}"), false, Presented::Nothing),
            (
                format!("{COOKIE}={other}; {SECURE_COOKIE}={good}"),
                true,
                Presented::One(&good),
            ),
            (format!("x{COOKIE}={good}"), false, Presented::Nothing),
            ("other=1".to_owned(), false, Presented::Nothing),
            (
                format!("{COOKIE}={}", &good[..63]),
                false,
                Presented::Unusable,
            ),
            (
                format!("{COOKIE}={}g", &good[..63]),
                false,
                Presented::Unusable,
            ),
            (format!("{COOKIE}="), false, Presented::Unusable),
            // Two of the scheme's name (a planted one, on plain HTTP): neither.
            (
                format!("{COOKIE}={other}; {COOKIE}={good}"),
                false,
                Presented::Unusable,
            ),
            (
                format!("{SECURE_COOKIE}={good}; {SECURE_COOKIE}={other}"),
                true,
                Presented::Unusable,
            ),
        ] {
            let h = with_cookie(&header);
            let h = if over_https { https(h) } else { h };
            assert_eq!(presented(&h), want, "{header} over_https={over_https}");
        }
        let mut two_headers = with_cookie(&format!("{COOKIE}={good}"));
        two_headers.append(header::COOKIE, format!("{COOKIE}={other}").parse().unwrap());
        assert_eq!(presented(&two_headers), Presented::Unusable);
        assert_eq!(presented(&HeaderMap::new()), Presented::Nothing);
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
        assert_eq!(
            cookie("v", 10, true).to_str().unwrap(),
            format!("{SECURE_COOKIE}=v; Path=/; HttpOnly; SameSite=Strict; Max-Age=10; Secure")
        );
        let clear: Vec<String> = cleared(true, "example.com")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(clear.len(), 3);
        assert!(clear.iter().all(|c| c.contains("Max-Age=0")));
        assert!(clear[2].contains("; Domain=example.com;"), "{clear:?}");
        let mut h = HeaderMap::new();
        assert!(!over_https(&h));
        h.insert("x-forwarded-proto", "https".parse().unwrap());
        assert!(over_https(&h));
    }
}
