//! The HTTP side: routes, transports, authentication, faults, latency, the call log.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Map, Value, json};

use super::db::{Db, as_id};
use super::error::{Kind, OdooError, object};
use super::faults::{self, Cutting, FaultKind, Switches};
use super::rpc::{self, Invocation};
use super::{
    ADMIN_LOGIN, ADMIN_PASSWORD, ADMIN_UID, BOT_LOGIN, BOT_UID, Call, DATABASE, FakeOdoo, Fault,
    Version, lock, seed,
};
use crate::hub::Pki;

#[derive(Debug)]
pub(crate) struct Keys {
    pub bot: String,
    pub admin: String,
}

/// Everything the handlers share with the [`FakeOdoo`] handle.
#[derive(Debug)]
pub(crate) struct Shared {
    pub version: Version,
    pub db: Mutex<Db>,
    pub keys: Mutex<Keys>,
    pub faults: Mutex<Vec<Fault>>,
    pub latency: Mutex<Duration>,
    pub calls: Mutex<Vec<Call>>,
    pub switches: Switches,
}

impl Shared {
    pub(crate) fn lock_keys(&self) -> MutexGuard<'_, Keys> {
        lock(&self.keys)
    }

    pub(crate) fn with_db<T>(&self, f: impl FnOnce(&mut Db) -> T) -> T {
        f(&mut lock(&self.db))
    }

    /// Run a call as one transaction: on a copy, kept only if the call succeeded.
    fn transact(&self, inv: &Invocation) -> Result<Option<Value>, OdooError> {
        let mut db = lock(&self.db);
        let mut copy = db.clone();
        let out = rpc::execute(&mut copy, self.version, inv);
        if out.is_ok() {
            *db = copy;
        }
        out
    }

    /// The uid of a login with a password or API key (JSON-RPC), if they match.
    fn login(&self, login: &str, secret: &str) -> Option<i64> {
        let keys = self.lock_keys();
        match login {
            ADMIN_LOGIN if secret == ADMIN_PASSWORD || secret == keys.admin => Some(ADMIN_UID),
            BOT_LOGIN if secret == keys.bot => Some(BOT_UID),
            _ => None,
        }
    }

    fn check_uid(&self, uid: i64, secret: &str) -> bool {
        let keys = self.lock_keys();
        match uid {
            ADMIN_UID => secret == ADMIN_PASSWORD || secret == keys.admin,
            BOT_UID => secret == keys.bot,
            _ => false,
        }
    }

    /// The uid of an API key (JSON-2).
    fn key_uid(&self, key: &str) -> Option<i64> {
        let keys = self.lock_keys();
        if key == keys.admin {
            Some(ADMIN_UID)
        } else if key == keys.bot {
            Some(BOT_UID)
        } else {
            None
        }
    }

    fn take_fault(&self, model: &str, method: &str) -> Option<FaultKind> {
        faults::take(&mut lock(&self.faults), model, method)
    }

    fn record(&self, call: Call) {
        lock(&self.calls).push(call);
    }
}

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
}

pub(crate) fn start(version: Version, pki: Option<&Pki>) -> FakeOdoo {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("the fake Odoo's runtime");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the fake Odoo");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let mut db = Db::default();
    seed::seed(&mut db, version);
    let shared = Arc::new(Shared {
        version,
        db: Mutex::new(db),
        keys: Mutex::new(Keys {
            bot: faults::new_key(),
            admin: faults::new_key(),
        }),
        faults: Mutex::default(),
        latency: Mutex::default(),
        calls: Mutex::default(),
        switches: Switches::default(),
    });
    let app = Router::new()
        .route("/jsonrpc", post(jsonrpc))
        .route("/json/2", any(json2_bare))
        .route("/json/2/", any(json2_bare))
        .route("/json/2/{*rest}", any(json2))
        .route("/web/version", get(web_version))
        .route("/json/version", get(web_version))
        .route("/web/webclient/version_info", post(version_info))
        .route("/web/session/authenticate", post(session_authenticate))
        .fallback(not_found)
        .with_state(App {
            shared: Arc::clone(&shared),
        });
    let handle = axum_server::Handle::new();
    let switches = Arc::clone(&shared.switches);
    let service = app.into_make_service_with_connect_info::<SocketAddr>();
    let url = match pki {
        None => {
            let server = axum_server::from_tcp(listener)
                .map(|inner| Cutting { inner, switches })
                .handle(handle.clone());
            runtime.spawn(async move {
                let _ = server.serve(service).await;
            });
            format!("http://127.0.0.1:{port}")
        }
        Some(pki) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(pki.hub_cert_pem.as_bytes())
                    .collect::<Result<_, _>>()
                    .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pki.hub_key_pem.as_bytes()).unwrap();
            let tls = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
            let server =
                axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(tls)))
                    .map(|inner| Cutting { inner, switches })
                    .handle(handle.clone());
            runtime.spawn(async move {
                let _ = server.serve(service).await;
            });
            format!("https://localhost:{port}")
        }
    };
    FakeOdoo {
        shared,
        url,
        handle,
        runtime: Some(runtime),
    }
}

