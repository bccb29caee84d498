//! `tallyman config check` and `tallyman spool …` with the real binary, and a dead letter
//! replayed end to end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tallyman_agent::spool::{DeadLetterInfo, Spool, SpoolOptions};
use tallyman_protocol::event::{
    Event, FacilityId, GatewayId, Header, Item, ItemCode, Line, Location, Quantity, SourceName, Uom,
};
use tallyman_tests::agent::{Agent, read_outbox, stdin_to_file_config};
use tallyman_tests::tallyman_bin;

fn tallyman(args: &[&str], data_dir: Option<&Path>) -> Output {
    let mut cmd = Command::new(tallyman_bin());
    if let Some(d) = data_dir {
        cmd.arg("spool").arg("--data-dir").arg(d);
    }
    cmd.args(args).output().unwrap()
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn config_check_reports_every_error_with_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let good = stdin_to_file_config(dir.path(), "consume", "");
    let out = tallyman(&["config", "check", good.to_str().unwrap()], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[agent]\nfacility = \"north\"\ngateway = \"gw 1\"\n\n[spool]\ncomit_window_ms = 2\n\n[[sources]]\nname = \"stdin\"\ntype = \"stdin\"\n\n[[sinks]]\nname = \"outbox\"\ntype = \"file\"\n",
    )
    .unwrap();
    let out = tallyman(&["config", "check", bad.to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with(&format!("{}:3:11 agent.gateway: ", bad.display())),
        "{stderr}"
    );
    assert!(
        lines[1].contains(":6:1 spool.comit_window_ms: "),
        "{stderr}"
    );
    assert!(
        lines[1].contains("commit_window_ms"),
        "a suggestion: {stderr}"
    );
}

#[test]
fn spool_commands_on_a_stopped_agent_and_refusal_while_it_runs() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("outbox.jsonl")).unwrap(); // the sink cannot deliver
    let mut agent = Agent::start(&config, &dir.path().join("agent.log"));
    let scans: Vec<String> = (0..3)
        .map(|n| format!("01095011010209171730123121C{n}"))
        .collect();
    agent.send(&scans).unwrap();
    assert!(agent.wait_feedback(Duration::from_secs(30), |fb| fb.lines.len() == 3));
    let ids: Vec<String> = agent
        .feedback_lines()
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect();

    let busy = tallyman(&["stats"], Some(&data));
    assert!(!busy.status.success());
    let why = String::from_utf8_lossy(&busy.stderr);
    assert!(
        why.contains("in use"),
        "a clear refusal while the agent holds the spool: {why}"
    );

    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));

    let stats = tallyman(&["stats"], Some(&data));
    assert!(
        stats.status.success(),
        "{}",
        String::from_utf8_lossy(&stats.stderr)
    );
    let stats = &json_lines(&stats)[0];
    assert_eq!(stats["stats"]["events_stored"], 3, "{stats}");
    assert_eq!(stats["self_check"]["problems"], serde_json::json!([]));

    let list = json_lines(&tallyman(&["list"], Some(&data)));
    let listed: Vec<&str> = list
        .iter()
        .map(|l| l["event"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().map(String::as_str).collect::<Vec<_>>());

    let show = tallyman(&["show", &ids[1]], Some(&data));
    assert!(show.status.success());
    assert_eq!(json_lines(&show)[0]["event"]["id"], ids[1].as_str());
    let missing = tallyman(
        &["show", "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11"],
        Some(&data),
    );
    assert_eq!(missing.status.code(), Some(1));

    assert!(json_lines(&tallyman(&["dlq", "list"], Some(&data))).is_empty());
}

fn event(n: u64) -> Event {
    let now = tallyman_agent::clock::now();
    let header = Header {
        id: tallyman_agent::clock::new_event_id(now),
        facility: FacilityId::new("test").unwrap(),
        gateway: GatewayId::new("gw-test").unwrap(),
        source: SourceName::new("stdin").unwrap(),
        seq: n,
        captured_at: now,
    };
    let line = Line::new(
        Item::Code(ItemCode::new("GLOVE-M").unwrap()),
        Quantity::new("2").unwrap(),
        Uom::new("Box").unwrap(),
    );
    Event::consumption(header, Location::new("WH/Stock").unwrap(), vec![line]).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_replayed_by_command_is_delivered() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = stdin_to_file_config(dir.path(), "consume", "");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();

    // A spool where the sink `outbox` gave up on the first event.
    let (spool, _) =
        Spool::open(SpoolOptions::new(data.join("spool"), vec!["outbox".into()])).unwrap();
    let first = spool.append(event(1)).await.unwrap();
    let second = spool.append(event(2)).await.unwrap();
    let now = tallyman_agent::clock::now();
    let info = DeadLetterInfo {
        reason: "the hub refused it: 400 unknown product".into(),
        attempts: 3,
        last_error: Some("503".into()),
        first_attempt_at: now,
        last_attempt_at: now,
    };
    spool.dead_letter("outbox", first.seq, info).unwrap();
    spool.delivered("outbox", &[second.seq]).unwrap();
    spool.close().await.unwrap();
    drop(spool);

    let dead = json_lines(&tallyman(&["dlq", "list"], Some(&data)));
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["event_id"], first.id.to_string());
    assert_eq!(dead[0]["reason"], "the hub refused it: 400 unknown product");
    assert_eq!(dead[0]["attempts"], 3);

    let replay = tallyman(&["dlq", "replay", &first.id.to_string()], Some(&data));
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    assert_eq!(json_lines(&replay)[0]["replayed"], 1);

    // The agent delivers the replayed event to the file sink.
    let agent = Agent::start(&config, &dir.path().join("agent.log"));
    let outbox = data.join("outbox.jsonl");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !read_outbox(&outbox).contains_key(&first.id.to_string()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replayed event was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = agent.terminate(Duration::from_secs(30));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert!(json_lines(&tallyman(&["dlq", "list"], Some(&data))).is_empty());
}
