//! Layer 1: the file as TOML, checked against the schema of known keys.
//!
//! The text is parsed with `toml::de::DeTable::parse_recoverable` (toml 0.9, already in the
//! tree): it keeps the byte span of every key and value, and it recovers after a syntax error
//! so that every syntax error of the file is reported, not only the first. serde's derive with
//! `deny_unknown_fields` would stop at the first problem and lose the other positions; toml_edit
//! or toml_span would add a crate for what this parser already gives. The walk below compares
//! each table with its schema: an unknown key is reported with a suggestion, a value of the
//! wrong TOML type is reported and kept as [`RawValue::Invalid`] (so that layer 2 neither
//! misses it as "missing" nor reports it twice). Nothing here knows what a value means; that
//! is layer 2 (`validate`).

use toml::de::{DeTable, DeValue};

use crate::diagnostic::{Report, shown};
use crate::suggest;

/// The TOML shape a key must have.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ty {
    Str,
    Int,
    StrList,
    Table(&'static [Field]),
    Tables(&'static [Field]),
}

/// A known key and its shape.
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field { name, ty }
}

use Ty::{Int, Str, StrList};

/// Every key of the file. `tallyman.example.toml` documents each one (a test checks it).
pub(crate) static ROOT: &[Field] = &[
    f("agent", Ty::Table(AGENT)),
    f("spool", Ty::Table(SPOOL)),
    f("log", Ty::Table(LOG)),
    f("mqtt", Ty::Table(MQTT)),
    f("sources", Ty::Tables(SOURCES)),
    f("sinks", Ty::Tables(SINKS)),
    f("remote", Ty::Table(REMOTE)),
    f("health", Ty::Table(HEALTH)),
];

static AGENT: &[Field] = &[f("facility", Str), f("gateway", Str), f("data_dir", Str)];

static SPOOL: &[Field] = &[
    f("max_size_mb", Int),
    f("commit_window_ms", Int),
    f("cache_capacity_mb", Int),
    f("encryption_key_file", Str),
    f("raw_scans_when_full", Str),
];

static LOG: &[Field] = &[f("format", Str), f("level", Str)];

static MQTT: &[Field] = &[
    f("endpoint", Str),
    f("client_id", Str),
    f("ca_file", Str),
    f("cert_file", Str),
    f("key_file", Str),
    f("keep_alive_secs", Int),
    f("username", Str),
    f("password_file", Str),
];

static SOURCES: &[Field] = &[
    f("name", Str),
    f("type", Str),
    f("path", Str),
    f("baud", Int),
    f("parity", Str),
    f("data_bits", Int),
    f("stop_bits", Int),
    f("terminator", Str),
    f("strip_prefix", Str),
    f("strip_suffix", Str),
    f("gs_aliases", StrList),
    f("max_frame_bytes", Int),
    f("rate_limit_per_sec", Int),
    f("feedback", Ty::Table(FEEDBACK)),
    f("decoder", Str),
    f("workflow", Str),
    f("location", Str),
    f("command_prefix", Str),
    f("idle_timeout_secs", Int),
    f("idle_action", Str),
    f("expired", Str),
    f("default_uom", Str),
    f("dedup_window_ms", Int),
    f("portal", Ty::Table(PORTAL)),
];

static FEEDBACK: &[Field] = &[f("good", Str), f("bad", Str), f("full", Str)];

static PORTAL: &[Field] = &[f("from", Str), f("to", Str)];

static SINKS: &[Field] = &[
    f("name", Str),
    f("type", Str),
    f("kinds", StrList),
    f("retry", Ty::Table(RETRY)),
    f("batch_size", Int),
    f("path", Str),
    f("format", Str),
    f("inflight", Int),
    f("endpoint", Str),
    f("token_file", Str),
    f("ca_file", Str),
    f("timeout_secs", Int),
    f("database", Str),
    f("login", Str),
    f("api_key_file", Str),
    f("consumption_location", Str),
    f("consumption_mode", Str),
];

static RETRY: &[Field] = &[f("initial_ms", Int), f("max_ms", Int)];

static REMOTE: &[Field] = &[f("trusted_keys", StrList), f("rollback_after_secs", Int)];

static HEALTH: &[Field] = &[f("interval_secs", Int)];

/// A table of known keys whose values have the right TOML type.
#[derive(Debug)]
pub(crate) struct RawTable {
    /// `sources[1]`, `sinks[0].retry`; empty for the document.
    pub(crate) path: String,
    /// Byte offset of the table's header (`[spool]`, `[[sources]]`, `{`) or of its first key.
    pub(crate) at: usize,
    pub(crate) entries: Vec<RawEntry>,
}

