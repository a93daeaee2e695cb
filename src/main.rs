//! The `sigil` binary: parse the command line, then serve or manage accounts.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sigil::accounts;
use sigil::config::{
    AccountCommand, Cli, ClientArgs, Command, Config, DeployArgs, KeyCommand, SignatureCommand,
    SignedRequest, TokenCommand,
};
use sigil::deploy::{self, client::Client, project::FileKind};
use sigil::signature;

/// mimalloc: hyper, h2 and rustls allocate and free small buffers on every request, where
/// glibc's allocator showed up at ~8% of CPU in profiles of HTTP/2 serving.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// EX_USAGE: a bad configuration.
const EXIT_CONFIG: u8 = 64;

/// A mistake in how sigil was called (exit status 64, like a bad flag).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version print and succeed; every other parse error is a usage
            // error: exit status 64 (EX_USAGE), as for a bad value found after parsing.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    // Lines are formatted where they happen and gathered in memory; a thread of their own
    // writes them out every 50 ms (README, "Performance": a write, or a writer thread's
    // wake-up, per line cost the edge ~1-2 µs a request). The flusher writes the rest at exit.
    let (log_writer, _log_flush) = sigil::logline::buffered(Box::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log_writer.clone())
        .event_format(sigil::logline::Lines)
        .init();
    log_writer.take_access_lines();
    let result = match cli.command {
        Command::Serve(args) => match Config::from_args(*args) {
            Ok(config) => serve(config),
            Err(e) => {
                eprintln!("sigil: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Command::Account(args) => account(&args.data, args.metadata.as_ref(), args.command),
        Command::Deploy(args) => run_async(deploy_command(args)),
        Command::Deployments(args) => run_async(async move {
            let client = client(&args.client)?;
            let service = service_name(args.service)?;
            let (env, lines) = deploy::deployments(&client, &service, &args.environment).await?;
            println!(
                "{} ({})",
                env["unique_name"].as_str().unwrap_or(""),
                env["domain_name"].as_str().unwrap_or("")
            );
            println!(
                "  {:<36} {:<36} {:<22} ACTIVE",
                "DEPLOYMENT", "BUILD", "DATE"
            );
            for l in lines {
                println!(
                    "  {:<36} {:<36} {:<22} {}",
                    l.sid,
                    l.build_sid,
                    l.date_created,
                    if l.active { "*" } else { "" }
                );
            }
            Ok(())
        }),
        Command::Rollback { target, to } => run_async(async move {
            let client = client(&target.client)?;
            let service = service_name(target.service)?;
            let build =
                deploy::rollback(&client, &service, &target.environment, to.as_deref()).await?;
            println!("rolled back: {build} is active");
            Ok(())
        }),
        Command::Promote {
            client: c,
            service,
            from,
            to,
        } => run_async(async move {
            let client = client(&c)?;
            let service = service_name(service)?;
            let (build, env) = deploy::promote(&client, &service, &from, &to).await?;
            println!(
                "promoted {build} to {} ({})",
                env["unique_name"].as_str().unwrap_or(""),
                env["domain_name"].as_str().unwrap_or("")
            );
            Ok(())
        }),
        Command::CopyStore(args) => copy_store(args),
        Command::Signature { command } => match signature_command(command) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil: {e:#}");
            if e.is::<UsageError>() {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs a client command on a small runtime.
fn run_async(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(fut)
}

fn client(args: &ClientArgs) -> anyhow::Result<Client> {
    let (Some(sid), Some(token)) = (&args.account_sid, &args.auth_token) else {
        return Err(UsageError(
            "no credentials: set TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the account SID and \
             auth token `sigil serve` printed on its first start, or an API key SID and secret), \
             or pass --account-sid and --auth-token"
                .into(),
        )
        .into());
    };
    Ok(Client::new(&args.api_url, sid, token)?)
}

/// `--service`, else `name` from ./package.json.
fn service_name(given: Option<String>) -> anyhow::Result<String> {
    if let Some(s) = given {
        return Ok(s);
    }
    let text = std::fs::read_to_string("package.json")
        .context("no --service given and no ./package.json to take the name from")?;
    let json: serde_json::Value = serde_json::from_str(&text).context("./package.json")?;
    json["name"]
        .as_str()
        .map(str::to_owned)
        .context("no --service given and ./package.json has no name")
}

async fn deploy_command(args: DeployArgs) -> anyhow::Result<()> {
    let client = client(&args.client)?;
    let opts = deploy::DeployOptions {
        dir: args.dir,
        service: args.service,
        environment: args.environment,
        runtime: args.runtime,
        concurrency: args.concurrency,
    };
    // Drawn on stderr, and only when it is a terminal.
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("uploading [{bar:30}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let report = deploy::deploy(&client, &opts, |file, n, total| {
        bar.set_length(total as u64);
        bar.set_position(n as u64);
        bar.set_message(file.path.clone());
    })
    .await;
    bar.finish_and_clear();
    let report = report?;
    let uploaded = report.files.iter().filter(|f| f.uploaded).count();
    if report.deployed {
        println!("deployed {} to {}", report.build_sid, report.domain_name);
    } else {
        println!(
            "nothing changed: {} stays active on {}",
            report.build_sid, report.domain_name
        );
    }
    let root = report.root();
    for url in client.site_urls(&report.domain_name) {
        println!("url {url}{}", root.path());
    }
    if let Some(advice) = root.advice() {
        println!("note: {advice}");
    }
    println!("  {:<40} {:<10} {:<8} UPLOAD", "PATH", "VISIBILITY", "KIND");
    for f in &report.files {
        println!(
            "  {:<40} {:<10} {:<8} {}",
            f.path,
            f.visibility.as_str(),
            if f.kind == FileKind::Asset {
                "asset"
            } else {
                "function"
            },
            if f.uploaded { "uploaded" } else { "unchanged" }
        );
    }
    println!(
        "uploaded {uploaded}, unchanged {}",
        report.files.len() - uploaded
    );
    Ok(())
}

fn serve(config: Config) -> anyhow::Result<()> {
    // One worker: the current-thread scheduler, which on one CPU serves ~15-20% more requests
    // than the work-stealing one (no stealing, no cross-thread wake-ups; measured with
    // benches/compare.sh). More: the multi-thread scheduler with that many workers, or with
    // `--scheduler per-worker` a current-thread runtime here and one on each further worker's
    // thread (server::run starts those).
    let per_worker = config.scheduler == sigil::config::Scheduler::PerWorker;
    let mut builder = if config.workers == 1 || per_worker {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(config.workers);
        b
    };
    let runtime = builder
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(sigil::server::run(config, shutdown_signal()))?;
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn copy_store(args: sigil::config::CopyStoreArgs) -> anyhow::Result<()> {
    use sigil::store::{copy, PgStore, RemoteBlobs};
    if !args.data.join(sigil::server::METADATA_FILE).is_file() {
        return Err(UsageError(format!(
            "{} is not a sigil data directory (no {}): pass the --data of your server",
            args.data.display(),
            sigil::server::METADATA_FILE
        ))
        .into());
    }
    // Held while copying: a server writing meanwhile could leave records behind.
    let _lock = sigil::server::lock_data_dir(&args.data)?;
    let source = sigil::server::open_store(&args.data, None)?;
    let target = PgStore::open(args.metadata.expose()).with_context(|| args.metadata.redacted())?;
    let remote = RemoteBlobs::from_url(&args.blobs)?;
    println!(
        "copying {} to {} and {}",
        args.data.display(),
        args.metadata.redacted(),
        remote.target()
    );
    let report = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?
        .block_on(copy::copy_store(
            source.as_ref(),
            &args.data.join("blobs"),
            &target,
            &remote,
        ))?;
    println!(
        "blobs: {} uploaded ({} bytes), {} already there",
        report.blobs_uploaded, report.bytes_uploaded, report.blobs_present
    );
    for (kind, n) in &report.records {
        println!("records: {n} {}", kind.as_str());
    }
    println!("records already there: {}", report.records_present);
    if report.orphans > 0 {
        println!(
            "records left behind: {} (their parent was deleted; nothing refers to them)",
            report.orphans
        );
    }
    Ok(())
}

fn account(
    data: &std::path::Path,
    metadata: Option<&sigil::config::SecretUrl>,
    command: AccountCommand,
) -> anyhow::Result<()> {
    // Never create a data directory here: a mistyped --data would hold a new, empty store
    // that no server reads.
    if metadata.is_none() && !data.join(sigil::server::METADATA_FILE).is_file() {
        return Err(UsageError(format!(
            "{} is not a sigil data directory (no {}): pass the --data of your server, or run \
             `sigil serve --data {}` once to create it",
            data.display(),
            sigil::server::METADATA_FILE,
            data.display()
        ))
        .into());
    }
    let store = sigil::server::open_store(data, metadata)?;
    let store = store.as_ref();
    match command {
        AccountCommand::Create { friendly_name } => {
            let (sid, token) = accounts::create(store, &friendly_name, None, None)?;
            println!("account_sid {sid}");
            println!("auth_token {token}");
        }
        AccountCommand::List => {
            for (sid, name) in accounts::list(store)? {
                let keys = accounts::key_count(store, &sid)?;
                println!("{sid}\t{name}\t{keys} API key(s)");
            }
        }
        AccountCommand::Key { command } => match command {
            KeyCommand::Create {
                account,
                friendly_name,
            } => {
                let (sid, secret) = accounts::create_key(store, &account, &friendly_name)?;
                println!("api_key_sid {sid}");
                println!("api_key_secret {secret}");
            }
            KeyCommand::Delete { account, key } => {
                accounts::delete_key(store, &account, &key)?;
                println!("deleted {key}");
            }
        },
        AccountCommand::Token { command } => match command {
            TokenCommand::Secondary { account } => {
                let token = accounts::create_secondary(store, &account)?;
                println!("secondary_auth_token {token}");
            }
            TokenCommand::Promote { account } => {
                accounts::promote_secondary(store, &account)?;
                println!("the secondary auth token of {account} is now its primary token");
            }
            TokenCommand::RemoveSecondary { account } => {
                accounts::remove_secondary(store, &account)?;
                println!("removed the secondary auth token of {account}");
            }
        },
    }
    Ok(())
}

/// A request to sign: the URL, form parameters, and a non-form body.
struct Prepared {
    url: String,
    params: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

/// The URL to sign and what goes with it: for a body, `bodySHA256` is appended to the URL when
/// it is not there yet (as Twilio does).
fn prepare(req: &SignedRequest) -> anyhow::Result<Prepared> {
    let params = req
        .params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .with_context(|| format!("--param {p:?} is not KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let body = match &req.body_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let mut url = req.url.clone();
    if let Some(body) = &body {
        if !url.contains("bodySHA256=") {
            let sep = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{sep}bodySHA256={}", signature::body_sha256(body));
        }
    }
    if signature::url_variants(&url).is_empty() {
        anyhow::bail!("--url {url:?} is not an absolute URL (scheme://host/path)");
    }
    Ok(Prepared { url, params, body })
}

/// Runs `sigil signature …`; Ok(valid) for verify, Ok(true) for compute.
fn signature_command(command: SignatureCommand) -> anyhow::Result<bool> {
    match command {
        SignatureCommand::Compute(req) => {
            let Prepared { url, params, .. } = prepare(&req)?;
            let signed = signature::signed_string(&url, &params);
            println!("url {url}");
            println!("signed {signed}");
            println!("signature {}", signature::sign(&req.token, &signed));
            Ok(true)
        }
        SignatureCommand::Verify {
            request,
            signature: sig,
        } => {
            let Prepared { url, params, body } = prepare(&request)?;
            let payload = match &body {
                Some(b) => signature::Payload::Body(b),
                None => signature::Payload::Form(&params),
            };
            let verdict = signature::validate(&[request.token.as_str()], &url, payload, &sig);
            println!("{}", if verdict.valid { "valid" } else { "invalid" });
            if let Some(problem) = &verdict.body_problem {
                println!("body: {problem}");
            }
            if let Some(problem) = verdict.signature_problem {
                println!("signature: {problem}");
            }
            for signed in &verdict.tried {
                println!("tried {signed}");
                println!("  expects {}", signature::sign(&request.token, signed));
            }
            Ok(verdict.valid)
        }
    }
}
