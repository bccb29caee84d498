//! The serial source: a barcode scanner or RFID reader on a serial port (PRODUCT §2).
//!
//! Two tasks, as every device source (see [`driver`]):
//! - the **port task** ([`read_port`]) owns the device: it opens it, cuts what it reads into
//!   frames ([`Framer`]), refuses scans over the rate limit ([`RateLimit`]), hands the frames
//!   to the driver over a bounded channel, and writes the feedback bytes back to the device;
//! - the **driver** runs the source's scan machine and gives each frame its feedback through
//!   [`Beeper`], which only queues the configured good / bad / full bytes for the port task.
//!
//! Port lifecycle. A device that reads end of file (a vanished pty, an unplugged USB adapter),
//! fails to read, or cannot be opened (absent, busy, no permission) is closed at once and
//! reopened with exponential backoff and jitter (100 ms doubling to 5 s; back to 100 ms once a
//! port stayed open for [`STABLE`]) — forever, until shutdown. Never a busy loop: every failed
//! attempt is followed by a sleep. A partial frame pending when the device goes away is
//! discarded (and logged). Health: `opening` → `open` → `reopening` (with the last error) →
//! … → `stopped`; `reopens` counts the opens after the first. A [`Restart`] request (the
//! `reconnect` command) closes an open port and reopens it at once, or cuts short the wait
//! before the next attempt to open it. The log says when the device
//! opens (INFO) and when it goes away or cannot be opened (WARN, once per outage; repeated
//! failures only at DEBUG, with a WARN reminder every [`REMIND_EVERY`]).
//!
//! Feedback never holds intake up: [`Beeper`] queues without waiting (a beep that finds the
//! queue full is skipped), each write to the device is bounded by [`WRITE_TIMEOUT`], and
//! feedback for a closed port is skipped. The port is never flushed: on Linux that is
//! `tcdrain`, which blocks the thread for as long as a wedged device likes.

pub mod framer;
pub mod rate;

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tallyman_config::{DataBits, Parity, Serial, StopBits};
use tallyman_protocol::event::SourceName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

pub use framer::{Framer, Framing};
pub use rate::RateLimit;

use super::driver::{self, Frame, Respond};
use crate::backoff::{self, Backoff};
use crate::health::SourceHealth;
use crate::shutdown::Shutdown;
use crate::sources::Restart;
use crate::spool::Spool;
use crate::workflow::{Feedback, Machine};

/// The first wait before reopening a device.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(100);
/// The longest wait between attempts to open a device.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A port that stayed open this long resets the backoff.
pub const STABLE: Duration = Duration::from_secs(5);
/// The longest a feedback write may take before it is abandoned.
pub const WRITE_TIMEOUT: Duration = Duration::from_millis(500);
/// How long feedback is skipped after a write timed out.
pub const WRITE_PAUSE: Duration = Duration::from_secs(5);
/// While a device cannot be opened, a WARN reminder this often (the attempts in between are
/// logged at DEBUG).
pub const REMIND_EVERY: Duration = Duration::from_secs(300);
/// Feedback byte sequences waiting for the port task.
const BEEP_QUEUE: usize = 256;
/// Bytes read from the device at a time.
const READ_CHUNK: usize = 1024;

/// A serial source's settings, from its `[[sources]]` entry.
#[derive(Debug, Clone)]
pub struct Settings {
    pub framing: Framing,
    pub rate_limit_per_sec: u32,
    /// Written after a scan that was accepted or noted.
    pub good: Vec<u8>,
    /// Written after a scan that was rejected.
    pub bad: Vec<u8>,
    /// Written after a scan refused because the spool is full; the `bad` bytes when the
    /// configuration leaves `full` empty (a refused scan must never sound like a good one).
    pub full: Vec<u8>,
    /// Asked to close and reopen the port (the `reconnect` command).
    pub restart: Restart,
}

impl Settings {
    pub fn from_config(serial: &Serial) -> Settings {
        let f = &serial.framing;
        Settings {
            framing: Framing {
                terminator: f.terminator.clone(),
                strip_prefix: f.strip_prefix.clone(),
                strip_suffix: f.strip_suffix.clone(),
                max_frame_bytes: f.max_frame_bytes,
            },
            rate_limit_per_sec: serial.rate_limit_per_sec,
            good: serial.feedback.good.clone(),
            bad: serial.feedback.bad.clone(),
            full: if serial.feedback.full.is_empty() {
                serial.feedback.bad.clone()
            } else {
                serial.feedback.full.clone()
            },
            restart: Restart::default(),
        }
    }
}

/// Why a port was closed or could not be opened; the text goes to the log and to health.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("opening {path}: {source}")]
    Open { path: String, source: io::Error },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("reading {path}: end of file (the device went away)")]
    EndOfFile { path: String },
    #[error("{path} closed to reopen it, as asked (reconnect)")]
    Restart { path: String },
}

