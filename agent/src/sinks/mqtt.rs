//! The hub over MQTT (PRODUCT §5): each event is published with QoS 1 on
//! `tallyman/v1/{facility}/{gateway}/events/{kind}` over the agent's one MQTT connection, as
//! the canonical JSON (the file sink's line, without the newline) or the postcard envelope
//! (`protocol::wire`).
//!
//! An event is *delivered* only on the broker's PUBACK for that very publish
//! ([`MqttHandle::publish_event`]; the connection task correlates packet ids, see
//! `mqtt/outbound.rs`). Within a batch up to `inflight` publishes are outstanding; outcomes are
//! reported in batch order:
//!
//! * PUBACK → `Delivered`;
//! * the connection lost, the session gone, the client rebuilt, the connection closed, or the
//!   agent stopping before the PUBACK came → `Retry` for that event and every later one of the
//!   batch (the engine publishes them again from the spool, with the same event id: a consumer
//!   may see an event twice and de-duplicates on its `id`);
//! * an event that cannot be encoded → `Rejected` (dead letter).

use std::collections::VecDeque;
use std::time::Duration;

use tallyman_config::MqttFormat;
use tallyman_protocol::event::{Event, EventId, FacilityId, GatewayId};
use tallyman_protocol::topic::Topic;
use tokio::time::Instant;

use super::{DeliverFuture, Outcome, Sink};
use crate::mqtt::{Delivery, MqttHandle, PublishError};
use crate::shutdown::Shutdown;

/// Once the agent is stopping, how long outstanding publishes may still be acknowledged (on a
/// working connection that takes milliseconds; on a dead one the events stay in the spool).
pub const STOPPING_ACK_WAIT: Duration = Duration::from_secs(2);

/// Publishes events to the hub's broker.
#[derive(Debug)]
pub struct MqttSink {
    mqtt: MqttHandle,
    format: MqttFormat,
    /// Most publishes awaiting their PUBACK (at least 1).
    window: usize,
    facility: FacilityId,
    gateway: GatewayId,
    shutdown: Shutdown,
    /// The engine's batch size: a batch this long means more is probably waiting.
    batch_max: usize,
    /// Publishes left in flight at the end of the last batch, oldest first.
    carried: VecDeque<(EventId, Delivery)>,
}

impl MqttSink {
    pub fn new(
        mqtt: MqttHandle,
        settings: &tallyman_config::MqttSink,
        facility: FacilityId,
        gateway: GatewayId,
        shutdown: Shutdown,
        batch_max: usize,
    ) -> MqttSink {
        MqttSink {
            mqtt,
            format: settings.format,
            window: usize::from(settings.inflight.max(1)),
            facility,
            gateway,
            shutdown,
            batch_max: batch_max.max(1),
            carried: VecDeque::new(),
        }
    }
}

/// The payload of `event` in `format`.
pub fn payload(event: &Event, format: MqttFormat) -> Result<Vec<u8>, String> {
    match format {
        MqttFormat::Json => serde_json::to_vec(event).map_err(|e| e.to_string()),
        MqttFormat::Postcard => tallyman_protocol::wire::encode(event).map_err(|e| e.to_string()),
    }
}

/// Waits for PUBACKs; once the agent is stopping, only until [`STOPPING_ACK_WAIT`] later.
struct Waiter<'a> {
    shutdown: &'a mut Shutdown,
    deadline: Option<Instant>,
}

/// Why a wait ended without a PUBACK.
enum NotAcked {
    Failed(PublishError),
    Stopping,
}

impl Waiter<'_> {
    async fn wait(&mut self, delivery: Delivery) -> Result<(), NotAcked> {
        tokio::pin!(delivery);
        if self.deadline.is_none() {
            tokio::select! {
                r = &mut delivery => return r.map_err(NotAcked::Failed),
                () = self.shutdown.wait() => {
                    self.deadline = Some(Instant::now() + STOPPING_ACK_WAIT);
                }
            }
        }
        let deadline = self.deadline.unwrap_or_else(Instant::now);
        match tokio::time::timeout_at(deadline, &mut delivery).await {
            Ok(r) => r.map_err(NotAcked::Failed),
            Err(_) => Err(NotAcked::Stopping),
        }
    }
}

fn retry(error: String) -> Outcome {
    Outcome::Retry { after: None, error }
}

