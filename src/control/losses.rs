//! How a camera's lost frames are said in the log. The first second of a loss is said at
//! once, with its cause, and so is the first second that knows why (the capture thread's
//! CPU is known only after its first second); while losses go on (a camera this machine cannot keep up with
//! loses frames every second, for hours), the log gets one line a minute with the
//! minute's totals instead of sixty, and a last line when the recording it belongs to
//! ends or the process stops. Nothing is left out: the lines' counts add up to every
//! frame lost. The status keeps the newest second's line (see `StatusHub::replace_warning`).

use std::time::Duration;

use crate::clock::LslTime;

/// How often a loss that goes on is said again in the log.
pub const SAID_EVERY: Duration = Duration::from_secs(60);

/// The causes, in the order of the counts handed to [`LossLog::look`].
pub const CAUSES: [&str; 4] = [
    "gaps in the camera's frame numbers",
    "buffer space still held by a writer far behind",
    "larger than a buffer chunk",
    "the writer's queue was full",
];

/// What a camera's loss lines start with: the status keeps one line with it per camera.
pub fn about(camera: &str) -> String {
    format!("camera {camera}: frames lost")
}

/// Counts by cause, listed as a line says them: "36 (gaps in the camera's frame numbers),
/// 2 (the writer's queue was full)".
pub fn listed(counts: &[u64; 4]) -> String {
    counts
        .iter()
        .zip(CAUSES)
        .filter(|(n, _)| **n > 0)
        .map(|(n, why)| format!("{n} ({why})"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One camera's loss lines: see the module documentation.
#[derive(Default)]
pub struct LossLog {
    quiet: Option<Quiet>,
}

/// The time since the last line, in which losses are counted and not said.
struct Quiet {
    since: LslTime,
    recording: Option<u64>,
    counts: [u64; 4],
    /// The seconds (looks) that found frames lost.
    seconds: u32,
    /// What the newest of them said of the cause ("; its capture thread was busy ...").
    why: String,
    /// A line of this loss (since it began) said why, in the log.
    explained: bool,
}

impl LossLog {
    /// A look at `at`, during `recording` (or none), that found `new` frames lost by cause
    /// (all zero: none), `line` what the status says of them, `why` its reason part. The
    /// lines to log now, oldest first.
    pub fn look(
        &mut self,
        about: &str,
        at: LslTime,
        recording: Option<u64>,
        new: [u64; 4],
        line: &str,
        why: &str,
    ) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(q) = &self.quiet {
            let recording_changed = q.recording != recording;
            if recording_changed || at.saturating_since(q.since) >= SAID_EVERY {
                let (went_on, explained) = (q.seconds > 0, q.explained);
                out.extend(self.flush(about, at));
                // A loss that goes on in the same recording stays quiet for another
                // minute; a new recording's first loss is said at once.
                if went_on && !recording_changed {
                    self.quiet = Some(Quiet::new(at, recording, explained));
                }
            }
        }
        if new.iter().all(|n| *n == 0) {
            return out;
        }
        match &mut self.quiet {
            None => {
                out.push(line.to_string());
                self.quiet = Some(Quiet::new(at, recording, !why.is_empty()));
            }
            Some(q) if !q.explained && !why.is_empty() => {
                out.push(line.to_string());
                q.explained = true;
            }
            Some(q) => {
                for (sum, n) in q.counts.iter_mut().zip(new) {
                    *sum += n;
                }
                q.seconds += 1;
                q.why = why.to_string();
            }
        }
        out
    }

    /// The losses counted and not yet said, as one line (the process stops, or their
    /// minute or recording is over), and no quiet time after it.
    pub fn flush(&mut self, about: &str, at: LslTime) -> Option<String> {
        let q = self.quiet.take()?;
        if q.seconds == 0 {
            return None;
        }
        let during = match q.recording {
            Some(id) => format!(" during recording {id}"),
            None => String::new(),
        };
        let span = at.saturating_since(q.since).as_secs_f64().round().max(1.0);
        Some(format!(
            "{about}{during}, in {} of the {span:.0} s since the last line: {}{}",
            q.seconds,
            listed(&q.counts),
            q.why
        ))
    }
}

impl Quiet {
    fn new(since: LslTime, recording: Option<u64>, explained: bool) -> Quiet {
        Quiet {
            since,
            recording,
            counts: [0; 4],
            seconds: 0,
            why: String::new(),
            explained,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABOUT: &str = "camera big: frames lost";

    fn t(s: u64) -> LslTime {
        LslTime::from_secs_f64(1000.0) + Duration::from_secs(s)
    }

    /// The number before " (gaps" in each line, added up.
    fn gaps_said(lines: &[String]) -> u64 {
        lines
            .iter()
            .map(|l| {
                let before = l.split(" (gaps").next().unwrap();
                before.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
            })
            .sum()
    }

    /// An hour of losses every second: 61 lines, not 3600, and they add up to every frame.
    #[test]
    fn an_hour_of_losses_is_said_once_a_minute_and_adds_up() {
        let mut log = LossLog::default();
        let mut lines = Vec::new();
        let mut lost = 0;
        for s in 0..3600 {
            let n = 30 + s % 7;
            lost += n;
            let line = format!("{ABOUT}: {n} (gaps in the camera's frame numbers); busy");
            lines.extend(log.look(ABOUT, t(s), None, [n, 0, 0, 0], &line, "; busy"));
        }
        lines.extend(log.flush(ABOUT, t(3600)));
        assert_eq!(lines.len(), 61, "{lines:#?}");
        assert_eq!(gaps_said(&lines), lost);
        assert!(lines[0].ends_with("; busy") && !lines[0].contains("since the last line"));
        assert!(
            lines[1]
                .starts_with("camera big: frames lost, in 59 of the 60 s since the last line: ")
                && lines[1].ends_with("; busy"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].contains(", in 60 of the 60 s since"),
            "{}",
            lines[2]
        );
    }

    /// A loss now and then (more than a minute apart) is said at once, every time; one
    /// in the quiet minute after another is said when the minute is over.
    #[test]
    fn a_loss_now_and_then_is_said_at_once() {
        let mut log = LossLog::default();
        let line = |n: u64| format!("{ABOUT}: {n} (the writer's queue was full)");
        let q = [0, 0, 0, 1];
        assert_eq!(log.look(ABOUT, t(0), None, q, &line(1), ""), [line(1)]);
        assert!(log.look(ABOUT, t(1), None, [0; 4], "", "").is_empty());
        // A minute with nothing lost ends the quiet time.
        assert!(log.look(ABOUT, t(61), None, [0; 4], "", "").is_empty());
        assert_eq!(log.look(ABOUT, t(200), None, q, &line(1), ""), [line(1)]);
        assert!(log
            .look(ABOUT, t(230), None, [0, 0, 0, 4], &line(4), "")
            .is_empty());
        assert_eq!(
            log.look(ABOUT, t(260), None, [0; 4], "", ""),
            ["camera big: frames lost, in 1 of the 60 s since the last line: 4 (the writer's queue was full)"]
        );
        // ...and the minute after that one, quiet too, ends it.
        assert!(log.look(ABOUT, t(320), None, [0; 4], "", "").is_empty());
        assert_eq!(log.look(ABOUT, t(321), None, q, &line(1), ""), [line(1)]);
        assert_eq!(log.flush(ABOUT, t(330)), None);
    }

    /// Losses are said by recording: the totals of the one that ended, then the new
    /// one's first loss at once.
    #[test]
    fn a_new_recording_has_its_own_lines() {
        let mut log = LossLog::default();
        let gaps =
            |n: u64, r: &str| format!("{ABOUT}{r}: {n} (gaps in the camera's frame numbers)");
        let g = |n| [n, 0, 0, 0];
        assert_eq!(
            log.look(ABOUT, t(0), None, g(5), &gaps(5, ""), ""),
            [gaps(5, "")]
        );
        assert!(log
            .look(ABOUT, t(1), None, g(6), &gaps(6, ""), "")
            .is_empty());
        let said = log.look(
            ABOUT,
            t(2),
            Some(7),
            g(8),
            &gaps(8, " during recording 7"),
            "",
        );
        assert_eq!(
            said,
            [
                "camera big: frames lost, in 1 of the 2 s since the last line: 6 (gaps in the camera's frame numbers)".to_string(),
                gaps(8, " during recording 7"),
            ]
        );
        assert!(log.look(ABOUT, t(3), Some(7), g(9), "", "").is_empty());
        assert_eq!(
            log.look(ABOUT, t(4), None, [0; 4], "", ""),
            ["camera big: frames lost during recording 7, in 1 of the 2 s since the last line: 9 (gaps in the camera's frame numbers)"]
        );
        assert_eq!(log.flush(ABOUT, t(5)), None);
    }

    /// The first second of a loss cannot say why yet (the capture thread's CPU is read
    /// once a second): the first that can is said at once, once.
    #[test]
    fn the_first_line_that_knows_why_is_said_at_once() {
        let mut log = LossLog::default();
        let line =
            |n: u64, why: &str| format!("{ABOUT}: {n} (gaps in the camera's frame numbers){why}");
        let g = |n| [n, 0, 0, 0];
        let busy = "; its capture thread was busy 97% of the last second";
        assert_eq!(
            log.look(ABOUT, t(0), None, g(5), &line(5, ""), ""),
            [line(5, "")]
        );
        assert!(log
            .look(ABOUT, t(1), None, g(6), &line(6, ""), "")
            .is_empty());
        assert_eq!(
            log.look(ABOUT, t(2), None, g(7), &line(7, busy), busy),
            [line(7, busy)]
        );
        for s in 3..60 {
            assert!(log
                .look(ABOUT, t(s), None, g(8), &line(8, busy), busy)
                .is_empty());
        }
        let said = log.look(ABOUT, t(60), None, g(9), &line(9, busy), busy);
        assert_eq!(said.len(), 1);
        // Every frame of the minute but those of the line said at once (7).
        let total = 6 + 57 * 8;
        assert!(
            said[0].contains(&format!(
                "in 58 of the 60 s since the last line: {total} (gaps"
            )) && said[0].ends_with(busy),
            "{said:?}"
        );
        // Explained once: the next minute's line is its only one.
        let lines: usize = (61..=120)
            .map(|s| log.look(ABOUT, t(s), None, g(1), "", busy).len())
            .sum();
        assert_eq!(lines, 1);
    }

    #[test]
    fn causes_are_listed_in_order_and_only_when_any() {
        assert_eq!(
            listed(&[3, 0, 1, 2]),
            "3 (gaps in the camera's frame numbers), 1 (larger than a buffer chunk), 2 (the writer's queue was full)"
        );
        assert_eq!(listed(&[0; 4]), "");
    }
}
