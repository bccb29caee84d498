//! The Odoo sink (PRODUCT §5): receipts, transfers and consumption recorded in Odoo 16–19 as
//! validated pickings (or scraps), each event exactly once.
//!
//! - `transport.rs` — JSON-RPC `/jsonrpc` (16–18) and JSON-2 `/json/2` (19+, bearer API key),
//!   chosen from `common.version`; answers decoded into values or [`error::OdooError`].
//! - `error.rs` — what a failure means: retry, halt (credentials or rights refused: the sink
//!   stops, health red, until the key file changes), reject (dead letter with Odoo's message).
//! - `key.rs` — the API key file, read again when it changes.
//! - `cache.rs` — operation types, locations, products, units and lots, looked up per batch
//!   and cached, refreshed on a miss.
//! - `mapping.rs` — events → pickings/scraps, per-version fields, line reconciliation, wizards.
//! - `machine.rs` — the per-event state machine (find, create, confirm, lines, validate,
//!   verify), run for groups of events with a fallback to one event at a time.
//!
//! A delivery: log in if needed (or again when the key file changed, and every
//! [`VERSION_RECHECK`]), look up what the batch needs, plan every event, then run the
//! pickings in groups of [`GROUP`] concurrently — at most [`CONCURRENCY`] calls in flight.
//! A batch is cut before an event that moves or consumes a lot a receipt earlier in the same
//! batch brings in, so that lot is looked up after the receipt created it.

pub mod cache;
pub mod error;
pub mod key;
pub mod machine;
pub mod mapping;
pub mod transport;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tallyman_protocol::event::{Event, Kind};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use self::cache::Cache;
use self::error::OdooError;
use self::key::{KeyFile, Stamp};
use self::machine::{failed, join_all};
use self::mapping::{Consumption, Fields, ItemKey, Plan};
use self::transport::{Auth, Conn, Rpc, Session};
use super::{DeliverFuture, Outcome, ResumeFuture, Sink};

/// Most calls in flight to Odoo at once, for the whole sink.
pub const CONCURRENCY: usize = 8;
/// Events whose steps share calls (one `load`, one `button_validate` …).
pub const GROUP: usize = 25;
/// How often the server's version is read again (an upgrade changes the fields).
pub const VERSION_RECHECK: Duration = Duration::from_secs(600);
/// A halted sink tries again after this even if the key file did not change (rights may have
/// been fixed in Odoo).
pub const HALT_RECHECK: Duration = Duration::from_secs(300);
/// How often a halted sink looks at the key file (a `stat`, nothing more).
const KEY_POLL: Duration = Duration::from_millis(100);

/// The client and the CA file version it was built with.
#[derive(Debug)]
struct Client {
    rpc: Arc<Rpc>,
    ca_stamp: Option<Stamp>,
}

/// A logged-in session and when the version was read.
#[derive(Debug, Clone)]
struct LoggedIn {
    session: Session,
    fields: Fields,
    at: Instant,
}

/// The Odoo sink.
#[derive(Debug)]
pub struct OdooSink {
    name: String,
    endpoint: String,
    database: String,
    login: String,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    consumption: Consumption,
    key: KeyFile,
    /// The key file's stamp when it was last looked at: a halted sink resumes when it differs.
    key_seen: Option<Stamp>,
    client: Option<Client>,
    logged_in: Option<LoggedIn>,
    cache: Mutex<Cache>,
}

impl OdooSink {
    /// A sink for `settings`. Nothing here fails or talks to Odoo: the key file is read now so
    /// that a problem shows in the log at start; connecting waits for the first delivery.
    pub fn new(name: &str, settings: &tallyman_config::OdooSink) -> OdooSink {
        let consumption = match settings.consumption_mode {
            tallyman_config::ConsumptionMode::Picking => Consumption::Picking {
                location: settings
                    .consumption_location
                    .as_ref()
                    .map(|l| l.as_str().to_owned()),
            },
            tallyman_config::ConsumptionMode::Scrap => Consumption::Scrap,
        };
        let mut key = KeyFile::new(settings.api_key_file.clone());
        if let Err(e) = key.current() {
            warn!(sink = %name, error = %e, "The Odoo sink has no usable API key yet; events wait in the spool.");
        }
        OdooSink {
            name: name.to_owned(),
            endpoint: settings.endpoint.as_str().to_owned(),
            database: settings.database.clone(),
            login: settings.login.clone(),
            ca_file: settings.ca_file.clone(),
            timeout: settings.timeout,
            consumption,
            key,
            key_seen: None,
            client: None,
            logged_in: None,
            cache: Mutex::default(),
        }
    }

