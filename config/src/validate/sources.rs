//! `[[sources]]`: the inputs, their framing and their scan workflow.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tallyman_protocol::event::{Location, SourceName, Uom};

use super::{
    Text, check, check_opt, choice, int, list, pick, required, required_tables, required_text,
    sub_table, text, unique,
};
use crate::defaults as d;
use crate::diagnostic::Report;
use crate::model::{
    DataBits, Decoder, ExpiredPolicy, Feedback, Framing, IdleAction, Input, Parity, Portal, Rfid,
    ScanSettings, Serial, Source, Stdin, StopBits, Workflow,
};
use crate::raw::{RawEntry, RawTable, RawValue};
use crate::values;

/// The kinds of source, as `type` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Serial,
    Mqtt,
    Stdin,
}

const TYPES: &[(&str, Type)] = &[
    ("serial", Type::Serial),
    ("mqtt", Type::Mqtt),
    ("stdin", Type::Stdin),
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

/// Keys that only some types of source have; every other key applies to all.
const ONLY: &[(&str, &[Type])] = &[
    ("path", &[Type::Serial]),
    ("baud", &[Type::Serial]),
    ("parity", &[Type::Serial]),
    ("data_bits", &[Type::Serial]),
    ("stop_bits", &[Type::Serial]),
    ("terminator", &[Type::Serial]),
    ("rate_limit_per_sec", &[Type::Serial]),
    ("feedback", &[Type::Serial]),
    ("strip_prefix", &[Type::Serial, Type::Stdin]),
    ("strip_suffix", &[Type::Serial, Type::Stdin]),
    ("max_frame_bytes", &[Type::Serial, Type::Stdin]),
];

/// Keys that only an rfid decoder has.
const RFID_ONLY: &[&str] = &["dedup_window_ms", "portal"];

/// The standard serial rates.
const BAUD_RATES: &[u64] = &[
    300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400, 460_800, 921_600,
];

/// Bounds of byte-string keys, in bytes.
const MAX_TERMINATOR: usize = 8;
const MAX_AFFIX: usize = 64;
const MAX_GS_ALIAS: usize = 32;
const MAX_FEEDBACK: usize = 256;

pub(super) fn sources(r: &mut Report<'_>, doc: &RawTable, has_mqtt: bool) -> Option<Vec<Source>> {
    let tables = required_tables(r, doc, "sources", "source")?;
    let mut names = HashMap::new();
    let mut stdin: Option<String> = None;
    let mut out = Vec::with_capacity(tables.len());
    let mut ok = true;
    for t in tables {
        match source(r, t, has_mqtt, &mut names, &mut stdin) {
            Some(s) => out.push(s),
            None => ok = false,
        }
    }
    ok.then_some(out)
}

fn source(
    r: &mut Report<'_>,
    t: &RawTable,
    has_mqtt: bool,
    names: &mut HashMap<String, String>,
    stdin: &mut Option<String>,
) -> Option<Source> {
    let name_text = required_text(r, t, "name");
    let name = check(r, name_text, |s| SourceName::new(s).map_err(|e| e.message));
    if let (Some(_), Some(v)) = (&name, name_text) {
        unique(r, names, "source name", v, &t.path);
    }
    let ty_text = required_text(r, t, "type");
    let ty = check(r, ty_text, |s| pick(s, TYPES));
    if let (Some(ty), Some(at)) = (ty, ty_text) {
        type_rules(r, t, ty, at, has_mqtt, stdin);
    }
    let input = match ty {
        Some(Type::Serial) => serial(r, t).map(Input::Serial),
        Some(Type::Mqtt) => Some(Input::Mqtt),
        Some(Type::Stdin) => stdin_input(r, t).map(Input::Stdin),
        None => None,
    };
    let scan = scan(r, t);
    Some(Source {
        name: name?,
        input: input?,
        scan: scan?,
    })
}

/// What a source's type implies: at most one stdin, mqtt needs `[mqtt]`, no key of another
/// type.
fn type_rules(
    r: &mut Report<'_>,
    t: &RawTable,
    ty: Type,
    at: Text<'_>,
    has_mqtt: bool,
    stdin: &mut Option<String>,
) {
    match ty {
        Type::Stdin => match stdin {
            Some(first) => r.error(
                at.at,
                at.path,
                format!("only one stdin source is allowed; {first} already reads stdin"),
            ),
            None => *stdin = Some(t.path.clone()),
        },
        Type::Mqtt if !has_mqtt => r.error(
            at.at,
            at.path,
            "an mqtt source needs the `[mqtt]` section: the connection it reads from",
        ),
        Type::Mqtt | Type::Serial => {}
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
                    "`{key}` applies only to {} sources; this source is `{ty}`",
                    names.join(" and ")
                ),
            );
        }
    }
}

