//! Sources: where scans come from. Each source owns one scan state machine; it hands the
//! events a scan makes to the spool and gives the scanner its feedback only after they are
//! durable (see [`driver`]).

pub mod driver;
pub mod mqtt;
pub mod stdin;

use tallyman_protocol::event::Event;

use crate::spool::{AppendError, Spool};
use crate::workflow::{Feedback, Machine, Step};

/// Store the events of `step` and settle it with the workflow: the feedback to give.
/// *Accepted* only once every event is durable; a refusal reopens the session (the workflow's
/// contract) and says why.
pub async fn settle_machine<M: Machine + ?Sized>(
    spool: &Spool,
    workflow: &mut M,
    step: Step,
) -> Feedback {
    if step.events.is_empty() {
        return step.feedback;
    }
    match store(spool, step.events.clone()).await {
        Ok(()) => {
            workflow.committed(true);
            step.feedback
        }
        Err(why) => {
            workflow.committed(false);
            step.refused(&why)
        }
    }
}

/// Append events; Ok once all are durable.
pub async fn store(spool: &Spool, events: Vec<Event>) -> Result<(), String> {
    for event in events {
        let id = event.id();
        match spool.append(event).await {
            Ok(accepted) => {
                tracing::debug!(event_id = %id, seq = accepted.seq, "Event accepted.");
            }
            Err(AppendError::Full { .. }) => {
                tracing::warn!(event_id = %id, "Spool full: event refused at intake.");
                return Err("the gateway's storage is full".into());
            }
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "Storing an event failed.");
                return Err(format!("storing failed: {e}"));
            }
        }
    }
    Ok(())
}
