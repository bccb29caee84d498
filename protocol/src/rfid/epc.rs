//! EPC Tag Data Standard binary encodings: SGTIN-96/198, SSCC-96, SGLN-96, GRAI-96, GIAI-96.
//!
//! ```text
//! header 8 | filter 3 | partition 3 | company prefix M | reference N | rest of the scheme
//! ```
//!
//! The header (first byte) names the scheme and so its length; the partition value picks the
//! split between the GS1 company prefix and the reference from the scheme's partition table
//! (partition 7 is undefined). Decoding follows the TDS decoding procedure:
//!
//! * Each decimal field must fit its digit count (company prefix `< 10^L`, reference
//!   `< 10^(digits)`, so the single bit of a 0-digit SGLN location reference must be 0), else
//!   the EPC is refused (`overflow`).
//!   The fields are zero-padded to their digit count, except GIAI-96's individual asset
//!   reference, which is an unpadded integer.
//! * SGTIN-96 and GRAI-96 serials and the SGLN-96 extension are integers printed without
//!   leading zeros; an SGLN extension of 0 means "no extension" (the URI keeps `.0`).
//! * The SGTIN-198 serial is up to twenty 7-bit characters ended by a zero character; every
//!   character must be in the GS1 serial character set (CSET 82), the serial must not be empty
//!   and every bit after the terminating zero must be zero. In URIs the characters
//!   `" % & / < > ?` are written `%22 %25 %26 %2F %3C %3E %3F`.
//! * The hex must hold at least the scheme's bits. More is accepted: readers report the whole
//!   EPC memory (a 96-bit EPC in a 128-bit bank, SGTIN-198 padded to 208 bits = 52 hex digits,
//!   or 200 bits = 50 digits). Bits after the encoding are ignored, as the TDS decoding
//!   procedure takes only the header's bit count; when they are not zero the EPC gets a
//!   warning. SSCC-96's 24 reserved bits are treated the same way.
//! * Headers of other schemes (GID-96, GSRN-96 …), TDS 2.0 "+" schemes, non-GS1 data and
//!   unprogrammed tags are refused as `unsupported`, naming the header, so that the caller can
//!   pass the read through raw.

use std::fmt::Write as _;

use crate::barcode::check::gs1_mod10;
use crate::{DecodeError, ErrorKind, Summary};

/// Most hex digits taken: the 496 bits of the largest Gen2 EPC memory bank.
pub const MAX_EPC_HEX: usize = 124;

/// The EPC binary encodings this decoder reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Sgtin96,
    Sgtin198,
    Sscc96,
    Sgln96,
    Grai96,
    Giai96,
}

/// One row of a partition table: bits and decimal digits of the company prefix and of the
/// field after it.
#[derive(Debug, Clone, Copy)]
struct Partition {
    cp_bits: usize,
    cp_digits: usize,
    ref_bits: usize,
    ref_digits: usize,
}

const fn p(cp_bits: usize, cp_digits: usize, ref_bits: usize, ref_digits: usize) -> Partition {
    Partition {
        cp_bits,
        cp_digits,
        ref_bits,
        ref_digits,
    }
}

/// SGTIN: item reference including the indicator digit (13 − L digits).
const SGTIN: [Partition; 7] = [
    p(40, 12, 4, 1),
    p(37, 11, 7, 2),
    p(34, 10, 10, 3),
    p(30, 9, 14, 4),
    p(27, 8, 17, 5),
    p(24, 7, 20, 6),
    p(20, 6, 24, 7),
];

/// SSCC: serial reference including the extension digit (17 − L digits).
const SSCC: [Partition; 7] = [
    p(40, 12, 18, 5),
    p(37, 11, 21, 6),
    p(34, 10, 24, 7),
    p(30, 9, 28, 8),
    p(27, 8, 31, 9),
    p(24, 7, 34, 10),
    p(20, 6, 38, 11),
];

/// SGLN: location reference (12 − L digits).
const SGLN: [Partition; 7] = [
    p(40, 12, 1, 0),
    p(37, 11, 4, 1),
    p(34, 10, 7, 2),
    p(30, 9, 11, 3),
    p(27, 8, 14, 4),
    p(24, 7, 17, 5),
    p(20, 6, 21, 6),
];

