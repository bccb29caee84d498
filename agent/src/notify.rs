//! The agent and its service manager: systemd's notification protocol (`sd_notify(3)`).
//!
//! Under systemd (`Type=notify`) the agent says `READY=1` once the start-up configuration is
//! applied, keeps a one-line `STATUS=` up to date, sends `WATCHDOG=1` while it is really alive
//! and `STOPPING=1` when shutdown starts. Each message is one datagram of `KEY=value` lines to
//! the unix socket named by `NOTIFY_SOCKET` (a path, or an abstract name when it starts with
//! `@`). Without `NOTIFY_SOCKET` every call does nothing, so the agent behaves the same
//! outside systemd.
//!
//! Written here rather than taken from a crate: the protocol is a few lines over std's
//! `UnixDatagram`, and the crates at hand either ignore abstract socket names or bring an FFI
//! layer for features the agent does not use (descriptor store, socket activation).
//!
//! # What a watchdog ping means
//!
//! [`watchdog`] runs as its own task. Every period (half of `WATCHDOG_USEC`, at most
//! [`STATUS_EVERY`]) it asks the spool's committer to answer ([`Spool::ping`]) and pings only
//! when the answer comes within the period. So a ping says: the async runtime still schedules
//! tasks and its timers fire, and the thread that makes every event durable is taking
//! requests and finishing commits (not deadlocked, not stuck in a write that never returns).
//! Before the spool is open (reading the configuration, the spool's self-check) only the
//! runtime is vouched for. A spool that *refuses* events (full, or failed) still answers: the
//! watchdog restarts a wedged agent, it does not turn a full disk into a restart loop; health
//! reports those. The same tick refreshes `STATUS=` from the health registry, sent only when
//! it changed.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::health::{Registry, Snapshot};
use crate::spool::{Spool, SpoolError};

/// The longest `STATUS=` line sent, in bytes (longer ones are cut at a character boundary).
pub const MAX_STATUS_BYTES: usize = 400;
/// How often the status is refreshed when the watchdog is off or slower than this.
pub const STATUS_EVERY: Duration = Duration::from_secs(10);
/// The shortest watchdog period honoured (a smaller `WATCHDOG_USEC` would spin).
const MIN_PERIOD: Duration = Duration::from_millis(50);
/// How long sending one notification may block when the manager's queue is full.
const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Sends notifications to the service manager, or nothing when there is none.
#[derive(Debug, Clone, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
    watchdog: Option<Duration>,
}

#[derive(Debug)]
struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
    /// A failure was logged as a warning; the next ones go to debug until a send succeeds.
    failing: AtomicBool,
}

impl Notifier {
    /// The notifier the environment describes: `NOTIFY_SOCKET`, `WATCHDOG_USEC` and
    /// `WATCHDOG_PID`. A socket that cannot be used is reported once and leaves the notifier
    /// silent: the agent runs without its manager's notifications rather than not at all.
    pub fn from_env() -> Notifier {
        let watchdog = watchdog_period(
            std::env::var("WATCHDOG_USEC").ok().as_deref(),
            std::env::var("WATCHDOG_PID").ok().as_deref(),
            std::process::id(),
        );
        match std::env::var_os("NOTIFY_SOCKET") {
            None => Notifier::default(),
            Some(name) => match Notifier::to_socket(&name) {
                Ok(mut notifier) => {
                    notifier.watchdog = watchdog;
                    notifier
                }
                Err(e) => {
                    // No subscriber exists yet: the configuration is not read. Say it on stderr,
                    // which the journal keeps.
                    eprintln!(
                        "tallyman: NOTIFY_SOCKET={}: {e}; running without service notifications",
                        name.to_string_lossy()
                    );
                    Notifier::default()
                }
            },
        }
    }

