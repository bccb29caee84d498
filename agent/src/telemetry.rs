//! Logs: tracing to stderr, human-readable text or one JSON object per line.
//!
//! Field vocabulary (house style): `event_id`, `seq`, `sink`, `source`, `error`, `attempt`,
//! `path`. Every line about one event carries its `event_id`, so a transaction can be followed
//! from the scan to the destination's acknowledgement.
//!
//! The level filter can be replaced while running ([`set_filter`], a pushed configuration's
//! `[log] level`); the format is chosen once, at start.

use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Replaces the installed subscriber's filter.
type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// Set by [`init`] when the configuration's filter is in use (not `RUST_LOG`).
static RELOAD: OnceLock<Reload> = OnceLock::new();

/// Install the global subscriber. `filter` is a tracing filter (`info`, `tallyman_agent=debug`);
/// `RUST_LOG`, when set, wins. Installing twice is harmless (the second is ignored).
pub fn init(format: Format, filter: &str) {
    let from_env = EnvFilter::try_from_default_env().ok();
    let env_wins = from_env.is_some();
    let filter = from_env
        .or_else(|| EnvFilter::try_new(filter).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // An error means a subscriber is already installed (tests); keep that one.
    let installed = match format {
        Format::Text => {
            let builder = builder.with_target(false).with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().map(|()| -> Reload {
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
            })
        }
        Format::Json => {
            let builder = builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_filter_reloading();
            let handle = builder.reload_handle();
            builder.try_init().map(|()| -> Reload {
                Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()))
            })
        }
    };
    if let (Ok(reload), false) = (installed, env_wins) {
        let _ = RELOAD.set(reload);
    }
}

/// Use `filter` from now on (a configuration's `[log] level`, already validated). Nothing
/// happens when `RUST_LOG` chose the filter or no subscriber of ours is installed.
pub fn set_filter(filter: &str) {
    let Some(reload) = RELOAD.get() else { return };
    match EnvFilter::try_new(filter) {
        Ok(f) => match reload(f) {
            Ok(()) => tracing::info!(filter, "Log level changed."),
            Err(e) => tracing::warn!(error = %e, "The log level could not be changed."),
        },
        Err(e) => tracing::warn!(error = %e, "The log level could not be changed."),
    }
}
