//! `tallyman decode` and `tallyman --version`, run as the real binary (PRODUCT §7).

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use tallyman_tests::tallyman_bin;

fn decode(args: &[&str], stdin: Option<&[u8]>) -> (Output, Vec<Value>) {
    let mut child = Command::new(tallyman_bin())
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let lines = String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect();
    (out, lines)
}

#[test]
fn one_json_object_per_argument_with_the_named_fields() {
    let (out, lines) = decode(
        &[
            "01095011010209171727123110LOT123\\x1d21SER0001",
            "09501101020917",
        ],
        None,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(lines.len(), 2);
    let udi = &lines[0];
    assert_eq!(udi["kind"], "gs1");
    assert_eq!(udi["gtin"], "09501101020917");
    assert_eq!(udi["lot"], "LOT123");
    assert_eq!(udi["serial"], "SER0001");
    assert_eq!(udi["expiry"], "2027-12-31");
    assert_eq!(udi["ais"][0], serde_json::json!(["01", "09501101020917"]));
    assert_eq!(lines[1]["kind"], "gtin");
}

#[test]
fn reads_stdin_lines_and_exits_1_if_any_input_failed() {
    let stdin = b"(01)09501101020917(17)280200(10)A1\r\n+A123BJC5D6E71G\n0950110102091\n";
    let (out, lines) = decode(&[], Some(stdin));
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["expiry"], "2028-02-29",
        "DD=00 is the last day of the month"
    );
    assert_eq!(lines[1]["kind"], "hibc");
    assert_eq!(lines[1]["lic"], "A123");
    assert_eq!(lines[1]["pcn"], "BJC5D6E7");
    let err = &lines[2]["error"];
    assert_eq!(err["kind"], "check_digit");
    assert_eq!(err["offset"], 12);
    assert!(
        err["message"].as_str().unwrap().contains("expected 8"),
        "{err}"
    );
}

#[test]
fn gs_aliases_stand_for_gs() {
    let (out, lines) = decode(
        &["--gs-alias", "<GS>", "0109501101020917", "10A1<GS>21S9"],
        None,
    );
    // Two inputs: the first is a plain element string, the second has an alias but no GTIN.
    assert!(out.status.success(), "{out:?} {lines:?}");
    assert_eq!(lines[1]["lot"], "A1");
    assert_eq!(lines[1]["serial"], "S9");
}

#[test]
fn rfid_inputs_are_epcs_in_reader_formats() {
    let (out, lines) = decode(
        &[
            "--rfid",
            "3074257BF7194E4000001A85",
            "0x3074 257b f719 4e40 0000 1a85",
            "E2801160",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    for l in &lines[..2] {
        assert_eq!(l["kind"], "epc");
        assert_eq!(l["scheme"], "sgtin-96");
        assert_eq!(l["pure_identity"], "urn:epc:id:sgtin:0614141.812345.6789");
        assert_eq!(l["gtin"], "80614141123458");
    }
    assert!(lines[2]["error"]["kind"].is_string());
}

#[test]
fn errors_carry_kind_offset_and_escaped_value() {
    let (out, lines) = decode(&[], Some(b"0109501101020917\x1d10BAD#LOT\n"));
    assert_eq!(out.status.code(), Some(1));
    let err = &lines[0]["error"];
    assert_eq!(err["kind"], "invalid_character");
    assert_eq!(err["offset"], 22);
    assert_eq!(lines[0]["input"], "0109501101020917\\x1d10BAD#LOT");
}

#[test]
fn nonsense_never_crashes_the_decoder() {
    let mut junk = Vec::new();
    for i in (0..=255u8).filter(|&i| i != b'\n' && i.wrapping_mul(7) != b'\n') {
        junk.extend_from_slice(&[i, i.wrapping_mul(7), b'(', b']', 0x1d, i]);
        junk.push(b'\n');
    }
    junk.extend(std::iter::repeat_n(b'9', 100_000));
    junk.push(b'\n');
    let (out, lines) = decode(&[], Some(&junk));
    assert_eq!(
        out.status.code(),
        Some(1),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(lines.len(), 255);
    assert_eq!(lines[254]["error"]["kind"], "too_long");
}

#[test]
fn version_names_the_binary() {
    let out = Command::new(tallyman_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("tallyman "), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")), "{text}");
}
