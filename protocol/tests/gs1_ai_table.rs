//! Generator and freshness check of `src/barcode/gs1/ai_table.rs`.
//!
//! The AI table is generated from `data/gs1-syntax-dictionary.txt` (the GS1 Barcode Syntax
//! Dictionary). This test parses every line of the dictionary, renders the Rust table
//! deterministically and asserts that it equals the checked-in file. With
//! `TALLYMAN_REGENERATE=1` it writes the file instead:
//!
//! ```text
//! TALLYMAN_REGENERATE=1 cargo test -p tallyman-protocol --test gs1_ai_table
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::PathBuf;

const SOURCE: &str = "data/gs1-syntax-dictionary.txt";
const TARGET: &str = "src/barcode/gs1/ai_table.rs";

/// One component of a data field specification such as `N13,csum` or `[X..16]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Component {
    cset: char,
    min: u8,
    max: u8,
    optional: bool,
    linters: Vec<String>,
}

/// One dictionary line, before its AI range is expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    first: String,
    last: String,
    predefined: bool,
    dl_attribute: bool,
    components: Vec<Component>,
    req: Vec<Vec<Vec<String>>>,
    ex: Vec<String>,
    dl_qualifiers: Option<Vec<Vec<String>>>,
    title: String,
}

fn parse_component(token: &str) -> Result<Component, String> {
    let (spec, linters) = match token.split_once(',') {
        Some((s, l)) => (s, l.split(',').map(str::to_string).collect::<Vec<_>>()),
        None => (token, Vec::new()),
    };
    let (spec, optional) = match spec.strip_prefix('[') {
        Some(inner) => (
            inner
                .strip_suffix(']')
                .ok_or_else(|| format!("unclosed optional component {token:?}"))?,
            true,
        ),
        None => (spec, false),
    };
    let mut chars = spec.chars();
    let cset = chars.next().ok_or("empty component")?;
    if !matches!(cset, 'N' | 'X' | 'Y' | 'Z') {
        return Err(format!("unknown component type in {token:?}"));
    }
    let len = chars.as_str();
    let (min, max) = match len.strip_prefix("..") {
        Some(max) => (1, max.parse::<u8>().map_err(|e| format!("{token:?}: {e}"))?),
        None => {
            let n = len.parse::<u8>().map_err(|e| format!("{token:?}: {e}"))?;
            (n, n)
        }
    };
    for l in &linters {
        if l.is_empty()
            || !l
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            return Err(format!("bad linter name in {token:?}"));
        }
    }
    Ok(Component {
        cset,
        min,
        max,
        optional,
        linters,
    })
}

fn parse_line(raw: &str) -> Result<Option<Line>, String> {
    let (body, title) = match raw.split_once('#') {
        Some((b, t)) => (b, t.trim().to_string()),
        None => (raw, String::new()),
    };
    let mut tokens = body.split_whitespace().peekable();
    let Some(ais) = tokens.next() else {
        return Ok(None);
    };
    let (first, last) = match ais.split_once('-') {
        Some((a, b)) => (a.to_string(), b.to_string()),
        None => (ais.to_string(), ais.to_string()),
    };
    for ai in [&first, &last] {
        if !(2..=4).contains(&ai.len()) || !ai.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("bad AI {ais:?}"));
        }
    }
    let is_spec = |t: &str| {
        let b = t.as_bytes();
        matches!(b.first(), Some(b'N' | b'X' | b'Y' | b'Z'))
            && matches!(b.get(1), Some(b'0'..=b'9' | b'.'))
            || t.starts_with("[N")
            || t.starts_with("[X")
            || t.starts_with("[Y")
            || t.starts_with("[Z")
    };
    let mut predefined = false;
    let mut dl_attribute = false;
    if let Some(&t) = tokens.peek() {
        if !is_spec(t) {
            for f in t.chars() {
                match f {
                    '*' => predefined = true,
                    '?' => dl_attribute = true,
                    other => return Err(format!("unknown flag {other:?} on {ais}")),
                }
            }
            tokens.next();
        }
    }
    let mut components = Vec::new();
    while let Some(&t) = tokens.peek() {
        if !is_spec(t) {
            break;
        }
        components.push(parse_component(t)?);
        tokens.next();
    }
    if components.is_empty() {
        return Err(format!("{ais} has no specification"));
    }
    let mut req = Vec::new();
    let mut ex = Vec::new();
    let mut dl_qualifiers = None;
    for t in tokens {
        let (key, value) = t.split_once('=').unwrap_or((t, ""));
        match key {
            "req" => req.push(
                value
                    .split(',')
                    .map(|g| g.split('+').map(str::to_string).collect())
                    .collect(),
            ),
            "ex" => ex.extend(value.split(',').map(str::to_string)),
            "dlpkey" => {
                let alternatives = if value.is_empty() {
                    Vec::new()
                } else {
                    value
                        .split('|')
                        .map(|seq| seq.split(',').map(str::to_string).collect())
                        .collect()
                };
                dl_qualifiers = Some(alternatives);
            }
            other => return Err(format!("unknown attribute {other:?} on {ais}")),
        }
    }
    Ok(Some(Line {
        first,
        last,
        predefined,
        dl_attribute,
        components,
        req,
        ex,
        dl_qualifiers,
        title,
    }))
}

