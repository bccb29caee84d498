//! The mqtt source (`type = "mqtt"`): handhelds and smart shelves publishing to this gateway's
//! `in/events` and `in/scans` topics over the one MQTT connection (`crate::mqtt`).
//!
//! # Contract
//!
//! * **`in/events`**: one canonical event, JSON (the published schema, `v` = 1), at most
//!   [`MAX_EVENT_BYTES`]. A valid event of this facility and gateway is stored with
//!   `Spool::append_once` (de-duplicated by its own `id`: a redelivery after a crash is stored
//!   once) and the message is PUBACKed only once the event is durable (or was stored before).
//!   The spool keeps the event's id, source and capture time; it gives it the gateway's next
//!   `seq`.
//! * **Spool full** (or a storage failure): the message is **not** acknowledged; the append is
//!   retried with backoff (from [`FULL_RETRY_INITIAL`] to [`FULL_RETRY_MAX`]) until it fits.
//!   The broker keeps the message (and, its in-flight window being full, sends no more);
//!   health and the log say why. Nothing is dropped. Later messages wait behind it, so events
//!   are stored in the order they arrived.
//! * **Refused** (PUBACKed, so not redelivered forever, and answered on `in/rejected`, QoS 1):
//!   a payload over the limit (`too_large`), not JSON (`invalid_json`), another schema version
//!   (`unsupported_version`), an invalid event (`invalid_event`), an event of another facility
//!   (`wrong_facility`) or gateway (`wrong_gateway`). See [`Rejection`].
//! * **`in/scans`**: `{"source": "<device>", "scan": "<the scan>", "id": "<optional UUIDv7>"}`
//!   (unknown fields refused), at most [`MAX_SCAN_MESSAGE_BYTES`]. `source` is the device: a
//!   source name (1 to 64 ASCII letters, digits, `-`, `_`) that names the events' `source` and
//!   the feedback topic. `scan` is the scan as text, GS written as `\u001d` (the source's
//!   `gs_aliases` apply too). `id`, when given, is the id of the event the scan makes: the
//!   event is stored with `append_once`, so the same message delivered twice books once. Each
//!   device has its own scan state machine, built from the mqtt source's scan settings with
//!   the device as the source name (at most [`MAX_DEVICES`]; when full, the least recently
//!   used device holding nothing is forgotten). The scan's feedback (the stdin feedback
//!   object) is published on `feedback/{device}` (QoS 0, not retained) — *accepted* only once
//!   its event is durable — and then the message is PUBACKed. A scan refused by the workflow
//!   (undecodable, expired, storage full …) is answered by its feedback, not on `in/rejected`;
//!   a message that is no scan message (`invalid_json`, `invalid_scan`, `too_large`,
//!   `too_many_devices`) is answered on `in/rejected`.
//! * **Order**: PUBACKs and answers go out in the order the messages arrived; appends of
//!   consecutive messages run concurrently (each in a task of its own, up to [`IN_FLIGHT`]) so
//!   group commit batches them. Session
//!   workflows are settled one scan at a time (a refused commit reopens the session).
//! * **Shutdown**: no new message is taken; appends already started finish and are PUBACKed;
//!   a message still waiting for room is left unacknowledged (the broker delivers it again).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tallyman_protocol::event::{
    Event, EventId, FacilityId, GatewayId, SchemaVersion, SourceName, Timestamp,
};
use tallyman_protocol::topic::{Filter, Target, Topic};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use super::driver::sleep_until;
use crate::clock;
use crate::health::SourceHealth;
use crate::mqtt::{Ack, Inbound, MqttHandle, QoS};
use crate::shutdown::Shutdown;
use crate::spool::{AppendError, Appended, Queued, Spool};
use crate::workflow::{Feedback, FeedbackResult, Machine};

