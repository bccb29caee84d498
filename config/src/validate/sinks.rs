//! `[[sinks]]`: where events go, which of them, and how deliveries are retried.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use tallyman_protocol::event::{Kind, Location};

use super::{
    Text, check, check_opt, choice, int, list, pick, required, required_tables, required_text,
    sub_table, text, unique,
};
use crate::defaults as d;
use crate::diagnostic::{Report, shown};
use crate::model::{
    ConsumptionMode, FileSink, HttpSink, MqttFormat, MqttSink, OdooSink, Retry, Sink, SinkTarget,
};
use crate::raw::RawTable;
use crate::values;

/// The kinds of sink, as `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    File,
    Mqtt,
    Http,
    Odoo,
}

const TYPES: &[(&str, Type)] = &[
    ("mqtt", Type::Mqtt),
    ("http", Type::Http),
    ("odoo", Type::Odoo),
    ("file", Type::File),
];

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = TYPES
            .iter()
            .find(|(_, t)| t == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}

/// Keys that only some types of sink have; every other key applies to all.
const ONLY: &[(&str, &[Type])] = &[
    ("path", &[Type::File]),
    ("format", &[Type::Mqtt]),
    ("inflight", &[Type::Mqtt]),
    ("endpoint", &[Type::Http, Type::Odoo]),
    ("token_file", &[Type::Http]),
    ("ca_file", &[Type::Http, Type::Odoo]),
    ("timeout_secs", &[Type::Http, Type::Odoo]),
    ("database", &[Type::Odoo]),
    ("login", &[Type::Odoo]),
    ("api_key_file", &[Type::Odoo]),
    ("consumption_location", &[Type::Odoo]),
    ("consumption_mode", &[Type::Odoo]),
];

/// Shared by the checks of one `[[sinks]]` list.
struct Seen {
    names: HashMap<String, String>,
    files: HashMap<String, String>,
}

