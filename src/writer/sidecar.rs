//! The text files beside each MKV (`design/files.md`): `<stem>.frames.csv`, one row per
//! frame as it is written, and `<stem>.events.csv`. Rows are formatted into a reused
//! `String` without allocating; times are printed exactly (integer nanoseconds).

use std::fmt::Write;

use crate::clock::{LslTime, WallTime};
use crate::frame::exif::Exposure;
use crate::frame::FrameMeta;
use crate::recorder::Origin;

pub const FRAMES_HEADER: &str = "frame_number,lsl_time,unix_time,pts,bytes,pre_trigger\n";
/// The header of a camera whose frames carry their exposure (libcamera): three columns
/// more, empty in a row whose frame did not report that value.
pub const FRAMES_HEADER_EXPOSURE: &str =
    "frame_number,lsl_time,unix_time,pts,bytes,pre_trigger,exposure_us,analogue_gain,digital_gain\n";

/// The frames sidecar's header: with the exposure columns or without.
pub fn frames_header(exposure: bool) -> &'static str {
    if exposure {
        FRAMES_HEADER_EXPOSURE
    } else {
        FRAMES_HEADER
    }
}
pub const EVENTS_HEADER: &str = "lsl_time,unix_time,event,source,detail\n";

/// Appends one frame row. `pts_ns` is the block's timestamp in the file (a multiple of
/// the timestamp unit), printed in seconds. `exposure`: the exposure columns' values
/// (`None`: the sidecar has no such columns).
pub fn frame_row(
    buf: &mut String,
    m: &FrameMeta,
    pts_ns: i64,
    bytes: usize,
    pre_trigger: bool,
    exposure: Option<&Exposure>,
) {
    let _ = write!(buf, "{},", m.seq);
    secs(buf, m.capture.as_nanos());
    buf.push(',');
    secs(buf, m.wall.as_nanos());
    buf.push(',');
    secs(buf, pts_ns);
    let _ = write!(buf, ",{},{}", bytes, pre_trigger as u8);
    if let Some(e) = exposure {
        buf.push(',');
        if let Some(t) = e.time_us {
            let _ = write!(buf, "{t}");
        }
        // f32 printed as the shortest text that reads back as the same value.
        for gain in [e.analogue_gain, e.digital_gain] {
            buf.push(',');
            if let Some(g) = gain {
                let _ = write!(buf, "{g}");
            }
        }
    }
    buf.push('\n');
}

/// Appends one event row; text fields are quoted as CSV requires.
pub fn event_row(
    buf: &mut String,
    at: LslTime,
    wall: WallTime,
    event: &str,
    origin: &Origin,
    detail: &str,
) {
    secs(buf, at.as_nanos());
    buf.push(',');
    secs(buf, wall.as_nanos());
    buf.push(',');
    quoted(buf, event);
    buf.push(',');
    quoted(buf, &format!("{}: {}", origin.source, origin.text));
    buf.push(',');
    quoted(buf, detail);
    buf.push('\n');
}

/// Seconds with 9 decimals from integer nanoseconds: exact, no float rounding.
fn secs(buf: &mut String, nanos: i64) {
    if nanos < 0 {
        buf.push('-');
    }
    let n = nanos.unsigned_abs();
    let _ = write!(buf, "{}.{:09}", n / 1_000_000_000, n % 1_000_000_000);
}

/// A text field, quoted where CSV needs it. Control characters other than line breaks and
/// tabs become U+FFFD: marks with them are refused, but a command's text is recorded as
/// received (an ntfy message may hold a NEL between its words), and CSV readers refuse a
/// NUL, and a terminal that shows the file would act on an escape.
fn quoted(buf: &mut String, s: &str) {
    let quote = s.contains([',', '"', '\n', '\r']);
    if quote {
        buf.push('"');
    }
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\"\""),
            '\n' | '\r' | '\t' => buf.push(c),
            c if c.is_control() => buf.push(char::REPLACEMENT_CHARACTER),
            c => buf.push(c),
        }
    }
    if quote {
        buf.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::TriggerSource;

    #[test]
    fn frame_rows_are_exact() {
        let m = FrameMeta {
            seq: 42,
            capture: LslTime::from_nanos(8_123_456_789_012),
            wall: WallTime::from_nanos(1_763_722_451_123_456_789),
            width: 400,
            height: 400,
            keyframe: true,
        };
        let mut s = String::new();
        frame_row(&mut s, &m, 1_234_500_000, 25_012, true, None);
        assert_eq!(
            s,
            "42,8123.456789012,1763722451.123456789,1.234500000,25012,1\n"
        );
        // A camera that reports its exposure: three columns more, empty where a value
        // was not reported.
        for (e, tail) in [
            (
                Exposure {
                    time_us: Some(2000),
                    analogue_gain: Some(2.564_103),
                    digital_gain: Some(1.0),
                },
                "2000,2.564103,1",
            ),
            (
                Exposure {
                    time_us: Some(16_666),
                    analogue_gain: None,
                    digital_gain: Some(1.125),
                },
                "16666,,1.125",
            ),
            (Exposure::default(), ",,"),
        ] {
            s.clear();
            frame_row(&mut s, &m, 0, 25_012, false, Some(&e));
            assert_eq!(
                s,
                format!("42,8123.456789012,1763722451.123456789,0.000000000,25012,0,{tail}\n")
            );
        }
        assert_eq!(frames_header(true).split(',').count(), s.split(',').count());
    }

    #[test]
    fn event_text_is_quoted_when_needed() {
        let mut s = String::new();
        event_row(
            &mut s,
            LslTime::from_nanos(1_500_000_000),
            WallTime::from_nanos(2_000_000_000),
            "mark",
            &Origin::new(TriggerSource::Api, "mark"),
            "trial 3, \"reward\"",
        );
        assert_eq!(
            s,
            "1.500000000,2.000000000,mark,api: mark,\"trial 3, \"\"reward\"\"\"\n"
        );
    }

    /// A command's text is recorded as received, with control characters other than line
    /// breaks and tabs as U+FFFD: CSV readers refuse a NUL.
    #[test]
    fn control_characters_other_than_line_breaks_do_not_reach_the_file() {
        let mut s = String::new();
        event_row(
            &mut s,
            LslTime::from_nanos(1_500_000_000),
            WallTime::from_nanos(2_000_000_000),
            "command",
            &Origin::new(TriggerSource::Api, "mark a\u{0}b\u{1b}[2J"),
            "left\nright\tside",
        );
        assert_eq!(
            s,
            "1.500000000,2.000000000,command,api: mark a\u{fffd}b\u{fffd}[2J,\"left\nright\tside\"\n"
        );
    }
}
