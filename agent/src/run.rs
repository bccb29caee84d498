//! `tallyman run`: the service. Start-up is "apply the configuration to an empty agent": open
//! the spool (its self-check is logged), start one delivery task per sink, start the sources,
//! then wait for SIGTERM/SIGINT. Shutdown: stop intake (sources settle what they started),
//! give sinks until the grace deadline, close the spool (flush + fdatasync), exit 0.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tallyman_config::{Config, Input, SinkTarget};
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::cli::RunArgs;
use crate::delivery::{self, Backlog, SinkSettings};
use crate::health::Registry;
use crate::shutdown;
use crate::sinks::{Sink, file::FileSink};
use crate::spool::{Spool, SpoolOptions};
use crate::telemetry;
use crate::workflow::{self, Machine, Workflow};

/// How long sinks may go on delivering after a shutdown signal.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => tallyman_config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?,
        None => {
            Config::demo().map_err(|e| anyhow::anyhow!("the built-in demo configuration: {e}"))?
        }
    };
    let format = match config.log.format {
        tallyman_config::LogFormat::Text => telemetry::Format::Text,
        tallyman_config::LogFormat::Json => telemetry::Format::Json,
    };
    telemetry::init(format, config.log.level.as_str());
    if args.config.is_none() {
        info!(data_dir = %config.agent.data_dir.display(), "No --config: running the demo (scans on stdin, events in outbox.jsonl).");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(config));
    // A blocking read of stdin cannot be cancelled: do not wait for it on the way out.
    runtime.shutdown_timeout(Duration::from_millis(200));
    result
}

async fn serve(config: Config) -> anyhow::Result<ExitCode> {
    refuse_unavailable(&config)?;
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

    let (trigger, shutdown) = shutdown::channel();
    let health = Registry::new();
    let backlog: Arc<dyn Backlog> = Arc::new(spool.clone());
    let mut sources = JoinSet::new();
    let mqtt = spawn_mqtt(&config, &spool, &health, &shutdown, &mut sources);
    let mut sinks = JoinSet::new();
    for sink in &config.sinks {
        let target: Box<dyn Sink> = match &sink.target {
            SinkTarget::File(f) => Box::new(FileSink::new(f.path.clone())),
            SinkTarget::Mqtt(m) => match mqtt_sink(&config, sink, m, mqtt.as_ref(), &shutdown) {
                Some(s) => s,
                None => continue,
            },
            SinkTarget::Http(h) => {
                Box::new(crate::sinks::http::HttpSink::new(sink.name.as_str(), h))
            }
            SinkTarget::Odoo(o) => {
                Box::new(crate::sinks::odoo::OdooSink::new(sink.name.as_str(), o))
            }
        };
        let settings = SinkSettings {
            name: sink.name.as_str().to_string(),
            kinds: sink.kinds.clone(),
            batch_size: usize::try_from(sink.batch_size).unwrap_or(100),
            retry_initial: sink.retry.initial,
            retry_max: sink.retry.max,
            shutdown_grace: SHUTDOWN_GRACE,
            health: health.sink(sink.name.as_str(), crate::health::sink_kind(&sink.target)),
        };
        sinks.spawn(delivery::run_sink(
            Arc::clone(&backlog),
            target,
            settings,
            shutdown.clone(),
        ));
    }

    let reporting = spawn_health(&config, &spool, &health, mqtt.as_ref(), &shutdown);
    for source in &config.sources {
        if let Input::Serial(serial) = &source.input {
            spawn_serial(
                &mut sources,
                &config,
                source,
                serial,
                &spool,
                &health,
                &shutdown,
            );
        }
        // Other inputs were refused above.
        if let Input::Stdin(stdin) = &source.input {
            let framing = crate::sources::stdin::Framing {
                strip_prefix: stdin.strip_prefix.clone(),
                strip_suffix: stdin.strip_suffix.clone(),
                max_frame: stdin.max_frame_bytes,
            };
            sources.spawn(crate::sources::stdin::run(
                tokio::io::stdin(),
                tokio::io::stdout(),
                framing,
                machine_for(&config, source),
                spool.clone(),
                health.source(source.name.as_str(), "stdin"),
                shutdown.clone(),
            ));
        }
    }
    info!(
        sources = config.sources.len(),
        sinks = config.sinks.len(),
        "Agent running."
    );

    match shutdown::signal().await {
        Ok(sig) => info!(signal = sig, "Stopping: intake first, then sinks."),
        Err(e) => error!(error = %e, "Cannot listen for signals; stopping."),
    }
    trigger.fire();
    while sources.join_next().await.is_some() {}
    let grace = tokio::time::sleep(SHUTDOWN_GRACE + Duration::from_secs(1));
    tokio::pin!(grace);
    loop {
        tokio::select! {
            next = sinks.join_next() => if next.is_none() { break },
            _ = &mut grace => {
                warn!("Sinks still running past the shutdown deadline; abandoning them.");
                sinks.abort_all();
                break;
            }
        }
    }
    // It stops at the trigger; a report being written is finished first.
    let _ = reporting.await;
    if let Some(mqtt) = mqtt {
        mqtt.close().await;
    }
    spool
        .close()
        .await
        .map_err(|e| anyhow::anyhow!("closing the spool: {e}"))?;
    info!("Stopped.");
    Ok(ExitCode::SUCCESS)
}

