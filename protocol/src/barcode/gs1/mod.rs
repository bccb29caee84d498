//! GS1 element strings, the bracketed human-readable form and GS1 Digital Link URIs.
//!
//! All three forms end in the same [`Message`]: the elements in symbol order, each validated
//! against the GS1 Barcode Syntax Dictionary ([`ai`]): length, character set, check digits,
//! dates and every other content check ([`lint`]). The dictionary's association rules (an AI
//! that requires or excludes another) are reported as warnings, not errors: they are meant to
//! be judged over every symbol on an item, and a scanner reads one symbol at a time.

pub mod ai;
#[rustfmt::skip]
mod ai_table;
mod digital_link;
mod element;
mod hri;
mod lint;

use crate::barcode::gs1::ai::AiEntry;
use crate::{Date, DecodeError, ErrorKind, Summary};

/// The form a GS1 message arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    ElementString,
    Bracketed,
    DigitalLink,
}

/// One element string: an Application Identifier and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub ai: String,
    /// The value exactly as carried (after percent-decoding for Digital Link; a GTIN-8/12/13
    /// Digital Link key zero-padded to 14 digits).
    pub value: String,
    /// The date of the value's first date component (AIs 11–17, 7003, 7006 …), with the GS1
    /// century rule applied and a day of 00 read as the last day of the month.
    pub date: Option<Date>,
}

/// A decoded, validated GS1 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub form: Form,
    /// Every element in symbol order; an AI repeated with the same value is kept once.
    pub elements: Vec<Element>,
    /// Things that are allowed but worth a look (association rules not met, DD=00 expiry).
    pub warnings: Vec<String>,
}

impl Message {
    /// Every element in symbol order.
    pub fn elements(&self) -> &[Element] {
        &self.elements
    }

    /// The element of one AI.
    pub fn element(&self, ai: &str) -> Option<&Element> {
        self.elements.iter().find(|e| e.ai == ai)
    }

    /// The value of one AI.
    pub fn get(&self, ai: &str) -> Option<&str> {
        self.element(ai).map(|e| e.value.as_str())
    }

    /// The GTIN of the item: AI (01), or the GTIN of the contained items, AI (02), of a
    /// logistic unit that has no (01).
    pub fn gtin(&self) -> Option<&str> {
        self.get("01").or_else(|| self.get("02"))
    }

    /// AI (00).
    pub fn sscc(&self) -> Option<&str> {
        self.get("00")
    }

    /// AI (414), the GLN of a physical location.
    pub fn gln(&self) -> Option<&str> {
        self.get("414")
    }

    /// AI (10).
    pub fn lot(&self) -> Option<&str> {
        self.get("10")
    }

    /// AI (21).
    pub fn serial(&self) -> Option<&str> {
        self.get("21")
    }

    /// The expiry date: AI (17), else the date part of AI (7003).
    pub fn expiry(&self) -> Option<Date> {
        self.element("17")
            .or_else(|| self.element("7003"))
            .and_then(|e| e.date)
    }

    /// The quantity: AI (30) or (37), without leading zeros.
    pub fn quantity(&self) -> Option<String> {
        let q = self.get("30").or_else(|| self.get("37"))?;
        let trimmed = q.trim_start_matches('0');
        Some(if trimmed.is_empty() { "0" } else { trimmed }.to_string())
    }

    pub fn summary(&self) -> Summary {
        let own = |v: Option<&str>| v.map(str::to_string);
        Summary {
            kind: match self.form {
                Form::DigitalLink => "gs1_dl",
                Form::ElementString | Form::Bracketed => "gs1",
            },
            gtin: own(self.gtin()),
            sscc: own(self.sscc()),
            gln: own(self.gln()),
            lot: own(self.lot()),
            serial: own(self.serial()),
            expiry: self.expiry(),
            quantity: self.quantity(),
            ais: Some(
                self.elements
                    .iter()
                    .map(|e| (e.ai.clone(), e.value.clone()))
                    .collect(),
            ),
            warnings: self.warnings.clone(),
            ..Summary::default()
        }
    }
}

/// Decode a GS1 element string (GS = 0x1D between variable-length fields).
pub fn parse_element_string(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    element::parse(data, today)
}

/// Decode the bracketed human-readable form `(01)…(10)…`.
pub fn parse_bracketed(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    hri::parse(data, today)
}

/// Decode a GS1 Digital Link URI.
pub fn parse_digital_link(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    digital_link::parse(data, today)
}

