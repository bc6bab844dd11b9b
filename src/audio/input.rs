//! Where audio comes from: an ALSA capture device (found and checked with cpal, read by
//! our own thread), or a synthetic tone.
//!
//! Both hand samples to the audio thread the same way, through two wait-free
//! single-producer rings (`rtrb`): the interleaved samples (converted to f32), and one
//! [`ChunkInfo`] per chunk; after each batch they tell the audio thread ([`Feed::tell`]),
//! which takes it at once. The reading thread does nothing else: no allocation, no I/O but
//! the device's. What does not fit is counted as an overrun and later filled with
//! silence, so that later samples keep their place in time.
//!
//! Why not cpal's stream: its ALSA loop polls the device and, when the poll says "ready"
//! but less than a period is there, polls again at once. PulseAudio's ALSA plugin says
//! ready as soon as one of the server's fragments has come, which need not be a whole
//! period: cpal's thread then spun on a core until the period was complete, 45–70% of a
//! core on average through the PulseAudio of this machine (2026-12-05), whatever the
//! period size. Our thread asks how much is there and sleeps for what is missing.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait};
use parking_lot::Mutex;

use crate::clock::{Clocks, LslTime};

/// One chunk as delivered: how many frames, how many of them did not fit (dropped), and
/// the estimated capture time of its first frame.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ChunkInfo {
    pub frames: u32,
    pub dropped_frames: u32,
    pub first_capture: LslTime,
    /// Whether `first_capture` comes from what the driver reported as buffered. A driver
    /// that reported less than the chunk itself (PulseAudio's plugin reports nothing for
    /// a stream's first burst) leaves only "not after the callback": a bound, not an
    /// estimate (see [`super::timeline`]).
    pub reported: bool,
}

/// The producer side, owned by the callback (or the synthetic thread).
pub struct Feed {
    samples: rtrb::Producer<f32>,
    chunks: rtrb::Producer<ChunkInfo>,
    channels: usize,
    rate: u32,
    /// Chunks whose info itself did not fit (the audio thread is far behind).
    pub lost_chunks: Arc<AtomicU64>,
    /// Where to say that a batch has come (see [`Feed::tell`]).
    arrived: Option<crossbeam_channel::Sender<()>>,
}

/// The consumer side, owned by the audio thread.
pub struct Drain {
    pub samples: rtrb::Consumer<f32>,
    pub chunks: rtrb::Consumer<ChunkInfo>,
    pub lost_chunks: Arc<AtomicU64>,
}

/// Rings for `seconds` of audio at `rate` × `channels`.
pub fn rings(rate: u32, channels: u16, seconds: f64) -> (Feed, Drain) {
    let samples = (rate as f64 * channels as f64 * seconds).ceil() as usize;
    let (sp, sc) = rtrb::RingBuffer::new(samples.max(1024));
    let (cp, cc) = rtrb::RingBuffer::new(4096);
    let lost = Arc::new(AtomicU64::new(0));
    (
        Feed {
            samples: sp,
            chunks: cp,
            channels: channels.max(1) as usize,
            rate: rate.max(1),
            lost_chunks: lost.clone(),
            arrived: None,
        },
        Drain {
            samples: sc,
            chunks: cc,
            lost_chunks: lost,
        },
    )
}

impl Feed {
    /// The same feed, telling `arrived` after each batch.
    pub fn telling(self, arrived: crossbeam_channel::Sender<()>) -> Feed {
        Feed {
            arrived: Some(arrived),
            ..self
        }
    }

    /// Says that a batch of chunks has been handed over, so that the audio thread takes
    /// it now rather than at its next look. Never waits: one word pending is enough.
    pub fn tell(&self) {
        if let Some(a) = &self.arrived {
            let _ = a.try_send(());
        }
    }

    /// Hands over one chunk of interleaved samples, converting each with `to_f32`.
    pub fn push<T: Copy>(&mut self, data: &[T], first_capture: LslTime, to_f32: impl Fn(T) -> f32) {
        let frames = data.len() / self.channels;
        self.push_frames(data, frames, first_capture, true, to_f32);
    }

