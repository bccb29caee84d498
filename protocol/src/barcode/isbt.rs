//! ISBT 128: detected and passed through raw (the standard's tables need an ICCBBA licence).
//!
//! An ISBT 128 data structure starts with a two-character data identifier: `=` or `&`
//! followed by one more character. Which second characters exist, and what follows them, is in
//! the licensed tables, so any printable non-space ASCII character is accepted there and the
//! data is not parsed further.

use crate::Summary;

/// Longest data passed through as ISBT 128. A compound message of many data structures in a
/// 2-D symbol stays far below this; anything longer is not taken for ISBT 128.
pub const MAX_ISBT_LEN: usize = 1024;

/// ISBT 128 data, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isbt128 {
    /// The data as text: printable ASCII as it is, a backslash doubled, every other byte
    /// `\xNN`.
    pub raw: String,
}

impl Isbt128 {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "isbt128",
            raw: Some(self.raw.clone()),
            ..Summary::default()
        }
    }
}

/// ISBT 128 data structures start with a data identifier `=` or `&` and a second character.
pub fn detect(data: &[u8]) -> Option<Isbt128> {
    if data.len() > MAX_ISBT_LEN {
        return None;
    }
    match (data.first(), data.get(1)) {
        (Some(b'=' | b'&'), Some(0x21..=0x7e)) => Some(Isbt128 {
            raw: crate::error::escape_bounded(data, usize::MAX),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn detects_data_identifiers() {
        let d = detect(b"=G12341765432100").unwrap();
        assert_eq!(d.raw, "=G12341765432100");
        assert_eq!(
            detect(b"=)1TE123456A&)RZ12345678").unwrap().raw,
            "=)1TE123456A&)RZ12345678"
        );
        assert_eq!(detect(b"&>0123\x1d\xff").unwrap().raw, "&>0123\\x1d\\xff");
        assert!(detect(b"=").is_none());
        assert!(detect(b"& ").is_none());
        assert!(detect(b"=\x1d1").is_none());
        assert!(detect(b"01").is_none());
        assert!(detect(b"").is_none());
        let mut long = b"=A".to_vec();
        long.resize(MAX_ISBT_LEN + 1, b'1');
        assert!(detect(&long).is_none());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
            if let Some(d) = detect(&bytes) {
                prop_assert!(d.raw.is_ascii());
            }
        }
    }
}
