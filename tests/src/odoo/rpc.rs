//! One call: the method's signature, binding the transport's arguments to it (positional
//! JSON-RPC `args` with `args[0]` = ids for record methods, or JSON-2 named arguments with the
//! reserved `ids` and `context`), and running it as one transaction.

use serde_json::{Map, Value, json};

use super::Version;
use super::db::{Db, Env, as_id, as_ids};
use super::error::{Kind, OResult, OdooError};
use super::schema::schema;
use super::{load, stock};

/// A method: whether it works on records (`ids`), and its parameters in order with whether
/// each is required.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sig {
    pub record: bool,
    pub params: &'static [(&'static str, bool)],
}

const fn model(params: &'static [(&'static str, bool)]) -> Sig {
    Sig {
        record: false,
        params,
    }
}

const fn records(params: &'static [(&'static str, bool)]) -> Sig {
    Sig {
        record: true,
        params,
    }
}

/// The signature of `model.method`, if the model has that method.
pub(crate) fn signature(v: Version, model_name: &str, method: &str) -> Option<Sig> {
    let generic = match method {
        "search" if v == Version::V16 => Some(model(&[
            ("domain", true),
            ("offset", false),
            ("limit", false),
            ("order", false),
            ("count", false),
        ])),
        "search" => Some(model(&[
            ("domain", true),
            ("offset", false),
            ("limit", false),
            ("order", false),
        ])),
        "search_read" => Some(model(&[
            ("domain", false),
            ("fields", false),
            ("offset", false),
            ("limit", false),
            ("order", false),
            ("load", false),
        ])),
        "read" => Some(records(&[("fields", false), ("load", false)])),
        "search_count" => Some(model(&[("domain", true), ("limit", false)])),
        "create" => Some(model(&[("vals_list", true)])),
        "write" => Some(records(&[("vals", true)])),
        "unlink" | "exists" => Some(records(&[])),
        "fields_get" => Some(model(&[("allfields", false), ("attributes", false)])),
        "name_search" if v >= Version::V18 => Some(model(&[
            ("name", false),
            ("domain", false),
            ("operator", false),
            ("limit", false),
        ])),
        "name_search" => Some(model(&[
            ("name", false),
            ("args", false),
            ("operator", false),
            ("limit", false),
        ])),
        "name_get" if v == Version::V16 => Some(records(&[])),
        "load" => Some(model(&[("fields", true), ("data", true)])),
        "default_get" => Some(model(&[("fields_list", true)])),
        _ => None,
    };
    if generic.is_some() {
        return generic;
    }
    let specific: Option<Sig> = match (model_name, method) {
        (
            "stock.picking",
            "action_confirm" | "action_assign" | "button_validate" | "action_cancel"
            | "do_unreserve",
        ) => Some(records(&[])),
        ("stock.scrap", "action_validate" | "do_scrap") => Some(records(&[])),
        ("stock.warn.insufficient.qty.scrap", "action_done") => Some(records(&[])),
        ("stock.quant", "action_apply_inventory") => Some(records(&[])),
        ("stock.backorder.confirmation", "process" | "process_cancel_backorder") => {
            Some(records(&[]))
        }
        ("stock.immediate.transfer", "process") => Some(records(&[])),
        ("expiry.picking.confirmation", "process" | "process_no_expired") => Some(records(&[])),
        ("ir.model.data", "check_object_reference") => Some(model(&[
            ("module", true),
            ("xml_id", true),
            ("raise_on_access_error", false),
        ])),
        ("res.users", "context_get") => Some(model(&[])),
        ("res.config.settings", "execute") => Some(records(&[])),
        ("barcode.nomenclature", "parse_barcode") => Some(records(&[("barcode", true)])),
        _ => None,
    };
    specific.filter(|_| schema(v).model(model_name).is_some())
}

/// A bound call.
#[derive(Debug, Clone)]
pub(crate) struct Invocation {
    pub model: String,
    pub method: String,
    pub ids: Vec<i64>,
    pub kwargs: Map<String, Value>,
    pub ctx: Map<String, Value>,
    pub uid: i64,
    /// JSON-RPC `create` with one dict: answer an int, not a list.
    pub single_create: bool,
}

