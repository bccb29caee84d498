//! Remote configuration (PRODUCT §6): central IT pushes a signed configuration on
//! `tallyman/v1/{facility}/{gateway}/config/set` or the facility-wide
//! `tallyman/v1/{facility}/all/config/set` (retained); the agent reports on its retained
//! `config/state`.
//!
//! # The pipeline
//!
//! 1. **Seen before?** A document whose digest was already decided (the one running, one
//!    rolled back or rejected, one superseded) changes nothing and publishes nothing: the
//!    broker hands the retained documents again at every connection. Nor does an empty
//!    message (the retained document cleared on the broker).
//! 2. **Verify** (`tallyman_protocol::signed`): size, outer JSON, key id among the local
//!    file's `[remote] trusted_keys`, Ed25519 over the exact payload bytes, only then the
//!    payload, its type, its target (this gateway, its facility's `all`, or everyone), its
//!    expiry (at the injected clock's now).
//! 3. **Version**: newer than the running version and than every version already attempted
//!    (applied, rejected, rolled back). Versions form one sequence per gateway, whichever topic
//!    they came on; a version, once decided on, is used up.
//! 4. **Validate in full** (`tallyman_config::parse_pushed` against the local file): no
//!    `[remote]`, no change to `[agent]` or `[spool]`, every rule of a configuration file, a
//!    configuration this agent can run, and `[mqtt]` kept (without it the gateway could not
//!    be reached again).
//! 5. **Pending**: the document is written to `pending.json` and `state.json` (atomically),
//!    and `pending` is published.
//! 6. **Apply** by difference with the running configuration ([`Supervisor::apply`]): only the
//!    parts that changed restart; the spool is untouched.
//! 7. **Commit or roll back**: once the central MQTT connection is up (a CONNACK; at once when
//!    it stayed up) within the local `[remote] rollback_after_secs`, `pending.json` becomes
//!    `current.json` and `applied` is published; otherwise the last-known-good configuration is
//!    applied back (again by difference) and `rolled_back` is published with the reason.
//!    A document arriving meanwhile waits for the outcome (the newest one is kept).
//!
//! Refusals are published as `rejected` with the reason of [`Refused`]; the running
//! configuration is unchanged.
//!
//! # Start-up ([`start`])
//!
//! The effective configuration is `current.json` (verified again with today's trust anchors,
//! validated against today's local file; its expiry is not checked again: it was valid when
//! it was applied) or, without one, the local file. A `pending.json` means the agent stopped
//! during an apply: it is discarded and `rolled_back` is published with the reason. Never a
//! mix: what runs is one whole document or the local file. Killed after the commit's rename
//! but before `applied` was recorded, the agent records and publishes `applied`.

use std::time::Duration;

use tallyman_config::{Config, PushedError};
use tallyman_protocol::event::Timestamp;
use tallyman_protocol::signed::{self, DocKind, Refused, TrustAnchor, Verified};
use tallyman_protocol::topic::Topic;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{error, info, warn};

use super::store::{StateDoc, StateFile, Status, Store, StoreError};
use crate::mqtt::{Link, QoS};
use crate::shutdown::Shutdown;
use crate::supervisor::{Received, Supervisor};

/// The name configuration documents have in diagnostics (`config:3:1 sinks[0].path: …`).
pub const DOC_NAME: &str = "config";

/// What to do with a received document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Decided before: nothing changes, nothing is published.
    Ignore,
    /// Refused: `rejected` with the reason. `version` is known when the document is signed for
    /// this gateway (it is then used up).
    Reject {
        version: Option<u64>,
        reason: Refused,
    },
    /// Valid: apply `config` as `version`.
    Apply { version: u64, config: Box<Config> },
}

/// What the decision depends on.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub local: &'a Config,
    pub anchors: &'a [TrustAnchor],
    pub running_version: Option<u64>,
    pub state: &'a StateFile,
    pub now: Timestamp,
}

/// SHA-256 of a document, in hex: how documents already decided are recognised.
pub fn digest(document: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, document);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The trust anchors of the local file (none without `[remote]`).
pub fn anchors(local: &Config) -> Vec<TrustAnchor> {
    local
        .remote
        .iter()
        .flat_map(|r| &r.trusted_keys)
        .map(|k| TrustAnchor {
            id: k.id.clone(),
            public_key: k.public_key,
        })
        .collect()
}

