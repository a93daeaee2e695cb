//! A throwaway PostgreSQL cluster for tests: `initdb` in a temp directory (as the `postgres`
//! user when the tests run as root: initdb refuses root), a server on a free loopback port,
//! stopped and its directory removed when the test process ends — by a watchdog, so even a
//! test binary killed midway leaves no server and no files behind. Each caller gets a database
//! of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A running cluster.
pub struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

/// Debian's server binaries (`apt-get install postgresql`), newest version first; else PATH.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    versions.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions.pop().unwrap_or_default()
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// `program args…` as the cluster's owner, in `/` (the owner may not enter the test's
/// working directory).
fn as_owner(bin: &Path, program: &str) -> Command {
    let exe = bin.join(program);
    let mut c = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    c.current_dir("/");
    c
}

/// Runs `cmd`; fails the test if it fails. Returns what it printed on stdout.
fn run(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
        panic!("{what}: {e} (install PostgreSQL's server: apt-get install postgresql)")
    });
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    /// The cluster shared by this test process, started on first use.
    pub fn shared() -> &'static Postgres {
        static CLUSTER: OnceLock<Postgres> = OnceLock::new();
        CLUSTER.get_or_init(Postgres::start)
    }

    /// Starts a new cluster.
    pub fn start() -> Postgres {
        Postgres::start_with(|_| {})
    }

    /// Starts a new cluster that takes TLS connections only, with this certificate chain and
    /// key (PEM): plain TCP connections are refused by `pg_hba.conf`.
    pub fn start_tls_only(chain_pem: &str, key_pem: &str) -> Postgres {
        Postgres::start_with(|data| {
            std::fs::write(data.join("server.crt"), chain_pem).expect("cert");
            std::fs::write(data.join("server.key"), key_pem).expect("key");
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                data.join("server.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .expect("chmod");
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
            )
            .expect("pg_hba.conf");
            let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
            conf.push_str(
                "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n",
            );
            std::fs::write(data.join("postgresql.conf"), conf).expect("conf");
        })
    }

    /// Starts a new cluster, `setup` changing its data directory before the server starts.
    fn start_with(setup: impl FnOnce(&Path)) -> Postgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let data = dir.path().join("pg");
        std::fs::create_dir(&data).expect("mkdir");
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path()),
                "chown",
            );
        }
        run(
            as_owner(&bin, "initdb")
                .args([
                    "--auth=trust",
                    "--username=sigil",
                    "--encoding=UTF8",
                    "--no-sync",
                    "-D",
                ])
                .arg(&data),
            "initdb",
        );
        setup(&data);
        if is_root() {
            run(
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&data),
                "chown",
            );
        }
        let port = super::free_port();
        let pg = Postgres {
            bin,
            data,
            port,
            _dir: dir,
        };
        pg.start_server();
        super::when_gone(&format!(
            "{}; rm -rf {}",
            pg.ctl_command("stop -m immediate"),
            super::sh_quoted(pg._dir.path())
        ));
        pg
    }

    fn ctl_command(&self, action: &str) -> String {
        let ctl = self.bin.join("pg_ctl");
        let prefix = if is_root() {
            "runuser -u postgres -- "
        } else {
            ""
        };
        format!(
            "{prefix}{} -D {} {action}",
            super::sh_quoted(&ctl),
            super::sh_quoted(&self.data)
        )
    }

    /// Starts the server (again, after [`Postgres::stop`]) and waits until it accepts.
    pub fn start_server(&self) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.data.display()
        );
        run(
            as_owner(&self.bin, "pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(&self.data)
                .args(["-l"])
                .arg(self.data.join("log"))
                .args(["-o", &opts, "start"]),
            "pg_ctl start",
        );
    }

    /// Stops the server at once (as a crash would); [`Postgres::start_server`] brings it back.
    pub fn stop(&self) {
        run(&mut self.stop_command(), "pg_ctl stop");
    }

    /// `pg_ctl stop`, at once.
    fn stop_command(&self) -> Command {
        let mut c = as_owner(&self.bin, "pg_ctl");
        c.args(["-w", "-D"])
            .arg(&self.data)
            .args(["stop", "-m", "immediate"]);
        c
    }

    /// The cluster's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` on database `db` of this cluster; fails the test if it fails.
    /// Returns what it printed: rows only, unaligned, trimmed.
    pub fn sql(&self, db: &str, sql: &str) -> String {
        run(
            Command::new("psql")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-p",
                    &self.port.to_string(),
                    "-U",
                    "sigil",
                ])
                .args(["-d", db, "-qtAc", sql]),
            &format!("psql {sql:?}"),
        )
        .trim()
        .to_owned()
    }

    /// A URL of database `name`, created if it does not exist yet. The URL carries a
    /// password (trust authentication ignores it) so that tests can check it is never shown.
    pub fn database(&self, name: &str) -> String {
        assert!(name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        let exists = format!("SELECT 1 FROM pg_database WHERE datname = '{name}'");
        if self.sql("postgres", &exists) != "1" {
            self.sql("postgres", &format!("CREATE DATABASE {name}"));
        }
        format!(
            "postgres://sigil:{}@127.0.0.1:{}/{name}",
            PASSWORD, self.port
        )
    }

    /// The deadlocks the server detected in database `db`, read once no client is connected
    /// to it, within 30 s: a session reports its counts when it ends (PostgreSQL 15 and
    /// later; an older server's statistics collector could report them later still).
    pub fn deadlocks_once_idle(&self, db: &str) -> u64 {
        let query = |sql: &str| self.sql("postgres", &sql.replace("{db}", db));
        let version: u32 = query("SHOW server_version_num").parse().expect("a version");
        assert!(
            version >= 150_000,
            "PostgreSQL {version}: 15 or later needed"
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while query(
            "SELECT count(*) FROM pg_stat_activity
             WHERE datname = '{db}' AND backend_type = 'client backend'",
        ) != "0"
        {
            assert!(
                std::time::Instant::now() < deadline,
                "sessions on {db} still open after 30 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        query("SELECT deadlocks FROM pg_stat_database WHERE datname = '{db}'")
            .parse()
            .expect("a count")
    }

    /// A fresh database with a unique name.
    pub fn fresh_database(&self) -> String {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.database(&format!("t{}_{n}", std::process::id()))
    }
}

/// The password in every URL [`Postgres::database`] gives (to check it never shows).
pub const PASSWORD: &str = "pw_never_shown_4f1c";

/// A cluster of a test's own stops with it, before its directory goes (a server whose
/// directory went first could not be stopped by `pg_ctl` and ran on until it noticed, up to
/// a minute later). The shared one lives in a static and is stopped by its watchdog.
impl Drop for Postgres {
    fn drop(&mut self) {
        // Nothing to say if it was stopped already (a fault test's `stop`).
        let _ = self
            .stop_command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
