//! Command line and configuration: clap derive, every `serve` flag also from `SIGIL_<FLAG>`.
//! Validation happens once at start; a bad value exits with status 64 (EX_USAGE).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand};

/// sigil: an edge server for Twilio-style static assets with the Serverless v1 API.
#[derive(Debug, Parser)]
#[command(name = "sigil", version, about, args_override_self = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the edge (HTTP and HTTPS) and the API. Every flag can also be set as
    /// SIGIL_<FLAG>; the first four are the ones to set first.
    Serve(Box<ServeArgs>),
    /// Manage accounts and their credentials (works while a server runs on the same data).
    Account(AccountArgs),
    /// Deploy a Serverless Toolkit project (assets/ or static/, functions/) to a sigil API.
    Deploy(DeployArgs),
    /// List an Environment's Deployments, newest first, marking the active one.
    Deployments(EnvironmentArgs),
    /// Re-deploy the previous (or a given) Build of an Environment.
    Rollback {
        /// Which Environment.
        #[command(flatten)]
        target: EnvironmentArgs,
        /// The Build to deploy [default: the one deployed before the active one].
        #[arg(long)]
        to: Option<String>,
    },
    /// Deploy the Build active in one Environment to another.
    Promote {
        /// The API and Service.
        #[command(flatten)]
        client: ClientArgs,
        /// Service unique name [default: `name` in ./package.json].
        #[arg(long)]
        service: Option<String>,
        /// Source Environment's domain suffix (empty: production).
        #[arg(long)]
        from: String,
        /// Target Environment's domain suffix (empty: production); created if missing.
        #[arg(long, default_value = "")]
        to: String,
    },
    /// Copy a single-node installation (--data) to the shared stores: every record with its
    /// SID, every blob; re-runnable. Stop `sigil serve` on the data directory first.
    CopyStore(CopyStoreArgs),
    /// Compute or check an X-Twilio-Signature ("why was my webhook fetch refused?").
    Signature {
        /// compute or verify.
        #[command(subcommand)]
        command: SignatureCommand,
    },
}

/// `sigil copy-store`.
#[derive(Debug, Args)]
pub struct CopyStoreArgs {
    /// The data directory to copy from (the server's `--data`).
    #[arg(long, env = "SIGIL_DATA", default_value = "./sigil-data")]
    pub data: PathBuf,
    /// The PostgreSQL database to copy the metadata to.
    #[arg(long, env = "SIGIL_METADATA", hide_env_values = true)]
    pub metadata: SecretUrl,
    /// The bucket to copy the blobs to (`s3://bucket[/prefix]`, AWS_* variables).
    #[arg(long, env = "SIGIL_BLOBS")]
    pub blobs: String,
}

/// Where the API is and who calls it (deploy, deployments, rollback, promote).
#[derive(Debug, Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the sigil API (its API listener, or `https://serverless.{domain}` on the edge).
    #[arg(long, env = "SIGIL_API_URL", default_value = "http://127.0.0.1:8081")]
    pub api_url: String,
    /// Account SID (or API key SID).
    #[arg(long, env = "TWILIO_ACCOUNT_SID")]
    pub account_sid: Option<String>,
    /// Auth token (or API key secret); prefer the environment variable.
    #[arg(long, env = "TWILIO_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
}

/// `sigil deploy`.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// The project directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// The API and credentials.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Service unique name [default: `name` in the project's package.json].
    #[arg(long)]
    pub service: Option<String>,
    /// Environment domain suffix (`dev`, `stage`, …); empty is production.
    #[arg(long, default_value = "")]
    pub environment: String,
    /// Runtime of the Build (`node22`, …) [default: the server's].
    #[arg(long)]
    pub runtime: Option<String>,
    /// Uploads at once.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// An Environment of a Service, on an API.
#[derive(Debug, Clone, Args)]
pub struct EnvironmentArgs {
    /// The API and credentials.
    #[command(flatten)]
    pub client: ClientArgs,
    /// Service unique name [default: `name` in ./package.json].
    #[arg(long)]
    pub service: Option<String>,
    /// Environment domain suffix; empty is production.
    #[arg(long, default_value = "")]
    pub environment: String,
}

/// What a signature is computed over.
#[derive(Debug, Clone, Args)]
pub struct SignedRequest {
    /// The full URL Twilio requested, exactly as sent (scheme, host, port, path, query).
    #[arg(long)]
    pub url: String,
    /// The auth token.
    #[arg(long)]
    pub token: String,
    /// A form parameter of a POST, KEY=VALUE (repeat for more; order does not matter).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// A JSON (non-form) body: validated through the URL's bodySHA256 parameter.
    #[arg(long, conflicts_with = "params")]
    pub body_file: Option<PathBuf>,
}

/// `sigil signature …`.
#[derive(Debug, Subcommand)]
pub enum SignatureCommand {
    /// Print the signature Twilio would send for this request.
    Compute(SignedRequest),
    /// Check a signature; prints valid or invalid, the strings signed and the URL variants
    /// tried; exits 0 when valid, 1 when not.
    Verify {
        /// The request.
        #[command(flatten)]
        request: SignedRequest,
        /// The X-Twilio-Signature header value received.
        #[arg(long)]
        signature: String,
    },
}

/// What a `sigil serve` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeRole {
    /// The API and the edge in one process (the default).
    All,
    /// The API only.
    Control,
    /// The edge only, following the shared store's change feed.
    Edge,
}

