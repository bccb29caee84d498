//! A TCP proxy on loopback between a client (the agent) and a broker, for fault tests.
//!
//! Bytes from the client go to the broker unchanged. Bytes from the broker are split into MQTT
//! packets (fixed header and remaining length) so that the proxy can swallow the broker's
//! PUBACKs ([`Proxy::swallow_pubacks`]) while everything else (CONNACK, PINGRESP, inbound
//! publishes) still passes: to the client the broker looks alive but never acknowledges a
//! publish. [`Proxy::cut`] closes every open connection at once, as a network failure would.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// MQTT control packet type of PUBACK (the high nibble of the first byte).
const PUBACK: u8 = 4;

#[derive(Debug, Default)]
struct Shared {
    swallow: AtomicBool,
    swallowed: AtomicU64,
    accepted: AtomicU64,
    stop: AtomicBool,
    /// Both ends of every open connection, for [`Proxy::cut`].
    open: Mutex<Vec<TcpStream>>,
}

/// A running proxy; stops accepting and cuts its connections on drop.
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listen on a free loopback port and forward to the broker on `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(broker) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    // The broker is down: the client sees the connection closed.
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = broker.set_nodelay(true);
                s.accepted.fetch_add(1, Ordering::SeqCst);
                {
                    let mut open = s.open.lock().expect("proxy lock");
                    open.push(client.try_clone().expect("clone"));
                    open.push(broker.try_clone().expect("clone"));
                }
                let (c2, b2) = (
                    client.try_clone().expect("clone"),
                    broker.try_clone().expect("clone"),
                );
                std::thread::spawn(move || upstream_pump(client, broker));
                let s2 = Arc::clone(&s);
                std::thread::spawn(move || downstream_pump(b2, c2, &s2));
            }
        });
        Proxy { port, shared }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drop (`true`) or forward (`false`) the broker's PUBACKs from now on.
    pub fn swallow_pubacks(&self, on: bool) {
        self.shared.swallow.store(on, Ordering::SeqCst);
    }

    /// PUBACKs swallowed so far.
    pub fn swallowed(&self) -> u64 {
        self.shared.swallowed.load(Ordering::SeqCst)
    }

    /// Connections accepted and forwarded so far.
    pub fn connections(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    /// Close every open connection, both ways.
    pub fn cut(&self) {
        for s in self.shared.open.lock().expect("proxy lock").drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        self.cut();
    }
}

/// Client → broker, unchanged.
fn upstream_pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Broker → client, packet by packet, PUBACKs dropped while swallowing.
fn downstream_pump(mut from: TcpStream, mut to: TcpStream, s: &Shared) {
    let _ = forward_packets(&mut from, &mut to, s);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

fn forward_packets(from: &mut TcpStream, to: &mut TcpStream, s: &Shared) -> std::io::Result<()> {
    loop {
        let mut packet = Vec::with_capacity(16);
        let mut first = [0u8; 1];
        from.read_exact(&mut first)?;
        packet.push(first[0]);
        // Remaining length: up to four bytes, seven bits each, high bit = more.
        let mut remaining = 0usize;
        for i in 0..4 {
            let mut b = [0u8; 1];
            from.read_exact(&mut b)?;
            packet.push(b[0]);
            remaining |= usize::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        let header = packet.len();
        packet.resize(header + remaining, 0);
        from.read_exact(&mut packet[header..])?;
        if first[0] >> 4 == PUBACK && s.swallow.load(Ordering::SeqCst) {
            s.swallowed.fetch_add(1, Ordering::SeqCst);
            continue;
        }
        to.write_all(&packet)?;
    }
}