/// GRAI: asset type (12 − L digits).
const GRAI: [Partition; 7] = [
    p(40, 12, 4, 0),
    p(37, 11, 7, 1),
    p(34, 10, 10, 2),
    p(30, 9, 14, 3),
    p(27, 8, 17, 4),
    p(24, 7, 20, 5),
    p(20, 6, 24, 6),
];

/// GIAI-96, the unpadded partition table: the individual asset reference is an integer of
/// 82 − M bits and at most 25 − L digits.
const GIAI: [Partition; 7] = [
    p(40, 12, 42, 13),
    p(37, 11, 45, 14),
    p(34, 10, 48, 15),
    p(30, 9, 52, 16),
    p(27, 8, 55, 17),
    p(24, 7, 58, 18),
    p(20, 6, 62, 19),
];

impl Scheme {
    /// The scheme of an EPC header byte.
    pub fn from_header(header: u8) -> Option<Scheme> {
        Some(match header {
            0x30 => Scheme::Sgtin96,
            0x36 => Scheme::Sgtin198,
            0x31 => Scheme::Sscc96,
            0x32 => Scheme::Sgln96,
            0x33 => Scheme::Grai96,
            0x34 => Scheme::Giai96,
            _ => return None,
        })
    }

    pub fn header(self) -> u8 {
        match self {
            Scheme::Sgtin96 => 0x30,
            Scheme::Sgtin198 => 0x36,
            Scheme::Sscc96 => 0x31,
            Scheme::Sgln96 => 0x32,
            Scheme::Grai96 => 0x33,
            Scheme::Giai96 => 0x34,
        }
    }

    /// The encoding's length in bits.
    pub fn bits(self) -> usize {
        match self {
            Scheme::Sgtin198 => 198,
            _ => 96,
        }
    }

    /// The TDS name, as in tag URIs (`sgtin-96`).
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Sgtin96 => "sgtin-96",
            Scheme::Sgtin198 => "sgtin-198",
            Scheme::Sscc96 => "sscc-96",
            Scheme::Sgln96 => "sgln-96",
            Scheme::Grai96 => "grai-96",
            Scheme::Giai96 => "giai-96",
        }
    }

    /// The pure-identity URI's scheme name (`sgtin`).
    fn identity(self) -> &'static str {
        match self {
            Scheme::Sgtin96 | Scheme::Sgtin198 => "sgtin",
            Scheme::Sscc96 => "sscc",
            Scheme::Sgln96 => "sgln",
            Scheme::Grai96 => "grai",
            Scheme::Giai96 => "giai",
        }
    }

    fn partitions(self) -> &'static [Partition; 7] {
        match self {
            Scheme::Sgtin96 | Scheme::Sgtin198 => &SGTIN,
            Scheme::Sscc96 => &SSCC,
            Scheme::Sgln96 => &SGLN,
            Scheme::Grai96 => &GRAI,
            Scheme::Giai96 => &GIAI,
        }
    }

    /// What the field after the company prefix is called.
    fn reference_name(self) -> &'static str {
        match self {
            Scheme::Sgtin96 | Scheme::Sgtin198 => "item reference",
            Scheme::Sscc96 => "serial reference",
            Scheme::Sgln96 => "location reference",
            Scheme::Grai96 => "asset type",
            Scheme::Giai96 => "individual asset reference",
        }
    }
}

/// Names of the EPC headers that exist but are not decoded here.
fn other_header(header: u8) -> Option<&'static str> {
    Some(match header {
        0x00 => "an unprogrammed tag",
        0x2C => "GDTI-96",
        0x2D => "GSRN-96",
        0x2E => "GSRNP-96",
        0x2F => "USDoD-96",
        0x35 => "GID-96",
        0x37 => "GRAI-170",
        0x38 => "GIAI-202",
        0x39 => "SGLN-195",
        0x3A => "GDTI-113",
        0x3B => "ADI-var",
        0x3C => "CPI-96",
        0x3D => "CPI-var",
        0x3E => "GDTI-174",
        0x3F => "SGCN-96",
        0x40 => "ITIP-110",
        0x41 => "ITIP-212",
        0xF7 => "SGTIN+",
        0xFB => "DSGTIN+",
        _ => return None,
    })
}

