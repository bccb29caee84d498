//! Odoo's exceptions as the fake raises them, and how each transport serialises them
//! (`serialize_exception`: `{name, message, arguments, context, debug}`).

use serde_json::{Value, json};

use super::Version;

/// The exception classes the fake raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    UserError,
    ValidationError,
    AccessError,
    AccessDenied,
    MissingError,
    LockError,
    ValueError,
    TypeError,
    AttributeError,
    KeyError,
    IndexError,
    /// `psycopg2.OperationalError` (unknown database).
    OperationalError,
    /// werkzeug NotFound (JSON-2 routing).
    NotFound,
    /// werkzeug UnprocessableEntity (JSON-2 argument binding).
    Unprocessable,
    /// werkzeug Unauthorized (JSON-2 bearer).
    Unauthorized,
    /// werkzeug BadRequest (JSON-2 body).
    BadRequest,
    SerializationFailure,
    LockNotAvailable,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::UserError => "odoo.exceptions.UserError",
            Kind::ValidationError => "odoo.exceptions.ValidationError",
            Kind::AccessError => "odoo.exceptions.AccessError",
            Kind::AccessDenied => "odoo.exceptions.AccessDenied",
            Kind::MissingError => "odoo.exceptions.MissingError",
            Kind::LockError => "odoo.exceptions.LockError",
            Kind::ValueError => "builtins.ValueError",
            Kind::TypeError => "builtins.TypeError",
            Kind::AttributeError => "builtins.AttributeError",
            Kind::KeyError => "builtins.KeyError",
            Kind::IndexError => "builtins.IndexError",
            Kind::OperationalError => "psycopg2.OperationalError",
            Kind::NotFound => "werkzeug.exceptions.NotFound",
            Kind::Unprocessable => "werkzeug.exceptions.UnprocessableEntity",
            Kind::Unauthorized => "werkzeug.exceptions.Unauthorized",
            Kind::BadRequest => "werkzeug.exceptions.BadRequest",
            Kind::SerializationFailure => "psycopg2.errors.SerializationFailure",
            Kind::LockNotAvailable => "psycopg2.errors.LockNotAvailable",
        }
    }

    /// The JSON-2 status (`odoo/exceptions.py` `http_status`, werkzeug codes, else 500).
    pub(crate) fn status(self) -> u16 {
        match self {
            Kind::UserError | Kind::ValidationError | Kind::Unprocessable => 422,
            Kind::AccessError | Kind::AccessDenied => 403,
            Kind::MissingError | Kind::NotFound => 404,
            Kind::LockError => 409,
            Kind::Unauthorized => 401,
            Kind::BadRequest => 400,
            Kind::ValueError
            | Kind::TypeError
            | Kind::AttributeError
            | Kind::KeyError
            | Kind::IndexError
            | Kind::OperationalError
            | Kind::SerializationFailure
            | Kind::LockNotAvailable => 500,
        }
    }

    /// werkzeug's HTTP exceptions carry the status as a second argument.
    fn werkzeug(self) -> Option<(u16, &'static str)> {
        match self {
            Kind::NotFound => Some((404, "Not Found")),
            Kind::Unprocessable => Some((422, "Unprocessable Entity")),
            Kind::Unauthorized => Some((401, "Unauthorized")),
            Kind::BadRequest => Some((400, "Bad Request")),
            _ => None,
        }
    }
}

/// An exception raised by a call: everything it changed is rolled back.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OdooError {
    pub kind: Kind,
    pub message: String,
}

pub(crate) type OResult<T> = Result<T, OdooError>;

impl OdooError {
    pub(crate) fn new(kind: Kind, message: impl Into<String>) -> OdooError {
        OdooError {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn user(message: impl Into<String>) -> OdooError {
        OdooError::new(Kind::UserError, message)
    }

    pub(crate) fn validation(message: impl Into<String>) -> OdooError {
        OdooError::new(Kind::ValidationError, message)
    }

    pub(crate) fn value(message: impl Into<String>) -> OdooError {
        OdooError::new(Kind::ValueError, message)
    }

    pub(crate) fn type_error(message: impl Into<String>) -> OdooError {
        OdooError::new(Kind::TypeError, message)
    }

    pub(crate) fn access_denied() -> OdooError {
        OdooError::new(Kind::AccessDenied, "Access Denied")
    }

    /// `ValueError: Invalid field 'x' on model 'm'` (`models.py`).
    pub(crate) fn invalid_field(field: &str, model: &str) -> OdooError {
        OdooError::value(format!("Invalid field {field:?} on model {model:?}").replace('"', "'"))
    }

    /// `MissingError` for records that do not exist.
    pub(crate) fn missing(model: &str, ids: &[i64], uid: i64) -> OdooError {
        let list: Vec<String> = ids.iter().map(i64::to_string).collect();
        OdooError::new(
            Kind::MissingError,
            format!(
                "Record does not exist or has been deleted.\n(Record: {model}({},), User: {uid})",
                list.join(", ")
            ),
        )
    }

    /// An SQL unique violation as `odoo/service/model.py: retrying` turns it into a
    /// ValidationError.
    pub(crate) fn integrity(detail: &str) -> OdooError {
        OdooError::validation(format!("The operation cannot be completed: {detail}"))
    }

    pub(crate) fn name(&self) -> &'static str {
        self.kind.name()
    }

    fn arguments(&self) -> Value {
        match self.kind.werkzeug() {
            Some((code, _)) => json!([self.message, code]),
            None => json!([self.message]),
        }
    }

    /// The traceback as the captures have it: elided, then its last line (the last line of
    /// `<exception>: <message>`).
    fn debug(&self) -> String {
        let full = match self.kind.werkzeug() {
            Some((code, phrase)) => {
                format!("{}: {code} {phrase}: {}", self.name(), self.message)
            }
            None => {
                let short = self.name().strip_prefix("builtins.").unwrap_or(self.name());
                format!("{short}: {}", self.message)
            }
        };
        let last = full
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or_default();
        format!("Traceback (most recent call last):\n  ... (server traceback elided)\n{last}")
    }

    /// `serialize_exception` as JSON text in the field order of the version (19: name,
    /// message, arguments, context, debug; 16–18: name, debug, message, arguments, context).
    /// serde_json's maps are sorted, so the object is written by hand.
    pub(crate) fn to_json(&self, version: Version) -> String {
        let s = |v: &Value| v.to_string();
        let name = ("name", s(&json!(self.name())));
        let debug = ("debug", s(&json!(self.debug())));
        let message = ("message", s(&json!(self.message)));
        let arguments = ("arguments", s(&self.arguments()));
        let context = ("context", "{}".to_owned());
        let fields = if version >= Version::V19 {
            [name, message, arguments, context, debug]
        } else {
            [name, debug, message, arguments, context]
        };
        object(&fields)
    }
}

/// A JSON object from keys and JSON texts, in this order.
pub(crate) fn object(fields: &[(&str, String)]) -> String {
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}: {v}", Value::from(*k)))
        .collect();
    format!("{{{}}}", body.join(", "))
}
