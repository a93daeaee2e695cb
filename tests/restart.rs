//! Durability: a 2xx means the data survives `kill -9` right after it; a restart serves
//! everything that was there.

mod support;

use support::Sigil;

#[test]
fn everything_survives_kill_9() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let zs = api.service("durable");
    let ze = api.environment(&zs, "prod", Some("prod")).s("sid");
    let code = b"exports.handler = () => 'durable';";
    let (fh, fv) = api.version(
        &zs,
        "Functions",
        "/fn",
        "protected",
        code,
        "application/javascript",
    );
    let (_, av) = api.version(
        &zs,
        "Assets",
        "/index.html",
        "public",
        b"<p>hi</p>",
        "text/html",
    );
    let (zb, _) = api.build(&zs, &[&av], &[&fv]);
    let zd = api
        .post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            &[("BuildSid", &zb)],
        )
        .expect(201)
        .s("sid");
    let vars = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    let zv = api
        .post(&vars, &[("Key", "K"), ("Value", "V")])
        .expect(201)
        .s("sid");
    let paths = [
        format!("/v1/Services/{zs}"),
        format!("/v1/Services/{zs}/Environments/{ze}"),
        format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}"),
        format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}/Content"),
        format!("/v1/Services/{zs}/Builds/{zb}"),
        format!("/v1/Services/{zs}/Environments/{ze}/Deployments/{zd}"),
        format!("{vars}/{zv}"),
        format!("/v1/Services/{zs}/Builds"),
    ];
    let before: Vec<_> = paths.iter().map(|p| api.get(p).expect(200).json).collect();

    let data = sigil.data().to_owned();
    let dir = sigil.kill9();
    let again = Sigil::start_in(&data, &[], true);
    let api2 = again.client();
    for (p, b) in paths.iter().zip(&before) {
        let mut after = api2.get(p).expect(200).json;
        // Only the host:port of the absolute URLs differs between the two runs.
        let text = after
            .to_string()
            .replace(&again.api, &sigil_api_placeholder());
        after = serde_json::from_str(&text).expect("json");
        let b = serde_json::from_str::<serde_json::Value>(
            &b.to_string().replace(&api.base, &sigil_api_placeholder()),
        )
        .expect("json");
        assert_eq!(after, b, "{p}");
    }
    assert_eq!(
        api2.get(&format!("/v1/Services/{zs}/Environments/{ze}"))
            .expect(200)
            .s("build_sid"),
        zb
    );
    drop(again);
    drop(dir);
}

fn sigil_api_placeholder() -> String {
    "http://API".to_owned()
}

#[test]
fn each_acknowledged_write_survives_an_immediate_kill() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut expected: Vec<String> = Vec::new();
    let mut sigil = Sigil::start_in(&data, &[], true);
    let zs = sigil.client().service("acks");
    let ze = sigil.client().environment(&zs, "prod", None).s("sid");
    for round in 0..6 {
        let api = sigil.client();
        // Check everything acknowledged before the last kill is there.
        for path in &expected {
            api.get(path).expect(200);
        }
        let path = match round % 3 {
            0 => {
                let zv = api
                    .post(
                        &format!("/v1/Services/{zs}/Environments/{ze}/Variables"),
                        &[("Key", &format!("K{round}")), ("Value", "v")],
                    )
                    .expect(201)
                    .s("sid");
                format!("/v1/Services/{zs}/Environments/{ze}/Variables/{zv}")
            }
            1 => {
                let content = format!("round {round}");
                let (fh, fv) = api.version(
                    &zs,
                    "Functions",
                    "/f",
                    "public",
                    content.as_bytes(),
                    "text/plain",
                );
                format!("/v1/Services/{zs}/Functions/{fh}/Versions/{fv}/Content")
            }
            _ => {
                let (_, av) = api.version(&zs, "Assets", "/a", "public", b"a", "text/plain");
                let zb = api
                    .post(
                        &format!("/v1/Services/{zs}/Builds"),
                        &[("AssetVersions", &av)],
                    )
                    .expect(201)
                    .s("sid");
                format!("/v1/Services/{zs}/Builds/{zb}")
            }
        };
        expected.push(path);
        sigil.kill9();
        sigil = Sigil::start_in(&data, &[], true);
    }
    let api = sigil.client();
    for path in &expected {
        let r = api.get(path).expect(200);
        if path.ends_with("/Content") {
            assert!(r.s("content").starts_with("round "));
        }
    }
    // Builds interrupted while building are finished after the restart.
    for path in expected.iter().filter(|p| p.contains("/Builds/")) {
        let zb = path.rsplit('/').next().expect("sid");
        assert_eq!(api.wait_build(&zs, zb), "completed");
    }
}
