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
            b"",
            format!(
                "a scan is at most {MAX_SCAN_LEN} bytes, this one has {}",
                input.len()
            ),
        ));
    }
    let (symbology, start) = symbology::split(input)?;
    let data = input.get(start..).unwrap_or_default();
    let content = classify(data, symbology.as_ref(), opts).map_err(|e| e.shifted(start))?;
    Ok(Scan { symbology, content })
}

fn classify(
    data: &[u8],
    symbology: Option<&symbology::SymbologyId>,
    opts: &DecodeOptions,
) -> Result<Content, DecodeError> {
    use symbology::Carrier;
    if data.iter().all(|&b| b == GS) {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            0,
            data,
            "nothing to decode",
        ));
    }
    let carrier = symbology.map_or(Carrier::Other, |s| s.carrier());
    match carrier {
        Carrier::Gs1 => return element_string(data, opts),
        Carrier::EanUpc => return gtin::parse(data).map(Content::Gtin),
        Carrier::Isbt128 => {
            return Ok(Content::Isbt128(isbt::detect(data).unwrap_or_else(|| {
                isbt::Isbt128 {
                    raw: String::from_utf8_lossy(data).into_owned(),
                }
            })));
        }
        Carrier::Other => {}
    }
    if data.starts_with(b"+") || data.starts_with(b"*+") {
        return hibc::parse(data).map(Content::Hibc);
    }
    if let Some(isbt) = isbt::detect(data) {
        return Ok(Content::Isbt128(isbt));
    }
    let lower = data.get(..8).unwrap_or(data).to_ascii_lowercase();
    if lower.starts_with(b"http://") || lower.starts_with(b"https://") {
        return gs1::parse_digital_link(data, opts.today).map(Content::Gs1);
    }
    if data.starts_with(b"(") {
        return gs1::parse_bracketed(data, opts.today).map(Content::Gs1);
    }
    if matches!(data.len(), 8 | 12 | 13 | 14) && data.iter().all(u8::is_ascii_digit) {
        return gtin::parse(data).map(Content::Gtin);
    }
    element_string(data, opts)
}

/// The ASCII group separator that stands for FNC1 between GS1 element strings.
pub const GS: u8 = 0x1d;

/// A GS1 element string, with the scanner's GS substitutes turned back into GS first. Error
/// offsets are mapped back to the scanner's bytes.
fn element_string(data: &[u8], opts: &DecodeOptions) -> Result<Content, DecodeError> {
    if opts
        .gs_aliases
        .iter()
        .all(|a| a.is_empty() || !contains(data, a))
    {
        return gs1::parse_element_string(data, opts.today).map(Content::Gs1);
    }
    // positions[i] = offset in `data` of byte i of the normalised string.
    let mut normal = Vec::with_capacity(data.len());
    let mut positions = Vec::with_capacity(data.len() + 1);
    let mut i = 0;
    while i < data.len() {
        let rest = data.get(i..).unwrap_or_default();
        if let Some(a) = opts
            .gs_aliases
            .iter()
            .find(|a| !a.is_empty() && rest.starts_with(a))
        {
            normal.push(GS);
            positions.push(i);
            i += a.len();
        } else {
            normal.push(rest.first().copied().unwrap_or(GS));
            positions.push(i);
            i += 1;
        }
    }
    positions.push(data.len());
    gs1::parse_element_string(&normal, opts.today)
        .map(Content::Gs1)
        .map_err(|mut e| {
            e.offset = positions.get(e.offset).copied().unwrap_or(data.len());
            e
        })
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn opts() -> DecodeOptions {
        DecodeOptions {
            gs_aliases: vec![b"<GS>".to_vec(), b"~".to_vec()],
            today: Date::new(2026, 11, 24).unwrap(),
        }
    }

    #[test]
    fn aliases_map_back_to_the_scanners_bytes() {
        let e = decode(b"]d20109501101020917<GS>10AB#", &opts()).unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidCharacter, 27));
        let scan = decode(b"0109501101020917~10AB<GS>21S1", &opts()).unwrap();
        assert_eq!(scan.summary().serial.as_deref(), Some("S1"));
    }

    #[test]
    fn refuses_over_long_scans_before_parsing() {
        let long = vec![b'1'; MAX_SCAN_LEN + 1];
        assert_eq!(decode(&long, &opts()).unwrap_err().kind, ErrorKind::TooLong);
    }

    fn scan_like() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            Just(b"]d2".to_vec()),
            Just(b"]C1".to_vec()),
            Just(b"]E0".to_vec()),
            Just(b"0109501101020917".to_vec()),
            Just(b"17271200".to_vec()),
            Just(b"10".to_vec()),
            Just(b"<GS>".to_vec()),
            Just(b"~".to_vec()),
            Just(vec![GS]),
            Just(b"(".to_vec()),
            Just(b")".to_vec()),
            Just(b"+".to_vec()),
            Just(b"https://x/01/".to_vec()),
            proptest::collection::vec(any::<u8>(), 0..6),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        /// Any input decodes or fails with an offset inside the input.
        #[test]
        fn never_panics_and_offsets_stay_in_the_input(input in scan_like()) {
            if let Err(e) = decode(&input, &opts()) {
                prop_assert!(e.offset <= input.len(), "{e} for {input:?}");
            }
        }

        #[test]
        fn arbitrary_bytes(input in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Err(e) = decode(&input, &opts()) {
                prop_assert!(e.offset <= input.len(), "{e} for {input:?}");
            }
        }
    }
}
