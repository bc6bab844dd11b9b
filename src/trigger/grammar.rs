//! The command grammar of text triggers (ntfy messages): exact, case-insensitive, on
//! whole words, so that "Stop Recording" can never start a recording (the old tool matched
//! substrings, and did).
//!
//! ```text
//! start | start recording | record          start recording (the buffer, then live)
//! start 60 | start 60s | record 60 seconds  ... and stop by itself after 60 s
//! stop | stop recording                     stop recording
//! clip 30                                   write the last 30 s from the buffer
//! mark <text>                               mark (text kept as written)
//! status                                    report the state
//! ```
//! Any command may carry addresses, `@rig2`, anywhere: with addresses it is for the rigs
//! named (case-insensitive), without it is for every rig.

use crate::recorder::Command;

/// Longest message considered a command; longer text is not one (and is not parsed).
pub const MAX_COMMAND_LEN: usize = 1024;

/// What a message means to this rig.
#[derive(Clone, Debug, PartialEq)]
pub enum Parsed {
    Command(Command),
    /// Addressed to other rigs only.
    NotForUs {
        to: Vec<String>,
    },
    /// Not a command; the reason says why, for the log (and an optional reply).
    Unknown(String),
}

/// Parses `text` for rig `rig`.
pub fn parse(text: &str, rig: &str) -> Parsed {
    if text.len() > MAX_COMMAND_LEN {
        return Parsed::Unknown(format!(
            "{} bytes is too long for a command (at most {MAX_COMMAND_LEN})",
            text.len()
        ));
    }
    let mut words: Vec<&str> = Vec::new();
    let mut to: Vec<String> = Vec::new();
    for w in text.split_whitespace() {
        match w.strip_prefix('@') {
            Some(name) if !name.is_empty() => to.push(name.to_string()),
            _ => words.push(w),
        }
    }
    if !to.is_empty() && !to.iter().any(|t| t.eq_ignore_ascii_case(rig)) {
        return Parsed::NotForUs { to };
    }
    let Some((first, rest)) = words.split_first() else {
        return Parsed::Unknown("empty message".into());
    };
    let key = |i: usize| rest.get(i).map(|w| w.to_ascii_lowercase());
    let command = match first.to_ascii_lowercase().as_str() {
        "start" | "record" => {
            // `start`, `start recording`, `record`, each with an optional duration.
            let rest: &[&str] =
                if key(0).as_deref() == Some("recording") && first.eq_ignore_ascii_case("start") {
                    &rest[1..]
                } else {
                    rest
                };
            match rest {
                [] => Ok(Command::Start { seconds: None }),
                _ => duration(rest)
                    .map(|s| Command::Start { seconds: Some(s) })
                    .map_err(|e| e.to_string()),
            }
        }
        "stop" => match rest {
            [] => Ok(Command::Stop),
            [w] if w.eq_ignore_ascii_case("recording") => Ok(Command::Stop),
            _ => Err("stop takes no argument".to_string()),
        },
        "clip" => duration(rest)
            .map(|seconds| Command::Clip { seconds })
            .map_err(|e| e.to_string()),
        "mark" => {
            // The text as written: everything after the keyword, addresses removed.
            let text = rest.join(" ");
            if text.is_empty() {
                Err("mark needs a text".to_string())
            } else {
                Ok(Command::Mark { text })
            }
        }
        "status" if rest.is_empty() => Ok(Command::Status),
        _ => Err("not a command".to_string()),
    };
    match command {
        Ok(c) => Parsed::Command(c),
        Err(why) => Parsed::Unknown(why),
    }
}

/// Why words are not a number of seconds (said in the reply to the message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum DurationError {
    #[error("a number of seconds is needed")]
    Missing,
    #[error("too many words")]
    TooManyWords,
    #[error("`{0}` is not a unit of seconds")]
    Unit(String),
    #[error("`{0}` is not a number of seconds")]
    NotANumber(String),
    #[error("{0} seconds is not a duration")]
    NotPositive(String),
}

