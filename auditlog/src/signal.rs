//! Shutdown on SIGINT or SIGTERM, shared by every long-running role.

/// Resolves on the first SIGINT (ctrl-c) or SIGTERM (Kubernetes stopping the pod), after
/// printing `what` the role now does.
pub async fn shutdown_signal(what: &'static str) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    eprintln!("shutting down: {what}");
}
