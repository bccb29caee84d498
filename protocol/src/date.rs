//! A calendar date without a time zone: expiry, production and best-before dates.
//!
//! Dates in barcodes come as `YYMMDD` (GS1), `YYJJJ` (HIBC Julian) and friends; the event
//! carries them as ISO 8601 `YYYY-MM-DD`. This type is deliberately small: the product needs
//! validation, the GS1 century rule, "last day of the month" and formatting, nothing more.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A valid proleptic Gregorian date between 0001-01-01 and 9999-12-31.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

/// Why a text is not an ISO date.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ISO date (YYYY-MM-DD): {0}")]
pub struct ParseDateError(String);

impl Date {
    /// 1970-01-01.
    pub const UNIX_EPOCH: Date = Date {
        year: 1970,
        month: 1,
        day: 1,
    };

    /// The date, if it exists.
    pub fn new(year: u16, month: u8, day: u8) -> Option<Date> {
        if year == 0 || year > 9999 || !(1..=12).contains(&month) {
            return None;
        }
        if day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date { year, month, day })
    }

    /// The last day of a month (`None` for an invalid year or month).
    pub fn last_of_month(year: u16, month: u8) -> Option<Date> {
        if !(1..=12).contains(&month) {
            return None;
        }
        Date::new(year, month, days_in_month(year, month))
    }

    /// The date `ordinal` days into `year` (1 = 1 January), as HIBC Julian dates count.
    pub fn from_ordinal(year: u16, ordinal: u16) -> Option<Date> {
        let mut left = ordinal;
        if left == 0 {
            return None;
        }
        for month in 1..=12u8 {
            let len = u16::from(days_in_month(year, month));
            if left <= len {
                return Date::new(year, month, u8::try_from(left).ok()?);
            }
            left -= len;
        }
        None
    }

    /// The full year of a two-digit GS1 year, by the sliding window of the GS1 General
    /// Specifications (§7.12): a year 51–99 years ahead of `today`'s year belongs to the
    /// previous century, one 50–99 years behind to the next century, else to the current one.
    pub fn gs1_century(yy: u8, today: Date) -> u16 {
        let current = today.year;
        let century = current - current % 100;
        let diff = i32::from(yy) - i32::from(current % 100);
        let full = if (51..=99).contains(&diff) {
            i32::from(century) - 100 + i32::from(yy)
        } else if (-99..=-50).contains(&diff) {
            i32::from(century) + 100 + i32::from(yy)
        } else {
            i32::from(century) + i32::from(yy)
        };
        u16::try_from(full.clamp(1, 9999)).unwrap_or(1)
    }

    /// The date `days` days after 1970-01-01 (negative: before), if it is in range. Used by
    /// callers that read the clock; this crate never does.
    pub fn from_unix_days(days: i64) -> Option<Date> {
        // Howard Hinnant's civil_from_days.
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        Date::new(
            u16::try_from(year).ok()?,
            u8::try_from(month).ok()?,
            u8::try_from(day).ok()?,
        )
    }

    pub fn year(self) -> u16 {
        self.year
    }

    pub fn month(self) -> u8 {
        self.month
    }

    pub fn day(self) -> u8 {
        self.day
    }
}

/// Days in a month of a year (0 for an invalid month).
pub fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

impl FromStr for Date {
    type Err = ParseDateError;

    fn from_str(s: &str) -> Result<Date, ParseDateError> {
        let err = || ParseDateError(s.chars().take(40).collect());
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
            return Err(err());
        };
        let m = u8::try_from(m).map_err(|_| err())?;
        let d = u8::try_from(d).map_err(|_| err())?;
        Date::new(y, m, d).ok_or_else(err)
    }
}

impl Serialize for Date {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            (self.year, self.month, self.day).serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for Date {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        if deserializer.is_human_readable() {
            let s = String::deserialize(deserializer)?;
            s.parse().map_err(serde::de::Error::custom)
        } else {
            let (y, m, d) = <(u16, u8, u8)>::deserialize(deserializer)?;
            Date::new(y, m, d).ok_or_else(|| serde::de::Error::custom("invalid date"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_days() {
        assert!(Date::new(2028, 2, 29).is_some());
        assert!(Date::new(2027, 2, 29).is_none());
        assert!(Date::new(2000, 2, 29).is_some());
        assert!(Date::new(1900, 2, 29).is_none());
        assert!(Date::new(2026, 4, 31).is_none());
        assert!(Date::new(2026, 13, 1).is_none());
        assert_eq!(Date::last_of_month(2028, 2), Date::new(2028, 2, 29));
    }

    #[test]
    fn century_window_in_2026() {
        let today = Date::new(2026, 11, 24).unwrap();
        assert_eq!(Date::gs1_century(0, today), 2000);
        assert_eq!(Date::gs1_century(76, today), 2076);
        assert_eq!(Date::gs1_century(77, today), 1977);
        assert_eq!(Date::gs1_century(99, today), 1999);
        let late = Date::new(2080, 1, 1).unwrap();
        assert_eq!(Date::gs1_century(10, late), 2110);
    }

    #[test]
    fn unix_days() {
        assert_eq!(Date::from_unix_days(0), Date::new(1970, 1, 1));
        assert_eq!(Date::from_unix_days(20_416), Date::new(2025, 11, 24));
        assert_eq!(Date::from_unix_days(-1), Date::new(1969, 12, 31));
        assert_eq!(Date::from_unix_days(i64::MAX), None);
    }

    #[test]
    fn ordinal_dates() {
        assert_eq!(Date::from_ordinal(2024, 60), Date::new(2024, 2, 29));
        assert_eq!(Date::from_ordinal(2025, 365), Date::new(2025, 12, 31));
        assert_eq!(Date::from_ordinal(2025, 366), None);
        assert_eq!(Date::from_ordinal(2025, 0), None);
    }

    #[test]
    fn parses_and_prints_iso() {
        let d: Date = "2027-12-31".parse().unwrap();
        assert_eq!(d.to_string(), "2027-12-31");
        for bad in [
            "2027-13-01",
            "2027-1-01",
            "27-12-31",
            "2027-02-30",
            "2027-12-3x",
            "２０２７-01-01",
        ] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }
}
