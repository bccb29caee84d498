//! The in-memory database and the generic ORM on it: create / write / unlink with Odoo's
//! value conversions and x2many commands, search with domains, read, fields_get, access
//! rights. Model-specific behaviour lives in `stock.rs` and is reached through the hooks
//! here ([`Env::create`], [`Env::write`], [`Env::compute`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::Version;
use super::error::{Kind, OResult, OdooError};
use super::schema::{Field, Model, Ty, schema};
use super::{ADMIN_UID, stock};

/// One record: stored field values. Many2one = id or null, x2many: many2many = array of ids,
/// one2many are not stored (their inverse is).
pub(crate) type Row = BTreeMap<String, Value>;

/// A model's records. Rows are shared between copies of the database and copied on write,
/// so that the copy each call runs on (one call, one transaction) costs little.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    pub next_id: i64,
    pub rows: BTreeMap<i64, Arc<Row>>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Db {
    pub tables: BTreeMap<String, Table>,
    /// Sequences by code (picking type prefix, "stock.scrap").
    pub sequences: BTreeMap<String, i64>,
}

impl Db {
    pub(crate) fn table(&mut self, model: &str) -> &mut Table {
        self.tables
            .entry(model.to_owned())
            .or_insert_with(|| Table {
                next_id: 1,
                rows: BTreeMap::new(),
            })
    }

    pub(crate) fn row(&self, model: &str, id: i64) -> Option<&Row> {
        self.tables
            .get(model)
            .and_then(|t| t.rows.get(&id))
            .map(|r| &**r)
    }

    pub(crate) fn ids(&self, model: &str) -> Vec<i64> {
        self.tables
            .get(model)
            .map(|t| t.rows.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Insert a row as is (seeding and internal records); its id.
    pub(crate) fn insert(&mut self, model: &str, mut row: Row) -> i64 {
        let t = self.table(model);
        let id = t.next_id;
        t.next_id += 1;
        row.insert("id".into(), json!(id));
        t.rows.insert(id, Arc::new(row));
        id
    }

    pub(crate) fn next_sequence(&mut self, code: &str) -> i64 {
        let n = self.sequences.entry(code.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
}

/// One call's environment: the database (a copy the call may change), the version, the
/// user, the context, and whether access rights are bypassed (`sudo`).
#[derive(Debug)]
pub(crate) struct Env<'a> {
    pub db: &'a mut Db,
    pub v: Version,
    pub uid: i64,
    pub ctx: Map<String, Value>,
    pub su: bool,
}

/// Access operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Read,
    Write,
    Create,
    Unlink,
}

/// The current UTC time as Odoo writes datetimes.
pub(crate) fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    datetime_from_unix(secs)
}

/// `YYYY-MM-DD HH:MM:SS` of a Unix time (proleptic Gregorian, UTC).
pub(crate) fn datetime_from_unix(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Python's truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A Python-ish `repr` of a JSON value, for messages.
pub(crate) fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::String(s) => format!("'{s}'"),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(_) | Value::Number(_) => v.to_string(),
    }
}

/// An id from a JSON number (integers only; Odoo ids are ints).
pub(crate) fn as_id(v: &Value) -> Option<i64> {
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
}

/// Ids from an `ids` argument: an int or a list of ints.
pub(crate) fn as_ids(v: &Value) -> Option<Vec<i64>> {
    match v {
        Value::Array(a) => a.iter().map(as_id).collect(),
        Value::Null | Value::Bool(false) => Some(Vec::new()),
        _ => as_id(v).map(|id| vec![id]),
    }
}