/// A decoded EPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epc {
    pub scheme: Scheme,
    /// The EPC as given, upper-case hex (including any bits after the encoding).
    pub hex: String,
    pub filter: u8,
    pub partition: u8,
    /// The GS1 company prefix, zero-padded to its digit count.
    pub company_prefix: String,
    /// The field after the company prefix: item reference with indicator (SGTIN), serial
    /// reference with extension digit (SSCC), location reference (SGLN), asset type (GRAI),
    /// individual asset reference (GIAI). Zero-padded except for GIAI.
    pub reference: String,
    /// SGTIN and GRAI serial, unescaped.
    pub serial: Option<String>,
    /// SGLN extension (GS1 AI 254); `None` when the tag says 0, "no extension".
    pub extension: Option<String>,
    /// GTIN-14 of an SGTIN.
    pub gtin: Option<String>,
    /// SSCC-18 of an SSCC.
    pub sscc: Option<String>,
    /// GLN-13 of an SGLN.
    pub gln: Option<String>,
    /// GRAI of a GRAI-96: `0`, company prefix, asset type, check digit, serial (GS1 AI 8003).
    pub grai: Option<String>,
    /// GIAI of a GIAI-96: company prefix and asset reference (GS1 AI 8004).
    pub giai: Option<String>,
    /// `urn:epc:id:…`
    pub pure_identity: String,
    /// `urn:epc:tag:…` (with the filter value).
    pub tag_uri: String,
    /// Oddities that did not prevent decoding (non-zero bits after the encoding).
    pub warnings: Vec<String>,
}

impl Epc {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "epc",
            scheme: Some(self.scheme.name()),
            filter: Some(self.filter),
            partition: Some(self.partition),
            company_prefix: Some(self.company_prefix.clone()),
            pure_identity: Some(self.pure_identity.clone()),
            tag_uri: Some(self.tag_uri.clone()),
            hex: Some(self.hex.clone()),
            gtin: self.gtin.clone(),
            sscc: self.sscc.clone(),
            gln: self.gln.clone(),
            serial: self.serial.clone(),
            warnings: self.warnings.clone(),
            ..Summary::default()
        }
    }
}

/// The bits of the hex, most significant first.
struct Bits<'a> {
    nibbles: Vec<u8>,
    hex: &'a str,
}

impl Bits<'_> {
    fn len(&self) -> usize {
        self.nibbles.len() * 4
    }

    fn bit(&self, i: usize) -> u128 {
        self.nibbles
            .get(i / 4)
            .map_or(0, |n| u128::from((n >> (3 - i % 4)) & 1))
    }

    /// `len` (at most 128) bits from `start` as an unsigned number.
    fn get(&self, start: usize, len: usize) -> u128 {
        (start..start + len.min(128)).fold(0, |v, i| (v << 1) | self.bit(i))
    }

    /// Whether any bit in `start..end` is set.
    fn any(&self, start: usize, end: usize) -> bool {
        (start..end).any(|i| self.bit(i) == 1)
    }

    /// Hex-digit offset and the hex digits covering bits `start..start + len`.
    fn span(&self, start: usize, len: usize) -> (usize, &[u8]) {
        let from = start / 4;
        let to = (start + len.max(1)).div_ceil(4);
        let b = self.hex.as_bytes();
        (from, b.get(from..to.min(b.len())).unwrap_or_default())
    }
}

fn pow10(digits: usize) -> u128 {
    10u128
        .checked_pow(u32::try_from(digits).unwrap_or(u32::MAX))
        .unwrap_or(u128::MAX)
}

/// The TDS characters escaped in URIs, with their escapes.
fn uri_escape(c: u8) -> Option<&'static str> {
    Some(match c {
        b'"' => "%22",
        b'%' => "%25",
        b'&' => "%26",
        b'/' => "%2F",
        b'<' => "%3C",
        b'>' => "%3E",
        b'?' => "%3F",
        _ => return None,
    })
}

/// GS1 AI encodable character set 82 (the character set of serial numbers).
pub fn is_cset82(c: u8) -> bool {
    matches!(c, b'!' | b'"' | b'%'..=b'?' | b'A'..=b'Z' | b'_' | b'a'..=b'z')
}

/// A serial written for a URI.
fn escaped(serial: &str) -> String {
    let mut out = String::with_capacity(serial.len());
    for b in serial.bytes() {
        match uri_escape(b) {
            Some(e) => out.push_str(e),
            None => out.push(char::from(b)),
        }
    }
    out
}

/// A GS1 key's digits followed by their mod-10 check digit.
fn with_check(body: &str) -> Option<String> {
    let c = gs1_mod10(body.as_bytes())?;
    Some(format!("{body}{}", char::from(c)))
}

