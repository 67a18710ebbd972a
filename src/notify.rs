//! systemd integration: readiness, watchdog and stopping notifications over `NOTIFY_SOCKET`.
//! Everything here is a no-op when Enclave is not started by systemd with `Type=notify`.

use std::time::Duration;

use sd_notify::NotifyState;

fn send(states: &[NotifyState<'_>]) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "systemd notification failed");
    }
}

/// Tells systemd the service is up.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Tells systemd the service is stopping.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// The interval at which to ping the watchdog (half of `WatchdogSec`), when one is configured.
pub fn watchdog_interval() -> Option<Duration> {
    let mut usec = 0u64;
    (std::env::var_os("NOTIFY_SOCKET").is_some() && sd_notify::watchdog_enabled(false, &mut usec))
        .then(|| Duration::from_micros(usec / 2))
}

/// One watchdog ping.
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}
