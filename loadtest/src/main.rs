//! `lectern-loadtest`: load scenarios against a running Lectern server.
//!
//! Scenarios: `idle`, `join-storm`, `chat-fanout`, `qa-audience`,
//! `classroom-mix`, `reconnect-storm` and `media` (see docs/benchmarks.md).

use lectern_loadtest::{client, janus, media, scenarios};

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Idle,
    JoinStorm,
    ChatFanout,
    QaAudience,
    ClassroomMix,
    ReconnectStorm,
    Media,
}

/// Drive a running Lectern server with real clients and report what it did.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    scenario: Scenario,
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's admin key (printed at start-up).
    #[arg(long)]
    admin_key: String,
    /// Subscribers of the `media` scenario.
    #[arg(long, default_value_t = 50)]
    subscribers: usize,
    /// Connections (`idle`, `join-storm`, `reconnect-storm`).
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Rooms (`idle`, `classroom-mix`).
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members per room (`chat-fanout`, `qa-audience`, `classroom-mix`).
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Joins, messages or questions per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// `media` only: also run the same traffic against Janus's VideoRoom at
    /// this HTTP API URL (see loadtest/janus/start-janus.sh) and compare.
    #[arg(long)]
    janus: Option<String>,
    /// Janus's process id, to read its CPU time.
    #[arg(long, default_value_t = 0)]
    janus_pid: u32,
    /// Address the peers bind when talking to Janus (its namespace's peer).
    #[arg(long, default_value = "10.231.0.1")]
    peer_ip: std::net::IpAddr,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Keep the generator's thread polling instead of sleeping between
    /// socket reads. On loopback, every frame the server writes to a
    /// sleeping reader makes the *server's* core wake the reader's thread
    /// on the other core (an inter-processor interrupt, costly in a VM);
    /// real clients are on other machines, where that wake-up costs the
    /// server nothing. See docs/benchmarks.md.
    #[arg(long)]
    busy_poll: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.busy_poll {
        // A task that always yields keeps the worker from parking in
        // epoll_wait: it polls for I/O without sleeping, at the cost of its
        // whole core.
        tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
            }
        });
    }
    let api = client::Api::new(&cli.url, &cli.admin_key);
    let report = match cli.scenario {
        Scenario::Media => {
            media::run(
                &api,
                media::Params {
                    subscribers: cli.subscribers,
                    duration_s: cli.duration,
                },
            )
            .await?
        }
        s => {
            let p = scenarios::Params {
                clients: cli.clients,
                rooms: cli.rooms,
                members: cli.members,
                rate: cli.rate,
                duration_s: cli.duration,
            };
            match s {
                Scenario::Idle => scenarios::idle(&api, &p).await?,
                Scenario::JoinStorm => scenarios::join_storm(&api, &p).await?,
                Scenario::ChatFanout => scenarios::chat_fanout(&api, &p).await?,
                Scenario::QaAudience => scenarios::qa_audience(&api, &p).await?,
                Scenario::ClassroomMix => scenarios::classroom_mix(&api, &p).await?,
                _ => scenarios::reconnect_storm(&api, &p).await?,
            }
        }
    };
    report.print();
    let mut json = report.to_json();
    if let (Scenario::Media, Some(url)) = (cli.scenario, &cli.janus) {
        let other = janus::run(janus::Params {
            url: url.clone(),
            pid: cli.janus_pid,
            peer_ip: cli.peer_ip,
            subscribers: cli.subscribers,
            duration_s: cli.duration,
        })
        .await?;
        println!();
        other.print();
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
        let cpu = |r: &lectern_loadtest::report::Report| {
            r.extra["cpu_us_per_forwarded_packet"]
                .as_f64()
                .unwrap_or(0.0)
        };
        let loss = |r: &lectern_loadtest::report::Report| ratio(r.lost as f64, r.expected as f64);
        let compare = serde_json::json!({
            "cpu_per_packet_lectern_over_janus": ratio(cpu(&report), cpu(&other)),
            "p50_delay_lectern_over_janus": ratio(report.latency_ms.p50, other.latency_ms.p50),
            "p99_delay_lectern_over_janus": ratio(report.latency_ms.p99, other.latency_ms.p99),
            "loss_lectern": loss(&report),
            "loss_janus": loss(&other),
        });
        println!("\nside by side {compare}");
        json = serde_json::json!({ "lectern": json, "janus": other.to_json(), "compare": compare });
    }
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}
