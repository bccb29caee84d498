//! EPC reader lines and EPC hex: never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tallyman_protocol::rfid;

fuzz_target!(|data: &[u8]| {
    if let Ok((read, epc)) = rfid::decode_line(data) {
        let _ = rfid::summary(&read, &epc);
    }
    // Also straight to the EPC decoder, as hex of the raw bytes.
    let hex: String = data.iter().map(|b| format!("{b:02X}")).collect();
    if let Ok(epc) = rfid::epc::decode_hex(&hex) {
        let _ = epc.summary();
    }
});
