//! The one error type of every decoder: what went wrong, where, and on which value.

use std::fmt;

use serde::Serialize;

/// What kind of problem a decoder found. The names are part of the `tallyman decode` output and
/// of the feedback staff and displays receive, so they are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Nothing to decode (empty input, or only separators).
    Empty,
    /// The input is none of the formats the decoder knows.
    Unrecognized,
    /// A character outside the set the field allows (CSET 82, digits, hex, HIBC's set …).
    InvalidCharacter,
    /// A field or the whole input is shorter than its format requires.
    TooShort,
    /// A field or the whole input is longer than its format allows.
    TooLong,
    /// A GS1 Application Identifier that the GS1 Barcode Syntax Dictionary does not define.
    UnknownAi,
    /// A mod-10 check digit, a mod-43 check character or a GMN check pair does not match.
    CheckDigit,
    /// A date or time that does not exist or is not allowed in that field.
    InvalidDate,
    /// A value that breaks a rule of its field other than charset, length, check or date
    /// (country code, currency, yes/no flag, piece of total …).
    InvalidValue,
    /// The parts are there but not in an allowed arrangement (HIBC grammar, Digital Link path
    /// order, a repeated AI with a different value …).
    InvalidStructure,
    /// A GS1 Digital Link URI that cannot be read (bad percent-encoding, no primary key …).
    InvalidUri,
    /// A recognised but deliberately refused format (HIBC PAS, EU Basic UDI-DI, a non-GS1 EPC
    /// header).
    Unsupported,
    /// An EPC partition value that the scheme does not define (7, or no table row).
    InvalidPartition,
    /// An EPC field whose decoded value does not fit its decimal digit count.
    Overflow,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Empty => "empty",
            ErrorKind::Unrecognized => "unrecognized",
            ErrorKind::InvalidCharacter => "invalid_character",
            ErrorKind::TooShort => "too_short",
            ErrorKind::TooLong => "too_long",
            ErrorKind::UnknownAi => "unknown_ai",
            ErrorKind::CheckDigit => "check_digit",
            ErrorKind::InvalidDate => "invalid_date",
            ErrorKind::InvalidValue => "invalid_value",
            ErrorKind::InvalidStructure => "invalid_structure",
            ErrorKind::InvalidUri => "invalid_uri",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::InvalidPartition => "invalid_partition",
            ErrorKind::Overflow => "overflow",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decoding failure: the kind, the byte offset in the input the decoder was given (after
/// symbology identifier and alias handling, offsets still refer to the original input), the
/// offending value escaped for logs and displays, and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{kind} at offset {offset}: {message} (value \"{value}\")")]
pub struct DecodeError {
    pub kind: ErrorKind,
    pub offset: usize,
    /// The offending bytes, escaped with [`escape`] and bounded to [`MAX_ESCAPED_VALUE`] input
    /// bytes.
    pub value: String,
    pub message: String,
}

/// How many input bytes of an offending value an error repeats.
pub const MAX_ESCAPED_VALUE: usize = 64;

impl DecodeError {
    /// An error about `value` found at `offset`.
    pub fn new(kind: ErrorKind, offset: usize, value: &[u8], message: impl Into<String>) -> Self {
        DecodeError {
            kind,
            offset,
            value: escape(value),
            message: message.into(),
        }
    }

    /// The same error with its offset moved by `by` bytes, for a decoder that was handed a
    /// slice of the original input.
    pub fn shifted(mut self, by: usize) -> Self {
        self.offset = self.offset.saturating_add(by);
        self
    }
}

/// Printable ASCII stays as it is, a backslash doubles, GS becomes `\x1d`, every other byte
/// `\xNN`. At most [`MAX_ESCAPED_VALUE`] bytes are shown; a longer value ends in `…`.
pub fn escape(bytes: &[u8]) -> String {
    escape_bounded(bytes, MAX_ESCAPED_VALUE)
}

/// [`escape`] with another bound on how many input bytes are shown.
pub fn escape_bounded(bytes: &[u8], max: usize) -> String {
    use fmt::Write;
    let shown = bytes.get(..max).unwrap_or(bytes);
    let mut out = String::with_capacity(shown.len() + 8);
    for &b in shown {
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
    if bytes.len() > shown.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_control_and_non_ascii() {
        assert_eq!(escape(b"01\x1d10A\\B"), "01\\x1d10A\\\\B");
        assert_eq!(escape("é".as_bytes()), "\\xc3\\xa9");
        let long = vec![b'A'; 100];
        let e = escape(&long);
        assert!(e.ends_with('…'));
        assert_eq!(e.chars().count(), MAX_ESCAPED_VALUE + 1);
    }
}
