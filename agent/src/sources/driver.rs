//! The source driver: runs one scan state machine ([`Machine`]) over the frames a device
//! reader hands it, stores the events each step makes, and gives each frame its feedback —
//! *accepted* only once the events are durable, always in frame order.
//!
//! Every source with a device (stdin, a serial scanner or RFID reader) is two tasks: the
//! reader, which frames bytes and sends [`Frame`]s over a bounded channel (so a slow spool
//! pushes back on the device, never drops), and this driver. Machines with sessions are run
//! one frame at a time (a refused commit reopens the session before the next frame); machines
//! without ([`Machine::pipelined`]) keep up to [`IN_FLIGHT`] appends in flight so that group
//! commit can batch them.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tallyman_protocol::error::escape_bounded;
use tallyman_protocol::event::{EventId, Timestamp};
use tokio::sync::mpsc;

use crate::clock;
use crate::health::SourceHealth;
use crate::shutdown::Shutdown;
use crate::spool::Spool;
use crate::workflow::{FEEDBACK_SCAN_BYTES, Feedback, FeedbackResult, Machine};

/// Appends in flight for machines without sessions.
pub const IN_FLIGHT: usize = 512;

/// Frames waiting between a reader and its driver.
pub const FRAME_QUEUE: usize = 64;

/// What a reader hands the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// One scan (or tag read): terminator, prefix and suffix removed.
    Scan(Vec<u8>),
    /// Refused before decoding — too long, over the rate limit: the first bytes (for the
    /// feedback) and why, in one sentence.
    Refused { head: Vec<u8>, reason: String },
}

/// Where a source's feedback goes: stdout lines, beeps on the scanner, the MQTT feedback
/// topic.
pub trait Respond: Send {
    /// Give one feedback. `false` means nobody can receive feedback any more: the source stops.
    fn respond(&mut self, feedback: &Feedback) -> impl Future<Output = bool> + Send;
}

/// A pipelined append: its feedback, and the ids of the events the spool refused (the machine
/// was told `committed(true)` when it started; see [`Machine::not_stored`]).
type Pending = Pin<Box<dyn Future<Output = (Feedback, Vec<EventId>)> + Send>>;

/// Run `machine` over `frames` until the reader closes the channel or shutdown is triggered;
/// appends already started are settled (and answered) before returning.
pub async fn drive<M: Machine, R: Respond>(
    mut machine: M,
    spool: Spool,
    mut frames: mpsc::Receiver<Frame>,
    mut out: R,
    health: Arc<SourceHealth>,
    mut shutdown: Shutdown,
) {
    let pipelined = machine.pipelined();
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut ids = |at| clock::new_event_id(at);
    loop {
        // Answer finished appends, in order.
        while let Some(front) = pending.front_mut() {
            match poll_once(front) {
                Some(done) => {
                    pending.pop_front();
                    if !answer(&mut machine, &mut out, &health, done).await {
                        return;
                    }
                }
                None => break,
            }
        }
        if pending.len() >= IN_FLIGHT {
            if let Some(front) = pending.pop_front() {
                let done = front.await;
                if !answer(&mut machine, &mut out, &health, done).await {
                    return;
                }
            }
            continue;
        }
        let deadline = machine.deadline();
        let step = tokio::select! {
            frame = frames.recv() => match frame {
                Some(Frame::Scan(bytes)) => {
                    SourceHealth::count(&health.frames);
                    Some(machine.scan(&bytes, clock::now(), clock::today(), &mut ids))
                }
                Some(Frame::Refused { head, reason }) => {
                    SourceHealth::count(&health.frames);
                    let fb = refused(&machine, &head, reason);
                    if !settle_all(&mut pending, &mut machine, &mut out, &health).await
                        || !give(&mut out, &health, &fb).await
                    {
                        return;
                    }
                    None
                }
                None => break,
            },
            _ = sleep_until(deadline) => machine.tick(clock::now(), &mut ids),
            // Appends already started finish below; no new frames are taken.
            _ = shutdown.wait() => break,
            Some(done) = next_done(&mut pending), if !pending.is_empty() => {
                pending.pop_front();
                if !answer(&mut machine, &mut out, &health, done).await {
                    return;
                }
                None
            }
        };
        let Some(step) = step else { continue };
        if pipelined && !step.events.is_empty() {
            // No session to reopen: report success now; the feedback waits for durability.
            machine.committed(true);
            let ids: Vec<EventId> = step.events.iter().map(|e| e.id()).collect();
            // Queued now, in frame order (seqs follow the frames); durability is awaited with
            // later frames' appends, which join the same group commit.
            let submitted = super::submit(&spool, step.events.clone()).await;
            pending.push_back(Box::pin(async move {
                match super::finish(submitted).await {
                    Ok(()) => (step.feedback, Vec::new()),
                    Err(why) => (why.feedback(&step), ids),
                }
            }));
        } else {
            // Earlier frames are answered first: feedback stays in frame order.
            if !settle_all(&mut pending, &mut machine, &mut out, &health).await {
                return;
            }
            let fb = super::settle_machine(&spool, &mut machine, step).await;
            if !give(&mut out, &health, &fb).await {
                return;
            }
        }
    }
    settle_all(&mut pending, &mut machine, &mut out, &health).await;
}

/// Await and answer every pending append, oldest first.
async fn settle_all<M: Machine, R: Respond>(
    pending: &mut VecDeque<Pending>,
    machine: &mut M,
    out: &mut R,
    health: &SourceHealth,
) -> bool {
    while let Some(front) = pending.pop_front() {
        let done = front.await;
        if !answer(machine, out, health, done).await {
            return false;
        }
    }
    true
}

