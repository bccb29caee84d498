//! AIM symbology identifiers (ISO/IEC 15424): `]` + code character + modifier.

use std::fmt;

/// A symbology identifier as the scanner sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbologyId {
    /// The code character (`C`, `d`, `Q`, `e`, `E`, `I`, `A`, `J` …).
    pub code: char,
    /// The modifier characters (one for all but `]Y`).
    pub modifier: String,
}

impl fmt::Display for SymbologyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "]{}{}", self.code, self.modifier)
    }
}
