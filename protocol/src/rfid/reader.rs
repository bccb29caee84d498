//! Reader output lines (barcodes.md §4.5): bare hex, spaced words, `0x`, lower case, Alien text.

use crate::{DecodeError, ErrorKind};

/// One tag read as the reader reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRead {
    /// The EPC as upper-case hex without separators.
    pub epc_hex: String,
    pub antenna: Option<u16>,
}

/// Find the EPC in one reader line.
pub fn parse_line(line: &[u8]) -> Result<TagRead, DecodeError> {
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        line,
        "placeholder",
    ))
}
