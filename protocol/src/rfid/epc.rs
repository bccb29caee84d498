//! EPC Tag Data Standard binary encodings: SGTIN-96/198, SSCC-96, SGLN-96, GRAI-96, GIAI-96.

use crate::{DecodeError, ErrorKind, Summary};

/// A decoded EPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epc {
    pub hex: String,
}

impl Epc {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "epc",
            hex: Some(self.hex.clone()),
            ..Summary::default()
        }
    }
}

/// Decode an EPC from upper-case hex without separators.
pub fn decode_hex(hex: &str) -> Result<Epc, DecodeError> {
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        hex.as_bytes(),
        "placeholder",
    ))
}
