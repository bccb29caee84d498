//! The content checks ("linters") of the GS1 Barcode Syntax Dictionary, one function per
//! linter name, with the code lists some of them need.
//!
//! Each check sees one component of a data field whose character set and length were already
//! checked, and reports a [`Problem`] whose offset is relative to the component.

use crate::barcode::check::gs1_mod10;
use crate::barcode::gs1::ai::{Linter, Problem, is_cset82, show_byte};
use crate::date::days_in_month;
use crate::{Date, ErrorKind};

/// Run one linter on one component.
pub fn check(linter: Linter, s: &[u8], today: Date) -> Result<(), Problem> {
    match linter {
        Linter::Couponcode => couponcode(s, today),
        Linter::Couponposoffer => couponposoffer(s),
        Linter::Csum => csum(s),
        Linter::Csumalpha => csumalpha(s),
        Linter::Gcppos1 => gcp_at(s, 0),
        Linter::Gcppos2 => gcp_at(s, 1),
        Linter::Hasnondigit => hasnondigit(s),
        Linter::Hh => hour(s, 0),
        Linter::Hhmi => hour(s, 0).and_then(|()| minute(s, 2, "minute")),
        Linter::Hyphen => one_of(s, &["-"], "must be a hyphen '-'"),
        Linter::Iban => iban(s),
        Linter::Importeridx => importeridx(s),
        Linter::Iso3166 => iso3166(s, false),
        Linter::Iso3166999 => iso3166(s, true),
        Linter::Iso3166alpha2 => iso3166alpha2(s),
        Linter::Iso4217 => iso4217(s),
        Linter::Iso5218 => one_of(
            s,
            &["0", "1", "2", "9"],
            "must be an ISO/IEC 5218 sex code (0, 1, 2 or 9)",
        ),
        Linter::Latitude => degrees(s, 1_800_000_000, "latitude"),
        Linter::Longitude => degrees(s, 3_600_000_000, "longitude"),
        Linter::Mediatype => mediatype(s),
        Linter::Mi => minute(s, 0, "minute"),
        Linter::Nonzero => nonzero(s),
        Linter::Nozeroprefix => nozeroprefix(s),
        Linter::Packagetype => packagetype(s),
        Linter::Pcenc => pcenc(s),
        Linter::Pieceoftotal => pieceoftotal(s),
        Linter::Posinseqslash => posinseqslash(s),
        Linter::Ss => minute(s, 0, "second"),
        Linter::Winding => one_of(s, &["0", "1", "9"], "winding direction must be 0, 1 or 9"),
        Linter::Yesno => one_of(s, &["0", "1"], "must be 0 (no) or 1 (yes)"),
        Linter::Yymmd0 => yymmdd(s, today, true).map(|_| ()),
        Linter::Yymmdd => yymmdd(s, today, false).map(|_| ()),
        Linter::Yyyymmdd => yyyymmdd(s).map(|_| ()),
        Linter::Zero => one_of(s, &["0"], "must be 0"),
    }
}

/// The date a date linter reads from a valid component, and whether its day was 00.
pub fn date_of(linter: Linter, s: &[u8], today: Date) -> Option<(Date, bool)> {
    match linter {
        Linter::Yymmd0 => yymmdd(s, today, true).ok(),
        Linter::Yymmdd => yymmdd(s, today, false).ok(),
        Linter::Yyyymmdd => yyyymmdd(s).ok().map(|d| (d, false)),
        _ => None,
    }
}

fn text(s: &[u8]) -> String {
    crate::error::escape(s)
}

fn invalid(at: usize, message: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::InvalidValue, at, message)
}

/// Decimal value of an all-digit slice (at most 19 digits).
fn number(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
    })
}

fn one_of(s: &[u8], allowed: &[&str], message: &str) -> Result<(), Problem> {
    if allowed.iter().any(|a| a.as_bytes() == s) {
        Ok(())
    } else {
        Err(invalid(0, format!("{message}, not {}", text(s))))
    }
}

/// GS1 mod-10 check digit over the whole component.
fn csum(s: &[u8]) -> Result<(), Problem> {
    let Some((&got, body)) = s.split_last() else {
        return Err(Problem::new(ErrorKind::TooShort, 0, "no check digit"));
    };
    let want = gs1_mod10(body)
        .ok_or_else(|| Problem::new(ErrorKind::InvalidCharacter, 0, "digits only"))?;
    if got == want {
        Ok(())
    } else {
        Err(Problem::new(
            ErrorKind::CheckDigit,
            s.len() - 1,
            format!(
                "check digit is {}, expected {}",
                char::from(got),
                char::from(want)
            ),
        ))
    }
}

