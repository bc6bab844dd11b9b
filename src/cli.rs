//! Command-line interface (SPEC section 8a): the names users' scripts rely on.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "hindsight",
    version,
    about = "Event-triggered scientific recorder: \
    keeps the last seconds of video in RAM and writes them, and everything after, when told to start."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the recorder (the service).
    Run(RunArgs),
    /// Control a running recorder through its local API.
    Ctl(CtlArgs),
    /// Check the configuration and the recordings folder, as `hindsight run` with the same
    /// options would use them (cameras, audio, LSL, ntfy, disk, memory).
    Check {
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List the cameras and audio inputs this machine has.
    Devices,
    /// Print the configuration in effect (defaults, file, --set), or one key's value:
    /// `hindsight config --config FILE trigger.ntfy.topic`.
    Config {
        #[command(flatten)]
        config: ConfigArgs,
        /// A key path such as storage.root or cameras.0.fps; none = everything.
        key: Option<String>,
    },
    /// Watch a running recorder in the terminal (S start, X stop, Q detach).
    Dashboard {
        /// API address of the running recorder. Default: $HINDSIGHT_API, else 127.0.0.1:8787.
        #[arg(long)]
        api: Option<String>,
        /// Environment variable holding the API token, if the API needs one.
        #[arg(long, default_value = "HINDSIGHT_API_TOKEN")]
        token_env: String,
    },
    /// Finish recordings (MKV files with their sidecars, WAV files) that a crash or power
    /// cut left unfinished. A folder (the recordings root, a day, its video or audio
    /// folder) stands for the recordings in it.
    Repair {
        #[arg(required = true, value_name = "FILE|FOLDER")]
        files: Vec<PathBuf>,
    },
    /// Write a recording's quality report (HTML with plots: frame intervals, gaps, rate,
    /// audio length, marks). FILE is any file of the recording, or `<folder>/<stem>`.
    Report {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Where to write it (a file for one recording, a folder for several). Default:
        /// `<stem>.report.html` in the current folder.
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Measure the pipeline (ring, muxer, sidecar) and compare with `ffmpeg -c copy`.
    Bench(BenchArgs),
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Do not show the terminal dashboard (dashboard.enabled: auto shows it when
    /// `hindsight run` is on a terminal); log to stderr instead.
    #[arg(long)]
    pub no_dashboard: bool,
}

/// The configuration in effect: a file (or the built-in defaults) and the command line's
/// overrides of its keys. `run`, `check` and `config` take the same, so that `check` and
/// `config` show what `run` with those options would use.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Config file. Default: $HINDSIGHT_CONFIG, else /etc/hindsight/config.yaml if it
    /// exists, else the built-in defaults (a synthetic camera).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Use this source for every camera (synthetic, v4l2, libcamera, http-mjpeg, command).
    #[arg(long)]
    pub source: Option<String>,
    /// Recordings root (storage.root).
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// API address (api.listen), e.g. 127.0.0.1:8787.
    #[arg(long)]
    pub api: Option<String>,
    /// Rig name (rig).
    #[arg(long)]
    pub rig: Option<String>,
    /// Override any config key: `--set buffer.duration=5 --set cameras.0.fps=30`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl ConfigArgs {
    /// How many keys the command line overrides.
    pub fn overrides(&self) -> usize {
        [
            self.source.is_some(),
            self.root.is_some(),
            self.api.is_some(),
            self.rig.is_some(),
        ]
        .iter()
        .filter(|&&b| b)
        .count()
            + self.set.len()
    }
}

#[derive(Debug, clap::Args)]
pub struct CtlArgs {
    /// API address of the running recorder. Default: $HINDSIGHT_API, else 127.0.0.1:8787.
    #[arg(long)]
    pub api: Option<String>,
    /// Environment variable holding the API token, if the API needs one.
    #[arg(long, default_value = "HINDSIGHT_API_TOKEN")]
    pub token_env: String,
    /// Seconds to wait for the answer. Exit code 2: not carried out (nothing listens);
    /// 3: no answer in time (it may still be carried out); 1: refused or failed.
    #[arg(long, default_value_t = 15.0)]
    pub timeout: f64,
    #[command(subcommand)]
    pub action: CtlAction,
}

#[derive(Debug, Subcommand)]
pub enum CtlAction {
    /// Start recording (the buffer, then live); with SECONDS, stop by itself after that long.
    Start {
        #[arg(value_parser = seconds, allow_negative_numbers = true)]
        seconds: Option<f64>,
    },
    /// Stop recording.
    Stop,
    /// Write the last SECONDS from the buffer to a file; keep buffering.
    Clip {
        #[arg(value_parser = seconds, allow_negative_numbers = true)]
        seconds: f64,
    },
    /// Put TEXT on the event stream and in the current recording's events.
    Mark {
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Show the recorder's status.
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Fewer frames: a quick look rather than stable figures.
    #[arg(long)]
    pub quick: bool,
    /// Directory for the benchmark's files (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Skip the `ffmpeg -c copy` comparison.
    #[arg(long)]
    pub no_ffmpeg: bool,
    /// Instead of the figures: run the real recorder for SECONDS with synthetic cameras at
    /// 400x400@100 and 1456x96@536, starting and stopping recordings every few seconds,
    /// and report drops, missing frames and CPU use (SPEC section 10: 600 s).
    #[arg(long, value_name = "SECONDS")]
    pub soak: Option<u64>,
    /// Instead of the figures: the whole recorder as users run it (`hindsight run`, a
    /// command camera at 400x400@100 and 1456x96@536 fed pre-encoded JPEGs, LSL with one
    /// inlet connected), buffering and recording: CPU and wakeups per thread and memory,
    /// beside `ffmpeg -c copy` on the same stream.
    #[arg(long)]
    pub process: bool,
    /// With --process: this many web-page live views (`live.mjpeg`) stay open while it
    /// records, each read as a browser reads it.
    #[arg(long, value_name = "N", default_value_t = 0, requires = "process")]
    pub viewers: usize,
    /// With --process: how the capture thread is scheduled, to see what pinning and
    /// real-time priority cost on this machine: `defaults` (unpinned; real-time above
    /// 150 fps), `plain` (`cpu_core: none`, `realtime: false`) or `pinned-realtime`
    /// (`cpu_core: auto`, `realtime: true`: pinned to the last core at SCHED_FIFO).
    #[arg(long, value_enum, default_value = "defaults", requires = "process")]
    pub scheduling: Scheduling,
    /// With --process: the default audio input recorded too, as the configuration's
    /// defaults do (a microphone; on a machine without a sound card, the PulseAudio one of
    /// `scripts/audio-loopback.sh`).
    #[arg(long, requires = "process")]
    pub audio: bool,
}

/// How `bench --process` schedules the recorder's capture thread (and its bare thread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scheduling {
    /// The configuration's defaults.
    Defaults,
    /// `cpu_core: none`, `realtime: false`: where and when the kernel likes.
    Plain,
    /// `cpu_core: auto`, `realtime: true`: pinned to the last core at SCHED_FIFO.
    PinnedRealtime,
}

/// A number of seconds for `ctl start` and `ctl clip`: a finite number. JSON has no
/// infinity or NaN (they would go out as `null`, a plain `start`), so they are refused
/// here; the recorder judges the range and says it.
fn seconds(arg: &str) -> Result<f64, String> {
    match arg.trim().parse::<f64>() {
        Ok(s) if s.is_finite() => Ok(s),
        _ => Err("seconds must be a number, like 10 or 2.5".into()),
    }
}
