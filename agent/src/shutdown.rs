//! Graceful shutdown: one signal, observed by every task.
//!
//! `main` creates a [`Trigger`] and hands [`Shutdown`] clones to the tasks. When SIGTERM or
//! SIGINT arrives the trigger fires; intake stops first, sinks get until the shutdown deadline
//! to finish what is in flight, then the spool is flushed and the process exits 0.

use tokio::sync::watch;

/// The sending side: fires once.
#[derive(Debug)]
pub struct Trigger(watch::Sender<bool>);

/// The receiving side: cheap to clone, one per task.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// A new trigger and its first listener.
pub fn channel() -> (Trigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (Trigger(tx), Shutdown(rx))
}

impl Trigger {
    pub fn fire(&self) {
        // Nobody listening is fine: then nobody needs to stop.
        let _ = self.0.send(true);
    }

    pub fn subscribe(&self) -> Shutdown {
        Shutdown(self.0.subscribe())
    }
}

impl Shutdown {
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown has been triggered (at once if it already was, or if the trigger
    /// is gone).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: treat it as a shutdown.
        let _ = self.0.wait_for(|&v| v).await;
    }
}

/// Resolves on the first SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}