/// Flags of `sigil serve`: the four to set first, then the rest by group.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory for blobs and metadata (created if missing).
    #[arg(long, env = "SIGIL_DATA", default_value = "./sigil-data")]
    pub data: PathBuf,
    /// Address of the edge's plain-HTTP listener (IP:PORT or localhost:PORT).
    #[arg(long, env = "SIGIL_HTTP", default_value = "127.0.0.1:8080", value_parser = listen_addr)]
    pub http: SocketAddr,
    /// Address of the edge's HTTPS listener, HTTP/2 and HTTP/1.1 by ALPN (IP:PORT or
    /// localhost:PORT).
    #[arg(long, env = "SIGIL_HTTPS", default_value = "127.0.0.1:8443", value_parser = listen_addr)]
    pub https: SocketAddr,
    /// Address of the control-plane (API) listener (IP:PORT or localhost:PORT).
    #[arg(long, env = "SIGIL_API", default_value = "127.0.0.1:8081", value_parser = listen_addr)]
    pub api: SocketAddr,

    /// Base domain of Environments: `{unique_name}-{4 digits}[-{suffix}].{domain}`.
    #[arg(
        long,
        env = "SIGIL_DOMAIN",
        default_value = "localhost",
        help_heading = "Names and proxies"
    )]
    pub domain: String,
    /// Base of every `url` and `links` entry in API responses
    /// [default: http:// + the API listener's address].
    #[arg(long, env = "SIGIL_PUBLIC_API_URL", help_heading = "Names and proxies")]
    pub public_api_url: Option<String>,
    /// Addresses or networks (CIDR) of proxies whose X-Forwarded-Proto / X-Forwarded-Host are
    /// believed; comma-separated or repeated.
    #[arg(
        long,
        env = "SIGIL_TRUSTED_PROXY",
        value_delimiter = ',',
        help_heading = "Names and proxies"
    )]
    pub trusted_proxy: Vec<String>,

    /// Fix the first account's SID (with --auth-token); otherwise one is created on first
    /// start and its credentials printed once.
    #[arg(
        long,
        env = "SIGIL_ACCOUNT_SID",
        requires = "auth_token",
        help_heading = "First account"
    )]
    pub account_sid: Option<String>,
    /// The auth token of --account-sid (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "SIGIL_AUTH_TOKEN",
        hide_env_values = true,
        requires = "account_sid",
        help_heading = "First account"
    )]
    pub auth_token: Option<String>,

    /// Metadata in PostgreSQL, shared by every sigil process given the same URL
    /// (`postgres://user:password@host:port/db`; prefer the environment variable: flags show
    /// in `ps`) [default: SQLite in --data].
    #[arg(
        long,
        env = "SIGIL_METADATA",
        hide_env_values = true,
        help_heading = "Storage"
    )]
    pub metadata: Option<SecretUrl>,
    /// Blobs in an S3-compatible bucket, shared by every sigil process given the same URL
    /// (`s3://bucket[/prefix]`; endpoint and credentials from AWS_ENDPOINT_URL, AWS_REGION,
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ALLOW_HTTP) [default: only --data/blobs].
    #[arg(long, env = "SIGIL_BLOBS", help_heading = "Storage")]
    pub blobs: Option<String>,
    /// Asset and Function Versions that no Build holds are deleted, with their content, this
    /// many days after they were uploaded (Twilio keeps them 30).
    #[arg(
        long,
        env = "SIGIL_RETENTION_DAYS",
        default_value_t = 30,
        help_heading = "Storage"
    )]
    pub retention_days: u32,
    /// How much blob content the edge keeps mapped, in MiB.
    #[arg(
        long,
        env = "SIGIL_CACHE_SIZE",
        default_value_t = 1024,
        help_heading = "Storage"
    )]
    pub cache_size: u64,
    /// Plain-HTTP/1.1 bodies (and those of HTTPS/1.1 connections `--ktls` handed to the
    /// kernel) of at least this many bytes (`N`), or of `N` to `M` bytes (`N-M`), leave
    /// through `sendfile` from the blob's file, others are copied from its map; `off` copies
    /// all. `auto`: as measured for this CPU (README, "Performance": off on AMD, where copying
    /// cost less at every size; 16384-131071 elsewhere, where copying cost less from 128 KiB).
    #[arg(
        long,
        env = "SIGIL_SENDFILE_FROM",
        default_value = "auto",
        value_parser = sendfile_from,
        help_heading = "Storage"
    )]
    pub sendfile_from: SendfileFrom,

    /// What this process runs: `all` (the API and the edge, one process), `control` (the API
    /// listener only) or `edge` (the edge's listeners only; needs --metadata).
    #[arg(long, env = "SIGIL_ROLE", value_enum, default_value_t = ServeRole::All, help_heading = "Fleet")]
    pub role: ServeRole,
    /// Address of the admin listener: `/healthz`, `/readyz` and `/metrics`, without
    /// authentication (keep it private) [default: none].
    #[arg(long, env = "SIGIL_ADMIN", value_parser = listen_addr, help_heading = "Fleet")]
    pub admin: Option<SocketAddr>,
    /// An edge's control plane (`http://host:port`): requests for the API's host names are
    /// proxied to it [default: an edge serves no API].
    #[arg(long, env = "SIGIL_CONTROL_URL", help_heading = "Fleet")]
    pub control_url: Option<String>,
    /// An edge's disk cache of blobs and its route snapshot [default: --data].
    #[arg(long, env = "SIGIL_CACHE_DIR", help_heading = "Fleet")]
    pub cache_dir: Option<PathBuf>,
    /// Most bytes an edge keeps in --cache-dir; least recently used blobs are deleted past it
    /// [default: no limit].
    #[arg(long, env = "SIGIL_CACHE_MAX_BYTES", help_heading = "Fleet")]
    pub cache_max_bytes: Option<u64>,

    /// PEM certificate chain for HTTPS [default: the embedded development certificate for
    /// localhost and *.localhost, see certs/].
    #[arg(long, env = "SIGIL_CERT", requires = "key", help_heading = "TLS")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, env = "SIGIL_KEY", requires = "cert", help_heading = "TLS")]
    pub key: Option<PathBuf>,
    /// After the handshake, hand an HTTPS/1.1 connection's encryption to the kernel (kernel
    /// TLS: Linux with CONFIG_TLS), so bodies are written, or sent with `sendfile`, without
    /// rustls. Where the kernel has no TLS, or not for the connection's cipher, rustls keeps
    /// it; so does HTTP/2 chosen by ALPN. Off by default: README, "Performance".
    #[arg(long, env = "SIGIL_KTLS", help_heading = "TLS")]
    pub ktls: bool,
    /// Seconds a TLS handshake may take.
    #[arg(
        long,
        env = "SIGIL_TLS_HANDSHAKE_TIMEOUT",
        default_value_t = 10,
        help_heading = "TLS"
    )]
    pub tls_handshake_timeout: u64,

    /// Cache-Control of public assets.
    #[arg(
        long,
        env = "SIGIL_CACHE_CONTROL_PUBLIC",
        default_value = "public, max-age=60",
        help_heading = "Responses"
    )]
    pub cache_control_public: String,
    /// Cache-Control of protected assets (they are per-request signed: shared caches must not keep them).
    #[arg(
        long,
        env = "SIGIL_CACHE_CONTROL_PROTECTED",
        default_value = "private, no-cache",
        help_heading = "Responses"
    )]
    pub cache_control_protected: String,

    /// Largest request body the edge reads on a POST, in bytes.
    #[arg(long, env = "SIGIL_EDGE_MAX_BODY", default_value_t = 64 * 1024, help_heading = "Limits")]
    pub edge_max_body: usize,
    /// Seconds a client may take to send a request's headers (slowloris; also bounds how long
    /// an idle keep-alive connection waits for its next request).
    #[arg(
        long,
        env = "SIGIL_HEADER_READ_TIMEOUT",
        default_value_t = 10,
        help_heading = "Limits"
    )]
    pub header_read_timeout: u64,
    /// Seconds a client may take to send a whole request body (uploads, edge POSTs); after
    /// it 408.
    #[arg(
        long,
        env = "SIGIL_BODY_READ_TIMEOUT",
        default_value_t = 120,
        help_heading = "Limits"
    )]
    pub body_read_timeout: u64,
    /// Seconds in-flight requests get to finish after SIGTERM / SIGINT.
    #[arg(
        long,
        env = "SIGIL_DRAIN_TIMEOUT",
        default_value_t = 10,
        help_heading = "Limits"
    )]
    pub drain_timeout: u64,
    /// Open connections at most, across all listeners; more are closed at once.
    #[arg(
        long,
        env = "SIGIL_MAX_CONNECTIONS",
        default_value_t = 10_000,
        help_heading = "Limits"
    )]
    pub max_connections: usize,
    /// Largest request head (request line and headers) in bytes; above it 431 (≥ 8192).
    #[arg(long, env = "SIGIL_MAX_HEADER_BYTES", default_value_t = 32 * 1024, help_heading = "Limits")]
    pub max_header_bytes: usize,
    /// Longest request target (path and query) in bytes; above it 414.
    #[arg(long, env = "SIGIL_MAX_URI_BYTES", default_value_t = 8 * 1024, help_heading = "Limits")]
    pub max_uri_bytes: usize,
    /// Runtime worker threads [default: the CPUs this process may run on]; 1 uses the
    /// current-thread scheduler.
    #[arg(long, env = "SIGIL_WORKERS", help_heading = "Limits")]
    pub workers: Option<usize>,
    /// How more than one worker share the work: `stealing` (one work-stealing runtime) or
    /// `per-worker` (a current-thread runtime per worker, each accepting edge connections
    /// on its own SO_REUSEPORT listener; the API and background work run on the first).
    #[arg(
        long,
        env = "SIGIL_SCHEDULER",
        value_enum,
        default_value_t = Scheduler::Stealing,
        help_heading = "Limits"
    )]
    pub scheduler: Scheduler,

    /// HTTP/2: concurrent streams per connection at most.
    #[arg(
        long,
        env = "SIGIL_H2_MAX_STREAMS",
        default_value_t = 256,
        help_heading = "HTTP/2"
    )]
    pub h2_max_streams: u32,
    /// HTTP/2: streams reset by the client before sigil answered them that may be pending at
    /// once; above it the connection gets GOAWAY (reset-flood protection).
    #[arg(
        long,
        env = "SIGIL_H2_MAX_PENDING_RESETS",
        default_value_t = 20,
        help_heading = "HTTP/2"
    )]
    pub h2_max_pending_resets: usize,
    /// HTTP/2: streams sigil may reset because of a client's protocol errors before the
    /// connection is closed (reset-flood protection).
    #[arg(
        long,
        env = "SIGIL_H2_MAX_ERROR_RESETS",
        default_value_t = 1024,
        help_heading = "HTTP/2"
    )]
    pub h2_max_error_resets: usize,

    /// One log line per edge request (`--access-log false` to turn it off).
    #[arg(long, env = "SIGIL_ACCESS_LOG", default_value_t = true, action = ArgAction::Set, help_heading = "Logging")]
    pub access_log: bool,
    /// One Log line per edge request in the API's Logs resource (`--request-logs false` to
    /// turn it off, e.g. under load tests).
    #[arg(long, env = "SIGIL_REQUEST_LOGS", default_value_t = true, action = ArgAction::Set, help_heading = "Logging")]
    pub request_logs: bool,
    /// Most Log lines a second per Environment in the Logs resource; past it lines are
    /// counted and left out, and the next line says how many (the access log keeps all).
    #[arg(
        long,
        env = "SIGIL_REQUEST_LOGS_RATE",
        default_value_t = 100,
        value_parser = clap::value_parser!(u32).range(1..),
        help_heading = "Logging"
    )]
    pub request_logs_rate: u32,

    /// The Node.js that runs Functions (20 or newer; a Build's `Runtime` runs on it).
    #[arg(
        long,
        env = "SIGIL_NODE",
        default_value = "node",
        help_heading = "Functions"
    )]
    pub node: PathBuf,
    /// The npm that installs a Build's `Dependencies`.
    #[arg(
        long,
        env = "SIGIL_NPM",
        default_value = "npm",
        help_heading = "Functions"
    )]
    pub npm: PathBuf,
    /// Where Builds' Function directories and installed dependencies live
    /// [default: --data/functions].
    #[arg(long, env = "SIGIL_FUNCTIONS_DIR", help_heading = "Functions")]
    pub functions_dir: Option<PathBuf>,
    /// Seconds a Function call may take; past it the answer is 504 and its worker is killed.
    #[arg(
        long,
        env = "SIGIL_FUNCTION_TIMEOUT",
        default_value_t = 10,
        help_heading = "Functions"
    )]
    pub function_timeout: u64,
    /// Memory cap of each Function worker, in MiB (its data segment; the JavaScript heap
    /// gets three quarters).
    #[arg(
        long,
        env = "SIGIL_FUNCTION_MEMORY",
        default_value_t = 256,
        help_heading = "Functions"
    )]
    pub function_memory: u64,
    /// Function calls at once per Environment (one worker each); more wait up to 2 s, then
    /// get 429.
    #[arg(
        long,
        env = "SIGIL_FUNCTION_CONCURRENCY",
        default_value_t = 8,
        help_heading = "Functions"
    )]
    pub function_concurrency: usize,
    /// Node workers alive at once on this host, over every Environment, busy and idle. A call
    /// that needs a new one past it ends the worker idle longest; with every worker busy it
    /// waits up to 2 s for one, then gets 503. Default: the memory sigil may use (the
    /// machine's, or its cgroup's limit) over --function-memory, so that the workers' caps
    /// together fit in it.
    #[arg(long, env = "SIGIL_FUNCTION_WORKERS", help_heading = "Functions")]
    pub function_workers: Option<usize>,
    /// The user Function workers run as when sigil runs as root.
    #[arg(
        long,
        env = "SIGIL_FUNCTION_USER",
        default_value = DEFAULT_FUNCTION_USER,
        help_heading = "Functions"
    )]
    pub function_user: String,
    /// Error replies of Functions carry the stack trace (for development).
    #[arg(long, env = "SIGIL_FUNCTION_DEBUG", default_value_t = false, action = ArgAction::Set, help_heading = "Functions")]
    pub function_debug: bool,
}

