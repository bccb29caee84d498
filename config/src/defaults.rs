//! Every default of the configuration, in one place.
//!
//! The validator (`validate`) fills in each absent key from here, and an absent optional
//! section is validated as an empty table, so its defaults come from the same code. The demo
//! configuration is a file (`demo.toml`) read through that same path. `tallyman.example.toml`
//! states these values in its comments; a test checks the values a minimal file gets.

/// One mebibyte: the unit of every `*_mb` key.
pub const MIB: u64 = 1024 * 1024;

pub const DATA_DIR: &str = "./tallyman-data";

pub const SPOOL_MAX_SIZE_MB: u64 = 512;
pub const SPOOL_COMMIT_WINDOW_MS: u64 = 2;
pub const SPOOL_CACHE_CAPACITY_MB: u64 = 16;

pub const LOG_LEVEL: &str = "info";

pub const MQTT_KEEP_ALIVE_SECS: u64 = 30;

/// The MQTT client id when none is configured.
pub fn mqtt_client_id(facility: &str, gateway: &str) -> String {
    format!("tallyman-{facility}-{gateway}")
}

pub const SERIAL_BAUD: u64 = 9600;
pub const SERIAL_TERMINATOR: &str = "\r";
pub const MAX_FRAME_BYTES: u64 = 4096;
pub const RATE_LIMIT_PER_SEC: u64 = 50;
pub const COMMAND_PREFIX: &str = "TM:";
pub const IDLE_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_UOM: &str = "Units";
pub const RFID_DEDUP_WINDOW_MS: u64 = 2000;

pub const SINK_RETRY_INITIAL_MS: u64 = 500;
pub const SINK_RETRY_MAX_MS: u64 = 60_000;
pub const SINK_BATCH_SIZE: u64 = 100;
pub const FILE_SINK_PATH: &str = "outbox.jsonl";
pub const MQTT_SINK_INFLIGHT: u64 = 10;
pub const HTTP_TIMEOUT_SECS: u64 = 30;

pub const REMOTE_ROLLBACK_AFTER_SECS: u64 = 120;

pub const HEALTH_INTERVAL_SECS: u64 = 30;

/// The configuration `tallyman run` uses without a file: data in `./tallyman-data`, the stdin
/// source consuming at `WH/Stock`, and a JSON-lines file sink.
pub const DEMO_TOML: &str = include_str!("demo.toml");
