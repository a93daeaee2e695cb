//! The rules Twilio's gateway applies to cookies a Function sets (RUNTIME.md §2.1, from
//! Twilio's "headers and cookies: limitations" page): `HttpOnly` and `Secure` unless the
//! cookie says them, no `Domain` (the cookie belongs to the Function's own host), and no
//! lifetime over a day — `Max-Age` first, else `Expires` — which fails the response with 400.

use std::time::{Duration, SystemTime};

/// The longest a cookie may live.
const A_DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Why a Function's response is refused.
pub const TOO_LONG: &str = "Cookies max-age cannot be greater than a day";

/// A `Set-Cookie` value as Twilio sends it on: `Secure` is added only over HTTPS (a browser
/// drops a `Secure` cookie an `http://` site sets, and Twilio serves only HTTPS).
pub fn as_sent(value: &str, https: bool, now: SystemTime) -> Result<String, &'static str> {
    let mut parts = value.split(';').map(str::trim).filter(|p| !p.is_empty());
    let pair = parts.next().unwrap_or_default();
    let mut kept = vec![pair.to_owned()];
    let (mut http_only, mut secure, mut max_age, mut expires) = (false, false, None, None);
    for attribute in parts {
        let (name, arg) = attribute.split_once('=').unwrap_or((attribute, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "domain" => continue,
            "httponly" => http_only = true,
            "secure" => secure = true,
            "max-age" => max_age = Some(arg.trim().parse::<i64>().unwrap_or(0)),
            "expires" => expires = httpdate::parse_http_date(arg.trim()).ok(),
            _ => {}
        }
        kept.push(attribute.to_owned());
    }
    let too_long = match (max_age, expires) {
        (Some(secs), _) => secs > A_DAY.as_secs() as i64,
        (None, Some(at)) => at > now + A_DAY,
        (None, None) => false,
    };
    if too_long {
        return Err(TOO_LONG);
    }
    if !http_only {
        kept.push("HttpOnly".into());
    }
    if !secure && https {
        kept.push("Secure".into());
    }
    Ok(kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_as_twilio_sends_them() {
        let now = httpdate::parse_http_date("Sun, 29 Nov 2026 12:00:00 GMT").unwrap();
        for (given, https, want) in [
            ("a=1", false, Ok("a=1; HttpOnly")),
            ("a=1", true, Ok("a=1; HttpOnly; Secure")),
            ("a=1;Path=/", true, Ok("a=1; Path=/; HttpOnly; Secure")),
            ("a=1; httponly; SECURE", true, Ok("a=1; httponly; SECURE")),
            (
                "a=1; Domain=evil.example; Path=/",
                false,
                Ok("a=1; Path=/; HttpOnly"),
            ),
            (
                "a=1; Max-Age=86400",
                false,
                Ok("a=1; Max-Age=86400; HttpOnly"),
            ),
            ("a=1; Max-Age=86401", false, Err(TOO_LONG)),
            ("a=;Max-Age=0", false, Ok("a=; Max-Age=0; HttpOnly")),
            // Max-Age wins over Expires.
            (
                "a=1; Expires=Sun, 06 Dec 2026 12:00:00 GMT; Max-Age=60",
                false,
                Ok("a=1; Expires=Sun, 06 Dec 2026 12:00:00 GMT; Max-Age=60; HttpOnly"),
            ),
            (
                "a=1; Expires=Sun, 06 Dec 2026 12:00:00 GMT",
                false,
                Err(TOO_LONG),
            ),
            (
                "a=1; Expires=Mon, 30 Nov 2026 11:00:00 GMT",
                false,
                Ok("a=1; Expires=Mon, 30 Nov 2026 11:00:00 GMT; HttpOnly"),
            ),
            // Exactly a day is allowed; a second more is not.
            (
                "a=1; Expires=Mon, 30 Nov 2026 12:00:00 GMT",
                false,
                Ok("a=1; Expires=Mon, 30 Nov 2026 12:00:00 GMT; HttpOnly"),
            ),
            (
                "a=1; Expires=Mon, 30 Nov 2026 12:00:01 GMT",
                false,
                Err(TOO_LONG),
            ),
        ] {
            assert_eq!(
                as_sent(given, https, now).as_deref().map_err(|e| *e),
                want,
                "{given} https={https}"
            );
        }
    }
}
