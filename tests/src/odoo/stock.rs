//! The stock models' own behaviour.

use serde_json::{Map, Value, json};

use super::db::Db;
use super::db::Env;
use super::error::{OResult, OdooError};
use super::{Stock, Version};

pub(crate) fn display_name(env: &Env<'_>, model: &str, id: i64) -> String {
    match model {
        "stock.location" => env.text(model, id, "complete_name").unwrap_or_default(),
        _ => env
            .text(model, id, "name")
            .unwrap_or_else(|| format!("{model},{id}")),
    }
}

pub(crate) fn search_names(_env: &Env<'_>, _model: &str, _id: i64) -> Vec<String> {
    Vec::new()
}

pub(crate) fn compute(env: &Env<'_>, model: &str, id: i64, field: &str) -> Value {
    env.raw(model, id, field)
}

pub(crate) fn create(env: &mut Env<'_>, model: &str, vals: &Map<String, Value>) -> OResult<i64> {
    env.orm_create(model, vals, &Map::new())
}

pub(crate) fn write(
    env: &mut Env<'_>,
    model: &str,
    ids: &[i64],
    vals: &Map<String, Value>,
) -> OResult<()> {
    env.orm_write(model, ids, vals)
}

pub(crate) fn unlink(_env: &mut Env<'_>, _model: &str, _ids: &[i64]) -> OResult<()> {
    Ok(())
}

pub(crate) fn call(
    env: &mut Env<'_>,
    model: &str,
    method: &str,
    _ids: &[i64],
    _k: &Map<String, Value>,
) -> OResult<Option<Value>> {
    match (model, method) {
        ("res.users", "context_get") => {
            Ok(Some(json!({"lang": "en_US", "tz": false, "uid": env.uid})))
        }
        _ => Err(OdooError::user(format!(
            "{model}.{method} is not implemented by the fake"
        ))),
    }
}

pub(crate) fn snapshot(_db: &mut Db, _v: Version) -> Stock {
    Stock::default()
}
