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
