//! HIBC LIC (ANSI/HIBC 2.x supplier labeling): primary, secondary and concatenated symbols.
//!
//! ```text
//! primary       +LIC PCN U C                 LIC [A-Z][A-Z0-9]{3}, PCN [A-Z0-9]{1,18}, U 0-9
//! secondary     +SEC [/SUPP]* L C            L = link character (the primary's C)
//! concatenated  +LIC PCN U / SEC [/SUPP]* C  one check character, no link character
//! ```
//!
//! `C` is the Code 39 mod-43 check character over every preceding character including the
//! leading `+`. Code 39 start/stop asterisks around the data are tolerated, and `_` (how the
//! human-readable line shows a space check or link character) is read as a space in those two
//! positions only. The check and link characters are removed *before* the data is split on
//! `/`, because either may itself be a `/`.
//!
//! Decisions where the standard leaves room (barcodes.md §2):
//! * Quantity (`$$8`/`$$9`, also accepted after `$$+`) is followed by a date field, as in the
//!   "R Q D B" layout of the standard's secondary data table.
//! * Lot and serial numbers are 1–18 characters of `A-Z 0-9 - .`. The lot may be left out
//!   after a date or quantity (`+$$3271231` + L C); a serial never (`$+`, `$$+`).
//! * Supplemental fields: `14D`YYYYMMDD expiry, `16D`YYYYMMDD manufacture date, `S` serial
//!   (1–18 characters), `Q` quantity (1–8 digits). Any other identifier is refused, and so is a
//!   field that contradicts the secondary data (two different expiry dates, serials or
//!   quantities).
//! * Two-digit years are 20YY (HIBC has no century window); hours must be 00–23.
//! * `+/` (HIBC PAS) and `++` (EU Basic UDI-DI) are refused as `unsupported`.

use crate::{Date, DecodeError, ErrorKind, Summary};

/// Longest HIBC symbol accepted (a concatenated symbol with every supplemental field is about
/// 110 characters).
pub const MAX_HIBC_LEN: usize = 256;

/// Longest lot or serial number.
const MAX_LOT_LEN: usize = 18;
/// Longest product or catalogue number.
const MAX_PCN_LEN: usize = 18;

/// Which HIBC data structure a symbol carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HibcForm {
    /// Labeler, product and unit of measure only.
    Primary,
    /// Lot, serial, dates or quantity in a separate symbol, paired by its link character.
    Secondary,
    /// Primary and secondary data in one symbol.
    Concatenated,
}

/// A decoded HIBC symbol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hibc {
    pub form: HibcForm,
    /// Labeler identification code (primary data).
    pub lic: Option<String>,
    /// Product or catalogue number (primary data).
    pub pcn: Option<String>,
    /// Unit of measure / packaging index (primary data).
    pub unit: Option<u8>,
    pub lot: Option<String>,
    pub serial: Option<String>,
    pub expiry: Option<Date>,
    /// The hour of the expiry, for the `YYMMDDHH` and `YYJJJHH` date formats.
    pub expiry_hour: Option<u8>,
    pub manufactured: Option<Date>,
    pub quantity: Option<u32>,
    /// The link character of a separate secondary symbol (the primary's check character).
    pub link: Option<char>,
    /// The mod-43 check character (a space check character is reported as `' '`).
    pub check: char,
}

impl Hibc {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "hibc",
            lic: self.lic.clone(),
            pcn: self.pcn.clone(),
            unit: self.unit,
            lot: self.lot.clone(),
            serial: self.serial.clone(),
            expiry: self.expiry,
            quantity: self.quantity.map(|q| q.to_string()),
            link: self.link.map(String::from),
            ..Summary::default()
        }
    }
}

/// The mod-43 value of an HIBC character (Code 39 order: 0-9, A-Z, `-`, `.`, space, `$`, `/`,
/// `+`, `%`).
pub fn char_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'A'..=b'Z' => Some(c - b'A' + 10),
        b'-' => Some(36),
        b'.' => Some(37),
        b' ' => Some(38),
        b'$' => Some(39),
        b'/' => Some(40),
        b'+' => Some(41),
        b'%' => Some(42),
        _ => None,
    }
}

/// The HIBC character of a mod-43 value.
fn value_char(v: u8) -> char {
    const SET: &[u8; 43] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ-. $/+%";
    SET.get(usize::from(v)).map_or('?', |&b| char::from(b))
}

