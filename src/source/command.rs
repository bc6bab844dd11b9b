//! `command`: a program that writes an MJPEG stream to stdout (`rpicam-vid -t 0 --codec
//! mjpeg -o -`, `ffmpeg ... -f mjpeg -`), run with `sh -c`, split into frames.
//!
//! The program runs in its own process group, so that everything it starts is stopped
//! with it. Its stderr goes to the log (the last line is kept for error messages). If it
//! exits or stays silent for 5 s, the source is lost; the capture thread starts it again
//! with backoff. No device clock reaches us through a pipe: a frame's capture time is
//! when its first byte arrived (`design/time.md`).

use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clocks;
use crate::frame::FrameMeta;
use crate::source::stream::{FirstFrameError, FrameStream, Read, POLL};
use crate::source::{FrameSource, SourceError, SourceInfo};

/// The longest stderr line kept; the rest of a longer one is dropped.
const MAX_STDERR_LINE: usize = 4096;

/// Reads a camera program's stderr to its end, handing over each line: ended by `\n` or
/// `\r` (progress that rewrites one line, as ffmpeg's statistics do), at most
/// [`MAX_STDERR_LINE`] bytes, bytes that are not UTF-8 replaced. Reading by whole UTF-8
/// lines, one byte that was not UTF-8 ended the reading: the pipe filled and a program
/// that writes a line per frame (rpicam-vid) blocked, its camera lost; and a program that
/// only ever wrote `\r` grew one line for as long as it ran.
fn stderr_lines(mut from: impl std::io::Read, mut line_done: impl FnMut(&str)) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::with_capacity(256);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        for &b in &buf[..n] {
            if b == b'\n' || b == b'\r' {
                if !line.is_empty() {
                    line_done(&String::from_utf8_lossy(&line));
                    line.clear();
                }
            } else if line.len() < MAX_STDERR_LINE {
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        line_done(&String::from_utf8_lossy(&line));
    }
}

pub struct CommandSource {
    info: SourceInfo,
    command: String,
    child: Child,
    stdout: ChildStdout,
    stream: FrameStream,
    last_stderr: Arc<Mutex<String>>,
    /// The first frame, read while opening.
    first: Option<(FrameMeta, Vec<u8>)>,
}

