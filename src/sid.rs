//! Typed Twilio SIDs: a two-letter prefix plus 32 lowercase hex digits.
//!
//! Functions and Assets share `ZH`, their versions share `ZN` (CONTRACT.md §2), so a SID
//! alone never tells which kind of record it names: the store's `Kind` does.

use std::fmt;

/// The SID prefixes sigil issues or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
    /// `AC`: an Account.
    Account,
    /// `SK`: an API key.
    ApiKey,
    /// `ZS`: a Service.
    Service,
    /// `ZE`: an Environment.
    Environment,
    /// `ZH`: a Function or an Asset.
    Resource,
    /// `ZN`: a Function Version or an Asset Version.
    Version,
    /// `ZB`: a Build.
    Build,
    /// `ZD`: a Deployment.
    Deployment,
    /// `ZV`: a Variable.
    Variable,
    /// `NO`: a Log.
    Log,
    /// `RQ`: a request (Log `request_sid`, `twilio-request-id`).
    Request,
}

impl Prefix {
    /// The two letters that begin every SID of this kind.
    pub const fn as_str(self) -> &'static str {
        match self {
            Prefix::Account => "AC",
            Prefix::ApiKey => "SK",
            Prefix::Service => "ZS",
            Prefix::Environment => "ZE",
            Prefix::Resource => "ZH",
            Prefix::Version => "ZN",
            Prefix::Build => "ZB",
            Prefix::Deployment => "ZD",
            Prefix::Variable => "ZV",
            Prefix::Log => "NO",
            Prefix::Request => "RQ",
        }
    }

    /// A fresh random SID of this kind.
    pub fn generate(self) -> String {
        format!("{}{}", self.as_str(), random_hex(16))
    }

    /// Parses `text` as a SID of this kind. Twilio's patterns accept upper-case hex
    /// (`^ZS[0-9a-fA-F]{32}$`); sigil issues lower case, so the result is normalised to it.
    pub fn parse(self, text: &str) -> Option<String> {
        let rest = text.strip_prefix(self.as_str())?;
        if rest.len() == 32 && rest.bytes().all(|b| b.is_ascii_hexdigit()) {
            Some(format!("{}{}", self.as_str(), rest.to_ascii_lowercase()))
        } else {
            None
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `bytes` random bytes from the operating system, as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    hex(&buf)
}

/// 16 random bytes as hex from a per-thread generator (xorshift128+, seeded from the OS once
/// per thread): for request ids, which must be unique, not secret, and cheap — no syscall per
/// request.
fn fast_random_hex16() -> String {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<(u64, u64)> = Cell::new({
            let mut seed = [0u8; 16];
            getrandom::fill(&mut seed).expect("the operating system's random source is available");
            let a = u64::from_le_bytes(seed[..8].try_into().expect("8 bytes"));
            let b = u64::from_le_bytes(seed[8..].try_into().expect("8 bytes"));
            (a | 1, b | 1)
        });
    }
    let mut out = [0u8; 16];
    STATE.with(|state| {
        for chunk in out.chunks_mut(8) {
            let (mut s1, s0) = state.get();
            s1 ^= s1 << 23;
            s1 ^= s1 >> 17;
            s1 ^= s0 ^ (s0 >> 26);
            state.set((s0, s1));
            chunk.copy_from_slice(&s1.wrapping_add(s0).to_le_bytes());
        }
    });
    hex(&out)
}

/// A request id (`RQ…`, `twilio-request-id`, Log `request_sid`): unique, not secret, made
/// without a syscall.
pub fn request_sid() -> String {
    format!("{}{}", Prefix::Request, fast_random_hex16())
}

/// A random number in `0..bound`; used for the 4 digits of a Service's domain.
pub fn random_below(bound: u32) -> u32 {
    let mut buf = [0u8; 4];
    getrandom::fill(&mut buf).expect("the operating system's random source is available");
    // A 32-bit draw reduced mod 10_000 has a bias under 0.0003%: fine for a domain label.
    u32::from_le_bytes(buf) % bound
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_sids_parse_back() {
        for p in [Prefix::Service, Prefix::Version, Prefix::Log] {
            let sid = p.generate();
            assert_eq!(sid.len(), 34);
            assert_eq!(p.parse(&sid).as_deref(), Some(sid.as_str()));
        }
    }

    #[test]
    fn parse_table() {
        let ok = "ZS0123456789abcdef0123456789ABCDEF";
        assert_eq!(
            Prefix::Service.parse(ok).as_deref(),
            Some("ZS0123456789abcdef0123456789abcdef")
        );
        for bad in [
            "",
            "ZS",
            "ZE0123456789abcdef0123456789abcdef",
            "ZS0123456789abcdef0123456789abcde",
            "ZS0123456789abcdef0123456789abcdef0",
            "ZS0123456789abcdef0123456789abcdeg",
            "zs0123456789abcdef0123456789abcdef",
            "ZS0123456789abcdef0123456789abcdé",
        ] {
            assert_eq!(Prefix::Service.parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn fast_ids_differ() {
        let a = fast_random_hex16();
        let b = fast_random_hex16();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn hex_encodes() {
        assert_eq!(hex(&[0, 15, 16, 255]), "000f10ff");
    }
}
