//! The supervisor: the agent's running parts, and how a configuration becomes them.
//!
//! Every source and every sink runs as a task of its own, keyed by name, with its own child
//! of the agent's shutdown signal ([`crate::shutdown::Shutdown::child`]), so that one part can
//! be stopped gracefully while the others keep running: a sink finishes (or, after
//! [`SHUTDOWN_GRACE`], abandons) the delivery in flight — its cursor moves only on outcomes,
//! so an abandoned delivery is handed to the next incarnation again — and a source settles
//! what it started (appends in flight finish and are answered). Besides sources and sinks:
//! the MQTT connection with its inbound router, and the health task.
//!
//! [`Supervisor::apply`] makes the running parts those of a configuration by difference with
//! the one running (see [`plan`]):
//!
//! * a source or sink whose configuration is unchanged keeps running untouched: the same
//!   task, the same spool cursor;
//! * a changed one is stopped and started again with its new configuration;
//! * a removed sink is stopped; its spool cursor and dead letters stay. It keeps holding
//!   events back until [`Supervisor::release_removed_sinks`] (a pushed configuration is
//!   committed): a rollback that brings it back finds every event it had not delivered;
//! * an added sink gets a spool cursor at the last durable event ([`Spool::add_sink`]): it
//!   receives the events stored from then on, not the backlog of the others (a sink removed
//!   earlier and added again keeps its dead letters, and starts at the end too). At start-up
//!   the spool is opened with the configuration's sinks instead, and one the store has never
//!   seen starts before the oldest stored event, as it always has (see `spool/mod.rs`).
//! * **the MQTT connection** is rebuilt when `[mqtt]` changes, when the subscriptions change
//!   (an mqtt source added or removed), or when the hub sinks need a larger in-flight window
//!   than the connection has; everything that rides on it — the mqtt source, the hub sinks,
//!   the health task — is restarted on the new one. Otherwise it stays connected, and a new
//!   configuration version is announced on the retained `status` without reconnecting;
//! * the health task is restarted when `[health]` or the configuration version changes;
//! * `[log]`: the level is applied in place (unless `RUST_LOG` is set, which always wins); the
//!   format takes effect at the next start.
//!
//! `[agent]` and `[spool]` are never changed by [`Supervisor::apply`]: they belong to the local
//! file (a pushed configuration cannot change them, see `tallyman_config::parse_pushed`), and
//! the spool is opened once, before the first apply.
//!
//! Start-up is `apply` to an empty supervisor; shutdown is [`Supervisor::stop`]: intake first
//! (sources settle what they started), then sinks until the grace deadline, the health task,
//! the MQTT connection (`offline`), and the spool is closed by the caller.
//!
//! Inbound MQTT messages go through one router task per connection (`mqtt/route.rs`):
//! `in/events` and `in/scans` to the mqtt source (over a channel that outlives restarts of the
//! source, so that a message it had not taken is taken by the next one), `config/set` to the
//! fleet configuration (acknowledged at once: the document is retained, so a document not
//! acted on comes again at the next connection), `cmd/{name}` to the signed commands task,
//! which rides on the connection like the hub sinks.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tallyman_config::{Config, Input, SinkTarget};
use tallyman_protocol::topic::{Filter, Topic};
use tokio::io::{AsyncBufRead, AsyncRead, BufReader};
use tokio::sync::{OwnedMutexGuard, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::delivery::{self, Backlog, RetryNow, SinkSettings};
use crate::fleet::commands::{self, AgentControls};
use crate::fleet::seen::SeenIds;
use crate::health::Registry;
use crate::mqtt::route::{self, Route};
use crate::mqtt::{Connection, Inbound, Link, MqttHandle};
use crate::shutdown::{Shutdown, Trigger};
use crate::sinks::{Sink, file::FileSink};
use crate::sources::Restarts;
use crate::spool::{Spool, SpoolError};
use crate::workflow::{self, Machine, Workflow};

/// How long a sink may go on delivering after it is told to stop (the agent stops, or the sink
/// is restarted or removed).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a stopping part may take beyond its grace before its task is aborted.
const ABORT_AFTER: Duration = Duration::from_secs(1);
/// `config/set` documents waiting for the fleet configuration.
pub const FLEET_QUEUE: usize = 8;

/// What changes for one kind of part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Keep,
    Start,
    Restart,
    Stop,
}

