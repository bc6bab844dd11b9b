//! `hindsight bench` (also `cargo bench`): the figures of SPEC section 10, measured on this
//! machine, next to `ffmpeg -c copy` on the same frames in the same run.
//!
//! Frames come from the synthetic source's pool (pre-encoded), so the figures are the
//! pipeline's own: the capture thread's work (ring push, forwarding), the writer's (mux,
//! sidecar, write) and nothing of the JPEG encoder. Files go to /dev/shm when it exists
//! (page cache, no device), else to a temporary directory.
//!
//! What belongs here: running and printing the benchmarks. What does not: anything the
//! recorder itself runs (the benchmark drives the real capture step and writer).

mod process;

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::Receiver;

use crate::capture::{Camera, CameraSetup, CaptureStep};
use crate::cli::{BenchArgs, Scheduling};
use crate::clock::{ClockPair, LslTime, RealClocks};
use crate::frame::{Frame, FrameMeta};
use crate::recorder::{Origin, StopReason, TriggerSource};
use crate::ring::{PreTriggerRing, RingLimits};
use crate::source::synthetic::{Pacing, SyntheticConfig, SyntheticSource};
use crate::source::FrameSource;
use crate::writer::files::RecordingPaths;
use crate::writer::{spawn_writer, FileKind, OpenSpec, WriterEvent, WriterHandle, WriterMsg};

/// Rounds of the throughput comparison; the median is printed.
const ROUNDS: usize = 3;

/// JPEG quality of the benchmark's frames. The synthetic picture is smoother than a
/// camera's, so it takes a high quality to reach camera-like frame sizes (SPEC section 10
/// assumes ~25 kB at 400x400); the mean size is printed with each figure.
const BENCH_QUALITY: u8 = 95;

/// One resolution's frames, pre-encoded.
struct FrameSet {
    width: u32,
    height: u32,
    fps: f64,
    jpegs: Vec<Vec<u8>>,
}

impl FrameSet {
    fn make(width: u32, height: u32, fps: f64, distinct: usize) -> anyhow::Result<FrameSet> {
        let cfg = SyntheticConfig {
            width,
            height,
            fps,
            quality: BENCH_QUALITY,
            pacing: Pacing::Unpaced,
            pool: None,
        };
        let mut src = SyntheticSource::new(cfg, Arc::new(RealClocks))?;
        let mut jpegs = Vec::with_capacity(distinct);
        for _ in 0..distinct {
            let mut buf = Vec::new();
            src.next_frame(&mut buf)?;
            jpegs.push(buf);
        }
        Ok(FrameSet {
            width,
            height,
            fps,
            jpegs,
        })
    }

    fn mean_bytes(&self) -> f64 {
        self.jpegs.iter().map(Vec::len).sum::<usize>() as f64 / self.jpegs.len() as f64
    }

    fn meta(&self, n: u64, t0: LslTime, pair: ClockPair) -> FrameMeta {
        let capture = LslTime::from_nanos(t0.as_nanos() + (n as f64 * 1e9 / self.fps) as i64);
        FrameMeta {
            seq: n,
            capture,
            wall: pair.wall_at(capture),
            width: self.width as u16,
            height: self.height as u16,
            keyframe: true,
        }
    }
}

fn camera(set: &FrameSet, duration: Duration) -> Arc<Camera> {
    // Room for the duration's JPEG bytes with margin for the chunked recycling, all of it
    // allocated now (what `hindsight run`'s buffer grows to once it has seen the frames).
    let bytes = (set.mean_bytes() * set.fps * duration.as_secs_f64() * 1.5) as usize + (16 << 20);
    let ring =
        PreTriggerRing::with_chunks(RingLimits::for_rate(duration, set.fps, bytes), usize::MAX);
    let info = crate::source::SourceInfo {
        kind: crate::config::SourceKind::Synthetic,
        model: "bench".into(),
        width: set.width,
        height: set.height,
        fps: set.fps,
        codec: crate::config::Codec::Mjpg,
        encodes: false,
        controls: String::new(),
        controls_off: None,
    };
    Arc::new(Camera::new(CameraSetup::plain(0, "bench", info), ring))
}

