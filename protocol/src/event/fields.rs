//! The bounded, validated values an event is made of.
//!
//! Contract: every type here can only hold a value that passes its rule, whichever way it was
//! made (a constructor, JSON or postcard): deserialisation runs the same check as `new`. Text
//! lengths count Unicode scalar values, as JSON Schema's `maxLength` does. Each rule has a twin
//! in `protocol/schema/event.v1.schema.json`; change both together.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::barcode::check::{gs1_mod10, gs1_mod10_ok};
use crate::error::escape;

/// A value that breaks the rule of its field: which field, the value (escaped and bounded, see
/// [`escape`]) and why, in one sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field} \"{value}\": {message}")]
pub struct FieldError {
    pub field: &'static str,
    pub value: String,
    pub message: String,
}

impl FieldError {
    pub(crate) fn new(field: &'static str, value: &str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            value: escape(value.as_bytes()),
            message: message.into(),
        }
    }
}

/// The Serialize/Deserialize/Display/FromStr/TryFrom plumbing shared by every text newtype:
/// serialised as a plain string in JSON and postcard alike, deserialised through `$name::new`.
macro_rules! text_traits {
    ($name:ident) => {
        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The value as an owned `String`.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = FieldError;

            fn from_str(s: &str) -> Result<Self, FieldError> {
                $name::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = FieldError;

            fn try_from(s: String) -> Result<Self, FieldError> {
                $name::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = FieldError;

            fn try_from(s: &str) -> Result<Self, FieldError> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let s = String::deserialize(deserializer)?;
                $name::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

/// A text newtype whose rule is "1 to `max` characters, no control characters".
macro_rules! free_text {
    ($(#[$doc:meta])* $name:ident, field = $field:literal, noun = $noun:literal, max = $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest value, in characters.
            pub const MAX_CHARS: usize = $max;

            /// The value, if it has 1 to [`Self::MAX_CHARS`] characters and no control
            /// character.
            pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                check_free_text(&value, $noun, Self::MAX_CHARS)
                    .map_err(|m| FieldError::new($field, &value, m))?;
                Ok($name(value))
            }
        }

        text_traits!($name);
    };
}

/// A name that is also an MQTT topic segment, with this rule: 1 to 64 ASCII letters, digits,
/// `-` or `_`.
macro_rules! segment_name {
    ($(#[$doc:meta])* $name:ident, field = $field:literal, noun = $noun:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Longest name, in characters.
            pub const MAX_CHARS: usize = MAX_SEGMENT_CHARS;

            /// The name, if it is 1 to 64 ASCII letters, digits, `-` or `_`.
            pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
                let value = value.into();
                check_segment(&value, $noun).map_err(|m| FieldError::new($field, &value, m))?;
                Self::extra_check(&value).map_err(|m| FieldError::new($field, &value, m))?;
                Ok($name(value))
            }
        }

        text_traits!($name);
    };
}

/// Longest facility, gateway or source name.
pub const MAX_SEGMENT_CHARS: usize = 64;

fn check_segment(s: &str, noun: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{noun} cannot be empty"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "{noun} may contain only ASCII letters, digits, `-` and `_`, not {c:?}"
        ));
    }
    if s.len() > MAX_SEGMENT_CHARS {
        return Err(format!(
            "{noun} is at most {MAX_SEGMENT_CHARS} characters, this one has {}",
            s.len()
        ));
    }
    Ok(())
}

/// 1 to `max` characters, none of them a control character (Unicode category Cc: U+0000–U+001F
/// and U+007F–U+009F).
fn check_free_text(s: &str, noun: &str, max: usize) -> Result<(), String> {
    if s.is_empty() {
        return Err(format!("{noun} cannot be empty"));
    }
    let mut count = 0usize;
    for (i, c) in s.chars().enumerate() {
        if c.is_control() {
            return Err(format!(
                "{noun} cannot contain control characters (U+{:04X} at character {})",
                u32::from(c),
                i + 1
            ));
        }
        count += 1;
    }
    if count > max {
        return Err(format!(
            "{noun} is at most {max} characters, this one has {count}"
        ));
    }
    Ok(())
}