/// Why a camera program gave no stream, with what it last said on stderr.
#[derive(Debug, thiserror::Error)]
pub enum ProgramError {
    #[error("cannot start `{command}`: {source}")]
    Start {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}`: {source}{}", last_message.as_ref().map(|m| format!(" (its last message: {m})")).unwrap_or_default())]
    NoFrame {
        command: String,
        source: FirstFrameError,
        last_message: Option<String>,
    },
}

impl CommandSource {
    /// Starts `command` and waits for its first frame (which fixes the frame size).
    pub fn open(
        camera: &str,
        command: &str,
        fps: f64,
        max_frame: usize,
        clocks: Arc<dyn Clocks>,
    ) -> Result<CommandSource, ProgramError> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            // systemd's notify socket and watchdog are hindsight's, not the camera program's.
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID")
            .spawn()
            .map_err(|source| ProgramError::Start {
                command: command.to_string(),
                source,
            })?;
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let last_stderr = Arc::new(Mutex::new(String::new()));
        {
            let (last, camera) = (last_stderr.clone(), camera.to_string());
            let _ = std::thread::Builder::new()
                .name(format!("stderr-{camera}"))
                .spawn(move || {
                    let _span = tracing::info_span!("command", camera = %camera).entered();
                    stderr_lines(stderr, |line| {
                        tracing::debug!(camera = %camera, "command: {line}");
                        if !line.trim().is_empty() {
                            *last.lock() = line.to_string();
                        }
                    });
                });
        }
        let mut src = CommandSource {
            info: SourceInfo {
                kind: crate::config::SourceKind::Command,
                model: command.to_string(),
                width: 0,
                height: 0,
                fps,
                codec: crate::config::Codec::Mjpg,
                encodes: false,
                controls: String::new(),
                controls_off: None,
            },
            command: command.to_string(),
            child,
            stdout,
            stream: FrameStream::new(max_frame, clocks),
            last_stderr,
            first: None,
        };
        let mut jpeg = Vec::new();
        let (stdout, child) = (&mut src.stdout, &mut src.child);
        match src
            .stream
            .first_frame(&mut jpeg, |buf| read_pipe(stdout, child, buf))
        {
            Ok(meta) => {
                src.info.width = u32::from(meta.width);
                src.info.height = u32::from(meta.height);
                src.first = Some((meta, jpeg));
                Ok(src)
            }
            Err(e) => {
                let last = src.last_stderr.lock().clone();
                Err(ProgramError::NoFrame {
                    command: command.to_string(),
                    source: e,
                    last_message: (!last.is_empty()).then_some(last),
                })
            }
        }
    }
}

/// Reads what the pipe has, waiting at most [`POLL`].
fn read_pipe(stdout: &mut ChildStdout, child: &mut Child, buf: &mut [u8]) -> Read {
    let mut pfd = libc::pollfd {
        fd: stdout.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pfd, 1, POLL.as_millis() as i32) };
    if rc == 0 {
        return Read::Idle;
    }
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Read::Idle;
        }
        return Read::End(format!("poll: {e}"));
    }
    match stdout.read(buf) {
        Ok(0) => {
            // Give it a moment to be reaped, for its exit status.
            let mut status = None;
            for _ in 0..50 {
                if let Ok(Some(s)) = child.try_wait() {
                    status = Some(s);
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Read::End(match status {
                Some(s) => format!("the program exited ({s})"),
                None => "the program closed its output".into(),
            })
        }
        Ok(k) => Read::Bytes(k),
        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Read::Idle,
        Err(e) => Read::End(format!("reading its output: {e}")),
    }
}

impl FrameSource for CommandSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        if let Some((meta, data)) = self.first.take() {
            scratch.clear();
            scratch.extend_from_slice(&data);
            return Ok((meta, scratch.as_slice()));
        }
        let (stdout, child) = (&mut self.stdout, &mut self.child);
        let (last_stderr, command) = (&self.last_stderr, &self.command);
        self.stream
            .next_frame_ref(|buf| read_pipe(stdout, child, buf))
            .map_err(|e| match e {
                SourceError::Lost(why) => {
                    let last = last_stderr.lock().clone();
                    SourceError::Lost(if last.is_empty() {
                        format!("`{command}`: {why}")
                    } else {
                        format!("`{command}`: {why} (its last message: {last})")
                    })
                }
                other => other,
            })
    }
}

impl Drop for CommandSource {
    fn drop(&mut self) {
        // The whole process group: `sh -c` and whatever it started.
        let pgid = self.child.id() as i32;
        // SAFETY: plain kill(2) on the group we created.
        unsafe {
            libc::kill(-pgid, libc::SIGTERM);
        }
        for _ in 0..50 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        stderr_lines(bytes, |l| out.push(l.to_string()));
        out
    }

    #[test]
    fn stderr_is_read_to_its_end_whatever_its_bytes() {
        // A byte that is not UTF-8, then more lines: all of them come.
        assert_eq!(
            lines_of(b"ok\n\xff\xfe bad\nafter\nlast"),
            ["ok", "\u{fffd}\u{fffd} bad", "after", "last"]
        );
        // Progress rewritten with \r: a line each, and nothing grows.
        let progress: Vec<u8> = (0..10_000)
            .flat_map(|i| format!("frame={i}\r").into_bytes())
            .collect();
        let lines = lines_of(&progress);
        assert_eq!(lines.len(), 10_000);
        assert_eq!(lines[9_999], "frame=9999");
        // A line longer than the limit is cut, and the next one is whole.
        let mut long = vec![b'x'; 3 * MAX_STDERR_LINE];
        long.extend_from_slice(b"\nnext\r\n");
        let lines = lines_of(&long);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), MAX_STDERR_LINE);
        assert_eq!(lines[1], "next");
    }
}
