//! The typed, validated configuration: what the rest of the agent reads.
//!
//! Every value here has passed its rule and every default is filled in, so a reader never
//! re-checks or guesses: durations are [`Duration`]s, sizes are bytes, names are the protocol's
//! validated newtypes, and a choice that makes some keys meaningful is an enum whose variant
//! carries exactly those keys (a stdin source has no baud rate; an rfid decoder has a
//! de-duplication window). Built only by [`crate::parse_str`], [`crate::load`] and
//! [`Config::demo`].

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tallyman_protocol::event::{FacilityId, GatewayId, Kind, Location, SourceName, Uom};

/// The whole configuration file (PRODUCT §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub agent: Agent,
    pub spool: Spool,
    pub log: Log,
    /// The one connection to the central broker; present when the file has `[mqtt]`.
    pub mqtt: Option<Mqtt>,
    /// At least one; names are unique; at most one stdin source.
    pub sources: Vec<Source>,
    /// At least one; names are unique.
    pub sinks: Vec<Sink>,
    /// Trust anchors for pushed configuration and commands; absent = nothing pushed is
    /// accepted.
    pub remote: Option<Remote>,
    pub health: Health,
}

/// `[agent]`: who this gateway is and where it keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    pub facility: FacilityId,
    pub gateway: GatewayId,
    /// The spool, file sinks and any other state live below this directory.
    pub data_dir: PathBuf,
}

/// `[spool]`: the durable store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spool {
    /// The quota, in bytes (`max_size_mb` × 1 MiB).
    pub max_size_bytes: u64,
    /// How long an append may wait for others to share its flush.
    pub commit_window: Duration,
    /// sled's page cache, in bytes (`cache_capacity_mb` × 1 MiB).
    pub cache_capacity_bytes: u64,
    /// Encrypt event payloads at rest with the key in this file.
    pub encryption_key_file: Option<PathBuf>,
    /// What happens to raw pass-through scans when the quota is reached. Stock events are
    /// always refused, never dropped.
    pub raw_scans_when_full: WhenFull,
}

/// `[spool] raw_scans_when_full`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenFull {
    /// Refuse new raw scans, like stock events.
    Refuse,
    /// Drop the oldest raw scans to make room.
    DropOldest,
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Log {
    pub format: LogFormat,
    pub level: LogFilter,
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[log] level`: a comma-separated list of directives, each a level (`info`) or
/// `target=level` (`tallyman_agent::spool=debug`), levels being `trace`, `debug`, `info`,
/// `warn`, `error` and `off`. A subset of what `tracing_subscriber::EnvFilter` understands,
/// so the text can be handed to it as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter(pub(crate) String);

impl LogFilter {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `[mqtt]`: the one connection to the central broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mqtt {
    pub endpoint: MqttEndpoint,
    /// `tallyman-{facility}-{gateway}` unless configured.
    pub client_id: String,
    /// CA bundle for the broker's certificate; `None` with TLS = the system roots.
    pub ca_file: Option<PathBuf>,
    /// Mutual TLS: both files or neither.
    pub client_cert: Option<ClientCert>,
    pub keep_alive: Duration,
    pub username: Option<String>,
    /// Only with a username.
    pub password_file: Option<PathBuf>,
}

/// `mqtt://host:port` or `mqtts://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttEndpoint {
    /// `mqtts://`.
    pub tls: bool,
    /// A DNS name or an IP address (IPv6 without its brackets).
    pub host: String,
    /// 1883 for `mqtt://` and 8883 for `mqtts://` when the endpoint names none.
    pub port: u16,
}

impl fmt::Display for MqttEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

/// A client certificate and its private key, for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// An `http://` or `https://` URL with a host, no whitespace and no fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl(pub(crate) String);

impl HttpUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the URL is `https://`.
    pub fn is_https(&self) -> bool {
        self.0.starts_with("https://")
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[[sources]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub name: SourceName,
    pub input: Input,
    pub scan: ScanSettings,
}

/// Where a source's scans come from, with the keys that only make sense for that kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Serial(Serial),
    /// This gateway's `in/events` and `in/scans` topics on the `[mqtt]` connection.
    Mqtt,
    /// One scan per line on standard input (keyboard wedge, demo).
    Stdin(Stdin),
}

/// A serial scanner or RFID reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial {
    /// Prefer the stable `/dev/serial/by-id/...` names.
    pub path: PathBuf,
    pub baud: u32,
    pub parity: Parity,
    pub data_bits: DataBits,
    pub stop_bits: StopBits,
    pub framing: Framing,
    /// Scans beyond this many per second (burst: the same number) are refused with a reason.
    pub rate_limit_per_sec: u32,
    pub feedback: Feedback,
}

/// How a byte stream is cut into scans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framing {
    /// The bytes that end a frame (serial sources; stdin frames are lines).
    pub terminator: Vec<u8>,
    /// Removed from the start of a frame when present.
    pub strip_prefix: Option<Vec<u8>>,
    /// Removed from the end of a frame (before the terminator) when present.
    pub strip_suffix: Option<Vec<u8>>,
    /// A longer frame is rejected whole.
    pub max_frame_bytes: usize,
}

/// The stdin source's framing: one scan per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stdin {
    pub strip_prefix: Option<Vec<u8>>,
    pub strip_suffix: Option<Vec<u8>>,
    pub max_frame_bytes: usize,
}

/// `parity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Even,
    Odd,
}

