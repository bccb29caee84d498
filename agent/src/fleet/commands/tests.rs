#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use tallyman_protocol::event::Kind;
use tallyman_protocol::signed::{Addressee, SigningKey};

use super::*;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse(s).unwrap()
}

const ISSUED: &str = "2026-03-01T10:00:00Z";
const EXPIRES: &str = "2026-03-01T10:10:00Z";
const NOW: &str = "2026-03-01T10:01:00Z";

fn key() -> SigningKey {
    SigningKey::from_seed("central-it-2026", [7; 32]).unwrap()
}

fn context() -> Context {
    Context {
        facility: FacilityId::new("north").unwrap(),
        gateway: GatewayId::new("gw-1").unwrap(),
        anchors: vec![key().anchor()],
    }
}

/// Records what it was asked; answers from its fields.
#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    dead: Vec<DeadLetter>,
}

impl Fake {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
}

impl Controls for Fake {
    fn status(&self) -> Result<Value, ControlError> {
        self.call("status".into());
        Ok(json!({"agent_version": "0.1.0", "uptime_secs": 5}))
    }
    fn dead_letters(&self, sink: Option<&str>) -> Result<Vec<DeadLetter>, ControlError> {
        self.call(format!("dead_letters {sink:?}"));
        if sink == Some("nope") {
            return Err(ControlError::UnknownSink {
                name: "nope".into(),
            });
        }
        Ok(self.dead.clone())
    }
    fn replay(&self, sink: Option<&str>, which: &Selection) -> Result<usize, ControlError> {
        self.call(format!("replay {sink:?} {which:?}"));
        Ok(match which {
            Selection::All => self.dead.len(),
            Selection::Ids(ids) => ids.len(),
        })
    }
    fn flush(&self) -> Result<Vec<SinkBacklog>, ControlError> {
        self.call("flush".into());
        Ok(vec![SinkBacklog {
            name: "hub".into(),
            state: "retrying".into(),
            backlog: 3,
        }])
    }
    fn reconnect(&self, source: &str) -> Result<(), ControlError> {
        self.call(format!("reconnect {source}"));
        if source == "dock-1" {
            Ok(())
        } else {
            Err(ControlError::UnknownSource {
                name: source.into(),
            })
        }
    }
}

fn dead_letter(n: u64) -> DeadLetter {
    let id = EventId::new_v7(1_795_515_303_120 + n, [0; 10]);
    DeadLetter {
        sink: "hub".into(),
        seq: n,
        event_id: id,
        kind: Kind::Receipt,
        reason: "HTTP 400".into(),
        attempts: 1,
        last_error: None,
        first_attempt_at: ts(ISSUED),
        last_attempt_at: ts(ISSUED),
        replaying: false,
    }
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(0x0196_0000_0000_7000_8000_0000_0000_0000u128 | n)
}

struct Setup {
    _dir: tempfile::TempDir,
    seen: SeenIds,
    fake: Fake,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let seen = SeenIds::open(dir.path(), ts(NOW)).unwrap();
    Setup {
        _dir: dir,
        seen,
        fake: Fake {
            dead: vec![dead_letter(1), dead_letter(2), dead_letter(3)],
            ..Fake::default()
        },
    }
}

fn signed(n: u128, name: &str, args: &[(&str, &str)], target: Option<&str>) -> Vec<u8> {
    let command = signed::Command {
        id: id(n),
        name: CommandName::new(name).unwrap(),
        args: args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    };
    let target = target.map(|t| t.parse::<Addressee>().unwrap());
    signed::sign_command(&key(), &command, target.as_ref(), ts(ISSUED), ts(EXPIRES))
        .unwrap()
        .into_bytes()
}

impl Setup {
    fn send(&self, topic: &str, payload: &[u8]) -> CommandResult {
        handle(
            &CommandName::new(topic).unwrap(),
            payload,
            &context(),
            &self.seen,
            &self.fake,
            ts(NOW),
        )
    }
}

fn refused(r: &CommandResult) -> &str {
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.result, None);
    r.error.as_deref().unwrap()
}

#[test]
fn status() {
    let s = setup();
    let r = s.send("status", &signed(1, "status", &[], Some("north/gw-1")));
    assert!(r.ok, "{r:?}");
    assert_eq!(r.id, Some(id(1)));
    assert_eq!(r.command, "status");
    assert_eq!(r.result.unwrap()["uptime_secs"], 5);
    assert_eq!(r.at, ts(NOW));
    assert_eq!(s.fake.calls(), vec!["status"]);
}

