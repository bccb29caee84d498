//! The configuration of tallyman (PRODUCT §7), read in two layers.
//!
//! 1. `raw`: the text is parsed as TOML with the position of every key and value, and each
//!    table is compared with the schema of known keys: an unknown key is refused with a
//!    suggestion, a value of the wrong TOML type is refused.
//! 2. `validate`: the known values are checked against their rules (ranges, names, locations,
//!    endpoints, which keys go with which source or sink type, cross-references) and turned
//!    into the typed [`Config`], with every default filled in from [`defaults`].
//!
//! Every problem of a file is reported, not only the first, each as a [`Diagnostic`] with its
//! line, column and key path, rendered `file:line:col key.path: message`.
//!
//! Architecture invariant: this crate is pure. It reads the one file it is asked to and
//! nothing else: it does not check that the files a configuration names exist (the agent does,
//! at start, with their permissions), and it never touches the network.

pub mod defaults;
mod diagnostic;
pub mod model;
mod raw;
mod suggest;
mod validate;
mod values;

use std::io::Read;
use std::path::Path;

pub use diagnostic::{ConfigErrors, Diagnostic};
pub use model::*;

use diagnostic::Report;

/// The largest configuration file read, in bytes: a real one is a few kilobytes.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Reads and validates a configuration file. Errors name the file as `path` is written.
pub fn load(path: impl AsRef<Path>) -> Result<Config, ConfigErrors> {
    let path = path.as_ref();
    let read_error = |source| ConfigErrors::ReadFile {
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    let name = path.display().to_string();
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigErrors::Invalid {
            file: name,
            diagnostics: vec![Diagnostic {
                line: 1,
                col: 1,
                key_path: String::new(),
                message: format!(
                    "the file is larger than {MAX_FILE_BYTES} bytes; this is not a configuration"
                ),
            }],
        });
    }
    match String::from_utf8(bytes) {
        Ok(text) => parse_str(&text, &name),
        Err(e) => {
            let valid_up_to = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            // The valid prefix locates the bad byte.
            let prefix = String::from_utf8_lossy(bytes.get(..valid_up_to).unwrap_or(&[]));
            let mut report = Report::new(&prefix);
            report.error(
                prefix.len(),
                "",
                format!(
                    "the file is not UTF-8 text: invalid byte 0x{:02x}",
                    bytes.get(valid_up_to).copied().unwrap_or(0)
                ),
            );
            Err(ConfigErrors::Invalid {
                file: name,
                diagnostics: report.into_diagnostics(),
            })
        }
    }
}

/// Validates the text of a configuration file; `file_name` is what the errors call it.
pub fn parse_str(text: &str, file_name: &str) -> Result<Config, ConfigErrors> {
    let mut report = Report::new(text);
    let config = raw::read(text, &mut report).and_then(|doc| validate::config(&mut report, &doc));
    match config {
        Some(config) if report.is_empty() => Ok(config),
        _ => {
            if report.is_empty() {
                // Every path that yields no Config reports why; this guards the invariant.
                report.error(
                    0,
                    "",
                    "the configuration could not be built (internal error)",
                );
            }
            Err(ConfigErrors::Invalid {
                file: file_name.to_owned(),
                diagnostics: report.into_diagnostics(),
            })
        }
    }
}

/// A key of a pushed configuration that must keep the local file's value and does not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clash {
    /// `[agent] gateway`, `[spool] max_size_mb`, …
    pub key: &'static str,
    /// The local file's value, as text.
    pub local: String,
    /// The document's value, as text.
    pub pushed: String,
}

/// Why a pushed configuration cannot run on this gateway.
#[derive(Debug, thiserror::Error)]
pub enum PushedError {
    /// The document has a `[remote]` section: trust anchors and the rollback policy come only
    /// from the local file.
    #[error("a pushed configuration may not contain [remote]")]
    Remote,
    /// The document changes what only the local file may set (the first such key).
    #[error(
        "a pushed configuration may not change {} (the local file says {}, the document {})",
        .0.key, .0.local, .0.pushed
    )]
    LocalSetting(Clash),
    /// The document is not a valid configuration: every problem, as for a file.
    #[error("{0}")]
    Invalid(ConfigErrors),
}

