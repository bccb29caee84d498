//! `Model.load(fields, data)`: the import API (odoo-api.md §4.3). Values are strings as in
//! a CSV import; `id` is the external id, `.id` the database id, `x/id` and `x/.id` a
//! many2one by external or database id; `move_ids/...` columns are one2many children, one
//! per row (rows whose own columns are all empty continue the record above).
//!
//! Records are upserted by external id: an existing one is written, a new one created with
//! its `ir.model.data` (without the caller needing rights on it). Children without their own
//! external id are created again on every load (as real Odoo does). Any error rolls the
//! whole load back and comes back as a message with HTTP 200.

use serde_json::{Map, Value, json};

use super::db::{Env, as_id};
use super::error::{OResult, OdooError};
use super::schema::{Field, Model, Ty, schema};

/// A column: its path split on `/`.
type Column = Vec<String>;

fn cell(row: &[Value], i: usize) -> String {
    match row.get(i) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | Some(Value::Bool(false)) | None => String::new(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Bool(true)) => "True".into(),
        Some(other) => other.to_string(),
    }
}

fn split_xmlid(xmlid: &str) -> (String, String) {
    match xmlid.split_once('.') {
        Some((m, n)) => (m.to_owned(), n.to_owned()),
        None => ("__import__".to_owned(), xmlid.to_owned()),
    }
}

fn find_xmlid(env: &Env<'_>, xmlid: &str) -> Option<(String, i64)> {
    let (module, name) = split_xmlid(xmlid);
    let id = env
        .filter("ir.model.data", |r| {
            r.get("module").and_then(Value::as_str) == Some(module.as_str())
                && r.get("name").and_then(Value::as_str) == Some(name.as_str())
        })
        .first()
        .copied()?;
    Some((
        env.text("ir.model.data", id, "model").unwrap_or_default(),
        env.m2o("ir.model.data", id, "res_id").unwrap_or(0),
    ))
}

/// A load error: the message and the field it is about.
struct LoadError {
    message: String,
    field: Option<String>,
}

impl From<OdooError> for LoadError {
    fn from(e: OdooError) -> LoadError {
        LoadError {
            message: e.message,
            field: None,
        }
    }
}

fn field_error(f: &Field, message: String) -> LoadError {
    LoadError {
        message: message.replace("%(field)s", f.string),
        field: Some(f.name.to_owned()),
    }
}

/// One column's value for a field (`sub` = the rest of the path: `id`, `.id` or nothing).
fn convert(env: &Env<'_>, f: &Field, sub: Option<&str>, text: &str) -> Result<Value, LoadError> {
    if text.is_empty() {
        return Ok(Value::Bool(false));
    }
    match f.ty {
        Ty::Many2one(comodel) => match sub {
            Some(".id") => {
                let id = text.trim().parse::<i64>().map_err(|_| {
                    field_error(
                        f,
                        format!("Invalid database id '{text}' for the field '%(field)s'"),
                    )
                })?;
                if !env.exists(comodel, id) {
                    return Err(field_error(
                        f,
                        format!(
                            "No matching record found for database id '{text}' in field '%(field)s'"
                        ),
                    ));
                }
                Ok(json!(id))
            }
            Some("id") => match find_xmlid(env, text) {
                Some((m, id)) if m == comodel && env.exists(comodel, id) => Ok(json!(id)),
                _ => Err(field_error(
                    f,
                    format!(
                        "No matching record found for external id '{text}' in field '%(field)s'"
                    ),
                )),
            },
            _ => {
                let found = env
                    .name_search(comodel, text, &json!([]), "=", 2)
                    .map_err(LoadError::from)?;
                match found.first().and_then(|p| p.get(0)).and_then(as_id) {
                    Some(id) => Ok(json!(id)),
                    None => Err(field_error(
                        f,
                        format!("No matching record found for name '{text}' in field '%(field)s'"),
                    )),
                }
            }
        },
        Ty::Float => text.trim().parse::<f64>().map(|x| json!(x)).map_err(|_| {
            field_error(
                f,
                format!("'{text}' does not seem to be a number for field '%(field)s'"),
            )
        }),
        Ty::Int => text.trim().parse::<i64>().map(|x| json!(x)).map_err(|_| {
            field_error(
                f,
                format!("'{text}' does not seem to be an integer for field '%(field)s'"),
            )
        }),
        Ty::Bool => Ok(json!(matches!(
            text.trim().to_lowercase().as_str(),
            "1" | "true" | "yes"
        ))),
        Ty::Selection(options) => options
            .iter()
            .find(|(k, l)| *k == text || l.eq_ignore_ascii_case(text))
            .map(|(k, _)| json!(k))
            .ok_or_else(|| {
                field_error(
                    f,
                    format!("Value '{text}' not found in selection field '%(field)s'"),
                )
            }),
        Ty::One2many(..) | Ty::Many2many(_) => Err(field_error(
            f,
            "The fake Odoo imports x2many fields only as child columns".into(),
        )),
        _ => Ok(json!(text)),
    }
}

/// Values and external id / database id of one record from its columns.
struct Parsed {
    xmlid: Option<String>,
    db_id: Option<i64>,
    vals: Map<String, Value>,
}

