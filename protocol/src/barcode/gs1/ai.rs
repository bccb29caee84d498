//! The GS1 Application Identifier dictionary: what each AI's data field looks like, the lookup
//! of the AI at the start of some data, and the validation of a value against its AI.
//!
//! The table itself ([`entries`]) is generated from the GS1 Barcode Syntax Dictionary into
//! `ai_table.rs`; this file holds the types it is made of and the rules that apply them.

use crate::barcode::gs1::lint;
use crate::{Date, ErrorKind};

/// The character set of one component of a data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cset {
    /// Digits `0`–`9`.
    N,
    /// GS1 AI encodable character set 82.
    X,
    /// GS1 AI encodable character set 39 (`#`, `-`, `/`, digits, upper-case letters).
    Y,
    /// File-safe, URI-safe base64 (`A-Z a-z 0-9 - _`, `=` only as trailing padding).
    Z,
}

/// A content check of one component, named as in the GS1 Barcode Syntax Dictionary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Linter {
    Couponcode,
    Couponposoffer,
    Csum,
    Csumalpha,
    Gcppos1,
    Gcppos2,
    Hasnondigit,
    Hh,
    Hhmi,
    Hyphen,
    Iban,
    Importeridx,
    Iso3166,
    Iso3166999,
    Iso3166alpha2,
    Iso4217,
    Iso5218,
    Latitude,
    Longitude,
    Mediatype,
    Mi,
    Nonzero,
    Nozeroprefix,
    Packagetype,
    Pcenc,
    Pieceoftotal,
    Posinseqslash,
    Ss,
    Winding,
    Yesno,
    Yymmd0,
    Yymmdd,
    Yyyymmdd,
    Zero,
}

/// One component of an AI's data field, such as `N13,csum` or an optional `[X..16]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    pub cset: Cset,
    /// Fewest characters (equal to `max` for a fixed-length component).
    pub min: u8,
    pub max: u8,
    /// May be left out once the data is exhausted.
    pub optional: bool,
    pub linters: &'static [Linter],
}

/// One Application Identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AiEntry {
    /// The AI digits (2 to 4).
    pub ai: &'static str,
    /// The data title of the GS1 General Specifications ("BATCH/LOT").
    pub title: &'static str,
    /// Flag `*`: a predefined-length AI, never followed by a separator.
    pub predefined: bool,
    /// Flag `?`: allowed as a GS1 Digital Link data attribute (query parameter).
    pub dl_attribute: bool,
    pub components: &'static [Component],
    /// `req=` attributes: each must be met by one of its groups; a group is met when every
    /// pattern in it matches an AI of the message. Patterns use `n` for any digit.
    pub req: &'static [&'static [&'static [&'static str]]],
    /// `ex=` patterns of AIs that must not appear together with this one.
    pub ex: &'static [&'static str],
    /// `dlpkey`: `Some` when the AI is a Digital Link primary key, with the alternative ordered
    /// qualifier sequences (empty: no qualifiers).
    pub dl_qualifiers: Option<&'static [&'static [&'static str]]>,
}

impl AiEntry {
    /// `(01) GTIN`, for messages.
    pub fn label(&self) -> String {
        format!("({}) {}", self.ai, self.title)
    }

    /// Fewest data characters the field may have.
    pub fn min_len(&self) -> usize {
        self.components
            .iter()
            .filter(|c| !c.optional)
            .map(|c| usize::from(c.min))
            .sum()
    }

    /// Most data characters the field may have.
    pub fn max_len(&self) -> usize {
        self.components.iter().map(|c| usize::from(c.max)).sum()
    }

    /// Whether the AI is a Digital Link primary key.
    pub fn is_dl_primary_key(&self) -> bool {
        self.dl_qualifiers.is_some()
    }
}

/// Every AI of the dictionary, ranges expanded, sorted by AI.
pub fn entries() -> &'static [AiEntry] {
    super::ai_table::AI_TABLE
}

/// The entry of one AI.
pub fn lookup(ai: &str) -> Option<&'static AiEntry> {
    let table = entries();
    table
        .binary_search_by(|e| e.ai.cmp(ai))
        .ok()
        .and_then(|i| table.get(i))
}

/// The AI at the start of `data`. AIs are prefix-free, so at most one of the 2-, 3- and 4-digit
/// prefixes is an AI.
pub fn match_prefix(data: &[u8]) -> Option<&'static AiEntry> {
    (2..=4).find_map(|n| {
        let head = data.get(..n)?;
        if !head.iter().all(u8::is_ascii_digit) {
            return None;
        }
        lookup(std::str::from_utf8(head).ok()?)
    })
}