/// The user Function workers run as when sigil runs as root, unless told otherwise.
const DEFAULT_FUNCTION_USER: &str = "nobody";

/// The uid and gid of `name`, from the password database.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        (f.next()? == name).then_some(())?;
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

/// A URL that may carry a password: shown only without it (`Debug` included), so that a
/// logged configuration never holds the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// The URL itself, password included, for the code that connects.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL without its password.
    pub fn redacted(&self) -> String {
        crate::store::postgres::redact(&self.0)
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl std::str::FromStr for SecretUrl {
    type Err = std::convert::Infallible;
    /// Any text: it is checked where it is used, by messages that never repeat it (a parse
    /// error here would print the value, password and all).
    fn from_str(s: &str) -> Result<SecretUrl, Self::Err> {
        Ok(SecretUrl(s.to_owned()))
    }
}

/// `--scheduler`: how more than one worker share the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduler {
    /// One work-stealing runtime with `--workers` threads.
    Stealing,
    /// A current-thread runtime per worker, each with its own edge listeners.
    PerWorker,
}

/// `--sendfile-from`: `auto`, `off`, a size in bytes or a range of sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SendfileFrom {
    /// As measured for this CPU.
    Auto,
    /// Never.
    Off,
    /// Bodies of these many bytes.
    Bytes(RangeInclusive<usize>),
}