/// What [`Supervisor::apply`] does, by part: the difference between two configurations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Each source of either configuration.
    pub sources: BTreeMap<String, Change>,
    /// Each sink of either configuration.
    pub sinks: BTreeMap<String, Change>,
    /// The MQTT connection (none: neither configuration has `[mqtt]`).
    pub connection: Option<Change>,
    pub health: Option<Change>,
}

impl Plan {
    /// The names of the parts that `change` applies to, for logs and tests.
    pub fn named(&self, change: Change) -> Vec<String> {
        let sources = self
            .sources
            .iter()
            .filter(|(_, c)| **c == change)
            .map(|(n, _)| format!("source {n}"));
        let sinks = self
            .sinks
            .iter()
            .filter(|(_, c)| **c == change)
            .map(|(n, _)| format!("sink {n}"));
        let mut out: Vec<String> = sources.chain(sinks).collect();
        if self.connection == Some(change) {
            out.push("mqtt connection".into());
        }
        if self.health == Some(change) {
            out.push("health".into());
        }
        out
    }
}

/// What a connection is made of: when it differs, the connection is rebuilt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkKey {
    pub mqtt: tallyman_config::Mqtt,
    pub subscriptions: Vec<Filter>,
    /// rumqttc's in-flight window: the connection is rebuilt only when more is needed.
    pub inflight: u16,
}

/// The connection `config` needs (none without `[mqtt]`).
pub fn link_key(config: &Config) -> Option<LinkKey> {
    let mqtt = config.mqtt.clone()?;
    let (facility, gateway) = (&config.agent.facility, &config.agent.gateway);
    let mut subscriptions = Vec::new();
    if config
        .sources
        .iter()
        .any(|s| matches!(s.input, Input::Mqtt))
    {
        subscriptions.extend(crate::sources::mqtt::subscriptions(facility, gateway));
    }
    if config.remote.is_some() {
        // Configuration and commands addressed to this gateway or its whole facility.
        subscriptions.extend(
            Filter::for_agent(facility, gateway)
                .into_iter()
                .filter(|f| matches!(f, Filter::ConfigSet { .. } | Filter::Cmd { .. })),
        );
    }
    Some(LinkKey {
        mqtt,
        subscriptions,
        inflight: crate::mqtt::outgoing_inflight(config),
    })
}

/// Whether a connection made for `running` can carry `wanted`.
fn link_fits(running: &LinkKey, wanted: &LinkKey) -> bool {
    running.mqtt == wanted.mqtt
        && running.subscriptions == wanted.subscriptions
        && running.inflight >= wanted.inflight
}

/// The difference between the running configuration `old` (none: nothing runs) at version
/// `old_version` and `new` at `new_version`. `link` is the running connection's key, which
/// may differ from `old`'s (its in-flight window is only ever grown).
pub fn plan(
    old: Option<(&Config, Option<u64>)>,
    link: Option<&LinkKey>,
    new: &Config,
    new_version: Option<u64>,
) -> Plan {
    let wanted = link_key(new);
    let connection = match (link, &wanted) {
        (None, None) => None,
        (None, Some(_)) => Some(Change::Start),
        (Some(_), None) => Some(Change::Stop),
        (Some(r), Some(w)) if link_fits(r, w) => Some(Change::Keep),
        (Some(_), Some(_)) => Some(Change::Restart),
    };
    // Parts that hold the connection's handle start again with a new one.
    let relinked = matches!(connection, Some(Change::Restart | Change::Start));
    let mut p = Plan {
        connection,
        ..Plan::default()
    };
    let old_config = old.map(|(c, _)| c);
    for s in &new.sources {
        let rides = matches!(s.input, Input::Mqtt);
        let before = old_config.and_then(|c| c.sources.iter().find(|o| o.name == s.name));
        let change = match before {
            None => Change::Start,
            Some(b) if b == s && !(rides && relinked) => Change::Keep,
            Some(_) => Change::Restart,
        };
        p.sources.insert(s.name.to_string(), change);
    }
    for s in &new.sinks {
        let rides = matches!(s.target, SinkTarget::Mqtt(_));
        let before = old_config.and_then(|c| c.sinks.iter().find(|o| o.name == s.name));
        let change = match before {
            None => Change::Start,
            Some(b) if b == s && !(rides && relinked) => Change::Keep,
            Some(_) => Change::Restart,
        };
        p.sinks.insert(s.name.to_string(), change);
    }
    if let Some(old) = old_config {
        for s in &old.sources {
            p.sources.entry(s.name.to_string()).or_insert(Change::Stop);
        }
        for s in &old.sinks {
            p.sinks.entry(s.name.to_string()).or_insert(Change::Stop);
        }
    }
    p.health = Some(match old {
        None => Change::Start,
        Some((c, v)) if c.health == new.health && v == new_version && !relinked => Change::Keep,
        Some(_) => Change::Restart,
    });
    p
}

