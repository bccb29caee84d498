//! Fleet management (PRODUCT §6): what central IT does to a gateway over MQTT with signed
//! documents (`tallyman_protocol::signed`).
//!
//! * [`commands`]: signed commands on `cmd/{name}` (status, dead letters, flush, reconnect),
//!   answered on `cmd/{name}/result`; [`seen`] remembers the command ids already received.
//! * [`atomic_file`]: replacing a small file so that a crash leaves the old or the new one.

pub mod atomic_file;
pub mod commands;
pub mod seen;
