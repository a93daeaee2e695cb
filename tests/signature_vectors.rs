//! Every X-Twilio-Signature check in tests/fixtures/signature_vectors.json (produced by
//! Twilio's own Python and Node libraries) gets the strict verdict.

use serde_json::Value;
use sigil::signature::{validate, Payload};

#[test]
fn every_vector_gets_the_strict_verdict() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/signature_vectors.json"
    ))
    .expect("fixture");
    let doc: Value = serde_json::from_str(&text).expect("json");
    let checks = doc["checks"].as_array().expect("checks");
    assert!(checks.len() >= 90);
    let mut wrong = Vec::new();
    for c in checks {
        let url = c["url"].as_str().expect("url");
        let token = c["auth_token"].as_str().expect("token");
        let sig = c["x_twilio_signature"].as_str().expect("signature");
        let params: Vec<(String, String)> = c["params"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .map(|p| {
                        (
                            p[0].as_str().expect("key").to_owned(),
                            p[1].as_str().expect("value").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let body = c["body"].as_str().unwrap_or("").as_bytes();
        let payload = match c["mode"].as_str().expect("mode") {
            "form" => Payload::Form(&params),
            "json" => Payload::Body(body),
            other => panic!("unknown mode {other}"),
        };
        let verdict = validate(&[token], url, payload, sig);
        if verdict.valid != c["valid"].as_bool().expect("valid") {
            wrong.push(format!(
                "{} / {}: got {}",
                c["case"], c["check"], verdict.valid
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}