fn sendfile_from(value: &str) -> Result<SendfileFrom, String> {
    let bytes = |n: &str| n.parse::<usize>().ok().filter(|&n| n >= 1);
    let sizes = match value {
        "auto" => return Ok(SendfileFrom::Auto),
        "off" => return Ok(SendfileFrom::Off),
        v => match v.split_once('-') {
            None => bytes(v).map(|n| n..=usize::MAX),
            Some((n, m)) => bytes(n).zip(bytes(m)).map(|(n, m)| n..=m),
        },
    };
    match sizes {
        Some(sizes) if !sizes.is_empty() => Ok(SendfileFrom::Bytes(sizes)),
        _ => Err(format!(
            "{value:?}: expected auto, off, a number of bytes (at least 1) or a range N-M of them"
        )),
    }
}

/// `--sendfile-from auto`: off on AMD processors, where benches/compare.sh measured copying
/// from the map cheaper than `sendfile` at 16 KiB, 256 KiB and 8 MiB; elsewhere bodies of
/// 16 KiB up to 128 KiB (not including): on an Intel Xeon `sendfile` cost less than copying
/// at 16 and 64 KiB, more from 128 KiB on (README, "Performance").
pub fn auto_sendfile_from() -> Option<RangeInclusive<usize>> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let amd = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("vendor_id"))
        .is_some_and(|v| v.contains("AuthenticAMD"));
    (!amd).then_some(16 * 1024..=128 * 1024 - 1)
}

/// Parses a listener address: `IP:PORT`, `[IPv6]:PORT` or `localhost:PORT` (the loopback
/// address; binding a name that resolves elsewhere would surprise).
pub fn listen_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    if let Some(port) = value
        .strip_prefix("localhost:")
        .and_then(|p| p.parse::<u16>().ok())
    {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    Err("expected IP:PORT (e.g. 0.0.0.0:8080, 127.0.0.1:8080, [::]:8080) or localhost:PORT".into())
}