    /// A notifier that sends to the socket `name` (`NOTIFY_SOCKET`'s syntax), without watchdog.
    pub fn to_socket(name: &OsStr) -> io::Result<Notifier> {
        let addr = socket_addr(name)?;
        let socket = UnixDatagram::unbound()?;
        socket.set_write_timeout(Some(SEND_TIMEOUT))?;
        Ok(Notifier {
            target: Some(Arc::new(Target {
                socket,
                addr,
                failing: AtomicBool::new(false),
            })),
            watchdog: None,
        })
    }

    /// Whether there is a manager to notify.
    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// How often the manager expects `WATCHDOG=1` (half its timeout), when it does.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.target.as_ref().and(self.watchdog)
    }

    /// `READY=1`: the start-up configuration runs.
    pub fn ready(&self, status: &str) {
        self.send(&message(&[("READY", "1")], Some(status)));
    }

    /// `STATUS=`: what the agent is doing, one line.
    pub fn status(&self, status: &str) {
        self.send(&message(&[], Some(status)));
    }

    /// `STOPPING=1`: shutdown has started.
    pub fn stopping(&self, status: &str) {
        self.send(&message(&[("STOPPING", "1")], Some(status)));
    }

    /// `WATCHDOG=1`: still alive.
    pub fn watchdog(&self) {
        self.send(&message(&[("WATCHDOG", "1")], None));
    }

    fn send(&self, message: &str) {
        let Some(target) = &self.target else {
            return;
        };
        match target.socket.send_to_addr(message.as_bytes(), &target.addr) {
            Ok(_) => target.failing.store(false, Ordering::Relaxed),
            Err(e) => {
                let head = message.lines().next().unwrap_or_default();
                if target.failing.swap(true, Ordering::Relaxed) {
                    debug!(error = %e, "Service notification not sent ({head}).");
                } else {
                    warn!(error = %e, "Service notification not sent ({head}); systemd may consider the agent hung.");
                }
            }
        }
    }
}

/// The address `NOTIFY_SOCKET` names: a path, or an abstract name after `@`.
fn socket_addr(name: &OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = name.as_bytes();
    match bytes.split_first() {
        None => Err(io::Error::new(io::ErrorKind::InvalidInput, "empty")),
        Some((b'@', abstract_name)) => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name)
        }
        Some((b'/', _)) => SocketAddr::from_pathname(name),
        Some(_) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "neither an absolute path nor an abstract name (@…)",
        )),
    }
}

/// Half of `WATCHDOG_USEC`, when it is set, valid, not zero, and meant for this process
/// (`WATCHDOG_PID` absent or equal to `own_pid`); never below [`MIN_PERIOD`].
pub fn watchdog_period(usec: Option<&str>, pid: Option<&str>, own_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(own_pid) {
            return None;
        }
    }
    Some((Duration::from_micros(usec) / 2).max(MIN_PERIOD))
}

/// One notification: the assignments, then `STATUS=` made one line and cut to
/// [`MAX_STATUS_BYTES`] (a newline in it would start another assignment).
pub fn message(fields: &[(&str, &str)], status: Option<&str>) -> String {
    let mut out = String::new();
    for (key, value) in fields {
        out.push_str(key);
        out.push('=');
        out.push_str(value);
        out.push('\n');
    }
    if let Some(status) = status {
        let mut line: String = status
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if line.len() > MAX_STATUS_BYTES {
            let mut end = MAX_STATUS_BYTES - '…'.len_utf8();
            while !line.is_char_boundary(end) {
                end -= 1;
            }
            line.truncate(end);
            line.push('…');
        }
        out.push_str("STATUS=");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// What the watchdog task looks at, filled in as start-up gets that far.
#[derive(Debug, Default)]
pub struct Vitals {
    spool: OnceLock<Spool>,
    /// The running parts' health, once the configuration is applied (status after that).
    running: OnceLock<Arc<Registry>>,
    /// Shutdown has started: the status is no longer refreshed.
    stopping: AtomicBool,
    last_status: Mutex<String>,
}

impl Vitals {
    pub fn new() -> Arc<Vitals> {
        Arc::default()
    }

    /// From now on a ping also means the spool's committer answers.
    pub fn spool_opened(&self, spool: &Spool) {
        // Set once; a second call would be the same spool.
        let _ = self.spool.set(spool.clone());
    }

    /// From now on the status is refreshed from `registry`.
    pub fn running(&self, registry: Arc<Registry>) {
        let _ = self.running.set(registry);
    }

    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::Relaxed);
    }
}

