//! The one MQTT connection to the central broker (PRODUCT §6): inbound messages for the
//! sources, the agent's own messages (status, `in/rejected`, feedback), and later the hub sink,
//! remote configuration, commands and health.
//!
//! # Design
//!
//! * **One task owns the rumqttc `EventLoop`** (`connection.rs`) together with the
//!   `AsyncClient` and all per-connection state. Nobody else holds the client: callers talk
//!   to the task through a command channel ([`MqttHandle`]), so whatever must happen in the
//!   order rumqttc sees it (packet ids of publishes, PUBACKs of inbound messages in receive
//!   order, the hub sink's correlation of its publishes with their PUBACKs, stack.md §3
//!   guidance 2) happens in that one task. The event loop's `poll` future is never cancelled
//!   mid-way (rumqttc's poll is not cancel-safe: a request it took could be lost); commands and
//!   inbound delivery are served *while* a poll is pending.
//! * **Persistent session**: `clean_session = false` with the configured stable client id, so
//!   the broker keeps inbound QoS 1 messages for the agent while it is down or restarting.
//! * **Manual acks**: an inbound QoS 1 message is PUBACKed only when its consumer hands back
//!   its [`Ack`] (for the mqtt source: once the event is durable or the message was answered on
//!   `in/rejected`). PUBACKs go out in receive order, and never on another connection than the
//!   one the message came on (see `acks.rs`).
//! * **Reconnect** with exponential backoff and jitter (from [`BACKOFF_INITIAL`] up to
//!   [`BACKOFF_MAX`]); the loop keeps polling after every error. After every CONNACK, even with
//!   a session present, the agent subscribes again (one SUBSCRIBE with every filter: few
//!   subscriptions, rumqttc#1057) and publishes its retained `status` `online`.
//! * **Status and last will**: `status` (retained, QoS 1) is
//!   `{"state":"online"|"offline","agent_version":…,"config_version":…,"at":…,"reason":…}`;
//!   the last will is the `offline` document with reason `connection_lost` and `at` = when
//!   that connection was made; [`Connection::close`] publishes `offline` with reason `stopped`
//!   and disconnects cleanly (so the broker drops the will).
//! * **TLS** (`mqtts://`): rustls on ring (`tls.rs`). The CA bundle, client certificate, key
//!   and password file are read at every connection attempt: rotating them needs no restart,
//!   and an unreadable file is an error of that attempt (logged, in health, retried), not a
//!   crash.
//! * **Bounds**: packets up to [`MAX_PACKET_BYTES`] are read (the application limits of the
//!   sources are far below, so an oversize payload is answered instead of breaking the
//!   connection; a broker should enforce `message_size_limit` for anything larger); bounded
//!   command and inbound channels; inbound QoS 1 messages waiting for the consumer are bounded
//!   by the broker's in-flight window (they are not acknowledged yet); QoS 0 ones beyond
//!   [`QOS0_BACKLOG`] are dropped and counted.
//!
//! # Publishes that must be delivered (the hub sink)
//!
//! [`MqttHandle::publish_event`] queues a QoS 1 publish and returns a [`Delivery`] that resolves
//! on the broker's PUBACK for *that very publish*, or fails ([`PublishError`]) once the publish
//! can no longer be acknowledged: the connection was lost, the broker had no session, the
//! client was rebuilt by the watchdog, or the connection closed. rumqttc does not return packet
//! ids, so the connection task correlates `Outgoing::Publish(pkid)` / `Incoming::PubAck(pkid)`
//! with the order it pushed publishes into rumqttc (`outbound.rs`, stack.md §3 guidance 2).
//!
//! After a lost connection the task removes every publish from rumqttc's `pending` list (and
//! its parked collision) instead of letting rumqttc resend them: rumqttc's resend order after
//! two losses in a row hands out recycled packet ids to new publishes before the resent ones
//! (which would make ids ambiguous), and a parked collision that survives a lost session is the
//! livelock of rumqttc#1014. So after any loss, every unacknowledged publish is failed and
//! resent by its owner: the hub sink re-publishes from the spool with the same event id (a
//! duplicate when the broker already had it: at least once), the agent's own messages
//! (`in/rejected` answers, `feedback/…`) are queued again, `status` is published anew.
//!
//! **Watchdog**: while connected with publishes outstanding, if no PUBACK arrives for
//! [`WATCHDOG_KEEP_ALIVES`] keep-alive intervals, or rumqttc reports a `CollisionTimeout`, the
//! client and event loop are dropped and built anew (outstanding publishes fail and are resent).
//! The connection uses MQTT 3.1.1, whose PUBACK carries no reason code: a PUBACK is success.

mod acks;
mod connection;
mod outbound;
pub mod route;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tallyman_config::Config;
use tallyman_protocol::event::{FacilityId, GatewayId, Timestamp};
use tallyman_protocol::topic::{Filter, Topic};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::health::Registry;

pub use acks::Ack;
pub use rumqttc::QoS;

