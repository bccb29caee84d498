//! A test hub for the HTTPS sink: axum over axum-server with rustls (ring), certificates made
//! here by rcgen, on a free loopback port, in its own runtime so that synchronous tests can
//! drive it.
//!
//! It keeps the contract of the README's "The hub over HTTPS" and records everything:
//! - `POST /v1/events` with a JSON array of events. The bearer token must be the current one
//!   ([`Hub::set_token`]; `None` = any or none), else 401.
//! - Each request takes the next scripted [`Scripted`] answer ([`Hub::script`]); when the script
//!   is empty, [`Scripted::Normal`]: a batch with a *poison* event (a line whose serial starts
//!   with `POISON`) is refused with 400 and a JSON error naming it; any other batch is
//!   accepted with 200.
//! - Faults: a 5xx, a 429 with `Retry-After`, an answer dropped after reading the request
//!   (before or after accepting the batch: the connection is cut and the agent sees no status
//!   line), and a 200 whose body is cut short.
//! - Counts per event id: how often it was accepted (in a batch the hub took, answered or not)
//!   and how often it was in a batch whose answer the hub dropped after taking it. The only
//!   duplicates the agent may cause are those lost answers: `accepted ≤ 1 + lost`.
//! - The `Idempotency-Key` contract: the same key always with the same ids, the same ids always
//!   with the same key; any breach is recorded in [`HubState::key_violations`].
//!
//! Dropping a connection is done below hyper: every accepted connection goes through
//! [`Cuttable`], a stream the handler can switch (by the peer's address) to fail every write
//! (no answer at all) or to let the head and a few bytes of the body through and then fail
//! (an answer cut short). The TLS session then ends without close_notify, as when a hub or a
//! proxy dies mid-answer.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum_server::accept::Accept;
use axum_server::tls_rustls::RustlsConfig;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Test certificates: a CA, the hub's certificate signed by it (for `localhost` and
/// `127.0.0.1`), and another CA that signed nothing the hub uses.
#[derive(Debug, Clone)]
pub struct Pki {
    pub ca_pem: String,
    pub other_ca_pem: String,
    pub hub_cert_pem: String,
    pub hub_key_pem: String,
}

impl Pki {
    pub fn new() -> Pki {
        let (ca_pem, issuer) = ca("tallyman test hub CA");
        let (other_ca_pem, _) = ca("some other CA");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "hub");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        Pki {
            ca_pem,
            other_ca_pem,
            hub_cert_pem: cert.pem(),
            hub_key_pem: key.serialize_pem(),
        }
    }
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// What the hub does with the next request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripted {
    /// Refuse a batch with a poison event (400), accept any other (200).
    Normal,
    /// Answer this status (not accepting the batch).
    Status(u16),
    /// Answer this status with `Retry-After: value` (not accepting the batch).
    RetryAfter { status: u16, value: String },
    /// Read the request, do not take the batch, cut the connection without answering.
    DropBeforeTaking,
    /// Take the batch (unless it has a poison event), then cut the connection without
    /// answering: the agent cannot know, so it sends the events again.
    DropAfterTaking,
    /// Take the batch (unless poisoned) and answer 200 with a body cut short: the status line
    /// arrived, so the agent must count the batch delivered.
    TruncatedOk,
}

/// What the hub answered to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Given {
    Ok,
    TruncatedOk,
    Poison,
    Status(u16),
    Unauthorized,
    /// No answer; `taken` if the batch was taken first.
    Dropped {
        taken: bool,
    },
    /// Not a JSON array of events, no JSON content type or no Idempotency-Key.
    Malformed(String),
}

/// One request as the hub saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub token: Option<String>,
    pub key: Option<String>,
    pub ids: Vec<String>,
    pub given: Given,
}

/// Everything the hub recorded, and its settings.
#[derive(Debug, Default)]
pub struct HubState {
    pub requests: Vec<Request>,
    /// Times each event was in a batch the hub took (answered 2xx, or taken and the answer
    /// dropped).
    pub accepted: HashMap<String, u32>,
    /// Times each event was in a batch the hub took and then dropped the answer of.
    pub lost: HashMap<String, u32>,
    /// The last JSON of each event taken.
    pub events: HashMap<String, Value>,
    /// Breaches of the Idempotency-Key contract.
    pub key_violations: Vec<String>,
    script: VecDeque<Scripted>,
    token: Option<String>,
    keys: HashMap<String, Vec<String>>,
    keys_by_ids: HashMap<Vec<String>, String>,
}

impl HubState {
    /// Requests the hub answered with this.
    pub fn count(&self, given: &Given) -> usize {
        self.requests.iter().filter(|r| &r.given == given).count()
    }

    /// Events accepted more often than a lost answer explains: must be empty.
    pub fn unexplained_duplicates(&self) -> Vec<(String, u32, u32)> {
        let mut out: Vec<(String, u32, u32)> = self
            .accepted
            .iter()
            .filter_map(|(id, &n)| {
                let lost = self.lost.get(id).copied().unwrap_or(0);
                (n > 1 + lost).then(|| (id.clone(), n, lost))
            })
            .collect();
        out.sort();
        out
    }
}

