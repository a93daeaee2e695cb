//! Authentication of API requests: HTTP Basic (Account SID + auth token, or API key +
//! secret), or a Console session cookie ([`super::sessions`]).

use base64::Engine;
use http::{header, HeaderMap};

use super::{ApiError, ControlPlane};

/// The credentials in an `Authorization: Basic …` header, if it is well-formed.
pub fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// The Account the request's credentials grant, or 401 / 20003 (403 for a session's
/// change without its CSRF token). Basic credentials win over a session cookie.
pub async fn authenticate(
    cp: &ControlPlane,
    method: &http::Method,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    if headers.get(header::AUTHORIZATION).is_none() {
        if let Some(account) = cp.session_account(method, headers).await? {
            return Ok(account);
        }
        return Err(ApiError::unauthorized(
            "Authentication Error - No credentials provided",
        ));
    }
    let Some((user, pass)) = basic_credentials(headers) else {
        return Err(ApiError::unauthorized(
            "Authentication Error - invalid username",
        ));
    };
    cp.db(move |s| crate::accounts::authenticate(s, &user, &pass))
        .await?
        .ok_or_else(|| ApiError::unauthorized("Authentication Error - invalid username"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, v.parse().expect("header"));
        h
    }

    #[test]
    fn parses_basic() {
        // "AC1:tok:with:colons"
        let h = headers("Basic QUMxOnRvazp3aXRoOmNvbG9ucw==");
        assert_eq!(
            basic_credentials(&h),
            Some(("AC1".into(), "tok:with:colons".into()))
        );
        assert_eq!(
            basic_credentials(&headers("basic QUMxOnQ=")),
            Some(("AC1".into(), "t".into()))
        );
        for bad in ["Bearer QUMxOnQ=", "Basic !!!", "Basic QUMx", "Basic"] {
            assert_eq!(basic_credentials(&headers(bad)), None, "{bad}");
        }
    }
}