    /// The HTTP client, built again (off the async threads) when the CA file changed.
    async fn client(&mut self) -> Result<Arc<Rpc>, OdooError> {
        let ca_stamp = self.ca_file.as_deref().and_then(Stamp::now);
        if let Some(c) = &self.client {
            if c.ca_stamp == ca_stamp {
                return Ok(Arc::clone(&c.rpc));
            }
            info!(sink = %self.name, "Odoo's CA bundle changed; connecting with the new one.");
        }
        let (endpoint, database, ca, timeout) = (
            self.endpoint.clone(),
            self.database.clone(),
            self.ca_file.clone(),
            self.timeout,
        );
        let rpc = tokio::task::spawn_blocking(move || {
            Rpc::new(&endpoint, &database, ca.as_deref(), timeout, CONCURRENCY)
        })
        .await
        .map_err(|e| OdooError::Setup(format!("the set-up task failed: {e}")))??;
        let rpc = Arc::new(rpc);
        self.client = Some(Client {
            rpc: Arc::clone(&rpc),
            ca_stamp,
        });
        Ok(rpc)
    }

    /// The session to deliver with: the current one, or a new login (the key changed, the
    /// version is due to be read again, or there is none).
    async fn session(&mut self) -> Result<(Arc<Rpc>, LoggedIn), OdooError> {
        self.key_seen = Stamp::now(self.key.path());
        let (key, changed) = self.key.current().map_err(OdooError::Key)?;
        if changed {
            info!(sink = %self.name, path = %self.key.path().display(), "The API key file changed; logging in with the new key.");
            self.logged_in = None;
        }
        let rpc = self.client().await?;
        if let Some(l) = &self.logged_in {
            if l.at.elapsed() < VERSION_RECHECK && l.session.key == key {
                return Ok((rpc, l.clone()));
            }
        }
        let version = rpc.version().await?;
        if version.major < 16 {
            return Err(OdooError::Unsupported {
                endpoint: self.endpoint.clone(),
                version: version.text,
            });
        }
        let auth = if version.major >= 19 || version.saas {
            // JSON-2 came with 19 (and some saas~18 builds): ask the server rather than guess.
            if rpc.probe_json2(&key).await? {
                Auth::Json2
            } else {
                self.authenticate(&rpc, &key).await?
            }
        } else {
            self.authenticate(&rpc, &key).await?
        };
        let fields = Fields::of(version.major, version.saas);
        let same = self
            .logged_in
            .as_ref()
            .is_some_and(|l| l.session.version == version && l.session.auth == auth);
        if !same {
            info!(sink = %self.name, endpoint = %self.endpoint, version = %version.text, transport = auth.transport(), "Logged in to Odoo.");
        }
        let logged_in = LoggedIn {
            session: Session { auth, key, version },
            fields,
            at: Instant::now(),
        };
        self.logged_in = Some(logged_in.clone());
        Ok((rpc, logged_in))
    }

    async fn authenticate(&self, rpc: &Rpc, key: &str) -> Result<Auth, OdooError> {
        match rpc.authenticate(&self.login, key).await? {
            Some(uid) => Ok(Auth::JsonRpc { uid }),
            None => Err(OdooError::LoginRefused {
                login: self.login.clone(),
                database: self.database.clone(),
                key_file: self.key.path().display().to_string(),
            }),
        }
    }

    /// A halt's reason with what to do about it.
    fn explain_halt(&self, reason: String) -> String {
        format!(
            "{reason} — the Odoo user `{}` needs a valid API key in {} and Inventory / User \
             rights; the sink resumes when the key file changes (or tries again every {} min)",
            self.login,
            self.key.path().display(),
            HALT_RECHECK.as_secs() / 60
        )
    }

    async fn deliver_all(&mut self, batch: &[Event]) -> Vec<Outcome> {
        let mut outcomes = match self.session().await {
            Ok((rpc, logged_in)) => {
                let conn = Conn {
                    rpc: &rpc,
                    session: &logged_in.session,
                    fields: logged_in.fields,
                };
                let calls = rpc.calls();
                let outcomes = self.deliver_segments(&conn, batch).await;
                debug!(sink = %self.name, events = batch.len(), calls = rpc.calls().saturating_sub(calls), "Odoo delivery done.");
                outcomes
            }
            Err(e) => vec![failed(&e); batch.len()],
        };
        if outcomes.iter().any(|o| matches!(o, Outcome::Halt { .. })) {
            self.logged_in = None;
            for o in &mut outcomes {
                if let Outcome::Halt { reason } = o {
                    *reason = self.explain_halt(std::mem::take(reason));
                }
            }
        }
        outcomes
    }

