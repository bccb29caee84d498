//! The bracketed human-readable form: `(01)09501101020917(17)271231(10)LOT123`.
//!
//! The parentheses delimit the AIs, so no separators are needed. Spaces around elements are
//! tolerated (people type this form), and `\(` stands for a literal `(` inside a value, as in
//! the GS1 Barcode Syntax Engine's bracketed syntax.

use crate::barcode::gs1::{Builder, Form, Message, ai};
use crate::{Date, DecodeError, ErrorKind};

pub(super) fn parse(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    let mut builder = Builder::new(data, today);
    let at = |i: usize| data.get(i).copied();
    let mut pos = skip_spaces(data, 0);
    while pos < data.len() {
        if at(pos) != Some(b'(') {
            return Err(DecodeError::new(
                ErrorKind::InvalidStructure,
                pos,
                data.get(pos..pos + 1).unwrap_or_default(),
                "expected '(' to open an Application Identifier",
            ));
        }
        let open = pos;
        let inner = data.get(open + 1..).unwrap_or_default();
        let Some(len) = inner.iter().position(|&b| b == b')' || b == b'(') else {
            return Err(unclosed(data, open));
        };
        if inner.get(len) == Some(&b'(') {
            return Err(unclosed(data, open));
        }
        let ai_bytes = inner.get(..len).unwrap_or_default();
        let entry = std::str::from_utf8(ai_bytes)
            .ok()
            .filter(|s| (2..=4).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(ai::lookup)
            .ok_or_else(|| {
                DecodeError::new(
                    ErrorKind::UnknownAi,
                    open + 1,
                    ai_bytes,
                    format!(
                        "({}) is not a GS1 Application Identifier",
                        crate::error::escape(ai_bytes)
                    ),
                )
            })?;
        let mut i = skip_spaces(data, open + 1 + len + 1);
        let mut value = Vec::new();
        let mut positions = Vec::new();
        while let Some(b) = at(i) {
            match b {
                b'(' => break,
                b'\\' if at(i + 1) == Some(b'(') => {
                    value.push(b'(');
                    positions.push(i);
                    i += 2;
                }
                _ => {
                    value.push(b);
                    positions.push(i);
                    i += 1;
                }
            }
        }
        while value.last().is_some_and(|b| b.is_ascii_whitespace()) {
            value.pop();
            positions.pop();
        }
        let end = positions.last().map_or(open + 1 + len + 1, |&p| p + 1);
        builder.add(entry, &value, &positions, end, open + 1)?;
        pos = i;
    }
    builder.finish(Form::Bracketed)
}

fn skip_spaces(data: &[u8], mut i: usize) -> usize {
    while data.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
        i += 1;
    }
    i
}

fn unclosed(data: &[u8], open: usize) -> DecodeError {
    let rest = data.get(open..).unwrap_or_default();
    DecodeError::new(
        ErrorKind::InvalidStructure,
        open,
        rest.get(..rest.len().min(8)).unwrap_or(rest),
        "'(' is not closed by ')'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    #[test]
    fn reads_the_bracketed_form() {
        let m = parse(b"(01)09501101020917(17)271231(10)LOT123", today()).unwrap();
        assert_eq!(m.form, Form::Bracketed);
        assert_eq!(m.lot(), Some("LOT123"));
        let m = parse(b" (01) 09501101020917  (10) A\\(B) ", today()).unwrap();
        assert_eq!(m.lot(), Some("A(B)"));
    }

    #[test]
    fn errors() {
        let e = |d: &[u8]| {
            let e = parse(d, today()).unwrap_err();
            (e.kind, e.offset)
        };
        assert_eq!(e(b"(01"), (ErrorKind::InvalidStructure, 0));
        assert_eq!(e(b"(01(17)271231"), (ErrorKind::InvalidStructure, 0));
        assert_eq!(e(b"(23)1234"), (ErrorKind::UnknownAi, 1));
        assert_eq!(e(b"()1234"), (ErrorKind::UnknownAi, 1));
        assert_eq!(e(b"(10)"), (ErrorKind::TooShort, 4));
        assert_eq!(e(b"(10)A B"), (ErrorKind::InvalidCharacter, 5));
        assert_eq!(e(b"(10)A\\(\\B"), (ErrorKind::InvalidCharacter, 7));
        assert_eq!(e(b"x(10)A"), (ErrorKind::InvalidStructure, 0));
        assert_eq!(e(b"(01)09501101020918"), (ErrorKind::CheckDigit, 17));
    }
}