/// Largest MQTT packet read or written. Application limits are lower (see
/// `sources::mqtt`); this only keeps an oversize message from breaking the connection.
pub const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
/// Commands (publishes, acks) waiting for the connection task.
pub const COMMAND_QUEUE: usize = 256;
/// Requests waiting inside rumqttc (its request channel).
pub const REQUEST_QUEUE: usize = 1024;
/// Inbound messages waiting for their consumer.
pub const INBOUND_QUEUE: usize = 256;
/// Inbound QoS 0 messages held for a slow consumer before new ones are dropped.
pub const QOS0_BACKLOG: usize = 1024;
/// rumqttc's window for the agent's own QoS 1 publishes (status, answers); the hub sinks'
/// windows are added to it ([`Settings::outgoing_inflight`]).
pub const OUTGOING_INFLIGHT: u16 = 20;
/// Keep-alive intervals without a PUBACK, while publishes are outstanding, after which the
/// connection is considered stuck and rebuilt.
pub const WATCHDOG_KEEP_ALIVES: u32 = 2;
/// First reconnect delay; doubles per failed attempt, with jitter.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long [`Connection::close`] may take to publish `offline` and disconnect.
pub const CLOSE_GRACE: Duration = Duration::from_secs(3);

/// What the connection needs to know.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mqtt: tallyman_config::Mqtt,
    pub facility: FacilityId,
    pub gateway: GatewayId,
    /// Reported in `status`.
    pub agent_version: String,
    /// The running configuration's version, reported in `status` (none until pushed
    /// configuration exists).
    pub config_version: Option<u64>,
    /// Subscribed (QoS 1) after every CONNACK: only the topics someone handles.
    pub subscriptions: Vec<Filter>,
    /// rumqttc's in-flight window (packet ids cycle in `1..=outgoing_inflight`): at least
    /// [`OUTGOING_INFLIGHT`] plus the windows of the hub sinks on this connection, so that a
    /// sink's window is never throttled by rumqttc.
    pub outgoing_inflight: u16,
}

impl Settings {
    /// The settings of `config`'s `[mqtt]` section (none without one), subscribing to nothing
    /// yet.
    pub fn from_config(config: &Config) -> Option<Settings> {
        Some(Settings {
            mqtt: config.mqtt.clone()?,
            facility: config.agent.facility.clone(),
            gateway: config.agent.gateway.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            config_version: None,
            subscriptions: Vec::new(),
            outgoing_inflight: outgoing_inflight(config),
        })
    }

    /// This gateway's retained `status` topic.
    pub fn status_topic(&self) -> Topic {
        Topic::Status {
            facility: self.facility.clone(),
            gateway: self.gateway.clone(),
        }
    }
}

/// rumqttc's window for `config`: the agent's own plus every mqtt sink's, at most 65,535.
pub fn outgoing_inflight(config: &Config) -> u16 {
    let sinks: u32 = config
        .sinks
        .iter()
        .filter_map(|s| match &s.target {
            tallyman_config::SinkTarget::Mqtt(m) => Some(u32::from(m.inflight)),
            _ => None,
        })
        .sum();
    u16::try_from(u32::from(OUTGOING_INFLIGHT) + sinks).unwrap_or(u16::MAX)
}

/// The retained `status` document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status<'a> {
    /// `online` or `offline`.
    pub state: &'static str,
    pub agent_version: &'a str,
    pub config_version: Option<u64>,
    /// When the agent published it; for the last will, when that connection was made.
    pub at: Timestamp,
    /// Why offline: `connection_lost` (the last will) or `stopped`; null when online.
    pub reason: Option<&'static str>,
}

impl Status<'_> {
    pub fn to_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and a timestamp always serialises.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// One inbound message on a subscribed topic of the scheme.
#[derive(Debug)]
pub struct Inbound {
    pub topic: Topic,
    pub payload: Vec<u8>,
    /// The broker marked it as a redelivery (DUP).
    pub redelivered: bool,
    /// Hand back through [`MqttHandle::ack`] when done: a QoS 1 message is PUBACKed then.
    pub ack: Ack,
}

/// Whether the connection is up, as its users see it ([`Connection::link`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Not connected (yet, or any more); `error` is why the last attempt failed or the
    /// connection was lost, in words.
    Down { error: Option<String> },
    /// The broker accepted the connection (CONNACK).
    Up,
    /// The connection task has stopped.
    Closed,
}

/// The connection task is gone (closed, or the agent is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the MQTT connection is closed")]
pub struct Closed;

/// Why a publish of [`MqttHandle::publish_event`] was not acknowledged. Each means the broker
/// may or may not have the message: publish it again (a duplicate at worst).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    #[error("the connection to the MQTT broker was lost before the PUBACK")]
    ConnectionLost,
    #[error("the MQTT broker resumed without the session: unacknowledged publishes were dropped")]
    SessionLost,
    #[error(
        "the MQTT connection made no progress with publishes outstanding; the client was rebuilt"
    )]
    Stalled,
    #[error("the MQTT client refused the publish: {0}")]
    Refused(String),
    #[error("the MQTT connection is closed")]
    Closed,
}

