//! Visibility at the edge: public to anyone, private never, protected only with a valid
//! X-Twilio-Signature — computed here by the official `twilio` Python package.

mod support;

use support::{twilio_signature, Sigil, AUTH_TOKEN};

const SECRET: &[u8] = b"<Response><Say>protected</Say></Response>";

#[test]
fn public_private_and_protected() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site(
        "vis",
        &[
            ("/public.txt", "public", b"for everyone", "text/plain"),
            ("/private.txt", "private", b"never served", "text/plain"),
            ("/twiml.xml", "protected", SECRET, "application/xml"),
        ],
    );
    let d = site.domain.as_str();
    let edge = sigil.edge(&[d]);

    let r = edge.get(&edge.url(d, "/public.txt"), &[]).expect(200);
    assert_eq!(r.body, b"for everyone");
    for url in [edge.url(d, "/private.txt"), edge.tls_url(d, "/private.txt")] {
        let r = edge.get(&url, &[]).expect(403);
        assert!(!r.text().contains("never served"));
        // Even a valid signature does not open a private asset.
        let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
        let r = edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(403);
        assert!(!r.text().contains("never served"));
    }

    // Protected, GET: signed URL with its query, over HTTP and HTTPS (h2).
    for url in [
        edge.url(d, "/twiml.xml?CallSid=CA123&From=%2B14155551234"),
        edge.tls_url(d, "/twiml.xml?CallSid=CA123&From=%2B14155551234"),
    ] {
        edge.get(&url, &[]).expect(403);
        edge.get(&url, &[("X-Twilio-Signature", "bm90IGl0")])
            .expect(403);
        let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
        let r = edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
        assert_eq!(r.body, SECRET);
        // The signature covers the query: another query is refused.
        let other = url.replace("CA123", "CA999");
        edge.get(&other, &[("X-Twilio-Signature", &sig)])
            .expect(403);
        // Signed without the port (as Twilio does for default ports): still valid.
        let no_port = url
            .replace(&format!(":{}", edge.http_port), "")
            .replace(&format!(":{}", edge.https_port), "");
        let sig = twilio_signature(AUTH_TOKEN, &no_port, &[]);
        edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
        // Signed by another token: refused.
        let sig = twilio_signature("someone-elses-token", &url, &[]);
        edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(403);
    }

    // Protected, form POST (a webhook fetcher posting to a TwiML asset).
    let url = edge.url(d, "/twiml.xml");
    let params = [
        ("CallSid", "CA1"),
        ("Digits", "1234"),
        ("Digits", "5678"),
        ("From", "+14155551234"),
    ];
    let sig = twilio_signature(AUTH_TOKEN, &url, &params);
    let post = |sig: &str, params: &[(&str, &str)]| {
        edge.send(
            edge.http
                .post(&url)
                .header("X-Twilio-Signature", sig)
                .form(params),
        )
    };
    assert_eq!(post(&sig, &params).expect(200).body, SECRET);
    let mut reordered = params;
    reordered.reverse();
    post(&sig, &reordered).expect(200);
    post(&sig, &params[..3]).expect(403);
    post(
        &sig,
        &[
            ("CallSid", "CA1"),
            ("Digits", "1234"),
            ("Digits", "5678"),
            ("From", "+14155550000"),
        ],
    )
    .expect(403);

    // Protected, JSON POST validated through bodySHA256.
    let body = br#"{"Body":"hello","From":"+14155551234"}"#;
    let hash = sigil::signature::body_sha256(body);
    let url = edge.url(d, &format!("/twiml.xml?bodySHA256={hash}"));
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    let json = |body: &[u8]| {
        edge.send(
            edge.http
                .post(&url)
                .header("X-Twilio-Signature", &sig)
                .header("Content-Type", "application/json")
                .body(body.to_vec()),
        )
    };
    assert_eq!(json(body).expect(200).body, SECRET);
    json(br#"{"Body":"hellO","From":"+14155551234"}"#).expect(403);

    let metrics = reqwest::blocking::get(format!("{}/metrics", sigil.api))
        .expect("metrics")
        .text()
        .expect("text");
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("sigil_signature_failures_total "))
        .expect("counter")
        .parse()
        .expect("number");
    assert!(failures >= 10, "{failures}");
}

#[test]
fn rotated_tokens_sign_too() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let site = api.deploy_site("rot", &[("/t.xml", "protected", SECRET, "application/xml")]);
    let d = site.domain.as_str();
    let edge = sigil.edge(&[d]);
    let url = edge.url(d, "/t.xml");
    let out = sigil.account_cli(&["token", "secondary", "--account", support::ACCOUNT_SID]);
    let secondary = out
        .lines()
        .find_map(|l| l.strip_prefix("secondary_auth_token "))
        .expect("token")
        .to_owned();
    // The edge re-reads tokens every 2 s.
    let sig = twilio_signature(&secondary, &url, &[]);
    let mut ok = false;
    for _ in 0..50 {
        if edge.get(&url, &[("X-Twilio-Signature", &sig)]).status == 200 {
            ok = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(ok, "the secondary token signs within 5 s of its creation");
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
}

#[test]
fn forwarded_headers_only_from_trusted_proxies() {
    for trusted in [true, false] {
        let flags: &[&str] = if trusted {
            &["--trusted-proxy", "127.0.0.0/8"]
        } else {
            &[]
        };
        let sigil = Sigil::start_with(flags);
        let api = sigil.client();
        let site = api.deploy_site(
            "fwd",
            &[("/hook.xml", "protected", SECRET, "application/xml")],
        );
        let d = site.domain.as_str();
        let edge = sigil.edge(&[d]);
        // Twilio fetched https://{domain}/hook.xml?x=1 from a TLS-terminating proxy, which
        // forwards plain HTTP to sigil.
        let sig = twilio_signature(AUTH_TOKEN, &format!("https://{d}/hook.xml?x=1"), &[]);
        let via_proxy = edge.get(
            &edge.url(d, "/hook.xml?x=1"),
            &[("X-Forwarded-Proto", "https"), ("X-Twilio-Signature", &sig)],
        );
        assert_eq!(
            via_proxy.status,
            if trusted { 200 } else { 403 },
            "trusted={trusted}"
        );
        // A proxy that rewrites Host names the public host in X-Forwarded-Host.
        let rewritten = edge.get(
            &format!("http://127.0.0.1:{}/hook.xml?x=1", edge.http_port),
            &[
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", d),
                ("X-Twilio-Signature", &sig),
            ],
        );
        // Untrusted, the forwarded host is ignored: 127.0.0.1 names no Environment.
        assert_eq!(
            rewritten.status,
            if trusted { 200 } else { 404 },
            "trusted={trusted}"
        );
        // A trusted proxy appends to what the client sent: the value it added (the last)
        // counts, not the client's.
        let appended = edge.get(
            &format!("http://127.0.0.1:{}/hook.xml?x=1", edge.http_port),
            &[
                ("X-Forwarded-Proto", "http, https"),
                ("X-Forwarded-Host", &format!("evil.example, {d}")),
                ("X-Twilio-Signature", &sig),
            ],
        );
        assert_eq!(
            appended.status,
            if trusted { 200 } else { 404 },
            "trusted={trusted}"
        );
        // And a forwarded host is checked like a Host header.
        let bad = edge.get(
            &format!("http://127.0.0.1:{}/hook.xml?x=1", edge.http_port),
            &[("X-Forwarded-Host", "evil@host.example")],
        );
        assert_eq!(
            bad.status,
            if trusted { 400 } else { 404 },
            "trusted={trusted}"
        );
    }
}
