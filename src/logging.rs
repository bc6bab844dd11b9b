//! Logs, through `tracing`.
//!
//! - The filter comes from `HINDSIGHT_LOG` (else `RUST_LOG`), e.g. `HINDSIGHT_LOG=debug` or
//!   `HINDSIGHT_LOG=info,hindsight::trigger=debug`.
//! - Under systemd (stderr is the journal: `JOURNAL_STREAM` names it) every line starts
//!   with its syslog priority (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug), which
//!   journald takes as the entry's priority (`journalctl -p warning -u hindsight`), and
//!   carries no timestamp of its own (the journal has one) and no colours.
//!   `HINDSIGHT_LOG_FORMAT=journal|text` chooses explicitly.
//! - Every thread of the pipeline logs inside a span named after its stage
//!   (`capture{camera=top}`, `writer{camera=top}`, `control`, `lsl`, `ntfy`, `audio`, `api`,
//!   `disk`, ...), so a line says where it comes from.
//! - While the in-process dashboard owns the terminal, lines are kept in memory (the
//!   dashboard shows the newest) instead of being written over the screen; when it ends
//!   they are written out, so nothing logged is lost.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::OnceLock;

use parking_lot::Mutex;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// How many lines the dashboard's log keeps while it owns the terminal.
const HELD_LINES: usize = 2000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// For a terminal or a file: time, level, span, message.
    Text,
    /// For the systemd journal: syslog priority prefix, no time, no colour.
    Journal,
}

impl LogFormat {
    /// `HINDSIGHT_LOG_FORMAT`, else journal when stderr is the journal, else text.
    pub fn detect() -> LogFormat {
        match std::env::var("HINDSIGHT_LOG_FORMAT").as_deref() {
            Ok("journal") => return LogFormat::Journal,
            Ok("text") => return LogFormat::Text,
            _ => {}
        }
        match std::env::var("JOURNAL_STREAM") {
            Ok(v) if stderr_is(&v) => LogFormat::Journal,
            _ => LogFormat::Text,
        }
    }
}

/// Whether stderr is the stream `JOURNAL_STREAM` (`<device>:<inode>`) names.
fn stderr_is(journal_stream: &str) -> bool {
    let Some((dev, ino)) = journal_stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // SAFETY: fstat writes into the zeroed struct; fd 2 may be closed (then it fails).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(2, &mut st) };
    rc == 0 && st.st_dev as u64 == dev && st.st_ino as u64 == ino
}

/// The syslog priority journald reads from a line's `<N>` prefix.
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// Prefixes each event with its syslog priority, then formats it as `inner` does.
struct JournalFormat<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalFormat<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", syslog_priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Where log lines go: stderr, or held for the dashboard.
#[derive(Default)]
struct Sink {
    hold: bool,
    held: VecDeque<String>,
    /// Lines dropped from `held` while it was full (said when they are written out).
    overflow: u64,
    partial: Vec<u8>,
}

fn sink() -> &'static Mutex<Sink> {
    static SINK: OnceLock<Mutex<Sink>> = OnceLock::new();
    SINK.get_or_init(|| Mutex::new(Sink::default()))
}

/// Runs `f` while what C libraries write straight to stderr (ALSA's and JACK's error
/// messages while audio devices are probed, dozens of lines on a machine without a sound
/// card) is caught instead of printed; returns `f`'s result and those lines, for the
/// caller to sum up in one line of its own. Our own log lines wait meanwhile (the sink's
/// lock is held), so nothing of ours is caught or lost.
pub fn hush_libraries<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let _held = sink().lock();
    let mut fds = [0; 2];
    // SAFETY: plain fd calls on descriptors we own; fd 2 is restored before returning.
    let saved = unsafe { libc::dup(2) };
    let piped = saved >= 0
        && unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } == 0;
    if !piped {
        if saved >= 0 {
            unsafe { libc::close(saved) };
        }
        return (f(), Vec::new());
    }
    unsafe { libc::dup2(fds[1], 2) };
    let out = f();
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
        libc::close(fds[1]);
    }
    let mut caught = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        // SAFETY: reading into our buffer from our pipe (non-blocking; the write end is closed).
        let n = unsafe { libc::read(fds[0], buf.as_mut_ptr().cast(), buf.len()) };
        if n <= 0 {
            break;
        }
        caught.extend_from_slice(&buf[..n as usize]);
    }
    unsafe { libc::close(fds[0]) };
    let lines = String::from_utf8_lossy(&caught)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    (out, lines)
}

/// Sums up what [`hush_libraries`] caught: the line that says what is missing, by what
/// matters most for the default input (a sound server that does not answer, then a sound
/// card that is not there, then a JACK server that is not running: since cpal 0.17 every
/// ALSA PCM is probed, and JACK's complaint says nothing about the default device), else
/// the first line.
pub fn gist(lines: &[String]) -> Option<String> {
    const MISSING: [&[&str]; 3] = [
        &["Unable to connect", "Connection refused"],
        &["cannot find card", "Cannot get card index"],
        &["not running"],
    ];
    MISSING
        .iter()
        .find_map(|marks| lines.iter().find(|l| marks.iter().any(|m| l.contains(m))))
        .or(lines.first())
        .map(|l| l.split(") ").last().unwrap_or(l).trim().to_string())
}

