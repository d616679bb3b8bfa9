//! The `lectern` command: parse flags, build the configuration, run.

use anyhow::Context;
use clap::{Parser, Subcommand};
use lectern::config::Config;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Lectern — a live classroom server for expert Q&A sessions and small-class seminars.
///
/// Settings come from defaults, then the TOML file given with --config, then
/// LECTERN_* environment variables and flags (the last one wins).
#[derive(Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
}

#[derive(clap::Args, Clone, Default)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "LECTERN_BIND", global = true)]
    bind: Option<SocketAddr>,
    /// Directory for the SQLite database and generated keys [default: ./lectern-data].
    #[arg(long, env = "LECTERN_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// TOML configuration file (keys as in the README's configuration reference).
    #[arg(long, env = "LECTERN_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// Base URL for join links, when clients reach the server by another name.
    #[arg(long, env = "LECTERN_PUBLIC_URL", global = true)]
    public_url: Option<String>,
    /// Admin API key; generated and stored in the data dir when not given.
    #[arg(long, env = "LECTERN_ADMIN_KEY", hide_env_values = true, global = true)]
    admin_key: Option<String>,
    /// Do not create or print the demo sessions.
    #[arg(long, env = "LECTERN_NO_DEMO", global = true)]
    no_demo: bool,
}

fn build_config(args: ServeArgs) -> anyhow::Result<Config> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(anyhow::Error::msg)?,
        None => Config::default(),
    };
    if let Some(b) = args.bind {
        config.bind = b;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(u) = args.public_url {
        config.public_url = Some(u);
    }
    if let Some(k) = args.admin_key {
        config.admin_key = Some(k);
    }
    if let Ok(s) = std::env::var("LECTERN_TOKEN_SECRET") {
        config.token_secret = Some(s);
    }
    lectern::config::grading_from_env(&mut config.grading, |k| std::env::var(k).ok())
        .map_err(anyhow::Error::msg)?;
    if args.no_demo {
        config.demo = false;
    }
    Ok(config)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let level = std::env::var("LECTERN_LOG")
        .ok()
        .and_then(|l| l.parse().ok())
        .unwrap_or(tracing::Level::INFO);
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .init();

    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    let config = build_config(args)?;
    let data_dir = config.data_dir.clone();
    let server = lectern::start(config)
        .await
        .context("starting the server")?;

    println!();
    println!("Lectern is serving on http://{}", server.addr);
    println!("  data directory : {}", data_dir.display());
    println!("  admin key      : {}", server.admin_key);
    println!("  admin page     : {}/admin", server.public_url);
    println!(
        "  API            : {}/api/v1/openapi.json",
        server.public_url
    );
    for link in &server.demo_links {
        println!(
            "  {} — {:?} link:\n    {}",
            link.session_title, link.role, link.url
        );
    }
    println!();

    wait_for_signal().await;
    println!("Shutting down…");
    server.shutdown();
    server.wait().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
