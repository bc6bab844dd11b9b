//! The ntfy trigger: start and stop from a phone (`curl -d "Start Recording" ntfy.sh/topic`
//! or the ntfy app), over ntfy's JSON stream (`/<topic>/json`: one JSON object per line,
//! `open`, `keepalive` and `message` events) on a plain HTTP GET.
//!
//! Reliability is the point (the old tool's subscriber timed out every 10 s, never resumed
//! and ran twice):
//! - one subscription at a time, reconnected with capped exponential backoff;
//! - resumed with `since=<last message id>`, so commands sent while it was down are
//!   applied once, in order;
//! - at start-up it first asks the server for the topic's recent messages (a poll) and
//!   subscribes from the id of the newest one sent before hindsight began: nothing sent
//!   before is ever applied, whatever second it was sent in (ntfy's times are whole
//!   seconds). If the server cannot be reached then, it is asked again until it answers;
//!   what was sent meanwhile is applied, and "before hindsight began" is then told by the
//!   server's own clock (its `Date`), so that a rig clock hours behind or minutes ahead
//!   neither replays old commands nor ignores new ones (`Subscriber::resume_point`);
//! - message ids already applied are ignored;
//! - a connection with no event and no keepalive for twice the server's keepalive interval
//!   (plus 5 s) is taken as dead and replaced;
//! - a refused token or password (401/403) is reported clearly and retried slowly.
//!
//! A command takes the time it arrived, unless it arrives late (replayed after a
//! reconnection): then the time the message was sent, so a late start still takes the
//! buffer from when the user asked. ntfy gives that time in whole seconds: a late start
//! (clip, mark) takes the first instant of its second, a late stop the last (never after
//! its arrival), so that nothing asked for is cut; the reply and the LSL event say so.
//! Those seconds are the server's: its own events place them on this machine's clocks
//! when the two clocks disagree (`ServerClock`). Each command goes to the recorder as it
//! is read, and its answer (for the reply topic) is awaited apart (`Subscriber::run`).
//! Late messages that come together are handed to the recorder as one batch, so that a
//! start replayed with its stop records exactly the span between them.
//!
//! What belongs here: the subscription, its resumption and the reply topic. What does
//! not: what a message's words mean (`trigger::grammar`), carrying commands out (`control`).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use serde::Deserialize;

use super::grammar::{self, Parsed};
use crate::bus::LslMsg;
use crate::bus::{Answers, CommandBus, Timed};
use crate::clock::{ClockPair, LslTime, WallTime};
use crate::recorder::{one_line, Command, Origin, Outcome, TriggerSource};
use crate::shutdown::Shutdown;

/// How hindsight proves who it is to the server.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Bearer(String),
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    // Secrets never reach a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(…)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, …)"),
        }
    }
}

#[derive(Clone, Debug)]
pub struct NtfySettings {
    /// e.g. `https://ntfy.sh` (no trailing slash).
    pub server: String,
    pub topic: String,
    pub auth: Option<Auth>,
    pub reply_topic: Option<String>,
    /// Answer messages that are not commands (on the reply topic).
    pub reply_unknown: bool,
    /// The rig name commands may address (`start @rig`).
    pub rig: String,
    /// The server's keepalive interval.
    pub keepalive: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
}

pub use crate::status::NtfyStatus;

/// One event of ntfy's JSON stream (one line).
#[derive(Debug, Deserialize)]
struct NtfyEvent {
    id: String,
    time: i64,
    event: String,
    #[serde(default)]
    message: Option<String>,
}

/// Message ids already applied: the newest 4096.
#[derive(Default)]
struct Seen {
    order: VecDeque<String>,
    set: HashSet<String>,
}

impl Seen {
    /// True if `id` is new.
    fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == 4096 {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
        self.order.push_back(id.to_string());
        self.set.insert(id.to_string());
        true
    }
}

/// Why a subscription ended.
#[derive(Debug)]
enum Ended {
    Refused(String),
    Failed(String),
}

/// What the server answered when asked for the topic's recent messages (a poll).
struct Recent {
    /// Each message's id and time (server seconds), oldest first.
    messages: Vec<(String, i64)>,
    /// The server's second when it answered (its `Date` header), if it said.
    server_secs: Option<i64>,
    /// When the answer came, on this machine's clocks.
    answered: ClockPair,
}

impl Recent {
    /// The server's second in which `began` (on this machine's clocks) lay, or the one
    /// after: this machine's wall clock's second when it agrees with the server's `Date`,
    /// else counted back from `Date` (whole seconds: the later of the two it could be).
    fn second_of(&self, began: ClockPair) -> i64 {
        let ours = began.wall.as_nanos().div_euclid(SECOND);
        let Some(date) = self.server_secs else {
            return ours;
        };
        let wall = self.answered.wall.as_nanos();
        if (date * SECOND - SECOND / 2..=(date + 1) * SECOND + SECOND / 2).contains(&wall) {
            return ours;
        }
        let since = self.answered.lsl.as_nanos() - began.lsl.as_nanos();
        ((date + 1) * SECOND - since).div_euclid(SECOND)
    }
}

/// Where a subscription begins, from the recent messages (`messages`, asked for from
/// the server's second `asked_from`) and the server's second `began` in which
/// hindsight began (or the one after).
#[derive(Debug, PartialEq, Eq)]
enum Resume {
    /// After this message, the newest sent in or before `began`.
    After(String),
    /// From this second: nothing was sent from it up to `began`.
    From(i64),
    /// Ask again from this second: the question began after `began` (a clock ahead of
    /// the server's), so what was sent just before hindsight began is not known.
    AskFrom(i64),
}

