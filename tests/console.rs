//! The Console: its sessions and CSRF rule through the API (reqwest), then the whole Console
//! in Debian's headless Chromium and Firefox ESR driven by Selenium
//! (tests/interop/console.py), which saves a screenshot of each main screen under
//! `target/tmp/console-screenshots[-firefox]`.

mod support;

use std::process::Command;

use reqwest::blocking::{Client, Response};
use support::*;

fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in {out}"))
        .to_owned()
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// Signs in with `user`/`pass` as the Console does.
fn sign_in(sigil: &Sigil, user: &str, pass: &str, extra: &[(&str, &str)]) -> Response {
    let mut rb = client()
        .post(format!("{}/console/session", sigil.api))
        .header("X-Requested-With", "sigil-console")
        .form(&[("AccountSid", user), ("AuthToken", pass)]);
    for (k, v) in extra {
        rb = rb.header(*k, *v);
    }
    rb.send().expect("sign in")
}

fn set_cookies(resp: &Response) -> Vec<String> {
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect()
}

/// The session cookie a response sets (`name=value`), and the whole Set-Cookie value.
fn session_cookie(resp: &Response) -> (String, String) {
    let set = set_cookies(resp)
        .into_iter()
        .find(|c| !c.split(';').next().unwrap_or("").ends_with('='))
        .expect("a session cookie");
    let pair = set.split(';').next().expect("name=value").to_owned();
    (pair, set)
}

/// A call of the v1 API with only the session cookie (and `csrf`, when given).
fn with_session(
    sigil: &Sigil,
    method: reqwest::Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    form: &[(&str, &str)],
) -> Response {
    let mut rb = client()
        .request(method, format!("{}{path}", sigil.api))
        .header("Cookie", cookie)
        .header("X-Requested-With", "sigil-console");
    if let Some(t) = csrf {
        rb = rb.header("X-Sigil-CSRF", t);
    }
    if !form.is_empty() {
        rb = rb.form(form);
    }
    rb.send().expect("request")
}