/// Something that opens the device: the real serial port, or a fake in tests.
pub trait Open: Send {
    type Port: AsyncRead + AsyncWrite + Unpin + Send;
    /// Open the device once.
    fn open(&mut self) -> impl Future<Output = io::Result<Self::Port>> + Send;
    /// The device's name for logs and health.
    fn name(&self) -> String;
}

/// A serial port opened with tokio-serial.
#[derive(Debug, Clone)]
pub struct Device {
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: DataBits,
    pub stop_bits: StopBits,
}

impl Device {
    pub fn from_config(serial: &Serial) -> Device {
        Device {
            path: serial.path.clone(),
            baud: serial.baud,
            parity: serial.parity,
            data_bits: serial.data_bits,
            stop_bits: serial.stop_bits,
        }
    }
}

impl Open for Device {
    type Port = tokio_serial::SerialStream;

    async fn open(&mut self) -> io::Result<tokio_serial::SerialStream> {
        use tokio_serial::SerialPortBuilderExt;
        let builder = tokio_serial::new(self.path.to_string_lossy(), self.baud)
            .parity(match self.parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            })
            .data_bits(match self.data_bits {
                DataBits::Seven => tokio_serial::DataBits::Seven,
                DataBits::Eight => tokio_serial::DataBits::Eight,
            })
            .stop_bits(match self.stop_bits {
                StopBits::One => tokio_serial::StopBits::One,
                StopBits::Two => tokio_serial::StopBits::Two,
            });
        // Opening is a few system calls (open, ioctls, tcsetattr) that a misbehaving USB driver
        // can hold up: keep them off the async workers.
        tokio::task::spawn_blocking(move || builder.open_native_async())
            .await
            .map_err(io::Error::other)?
            .map_err(io::Error::from)
    }

    fn name(&self) -> String {
        self.path.display().to_string()
    }
}

/// Run the serial source `serial` until shutdown: the port task and the driver.
pub async fn run<M: Machine>(
    serial: &Serial,
    machine: M,
    spool: Spool,
    health: Arc<SourceHealth>,
    restart: Restart,
    shutdown: Shutdown,
) {
    let device = Device::from_config(serial);
    let mut settings = Settings::from_config(serial);
    settings.restart = restart;
    run_with(device, settings, machine, spool, health, shutdown).await;
}

/// [`run`] with any device.
pub async fn run_with<O: Open, M: Machine>(
    device: O,
    settings: Settings,
    machine: M,
    spool: Spool,
    health: Arc<SourceHealth>,
    shutdown: Shutdown,
) {
    let source = machine.source().clone();
    let (frames_tx, frames_rx) = mpsc::channel(driver::FRAME_QUEUE);
    let (beeps_tx, beeps_rx) = mpsc::channel(BEEP_QUEUE);
    let beeper = Beeper {
        queue: beeps_tx,
        good: settings.good.clone().into(),
        bad: settings.bad.clone().into(),
        full: settings.full.clone().into(),
    };
    let port = read_port(
        device,
        &settings,
        source,
        frames_tx,
        beeps_rx,
        Arc::clone(&health),
        shutdown.clone(),
    );
    let drive = driver::drive(
        machine,
        spool,
        frames_rx,
        beeper,
        Arc::clone(&health),
        shutdown,
    );
    tokio::join!(port, drive);
    health.set_state("stopped", None);
}

/// Feedback as bytes for the device: queued for the port task, never waited for.
#[derive(Debug)]
pub struct Beeper {
    queue: mpsc::Sender<Arc<[u8]>>,
    good: Arc<[u8]>,
    bad: Arc<[u8]>,
    full: Arc<[u8]>,
}