fn open_spec(dir: &Path, id: u64, kind: FileKind, trigger: LslTime) -> OpenSpec {
    OpenSpec {
        id,
        kind,
        paths: RecordingPaths::new(dir, &format!("bench-{id}"), "bench"),
        trigger,
        trigger_wall: ClockPair::now().wall,
        pre_trigger: Duration::from_secs(20),
        origin: Origin::new(TriggerSource::Bench, "bench"),
        camera: Default::default(),
        fsync_interval: None,
        audio: None,
        audio_start: false,
        max_bytes: None,
        part: 1,
        exposure: false,
    }
}

fn wait_closed(events: &Receiver<WriterEvent>) -> anyhow::Result<crate::status::FileSummary> {
    loop {
        match events.recv_timeout(Duration::from_secs(120))? {
            WriterEvent::Closed { summary, .. } => return Ok(summary),
            WriterEvent::Failed { error, .. } => bail!("writer failed: {error}"),
            WriterEvent::Opened { .. } | WriterEvent::Continued { .. } => {}
        }
    }
}

fn process_cpu() -> Duration {
    // SAFETY: getrusage fills the zeroed struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Pins this thread (and the threads it starts) to the last core; returns every core, as
/// it is only knowable before pinning.
fn pin_to_one_core() -> (Option<usize>, Vec<core_affinity::CoreId>) {
    let cores = core_affinity::get_core_ids().unwrap_or_default();
    let pinned = cores
        .last()
        .and_then(|&c| core_affinity::set_for_current(c).then_some(c.id));
    (pinned, cores)
}

/// Pipeline throughput: every frame through the capture step into a recording, muxed and
/// written with its sidecar row; both threads on one core.
fn throughput(set: &FrameSet, frames: u64, dir: &Path, id: u64) -> anyhow::Result<(f64, f64, u64)> {
    let cam = camera(set, Duration::from_secs(20));
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let slots = cam.state.lock().ring.limits().max_frames;
    let WriterHandle { tx, join } = spawn_writer(
        cam.writer_camera(),
        ev_tx,
        2 * slots,
        Arc::new(crate::clock::RealClocks),
    );
    let pair = ClockPair::now();
    let t0 = pair.lsl;
    let spec = open_spec(dir, id, FileKind::Recording, t0);
    tx.send(WriterMsg::Open(Box::new(spec)))?;
    cam.begin_recording(id, &tx, t0, None);
    let mut step = CaptureStep::default();
    // On one core the writer only runs when we yield: keep a few frames queued, as a real
    // camera's pace would, so that the figure is the sustained rate, not the rate of
    // dropping (an unpaced source outruns any writer and the ring's storage).
    let backlog = 64;
    let cpu0 = process_cpu();
    let start = Instant::now();
    for n in 0..frames {
        while tx.len() > backlog {
            std::thread::yield_now();
        }
        let jpeg = &set.jpegs[n as usize % set.jpegs.len()];
        step.frame(&cam, set.meta(n, t0, pair), jpeg);
    }
    cam.end_recording(id);
    tx.send(WriterMsg::Close {
        id,
        end: None,
        reason: StopReason::Command(Origin::new(TriggerSource::Bench, "bench")),
        late: false,
    })?;
    let summary = wait_closed(&ev_rx)?;
    let wall = start.elapsed();
    let cpu = process_cpu() - cpu0;
    // Keep the page cache (or tmpfs) from filling up over the rounds.
    let _ = std::fs::remove_file(&summary.path);
    drop(tx);
    let _ = join.join();
    let dropped = frames - summary.frames;
    Ok((
        frames as f64 / wall.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / frames as f64,
        dropped,
    ))
}

/// The capture thread's own cost per frame while buffering (no recording).
fn capture_cost(set: &FrameSet, frames: u64) -> f64 {
    let cam = camera(set, Duration::from_secs(20));
    let pair = ClockPair::now();
    let mut step = CaptureStep::default();
    // Fill the ring first so that eviction is part of the steady state measured.
    let warm = (set.fps * 21.0) as u64;
    for n in 0..warm {
        step.frame(
            &cam,
            set.meta(n, pair.lsl, pair),
            &set.jpegs[n as usize % set.jpegs.len()],
        );
    }
    let start = Instant::now();
    for n in warm..warm + frames {
        step.frame(
            &cam,
            set.meta(n, pair.lsl, pair),
            &set.jpegs[n as usize % set.jpegs.len()],
        );
    }
    start.elapsed().as_nanos() as f64 / frames as f64
}

/// A full ring (20 s at the set's rate) and a trigger: time to the first byte of the file,
/// and to the whole ring written and the file finished (a 20 s clip).
fn trigger_latency(
    set: &FrameSet,
    dir: &Path,
    id: u64,
    cores: &[core_affinity::CoreId],
) -> anyhow::Result<(Duration, Duration, u64)> {
    let cam = camera(set, Duration::from_secs(20));
    let pair = ClockPair::now();
    let mut step = CaptureStep::default();
    let n_frames = (set.fps * 20.0) as u64 + 1;
    // Stamp the ring's frames as the last 20 s before now.
    let t0 = pair.lsl - Duration::from_secs(20);
    for n in 0..n_frames {
        step.frame(
            &cam,
            set.meta(n, t0, pair),
            &set.jpegs[n as usize % set.jpegs.len()],
        );
    }
    // The writer waits for a trigger as it does in service: started long before, idle.
    let (ev_tx, ev_rx) = crossbeam_channel::unbounded();
    let slots = cam.state.lock().ring.limits().max_frames;
    let WriterHandle { tx, join } = spawn_writer(
        cam.writer_camera(),
        ev_tx,
        2 * slots,
        Arc::new(crate::clock::RealClocks),
    );
    std::thread::sleep(Duration::from_millis(200));
    // Trigger and watch for the first byte from another core, as the control thread
    // would: this thread must not stand in the writer's way on its core.
    if cores.len() > 1 {
        core_affinity::set_for_current(cores[0]);
    }
    let trigger = LslTime::now();
    let spec = open_spec(dir, id, FileKind::Clip, trigger);
    let mkv = spec.paths.mkv.clone();
    let start = Instant::now();
    tx.send(WriterMsg::Open(Box::new(spec)))?;
    let (sent, _, _) = cam.send_buffered(&tx, trigger - Duration::from_secs(21), trigger);
    tx.send(WriterMsg::Close {
        id,
        end: Some(trigger),
        reason: StopReason::Command(Origin::new(TriggerSource::Bench, "bench")),
        late: false,
    })?;
    let first_byte = loop {
        if std::fs::metadata(&mkv)
            .map(|m| m.len() > 0)
            .unwrap_or(false)
        {
            break start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(10) {
            bail!("no byte written within 10 s");
        }
        std::hint::spin_loop();
    };
    let summary = wait_closed(&ev_rx)?;
    let all = start.elapsed();
    if let Some(&last) = cores.last() {
        core_affinity::set_for_current(last);
    }
    drop(tx);
    let _ = join.join();
    if summary.frames != sent {
        bail!("clip has {} frames, {} were sent", summary.frames, sent);
    }
    Ok((first_byte, all, sent))
}

/// `ffmpeg -c copy` (MJPEG stream → MKV) on the same frames, on the same core.
struct FfmpegCopy {
    input: PathBuf,
    one: PathBuf,
    out: PathBuf,
    fps: f64,
    frames: u64,
}

impl FfmpegCopy {
    /// Writes the frames as one MJPEG stream, ffmpeg's input.
    fn prepare(set: &FrameSet, frames: u64, dir: &Path) -> anyhow::Result<FfmpegCopy> {
        use std::io::Write;
        let input = dir.join(format!("ffmpeg-in-{}x{}.mjpeg", set.width, set.height));
        let one = dir.join("ffmpeg-one.mjpeg");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        for n in 0..frames {
            f.write_all(&set.jpegs[n as usize % set.jpegs.len()])?;
        }
        f.flush()?;
        std::fs::write(&one, &set.jpegs[0])?;
        Ok(FfmpegCopy {
            input,
            one,
            out: dir.join("ffmpeg-out.mkv"),
            fps: set.fps,
            frames,
        })
    }

    fn time(&self, input: &Path) -> anyhow::Result<Duration> {
        let start = Instant::now();
        let st = Process::new("ffmpeg")
            .args([
                "-hide_banner",
                "-loglevel",
                "error",
                "-y",
                "-f",
                "mjpeg",
                "-framerate",
            ])
            .arg(self.fps.to_string())
            .arg("-i")
            .arg(input)
            .args(["-c", "copy"])
            .arg(&self.out)
            .status()
            .context("running ffmpeg (install it, or use --no-ffmpeg)")?;
        let t = start.elapsed();
        let _ = std::fs::remove_file(&self.out);
        if !st.success() {
            bail!("ffmpeg failed: {st}");
        }
        Ok(t)
    }

    /// Frames per second over the whole input.
    fn run(&self) -> anyhow::Result<f64> {
        Ok(self.frames as f64 / self.time(&self.input)?.as_secs_f64())
    }

    /// ffmpeg's fixed cost: start and finish on a one-frame input.
    fn startup(&self) -> anyhow::Result<Duration> {
        self.time(&self.one)
    }
}

impl Drop for FfmpegCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.input);
        let _ = std::fs::remove_file(&self.one);
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_dir(arg: &Option<PathBuf>) -> anyhow::Result<(tempfile::TempDir, String)> {
    let (dir, where_) = match arg {
        Some(d) => (tempfile::tempdir_in(d)?, d.display().to_string()),
        None if Path::new("/dev/shm").is_dir() => (
            tempfile::tempdir_in("/dev/shm")?,
            "/dev/shm (tmpfs: page cache, no device)".to_string(),
        ),
        None => (
            tempfile::tempdir()?,
            std::env::temp_dir().display().to_string(),
        ),
    };
    Ok((dir, where_))
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let (tmp, where_) = bench_dir(&args.dir)?;
    let dir = tmp.path();
    if let Some(secs) = args.soak {
        return soak(Duration::from_secs(secs), dir, &where_);
    }
    if args.process {
        println!(
            "hindsight {} bench --process: the whole recorder as users run it, per thread",
            env!("CARGO_PKG_VERSION")
        );
        let secs = if args.quick { 3.0 } else { 10.0 };
        let scheduling = args.scheduling;
        match scheduling {
            Scheduling::Defaults => {}
            Scheduling::Plain => {
                println!("capture thread unpinned at normal priority (--scheduling plain)")
            }
            Scheduling::PinnedRealtime => println!(
                "capture thread pinned to the last core at SCHED_FIFO (--scheduling pinned-realtime)"
            ),
        }
        for set in [
            FrameSet::make(400, 400, 100.0, 100)?,
            FrameSet::make(1456, 96, 536.0, 100)?,
        ] {
            for feed in [process::Feed::Command, process::Feed::SyntheticPool] {
                println!();
                process::run(&set, dir, secs, feed, scheduling, args.viewers, args.audio)?;
            }
        }
        return Ok(());
    }
    let scale = if args.quick { 0.1 } else { 1.0 };
    let n = |x: f64| ((x * scale) as u64).max(100);
    let (core, all_cores) = pin_to_one_core();
    println!("hindsight {} bench", env!("CARGO_PKG_VERSION"));
    println!(
        "files in {where_}; pinned to core {}; frames from the synthetic source (quality {BENCH_QUALITY})",
        core.map_or("none".into(), |c| c.to_string())
    );
    let sets = [
        FrameSet::make(400, 400, 100.0, 100)?,
        FrameSet::make(1456, 96, 536.0, 100)?,
        FrameSet::make(1920, 1080, 30.0, 30)?,
    ];
    println!();
    println!("pipeline: capture step + ring + MKV mux + sidecar + write, one core");
    println!("  (median of {ROUNDS} rounds, each hindsight then ffmpeg -c copy on the same frames and core)");
    let mut id = 0;
    for (set, frames) in [
        (&sets[0], n(20_000.0)),
        (&sets[1], n(40_000.0)),
        (&sets[2], n(3_000.0)),
    ] {
        let ffmpeg = if args.no_ffmpeg {
            None
        } else {
            Some(FfmpegCopy::prepare(set, frames, dir)?)
        };
        let (mut ours, mut cpu, mut theirs, mut ratios, mut dropped) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), 0);
        for _ in 0..ROUNDS {
            id += 1;
            let (fps, cpu_us, d) = throughput(set, frames, dir, id)?;
            ours.push(fps);
            cpu.push(cpu_us);
            dropped += d;
            if let Some(f) = &ffmpeg {
                let ff = f.run()?;
                theirs.push(ff);
                ratios.push(fps / ff);
            }
        }
        let cpu = median(cpu);
        print!(
            "  {}x{} ({:.1} kB/frame): {:>7.0} frames/s (range {:.0}-{:.0}), {:.1} µs CPU/frame \
             = {:.2}% of a core at {} fps, {} dropped",
            set.width,
            set.height,
            set.mean_bytes() / 1e3,
            median(ours.clone()),
            ours.iter().cloned().fold(f64::INFINITY, f64::min),
            ours.iter().cloned().fold(0.0, f64::max),
            cpu,
            cpu * set.fps / 1e4,
            set.fps,
            dropped
        );
        match &ffmpeg {
            None => println!(),
            Some(f) => println!(
                "\n      ffmpeg -c copy {:>7.0} frames/s (startup {:.0} ms); hindsight/ffmpeg {:.1}x",
                median(theirs),
                f.startup()?.as_secs_f64() * 1e3,
                median(ratios)
            ),
        }
    }
    println!();
    match lsl_push_cost(n(50_000.0)) {
        Ok(us) => println!(
            "LSL frame sample push: {us:.2} µs on the lsl thread = {:.3}% of a core at 536 fps \
             (one inlet connected; liblsl transmits from threads of its own)",
            us * 536.0 / 1e4
        ),
        Err(e) => println!("LSL frame sample push: not measured ({e})"),
    }
    println!();
    println!("capture thread per frame while buffering (ring push, counters):");
    for set in &sets {
        let ns = capture_cost(set, n(100_000.0));
        println!(
            "  {}x{}: {:.0} ns/frame = {:.3}% of a core at {} fps",
            set.width,
            set.height,
            ns,
            ns * set.fps / 1e9 * 100.0,
            set.fps
        );
    }
    println!();
    println!("trigger with a full 20 s ring (file open, header, frames, finish; no fsync):");
    for (i, set) in sets.iter().take(2).enumerate() {
        let (first, all, frames) = trigger_latency(set, dir, 100 + i as u64, &all_cores)?;
        println!(
            "  {}x{}@{}: first byte after {:.3} ms; all {} frames written in {:.1} ms",
            set.width,
            set.height,
            set.fps,
            first.as_secs_f64() * 1e3,
            frames,
            all.as_secs_f64() * 1e3
        );
    }
    println!();
    println!("ring memory:");
    println!(
        "  {} bytes per frame beyond its JPEG bytes (frame slot), storage grows to what the frames need, allocated off the capture thread",
        std::mem::size_of::<Frame>()
    );
    for set in &sets {
        let slots = RingLimits::for_rate(Duration::from_secs(20), set.fps, 1 << 20).max_frames;
        println!(
            "  {}x{}@{} 20 s: {} slots ({:.1} MiB), JPEG data of 20 s ≈ {:.0} MiB",
            set.width,
            set.height,
            set.fps,
            slots,
            (slots * std::mem::size_of::<Frame>()) as f64 / (1 << 20) as f64,
            set.mean_bytes() * set.fps * 20.0 / (1 << 20) as f64
        );
    }
    Ok(())
}

