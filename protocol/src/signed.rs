//! Signed documents: the configurations and commands central IT pushes to gateways
//! (PRODUCT §6, `config/set` and `cmd/{name}`).
//!
//! # Wire form
//!
//! A signed document is a JSON object of exactly three strings:
//!
//! ```json
//! {"key_id":"central-it-2026","payload":"<base64>","signature":"<base64, 64 bytes>"}
//! ```
//!
//! `payload` is the standard base64 (RFC 4648 §4, padded) of the exact bytes that were signed;
//! `signature` is the Ed25519 signature of those bytes by the key `key_id`. The payload bytes
//! are themselves JSON and carry everything that must be signed:
//!
//! ```json
//! {"type":"tallyman-config","version":7,"issued":"…","expires":null,"target":"north/all","config":"<TOML>"}
//! {"type":"tallyman-command","id":"<UUIDv7>","issued":"…","expires":"…","target":"north/gw-1",
//!  "command":"dlq-replay","args":{"ids":"all"}}
//! ```
//!
//! * `type`: `tallyman-config` or `tallyman-command`.
//! * `version` (configuration only): a positive integer that must grow from one document to the
//!   next.
//! * `id` (command only): a UUIDv7, never accepted twice.
//! * `issued`, `expires`: RFC 3339 instants; `expires` may be null for a configuration, a
//!   command must have one at most [`MAX_COMMAND_LIFETIME_MS`] after `issued`.
//! * `target`: `FACILITY/GATEWAY`, `FACILITY/all`, or null for every gateway that trusts the
//!   key.
//! * `config`: the TOML text; `command` and `args` (an object of strings): the command.
//!
//! # Verification
//!
//! [`verify_for`] runs every check a gateway makes that needs no state, in this order, and the
//! first that fails is the [`Refused`] reason:
//!
//! 1. size (at most [`MAX_DOCUMENT_BYTES`]) → 2. outer JSON → 3. the key id is among the trust
//!    anchors → 4. Ed25519 `verify_strict` over the payload bytes → 5. only then the payload is
//!    decoded → 6. its type is the one of the topic → 7. the target is this gateway or its
//!    facility's `all` → 8. not expired → 9. (command) the expiry is at most 24 h after issue.
//!
//! What needs the gateway's state stays with the caller, with the reason texts here:
//! [`Verified::check_version`] (a configuration's version must be newer than the running one
//! and than every one already attempted) and [`Refused::ReplayedCommand`] (a command id seen
//! before).
//!
//! Architecture invariant: like the rest of this crate, no I/O and no clock (`now` is an
//! argument), and no panic on any input.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::Signer;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::escape;
use crate::event::{FacilityId, GatewayId, Timestamp};
use crate::topic::{CommandName, Target};

/// The largest signed document accepted, in bytes.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// The longest a command may be valid: 24 hours after it was issued.
pub const MAX_COMMAND_LIFETIME_MS: i64 = 24 * 60 * 60 * 1000;
/// Most arguments of one command.
pub const MAX_COMMAND_ARGS: usize = 32;
/// Longest argument value, in bytes.
pub const MAX_ARG_VALUE_BYTES: usize = 64 * 1024;

/// A key that signed documents may be verified with: the `[remote] trusted_keys` entry
/// `KEY_ID:<base64 public key>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub id: String,
    pub public_key: [u8; 32],
}

impl FromStr for TrustAnchor {
    type Err = String;

    /// `KEY_ID:<base64 public key>`, the line `tallyman keygen` writes to `PREFIX.pub`.
    fn from_str(s: &str) -> Result<TrustAnchor, String> {
        let (id, b64) = s
            .trim()
            .split_once(':')
            .ok_or("a trusted key is `KEY_ID:<base64 Ed25519 public key>`")?;
        if !valid_key_id(id) {
            return Err(format!(
                "key id `{}` must be 1 to 64 ASCII letters, digits, `.`, `-` or `_`",
                escape(id.as_bytes())
            ));
        }
        let key = BASE64
            .decode(b64.as_bytes())
            .map_err(|e| format!("key `{id}`: not base64: {e}"))?;
        let public_key: [u8; 32] = key.as_slice().try_into().map_err(|_| {
            format!(
                "key `{id}`: an Ed25519 public key is 32 bytes, this one has {}",
                key.len()
            )
        })?;
        Ok(TrustAnchor {
            id: id.to_owned(),
            public_key,
        })
    }
}