/// Source and sink types that later releases bring are refused with a clear message rather
/// than silently ignored, and so are combinations the agent cannot run.
pub fn check_runnable(config: &Config) -> Result<(), String> {
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
        return Err(format!(
            "sources `{}` and `{}`: at most one mqtt source per agent (both would read this \
             gateway's in/events and in/scans)",
            first.name, second.name
        ));
    }
    Ok(())
}

/// Why a configuration could not be applied. Nothing was changed when it is returned.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    NotRunnable(String),
    #[error("adding sink `{sink}` to the spool: {source}")]
    AddSink { sink: String, source: SpoolError },
}

/// A `config/set` document as it arrived (already acknowledged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: Topic,
    pub payload: Vec<u8>,
}

/// One running task and how to stop it.
#[derive(Debug)]
struct Part {
    /// A number given at start, unique in this supervisor: the same number means the same
    /// task.
    id: u64,
    trigger: Trigger,
    task: JoinHandle<()>,
}

/// The running connection and what belongs to it.
#[derive(Debug)]
struct LinkPart {
    id: u64,
    key: LinkKey,
    connection: Connection,
    router: JoinHandle<()>,
    /// The mqtt source's inbound messages: taken by each incarnation of the source and given
    /// back when it stops (none while one runs).
    inbox: Arc<Mutex<Option<mpsc::Receiver<Inbound>>>>,
    /// Hands `config/set` documents to the fleet configuration.
    forward: Option<JoinHandle<()>>,
    /// The signed commands task, and what it acts through.
    commands: Option<(Part, Arc<AgentControls>)>,
}

/// Which task runs each part, by start number (the same number: the same task).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parts {
    pub sources: BTreeMap<String, u64>,
    pub sinks: BTreeMap<String, u64>,
    pub connection: Option<u64>,
    pub health: Option<u64>,
}

/// Standard input, opened once and lent to each incarnation of the stdin source: a line
/// buffered and not yet framed is read by the next one (a blocking read of stdin cannot be
/// cancelled, so a fresh handle per incarnation would lose what the old one's read returns).
type SharedStdin = Arc<tokio::sync::Mutex<BufReader<tokio::io::Stdin>>>;

/// The agent's running parts.
#[derive(Debug)]
pub struct Supervisor {
    spool: Spool,
    health: Arc<Registry>,
    /// The agent's signal: every part's is a child of it.
    agent: Shutdown,
    running: Option<Config>,
    version: Option<u64>,
    sources: BTreeMap<String, Part>,
    sinks: BTreeMap<String, Part>,
    link: Option<LinkPart>,
    reporting: Option<Part>,
    stdin: Option<SharedStdin>,
    fleet: Option<mpsc::Sender<Received>>,
    /// Command ids already received (opened with the first connection that takes commands).
    seen: Option<Arc<SeenIds>>,
    /// Cuts every sink's retry backoff short (the `flush` command).
    retry_now: RetryNow,
    /// Restart signals of the sources (the `reconnect` command).
    restarts: Arc<Restarts>,
    next_id: u64,
}