/// The alphanumeric check character pair of GMN and MUDI (GS1 General Specifications, "check
/// character calculation for alphanumeric keys"): each data character's position in CSET 82
/// is weighted by the primes 2, 3, 5, … from right to left; the sum modulo 1021 is written as
/// two characters of CSET 32, high five bits first.
fn csumalpha(s: &[u8]) -> Result<(), Problem> {
    const PRIMES: [u32; 97] = [
        2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181,
        191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281,
        283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397,
        401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503,
        509,
    ];
    const CSET32: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    if s.len() < 2 {
        return Err(Problem::new(
            ErrorKind::TooShort,
            0,
            "too short for its two check characters",
        ));
    }
    let split = s.len() - 2;
    let (data, pair) = s.split_at(split);
    if data.len() > PRIMES.len() {
        return Err(invalid(0, "too long for the check character pair"));
    }
    let mut sum: u32 = 0;
    for (&b, &weight) in data.iter().rev().zip(PRIMES.iter()) {
        let value = cset82_value(b).ok_or_else(|| {
            Problem::new(
                ErrorKind::InvalidCharacter,
                0,
                format!("{} is not in GS1 character set 82", show_byte(b)),
            )
        })?;
        sum = (sum + value * weight) % 1021;
    }
    let hi = CSET32.get((sum >> 5) as usize).copied().unwrap_or(b'?');
    let lo = CSET32.get((sum & 31) as usize).copied().unwrap_or(b'?');
    if pair == [hi, lo] {
        Ok(())
    } else {
        Err(Problem::new(
            ErrorKind::CheckDigit,
            split,
            format!(
                "check characters are {}, expected {}{}",
                text(pair),
                char::from(hi),
                char::from(lo)
            ),
        ))
    }
}

/// Position of a character in GS1 character set 82 (`!` = 0 … `z` = 81).
fn cset82_value(b: u8) -> Option<u32> {
    if !is_cset82(b) {
        return None;
    }
    let below = (0..b).filter(|&c| is_cset82(c)).count();
    u32::try_from(below).ok()
}

/// The component starts (at `start`) with a GS1 Company Prefix: at least its shortest length,
/// four digits. Without a list of allocated prefixes that is all that can be checked.
fn gcp_at(s: &[u8], start: usize) -> Result<(), Problem> {
    const GCP_MIN: usize = 4;
    let gcp = s.get(start..start + GCP_MIN).ok_or_else(|| {
        Problem::new(
            ErrorKind::TooShort,
            0,
            "too short to hold a GS1 Company Prefix",
        )
    })?;
    match gcp.iter().position(|b| !b.is_ascii_digit()) {
        Some(i) => Err(invalid(
            start + i,
            "must start with a GS1 Company Prefix (digits)",
        )),
        None => Ok(()),
    }
}

fn hasnondigit(s: &[u8]) -> Result<(), Problem> {
    if s.iter().all(u8::is_ascii_digit) {
        Err(invalid(
            0,
            "must contain at least one character that is not a digit",
        ))
    } else {
        Ok(())
    }
}

fn two_digits(s: &[u8], at: usize) -> Option<u8> {
    let p = s.get(at..at + 2)?;
    if !p.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((p.first()? - b'0') * 10 + (p.get(1)? - b'0'))
}

fn bad_date(at: usize, message: impl Into<String>) -> Problem {
    Problem::new(ErrorKind::InvalidDate, at, message)
}

fn hour(s: &[u8], at: usize) -> Result<(), Problem> {
    match two_digits(s, at) {
        Some(h) if h <= 23 => Ok(()),
        _ => Err(bad_date(
            at,
            format!(
                "hour {} does not exist",
                text(s.get(at..at + 2).unwrap_or(s))
            ),
        )),
    }
}

fn minute(s: &[u8], at: usize, what: &str) -> Result<(), Problem> {
    match two_digits(s, at) {
        Some(m) if m <= 59 => Ok(()),
        _ => Err(bad_date(
            at,
            format!(
                "{what} {} does not exist",
                text(s.get(at..at + 2).unwrap_or(s))
            ),
        )),
    }
}

/// `YYMMDD` with the GS1 century rule; with `day_zero`, DD = 00 is the last day of the month.
fn yymmdd(s: &[u8], today: Date, day_zero: bool) -> Result<(Date, bool), Problem> {
    let (Some(yy), Some(mm), Some(dd)) = (two_digits(s, 0), two_digits(s, 2), two_digits(s, 4))
    else {
        return Err(bad_date(0, format!("{} is not a YYMMDD date", text(s))));
    };
    if s.len() != 6 {
        return Err(bad_date(0, format!("{} is not a YYMMDD date", text(s))));
    }
    let year = Date::gs1_century(yy, today);
    if !(1..=12).contains(&mm) {
        return Err(bad_date(2, format!("month {mm:02} does not exist")));
    }
    if dd == 0 {
        if !day_zero {
            return Err(bad_date(4, "day 00 is not allowed in this date"));
        }
        return Date::last_of_month(year, mm)
            .map(|d| (d, true))
            .ok_or_else(|| bad_date(0, "date out of range"));
    }
    Date::new(year, mm, dd).map(|d| (d, false)).ok_or_else(|| {
        bad_date(
            4,
            format!(
                "day {dd:02} does not exist in {year:04}-{mm:02} (the month has {} days)",
                days_in_month(year, mm)
            ),
        )
    })
}

