//! A real mosquitto per test, and MQTT devices to talk to the agent through it.
//!
//! [`Broker`] picks a free loopback port, writes its configuration into a temporary directory,
//! starts `mosquitto -c` there, waits until the port accepts TCP, and kills it on drop. It can
//! be killed and started again on the same port ([`Broker::kill`], [`Broker::restart`]):
//! without persistence the restarted broker has no sessions; with
//! [`BrokerConfig::persistence`] it keeps them (saved in its directory).
//!
//! The test broker keeps every queued message for a disconnected client
//! (`max_queued_messages 0`): mosquitto's default of 1,000 would silently drop what a device
//! publishes while the agent is down, and the tests count every message.
//!
//! [`Device`] is a synchronous rumqttc client (its own thread drives the connection) that
//! records what it sees: CONNACKs, the broker's PUBACKs of its publishes, and the messages on
//! its subscriptions.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{Client, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

/// mosquitto, where Debian installs it.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";

/// A TLS listener's files.
#[derive(Debug, Clone)]
pub struct TlsListener {
    pub cafile: PathBuf,
    pub certfile: PathBuf,
    pub keyfile: PathBuf,
    /// Clients must present a certificate signed by `cafile`.
    pub require_certificate: bool,
}

/// How to configure a test broker.
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    /// Keep sessions and queued messages across a restart of the broker.
    pub persistence: bool,
    /// A TLS listener instead of a plain one.
    pub tls: Option<TlsListener>,
    /// Clients must log in with a user name and password from this mosquitto password file
    /// (see [`password_file`]); anonymous clients are refused.
    pub password_file: Option<PathBuf>,
    /// More configuration lines.
    pub extra: String,
}

/// A running mosquitto on 127.0.0.1.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
    config: PathBuf,
    log: PathBuf,
}

impl Broker {
    /// A plain broker without persistence.
    pub fn start() -> Broker {
        Broker::start_with(&BrokerConfig::default())
    }

    pub fn start_with(c: &BrokerConfig) -> Broker {
        let dir = tempfile::tempdir().expect("broker directory");
        // The listener line comes first; the port is filled in below.
        let mut text = String::new();
        if let Some(tls) = &c.tls {
            text.push_str(&format!(
                "cafile {}\ncertfile {}\nkeyfile {}\nrequire_certificate {}\n",
                tls.cafile.display(),
                tls.certfile.display(),
                tls.keyfile.display(),
                tls.require_certificate
            ));
        }
        match &c.password_file {
            Some(p) => text.push_str(&format!(
                "allow_anonymous false\npassword_file {}\n",
                p.display()
            )),
            None => text.push_str("allow_anonymous true\n"),
        }
        // Stay root when started as root (mosquitto would switch to user `mosquitto`, who
        // cannot read the test's files); ignored when not root.
        text.push_str("user root\n");
        text.push_str("max_queued_messages 0\n");
        if c.persistence {
            text.push_str(&format!(
                "persistence true\npersistence_location {}/\nautosave_interval 1\n",
                dir.path().display()
            ));
        } else {
            text.push_str("persistence false\n");
        }
        text.push_str("log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n");
        text.push_str(&c.extra);
        text.push('\n');
        let config = dir.path().join("mosquitto.conf");
        let log = dir.path().join("mosquitto.log");
        let mut broker = Broker {
            child: None,
            port: 0,
            dir,
            config,
            log,
        };
        // A port found free can be taken by someone else before mosquitto binds it: then try
        // another one.
        let mut failures = Vec::new();
        for _ in 0..5 {
            broker.port = free_port();
            let listener = format!("listener {} 127.0.0.1\n", broker.port);
            std::fs::write(&broker.config, listener + &text).expect("writing mosquitto.conf");
            match broker.spawn() {
                Ok(()) => return broker,
                Err(log) if log.contains("Address already in use") => failures.push(log),
                Err(log) => panic!("mosquitto did not start:\n{log}"),
            }
        }
        panic!("mosquitto found no free port:\n{}", failures.join("\n"));
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The broker's directory (its configuration, log and persistence file).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the broker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL the broker and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM the broker and wait until it exited: mosquitto writes its persistence file on
    /// the way out, so what it acknowledged survives (SIGKILL loses what arrived since the last
    /// autosave).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = i32::try_from(child.id()).expect("pid fits");
            let _ = crate::agent::signal(pid, "TERM");
            let _ = child.wait();
        }
    }

    /// Start the broker (again) on the same port with the same configuration; returns once it
    /// accepts TCP connections.
    pub fn restart(&mut self) {
        if let Err(log) = self.spawn() {
            panic!(
                "mosquitto did not start again on port {}:\n{log}",
                self.port
            );
        }
    }

    /// Start mosquitto and wait until it accepts TCP connections; its log if it exited.
    fn spawn(&mut self) -> Result<(), String> {
        self.kill();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("opening the broker log");
        let mut child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&self.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {MOSQUITTO}: {e} (apt-get install mosquitto)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let accepts = TcpStream::connect(("127.0.0.1", self.port)).is_ok();
            // Checked after the connection: whoever accepted it, mosquitto must still run.
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("mosquitto exited ({status}):\n{}", self.log()));
            }
            if accepts {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto does not accept connections on port {}:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Write a mosquitto password file at `path` with one user (`mosquitto_passwd -c -b`).
pub fn password_file(path: &Path, user: &str, password: &str) {
    let status = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(path)
        .arg(user)
        .arg(password)
        .status()
        .expect("running mosquitto_passwd");
    assert!(status.success(), "mosquitto_passwd failed: {status}");
}

/// A port that was free a moment ago (bind to port 0, read it, let it go).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    l.local_addr().expect("local address").port()
}

