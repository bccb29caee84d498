//! The scan workflow: per-source state machines that turn scans into events (PRODUCT §2).