fn resume(messages: &[(String, i64)], asked_from: i64, began: i64) -> Resume {
    if let Some((id, _)) = messages.iter().rev().find(|(_, t)| *t <= began) {
        return Resume::After(id.clone());
    }
    if asked_from <= began + 1 {
        Resume::From(asked_from)
    } else {
        Resume::AskFrom(began - 60)
    }
}

/// Why the server could not be reached, with the causes ("connection refused", "failed
/// to lookup address"), not only reqwest's "error sending request"; the server and topic
/// are said apart.
fn unreachable(e: reqwest::Error) -> String {
    let why = crate::logging::error_chain(&e.without_url());
    format!("cannot reach the server ({why})")
}

/// Why the server turns hindsight away, for a 401 or 403.
fn refusal(code: reqwest::StatusCode) -> Option<String> {
    (code == 401 || code == 403).then(|| {
        format!(
            "{code}: the server refuses this topic to hindsight's credentials \
             (check trigger.ntfy.token_env, token_file or user)"
        )
    })
}

/// Why the ntfy credentials could not be found; each names its key.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("trigger.ntfy.{key}: cannot read {}: {source}", path.display())]
    Unreadable {
        key: &'static str,
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("trigger.ntfy.{key}: {} is empty", path.display())]
    Empty {
        key: &'static str,
        path: std::path::PathBuf,
    },
    #[error(
        "trigger.ntfy.user is set, but no password: set password_file, or the variable {variable}"
    )]
    NoPassword { variable: String },
}

/// Credentials from the config: a token (written in, from a file, or from an environment
/// variable, in that order), else a user and password. Errors name the key.
pub fn resolve_auth(cfg: &crate::config::NtfyConfig) -> Result<Option<Auth>, AuthError> {
    let read = |key: &'static str, path: &std::path::Path| -> Result<String, AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Unreadable {
            key,
            path: path.to_path_buf(),
            source,
        })?;
        let t = text.trim().to_string();
        if t.is_empty() {
            return Err(AuthError::Empty {
                key,
                path: path.to_path_buf(),
            });
        }
        Ok(t)
    };
    let env = |name: &Option<String>| {
        let n = name.as_ref()?;
        let v = std::env::var(n).ok()?.trim().to_string();
        if v.is_empty() {
            // Set, but to nothing: almost certainly a mistake, and the server's refusal
            // would not say why.
            tracing::warn!("ntfy: {n} is set but empty: no credential is sent from it");
            return None;
        }
        Some(v)
    };
    if let Some(t) = &cfg.token {
        return Ok(Some(Auth::Bearer(t.clone())));
    }
    if let Some(p) = &cfg.token_file {
        return Ok(Some(Auth::Bearer(read("token_file", p)?)));
    }
    if let Some(t) = env(&cfg.token_env) {
        return Ok(Some(Auth::Bearer(t)));
    }
    if let Some(user) = &cfg.user {
        let password = match &cfg.password_file {
            Some(p) => read("password_file", p)?,
            None => env(&cfg.password_env).ok_or_else(|| AuthError::NoPassword {
                variable: cfg
                    .password_env
                    .as_deref()
                    .unwrap_or("named by password_env")
                    .to_string(),
            })?,
        };
        return Ok(Some(Auth::Basic {
            user: user.clone(),
            password,
        }));
    }
    Ok(None)
}

/// Starts the subscriber (and the reply publisher) on a thread of their own, with a small
/// tokio runtime. `notices` are texts to publish on the reply topic (files closed, errors);
/// one publisher sends them and the replies to commands in the order things happened: a
/// command's answer has its place from when the command was read, before the "finished"
/// of the files it made, though the answer itself comes later (a start's waits up to
/// 1.5 s for its files).
pub fn spawn(
    settings: NtfySettings,
    bus: CommandBus,
    status: Arc<Mutex<NtfyStatus>>,
    notices: tokio::sync::mpsc::UnboundedReceiver<String>,
    lsl: Option<crossbeam_channel::Sender<LslMsg>>,
    stop: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    {
        let mut s = status.lock();
        s.server = settings.server.clone();
        s.topic = settings.topic.clone();
    }
    std::thread::Builder::new()
        .name("ntfy".into())
        .spawn(move || {
            let _span = tracing::info_span!("ntfy").entered();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime for ntfy");
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .build()
                    .expect("HTTP client");
                let (replies, lines) = tokio::sync::mpsc::unbounded_channel();
                let sub = Subscriber {
                    settings: &settings,
                    client: &client,
                    bus: &bus,
                    status: &status,
                    lsl: lsl.as_ref(),
                    stop: &stop,
                    replies,
                    holds: std::sync::atomic::AtomicU64::new(0),
                };
                tokio::join!(
                    sub.run(),
                    publish_notices(&settings, &client, (lines, notices), &stop)
                );
            });
        })
}

struct Subscriber<'a> {
    settings: &'a NtfySettings,
    client: &'a reqwest::Client,
    bus: &'a CommandBus,
    status: &'a Mutex<NtfyStatus>,
    lsl: Option<&'a crossbeam_channel::Sender<LslMsg>>,
    stop: &'a Shutdown,
    /// To the reply publisher: its own replies, and the places held for answers and
    /// the answers (see [`spawn`]).
    replies: tokio::sync::mpsc::UnboundedSender<Line>,
    /// The places held for answers so far.
    holds: std::sync::atomic::AtomicU64,
}