    /// The batch in segments (see the module documentation); after a segment with a retry or
    /// a halt, the rest gets the same answer without being tried.
    async fn deliver_segments(&self, conn: &Conn<'_>, batch: &[Event]) -> Vec<Outcome> {
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
        let mut start = 0;
        while start < batch.len() {
            let end = segment_end(batch, start);
            let segment = batch.get(start..end).unwrap_or_default();
            let got = self.deliver_segment(conn, segment).await;
            let stop = got
                .iter()
                .find(|o| matches!(o, Outcome::Retry { .. } | Outcome::Halt { .. }))
                .cloned();
            outcomes.extend(got);
            if let Some(stop) = stop {
                outcomes.resize(batch.len(), stop);
                break;
            }
            start = end;
        }
        outcomes
    }

    async fn deliver_segment(&self, conn: &Conn<'_>, events: &[Event]) -> Vec<Outcome> {
        let refs: Vec<&Event> = events.iter().collect();
        let resolved = match cache::resolve(conn, &self.cache, &refs, &self.consumption).await {
            Ok(r) => r,
            Err(e) => return vec![failed(&e); events.len()],
        };
        let mut out: Vec<Option<Outcome>> = vec![None; events.len()];
        let mut pickings = Vec::new();
        let mut scraps = Vec::new();
        for (i, event) in events.iter().enumerate() {
            match mapping::plan(event, &resolved, &self.consumption) {
                Ok(Plan::Picking(p)) => pickings.push((i, p)),
                Ok(Plan::Scraps(s)) => scraps.push((i, s)),
                Ok(Plan::Nothing) => {
                    debug!(sink = %self.name, event_id = %event.id(), "A raw scan: nothing to record in Odoo.");
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(Outcome::Delivered);
                    }
                }
                Err(problem) => {
                    let outcome = if problem.is_setup() {
                        Outcome::Retry {
                            after: None,
                            error: problem.to_string(),
                        }
                    } else {
                        Outcome::Rejected {
                            reason: problem.to_string(),
                        }
                    };
                    if let Some(o) = out.get_mut(i) {
                        *o = Some(outcome);
                    }
                }
            }
        }
        let mut runs: Vec<machine::Run<'_>> = pickings
            .chunks(GROUP)
            .map(|group| machine::pickings(conn, group.iter().map(|(i, p)| (*i, p)).collect()))
            .collect();
        if !scraps.is_empty() {
            let items = scraps.iter().map(|(i, s)| (*i, s)).collect();
            runs.push(Box::pin(machine::scraps(conn, items)));
        }
        for (i, outcome) in join_all(runs).await.into_iter().flatten() {
            if let Some(o) = out.get_mut(i) {
                *o = Some(outcome);
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or(Outcome::Retry {
                    after: None,
                    error: "internal: no outcome for this event".into(),
                })
            })
            .collect()
    }
}

/// Where the segment starting at `start` ends: before the first transfer or consumption that
/// names a lot of an item a receipt earlier in the segment brings in.
fn segment_end(batch: &[Event], start: usize) -> usize {
    let mut received: BTreeSet<(ItemKey, String)> = BTreeSet::new();
    for (i, event) in batch.iter().enumerate().skip(start) {
        let lots = event.lines().iter().flat_map(|l| {
            let key = ItemKey::of(&l.item);
            l.lot
                .iter()
                .map(|x| x.as_str())
                .chain(l.serial.iter().map(|x| x.as_str()))
                .map(move |name| (key.clone(), name.to_owned()))
        });
        match event.kind() {
            Kind::Receipt => received.extend(lots),
            Kind::Transfer | Kind::Consumption => {
                if i > start && lots.into_iter().any(|k| received.contains(&k)) {
                    return i;
                }
            }
            Kind::Scan => {}
        }
    }
    batch.len()
}

impl Sink for OdooSink {
    fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
        Box::pin(self.deliver_all(batch))
    }

    fn resumed(&mut self) -> ResumeFuture<'_> {
        let path = self.key.path().to_owned();
        let seen = self.key_seen;
        let name = self.name.clone();
        Box::pin(async move {
            let deadline = Instant::now() + HALT_RECHECK;
            loop {
                tokio::time::sleep(KEY_POLL).await;
                if Stamp::now(&path) != seen {
                    info!(sink = %name, path = %path.display(), "The API key file changed; trying Odoo again.");
                    return;
                }
                if Instant::now() >= deadline {
                    return;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests;