/// The writer each event is formatted into (one `write` per event from `fmt`).
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut s = sink().lock();
        if !s.hold {
            // Written under the sink's lock: once `hold` returns, no line that was already
            // on its way can still land on the dashboard's screen (one did, and ratatui,
            // which redraws only what changed, kept the garbage).
            // A log line that cannot be written (stderr closed: `hindsight run | head`, a
            // journald restart) is lost; it must never stop the thread that logged it.
            let _ = io::stderr().write_all(buf);
            return Ok(buf.len());
        }
        s.partial.extend_from_slice(buf);
        while let Some(nl) = s.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = s.partial.drain(..=nl).collect();
            let text = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            if s.held.len() == HELD_LINES {
                s.held.pop_front();
                s.overflow += 1;
            }
            s.held.push_back(text);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !sink().lock().hold {
            let _ = io::stderr().flush();
        }
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;
    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

/// Sets up logging; `default` is the filter without `HINDSIGHT_LOG`/`RUST_LOG`.
pub fn init(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HINDSIGHT_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new(default));
    let format = LogFormat::detect();
    let base = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(LogWriter)
        // Its own complaints go to stderr with eprintln!, which panics when stderr is
        // a closed pipe: the signal thread died of that, leaving SIGTERM unanswered.
        .log_internal_errors(false)
        .with_thread_names(false);
    match format {
        LogFormat::Journal => {
            let inner = tracing_subscriber::fmt::format()
                .without_time()
                .with_ansi(false)
                .with_level(true);
            base.with_ansi(false)
                .event_format(JournalFormat(inner))
                .init();
        }
        LogFormat::Text => {
            base.with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .init();
        }
    }
}

/// From now on, keep log lines in memory instead of writing them: the dashboard owns the
/// terminal. Returns once no line is being written to stderr any more. Held lines keep their colour codes for [`release`]; [`held_tail`] strips them.
pub fn hold() {
    sink().lock().hold = true;
}

/// The newest `n` held lines, oldest first, without colour codes.
pub fn held_tail(n: usize) -> Vec<String> {
    let s = sink().lock();
    let skip = s.held.len().saturating_sub(n);
    s.held.iter().skip(skip).map(|l| strip_ansi(l)).collect()
}

/// Writes the held lines to stderr and goes back to writing lines as they come.
pub fn release() {
    let mut s = sink().lock();
    if !s.hold {
        return;
    }
    s.hold = false;
    let mut err = io::stderr().lock();
    if s.overflow > 0 {
        let _ = writeln!(
            err,
            "({} earlier log lines were not kept while the dashboard ran)",
            s.overflow
        );
    }
    for line in s.held.drain(..) {
        let _ = writeln!(err, "{line}");
    }
    if !s.partial.is_empty() {
        let _ = err.write_all(&s.partial);
        s.partial.clear();
    }
    s.overflow = 0;
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// An error with each of its causes, `outer: inner: innermost`: what a person needs to
/// tell "connection refused" from "no such host" (a library's outer error often says only
/// "error sending request").
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gist_names_what_the_default_input_lacks_not_the_first_complaint() {
        // As cpal 0.18 probes the PCMs of a machine without a sound card or sound server.
        let said: Vec<String> = [
            "ALSA lib confmisc.c:165:(snd_config_get_card) Cannot get card index for 0",
            "jack server is not running or cannot be started",
            "ALSA lib pulse.c:242:(pulse_connect) PulseAudio: Unable to connect: Connection refused",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            gist(&said).as_deref(),
            Some("PulseAudio: Unable to connect: Connection refused")
        );
        assert_eq!(
            gist(&said[..2]).as_deref(),
            Some("Cannot get card index for 0")
        );
        assert_eq!(
            gist(&["something else".to_string()]).as_deref(),
            Some("something else")
        );
        assert_eq!(gist(&[]), None);
    }

    #[test]
    fn priorities_are_the_syslog_ones_journald_reads() {
        assert_eq!(syslog_priority(&Level::ERROR), 3);
        assert_eq!(syslog_priority(&Level::WARN), 4);
        assert_eq!(syslog_priority(&Level::INFO), 6);
        assert_eq!(syslog_priority(&Level::DEBUG), 7);
        assert_eq!(syslog_priority(&Level::TRACE), 7);
    }

    #[test]
    fn colour_codes_are_removed() {
        assert_eq!(
            strip_ansi("\u{1b}[2m2026\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m capture: ok"),
            "2026  INFO capture: ok"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }

    #[test]
    fn journal_stream_must_name_stderr_itself() {
        assert!(!stderr_is("nonsense"));
        assert!(!stderr_is("1:x"));
        // SAFETY: as in `stderr_is`.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(2, &mut st) }, 0);
        assert!(stderr_is(&format!("{}:{}", st.st_dev, st.st_ino)));
        assert!(!stderr_is(&format!("{}:{}", st.st_dev, st.st_ino + 1)));
    }
}