impl Subscriber<'_> {
    fn set_state(&self, state: String, connected: bool, error: Option<String>) {
        let changed = {
            let mut s = self.status.lock();
            let changed = s.state != state;
            s.state = state.clone();
            s.connected = connected;
            if connected {
                // Connected again: what went wrong before is over.
                s.last_error = None;
            } else if error.is_some() {
                s.last_error = error;
            }
            changed
        };
        if changed {
            if connected || state == "connecting" {
                tracing::info!("ntfy: {state}");
            } else {
                tracing::warn!("ntfy: {state}");
            }
            if let Some(lsl) = self.lsl {
                let _ = lsl.try_send(LslMsg::Event {
                    camera: None,
                    at: LslTime::now(),
                    event: crate::event::Event::Ntfy {
                        state: state.to_string(),
                        topic: self.settings.topic.clone(),
                    },
                });
            }
        }
    }

    async fn run(&self) {
        let Some(since) = self.resume_point().await else {
            return;
        };
        // The stream is read apart from the answers: a start's answer waits for its files
        // (up to `control::REPLY_WAIT`, or while a writer finishes the file before), and
        // a message read only after it took the time it was read and reached the recorder
        // that late (a mark late, a stop recording more than asked). Each command goes to
        // the recorder as it is read, with the time it came; the answers follow in order.
        let (answers, pending) = tokio::sync::mpsc::unbounded_channel();
        tokio::join!(self.read(since, answers), self.answer_in_order(pending));
    }

    /// Puts the answers to the commands sent in their places, in order, until the reader
    /// is done.
    async fn answer_in_order(&self, mut pending: tokio::sync::mpsc::UnboundedReceiver<Pending>) {
        while let Some((hold, answers)) = pending.recv().await {
            let mut lines = Vec::new();
            match answers.replies().await {
                Ok(replies) => {
                    for reply in replies {
                        self.status.lock().commands_applied += 1;
                        let mut msg = match &reply.outcome {
                            Outcome::Done(m) => m.clone(),
                            Outcome::NoOp(m) => format!("nothing done: {m}"),
                            Outcome::Rejected(m) => format!("refused: {m}"),
                            Outcome::Failed(m) => format!("failed: {m}"),
                        };
                        if !reply.files.is_empty() {
                            msg.push_str(": ");
                            msg.push_str(&reply.files.join(", "));
                        }
                        lines.push(msg);
                    }
                }
                Err(e) => tracing::error!("ntfy: no answer to commands sent: {e}"),
            }
            let _ = self.replies.send(Line::Fill(hold, lines));
        }
    }

    /// Subscribes, and again after each ending, until asked to stop; hands each command
    /// (or batch of replayed ones) to the recorder as it is read; the answers to `answers`.
    async fn read(&self, mut since: String, answers: AnswersTo) {
        let s = self.settings;
        let mut seen = Seen::default();
        let mut clock = ServerClock::default();
        let mut backoff = s.backoff_initial;
        while !self.stop.stopping() {
            self.set_state("connecting".into(), false, None);
            let (ended, was_open) = self
                .subscribe(&mut since, &mut seen, &mut clock, &answers)
                .await;
            if self.stop.stopping() {
                return;
            }
            if was_open {
                backoff = s.backoff_initial;
            }
            self.wait_after(ended, &mut backoff).await;
        }
    }

    /// Says why the server could not be used (`ended`) and waits before the next try:
    /// `backoff`, doubled for the next time up to the maximum, or the maximum after a
    /// refusal, which will not go away by itself soon.
    async fn wait_after(&self, ended: Ended, backoff: &mut Duration) {
        let s = self.settings;
        let (wait, state, error) = match ended {
            Ended::Refused(why) => (s.backoff_max, format!("refused: {why}"), why),
            Ended::Failed(why) => {
                let wait = *backoff;
                *backoff = (*backoff * 2).min(s.backoff_max);
                (wait, format!("disconnected: {why}"), why)
            }
        };
        self.set_state(
            format!("{state}; retrying in {:.0} s", wait.as_secs_f64()),
            false,
            Some(error),
        );
        self.sleep(wait).await;
    }

    /// Where the subscription begins (`since=`): after the newest message sent before
    /// hindsight began, so that none of those is ever applied, whatever second it was
    /// sent in (ntfy's times are whole seconds), and every later one is, also what was
    /// sent while the server could not be reached. The server is asked for its recent
    /// messages, again (with the subscription's backoff) until it answers, and its own
    /// clock (`Date`) says which were sent before hindsight began. Taken by this
    /// machine's clock, a rig hours behind (a Pi without a real-time clock, before NTP)
    /// that could not reach the server at start-up replayed the commands of the hours
    /// before it began, and one minutes ahead ignored every command of its first minutes.
    /// `None` if asked to stop first.
    async fn resume_point(&self) -> Option<String> {
        let s = self.settings;
        let began = ClockPair::now();
        // A minute back, first in this machine's seconds, then in the server's.
        let mut from = began.wall.as_nanos().div_euclid(SECOND) - 60;
        let mut asked_again = false;
        let mut backoff = s.backoff_initial;
        while !self.stop.stopping() {
            self.set_state("connecting".into(), false, None);
            // A server that takes the connection and never answers holds this question
            // for its 10 s timeout: a stop meanwhile does not wait for it.
            let recent = tokio::select! {
                recent = self.recent_messages(from) => recent,
                () = self.until_stopping() => return None,
            };
            let recent = match recent {
                Ok(r) => r,
                Err(ended) => {
                    self.wait_after(ended, &mut backoff).await;
                    continue;
                }
            };
            let second = recent.second_of(began);
            let since = match resume(&recent.messages, from, second) {
                Resume::AskFrom(t) if !asked_again => {
                    tracing::info!(
                        "ntfy: this machine's clock is ahead of the server's; asking again \
                         in the server's seconds"
                    );
                    asked_again = true;
                    from = t;
                    continue;
                }
                // The server's clock went back between the two questions.
                Resume::AskFrom(_) => (second + 1).to_string(),
                Resume::After(id) => id,
                Resume::From(t) => t.to_string(),
            };
            let after = recent.messages.iter().filter(|(_, t)| *t > second).count();
            if after > 0 {
                tracing::info!(
                    "ntfy: {after} message(s) sent after hindsight began, while the server \
                     could not be reached, will be applied"
                );
            }
            tracing::info!(
                "ntfy: applying the messages sent after {} by the server's clock (subscribing \
                 from {since})",
                WallTime::from_nanos(second * SECOND)
                    .to_local()
                    .format("%H:%M:%S")
            );
            return Some(since);
        }
        None
    }

    /// The topic's messages sent in the server's second `from` or later (`poll=1`: the
    /// cached messages, then the answer ends), and the server's clock.
    async fn recent_messages(&self, from: i64) -> Result<Recent, Ended> {
        let s = self.settings;
        let url = format!("{}/{}/json?poll=1&since={from}", s.server, s.topic);
        let req =
            with_auth(self.client.get(&url), s.auth.as_ref()).timeout(Duration::from_secs(10));
        let failed = |e: reqwest::Error| Ended::Failed(unreachable(e));
        let resp = req.send().await.map_err(failed)?;
        let answered = ClockPair::now();
        let code = resp.status();
        if let Some(why) = refusal(code) {
            return Err(Ended::Refused(why));
        }
        if !code.is_success() {
            return Err(Ended::Failed(format!("the server answered {code}")));
        }
        let server_secs = resp
            .headers()
            .get(reqwest::header::DATE)
            .and_then(|d| d.to_str().ok())
            .and_then(|d| chrono::DateTime::parse_from_rfc2822(d).ok())
            .map(|d| d.timestamp());
        let text = resp.text().await.map_err(failed)?;
        let messages = text
            .lines()
            .filter_map(|l| serde_json::from_str::<NtfyEvent>(l).ok())
            .filter(|e| e.event == "message")
            .map(|e| (e.id, e.time))
            .collect();
        Ok(Recent {
            messages,
            server_secs,
            answered,
        })
    }

    /// Returns once asked to stop.
    async fn until_stopping(&self) {
        while !self.stop.stopping() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Sleeps `d`, or less if asked to stop.
    async fn sleep(&self, d: Duration) {
        let end = tokio::time::Instant::now() + d;
        while tokio::time::Instant::now() < end && !self.stop.stopping() {
            tokio::time::sleep_until(
                end.min(tokio::time::Instant::now() + Duration::from_millis(200)),
            )
            .await;
        }
    }

    /// One subscription, until it ends. Returns why, and whether it ever opened.
    async fn subscribe(
        &self,
        since: &mut String,
        seen: &mut Seen,
        clock: &mut ServerClock,
        answers: &AnswersTo,
    ) -> (Ended, bool) {
        let s = self.settings;
        let url = format!("{}/{}/json?since={}", s.server, s.topic, since);
        let req = with_auth(self.client.get(&url), s.auth.as_ref());
        // Dead if neither a message nor a keepalive comes for this long.
        let dead_after = s.keepalive * 2 + Duration::from_secs(5);
        // Counted on only if this connection ends as the ones before it did.
        let silent_before = std::mem::take(&mut clock.silent_deaths);
        let send = req.send();
        tokio::pin!(send);
        let mut waited = Duration::ZERO;
        let mut resp = loop {
            if self.stop.stopping() {
                return (Ended::Failed("stopping".into()), false);
            }
            if waited >= dead_after {
                return (
                    Ended::Failed(format!("no answer for {:.0} s", waited.as_secs_f64())),
                    false,
                );
            }
            let step = Duration::from_millis(250);
            match tokio::time::timeout(step, &mut send).await {
                Err(_) => waited += step,
                Ok(Ok(r)) => break r,
                Ok(Err(e)) => return (Ended::Failed(unreachable(e)), false),
            }
        };
        let code = resp.status();
        if let Some(why) = refusal(code) {
            return (Ended::Refused(why), false);
        }
        if !code.is_success() {
            return (Ended::Failed(format!("the server answered {code}")), false);
        }
        let mut opened = false;
        let keepalives_before = clock.keepalives;
        let mut lines = Lines::default();
        // Late (replayed) commands, held until the replay is over: handed over together.
        let mut batch: Vec<Late> = Vec::new();
        let ended = 'stream: loop {
            let quiet = (!batch.is_empty()).then_some(REPLAY_QUIET);
            match next_chunk(&mut resp, dead_after, quiet, self.stop).await {
                Next::Quiet => self.apply(std::mem::take(&mut batch), answers),
                Next::Stop => break Ended::Failed("stopping".into()),
                Next::Dead => {
                    // A server that is up but sends keepalives less often than
                    // configured: each connection opens, hears none and is given up
                    // (a frozen server would not open the next).
                    let silent = opened && clock.keepalives == keepalives_before;
                    clock.silent_deaths = if silent { silent_before + 1 } else { 0 };
                    let hint = if clock.silent_deaths >= 2 {
                        format!(
                            "; {} connections in a row opened and heard no keepalive: \
                             the server sends them less often than every {:.0} s \
                             (trigger.ntfy.keepalive_interval): set that to the server's \
                             keepalive-interval (ntfy's default is 45 s)",
                            clock.silent_deaths,
                            s.keepalive.as_secs_f64()
                        )
                    } else {
                        String::new()
                    };
                    break Ended::Failed(format!(
                        "no event or keepalive for {:.0} s (dead connection){hint}",
                        dead_after.as_secs_f64()
                    ));
                }
                Next::Ended => break Ended::Failed("the server closed the stream".into()),
                Next::Error(e) => {
                    let why = crate::logging::error_chain(&e.without_url());
                    break Ended::Failed(format!("the stream broke ({why})"));
                }
                Next::Chunk(bytes) => {
                    lines.push(&bytes);
                    while let Some(line) = lines.next_line() {
                        let line = match line {
                            Ok(l) => l,
                            Err(why) => break 'stream Ended::Failed(why),
                        };
                        if line.trim().is_empty() {
                            continue;
                        }
                        if !opened {
                            // The server's first line (an `open` event) or anything
                            // after it: the subscription is up.
                            opened = true;
                            self.set_state(
                                format!("connected to {}/{}", s.server, s.topic),
                                true,
                                None,
                            );
                        }
                        if let Some(cmd) = self.on_data(&line, since, seen, clock) {
                            let late = cmd.note.is_some();
                            batch.push(cmd);
                            if !late || batch.len() >= 100 {
                                self.apply(std::mem::take(&mut batch), answers);
                            }
                        }
                    }
                }
            }
        };
        // What was replayed before the connection ended is still applied.
        self.apply(batch, answers);
        (ended, opened)
    }

    /// One line of the stream (a JSON event): the command it carries, if any, with its
    /// time.
    fn on_data(
        &self,
        data: &str,
        since: &mut String,
        seen: &mut Seen,
        clock: &mut ServerClock,
    ) -> Option<Late> {
        let ev: NtfyEvent = match serde_json::from_str(data) {
            Ok(ev) => ev,
            Err(e) => {
                tracing::warn!(
                    "ntfy: ignoring an event that is not ntfy JSON ({e}): {:.200}",
                    data
                );
                return None;
            }
        };
        if ev.event == "open" || ev.event == "keepalive" {
            // Made and sent as they happen: what they say of the server's clock.
            clock.observe(ClockPair::now().lsl, ev.time);
            if ev.event == "keepalive" {
                clock.keepalives += 1;
                clock.silent_deaths = 0;
            }
        }
        if ev.event != "message" {
            return None; // open, keepalive, poll_request
        }
        if !seen.insert(&ev.id) {
            tracing::info!("ntfy: message {} already applied; ignored", ev.id);
            return None;
        }
        *since = ev.id.clone();
        let text = ev.message.unwrap_or_default();
        let arrived = ClockPair::now();
        {
            let mut st = self.status.lock();
            st.last_message = Some(text.chars().take(200).collect());
            st.last_message_time = Some(arrived.wall.as_secs_f64());
            st.last_message_id = Some(ev.id.clone());
        }
        match grammar::parse(&text, &self.settings.rig) {
            Parsed::Command(command) => {
                let (at, note) = command_time(&command, ev.time, arrived, clock);
                return Some(Late {
                    command,
                    text,
                    at,
                    note,
                });
            }
            Parsed::NotForUs { to } => {
                tracing::info!(
                    "ntfy: `{:.80}` is for {}; not this rig",
                    text,
                    to.join(", ")
                );
            }
            Parsed::Unknown(why) => {
                tracing::info!(
                    "ntfy: `{:.80}` is not a command ({why}); ignored",
                    one_line(&text)
                );
                if self.settings.reply_unknown {
                    let _ = self.replies.send(Line::Text(format!(
                        "not understood: \"{:.80}\" ({why}). Commands: start [SECONDS], stop, clip SECONDS, mark TEXT, status",
                        text
                    )));
                }
            }
        }
        None
    }

    /// Hands commands to the recorder, in order, as one step, now; their answers go to
    /// `answers` (see [`Subscriber::run`]).
    fn apply(&self, batch: Vec<Late>, answers: &AnswersTo) {
        if batch.is_empty() {
            return;
        }
        let timed = batch
            .into_iter()
            .map(|l| Timed {
                command: l.command,
                origin: Origin::new(
                    TriggerSource::Ntfy,
                    l.text.chars().take(200).collect::<String>(),
                ),
                at: l.at,
                note: l.note,
            })
            .collect();
        match self.bus.post_batch(timed) {
            // The receiver lives as long as the reader (both in `run`).
            Ok(a) => {
                // The answer's place among the replies and notices is now, before the
                // "finished" of the files these commands make.
                let hold = self
                    .holds
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let _ = self.replies.send(Line::Hold(hold));
                drop(answers.send((hold, a)));
            }
            Err(e) => tracing::error!("ntfy: commands not applied: {e}"),
        }
    }
}