/// Largest `in/events` payload (an event of 1,000 lines is far below).
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;
/// Largest `in/scans` payload.
pub const MAX_SCAN_MESSAGE_BYTES: usize = 64 * 1024;
/// Most devices with a scan state machine at once.
pub const MAX_DEVICES: usize = 256;
/// Messages being stored (or answered) at once; PUBACKs still go out in order.
pub const IN_FLIGHT: usize = 512;
/// First wait before appending again when the spool refused an event.
pub const FULL_RETRY_INITIAL: Duration = Duration::from_millis(100);
/// Longest wait between appends of a refused event.
pub const FULL_RETRY_MAX: Duration = Duration::from_secs(5);
/// At most one log line per this long about refused messages (the rest are counted).
const REJECT_LOG_EVERY: Duration = Duration::from_secs(10);

/// Builds the scan state machine of one device: the mqtt source's scan settings with the
/// device as the source name.
pub type MachineFactory = Box<dyn Fn(SourceName) -> Box<dyn Machine> + Send>;

/// What the source needs to know.
pub struct Settings {
    /// The configured source name (health and logs).
    pub name: SourceName,
    pub facility: FacilityId,
    pub gateway: GatewayId,
    pub machine_for: MachineFactory,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("facility", &self.facility)
            .field("gateway", &self.gateway)
            .finish_non_exhaustive()
    }
}

/// The answer on `in/rejected` (JSON, QoS 1, not retained).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    /// The topic the message came on.
    pub topic: String,
    /// One of `too_large`, `invalid_json`, `unsupported_version`, `invalid_event`,
    /// `wrong_facility`, `wrong_gateway`, `invalid_scan`, `too_many_devices`.
    pub code: &'static str,
    /// Why, in one sentence for people.
    pub reason: String,
    /// The event id, when one could be read from the message.
    pub event_id: Option<EventId>,
    /// The payload's size in bytes.
    pub bytes: usize,
    /// When the agent refused it.
    pub at: Timestamp,
}

/// Why an `in/events` payload is refused (before it becomes a [`Rejection`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub reason: String,
    pub event_id: Option<EventId>,
}

impl Refusal {
    fn new(code: &'static str, reason: impl Into<String>, event_id: Option<EventId>) -> Refusal {
        Refusal {
            code,
            reason: reason.into(),
            event_id,
        }
    }
}

/// What the mqtt source subscribes to: this gateway's `in/events` and `in/scans` (of
/// [`Filter::for_agent`]; configuration and commands are not handled here).
pub fn subscriptions(facility: &FacilityId, gateway: &GatewayId) -> Vec<Filter> {
    Filter::for_agent(facility, gateway)
        .into_iter()
        .filter(|f| matches!(f, Filter::InEvents { .. } | Filter::InScans { .. }))
        .collect()
}

/// Read an `in/events` payload: a valid v1 event of this facility and gateway.
pub fn parse_event(
    payload: &[u8],
    facility: &FacilityId,
    gateway: &GatewayId,
) -> Result<Event, Refusal> {
    if payload.len() > MAX_EVENT_BYTES {
        return Err(Refusal::new(
            "too_large",
            format!(
                "the payload is {} bytes; in/events takes at most {MAX_EVENT_BYTES}",
                payload.len()
            ),
            None,
        ));
    }
    /// The two fields read first, whatever else the document holds.
    #[derive(Deserialize)]
    struct Probe {
        v: Option<serde_json::Value>,
        id: Option<serde_json::Value>,
    }
    let probe: Probe = match serde_json::from_slice(payload) {
        Ok(p) => p,
        Err(e) if e.is_data() => {
            return Err(Refusal::new(
                "invalid_event",
                "an event is a JSON object",
                None,
            ));
        }
        Err(e) => return Err(Refusal::new("invalid_json", format!("not JSON: {e}"), None)),
    };
    let event_id = probe
        .id
        .as_ref()
        .and_then(serde_json::Value::as_str)
        .and_then(|s| EventId::parse(s).ok());
    if let Some(v) = &probe.v {
        match v.as_u64() {
            Some(SchemaVersion::CURRENT) => {}
            Some(n) => {
                return Err(Refusal::new(
                    "unsupported_version",
                    format!(
                        "unsupported event schema version {n}; this gateway reads version {}",
                        SchemaVersion::CURRENT
                    ),
                    event_id,
                ));
            }
            None => {
                return Err(Refusal::new(
                    "invalid_event",
                    format!(
                        "`v` is the schema version, the number {}",
                        SchemaVersion::CURRENT
                    ),
                    event_id,
                ));
            }
        }
    }
    let event = Event::from_json(payload)
        .map_err(|e| Refusal::new("invalid_event", e.to_string(), event_id))?;
    if event.facility() != facility {
        return Err(Refusal::new(
            "wrong_facility",
            format!(
                "the event is for facility `{}`; this gateway (`{gateway}`) is in facility `{facility}`",
                event.facility()
            ),
            event_id,
        ));
    }
    if event.gateway() != gateway {
        return Err(Refusal::new(
            "wrong_gateway",
            format!(
                "the event is for gateway `{}`; this is gateway `{gateway}`",
                event.gateway()
            ),
            event_id,
        ));
    }
    Ok(event)
}