/// Start a serial source: its port task (open, frame, reopen forever) and its driver.
fn spawn_serial(
    sources: &mut JoinSet<()>,
    config: &Config,
    source: &tallyman_config::Source,
    serial: &tallyman_config::Serial,
    spool: &Spool,
    health: &Arc<Registry>,
    shutdown: &shutdown::Shutdown,
) {
    let serial = serial.clone();
    let machine = machine_for(config, source);
    let spool = spool.clone();
    let health = health.source(source.name.as_str(), "serial");
    let shutdown = shutdown.clone();
    sources.spawn(async move {
        crate::sources::serial::run(&serial, machine, spool, health, shutdown).await;
    });
}

/// Start the MQTT connection when `[mqtt]` is configured, and the mqtt source on it. The
/// connection is closed (offline published, clean disconnect) after sources and sinks stopped.
fn spawn_mqtt(
    config: &Config,
    spool: &Spool,
    health: &Arc<Registry>,
    shutdown: &shutdown::Shutdown,
    sources: &mut JoinSet<()>,
) -> Option<crate::mqtt::Connection> {
    use crate::sources::mqtt as source;
    let mut settings = crate::mqtt::Settings::from_config(config)?;
    let input = config
        .sources
        .iter()
        .find(|s| matches!(s.input, Input::Mqtt));
    if input.is_some() {
        settings.subscriptions =
            source::subscriptions(&config.agent.facility, &config.agent.gateway);
    }
    let (connection, inbound) = crate::mqtt::Connection::start(settings, Arc::clone(health));
    if let Some(input) = input {
        let (config_, input_) = (config.clone(), input.clone());
        let machine_for: source::MachineFactory = Box::new(move |device| {
            let mut device_source = input_.clone();
            device_source.name = device;
            machine_for(&config_, &device_source)
        });
        sources.spawn(source::run(
            inbound,
            connection.handle(),
            spool.clone(),
            source::Settings {
                name: input.name.clone(),
                facility: config.agent.facility.clone(),
                gateway: config.agent.gateway.clone(),
                machine_for,
            },
            health.source(input.name.as_str(), "mqtt"),
            shutdown.clone(),
        ));
    }
    Some(connection)
}

/// The hub sink over the `[mqtt]` connection (the configuration requires `[mqtt]` for it).
fn mqtt_sink(
    config: &Config,
    sink: &tallyman_config::Sink,
    mqtt_sink: &tallyman_config::MqttSink,
    mqtt: Option<&crate::mqtt::Connection>,
    shutdown: &shutdown::Shutdown,
) -> Option<Box<dyn Sink>> {
    Some(Box::new(crate::sinks::mqtt::MqttSink::new(
        mqtt?.handle(),
        mqtt_sink,
        config.agent.facility.clone(),
        config.agent.gateway.clone(),
        shutdown.clone(),
        usize::try_from(sink.batch_size).unwrap_or(1),
    )))
}

