use std::path::Path;

use tallyman_protocol::signed::{Addressee, SigningKey, sign_config, sign_payload};

use super::*;
use crate::fleet::store::{CURRENT, PENDING};

fn key() -> SigningKey {
    SigningKey::from_seed("central-it", [7; 32]).unwrap()
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_unix_millis(ms).unwrap()
}

const NOW: i64 = 1_800_000_000_000;

fn now() -> Timestamp {
    at(NOW)
}

/// The local file: `[mqtt]` at `endpoint`, a file sink, `[remote]` trusting [`key`].
fn local_text(data: &Path, endpoint: &str) -> String {
    format!(
        r#"[agent]
facility = "north"
gateway = "gw-1"
data_dir = "{}"

[mqtt]
endpoint = "{endpoint}"

[[sources]]
name = "dock"
type = "serial"
path = "/nonexistent/tty"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"

[remote]
trusted_keys = ["{}"]
rollback_after_secs = 10
"#,
        data.display(),
        key().public_line()
    )
}

fn local(data: &Path) -> Config {
    tallyman_config::parse_str(&local_text(data, "mqtt://127.0.0.1:1"), "local.toml").unwrap()
}

/// A pushed configuration: the local one's sections without `[agent]` and `[remote]`, plus
/// `extra`.
fn pushed_toml(endpoint: &str, extra: &str) -> String {
    format!(
        r#"[mqtt]
endpoint = "{endpoint}"

[[sources]]
name = "dock"
type = "serial"
path = "/nonexistent/tty"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
{extra}"#
    )
}

const AUDIT: &str = "\n[[sinks]]\nname = \"audit\"\ntype = \"file\"\npath = \"audit.jsonl\"\n";

fn signed(version: u64, toml: &str) -> Vec<u8> {
    sign_config(&key(), version, None, None, toml, at(NOW - 60_000))
        .unwrap()
        .into_bytes()
}

fn decide_with(doc: &[u8], local: &Config, running: Option<u64>, state: &StateFile) -> Decision {
    decide(
        doc,
        &Context {
            local,
            anchors: &anchors(local),
            running_version: running,
            state,
            now: now(),
        },
    )
}

