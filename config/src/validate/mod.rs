//! Layer 2: the raw tables (known keys, right TOML types) → the typed [`Config`].
//!
//! Every rule of every value is checked, and the checks go on after a failure so that one run
//! reports every problem of the file. An absent key takes its default from
//! [`crate::defaults`]; an absent optional section is read as an empty table, so its defaults
//! come through the same code. A value that failed layer 1 is present but [`RawValue::Invalid`]:
//! it is neither "missing" nor reported again.

mod sections;
mod sinks;
mod sources;

use std::collections::HashMap;

use crate::Config;
use crate::diagnostic::{Report, shown};
use crate::raw::{RawEntry, RawItem, RawTable, RawValue};
use crate::suggest;

/// The whole configuration, if the raw document has no problem.
pub(crate) fn config(r: &mut Report<'_>, doc: &RawTable) -> Option<Config> {
    let agent = match section(doc, "agent") {
        Section::Present(t) => sections::agent(r, t),
        Section::Absent => {
            r.error(
                0,
                "agent",
                "missing section `[agent]`: `facility` and `gateway` are required",
            );
            None
        }
        Section::Invalid => None,
    };
    let spool = optional(doc, "spool", |t| sections::spool(r, t));
    let log = optional(doc, "log", |t| sections::log(r, t));
    let mqtt_section = section(doc, "mqtt");
    let has_mqtt = !matches!(mqtt_section, Section::Absent);
    let mqtt = match mqtt_section {
        Section::Present(t) => sections::mqtt(r, t, agent.as_ref()).map(Some),
        Section::Absent => Some(None),
        Section::Invalid => None,
    };
    let data_dir = agent.as_ref().map(|a| a.data_dir.as_path());
    let sources = sources::sources(r, doc, has_mqtt);
    let sinks = sinks::sinks(r, doc, has_mqtt, data_dir);
    let remote = match section(doc, "remote") {
        Section::Present(t) => sections::remote(r, t).map(Some),
        Section::Absent => Some(None),
        Section::Invalid => None,
    };
    let health = optional(doc, "health", |t| sections::health(r, t));
    Some(Config {
        agent: agent?,
        spool: spool?,
        log: log?,
        mqtt: mqtt?,
        sources: sources?,
        sinks: sinks?,
        remote: remote?,
        health: health?,
    })
}

/// A pushed configuration (see [`crate::parse_pushed`]) whose raw document has no problem:
/// built like [`config`], except that `[agent]` and `[spool]` are the local file's (a key the
/// document states must have the local value, `clashes` gets those that do not), everything
/// that depends on them (the client id's default, file sink paths) follows the local values,
/// and `[remote]` is the local one (a document with `[remote]` is refused by the caller).
pub(crate) fn pushed(
    r: &mut Report<'_>,
    doc: &RawTable,
    local: &Config,
    clashes: &mut Vec<crate::Clash>,
) -> Option<Config> {
    let agent = &local.agent;
    let mut ok = true;
    if let Section::Present(t) = section(doc, "agent") {
        let facility = check_opt(r, t, "facility", |s| {
            tallyman_protocol::event::FacilityId::new(s).map_err(|e| e.message)
        });
        let gateway = check_opt(r, t, "gateway", |s| {
            tallyman_protocol::event::GatewayId::new(s).map_err(|e| e.message)
        });
        let data_dir = check_opt(r, t, "data_dir", crate::values::path);
        ok &= facility.is_some() && gateway.is_some() && data_dir.is_some();
        let mut clash = |key: &'static str, local: String, pushed: String| {
            if local != pushed {
                clashes.push(crate::Clash { key, local, pushed });
            }
        };
        if let Some(Some(f)) = facility {
            clash(
                "[agent] facility",
                agent.facility.to_string(),
                f.to_string(),
            );
        }
        if let Some(Some(g)) = gateway {
            clash("[agent] gateway", agent.gateway.to_string(), g.to_string());
        }
        if let Some(Some(d)) = data_dir {
            clash(
                "[agent] data_dir",
                agent.data_dir.display().to_string(),
                d.display().to_string(),
            );
        }
    }
    if let Section::Present(t) = section(doc, "spool") {
        match sections::spool(r, t) {
            Some(pushed) => spool_clashes(t, &local.spool, &pushed, clashes),
            None => ok = false,
        }
    }
    let log = optional(doc, "log", |t| sections::log(r, t));
    let mqtt_section = section(doc, "mqtt");
    let has_mqtt = !matches!(mqtt_section, Section::Absent);
    let mqtt = match mqtt_section {
        Section::Present(t) => sections::mqtt(r, t, Some(agent)).map(Some),
        Section::Absent => Some(None),
        Section::Invalid => None,
    };
    let sources = sources::sources(r, doc, has_mqtt);
    let sinks = sinks::sinks(r, doc, has_mqtt, Some(agent.data_dir.as_path()));
    let health = optional(doc, "health", |t| sections::health(r, t));
    if !ok {
        return None;
    }
    Some(Config {
        agent: agent.clone(),
        spool: local.spool.clone(),
        log: log?,
        mqtt: mqtt?,
        sources: sources?,
        sinks: sinks?,
        remote: local.remote.clone(),
        health: health?,
    })
}

