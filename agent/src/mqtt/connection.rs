//! The connection task: owns rumqttc's `EventLoop` and `AsyncClient` and every piece of
//! per-connection state (see the module documentation of `mqtt`).
//!
//! The loop, per poll:
//! 1. If not connected: refresh what the next CONNECT carries (last will with the time,
//!    TLS configuration and password read from their files). A file that cannot be read is a
//!    failed attempt: logged, shown in health, retried after the backoff.
//! 2. Start one `EventLoop::poll` and keep it pinned until it completes (never cancelled), while
//!    serving commands (publish, ack, close) and handing inbound messages to the consumer.
//! 3. Handle the event: CONNACK → re-subscribe and publish `online`; an inbound publish → queue
//!    it for the consumer with its [`Ack`]; an error → void outstanding acks, log the reason in
//!    words, back off, poll again (rumqttc reconnects on the next poll).
//!
//! Commands become rumqttc requests through an outbox that is pushed with `try_*` calls
//! (never awaiting rumqttc's channel, which only the pending poll drains): while the outbox is
//! not empty no new command is read, so the command channel pushes back on callers.
//!
//! Acknowledged publishes (stack.md §3 guidance 2): every QoS 1 publish pushed into rumqttc's
//! channel is recorded in [`Outbound`] in the same statement, in this one task, so its queue
//! is in rumqttc's order; `Outgoing::Publish(pkid)`, `Outgoing::AwaitAck(pkid)` and
//! `Incoming::PubAck(pkid)` are fed to it in [`Task::event`] as rumqttc reports them. When a
//! connected poll fails, rumqttc has moved everything into its `pending` list and may still
//! hold buffered events of the dead connection: those events are handled first (a PUBACK that
//! arrived counts; an inbound message gets a void ack), then every publish is removed from
//! `pending` and the parked collision is cleared, and everything unacknowledged fails
//! ([`Task::connection_lost`]). A CONNACK without a session fails what is still mapped (nothing,
//! after that). The watchdog ([`Task::watchdog`]) and an out-of-step report rebuild the client.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, LastWill, MqttOptions, Outgoing,
    Packet, Publish, QoS, StateError, SubscribeFilter, SubscribeReasonCode, TlsConfiguration,
    Transport,
};
use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::topic::Topic;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::acks::{Ack, AckOrder};
use super::outbound::Outbound;
use super::{
    BACKOFF_INITIAL, BACKOFF_MAX, CLOSE_GRACE, Command, Inbound, Link, MAX_PACKET_BYTES,
    OUTGOING_INFLIGHT, PublishError, QOS0_BACKLOG, REQUEST_QUEUE, Reply, Settings, Status,
    WATCHDOG_KEEP_ALIVES, tls,
};
use crate::backoff::{self, Backoff};
use crate::clock;
use crate::health::Registry;

/// What the loop does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
    /// Drop the client and event loop and build new ones (the watchdog, or rumqttc's reports
    /// contradict the bookkeeping).
    Rebuild,
}

/// How a connection attempt ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// The TLS files or the password could not be read: an operator must act.
    Setup,
    /// Refused by TLS or the broker (trust, certificate, credentials): an operator must act.
    Refused,
    /// The network: the broker is down or unreachable.
    Failed,
    /// An established connection was lost.
    Lost,
}

/// Who waits for a publish's PUBACK.
#[derive(Debug)]
enum Tag {
    /// A hub event: its owner is told.
    Event(Reply),
    /// One of the agent's own messages; queued again after a lost connection if `requeue`
    /// (not `status`, which is published anew at every connection).
    Message { requeue: bool },
}

/// A QoS 1 publish between rumqttc's channel and its PUBACK.
#[derive(Debug)]
enum Tracked {
    Event(Reply),
    /// An own message, with what is needed to queue it again.
    Message(Option<Resend>),
}

#[derive(Debug)]
struct Resend {
    topic: String,
    payload: Vec<u8>,
    retain: bool,
}