/// Validates a configuration pushed by central IT for the gateway whose local file is `local`,
/// and returns the configuration that would run: the document's sections with the local
/// file's `[agent]`, `[spool]` and `[remote]`.
///
/// * `[remote]` in the document is refused ([`PushedError::Remote`]): trust anchors and the
///   rollback policy come only from the local file.
/// * `[agent]` (`facility`, `gateway`, `data_dir`) and `[spool]` belong to the gateway: they
///   change only with a local edit and a restart. The document may leave them out (a
///   facility-wide document has to leave out `gateway`); a key it states must have the local
///   value ([`PushedError::LocalSetting`] otherwise). The defaults that depend on them (the
///   MQTT client id, file sink paths below the data directory) follow the local values.
/// * Everything else is validated exactly as in a file ([`PushedError::Invalid`] with every
///   problem).
pub fn parse_pushed(text: &str, file_name: &str, local: &Config) -> Result<Config, PushedError> {
    pushed(text, file_name, local, true)
}

/// Checks a configuration document before central IT signs it (`tallyman config sign`): every
/// rule [`parse_pushed`] applies that does not depend on a gateway's local file. `[agent]`
/// and `[spool]` may be left out (a facility-wide document leaves out `gateway`); what they
/// state is checked against each gateway's local file when it arrives there. Returns the
/// configuration with the demo's `[agent]`, `[spool]` and `[remote]` in place of a gateway's.
pub fn check_pushed(text: &str, file_name: &str) -> Result<Config, PushedError> {
    let placeholder = Config::demo().map_err(PushedError::Invalid)?;
    pushed(text, file_name, &placeholder, false)
}

fn pushed(
    text: &str,
    file_name: &str,
    local: &Config,
    compare_local: bool,
) -> Result<Config, PushedError> {
    let mut report = Report::new(text);
    let mut clashes = Vec::new();
    let doc = raw::read(text, &mut report);
    if doc.as_ref().is_some_and(|d| d.entry("remote").is_some()) {
        return Err(PushedError::Remote);
    }
    let config = doc.and_then(|doc| validate::pushed(&mut report, &doc, local, &mut clashes));
    if let Some(clash) = clashes.into_iter().next().filter(|_| compare_local) {
        return Err(PushedError::LocalSetting(clash));
    }
    match config {
        Some(config) if report.is_empty() => Ok(config),
        _ => {
            if report.is_empty() {
                report.error(
                    0,
                    "",
                    "the configuration could not be built (internal error)",
                );
            }
            Err(PushedError::Invalid(ConfigErrors::Invalid {
                file: file_name.to_owned(),
                diagnostics: report.into_diagnostics(),
            }))
        }
    }
}

