//! What the agent knows about its own parts, for the `health` topic, `health.json` and the
//! logs: one [`SourceHealth`] per source, one [`SinkHealth`] per sink and the state of the MQTT
//! connection.
//!
//! Parts update their entry as things happen (cheap: atomics and a short lock); readers take a
//! [`Snapshot`]. Nothing in this file does I/O; `report.rs` assembles the health document from
//! a snapshot and the spool's figures, `publish.rs` is the task that writes and publishes it.

pub mod histogram;
pub mod publish;
pub mod report;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tallyman_config::SinkTarget;
use tallyman_protocol::event::Timestamp;

use crate::clock;
use histogram::Histogram;

/// Every part's health, shared by the whole agent.
#[derive(Debug)]
pub struct Registry {
    sources: Mutex<BTreeMap<String, Arc<SourceHealth>>>,
    sinks: Mutex<BTreeMap<String, Arc<SinkHealth>>>,
    mqtt: Mutex<Option<State>>,
    started_at: Timestamp,
    started: std::time::Instant,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry {
            sources: Mutex::default(),
            sinks: Mutex::default(),
            mqtt: Mutex::default(),
            started_at: clock::now(),
            started: std::time::Instant::now(),
        })
    }

    /// When the agent started (the registry was made), and how long ago (monotonic).
    pub fn started(&self) -> (Timestamp, std::time::Duration) {
        (self.started_at, self.started.elapsed())
    }

    /// The entry of source `name` (created in state `starting` on first use).
    pub fn source(&self, name: &str, kind: &'static str) -> Arc<SourceHealth> {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            sources
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(SourceHealth::new(kind))),
        )
    }

    /// The entry of sink `name` (created in state `idle` on first use).
    pub fn sink(&self, name: &str, kind: &'static str) -> Arc<SinkHealth> {
        let mut sinks = self.sinks.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            sinks
                .entry(name.to_owned())
                .or_insert_with(|| Arc::new(SinkHealth::new(kind))),
        )
    }

    /// Record the MQTT connection's state.
    pub fn set_mqtt(&self, state: &'static str, error: Option<String>) {
        let mut mqtt = self.mqtt.lock().unwrap_or_else(PoisonError::into_inner);
        let changed = mqtt.as_ref().is_none_or(|s| s.state != state);
        *mqtt = Some(State {
            state,
            since: if changed {
                clock::now()
            } else {
                mqtt.as_ref().map_or_else(clock::now, |s| s.since)
            },
            last_error: error.or_else(|| mqtt.as_ref().and_then(|s| s.last_error.clone())),
        });
    }

    pub fn snapshot(&self) -> Snapshot {
        let sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        Snapshot {
            sources: sources
                .iter()
                .map(|(name, h)| (name.clone(), h.snapshot()))
                .collect(),
            sinks: self
                .sinks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|(name, h)| (name.clone(), h.snapshot()))
                .collect(),
            mqtt: self
                .mqtt
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        }
    }
}

/// A part's state: a short word (`open`, `reopening`, `connected`, …), since when, and the last
/// error it met (kept after recovery, so a flapping device shows why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct State {
    pub state: &'static str,
    pub since: Timestamp,
    pub last_error: Option<String>,
}

/// One source's state and counters.
#[derive(Debug)]
pub struct SourceHealth {
    kind: &'static str,
    state: Mutex<State>,
    /// Frames read (scans, tag reads, inbound messages).
    pub frames: AtomicU64,
    /// Scans whose feedback was *accepted*.
    pub accepted: AtomicU64,
    /// Scans whose feedback was *noted*.
    pub noted: AtomicU64,
    /// Scans whose feedback was *rejected* (undecodable, refused by a check, spool full, too
    /// long, over the rate limit).
    pub rejected: AtomicU64,
    /// Times the device was (re)opened after the first time.
    pub reopens: AtomicU64,
}

impl SourceHealth {
    fn new(kind: &'static str) -> SourceHealth {
        SourceHealth {
            kind,
            state: Mutex::new(State {
                state: "starting",
                since: clock::now(),
                last_error: None,
            }),
            frames: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            noted: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            reopens: AtomicU64::new(0),
        }
    }

