//! AIM symbology identifiers (ISO/IEC 15424): `]` + code character + modifier.

use std::fmt;

use crate::{DecodeError, ErrorKind};

/// A symbology identifier as the scanner sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbologyId {
    /// The code character (`C`, `d`, `Q`, `e`, `E`, `I`, `A`, `J` …).
    pub code: char,
    /// The modifier characters (one for all but `]Y`).
    pub modifier: String,
}

/// What a symbology identifier says about the data that follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// FNC1 in first position: GS1-128 `]C1`, GS1 DataMatrix `]d2`, GS1 QR `]Q3`, GS1 DataBar
    /// `]e0`, GS1 DotCode `]J1`. The data is a GS1 element string.
    Gs1,
    /// EAN/UPC (`]E0`, `]E3`, `]E4`) or ITF-14 (`]I1`): a plain GTIN.
    EanUpc,
    /// Code 128 ISBT 128 concatenation (`]C4`).
    Isbt128,
    /// Any other symbology: the data decides.
    Other,
}

impl SymbologyId {
    pub fn carrier(&self) -> Carrier {
        match (self.code, self.modifier.as_str()) {
            ('C', "1") | ('d', "2") | ('Q', "3") | ('e', "0") | ('J', "1") => Carrier::Gs1,
            ('E', "0" | "3" | "4") | ('I', "1") => Carrier::EanUpc,
            ('C', "4") => Carrier::Isbt128,
            _ => Carrier::Other,
        }
    }
}

impl fmt::Display for SymbologyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "]{}{}", self.code, self.modifier)
    }
}

/// Split a leading symbology identifier off a scan: the identifier (if the scan starts with
/// `]`) and the offset where the data starts. `]Y` carries a count digit and that many more
/// modifier characters; every other code has one modifier character.
pub fn split(input: &[u8]) -> Result<(Option<SymbologyId>, usize), DecodeError> {
    let Some(rest) = input.strip_prefix(b"]") else {
        return Ok((None, 0));
    };
    let bad = |len: usize, msg: &str| {
        DecodeError::new(
            ErrorKind::InvalidStructure,
            0,
            input.get(..len).unwrap_or(input),
            msg,
        )
    };
    let (Some(&code), Some(&m0)) = (rest.first(), rest.get(1)) else {
        return Err(bad(
            input.len(),
            "a symbology identifier is `]` plus two characters",
        ));
    };
    if !code.is_ascii_alphabetic() || !m0.is_ascii_alphanumeric() {
        return Err(bad(3.min(input.len()), "not a symbology identifier"));
    }
    let mut modifier = String::from(char::from(m0));
    let mut end = 3;
    if code == b'Y' {
        // ]Y<n><n more modifier characters> (ISO/IEC 15424 for extended modes).
        let extra = usize::from(m0.wrapping_sub(b'0'));
        if extra > 9 {
            return Err(bad(3, "]Y takes a digit modifier"));
        }
        let more = rest
            .get(2..2 + extra)
            .ok_or_else(|| bad(input.len(), "]Y modifier cut short"))?;
        if !more.iter().all(u8::is_ascii_alphanumeric) {
            return Err(bad(3 + extra, "not a symbology identifier"));
        }
        modifier.extend(more.iter().map(|&b| char::from(b)));
        end += extra;
    }
    Ok((
        Some(SymbologyId {
            code: char::from(code),
            modifier,
        }),
        end,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_common_identifiers() {
        let (id, off) = split(b"]d2010950110102091").unwrap();
        let id = id.unwrap();
        assert_eq!(
            (id.to_string().as_str(), off, id.carrier()),
            ("]d2", 3, Carrier::Gs1)
        );
        assert_eq!(split(b"0109").unwrap(), (None, 0));
        assert_eq!(
            split(b"]E09501101020917").unwrap().0.unwrap().carrier(),
            Carrier::EanUpc
        );
        assert_eq!(split(b"]Y2AB123").unwrap().1, 5);
        assert!(split(b"]").is_err());
        assert!(split(b"]d").is_err());
        assert!(split(b"]Y5AB").is_err());
    }
}
