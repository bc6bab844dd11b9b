//! `command`: a program that writes an MJPEG stream to stdout (`rpicam-vid -t 0 --codec
//! mjpeg -o -`, `ffmpeg ... -f mjpeg -`), run with `sh -c`, split into frames.
//!
//! The program runs in its own process group, so that everything it starts is stopped
//! with it. Its stderr goes to the log (the last line is kept for error messages). If it
//! exits or stays silent for 5 s, the source is lost; the capture thread starts it again
//! with backoff. No device clock reaches us through a pipe: a frame's capture time is
//! when its first byte arrived (`design/time.md`).

use std::io::{BufRead, Read as _};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;

use parking_lot::Mutex;

use crate::clock::Clocks;
use crate::frame::FrameMeta;
use crate::source::stream::{FirstFrameError, FrameStream, Read, POLL};
use crate::source::{FrameSource, SourceError, SourceInfo};

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
                    for line in std::io::BufReader::new(stderr).lines() {
                        let Ok(line) = line else { break };
                        tracing::debug!(camera = %camera, "command: {line}");
                        if !line.trim().is_empty() {
                            *last.lock() = line;
                        }
                    }
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
