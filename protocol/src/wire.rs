//! The compact postcard form of an event, inside a versioned envelope: what the spool stores
//! and what the hub receives when a sink is set to postcard.
//!
//! Contract:
//! * An envelope is one version byte, then the event in that version's encoding, and nothing
//!   after it. Version 1 ([`ENVELOPE_V1`]) is the postcard encoding of the v1 [`Event`] serde
//!   tree (postcard 1.x wire format: varints, length-prefixed strings, enum variants by
//!   position).
//! * Version 1 bytes are frozen forever: `protocol/test_data/wire/v1/` holds golden envelopes
//!   that every later build must still decode to the same event. A new encoding is a new
//!   envelope version with its own golden folder; old versions keep decoding.
//! * [`decode`] refuses an empty or oversized envelope, an unknown version, truncated or
//!   trailing bytes, and any event that is not valid (it runs the same checks as JSON). It
//!   never panics, whatever the bytes.
//! * Every valid event fits in [`MAX_ENVELOPE_SIZE`] (the worst case is proven by a test), so
//!   [`encode`] does not fail in practice; it returns a `Result` so that no panic path exists.

use crate::event::{Event, EventError, EventParts};

/// The envelope version byte of the postcard v1 event.
pub const ENVELOPE_V1: u8 = 1;

/// The largest envelope [`decode`] accepts, in bytes. The largest valid v1 event (1000 lines
/// with every text field at its maximum of 4-byte characters) takes about 940 KB.
pub const MAX_ENVELOPE_SIZE: usize = 1024 * 1024;

/// Why bytes are not an event envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the event envelope is empty")]
    Empty,
    #[error("the event envelope is {0} bytes, more than the {MAX_ENVELOPE_SIZE} allowed")]
    TooLarge(usize),
    #[error("unsupported event envelope version {0}")]
    UnsupportedVersion(u8),
    #[error("the event envelope ends in the middle of the event")]
    Truncated,
    #[error("the event envelope has {0} unexpected bytes after the event")]
    TrailingBytes(usize),
    #[error("the event envelope is malformed: {0}")]
    Malformed(postcard::Error),
    #[error("the event in the envelope is invalid: {0}")]
    Invalid(EventError),
    #[error("the event could not be encoded: {0}")]
    Encode(postcard::Error),
}

/// The v1 envelope of `event`.
pub fn encode(event: &Event) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::with_capacity(128);
    out.push(ENVELOPE_V1);
    let out = postcard::to_extend(event, out).map_err(WireError::Encode)?;
    if out.len() > MAX_ENVELOPE_SIZE {
        return Err(WireError::TooLarge(out.len()));
    }
    Ok(out)
}

/// The event in an envelope of any supported version.
pub fn decode(bytes: &[u8]) -> Result<Event, WireError> {
    if bytes.len() > MAX_ENVELOPE_SIZE {
        return Err(WireError::TooLarge(bytes.len()));
    }
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    match version {
        ENVELOPE_V1 => decode_v1(body),
        other => Err(WireError::UnsupportedVersion(other)),
    }
}

fn decode_v1(body: &[u8]) -> Result<Event, WireError> {
    // Read the parts first and validate them apart, so that a broken kind rule reports its
    // reason (postcard drops the text of errors raised inside deserialisation).
    let (parts, rest) = postcard::take_from_bytes::<EventParts>(body).map_err(|e| match e {
        postcard::Error::DeserializeUnexpectedEnd => WireError::Truncated,
        other => WireError::Malformed(other),
    })?;
    if !rest.is_empty() {
        return Err(WireError::TrailingBytes(rest.len()));
    }
    Event::from_parts(parts).map_err(WireError::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Date;
    use crate::event::*;

    fn event() -> Event {
        let header = Header {
            id: EventId::new_v7(1_795_515_303_120, [7; 10]),
            facility: FacilityId::new("north").unwrap(),
            gateway: GatewayId::new("gw-north-01").unwrap(),
            source: SourceName::new("dock-1").unwrap(),
            seq: 1,
            captured_at: Timestamp::from_unix_millis(1_795_515_303_120).unwrap(),
        };
        let line = Line::new(
            Item::Gtin(Gtin14::new("09506000134352").unwrap()),
            Quantity::new("5").unwrap(),
            Uom::new("Units").unwrap(),
        )
        .with_expiry(Date::new(2027, 12, 31).unwrap());
        Event::receipt(header, Location::new("WH/Stock").unwrap(), vec![line]).unwrap()
    }

    #[test]
    fn round_trip_and_envelope_errors() {
        let ev = event();
        let bytes = encode(&ev).unwrap();
        assert_eq!(bytes.first(), Some(&ENVELOPE_V1));
        assert_eq!(decode(&bytes).unwrap(), ev);
        assert_eq!(decode(&[]), Err(WireError::Empty));
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert_eq!(decode(&v2), Err(WireError::UnsupportedVersion(2)));
        for cut in 1..bytes.len() {
            assert_eq!(
                decode(&bytes[..cut]),
                Err(WireError::Truncated),
                "cut at {cut}"
            );
        }
        let mut long = bytes.clone();
        long.extend_from_slice(&[0, 0]);
        assert_eq!(decode(&long), Err(WireError::TrailingBytes(2)));
        let huge = vec![ENVELOPE_V1; MAX_ENVELOPE_SIZE + 1];
        assert_eq!(
            decode(&huge),
            Err(WireError::TooLarge(MAX_ENVELOPE_SIZE + 1))
        );
    }

    #[test]
    fn kind_rules_report_their_reason() {
        let mut parts = event().into_parts();
        parts.to = None;
        let mut bytes = vec![ENVELOPE_V1];
        bytes.extend(postcard::to_allocvec(&RawParts(&parts)).unwrap());
        assert_eq!(
            decode(&bytes),
            Err(WireError::Invalid(EventError::MissingLocation {
                kind: Kind::Receipt,
                field: "to"
            }))
        );
    }

    /// Serialises parts that may break the kind rules, the way `Event` would.
    struct RawParts<'a>(&'a EventParts);

    impl serde::Serialize for RawParts<'_> {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let p = self.0;
            let mut st = s.serialize_struct("Event", 13)?;
            st.serialize_field("v", &p.v)?;
            st.serialize_field("id", &p.id)?;
            st.serialize_field("facility", &p.facility)?;
            st.serialize_field("gateway", &p.gateway)?;
            st.serialize_field("source", &p.source)?;
            st.serialize_field("seq", &p.seq)?;
            st.serialize_field("captured_at", &p.captured_at)?;
            st.serialize_field("kind", &p.kind)?;
            st.serialize_field("reference", &p.reference)?;
            st.serialize_field("from", &p.from)?;
            st.serialize_field("to", &p.to)?;
            st.serialize_field("lines", &p.lines)?;
            st.serialize_field("scan", &p.scan)?;
            st.end()
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn decode_never_panics_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..512)) {
                let _ = decode(&b);
                let mut v1 = vec![ENVELOPE_V1];
                v1.extend_from_slice(&b);
                let _ = decode(&v1);
            }

            #[test]
            fn decode_never_panics_on_mutated_envelopes(
                edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)
            ) {
                let mut bytes = encode(&event()).unwrap();
                for (at, byte) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = byte;
                }
                if let Ok(ev) = decode(&bytes) {
                    // Whatever decodes is a valid event that survives a round trip.
                    prop_assert_eq!(decode(&encode(&ev).unwrap()).unwrap(), ev);
                }
            }
        }
    }
}