/// Start the health task: the report every `[health] interval_secs` in `health.json`, and
/// retained on the `health` topic when `[mqtt]` is configured.
fn spawn_health(
    config: &Config,
    spool: &Spool,
    health: &Arc<Registry>,
    mqtt: Option<&crate::mqtt::Connection>,
    shutdown: &shutdown::Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(crate::health::publish::run(
        crate::health::publish::Settings::from_config(config, None),
        Arc::clone(health),
        spool.clone(),
        mqtt.map(crate::mqtt::Connection::handle),
        shutdown.clone(),
    ))
}

/// What the configuration allows but this agent cannot run is refused with a clear message
/// rather than silently ignored: today, a second mqtt source.
fn refuse_unavailable(config: &Config) -> anyhow::Result<()> {
    for source in &config.sources {
        match source.input {
            Input::Stdin(_) | Input::Serial(_) | Input::Mqtt => {}
        }
    }
    let mut mqtt_sources = config
        .sources
        .iter()
        .filter(|s| matches!(s.input, Input::Mqtt));
    if let (Some(first), Some(second)) = (mqtt_sources.next(), mqtt_sources.next()) {
        anyhow::bail!(
            "sources `{}` and `{}`: at most one mqtt source per agent (both would read this \
             gateway's in/events and in/scans)",
            first.name,
            second.name
        );
    }
    Ok(())
}

/// The scan state machine a source's decoder calls for.
pub fn machine_for(config: &Config, source: &tallyman_config::Source) -> Box<dyn Machine> {
    match &source.scan.decoder {
        tallyman_config::Decoder::Barcode => {
            Box::new(Workflow::new(workflow_settings(config, source)))
        }
        tallyman_config::Decoder::Rfid(rfid) => Box::new(tag_machine(config, source, rfid)),
    }
}

/// An RFID reader: a portal makes transfers, the consume workflow consumptions at its
/// location, passthrough raw scans.
fn tag_machine(
    config: &Config,
    source: &tallyman_config::Source,
    rfid: &tallyman_config::Rfid,
) -> workflow::rfid::TagMachine {
    use workflow::rfid::{TagMachine, TagMode, TagSettings};
    let mode = match (&rfid.portal, &source.scan.workflow) {
        (Some(p), _) => TagMode::Portal {
            from: p.from.clone(),
            to: p.to.clone(),
        },
        (None, tallyman_config::Workflow::Consume { location }) => TagMode::Consume {
            location: location.clone(),
        },
        // The configuration refuses the session workflow for RFID (a reader cannot scan command
        // barcodes); passing reads through would lose nothing.
        (None, tallyman_config::Workflow::Passthrough | tallyman_config::Workflow::Session) => {
            TagMode::Passthrough
        }
    };
    TagMachine::new(TagSettings {
        facility: config.agent.facility.clone(),
        gateway: config.agent.gateway.clone(),
        source: source.name.clone(),
        default_uom: source.scan.default_uom.clone(),
        dedup_window: rfid.dedup_window,
        mode,
    })
}

fn workflow_settings(config: &Config, source: &tallyman_config::Source) -> workflow::Settings {
    let scan = &source.scan;
    let mut s = workflow::Settings::new(
        config.agent.facility.clone(),
        config.agent.gateway.clone(),
        source.name.clone(),
        scan.default_uom.clone(),
    );
    s.workflow = match scan.workflow {
        tallyman_config::Workflow::Session => workflow::WorkflowKind::Session,
        tallyman_config::Workflow::Consume { .. } => workflow::WorkflowKind::Consume,
        tallyman_config::Workflow::Passthrough => workflow::WorkflowKind::Passthrough,
    };
    s.command_prefix = scan.command_prefix.clone();
    s.location = scan.location.clone();
    s.idle_timeout = scan.idle_timeout;
    s.idle_action = match scan.idle_action {
        tallyman_config::IdleAction::Commit => workflow::IdleAction::Commit,
        tallyman_config::IdleAction::Discard => workflow::IdleAction::Discard,
    };
    s.expired = match scan.expired {
        tallyman_config::ExpiredPolicy::Reject => workflow::ExpiredPolicy::Reject,
        tallyman_config::ExpiredPolicy::Flag => workflow::ExpiredPolicy::Flag,
    };
    s.gs_aliases = scan.gs_aliases.clone();
    s
}