// ---- responses ---------------------------------------------------------------------------

const JSON: &str = "application/json; charset=utf-8";

fn with_type(status: u16, content_type: &'static str, body: String) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

fn json_response(status: u16, body: String) -> Response {
    with_type(status, JSON, body)
}

fn html(status: u16, body: String) -> Response {
    with_type(status, "text/html; charset=utf-8", body)
}

/// werkzeug's 404 page (a path no controller serves).
fn werkzeug_404() -> String {
    "<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n".to_owned()
}

/// What a proxy in front of Odoo answers with a 5xx (or any injected status).
fn proxy_page(status: u16) -> String {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    format!(
        "<html>\r\n<head><title>{status} {reason}</title></head>\r\n<body>\r\n<center><h1>{status} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    )
}

/// `{"jsonrpc": "2.0", "id": …, "result": …}` — without `result` when the method returned
/// None.
fn rpc_result(id: &Value, result: Option<&Value>) -> String {
    let mut fields = vec![("jsonrpc", "\"2.0\"".to_owned()), ("id", id.to_string())];
    if let Some(r) = result {
        fields.push(("result", r.to_string()));
    }
    object(&fields)
}

fn rpc_error(v: Version, id: &Value, e: &OdooError) -> String {
    let error = object(&[
        ("code", v.jsonrpc_error_code().to_string()),
        ("message", "\"Odoo Server Error\"".to_owned()),
        ("data", e.to_json(v)),
    ]);
    object(&[
        ("jsonrpc", "\"2.0\"".to_owned()),
        ("id", id.to_string()),
        ("error", error),
    ])
}

/// After the call: the fault's effect on the answer, latency, the call log.
struct Finish<'a> {
    app: &'a App,
    peer: SocketAddr,
    transport: &'static str,
    model: String,
    method: String,
}

impl Finish<'_> {
    async fn answer(
        self,
        fault: Option<FaultKind>,
        response: Response,
        error: Option<&OdooError>,
        committed: bool,
    ) -> Response {
        let shared = &self.app.shared;
        let latency = *lock(&shared.latency);
        let mut call = Call {
            transport: self.transport,
            model: self.model,
            method: self.method,
            status: response.status().as_u16(),
            error: error.map(|e| e.name().to_owned()),
            message: error.map(|e| e.message.clone()),
            committed,
        };
        match fault {
            Some(FaultKind::CommitThenDrop) => {
                call.status = 0;
                call.error = Some("dropped after commit".into());
                shared.record(call);
                if !latency.is_zero() {
                    tokio::time::sleep(latency).await;
                }
                faults::cut(&shared.switches, self.peer);
                return response;
            }
            Some(FaultKind::Delay(d)) => {
                shared.record(call);
                tokio::time::sleep(d + latency).await;
                return response;
            }
            _ => shared.record(call),
        }
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        response
    }
}

/// Answers of faults that stop a call before it runs, by transport.
fn fault_before(
    v: Version,
    fault: &Option<FaultKind>,
    json2: bool,
    id: &Value,
) -> Option<(Response, Option<OdooError>)> {
    let error = match fault {
        Some(FaultKind::Status(code)) => {
            return Some((html(*code, proxy_page(*code)), None));
        }
        Some(FaultKind::Serialization) => OdooError::new(
            Kind::SerializationFailure,
            "could not serialize access due to concurrent update\n",
        ),
        Some(FaultKind::Lock) if v >= Version::V19 => OdooError::new(
            Kind::LockError,
            "Cannot update the records: they are locked by another transaction. Please try again later.",
        ),
        Some(FaultKind::Lock) => OdooError::new(
            Kind::LockNotAvailable,
            "could not obtain lock on row in relation \"stock_picking\"\n",
        ),
        _ => return None,
    };
    let response = if json2 {
        json_response(error.kind.status(), error.to_json(v))
    } else {
        json_response(200, rpc_error(v, id, &error))
    };
    Some((response, Some(error)))
}

// ---- JSON-RPC ----------------------------------------------------------------------------