/// The API client of a recorder this benchmark started, once it answers (up to 20 s).
fn wait_for_api(api: &str, log: &Path) -> anyhow::Result<crate::api::client::ApiClient> {
    let client = crate::api::client::ApiClient::new(api, None).map_err(|e| anyhow::anyhow!(e))?;
    let start = Instant::now();
    while client.status().is_err() {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("the recorder did not start; see {}", log.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(client)
}

/// CPU time (user + system) of process `pid` so far, from /proc.
fn cpu_of(pid: u32) -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')').context("bad /proc stat")? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Ok(Duration::from_millis(ticks * 1000 / hz))
}

/// The real recorder (this binary, `run`) with two synthetic cameras, recordings started
/// and stopped every few seconds for `length`; reports what a scientist would ask: was any
/// frame lost, from the buffer or from a file?
fn soak(length: Duration, dir: &Path, where_: &str) -> anyhow::Result<()> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let api = format!("127.0.0.1:{port}");
    let root = dir.join("recordings");
    let config = dir.join("soak.yaml");
    std::fs::write(
        &config,
        "buffer:\n  duration: 20\n  max_bytes: 256MiB\n\
         cameras:\n\
         \x20 - {name: a, source: synthetic, resolution: {width: 400, height: 400}, fps: 100}\n\
         \x20 - {name: b, source: synthetic, resolution: {width: 1456, height: 96}, fps: 536}\n",
    )?;
    let log = dir.join("soak.log");
    let mut child = Process::new(std::env::current_exe()?)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--root")
        .arg(&root)
        .args(["--api", &api])
        .stderr(std::fs::File::create(&log)?)
        .spawn()?;
    let result = (|| -> anyhow::Result<()> {
        let client = wait_for_api(&api, &log)?;
        println!(
            "soak: {} s, cameras 400x400@100 and 1456x96@536 (synthetic), files in {where_}",
            length.as_secs()
        );
        // Fill the buffer first, then measure CPU from a steady state.
        std::thread::sleep(Duration::from_secs(21));
        let cpu0 = cpu_of(child.id())?;
        let threads0 = process::threads(child.id())?;
        let t0 = Instant::now();
        let mut recordings = 0;
        let mut n = 0u64;
        let (mut files, mut frames) = (0, 0u64);
        let mut missing = std::collections::BTreeSet::new();
        while t0.elapsed() < length {
            // Deterministic but uneven: 2 to 5 s recording, 1 to 3 s between.
            n += 1;
            let r = client.start(None).map_err(|e| anyhow::anyhow!(e))?;
            if !r.ok {
                bail!("start refused: {}", r.message);
            }
            recordings += 1;
            std::thread::sleep(Duration::from_millis(2000 + (n * 7919 % 3000)));
            client.stop().map_err(|e| anyhow::anyhow!(e))?;
            std::thread::sleep(Duration::from_millis(1000 + (n * 104_729 % 2000)));
            // Check the finished files and delete them, so that a long soak does not fill
            // the disk (or RAM, on tmpfs).
            let (f, fr) = check_and_remove_finished(&root, &client, &mut missing)?;
            files += f;
            frames += fr;
        }
        let cpu = cpu_of(child.id())? - cpu0;
        let wall = t0.elapsed();
        let per_thread = process::rates(
            &threads0,
            &process::threads(child.id())?,
            wall.as_secs_f64(),
        );
        std::thread::sleep(Duration::from_secs(2));
        let (f, fr) = check_and_remove_finished(&root, &client, &mut missing)?;
        files += f;
        frames += fr;
        let status = client.status().map_err(|e| anyhow::anyhow!(e))?;
        println!(
            "  {recordings} recordings; recorder CPU {:.1}% of one core (both cameras, including synthetic JPEG encoding)",
            cpu.as_secs_f64() / wall.as_secs_f64() * 100.0
        );
        println!("  per thread (threads of one name together): % of one core, wakeups/s");
        for (name, (cpu, wakeups)) in &per_thread {
            if *cpu >= 0.005 || *wakeups >= 0.5 {
                println!("    {name:<20} {cpu:>6.2} {wakeups:>8.0}");
            }
        }
        for cam in &status.cameras {
            println!(
                "  camera {}: {} frames captured, {} dropped (source gaps {}, buffer held {}, too large {}, writer queue {}), {} evicted early from the buffer, {} LSL frame samples lost to a full queue",
                cam.name,
                cam.frames_captured,
                cam.frames_dropped,
                cam.drops.source_gaps,
                cam.drops.buffer_held_by_writer,
                cam.drops.too_large,
                cam.drops.writer_queue_full,
                cam.buffer_evicted_early,
                cam.lsl_samples_dropped
            );
        }
        println!(
            "  {files} files, {frames} frames written; distinct frames missing inside files: {} {:?}",
            missing.len(),
            missing.iter().take(10).collect::<Vec<_>>()
        );
        Ok(())
    })();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let _ = child.wait();
    result
}

