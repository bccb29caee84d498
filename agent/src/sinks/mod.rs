//! Sinks: where accepted events go. Each sink reports one [`Outcome`] per event it was handed;
//! the delivery engine (`crate::delivery`) turns outcomes into cursor moves, retries and dead
//! letters. A sink never touches the spool.
//!
//! Every sink folder has the same shape: the sink type, its `deliver`, and its tests.

pub mod file;
pub mod http;
pub mod mqtt;
pub mod odoo;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tallyman_protocol::event::Event;

/// What happened to one event handed to a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The destination has it (durably, by that destination's own definition).
    Delivered,
    /// Not now: try again, after the given time if the destination said so.
    Retry {
        after: Option<Duration>,
        error: String,
    },
    /// Never: the destination refused this event for a reason that retrying cannot change.
    Rejected { reason: String },
    /// Still in flight at the sink: not settled yet. The engine stops applying the batch here
    /// and hands this event and everything after it to the sink again at once (no backoff, no
    /// attempt counted); the sink recognises what it still has in flight by event id. Only
    /// for a suffix of a batch and never for its first event (the engine treats a first
    /// `Pending` as a retry, so a sink can never make it spin).
    Pending,
    /// Not until someone acts: the destination refuses the gateway itself (its credentials or
    /// rights). The engine stops the sink (health `stopped`, with the reason) and waits for
    /// [`Sink::resumed`] before handing it this event again.
    Halt { reason: String },
}

/// A future that borrows the sink for one delivery.
pub type DeliverFuture<'a> = Pin<Box<dyn Future<Output = Vec<Outcome>> + Send + 'a>>;

/// A future that resolves when a halted sink may be tried again.
pub type ResumeFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// A destination for events.
pub trait Sink: Send {
    /// Deliver `batch` (in order). Returns exactly one outcome per event, in the same order;
    /// the engine treats a missing outcome as a retry.
    fn deliver<'a>(&'a mut self, batch: &'a [Event]) -> DeliverFuture<'a>;

    /// After a [`Outcome::Halt`]: resolves when trying again may succeed (e.g. the credentials
    /// file changed). The default never resolves: a sink that halts must say when to resume.
    fn resumed(&mut self) -> ResumeFuture<'_> {
        Box::pin(std::future::pending())
    }
}