/// `sigil account …`.
#[derive(Debug, Args)]
pub struct AccountArgs {
    /// Directory for blobs and metadata (the server's `--data`).
    #[arg(
        long,
        env = "SIGIL_DATA",
        default_value = "./sigil-data",
        global = true
    )]
    pub data: PathBuf,
    /// The server's --metadata, when it keeps metadata in PostgreSQL (then --data is not read).
    #[arg(long, env = "SIGIL_METADATA", hide_env_values = true, global = true)]
    pub metadata: Option<SecretUrl>,
    /// What to do with accounts.
    #[command(subcommand)]
    pub command: AccountCommand,
}

/// Account operations.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account; prints its SID and auth token once.
    Create {
        /// A name to remember it by.
        #[arg(long, default_value = "sigil account")]
        friendly_name: String,
    },
    /// List accounts (SIDs and names; never tokens).
    List,
    /// API keys of an account.
    Key {
        /// What to do with keys.
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Auth token rotation: add a secondary token, promote it, or remove it.
    Token {
        /// What to do with tokens.
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// API key operations.
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key (`SK…`); prints its SID and secret once.
    Create {
        /// The account that owns the key.
        #[arg(long)]
        account: String,
        /// A name to remember it by.
        #[arg(long, default_value = "sigil key")]
        friendly_name: String,
    },
    /// Delete an API key.
    Delete {
        /// The account that owns the key.
        #[arg(long)]
        account: String,
        /// The key's SID.
        #[arg(long)]
        key: String,
    },
}

/// Auth token rotation, as Twilio does it.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a secondary auth token (both tokens work); prints it once.
    Secondary {
        /// The account.
        #[arg(long)]
        account: String,
    },
    /// Make the secondary token the primary one; the old primary stops working.
    Promote {
        /// The account.
        #[arg(long)]
        account: String,
    },
    /// Remove the secondary token.
    RemoveSecondary {
        /// The account.
        #[arg(long)]
        account: String,
    },
}

/// `url` without trailing slashes, if it is `http://` or `https://` followed by something
/// holding none of `forbidden`.
fn http_base(url: &str, forbidden: &[char]) -> Option<String> {
    let url = url.trim_end_matches('/');
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))?;
    (!rest.is_empty() && !rest.contains(forbidden)).then(|| url.to_owned())
}

/// A configuration value that makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

/// The validated configuration of a running server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Data directory.
    pub data: PathBuf,
    /// PostgreSQL metadata; None = SQLite in the data directory.
    pub metadata: Option<SecretUrl>,
    /// The bucket of blobs (`s3://bucket[/prefix]`); None = the data directory only.
    pub blobs: Option<String>,
    /// How long unused Versions are kept.
    pub retention: std::time::Duration,
    /// API listener address.
    pub api: SocketAddr,
    /// Base URL for `url`/`links`, without a trailing slash; None = from the bound address.
    pub public_api_url: Option<String>,
    /// Base domain of Environments, lower case.
    pub domain: String,
    /// Fixed credentials of the first account (SID, auth token).
    pub account: Option<(String, String)>,
    /// Edge HTTP listener.
    pub http: SocketAddr,
    /// Edge HTTPS listener.
    pub https: SocketAddr,
    /// Certificate chain and key (PEM); None = the embedded development pair.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Kernel TLS for HTTPS/1.1 where the kernel has it (`--ktls`).
    pub ktls: bool,
    /// Trusted proxies.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Largest edge POST body.
    pub edge_max_body: usize,
    /// Cache-Control of public assets.
    pub cache_control_public: http::HeaderValue,
    /// Cache-Control of protected assets.
    pub cache_control_protected: http::HeaderValue,
    /// Blob cache capacity in bytes.
    pub cache_bytes: u64,
    /// Bodies of these sizes go by `sendfile` on plain HTTP/1.1 and kernel TLS (`None`: never).
    pub sendfile_from: Option<RangeInclusive<usize>>,
    /// What this process runs.
    pub role: ServeRole,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// An edge's control plane, without a trailing slash.
    pub control_url: Option<String>,
    /// An edge's disk cache and route snapshot (the data directory unless set).
    pub cache_dir: PathBuf,
    /// Byte budget of the disk cache.
    pub cache_max_bytes: Option<u64>,
    /// Edge access log on or off.
    pub access_log: bool,
    /// Logs resource lines on or off.
    pub request_logs: bool,
    /// Logs resource lines per second per Environment at most.
    pub request_logs_rate: u32,
    /// Runtime worker threads (≥ 1).
    pub workers: usize,
    /// How the workers share the work.
    pub scheduler: Scheduler,
    /// Header-read timeout.
    pub header_read_timeout: std::time::Duration,
    /// TLS handshake timeout.
    pub tls_handshake_timeout: std::time::Duration,
    /// Drain deadline on shutdown.
    pub drain_timeout: std::time::Duration,
    /// Connection cap.
    pub max_connections: usize,
    /// Request head size cap (431).
    pub max_header_bytes: usize,
    /// Request target length cap (414).
    pub max_uri_bytes: usize,
    /// Whole-body read deadline (408).
    pub body_read_timeout: std::time::Duration,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_streams: u32,
    /// HTTP/2 pending client resets before GOAWAY.
    pub h2_max_pending_resets: usize,
    /// HTTP/2 resets caused by client errors before the connection closes.
    pub h2_max_error_resets: usize,
    /// How Functions run.
    pub functions: crate::functions::FunctionsConfig,
}

