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
///
/// As in systemd's own `sd_watchdog_enabled`: `WATCHDOG_USEC` enables it, and `WATCHDOG_PID`, when set,
/// must name this process (so a child that inherited the environment does not ping for its parent).
pub fn watchdog_interval() -> Option<Duration> {
    std::env::var_os("NOTIFY_SOCKET")?;
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// One watchdog ping.
pub fn watchdog_ping() {
    send(&[NotifyState::Watchdog]);
}
