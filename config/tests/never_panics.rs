//! `parse_str` (and `parse_pushed`) never panics, whatever the text, and a refusal always says
//! why, at a real position of the text.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../tallyman.example.toml");
const PRODUCT: &str = include_str!("../test_data/valid/product-example.toml");
const RFID: &str = include_str!("../test_data/valid/rfid-portal.toml");

fn check(text: &str) -> Result<(), TestCaseError> {
    if let Err(e) = tallyman_config::parse_str(text, "p.toml") {
        let diagnostics = e.diagnostics();
        prop_assert!(!diagnostics.is_empty(), "refused without a reason: {e}");
        let lines = text.split('\n').count();
        for d in diagnostics {
            prop_assert!(d.line >= 1 && d.line <= lines, "{d:?} in {lines} lines");
            prop_assert!(d.col >= 1, "{d:?}");
            prop_assert!(!d.message.contains("internal error"), "{d:?}");
            prop_assert!(!d.message.is_empty());
        }
        // Rendering never panics either, and gives one line per diagnostic.
        prop_assert_eq!(e.to_string().lines().count(), diagnostics.len());
    }
    // The same text pushed to a gateway: never a panic, and a refusal always says why.
    let local = tallyman_config::parse_str(EXAMPLE, "local.toml").unwrap();
    match tallyman_config::parse_pushed(text, "pushed", &local) {
        Ok(c) => {
            prop_assert_eq!(&c.agent, &local.agent);
            prop_assert_eq!(&c.remote, &local.remote);
        }
        Err(tallyman_config::PushedError::Invalid(e)) => {
            prop_assert!(!e.diagnostics().is_empty(), "refused without a reason: {e}");
            prop_assert!(!e.to_string().contains("internal error"), "{e}");
        }
        Err(e) => prop_assert!(!e.to_string().is_empty()),
    }
    Ok(())
}

/// Fragments that make the parser and the validator take their less travelled paths.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"".to_owned()),
        Just("'".to_owned()),
        Just("[".to_owned()),
        Just("]]".to_owned()),
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("=".to_owned()),
        Just(",".to_owned()),
        Just("\n".to_owned()),
        Just("#".to_owned()),
        Just(".".to_owned()),
        Just("\\".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("99999999999999999999".to_owned()),
        Just("1.5".to_owned()),
        Just("true".to_owned()),
        Just("1979-05-27".to_owned()),
        Just("\"x\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"\\u20ac\"".to_owned()),
        Just("\n[[sources]]\n".to_owned()),
        Just("\n[[sinks]]\n".to_owned()),
        Just("\n[mqtt]\n".to_owned()),
        Just("\n[remote]\n".to_owned()),
        Just("type = \"mqtt\"".to_owned()),
        Just("type = \"stdin\"".to_owned()),
        Just("decoder = \"rfid\"".to_owned()),
        Just("workflow = \"consume\"".to_owned()),
        Just("portal = {}".to_owned()),
        Just("retry = { max_ms = 1 }".to_owned()),
        "\\PC{0,12}",
    ]
}

/// A valid file with a few stretches replaced by fragments.
fn mutated() -> impl Strategy<Value = String> {
    let base = prop_oneof![Just(EXAMPLE), Just(PRODUCT), Just(RFID)];
    let edits =
        proptest::collection::vec((any::<prop::sample::Index>(), 0usize..20, fragment()), 1..6);
    (base, edits).prop_map(|(base, edits)| {
        let mut chars: Vec<char> = base.chars().collect();
        for (at, len, with) in edits {
            let start = at.index(chars.len() + 1);
            let end = (start + len).min(chars.len());
            chars.splice(start..end, with.chars());
        }
        chars.into_iter().collect()
    })
}

