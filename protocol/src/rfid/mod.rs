//! RFID: EPC Tag Data Standard decoding and the line formats RFID readers send.

pub mod epc;
pub mod reader;

use crate::{DecodeError, Summary};

/// Decode one reader line: find the EPC in it and decode the EPC.
pub fn decode_line(line: &[u8]) -> Result<(reader::TagRead, epc::Epc), DecodeError> {
    let read = reader::parse_line(line)?;
    let epc = epc::decode_hex(&read.epc_hex)?;
    Ok((read, epc))
}

/// The flat JSON view of a decoded reader line.
pub fn summary(read: &reader::TagRead, epc: &epc::Epc) -> Summary {
    let _ = read;
    epc.summary()
}