/// Where the stream's reader sends the answers of the commands it handed over, each with
/// the place held for it among the replies (see [`Subscriber::run`]).
type AnswersTo = tokio::sync::mpsc::UnboundedSender<Pending>;

type Pending = (u64, Answers);

/// What goes to the reply publisher from the subscriber.
#[derive(Debug)]
enum Line {
    /// A reply of its own (a message that is not a command).
    Text(String),
    /// A place for the answer to commands just handed over.
    Hold(u64),
    /// The answer (its lines, none if it never came) for its place.
    Fill(u64, Vec<String>),
}

/// A command from a message, with the time it counts from and, when that is not its
/// arrival (a late, replayed message), how it was found.
struct Late {
    command: Command,
    text: String,
    at: ClockPair,
    note: Option<String>,
}

/// A replay is over when no message came for this long: the late commands gathered so
/// far go to the recorder together.
const REPLAY_QUIET: Duration = Duration::from_millis(300);

enum Next {
    /// Bytes of the stream.
    Chunk(bytes::Bytes),
    /// Nothing for the `quiet` time asked for.
    Quiet,
    /// The server ended the response.
    Ended,
    Error(reqwest::Error),
    /// Nothing came for the dead-connection bound.
    Dead,
    Stop,
}

/// The next bytes of the stream, waiting in short steps so that `stop` is noticed;
/// `Quiet` after `quiet_after` without any, if given.
async fn next_chunk(
    resp: &mut reqwest::Response,
    dead_after: Duration,
    quiet_after: Option<Duration>,
    stop: &Shutdown,
) -> Next {
    let step = quiet_after.map_or(Duration::from_millis(250), |q| {
        q.min(Duration::from_millis(250))
    });
    let mut quiet = Duration::ZERO;
    loop {
        if stop.stopping() {
            return Next::Stop;
        }
        if quiet_after.is_some_and(|q| quiet >= q) {
            return Next::Quiet;
        }
        if quiet >= dead_after {
            return Next::Dead;
        }
        match tokio::time::timeout(step, resp.chunk()).await {
            Err(_) => quiet += step,
            Ok(Ok(Some(bytes))) => return Next::Chunk(bytes),
            Ok(Ok(None)) => return Next::Ended,
            Ok(Err(e)) => return Next::Error(e),
        }
    }
}