fn reason(d: Decision) -> (Option<u64>, String) {
    match d {
        Decision::Reject { version, reason } => (version, reason.to_string()),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_valid_document_is_applied_with_the_local_agent_and_remote() {
    let dir = tempfile::tempdir().unwrap();
    let local = local(dir.path());
    let doc = signed(3, &pushed_toml("mqtt://127.0.0.1:1", AUDIT));
    let Decision::Apply { version, config } =
        decide_with(&doc, &local, None, &StateFile::default())
    else {
        panic!("not applied")
    };
    assert_eq!(version, 3);
    assert_eq!(config.sinks.len(), 2);
    assert_eq!(config.agent, local.agent);
    assert_eq!(config.remote, local.remote);
    // For the facility, for everyone: also this gateway's.
    let all: Addressee = "north/all".parse().unwrap();
    let for_all = sign_config(
        &key(),
        4,
        None,
        Some(&all),
        &pushed_toml("mqtt://h:1", ""),
        now(),
    )
    .unwrap();
    assert!(matches!(
        decide_with(for_all.as_bytes(), &local, Some(3), &StateFile::default()),
        Decision::Apply { version: 4, .. }
    ));
}

#[test]
fn documents_decided_before_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let local = local(dir.path());
    let doc = signed(3, &pushed_toml("mqtt://127.0.0.1:1", AUDIT));
    let mut state = StateFile::default();
    state.remember(&digest(&doc));
    state.attempted(3);
    // Running, rolled back or rejected: the same bytes are ignored, not refused again.
    assert_eq!(decide_with(&doc, &local, Some(3), &state), Decision::Ignore);
    assert_eq!(decide_with(&doc, &local, None, &state), Decision::Ignore);
    // Garbage remembered as refused is ignored too.
    state.remember(&digest(b"garbage"));
    assert_eq!(
        decide_with(b"garbage", &local, None, &state),
        Decision::Ignore
    );
    // Clearing the retained document on the broker (an empty message) is not a refusal.
    let fresh = StateFile::default();
    assert_eq!(decide_with(b"", &local, Some(3), &fresh), Decision::Ignore);
}

#[test]
fn each_refusal_has_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let local = local(dir.path());
    let fresh = StateFile::default();
    let ok = pushed_toml("mqtt://127.0.0.1:1", AUDIT);

    // Unknown key id.
    let stranger = SigningKey::from_seed("stranger", [9; 32]).unwrap();
    let doc = sign_config(&stranger, 5, None, None, &ok, now()).unwrap();
    assert_eq!(
        reason(decide_with(doc.as_bytes(), &local, None, &fresh)),
        (None, "unknown key id `stranger`".into())
    );

    // Tampered: one byte of the payload changed.
    let doc = String::from_utf8(signed(5, &ok)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&doc).unwrap();
    let mut payload = v["payload"].as_str().unwrap().to_owned();
    let last = payload.pop().unwrap();
    payload.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = serde_json::json!({
        "key_id": v["key_id"], "payload": payload, "signature": v["signature"],
    });
    let got = reason(decide_with(
        tampered.to_string().as_bytes(),
        &local,
        None,
        &fresh,
    ));
    assert!(
        got.1 == "bad signature" || got.1.contains("base64"),
        "{got:?}"
    );
    let mut sig = v["signature"].as_str().unwrap().to_owned();
    sig.replace_range(0..1, if sig.starts_with('A') { "B" } else { "A" });
    let tampered = serde_json::json!({
        "key_id": v["key_id"], "payload": v["payload"], "signature": sig,
    });
    assert_eq!(
        reason(decide_with(
            tampered.to_string().as_bytes(),
            &local,
            None,
            &fresh
        )),
        (None, "bad signature".into())
    );

    // Not signed at all; not JSON.
    assert_eq!(
        reason(decide_with(ok.as_bytes(), &local, None, &fresh)).0,
        None
    );
    assert_eq!(
        reason(decide_with(&[0xff; 10], &local, None, &fresh)).0,
        None
    );

    // Older, same, already attempted.
    assert_eq!(
        reason(decide_with(&signed(2, &ok), &local, Some(3), &fresh)),
        (
            Some(2),
            "version 2 is not newer than the running version 3".into()
        )
    );
    assert_eq!(
        reason(decide_with(&signed(3, &ok), &local, Some(3), &fresh)).1,
        "version 3 is not newer than the running version 3"
    );
    let mut rolled_back = StateFile::default();
    rolled_back.attempted(7);
    assert_eq!(
        reason(decide_with(&signed(6, &ok), &local, Some(3), &rolled_back)).1,
        "version 6 is not newer than version 7, already attempted"
    );

    // Expired (the version is named).
    let doc = sign_config(&key(), 5, Some(at(NOW - 1)), None, &ok, at(NOW - 60_000)).unwrap();
    assert_eq!(
        reason(decide_with(doc.as_bytes(), &local, None, &fresh)),
        (Some(5), "expired at 2027-01-15T07:59:59.999Z".into())
    );

    // Another gateway.
    let other: Addressee = "north/gw-2".parse().unwrap();
    let doc = sign_config(&key(), 5, None, Some(&other), &ok, now()).unwrap();
    assert_eq!(
        reason(decide_with(doc.as_bytes(), &local, None, &fresh)).1,
        "signed for north/gw-2"
    );

    // Trust anchors in the document.
    let with_remote = format!(
        "{ok}\n[remote]\ntrusted_keys = [\"{}\"]\n",
        stranger.public_line()
    );
    assert_eq!(
        reason(decide_with(&signed(5, &with_remote), &local, None, &fresh)),
        (
            Some(5),
            "a pushed configuration may not contain [remote]".into()
        )
    );

    // Local settings.
    let moved = format!("[agent]\ngateway = \"gw-9\"\n{ok}");
    assert_eq!(
        reason(decide_with(&signed(5, &moved), &local, None, &fresh)).1,
        "a pushed configuration may not change [agent] gateway (the local file says gw-1, the \
         document gw-9)"
    );

    // Invalid content: every problem, with line and column.
    let invalid = format!("{ok}\n[health]\ninterval_secs = 0\n");
    let got = reason(decide_with(&signed(5, &invalid), &local, None, &fresh));
    assert!(
        got.1.starts_with("invalid configuration: config:")
            && got.1.contains("health.interval_secs"),
        "{got:?}"
    );

    // No [mqtt]: the gateway could not be reached again.
    let unreachable = "[[sources]]\nname = \"dock\"\ntype = \"stdin\"\n\
                       [[sinks]]\nname = \"outbox\"\ntype = \"file\"\n";
    assert!(
        reason(decide_with(&signed(5, unreachable), &local, None, &fresh))
            .1
            .contains("must keep [mqtt]")
    );

    // A command on config/set.
    let cmd = sign_payload(
        &key(),
        br#"{"type":"tallyman-command","id":"0190f1a0-0000-7000-8000-000000000000","issued":"2027-01-15T08:00:00Z","expires":"2027-01-15T08:10:00Z","target":null,"command":"status"}"#,
    );
    assert!(
        reason(decide_with(cmd.as_bytes(), &local, None, &fresh))
            .1
            .contains("this topic takes a tallyman-config")
    );
}