/// Why a pushed configuration without `[mqtt]` is refused.
pub const MQTT_REQUIRED: &str =
    "a pushed configuration must keep [mqtt]: without it the gateway cannot be reached";

/// Steps 1 to 4 of the pipeline for `document`.
pub fn decide(document: &[u8], cx: &Context<'_>) -> Decision {
    // An empty retained message is how central IT clears the retained document on the
    // broker: the running configuration stays.
    if document.is_empty() || cx.state.has_seen(&digest(document)) {
        return Decision::Ignore;
    }
    let verified = match verify(document, cx.local, cx.anchors) {
        Ok(v) => v,
        Err(reason) => {
            return Decision::Reject {
                version: None,
                reason,
            };
        }
    };
    let version = verified.version();
    let reject = |reason: Refused| Decision::Reject { version, reason };
    if let Err(r) = verified.check_expiry(cx.now) {
        return reject(r);
    }
    let version = match verified.check_version(cx.running_version, cx.state.highest_attempted) {
        Ok(Some(v)) => v,
        // A configuration always has a version (the decoder requires one).
        Ok(None) => return reject(Refused::InvalidPayload("no version".into())),
        Err(r) => return reject(r),
    };
    match validate(&verified, cx.local) {
        Ok(config) => Decision::Apply {
            version,
            config: Box::new(config),
        },
        Err(r) => reject(r),
    }
}

/// Signature, payload, type and target; not the expiry (checked by the caller, at start-up
/// not at all).
fn verify(document: &[u8], local: &Config, anchors: &[TrustAnchor]) -> Result<Verified, Refused> {
    // The expiry is checked separately (by the caller), so that a refusal for it can name the
    // version: at the epoch nothing has expired yet.
    let epoch = Timestamp::from_unix_millis(0).unwrap_or(Timestamp::MAX);
    signed::verify_for(
        document,
        anchors,
        DocKind::Config,
        &local.agent.facility,
        &local.agent.gateway,
        epoch,
    )
}

/// The configuration a verified document would run, validated in full against the local file.
fn validate(verified: &Verified, local: &Config) -> Result<Config, Refused> {
    let signed::Payload::Config { toml, .. } = &verified.payload else {
        return Err(Refused::WrongType {
            expected: DocKind::Config,
            found: DocKind::Command,
        });
    };
    let config = tallyman_config::parse_pushed(toml, DOC_NAME, local).map_err(|e| match e {
        PushedError::Remote => Refused::RemoteSection,
        PushedError::LocalSetting(c) => Refused::LocalSetting {
            key: c.key,
            local: c.local,
            pushed: c.pushed,
        },
        PushedError::Invalid(e) => {
            let lines: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
            Refused::InvalidConfig(lines.join("; "))
        }
    })?;
    crate::supervisor::check_runnable(&config).map_err(Refused::InvalidConfig)?;
    if config.mqtt.is_none() {
        return Err(Refused::InvalidConfig(MQTT_REQUIRED.into()));
    }
    Ok(config)
}

/// What start-up decided: the configuration to run and the remote configuration's state.
#[derive(Debug)]
pub struct Startup {
    pub config: Config,
    /// None: the local file.
    pub version: Option<u64>,
    /// None without `[remote]` in the local file: nothing pushed is accepted.
    pub fleet: Option<Fleet>,
    /// Things to log once logging is set up: (warning?, message).
    pub notes: Vec<(bool, String)>,
}

/// Decide what runs at start-up (see the module documentation) and set up the remote
/// configuration. Only reads and writes the fleet directory; publishes nothing yet
/// ([`Fleet::run`] does, once the connection exists). When the fleet directory cannot be
/// used, the local file runs and nothing pushed is accepted (never a crash loop).
pub fn start(local: Config, now: Timestamp) -> Startup {
    match try_start(&local, now) {
        Ok(s) => s,
        Err(e) => Startup {
            config: local,
            version: None,
            fleet: None,
            notes: vec![(
                true,
                format!(
                    "remote configuration is off: {e}; running the local file (fix the data \
                     directory's permissions and restart)"
                ),
            )],
        },
    }
}