/// One key of a [`RawTable`].
#[derive(Debug)]
pub(crate) struct RawEntry {
    pub(crate) name: String,
    /// `sources[1].baud`.
    pub(crate) path: String,
    pub(crate) key_at: usize,
    pub(crate) value_at: usize,
    pub(crate) value: RawValue,
}

#[derive(Debug)]
pub(crate) enum RawValue {
    Str(String),
    Int(i64),
    StrList(Vec<RawItem>),
    Table(RawTable),
    Tables(Vec<RawTable>),
    /// Present with the wrong TOML type: already reported.
    Invalid,
}

/// One string of a list.
#[derive(Debug)]
pub(crate) struct RawItem {
    /// `remote.trusted_keys[0]`.
    pub(crate) path: String,
    pub(crate) at: usize,
    pub(crate) value: String,
}

impl RawTable {
    pub(crate) fn entry(&self, name: &str) -> Option<&RawEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// The path of a key of this table.
    pub(crate) fn key_path(&self, name: &str) -> String {
        join(&self.path, name)
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// Parses the text and checks it against [`ROOT`]. `None` when the text is not TOML: every
/// syntax error is then in the report, and nothing else is, since what follows a syntax error
/// cannot be trusted.
pub(crate) fn read(text: &str, report: &mut Report<'_>) -> Option<RawTable> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            let mut message = format!("invalid TOML: {}", e.message());
            // The parser does not say which key; the span does.
            if e.message() == "duplicate key" {
                if let Some(key) = text.get(span.clone()).filter(|k| !k.is_empty()) {
                    message.push_str(&format!(" `{}`", shown(key)));
                }
            }
            report.error(span.start, "", message);
        }
        return None;
    }
    Some(table(report, doc.get_ref(), "", 0, ROOT))
}

fn table(
    report: &mut Report<'_>,
    de: &DeTable<'_>,
    path: &str,
    at: usize,
    schema: &'static [Field],
) -> RawTable {
    let mut entries = Vec::new();
    for (key, value) in de.iter() {
        let name: &str = key.get_ref();
        let key_path = join(path, name);
        let key_at = key.span().start;
        let value_at = value.span().start;
        let Some(field) = schema.iter().find(|f| f.name == name) else {
            report.error(key_at, &key_path, unknown_key(name, schema));
            continue;
        };
        let raw = match (field.ty, value.get_ref()) {
            (Ty::Str, DeValue::String(s)) => RawValue::Str(s.to_string()),
            (Ty::Int, DeValue::Integer(i)) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => RawValue::Int(n),
                Err(_) => {
                    report.error(value_at, &key_path, "integer out of range");
                    RawValue::Invalid
                }
            },
            (Ty::StrList, DeValue::Array(items)) => {
                let mut list = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{key_path}[{i}]");
                    match item.get_ref() {
                        DeValue::String(s) => list.push(RawItem {
                            path: item_path,
                            at: item.span().start,
                            value: s.to_string(),
                        }),
                        other => {
                            report.error(
                                item.span().start,
                                &item_path,
                                format!("expected a string, found {}", found(other)),
                            );
                            ok = false;
                        }
                    }
                }
                if ok {
                    RawValue::StrList(list)
                } else {
                    RawValue::Invalid
                }
            }
            (Ty::Table(sub), DeValue::Table(t)) => {
                RawValue::Table(table(report, t, &key_path, value_at, sub))
            }
            (Ty::Tables(sub), DeValue::Array(items)) => {
                let mut tables = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    let item_path = format!("{key_path}[{i}]");
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            tables.push(table(report, t, &item_path, item.span().start, sub));
                        }
                        other => {
                            report.error(
                                item.span().start,
                                &item_path,
                                format!("expected a table, found {}", found(other)),
                            );
                            ok = false;
                        }
                    }
                }
                if ok {
                    RawValue::Tables(tables)
                } else {
                    RawValue::Invalid
                }
            }
            (ty, other) => {
                report.error(
                    value_at,
                    &key_path,
                    format!("expected {}, found {}", expected(ty, name), found(other)),
                );
                RawValue::Invalid
            }
        };
        entries.push(RawEntry {
            name: name.to_owned(),
            path: key_path,
            key_at,
            value_at,
            value: raw,
        });
    }
    RawTable {
        path: path.to_owned(),
        at,
        entries,
    }
}