impl Supervisor {
    /// A supervisor with nothing running, over an open spool. `agent` is the agent's shutdown
    /// signal.
    pub fn new(spool: Spool, health: Arc<Registry>, agent: Shutdown) -> Supervisor {
        Supervisor {
            spool,
            health,
            agent,
            running: None,
            version: None,
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            link: None,
            reporting: None,
            stdin: None,
            fleet: None,
            seen: None,
            retry_now: RetryNow::new(),
            restarts: Restarts::new(),
            next_id: 0,
        }
    }

    /// `config/set` documents go to `tx` (from the next connection on; call before the first
    /// apply).
    pub fn route_config(&mut self, tx: mpsc::Sender<Received>) {
        self.fleet = Some(tx);
    }

    /// The configuration running (none before the first apply) and its version (none: the
    /// local file).
    pub fn running(&self) -> Option<(&Config, Option<u64>)> {
        self.running.as_ref().map(|c| (c, self.version))
    }

    /// The running connection's handle.
    pub fn mqtt(&self) -> Option<MqttHandle> {
        self.link.as_ref().map(|l| l.connection.handle())
    }

    /// The running connection's state.
    pub fn link(&self) -> Option<watch::Receiver<Link>> {
        self.link.as_ref().map(|l| l.connection.link())
    }

    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Which task runs each part.
    pub fn parts(&self) -> Parts {
        Parts {
            sources: self
                .sources
                .iter()
                .map(|(n, p)| (n.clone(), p.id))
                .collect(),
            sinks: self.sinks.iter().map(|(n, p)| (n.clone(), p.id)).collect(),
            connection: self.link.as_ref().map(|l| l.id),
            health: self.reporting.as_ref().map(|p| p.id),
        }
    }

