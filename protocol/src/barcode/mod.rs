//! Barcode decoding: from the bytes a scanner sends to a typed [`Scan`].
//!
//! Classification order (barcodes.md §0): an AIM symbology identifier, when present, decides;
//! otherwise HIBC (`+`, `*+`), ISBT 128 (`=`, `&`), GS1 Digital Link (`http://`, `https://`),
//! the bracketed GS1 form (`(`), a plain GTIN (8, 12, 13 or 14 digits), else a GS1 element
//! string.

pub mod check;
pub mod gs1;
pub mod gtin;
pub mod hibc;
pub mod isbt;
pub mod symbology;

use crate::{Date, DecodeError, ErrorKind, Summary};

/// Longest scan the decoders look at. Longer inputs are refused before any parsing.
pub const MAX_SCAN_LEN: usize = 4096;

/// What the decoders need to know besides the scan itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Strings a scanner sends in place of GS (0x1D), such as `<GS>`.
    pub gs_aliases: Vec<Vec<u8>>,
    /// Today's date, for the GS1 two-digit-year century window.
    pub today: Date,
}

/// A decoded barcode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// The AIM symbology identifier the scanner sent, if any.
    pub symbology: Option<symbology::SymbologyId>,
    pub content: Content,
}

/// What a barcode carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Gs1(gs1::Message),
    Gtin(gtin::Gtin),
    Hibc(hibc::Hibc),
    Isbt128(isbt::Isbt128),
}

impl Scan {
    /// The flat JSON view of PRODUCT §7.
    pub fn summary(&self) -> Summary {
        let mut s = match &self.content {
            Content::Gs1(m) => m.summary(),
            Content::Gtin(g) => g.summary(),
            Content::Hibc(h) => h.summary(),
            Content::Isbt128(i) => i.summary(),
        };
        s.symbology = self.symbology.as_ref().map(|s| s.to_string());
        s
    }
}

/// Decode one scan.
pub fn decode(input: &[u8], opts: &DecodeOptions) -> Result<Scan, DecodeError> {
    if input.len() > MAX_SCAN_LEN {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            MAX_SCAN_LEN,
            &input[..0],
            format!(
                "a scan is at most {MAX_SCAN_LEN} bytes, this one has {}",
                input.len()
            ),
        ));
    }
    let _ = opts;
    Err(DecodeError::new(
        ErrorKind::Unrecognized,
        0,
        input,
        "placeholder",
    ))
}
