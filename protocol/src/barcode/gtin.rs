//! Plain GTIN-8, GTIN-12, GTIN-13 and GTIN-14 (EAN/UPC/ITF-14).

use crate::Summary;

/// A GTIN with a valid check digit, as its 14-digit form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gtin {
    pub gtin14: String,
}

impl Gtin {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "gtin",
            gtin: Some(self.gtin14.clone()),
            ..Summary::default()
        }
    }
}

use crate::{DecodeError, ErrorKind};

/// Decode a plain GTIN-8/12/13/14 with its check digit.
pub fn parse(data: &[u8]) -> Result<Gtin, DecodeError> {
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        data,
        "placeholder",
    ))
}
