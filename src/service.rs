//! Running under systemd (`systemd/hindsight.service`, `Type=notify`).
//!
//! - `READY=1` once every camera has delivered a frame: until then systemd shows the
//!   service as starting, and a camera that opens but never delivers fails the start
//!   (`TimeoutStartSec`), which `Restart=on-failure` retries.
//! - `STOPPING=1` when a graceful stop begins (files are being finished).
//! - `STATUS=` every second: state, frame rates, buffer, current file (`systemctl status`).
//! - `WATCHDOG=1` is sent only while every camera's capture loop keeps coming round. A
//!   loop stuck inside a driver call (a wedged USB camera, a frozen ioctl) stops the
//!   feeding and systemd restarts hindsight after `WatchdogSec`. A camera that is merely
//!   lost is not a stall: its loop keeps reopening it with backoff, and hindsight's other
//!   cameras and audio keep running.
//!
//! Without `NOTIFY_SOCKET` (not under systemd) every notification is a no-op, and the
//! thread, once every camera delivers, waits for the shutdown without waking.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use sd_notify::NotifyState;

use crate::capture::Camera;
use crate::clock::LslTime;
use crate::hub::StatusHub;
use crate::shutdown::{Shutdown, Stage};

/// A capture loop that has not come round for this share of the watchdog interval is
/// stalled: the watchdog is no longer fed.
const STALL_SHARE: u32 = 2;

/// What the service manager asked for.
#[derive(Clone, Copy, Debug)]
pub struct Service {
    /// `WATCHDOG_USEC` (for this process).
    pub watchdog: Option<Duration>,
    /// `NOTIFY_SOCKET` is set: a service manager listens.
    pub managed: bool,
}

impl Service {
    pub fn from_env() -> Service {
        Service {
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
            managed: std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty()),
        }
    }
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("cannot notify the service manager: {e}");
    }
}

/// A graceful stop has begun.
pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("stopping: finishing open files"),
    ]);
}

/// Capture loops that have not come round within `limit` of `now`, with how long ago
/// they last did. A loop that has not started yet (heartbeat 0) counts from `started`.
pub fn stalled_loops(
    now: LslTime,
    started: LslTime,
    loops: &[(String, i64)],
    limit: Duration,
) -> Vec<(String, Duration)> {
    loops
        .iter()
        .filter_map(|(name, beat)| {
            let last = if *beat == 0 {
                started
            } else {
                LslTime::from_nanos(*beat)
            };
            let quiet = now.saturating_since(last);
            (quiet > limit).then(|| (name.clone(), quiet))
        })
        .collect()
}

/// One line for `systemctl status`.
pub fn status_line(s: &crate::status::Status) -> String {
    let mut line = format!("{}: {}", s.state, s.health());
    if let Some(f) = s.current_files.first() {
        let name = std::path::Path::new(f)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| f.clone());
        line.push_str(&format!("; writing {name}"));
    }
    if let Some(d) = &s.disk {
        if let Some(why) = &d.guard {
            line.push_str(&format!("; {why}"));
        }
    }
    line
}

/// Starts the thread that talks to systemd. It ends when `stop` is set.
pub fn spawn(
    service: Service,
    cameras: Vec<Arc<Camera>>,
    hub: Arc<StatusHub>,
    stop: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("systemd".into())
        .spawn(move || {
            let _span = tracing::info_span!("systemd").entered();
            run(service, &cameras, &hub, &stop)
        })
}

fn run(service: Service, cameras: &[Arc<Camera>], hub: &StatusHub, stop: &Shutdown) {
    let started = LslTime::now();
    // Ready once every camera delivers, or is lost (it is opened again meanwhile).
    while !stop.stopping() {
        if crate::capture::all_delivering(cameras) {
            let status = status_line(&hub.snapshot());
            notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
            let lost: Vec<&str> = cameras
                .iter()
                .filter(|c| c.stats.lost.load(Relaxed))
                .map(|c| c.setup.name.as_str())
                .collect();
            if lost.is_empty() {
                tracing::info!("ready: every camera delivers frames");
            } else {
                tracing::warn!(
                    "ready without camera {}: lost, and tried again until it delivers",
                    lost.join(", ")
                );
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if !service.managed {
        // Nobody to tell: no status lines to build once a second.
        while !stop.wait_for(Stage::Stopping, Duration::from_secs(3600)) {}
        return;
    }
    let tick = service.watchdog.map_or(Duration::from_secs(1), |w| {
        (w / 4).min(Duration::from_secs(1))
    });
    let mut last_status = std::time::Instant::now();
    let mut reported_stall = false;
    while !stop.stopping() {
        if let Some(w) = service.watchdog {
            let loops: Vec<(String, i64)> = cameras
                .iter()
                .map(|c| (c.setup.name.clone(), c.stats.heartbeat_ns.load(Relaxed)))
                .collect();
            let stalled = stalled_loops(LslTime::now(), started, &loops, w / STALL_SHARE);
            if stalled.is_empty() {
                if reported_stall {
                    tracing::info!("every capture loop is running again; feeding the watchdog");
                    reported_stall = false;
                }
                notify(&[NotifyState::Watchdog]);
            } else if !reported_stall {
                reported_stall = true;
                let names: Vec<String> = stalled
                    .iter()
                    .map(|(n, d)| format!("{n} (for {:.1} s)", d.as_secs_f64()))
                    .collect();
                tracing::error!(
                    "capture loop stalled: {}; no longer feeding the systemd watchdog, \
                     which restarts hindsight after {:.0} s",
                    names.join(", "),
                    w.as_secs_f64()
                );
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = std::time::Instant::now();
            let status = status_line(&hub.snapshot());
            notify(&[NotifyState::Status(&status)]);
        }
        std::thread::sleep(tick);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loop_that_stops_coming_round_is_stalled() {
        let s = |ms: i64| LslTime::from_nanos(ms * 1_000_000);
        let limit = Duration::from_secs(5);
        let loops = vec![
            ("top".to_string(), s(100_000).as_nanos()),
            ("side".to_string(), s(94_000).as_nanos()),
            ("new".to_string(), 0),
        ];
        // At 100 s: `side` last came round 6 s ago; `new` has not started, counted from
        // the start at 99 s.
        let st = stalled_loops(s(100_000), s(99_000), &loops, limit);
        assert_eq!(st, vec![("side".to_string(), Duration::from_secs(6))]);
        // A loop that never starts is stalled too, once the limit has passed.
        let st = stalled_loops(s(105_000), s(99_000), &loops, limit);
        let names: Vec<&str> = st.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["side", "new"]);
        // Exactly at the limit is not yet a stall.
        assert!(stalled_loops(s(99_000), s(94_000), &loops[1..2], limit).is_empty());
    }

    #[test]
    fn the_status_line_says_state_rates_and_file() {
        let mut s = crate::status::Status {
            state: crate::recorder::State::Recording,
            current_files: vec!["/r/2026_12_01/video/rec_2026-12-01_10-00-00_top.mkv".into()],
            ..Default::default()
        };
        s.cameras.push(crate::status::CameraStatus {
            name: "top".into(),
            fps: 99.6,
            target_fps: 100.0,
            buffered_seconds: 20.0,
            ..Default::default()
        });
        s.cameras.push(crate::status::CameraStatus {
            name: "side".into(),
            lost: true,
            ..Default::default()
        });
        assert_eq!(
            status_line(&s),
            "recording: top 100/100 fps 20.0 s buffered, side LOST; writing rec_2026-12-01_10-00-00_top.mkv"
        );
    }
}