fn yyyymmdd(s: &[u8]) -> Result<Date, Problem> {
    let (Some(y), Some(mm), Some(dd)) = (
        number(s.get(..4).unwrap_or_default()),
        two_digits(s, 4),
        two_digits(s, 6),
    ) else {
        return Err(bad_date(0, format!("{} is not a YYYYMMDD date", text(s))));
    };
    let year = u16::try_from(y).unwrap_or(0);
    if year == 0 || s.len() != 8 {
        return Err(bad_date(0, format!("{} is not a YYYYMMDD date", text(s))));
    }
    if !(1..=12).contains(&mm) {
        return Err(bad_date(4, format!("month {mm:02} does not exist")));
    }
    Date::new(year, mm, dd).ok_or_else(|| {
        bad_date(
            6,
            format!("day {dd:02} does not exist in {year:04}-{mm:02}"),
        )
    })
}

/// An IBAN (ISO 13616): country code, two check digits, then up to 30 letters and digits;
/// moved to the end with letters as 10–35, the number is 1 modulo 97.
fn iban(s: &[u8]) -> Result<(), Problem> {
    if s.len() <= 4 {
        return Err(Problem::new(
            ErrorKind::TooShort,
            0,
            "too short for an IBAN",
        ));
    }
    if iso3166alpha2(s.get(..2).unwrap_or_default()).is_err() {
        return Err(invalid(
            0,
            format!(
                "IBAN country {} is not an ISO 3166 country code",
                text(s.get(..2).unwrap_or_default())
            ),
        ));
    }
    if let Some(i) = s
        .iter()
        .position(|b| !b.is_ascii_digit() && !b.is_ascii_uppercase())
    {
        return Err(Problem::new(
            ErrorKind::InvalidCharacter,
            i,
            format!(
                "{} is not allowed in an IBAN",
                show_byte(s.get(i).copied().unwrap_or(0))
            ),
        ));
    }
    let (head, tail) = s.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v < 10 {
            (rem * 10 + v) % 97
        } else {
            (rem * 100 + v) % 97
        };
    }
    if rem == 1 {
        Ok(())
    } else {
        Err(Problem::new(
            ErrorKind::CheckDigit,
            2,
            "IBAN check digits do not match",
        ))
    }
}

fn importeridx(s: &[u8]) -> Result<(), Problem> {
    match s {
        [b] if b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_' => Ok(()),
        _ => Err(invalid(
            0,
            format!("importer index {} must be one of 0-9 A-Z a-z - _", text(s)),
        )),
    }
}

/// ISO 3166-1 numeric country codes.
const ISO3166_NUMERIC: &[u16] = &[
    4, 8, 10, 12, 16, 20, 24, 28, 31, 32, 36, 40, 44, 48, 50, 51, 52, 56, 60, 64, 68, 70, 72, 74,
    76, 84, 86, 90, 92, 96, 100, 104, 108, 112, 116, 120, 124, 132, 136, 140, 144, 148, 152, 156,
    158, 162, 166, 170, 174, 175, 178, 180, 184, 188, 191, 192, 196, 203, 204, 208, 212, 214, 218,
    222, 226, 231, 232, 233, 234, 238, 239, 242, 246, 248, 250, 254, 258, 260, 262, 266, 268, 270,
    275, 276, 288, 292, 296, 300, 304, 308, 312, 316, 320, 324, 328, 332, 334, 336, 340, 344, 348,
    352, 356, 360, 364, 368, 372, 376, 380, 384, 388, 392, 398, 400, 404, 408, 410, 414, 417, 418,
    422, 426, 428, 430, 434, 438, 440, 442, 446, 450, 454, 458, 462, 466, 470, 474, 478, 480, 484,
    492, 496, 498, 499, 500, 504, 508, 512, 516, 520, 524, 528, 531, 533, 534, 535, 540, 548, 554,
    558, 562, 566, 570, 574, 578, 580, 581, 583, 584, 585, 586, 591, 598, 600, 604, 608, 612, 616,
    620, 624, 626, 630, 634, 638, 642, 643, 646, 652, 654, 659, 660, 662, 663, 666, 670, 674, 678,
    682, 686, 688, 690, 694, 702, 703, 704, 705, 706, 710, 716, 724, 728, 729, 732, 740, 744, 748,
    752, 756, 760, 762, 764, 768, 772, 776, 780, 784, 788, 792, 795, 796, 798, 800, 804, 807, 818,
    826, 831, 832, 833, 834, 840, 850, 854, 858, 860, 862, 876, 882, 887, 894,
];