/// Decode an EPC from hex without separators (upper or lower case). Any digit count from the
/// scheme's length up to [`MAX_EPC_HEX`] is read; whole bytes are the reader layer's concern.
pub fn decode_hex(hex: &str) -> Result<Epc, DecodeError> {
    let raw = hex.as_bytes();
    if raw.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            0,
            raw,
            "no EPC hex digits",
        ));
    }
    if raw.len() > MAX_EPC_HEX {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            MAX_EPC_HEX,
            b"",
            format!(
                "an EPC has at most {MAX_EPC_HEX} hex digits (496 bits), this one has {}",
                raw.len()
            ),
        ));
    }
    let mut nibbles = Vec::with_capacity(raw.len());
    for (i, &c) in raw.iter().enumerate() {
        let Some(n) = char::from(c).to_digit(16) else {
            return Err(DecodeError::new(
                ErrorKind::InvalidCharacter,
                i,
                &[c],
                "an EPC is written in hex digits 0-9, A-F",
            ));
        };
        nibbles.push(u8::try_from(n).unwrap_or(0));
    }
    let upper = hex.to_ascii_uppercase();
    let bits = Bits {
        nibbles,
        hex: &upper,
    };
    if bits.len() < 8 {
        return Err(DecodeError::new(
            ErrorKind::TooShort,
            raw.len(),
            raw,
            "an EPC has at least a two-digit header",
        ));
    }
    let header = u8::try_from(bits.get(0, 8)).unwrap_or(0);
    let Some(scheme) = Scheme::from_header(header) else {
        let what = match other_header(header) {
            Some(name) => format!("EPC header {header:02X} is {name}, which is not decoded"),
            None => format!("EPC header {header:02X} is not a GS1 EPC scheme"),
        };
        return Err(DecodeError::new(
            ErrorKind::Unsupported,
            0,
            bits.span(0, 8).1,
            what,
        ));
    };
    if bits.len() < scheme.bits() {
        return Err(DecodeError::new(
            ErrorKind::TooShort,
            raw.len(),
            upper.as_bytes(),
            format!(
                "an {} EPC has {} bits ({} hex digits), this one has {}",
                scheme.name().to_ascii_uppercase(),
                scheme.bits(),
                scheme.bits().div_ceil(4),
                bits.len()
            ),
        ));
    }
    decode_bits(scheme, &bits)
}

