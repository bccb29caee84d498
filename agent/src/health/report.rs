//! The health document (PRODUCT §6 `health`): what `health.json` holds and what is published,
//! retained, on `tallyman/v1/{facility}/{gateway}/health`. Every field is described in the
//! README ("What health reports"); the field names are a contract with central IT.
//!
//! Building is split in two: [`Figures::gather`] reads what costs I/O (the spool's counters,
//! the oldest undelivered event of each sink, `statvfs` of the data directory) and
//! [`Reporter::build`] assembles the document from those figures and a registry snapshot
//! without any I/O, so it is tested alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use tallyman_protocol::event::Timestamp;

use super::histogram::Histogram;
use super::{Registry, Snapshot, SourceSnapshot, State};
use crate::spool::{Spool, Stats};

/// The version of this document's layout; a change that removes or renames a field makes a
/// new one.
pub const SCHEMA: u32 = 1;

/// What the report says about the whole agent, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Overall {
    Green,
    Yellow,
    Red,
}

/// The health document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub schema: u32,
    pub state: Overall,
    /// Why the state is not green, one sentence each.
    pub reasons: Vec<String>,
    pub agent_version: String,
    /// The running configuration's version; null until pushed configuration exists.
    pub config_version: Option<u64>,
    pub facility: String,
    pub gateway: String,
    pub at: Timestamp,
    pub started_at: Timestamp,
    pub uptime_secs: u64,
    pub interval_secs: u64,
    /// The connection to the central broker; null without `[mqtt]`.
    pub mqtt: Option<State>,
    pub sources: BTreeMap<String, SourceSnapshot>,
    pub sinks: BTreeMap<String, SinkReport>,
    pub spool: SpoolReport,
    pub disk: DiskReport,
}

/// One sink in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkReport {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub state: &'static str,
    pub since: Timestamp,
    pub last_error: Option<String>,
    pub consecutive_failures: u64,
    /// Events after the sink's cursor.
    pub backlog: u64,
    /// Age of the first event after the cursor (by its capture time); null without backlog.
    pub oldest_undelivered_secs: Option<u64>,
    /// Dead letters kept in the spool for this sink now.
    pub dead_letters: u64,
    /// Dead letters an operator handed back, waiting to be delivered again.
    pub replaying: u64,
    /// Since start.
    pub delivered: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    pub latency_ms: Latency,
    pub last_delivered_at: Option<Timestamp>,
}

/// Capture → delivered, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Events delivered since the previous report.
    pub interval: Percentiles,
    /// Events delivered since start.
    pub since_start: Percentiles,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50: Option<u64>,
    pub p99: Option<u64>,
}

impl Percentiles {
    fn of(h: &Histogram) -> Percentiles {
        Percentiles {
            count: h.count(),
            p50: h.percentile(500),
            p99: h.percentile(990),
        }
    }
}

/// The spool in the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpoolReport {
    pub events_stored: u64,
    pub last_seq: u64,
    pub bytes_live: u64,
    pub bytes_on_disk: u64,
    pub max_bytes: u64,
    pub full: bool,
    /// The largest of the sinks' `oldest_undelivered_secs`; null when every sink is caught up.
    pub oldest_undelivered_secs: Option<u64>,
    pub dead_letters: u64,
    pub quarantined: u64,
    pub dropped_scans: u64,
}

/// The file system of the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiskReport {
    pub path: PathBuf,
    /// Free to the agent (not counting blocks reserved for root); null if it could not be read.
    pub free_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    /// Why `statvfs` failed.
    pub error: Option<String>,
}

/// Who is reporting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub facility: String,
    pub gateway: String,
    pub agent_version: String,
    pub config_version: Option<u64>,
    pub interval: Duration,
}

/// The figures that cost I/O, read at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Figures {
    pub at: Timestamp,
    pub started_at: Timestamp,
    pub uptime: Duration,
    pub snapshot: Snapshot,
    pub spool: Stats,
    /// Per configured sink: the capture time of the first event after its cursor.
    pub oldest: BTreeMap<String, Timestamp>,
    pub disk: DiskReport,
}

impl Figures {
    /// Read everything now. Blocking (sled reads, `statvfs`): call from `spawn_blocking`.
    /// One block of the spool is read per sink with a backlog.
    pub fn gather(registry: &Registry, spool: &Spool, data_dir: &Path) -> Figures {
        let snapshot = registry.snapshot();
        let stats = spool.stats();
        let mut oldest = BTreeMap::new();
        for sink in stats.sinks.iter().filter(|s| s.configured && s.backlog > 0) {
            match spool.list(sink.cursor, 1) {
                Ok(first) => {
                    if let Some(stored) = first.first() {
                        oldest.insert(sink.name.clone(), stored.event.captured_at());
                    }
                }
                // The sink meets the same error when it reads, and reports it; health shows
                // no age rather than a wrong one.
                Err(e) => {
                    tracing::debug!(sink = %sink.name, error = %e, "Health: reading the oldest undelivered event failed.");
                }
            }
        }
        let (started_at, uptime) = registry.started();
        Figures {
            at: crate::clock::now(),
            started_at,
            uptime,
            snapshot,
            spool: stats,
            oldest,
            disk: disk(data_dir),
        }
    }
}

