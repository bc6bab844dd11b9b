//! `hindsight check`: is this machine ready to record? One line per check with pass /
//! warn / FAIL, what was found, and for a warning or a failure a hint how to fix it; the
//! exit code is non-zero when anything fails. It changes nothing (a recordings root that
//! does not exist yet is judged by the folder it would be created in).
//!
//! Checked: the configuration; each camera (opened, and a frame read: its real size gives
//! the data rate); the audio input; LSL (an outlet found and a sample read back); the ntfy
//! server (reached, the topic readable with the configured credentials); the recordings
//! root (writable, free space against the data rate and the disk guard); real-time
//! priority for the capture threads; the system clock's synchronization (NTP); whether a
//! recorder of the rig is running on the root already; the API port.
//!
//! What belongs here: one function per line of `hindsight check`. What does not: the
//! parts it checks (each is opened through its own module, as `run` would).

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::config::{Config, SourceKind};
use crate::source::SourceError;
use crate::storage::{duration, free_space, size};
use crate::writer::files;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug)]
pub struct CheckLine {
    pub level: Level,
    pub what: String,
    pub detail: String,
    /// How to fix it (warnings and failures).
    pub hint: Option<String>,
}

impl CheckLine {
    fn pass(what: impl Into<String>, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            level: Level::Pass,
            what: what.into(),
            detail: detail.into(),
            hint: None,
        }
    }

    fn warn(
        what: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> CheckLine {
        CheckLine {
            level: Level::Warn,
            what: what.into(),
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    fn fail(
        what: impl Into<String>,
        detail: impl Into<String>,
        hint: impl Into<String>,
    ) -> CheckLine {
        CheckLine {
            level: Level::Fail,
            what: what.into(),
            detail: detail.into(),
            hint: Some(hint.into()),
        }
    }

    /// `pass  camera cam0       detail → hint`
    pub fn render(&self) -> String {
        let tag = match self.level {
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        let mut line = format!("{tag:4}  {:16} {}", self.what, self.detail);
        if let Some(h) = &self.hint {
            line.push_str(" → ");
            line.push_str(h);
        }
        line
    }
}

/// Runs every check on the configuration in effect (or says why there is none).
pub fn checks(loaded: Result<(Config, String), String>) -> Vec<CheckLine> {
    let mut out = Vec::new();
    let config = match loaded {
        Ok((c, origin)) => {
            out.push(CheckLine::pass("config", format!("{origin} is valid")));
            c
        }
        Err(e) => {
            out.push(CheckLine::fail(
                "config",
                e,
                "fix that key (config.yaml in the repository documents every key with its default)",
            ));
            return out;
        }
    };
    let c = &config;
    let mut rate = Some(0.0f64);
    let mut rates = Vec::new();
    for cam in &c.cameras {
        let (line, bytes_per_s) = camera(cam);
        out.push(line);
        rates.push(bytes_per_s);
        rate = match (rate, bytes_per_s) {
            (Some(r), Some(b)) => Some(r + b),
            _ => None,
        };
    }
    out.push(memory(
        c,
        &rates,
        crate::capture::memory_total(),
        crate::capture::memory_available(),
        usize::BITS,
    ));
    out.push(audio(c));
    out.push(lsl(c));
    out.push(ntfy(c));
    out.extend(storage(c, rate));
    if c.cameras.iter().any(|cam| cam.wants_realtime(cam.fps.0)) {
        out.push(realtime());
    } else {
        out.push(CheckLine::pass(
            "real-time",
            format!(
                "not asked for: every camera's capture thread runs at normal priority \
                 (realtime: auto, at {} fps or less, or false)",
                crate::config::REALTIME_AUTO_ABOVE_FPS
            ),
        ));
    }
    out.push(time_sync());
    out.push(power(&crate::power::Sensors::find(&crate::power::sysfs())));
    out.push(recorder(c));
    out.push(api(c));
    out
}

/// Prints the checks of `loaded` (the configuration in effect and where it came from, or
/// why there is none); fails if one fails.
pub fn run(loaded: Result<(Config, String), String>) -> ExitCode {
    let lines = checks(loaded);
    for l in &lines {
        println!("{}", l.render());
    }
    if lines.iter().any(|l| l.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// The pre-trigger buffers against the machine's memory: what they will take at the
/// measured data rates (they grow to that), and their ceiling (`buffer.max_bytes` per
/// camera). Fails if what they need is not available; warns if the ceiling could take
/// more than half the machine.
fn memory(
    c: &Config,
    rates: &[Option<f64>],
    total: Option<u64>,
    available: Option<u64>,
    pointer_bits: u32,
) -> CheckLine {
    let secs = c.buffer.pre_trigger().as_secs_f64();
    let video_ceiling = if secs > 0.0 {
        c.buffer.max_bytes.0 * c.cameras.len() as u64
    } else {
        0
    };
    // The microphone's buffer is allocated whole at start.
    let audio = c.audio_buffer_bytes();
    let ceiling = video_ceiling + audio;
    let need: Option<u64> = rates
        .iter()
        .map(|r| {
            // As the ring asks: `duration` and a quarter, at least its slack in seconds.
            let slack = (secs / 4.0).max(crate::ring::SLACK_SECONDS.as_secs_f64());
            r.map(|b| (b * (secs + slack)) as u64)
        })
        .sum::<Option<u64>>()
        .map(|n| n.min(video_ceiling) + audio);
    let Some(total) = total else {
        return CheckLine::pass("memory", "cannot read /proc/meminfo; not checked");
    };
    let need_text = match need {
        Some(n) => format!(
            "the pre-trigger buffers need about {} ({secs:.0} s at the measured rate)",
            size(n)
        ),
        None => "the buffers' need is unknown (a camera gave no frame)".into(),
    };
    let microphone = if audio > 0 {
        format!(", and the microphone's {}", size(audio))
    } else {
        String::new()
    };
    let detail = format!(
        "{need_text}; they may grow to {} (buffer.max_bytes × {} camera(s){microphone}); the machine has {} ({} available)",
        size(ceiling),
        c.cameras.len(),
        size(total),
        size(available.unwrap_or(0))
    );
    if let (Some(n), Some(a)) = (need, available) {
        if n + (128 << 20) > a {
            return CheckLine::fail(
                "memory",
                detail,
                "not enough memory for the buffers: shorten buffer.duration, lower the frame size or rate, or free memory",
            );
        }
    }
    // A 32-bit build's buffers share its 3 GiB of address space with everything else.
    if pointer_bits < 64 && ceiling > crate::config::MAX_BUFFER_BYTES_32_BIT {
        return CheckLine::warn(
            "memory",
            detail,
            "a 32-bit process has 3 GiB of address space for everything: the buffers could not all grow to buffer.max_bytes; lower it, or use a 64-bit OS",
        );
    }
    if ceiling > total / 2 {
        return CheckLine::warn(
            "memory",
            detail,
            "buffer.max_bytes lets the buffers take more than half the machine's memory if the frames ever need it: lower it to what you can spare",
        );
    }
    CheckLine::pass("memory", detail)
}

/// Opens the camera and waits for a frame; returns the line and the data rate (bytes/s).
fn camera(cam: &crate::config::CameraConfig) -> (CheckLine, Option<f64>) {
    let what = format!("camera {}", cam.name);
    let clocks = std::sync::Arc::new(crate::clock::RealClocks);
    let mut source = match crate::source::open(cam, clocks) {
        Ok(s) => s,
        Err(e) => {
            // The line already names the camera.
            let e = match e {
                crate::source::OpenError::Failed { cause, .. } => cause,
                other => {
                    let e = other.to_string();
                    e.strip_prefix(&format!("camera {}: ", cam.name))
                        .map(str::to_string)
                        .unwrap_or(e)
                }
            };
            return (CheckLine::fail(what, e, camera_hint(cam)), None);
        }
    };
    let info = source.info().clone();
    let seen = match measure(source.as_mut()) {
        Ok(seen) => seen,
        Err(e) => {
            return (
                CheckLine::fail(what, format!("{info}: {e}"), camera_hint(cam)),
                None,
            )
        }
    };
    drop(source);
    let mut detail = format!(
        "{info}: first frame after {:.2} s, {:.1} kB a frame",
        seen.first_after.as_secs_f64(),
        seen.mean_bytes / 1000.0,
    );
    if info.kind == crate::config::SourceKind::Synthetic {
        detail.push_str(" (a test pattern: no camera needed)");
    }
    if seen.corrupt > 0 {
        detail.push_str(&format!(", {} corrupt before it", seen.corrupt));
    }
    let (Some(rate), Some(cpu)) = (seen.rate(), seen.cpu_per_frame()) else {
        // One frame only (a stream that ended after it): nothing more to judge.
        return (
            CheckLine::pass(what, detail),
            Some(seen.mean_bytes * info.fps),
        );
    };
    // A camera that sets its own rate may deliver more than `fps`: what it writes, and
    // what its frames cost, follow what it delivers.
    let faster = rate > 1.2 * info.fps && info.kind != SourceKind::Synthetic;
    let fps = if faster { rate } else { info.fps };
    let bytes_per_s = Some(seen.mean_bytes * fps);
    detail.push_str(&format!(
        ", {rate:.1} fps, {:.2} ms of CPU a frame",
        cpu.as_secs_f64() * 1e3
    ));
    if seen.skipped > 0 {
        detail.push_str(&format!(", {} skipped in its numbers", seen.skipped));
    }
    // The share of a core each thread that does the work will need at the configured
    // rate (the capture thread, or each of its encoding threads).
    let need = cpu.as_secs_f64() * fps / seen.threads as f64;
    let line = if need >= crate::capture::BUSY {
        CheckLine::warn(
            what,
            format!(
                "{detail}: {:.0}% of a core{} at {} fps: {}",
                need * 100.0,
                match seen.threads {
                    1 => String::new(),
                    n => format!(" for each of its {n} encoding threads"),
                },
                fps.round(),
                crate::capture::overloaded(&info, seen.threads as f64 / cpu.as_secs_f64())
            ),
            "frames will be lost while it runs: change the camera's settings until this line passes",
        )
    } else if rate < 0.9 * info.fps && info.kind != SourceKind::Synthetic {
        // (The test pattern comes at its rate unless the machine holds its thread up.)
        CheckLine::warn(
            what,
            format!("{detail}: {rate:.1} of the {} fps asked for", info.fps),
            slow_hint(cam, seen.skipped),
        )
    } else if faster {
        CheckLine::warn(
            what,
            format!("{detail}: more than the {} fps asked for", info.fps),
            "the camera sets its own rate: set fps to it (the LSL streams' nominal rate, the \
             files' frame rate and the pre-trigger buffer's first size come from fps; the \
             buffer grows to what the camera delivers)",
        )
    } else if let Some(off) = &info.controls_off {
        CheckLine::warn(
            what,
            format!("{detail}: its frames report {off}"),
            "the camera does not do what `controls` asks: a mode left on Auto \
             (ExposureTimeMode, AnalogueGainMode, AeEnable), or a value it rounds or limits \
             (`hindsight devices` lists its controls and their ranges)",
        )
    } else {
        CheckLine::pass(what, detail)
    };
    (line, bytes_per_s)
}

/// What `hindsight check` saw of a camera: its first frame, then a second of frames.
struct Seen {
    first_after: Duration,
    mean_bytes: f64,
    corrupt: u64,
    /// Frames after the first, and the time from the first's arrival to the last's.
    frames: u64,
    span: Duration,
    /// This thread's CPU time over those frames, with the source's encoding threads'
    /// (what a capture thread spends on them: reading, splitting, encoding where the
    /// source encodes).
    cpu: Option<Duration>,
    /// The threads that share that work: the source's encoding threads, else 1.
    threads: usize,
    /// Frames missing from the camera's numbers between them.
    skipped: u64,
}

impl Seen {
    fn rate(&self) -> Option<f64> {
        (self.frames > 0 && !self.span.is_zero())
            .then(|| self.frames as f64 / self.span.as_secs_f64())
    }

    fn cpu_per_frame(&self) -> Option<Duration> {
        self.cpu
            .filter(|_| self.frames > 0)
            .map(|c| c / self.frames as u32)
    }
}

/// Takes frames as a capture thread would: the first (within 5 s), then for a second (at
/// least 5 frames, at most 3 s).
fn measure(source: &mut dyn crate::source::FrameSource) -> Result<Seen, String> {
    const FIRST: Duration = Duration::from_secs(5);
    const SECOND: Duration = Duration::from_secs(1);
    const LONGEST: Duration = Duration::from_secs(3);
    // This thread's CPU clock and its source's encoding threads': their sum.
    let helpers = source.helper_cpu_clocks();
    let threads = helpers.len().max(1);
    let clocks: Vec<_> = crate::clock::ThreadCpuClock::of_this_thread()
        .into_iter()
        .chain(helpers)
        .collect();
    let cpu_now = || -> Option<Duration> { clocks.iter().map(|c| c.read()).sum() };
    let mut scratch = Vec::new();
    let started = Instant::now();
    let (mut corrupt, mut corrupt_before) = (0, 0);
    let mut bytes = 0usize;
    // The first frame's arrival and the CPU time then; the same for the last.
    let mut first: Option<(Instant, Option<Duration>)> = None;
    let (mut frames, mut skipped, mut last_seq) = (0u64, 0u64, 0u64);
    let mut last: Option<(Instant, Option<Duration>)> = None;
    loop {
        match first {
            None if started.elapsed() > FIRST => {
                return Err("opened, but no frame arrived within 5 s".to_string())
            }
            Some((at, _)) if (at.elapsed() >= SECOND && frames >= 5) || at.elapsed() >= LONGEST => {
                break
            }
            _ => {}
        }
        match source.next_frame_ref(&mut scratch) {
            Ok((meta, jpeg)) => {
                let now = (Instant::now(), cpu_now());
                bytes += jpeg.len();
                if first.is_none() {
                    first = Some(now);
                    corrupt_before = corrupt;
                } else {
                    frames += 1;
                    skipped += meta.seq.saturating_sub(last_seq + 1);
                    last = Some(now);
                }
                last_seq = meta.seq;
            }
            Err(SourceError::Idle) => {}
            Err(SourceError::Corrupt(_)) => corrupt += 1,
            Err(e) if first.is_some() => {
                tracing::debug!("after {} frames: {e}", frames + 1);
                break;
            }
            Err(e) => return Err(e.to_string()),
        }
    }
    let (first_at, first_cpu) = first.expect("the loop ends with a frame");
    let (span, cpu) = match last {
        Some((at, cpu)) => (
            at - first_at,
            cpu.zip(first_cpu).map(|(b, a)| b.saturating_sub(a)),
        ),
        None => (Duration::ZERO, None),
    };
    Ok(Seen {
        threads,
        first_after: first_at - started,
        mean_bytes: bytes as f64 / (frames + 1) as f64,
        corrupt: corrupt_before,
        frames,
        span,
        cpu,
        skipped,
    })
}

/// What to try when a camera delivers fewer frames than asked for, and not for want of CPU.
fn slow_hint(cam: &crate::config::CameraConfig, skipped: u64) -> &'static str {
    if skipped > 0 && matches!(cam.source, SourceKind::V4l2 | SourceKind::Libcamera) {
        return "the camera's numbers skip the frames it could not deliver: another program \
                busy on this machine or on the camera's USB bus, or a camera that cannot hold \
                this rate at this size (`hindsight devices`)";
    }
    match cam.source {
        SourceKind::V4l2 | SourceKind::Libcamera => {
            "a camera slows down when its exposure is longer than a frame (dim light): more \
             light or a shorter exposure, or set fps to what it delivers"
        }
        SourceKind::Command | SourceKind::HttpMjpeg => {
            "the stream comes at that rate: set fps to it, or make the stream faster"
        }
        SourceKind::Synthetic => "",
    }
}

fn camera_hint(cam: &crate::config::CameraConfig) -> String {
    match cam.source {
        SourceKind::V4l2 => {
            let any = std::fs::read_dir("/dev")
                .map(|d| {
                    d.flatten()
                        .any(|e| e.file_name().to_string_lossy().starts_with("video"))
                })
                .unwrap_or(false);
            if any {
                "`hindsight devices` lists each camera's formats, sizes and rates; a camera \
                 in use by another program (hindsight itself under systemd?) cannot be opened: \
                 `systemctl stop hindsight` first"
                    .into()
            } else {
                "no camera is connected (no /dev/video*): plug one in and see `hindsight devices`, \
                 or record the test pattern with source: synthetic"
                    .into()
            }
        }
        SourceKind::HttpMjpeg => {
            "is the camera on the network and the URL right? Try it with `ffplay URL` or a browser"
                .into()
        }
        SourceKind::Command => {
            "does the command run by itself? Try it in a shell: `COMMAND | head -c 64 | xxd` \
             should start with ff d8"
                .into()
        }
        SourceKind::Libcamera => {
            "`hindsight devices` lists each libcamera camera's sizes, rates and controls \
             (with their ranges); `rpicam-hello --list-cameras` shows the cameras libcamera sees"
                .into()
        }
        SourceKind::Synthetic => "check resolution and fps".into(),
    }
}

fn audio(c: &Config) -> CheckLine {
    let a = &c.audio;
    if !a.enabled {
        return CheckLine::pass("audio", "disabled (audio.enabled: false)");
    }
    match a.source.as_str() {
        "synthetic" => CheckLine::warn(
            "audio",
            "audio.source: synthetic records a 440 Hz tone, not a microphone",
            "set audio.source to default or a device from `hindsight devices`",
        ),
        "default" => {
            if crate::audio::input::default_device_available() {
                let name = crate::audio::input::default_device_name().unwrap_or_default();
                CheckLine::pass("audio", format!("default input `{name}`"))
            } else {
                let why = crate::audio::input::why_no_default_device()
                    .map(|g| format!(" (the audio system says: {g})"))
                    .unwrap_or_default();
                CheckLine::warn(
                    "audio",
                    format!("no audio input device{why}: hindsight would record a synthetic 440 Hz tone instead"),
                    "plug in a microphone (`hindsight devices` lists inputs), or set audio.enabled: false",
                )
            }
        }
        name => match crate::audio::input::find_input(name) {
            Ok(()) => CheckLine::pass("audio", format!("input `{name}`")),
            Err(e) => CheckLine::fail(
                "audio",
                e.to_string(),
                "set audio.source to a name `hindsight devices` lists, or default",
            ),
        },
    }
}

fn lsl(c: &Config) -> CheckLine {
    let used = c.lsl.enabled || c.trigger.lsl_markers.enabled;
    match crate::lsl::self_test() {
        Ok(msg) => CheckLine::pass("lsl", msg),
        Err(e) => {
            let hint =
                "LSL needs multicast on this machine's network, or KnownPeers in lsl_api.cfg";
            if used {
                CheckLine::fail("lsl", e.to_string(), hint)
            } else {
                CheckLine::warn("lsl", format!("{e} (LSL is disabled in the config)"), hint)
            }
        }
    }
}

/// How far this machine's clock is from the server's, by the answer's `Date` (whole
/// seconds), if more than 2 s apart.
fn clock_apart(answer: &reqwest::blocking::Response) -> Option<String> {
    let date = answer.headers().get(reqwest::header::DATE)?.to_str().ok()?;
    let server = chrono::DateTime::parse_from_rfc2822(date).ok()?.timestamp() as f64;
    // The server's second began up to 1 s before it answered.
    let apart = crate::clock::WallTime::now().as_secs_f64() - (server + 0.5);
    (apart.abs() > 2.0).then(|| {
        format!(
            "this machine's clock is {:.0} s {} the server's",
            apart.abs(),
            if apart > 0.0 { "ahead of" } else { "behind" }
        )
    })
}

fn ntfy(c: &Config) -> CheckLine {
    let n = &c.trigger.ntfy;
    if !n.enabled {
        return CheckLine::pass(
            "ntfy",
            "disabled: no phone trigger (trigger.ntfy.enabled: false)",
        );
    }
    let auth = match crate::trigger::ntfy::resolve_auth(n) {
        Ok(a) => a,
        Err(e) => {
            return CheckLine::fail(
                "ntfy",
                e.to_string(),
                "give the token or password as trigger.ntfy documents",
            )
        }
    };
    let server = n.server.trim_end_matches('/');
    // A poll for messages newer than now: it reads nothing and publishes nothing.
    let now = crate::clock::WallTime::now().as_secs_f64() as i64;
    let url = format!("{server}/{}/json?poll=1&since={now}", n.topic);
    let client = match reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => return CheckLine::fail("ntfy", e.to_string(), "report this as a bug"),
    };
    let req = crate::trigger::ntfy::with_auth_blocking(client.get(&url), auth.as_ref());
    let who = match &auth {
        Some(crate::trigger::ntfy::Auth::Bearer(_)) => ", token accepted",
        Some(crate::trigger::ntfy::Auth::Basic { .. }) => ", user and password accepted",
        None => "",
    };
    match req.send() {
        Ok(r) if r.status().is_success() => {
            let reachable = format!("{server}/{} reachable and readable{who}", n.topic);
            match clock_apart(&r) {
                Some(apart) => CheckLine::warn(
                    "ntfy",
                    format!("{reachable}; {apart}"),
                    "the files' names and unix times come from this machine's clock: \
                     set it by NTP (`timedatectl set-ntp true`, or chrony)",
                ),
                None => CheckLine::pass("ntfy", reachable),
            }
        }
        Ok(r) if r.status().as_u16() == 401 || r.status().as_u16() == 403 => CheckLine::fail(
            "ntfy",
            format!(
                "{server} refused to let hindsight read {} ({})",
                n.topic,
                r.status()
            ),
            if auth.is_some() {
                "check the token (or user and password) and that this user may read the topic (`ntfy access`)"
            } else {
                "the topic is protected: set trigger.ntfy.token_env or token_file (a tk_... token)"
            },
        ),
        Ok(r) => CheckLine::fail(
            "ntfy",
            format!("{server} answered {}", r.status()),
            "is trigger.ntfy.server an ntfy server?",
        ),
        Err(e) => CheckLine::fail(
            "ntfy",
            format!("cannot reach {server}: {}", crate::logging::error_chain(&e)),
            "check the network and trigger.ntfy.server (a running hindsight keeps retrying)",
        ),
    }
}

/// The recordings root: writable, and free space against the data rate and the guard.
fn storage(c: &Config, rate: Option<f64>) -> Vec<CheckLine> {
    let mut out = Vec::new();
    let root = &c.storage.root;
    let existing = root.ancestors().find(|p| p.exists()).unwrap_or(root);
    if let Err(e) = files::check_writable(existing) {
        out.push(CheckLine::fail(
            "recordings root",
            e.to_string(),
            if e.read_only() {
                "mount the disk writable (if it was not mounted read-only on purpose, check it first)"
            } else {
                "set storage.root to a folder this user can write (under systemd: the hindsight user, and ReadWritePaths=)"
            },
        ));
        return out;
    }
    // Which disk: a USB disk not mounted shows here as the system's (`/`).
    let on = crate::storage::RootFs::of(existing)
        .map(|fs| format!(", on the filesystem mounted at {}", fs.top().display()))
        .unwrap_or_default();
    out.push(CheckLine::pass(
        "recordings root",
        if existing == root.as_path() {
            format!("{} is writable{on}", root.display())
        } else {
            format!(
                "{} will be created in {}{on}",
                root.display(),
                existing.display()
            )
        },
    ));
    if root.is_dir() {
        out.push(unfinished(root));
    }
    if let Some((limit, what)) = crate::storage::file_size_limit(existing) {
        let set = c.storage.max_file_size.bytes();
        out.push(CheckLine::pass(
            "largest file",
            format!(
                "{}, {what}: each camera's video and the WAV go on in a next file (…part002) before {}",
                crate::storage::size(limit),
                crate::storage::size(set.map_or(limit, |s| s.min(limit)))
            ),
        ));
    }
    let (free, _) = match free_space(existing) {
        Ok(f) => f,
        Err(e) => {
            out.push(CheckLine::warn(
                "disk space",
                format!("cannot read free space under {}: {e}", existing.display()),
                "check the filesystem",
            ));
            return out;
        }
    };
    let min_free = c.storage.min_free.map_or(0, |b| b.0);
    if free < min_free {
        out.push(CheckLine::fail(
            "disk space",
            format!(
                "{} free under {}, below storage.min_free {}: recordings would be refused",
                size(free),
                existing.display(),
                size(min_free)
            ),
            "free space (or move storage.root to a bigger disk), or lower storage.min_free",
        ));
        return out;
    }
    if let Some(total) = c.storage.retention.max_total.map(|b| b.0) {
        let recorded = crate::recordings::scan(root).iter().map(|r| r.bytes).sum();
        match crate::disk::total_does_not_fit(total, recorded, free, min_free) {
            Some(why) => out.push(CheckLine::warn(
                "retention",
                why,
                "lower storage.retention.max_total (or storage.min_free), or use a bigger disk",
            )),
            None => out.push(CheckLine::pass(
                "retention",
                format!(
                    "the oldest recordings are deleted while all take more than {} ({} now)",
                    size(total),
                    size(recorded)
                ),
            )),
        }
    }
    let usable = free - min_free;
    // Not while a recorder of this rig writes there: the test would compete with it.
    if crate::numbers::RigLock::holder(&c.storage.root, &c.rig_name()).is_some() {
        out.push(CheckLine::pass(
            "disk speed",
            "not measured: a recorder of this rig is writing to this disk",
        ));
    } else {
        out.push(disk_speed(existing, usable, rate));
    }
    match rate.filter(|r| *r > 0.0) {
        Some(r) => {
            let secs = usable as f64 / r;
            let detail = format!(
                "{} free under {}: about {} of recording at {}/s (frames as measured)",
                size(free),
                existing.display(),
                duration(secs),
                size(r as u64)
            );
            if secs < 3600.0 {
                out.push(CheckLine::warn(
                    "disk space",
                    detail,
                    "free space or use a bigger disk before a long session",
                ));
            } else {
                out.push(CheckLine::pass("disk space", detail));
            }
        }
        None => out.push(CheckLine::pass(
            "disk space",
            format!(
                "{} free under {} (data rate unknown: a camera gave no frame)",
                size(free),
                existing.display()
            ),
        )),
    }
    out
}

/// Files under the recordings root that a crash or power cut left unfinished (not those a
/// running recorder writes): they play as they are, but a player cannot seek in them nor
/// tell their length until they are repaired; the day's start is the time to do it.
fn unfinished(root: &Path) -> CheckLine {
    const WHAT: &str = "unfinished";
    let found = crate::repair::find_unfinished(root);
    if found.is_empty() {
        return CheckLine::pass(WHAT, "no recording a crash left unfinished");
    }
    let names: Vec<String> = found
        .iter()
        .take(3)
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    let more = match found.len() {
        n if n > 3 => format!(" and {} more", n - 3),
        _ => String::new(),
    };
    CheckLine::warn(
        WHAT,
        format!(
            "{} file(s) a crash or power cut left unfinished under {}: {}{more}; they play as \
             they are, but players cannot seek in them or tell their length",
            found.len(),
            root.display(),
            names.join(", ")
        ),
        format!(
            "`hindsight repair {}` finishes them (or each recording's Repair on the web page)",
            root.display()
        ),
    )
}

/// The most [`write_speed`] writes.
const SPEED_BYTES: u64 = 32 << 20;

/// How fast the recordings disk takes data through to the device (not into memory), against
/// what the cameras make: an SD card slower than the video lets the writers fall behind
/// until frames are lost (`writer_queue_full`), and a card that stalls now and then
/// needs room to catch up, so less than twice the rate is warned of.
fn disk_speed(dir: &Path, usable: u64, rate: Option<f64>) -> CheckLine {
    const WHAT: &str = "disk speed";
    let limit = crate::storage::file_size_limit(dir).map_or(u64::MAX, |(l, _)| l / 2);
    let most = SPEED_BYTES.min(limit);
    if usable < 2 * SPEED_BYTES {
        return CheckLine::pass(
            WHAT,
            "not measured: too little free space to write a test file",
        );
    }
    let (bytes, took) = match write_speed(dir, most) {
        Ok(m) => m,
        Err(e) => {
            return CheckLine::warn(
                WHAT,
                format!("cannot write a test file in {}: {e}", dir.display()),
                "check the disk (a failing SD card?)",
            )
        }
    };
    let speed = bytes as f64 / took.as_secs_f64().max(1e-6);
    let measured = format!(
        "{}/s through to the disk ({} written and synced in {:.2} s)",
        size(speed as u64),
        size(bytes),
        took.as_secs_f64()
    );
    match rate.filter(|r| *r > 0.0) {
        Some(r) if speed < 2.0 * r => CheckLine::warn(
            WHAT,
            format!(
                "{measured}; the cameras make {}/s: {}, and frames are lost (writer_queue_full)",
                size(r as u64),
                if speed < r {
                    "the writers cannot keep up"
                } else {
                    "a disk with less than twice that falls behind whenever it stalls"
                }
            ),
            "record to a faster disk (an SD card rated A2 or V30, a USB 3 SSD), or lower the \
             cameras' fps, resolution or quality",
        ),
        Some(r) => CheckLine::pass(
            WHAT,
            format!(
                "{measured}: {:.0}× the cameras' {}/s",
                speed / r,
                size(r as u64)
            ),
        ),
        None => CheckLine::pass(
            WHAT,
            format!("{measured} (the cameras' rate unknown: a camera gave no frame)"),
        ),
    }
}

/// Writes up to `most` bytes (for at most about 2 s) into a test file in `dir`, each piece
/// `fdatasync`ed as the writers do twice a second, the pieces growing while the disk takes
/// them quickly; removes the file. How much, in how long.
fn write_speed(dir: &Path, most: u64) -> std::io::Result<(u64, Duration)> {
    use std::io::Write;
    let path = dir.join(format!(".hindsight-check-{}.tmp", std::process::id()));
    let measured = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        // Not zeros, which a compressing filesystem would not write.
        let buf: Vec<u8> = (0..4u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        let mut piece = 256usize << 10;
        let (start, mut written) = (Instant::now(), 0u64);
        while written < most && start.elapsed() < Duration::from_secs(2) {
            let n = piece.min((most - written) as usize);
            let t = Instant::now();
            f.write_all(&buf[..n])?;
            f.sync_data()?;
            written += n as u64;
            if t.elapsed() < Duration::from_millis(250) {
                piece = (piece * 2).min(buf.len());
            }
        }
        Ok((written, start.elapsed()))
    })();
    let _ = std::fs::remove_file(&path);
    measured
}

fn realtime() -> CheckLine {
    let result = std::thread::spawn(crate::capture::try_realtime)
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the test thread panicked")));
    match result {
        Ok(()) => CheckLine::pass("real-time", "capture threads can run at real-time priority"),
        Err(e) => CheckLine::warn(
            "real-time",
            format!("real-time priority not permitted ({e}): capture would run at normal priority"),
            "under systemd the unit's LimitRTPRIO=10 allows it; by hand: root, CAP_SYS_NICE, or an rtprio limit in /etc/security/limits.d",
        ),
    }
}

/// Whether the kernel says the system clock is synchronized (what NTP clients set).
fn time_sync() -> CheckLine {
    // SAFETY: adjtimex with modes 0 only reads; the struct is zeroed.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    let state = unsafe { libc::adjtimex(&mut tx) };
    let hint =
        "file and folder names and unix_time come from the system clock (LSL times do not): \
                enable time sync with `sudo timedatectl set-ntp true` or install chrony";
    if state < 0 {
        return CheckLine::warn(
            "time sync",
            format!(
                "cannot read the clock's state: {}",
                std::io::Error::last_os_error()
            ),
            hint,
        );
    }
    if tx.status & libc::STA_UNSYNC != 0 || state == libc::TIME_ERROR {
        CheckLine::warn(
            "time sync",
            "the system clock is not synchronized (NTP)",
            hint,
        )
    } else {
        CheckLine::pass(
            "time sync",
            format!(
                "the system clock is synchronized (estimated error {:.1} ms)",
                tx.esterror as f64 / 1000.0
            ),
        )
    }
}

/// The rig's power and heat now: a Raspberry Pi's under-voltage alarm, the hottest CPU
/// temperature (`src/power.rs`).
fn power(sensors: &crate::power::Sensors) -> CheckLine {
    use crate::power::{temperature, HOT_C, HOT_HINT, UNDER_VOLTAGE_HINT};
    const WHAT: &str = "power and heat";
    if sensors.is_empty() {
        return CheckLine::pass(
            WHAT,
            "not a Raspberry Pi (no rpi_volt under-voltage sensor, no Pi model in the \
             device tree): not checked",
        );
    }
    let r = sensors.read();
    let heat = temperature(&r).unwrap_or_else(|| "no temperature here".into());
    let mut problems = Vec::new();
    let mut hints = Vec::new();
    if r.under_voltage == Some(true) {
        problems.push("under-voltage now: the power supply gives too little".to_string());
        hints.push(UNDER_VOLTAGE_HINT);
    }
    if let Some((kind, c)) = r.hottest.as_ref().filter(|(_, c)| *c >= HOT_C) {
        problems.push(format!(
            "{kind} at {c:.0} °C: a Raspberry Pi slows its cores from {HOT_C:.0} °C, and \
             cameras lose frames"
        ));
        hints.push(HOT_HINT);
    } else if !problems.is_empty() {
        problems.push(heat.clone());
    }
    if !problems.is_empty() {
        return CheckLine::warn(WHAT, problems.join("; "), hints.join("; "));
    }
    let power = match r.under_voltage {
        Some(_) => "no under-voltage",
        None if sensors.has_under_voltage_sensor() => "the under-voltage alarm cannot be read",
        None => "no under-voltage sensor in this kernel",
    };
    CheckLine::pass(WHAT, format!("{power}; {heat}"))
}

/// Whether a recorder of this rig is running on this root already (it holds the rig's
/// lock): `hindsight run` with this configuration would stop at once.
fn recorder(c: &Config) -> CheckLine {
    let rig = c.rig_name();
    match crate::numbers::RigLock::holder(&c.storage.root, &rig) {
        None => CheckLine::pass(
            "recorder",
            format!("no hindsight is running rig \"{rig}\" on this root"),
        ),
        Some(pid) => CheckLine::warn(
            "recorder",
            format!(
                "a hindsight{} is running rig \"{rig}\" on {}: `hindsight run` with this \
                 configuration would stop at once",
                crate::numbers::pid_text(pid),
                c.storage.root.display()
            ),
            "stop it first (`systemctl stop hindsight` for the service), or give this one its own rig or storage.root",
        ),
    }
}

fn api(c: &Config) -> CheckLine {
    match std::net::TcpListener::bind(c.api.listen) {
        Ok(_) => CheckLine::pass("api", format!("{} is free", c.api.listen)),
        Err(e) => CheckLine::warn(
            "api",
            format!("{}: {e}", c.api.listen),
            "is hindsight already running? (`hindsight ctl status`), else choose another api.listen",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_bytes: u64, cameras: usize) -> Config {
        let mut c = Config::default();
        c.buffer.max_bytes = crate::config::ByteSize(max_bytes);
        c.cameras = (0..cameras)
            .map(|i| crate::config::CameraConfig {
                name: crate::config::FileNamePart(format!("cam{i}")),
                ..Default::default()
            })
            .collect();
        c
    }

    #[test]
    fn the_buffers_ceiling_and_need_are_judged_against_the_machine() {
        const GIB: u64 = 1 << 30;
        // 2 MB/s for 20 s: 50 MB with slack; 512 MiB ceiling on a 4 GiB Pi.
        let ok = memory(
            &config(512 << 20, 1),
            &[Some(2e6)],
            Some(4 * GIB),
            Some(3 * GIB),
            64,
        );
        assert_eq!(ok.level, Level::Pass, "{}", ok.render());
        // With the microphone's 25 s at 48 kHz (4.6 MiB), allocated at start.
        assert!(ok.detail.contains("need about 52 MiB"), "{}", ok.detail);
        assert!(
            ok.detail.contains("and the microphone's 4.6 MiB"),
            "{}",
            ok.detail
        );
        // A 4 GiB ceiling for two cameras on a 4 GiB machine: could take it all.
        let big = memory(
            &config(4 * GIB, 2),
            &[Some(2e6), Some(2e6)],
            Some(4 * GIB),
            Some(3 * GIB),
            64,
        );
        assert_eq!(big.level, Level::Warn, "{}", big.render());
        // Frames that need more than there is.
        let short = memory(
            &config(4 * GIB, 1),
            &[Some(200e6)],
            Some(4 * GIB),
            Some(3 * GIB),
            64,
        );
        assert_eq!(short.level, Level::Fail, "{}", short.render());
    }

    /// The microphone's buffer counts: an hour at 384 kHz in stereo (11 GB) does not fit
    /// in 3 GiB, whatever the cameras need.
    #[test]
    fn the_microphones_buffer_is_judged_with_the_cameras() {
        const GIB: u64 = 1 << 30;
        let mut c = config(512 << 20, 1);
        c.buffer.duration = crate::config::BufferSeconds(3600.0);
        c.audio.sample_rate = 384_000;
        c.audio.channels = 2;
        let line = memory(&c, &[Some(1e3)], Some(4 * GIB), Some(3 * GIB), 64);
        assert_eq!(line.level, Level::Fail, "{}", line.render());
        c.audio.enabled = false;
        let line = memory(&c, &[Some(1e3)], Some(4 * GIB), Some(3 * GIB), 64);
        assert_eq!(line.level, Level::Pass, "{}", line.render());
    }

    /// A 32-bit build (the 32-bit Raspberry Pi OS): buffers that could grow past 2 GiB
    /// together (the microphone's with them) are warned of even on a machine with the
    /// memory; 1.5 GiB is fine.
    #[test]
    fn a_32_bit_build_is_warned_of_buffers_past_its_address_space() {
        const GIB: u64 = 1 << 30;
        let judge = |max_bytes, cameras, bits| {
            memory(
                &config(max_bytes, cameras),
                &vec![Some(2e6); cameras],
                Some(8 * GIB),
                Some(7 * GIB),
                bits,
            )
        };
        let two = judge(GIB, 3, 32);
        assert_eq!(two.level, Level::Warn, "{}", two.render());
        assert!(two.render().contains("32-bit"), "{}", two.render());
        assert_eq!(judge(GIB / 2, 3, 32).level, Level::Pass);
        assert_eq!(judge(GIB, 3, 64).level, Level::Pass);
    }
}