type Shared = Arc<(Mutex<HubState>, Condvar)>;
type Switches = Arc<Mutex<HashMap<SocketAddr, Arc<AtomicU8>>>>;

/// A running test hub. Stopped on drop.
#[derive(Debug)]
pub struct Hub {
    shared: Shared,
    port: u16,
    handle: axum_server::Handle,
    runtime: Option<tokio::runtime::Runtime>,
}

#[derive(Clone)]
struct App {
    shared: Shared,
    switches: Switches,
}

impl Hub {
    /// Start a hub with the certificate of `pki` on a free loopback port.
    pub fn start(pki: &Pki) -> Hub {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("the hub's runtime");
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
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding the hub");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();

        let shared: Shared = Arc::default();
        let switches: Switches = Arc::default();
        let app = Router::new()
            .route("/v1/events", post(events))
            .with_state(App {
                shared: Arc::clone(&shared),
                switches: Arc::clone(&switches),
            });
        let handle = axum_server::Handle::new();
        let server =
            axum_server::from_tcp_rustls(listener, RustlsConfig::from_config(Arc::new(tls)))
                .map(|inner| Cutting { inner, switches })
                .handle(handle.clone());
        runtime.spawn(async move {
            let _ = server
                .serve(app.into_make_service_with_connect_info::<SocketAddr>())
                .await;
        });
        Hub {
            shared,
            port,
            handle,
            runtime: Some(runtime),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://localhost:PORT/v1/events`.
    pub fn endpoint(&self) -> String {
        format!("https://localhost:{}/v1/events", self.port)
    }

    /// The token requests must carry from now on (`None`: any or none).
    pub fn set_token(&self, token: Option<&str>) {
        self.shared.0.lock().unwrap().token = token.map(str::to_owned);
    }

    /// Answers for the next requests, in order (after those already scripted).
    pub fn script(&self, answers: impl IntoIterator<Item = Scripted>) {
        self.shared.0.lock().unwrap().script.extend(answers);
    }

    /// Look at the state.
    pub fn with<T>(&self, f: impl FnOnce(&HubState) -> T) -> T {
        f(&self.shared.0.lock().unwrap())
    }

    /// Wait until `cond` holds, at most `timeout`; whether it held.
    pub fn wait(&self, timeout: Duration, cond: impl Fn(&HubState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.shared;
        let mut s = m.lock().unwrap();
        loop {
            if cond(&s) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = cv.wait_timeout(s, deadline - now).unwrap().0;
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

fn json(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

fn is_poison(event: &Value) -> bool {
    event["lines"].as_array().is_some_and(|lines| {
        lines.iter().any(|l| {
            l["serial"]
                .as_str()
                .is_some_and(|s| s.starts_with("POISON"))
        })
    })
}

async fn events(
    State(app): State<App>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let text = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let token = text(header::AUTHORIZATION)
        .map(|a| a.strip_prefix("Bearer ").map_or(a.clone(), str::to_owned));
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let parsed: Option<Vec<Value>> = serde_json::from_slice(&body).ok();
    let ids: Vec<String> = parsed
        .iter()
        .flatten()
        .filter_map(|e| e["id"].as_str().map(str::to_owned))
        .collect();
    let switch = app.switches.lock().unwrap().get(&peer).cloned();
    let cut = |mode: u8| {
        if let Some(s) = &switch {
            s.store(mode, Ordering::SeqCst);
        }
    };

    let (m, cv) = &*app.shared;
    let mut s = m.lock().unwrap();
    let record = |s: &mut HubState, given: Given| {
        s.requests.push(Request {
            at: Instant::now(),
            token: token.clone(),
            key: key.clone(),
            ids: ids.clone(),
            given,
        });
    };

    let malformed = if text(header::CONTENT_TYPE).as_deref() != Some("application/json") {
        Some("no JSON content type")
    } else if key.is_none() {
        Some("no Idempotency-Key")
    } else if parsed
        .as_ref()
        .is_none_or(|p| p.len() != ids.len() || p.is_empty())
    {
        Some("not a non-empty JSON array of events with ids")
    } else {
        None
    };
    if let Some(why) = malformed {
        record(&mut s, Given::Malformed(why.to_owned()));
        cv.notify_all();
        return json(StatusCode::BAD_REQUEST, serde_json::json!({ "error": why }));
    }
    if let Some(k) = &key {
        if let Some(prev) = s.keys.get(k) {
            if prev != &ids {
                let v = format!("key {k} came with other ids");
                s.key_violations.push(v);
            }
        }
        if let Some(prev) = s.keys_by_ids.get(&ids) {
            if prev != k {
                let v = format!("the same ids came with keys {prev} and {k}");
                s.key_violations.push(v);
            }
        }
        s.keys.insert(k.clone(), ids.clone());
        s.keys_by_ids.insert(ids.clone(), k.clone());
    }
    if s.token.is_some() && s.token != token {
        record(&mut s, Given::Unauthorized);
        cv.notify_all();
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "invalid bearer token" }),
        );
    }
    let next = s.script.pop_front().unwrap_or(Scripted::Normal);
    let response = match next {
        Scripted::Status(code) => {
            record(&mut s, Given::Status(code));
            json(
                StatusCode::from_u16(code).unwrap(),
                serde_json::json!({ "error": "scripted failure" }),
            )
        }
        Scripted::RetryAfter { status, value } => {
            record(&mut s, Given::Status(status));
            let mut r = json(
                StatusCode::from_u16(status).unwrap(),
                serde_json::json!({ "error": "slow down" }),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_str(&value).unwrap());
            r
        }
        Scripted::DropBeforeTaking => {
            record(&mut s, Given::Dropped { taken: false });
            cut(CUT_ALL);
            json(StatusCode::SERVICE_UNAVAILABLE, Value::Null)
        }
        Scripted::Normal | Scripted::DropAfterTaking | Scripted::TruncatedOk => {
            let events = parsed.unwrap_or_default();
            if let Some(poison) = events.iter().find(|e| is_poison(e)) {
                record(&mut s, Given::Poison);
                json(
                    StatusCode::BAD_REQUEST,
                    serde_json::json!({
                        "error": "unknown product",
                        "event": poison["id"],
                        "serial": poison["lines"][0]["serial"],
                    }),
                )
            } else {
                for e in events {
                    let id = e["id"].as_str().unwrap_or_default().to_owned();
                    *s.accepted.entry(id.clone()).or_default() += 1;
                    if next == Scripted::DropAfterTaking {
                        *s.lost.entry(id.clone()).or_default() += 1;
                    }
                    s.events.insert(id, e);
                }
                match next {
                    Scripted::DropAfterTaking => {
                        record(&mut s, Given::Dropped { taken: true });
                        cut(CUT_ALL);
                    }
                    Scripted::TruncatedOk => {
                        record(&mut s, Given::TruncatedOk);
                        cut(CUT_BODY);
                    }
                    _ => record(&mut s, Given::Ok),
                }
                json(
                    StatusCode::OK,
                    serde_json::json!({ "accepted": ids.len(), "note": "x".repeat(512) }),
                )
            }
        }
    };
    cv.notify_all();
    response
}

const PASS: u8 = 0;
/// Fail every write: no answer at all.
const CUT_ALL: u8 = 1;
/// Let the answer's head and [`CUT_BODY_KEEP`] bytes of its body through, then fail.
const CUT_BODY: u8 = 2;
const CUT_BODY_KEEP: usize = 5;

/// An acceptor that wraps every connection of `inner` (the TLS acceptor) in a [`Cuttable`]
/// registered under the peer's address.
#[derive(Clone)]
struct Cutting<A> {
    inner: A,
    switches: Switches,
}

impl<A, S> Accept<TcpStream, S> for Cutting<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Cuttable<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let switch = Arc::new(AtomicU8::new(PASS));
        if let Ok(peer) = stream.peer_addr() {
            self.switches
                .lock()
                .unwrap()
                .insert(peer, Arc::clone(&switch));
        }
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Cuttable {
                    inner: stream,
                    switch,
                    seen: Vec::new(),
                    sent: 0,
                    limit: None,
                },
                service,
            ))
        })
    }
}

