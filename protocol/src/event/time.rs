//! When an event was captured: a UTC instant with millisecond precision.
//!
//! Contract: JSON carries it as RFC 3339 in UTC with exactly three decimals and `Z`
//! (`2026-11-24T10:15:03.120Z`); input may use a numeric offset (normalised to UTC) and any
//! number of decimals (truncated to the millisecond). Postcard carries the signed count of
//! milliseconds since 1970-01-01T00:00:00Z. The range is that of [`Date`]: years 1 to 9999.
//! This module never reads the clock: the caller supplies the instant.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::FieldError;
use crate::Date;

const MS_PER_DAY: i64 = 86_400_000;

/// A UTC instant, in whole milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// 0001-01-01T00:00:00.000Z.
    pub const MIN: Timestamp = Timestamp(-62_135_596_800_000);
    /// 9999-12-31T23:59:59.999Z.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// The instant `millis` milliseconds after 1970-01-01T00:00:00Z, if it lies between
    /// [`Timestamp::MIN`] and [`Timestamp::MAX`].
    pub fn from_unix_millis(millis: i64) -> Option<Timestamp> {
        (Self::MIN.0..=Self::MAX.0)
            .contains(&millis)
            .then_some(Timestamp(millis))
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub fn unix_millis(self) -> i64 {
        self.0
    }

    /// The UTC calendar date of this instant.
    pub fn date(self) -> Date {
        // In range by construction; the fallback is never taken.
        Date::from_unix_days(self.0.div_euclid(MS_PER_DAY)).unwrap_or(Date::UNIX_EPOCH)
    }

    /// Parse RFC 3339: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, `T` and `Z` in either case.
    pub fn parse(s: &str) -> Result<Timestamp, FieldError> {
        parse_rfc3339(s).map_err(|m| FieldError::new("timestamp", s, m))
    }
}

