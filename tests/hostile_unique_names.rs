//! Hostile input: non-ASCII unique names. A Service's unique name becomes a DNS label of every
//! Environment's host name, so anything but ASCII letters, digits and inner dashes is a 400 —
//! lookalikes (Kelvin sign, fullwidth, Cyrillic), invisible characters, NUL — and lookups
//! compare ASCII case-insensitively only, so a Unicode name never resolves to an ASCII
//! Service. A DomainSuffix (also part of the host) is held to the same. An Environment's
//! unique name is free text in Twilio's API (≤ 100 characters): non-ASCII is accepted and
//! kept exactly, and never reaches a host name. At the edge, a Host that is not ASCII is a
//! 400.

mod hostile;
mod support;

use hostile::{api_request, assert_no_leak, assert_twilio_error, exchange, Fixture};
use support::enc;

fn count(fx: &Fixture, path: &str, key: &str) -> usize {
    fx.sigil.client().get(path).expect(200).json[key]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn non_ascii_unique_names_are_refused_or_kept_exactly() {
    let fx = Fixture::start(&[]);
    let api = fx.sigil.client();
    let kelvin = api.service("kelvin");
    let services = count(&fx, "/v1/Services", "services");

    // Service UniqueName: 400 / 20001, nothing created.
    let names = [
        "h\u{e9}llo",               // é
        "\u{212a}elvin",            // KELVIN SIGN, lower-cases to `k` in Unicode
        "\u{ff2b}\u{ff25}\u{ff2c}", // fullwidth KEL
        "h\u{43e}stile",            // Cyrillic о
        "\u{131}nstance",           // dotless ı
        "stra\u{df}e",              // ß
        "e\u{301}",                 // combining acute
        "ho\u{200d}stile",          // zero-width joiner
        "ho\u{200b}stile",          // zero-width space
        "\u{202e}elitsoh",          // right-to-left override
        "host\u{a0}ile",            // no-break space
        "host\u{3000}ile",          // ideographic space
        "\u{1f600}",                // emoji
        "a\u{0}b",                  // NUL
        "xn--",                     // not a label (trailing dash)
        "\u{65e5}\u{672c}",         // 日本
    ];
    for name in names {
        let what = format!("Service UniqueName {name:?}");
        let r = api
            .post(
                "/v1/Services",
                &[("UniqueName", name), ("FriendlyName", "x")],
            )
            .expect_error(400, 20001);
        assert!(r.s("message").contains("UniqueName"), "{what}: {}", r.text);
    }
    // Raw, not percent-encoded, UTF-8 in the form body: the same.
    let x = exchange(
        fx.api(),
        &api_request(
            "POST",
            b"/v1/Services",
            &["Content-Type: application/x-www-form-urlencoded\r\n"],
            "UniqueName=h\u{f6}stile&FriendlyName=x".as_bytes(),
        ),
    );
    assert_eq!(
        assert_twilio_error(x.only(), 400, "raw UTF-8 UniqueName"),
        20001
    );
    assert_eq!(
        count(&fx, "/v1/Services", "services"),
        services,
        "no Service was created"
    );
    // Punycode is ASCII: a valid label.
    api.post(
        "/v1/Services",
        &[("UniqueName", "xn--hstile-wxa"), ("FriendlyName", "x")],
    )
    .expect(201);

    // Lookups: ASCII case-insensitive only; no Unicode folding to an ASCII Service.
    api.get("/v1/Services/KELVIN").expect(200);
    for name in [
        "\u{212a}elvin",
        "\u{ff2b}elvin",
        "k\u{200b}elvin",
        "kelv\u{131}n",
        "kelvin\u{0}",
        "kelvin ",
        "h\u{f6}stile",
    ] {
        let path = format!("/v1/Services/{}", enc(name));
        let r = api.get(&path).expect_error(404, 20404);
        assert!(
            !r.text.contains(&kelvin),
            "{name:?} resolved to the kelvin Service"
        );
        // Also in nested paths.
        api.get(&format!("{path}/Environments"))
            .expect_error(404, 20404);
    }

    // DomainSuffix: ASCII letters, digits, inner dashes.
    let envs_path = format!("/v1/Services/{kelvin}/Environments");
    for suffix in [
        "\u{fc}",
        "stag\u{e9}",
        "\u{ff11}",
        "st\u{200b}age",
        "\u{261}",
    ] {
        api.post(
            &envs_path,
            &[("UniqueName", "staging"), ("DomainSuffix", suffix)],
        )
        .expect_error(400, 20001);
    }
    assert_eq!(count(&fx, &envs_path, "environments"), 0);
    // Environment UniqueName: free text, kept exactly; the host name stays ASCII.
    let name = "pr\u{f8}d\u{fc}ction-\u{73af}\u{5883} \u{1f600}";
    let r = api
        .post(
            &envs_path,
            &[("UniqueName", name), ("DomainSuffix", "stage")],
        )
        .expect(201);
    assert_eq!(r.s("unique_name"), name);
    assert!(r.s("domain_name").is_ascii(), "{}", r.s("domain_name"));
    let fetched = api.get(&format!("{envs_path}/{}", r.s("sid"))).expect(200);
    assert_eq!(fetched.s("unique_name"), name);
    // The limit counts characters, not bytes: 100 two-byte characters fit, 101 do not.
    let hundred = "\u{e9}".repeat(100);
    api.post(
        &envs_path,
        &[("UniqueName", &hundred), ("DomainSuffix", "e1")],
    )
    .expect(201);
    api.post(
        &envs_path,
        &[
            ("UniqueName", &"\u{e9}".repeat(101)),
            ("DomainSuffix", "e2"),
        ],
    )
    .expect_error(400, 20001);
    // Precomposed and decomposed `é` are different names (compared as sent, like Twilio).
    api.post(
        &envs_path,
        &[
            ("UniqueName", &"e\u{301}".repeat(50)),
            ("DomainSuffix", "e3"),
        ],
    )
    .expect(201);

    // Edge: a Host that is not ASCII never reaches routing.
    let lookalike = fx.site.domain.replacen('o', "\u{43e}", 1);
    for host in [
        lookalike.as_str(),
        "\u{212a}elvin.localhost",
        "h\u{f6}stile.localhost",
    ] {
        let req = [
            b"GET /pub.txt HTTP/1.1\r\nHost: ".as_slice(),
            host.as_bytes(),
            b"\r\nConnection: close\r\n\r\n",
        ]
        .concat();
        let what = format!("edge Host {host:?}");
        let x = exchange(fx.edge(), &req);
        x.expect(400, &what);
        assert_no_leak(&x.raw, &what);
    }
    // Punycode that names no Environment: 404.
    let x = exchange(
        fx.edge(),
        &hostile::get("xn--hstile-wxa-0000.localhost", b"/pub.txt", &[]),
    );
    x.expect(404, "edge: punycode host of no Environment");

    fx.assert_still_serving();
}