fn write(data: &Path, name: &str, bytes: &[u8]) {
    let dir = data.join("fleet");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
}

#[test]
fn start_up_runs_the_last_known_good_document_or_the_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    // Nothing pushed yet: the local file.
    let s = start(local(data), now());
    assert_eq!((s.version, s.config.clone()), (None, local(data)));
    assert!(s.fleet.is_some() && s.notes.is_empty());

    // A committed document.
    write(
        data,
        CURRENT,
        &signed(4, &pushed_toml("mqtt://127.0.0.1:1", AUDIT)),
    );
    let s = start(local(data), now());
    assert_eq!(s.version, Some(4));
    assert_eq!(s.config.sinks.len(), 2);
    let state = s.fleet.as_ref().unwrap().state();
    assert_eq!(state.highest_attempted, Some(4));
    assert!(s.notes.is_empty(), "{:?}", s.notes);

    // Its key is no longer trusted: the local file runs, and says why.
    let mut other = local(data);
    other.remote.as_mut().unwrap().trusted_keys[0].id = "rotated".into();
    let s = start(other, now());
    assert_eq!(s.version, None);
    assert!(
        s.notes[0]
            .1
            .contains("can no longer run: unknown key id `central-it`"),
        "{:?}",
        s.notes
    );

    // Without [remote] nothing pushed is read.
    let mut plain = local(data);
    plain.remote = None;
    let s = start(plain, now());
    assert!(s.fleet.is_none() && s.version.is_none());
}

#[test]
fn a_pending_document_found_at_start_up_is_discarded_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    write(
        data,
        CURRENT,
        &signed(4, &pushed_toml("mqtt://127.0.0.1:1", "")),
    );
    write(
        data,
        PENDING,
        &signed(5, &pushed_toml("mqtt://127.0.0.1:1", AUDIT)),
    );
    let s = start(local(data), now());
    // Version 4, whole: not a mix.
    assert_eq!(s.version, Some(4));
    assert_eq!(s.config.sinks.len(), 1);
    assert!(!data.join("fleet").join(PENDING).exists());
    let fleet = s.fleet.unwrap();
    let state = fleet.state();
    assert_eq!(state.highest_attempted, Some(5));
    let last = state.last.clone().unwrap();
    assert_eq!(last.status, Status::RolledBack);
    assert_eq!(last.version, Some(5));
    assert_eq!(last.running_version, Some(4));
    assert_eq!(
        last.reason.as_deref(),
        Some("the agent restarted while version 5 was being applied; running version 4")
    );
    // Written, so a second restart does not report it again.
    let again = start(local(data), now());
    assert_eq!(again.fleet.unwrap().state().last, Some(last));
    assert!(again.notes.is_empty());

    // Stopped after the commit's rename, before `applied` was recorded.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let doc = signed(6, &pushed_toml("mqtt://127.0.0.1:1", ""));
    write(data, CURRENT, &doc);
    let mut state = StateFile::default();
    state.attempted(6);
    state.last = Some(StateDoc {
        version: Some(6),
        status: Status::Pending,
        reason: None,
        running_version: None,
        at: now(),
    });
    crate::fleet::store::Store::open(data)
        .unwrap()
        .write_state(&state)
        .unwrap();
    let s = start(local(data), now());
    assert_eq!(s.version, Some(6));
    let last = s.fleet.unwrap().state().last.clone().unwrap();
    assert_eq!(
        (last.status, last.running_version),
        (Status::Applied, Some(6))
    );

    // No previous document: back to the local file.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    write(
        data,
        PENDING,
        &signed(1, &pushed_toml("mqtt://127.0.0.1:1", AUDIT)),
    );
    let s = start(local(data), now());
    assert_eq!(s.version, None);
    let last = s.fleet.unwrap().state().last.clone().unwrap();
    assert_eq!(
        last.reason.as_deref(),
        Some("the agent restarted while version 1 was being applied; running the local file")
    );
}