fn decode_bits(scheme: Scheme, bits: &Bits<'_>) -> Result<Epc, DecodeError> {
    let filter = u8::try_from(bits.get(8, 3)).unwrap_or(0);
    let partition = u8::try_from(bits.get(11, 3)).unwrap_or(7);
    let Some(part) = scheme.partitions().get(usize::from(partition)).copied() else {
        let (at, value) = bits.span(11, 3);
        return Err(DecodeError::new(
            ErrorKind::InvalidPartition,
            at,
            value,
            format!("EPC partition {partition} is not defined (0-6)"),
        ));
    };
    let overflow = |start: usize, len: usize, what: &str, v: u128, digits: usize| {
        let (at, value) = bits.span(start, len);
        DecodeError::new(
            ErrorKind::Overflow,
            at,
            value,
            format!("the EPC {what} {v} does not fit its {digits} digits (partition {partition})"),
        )
    };
    let cp_start = 14;
    let cp = bits.get(cp_start, part.cp_bits);
    if cp >= pow10(part.cp_digits) {
        return Err(overflow(
            cp_start,
            part.cp_bits,
            "company prefix",
            cp,
            part.cp_digits,
        ));
    }
    let ref_start = cp_start + part.cp_bits;
    let r = bits.get(ref_start, part.ref_bits);
    if r >= pow10(part.ref_digits) {
        return Err(overflow(
            ref_start,
            part.ref_bits,
            scheme.reference_name(),
            r,
            part.ref_digits,
        ));
    }
    let company_prefix = format!("{cp:0w$}", w = part.cp_digits);
    let reference = match (scheme, part.ref_digits) {
        (Scheme::Giai96, _) => r.to_string(),
        (_, 0) => String::new(),
        (_, w) => format!("{r:0w$}"),
    };
    let rest = ref_start + part.ref_bits;
    let mut warnings = Vec::new();
    let mut epc = Epc {
        scheme,
        hex: bits.hex.to_string(),
        filter,
        partition,
        company_prefix,
        reference,
        serial: None,
        extension: None,
        gtin: None,
        sscc: None,
        gln: None,
        grai: None,
        giai: None,
        pure_identity: String::new(),
        tag_uri: String::new(),
        warnings: Vec::new(),
    };
    let cp = &epc.company_prefix;
    let reference = &epc.reference;
    // The last URI component (serial, extension) when there is one.
    let last: Option<String> = match scheme {
        Scheme::Sgtin96 | Scheme::Grai96 => {
            let serial = bits.get(rest, 38).to_string();
            epc.serial = Some(serial.clone());
            Some(serial)
        }
        Scheme::Sgtin198 => {
            let serial = string_serial(bits, rest)?;
            let e = escaped(&serial);
            epc.serial = Some(serial);
            Some(e)
        }
        Scheme::Sgln96 => {
            let ext = bits.get(rest, 41);
            if ext != 0 {
                epc.extension = Some(ext.to_string());
            }
            Some(ext.to_string())
        }
        Scheme::Sscc96 => {
            if bits.any(rest, 96) {
                warnings.push("the 24 reserved bits of this SSCC-96 are not zero".to_string());
            }
            None
        }
        Scheme::Giai96 => None,
    };
    match scheme {
        Scheme::Sgtin96 | Scheme::Sgtin198 => {
            let (indicator, item) = reference.split_at(1.min(reference.len()));
            epc.gtin = with_check(&format!("{indicator}{cp}{item}"));
        }
        Scheme::Sscc96 => {
            let (ext, serial) = reference.split_at(1.min(reference.len()));
            epc.sscc = with_check(&format!("{ext}{cp}{serial}"));
        }
        Scheme::Sgln96 => epc.gln = with_check(&format!("{cp}{reference}")),
        Scheme::Grai96 => {
            epc.grai = with_check(&format!("0{cp}{reference}"))
                .map(|k| format!("{k}{}", epc.serial.as_deref().unwrap_or_default()));
        }
        Scheme::Giai96 => epc.giai = Some(format!("{cp}{reference}")),
    }
    let mut body = format!("{cp}.{reference}");
    if let Some(last) = &last {
        body.push('.');
        body.push_str(last);
    }
    epc.pure_identity = format!("urn:epc:id:{}:{body}", scheme.identity());
    epc.tag_uri = format!("urn:epc:tag:{}:{filter}.{body}", scheme.name());
    if bits.any(scheme.bits(), bits.len()) {
        let extra = bits.len() - scheme.bits();
        warnings.push(format!(
            "{extra} bits after the {}-bit {} encoding are not zero and were ignored",
            scheme.bits(),
            scheme.name().to_ascii_uppercase()
        ));
    }
    epc.warnings = warnings;
    Ok(epc)
}