    /// As `push`, for a device callback: the first sample's capture time is the callback's
    /// clock reading minus what the driver says was buffered (`held`), but never later
    /// than the chunk's own length before the callback (its last sample cannot have been
    /// captured after it arrived: drivers that prefill report `held` = 0).
    pub fn push_from_device<T: Copy>(
        &mut self,
        data: &[T],
        now: LslTime,
        held: Duration,
        to_f32: impl Fn(T) -> f32,
    ) {
        let frames = data.len() / self.channels;
        let length =
            Duration::from_nanos((frames as u128 * 1_000_000_000 / self.rate as u128) as u64);
        let first_capture = (now - held).min(now - length);
        self.push_frames(data, frames, first_capture, held >= length, to_f32);
    }

    fn push_frames<T: Copy>(
        &mut self,
        data: &[T],
        frames: usize,
        first_capture: LslTime,
        reported: bool,
        to_f32: impl Fn(T) -> f32,
    ) {
        let fit = self.samples.slots().min(data.len()) / self.channels * self.channels;
        if let Ok(mut chunk) = self.samples.write_chunk_uninit(fit) {
            let (a, b) = chunk.as_mut_slices();
            for (slot, &s) in a.iter_mut().chain(b.iter_mut()).zip(data) {
                slot.write(to_f32(s));
            }
            // SAFETY: every slot of the chunk was just written.
            unsafe { chunk.commit_all() };
        }
        let info = ChunkInfo {
            frames: frames as u32,
            dropped_frames: (frames - fit / self.channels) as u32,
            first_capture,
            reported,
        };
        if self.chunks.push(info).is_err() {
            self.lost_chunks.fetch_add(1, Relaxed);
        }
    }
}

/// What an input reports back.
#[derive(Default)]
pub struct InputHealth {
    /// Set by the device's error callback: the stream must be rebuilt.
    pub failed: AtomicBool,
    pub error: Mutex<Option<String>>,
}

/// A running input (a device's reading thread, or the synthetic tone's): dropping it
/// stops the capture.
pub struct Input {
    stop: Arc<AtomicBool>,
    join: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Input {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// The format an input delivers.
#[derive(Clone, Debug, PartialEq)]
pub struct InputFormat {
    pub device: String,
    pub rate: u32,
    pub channels: u16,
    pub synthetic: bool,
}

/// Runs a probe of the audio libraries with their own stderr messages caught (on a
/// machine without a sound card ALSA and JACK print dozens of lines): they are kept for
/// the debug log, and their gist is returned for a message of our own. The log is held
/// meanwhile: `probe` must not log (it would wait for itself).
fn quietly<T>(probe: impl FnOnce() -> T) -> (T, Option<String>) {
    let (out, lines) = crate::logging::hush_libraries(probe);
    if !lines.is_empty() {
        tracing::debug!("the audio libraries said: {}", lines.join(" | "));
    }
    let gist = crate::logging::gist(&lines);
    if gist.is_some() {
        // ALSA says why only the first time it fails to load its configuration.
        *LAST_GIST.lock() = gist.clone();
    }
    (out, gist.or_else(|| LAST_GIST.lock().clone()))
}

/// What the audio libraries last said was wrong.
static LAST_GIST: Mutex<Option<String>> = Mutex::new(None);

/// Why an audio input could not be found or opened: the device, and what the audio
/// libraries said (`said`), which is often the only clue (a missing ALSA configuration,
/// a busy device).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("there is no default audio input device{}", says(said))]
    NoDefault { said: Option<String> },
    #[error("cannot list audio input devices: {cause}{}", says(said))]
    List { cause: String, said: Option<String> },
    #[error(
        "no audio input device called `{name}` (there are: {known}){}",
        says(said)
    )]
    NoSuchDevice {
        name: String,
        known: String,
        said: Option<String>,
    },
    #[error("audio device `{device}` cannot record {channels} channel(s) at {rate} Hz")]
    Unsupported {
        device: String,
        channels: u16,
        rate: u32,
    },
    #[error("audio device `{device}`: {cause}{}", says(said))]
    Device {
        device: String,
        cause: String,
        said: Option<String>,
    },
    #[error("audio device `{device}` does not start: {cause}{}", says(said))]
    Start {
        device: String,
        cause: String,
        said: Option<String>,
    },
    #[error("cannot start the synthetic audio thread: {0}")]
    Thread(std::io::Error),
}