/// Whether `id` is a key id: 1 to 64 ASCII letters, digits, `.`, `-` or `_` (the rule of
/// `[remote] trusted_keys`).
pub fn valid_key_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
}

/// What a signed document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// `tallyman-config`, pushed on `config/set`.
    Config,
    /// `tallyman-command`, sent on `cmd/{name}`.
    Command,
}

impl DocKind {
    /// The payload's `type`.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::Config => "tallyman-config",
            DocKind::Command => "tallyman-command",
        }
    }
}

impl fmt::Display for DocKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a document is for: one gateway of a facility (`north/gw-1`) or all of them
/// (`north/all`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Addressee {
    pub facility: FacilityId,
    pub gateway: Target,
}

impl Addressee {
    /// Whether a gateway `gateway` of `facility` is addressed.
    pub fn includes(&self, facility: &FacilityId, gateway: &GatewayId) -> bool {
        self.facility == *facility
            && match &self.gateway {
                Target::All => true,
                Target::Gateway(g) => g == gateway,
            }
    }
}

impl fmt::Display for Addressee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.facility, self.gateway)
    }
}

impl FromStr for Addressee {
    type Err = String;

    /// `FACILITY/GATEWAY` or `FACILITY/all`.
    fn from_str(s: &str) -> Result<Addressee, String> {
        let (facility, gateway) = s.split_once('/').ok_or_else(|| {
            format!(
                "a target is FACILITY/GATEWAY or FACILITY/all, found \"{}\"",
                escape(s.as_bytes())
            )
        })?;
        let facility = FacilityId::new(facility).map_err(|e| e.to_string())?;
        let gateway = if gateway == GatewayId::RESERVED_ALL {
            Target::All
        } else {
            Target::Gateway(GatewayId::new(gateway).map_err(|e| e.to_string())?)
        };
        Ok(Addressee { facility, gateway })
    }
}

/// Why a signed document was refused. The `Display` text is the reason published in
/// `config/state` and `cmd/{name}/result`: one sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("the document is {bytes} bytes; a signed document is at most {max} bytes")]
    TooLarge { bytes: usize, max: usize },
    #[error(
        "the document is not signed: a signed document is {{\"key_id\", \"payload\", \"signature\"}}"
    )]
    Unsigned,
    #[error("not a signed document: {0}")]
    Malformed(String),
    #[error("unknown key id `{key_id}`")]
    UnknownKey { key_id: String },
    #[error("the trusted key `{key_id}` is not a valid Ed25519 public key")]
    InvalidAnchor { key_id: String },
    #[error("bad signature")]
    BadSignature,
    #[error("the signed payload is invalid: {0}")]
    InvalidPayload(String),
    #[error("the document is a {found}; this topic takes a {expected}")]
    WrongType { expected: DocKind, found: DocKind },
    #[error("signed for {target}")]
    OtherTarget { target: Addressee },
    #[error("expired at {at}")]
    Expired { at: Timestamp },
    #[error("a command must carry an expiry")]
    CommandWithoutExpiry,
    #[error(
        "a command may be valid for at most 24 h; this one was issued at {issued} and expires at {expires}"
    )]
    CommandLifetime {
        issued: Timestamp,
        expires: Timestamp,
    },
    #[error("signed as command `{signed}`, received on cmd/{topic}")]
    CommandMismatch { signed: String, topic: String },
    #[error("unknown command `{name}`")]
    UnknownCommand { name: String },
    #[error("command id {id} was already received (a replay)")]
    ReplayedCommand { id: Uuid },
    #[error("version {version} is not newer than the running version {running}")]
    NotNewer { version: u64, running: u64 },
    #[error("version {version} is not newer than version {highest}, already attempted")]
    AlreadyAttempted { version: u64, highest: u64 },
    #[error("a pushed configuration may not contain [remote]")]
    RemoteSection,
    #[error(
        "a pushed configuration may not change {key} (the local file says {local}, the document {pushed})"
    )]
    LocalSetting {
        key: &'static str,
        local: String,
        pushed: String,
    },
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// What a signed command asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The UUIDv7 that makes the command unique (replays are refused by it).
    pub id: Uuid,
    pub name: CommandName,
    pub args: BTreeMap<String, String>,
}

