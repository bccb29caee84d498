//! RFID reader lines through the real binary: a stdin source with `decoder = "rfid"` and a file
//! sink. Repeated reads within the de-duplication window count once, a portal makes transfers,
//! lines that do not decode are rejected with a reason, and a read the full spool refused is
//! tried again at the tag's next read.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;
use tallyman_tests::agent::{Agent, read_outbox};

const WAIT: Duration = Duration::from_secs(30);

/// A stdin source reading RFID lines with `scan` keys, and a file sink.
fn rfid_config(dir: &Path, scan: &str, spool: &str) -> PathBuf {
    let data = dir.join("data");
    let text = format!(
        r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2
{spool}

[[sources]]
name = "reader"
type = "stdin"
decoder = "rfid"
{scan}

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
"#,
        data = data.display()
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// An SGTIN-96 of GTIN 80614141123458 (the TDS example's company prefix and item reference)
/// with `serial`, as 24 hex digits.
fn sgtin(serial: u64) -> String {
    let base = u128::from_str_radix("3074257BF7194E4000001A85", 16).unwrap();
    let mask = (1u128 << 38) - 1;
    format!("{:024X}", (base & !mask) | (u128::from(serial) & mask))
}

/// The 16-bit words of a hex EPC, separated by spaces.
fn words(hex: &str) -> String {
    hex.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Send `lines` and wait for one feedback line each.
fn send_all(agent: &mut Agent, lines: &[String]) -> Vec<Value> {
    let before = agent.feedback_len();
    agent.send(lines).unwrap();
    let want = before + lines.len();
    assert!(
        agent.wait_feedback(WAIT, |fb| fb.lines.len() >= want),
        "feedback for every line: {:?}",
        agent.feedback_lines()
    );
    agent.feedback_lines()[before..want].to_vec()
}

/// Wait until the outbox holds every id of `ids`; the whole outbox by id.
fn outbox_with(outbox: &Path, ids: &HashSet<String>) -> HashMap<String, Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let events = read_outbox(outbox);
        if ids.iter().all(|id| events.contains_key(id)) {
            return events;
        }
        assert!(
            Instant::now() < deadline,
            "events missing from the outbox: {ids:?}, found {:?}",
            events.keys()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn accepted_ids(feedback: &[Value]) -> HashSet<String> {
    feedback
        .iter()
        .filter(|f| f["result"] == "accepted")
        .map(|f| f["event_id"].as_str().unwrap().to_string())
        .collect()
}

fn stop(agent: Agent) {
    let (status, _) = agent.terminate(WAIT);
    assert_eq!(status.and_then(|s| s.code()), Some(0));
}

#[test]
fn repeated_reads_within_the_window_make_one_consumption_per_tag() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = rfid_config(
        dir.path(),
        "workflow = \"consume\"\nlocation = \"WH/Stock/Cabinet 3\"\ndedup_window_ms = 60000",
        "",
    );
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let tags = [sgtin(1001), sgtin(1002), sgtin(1003)];
    // Each tag in every reader format, the tags interleaved as a reader reports them.
    let mut lines = Vec::new();
    for round in 0..4 {
        for tag in &tags {
            lines.push(match round {
                0 => tag.clone(),
                1 => format!("0x{}", tag.to_ascii_lowercase()),
                2 => words(tag),
                _ => format!("Tag:{}, Count:7, Ant:{}", words(tag), round % 2),
            });
        }
    }
    let feedback = send_all(&mut agent, &lines);
    for (i, fb) in feedback.iter().enumerate() {
        assert_eq!(fb["source"], "reader");
        assert_eq!(fb["scan"], lines[i].as_str());
        if i < tags.len() {
            assert_eq!(fb["result"], "accepted", "{fb}");
            assert_eq!(fb["kind"], "consumption");
        } else {
            assert_eq!(fb["result"], "noted", "{fb}");
            assert_eq!(fb["event_id"], Value::Null);
            let reason = fb["reason"].as_str().unwrap();
            assert!(reason.starts_with("already read"), "{reason}");
        }
    }
    let ids = accepted_ids(&feedback);
    assert_eq!(ids.len(), 3);
    let outbox = dir.path().join("data/outbox.jsonl");
    outbox_with(&outbox, &ids);
    stop(agent);
    let events = read_outbox(&outbox);
    assert_eq!(
        events.keys().cloned().collect::<HashSet<_>>(),
        ids,
        "exactly one event per tag"
    );
    let mut serials: Vec<String> = events
        .values()
        .map(|e| {
            assert_eq!(e["kind"], "consumption");
            assert_eq!(e["from"], "WH/Stock/Cabinet 3");
            assert_eq!(e["source"], "reader");
            let [line] = e["lines"].as_array().unwrap().as_slice() else {
                panic!("one line: {e}")
            };
            assert_eq!(line["item"]["gtin"], "80614141123458");
            assert_eq!(line["qty"], "1");
            assert_eq!(line["uom"], "Units");
            line["serial"].as_str().unwrap().to_string()
        })
        .collect();
    serials.sort();
    assert_eq!(serials, ["1001", "1002", "1003"]);
}

#[test]
fn a_portal_makes_one_transfer_of_a_tag_read_on_two_antennas() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = rfid_config(
        dir.path(),
        "dedup_window_ms = 60000\nportal = { from = \"WH/Input\", to = \"WH/Stock\" }",
        "",
    );
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let tag = words(&sgtin(77));
    let lines: Vec<String> = (0..20)
        .map(|n| format!("Tag:{tag}, Count:{n}, Ant:{}", 1 + n % 2))
        .collect();
    let feedback = send_all(&mut agent, &lines);
    let results: Vec<&str> = feedback
        .iter()
        .map(|f| f["result"].as_str().unwrap())
        .collect();
    assert_eq!(results[0], "accepted", "{feedback:?}");
    assert!(results[1..].iter().all(|r| *r == "noted"), "{results:?}");
    assert!(feedback.iter().all(|f| f["kind"] == "transfer"));
    let ids = accepted_ids(&feedback);
    let outbox = dir.path().join("data/outbox.jsonl");
    outbox_with(&outbox, &ids);
    stop(agent);
    let events = read_outbox(&outbox);
    assert_eq!(events.len(), 1, "{events:?}");
    let e = events.values().next().unwrap();
    assert_eq!(e["kind"], "transfer");
    assert_eq!(e["from"], "WH/Input");
    assert_eq!(e["to"], "WH/Stock");
    assert_eq!(e["lines"][0]["item"]["gtin"], "80614141123458");
    assert_eq!(e["lines"][0]["serial"], "77");
}

#[test]
fn lines_that_do_not_decode_are_rejected_and_the_agent_goes_on() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = rfid_config(
        dir.path(),
        "workflow = \"consume\"\nlocation = \"WH/Stock\"",
        "",
    );
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let lines = [
        // A factory TID, not a GS1 EPC.
        "Tag:E280 1160 6000 0205 4CC2 096F, Ant:1".to_string(),
        // Not hex.
        "3074 257B F719 4E40 0000 1A8G".to_string(),
        // An SSCC decodes but is a logistic unit, not a trade item.
        "3114257BF4499602D2000000".to_string(),
        sgtin(5),
    ];
    let feedback = send_all(&mut agent, &lines);
    let reason = |i: usize| feedback[i]["reason"].as_str().unwrap().to_string();
    assert_eq!(feedback[0]["result"], "rejected");
    assert!(
        reason(0).starts_with("unsupported at offset 4:") && reason(0).contains("E2"),
        "{}",
        reason(0)
    );
    assert_eq!(feedback[1]["result"], "rejected");
    assert!(
        reason(1).starts_with("invalid_character at offset 28:") && reason(1).contains("\"G\""),
        "{}",
        reason(1)
    );
    assert_eq!(feedback[2]["result"], "rejected");
    assert!(
        reason(2)
            .contains("an SSCC-96 tag (urn:epc:id:sscc:0614141.1234567890) is a logistic unit"),
        "{}",
        reason(2)
    );
    assert_eq!(feedback[3]["result"], "accepted", "{:?}", feedback[3]);
    let ids = accepted_ids(&feedback);
    let outbox = dir.path().join("data/outbox.jsonl");
    outbox_with(&outbox, &ids);
    stop(agent);
    assert_eq!(read_outbox(&outbox).len(), 1);
}

#[test]
fn a_read_the_full_spool_refused_is_tried_again_at_the_next_read() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = rfid_config(
        dir.path(),
        "workflow = \"consume\"\nlocation = \"WH/Stock\"\ndedup_window_ms = 3600000",
        "max_size_mb = 1",
    );
    let outbox = dir.path().join("data/outbox.jsonl");
    // The sink cannot write while its path is a directory: nothing leaves the spool.
    std::fs::create_dir_all(&outbox).unwrap();
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));

    // Distinct tags until the spool is full.
    let mut next = 0u64;
    let (refused_tag, accepted) = loop {
        assert!(next < 200_000, "the spool never reported full");
        let batch: Vec<String> = (next..next + 500).map(sgtin).collect();
        let feedback = send_all(&mut agent, &batch);
        if let Some(i) = feedback.iter().position(|f| f["result"] == "rejected") {
            let reason = feedback[i]["reason"].as_str().unwrap();
            assert!(reason.contains("storage is full"), "{reason}");
            assert!(reason.contains("next read tries again"), "{reason}");
            break (batch[i].clone(), next + u64::try_from(i).unwrap());
        }
        next += 500;
    };
    println!("spool full after {accepted} tags (1 MiB quota)");

    // Read again within the window: not "already read", but tried again (and refused again).
    let again = send_all(&mut agent, std::slice::from_ref(&refused_tag));
    assert_eq!(again[0]["result"], "rejected", "{again:?}");
    assert!(
        again[0]["reason"]
            .as_str()
            .unwrap()
            .contains("storage is full")
    );

    // Once the sink delivers, space frees and the tag's next read is counted.
    std::fs::remove_dir(&outbox).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let id = loop {
        assert!(Instant::now() < deadline, "intake did not resume");
        let fb = send_all(&mut agent, std::slice::from_ref(&refused_tag));
        match fb[0]["result"].as_str().unwrap() {
            "accepted" => break fb[0]["event_id"].as_str().unwrap().to_string(),
            "rejected" => std::thread::sleep(Duration::from_millis(50)),
            other => panic!("{other}: {fb:?}"),
        }
    };
    // And from then on it is remembered.
    let fb = send_all(&mut agent, std::slice::from_ref(&refused_tag));
    assert_eq!(fb[0]["result"], "noted", "{fb:?}");
    let events = outbox_with(&outbox, &HashSet::from([id.clone()]));
    let serial = events[&id]["lines"][0]["serial"].as_str().unwrap();
    assert_eq!(serial, accepted.to_string());
    stop(agent);
}
