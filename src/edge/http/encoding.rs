//! Content coding negotiation: `Accept-Encoding` q-values (RFC 9110 §12.5.3) over the
//! precompressed variants a Build made.

use serde::{Deserialize, Serialize};

/// A content coding sigil can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Coding {
    /// No coding.
    Identity,
    /// gzip.
    Gzip,
    /// Brotli.
    Br,
}

impl Coding {
    /// The token in `Content-Encoding`.
    pub fn as_str(self) -> &'static str {
        match self {
            Coding::Identity => "identity",
            Coding::Gzip => "gzip",
            Coding::Br => "br",
        }
    }
}

/// q-value in thousandths; None when the header does not mention the coding (nor `*`).
fn q_of(accept: &str, coding: &str) -> Option<u16> {
    let mut star = None;
    for item in accept.split(',') {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let mut q = 1000u16;
        for param in parts {
            if let Some((k, v)) = param.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    q = parse_q(v.trim()).unwrap_or(0);
                }
            }
        }
        if name.eq_ignore_ascii_case(coding) {
            return Some(q);
        }
        if name == "*" {
            star = Some(q);
        }
    }
    star
}

/// `0`, `0.5`, `1.000` → thousandths.
fn parse_q(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value: u16 = format!("{frac:0<3}").parse().ok()?;
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// Picks the coding to send among `available` (identity is always available). Highest q wins;
/// on a tie br beats gzip beats identity (smaller first). No header: identity.
pub fn choose(accept_encoding: Option<&str>, available: &[Coding]) -> Coding {
    let Some(accept) = accept_encoding else {
        return Coding::Identity;
    };
    let mut best = (Coding::Identity, q_of(accept, "identity").unwrap_or(1));
    for coding in [Coding::Br, Coding::Gzip] {
        if !available.contains(&coding) {
            continue;
        }
        let q = q_of(accept, coding.as_str()).unwrap_or(0);
        if q > 0 && q >= best.1 && (q > best.1 || best.0 == Coding::Identity) {
            best = (coding, q);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::Coding::*;
    use super::*;

    #[test]
    fn table() {
        let both = [Br, Gzip];
        for (header, avail, want) in [
            (None, &both[..], Identity),
            (Some("gzip, deflate, br"), &both[..], Br),
            (Some("gzip, deflate, br, zstd"), &both[..], Br),
            (Some("gzip"), &both[..], Gzip),
            (Some("br;q=0.5, gzip;q=0.8"), &both[..], Gzip),
            (Some("br;q=0.8, gzip;q=0.8"), &both[..], Br),
            (Some("br;q=0, gzip;q=0"), &both[..], Identity),
            (Some("*"), &both[..], Br),
            (Some("*;q=0.5, br;q=0"), &both[..], Gzip),
            (Some("identity"), &both[..], Identity),
            (Some(""), &both[..], Identity),
            (Some("gzip;q=1.0"), &both[..], Gzip),
            (Some("gzip;q=2"), &both[..], Identity),
            (Some("gzip;q=0.001"), &both[..], Gzip),
            (Some("br"), &[Gzip][..], Identity),
            (Some("br, gzip"), &[][..], Identity),
            (Some("BR"), &both[..], Br),
            (Some("identity;q=1, gzip;q=0.5"), &both[..], Identity),
        ] {
            assert_eq!(choose(header, avail), want, "{header:?} {avail:?}");
        }
    }
}