/// Resolves on the broker's PUBACK for one publish (see [`MqttHandle::publish_event`]).
#[derive(Debug)]
pub struct Delivery {
    rx: oneshot::Receiver<Result<(), PublishError>>,
}

impl std::future::Future for Delivery {
    type Output = Result<(), PublishError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(PublishError::Closed)))
    }
}

impl Delivery {
    /// The outcome if it is already known, without waiting.
    pub fn ready(&mut self) -> Option<Result<(), PublishError>> {
        match self.rx.try_recv() {
            Ok(r) => Some(r),
            Err(oneshot::error::TryRecvError::Empty) => None,
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(PublishError::Closed)),
        }
    }
}

/// The connection task's side of a [`Delivery`].
type Reply = oneshot::Sender<Result<(), PublishError>>;

/// What callers send the connection task.
#[derive(Debug)]
enum Command {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    },
    /// A QoS 1 publish whose PUBACK is reported back.
    Event {
        topic: String,
        payload: Vec<u8>,
        reply: Reply,
    },
    Ack(Ack),
    /// The running configuration's version changed: `status` says so from now on.
    ConfigVersion(Option<u64>),
    Close {
        done: oneshot::Sender<()>,
    },
}

/// A cheap, cloneable way to use the connection: publish the agent's own messages, acknowledge
/// inbound ones.
#[derive(Debug, Clone)]
pub struct MqttHandle {
    commands: mpsc::Sender<Command>,
}

impl MqttHandle {
    /// Queue a publish. Resolves once the connection task took it (not when the broker has
    /// it): for the agent's own messages, not for events that must be delivered.
    pub async fn publish(
        &self,
        topic: &Topic,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
    ) -> Result<(), Closed> {
        self.commands
            .send(Command::Publish {
                topic: topic.to_string(),
                payload,
                qos,
                retain,
            })
            .await
            .map_err(|_| Closed)
    }

    /// Queue a QoS 1 publish (not retained) whose PUBACK matters: the returned [`Delivery`]
    /// resolves `Ok` on the broker's PUBACK for this publish, and fails when it can no longer
    /// come (see [`PublishError`]). Waits while the connection task's queue is full.
    pub async fn publish_event(&self, topic: &Topic, payload: Vec<u8>) -> Result<Delivery, Closed> {
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Event {
                topic: topic.to_string(),
                payload,
                reply,
            })
            .await
            .map_err(|_| Closed)?;
        Ok(Delivery { rx })
    }

    /// The running configuration is now `version`: the retained `status` is published again
    /// with it (when connected), and the next connection's last will carries it.
    pub async fn set_config_version(&self, version: Option<u64>) -> Result<(), Closed> {
        self.commands
            .send(Command::ConfigVersion(version))
            .await
            .map_err(|_| Closed)
    }

    /// The consumer is done with an inbound message: PUBACK it (in receive order, on the
    /// connection it came on; see [`Ack`]). Nothing happens once the connection is closed.
    pub async fn ack(&self, ack: Ack) {
        if ack.needs_puback() {
            // Closed: the message stays unacknowledged and the broker delivers it again.
            let _ = self.commands.send(Command::Ack(ack)).await;
        }
    }
}

/// The running connection: its task and a handle.
#[derive(Debug)]
pub struct Connection {
    handle: MqttHandle,
    task: JoinHandle<()>,
    link: watch::Receiver<Link>,
}

impl Connection {
    /// Start the connection task (it connects, and reconnects, on its own). Inbound messages
    /// arrive on the returned receiver; dropping it leaves them unacknowledged.
    pub fn start(
        settings: Settings,
        health: Arc<Registry>,
    ) -> (Connection, mpsc::Receiver<Inbound>) {
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let (link_tx, link) = watch::channel(Link::Down { error: None });
        let task = tokio::spawn(connection::run(
            settings,
            health,
            commands_rx,
            inbound_tx,
            link_tx,
        ));
        (
            Connection {
                handle: MqttHandle {
                    commands: commands_tx,
                },
                task,
                link,
            },
            inbound_rx,
        )
    }

    pub fn handle(&self) -> MqttHandle {
        self.handle.clone()
    }

    /// Follows the connection's state: up after each CONNACK, down with the reason after each
    /// failed attempt or loss.
    pub fn link(&self) -> watch::Receiver<Link> {
        self.link.clone()
    }

    /// Publish `offline` (retained), disconnect cleanly and wait for the task; bounded by
    /// [`CLOSE_GRACE`]. Acks and publishes queued before are sent first.
    pub async fn close(self) {
        let (done, wait) = oneshot::channel();
        if self
            .handle
            .commands
            .send(Command::Close { done })
            .await
            .is_ok()
        {
            // The task answers, or ends, within its grace.
            let _ = tokio::time::timeout(CLOSE_GRACE + Duration::from_secs(1), wait).await;
        }
        drop(self.handle);
        match tokio::time::timeout(Duration::from_secs(1), self.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "The MQTT connection task failed."),
            Err(_) => tracing::warn!("The MQTT connection task did not stop in time."),
        }
    }
}