impl InputError {
    /// The same error, with what the audio libraries said (if it says nothing yet).
    fn said(mut self, gist: Option<String>) -> Self {
        match &mut self {
            InputError::NoDefault { said }
            | InputError::List { said, .. }
            | InputError::NoSuchDevice { said, .. }
            | InputError::Device { said, .. }
            | InputError::Start { said, .. } => {
                if said.is_none() {
                    *said = gist;
                }
            }
            InputError::Unsupported { .. } | InputError::Thread(_) => {}
        }
        self
    }
}

fn says(said: &Option<String>) -> String {
    match said {
        Some(g) => format!(" (the audio system says: {g})"),
        None => String::new(),
    }
}

/// Finds the cpal input device `name` ("default" = the system's default input).
fn find_device(name: &str) -> Result<cpal::Device, InputError> {
    let (found, gist) = quietly(|| find_device_loudly(name));
    found.map_err(|e| e.said(gist))
}

fn find_device_loudly(name: &str) -> Result<cpal::Device, InputError> {
    let host = cpal::default_host();
    if name == "default" {
        return host
            .default_input_device()
            .ok_or(InputError::NoDefault { said: None });
    }
    let devices = host.input_devices().map_err(|e| InputError::List {
        cause: e.to_string(),
        said: None,
    })?;
    let mut names = Vec::new();
    for d in devices {
        let n = pcm_name(&d).unwrap_or_default();
        if n == name {
            return Ok(d);
        }
        names.push(n);
    }
    Err(InputError::NoSuchDevice {
        name: name.to_string(),
        known: if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        },
        said: None,
    })
}

/// A device's name as the config names it: its ALSA PCM name (`default`, `pulse`,
/// `hw:CARD=1,DEV=0`), as `arecord -L` lists it.
fn pcm_name(device: &cpal::Device) -> Option<String> {
    device.id().ok().map(|id| id.id().to_string())
}

/// The default input device's name, if there is one.
pub fn default_device_name() -> Option<String> {
    quietly(|| {
        cpal::default_host()
            .default_input_device()
            .and_then(|d| pcm_name(&d))
    })
    .0
}

/// Whether an input device called `name` exists (the error lists those that do).
pub fn find_input(name: &str) -> Result<(), InputError> {
    find_device(name).map(|_| ())
}

/// Whether a usable default input device exists (the built-in defaults fall back to the
/// synthetic tone when not).
pub fn default_device_available() -> bool {
    quietly(|| {
        cpal::default_host()
            .default_input_device()
            .is_some_and(|d| d.default_input_config().is_ok())
    })
    .0
}

/// Why there is no usable default input, in the audio system's words, if it said.
pub fn why_no_default_device() -> Option<String> {
    LAST_GIST.lock().clone()
}

/// Opens device `name` at `rate` × `channels` and starts it, feeding `feed`.
pub fn open_device(
    name: &str,
    rate: u32,
    channels: u16,
    feed: Feed,
    health: Arc<InputHealth>,
) -> Result<(Input, InputFormat), InputError> {
    let device = find_device(name)?;
    let device_name = pcm_name(&device).unwrap_or_else(|| name.to_string());
    let (configs, _) = quietly(|| device.supported_input_configs());
    let supported = configs
        .map_err(|e| InputError::Device {
            device: device_name.clone(),
            cause: e.to_string(),
            said: None,
        })?
        .find(|c| {
            c.channels() == channels
                && c.min_sample_rate() <= rate
                && c.max_sample_rate() >= rate
                && matches!(
                    c.sample_format(),
                    cpal::SampleFormat::F32 | cpal::SampleFormat::I16 | cpal::SampleFormat::I32
                )
        })
        .ok_or_else(|| InputError::Unsupported {
            device: device_name.clone(),
            channels,
            rate,
        })?
        .with_sample_rate(rate);
    let format = supported.sample_format();
    let (started, gist) = quietly(|| read_alsa(&device_name, rate, channels, format, feed, health));
    let input = started.map_err(|e| e.said(gist))?;
    Ok((
        input,
        InputFormat {
            device: device_name,
            rate,
            channels,
            synthetic: false,
        },
    ))
}