segment_name!(
    /// The facility a gateway belongs to (`north`): the first topic segment after
    /// `tallyman/v1/`.
    FacilityId,
    field = "facility",
    noun = "a facility name"
);

impl FacilityId {
    fn extra_check(_: &str) -> Result<(), String> {
        Ok(())
    }
}

segment_name!(
    /// The gateway's id (`gw-north-01`): the second topic segment. `all` (in any case) is
    /// reserved for facility-wide topics and is never a gateway id.
    GatewayId,
    field = "gateway",
    noun = "a gateway id"
);

impl GatewayId {
    /// The segment that addresses every gateway of a facility.
    pub const RESERVED_ALL: &'static str = "all";

    fn extra_check(s: &str) -> Result<(), String> {
        if s.eq_ignore_ascii_case(Self::RESERVED_ALL) {
            return Err(
                "`all` is reserved for facility-wide topics and cannot be a gateway id".into(),
            );
        }
        Ok(())
    }
}

segment_name!(
    /// The name of the input that captured the event (`dock-1`): a `[[sources]]` name, and the
    /// last segment of its `feedback/{source}` topic.
    SourceName,
    field = "source",
    noun = "a source name"
);

impl SourceName {
    fn extra_check(_: &str) -> Result<(), String> {
        Ok(())
    }
}

free_text!(
    /// A stock location as Odoo names it in full (`WH/Stock/Shelf 2`).
    Location,
    field = "location",
    noun = "a location",
    max = 256
);

free_text!(
    /// A business reference: a purchase order, an ASN, a GS1 AI 400 order number.
    Reference,
    field = "reference",
    noun = "a reference",
    max = 64
);

free_text!(
    /// A batch or lot number.
    Lot,
    field = "lot",
    noun = "a lot",
    max = 64
);

free_text!(
    /// A serial number. A line with a serial number counts exactly one unit.
    Serial,
    field = "serial",
    noun = "a serial number",
    max = 64
);

free_text!(
    /// An internal product code (Odoo's internal reference).
    ItemCode,
    field = "item code",
    noun = "an item code",
    max = 64
);

free_text!(
    /// A unit of measure as Odoo names it (`Units`, `Box of 10`).
    Uom,
    field = "uom",
    noun = "a unit of measure",
    max = 32
);

/// A GTIN written with 14 digits (GTIN-8, -12 and -13 are left-padded with zeros), whose last
/// digit is its GS1 mod-10 check digit.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gtin14(String);

impl Gtin14 {
    /// The GTIN, if it is 14 digits with a valid check digit.
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        check_gtin(&value, 14).map_err(|m| FieldError::new("gtin", &value, m))?;
        Ok(Gtin14(value))
    }

    /// A GTIN-8, -12, -13 or -14, padded to 14 digits, if its check digit is valid.
    pub fn from_gtin(value: &str) -> Result<Self, FieldError> {
        let len = value.len();
        if !matches!(len, 8 | 12 | 13 | 14) {
            return Err(FieldError::new(
                "gtin",
                value,
                format!(
                    "a GTIN has 8, 12, 13 or 14 digits, this one has {} characters",
                    value.chars().count()
                ),
            ));
        }
        let mut padded = String::with_capacity(14);
        padded.extend(std::iter::repeat_n('0', 14 - len));
        padded.push_str(value);
        check_gtin(&padded, 14).map_err(|m| FieldError::new("gtin", value, m))?;
        Ok(Gtin14(padded))
    }
}

fn check_gtin(s: &str, digits: usize) -> Result<(), String> {
    let b = s.as_bytes();
    if b.len() != digits {
        return Err(format!(
            "a GTIN here is {digits} digits, this one has {} characters",
            s.chars().count()
        ));
    }
    if !b.iter().all(u8::is_ascii_digit) {
        return Err("a GTIN is digits only".into());
    }
    if !gs1_mod10_ok(b) {
        let (check, body) = b.split_last().map_or((b'?', b), |(c, body)| (*c, body));
        let expected = gs1_mod10(body).unwrap_or(b'?');
        return Err(format!(
            "GTIN check digit is {}, expected {}",
            char::from(check),
            char::from(expected)
        ));
    }
    Ok(())
}