/// Start the watchdog and status task (see the module's documentation). It does nothing
/// without a manager; it runs until aborted.
pub fn watchdog(notifier: Notifier, vitals: Arc<Vitals>) -> Option<JoinHandle<()>> {
    if !notifier.is_active() {
        return None;
    }
    let watchdog = notifier.watchdog_period();
    let period = watchdog.map_or(STATUS_EVERY, |w| w.min(STATUS_EVERY));
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if watchdog.is_some() {
                match alive(&vitals, period).await {
                    Ok(()) => notifier.watchdog(),
                    Err(why) => warn!(error = %why, "Not telling systemd the agent is alive."),
                }
            }
            if vitals.stopping.load(Ordering::Relaxed) {
                continue;
            }
            if let Some(registry) = vitals.running.get() {
                let status = format!("Running: {}", summary(&registry.snapshot()));
                let mut last = vitals
                    .last_status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if *last != status {
                    notifier.status(&status);
                    *last = status;
                }
            }
        }
    }))
}

/// Ok when the spool's committer (once there is a spool) answers within `within`.
async fn alive(vitals: &Vitals, within: Duration) -> Result<(), String> {
    let Some(spool) = vitals.spool.get() else {
        return Ok(());
    };
    match tokio::time::timeout(within, spool.ping()).await {
        Ok(Ok(())) => Ok(()),
        // Closed on purpose at the end of shutdown: nothing is wedged.
        Ok(Err(SpoolError::Closed)) => Ok(()),
        Ok(Err(e)) => Err(format!("the spool: {e}")),
        Err(_) => Err(format!(
            "the spool's committer did not answer within {} ms",
            within.as_millis()
        )),
    }
}

/// The parts' states in one line: how many sources and sinks are in each state, naming those
/// that need attention, and the MQTT connection.
pub fn summary(snapshot: &Snapshot) -> String {
    let sources = by_state(snapshot.sources.iter().map(|(n, s)| (n, s.state)));
    let sinks = by_state(snapshot.sinks.iter().map(|(n, s)| (n, s.state.state)));
    let mut out = format!("sources {sources}; sinks {sinks}");
    if let Some(mqtt) = &snapshot.mqtt {
        out.push_str("; MQTT ");
        out.push_str(mqtt.state);
    }
    out
}

/// States worth naming the parts that are in them.
const NAMED_STATES: [&str; 5] = [
    "reopening",
    "waiting",
    "retrying",
    "stopped",
    "disconnected",
];