/// SGTIN-198's serial: twenty 7-bit characters from `start`, ended by a zero character.
fn string_serial(bits: &Bits<'_>, start: usize) -> Result<String, DecodeError> {
    let mut serial = String::new();
    let mut ended = false;
    for k in 0..20 {
        let at = start + 7 * k;
        let c = u8::try_from(bits.get(at, 7)).unwrap_or(0);
        if c == 0 {
            ended = true;
            continue;
        }
        let (offset, value) = bits.span(at, 7);
        if ended {
            return Err(DecodeError::new(
                ErrorKind::InvalidValue,
                offset,
                value,
                "the SGTIN-198 serial has data after its terminating zero character",
            ));
        }
        if !is_cset82(c) {
            let mut msg = String::new();
            let _ = write!(
                msg,
                "character 0x{c:02X} is not allowed in a GS1 serial number (CSET 82)"
            );
            return Err(DecodeError::new(
                ErrorKind::InvalidCharacter,
                offset,
                value,
                msg,
            ));
        }
        serial.push(char::from(c));
    }
    if serial.is_empty() {
        let (offset, value) = bits.span(start, 7);
        return Err(DecodeError::new(
            ErrorKind::InvalidValue,
            offset,
            value,
            "the SGTIN-198 serial is empty",
        ));
    }
    Ok(serial)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Write fields (value, bits) MSB first and pad to `total` bits; return upper-case hex.
    fn encode(fields: &[(u128, usize)], total: usize) -> String {
        let mut bits = Vec::new();
        for &(v, n) in fields {
            for i in (0..n).rev() {
                bits.push(((v >> i) & 1) as u8);
            }
        }
        assert!(bits.len() <= total);
        bits.resize(total.div_ceil(4) * 4, 0);
        bits.chunks(4)
            .map(|c| {
                let n = c.iter().fold(0u32, |a, &b| (a << 1) | u32::from(b));
                char::from_digit(n, 16).unwrap().to_ascii_uppercase()
            })
            .collect()
    }

    fn sgtin96(filter: u128, part: usize, cp: u128, item: u128, serial: u128) -> String {
        let p = SGTIN[part];
        encode(
            &[
                (0x30, 8),
                (filter, 3),
                (part as u128, 3),
                (cp, p.cp_bits),
                (item, p.ref_bits),
                (serial, 38),
            ],
            96,
        )
    }

    fn chars7(s: &str) -> Vec<(u128, usize)> {
        s.bytes().map(|b| (u128::from(b), 7)).collect()
    }

    #[test]
    fn tds_worked_example() {
        assert_eq!(
            sgtin96(3, 5, 614141, 812345, 6789),
            "3074257BF7194E4000001A85"
        );
        let e = decode_hex("3074257BF7194E4000001A85").unwrap();
        assert_eq!(e.scheme, Scheme::Sgtin96);
        assert_eq!((e.filter, e.partition), (3, 5));
        assert_eq!(e.company_prefix, "0614141");
        assert_eq!(e.reference, "812345");
        assert_eq!(e.serial.as_deref(), Some("6789"));
        assert_eq!(e.gtin.as_deref(), Some("80614141123458"));
        assert_eq!(e.pure_identity, "urn:epc:id:sgtin:0614141.812345.6789");
        assert_eq!(e.tag_uri, "urn:epc:tag:sgtin-96:3.0614141.812345.6789");
        assert!(e.warnings.is_empty());
        // Lower case and a 128-bit memory bank with zero padding.
        let e = decode_hex("3074257bf7194e4000001a8500000000").unwrap();
        assert_eq!(e.serial.as_deref(), Some("6789"));
        assert_eq!(e.hex, "3074257BF7194E4000001A8500000000");
        assert!(e.warnings.is_empty());
        let e = decode_hex("3074257BF7194E4000001A85AAF9").unwrap();
        assert_eq!(e.warnings.len(), 1, "{:?}", e.warnings);
    }

    #[test]
    fn every_sgtin_partition_round_trips() {
        for (part, p) in SGTIN.iter().enumerate() {
            let cp = pow10(p.cp_digits) - 1;
            let item = pow10(p.ref_digits) - 1;
            let hex = sgtin96(1, part, cp, item, (1 << 38) - 1);
            let e = decode_hex(&hex).unwrap();
            assert_eq!(e.company_prefix.len(), p.cp_digits);
            assert_eq!(e.reference.len(), p.ref_digits);
            assert_eq!(e.serial.as_deref(), Some("274877906943"));
            assert_eq!(e.gtin.as_ref().map(String::len), Some(14));
            // One more than fits: overflow.
            let e = decode_hex(&sgtin96(1, part, cp + 1, 0, 0)).unwrap_err();
            assert_eq!((e.kind, e.offset), (ErrorKind::Overflow, 3));
            let e = decode_hex(&sgtin96(1, part, 0, item + 1, 0)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Overflow, "{part}");
        }
    }

    #[test]
    fn sgtin198_serial() {
        let p = SGTIN[5];
        let mut f = vec![
            (0x36, 8),
            (3, 3),
            (5, 3),
            (614141, p.cp_bits),
            (812345, p.ref_bits),
        ];
        f.extend(chars7("A/B%1"));
        let hex = encode(&f, 208);
        assert_eq!(hex.len(), 52);
        let e = decode_hex(&hex).unwrap();
        assert_eq!(e.serial.as_deref(), Some("A/B%1"));
        assert_eq!(e.pure_identity, "urn:epc:id:sgtin:0614141.812345.A%2FB%251");
        assert_eq!(
            e.tag_uri,
            "urn:epc:tag:sgtin-198:3.0614141.812345.A%2FB%251"
        );
        // 50 digits (200 bits) is enough.
        assert!(decode_hex(&hex[..50]).is_ok());
        assert_eq!(
            decode_hex(&hex[..49]).unwrap_err().kind,
            ErrorKind::TooShort
        );
        // '#' is not CSET 82.
        let mut g = f.clone();
        g.push((u128::from(b'#'), 7));
        let e = decode_hex(&encode(&g, 208)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidCharacter);
        // Data after the terminator.
        let mut g = f.clone();
        g.push((0, 7));
        g.push((u128::from(b'X'), 7));
        let e = decode_hex(&encode(&g, 208)).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidValue);
    }

    #[test]
    fn other_schemes() {
        // SSCC-96, partition 5: CP 0614141, serial reference 1234567890.
        let p = SSCC[5];
        let hex = encode(
            &[
                (0x31, 8),
                (0, 3),
                (5, 3),
                (614141, p.cp_bits),
                (1234567890, p.ref_bits),
            ],
            96,
        );
        let e = decode_hex(&hex).unwrap();
        assert_eq!(e.pure_identity, "urn:epc:id:sscc:0614141.1234567890");
        // 1 0614141 234567890 + check: SSCC 106141412345678908.
        assert_eq!(e.sscc.as_deref(), Some("106141412345678908"));
        assert!(crate::barcode::check::gs1_mod10_ok(b"106141412345678908"));

        let p = SGLN[5];
        let hex = encode(
            &[
                (0x32, 8),
                (1, 3),
                (5, 3),
                (614141, p.cp_bits),
                (12345, p.ref_bits),
                (400, 41),
            ],
            96,
        );
        let e = decode_hex(&hex).unwrap();
        assert_eq!(e.pure_identity, "urn:epc:id:sgln:0614141.12345.400");
        assert_eq!(e.gln.as_deref(), Some("0614141123452"));
        assert_eq!(e.extension.as_deref(), Some("400"));

        let p = GRAI[5];
        let hex = encode(
            &[
                (0x33, 8),
                (0, 3),
                (5, 3),
                (614141, p.cp_bits),
                (12345, p.ref_bits),
                (5678, 38),
            ],
            96,
        );
        let e = decode_hex(&hex).unwrap();
        assert_eq!(e.pure_identity, "urn:epc:id:grai:0614141.12345.5678");
        assert_eq!(e.grai.as_deref(), Some("006141411234525678"));

        let p = GIAI[5];
        let hex = encode(
            &[
                (0x34, 8),
                (0, 3),
                (5, 3),
                (614141, p.cp_bits),
                (12345678, p.ref_bits),
            ],
            96,
        );
        let e = decode_hex(&hex).unwrap();
        assert_eq!(e.pure_identity, "urn:epc:id:giai:0614141.12345678");
        assert_eq!(e.giai.as_deref(), Some("061414112345678"));
    }

    #[test]
    fn refusals() {
        let e = decode_hex("E2801160600002054CC2096F").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::Unsupported, 0));
        assert!(e.message.contains("E2"));
        let e = decode_hex("000000000000000000000000").unwrap_err();
        assert!(e.message.contains("unprogrammed"));
        let e = decode_hex("307C257BF7194E4000001A85").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidPartition, 2));
        let e = decode_hex("3074257BF7194E4000001A8").unwrap_err();
        assert_eq!(e.kind, ErrorKind::TooShort);
        let e = decode_hex("3074257BF7194E4000001A8G").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidCharacter, 23));
    }

    proptest! {
        #[test]
        fn never_panics_on_text(s in ".{0,140}") {
            let _ = decode_hex(&s);
        }

        #[test]
        fn never_panics_on_hex(s in "(30|31|32|33|34|36)[0-9A-Fa-f]{0,120}") {
            if let Ok(e) = decode_hex(&s) {
                prop_assert!(e.pure_identity.starts_with("urn:epc:id:"));
            }
        }

        #[test]
        fn sgtin96_round_trips(
            filter in 0u128..8, part in 0usize..7, cp in any::<u64>(), item in any::<u32>(),
            serial in 0u128..(1 << 38),
        ) {
            let p = SGTIN[part];
            let cp = u128::from(cp) % pow10(p.cp_digits);
            let item = u128::from(item) % pow10(p.ref_digits);
            let e = decode_hex(&sgtin96(filter, part, cp, item, serial)).unwrap();
            prop_assert_eq!(e.company_prefix.parse::<u128>().unwrap(), cp);
            prop_assert_eq!(e.reference.parse::<u128>().unwrap(), item);
            prop_assert_eq!(e.serial.unwrap(), serial.to_string());
            let gtin = e.gtin.unwrap();
            prop_assert!(crate::barcode::check::gs1_mod10_ok(gtin.as_bytes()));
        }
    }
}
