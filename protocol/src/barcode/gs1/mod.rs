//! GS1 element strings, the bracketed human-readable form and GS1 Digital Link URIs.

use crate::Summary;

/// The form a GS1 message arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    ElementString,
    Bracketed,
    DigitalLink,
}

/// One element string: an Application Identifier and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub ai: String,
    pub value: String,
}

/// A decoded, validated GS1 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub form: Form,
    pub elements: Vec<Element>,
    pub warnings: Vec<String>,
}

impl Message {
    pub fn summary(&self) -> Summary {
        Summary {
            kind: "gs1",
            ..Summary::default()
        }
    }
}
