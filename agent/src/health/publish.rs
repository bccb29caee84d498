//! The health task: every `[health] interval_secs` (the first one interval after start, when
//! the parts have had time to open and connect) it builds the report,
//! writes it to `DATA_DIR/health.json` and, when `[mqtt]` is configured and the connection is
//! up, publishes it retained on `tallyman/v1/{facility}/{gateway}/health`.
//!
//! * **`health.json`** is replaced atomically (written to `health.json.tmp`, then renamed), so a
//!   reader never sees half a document. It is not fsynced: it is rewritten every interval and
//!   an SD card should not pay a sync for it; after a power cut it may be missing or old
//!   (its `at` tells).
//! * **MQTT**: QoS 1, retained, so the broker holds the latest report for anyone who subscribes
//!   later. It is published only while the connection is `connected`: reports are not queued
//!   during an outage (they would be stale when delivered); the first tick after a reconnect
//!   publishes a fresh one. The publish waits at most one interval for room in the
//!   connection's queue.
//! * Every report is logged at DEBUG in one line; a change of the overall state is logged at
//!   WARN (to yellow or red, with the reasons) or INFO (back to green).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tallyman_config::Config;
use tallyman_protocol::topic::Topic;
use tokio::time::MissedTickBehavior;
use tracing::{debug, info, warn};

use super::Registry;
use super::report::{Figures, Identity, Overall, Report, Reporter};
use crate::mqtt::{MqttHandle, QoS};
use crate::shutdown::Shutdown;
use crate::spool::Spool;

/// The file in the data directory that holds the latest report.
pub const FILE_NAME: &str = "health.json";

/// What the health task needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub identity: Identity,
    pub data_dir: PathBuf,
    pub topic: Topic,
}

impl Settings {
    /// From the configuration; `config_version` is the running configuration's version (none
    /// until pushed configuration exists).
    pub fn from_config(config: &Config, config_version: Option<u64>) -> Settings {
        Settings {
            identity: Identity {
                facility: config.agent.facility.to_string(),
                gateway: config.agent.gateway.to_string(),
                agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                config_version,
                interval: config.health.interval,
            },
            data_dir: config.agent.data_dir.clone(),
            topic: Topic::Health {
                facility: config.agent.facility.clone(),
                gateway: config.agent.gateway.clone(),
            },
        }
    }
}

/// Report until shutdown.
pub async fn run(
    settings: Settings,
    registry: Arc<Registry>,
    spool: Spool,
    mqtt: Option<MqttHandle>,
    mut shutdown: Shutdown,
) {
    let interval = settings
        .identity
        .interval
        .max(std::time::Duration::from_secs(1));
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut reporter = Reporter::new();
    let mut last_state = Overall::Green;
    let mut file_error: Option<String> = None;
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait() => break,
        }
        let (r, s, dir) = (
            Arc::clone(&registry),
            spool.clone(),
            settings.data_dir.clone(),
        );
        let figures = match tokio::task::spawn_blocking(move || Figures::gather(&r, &s, &dir)).await
        {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "Gathering the health figures failed; trying again at the next interval.");
                continue;
            }
        };
        let report = reporter.build(&settings.identity, figures);
        log(&report, &mut last_state);

        // Plain data (strings, numbers, maps with string keys) always serialises.
        let pretty = serde_json::to_vec_pretty(&report).unwrap_or_default();
        let dir = settings.data_dir.clone();
        let written = tokio::task::spawn_blocking(move || write_atomically(&dir, &pretty))
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
        match written {
            Ok(()) => file_error = None,
            Err(e) => {
                let e = e.to_string();
                // Said once per distinct error, not every interval.
                if file_error.as_deref() != Some(e.as_str()) {
                    warn!(error = %e, path = %settings.data_dir.join(FILE_NAME).display(), "Writing the health file failed.");
                    file_error = Some(e);
                }
            }
        }

        let connected = report.mqtt.as_ref().is_some_and(|m| m.state == "connected");
        if let (Some(mqtt), true) = (&mqtt, connected) {
            let payload = serde_json::to_vec(&report).unwrap_or_default();
            let publish = mqtt.publish(&settings.topic, payload, QoS::AtLeastOnce, true);
            tokio::select! {
                done = tokio::time::timeout(interval, publish) => match done {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => debug!(error = %e, "Health not published."),
                    Err(_) => debug!("Health not published: the MQTT queue stayed full for an interval."),
                },
                // Never hold up shutdown for a report.
                _ = shutdown.wait() => break,
            }
        }
    }
}

