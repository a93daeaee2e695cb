//! Interop with the official `twilio` Python package (tests/interop/twilio_sdk.py): create,
//! fetch, update, delete, lists across pages through `next_page_url`, errors raised as
//! `TwilioRestException`, multipart uploads. Every body the SDK received is then validated
//! here against Twilio's spec.
//!
//! The package is installed on first use into the test build's temp directory (CI's
//! `.ci/run` installs it up front), so `cargo test` works on a fresh machine with pip.

mod support;

use support::Sigil;

#[test]
fn official_python_sdk_drives_sigil() {
    let sigil = Sigil::start();
    let record = support::run_python_interop(&sigil.api, None);
    let recorded = std::fs::read_to_string(record.path()).expect("record");
    let mut validated = 0;
    for line in recorded.lines() {
        let ex: serde_json::Value = serde_json::from_str(line).expect("record line");
        let status = ex["status"].as_u64().expect("status") as u16;
        let body = ex["body"].as_str().expect("body");
        if status == 204 {
            assert!(body.is_empty(), "204 with a body: {line}");
            continue;
        }
        let url = reqwest::Url::parse(ex["url"].as_str().expect("url")).expect("url parses");
        let json: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        support::spec::validate(
            ex["method"].as_str().expect("method"),
            url.path(),
            status,
            &json,
        );
        validated += 1;
    }
    assert!(validated >= 50, "only {validated} bodies recorded");
}
