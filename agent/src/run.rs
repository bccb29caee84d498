//! `tallyman run`: the service. Start-up is "apply the configuration to an empty agent": decide
//! what runs (the last-known-good pushed configuration or the local file, `fleet/config.rs`),
//! open the spool (its self-check is logged), then the supervisor (`supervisor.rs`) starts the
//! MQTT connection, one delivery task per sink, the sources and the health task; then handle
//! pushed configurations until SIGTERM/SIGINT. Shutdown: stop intake (sources settle what they started), give sinks until
//! the grace deadline, close the connection and the spool (flush + fdatasync), exit 0.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use tallyman_config::Config;
use tracing::{error, info, warn};

use tokio::sync::mpsc;

use crate::cli::RunArgs;
use crate::fleet;
use crate::fleet::config::Startup;
use crate::health::Registry;
use crate::shutdown;
use crate::spool::{Spool, SpoolOptions};
use crate::supervisor::Supervisor;
use crate::telemetry;

pub use crate::supervisor::{SHUTDOWN_GRACE, machine_for};

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let local = match &args.config {
        Some(path) => tallyman_config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => {
            Config::demo().map_err(|e| anyhow::anyhow!("the built-in demo configuration: {e}"))?
        }
    };
    // What runs: the last-known-good pushed configuration, or the local file.
    let startup = fleet::config::start(local, crate::clock::now());
    let format = match startup.config.log.format {
        tallyman_config::LogFormat::Text => telemetry::Format::Text,
        tallyman_config::LogFormat::Json => telemetry::Format::Json,
    };
    telemetry::init(format, startup.config.log.level.as_str());
    for (warning, note) in &startup.notes {
        if *warning {
            warn!("Remote configuration: {note}.");
        } else {
            info!("Remote configuration: {note}.");
        }
    }
    if args.config.is_none() {
        info!(data_dir = %startup.config.agent.data_dir.display(), "No --config: running the demo (scans on stdin, events in outbox.jsonl).");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(startup));
    // A blocking read of stdin cannot be cancelled: do not wait for it on the way out.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(startup: Startup) -> anyhow::Result<ExitCode> {
    let Startup {
        config,
        version,
        fleet,
        ..
    } = startup;
    crate::supervisor::check_runnable(&config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let spool = open_spool(&config).await?;

    // Caught from here on: a stop requested while the parts start is a graceful stop.
    let signals = shutdown::Signals::install();
    let (trigger, agent) = shutdown::channel();
    let mut supervisor = Supervisor::new(spool.clone(), Registry::new(), agent.clone());
    let (documents, received) = mpsc::channel(crate::supervisor::FLEET_QUEUE);
    if fleet.is_some() {
        supervisor.route_config(documents);
    }
    supervisor
        .apply(&config, version)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        config_version = ?version,
        "Agent running."
    );

    let signal = async {
        match signals {
            Ok(signals) => {
                let sig = signals.recv().await;
                info!(signal = sig, "Stopping: intake first, then sinks.");
            }
            Err(e) => error!(error = %e, "Cannot listen for signals; stopping."),
        }
        trigger.fire();
    };
    match fleet {
        // Pushed configurations are handled until the signal.
        Some(fleet) => {
            tokio::join!(fleet.run(&mut supervisor, received, agent), signal);
        }
        None => signal.await,
    }
    supervisor.stop().await;
    spool
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the spool: {e}"))?;
    info!("Stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Open the spool in the data directory with the configuration's sinks; log its self-check.
async fn open_spool(config: &Config) -> anyhow::Result<Spool> {
    let data_dir = config.agent.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
    let mut options = SpoolOptions::new(
        data_dir.join("spool"),
        config
            .sinks
            .iter()
            .map(|s| s.name.as_str().to_string())
            .collect(),
    );
    options.max_bytes = config.spool.max_size_bytes;
    options.cache_capacity_bytes = config.spool.cache_capacity_bytes;
    options.commit_window = config.spool.commit_window;
    options.encryption_key_file = config.spool.encryption_key_file.clone();
    options.raw_scans_when_full = match config.spool.raw_scans_when_full {
        tallyman_config::WhenFull::Refuse => crate::spool::RawScansWhenFull::Refuse,
        tallyman_config::WhenFull::DropOldest => crate::spool::RawScansWhenFull::DropOldest,
    };
    let (spool, check) = tokio::task::spawn_blocking(move || Spool::open(options))
        .await
        .context("opening the spool")?
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = serde_json::to_string(&check).unwrap_or_default();
    if check.problems.is_empty() {
        info!(report = %report, "Spool self-check passed.");
    } else {
        warn!(report = %report, "Spool self-check found problems; damaged records are quarantined.");
    }
    Ok(spool)
}