/// Collects validated elements from any of the three forms, and finishes the message.
struct Builder<'a> {
    input: &'a [u8],
    today: Date,
    elements: Vec<Element>,
    warnings: Vec<String>,
}

impl<'a> Builder<'a> {
    fn new(input: &'a [u8], today: Date) -> Self {
        Builder {
            input,
            today,
            elements: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Validate and add one element. `ai_at` is the input offset of the AI; `positions[i]`
    /// the input offset of byte `i` of `value`, and `end` the offset just after the value.
    fn add(
        &mut self,
        entry: &'static AiEntry,
        value: &[u8],
        positions: &[usize],
        end: usize,
        ai_at: usize,
    ) -> Result<(), DecodeError> {
        let at = |i: usize| positions.get(i).copied().unwrap_or(end);
        let checked = ai::check_value(entry, value, self.today)
            .map_err(|p| DecodeError::new(p.kind, at(p.at), value, p.message))?;
        let text = String::from_utf8_lossy(value).into_owned();
        if let Some(prev) = self.elements.iter().find(|e| e.ai == entry.ai) {
            if prev.value == text {
                return Ok(());
            }
            return Err(DecodeError::new(
                ErrorKind::InvalidStructure,
                ai_at,
                value,
                format!(
                    "({}) appears twice with different values: {} and {}",
                    entry.ai,
                    crate::error::escape(prev.value.as_bytes()),
                    crate::error::escape(value)
                ),
            ));
        }
        if checked.day_zero && entry.ai == "17" {
            if let Some(d) = checked.date {
                self.warnings.push(format!(
                    "expiry ({}) {text} has day 00, read as {d} (the last day of the month)",
                    entry.ai
                ));
            }
        }
        self.elements.push(Element {
            ai: entry.ai.to_string(),
            value: text,
            date: checked.date,
        });
        Ok(())
    }

    fn finish(mut self, form: Form) -> Result<Message, DecodeError> {
        if self.elements.is_empty() {
            return Err(DecodeError::new(
                ErrorKind::Empty,
                0,
                self.input,
                "no GS1 element in the data",
            ));
        }
        let present: Vec<&str> = self.elements.iter().map(|e| e.ai.as_str()).collect();
        for warning in association_warnings(&present) {
            if !self.warnings.contains(&warning) {
                self.warnings.push(warning);
            }
        }
        Ok(Message {
            form,
            elements: self.elements,
            warnings: self.warnings,
        })
    }
}

/// The `req=` and `ex=` rules of the dictionary that the AIs of one message break.
fn association_warnings(present: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: String| {
        if !out.contains(&w) {
            out.push(w);
        }
    };
    let has = |pattern: &str| present.iter().any(|ai| ai::pattern_matches(pattern, ai));
    for &ai in present {
        let Some(entry) = ai::lookup(ai) else {
            continue;
        };
        for rule in entry.req {
            if rule.iter().any(|group| group.iter().all(|p| has(p))) {
                continue;
            }
            let groups: Vec<String> = rule
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|p| format!("({p})"))
                        .collect::<Vec<_>>()
                        .join("+")
                })
                .collect();
            push(format!(
                "({ai}) is normally used with {}",
                join_alternatives(&groups)
            ));
        }
        for pattern in entry.ex {
            for &other in present {
                if other != ai && ai::pattern_matches(pattern, other) {
                    let (a, b) = if ai < other { (ai, other) } else { (other, ai) };
                    push(format!("({a}) and ({b}) should not be used together"));
                }
            }
        }
    }
    out
}

