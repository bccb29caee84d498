//! GS1 element strings, the bracketed form and Digital Link URIs: never panic, and whatever
//! decodes must describe itself without panicking too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::Date;
use tallyman_protocol::barcode::gs1;

fuzz_target!(|data: &[u8]| {
    let today = Date::new(2026, 11, 24).unwrap_or(Date::UNIX_EPOCH);
    for parse in [gs1::parse_element_string, gs1::parse_bracketed, gs1::parse_digital_link] {
        if let Ok(m) = parse(data, today) {
            let _ = m.summary();
        }
    }
});
