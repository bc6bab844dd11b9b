//! The terminal dashboard (ratatui): the recorder's state at a glance, and S / X / Q.
//!
//! It redraws four times a second from a status snapshot, the same [`Status`] the API
//! serves, so that it looks the same whether it runs inside `hindsight run` (on a
//! terminal: it reads the status hub and sends keys on the command bus) or as
//! `hindsight dashboard`, attached to a running service through the local API. Keys:
//! `S` start, `X` stop, `Q` (or Ctrl-C) quit. Attached, `Q` only detaches: the service
//! goes on recording. In-process, `Q` stops hindsight gracefully (files are finished).
//! The terminal is restored on exit and on a panic (`ratatui::init`).

pub mod view;

use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};

use crate::api::client::{ApiClient, ClientError, CommandError};
use crate::bus::CommandBus;
use crate::hub::StatusHub;
use crate::recorder::{Command, Origin, TriggerSource};
use crate::status::Status;
use view::View;

/// How often the dashboard redraws.
pub const TICK: Duration = Duration::from_millis(250);

/// The terminal the keys come from, as crossterm reads it (standard input if it is a
/// terminal, else `/dev/tty`), watched with `poll(2)` so that a terminal that went away
/// (an SSH session that dropped, a window closed) ends the dashboard with an error.
struct Input {
    fd: std::os::fd::RawFd,
    /// `/dev/tty`, when standard input is not the terminal.
    _tty: Option<std::fs::File>,
}

impl Input {
    fn open() -> std::io::Result<Input> {
        use std::os::fd::AsRawFd;
        // SAFETY: isatty only looks at the descriptor.
        if unsafe { libc::isatty(0) } == 1 {
            return Ok(Input { fd: 0, _tty: None });
        }
        let tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")?;
        Ok(Input {
            fd: tty.as_raw_fd(),
            _tty: Some(tty),
        })
    }

    /// Waits up to `limit` for input: whether some came; an error if the terminal hung up.
    fn wait(&self, limit: Duration) -> std::io::Result<bool> {
        let mut p = libc::pollfd {
            fd: self.fd,
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = limit.as_millis().clamp(0, i32::MAX as u128) as i32;
        // SAFETY: one pollfd, valid for the call.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            return if e.kind() == std::io::ErrorKind::Interrupted {
                Ok(false)
            } else {
                Err(e)
            };
        }
        if p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the terminal closed",
            ));
        }
        Ok(n > 0)
    }

    /// An error if the terminal hung up.
    fn check(&self) -> std::io::Result<()> {
        self.wait(Duration::ZERO).map(|_| ())
    }
}

/// How long the answer to a key stays on screen.
const MESSAGE_FOR: Duration = Duration::from_secs(6);

/// Why the dashboard could not read the status or send a key's command.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error(transparent)]
    Api(#[from] ClientError),
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error(transparent)]
    Bus(#[from] crate::bus::BusError),
    #[error("{0}: not a dashboard key")]
    NotAKey(Command),
    #[error("cannot start a thread to ask: {0}")]
    Thread(String),
}

/// A key's answer, for the screen, once it comes. A key does not wait for it: a start's
/// answer waits up to 1.5 s for its files, and a stop pressed meanwhile was read, and
/// stamped, only after it (the recording ran that much longer), and the screen froze.
pub struct Answer(Waiting);

enum Waiting {
    Bus(tokio::sync::oneshot::Receiver<crate::bus::Reply>, Instant),
    Thread(std::sync::mpsc::Receiver<Result<String, LinkError>>),
    Now(Option<Result<String, LinkError>>),
}

/// How long a key's answer is waited for.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

impl Answer {
    /// An answer there already.
    pub fn now(answer: Result<String, LinkError>) -> Answer {
        Answer(Waiting::Now(Some(answer)))
    }

    /// The answer, if it has come (once).
    fn take(&mut self) -> Option<Result<String, LinkError>> {
        match &mut self.0 {
            Waiting::Now(a) => a.take(),
            Waiting::Thread(rx) => match rx.try_recv() {
                Ok(a) => Some(a),
                Err(std::sync::mpsc::TryRecvError::Empty) => None,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    Some(Err(crate::bus::BusError::Closed.into()))
                }
            },
            Waiting::Bus(rx, asked) => match rx.try_recv() {
                Ok(reply) => Some(Ok(format!(
                    "{}: {}",
                    reply.outcome.kind(),
                    reply.outcome.message()
                ))),
                Err(tokio::sync::oneshot::error::TryRecvError::Closed) => {
                    Some(Err(crate::bus::BusError::Closed.into()))
                }
                Err(tokio::sync::oneshot::error::TryRecvError::Empty) => (asked.elapsed()
                    > ANSWER_WITHIN)
                    .then(|| Err(crate::bus::BusError::Timeout(ANSWER_WITHIN).into())),
            },
        }
    }
}

/// What the dashboard reads and where its keys go.
pub trait Link {
    fn status(&mut self) -> Result<Status, LinkError>;
    /// Sends `command` at once; its answer, for the screen, comes later.
    fn command(&mut self, command: Command) -> Result<Answer, LinkError>;
    /// Whether the recorder this link reaches is still running (in-process: not shut down).
    fn alive(&self) -> bool {
        true
    }
}

/// Inside `hindsight run`: the status hub and the command bus.
pub struct InProcess {
    pub hub: Arc<StatusHub>,
    pub bus: CommandBus,
    /// The control thread has ended (a signal stopped hindsight).
    pub finished: Box<dyn Fn() -> bool>,
}

impl Link for InProcess {
    fn status(&mut self) -> Result<Status, LinkError> {
        Ok(self.hub.snapshot())
    }

