//! The compact postcard form of an event, inside a versioned envelope.
