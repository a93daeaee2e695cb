//! `sigil copy-store`: a single-node installation moved to PostgreSQL and S3 — accounts,
//! tokens, API keys, every record with its SID, all content, the active Deployments — then
//! served by a replica that never saw the data directory; run twice, the second copies
//! nothing.

mod support;

use std::process::Command;
use std::time::Duration;

use support::postgres::Postgres;
use support::s3::{BUCKET, S3};
use support::{run_cli, twilio_signature, Sigil, ACCOUNT_SID, AUTH_TOKEN};

#[test]
fn a_single_node_installation_moves_to_the_shared_stores() {
    // The embedded stores, whatever the suite runs on.
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let mut old = Sigil::spawn_command(
        {
            let mut cmd = Sigil::embedded_command(&data, &[]);
            cmd.env("SIGIL_ACCOUNT_SID", ACCOUNT_SID)
                .env("SIGIL_AUTH_TOKEN", AUTH_TOKEN);
            cmd
        },
        &data,
    );
    let api = old.client();
    let site = api.deploy_site(
        "moving",
        &[
            ("/index.html", "public", b"<h1>moved</h1>", "text/html"),
            ("/hook.xml", "protected", b"<Response/>", "text/xml"),
        ],
    );
    let (code, key, err) = run_cli(
        Command::new(env!("CARGO_BIN_EXE_sigil"))
            .args(["account", "--data"])
            .arg(&data)
            .args(["key", "create", "--account", ACCOUNT_SID])
            .env_remove("SIGIL_METADATA"),
    );
    assert_eq!(code, 0, "{err}");
    let field = |name: &str| {
        key.lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("key field")
            .trim()
            .to_owned()
    };
    let (key_sid, key_secret) = (field("api_key_sid"), field("api_key_secret"));
    api.post(
        &format!(
            "/v1/Services/{}/Environments/{}/Variables",
            site.svc, site.env
        ),
        &[("Key", "GREETING"), ("Value", "hello")],
    )
    .expect(201);
    // As JSON text, with the API's own address (in every url) left out.
    let same = |v: &serde_json::Value, api_base: &str| v.to_string().replace(api_base, "API");
    let services_before = same(
        &api.get("/v1/Services").expect(200).json["services"],
        &old.api,
    );
    let deployments = format!(
        "/v1/Services/{}/Environments/{}/Deployments",
        site.svc, site.env
    );
    let deployments_before = same(
        &api.get(&deployments).expect(200).json["deployments"],
        &old.api,
    );
    old.sigterm();
    old.wait_exit(Duration::from_secs(15)).expect("stopped");

    let (pg, s3) = (Postgres::shared(), S3::shared());
    let metadata = pg.fresh_database();
    let prefix = metadata.rsplit('/').next().expect("name").to_owned();
    let blobs = format!("s3://{BUCKET}/{prefix}");
    let copy = || {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
        cmd.args(["copy-store", "--data"])
            .arg(&data)
            .args(["--metadata", &metadata, "--blobs", &blobs])
            .envs(s3.env())
            .env_remove("SIGIL_METADATA")
            .env_remove("SIGIL_BLOBS");
        run_cli(&mut cmd)
    };
    let (code, out, err) = copy();
    assert_eq!(code, 0, "{out}{err}");
    for line in [
        "records: 1 account",
        "records: 1 api_key",
        "records: 1 service",
        "records: 1 environment",
        "records: 1 build",
        "records: 1 deployment",
        "records: 1 variable",
        "records already there: 0",
    ] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    assert!(
        out.contains("blobs: ") && !out.contains("blobs: 0 uploaded"),
        "{out}"
    );
    assert!(!out.contains(support::postgres::PASSWORD), "{out}");
    // Again: nothing left to copy.
    let (code, again, err) = copy();
    assert_eq!(code, 0, "{again}{err}");
    assert!(again.contains("blobs: 0 uploaded"), "{again}");
    assert!(!again.contains("records: "), "{again}");

    // A replica that never saw the data directory serves it all, with the same SIDs and
    // credentials (no account from the environment: the copied one is there).
    let fresh = tempfile::tempdir().expect("dir");
    let fresh_data = fresh.path().join("data");
    let mut cmd = Sigil::embedded_command(&fresh_data, &[]);
    cmd.args(["--metadata", &metadata, "--blobs", &blobs])
        .envs(s3.env());
    let replica = Sigil::spawn_command(cmd, &fresh_data);
    assert!(
        !replica.banner.iter().any(|l| l.contains("auth token")),
        "{:?}",
        replica.banner
    );
    let api = replica.client();
    assert_eq!(
        same(
            &api.get("/v1/Services").expect(200).json["services"],
            &replica.api
        ),
        services_before
    );
    assert_eq!(
        same(
            &api.get(&deployments).expect(200).json["deployments"],
            &replica.api
        ),
        deployments_before
    );
    api.with_creds(&key_sid, &key_secret)
        .get("/v1/Services")
        .expect(200);
    let edge = replica.edge(&[&site.domain]);
    assert_eq!(
        edge.get(&edge.url(&site.domain, "/index.html"), &[])
            .expect(200)
            .body,
        b"<h1>moved</h1>"
    );
    let url = edge.url(&site.domain, "/hook.xml");
    edge.get(&url, &[]).expect(403);
    let sig = twilio_signature(AUTH_TOKEN, &url, &[]);
    edge.get(&url, &[("X-Twilio-Signature", &sig)]).expect(200);
}
