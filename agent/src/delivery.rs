//! The delivery engine: one task per sink, reading the spool from that sink's own cursor.
//!
//! Contract (PRODUCT §1, §4, §5):
//! - Each sink sees events in spool order (FIFO per sink); dead letters replayed by an operator
//!   come first.
//! - Outcomes are applied in order. `Delivered` and `Rejected` (→ dead letter) advance the
//!   sink's cursor; the first `Retry` stops the batch: that event and everything after it are
//!   handed to the sink again after a backoff (exponential, with jitter, capped; a sink's
//!   `Retry-After` is honoured). The first `Pending` (still in flight at the sink) stops the
//!   batch too, and the rest is handed again at once. Nothing is ever skipped.
//! - Events whose kind is not routed to a sink are passed over (cursor moves) without calling it.
//! - A `Halt` (the destination refuses the gateway itself: credentials, rights) stops the
//!   batch like a retry, but instead of a backoff the sink is `stopped` in health (red, with
//!   the reason) until the sink says it may resume (`Sink::resumed`, e.g. its credentials file
//!   changed); then that event is handed again. A halted sink makes no attempt meanwhile.
//! - Sinks are independent: a sink that fails forever only delays itself. Intake never waits
//!   for a sink.
//! - On shutdown the engine stops taking new batches; a delivery in flight gets until the grace
//!   deadline, then it is abandoned (its events stay in the spool and come again after restart).
//! - The sink's state, counters and delivery latency (capture → delivered) are kept in its
//!   [`SinkHealth`] as outcomes are applied.
//! - A sink waiting in retry backoff tries again at once when [`RetryNow::fire`] is called (the
//!   `flush` command); the backoff itself is not reset, so a sink that fails again waits on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tallyman_protocol::event::{Event, Kind, Timestamp};
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::backoff::{self, Backoff};
use crate::health::SinkHealth;
use crate::shutdown::Shutdown;
use crate::sinks::{Outcome, Sink};

/// An event waiting for a sink.
#[derive(Debug, Clone)]
pub struct Pending {
    pub seq: u64,
    pub event: Event,
}

/// Why and how an event was given up on, for its dead letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub first_attempt_at: Timestamp,
    pub last_attempt_at: Timestamp,
}

/// A failure of the store behind the engine, as text: the engine logs it and tries again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct BacklogError(pub String);

/// What the engine needs from the spool. The spool implements it; tests use an in-memory one.
pub trait Backlog: Send + Sync + 'static {
    /// Up to `max` events for `sink`, replayed dead letters first, then in spool order after
    /// the sink's cursor.
    fn next_batch(&self, sink: &str, max: usize) -> Result<Vec<Pending>, BacklogError>;
    /// `sink` is done with these events (delivered, or not routed to it).
    fn delivered(&self, sink: &str, seqs: &[u64]) -> Result<(), BacklogError>;
    /// `sink` gave up on this event: keep it as a dead letter (durably) and move on.
    fn dead_letter(&self, sink: &str, seq: u64, rejection: Rejection) -> Result<(), BacklogError>;
    /// Changes whenever there may be new work (appends, replays).
    fn subscribe(&self) -> watch::Receiver<u64>;
}

/// How one sink is driven.
#[derive(Debug, Clone)]
pub struct SinkSettings {
    pub name: String,
    /// Kinds routed to this sink.
    pub kinds: Vec<Kind>,
    pub batch_size: usize,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    /// How long a delivery in flight may go on after shutdown was triggered.
    pub shutdown_grace: Duration,
    /// Where the sink's state and counters are reported.
    pub health: Arc<SinkHealth>,
    /// Cuts a retry backoff short (shared by all sinks).
    pub retry_now: RetryNow,
}

/// Tells every sink waiting in retry backoff to try again now. Cheap to clone; all clones are
/// one signal. A sink that is not waiting when it fires is not affected.
#[derive(Debug, Clone)]
pub struct RetryNow(Arc<watch::Sender<u64>>);

impl Default for RetryNow {
    fn default() -> RetryNow {
        RetryNow(Arc::new(watch::channel(0).0))
    }
}

