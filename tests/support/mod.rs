//! Test support: start the real `sigil` binary on 127.0.0.1:0 and talk to it over HTTP with a
//! real client; every JSON body received is validated against Twilio's spec.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod postgres;
pub mod s3;
pub mod spec;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The account every test server is started with.
pub const ACCOUNT_SID: &str = "AC0123456789abcdef0123456789abcdef";
/// Its auth token.
pub const AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";

/// The functions directory every test server shares.
pub fn functions_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sigil-functions")
}

/// A running sigil process with its own data directory.
pub struct Sigil {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub api: String,
    /// The edge's plain-HTTP address.
    pub http: std::net::SocketAddr,
    /// The edge's HTTPS address.
    pub https: std::net::SocketAddr,
    /// Everything it printed on stdout before it was ready.
    pub banner: Vec<String>,
    /// The admin listener (`--admin`), if any.
    pub admin: Option<std::net::SocketAddr>,
    data: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Sigil {
    /// Starts on a fresh data directory with the fixed test account.
    pub fn start() -> Sigil {
        Sigil::start_with(&[])
    }

    /// Starts on a fresh data directory with extra `serve` flags.
    pub fn start_with(extra: &[&str]) -> Sigil {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut s = Sigil::spawn(&data, extra, true);
        s._dir = Some(dir);
        s
    }

    /// Starts on an existing data directory (restart tests).
    pub fn start_in(data: &Path, extra: &[&str], fixed_account: bool) -> Sigil {
        Sigil::spawn(data, extra, fixed_account)
    }

    /// `sigil serve` on `data` with every listener on a free port, quiet logs and no account
    /// from the environment; `extra` flags after.
    pub fn command(data: &Path, extra: &[&str]) -> Command {
        let mut cmd = Sigil::embedded_command(data, &[]);
        use_stores(&mut cmd, data, true);
        cmd.args(extra);
        cmd
    }

    /// [`Sigil::command`] on the embedded stores, whatever the suite runs on.
    pub fn embedded_command(data: &Path, extra: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
        cmd.arg("serve").arg("--data").arg(data).args([
            "--api",
            "127.0.0.1:0",
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
        ]);
        cmd.args(extra)
            .env_remove("SIGIL_METADATA")
            .env_remove("SIGIL_BLOBS")
            .env("SIGIL_LOG", "warn")
            .env_remove("SIGIL_ACCOUNT_SID")
            .env_remove("SIGIL_AUTH_TOKEN")
            // Function directories and npm installs are content-addressed: shared by every
            // test server, so a dependency set is installed once per run, not per test.
            .env("SIGIL_FUNCTIONS_DIR", functions_dir())
            .stdin(Stdio::null());
        cmd
    }

    fn spawn(data: &Path, extra: &[&str], fixed_account: bool) -> Sigil {
        let mut cmd = Sigil::command(data, extra);
        if fixed_account {
            cmd.env("SIGIL_ACCOUNT_SID", ACCOUNT_SID)
                .env("SIGIL_AUTH_TOKEN", AUTH_TOKEN);
        }
        Sigil::spawn_command(cmd, data)
    }

    /// Starts a prepared `sigil serve` command for `data` and waits until it serves.
    pub fn spawn_command(mut cmd: Command, data: &Path) -> Sigil {
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().expect("sigil starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut banner = Vec::new();
        let (mut http, mut https, mut admin) = (None, None, None);
        let api = loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("sigil prints its listening line within 30 s");
            if let Some(url) = line.strip_prefix("sigil: API listening on ") {
                break url.to_owned();
            }
            if line == "sigil: edge ready" {
                // `--role edge`: no API listener of its own.
                break String::new();
            }
            if let Some(a) = line.strip_prefix("sigil: admin listening on http://") {
                admin = Some(a.parse().expect("admin address"));
            }
            if let Some(a) = line.strip_prefix("sigil: edge listening on http://") {
                http = Some(a.parse().expect("edge address"));
            }
            if let Some(a) = line.strip_prefix("sigil: edge listening on https://") {
                https = Some(a.parse().expect("edge address"));
            }
            banner.push(line);
        };
        Sigil {
            child,
            api,
            // A control plane has no edge: port 0 stands for none.
            http: http.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")),
            https: https.unwrap_or_else(|| "127.0.0.1:0".parse().expect("addr")),
            banner,
            admin,
            data: data.to_owned(),
            _dir: None,
        }
    }

    /// Deletes every copy of a blob: the local file and, on the shared stores, the object.
    pub fn remove_blob(&self, sha256: &str) {
        std::fs::remove_file(self.data.join("blobs").join(&sha256[..2]).join(sha256))
            .expect("the blob is here");
        if on_shared_stores() {
            let object = s3::S3::shared()
                .bucket_dir()
                .join(store_name(&self.data))
                .join("blobs")
                .join(&sha256[..2])
                .join(sha256);
            std::fs::remove_file(&object).expect("the blob is in the bucket");
        }
    }

    /// The data directory.
    pub fn data(&self) -> &Path {
        &self.data
    }

    /// A counter or gauge from the API listener's `/metrics`.
    pub fn metric(&self, name: &str) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.api))
            .expect("metrics")
            .text()
            .expect("text");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing in {text}"))
            .parse()
            .expect("number")
    }

    /// The value of a counter once it is `want`, read until it is (up to 5 s): a server counts
    /// some things after the response has left, so a client can see the response first.
    pub fn metric_reaches(&self, name: &str, want: u64) -> u64 {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let now = self.metric(name);
            if now == want || std::time::Instant::now() > until {
                return now;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A client with the test account's credentials.
    pub fn client(&self) -> Api {
        Api::new(&self.api, Some((ACCOUNT_SID, AUTH_TOKEN)))
    }

    /// A client for the edge that resolves `domains` to this server (plain and TLS, trusting
    /// the development CA; HTTP/2 by ALPN over TLS).
    pub fn edge(&self, domains: &[&str]) -> Edge {
        let ca = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/certs/ca.pem")).expect("ca");
        let mut b = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(30))
            .no_gzip()
            .no_brotli()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("pem"));
        for d in domains {
            b = b.resolve(d, self.http);
        }
        Edge {
            http: b.build().expect("client"),
            http_port: self.http.port(),
            https_port: self.https.port(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM (graceful shutdown).
    pub fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// Waits up to `within` for the process to exit; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Kills the process with SIGKILL (no chance to clean up) and waits for it.
    pub fn kill9(mut self) -> Option<tempfile::TempDir> {
        self.child.kill().expect("kill");
        self.child.wait().expect("wait");
        self._dir.take()
    }

    /// Runs `sigil account …` on this server's data directory; returns stdout.
    pub fn account_cli(&self, args: &[&str]) -> String {
        let out = account_command(&self.data)
            .args(args)
            .output()
            .expect("sigil account runs");
        assert!(
            out.status.success(),
            "sigil account {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }
}

impl Drop for Sigil {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the suite runs on the shared stores (`SIGIL_TEST_STORES=shared`): PostgreSQL and
/// S3, each a throwaway server of this test process. By default it runs on the embedded ones
/// (SQLite and files in the data directory).
pub fn on_shared_stores() -> bool {
    match std::env::var("SIGIL_TEST_STORES").as_deref() {
        Ok("shared") => true,
        Ok("") | Err(_) => false,
        Ok(other) => panic!("SIGIL_TEST_STORES={other:?}: expected shared or nothing"),
    }
}

/// The name of the shared stores' database and bucket prefix for the data directory `data`,
/// so that a restart on the same directory finds the same data.
fn store_name(data: &Path) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(data.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("d{hex}")
}

/// Points a `sigil` command for the data directory `data` at the suite's stores: nothing to
/// add for the embedded ones; `--metadata` (and, for `serve`, `--blobs` and the AWS
/// variables) for the shared ones.
pub fn use_stores(cmd: &mut Command, data: &Path, serve: bool) {
    cmd.env_remove("SIGIL_METADATA").env_remove("SIGIL_BLOBS");
    if !on_shared_stores() {
        return;
    }
    let name = store_name(data);
    cmd.arg("--metadata")
        .arg(postgres::Postgres::shared().database(&name));
    if serve {
        let s3 = s3::S3::shared();
        cmd.arg("--blobs")
            .arg(format!("s3://{}/{name}", s3::BUCKET));
        cmd.envs(s3.env());
    }
}

/// `sigil account --data DATA` (and the suite's metadata backend); arguments to follow.
pub fn account_command(data: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.arg("account")
        .arg("--data")
        .arg(data)
        .env_remove("SIGIL_DATA");
    use_stores(&mut cmd, data, false);
    cmd
}

/// Lowercase hex sha256 of `bytes`: a blob's content address.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A copy of the sample Serverless Toolkit project (tests/fixtures/toolkit-project) in a
/// scratch directory.
pub fn toolkit_project() -> tempfile::TempDir {
    fixture_project("toolkit-project")
}

/// A copy of the project `tests/fixtures/{name}` in a scratch directory.
pub fn fixture_project(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures"));
    copy_dir(&fixtures.join(name), dir.path());
    dir
}

/// Checks that the toolkit project's `/hello` Function ran at `domain` through `edge`: its
/// TwiML, never its source.
#[track_caller]
pub fn expect_toolkit_hello(edge: &Edge, domain: &str) {
    let hello = edge.get(&edge.url(domain, "/hello"), &[]).expect(200);
    assert!(
        hello
            .text()
            .contains("<Message>Hello World from sigil-sample</Message>"),
        "{}",
        hello.text()
    );
}

/// A free port on the loopback interface (for a server started next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `path` quoted for `sh`.
pub fn sh_quoted(path: &std::path::Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

/// Runs `shell` (sh -c) once this test process is gone, however it ended: stops the servers
/// the tests started and removes their files (a process's shared server lives in a static,
/// which is never dropped, so its temp directory would outlive it: a PostgreSQL cluster
/// takes ~270 MB). It outlives this process by design, so it is never waited for.
pub fn when_gone(shell: &str) {
    let script = format!(
        "while kill -0 {} 2>/dev/null; do sleep 1; done; {shell}",
        std::process::id()
    );
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
}

/// Stores of their own for a fleet of replicas: a fresh PostgreSQL database and S3 prefix.
pub struct Fleet {
    metadata: String,
    blobs: String,
    s3_env: Vec<(&'static str, String)>,
}

impl Fleet {
    /// On the test process's shared PostgreSQL cluster and S3 server.
    pub fn new() -> Fleet {
        Fleet::on(postgres::Postgres::shared(), s3::S3::shared())
    }

    /// On the given servers (fault tests stop and start their own).
    pub fn on(pg: &postgres::Postgres, s3: &s3::S3) -> Fleet {
        let metadata = pg.fresh_database();
        let name = metadata
            .rsplit('/')
            .next()
            .expect("a database name")
            .to_owned();
        Fleet {
            metadata,
            blobs: format!("s3://{}/{name}", s3::BUCKET),
            s3_env: s3.env(),
        }
    }

    /// The PostgreSQL URL the fleet shares.
    pub fn metadata(&self) -> &str {
        &self.metadata
    }

    /// `sigil serve` for a replica on its own data directory `data`.
    pub fn command(&self, data: &Path) -> Command {
        let mut cmd = Sigil::command(data, &[]);
        cmd.args(["--metadata", &self.metadata, "--blobs", &self.blobs])
            .envs(self.s3_env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// A replica with the test account, on a data directory of its own.
    pub fn replica(&self) -> Sigil {
        self.replica_with(|_| {})
    }

    /// A replica with the test account, its command changed by `adjust` first.
    pub fn replica_with(&self, adjust: impl FnOnce(&mut Command)) -> Sigil {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("data");
        let mut cmd = self.command(&data);
        adjust(&mut cmd);
        cmd.env("SIGIL_ACCOUNT_SID", ACCOUNT_SID)
            .env("SIGIL_AUTH_TOKEN", AUTH_TOKEN);
        let mut s = Sigil::spawn_command(cmd, &data);
        s._dir = Some(dir);
        s
    }
}

/// Runs tests/interop/twilio_sdk.py (the official `twilio` Python package) against the API at
/// `api`, resolving a name as `resolve` says (`NAME=IP`) when set; fails the test if the
/// script fails. Returns the file of every exchange it recorded.
pub fn run_python_interop(api: &str, resolve: Option<&str>) -> tempfile::NamedTempFile {
    let record = tempfile::NamedTempFile::new().expect("temp file");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/twilio_sdk.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .env("PYTHONPATH", python_path())
        .env("SIGIL_API_URL", api)
        .env("SIGIL_ACCOUNT_SID", ACCOUNT_SID)
        .env("SIGIL_AUTH_TOKEN", AUTH_TOKEN)
        .env("SIGIL_RECORD", record.path());
    match resolve {
        Some(r) => cmd.env("SIGIL_RESOLVE", r),
        None => cmd.env_remove("SIGIL_RESOLVE"),
    };
    let out = cmd.output().expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "interop script failed against {api}:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    record
}

/// Runs the unmodified `twilio-run` CLI `bin` in `dir` with the test account, aimed at the
/// API at `api` by deploy/twilio-run-preload.js (with `host` as the Host header, when the
/// API is reached by address through an edge); its output. Fails the test if it fails.
pub fn run_twilio_run(
    bin: &Path,
    dir: &Path,
    api: &str,
    host: Option<&str>,
    args: &[&str],
) -> String {
    let preload = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/twilio-run-preload.js");
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .args(["--username", ACCOUNT_SID, "--password", AUTH_TOKEN])
        .current_dir(dir)
        .env("NODE_OPTIONS", format!("--require {preload}"))
        .env("SIGIL_API_URL", api)
        .env("CI", "true")
        .env_remove("HTTP_PROXY");
    match host {
        Some(h) => cmd.env("SIGIL_API_HOST", h),
        None => cmd.env_remove("SIGIL_API_HOST"),
    };
    let out = cmd.output().expect("twilio-run runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "twilio-run {args:?} failed:\n{text}");
    text
}

/// Runs `sigil ARGS` in `dir` against the server, with the test account's credentials;
/// (exit code, stdout, stderr).
pub fn sigil_cli(sigil: &Sigil, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sigil"));
    cmd.env("SIGIL_API_URL", &sigil.api)
        .env("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
        .env("TWILIO_AUTH_TOKEN", AUTH_TOKEN);
    run_cli(cmd.args(args).current_dir(dir))
}

/// Runs a prepared `sigil` command; (exit code, stdout, stderr).
pub fn run_cli(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd.stdin(Stdio::null()).output().expect("sigil runs");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A client of the edge.
pub struct Edge {
    pub http: reqwest::blocking::Client,
    pub http_port: u16,
    pub https_port: u16,
}

/// An edge response.
#[derive(Debug)]
pub struct EdgeResp {
    pub status: u16,
    pub version: reqwest::Version,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl EdgeResp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ascii"))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    #[track_caller]
    pub fn expect(self, status: u16) -> EdgeResp {
        assert_eq!(
            self.status,
            status,
            "unexpected status; headers {:?} body {}",
            self.headers,
            self.text()
        );
        self
    }
}

impl Edge {
    /// `http://{domain}:{port}{path}`.
    pub fn url(&self, domain: &str, path: &str) -> String {
        format!("http://{domain}:{}{path}", self.http_port)
    }
    /// `https://{domain}:{port}{path}`.
    pub fn tls_url(&self, domain: &str, path: &str) -> String {
        format!("https://{domain}:{}{path}", self.https_port)
    }
    /// Sends a request built from this client.
    pub fn send(&self, rb: reqwest::blocking::RequestBuilder) -> EdgeResp {
        let r = rb.send().expect("edge answers");
        EdgeResp {
            status: r.status().as_u16(),
            version: r.version(),
            headers: r.headers().clone(),
            body: r.bytes().expect("body").to_vec(),
        }
    }
    /// GET with extra headers.
    pub fn get(&self, url: &str, headers: &[(&str, &str)]) -> EdgeResp {
        let mut rb = self.http.get(url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        self.send(rb)
    }
}

/// A deployed site: (domain, environment sid, service sid).
pub struct Site {
    pub domain: String,
    pub env: String,
    pub svc: String,
}

impl Api {
    /// Creates a Service with a production Environment, uploads `files` as asset versions
    /// (path, visibility, content, content type), builds and deploys them.
    pub fn deploy_site(&self, name: &str, files: &[(&str, &str, &[u8], &str)]) -> Site {
        let svc = self.service(name);
        let env = self.environment(&svc, "production", None);
        let site = Site {
            domain: env.s("domain_name"),
            env: env.s("sid"),
            svc,
        };
        self.redeploy(&site, files);
        site
    }

    /// The Build `site`'s Environment serves now.
    pub fn active_build(&self, site: &Site) -> String {
        self.get(&format!(
            "/v1/Services/{}/Environments/{}",
            site.svc, site.env
        ))
        .expect(200)
        .s("build_sid")
    }

    /// Builds `files` and deploys them to `site`; returns the Build SID.
    pub fn redeploy(&self, site: &Site, files: &[(&str, &str, &[u8], &str)]) -> String {
        let versions: Vec<String> = files
            .iter()
            .map(|(path, vis, content, ctype)| {
                let kind = if ctype.starts_with("function") {
                    "Functions"
                } else {
                    "Assets"
                };
                let ctype = if kind == "Functions" {
                    "application/javascript"
                } else {
                    ctype
                };
                let (_, v) = self.version(&site.svc, kind, path, vis, content, ctype);
                format!("{kind}:{v}")
            })
            .collect();
        let assets: Vec<&str> = versions
            .iter()
            .filter_map(|v| v.strip_prefix("Assets:"))
            .collect();
        let functions: Vec<&str> = versions
            .iter()
            .filter_map(|v| v.strip_prefix("Functions:"))
            .collect();
        let (build, status) = self.build(&site.svc, &assets, &functions);
        assert_eq!(status, "completed");
        self.deploy(site, &build);
        build
    }

    /// Deploys an existing Build.
    pub fn deploy(&self, site: &Site, build: &str) {
        self.post(
            &format!(
                "/v1/Services/{}/Environments/{}/Deployments",
                site.svc, site.env
            ),
            &[("BuildSid", build)],
        )
        .expect(201);
    }
}

/// A PYTHONPATH under which `import twilio` works (installed with pip into the test build's
/// temp dir on first use; CI installs it up front).
pub fn python_path() -> PathBuf {
    let deps = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pydeps");
    let importable = |path: &PathBuf| {
        Command::new("python3")
            .args(["-c", "import twilio, requests"])
            .env("PYTHONPATH", path)
            .status()
            .is_ok_and(|s| s.success())
    };
    if !importable(&deps) {
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--target",
            ])
            .arg(&deps)
            .arg("twilio>=9,<10")
            .output()
            .expect("python3 runs");
        assert!(
            out.status.success(),
            "pip install twilio failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            importable(&deps),
            "twilio is not importable after pip install"
        );
    }
    deps
}

/// Copies a directory tree (test fixtures into a scratch directory).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let dest = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), dest).expect("copy");
        }
    }
}

/// The `twilio-run` CLI (npm package `twilio-run@5`), installed with npm into the test
/// build's temp dir on first use (CI's `.ci/run` installs it up front).
pub fn twilio_run() -> PathBuf {
    let prefix = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("npm-tools");
    let bin = prefix.join("node_modules/.bin/twilio-run");
    if !bin.exists() {
        let out = Command::new("npm")
            .args([
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                "--prefix",
            ])
            .arg(&prefix)
            .arg("twilio-run@5")
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm install twilio-run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    bin
}

/// The X-Twilio-Signature the official `twilio` Python package's RequestValidator computes.
pub fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    // A dict with getall(), like the multi-dicts of Flask, so repeated keys keep every value.
    let script = "import json, sys\n\
from twilio.request_validator import RequestValidator\n\
class Multi(dict):\n    def getall(self, k):\n        return self[k]\n\
a = json.load(sys.stdin)\n\
p = Multi()\n\
for k, v in a['params']:\n    p.setdefault(k, []).append(v)\n\
print(RequestValidator(a['token']).compute_signature(a['url'], p))\n";
    let input = serde_json::json!({"token": token, "url": url, "params": params});
    let mut child = Command::new("python3")
        .args(["-c", script])
        .env("PYTHONPATH", python_path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(out.status.success(), "python signature failed");
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

/// A response: status, headers, raw body and (when JSON) the parsed body.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Resp {
    /// Asserts the status, showing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts a Twilio error with this status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: u64) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(
            self.json["code"], code,
            "unexpected code; body: {}",
            self.text
        );
        self
    }

    /// A string field of the JSON body.
    #[track_caller]
    pub fn s(&self, field: &str) -> String {
        self.json[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} is not a string in {}", self.text))
            .to_owned()
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }
}

/// An HTTP client for the API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    creds: Option<(String, String)>,
    http: reqwest::blocking::Client,
}

/// One multipart part: (name, bytes, filename and content type for a file part).
pub struct Part<'a> {
    pub name: &'a str,
    pub bytes: Vec<u8>,
    pub file: Option<(&'a str, &'a str)>,
}

impl<'a> Part<'a> {
    pub fn text(name: &'a str, value: &str) -> Part<'a> {
        Part {
            name,
            bytes: value.as_bytes().to_vec(),
            file: None,
        }
    }
    pub fn file(name: &'a str, bytes: Vec<u8>, filename: &'a str, ctype: &'a str) -> Part<'a> {
        Part {
            name,
            bytes,
            file: Some((filename, ctype)),
        }
    }
}

impl Api {
    /// The API through an edge at `edge`: `http://serverless.localhost:PORT`, resolved there.
    pub fn through_edge(edge: std::net::SocketAddr) -> Api {
        Api {
            base: format!("http://serverless.localhost:{}", edge.port()),
            creds: Some((ACCOUNT_SID.to_owned(), AUTH_TOKEN.to_owned())),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .resolve("serverless.localhost", edge)
                .build()
                .expect("client"),
        }
    }

    pub fn new(base: &str, creds: Option<(&str, &str)>) -> Api {
        Api {
            base: base.to_owned(),
            creds: creds.map(|(u, p)| (u.to_owned(), p.to_owned())),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("client"),
        }
    }

    /// The same server with other credentials.
    pub fn with_creds(&self, user: &str, pass: &str) -> Api {
        Api {
            creds: Some((user.to_owned(), pass.to_owned())),
            ..self.clone()
        }
    }

    /// The same server without credentials.
    pub fn anonymous(&self) -> Api {
        Api {
            creds: None,
            ..self.clone()
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends a request and validates the JSON it gets back against the spec.
    pub fn send(&self, rb: reqwest::blocking::RequestBuilder, method: &str, url: &str) -> Resp {
        let rb = match &self.creds {
            Some((u, p)) => rb.basic_auth(u, Some(p)),
            None => rb,
        };
        let r = rb.send().expect("request is answered");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().expect("body");
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        if status == 204 {
            assert!(text.is_empty(), "204 with a body: {text}");
        } else {
            let path = reqwest::Url::parse(url).expect("url").path().to_owned();
            if path.starts_with("/v1/") {
                spec::validate(method, &path, status, &json);
            }
        }
        Resp {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        let url = self.url(path);
        self.send(self.http.get(&url), "GET", &url)
    }

    pub fn delete(&self, path: &str) -> Resp {
        let url = self.url(path);
        self.send(self.http.delete(&url), "DELETE", &url)
    }

    /// POSTs a form body of (name, value) pairs (repeated names allowed).
    pub fn post(&self, path: &str, form: &[(&str, &str)]) -> Resp {
        let url = self.url(path);
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let rb = self
            .http
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(rb, "POST", &url)
    }

    /// Any method with a raw body.
    pub fn raw(&self, method: &str, path: &str, ctype: Option<&str>, body: Vec<u8>) -> Resp {
        let url = self.url(path);
        let mut rb = self
            .http
            .request(method.parse().expect("method"), &url)
            .body(body);
        if let Some(c) = ctype {
            rb = rb.header("content-type", c);
        }
        self.send(rb, method, &url)
    }

    /// A multipart upload.
    pub fn upload(&self, path: &str, parts: Vec<Part<'_>>) -> Resp {
        let url = self.url(path);
        let mut form = reqwest::blocking::multipart::Form::new();
        for p in parts {
            let mut part = reqwest::blocking::multipart::Part::bytes(p.bytes);
            if let Some((filename, ctype)) = p.file {
                part = part.file_name(filename.to_owned());
                // An empty type sends the part without a Content-Type.
                if !ctype.is_empty() {
                    part = part.mime_str(ctype).expect("mime");
                }
            }
            form = form.part(p.name.to_owned(), part);
        }
        self.send(self.http.post(&url).multipart(form), "POST", &url)
    }

    // ---- shortcuts for building fixtures ----

    pub fn service(&self, unique_name: &str) -> String {
        self.post(
            "/v1/Services",
            &[("UniqueName", unique_name), ("FriendlyName", unique_name)],
        )
        .expect(201)
        .s("sid")
    }

    pub fn environment(&self, svc: &str, unique_name: &str, suffix: Option<&str>) -> Resp {
        let mut form = vec![("UniqueName", unique_name)];
        if let Some(s) = suffix {
            form.push(("DomainSuffix", s));
        }
        self.post(&format!("/v1/Services/{svc}/Environments"), &form)
            .expect(201)
    }

    /// Creates an Asset (or Function, with `kind` = "Functions"); returns its Versions URL.
    pub fn versions_url(&self, svc: &str, kind: &str) -> String {
        let res = self
            .post(
                &format!("/v1/Services/{svc}/{kind}"),
                &[("FriendlyName", "a")],
            )
            .expect(201)
            .s("sid");
        format!("/v1/Services/{svc}/{kind}/{res}/Versions")
    }

    /// Creates an Asset (or Function, with `kind` = "Functions") and uploads one version.
    /// Returns (resource sid, version sid).
    pub fn version(
        &self,
        svc: &str,
        kind: &str,
        path: &str,
        visibility: &str,
        content: &[u8],
        ctype: &str,
    ) -> (String, String) {
        let res = self
            .post(
                &format!("/v1/Services/{svc}/{kind}"),
                &[("FriendlyName", path)],
            )
            .expect(201)
            .s("sid");
        let ver = self
            .upload(
                &format!("/v1/Services/{svc}/{kind}/{res}/Versions"),
                vec![
                    Part::text("Path", path),
                    Part::text("Visibility", visibility),
                    Part::file("Content", content.to_vec(), "file", ctype),
                ],
            )
            .expect(201)
            .s("sid");
        (res, ver)
    }

    /// Creates a Build from versions and waits until it is no longer `building`.
    pub fn build(&self, svc: &str, assets: &[&str], functions: &[&str]) -> (String, String) {
        let mut form: Vec<(&str, &str)> = assets.iter().map(|a| ("AssetVersions", *a)).collect();
        form.extend(functions.iter().map(|f| ("FunctionVersions", *f)));
        let sid = self
            .post(&format!("/v1/Services/{svc}/Builds"), &form)
            .expect(201)
            .s("sid");
        let status = self.wait_build(svc, &sid);
        (sid, status)
    }

    pub fn wait_build(&self, svc: &str, build: &str) -> String {
        self.wait_build_within(svc, build, Duration::from_secs(6))
    }

    /// The status of a Build once it is no longer `building`, waiting at most `within`
    /// (a Build with Functions waits for npm).
    pub fn wait_build_within(&self, svc: &str, build: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let st = self
                .get(&format!("/v1/Services/{svc}/Builds/{build}/Status"))
                .expect(200)
                .s("status");
            if st != "building" {
                return st;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("build {build} still building after {within:?}");
    }
}

/// Percent-encodes a form name or value.
pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