/// The mod-43 check character of `data` (which must be HIBC characters), or `None`.
pub fn check_char(data: &[u8]) -> Option<char> {
    let mut sum: u32 = 0;
    for &c in data {
        sum += u32::from(char_value(c)?);
    }
    u8::try_from(sum % 43).ok().map(value_char)
}

/// How a check or link character is named in messages (a space is invisible).
fn shown(c: char) -> String {
    if c == ' ' {
        "a space".to_string()
    } else {
        format!("'{c}'")
    }
}

/// Decode an HIBC symbol (starting with `+`, or `*+` with Code 39 asterisks).
pub fn parse(data: &[u8]) -> Result<Hibc, DecodeError> {
    if data.len() > MAX_HIBC_LEN {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            MAX_HIBC_LEN,
            b"",
            format!(
                "an HIBC symbol is at most {MAX_HIBC_LEN} characters, this one has {}",
                data.len()
            ),
        ));
    }
    // Code 39 start/stop characters as shown in the human-readable line.
    let base = usize::from(data.first() == Some(&b'*'));
    let end = if data.len() > base && data.last() == Some(&b'*') {
        data.len() - 1
    } else {
        data.len()
    };
    let s = data.get(base..end).unwrap_or_default();
    parse_symbol(s).map_err(|e| e.shifted(base))
}

fn parse_symbol(s: &[u8]) -> Result<Hibc, DecodeError> {
    if s.is_empty() {
        return Err(DecodeError::new(
            ErrorKind::Empty,
            0,
            s,
            "nothing to decode",
        ));
    }
    if s.first() != Some(&b'+') {
        return Err(DecodeError::new(
            ErrorKind::Unrecognized,
            0,
            s.get(..1).unwrap_or_default(),
            "an HIBC symbol starts with '+'",
        ));
    }
    match s.get(1) {
        Some(b'/') => {
            return Err(DecodeError::new(
                ErrorKind::Unsupported,
                0,
                s.get(..2).unwrap_or_default(),
                "HIBC PAS (provider applications, '+/') is not accepted for stock events",
            ));
        }
        Some(b'+') => {
            return Err(DecodeError::new(
                ErrorKind::Unsupported,
                0,
                s.get(..2).unwrap_or_default(),
                "an EU Basic UDI-DI ('++') is a database key, not a label symbol",
            ));
        }
        _ => {}
    }
    let secondary = matches!(s.get(1), Some(b'0'..=b'9' | b'$'));
    let min = if secondary { 4 } else { 8 };
    if s.len() < min {
        return Err(DecodeError::new(
            ErrorKind::TooShort,
            s.len(),
            s,
            format!(
                "an HIBC {} symbol has at least {min} characters, this one has {}",
                if secondary { "secondary" } else { "primary" },
                s.len()
            ),
        ));
    }
    // Read every character; `_` stands for a space in the check (and link) position.
    let last = s.len() - 1;
    let mut text = Vec::with_capacity(s.len());
    for (i, &c) in s.iter().enumerate() {
        let c = if c == b'_' && (i == last || (secondary && i + 1 == last)) {
            b' '
        } else {
            c
        };
        if char_value(c).is_none() {
            return Err(DecodeError::new(
                ErrorKind::InvalidCharacter,
                i,
                &[c],
                format!(
                    "'{}' is not an HIBC character (0-9, A-Z, - . space $ / + %)",
                    crate::error::escape(&[c])
                ),
            ));
        }
        text.push(c);
    }
    let (body, check) = text.split_at(last);
    let check = char::from(check.first().copied().unwrap_or(b' '));
    let expected = check_char(body).unwrap_or('?');
    if expected != check {
        return Err(DecodeError::new(
            ErrorKind::CheckDigit,
            last,
            s.get(last..).unwrap_or_default(),
            format!(
                "HIBC check character is {}, expected {}",
                shown(check),
                shown(expected)
            ),
        ));
    }
    // Without the leading '+' (offsets in `body` are one less than in `s`).
    let body = body.get(1..).unwrap_or_default();
    if secondary {
        let (data, link) = body.split_at(body.len().saturating_sub(1));
        let link = char::from(link.first().copied().unwrap_or(b' '));
        let sec = parse_secondary(data, 1)?;
        return Ok(Hibc {
            form: HibcForm::Secondary,
            lic: None,
            pcn: None,
            unit: None,
            lot: sec.lot,
            serial: sec.serial,
            expiry: sec.expiry,
            expiry_hour: sec.expiry_hour,
            manufactured: sec.manufactured,
            quantity: sec.quantity,
            link: Some(link),
            check,
        });
    }
    let (primary, rest) = match body.iter().position(|&c| c == b'/') {
        Some(p) => (
            body.get(..p).unwrap_or_default(),
            Some((body.get(p + 1..).unwrap_or_default(), p + 2)),
        ),
        None => (body, None),
    };
    let (lic, pcn, unit) = parse_primary(primary, 1)?;
    let mut hibc = Hibc {
        form: HibcForm::Primary,
        lic: Some(lic),
        pcn: Some(pcn),
        unit: Some(unit),
        lot: None,
        serial: None,
        expiry: None,
        expiry_hour: None,
        manufactured: None,
        quantity: None,
        link: None,
        check,
    };
    if let Some((sec, at)) = rest {
        if sec.is_empty() {
            return Err(DecodeError::new(
                ErrorKind::InvalidStructure,
                at - 1,
                b"/",
                "a '/' after the primary data must be followed by secondary data",
            ));
        }
        let sec = parse_secondary(sec, at)?;
        hibc.form = HibcForm::Concatenated;
        hibc.lot = sec.lot;
        hibc.serial = sec.serial;
        hibc.expiry = sec.expiry;
        hibc.expiry_hour = sec.expiry_hour;
        hibc.manufactured = sec.manufactured;
        hibc.quantity = sec.quantity;
    }
    Ok(hibc)
}

