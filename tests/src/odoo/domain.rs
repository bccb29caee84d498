//! Search domains: Polish notation with `&`, `|`, `!` (implicit `&`), leaves
//! `[field(.path), operator, value]` with =, !=, in, not in, <, >, <=, >=, like, ilike,
//! not like, not ilike, =like, =ilike, child_of, parent_of.

use serde_json::Value;

use super::db::{Env, as_id, as_ids, compare, repr, truthy};
use super::error::{OResult, OdooError};
use super::schema::{Model, Ty, schema};

#[derive(Debug, Clone)]
pub(crate) enum Dom {
    True,
    False,
    And(Vec<Dom>),
    Or(Vec<Dom>),
    Not(Box<Dom>),
    Leaf {
        path: Vec<String>,
        op: String,
        value: Value,
    },
}

const OPERATORS: &[&str] = &[
    "=",
    "!=",
    "<>",
    "in",
    "not in",
    "<",
    ">",
    "<=",
    ">=",
    "like",
    "ilike",
    "not like",
    "not ilike",
    "=like",
    "=ilike",
    "child_of",
    "parent_of",
];

fn invalid(domain: &Value) -> OdooError {
    OdooError::value(format!("Invalid domain: {}", repr(domain)))
}

pub(crate) fn parse(domain: &Value) -> OResult<Dom> {
    let items = match domain {
        Value::Null | Value::Bool(false) => return Ok(Dom::True),
        Value::Array(a) => a,
        _ => return Err(invalid(domain)),
    };
    let mut stack: Vec<Dom> = Vec::new();
    for item in items.iter().rev() {
        match item {
            Value::String(s) if s == "&" || s == "|" => {
                let (Some(a), Some(b)) = (stack.pop(), stack.pop()) else {
                    return Err(invalid(domain));
                };
                stack.push(if s == "&" {
                    Dom::And(vec![a, b])
                } else {
                    Dom::Or(vec![a, b])
                });
            }
            Value::String(s) if s == "!" => {
                let a = stack.pop().ok_or_else(|| invalid(domain))?;
                stack.push(Dom::Not(Box::new(a)));
            }
            Value::Array(leaf) if leaf.len() == 3 => stack.push(parse_leaf(leaf)?),
            _ => return Err(invalid(domain)),
        }
    }
    stack.reverse();
    Ok(if stack.len() == 1 {
        stack.pop().unwrap_or(Dom::True)
    } else {
        Dom::And(stack)
    })
}

fn parse_leaf(leaf: &[Value]) -> OResult<Dom> {
    let op = leaf[1]
        .as_str()
        .map(str::to_lowercase)
        .filter(|o| OPERATORS.contains(&o.as_str()))
        .ok_or_else(|| {
            OdooError::value(format!(
                "Invalid leaf {}",
                repr(&Value::Array(leaf.to_vec()))
            ))
        })?;
    match &leaf[0] {
        Value::String(f) => Ok(Dom::Leaf {
            path: f.split('.').map(str::to_owned).collect(),
            op: if op == "<>" { "!=".into() } else { op },
            value: leaf[2].clone(),
        }),
        // (1, '=', 1) and (0, '=', 1): the constant leaves.
        Value::Number(n) => Ok(if n.as_i64() == leaf[2].as_i64() {
            Dom::True
        } else {
            Dom::False
        }),
        _ => Err(OdooError::value(format!(
            "Invalid leaf {}",
            repr(&Value::Array(leaf.to_vec()))
        ))),
    }
}

impl Dom {
    pub(crate) fn mentions(&self, field: &str) -> bool {
        match self {
            Dom::True | Dom::False => false,
            Dom::And(v) | Dom::Or(v) => v.iter().any(|d| d.mentions(field)),
            Dom::Not(d) => d.mentions(field),
            Dom::Leaf { path, .. } => path.first().is_some_and(|p| p == field),
        }
    }

    pub(crate) fn eval(&self, env: &Env<'_>, m: &Model, id: i64) -> OResult<bool> {
        Ok(match self {
            Dom::True => true,
            Dom::False => false,
            Dom::And(v) => {
                for d in v {
                    if !d.eval(env, m, id)? {
                        return Ok(false);
                    }
                }
                true
            }
            Dom::Or(v) => {
                for d in v {
                    if d.eval(env, m, id)? {
                        return Ok(true);
                    }
                }
                false
            }
            Dom::Not(d) => !d.eval(env, m, id)?,
            Dom::Leaf { path, op, value } => leaf(env, m, id, path, op, value)?,
        })
    }
}

