//! The hub over HTTPS: batches of events POSTed as a JSON array (PRODUCT §5).
//!
//! The request contract (README, "The hub over HTTPS"):
//! - `POST {endpoint}` with `Content-Type: application/json` and a body that is a JSON array of
//!   canonical events, in spool order, exactly as the file sink writes them.
//! - `Idempotency-Key`: a digest of the batch's event ids in order ([`idempotency_key`]). The
//!   same events in the same order always carry the same key and events never change, so one
//!   key always stands for one body. A retry can also pick up newer events (another batch,
//!   another key), so the hub must still de-duplicate by event `id`.
//! - `Authorization: Bearer <token>` when `token_file` is set: the file is read at start and
//!   again whenever it changes (checked before every request), so a token is rotated by
//!   rewriting the file. A file that every user may read or write is refused.
//!
//! What the answers mean ([`classify`]):
//! - 2xx: every event of the batch is delivered (the body is not looked at).
//! - 408, 409, 425, 429, 5xx, timeouts, network and TLS errors, a connection closed before the
//!   status line arrived: the batch is retried after the hub's `Retry-After` (seconds or an
//!   HTTP date), else after the sink's backoff.
//! - 401 and 403 (the token is wrong or not yet rotated on one side), 404, 405, 410, 415 and 426
//!   (the endpoint is wrong) and 3xx (redirects are not followed: a POST must not turn into a
//!   GET): retried too, with an error that says what to fix. None of these is the events'
//!   fault, so none of them dead-letters anything.
//! - any other 4xx: the hub refuses something in the batch. A batch of one event is rejected
//!   (dead-lettered) with the status and the hub's answer; a longer batch is split in halves,
//!   each sent on its own (recursively, in order), until the refused events are isolated; the
//!   others are delivered ([`deliver_split`]).
//!
//! Bounded: at most [`MAX_ANSWER_BYTES`] of an answer are read, at most [`MAX_REASON_CHARS`] of
//! it are kept (escaped) in a reason or an error, a token file holds at most
//! [`MAX_TOKEN_BYTES`], every request ends within the sink's `timeout`.

use std::collections::VecDeque;
use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::StatusCode;
use reqwest::header::{self, HeaderValue};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};
use tallyman_protocol::event::Event;
use tracing::{debug, info, warn};

use super::{DeliverFuture, Outcome, Sink};

/// Most bytes of an answer's body that are read; the rest is dropped with the connection.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Most characters of the hub's answer kept in a dead letter's reason or a retry's error.
pub const MAX_REASON_CHARS: usize = 1024;
/// Largest token file accepted.
pub const MAX_TOKEN_BYTES: u64 = 16 * 1024;

/// What a request to the hub came to, for the whole batch it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// 2xx: the hub has every event of the batch.
    Accepted,
    /// Not now; after `after` if the hub said so.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// A 4xx that blames the content: something in the batch is refused.
    Refused { reason: String },
}

/// Sends one batch to the hub. The real one is [`HttpSink`]; tests script one.
pub trait Post: Send {
    fn post(&mut self, events: &[Event]) -> impl Future<Output = Answer> + Send;
    /// The sink's name, for the log.
    fn name(&self) -> &str;
}

/// Deliver `batch` through `post`, splitting refused batches until the refused events are
/// isolated. Parts go out in order, depth first; the first retry stops the delivery, and it and
/// every event after it get that retry (nothing after it is sent, so nothing is delivered out of
/// order or twice). Returns one outcome per event, in order. A batch of n events with one
/// refused event costs at most 2·⌈log2 n⌉ + 1 requests, and never more than 2n − 1.
pub async fn deliver_split<P: Post>(post: &mut P, batch: &[Event]) -> Vec<Outcome> {
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(batch.len());
    let mut todo: VecDeque<(usize, usize)> = VecDeque::new();
    if !batch.is_empty() {
        todo.push_back((0, batch.len()));
    }
    while let Some((start, end)) = todo.pop_front() {
        let part = batch.get(start..end).unwrap_or_default();
        match post.post(part).await {
            Answer::Accepted => {
                outcomes.extend(std::iter::repeat_n(Outcome::Delivered, part.len()));
            }
            Answer::Refused { reason } if part.len() <= 1 => {
                outcomes.push(Outcome::Rejected { reason });
            }
            Answer::Refused { reason } => {
                let mid = start + part.len() / 2;
                debug!(sink = %post.name(), events = part.len(), reason = %reason, "The hub refused a batch; sending its halves on their own to find the refused events.");
                todo.push_front((mid, end));
                todo.push_front((start, mid));
            }
            Answer::Retry { after, error } => {
                let rest = batch.len().saturating_sub(outcomes.len());
                outcomes.extend(std::iter::repeat_n(Outcome::Retry { after, error }, rest));
                break;
            }
        }
    }
    outcomes
}

