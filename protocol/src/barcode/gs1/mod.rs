//! GS1 element strings, the bracketed human-readable form and GS1 Digital Link URIs.

use crate::Summary;

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
    pub value: String,
}

/// A decoded, validated GS1 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub form: Form,
    pub elements: Vec<Element>,
    pub warnings: Vec<String>,
}

impl Message {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "gs1",
            ..Summary::default()
        }
    }
}

use crate::{Date, DecodeError, ErrorKind};

/// Decode a GS1 element string (GS = 0x1D between variable-length fields).
pub fn parse_element_string(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    let _ = today;
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        data,
        "placeholder",
    ))
}

/// Decode the bracketed human-readable form `(01)…(10)…`.
pub fn parse_bracketed(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    let _ = today;
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        data,
        "placeholder",
    ))
}

/// Decode a GS1 Digital Link URI.
pub fn parse_digital_link(data: &[u8], today: Date) -> Result<Message, DecodeError> {
    let _ = today;
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        data,
        "placeholder",
    ))
}
