//! Central IT's tools (PRODUCT §6, §7): `tallyman keygen`, `tallyman config sign` and
//! `tallyman cmd sign`. They print or write what `tallyman_protocol::signed` defines; the
//! gateway side is `crate::fleet`.
//!
//! Exit status: 0 done; 1 the input was refused (an invalid configuration file, a `[remote]`
//! section, an unknown command, a bad argument); 2 anything else (a key file that cannot be
//! read, a file that exists already).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use tallyman_protocol::event::Timestamp;
use tallyman_protocol::signed::{self, Addressee, SigningKey};
use tallyman_protocol::topic::CommandName;

use crate::cli::{CmdCommand, KeygenArgs};
use crate::clock;
use crate::fleet::commands::NAMES;

/// The largest private key file read (a real one is about 100 bytes).
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// `tallyman keygen --id KEY_ID --out PREFIX`.
pub fn keygen(args: &KeygenArgs) -> anyhow::Result<ExitCode> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed)
        .map_err(|e| anyhow::anyhow!("the system's random generator failed: {e}"))?;
    let key = match SigningKey::from_seed(&args.id, seed) {
        Ok(k) => k,
        Err(e) => return refused(e),
    };
    let private = with_suffix(&args.out, "key");
    let public = with_suffix(&args.out, "pub");
    for path in [&private, &public] {
        if path.exists() {
            anyhow::bail!(
                "{} exists already; keygen never overwrites a key",
                path.display()
            );
        }
    }
    write_new(&private, key.to_key_file().as_bytes(), 0o600)?;
    if let Err(e) = write_new(
        &public,
        format!("{}\n", key.public_line()).as_bytes(),
        0o644,
    ) {
        // Leave no private key whose public half is missing.
        let _ = std::fs::remove_file(&private);
        return Err(e);
    }
    eprintln!(
        "Wrote {} (private: keep it secret) and {}.\nPut this line in each gateway's [remote] trusted_keys:\n  \"{}\"",
        private.display(),
        public.display(),
        key.public_line()
    );
    Ok(ExitCode::SUCCESS)
}

