//! The first hour of a new user, through the real binary: the URLs `sigil deploy` prints open,
//! the first account's token is never lost to a failed start, every error is said once with
//! the way out, flags fail as usage errors (64), and mistakes leave nothing behind.

mod support;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{account_command, run_cli, sigil_cli, toolkit_project, Sigil, ACCOUNT_SID};

fn bare() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.env_remove("TWILIO_ACCOUNT_SID")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("SIGIL_API_URL")
        .env_remove("SIGIL_DATA")
        .env("SIGIL_LOG", "warn");
    cmd
}

/// The `url …` lines of a deploy's output.
fn urls(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.strip_prefix("url "))
        .map(str::to_owned)
        .collect()
}

/// Fetches a printed URL as a browser would: `*.localhost` is 127.0.0.1, the development CA
/// is trusted.
fn open(url: &str) -> (u16, Vec<u8>) {
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
    let parsed = reqwest::Url::parse(url).expect("an absolute URL");
    let host = parsed.host_str().expect("a host").to_owned();
    assert!(host.ends_with(".localhost"), "{url}");
    let port = parsed.port().expect("the edge's port, not a default one");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .resolve(&host, ([127, 0, 0, 1], port).into())
        .build()
        .expect("client");
    let r = client.get(url).send().expect("the URL answers");
    (r.status().as_u16(), r.bytes().expect("body").to_vec())
}

#[test]
fn the_urls_deploy_prints_open_the_site() {
    let sigil = Sigil::start();
    let proj = toolkit_project();
    let (code, out, err) = sigil_cli(&sigil, proj.path(), &["deploy"]);
    assert_eq!(code, 0, "{out}{err}");
    let printed = urls(&out);
    assert_eq!(printed.len(), 2, "{out}");
    assert_eq!(
        printed[0],
        format!(
            "http://{}:{}/",
            printed[0]
                .strip_prefix("http://")
                .and_then(|r| r.split(':').next())
                .expect("host"),
            sigil.http.port()
        )
    );
    assert!(printed[1].starts_with("https://"), "{out}");
    assert!(
        printed[1].ends_with(&format!(":{}/", sigil.https.port())),
        "{out}"
    );
    let index = std::fs::read(proj.path().join("assets/assets/index.html")).expect("fixture");
    for url in &printed {
        assert_eq!(open(url), (200, index.clone()), "{url}");
    }
    assert!(!out.contains("note:"), "{out}");

    // The usual first layout, assets/index.html: the note says why / is a 404 and how to fix
    // it, and the printed URLs name the page that does open.
    let first = tempfile::tempdir().expect("dir");
    std::fs::create_dir(first.path().join("assets")).expect("mkdir");
    std::fs::write(first.path().join("assets/index.html"), "<h1>hi</h1>").expect("write");
    let (code, out, err) = sigil_cli(&sigil, first.path(), &["deploy", "--service", "first"]);
    assert_eq!(code, 0, "{out}{err}");
    let note = out
        .lines()
        .find_map(|l| l.strip_prefix("note: "))
        .unwrap_or_else(|| panic!("a note in {out}"));
    assert!(
        note.contains("/assets/index.html") && note.contains("assets/assets/index.html"),
        "{note}"
    );
    let printed = urls(&out);
    assert_eq!(printed.len(), 2, "{out}");
    for url in &printed {
        assert!(url.ends_with("/index.html"), "{url}");
        assert_eq!(open(url), (200, b"<h1>hi</h1>".to_vec()), "{url}");
        let root = url.trim_end_matches("index.html");
        assert_eq!(open(root).0, 404, "{root}");
    }
}

/// `sigil serve` with the first account created on the fly: (exit code, or None when it
/// served and was stopped, and everything it printed on stdout).
fn first_start(data: &Path, http: &str, extra: &[&str]) -> (Option<i32>, String) {
    let mut cmd = Sigil::command(data, &["--http", http]);
    cmd.args(extra).stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = cmd.spawn().expect("sigil starts");
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stdout)) {
            let Ok(line) = line else { break };
            all.push_str(&line);
            all.push('\n');
            if line.starts_with("sigil: API listening on") {
                let _ = tx.send(());
            }
        }
        all
    });
    let served = rx.recv_timeout(std::time::Duration::from_secs(30)).is_ok();
    if served {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait");
    let out = reader.join().expect("reader");
    (if served { None } else { status.code() }, out)
}

