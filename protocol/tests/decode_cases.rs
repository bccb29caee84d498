//! Data-driven decoder tests: every `*.cases` file under `test_data/decode/` runs through one
//! [`check`] helper.
//!
//! Format, one case per `>` line:
//!
//! ```text
//! # comment
//! @rfid                      options for the next case only: @rfid, @alias STR, @today YYYY-MM-DD
//! > INPUT                    the scan; \xNN is a byte (\x1d = GS), \\ a backslash
//! = {"gtin": "…"}            expected: these keys of the JSON summary, with these values
//! ! check_digit@3            or expected: an error of this kind (at this byte offset)
//! ```
//! Every case must state an expectation. `TALLYMAN_CASES_FILTER=substr` runs a subset.

// Test code: a failed unwrap is a failed test with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tallyman_protocol::barcode::DecodeOptions;
use tallyman_protocol::{Date, decode_to_summary};

/// The date every case is decoded on unless it says otherwise.
const DEFAULT_TODAY: &str = "2026-11-24";

#[derive(Debug)]
struct Case {
    file: String,
    line: usize,
    input: Vec<u8>,
    rfid: bool,
    aliases: Vec<Vec<u8>>,
    today: Date,
    expect: Expect,
}

#[derive(Debug)]
enum Expect {
    Fields(serde_json::Map<String, Value>),
    Error { kind: String, offset: Option<usize> },
}

fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && b[i + 1] == b'\\' {
            out.push(b'\\');
            i += 2;
        } else if b[i] == b'\\' && i + 3 < b.len() && b[i + 1] == b'x' {
            let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap_or_else(|_| panic!("bad escape in {s}")));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

fn load(path: &Path) -> Vec<Case> {
    let text = fs::read_to_string(path).unwrap();
    let file = path.file_name().unwrap().to_string_lossy().into_owned();
    let mut cases: Vec<Case> = Vec::new();
    let (mut rfid, mut aliases, mut today) = (false, Vec::new(), DEFAULT_TODAY.parse().unwrap());
    let mut open: Option<Case> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let t = raw.trim_end();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let (tag, rest) = t.split_at(1);
        let rest = rest.strip_prefix(' ').unwrap_or(rest);
        match tag {
            "@" => {
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                match k {
                    "rfid" => rfid = true,
                    "alias" => aliases.push(unescape(v)),
                    "today" => today = v.parse().unwrap(),
                    other => panic!("{file}:{line}: unknown option @{other}"),
                }
            }
            ">" => {
                assert!(
                    open.is_none(),
                    "{file}:{line}: previous case has no expectation"
                );
                open = Some(Case {
                    file: file.clone(),
                    line,
                    input: unescape(rest),
                    rfid,
                    aliases: std::mem::take(&mut aliases),
                    today,
                    expect: Expect::Fields(Default::default()),
                });
                rfid = false;
                today = DEFAULT_TODAY.parse().unwrap();
            }
            "=" | "!" => {
                let mut case = open
                    .take()
                    .unwrap_or_else(|| panic!("{file}:{line}: no input"));
                case.expect = if tag == "=" {
                    match serde_json::from_str(rest) {
                        Ok(Value::Object(map)) => Expect::Fields(map),
                        other => panic!("{file}:{line}: expected a JSON object, got {other:?}"),
                    }
                } else {
                    let (kind, offset) = match rest.split_once('@') {
                        Some((k, o)) => (k.to_string(), Some(o.parse().unwrap())),
                        None => (rest.to_string(), None),
                    };
                    Expect::Error { kind, offset }
                };
                cases.push(case);
            }
            _ => panic!("{file}:{line}: cannot read {t:?}"),
        }
    }
    assert!(open.is_none(), "{file}: last case has no expectation");
    cases
}

/// Decode one case and describe how it differs from what it expects (empty: it passes).
fn check(case: &Case) -> String {
    let opts = DecodeOptions {
        gs_aliases: case.aliases.clone(),
        today: case.today,
    };
    let got = decode_to_summary(&case.input, &opts, case.rfid);
    let mut diff = String::new();
    match (&case.expect, got) {
        (Expect::Fields(want), Ok(summary)) => {
            let got = serde_json::to_value(&summary).unwrap();
            for (k, v) in want {
                let g = got.get(k).unwrap_or(&Value::Null);
                if g != v {
                    let _ = write!(diff, "\n    {k}: want {v}, got {g}");
                }
            }
            if !diff.is_empty() {
                let _ = write!(diff, "\n    whole: {got}");
            }
        }
        (Expect::Fields(_), Err(e)) => {
            let _ = write!(diff, "\n    want success, got error {e}");
        }
        (Expect::Error { kind, offset }, Err(e)) => {
            if e.kind.as_str() != kind || offset.is_some_and(|o| o != e.offset) {
                let _ = write!(diff, "\n    want {kind}@{offset:?}, got {e}");
            }
        }
        (Expect::Error { kind, .. }, Ok(s)) => {
            let got = serde_json::to_value(&s).unwrap();
            let _ = write!(diff, "\n    want error {kind}, got {got}");
        }
    }
    diff
}

fn case_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("test_data/decode");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cases"))
        .collect();
    files.sort();
    files
}

#[test]
fn decode_cases() {
    let filter = std::env::var("TALLYMAN_CASES_FILTER").ok();
    let mut failures = String::new();
    let mut total = 0;
    for file in case_files() {
        let name = file.file_name().unwrap().to_string_lossy();
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        for case in load(&file) {
            total += 1;
            let diff = check(&case);
            if !diff.is_empty() {
                let shown = tallyman_protocol::error::escape(&case.input);
                let _ = write!(failures, "\n{}:{} > {shown}{diff}", case.file, case.line);
            }
        }
    }
    assert!(total > 0, "no cases found");
    assert!(failures.is_empty(), "decode cases failed:{failures}");
    println!("{total} decode cases passed");
}