#[test]
fn sessions_stand_in_for_basic_credentials_and_changes_need_the_csrf_token() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;

    // Only from the Console (a cross-site form cannot set the header).
    let bare = client()
        .post(format!("{}/console/session", sigil.api))
        .form(&[("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)])
        .send()
        .expect("sign in");
    assert_eq!(bare.status(), 403);
    assert!(bare.headers().get("set-cookie").is_none());

    // Wrong credentials: one message whichever part was wrong, and no Basic challenge (a
    // browser would pop up its own dialog).
    let unknown = format!("AC{}", "1".repeat(32));
    for (user, pass) in [
        (ACCOUNT_SID, "0".repeat(32)),
        (unknown.as_str(), AUTH_TOKEN.to_owned()),
        ("", String::new()),
    ] {
        let resp = sign_in(&sigil, user, &pass, &[]);
        assert_eq!(resp.status(), 401, "{user}");
        assert!(resp.headers().get("www-authenticate").is_none());
        assert!(resp.headers().get("set-cookie").is_none());
        let body: serde_json::Value = resp.json().expect("json");
        assert_eq!(body["message"], "Those credentials were not accepted");
    }

    let resp = sign_in(&sigil, ACCOUNT_SID, AUTH_TOKEN, &[]);
    assert_eq!(resp.status(), 201);
    let (cookie, set) = session_cookie(&resp);
    assert!(
        set.contains("; HttpOnly")
            && set.contains("; SameSite=Strict")
            && set.contains("; Path=/")
            && set.contains("; Max-Age=28800")
            && !set.contains("Secure"),
        "{set}"
    );
    let body: serde_json::Value = resp.json().expect("json");
    let csrf = body["csrf_token"].as_str().expect("a token").to_owned();
    assert_eq!(body["account_sid"], ACCOUNT_SID);
    assert!(!set.contains(&csrf), "the CSRF token is not the cookie");
    // Over HTTPS (as the edge forwards it), the cookie is Secure.
    let https = sign_in(
        &sigil,
        ACCOUNT_SID,
        AUTH_TOKEN,
        &[("X-Forwarded-Proto", "https")],
    );
    let (secure_pair, secure_set) = session_cookie(&https);
    assert!(
        secure_pair.starts_with("__Host-sigil_console=") && secure_set.ends_with("; Secure"),
        "{secure_set}"
    );
    // Signing in clears what else there was: both names, and one planted for the parent
    // domain by a page on a sibling host.
    let clears = set_cookies(&https);
    assert!(
        clears
            .iter()
            .any(|c| c.starts_with("sigil_console=; Domain=localhost;") && c.contains("Max-Age=0")),
        "{clears:?}"
    );
    // Over plain HTTP, a second session cookie (planted for the parent domain by a sibling
    // host's page, or left over) makes neither count. Over HTTPS only the `__Host-` cookie
    // counts: a planted plain one is ignored, whether alone or beside the real one.
    let planted = format!("sigil_console={}", "cd".repeat(32));
    for (cookies, https, want) in [
        (format!("{planted}; {cookie}"), false, 401),
        (format!("{cookie}; {planted}"), false, 401),
        (cookie.clone(), true, 401),
        (secure_pair.clone(), true, 200),
        (format!("{planted}; {secure_pair}"), true, 200),
        (secure_pair.clone(), false, 401),
    ] {
        let mut rb = client()
            .get(format!("{}/v1/Services", sigil.api))
            .header("Cookie", &cookies);
        if https {
            rb = rb.header("X-Forwarded-Proto", "https");
        }
        let resp = rb.send().expect("request");
        assert_eq!(resp.status(), want, "{cookies} over https: {https}");
    }

    // Reads with the cookie alone; changes only with the token, compared whole.
    let svc = api.service("mine");
    let list = with_session(&sigil, get.clone(), "/v1/Services", &cookie, None, &[]);
    assert_eq!(list.status(), 200);
    assert!(list.text().expect("body").contains(&svc));
    let form = [("UniqueName", "by-session"), ("FriendlyName", "x")];
    let last = if csrf.ends_with('0') { '1' } else { '0' };
    let wrong = format!("{}{last}", &csrf[..csrf.len() - 1]);
    for token in [None, Some(""), Some(wrong.as_str()), Some(&csrf[..8])] {
        let resp = with_session(&sigil, post.clone(), "/v1/Services", &cookie, token, &form);
        assert_eq!(resp.status(), 403, "{token:?}");
        assert!(resp.text().expect("body").contains("CSRF"));
    }
    let made = with_session(
        &sigil,
        post.clone(),
        "/v1/Services",
        &cookie,
        Some(&csrf),
        &form,
    );
    assert_eq!(made.status(), 201);
    // The token a reload asks for is the same one.
    let info = with_session(&sigil, get.clone(), "/console/session", &cookie, None, &[]);
    let info: serde_json::Value = info.json().expect("json");
    assert_eq!(info["csrf_token"], csrf.as_str());
    // It ends 8 hours after sign-in.
    let left = info["expires_in"].as_i64().expect("seconds");
    assert!((8 * 3600 - 60..=8 * 3600).contains(&left), "{left}");
    // Basic credentials win over a cookie: the other account sees its own.
    let out = sigil.account_cli(&["create"]);
    let (other, other_token) = (field(&out, "account_sid"), field(&out, "auth_token"));
    let theirs = client()
        .get(format!("{}/v1/Services", sigil.api))
        .basic_auth(&other, Some(&other_token))
        .header("Cookie", &cookie)
        .send()
        .expect("get");
    assert_eq!(theirs.status(), 200);
    assert!(!theirs.text().expect("body").contains(&svc));
    // A cookie that names no session.
    let forged = format!("sigil_console={}", "ab".repeat(32));
    let resp = with_session(&sigil, get.clone(), "/v1/Services", &forged, None, &[]);
    assert_eq!(resp.status(), 401);

    // Signing out needs the token too, then ends the session for every request.
    let del = reqwest::Method::DELETE;
    let resp = with_session(&sigil, del.clone(), "/console/session", &cookie, None, &[]);
    assert_eq!(resp.status(), 403);
    let resp = with_session(&sigil, del, "/console/session", &cookie, Some(&csrf), &[]);
    assert_eq!(resp.status(), 204);
    assert!(set_cookies(&resp).iter().all(|c| c.contains("Max-Age=0")));
    let resp = with_session(&sigil, get.clone(), "/v1/Services", &cookie, None, &[]);
    assert_eq!(resp.status(), 401);

    // A session signed in with a token lasts as long as that token works: replacing the
    // secondary token ends the sessions signed in with the old one, not the primary's.
    let services = |cookie: &str| {
        with_session(&sigil, get.clone(), "/v1/Services", cookie, None, &[]).status()
    };
    let resp = sign_in(&sigil, ACCOUNT_SID, AUTH_TOKEN, &[]);
    let (by_token, _) = session_cookie(&resp);
    assert_eq!(services(&by_token), 200);
    let secondary = sigil.account_cli(&["token", "secondary", "--account", ACCOUNT_SID]);
    let secondary = field(&secondary, "secondary_auth_token");
    let resp = sign_in(&sigil, ACCOUNT_SID, &secondary, &[]);
    assert_eq!(resp.status(), 201);
    let (by_secondary, _) = session_cookie(&resp);
    assert_eq!(services(&by_secondary), 200);
    sigil.account_cli(&["token", "secondary", "--account", ACCOUNT_SID]);
    assert_eq!(services(&by_secondary), 401);
    assert_eq!(services(&by_token), 200);
    // Promoting ends the sessions signed in with a token.
    sigil.account_cli(&["token", "promote", "--account", ACCOUNT_SID]);
    assert_eq!(services(&by_token), 401);

    // Signed in with an API key: deleting the key ends the session.
    let key = sigil.account_cli(&["key", "create", "--account", ACCOUNT_SID]);
    let (sk, secret) = (field(&key, "api_key_sid"), field(&key, "api_key_secret"));
    let resp = sign_in(&sigil, &sk, &secret, &[]);
    assert_eq!(resp.status(), 201);
    let (by_key, _) = session_cookie(&resp);
    let resp = with_session(&sigil, get.clone(), "/v1/Services", &by_key, None, &[]);
    assert_eq!(resp.status(), 200);
    sigil.account_cli(&["key", "delete", "--account", ACCOUNT_SID, "--key", &sk]);
    let resp = with_session(&sigil, get, "/v1/Services", &by_key, None, &[]);
    assert_eq!(resp.status(), 401);
}

#[test]
fn the_console_is_served_with_its_policy_here_and_through_the_edge() {
    let sigil = Sigil::start();
    let resp = client()
        .get(format!("{}/console", sigil.api))
        .send()
        .expect("get");
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "/console/");
    // Through the edge, at the API's host name.
    let page = client()
        .get(format!("http://{}/console/", sigil.http))
        .header("Host", "serverless.localhost")
        .send()
        .expect("get");
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert!(page.text().expect("html").contains("app.js"));
    // Signing in through the edge: over its TLS port the cookie is `__Host-` and `Secure`;
    // over plain HTTP it is not, whatever an untrusted client claims in X-Forwarded-Proto.
    let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
    let tls = Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"))
        .resolve("serverless.localhost", sigil.https)
        .build()
        .expect("client");
    let form = [("AccountSid", ACCOUNT_SID), ("AuthToken", AUTH_TOKEN)];
    let over_tls = tls
        .post(format!(
            "https://serverless.localhost:{}/console/session",
            sigil.https.port()
        ))
        .header("X-Requested-With", "sigil-console")
        .form(&form)
        .send()
        .expect("sign in over TLS");
    assert_eq!(over_tls.status(), 201);
    let (pair, set) = session_cookie(&over_tls);
    assert!(
        pair.starts_with("__Host-sigil_console=") && set.ends_with("; Secure"),
        "{set}"
    );
    let claimed = client()
        .post(format!("http://{}/console/session", sigil.http))
        .header("Host", "serverless.localhost")
        .header("X-Forwarded-Proto", "https")
        .header("X-Requested-With", "sigil-console")
        .form(&form)
        .send()
        .expect("sign in over HTTP");
    assert_eq!(claimed.status(), 201);
    let (pair, set) = session_cookie(&claimed);
    assert!(
        pair.starts_with("sigil_console=") && !set.contains("Secure"),
        "{set}"
    );
    let js = client()
        .get(format!("{}/console/app.js", sigil.api))
        .send()
        .expect("get");
    assert_eq!(
        js.headers()["content-type"],
        "text/javascript; charset=utf-8"
    );
}

#[test]
fn an_asset_versions_content_can_be_read_back() {
    let sigil = Sigil::start();
    let api = sigil.client();
    let svc = api.service("readback");
    let bytes = b"\x00\x01binary\xff".to_vec();
    let (asset, version) = api.version(&svc, "Assets", "/b.bin", "private", &bytes, "image/x-test");
    let path = format!("/v1/Services/{svc}/Assets/{asset}/Versions/{version}/Content");
    let resp = client()
        .get(format!("{}{path}", sigil.api))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .expect("get");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "image/x-test");
    assert_eq!(resp.headers()["content-disposition"], "attachment");
    assert_eq!(
        resp.headers()["content-security-policy"],
        "sandbox; default-src 'none'"
    );
    assert_eq!(resp.bytes().expect("body").to_vec(), bytes);
    // Another account's is not found; so is an unknown Version.
    let out = sigil.account_cli(&["create"]);
    api.with_creds(&field(&out, "account_sid"), &field(&out, "auth_token"))
        .get(&path)
        .expect_error(404, 20404);
    api.get(&format!(
        "/v1/Services/{svc}/Assets/{asset}/Versions/ZN{}/Content",
        "0".repeat(32)
    ))
    .expect_error(404, 20404);
}

