//! Functions run: a Serverless Toolkit project with Functions (tests/fixtures/functions-project)
//! deployed with `sigil deploy` and with the unmodified `twilio-run deploy`, then called over
//! HTTP — Twilio's handler contract, access before any JavaScript, Variables, logs, and the
//! faults a Function can cause (time, memory, crashes, trying to leave its Build).

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// A server with the functions project deployed to its `dev` Environment.
struct Deployed {
    sigil: Sigil,
    edge: Edge,
    domain: String,
    svc: String,
    env: String,
    _project: tempfile::TempDir,
}

fn functions_project() -> tempfile::TempDir {
    fixture_project("functions-project")
}

fn deploy(extra: &[&str]) -> Deployed {
    let sigil = Sigil::start_with(extra);
    let project = functions_project();
    let (code, out, err) = sigil_cli(&sigil, project.path(), &["deploy", "--environment", "dev"]);
    assert_eq!(code, 0, "sigil deploy failed:\n{out}\n{err}");
    let domain = out
        .lines()
        .find_map(|l| l.strip_prefix("url http://"))
        .and_then(|u| u.split(':').next())
        .unwrap_or_else(|| panic!("no url in {out}"))
        .to_owned();
    let api = sigil.client();
    let svc = api.get("/v1/Services/sigil-functions").expect(200).s("sid");
    let envs = api
        .get(&format!("/v1/Services/{svc}/Environments"))
        .expect(200);
    let env = envs.json["environments"][0]["sid"]
        .as_str()
        .expect("an Environment")
        .to_owned();
    let edge = sigil.edge(&[&domain]);
    Deployed {
        sigil,
        edge,
        domain,
        svc,
        env,
        _project: project,
    }
}

impl Deployed {
    fn url(&self, path: &str) -> String {
        self.edge.url(&self.domain, path)
    }

    fn get(&self, path: &str) -> EdgeResp {
        self.edge.get(&self.url(path), &[])
    }

    fn json(&self, path: &str) -> Value {
        let r = self.get(path).expect(200);
        serde_json::from_slice(&r.body).expect("JSON")
    }

    fn post_form(&self, path: &str, form: &[(&str, &str)], headers: &[(&str, &str)]) -> EdgeResp {
        let mut rb = self.edge.http.post(self.url(path)).form(form);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.edge.send(rb)
    }
}

