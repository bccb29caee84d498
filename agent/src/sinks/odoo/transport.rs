//! Talking to Odoo: JSON-RPC `/jsonrpc` (`execute_kw`, every version) and JSON-2
//! `/json/2/<model>/<method>` (bearer API key, 19 and later), chosen from the server's version
//! (odoo-api.md §1.3, §1.5, §1.6).
//!
//! A [`Call`] is written once, transport-neutral: `ids` (the recordset), `args` (positional in
//! JSON-RPC, named in JSON-2, in the Python method's order), `kwargs` (keyword in both) and a
//! `context`. The pure parts — encoding a call, decoding an answer into a value or an
//! [`OdooError`], reading the server's version — are separate from the HTTP client and are
//! tested against the real captures.
//!
//! Bounded: answers are read up to [`MAX_ANSWER_BYTES`]; at most `concurrency` calls are in
//! flight at once (a semaphore shared by every task of the sink); every call ends within the
//! sink's `timeout`; redirects are never followed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::header::{self, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use super::error::{MAX_MESSAGE_CHARS, OdooError, bounded};

/// Most bytes of an answer that are read.
pub const MAX_ANSWER_BYTES: usize = 8 * 1024 * 1024;

/// The server's version as `common.version` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerVersion {
    /// `server_version_info[0]`, or N of a `saas~N` build.
    pub major: u32,
    pub minor: u32,
    /// An Odoo Online build (`saas~N.x`), between N and N+1.
    pub saas: bool,
    /// `server_version` as reported (`18.0+e-20241005`, `saas~18.3+e`).
    pub text: String,
}

/// Read `common.version`'s result (odoo-api.md §1.6): the major is `server_version_info[0]`
/// when it is a number, else the number after `saas~`.
pub fn parse_version(result: &Value) -> Result<ServerVersion, String> {
    let info = result
        .get("server_version_info")
        .and_then(Value::as_array)
        .ok_or("no `server_version_info` list in the answer")?;
    let text = result
        .get("server_version")
        .and_then(Value::as_str)
        .map(|s| bounded(s, 64))
        .unwrap_or_default();
    let (major, saas) = match info.first() {
        Some(Value::Number(n)) => (
            n.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("the major version {n} is not a small whole number"))?,
            false,
        ),
        Some(Value::String(s)) => {
            let n = s
                .strip_prefix("saas~")
                .and_then(|n| n.parse::<u32>().ok())
                .ok_or_else(|| format!("the major version \"{}\" is unknown", bounded(s, 32)))?;
            (n, true)
        }
        _ => return Err("`server_version_info` does not start with the major version".into()),
    };
    let minor = info
        .get(1)
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    Ok(ServerVersion {
        major,
        minor,
        saas,
        text,
    })
}

/// One call of a model's method, written once for both transports.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub model: String,
    pub method: String,
    /// The recordset (`self`) of a record method; `None` for model methods.
    pub ids: Option<Vec<i64>>,
    /// Positional in JSON-RPC (after `ids`), named in JSON-2; in the method's order.
    pub args: Vec<(&'static str, Value)>,
    /// Keyword arguments in both transports.
    pub kwargs: Vec<(&'static str, Value)>,
    pub context: Option<Value>,
}

impl Call {
    pub fn new(model: impl Into<String>, method: impl Into<String>) -> Call {
        Call {
            model: model.into(),
            method: method.into(),
            ids: None,
            args: Vec::new(),
            kwargs: Vec::new(),
            context: None,
        }
    }

    pub fn ids(mut self, ids: Vec<i64>) -> Call {
        self.ids = Some(ids);
        self
    }

    pub fn arg(mut self, name: &'static str, value: Value) -> Call {
        self.args.push((name, value));
        self
    }

    pub fn kwarg(mut self, name: &'static str, value: Value) -> Call {
        self.kwargs.push((name, value));
        self
    }

    pub fn context(mut self, context: Value) -> Call {
        self.context = Some(context);
        self
    }

    /// `model.method`, for logs and errors.
    pub fn label(&self) -> String {
        format!("{}.{}", self.model, self.method)
    }

    /// The JSON-2 body: `ids`, every argument by name, `context`.
    pub fn json2_body(&self) -> Value {
        let mut body = Map::new();
        if let Some(ids) = &self.ids {
            body.insert("ids".into(), json!(ids));
        }
        for (name, value) in self.args.iter().chain(&self.kwargs) {
            body.insert((*name).into(), value.clone());
        }
        if let Some(ctx) = &self.context {
            body.insert("context".into(), ctx.clone());
        }
        Value::Object(body)
    }

    /// The `execute_kw` arguments after `db, uid, key`: model, method, positional list,
    /// keyword object (with `context`).
    pub fn execute_kw_args(&self) -> [Value; 4] {
        let mut positional: Vec<Value> = Vec::with_capacity(self.args.len() + 1);
        if let Some(ids) = &self.ids {
            positional.push(json!(ids));
        }
        positional.extend(self.args.iter().map(|(_, v)| v.clone()));
        let mut kwargs = Map::new();
        for (name, value) in &self.kwargs {
            kwargs.insert((*name).into(), value.clone());
        }
        if let Some(ctx) = &self.context {
            kwargs.insert("context".into(), ctx.clone());
        }
        [
            Value::String(self.model.clone()),
            Value::String(self.method.clone()),
            Value::Array(positional),
            Value::Object(kwargs),
        ]
    }
}

/// The JSON-RPC request body of a service call.
pub fn jsonrpc_request(id: u64, service: &str, method: &str, args: Vec<Value>) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "call",
        "id": id,
        "params": {"service": service, "method": method, "args": args},
    })
}