/// The signed content of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A configuration: its version and the TOML text (not yet validated as a configuration).
    Config {
        version: u64,
        toml: String,
    },
    Command(Command),
}

/// A document whose signature is good and whose payload is well formed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The trust anchor it was verified with.
    pub key_id: String,
    pub issued: Timestamp,
    pub expires: Option<Timestamp>,
    /// None: every gateway that trusts the key.
    pub target: Option<Addressee>,
    pub payload: Payload,
}

impl Verified {
    pub fn kind(&self) -> DocKind {
        match self.payload {
            Payload::Config { .. } => DocKind::Config,
            Payload::Command(_) => DocKind::Command,
        }
    }

    /// The configuration's version (none for a command).
    pub fn version(&self) -> Option<u64> {
        match self.payload {
            Payload::Config { version, .. } => Some(version),
            Payload::Command(_) => None,
        }
    }

    /// The command (none for a configuration).
    pub fn command(&self) -> Option<&Command> {
        match &self.payload {
            Payload::Command(c) => Some(c),
            Payload::Config { .. } => None,
        }
    }

    /// The document is of the kind the topic it came on takes.
    pub fn check_kind(&self, expected: DocKind) -> Result<(), Refused> {
        let found = self.kind();
        if found == expected {
            Ok(())
        } else {
            Err(Refused::WrongType { expected, found })
        }
    }

    /// The document addresses this gateway: its own id, its facility's `all`, or everyone.
    pub fn check_target(&self, facility: &FacilityId, gateway: &GatewayId) -> Result<(), Refused> {
        match &self.target {
            Some(t) if !t.includes(facility, gateway) => {
                Err(Refused::OtherTarget { target: t.clone() })
            }
            _ => Ok(()),
        }
    }

    /// Not expired at `now` (a document expiring at `now` is expired).
    pub fn check_expiry(&self, now: Timestamp) -> Result<(), Refused> {
        match self.expires {
            Some(at) if now >= at => Err(Refused::Expired { at }),
            _ => Ok(()),
        }
    }

    /// A command has an expiry at most [`MAX_COMMAND_LIFETIME_MS`] after it was issued (so that
    /// the ids a gateway must remember are bounded). Nothing to check for a configuration.
    pub fn check_command_lifetime(&self) -> Result<(), Refused> {
        if self.kind() != DocKind::Command {
            return Ok(());
        }
        let expires = self.expires.ok_or(Refused::CommandWithoutExpiry)?;
        let lifetime = expires
            .unix_millis()
            .saturating_sub(self.issued.unix_millis());
        if lifetime > MAX_COMMAND_LIFETIME_MS {
            return Err(Refused::CommandLifetime {
                issued: self.issued,
                expires,
            });
        }
        Ok(())
    }

    /// A configuration's version is newer than the one running (`running`, none when the local
    /// file runs) and than the highest one already attempted (`highest_attempted`: applied,
    /// rejected or rolled back). Returns the version. A command passes.
    pub fn check_version(
        &self,
        running: Option<u64>,
        highest_attempted: Option<u64>,
    ) -> Result<Option<u64>, Refused> {
        let Some(version) = self.version() else {
            return Ok(None);
        };
        if let Some(running) = running.filter(|r| version <= *r) {
            return Err(Refused::NotNewer { version, running });
        }
        if let Some(highest) = highest_attempted.filter(|h| version <= *h) {
            return Err(Refused::AlreadyAttempted { version, highest });
        }
        Ok(Some(version))
    }

    /// A command arrived on `cmd/{topic_name}`: it must have been signed as that command.
    pub fn check_command_name(&self, topic_name: &CommandName) -> Result<(), Refused> {
        match self.command() {
            Some(c) if c.name != *topic_name => Err(Refused::CommandMismatch {
                signed: c.name.to_string(),
                topic: topic_name.to_string(),
            }),
            _ => Ok(()),
        }
    }
}

/// The outer document.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Outer {
    key_id: Option<String>,
    payload: Option<String>,
    signature: Option<String>,
}

/// The payload as it travels; checked into [`Verified`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    issued: Timestamp,
    // Always written (null when none); may be left out on reading.
    #[serde(default)]
    expires: Option<Timestamp>,
    #[serde(default)]
    target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    config: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<BTreeMap<String, String>>,
}