/// Periods of 25 ms, and 16 of them in the device's buffer. The reading thread waits for
/// 4 (100 ms; fewer if the device's buffer is smaller), reads them and tells the audio
/// thread, which writes them at once: both wake about 10 times a second, and audio is at
/// most about 100 ms old when it reaches the files (as it was when the reader took 50 ms
/// and the audio thread looked every 50 ms). The reader may be held up for 300 ms more
/// before the device overruns.
const PERIODS_PER_SECOND: u32 = 40;
const BUFFER_PERIODS: alsa::pcm::Frames = 16;
const BATCH_PERIODS: usize = 4;

/// Opens ALSA PCM `name` for capture at `rate` × `channels` in `format` and starts the
/// thread that reads it into `feed`. A read error (an overrun, a device suspended or
/// unplugged) sets `health.failed` with why, and the thread ends: the audio thread opens
/// the device again.
fn read_alsa(
    name: &str,
    rate: u32,
    channels: u16,
    format: cpal::SampleFormat,
    feed: Feed,
    health: Arc<InputHealth>,
) -> Result<Input, InputError> {
    use alsa::pcm::{Access, Format, HwParams, PCM};
    use alsa::{Direction, ValueOr};
    let device = |cause: alsa::Error| InputError::Device {
        device: name.to_string(),
        cause: cause.to_string(),
        said: None,
    };
    let pcm = PCM::new(name, Direction::Capture, true).map_err(device)?;
    // `Frames` is a C long: 32 bits on 32-bit Raspberry Pi OS.
    let period = (rate / PERIODS_PER_SECOND).max(64) as alsa::pcm::Frames;
    let (period, buffer) = {
        let hw = HwParams::any(&pcm).map_err(device)?;
        hw.set_access(Access::RWInterleaved).map_err(device)?;
        hw.set_format(match format {
            cpal::SampleFormat::F32 => Format::float(),
            cpal::SampleFormat::I16 => Format::s16(),
            _ => Format::s32(),
        })
        .map_err(device)?;
        hw.set_channels(u32::from(channels)).map_err(device)?;
        hw.set_rate(rate, ValueOr::Nearest).map_err(device)?;
        let period = hw
            .set_period_size_near(period, ValueOr::Nearest)
            .map_err(device)?;
        let buffer = hw
            .set_buffer_size_near(period * BUFFER_PERIODS)
            .map_err(device)?;
        pcm.hw_params(&hw).map_err(device)?;
        let got = pcm
            .hw_params_current()
            .and_then(|h| h.get_rate())
            .map_err(device)?;
        if got != rate {
            return Err(InputError::Unsupported {
                device: name.to_string(),
                channels,
                rate,
            });
        }
        (period.max(1), buffer.max(1))
    };
    // A batch is at most a quarter of what the device holds.
    let batch = BATCH_PERIODS.min((buffer / period / 4).max(1) as usize);
    pcm.start().map_err(|e| InputError::Start {
        device: name.to_string(),
        cause: e.to_string(),
        said: None,
    })?;
    let stop = Arc::new(AtomicBool::new(false));
    let join = {
        let stop = stop.clone();
        let device = name.to_string();
        let (period, channels) = (period as usize, usize::from(channels.max(1)));
        std::thread::Builder::new()
            .name("audio-in".into())
            .spawn(move || {
                // (Not logged before: the opening runs with the log held, see `quietly`.)
                tracing::debug!(
                    "audio: reading `{device}` in periods of {period} frames, {buffer} in its \
                     buffer, {batch} periods at a time"
                );
                let reader = |pcm| Reader::new(Alsa(pcm), feed, period, batch, channels, rate);
                let result = match format {
                    cpal::SampleFormat::F32 => reader(pcm).run(&stop, |s: f32| s),
                    cpal::SampleFormat::I16 => reader(pcm).run(&stop, |s: i16| s as f32 / 32768.0),
                    _ => reader(pcm).run(&stop, |s: i32| s as f32 / 2_147_483_648.0),
                };
                if let Err(e) = result {
                    *health.error.lock() = Some(format!("audio device `{device}`: {e}"));
                    health.failed.store(true, Relaxed);
                }
            })
            .map_err(InputError::Thread)?
    };
    Ok(Input {
        stop,
        join: Some(join),
    })
}

