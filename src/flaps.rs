//! How a device that is lost and back again and again is said to people: a network camera
//! whose stream closes after every few frames (lost and back several times a second, each
//! time reopened at once: its frames keep coming), a microphone that stays away (each
//! reopen finds the device and no audio). Its loss, and its return, are said at once; the
//! losses that follow within a minute of the last one said are counted, and said once a
//! minute as one line: how many, how long it was away in all (where known), the last
//! reason, and whether it delivers now. What is data (the LSL events, a recording's
//! events file) gets every loss and return, as they happen; this is only what people read
//! (the log, the status, the ntfy reply topic).

use std::time::Duration;

use crate::clock::LslTime;

/// How often a device that keeps being lost is said again.
pub const SAID_EVERY: Duration = Duration::from_secs(60);

/// One device's: see the module documentation.
#[derive(Default)]
pub struct Flaps {
    /// When a loss (or the line of counted ones) was last said.
    said: Option<LslTime>,
    /// The loss said last waits for its return to be said too.
    back_pending: bool,
    /// Losses counted since, their time without frames, the last one's reason.
    counted: u32,
    away: Duration,
    why: String,
}

impl Flaps {
    /// The device was lost at `now`: true if this is to be said now, false if counted
    /// (within a minute of the last line, or with counted ones still to be said: the
    /// next look says them, this one too).
    pub fn lost(&mut self, now: LslTime, why: &str) -> bool {
        if self.counted > 0
            || self
                .said
                .is_some_and(|t| now.saturating_since(t) < SAID_EVERY)
        {
            self.counted += 1;
            self.why = why.to_string();
            false
        } else {
            self.said = Some(now);
            self.back_pending = true;
            true
        }
    }

    /// The device is back after `gap` without data: true if this is to be said now (its
    /// loss was), false if counted.
    pub fn back(&mut self, gap: Duration) -> bool {
        if std::mem::take(&mut self.back_pending) {
            true
        } else {
            self.away += gap;
            false
        }
    }

    /// A minute after the last line said, the losses counted since as one line about
    /// `subject` ("camera net", "audio"; `lost_now`: whether it is lost at this moment),
    /// if there were any.
    pub fn due(&mut self, now: LslTime, subject: &str, lost_now: bool) -> Option<String> {
        self.line(now, subject, lost_now, false)
    }

    /// The losses counted and not yet said, as one line, whenever (the process stops).
    pub fn flush(&mut self, now: LslTime, subject: &str, lost_now: bool) -> Option<String> {
        self.line(now, subject, lost_now, true)
    }

    fn line(&mut self, now: LslTime, subject: &str, lost_now: bool, any: bool) -> Option<String> {
        let since = now.saturating_since(self.said?);
        if since < SAID_EVERY && !(any && self.counted > 0) {
            return None;
        }
        if self.counted == 0 {
            // A counted loss's return after the last line: nothing more to say of it.
            self.away = Duration::ZERO;
            return None;
        }
        let away = if self.away.is_zero() {
            String::new()
        } else {
            format!(", {:.1} s away in all", self.away.as_secs_f64())
        };
        let line = format!(
            "{subject} lost {} more time{} in the {:.0} s since the last line said so{away} \
             (the last: {}); {}",
            self.counted,
            if self.counted == 1 { "" } else { "s" },
            since.as_secs_f64(),
            self.why,
            if lost_now {
                "it is lost now"
            } else {
                "it delivers now"
            }
        );
        self.said = Some(now);
        self.counted = 0;
        self.away = Duration::ZERO;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> LslTime {
        LslTime::from_secs_f64(1000.0) + Duration::from_millis(ms)
    }

    /// Lost and back 7 times a second for three minutes: the first loss and return said
    /// at once, then one line a minute that counts the rest, and the time away adds up.
    #[test]
    fn a_camera_lost_and_back_seven_times_a_second_is_said_once_a_minute() {
        let mut f = Flaps::default();
        let (mut said, mut lines, mut counted) = (0, Vec::new(), 0u64);
        for i in 0..3 * 60 * 7 {
            let at = i * 1000 / 7;
            if f.lost(t(at), "the camera closed the stream") {
                said += 1;
            }
            if f.back(Duration::from_millis(100)) {
                said += 1;
            }
            lines.extend(f.due(t(at + 50), "camera net", false));
        }
        assert_eq!(said, 2, "the first loss and its return");
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert!(
            lines[0].starts_with("camera net lost 420 more times in the 60 s since the last line said so, 42.0 s away in all (the last: the camera closed the stream); it delivers now"),
            "{}",
            lines[0]
        );
        for l in &lines {
            counted += l
                .split(" more time")
                .next()
                .unwrap()
                .rsplit(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
        assert_eq!(counted + 1 + f.counted as u64, 3 * 60 * 7);
    }

    /// Losses more than a minute apart are each said at once, with their return; nothing
    /// is left to count.
    #[test]
    fn a_loss_now_and_then_is_said_at_once_with_its_return() {
        let mut f = Flaps::default();
        for m in 0..5 {
            let at = m * 61_000;
            assert!(f.lost(t(at), "unplugged"));
            assert_eq!(f.due(t(at + 500), "camera cam0", true), None);
            assert!(f.back(Duration::from_secs(2)));
            assert_eq!(f.due(t(at + 60_500), "camera cam0", false), None);
        }
    }

    /// One more loss within the minute: counted, said at the minute with the state now.
    #[test]
    fn a_second_loss_within_the_minute_is_said_at_its_end() {
        let mut f = Flaps::default();
        assert!(f.lost(t(0), "unplugged"));
        assert!(f.back(Duration::from_secs(1)));
        assert!(!f.lost(t(10_000), "no usable frame for 5 s"));
        assert_eq!(f.due(t(59_000), "camera cam0", true), None);
        assert_eq!(
            f.due(t(60_000), "camera cam0", true).unwrap(),
            "camera cam0 lost 1 more time in the 60 s since the last line said so (the last: no usable frame for 5 s); it is lost now"
        );
        assert!(!f.lost(t(61_000), "unplugged"));
        assert!(f.flush(t(62_000), "camera cam0", true).unwrap().starts_with(
            "camera cam0 lost 1 more time in the 2 s since the last line said so (the last: unplugged)"
        ));
        assert_eq!(f.flush(t(62_000), "camera cam0", true), None);
        // Its return is not said on its own: it was counted.
        assert!(!f.back(Duration::from_secs(55)));
        // Nothing more in the next minute: the loss after it is said at once.
        assert_eq!(f.due(t(120_000), "camera cam0", false), None);
        assert!(f.lost(t(130_000), "unplugged"));
    }
}