/// A request for rumqttc, waiting for room in its channel.
#[derive(Debug)]
enum Out {
    Publish {
        topic: String,
        payload: Vec<u8>,
        qos: QoS,
        retain: bool,
        tag: Tag,
    },
    PubAck(u16),
    Subscribe(Vec<SubscribeFilter>),
    Disconnect,
}

/// Closing: `offline` and DISCONNECT are queued; stop when DISCONNECT went out or at the
/// deadline.
#[derive(Debug)]
struct Closing {
    deadline: Instant,
    done: Option<oneshot::Sender<()>>,
    /// DISCONNECT was written: the broker closes the connection next.
    disconnect_sent: bool,
}

/// The channel ends, apart from the state so that a pending receive or reserve can be
/// selected on while a handler changes the state.
struct Channels {
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
}

/// Everything the loop keeps, apart from the event loop itself (borrowed by the pending poll)
/// and the channels.
struct Task {
    settings: Settings,
    health: Arc<Registry>,
    client: AsyncClient,
    acks: AckOrder,
    /// QoS 1 publishes in rumqttc, until their PUBACK.
    outbound: Outbound<Tracked>,
    /// When the watchdog last saw progress: a CONNACK, a PUBACK, or the first outstanding
    /// publish.
    progress: Instant,
    outbox: VecDeque<Out>,
    /// Inbound messages not yet taken by the consumer.
    deliver: VecDeque<Inbound>,
    consumer_gone: bool,
    connected: bool,
    closing: Option<Closing>,
    backoff: Backoff,
    /// Failed attempts since the last CONNACK.
    attempts: u32,
    next_delay: Duration,
    dropped_qos0: u64,
    /// What users of the connection see of its state.
    link: watch::Sender<Link>,
}

/// Run the connection until closed.
pub(super) async fn run(
    settings: Settings,
    health: Arc<Registry>,
    commands: mpsc::Receiver<Command>,
    inbound: mpsc::Sender<Inbound>,
    link: watch::Sender<Link>,
) {
    let (client, mut ev) = client(&settings);
    let mut io = Channels { commands, inbound };
    let mut t = Task {
        settings,
        health,
        client,
        acks: AckOrder::new(),
        outbound: Outbound::new(),
        progress: Instant::now(),
        outbox: VecDeque::new(),
        deliver: VecDeque::new(),
        consumer_gone: false,
        connected: false,
        closing: None,
        backoff: Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX, backoff::seed()),
        attempts: 0,
        next_delay: Duration::ZERO,
        dropped_qos0: 0,
        link,
    };
    t.health.set_mqtt("connecting", None);
    info!(endpoint = %t.settings.mqtt.endpoint, client_id = %t.settings.mqtt.client_id, "Connecting to the MQTT broker.");
    loop {
        if ev.network.is_none() {
            if t.closing.is_some() {
                break;
            }
            if let Err(e) = t.prepare(&mut ev.mqtt_options) {
                t.attempt_failed(e.to_string(), Failure::Setup);
                if t.wait_backoff(&mut io).await == Flow::Stop {
                    break;
                }
                continue;
            }
        }
        // A poll on a live connection; when it fails rumqttc has moved what it held into
        // `pending` (a poll that connects leaves its channel and `pending` alone).
        let live = ev.network.is_some();
        let result = {
            let poll = ev.poll();
            tokio::pin!(poll);
            loop {
                t.flush_outbox();
                let deadline = t.closing.as_ref().map(|c| c.deadline);
                let stuck = t.watchdog();
                tokio::select! {
                    r = &mut poll => break Some(Ok(r)),
                    cmd = io.commands.recv(), if t.outbox.is_empty() && t.closing.is_none() => {
                        if t.command(cmd) == Flow::Stop {
                            break None;
                        }
                    }
                    permit = io.inbound.reserve(), if !t.deliver.is_empty() && !t.consumer_gone => {
                        match permit {
                            Ok(p) => {
                                if let Some(m) = t.deliver.pop_front() {
                                    p.send(m);
                                }
                            }
                            Err(_) => t.drop_consumer(),
                        }
                    }
                    () = sleep_until(deadline), if deadline.is_some() => break None,
                    // Dropping the pending poll is safe here: the event loop is dropped too.
                    () = sleep_until(stuck), if stuck.is_some() => break Some(Err(PublishError::Stalled)),
                }
            }
        };
        let Some(result) = result else { break };
        let flow = match result {
            Ok(Ok(event)) => t.event(event),
            Err(_stalled) => {
                warn!(endpoint = %t.settings.mqtt.endpoint, outstanding = t.outbound.len(), keep_alives = WATCHDOG_KEEP_ALIVES, "No PUBACK from the MQTT broker for too long with publishes outstanding; rebuilding the connection.");
                Flow::Rebuild
            }
            Ok(Err(e)) => {
                if live {
                    // Events of the dead connection first: PUBACKs that arrived count.
                    let buffered: Vec<Event> = ev.state.events.drain(..).collect();
                    for event in buffered {
                        if t.event(event) == Flow::Rebuild {
                            break;
                        }
                    }
                    // rumqttc would resend these itself; they are failed and resent by their
                    // owners instead (see the module documentation of `mqtt`).
                    ev.pending
                        .retain(|r| !matches!(r, rumqttc::Request::Publish(_)));
                    ev.state.collision = None;
                }
                let collision =
                    matches!(e, ConnectionError::MqttState(StateError::CollisionTimeout));
                t.connection_lost(&e);
                if collision {
                    Flow::Rebuild
                } else if t.closing.is_some() || t.wait_backoff(&mut io).await == Flow::Stop {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            }
        };
        match flow {
            Flow::Continue => {}
            Flow::Stop => break,
            Flow::Rebuild => {
                if t.closing.is_some() {
                    break;
                }
                ev = t.rebuild();
            }
        }
    }
    t.finish();
}