    /// Make the running parts those of `config` (at `version`, none for the local file) by
    /// difference with what runs now. On error nothing was changed.
    pub async fn apply(
        &mut self,
        config: &Config,
        version: Option<u64>,
    ) -> Result<Plan, ApplyError> {
        check_runnable(config).map_err(ApplyError::NotRunnable)?;
        let mut p = plan(
            self.running.as_ref().map(|c| (c, self.version)),
            self.link.as_ref().map(|l| &l.key),
            config,
            version,
        );
        // Cursors first: the only step that can fail, done before anything is stopped.
        let mut added = Vec::new();
        for (name, change) in &p.sinks {
            if matches!(change, Change::Start) {
                let (spool, sink) = (self.spool.clone(), name.clone());
                let added_sink = tokio::task::spawn_blocking(move || spool.add_sink(&sink))
                    .await
                    .unwrap_or_else(|e| Err(SpoolError::Failed(e.to_string())));
                match added_sink {
                    Ok((cursor, new)) => {
                        if new {
                            info!(sink = %name, seq = cursor, "New sink: it receives the events stored from now on.");
                            added.push(name.clone());
                        }
                    }
                    Err(source) => {
                        for name in added {
                            self.spool.retire_sink(&name);
                        }
                        return Err(ApplyError::AddSink {
                            sink: name.clone(),
                            source,
                        });
                    }
                }
            }
        }
        let restarting: Vec<String> = p.named(Change::Restart);
        if self.running.is_some() {
            info!(
                config_version = ?version,
                restart = %restarting.join(", "),
                start = %p.named(Change::Start).join(", "),
                stop = %p.named(Change::Stop).join(", "),
                "Applying a configuration."
            );
        }

        // Stop: intake first, then sinks, then the health task and the connection.
        let stopping = |m: &BTreeMap<String, Change>| -> Vec<String> {
            m.iter()
                .filter(|(_, c)| matches!(c, Change::Restart | Change::Stop))
                .map(|(n, _)| n.clone())
                .collect()
        };
        let sources: Vec<Part> = stopping(&p.sources)
            .iter()
            .filter_map(|n| self.sources.remove(n))
            .collect();
        stop_parts(sources, "source").await;
        for (name, change) in &p.sources {
            if *change == Change::Stop {
                self.restarts.unregister(name);
            }
        }
        if p.connection == Some(Change::Keep) && self.mqtt_inbox_lost(config, &p) {
            // The mqtt source's task ended without giving its channel back (it panicked or
            // was aborted): messages it held stay unacknowledged until a new connection, so
            // everything on the connection starts again on a new one.
            warn!("The mqtt source's inbound channel was lost; rebuilding the MQTT connection.");
            relink(&mut p, config);
        }
        let sinks: Vec<Part> = stopping(&p.sinks)
            .iter()
            .filter_map(|n| self.sinks.remove(n))
            .collect();
        stop_parts(sinks, "sink").await;
        if matches!(p.health, Some(Change::Restart | Change::Stop)) {
            stop_parts(self.reporting.take().into_iter().collect(), "health").await;
        }
        if matches!(p.connection, Some(Change::Restart | Change::Stop)) {
            if let Some(link) = self.link.take() {
                close_link(link).await;
            }
        }

        // Start: the connection, sinks, sources, health.
        if matches!(p.connection, Some(Change::Restart | Change::Start)) {
            self.start_link(config, version);
        } else if self.version != version {
            if let Some(link) = &self.link {
                // Closed: the next connection's settings carry it anyway.
                let _ = link.connection.handle().set_config_version(version).await;
                if let Some((_, controls)) = &link.commands {
                    controls.set_config_version(version);
                }
            }
        }
        if let Some(log) = self.running.as_ref().map(|c| &c.log) {
            if *log != config.log {
                crate::telemetry::set_filter(config.log.level.as_str());
                if log.format != config.log.format {
                    info!("The log format changes at the next start.");
                }
            }
        }
        for (name, change) in &p.sinks {
            if matches!(change, Change::Start | Change::Restart) {
                if let Some(sink) = config.sinks.iter().find(|s| s.name.as_str() == name) {
                    self.start_sink(config, sink);
                }
            }
        }
        for (name, change) in &p.sources {
            if matches!(change, Change::Start | Change::Restart) {
                if let Some(source) = config.sources.iter().find(|s| s.name.as_str() == name) {
                    self.start_source(config, source);
                }
            }
        }
        if matches!(p.health, Some(Change::Start | Change::Restart)) {
            self.start_health(config, version);
        }
        self.running = Some(config.clone());
        self.version = version;
        Ok(p)
    }

    /// Sinks the spool still holds events for that the running configuration no longer has:
    /// they stop holding events back (their cursors and dead letters stay). Called once a
    /// configuration is final (committed, or rolled back to).
    pub fn release_removed_sinks(&self) {
        let Some(config) = &self.running else { return };
        for s in self.spool.stats().sinks {
            if s.configured && !config.sinks.iter().any(|c| c.name.as_str() == s.name) {
                info!(sink = %s.name, "Sink removed; its cursor and dead letters are kept.");
                self.spool.retire_sink(&s.name);
            }
        }
    }

    /// Stop everything, in order, once the agent's signal has fired: sources settle what they
    /// started, sinks get until the grace deadline, then the health task and the connection
    /// (`offline`, clean disconnect). The caller closes the spool.
    pub async fn stop(mut self) {
        // Commands first, with intake: nothing new is started from now on.
        if let Some((p, _)) = self.link.as_mut().and_then(|l| l.commands.take()) {
            stop_parts(vec![p], "commands").await;
        }
        for (_, p) in std::mem::take(&mut self.sources) {
            p.trigger.fire();
            if let Err(e) = p.task.await {
                error!(error = %e, "A source task failed.");
            }
        }
        let sinks: Vec<Part> = std::mem::take(&mut self.sinks).into_values().collect();
        for p in &sinks {
            p.trigger.fire();
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE + ABORT_AFTER;
        for p in sinks {
            let abort = p.task.abort_handle();
            match tokio::time::timeout_at(deadline, p.task).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!(error = %e, "A sink task failed."),
                Err(_) => {
                    warn!("Sinks still running past the shutdown deadline; abandoning them.");
                    abort.abort();
                }
            }
        }
        if let Some(p) = self.reporting.take() {
            p.trigger.fire();
            // It stops at the trigger; a report being written is finished first.
            let _ = p.task.await;
        }
        if let Some(link) = self.link.take() {
            close_link(link).await;
        }
    }