/// An `in/scans` message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanMessage {
    /// The device.
    pub source: SourceName,
    /// The scan as text.
    pub scan: String,
    /// The id of the event the scan makes.
    #[serde(default)]
    pub id: Option<EventId>,
}

/// Read an `in/scans` payload.
pub fn parse_scan(payload: &[u8]) -> Result<ScanMessage, Refusal> {
    if payload.len() > MAX_SCAN_MESSAGE_BYTES {
        return Err(Refusal::new(
            "too_large",
            format!(
                "the payload is {} bytes; in/scans takes at most {MAX_SCAN_MESSAGE_BYTES}",
                payload.len()
            ),
            None,
        ));
    }
    serde_json::from_slice(payload).map_err(|e| {
        if e.is_data() {
            Refusal::new(
                "invalid_scan",
                format!(
                    "a scan message is {{\"source\": <device name>, \"scan\": <text>, \"id\": <optional UUIDv7>}}: {e}"
                ),
                None,
            )
        } else {
            Refusal::new("invalid_json", format!("not JSON: {e}"), None)
        }
    })
}

/// What one message comes to once settled: an answer to publish, then the ack.
struct Done {
    /// `None`: leave the message unacknowledged (stopping while it waited for room).
    ack: Option<Ack>,
    answer: Answer,
    outcome: Option<FeedbackResult>,
}

enum Answer {
    None,
    Rejected(Rejection),
    Feedback(Feedback),
}

type Pending = Pin<Box<dyn Future<Output = Done> + Send>>;

/// What woke the source up.
enum Next {
    Message(Option<Inbound>),
    Tick,
    Stop,
    Done(Done),
}

/// The scan state machines of the devices seen, bounded.
struct Devices {
    machines: HashMap<SourceName, Device>,
    uses: u64,
}

struct Device {
    machine: Box<dyn Machine>,
    last_use: u64,
}

impl Devices {
    /// The device's machine, created if new. `None` when [`MAX_DEVICES`] machines all hold
    /// something.
    fn get_or_create(
        &mut self,
        name: &SourceName,
        make: &MachineFactory,
    ) -> Option<&mut Box<dyn Machine>> {
        self.uses += 1;
        if !self.machines.contains_key(name) {
            if self.machines.len() >= MAX_DEVICES {
                let idle = self
                    .machines
                    .iter()
                    .filter(|(_, d)| d.machine.deadline().is_none() && d.machine.open_lines() == 0)
                    .min_by_key(|(_, d)| d.last_use)
                    .map(|(n, _)| n.clone())?;
                self.machines.remove(&idle);
            }
            self.machines.insert(
                name.clone(),
                Device {
                    machine: make(name.clone()),
                    last_use: 0,
                },
            );
        }
        let d = self.machines.get_mut(name)?;
        d.last_use = self.uses;
        Some(&mut d.machine)
    }

