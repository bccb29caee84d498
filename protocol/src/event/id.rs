//! The event id: a UUIDv7 assigned at capture, the idempotency key at every destination.
//!
//! Contract: only version-7 UUIDs of the RFC 9562 variant are event ids. JSON carries the
//! hyphenated form (lowercase on output, either case on input, no braces, no `urn:uuid:`);
//! postcard carries the 16 bytes as they are. The caller supplies the time and the random bits:
//! this crate reads no clock and draws no randomness.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::{Uuid, Variant};

use super::FieldError;

/// A UUIDv7 event id. Ids made later sort after ids made earlier (to the millisecond).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(Uuid);

impl EventId {
    /// The id for an event captured at `unix_millis` (the lower 48 bits are kept), with 74 bits
    /// of `random` (the version and variant bits overwrite the rest). The caller draws
    /// `random` from a good source, or uses part of it as a monotonic counter.
    pub fn new_v7(unix_millis: u64, random: [u8; 10]) -> EventId {
        EventId(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
    }

    /// The id, if `uuid` is a version-7 UUID of the RFC 9562 variant.
    pub fn from_uuid(uuid: Uuid) -> Result<EventId, FieldError> {
        if uuid.get_version_num() != 7 || uuid.get_variant() != Variant::RFC4122 {
            return Err(FieldError::new(
                "event id",
                &uuid.hyphenated().to_string(),
                "an event id is a version 7 UUID",
            ));
        }
        Ok(EventId(uuid))
    }

    /// The id from its 16 bytes, if they are a UUIDv7.
    pub fn from_bytes(bytes: [u8; 16]) -> Result<EventId, FieldError> {
        EventId::from_uuid(Uuid::from_bytes(bytes))
    }

    /// Parse the hyphenated form `xxxxxxxx-xxxx-7xxx-[89ab]xxx-xxxxxxxxxxxx`.
    pub fn parse(s: &str) -> Result<EventId, FieldError> {
        let b = s.as_bytes();
        let hyphens_ok = b.len() == 36
            && b.iter().enumerate().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    *c == b'-'
                } else {
                    c.is_ascii_hexdigit()
                }
            });
        if !hyphens_ok {
            return Err(FieldError::new(
                "event id",
                s,
                "an event id is a UUID written as 8-4-4-4-12 hex digits",
            ));
        }
        let uuid = Uuid::try_parse(s).map_err(|_| {
            FieldError::new(
                "event id",
                s,
                "an event id is a UUID written as 8-4-4-4-12 hex digits",
            )
        })?;
        EventId::from_uuid(uuid)
    }

    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }

    pub fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// The capture time written into the id (milliseconds since the Unix epoch, 48 bits).
    pub fn unix_millis(&self) -> u64 {
        let b = self.0.as_bytes();
        b.iter()
            .take(6)
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for EventId {
    type Err = FieldError;

    fn from_str(s: &str) -> Result<EventId, FieldError> {
        EventId::parse(s)
    }
}

impl TryFrom<Uuid> for EventId {
    type Error = FieldError;

    fn try_from(u: Uuid) -> Result<EventId, FieldError> {
        EventId::from_uuid(u)
    }
}

impl From<EventId> for Uuid {
    fn from(id: EventId) -> Uuid {
        id.0
    }
}

impl Serialize for EventId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(&self.0.hyphenated())
        } else {
            // A fixed-size array: 16 bytes in postcard, with no length prefix.
            self.0.as_bytes().serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EventId, D::Error> {
        if deserializer.is_human_readable() {
            let s = String::deserialize(deserializer)?;
            EventId::parse(&s).map_err(serde::de::Error::custom)
        } else {
            let bytes = <[u8; 16]>::deserialize(deserializer)?;
            EventId::from_bytes(bytes).map_err(serde::de::Error::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_v7_from_time_and_randomness() {
        let id = EventId::new_v7(1_795_515_303_120, [0xab; 10]);
        assert_eq!(id.as_uuid().get_version_num(), 7);
        assert_eq!(id.unix_millis(), 1_795_515_303_120);
        let later = EventId::new_v7(1_795_515_303_121, [0; 10]);
        assert!(later > id);
        assert_eq!(EventId::parse(&id.to_string()).unwrap(), id);
    }

    #[test]
    fn parses_only_hyphenated_v7() {
        let ok = "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11";
        assert_eq!(EventId::parse(ok).unwrap().to_string(), ok);
        assert_eq!(EventId::parse(&ok.to_uppercase()).unwrap().to_string(), ok);
        for bad in [
            "",
            "01937f6e-7c1a-4a4e-9b1e-3c7c2d0f8a11", // v4
            "01937f6e-7c1a-7a4e-cb1e-3c7c2d0f8a11", // Microsoft variant
            "01937f6e7c1a7a4e9b1e3c7c2d0f8a11",     // simple form
            "{01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11}",
            "urn:uuid:01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11",
            "01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a1g",
            "01937f6e+7c1a-7a4e-9b1e-3c7c2d0f8a11",
            "00000000-0000-0000-0000-000000000000",
        ] {
            assert!(EventId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn postcard_form_is_the_16_bytes() {
        let id = EventId::parse("01937f6e-7c1a-7a4e-9b1e-3c7c2d0f8a11").unwrap();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(bytes.as_slice(), id.as_bytes());
        assert_eq!(postcard::from_bytes::<EventId>(&bytes).unwrap(), id);
        let v4 = Uuid::from_bytes([0x40; 16]);
        assert!(postcard::from_bytes::<EventId>(v4.as_bytes()).is_err());
    }
}
