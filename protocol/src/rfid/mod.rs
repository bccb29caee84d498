//! RFID: EPC Tag Data Standard decoding and the line formats RFID readers send.
//!
//! [`reader`] finds the EPC in a reader's line (and the antenna, count and RSSI it reports);
//! [`epc`] decodes the EPC's binary encoding. A read whose EPC is not a GS1 scheme this crate
//! decodes fails in [`decode_line`] with `unsupported`; callers that must never drop reads can
//! still take the hex from [`reader::parse_line`].

pub mod epc;
pub mod reader;

use crate::{DecodeError, ErrorKind, Summary};

/// PC bit 8 (0x0100): set when the EPC memory holds an ISO/IEC 15961 UII with an AFI instead of
/// a GS1 EPC.
const PC_TOGGLE: u16 = 0x0100;

/// Decode one reader line: find the EPC in it and decode the EPC. Error offsets point into
/// `line`, also for problems found in the EPC itself.
pub fn decode_line(line: &[u8]) -> Result<(reader::TagRead, epc::Epc), DecodeError> {
    let reader::Mapped {
        read,
        positions,
        pc_at,
    } = reader::parse_line_mapped(line)?;
    if let (Some(pc), Some(at)) = (read.pc, pc_at) {
        if pc & PC_TOGGLE != 0 {
            return Err(DecodeError::new(
                ErrorKind::Unsupported,
                at,
                format!("{pc:04X}").as_bytes(),
                "the PC's toggle bit says this tag carries an ISO UII, not a GS1 EPC",
            ));
        }
    }
    let epc = epc::decode_hex(&read.epc_hex).map_err(|mut e| {
        e.offset = positions
            .get(e.offset)
            .or(positions.last())
            .copied()
            .unwrap_or(0);
        e
    })?;
    Ok((read, epc))
}

/// The flat JSON view of a decoded reader line.
pub fn summary(read: &reader::TagRead, epc: &epc::Epc) -> Summary {
    Summary {
        antenna: read.antenna,
        ..epc.summary()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_point_into_the_line() {
        // Partition 7 in the second word group.
        let e = decode_line(b"  307C 257B F719 4E40 0000 1A85").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::InvalidPartition, 4));
        let e = decode_line(b"Tag:E280 1160 6000 0205 4CC2 096F, Ant:2").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::Unsupported, 4));
        let e = decode_line(b"3074 257B F719 4E40 0000 1A").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::TooShort, 27));
    }

    #[test]
    fn decodes_a_pc_prefixed_read() {
        let (read, epc) = decode_line(b"3000 3074 257B F719 4E40 0000 1A85\r\n").unwrap();
        assert_eq!(read.pc, Some(0x3000));
        assert_eq!(epc.gtin.as_deref(), Some("80614141123458"));
        assert_eq!(summary(&read, &epc).kind, "epc");
        // Toggle bit set: an ISO UII, whatever it looks like.
        let e = decode_line(b" 3100 3074 257B F719 4E40 0000 1A85").unwrap_err();
        assert_eq!((e.kind, e.offset), (ErrorKind::Unsupported, 1));
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Err(e) = decode_line(&bytes) {
                prop_assert!(e.offset <= bytes.len().max(reader::MAX_LINE_LEN));
            }
        }

        #[test]
        fn never_panics_on_mutated_reads(
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
            which in 0usize..3,
        ) {
            let lines: [&[u8]; 3] = [
                b"3074257BF7194E4000001A85",
                b"Tag:3074 257B F719 4E40 0000 1A85, Count:4, Ant:0",
                b"30003074257BF7194E4000001A85AAF9",
            ];
            let mut line = lines[which].to_vec();
            for (pos, byte) in edits {
                let i = pos % line.len();
                line[i] = byte;
            }
            let _ = decode_line(&line);
        }
    }
}
