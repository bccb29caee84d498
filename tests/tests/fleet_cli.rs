//! Central IT's tools with the real binary: `tallyman keygen`, `tallyman config sign` and
//! `tallyman cmd sign`; what they print verifies with the library a gateway uses, and what they
//! refuse is refused with a clear message and exit status 1 (input) or 2 (files).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tallyman_protocol::event::{FacilityId, GatewayId, Timestamp};
use tallyman_protocol::signed::{self, DocKind, Payload, TrustAnchor};
use tallyman_protocol::topic::Target;
use tallyman_tests::tallyman_bin;

fn tallyman(args: &[&str]) -> Output {
    Command::new(tallyman_bin()).args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp::from_unix_millis(i64::try_from(ms).unwrap()).unwrap()
}

/// `tallyman keygen --id central-it-2026 --out DIR/central`: the key file and the anchor.
fn keygen(dir: &Path) -> (PathBuf, TrustAnchor) {
    let prefix = dir.join("central");
    let out = tallyman(&[
        "keygen",
        "--id",
        "central-it-2026",
        "--out",
        prefix.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = std::fs::read_to_string(dir.join("central.pub")).unwrap();
    (dir.join("central.key"), public.trim().parse().unwrap())
}

/// A facility-wide document: no `gateway`, no `data_dir`, no `[spool]` (each gateway's own).
const CONFIG: &str = r#"[agent]
facility = "north"

[mqtt]
endpoint = "mqtts://broker.example.org:8883"

[[sources]]
name = "handhelds"
type = "mqtt"

[[sinks]]
name = "outbox"
type = "file"
path = "outbox.jsonl"
"#;

#[test]
fn keygen_writes_a_private_key_only_its_owner_reads_and_the_trusted_keys_line() {
    let dir = tempfile::tempdir().unwrap();
    let (key, anchor) = keygen(dir.path());
    assert_eq!(anchor.id, "central-it-2026");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let private = std::fs::read_to_string(&key).unwrap();
    assert!(private.starts_with("central-it-2026:"), "{private}");
    let public = std::fs::read_to_string(dir.path().join("central.pub")).unwrap();
    assert_eq!(public.lines().count(), 1);
    assert_ne!(private.trim(), public.trim());

    // The .pub line is exactly what `[remote] trusted_keys` takes.
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "{}\n[remote]\ntrusted_keys = [\"{}\"]\n",
            CONFIG.replace(
                "facility = \"north\"\n",
                "facility = \"north\"\ngateway = \"gw-1\"\n"
            ),
            public.trim()
        ),
    )
    .unwrap();
    let out = tallyman(&["config", "check", config.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Never overwritten: the second run fails and the first key stays.
    let again = tallyman(&[
        "keygen",
        "--id",
        "other",
        "--out",
        dir.path().join("central").to_str().unwrap(),
    ]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read_to_string(&key).unwrap(), private);

    let bad = tallyman(&[
        "keygen",
        "--id",
        "bad id",
        "--out",
        dir.path().join("x").to_str().unwrap(),
    ]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("key id `bad id`"), "{}", stderr(&bad));
    assert!(!dir.path().join("x.key").exists());
}

#[test]
fn config_sign_prints_a_document_the_gateway_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let (key, anchor) = keygen(dir.path());
    let file = dir.path().join("pushed.toml");
    std::fs::write(&file, CONFIG).unwrap();
    let out = tallyman(&[
        "config",
        "sign",
        "--key",
        key.to_str().unwrap(),
        "--version",
        "7",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--target",
        "north/all",
        file.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let document = String::from_utf8(out.stdout).unwrap();
    assert_eq!(document.lines().count(), 1);
    let v = signed::verify_for(
        document.trim().as_bytes(),
        &[anchor],
        DocKind::Config,
        &FacilityId::new("north").unwrap(),
        &GatewayId::new("gw-1").unwrap(),
        now(),
    )
    .unwrap();
    assert_eq!(
        v.payload,
        Payload::Config {
            version: 7,
            toml: CONFIG.into()
        }
    );
    assert_eq!(v.key_id, "central-it-2026");
    assert_eq!(v.target.unwrap().gateway, Target::All);
    assert_eq!(
        v.expires,
        Some(Timestamp::parse("2099-01-01T00:00:00Z").unwrap())
    );
    assert!(v.issued <= now());
}

#[test]
fn config_sign_refuses_remote_invalid_files_bad_flags_and_open_keys() {
    let dir = tempfile::tempdir().unwrap();
    let (key, _) = keygen(dir.path());
    let key = key.to_str().unwrap().to_owned();
    let sign = |file: &Path, extra: &[&str]| {
        let mut args = vec!["config", "sign", "--key", &key, "--version", "3"];
        args.extend_from_slice(extra);
        args.push(file.to_str().unwrap());
        tallyman(&args)
    };

    let remote = dir.path().join("remote.toml");
    std::fs::write(
        &remote,
        format!(
            "{CONFIG}\n[remote]\ntrusted_keys = [\"{}\"]\n",
            std::fs::read_to_string(dir.path().join("central.pub"))
                .unwrap()
                .trim()
        ),
    )
    .unwrap();
    let out = sign(&remote, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a pushed configuration may not contain [remote]"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());

    let invalid = dir.path().join("invalid.toml");
    std::fs::write(
        &invalid,
        CONFIG.replace("type = \"file\"", "type = \"fax\""),
    )
    .unwrap();
    let out = sign(&invalid, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("invalid.toml:"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());

    // The gateway could not be reached again without [mqtt]: the gateway refuses it, and so
    // does signing.
    let unreachable = dir.path().join("unreachable.toml");
    std::fs::write(
        &unreachable,
        CONFIG
            .replace(
                "[mqtt]\nendpoint = \"mqtts://broker.example.org:8883\"\n",
                "",
            )
            .replace(
                "name = \"handhelds\"\ntype = \"mqtt\"",
                "name = \"stdin\"\ntype = \"stdin\"",
            ),
    )
    .unwrap();
    let out = sign(&unreachable, &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("a pushed configuration must keep [mqtt]"),
        "{}",
        stderr(&out)
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, CONFIG).unwrap();
    for (flags, want) in [
        (&["--target", "north"][..], "--target"),
        (&["--expires", "tomorrow"][..], "--expires"),
        (&["--expires", "2001-01-01T00:00:00Z"][..], "in the past"),
    ] {
        let out = sign(&good, flags);
        assert_eq!(out.status.code(), Some(1), "{flags:?}");
        assert!(stderr(&out).contains(want), "{flags:?}: {}", stderr(&out));
    }

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = sign(&good, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("readable by others"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn cmd_sign_prints_a_fresh_command_valid_for_ten_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let (key, anchor) = keygen(dir.path());
    let key = key.to_str().unwrap();
    let sign = |extra: &[&str]| {
        let mut args = vec!["cmd", "sign", "--key", key];
        args.extend_from_slice(extra);
        tallyman(&args)
    };
    let out = sign(&[
        "--target",
        "north/gw-1",
        "dlq-replay",
        "--arg",
        "ids=all",
        "--arg",
        "sink=hub",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = String::from_utf8(out.stdout).unwrap();
    let v = signed::verify(
        first.trim().as_bytes(),
        std::slice::from_ref(&anchor),
        now(),
    )
    .unwrap();
    let command = v.command().unwrap();
    assert_eq!(command.name.as_str(), "dlq-replay");
    assert_eq!(command.args["ids"], "all");
    assert_eq!(command.args["sink"], "hub");
    assert_eq!(command.id.get_version_num(), 7);
    assert_eq!(
        v.expires.unwrap().unix_millis() - v.issued.unix_millis(),
        600_000
    );
    v.check_command_lifetime().unwrap();

    // Each signing is a new command.
    let out = sign(&["--target", "north/gw-1", "dlq-replay", "--arg", "ids=all"]);
    let second = signed::verify(&out.stdout, &[anchor], now()).unwrap();
    assert_ne!(second.command().unwrap().id, command.id);

    for (args, want) in [
        (&["reboot"][..], "unknown command `reboot`"),
        (&["--expires-in", "86401", "status"][..], "--expires-in"),
        (&["--expires-in", "0", "status"][..], "--expires-in"),
        (&["status", "--arg", "novalue"][..], "KEY=VALUE"),
        (&["status", "--arg", "Bad=1"][..], "argument name"),
        (
            &["reconnect", "--arg", "source=a", "--arg", "source=b"][..],
            "twice",
        ),
    ] {
        let out = sign(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
}
