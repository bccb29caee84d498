//! The port task against fake devices (in-memory pipes), on tokio's paused clock: reopening
//! with backoff, no busy loop, partial frames, the rate limit, feedback while open, closed and
//! wedged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tallyman_protocol::event::SourceName;
use tokio::io::DuplexStream;

use super::*;
use crate::health::Registry;
use crate::shutdown::{self, Trigger};
use crate::workflow::FeedbackResult;

/// A device that hands out the queued ports, then fails with "not found".
#[derive(Clone, Default)]
struct FakeDevice {
    ports: Arc<Mutex<VecDeque<io::Result<DuplexStream>>>>,
    opens: Arc<AtomicU64>,
}

impl FakeDevice {
    /// Queue a port; returns the device's other end (the scanner).
    fn plug(&self) -> DuplexStream {
        let (agent_end, scanner_end) = tokio::io::duplex(4096);
        self.ports.lock().unwrap().push_back(Ok(agent_end));
        scanner_end
    }

    fn fail(&self, kind: io::ErrorKind) {
        self.ports.lock().unwrap().push_back(Err(kind.into()));
    }

    fn opens(&self) -> u64 {
        self.opens.load(Ordering::SeqCst)
    }
}

impl Open for FakeDevice {
    type Port = DuplexStream;

    async fn open(&mut self) -> io::Result<DuplexStream> {
        self.opens.fetch_add(1, Ordering::SeqCst);
        self.ports
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| Err(io::ErrorKind::NotFound.into()))
    }

    fn name(&self) -> String {
        "/dev/fake".into()
    }
}

fn settings(rate: u32) -> Settings {
    Settings {
        framing: Framing {
            terminator: b"\r".to_vec(),
            strip_prefix: None,
            strip_suffix: None,
            max_frame_bytes: 64,
        },
        rate_limit_per_sec: rate,
        good: b"G".to_vec(),
        bad: b"B".to_vec(),
        full: b"F".to_vec(),
        restart: Restart::default(),
    }
}

struct Running {
    frames: mpsc::Receiver<Frame>,
    beeps: mpsc::Sender<Arc<[u8]>>,
    health: Arc<SourceHealth>,
    trigger: Trigger,
    task: tokio::task::JoinHandle<()>,
}

fn start(device: FakeDevice, settings: Settings) -> Running {
    let (frames_tx, frames) = mpsc::channel(driver::FRAME_QUEUE);
    let (beeps, beeps_rx) = mpsc::channel(BEEP_QUEUE);
    let health = Registry::new().source("dock-1", "serial");
    let (trigger, shutdown) = shutdown::channel();
    let task = tokio::spawn({
        let health = Arc::clone(&health);
        async move {
            read_port(
                device,
                &settings,
                SourceName::new("dock-1").unwrap(),
                frames_tx,
                beeps_rx,
                health,
                shutdown,
            )
            .await;
        }
    });
    Running {
        frames,
        beeps,
        health,
        trigger,
        task,
    }
}

async fn write(scanner: &mut DuplexStream, bytes: &[u8]) {
    scanner.write_all(bytes).await.unwrap();
}

async fn read_exact(scanner: &mut DuplexStream, n: usize) -> Vec<u8> {
    let mut buf = vec![0; n];
    scanner.read_exact(&mut buf).await.unwrap();
    buf
}

