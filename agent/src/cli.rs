//! The command line (PRODUCT §7). Raw arguments only; each subcommand validates its own.

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tallyman",
    version,
    about = "Edge agent for healthcare warehouse stock events"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the agent: sources, spool, sinks. Without --config: the built-in demo (stdin in,
    /// ./tallyman-data/outbox.jsonl out).
    Run(RunArgs),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Inspect and repair a stopped agent's spool.
    Spool(SpoolArgs),
    /// Show what scans mean, as one JSON object per input (GS1, HIBC, GTIN, ISBT 128, EPC).
    Decode(DecodeArgs),
    /// Make an Ed25519 key pair for signing configurations and commands (central IT).
    Keygen(KeygenArgs),
    /// Signed commands for gateways (central IT).
    #[command(subcommand)]
    Cmd(CmdCommand),
}

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key id gateways know the key by (1 to 64 letters, digits, `.`, `-`, `_`).
    #[arg(long, value_name = "KEY_ID")]
    pub id: String,
    /// Writes PREFIX.key (the private key, mode 0600) and PREFIX.pub (the `[remote]
    /// trusted_keys` line); refuses to overwrite either.
    #[arg(long, value_name = "PREFIX")]
    pub out: std::path::PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum CmdCommand {
    /// Print a signed command (JSON) to publish on `tallyman/v1/FACILITY/GATEWAY/cmd/NAME`.
    Sign {
        /// The private key file written by `tallyman keygen`.
        #[arg(long, value_name = "PREFIX.key")]
        key: std::path::PathBuf,
        /// FACILITY/GATEWAY or FACILITY/all; without it, every gateway that trusts the key.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
        /// Seconds the command stays valid (at most 86400).
        #[arg(long, value_name = "SECS", default_value_t = 600)]
        expires_in: u64,
        /// The command: status, dlq-list, dlq-replay, flush, reconnect.
        #[arg(value_name = "NAME")]
        name: String,
        /// An argument of the command, such as `ids=all` or `source=dock-1`; may be repeated.
        #[arg(long = "arg", value_name = "KEY=VALUE")]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Read the inputs as RFID reader lines carrying an EPC (hex) instead of barcode scans.
    #[arg(long)]
    pub rfid: bool,
    /// A string the scanner sends in place of GS (0x1D), such as `<GS>`; may be repeated.
    #[arg(long = "gs-alias", value_name = "STR")]
    pub gs_aliases: Vec<String>,
    /// The scans; `\x1d` stands for GS. Without any, one scan per line is read from stdin.
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML). Without it, built-in demo defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file: every error with file:line:col and key path; exit 1 if any.
    Check {
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
    /// Print a signed configuration document (JSON) to publish, retained, on
    /// `tallyman/v1/FACILITY/GATEWAY/config/set`. FILE must be valid and have no `[remote]`.
    Sign {
        /// The private key file written by `tallyman keygen`.
        #[arg(long, value_name = "PREFIX.key")]
        key: std::path::PathBuf,
        /// The document's version: greater than every version pushed before.
        #[arg(long, value_name = "N")]
        version: u64,
        /// When the document stops being accepted (RFC 3339); without it, never.
        #[arg(long, value_name = "RFC3339")]
        expires: Option<String>,
        /// FACILITY/GATEWAY or FACILITY/all; without it, every gateway that trusts the key.
        #[arg(long, value_name = "TARGET")]
        target: Option<String>,
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
    },
}

#[derive(Debug, Args)]
pub struct SpoolArgs {
    /// The agent's data directory (`[agent] data_dir`).
    #[arg(long, value_name = "DIR")]
    pub data_dir: std::path::PathBuf,
    /// The spool's encryption key file, if `[spool] encryption_key_file` is set.
    #[arg(long, value_name = "FILE")]
    pub key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: SpoolCommand,
}

#[derive(Debug, Subcommand)]
pub enum SpoolCommand {
    /// Counts, cursors, backlog, dead letters and bytes on disk.
    Stats,
    /// Stored events, oldest first, one JSON object per line.
    List {
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Only events after this spool sequence number.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// One event, by its id.
    Show {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every dead letter: event id, sink, reason, attempts, last error, first and last time.
    List,
    /// Hand dead letters back to their sink: by event id, or all of them.
    Replay {
        #[arg(
            value_name = "ID",
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        ids: Vec<String>,
        #[arg(long)]
        all: bool,
        /// Only this sink's dead letters.
        #[arg(long)]
        sink: Option<String>,
    },
}
