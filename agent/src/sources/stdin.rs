//! The stdin source (keyboard wedge, demo): one scan per line; one JSON feedback line per scan
//! on stdout (PRODUCT §2), *accepted* only once the event is durable. Logs go to stderr.
//!
//! The lines are framed here and run through the source's machine by [`driver::drive`]:
//! sessions one scan at a time, workflows without sessions with appends pipelined, feedback
//! lines always in scan order.

use std::sync::Arc;

use tallyman_protocol::event::SourceName;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::driver::{self, Frame, Respond};
use crate::health::SourceHealth;
use crate::shutdown::Shutdown;
use crate::spool::Spool;
use crate::workflow::{Feedback, Machine};

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

/// Read scans from `input` until end of input or shutdown; write feedback to `output`.
/// `input` is buffered by the caller and may outlive this source: what it has buffered and
/// not framed yet stays there for the next reader (a source restarted by a configuration
/// change reads on where this one stopped).
pub async fn run<R, W, M>(
    input: R,
    output: W,
    framing: Framing,
    machine: M,
    spool: Spool,
    health: Arc<SourceHealth>,
    shutdown: Shutdown,
) where
    R: AsyncBufRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send,
    M: Machine,
{
    let source = machine.source().clone();
    info!(source = %source, "Reading scans from stdin.");
    health.set_state("open", None);
    let (tx, rx) = mpsc::channel(driver::FRAME_QUEUE);
    let reader = read_frames(input, framing, tx, shutdown.clone(), source.clone());
    let drive = driver::drive(
        machine,
        spool,
        rx,
        Lines(output),
        Arc::clone(&health),
        shutdown,
    );
    tokio::join!(reader, drive);
    health.set_state("stopped", None);
}

/// Frame stdin's lines until end of input, a read error, shutdown, or the driver is gone.
async fn read_frames<R: AsyncBufRead + Unpin>(
    mut reader: R,
    framing: Framing,
    frames: mpsc::Sender<Frame>,
    mut shutdown: Shutdown,
    source: SourceName,
) {
    let mut line = Vec::with_capacity(256);
    loop {
        let frame = tokio::select! {
            // Cancel-safe: a line read in part stays in `line` for the next round.
            read = read_line(&mut reader, &mut line, framing.max_frame) => match read {
                Ok(true) if line.len() > framing.max_frame => Frame::Refused {
                    head: std::mem::take(&mut line),
                    reason: format!(
                        "the scan is longer than {} bytes (max_frame_bytes)",
                        framing.max_frame
                    ),
                },
                Ok(true) => {
                    let frame = Frame::Scan(framing.apply(&line).to_vec());
                    line.clear();
                    frame
                }
                Ok(false) => {
                    info!(source = %source, "End of stdin.");
                    return;
                }
                Err(e) => {
                    warn!(source = %source, error = %e, "Reading stdin failed; the source stops.");
                    return;
                }
            },
            _ = shutdown.wait() => return,
        };
        if frames.send(frame).await.is_err() {
            return;
        }
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

/// Feedback as JSON lines (PRODUCT §2).
struct Lines<W>(W);

impl<W: AsyncWrite + Unpin + Send> Respond for Lines<W> {
    /// Write one feedback line. False if stdout is gone (nobody reads feedback any more: stop).
    async fn respond(&mut self, fb: &Feedback) -> bool {
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
        match self.0.write_all(&line).await {
            Ok(()) => self.0.flush().await.is_ok(),
            Err(e) => {
                warn!(error = %e, "Writing feedback to stdout failed; the source stops.");
                false
            }
        }
    }
}
