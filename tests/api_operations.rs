//! Every operation of CONTRACT.md §3 and both uploads, through a real socket, each response
//! validated against Twilio's spec by the support client.

mod support;

use regex::Regex;
use support::{Part, Sigil, ACCOUNT_SID};

fn sid_re(prefix: &str) -> Regex {
    Regex::new(&format!("^{prefix}[0-9a-f]{{32}}$")).expect("re")
}

#[test]
fn every_operation_end_to_end() {
    let sigil = Sigil::start_with(&["--public-api-url", "https://api.example.test/"]);
    let api = sigil.client();
    let base = "https://api.example.test/v1";

    // 2. Create Service (201), defaults.
    let svc = api
        .post(
            "/v1/Services",
            &[
                ("UniqueName", "my-app"),
                ("FriendlyName", "My App"),
                ("Unknown", "ignored"),
            ],
        )
        .expect(201);
    let zs = svc.s("sid");
    assert!(sid_re("ZS").is_match(&zs));
    assert_eq!(svc.s("account_sid"), ACCOUNT_SID);
    assert_eq!(svc.json["include_credentials"], true);
    assert_eq!(svc.json["ui_editable"], false);
    assert!(Regex::new(r"^my-app-\d{4}$")
        .expect("re")
        .is_match(&svc.s("domain_base")));
    assert_eq!(svc.s("url"), format!("{base}/Services/{zs}"));
    assert_eq!(
        svc.json["links"]["builds"],
        format!("{base}/Services/{zs}/Builds")
    );
    assert_eq!(svc.s("date_created"), svc.s("date_updated"));

    // 3. Fetch by SID and by unique_name; 4. update; 1. list.
    assert_eq!(
        api.get(&format!("/v1/Services/{zs}")).expect(200).json,
        svc.json
    );
    assert_eq!(api.get("/v1/Services/my-app").expect(200).s("sid"), zs);
    assert_eq!(api.get("/v1/Services/MY-APP").expect(200).s("sid"), zs);
    let upd = api
        .post(
            "/v1/Services/my-app",
            &[
                ("FriendlyName", "Renamed"),
                ("UiEditable", "true"),
                ("IncludeCredentials", "false"),
            ],
        )
        .expect(200);
    assert_eq!(upd.s("friendly_name"), "Renamed");
    assert_eq!(upd.json["ui_editable"], true);
    assert_eq!(upd.json["include_credentials"], false);
    assert_eq!(upd.s("unique_name"), "my-app");
    let list = api.get("/v1/Services").expect(200);
    assert_eq!(list.json["services"][0]["sid"], zs.as_str());
    assert_eq!(list.json["meta"]["key"], "services");
    assert_eq!(
        list.json["meta"]["url"],
        format!("{base}/Services?PageSize=50&Page=0")
    );

    // 7, 8, 6. Environments (nested paths take the unique_name too).
    let env = api.environment("my-app", "production", None);
    let ze = env.s("sid");
    assert!(env.json["domain_suffix"].is_null());
    assert!(env.json["build_sid"].is_null());
    assert_eq!(env.s("service_sid"), zs);
    let domain_base = svc.s("domain_base");
    assert_eq!(env.s("domain_name"), format!("{domain_base}.localhost"));
    let dev = api.environment(&zs, "dev-environment", Some("dev"));
    assert_eq!(dev.s("domain_name"), format!("{domain_base}-dev.localhost"));
    assert_eq!(dev.s("domain_suffix"), "dev");
    assert_eq!(
        api.get(&format!("/v1/Services/{zs}/Environments/{ze}"))
            .expect(200)
            .json,
        env.json
    );
    let envs = api
        .get(&format!("/v1/Services/{zs}/Environments"))
        .expect(200);
    assert_eq!(
        envs.json["environments"].as_array().expect("array").len(),
        2
    );

    // 11-13, 10. Functions; 20-22, 19. Assets.
    for (kind, key, link) in [
        ("Functions", "functions", "function_versions"),
        ("Assets", "assets", "asset_versions"),
    ] {
        let created = api
            .post(
                &format!("/v1/Services/{zs}/{kind}"),
                &[("FriendlyName", "first")],
            )
            .expect(201);
        let zh = created.s("sid");
        assert!(sid_re("ZH").is_match(&zh));
        assert_eq!(
            created.json["links"][link],
            format!("{base}/Services/{zs}/{kind}/{zh}/Versions")
        );
        assert_eq!(
            api.get(&format!("/v1/Services/{zs}/{kind}/{zh}"))
                .expect(200)
                .json,
            created.json
        );
        let upd = api
            .post(
                &format!("/v1/Services/{zs}/{kind}/{zh}"),
                &[("FriendlyName", "second")],
            )
            .expect(200);
        assert_eq!(upd.s("friendly_name"), "second");
        let l = api.get(&format!("/v1/Services/{zs}/{kind}")).expect(200);
        assert_eq!(l.json[key][0]["sid"], zh.as_str());
        // 14, 23. Delete: 204, then 404.
        api.delete(&format!("/v1/Services/{zs}/{kind}/{zh}"))
            .expect(204);
        api.get(&format!("/v1/Services/{zs}/{kind}/{zh}"))
            .expect_error(404, 20404);
    }

    // 16, 25. Uploads; 17, 26 fetch; 15, 24 list; 18 content.
    let js = b"exports.handler = (c, e, cb) => cb(null, 'hi \xc3\xa9');";
    let (fh, fv) = api.version(
        &zs,
        "Functions",
        "hello",
        "protected",
        js,
        "application/javascript",
    );
    let fver = api
        .get(&format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}"))
        .expect(200);
    assert_eq!(fver.s("path"), "/hello");
    assert_eq!(fver.s("visibility"), "protected");
    assert_eq!(fver.s("function_sid"), fh);
    assert_eq!(
        fver.json["links"]["function_version_content"],
        format!("{base}/Services/{zs}/Functions/{fh}/Versions/{fv}/Content")
    );
    let content = api
        .get(&format!(
            "/v1/Services/{zs}/Functions/{fh}/Versions/{fv}/Content"
        ))
        .expect(200);
    assert_eq!(content.s("content").as_bytes(), js);
    assert_eq!(content.s("sid"), fv);
    let fl = api
        .get(&format!("/v1/Services/{zs}/Functions/{fh}/Versions"))
        .expect(200);
    assert_eq!(fl.json["function_versions"][0]["sid"], fv.as_str());

    let (ah, av) = api.version(
        &zs,
        "Assets",
        "/assets/index.html",
        "public",
        b"<h1>hi</h1>",
        "text/html",
    );
    let aver = api
        .get(&format!("/v1/Services/{zs}/Assets/{ah}/Versions/{av}"))
        .expect(200);
    assert_eq!(aver.s("asset_sid"), ah);
    assert!(
        aver.json.get("links").is_none(),
        "asset versions have no links"
    );
    let al = api
        .get(&format!("/v1/Services/{zs}/Assets/{ah}/Versions"))
        .expect(200);
    assert_eq!(al.json["asset_versions"][0]["sid"], av.as_str());

    // 28, 29, 31, 27. Builds.
    let build = api
        .post(
            &format!("/v1/Services/{zs}/Builds"),
            &[
                ("AssetVersions", &av),
                ("FunctionVersions", &fv),
                ("Dependencies", r#"[{"name":"twilio","version":"3.29.2"}]"#),
                ("Runtime", "node22"),
            ],
        )
        .expect(201);
    let zb = build.s("sid");
    assert!(sid_re("ZB").is_match(&zb));
    assert_eq!(build.s("status"), "building");
    assert_eq!(build.json["asset_versions"][0]["visibility"], "PUBLIC");
    assert_eq!(build.json["asset_versions"][0]["asset_sid"], ah.as_str());
    assert_eq!(
        build.json["function_versions"][0]["visibility"],
        "PROTECTED"
    );
    assert_eq!(
        build.json["function_versions"][0]["function_sid"],
        fh.as_str()
    );
    assert_eq!(build.json["dependencies"][0]["name"], "twilio");
    assert_eq!(build.s("runtime"), "node22");
    // This Build installs its dependency with npm: on a fresh checkout, from the registry.
    assert_eq!(
        api.wait_build_within(&zs, &zb, std::time::Duration::from_secs(300)),
        "completed"
    );
    let fetched = api
        .get(&format!("/v1/Services/{zs}/Builds/{zb}"))
        .expect(200);
    assert_eq!(fetched.s("status"), "completed");
    assert_eq!(fetched.json["asset_versions"], build.json["asset_versions"]);
    let status = api
        .get(&format!("/v1/Services/{zs}/Builds/{zb}/Status"))
        .expect(200);
    assert_eq!(
        status.s("url"),
        format!("{base}/Services/{zs}/Builds/{zb}/Status")
    );
    let bl = api.get(&format!("/v1/Services/{zs}/Builds")).expect(200);
    assert_eq!(bl.json["builds"][0]["sid"], zb.as_str());

    // 33, 34, 32. Deployments.
    let dep = api
        .post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            &[("BuildSid", &zb), ("IsPlugin", "false")],
        )
        .expect(201);
    let zd = dep.s("sid");
    assert!(sid_re("ZD").is_match(&zd));
    assert_eq!(dep.s("build_sid"), zb);
    assert_eq!(dep.s("environment_sid"), ze);
    assert_eq!(
        api.get(&format!(
            "/v1/Services/{zs}/Environments/{ze}/Deployments/{zd}"
        ))
        .expect(200)
        .json,
        dep.json
    );
    let dl = api
        .get(&format!("/v1/Services/{zs}/Environments/{ze}/Deployments"))
        .expect(200);
    assert_eq!(dl.json["deployments"][0]["sid"], zd.as_str());
    let env_now = api
        .get(&format!("/v1/Services/{zs}/Environments/{ze}"))
        .expect(200);
    assert_eq!(env_now.s("build_sid"), zb);

    // 36-38, 35, 39. Variables.
    let vpath = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    let var = api
        .post(&vpath, &[("Key", "API_KEY"), ("Value", "s3cret")])
        .expect(201);
    let zv = var.s("sid");
    assert!(sid_re("ZV").is_match(&zv));
    assert_eq!(var.s("value"), "s3cret");
    assert_eq!(api.get(&format!("{vpath}/{zv}")).expect(200).json, var.json);
    let vu = api
        .post(&format!("{vpath}/{zv}"), &[("Value", "other")])
        .expect(200);
    assert_eq!(
        (vu.s("key"), vu.s("value")),
        ("API_KEY".into(), "other".into())
    );
    let vk = api
        .post(&format!("{vpath}/{zv}"), &[("Key", "RENAMED")])
        .expect(200);
    assert_eq!(
        (vk.s("key"), vk.s("value")),
        ("RENAMED".into(), "other".into())
    );
    assert_eq!(
        api.get(&vpath).expect(200).json["variables"][0]["key"],
        "RENAMED"
    );
    api.delete(&format!("{vpath}/{zv}")).expect(204);
    api.get(&format!("{vpath}/{zv}")).expect_error(404, 20404);

    // 40, 41. Logs (filled by the edge; empty here, the list and its filters work).
    let logs = api
        .get(&format!(
            "/v1/Services/{zs}/Environments/{ze}/Logs?StartDate=2020-01-01T00:00:00.000Z&EndDate=2030-01-01T00:00:00Z&FunctionSid={fh}"
        ))
        .expect(200);
    assert_eq!(logs.json["meta"]["key"], "logs");
    assert_eq!(
        logs.json["meta"]["url"],
        format!("{base}/Services/{zs}/Environments/{ze}/Logs?StartDate=2020-01-01T00%3A00%3A00.000Z&EndDate=2030-01-01T00%3A00%3A00Z&FunctionSid={fh}&PageSize=50&Page=0")
    );
    api.get(&format!(
        "/v1/Services/{zs}/Environments/{ze}/Logs/NO0123456789abcdef0123456789abcdef"
    ))
    .expect_error(404, 20404);

    // 30. Delete a Build that is not deployed; 9. delete an Environment; 5. delete the Service.
    let (_, av2) = api.version(&zs, "Assets", "/other.txt", "public", b"x", "text/plain");
    let (zb2, _) = api.build(&zs, &[&av2], &[]);
    api.delete(&format!("/v1/Services/{zs}/Builds/{zb2}"))
        .expect(204);
    api.get(&format!("/v1/Services/{zs}/Builds/{zb2}"))
        .expect_error(404, 20404);
    let zdev = dev.s("sid");
    api.delete(&format!("/v1/Services/{zs}/Environments/{zdev}"))
        .expect(204);
    api.get(&format!("/v1/Services/{zs}/Environments/{zdev}"))
        .expect_error(404, 20404);
    api.delete(&format!("/v1/Services/{zs}")).expect(204);
    api.get(&format!("/v1/Services/{zs}"))
        .expect_error(404, 20404);
    api.get(&format!("/v1/Services/{zs}/Environments/{ze}"))
        .expect_error(404, 20404);
    api.get("/v1/Services/my-app").expect_error(404, 20404);
    // The unique name is free again.
    api.service("my-app");
}

