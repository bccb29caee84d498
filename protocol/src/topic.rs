//! The typed MQTT topic scheme (PRODUCT §6).
//!
//! Contract:
//! * Every topic is `tallyman/v1/{facility}/{gateway}/{tail}` with one of the tails
//!   `events/{kind}`, `in/events`, `in/scans`, `in/rejected`, `feedback/{source}`, `status`,
//!   `health`, `config/set`, `config/state`, `cmd/{name}`, `cmd/{name}/result`.
//! * `{gateway}` may be the literal `all` only for the facility-wide `config/set` and
//!   `cmd/{name}`. A command's result is always published under the answering gateway's own id,
//!   so that the answers of several gateways to one facility-wide command do not mix.
//! * Segments are validated with the event's types ([`FacilityId`], [`GatewayId`],
//!   [`SourceName`], [`Kind`]) and [`CommandName`]: none can hold `+`, `#`, `/`, NUL or be
//!   empty, and `all` is never a gateway id. So a [`Topic`] always prints as a valid MQTT topic
//!   name (no wildcards), and [`Topic::parse`] of that text gives the same topic back.
//! * [`Filter`] gives the subscriptions; [`Filter::for_agent`] is the agent's set.

use std::fmt;
use std::str::FromStr;

use crate::error::escape;
use crate::event::{FacilityId, FieldError, GatewayId, Kind, SourceName};

/// The first two levels of every topic: the scheme's name and version.
pub const PREFIX: &str = "tallyman/v1";

/// The most bytes an MQTT topic name may have.
pub const MAX_TOPIC_BYTES: usize = 65_535;

/// The name of a command (`replay`, `flush`, `reconnect-source`): 1 to 32 lowercase ASCII
/// letters, digits or `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandName(String);

impl CommandName {
    /// Longest command name.
    pub const MAX_CHARS: usize = 32;

    pub fn new(value: impl Into<String>) -> Result<CommandName, FieldError> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = (1..=Self::MAX_CHARS).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-');
        if !ok {
            return Err(FieldError::new(
                "command name",
                &value,
                "a command name is 1 to 32 lowercase letters, digits or `-`",
            ));
        }
        Ok(CommandName(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommandName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for CommandName {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<CommandName, FieldError> {
        CommandName::new(s)
    }
}

/// Whom a facility-wide-capable topic addresses: one gateway, or every gateway of the facility
/// (`all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Gateway(GatewayId),
    All,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Gateway(g) => f.write_str(g.as_str()),
            Target::All => f.write_str(GatewayId::RESERVED_ALL),
        }
    }
}

