//! The whole barcode path (symbology identifier, classification, aliases): never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::Date;
use tallyman_protocol::barcode::{self, DecodeOptions};

fuzz_target!(|data: &[u8]| {
    let opts = DecodeOptions {
        gs_aliases: vec![b"<GS>".to_vec(), b"~".to_vec()],
        today: Date::new(2026, 11, 24).unwrap_or(Date::UNIX_EPOCH),
    };
    if let Ok(scan) = barcode::decode(data, &opts) {
        let _ = scan.summary();
    }
});
