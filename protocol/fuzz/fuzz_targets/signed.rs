//! Signed documents from the broker: never panic on any bytes, whether they reach the
//! signature check only (arbitrary documents) or the payload decoder behind it (arbitrary
//! payloads signed by a trusted key, as a key holder could send).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::event::Timestamp;
use tallyman_protocol::signed::{self, SigningKey};

fuzz_target!(|data: &[u8]| {
    let Ok(key) = SigningKey::from_seed("fuzz", [7; 32]) else {
        return;
    };
    let anchors = [key.anchor()];
    let Ok(now) = Timestamp::parse("2026-11-24T12:00:00Z") else {
        return;
    };
    let _ = signed::verify(data, &anchors, now);
    let document = signed::sign_payload(&key, data);
    if let Ok(verified) = signed::verify(document.as_bytes(), &anchors, now) {
        let _ = verified.check_version(Some(1), Some(1));
        let _ = verified.check_command_lifetime();
    }
});