fn try_start(local: &Config, now: Timestamp) -> Result<Startup, StoreError> {
    let local = local.clone();
    let mut notes = Vec::new();
    let Some(remote) = local.remote.clone() else {
        return Ok(Startup {
            config: local,
            version: None,
            fleet: None,
            notes,
        });
    };
    let store = Store::open(&local.agent.data_dir)?;
    let files = store.load()?;
    let mut state = files.state;
    if let Some(e) = files.state_damaged {
        notes.push((
            true,
            format!("the fleet state file could not be read ({e}); starting from an empty state"),
        ));
    }
    let anchors = anchors(&local);

    // The last-known-good document.
    let mut running: Option<(Config, u64, String)> = None;
    let mut announce = None;
    if let Some(doc) = &files.current {
        let checked = verify(doc, &local, &anchors).and_then(|v| {
            let version = v.version().unwrap_or(0);
            validate(&v, &local).map(|c| (c, version))
        });
        match checked {
            Ok((config, version)) => running = Some((config, version, digest(doc))),
            Err(reason) => {
                let version = verify(doc, &local, &anchors).ok().and_then(|v| v.version());
                let why = format!(
                    "the last-known-good configuration{} can no longer run: {reason}; running the local file",
                    version
                        .map(|v| format!(" (version {v})"))
                        .unwrap_or_default()
                );
                notes.push((true, why.clone()));
                announce = Some(StateDoc {
                    version,
                    status: Status::RolledBack,
                    reason: Some(why),
                    running_version: None,
                    at: now,
                });
            }
        }
    }
    let running_version = running.as_ref().map(|(_, v, _)| *v);
    let running_text = match running_version {
        Some(v) => format!("running version {v}"),
        None => "running the local file".to_owned(),
    };

    if let Some(doc) = &files.pending {
        let version = verify(doc, &local, &anchors).ok().and_then(|v| v.version());
        store.discard_pending()?;
        if let Some(v) = version {
            state.attempted(v);
        }
        state.remember(&digest(doc));
        let why = match version {
            Some(v) => {
                format!("the agent restarted while version {v} was being applied; {running_text}")
            }
            None => format!(
                "the agent restarted while a configuration was being applied; {running_text}"
            ),
        };
        notes.push((true, why.clone()));
        announce = Some(StateDoc {
            version,
            status: Status::RolledBack,
            reason: Some(why),
            running_version,
            at: now,
        });
    } else if let (Some(last), Some(v)) = (&state.last, running_version) {
        if last.status == Status::Pending && last.version == Some(v) {
            // Stopped after the commit's rename, before `applied` was recorded.
            notes.push((
                false,
                format!("version {v} was committed before the restart"),
            ));
            announce = Some(StateDoc {
                version: Some(v),
                status: Status::Applied,
                reason: None,
                running_version: Some(v),
                at: now,
            });
        }
    }
    if let Some((_, v, d)) = &running {
        state.attempted(*v);
        state.remember(d);
    }
    if let Some(doc) = &announce {
        state.last = Some(doc.clone());
        store.write_state(&state)?;
    }
    let (config, version) = match running {
        Some((config, version, _)) => (config, Some(version)),
        None => (local.clone(), None),
    };
    Ok(Startup {
        fleet: Some(Fleet {
            last_good: (config.clone(), version),
            local,
            anchors,
            rollback_after: remote.rollback_after,
            store,
            state,
            announce,
            queued: None,
            now: crate::clock::now,
        }),
        config,
        version,
        notes,
    })
}

/// A configuration applied and not committed yet.
#[derive(Debug)]
struct Pending {
    version: u64,
    deadline: Instant,
    link: Option<watch::Receiver<Link>>,
}

/// The remote configuration of a running agent: decides on documents, drives the supervisor,
/// keeps the fleet files and publishes `config/state`.
#[derive(Debug)]
pub struct Fleet {
    /// The local file: its trust anchors, `[agent]`, `[spool]`, rollback policy.
    local: Config,
    anchors: Vec<TrustAnchor>,
    rollback_after: Duration,
    store: Store,
    state: StateFile,
    /// What runs when a pending configuration fails: the committed document's, or the local
    /// file's (version none).
    last_good: (Config, Option<u64>),
    /// Decided at start-up, published once the connection exists.
    announce: Option<StateDoc>,
    /// A document that arrived while another was pending (the newest one).
    queued: Option<Received>,
    /// The wall clock (expiry checks and the `at` of states); injected for tests.
    now: fn() -> Timestamp,
}