/// `LIC PCN U`, found at offset `at`.
fn parse_primary(p: &[u8], at: usize) -> Result<(String, String, u8), DecodeError> {
    if p.len() < 6 {
        return Err(DecodeError::new(
            ErrorKind::TooShort,
            at,
            p,
            "HIBC primary data is a 4-character labeler code, a product number and a unit digit",
        ));
    }
    let lic = p.get(..4).unwrap_or_default();
    for (i, &c) in lic.iter().enumerate() {
        let ok = if i == 0 {
            c.is_ascii_uppercase()
        } else {
            c.is_ascii_uppercase() || c.is_ascii_digit()
        };
        if !ok {
            return Err(DecodeError::new(
                ErrorKind::InvalidCharacter,
                at + i,
                lic,
                if i == 0 {
                    "an HIBC labeler code starts with a letter A-Z"
                } else {
                    "an HIBC labeler code has only letters A-Z and digits"
                },
            ));
        }
    }
    let pcn = p.get(4..p.len() - 1).unwrap_or_default();
    if pcn.len() > MAX_PCN_LEN {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            at + 4,
            pcn,
            format!(
                "an HIBC product number has at most {MAX_PCN_LEN} characters, this one has {}",
                pcn.len()
            ),
        ));
    }
    if let Some(i) = pcn
        .iter()
        .position(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit()))
    {
        return Err(DecodeError::new(
            ErrorKind::InvalidCharacter,
            at + 4 + i,
            pcn,
            "an HIBC product number has only letters A-Z and digits",
        ));
    }
    let unit = p.last().copied().unwrap_or(0);
    if !unit.is_ascii_digit() {
        return Err(DecodeError::new(
            ErrorKind::InvalidValue,
            at + p.len() - 1,
            &[unit],
            "the HIBC unit of measure is a digit 0-9",
        ));
    }
    Ok((
        String::from_utf8_lossy(lic).into_owned(),
        String::from_utf8_lossy(pcn).into_owned(),
        unit - b'0',
    ))
}

/// What a secondary data structure (with its supplemental fields) carries.
#[derive(Debug, Default)]
struct Secondary {
    lot: Option<String>,
    serial: Option<String>,
    expiry: Option<Date>,
    expiry_hour: Option<u8>,
    manufactured: Option<Date>,
    quantity: Option<u32>,
}

