//! The serial source end to end: the real `tallyman` binary reading a socat pseudo-terminal
//! as its scanner. Scans go in at the scanner end; events are read from the file sink's
//! outbox; the feedback bytes the agent writes back are read at the scanner end
//! (good = `+`, bad = `!`). The pty is destroyed and recreated to play an unplugged scanner.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::{Agent, read_outbox};
use tallyman_tests::pty::{PtyPair, Scanner};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(30);
const GOOD: u8 = b'+';
const BAD: u8 = b'!';

/// A GS1 item (GTIN 09501101020917, expiry 2039-12-31) with this lot and serial, the lot
/// ended by `gs` (a raw GS or what the scanner sends instead).
fn gs1(lot: &str, serial: &str, gs: &str) -> String {
    format!("01095011010209171739123110{lot}{gs}21{serial}")
}

/// A test's gateway: data, the pty pair, the agent and the scanner end.
struct Rig {
    dir: TempDir,
    pty: PtyPair,
    agent: Agent,
    scanner: Scanner,
    started: Instant,
}

/// The source's keys beyond the defaults used here.
struct Source<'a> {
    extra: &'a str,
    log_level: &'a str,
}

impl Default for Source<'_> {
    fn default() -> Self {
        Source {
            extra: "",
            log_level: "info",
        }
    }
}

