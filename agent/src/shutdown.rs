//! Graceful shutdown: one signal, observed by every task; and a child signal per part, so that
//! one source or sink can be stopped while the rest keep running.
//!
//! `run` creates a [`Trigger`] and hands [`Shutdown`] clones to the tasks. When SIGTERM or
//! SIGINT arrives the trigger fires; intake stops first, sinks get until the shutdown deadline
//! to finish what is in flight, then the spool is flushed and the process exits 0.
//!
//! The supervisor gives every part a child of the agent's signal ([`Shutdown::child`]): it
//! fires when the agent stops *or* when the part's own trigger fires (the part is stopped to
//! be restarted or removed by a configuration change). A part cannot tell the two apart and
//! need not: either way it settles what it started and returns.

use tokio::sync::watch;

/// The sending side: fires once.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// The receiving side: cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown {
    own: watch::Receiver<bool>,
    /// The signal this one is a child of: it stops this one too.
    parent: Option<Box<Shutdown>>,
}

/// A new trigger and its first listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (
        Trigger(tx),
        Shutdown {
            own: rx,
            parent: None,
        },
    )
}

impl Trigger {
    pub fn fire(&self) {
        // Nobody listening is fine: then nobody needs to stop.
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            own: self.0.subscribe(),
            parent: None,
        }
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.own.borrow() || self.parent.as_ref().is_some_and(|p| p.is_triggered())
    }

    /// A signal that fires when this one fires or when the returned trigger does.
    pub fn child(&self) -> (Trigger, Shutdown) {
        let (trigger, mut child) = channel();
        child.parent = Some(Box::new(self.clone()));
        (trigger, child)
    }

    /// Resolves once shutdown has been triggered (at once if it already was, or if the trigger
    /// is gone).
    pub async fn wait(&mut self) {
        match &mut self.parent {
            // An error means the trigger was dropped: treat it as a shutdown.
            None => {
                let _ = self.own.wait_for(|&v| v).await;
            }
            Some(parent) => {
                tokio::select! {
                    _ = self.own.wait_for(|&v| v) => {}
                    () = Box::pin(parent.wait()) => {}
                }
            }
        }
    }
}

/// SIGTERM and SIGINT (Ctrl-C), caught from the moment [`Signals::install`] returns: a signal
/// that arrives before the agent starts waiting for it is kept, not fatal.
#[derive(Debug)]
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Replace the default action (terminate at once) of SIGTERM and SIGINT.
    pub fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves on the first of them.
    pub async fn recv(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_child_stops_alone_or_with_its_parent() {
        let (root, agent) = channel();
        let (one, mut first) = agent.child();
        let (_two, mut second) = agent.child();
        one.fire();
        tokio::time::timeout(Duration::from_secs(1), first.wait())
            .await
            .unwrap();
        assert!(first.is_triggered());
        assert!(!second.is_triggered() && !agent.is_triggered());
        assert!(
            tokio::time::timeout(Duration::from_secs(1), second.wait())
                .await
                .is_err()
        );
        root.fire();
        tokio::time::timeout(Duration::from_secs(1), second.wait())
            .await
            .unwrap();
        assert!(second.is_triggered());
        // A grandchild follows the root too.
        let (_t, mut grandchild) = second.child();
        assert!(grandchild.is_triggered());
        grandchild.wait().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_trigger_counts_as_a_shutdown() {
        let (_root, agent) = channel();
        let (own, mut part) = agent.child();
        drop(own);
        tokio::time::timeout(Duration::from_secs(1), part.wait())
            .await
            .unwrap();
    }
}
