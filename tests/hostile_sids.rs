//! Hostile input: invalid SIDs in API paths, form fields, query filters and credentials. A SID
//! that is malformed (short, long, not hex, another prefix, NUL, non-ASCII), of another kind,
//! or of another Service is a 404 in a path and a 400 in a parameter — Twilio JSON, never a
//! 5xx and never another record. Upper-case hex is the same SID (Twilio's patterns accept it).

mod hostile;
mod support;

use hostile::{api_request, assert_twilio_error, exchange, Fixture};

#[test]
fn invalid_sids_are_404_in_paths_and_400_in_parameters() {
    let fx = Fixture::start(&[]);
    let api = fx.sigil.client();
    let svc = fx.site.svc.clone();
    let env = fx.site.env.clone();
    let first = |path: &str, key: &str| -> String {
        api.get(path).expect(200).json[key][0]["sid"]
            .as_str()
            .expect("a sid")
            .to_owned()
    };
    let build = first(&format!("/v1/Services/{svc}/Builds"), "builds");
    let deployment = first(
        &format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
        "deployments",
    );
    let asset = first(&format!("/v1/Services/{svc}/Assets"), "assets");
    let version = first(
        &format!("/v1/Services/{svc}/Assets/{asset}/Versions"),
        "asset_versions",
    );
    let other_env = fx.other.env.clone();
    let other_build = first(&format!("/v1/Services/{}/Builds", fx.other.svc), "builds");

    let bad_ids = |prefix: &str| -> Vec<String> {
        vec![
            prefix.to_owned(),
            format!("{prefix}0123"),
            format!("{prefix}{}", "0".repeat(31)),
            format!("{prefix}{}", "0".repeat(33)),
            format!("{prefix}{}", "g".repeat(32)),
            format!("{prefix}{}", "0".repeat(1000)),
            format!("{}{}", prefix.to_ascii_lowercase(), "0".repeat(32)),
            format!("XX{}", "0".repeat(32)),
            format!("{prefix}{}%00", "0".repeat(31)),
            format!("{prefix}{}%20", "0".repeat(32)),
            format!("{prefix}%C3%A9{}", "0".repeat(31)),
            format!("{prefix}{}", "0".repeat(32)), // well-formed, but no such record
            format!("%20{prefix}{}", "0".repeat(32)),
            "null".to_owned(),
            "undefined".to_owned(),
            "-1".to_owned(),
        ]
    };
    // Each path template with the id slot marked `{}`, the prefix that belongs there, SIDs of
    // other kinds or other Services that must not resolve there, and whether the route has
    // DELETE (GET-only routes answer DELETE with 405 before any lookup).
    let templates: Vec<(String, &str, Vec<String>, bool)> = vec![
        (
            "/v1/Services/{}".into(),
            "ZS",
            vec![env.clone(), build.clone()],
            true,
        ),
        (
            format!("/v1/Services/{svc}/Environments/{{}}"),
            "ZE",
            vec![svc.clone(), other_env.clone(), build.clone()],
            true,
        ),
        (
            format!("/v1/Services/{svc}/Builds/{{}}"),
            "ZB",
            vec![env.clone(), other_build.clone(), version.clone()],
            true,
        ),
        (
            format!("/v1/Services/{svc}/Builds/{{}}/Status"),
            "ZB",
            vec![other_build.clone(), deployment.clone()],
            false,
        ),
        (
            format!("/v1/Services/{svc}/Assets/{{}}"),
            "ZH",
            vec![version.clone(), build.clone()],
            true,
        ),
        (
            format!("/v1/Services/{svc}/Functions/{{}}"),
            "ZH",
            vec![asset.clone()],
            true,
        ), // an Asset is no Function
        (
            format!("/v1/Services/{svc}/Assets/{asset}/Versions/{{}}"),
            "ZN",
            vec![asset.clone(), build.clone()],
            false,
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments/{{}}"),
            "ZD",
            vec![build.clone(), env.clone()],
            false,
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Variables/{{}}"),
            "ZV",
            vec![deployment.clone()],
            true,
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Logs/{{}}"),
            "NO",
            vec![deployment.clone()],
            false,
        ),
        // Another Service's Environment under this Service, and the reverse.
        (
            format!("/v1/Services/{svc}/Environments/{other_env}/Deployments"),
            "",
            vec![],
            false,
        ),
        (
            format!("/v1/Services/{}/Environments/{env}", fx.other.svc),
            "",
            vec![],
            true,
        ),
    ];
    for (template, prefix, wrong_kind, deletable) in &templates {
        let ids: Vec<String> = if prefix.is_empty() {
            vec![String::new()]
        } else {
            bad_ids(prefix)
                .into_iter()
                .chain(wrong_kind.iter().cloned())
                .collect()
        };
        for id in &ids {
            let path = template.replace("{}", id);
            let methods: &[&str] = if *deletable {
                &["GET", "DELETE"]
            } else {
                &["GET"]
            };
            for method in methods {
                let what = format!("API {method} {path}");
                let x = exchange(fx.api(), &api_request(method, path.as_bytes(), &[], b""));
                assert_eq!(assert_twilio_error(x.only(), 404, &what), 20404, "{what}");
            }
        }
    }
    // Nothing was deleted by any of those DELETEs.
    api.get(&format!("/v1/Services/{svc}")).expect(200);
    api.get(&format!("/v1/Services/{svc}/Environments/{env}"))
        .expect(200);
    api.get(&format!("/v1/Services/{svc}/Builds/{build}"))
        .expect(200);
    api.get(&format!("/v1/Services/{svc}/Assets/{asset}"))
        .expect(200);

    // Upper-case hex names the same record; so does a percent-encoded SID.
    let upper = format!("ZS{}", svc[2..].to_ascii_uppercase());
    let r = api.get(&format!("/v1/Services/{upper}")).expect(200);
    assert_eq!(r.s("sid"), svc);
    let encoded: String = svc.bytes().map(|b| format!("%{b:02X}")).collect();
    let x = exchange(
        fx.api(),
        &api_request(
            "GET",
            format!("/v1/Services/{encoded}").as_bytes(),
            &[],
            b"",
        ),
    );
    x.expect(200, "API GET a percent-encoded Service SID");

    // SIDs in parameters: 400 / 20001.
    let zeros = "0".repeat(32);
    let form = "Content-Type: application/x-www-form-urlencoded\r\n";
    let form_cases: Vec<(String, String)> = vec![
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            "BuildSid=garbage".into(),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid=ZB{}", &zeros[..31]),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid=ZB{}", "z".repeat(32)),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid=ZB{zeros}"),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid={env}"),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid={other_build}"),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            format!("BuildSid=ZB{}%00", &zeros[..31]),
        ),
        (
            format!("/v1/Services/{svc}/Environments/{env}/Deployments"),
            "BuildSid=ZB%C3%A9".into(),
        ),
        (
            format!("/v1/Services/{svc}/Builds"),
            "AssetVersions=garbage".into(),
        ),
        (
            format!("/v1/Services/{svc}/Builds"),
            format!("AssetVersions=ZN{zeros}"),
        ),
        (
            format!("/v1/Services/{svc}/Builds"),
            format!("AssetVersions={build}"),
        ),
        (
            format!("/v1/Services/{svc}/Builds"),
            format!("FunctionVersions={version}"),
        ), // an Asset Version
        (
            format!("/v1/Services/{svc}/Builds"),
            format!("AssetVersions={version}&AssetVersions=ZN{}", "x".repeat(32)),
        ),
    ];
    for (path, body) in &form_cases {
        let what = format!("API POST {path} {body}");
        let x = exchange(
            fx.api(),
            &api_request("POST", path.as_bytes(), &[form], body.as_bytes()),
        );
        assert_eq!(assert_twilio_error(x.only(), 400, &what), 20001, "{what}");
    }
    for query in [
        "FunctionSid=garbage",
        "FunctionSid=ZN00000000000000000000000000000000",
        "PageToken=garbage",
        "PageToken=PA",
        "PageToken=PAx",
        "PageToken=PA99999999999999999999999",
    ] {
        let path = format!("/v1/Services/{svc}/Environments/{env}/Logs?{query}");
        let what = format!("API GET {path}");
        let x = exchange(fx.api(), &api_request("GET", path.as_bytes(), &[], b""));
        assert_eq!(assert_twilio_error(x.only(), 400, &what), 20001, "{what}");
    }

    // SIDs as credentials: 401 / 20003.
    use base64::Engine;
    for user in [
        "AC0123".to_owned(),
        format!("AC{}", "g".repeat(32)),
        format!("ac{}", &support::ACCOUNT_SID[2..]),
        svc.clone(),
        format!("SK{zeros}"),
        format!("AC{zeros}"),
        format!("{}\0", support::ACCOUNT_SID),
    ] {
        let creds = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", support::AUTH_TOKEN));
        let req = format!("GET /v1/Services HTTP/1.1\r\nHost: api\r\nAuthorization: Basic {creds}\r\nConnection: close\r\n\r\n");
        let what = format!("API as {user:?}");
        let x = exchange(fx.api(), req.as_bytes());
        assert_eq!(assert_twilio_error(x.only(), 401, &what), 20003, "{what}");
    }

    fx.assert_still_serving();
}
