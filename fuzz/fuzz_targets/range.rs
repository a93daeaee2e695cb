//! `Range: bytes=…` (RFC 9110 §14) against a representation of some size.
//!
//! Properties, for any field value: a satisfiable range lies inside the representation
//! (`start <= end < size`); a value that is not a `bytes=` range is ignored (Full); nothing
//! is satisfiable in an empty representation. For well-formed single ranges, the outcome is
//! the one RFC 9110 §14.1.2 gives, computed independently here.
//!
//! Input: a first byte with its low bit clear means text, `size\nfield value` (the seeds);
//! otherwise the rest is read as arbitrary structured fields.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use sigil::edge::http::range::{evaluate, RangeOutcome};

#[derive(Arbitrary, Debug)]
enum Spec {
    /// `first-last` or `first-`.
    First { first: u64, last: Option<u64> },
    /// `-suffix`.
    Suffix(u64),
}

#[derive(Arbitrary, Debug)]
enum Input {
    Raw {
        value: String,
        size: u64,
    },
    Spec {
        spec: Spec,
        size: u64,
        /// Spaces around the parts, and a trailing empty list element.
        padded: bool,
        trailing_comma: bool,
        /// Small numbers make overlaps with the size likely.
        small: bool,
    },
}

/// What RFC 9110 §14.1.2 says of one range spec; numbers sigil will not read (more than 19
/// digits) make the field invalid, hence ignored.
fn expected(spec: &Spec, size: u64) -> RangeOutcome {
    let readable = |n: u64| n.to_string().len() <= 19;
    match *spec {
        Spec::Suffix(n) if !readable(n) => RangeOutcome::Full,
        Spec::Suffix(0) => RangeOutcome::Unsatisfiable,
        Spec::Suffix(_) if size == 0 => RangeOutcome::Unsatisfiable,
        Spec::Suffix(n) => RangeOutcome::Partial {
            start: size - n.min(size),
            end: size - 1,
        },
        Spec::First { first, .. } if !readable(first) => RangeOutcome::Full,
        Spec::First {
            last: Some(last), ..
        } if !readable(last) => RangeOutcome::Full,
        Spec::First {
            first,
            last: Some(last),
        } if last < first => RangeOutcome::Full,
        Spec::First { first, .. } if first >= size => RangeOutcome::Unsatisfiable,
        Spec::First { first, last } => RangeOutcome::Partial {
            start: first,
            end: last.map_or(size - 1, |l| l.min(size - 1)),
        },
    }
}

fn check_invariants(value: &str, size: u64, got: RangeOutcome) {
    match got {
        RangeOutcome::Partial { start, end } => {
            assert!(start <= end && end < size, "{value:?} of {size}: {got:?}");
        }
        RangeOutcome::Unsatisfiable => {}
        RangeOutcome::Full => {}
    }
    if !value.trim().starts_with("bytes=") {
        assert_eq!(got, RangeOutcome::Full, "{value:?}");
    }
    if size == 0 {
        assert!(!matches!(got, RangeOutcome::Partial { .. }), "{value:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let (size, value) = text.split_once('\n').unwrap_or(("0", text));
        let size = size.trim().parse().unwrap_or(0);
        check(Input::Raw {
            value: value.to_owned(),
            size,
        });
    } else if let Ok(inp) = Input::arbitrary_take_rest(Unstructured::new(rest)) {
        check(inp);
    }
});

fn check(inp: Input) {
    match inp {
        Input::Raw { value, size } => {
            for size in [size, size % 1024, 0, 1] {
                check_invariants(&value, size, evaluate(&value, size));
            }
        }
        Input::Spec {
            mut spec,
            size,
            padded,
            trailing_comma,
            small,
        } => {
            let size = if small { size % 1024 } else { size };
            if small {
                match &mut spec {
                    Spec::Suffix(n) => *n %= 2048,
                    Spec::First { first, last } => {
                        *first %= 2048;
                        if let Some(l) = last {
                            *l %= 2048;
                        }
                    }
                }
            }
            let sp = if padded { " " } else { "" };
            let text = match &spec {
                Spec::Suffix(n) => format!("{sp}-{sp}{n}{sp}"),
                Spec::First { first, last } => {
                    let last = last.map(|l| l.to_string()).unwrap_or_default();
                    format!("{sp}{first}{sp}-{sp}{last}{sp}")
                }
            };
            let comma = if trailing_comma { "," } else { "" };
            let value = format!("{sp}bytes={text}{comma}{sp}");
            let got = evaluate(&value, size);
            check_invariants(&value, size, got);
            assert_eq!(got, expected(&spec, size), "{value:?} of {size}");
            // A second range makes it a list, which sigil answers in full.
            assert_eq!(
                evaluate(&format!("bytes={text},0-0"), size),
                RangeOutcome::Full
            );
        }
    }
}
