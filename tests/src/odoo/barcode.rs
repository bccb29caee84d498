//! `barcode.nomenclature.parse_barcode` with the "Default GS1 Nomenclature": the GS1
//! application identifiers the agent uses (odoo-api.md §5.2), as a test oracle.

use serde_json::{Value, json};

/// A GS1 rule of the default nomenclature: its record id, type, AI, and content.
struct Rule {
    id: i64,
    kind: &'static str,
    ai: &'static str,
    content: Content,
}

enum Content {
    /// A GTIN / SSCC of this many digits with a check digit.
    Identifier(usize),
    /// YYMMDD.
    Date,
    /// Up to this many characters, ended by FNC1 or the end.
    Alpha(usize),
    /// Up to this many digits, ended by FNC1 or the end: an integer.
    Count(usize),
}

const RULES: &[Rule] = &[
    Rule {
        id: 1,
        kind: "package",
        ai: "00",
        content: Content::Identifier(18),
    },
    Rule {
        id: 3,
        kind: "product",
        ai: "01",
        content: Content::Identifier(14),
    },
    Rule {
        id: 4,
        kind: "product",
        ai: "02",
        content: Content::Identifier(14),
    },
    Rule {
        id: 8,
        kind: "lot",
        ai: "10",
        content: Content::Alpha(20),
    },
    Rule {
        id: 9,
        kind: "pack_date",
        ai: "11",
        content: Content::Date,
    },
    Rule {
        id: 10,
        kind: "pack_date",
        ai: "13",
        content: Content::Date,
    },
    Rule {
        id: 11,
        kind: "use_date",
        ai: "15",
        content: Content::Date,
    },
    Rule {
        id: 12,
        kind: "expiration_date",
        ai: "17",
        content: Content::Date,
    },
    Rule {
        id: 14,
        kind: "lot",
        ai: "21",
        content: Content::Alpha(20),
    },
    Rule {
        id: 13,
        kind: "quantity",
        ai: "30",
        content: Content::Count(8),
    },
    Rule {
        id: 15,
        kind: "quantity",
        ai: "37",
        content: Content::Count(8),
    },
];

fn check_digit_ok(digits: &str) -> bool {
    let d: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if d.len() != digits.len() || d.is_empty() {
        return false;
    }
    let (body, check) = d.split_at(d.len() - 1);
    let sum: u32 = body
        .iter()
        .rev()
        .enumerate()
        .map(|(i, x)| if i % 2 == 0 { x * 3 } else { *x })
        .sum();
    (10 - sum % 10) % 10 == check[0]
}

fn date(s: &str) -> Option<String> {
    if s.len() != 6 || !s.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let yy: u32 = s[0..2].parse().ok()?;
    let mm: u32 = s[2..4].parse().ok()?;
    let dd: u32 = s[4..6].parse().ok()?;
    if !(1..=12).contains(&mm) {
        return None;
    }
    let year = 2000 + yy;
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let last = match mm {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    let day = if dd == 0 { last } else { dd };
    (day <= last).then(|| format!("{year:04}-{mm:02}-{day:02}"))
}

/// The parse of a GS1 string: a list of AI elements, or null when it does not parse.
pub(crate) fn parse_gs1(barcode: &str) -> Value {
    let mut s = barcode;
    for prefix in ["]C1", "]e0", "]d2", "]Q3", "]J1"] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            break;
        }
    }
    let s = s.replace("Alt029", "\u{1d}").replace('#', "\u{1d}");
    let mut rest = s.as_str();
    let mut out = Vec::new();
    while !rest.is_empty() {
        rest = rest.trim_start_matches('\u{1d}');
        if rest.is_empty() {
            break;
        }
        let Some(rule) = RULES.iter().find(|r| rest.starts_with(r.ai)) else {
            return Value::Null;
        };
        let after = &rest[rule.ai.len()..];
        let (text, next) = match rule.content {
            Content::Identifier(n) => {
                let Some(t) = after.get(..n) else {
                    return Value::Null;
                };
                (t, &after[n..])
            }
            Content::Date => {
                let Some(t) = after.get(..6) else {
                    return Value::Null;
                };
                (t, &after[6..])
            }
            Content::Alpha(max) | Content::Count(max) => {
                let end = after.find('\u{1d}').unwrap_or(after.len());
                let end = end.min(max).min(after.len());
                let end = (0..=end)
                    .rev()
                    .find(|i| after.is_char_boundary(*i))
                    .unwrap_or(0);
                (&after[..end], &after[end..])
            }
        };
        let value = match rule.content {
            Content::Identifier(_) => {
                if !check_digit_ok(text) {
                    return Value::Null;
                }
                json!(text)
            }
            Content::Date => match date(text) {
                Some(d) => json!(d),
                None => return Value::Null,
            },
            Content::Alpha(_) => {
                if text.is_empty() {
                    return Value::Null;
                }
                json!(text)
            }
            Content::Count(_) => match text.parse::<u64>() {
                Ok(n) if text.chars().all(|c| c.is_ascii_digit()) => json!(n),
                _ => return Value::Null,
            },
        };
        out.push(json!({
            "rule": format!("barcode.rule({},)", rule.id),
            "type": rule.kind,
            "ai": rule.ai,
            "string_value": text,
            "value": value,
        }));
        rest = next;
    }
    json!(out)
}