/// What one HTTP exchange brought back, before it is interpreted.
#[derive(Debug, Clone)]
pub struct Raw {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Vec<u8>,
}

/// Odoo's serialised exception (`error.data` in JSON-RPC, the body in JSON-2): its name and
/// message, if `v` has that shape.
fn exception(v: &Value) -> Option<(String, String)> {
    let name = v.get("name")?.as_str()?;
    let message = v
        .get("message")
        .and_then(Value::as_str)
        .or_else(|| {
            v.get("arguments")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
                .and_then(Value::as_str)
        })
        .unwrap_or("");
    Some((
        bounded(name, 128),
        bounded(message.trim(), MAX_MESSAGE_CHARS),
    ))
}

fn http_error(call: &str, endpoint: &str, raw: &Raw) -> OdooError {
    let text = bounded(&String::from_utf8_lossy(&raw.body), 512);
    OdooError::Http {
        call: call.to_owned(),
        endpoint: endpoint.to_owned(),
        status: raw.status,
        body: if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        },
        retry_after: raw.retry_after,
    }
}

/// Interpret a `/jsonrpc` answer: HTTP 200 with `result` (absent = `null`, odoo-api.md §1.3)
/// or `error`; anything else is an HTTP error.
pub fn decode_jsonrpc(call: &str, endpoint: &str, raw: &Raw) -> Result<Value, OdooError> {
    if raw.status != 200 {
        return Err(http_error(call, endpoint, raw));
    }
    let protocol = |detail: String| OdooError::Protocol {
        call: call.to_owned(),
        detail,
    };
    let body: Value = serde_json::from_slice(&raw.body).map_err(|e| {
        protocol(format!(
            "not JSON ({e}): {}",
            bounded(&String::from_utf8_lossy(&raw.body), 200)
        ))
    })?;
    let Some(obj) = body.as_object() else {
        return Err(protocol("not a JSON-RPC object".into()));
    };
    if let Some(error) = obj.get("error") {
        let data = error.get("data");
        let (name, message) = data.and_then(exception).unwrap_or_else(|| {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("an error without a message");
            (String::new(), bounded(message, MAX_MESSAGE_CHARS))
        });
        let name = if name.is_empty() {
            // Session expiry (code 100) and 404s carry no usable `data`.
            match error.get("code").and_then(Value::as_i64) {
                Some(100) => "odoo.http.SessionExpiredException".to_owned(),
                Some(404) => "werkzeug.exceptions.NotFound".to_owned(),
                _ => "unknown".to_owned(),
            }
        } else {
            name
        };
        return Err(OdooError::Server {
            call: call.to_owned(),
            status: raw.status,
            name,
            message,
        });
    }
    Ok(obj.get("result").cloned().unwrap_or(Value::Null))
}

/// Interpret a `/json/2/...` answer: 200 with the value as the body (empty = `null`), or an
/// error status whose body is Odoo's serialised exception (odoo-api.md §1.5), or a bare
/// status (a proxy, the "no database" page).
pub fn decode_json2(call: &str, endpoint: &str, raw: &Raw) -> Result<Value, OdooError> {
    if raw.status == 200 {
        if raw.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        return serde_json::from_slice(&raw.body).map_err(|e| OdooError::Protocol {
            call: call.to_owned(),
            detail: format!(
                "not JSON ({e}): {}",
                bounded(&String::from_utf8_lossy(&raw.body), 200)
            ),
        });
    }
    let parsed: Option<Value> = serde_json::from_slice(&raw.body).ok();
    match parsed.as_ref().and_then(exception) {
        Some((name, message)) => Err(OdooError::Server {
            call: call.to_owned(),
            status: raw.status,
            name,
            message,
        }),
        None => Err(http_error(call, endpoint, raw)),
    }
}

