//! Process signals: the future that completes on SIGTERM/SIGINT, and the SIGHUP stream used to
//! reload keys and secrets.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Completes when the process receives SIGTERM or SIGINT, returning the signal's name.
pub async fn terminate() -> &'static str {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers there is nothing to wait for; never complete.
        std::future::pending::<()>().await;
        return "none";
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

/// A stream of SIGHUPs (`recv().await` once per signal).
pub fn hangups() -> std::io::Result<Signal> {
    signal(SignalKind::hangup())
}