#[test]
fn a_failed_first_start_loses_no_token() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("addr").to_string();

    // A taken port, then a certificate that does not exist: both fail, creating nothing.
    let (code, out1) = first_start(&data, &taken_addr, &[]);
    assert_eq!(code, Some(1), "{out1}");
    let (code, out2) = first_start(
        &data,
        "127.0.0.1:0",
        &["--cert", "/nonexistent.pem", "--key", "/nonexistent.pem"],
    );
    assert_eq!(code, Some(1), "{out2}");
    // The good start shows the token; a later one does not.
    let (code, out3) = first_start(&data, "127.0.0.1:0", &[]);
    assert_eq!(code, None, "{out3}");
    let (code, out4) = first_start(&data, "127.0.0.1:0", &[]);
    assert_eq!(code, None, "{out4}");
    let all = [&out1, &out2, &out3, &out4];
    let shown: usize = all
        .iter()
        .map(|o| o.matches("sigil: auth token ").count())
        .sum();
    assert_eq!(shown, 1, "{all:?}");
    assert!(out3.contains("sigil: auth token "), "{out3}");

    // The account it names is the only one, and its token works.
    let sid = out3
        .lines()
        .find_map(|l| l.strip_prefix("sigil: created account "))
        .expect("sid")
        .to_owned();
    let token = out3
        .lines()
        .find_map(|l| l.strip_prefix("sigil: auth token "))
        .and_then(|l| l.split_whitespace().next())
        .expect("token")
        .to_owned();
    let (code, list, _) = run_cli(account_command(&data).arg("list"));
    assert_eq!(code, 0);
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.starts_with(&sid), "{list}");
    let server = Sigil::start_in(&data, &[], false);
    server
        .client()
        .with_creds(&sid, &token)
        .get("/v1/Services")
        .expect(200);
}

/// How often `needle` appears in `text`.
fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