/// A connection the handler can cut (see the module docs). Above TLS: it sees HTTP bytes.
struct Cuttable<T> {
    inner: T,
    switch: Arc<AtomicU8>,
    /// The answer's bytes let through, until its head is complete (CUT_BODY).
    seen: Vec<u8>,
    /// Bytes of the answer let through (CUT_BODY).
    sent: usize,
    /// Bytes of the answer to let through, once its head's length is known (CUT_BODY).
    limit: Option<usize>,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection cut by the test hub")
}

impl<T: AsyncRead + Unpin> AsyncRead for Cuttable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Cuttable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match this.switch.load(Ordering::SeqCst) {
            CUT_ALL => Poll::Ready(Err(cut_error())),
            CUT_BODY => {
                if this.limit.is_none() {
                    let mut probe = this.seen.clone();
                    probe.extend_from_slice(buf);
                    if let Some(i) = probe.windows(4).position(|w| w == b"\r\n\r\n") {
                        this.limit = Some(i + 4 + CUT_BODY_KEEP);
                    }
                }
                let room = match this.limit {
                    Some(limit) => limit.saturating_sub(this.sent),
                    None => buf.len(),
                };
                if room == 0 {
                    // Everything let through must reach the peer before the cut.
                    ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
                    return Poll::Ready(Err(cut_error()));
                }
                let n =
                    ready!(Pin::new(&mut this.inner).poll_write(cx, &buf[..room.min(buf.len())]))?;
                if this.limit.is_none() {
                    this.seen.extend_from_slice(&buf[..n]);
                }
                this.sent += n;
                Poll::Ready(Ok(n))
            }
            _ => Pin::new(&mut this.inner).poll_write(cx, buf),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.load(Ordering::SeqCst) != PASS {
            // No close_notify: the connection just dies.
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
