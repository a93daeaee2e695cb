//! Validation rules from the contract and Twilio's docs: paths, visibility, names, suffixes,
//! variable sizes, and what a Build may hold.

mod support;

use support::{Part, Sigil};

#[test]
fn version_paths() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("paths");
    let url = api.versions_url(&zs, "Assets");
    let up = |path: &str| {
        api.upload(
            &url,
            vec![
                Part::text("Path", path),
                Part::text("Visibility", "public"),
                Part::file("Content", b"x".to_vec(), "x", "text/plain"),
            ],
        )
    };
    for (given, stored) in [
        ("no-slash.txt", "/no-slash.txt"),
        ("/", "/"),
        ("/dir/ünïcødé.txt", "/dir/ünïcødé.txt"),
        (
            &format!("/{}", "a".repeat(254)),
            &format!("/{}", "a".repeat(254)),
        ),
    ] {
        assert_eq!(up(given).expect(201).s("path"), stored);
    }
    let too_long = format!("/{}", "a".repeat(255));
    for bad in [
        "/a#frag",
        "/a;b",
        "/a,b",
        "/a?b",
        "/a:b",
        "/a@b",
        "/a+b",
        "/a&b",
        "/a$b",
        "/a(b)",
        "/a'b",
        "/a\"b",
        "/a b",
        "/a\tb",
        "/../etc/passwd",
        "/a//b",
        "/a%2fb",
        "/a\\b",
        too_long.as_str(),
    ] {
        let r = up(bad).expect_error(400, 20001);
        assert!(r.s("message").contains("Path"), "{bad}: {}", r.text);
    }
}

#[test]
fn names_suffixes_and_variables() {
    let sigil = Sigil::start();
    let api = sigil.client();
    for bad in [
        "-lead",
        "trail-",
        "under_score",
        "dot.ted",
        "ünï",
        "with space",
        &"a".repeat(51),
    ] {
        api.post(
            "/v1/Services",
            &[("UniqueName", bad), ("FriendlyName", "x")],
        )
        .expect_error(400, 20001);
    }
    api.post(
        "/v1/Services",
        &[("UniqueName", &"a".repeat(50)), ("FriendlyName", "x")],
    )
    .expect(201);
    api.post(
        "/v1/Services",
        &[("UniqueName", "fn"), ("FriendlyName", &"f".repeat(256))],
    )
    .expect_error(400, 20001);
    let zs = api.service("rules");
    let envs = format!("/v1/Services/{zs}/Environments");
    for bad in ["-dev", "de v", "dev.x", "dév", &"s".repeat(17)] {
        api.post(&envs, &[("UniqueName", "e"), ("DomainSuffix", bad)])
            .expect_error(400, 20001);
    }
    api.post(&envs, &[("UniqueName", &"e".repeat(101))])
        .expect_error(400, 20001);
    let ze = api
        .environment(&zs, &"e".repeat(100), Some(&"s".repeat(16)))
        .s("sid");
    let vars = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    api.post(
        &vars,
        &[("Key", &"k".repeat(128)), ("Value", &"v".repeat(450))],
    )
    .expect(201);
    api.post(&vars, &[("Key", &"k".repeat(129)), ("Value", "v")])
        .expect_error(400, 20001);
    api.post(&vars, &[("Key", "big"), ("Value", &"v".repeat(451))])
        .expect_error(400, 20001);
    // 450 bytes, not characters: 226 two-byte characters are too many.
    api.post(&vars, &[("Key", "utf8"), ("Value", &"é".repeat(226))])
        .expect_error(400, 20001);
    api.post(&vars, &[("Key", "utf8"), ("Value", &"é".repeat(225))])
        .expect(201);
    // An empty value is a value.
    api.post(&vars, &[("Key", "empty"), ("Value", "")])
        .expect(201);
}