    fn get(&mut self, name: &SourceName) -> Option<&mut Box<dyn Machine>> {
        self.machines.get_mut(name).map(|d| &mut d.machine)
    }

    fn deadline(&self) -> Option<Timestamp> {
        self.machines
            .values()
            .filter_map(|d| d.machine.deadline())
            .min()
    }

    fn due(&self, now: Timestamp) -> Vec<SourceName> {
        self.machines
            .iter()
            .filter(|(_, d)| d.machine.deadline().is_some_and(|at| at <= now))
            .map(|(n, _)| n.clone())
            .collect()
    }
}

/// One log line per [`REJECT_LOG_EVERY`] at most.
struct RateLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimit {
    /// Whether to log now, and how many were left out since the last line.
    fn check(&mut self) -> Option<u64> {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|at| now.duration_since(at) < REJECT_LOG_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

struct Source {
    settings: Settings,
    mqtt: MqttHandle,
    spool: Spool,
    health: Arc<SourceHealth>,
    shutdown: Shutdown,
    devices: Devices,
    pending: VecDeque<Pending>,
    reject_log: RateLimit,
}

/// Take inbound messages until shutdown (or the connection's inbound channel closes); settle
/// what was started before returning. Returns the channel, with the messages not taken yet,
/// for the source started in its place when its configuration changed.
pub async fn run(
    mut inbound: mpsc::Receiver<Inbound>,
    mqtt: MqttHandle,
    spool: Spool,
    settings: Settings,
    health: Arc<SourceHealth>,
    shutdown: Shutdown,
) -> mpsc::Receiver<Inbound> {
    info!(source = %settings.name, "Reading events and scans from MQTT (in/events, in/scans).");
    health.set_state("open", None);
    let mut stop = shutdown.clone();
    let mut s = Source {
        settings,
        mqtt,
        spool,
        health,
        shutdown,
        devices: Devices {
            machines: HashMap::new(),
            uses: 0,
        },
        pending: VecDeque::new(),
        reject_log: RateLimit {
            last: None,
            suppressed: 0,
        },
    };
    loop {
        // Answer finished messages, in order.
        while let Some(done) = s.pending.front_mut().and_then(poll_once) {
            s.pending.pop_front();
            s.finish(done).await;
        }
        if s.pending.len() >= IN_FLIGHT {
            if let Some(front) = s.pending.pop_front() {
                let done = front.await;
                s.finish(done).await;
            }
            continue;
        }
        let deadline = s.devices.deadline();
        let next = tokio::select! {
            m = inbound.recv() => Next::Message(m),
            () = sleep_until(deadline) => Next::Tick,
            () = stop.wait() => Next::Stop,
            Some(done) = next_done(&mut s.pending), if !s.pending.is_empty() => Next::Done(done),
        };
        match next {
            Next::Message(Some(m)) => s.handle(m).await,
            // Messages not taken stay unacknowledged: the broker delivers them again.
            Next::Message(None) | Next::Stop => break,
            Next::Tick => s.tick().await,
            Next::Done(done) => {
                s.pending.pop_front();
                s.finish(done).await;
            }
        }
    }
    s.settle_all().await;
    s.health.set_state("stopped", None);
    inbound
}

impl Source {
    async fn handle(&mut self, m: Inbound) {
        SourceHealth::count(&self.health.frames);
        let ours = m.topic.facility() == &self.settings.facility
            && m.topic.target() == Target::Gateway(self.settings.gateway.clone());
        match &m.topic {
            Topic::InEvents { .. } if ours => self.on_event(m).await,
            Topic::InScans { .. } if ours => self.on_scan(m).await,
            other => {
                info!(topic = %other, "An inbound message on a topic this source does not handle; acknowledged and ignored.");
                self.ready(Done {
                    ack: Some(m.ack),
                    answer: Answer::None,
                    outcome: None,
                });
            }
        }
    }

    fn ready(&mut self, done: Done) {
        self.pending.push_back(Box::pin(std::future::ready(done)));
    }

    /// Start storing now, in a task of its own (so that consecutive appends share a commit),
    /// and answer in arrival order when it is done.
    fn started(&mut self, store: impl Future<Output = Done> + Send + 'static) {
        let task = tokio::spawn(store);
        self.pending.push_back(Box::pin(async move {
            task.await.unwrap_or_else(|e| {
                // A panic in the store task: leave the message to the broker's redelivery.
                error!(error = %e, "Storing an inbound message failed unexpectedly.");
                unacknowledged()
            })
        }));
    }

    fn rejected(&self, m: &Inbound, r: Refusal) -> Done {
        Done {
            ack: Some(m.ack),
            answer: Answer::Rejected(rejection(&m.topic, m.payload.len(), r)),
            outcome: Some(FeedbackResult::Rejected),
        }
    }

    async fn on_event(&mut self, m: Inbound) {
        let event = match parse_event(&m.payload, &self.settings.facility, &self.settings.gateway) {
            Ok(e) => e,
            Err(r) => {
                let done = self.rejected(&m, r);
                self.ready(done);
                return;
            }
        };
        if self.spool.is_full() {
            // Keep arrival order while the spool has no room: earlier messages first.
            self.settle_all().await;
        }
        let topic = m.topic.clone();
        let bytes = m.payload.len();
        // Queued now, in arrival order (seqs follow the messages); durability is awaited in
        // the store task, alongside later messages' appends.
        let first = self.spool.enqueue_once(event.clone()).await;
        self.started(store_event(
            self.spool.clone(),
            event,
            first,
            Arc::clone(&self.health),
            self.shutdown.clone(),
            Arrival {
                ack: m.ack,
                topic,
                bytes,
            },
        ));
    }

    async fn on_scan(&mut self, m: Inbound) {
        let msg = match parse_scan(&m.payload) {
            Ok(msg) => msg,
            Err(r) => {
                let done = self.rejected(&m, r);
                self.ready(done);
                return;
            }
        };
        let device = msg.source.clone();
        let Some(machine) = self
            .devices
            .get_or_create(&device, &self.settings.machine_for)
        else {
            let r = Refusal::new(
                "too_many_devices",
                format!(
                    "{MAX_DEVICES} devices have open sessions on this gateway; finish one first"
                ),
                msg.id,
            );
            let done = self.rejected(&m, r);
            self.ready(done);
            return;
        };
        let mut given = msg.id;
        let mut ids = |at| given.take().unwrap_or_else(|| clock::new_event_id(at));
        let step = machine.scan(msg.scan.as_bytes(), clock::now(), clock::today(), &mut ids);
        let once = msg.id.is_some();
        if step.events.is_empty() {
            let outcome = step.feedback.result;
            self.ready(Done {
                ack: Some(m.ack),
                answer: Answer::Feedback(step.feedback),
                outcome: Some(outcome),
            });
        } else if machine.pipelined() {
            // No session to reopen: report success now; the feedback waits for durability.
            machine.committed(true);
            let ack = m.ack;
            // Queued now, in arrival order; durability is awaited in the task.
            let submitted = submit_step(&self.spool, step.events.clone(), once).await;
            self.started(async move {
                let fb = match super::finish(submitted).await {
                    Ok(()) => step.feedback,
                    Err(why) => why.feedback(&step),
                };
                Done {
                    ack: Some(ack),
                    outcome: Some(fb.result),
                    answer: Answer::Feedback(fb),
                }
            });
        } else {
            // A session: earlier messages first, then this commit, settled before the next
            // scan (a refused commit reopens the session).
            self.settle_all().await;
            let submitted = submit_step(&self.spool, step.events.clone(), once).await;
            let stored = super::finish(submitted).await;
            let ok = stored.is_ok();
            if let Some(machine) = self.devices.get(&device) {
                machine.committed(ok);
            }
            let fb = match stored {
                Ok(()) => step.feedback,
                Err(why) => why.feedback(&step),
            };
            self.ready(Done {
                ack: Some(m.ack),
                outcome: Some(fb.result),
                answer: Answer::Feedback(fb),
            });
        }
    }

    /// Idle timeouts of the devices' sessions.
    async fn tick(&mut self) {
        self.settle_all().await;
        let now = clock::now();
        for device in self.devices.due(now) {
            let Some(machine) = self.devices.get(&device) else {
                continue;
            };
            let mut ids = |at| clock::new_event_id(at);
            let Some(step) = machine.tick(now, &mut ids) else {
                continue;
            };
            let fb = if step.events.is_empty() {
                step.feedback
            } else {
                let stored = super::store(&self.spool, step.events.clone()).await;
                if let Some(machine) = self.devices.get(&device) {
                    machine.committed(stored.is_ok());
                }
                match stored {
                    Ok(()) => step.feedback,
                    Err(why) => why.feedback(&step),
                }
            };
            self.finish(Done {
                ack: None,
                outcome: Some(fb.result),
                answer: Answer::Feedback(fb),
            })
            .await;
        }
    }

    /// Await and answer every pending message, oldest first.
    async fn settle_all(&mut self) {
        while let Some(front) = self.pending.pop_front() {
            let done = front.await;
            self.finish(done).await;
        }
    }

    /// Publish the answer, then PUBACK.
    async fn finish(&mut self, done: Done) {
        if let Some(outcome) = done.outcome {
            let counter = match outcome {
                FeedbackResult::Accepted => &self.health.accepted,
                FeedbackResult::Noted => &self.health.noted,
                FeedbackResult::Rejected => &self.health.rejected,
            };
            SourceHealth::count(counter);
        }
        match done.answer {
            Answer::None => {}
            Answer::Rejected(r) => {
                if let Some(more) = self.reject_log.check() {
                    warn!(source = %self.settings.name, topic = %r.topic, code = r.code, error = %r.reason, also_refused = more, "Refused an inbound message; answered on in/rejected.");
                }
                let topic = Topic::InRejected {
                    facility: self.settings.facility.clone(),
                    gateway: self.settings.gateway.clone(),
                };
                let payload = serde_json::to_vec(&r).unwrap_or_default();
                // Closed: the agent is stopping; the answer is best effort.
                let _ = self
                    .mqtt
                    .publish(&topic, payload, QoS::AtLeastOnce, false)
                    .await;
            }
            Answer::Feedback(fb) => {
                if let Some(id) = fb.event_id {
                    debug!(event_id = %id, result = %fb.result, "Scan feedback.");
                }
                let topic = Topic::Feedback {
                    facility: self.settings.facility.clone(),
                    gateway: self.settings.gateway.clone(),
                    source: fb.source.clone(),
                };
                let payload = serde_json::to_vec(&fb).unwrap_or_default();
                let _ = self
                    .mqtt
                    .publish(&topic, payload, QoS::AtMostOnce, false)
                    .await;
            }
        }
        if let Some(ack) = done.ack {
            self.mqtt.ack(ack).await;
        }
    }
}

fn rejection(topic: &Topic, bytes: usize, r: Refusal) -> Rejection {
    Rejection {
        topic: topic.to_string(),
        code: r.code,
        reason: r.reason,
        event_id: r.event_id,
        bytes,
        at: clock::now(),
    }
}

/// An inbound message, as its answer needs it.
struct Arrival {
    ack: Ack,
    topic: Topic,
    bytes: usize,
}

/// Store an inbound event once; wait (unacknowledged) while the spool has no room.
async fn store_event(
    spool: Spool,
    event: Event,
    first: Result<Queued, AppendError>,
    health: Arc<SourceHealth>,
    mut shutdown: Shutdown,
    arrival: Arrival,
) -> Done {
    let Arrival { ack, topic, bytes } = arrival;
    let id = event.id();
    let mut delay = FULL_RETRY_INITIAL;
    let mut waiting = false;
    let mut attempt = Some(first);
    let done = loop {
        let outcome = match attempt.take() {
            Some(Ok(queued)) => queued.outcome().await,
            Some(Err(e)) => Err(e),
            None => spool.append_once(event.clone()).await,
        };
        match outcome {
            Ok(Appended::New(a)) => {
                debug!(event_id = %id, seq = a.seq, "Inbound event accepted.");
                break accepted(ack);
            }
            Ok(Appended::Duplicate { seq }) => {
                debug!(event_id = %id, seq, "Inbound event was stored before; acknowledged again.");
                break accepted(ack);
            }
            Err(AppendError::Encode(e)) => {
                let r = Refusal::new(
                    "invalid_event",
                    format!("the event cannot be stored: {e}"),
                    Some(id),
                );
                break Done {
                    ack: Some(ack),
                    answer: Answer::Rejected(rejection(&topic, bytes, r)),
                    outcome: Some(FeedbackResult::Rejected),
                };
            }
            // The spool closes only after the sources stopped; leave it to the broker.
            Err(AppendError::Closed) => break unacknowledged(),
            Err(e) => {
                if !waiting {
                    waiting = true;
                    let why = format!("inbound events wait unacknowledged: {e}");
                    if matches!(e, AppendError::Full { .. }) {
                        warn!(event_id = %id, error = %e, "Spool full: an inbound event stays unacknowledged and is retried until it fits.");
                    } else {
                        error!(event_id = %id, error = %e, "Storing an inbound event failed; it stays unacknowledged and is retried.");
                    }
                    health.set_state("waiting", Some(why));
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.wait() => break unacknowledged(),
                }
                delay = (delay * 2).min(FULL_RETRY_MAX);
            }
        }
    };
    if waiting && done.ack.is_some() {
        info!(event_id = %id, "The spool took the waiting inbound event.");
        health.set_state("open", None);
    }
    done
}

fn accepted(ack: Ack) -> Done {
    Done {
        ack: Some(ack),
        answer: Answer::None,
        outcome: Some(FeedbackResult::Accepted),
    }
}

fn unacknowledged() -> Done {
    Done {
        ack: None,
        answer: Answer::None,
        outcome: None,
    }
}

/// Hand a step's events to the spool in order (see [`super::submit`]). With `once`, events
/// already stored (same id) count as stored.
async fn submit_step(spool: &Spool, events: Vec<Event>, once: bool) -> super::Submitted {
    if !once {
        return super::submit(spool, events).await;
    }
    let mut queued = Vec::with_capacity(events.len());
    for event in events {
        let id = event.id();
        queued.push((id, spool.enqueue_once(event).await));
    }
    queued
}

/// Poll a pending message once without waiting.
fn poll_once(fut: &mut Pending) -> Option<Done> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(done) => Some(done),
        std::task::Poll::Pending => None,
    }
}

