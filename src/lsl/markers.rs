//! The LSL marker trigger: follows a named string marker stream (e.g. from PsychoPy) and
//! turns configured marker strings into commands on the bus.
//!
//! A command takes the marker's own timestamp, mapped onto this machine's LSL clock with
//! the inlet's clock correction: a recording starts at the instant the experiment said so,
//! not when the marker happened to arrive. The stream is looked up by name; when it goes
//! away (the experiment script ends) the trigger looks for it again, so a stream re-created
//! with a new source id is followed too. That it went away is not left to liblsl alone
//! (its inlet says so when the connection closes): the trigger asks every
//! [`ALIVE_EVERY`] whether the stream still answers, which also finds a sender that hung,
//! crashed or left the network (no close comes), and an outlet destroyed on this machine
//! whose close liblsl 1.17 missed (its inlet waited for good; found by `tests/lsl.rs`).
//! A stream that does not answer is still listened to until another of its name answers:
//! one that comes back (a hung script resumed, a network back) goes on over the same
//! connection, with the markers it sent meanwhile.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lsl::Pullable;
use parking_lot::Mutex;

use super::LslStatus;
use crate::bus::CommandBus;
use crate::clock::{ClockPair, LslTime};
use crate::config::LslMarkersConfig;
use crate::recorder::{Command, Origin, TriggerSource};
use crate::shutdown::Shutdown;

/// How often the trigger asks whether the stream it follows still answers (a resolve of
/// its outlet's unique id, a few UDP packets), and how long it waits for the answer: one
/// unanswered question is asked again at once, and a second makes the stream gone. A
/// stream that answers costs a few ms; one that is gone is found within about 4 s.
const ALIVE_EVERY: Duration = Duration::from_secs(2);
const ALIVE_WAIT: f64 = 1.0;

/// What a marker string means.
pub fn command_for(cfg: &LslMarkersConfig, marker: &str) -> Option<Command> {
    let m = marker.trim();
    if cfg.start.iter().any(|s| s == m) {
        Some(Command::Start { seconds: None })
    } else if cfg.stop.iter().any(|s| s == m) {
        Some(Command::Stop)
    } else if cfg.mark_all || cfg.mark.iter().any(|s| s == m) {
        (!m.is_empty()).then(|| Command::Mark {
            text: m.to_string(),
        })
    } else {
        None
    }
}

/// A marker's time on this machine's clocks: its timestamp plus the clock correction,
/// unless that lies in the future or more than `max_age` back (a sender with a broken
/// clock), then the arrival time.
pub fn command_time(
    stamp: f64,
    correction: f64,
    arrived: ClockPair,
    max_age: Duration,
) -> ClockPair {
    let at = LslTime::from_secs_f64(stamp + correction);
    if at <= arrived.lsl && arrived.lsl.saturating_since(at) <= max_age {
        ClockPair {
            lsl: at,
            wall: arrived.wall_at(at),
        }
    } else {
        arrived
    }
}

/// Starts the trigger thread. It runs until `stop` is set.
pub fn spawn(
    cfg: LslMarkersConfig,
    bus: CommandBus,
    status: Arc<Mutex<LslStatus>>,
    stop: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("lsl-markers".into())
        .spawn(move || {
            let _span = tracing::info_span!("lsl-markers").entered();
            run(&cfg, &bus, &status, &stop)
        })
}

fn set_state(status: &Mutex<LslStatus>, state: String) {
    let mut s = status.lock();
    if s.marker_trigger.as_deref() != Some(&state) {
        tracing::info!("LSL marker trigger: {state}");
        s.marker_trigger = Some(state);
    }
}