fn write_config(dir: &Path, device: &Path, source: &Source<'_>) -> PathBuf {
    let text = format!(
        r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

[log]
format = "json"
level = "{level}"

[[sources]]
name = "scanner"
type = "serial"
path = "{device}"
baud = 9600
terminator = "\r"
gs_aliases = ["<GS>"]
workflow = "consume"
location = "WH/Stock"
{extra}

[sources.feedback]
good = "+"
bad = "!"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
"#,
        data = dir.join("data").display(),
        device = device.display(),
        level = source.log_level,
        extra = source.extra,
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Rig {
    fn start(source: Source<'_>) -> Rig {
        // Built once per test process; the build is not part of a test's time.
        tallyman_tests::tallyman_bin();
        let started = Instant::now();
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let pty = PtyPair::start(dir.path());
        let scanner = pty.scanner();
        let config = write_config(dir.path(), &pty.device(), &source);
        let agent = Agent::start(&config, &dir.path().join("agent.log"));
        let rig = Rig {
            dir,
            pty,
            agent,
            scanner,
            started,
        };
        rig.wait_log("the device to open", |lines| {
            count(lines, "Serial device open.") == 1
        });
        rig
    }

    fn outbox(&self) -> HashMap<String, Value> {
        read_outbox(&self.dir.path().join("data/outbox.jsonl"))
    }

    /// Wait until the outbox holds at least `n` events; returns them.
    fn wait_events(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            let events = self.outbox();
            if events.len() >= n {
                return events.into_values().collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events in the outbox; log:\n{}",
                events.len(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Wait for the feedback bytes of `n` scans; returns every byte read back.
    fn wait_beeps(&self, n: usize) -> Vec<u8> {
        let got = self.scanner.wait_bytes(WAIT, n);
        assert!(
            got.len() >= n,
            "{} of {n} feedback bytes: {:?}; log:\n{}",
            got.len(),
            String::from_utf8_lossy(&got),
            self.log_text()
        );
        got
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// The agent's log lines (JSON objects); a line still being written is left out.
    fn log(&self) -> Vec<Value> {
        let text = self.log_text();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn wait_log(&self, what: &str, cond: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(&self.log()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self, name: &str) {
        let took = self.started.elapsed();
        let (status, _) = self.agent.terminate(Duration::from_secs(20));
        assert!(
            status.is_some_and(|s| s.success()),
            "the agent stops cleanly: {status:?}"
        );
        println!("{name}: {took:.2?}");
    }
}

/// Log lines with this message.
fn count(lines: &[Value], message: &str) -> usize {
    lines.iter().filter(|l| l["message"] == message).count()
}

fn line(event: &Value) -> &Value {
    assert_eq!(event["kind"], "consumption", "{event}");
    assert_eq!(event["from"], "WH/Stock", "{event}");
    let lines = event["lines"].as_array().unwrap();
    assert_eq!(lines.len(), 1, "{event}");
    &lines[0]
}

fn by_serial<'a>(events: &'a [Value], serial: &str) -> &'a Value {
    events
        .iter()
        .find(|e| line(e)["serial"] == serial)
        .unwrap_or_else(|| panic!("no event with serial {serial} in {events:?}"))
}

#[test]
fn gs1_and_hibc_scans_ending_in_cr_and_crlf_become_consumption_events() {
    let mut rig = Rig::start(Source::default());
    rig.scanner
        .send(format!("{}\r", gs1("24A1", "SN01", "\x1d")).as_bytes());
    rig.scanner
        .send(format!("{}\r\n", gs1("24A2", "SN02", "\x1d")).as_bytes());
    rig.scanner.send(b"+H123ABC01230/$$3391231LOTX6\r");
    rig.scanner.send(b"+H123PART13/$$+3391231SER55W\r\n");
    // Four scans, four good beeps: the LF of a CRLF made neither an empty nor a bad frame
    // (either would have given its own feedback before the last good one).
    rig.scanner
        .wait(WAIT, |b| b.iter().filter(|&&c| c == GOOD).count() == 4);
    assert_eq!(rig.scanner.received(), b"++++");

    let events = rig.wait_events(4);
    assert_eq!(events.len(), 4);
    for (serial, lot) in [("SN01", "24A1"), ("SN02", "24A2")] {
        let l = line(by_serial(&events, serial));
        assert_eq!(l["item"]["gtin"], "09501101020917");
        assert_eq!(l["lot"], lot);
        assert_eq!(l["expiry"], "2039-12-31");
        assert_eq!(l["qty"], "1");
    }
    let lot = events
        .iter()
        .map(line)
        .find(|l| l["lot"] == "LOTX")
        .expect("the HIBC lot scan");
    assert_eq!(lot["item"]["hibc"]["lic"], "H123");
    assert_eq!(lot["item"]["hibc"]["pcn"], "ABC0123");
    assert_eq!(lot["expiry"], "2039-12-31");
    let serial = line(by_serial(&events, "SER55"));
    assert_eq!(serial["item"]["hibc"]["pcn"], "PART1");
    assert_eq!(serial["expiry"], "2039-12-31");
    rig.finish("gs1_and_hibc");
}

#[test]
fn gs_sent_as_a_substitute_string_is_decoded() {
    let mut rig = Rig::start(Source::default());
    rig.scanner
        .send(format!("{}\r", gs1("24A3", "SN03", "<GS>")).as_bytes());
    assert_eq!(rig.wait_beeps(1), b"+");
    let events = rig.wait_events(1);
    let l = line(by_serial(&events, "SN03"));
    assert_eq!(l["lot"], "24A3", "the lot ends at <GS>");
    assert_eq!(l["item"]["gtin"], "09501101020917");
    rig.finish("gs_alias");
}

#[test]
fn a_scan_split_across_several_writes_is_one_event() {
    let mut rig = Rig::start(Source::default());
    let scan = format!("{}\r", gs1("24A4", "SN04", "<GS>"));
    let bytes = scan.as_bytes();
    for part in [&bytes[..7], &bytes[7..20], &bytes[20..31], &bytes[31..]] {
        rig.scanner.send(part);
        // Not synchronisation: pauses make it likely that the agent reads each part alone.
        std::thread::sleep(Duration::from_millis(50));
    }
    rig.wait_beeps(1);
    let events = rig.wait_events(1);
    assert_eq!(line(by_serial(&events, "SN04"))["lot"], "24A4");
    // The next scan's feedback comes after any the parts could have caused: there was none.
    rig.scanner
        .send(format!("{}\r", gs1("24A5", "SN05", "<GS>")).as_bytes());
    rig.scanner
        .wait(WAIT, |b| b.iter().filter(|&&c| c == GOOD).count() == 2);
    assert_eq!(rig.scanner.received(), b"++");
    assert_eq!(rig.wait_events(2).len(), 2);
    rig.finish("split");
}

#[test]
fn an_over_long_frame_is_rejected_and_the_next_scan_still_works() {
    let mut rig = Rig::start(Source {
        extra: "max_frame_bytes = 256",
        log_level: "info,tallyman_agent::sources::serial=debug",
    });
    let mut long = vec![b'0'; 10_000];
    long.push(b'\r');
    rig.scanner.send(&long);
    rig.scanner
        .send(format!("{}\r", gs1("24A6", "SN06", "<GS>")).as_bytes());
    rig.scanner.wait(WAIT, |b| b.len() >= 2);
    assert_eq!(
        rig.scanner.received(),
        b"!+",
        "bad for the long frame, good after"
    );
    let events = rig.wait_events(1);
    assert_eq!(events.len(), 1);
    by_serial(&events, "SN06");
    rig.wait_log("the refusal in the log", |lines| {
        lines.iter().any(|l| {
            l["message"] == "Scan feedback."
                && l["result"] == "rejected"
                && l["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("max_frame_bytes"))
        })
    });
    rig.finish("over_long");
}

/// xorshift64*: reproducible noise.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

#[test]
fn random_bytes_leave_the_agent_alive_and_the_next_scan_works() {
    let mut rig = Rig::start(Source {
        // Every frame of the noise gets feedback; the limit is not what this test is about.
        extra: "rate_limit_per_sec = 10000\nmax_frame_bytes = 512",
        log_level: "info",
    });
    let mut bytes = noise(64 * 1024, 0x9e37_79b9_7f4a_7c15);
    // Terminators sprinkled in, also as CRLF.
    for i in (0..bytes.len()).step_by(97) {
        bytes[i] = b'\r';
    }
    for i in (50..bytes.len()).step_by(331) {
        bytes[i] = b'\r';
        bytes[i + 1] = b'\n';
    }
    for chunk in bytes.chunks(4096) {
        rig.scanner.send(chunk);
    }
    rig.scanner.send(b"\r");
    rig.scanner
        .send(format!("{}\r", gs1("24A7", "SN07", "<GS>")).as_bytes());
    let deadline = Instant::now() + WAIT;
    loop {
        let events: Vec<Value> = rig.outbox().into_values().collect();
        if events.iter().any(|e| e["lines"][0]["serial"] == "SN07") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the scan after the noise never became an event; log:\n{}",
            rig.log_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let beeps = rig.scanner.received();
    assert_eq!(
        beeps.last(),
        Some(&GOOD),
        "the last frame was the good scan"
    );
    println!(
        "64 KiB of noise: {} feedback bytes ({} bad)",
        beeps.len(),
        beeps.iter().filter(|&&b| b == BAD).count()
    );
    assert!(!rig.log_text().contains("panicked"));
    rig.finish("noise");
}

#[test]
fn feedback_bytes_are_good_after_an_accepted_scan_and_bad_after_a_rejected_one() {
    let mut rig = Rig::start(Source::default());
    let scans = [
        (gs1("24A8", "SN08", "<GS>"), GOOD),
        ("NOT A BARCODE".to_string(), BAD),
        // Expired in 2020: refused by the business check.
        ("010950110102091717200101".to_string(), BAD),
        (gs1("24A9", "SN09", "<GS>"), GOOD),
    ];
    for (n, (scan, beep)) in scans.iter().enumerate() {
        rig.scanner.send(format!("{scan}\r").as_bytes());
        let got = rig.wait_beeps(n + 1);
        assert_eq!(got.len(), n + 1, "one beep per scan: {got:?}");
        assert_eq!(got[n], *beep, "scan {scan:?}");
    }
    assert_eq!(rig.wait_events(2).len(), 2);
    rig.finish("feedback");
}

#[test]
fn a_scanner_that_vanishes_and_comes_back_is_reopened_and_every_later_scan_counts() {
    let mut rig = Rig::start(Source::default());
    rig.scanner
        .send(format!("{}\r", gs1("24B0", "SN10", "<GS>")).as_bytes());
    assert_eq!(rig.wait_beeps(1), b"+");

    // Unplugged: the pty is destroyed; a partial scan in flight is lost with it.
    rig.scanner.send(b"0109501101");
    rig.pty.stop();
    rig.wait_log("the device to go away", |lines| {
        count(
            lines,
            "Serial device went away; reopening it until it is back.",
        ) == 1
    });

    // Plugged in again under the same name.
    rig.pty.restart();
    rig.scanner = rig.pty.scanner();
    rig.wait_log("the device to be reopened", |lines| {
        count(lines, "Serial device open again.") == 1
    });
    for n in 11..16 {
        rig.scanner
            .send(format!("{}\r", gs1("24B1", &format!("SN{n}"), "<GS>")).as_bytes());
    }
    rig.scanner
        .wait(WAIT, |b| b.iter().filter(|&&c| c == GOOD).count() == 5);
    assert_eq!(rig.scanner.received(), b"+++++");
    let events = rig.wait_events(6);
    assert_eq!(events.len(), 6);
    for n in 10..16 {
        by_serial(&events, &format!("SN{n}"));
    }
    // One warning for the outage, not one per attempt.
    let log = rig.log();
    let gone = log
        .iter()
        .find(|l| l["message"] == "Serial device went away; reopening it until it is back.")
        .unwrap();
    assert_eq!(gone["level"], "WARN");
    assert!(
        gone["error"]
            .as_str()
            .is_some_and(|e| e.contains("end of file")),
        "{gone}"
    );
    assert_eq!(
        count(
            &log,
            "Cannot open the serial device; retrying with backoff."
        ),
        0
    );
    rig.finish("reopen");
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: i32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // Fields 14 and 15 of stat(5), the 12th and 13th after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_sec() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn the_agent_stays_idle_while_the_scanner_is_gone() {
    let mut rig = Rig::start(Source::default());
    rig.scanner
        .send(format!("{}\r", gs1("24B2", "SN20", "<GS>")).as_bytes());
    assert_eq!(rig.wait_beeps(1), b"+");
    rig.pty.stop();
    rig.wait_log("the device to go away", |lines| {
        count(
            lines,
            "Serial device went away; reopening it until it is back.",
        ) == 1
    });
    let pid = rig.agent.pid();
    let ticks = clock_ticks_per_sec();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid));
    // Measuring over a wall-clock window, not waiting for anything.
    std::thread::sleep(Duration::from_secs(3));
    let (wall, cpu) = (t0.elapsed(), cpu_ticks(pid) - c0);
    let cpu_ms = cpu * 1000 / ticks;
    let share = cpu_ms as f64 / wall.as_millis() as f64 * 100.0;
    println!(
        "CPU while the scanner is gone: {cpu_ms} ms over {wall:.2?} ({share:.2} % of one core)"
    );
    assert!(share < 5.0, "busy loop? {cpu_ms} ms of CPU in {wall:?}");
    rig.finish("idle");
}

#[test]
fn a_scanner_missing_at_start_is_waited_for() {
    tallyman_tests::tallyman_bin();
    let started = Instant::now();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = write_config(dir.path(), &dir.path().join("device"), &Source::default());
    let agent = Agent::start(&config, &dir.path().join("agent.log"));
    let log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    while !log().contains("Cannot open the serial device; retrying with backoff.") {
        assert!(Instant::now() < deadline, "no warning; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let pty = PtyPair::start(dir.path());
    let mut scanner = pty.scanner();
    while !log().contains("Serial device open.") {
        assert!(Instant::now() < deadline, "never opened; log:\n{}", log());
        std::thread::sleep(Duration::from_millis(10));
    }
    scanner.send(format!("{}\r", gs1("24B3", "SN30", "<GS>")).as_bytes());
    assert_eq!(scanner.wait_bytes(WAIT, 1), b"+");
    assert_eq!(
        log()
            .matches("Cannot open the serial device; retrying with backoff.")
            .count(),
        1,
        "one warning while it was missing"
    );
    let (status, _) = agent.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()));
    println!("missing_at_start: {:.2?}", started.elapsed());
}

#[test]
fn a_burst_over_the_rate_limit_is_refused_with_a_reason_and_nothing_is_lost() {
    let mut rig = Rig::start(Source {
        extra: "rate_limit_per_sec = 5",
        log_level: "info,tallyman_agent::sources::serial=debug",
    });
    let burst: String = (0..40)
        .map(|n| format!("{}\r", gs1("24C0", &format!("R{n:02}"), "<GS>")))
        .collect();
    rig.scanner.send(burst.as_bytes());
    let mut sent = 40;
    rig.wait_beeps(sent);

    // A last scan, accepted once the bucket has refilled: its feedback comes after every
    // other (feedback is in scan order), so when it is logged everything before it is too.
    let last_id = loop {
        assert!(sent < 100, "the rate limit never let a scan through again");
        let serial = format!("Z{sent}");
        rig.scanner
            .send(format!("{}\r", gs1("24C1", &serial, "<GS>")).as_bytes());
        sent += 1;
        let beeps = rig.wait_beeps(sent);
        if beeps.last() == Some(&GOOD) {
            let deadline = Instant::now() + WAIT;
            break loop {
                if let Some((id, _)) = rig
                    .outbox()
                    .into_iter()
                    .find(|(_, e)| e["lines"][0]["serial"] == serial.as_str())
                {
                    break id;
                }
                assert!(Instant::now() < deadline, "{serial} not in the outbox");
                std::thread::sleep(Duration::from_millis(10));
            };
        }
        // Pacing while the bucket refills (a token every 200 ms), not synchronisation.
        std::thread::sleep(Duration::from_millis(100));
    };
    rig.wait_log("the last scan's feedback", |lines| {
        lines
            .iter()
            .any(|l| l["message"] == "Scan feedback." && l["event_id"] == last_id.as_str())
    });

    let log = rig.log();
    let feedback: Vec<&Value> = log
        .iter()
        .filter(|l| l["message"] == "Scan feedback.")
        .collect();
    assert_eq!(feedback.len(), sent, "exactly one feedback per frame");
    let rejected: Vec<&&Value> = feedback
        .iter()
        .filter(|l| l["result"] == "rejected")
        .collect();
    for r in &rejected {
        let reason = r["reason"].as_str().unwrap();
        assert!(
            reason.contains("rate_limit_per_sec") && reason.contains("5 scans per second"),
            "{reason}"
        );
    }
    let beeps = rig.scanner.received();
    let good = beeps.iter().filter(|&&b| b == GOOD).count();
    let bad = beeps.iter().filter(|&&b| b == BAD).count();
    assert_eq!(beeps.len(), sent, "one beep per frame");
    assert_eq!(bad, rejected.len());
    let events = rig.outbox();
    assert_eq!(events.len(), good, "every good beep is an event");
    let burst_accepted = events
        .values()
        .filter(|e| e["lines"][0]["serial"].as_str().unwrap().starts_with('R'))
        .count();
    assert!(
        (5..=7).contains(&burst_accepted),
        "the burst is the rate (plus what refilled meanwhile): {burst_accepted}"
    );
    println!(
        "rate limit 5/s: {sent} frames, {burst_accepted} of the 40-scan burst accepted, {bad} refused"
    );
    rig.finish("rate_limit");
}
