//! The `sigil` binary: parse the command line, then serve or manage accounts.

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use sigil::accounts;
use sigil::config::{AccountCommand, Cli, Command, Config, KeyCommand, TokenCommand};

/// EX_USAGE: a bad configuration.
const EXIT_CONFIG: u8 = 64;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SIGIL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Command::Serve(args) => match Config::from_args(args) {
            Ok(config) => serve(config),
            Err(e) => {
                eprintln!("sigil: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        Command::Account(args) => account(&args.data, args.command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sigil: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
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

fn account(data: &std::path::Path, command: AccountCommand) -> anyhow::Result<()> {
    let store = sigil::server::open_store(data)?;
    match command {
        AccountCommand::Create { friendly_name } => {
            let (sid, token) = accounts::create(&store, &friendly_name, None, None)?;
            println!("account_sid {sid}");
            println!("auth_token {token}");
        }
        AccountCommand::List => {
            for (sid, name) in accounts::list(&store)? {
                let keys = accounts::key_count(&store, &sid)?;
                println!("{sid}\t{name}\t{keys} API key(s)");
            }
        }
        AccountCommand::Key { command } => match command {
            KeyCommand::Create {
                account,
                friendly_name,
            } => {
                let (sid, secret) = accounts::create_key(&store, &account, &friendly_name)?;
                println!("api_key_sid {sid}");
                println!("api_key_secret {secret}");
            }
            KeyCommand::Delete { account, key } => {
                accounts::delete_key(&store, &account, &key)?;
                println!("deleted {key}");
            }
        },
        AccountCommand::Token { command } => match command {
            TokenCommand::Secondary { account } => {
                let token = accounts::create_secondary(&store, &account)?;
                println!("secondary_auth_token {token}");
            }
            TokenCommand::Promote { account } => {
                accounts::promote_secondary(&store, &account)?;
                println!("the secondary auth token of {account} is now its primary token");
            }
            TokenCommand::RemoveSecondary { account } => {
                accounts::remove_secondary(&store, &account)?;
                println!("removed the secondary auth token of {account}");
            }
        },
    }
    Ok(())
}
