//! Signed commands (PRODUCT §6): central IT publishes a signed command on
//! `tallyman/v1/{facility}/{gateway|all}/cmd/{name}`; the gateway checks it, runs it and
//! answers on its own `tallyman/v1/{facility}/{gateway}/cmd/{name}/result` (QoS 1, not
//! retained):
//!
//! ```json
//! {"id":"<command id or null>","command":"dlq-replay","ok":true,"result":{"replayed":1},"error":null,"at":"…"}
//! ```
//!
//! # Checks, in order (the first that fails is the `error`, `ok` false)
//!
//! The signature and the payload (`signed::verify_signature`: size, JSON, a key id among
//! `[remote] trusted_keys`, Ed25519) → a `tallyman-command` → for this gateway → not expired →
//! an expiry at most 24 h after issue → signed as the command of the topic → a known command
//! → valid arguments → an id never received before ([`SeenIds`], remembered durably before
//! the command runs). `id` in the result is null when the command could not be read.
//!
//! # Commands
//!
//! | name | arguments | result |
//! |---|---|---|
//! | `status` | none | the health document (`health` topic): versions, uptime, sources, sinks, spool, disk |
//! | `dlq-list` | `sink` (optional), `limit` (1 to 1000, default 100) | `{"total", "truncated", "dead_letters": [...]}` as `tallyman spool dlq list` |
//! | `dlq-replay` | `ids`: `all` or event ids separated by commas; `sink` (optional) | `{"replayed": n}` |
//! | `flush` | none | sinks waiting in retry backoff try again now; `{"sinks": [{"name", "state", "backlog"}]}` |
//! | `reconnect` | `source` | that source restarts (a serial source reopens its port); `{"source", "restarting": true}` |
//!
//! What a command acts on is behind [`Controls`], so that this module does not depend on how
//! the agent is wired; [`AgentControls`] is the running agent's.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde_json::{Value, json};
use tallyman_protocol::event::{EventId, FacilityId, GatewayId, Timestamp};
use tallyman_protocol::signed::{self, DocKind, Refused, TrustAnchor};
use tallyman_protocol::topic::{CommandName, Filter, Target, Topic};
use tokio::sync::mpsc;
use tracing::{info, warn};
use uuid::Uuid;

use super::seen::{SeenError, SeenIds};
use crate::delivery::RetryNow;
use crate::health::Registry;
use crate::health::report::{Figures, Reporter};
use crate::mqtt::{Inbound, MqttHandle, QoS};
use crate::shutdown::Shutdown;
use crate::sources::Restarts;
use crate::spool::{DeadLetter, Selection, Spool};

/// The commands a gateway runs.
pub const NAMES: &[&str] = &["status", "dlq-list", "dlq-replay", "flush", "reconnect"];
/// Dead letters listed when `limit` is not given.
pub const DLQ_LIST_DEFAULT: usize = 100;
/// Most dead letters one `dlq-list` lists.
pub const DLQ_LIST_MAX: usize = 1000;
/// Most event ids one `dlq-replay` names.
pub const DLQ_REPLAY_MAX_IDS: usize = 1000;

/// The answer on `cmd/{name}/result`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandResult {
    /// The command's id; null when the command could not be read (unsigned, bad signature …).
    pub id: Option<Uuid>,
    /// The command name of the topic.
    pub command: String,
    pub ok: bool,
    pub result: Option<Value>,
    /// Why the command was refused or failed.
    pub error: Option<String>,
    pub at: Timestamp,
}

impl CommandResult {
    pub fn to_json(&self) -> Vec<u8> {
        // Strings, a UUID, a timestamp and JSON values always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Why a command was not run, or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] Refused),
    #[error("{command}: {message}")]
    Arguments { command: String, message: String },
    #[error(transparent)]
    Seen(SeenError),
    #[error(transparent)]
    Control(#[from] ControlError),
}

/// Why the agent could not do what a command asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    #[error("unknown sink `{name}`")]
    UnknownSink { name: String },
    #[error("unknown source `{name}`")]
    UnknownSource { name: String },
    #[error("source `{name}` cannot be restarted: {why}")]
    NotRestartable { name: String, why: String },
    #[error("reading the status: {0}")]
    Status(String),
    #[error("listing the dead letters: {0}")]
    ListDeadLetters(String),
    #[error("replaying dead letters: {0}")]
    Replay(String),
    #[error("flushing: {0}")]
    Flush(String),
}

/// One sink after a flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkBacklog {
    pub name: String,
    /// The sink's state (`idle`, `delivering`, `retrying`, …).
    pub state: String,
    /// Events after the sink's cursor.
    pub backlog: u64,
}

