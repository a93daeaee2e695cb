//! `Range: bytes=…` (RFC 9110 §14). One range is honoured; a list of several may be answered
//! with the whole representation (§14.2 lets a server ignore Range), as may anything malformed.

/// What a Range header asks of a representation of `size` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No (usable) Range: 200 with everything.
    Full,
    /// 206 with bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// 416 with `Content-Range: bytes */size`.
    Unsatisfiable,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Evaluates a Range field value against a representation of `size` bytes.
pub fn evaluate(value: &str, size: u64) -> RangeOutcome {
    let Some(set) = value.trim().strip_prefix("bytes=") else {
        return RangeOutcome::Full; // another unit, or not a range at all
    };
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeOutcome::Full; // empty, or more than one range
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix: the last N bytes; more than the size means all of it.
        return match number(last) {
            None => RangeOutcome::Full,
            Some(0) => RangeOutcome::Unsatisfiable,
            Some(_) if size == 0 => RangeOutcome::Unsatisfiable,
            Some(n) => RangeOutcome::Partial {
                start: size - n.min(size),
                end: size - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(e) if e >= start => Some(e),
            _ => return RangeOutcome::Full, // invalid: ignored
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end: end.map_or(size - 1, |e| e.min(size - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::{self, *};
    use super::*;

    fn p(start: u64, end: u64) -> RangeOutcome {
        Partial { start, end }
    }

    #[test]
    fn table() {
        for (value, size, want) in [
            ("bytes=0-1", 100, p(0, 1)), // the iOS probe
            ("bytes=0-0", 1, p(0, 0)),
            ("bytes=10-19", 100, p(10, 19)),
            ("bytes=10-", 100, p(10, 99)),
            ("bytes=90-200", 100, p(90, 99)), // end clamped
            ("bytes=-10", 100, p(90, 99)),
            ("bytes=-100", 100, p(0, 99)),
            ("bytes=-1000", 100, p(0, 99)), // suffix longer than the file: all of it
            ("bytes= 5 - 6 ", 100, p(5, 6)),
            ("bytes=0-,", 100, p(0, 99)),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-1", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=5-4", 100, Full),     // invalid: ignored
            ("bytes=0-1,5-6", 100, Full), // several: whole body
            ("bytes=", 100, Full),
            ("bytes=a-b", 100, Full),
            ("bytes=-", 100, Full),
            ("bytes=1", 100, Full),
            ("bytes=99999999999999999999-", 100, Full),
            // 19 digits are a number; 20 are not, even where u64 could hold them.
            ("bytes=0-9999999999999999999", 100, p(0, 99)),
            ("bytes=0-10000000000000000000", 100, Full),
            ("bytes=-10000000000000000000", 100, Full),
            // Digits only: no sign.
            ("bytes=+1-2", 100, Full),
            ("bytes=1-+2", 100, Full),
            ("bytes=-+1", 100, Full),
            ("items=0-1", 100, Full),
            ("0-1", 100, Full),
        ] {
            assert_eq!(evaluate(value, size), want, "{value:?} of {size}");
        }
    }
}