#[test]
fn what_a_build_may_hold() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("builds");
    let other = api.service("other");
    let builds = format!("/v1/Services/{zs}/Builds");
    let (_, a1) = api.version(&zs, "Assets", "/same", "public", b"1", "text/plain");
    let (_, a2) = api.version(&zs, "Assets", "/same", "public", b"2", "text/plain");
    let (_, f1) = api.version(
        &zs,
        "Functions",
        "/fn",
        "public",
        b"f",
        "application/javascript",
    );
    let (_, foreign) = api.version(&other, "Assets", "/x", "public", b"x", "text/plain");

    // Two versions with one path.
    let r = api
        .post(&builds, &[("AssetVersions", &a1), ("AssetVersions", &a2)])
        .expect_error(400, 20001);
    assert!(r.s("message").contains("/same"));
    // Another service's version; a function version given as an asset version.
    api.post(&builds, &[("AssetVersions", &foreign)])
        .expect_error(400, 20001);
    api.post(&builds, &[("AssetVersions", &f1)])
        .expect_error(400, 20001);
    api.post(&builds, &[("FunctionVersions", &a1)])
        .expect_error(400, 20001);
    api.post(
        &builds,
        &[("AssetVersions", "ZN0123456789abcdef0123456789abcdef")],
    )
    .expect_error(400, 20001);
    api.post(&builds, &[("AssetVersions", &a1), ("Runtime", "python3")])
        .expect_error(400, 20001);
    // Functions only, assets only, both: fine.
    api.post(&builds, &[("FunctionVersions", &f1)]).expect(201);
    api.post(
        &builds,
        &[("AssetVersions", &a1), ("FunctionVersions", &f1)],
    )
    .expect(201);

    // At most 50 private asset versions and 50 function versions.
    let many = |kind: &str, vis: &str, n: usize| -> Vec<String> {
        let zh = api
            .post(
                &format!("/v1/Services/{zs}/{kind}"),
                &[("FriendlyName", "many")],
            )
            .expect(201)
            .s("sid");
        (0..n)
            .map(|i| {
                api.upload(
                    &format!("/v1/Services/{zs}/{kind}/{zh}/Versions"),
                    vec![
                        Part::text("Path", &format!("/{vis}/{i}")),
                        Part::text("Visibility", vis),
                        Part::file("Content", vec![b'x'], "x", "text/plain"),
                    ],
                )
                .expect(201)
                .s("sid")
            })
            .collect()
    };
    for (kind, vis, param) in [
        ("Assets", "private", "AssetVersions"),
        ("Functions", "public", "FunctionVersions"),
    ] {
        let sids = many(kind, vis, 51);
        let form: Vec<(&str, &str)> = sids.iter().map(|s| (param, s.as_str())).collect();
        let r = api.post(&builds, &form).expect_error(400, 20001);
        assert!(r.s("message").contains("at most 50"), "{}", r.text);
        api.post(&builds, &form[..50]).expect(201);
    }
}

#[test]
fn at_most_1000_public_and_protected_assets() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("thousand");
    let versions = api.versions_url(&zs, "Assets");
    let sids: Vec<String> = (0..1001)
        .map(|i| {
            api.upload(
                &versions,
                vec![
                    Part::text("Path", &format!("/f{i}")),
                    Part::text(
                        "Visibility",
                        if i % 2 == 0 { "public" } else { "protected" },
                    ),
                    Part::file("Content", i.to_string().into_bytes(), "x", "text/plain"),
                ],
            )
            .expect(201)
            .s("sid")
        })
        .collect();
    let form: Vec<(&str, &str)> = sids.iter().map(|s| ("AssetVersions", s.as_str())).collect();
    let builds = format!("/v1/Services/{zs}/Builds");
    let r = api.post(&builds, &form).expect_error(400, 20001);
    assert!(r.s("message").contains("at most 1000"), "{}", r.text);
    let ok = api.post(&builds, &form[..1000]).expect(201);
    assert_eq!(
        ok.json["asset_versions"].as_array().expect("array").len(),
        1000
    );
    assert_eq!(api.wait_build(&zs, &ok.s("sid")), "completed");
}
