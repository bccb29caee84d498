//! Fleet management over MQTT (PRODUCT §6): configuration pushed by central IT
//! (`config.rs`, its files in `store.rs`) and signed commands. Documents are verified with
//! `tallyman_protocol::signed` against the local file's `[remote] trusted_keys`.

pub mod config;
pub mod store;