impl Respond for Beeper {
    async fn respond(&mut self, fb: &Feedback) -> bool {
        debug!(
            source = %fb.source,
            result = %fb.result,
            event_id = fb.event_id.as_ref().map(tracing::field::display),
            reason = fb.reason.as_deref(),
            "Scan feedback."
        );
        let bytes = if fb.spool_full {
            &self.full
        } else if fb.result.is_good() {
            &self.good
        } else {
            &self.bad
        };
        if !bytes.is_empty() {
            match self.queue.try_send(Arc::clone(bytes)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    debug!(source = %fb.source, "Feedback queue full; this scan's beep is skipped.");
                }
                // The port task has stopped (shutdown): nobody can hear it.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        // The device coming and going is the port task's business: the driver goes on.
        true
    }
}

/// How a session with an open port ended.
enum End {
    /// The device went away: reopen.
    Gone(PortError),
    /// Shutdown, or the driver stopped: stop.
    Stop,
}

/// The port task: open, read, frame, rate-limit, hand frames on, write feedback; reopen with
/// backoff whenever the device goes away; stop at shutdown (after writing the feedback for
/// scans still being settled, while the port is open).
pub async fn read_port<O: Open>(
    mut device: O,
    settings: &Settings,
    source: SourceName,
    frames: mpsc::Sender<Frame>,
    mut beeps: mpsc::Receiver<Arc<[u8]>>,
    health: Arc<SourceHealth>,
    mut shutdown: Shutdown,
) {
    let name = device.name();
    let mut framer = Framer::new(settings.framing.clone());
    let mut limit = RateLimit::new(settings.rate_limit_per_sec, Instant::now());
    let mut backoff = Backoff::new(BACKOFF_INITIAL, BACKOFF_MAX, backoff::seed());
    let mut outage = Outage::default();
    let mut opened_before = false;
    health.set_state("opening", None);
    loop {
        let opened = tokio::select! {
            opened = device.open() => opened,
            _ = shutdown.wait() => break,
        };
        match opened {
            Ok(mut port) => {
                health.set_state("open", None);
                if opened_before {
                    SourceHealth::count(&health.reopens);
                    info!(
                        source = %source,
                        path = %name,
                        attempt = outage.attempts,
                        "Serial device open again."
                    );
                } else {
                    info!(
                        source = %source,
                        path = %name,
                        attempt = outage.attempts,
                        "Serial device open."
                    );
                }
                opened_before = true;
                outage = Outage::default();
                // Feedback for scans read before the device came back is not written.
                while beeps.try_recv().is_ok() {}
                let since = Instant::now();
                let mut session = Session {
                    port: &mut port,
                    framer: &mut framer,
                    limit: &mut limit,
                    frames: &frames,
                    beeps: &mut beeps,
                    shutdown: &mut shutdown,
                    restart: &settings.restart,
                    source: &source,
                    write_paused_until: None,
                };
                match session.serve(&name).await {
                    End::Stop => {
                        drop(frames);
                        write_remaining(&mut port, &mut beeps).await;
                        break;
                    }
                    End::Gone(why) => {
                        drop(port);
                        let partial = framer.reset();
                        if matches!(why, PortError::Restart { .. }) {
                            info!(source = %source, path = %name, discarded_bytes = partial, "Serial device closed to reopen it, as asked.");
                            health.set_state("reopening", Some(why.to_string()));
                            backoff.reset();
                            // Reopen at once.
                            continue;
                        }
                        warn!(
                            source = %source,
                            path = %name,
                            error = %why,
                            discarded_bytes = partial,
                            "Serial device went away; reopening it until it is back."
                        );
                        health.set_state("reopening", Some(why.to_string()));
                        outage.begin(why.to_string());
                        if since.elapsed() >= STABLE {
                            backoff.reset();
                        }
                    }
                }
            }
            Err(e) => {
                let why = PortError::Open {
                    path: name.clone(),
                    source: e,
                };
                let text = why.to_string();
                if outage.should_warn(&text) {
                    warn!(
                        source = %source,
                        path = %name,
                        error = %why,
                        attempt = outage.attempts + 1,
                        "Cannot open the serial device; retrying with backoff."
                    );
                } else {
                    debug!(
                        source = %source,
                        path = %name,
                        error = %why,
                        attempt = outage.attempts + 1,
                        "Serial device still cannot be opened."
                    );
                }
                outage.failed(text.clone());
                health.set_state(
                    if opened_before {
                        "reopening"
                    } else {
                        "opening"
                    },
                    Some(text),
                );
            }
        }
        // Wait before the next attempt; feedback meanwhile has no port to go to.
        let pause = tokio::time::sleep(backoff.next(None));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => break,
                () = settings.restart.requested() => {
                    info!(source = %source, path = %name, "Opening the serial device now, as asked.");
                    backoff.reset();
                    break;
                }
                beep = beeps.recv() => match beep {
                    Some(_) => debug!(source = %source, "Serial device closed; feedback skipped."),
                    None => return,
                },
                _ = shutdown.wait() => return,
            }
        }
    }
}

/// The log's memory of an outage, so that it warns once rather than per attempt.
#[derive(Debug, Default)]
struct Outage {
    /// Failed opens since the device was last open.
    attempts: u64,
    /// The error last warned about, and when.
    warned: Option<(String, Instant)>,
}

impl Outage {
    /// The device was open and went away with `error` (already warned about).
    fn begin(&mut self, error: String) {
        *self = Outage {
            attempts: 0,
            warned: Some((error, Instant::now())),
        };
    }

    /// Warn about this failure? Yes for the first of an outage, a different error, or when the
    /// last warning is [`REMIND_EVERY`] old.
    fn should_warn(&self, error: &str) -> bool {
        match &self.warned {
            None => true,
            Some((_, at)) if self.attempts == 0 => at.elapsed() >= REMIND_EVERY,
            Some((last, at)) => last != error || at.elapsed() >= REMIND_EVERY,
        }
    }

