//! A reason to stop early, Ctrl-C above all, shared by every request and phase of a run: the
//! probe's streams, the Envoy reads, the listing.

use tokio::sync::watch;

/// Ctrl-C, or any other reason to stop early, shared by every request of a run.
#[derive(Debug, Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop that never fires.
    pub fn never() -> Self {
        // With the sender gone the value stays `false`, and `stopped` waits forever.
        let (_, receiver) = watch::channel(false);
        Self(receiver)
    }

    /// A stop and the switch that fires it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (sender, receiver) = watch::channel(false);
        (sender, Self(receiver))
    }

    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }

    pub async fn stopped(&mut self) {
        if self.0.wait_for(|stopped| *stopped).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// A `Stop` that fires on Ctrl-C; abort the task when done with it.
pub fn ctrl_c_stop() -> (Stop, tokio::task::JoinHandle<()>) {
    let (switch, stop) = Stop::new();
    let ctrl_c = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = switch.send(true);
        }
    });
    (stop, ctrl_c)
}
