//! Reader output lines (barcodes.md §4.5): bare hex, spaced words, `0x`, lower case, Alien text.
//!
//! Accepted forms of one line (surrounding spaces, tabs, CR and LF are ignored):
//!
//! ```text
//! 3074257BF7194E4000001A85                   bare hex, upper or lower case
//! 0x3074257bf7194e4000001a85                 0x prefix
//! 3074 257B F719 4E40 0000 1A85              bytes or words separated by spaces, '-' or ':'
//! Tag:3074 257B F719 4E40 0000 1A85, Disc:2008/10/28 10:49:35, Last:…, Count:4, Ant:0
//! 30003074257BF7194E4000001A85               the PC word before the EPC
//! 30003074257BF7194E4000001A85AAF9           PC, EPC and the tag's CRC-16
//! ```
//!
//! Every group of hex digits between separators must have an even count (whole bytes).
//!
//! **PC and CRC heuristic.** Some readers report the Gen2 protocol-control word in front of
//! the EPC, some the tag's CRC-16 after it. The PC's bits 15–11 give the EPC length in 16-bit
//! words; the CRC covers PC and EPC. Only lines 4 or 8 hex digits longer than a usual EPC
//! (96, 128 or 208 bits = 24, 32 or 52 digits) are looked at, in this order:
//!
//! 1. `EPC CRC` (usual + 4): the last word is the CRC of the EPC under the PC a tag of that
//!    length carries (length bits, UMI 0 or 1, no other bits). The CRC is dropped.
//! 2. `PC EPC` (usual + 4): the first word's length bits name exactly the remaining words. The
//!    PC is dropped. (An SGTIN-96's own first word, `30xx`, has the length bits of a 96-bit
//!    PC, which is why step 1 comes first.)
//! 3. `PC EPC CRC` (usual + 8): as step 2, and the last word is the CRC of PC and EPC.
//!
//! Anything else is left as it is: an EPC of a usual length is never shortened. The PC is kept
//! in [`TagRead::pc`]; [`crate::rfid::decode_line`] refuses a read whose PC has the toggle bit
//! (bit 8) set, because such a tag carries an ISO/IEC 15961 UII rather than a GS1 EPC.

use crate::{DecodeError, ErrorKind};

/// Longest reader line looked at.
pub const MAX_LINE_LEN: usize = 512;

/// EPC lengths, in hex digits, that a PC word in front of them is recognised for.
const USUAL_EPC_DIGITS: [usize; 3] = [24, 32, 52];

/// One tag read as the reader reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRead {
    /// The EPC as upper-case hex without separators (a PC or CRC the reader sent removed).
    pub epc_hex: String,
    /// The protocol-control word, when the reader sent it in front of the EPC.
    pub pc: Option<u16>,
    pub antenna: Option<u16>,
    /// How often the reader saw the tag (Alien `Count`).
    pub count: Option<u32>,
    /// Signal strength as the reader wrote it (decimal text, usually dBm).
    pub rssi: Option<String>,
}

/// Find the EPC in one reader line.
pub fn parse_line(line: &[u8]) -> Result<TagRead, DecodeError> {
    parse_line_mapped(line).map(|m| m.read)
}

/// A tag read with where its parts are in the line.
#[derive(Debug)]
pub(crate) struct Mapped {
    pub read: TagRead,
    /// The line offset of each digit of `read.epc_hex`, then the offset just after the EPC.
    pub positions: Vec<usize>,
    /// The line offset of the PC word, when there is one.
    pub pc_at: Option<usize>,
}