/// Replace `dir/health.json` with `bytes` in one step (write a temporary file, rename it).
pub fn write_atomically(dir: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, dir.join(FILE_NAME))
}

/// One DEBUG line per report; the overall state's changes at WARN / INFO.
fn log(report: &Report, last: &mut Overall) {
    let sinks = report
        .sinks
        .iter()
        .map(|(name, s)| format!("{name} {} backlog {}", s.state, s.backlog))
        .collect::<Vec<_>>()
        .join("; ");
    debug!(
        state = ?report.state,
        events_stored = report.spool.events_stored,
        oldest_undelivered_secs = report.spool.oldest_undelivered_secs,
        disk_free_bytes = report.disk.free_bytes,
        sinks = %sinks,
        "Health report."
    );
    if report.state != *last {
        let reasons = report.reasons.join("; ");
        match report.state {
            Overall::Green => info!("Health is green again."),
            Overall::Yellow => warn!(reasons = %reasons, "Health is yellow."),
            Overall::Red => warn!(reasons = %reasons, "Health is red."),
        }
        *last = report.state;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first report comes one interval after start, then one per interval; shutdown
    /// stops the task at once.
    #[tokio::test(start_paused = true)]
    async fn reports_come_every_interval_and_stop_at_shutdown() {
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let options = crate::spool::SpoolOptions::new(dir.path().join("spool"), vec!["out".into()]);
        let (spool, _) = Spool::open(options).unwrap();
        let registry = Registry::new();
        let out = registry.sink("out", "file");
        let settings = Settings {
            identity: Identity {
                facility: "north".into(),
                gateway: "gw-1".into(),
                agent_version: "9.9.9".into(),
                config_version: Some(7),
                interval: Duration::from_secs(30),
            },
            data_dir: dir.path().to_owned(),
            topic: Topic::Health {
                facility: tallyman_protocol::event::FacilityId::new("north").unwrap(),
                gateway: tallyman_protocol::event::GatewayId::new("gw-1").unwrap(),
            },
        };
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run(settings, registry, spool.clone(), None, shutdown));
        let file = dir.path().join(FILE_NAME);
        let read = || -> Option<serde_json::Value> {
            serde_json::from_slice(&std::fs::read(&file).ok()?).ok()
        };

        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(read().is_none(), "no report before the first interval");
        let start = tokio::time::Instant::now();
        let first = loop {
            if let Some(r) = read() {
                break r;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no report after one interval"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(first["config_version"], 7);
        assert_eq!(first["sinks"]["out"]["state"], "idle");
        assert!(first["mqtt"].is_null());
        // The next one replaces it an interval later.
        let now = crate::clock::now();
        out.delivered(&[now], now);
        let start = tokio::time::Instant::now();
        while read().is_some_and(|r| r["sinks"]["out"]["delivered"] == 0) {
            assert!(
                start.elapsed() < Duration::from_secs(35),
                "no second report"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_secs(25),
            "{:?}",
            start.elapsed()
        );

        trigger.fire();
        tokio::time::timeout(Duration::from_millis(1), task)
            .await
            .unwrap()
            .unwrap();
        spool.close().await.unwrap();
    }

    #[test]
    fn the_health_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), b"{\"a\":1}").unwrap();
        write_atomically(dir.path(), b"{\"b\":2}").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(FILE_NAME)).unwrap(),
            b"{\"b\":2}"
        );
        assert!(!dir.path().join("health.json.tmp").exists());
        assert!(write_atomically(&dir.path().join("missing"), b"{}").is_err());
    }
}
