//! A stand-in for systemd's end of the notification protocol: a unix datagram socket the test
//! binds and names in the agent's `NOTIFY_SOCKET`, and every message the agent sends to it, in
//! order, each with the instant it arrived.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One notification: its `KEY=value` lines, and when it arrived.
#[derive(Debug, Clone)]
pub struct Message {
    pub lines: Vec<String>,
    pub at: Instant,
}

impl Message {
    /// Whether the message carries the assignment `line` (`READY=1`).
    pub fn has(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }

    /// The value of `STATUS=`, if it carries one.
    pub fn status(&self) -> Option<&str> {
        self.lines.iter().find_map(|l| l.strip_prefix("STATUS="))
    }
}

type Shared = Arc<(Mutex<Vec<Message>>, Condvar)>;

/// The manager's socket and the messages received so far.
#[derive(Debug)]
pub struct Manager {
    path: PathBuf,
    messages: Shared,
    done: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Manager {
    /// Bind `DIR/notify` and collect what arrives.
    pub fn bind(dir: &Path) -> Manager {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).expect("binding the notify socket");
        // The reader looks at `done` this often; messages are taken as they come.
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("read timeout");
        let messages: Shared = Arc::default();
        let done = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (Arc::clone(&messages), Arc::clone(&done));
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = socket.recv(&mut buf) else {
                    continue;
                };
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let message = Message {
                    lines: text.lines().map(str::to_owned).collect(),
                    at: Instant::now(),
                };
                let (m, cv) = &*shared;
                m.lock().expect("messages lock").push(message);
                cv.notify_all();
            }
        });
        Manager {
            path,
            messages,
            done,
            reader: Some(reader),
        }
    }

    /// The value for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.0.lock().expect("messages lock").clone()
    }

    /// Wait until `cond` holds over the messages so far, or the deadline passes (false).
    pub fn wait_for(&self, timeout: Duration, cond: impl Fn(&[Message]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.messages;
        let mut messages = m.lock().expect("messages lock");
        loop {
            if cond(&messages) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            messages = cv
                .wait_timeout(messages, deadline - now)
                .expect("messages lock")
                .0;
        }
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