    /// Move to `state`; `error` (if any) becomes the last error.
    pub fn set_state(&self, state: &'static str, error: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.state != state {
            s.state = state;
            s.since = clock::now();
        }
        if error.is_some() {
            s.last_error = error;
        }
    }

    pub fn state(&self) -> State {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> SourceSnapshot {
        let state = self.state();
        SourceSnapshot {
            kind: self.kind,
            state: state.state,
            since: state.since,
            last_error: state.last_error,
            frames: self.frames.load(Ordering::Relaxed),
            accepted: self.accepted.load(Ordering::Relaxed),
            noted: self.noted.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            reopens: self.reopens.load(Ordering::Relaxed),
        }
    }
}

/// A source as the health report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceSnapshot {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub state: &'static str,
    pub since: Timestamp,
    pub last_error: Option<String>,
    pub frames: u64,
    pub accepted: u64,
    pub noted: u64,
    pub rejected: u64,
    pub reopens: u64,
}

/// The word health uses for a kind of sink.
pub fn sink_kind(target: &SinkTarget) -> &'static str {
    match target {
        SinkTarget::File(_) => "file",
        SinkTarget::Mqtt(_) => "mqtt",
        SinkTarget::Http(_) => "http",
        SinkTarget::Odoo(_) => "odoo",
    }
}

/// One sink's state and counters, kept by the delivery engine (`crate::delivery`).
///
/// States: `idle` (nothing to deliver), `delivering` (a batch in flight, or delivering
/// without failures), `retrying` (the last attempt failed; waiting for the backoff, and
/// still so during the next attempt until something is delivered), `stopped` (its task ended:
/// shutdown, or the sink gave up until an operator acts).
#[derive(Debug)]
pub struct SinkHealth {
    kind: &'static str,
    state: Mutex<State>,
    deliveries: Mutex<Deliveries>,
    /// Failed attempts in a row (reset by the next attempt that does not fail).
    failures: AtomicU64,
    /// Events delivered since start.
    delivered: AtomicU64,
    /// Failed delivery attempts since start (each followed by a backoff).
    retries: AtomicU64,
    /// Events dead-lettered since start.
    dead_lettered: AtomicU64,
}

/// When deliveries happened and how long events took to get there.
#[derive(Debug, Default)]
struct Deliveries {
    /// Capture → delivered, in milliseconds, since start.
    latency: Histogram,
    last_at: Option<Timestamp>,
}

impl SinkHealth {
    fn new(kind: &'static str) -> SinkHealth {
        SinkHealth {
            kind,
            state: Mutex::new(State {
                state: "idle",
                since: clock::now(),
                last_error: None,
            }),
            deliveries: Mutex::default(),
            failures: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
        }
    }

    fn set(&self, state: &'static str, error: Option<String>) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.state != state {
            s.state = state;
            s.since = clock::now();
        }
        if error.is_some() {
            s.last_error = error;
        }
    }

    /// Nothing to deliver: waiting for new events.
    pub fn idle(&self) {
        self.set("idle", None);
    }

    /// A batch is handed to the sink (a sink that is retrying stays `retrying` until an
    /// attempt succeeds).
    pub fn delivering(&self) {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if s.state != "delivering" && s.state != "retrying" {
            s.state = "delivering";
            s.since = clock::now();
        }
    }

    /// These events (by capture time) were delivered at `at`.
    pub fn delivered(&self, captured: &[Timestamp], at: Timestamp) {
        if captured.is_empty() {
            return;
        }
        self.delivered
            .fetch_add(captured.len() as u64, Ordering::Relaxed);
        let mut d = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for c in captured {
            // A capture time after `at` (a device's clock ahead of ours) counts as 0 ms.
            let ms = at.unix_millis().saturating_sub(c.unix_millis()).max(0);
            d.latency.record(u64::try_from(ms).unwrap_or(0));
        }
        d.last_at = Some(at);
    }

    /// One event was given up on and kept as a dead letter.
    pub fn dead_lettered(&self) {
        self.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }

    /// An attempt ended without failing (delivered, dead-lettered or passed over).
    pub fn succeeded(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.set("delivering", None);
    }

    /// An attempt failed with `error`; the next one comes after a backoff.
    pub fn retrying(&self, error: &str) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        self.retries.fetch_add(1, Ordering::Relaxed);
        self.set("retrying", Some(error.to_owned()));
    }

    /// The sink stopped until someone acts (credentials or rights refused): `reason` says why.
    pub fn halted(&self, reason: &str) {
        self.set("stopped", Some(reason.to_owned()));
    }

    /// The sink's task ended.
    pub fn stopped(&self) {
        self.set("stopped", None);
    }

    pub fn snapshot(&self) -> SinkSnapshot {
        let state = self
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let d = self
            .deliveries
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        SinkSnapshot {
            kind: self.kind,
            state,
            consecutive_failures: self.failures.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            latency: d.latency.clone(),
            last_delivered_at: d.last_at,
        }
    }
}