/// How the sink is logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// `/jsonrpc` `execute_kw` with this user id and the key as password.
    JsonRpc { uid: i64 },
    /// `/json/2` with the key as bearer token.
    Json2,
}

impl Auth {
    pub fn transport(self) -> &'static str {
        match self {
            Auth::JsonRpc { .. } => "jsonrpc",
            Auth::Json2 => "json2",
        }
    }
}

/// A logged-in session: how calls are sent and with which key.
#[derive(Debug, Clone)]
pub struct Session {
    pub auth: Auth,
    pub key: Arc<str>,
    pub version: ServerVersion,
}

/// The HTTP side: one client (a pool of connections), the endpoint and database, the bound
/// on calls in flight.
#[derive(Debug)]
pub struct Rpc {
    http: reqwest::Client,
    endpoint: String,
    database: String,
    limit: Semaphore,
    next_id: AtomicU64,
    calls: AtomicU64,
    trust: String,
    timeout: Duration,
}

impl Rpc {
    /// A client for `endpoint` (its trailing `/` dropped) trusting `ca_file` (or the system's
    /// roots), with at most `concurrency` calls in flight, each bounded by `timeout`.
    pub fn new(
        endpoint: &str,
        database: &str,
        ca_file: Option<&Path>,
        timeout: Duration,
        concurrency: usize,
    ) -> Result<Rpc, OdooError> {
        let roots = roots(ca_file)?;
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .map_err(|e| OdooError::Setup(format!("setting up TLS for Odoo: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .http1_only()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout)
            .pool_max_idle_per_host(concurrency.max(1))
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("tallyman/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| OdooError::Setup(format!("setting up the HTTP client: {}", chain(&e))))?;
        Ok(Rpc {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            database: database.to_owned(),
            limit: Semaphore::new(concurrency.max(1)),
            next_id: AtomicU64::new(1),
            calls: AtomicU64::new(0),
            trust: ca_file.map_or_else(
                || "the system's trust store".to_owned(),
                |p| p.display().to_string(),
            ),
            timeout,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Calls sent since start (for the log and the benchmark).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// One POST, bounded in time and size; waits for a slot first.
    async fn post(
        &self,
        path: &str,
        label: &str,
        body: &Value,
        bearer: Option<&str>,
    ) -> Result<Raw, OdooError> {
        let _slot = self
            .limit
            .acquire()
            .await
            .map_err(|_| OdooError::Setup("the sink is shutting down".into()))?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        let bytes = serde_json::to_vec(body).map_err(|e| OdooError::Protocol {
            call: label.to_owned(),
            detail: format!("writing the request: {e}"),
        })?;
        let mut request = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(bytes);
        if let Some(key) = bearer {
            let mut value = HeaderValue::from_str(&format!("bearer {key}"))
                .map_err(|_| OdooError::Key("the API key cannot be sent in a header".to_owned()))?;
            value.set_sensitive(true);
            request = request
                .header(header::AUTHORIZATION, value)
                .header("X-Odoo-Database", &self.database);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.no_answer(label, &e))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::sinks::http::parse_retry_after(v, SystemTime::now()));
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                        return Err(OdooError::Protocol {
                            call: label.to_owned(),
                            detail: format!(
                                "the answer is larger than {} MiB",
                                MAX_ANSWER_BYTES / (1024 * 1024)
                            ),
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(self.no_answer(label, &e)),
            }
        }
        Ok(Raw {
            status,
            retry_after,
            body,
        })
    }

    /// A request that got no (complete) answer, in words.
    fn no_answer(&self, label: &str, e: &reqwest::Error) -> OdooError {
        let detail = if e.is_timeout() {
            format!(
                "no answer within {} s (the call may have been applied; the event is checked \
                 again before anything is repeated)",
                self.timeout.as_secs_f64()
            )
        } else if let Some(tls) = crate::mqtt::tls::find_rustls(e) {
            explain_tls(tls, &self.trust)
        } else if e.is_connect() {
            format!("cannot connect: {}", chain(e))
        } else {
            format!(
                "the connection failed before the answer arrived (the call may have been \
                 applied; the event is checked again before anything is repeated): {}",
                chain(e)
            )
        };
        OdooError::NoAnswer {
            call: label.to_owned(),
            endpoint: self.endpoint.clone(),
            detail,
        }
    }

    async fn service(
        &self,
        service: &str,
        method: &str,
        args: Vec<Value>,
    ) -> Result<Value, OdooError> {
        let label = format!("{service}.{method}");
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = jsonrpc_request(id, service, method, args);
        let raw = self.post("/jsonrpc", &label, &body, None).await?;
        decode_jsonrpc(&label, &self.endpoint, &raw)
    }

    /// `common.version` (no credentials).
    pub async fn version(&self) -> Result<ServerVersion, OdooError> {
        let result = self.service("common", "version", Vec::new()).await?;
        parse_version(&result).map_err(|detail| OdooError::Protocol {
            call: "common.version".into(),
            detail,
        })
    }

    /// `common.authenticate(db, login, key, {})`: the user id, or `None` when refused.
    pub async fn authenticate(&self, login: &str, key: &str) -> Result<Option<i64>, OdooError> {
        let args = vec![json!(self.database), json!(login), json!(key), json!({})];
        let result = self.service("common", "authenticate", args).await?;
        match result {
            Value::Bool(false) | Value::Null => Ok(None),
            Value::Number(n) => n.as_i64().map(Some).ok_or_else(|| OdooError::Protocol {
                call: "common.authenticate".into(),
                detail: format!("the user id {n} is not a whole number"),
            }),
            other => Err(OdooError::Protocol {
                call: "common.authenticate".into(),
                detail: format!("expected a user id or false, got {}", shape(&other)),
            }),
        }
    }

    /// Whether `/json/2` answers with this key (`res.users.context_get`): true on 200, false
    /// when the route does not exist (404); refused keys and failures are errors.
    pub async fn probe_json2(&self, key: &str) -> Result<bool, OdooError> {
        let label = "res.users.context_get";
        let raw = self
            .post(
                "/json/2/res.users/context_get",
                label,
                &json!({}),
                Some(key),
            )
            .await?;
        if raw.status == 404 {
            return Ok(false);
        }
        decode_json2(label, &self.endpoint, &raw).map(|_| true)
    }

    /// One call in `session`.
    pub async fn call(&self, session: &Session, call: &Call) -> Result<Value, OdooError> {
        let label = call.label();
        match session.auth {
            Auth::Json2 => {
                let path = format!("/json/2/{}/{}", call.model, call.method);
                let raw = self
                    .post(&path, &label, &call.json2_body(), Some(&session.key))
                    .await?;
                decode_json2(&label, &self.endpoint, &raw)
            }
            Auth::JsonRpc { uid } => {
                let [model, method, args, kwargs] = call.execute_kw_args();
                let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                let body = jsonrpc_request(
                    id,
                    "object",
                    "execute_kw",
                    vec![
                        json!(self.database),
                        json!(uid),
                        json!(&*session.key),
                        model,
                        method,
                        args,
                        kwargs,
                    ],
                );
                let raw = self.post("/jsonrpc", &label, &body, None).await?;
                decode_jsonrpc(&label, &self.endpoint, &raw)
            }
        }
    }
}

/// A short description of a JSON value's shape, for errors (never its content).
pub fn shape(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The trusted roots: the PEM bundle of `ca_file`, or the system's trust store.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, OdooError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let err = |m: String| {
                OdooError::Setup(format!("reading Odoo's CA bundle {}: {m}", path.display()))
            };
            let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| err(e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| err(format!("a certificate is not a usable trust anchor: {e}")))?;
            }
            if roots.is_empty() {
                return Err(err("no certificates in it".into()));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(OdooError::Setup(
                    "no CA certificates found in the system's trust store (install \
                     ca-certificates, or set `ca_file` in the sink)"
                        .into(),
                ));
            }
        }
    }
    Ok(roots)
}

/// An error and its causes, each once, bounded.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(e);
    for _ in 0..8 {
        let Some(err) = current else { break };
        let text = err.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = err.source();
    }
    parts.join(": ")
}

/// A TLS failure in words; `trust` names where the trusted CAs come from.
fn explain_tls(error: &rustls::Error, trust: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "TLS: Odoo's certificate is not signed by a CA in {trust} (unknown issuer); \
                 check `ca_file`"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "TLS: Odoo's certificate is not valid for the endpoint's host name".to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS: Odoo's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS: Odoo's certificate is not valid yet (is the gateway's clock right?)"
                    .to_owned()
            }
            other => format!("TLS: Odoo's certificate is not trusted: {other:?}"),
        },
        other => format!("TLS: {other}"),
    }
}