/// The `Idempotency-Key` of a batch: the first 16 bytes of SHA-256 over a fixed label and the
/// events' ids (16 bytes each, in batch order), written as a UUID of version 8 (RFC 9562
/// "custom"), e.g. `3f2a…-…-8…`. Deterministic across restarts and releases; any change to the
/// list of ids (one more, one less, another order) gives another key.
pub fn idempotency_key(batch: &[Event]) -> String {
    let mut digest = ring::digest::Context::new(&ring::digest::SHA256);
    digest.update(b"tallyman batch v1\n");
    for event in batch {
        digest.update(event.id().as_bytes());
    }
    let digest = digest.finish();
    let mut bytes = [0u8; 16];
    for (b, d) in bytes.iter_mut().zip(digest.as_ref()) {
        *b = *d;
    }
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

/// The wait a `Retry-After` value asks for at `now`: delay-seconds or an HTTP date (RFC 9110
/// §10.2.3, all three date formats). `None` when absent, unreadable, zero or in the past (the
/// sink's own backoff applies then, so a hub answering `Retry-After: 0` cannot make the agent
/// spin). Capped at [`crate::backoff::MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only an overflow can fail, and that is "very long".
        Duration::from_secs(value.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).ok()?
    };
    (!wait.is_zero()).then(|| wait.min(crate::backoff::MAX_RETRY_AFTER))
}

/// The hub's answer as text that is safe in a log line or a dead letter: invalid UTF-8
/// replaced, control characters escaped (`\n`, `\u{1b}` …), at most `max` characters kept
/// (then `…`).
pub fn escape_answer(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut out = String::with_capacity(text.len().min(max) + 8);
    for (n, c) in text.chars().enumerate() {
        if n >= max {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What one answer means. `body` is the hub's answer, already escaped; `retry_after` and
/// `location` are those headers when present.
pub fn classify(
    status: StatusCode,
    retry_after: Option<&str>,
    location: Option<&str>,
    body: &str,
    now: SystemTime,
) -> Answer {
    let code = status.as_u16();
    if status.is_success() {
        return Answer::Accepted;
    }
    let status_text = match status.canonical_reason() {
        Some(r) => format!("HTTP {code} {r}"),
        None => format!("HTTP {code}"),
    };
    let answer = if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    };
    let retry = |error: String| Answer::Retry {
        after: retry_after.and_then(|v| parse_retry_after(v, now)),
        error,
    };
    match code {
        401 | 403 => retry(format!(
            "the hub refused the gateway's credentials ({status_text}{answer}); check the token \
             in `token_file` (it is read again as soon as it changes)"
        )),
        404 | 405 | 410 | 415 | 426 => retry(format!(
            "the hub does not take events at this endpoint ({status_text}{answer}); check \
             `endpoint`"
        )),
        408 | 409 | 425 | 429 => retry(format!("the hub asked to retry ({status_text}{answer})")),
        400..=499 => Answer::Refused {
            reason: format!("the hub refused it: {status_text}{answer}"),
        },
        300..=399 => retry(format!(
            "the hub answered with a redirect ({status_text}) to {}; redirects are not \
             followed: set `endpoint` to the final URL",
            location.unwrap_or("nowhere")
        )),
        500..=599 => retry(format!("the hub failed ({status_text}{answer})")),
        _ => retry(format!(
            "the hub gave an unexpected answer ({status_text}{answer})"
        )),
    }
}

/// Why the sink cannot talk to the hub yet. Each variant names the file or the step.
#[derive(Debug, thiserror::Error)]
pub enum HttpSinkError {
    #[error("reading the hub's CA bundle {path}: {source}")]
    ReadCa {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("reading the hub's CA bundle {path}: {message}")]
    ParseCa { path: PathBuf, message: String },
    #[error("reading the hub's CA bundle {path}: no certificates in it")]
    EmptyCa { path: PathBuf },
    #[error(
        "no CA certificates found in the system's trust store (install ca-certificates, or set \
         `ca_file` in the sink)"
    )]
    NoSystemRoots,
    #[error("setting up TLS for the hub: {0}")]
    Tls(String),
    #[error("setting up the HTTP client: {0}")]
    Client(String),
    #[error("reading the token file {path}: {source}")]
    ReadToken {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the token file {path} may be read or written by every user of the gateway (mode \
         {mode:04o}); it is not used until only its owner and group can (chmod o-rwx)"
    )]
    TokenWorldAccessible { path: PathBuf, mode: u32 },
    #[error("the token file {path} is empty")]
    TokenEmpty { path: PathBuf },
    #[error("the token file {path} is larger than {MAX_TOKEN_BYTES} bytes: it is not a token")]
    TokenTooLarge { path: PathBuf },
    #[error(
        "the token in {path} cannot be sent in a header (it has control characters or non-ASCII \
         text)"
    )]
    TokenNotHeader { path: PathBuf },
}