fn expected(ty: Ty, name: &str) -> String {
    match ty {
        Ty::Str => "a string".into(),
        Ty::Int => "an integer".into(),
        Ty::StrList => "a list of strings".into(),
        Ty::Table(_) => format!("a table (`[{name}]`)"),
        Ty::Tables(_) => format!("an array of tables (`[[{name}]]`)"),
    }
}

fn found(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(a) if !a.is_empty() && a.iter().all(|i| i.get_ref().is_table()) => {
            "an array of tables"
        }
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// "unknown key `x`", with the closest key of this table, or else the section where a key of
/// that exact name lives.
fn unknown_key(name: &str, schema: &'static [Field]) -> String {
    let mut message = format!("unknown key `{}`", shown(name));
    if let Some(s) = suggest::closest(name, schema.iter().map(|f| f.name)) {
        message.push_str(&format!("; did you mean `{s}`?"));
    } else if let Some(section) = home_of(name, ROOT, "") {
        message.push_str(&format!("; it belongs in {section}"));
    }
    message
}

/// The section header under which a key of this name is known (`[spool]`, `[[sources]]`).
fn home_of(name: &str, schema: &'static [Field], path: &str) -> Option<String> {
    for field in schema {
        let (sub, header) = match field.ty {
            Ty::Table(sub) => (sub, format!("[{}]", join(path, field.name))),
            Ty::Tables(sub) => (sub, format!("[[{}]]", join(path, field.name))),
            _ => continue,
        };
        if sub.iter().any(|f| f.name == name) {
            return Some(format!("`{header}`"));
        }
        if let Some(found) = home_of(name, sub, &join(path, field.name)) {
            return Some(found);
        }
    }
    None
}

/// Every key path of the schema (`sources.feedback.good`), for the test that the example
/// documents them all.
#[cfg(test)]
pub(crate) fn all_key_paths() -> Vec<String> {
    fn walk(schema: &'static [Field], path: &str, out: &mut Vec<String>) {
        for field in schema {
            let p = join(path, field.name);
            match field.ty {
                Ty::Table(sub) | Ty::Tables(sub) => walk(sub, &p, out),
                _ => out.push(p),
            }
        }
    }
    let mut out = Vec::new();
    walk(ROOT, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> (Option<RawTable>, Vec<String>) {
        let mut report = Report::new(text);
        let t = read(text, &mut report);
        let d = report
            .into_diagnostics()
            .iter()
            .map(|d| d.render("f"))
            .collect();
        (t, d)
    }

    #[test]
    fn unknown_keys_get_a_suggestion_or_a_home() {
        let (_, d) = raw("[spool]\ncomit_window_ms = 3\nbaud = 9600\nzzz = 1\n");
        assert_eq!(
            d,
            [
                "f:2:1 spool.comit_window_ms: unknown key `comit_window_ms`; did you mean `commit_window_ms`?",
                "f:3:1 spool.baud: unknown key `baud`; it belongs in `[[sources]]`",
                "f:4:1 spool.zzz: unknown key `zzz`",
            ]
        );
    }

    #[test]
    fn wrong_types_are_kept_as_invalid() {
        let (t, d) = raw("[agent]\nfacility = 5\n[[sources]]\ngs_aliases = [\"a\", 1]\n");
        assert_eq!(
            d,
            [
                "f:2:12 agent.facility: expected a string, found an integer",
                "f:4:20 sources[0].gs_aliases[1]: expected a string, found an integer",
            ]
        );
        let t = t.unwrap();
        let agent = t.entry("agent").unwrap();
        let RawValue::Table(agent) = &agent.value else {
            panic!("agent is a table")
        };
        assert!(matches!(
            agent.entry("facility").unwrap().value,
            RawValue::Invalid
        ));
    }

    #[test]
    fn sections_of_the_wrong_shape() {
        let (_, d) = raw("agent = 1\n[sources]\nname = \"x\"\n");
        assert_eq!(
            d,
            [
                "f:1:9 agent: expected a table (`[agent]`), found an integer",
                "f:2:1 sources: expected an array of tables (`[[sources]]`), found a table",
            ]
        );
    }

    #[test]
    fn every_syntax_error_is_reported() {
        let (t, d) = raw("a = \nb = 1\nb = 2\n");
        assert!(t.is_none());
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d.iter().all(|l| l.contains(": invalid TOML: ")), "{d:?}");
    }
}