    fn command(&mut self, command: Command) -> Result<Answer, LinkError> {
        let text = key_text(&command);
        let rx = self
            .bus
            .post_now(command, Origin::new(TriggerSource::Key, text))?;
        Ok(Answer(Waiting::Bus(rx, Instant::now())))
    }

    fn alive(&self) -> bool {
        !(self.finished)()
    }
}

/// `hindsight dashboard`: a running service, through its API.
pub struct Attached {
    pub client: ApiClient,
}

impl Link for Attached {
    fn status(&mut self) -> Result<Status, LinkError> {
        Ok(self.client.status()?)
    }

    fn command(&mut self, command: Command) -> Result<Answer, LinkError> {
        if !matches!(command, Command::Start { .. } | Command::Stop) {
            return Err(LinkError::NotAKey(command));
        }
        // Asked on a thread of its own, at once: the API stamps it when it arrives.
        let client = self.client.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("dashboard-key".into())
            .spawn(move || {
                let r = match command {
                    Command::Start { seconds } => client.start(seconds),
                    _ => client.stop(),
                };
                let _ = tx.send(
                    r.map(|r| format!("{}: {}", r.outcome, r.message))
                        .map_err(LinkError::from),
                );
            })
            .map_err(|e| LinkError::Thread(e.to_string()))?;
        Ok(Answer(Waiting::Thread(rx)))
    }
}

fn key_text(c: &Command) -> &'static str {
    match c {
        Command::Start { .. } => "S",
        Command::Stop => "X",
        _ => "",
    }
}

/// What a key asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Quit,
}

/// The dashboard's state between frames.
pub struct App {
    view: View,
    message_at: Option<Instant>,
    /// Keys sent whose answers have not come yet, oldest first, with their names.
    waiting: Vec<(String, Answer)>,
    /// The last good status, kept on screen (marked stale) while the link fails.
    last: Option<Status>,
}

impl App {
    pub fn new(attached: Option<String>) -> App {
        App {
            view: View {
                attached,
                ..View::default()
            },
            message_at: None,
            waiting: Vec::new(),
            last: None,
        }
    }

    /// Reads a fresh snapshot (and, in-process, the newest log lines), and the answers to
    /// keys that came.
    pub fn refresh(&mut self, link: &mut dyn Link) {
        let mut i = 0;
        while i < self.waiting.len() {
            match self.waiting[i].1.take() {
                Some(answer) => {
                    let (name, _) = self.waiting.remove(i);
                    self.say(match answer {
                        Ok(m) => format!("{name}: {m}"),
                        Err(e) => format!("{name} failed: {e}"),
                    });
                }
                None => i += 1,
            }
        }
        match link.status() {
            Ok(s) => {
                self.last = Some(s);
                self.view.error = None;
            }
            Err(e) => self.view.error = Some(e.to_string()),
        }
        self.view.status = self.last.clone();
        self.view.now_unix = crate::clock::WallTime::now().as_secs_f64();
        if self.view.attached.is_none() {
            self.view.log = crate::logging::held_tail(50);
        }
        if self.message_at.is_some_and(|t| t.elapsed() > MESSAGE_FOR) {
            self.view.message = None;
            self.message_at = None;
        }
    }

    pub fn view(&self) -> &View {
        &self.view
    }

    /// S starts, X stops, Q or Ctrl-C quits.
    pub fn key(&mut self, code: KeyCode, modifiers: KeyModifiers, link: &mut dyn Link) -> Flow {
        let command = match code {
            KeyCode::Char('c') if modifiers.contains(KeyModifiers::CONTROL) => return Flow::Quit,
            KeyCode::Char('q' | 'Q') | KeyCode::Esc => return Flow::Quit,
            KeyCode::Char('s' | 'S') => Command::Start { seconds: None },
            KeyCode::Char('x' | 'X') => Command::Stop,
            _ => return Flow::Continue,
        };
        let name = command.to_string();
        match link.command(command) {
            Ok(answer) => {
                self.say(format!("{name}: sent"));
                self.waiting.push((name, answer));
            }
            Err(e) => self.say(format!("{name} failed: {e}")),
        }
        self.refresh(link);
        Flow::Continue
    }

    fn say(&mut self, message: String) {
        self.view.message = Some(message);
        self.message_at = Some(Instant::now());
    }
}

/// Runs the dashboard on this terminal until Q (or, in-process, until hindsight stops).
/// Returns whether the user quit (rather than the recorder ending by itself).
pub fn run(link: &mut dyn Link, attached: Option<String>) -> std::io::Result<bool> {
    let input = Input::open()?;
    let mut terminal = ratatui::try_init()?;
    let mut app = App::new(attached);
    let result = (|| -> std::io::Result<bool> {
        loop {
            if !link.alive() {
                return Ok(false);
            }
            app.refresh(link);
            terminal.draw(|f| view::render(f, app.view()))?;
            let until = Instant::now() + TICK;
            while let Some(left) = until.checked_duration_since(Instant::now()) {
                // crossterm is asked only while the terminal is there: on one that hung up
                // it reads end-of-file again and again inside `poll`/`read`, never
                // returning (a core at 100%, the process never exiting).
                input.check()?;
                if !event::poll(Duration::ZERO)? {
                    if !input.wait(left)? {
                        break;
                    }
                    continue;
                }
                if let Event::Key(k) = event::read()? {
                    if k.kind == KeyEventKind::Press
                        && app.key(k.code, k.modifiers, link) == Flow::Quit
                    {
                        return Ok(true);
                    }
                    terminal.draw(|f| view::render(f, app.view()))?;
                }
            }
        }
    })();
    // Not `ratatui::restore`: it says a failure with `eprintln!`, which panics when
    // stderr is the terminal that went away.
    let _ = ratatui::try_restore();
    result
}

#[cfg(test)]
mod tests;