/// Wait for the oldest outstanding publish: its outcome, or why the batch stops.
async fn settle(
    waiter: &mut Waiter<'_>,
    waiting: &mut VecDeque<(usize, Delivery)>,
    outcomes: &mut [Option<Outcome>],
) -> Result<(), String> {
    let Some((i, delivery)) = waiting.pop_front() else {
        return Ok(());
    };
    match waiter.wait(delivery).await {
        Ok(()) => {
            if let Some(o) = outcomes.get_mut(i) {
                *o = Some(Outcome::Delivered);
            }
            Ok(())
        }
        Err(NotAcked::Failed(e)) => Err(e.to_string()),
        Err(NotAcked::Stopping) => Err("the agent is stopping; no PUBACK yet".into()),
    }
}

impl Sink for MqttSink {
    fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
        Box::pin(async move {
            let mut outcomes: Vec<Option<Outcome>> = vec![None; batch.len()];
            let mut waiting: VecDeque<(usize, Delivery)> = VecDeque::new();
            // Publishes still in flight from the last batch: taken over, not sent again.
            let mut carried = std::mem::take(&mut self.carried);
            let full = batch.len() >= self.batch_max;
            let mut waiter = Waiter {
                shutdown: &mut self.shutdown,
                deadline: None,
            };
            let mut failed: Result<(), String> = Ok(());
            'send: for (i, event) in batch.iter().enumerate() {
                if carried.front().is_some_and(|(id, _)| *id == event.id()) {
                    if let Some((_, delivery)) = carried.pop_front() {
                        waiting.push_back((i, delivery));
                    }
                    continue;
                }
                while waiting.len() >= self.window {
                    failed = settle(&mut waiter, &mut waiting, &mut outcomes).await;
                    if failed.is_err() {
                        break 'send;
                    }
                }
                let bytes = match payload(event, self.format) {
                    Ok(b) => b,
                    Err(e) => {
                        outcomes[i] = Some(Outcome::Rejected {
                            reason: format!("the event cannot be encoded: {e}"),
                        });
                        continue;
                    }
                };
                let topic = Topic::Events {
                    facility: self.facility.clone(),
                    gateway: self.gateway.clone(),
                    kind: event.kind(),
                };
                match self.mqtt.publish_event(&topic, bytes).await {
                    Ok(delivery) => waiting.push_back((i, delivery)),
                    Err(e) => {
                        failed = Err(e.to_string());
                        break;
                    }
                }
            }
            // Carried publishes this batch did not start with (dead letters replayed first)
            // are let go: their events come again and are published again.
            drop(carried);
            if full && failed.is_ok() {
                // More is probably waiting in the spool: settle the first event, take what
                // is already acknowledged, and leave the rest in flight for the next batch.
                // The next publishes then go out while these PUBACKs come in, so a broker
                // with Nagle's algorithm on never waits for a delayed ACK at a batch's end.
                while failed.is_ok() && waiting.front().is_some_and(|(i, _)| *i == 0) {
                    failed = settle(&mut waiter, &mut waiting, &mut outcomes).await;
                }
                while failed.is_ok() {
                    let Some((i, delivery)) = waiting.front_mut() else {
                        break;
                    };
                    match delivery.ready() {
                        None => break,
                        Some(Ok(())) => {
                            if let Some(o) = outcomes.get_mut(*i) {
                                *o = Some(Outcome::Delivered);
                            }
                            waiting.pop_front();
                        }
                        Some(Err(e)) => failed = Err(e.to_string()),
                    }
                }
                if failed.is_ok()
                    && let Some(&(first, _)) = waiting.front()
                {
                    for o in outcomes.iter_mut().skip(first) {
                        *o = Some(Outcome::Pending);
                    }
                    self.carried = waiting
                        .into_iter()
                        .filter_map(|(i, d)| batch.get(i).map(|e| (e.id(), d)))
                        .collect();
                    return outcomes
                        .into_iter()
                        .map(|o| o.unwrap_or(Outcome::Pending))
                        .collect();
                }
            }
            while failed.is_ok() && !waiting.is_empty() {
                failed = settle(&mut waiter, &mut waiting, &mut outcomes).await;
            }
            // After a failure, later publishes of the batch are not waited for: the engine
            // hands them again from the failed one on.
            let why = failed.err().unwrap_or_default();
            outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| retry(why.clone())))
                .collect()
        })
    }
}