fn serial(r: &mut Report<'_>, t: &RawTable) -> Option<Serial> {
    let path = required(r, t, "path", values::path);
    let rates: Vec<String> = BAUD_RATES.iter().map(u64::to_string).collect();
    let baud = one_of(
        r,
        t,
        "baud",
        d::SERIAL_BAUD,
        BAUD_RATES,
        &format!("a standard baud rate ({})", rates.join(", ")),
    );
    let parity = choice(
        r,
        t,
        "parity",
        Parity::None,
        &[
            ("none", Parity::None),
            ("even", Parity::Even),
            ("odd", Parity::Odd),
        ],
    );
    let data_bits = one_of(r, t, "data_bits", 8, &[7, 8], "7 or 8").map(|n| match n {
        7 => DataBits::Seven,
        _ => DataBits::Eight,
    });
    let stop_bits = one_of(r, t, "stop_bits", 1, &[1, 2], "1 or 2").map(|n| match n {
        2 => StopBits::Two,
        _ => StopBits::One,
    });
    let terminator = match t.entry("terminator") {
        None => values::byte_string(d::SERIAL_TERMINATOR).ok(),
        Some(_) => check(r, text(t, "terminator"), |s| {
            bytes(s, MAX_TERMINATOR, false)
        }),
    };
    let strip_prefix = check_opt(r, t, "strip_prefix", |s| bytes(s, MAX_AFFIX, false));
    let strip_suffix = check_opt(r, t, "strip_suffix", |s| bytes(s, MAX_AFFIX, false));
    let max_frame = max_frame_bytes(r, t);
    let rate_limit = int(
        r,
        t,
        "rate_limit_per_sec",
        d::RATE_LIMIT_PER_SEC,
        (1, 10_000),
        "frames per second",
    );
    let feedback = match t.entry("feedback") {
        None => Some(Feedback::default()),
        Some(_) => sub_table(t, "feedback").and_then(|f| feedback(r, f)),
    };
    Some(Serial {
        path: path?,
        baud: u32::try_from(baud?).ok()?,
        parity: parity?,
        data_bits: data_bits?,
        stop_bits: stop_bits?,
        framing: Framing {
            terminator: terminator?,
            strip_prefix: strip_prefix?,
            strip_suffix: strip_suffix?,
            max_frame_bytes: max_frame?,
        },
        rate_limit_per_sec: u32::try_from(rate_limit?).ok()?,
        feedback: feedback?,
    })
}

fn stdin_input(r: &mut Report<'_>, t: &RawTable) -> Option<Stdin> {
    let strip_prefix = check_opt(r, t, "strip_prefix", |s| bytes(s, MAX_AFFIX, false));
    let strip_suffix = check_opt(r, t, "strip_suffix", |s| bytes(s, MAX_AFFIX, false));
    let max_frame = max_frame_bytes(r, t);
    Some(Stdin {
        strip_prefix: strip_prefix?,
        strip_suffix: strip_suffix?,
        max_frame_bytes: max_frame?,
    })
}

fn max_frame_bytes(r: &mut Report<'_>, t: &RawTable) -> Option<usize> {
    let n = int(
        r,
        t,
        "max_frame_bytes",
        d::MAX_FRAME_BYTES,
        (1, 65_536),
        "bytes",
    )?;
    usize::try_from(n).ok()
}

