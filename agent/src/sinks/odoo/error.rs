//! What can go wrong talking to Odoo, and what each failure means for the events (odoo-api.md
//! §1.3, §1.5, §4): retry later, stop the sink until someone acts, dead-letter the event with
//! Odoo's own message, or — for `check_object_reference` only — "no such external id".

use std::time::Duration;

/// Most characters of Odoo's message kept in an error (then `…`).
pub const MAX_MESSAGE_CHARS: usize = 1024;

/// What a failure means for the events of the call that failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Class {
    /// Transient (network, 5xx, lock or serialization conflict, no answer): run the event
    /// again later, from its first step.
    Retry { after: Option<Duration> },
    /// The gateway's credentials or rights are refused, or the server cannot be used: stop the
    /// sink until the API key file changes (or a long recheck), health red.
    Halt,
    /// Odoo refused the content (a business rule, a constraint, a missing record): the event
    /// becomes a dead letter with Odoo's message.
    Reject,
    /// `ir.model.data.check_object_reference` found no such external id.
    NotFound,
}

/// A failed exchange with Odoo. Every variant names the call (`model.method`, or the service
/// call such as `common.version`).
#[derive(Debug, Clone, thiserror::Error)]
pub enum OdooError {
    /// No answer: connection refused or cut, timeout, TLS failure. The call may have been
    /// applied (Odoo commits before it answers).
    #[error("{call}: no answer from Odoo at {endpoint}: {detail}")]
    NoAnswer {
        call: String,
        endpoint: String,
        detail: String,
    },
    /// An HTTP status without an Odoo error in the body (a proxy's 502, a 404 page …).
    #[error("{call}: Odoo at {endpoint} answered HTTP {status}{body}")]
    Http {
        call: String,
        endpoint: String,
        status: u16,
        /// `": <the body, escaped and bounded>"` or empty.
        body: String,
        retry_after: Option<Duration>,
    },
    /// Odoo's own error: the exception's name (`odoo.exceptions.UserError`) and message.
    #[error("{call}: {message} ({name})")]
    Server {
        call: String,
        status: u16,
        name: String,
        message: String,
    },
    /// Odoo answered, but not with what the sink needs: `load` reported errors, or a
    /// confirmation the sink cannot answer. The content is at fault.
    #[error("{call}: {message}")]
    Refused { call: String, message: String },
    /// The answer is not what the protocol says (not JSON, wrong shape, too large).
    #[error("{call}: Odoo's answer is not usable: {detail}")]
    Protocol { call: String, detail: String },
    /// `common.authenticate` answered `false`.
    #[error(
        "Odoo refused the login `{login}` on database `{database}` with the API key in \
         {key_file} (a wrong, revoked or expired key, or a wrong login); write a valid key into \
         the file and the sink resumes"
    )]
    LoginRefused {
        login: String,
        database: String,
        key_file: String,
    },
    /// The API key file cannot be used.
    #[error("{0}")]
    Key(String),
    /// The HTTP client cannot be built (CA bundle).
    #[error("{0}")]
    Setup(String),
    /// The server's version is outside 16–19+.
    #[error("Odoo at {endpoint} reports version {version}; this sink talks to Odoo 16.0 and later")]
    Unsupported { endpoint: String, version: String },
}

impl OdooError {
    /// What this failure means (odoo-api.md §4 "Retry classes").
    pub fn class(&self) -> Class {
        match self {
            OdooError::NoAnswer { .. } | OdooError::Setup(_) | OdooError::Protocol { .. } => {
                Class::Retry { after: None }
            }
            OdooError::Http {
                status,
                retry_after,
                ..
            } => match status {
                401 | 403 => Class::Halt,
                // A request the server will not take whatever it holds, or that blames the
                // content: only the events can be at fault.
                400 | 413 | 422 => Class::Reject,
                _ => Class::Retry {
                    after: *retry_after,
                },
            },
            OdooError::Server {
                name,
                message,
                status,
                ..
            } => classify_exception(name, message, *status),
            OdooError::Refused { .. } => Class::Reject,
            OdooError::LoginRefused { .. } | OdooError::Key(_) | OdooError::Unsupported { .. } => {
                Class::Halt
            }
        }
    }

    /// Whether the call may have been applied although no answer said so.
    pub fn maybe_applied(&self) -> bool {
        match self {
            OdooError::NoAnswer { .. } | OdooError::Protocol { .. } => true,
            OdooError::Http { status, .. } => *status >= 500,
            _ => false,
        }
    }

    /// The text for a dead letter: Odoo's own message first.
    pub fn reason(&self) -> String {
        match self {
            OdooError::Server {
                call,
                name,
                message,
                ..
            } => format!("Odoo refused it: {message} ({name} in {call})"),
            OdooError::Refused { call, message } => format!("Odoo refused it: {message} ({call})"),
            other => format!("Odoo refused it: {other}"),
        }
    }
}

/// The class of an Odoo exception by its name (`error.data.name` in JSON-RPC, the body's
/// `name` in JSON-2) and, for the one case that needs it, its message.
pub fn classify_exception(name: &str, message: &str, status: u16) -> Class {
    match name {
        "odoo.exceptions.AccessDenied"
        | "odoo.exceptions.AccessError"
        | "werkzeug.exceptions.Unauthorized"
        | "werkzeug.exceptions.Forbidden" => Class::Halt,
        "odoo.exceptions.LockError"
        | "odoo.exceptions.ConcurrencyError"
        | "odoo.http.SessionExpiredException"
        | "werkzeug.exceptions.TooManyRequests"
        | "werkzeug.exceptions.ServiceUnavailable"
        | "werkzeug.exceptions.GatewayTimeout"
        | "werkzeug.exceptions.BadGateway" => Class::Retry { after: None },
        "builtins.ValueError" if message.starts_with("External ID not found in the system") => {
            Class::NotFound
        }
        _ if name.starts_with("psycopg2.") => Class::Retry { after: None },
        // Business rules, constraints, missing records, unknown fields or methods: the content
        // is at fault, retrying cannot help.
        _ if name.starts_with("odoo.exceptions.")
            || name.starts_with("builtins.")
            || name.starts_with("werkzeug.exceptions.") =>
        {
            Class::Reject
        }
        // Something else failed inside the server (an add-on's own exception class).
        _ if status >= 500 => Class::Retry { after: None },
        _ => Class::Reject,
    }
}

/// `text` made safe for a log line or a dead letter: control characters escaped, at most
/// `max` characters (then `…`).
pub fn bounded(text: &str, max: usize) -> String {
    crate::sinks::http::escape_answer(text.as_bytes(), max)
}