fn leaf(
    env: &Env<'_>,
    m: &Model,
    id: i64,
    path: &[String],
    op: &str,
    operand: &Value,
) -> OResult<bool> {
    let Some(name) = path.first() else {
        return Ok(false);
    };
    let f = m.field(name).ok_or_else(|| {
        OdooError::value(format!(
            "Invalid field {}.{} in leaf ('{}', '{op}', {})",
            m.name,
            name,
            path.join("."),
            repr(operand)
        ))
    })?;
    let v = env.value(m.name, id, f);
    if path.len() > 1 {
        let Some(comodel) = f.ty.relation() else {
            return Err(OdooError::value(format!(
                "Invalid field {}.{} in leaf ('{}', '{op}', {})",
                m.name,
                name,
                path.join("."),
                repr(operand)
            )));
        };
        let cm = schema(env.v)
            .model(comodel)
            .ok_or_else(|| OdooError::value(format!("Object {comodel} doesn't exist")))?;
        let related = as_ids(&v).unwrap_or_default();
        let negative = matches!(op, "!=" | "not in" | "not like" | "not ilike");
        if related.is_empty() {
            return Ok(negative);
        }
        for r in related {
            if leaf(env, cm, r, &path[1..], op, operand)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    match f.ty {
        Ty::Many2one(comodel) => {
            let text_operand = operand.is_string()
                || operand
                    .as_array()
                    .is_some_and(|a| a.iter().any(Value::is_string));
            if text_operand
                || matches!(
                    op,
                    "like" | "ilike" | "not like" | "not ilike" | "=like" | "=ilike"
                )
            {
                let name = as_id(&v).map(|cid| Value::String(env.display_name(comodel, cid)));
                return Ok(compare_op(&name.unwrap_or(Value::Null), op, operand));
            }
            if matches!(op, "child_of" | "parent_of") {
                return Ok(hierarchy(env, comodel, as_id(&v), op, operand));
            }
            Ok(compare_op(&v, op, operand))
        }
        Ty::One2many(..) | Ty::Many2many(_) => {
            let ids = as_ids(&v).unwrap_or_default();
            Ok(match op {
                "=" | "in" => match as_ids(operand) {
                    Some(want) if !truthy(operand) => {
                        ids.is_empty() || want.is_empty() && ids.is_empty()
                    }
                    Some(want) => ids.iter().any(|i| want.contains(i)),
                    None => false,
                },
                "!=" | "not in" => match as_ids(operand) {
                    Some(_) if !truthy(operand) => !ids.is_empty(),
                    Some(want) => !ids.iter().any(|i| want.contains(i)),
                    None => true,
                },
                _ => false,
            })
        }
        _ if f.name == "id" && matches!(op, "child_of" | "parent_of") => {
            Ok(hierarchy(env, m.name, Some(id), op, operand))
        }
        _ => Ok(compare_op(&v, op, operand)),
    }
}

/// `child_of` / `parent_of` over a model's `location_id`-style parent (stock.location).
fn hierarchy(env: &Env<'_>, model: &str, id: Option<i64>, op: &str, operand: &Value) -> bool {
    let Some(mut cur) = id else { return false };
    let targets = as_ids(operand).unwrap_or_default();
    if op == "child_of" {
        loop {
            if targets.contains(&cur) {
                return true;
            }
            match env.m2o(model, cur, "location_id") {
                Some(p) if p != cur => cur = p,
                _ => return false,
            }
        }
    }
    // parent_of: some target is a child of this record.
    targets.iter().any(|t| {
        let mut c = *t;
        loop {
            if c == cur {
                return true;
            }
            match env.m2o(model, c, "location_id") {
                Some(p) if p != c => c = p,
                _ => return false,
            }
        }
    })
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Null | Value::Bool(false))
}

fn eq(a: &Value, b: &Value) -> bool {
    if is_false(b) {
        return is_false(a) || a.as_str() == Some("");
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        _ => false,
    }
}

fn like(value: &Value, pattern: &str, case: bool, anchored: bool) -> bool {
    let Some(s) = value.as_str() else {
        return false;
    };
    let (s, p) = if case {
        (s.to_owned(), pattern.to_owned())
    } else {
        (s.to_lowercase(), pattern.to_lowercase())
    };
    if !anchored {
        return s.contains(&p);
    }
    wildcard(s.as_bytes(), p.as_bytes())
}

/// SQL LIKE with `%` and `_`.
fn wildcard(s: &[u8], p: &[u8]) -> bool {
    match p.first() {
        None => s.is_empty(),
        Some(b'%') => (0..=s.len()).any(|i| wildcard(&s[i..], &p[1..])),
        Some(b'_') => !s.is_empty() && wildcard(&s[1..], &p[1..]),
        Some(c) => s.first() == Some(c) && wildcard(&s[1..], &p[1..]),
    }
}

fn compare_op(v: &Value, op: &str, operand: &Value) -> bool {
    let text = operand.as_str().unwrap_or("");
    match op {
        "=" => eq(v, operand),
        "!=" => !eq(v, operand),
        "in" | "not in" => {
            let hit = match operand {
                Value::Array(a) => a.iter().any(|o| eq(v, o)),
                other => eq(v, other),
            };
            if op == "in" { hit } else { !hit }
        }
        "<" | ">" | "<=" | ">=" => {
            if is_false(v) || is_false(operand) {
                return false;
            }
            let o = compare(v, operand);
            match op {
                "<" => o.is_lt(),
                ">" => o.is_gt(),
                "<=" => o.is_le(),
                _ => o.is_ge(),
            }
        }
        "like" => like(v, text, true, false),
        "ilike" => like(v, text, false, false),
        "not like" => !like(v, text, true, false),
        "not ilike" => !like(v, text, false, false),
        "=like" => like(v, text, true, true),
        "=ilike" => like(v, text, false, true),
        _ => false,
    }
}