/// A cursor over secondary data; offsets reported relative to the symbol.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    /// Offset of `data` in the symbol.
    at: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.data.get(self.pos).copied()
    }

    fn rest(&self) -> &[u8] {
        self.data.get(self.pos..).unwrap_or_default()
    }

    fn offset(&self) -> usize {
        self.at + self.pos
    }

    /// `n` digits as a number.
    fn digits(&mut self, n: usize, what: &str) -> Result<u32, DecodeError> {
        let field = self.data.get(self.pos..self.pos + n);
        let Some(field) = field else {
            return Err(DecodeError::new(
                ErrorKind::TooShort,
                self.offset(),
                self.rest(),
                format!("the HIBC {what} needs {n} digits"),
            ));
        };
        let mut v: u32 = 0;
        for (i, &c) in field.iter().enumerate() {
            if !c.is_ascii_digit() {
                return Err(DecodeError::new(
                    ErrorKind::InvalidCharacter,
                    self.offset() + i,
                    field,
                    format!("the HIBC {what} has only digits"),
                ));
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.pos += n;
        Ok(v)
    }
}

fn invalid_date(at: usize, field: &[u8], what: &str) -> DecodeError {
    DecodeError::new(
        ErrorKind::InvalidDate,
        at,
        field,
        format!("the HIBC {what} is not a valid date"),
    )
}

/// Two-digit HIBC years are always 20YY.
fn year(yy: u32) -> u16 {
    u16::try_from(2000 + yy % 100).unwrap_or(2000)
}

fn small(v: u32) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

/// The date field after `$$`, `$$+` and the quantity: a format flag decides its layout.
fn date_field(c: &mut Cursor<'_>) -> Result<(Option<Date>, Option<u8>), DecodeError> {
    let start = c.pos;
    let at = c.offset();
    let Some(flag) = c.peek() else {
        return Err(DecodeError::new(
            ErrorKind::TooShort,
            at,
            b"",
            "HIBC secondary data needs a date field (or the flag 7 for no date)",
        ));
    };
    let field = |c: &Cursor<'_>| c.data.get(start..c.pos).unwrap_or_default().to_vec();
    let (date, hour) = match flag {
        b'0' | b'1' => {
            let mm = c.digits(2, "expiry month (MMYY)")?;
            let yy = c.digits(2, "expiry year (MMYY)")?;
            let d = Date::last_of_month(year(yy), small(mm));
            (
                d.ok_or_else(|| invalid_date(at, &field(c), "expiry MMYY"))?,
                None,
            )
        }
        b'2' => {
            c.pos += 1;
            let mm = c.digits(2, "expiry date (MMDDYY)")?;
            let dd = c.digits(2, "expiry date (MMDDYY)")?;
            let yy = c.digits(2, "expiry date (MMDDYY)")?;
            let d = Date::new(year(yy), small(mm), small(dd));
            (
                d.ok_or_else(|| invalid_date(at, &field(c), "expiry MMDDYY"))?,
                None,
            )
        }
        b'3' | b'4' => {
            c.pos += 1;
            let yy = c.digits(2, "expiry date (YYMMDD)")?;
            let mm = c.digits(2, "expiry date (YYMMDD)")?;
            let dd = c.digits(2, "expiry date (YYMMDD)")?;
            let hh = if flag == b'4' {
                Some(c.digits(2, "expiry hour (YYMMDDHH)")?)
            } else {
                None
            };
            let d = Date::new(year(yy), small(mm), small(dd))
                .ok_or_else(|| invalid_date(at, &field(c), "expiry YYMMDD"))?;
            (d, hh)
        }
        b'5' | b'6' => {
            c.pos += 1;
            let yy = c.digits(2, "expiry date (YYJJJ)")?;
            let jjj = c.digits(3, "expiry date (YYJJJ)")?;
            let hh = if flag == b'6' {
                Some(c.digits(2, "expiry hour (YYJJJHH)")?)
            } else {
                None
            };
            let d = Date::from_ordinal(year(yy), u16::try_from(jjj).unwrap_or(0))
                .ok_or_else(|| invalid_date(at, &field(c), "Julian expiry YYJJJ"))?;
            (d, hh)
        }
        b'7' => {
            c.pos += 1;
            return Ok((None, None));
        }
        other => {
            return Err(DecodeError::new(
                ErrorKind::InvalidStructure,
                at,
                &[other],
                "HIBC '$$' data needs a date format flag 0-7 here",
            ));
        }
    };
    if let Some(h) = hour {
        if h > 23 {
            return Err(invalid_date(at, &field(c), "expiry hour"));
        }
    }
    Ok((Some(date), hour.map(small)))
}

/// A lot or serial number: 1–18 characters of `A-Z 0-9 - .`.
fn lot_field(c: &Cursor<'_>, what: &str, required: bool) -> Result<Option<String>, DecodeError> {
    let v = c.rest();
    if v.is_empty() {
        if required {
            return Err(DecodeError::new(
                ErrorKind::TooShort,
                c.offset(),
                v,
                format!("the HIBC {what} is missing"),
            ));
        }
        return Ok(None);
    }
    check_lot(v, c.offset(), what).map(Some)
}

fn check_lot(v: &[u8], at: usize, what: &str) -> Result<String, DecodeError> {
    if v.len() > MAX_LOT_LEN {
        return Err(DecodeError::new(
            ErrorKind::TooLong,
            at,
            v,
            format!(
                "an HIBC {what} has at most {MAX_LOT_LEN} characters, this one has {}",
                v.len()
            ),
        ));
    }
    if let Some(i) = v
        .iter()
        .position(|&b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'.'))
    {
        return Err(DecodeError::new(
            ErrorKind::InvalidCharacter,
            at + i,
            v,
            format!("an HIBC {what} has only letters A-Z, digits, '-' and '.'"),
        ));
    }
    Ok(String::from_utf8_lossy(v).into_owned())
}