fn by_state<'a>(parts: impl Iterator<Item = (&'a String, &'static str)>) -> String {
    let mut states: Vec<(&'static str, Vec<&'a str>)> = Vec::new();
    for (name, state) in parts {
        match states.iter_mut().find(|(s, _)| *s == state) {
            Some((_, names)) => names.push(name),
            None => states.push((state, vec![name])),
        }
    }
    if states.is_empty() {
        return "none".to_string();
    }
    states
        .iter()
        .map(|(state, names)| {
            if NAMED_STATES.contains(state) {
                format!("{} {state} ({})", names.len(), names.join(", "))
            } else {
                format!("{} {state}", names.len())
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn the_watchdog_period_is_half_the_timeout_for_this_process_only() {
        assert_eq!(
            watchdog_period(Some("30000000"), None, 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(
            watchdog_period(Some("30000000"), Some("7"), 7),
            Some(Duration::from_secs(15))
        );
        assert_eq!(watchdog_period(Some("30000000"), Some("8"), 7), None);
        assert_eq!(watchdog_period(Some("30000000"), Some("x"), 7), None);
        assert_eq!(watchdog_period(None, Some("7"), 7), None);
        assert_eq!(watchdog_period(Some("0"), None, 7), None);
        assert_eq!(watchdog_period(Some("-5"), None, 7), None);
        assert_eq!(watchdog_period(Some("soon"), None, 7), None);
        assert_eq!(watchdog_period(Some("10"), None, 7), Some(MIN_PERIOD));
    }

    #[test]
    fn a_status_is_one_line_and_bounded() {
        assert_eq!(
            message(&[("READY", "1")], Some("Running: 2\nsources")),
            "READY=1\nSTATUS=Running: 2 sources\n"
        );
        assert_eq!(message(&[("WATCHDOG", "1")], None), "WATCHDOG=1\n");
        let long = "é".repeat(MAX_STATUS_BYTES);
        let sent = message(&[], Some(&long));
        let status = sent
            .strip_prefix("STATUS=")
            .unwrap()
            .strip_suffix('\n')
            .unwrap();
        assert!(status.len() <= MAX_STATUS_BYTES, "{}", status.len());
        assert!(status.ends_with('…'));
        assert_eq!(sent.lines().count(), 1);
    }

    #[test]
    fn socket_names_are_paths_or_abstract() {
        assert!(socket_addr(OsStr::new("/run/systemd/notify")).is_ok());
        assert!(socket_addr(OsStr::new("@tallyman-test")).is_ok());
        assert!(socket_addr(OsStr::new("")).is_err());
        assert!(socket_addr(OsStr::new("relative/notify")).is_err());
    }

    #[test]
    fn without_a_manager_nothing_is_sent_and_nothing_fails() {
        let silent = Notifier::default();
        assert!(!silent.is_active());
        assert_eq!(silent.watchdog_period(), None);
        silent.ready("Running");
        silent.watchdog();
        silent.stopping("Stopping");
    }

    fn receive(socket: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        let n = socket.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn notifications_reach_a_path_socket_and_an_abstract_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let manager = UnixDatagram::bind(&path).unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let notifier = Notifier::to_socket(path.as_os_str()).unwrap();
        notifier.ready("Running: test");
        notifier.watchdog();
        notifier.stopping("Stopping: SIGTERM");
        assert_eq!(receive(&manager), "READY=1\nSTATUS=Running: test\n");
        assert_eq!(receive(&manager), "WATCHDOG=1\n");
        assert_eq!(receive(&manager), "STOPPING=1\nSTATUS=Stopping: SIGTERM\n");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("tallyman-notify-test-{}", std::process::id());
        let manager =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        manager
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let notifier = Notifier::to_socket(OsStr::new(&format!("@{name}"))).unwrap();
        notifier.status("Starting");
        assert_eq!(receive(&manager), "STATUS=Starting\n");
    }

    #[test]
    fn a_manager_that_went_away_is_not_an_error_for_the_agent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gone");
        let notifier = Notifier::to_socket(path.as_os_str()).unwrap();
        notifier.watchdog();
        notifier.watchdog();
        assert!(
            notifier
                .target
                .as_ref()
                .unwrap()
                .failing
                .load(Ordering::Relaxed)
        );
    }

    #[test]
    fn the_summary_counts_states_and_names_parts_that_need_attention() {
        use crate::health::Registry;
        let registry = Registry::new();
        registry.source("dock-1", "serial").set_state("open", None);
        registry.source("dock-2", "serial").set_state("open", None);
        registry
            .source("dock-3", "serial")
            .set_state("reopening", Some("gone".into()));
        registry.sink("archive", "file").idle();
        registry.sink("odoo", "odoo").retrying("refused");
        registry.set_mqtt("connected", None);
        assert_eq!(
            summary(&registry.snapshot()),
            "sources 2 open, 1 reopening (dock-3); sinks 1 idle, 1 retrying (odoo); MQTT connected"
        );
        let empty = Snapshot {
            sources: BTreeMap::new(),
            sinks: BTreeMap::new(),
            mqtt: None,
        };
        assert_eq!(summary(&empty), "sources none; sinks none");
    }
}
