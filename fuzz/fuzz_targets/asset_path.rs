//! `asset_path::normalize`, the rule every stored version path passes.
//!
//! Properties of an accepted path: it begins with `/`; it is the input, with `/` prepended
//! when missing; at most 255 characters; no `%`, backslash, NUL, other control character,
//! whitespace or reserved character; no empty, `.` or `..` segment; normalising it again gives
//! it back. A path is accepted with or without its leading `/` alike.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sigil::asset_path::{normalize, MAX_PATH_CHARS};

const FORBIDDEN: &[char] = &[
    '#', ';', ',', '?', ':', '@', '+', '&', '$', '(', ')', '\'', '"', '%', '\\',
];

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let result = normalize(raw);
    let slashed = if raw.starts_with('/') {
        raw.to_owned()
    } else {
        format!("/{raw}")
    };
    assert_eq!(normalize(&slashed), result, "{raw:?}");
    let out = match result {
        Ok(out) => out,
        Err(why) => {
            assert!(!why.is_empty());
            return;
        }
    };
    assert_eq!(out, slashed);
    assert!(out.starts_with('/'));
    assert!(out.chars().count() <= MAX_PATH_CHARS, "{out:?}");
    for c in out.chars() {
        assert!(
            !FORBIDDEN.contains(&c) && !c.is_control() && !c.is_whitespace(),
            "{out:?} has {c:?}"
        );
    }
    if out != "/" {
        for segment in out[1..].split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "{out:?} has segment {segment:?}"
            );
        }
    }
    assert_eq!(
        normalize(&out).as_deref(),
        Ok(out.as_str()),
        "not idempotent"
    );
});