/// Splits the stream into lines; a line may come in several chunks.
#[derive(Default)]
struct Lines {
    buf: Vec<u8>,
}

/// Longest line taken: ntfy's messages are at most 4 KiB, its JSON a little more.
const MAX_LINE: usize = 64 << 10;

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole line, without its newline; an error for a line too long or not
    /// UTF-8 (the stream is not ntfy's).
    fn next_line(&mut self) -> Option<Result<String, String>> {
        let Some(end) = memchr::memchr(b'\n', &self.buf) else {
            if self.buf.len() > MAX_LINE {
                self.buf.clear();
                return Some(Err(format!(
                    "a line of more than {} KiB: not an ntfy stream",
                    MAX_LINE >> 10
                )));
            }
            return None;
        };
        let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
        Some(
            String::from_utf8(line)
                .map_err(|_| "a line that is not UTF-8: not an ntfy stream".into()),
        )
    }
}

const SECOND: i64 = 1_000_000_000;

/// The ntfy server's clock against this machine's, from the events the server makes and
/// sends as they happen (`open`, `keepalive`). Each carries the server's time in whole
/// seconds `t`, so `d = arrival − t` (arrival on the monotonic clock, which no wall clock
/// step moves) lies in `[x, x + 1 s)` plus the network's delay, where `x` is where the
/// server's second `t` began on the monotonic clock, less `t`. The newest 64 (48 minutes
/// of ntfy's 45 s keepalives) are kept, so that a step of the server's clock is followed.
#[derive(Default)]
struct ServerClock {
    d: VecDeque<i64>,
    /// Keepalives heard, in all connections.
    keepalives: u64,
    /// Connections in a row that opened, heard no keepalive and were given up as dead.
    silent_deaths: u32,
}