/// Secondary data `SEC [/SUPP]*` (check and link characters already removed), at offset `at`.
fn parse_secondary(data: &[u8], at: usize) -> Result<Secondary, DecodeError> {
    let mut parts = data.split(|&c| c == b'/');
    let main = parts.next().unwrap_or_default();
    let mut c = Cursor {
        data: main,
        pos: 0,
        at,
    };
    let mut sec = Secondary::default();
    match (main.first(), main.get(1), main.get(2)) {
        (None, ..) => {
            return Err(DecodeError::new(
                ErrorKind::TooShort,
                at,
                main,
                "HIBC secondary data is missing",
            ));
        }
        (Some(b'0'..=b'9'), ..) => {
            // Legacy: Julian expiry YYJJJ, then the lot.
            let yy = c.digits(2, "Julian expiry (YYJJJ)")?;
            let jjj = c.digits(3, "Julian expiry (YYJJJ)")?;
            sec.expiry = Some(
                Date::from_ordinal(year(yy), u16::try_from(jjj).unwrap_or(0)).ok_or_else(|| {
                    invalid_date(at, main.get(..5).unwrap_or_default(), "Julian expiry YYJJJ")
                })?,
            );
            sec.lot = lot_field(&c, "lot number", false)?;
        }
        (Some(b'$'), Some(b'$'), third) => {
            let serial = third == Some(&b'+');
            c.pos = if serial { 3 } else { 2 };
            let qty = match c.peek() {
                Some(b'8') => {
                    c.pos += 1;
                    Some(c.digits(2, "quantity ($$8)")?)
                }
                Some(b'9') => {
                    c.pos += 1;
                    Some(c.digits(5, "quantity ($$9)")?)
                }
                _ => None,
            };
            sec.quantity = qty;
            (sec.expiry, sec.expiry_hour) = date_field(&mut c)?;
            if serial {
                sec.serial = lot_field(&c, "serial number", true)?;
            } else {
                // A lot may be left out after a date or quantity, not when nothing is left.
                let bare = sec.expiry.is_none() && sec.quantity.is_none();
                sec.lot = lot_field(&c, "lot number", bare)?;
            }
        }
        (Some(b'$'), Some(b'+'), _) => {
            c.pos = 2;
            sec.serial = lot_field(&c, "serial number", true)?;
        }
        (Some(b'$'), ..) => {
            c.pos = 1;
            sec.lot = lot_field(&c, "lot number", true)?;
        }
        (Some(&other), ..) => {
            return Err(DecodeError::new(
                ErrorKind::InvalidStructure,
                at,
                &[other],
                "HIBC secondary data starts with a digit (Julian date) or '$'",
            ));
        }
    }
    let mut at = at + main.len() + 1;
    for supp in parts {
        supplemental(supp, at, &mut sec)?;
        at += supp.len() + 1;
    }
    Ok(sec)
}

