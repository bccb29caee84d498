//! A fake serial scanner: a pair of pseudo-terminals joined by socat. The agent opens
//! `DIR/device`; the test writes scans to, and reads feedback bytes from, `DIR/scanner`.
//! Stopping socat destroys both terminals (the agent reads end of file and the links vanish);
//! starting it again recreates them under the same names, as a re-plugged USB scanner does.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::agent::signal;

/// The socat binary (Debian's package puts it here).
const SOCAT: &str = "/usr/bin/socat";

/// socat running a pty pair with links in a directory.
#[derive(Debug)]
pub struct PtyPair {
    dir: PathBuf,
    socat: Option<Child>,
}

impl PtyPair {
    /// Start socat with links `dir/scanner` and `dir/device`; returns once both exist.
    pub fn start(dir: &Path) -> PtyPair {
        let mut pair = PtyPair {
            dir: dir.to_path_buf(),
            socat: None,
        };
        pair.restart();
        pair
    }

    /// The end the agent opens.
    pub fn device(&self) -> PathBuf {
        self.dir.join("device")
    }

    /// The end the test plays the scanner on.
    pub fn scanner_path(&self) -> PathBuf {
        self.dir.join("scanner")
    }

    /// Start socat again (after [`PtyPair::stop`]): new terminals under the same names.
    pub fn restart(&mut self) {
        assert!(self.socat.is_none(), "socat is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("socat.log"))
            .expect("opening the socat log");
        let link = |name: &str| {
            format!(
                "pty,raw,echo=0,link={},mode=666",
                self.dir.join(name).display()
            )
        };
        let child = Command::new(SOCAT)
            .args(["-d", "-d"])
            .arg(link("scanner"))
            .arg(link("device"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting socat");
        self.socat = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(self.device().exists() && self.scanner_path().exists()) {
            assert!(
                Instant::now() < deadline,
                "socat did not create the pty links in {}",
                self.dir.display()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stop socat (SIGTERM, so that it removes its links) and wait until it is gone.
    pub fn stop(&mut self) {
        let Some(mut child) = self.socat.take() else {
            return;
        };
        let pid = i32::try_from(child.id()).expect("pid fits");
        signal(pid, "TERM").expect("signalling socat");
        child.wait().expect("waiting for socat");
        // SIGTERM makes socat unlink its links; never leave stale ones for the next start.
        for link in [self.device(), self.scanner_path()] {
            let _ = std::fs::remove_file(link);
        }
    }

    /// Open the scanner end: writes are scans, reads are the agent's feedback bytes.
    pub fn scanner(&self) -> Scanner {
        Scanner::open(&self.scanner_path())
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        if let Some(mut child) = self.socat.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Bytes read back from the scanner end, shared with the reader thread.
#[derive(Debug, Default)]
pub struct Received {
    pub bytes: Vec<u8>,
    /// The terminal went away (socat stopped).
    pub closed: bool,
}

/// The scanner end of the pair, with a thread reading feedback bytes as they come (so that
/// the agent's writes never back up).
#[derive(Debug)]
pub struct Scanner {
    tty: std::fs::File,
    received: Arc<(Mutex<Received>, Condvar)>,
    /// Ends by itself when the terminal goes away (socat stopped); never joined.
    _reader: JoinHandle<()>,
}

impl Scanner {
    fn open(path: &Path) -> Scanner {
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
        let mut input = tty.try_clone().expect("cloning the scanner fd");
        let received: Arc<(Mutex<Received>, Condvar)> = Arc::default();
        let shared = Arc::clone(&received);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                // End of file or an error (EIO once socat is gone): the terminal is gone.
                let n = match input.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let (m, cv) = &*shared;
                m.lock()
                    .expect("received lock")
                    .bytes
                    .extend_from_slice(&buf[..n]);
                cv.notify_all();
            }
            let (m, cv) = &*shared;
            m.lock().expect("received lock").closed = true;
            cv.notify_all();
        });
        Scanner {
            tty,
            received,
            _reader: reader,
        }
    }

    /// Send bytes as the scanner would (one write).
    pub fn send(&mut self, bytes: &[u8]) {
        self.tty
            .write_all(bytes)
            .expect("writing to the scanner pty");
        self.tty.flush().expect("flushing the scanner pty");
    }

    /// Wait until `cond` holds over the bytes read back so far, or `timeout` passes (false).
    pub fn wait(&self, timeout: Duration, cond: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.received;
        let mut r = m.lock().expect("received lock");
        loop {
            if cond(&r.bytes) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline || r.closed {
                return cond(&r.bytes);
            }
            r = cv.wait_timeout(r, deadline - now).expect("received lock").0;
        }
    }

    /// Wait until at least `n` bytes came back; returns them (all of them, maybe more).
    pub fn wait_bytes(&self, timeout: Duration, n: usize) -> Vec<u8> {
        self.wait(timeout, |b| b.len() >= n);
        self.received()
    }

    /// Everything read back so far.
    pub fn received(&self) -> Vec<u8> {
        self.received.0.lock().expect("received lock").bytes.clone()
    }
}