/// A topic of the scheme, typed. Variants follow the table of PRODUCT §6.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `events/{kind}`: agent → hub, canonical events.
    Events {
        facility: FacilityId,
        gateway: GatewayId,
        kind: Kind,
    },
    /// `in/events`: devices → agent, canonical events (JSON).
    InEvents {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `in/scans`: devices → agent, raw scans.
    InScans {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `in/rejected`: agent → devices, why an inbound message was refused.
    InRejected {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `feedback/{source}`: agent → displays, the result of each scan.
    Feedback {
        facility: FacilityId,
        gateway: GatewayId,
        source: SourceName,
    },
    /// `status` (retained): online/offline, versions.
    Status {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `health` (retained): the periodic health report.
    Health {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `config/set` (retained): IT → agent, a signed config document; may address `all`.
    ConfigSet {
        facility: FacilityId,
        target: Target,
    },
    /// `config/state` (retained): agent → IT, the outcome of the last config document.
    ConfigState {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `cmd/{name}`: IT → agent, a signed command; may address `all`.
    Cmd {
        facility: FacilityId,
        target: Target,
        name: CommandName,
    },
    /// `cmd/{name}/result`: agent → IT, the answering gateway's result.
    CmdResult {
        facility: FacilityId,
        gateway: GatewayId,
        name: CommandName,
    },
}

impl Topic {
    pub fn facility(&self) -> &FacilityId {
        match self {
            Topic::Events { facility, .. }
            | Topic::InEvents { facility, .. }
            | Topic::InScans { facility, .. }
            | Topic::InRejected { facility, .. }
            | Topic::Feedback { facility, .. }
            | Topic::Status { facility, .. }
            | Topic::Health { facility, .. }
            | Topic::ConfigSet { facility, .. }
            | Topic::ConfigState { facility, .. }
            | Topic::Cmd { facility, .. }
            | Topic::CmdResult { facility, .. } => facility,
        }
    }

    /// The gateway the topic belongs to (`Target::All` for a facility-wide one).
    pub fn target(&self) -> Target {
        match self {
            Topic::ConfigSet { target, .. } | Topic::Cmd { target, .. } => target.clone(),
            Topic::Events { gateway, .. }
            | Topic::InEvents { gateway, .. }
            | Topic::InScans { gateway, .. }
            | Topic::InRejected { gateway, .. }
            | Topic::Feedback { gateway, .. }
            | Topic::Status { gateway, .. }
            | Topic::Health { gateway, .. }
            | Topic::ConfigState { gateway, .. }
            | Topic::CmdResult { gateway, .. } => Target::Gateway(gateway.clone()),
        }
    }

    /// Whether messages on this topic are published retained (PRODUCT §6).
    pub fn retained(&self) -> bool {
        matches!(
            self,
            Topic::Status { .. }
                | Topic::Health { .. }
                | Topic::ConfigSet { .. }
                | Topic::ConfigState { .. }
        )
    }

    /// Read a topic name. Refuses anything that [`Topic`]'s `Display` would not print.
    pub fn parse(topic: &str) -> Result<Topic, TopicError> {
        let err = |kind: TopicErrorKind, message: String| TopicError {
            kind,
            topic: escape(topic.as_bytes()),
            message,
        };
        if topic.len() > MAX_TOPIC_BYTES {
            return Err(err(
                TopicErrorKind::Unknown,
                format!("a topic is at most {MAX_TOPIC_BYTES} bytes"),
            ));
        }
        let mut levels = topic.split('/');
        if levels.next() != Some("tallyman") {
            return Err(err(
                TopicErrorKind::Prefix,
                "a tallyman topic starts with `tallyman/`".into(),
            ));
        }
        match levels.next() {
            Some("v1") => {}
            Some(v) => {
                return Err(err(
                    TopicErrorKind::Version,
                    format!(
                        "unsupported topic scheme version `{}`, expected `v1`",
                        escape(v.as_bytes())
                    ),
                ));
            }
            None => {
                return Err(err(
                    TopicErrorKind::Version,
                    "the topic has no scheme version after `tallyman/`".into(),
                ));
            }
        }
        let segment_err = |e: FieldError| err(TopicErrorKind::Segment, e.to_string());
        let facility = FacilityId::new(levels.next().unwrap_or_default()).map_err(segment_err)?;
        let target = match levels.next().unwrap_or_default() {
            all if all == GatewayId::RESERVED_ALL => Target::All,
            g => Target::Gateway(GatewayId::new(g).map_err(segment_err)?),
        };
        // At most three more levels; anything beyond is no topic of the scheme.
        let tail: Vec<&str> = levels.by_ref().take(4).collect();
        let gateway = || match &target {
            Target::Gateway(g) => Ok(g.clone()),
            Target::All => Err(err(
                TopicErrorKind::NotFacilityWide,
                "`all` addresses a whole facility only in config/set and cmd/{name}".into(),
            )),
        };
        let topic = match tail.as_slice() {
            ["events", kind] => Topic::Events {
                facility,
                gateway: gateway()?,
                kind: kind.parse().map_err(segment_err)?,
            },
            ["in", "events"] => Topic::InEvents {
                facility,
                gateway: gateway()?,
            },
            ["in", "scans"] => Topic::InScans {
                facility,
                gateway: gateway()?,
            },
            ["in", "rejected"] => Topic::InRejected {
                facility,
                gateway: gateway()?,
            },
            ["feedback", source] => Topic::Feedback {
                facility,
                gateway: gateway()?,
                source: SourceName::new(*source).map_err(segment_err)?,
            },
            ["status"] => Topic::Status {
                facility,
                gateway: gateway()?,
            },
            ["health"] => Topic::Health {
                facility,
                gateway: gateway()?,
            },
            ["config", "set"] => Topic::ConfigSet { facility, target },
            ["config", "state"] => Topic::ConfigState {
                facility,
                gateway: gateway()?,
            },
            ["cmd", name] => Topic::Cmd {
                facility,
                name: CommandName::new(*name).map_err(segment_err)?,
                target,
            },
            ["cmd", name, "result"] => Topic::CmdResult {
                facility,
                gateway: gateway()?,
                name: CommandName::new(*name).map_err(segment_err)?,
            },
            _ => {
                return Err(err(
                    TopicErrorKind::Unknown,
                    "not a topic of the tallyman v1 scheme".into(),
                ));
            }
        };
        Ok(topic)
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}/{}/{}/", self.facility(), self.target())?;
        match self {
            Topic::Events { kind, .. } => write!(f, "events/{kind}"),
            Topic::InEvents { .. } => f.write_str("in/events"),
            Topic::InScans { .. } => f.write_str("in/scans"),
            Topic::InRejected { .. } => f.write_str("in/rejected"),
            Topic::Feedback { source, .. } => write!(f, "feedback/{source}"),
            Topic::Status { .. } => f.write_str("status"),
            Topic::Health { .. } => f.write_str("health"),
            Topic::ConfigSet { .. } => f.write_str("config/set"),
            Topic::ConfigState { .. } => f.write_str("config/state"),
            Topic::Cmd { name, .. } => write!(f, "cmd/{name}"),
            Topic::CmdResult { name, .. } => write!(f, "cmd/{name}/result"),
        }
    }
}

impl FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Topic, TopicError> {
        Topic::parse(s)
    }
}

/// Which rule a refused topic broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicErrorKind {
    /// It does not start with `tallyman/`.
    Prefix,
    /// The scheme version is not `v1`.
    Version,
    /// A facility, gateway, kind, source or command segment is invalid (empty, a wildcard, a
    /// character outside its set, or `all` in any case but the exact facility-wide one).
    Segment,
    /// The levels after the gateway are no topic of the scheme.
    Unknown,
    /// `all` in a topic that only exists per gateway.
    NotFacilityWide,
}

impl TopicErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TopicErrorKind::Prefix => "prefix",
            TopicErrorKind::Version => "version",
            TopicErrorKind::Segment => "segment",
            TopicErrorKind::Unknown => "unknown",
            TopicErrorKind::NotFacilityWide => "not_facility_wide",
        }
    }
}

