//! Fleet management (PRODUCT §6): what central IT does to a gateway over MQTT with signed
//! documents (`tallyman_protocol::signed`), verified against the local file's
//! `[remote] trusted_keys`.
//!
//! * [`config`]: configuration pushed on `config/set`, applied by difference, committed or
//!   rolled back, reported on `config/state`; [`store`] keeps its files in `DATA_DIR/fleet`.
//! * [`commands`]: signed commands on `cmd/{name}` (status, dead letters, flush, reconnect),
//!   answered on `cmd/{name}/result`; [`seen`] remembers the command ids already received.
//! * [`atomic_file`]: replacing a small file so that a crash leaves the old or the new one.

pub mod atomic_file;
pub mod commands;
pub mod config;
pub mod seen;
pub mod store;