fn run(cfg: &LslMarkersConfig, bus: &CommandBus, status: &Mutex<LslStatus>, stop: &Shutdown) {
    // A stream to follow next, found while the last one did not answer.
    let mut next: Option<lsl::StreamInfo> = None;
    while !stop.stopping() {
        let info = match next.take() {
            Some(info) => info,
            None => {
                set_state(
                    status,
                    format!("looking for marker stream `{}`", cfg.stream),
                );
                let found = match lsl::resolve_byprop("name", &cfg.stream, 1, 1.0) {
                    Ok(f) => f,
                    Err(e) => {
                        tracing::warn!("LSL resolve failed: {e}");
                        std::thread::sleep(Duration::from_secs(1));
                        continue;
                    }
                };
                let Some(info) = found.into_iter().next() else {
                    continue;
                };
                info
            }
        };
        if info.channel_format() != lsl::ChannelFormat::String {
            set_state(
                status,
                format!(
                    "stream `{}` is not a string marker stream; waiting for one",
                    cfg.stream
                ),
            );
            std::thread::sleep(Duration::from_secs(2));
            continue;
        }
        // No automatic recovery: a lost stream is looked up again by name, which also
        // finds an experiment script that restarted with a new source id.
        let inlet = match lsl::StreamInlet::new(&info, 360, 0, false) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!("cannot open an inlet on `{}`: {e}", cfg.stream);
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = inlet.open_stream(5.0) {
            tracing::warn!("cannot connect to `{}`: {e}", cfg.stream);
            continue;
        }
        set_state(status, following(cfg, &info));
        next = follow(cfg, bus, status, &inlet, &info, stop);
    }
}

fn following(cfg: &LslMarkersConfig, info: &lsl::StreamInfo) -> String {
    format!(
        "following `{}` from {} ({})",
        cfg.stream,
        info.hostname(),
        info.source_id()
    )
}

/// Whether the outlet whose unique id is `uid` still answers: asked twice before it is
/// taken as gone (a lost UDP packet, a busy sender). A resolve that fails (no network)
/// says nothing either way.
fn still_answers(uid: &str) -> bool {
    let pred = format!("uid='{uid}'");
    (0..2).any(|_| match lsl::resolve_bypred(&pred, 1, ALIVE_WAIT) {
        Ok(found) => !found.is_empty(),
        Err(e) => {
            tracing::debug!("LSL resolve failed: {e}");
            true
        }
    })
}

/// What a stream of the configured name that answers now is, beside the one followed
/// (`uid`), which did not answer.
enum Answer {
    /// The followed stream itself (its answers were only late).
    Back,
    /// Another stream of the name (the script started again: a new outlet).
    Other(lsl::StreamInfo),
    /// None: the followed stream is still listened to, and asked after again.
    Nothing,
}

fn who_answers(name: &str, uid: &str) -> Answer {
    match lsl::resolve_byprop("name", name, 1, ALIVE_WAIT) {
        Ok(found) if found.iter().any(|i| i.uid() == uid) => Answer::Back,
        Ok(found) => found
            .into_iter()
            .next()
            .map_or(Answer::Nothing, Answer::Other),
        Err(e) => {
            tracing::debug!("LSL resolve failed: {e}");
            Answer::Nothing
        }
    }
}