/// What identifies a version of a file without reading it: a change of content, a rewrite, a
/// rename over it or a chmod changes at least one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mode: u32,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mode: meta.mode(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The bearer token of `token_file`, read again whenever the file's stamp changes. File
/// timestamps are coarse (a kernel tick), so two writes of the same length within one tick look
/// alike: a file read less than [`RACY`] after its last change is read again at the next check
/// until it is older.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    cached: Option<CachedToken>,
    /// Read again at the next request whatever the stamp says (after a 401 or 403).
    stale: bool,
}

#[derive(Debug)]
struct CachedToken {
    stamp: Stamp,
    /// The stamp was taken when the file was old enough for it to be trusted.
    settled: bool,
    header: HeaderValue,
}

/// How old a file must be for its stamp to tell every later change.
const RACY: Duration = Duration::from_secs(1);

impl TokenFile {
    fn new(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            cached: None,
            stale: false,
        }
    }

    /// The `Authorization` header value, from the cache unless the file changed.
    fn header(&mut self) -> Result<HeaderValue, HttpSinkError> {
        let meta = std::fs::metadata(&self.path).map_err(|source| HttpSinkError::ReadToken {
            path: self.path.clone(),
            source,
        })?;
        if let Some(c) = &self.cached {
            if c.settled && !self.stale && c.stamp == Stamp::of(&meta) {
                return Ok(c.header.clone());
            }
        }
        let read_at = SystemTime::now();
        let (stamp, mtime, header) = read_token(&self.path)?;
        let settled = mtime.is_some_and(|m| m + RACY < read_at);
        let changed = self.cached.as_ref().is_some_and(|c| c.header != header);
        if changed {
            info!(path = %self.path.display(), "The token file changed; requests now carry the new token.");
        }
        self.stale = false;
        self.cached = Some(CachedToken {
            stamp,
            settled,
            header: header.clone(),
        });
        Ok(header)
    }
}

/// Read a token file: permissions checked on the open file, at most [`MAX_TOKEN_BYTES`], the
/// trailing line break dropped. Returns its stamp, its modification time and the header value.
fn read_token(path: &Path) -> Result<(Stamp, Option<SystemTime>, HeaderValue), HttpSinkError> {
    use std::io::Read;
    let read_err = |source| HttpSinkError::ReadToken {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_err)?;
    let meta = file.metadata().map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o006 != 0 {
        return Err(HttpSinkError::TokenWorldAccessible {
            path: path.to_owned(),
            mode,
        });
    }
    if meta.len() > MAX_TOKEN_BYTES {
        return Err(HttpSinkError::TokenTooLarge {
            path: path.to_owned(),
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_TOKEN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_TOKEN_BYTES {
        return Err(HttpSinkError::TokenTooLarge {
            path: path.to_owned(),
        });
    }
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
        if bytes.last() == Some(&b'\r') {
            bytes.pop();
        }
    }
    if bytes.is_empty() {
        return Err(HttpSinkError::TokenEmpty {
            path: path.to_owned(),
        });
    }
    let visible = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    let mut value = b"Bearer ".to_vec();
    value.extend_from_slice(&bytes);
    let mut header = HeaderValue::from_bytes(&value)
        .ok()
        .filter(|_| visible)
        .ok_or_else(|| HttpSinkError::TokenNotHeader {
            path: path.to_owned(),
        })?;
    header.set_sensitive(true);
    Ok((Stamp::of(&meta), meta.modified().ok(), header))
}

/// The hub's roots: the PEM bundle of `ca_file`, or the system's trust store.
fn roots(ca_file: Option<&Path>) -> Result<RootCertStore, HttpSinkError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| HttpSinkError::ReadCa {
                path: path.to_owned(),
                source,
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| HttpSinkError::ParseCa {
                    path: path.to_owned(),
                    message: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| HttpSinkError::ParseCa {
                    path: path.to_owned(),
                    message: format!("a certificate is not a usable trust anchor: {e}"),
                })?;
            }
            if roots.is_empty() {
                return Err(HttpSinkError::EmptyCa {
                    path: path.to_owned(),
                });
            }
        }
        None => {
            // Unparsable system certificates are skipped: one bad file must not take the
            // others down.
            let found = rustls_native_certs::load_native_certs();
            let (_added, _ignored) = roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(HttpSinkError::NoSystemRoots);
            }
        }
    }
    Ok(roots)
}