/// The `[spool]` keys a pushed document states with another value than the local file's.
fn spool_clashes(
    t: &RawTable,
    local: &crate::Spool,
    pushed: &crate::Spool,
    clashes: &mut Vec<crate::Clash>,
) {
    use crate::defaults::MIB;
    let when_full = |w: crate::WhenFull| match w {
        crate::WhenFull::Refuse => "refuse".to_owned(),
        crate::WhenFull::DropOldest => "drop_oldest".to_owned(),
    };
    let key_file = |k: &Option<std::path::PathBuf>| match k {
        Some(p) => p.display().to_string(),
        None => "none".to_owned(),
    };
    let keys: [(&'static str, &str, String, String); 5] = [
        (
            "[spool] max_size_mb",
            "max_size_mb",
            (local.max_size_bytes / MIB).to_string(),
            (pushed.max_size_bytes / MIB).to_string(),
        ),
        (
            "[spool] commit_window_ms",
            "commit_window_ms",
            local.commit_window.as_millis().to_string(),
            pushed.commit_window.as_millis().to_string(),
        ),
        (
            "[spool] cache_capacity_mb",
            "cache_capacity_mb",
            (local.cache_capacity_bytes / MIB).to_string(),
            (pushed.cache_capacity_bytes / MIB).to_string(),
        ),
        (
            "[spool] encryption_key_file",
            "encryption_key_file",
            key_file(&local.encryption_key_file),
            key_file(&pushed.encryption_key_file),
        ),
        (
            "[spool] raw_scans_when_full",
            "raw_scans_when_full",
            when_full(local.raw_scans_when_full),
            when_full(pushed.raw_scans_when_full),
        ),
    ];
    for (key, name, local, pushed) in keys {
        if t.entry(name).is_some() && local != pushed {
            clashes.push(crate::Clash { key, local, pushed });
        }
    }
}

/// A sub-table as found.
enum Section<'t> {
    Present(&'t RawTable),
    Absent,
    /// Present but not a table: already reported.
    Invalid,
}

/// Builds an optional section from its table, or from an empty table when it is absent (so
/// that its defaults apply through the same code). A section of the wrong type was reported by
/// layer 1; its defaults stand in so that the other checks still run.
fn optional<T>(doc: &RawTable, name: &str, build: impl FnOnce(&RawTable) -> T) -> T {
    match section(doc, name) {
        Section::Present(t) => build(t),
        Section::Absent | Section::Invalid => build(&RawTable {
            path: name.to_owned(),
            at: 0,
            entries: Vec::new(),
        }),
    }
}

fn section<'t>(t: &'t RawTable, name: &str) -> Section<'t> {
    match t.entry(name).map(|e| &e.value) {
        Some(RawValue::Table(sub)) => Section::Present(sub),
        None => Section::Absent,
        Some(_) => Section::Invalid,
    }
}

/// A string value with its place in the file.
#[derive(Debug, Clone, Copy)]
struct Text<'t> {
    value: &'t str,
    at: usize,
    path: &'t str,
}

/// The string value of a key, if present with the right type.
fn text<'t>(t: &'t RawTable, name: &str) -> Option<Text<'t>> {
    match t.entry(name) {
        Some(RawEntry {
            value: RawValue::Str(s),
            value_at,
            path,
            ..
        }) => Some(Text {
            value: s,
            at: *value_at,
            path,
        }),
        _ => None,
    }
}

/// The string value of a required key; reports it missing when absent.
fn required_text<'t>(r: &mut Report<'_>, t: &'t RawTable, name: &str) -> Option<Text<'t>> {
    if t.entry(name).is_none() {
        r.error(
            t.at,
            &t.key_path(name),
            format!("missing required key `{name}`"),
        );
        return None;
    }
    text(t, name)
}

/// A required key's value, checked against its rule.
fn required<T>(
    r: &mut Report<'_>,
    t: &RawTable,
    name: &str,
    rule: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let v = required_text(r, t, name);
    check(r, v, rule)
}