/// Whether an AI matches a pattern of the association rules (`31nn` matches `3103`).
pub fn pattern_matches(pattern: &str, ai: &str) -> bool {
    pattern.len() == ai.len()
        && pattern
            .bytes()
            .zip(ai.bytes())
            .all(|(p, a)| p == a || (p == b'n' && a.is_ascii_digit()))
}

/// What a value broke, relative to the start of the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ErrorKind,
    /// Offset of the offending part in the value.
    pub at: usize,
    pub message: String,
}

impl Problem {
    pub fn new(kind: ErrorKind, at: usize, message: impl Into<String>) -> Problem {
        Problem {
            kind,
            at,
            message: message.into(),
        }
    }

    fn shifted(mut self, by: usize) -> Problem {
        self.at = self.at.saturating_add(by);
        self
    }
}

/// What a valid value told besides being valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checked {
    /// The date of the field's first date component, the GS1 century rule applied and a day
    /// of 00 read as the last day of the month.
    pub date: Option<Date>,
    /// The date component had day 00.
    pub day_zero: bool,
}

/// Validate a value against its AI: lengths, character sets and every linter of every
/// component. `today` decides the century of two-digit years.
pub fn check_value(entry: &AiEntry, value: &[u8], today: Date) -> Result<Checked, Problem> {
    let label = entry.label();
    let (min, max) = (entry.min_len(), entry.max_len());
    if value.is_empty() {
        return Err(Problem::new(
            ErrorKind::TooShort,
            0,
            format!("{label} has no value"),
        ));
    }
    if value.len() < min {
        let msg = if min == max {
            format!("{label} needs {min} characters, got {}", value.len())
        } else {
            format!(
                "{label} needs at least {min} characters, got {}",
                value.len()
            )
        };
        return Err(Problem::new(ErrorKind::TooShort, 0, msg));
    }
    if value.len() > max {
        let msg = if min == max {
            format!("{label} has {max} characters, got {}", value.len())
        } else {
            format!(
                "{label} allows at most {max} characters, got {}",
                value.len()
            )
        };
        return Err(Problem::new(ErrorKind::TooLong, 0, msg));
    }
    let mut checked = Checked::default();
    let mut pos = 0;
    for comp in entry.components {
        let rest = value.len().saturating_sub(pos);
        if rest == 0 && comp.optional {
            break;
        }
        let take = if comp.min == comp.max {
            let n = usize::from(comp.max);
            if rest < n {
                return Err(Problem::new(
                    ErrorKind::TooShort,
                    pos,
                    format!("{label}: a part of {n} characters is cut short"),
                ));
            }
            n
        } else {
            rest.min(usize::from(comp.max))
        };
        let part = value.get(pos..pos + take).unwrap_or_default();
        if part.len() < usize::from(comp.min) {
            return Err(Problem::new(
                ErrorKind::TooShort,
                pos,
                format!("{label}: a part is empty"),
            ));
        }
        check_cset(comp.cset, part, &label).map_err(|p| p.shifted(pos))?;
        for &linter in comp.linters {
            lint::check(linter, part, today)
                .map_err(|p| Problem::new(p.kind, p.at, format!("{label}: {}", p.message)))
                .map_err(|p| p.shifted(pos))?;
            if checked.date.is_none() {
                if let Some((date, zero)) = lint::date_of(linter, part, today) {
                    checked.date = Some(date);
                    checked.day_zero = zero;
                }
            }
        }
        pos += take;
    }
    if pos < value.len() {
        return Err(Problem::new(
            ErrorKind::TooLong,
            pos,
            format!("{label} has extra characters at the end"),
        ));
    }
    Ok(checked)
}

