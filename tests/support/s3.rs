//! A throwaway S3 server for tests: s3s-fs (`cargo install s3s-fs --version 0.14.1 --features
//! binary --locked`; `.ci/run` installs it) on a free loopback port over a temp directory,
//! with one bucket, stopped and its directory removed when the test process ends — by a
//! watchdog, so even a test binary killed midway leaves no server and no files behind.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The bucket every test uses (each under a prefix of its own).
pub const BUCKET: &str = "sigil";
/// Credentials of the test server.
pub const ACCESS_KEY: &str = "sigiltestkey";
/// Its secret (checked never to show in sigil's output).
pub const SECRET_KEY: &str = "sigil_test_secret_never_shown_9d2e";

/// A running S3 server.
pub struct S3 {
    port: u16,
    root: PathBuf,
    child: Mutex<Option<Child>>,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let in_cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin/s3s-fs"));
    match in_cargo_home {
        Some(p) if p.exists() => p,
        _ => PathBuf::from("s3s-fs"),
    }
}

impl S3 {
    /// The server shared by this test process, started on first use.
    pub fn shared() -> &'static S3 {
        static SERVER: OnceLock<S3> = OnceLock::new();
        SERVER.get_or_init(S3::start)
    }

    /// Starts a new server with an empty bucket.
    pub fn start() -> S3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("s3");
        std::fs::create_dir_all(root.join(BUCKET)).expect("bucket");
        let port = super::free_port();
        // Removed with the server gone (its own watchdog, below, kills it at the same moment:
        // nothing writes to it once the tests are done).
        super::when_gone(&format!("rm -rf {}", super::sh_quoted(dir.path())));
        let s3 = S3 {
            port,
            root,
            child: Mutex::new(None),
            _dir: dir,
        };
        s3.start_server();
        s3
    }

    /// Starts the server (again, after [`S3::stop`]) and waits until it accepts connections.
    pub fn start_server(&self) {
        let child = Command::new(binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.root)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "s3s-fs: {e} (install it: cargo install s3s-fs --version 0.14.1 --features binary --locked)"
                )
            });
        super::when_gone(&format!("kill {} 2>/dev/null", child.id()));
        *self.child.lock().expect("lock") = Some(child);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "s3s-fs does not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Kills the server; [`S3::start_server`] brings it back with its content.
    pub fn stop(&self) {
        if let Some(mut child) = self.child.lock().expect("lock").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The environment sigil needs to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            (
                "AWS_ENDPOINT_URL",
                format!("http://127.0.0.1:{}", self.port),
            ),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The bucket's directory: s3s-fs keeps each object as the file at its key.
    pub fn bucket_dir(&self) -> PathBuf {
        self.root.join(BUCKET)
    }
}