impl RetryNow {
    pub fn new() -> RetryNow {
        RetryNow::default()
    }

    /// Wake every sink waiting in retry backoff.
    pub fn fire(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

/// Per-event attempt bookkeeping, for dead letters.
#[derive(Debug, Clone)]
struct Attempts {
    count: u32,
    first: Timestamp,
    last_error: Option<String>,
}

/// Drive one sink until shutdown.
pub async fn run_sink(
    backlog: Arc<dyn Backlog>,
    mut sink: Box<dyn Sink>,
    settings: SinkSettings,
    mut shutdown: Shutdown,
) {
    let name = settings.name.clone();
    let mut backoff = Backoff::new(settings.retry_initial, settings.retry_max, backoff::seed());
    let mut attempts: HashMap<u64, Attempts> = HashMap::new();
    let mut changes = backlog.subscribe();
    let mut retry_now = settings.retry_now.subscribe();
    let health = Arc::clone(&settings.health);
    info!(sink = %name, "Sink started.");
    loop {
        if shutdown.is_triggered() {
            break;
        }
        changes.mark_unchanged();
        let batch = match backlog.next_batch(&name, settings.batch_size.max(1)) {
            Ok(b) => b,
            Err(e) => {
                warn!(sink = %name, error = %e, "Reading the spool failed; will retry.");
                health.retrying(&format!("reading the spool: {e}"));
                if pause(backoff.next(None), &mut shutdown).await {
                    break;
                }
                continue;
            }
        };
        if batch.is_empty() {
            health.idle();
            tokio::select! {
                _ = changes.changed() => {}
                _ = shutdown.wait() => break,
            }
            continue;
        }

        // Pass over what is not routed here, keeping order: only a prefix can be passed over
        // before the first routed event.
        let routed_from = batch
            .iter()
            .position(|p| settings.kinds.contains(&p.event.kind()))
            .unwrap_or(batch.len());
        if routed_from > 0 {
            let skipped: Vec<u64> = batch.iter().take(routed_from).map(|p| p.seq).collect();
            if let Err(e) = backlog.delivered(&name, &skipped) {
                warn!(sink = %name, error = %e, "Moving the cursor failed; will retry.");
                if pause(backoff.next(None), &mut shutdown).await {
                    break;
                }
            }
            continue;
        }
        let routed_len = batch
            .iter()
            .position(|p| !settings.kinds.contains(&p.event.kind()))
            .unwrap_or(batch.len());
        let batch: Vec<Pending> = batch.into_iter().take(routed_len).collect();
        let events: Vec<Event> = batch.iter().map(|p| p.event.clone()).collect();

        health.delivering();
        let outcomes = {
            let delivery = sink.deliver(&events);
            tokio::pin!(delivery);
            tokio::select! {
                out = &mut delivery => out,
                _ = shutdown.wait() => {
                    match tokio::time::timeout(settings.shutdown_grace, &mut delivery).await {
                        Ok(out) => out,
                        Err(_) => {
                            warn!(sink = %name, events = events.len(), "Delivery still in flight at the shutdown deadline; abandoned, the events stay in the spool.");
                            break;
                        }
                    }
                }
            }
        };

        let now = crate::clock::now();
        let mut done: Vec<u64> = Vec::new();
        let mut captured: Vec<Timestamp> = Vec::new();
        let mut retry: Option<(Option<Duration>, String)> = None;
        let mut halt: Option<String> = None;
        for (i, pending) in batch.iter().enumerate() {
            let outcome = outcomes.get(i).cloned().unwrap_or_else(|| Outcome::Retry {
                after: None,
                error: "the sink returned no outcome for this event".into(),
            });
            let id = pending.event.id();
            match outcome {
                Outcome::Delivered => {
                    debug!(sink = %name, event_id = %id, "Delivered.");
                    attempts.remove(&pending.seq);
                    done.push(pending.seq);
                    captured.push(pending.event.captured_at());
                }
                Outcome::Rejected { reason } => {
                    if let Err(e) = flush_done(&*backlog, &name, &mut done) {
                        warn!(sink = %name, error = %e, "Moving the cursor failed; will retry.");
                        retry = Some((None, e.0));
                        break;
                    }
                    let a = attempts.remove(&pending.seq);
                    let rejection = Rejection {
                        reason: reason.clone(),
                        attempts: a.as_ref().map_or(1, |a| a.count.saturating_add(1)),
                        last_error: a.as_ref().and_then(|a| a.last_error.clone()),
                        first_attempt_at: a.map_or(now, |a| a.first),
                        last_attempt_at: now,
                    };
                    let store = Arc::clone(&backlog);
                    let sink_name = name.clone();
                    let seq = pending.seq;
                    let stored = tokio::task::spawn_blocking(move || {
                        store.dead_letter(&sink_name, seq, rejection)
                    })
                    .await;
                    match stored {
                        Ok(Ok(())) => {
                            health.dead_lettered();
                            warn!(sink = %name, event_id = %id, reason = %reason, "Event refused by the sink; kept as a dead letter.");
                        }
                        Ok(Err(e)) => {
                            warn!(sink = %name, event_id = %id, error = %e, "Storing a dead letter failed; will retry.");
                            retry = Some((None, e.0));
                            break;
                        }
                        Err(e) => {
                            retry = Some((None, format!("dead-letter task failed: {e}")));
                            break;
                        }
                    }
                }
                Outcome::Pending if i > 0 => break,
                Outcome::Pending => {
                    retry = Some((None, "the sink settled nothing of the batch".into()));
                    break;
                }
                Outcome::Retry { after, error } => {
                    let a = attempts.entry(pending.seq).or_insert(Attempts {
                        count: 0,
                        first: now,
                        last_error: None,
                    });
                    a.count = a.count.saturating_add(1);
                    a.last_error = Some(error.clone());
                    retry = Some((after, error));
                    break;
                }
                Outcome::Halt { reason } => {
                    halt = Some(reason);
                    break;
                }
            }
        }
        if let Err(e) = flush_done(&*backlog, &name, &mut done) {
            warn!(sink = %name, error = %e, "Moving the cursor failed; will retry.");
            retry = retry.or(Some((None, e.0)));
        }
        health.delivered(&captured, now);
        if let (Some(reason), None) = (&halt, &retry) {
            health.halted(reason);
            warn!(sink = %name, error = %reason, "Sink stopped until its credentials or rights are fixed.");
            tokio::select! {
                _ = sink.resumed() => {}
                _ = shutdown.wait() => break,
            }
            info!(sink = %name, "Sink resuming.");
            backoff.reset();
            continue;
        }
        match retry {
            None => {
                backoff.reset();
                health.succeeded();
            }
            Some((after, error)) => {
                health.retrying(&error);
                let wait = backoff.next(after);
                warn!(sink = %name, attempt = backoff.failures(), error = %error, wait_ms = wait.as_millis() as u64, "Delivery failed; will retry.");
                if backoff_pause(wait, &mut shutdown, &mut retry_now).await {
                    break;
                }
            }
        }
    }
    health.stopped();
    info!(sink = %name, "Sink stopped.");
}

fn flush_done(backlog: &dyn Backlog, sink: &str, done: &mut Vec<u64>) -> Result<(), BacklogError> {
    if done.is_empty() {
        return Ok(());
    }
    backlog.delivered(sink, done)?;
    done.clear();
    Ok(())
}

/// Wait `d`, or until shutdown. True if shutdown came first.
async fn pause(d: Duration, shutdown: &mut Shutdown) -> bool {
    let until = Instant::now() + d;
    tokio::select! {
        _ = tokio::time::sleep_until(until) => false,
        _ = shutdown.wait() => true,
    }
}

/// Wait `d` after a failed delivery, or until told to retry now, or until shutdown. True if
/// shutdown came first.
async fn backoff_pause(
    d: Duration,
    shutdown: &mut Shutdown,
    retry_now: &mut watch::Receiver<u64>,
) -> bool {
    // Only a signal given while waiting counts.
    retry_now.mark_unchanged();
    let until = Instant::now() + d;
    tokio::select! {
        _ = tokio::time::sleep_until(until) => false,
        changed = retry_now.changed() => {
            if changed.is_ok() {
                info!("Retrying now, as asked (flush).");
                false
            } else {
                // The signal's owner is gone: wait the backoff out.
                pause(until.saturating_duration_since(Instant::now()), shutdown).await
            }
        }
        _ = shutdown.wait() => true,
    }
}

/// The spool is the production backlog.
impl Backlog for crate::spool::Spool {
    fn next_batch(&self, sink: &str, max: usize) -> Result<Vec<Pending>, BacklogError> {
        crate::spool::Spool::next_batch(self, sink, max)
            .map(|b| {
                b.into_iter()
                    .map(|s| Pending {
                        seq: s.seq,
                        event: s.event,
                    })
                    .collect()
            })
            .map_err(|e| BacklogError(e.to_string()))
    }

    fn delivered(&self, sink: &str, seqs: &[u64]) -> Result<(), BacklogError> {
        crate::spool::Spool::delivered(self, sink, seqs).map_err(|e| BacklogError(e.to_string()))
    }

    fn dead_letter(&self, sink: &str, seq: u64, r: Rejection) -> Result<(), BacklogError> {
        let info = crate::spool::DeadLetterInfo {
            reason: r.reason,
            attempts: r.attempts,
            last_error: r.last_error,
            first_attempt_at: r.first_attempt_at,
            last_attempt_at: r.last_attempt_at,
        };
        crate::spool::Spool::dead_letter(self, sink, seq, info)
            .map_err(|e| BacklogError(e.to_string()))
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        crate::spool::Spool::subscribe(self)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use tallyman_protocol::event::{
        FacilityId, GatewayId, Header, Item, Line, Location, Quantity, SourceName, Uom,
    };

    use super::*;
    use crate::sinks::DeliverFuture;

    /// An in-memory spool: per-sink cursors over one list, dead letters, a change counter.
    struct MemBacklog {
        events: Vec<Pending>,
        state: Mutex<MemState>,
        tx: watch::Sender<u64>,
    }

    #[derive(Default)]
    struct MemState {
        cursor: HashMap<String, usize>,
        dead: Vec<(String, u64, Rejection)>,
        delivered: HashMap<String, Vec<u64>>,
    }

    impl MemBacklog {
        fn new(n: u64, kinds: impl Fn(u64) -> Kind) -> Arc<MemBacklog> {
            let events = (1..=n)
                .map(|seq| Pending {
                    seq,
                    event: event(seq, kinds(seq)),
                })
                .collect();
            Arc::new(MemBacklog {
                events,
                state: Mutex::default(),
                tx: watch::channel(0).0,
            })
        }

        fn delivered_to(&self, sink: &str) -> Vec<u64> {
            self.state
                .lock()
                .unwrap()
                .delivered
                .get(sink)
                .cloned()
                .unwrap_or_default()
        }

        fn dead(&self) -> Vec<(String, u64, Rejection)> {
            self.state.lock().unwrap().dead.clone()
        }
    }

    impl Backlog for MemBacklog {
        fn next_batch(&self, sink: &str, max: usize) -> Result<Vec<Pending>, BacklogError> {
            let st = self.state.lock().unwrap();
            let from = st.cursor.get(sink).copied().unwrap_or(0);
            Ok(self.events.iter().skip(from).take(max).cloned().collect())
        }

        fn delivered(&self, sink: &str, seqs: &[u64]) -> Result<(), BacklogError> {
            let mut st = self.state.lock().unwrap();
            let c = st.cursor.entry(sink.to_string()).or_default();
            for &s in seqs {
                assert_eq!(self.events[*c].seq, s, "cursor moves in order");
                *c += 1;
            }
            st.delivered
                .entry(sink.to_string())
                .or_default()
                .extend_from_slice(seqs);
            Ok(())
        }

        fn dead_letter(&self, sink: &str, seq: u64, r: Rejection) -> Result<(), BacklogError> {
            let mut st = self.state.lock().unwrap();
            let c = st.cursor.entry(sink.to_string()).or_default();
            assert_eq!(self.events[*c].seq, seq, "dead letters keep the order");
            *c += 1;
            st.dead.push((sink.to_string(), seq, r));
            Ok(())
        }

        fn subscribe(&self) -> watch::Receiver<u64> {
            self.tx.subscribe()
        }
    }

    fn event(seq: u64, kind: Kind) -> Event {
        let header = Header {
            id: crate::clock::new_event_id(crate::clock::now()),
            facility: FacilityId::new("north").unwrap(),
            gateway: GatewayId::new("gw-1").unwrap(),
            source: SourceName::new("dock-1").unwrap(),
            seq,
            captured_at: crate::clock::now(),
        };
        let line = Line::new(
            Item::Code(tallyman_protocol::event::ItemCode::new("GLOVE-M").unwrap()),
            Quantity::new("1").unwrap(),
            Uom::new("Units").unwrap(),
        );
        let loc = Location::new("WH/Stock").unwrap();
        match kind {
            Kind::Consumption => Event::consumption(header, loc, vec![line]).unwrap(),
            _ => Event::receipt(header, loc, vec![line]).unwrap(),
        }
    }

    /// A sink that answers from a script (then `Delivered`), recording when it was called.
    struct Scripted {
        script: Arc<Mutex<VecDeque<Outcome>>>,
        calls: Calls,
        fail_forever: bool,
    }

    impl Sink for Scripted {
        fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), batch.iter().map(|e| e.seq()).collect()));
            let mut script = self.script.lock().unwrap();
            let out = batch
                .iter()
                .map(|_| {
                    if self.fail_forever {
                        Outcome::Retry {
                            after: None,
                            error: "down".into(),
                        }
                    } else {
                        script.pop_front().unwrap_or(Outcome::Delivered)
                    }
                })
                .collect();
            Box::pin(async move { out })
        }
    }

    fn settings(name: &str, batch: usize) -> SinkSettings {
        SinkSettings {
            name: name.into(),
            kinds: vec![Kind::Receipt, Kind::Transfer, Kind::Consumption, Kind::Scan],
            batch_size: batch,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(8),
            shutdown_grace: Duration::from_secs(1),
            health: crate::health::Registry::new().sink(name, "test"),
            retry_now: RetryNow::new(),
        }
    }

    type Calls = Arc<Mutex<Vec<(Instant, Vec<u64>)>>>;

    fn scripted(outcomes: Vec<Outcome>, fail_forever: bool) -> (Box<Scripted>, Calls) {
        let calls: Calls = Arc::default();
        let sink = Scripted {
            script: Arc::new(Mutex::new(outcomes.into())),
            calls: Arc::clone(&calls),
            fail_forever,
        };
        (Box::new(sink), calls)
    }

    /// Poll `cond` on the paused clock until it holds (the clock advances only when every task
    /// is idle, so this is a deadline in virtual time, not a sleep).
    async fn until(cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(3600);
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "condition not reached in virtual time"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_with_growing_backoff() {
        let backlog = MemBacklog::new(1, |_| Kind::Receipt);
        let retry = || Outcome::Retry {
            after: None,
            error: "503".into(),
        };
        let (sink, calls) = scripted(vec![retry(), retry(), retry(), retry()], false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run_sink(
            backlog.clone(),
            sink,
            settings("hub", 10),
            shutdown,
        ));
        until(|| backlog.delivered_to("hub") == vec![1]).await;
        trigger.fire();
        task.await.unwrap();

        let calls = calls.lock().unwrap();
        assert_eq!(calls.len(), 5, "four failures, then the delivery");
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
        // Attempt n waits between half and all of 500 ms × 2^(n-1).
        for (n, gap) in gaps.iter().enumerate() {
            let base = Duration::from_millis(500) * (1 << n);
            assert!(
                *gap >= base / 2 && *gap <= base,
                "gap {n} = {gap:?}, base {base:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pending_events_are_handed_again_at_once_and_a_first_pending_is_a_retry() {
        let backlog = MemBacklog::new(6, |_| Kind::Receipt);
        // Batch 1..=4: two settled, two still in flight. Batch 3..=6: the first is pending
        // (a sink settling nothing must not make the engine spin), then all delivered.
        let script = vec![
            Outcome::Delivered,
            Outcome::Delivered,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
            Outcome::Pending,
        ];
        let (sink, calls) = scripted(script, false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run_sink(
            backlog.clone(),
            sink,
            settings("hub", 4),
            shutdown,
        ));
        until(|| backlog.delivered_to("hub") == vec![1, 2, 3, 4, 5, 6]).await;
        trigger.fire();
        task.await.unwrap();

        let calls = calls.lock().unwrap();
        let batches: Vec<&Vec<u64>> = calls.iter().map(|c| &c.1).collect();
        assert_eq!(
            batches,
            [&vec![1, 2, 3, 4], &vec![3, 4, 5, 6], &vec![3, 4, 5, 6]]
        );
        assert_eq!(
            calls[1].0, calls[0].0,
            "a pending suffix is handed again at once"
        );
        let gap = calls[2].0 - calls[1].0;
        assert!(
            gap >= Duration::from_millis(250),
            "a first pending waits like a retry ({gap:?})"
        );
        assert!(backlog.dead().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_from_the_sink_is_honoured_and_the_cap_holds() {
        let backlog = MemBacklog::new(1, |_| Kind::Receipt);
        let mut script = vec![Outcome::Retry {
            after: Some(Duration::from_secs(42)),
            error: "429".into(),
        }];
        script.extend((0..8).map(|_| Outcome::Retry {
            after: None,
            error: "down".into(),
        }));
        let (sink, calls) = scripted(script, false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run_sink(
            backlog.clone(),
            sink,
            settings("hub", 10),
            shutdown,
        ));
        until(|| backlog.delivered_to("hub") == vec![1]).await;
        trigger.fire();
        task.await.unwrap();
        let calls = calls.lock().unwrap();
        let gaps: Vec<Duration> = calls.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert_eq!(gaps[0], Duration::from_secs(42));
        assert!(
            gaps.iter().skip(1).all(|g| *g <= Duration::from_secs(8)),
            "{gaps:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_events_become_dead_letters_and_order_holds() {
        let backlog = MemBacklog::new(6, |_| Kind::Receipt);
        // The sink answers for every event it is handed; the engine uses the answers up to the
        // first retry and hands the rest again.
        let script = vec![
            Outcome::Delivered,
            Outcome::Rejected {
                reason: "unknown product".into(),
            },
            Outcome::Retry {
                after: None,
                error: "timeout".into(),
            },
            Outcome::Delivered,
            Outcome::Delivered,
            Outcome::Delivered,
            // The retry hands 3..=6 again:
            Outcome::Rejected {
                reason: "lot expired".into(),
            },
        ];
        let (sink, calls) = scripted(script, false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run_sink(
            backlog.clone(),
            sink,
            settings("odoo", 10),
            shutdown,
        ));
        until(|| backlog.delivered_to("odoo").len() == 4).await;
        trigger.fire();
        task.await.unwrap();

        assert_eq!(backlog.delivered_to("odoo"), vec![1, 4, 5, 6]);
        let dead = backlog.dead();
        assert_eq!(dead.len(), 2);
        assert_eq!(
            (dead[0].1, dead[0].2.reason.as_str(), dead[0].2.attempts),
            (2, "unknown product", 1)
        );
        assert_eq!(
            (dead[1].1, dead[1].2.reason.as_str(), dead[1].2.attempts),
            (3, "lot expired", 2)
        );
        assert_eq!(dead[1].2.last_error.as_deref(), Some("timeout"));
        let batches: Vec<Vec<u64>> = calls.lock().unwrap().iter().map(|c| c.1.clone()).collect();
        assert_eq!(batches, vec![vec![1, 2, 3, 4, 5, 6], vec![3, 4, 5, 6]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_sink_failing_forever_does_not_hold_back_another() {
        let backlog = MemBacklog::new(500, |_| Kind::Receipt);
        let (bad, bad_calls) = scripted(vec![], true);
        let (good, _) = scripted(vec![], false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let t1 = tokio::spawn(run_sink(
            backlog.clone(),
            bad,
            settings("broken", 100),
            shutdown.clone(),
        ));
        let t2 = tokio::spawn(run_sink(
            backlog.clone(),
            good,
            settings("file", 100),
            shutdown,
        ));
        let start = Instant::now();
        until(|| backlog.delivered_to("file").len() == 500).await;
        // The good sink was done before the broken one's first backoff (500 ms) ran out: it
        // never waited for it.
        assert!(Instant::now() - start < Duration::from_millis(250));
        assert!(backlog.delivered_to("broken").is_empty());
        until(|| bad_calls.lock().unwrap().len() >= 5).await;
        trigger.fire();
        t1.await.unwrap();
        t2.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn events_not_routed_to_a_sink_are_passed_over_without_calling_it() {
        let backlog = MemBacklog::new(6, |s| {
            if s % 2 == 0 {
                Kind::Consumption
            } else {
                Kind::Receipt
            }
        });
        let (sink, calls) = scripted(vec![], false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let mut s = settings("receipts-only", 10);
        s.kinds = vec![Kind::Receipt];
        let task = tokio::spawn(run_sink(backlog.clone(), sink, s, shutdown));
        until(|| backlog.delivered_to("receipts-only").len() == 6).await;
        trigger.fire();
        task.await.unwrap();
        let seen: Vec<u64> = calls
            .lock()
            .unwrap()
            .iter()
            .flat_map(|c| c.1.clone())
            .collect();
        assert_eq!(seen, vec![1, 3, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn health_follows_the_outcomes() {
        let backlog = MemBacklog::new(3, |_| Kind::Receipt);
        let script = vec![
            Outcome::Delivered,
            Outcome::Rejected {
                reason: "unknown product".into(),
            },
            Outcome::Retry {
                after: None,
                error: "503".into(),
            },
        ];
        let (sink, _) = scripted(script, false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let s = settings("hub", 10);
        let health = Arc::clone(&s.health);
        let task = tokio::spawn(run_sink(backlog.clone(), sink, s, shutdown));
        until(|| health.snapshot().state.state == "retrying").await;
        until(|| health.snapshot().state.state == "idle").await;
        let snap = health.snapshot();
        assert_eq!(backlog.delivered_to("hub"), vec![1, 3]);
        assert_eq!(
            (snap.delivered, snap.dead_lettered, snap.retries),
            (2, 1, 1)
        );
        assert_eq!(snap.consecutive_failures, 0);
        assert_eq!(snap.state.last_error.as_deref(), Some("503"));
        assert_eq!(snap.latency.count(), 2);
        assert!(snap.last_delivered_at.is_some());
        trigger.fire();
        task.await.unwrap();
        assert_eq!(health.snapshot().state.state, "stopped");
    }

    /// A sink refused as a whole until `resume` is notified, then delivering.
    struct Halting {
        halted: Arc<std::sync::atomic::AtomicBool>,
        resume: Arc<tokio::sync::Notify>,
        calls: Calls,
    }

    impl Sink for Halting {
        fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
            self.calls
                .lock()
                .unwrap()
                .push((Instant::now(), batch.iter().map(|e| e.seq()).collect()));
            let halted = self.halted.load(std::sync::atomic::Ordering::SeqCst);
            let out = batch
                .iter()
                .enumerate()
                .map(|(i, _)| match (halted, i) {
                    (false, _) => Outcome::Delivered,
                    // The first event goes through, the second finds the key revoked.
                    (true, 0) => Outcome::Delivered,
                    (true, _) => Outcome::Halt {
                        reason: "Access Denied".into(),
                    },
                })
                .collect();
            Box::pin(async move { out })
        }

        fn resumed(&mut self) -> crate::sinks::ResumeFuture<'_> {
            let resume = Arc::clone(&self.resume);
            Box::pin(async move { resume.notified().await })
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_halted_sink_stops_red_without_retrying_until_it_may_resume() {
        let backlog = MemBacklog::new(4, |_| Kind::Receipt);
        let halted = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let resume = Arc::new(tokio::sync::Notify::new());
        let calls: Calls = Arc::default();
        let sink = Box::new(Halting {
            halted: Arc::clone(&halted),
            resume: Arc::clone(&resume),
            calls: Arc::clone(&calls),
        });
        let (trigger, shutdown) = crate::shutdown::channel();
        let s = settings("odoo", 10);
        let health = Arc::clone(&s.health);
        let task = tokio::spawn(run_sink(backlog.clone(), sink, s, shutdown));
        until(|| health.snapshot().state.state == "stopped").await;
        let snap = health.snapshot();
        assert_eq!(snap.state.last_error.as_deref(), Some("Access Denied"));
        assert_eq!(
            backlog.delivered_to("odoo"),
            vec![1],
            "what came before the halt is kept"
        );
        assert!(backlog.dead().is_empty(), "a halt dead-letters nothing");
        // A day passes: no attempt at all while halted.
        tokio::time::sleep(Duration::from_secs(86_400)).await;
        assert_eq!(calls.lock().unwrap().len(), 1);
        assert_eq!(health.snapshot().state.state, "stopped");
        assert_eq!(health.snapshot().retries, 0);
        // The sink says it may resume (its key file changed): the halted event comes again.
        halted.store(false, std::sync::atomic::Ordering::SeqCst);
        resume.notify_one();
        until(|| backlog.delivered_to("odoo") == vec![1, 2, 3, 4]).await;
        assert_eq!(calls.lock().unwrap()[1].1, vec![2, 3, 4]);
        until(|| health.snapshot().state.state == "idle").await;
        trigger.fire();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_a_halt() {
        let backlog = MemBacklog::new(2, |_| Kind::Receipt);
        let sink = Box::new(Halting {
            halted: Arc::new(std::sync::atomic::AtomicBool::new(true)),
            resume: Arc::new(tokio::sync::Notify::new()),
            calls: Arc::default(),
        });
        let (trigger, shutdown) = crate::shutdown::channel();
        let s = settings("odoo", 10);
        let health = Arc::clone(&s.health);
        let task = tokio::spawn(run_sink(backlog, sink, s, shutdown));
        until(|| health.snapshot().state.state == "stopped").await;
        trigger.fire();
        tokio::time::timeout(Duration::from_millis(1), task)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn retry_now_cuts_a_backoff_short() {
        let backlog = MemBacklog::new(1, |_| Kind::Receipt);
        let retry = || Outcome::Retry {
            after: Some(Duration::from_secs(3600)),
            error: "503".into(),
        };
        let (sink, calls) = scripted(vec![retry(), retry()], false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let s = settings("hub", 10);
        let retry_now = s.retry_now.clone();
        let task = tokio::spawn(run_sink(backlog.clone(), sink, s, shutdown));
        until(|| calls.lock().unwrap().len() == 1).await;
        let start = Instant::now();
        // A signal while the sink is waiting: it tries again at once, fails, waits again.
        retry_now.fire();
        until(|| calls.lock().unwrap().len() == 2).await;
        assert!(Instant::now() - start < Duration::from_secs(1));
        retry_now.fire();
        until(|| backlog.delivered_to("hub") == vec![1]).await;
        assert!(Instant::now() - start < Duration::from_secs(1));
        trigger.fire();
        task.await.unwrap();
        assert_eq!(calls.lock().unwrap().len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_a_waiting_sink_at_once() {
        let backlog = MemBacklog::new(0, |_| Kind::Receipt);
        let (sink, _) = scripted(vec![], false);
        let (trigger, shutdown) = crate::shutdown::channel();
        let task = tokio::spawn(run_sink(backlog, sink, settings("idle", 10), shutdown));
        tokio::task::yield_now().await;
        trigger.fire();
        tokio::time::timeout(Duration::from_millis(1), task)
            .await
            .unwrap()
            .unwrap();
    }
}