/// ISO 4217 numeric currency codes (including funds and precious-metal codes).
const ISO4217_NUMERIC: &[u16] = &[
    8, 12, 32, 36, 44, 48, 50, 51, 52, 60, 64, 68, 72, 84, 90, 96, 104, 108, 116, 124, 132, 136,
    144, 152, 156, 170, 174, 188, 191, 192, 203, 208, 214, 222, 230, 232, 238, 242, 262, 270, 292,
    320, 324, 328, 332, 340, 344, 348, 352, 356, 360, 364, 368, 376, 388, 392, 398, 400, 404, 408,
    410, 414, 417, 418, 422, 426, 430, 434, 446, 454, 458, 462, 480, 484, 496, 498, 504, 512, 516,
    524, 532, 533, 548, 554, 558, 566, 578, 586, 590, 598, 600, 604, 608, 634, 643, 646, 654, 682,
    690, 694, 702, 704, 706, 710, 728, 748, 752, 756, 760, 764, 776, 780, 784, 788, 800, 807, 818,
    826, 834, 840, 858, 860, 882, 886, 901, 924, 925, 927, 928, 929, 930, 931, 932, 933, 934, 936,
    938, 940, 941, 943, 944, 946, 947, 948, 949, 950, 951, 952, 953, 955, 956, 957, 958, 959, 960,
    961, 962, 963, 964, 965, 967, 968, 969, 970, 971, 972, 973, 975, 976, 977, 978, 979, 980, 981,
    984, 985, 986, 990, 994, 997, 999,
];