/// `data_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataBits {
    Seven,
    Eight,
}

/// `stop_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    One,
    Two,
}

/// Bytes written back to a serial scanner after a scan (beeps, LEDs). Empty = write nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feedback {
    /// The scan was accepted (durable) or noted.
    pub good: Vec<u8>,
    /// The scan was rejected.
    pub bad: Vec<u8>,
    /// The spool is full: intake refused. Empty: the agent writes `bad` instead.
    pub full: Vec<u8>,
}

/// What happens to a source's scans once framed: decoding and the scan workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanSettings {
    pub decoder: Decoder,
    /// Substitutes the scanner sends instead of GS (0x1D), mapped back before decoding.
    pub gs_aliases: Vec<Vec<u8>>,
    pub workflow: Workflow,
    /// The source's own location: the one a mode needs unless a scan sets another.
    pub location: Option<Location>,
    /// Scans starting with this are commands (`TM:RECEIVE`).
    pub command_prefix: String,
    /// A session with no scan for this long is ended by `idle_action`.
    pub idle_timeout: Duration,
    pub idle_action: IdleAction,
    pub expired: ExpiredPolicy,
    /// The unit of measure of a line when the scan names none.
    pub default_uom: Uom,
}

/// `decoder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoder {
    /// GS1, HIBC, GTIN, ISBT 128.
    Barcode,
    /// EPC tag reads from an RFID reader.
    Rfid(Rfid),
}

/// The keys that only an rfid decoder has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rfid {
    /// The same tag read again within this window is one read. Zero = no de-duplication.
    pub dedup_window: Duration,
    /// Portal mode: every tag passing is a transfer between two locations.
    pub portal: Option<Portal>,
}

/// A dock door with an RFID reader: tags passing are moved `from` → `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub from: Location,
    pub to: Location,
}

/// `workflow`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Workflow {
    /// Command barcodes set the mode, locations and reference; `TM:DONE` commits.
    Session,
    /// Every item scan is a consumption at this location (point-of-use cabinets). The same
    /// location as [`ScanSettings::location`].
    Consume { location: Location },
    /// Every scan is passed through raw (`kind = "scan"`), with no stock effect.
    Passthrough,
}

/// `idle_action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdleAction {
    Commit,
    Discard,
}

/// `expired`: what an item past its expiry date does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiredPolicy {
    /// The scan is rejected.
    Reject,
    /// The scan is accepted and the line flagged.
    Flag,
}

/// One `[[sinks]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    pub name: SinkName,
    /// The event kinds routed here, in schema order, each once.
    pub kinds: Vec<Kind>,
    pub retry: Retry,
    /// Most events per delivery attempt.
    pub batch_size: u32,
    pub target: SinkTarget,
}

impl Sink {
    /// Whether events of this kind go to this sink.
    pub fn accepts(&self, kind: Kind) -> bool {
        self.kinds.contains(&kind)
    }
}

/// A sink's name: 1 to 64 ASCII letters, digits, `-` or `_` (it names a spool cursor and
/// appears in health reports).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SinkName(pub(crate) String);

impl SinkName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SinkName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Exponential backoff between failed deliveries, with jitter, from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    pub initial: Duration,
    pub max: Duration,
}

/// Where a sink delivers, with the keys of that kind of sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkTarget {
    File(FileSink),
    Mqtt(MqttSink),
    Http(HttpSink),
    Odoo(OdooSink),
}

/// JSON lines appended to a file below the data directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSink {
    /// Resolved: `data_dir` joined with the configured relative path.
    pub path: PathBuf,
}

/// The hub over the `[mqtt]` connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MqttSink {
    pub format: MqttFormat,
    /// Most publishes awaiting their PUBACK.
    pub inflight: u16,
}

/// `format` of an mqtt sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttFormat {
    Json,
    Postcard,
}

/// The hub over HTTPS: batches POSTed as JSON arrays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpSink {
    pub endpoint: HttpUrl,
    /// A bearer token, read from this file.
    pub token_file: Option<PathBuf>,
    /// CA bundle for the server's certificate (https only); `None` = the system roots.
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// The Odoo ERP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OdooSink {
    /// The server's base URL.
    pub endpoint: HttpUrl,
    pub database: String,
    pub login: String,
    pub api_key_file: PathBuf,
    /// Where consumption pickings go; required when this sink takes consumption events in
    /// `picking` mode.
    pub consumption_location: Option<Location>,
    pub consumption_mode: ConsumptionMode,
    pub ca_file: Option<PathBuf>,
    pub timeout: Duration,
}

/// How a consumption event lands in Odoo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumptionMode {
    /// A validated picking to the consumption location.
    Picking,
    /// A scrap order.
    Scrap,
}

/// `[remote]`: the trust anchors of signed configuration and commands. Only the local file
/// has them: a pushed document never can.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// At least one; ids are unique.
    pub trusted_keys: Vec<TrustedKey>,
    /// A pushed config is rolled back unless the central connection is healthy within this.
    pub rollback_after: Duration,
}

/// `KEY_ID:<base64 Ed25519 public key>`, as `tallyman keygen` writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    /// 1 to 64 ASCII letters, digits, `.`, `-` or `_`.
    pub id: String,
    /// The 32-byte Ed25519 public key.
    pub public_key: [u8; 32],
}

/// `[health]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// How often the retained health report is published.
    pub interval: Duration,
}
