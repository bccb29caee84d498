//! The flat, documented JSON view of a decoded scan that `tallyman decode` prints and that
//! feedback messages carry. Each decoder fills the fields that apply to it; absent fields are
//! omitted. The field names are the contract of PRODUCT §7.

use serde::Serialize;

use crate::Date;

/// One decoded input, as JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// `gs1` (element string or bracketed form), `gs1_dl` (Digital Link URI), `gtin`, `hibc`,
    /// `isbt128` or `epc`.
    pub kind: &'static str,
    /// The AIM symbology identifier the scanner sent, such as `]d2`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symbology: Option<String>,
    /// GTIN-14 (shorter GTINs are zero-padded).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sscc: Option<String>,
    /// A location's GLN (GS1 AI 414, or an SGLN).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gln: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expiry: Option<Date>,
    /// Quantity carried by the symbol (GS1 AI 30 or 37, HIBC quantity field), as decimal text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantity: Option<String>,
    /// Every GS1 element, in symbol order: `[[ai, value], …]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ais: Option<Vec<(String, String)>>,
    /// HIBC labeler identification code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lic: Option<String>,
    /// HIBC product or catalogue number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pcn: Option<String>,
    /// HIBC unit of measure / packaging index digit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<u8>,
    /// HIBC link character of a separate secondary symbol.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// EPC scheme (`sgtin-96`, `sscc-96` …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partition: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub company_prefix: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pure_identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_uri: Option<String>,
    /// The reader antenna that saw the tag, when the reader line names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub antenna: Option<u16>,
    /// The EPC as normalised upper-case hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The data passed through unparsed (ISBT 128).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<String>,
    /// Things that are allowed but worth a look (an AI association rule not met, DD=00 …).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
