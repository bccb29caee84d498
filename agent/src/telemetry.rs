//! Logs: tracing to stderr, human-readable text or one JSON object per line.
//!
//! Field vocabulary (house style): `event_id`, `seq`, `sink`, `source`, `error`, `attempt`,
//! `path`. Every line about one event carries its `event_id`, so a transaction can be followed
//! from the scan to the destination's acknowledgement.

use tracing_subscriber::EnvFilter;

/// Log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Install the global subscriber. `filter` is a tracing filter (`info`, `tallyman_agent=debug`);
/// `RUST_LOG`, when set, wins. Installing twice is harmless (the second is ignored).
pub fn init(format: Format, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    // An error means a subscriber is already installed (tests); keep that one.
    let _ = match format {
        Format::Text => builder.with_target(false).try_init(),
        Format::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
    };
}
