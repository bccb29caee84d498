//! Sources: where scans come from. Each source owns one scan state machine; it hands the
//! events a scan makes to the spool and gives the scanner its feedback only after they are
//! durable (see [`driver`]).

pub mod driver;
pub mod mqtt;
pub mod serial;
pub mod stdin;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use tallyman_protocol::event::{Event, EventId};
use tokio::sync::Notify;

use crate::spool::{AppendError, Queued, Spool};
use crate::workflow::{Feedback, Machine, Step};

/// Store the events of `step` and settle it with the workflow: the feedback to give.
/// *Accepted* only once every event is durable; a refusal reopens the session (the workflow's
/// contract) and says why.
pub async fn settle_machine<M: Machine + ?Sized>(
    spool: &Spool,
    workflow: &mut M,
    step: Step,
) -> Feedback {
    if step.events.is_empty() {
        return step.feedback;
    }
    match store(spool, step.events.clone()).await {
        Ok(()) => {
            workflow.committed(true);
            step.feedback
        }
        Err(why) => {
            workflow.committed(false);
            why.feedback(&step)
        }
    }
}

/// Why a step's events were not stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The spool is at its quota: intake is refused until sinks catch up.
    #[error("the gateway's storage is full")]
    Full,
    /// Any other failure to append, with the spool's message.
    #[error("storing failed: {0}")]
    Failed(String),
}

impl StoreError {
    /// The feedback for `step`, whose events were refused.
    pub fn feedback(&self, step: &Step) -> Feedback {
        let mut fb = step.refused(&self.to_string());
        fb.spool_full = matches!(self, StoreError::Full);
        fb
    }
}

/// Append events; Ok once all are durable.
pub async fn store(spool: &Spool, events: Vec<Event>) -> Result<(), StoreError> {
    finish(submit(spool, events).await).await
}

/// Events handed to the spool, in order, and not yet known to be durable.
pub type Submitted = Vec<(EventId, Result<Queued, AppendError>)>;

/// Hand `events` to the spool in order, waiting only for room in its queue (see
/// [`Spool::enqueue`]); [`finish`] waits until they are durable.
pub async fn submit(spool: &Spool, events: Vec<Event>) -> Submitted {
    let mut queued = Vec::with_capacity(events.len());
    for event in events {
        let id = event.id();
        queued.push((id, spool.enqueue(event).await));
    }
    queued
}

/// Ok once every submitted event is durable; else why the first refused one was refused.
pub async fn finish(submitted: Submitted) -> Result<(), StoreError> {
    let mut result = Ok(());
    for (id, queued) in submitted {
        let outcome = match queued {
            Ok(q) => q.outcome().await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(appended) => {
                tracing::debug!(event_id = %id, seq = appended.seq(), "Event accepted.");
            }
            Err(AppendError::Full { .. }) => {
                tracing::warn!(event_id = %id, "Spool full: event refused at intake.");
                if result.is_ok() {
                    result = Err(StoreError::Full);
                }
            }
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "Storing an event failed.");
                if result.is_ok() {
                    result = Err(StoreError::Failed(e.to_string()));
                }
            }
        }
    }
    result
}

/// Asks one source to restart (the `reconnect` command): a serial source closes its port and
/// opens it again at once. Cheap to clone; all clones are one signal. A request made while the
/// source is busy is kept until it looks.
#[derive(Debug, Clone, Default)]
pub struct Restart(Arc<Notify>);

impl Restart {
    pub fn request(&self) {
        self.0.notify_one();
    }

    /// Resolves once a restart was requested.
    pub async fn requested(&self) {
        self.0.notified().await;
    }
}

/// The sources that can be restarted, by name.
#[derive(Debug, Default)]
pub struct Restarts(Mutex<BTreeMap<String, Restart>>);

impl Restarts {
    pub fn new() -> Arc<Restarts> {
        Arc::default()
    }

    /// The restart signal of source `name` (made on first use), for the source to watch.
    pub fn register(&self, name: &str) -> Restart {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.entry(name.to_owned()).or_default().clone()
    }

    /// Source `name` is gone (removed by a configuration change).
    pub fn unregister(&self, name: &str) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(name);
    }

    /// Ask source `name` to restart. False when no such source can restart.
    pub fn request(&self, name: &str) -> bool {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(name) {
            Some(r) => {
                r.request();
                true
            }
            None => false,
        }
    }

    /// The names of the sources that can restart.
    pub fn names(&self) -> Vec<String> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.keys().cloned().collect()
    }
}
