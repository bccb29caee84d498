//! The stdin source (keyboard wedge, demo): one scan per line; one JSON feedback line per scan
//! on stdout (PRODUCT §2), *accepted* only once the event is durable. Logs go to stderr.
//!
//! Sessions (workflow `session`) are handled one scan at a time: a scan's commit is settled
//! before the next scan is read, so a refused commit can reopen the session. Workflows without
//! sessions (`consume`, `passthrough`) keep up to [`IN_FLIGHT`] appends in flight so that group
//! commit can batch them; their feedback lines still come out in scan order.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tracing::{info, warn};

use crate::clock;
use crate::shutdown::Shutdown;
use crate::spool::Spool;
use tallyman_protocol::error::escape_bounded;

use crate::workflow::{Feedback, FeedbackResult, Workflow, WorkflowKind};

/// How lines become scans (`[[sources]]` keys of a stdin source).
#[derive(Debug, Clone)]
pub struct Framing {
    /// Removed from the start of a line when present.
    pub strip_prefix: Option<Vec<u8>>,
    /// Removed from the end of a line when present.
    pub strip_suffix: Option<Vec<u8>>,
    /// Longest line read as one scan; the first `max_frame + 1` bytes of a longer line are
    /// handed on (and rejected as too long), the rest skipped.
    pub max_frame: usize,
}

impl Framing {
    fn apply<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        let mut s = line;
        if let Some(p) = self.strip_prefix.as_deref() {
            s = s.strip_prefix(p).unwrap_or(s);
        }
        if let Some(p) = self.strip_suffix.as_deref() {
            s = s.strip_suffix(p).unwrap_or(s);
        }
        s
    }
}

/// Appends in flight for workflows without sessions.
pub const IN_FLIGHT: usize = 512;

type Pending = Pin<Box<dyn Future<Output = Feedback> + Send>>;

/// Read scans from `input` until end of input or shutdown; write feedback to `output`.
pub async fn run<R, W>(
    input: R,
    mut output: W,
    framing: Framing,
    mut workflow: Workflow,
    spool: Spool,
    mut shutdown: Shutdown,
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let source = workflow.settings().source.clone();
    let pipelined = workflow.settings().workflow != WorkflowKind::Session;
    let mut reader = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::with_capacity(256);
    let mut pending: VecDeque<Pending> = VecDeque::new();
    let mut ids = |at| clock::new_event_id(at);
    info!(source = %source, "Reading scans from stdin.");
    loop {
        // Give feedback for finished appends, in order.
        while let Some(front) = pending.front_mut() {
            match futures_poll(front) {
                Some(fb) => {
                    pending.pop_front();
                    if !emit(&mut output, &fb).await {
                        return;
                    }
                }
                None => break,
            }
        }
        if pending.len() >= IN_FLIGHT {
            if let Some(front) = pending.pop_front() {
                let fb = front.await;
                if !emit(&mut output, &fb).await {
                    return;
                }
            }
            continue;
        }
        let deadline = workflow.deadline();
        let step = tokio::select! {
            // Cancel-safe: a line read in part stays in `line` for the next round.
            read = read_line(&mut reader, &mut line, framing.max_frame) => match read {
                Ok(true) if line.len() > framing.max_frame => {
                    let fb = too_long(&workflow, &line, framing.max_frame);
                    line.clear();
                    if !emit(&mut output, &fb).await {
                        return;
                    }
                    None
                }
                Ok(true) => {
                    let scan = framing.apply(&line);
                    let step = workflow.scan(scan, clock::now(), clock::today(), &mut ids);
                    line.clear();
                    Some(step)
                }
                Ok(false) => {
                    info!(source = %source, "End of stdin.");
                    break;
                }
                Err(e) => {
                    warn!(source = %source, error = %e, "Reading stdin failed; the source stops.");
                    break;
                }
            },
            _ = sleep_until(deadline) => workflow.tick(clock::now(), &mut ids),
            // Pending appends finish below; no new scans are read.
            _ = shutdown.wait() => break,
            Some(fb) = next_done(&mut pending), if !pending.is_empty() => {
                pending.pop_front();
                if !emit(&mut output, &fb).await {
                    return;
                }
                None
            }
        };
        let Some(step) = step else { continue };
        if pipelined && !step.events.is_empty() {
            // Report success now (the workflow has no session to reopen); the feedback waits
            // for durability.
            workflow.committed(true);
            let spool = spool.clone();
            pending.push_back(Box::pin(async move {
                match super::store(&spool, step.events.clone()).await {
                    Ok(()) => step.feedback,
                    Err(why) => step.refused(&why),
                }
            }));
        } else {
            // Settle anything earlier first: feedback stays in scan order.
            while let Some(front) = pending.pop_front() {
                let fb = front.await;
                if !emit(&mut output, &fb).await {
                    return;
                }
            }
            let fb = super::settle(&spool, &mut workflow, step).await;
            if !emit(&mut output, &fb).await {
                return;
            }
        }
    }
    while let Some(front) = pending.pop_front() {
        let fb = front.await;
        if !emit(&mut output, &fb).await {
            return;
        }
    }
}