impl Fleet {
    /// Use another clock (tests).
    pub fn with_clock(mut self, now: fn() -> Timestamp) -> Fleet {
        self.now = now;
        self
    }

    /// The state file as it is now.
    pub fn state(&self) -> &StateFile {
        &self.state
    }

    /// Publish what start-up decided (a discarded pending document), if anything.
    pub async fn announce(&mut self, sup: &Supervisor) {
        if let Some(doc) = self.announce.take() {
            self.publish(sup, &doc).await;
        }
    }

    /// Handle documents until `stop` fires.
    pub async fn run(
        mut self,
        sup: &mut Supervisor,
        mut docs: mpsc::Receiver<Received>,
        mut stop: Shutdown,
    ) {
        self.announce(sup).await;
        let mut pending: Option<Pending> = None;
        loop {
            if pending.is_none() {
                if let Some(doc) = self.queued.take() {
                    pending = self.receive(sup, &doc.payload).await;
                    continue;
                }
            }
            let deadline = pending.as_ref().map(|p| p.deadline);
            let link = pending.as_ref().and_then(|p| p.link.clone());
            tokio::select! {
                () = stop.wait() => break,
                doc = docs.recv() => match doc {
                    None => break,
                    Some(doc) if pending.is_some() => {
                        if !self.state.has_seen(&digest(&doc.payload)) {
                            info!(topic = %doc.topic, "A configuration arrived while another is being applied; it is handled after.");
                            self.queued = Some(doc);
                        }
                    }
                    Some(doc) => pending = self.receive(sup, &doc.payload).await,
                },
                up = wait_up(link), if pending.is_some() => {
                    if up {
                        if let Some(p) = pending.take() {
                            self.commit(sup, p.version).await;
                        }
                    } else if let Some(p) = &mut pending {
                        // The connection task is gone (closed): only the deadline can end it.
                        p.link = None;
                    }
                }
                () = sleep_until(deadline), if pending.is_some() => {
                    if let Some(p) = pending.take() {
                        self.roll_back(sup, p).await;
                    }
                }
            }
        }
    }

    /// Decide on a document; start applying it if valid. Returns the pending apply.
    async fn receive(&mut self, sup: &mut Supervisor, document: &[u8]) -> Option<Pending> {
        let running_version = sup.running().and_then(|(_, v)| v);
        let decision = decide(
            document,
            &Context {
                local: &self.local,
                anchors: &self.anchors,
                running_version,
                state: &self.state,
                now: (self.now)(),
            },
        );
        match decision {
            Decision::Ignore => {
                if document.is_empty() {
                    info!(
                        "The retained configuration was cleared on the broker; the running one stays."
                    );
                }
                None
            }
            Decision::Reject { version, reason } => {
                warn!(config_version = ?version, error = %reason, "Pushed configuration refused.");
                if let Some(v) = version {
                    self.state.attempted(v);
                }
                self.state.remember(&digest(document));
                let doc = self.state_doc(
                    version,
                    Status::Rejected,
                    Some(reason.to_string()),
                    running_version,
                );
                self.record(sup, doc).await;
                None
            }
            Decision::Apply { version, config } => {
                self.apply(sup, document, version, *config, running_version)
                    .await
            }
        }
    }

    async fn apply(
        &mut self,
        sup: &mut Supervisor,
        document: &[u8],
        version: u64,
        config: Config,
        running_version: Option<u64>,
    ) -> Option<Pending> {
        info!(config_version = version, "Applying a pushed configuration.");
        self.state.attempted(version);
        self.state.remember(&digest(document));
        if let Err(e) = self.store.write_pending(document) {
            error!(config_version = version, error = %e, "Cannot write the pending configuration; not applied.");
            let doc = self.state_doc(
                Some(version),
                Status::Rejected,
                Some(format!("the agent could not store the document: {e}")),
                running_version,
            );
            self.record(sup, doc).await;
            return None;
        }
        let doc = self.state_doc(Some(version), Status::Pending, None, running_version);
        self.record(sup, doc).await;
        let deadline = Instant::now() + self.rollback_after;
        if let Err(e) = sup.apply(&config, Some(version)).await {
            // Nothing was changed.
            warn!(config_version = version, error = %e, "The pushed configuration could not be applied.");
            self.discard();
            let doc = self.state_doc(
                Some(version),
                Status::Rejected,
                Some(e.to_string()),
                running_version,
            );
            self.record(sup, doc).await;
            return None;
        }
        Some(Pending {
            version,
            deadline,
            link: sup.link(),
        })
    }