text_traits!(Gtin14);

/// A HIBC Labeler Identification Code: an uppercase letter and three uppercase letters or
/// digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HibcLic(String);

impl HibcLic {
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = b.len() == 4
            && b.first().is_some_and(u8::is_ascii_uppercase)
            && b.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok {
            return Err(FieldError::new(
                "HIBC labeler code",
                &value,
                "a HIBC labeler code is an uppercase letter followed by three uppercase letters or digits",
            ));
        }
        Ok(HibcLic(value))
    }
}

text_traits!(HibcLic);

/// A HIBC Product or Catalog Number: 1 to 18 uppercase letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HibcPcn(String);

impl HibcPcn {
    /// Longest product code.
    pub const MAX_CHARS: usize = 18;

    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = (1..=Self::MAX_CHARS).contains(&b.len())
            && b.iter()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !ok {
            return Err(FieldError::new(
                "HIBC product code",
                &value,
                "a HIBC product code is 1 to 18 uppercase letters or digits",
            ));
        }
        Ok(HibcPcn(value))
    }
}

text_traits!(HibcPcn);

/// The HIBC unit of measure digit (0 = the unit of use, 1–8 = packaging levels, 9 = variable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct HibcUnit(u8);

impl HibcUnit {
    pub fn new(digit: u8) -> Result<Self, FieldError> {
        if digit > 9 {
            return Err(FieldError::new(
                "HIBC unit of measure",
                &digit.to_string(),
                "a HIBC unit of measure is one digit, 0 to 9",
            ));
        }
        Ok(HibcUnit(digit))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for HibcUnit {
    type Error = FieldError;

    fn try_from(d: u8) -> Result<Self, FieldError> {
        HibcUnit::new(d)
    }
}

impl From<HibcUnit> for u8 {
    fn from(u: HibcUnit) -> u8 {
        u.0
    }
}

/// A quantity greater than zero, as decimal text: up to 12 integer digits and up to 6 decimals
/// (`^[0-9]{1,12}(\.[0-9]{1,6})?$`). Stored normalised, with no leading zeros and no trailing
/// decimal zeros: `"05.10"` becomes `"5.1"`, `"3.000"` becomes `"3"`. Never a float.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Quantity(String);

impl Quantity {
    /// Most integer digits.
    pub const MAX_INT_DIGITS: usize = 12;
    /// Most decimals.
    pub const MAX_DECIMALS: usize = 6;

    /// The quantity, normalised, if the text matches the rule and is greater than zero.
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        let err = |m: &str| FieldError::new("quantity", &value, m);
        let (int, frac) = match value.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (value.as_str(), None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !frac.is_none_or(digits) {
            return Err(err(
                "a quantity is decimal text such as \"5\" or \"2.25\": digits, at most one `.` between digits",
            ));
        }
        if int.len() > Self::MAX_INT_DIGITS {
            return Err(err(
                "a quantity has at most 12 digits before the decimal point",
            ));
        }
        if frac.is_some_and(|f| f.len() > Self::MAX_DECIMALS) {
            return Err(err("a quantity has at most 6 decimals"));
        }
        let int = int.trim_start_matches('0');
        let frac = frac.map_or("", |f| f.trim_end_matches('0'));
        if int.is_empty() && frac.is_empty() {
            return Err(err("a quantity must be greater than zero"));
        }
        let mut out = String::with_capacity(int.len() + frac.len() + 2);
        out.push_str(if int.is_empty() { "0" } else { int });
        if !frac.is_empty() {
            out.push('.');
            out.push_str(frac);
        }
        Ok(Quantity(out))
    }

    /// One unit.
    pub fn one() -> Quantity {
        Quantity("1".into())
    }

    /// A whole quantity, if it is 1 to 999,999,999,999.
    pub fn from_int(n: u64) -> Result<Quantity, FieldError> {
        Quantity::new(n.to_string())
    }

    /// Whether this is exactly one.
    pub fn is_one(&self) -> bool {
        self.0 == "1"
    }

    /// The quantity in millionths (`"2.5"` → 2,500,000). Always fits: at most 18 digits.
    pub fn millionths(&self) -> u64 {
        let (int, frac) = self.0.split_once('.').unwrap_or((&self.0, ""));
        let mut n: u64 = 0;
        for b in int.bytes().chain(frac.bytes()) {
            n = n
                .saturating_mul(10)
                .saturating_add(u64::from(b.wrapping_sub(b'0')));
        }
        for _ in frac.len()..Self::MAX_DECIMALS {
            n = n.saturating_mul(10);
        }
        n
    }
}

text_traits!(Quantity);

/// An AIM symbology identifier as text (`]d2`, `]C1`, `]E0`): `]`, a letter, then 1 to 10
/// letters or digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbology(String);

impl Symbology {
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        let b = value.as_bytes();
        let ok = b.first() == Some(&b']')
            && b.get(1).is_some_and(u8::is_ascii_alphabetic)
            && (3..=12).contains(&b.len())
            && b.get(2..)
                .is_some_and(|m| m.iter().all(u8::is_ascii_alphanumeric));
        if !ok {
            return Err(FieldError::new(
                "symbology",
                &value,
                "a symbology identifier is `]`, a letter, then 1 to 10 letters or digits",
            ));
        }
        Ok(Symbology(value))
    }
}

text_traits!(Symbology);

/// A scan exactly as the scanner sent it, escaped into printable ASCII: every byte from `0x20`
/// to `0x7e` stands for itself except `\`, which is written `\\`; every other byte is written
/// `\xNN` with two lowercase hex digits (GS is `\x1d`). [`RawScan::to_bytes`] gives the bytes
/// back exactly.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RawScan(String);

impl RawScan {
    /// Longest scan, in bytes before escaping (the barcode decoders' limit).
    pub const MAX_BYTES: usize = crate::barcode::MAX_SCAN_LEN;
    /// Longest escaped text: every byte escaped as `\xNN`.
    pub const MAX_CHARS: usize = 4 * Self::MAX_BYTES;

