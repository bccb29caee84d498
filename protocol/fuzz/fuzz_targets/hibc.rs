//! HIBC primary, secondary and concatenated symbols: never panic. Inputs are made to start
//! with `+` half of the time so the fuzzer spends its effort past the first byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::barcode::hibc;

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = hibc::parse(data) {
        let _ = h.summary();
    }
    let mut plus = Vec::with_capacity(data.len() + 1);
    plus.push(b'+');
    plus.extend_from_slice(data);
    if let Ok(h) = hibc::parse(&plus) {
        let _ = h.summary();
    }
});