/// Wait (on the paused clock) until `cond` holds; fails after a simulated minute.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn an_absent_device_is_retried_with_backoff_never_in_a_busy_loop() {
    let device = FakeDevice::default();
    let run = start(device.clone(), settings(50));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let attempts = device.opens();
    // 100 ms doubling to 5 s, each wait between half and all of it: over a minute, at most
    // 6 short waits then one per 2.5 s at the very least, at least one per 5 s.
    assert!(
        (12..=36).contains(&attempts),
        "{attempts} attempts in a minute"
    );
    let state = run.health.state();
    assert_eq!(state.state, "opening");
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.starts_with("opening /dev/fake: ")),
        "{state:?}"
    );
    run.trigger.fire();
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_device_that_goes_away_is_reopened_and_its_partial_frame_discarded() {
    let device = FakeDevice::default();
    let mut scanner = device.plug();
    let mut run = start(device.clone(), settings(50));
    write(&mut scanner, b"0109501101020917\rhalf a sc").await;
    assert_eq!(
        run.frames.recv().await,
        Some(Frame::Scan(b"0109501101020917".to_vec()))
    );
    until("the device to be open", || {
        run.health.state().state == "open"
    })
    .await;

    // Unplugged: end of file. Two failed opens, then it is back.
    device.fail(io::ErrorKind::NotFound);
    device.fail(io::ErrorKind::PermissionDenied);
    let back = device.plug();
    drop(scanner);
    until("the device to be open again", || {
        run.health.reopens.load(Ordering::Relaxed) == 1
    })
    .await;
    assert_eq!(device.opens(), 4);
    let state = run.health.state();
    assert_eq!(state.state, "open");
    assert!(
        state
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("permission denied")),
        "the outage's last error stays visible: {state:?}"
    );
    let mut scanner = back;
    write(&mut scanner, b"an\rnext\r").await;
    // "half a sc" + "an" would have made "half a scan": the partial frame was discarded.
    assert_eq!(run.frames.recv().await, Some(Frame::Scan(b"an".to_vec())));
    assert_eq!(run.frames.recv().await, Some(Frame::Scan(b"next".to_vec())));

    // Feedback goes to the device that is open now.
    run.beeps.send(Arc::from(&b"G"[..])).await.unwrap();
    assert_eq!(read_exact(&mut scanner, 1).await, b"G");

    run.trigger.fire();
    drop(run.beeps);
    run.task.await.unwrap();
    assert!(run.frames.recv().await.is_none(), "the channel is closed");
}