/// Free and total bytes of the file system holding `path`.
pub fn disk(path: &Path) -> DiskReport {
    match rustix::fs::statvfs(path) {
        Ok(s) => DiskReport {
            path: path.to_owned(),
            free_bytes: Some(s.f_bavail.saturating_mul(s.f_frsize)),
            total_bytes: Some(s.f_blocks.saturating_mul(s.f_frsize)),
            error: None,
        },
        Err(e) => DiskReport {
            path: path.to_owned(),
            free_bytes: None,
            total_bytes: None,
            error: Some(format!("statvfs: {e}")),
        },
    }
}

/// Builds reports one after another, remembering each sink's latency histogram at the
/// previous report so that the next one can tell the latency of its interval.
#[derive(Debug, Default)]
pub struct Reporter {
    previous: BTreeMap<String, Histogram>,
}

impl Reporter {
    pub fn new() -> Reporter {
        Reporter::default()
    }

    /// The report of `figures`. Pure: no I/O, no clock.
    pub fn build(&mut self, who: &Identity, figures: Figures) -> Report {
        let Figures {
            at,
            started_at,
            uptime,
            snapshot,
            spool,
            oldest,
            disk,
        } = figures;
        let age = |captured: &Timestamp| -> u64 {
            let ms = at
                .unix_millis()
                .saturating_sub(captured.unix_millis())
                .max(0);
            u64::try_from(ms / 1000).unwrap_or(0)
        };

        let mut sinks = BTreeMap::new();
        for (name, s) in snapshot.sinks {
            let stats = spool.sinks.iter().find(|st| st.name == name);
            let empty = Histogram::new();
            let interval = s.latency.since(self.previous.get(&name).unwrap_or(&empty));
            let report = SinkReport {
                kind: s.kind,
                state: s.state.state,
                since: s.state.since,
                last_error: s.state.last_error,
                consecutive_failures: s.consecutive_failures,
                backlog: stats.map_or(0, |st| st.backlog),
                oldest_undelivered_secs: oldest.get(&name).map(age),
                dead_letters: stats.map_or(0, |st| st.dead_letters),
                replaying: stats.map_or(0, |st| st.replaying),
                delivered: s.delivered,
                retries: s.retries,
                dead_lettered: s.dead_lettered,
                latency_ms: Latency {
                    interval: Percentiles::of(&interval),
                    since_start: Percentiles::of(&s.latency),
                },
                last_delivered_at: s.last_delivered_at,
            };
            self.previous.insert(name.clone(), s.latency);
            sinks.insert(name, report);
        }

        let spool = SpoolReport {
            events_stored: spool.events_stored,
            last_seq: spool.last_seq,
            bytes_live: spool.bytes_live,
            bytes_on_disk: spool.bytes_on_disk,
            max_bytes: spool.max_bytes,
            full: spool.full,
            oldest_undelivered_secs: oldest.values().map(age).max(),
            dead_letters: spool.dead_letters,
            quarantined: spool.quarantined,
            dropped_scans: spool.dropped_scans,
        };
        let (state, reasons) = judge(&snapshot.mqtt, &snapshot.sources, &sinks, &spool, &disk);
        Report {
            schema: SCHEMA,
            state,
            reasons,
            agent_version: who.agent_version.clone(),
            config_version: who.config_version,
            facility: who.facility.clone(),
            gateway: who.gateway.clone(),
            at,
            started_at,
            uptime_secs: uptime.as_secs(),
            interval_secs: who.interval.as_secs(),
            mqtt: snapshot.mqtt,
            sources: snapshot.sources,
            sinks,
            spool,
            disk,
        }
    }
}