/// Every AI with its line, ranges expanded, sorted.
fn expand(lines: Vec<Line>) -> Result<BTreeMap<String, Line>, String> {
    let mut out = BTreeMap::new();
    for line in lines {
        let width = line.first.len();
        if line.last.len() != width {
            return Err(format!("range {}-{} mixes widths", line.first, line.last));
        }
        let a: u32 = line.first.parse().map_err(|e| format!("{e}"))?;
        let b: u32 = line.last.parse().map_err(|e| format!("{e}"))?;
        if b < a {
            return Err(format!("empty range {}-{}", line.first, line.last));
        }
        for n in a..=b {
            let ai = format!("{n:0width$}");
            if out.insert(ai.clone(), line.clone()).is_some() {
                return Err(format!("AI {ai} defined twice"));
            }
        }
    }
    Ok(out)
}

fn linter_variant(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) => c.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

fn quoted_list(items: &[String]) -> String {
    let inner: Vec<String> = items.iter().map(|s| format!("{s:?}")).collect();
    format!("&[{}]", inner.join(", "))
}

fn render(source: &str) -> Result<(String, usize), String> {
    let mut lines = Vec::new();
    let mut copyright = Vec::new();
    for (n, raw) in source.lines().enumerate() {
        let t = raw.trim();
        if let Some(c) = t.strip_prefix("# Copyright") {
            copyright.push(format!("Copyright{c}"));
        }
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(line) = parse_line(t).map_err(|e| format!("line {}: {e}", n + 1))? {
            lines.push(line);
        }
    }
    let table = expand(lines)?;
    let keys: Vec<&String> = table.keys().collect();
    for a in &keys {
        for b in &keys {
            if a != b && b.starts_with(a.as_str()) {
                return Err(format!("AI {a} is a prefix of AI {b}"));
            }
        }
    }

    let mut out = String::new();
    out.push_str(
        "// @generated by protocol/tests/gs1_ai_table.rs from protocol/data/gs1-syntax-dictionary.txt\n\
         // (the GS1 Barcode Syntax Dictionary). Do not edit: regenerate with\n\
         // `TALLYMAN_REGENERATE=1 cargo test -p tallyman-protocol --test gs1_ai_table`.\n\
         //\n\
         // The source is licensed under the Apache License, Version 2.0:\n",
    );
    for c in &copyright {
        let _ = writeln!(out, "// {c}");
    }
    out.push_str(
        "\n//! The GS1 Application Identifier table: one entry per AI, ranges expanded, sorted.\n\n\
         use super::ai::Cset::{N, X, Y, Z};\n\
         use super::ai::Linter::*;\n\
         use super::ai::{AiEntry, Component as C};\n\n\
         pub(super) static AI_TABLE: &[AiEntry] = &[\n",
    );
    for (ai, line) in &table {
        let comps: Vec<String> = line
            .components
            .iter()
            .map(|c| {
                let linters: Vec<String> = c.linters.iter().map(|l| linter_variant(l)).collect();
                format!(
                    "C {{ cset: {}, min: {}, max: {}, optional: {}, linters: &[{}] }}",
                    c.cset,
                    c.min,
                    c.max,
                    c.optional,
                    linters.join(", ")
                )
            })
            .collect();
        let req: Vec<String> = line
            .req
            .iter()
            .map(|groups| {
                let g: Vec<String> = groups.iter().map(|g| quoted_list(g)).collect();
                format!("&[{}]", g.join(", "))
            })
            .collect();
        let dl = match &line.dl_qualifiers {
            None => "None".to_string(),
            Some(alts) => {
                let a: Vec<String> = alts.iter().map(|s| quoted_list(s)).collect();
                format!("Some(&[{}])", a.join(", "))
            }
        };
        let _ = writeln!(
            out,
            "    AiEntry {{ ai: {ai:?}, title: {:?}, predefined: {}, dl_attribute: {},\n        \
             components: &[{}],\n        \
             req: &[{}], ex: {}, dl_qualifiers: {dl} }},",
            line.title,
            line.predefined,
            line.dl_attribute,
            comps.join(", "),
            req.join(", "),
            quoted_list(&line.ex),
        );
    }
    out.push_str("];\n");
    Ok((out, table.len()))
}