/// The feedback for a line longer than the source's frame limit: refused before decoding.
fn too_long(workflow: &Workflow, line: &[u8], max: usize) -> Feedback {
    Feedback {
        source: workflow.settings().source.clone(),
        scan: Some(escape_bounded(line, crate::workflow::FEEDBACK_SCAN_BYTES)),
        result: FeedbackResult::Rejected,
        event_id: None,
        kind: None,
        reason: Some(format!(
            "the scan is longer than {max} bytes (max_frame_bytes)"
        )),
        lines: workflow.open_lines(),
    }
}

/// Poll a pending feedback once without waiting.
fn futures_poll(fut: &mut Pending) -> Option<Feedback> {
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    match fut.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(fb) => Some(fb),
        std::task::Poll::Pending => None,
    }
}

/// Wait for the oldest pending feedback without taking it out of the queue.
async fn next_done(pending: &mut VecDeque<Pending>) -> Option<Feedback> {
    match pending.front_mut() {
        Some(front) => Some(front.as_mut().await),
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tallyman_protocol::event::Timestamp>) {
    match deadline {
        Some(at) => {
            let wait = at
                .unix_millis()
                .saturating_sub(clock::now().unix_millis())
                .max(0);
            tokio::time::sleep(std::time::Duration::from_millis(wait as u64)).await;
        }
        None => std::future::pending().await,
    }
}

/// Read the rest of one line into `buf` (then without its CR/LF). False at end of input. A line
/// longer than `max` keeps its first `max + 1` bytes (so that it is rejected as too long) and
/// its rest is skipped. Cancel-safe: the only await is `fill_buf`, and what was
/// consumed is in `buf`, which the caller keeps until a whole line was read.
async fn read_line<R: AsyncBufReadExt + Unpin>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<bool> {
    loop {
        let chunk = r.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(!buf.is_empty());
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        let room = max.saturating_add(1).saturating_sub(buf.len());
        let part = chunk.get(..take).unwrap_or_default();
        buf.extend_from_slice(part.get(..part.len().min(room)).unwrap_or_default());
        r.consume(take);
        if done {
            break;
        }
    }
    while buf.last().is_some_and(|&b| b == b'\n' || b == b'\r') {
        buf.pop();
    }
    Ok(true)
}

/// Write one feedback line. False if stdout is gone (nobody reads feedback any more: stop).
async fn emit<W: AsyncWrite + Unpin>(out: &mut W, fb: &Feedback) -> bool {
    let mut line = match serde_json::to_vec(fb) {
        Ok(l) => l,
        Err(e) => {
            warn!(error = %e, "Feedback could not be written as JSON.");
            return true;
        }
    };
    line.push(b'\n');
    if let Some(id) = fb.event_id {
        tracing::debug!(event_id = %id, result = %fb.result, "Scan feedback.");
    }
    match out.write_all(&line).await {
        Ok(()) => out.flush().await.is_ok(),
        Err(e) => {
            warn!(error = %e, "Writing feedback to stdout failed; the source stops.");
            false
        }
    }
}