/// The overall state and why. Red: intake is refused (the spool is full) or a sink stopped.
/// Yellow: a sink is retrying, a source is not open, the MQTT connection is not connected, or
/// the disk has less room than the spool may still take.
fn judge(
    mqtt: &Option<State>,
    sources: &BTreeMap<String, SourceSnapshot>,
    sinks: &BTreeMap<String, SinkReport>,
    spool: &SpoolReport,
    disk: &DiskReport,
) -> (Overall, Vec<String>) {
    let mut found: Vec<(Overall, String)> = Vec::new();
    if spool.full {
        found.push((
            Overall::Red,
            "the spool is full: new events are refused".to_owned(),
        ));
    }
    for (name, s) in sinks {
        let why = s
            .last_error
            .as_deref()
            .map(|e| format!(": {e}"))
            .unwrap_or_default();
        match s.state {
            "stopped" => found.push((Overall::Red, format!("sink `{name}` is stopped{why}"))),
            "retrying" => found.push((Overall::Yellow, format!("sink `{name}` is retrying{why}"))),
            _ => {}
        }
    }
    for (name, s) in sources {
        if s.state != "open" {
            let why = s
                .last_error
                .as_deref()
                .map(|e| format!(" (last error: {e})"))
                .unwrap_or_default();
            found.push((
                Overall::Yellow,
                format!("source `{name}` is {}{why}", s.state),
            ));
        }
    }
    if let Some(m) = mqtt.as_ref().filter(|m| m.state != "connected") {
        let why = m
            .last_error
            .as_deref()
            .map(|e| format!(" (last error: {e})"))
            .unwrap_or_default();
        found.push((
            Overall::Yellow,
            format!("the MQTT connection is {}{why}", m.state),
        ));
    }
    let room = spool.max_bytes.saturating_sub(spool.bytes_on_disk);
    if let Some(free) = disk.free_bytes.filter(|&free| free < room) {
        found.push((
            Overall::Yellow,
            format!(
                "the disk has {free} bytes free, less than the {room} bytes the spool may still \
                 take"
            ),
        ));
    }
    if disk.error.is_some() {
        found.push((
            Overall::Yellow,
            "the free space of the data directory could not be read".to_owned(),
        ));
    }
    // Stable: within a level, the order above.
    found.sort_by_key(|f| std::cmp::Reverse(f.0));
    let state = found.first().map_or(Overall::Green, |f| f.0);
    (state, found.into_iter().map(|f| f.1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::SinkStats;

    fn ts(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(ms).unwrap()
    }

    const T0: i64 = 1_800_000_000_000;

    fn who() -> Identity {
        Identity {
            facility: "north".into(),
            gateway: "gw-1".into(),
            agent_version: "9.9.9".into(),
            config_version: None,
            interval: Duration::from_secs(30),
        }
    }

    fn stats(sinks: Vec<SinkStats>) -> Stats {
        Stats {
            events_stored: 10,
            last_seq: 12,
            bytes_live: 4_000,
            bytes_on_disk: 100_000,
            max_bytes: 1_000_000,
            full: false,
            sinks,
            dead_letters: 1,
            quarantined: 0,
            dropped_scans: 0,
            encrypted: false,
            commits: 5,
        }
    }

    fn sink_stats(name: &str, cursor: u64, backlog: u64) -> SinkStats {
        SinkStats {
            name: name.into(),
            configured: true,
            cursor,
            backlog,
            dead_letters: 1,
            replaying: 0,
        }
    }

    fn figures(registry: &Registry, spool: Stats, oldest: &[(&str, i64)], at: i64) -> Figures {
        Figures {
            at: ts(at),
            started_at: ts(T0),
            uptime: Duration::from_secs(u64::try_from((at - T0) / 1000).unwrap()),
            snapshot: registry.snapshot(),
            spool,
            oldest: oldest
                .iter()
                .map(|(n, ms)| ((*n).to_owned(), ts(*ms)))
                .collect(),
            disk: DiskReport {
                path: "/var/lib/tallyman".into(),
                free_bytes: Some(50_000_000),
                total_bytes: Some(100_000_000),
                error: None,
            },
        }
    }

    #[test]
    fn a_healthy_agent_is_green_and_every_figure_lands_in_its_field() {
        let registry = Registry::new();
        let dock = registry.source("dock-1", "serial");
        dock.set_state("open", None);
        super::super::SourceHealth::count(&dock.accepted);
        let hub = registry.sink("hub", "file");
        hub.delivered(&[ts(T0), ts(T0 + 980)], ts(T0 + 1_000));
        hub.idle();
        let mut reporter = Reporter::new();
        let report = reporter.build(
            &who(),
            figures(
                &registry,
                stats(vec![sink_stats("hub", 10, 2)]),
                &[("hub", T0 - 90_000)],
                T0 + 60_000,
            ),
        );
        assert_eq!(report.state, Overall::Green, "{:?}", report.reasons);
        assert!(report.reasons.is_empty());
        assert_eq!(report.schema, SCHEMA);
        assert_eq!(report.uptime_secs, 60);
        assert_eq!(report.interval_secs, 30);
        assert_eq!(report.sources["dock-1"].accepted, 1);
        let s = &report.sinks["hub"];
        assert_eq!((s.kind, s.state), ("file", "idle"));
        assert_eq!((s.backlog, s.dead_letters, s.delivered), (2, 1, 2));
        assert_eq!(s.oldest_undelivered_secs, Some(150));
        assert_eq!(s.latency_ms.interval.count, 2);
        assert_eq!(s.latency_ms.interval.p50, Some(20));
        assert_eq!(s.latency_ms.since_start.count, 2);
        assert_eq!(s.last_delivered_at, Some(ts(T0 + 1_000)));
        assert_eq!(report.spool.oldest_undelivered_secs, Some(150));
        assert_eq!(report.spool.events_stored, 10);
        assert_eq!(report.disk.free_bytes, Some(50_000_000));

        // The document's field names are the contract: spot-check the JSON.
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["state"], "green");
        assert_eq!(json["config_version"], serde_json::Value::Null);
        assert_eq!(json["sinks"]["hub"]["type"], "file");
        // 1000 ms, reported as the middle of its bucket 992..=1023.
        assert_eq!(
            json["sinks"]["hub"]["latency_ms"]["since_start"]["p99"],
            1008
        );
        assert_eq!(json["sources"]["dock-1"]["type"], "serial");
        assert_eq!(json["mqtt"], serde_json::Value::Null);

        // The next report's interval holds only what was delivered since.
        hub.delivered(&[ts(T0 + 60_000)], ts(T0 + 65_000));
        let report = reporter.build(
            &who(),
            figures(
                &registry,
                stats(vec![sink_stats("hub", 12, 0)]),
                &[],
                T0 + 90_000,
            ),
        );
        let s = &report.sinks["hub"];
        assert_eq!(s.latency_ms.interval.count, 1);
        let p50 = s.latency_ms.interval.p50.unwrap();
        assert!(p50.abs_diff(5_000) <= 5_000 / 32, "{p50}");
        assert_eq!(s.latency_ms.since_start.count, 3);
        assert_eq!(s.oldest_undelivered_secs, None);
        assert_eq!(report.spool.oldest_undelivered_secs, None);

        // And with nothing delivered in between, the interval is empty.
        let report = reporter.build(&who(), figures(&registry, stats(vec![]), &[], T0 + 120_000));
        let i = &report.sinks["hub"].latency_ms.interval;
        assert_eq!((i.count, i.p50, i.p99), (0, None, None));
    }

    #[test]
    fn trouble_turns_the_state_yellow_or_red_with_reasons_worst_first() {
        let registry = Registry::new();
        registry
            .source("dock-1", "serial")
            .set_state("reopening", Some("the device is gone".into()));
        registry.sink("hub", "mqtt").retrying("connection refused");
        registry.set_mqtt("disconnected", Some("broker unreachable".into()));
        let mut full = stats(vec![sink_stats("hub", 0, 12)]);
        full.full = true;
        let mut f = figures(&registry, full, &[("hub", T0)], T0 + 10_000);
        f.disk.free_bytes = Some(1_000);
        let report = Reporter::new().build(&who(), f);
        assert_eq!(report.state, Overall::Red);
        assert_eq!(
            report.reasons,
            vec![
                "the spool is full: new events are refused".to_owned(),
                "sink `hub` is retrying: connection refused".to_owned(),
                "source `dock-1` is reopening (last error: the device is gone)".to_owned(),
                "the MQTT connection is disconnected (last error: broker unreachable)".to_owned(),
                "the disk has 1000 bytes free, less than the 900000 bytes the spool may still \
                 take"
                    .to_owned(),
            ]
        );
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["state"], "red");
        assert_eq!(json["mqtt"]["state"], "disconnected");
        assert_eq!(json["sinks"]["hub"]["state"], "retrying");
        assert_eq!(json["sinks"]["hub"]["consecutive_failures"], 1);
        assert_eq!(json["spool"]["oldest_undelivered_secs"], 10);

        let registry = Registry::new();
        registry.sink("hub", "mqtt").retrying("timeout");
        let report =
            Reporter::new().build(&who(), figures(&registry, stats(vec![]), &[], T0 + 1_000));
        assert_eq!(report.state, Overall::Yellow);
    }

    #[test]
    fn disk_reads_the_data_directory_file_system() {
        let dir = tempfile::tempdir().unwrap();
        let d = disk(dir.path());
        assert!(d.error.is_none());
        assert!(d.free_bytes.unwrap() <= d.total_bytes.unwrap());
        assert!(d.total_bytes.unwrap() > 0);
        let gone = disk(&dir.path().join("missing"));
        assert!(gone.free_bytes.is_none());
        assert!(gone.error.unwrap().starts_with("statvfs: "));
    }
}
