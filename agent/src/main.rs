//! `tallyman`: the edge agent's single binary.

mod cli;
mod decode;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Every TLS user in the process (MQTT, HTTPS, Odoo) runs on ring; install it before anything
    // can build a TLS configuration. It can only fail if a provider is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();

    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Decode(args) => decode::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("tallyman: {e:#}");
            ExitCode::from(2)
        }
    }
}