impl Config {
    /// Validates `serve` flags.
    pub fn from_args(args: ServeArgs) -> Result<Config, ConfigError> {
        let public_api_url = args
            .public_api_url
            .map(|url| {
                http_base(&url, &['?', '#', ' ']).ok_or_else(|| {
                    ConfigError(format!(
                        "--public-api-url {url:?} must be an absolute http:// or https:// URL"
                    ))
                })
            })
            .transpose()?;
        let domain = args.domain.trim_end_matches('.').to_ascii_lowercase();
        if !is_dns_name(&domain) {
            return Err(ConfigError(format!(
                "--domain {:?} is not a DNS name (labels of letters, digits and dashes)",
                args.domain
            )));
        }
        let account = match (args.account_sid, args.auth_token) {
            (Some(sid), Some(token)) => {
                if crate::sid::Prefix::Account.parse(&sid).is_none() {
                    return Err(ConfigError(format!(
                        "--account-sid {sid:?} is not an Account SID (AC + 32 hex digits)"
                    )));
                }
                if token.len() < 16 || !token.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(ConfigError(
                        "--auth-token must be at least 16 printable ASCII characters".into(),
                    ));
                }
                Some((sid, token))
            }
            _ => None,
        };
        let trusted_proxies = args
            .trusted_proxy
            .iter()
            .map(|t| {
                let t = t.trim();
                t.parse::<ipnet::IpNet>()
                    .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError(format!(
                            "--trusted-proxy {t:?} is not an IP address or CIDR network"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let header = |flag: &str, v: &str| {
            http::HeaderValue::from_str(v)
                .map_err(|_| ConfigError(format!("{flag} {v:?} is not a valid header value")))
        };
        if args.role == ServeRole::Edge && args.metadata.is_none() {
            return Err(ConfigError(
                "--role edge follows a shared store: give it --metadata postgres://… (and --blobs s3://… for content)".into(),
            ));
        }
        let cache_dir = args.cache_dir.unwrap_or_else(|| args.data.clone());
        // Workers run as another user when sigil is root; a missing default user (a minimal
        // system) leaves the assets served and Function calls saying why they cannot run.
        let (user, unavailable) = if rustix::process::geteuid().is_root() {
            match user_ids(&args.function_user) {
                Some((0, _)) => {
                    return Err(ConfigError(
                        "--function-user must not be root: Functions run unprivileged".into(),
                    ))
                }
                Some(ids) => (Some(ids), None),
                None if args.function_user == DEFAULT_FUNCTION_USER => (
                    None,
                    Some(format!(
                        "sigil runs as root and this machine has no user \
                         {DEFAULT_FUNCTION_USER:?} to run Function workers as: set --function-user"
                    )),
                ),
                None => {
                    return Err(ConfigError(format!(
                        "--function-user {:?} is not a user of this machine",
                        args.function_user
                    )))
                }
            }
        } else {
            (None, None)
        };
        let functions_dir = args
            .functions_dir
            .clone()
            .unwrap_or_else(|| args.data.join("functions"));
        Ok(Config {
            data: args.data,
            metadata: match args.metadata {
                Some(url)
                    if !url.expose().starts_with("postgres://")
                        && !url.expose().starts_with("postgresql://") =>
                {
                    return Err(ConfigError(
                        "--metadata must be a PostgreSQL URL: postgres://user:password@host:port/database"
                            .into(),
                    ))
                }
                other => other,
            },
            blobs: match args.blobs {
                Some(url) if !url.starts_with("s3://") || url.len() <= "s3://".len() => {
                    return Err(ConfigError(format!(
                        "--blobs {url:?} is not an s3://bucket[/prefix] URL"
                    )))
                }
                other => other,
            },
            retention: match args.retention_days {
                0 => return Err(ConfigError("--retention-days must be at least 1".into())),
                d => std::time::Duration::from_secs(u64::from(d) * 24 * 3600),
            },
            api: args.api,
            public_api_url,
            domain,
            account,
            http: args.http,
            https: args.https,
            tls: args.cert.zip(args.key),
            ktls: args.ktls,
            trusted_proxies,
            edge_max_body: args.edge_max_body,
            cache_control_public: header("--cache-control-public", &args.cache_control_public)?,
            cache_control_protected: header(
                "--cache-control-protected",
                &args.cache_control_protected,
            )?,
            cache_bytes: args.cache_size.saturating_mul(1024 * 1024),
            sendfile_from: match args.sendfile_from {
                SendfileFrom::Auto => auto_sendfile_from(),
                SendfileFrom::Off => None,
                SendfileFrom::Bytes(sizes) => Some(sizes),
            },
            role: args.role,
            admin: args.admin,
            control_url: match args.control_url {
                Some(_) if args.role != ServeRole::Edge => {
                    return Err(ConfigError("--control-url is for --role edge".into()))
                }
                Some(url) => Some(http_base(&url, &['/', '?', '#', ' ', '@']).ok_or_else(|| {
                    ConfigError(format!(
                        "--control-url {url:?} must be http://host:port or https://host:port"
                    ))
                })?),
                None => None,
            },
            cache_dir,
            cache_max_bytes: match args.cache_max_bytes {
                Some(n) if n < 1024 * 1024 => {
                    return Err(ConfigError("--cache-max-bytes must be at least 1048576 (1 MiB)".into()))
                }
                other => other,
            },
            access_log: args.access_log,
            request_logs: args.request_logs,
            request_logs_rate: args.request_logs_rate,
            header_read_timeout: secs("--header-read-timeout", args.header_read_timeout)?,
            tls_handshake_timeout: secs("--tls-handshake-timeout", args.tls_handshake_timeout)?,
            drain_timeout: std::time::Duration::from_secs(args.drain_timeout),
            max_connections: match args.max_connections {
                0 => return Err(ConfigError("--max-connections must be at least 1".into())),
                n => n,
            },
            max_header_bytes: match args.max_header_bytes {
                n if n < 8192 => {
                    return Err(ConfigError(
                        "--max-header-bytes must be at least 8192".into(),
                    ))
                }
                n => n,
            },
            max_uri_bytes: match args.max_uri_bytes {
                n if n < 64 || n > args.max_header_bytes => {
                    return Err(ConfigError(
                        "--max-uri-bytes must be at least 64 and at most --max-header-bytes".into(),
                    ))
                }
                n => n,
            },
            body_read_timeout: secs("--body-read-timeout", args.body_read_timeout)?,
            h2_max_streams: match args.h2_max_streams {
                0 => return Err(ConfigError("--h2-max-streams must be at least 1".into())),
                n => n,
            },
            h2_max_pending_resets: args.h2_max_pending_resets,
            h2_max_error_resets: args.h2_max_error_resets,
            workers: match args.workers {
                Some(0) => return Err(ConfigError("--workers must be at least 1".into())),
                Some(n) => n,
                None => std::thread::available_parallelism().map_or(1, |n| n.get()),
            },
            scheduler: args.scheduler,
            functions: crate::functions::FunctionsConfig {
                dir: functions_dir,
                node: args.node,
                npm: args.npm,
                timeout: secs("--function-timeout", args.function_timeout)?,
                memory_mb: match args.function_memory {
                    n if n < 64 => {
                        return Err(ConfigError("--function-memory must be at least 64 (MiB)".into()))
                    }
                    n => n,
                },
                concurrency: match args.function_concurrency {
                    0 => {
                        return Err(ConfigError(
                            "--function-concurrency must be at least 1".into(),
                        ))
                    }
                    n => n,
                },
                workers: match args.function_workers {
                    Some(0) => {
                        return Err(ConfigError("--function-workers must be at least 1".into()))
                    }
                    Some(n) if n > MAX_FUNCTION_WORKERS => {
                        return Err(ConfigError(format!(
                            "--function-workers must be at most {MAX_FUNCTION_WORKERS}"
                        )))
                    }
                    Some(n) => n,
                    None => default_function_workers(args.function_memory.max(64)),
                },
                user,
                unavailable,
                debug: args.function_debug,
            },
        })
    }
}

/// The most `--function-workers` takes.
const MAX_FUNCTION_WORKERS: usize = 100_000;

/// How many Function workers fit in the memory sigil may use, each at its cap: the machine's
/// memory (`MemTotal`) or, when lower, the limit of sigil's cgroup or of one above it (as in a
/// container, or a systemd `MemoryMax=`); at least 1, and 8 when the memory cannot be read.
fn default_function_workers(memory_mb: u64) -> usize {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| mem_total_bytes(&m));
    let cgroup = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|own| {
            cgroup_limit_files(&own)
                .iter()
                .filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse::<u64>().ok())
                .min()
        });
    let Some(bytes) = total.into_iter().chain(cgroup).min() else {
        return 8;
    };
    usize::try_from(bytes / memory_mb.saturating_mul(1 << 20).max(1))
        .unwrap_or(MAX_FUNCTION_WORKERS)
        .clamp(1, MAX_FUNCTION_WORKERS)
}

