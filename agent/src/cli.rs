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