/// Counts the frames of every finished recording under `root` and collects the gaps in
/// their frame numbers as (camera, frame number) (from the sidecars), so that a frame lost
/// in several overlapping recordings counts once; then deletes those recordings.
fn check_and_remove_finished(
    root: &Path,
    client: &crate::api::client::ApiClient,
    missing: &mut std::collections::BTreeSet<(String, u64)>,
) -> anyhow::Result<(u64, u64)> {
    let status = client.status().map_err(|e| anyhow::anyhow!(e))?;
    let (mut files, mut frames) = (0, 0u64);
    for day in std::fs::read_dir(root)? {
        // Day folders only (the root also holds the numbering file).
        let video = day?.path().join("video");
        if !video.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(video)? {
            let mkv = f?.path();
            if mkv.extension().is_none_or(|e| e != "mkv")
                || status.current_files.iter().any(|o| Path::new(o) == mkv)
            {
                continue;
            }
            let sidecar = mkv.with_extension("frames.csv");
            let text = std::fs::read_to_string(&sidecar)?;
            let numbers: Vec<u64> = text
                .lines()
                .skip(1)
                .filter_map(|l| l.split(',').next()?.parse().ok())
                .collect();
            files += 1;
            frames += numbers.len() as u64;
            let camera = mkv
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit('_').next())
                .unwrap_or_default()
                .to_string();
            for w in numbers.windows(2) {
                for n in w[0] + 1..w[1] {
                    missing.insert((camera.clone(), n));
                }
            }
            for p in [&mkv, &sidecar, &mkv.with_extension("events.csv")] {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    Ok((files, frames))
}

/// What the LSL thread spends per frame sample: `push_sample_ex` of the 4-double frame
/// sample with its explicit timestamp, with one inlet connected and drained meanwhile.
fn lsl_push_cost(samples: u64) -> anyhow::Result<f64> {
    use lsl::{ExPushable, Pullable};
    let name = format!("hindsight-bench-{}", std::process::id());
    let info = lsl::StreamInfo::new(
        &name,
        "Markers",
        4,
        100.0,
        lsl::ChannelFormat::Double64,
        &name,
    )
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let outlet = lsl::StreamOutlet::new(&info, 0, 360).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // liblsl handles are not Send: the consumer finds the stream on its own thread.
    let drain = {
        let (stop, name) = (stop.clone(), name.clone());
        std::thread::spawn(move || -> anyhow::Result<u64> {
            let found = lsl::resolve_byprop("source_id", &name, 1, 5.0)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let info = found
                .into_iter()
                .next()
                .context("the bench's own stream was not found")?;
            let inlet = lsl::StreamInlet::new(&info, 360, 0, false)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            inlet
                .open_stream(5.0)
                .map_err(|e| anyhow::anyhow!("{e:?}"))?;
            let mut got = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r: Result<(Vec<f64>, f64), _> = inlet.pull_sample(0.1);
                if matches!(r, Ok((_, ts)) if ts != 0.0) {
                    got += 1;
                }
            }
            Ok(got)
        })
    };
    if !outlet.wait_for_consumers(5.0) {
        bail!("no consumer connected");
    }
    let mut sample = vec![0.0_f64; 4];
    let t0 = lsl::local_clock();
    let start = Instant::now();
    for i in 0..samples {
        sample[0] = i as f64;
        outlet
            .push_sample_ex(&sample, t0 + i as f64 * 0.01, true)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    }
    let us = start.elapsed().as_secs_f64() * 1e6 / samples as f64;
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    drain
        .join()
        .map_err(|_| anyhow::anyhow!("drain thread panicked"))??;
    Ok(us)
}