    /// Whether an mqtt source is to start on the running connection but its channel is gone.
    fn mqtt_inbox_lost(&self, config: &Config, p: &Plan) -> bool {
        let starts_mqtt_source = config.sources.iter().any(|s| {
            matches!(s.input, Input::Mqtt)
                && matches!(
                    p.sources.get(s.name.as_str()),
                    Some(Change::Start | Change::Restart)
                )
        });
        starts_mqtt_source
            && self.link.as_ref().is_some_and(|l| {
                l.inbox
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_none()
            })
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn start_link(&mut self, config: &Config, version: Option<u64>) {
        let (Some(key), Some(mut settings)) =
            (link_key(config), crate::mqtt::Settings::from_config(config))
        else {
            return;
        };
        settings.subscriptions = key.subscriptions.clone();
        settings.config_version = version;
        // Never smaller than what runs: a connection is not rebuilt to shrink it.
        settings.outgoing_inflight = key.inflight;
        let (facility, gateway) = (&config.agent.facility, &config.agent.gateway);
        let (connection, inbound) = Connection::start(settings, Arc::clone(&self.health));
        let mut routes = Vec::new();
        let mut source_rx = None;
        if config
            .sources
            .iter()
            .any(|s| matches!(s.input, Input::Mqtt))
        {
            let (r, rx) = Route::new(crate::sources::mqtt::subscriptions(facility, gateway));
            routes.push(r);
            source_rx = Some(rx);
        }
        let mut forward = None;
        let mut commands = None;
        if config.remote.is_some() {
            if let Some(fleet) = self.fleet.clone() {
                let filters = key
                    .subscriptions
                    .iter()
                    .filter(|f| matches!(f, Filter::ConfigSet { .. }))
                    .cloned()
                    .collect();
                let (r, rx) = Route::new(filters);
                routes.push(r);
                forward = Some(tokio::spawn(forward_documents(
                    rx,
                    connection.handle(),
                    fleet,
                )));
            }
            let (r, rx) = Route::new(commands::subscriptions(facility, gateway));
            routes.push(r);
            commands = self.start_commands(config, version, &connection, rx);
        }
        let router = route::spawn(inbound, connection.handle(), routes);
        let id = self.next_id();
        self.link = Some(LinkPart {
            id,
            key,
            connection,
            router,
            inbox: Arc::new(Mutex::new(source_rx)),
            forward,
            commands,
        });
    }

    /// The signed commands task on `connection`, taking `inbound`. None (logged) when the
    /// seen command ids cannot be read: commands are then refused by not being taken.
    fn start_commands(
        &mut self,
        config: &Config,
        version: Option<u64>,
        connection: &Connection,
        inbound: mpsc::Receiver<Inbound>,
    ) -> Option<(Part, Arc<AgentControls>)> {
        let context = commands::Context::from_config(config)?;
        if self.seen.is_none() {
            match SeenIds::open(&config.agent.data_dir, crate::clock::now()) {
                Ok(seen) => self.seen = Some(Arc::new(seen)),
                Err(e) => {
                    error!(error = %e, "Cannot read the command ids already received; signed commands are not taken.");
                    return None;
                }
            }
        }
        let seen = Arc::clone(self.seen.as_ref()?);
        let controls = Arc::new(AgentControls::new(
            Arc::clone(&self.health),
            self.spool.clone(),
            crate::health::publish::Settings::from_config(config, version),
            self.retry_now.clone(),
            Arc::clone(&self.restarts),
        ));
        let (trigger, shutdown) = self.agent.child();
        let settings = commands::Settings {
            context,
            seen,
            controls: Arc::clone(&controls) as Arc<dyn commands::Controls>,
        };
        let task = tokio::spawn(commands::serve(
            inbound,
            connection.handle(),
            settings,
            shutdown,
        ));
        let id = self.next_id();
        Some((Part { id, trigger, task }, controls))
    }

    fn start_sink(&mut self, config: &Config, sink: &tallyman_config::Sink) {
        let (trigger, shutdown) = self.agent.child();
        let target: Box<dyn Sink> = match &sink.target {
            SinkTarget::File(f) => Box::new(FileSink::new(f.path.clone())),
            SinkTarget::Mqtt(m) => {
                let Some(link) = &self.link else {
                    // The configuration requires [mqtt] for an mqtt sink.
                    error!(sink = %sink.name, "An mqtt sink without an MQTT connection; not started.");
                    return;
                };
                Box::new(crate::sinks::mqtt::MqttSink::new(
                    link.connection.handle(),
                    m,
                    config.agent.facility.clone(),
                    config.agent.gateway.clone(),
                    shutdown.clone(),
                    usize::try_from(sink.batch_size).unwrap_or(1),
                ))
            }
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
            health: self
                .health
                .sink(sink.name.as_str(), crate::health::sink_kind(&sink.target)),
            retry_now: self.retry_now.clone(),
        };
        let backlog: Arc<dyn Backlog> = Arc::new(self.spool.clone());
        let task = tokio::spawn(delivery::run_sink(backlog, target, settings, shutdown));
        let id = self.next_id();
        self.sinks
            .insert(sink.name.to_string(), Part { id, trigger, task });
    }

    fn start_source(&mut self, config: &Config, source: &tallyman_config::Source) {
        let (trigger, shutdown) = self.agent.child();
        let spool = self.spool.clone();
        let task = match &source.input {
            Input::Serial(serial) => {
                let serial = serial.clone();
                let machine = machine_for(config, source);
                let health = self.health.source(source.name.as_str(), "serial");
                let restart = self.restarts.register(source.name.as_str());
                tokio::spawn(async move {
                    crate::sources::serial::run(&serial, machine, spool, health, restart, shutdown)
                        .await;
                })
            }
            Input::Stdin(stdin) => {
                let framing = crate::sources::stdin::Framing {
                    strip_prefix: stdin.strip_prefix.clone(),
                    strip_suffix: stdin.strip_suffix.clone(),
                    max_frame: stdin.max_frame_bytes,
                };
                let shared = Arc::clone(self.stdin.get_or_insert_with(|| {
                    Arc::new(tokio::sync::Mutex::new(BufReader::with_capacity(
                        64 * 1024,
                        tokio::io::stdin(),
                    )))
                }));
                let machine = machine_for(config, source);
                let health = self.health.source(source.name.as_str(), "stdin");
                tokio::spawn(async move {
                    // The previous incarnation has stopped (it is joined before this one
                    // starts), so this does not wait.
                    let input = Lent(shared.lock_owned().await);
                    crate::sources::stdin::run(
                        input,
                        tokio::io::stdout(),
                        framing,
                        machine,
                        spool,
                        health,
                        shutdown,
                    )
                    .await;
                })
            }
            Input::Mqtt => {
                use crate::sources::mqtt as mqtt_source;
                let Some(link) = &self.link else {
                    error!(source = %source.name, "An mqtt source without an MQTT connection; not started.");
                    return;
                };
                let inbox = Arc::clone(&link.inbox);
                let taken = inbox.lock().unwrap_or_else(PoisonError::into_inner).take();
                let Some(inbound) = taken else {
                    // `apply` rebuilds the connection when the channel is gone.
                    error!(source = %source.name, "The mqtt source's inbound channel is gone; not started.");
                    return;
                };
                let (config_, input_) = (config.clone(), source.clone());
                let machine_for: mqtt_source::MachineFactory = Box::new(move |device| {
                    let mut device_source = input_.clone();
                    device_source.name = device;
                    machine_for(&config_, &device_source)
                });
                let settings = mqtt_source::Settings {
                    name: source.name.clone(),
                    facility: config.agent.facility.clone(),
                    gateway: config.agent.gateway.clone(),
                    machine_for,
                };
                let handle = link.connection.handle();
                let health = self.health.source(source.name.as_str(), "mqtt");
                tokio::spawn(async move {
                    let inbound =
                        mqtt_source::run(inbound, handle, spool, settings, health, shutdown).await;
                    *inbox.lock().unwrap_or_else(PoisonError::into_inner) = Some(inbound);
                })
            }
        };
        let id = self.next_id();
        self.sources
            .insert(source.name.to_string(), Part { id, trigger, task });
    }

    fn start_health(&mut self, config: &Config, version: Option<u64>) {
        let (trigger, shutdown) = self.agent.child();
        let task = tokio::spawn(crate::health::publish::run(
            crate::health::publish::Settings::from_config(config, version),
            Arc::clone(&self.health),
            self.spool.clone(),
            self.mqtt(),
            shutdown,
        ));
        let id = self.next_id();
        self.reporting = Some(Part { id, trigger, task });
    }
}

/// Stop parts together: all are told at once, each gets [`SHUTDOWN_GRACE`] (a sink's own
/// grace for its delivery in flight) and a little more, then it is aborted.
async fn stop_parts(parts: Vec<Part>, what: &'static str) {
    for p in &parts {
        p.trigger.fire();
    }
    let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE + ABORT_AFTER;
    for p in parts {
        let abort = p.task.abort_handle();
        match tokio::time::timeout_at(deadline, p.task).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(part = what, error = %e, "A task failed while stopping."),
            Err(_) => {
                warn!(part = what, "A part did not stop in time; abandoned.");
                abort.abort();
            }
        }
    }
}