/// The HTTP client: rustls on ring with `roots`, HTTP/1.1, no redirects, no cookies, every
/// request bounded by `timeout`. Proxies from the service's environment (`HTTPS_PROXY`,
/// `NO_PROXY` …) are honoured.
fn build_client(roots: RootCertStore, timeout: Duration) -> Result<reqwest::Client, HttpSinkError> {
    let tls =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpSinkError::Tls(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .http1_only()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(2)
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("tallyman/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| HttpSinkError::Client(error_chain(&e)))
}

/// The client and the CA file version it was built from.
#[derive(Debug)]
struct BuiltClient {
    client: reqwest::Client,
    ca_stamp: Option<Stamp>,
}

/// The HTTPS hub sink.
#[derive(Debug)]
pub struct HttpSink {
    name: String,
    endpoint: String,
    ca_file: Option<PathBuf>,
    timeout: Duration,
    token: Option<TokenFile>,
    client: Option<BuiltClient>,
}

impl HttpSink {
    /// A sink for `settings`. Nothing here fails: the CA bundle and the token file are read
    /// now so that a problem shows in the log at start, and again before each delivery until
    /// they are right (events wait in the spool meanwhile).
    pub fn new(name: &str, settings: &tallyman_config::HttpSink) -> HttpSink {
        let mut sink = HttpSink {
            name: name.to_owned(),
            endpoint: settings.endpoint.as_str().to_owned(),
            ca_file: settings.ca_file.clone(),
            timeout: settings.timeout,
            token: settings.token_file.clone().map(TokenFile::new),
            client: None,
        };
        let built = sink.ca_stamp().and_then(|stamp| {
            let client = build_client(roots(sink.ca_file.as_deref())?, sink.timeout)?;
            Ok(BuiltClient {
                client,
                ca_stamp: stamp,
            })
        });
        match built {
            Ok(b) => sink.client = Some(b),
            Err(e) => {
                warn!(sink = %sink.name, error = %e, "The hub sink cannot connect yet; events wait in the spool.");
            }
        }
        if let Some(token) = &mut sink.token {
            if let Err(e) = token.header() {
                warn!(sink = %sink.name, error = %e, "The hub sink has no usable token yet; events wait in the spool.");
            }
        }
        sink
    }

    /// The stamp of the CA file (`None` for the system's roots).
    fn ca_stamp(&self) -> Result<Option<Stamp>, HttpSinkError> {
        let Some(path) = &self.ca_file else {
            return Ok(None);
        };
        let meta = std::fs::metadata(path).map_err(|source| HttpSinkError::ReadCa {
            path: path.clone(),
            source,
        })?;
        Ok(Some(Stamp::of(&meta)))
    }

    /// The client, built again (off the async threads: the system's trust store is many
    /// files) when the CA file changed since it was built.
    async fn client(&mut self) -> Result<reqwest::Client, HttpSinkError> {
        let ca_stamp = self.ca_stamp()?;
        if let Some(built) = &self.client {
            if built.ca_stamp == ca_stamp {
                return Ok(built.client.clone());
            }
            info!(sink = %self.name, "The hub's CA bundle changed; connecting with the new one.");
        }
        let (ca_file, timeout) = (self.ca_file.clone(), self.timeout);
        let client =
            tokio::task::spawn_blocking(move || build_client(roots(ca_file.as_deref())?, timeout))
                .await
                .map_err(|e| HttpSinkError::Client(format!("the set-up task failed: {e}")))??;
        self.client = Some(BuiltClient {
            client: client.clone(),
            ca_stamp,
        });
        Ok(client)
    }

    /// Where the trusted CAs come from, for error messages.
    fn trust(&self) -> String {
        match &self.ca_file {
            Some(p) => p.display().to_string(),
            None => "the system's trust store".to_owned(),
        }
    }

    /// One request carrying `events`.
    async fn post_once(&mut self, events: &[Event]) -> Answer {
        let retry = |error: String| Answer::Retry { after: None, error };
        let client = match self.client().await {
            Ok(c) => c,
            Err(e) => return retry(e.to_string()),
        };
        let authorization = match self.token.as_mut().map(TokenFile::header) {
            None => None,
            Some(Ok(h)) => Some(h),
            Some(Err(e)) => return retry(e.to_string()),
        };
        let body = match serde_json::to_vec(events) {
            Ok(b) => b,
            Err(e) => return retry(format!("writing the batch as JSON: {e}")),
        };
        let key = idempotency_key(events);
        if tracing::enabled!(tracing::Level::DEBUG) {
            let ids: Vec<String> = events.iter().map(|e| e.id().to_string()).collect();
            debug!(sink = %self.name, endpoint = %self.endpoint, events = events.len(), idempotency_key = %key, event_id = %ids.join(","), "Posting a batch to the hub.");
        }
        let mut request = client
            .post(&self.endpoint)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .header("Idempotency-Key", &key)
            .body(body);
        if let Some(h) = authorization {
            request = request.header(header::AUTHORIZATION, h);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => return retry(self.explain(&e)),
        };
        let status = response.status();
        let retry_after = header_text(&response, header::RETRY_AFTER);
        let location = header_text(&response, header::LOCATION);
        let (bytes, cut) = read_bounded(&mut response, MAX_ANSWER_BYTES).await;
        let mut answer_text = escape_answer(&bytes, MAX_REASON_CHARS);
        if let Some(cut) = &cut {
            if !status.is_success() {
                answer_text.push_str(&format!(" [answer cut short: {cut}]"));
            }
        }
        let answer = classify(
            status,
            retry_after.as_deref(),
            location.as_deref(),
            &answer_text,
            SystemTime::now(),
        );
        debug!(sink = %self.name, status = status.as_u16(), idempotency_key = %key, events = events.len(), "The hub answered.");
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            if let Some(t) = &mut self.token {
                t.stale = true;
            }
        }
        answer
    }

    /// A failed request in words: timeouts, TLS and connection problems named as such.
    fn explain(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "no answer from the hub at {} within {} s (it may have taken the batch; its \
                 events are sent again)",
                self.endpoint,
                self.timeout.as_secs_f64()
            );
        }
        if let Some(tls) = crate::mqtt::tls::find_rustls(e) {
            return format!(
                "TLS with the hub at {}: {}",
                self.endpoint,
                explain_tls(tls, &self.trust())
            );
        }
        if e.is_connect() {
            return format!(
                "cannot connect to the hub at {}: {}",
                self.endpoint,
                error_chain(e)
            );
        }
        format!(
            "the request to the hub at {} failed before its answer arrived (it may have taken \
             the batch; its events are sent again): {}",
            self.endpoint,
            error_chain(e)
        )
    }
}