/// What the reading thread asks of a capture device: an ALSA PCM ([`Alsa`]), or a
/// simulated one in the unit tests.
trait Capture<T> {
    /// Frames ready to be read, and the device's delay: frames it captured that have not
    /// been read yet (and what it holds before them).
    fn avail_delay(&self) -> Result<(i64, i64), String>;
    /// Reads up to `buf.len()` samples of whole frames without waiting; how many frames
    /// (0 when there were none after all).
    fn read(&self, buf: &mut [T]) -> Result<usize, String>;
}

/// An ALSA PCM opened for capture, non-blocking, its hardware parameters set.
struct Alsa(alsa::pcm::PCM);

impl<T: alsa::pcm::IoFormat> Capture<T> for Alsa {
    #[allow(clippy::useless_conversion)]
    fn avail_delay(&self) -> Result<(i64, i64), String> {
        self.0
            .avail_delay()
            // `Frames` is a C long: 32 bits on 32-bit Raspberry Pi OS.
            .map(|(a, d)| (i64::from(a), i64::from(d)))
            .map_err(|e| e.to_string())
    }

    fn read(&self, buf: &mut [T]) -> Result<usize, String> {
        match self.0.io_checked::<T>().and_then(|io| io.readi(buf)) {
            Ok(n) => Ok(n),
            Err(e) if e.errno() == libc::EAGAIN => Ok(0),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// A capture device being read, period by period, into the audio thread's rings.
struct Reader<C> {
    device: C,
    feed: Feed,
    /// The device's period: the frames of each chunk handed over.
    period: usize,
    /// Periods waited for before reading.
    batch: usize,
    channels: usize,
    rate: u32,
}

impl<C> Reader<C> {
    fn new(
        device: C,
        feed: Feed,
        period: usize,
        batch: usize,
        channels: usize,
        rate: u32,
    ) -> Reader<C> {
        Reader {
            device,
            feed,
            period: period.max(1),
            batch: batch.max(1),
            channels: channels.max(1),
            rate: rate.max(1),
        }
    }

    /// Reads until `stop` (`Ok`) or the device fails (why). Each turn asks the device how
    /// much it holds; once `batch` periods are there, every whole period there is read
    /// and handed over as its own chunk, stamped with the delay the device reported
    /// before the reads less the periods read before it (as cpal's callbacks were, one per
    /// period), and the audio thread is told. Less, and the thread sleeps for what is
    /// missing. It never asks again at once: a device that says "ready" too early
    /// (PulseAudio's plugin) costs a turn per missing piece, not a core.
    fn run<T: Copy + Default>(
        &mut self,
        stop: &AtomicBool,
        to_f32: impl Fn(T) -> f32 + Copy,
    ) -> Result<(), String>
    where
        C: Capture<T>,
    {
        // Room for four batches (no more than the device's buffer): a reader held up
        // reads what piled up in one or two calls.
        let most = 4 * self.batch;
        let mut buf = vec![T::default(); most * self.period * self.channels];
        let rate = u128::from(self.rate);
        let span =
            |frames: usize| Duration::from_nanos((frames as u128 * 1_000_000_000 / rate) as u64);
        let batch = self.period * self.batch;
        while !stop.load(Relaxed) {
            let (avail, delay) = self.device.avail_delay()?;
            let now = LslTime::now();
            let avail = avail.max(0) as usize;
            if avail < batch {
                // What is missing, and a millisecond for the device's own steps.
                std::thread::sleep(span(batch - avail) + Duration::from_millis(1));
                continue;
            }
            // Every whole period there is, in one call (each call through PulseAudio's
            // plugin takes its lock, which its own thread holds now and then).
            let periods = (avail / self.period).min(most);
            let frames = self
                .device
                .read(&mut buf[..periods * self.period * self.channels])?;
            if frames == 0 {
                // It said there was more than it had: not at once again.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let mut delay = delay.max(0) as usize;
            for chunk in buf[..frames * self.channels].chunks(self.period * self.channels) {
                self.feed.push_from_device(chunk, now, span(delay), to_f32);
                delay = delay.saturating_sub(chunk.len() / self.channels);
            }
            self.feed.tell();
        }
        Ok(())
    }
}

/// A synthetic input: a 440 Hz tone at −12 dBFS on every channel, in 10 ms chunks paced
/// on `clocks`, each stamped with its exact due time.
pub fn open_synthetic(
    rate: u32,
    channels: u16,
    mut feed: Feed,
    clocks: Arc<dyn Clocks>,
) -> Result<(Input, InputFormat), InputError> {
    let stop = Arc::new(AtomicBool::new(false));
    let frames = (rate / 100).max(1) as usize;
    let join = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("audio-synthetic".into())
            .spawn(move || {
                let mut chunk = vec![0.0f32; frames * channels as usize];
                let t0 = clocks.now().lsl;
                let mut n: u64 = 0;
                let amplitude = 10f32.powf(-12.0 / 20.0);
                while !stop.load(Relaxed) {
                    let first = n * frames as u64;
                    let due = t0
                        + Duration::from_nanos(
                            (first as u128 * 1_000_000_000 / rate as u128) as u64,
                        );
                    for (f, frame) in chunk.chunks_exact_mut(channels as usize).enumerate() {
                        let k = first + f as u64;
                        // Phase from the integer sample index: no accumulated error.
                        let phase = (k % rate as u64) as f64 * 440.0 / rate as f64;
                        let v = amplitude * (std::f64::consts::TAU * phase).sin() as f32;
                        frame.fill(v);
                    }
                    // The chunk is complete once its last sample is due.
                    let last_due = due
                        + Duration::from_nanos(
                            (frames as u128 * 1_000_000_000 / rate as u128) as u64,
                        );
                    clocks.sleep_until(last_due);
                    feed.push(&chunk, due, |s| s);
                    n += 1;
                    // The audio thread takes them 100 ms at a time, as a device's.
                    if n.is_multiple_of(10) {
                        feed.tell();
                    }
                }
            })
            .map_err(InputError::Thread)?
    };
    Ok((
        Input {
            stop,
            join: Some(join),
        },
        InputFormat {
            device: "synthetic 440 Hz tone".into(),
            rate,
            channels,
            synthetic: true,
        },
    ))
}

/// `hindsight devices`: the audio inputs and what they can do.
pub fn describe_devices() -> Vec<String> {
    let ((mut out, default_works), gist) = quietly(describe_devices_loudly);
    // What the audio libraries said while other PCMs were probed is not news when the
    // default input works.
    if let Some(g) = gist.filter(|_| !default_works) {
        out.push(format!("audio: the audio system says: {g}"));
    }
    out
}

/// The lines, and whether the default input can capture.
fn describe_devices_loudly() -> (Vec<String>, bool) {
    let host = cpal::default_host();
    let mut out = Vec::new();
    // The default first (what `audio.device: default` records from), then every other PCM
    // that can capture now; the ALSA PCMs that cannot (`arecord -L` lists plugins such as
    // `jack` or `upmix` whatever the machine has) are named on one line.
    let mut devices: Vec<(String, cpal::Device)> = host
        .default_input_device()
        .and_then(|d| Some((pcm_name(&d)?, d)))
        .into_iter()
        .collect();
    let default = devices.first().map(|(name, _)| name.clone());
    match host.input_devices() {
        Ok(listed) => devices.extend(
            listed
                .filter_map(|d| Some((pcm_name(&d)?, d)))
                .filter(|(name, _)| default.as_ref() != Some(name)),
        ),
        Err(e) => out.push(format!("audio inputs cannot be listed: {e}")),
    }
    let mut cannot = Vec::new();
    let mut default_works = false;
    for (n, (name, d)) in devices.iter().enumerate() {
        // ALSA's `null` PCM opens anywhere and gives silence: not a microphone, and on a
        // machine without one it was the only "input" listed.
        if name == "null" {
            continue;
        }
        match describe_device(d) {
            Some(what) => out.push(format!(
                "audio input `{name}`{}: {what}",
                if n == 0 && default.is_some() {
                    default_works = true;
                    " (default)"
                } else {
                    ""
                }
            )),
            None => cannot.push(name.as_str()),
        }
    }
    if !out.iter().any(|l| l.starts_with("audio input `")) {
        out.push(
            "no audio input devices (the synthetic tone stands in: audio.source: synthetic)".into(),
        );
    }
    if !cannot.is_empty() {
        out.push(format!(
            "audio: listed by ALSA but cannot capture now: {}",
            cannot.join(", ")
        ));
    }
    (out, default_works)
}

/// What a device can record, or None when it does not open for capture.
fn describe_device(d: &cpal::Device) -> Option<String> {
    let configs: Vec<_> = d.supported_input_configs().ok()?.collect();
    if configs.is_empty() {
        return None;
    }
    let mut line = String::new();
    if let Ok(c) = d.default_input_config() {
        line.push_str(&format!(
            "default {} Hz, {} channel(s), {:?}; ",
            c.sample_rate(),
            c.channels(),
            c.sample_format()
        ));
    }
    let ch = configs.iter().map(|c| c.channels());
    let (ch_min, ch_max) = (ch.clone().min().unwrap_or(0), ch.max().unwrap_or(0));
    let rate_min = configs
        .iter()
        .map(|c| c.min_sample_rate())
        .min()
        .unwrap_or(0);
    let rate_max = configs
        .iter()
        .map(|c| c.max_sample_rate())
        .max()
        .unwrap_or(0);
    let mut formats: Vec<String> = configs
        .iter()
        .map(|c| format!("{:?}", c.sample_format()))
        .collect();
    formats.sort();
    formats.dedup();
    line.push_str(&format!(
        "supports {ch_min}-{ch_max} channel(s), {rate_min}-{rate_max} Hz, {}",
        formats.join("/")
    ));
    Some(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::time::Instant;

    /// A capture device as PulseAudio's ALSA plugin is one: the samples come in the
    /// server's fragments (7 ms here), not in the reader's periods, and it is asked
    /// whenever the reader likes.
    struct Fragments {
        start: Instant,
        rate: u32,
        fragment: usize,
        read: Cell<usize>,
        asked: Cell<usize>,
    }

    impl Fragments {
        fn come(&self) -> usize {
            let frames = (self.start.elapsed().as_secs_f64() * self.rate as f64) as usize;
            frames / self.fragment * self.fragment
        }
    }

    impl Capture<f32> for Fragments {
        fn avail_delay(&self) -> Result<(i64, i64), String> {
            self.asked.set(self.asked.get() + 1);
            let avail = (self.come() - self.read.get()) as i64;
            Ok((avail, avail))
        }

        fn read(&self, buf: &mut [f32]) -> Result<usize, String> {
            let n = (self.come() - self.read.get()).min(buf.len());
            // Each sample is its frame's number: what is handed over shows what was read.
            for (i, s) in buf[..n].iter_mut().enumerate() {
                *s = (self.read.get() + i) as f32;
            }
            self.read.set(self.read.get() + n);
            Ok(n)
        }
    }

    #[test]
    fn the_reader_sleeps_for_what_is_missing_and_hands_over_every_frame() {
        let rate = 48_000;
        let (arrived, told) = crossbeam_channel::unbounded();
        let (feed, mut drain) = rings(rate, 1, 2.0);
        let device = Fragments {
            start: Instant::now(),
            rate,
            fragment: 336, // 7 ms
            read: Cell::new(0),
            asked: Cell::new(0),
        };
        let (period, batch) = (1200, 4); // 25 ms, 100 ms
        let mut reader = Reader::new(device, feed.telling(arrived), period, batch, 1, rate);
        let stop = Arc::new(AtomicBool::new(false));
        let stopper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(800));
                stop.store(true, Relaxed);
            })
        };
        reader.run(&stop, |s: f32| s).unwrap();
        stopper.join().unwrap();
        let periods = reader.device.read.get() / period;
        let asked = reader.device.asked.get();
        // Every period that came was read whole (the last batch may still have been
        // awaited).
        assert!(periods >= 24, "{periods} periods read in 0.8 s");
        // It asked once to three times per batch (too early, a fragment short, and when
        // they were there): one that asked again at once would ask thousands of times.
        assert!(
            asked <= 3 * periods / batch + 4,
            "asked {asked} times for {periods} periods"
        );
        // The audio thread was told once per batch, not per period.
        let tells = told.try_iter().count();
        assert!(
            (periods / batch / 2..=periods / batch + 1).contains(&tells),
            "told {tells} times for {periods} periods"
        );
        // What was handed over is every frame in order, in chunks of a period (their
        // times are checked against a real device in tests/audio.rs).
        let mut next = 0.0f32;
        let mut chunks = 0;
        while let Ok(c) = drain.chunks.pop() {
            assert_eq!((c.frames, c.dropped_frames), (period as u32, 0));
            for _ in 0..c.frames {
                assert_eq!(drain.samples.pop().unwrap(), next);
                next += 1.0;
            }
            chunks += 1;
        }
        assert_eq!(chunks, periods);
    }