impl Config {
    /// The configuration used without a file ([`defaults::DEMO_TOML`]): data in
    /// `./tallyman-data`, facility `demo`, gateway `demo-gw`, the stdin source consuming at
    /// `WH/Stock`, and the file sink `outbox` writing `outbox.jsonl` there.
    ///
    /// It goes through [`parse_str`] so that its defaults are exactly those of a file; it
    /// cannot fail (a test parses it), the `Result` only keeps that one path.
    pub fn demo() -> Result<Config, ConfigErrors> {
        parse_str(defaults::DEMO_TOML, "<built-in demo configuration>")
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use tallyman_protocol::event::Kind;

    use super::*;

    const EXAMPLE: &str = include_str!("../tallyman.example.toml");

    fn err_lines(text: &str) -> Vec<String> {
        match parse_str(text, "f.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.to_string().lines().map(str::to_owned).collect(),
        }
    }

    #[test]
    fn the_example_parses() {
        let c = parse_str(EXAMPLE, "tallyman.example.toml").unwrap();
        assert_eq!(c.sources.len(), 3);
        assert_eq!(c.sinks.len(), 4);
        assert!(c.mqtt.is_some() && c.remote.is_some());
    }

    #[test]
    fn the_example_documents_every_key() {
        for path in raw::all_key_paths() {
            let leaf = path.rsplit('.').next().unwrap();
            let documented = EXAMPLE.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{leaf} ="))
                    || l.contains(&format!("{{ {leaf} ="))
                    || l.contains(&format!(", {leaf} ="))
            });
            assert!(documented, "{path} is not in the example");
        }
    }

    #[test]
    fn the_demo_is_what_the_product_promises() {
        let c = Config::demo().unwrap();
        assert_eq!(c.agent.facility.as_str(), "demo");
        assert_eq!(c.agent.gateway.as_str(), "demo-gw");
        assert_eq!(c.agent.data_dir, PathBuf::from("./tallyman-data"));
        assert!(c.mqtt.is_none() && c.remote.is_none());
        let [source] = c.sources.as_slice() else {
            panic!("one source")
        };
        assert_eq!(source.name.as_str(), "stdin");
        assert!(matches!(source.input, Input::Stdin(_)));
        match &source.scan.workflow {
            Workflow::Consume { location } => assert_eq!(location.as_str(), "WH/Stock"),
            w => panic!("{w:?}"),
        }
        let [sink] = c.sinks.as_slice() else {
            panic!("one sink")
        };
        assert_eq!(sink.name.as_str(), "outbox");
        assert_eq!(
            sink.target,
            SinkTarget::File(FileSink {
                path: PathBuf::from("./tallyman-data/outbox.jsonl")
            })
        );
        assert_eq!(sink.kinds, Kind::ALL);
    }

    /// The defaults the example states, as a minimal file gets them.
    #[test]
    fn defaults_of_a_minimal_file() {
        let text = r#"
            [agent]
            facility = "f"
            gateway = "g"
            [mqtt]
            endpoint = "mqtts://b"
            [[sources]]
            name = "s"
            type = "serial"
            path = "/dev/ttyUSB0"
            [[sources]]
            name = "r"
            type = "stdin"
            decoder = "rfid"
            workflow = "passthrough"
            [[sinks]]
            name = "k"
            type = "http"
            endpoint = "https://h"
            [[sinks]]
            name = "m"
            type = "mqtt"
            [[sinks]]
            name = "o"
            type = "odoo"
            endpoint = "https://o"
            database = "d"
            login = "l"
            api_key_file = "k"
            kinds = ["receipt"]
            [[sinks]]
            name = "file"
            type = "file"
            [remote]
            trusted_keys = ["k:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
        "#;
        let c = parse_str(text, "f.toml").unwrap();
        assert_eq!(c.agent.data_dir, PathBuf::from("./tallyman-data"));
        assert_eq!(
            c.spool,
            Spool {
                max_size_bytes: 512 * 1024 * 1024,
                commit_window: Duration::from_millis(2),
                cache_capacity_bytes: 16 * 1024 * 1024,
                encryption_key_file: None,
                raw_scans_when_full: WhenFull::Refuse,
            }
        );
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level.as_str(), "info");
        let mqtt = c.mqtt.unwrap();
        assert_eq!(mqtt.endpoint.to_string(), "mqtts://b:8883");
        assert_eq!(mqtt.client_id, "tallyman-f-g");
        assert_eq!(mqtt.keep_alive, Duration::from_secs(30));
        assert!(mqtt.ca_file.is_none() && mqtt.client_cert.is_none());
        let serial = &c.sources[0];
        let Input::Serial(s) = &serial.input else {
            panic!("serial")
        };
        assert_eq!(s.baud, 9600);
        assert_eq!(
            (s.parity, s.data_bits, s.stop_bits),
            (Parity::None, DataBits::Eight, StopBits::One)
        );
        assert_eq!(s.framing.terminator, b"\r");
        assert_eq!(s.framing.max_frame_bytes, 4096);
        assert_eq!(s.rate_limit_per_sec, 50);
        assert_eq!(s.feedback, Feedback::default());
        let scan = &serial.scan;
        assert_eq!(scan.decoder, Decoder::Barcode);
        assert_eq!(scan.workflow, Workflow::Session);
        assert_eq!(scan.command_prefix, "TM:");
        assert_eq!(scan.idle_timeout, Duration::from_secs(300));
        assert_eq!(scan.idle_action, IdleAction::Discard);
        assert_eq!(scan.expired, ExpiredPolicy::Reject);
        assert_eq!(scan.default_uom.as_str(), "Units");
        assert_eq!(
            c.sources[1].scan.decoder,
            Decoder::Rfid(Rfid {
                dedup_window: Duration::from_millis(2000),
                portal: None
            })
        );
        let retry = Retry {
            initial: Duration::from_millis(500),
            max: Duration::from_millis(60_000),
        };
        for sink in &c.sinks {
            assert_eq!(sink.retry, retry);
            assert_eq!(sink.batch_size, 100);
        }
        let SinkTarget::Http(h) = &c.sinks[0].target else {
            panic!("http")
        };
        assert_eq!(h.timeout, Duration::from_secs(30));
        assert_eq!(
            c.sinks[1].target,
            SinkTarget::Mqtt(MqttSink {
                format: MqttFormat::Json,
                inflight: 10
            })
        );
        let SinkTarget::Odoo(o) = &c.sinks[2].target else {
            panic!("odoo")
        };
        assert_eq!(o.consumption_mode, ConsumptionMode::Picking);
        assert_eq!(c.sinks[2].kinds, [Kind::Receipt]);
        assert_eq!(
            c.sinks[3].target,
            SinkTarget::File(FileSink {
                path: PathBuf::from("./tallyman-data/outbox.jsonl")
            })
        );
        assert_eq!(c.remote.unwrap().rollback_after, Duration::from_secs(120));
        assert_eq!(c.health.interval, Duration::from_secs(30));
    }

    #[test]
    fn byte_strings_take_toml_escapes() {
        let text = r#"
            [agent]
            facility = "f"
            gateway = "g"
            [[sources]]
            name = "s"
            type = "serial"
            path = "/dev/ttyUSB0"
            terminator = "\r\n"
            gs_aliases = ["<GS>", "\u00ff"]
            feedback = { good = "\x07", bad = "\xff\e" }
            [[sinks]]
            name = "file"
            type = "file"
        "#;
        let c = parse_str(text, "f.toml").unwrap();
        let Input::Serial(s) = &c.sources[0].input else {
            panic!("serial")
        };
        assert_eq!(s.framing.terminator, b"\r\n");
        assert_eq!(s.feedback.good, [7]);
        assert_eq!(s.feedback.bad, [0xff, 0x1b]);
        assert_eq!(s.feedback.full, b"");
        assert_eq!(c.sources[0].scan.gs_aliases, [b"<GS>".to_vec(), vec![0xff]]);
    }

    #[test]
    fn sorted_and_rendered_with_the_file_name() {
        let lines = err_lines("[health]\ninterval_secs = 0\n[agent]\nfacility = \"a b\"\n");
        assert_eq!(
            lines,
            [
                "f.toml:1:1 sources: missing `[[sources]]`: at least one source is required",
                "f.toml:1:1 sinks: missing `[[sinks]]`: at least one sink is required",
                "f.toml:2:17 health.interval_secs: must be between 1 and 86400 seconds, found 0",
                "f.toml:3:1 agent.gateway: missing required key `gateway`",
                "f.toml:4:12 agent.facility: a facility name may contain only ASCII letters, digits, `-` and `_`, not ' '",
            ]
        );
    }

    #[test]
    fn load_reads_files_and_reports_unreadable_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, defaults::DEMO_TOML).unwrap();
        assert_eq!(load(&path).unwrap(), Config::demo().unwrap());

        let missing = dir.path().join("missing.toml");
        let e = load(&missing).unwrap_err();
        assert!(matches!(e, ConfigErrors::ReadFile { .. }), "{e}");
        assert!(e.diagnostics().is_empty());

        std::fs::write(&path, b"[agent]\nfacility = \"\xff\"\n").unwrap();
        let e = load(&path).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}:2:13: the file is not UTF-8 text: invalid byte 0xff",
                path.display()
            )
        );

        let big = vec![b'#'; usize::try_from(MAX_FILE_BYTES).unwrap() + 1];
        std::fs::write(&path, big).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("larger than"));
    }

    const LOCAL: &str = r#"
        [agent]
        facility = "north"
        gateway = "gw-1"
        data_dir = "/var/lib/tallyman"
        [spool]
        max_size_mb = 256
        [mqtt]
        endpoint = "mqtt://broker:1883"
        [[sources]]
        name = "s"
        type = "stdin"
        [[sinks]]
        name = "outbox"
        type = "file"
        [remote]
        trusted_keys = ["it:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="]
        rollback_after_secs = 30
    "#;

    const PUSHED: &str = r#"
        [mqtt]
        endpoint = "mqtt://central:1883"
        [[sources]]
        name = "s"
        type = "stdin"
        [[sinks]]
        name = "audit"
        type = "file"
        path = "audit.jsonl"
    "#;

    #[test]
    fn a_pushed_configuration_keeps_the_local_agent_spool_and_remote() {
        let local = parse_str(LOCAL, "local.toml").unwrap();
        let c = parse_pushed(PUSHED, "pushed", &local).unwrap();
        assert_eq!(c.agent, local.agent);
        assert_eq!(c.spool, local.spool);
        assert_eq!(c.remote, local.remote);
        let mqtt = c.mqtt.as_ref().unwrap();
        assert_eq!(mqtt.endpoint.host, "central");
        assert_eq!(mqtt.client_id, "tallyman-north-gw-1");
        assert_eq!(
            c.sinks[0].target,
            SinkTarget::File(FileSink {
                path: PathBuf::from("/var/lib/tallyman/audit.jsonl")
            })
        );
        // Stating the local values is fine.
        let same = format!(
            "[agent]\nfacility = \"north\"\ngateway = \"gw-1\"\ndata_dir = \"/var/lib/tallyman\"\n\
             [spool]\nmax_size_mb = 256\ncommit_window_ms = 2\n{PUSHED}"
        );
        assert_eq!(parse_pushed(&same, "pushed", &local).unwrap(), c);
    }

    #[test]
    fn a_pushed_configuration_may_not_change_local_settings_or_carry_remote() {
        let local = parse_str(LOCAL, "local.toml").unwrap();
        let refused = |text: String| {
            parse_pushed(&text, "pushed", &local)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            refused(format!(
                "[agent]\nfacility = \"north\"\ngateway = \"gw-2\"\n{PUSHED}"
            )),
            "a pushed configuration may not change [agent] gateway (the local file says gw-1, \
             the document gw-2)"
        );
        assert_eq!(
            refused(format!("[agent]\ndata_dir = \"/tmp/x\"\n{PUSHED}")),
            "a pushed configuration may not change [agent] data_dir (the local file says \
             /var/lib/tallyman, the document /tmp/x)"
        );
        assert_eq!(
            refused(format!("[spool]\nmax_size_mb = 512\n{PUSHED}")),
            "a pushed configuration may not change [spool] max_size_mb (the local file says \
             256, the document 512)"
        );
        assert_eq!(
            refused(format!(
                "{PUSHED}\n[remote]\ntrusted_keys = [\"it:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\"]\n"
            )),
            "a pushed configuration may not contain [remote]"
        );
        // Invalid content: every problem, as for a file.
        let e = refused(format!(
            "{PUSHED}\n[health]\ninterval_secs = 0\nbogus = 1\n"
        ));
        assert!(e.contains("pushed:"), "{e}");
        assert!(e.contains("health.interval_secs"), "{e}");
        assert!(e.contains("health.bogus"), "{e}");
        let e = refused("[agent]\nfacility = \"bad/id\"\n".to_owned());
        assert!(e.contains("agent.facility"), "{e}");
        assert!(refused("not toml = = =".to_owned()).contains("pushed:1:"));
    }

    #[test]
    fn a_document_is_checked_before_signing_without_a_local_file() {
        // Facility-wide: no gateway; [agent] and [spool] as a gateway might have them.
        let doc = format!(
            "[agent]\nfacility = \"north\"\ndata_dir = \"/srv/tallyman\"\n[spool]\nmax_size_mb = 512\n{PUSHED}"
        );
        assert!(check_pushed(&doc, "doc.toml").is_ok());
        assert!(check_pushed(PUSHED, "doc.toml").is_ok());
        assert!(matches!(
            check_pushed(
                &format!("{PUSHED}\n[remote]\ntrusted_keys = []\n"),
                "doc.toml"
            ),
            Err(PushedError::Remote)
        ));
        let Err(PushedError::Invalid(e)) = check_pushed(
            &format!("[agent]\nfacility = \"bad/id\"\n{PUSHED}\n[health]\ninterval_secs = 0\n"),
            "doc.toml",
        ) else {
            panic!("an invalid document passed");
        };
        let e = e.to_string();
        assert!(
            e.contains("doc.toml:") && e.contains("agent.facility"),
            "{e}"
        );
        assert!(e.contains("health.interval_secs"), "{e}");
    }
}