impl ServerClock {
    const KEEP: usize = 64;
    /// How far the two clocks may differ and still be taken to agree: the network's delay.
    const AGREE: i64 = SECOND / 2;

    fn observe(&mut self, arrived: LslTime, server_secs: i64) {
        if self.d.len() == Self::KEEP {
            self.d.pop_front();
        }
        self.d
            .push_back(arrived.as_nanos() - server_secs.saturating_mul(SECOND));
    }

    /// Where, on the monotonic clock, the server's second `t` began: at `t + x` for some
    /// `x` in the range returned, `None` while nothing was heard. When this machine's wall
    /// clock agrees with the server's (`wall_minus_lsl`: its current pairing), `x` is
    /// taken to be exactly what the wall clock says; otherwise the range the events allow.
    fn began(&self, wall_minus_lsl: i64) -> Option<(i64, i64)> {
        let hi = *self.d.iter().min()?;
        let max = *self.d.iter().max()?;
        let ours = -wall_minus_lsl;
        if (max - SECOND - Self::AGREE..=hi).contains(&ours) {
            return Some((ours, ours));
        }
        // The second began no later than the earliest arrival said; no earlier than a
        // second (and the delay) before it.
        Some((hi - SECOND - Self::AGREE / 2, hi))
    }
}

/// The time a command counts from: when it arrived, unless it is more than 2 s late
/// (replayed after a reconnection): then when it was sent. ntfy gives that in whole
/// seconds of the server's clock, so a late stop takes the end of its second (never after
/// its arrival) and any other command the start of it: a recording never loses what was
/// asked for. The server's second is placed on this machine's clocks by `clock` (the
/// server's time as its events tell it): exactly as the wall clock says when the two
/// agree, else by the server's own events. Taken from the wall clock regardless, a rig
/// whose clock ran 5 s ahead of the server took every message as replayed and a stop as
/// the end of a second 4 s before it was sent: the recording lost its last 4 s. The note
/// says so, for the reply and the LSL event.
fn command_time(
    command: &Command,
    sent_unix_secs: i64,
    arrived: ClockPair,
    clock: &ServerClock,
) -> (ClockPair, Option<String>) {
    let wall_minus_lsl = arrived.wall.as_nanos() - arrived.lsl.as_nanos();
    let (early, late) = clock
        .began(wall_minus_lsl)
        .unwrap_or((-wall_minus_lsl, -wall_minus_lsl));
    let sent = sent_unix_secs.saturating_mul(SECOND);
    let arrival = arrived.lsl.as_nanos();
    let late_ns = arrival - (sent + late);
    if late_ns <= 2 * SECOND {
        return (arrived, None);
    }
    let (lsl, edge) = match command {
        Command::Stop => ((sent + late + SECOND).min(arrival), "end"),
        _ => (sent + early, "start"),
    };
    let shown = WallTime::from_nanos(sent).to_local();
    let note = format!(
        "replayed: sent at {} (ntfy gives whole seconds), {:.1} s before it arrived; \
         taken at the {edge} of that second",
        shown.format("%H:%M:%S"),
        late_ns as f64 / 1e9
    );
    (
        ClockPair {
            lsl: LslTime::from_nanos(lsl),
            wall: WallTime::from_nanos(lsl + wall_minus_lsl),
        },
        Some(note),
    )
}