#[test]
fn each_error_is_said_once_with_the_way_out() {
    let sigil = Sigil::start();
    let proj = toolkit_project();
    let creds = |cmd: &mut Command| {
        cmd.env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
            .env("TWILIO_AUTH_TOKEN", support::AUTH_TOKEN);
    };

    // Nothing listening at --api-url.
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed_url = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let mut cmd = bare();
    creds(&mut cmd);
    let (code, _, err) = run_cli(
        cmd.args(["deploy", "--api-url", &closed_url])
            .current_dir(proj.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot reach the API at {closed_url}"))
            && err.contains("is `sigil serve` running?"),
        "{err}"
    );
    assert_eq!(count(&err, "cannot reach"), 1, "{err}");

    // --api-url pointing at the edge: said so, no invented Twilio error.
    let edge_url = format!("http://{}", sigil.http);
    let mut cmd = bare();
    creds(&mut cmd);
    let (code, _, err) = run_cli(
        cmd.args(["deploy", "--api-url", &edge_url])
            .current_dir(proj.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("not the Serverless API") && err.contains("API listener"),
        "{err}"
    );
    assert!(!err.contains("Twilio error"), "{err}");
    assert_eq!(count(&err, "not the Serverless API"), 1, "{err}");

    // No credentials: the variables are named.
    let (code, _, err) = run_cli(
        bare()
            .args(["deploy", "--api-url", &sigil.api])
            .current_dir(proj.path()),
    );
    assert_eq!(code, 64, "{err}");
    assert!(
        err.contains("TWILIO_ACCOUNT_SID") && err.contains("TWILIO_AUTH_TOKEN"),
        "{err}"
    );

    // Wrong credentials: once, with where to look.
    let mut cmd = bare();
    cmd.env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_AUTH_TOKEN", "wrong-token-wrong-token");
    let (code, _, err) = run_cli(
        cmd.args(["deploy", "--api-url", &sigil.api])
            .current_dir(proj.path()),
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(count(&err, "20003"), 1, "{err}");
    assert!(err.contains("check TWILIO_ACCOUNT_SID"), "{err}");

    // An API error: the reason once.
    std::fs::write(proj.path().join("assets/bad;name.txt"), "x").expect("write");
    let (code, _, err) = sigil_cli(&sigil, proj.path(), &["deploy", "--service", "errs"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(count(&err, "must not contain ';'"), 1, "{err}");
    assert_eq!(count(&err, "Twilio error 20001"), 1, "{err}");

    // A missing project folder says it is missing.
    let (code, _, err) = sigil_cli(&sigil, proj.path(), &["deploy", "no-such-folder"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no-such-folder does not exist"), "{err}");

    // A taken port, said once, with the way out.
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let data = tempfile::tempdir().expect("dir");
    let (code, _, err) = run_cli(&mut Sigil::command(
        data.path(),
        &["--http", &taken.local_addr().expect("addr").to_string()],
    ));
    assert_eq!(code, 1, "{err}");
    assert_eq!(count(&err, "already in use"), 1, "{err}");
    assert!(err.contains("choose another address with --http"), "{err}");
}

#[test]
fn bad_flags_are_usage_errors_with_the_expected_form() {
    let data = tempfile::tempdir().expect("dir");
    let (code, out, err) = run_cli(
        bare()
            .args(["serve", "--http", "8080", "--data"])
            .arg(data.path().join("d")),
    );
    assert_eq!(code, 64, "{out}{err}");
    assert!(
        err.contains("IP:PORT") && err.contains("0.0.0.0:8080"),
        "{err}"
    );
    assert!(!data.path().join("d").exists());
    let (code, _, err) = run_cli(bare().args(["serve", "--no-such-flag"]));
    assert_eq!(code, 64, "{err}");
    let (code, _, err) = run_cli(bare().args(["deploy", "--concurrency", "many"]));
    assert_eq!(code, 64, "{err}");
    // A wrong metadata URL is refused without repeating it (it may hold a password).
    for args in [
        &["serve", "--metadata", "mysql://u:hunter2@db/x"][..],
        &["account", "list", "--metadata", "mysql://u:hunter2@db/x"][..],
    ] {
        let (code, out, err) = run_cli(bare().args(args).arg("--data").arg(data.path()));
        assert_ne!(code, 0, "{args:?}");
        assert!(err.contains("PostgreSQL URL"), "{err}");
        assert!(!format!("{out}{err}").contains("hunter2"), "{err}");
    }
    // localhost:PORT is an address.
    let server = Sigil::start_with(&["--http", "localhost:0"]);
    assert!(server.http.ip().is_loopback());

    // Help succeeds and groups serve's flags, the four to set first before the groups.
    let (code, help, _) = run_cli(bare().args(["serve", "--help"]));
    assert_eq!(code, 0);
    let at = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s} in {help}"));
    for flag in ["--data", "--http ", "--https", "--api "] {
        assert!(
            at(flag) < at("Names and proxies:"),
            "{flag} first in {help}"
        );
    }
    for (heading, flag) in [
        ("TLS:", "--cert"),
        ("Limits:", "--max-connections"),
        ("HTTP/2:", "--h2-max-streams"),
        ("Logging:", "--access-log"),
        ("Storage:", "--cache-size"),
    ] {
        assert!(at(heading) < at(flag), "{flag} under {heading} in {help}");
    }
}

#[test]
fn mistakes_leave_nothing_behind() {
    // `sigil account` on a data directory that does not exist creates nothing.
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("missing");
    let (code, _, err) = run_cli(bare().args(["account", "list", "--data"]).arg(&missing));
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("not a sigil data directory"), "{err}");
    assert!(!missing.exists());
    let (code, _, _) = run_cli(bare().args(["account", "create", "--data"]).arg(dir.path()));
    assert_eq!(code, 64);
    assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

    // A project with nothing to deploy fails before any Service exists.
    let sigil = Sigil::start();
    let empty = tempfile::tempdir().expect("dir");
    std::fs::create_dir_all(empty.path().join("assets/sub")).expect("mkdir");
    std::fs::write(empty.path().join("assets/.hidden"), "skipped").expect("write");
    let (code, _, err) = sigil_cli(&sigil, empty.path(), &["deploy", "--service", "nothing"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("nothing to deploy"), "{err}");
    let services = sigil.client().get("/v1/Services").expect(200);
    assert_eq!(services.json["services"].as_array().expect("list").len(), 0);
}