#[test]
fn healthz_and_json_headers() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let h = api.anonymous().get("/healthz").expect(200);
    assert_eq!(h.json["status"], "ok");
    let r = api.get("/v1/Services").expect(200);
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json; charset=utf-8")
    );
    assert!(r
        .header("twilio-request-id")
        .is_some_and(|v| sid_re("RQ").is_match(&v)));
    // The default public base is the API listener itself: every url is fetchable verbatim.
    let zs = api.service("fetchable");
    let svc = api.get(&format!("/v1/Services/{zs}")).expect(200);
    assert!(svc.s("url").starts_with(&sigil.api));
    assert_eq!(api.get(&svc.s("url")).expect(200).s("sid"), zs);
    for link in ["environments", "functions", "assets", "builds"] {
        let l = svc.json["links"][link].as_str().expect("link").to_owned();
        api.get(&l).expect(200);
    }
    // CORS preflight for browser-based tools.
    let pre = api
        .anonymous()
        .raw("OPTIONS", "/v1/Services", None, vec![])
        .expect(204);
    assert!(pre.header("access-control-allow-methods").is_some());
}

#[test]
fn upload_parts_in_any_order_and_content_type_kept() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("order");
    let versions = api.versions_url(&zs, "Assets");
    let r = api
        .upload(
            &versions,
            vec![
                Part::file(
                    "Content",
                    vec![0, 1, 2, 255],
                    "x.bin",
                    "application/x-custom",
                ),
                Part::text("Visibility", "Private"),
                Part::text("Path", "x.bin"),
            ],
        )
        .expect(201);
    assert_eq!(r.s("path"), "/x.bin");
    assert_eq!(r.s("visibility"), "private");
}