/// Verify a document's signature and decode its payload, then check its expiry: steps 1–5 and
/// 8 of the module's order. What depends on the topic and the gateway is left to the
/// [`Verified`] checks; [`verify_for`] runs them all in order.
pub fn verify(bytes: &[u8], anchors: &[TrustAnchor], now: Timestamp) -> Result<Verified, Refused> {
    let verified = verify_signature(bytes, anchors)?;
    verified.check_expiry(now)?;
    Ok(verified)
}

/// Every check a gateway makes without state, in the module's order: a document of `kind`,
/// for the gateway `gateway` of `facility`, at `now`. The version (configuration) and the
/// seen ids (command) are the caller's.
pub fn verify_for(
    bytes: &[u8],
    anchors: &[TrustAnchor],
    kind: DocKind,
    facility: &FacilityId,
    gateway: &GatewayId,
    now: Timestamp,
) -> Result<Verified, Refused> {
    let verified = verify_signature(bytes, anchors)?;
    verified.check_kind(kind)?;
    verified.check_target(facility, gateway)?;
    verified.check_expiry(now)?;
    verified.check_command_lifetime()?;
    Ok(verified)
}

/// Steps 1–5 only: size, outer JSON, key id, signature, payload. For a caller that wants the
/// verified content (a command's id, a configuration's version) even when a later check
/// refuses it; it must then run the [`Verified`] checks itself, in the module's order.
pub fn verify_signature(bytes: &[u8], anchors: &[TrustAnchor]) -> Result<Verified, Refused> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(Refused::TooLarge {
            bytes: bytes.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| {
            if e.is_data() {
                Refused::Malformed("a signed document is a JSON object".into())
            } else {
                Refused::Malformed(format!("not JSON: {e}"))
            }
        })?;
    // A plain JSON command or configuration, sent without signing it.
    if !object.contains_key("signature") {
        return Err(Refused::Unsigned);
    }
    let outer: Outer = serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| {
        Refused::Malformed(format!(
            "expected {{\"key_id\", \"payload\", \"signature\"}}: {e}"
        ))
    })?;
    let (Some(key_id), Some(payload), Some(signature)) =
        (outer.key_id, outer.payload, outer.signature)
    else {
        return Err(Refused::Unsigned);
    };
    let anchor = anchors
        .iter()
        .find(|a| a.id == key_id)
        .ok_or_else(|| Refused::UnknownKey {
            key_id: escape(key_id.as_bytes()),
        })?;
    let payload = BASE64
        .decode(payload.as_bytes())
        .map_err(|e| Refused::Malformed(format!("`payload` is not base64: {e}")))?;
    let signature = BASE64
        .decode(signature.as_bytes())
        .map_err(|e| Refused::Malformed(format!("`signature` is not base64: {e}")))?;
    let signature: [u8; 64] = signature.as_slice().try_into().map_err(|_| {
        Refused::Malformed(format!(
            "an Ed25519 signature is 64 bytes, `signature` has {}",
            signature.len()
        ))
    })?;
    let public = ed25519_dalek::VerifyingKey::from_bytes(&anchor.public_key).map_err(|_| {
        Refused::InvalidAnchor {
            key_id: anchor.id.clone(),
        }
    })?;
    public
        .verify_strict(&payload, &ed25519_dalek::Signature::from_bytes(&signature))
        .map_err(|_| Refused::BadSignature)?;
    let verified = decode_payload(&payload)?;
    Ok(Verified {
        key_id: anchor.id.clone(),
        ..verified
    })
}