/// TOML values of every type, and edge values of the rules.
const VALUES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "7",
    "65536",
    "9223372036854775807",
    "1.5",
    "true",
    "1979-05-27",
    "\"\"",
    "\"x\"",
    "\"all\"",
    "\"a b\"",
    "\"../x\"",
    "\"/abs\"",
    "\"\\u20ac\"",
    "\"mqtt\"",
    "\"stdin\"",
    "\"serial\"",
    "\"rfid\"",
    "\"consume\"",
    "\"scrap\"",
    "\"mqtt://h\"",
    "\"https://h\"",
    "\"http://h\"",
    "\"k:AAAA\"",
    "[]",
    "[\"scan\"]",
    "[1]",
    "{}",
    "{ from = \"a\" }",
    "[{}]",
];

/// Keys of every section, so that a key moves to where it does not belong.
const KEYS: &[&str] = &[
    "facility",
    "gateway",
    "data_dir",
    "max_size_mb",
    "commit_window_ms",
    "format",
    "level",
    "endpoint",
    "cert_file",
    "key_file",
    "ca_file",
    "username",
    "password_file",
    "name",
    "type",
    "path",
    "baud",
    "terminator",
    "gs_aliases",
    "feedback",
    "decoder",
    "workflow",
    "location",
    "portal",
    "dedup_window_ms",
    "kinds",
    "retry",
    "inflight",
    "database",
    "consumption_mode",
    "consumption_location",
    "trusted_keys",
    "interval_secs",
    "sources",
    "sinks",
    "mqtt",
];

/// A valid file with whole lines deleted, duplicated, or given another key or value: mostly
/// still TOML, so the validator's paths are the ones exercised.
fn line_mutated() -> impl Strategy<Value = String> {
    let base = prop_oneof![Just(EXAMPLE), Just(PRODUCT), Just(RFID)];
    let edit = (
        any::<prop::sample::Index>(),
        0u8..4,
        any::<prop::sample::Index>(),
    );
    let edits = proptest::collection::vec(edit, 1..5);
    (base, edits).prop_map(|(base, edits)| {
        let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
        for (at, op, pick) in edits {
            if lines.is_empty() {
                break;
            }
            let i = at.index(lines.len());
            match op {
                0 => {
                    lines.remove(i);
                }
                1 => {
                    let l = lines[i].clone();
                    lines.insert(i, l);
                }
                2 => {
                    if let Some((key, _)) = lines[i].split_once('=') {
                        lines[i] = format!("{key}= {}", VALUES[pick.index(VALUES.len())]);
                    }
                }
                _ => {
                    if let Some((_, value)) = lines[i].split_once('=') {
                        lines[i] = format!("{} ={value}", KEYS[pick.index(KEYS.len())]);
                    }
                }
            }
        }
        lines.join("\n")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text(text in any::<String>()) {
        check(&text)?;
    }

    #[test]
    fn toml_shaped_text(text in "([a-z_]{1,8} = (\"[^\"\n]{0,8}\"|-?[0-9]{1,3}|\\[\\]|\\{\\})\n|\\[\\[?[a-z]{1,8}\\]\\]?\n|[\\[\\]{}=,.\"'\n#\\\\ ]){0,40}") {
        check(&text)?;
    }

    #[test]
    fn mutated_valid_files(text in mutated()) {
        check(&text)?;
    }

    #[test]
    fn line_mutated_valid_files(text in line_mutated()) {
        check(&text)?;
    }
}

#[test]
fn the_bases_are_valid() {
    for base in [EXAMPLE, PRODUCT, RFID] {
        tallyman_config::parse_str(base, "base.toml").unwrap();
    }
}

#[test]
fn deep_nesting_is_refused_without_overflowing_the_stack() {
    let depth = 100_000;
    for (open, close) in [("[", "]"), ("{a=", "}")] {
        let text = format!("x = {}{}", open.repeat(depth), close.repeat(depth));
        let e = tallyman_config::parse_str(&text, "deep.toml").unwrap_err();
        assert!(!e.diagnostics().is_empty());
    }
}
