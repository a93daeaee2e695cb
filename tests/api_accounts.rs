//! Accounts: the first-start account, `sigil account …` while the server runs, API keys,
//! token rotation, and isolation — another account's credentials never reach a resource.

mod support;

use support::{Api, Sigil, ACCOUNT_SID};

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .to_owned()
}

#[test]
fn first_start_prints_credentials_once() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let first = Sigil::start_in(&data, &[], false);
    let banner = first.banner.join("\n");
    let sid = banner
        .lines()
        .find_map(|l| l.strip_prefix("sigil: created account "))
        .expect("account printed")
        .to_owned();
    let token = banner
        .lines()
        .find_map(|l| l.strip_prefix("sigil: auth token "))
        .and_then(|l| l.split(' ').next())
        .expect("token printed")
        .to_owned();
    let api = Api::new(&first.api, Some((&sid, &token)));
    api.service("mine");
    drop(first);
    let second = Sigil::start_in(&data, &[], false);
    assert!(
        !second.banner.join("\n").contains(&token),
        "the token is printed only once"
    );
    let api = Api::new(&second.api, Some((&sid, &token)));
    api.get("/v1/Services/mine").expect(200);
}

#[test]
fn accounts_are_isolated() {
    let sigil = Sigil::start();
    let mine = sigil.client();
    // Created while the server runs, on the same data directory.
    let out = sigil.account_cli(&["create", "--friendly-name", "other"]);
    let theirs = mine.with_creds(&field(&out, "account_sid"), &field(&out, "auth_token"));
    assert!(sigil.account_cli(&["list"]).contains(ACCOUNT_SID));

    let zs = mine.service("shared-name");
    let ze = mine.environment(&zs, "prod", None).s("sid");
    let (ah, av) = mine.version(&zs, "Assets", "/a", "public", b"a", "text/plain");
    let (zb, _) = mine.build(&zs, &[&av], &[]);
    let vars = format!("/v1/Services/{zs}/Environments/{ze}/Variables");
    let zv = mine
        .post(&vars, &[("Key", "K"), ("Value", "secret")])
        .expect(201)
        .s("sid");

    for path in [
        format!("/v1/Services/{zs}"),
        "/v1/Services/shared-name".to_owned(),
        format!("/v1/Services/{zs}/Environments"),
        format!("/v1/Services/{zs}/Environments/{ze}"),
        format!("/v1/Services/{zs}/Assets/{ah}"),
        format!("/v1/Services/{zs}/Assets/{ah}/Versions/{av}"),
        format!("/v1/Services/{zs}/Builds/{zb}"),
        format!("{vars}/{zv}"),
    ] {
        let r = theirs.get(&path).expect_error(404, 20404);
        assert!(!r.text.contains("secret"));
        // DELETE: 404 where the route has it, 405 where it does not; never 204.
        let d = theirs.delete(&path);
        assert!(d.status == 404 || d.status == 405, "{path}: {}", d.text);
    }
    theirs
        .post(&format!("/v1/Services/{zs}"), &[("FriendlyName", "hijack")])
        .expect_error(404, 20404);
    theirs
        .post(
            &format!("/v1/Services/{zs}/Environments/{ze}/Deployments"),
            &[("BuildSid", &zb)],
        )
        .expect_error(404, 20404);
    assert_eq!(
        theirs.get("/v1/Services").expect(200).json["services"],
        serde_json::json!([])
    );
    // Unique names are per account; the other account may use the same one.
    let tzs = theirs.service("shared-name");
    // And may not build with someone else's versions.
    theirs
        .post(
            &format!("/v1/Services/{tzs}/Builds"),
            &[("AssetVersions", &av)],
        )
        .expect_error(400, 20001);
    // Nothing of ours changed.
    assert_eq!(
        mine.get(&format!("/v1/Services/{zs}"))
            .expect(200)
            .s("friendly_name"),
        "shared-name"
    );
    assert_eq!(
        mine.get(&format!("{vars}/{zv}")).expect(200).s("value"),
        "secret"
    );
}

#[test]
fn api_keys_and_token_rotation() {
    let sigil = Sigil::start();
    let out = sigil.account_cli(&["create"]);
    let (sid, token) = (field(&out, "account_sid"), field(&out, "auth_token"));
    let api = sigil.client().with_creds(&sid, &token);
    api.service("rotating");

    // API key: SK + secret authenticates as the account.
    let key = sigil.account_cli(&["key", "create", "--account", &sid]);
    let (sk, secret) = (field(&key, "api_key_sid"), field(&key, "api_key_secret"));
    assert!(sk.starts_with("SK") && sk.len() == 34);
    let by_key = api.with_creds(&sk, &secret);
    assert_eq!(
        by_key
            .get("/v1/Services/rotating")
            .expect(200)
            .s("account_sid"),
        sid
    );
    api.with_creds(&sk, &token)
        .get("/v1/Services")
        .expect_error(401, 20003);

    // Secondary token: both work; promote: only the new one; remove-secondary.
    let sec = field(
        &sigil.account_cli(&["token", "secondary", "--account", &sid]),
        "secondary_auth_token",
    );
    api.get("/v1/Services").expect(200);
    api.with_creds(&sid, &sec).get("/v1/Services").expect(200);
    sigil.account_cli(&["token", "promote", "--account", &sid]);
    api.get("/v1/Services").expect_error(401, 20003);
    api.with_creds(&sid, &sec).get("/v1/Services").expect(200);
    let sec2 = field(
        &sigil.account_cli(&["token", "secondary", "--account", &sid]),
        "secondary_auth_token",
    );
    api.with_creds(&sid, &sec2).get("/v1/Services").expect(200);
    sigil.account_cli(&["token", "remove-secondary", "--account", &sid]);
    api.with_creds(&sid, &sec2)
        .get("/v1/Services")
        .expect_error(401, 20003);
    api.with_creds(&sid, &sec).get("/v1/Services").expect(200);

    sigil.account_cli(&["key", "delete", "--account", &sid, "--key", &sk]);
    by_key.get("/v1/Services").expect_error(401, 20003);
}