async fn jsonrpc(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let v = app.shared.version;
    let other = |method: &str| Finish {
        app: &app,
        peer,
        transport: "other",
        model: "/jsonrpc".into(),
        method: method.into(),
    };
    let parsed: Value = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(_) => {
            return other("invalid json")
                .answer(None, html(400, "Invalid JSON data".into()), None, false)
                .await;
        }
    };
    let Some(request) = parsed.as_object() else {
        return other("invalid json-rpc")
            .answer(None, html(400, "Invalid JSON-RPC data".into()), None, false)
            .await;
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request
        .get("params")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let service = params.get("service").and_then(Value::as_str).unwrap_or("");
    let method = params.get("method").and_then(Value::as_str).unwrap_or("");
    let args: Vec<Value> = params
        .get("args")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let (model, call_method) = if service == "object" {
        (
            args.get(3).and_then(Value::as_str).unwrap_or("").to_owned(),
            args.get(4).and_then(Value::as_str).unwrap_or("").to_owned(),
        )
    } else {
        (service.to_owned(), method.to_owned())
    };
    let fault = app.shared.take_fault(&model, &call_method);
    let finish = Finish {
        app: &app,
        peer,
        transport: "jsonrpc",
        model,
        method: call_method,
    };
    if let Some((response, error)) = fault_before(v, &fault, false, &id) {
        return finish.answer(fault, response, error.as_ref(), false).await;
    }
    let unauthorized = fault == Some(FaultKind::Unauthorized);
    let (outcome, committed) = match service {
        "common" => (common(&app.shared, method, &args, unauthorized), false),
        "object" if method == "execute_kw" || method == "execute" => {
            object_call(&app.shared, method, &args, unauthorized)
        }
        "db" => (db_service(v, method), false),
        _ => (
            Err(OdooError::new(Kind::KeyError, format!("'{service}'"))),
            false,
        ),
    };
    match outcome {
        Ok(result) => {
            let body = rpc_result(&id, result.as_ref());
            finish
                .answer(fault, json_response(200, body), None, committed)
                .await
        }
        Err(e) => {
            let body = rpc_error(v, &id, &e);
            finish
                .answer(fault, json_response(200, body), Some(&e), false)
                .await
        }
    }
}

fn unknown_db(db: &str) -> OdooError {
    OdooError::new(
        Kind::OperationalError,
        format!(
            "connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: FATAL:  database \"{db}\" does not exist\n"
        ),
    )
}

fn common(
    shared: &Shared,
    method: &str,
    args: &[Value],
    unauthorized: bool,
) -> Result<Option<Value>, OdooError> {
    let text = |i: usize| args.get(i).and_then(Value::as_str).unwrap_or("");
    match method {
        "version" => Ok(Some(shared.version.common_version())),
        "about" => Ok(Some(json!("See http://openerp.com"))),
        "login" | "authenticate" => {
            if text(0) != DATABASE {
                return Err(unknown_db(text(0)));
            }
            let uid = if unauthorized {
                None
            } else {
                shared.login(text(1), text(2))
            };
            Ok(Some(uid.map_or(json!(false), |u| json!(u))))
        }
        _ => Err(OdooError::new(
            Kind::AttributeError,
            format!("module 'odoo.service.common' has no attribute 'exp_{method}'"),
        )),
    }
}

fn db_service(v: Version, method: &str) -> Result<Option<Value>, OdooError> {
    match method {
        "list" => Ok(Some(json!([DATABASE]))),
        "server_version" => Ok(Some(json!(v.server_version()))),
        _ => Err(OdooError::new(
            Kind::AttributeError,
            format!("module 'odoo.service.db' has no attribute 'exp_{method}'"),
        )),
    }
}