/// A message a device received.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload).unwrap_or_else(|e| {
            panic!(
                "message on {} is not JSON: {e}: {}",
                self.topic,
                String::from_utf8_lossy(&self.payload)
            )
        })
    }
}

/// What a device has seen.
#[derive(Debug, Default)]
pub struct DeviceState {
    pub connacks: u32,
    pub subacks: u32,
    /// PUBACKs from the broker for this device's QoS 1 publishes.
    pub acked: u64,
    pub messages: Vec<Message>,
    pub errors: Vec<String>,
}

impl DeviceState {
    pub fn on(&self, topic: &str) -> Vec<&Message> {
        self.messages.iter().filter(|m| m.topic == topic).collect()
    }
}

/// How a device connects.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    pub client_id: String,
    pub clean_session: bool,
    /// Unacknowledged QoS 1 publishes at most.
    pub inflight: u16,
    /// TLS to the broker (host 127.0.0.1).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl DeviceOptions {
    pub fn new(client_id: &str) -> DeviceOptions {
        DeviceOptions {
            client_id: client_id.into(),
            clean_session: true,
            inflight: 100,
            tls: None,
        }
    }
}

/// An MQTT client standing for a handheld, a display or IT.
pub struct Device {
    client: Client,
    state: Arc<(Mutex<DeviceState>, Condvar)>,
    stop: Arc<AtomicBool>,
}

impl Device {
    /// Connect to the broker on `port`; returns after the first CONNACK.
    pub fn connect(port: u16, client_id: &str) -> Device {
        Device::connect_with(port, &DeviceOptions::new(client_id))
    }

    pub fn connect_with(port: u16, o: &DeviceOptions) -> Device {
        let mut options = MqttOptions::new(o.client_id.clone(), "127.0.0.1", port);
        options
            .set_keep_alive(Duration::from_secs(30))
            .set_clean_session(o.clean_session)
            .set_inflight(o.inflight)
            .set_max_packet_size(32 * 1024 * 1024, 32 * 1024 * 1024);
        if let Some(tls) = &o.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::clone(tls),
            )));
        }
        let (client, mut connection) = Client::new(options, 1000);
        let state: Arc<(Mutex<DeviceState>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopping) = (Arc::clone(&state), Arc::clone(&stop));
        std::thread::spawn(move || {
            for event in connection.iter() {
                if stopping.load(Ordering::Relaxed) {
                    break;
                }
                let (m, cv) = &*shared;
                let mut s = m.lock().expect("device state");
                match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => s.connacks += 1,
                    Ok(Event::Incoming(Packet::SubAck(_))) => s.subacks += 1,
                    Ok(Event::Incoming(Packet::PubAck(_))) => s.acked += 1,
                    Ok(Event::Incoming(Packet::Publish(p))) => s.messages.push(Message {
                        topic: p.topic.clone(),
                        payload: p.payload.to_vec(),
                        retain: p.retain,
                    }),
                    Ok(_) => continue,
                    Err(e) => {
                        s.errors.push(e.to_string());
                        drop(s);
                        cv.notify_all();
                        // The broker is down: do not spin while it is.
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                }
                drop(s);
                cv.notify_all();
            }
        });
        let device = Device {
            client,
            state,
            stop,
        };
        assert!(
            device.wait(Duration::from_secs(10), |s| s.connacks >= 1),
            "device {} could not connect: {:?}",
            o.client_id,
            device.state.0.lock().expect("device state").errors
        );
        device
    }

    /// Subscribe (QoS 1) and wait for the SUBACK.
    pub fn subscribe(&self, filter: &str) {
        let before = self.state.0.lock().expect("device state").subacks;
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .expect("subscribing");
        assert!(
            self.wait(Duration::from_secs(10), |s| s.subacks > before),
            "no SUBACK for {filter}"
        );
    }

    /// Publish with QoS 1 (blocks while the client's queue is full).
    pub fn publish(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .expect("publishing");
    }

    /// Publish retained with QoS 1 (what central IT does on `config/set`).
    pub fn publish_retained(&self, topic: &str, payload: Vec<u8>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .expect("publishing");
    }

    /// Wait until `cond` holds, or the timeout passes (false).
    pub fn wait(&self, timeout: Duration, cond: impl Fn(&DeviceState) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &*self.state;
        let mut s = m.lock().expect("device state");
        loop {
            if cond(&s) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            s = cv.wait_timeout(s, deadline - now).expect("device state").0;
        }
    }

    /// Look at what the device has seen.
    pub fn with<T>(&self, f: impl FnOnce(&DeviceState) -> T) -> T {
        f(&self.state.0.lock().expect("device state"))
    }

    pub fn acked(&self) -> u64 {
        self.with(|s| s.acked)
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").finish_non_exhaustive()
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.try_disconnect();
    }
}

