//! The canonical stock event (PRODUCT §3).