/// `object.execute_kw(db, uid, password, model, method, args, kwargs)` (or `execute` with
/// positional arguments); whether it committed.
fn object_call(
    shared: &Shared,
    method: &str,
    args: &[Value],
    unauthorized: bool,
) -> (Result<Option<Value>, OdooError>, bool) {
    let v = shared.version;
    let run = || -> Result<Option<Value>, OdooError> {
        let db = args.first().and_then(Value::as_str).unwrap_or("");
        let uid = args.get(1).and_then(as_id).unwrap_or(0);
        let secret = args.get(2).and_then(Value::as_str).unwrap_or("");
        if args.len() < 5 {
            return Err(OdooError::type_error(format!(
                "{method}() missing required positional arguments"
            )));
        }
        if db != DATABASE {
            return Err(unknown_db(db));
        }
        if unauthorized || !shared.check_uid(uid, secret) {
            return Err(OdooError::access_denied());
        }
        let model = args.get(3).and_then(Value::as_str).unwrap_or("");
        let name = args.get(4).and_then(Value::as_str).unwrap_or("");
        if name.starts_with('_') {
            return Err(OdooError::new(
                Kind::AccessError,
                v.msg_private_method(model, name),
            ));
        }
        if super::schema::schema(v).model(model).is_none() {
            return Err(OdooError::user(format!("Object {model} doesn't exist")));
        }
        let (positional, kwargs) = if method == "execute_kw" {
            let positional = match args.get(5) {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                Some(other) => {
                    return Err(OdooError::type_error(format!(
                        "{}() argument after * must be an iterable, not {}",
                        name,
                        if other.is_object() { "dict" } else { "int" }
                    )));
                }
            };
            let kwargs = match args.get(6) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(o)) => o.clone(),
                Some(_) => {
                    return Err(OdooError::type_error(format!(
                        "{name}() argument after ** must be a mapping"
                    )));
                }
            };
            (positional, kwargs)
        } else {
            (args[5..].to_vec(), Map::new())
        };
        let inv = rpc::bind_jsonrpc(v, uid, model, name, &positional, kwargs)?;
        shared.transact(&inv)
    };
    let out = run();
    let committed = out.is_ok();
    (out, committed)
}

// ---- JSON-2 ------------------------------------------------------------------------------

async fn json2_bare(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    json2(
        State(app),
        ConnectInfo(peer),
        method,
        headers,
        Path(String::new()),
        body,
    )
    .await
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    let key = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !key.is_empty()).then(|| key.to_owned())
}

async fn json2(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    http_method: Method,
    headers: HeaderMap,
    Path(rest): Path<String>,
    body: Bytes,
) -> Response {
    let v = app.shared.version;
    let path = format!("/json/2/{rest}");
    if !v.has_json2() {
        // 16–18: no such route.
        return Finish {
            app: &app,
            peer,
            transport: "other",
            model: path,
            method: http_method.to_string(),
        }
        .answer(None, html(404, werkzeug_404()), None, false)
        .await;
    }
    let mut parts = rest.splitn(2, '/');
    let model = parts.next().unwrap_or("").to_owned();
    let method = parts.next().unwrap_or("").to_owned();
    let finish = Finish {
        app: &app,
        peer,
        transport: "json2",
        model: model.clone(),
        method: method.clone(),
    };
    let error = |e: OdooError| {
        let mut r = json_response(e.kind.status(), e.to_json(v));
        if e.kind == Kind::Unauthorized {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer "),
            );
        }
        (r, e)
    };
    if http_method != Method::POST || model.is_empty() || method.is_empty() || method.contains('/')
    {
        let (r, e) = error(OdooError::new(
            Kind::NotFound,
            "Did you mean POST /json/2/<model>/<method>?",
        ));
        return finish.answer(None, r, Some(&e), false).await;
    }
    if let Some(db) = headers.get("x-odoo-database") {
        if db.to_str().ok() != Some(DATABASE) {
            let page = "<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>No database is selected and the requested URL was not found in the server-wide controllers.</p>\n<p>Please verify the hostname, <a href=/web/login>login</a> and try again.</p>\n\n<!-- Alternatively, use the X-Odoo-Database header. -->\n";
            return finish
                .answer(None, html(404, page.to_owned()), None, false)
                .await;
        }
    }
    let fault = app.shared.take_fault(&model, &method);
    if let Some((response, e)) = fault_before(v, &fault, true, &Value::Null) {
        return finish.answer(fault, response, e.as_ref(), false).await;
    }
    let uid = match bearer(&headers) {
        None => {
            let (r, e) = error(OdooError::new(
                Kind::Unauthorized,
                "User not authenticated, use an API Key with a Bearer Authorization header.",
            ));
            return finish.answer(fault, r, Some(&e), false).await;
        }
        Some(key) => match app.shared.key_uid(&key) {
            Some(uid) if fault != Some(FaultKind::Unauthorized) => uid,
            _ => {
                let (r, e) = error(OdooError::new(Kind::Unauthorized, "Invalid apikey"));
                return finish.answer(fault, r, Some(&e), false).await;
            }
        },
    };
    let args: Map<String, Value> = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(o)) => o,
            Ok(_) => Map::new(),
            Err(err) => {
                let (r, e) = error(OdooError::new(
                    Kind::BadRequest,
                    format!("could not parse the body as json: {err}"),
                ));
                return finish.answer(fault, r, Some(&e), false).await;
            }
        }
    };
    if super::schema::schema(v).model(&model).is_none() {
        let (r, e) = error(OdooError::new(
            Kind::NotFound,
            format!("the model '{model}' does not exist"),
        ));
        return finish.answer(fault, r, Some(&e), false).await;
    }
    if method.starts_with('_') {
        let (r, e) = error(OdooError::new(
            Kind::AccessError,
            v.msg_private_method(&model, &method),
        ));
        return finish.answer(fault, r, Some(&e), false).await;
    }
    let outcome =
        rpc::bind_json2(v, uid, &model, &method, args).and_then(|inv| app.shared.transact(&inv));
    match outcome {
        Ok(result) => {
            let body = result.unwrap_or(Value::Null).to_string();
            finish
                .answer(fault, json_response(200, body), None, true)
                .await
        }
        Err(e) => {
            let (r, e) = error(e);
            finish.answer(fault, r, Some(&e), false).await
        }
    }
}