#[test]
fn the_result_is_the_documented_json() {
    let s = setup();
    let r = s.send("flush", &signed(1, "flush", &[], None));
    let v: Value = serde_json::from_slice(&r.to_json()).unwrap();
    assert_eq!(
        v,
        json!({
            "id": id(1).to_string(),
            "command": "flush",
            "ok": true,
            "result": {"sinks": [{"name": "hub", "state": "retrying", "backlog": 3}]},
            "error": null,
            "at": "2026-03-01T10:01:00.000Z",
        })
    );
}

#[test]
fn dlq_list_is_bounded_and_filters_by_sink() {
    let s = setup();
    let r = s.send("dlq-list", &signed(1, "dlq-list", &[("limit", "2")], None));
    let v = r.result.unwrap();
    assert_eq!(v["total"], 3);
    assert_eq!(v["truncated"], true);
    assert_eq!(v["dead_letters"].as_array().unwrap().len(), 2);
    assert_eq!(v["dead_letters"][0]["reason"], "HTTP 400");
    let r = s.send("dlq-list", &signed(2, "dlq-list", &[("sink", "hub")], None));
    assert_eq!(r.result.unwrap()["truncated"], false);
    let r = s.send(
        "dlq-list",
        &signed(3, "dlq-list", &[("sink", "nope")], None),
    );
    assert_eq!(refused(&r), "unknown sink `nope`");
    assert_eq!(r.id, Some(id(3)));
    for (n, bad) in [(4, "0"), (5, "1001"), (6, "many")] {
        let r = s.send("dlq-list", &signed(n, "dlq-list", &[("limit", bad)], None));
        assert_eq!(
            refused(&r),
            format!("dlq-list: `limit` is a number from 1 to 1000, found `{bad}`")
        );
    }
    assert_eq!(
        s.fake.calls(),
        vec![
            "dead_letters None",
            "dead_letters Some(\"hub\")",
            "dead_letters Some(\"nope\")"
        ]
    );
}

#[test]
fn dlq_replay_all_or_ids() {
    let s = setup();
    let r = s.send(
        "dlq-replay",
        &signed(1, "dlq-replay", &[("ids", "all")], None),
    );
    assert_eq!(r.result.unwrap(), json!({"replayed": 3}));
    let two = format!("{}, {}", dead_letter(1).event_id, dead_letter(2).event_id);
    let r = s.send(
        "dlq-replay",
        &signed(2, "dlq-replay", &[("ids", &two), ("sink", "hub")], None),
    );
    assert_eq!(r.result.unwrap(), json!({"replayed": 2}));
    assert_eq!(s.fake.calls()[0], "replay None All");
    assert!(s.fake.calls()[1].starts_with("replay Some(\"hub\") Ids(["));

    let r = s.send("dlq-replay", &signed(3, "dlq-replay", &[], None));
    assert_eq!(
        refused(&r),
        "dlq-replay: `ids` is required: `all`, or event ids separated by commas"
    );
    let r = s.send(
        "dlq-replay",
        &signed(4, "dlq-replay", &[("ids", "x1")], None),
    );
    assert!(
        refused(&r).starts_with("dlq-replay: `ids`: invalid event id"),
        "{r:?}"
    );
    let r = s.send(
        "dlq-replay",
        &signed(5, "dlq-replay", &[("ids", " , ")], None),
    );
    assert!(refused(&r).contains("found none"));
    assert_eq!(s.fake.calls().len(), 2);
}

#[test]
fn flush_and_reconnect() {
    let s = setup();
    assert!(s.send("flush", &signed(1, "flush", &[], None)).ok);
    let r = s.send(
        "reconnect",
        &signed(2, "reconnect", &[("source", "dock-1")], None),
    );
    assert_eq!(
        r.result.unwrap(),
        json!({"source": "dock-1", "restarting": true})
    );
    let r = s.send(
        "reconnect",
        &signed(3, "reconnect", &[("source", "dock-9")], None),
    );
    assert_eq!(refused(&r), "unknown source `dock-9`");
    let r = s.send("reconnect", &signed(4, "reconnect", &[], None));
    assert_eq!(refused(&r), "reconnect: `source` is required");
    assert_eq!(
        s.fake.calls(),
        vec!["flush", "reconnect dock-1", "reconnect dock-9"]
    );
}

