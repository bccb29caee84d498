//! The configuration of tallyman.
//!
//! This crate will hold the two-layer configuration of PRODUCT §7 (raw TOML with unknown keys
//! refused → a validated typed model) and the verification of signed remote documents. Until
//! the agent runs a pipeline it has no configuration to read; `tallyman decode` takes its few
//! options from the command line.