/// Step 5: the signed bytes into a [`Verified`] (key id filled in by the caller).
fn decode_payload(bytes: &[u8]) -> Result<Verified, Refused> {
    let invalid = |m: String| Refused::InvalidPayload(m);
    let raw: RawPayload = serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
    let target = match raw.target {
        None => None,
        Some(t) => Some(t.parse::<Addressee>().map_err(invalid)?),
    };
    let payload = match raw.kind.as_str() {
        "tallyman-config" => {
            if raw.id.is_some() || raw.command.is_some() || raw.args.is_some() {
                return Err(invalid(
                    "a tallyman-config has no `id`, `command` or `args`".into(),
                ));
            }
            let version = raw
                .version
                .ok_or_else(|| invalid("a tallyman-config needs a `version`".into()))?;
            if version == 0 {
                return Err(invalid("a configuration's version is at least 1".into()));
            }
            let toml = raw
                .config
                .ok_or_else(|| invalid("a tallyman-config needs a `config`".into()))?;
            Payload::Config { version, toml }
        }
        "tallyman-command" => {
            if raw.version.is_some() || raw.config.is_some() {
                return Err(invalid(
                    "a tallyman-command has no `version` or `config`".into(),
                ));
            }
            let id = raw
                .id
                .ok_or_else(|| invalid("a tallyman-command needs an `id`".into()))?;
            let id = parse_command_id(&id).map_err(invalid)?;
            let name = raw
                .command
                .ok_or_else(|| invalid("a tallyman-command needs a `command`".into()))?;
            let name = CommandName::new(name).map_err(|e| invalid(e.to_string()))?;
            let args = raw.args.unwrap_or_default();
            check_args(&args).map_err(invalid)?;
            Payload::Command(Command { id, name, args })
        }
        other => {
            return Err(invalid(format!(
                "unknown type \"{}\"; expected tallyman-config or tallyman-command",
                escape(other.as_bytes())
            )));
        }
    };
    Ok(Verified {
        key_id: String::new(),
        issued: raw.issued,
        expires: raw.expires,
        target,
        payload,
    })
}

fn parse_command_id(s: &str) -> Result<Uuid, String> {
    let id = Uuid::try_parse(s)
        .map_err(|_| format!("the command id \"{}\" is not a UUID", escape(s.as_bytes())))?;
    if id.get_version_num() != 7 {
        return Err(format!("the command id {id} is not a UUIDv7"));
    }
    Ok(id)
}

/// Whether `key` can name a command argument: 1 to 32 lowercase ASCII letters, digits, `-` or
/// `_`.
pub fn valid_arg_name(key: &str) -> bool {
    (1..=32).contains(&key.len())
        && key
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_'))
}

fn check_args(args: &BTreeMap<String, String>) -> Result<(), String> {
    if args.len() > MAX_COMMAND_ARGS {
        return Err(format!(
            "a command has at most {MAX_COMMAND_ARGS} arguments, this one {}",
            args.len()
        ));
    }
    for (key, value) in args {
        if !valid_arg_name(key) {
            return Err(format!(
                "argument name \"{}\": 1 to 32 lowercase letters, digits, `-` or `_`",
                escape(key.as_bytes())
            ));
        }
        if value.len() > MAX_ARG_VALUE_BYTES {
            return Err(format!(
                "argument `{key}` is {} bytes; at most {MAX_ARG_VALUE_BYTES}",
                value.len()
            ));
        }
    }
    Ok(())
}

/// A private key of central IT, as `tallyman keygen` writes it: `KEY_ID:<base64 32-byte
/// seed>`. Its `Debug` does not show the secret.
#[derive(Clone)]
pub struct SigningKey {
    id: String,
    key: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("id", &self.id)
            .field("public_key", &BASE64.encode(self.public_key()))
            .finish_non_exhaustive()
    }
}

/// Why a key or a document to sign is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    #[error("key id `{0}` must be 1 to 64 ASCII letters, digits, `.`, `-` or `_`")]
    KeyId(String),
    #[error("not a private key file: {0}")]
    KeyFile(String),
    #[error("the signed document would be {bytes} bytes; at most {max} are accepted")]
    TooLarge { bytes: usize, max: usize },
    #[error("{0}")]
    Command(String),
}