fn float_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Null => Some(0.0),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl Env<'_> {
    pub(crate) fn model(&self, name: &str) -> OResult<&'static Model> {
        schema(self.v)
            .model(name)
            .ok_or_else(|| OdooError::user(format!("Object {name} doesn't exist")))
    }

    pub(crate) fn is_admin(&self) -> bool {
        self.su || self.uid == ADMIN_UID
    }

    pub(crate) fn ctx_bool(&self, key: &str) -> bool {
        self.ctx.get(key).is_some_and(truthy)
    }

    pub(crate) fn ctx_ids(&self, key: &str) -> Vec<i64> {
        self.ctx.get(key).and_then(as_ids).unwrap_or_default()
    }

    /// Run `f` with a context changed by `change`, restoring the context afterwards.
    pub(crate) fn with_ctx<T>(
        &mut self,
        change: impl FnOnce(&mut Map<String, Value>),
        f: impl FnOnce(&mut Self) -> T,
    ) -> T {
        let saved = self.ctx.clone();
        change(&mut self.ctx);
        let out = f(self);
        self.ctx = saved;
        out
    }

    /// Run `f` as superuser.
    pub(crate) fn sudo<T>(&mut self, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.su;
        self.su = true;
        let out = f(self);
        self.su = saved;
        out
    }

    pub(crate) fn check_access(&self, model: &str, op: Op) -> OResult<()> {
        if self.is_admin() {
            return Ok(());
        }
        let m = self.model(model)?;
        let r = m.bot;
        let (allowed, verb) = match op {
            Op::Read => (r.read, "access"),
            Op::Write => (r.write, "modify"),
            Op::Create => (r.create, "create"),
            Op::Unlink => (r.unlink, "delete"),
        };
        if allowed {
            return Ok(());
        }
        Err(OdooError::new(
            Kind::AccessError,
            format!(
                "You are not allowed to {verb} '{}' ({model}) records.\n\nThis operation is allowed for the following groups:\n\t- {}\n\nContact your administrator to request access if necessary.",
                m.description, r.group
            ),
        ))
    }

    // ---- raw access ------------------------------------------------------------------------

    pub(crate) fn exists(&self, model: &str, id: i64) -> bool {
        self.db.row(model, id).is_some()
    }

    /// `MissingError` unless every record exists.
    pub(crate) fn ensure(&self, model: &str, ids: &[i64]) -> OResult<()> {
        let missing: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|id| !self.exists(model, *id))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(OdooError::missing(model, &missing, self.uid))
        }
    }

    /// A stored value (null if unset or missing).
    pub(crate) fn raw(&self, model: &str, id: i64, field: &str) -> Value {
        self.db
            .row(model, id)
            .and_then(|r| r.get(field))
            .cloned()
            .unwrap_or(Value::Null)
    }

    pub(crate) fn m2o(&self, model: &str, id: i64, field: &str) -> Option<i64> {
        as_id(&self.raw(model, id, field))
    }

    pub(crate) fn text(&self, model: &str, id: i64, field: &str) -> Option<String> {
        match self.raw(model, id, field) {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub(crate) fn num(&self, model: &str, id: i64, field: &str) -> f64 {
        float_of(&self.raw(model, id, field)).unwrap_or(0.0)
    }

    pub(crate) fn flag(&self, model: &str, id: i64, field: &str) -> bool {
        truthy(&self.raw(model, id, field))
    }

    /// Set a stored value as is.
    pub(crate) fn set(&mut self, model: &str, id: i64, field: &str, value: Value) {
        if let Some(row) = self.db.table(model).rows.get_mut(&id) {
            Arc::make_mut(row).insert(field.to_owned(), value);
        }
    }

    /// Ids of `model` whose stored `field` satisfies `pred`, ascending.
    pub(crate) fn filter(&self, model: &str, pred: impl Fn(&Row) -> bool) -> Vec<i64> {
        self.db
            .tables
            .get(model)
            .map(|t| {
                t.rows
                    .iter()
                    .filter(|(_, r)| pred(r))
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The records of `comodel` whose many2one `inverse` is `id`.
    pub(crate) fn children(&self, comodel: &str, inverse: &str, id: i64) -> Vec<i64> {
        self.filter(comodel, |r| r.get(inverse).and_then(as_id) == Some(id))
    }

    pub(crate) fn display_name(&self, model: &str, id: i64) -> String {
        stock::display_name(self, model, id)
    }

    // ---- create / write / unlink -----------------------------------------------------------

    /// `create(vals)`: access, then the model's own create.
    pub(crate) fn create(&mut self, model: &str, vals: &Map<String, Value>) -> OResult<i64> {
        self.check_access(model, Op::Create)?;
        stock::create(self, model, vals)
    }

    /// `write(vals)` on records: access, existence, then the model's own write.
    pub(crate) fn write(
        &mut self,
        model: &str,
        ids: &[i64],
        vals: &Map<String, Value>,
    ) -> OResult<()> {
        self.check_access(model, Op::Write)?;
        self.ensure(model, ids)?;
        stock::write(self, model, ids, vals)
    }

    pub(crate) fn unlink(&mut self, model: &str, ids: &[i64]) -> OResult<()> {
        self.check_access(model, Op::Unlink)?;
        self.ensure(model, ids)?;
        stock::unlink(self, model, ids)?;
        for id in ids {
            self.orm_unlink(model, *id);
        }
        Ok(())
    }

    /// Remove a record and what cascades from it (one2many children).
    pub(crate) fn orm_unlink(&mut self, model: &str, id: i64) {
        if let Some(t) = self.db.tables.get_mut(model) {
            t.rows.remove(&id);
        }
        let Ok(m) = self.model(model) else { return };
        for f in &m.fields {
            if let Ty::One2many(comodel, inverse) = f.ty {
                if f.computed && comodel == model {
                    continue;
                }
                for child in self.children(comodel, inverse, id) {
                    if cascades(comodel, inverse) {
                        self.orm_unlink(comodel, child);
                    } else {
                        self.set(comodel, child, inverse, Value::Null);
                    }
                }
            }
        }
    }

    /// Check field names, apply defaults (model defaults, then `default_*` of the context),
    /// insert the scalar values, then run the x2many commands. No model logic.
    pub(crate) fn orm_create(
        &mut self,
        model: &str,
        vals: &Map<String, Value>,
        defaults: &Map<String, Value>,
    ) -> OResult<i64> {
        let m = self.model(model)?;
        for k in vals.keys() {
            if !m.has(k) {
                return Err(OdooError::invalid_field(k, model));
            }
        }
        let mut all = defaults.clone();
        for f in &m.fields {
            if vals.contains_key(f.name) {
                continue;
            }
            if let Some(d) = self.ctx.get(&format!("default_{}", f.name)) {
                all.insert(f.name.to_owned(), d.clone());
            }
        }
        for (k, v) in vals {
            all.insert(k.clone(), v.clone());
        }
        let now = now();
        let mut row = Row::new();
        row.insert("create_date".into(), json!(now));
        row.insert("write_date".into(), json!(now));
        if m.has("active") {
            row.insert("active".into(), json!(true));
        }
        let mut x2many = Vec::new();
        for (k, v) in &all {
            let Some(f) = m.field(k) else { continue };
            if f.name == "id" || f.name == "display_name" || f.computed {
                continue;
            }
            match f.ty {
                Ty::One2many(..) | Ty::Many2many(_) => x2many.push((f, v.clone())),
                _ => {
                    let value = self.convert(model, f, v)?;
                    row.insert(f.name.to_owned(), value);
                }
            }
        }
        for f in &m.fields {
            if f.required && !f.computed && !matches!(f.ty, Ty::Bool | Ty::Float | Ty::Int) {
                let set = row.get(f.name).is_some_and(|v| !v.is_null());
                if !set {
                    return Err(not_null(m, f));
                }
            }
        }
        let id = self.db.insert(model, row);
        for (f, v) in x2many {
            self.apply_x2many(model, id, f, &v)?;
        }
        Ok(id)
    }

    /// Check field names and write values and x2many commands. No model logic.
    pub(crate) fn orm_write(
        &mut self,
        model: &str,
        ids: &[i64],
        vals: &Map<String, Value>,
    ) -> OResult<()> {
        let m = self.model(model)?;
        for k in vals.keys() {
            if !m.has(k) {
                return Err(OdooError::invalid_field(k, model));
            }
        }
        let now = now();
        for &id in ids {
            for (k, v) in vals {
                let Some(f) = m.field(k) else { continue };
                if f.name == "id" || f.name == "display_name" || f.computed {
                    continue;
                }
                match f.ty {
                    Ty::One2many(..) | Ty::Many2many(_) => self.apply_x2many(model, id, f, v)?,
                    _ => {
                        let value = self.convert(model, f, v)?;
                        if f.required && value.is_null() && !matches!(f.ty, Ty::Bool) {
                            return Err(not_null(m, f));
                        }
                        self.set(model, id, f.name, value);
                    }
                }
            }
            self.set(model, id, "write_date", json!(now));
        }
        Ok(())
    }

    /// A value as Odoo stores it (`convert_to_cache`), or ValueError.
    fn convert(&self, model: &str, f: &Field, v: &Value) -> OResult<Value> {
        let bad = || OdooError::value(format!("Wrong value for {model}.{}: {}", f.name, repr(v)));
        Ok(match f.ty {
            Ty::Char | Ty::Text => match v {
                Value::Null | Value::Bool(false) => Value::Null,
                Value::String(s) => json!(s),
                Value::Number(n) => json!(n.to_string()),
                _ => return Err(bad()),
            },
            Ty::Int => match v {
                Value::Null | Value::Bool(false) => json!(0),
                _ => json!(float_of(v).ok_or_else(bad)? as i64),
            },
            Ty::Float => json!(float_of(v).ok_or_else(bad)?),
            Ty::Bool => json!(truthy(v)),
            Ty::Selection(options) => match v {
                Value::Null | Value::Bool(false) => Value::Null,
                Value::String(s) if options.iter().any(|(k, _)| k == s) => json!(s),
                _ => return Err(bad()),
            },
            Ty::Date | Ty::Datetime => match v {
                Value::Null | Value::Bool(false) => Value::Null,
                Value::String(s) => json!(normalize_date(f.ty, s).ok_or_else(|| {
                    OdooError::value(format!(
                        "time data '{s}' does not match format '%Y-%m-%d %H:%M:%S'"
                    ))
                })?),
                _ => return Err(bad()),
            },
            Ty::Many2one(comodel) => {
                let id = match v {
                    Value::Null | Value::Bool(false) => return Ok(Value::Null),
                    Value::Array(a) => a.first().and_then(as_id),
                    _ => as_id(v),
                };
                let id = id.ok_or_else(bad)?;
                if !self.exists(comodel, id) {
                    return Err(OdooError::integrity(&format!(
                        "insert or update on table \"{}\" violates foreign key constraint \"{}_{}_fkey\"\nDETAIL:  Key ({})=({id}) is not present in table \"{}\".\n",
                        table_name(model),
                        table_name(model),
                        f.name,
                        f.name,
                        table_name(comodel)
                    )));
                }
                json!(id)
            }
            Ty::One2many(..) | Ty::Many2many(_) => Value::Null,
        })
    }

    /// x2many commands: `[0,0,vals]`, `[1,id,vals]`, `[2,id]`, `[3,id]`, `[4,id]`, `[5]`,
    /// `[6,0,ids]`, or a plain list of ids (replace).
    fn apply_x2many(&mut self, model: &str, id: i64, f: &Field, v: &Value) -> OResult<()> {
        let bad = || OdooError::value(format!("Wrong value for {model}.{}: {}", f.name, repr(v)));
        let commands = match v {
            Value::Null | Value::Bool(false) => return Ok(()),
            Value::Array(a) => a,
            _ => return Err(bad()),
        };
        match f.ty {
            Ty::One2many(comodel, inverse) => {
                for c in commands {
                    if let Some(cid) = as_id(c) {
                        // A plain id: link it.
                        self.set(comodel, cid, inverse, json!(id));
                        continue;
                    }
                    let c = c.as_array().ok_or_else(bad)?;
                    let code = c.first().and_then(Value::as_i64).ok_or_else(bad)?;
                    let target = c.get(1).and_then(as_id).unwrap_or(0);
                    let values = c.get(2).and_then(Value::as_object);
                    match code {
                        0 => {
                            let mut vals = values.cloned().unwrap_or_default();
                            vals.insert(inverse.to_owned(), json!(id));
                            self.create(comodel, &vals)?;
                        }
                        1 => {
                            let vals = values.cloned().unwrap_or_default();
                            self.write(comodel, &[target], &vals)?;
                        }
                        2 => self.unlink(comodel, &[target])?,
                        3 => self.set(comodel, target, inverse, Value::Null),
                        4 => {
                            self.ensure(comodel, &[target])?;
                            self.set(comodel, target, inverse, json!(id));
                        }
                        5 => {
                            for child in self.children(comodel, inverse, id) {
                                self.set(comodel, child, inverse, Value::Null);
                            }
                        }
                        6 => {
                            let keep = c.get(2).and_then(as_ids).ok_or_else(bad)?;
                            for child in self.children(comodel, inverse, id) {
                                if !keep.contains(&child) {
                                    self.set(comodel, child, inverse, Value::Null);
                                }
                            }
                            for k in keep {
                                self.set(comodel, k, inverse, json!(id));
                            }
                        }
                        _ => return Err(bad()),
                    }
                }
            }
            Ty::Many2many(comodel) => {
                let mut current: Vec<i64> =
                    as_ids(&self.raw(model, id, f.name)).unwrap_or_default();
                for c in commands {
                    if let Some(cid) = as_id(c) {
                        if !current.contains(&cid) {
                            current.push(cid);
                        }
                        continue;
                    }
                    let c = c.as_array().ok_or_else(bad)?;
                    let code = c.first().and_then(Value::as_i64).ok_or_else(bad)?;
                    let target = c.get(1).and_then(as_id).unwrap_or(0);
                    match code {
                        0 => {
                            let vals = c
                                .get(2)
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default();
                            let new = self.create(comodel, &vals)?;
                            current.push(new);
                        }
                        1 => {
                            let vals = c
                                .get(2)
                                .and_then(Value::as_object)
                                .cloned()
                                .unwrap_or_default();
                            self.write(comodel, &[target], &vals)?;
                        }
                        2 => {
                            self.unlink(comodel, &[target])?;
                            current.retain(|x| *x != target);
                        }
                        3 => current.retain(|x| *x != target),
                        4 => {
                            self.ensure(comodel, &[target])?;
                            if !current.contains(&target) {
                                current.push(target);
                            }
                        }
                        5 => current.clear(),
                        6 => {
                            current = c.get(2).and_then(as_ids).ok_or_else(bad)?;
                            self.ensure(comodel, &current)?;
                        }
                        _ => return Err(bad()),
                    }
                }
                self.set(model, id, f.name, json!(current));
            }
            _ => {}
        }
        Ok(())
    }

    // ---- read ------------------------------------------------------------------------------

    /// A field's value for domains and logic: many2one = id or null, x2many = ids, computed
    /// fields computed.
    pub(crate) fn value(&self, model: &str, id: i64, f: &Field) -> Value {
        match f.ty {
            _ if f.name == "id" => json!(id),
            _ if f.name == "display_name" => json!(self.display_name(model, id)),
            Ty::One2many(comodel, inverse) => {
                if f.computed {
                    stock::compute(self, model, id, f.name)
                } else {
                    json!(self.children(comodel, inverse, id))
                }
            }
            _ if f.computed => stock::compute(self, model, id, f.name),
            Ty::Many2many(_) => {
                let v = self.raw(model, id, f.name);
                if v.is_null() { json!([]) } else { v }
            }
            Ty::Float => json!(self.num(model, id, f.name)),
            Ty::Int => json!(self.num(model, id, f.name) as i64),
            Ty::Bool => json!(self.flag(model, id, f.name)),
            _ => self.raw(model, id, f.name),
        }
    }

    /// `read(fields)`: records that do not exist are left out (as Odoo does).
    pub(crate) fn read(
        &self,
        model: &str,
        ids: &[i64],
        fields: Option<&[String]>,
    ) -> OResult<Vec<Value>> {
        self.check_access(model, Op::Read)?;
        let m = self.model(model)?;
        let names: Vec<&str> = match fields {
            Some(fs) if !fs.is_empty() => {
                for f in fs {
                    if !m.has(f) {
                        return Err(OdooError::invalid_field(f, model));
                    }
                }
                fs.iter().map(String::as_str).collect()
            }
            _ => m.fields.iter().map(|f| f.name).collect(),
        };
        let mut out = Vec::new();
        for &id in ids {
            if !self.exists(model, id) {
                continue;
            }
            let mut rec = Map::new();
            rec.insert("id".into(), json!(id));
            for name in &names {
                let Some(f) = m.field(name) else { continue };
                rec.insert((*name).to_owned(), self.read_value(model, id, f));
            }
            out.push(Value::Object(rec));
        }
        Ok(out)
    }

    /// A value as `read` gives it: false for empty, many2one as `[id, name]`.
    pub(crate) fn read_value(&self, model: &str, id: i64, f: &Field) -> Value {
        let v = self.value(model, id, f);
        match f.ty {
            Ty::Many2one(comodel) => match as_id(&v) {
                Some(cid) if self.exists(comodel, cid) => {
                    json!([cid, self.display_name(comodel, cid)])
                }
                _ => json!(false),
            },
            Ty::Char | Ty::Text | Ty::Selection(_) | Ty::Date | Ty::Datetime => {
                if v.is_null() {
                    json!(false)
                } else {
                    v
                }
            }
            _ => v,
        }
    }

    /// `fields_get(allfields, attributes)`.
    pub(crate) fn fields_get(
        &self,
        model: &str,
        allfields: Option<&[String]>,
        attributes: Option<&[String]>,
    ) -> OResult<Value> {
        self.check_access(model, Op::Read)?;
        let m = self.model(model)?;
        let mut out = Map::new();
        for f in &m.fields {
            if let Some(only) = allfields {
                if !only.is_empty() && !only.iter().any(|n| n == f.name) {
                    continue;
                }
            }
            let mut d = Map::new();
            d.insert("type".into(), json!(f.ty.name()));
            d.insert("string".into(), json!(f.string));
            d.insert("required".into(), json!(f.required));
            d.insert("readonly".into(), json!(f.computed || f.name == "id"));
            d.insert("store".into(), json!(!f.computed));
            d.insert("searchable".into(), json!(true));
            d.insert("sortable".into(), json!(!f.computed));
            if let Some(rel) = f.ty.relation() {
                d.insert("relation".into(), json!(rel));
            }
            if let Ty::One2many(_, inverse) = f.ty {
                d.insert("relation_field".into(), json!(inverse));
            }
            if let Ty::Selection(options) = f.ty {
                let opts: Vec<Value> = options.iter().map(|(k, l)| json!([k, l])).collect();
                d.insert("selection".into(), json!(opts));
            }
            if let Some(attrs) = attributes {
                if !attrs.is_empty() {
                    d.retain(|k, _| attrs.iter().any(|a| a == k));
                }
            }
            out.insert(f.name.to_owned(), Value::Object(d));
        }
        Ok(Value::Object(out))
    }

    // ---- search ----------------------------------------------------------------------------

    pub(crate) fn search(
        &self,
        model: &str,
        domain: &Value,
        offset: usize,
        limit: Option<usize>,
        order: Option<&str>,
    ) -> OResult<Vec<i64>> {
        self.check_access(model, Op::Read)?;
        let m = self.model(model)?;
        let dom = super::domain::parse(domain)?;
        let active_test = m.has("active")
            && self.ctx.get("active_test").is_none_or(truthy)
            && !dom.mentions("active");
        let mut ids = Vec::new();
        for id in self.db.ids(model) {
            if active_test && !self.flag(model, id, "active") {
                continue;
            }
            if dom.eval(self, m, id)? {
                ids.push(id);
            }
        }
        let order = order.filter(|o| !o.trim().is_empty()).unwrap_or(m.order);
        self.sort(m, &mut ids, order)?;
        let ids: Vec<i64> = ids.into_iter().skip(offset).collect();
        Ok(match limit {
            Some(l) => ids.into_iter().take(l).collect(),
            None => ids,
        })
    }

    fn sort(&self, m: &Model, ids: &mut [i64], order: &str) -> OResult<()> {
        let mut keys: Vec<(&Field, bool)> = Vec::new();
        for part in order.split(',') {
            let mut words = part.split_whitespace();
            let Some(name) = words.next() else { continue };
            let desc = words.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
            let f = m.field(name).ok_or_else(|| {
                OdooError::value(
                    format!("Invalid field {name:?} on model {:?}", m.name).replace('"', "'"),
                )
            })?;
            keys.push((f, desc));
        }
        ids.sort_by(|a, b| {
            for (f, desc) in &keys {
                let va = self.sort_key(m.name, *a, f);
                let vb = self.sort_key(m.name, *b, f);
                let o = compare(&va, &vb);
                let o = if *desc { o.reverse() } else { o };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.cmp(b)
        });
        Ok(())
    }

    fn sort_key(&self, model: &str, id: i64, f: &Field) -> Value {
        match f.ty {
            Ty::Many2one(comodel) => match as_id(&self.value(model, id, f)) {
                Some(cid) => json!(self.display_name(comodel, cid)),
                None => Value::Null,
            },
            _ => self.value(model, id, f),
        }
    }

    /// `name_search`: `[[id, display_name]]`.
    pub(crate) fn name_search(
        &self,
        model: &str,
        name: &str,
        domain: &Value,
        operator: &str,
        limit: usize,
    ) -> OResult<Vec<Value>> {
        let ids = self.search(model, domain, 0, None, None)?;
        let needle = name.to_lowercase();
        let mut out = Vec::new();
        for id in ids {
            let dn = self.display_name(model, id);
            let codes = stock::search_names(self, model, id);
            let hit = name.is_empty()
                || match operator {
                    "=" => dn == name || codes.iter().any(|c| c == name),
                    "=ilike" => dn.to_lowercase() == needle,
                    "like" => dn.contains(name) || codes.iter().any(|c| c.contains(name)),
                    "not ilike" => !dn.to_lowercase().contains(&needle),
                    _ => {
                        dn.to_lowercase().contains(&needle)
                            || codes.iter().any(|c| c.to_lowercase().contains(&needle))
                    }
                };
            if hit {
                out.push(json!([id, dn]));
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }
}

/// Whether deleting a parent deletes these children (`ondelete='cascade'`).
fn cascades(comodel: &str, inverse: &str) -> bool {
    matches!(
        (comodel, inverse),
        ("stock.move", "picking_id")
            | ("stock.move.line", "move_id")
            | ("stock.move.line", "picking_id")
            | (
                "stock.backorder.confirmation.line",
                "backorder_confirmation_id"
            )
            | ("stock.immediate.transfer.line", "immediate_transfer_id")
    )
}

fn table_name(model: &str) -> String {
    model.replace('.', "_")
}

/// The not-null violation of a required field, as Odoo words it.
pub(crate) fn not_null(m: &Model, f: &Field) -> OdooError {
    OdooError::validation(format!(
        "The operation cannot be completed:\n- Create/update: a mandatory field is not set.\n- Delete: another model requires the record being deleted. If possible, archive it instead.\n\nModel: {} ({})\nField: {} ({})",
        m.description, m.name, f.string, f.name
    ))
}

/// `YYYY-MM-DD` / `YYYY-MM-DD HH:MM:SS` (a date given for a datetime gets midnight).
fn normalize_date(ty: Ty, s: &str) -> Option<String> {
    let s = s.trim();
    let date_ok = |d: &str| {
        let b = d.as_bytes();
        d.len() == 10
            && b[4] == b'-'
            && b[7] == b'-'
            && d.chars()
                .enumerate()
                .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
    };
    let time_ok = |t: &str| {
        let b = t.as_bytes();
        t.len() == 8
            && b[2] == b':'
            && b[5] == b':'
            && t.chars()
                .enumerate()
                .all(|(i, c)| i == 2 || i == 5 || c.is_ascii_digit())
    };
    match ty {
        Ty::Date => {
            let d = s.get(..10)?;
            date_ok(d).then(|| d.to_owned())
        }
        _ => {
            if s.len() == 10 && date_ok(s) {
                Some(format!("{s} 00:00:00"))
            } else {
                let (d, t) = s.split_once(' ').or_else(|| s.split_once('T'))?;
                let t = t.get(..8)?;
                (date_ok(d) && time_ok(t)).then(|| format!("{d} {t}"))
            }
        }
    }
}

/// Order of JSON values for sorting and `<`/`>`: null first, numbers, strings, arrays by
/// length.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// The record of a model as `read` gives it with all fields (for tests).
pub(crate) fn read_one(db: &mut Db, v: Version, model: &str, id: i64) -> Option<Value> {
    let env = Env {
        db,
        v,
        uid: ADMIN_UID,
        ctx: Map::new(),
        su: true,
    };
    env.read(model, &[id], None).ok()?.into_iter().next()
}