/// `a`, `a or b`, `a, b or c`.
fn join_alternatives(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    #[test]
    fn association_rules_become_warnings() {
        assert!(association_warnings(&["01", "17", "10", "21"]).is_empty());
        assert!(association_warnings(&["00", "02", "37"]).is_empty());
        assert_eq!(
            association_warnings(&["10"]),
            vec!["(10) is normally used with (01), (02), (03), (8006) or (8026)"]
        );
        assert_eq!(
            association_warnings(&["01", "02", "37"]),
            vec![
                "(01) and (37) should not be used together",
                "(01) and (02) should not be used together",
                "(37) is normally used with (00)+(02) or (00)+(8026)",
            ]
        );
        // An AI does not exclude itself even though it matches its own pattern.
        assert!(association_warnings(&["01", "3103"]).is_empty());
        assert_eq!(
            association_warnings(&["01", "3103", "3102"]),
            vec!["(3102) and (3103) should not be used together"]
        );
    }

    #[test]
    fn accessors() {
        let m = parse_element_string(
            b"0109501101020917172712001012345\x1d2100042\x1d30005",
            today(),
        )
        .unwrap();
        assert_eq!(m.gtin(), Some("09501101020917"));
        assert_eq!(m.lot(), Some("12345"));
        assert_eq!(m.serial(), Some("00042"));
        assert_eq!(m.get("17"), Some("271200"));
        assert_eq!(m.expiry(), Date::new(2027, 12, 31));
        assert_eq!(m.quantity().as_deref(), Some("5"));
        assert_eq!(m.elements().len(), 5);
        assert_eq!(m.warnings.len(), 1);
        assert_eq!(m.sscc(), None);
    }

    /// Valid inputs of every form, to mutate.
    const SEEDS: &[&[u8]] = &[
        b"0109501101020917172712311012345\x1d21ABC",
        b"00106141411234567897\x1d0209501101020917\x1d3712",
        b"(01)09501101020917(17)270200(10)LOT\\(1(3103)001250",
        b"https://id.gs1.org/01/09501101020917/10/A%2FB/21/S1?17=271231&3103=000500",
        b"http://example.com/a/b/gtin/9501101020917/lot/L1?exp=270200",
        b"80131987654Ad4X4bL5ttr2310c2K\x1d8003009501101000012ASSET\x1d422250",
        b"8110012345612345611110123\x1d8112001234561234560123456",
    ];

    fn decode_all(data: &[u8]) {
        let _ = parse_element_string(data, today());
        let _ = parse_bracketed(data, today());
        let _ = parse_digital_link(data, today());
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            decode_all(&data);
        }

        #[test]
        fn never_panics_on_mutated_inputs(
            seed in 0..SEEDS.len(),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0..3u8), 1..6),
        ) {
            let mut data = SEEDS[seed].to_vec();
            for (at, byte, op) in edits {
                let i = if data.is_empty() { 0 } else { at % (data.len() + 1) };
                match op {
                    0 if i < data.len() => data[i] = byte,
                    1 => data.insert(i, byte),
                    _ if i < data.len() => { data.remove(i); }
                    _ => data.push(byte),
                }
            }
            decode_all(&data);
        }

        /// The same lot and serial read the same from all three forms.
        #[test]
        fn the_three_forms_agree(
            lot in "[!\"%&'()*+,./0-9:;<=>?A-Z_a-z-]{1,20}",
            serial in "[!\"%&'()*+,./0-9:;<=>?A-Z_a-z-]{1,20}",
        ) {
            let es = format!("01095011010209171727123110{lot}\x1d21{serial}");
            let hri = format!(
                "(01)09501101020917(17)271231(10){}(21){}",
                lot.replace('(', "\\("),
                serial.replace('(', "\\(")
            );
            let pct = |s: &str| {
                s.bytes()
                    .map(|b| if b.is_ascii_alphanumeric() { char::from(b).to_string() } else { format!("%{b:02X}") })
                    .collect::<String>()
            };
            let dl = format!(
                "https://example.com/01/09501101020917/10/{}/21/{}?17=271231",
                pct(&lot),
                pct(&serial)
            );
            let a = parse_element_string(es.as_bytes(), today()).unwrap();
            let b = parse_bracketed(hri.as_bytes(), today()).unwrap();
            let c = parse_digital_link(dl.as_bytes(), today()).unwrap();
            prop_assert_eq!(a.lot(), Some(lot.as_str()));
            prop_assert_eq!(a.serial(), Some(serial.as_str()));
            prop_assert_eq!(&a.elements, &b.elements);
            let mut sorted = c.elements.clone();
            sorted.sort_by(|x, y| x.ai.cmp(&y.ai));
            let mut expected = a.elements.clone();
            expected.sort_by(|x, y| x.ai.cmp(&y.ai));
            prop_assert_eq!(sorted, expected);
            prop_assert_eq!(a.expiry(), Date::new(2027, 12, 31));
        }

        #[test]
        fn never_panics_on_gs1_like_text(s in "[0-9A-Za-z()%/?&=:.\\\\\x1d]{0,80}") {
            decode_all(s.as_bytes());
            let url = format!("https://x.y/{s}");
            decode_all(url.as_bytes());
        }
    }

    #[test]
    fn seeds_decode() {
        for seed in SEEDS {
            let ok = parse_element_string(seed, today()).is_ok()
                || parse_bracketed(seed, today()).is_ok()
                || parse_digital_link(seed, today()).is_ok();
            assert!(ok, "{}", crate::error::escape(seed));
        }
    }
}
