//! HIBC LIC (ANSI/HIBC 2.x supplier labeling): primary, secondary and concatenated symbols.

use crate::{DecodeError, ErrorKind, Summary};

/// A decoded HIBC symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hibc {
    pub lic: Option<String>,
    pub pcn: Option<String>,
    pub unit: Option<u8>,
}

impl Hibc {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "hibc",
            ..Summary::default()
        }
    }
}

/// Decode an HIBC symbol (starting with `+`, or `*+` with Code 39 asterisks).
pub fn parse(data: &[u8]) -> Result<Hibc, DecodeError> {
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        data,
        "placeholder",
    ))
}