/// What the commands act on. Calls may block (spool reads, fsync): call from a blocking
/// context.
pub trait Controls: Send + Sync {
    /// The status document.
    fn status(&self) -> Result<Value, ControlError>;
    /// Dead letters of one sink or all, by sink then seq.
    fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, ControlError>;
    /// Hand dead letters back to their sinks; how many.
    fn replay(&self, sink: Option<&str>, which: &Selection) -> Result<usize, ControlError>;
    /// Sinks waiting in retry backoff try again now; each sink's backlog.
    fn flush(&self) -> Result<Vec<SinkBacklog>, ControlError>;
    /// Restart source `source`.
    fn reconnect(&self, source: &str) -> Result<(), ControlError>;
}

/// Who this gateway is and whom it trusts.
#[derive(Debug, Clone)]
pub struct Context {
    pub facility: FacilityId,
    pub gateway: GatewayId,
    /// `[remote] trusted_keys`.
    pub anchors: Vec<TrustAnchor>,
}

impl Context {
    /// From the configuration; none without `[remote]` (commands are then not subscribed to).
    pub fn from_config(config: &tallyman_config::Config) -> Option<Context> {
        let remote = config.remote.as_ref()?;
        Some(Context {
            facility: config.agent.facility.clone(),
            gateway: config.agent.gateway.clone(),
            anchors: remote
                .trusted_keys
                .iter()
                .map(|k| TrustAnchor {
                    id: k.id.clone(),
                    public_key: k.public_key,
                })
                .collect(),
        })
    }
}

/// The filters of commands to this gateway: `…/{gateway}/cmd/+` and `…/all/cmd/+`.
pub fn subscriptions(facility: &FacilityId, gateway: &GatewayId) -> Vec<Filter> {
    Filter::for_agent(facility, gateway)
        .into_iter()
        .filter(|f| matches!(f, Filter::Cmd { .. }))
        .collect()
}

/// A command, with its arguments checked.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Status,
    DlqList {
        sink: Option<String>,
        limit: usize,
    },
    DlqReplay {
        sink: Option<String>,
        which: Selection,
    },
    Flush,
    Reconnect {
        source: String,
    },
}

/// Check the command that arrived on `cmd/{topic_name}` with `payload`, run it, and say how it
/// went. `now` is the gateway's clock. Blocking (see [`Controls`], [`SeenIds::remember`]).
pub fn handle(
    topic_name: &CommandName,
    payload: &[u8],
    ctx: &Context,
    seen: &SeenIds,
    controls: &dyn Controls,
    now: Timestamp,
) -> CommandResult {
    let mut id = None;
    let outcome = check_and_run(topic_name, payload, ctx, seen, controls, now, &mut id);
    let (ok, result, error) = match outcome {
        Ok(v) => (true, Some(v), None),
        Err(e) => (false, None, Some(e.to_string())),
    };
    CommandResult {
        id,
        command: topic_name.to_string(),
        ok,
        result,
        error,
        at: now,
    }
}

fn check_and_run(
    topic_name: &CommandName,
    payload: &[u8],
    ctx: &Context,
    seen: &SeenIds,
    controls: &dyn Controls,
    now: Timestamp,
    id: &mut Option<Uuid>,
) -> Result<Value, CommandError> {
    let v = signed::verify_signature(payload, &ctx.anchors)?;
    *id = v.command().map(|c| c.id);
    v.check_kind(DocKind::Command)?;
    v.check_target(&ctx.facility, &ctx.gateway)?;
    v.check_expiry(now)?;
    v.check_command_lifetime()?;
    v.check_command_name(topic_name)?;
    let (Some(command), Some(expires)) = (v.command(), v.expires) else {
        // A command with an expiry: checked above.
        return Err(Refused::CommandWithoutExpiry.into());
    };
    if !NAMES.contains(&command.name.as_str()) {
        return Err(Refused::UnknownCommand {
            name: command.name.to_string(),
        }
        .into());
    }
    let request = parse_request(command)?;
    seen.remember(command.id, v.issued, expires, now)
        .map_err(CommandError::Seen)?;
    info!(command = %command.name, command_id = %command.id, key_id = %v.key_id, "Running a signed command.");
    run(&request, controls)
}