/// [`parse_line`], also returning where the EPC's hex digits and the PC are in the line, so
/// that errors found in the EPC can point into the line.
pub(crate) fn parse_line_mapped(line: &[u8]) -> Result<Mapped, DecodeError> {
    if line.len() > MAX_LINE_LEN {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            MAX_LINE_LEN,
            b"",
            format!(
                "a reader line is at most {MAX_LINE_LEN} bytes, this one has {}",
                line.len()
            ),
        ));
    }
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let (Some(start), Some(last)) = (
        line.iter().position(|b| !blank(b)),
        line.iter().rposition(|b| !blank(b)),
    ) else {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            0,
            line,
            "the reader line is empty",
        ));
    };
    let t = line.get(start..=last).unwrap_or_default();
    let mut read = TagRead {
        epc_hex: String::new(),
        pc: None,
        antenna: None,
        count: None,
        rssi: None,
    };
    let (mut digits, mut positions) = if t.get(..4).is_some_and(|p| p.eq_ignore_ascii_case(b"tag:"))
    {
        let rest = t.get(4..).unwrap_or_default();
        let comma = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        alien_fields(
            rest.get(comma..).unwrap_or_default(),
            start + 4 + comma,
            &mut read,
        )?;
        hex_groups(rest.get(..comma).unwrap_or_default(), start + 4)?
    } else if t.get(..2).is_some_and(|p| p.eq_ignore_ascii_case(b"0x")) {
        hex_groups(t.get(2..).unwrap_or_default(), start + 2)?
    } else {
        hex_groups(t, start)?
    };
    let pc_at = strip_pc(&mut digits, &mut positions, &mut read);
    read.epc_hex = String::from_utf8_lossy(&digits).into_owned();
    Ok(Mapped {
        read,
        positions,
        pc_at,
    })
}

/// Hex digits (upper-cased) of `s`, which is at `base` in the line, and their offsets plus the
/// end offset.
fn hex_groups(s: &[u8], base: usize) -> Result<(Vec<u8>, Vec<usize>), DecodeError> {
    let mut digits = Vec::with_capacity(s.len());
    let mut positions = Vec::with_capacity(s.len() + 1);
    let mut group: Option<usize> = None;
    let close = |group: Option<usize>, end: usize| -> Result<(), DecodeError> {
        match group {
            Some(g) if (end - g) % 2 == 1 => Err(DecodeError::new(
                ErrorKind::InvalidValue,
                base + g,
                s.get(g..end).unwrap_or_default(),
                "an odd number of hex digits: an EPC is made of whole bytes",
            )),
            _ => Ok(()),
        }
    };
    for (i, &b) in s.iter().enumerate() {
        if b.is_ascii_hexdigit() {
            group.get_or_insert(i);
            digits.push(b.to_ascii_uppercase());
            positions.push(base + i);
        } else if matches!(b, b' ' | b'\t' | b'-' | b':') {
            close(group.take(), i)?;
        } else {
            return Err(DecodeError::new(
                ErrorKind::InvalidCharacter,
                base + i,
                &[b],
                "a reader line has hex digits, separated by spaces, '-' or ':'",
            ));
        }
    }
    close(group, s.len())?;
    if digits.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            base,
            s,
            "the reader line has no EPC hex digits",
        ));
    }
    positions.push(positions.last().map_or(base, |&p| p + 1));
    Ok((digits, positions))
}

/// The fields after an Alien `Tag:` value: `, Key:Value` pairs; `Ant`, `Count` and `Rssi` are
/// kept, the others (`Disc`, `Last`, `Proto` …) ignored.
fn alien_fields(s: &[u8], base: usize, read: &mut TagRead) -> Result<(), DecodeError> {
    let mut at = 0;
    for field in s.split(|&b| b == b',') {
        let here = at;
        at += field.len() + 1;
        let Some(colon) = field.iter().position(|&b| b == b':') else {
            continue;
        };
        let key = field.get(..colon).unwrap_or_default().trim_ascii();
        let raw = field.get(colon + 1..).unwrap_or_default();
        let value = raw.trim_ascii();
        let offset = base + here + colon + 1 + (raw.len() - raw.trim_ascii_start().len());
        let bad = |what: &str| {
            DecodeError::new(
                ErrorKind::InvalidValue,
                offset,
                value,
                format!("the reader's {what} is not a number"),
            )
        };
        if key.eq_ignore_ascii_case(b"ant") {
            read.antenna = Some(number(value).ok_or_else(|| bad("antenna"))?);
        } else if key.eq_ignore_ascii_case(b"count") {
            read.count = Some(number(value).ok_or_else(|| bad("read count"))?);
        } else if key.eq_ignore_ascii_case(b"rssi") {
            if !is_decimal(value) {
                return Err(bad("RSSI"));
            }
            read.rssi = Some(String::from_utf8_lossy(value).into_owned());
        }
    }
    Ok(())
}

