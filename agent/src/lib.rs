//! The tallyman edge agent: the command line and the daemon behind the `tallyman` binary.
//!
//! Module map (see ARCHITECTURE.md): `cli` parses arguments; `decode` is `tallyman decode`;
//! `spool` is the durable store (the only user of sled); `workflow` turns scans into events
//! (pure state machines).

pub mod backoff;
pub mod cli;
pub mod clock;
pub mod config_cmd;
pub mod decode;
pub mod delivery;
pub mod fleet;
pub mod fleet_cmd;
pub mod health;
pub mod mqtt;
pub mod notify;
pub mod run;
pub mod shutdown;
pub mod sinks;
pub mod sources;
pub mod spool;
pub mod spool_cmd;
pub mod supervisor;
pub mod telemetry;
pub mod workflow;

use std::process::ExitCode;

use clap::Parser;

/// The whole program: parse the command line, run the subcommand, map the result to an exit
/// status.
pub fn main() -> ExitCode {
    // Every TLS user in the process (MQTT, HTTPS, Odoo) runs on ring; install it before anything
    // can build a TLS configuration. It can only fail if a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Decode(args) => decode::run(&args),
        cli::Command::Run(args) => run::run(&args),
        cli::Command::Config(cmd) => config_cmd::run(&cmd),
        cli::Command::Spool(args) => spool_cmd::run(&args),
        cli::Command::Keygen(args) => fleet_cmd::keygen(&args),
        cli::Command::Cmd(cmd) => fleet_cmd::run_cmd(&cmd),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tallyman: {e:#}");
            ExitCode::from(2)
        }
    }
}