fn parse_record(
    env: &Env<'_>,
    m: &Model,
    columns: &[(usize, Column)],
    row: &[Value],
) -> Result<Parsed, LoadError> {
    let mut out = Parsed {
        xmlid: None,
        db_id: None,
        vals: Map::new(),
    };
    for (i, col) in columns {
        let text = cell(row, *i);
        match col.first().map(String::as_str) {
            Some("id") if !text.is_empty() => out.xmlid = Some(text),
            Some(".id") if !text.is_empty() => {
                out.db_id = Some(text.trim().parse().map_err(|_| LoadError {
                    message: format!("Invalid database id '{text}'"),
                    field: Some(".id".into()),
                })?);
            }
            Some("id" | ".id") => {}
            Some(name) => {
                let f = m.field(name).ok_or_else(|| LoadError {
                    message: format!("Unknown field '{name}'"),
                    field: Some(name.to_owned()),
                })?;
                let value = convert(env, f, col.get(1).map(String::as_str), &text)?;
                out.vals.insert(name.to_owned(), value);
            }
            None => {}
        }
    }
    Ok(out)
}

/// Create or write a record by external id / database id; its id.
fn upsert(env: &mut Env<'_>, model: &str, p: Parsed) -> OResult<i64> {
    if let Some(id) = p.db_id {
        env.write(model, &[id], &p.vals)?;
        return Ok(id);
    }
    if let Some(xmlid) = &p.xmlid {
        if let Some((m, id)) = find_xmlid(env, xmlid) {
            if m == model && env.exists(model, id) {
                env.write(model, &[id], &p.vals)?;
                return Ok(id);
            }
        }
    }
    let id = env.create(model, &p.vals)?;
    if let Some(xmlid) = &p.xmlid {
        let (module, name) = split_xmlid(xmlid);
        // A stale external id (its record deleted) is replaced.
        let stale = env.filter("ir.model.data", |r| {
            r.get("module").and_then(Value::as_str) == Some(module.as_str())
                && r.get("name").and_then(Value::as_str) == Some(name.as_str())
        });
        for s in stale {
            env.orm_unlink("ir.model.data", s);
        }
        super::stock::insert(
            env,
            "ir.model.data",
            &[
                ("module", json!(module)),
                ("name", json!(name)),
                ("model", json!(model)),
                ("res_id", json!(id)),
                ("noupdate", json!(false)),
            ],
        );
    }
    Ok(id)
}

pub(crate) fn load(env: &mut Env<'_>, model: &str, fields: &Value, data: &Value) -> OResult<Value> {
    let m = schema(env.v)
        .model(model)
        .ok_or_else(|| OdooError::user(format!("Object {model} doesn't exist")))?;
    let Some(fields) = fields.as_array() else {
        return Err(OdooError::type_error("'NoneType' object is not iterable"));
    };
    let Some(rows) = data.as_array() else {
        return Err(OdooError::type_error("'NoneType' object is not iterable"));
    };
    let columns: Vec<Column> = fields
        .iter()
        .map(|f| {
            f.as_str()
                .unwrap_or("")
                .split('/')
                .map(str::to_owned)
                .collect()
        })
        .collect();
    // Top-level columns, and child columns per one2many field.
    let mut own: Vec<(usize, Column)> = Vec::new();
    let mut children: Vec<(String, Vec<(usize, Column)>)> = Vec::new();
    for (i, col) in columns.iter().enumerate() {
        let name = col.first().cloned().unwrap_or_default();
        let is_child = col.len() > 1
            && m.field(&name)
                .is_some_and(|f| matches!(f.ty, Ty::One2many(..)));
        if is_child {
            let rest = col[1..].to_vec();
            match children.iter_mut().find(|(n, _)| *n == name) {
                Some((_, cols)) => cols.push((i, rest)),
                None => children.push((name, vec![(i, rest)])),
            }
        } else {
            own.push((i, col.clone()));
        }
    }
    let rows: Vec<Vec<Value>> = rows
        .iter()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect();
    // Group rows into records.
    let mut records: Vec<(usize, usize)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let starts = own.iter().any(|(c, _)| !cell(row, *c).is_empty()) || records.is_empty();
        if starts {
            records.push((i, i));
        } else if let Some(last) = records.last_mut() {
            last.1 = i;
        }
    }
    let backup = env.db.clone();
    let mut ids = Vec::new();
    let mut messages = Vec::new();
    for (index, (from, to)) in records.iter().enumerate() {
        let result = (|| -> Result<i64, LoadError> {
            let parent = parse_record(env, m, &own, &rows[*from])?;
            let id = upsert(env, model, parent)?;
            for (name, cols) in &children {
                let Some(Ty::One2many(comodel, inverse)) = m.field(name).map(|f| f.ty) else {
                    continue;
                };
                let cm = schema(env.v).model(comodel).ok_or_else(|| LoadError {
                    message: format!("Object {comodel} doesn't exist"),
                    field: Some(name.clone()),
                })?;
                for row in &rows[*from..=*to] {
                    if cols.iter().all(|(c, _)| cell(row, *c).is_empty()) {
                        continue;
                    }
                    let mut child = parse_record(env, cm, cols, row)?;
                    child.vals.insert(inverse.to_owned(), json!(id));
                    upsert(env, comodel, child).map_err(|e| LoadError {
                        message: e.message,
                        field: Some(name.clone()),
                    })?;
                }
            }
            Ok(id)
        })();
        match result {
            Ok(id) => ids.push(id),
            Err(e) => {
                let mut msg = Map::new();
                msg.insert("type".into(), json!("error"));
                msg.insert("message".into(), json!(e.message));
                msg.insert("record".into(), json!(index));
                msg.insert("rows".into(), json!({"from": from, "to": to}));
                if let Some(f) = e.field {
                    msg.insert("field".into(), json!(f));
                }
                messages.push(Value::Object(msg));
                break;
            }
        }
    }
    if !messages.is_empty() {
        *env.db = backup;
        return Ok(json!({"ids": false, "messages": messages, "nextrow": 0}));
    }
    Ok(json!({"ids": ids, "messages": [], "nextrow": 0}))
}
