//! Support for tallyman's integration tests: the real binary, built once per test process.

// Test support: a failed unwrap or expect is a failed test, with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod agent;
pub mod broker;
pub mod hub;
pub mod manager;
pub mod odoo;
pub mod proxy;
pub mod pty;

use std::path::PathBuf;
use std::sync::OnceLock;

/// The shipped `tallyman` binary (package `tallyman-agent`), built by cargo on first use with
/// the same profile as the tests. Panics with cargo's message if it does not build.
///
/// `TALLYMAN_BIN`, when set, names the executable to test instead, and nothing is built: a
/// binary built elsewhere, or a wrapper that runs a cross-compiled one under an emulator
/// (`cross/test-aarch64` runs the tests against the aarch64 binary under qemu this way).
pub fn tallyman_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("TALLYMAN_BIN").filter(|v| !v.is_empty()) {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "TALLYMAN_BIN={} is not a file",
                bin.display()
            );
            return bin;
        }
        let run = escargot::CargoBuild::new()
            .package("tallyman-agent")
            .bin("tallyman")
            .current_release()
            .arg("--locked")
            .run()
            .unwrap_or_else(|e| panic!("building the tallyman binary failed: {e}"));
        run.path().to_path_buf()
    })
    .clone()
}