/// Bind JSON-RPC `execute_kw` arguments (`TypeError` as Python raises it).
pub(crate) fn bind_jsonrpc(
    v: Version,
    uid: i64,
    model_name: &str,
    method: &str,
    args: &[Value],
    mut kwargs: Map<String, Value>,
) -> OResult<Invocation> {
    let ctx = match kwargs.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let sig = signature(v, model_name, method).ok_or_else(|| {
        OdooError::new(
            Kind::AttributeError,
            format!("type object '{model_name}' has no attribute '{method}'"),
        )
    })?;
    let mut positional = args;
    let mut ids = Vec::new();
    if sig.record {
        let Some((first, rest)) = args.split_first() else {
            return Err(OdooError::new(Kind::IndexError, "tuple index out of range"));
        };
        ids = as_ids(first).ok_or_else(|| {
            OdooError::type_error(format!("unhashable type: '{}'", py_type(first)))
        })?;
        positional = rest;
    }
    if positional.len() > sig.params.len() {
        return Err(OdooError::type_error(format!(
            "{method}() takes {} positional arguments but {} were given",
            sig.params.len() + 1,
            positional.len() + 1
        )));
    }
    let mut named = Map::new();
    for (value, (name, _)) in positional.iter().zip(sig.params) {
        named.insert((*name).to_owned(), value.clone());
    }
    for (k, value) in kwargs {
        if !sig.params.iter().any(|(n, _)| *n == k) {
            return Err(OdooError::type_error(format!(
                "{method}() got an unexpected keyword argument '{k}'"
            )));
        }
        if named.contains_key(&k) {
            return Err(OdooError::type_error(format!(
                "{method}() got multiple values for argument '{k}'"
            )));
        }
        named.insert(k, value);
    }
    for (name, required) in sig.params {
        if *required && !named.contains_key(*name) {
            return Err(OdooError::type_error(format!(
                "{method}() missing 1 required positional argument: '{name}'"
            )));
        }
    }
    let single_create = method == "create" && named.get("vals_list").is_some_and(Value::is_object);
    Ok(Invocation {
        model: model_name.to_owned(),
        method: method.to_owned(),
        ids,
        kwargs: named,
        ctx,
        uid,
        single_create,
    })
}

fn py_type(v: &Value) -> &'static str {
    match v {
        Value::Object(_) => "dict",
        Value::Array(_) => "list",
        Value::String(_) => "str",
        _ => "object",
    }
}

/// Bind a JSON-2 body (422 `UnprocessableEntity` as the dispatcher answers).
pub(crate) fn bind_json2(
    v: Version,
    uid: i64,
    model_name: &str,
    method: &str,
    mut body: Map<String, Value>,
) -> OResult<Invocation> {
    let sig = signature(v, model_name, method).ok_or_else(|| {
        OdooError::new(
            Kind::NotFound,
            format!("The method '{model_name}.{method}' does not exist"),
        )
    })?;
    let ctx = match body.remove("context") {
        Some(Value::Object(c)) => c,
        _ => Map::new(),
    };
    let ids = match body.remove("ids") {
        Some(_) if !sig.record => {
            return Err(OdooError::new(
                Kind::Unprocessable,
                format!("cannot call {model_name}.{method} with ids"),
            ));
        }
        Some(value) => as_ids(&value)
            .ok_or_else(|| OdooError::new(Kind::Unprocessable, "ids must be a list of integers"))?,
        None => Vec::new(),
    };
    for k in body.keys() {
        if !sig.params.iter().any(|(n, _)| n == k) {
            return Err(OdooError::new(
                Kind::Unprocessable,
                format!("got an unexpected keyword argument '{k}'"),
            ));
        }
    }
    for (name, required) in sig.params {
        if *required && !body.contains_key(*name) {
            return Err(OdooError::new(
                Kind::Unprocessable,
                format!("missing a required argument: '{name}'"),
            ));
        }
    }
    Ok(Invocation {
        model: model_name.to_owned(),
        method: method.to_owned(),
        ids,
        kwargs: body,
        ctx,
        uid,
        single_create: false,
    })
}