/// `tallyman config sign --key K --version N [--expires T] [--target F/G] FILE`.
pub fn sign_config(
    key: &Path,
    version: u64,
    expires: Option<&str>,
    target: Option<&str>,
    file: &Path,
) -> anyhow::Result<ExitCode> {
    let key = read_key(key)?;
    let expires = match expires.map(Timestamp::parse).transpose() {
        Ok(e) => e,
        Err(e) => return refused(format!("--expires: {e}")),
    };
    let target = match parse_target(target) {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    if version == 0 {
        return refused("--version: a configuration's version is at least 1");
    }
    let text = read_config_text(file)?;
    let name = file.display().to_string();
    let config = match tallyman_config::check_pushed(&text, &name) {
        Ok(config) => config,
        Err(tallyman_config::PushedError::Remote) => {
            return refused(format!(
                "{name}: {}; trust anchors and the rollback policy stay in each gateway's local file",
                signed::Refused::RemoteSection
            ));
        }
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::FAILURE);
        }
    };
    // What the gateway would refuse besides the file's rules.
    if let Err(why) = crate::supervisor::check_runnable(&config) {
        return refused(format!("{name}: {why}"));
    }
    if config.mqtt.is_none() {
        return refused(format!("{name}: {}", crate::fleet::config::MQTT_REQUIRED));
    }
    let now = clock::now();
    if let Some(at) = expires.filter(|at| *at <= now) {
        return refused(format!("--expires: {at} is in the past"));
    }
    match signed::sign_config(&key, version, expires, target.as_ref(), &text, now) {
        Ok(document) => {
            println!("{document}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

/// `tallyman cmd sign …`.
pub fn run_cmd(cmd: &CmdCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CmdCommand::Sign {
            key,
            target,
            expires_in,
            name,
            args,
        } => sign_command(key, target.as_deref(), *expires_in, name, args),
    }
}

fn sign_command(
    key: &Path,
    target: Option<&str>,
    expires_in: u64,
    name: &str,
    args: &[String],
) -> anyhow::Result<ExitCode> {
    let key = read_key(key)?;
    let target = match parse_target(target) {
        Ok(t) => t,
        Err(e) => return refused(e),
    };
    if !NAMES.contains(&name) {
        return refused(format!(
            "unknown command `{name}`; the commands are {}",
            NAMES.join(", ")
        ));
    }
    let name = match CommandName::new(name) {
        Ok(n) => n,
        Err(e) => return refused(e),
    };
    let max_secs = signed::MAX_COMMAND_LIFETIME_MS / 1000;
    if expires_in == 0 || expires_in > max_secs.unsigned_abs() {
        return refused(format!(
            "--expires-in: 1 to {max_secs} seconds, found {expires_in}"
        ));
    }
    let mut parsed = BTreeMap::new();
    for arg in args {
        let Some((k, v)) = arg.split_once('=') else {
            return refused(format!("--arg `{arg}`: expected KEY=VALUE"));
        };
        if !signed::valid_arg_name(k) {
            return refused(format!(
                "--arg `{arg}`: an argument name is 1 to 32 lowercase letters, digits, `-` or `_`"
            ));
        }
        if parsed.insert(k.to_owned(), v.to_owned()).is_some() {
            return refused(format!("--arg `{k}` given twice"));
        }
    }
    let issued = clock::now();
    let lifetime_ms = i64::try_from(expires_in.saturating_mul(1000)).unwrap_or(i64::MAX);
    let expires = Timestamp::from_unix_millis(issued.unix_millis().saturating_add(lifetime_ms))
        .context("the expiry is beyond year 9999")?;
    let command = signed::Command {
        id: *clock::new_event_id(issued).as_uuid(),
        name,
        args: parsed,
    };
    match signed::sign_command(&key, &command, target.as_ref(), issued, expires) {
        Ok(document) => {
            println!("{document}");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => refused(e),
    }
}

/// Say why on stderr and exit 1.
fn refused(why: impl std::fmt::Display) -> anyhow::Result<ExitCode> {
    eprintln!("tallyman: {why}");
    Ok(ExitCode::FAILURE)
}

fn parse_target(target: Option<&str>) -> Result<Option<Addressee>, String> {
    target
        .map(|t| t.parse::<Addressee>().map_err(|e| format!("--target: {e}")))
        .transpose()
}

/// `PREFIX.suffix`, keeping whatever dots PREFIX has.
fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = prefix.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}

/// Create `path` (never overwriting: `O_EXCL`) with `mode`, write `bytes`, sync.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    // The umask may have taken bits away, never added; make the mode exact.
    file.set_permissions(std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// Read a private key file: not readable by group or others, at most 4 KiB.
fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let file =
        std::fs::File::open(path).with_context(|| format!("opening the key {}", path.display()))?;
    let meta = file
        .metadata()
        .with_context(|| format!("reading the key {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        anyhow::bail!(
            "the key {} is readable by others (mode {mode:04o}); `chmod 600` it",
            path.display()
        );
    }
    let mut text = String::new();
    file.take(MAX_KEY_FILE_BYTES)
        .read_to_string(&mut text)
        .with_context(|| format!("reading the key {}", path.display()))?;
    SigningKey::parse(&text).with_context(|| format!("the key {}", path.display()))
}

/// A configuration file's text, bounded like `tallyman_config::load`.
fn read_config_text(path: &Path) -> anyhow::Result<String> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(tallyman_config::MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() as u64 > tallyman_config::MAX_FILE_BYTES {
        anyhow::bail!(
            "{} is larger than {} bytes; this is not a configuration",
            path.display(),
            tallyman_config::MAX_FILE_BYTES
        );
    }
    String::from_utf8(bytes).with_context(|| format!("{} is not UTF-8 text", path.display()))
}