    /// The escaped text, if it is 1 to [`Self::MAX_CHARS`] characters of well-formed escaped
    /// printable ASCII.
    pub fn new(value: impl Into<String>) -> Result<Self, FieldError> {
        let value = value.into();
        check_escaped(&value).map_err(|m| FieldError::new("raw scan", &value, m))?;
        Ok(RawScan(value))
    }

    /// A scan's bytes, escaped. Refuses an empty scan and one longer than [`Self::MAX_BYTES`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, FieldError> {
        if bytes.is_empty() || bytes.len() > Self::MAX_BYTES {
            return Err(FieldError::new(
                "raw scan",
                &escape(bytes),
                format!(
                    "a raw scan is 1 to {} bytes, this one has {}",
                    Self::MAX_BYTES,
                    bytes.len()
                ),
            ));
        }
        // The same escaping as every error value, without the length limit of errors.
        Ok(RawScan(crate::error::escape_bounded(
            bytes,
            Self::MAX_BYTES,
        )))
    }

    /// The scan's bytes, unescaped.
    pub fn to_bytes(&self) -> Vec<u8> {
        let b = self.0.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while let Some(&c) = b.get(i) {
            if c != b'\\' {
                out.push(c);
                i += 1;
            } else if b.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
            } else {
                // Validated at construction: `\x` and two lowercase hex digits.
                let hi = b.get(i + 2).and_then(|&h| hex_value(h)).unwrap_or(0);
                let lo = b.get(i + 3).and_then(|&h| hex_value(h)).unwrap_or(0);
                out.push(hi << 4 | lo);
                i += 4;
            }
        }
        out
    }
}

text_traits!(RawScan);

fn hex_value(h: u8) -> Option<u8> {
    match h {
        b'0'..=b'9' => Some(h - b'0'),
        b'a'..=b'f' => Some(h - b'a' + 10),
        _ => None,
    }
}