#[tokio::test(start_paused = true)]
async fn a_flapping_device_backs_off_too() {
    // Every open succeeds and reads end of file at once: the backoff must still grow.
    let device = FakeDevice::default();
    for _ in 0..100 {
        drop(device.plug());
    }
    let run = start(device.clone(), settings(50));
    tokio::time::sleep(Duration::from_secs(60)).await;
    let opens = device.opens();
    assert!((12..=36).contains(&opens), "{opens} opens in a minute");
    run.trigger.fire();
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn feedback_while_the_device_is_closed_is_skipped() {
    let device = FakeDevice::default();
    let run = start(device.clone(), settings(50));
    until("a first attempt", || device.opens() >= 1).await;
    for _ in 0..10 {
        run.beeps.send(Arc::from(&b"B"[..])).await.unwrap();
    }
    // The queued beeps are dropped while closed, not written to the device once it is back.
    until("the beeps to be skipped", || {
        run.beeps.capacity() == BEEP_QUEUE
    })
    .await;
    let mut scanner = device.plug();
    let mut run = run;
    write(&mut scanner, b"x\r").await;
    assert_eq!(run.frames.recv().await, Some(Frame::Scan(b"x".to_vec())));
    run.beeps.send(Arc::from(&b"G"[..])).await.unwrap();
    assert_eq!(read_exact(&mut scanner, 1).await, b"G");
    run.trigger.fire();
    drop(run.beeps);
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_device_that_takes_no_feedback_does_not_stop_reading() {
    let device = FakeDevice::default();
    // A pipe of 1 byte that the scanner side never reads: writes block.
    let (agent_end, mut scanner) = tokio::io::duplex(1);
    device.ports.lock().unwrap().push_back(Ok(agent_end));
    let mut run = start(device.clone(), settings(50));
    until("the device to be open", || {
        run.health.state().state == "open"
    })
    .await;
    let started = Instant::now();
    for _ in 0..20 {
        run.beeps.send(Arc::from(&b"GGGG"[..])).await.unwrap();
    }
    write(&mut scanner, b"still\r").await;
    assert_eq!(
        run.frames.recv().await,
        Some(Frame::Scan(b"still".to_vec()))
    );
    // One write timed out, the rest were skipped during the pause: reading waited at most one
    // timeout.
    assert!(started.elapsed() <= WRITE_TIMEOUT + Duration::from_millis(100));
    run.trigger.fire();
    drop(run.beeps);
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_burst_over_the_rate_limit_is_refused_not_dropped() {
    let device = FakeDevice::default();
    let mut scanner = device.plug();
    let mut run = start(device.clone(), settings(10));
    let burst: Vec<u8> = (0..100)
        .flat_map(|n| format!("S{n}\r").into_bytes())
        .collect();
    write(&mut scanner, &burst).await;
    let mut scans = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..100 {
        match run.frames.recv().await.unwrap() {
            Frame::Scan(s) => scans.push(s),
            Frame::Refused { head, reason } => {
                assert!(reason.contains("rate_limit_per_sec"), "{reason}");
                assert!(reason.contains("10 scans per second"), "{reason}");
                refused.push(head);
            }
        }
    }
    assert_eq!(scans.len(), 10, "the burst is the rate");
    assert_eq!(refused.len(), 90);
    assert_eq!(refused[0], b"S10", "the refusal carries the scan");
    // A second later the bucket is full again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    write(&mut scanner, b"later\r").await;
    assert_eq!(
        run.frames.recv().await,
        Some(Frame::Scan(b"later".to_vec()))
    );
    run.trigger.fire();
    drop(run.beeps);
    run.task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn on_shutdown_feedback_still_being_settled_is_written() {
    let device = FakeDevice::default();
    let mut scanner = device.plug();
    let run = start(device.clone(), settings(50));
    until("the device to be open", || {
        run.health.state().state == "open"
    })
    .await;
    run.trigger.fire();
    // The driver answers after shutdown (its appends settle): the port task writes it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    run.beeps.send(Arc::from(&b"G"[..])).await.unwrap();
    assert_eq!(read_exact(&mut scanner, 1).await, b"G");
    drop(run.beeps);
    run.task.await.unwrap();
}

fn feedback(result: FeedbackResult, spool_full: bool) -> Feedback {
    Feedback {
        source: SourceName::new("dock-1").unwrap(),
        scan: Some("x".into()),
        result,
        event_id: None,
        kind: None,
        reason: None,
        lines: 0,
        spool_full,
    }
}

#[tokio::test]
async fn the_beeper_picks_good_bad_or_full() {
    let (queue, mut rx) = mpsc::channel(8);
    let mut beeper = Beeper {
        queue,
        good: Arc::from(&b"G"[..]),
        bad: Arc::from(&b"B"[..]),
        full: Arc::from(&b"F"[..]),
    };
    for (result, full, expected) in [
        (FeedbackResult::Accepted, false, b"G"),
        (FeedbackResult::Noted, false, b"G"),
        (FeedbackResult::Rejected, false, b"B"),
        (FeedbackResult::Rejected, true, b"F"),
    ] {
        assert!(beeper.respond(&feedback(result, full)).await);
        assert_eq!(&*rx.recv().await.unwrap(), expected);
    }
    // Empty sequences write nothing; a closed port task does not stop the driver.
    beeper.good = Arc::from(&b""[..]);
    assert!(
        beeper
            .respond(&feedback(FeedbackResult::Accepted, false))
            .await
    );
    assert!(rx.try_recv().is_err());
    drop(rx);
    assert!(
        beeper
            .respond(&feedback(FeedbackResult::Rejected, false))
            .await
    );
}

#[test]
fn an_empty_full_sequence_falls_back_to_bad() {
    let mut serial = Serial {
        path: "/dev/ttyUSB0".into(),
        baud: 9600,
        parity: Parity::None,
        data_bits: DataBits::Eight,
        stop_bits: StopBits::One,
        framing: tallyman_config::Framing {
            terminator: b"\r".to_vec(),
            strip_prefix: None,
            strip_suffix: None,
            max_frame_bytes: 4096,
        },
        rate_limit_per_sec: 50,
        feedback: tallyman_config::Feedback {
            good: b"\x07".to_vec(),
            bad: b"\x07\x07\x07".to_vec(),
            full: Vec::new(),
        },
    };
    assert_eq!(Settings::from_config(&serial).full, b"\x07\x07\x07");
    serial.feedback.full = b"\x1b[F".to_vec();
    assert_eq!(Settings::from_config(&serial).full, b"\x1b[F");
}

#[test]
fn a_spool_full_refusal_is_marked_for_the_full_signal() {
    use tallyman_protocol::event::{FacilityId, GatewayId, Location, Uom};

    use crate::sources::StoreError;
    use crate::workflow::{Settings as WorkflowSettings, Workflow, WorkflowKind};

    let mut settings = WorkflowSettings::new(
        FacilityId::new("north").unwrap(),
        GatewayId::new("gw-north-01").unwrap(),
        SourceName::new("dock-1").unwrap(),
        Uom::new("Units").unwrap(),
    );
    settings.workflow = WorkflowKind::Consume;
    settings.location = Some(Location::new("WH/Stock").unwrap());
    let mut workflow = Workflow::new(settings);
    let now = crate::clock::now();
    let step = workflow.scan(
        b"010950110102091717391231",
        now,
        now.date(),
        &mut crate::clock::new_event_id,
    );
    assert_eq!(step.events.len(), 1);
    let full = StoreError::Full.feedback(&step);
    assert!(full.spool_full);
    assert_eq!(full.result, FeedbackResult::Rejected);
    assert!(
        full.reason
            .unwrap()
            .contains("the gateway's storage is full")
    );
    let failed = StoreError::Failed("disk error".into()).feedback(&step);
    assert!(!failed.spool_full);
    assert_eq!(failed.result, FeedbackResult::Rejected);
}

#[tokio::test(start_paused = true)]
async fn a_restart_request_reopens_an_open_port_at_once_and_cuts_a_backoff_short() {
    let device = FakeDevice::default();
    let mut scanner = device.plug();
    let s = settings(50);
    let restart = s.restart.clone();
    let mut run = start(device.clone(), s);
    write(&mut scanner, b"one\rhalf").await;
    assert_eq!(run.frames.recv().await, Some(Frame::Scan(b"one".to_vec())));
    until("the device to be open", || {
        run.health.state().state == "open"
    })
    .await;

    // Open: closed and reopened without waiting; the partial frame is discarded.
    let mut second = device.plug();
    let asked = Instant::now();
    restart.request();
    until("the reopen", || {
        run.health.reopens.load(Ordering::Relaxed) == 1
    })
    .await;
    assert!(Instant::now() - asked < Duration::from_millis(50));
    assert_eq!(device.opens(), 2);
    write(&mut second, b"two\r").await;
    assert_eq!(run.frames.recv().await, Some(Frame::Scan(b"two".to_vec())));

    // Gone and waiting out a long backoff: a request makes the next attempt now.
    for _ in 0..6 {
        device.fail(io::ErrorKind::NotFound);
    }
    drop(second);
    until("six failed opens", || device.opens() == 8).await;
    let third = device.plug();
    let asked = Instant::now();
    restart.request();
    until("the device to be open again", || {
        run.health.state().state == "open"
    })
    .await;
    assert!(Instant::now() - asked < Duration::from_millis(50));
    assert_eq!(device.opens(), 9);
    drop(third);
    run.trigger.fire();
    // The driver ends when the frames close; stopping on the trigger while the port is open
    // writes the feedback still queued until then.
    drop(run.beeps);
    run.task.await.unwrap();
}