// ---- other routes ------------------------------------------------------------------------

/// `GET /web/version`, `/json/version` (19).
async fn web_version(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    uri: axum::http::Uri,
) -> Response {
    let v = app.shared.version;
    let finish = Finish {
        app: &app,
        peer,
        transport: "other",
        model: uri.path().to_owned(),
        method: "GET".into(),
    };
    if v < Version::V19 {
        return finish
            .answer(None, html(404, werkzeug_404()), None, false)
            .await;
    }
    let body = object(&[
        ("version_info", v.version_info().to_string()),
        ("version", json!(v.server_version()).to_string()),
    ]);
    finish
        .answer(None, json_response(200, body), None, false)
        .await
}

/// `POST /web/webclient/version_info` (JSON-RPC route, no auth; all versions).
async fn version_info(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let id = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("id").cloned())
        .unwrap_or(Value::Null);
    let result = app.shared.version.common_version();
    Finish {
        app: &app,
        peer,
        transport: "other",
        model: "/web/webclient/version_info".into(),
        method: "POST".into(),
    }
    .answer(
        None,
        json_response(200, rpc_result(&id, Some(&result))),
        None,
        false,
    )
    .await
}

/// `POST /web/session/authenticate`: login + password only (API keys are refused here).
async fn session_authenticate(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Bytes,
) -> Response {
    let v = app.shared.version;
    let finish = Finish {
        app: &app,
        peer,
        transport: "other",
        model: "/web/session/authenticate".into(),
        method: "POST".into(),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return finish
            .answer(None, html(400, "Invalid JSON data".into()), None, false)
            .await;
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let params = request.get("params").cloned().unwrap_or(json!({}));
    let text = |k: &str| params.get(k).and_then(Value::as_str).unwrap_or("");
    if text("db") != DATABASE {
        let e = unknown_db(text("db"));
        return finish
            .answer(
                None,
                json_response(200, rpc_error(v, &id, &e)),
                Some(&e),
                false,
            )
            .await;
    }
    if text("login") != ADMIN_LOGIN || text("password") != ADMIN_PASSWORD {
        let e = OdooError::access_denied();
        return finish
            .answer(
                None,
                json_response(200, rpc_error(v, &id, &e)),
                Some(&e),
                false,
            )
            .await;
    }
    let info = json!({
        "uid": ADMIN_UID,
        "is_system": true,
        "is_admin": true,
        "user_context": {"lang": "en_US", "tz": false, "uid": ADMIN_UID},
        "db": DATABASE,
        "server_version": v.server_version(),
        "server_version_info": v.version_info(),
        "support_url": "https://www.odoo.com/buy",
        "name": "Administrator",
        "username": ADMIN_LOGIN,
        "partner_display_name": "Administrator",
        "partner_id": 3,
        "web.base.url": "http://127.0.0.1:8069",
        "active_ids_limit": 20000,
        "max_file_upload_size": 134217728,
        "home_action_id": false,
        "user_companies": {
            "current_company": 1,
            "allowed_companies": {"1": {"id": 1, "name": "My Company", "sequence": 0}}
        },
    });
    let mut response = json_response(200, rpc_result(&id, Some(&info)));
    let cookie = format!(
        "session_id={}; Expires=Fri, 01 Jan 2100 00:00:00 GMT; Max-Age=604800; HttpOnly; Path=/",
        faults::new_key()
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    finish.answer(None, response, None, false).await
}

async fn not_found(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: axum::http::Uri,
) -> Response {
    Finish {
        app: &app,
        peer,
        transport: "other",
        model: uri.path().to_owned(),
        method: method.to_string(),
    }
    .answer(None, html(404, werkzeug_404()), None, false)
    .await
}