fn parse_request(command: &signed::Command) -> Result<Request, CommandError> {
    let name = command.name.as_str();
    let bad = |message: String| CommandError::Arguments {
        command: name.to_owned(),
        message,
    };
    let allowed: &[&str] = match name {
        "dlq-list" => &["sink", "limit"],
        "dlq-replay" => &["sink", "ids"],
        "reconnect" => &["source"],
        _ => &[],
    };
    if let Some(other) = command.args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(if allowed.is_empty() {
            format!("unknown argument `{other}`; this command takes none")
        } else {
            format!(
                "unknown argument `{other}`; this command takes {}",
                allowed.join(", ")
            )
        }));
    }
    let arg = |k: &str| command.args.get(k).cloned();
    Ok(match name {
        "status" => Request::Status,
        "flush" => Request::Flush,
        "dlq-list" => {
            let limit = match arg("limit") {
                None => DLQ_LIST_DEFAULT,
                Some(l) => l
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=DLQ_LIST_MAX).contains(n))
                    .ok_or_else(|| {
                        bad(format!(
                            "`limit` is a number from 1 to {DLQ_LIST_MAX}, found `{l}`"
                        ))
                    })?,
            };
            Request::DlqList {
                sink: arg("sink"),
                limit,
            }
        }
        "dlq-replay" => {
            let ids = arg("ids").ok_or_else(|| {
                bad("`ids` is required: `all`, or event ids separated by commas".into())
            })?;
            let which = if ids.trim() == "all" {
                Selection::All
            } else {
                let parsed = ids
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| EventId::parse(s).map_err(|e| bad(format!("`ids`: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                if parsed.is_empty() {
                    return Err(bad(
                        "`ids` is `all` or event ids separated by commas; found none".into(),
                    ));
                }
                if parsed.len() > DLQ_REPLAY_MAX_IDS {
                    return Err(bad(format!(
                        "`ids` names at most {DLQ_REPLAY_MAX_IDS} events; use `all`"
                    )));
                }
                Selection::Ids(parsed)
            };
            Request::DlqReplay {
                sink: arg("sink"),
                which,
            }
        }
        "reconnect" => Request::Reconnect {
            source: arg("source").ok_or_else(|| bad("`source` is required".into()))?,
        },
        other => {
            return Err(Refused::UnknownCommand {
                name: other.to_owned(),
            }
            .into());
        }
    })
}

fn run(request: &Request, controls: &dyn Controls) -> Result<Value, CommandError> {
    Ok(match request {
        Request::Status => controls.status()?,
        Request::DlqList { sink, limit } => {
            let all = controls.dead_letters(sink.as_deref())?;
            let total = all.len();
            let shown: Vec<&DeadLetter> = all.iter().take(*limit).collect();
            json!({
                "total": total,
                "truncated": total > shown.len(),
                "dead_letters": shown,
            })
        }
        Request::DlqReplay { sink, which } => {
            json!({ "replayed": controls.replay(sink.as_deref(), which)? })
        }
        Request::Flush => json!({ "sinks": controls.flush()? }),
        Request::Reconnect { source } => {
            controls.reconnect(source)?;
            json!({ "source": source, "restarting": true })
        }
    })
}

/// The running agent's [`Controls`]: its health registry, spool, retry signal and source
/// restart signals.
#[derive(Debug)]
pub struct AgentControls {
    registry: Arc<Registry>,
    spool: Spool,
    health: crate::health::publish::Settings,
    retry_now: RetryNow,
    restarts: Arc<Restarts>,
    config_version: Mutex<Option<u64>>,
}

impl AgentControls {
    /// `health` gives the status document's identity and data directory.
    pub fn new(
        registry: Arc<Registry>,
        spool: Spool,
        health: crate::health::publish::Settings,
        retry_now: RetryNow,
        restarts: Arc<Restarts>,
    ) -> AgentControls {
        let config_version = Mutex::new(health.identity.config_version);
        AgentControls {
            registry,
            spool,
            health,
            retry_now,
            restarts,
            config_version,
        }
    }

    /// The running configuration's version changed (reported by `status`).
    pub fn set_config_version(&self, version: Option<u64>) {
        *self
            .config_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = version;
    }

    fn check_sink(&self, sink: Option<&str>) -> Result<(), ControlError> {
        match sink {
            Some(name) if !self.spool.stats().sinks.iter().any(|s| s.name == name) => {
                Err(ControlError::UnknownSink {
                    name: name.to_owned(),
                })
            }
            _ => Ok(()),
        }
    }
}