/// A new client and event loop. `TCP_NODELAY`: a publish and its PUBACK are small packets
/// and the hub sink waits for PUBACKs, so Nagle's algorithm would hold them back.
fn client(s: &Settings) -> (AsyncClient, rumqttc::EventLoop) {
    let (client, mut ev) = AsyncClient::new(options(s), REQUEST_QUEUE);
    let mut network = ev.network_options();
    network.set_tcp_nodelay(true);
    ev.set_network_options(network);
    (client, ev)
}

/// The options every connection uses; the will, TLS and credentials are refreshed before each
/// attempt by [`Task::prepare`].
fn options(s: &Settings) -> MqttOptions {
    let mut o = MqttOptions::new(
        s.mqtt.client_id.clone(),
        s.mqtt.endpoint.host.clone(),
        s.mqtt.endpoint.port,
    );
    o.set_keep_alive(s.mqtt.keep_alive)
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_inflight(s.outgoing_inflight.max(OUTGOING_INFLIGHT));
    o
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Task {
    /// When the watchdog fires: connected, publishes outstanding, and no progress for
    /// [`WATCHDOG_KEEP_ALIVES`] keep-alive intervals.
    fn watchdog(&self) -> Option<Instant> {
        if !self.connected || self.outbound.is_empty() || self.closing.is_some() {
            return None;
        }
        Some(self.progress + self.settings.mqtt.keep_alive * WATCHDOG_KEEP_ALIVES)
    }

    /// Drop the client and event loop (with whatever rumqttc held) and build new ones; every
    /// outstanding publish fails and is sent again by its owner.
    fn rebuild(&mut self) -> rumqttc::EventLoop {
        let (client, ev) = client(&self.settings);
        self.client = client;
        self.connected = false;
        self.acks.new_connection();
        self.lose(&PublishError::Stalled);
        self.outbox
            .retain(|o| matches!(o, Out::Publish { .. } | Out::Disconnect));
        let why = "the connection made no progress; rebuilt";
        self.health.set_mqtt("disconnected", Some(why.into()));
        self.link.send_replace(Link::Down {
            error: Some(why.into()),
        });
        ev
    }

    /// Everything rumqttc held is gone: fail hub events, queue own messages again (in their
    /// order, before anything queued since).
    fn lose(&mut self, why: &PublishError) {
        let lost = self.outbound.connection_lost();
        self.resolve_lost(lost, why);
    }

    fn resolve_lost(&mut self, lost: Vec<Tracked>, why: &PublishError) {
        let mut resend = Vec::new();
        let mut events = 0usize;
        for tracked in lost {
            match tracked {
                Tracked::Event(reply) => {
                    events += 1;
                    let _ = reply.send(Err(why.clone()));
                }
                Tracked::Message(Some(r)) => resend.push(r),
                Tracked::Message(None) => {}
            }
        }
        if events > 0 {
            debug!(events, reason = %why, "Unacknowledged hub publishes failed; they are sent again.");
        }
        if self.closing.is_some() {
            return;
        }
        for r in resend.into_iter().rev() {
            self.outbox.push_front(Out::Publish {
                topic: r.topic,
                payload: r.payload,
                qos: QoS::AtLeastOnce,
                retain: r.retain,
                tag: Tag::Message { requeue: true },
            });
        }
    }

    /// What the next CONNECT carries: the will (with the time), TLS and the password, read
    /// from their files now.
    fn prepare(&self, o: &mut MqttOptions) -> Result<(), tls::TlsError> {
        let will = Status {
            state: "offline",
            agent_version: &self.settings.agent_version,
            config_version: self.settings.config_version,
            at: clock::now(),
            reason: Some("connection_lost"),
        };
        o.set_last_will(LastWill::new(
            self.settings.status_topic().to_string(),
            will.to_json(),
            QoS::AtLeastOnce,
            true,
        ));
        if self.settings.mqtt.endpoint.tls {
            let config = tls::client_config(&self.settings.mqtt)?;
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::new(config),
            )));
        }
        if let Some(user) = &self.settings.mqtt.username {
            let password = match &self.settings.mqtt.password_file {
                Some(path) => tls::password(path)?,
                None => String::new(),
            };
            o.set_credentials(user.clone(), password);
        }
        Ok(())
    }

    /// Push queued requests into rumqttc's channel while it has room. A QoS 1 publish is
    /// recorded in [`Outbound`] right when rumqttc took it into its channel: same order.
    fn flush_outbox(&mut self) {
        while let Some(out) = self.outbox.pop_front() {
            let pushed = match &out {
                Out::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    ..
                } => self
                    .client
                    .try_publish(topic.clone(), *qos, *retain, payload.clone()),
                Out::PubAck(pkid) => {
                    let mut p = Publish::new("", QoS::AtLeastOnce, Vec::new());
                    p.pkid = *pkid;
                    self.client.try_ack(&p)
                }
                Out::Subscribe(filters) => self.client.try_subscribe_many(filters.clone()),
                Out::Disconnect => self.client.try_disconnect(),
            };
            match pushed {
                Ok(()) => {
                    if let Out::Publish {
                        topic,
                        payload,
                        qos,
                        retain,
                        tag,
                    } = out
                    {
                        if qos == QoS::AtMostOnce {
                            continue;
                        }
                        if self.outbound.is_empty() {
                            self.progress = Instant::now();
                        }
                        self.outbound.push(match tag {
                            Tag::Event(reply) => Tracked::Event(reply),
                            Tag::Message { requeue: false } => Tracked::Message(None),
                            Tag::Message { requeue: true } => Tracked::Message(Some(Resend {
                                topic,
                                payload,
                                retain,
                            })),
                        });
                    }
                }
                Err(rumqttc::ClientError::TryRequest(_)) => {
                    // rumqttc's channel is full: the pending poll drains it; try again then.
                    self.outbox.push_front(out);
                    return;
                }
                Err(e) => {
                    // An invalid topic cannot come from a typed `Topic`; the channel cannot be
                    // closed while this task holds the event loop.
                    warn!(error = %e, "An MQTT request was refused by the client; dropped.");
                    if let Out::Publish {
                        tag: Tag::Event(reply),
                        ..
                    } = out
                    {
                        let _ = reply.send(Err(PublishError::Refused(e.to_string())));
                    }
                }
            }
        }
    }

    fn command(&mut self, cmd: Option<Command>) -> Flow {
        match cmd {
            Some(Command::Publish {
                topic,
                payload,
                qos,
                retain,
            }) => {
                self.outbox.push_back(Out::Publish {
                    topic,
                    payload,
                    qos,
                    retain,
                    tag: Tag::Message { requeue: true },
                });
                Flow::Continue
            }
            Some(Command::Event {
                topic,
                payload,
                reply,
            }) => {
                self.outbox.push_back(Out::Publish {
                    topic,
                    payload,
                    qos: QoS::AtLeastOnce,
                    retain: false,
                    tag: Tag::Event(reply),
                });
                Flow::Continue
            }
            Some(Command::Ack(ack)) => {
                self.ack(ack);
                Flow::Continue
            }
            Some(Command::ConfigVersion(version)) => {
                if self.settings.config_version != version {
                    self.settings.config_version = version;
                    if self.connected {
                        self.outbox.push_back(self.online());
                    }
                }
                Flow::Continue
            }
            Some(Command::Close { done }) => self.begin_close(Some(done)),
            // Every handle is gone: nobody can publish or ack any more.
            None => self.begin_close(None),
        }
    }

    fn ack(&mut self, ack: Ack) {
        for pkid in self.acks.ack(ack) {
            self.outbox.push_back(Out::PubAck(pkid));
        }
    }

    /// Publish `offline` and disconnect if connected; otherwise stop at once.
    fn begin_close(&mut self, done: Option<oneshot::Sender<()>>) -> Flow {
        self.closing = Some(Closing {
            deadline: Instant::now() + CLOSE_GRACE,
            done,
            disconnect_sent: false,
        });
        if !self.connected {
            return Flow::Stop;
        }
        let offline = Status {
            state: "offline",
            agent_version: &self.settings.agent_version,
            config_version: self.settings.config_version,
            at: clock::now(),
            reason: Some("stopped"),
        };
        self.outbox.push_back(Out::Publish {
            topic: self.settings.status_topic().to_string(),
            payload: offline.to_json(),
            qos: QoS::AtLeastOnce,
            retain: true,
            tag: Tag::Message { requeue: false },
        });
        self.outbox.push_back(Out::Disconnect);
        Flow::Continue
    }

    fn finish(&mut self) {
        self.lose(&PublishError::Closed);
        for out in self.outbox.drain(..) {
            if let Out::Publish {
                tag: Tag::Event(reply),
                ..
            } = out
            {
                let _ = reply.send(Err(PublishError::Closed));
            }
        }
        self.health.set_mqtt("stopped", None);
        self.link.send_replace(Link::Closed);
        if self.connected || self.closing.as_ref().is_some_and(|c| c.disconnect_sent) {
            info!("Disconnected from the MQTT broker.");
        }
        if let Some(done) = self.closing.as_mut().and_then(|c| c.done.take()) {
            let _ = done.send(());
        }
    }

    fn drop_consumer(&mut self) {
        // Unacknowledged: the broker delivers them again on the next session.
        self.consumer_gone = true;
        self.deliver.clear();
    }

    fn event(&mut self, event: Event) -> Flow {
        match event {
            Event::Incoming(Packet::ConnAck(c)) => self.connected(c.session_present),
            Event::Incoming(Packet::Publish(p)) => self.inbound(p),
            Event::Outgoing(Outgoing::Publish(pkid)) => {
                if let Err(e) = self.outbound.outgoing(pkid) {
                    error!(error = %e, "MQTT publish bookkeeping out of step; rebuilding the connection.");
                    return Flow::Rebuild;
                }
            }
            Event::Outgoing(Outgoing::AwaitAck(pkid)) => match self.outbound.await_ack(pkid) {
                Ok(dropped) => {
                    debug!(
                        pkid,
                        "The broker acknowledged out of order; a publish waits for its packet id."
                    );
                    if let Some(dropped) = dropped {
                        self.resolve_lost(vec![dropped], &PublishError::ConnectionLost);
                    }
                }
                Err(e) => {
                    error!(error = %e, "MQTT publish bookkeeping out of step; rebuilding the connection.");
                    return Flow::Rebuild;
                }
            },
            Event::Incoming(Packet::PubAck(ack)) => {
                self.progress = Instant::now();
                match self.outbound.puback(ack.pkid) {
                    Some(Tracked::Event(reply)) => {
                        let _ = reply.send(Ok(()));
                    }
                    Some(Tracked::Message(_)) => {}
                    None => debug!(pkid = ack.pkid, "A PUBACK for no publish of ours; ignored."),
                }
            }
            Event::Incoming(Packet::SubAck(s))
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure)) =>
            {
                let filters: Vec<String> = self
                    .settings
                    .subscriptions
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                error!(topic = %filters.join(" "), "The broker refused a subscription (check its ACL for this client); inbound messages on it will not arrive.");
                self.health.set_mqtt(
                    "connected",
                    Some("the broker refused a subscription".into()),
                );
            }
            // Read on until the broker closes the connection (or the close deadline): closing
            // the socket with its PUBACKs unread would reset the connection, and the broker
            // could then drop the DISCONNECT unread and publish the last will after `offline`.
            Event::Outgoing(Outgoing::Disconnect) => {
                if let Some(c) = self.closing.as_mut() {
                    c.disconnect_sent = true;
                }
            }
            _ => {}
        }
        Flow::Continue
    }

    fn connected(&mut self, session_present: bool) {
        self.connected = true;
        self.progress = Instant::now();
        let lost = self.outbound.connack(session_present);
        self.resolve_lost(lost, &PublishError::SessionLost);
        self.acks.new_connection();
        self.backoff.reset();
        if self.attempts > 0 {
            info!(endpoint = %self.settings.mqtt.endpoint, session_present, attempt = self.attempts, "Reconnected to the MQTT broker.");
        } else {
            info!(endpoint = %self.settings.mqtt.endpoint, session_present, "Connected to the MQTT broker.");
        }
        self.attempts = 0;
        self.health.set_mqtt("connected", None);
        self.link.send_replace(Link::Up);
        // Subscribe first, then say online: a device that waits for `online` finds the agent
        // listening.
        let online = self.online();
        self.outbox.push_front(online);
        if !self.settings.subscriptions.is_empty() {
            let filters = self
                .settings
                .subscriptions
                .iter()
                .map(|f| SubscribeFilter::new(f.to_string(), QoS::AtLeastOnce))
                .collect();
            self.outbox.push_front(Out::Subscribe(filters));
        }
    }

    /// The retained `status` `online`, with the running configuration's version.
    fn online(&self) -> Out {
        let online = Status {
            state: "online",
            agent_version: &self.settings.agent_version,
            config_version: self.settings.config_version,
            at: clock::now(),
            reason: None,
        };
        Out::Publish {
            topic: self.settings.status_topic().to_string(),
            payload: online.to_json(),
            qos: QoS::AtLeastOnce,
            retain: true,
            tag: Tag::Message { requeue: false },
        }
    }

    /// An inbound publish: queue it for the consumer. Subscriptions are QoS 1 at most, so the
    /// broker never sends QoS 2.
    fn inbound(&mut self, p: Publish) {
        let pkid = if p.qos == QoS::AtMostOnce { 0 } else { p.pkid };
        let ack = self.acks.receive(pkid);
        let topic = match Topic::parse(&p.topic) {
            Ok(t) => t,
            Err(e) => {
                warn!(topic = %escape_bounded(p.topic.as_bytes(), 256), error = %e, "Ignoring a message on a topic outside the tallyman scheme.");
                self.ack(ack);
                return;
            }
        };
        if self.consumer_gone {
            debug!(topic = %topic, "No consumer for inbound messages; left unacknowledged.");
            return;
        }
        if pkid == 0 && self.deliver.len() >= QOS0_BACKLOG {
            self.dropped_qos0 += 1;
            if self.dropped_qos0.is_power_of_two() {
                warn!(topic = %topic, dropped = self.dropped_qos0, "Inbound QoS 0 messages arrive faster than they are handled; dropping (publish with QoS 1 to be acknowledged).");
            }
            return;
        }
        self.deliver.push_back(Inbound {
            topic,
            payload: p.payload.to_vec(),
            redelivered: p.dup,
            ack,
        });
    }

    fn connection_lost(&mut self, e: &ConnectionError) {
        let was_connected = self.connected;
        self.connected = false;
        if was_connected {
            // rumqttc holds no publish any more (see `run`).
            self.lose(&PublishError::ConnectionLost);
        }
        // PUBACKs for this connection's messages are void now; the broker redelivers them.
        self.acks.new_connection();
        self.outbox
            .retain(|o| matches!(o, Out::Publish { .. } | Out::Disconnect));
        let (reason, operator) = describe(e, &self.settings);
        let failure = if was_connected {
            self.attempts = 0;
            Failure::Lost
        } else if operator {
            Failure::Refused
        } else {
            Failure::Failed
        };
        self.attempt_failed(reason, failure);
    }

    /// Record a failed or lost connection: health, a log line with the reason and the delay.
    fn attempt_failed(&mut self, reason: String, failure: Failure) {
        self.attempts = self.attempts.saturating_add(1);
        self.next_delay = self.backoff.next(None);
        let retry_in_ms = u64::try_from(self.next_delay.as_millis()).unwrap_or(u64::MAX);
        self.health.set_mqtt("disconnected", Some(reason.clone()));
        self.link.send_replace(Link::Down {
            error: Some(reason.clone()),
        });
        let endpoint = &self.settings.mqtt.endpoint;
        let attempt = self.attempts;
        if self.closing.is_some() {
            debug!(endpoint = %endpoint, error = %reason, "MQTT connection ended while closing.");
            return;
        }
        match failure {
            Failure::Setup => {
                error!(endpoint = %endpoint, attempt, retry_in_ms, error = %reason, "Cannot set up the MQTT connection; will retry.");
            }
            Failure::Refused => {
                error!(endpoint = %endpoint, attempt, retry_in_ms, error = %reason, "MQTT connection refused; will retry.");
            }
            Failure::Failed => {
                warn!(endpoint = %endpoint, attempt, retry_in_ms, error = %reason, "MQTT connection failed; will retry.");
            }
            Failure::Lost => {
                warn!(endpoint = %endpoint, retry_in_ms, error = %reason, "Lost the MQTT connection; reconnecting.");
            }
        }
    }

    /// Sleep the backoff delay while still serving commands and the consumer.
    async fn wait_backoff(&mut self, io: &mut Channels) -> Flow {
        let until = Instant::now() + self.next_delay;
        loop {
            self.flush_outbox();
            tokio::select! {
                () = tokio::time::sleep_until(until) => return Flow::Continue,
                cmd = io.commands.recv(), if self.outbox.is_empty() && self.closing.is_none() => {
                    if self.command(cmd) == Flow::Stop {
                        return Flow::Stop;
                    }
                }
                permit = io.inbound.reserve(), if !self.deliver.is_empty() && !self.consumer_gone => {
                    match permit {
                        Ok(p) => {
                            if let Some(m) = self.deliver.pop_front() {
                                p.send(m);
                            }
                        }
                        Err(_) => self.drop_consumer(),
                    }
                }
            }
        }
    }
}