impl SigningKey {
    /// The key `id` from its 32-byte secret seed.
    pub fn from_seed(id: &str, seed: [u8; 32]) -> Result<SigningKey, SignError> {
        if !valid_key_id(id) {
            return Err(SignError::KeyId(escape(id.as_bytes())));
        }
        Ok(SigningKey {
            id: id.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// Read a private key file's text: one line `KEY_ID:<base64 seed>`.
    pub fn parse(text: &str) -> Result<SigningKey, SignError> {
        let line = text.trim();
        let (id, b64) = line.split_once(':').ok_or_else(|| {
            SignError::KeyFile("expected one line `KEY_ID:<base64 private key>`".into())
        })?;
        if !valid_key_id(id) {
            return Err(SignError::KeyId(escape(id.as_bytes())));
        }
        let seed = BASE64
            .decode(b64.as_bytes())
            .map_err(|e| SignError::KeyFile(format!("the key is not base64: {e}")))?;
        let seed: [u8; 32] = seed.as_slice().try_into().map_err(|_| {
            SignError::KeyFile(format!(
                "an Ed25519 private key is 32 bytes, this one has {}",
                seed.len()
            ))
        })?;
        SigningKey::from_seed(id, seed)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    /// The private key file's text: `KEY_ID:<base64 seed>` and a newline.
    pub fn to_key_file(&self) -> String {
        format!("{}:{}\n", self.id, BASE64.encode(self.key.to_bytes()))
    }

    /// The public key as `[remote] trusted_keys` takes it: `KEY_ID:<base64 public key>`.
    pub fn public_line(&self) -> String {
        format!("{}:{}", self.id, BASE64.encode(self.public_key()))
    }

    /// The trust anchor of this key.
    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor {
            id: self.id.clone(),
            public_key: self.public_key(),
        }
    }
}

/// Sign `payload` as it is: the document `{"key_id","payload","signature"}`. For tools and
/// tests that build their own payload; [`sign_config`] and [`sign_command`] build a valid one.
pub fn sign_payload(key: &SigningKey, payload: &[u8]) -> String {
    let signature = key.key.sign(payload);
    // Three strings always serialise.
    serde_json::json!({
        "key_id": key.id,
        "payload": BASE64.encode(payload),
        "signature": BASE64.encode(signature.to_bytes()),
    })
    .to_string()
}

fn sign_raw(key: &SigningKey, raw: &RawPayload) -> Result<String, SignError> {
    let payload = serde_json::to_vec(raw).map_err(|e| SignError::Command(e.to_string()))?;
    let document = sign_payload(key, &payload);
    if document.len() > MAX_DOCUMENT_BYTES {
        return Err(SignError::TooLarge {
            bytes: document.len(),
            max: MAX_DOCUMENT_BYTES,
        });
    }
    Ok(document)
}

/// A signed configuration document: `toml` (the complete configuration, without `[remote]`;
/// not checked here) as `version`, issued at `issued`, valid until `expires` (none: no
/// expiry), for `target` (none: every gateway that trusts the key).
pub fn sign_config(
    key: &SigningKey,
    version: u64,
    expires: Option<Timestamp>,
    target: Option<&Addressee>,
    toml: &str,
    issued: Timestamp,
) -> Result<String, SignError> {
    if version == 0 {
        return Err(SignError::Command(
            "a configuration's version is at least 1".into(),
        ));
    }
    sign_raw(
        key,
        &RawPayload {
            kind: DocKind::Config.as_str().into(),
            version: Some(version),
            id: None,
            issued,
            expires,
            target: target.map(ToString::to_string),
            config: Some(toml.to_owned()),
            command: None,
            args: None,
        },
    )
}

/// A signed command: `command` with its arguments, for `target` (none: every gateway that
/// trusts the key), issued at `issued`, valid until `expires` (at most 24 h later). `id` must
/// be a fresh UUIDv7.
pub fn sign_command(
    key: &SigningKey,
    command: &Command,
    target: Option<&Addressee>,
    issued: Timestamp,
    expires: Timestamp,
) -> Result<String, SignError> {
    if command.id.get_version_num() != 7 {
        return Err(SignError::Command(format!(
            "the command id {} is not a UUIDv7",
            command.id
        )));
    }
    check_args(&command.args).map_err(SignError::Command)?;
    let lifetime = expires.unix_millis().saturating_sub(issued.unix_millis());
    if lifetime <= 0 || lifetime > MAX_COMMAND_LIFETIME_MS {
        return Err(SignError::Command(format!(
            "a command expires after it is issued and at most 24 h later; issued {issued}, expires {expires}"
        )));
    }
    sign_raw(
        key,
        &RawPayload {
            kind: DocKind::Command.as_str().into(),
            version: None,
            id: Some(command.id.to_string()),
            issued,
            expires: Some(expires),
            target: target.map(ToString::to_string),
            config: None,
            command: Some(command.name.to_string()),
            args: Some(command.args.clone()),
        },
    )
}

#[cfg(test)]
mod tests;