/// Applies a rule to a value, reporting its message at the value.
fn check<T>(
    r: &mut Report<'_>,
    value: Option<Text<'_>>,
    rule: impl FnOnce(&str) -> Result<T, String>,
) -> Option<T> {
    let v = value?;
    match rule(v.value) {
        Ok(x) => Some(x),
        Err(m) => {
            r.error(v.at, v.path, m);
            None
        }
    }
}

/// Like [`check`] for an optional key: `Some(None)` when absent, `None` when invalid.
fn check_opt<T>(
    r: &mut Report<'_>,
    t: &RawTable,
    name: &str,
    rule: impl FnOnce(&str) -> Result<T, String>,
) -> Option<Option<T>> {
    match t.entry(name) {
        None => Some(None),
        Some(_) => check(r, text(t, name), rule).map(Some),
    }
}

/// An integer key within `min..=max`, or its default. Out of range is reported and the
/// default returned (so that later checks still run).
fn int(
    r: &mut Report<'_>,
    t: &RawTable,
    name: &str,
    default: u64,
    (min, max): (u64, u64),
    unit: &str,
) -> Option<u64> {
    match t.entry(name) {
        None => Some(default),
        Some(RawEntry {
            value: RawValue::Int(n),
            value_at,
            path,
            ..
        }) => match u64::try_from(*n) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ => {
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" {unit}")
                };
                r.error(
                    *value_at,
                    path,
                    format!("must be between {min} and {max}{unit}, found {n}"),
                );
                None
            }
        },
        Some(_) => None,
    }
}

/// A string key that names one of a fixed set of choices, or its default.
fn choice<T: Copy>(
    r: &mut Report<'_>,
    t: &RawTable,
    name: &str,
    default: T,
    options: &[(&'static str, T)],
) -> Option<T> {
    if t.entry(name).is_none() {
        return Some(default);
    }
    check(r, text(t, name), |s| pick(s, options))
}

/// The choice a text names.
fn pick<T: Copy>(s: &str, options: &[(&'static str, T)]) -> Result<T, String> {
    if let Some((_, v)) = options.iter().find(|(n, _)| *n == s) {
        return Ok(*v);
    }
    let names: Vec<String> = options.iter().map(|(n, _)| format!("`{n}`")).collect();
    let mut m = format!("expected one of {}, found `{}`", names.join(", "), shown(s));
    if let Some(c) = suggest::closest(s, options.iter().map(|(n, _)| *n)) {
        m.push_str(&format!("; did you mean `{c}`?"));
    }
    Err(m)
}

/// A sub-table key, if present and a table.
fn sub_table<'t>(t: &'t RawTable, name: &str) -> Option<&'t RawTable> {
    match t.entry(name).map(|e| &e.value) {
        Some(RawValue::Table(sub)) => Some(sub),
        _ => None,
    }
}

/// A list-of-strings key: `Some(None)` when absent, `None` when invalid.
fn list<'t>(t: &'t RawTable, name: &str) -> Option<Option<&'t [RawItem]>> {
    match t.entry(name).map(|e| &e.value) {
        None => Some(None),
        Some(RawValue::StrList(items)) => Some(Some(items)),
        Some(_) => None,
    }
}

impl<'t> From<&'t RawItem> for Text<'t> {
    fn from(i: &'t RawItem) -> Self {
        Text {
            value: &i.value,
            at: i.at,
            path: &i.path,
        }
    }
}

/// Reports a value seen before (`what` = "source name"); `label` names where this one is, for
/// a later duplicate's message. Whether the value was new.
fn unique(
    r: &mut Report<'_>,
    seen: &mut HashMap<String, String>,
    what: &str,
    v: Text<'_>,
    label: &str,
) -> bool {
    match seen.get(v.value) {
        Some(first) => {
            r.error(
                v.at,
                v.path,
                format!("{what} `{}` is already used by {first}", shown(v.value)),
            );
            false
        }
        None => {
            seen.insert(v.value.to_owned(), label.to_owned());
            true
        }
    }
}

/// The `[[name]]` tables of the document: reports them missing or empty (at least one is
/// required). `None` when there is none to read.
fn required_tables<'t>(
    r: &mut Report<'_>,
    doc: &'t RawTable,
    name: &str,
    what: &str,
) -> Option<&'t [RawTable]> {
    match doc.entry(name) {
        None => {
            r.error(
                0,
                name,
                format!("missing `[[{name}]]`: at least one {what} is required"),
            );
            None
        }
        Some(RawEntry {
            value: RawValue::Tables(ts),
            value_at,
            path,
            ..
        }) => {
            if ts.is_empty() {
                r.error(*value_at, path, format!("at least one {what} is required"));
                None
            } else {
                Some(ts)
            }
        }
        Some(_) => None,
    }
}