impl Post for HttpSink {
    fn post(&mut self, events: &[Event]) -> impl Future<Output = Answer> + Send {
        self.post_once(events)
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Sink for HttpSink {
    fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a> {
        Box::pin(deliver_split(self, batch))
    }
}

fn header_text(response: &reqwest::Response, name: header::HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| escape_answer(v.as_bytes(), 256))
}

/// Up to `max` bytes of the body (the rest is left unread: the connection is then dropped
/// rather than reused), and the error that ended it early if the connection failed.
async fn read_bounded(response: &mut reqwest::Response, max: usize) -> (Vec<u8>, Option<String>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                if chunk.len() >= room {
                    body.extend_from_slice(chunk.get(..room).unwrap_or_default());
                    return (body, None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, None),
            Err(e) => return (body, Some(error_chain(&e))),
        }
    }
}

/// An error and its causes, `outer: inner: …`, each once (bounded: chains are short, and a
/// cycle must not hang the agent).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

/// A TLS failure in words for whoever must fix it; `trust` names where the trusted CAs come
/// from.
fn explain_tls(error: &rustls::Error, trust: &str) -> String {
    match error {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => format!(
                "the hub's certificate is not trusted: it is not signed by a CA in {trust} \
                 (unknown issuer); check `ca_file`"
            ),
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "the hub's certificate is not valid for the endpoint's host name (check the host \
                 in `endpoint` and the certificate's subject alternative names)"
                    .to_owned()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "the hub's certificate has expired".to_owned()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the hub's certificate is not valid yet (is the gateway's clock right?)".to_owned()
            }
            other => format!("the hub's certificate is not trusted: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("the hub ended the TLS handshake (TLS alert {alert:?})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