#[test]
fn unknown_arguments_are_refused() {
    let s = setup();
    let r = s.send("status", &signed(1, "status", &[("verbose", "1")], None));
    assert_eq!(
        refused(&r),
        "status: unknown argument `verbose`; this command takes none"
    );
    let r = s.send(
        "reconnect",
        &signed(2, "reconnect", &[("sink", "hub")], None),
    );
    assert_eq!(
        refused(&r),
        "reconnect: unknown argument `sink`; this command takes source"
    );
    assert!(s.fake.calls().is_empty());
}

#[test]
fn refused_unsigned() {
    let s = setup();
    let r = s.send("status", br#"{"command":"status"}"#);
    assert!(
        refused(&r).starts_with("the document is not signed"),
        "{r:?}"
    );
    assert_eq!(r.id, None);
    let r = s.send("status", b"status please");
    assert!(
        refused(&r).starts_with("not a signed document: not JSON"),
        "{r:?}"
    );
    assert!(s.fake.calls().is_empty());
}

#[test]
fn refused_bad_signature_and_unknown_key() {
    let s = setup();
    let forged = SigningKey::from_seed("central-it-2026", [9; 32]).unwrap();
    let command = signed::Command {
        id: id(1),
        name: CommandName::new("status").unwrap(),
        args: BTreeMap::new(),
    };
    let doc = signed::sign_command(&forged, &command, None, ts(ISSUED), ts(EXPIRES)).unwrap();
    let r = s.send("status", doc.as_bytes());
    assert_eq!(refused(&r), "bad signature");
    assert_eq!(r.id, None, "nothing of an unverified command is believed");
    let rogue = SigningKey::from_seed("rogue", [9; 32]).unwrap();
    let doc = signed::sign_command(&rogue, &command, None, ts(ISSUED), ts(EXPIRES)).unwrap();
    assert_eq!(
        refused(&s.send("status", doc.as_bytes())),
        "unknown key id `rogue`"
    );
    assert!(s.fake.calls().is_empty());
    // Refusals do not use up the id.
    assert!(s.send("status", &signed(1, "status", &[], None)).ok);
}

#[test]
fn refused_expired_and_other_target() {
    let s = setup();
    let command = signed::Command {
        id: id(1),
        name: CommandName::new("status").unwrap(),
        args: BTreeMap::new(),
    };
    let doc = signed::sign_command(
        &key(),
        &command,
        None,
        ts("2026-03-01T09:00:00Z"),
        ts("2026-03-01T09:10:00Z"),
    )
    .unwrap();
    let r = s.send("status", doc.as_bytes());
    assert_eq!(refused(&r), "expired at 2026-03-01T09:10:00.000Z");
    assert_eq!(r.id, Some(id(1)));
    let r = s.send("status", &signed(2, "status", &[], Some("north/gw-2")));
    assert_eq!(refused(&r), "signed for north/gw-2");
    let r = s.send("status", &signed(3, "status", &[], Some("south/all")));
    assert_eq!(refused(&r), "signed for south/all");
    assert!(
        s.send("status", &signed(4, "status", &[], Some("north/all")))
            .ok
    );
    assert_eq!(s.fake.calls().len(), 1);
}

#[test]
fn refused_replayed() {
    let s = setup();
    let doc = signed(1, "dlq-replay", &[("ids", "all")], None);
    assert!(s.send("dlq-replay", &doc).ok);
    let r = s.send("dlq-replay", &doc);
    assert_eq!(
        refused(&r),
        format!("command id {} was already received (a replay)", id(1))
    );
    assert_eq!(r.id, Some(id(1)));
    assert_eq!(s.fake.calls().len(), 1, "the replay did not run");
}

#[test]
fn refused_unknown_command_and_a_command_on_another_topic() {
    let s = setup();
    let r = s.send("self-destruct", &signed(1, "self-destruct", &[], None));
    assert_eq!(refused(&r), "unknown command `self-destruct`");
    let r = s.send("status", &signed(2, "dlq-replay", &[("ids", "all")], None));
    assert_eq!(
        refused(&r),
        "signed as command `dlq-replay`, received on cmd/status"
    );
    assert!(s.fake.calls().is_empty());
}

#[test]
fn refused_a_configuration_on_a_command_topic() {
    let s = setup();
    let doc = signed::sign_config(&key(), 3, None, None, "", ts(ISSUED)).unwrap();
    let r = s.send("status", doc.as_bytes());
    assert_eq!(
        refused(&r),
        "the document is a tallyman-config; this topic takes a tallyman-command"
    );
    assert_eq!(r.id, None);
}

#[test]
fn subscriptions_are_the_gateway_and_its_facility() {
    let c = context();
    let topics: Vec<String> = subscriptions(&c.facility, &c.gateway)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        topics,
        vec![
            "tallyman/v1/north/gw-1/cmd/+",
            "tallyman/v1/north/all/cmd/+"
        ]
    );
}