/// A decimal number without sign that fits `T`.
fn number<T: std::str::FromStr>(v: &[u8]) -> Option<T> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok()
}

/// `-?digits(.digits)?`, at most 12 characters.
fn is_decimal(v: &[u8]) -> bool {
    let body = v.strip_prefix(b"-").unwrap_or(v);
    let (int, frac) = match body.iter().position(|&b| b == b'.') {
        Some(p) => (
            body.get(..p).unwrap_or_default(),
            Some(body.get(p + 1..).unwrap_or_default()),
        ),
        None => (body, None),
    };
    v.len() <= 12
        && !int.is_empty()
        && int.iter().all(u8::is_ascii_digit)
        && frac.is_none_or(|f| !f.is_empty() && f.iter().all(u8::is_ascii_digit))
}

/// The 16-bit word at hex digit `i`.
fn word(digits: &[u8], i: usize) -> Option<u16> {
    let w = digits.get(i..i + 4)?;
    u16::from_str_radix(std::str::from_utf8(w).ok()?, 16).ok()
}

/// Bytes of an even number of hex digits.
fn bytes(digits: &[u8]) -> Vec<u8> {
    digits
        .chunks(2)
        .filter_map(|c| u8::from_str_radix(std::str::from_utf8(c).ok()?, 16).ok())
        .collect()
}

/// The Gen2 CRC-16 (CRC-16/GENIBUS: polynomial 0x1021, preset 0xFFFF, result inverted).
pub fn crc16_gen2(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    !crc
}