/// Run a bound call on `db` (the call's own copy). `Ok(None)` = the method returned None.
pub(crate) fn execute(db: &mut Db, v: Version, inv: &Invocation) -> OResult<Option<Value>> {
    let mut env = Env {
        db,
        v,
        uid: inv.uid,
        ctx: inv.ctx.clone(),
        su: false,
    };
    let k = &inv.kwargs;
    let model_name = inv.model.as_str();
    let ids = inv.ids.as_slice();
    let env = &mut env;
    let list = |name: &str| -> Option<Vec<String>> {
        k.get(name).and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
    };
    let usize_arg = |name: &str| -> Option<usize> {
        k.get(name)
            .and_then(as_id)
            .and_then(|n| usize::try_from(n).ok())
    };
    let domain = k.get("domain").cloned().unwrap_or(json!([]));
    Ok(Some(match inv.method.as_str() {
        "search" => {
            let found = env.search(
                model_name,
                &domain,
                usize_arg("offset").unwrap_or(0),
                usize_arg("limit"),
                k.get("order").and_then(Value::as_str),
            )?;
            if k.get("count").is_some_and(super::db::truthy) {
                json!(found.len())
            } else {
                json!(found)
            }
        }
        "search_read" => {
            let found = env.search(
                model_name,
                &domain,
                usize_arg("offset").unwrap_or(0),
                usize_arg("limit"),
                k.get("order").and_then(Value::as_str),
            )?;
            json!(env.read(model_name, &found, list("fields").as_deref())?)
        }
        "read" => json!(env.read(model_name, ids, list("fields").as_deref())?),
        "search_count" => {
            let found = env.search(model_name, &domain, 0, usize_arg("limit"), None)?;
            json!(found.len())
        }
        "create" => {
            let vals_list: Vec<Map<String, Value>> = match k.get("vals_list") {
                Some(Value::Object(o)) => vec![o.clone()],
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_object().cloned().ok_or_else(|| {
                            OdooError::new(
                                Kind::AttributeError,
                                format!("'{}' object has no attribute 'items'", py_type(x)),
                            )
                        })
                    })
                    .collect::<OResult<_>>()?,
                _ => {
                    return Err(OdooError::new(
                        Kind::AttributeError,
                        "'NoneType' object has no attribute 'items'",
                    ));
                }
            };
            let mut created = Vec::new();
            for vals in &vals_list {
                created.push(env.create(model_name, vals)?);
            }
            if inv.single_create {
                json!(created.first().copied().unwrap_or(0))
            } else {
                json!(created)
            }
        }
        "write" => {
            let vals = k
                .get("vals")
                .and_then(Value::as_object)
                .cloned()
                .ok_or_else(|| {
                    OdooError::new(
                        Kind::AttributeError,
                        "'list' object has no attribute 'items'",
                    )
                })?;
            env.write(model_name, ids, &vals)?;
            json!(true)
        }
        "unlink" => {
            env.unlink(model_name, ids)?;
            json!(true)
        }
        "exists" => json!(
            ids.iter()
                .copied()
                .filter(|id| env.exists(model_name, *id))
                .collect::<Vec<_>>()
        ),
        "fields_get" => env.fields_get(
            model_name,
            list("allfields").as_deref(),
            list("attributes").as_deref(),
        )?,
        "name_search" => {
            let dom = k
                .get("domain")
                .or_else(|| k.get("args"))
                .cloned()
                .unwrap_or(json!([]));
            json!(env.name_search(
                model_name,
                k.get("name").and_then(Value::as_str).unwrap_or(""),
                &dom,
                k.get("operator").and_then(Value::as_str).unwrap_or("ilike"),
                usize_arg("limit").unwrap_or(100),
            )?)
        }
        "name_get" => {
            env.ensure(model_name, ids)?;
            json!(
                ids.iter()
                    .map(|id| json!([id, env.display_name(model_name, *id)]))
                    .collect::<Vec<_>>()
            )
        }
        "default_get" => {
            let mut out = Map::new();
            for name in list("fields_list").unwrap_or_default() {
                if let Some(d) = env.ctx.get(&format!("default_{name}")) {
                    out.insert(name, d.clone());
                }
            }
            Value::Object(out)
        }
        "load" => load::load(
            env,
            model_name,
            k.get("fields").unwrap_or(&Value::Null),
            k.get("data").unwrap_or(&Value::Null),
        )?,
        _ => return stock::call(env, model_name, &inv.method, ids, k),
    }))
}