/// A configuration for the agent with `[mqtt]` on the broker at `port`, one mqtt source
/// (`devices`, consume workflow at `WH/Stock`) and one file sink (`outbox.jsonl`), in `dir`.
/// Facility `test`, gateway `gw-test`, client id `tallyman-test`, keep-alive 5 s.
/// `mqtt_extra` goes into `[mqtt]` (an `endpoint` there replaces the plain one).
pub fn agent_config(dir: &Path, port: u16, mqtt_extra: &str) -> PathBuf {
    let data = dir.join("data");
    let endpoint = if mqtt_extra.contains("endpoint") {
        String::new()
    } else {
        format!("endpoint = \"mqtt://127.0.0.1:{port}\"\n")
    };
    let text = format!(
        r#"[agent]
facility = "test"
gateway = "gw-test"
data_dir = "{data}"

[spool]
commit_window_ms = 2

[mqtt]
{endpoint}client_id = "tallyman-test"
keep_alive_secs = 5
{mqtt_extra}

[[sources]]
name = "devices"
type = "mqtt"
workflow = "consume"
location = "WH/Stock"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
batch_size = 1000
"#,
        data = data.display()
    );
    let path = dir.join("tallyman.toml");
    std::fs::write(&path, text).expect("writing the test config");
    path
}

/// The topic of this gateway (`test`/`gw-test`) with `tail`.
pub fn topic(tail: &str) -> String {
    format!("tallyman/v1/test/gw-test/{tail}")
}

/// A canonical receipt event as a device publishes it on `in/events`: its id and its JSON. `n`
/// makes the id (and the lot) unique.
pub fn receipt_json(n: u64, facility: &str, gateway: &str) -> (String, Vec<u8>) {
    use tallyman_protocol::event::{
        Event, EventId, FacilityId, GatewayId, Header, Item, Line, Location, Lot, Quantity,
        SourceName, Timestamp, Uom,
    };
    let mut random = [0u8; 10];
    random[2..].copy_from_slice(&n.to_be_bytes());
    let at = 1_795_000_000_000 + i64::try_from(n % 1_000_000).expect("small");
    let header = Header {
        id: EventId::new_v7(u64::try_from(at).expect("positive"), random),
        facility: FacilityId::new(facility).expect("facility"),
        gateway: GatewayId::new(gateway).expect("gateway"),
        source: SourceName::new("handheld-1").expect("source"),
        seq: 0,
        captured_at: Timestamp::from_unix_millis(at).expect("time"),
    };
    let line = Line::new(
        Item::Code(tallyman_protocol::event::ItemCode::new("ITEM-1").expect("code")),
        Quantity::from_int(1).expect("qty"),
        Uom::new("Units").expect("uom"),
    )
    .with_lot(Lot::new(format!("L{n}")).expect("lot"));
    let event = Event::receipt(
        header,
        Location::new("WH/Stock").expect("location"),
        vec![line],
    )
    .expect("a valid receipt");
    let id = event.id().to_string();
    (id, serde_json::to_vec(&event).expect("event JSON"))
}