/// ISO 3166-1 alpha-2 country codes.
const ISO3166_ALPHA2: &[&str] = &[
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// The GS1 PackageTypeCode list: UN/ECE Recommendation 21 codes plus GS1 additions.
const PACKAGE_TYPES: &[&str] = &[
    "1A", "1B", "1D", "1F", "1G", "1W", "200", "201", "202", "203", "204", "205", "206", "210",
    "211", "212", "2C", "3A", "3H", "43", "44", "4A", "4B", "4C", "4D", "4F", "4G", "4H", "5H",
    "5L", "5M", "6H", "6P", "7A", "7B", "8", "8A", "8B", "8C", "9", "AA", "AB", "AC", "AD", "AF",
    "AG", "AH", "AI", "AJ", "AL", "AM", "AP", "APE", "AT", "AV", "B4", "BB", "BC", "BD", "BE",
    "BF", "BG", "BGE", "BH", "BI", "BJ", "BK", "BL", "BM", "BME", "BN", "BO", "BP", "BQ", "BR",
    "BRI", "BS", "BT", "BU", "BV", "BW", "BX", "BY", "BZ", "CA", "CB", "CBL", "CC", "CCE", "CD",
    "CE", "CF", "CG", "CH", "CI", "CJ", "CK", "CL", "CM", "CN", "CO", "CP", "CQ", "CR", "CS", "CT",
    "CU", "CV", "CW", "CX", "CY", "CZ", "DA", "DB", "DC", "DG", "DH", "DI", "DJ", "DK", "DL", "DM",
    "DN", "DP", "DPE", "DR", "DS", "DT", "DU", "DV", "DW", "DX", "DY", "E1", "E2", "E3", "EC",
    "ED", "EE", "EF", "EG", "EH", "EI", "EN", "FB", "FC", "FD", "FE", "FI", "FL", "FO", "FOB",
    "FP", "FPE", "FR", "FT", "FW", "FX", "GB", "GI", "GL", "GR", "GU", "GY", "GZ", "HA", "HB",
    "HC", "HG", "HN", "HR", "IA", "IB", "IC", "ID", "IE", "IF", "IG", "IH", "IK", "IL", "IN", "IZ",
    "JB", "JC", "JG", "JR", "JT", "JY", "KG", "KI", "LAB", "LE", "LG", "LT", "LU", "LV", "LZ",
    "MA", "MB", "MC", "ME", "MPE", "MR", "MS", "MT", "MW", "MX", "NA", "NE", "NF", "NG", "NS",
    "NT", "NU", "NV", "OA", "OB", "OC", "OD", "OE", "OF", "OK", "OPE", "OT", "OU", "P2", "PA",
    "PAE", "PB", "PC", "PD", "PE", "PF", "PG", "PH", "PI", "PJ", "PK", "PL", "PLP", "PN", "PO",
    "POP", "PP", "PPE", "PR", "PT", "PU", "PUE", "PV", "PX", "PY", "PZ", "QA", "QB", "QC", "QD",
    "QF", "QG", "QH", "QJ", "QK", "QL", "QM", "QN", "QP", "QQ", "QR", "QS", "RB1", "RB2", "RB3",
    "RCB", "RD", "RG", "RJ", "RK", "RL", "RO", "RT", "RZ", "S1", "SA", "SB", "SC", "SD", "SE",
    "SEC", "SH", "SI", "SK", "SL", "SM", "SO", "SP", "SS", "ST", "STL", "SU", "SV", "SW", "SX",
    "SY", "SZ", "T1", "TB", "TC", "TD", "TE", "TEV", "TG", "THE", "TI", "TK", "TL", "TN", "TO",
    "TR", "TRE", "TS", "TT", "TTE", "TU", "TV", "TW", "TWE", "TY", "TZ", "UC", "UN", "UUE", "VA",
    "VG", "VI", "VK", "VL", "VN", "VO", "VP", "VQ", "VR", "VS", "VY", "WA", "WB", "WC", "WD", "WF",
    "WG", "WH", "WJ", "WK", "WL", "WM", "WN", "WP", "WQ", "WR", "WRP", "WS", "WT", "WU", "WV",
    "WW", "WX", "WY", "WZ", "X11", "X12", "X15", "X16", "X17", "X18", "X19", "X20", "X3", "XA",
    "XB", "XC", "XD", "XF", "XG", "XH", "XJ", "XK", "YA", "YB", "YC", "YD", "YF", "YG", "YH", "YJ",
    "YK", "YL", "YM", "YN", "YP", "YQ", "YR", "YS", "YT", "YV", "YW", "YX", "YY", "YZ", "ZA", "ZB",
    "ZC", "ZD", "ZF", "ZG", "ZH", "ZJ", "ZK", "ZL", "ZM", "ZN", "ZP", "ZQ", "ZR", "ZS", "ZT", "ZU",
    "ZV", "ZW", "ZX", "ZY", "ZZ",
];

fn three_digit_code(s: &[u8]) -> Option<u16> {
    if s.len() != 3 {
        return None;
    }
    number(s).and_then(|n| u16::try_from(n).ok())
}

fn iso3166(s: &[u8], allow_999: bool) -> Result<(), Problem> {
    match three_digit_code(s) {
        Some(999) if allow_999 => Ok(()),
        Some(n) if ISO3166_NUMERIC.binary_search(&n).is_ok() => Ok(()),
        _ => Err(invalid(
            0,
            format!("{} is not an ISO 3166 country code", text(s)),
        )),
    }
}

fn iso3166alpha2(s: &[u8]) -> Result<(), Problem> {
    let found = std::str::from_utf8(s)
        .ok()
        .is_some_and(|c| ISO3166_ALPHA2.binary_search(&c).is_ok());
    if found {
        Ok(())
    } else {
        Err(invalid(
            0,
            format!("{} is not an ISO 3166 alpha-2 country code", text(s)),
        ))
    }
}

fn iso4217(s: &[u8]) -> Result<(), Problem> {
    match three_digit_code(s) {
        Some(n) if ISO4217_NUMERIC.binary_search(&n).is_ok() => Ok(()),
        _ => Err(invalid(
            0,
            format!("{} is not an ISO 4217 currency code", text(s)),
        )),
    }
}

fn packagetype(s: &[u8]) -> Result<(), Problem> {
    let found = std::str::from_utf8(s)
        .ok()
        .is_some_and(|c| PACKAGE_TYPES.binary_search(&c).is_ok());
    if found {
        Ok(())
    } else {
        Err(invalid(
            0,
            format!("{} is not a GS1 package type code", text(s)),
        ))
    }
}

/// Latitude (offset by 90°) or longitude (offset by 180°) in ten-millionths of a degree.
fn degrees(s: &[u8], max: u64, what: &str) -> Result<(), Problem> {
    match number(s) {
        Some(n) if n <= max => Ok(()),
        _ => Err(invalid(0, format!("{what} {} is out of range", text(s)))),
    }
}

/// AIDC media types: 01–10 (ICCBBA) and 80–99 (local use).
fn mediatype(s: &[u8]) -> Result<(), Problem> {
    match two_digits(s, 0) {
        Some(n) if s.len() == 2 && ((1..=10).contains(&n) || (80..=99).contains(&n)) => Ok(()),
        _ => Err(invalid(0, format!("{} is not an AIDC media type", text(s)))),
    }
}

fn nonzero(s: &[u8]) -> Result<(), Problem> {
    if s.iter().all(|&b| b == b'0') {
        Err(invalid(0, "must not be zero"))
    } else {
        Ok(())
    }
}

fn nozeroprefix(s: &[u8]) -> Result<(), Problem> {
    if s.len() > 1 && s.first() == Some(&b'0') {
        Err(invalid(0, "must not start with a zero"))
    } else {
        Ok(())
    }
}

/// Every `%` starts a two-hex-digit escape.
fn pcenc(s: &[u8]) -> Result<(), Problem> {
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let ok = s
                .get(i + 1..i + 3)
                .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit));
            if !ok {
                return Err(invalid(i, "'%' must be followed by two hex digits"));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

/// `PPTT`: piece number PP of TT pieces, both from 01, PP ≤ TT.
fn pieceoftotal(s: &[u8]) -> Result<(), Problem> {
    match (two_digits(s, 0), two_digits(s, 2)) {
        (Some(p), Some(t)) if s.len() == 4 && p >= 1 && t >= 1 && p <= t => Ok(()),
        _ => Err(invalid(
            0,
            format!(
                "piece {} must be from 01 up to the total number of pieces",
                text(s)
            ),
        )),
    }
}

/// `pos/end`, both numbers without leading zeros, pos ≤ end.
fn posinseqslash(s: &[u8]) -> Result<(), Problem> {
    let malformed = || invalid(0, format!("{} is not a position such as 1/3", text(s)));
    let slash = s.iter().position(|&b| b == b'/').ok_or_else(malformed)?;
    let (pos, end) = (
        s.get(..slash).unwrap_or_default(),
        s.get(slash + 1..).unwrap_or_default(),
    );
    if pos.is_empty()
        || end.is_empty()
        || !pos.iter().all(u8::is_ascii_digit)
        || !end.iter().all(u8::is_ascii_digit)
    {
        return Err(malformed());
    }
    if pos.first() == Some(&b'0') {
        return Err(invalid(0, "position must not be zero or start with a zero"));
    }
    if end.first() == Some(&b'0') {
        return Err(invalid(
            slash + 1,
            "total must not be zero or start with a zero",
        ));
    }
    if (pos.len(), pos) > (end.len(), end) {
        return Err(invalid(0, "position is beyond the total"));
    }
    Ok(())
}

/// Reads the fields of a North American coupon code one by one.
struct Fields<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> Fields<'a> {
    fn done(&self) -> bool {
        self.at >= self.s.len()
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    /// One digit, which must be in `allowed`.
    fn digit(&mut self, what: &str, allowed: &[u8]) -> Result<u8, Problem> {
        let Some(d) = self.peek() else {
            return Err(Problem::new(
                ErrorKind::TooShort,
                self.at,
                format!("coupon ends before its {what}"),
            ));
        };
        if !allowed.contains(&d) {
            return Err(invalid(
                self.at,
                format!("coupon {what} {} is not allowed", char::from(d)),
            ));
        }
        self.at += 1;
        Ok(d - b'0')
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Problem> {
        let part = self.s.get(self.at..self.at + n).ok_or_else(|| {
            Problem::new(
                ErrorKind::TooShort,
                self.at,
                format!("coupon {what} is cut short"),
            )
        })?;
        self.at += n;
        Ok(part)
    }

    /// A company prefix of `vli + 6` digits.
    fn gcp(&mut self, vli: u8, what: &str) -> Result<(), Problem> {
        let start = self.at;
        let part = self.take(usize::from(vli) + 6, what)?;
        gcp_at(part, 0).map_err(|p| Problem::new(p.kind, start + p.at, p.message))
    }
}

const D0_TO_6: &[u8] = b"0123456";
const D1_TO_5: &[u8] = b"12345";
const DIGITS: &[u8] = b"0123456789";
const REQUIREMENT_CODES: &[u8] = b"012349";

/// AI (8110): the North American Coupon Code.
fn couponcode(s: &[u8], today: Date) -> Result<(), Problem> {
    if let Some(i) = s.iter().position(|b| !b.is_ascii_digit()) {
        return Err(Problem::new(ErrorKind::InvalidCharacter, i, "digits only"));
    }
    let mut f = Fields { s, at: 0 };
    let vli = f.digit("company prefix length", D0_TO_6)?;
    f.gcp(vli, "company prefix")?;
    f.take(6, "offer code")?;
    let vli = f.digit("save value length", D1_TO_5)?;
    f.take(usize::from(vli), "save value")?;
    let vli = f.digit("purchase requirement length", D1_TO_5)?;
    f.take(usize::from(vli), "purchase requirement")?;
    f.digit("purchase requirement code", REQUIREMENT_CODES)?;
    f.take(3, "family code")?;
    if f.peek() == Some(b'1') {
        f.at += 1;
        f.digit("additional purchase rules code", b"0123")?;
        let vli = f.digit("second purchase requirement length", D1_TO_5)?;
        f.take(usize::from(vli), "second purchase requirement")?;
        f.digit("second purchase requirement code", REQUIREMENT_CODES)?;
        f.take(3, "second family code")?;
        let vli = f.digit("second company prefix length", b"01234569")?;
        if vli != 9 {
            f.gcp(vli, "second company prefix")?;
        }
    }
    if f.peek() == Some(b'2') {
        f.at += 1;
        let vli = f.digit("third purchase requirement length", D1_TO_5)?;
        f.take(usize::from(vli), "third purchase requirement")?;
        f.digit("third purchase requirement code", REQUIREMENT_CODES)?;
        f.take(3, "third family code")?;
        let vli = f.digit("third company prefix length", b"01234569")?;
        if vli != 9 {
            f.gcp(vli, "third company prefix")?;
        }
    }
    let mut expiry = None;
    if f.peek() == Some(b'3') {
        f.at += 1;
        let start = f.at;
        let d = f.take(6, "expiration date")?;
        let (date, _) = yymmdd(d, today, false).map_err(|p| bad_date(start + p.at, p.message))?;
        expiry = Some(date);
    }
    if f.peek() == Some(b'4') {
        f.at += 1;
        let start = f.at;
        let d = f.take(6, "start date")?;
        let (date, _) = yymmdd(d, today, false).map_err(|p| bad_date(start + p.at, p.message))?;
        if expiry.is_some_and(|e| e < date) {
            return Err(bad_date(start, "coupon expires before it starts"));
        }
    }
    if f.peek() == Some(b'5') {
        f.at += 1;
        let vli = f.digit("serial number length", DIGITS)?;
        f.take(usize::from(vli) + 6, "serial number")?;
    }
    if f.peek() == Some(b'6') {
        f.at += 1;
        let vli = f.digit("retailer company prefix length", b"1234567")?;
        f.gcp(vli, "retailer company prefix or GLN")?;
    }
    if f.peek() == Some(b'9') {
        f.at += 1;
        f.digit("save value code", b"01256")?;
        f.digit("save value applies-to-item code", b"012")?;
        f.digit("store coupon flag", DIGITS)?;
        f.digit("don't multiply flag", b"01")?;
    }
    if !f.done() {
        return Err(Problem::new(
            ErrorKind::TooLong,
            f.at,
            "coupon has data after its last field",
        ));
    }
    Ok(())
}

/// AI (8112): the positive offer file coupon code.
fn couponposoffer(s: &[u8]) -> Result<(), Problem> {
    if let Some(i) = s.iter().position(|b| !b.is_ascii_digit()) {
        return Err(Problem::new(ErrorKind::InvalidCharacter, i, "digits only"));
    }
    let mut f = Fields { s, at: 0 };
    f.digit("format code", b"01")?;
    let vli = f.digit("funder ID length", D0_TO_6)?;
    f.take(usize::from(vli) + 6, "funder ID")?;
    f.take(6, "offer code")?;
    let vli = f.digit("serial number length", DIGITS)?;
    f.take(usize::from(vli) + 6, "serial number")?;
    if !f.done() {
        return Err(Problem::new(
            ErrorKind::TooLong,
            f.at,
            "coupon has data after its serial number",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2026, 11, 24).unwrap()
    }

    fn ok(l: Linter, s: &str) -> bool {
        check(l, s.as_bytes(), today()).is_ok()
    }

    #[test]
    fn code_lists_are_sorted() {
        assert!(ISO3166_NUMERIC.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO4217_NUMERIC.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert!(PACKAGE_TYPES.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(ISO3166_ALPHA2.len(), 249);
    }

    #[test]
    fn mod10() {
        assert!(ok(Linter::Csum, "09501101020917"));
        let p = check(Linter::Csum, b"09501101020918", today()).unwrap_err();
        assert_eq!((p.kind, p.at), (ErrorKind::CheckDigit, 13));
        assert_eq!(p.message, "check digit is 8, expected 7");
    }

    #[test]
    fn alphanumeric_check_pair() {
        for good in [
            "1987654Ad4X4bL5ttr2310c2K",
            "12345678901234567890123NT",
            "12345_ABCDEFGHIJKLMCP",
            "12345_abcdefghijklmN3",
            "12345_!\"%&'()*+,-./LC",
            "12345_0123456789:;<=>?62",
            "7907665Bm8v2AB",
            "00000!HV",
            "22",
        ] {
            assert!(ok(Linter::Csumalpha, good), "{good}");
        }
        let p = check(Linter::Csumalpha, b"1987654Ad4X4bL5ttr2310cXK", today()).unwrap_err();
        assert_eq!((p.kind, p.at), (ErrorKind::CheckDigit, 23));
        assert!(p.message.ends_with("expected 2K"), "{}", p.message);
        assert!(!ok(Linter::Csumalpha, "33"));
        assert!(!ok(Linter::Csumalpha, "2"));
    }

    #[test]
    fn company_prefix_positions() {
        assert!(ok(Linter::Gcppos1, "1234A"));
        assert!(!ok(Linter::Gcppos1, "123A"));
        assert!(!ok(Linter::Gcppos1, "123"));
        assert!(ok(Linter::Gcppos2, "A1234"));
        assert!(!ok(Linter::Gcppos2, "1A234"));
    }

    #[test]
    fn dates_and_times() {
        assert!(ok(Linter::Yymmd0, "270200"));
        assert!(ok(Linter::Yymmd0, "280229"));
        assert!(!ok(Linter::Yymmd0, "270229"));
        assert!(!ok(Linter::Yymmd0, "271301"));
        assert!(!ok(Linter::Yymmd0, "270431"));
        assert!(!ok(Linter::Yymmdd, "270200"));
        assert!(ok(Linter::Yyyymmdd, "20000229"));
        assert!(!ok(Linter::Yyyymmdd, "19000229"));
        assert!(!ok(Linter::Yyyymmdd, "00000101"));
        assert_eq!(
            date_of(Linter::Yymmd0, b"280200", today()),
            Some((Date::new(2028, 2, 29).unwrap(), true))
        );
        assert!(ok(Linter::Hhmi, "2359") && !ok(Linter::Hhmi, "2400") && !ok(Linter::Hhmi, "1260"));
        assert!(ok(Linter::Hh, "00") && !ok(Linter::Hh, "24"));
        assert!(ok(Linter::Mi, "59") && !ok(Linter::Mi, "60"));
        assert!(ok(Linter::Ss, "00") && !ok(Linter::Ss, "61"));
    }

    #[test]
    fn code_lists() {
        assert!(ok(Linter::Iso3166, "250") && ok(Linter::Iso3166, "004"));
        assert!(!ok(Linter::Iso3166, "999") && !ok(Linter::Iso3166, "000"));
        assert!(ok(Linter::Iso3166999, "999") && !ok(Linter::Iso3166999, "998"));
        assert!(ok(Linter::Iso3166alpha2, "FR") && !ok(Linter::Iso3166alpha2, "XX"));
        assert!(!ok(Linter::Iso3166alpha2, "fr"));
        assert!(ok(Linter::Iso4217, "978") && ok(Linter::Iso4217, "840"));
        assert!(!ok(Linter::Iso4217, "250"));
        assert!(ok(Linter::Packagetype, "BX") && ok(Linter::Packagetype, "RB1"));
        assert!(!ok(Linter::Packagetype, "QQQ"));
        assert!(ok(Linter::Mediatype, "01") && ok(Linter::Mediatype, "99"));
        assert!(!ok(Linter::Mediatype, "00") && !ok(Linter::Mediatype, "11"));
        assert!(ok(Linter::Iso5218, "9") && !ok(Linter::Iso5218, "3"));
    }

    #[test]
    fn iban() {
        for good in [
            "FR7630006000011234567890189",
            "DE91100000000123456789",
            "GB98MIDL07009312345678",
            "BE71096123456769",
            "MU43BOMM0101123456789101000MUR",
        ] {
            assert!(ok(Linter::Iban, good), "{good}");
        }
        let p = check(Linter::Iban, b"BE71096123456760", today()).unwrap_err();
        assert_eq!((p.kind, p.at), (ErrorKind::CheckDigit, 2));
        assert!(!ok(Linter::Iban, "XX361234567890"));
        assert!(!ok(Linter::Iban, "BE71"));
        assert!(!ok(Linter::Iban, "BE71096123x56769"));
    }

    #[test]
    fn small_linters() {
        assert!(ok(Linter::Yesno, "0") && !ok(Linter::Yesno, "2"));
        assert!(ok(Linter::Zero, "0") && !ok(Linter::Zero, "1"));
        assert!(ok(Linter::Nonzero, "0010") && !ok(Linter::Nonzero, "0000"));
        assert!(ok(Linter::Winding, "9") && !ok(Linter::Winding, "2"));
        assert!(ok(Linter::Hyphen, "-") && !ok(Linter::Hyphen, "+"));
        assert!(ok(Linter::Nozeroprefix, "0") && ok(Linter::Nozeroprefix, "10"));
        assert!(!ok(Linter::Nozeroprefix, "01"));
        assert!(ok(Linter::Hasnondigit, "12A") && !ok(Linter::Hasnondigit, "123"));
        assert!(ok(Linter::Pieceoftotal, "0102") && ok(Linter::Pieceoftotal, "0202"));
        assert!(!ok(Linter::Pieceoftotal, "0302") && !ok(Linter::Pieceoftotal, "0002"));
        assert!(ok(Linter::Latitude, "1800000000") && !ok(Linter::Latitude, "1800000001"));
        assert!(ok(Linter::Longitude, "3600000000") && !ok(Linter::Longitude, "3600000001"));
        assert!(ok(Linter::Importeridx, "_") && !ok(Linter::Importeridx, "."));
        assert!(
            ok(Linter::Pcenc, "A%2FB") && !ok(Linter::Pcenc, "A%2") && !ok(Linter::Pcenc, "%G0")
        );
        for good in ["1/1", "2/3", "9/10", "100/100"] {
            assert!(ok(Linter::Posinseqslash, good), "{good}");
        }
        for bad in [
            "", "1", "1/", "/1", "0/1", "1/0", "01/2", "2/1", "10/9", "1//2", "x/y",
        ] {
            assert!(!ok(Linter::Posinseqslash, bad), "{bad}");
        }
    }

    #[test]
    fn coupons() {
        assert!(ok(Linter::Couponcode, "012345612345611110123"));
        assert!(!ok(Linter::Couponcode, "0123456123456111101234"));
        assert!(!ok(Linter::Couponcode, "71234567890123"));
        assert!(!ok(Linter::Couponcode, "a12345612345611110123"));
        // Optional field 3 (expiry 271231) and 4 (start 270101).
        assert!(ok(Linter::Couponcode, "0123456123456111101233271231"));
        assert!(ok(
            Linter::Couponcode,
            "01234561234561111012332712314270101"
        ));
        assert!(!ok(
            Linter::Couponcode,
            "01234561234561111012332701014271231"
        ));
        assert!(!ok(Linter::Couponcode, "0123456123456111101233271331"));
        // Optional field 9.
        assert!(ok(Linter::Couponcode, "01234561234561111012390011"));
        assert!(!ok(Linter::Couponcode, "01234561234561111012393011"));
        assert!(ok(Linter::Couponposoffer, "001234561234560123456"));
        assert!(ok(
            Linter::Couponposoffer,
            "061234567890121234569123456789012345"
        ));
        assert!(!ok(Linter::Couponposoffer, "201234561234560123456"));
        assert!(!ok(Linter::Couponposoffer, "0012345612345601234567"));
        assert!(!ok(Linter::Couponposoffer, "00123456123456"));
    }
}
