//! What the agent knows about its own parts, for the `health` topic and the logs: one
//! [`SourceHealth`] per source and the state of the MQTT connection.
//!
//! Parts update their entry as things happen (cheap: atomics and a short lock); readers take a
//! [`Snapshot`]. Nothing here does I/O.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tallyman_protocol::event::Timestamp;

use crate::clock;

/// Every part's health, shared by the whole agent.
#[derive(Debug, Default)]
pub struct Registry {
    sources: Mutex<BTreeMap<String, Arc<SourceHealth>>>,
    mqtt: Mutex<Option<State>>,
}

impl Registry {
    pub fn new() -> Arc<Registry> {
        Arc::new(Registry::default())
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

/// Everything at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    pub sources: BTreeMap<String, SourceSnapshot>,
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
}
