//! The protocol of tallyman: what a scan means and what an event is.
//!
//! * [`barcode`] decodes what a barcode scanner sends (GS1 element strings, the bracketed
//!   human-readable form, GS1 Digital Link URIs, plain GTINs, HIBC, ISBT 128 detection).
//! * [`rfid`] decodes EPC Tag Data Standard identifiers as RFID readers report them.
//! * [`event`] is the canonical stock event, [`wire`] its versioned postcard envelope,
//!   [`topic`] the typed MQTT topic scheme.
//! * [`signed`] is the signed document central IT pushes (configurations, commands): signing
//!   and verification (Ed25519).
//!
//! Architecture invariant: this crate does no I/O, has no async runtime, reads no clock and
//! never panics on any input. Everything that depends on "today" takes it as an argument.

pub mod barcode;
pub mod date;
pub mod error;
pub mod event;
pub mod rfid;
pub mod signed;
pub mod summary;
pub mod topic;
pub mod wire;

pub use date::Date;
pub use error::{DecodeError, ErrorKind};
pub use summary::Summary;

/// Decode one input the way `tallyman decode` does: a barcode scan, or with `rfid` an RFID
/// reader line, into its flat JSON view.
pub fn decode_to_summary(
    input: &[u8],
    opts: &barcode::DecodeOptions,
    rfid: bool,
) -> Result<Summary, DecodeError> {
    if rfid {
        let (read, epc) = rfid::decode_line(input)?;
        Ok(rfid::summary(&read, &epc))
    } else {
        barcode::decode(input, opts).map(|scan| scan.summary())
    }
}