/// Answer a finished pipelined append; the machine first hears which events were refused.
async fn answer<M: Machine, R: Respond>(
    machine: &mut M,
    out: &mut R,
    health: &SourceHealth,
    (fb, refused): (Feedback, Vec<EventId>),
) -> bool {
    if !refused.is_empty() {
        machine.not_stored(&refused);
    }
    give(out, health, &fb).await
}

async fn give<R: Respond>(out: &mut R, health: &SourceHealth, fb: &Feedback) -> bool {
    let counter = match fb.result {
        FeedbackResult::Accepted => &health.accepted,
        FeedbackResult::Noted => &health.noted,
        FeedbackResult::Rejected => &health.rejected,
    };
    SourceHealth::count(counter);
    out.respond(fb).await
}

/// The feedback for a frame refused before decoding.
fn refused<M: Machine>(machine: &M, head: &[u8], reason: String) -> Feedback {
    Feedback {
        source: machine.source().clone(),
        scan: Some(escape_bounded(head, FEEDBACK_SCAN_BYTES)),
        result: FeedbackResult::Rejected,
        event_id: None,
        kind: None,
        reason: Some(reason),
        lines: machine.open_lines(),
        spool_full: false,
    }
}

/// Poll a pending append once without waiting.
fn poll_once(fut: &mut Pending) -> Option<(Feedback, Vec<EventId>)> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(done) => Some(done),
        std::task::Poll::Pending => None,
    }
}

/// Wait for the oldest pending append without taking it out of the queue.
async fn next_done(pending: &mut VecDeque<Pending>) -> Option<(Feedback, Vec<EventId>)> {
    match pending.front_mut() {
        Some(front) => Some(front.as_mut().await),
        None => std::future::pending().await,
    }
}

/// Sleep until `deadline` (wall clock); forever without one.
pub async fn sleep_until(deadline: Option<Timestamp>) {
    match deadline {
        Some(at) => {
            let wait = at
                .unix_millis()
                .saturating_sub(clock::now().unix_millis())
                .max(0);
            tokio::time::sleep(std::time::Duration::from_millis(
                u64::try_from(wait).unwrap_or(0),
            ))
            .await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::time::Duration;

    use tallyman_protocol::event::{FacilityId, GatewayId, Location, SourceName, Uom};

    use super::*;
    use crate::health::Registry;
    use crate::spool::SpoolOptions;
    use crate::workflow::{Settings, Workflow, WorkflowKind};

    /// Collects feedback in order.
    struct Collect(mpsc::UnboundedSender<Feedback>);

    impl Respond for Collect {
        async fn respond(&mut self, feedback: &Feedback) -> bool {
            self.0.send(feedback.clone()).is_ok()
        }
    }

    fn consume_workflow() -> Workflow {
        let mut settings = Settings::new(
            FacilityId::new("north").unwrap(),
            GatewayId::new("gw-1").unwrap(),
            SourceName::new("cabinet").unwrap(),
            Uom::new("Units").unwrap(),
        );
        settings.workflow = WorkflowKind::Consume;
        settings.location = Some(Location::new("WH/Stock").unwrap());
        Workflow::new(settings)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pipelined_appends_share_group_commits_and_answer_in_frame_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut options = SpoolOptions::new(dir.path().join("spool"), vec!["out".into()]);
        options.commit_window = Duration::from_millis(5);
        let (spool, _) = crate::spool::Spool::open(options).unwrap();
        let (frames_tx, frames_rx) = mpsc::channel(FRAME_QUEUE);
        let (fb_tx, mut fb_rx) = mpsc::unbounded_channel();
        let (_trigger, shutdown) = crate::shutdown::channel();
        let health = Registry::new().source("cabinet", "stdin");
        let driver = tokio::spawn(drive(
            consume_workflow(),
            spool.clone(),
            frames_rx,
            Collect(fb_tx),
            health,
            shutdown,
        ));
        const N: usize = 400;
        for i in 0..N {
            let scan = format!("01095011010209171730123121Q{i:07}");
            frames_tx
                .send(Frame::Scan(scan.into_bytes()))
                .await
                .unwrap();
        }
        drop(frames_tx);
        let mut answers = Vec::new();
        while let Some(fb) = fb_rx.recv().await {
            answers.push(fb);
        }
        driver.await.unwrap();
        assert_eq!(answers.len(), N);
        for (i, fb) in answers.iter().enumerate() {
            assert_eq!(fb.result, FeedbackResult::Accepted, "{fb:?}");
            let want = format!("Q{i:07}");
            assert!(fb.scan.as_deref().unwrap().ends_with(&want), "in order");
        }
        let stats = spool.stats();
        assert_eq!(stats.events_stored, N as u64);
        // Stored in frame order: seqs follow the scans.
        let stored = spool.list(0, N).unwrap();
        for (i, s) in stored.iter().enumerate() {
            assert_eq!(
                s.event.lines()[0]
                    .serial
                    .as_ref()
                    .map(|x| x.as_str().to_string()),
                Some(format!("Q{i:07}")),
                "seq {}",
                s.seq
            );
        }
        // One append at a time would be one commit per event.
        assert!(
            stats.commits * 4 <= N as u64,
            "{} commits for {N} events: appends did not overlap",
            stats.commits
        );
        spool.close().await.unwrap();
    }
}