fn state_on_disk(data: &Path) -> Option<StateDoc> {
    let bytes = std::fs::read(data.join("fleet").join("state.json")).ok()?;
    serde_json::from_slice::<StateFile>(&bytes).ok()?.last
}

#[tokio::test(start_paused = true)]
async fn a_configuration_whose_broker_never_answers_is_rolled_back_at_the_deadline() {
    use tallyman_protocol::event::{FacilityId, GatewayId};
    use tallyman_protocol::topic::Target;

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let s = start(local(data), now());
    let fleet = s.fleet.unwrap().with_clock(now);
    let mut options = crate::spool::SpoolOptions::new(data.join("spool"), vec!["outbox".into()]);
    options.commit_window = Duration::from_millis(1);
    let (spool, _) = crate::spool::Spool::open(options).unwrap();
    let (root, agent) = crate::shutdown::channel();
    let mut sup = Supervisor::new(spool.clone(), crate::health::Registry::new(), agent.clone());
    sup.apply(&s.config, None).await.unwrap();
    let before = sup.parts();

    // Adds a sink; the broker (as before) accepts no connection.
    let doc = signed(2, &pushed_toml("mqtt://127.0.0.1:1", AUDIT));
    let topic = Topic::ConfigSet {
        facility: FacilityId::new("north").unwrap(),
        target: Target::Gateway(GatewayId::new("gw-1").unwrap()),
    };
    let (tx, rx) = mpsc::channel(8);
    let (stop_fleet, stop) = agent.child();
    let started = Instant::now();
    tx.send(Received {
        topic: topic.clone(),
        payload: doc.clone(),
    })
    .await
    .unwrap();
    let driver = async {
        let mut seen_pending = false;
        let rolled_back = loop {
            match state_on_disk(data) {
                Some(d) if d.status == Status::Pending => {
                    assert!(data.join("fleet").join(PENDING).exists());
                    seen_pending = true;
                }
                Some(d) if d.status == Status::RolledBack => break d,
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert!(seen_pending);
        assert!(Instant::now() - started >= Duration::from_secs(10));
        // The same document again (a retained one, at the next connection): nothing.
        tx.send(Received {
            topic,
            payload: doc.clone(),
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(state_on_disk(data), Some(rolled_back.clone()));
        stop_fleet.fire();
        rolled_back
    };
    let ((), last) = tokio::join!(fleet.run(&mut sup, rx, stop), driver);
    assert_eq!(last.version, Some(2));
    assert_eq!(last.running_version, None);
    let why = last.reason.unwrap();
    assert!(
        why.starts_with("the central broker was not reachable within 10 s: nothing accepts connections at mqtt://127.0.0.1:1"),
        "{why}"
    );
    // Back to the local file, whole; the unchanged sink never stopped.
    assert_eq!(sup.running().unwrap().1, None);
    assert!(!sup.parts().sinks.contains_key("audit"));
    assert_eq!(sup.parts().sinks["outbox"], before.sinks["outbox"]);
    assert!(!data.join("fleet").join(PENDING).exists());
    // The sink of the rolled-back configuration holds nothing back.
    assert!(
        spool
            .stats()
            .sinks
            .iter()
            .any(|s| s.name == "audit" && !s.configured)
    );

    root.fire();
    sup.stop().await;
    spool.close().await.unwrap();
}