#[test]
fn ai_table_is_generated_from_the_dictionary() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let source = fs::read_to_string(root.join(SOURCE)).unwrap();
    let (rendered, count) = render(&source).unwrap();
    let target = root.join(TARGET);
    if std::env::var("TALLYMAN_REGENERATE").is_ok_and(|v| v == "1") {
        fs::write(&target, &rendered).unwrap();
    }
    let current = fs::read_to_string(&target).unwrap_or_default();
    assert!(
        current == rendered,
        "{TARGET} is stale; regenerate it with \
         TALLYMAN_REGENERATE=1 cargo test -p tallyman-protocol --test gs1_ai_table"
    );
    let runtime = tallyman_protocol::barcode::gs1::ai::entries();
    assert_eq!(runtime.len(), count);
}

#[test]
fn parses_the_interesting_lines() {
    let l = parse_line("8003        ?  N1,zero N13,csum,gcppos1 [X..16]  dlpkey   # GRAI")
        .unwrap()
        .unwrap();
    assert!(!l.predefined && l.dl_attribute);
    assert_eq!(l.components.len(), 3);
    assert_eq!(l.components[1].linters, vec!["csum", "gcppos1"]);
    assert!(l.components[2].optional && l.components[2].max == 16 && l.components[2].min == 1);
    assert_eq!(l.dl_qualifiers, Some(vec![]));
    assert_eq!(l.title, "GRAI");

    let l = parse_line("01 *? N14,csum,gcppos2 ex=255,37 dlpkey=22,10,21|235 # GTIN")
        .unwrap()
        .unwrap();
    assert!(l.predefined);
    assert_eq!(l.ex, vec!["255", "37"]);
    assert_eq!(
        l.dl_qualifiers,
        Some(vec![
            vec!["22".into(), "10".into(), "21".into()],
            vec!["235".into()]
        ])
    );

    let l = parse_line("250 ? X..30 req=01+21,03+21,8006+21 # SECONDARY SERIAL")
        .unwrap()
        .unwrap();
    assert_eq!(l.req[0][0], vec!["01", "21"]);
    assert_eq!(l.req[0].len(), 3);

    let l = parse_line("423 ? N3,iso3166 [N3],iso3166 [N3],iso3166 # COUNTRY")
        .unwrap()
        .unwrap();
    assert!(l.components[1].optional);
    assert_eq!(l.components[1].linters, vec!["iso3166"]);

    let l = parse_line("8110 ? X..70,couponcode").unwrap().unwrap();
    assert_eq!(l.title, "");

    let t = expand(vec![
        parse_line("91-93 ? X..90 # INTERNAL").unwrap().unwrap(),
        parse_line("3100-3101 *? N6 # NET WEIGHT (kg)")
            .unwrap()
            .unwrap(),
    ])
    .unwrap();
    let keys: Vec<&str> = t.keys().map(String::as_str).collect();
    assert_eq!(keys, vec!["3100", "3101", "91", "92", "93"]);

    assert!(parse_line("1 X..20").is_err());
    assert!(parse_line("10 ! X..20").is_err());
    assert!(parse_line("10 ? Q..20").is_err());
    assert!(parse_line("10 ? X..20 foo=1").is_err());
}