pub(super) fn sinks(
    r: &mut Report<'_>,
    doc: &RawTable,
    has_mqtt: bool,
    data_dir: Option<&Path>,
) -> Option<Vec<Sink>> {
    let tables = required_tables(r, doc, "sinks", "sink")?;
    let mut seen = Seen {
        names: HashMap::new(),
        files: HashMap::new(),
    };
    let mut out = Vec::with_capacity(tables.len());
    let mut ok = true;
    for t in tables {
        match sink(r, t, has_mqtt, data_dir, &mut seen) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn sink(
    r: &mut Report<'_>,
    t: &RawTable,
    has_mqtt: bool,
    data_dir: Option<&Path>,
    seen: &mut Seen,
) -> Option<Sink> {
    let name_text = required_text(r, t, "name");
    let name = check(r, name_text, values::sink_name);
    if let (Some(_), Some(v)) = (&name, name_text) {
        unique(r, &mut seen.names, "sink name", v, &t.path);
    }
    let ty_text = required_text(r, t, "type");
    let ty = check(r, ty_text, |s| pick(s, TYPES));
    if let (Some(ty), Some(at)) = (ty, ty_text) {
        type_rules(r, t, ty, at, has_mqtt);
    }
    let kinds = kinds(r, t);
    let retry = retry(r, t);
    let batch_size = int(
        r,
        t,
        "batch_size",
        d::SINK_BATCH_SIZE,
        (1, 10_000),
        "events",
    );
    let target = match ty? {
        Type::File => file(r, t, data_dir, seen).map(SinkTarget::File),
        Type::Mqtt => mqtt(r, t).map(SinkTarget::Mqtt),
        Type::Http => http(r, t).map(SinkTarget::Http),
        Type::Odoo => odoo(r, t, kinds.as_deref()).map(SinkTarget::Odoo),
    };
    Some(Sink {
        name: name?,
        kinds: kinds?,
        retry: retry?,
        batch_size: u32::try_from(batch_size?).ok()?,
        target: target?,
    })
}

fn type_rules(r: &mut Report<'_>, t: &RawTable, ty: Type, at: Text<'_>, has_mqtt: bool) {
    if ty == Type::Mqtt && !has_mqtt {
        r.error(
            at.at,
            at.path,
            "an mqtt sink needs the `[mqtt]` section: the connection it publishes on",
        );
    }
    for (key, types) in ONLY {
        if types.contains(&ty) {
            continue;
        }
        if let Some(e) = t.entry(key) {
            let names: Vec<String> = types.iter().map(Type::to_string).collect();
            r.error(
                e.key_at,
                &e.path,
                format!(
                    "`{key}` applies only to {} sinks; this sink is `{ty}`",
                    names.join(" and ")
                ),
            );
        }
    }
}

/// `kinds`: every kind by default; otherwise a non-empty list, each kind once, kept in schema
/// order.
fn kinds(r: &mut Report<'_>, t: &RawTable) -> Option<Vec<Kind>> {
    let items = match list(t, "kinds")? {
        None => return Some(Kind::ALL.to_vec()),
        Some(items) => items,
    };
    if items.is_empty() {
        if let Some(e) = t.entry("kinds") {
            r.error(
                e.value_at,
                &e.path,
                "list at least one kind, or leave `kinds` out for all of them",
            );
        }
        return None;
    }
    let options: Vec<(&'static str, Kind)> = Kind::ALL.iter().map(|k| (k.as_str(), *k)).collect();
    let mut chosen: Vec<Kind> = Vec::new();
    let mut ok = true;
    for item in items {
        match check(r, Some(item.into()), |s| pick(s, &options)) {
            Some(k) if chosen.contains(&k) => {
                r.error(item.at, &item.path, format!("`{k}` is listed twice"));
                ok = false;
            }
            Some(k) => chosen.push(k),
            None => ok = false,
        }
    }
    ok.then(|| {
        Kind::ALL
            .into_iter()
            .filter(|k| chosen.contains(k))
            .collect()
    })
}

fn retry(r: &mut Report<'_>, t: &RawTable) -> Option<Retry> {
    let empty;
    let rt = match t.entry("retry") {
        None => {
            empty = RawTable {
                path: t.key_path("retry"),
                at: t.at,
                entries: Vec::new(),
            };
            &empty
        }
        Some(_) => sub_table(t, "retry")?,
    };
    let initial = int(
        r,
        rt,
        "initial_ms",
        d::SINK_RETRY_INITIAL_MS,
        (1, 3_600_000),
        "milliseconds",
    );
    let max = int(
        r,
        rt,
        "max_ms",
        d::SINK_RETRY_MAX_MS,
        (1, 86_400_000),
        "milliseconds",
    );
    let (initial, max) = (initial?, max?);
    if max < initial {
        // Reported at whichever of the two the file sets (max first).
        match (rt.entry("max_ms"), rt.entry("initial_ms")) {
            (Some(e), _) => r.error(
                e.value_at,
                &e.path,
                format!("`max_ms` ({max}) is below `initial_ms` ({initial})"),
            ),
            (None, Some(e)) => r.error(
                e.value_at,
                &e.path,
                format!("`initial_ms` ({initial}) is above `max_ms` ({max}, the default)"),
            ),
            (None, None) => {}
        }
        return None;
    }
    Some(Retry {
        initial: Duration::from_millis(initial),
        max: Duration::from_millis(max),
    })
}

fn file(
    r: &mut Report<'_>,
    t: &RawTable,
    data_dir: Option<&Path>,
    seen: &mut Seen,
) -> Option<FileSink> {
    let rel = match t.entry("path") {
        None => Some(d::FILE_SINK_PATH.into()),
        Some(_) => check(r, text(t, "path"), values::data_relative_path),
    }?;
    // Two file sinks appending to one file would interleave their lines.
    let key = rel.to_string_lossy().into_owned();
    if let Some(first) = seen.files.get(&key) {
        let at = text(t, "path").map_or(t.at, |p| p.at);
        r.error(
            at,
            &t.key_path("path"),
            format!("file `{}` is already written by {first}", shown(&key)),
        );
        return None;
    }
    seen.files.insert(key, t.path.clone());
    Some(FileSink {
        path: data_dir.map_or_else(|| rel.clone(), |dir| dir.join(&rel)),
    })
}

fn mqtt(r: &mut Report<'_>, t: &RawTable) -> Option<MqttSink> {
    let format = choice(
        r,
        t,
        "format",
        MqttFormat::Json,
        &[
            ("json", MqttFormat::Json),
            ("postcard", MqttFormat::Postcard),
        ],
    );
    let inflight = int(
        r,
        t,
        "inflight",
        d::MQTT_SINK_INFLIGHT,
        (1, 65_535),
        "publishes",
    );
    Some(MqttSink {
        format: format?,
        inflight: u16::try_from(inflight?).ok()?,
    })
}

fn http(r: &mut Report<'_>, t: &RawTable) -> Option<HttpSink> {
    let endpoint = required(r, t, "endpoint", values::http_url);
    let token_file = check_opt(r, t, "token_file", values::path);
    let ca_file = ca_file(r, t, endpoint.as_ref().map(|e| e.is_https()));
    let timeout = timeout(r, t);
    Some(HttpSink {
        endpoint: endpoint?,
        token_file: token_file?,
        ca_file: ca_file?,
        timeout: timeout?,
    })
}

fn odoo(r: &mut Report<'_>, t: &RawTable, kinds: Option<&[Kind]>) -> Option<OdooSink> {
    let endpoint = required(r, t, "endpoint", values::http_url);
    let database = required(r, t, "database", |s| values::plain_text(s, 128));
    let login = required(r, t, "login", |s| values::plain_text(s, 128));
    let api_key_file = required(r, t, "api_key_file", values::path);
    let consumption_location = check_opt(r, t, "consumption_location", |s| {
        Location::new(s).map_err(|e| e.message)
    });
    let mode = choice(
        r,
        t,
        "consumption_mode",
        ConsumptionMode::Picking,
        &[
            ("picking", ConsumptionMode::Picking),
            ("scrap", ConsumptionMode::Scrap),
        ],
    );
    let takes_consumption = kinds.is_some_and(|k| k.contains(&Kind::Consumption));
    if takes_consumption
        && mode == Some(ConsumptionMode::Picking)
        && t.entry("consumption_location").is_none()
    {
        r.error(
            t.at,
            &t.key_path("consumption_location"),
            "missing key `consumption_location`: consumption events become pickings to this \
             location (or set `consumption_mode = \"scrap\"`, or leave `consumption` out of `kinds`)",
        );
    }
    let ca_file = ca_file(r, t, endpoint.as_ref().map(|e| e.is_https()));
    let timeout = timeout(r, t);
    Some(OdooSink {
        endpoint: endpoint?,
        database: database?,
        login: login?,
        api_key_file: api_key_file?,
        consumption_location: consumption_location?,
        consumption_mode: mode?,
        ca_file: ca_file?,
        timeout: timeout?,
    })
}

/// `ca_file`, which only an `https://` endpoint uses.
fn ca_file(
    r: &mut Report<'_>,
    t: &RawTable,
    https: Option<bool>,
) -> Option<Option<std::path::PathBuf>> {
    if let (Some(false), Some(e)) = (https, t.entry("ca_file")) {
        r.error(
            e.key_at,
            &e.path,
            "`ca_file` needs an `https://` endpoint; this one is `http://`",
        );
    }
    check_opt(r, t, "ca_file", values::path)
}

fn timeout(r: &mut Report<'_>, t: &RawTable) -> Option<Duration> {
    int(
        r,
        t,
        "timeout_secs",
        d::HTTP_TIMEOUT_SECS,
        (1, 3600),
        "seconds",
    )
    .map(Duration::from_secs)
}
