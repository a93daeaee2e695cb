//! Errors in Twilio's JSON: 20404, 20001, 401/20003, 409, 413, 405 — and what is tolerated:
//! unknown form fields, `Dependencies` wrapped in quotes.

mod support;

use support::{Part, Sigil, ACCOUNT_SID, AUTH_TOKEN};

const ZS_UNKNOWN: &str = "ZS0123456789abcdef0123456789abcdef";

#[test]
fn not_found_names_the_path_without_v1() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let r = api
        .get(&format!("/v1/Services/{ZS_UNKNOWN}"))
        .expect_error(404, 20404);
    assert_eq!(
        r.s("message"),
        format!("The requested resource /Services/{ZS_UNKNOWN} was not found")
    );
    let zs = api.service("known");
    for path in [
        "/v1/Nope".to_owned(),
        "/v2/Services".to_owned(),
        "/".to_owned(),
        "/v1/Services/no-such-name".to_owned(),
        format!("/v1/Services/{zs}/Widgets"),
        format!("/v1/Services/{zs}/Environments/ZE0123456789abcdef0123456789abcdef"),
        format!("/v1/Services/{zs}/Environments/not-a-sid"),
        format!("/v1/Services/{zs}/Builds/ZE0123456789abcdef0123456789abcdef"),
        format!("/v1/Services/{zs}/Assets/ZH0123456789abcdef0123456789abcdef/Versions"),
        format!("/v1/Services/{zs}/Functions/ZHzz/Versions/ZN1/Content"),
        format!("/v1/Services/{zs}/Assets/ZH0123456789abcdef0123456789abcdef/Versions/ZN0123456789abcdef0123456789abcdef/Content"),
    ] {
        api.get(&path).expect_error(404, 20404);
    }
    // A Function's SID does not reach it through /Assets (they share ZH).
    let zh = api
        .post(
            &format!("/v1/Services/{zs}/Functions"),
            &[("FriendlyName", "f")],
        )
        .expect(201)
        .s("sid");
    api.get(&format!("/v1/Services/{zs}/Assets/{zh}"))
        .expect_error(404, 20404);
}

#[test]
fn missing_and_bad_parameters_are_named() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let r = api
        .post("/v1/Services", &[("FriendlyName", "x")])
        .expect_error(400, 20001);
    assert_eq!(
        r.s("message"),
        "Missing required parameter UniqueName in the post body"
    );
    let r = api
        .post("/v1/Services", &[("UniqueName", "x")])
        .expect_error(400, 20001);
    assert!(r.s("message").contains("FriendlyName"));
    let r = api
        .post(
            "/v1/Services",
            &[
                ("UniqueName", "x"),
                ("FriendlyName", "x"),
                ("UiEditable", "maybe"),
            ],
        )
        .expect_error(400, 20001);
    assert!(r.s("message").contains("UiEditable"));
    let zs = api.service("params");
    let ze = api.environment(&zs, "prod", None).s("sid");
    for (path, form, named) in [
        (
            format!("/v1/Services/{zs}/Environments"),
            vec![],
            "UniqueName",
        ),
        (
            format!("/v1/Services/{zs}/Functions"),
            vec![],
            "FriendlyName",
        ),
        (
            format!("/v1/Services/{zs}/Assets"),
            vec![("FriendlyName", "")],
            "FriendlyName",
        ),
        (format!("/v1/Services/{zs}/Builds"), vec![], "AssetVersions"),
        (
            format!("/v1/Services/{zs}/Builds"),
            vec![("AssetVersions", "ZH0123456789abcdef0123456789abcdef")],
            "AssetVersions",
        ),
        (
            format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            vec![],
            "BuildSid",
        ),
        (
            format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            vec![("BuildSid", "ZB1")],
            "BuildSid",
        ),
        (
            format!("/v1/Services/{zs}/Environments/{ze}/Variables"),
            vec![("Value", "v")],
            "Key",
        ),
        (
            format!("/v1/Services/{zs}/Environments/{ze}/Variables"),
            vec![("Key", "k")],
            "Value",
        ),
    ] {
        let r = api.post(&path, &form).expect_error(400, 20001);
        assert!(
            r.s("message").contains(named),
            "{path} {form:?}: {}",
            r.text
        );
    }
    // A form value that is not UTF-8 is refused, not mangled.
    api.raw(
        "POST",
        "/v1/Services",
        Some("application/x-www-form-urlencoded"),
        b"UniqueName=a%FF&FriendlyName=b".to_vec(),
    )
    .expect_error(400, 20001);
    // A JSON body is not a form.
    api.raw(
        "POST",
        "/v1/Services",
        Some("application/json"),
        b"{}".to_vec(),
    )
    .expect_error(415, 20001);
}

