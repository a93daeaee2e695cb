//! The Logs resource lists the request-log lines the edge writes through `LogSink`:
//! in-process (the edge is another module of the same binary), filters and pages included.

mod support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use sigil::control::ControlPlane;
use sigil::logsink::{LogData, LogEntry, LogSink};
use sigil::store::{BlobStore, Metadata, SqliteStore};
use support::{ACCOUNT_SID, AUTH_TOKEN};

struct Harness {
    cp: Arc<ControlPlane>,
    auth: String,
}

impl Harness {
    async fn call(&self, method: &str, uri: &str, form: &str) -> (u16, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", &self.auth)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(form.to_owned())))
            .expect("request");
        let resp = self.cp.handle(req).await;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let json: Value = serde_json::from_slice(&body).expect("json");
        support::spec::validate(method, uri.split('?').next().expect("path"), status, &json);
        (status, json)
    }
}

fn entry(env: &str, svc: &str, function: Option<&str>, created: i64, message: &str) -> LogEntry {
    LogEntry {
        account_sid: ACCOUNT_SID.into(),
        environment_sid: env.into(),
        created,
        data: LogData {
            service_sid: svc.into(),
            build_sid: "ZB0123456789abcdef0123456789abcdef".into(),
            deployment_sid: Some("ZD0123456789abcdef0123456789abcdef".into()),
            function_sid: function.map(Into::into),
            request_sid: sigil::sid::Prefix::Request.generate(),
            level: "info".into(),
            message: message.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_the_sink_are_listed_filtered_and_paged() {
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn Metadata> =
        Arc::new(SqliteStore::open(&dir.path().join("m.db")).expect("store"));
    sigil::accounts::create(store.as_ref(), "t", Some(ACCOUNT_SID), Some(AUTH_TOKEN))
        .expect("account");
    let blobs = BlobStore::open(dir.path()).expect("blobs");
    let cp = ControlPlane::new(
        Arc::clone(&store),
        blobs,
        "http://api.test".into(),
        "localhost".into(),
        None,
        None,
    );
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{ACCOUNT_SID}:{AUTH_TOKEN}"))
    );
    let h = Harness { cp, auth };
    let (_, svc) = h
        .call("POST", "/v1/Services", "UniqueName=logs&FriendlyName=l")
        .await;
    let zs = svc["sid"].as_str().expect("sid").to_owned();
    let (_, env) = h
        .call(
            "POST",
            &format!("/v1/Services/{zs}/Environments"),
            "UniqueName=prod",
        )
        .await;
    let ze = env["sid"].as_str().expect("sid").to_owned();
    let fh = "ZH0123456789abcdef0123456789abcdef";

    let sink = LogSink::spawn(Arc::clone(&store), u32::MAX);
    let now = sigil::clock::now();
    // An old line (outside the default one-day window), five recent ones, and a line of
    // another environment. Lines are listed newest first in the order the edge wrote them.
    sink.record(entry(&ze, &zs, None, now - 3 * 24 * 3600, "old"));
    for i in 0..5 {
        sink.record(entry(
            &ze,
            &zs,
            (i % 2 == 0).then_some(fh),
            now - 10 + i,
            &format!("GET /{i} 200"),
        ));
    }
    sink.record(entry(
        "ZE0000000000000000000000000000000f",
        &zs,
        None,
        now,
        "elsewhere",
    ));

    let logs = format!("/v1/Services/{zs}/Environments/{ze}/Logs");
    let mut listed = Value::Null;
    for _ in 0..100 {
        let (status, body) = h.call("GET", &logs, "").await;
        assert_eq!(status, 200);
        if body["logs"].as_array().expect("array").len() == 5 {
            listed = body;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let messages: Vec<&str> = listed["logs"]
        .as_array()
        .expect("five lines within 2 s")
        .iter()
        .map(|l| l["message"].as_str().expect("message"))
        .collect();
    assert_eq!(
        messages,
        [
            "GET /4 200",
            "GET /3 200",
            "GET /2 200",
            "GET /1 200",
            "GET /0 200"
        ]
    );
    let first = &listed["logs"][0];
    assert_eq!(first["environment_sid"], ze.as_str());
    assert_eq!(first["level"], "info");

    // Fetch one.
    let no = first["sid"].as_str().expect("sid");
    let (status, one) = h.call("GET", &format!("{logs}/{no}"), "").await;
    assert_eq!(status, 200);
    assert_eq!(&one, first);

    // FunctionSid filter.
    let (_, by_fn) = h.call("GET", &format!("{logs}?FunctionSid={fh}"), "").await;
    assert_eq!(by_fn["logs"].as_array().expect("array").len(), 3);
    // Date window including the old line, in the toolkit's millisecond form.
    let (_, wide) = h
        .call(
            "GET",
            &format!("{logs}?StartDate=2000-01-01T00:00:00.000Z&PageSize=4"),
            "",
        )
        .await;
    assert_eq!(wide["logs"].as_array().expect("array").len(), 4);
    let next = wide["meta"]["next_page_url"].as_str().expect("next page");
    assert!(next.starts_with("http://api.test/v1/Services/"));
    assert!(next.contains("StartDate=2000-01-01T00%3A00%3A00.000Z"));
    let (_, rest) = h
        .call("GET", next.trim_start_matches("http://api.test"), "")
        .await;
    let rest_msgs: Vec<&str> = rest["logs"]
        .as_array()
        .expect("array")
        .iter()
        .map(|l| l["message"].as_str().expect("message"))
        .collect();
    assert_eq!(rest_msgs, ["GET /0 200", "old"]);
    // Bad filters.
    for q in [
        "StartDate=yesterday",
        "EndDate=2020-13-01",
        "FunctionSid=ZS0123456789abcdef0123456789abcdef",
    ] {
        let (status, body) = h.call("GET", &format!("{logs}?{q}"), "").await;
        assert_eq!((status, body["code"].as_u64()), (400, Some(20001)), "{q}");
    }
    assert_eq!(sink.dropped(), 0);
}
