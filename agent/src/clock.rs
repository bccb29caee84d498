//! The agent's one window on the wall clock and the OS random generator; `protocol` takes time
//! and randomness as arguments.

use std::time::{SystemTime, UNIX_EPOCH};

use tallyman_protocol::Date;
use tallyman_protocol::event::{EventId, Timestamp};

/// Now, in milliseconds since the Unix epoch. A clock before 1970 reads as 1970.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let ms = i64::try_from(ms)
        .unwrap_or(i64::MAX)
        .min(Timestamp::MAX.unix_millis());
    Timestamp::from_unix_millis(ms).unwrap_or(Timestamp::MAX)
}

/// Today in UTC, for expiry checks and the GS1 century window.
pub fn today() -> Date {
    now().date()
}

/// A fresh UUIDv7 event id for an event captured at `at`.
pub fn new_event_id(at: Timestamp) -> EventId {
    let mut random = [0u8; 10];
    if getrandom::fill(&mut random).is_err() {
        // No OS randomness: fall back to the clock's nanoseconds and the process id. Ids stay
        // unique in practice because the millisecond timestamp leads the UUID.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let salt = u64::from(nanos) ^ (u64::from(std::process::id()) << 32);
        random[..8].copy_from_slice(&salt.to_le_bytes());
    }
    EventId::new_v7(u64::try_from(at.unix_millis()).unwrap_or(0), random)
}
