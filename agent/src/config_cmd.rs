//! `tallyman config check FILE`: every error of a configuration file, one per line as
//! `file:line:col key.path: message`, exit 1 if there is any. `tallyman config sign` is in
//! `fleet_cmd`.

use std::process::ExitCode;

use crate::cli::ConfigCommand;

pub fn run(cmd: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Check { file } => match tallyman_config::load(file) {
            Ok(config) => {
                println!(
                    "{}: ok ({} source(s), {} sink(s), data in {})",
                    file.display(),
                    config.sources.len(),
                    config.sinks.len(),
                    config.agent.data_dir.display()
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                eprintln!("{errors}");
                Ok(ExitCode::FAILURE)
            }
        },
        ConfigCommand::Sign {
            key,
            version,
            expires,
            target,
            file,
        } => crate::fleet_cmd::sign_config(
            key,
            *version,
            expires.as_deref(),
            target.as_deref(),
            file,
        ),
    }
}