/// `60`, `60s`, `60 s`, `60 sec`, `60 seconds`, `1.5`: a positive, finite number of seconds.
fn duration(words: &[&str]) -> Result<f64, DurationError> {
    let (number, unit) = match words {
        [w] => match w.find(|c: char| c.is_ascii_alphabetic()) {
            Some(i) => (&w[..i], &w[i..]),
            None => (*w, ""),
        },
        [n, u] => (*n, *u),
        [] => return Err(DurationError::Missing),
        _ => return Err(DurationError::TooManyWords),
    };
    if !["", "s", "sec", "secs", "second", "seconds"].contains(&unit.to_ascii_lowercase().as_str())
    {
        return Err(DurationError::Unit(unit.to_string()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| DurationError::NotANumber(number.to_string()))?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(DurationError::NotPositive(number.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cmd(text: &str) -> Option<Command> {
        match parse(text, "rig1") {
            Parsed::Command(c) => Some(c),
            _ => None,
        }
    }

    #[test]
    fn the_phrase_table() {
        let start = Some(Command::Start { seconds: None });
        let table: &[(&str, Option<Command>)] = &[
            ("start", start.clone()),
            ("Start", start.clone()),
            ("START RECORDING", start.clone()),
            ("Start Recording", start.clone()),
            ("  start   recording  ", start.clone()),
            ("record", start.clone()),
            (
                "start 60",
                Some(Command::Start {
                    seconds: Some(60.0),
                }),
            ),
            (
                "start 60s",
                Some(Command::Start {
                    seconds: Some(60.0),
                }),
            ),
            (
                "Start 2.5 seconds",
                Some(Command::Start { seconds: Some(2.5) }),
            ),
            (
                "start recording 10",
                Some(Command::Start {
                    seconds: Some(10.0),
                }),
            ),
            ("record 5 sec", Some(Command::Start { seconds: Some(5.0) })),
            ("stop", Some(Command::Stop)),
            ("Stop Recording", Some(Command::Stop)),
            ("STOP", Some(Command::Stop)),
            ("clip 30", Some(Command::Clip { seconds: 30.0 })),
            ("Clip 10s", Some(Command::Clip { seconds: 10.0 })),
            (
                "mark trial 3 Reward",
                Some(Command::Mark {
                    text: "trial 3 Reward".into(),
                }),
            ),
            ("MARK  x", Some(Command::Mark { text: "x".into() })),
            ("status", Some(Command::Status)),
            // Not commands.
            ("", None),
            ("   ", None),
            ("restart", None),
            ("starting", None),
            ("please start", None),
            ("start stop", None),
            ("stop start", None),
            ("stop recording now", None),
            ("start -5", None),
            ("start 0", None),
            ("start inf", None),
            ("start NaN", None),
            ("start 5 minutes", None),
            ("clip", None),
            ("clip all", None),
            ("mark", None),
            ("status please", None),
            ("recording", None),
            ("Stop Recordings", None),
        ];
        for (text, expected) in table {
            assert_eq!(&cmd(text), expected, "{text:?}");
        }
    }

    #[test]
    fn stop_recording_never_starts_a_recording() {
        for text in [
            "Stop Recording",
            "stop recording",
            "STOP RECORDING",
            "Stop Recording @rig1",
        ] {
            assert_eq!(cmd(text), Some(Command::Stop), "{text}");
        }
    }

    #[test]
    fn addresses_pick_rigs() {
        assert_eq!(cmd("start @rig1"), Some(Command::Start { seconds: None }));
        assert_eq!(cmd("@RIG1 start"), Some(Command::Start { seconds: None }));
        assert_eq!(
            cmd("start @rig2 @rig1"),
            Some(Command::Start { seconds: None })
        );
        assert_eq!(
            parse("start @rig2", "rig1"),
            Parsed::NotForUs {
                to: vec!["rig2".into()]
            }
        );
        assert_eq!(
            cmd("mark @rig1 trial 3"),
            Some(Command::Mark {
                text: "trial 3".into()
            })
        );
        // A bare "@" is not an address.
        assert_eq!(
            cmd("mark @ home"),
            Some(Command::Mark {
                text: "@ home".into()
            })
        );
    }

    #[test]
    fn huge_text_is_refused_unread() {
        let text = format!("start {}", "x".repeat(MAX_COMMAND_LEN));
        assert!(matches!(parse(&text, "rig1"), Parsed::Unknown(why) if why.contains("too long")));
    }

    proptest! {
        /// Any text at all: no panic, and only texts that begin with a start word can start.
        #[test]
        fn any_text_parses_without_panic(text in ".{0,200}") {
            let p = parse(&text, "rig1");
            if let Parsed::Command(Command::Start { .. }) = p {
                let first = text.split_whitespace().find(|w| !w.starts_with('@')).unwrap_or("");
                prop_assert!(first.eq_ignore_ascii_case("start") || first.eq_ignore_ascii_case("record"));
            }
        }

        /// Words from the grammar's own vocabulary, in any order and case.
        #[test]
        fn shuffled_vocabulary_never_starts_unless_it_says_start(
            words in proptest::collection::vec(
                prop_oneof!["start", "Stop", "RECORDING", "record", "clip", "mark", "status", "10", "@rig1", "@other", "s"],
                0..6,
            )
        ) {
            let text = words.join(" ");
            if let Parsed::Command(Command::Start { .. }) = parse(&text, "rig1") {
                let first = words.iter().find(|w| !w.starts_with('@')).unwrap();
                prop_assert!(first.eq_ignore_ascii_case("start") || first.eq_ignore_ascii_case("record"));
                prop_assert!(!words.iter().any(|w| w.eq_ignore_ascii_case("stop")));
            }
        }
    }
}