/// A future of one call's answer.
pub type CallFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, OdooError>> + Send + 'a>>;

/// Whoever answers calls: the logged-in connection, or a script in tests. The lookups and the
/// state machine only ever talk to Odoo through this.
pub trait Caller: Sync {
    fn call<'a>(&'a self, call: Call) -> CallFuture<'a>;
    /// What the server's version writes differently.
    fn fields(&self) -> super::mapping::Fields;
}

/// The real [`Caller`]: a session over the HTTP client.
#[derive(Debug)]
pub struct Conn<'a> {
    pub rpc: &'a Rpc,
    pub session: &'a Session,
    pub fields: super::mapping::Fields,
}

impl Caller for Conn<'_> {
    fn call<'a>(&'a self, call: Call) -> CallFuture<'a> {
        Box::pin(async move { self.rpc.call(self.session, &call).await })
    }

    fn fields(&self) -> super::mapping::Fields {
        self.fields
    }
}

/// Reading the values Odoo answers with: records as objects, many2one as `[id, "name"]` or
/// `false`, text as a string or `false`. Every reader checks the shape and says what it got.
pub mod answer {
    use serde_json::Value;

    use super::super::error::{OdooError, bounded};
    use super::shape;

    fn wrong(call: &str, detail: String) -> OdooError {
        OdooError::Protocol {
            call: call.to_owned(),
            detail,
        }
    }

