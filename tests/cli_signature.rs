//! `sigil signature compute|verify`: the support tool for "why was my webhook fetch refused?".

mod support;

use std::process::Command;

fn sigil(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .arg("signature")
        .args(args)
        .output()
        .expect("runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8(out.stdout).expect("utf-8"),
    )
}

const URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";
const PARAMS: [&str; 10] = [
    "--param",
    "CallSid=CA1234567890ABCDE",
    "--param",
    "Caller=+12349013030",
    "--param",
    "Digits=1234",
    "--param",
    "From=+12349013030",
    "--param",
    "To=+18005551212",
];

#[test]
fn compute_matches_twilio_python() {
    let mut args = vec!["compute", "--url", URL, "--token", "12345"];
    args.extend(PARAMS);
    let (code, out) = sigil(&args);
    assert_eq!(code, 0);
    let want = support::twilio_signature(
        "12345",
        URL,
        &[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ],
    );
    assert!(out.contains(&format!("signature {want}\n")), "{out}");
    assert!(out.contains("signed https://mycompany.com/myapp.php?foo=1&bar=2CallSidCA1234567890ABCDECaller+12349013030"));
}

#[test]
fn verify_explains_and_sets_the_exit_code() {
    let mut args = vec![
        "verify",
        "--url",
        "https://mycompany.com:443/myapp.php?foo=1&bar=2",
        "--token",
        "12345",
        "--signature",
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
    ];
    args.extend(PARAMS);
    let (code, out) = sigil(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("valid\n"));
    // Both URL variants are shown with what each would need.
    assert!(out.contains("tried https://mycompany.com:443/myapp.php?foo=1&bar=2CallSid"));
    assert!(out.contains("tried https://mycompany.com/myapp.php?foo=1&bar=2CallSid"));
    assert!(out.contains("expects 0/KCTR6DLpKmkAf8muzZqo1nDgQ="));

    let (code, out) = sigil(&[
        "verify",
        "--url",
        URL,
        "--token",
        "12345",
        "--signature",
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
    ]);
    assert_eq!(code, 1);
    assert!(out.starts_with("invalid\n"));

    // Surrounding whitespace (a trailing newline pasted along) is refused, as Twilio's
    // libraries refuse it, and said.
    for padded in [
        "0/KCTR6DLpKmkAf8muzZqo1nDgQ=\n",
        " 0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
    ] {
        let mut args = vec![
            "verify",
            "--url",
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            "--token",
            "12345",
            "--signature",
            padded,
        ];
        args.extend(PARAMS);
        let (code, out) = sigil(&args);
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("invalid\n"), "{out}");
        assert!(
            out.contains("signature: the header value has surrounding whitespace"),
            "{out}"
        );
    }
}

#[test]
fn json_bodies_go_through_body_sha256() {
    let dir = tempfile::tempdir().expect("dir");
    let body = dir.path().join("body.json");
    std::fs::write(&body, br#"{"property": "value", "boolean": true}"#).expect("write");
    let body = body.to_str().expect("path");
    let (code, out) = sigil(&[
        "compute",
        "--url",
        URL,
        "--token",
        "12345",
        "--body-file",
        body,
    ]);
    assert_eq!(code, 0);
    let url = out
        .lines()
        .find_map(|l| l.strip_prefix("url "))
        .expect("url")
        .to_owned();
    assert_eq!(
        url,
        format!(
            "{URL}&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
        )
    );
    let sig = out
        .lines()
        .find_map(|l| l.strip_prefix("signature "))
        .expect("signature")
        .to_owned();
    let (code, _) = sigil(&[
        "verify",
        "--url",
        &url,
        "--token",
        "12345",
        "--body-file",
        body,
        "--signature",
        &sig,
    ]);
    assert_eq!(code, 0);
    std::fs::write(dir.path().join("other.json"), b"{}").expect("write");
    let other = dir.path().join("other.json");
    let (code, out) = sigil(&[
        "verify",
        "--url",
        &url,
        "--token",
        "12345",
        "--body-file",
        other.to_str().expect("p"),
        "--signature",
        &sig,
    ]);
    assert_eq!(code, 1);
    assert!(out.contains("body: the body's sha256 is"), "{out}");
    // A relative URL is a usage error, not a verdict.
    let (code, _) = sigil(&["compute", "--url", "/sms", "--token", "t"]);
    assert_eq!(code, 1);
}