#[test]
fn deployed_functions_follow_twilios_handler_contract() {
    let d = deploy(&[]);

    // A string: 200 text/plain.
    let r = d.get("/hello?Name=Ada").expect(200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.text(), "Hello Ada");

    // TwiML: text/xml.
    let r = d.get("/voice?Name=Grace").expect(200);
    assert_eq!(r.header("content-type"), Some("text/xml"));
    assert!(
        r.text()
            .contains("<Response><Say>Hello Grace</Say></Response>"),
        "{}",
        r.text()
    );

    // `event`: query and form parameters, the body's winning; headers lower-case, repeated
    // ones as arrays, Host and proxy headers gone; cookies.
    let rb = d
        .edge
        .http
        .post(d.url("/echo?Where=query&Only=query"))
        .form(&[("Where", "body"), ("Body", "one"), ("Body", "two")])
        .header("X-Custom", "a")
        .header("x-custom", "b")
        .header("X-Forwarded-For", "10.0.0.1")
        .header("Cookie", "flavour=oat; n=hello%20there");
    let r = d.edge.send(rb).expect(200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let echo: Value = serde_json::from_slice(&r.body).expect("JSON");
    let event = &echo["event"];
    assert_eq!(event["Where"], "body");
    assert_eq!(event["Only"], "query");
    assert_eq!(event["Body"], json!(["one", "two"]));
    let headers = &event["request"]["headers"];
    assert_eq!(headers["x-custom"], json!(["a", "b"]));
    assert!(headers.get("host").is_none(), "{headers}");
    assert!(headers.get("x-forwarded-for").is_none(), "{headers}");
    assert_eq!(
        event["request"]["cookies"],
        json!({"flavour": "oat", "n": "hello there"})
    );

    // A JSON body is merged into `event`, keeping its nesting.
    let rb = d
        .edge
        .http
        .post(d.url("/echo"))
        .json(&json!({"nested": {"n": 1}}));
    let echo: Value = serde_json::from_slice(&d.edge.send(rb).expect(200).body).expect("JSON");
    assert_eq!(echo["event"]["nested"], json!({"n": 1}));
    let rb = d
        .edge
        .http
        .post(d.url("/echo"))
        .header("content-type", "application/json")
        .body("{not json");
    d.edge.send(rb).expect(400);

    // `context` and the globals.
    let context = &echo["context"];
    assert_eq!(
        context["DOMAIN_NAME"],
        format!("{}:{}", d.domain, d.edge.http_port)
    );
    assert_eq!(context["PATH"], "/echo");
    assert_eq!(context["SERVICE_SID"], d.svc.as_str());
    assert_eq!(context["ENVIRONMENT_SID"], d.env.as_str());
    assert_eq!(context["ACCOUNT_SID"], ACCOUNT_SID);
    assert_eq!(context["AUTH_TOKEN"], AUTH_TOKEN);
    assert_eq!(echo["client"], "a client");
    assert_eq!(
        echo["globals"],
        json!({"twilio": "function", "response": "function", "runtime": ["getAssets", "getFunctions", "getSync"]})
    );

    // `Twilio.Response`: status, repeated headers, cookie, an object body as JSON.
    let r = d.get("/response").expect(201);
    let x: Vec<&str> = r
        .headers
        .get_all("x-sigil")
        .iter()
        .map(|v| v.to_str().expect("ascii"))
        .collect();
    assert_eq!(x, ["one", "two"]);
    // As Twilio sends it: HttpOnly added (Secure too, over HTTPS).
    assert_eq!(
        r.header("set-cookie"),
        Some("flavour=oat; Path=/; HttpOnly")
    );
    let r = d
        .edge
        .get(&d.edge.tls_url(&d.domain, "/response"), &[])
        .expect(201);
    assert_eq!(
        r.header("set-cookie"),
        Some("flavour=oat; Path=/; HttpOnly; Secure")
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text(), r#"{"made":true}"#);

    // An error: 500 with {message, name} and no stack trace.
    let r = d.get("/fail").expect(500);
    let body: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(
        body,
        json!({"message": "it went wrong", "name": "TypeError"})
    );

    // A private Function: never by URL, but through Runtime.getFunctions().
    d.get("/lib").expect(403);
    assert_eq!(
        d.get("/uses-lib?Name=Ada").expect(200).text(),
        "private hello, Ada"
    );

    // A private Asset through Runtime.getAssets(); never by URL.
    assert_eq!(
        d.json("/asset"),
        json!({"keys": ["/secret.txt"], "text": "secret text for Functions\n"})
    );
    d.get("/secret.txt").expect(403);

    // A dependency from package.json, required by an async handler.
    assert_eq!(d.json("/dep"), json!({"twoDays": 172_800_000}));

    // OPTIONS is answered by sigil; other methods are refused; a GET with a body too.
    let r = d
        .edge
        .send(
            d.edge
                .http
                .request(reqwest::Method::OPTIONS, d.url("/hello")),
        )
        .expect(204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    d.edge
        .send(d.edge.http.request(reqwest::Method::PUT, d.url("/hello")))
        .expect(405);
    let r = d.edge.send(d.edge.http.head(d.url("/hello"))).expect(405);
    assert_eq!(r.header("allow"), Some("GET, POST, OPTIONS"));
    d.edge
        .send(d.edge.http.get(d.url("/hello")).body("a body"))
        .expect(403);

    // Warm workers: many calls, few processes.
    for _ in 0..20 {
        d.get("/hello").expect(200);
    }
    assert!(
        d.sigil.metric("sigil_function_workers_started_total") <= 3,
        "a worker per call?"
    );

    // console.* lines reach the Logs resource with the Function's SID and level.
    d.get("/log").expect(200);
    let api = d.sigil.client();
    let logs_url = format!("/v1/Services/{}/Environments/{}/Logs", d.svc, d.env);
    let deadline = Instant::now() + Duration::from_secs(10);
    let lines = loop {
        let logs = api.get(&logs_url).expect(200).json["logs"]
            .as_array()
            .expect("logs")
            .clone();
        let mine: Vec<Value> = logs
            .into_iter()
            .filter(|l| l["message"] == "a line from log.js" || l["message"] == "an error line")
            .collect();
        if mine.len() == 2 || Instant::now() > deadline {
            break mine;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(lines.len(), 2, "{lines:?}");
    for line in &lines {
        assert!(
            line["function_sid"]
                .as_str()
                .is_some_and(|s| s.starts_with("ZH")),
            "{line}"
        );
        let want = if line["message"] == "an error line" {
            "error"
        } else {
            "info"
        };
        assert_eq!(line["level"], want, "{line}");
    }
}

#[test]
fn a_protected_function_runs_only_when_signed_by_twilios_library() {
    let d = deploy(&[]);
    let url = d.url("/secure");
    let params = [("From", "+15551234567"), ("Body", "hi")];
    let signature = twilio_signature(AUTH_TOKEN, &url, &params);
    let r = d
        .post_form("/secure", &params, &[("X-Twilio-Signature", &signature)])
        .expect(200);
    assert_eq!(r.text(), "signed for +15551234567");
    d.post_form("/secure", &params, &[]).expect(403);
    let tampered = [("From", "+15550000000"), ("Body", "hi")];
    d.post_form("/secure", &tampered, &[("X-Twilio-Signature", &signature)])
        .expect(403);
    d.get("/secure").expect(403);
}

#[test]
fn faults_fail_only_their_own_call() {
    let d = deploy(&["--function-timeout", "2", "--function-memory", "128"]);
    d.get("/hello").expect(200);

    // A Function that never calls back: 504 at the limit, while other calls go on.
    let hang = {
        let (edge, url) = (d.sigil.edge(&[&d.domain]), d.url("/hang"));
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = edge.get(&url, &[]);
            (r.status, started.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        d.get("/hello").expect(200);
    }
    let (status, took) = hang.join().expect("hang call");
    assert_eq!(status, 504);
    assert!(took < Duration::from_secs(6), "504 after {took:?}");

    // An asynchronous throw: 500 for that call, a new worker for the next.
    let r = d.get("/athrow").expect(500);
    let body: Value = serde_json::from_slice(&r.body).expect("JSON");
    assert_eq!(body["message"], "thrown later");
    d.get("/hello").expect(200);

    // Allocating without bound meets the memory cap: 500, and the next call is served.
    d.get("/hog").expect(500);
    d.get("/hello").expect(200);

    // Writing to its own stdout cannot reach the reply; writing more than sigil holds to the
    // replies' descriptor fails that call (500); the next call is served.
    assert_eq!(d.get("/flood?fd=1").expect(200).text(), "survived");
    let r = d.get("/flood?fd=3").expect(500);
    assert!(r.text().contains("a line over"), "{}", r.text());
    d.get("/hello").expect(200);
    assert_eq!(d.json("/dep"), json!({"twoDays": 172_800_000}));
}

#[test]
fn a_function_cannot_leave_its_build() {
    let d = deploy(&[]);
    // Another account's... another Service's Build, with a Function whose file exists.
    let api = d.sigil.client();
    let other = api.deploy_site(
        "other",
        &[(
            "/other",
            "public",
            b"exports.handler = (c, e, cb) => cb(null, 'other');",
            "function",
        )],
    );
    let other_edge = d.sigil.edge(&[&other.domain]);
    other_edge
        .get(&other_edge.url(&other.domain, "/other"), &[])
        .expect(200);
    let other_build = api.active_build(&other);
    let other_dir = functions_dir()
        .join("builds")
        .join(&other_build)
        .join("functions");
    let other_file = std::fs::read_dir(&other_dir)
        .expect("the other Build's directory")
        .next()
        .expect("a file")
        .expect("entry")
        .path();

    let data = d.sigil.data().to_path_buf();
    for (target, dir) in [
        (data.join("metadata.db"), data.clone()),
        (other_file.clone(), other_dir.clone()),
    ] {
        let query = format!(
            "/escape?target={}&dir={}",
            enc(&target.display().to_string()),
            enc(&dir.display().to_string())
        );
        let got = d.json(&query);
        assert_eq!(got["passwd"], "ERR_ACCESS_DENIED", "{got}");
        assert_eq!(got["target"], "ERR_ACCESS_DENIED", "{got}");
        assert_eq!(got["listing"], "ERR_ACCESS_DENIED", "{got}");
        assert_eq!(got["spawn"], "ERR_ACCESS_DENIED", "{got}");
        // sigil's environment (its auth token among it) is not the Function's.
        assert_eq!(got["env"], json!(["NODE_ENV", "TZ"]), "{got}");
        if rustix_is_root() {
            assert_ne!(got["uid"], 0, "a worker runs as root: {got}");
        }
    }
}

fn rustix_is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

#[test]
fn variables_and_credentials_apply_to_the_next_call() {
    let d = deploy(&[]);
    let api = d.sigil.client();
    let vars = format!("/v1/Services/{}/Environments/{}/Variables", d.svc, d.env);
    assert!(d.json("/echo")["context"].get("GREETING").is_none());
    let var = api
        .post(&vars, &[("Key", "GREETING"), ("Value", "hi")])
        .expect(201)
        .s("sid");
    assert_eq!(d.json("/echo")["context"]["GREETING"], "hi");
    api.post(&format!("{vars}/{var}"), &[("Value", "hello")])
        .expect(200);
    assert_eq!(d.json("/echo")["context"]["GREETING"], "hello");
    api.delete(&format!("{vars}/{var}")).expect(204);
    assert!(d.json("/echo")["context"].get("GREETING").is_none());

    // Without IncludeCredentials: no ACCOUNT_SID or AUTH_TOKEN, and no client.
    api.post(
        &format!("/v1/Services/{}", d.svc),
        &[("IncludeCredentials", "false")],
    )
    .expect(200);
    let echo = d.json("/echo");
    assert!(echo["context"].get("AUTH_TOKEN").is_none(), "{echo}");
    assert!(echo["context"].get("ACCOUNT_SID").is_none(), "{echo}");
    assert_eq!(echo["client"], "INVALID_CONFIG");
}

#[test]
fn twilio_run_deploys_functions_that_run() {
    let sigil = Sigil::start();
    let project = functions_project();
    let out = run_twilio_run(
        &twilio_run(),
        project.path(),
        &sigil.api,
        None,
        &[
            "deploy",
            "--override-existing-project",
            "--environment",
            "dev",
        ],
    );
    let domain = out
        .lines()
        .find_map(|l| l.split_whitespace().find(|w| w.contains("-dev.")))
        .map(|w| {
            w.trim_start_matches("https://")
                .trim_start_matches("http://")
        })
        .map(|w| w.split('/').next().unwrap_or(w).to_owned())
        .unwrap_or_else(|| panic!("no domain in {out}"));
    let edge = sigil.edge(&[&domain]);
    let r = edge
        .get(&edge.url(&domain, "/voice?Name=Toolkit"), &[])
        .expect(200);
    assert!(
        r.text().contains("<Say>Hello Toolkit</Say>"),
        "{}",
        r.text()
    );
    let r = edge.get(&edge.url(&domain, "/dep"), &[]).expect(200);
    assert_eq!(r.text(), r#"{"twoDays":172800000}"#);
    edge.get(&edge.url(&domain, "/lib"), &[]).expect(403);
}

#[test]
fn a_build_whose_dependencies_cannot_be_installed_fails_with_npms_error() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let svc = api.service("deps");
    let (_, fv) = api.version(
        &svc,
        "Functions",
        "/f",
        "public",
        b"exports.handler = (c, e, cb) => cb(null, 'x');",
        "application/javascript",
    );
    for (deps, says) in [
        (
            r#"[{"name":"sigil-no-such-package-xyz","version":"1.0.0"}]"#,
            "npm install failed",
        ),
        (
            r#"[{"name":"lodash","version":"file:/etc"}]"#,
            "could not be validated",
        ),
    ] {
        let build = api
            .post(
                &format!("/v1/Services/{svc}/Builds"),
                &[("FunctionVersions", fv.as_str()), ("Dependencies", deps)],
            )
            .expect(201)
            .s("sid");
        assert_eq!(api.wait_build(&svc, &build), "failed");
        let status = api
            .get(&format!("/v1/Services/{svc}/Builds/{build}/Status"))
            .expect(200);
        let why = status.header("sigil-build-error").unwrap_or_default();
        assert!(why.contains(says), "{why}");
    }
}

#[test]
fn a_new_deployment_takes_new_calls_while_calls_in_flight_finish_on_the_old_build() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let slow = |answer: &str| {
        format!(
            "exports.handler = (c, e, cb) => setTimeout(() => cb(null, '{answer}'), Number(e.wait || 0));"
        )
    };
    let site = api.deploy_site(
        "drain",
        &[("/slow", "public", slow("first").as_bytes(), "function")],
    );
    let edge = sigil.edge(&[&site.domain]);
    assert_eq!(
        edge.get(&edge.url(&site.domain, "/slow"), &[])
            .expect(200)
            .text(),
        "first"
    );
    let in_flight = {
        let (edge, url) = (
            sigil.edge(&[&site.domain]),
            edge.url(&site.domain, "/slow?wait=1500"),
        );
        std::thread::spawn(move || edge.get(&url, &[]).expect(200).text())
    };
    std::thread::sleep(Duration::from_millis(300));
    api.redeploy(
        &site,
        &[("/slow", "public", slow("second").as_bytes(), "function")],
    );
    assert_eq!(
        edge.get(&edge.url(&site.domain, "/slow"), &[])
            .expect(200)
            .text(),
        "second"
    );
    assert_eq!(in_flight.join().expect("the call in flight"), "first");
}

#[test]
fn calls_over_the_concurrency_cap_wait_then_get_429() {
    let sigil = Sigil::start_with(&["--function-concurrency", "1", "--function-timeout", "5"]);
    let api = sigil.client();
    let site = api.deploy_site(
        "capped",
        &[
            (
                "/hang",
                "public",
                b"exports.handler = () => {};",
                "function",
            ),
            (
                "/quick",
                "public",
                b"exports.handler = (c, e, cb) => cb(null, 'quick');",
                "function",
            ),
        ],
    );
    let edge = sigil.edge(&[&site.domain]);
    edge.get(&edge.url(&site.domain, "/quick"), &[]).expect(200);
    let hang = {
        let (edge, url) = (sigil.edge(&[&site.domain]), edge.url(&site.domain, "/hang"));
        std::thread::spawn(move || edge.get(&url, &[]).status)
    };
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let r = edge.get(&edge.url(&site.domain, "/quick"), &[]).expect(429);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited for a place"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(hang.join().expect("hang"), 504);
    // The place is free again.
    assert_eq!(
        edge.get(&edge.url(&site.domain, "/quick"), &[])
            .expect(200)
            .text(),
        "quick"
    );
    assert_eq!(sigil.metric("sigil_function_over_concurrency_total"), 1);
    assert_eq!(sigil.metric("sigil_function_timeouts_total"), 1);
}

#[test]
fn the_hosts_worker_cap_ends_the_longest_idle_worker_and_refuses_when_all_are_busy() {
    let sigil = Sigil::start_with(&["--function-workers", "1", "--function-timeout", "4"]);
    let api = sigil.client();
    let quick = b"exports.handler = (c, e, cb) => setTimeout(() => cb(null, c.SERVICE_SID), Number(e.wait || 0));";
    let one = api.deploy_site(
        "workers-one",
        &[
            ("/quick", "public", quick, "function"),
            (
                "/hang",
                "public",
                b"exports.handler = () => {};",
                "function",
            ),
        ],
    );
    let two = api.deploy_site("workers-two", &[("/quick", "public", quick, "function")]);
    let edge = sigil.edge(&[&one.domain, &two.domain]);
    let call = |site: &Site, path: &str| edge.get(&edge.url(&site.domain, path), &[]);
    assert_eq!(call(&one, "/quick").expect(200).text(), one.svc);
    // The one place is taken by one's idle worker: two's call ends it and starts its own.
    assert_eq!(call(&two, "/quick").expect(200).text(), two.svc);
    assert_eq!(call(&one, "/quick").expect(200).text(), one.svc);
    assert_eq!(sigil.metric("sigil_function_workers_started_total"), 3);
    assert_eq!(sigil.metric("sigil_function_workers_evicted_total"), 2);
    assert_eq!(sigil.metric("sigil_function_workers"), 1);
    assert_eq!(sigil.metric("sigil_function_workers_max"), 1);
    // A second call of the same pool waits for the busy worker and is then served by it.
    // (Whether the one worker is busy: none idle.)
    let busy = || {
        let until = Instant::now() + Duration::from_secs(10);
        while sigil.metric("sigil_function_workers_idle") != 0 {
            assert!(Instant::now() < until, "the worker never got busy");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let slow = {
        let (edge, url) = (
            sigil.edge(&[&one.domain]),
            edge.url(&one.domain, "/quick?wait=1000"),
        );
        std::thread::spawn(move || edge.get(&url, &[]).expect(200).text())
    };
    busy();
    assert_eq!(call(&one, "/quick").expect(200).text(), one.svc);
    assert_eq!(slow.join().expect("slow"), one.svc);
    assert_eq!(sigil.metric("sigil_function_workers_started_total"), 3);
    // With the one worker busy, another Environment's call waits 2 s, then 503.
    let hang = {
        let (edge, url) = (sigil.edge(&[&one.domain]), edge.url(&one.domain, "/hang"));
        std::thread::spawn(move || edge.get(&url, &[]).status)
    };
    busy();
    let started = Instant::now();
    let r = call(&two, "/quick").expect(503);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "it waited"
    );
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(r.text().contains("--function-workers"), "{}", r.text());
    assert_eq!(sigil.metric("sigil_function_over_workers_total"), 1);
    // The hung worker is killed at its timeout, and its place serves the next call.
    assert_eq!(hang.join().expect("hang"), 504);
    assert_eq!(call(&two, "/quick").expect(200).text(), two.svc);
    assert_eq!(sigil.metric("sigil_function_workers"), 1);
}