/// A topic name that is not a topic of the scheme: which rule, the topic (escaped, bounded) and
/// why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic \"{topic}\": {message}")]
pub struct TopicError {
    pub kind: TopicErrorKind,
    pub topic: String,
    pub message: String,
}

/// A subscription filter of the scheme (it may hold the single-level wildcard `+`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Filter {
    /// `…/{gateway}/in/events`.
    InEvents {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `…/{gateway}/in/scans`.
    InScans {
        facility: FacilityId,
        gateway: GatewayId,
    },
    /// `…/{gateway|all}/config/set`.
    ConfigSet {
        facility: FacilityId,
        target: Target,
    },
    /// `…/{gateway|all}/cmd/+`: every command, but not the results (`cmd/{name}/result` has
    /// one more level).
    Cmd {
        facility: FacilityId,
        target: Target,
    },
    /// `…/{gateway}/events/+`, or `…/+/events/+` for every gateway of the facility: what a hub
    /// subscribes to.
    Events {
        facility: FacilityId,
        gateway: Option<GatewayId>,
    },
}

impl Filter {
    /// What the agent of `gateway` subscribes to: its inbound events and scans, and config and
    /// commands addressed to it or to its whole facility. Not `in/+`, which would also match
    /// the agent's own `in/rejected` answers.
    pub fn for_agent(facility: &FacilityId, gateway: &GatewayId) -> Vec<Filter> {
        let f = || facility.clone();
        let g = || gateway.clone();
        vec![
            Filter::InEvents {
                facility: f(),
                gateway: g(),
            },
            Filter::InScans {
                facility: f(),
                gateway: g(),
            },
            Filter::ConfigSet {
                facility: f(),
                target: Target::Gateway(g()),
            },
            Filter::ConfigSet {
                facility: f(),
                target: Target::All,
            },
            Filter::Cmd {
                facility: f(),
                target: Target::Gateway(g()),
            },
            Filter::Cmd {
                facility: f(),
                target: Target::All,
            },
        ]
    }