/// A sink at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkSnapshot {
    pub kind: &'static str,
    pub state: State,
    pub consecutive_failures: u64,
    pub delivered: u64,
    pub retries: u64,
    pub dead_lettered: u64,
    /// Capture → delivered since start, in milliseconds.
    pub latency: Histogram,
    pub last_delivered_at: Option<Timestamp>,
}

/// Everything at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub sources: BTreeMap<String, SourceSnapshot>,
    pub sinks: BTreeMap<String, SinkSnapshot>,
    pub mqtt: Option<State>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_keeps_its_last_error_after_recovering() {
        let registry = Registry::new();
        let dock = registry.source("dock-1", "serial");
        dock.set_state("reopening", Some("the device is gone".into()));
        dock.set_state("open", None);
        SourceHealth::count(&dock.frames);
        let snap = registry.snapshot();
        let s = &snap.sources["dock-1"];
        assert_eq!(s.state, "open");
        assert_eq!(s.last_error.as_deref(), Some("the device is gone"));
        assert_eq!(s.frames, 1);
        assert!(Arc::ptr_eq(&dock, &registry.source("dock-1", "serial")));
    }

    #[test]
    fn a_sink_stays_retrying_until_an_attempt_succeeds() {
        let registry = Registry::new();
        let hub = registry.sink("hub", "mqtt");
        assert_eq!(hub.snapshot().state.state, "idle");
        hub.delivering();
        assert_eq!(hub.snapshot().state.state, "delivering");
        hub.retrying("connection refused");
        hub.retrying("connection refused");
        hub.delivering();
        let s = registry.snapshot().sinks["hub"].clone();
        assert_eq!(s.state.state, "retrying");
        assert_eq!(s.state.last_error.as_deref(), Some("connection refused"));
        assert_eq!((s.retries, s.consecutive_failures), (2, 2));

        let at = Timestamp::from_unix_millis(1_800_000_010_000).unwrap();
        let captured: Vec<Timestamp> = [1_800_000_000_000, 1_800_000_009_990, 1_800_000_020_000]
            .into_iter()
            .map(|ms| Timestamp::from_unix_millis(ms).unwrap())
            .collect();
        hub.delivered(&captured, at);
        hub.dead_lettered();
        hub.succeeded();
        let s = hub.snapshot();
        assert_eq!(s.state.state, "delivering");
        assert_eq!((s.delivered, s.dead_lettered, s.retries), (3, 1, 2));
        assert_eq!(s.consecutive_failures, 0);
        assert_eq!(s.last_delivered_at, Some(at));
        // 10 s, 10 ms, and a capture time in the future counted as 0.
        assert_eq!(s.latency.count(), 3);
        assert_eq!(s.latency.percentile(1), Some(0));
        assert_eq!(s.latency.percentile(500), Some(10));
        let p100 = s.latency.percentile(1000).unwrap();
        assert!(p100.abs_diff(10_000) <= 10_000 / 32, "{p100}");
        hub.stopped();
        assert_eq!(hub.snapshot().state.state, "stopped");
    }
}