#[test]
fn authentication_errors() {
    let sigil = Sigil::start();
    let api = sigil.client();
    for client in [
        api.anonymous(),
        api.with_creds(ACCOUNT_SID, "wrong-token"),
        api.with_creds("ACffffffffffffffffffffffffffffffff", AUTH_TOKEN),
        api.with_creds("not-a-sid", AUTH_TOKEN),
    ] {
        for path in ["/v1/Services", "/v1/Nope"] {
            let r = client.get(path).expect_error(401, 20003);
            assert_eq!(
                r.header("www-authenticate").as_deref(),
                Some("Basic realm=\"Twilio API\"")
            );
        }
    }
    let r = api.anonymous().get("/v1/Services").expect(401);
    assert_eq!(
        r.s("message"),
        "Authentication Error - No credentials provided"
    );
    let r = api.raw("GET", "/v1/Services", None, vec![]);
    assert_eq!(r.status, 200);
}

#[test]
fn conflicts() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("dupe");
    api.post(
        "/v1/Services",
        &[("UniqueName", "dupe"), ("FriendlyName", "x")],
    )
    .expect(409);
    // Names compare case-insensitively: they become host names.
    api.post(
        "/v1/Services",
        &[("UniqueName", "DUPE"), ("FriendlyName", "x")],
    )
    .expect(409);
    api.environment(&zs, "stage-environment", Some("stage"));
    let r = api
        .post(
            &format!("/v1/Services/{zs}/Environments"),
            &[("UniqueName", "stage-environment")],
        )
        .expect(409);
    assert_eq!(
        r.s("message"),
        "Environment with this UniqueName or DomainSuffix already exists."
    );
    api.post(
        &format!("/v1/Services/{zs}/Environments"),
        &[("UniqueName", "other"), ("DomainSuffix", "stage")],
    )
    .expect(409);
    // Only one environment without a suffix per service.
    api.environment(&zs, "production", None);
    api.post(
        &format!("/v1/Services/{zs}/Environments"),
        &[("UniqueName", "prod2")],
    )
    .expect(409);
    // Re-deploying the active build.
    let (_, av) = api.version(&zs, "Assets", "/a.txt", "public", b"a", "text/plain");
    let (zb, _) = api.build(&zs, &[&av], &[]);
    let ze = api
        .get(&format!("/v1/Services/{zs}/Environments"))
        .expect(200)
        .json["environments"][0]["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    let deps = format!("/v1/Services/{zs}/Environments/{ze}/Deployments");
    api.post(&deps, &[("BuildSid", &zb)]).expect(201);
    api.post(&deps, &[("BuildSid", &zb)]).expect(409);
    // A deployed build cannot be deleted.
    api.delete(&format!("/v1/Services/{zs}/Builds/{zb}"))
        .expect(409);
    // Duplicate variable keys.
    let vars = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    api.post(&vars, &[("Key", "A"), ("Value", "1")]).expect(201);
    let b = api
        .post(&vars, &[("Key", "B"), ("Value", "2")])
        .expect(201)
        .s("sid");
    api.post(&vars, &[("Key", "A"), ("Value", "3")]).expect(409);
    api.post(&format!("{vars}/{b}"), &[("Key", "A")])
        .expect(409);
}

#[test]
fn methods_a_route_lacks_get_405_with_allow() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("methods");
    let ze = api.environment(&zs, "prod", None).s("sid");
    for (method, path, allow) in [
        ("PUT", "/v1/Services".to_owned(), "GET, POST"),
        ("DELETE", "/v1/Services".to_owned(), "GET, POST"),
        ("PATCH", format!("/v1/Services/{zs}"), "GET, POST, DELETE"),
        (
            "POST",
            format!("/v1/Services/{zs}/Environments/{ze}"),
            "GET, DELETE",
        ),
        (
            "DELETE",
            format!("/v1/Services/{zs}/Environments/{ze}/Logs"),
            "GET",
        ),
        (
            "POST",
            format!("/v1/Services/{zs}/Builds/ZB0123456789abcdef0123456789abcdef/Status"),
            "GET",
        ),
    ] {
        let r = api
            .raw(
                method,
                &path,
                Some("application/x-www-form-urlencoded"),
                vec![],
            )
            .expect_error(405, 20004);
        assert_eq!(r.header("allow").as_deref(), Some(allow), "{method} {path}");
    }
}