    async fn commit(&mut self, sup: &mut Supervisor, version: u64) {
        if let Err(e) = self.store.commit() {
            // The document runs, but would not after a restart: roll back to stay truthful.
            error!(config_version = version, error = %e, "Cannot commit the configuration; rolling back.");
            let why = format!("the agent could not store the document as last-known-good: {e}");
            self.restore(sup, version, why).await;
            return;
        }
        info!(config_version = version, "Pushed configuration committed.");
        self.last_good = sup
            .running()
            .map_or_else(|| self.last_good.clone(), |(c, v)| (c.clone(), v));
        sup.release_removed_sinks();
        let doc = self.state_doc(Some(version), Status::Applied, None, Some(version));
        self.record(sup, doc).await;
    }

    async fn roll_back(&mut self, sup: &mut Supervisor, pending: Pending) {
        let error = pending.link.as_ref().and_then(|l| match &*l.borrow() {
            Link::Down { error } => error.clone(),
            Link::Up | Link::Closed => None,
        });
        let why = format!(
            "the central broker was not reachable within {} s{}",
            self.rollback_after.as_secs(),
            error.map(|e| format!(": {e}")).unwrap_or_default()
        );
        warn!(config_version = pending.version, error = %why, "Rolling back the pushed configuration.");
        self.restore(sup, pending.version, why).await;
    }

    /// Apply the last-known-good configuration back, drop the pending document, publish
    /// `rolled_back`.
    async fn restore(&mut self, sup: &mut Supervisor, version: u64, why: String) {
        let (config, good) = self.last_good.clone();
        if let Err(e) = sup.apply(&config, good).await {
            error!(error = %e, "Applying the last-known-good configuration back failed.");
        }
        sup.release_removed_sinks();
        self.discard();
        let doc = self.state_doc(Some(version), Status::RolledBack, Some(why), good);
        self.record(sup, doc).await;
    }

    fn discard(&self) {
        if let Err(e) = self.store.discard_pending() {
            // At the next start it is found and discarded then.
            error!(error = %e, "Cannot remove the pending configuration.");
        }
    }

    fn state_doc(
        &self,
        version: Option<u64>,
        status: Status,
        reason: Option<String>,
        running_version: Option<u64>,
    ) -> StateDoc {
        StateDoc {
            version,
            status,
            reason,
            running_version,
            at: (self.now)(),
        }
    }

    /// Write the state file with `doc` as the last state, then publish it.
    async fn record(&mut self, sup: &Supervisor, doc: StateDoc) {
        self.state.last = Some(doc.clone());
        if let Err(e) = self.store.write_state(&self.state) {
            error!(error = %e, "Cannot write the fleet state file.");
        }
        self.publish(sup, &doc).await;
    }

    /// Publish `doc` retained on `config/state` (queued until the connection is up).
    async fn publish(&self, sup: &Supervisor, doc: &StateDoc) {
        let Some(mqtt) = sup.mqtt() else { return };
        let topic = Topic::ConfigState {
            facility: self.local.agent.facility.clone(),
            gateway: self.local.agent.gateway.clone(),
        };
        if mqtt
            .publish(&topic, doc.to_json(), QoS::AtLeastOnce, true)
            .await
            .is_err()
        {
            warn!(topic = %topic, "The configuration state could not be published (connection closed).");
        }
    }
}

/// Resolves true once the link is up, false if it is closed or there is none (then it never
/// resolves: only the deadline ends the wait).
async fn wait_up(link: Option<watch::Receiver<Link>>) -> bool {
    let Some(mut link) = link else {
        return std::future::pending().await;
    };
    // Bound to a variable so that the borrow of `link` ends before it is dropped.
    let up = matches!(
        link.wait_for(|l| matches!(l, Link::Up | Link::Closed))
            .await
            .map(|l| *l == Link::Up),
        Ok(true)
    );
    up
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
