//! The postcard envelope: never panic on bytes from a damaged spool, and anything that
//! decodes re-encodes to a form that decodes to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::wire;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = wire::decode(data) {
        let again = wire::encode(&event).unwrap_or_default();
        assert_eq!(wire::decode(&again).ok(), Some(event));
    }
});