#[test]
fn tolerated_inputs() {
    let sigil = Sigil::start();
    let api = sigil.client();
    // Unknown fields are ignored (the toolkit sends FriendlyName on Environment create).
    let zs = api
        .post(
            "/v1/Services",
            &[
                ("UniqueName", "tolerant"),
                ("FriendlyName", "t"),
                ("Whatever", "1"),
            ],
        )
        .expect(201)
        .s("sid");
    api.post(
        &format!("/v1/Services/{zs}/Environments"),
        &[
            ("UniqueName", "dev-environment"),
            ("DomainSuffix", "dev"),
            ("FriendlyName", "ignored"),
        ],
    )
    .expect(201);
    let (_, av) = api.version(&zs, "Assets", "/a", "public", b"a", "text/plain");
    let deps = r#"[{"name":"twilio","version":"3.29.2"},{"name":"@twilio/runtime-handler","version":"1.0.1"}]"#;
    for form_value in [deps.to_owned(), format!("\"{deps}\""), String::new()] {
        let b = api
            .post(
                &format!("/v1/Services/{zs}/Builds"),
                &[
                    ("AssetVersions", &av),
                    ("Dependencies", &form_value),
                    ("Runtime", "node24"),
                ],
            )
            .expect(201);
        let want = if form_value.is_empty() { 0 } else { 2 };
        assert_eq!(
            b.json["dependencies"].as_array().expect("array").len(),
            want
        );
        assert_eq!(b.s("runtime"), "node24");
    }
    api.post(
        &format!("/v1/Services/{zs}/Builds"),
        &[("AssetVersions", &av), ("Dependencies", "{not json")],
    )
    .expect_error(400, 20001);
}

#[test]
fn uploads_over_the_limit_get_413() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("big");
    let url = api.versions_url(&zs, "Assets");
    let upload = |size: usize, vis: &str| {
        api.upload(
            &url,
            vec![
                Part::text("Path", "/big.bin"),
                Part::text("Visibility", vis),
                Part::file(
                    "Content",
                    vec![7u8; size],
                    "big.bin",
                    "application/octet-stream",
                ),
            ],
        )
    };
    let mib = 1024 * 1024;
    upload(25 * mib, "public").expect(201);
    upload(25 * mib + 1, "public").expect_error(413, 20413);
    upload(10 * mib, "private").expect(201);
    upload(10 * mib + 1, "private").expect_error(413, 20413);
    // Nothing half-written was kept.
    let tmp = sigil.data().join("tmp");
    assert_eq!(std::fs::read_dir(tmp).expect("tmp").count(), 0);
    // A form body over 1 MiB.
    api.raw(
        "POST",
        "/v1/Services",
        Some("application/x-www-form-urlencoded"),
        vec![b'a'; 1024 * 1024 + 1],
    )
    .expect_error(413, 20413);
}

#[test]
fn malformed_uploads() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("uploads");
    let url = api.versions_url(&zs, "Assets");
    let content = || Part::file("Content", b"x".to_vec(), "x", "text/plain");
    for (parts, named) in [
        (vec![Part::text("Visibility", "public"), content()], "Path"),
        (vec![Part::text("Path", "/x"), content()], "Visibility"),
        (
            vec![Part::text("Path", "/x"), Part::text("Visibility", "public")],
            "Content",
        ),
        (
            vec![
                Part::text("Path", "/x"),
                Part::text("Path", "/y"),
                Part::text("Visibility", "public"),
                content(),
            ],
            "Path",
        ),
        (
            vec![
                Part::text("Path", "/x"),
                Part::text("Visibility", "secret"),
                content(),
            ],
            "Visibility",
        ),
        (
            vec![
                Part::text("Path", "/a b"),
                Part::text("Visibility", "public"),
                content(),
            ],
            "Path",
        ),
    ] {
        let r = api.upload(&url, parts).expect_error(400, 20001);
        assert!(r.s("message").contains(named), "{}", r.text);
    }
    // Not multipart at all, and multipart without a boundary.
    api.post(&url, &[("Path", "/x")]).expect_error(415, 20001);
    api.raw("POST", &url, Some("multipart/form-data"), b"--x--".to_vec())
        .expect_error(415, 20001);
    // Truncated body.
    api.raw(
        "POST",
        &url,
        Some("multipart/form-data; boundary=XyZ"),
        b"--XyZ\r\nContent-Disposition: form-data; name=\"Path\"\r\n\r\n/x\r\n--XyZ\r\nContent-Disp".to_vec(),
    )
    .expect_error(400, 20001);
}