/// The files that hold the memory limits of the cgroups `/proc/self/cgroup` names, and of
/// every cgroup above them: `memory.max` (v2; "max" means none) and `memory.limit_in_bytes`
/// (v1's memory controller).
fn cgroup_limit_files(own: &str) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for line in own.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let (root, file) = match controllers {
            "" => ("/sys/fs/cgroup", "memory.max"),
            c if c.split(',').any(|c| c == "memory") => {
                ("/sys/fs/cgroup/memory", "memory.limit_in_bytes")
            }
            _ => continue,
        };
        let mut dir = Some(std::path::Path::new(path.trim()));
        while let Some(d) = dir {
            let relative = d.strip_prefix("/").unwrap_or(d);
            files.push(std::path::Path::new(root).join(relative).join(file));
            dir = d.parent();
        }
    }
    files
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
fn mem_total_bytes(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib = line["MemTotal:".len()..]
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse::<u64>()
        .ok()?;
    kib.checked_mul(1024)
}

/// A timeout of at least one second.
fn secs(flag: &str, value: u64) -> Result<std::time::Duration, ConfigError> {
    if value == 0 {
        return Err(ConfigError(format!("{flag} must be at least 1 second")));
    }
    Ok(std::time::Duration::from_secs(value))
}

/// Whether `name` is a DNS name: dot-separated labels of 1..=63 letters, digits and inner dashes.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(domain: &str, url: Option<&str>) -> ServeArgs {
        ServeArgs {
            data: "d".into(),
            metadata: None,
            blobs: None,
            retention_days: 30,
            api: "127.0.0.1:0".parse().expect("addr"),
            public_api_url: url.map(Into::into),
            domain: domain.into(),
            account_sid: None,
            auth_token: None,
            http: "127.0.0.1:0".parse().expect("addr"),
            https: "127.0.0.1:0".parse().expect("addr"),
            cert: None,
            key: None,
            ktls: false,
            trusted_proxy: vec!["10.0.0.0/8".into(), "127.0.0.1".into()],
            edge_max_body: 1,
            cache_control_public: "public".into(),
            cache_control_protected: "private".into(),
            cache_size: 1,
            sendfile_from: SendfileFrom::Auto,
            role: ServeRole::All,
            admin: None,
            control_url: None,
            cache_dir: None,
            cache_max_bytes: None,
            access_log: true,
            request_logs: true,
            request_logs_rate: 100,
            workers: None,
            scheduler: Scheduler::Stealing,
            header_read_timeout: 10,
            tls_handshake_timeout: 10,
            drain_timeout: 10,
            max_connections: 100,
            max_header_bytes: 32 * 1024,
            max_uri_bytes: 8 * 1024,
            body_read_timeout: 120,
            h2_max_streams: 256,
            h2_max_pending_resets: 20,
            h2_max_error_resets: 1024,
            node: "node".into(),
            npm: "npm".into(),
            functions_dir: None,
            function_timeout: 10,
            function_memory: 256,
            function_concurrency: 8,
            function_workers: None,
            function_user: "nobody".into(),
            function_debug: false,
        }
    }

    #[test]
    fn function_workers_never_run_as_root() {
        // The user switch applies when sigil is root (as CI runs it).
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let with_user = |user: &str| {
            let mut a = args("localhost", None);
            a.function_user = user.into();
            Config::from_args(a)
        };
        let c = with_user("nobody").expect("nobody exists here");
        assert!(c.functions.user.is_some_and(|(uid, _)| uid != 0));
        assert!(c.functions.unavailable.is_none());
        assert!(with_user("root").is_err());
        assert!(with_user("sigil-no-such-user").is_err());
    }

    #[test]
    fn function_workers_default_to_what_fits_in_memory() {
        let meminfo = "MemTotal:       24563340 kB\nMemFree:        1000 kB\n";
        assert_eq!(mem_total_bytes(meminfo), Some(24_563_340 * 1024));
        assert_eq!(mem_total_bytes("MemFree: 1 kB\n"), None);
        assert_eq!(mem_total_bytes("MemTotal: many\n"), None);
        let c = Config::from_args(args("localhost", None)).expect("ok");
        let total = mem_total_bytes(&std::fs::read_to_string("/proc/meminfo").unwrap()).unwrap();
        assert!(c.functions.workers >= 1);
        assert!(c.functions.workers as u64 <= (total / (256 << 20)).max(1));
        let mut a = args("localhost", None);
        a.function_workers = Some(3);
        assert_eq!(Config::from_args(a).expect("ok").functions.workers, 3);
        for wrong in [0, MAX_FUNCTION_WORKERS + 1] {
            let mut a = args("localhost", None);
            a.function_workers = Some(wrong);
            assert!(Config::from_args(a).is_err());
        }
        let files = |own: &str| -> Vec<String> {
            cgroup_limit_files(own)
                .iter()
                .map(|p| p.display().to_string())
                .collect()
        };
        assert_eq!(
            files("0::/system.slice/sigil.service\n"),
            [
                "/sys/fs/cgroup/system.slice/sigil.service/memory.max",
                "/sys/fs/cgroup/system.slice/memory.max",
                "/sys/fs/cgroup/memory.max"
            ]
        );
        assert_eq!(
            files("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n1:name=systemd:/y\n"),
            [
                "/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/docker/memory.limit_in_bytes",
                "/sys/fs/cgroup/memory/memory.limit_in_bytes"
            ]
        );
        assert_eq!(cgroup_limit_files("0::/\n").len(), 1);
        assert!(cgroup_limit_files("garbage\n").is_empty());
    }

    #[test]
    fn validates_domain_and_url() {
        let c = Config::from_args(args("Twil.IO.", Some("https://api.example.com/"))).expect("ok");
        assert_eq!(c.domain, "twil.io");
        assert_eq!(c.public_api_url.as_deref(), Some("https://api.example.com"));
        assert!(Config::from_args(args("bad_domain", None)).is_err());
        assert!(Config::from_args(args("-x.io", None)).is_err());
        assert!(Config::from_args(args("localhost", Some("ftp://x"))).is_err());
        assert!(Config::from_args(args("localhost", Some("http://"))).is_err());
        assert_eq!(c.trusted_proxies.len(), 2);
        let mut bad = args("localhost", None);
        bad.trusted_proxy = vec!["nope".into()];
        assert!(Config::from_args(bad).is_err());
        let mut zero = args("localhost", None);
        zero.workers = Some(0);
        assert!(Config::from_args(zero).is_err());
        assert!(c.workers >= 1);
    }

    #[test]
    fn sendfile_from_takes_auto_off_or_bytes() {
        assert_eq!(sendfile_from("auto"), Ok(SendfileFrom::Auto));
        assert_eq!(sendfile_from("off"), Ok(SendfileFrom::Off));
        assert_eq!(
            sendfile_from("65536"),
            Ok(SendfileFrom::Bytes(65536..=usize::MAX))
        );
        assert_eq!(
            sendfile_from("16384-131071"),
            Ok(SendfileFrom::Bytes(16384..=131071))
        );
        assert_eq!(sendfile_from("7-7"), Ok(SendfileFrom::Bytes(7..=7)));
        for bad in [
            "0", "-1", "64k", "", "on", "0-10", "10-", "-10", "10-9", "1-2-3",
        ] {
            assert!(sendfile_from(bad).is_err(), "{bad}");
        }
        let mut a = args("example.com", None);
        a.sendfile_from = SendfileFrom::Off;
        assert_eq!(Config::from_args(a).expect("valid").sendfile_from, None);
        let mut a = args("example.com", None);
        a.sendfile_from = SendfileFrom::Bytes(4096..=8191);
        assert_eq!(
            Config::from_args(a).expect("valid").sendfile_from,
            Some(4096..=8191)
        );
    }

    #[test]
    fn listener_addresses_take_ip_port_or_localhost_port() {
        assert_eq!(
            listen_addr("0.0.0.0:8080"),
            Ok(SocketAddr::from(([0, 0, 0, 0], 8080)))
        );
        assert_eq!(
            listen_addr("localhost:9000"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 9000)))
        );
        assert_eq!(
            listen_addr("[::1]:80"),
            Ok("[::1]:80".parse().expect("addr"))
        );
        for bad in [
            "8080",
            ":8080",
            "localhost",
            "localhost:99999",
            "example.com:80",
            "",
        ] {
            let e = listen_addr(bad).expect_err(bad);
            assert!(e.contains("IP:PORT") && e.contains("0.0.0.0:8080"), "{e}");
        }
    }
}