/// The agent's own controls over a real spool.
mod agent_controls {
    use super::*;
    use crate::spool::{DeadLetterInfo, SpoolOptions};

    async fn spool_with_a_dead_letter(dir: &std::path::Path) -> (Spool, EventId) {
        let mut o = SpoolOptions::new(dir.join("spool"), vec!["hub".into(), "file".into()]);
        o.commit_window = std::time::Duration::from_millis(1);
        let (spool, _) = Spool::open(o).unwrap();
        let event = crate::spool::tests::receipt();
        let event_id = event.id();
        let seq = spool.append(event).await.unwrap().seq;
        spool
            .dead_letter(
                "hub",
                seq,
                DeadLetterInfo {
                    reason: "HTTP 400".into(),
                    attempts: 1,
                    last_error: None,
                    first_attempt_at: ts(ISSUED),
                    last_attempt_at: ts(ISSUED),
                },
            )
            .unwrap();
        (spool, event_id)
    }

    fn controls(spool: &Spool, dir: &std::path::Path) -> (AgentControls, RetryNow, Arc<Restarts>) {
        let registry = Registry::new();
        registry.source("dock-1", "serial");
        registry.source("handhelds", "mqtt");
        registry.sink("hub", "http").retrying("503");
        let retry_now = RetryNow::new();
        let restarts = Restarts::new();
        let health = crate::health::publish::Settings {
            identity: crate::health::report::Identity {
                facility: "north".into(),
                gateway: "gw-1".into(),
                agent_version: "0.1.0".into(),
                config_version: None,
                interval: std::time::Duration::from_secs(30),
            },
            data_dir: dir.to_owned(),
            topic: Topic::Health {
                facility: FacilityId::new("north").unwrap(),
                gateway: GatewayId::new("gw-1").unwrap(),
            },
        };
        let c = AgentControls::new(
            registry,
            spool.clone(),
            health,
            retry_now.clone(),
            Arc::clone(&restarts),
        );
        (c, retry_now, restarts)
    }

    #[tokio::test]
    async fn status_dead_letters_replay_flush_reconnect() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, event_id) = spool_with_a_dead_letter(dir.path()).await;
        let (c, _retry_now, restarts) = controls(&spool, dir.path());
        let restart = restarts.register("dock-1");

        c.set_config_version(Some(4));
        let status = c.status().unwrap();
        assert_eq!(status["config_version"], 4);
        assert_eq!(status["gateway"], "gw-1");
        assert_eq!(status["sinks"]["hub"]["dead_letters"], 1);
        assert_eq!(status["sources"]["dock-1"]["state"], "starting");
        assert_eq!(status["spool"]["events_stored"], 1);

        let dead = c.dead_letters(Some("hub")).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].event_id, event_id);
        assert!(c.dead_letters(Some("file")).unwrap().is_empty());
        assert_eq!(
            c.dead_letters(Some("nope")).unwrap_err().to_string(),
            "unknown sink `nope`"
        );
        assert_eq!(c.replay(None, &Selection::Ids(vec![event_id])).unwrap(), 1);
        assert!(c.dead_letters(None).unwrap()[0].replaying);

        let sinks = c.flush().unwrap();
        assert_eq!(
            sinks,
            vec![
                SinkBacklog {
                    name: "file".into(),
                    state: "unknown".into(),
                    backlog: 1
                },
                SinkBacklog {
                    name: "hub".into(),
                    state: "retrying".into(),
                    backlog: 0
                },
            ]
        );

        c.reconnect("dock-1").unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), restart.requested())
            .await
            .unwrap();
        assert_eq!(
            c.reconnect("handhelds").unwrap_err().to_string(),
            "source `handhelds` cannot be restarted: a mqtt source has no device to reopen; \
             only serial sources restart"
        );
        assert_eq!(
            c.reconnect("dock-9").unwrap_err().to_string(),
            "unknown source `dock-9`"
        );
        spool.close().await.unwrap();
    }
}