/// Stop the commands task, close a connection (`offline`, clean disconnect) and wait for its
/// router.
async fn close_link(mut link: LinkPart) {
    if let Some((p, _)) = link.commands.take() {
        stop_parts(vec![p], "commands").await;
    }
    link.connection.close().await;
    if let Some(forward) = link.forward.take() {
        // Ends with the router's queues.
        let abort = forward.abort_handle();
        if tokio::time::timeout(ABORT_AFTER, forward).await.is_err() {
            abort.abort();
        }
    }
    // The connection's inbound channel is closed now, so the router ends.
    let abort = link.router.abort_handle();
    if tokio::time::timeout(ABORT_AFTER, link.router)
        .await
        .is_err()
    {
        abort.abort();
    }
}

/// Hand `config/set` documents to the fleet configuration. Each is acknowledged at once: it is
/// retained, so a document not acted on (the agent stopped, or the queue was full) comes again
/// with the next connection.
async fn forward_documents(
    mut inbound: mpsc::Receiver<Inbound>,
    mqtt: MqttHandle,
    fleet: mpsc::Sender<Received>,
) {
    while let Some(m) = inbound.recv().await {
        mqtt.ack(m.ack).await;
        let received = Received {
            topic: m.topic,
            payload: m.payload,
        };
        if let Err(e) = fleet.try_send(received) {
            warn!(error = %e, "Configuration documents arrive faster than they are handled; one was dropped (the retained document comes again at the next connection).");
        }
    }
}

/// Make `p` restart the connection and everything riding on it.
fn relink(p: &mut Plan, config: &Config) {
    p.connection = Some(Change::Restart);
    for s in &config.sinks {
        if matches!(s.target, SinkTarget::Mqtt(_)) {
            if let Some(c) = p.sinks.get_mut(s.name.as_str()) {
                if *c == Change::Keep {
                    *c = Change::Restart;
                }
            }
        }
    }
    if p.health == Some(Change::Keep) {
        p.health = Some(Change::Restart);
    }
}

/// The shared stdin, lent to one source incarnation.
struct Lent(OwnedMutexGuard<BufReader<tokio::io::Stdin>>);

impl AsyncRead for Lent {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncBufRead for Lent {
    fn poll_fill_buf(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<&[u8]>> {
        let this = self.get_mut();
        std::pin::Pin::new(&mut *this.0).poll_fill_buf(cx)
    }

    fn consume(mut self: std::pin::Pin<&mut Self>, amt: usize) {
        std::pin::Pin::new(&mut *self.0).consume(amt);
    }
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

#[cfg(test)]
mod tests;