/// One supplemental field after `/`: `14D`, `16D`, `S` or `Q`.
fn supplemental(f: &[u8], at: usize, sec: &mut Secondary) -> Result<(), DecodeError> {
    let conflict = |what: &str| {
        DecodeError::new(
            ErrorKind::InvalidStructure,
            at,
            f,
            format!("this HIBC symbol carries two different {what}"),
        )
    };
    if let Some(rest) = f.strip_prefix(b"14D").or_else(|| f.strip_prefix(b"16D")) {
        let manufacture = f.starts_with(b"16D");
        let what = if manufacture {
            "manufacture date (16D YYYYMMDD)"
        } else {
            "expiry date (14D YYYYMMDD)"
        };
        if rest.len() > 8 {
            return Err(DecodeError::new(
                ErrorKind::TooLong,
                at + 3,
                rest,
                format!("the HIBC {what} has 8 digits"),
            ));
        }
        let mut c = Cursor {
            data: rest,
            pos: 0,
            at: at + 3,
        };
        let y = c.digits(4, what)?;
        let m = c.digits(2, what)?;
        let d = c.digits(2, what)?;
        let date = Date::new(u16::try_from(y).unwrap_or(0), small(m), small(d))
            .ok_or_else(|| invalid_date(at + 3, rest, what))?;
        let slot = if manufacture {
            &mut sec.manufactured
        } else {
            &mut sec.expiry
        };
        match slot {
            Some(old) if *old != date => {
                return Err(conflict(if manufacture {
                    "manufacture dates"
                } else {
                    "expiry dates"
                }));
            }
            _ => *slot = Some(date),
        }
        return Ok(());
    }
    match f.first() {
        Some(b'S') => {
            let v = f.get(1..).unwrap_or_default();
            if v.is_empty() {
                return Err(DecodeError::new(
                    ErrorKind::TooShort,
                    at + 1,
                    v,
                    "the HIBC serial number (S) is empty",
                ));
            }
            let serial = check_lot(v, at + 1, "serial number")?;
            match &sec.serial {
                Some(old) if *old != serial => return Err(conflict("serial numbers")),
                _ => sec.serial = Some(serial),
            }
            Ok(())
        }
        Some(b'Q') => {
            let v = f.get(1..).unwrap_or_default();
            if v.is_empty() || v.len() > 8 {
                return Err(DecodeError::new(
                    if v.is_empty() {
                        ErrorKind::TooShort
                    } else {
                        ErrorKind::TooLong
                    },
                    at + 1,
                    v,
                    "the HIBC quantity (Q) has 1 to 8 digits",
                ));
            }
            let mut c = Cursor {
                data: v,
                pos: 0,
                at: at + 1,
            };
            let q = c.digits(v.len(), "quantity (Q)")?;
            match sec.quantity {
                Some(old) if old != q => return Err(conflict("quantities")),
                _ => sec.quantity = Some(q),
            }
            Ok(())
        }
        _ => Err(DecodeError::new(
            ErrorKind::InvalidStructure,
            at,
            f,
            "unknown HIBC supplemental data field (expected 14D, 16D, S or Q)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `data` followed by its check character.
    fn with_check(data: &str) -> String {
        let c = check_char(data.as_bytes()).unwrap();
        format!("{data}{c}")
    }

    #[test]
    fn worked_check_characters() {
        // The standard's primary example, summed by hand in barcodes.md §2.1.
        assert_eq!(check_char(b"+A123BJC5D6E71"), Some('G'));
        // 41+39+39+5+2+0+0+1+5+1+0+33+3+16 = 185 = 4*43 + 13 -> D.
        assert_eq!(check_char(b"+$$52001510X3G"), Some('D'));
        // 41+10+27+15+40+39+39+14+33+3 = 261 = 6*43 + 3 -> 3.
        assert_eq!(check_char(b"+A99912345/$$52001510X3"), Some('3'));
        assert_eq!(
            check_char(b"+A99912345/$$52001510X3/16D20111212/S77DEFG45"),
            Some('7')
        );
        // 41 + 38 (space) = 79 = 43 + 36 -> '-'.
        assert_eq!(check_char(b"+ "), Some('-'));
        assert_eq!(check_char(b"+a"), None);
    }

    #[test]
    fn primary() {
        let h = parse(b"+A123BJC5D6E71G").unwrap();
        assert_eq!(h.form, HibcForm::Primary);
        assert_eq!(h.lic.as_deref(), Some("A123"));
        assert_eq!(h.pcn.as_deref(), Some("BJC5D6E7"));
        assert_eq!(h.unit, Some(1));
        assert_eq!(h.check, 'G');
        let h = parse(b"*+A123BJC5D6E71G*").unwrap();
        assert_eq!(h.pcn.as_deref(), Some("BJC5D6E7"));
    }

    #[test]
    fn concatenated_with_supplements() {
        let h = parse(b"+A99912345/$$52001510X3/16D20111212/S77DEFG457").unwrap();
        assert_eq!(h.form, HibcForm::Concatenated);
        assert_eq!(h.pcn.as_deref(), Some("1234"));
        assert_eq!(h.unit, Some(5));
        assert_eq!(h.expiry, Date::new(2020, 1, 15));
        assert_eq!(h.lot.as_deref(), Some("10X3"));
        assert_eq!(h.manufactured, Date::new(2011, 12, 12));
        assert_eq!(h.serial.as_deref(), Some("77DEFG45"));
    }

    #[test]
    fn secondary_link_and_space_check() {
        let h = parse(b"+$$52001510X3GD").unwrap();
        assert_eq!(h.form, HibcForm::Secondary);
        assert_eq!(h.link, Some('G'));
        assert_eq!(h.lot.as_deref(), Some("10X3"));
        // A '/' link character is not a field separator.
        let s = with_check("+$LOT1/");
        let h = parse(s.as_bytes()).unwrap();
        assert_eq!(h.link, Some('/'));
        assert_eq!(h.lot.as_deref(), Some("LOT1"));
    }

    #[test]
    fn underscore_is_a_space_check_character() {
        // Find a primary whose check character is a space.
        let mut found = false;
        for u in b'0'..=b'9' {
            for p in b'A'..=b'Z' {
                let data = format!("+B123{}{}", char::from(p), char::from(u));
                if check_char(data.as_bytes()) == Some(' ') {
                    let h = parse(format!("{data}_").as_bytes()).unwrap();
                    assert_eq!(h.check, ' ');
                    assert!(parse(format!("{data} ").as_bytes()).is_ok());
                    found = true;
                }
            }
        }
        assert!(found);
        // Elsewhere '_' is not an HIBC character.
        let e = parse(b"+A1_3BJC5D6E71G").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidCharacter, 3));
    }

    #[test]
    fn check_error_names_the_expected_character() {
        let e = parse(b"*+A123BJC5D6E71H*").unwrap_err();
        assert_eq!(e.kind, ErrorKind::CheckDigit);
        assert_eq!(e.offset, 15);
        assert!(e.message.contains("expected 'G'"), "{}", e.message);
    }

    fn samples() -> Vec<String> {
        vec![
            "+A123BJC5D6E71G".into(),
            "+$$52001510X3GD".into(),
            "+A99912345/$$52001510X3/16D20111212/S77DEFG457".into(),
            with_check("+A99912345/$$+90001242712312359SER1/Q12"),
            with_check("+$$8053271231LOT-1.AX"),
            with_check("+27001ABCX"),
        ]
    }

    #[test]
    fn samples_decode() {
        for s in samples() {
            assert!(parse(s.as_bytes()).is_ok(), "{s}");
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(&bytes);
            let mut plus = b"+".to_vec();
            plus.extend_from_slice(&bytes);
            let _ = parse(&plus);
        }

        #[test]
        fn never_panics_on_mutations(
            which in 0usize..6,
            edits in proptest::collection::vec((any::<usize>(), any::<u8>(), 0u8..3), 1..6),
        ) {
            let mut s = samples()[which].clone().into_bytes();
            for (pos, byte, op) in edits {
                let i = pos % (s.len() + 1);
                match op {
                    0 => s.insert(i, byte),
                    1 if i < s.len() => { s.remove(i); }
                    _ if i < s.len() => s[i] = byte,
                    _ => s.push(byte),
                }
            }
            if let Err(e) = parse(&s) {
                prop_assert!(e.offset <= s.len().max(MAX_HIBC_LEN));
            }
        }
    }
}