    /// The records of a `search_read` or `read` answer.
    pub fn records<'a>(call: &str, v: &'a Value) -> Result<&'a [Value], OdooError> {
        let list = v.as_array().ok_or_else(|| {
            wrong(
                call,
                format!("expected a list of records, got {}", shape(v)),
            )
        })?;
        if let Some(bad) = list.iter().find(|r| !r.is_object()) {
            return Err(wrong(
                call,
                format!("expected records (objects), got {}", shape(bad)),
            ));
        }
        Ok(list)
    }

    /// A record's `id`.
    pub fn id(call: &str, record: &Value) -> Result<i64, OdooError> {
        record
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| wrong(call, "a record without a numeric `id`".into()))
    }

    /// A many2one: `[id, "display name"]` → `(id, name)`; `false`/absent → `None`.
    pub fn many2one(record: &Value, field: &str) -> Option<(i64, String)> {
        match record.get(field)? {
            Value::Array(pair) => {
                let id = pair.first()?.as_i64()?;
                let name = pair.get(1).and_then(Value::as_str).unwrap_or_default();
                Some((id, bounded(name, 512)))
            }
            Value::Number(n) => n.as_i64().map(|id| (id, String::new())),
            _ => None,
        }
    }

    /// A text field; `false`/absent/empty → `None`.
    pub fn text(record: &Value, field: &str) -> Option<String> {
        record
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(|s| s.chars().take(1024).collect())
    }

    pub fn flag(record: &Value, field: &str) -> bool {
        record.get(field).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The ids a `create` returned: one id or a list of ids.
    pub fn created(call: &str, v: &Value) -> Result<Vec<i64>, OdooError> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .map(|id| vec![id])
                .ok_or_else(|| wrong(call, format!("the id {n} is not a whole number"))),
            Value::Array(list) => list
                .iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or_else(|| wrong(call, "a created id is not a number".into()))
                })
                .collect(),
            other => Err(wrong(
                call,
                format!("expected created ids, got {}", shape(other)),
            )),
        }
    }

    /// The ids of a `load` answer (`{"ids": [...], "messages": [...]}`), or Odoo's messages
    /// when it refused the rows (`"ids": false`).
    pub fn loaded(call: &str, v: &Value, expected: usize) -> Result<Vec<i64>, OdooError> {
        let messages: Vec<String> = v
            .get("messages")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter(|m| m.get("type").and_then(Value::as_str) == Some("error"))
                    .filter_map(|m| m.get("message").and_then(Value::as_str))
                    .map(|m| bounded(m, 512))
                    .take(5)
                    .collect()
            })
            .unwrap_or_default();
        match v.get("ids") {
            Some(Value::Array(ids)) if messages.is_empty() => {
                let ids: Vec<i64> = ids.iter().filter_map(Value::as_i64).collect();
                if ids.len() != expected {
                    return Err(wrong(
                        call,
                        format!("expected {expected} ids, got {}", ids.len()),
                    ));
                }
                Ok(ids)
            }
            Some(Value::Bool(false)) | Some(Value::Array(_)) => Err(OdooError::Refused {
                call: call.to_owned(),
                message: if messages.is_empty() {
                    "the import was refused without a message".to_owned()
                } else {
                    messages.join("; ")
                },
            }),
            _ => Err(wrong(
                call,
                format!("expected an import result, got {}", shape(v)),
            )),
        }
    }
}