fn with_auth(req: reqwest::RequestBuilder, auth: Option<&Auth>) -> reqwest::RequestBuilder {
    match auth {
        Some(Auth::Bearer(t)) => req.bearer_auth(t),
        Some(Auth::Basic { user, password }) => req.basic_auth(user, Some(password)),
        None => req,
    }
}

/// As the subscriber authenticates, for a blocking request (`hindsight check`).
pub fn with_auth_blocking(
    req: reqwest::blocking::RequestBuilder,
    auth: Option<&Auth>,
) -> reqwest::blocking::RequestBuilder {
    match auth {
        Some(Auth::Bearer(t)) => req.bearer_auth(t),
        Some(Auth::Basic { user, password }) => req.basic_auth(user, Some(password)),
        None => req,
    }
}

/// How a publish of the reply topic went.
#[derive(Debug, PartialEq)]
enum Published {
    Done,
    /// The server was busy (429: the address made too many requests; 5xx) or could not
    /// be reached: try again later.
    Later(String),
    /// Refused for good (401/403: not allowed to write the topic; 413 ...): dropped.
    Refused(String),
}

/// Publishes `text` on the reply topic.
async fn publish(settings: &NtfySettings, client: &reqwest::Client, text: String) -> Published {
    let Some(topic) = &settings.reply_topic else {
        return Published::Done;
    };
    let req = client
        .post(format!("{}/{}", settings.server, topic))
        .header("Title", format!("hindsight {}", settings.rig))
        .timeout(Duration::from_secs(10))
        .body(text);
    match with_auth(req, settings.auth.as_ref()).send().await {
        Ok(r) if r.status().is_success() => Published::Done,
        Ok(r) if r.status().as_u16() == 429 || r.status().is_server_error() => {
            Published::Later(r.status().to_string())
        }
        Ok(r) => Published::Refused(r.status().to_string()),
        Err(e) => Published::Later(e.to_string()),
    }
}

/// Replies and notices that come within this of the first are published together, as
/// the lines of one message: a stop's reply and the "finished" of its files.
const REPLY_GATHER: Duration = Duration::from_secs(1);
/// At most one message to the reply topic this often. An ntfy server lets each address
/// make 60 requests at once and one more every 5 s after (the server's defaults; ntfy.sh
/// limits each address too); a reply and a notice per file for every command would use
/// that up within minutes of a session of short trials, and then the replies, and the
/// subscription's reconnection from the same address, would be refused (429).
const REPLY_SPACING: Duration = Duration::from_secs(5);
/// ntfy makes a longer message an attachment.
const REPLY_MAX_BYTES: usize = 4000;
/// A reply that could not be published for this long is given up.
const REPLY_GIVE_UP: Duration = Duration::from_secs(600);

/// The replies and notices waiting to be published, oldest first, with when each came.
/// A place held for an answer keeps what came after it waiting until the answer is in.
#[derive(Debug, Default)]
struct ReplyQueue {
    lines: std::collections::VecDeque<(tokio::time::Instant, Entry)>,
    /// No message before this (the spacing after the last one).
    next_slot: Option<tokio::time::Instant>,
}

#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Text(String),
    /// The place of an answer not in yet.
    Held(u64),
}

impl ReplyQueue {
    fn push(&mut self, at: tokio::time::Instant, text: String) {
        self.lines.push_back((at, Entry::Text(text)));
    }