fn check_escaped(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("a raw scan cannot be empty".into());
    }
    if s.len() > RawScan::MAX_CHARS {
        return Err(format!(
            "a raw scan is at most {} characters once escaped",
            RawScan::MAX_CHARS
        ));
    }
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => match b.get(i + 1) {
                Some(b'\\') => i += 2,
                Some(b'x')
                    if b.get(i + 2).and_then(|&h| hex_value(h)).is_some()
                        && b.get(i + 3).and_then(|&h| hex_value(h)).is_some() =>
                {
                    i += 4
                }
                _ => {
                    return Err(format!(
                        "a raw scan writes `\\` as `\\\\` and other bytes as `\\xNN` (lowercase hex); \
                         bad escape at character {}",
                        i + 1
                    ));
                }
            },
            0x20..=0x7e => i += 1,
            _ => {
                return Err(format!(
                    "a raw scan is escaped printable ASCII; character {} is not",
                    s.get(..i).map_or(i, |p| p.chars().count()) + 1
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names() {
        assert!(FacilityId::new("north").is_ok());
        assert!(GatewayId::new("gw-north_01").is_ok());
        assert!(GatewayId::new("all").is_err());
        assert!(GatewayId::new("ALL").is_err());
        assert!(FacilityId::new("all").is_ok());
        assert!(SourceName::new("").is_err());
        assert!(SourceName::new("dock 1").is_err());
        assert!(SourceName::new("a/b").is_err());
        assert!(SourceName::new("+").is_err());
        assert!(SourceName::new("é").is_err());
        assert!(SourceName::new("x".repeat(64)).is_ok());
        assert!(SourceName::new("x".repeat(65)).is_err());
    }

    #[test]
    fn free_text_counts_characters() {
        assert!(Location::new("WH/Stock/Shelf 2").is_ok());
        assert!(Location::new("é".repeat(256)).is_ok());
        assert!(Location::new("é".repeat(257)).is_err());
        let e = Lot::new("A\u{1d}B").unwrap_err();
        assert_eq!(e.field, "lot");
        assert_eq!(e.value, "A\\x1dB");
        assert!(e.message.contains("U+001D at character 2"), "{e}");
        assert!(Lot::new("A\u{85}B").is_err());
        assert!(Uom::new("").is_err());
    }

    #[test]
    fn gtins() {
        assert!(Gtin14::new("09506000134352").is_ok());
        let e = Gtin14::new("09506000134353").unwrap_err();
        assert_eq!(e.message, "GTIN check digit is 3, expected 2");
        assert!(Gtin14::new("9506000134352").is_err());
        assert!(Gtin14::new("0950600013435a").is_err());
        assert_eq!(
            Gtin14::from_gtin("9506000134352").unwrap().as_str(),
            "09506000134352"
        );
        assert_eq!(
            Gtin14::from_gtin("96385074").unwrap().as_str(),
            "00000096385074"
        );
        assert!(Gtin14::from_gtin("123").is_err());
        assert!(Gtin14::from_gtin("１２３４５６７８").is_err());
    }

    #[test]
    fn hibc_parts() {
        assert!(HibcLic::new("A123").is_ok());
        assert!(HibcLic::new("1234").is_err());
        assert!(HibcLic::new("a123").is_err());
        assert!(HibcLic::new("A12").is_err());
        assert!(HibcPcn::new("ABC123").is_ok());
        assert!(HibcPcn::new("").is_err());
        assert!(HibcPcn::new("A".repeat(19)).is_err());
        assert!(HibcPcn::new("AB-1").is_err());
        assert!(HibcUnit::new(9).is_ok());
        assert!(HibcUnit::new(10).is_err());
    }

    #[test]
    fn quantities_normalise() {
        let q = |s: &str| Quantity::new(s).map(Quantity::into_string);
        assert_eq!(q("05.10").unwrap(), "5.1");
        assert_eq!(q("3.000").unwrap(), "3");
        assert_eq!(q("0.5").unwrap(), "0.5");
        assert_eq!(q("000000000001").unwrap(), "1");
        assert_eq!(q("999999999999.999999").unwrap(), "999999999999.999999");
        for bad in [
            "",
            "0",
            "0.0",
            "000",
            "-1",
            "+1",
            "1.",
            ".5",
            "1e3",
            "1,5",
            "1.2.3",
            " 1",
            "1 ",
            "0000000000001",
            "1.0000001",
            "５",
            "NaN",
        ] {
            assert!(Quantity::new(bad).is_err(), "{bad:?}");
        }
        assert!(Quantity::new("1.0").unwrap().is_one());
        assert_eq!(Quantity::new("2.5").unwrap().millionths(), 2_500_000);
        assert_eq!(
            Quantity::new("999999999999.999999").unwrap().millionths(),
            999_999_999_999_999_999
        );
        assert_eq!(Quantity::from_int(7).unwrap().as_str(), "7");
        assert!(Quantity::from_int(0).is_err());
        assert!(Quantity::from_int(1_000_000_000_000).is_err());
    }

    #[test]
    fn symbologies() {
        assert!(Symbology::new("]d2").is_ok());
        assert!(Symbology::new("]Y3abc").is_ok());
        assert!(Symbology::new("d2").is_err());
        assert!(Symbology::new("]2d").is_err());
        assert!(Symbology::new("]d").is_err());
        assert!(Symbology::new("]d2!").is_err());
    }

    #[test]
    fn raw_scans_escape_and_unescape() {
        let bytes = b"]d2\x1d0109506000134352\\\xff\x00";
        let raw = RawScan::from_bytes(bytes).unwrap();
        assert_eq!(raw.as_str(), "]d2\\x1d0109506000134352\\\\\\xff\\x00");
        assert_eq!(raw.to_bytes(), bytes);
        assert_eq!(RawScan::new(raw.as_str()).unwrap(), raw);
        for bad in ["", "a\\", "\\x1", "\\x1D", "\\y", "é", "a\tb"] {
            assert!(RawScan::new(bad).is_err(), "{bad:?}");
        }
        assert!(RawScan::from_bytes(b"").is_err());
        assert!(RawScan::from_bytes(&[0u8; RawScan::MAX_BYTES]).is_ok());
        assert!(RawScan::from_bytes(&[0u8; RawScan::MAX_BYTES + 1]).is_err());
    }

    #[test]
    fn serde_validates_in_json_and_postcard() {
        let ok: Lot = serde_json::from_str("\"A1\"").unwrap();
        assert_eq!(ok.as_str(), "A1");
        let e = serde_json::from_str::<Quantity>("\"0\"").unwrap_err();
        assert!(e.to_string().contains("greater than zero"), "{e}");
        let q: Quantity = serde_json::from_str("\"05.10\"").unwrap();
        assert_eq!(q.as_str(), "5.1");
        let bytes = postcard::to_allocvec("0").unwrap();
        assert!(postcard::from_bytes::<Quantity>(&bytes).is_err());
        let bytes = postcard::to_allocvec(&10u8).unwrap();
        assert!(postcard::from_bytes::<HibcUnit>(&bytes).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn constructors_never_panic(s in any::<String>(), b in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = FacilityId::new(s.clone());
                let _ = GatewayId::new(s.clone());
                let _ = Location::new(s.clone());
                let _ = Gtin14::new(s.clone());
                let _ = Gtin14::from_gtin(&s);
                let _ = HibcLic::new(s.clone());
                let _ = HibcPcn::new(s.clone());
                let _ = Quantity::new(s.clone());
                let _ = Symbology::new(s.clone());
                let _ = RawScan::new(s);
                if let Ok(raw) = RawScan::from_bytes(&b) {
                    prop_assert_eq!(raw.to_bytes(), b);
                }
            }

            #[test]
            fn quantity_normal_form_is_a_fixed_point(int in 0u64..1_000_000_000_000, frac in 0u32..1_000_000, zeros in 0usize..3) {
                let text = format!("{}{int}.{frac:06}", "0".repeat(zeros));
                let int_digits = zeros + int.to_string().len();
                match Quantity::new(text) {
                    Ok(q) => {
                        prop_assert!(int_digits <= 12);
                        prop_assert_eq!(Quantity::new(q.as_str()).unwrap(), q.clone());
                        prop_assert_eq!(q.millionths(), int * 1_000_000 + u64::from(frac));
                    }
                    Err(_) => prop_assert!((int == 0 && frac == 0) || int_digits > 12),
                }
            }
        }
    }
}