/// Runs `tests/interop/console.py` in `browser` against a fresh server: its screenshots go
/// to `target/tmp/console-screenshots[-firefox]`.
fn browser_test(browser: &str) {
    let sigil = Sigil::start();
    let out = sigil.account_cli(&["create"]);
    let suffix = if browser == "chromium" {
        ""
    } else {
        "-firefox"
    };
    let shots = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("console-screenshots{suffix}"));
    let _ = std::fs::remove_dir_all(&shots);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/console.py");
    // `cargo install geckodriver` puts it in cargo's bin directory, which need not be on PATH.
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cargo")))
        .map(|home| home.join("bin/geckodriver"))
        .filter(|p| p.is_file())
        .unwrap_or_else(|| "geckodriver".into());
    let run = Command::new("python3")
        .arg(script)
        .env("SIGIL_BROWSER", browser)
        .env("SIGIL_GECKODRIVER", cargo_bin)
        .env("SIGIL_API_URL", &sigil.api)
        .env("SIGIL_ACCOUNT_SID", ACCOUNT_SID)
        .env("SIGIL_AUTH_TOKEN", AUTH_TOKEN)
        .env("SIGIL_OTHER_SID", field(&out, "account_sid"))
        .env("SIGIL_OTHER_TOKEN", field(&out, "auth_token"))
        .env("SIGIL_EDGE_HTTP", sigil.http.to_string())
        .env("SIGIL_SCREENSHOTS", &shots)
        .output()
        .expect("python3 runs (with selenium and the browsers installed: see .ci/run)");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && stdout.contains("checks passed"),
        "the {browser} test failed (screenshots in {}):\n{stdout}\n{}",
        shots.display(),
        String::from_utf8_lossy(&run.stderr)
    );
    for name in ["01-sign-in", "03-assets-uploaded", "05-environment-history"] {
        assert!(shots.join(format!("{name}.png")).is_file(), "{name}");
    }
}

/// The Console in Debian's Chromium, driven by Selenium (`tests/interop/console.py`).
#[test]
fn the_console_works_in_a_real_browser() {
    browser_test("chromium");
}

/// The same in Debian's Firefox ESR, through geckodriver.
#[test]
fn the_console_works_in_firefox() {
    browser_test("firefox");
}