    fn take(&mut self, at: tokio::time::Instant, line: Line) {
        match line {
            Line::Text(text) => self.push(at, text),
            Line::Hold(id) => self.lines.push_back((at, Entry::Held(id))),
            Line::Fill(id, texts) => {
                let Some(i) = self.lines.iter().position(|(_, e)| *e == Entry::Held(id)) else {
                    // Its place was given up (see `failed`): at the end, then.
                    for t in texts {
                        self.push(at, t);
                    }
                    return;
                };
                let (held_at, _) = self.lines.remove(i).expect("found");
                for (k, t) in texts.into_iter().enumerate() {
                    self.lines.insert(i + k, (held_at, Entry::Text(t)));
                }
            }
        }
    }

    /// Places still held are given up (hindsight is stopping: what is in goes now).
    fn unhold(&mut self) {
        self.lines.retain(|(_, e)| matches!(e, Entry::Text(_)));
    }

    /// When the next message goes: the first line's gathering over, and the spacing;
    /// `None` while there is none, or the first is a place held for an answer.
    fn due(&self) -> Option<tokio::time::Instant> {
        let (first, Entry::Text(_)) = self.lines.front()? else {
            return None;
        };
        let gathered = *first + REPLY_GATHER;
        Some(self.next_slot.map_or(gathered, |s| s.max(gathered)))
    }

    /// The next message: as many whole lines, oldest first and up to a place held, as fit
    /// in one (at least one, cut to fit), and how many lines it takes.
    fn message(&self) -> (String, usize) {
        let mut text = String::new();
        let mut n = 0;
        for (_, entry) in &self.lines {
            let Entry::Text(line) = entry else {
                break;
            };
            let sep = usize::from(!text.is_empty());
            if n > 0 && text.len() + sep + line.len() > REPLY_MAX_BYTES {
                break;
            }
            if sep == 1 {
                text.push('\n');
            }
            text.push_str(line);
            n += 1;
        }
        if text.len() > REPLY_MAX_BYTES {
            let mut cut = REPLY_MAX_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        (text, n)
    }

    /// The message of `n` lines went out (or was refused for good) at `now`.
    fn sent(&mut self, n: usize, now: tokio::time::Instant) {
        self.lines.drain(..n.min(self.lines.len()));
        self.next_slot = Some(now + REPLY_SPACING);
    }

    /// It could not go at `now`: it is tried again at the next slot; lines waiting longer
    /// than [`REPLY_GIVE_UP`] are dropped (how many is returned).
    fn failed(&mut self, now: tokio::time::Instant) -> usize {
        self.next_slot = Some(now + REPLY_SPACING);
        let before = self.lines.len();
        self.lines
            .retain(|(at, _)| now.saturating_duration_since(*at) < REPLY_GIVE_UP);
        before - self.lines.len()
    }
}

/// Publishes the replies (`lines`, from the subscriber) and notices (from the control
/// thread) on the reply topic, in the order they came (an answer in the place held for
/// it), paced ([`REPLY_GATHER`], [`REPLY_SPACING`]); what the server refuses for now
/// (429, 5xx, no connection) is tried again. When hindsight stops, what is left goes at
/// once.
async fn publish_notices(
    settings: &NtfySettings,
    client: &reqwest::Client,
    (mut lines, mut notices): (
        tokio::sync::mpsc::UnboundedReceiver<Line>,
        tokio::sync::mpsc::UnboundedReceiver<String>,
    ),
    stop: &Shutdown,
) {
    let mut queue = ReplyQueue::default();
    let mut closed = false;
    loop {
        let now = tokio::time::Instant::now();
        let last = closed || stop.stopping();
        if last {
            // A place is held for an answer only while it comes (within 1.5 s).
            while let Ok(line) = lines.try_recv() {
                queue.take(now, line);
            }
            queue.unhold();
        }
        let due = queue.due().filter(|d| *d <= now || last);
        if due.is_some() {
            let (text, n) = queue.message();
            match publish(settings, client, text).await {
                Published::Done => queue.sent(n, tokio::time::Instant::now()),
                Published::Refused(why) => {
                    tracing::warn!("ntfy: reply not published: {why}");
                    queue.sent(n, tokio::time::Instant::now());
                }
                Published::Later(why) if last => {
                    tracing::warn!(
                        "ntfy: {} replies not published ({why}): hindsight is stopping",
                        queue.lines.len()
                    );
                    return;
                }
                Published::Later(why) => {
                    tracing::warn!("ntfy: reply not published yet ({why}): trying again");
                    let dropped = queue.failed(tokio::time::Instant::now());
                    if dropped > 0 {
                        tracing::warn!(
                            "ntfy: {dropped} replies given up after {} s unpublished",
                            REPLY_GIVE_UP.as_secs()
                        );
                    }
                }
            }
            continue;
        }
        if last && queue.lines.is_empty() {
            return;
        }
        // Wake for a new line, the next message's time, or a look at `stop`.
        let wake = queue
            .due()
            .unwrap_or(now + Duration::from_millis(250))
            .min(now + Duration::from_millis(250));
        // The subscriber's first: a place it held came before any notice of what the
        // commands did.
        tokio::select! {
            biased;
            Some(line) = lines.recv() => queue.take(tokio::time::Instant::now(), line),
            notice = notices.recv() => match notice {
                Some(text) => queue.push(tokio::time::Instant::now(), text),
                None => closed = true,
            },
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

#[cfg(test)]
mod tests;