fn feedback(r: &mut Report<'_>, t: &RawTable) -> Option<Feedback> {
    let mut one = |name: &str| {
        check_opt(r, t, name, |s| bytes(s, MAX_FEEDBACK, true)).map(Option::unwrap_or_default)
    };
    let good = one("good");
    let bad = one("bad");
    let full = one("full");
    Some(Feedback {
        good: good?,
        bad: bad?,
        full: full?,
    })
}

/// A byte string of at most `max` bytes (see [`values::byte_string`]).
fn bytes(s: &str, max: usize, empty_ok: bool) -> Result<Vec<u8>, String> {
    let b = values::byte_string(s)?;
    if b.is_empty() && !empty_ok {
        return Err("cannot be empty".into());
    }
    if b.len() > max {
        return Err(format!("at most {max} bytes, this one has {}", b.len()));
    }
    Ok(b)
}

/// An integer key that must be one of a few values.
fn one_of(
    r: &mut Report<'_>,
    t: &RawTable,
    name: &str,
    default: u64,
    allowed: &[u64],
    what: &str,
) -> Option<u64> {
    match t.entry(name) {
        None => Some(default),
        Some(RawEntry {
            value: RawValue::Int(n),
            value_at,
            path,
            ..
        }) => match u64::try_from(*n) {
            Ok(v) if allowed.contains(&v) => Some(v),
            _ => {
                r.error(*value_at, path, format!("must be {what}, found {n}"));
                None
            }
        },
        Some(_) => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecoderType {
    Barcode,
    Rfid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkflowType {
    Session,
    Consume,
    Passthrough,
}

fn scan(r: &mut Report<'_>, t: &RawTable) -> Option<ScanSettings> {
    let decoder_type = choice(
        r,
        t,
        "decoder",
        DecoderType::Barcode,
        &[
            ("barcode", DecoderType::Barcode),
            ("rfid", DecoderType::Rfid),
        ],
    );
    match decoder_type {
        Some(DecoderType::Barcode) => {
            for key in RFID_ONLY {
                if let Some(e) = t.entry(key) {
                    r.error(
                        e.key_at,
                        &e.path,
                        format!("`{key}` applies only with `decoder = \"rfid\"`"),
                    );
                }
            }
        }
        Some(DecoderType::Rfid) => {
            if let Some(e) = t.entry("gs_aliases") {
                r.error(
                    e.key_at,
                    &e.path,
                    "`gs_aliases` applies only with `decoder = \"barcode\"`: RFID tag reads carry no GS",
                );
            }
        }
        None => {}
    }
    let gs_aliases = match list(t, "gs_aliases") {
        None => None,
        Some(None) => Some(Vec::new()),
        Some(Some(items)) => {
            let aliases: Vec<Option<Vec<u8>>> = items
                .iter()
                .map(|i| check(r, Some(i.into()), |s| bytes(s, MAX_GS_ALIAS, false)))
                .collect();
            aliases.into_iter().collect()
        }
    };
    let workflow_type = choice(
        r,
        t,
        "workflow",
        WorkflowType::Session,
        &[
            ("session", WorkflowType::Session),
            ("consume", WorkflowType::Consume),
            ("passthrough", WorkflowType::Passthrough),
        ],
    );
    let location = check_opt(r, t, "location", |s| {
        Location::new(s).map_err(|e| e.message)
    });
    let workflow = match (workflow_type, &location) {
        (Some(WorkflowType::Session), _) => Some(Workflow::Session),
        (Some(WorkflowType::Passthrough), _) => Some(Workflow::Passthrough),
        (Some(WorkflowType::Consume), Some(Some(location))) => Some(Workflow::Consume {
            location: location.clone(),
        }),
        (Some(WorkflowType::Consume), Some(None)) => {
            if let Some(w) = text(t, "workflow") {
                r.error(
                    w.at,
                    w.path,
                    "`workflow = \"consume\"` needs `location`: where the items are consumed",
                );
            }
            None
        }
        (Some(WorkflowType::Consume), None) | (None, _) => None,
    };
    let decoder = match decoder_type? {
        DecoderType::Barcode => Some(Decoder::Barcode),
        DecoderType::Rfid => rfid(r, t, workflow_type).map(Decoder::Rfid),
    };
    let command_prefix = match t.entry("command_prefix") {
        None => Some(d::COMMAND_PREFIX.to_owned()),
        Some(_) => check(r, text(t, "command_prefix"), |s| values::plain_text(s, 16)),
    };
    let idle_timeout = int(
        r,
        t,
        "idle_timeout_secs",
        d::IDLE_TIMEOUT_SECS,
        (1, 86_400),
        "seconds",
    );
    let idle_action = choice(
        r,
        t,
        "idle_action",
        IdleAction::Discard,
        &[
            ("commit", IdleAction::Commit),
            ("discard", IdleAction::Discard),
        ],
    );
    let expired = choice(
        r,
        t,
        "expired",
        ExpiredPolicy::Reject,
        &[
            ("reject", ExpiredPolicy::Reject),
            ("flag", ExpiredPolicy::Flag),
        ],
    );
    let default_uom = match t.entry("default_uom") {
        None => Uom::new(d::DEFAULT_UOM).ok(),
        Some(_) => check(r, text(t, "default_uom"), |s| {
            Uom::new(s).map_err(|e| e.message)
        }),
    };
    Some(ScanSettings {
        decoder: decoder?,
        gs_aliases: gs_aliases?,
        workflow: workflow?,
        location: location?,
        command_prefix: command_prefix?,
        idle_timeout: Duration::from_secs(idle_timeout?),
        idle_action: idle_action?,
        expired: expired?,
        default_uom: default_uom?,
    })
}

fn rfid(r: &mut Report<'_>, t: &RawTable, workflow: Option<WorkflowType>) -> Option<Rfid> {
    let dedup = int(
        r,
        t,
        "dedup_window_ms",
        d::RFID_DEDUP_WINDOW_MS,
        (0, 3_600_000),
        "milliseconds",
    );
    let portal = match t.entry("portal") {
        None => Some(None),
        Some(e) => {
            // A portal turns each tag into a transfer: it is the workflow.
            if let (Some(w), Some(WorkflowType::Consume | WorkflowType::Passthrough)) =
                (text(t, "workflow"), workflow)
            {
                r.error(
                    e.key_at,
                    &e.path,
                    format!(
                        "a portal makes every tag read a transfer; it cannot be combined with `workflow = \"{}\"`",
                        w.value
                    ),
                );
            }
            sub_table(t, "portal").and_then(|p| portal(r, p)).map(Some)
        }
    };
    if t.entry("portal").is_none() && workflow == Some(WorkflowType::Session) {
        // Point at `workflow = "session"` when it is written, else at the decoder.
        if let Some(at) = text(t, "workflow").or_else(|| text(t, "decoder")) {
            r.error(
                at.at,
                at.path,
                "an RFID reader cannot scan command barcodes, which the session workflow needs: \
                 use `workflow = \"consume\"` (with `location`), `workflow = \"passthrough\"`, or \
                 a `portal`",
            );
        }
        return None;
    }
    Some(Rfid {
        dedup_window: Duration::from_millis(dedup?),
        portal: portal?,
    })
}

fn portal(r: &mut Report<'_>, t: &RawTable) -> Option<Portal> {
    let from = required(r, t, "from", |s| Location::new(s).map_err(|e| e.message));
    let to = required(r, t, "to", |s| Location::new(s).map_err(|e| e.message));
    if let (Some(f), Some(to_loc), Some(v)) = (&from, &to, text(t, "to")) {
        if f == to_loc {
            r.error(
                v.at,
                v.path,
                "`to` is the same location as `from`: a portal moves goods between two",
            );
            return None;
        }
    }
    Some(Portal {
        from: from?,
        to: to?,
    })
}