/// Pulls markers until the stream is lost, another stream of the name answers while this
/// one does not, or `stop` is set; returns that other stream. A stream that does not
/// answer (a hung script, a machine off the network, or one whose end liblsl missed) is
/// not let go of until another answers: its connection may carry markers again when it
/// comes back, which a new connection would not have (an inlet gets only what is sent
/// after it connects). A stream left for another is read to its end first: a script that
/// pushes its last marker and ends while the question is being asked still has that
/// marker carried out.
fn follow(
    cfg: &LslMarkersConfig,
    bus: &CommandBus,
    status: &Mutex<LslStatus>,
    inlet: &lsl::StreamInlet,
    info: &lsl::StreamInfo,
    stop: &Shutdown,
) -> Option<lsl::StreamInfo> {
    let uid = info.uid();
    let mut correction = inlet.time_correction(2.0).unwrap_or(0.0);
    let mut since_correction = Instant::now();
    let mut asked = Instant::now();
    // Since when the stream has not answered.
    let mut silent: Option<Instant> = None;
    let mut other: Option<lsl::StreamInfo> = None;
    while !stop.stopping() {
        if other.is_none() && asked.elapsed() >= ALIVE_EVERY {
            // While it answers, the question about it alone; once it did not, the
            // question by name, which it answers too if it comes back.
            let answer = if silent.is_none() && still_answers(&uid) {
                Answer::Back
            } else {
                who_answers(&cfg.stream, &uid)
            };
            match answer {
                Answer::Back => {
                    if let Some(since) = silent.take() {
                        tracing::info!(
                            "marker stream `{}` answers again, {:.1} s after it was found \
                             silent; still followed",
                            cfg.stream,
                            since.elapsed().as_secs_f64()
                        );
                        set_state(status, following(cfg, info));
                    }
                }
                Answer::Other(found) => {
                    tracing::warn!(
                        "marker stream `{}` from {} ({}) no longer answers, and one of that \
                         name from {} ({}) does: following that one",
                        cfg.stream,
                        info.hostname(),
                        info.source_id(),
                        found.hostname(),
                        found.source_id()
                    );
                    other = Some(found);
                }
                Answer::Nothing if silent.is_none() => {
                    tracing::warn!(
                        "marker stream `{}` no longer answers (its program hung or ended, or its \
                         machine left the network); still listening to it while looking for it \
                         again",
                        cfg.stream
                    );
                    silent = Some(Instant::now());
                    set_state(
                        status,
                        format!(
                            "`{}` from {} ({}) does not answer; listening to it while looking \
                             for it again",
                            cfg.stream,
                            info.hostname(),
                            info.source_id()
                        ),
                    );
                }
                Answer::Nothing => {}
            }
            asked = Instant::now();
        }
        let wait = if other.is_some() { 0.0 } else { 0.5 };
        let pulled: Result<(Vec<String>, f64), _> = inlet.pull_sample(wait);
        match pulled {
            Ok((sample, stamp)) if !sample.is_empty() && stamp != 0.0 => {
                let arrived = ClockPair::now();
                let marker = sample[0].clone();
                let Some(command) = command_for(cfg, &marker) else {
                    tracing::info!("LSL marker `{marker}` is not mapped to a command; ignored");
                    continue;
                };
                if since_correction.elapsed() > Duration::from_secs(5) {
                    correction = inlet.time_correction(0.5).unwrap_or(correction);
                    since_correction = Instant::now();
                }
                let at = command_time(stamp, correction, arrived, Duration::from_secs(5));
                if bus
                    .send_at(command, Origin::new(TriggerSource::Lsl, marker), at)
                    .is_err()
                {
                    return None;
                }
            }
            // Nothing more: read to its end.
            Ok(_) if other.is_some() => return other,
            Ok(_) => {}
            // Closed: looked for again, unless another one was found already.
            Err(e) => {
                if other.is_none() {
                    tracing::warn!(
                        "marker stream `{}` lost ({e}); looking for it again",
                        cfg.stream
                    );
                }
                return other;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::WallTime;

    fn cfg() -> LslMarkersConfig {
        LslMarkersConfig {
            enabled: true,
            stream: "Markers".into(),
            start: vec!["start".into(), "trial_begin".into()],
            stop: vec!["stop".into()],
            mark: vec!["reward".into()],
            mark_all: false,
        }
    }

    #[test]
    fn configured_strings_map_to_commands() {
        let c = cfg();
        assert_eq!(
            command_for(&c, "start"),
            Some(Command::Start { seconds: None })
        );
        assert_eq!(
            command_for(&c, " trial_begin "),
            Some(Command::Start { seconds: None })
        );
        assert_eq!(command_for(&c, "stop"), Some(Command::Stop));
        assert_eq!(
            command_for(&c, "reward"),
            Some(Command::Mark {
                text: "reward".into()
            })
        );
        assert_eq!(
            command_for(&c, "Start"),
            None,
            "exact strings, as configured"
        );
        assert_eq!(command_for(&c, "stimulus 3"), None);
        let all = LslMarkersConfig {
            mark_all: true,
            ..cfg()
        };
        assert_eq!(
            command_for(&all, "stimulus 3"),
            Some(Command::Mark {
                text: "stimulus 3".into()
            })
        );
        assert_eq!(command_for(&all, "  "), None);
    }

    #[test]
    fn a_marker_keeps_its_own_time_unless_that_time_is_implausible() {
        let arrived = ClockPair {
            lsl: LslTime::from_secs_f64(100.0),
            wall: WallTime::from_nanos(1_000_000_000_000),
        };
        let max = Duration::from_secs(5);
        let t = command_time(99.9, 0.0, arrived, max);
        assert_eq!(t.lsl, LslTime::from_secs_f64(99.9));
        assert_eq!(t.wall.as_nanos(), 1_000_000_000_000 - 100_000_000);
        // The sender's clock is 10 s behind ours; the correction puts it right.
        assert_eq!(
            command_time(89.95, 10.0, arrived, max).lsl,
            LslTime::from_secs_f64(99.95)
        );
        // In the future, or far in the past: the arrival time.
        assert_eq!(command_time(100.5, 0.0, arrived, max), arrived);
        assert_eq!(command_time(50.0, 0.0, arrived, max), arrived);
    }
}
