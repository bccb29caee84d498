//! GS1 element strings as scanners transmit them: AI + value, with GS (0x1D) ending every
//! variable-length field that is not last.
//!
//! A predefined-length AI (flag `*` of the dictionary: 00–03, 11–17, 20, 31nn–36nn, 410–417)
//! takes exactly its length and needs no separator; every other field runs to the next GS or
//! the end of the data. Scanners are sloppy with separators, so a GS after a predefined-length
//! field, repeated GS, leading GS (FNC1 in first position sent as GS) and a trailing GS are all
//! accepted.

use crate::barcode::GS;
use crate::barcode::gs1::{Builder, Form, Message, ai};
use crate::{Date, DecodeError, ErrorKind};

pub(super) fn parse(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    let mut builder = Builder::new(data, today);
    let mut pos = 0;
    loop {
        while data.get(pos) == Some(&GS) {
            pos += 1;
        }
        let rest = data.get(pos..).unwrap_or_default();
        if rest.is_empty() {
            break;
        }
        let Some(entry) = ai::match_prefix(rest) else {
            return Err(no_ai(rest, pos, builder.elements.is_empty()));
        };
        let start = pos + entry.ai.len();
        let field = data.get(start..).unwrap_or_default();
        let len = if entry.predefined {
            field
                .iter()
                .take(entry.max_len())
                .take_while(|&&b| b != GS)
                .count()
        } else {
            field.iter().position(|&b| b == GS).unwrap_or(field.len())
        };
        let value = field.get(..len).unwrap_or_default();
        let positions: Vec<usize> = (start..start + len).collect();
        builder.add(entry, value, &positions, start + len, pos)?;
        pos = start + len;
    }
    builder.finish(Form::ElementString)
}

/// The error for data that does not start with a known AI.
fn no_ai(rest: &[u8], pos: usize, first: bool) -> DecodeError {
    let digits = rest
        .iter()
        .take(4)
        .take_while(|b| b.is_ascii_digit())
        .count();
    let head = rest.get(..digits).unwrap_or_default();
    if digits < 2 {
        let shown = rest.get(..rest.len().min(8)).unwrap_or_default();
        if first && pos == 0 {
            return DecodeError::new(
                ErrorKind::Unrecognized,
                0,
                shown,
                "not a GS1 element string: it does not start with an Application Identifier",
            );
        }
        return DecodeError::new(
            ErrorKind::UnknownAi,
            pos,
            shown,
            "expected a GS1 Application Identifier (2 to 4 digits) here",
        );
    }
    let candidates: Vec<String> = (2..=digits)
        .filter_map(|n| head.get(..n))
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect();
    DecodeError::new(
        ErrorKind::UnknownAi,
        pos,
        head,
        format!(
            "unknown GS1 Application Identifier: none of {} is defined",
            candidates.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    fn ais(data: &[u8]) -> Vec<(String, String)> {
        parse(data, today())
            .unwrap()
            .elements
            .into_iter()
            .map(|e| (e.ai, e.value))
            .collect()
    }

    fn err(data: &[u8]) -> (ErrorKind, usize) {
        let e = parse(data, today()).unwrap_err();
        (e.kind, e.offset)
    }

    #[test]
    fn separators() {
        let want = vec![
            ("01".to_string(), "09501101020917".to_string()),
            ("10".to_string(), "AB".to_string()),
            ("17".to_string(), "271231".to_string()),
        ];
        assert_eq!(ais(b"0109501101020917" as &[u8]).len(), 1);
        assert_eq!(ais(b"0109501101020917\x1d10AB\x1d17271231"), want);
        assert_eq!(
            ais(b"\x1d\x1d0109501101020917\x1d\x1d10AB\x1d17271231\x1d"),
            want
        );
    }

    #[test]
    fn errors_point_at_the_field() {
        assert_eq!(err(b"0109501101020918"), (ErrorKind::CheckDigit, 15));
        assert_eq!(err(b"01095011010209"), (ErrorKind::TooShort, 2));
        assert_eq!(err(b"010950110\x1d1020917"), (ErrorKind::TooShort, 2));
        assert_eq!(err(b"10ABCDEFGHIJKLMNOPQRSTU"), (ErrorKind::TooLong, 2));
        assert_eq!(err(b"0109501101020917231234"), (ErrorKind::UnknownAi, 16));
        assert_eq!(err(b"HELLO"), (ErrorKind::Unrecognized, 0));
        assert_eq!(err(b"10A\x1dX"), (ErrorKind::UnknownAi, 4));
        assert_eq!(err(b"10A#B"), (ErrorKind::InvalidCharacter, 3));
        assert_eq!(err(b"\x1d"), (ErrorKind::Empty, 0));
    }

    #[test]
    fn repeated_ais() {
        assert_eq!(ais(b"10AB\x1d10AB").len(), 1);
        assert_eq!(err(b"10AB\x1d10AC"), (ErrorKind::InvalidStructure, 5));
    }
}