    #[test]
    fn what_does_not_fit_is_counted_as_dropped() {
        let (mut feed, mut drain) = rings(1000, 2, 0.0); // the smallest ring: 1024 samples
        let data = vec![0.5f32; 1000];
        feed.push(&data, LslTime::from_nanos(1), |s| s);
        feed.push(&data, LslTime::from_nanos(2), |s| s);
        let a = drain.chunks.pop().unwrap();
        let b = drain.chunks.pop().unwrap();
        assert_eq!((a.frames, a.dropped_frames), (500, 0));
        // 24 samples (12 frames) were left in the ring.
        assert_eq!((b.frames, b.dropped_frames), (500, 488));
        assert_eq!(drain.samples.slots(), 1024);
    }

    #[test]
    fn the_synthetic_tone_is_paced_and_stamped_exactly() {
        use crate::clock::{ClockPair, SimulatedClocks, WallTime};
        let clocks = Arc::new(SimulatedClocks::new(ClockPair {
            lsl: LslTime::from_nanos(1_000_000_000),
            wall: WallTime::from_nanos(0),
        }));
        let (feed, mut drain) = rings(48_000, 1, 1.0);
        let (input, format) = open_synthetic(48_000, 1, feed, clocks).unwrap();
        assert!(format.synthetic);
        let mut infos = Vec::new();
        let start = std::time::Instant::now();
        while infos.len() < 5 && start.elapsed() < Duration::from_secs(5) {
            if let Ok(i) = drain.chunks.pop() {
                infos.push(i);
            }
        }
        drop(input);
        for (n, i) in infos.iter().enumerate() {
            assert_eq!(i.frames, 480);
            assert_eq!(
                i.first_capture.as_nanos(),
                1_000_000_000 + n as i64 * 10_000_000
            );
        }
        // −12 dBFS peak.
        let mut peak = 0f32;
        while let Ok(s) = drain.samples.pop() {
            peak = peak.max(s.abs());
        }
        assert!((peak - 0.2512).abs() < 0.001, "{peak}");
    }
}