impl Controls for AgentControls {
    fn status(&self) -> Result<Value, ControlError> {
        let figures = Figures::gather(&self.registry, &self.spool, &self.health.data_dir);
        let mut identity = self.health.identity.clone();
        identity.config_version = *self
            .config_version
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let report = Reporter::new().build(&identity, figures);
        serde_json::to_value(report).map_err(|e| ControlError::Status(e.to_string()))
    }

    fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, ControlError> {
        self.check_sink(sink)?;
        self.spool
            .dlq_list(sink)
            .map_err(|e| ControlError::ListDeadLetters(e.to_string()))
    }

    fn replay(&self, sink: Option<&str>, which: &Selection) -> Result<usize, ControlError> {
        self.check_sink(sink)?;
        self.spool
            .dlq_replay(sink, which)
            .map_err(|e| ControlError::Replay(e.to_string()))
    }

    fn flush(&self) -> Result<Vec<SinkBacklog>, ControlError> {
        self.retry_now.fire();
        let states = self.registry.snapshot().sinks;
        Ok(self
            .spool
            .stats()
            .sinks
            .into_iter()
            .filter(|s| s.configured)
            .map(|s| SinkBacklog {
                state: states
                    .get(&s.name)
                    .map_or("unknown", |h| h.state.state)
                    .to_owned(),
                name: s.name,
                backlog: s.backlog,
            })
            .collect())
    }

    fn reconnect(&self, source: &str) -> Result<(), ControlError> {
        if self.restarts.request(source) {
            return Ok(());
        }
        match self.registry.snapshot().sources.get(source) {
            Some(s) => Err(ControlError::NotRestartable {
                name: source.to_owned(),
                why: format!(
                    "a {} source has no device to reopen; only serial sources restart",
                    s.kind
                ),
            }),
            None => Err(ControlError::UnknownSource {
                name: source.to_owned(),
            }),
        }
    }
}

/// What the commands task needs.
#[derive(Clone)]
pub struct Settings {
    pub context: Context,
    pub seen: Arc<SeenIds>,
    pub controls: Arc<dyn Controls>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}

/// At most one log line per this long about refused commands (the rest are counted).
const REFUSAL_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Serve the commands arriving on `inbound` (the route of [`subscriptions`]) until shutdown:
/// one at a time, each answered on `cmd/{name}/result` and then acknowledged.
pub async fn serve(
    mut inbound: mpsc::Receiver<Inbound>,
    mqtt: MqttHandle,
    settings: Settings,
    mut shutdown: Shutdown,
) {
    info!("Taking signed commands (cmd/+).");
    let mut last_log: Option<tokio::time::Instant> = None;
    let mut suppressed = 0u64;
    loop {
        let m = tokio::select! {
            m = inbound.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = shutdown.wait() => break,
        };
        let Topic::Cmd { name, target, .. } = &m.topic else {
            mqtt.ack(m.ack).await;
            continue;
        };
        let (name, all) = (name.clone(), *target == Target::All);
        let s = settings.clone();
        let topic_name = name.clone();
        let payload = m.payload;
        let answer = tokio::task::spawn_blocking(move || {
            handle(
                &topic_name,
                &payload,
                &s.context,
                &s.seen,
                &*s.controls,
                crate::clock::now(),
            )
        })
        .await;
        let result = match answer {
            Ok(r) => r,
            Err(e) => CommandResult {
                id: None,
                command: name.to_string(),
                ok: false,
                result: None,
                error: Some(format!("the command failed unexpectedly: {e}")),
                at: crate::clock::now(),
            },
        };
        if let Some(error) = &result.error {
            let now = tokio::time::Instant::now();
            if last_log.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY) {
                warn!(command = %name, facility_wide = all, error = %error, suppressed, "Signed command refused or failed.");
                last_log = Some(now);
                suppressed = 0;
            } else {
                suppressed += 1;
            }
        }
        let topic = Topic::CmdResult {
            facility: settings.context.facility.clone(),
            gateway: settings.context.gateway.clone(),
            name,
        };
        if mqtt
            .publish(&topic, result.to_json(), QoS::AtLeastOnce, false)
            .await
            .is_err()
        {
            // The connection is closing: the command stays unacknowledged.
            break;
        }
        mqtt.ack(m.ack).await;
    }
}

#[cfg(test)]
mod tests;
