//! The MQTT topic scheme: the data-driven table `protocol/test_data/topics.cases` (format in
//! its header), the build/parse round trip for arbitrary topics, and the subscription filters
//! checked against an MQTT topic matcher written from the MQTT 3.1.1 rules (§4.7).

// Test code: a panic is how a helper reports a failed expectation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use proptest::prelude::*;
use tallyman_protocol::event::{FacilityId, GatewayId, Kind, SourceName};
use tallyman_protocol::topic::{CommandName, Filter, Target, Topic};

/// `\xNN` → that byte, `\\` → `\`.
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 4;
        } else if b[i] == b'\\' && b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// One case: `ok TOPIC` or `err KIND TOPIC`. Returns a failure message, if any.
fn check(line_no: usize, line: &str) -> Option<String> {
    let (verdict, rest) = line.split_once(' ').unwrap_or((line, ""));
    let (expected_kind, topic) = match verdict {
        "ok" => (None, rest),
        "err" => {
            let (kind, topic) = rest.split_once(' ').unwrap_or((rest, ""));
            (Some(kind), topic)
        }
        other => return Some(format!("line {line_no}: unknown verdict {other:?}")),
    };
    let bytes = unescape(topic);
    let Ok(topic) = String::from_utf8(bytes) else {
        return Some(format!(
            "line {line_no}: the topic is not UTF-8 (MQTT topics are)"
        ));
    };
    match (Topic::parse(&topic), expected_kind) {
        (Ok(t), None) if t.to_string() == topic => None,
        (Ok(t), None) => Some(format!("line {line_no}: {topic:?} prints back as {t}")),
        (Ok(t), Some(k)) => Some(format!(
            "line {line_no}: {topic:?} should be refused ({k}) but parsed as {t:?}"
        )),
        (Err(e), None) => Some(format!("line {line_no}: {topic:?} was refused: {e}")),
        (Err(e), Some(k)) if e.kind.as_str() == k => None,
        (Err(e), Some(k)) => Some(format!(
            "line {line_no}: {topic:?} refused as {} ({e}), expected {k}",
            e.kind.as_str()
        )),
    }
}

#[test]
fn topic_cases() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/topics.cases");
    let text = fs::read_to_string(path).unwrap();
    let mut count = 0;
    let mut failures = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        count += 1;
        failures.extend(check(i + 1, line));
    }
    assert!(count >= 50, "only {count} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Whether an MQTT topic filter matches a topic name: levels split on `/`, `+` matches exactly
/// one level, `#` (last) matches the parent and any number of levels below.
fn mqtt_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn segment() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

fn facility() -> impl Strategy<Value = FacilityId> {
    segment().prop_map(|s| FacilityId::new(s).unwrap())
}

fn gateway() -> impl Strategy<Value = GatewayId> {
    segment().prop_filter_map("all", |s| GatewayId::new(s).ok())
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        3 => gateway().prop_map(Target::Gateway),
        1 => Just(Target::All),
    ]
}

fn command() -> impl Strategy<Value = CommandName> {
    "[a-z0-9-]{1,32}".prop_map(|s| CommandName::new(s).unwrap())
}

fn topic() -> impl Strategy<Value = Topic> {
    let f = facility;
    let g = gateway;
    prop_oneof![
        (f(), g(), proptest::sample::select(Kind::ALL.to_vec())).prop_map(
            |(facility, gateway, kind)| Topic::Events {
                facility,
                gateway,
                kind
            }
        ),
        (f(), g()).prop_map(|(facility, gateway)| Topic::InEvents { facility, gateway }),
        (f(), g()).prop_map(|(facility, gateway)| Topic::InScans { facility, gateway }),
        (f(), g()).prop_map(|(facility, gateway)| Topic::InRejected { facility, gateway }),
        (f(), g(), segment()).prop_map(|(facility, gateway, s)| Topic::Feedback {
            facility,
            gateway,
            source: SourceName::new(s).unwrap()
        }),
        (f(), g()).prop_map(|(facility, gateway)| Topic::Status { facility, gateway }),
        (f(), g()).prop_map(|(facility, gateway)| Topic::Health { facility, gateway }),
        (f(), target()).prop_map(|(facility, target)| Topic::ConfigSet { facility, target }),
        (f(), g()).prop_map(|(facility, gateway)| Topic::ConfigState { facility, gateway }),
        (f(), target(), command()).prop_map(|(facility, target, name)| Topic::Cmd {
            facility,
            target,
            name
        }),
        (f(), g(), command()).prop_map(|(facility, gateway, name)| Topic::CmdResult {
            facility,
            gateway,
            name
        }),
    ]
}

proptest! {
    #[test]
    fn parse_of_display_is_identity(t in topic()) {
        let text = t.to_string();
        prop_assert!(!text.contains(['+', '#', '\0']), "{}", text);
        prop_assert_eq!(Topic::parse(&text).unwrap(), t);
    }

    /// The agent's filters receive exactly the topics addressed to it: inbound events and
    /// scans, config/set and commands for it or its facility — never its own publications
    /// (in/rejected, results, status …), never another gateway's or facility's.
    #[test]
    fn agent_filters_match_exactly_its_inbound_topics(
        t in topic(),
        f in facility(),
        g in gateway(),
    ) {
        let filters = Filter::for_agent(&f, &g);
        let text = t.to_string();
        let by_mqtt = filters.iter().any(|flt| mqtt_matches(&flt.to_string(), &text));
        let by_type = filters.iter().any(|flt| flt.matches(&t));
        let mine = t.facility() == &f
            && (t.target() == Target::Gateway(g.clone()) || t.target() == Target::All);
        let inbound = matches!(
            t,
            Topic::InEvents { .. } | Topic::InScans { .. } | Topic::ConfigSet { .. } | Topic::Cmd { .. }
        );
        prop_assert_eq!(by_mqtt, mine && inbound, "{}", text);
        prop_assert_eq!(by_type, by_mqtt, "{}", text);
    }

    /// The same, for topics made to be the agent's own (random topics rarely are).
    #[test]
    fn agent_filters_on_its_own_topics(t in topic()) {
        let f = t.facility().clone();
        let g = match t.target() {
            Target::Gateway(g) => g,
            Target::All => GatewayId::new("gw-1").unwrap(),
        };
        let text = t.to_string();
        let filters = Filter::for_agent(&f, &g);
        let by_mqtt = filters.iter().any(|flt| mqtt_matches(&flt.to_string(), &text));
        let inbound = matches!(
            t,
            Topic::InEvents { .. } | Topic::InScans { .. } | Topic::ConfigSet { .. } | Topic::Cmd { .. }
        );
        prop_assert_eq!(by_mqtt, inbound, "{}", text);
        prop_assert_eq!(filters.iter().any(|flt| flt.matches(&t)), inbound, "{}", text);
    }

    #[test]
    fn hub_events_filter(t in topic(), g in proptest::option::of(gateway())) {
        let filter = Filter::Events { facility: t.facility().clone(), gateway: g };
        prop_assert_eq!(
            mqtt_matches(&filter.to_string(), &t.to_string()),
            filter.matches(&t),
            "{} vs {}", filter, t
        );
    }
}
