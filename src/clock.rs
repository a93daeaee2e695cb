//! Time as Twilio writes it: UTC, whole seconds, `YYYY-MM-DDTHH:MM:SSZ`.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// Seconds since the Unix epoch, now.
pub fn now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// Formats a Unix time as Twilio's `2018-11-10T20:00:00Z`.
pub fn iso(unix: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(fmt).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

/// Parses an ISO 8601 / RFC 3339 date-time (with or without fractional seconds, `Z` or an
/// offset) or a bare date `YYYY-MM-DD` (midnight UTC), as the SDKs and the toolkit send them.
pub fn parse_iso(text: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    let date = time::Date::parse(text, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_whole_seconds_with_z() {
        assert_eq!(iso(1_541_880_000), "2018-11-10T20:00:00Z");
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn parses_what_clients_send() {
        assert_eq!(parse_iso("2018-11-10T20:00:00Z"), Some(1_541_880_000));
        assert_eq!(parse_iso("2018-11-10T20:00:00.000Z"), Some(1_541_880_000));
        assert_eq!(parse_iso("2018-11-10T21:00:00+01:00"), Some(1_541_880_000));
        assert_eq!(parse_iso("2018-11-10"), Some(1_541_808_000));
        assert_eq!(parse_iso("yesterday"), None);
        assert_eq!(parse_iso("2018-13-10T20:00:00Z"), None);
    }
}