    fn failed(&mut self, error: String) {
        if self.should_warn(&error) {
            self.warned = Some((error, Instant::now()));
        }
        self.attempts = self.attempts.saturating_add(1);
    }
}

/// One open port, read until it goes away.
struct Session<'a, P> {
    port: &'a mut P,
    framer: &'a mut Framer,
    limit: &'a mut RateLimit,
    frames: &'a mpsc::Sender<Frame>,
    beeps: &'a mut mpsc::Receiver<Arc<[u8]>>,
    shutdown: &'a mut Shutdown,
    restart: &'a Restart,
    source: &'a SourceName,
    /// A feedback write timed out: no writes until then (warned once per port).
    write_paused_until: Option<Instant>,
}

impl<P: AsyncRead + AsyncWrite + Unpin> Session<'_, P> {
    async fn serve(&mut self, name: &str) -> End {
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut out = Vec::new();
        loop {
            tokio::select! {
                // Cancel-safe: a read either completes or reads nothing.
                read = self.port.read(&mut chunk) => match read {
                    Ok(0) => return End::Gone(PortError::EndOfFile { path: name.to_owned() }),
                    Ok(n) => {
                        self.framer.push(chunk.get(..n).unwrap_or_default(), &mut out);
                        for frame in out.drain(..) {
                            let frame = self.rate_limited(frame);
                            if !self.hand_on(frame).await {
                                return End::Stop;
                            }
                        }
                    }
                    Err(e) => {
                        return End::Gone(PortError::Read { path: name.to_owned(), source: e });
                    }
                },
                beep = self.beeps.recv() => match beep {
                    Some(bytes) => self.write(&bytes).await,
                    None => return End::Stop,
                },
                () = self.restart.requested() => {
                    return End::Gone(PortError::Restart { path: name.to_owned() });
                }
                _ = self.shutdown.wait() => return End::Stop,
            }
        }
    }

    /// A scan over the rate limit becomes a refusal that says so.
    fn rate_limited(&mut self, frame: Frame) -> Frame {
        match frame {
            Frame::Scan(bytes) if !self.limit.take(Instant::now()) => Frame::Refused {
                head: bytes,
                reason: format!(
                    "more than {} scans per second from this scanner (rate_limit_per_sec); scan it again",
                    self.limit.per_sec()
                ),
            },
            other => other,
        }
    }

    /// Hand a frame to the driver, writing feedback while the channel is full. False when
    /// the source stops.
    async fn hand_on(&mut self, frame: Frame) -> bool {
        loop {
            tokio::select! {
                permit = self.frames.reserve() => return match permit {
                    Ok(permit) => {
                        permit.send(frame);
                        true
                    }
                    Err(_) => false,
                },
                beep = self.beeps.recv() => match beep {
                    Some(bytes) => self.write(&bytes).await,
                    None => return false,
                },
                _ = self.shutdown.wait() => return false,
            }
        }
    }

    /// Write one feedback, bounded by [`WRITE_TIMEOUT`]. After a timeout the device is left
    /// alone for [`WRITE_PAUSE`] (its feedback skipped), so that a device that takes no data
    /// slows reading by at most one timeout per pause.
    async fn write(&mut self, bytes: &[u8]) {
        if self
            .write_paused_until
            .is_some_and(|until| Instant::now() < until)
        {
            debug!(source = %self.source, "Serial device not taking feedback; beep skipped.");
            return;
        }
        match tokio::time::timeout(WRITE_TIMEOUT, self.port.write_all(bytes)).await {
            Ok(Ok(())) => {}
            // A device that is going away fails its reads too; that is where it is handled.
            Ok(Err(e)) => debug!(
                source = %self.source,
                error = %e,
                "Writing feedback to the serial device failed."
            ),
            Err(_) => {
                if self.write_paused_until.is_none() {
                    warn!(
                        source = %self.source,
                        "The serial device takes no feedback (a write timed out); feedback is best effort."
                    );
                }
                self.write_paused_until = Some(Instant::now() + WRITE_PAUSE);
            }
        }
    }
}

/// After shutdown: write the feedback of scans the driver is still settling, until it is done.
/// A device that takes no data gets one timeout, then the rest is dropped.
async fn write_remaining<P: AsyncWrite + Unpin>(
    port: &mut P,
    beeps: &mut mpsc::Receiver<Arc<[u8]>>,
) {
    let mut writable = true;
    while let Some(bytes) = beeps.recv().await {
        if writable {
            writable = matches!(
                tokio::time::timeout(WRITE_TIMEOUT, port.write_all(&bytes)).await,
                Ok(Ok(()))
            );
        }
    }
}

#[cfg(test)]
mod tests;