    /// Whether `topic` is matched by this filter.
    pub fn matches(&self, topic: &Topic) -> bool {
        match (self, topic) {
            (
                Filter::InEvents { facility, gateway },
                Topic::InEvents {
                    facility: tf,
                    gateway: tg,
                },
            )
            | (
                Filter::InScans { facility, gateway },
                Topic::InScans {
                    facility: tf,
                    gateway: tg,
                },
            ) => facility == tf && gateway == tg,
            (
                Filter::ConfigSet { facility, target },
                Topic::ConfigSet {
                    facility: tf,
                    target: tt,
                },
            )
            | (
                Filter::Cmd { facility, target },
                Topic::Cmd {
                    facility: tf,
                    target: tt,
                    ..
                },
            ) => facility == tf && target == tt,
            (
                Filter::Events { facility, gateway },
                Topic::Events {
                    facility: tf,
                    gateway: tg,
                    ..
                },
            ) => facility == tf && gateway.as_ref().is_none_or(|g| g == tg),
            _ => false,
        }
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::InEvents { facility, gateway } => {
                write!(f, "{PREFIX}/{facility}/{gateway}/in/events")
            }
            Filter::InScans { facility, gateway } => {
                write!(f, "{PREFIX}/{facility}/{gateway}/in/scans")
            }
            Filter::ConfigSet { facility, target } => {
                write!(f, "{PREFIX}/{facility}/{target}/config/set")
            }
            Filter::Cmd { facility, target } => write!(f, "{PREFIX}/{facility}/{target}/cmd/+"),
            Filter::Events { facility, gateway } => match gateway {
                Some(g) => write!(f, "{PREFIX}/{facility}/{g}/events/+"),
                None => write!(f, "{PREFIX}/{facility}/+/events/+"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn builds_the_product_topics() {
        let facility = FacilityId::new("north").unwrap();
        let gateway = GatewayId::new("gw-north-01").unwrap();
        let t = Topic::Events {
            facility: facility.clone(),
            gateway: gateway.clone(),
            kind: Kind::Receipt,
        };
        assert_eq!(
            t.to_string(),
            "tallyman/v1/north/gw-north-01/events/receipt"
        );
        let t = Topic::Cmd {
            facility: facility.clone(),
            target: Target::All,
            name: CommandName::new("replay").unwrap(),
        };
        assert_eq!(t.to_string(), "tallyman/v1/north/all/cmd/replay");
        assert!(!t.retained());
        let filters: Vec<String> = Filter::for_agent(&facility, &gateway)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            filters,
            [
                "tallyman/v1/north/gw-north-01/in/events",
                "tallyman/v1/north/gw-north-01/in/scans",
                "tallyman/v1/north/gw-north-01/config/set",
                "tallyman/v1/north/all/config/set",
                "tallyman/v1/north/gw-north-01/cmd/+",
                "tallyman/v1/north/all/cmd/+",
            ]
        );
    }

    #[test]
    fn errors_name_the_rule() {
        let e = Topic::parse("tallyman/v1/north/all/status").unwrap_err();
        assert_eq!(e.kind, TopicErrorKind::NotFacilityWide);
        let e = Topic::parse("tallyman/v1/north/gw+/status").unwrap_err();
        assert_eq!(e.kind, TopicErrorKind::Segment);
        assert!(e.to_string().contains("gateway"), "{e}");
        let e = Topic::parse("tallyman/v2/north/gw/status").unwrap_err();
        assert_eq!(e.kind, TopicErrorKind::Version);
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}", b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = Topic::parse(&s);
            let _ = Topic::parse(&String::from_utf8_lossy(&b));
            let _ = Topic::parse(&format!("tallyman/v1/{s}"));
            let _ = Topic::parse(&format!("tallyman/v1/north/gw/{s}"));
        }
    }
}