/// GS1 AI encodable character set 82.
pub fn is_cset82(b: u8) -> bool {
    matches!(b,
        b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// GS1 AI encodable character set 39.
pub fn is_cset39(b: u8) -> bool {
    matches!(b, b'#' | b'-' | b'/' | b'0'..=b'9' | b'A'..=b'Z')
}

fn is_base64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// A byte as people should see it in a message: the character, or `\xNN`.
pub fn show_byte(b: u8) -> String {
    if (0x21..=0x7e).contains(&b) {
        format!("'{}'", char::from(b))
    } else if b == b' ' {
        "a space".to_string()
    } else {
        format!("byte \\x{b:02x}")
    }
}

fn check_cset(cset: Cset, part: &[u8], label: &str) -> Result<(), Problem> {
    let bad = |i: usize, b: u8, what: &str| {
        Problem::new(
            ErrorKind::InvalidCharacter,
            i,
            format!("{label}: {} is not allowed ({what})", show_byte(b)),
        )
    };
    match cset {
        Cset::N => match part.iter().position(|b| !b.is_ascii_digit()) {
            Some(i) => Err(bad(i, part.get(i).copied().unwrap_or(0), "digits only")),
            None => Ok(()),
        },
        Cset::X => match part.iter().position(|&b| !is_cset82(b)) {
            Some(i) => Err(bad(
                i,
                part.get(i).copied().unwrap_or(0),
                "GS1 character set 82 only",
            )),
            None => Ok(()),
        },
        Cset::Y => match part.iter().position(|&b| !is_cset39(b)) {
            Some(i) => Err(bad(
                i,
                part.get(i).copied().unwrap_or(0),
                "GS1 character set 39 only",
            )),
            None => Ok(()),
        },
        Cset::Z => {
            let body = part.len() - part.iter().rev().take_while(|&&b| b == b'=').count();
            if part.len() - body > 2 {
                return Err(bad(body, b'=', "at most two padding characters"));
            }
            match part
                .get(..body)
                .unwrap_or_default()
                .iter()
                .position(|&b| !is_base64url(b))
            {
                Some(i) => Err(bad(
                    i,
                    part.get(i).copied().unwrap_or(0),
                    "URI-safe base64 only",
                )),
                None => Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    #[test]
    fn table_is_sorted_and_prefix_free() {
        let t = entries();
        assert!(t.windows(2).all(|w| w[0].ai < w[1].ai));
        for a in t {
            for b in t {
                if a.ai != b.ai {
                    assert!(!b.ai.starts_with(a.ai), "{} is a prefix of {}", a.ai, b.ai);
                }
            }
        }
    }

    #[test]
    fn finds_ais_of_every_length() {
        assert_eq!(match_prefix(b"0109501101020917").unwrap().ai, "01");
        assert_eq!(match_prefix(b"4220").unwrap().ai, "422");
        assert_eq!(match_prefix(b"3103000500").unwrap().ai, "3103");
        assert_eq!(match_prefix(b"99ABC").unwrap().ai, "99");
        assert!(match_prefix(b"23").is_none());
        assert!(match_prefix(b"3106").is_none());
        assert!(match_prefix(b"0").is_none());
        assert!(match_prefix(b"").is_none());
    }

    #[test]
    fn patterns() {
        assert!(pattern_matches("31nn", "3103"));
        assert!(pattern_matches("310n", "3105"));
        assert!(!pattern_matches("310n", "3115"));
        assert!(!pattern_matches("01", "010"));
    }

    #[test]
    fn component_rules() {
        let e = lookup("8003").unwrap();
        assert!(check_value(e, b"00950110100001", today()).is_ok());
        assert!(check_value(e, b"00950110100001ASSET1", today()).is_ok());
        let p = check_value(e, b"10950110100001", today()).unwrap_err();
        assert_eq!((p.kind, p.at), (ErrorKind::InvalidValue, 0));
        let e = lookup("7007").unwrap();
        assert!(check_value(e, b"260101", today()).is_ok());
        assert!(check_value(e, b"260101260131", today()).is_ok());
        assert_eq!(
            check_value(e, b"260101260", today()).unwrap_err().kind,
            ErrorKind::TooShort
        );
        let e = lookup("8030").unwrap();
        assert!(check_value(e, b"AbC-_9==", today()).is_ok());
        assert!(check_value(e, b"AbC=9", today()).is_err());
        assert!(check_value(e, b"AbC===", today()).is_err());
    }

    #[test]
    fn dates_are_resolved() {
        let e = lookup("17").unwrap();
        let c = check_value(e, b"280200", today()).unwrap();
        assert_eq!(c.date, Date::new(2028, 2, 29));
        assert!(c.day_zero);
        let c = check_value(lookup("7003").unwrap(), b"2712311530", today()).unwrap();
        assert_eq!(c.date, Date::new(2027, 12, 31));
        assert!(!c.day_zero);
    }

    #[test]
    fn character_sets() {
        assert!(is_cset82(b'!') && is_cset82(b'z') && is_cset82(b'/') && is_cset82(b'?'));
        assert!(!is_cset82(b'#') && !is_cset82(b' ') && !is_cset82(b'@') && !is_cset82(b'~'));
        assert!(!is_cset82(b'$') && !is_cset82(b'[') && !is_cset82(0x1d) && !is_cset82(0xc3));
        assert!(is_cset39(b'#') && !is_cset39(b'a'));
    }
}
