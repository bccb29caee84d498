//! Plain GTIN-8, GTIN-12, GTIN-13 and GTIN-14 (EAN/UPC/ITF-14).

use crate::Summary;

/// A GTIN with a valid check digit, as its 14-digit form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gtin {
    pub gtin14: String,
}

impl Gtin {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "gtin",
            gtin: Some(self.gtin14.clone()),
            ..Summary::default()
        }
    }
}