/// Remove a PC word and/or a CRC by the heuristic of the module documentation; the line
/// offset of a removed PC.
fn strip_pc(digits: &mut Vec<u8>, positions: &mut Vec<usize>, read: &mut TagRead) -> Option<usize> {
    let n = digits.len();
    if n < 8 {
        return None;
    }
    // 1. EPC + CRC under the PC its length implies.
    if USUAL_EPC_DIGITS.contains(&(n - 4)) {
        let words = u16::try_from((n - 4) / 4).unwrap_or(0);
        let epc = bytes(digits.get(..n - 4).unwrap_or_default());
        let crc = word(digits, n - 4);
        for umi in [0u16, 1] {
            let mut data = ((words << 11) | (umi << 10)).to_be_bytes().to_vec();
            data.extend_from_slice(&epc);
            if crc == Some(crc16_gen2(&data)) {
                digits.truncate(n - 4);
                // The CRC's first digit becomes the end of the EPC.
                positions.truncate(n - 3);
                return None;
            }
        }
    }
    let pc = word(digits, 0)?;
    let epc_digits = usize::from(pc >> 11) * 4;
    if !USUAL_EPC_DIGITS.contains(&epc_digits) {
        return None;
    }
    let pc_at = positions.first().copied();
    if n == epc_digits + 4 {
        // 2. PC + EPC.
        digits.drain(..4);
        positions.drain(..4);
        read.pc = Some(pc);
        return pc_at;
    } else if n == epc_digits + 8 {
        // 3. PC + EPC + CRC.
        let body = bytes(digits.get(..n - 4).unwrap_or_default());
        if word(digits, n - 4) == Some(crc16_gen2(&body)) {
            digits.truncate(n - 4);
            digits.drain(..4);
            positions.truncate(n - 3);
            positions.drain(..4);
            read.pc = Some(pc);
            return pc_at;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EPC: &str = "3074257BF7194E4000001A85";

    fn hex(line: &str) -> String {
        parse_line(line.as_bytes()).unwrap().epc_hex
    }

    #[test]
    fn formats() {
        for line in [
            EPC,
            "3074257bf7194e4000001a85",
            "  0x3074257BF7194E4000001A85\r\n",
            "3074 257B F719 4E40 0000 1A85",
            "30-74-25-7B-F7-19-4E-40-00-00-1A-85",
            "30:74:25:7b:f7:19:4e:40:00:00:1a:85",
            "30003074257BF7194E4000001A85",
            "3000 3074 257B F719 4E40 0000 1A85 AAF9",
            "3074 257B F719 4E40 0000 1A85 AAF9",
        ] {
            assert_eq!(hex(line), EPC, "{line}");
        }
    }

    #[test]
    fn gen2_crc_of_the_worked_frame() {
        // barcodes.md §4.5: CRC AAF9 over PC 3000 + the EPC.
        let mut data = vec![0x30, 0x00];
        data.extend(bytes(EPC.as_bytes()));
        assert_eq!(crc16_gen2(&data), 0xAAF9);
    }

    #[test]
    fn alien() {
        let r = parse_line(
            b"Tag:3074 257B F719 4E40 0000 1A85, Disc:2008/10/28 10:49:35, \
              Last:2008/10/28 10:49:35, Count:4, Ant:1, Rssi:-61.5",
        )
        .unwrap();
        assert_eq!(r.epc_hex, EPC);
        assert_eq!((r.antenna, r.count), (Some(1), Some(4)));
        assert_eq!(r.rssi.as_deref(), Some("-61.5"));
        let e = parse_line(b"Tag:3074 257B F719 4E40 0000 1A85, Ant:x").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidValue, 39));
    }

    #[test]
    fn pc_is_kept_when_lengths_do_not_match() {
        // 24 digits whose first word looks like a 5-word PC: not stripped.
        assert_eq!(hex("2C00257BF7194E4000001A85"), "2C00257BF7194E4000001A85");
        // PC + EPC + a wrong CRC: left alone.
        let line = "30003074257BF7194E4000001A85AAF8";
        assert_eq!(hex(line), line);
    }

    #[test]
    fn errors() {
        let e = parse_line(b"3074257BF7194E4000001A8").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidValue, 0));
        let e = parse_line(b"3074 257 F719").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidValue, 5));
        let e = parse_line(b"3074257BF7194E4000001A8Z").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidCharacter, 23));
        assert_eq!(parse_line(b" \r\n").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(parse_line(b"0x").unwrap_err().kind, ErrorKind::Empty);
        assert_eq!(
            parse_line(&[b'0'; MAX_LINE_LEN + 1]).unwrap_err().kind,
            ErrorKind::TooLong
        );
    }

    #[test]
    fn positions_point_into_the_line() {
        let m = parse_line_mapped(b" 3000 3074 257B F719 4E40 0000 1A85").unwrap();
        let (r, pos) = (m.read, m.positions);
        assert_eq!(r.pc, Some(0x3000));
        assert_eq!(m.pc_at, Some(1));
        assert_eq!(pos.len(), 25);
        assert_eq!(pos[0], 6);
        assert_eq!(pos[24], 35);
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(m) = parse_line_mapped(&bytes) {
                prop_assert_eq!(m.positions.len(), m.read.epc_hex.len() + 1);
            }
        }

        #[test]
        fn never_panics_on_hexish(s in "[ \t:0-9A-Fa-fxX,-]{0,80}(Tag:|Ant:|Count:)?[ 0-9A-F,]{0,40}") {
            if let Ok(m) = parse_line_mapped(s.as_bytes()) {
                prop_assert_eq!(m.positions.len(), m.read.epc_hex.len() + 1);
            }
        }
    }
}