/// Wait for the oldest pending message without taking it out of the queue.
async fn next_done(pending: &mut VecDeque<Pending>) -> Option<Done> {
    match pending.front_mut() {
        Some(front) => Some(front.as_mut().await),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (FacilityId, GatewayId) {
        (
            FacilityId::new("north").unwrap(),
            GatewayId::new("gw-1").unwrap(),
        )
    }

    fn event_json(facility: &str, gateway: &str, v: u64) -> String {
        format!(
            r#"{{"v":{v},"id":"01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11","facility":"{facility}","gateway":"{gateway}","source":"hh-1","seq":0,"captured_at":"2026-11-24T10:15:03.120Z","kind":"receipt","reference":null,"from":null,"to":"WH/Stock","lines":[{{"item":{{"gtin":"09506000134352"}},"lot":"A1","serial":null,"expiry":null,"qty":"5","uom":"Units"}}]}}"#
        )
    }

    #[test]
    fn events_are_refused_with_a_code_and_a_reason() {
        let (f, g) = ids();
        assert!(parse_event(event_json("north", "gw-1", 1).as_bytes(), &f, &g).is_ok());

        let r = parse_event(b"{not json", &f, &g).unwrap_err();
        assert_eq!(r.code, "invalid_json");
        let r = parse_event(b"[1,2]", &f, &g).unwrap_err();
        assert_eq!(r.code, "invalid_event");

        let r = parse_event(event_json("north", "gw-1", 2).as_bytes(), &f, &g).unwrap_err();
        assert_eq!(r.code, "unsupported_version");
        assert!(r.reason.contains("version 2"), "{}", r.reason);
        assert_eq!(
            r.event_id.unwrap().to_string(),
            "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11"
        );

        let r = parse_event(event_json("south", "gw-1", 1).as_bytes(), &f, &g).unwrap_err();
        assert_eq!(r.code, "wrong_facility");
        assert!(r.reason.contains("`south`"), "{}", r.reason);
        let r = parse_event(event_json("north", "gw-2", 1).as_bytes(), &f, &g).unwrap_err();
        assert_eq!(r.code, "wrong_gateway");
        assert!(r.reason.contains("`gw-2`"), "{}", r.reason);

        let bad = event_json("north", "gw-1", 1).replace("\"to\":\"WH/Stock\"", "\"to\":null");
        let r = parse_event(bad.as_bytes(), &f, &g).unwrap_err();
        assert_eq!(r.code, "invalid_event");
        assert!(r.reason.contains("location"), "{}", r.reason);

        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(parse_event(&big, &f, &g).unwrap_err().code, "too_large");
    }

    #[test]
    fn scan_messages_are_checked() {
        let m = parse_scan(br#"{"source":"hh-1","scan":"0109501101020917"}"#).unwrap();
        assert_eq!(m.source.as_str(), "hh-1");
        assert_eq!(m.id, None);
        let m = parse_scan(
            br#"{"source":"hh-1","scan":"x\u001dy","id":"01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11"}"#,
        )
        .unwrap();
        assert_eq!(m.scan.as_bytes(), b"x\x1dy");
        assert!(m.id.is_some());
        for bad in [
            &br#"{"source":"hh 1","scan":"x"}"#[..],
            br#"{"source":"hh-1"}"#,
            br#"{"source":"hh-1","scan":"x","extra":1}"#,
            br#"{"source":"hh-1","scan":"x","id":"not-a-uuid"}"#,
        ] {
            assert_eq!(parse_scan(bad).unwrap_err().code, "invalid_scan");
        }
        assert_eq!(parse_scan(b"{").unwrap_err().code, "invalid_json");
    }

    const CODES: [&str; 8] = [
        "too_large",
        "invalid_json",
        "unsupported_version",
        "invalid_event",
        "wrong_facility",
        "wrong_gateway",
        "invalid_scan",
        "too_many_devices",
    ];

    proptest::proptest! {
        /// Any bytes: an event of this gateway or a refusal with a known code and a reason;
        /// never a panic.
        #[test]
        fn inbound_payloads_are_parsed_or_refused_with_a_code(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let (f, g) = ids();
            match parse_event(&bytes, &f, &g) {
                Ok(e) => proptest::prop_assert_eq!(e.facility(), &f),
                Err(r) => {
                    proptest::prop_assert!(CODES.contains(&r.code));
                    proptest::prop_assert!(!r.reason.is_empty());
                }
            }
            if let Err(r) = parse_scan(&bytes) {
                proptest::prop_assert!(CODES.contains(&r.code));
            }
        }

        /// A valid event with one byte changed: still parsed or refused, never a panic.
        #[test]
        fn mutated_events_are_parsed_or_refused(at in 0usize..600, byte in proptest::num::u8::ANY) {
            let (f, g) = ids();
            let mut bytes = event_json("north", "gw-1", 1).into_bytes();
            let i = at % bytes.len();
            bytes[i] = byte;
            if let Err(r) = parse_event(&bytes, &f, &g) {
                proptest::prop_assert!(CODES.contains(&r.code), "{}", r.code);
            }
        }
    }
}