#[test]
#[should_panic(expected = "property extra is not in the spec")]
fn the_spec_validator_rejects_extra_fields() {
    let mut body = serde_json::json!({
        "sid": "ZV0123456789abcdef0123456789abcdef",
        "account_sid": ACCOUNT_SID,
        "service_sid": "ZS0123456789abcdef0123456789abcdef",
        "environment_sid": "ZE0123456789abcdef0123456789abcdef",
        "key": "k", "value": "v",
        "date_created": "2018-11-10T20:00:00Z", "date_updated": "2018-11-10T20:00:00Z",
        "url": "https://x/v1/Services/ZS0123456789abcdef0123456789abcdef/Environments/ZE0123456789abcdef0123456789abcdef/Variables/ZV0123456789abcdef0123456789abcdef"
    });
    let path = "/v1/Services/ZS0123456789abcdef0123456789abcdef/Environments/ZE0123456789abcdef0123456789abcdef/Variables/ZV0123456789abcdef0123456789abcdef";
    support::spec::validate("GET", path, 200, &body);
    body["extra"] = serde_json::json!(1);
    support::spec::validate("GET", path, 200, &body);
}

#[test]
#[should_panic(expected = "is not YYYY-MM-DDTHH:MM:SSZ")]
fn the_spec_validator_checks_formats() {
    let body = serde_json::json!({
        "sid": "ZS0123456789abcdef0123456789abcdef", "account_sid": ACCOUNT_SID,
        "friendly_name": "f", "unique_name": "u", "include_credentials": true,
        "ui_editable": false, "domain_base": "u-1234",
        "date_created": "2018-11-10T20:00:00.000Z", "date_updated": "2018-11-10T20:00:00Z",
        "url": "https://x/v1/Services/ZS0123456789abcdef0123456789abcdef", "links": {}
    });
    support::spec::validate(
        "GET",
        "/v1/Services/ZS0123456789abcdef0123456789abcdef",
        200,
        &body,
    );
}