/// Days from 1970-01-01 to a civil date (the inverse of [`Date::from_unix_days`]), after
/// Howard Hinnant's `days_from_civil`.
fn days_from_civil(date: Date) -> i64 {
    let m = i64::from(date.month());
    let d = i64::from(date.day());
    let y = i64::from(date.year()) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const SHAPE: &str = "a timestamp is RFC 3339, such as 2026-11-24T10:15:03.120Z";

fn parse_rfc3339(s: &str) -> Result<Timestamp, String> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let at = |i: usize| b.get(i).copied();
    let shape_ok = at(4) == Some(b'-')
        && at(7) == Some(b'-')
        && matches!(at(10), Some(b'T' | b't'))
        && at(13) == Some(b':')
        && at(16) == Some(b':');
    let (Some(year), Some(month), Some(day), Some(hour), Some(min), Some(sec), true) = (
        num(0, 4),
        num(5, 2),
        num(8, 2),
        num(11, 2),
        num(14, 2),
        num(17, 2),
        shape_ok,
    ) else {
        return Err(SHAPE.into());
    };
    let date = u16::try_from(year)
        .ok()
        .zip(u8::try_from(month).ok())
        .zip(u8::try_from(day).ok())
        .and_then(|((y, m), d)| Date::new(y, m, d))
        .ok_or_else(|| format!("{} is not a date", s.get(..10).unwrap_or_default()))?;
    if hour > 23 || min > 59 || sec > 59 {
        return Err(format!(
            "{} is not a time of day (leap seconds are not accepted)",
            s.get(11..19).unwrap_or_default()
        ));
    }
    // Fraction: any number of digits, truncated to milliseconds.
    let mut i = 19;
    let mut millis = 0i64;
    if at(i) == Some(b'.') {
        i += 1;
        let start = i;
        while let Some(c) = at(i).filter(u8::is_ascii_digit) {
            if i - start < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
            i += 1;
        }
        if i == start {
            return Err("a timestamp's fraction of a second needs digits after the `.`".into());
        }
        for _ in (i - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match at(i) {
        Some(b'Z' | b'z') => {
            i += 1;
            0
        }
        Some(sign @ (b'+' | b'-')) => {
            let (Some(oh), Some(om), Some(b':')) = (num(i + 1, 2), num(i + 4, 2), at(i + 3)) else {
                return Err("a time zone offset is written +HH:MM or -HH:MM".into());
            };
            if oh > 23 || om > 59 {
                return Err("a time zone offset is at most 23:59".into());
            }
            i += 6;
            let m = oh * 60 + om;
            if sign == b'-' { -m } else { m }
        }
        _ => {
            return Err("a timestamp needs a time zone: Z or an offset such as +01:00".into());
        }
    };
    if i != b.len() {
        return Err(SHAPE.into());
    }
    let local = days_from_civil(date) * MS_PER_DAY + ((hour * 60 + min) * 60 + sec) * 1000 + millis;
    Timestamp::from_unix_millis(local - offset_minutes * 60_000)
        .ok_or_else(|| "the instant is outside years 1 to 9999 in UTC".into())
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.rem_euclid(MS_PER_DAY);
        let (h, m, s, milli) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
        write!(f, "{}T{h:02}:{m:02}:{s:02}.{milli:03}Z", self.date())
    }
}

impl FromStr for Timestamp {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<Timestamp, FieldError> {
        Timestamp::parse(s)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        if deserializer.is_human_readable() {
            let s = String::deserialize(deserializer)?;
            Timestamp::parse(&s).map_err(serde::de::Error::custom)
        } else {
            let ms = i64::deserialize(deserializer)?;
            Timestamp::from_unix_millis(ms)
                .ok_or_else(|| serde::de::Error::custom("timestamp out of range"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> i64 {
        Timestamp::parse(s).unwrap().unix_millis()
    }

    #[test]
    fn formats_utc_with_milliseconds() {
        let t = Timestamp::from_unix_millis(1_795_515_303_120).unwrap();
        assert_eq!(t.to_string(), "2026-11-24T10:15:03.120Z");
        assert_eq!(
            Timestamp::from_unix_millis(0).unwrap().to_string(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::from_unix_millis(-1).unwrap().to_string(),
            "1969-12-31T23:59:59.999Z"
        );
        assert_eq!(Timestamp::MIN.to_string(), "0001-01-01T00:00:00.000Z");
        assert_eq!(Timestamp::MAX.to_string(), "9999-12-31T23:59:59.999Z");
        assert_eq!(Timestamp::from_unix_millis(Timestamp::MAX.0 + 1), None);
        assert_eq!(Timestamp::from_unix_millis(Timestamp::MIN.0 - 1), None);
        assert_eq!(Timestamp::from_unix_millis(i64::MIN), None);
    }

    #[test]
    fn parses_offsets_and_fractions() {
        let base = 1_795_515_303_120;
        assert_eq!(ts("2026-11-24T10:15:03.120Z"), base);
        assert_eq!(ts("2026-11-24t10:15:03.120z"), base);
        assert_eq!(ts("2026-11-24T10:15:03.12Z"), base);
        assert_eq!(ts("2026-11-24T10:15:03.1209999Z"), base);
        assert_eq!(ts("2026-11-24T10:15:03Z"), base - 120);
        assert_eq!(ts("2026-11-24T11:15:03.120+01:00"), base);
        assert_eq!(ts("2026-11-24T05:45:03.120-04:30"), base);
        assert_eq!(ts("2026-11-25T00:15:03.120+14:00"), base);
        assert_eq!(ts("2026-11-24T10:15:03.120-00:00"), base);
        assert_eq!(
            ts("2028-02-29T00:00:00Z") - ts("2028-02-28T00:00:00Z"),
            MS_PER_DAY
        );
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for bad in [
            "",
            "2026-11-24",
            "2026-11-24T10:15:03",
            "2026-11-24T10:15:03.Z",
            "2026-11-24 10:15:03Z",
            "2026-11-24T10:15Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T10:60:00Z",
            "2026-11-24T10:15:60Z",
            "2026-02-30T10:15:03Z",
            "2026-13-01T10:15:03Z",
            "0000-01-01T00:00:00Z",
            "0001-01-01T00:30:00+01:00",
            "9999-12-31T23:59:59.999-00:01",
            "2026-11-24T10:15:03+0100",
            "2026-11-24T10:15:03+24:00",
            "2026-11-24T10:15:03Z ",
            "+2026-11-24T10:15:03Z",
            "2026-1１-24T10:15:03Z",
            "２026-11-24T10:15:03Z",
        ] {
            assert!(Timestamp::parse(bad).is_err(), "{bad:?}");
        }
        let e = Timestamp::parse("2026-02-30T10:15:03Z").unwrap_err();
        assert_eq!(e.message, "2026-02-30 is not a date");
    }

    #[test]
    fn days_from_civil_inverts_from_unix_days() {
        for days in [-719_162, -1, 0, 1, 20_416, 2_932_896] {
            let d = Date::from_unix_days(days).unwrap();
            assert_eq!(days_from_civil(d), days);
        }
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(ms in Timestamp::MIN.0..=Timestamp::MAX.0) {
            let t = Timestamp(ms);
            prop_assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}", b in proptest::collection::vec(any::<u8>(), 0..40)) {
            let _ = Timestamp::parse(&s);
            let _ = Timestamp::parse(&String::from_utf8_lossy(&b));
            let mut near = String::from("2026-11-24T10:15:03.120Z");
            near.truncate(s.len().min(near.len()));
            near.push_str(&s);
            let _ = Timestamp::parse(&near);
        }
    }
}
