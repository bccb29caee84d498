//! Injected faults and the connections they cut.
//!
//! A fault is one-shot: the first call (JSON-RPC `common`/`object` or JSON-2) that matches
//! its model and method takes it. Cutting a connection is done below hyper: every accepted
//! connection goes through [`Cuttable`], a stream the handler switches off (by the peer's
//! address) so that no byte of the answer leaves: the client sees the connection close with
//! no status line, as when a proxy or the server dies after the commit.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A one-shot fault for the next call that matches `model` and `method` (`None` = any).
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub model: Option<String>,
    pub method: Option<String>,
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next call, whatever it is.
    pub fn any(kind: FaultKind) -> Fault {
        Fault {
            model: None,
            method: None,
            kind,
        }
    }

    /// A fault for the next call of `model.method`.
    pub fn on(model: &str, method: &str, kind: FaultKind) -> Fault {
        Fault {
            model: Some(model.to_owned()),
            method: Some(method.to_owned()),
            kind,
        }
    }

    fn matches(&self, model: &str, method: &str) -> bool {
        self.model.as_deref().is_none_or(|m| m == model)
            && self.method.as_deref().is_none_or(|m| m == method)
    }
}

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// Run the call (its changes are committed), then close the connection without an
    /// answer.
    CommitThenDrop,
    /// A `psycopg2.errors.SerializationFailure` after the server's own retries: nothing
    /// committed (JSON-RPC error; JSON-2 500).
    Serialization,
    /// Rows could not be locked: 19 `odoo.exceptions.LockError` (JSON-2 409); ≤18 a JSON-RPC
    /// error `psycopg2.errors.LockNotAvailable`. Nothing committed.
    Lock,
    /// This HTTP status with an HTML body (as a proxy in front of Odoo answers); nothing
    /// committed.
    Status(u16),
    /// Run and commit the call, answer after this delay.
    Delay(Duration),
    /// The credentials are refused as if the key had expired (JSON-2 401 "Invalid apikey",
    /// JSON-RPC `AccessDenied`, `authenticate` → false). Nothing committed.
    Unauthorized,
}

/// Take the first fault matching `model.method`.
pub(crate) fn take(faults: &mut Vec<Fault>, model: &str, method: &str) -> Option<FaultKind> {
    let i = faults.iter().position(|f| f.matches(model, method))?;
    Some(faults.remove(i).kind)
}

/// A new API key: 40 hex digits (20 bytes, as `res.users.apikeys` makes them).
pub(crate) fn new_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::new();
    while out.len() < 40 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out.truncate(40);
    out
}

/// Switches of the open connections by peer address.
pub(crate) type Switches = Arc<Mutex<HashMap<SocketAddr, Arc<AtomicBool>>>>;

/// Cut the connection from `peer`: nothing more is written on it.
pub(crate) fn cut(switches: &Switches, peer: SocketAddr) {
    if let Some(s) = super::lock(switches).get(&peer) {
        s.store(true, Ordering::SeqCst);
    }
}

/// An acceptor wrapping every connection of `inner` in a [`Cuttable`] registered under the
/// peer's address.
#[derive(Clone)]
pub(crate) struct Cutting<A> {
    pub inner: A,
    pub switches: Switches,
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
        let switch = Arc::new(AtomicBool::new(false));
        if let Ok(peer) = stream.peer_addr() {
            super::lock(&self.switches).insert(peer, Arc::clone(&switch));
        }
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Cuttable {
                    inner: stream,
                    switch,
                },
                service,
            ))
        })
    }
}

/// A connection whose writes fail once its switch is on.
pub(crate) struct Cuttable<T> {
    inner: T,
    switch: Arc<AtomicBool>,
}

fn cut_error() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "connection cut by the fake Odoo")
}

impl<T: AsyncRead + Unpin> AsyncRead for Cuttable<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.switch.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Cuttable<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.switch.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.switch.load(Ordering::SeqCst) {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