/// A connection error in words, and whether an operator must act (TLS trust, credentials,
/// authorisation) rather than wait for the network.
fn describe(e: &ConnectionError, s: &Settings) -> (String, bool) {
    let endpoint = &s.mqtt.endpoint;
    if let Some(r) = tls::find_rustls(e) {
        let ca = match &s.mqtt.ca_file {
            Some(p) => format!("the CA bundle {}", p.display()),
            None => "the system's trust store".to_owned(),
        };
        return (tls::explain(r, &ca, s.mqtt.client_cert.is_some()), true);
    }
    match e {
        ConnectionError::ConnectionRefused(code) => {
            let why = match code {
                ConnectReturnCode::BadUserNamePassword => {
                    "the broker refused the user name or password".to_owned()
                }
                ConnectReturnCode::NotAuthorized => {
                    "the broker refused the connection: not authorised (check the credentials, \
                     the client certificate and the broker's access rules)"
                        .to_owned()
                }
                ConnectReturnCode::BadClientId => {
                    format!("the broker refused the client id `{}`", s.mqtt.client_id)
                }
                ConnectReturnCode::RefusedProtocolVersion => {
                    "the broker refused MQTT 3.1.1".to_owned()
                }
                ConnectReturnCode::ServiceUnavailable => {
                    return ("the broker is unavailable".to_owned(), false);
                }
                ConnectReturnCode::Success => "the broker refused the connection".to_owned(),
            };
            (why, true)
        }
        ConnectionError::NetworkTimeout => (
            format!("no answer from {endpoint} within the connection timeout"),
            false,
        ),
        ConnectionError::Io(io) | ConnectionError::MqttState(StateError::Io(io)) => {
            (io_reason(io, s), false)
        }
        ConnectionError::Tls(rumqttc::TlsError::Io(io)) => (io_reason(io, s), false),
        ConnectionError::Tls(rumqttc::TlsError::DNSName(_)) => (
            format!(
                "`{}` is not a valid TLS server name for the endpoint",
                endpoint.host
            ),
            true,
        ),
        ConnectionError::MqttState(StateError::AwaitPingResp) => (
            "the broker did not answer a ping within the keep-alive: the connection is dead"
                .to_owned(),
            false,
        ),
        ConnectionError::MqttState(StateError::ConnectionAborted) => {
            ("the broker closed the connection".to_owned(), false)
        }
        ConnectionError::MqttState(StateError::CollisionTimeout) => (
            "a publish waited for a packet id the broker never acknowledged (rumqttc#1014); \
             rebuilding the connection"
                .to_owned(),
            false,
        ),
        ConnectionError::MqttState(StateError::Deserialization(
            rumqttc::Error::PayloadSizeLimitExceeded(n),
        )) => (
            format!(
                "the broker sent a packet of {n} bytes, over the {MAX_PACKET_BYTES}-byte limit \
                 (set message_size_limit on the broker)"
            ),
            true,
        ),
        other => (other.to_string(), false),
    }
}

fn io_reason(io: &std::io::Error, s: &Settings) -> String {
    use std::io::ErrorKind as K;
    let endpoint = &s.mqtt.endpoint;
    match io.kind() {
        K::ConnectionRefused => format!("nothing accepts connections at {endpoint} ({io})"),
        K::UnexpectedEof | K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
            if endpoint.tls && s.mqtt.client_cert.is_none() {
                format!(
                    "the broker closed the connection ({io}); a broker that requires a client \
                     certificate does this when none is sent"
                )
            } else {
                format!("the broker closed the connection ({io})")
            }
        }
        _ => format!("{endpoint}: {io}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX, 7);
        let first = b.next(None);
        assert!(
            first >= BACKOFF_INITIAL / 2 && first <= BACKOFF_INITIAL,
            "{first:?}"
        );
        let mut last = Duration::ZERO;
        for _ in 0..40 {
            last = b.next(None);
            assert!(last <= BACKOFF_MAX);
        }
        assert!(last >= BACKOFF_MAX / 2, "{last:?}");
        b.reset();
        assert!(b.next(None) <= BACKOFF_INITIAL);
    }
}
