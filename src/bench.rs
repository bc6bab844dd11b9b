//! `hindsight bench` (also `cargo bench`): the figures of SPEC section 10, measured on this
//! machine, next to `ffmpeg -c copy` on the same frames in the same run.
//!
//! Frames come from the synthetic source's pool (pre-encoded), so the figures are the
//! pipeline's own: the capture thread's work (ring push, forwarding), the writer's (mux,
//! sidecar, write) and nothing of the JPEG encoder. Files go to /dev/shm when it exists
//! (page cache, no device), else to a temporary directory.

use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::Receiver;

use crate::capture::{Camera, CaptureStep};
use crate::cli::BenchArgs;
use crate::clock::{ClockPair, LslTime, RealClocks};
use crate::frame::{Frame, FrameMeta};
use crate::recorder::Origin;
use crate::ring::{PreTriggerRing, RingLimits};
use crate::source::synthetic::{Pacing, SyntheticConfig, SyntheticSource};
use crate::source::FrameSource;
use crate::writer::files::RecordingPaths;
use crate::writer::{spawn_writer, FileKind, OpenSpec, WriterEvent, WriterHandle, WriterMsg};

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
    // Room for the duration's JPEG bytes with margin for the chunked recycling.
    let bytes = (set.mean_bytes() * set.fps * duration.as_secs_f64() * 1.5) as usize + (16 << 20);
    let ring = PreTriggerRing::new(RingLimits::for_rate(duration, set.fps, bytes));
    let info = crate::source::SourceInfo {
        kind: "synthetic",
        model: "bench".into(),
        width: set.width,
        height: set.height,
        fps: set.fps,
        codec: "mjpg",
    };
    Arc::new(Camera::new(
        0,
        "bench".into(),
        info,
        "bench".into(),
        None,
        ring,
    ))
}

fn open_spec(dir: &Path, id: u64, kind: FileKind, trigger: LslTime) -> OpenSpec {
    OpenSpec {
        id,
        kind,
        paths: RecordingPaths::new(dir, &format!("bench-{id}"), "bench"),
        trigger,
        trigger_wall: ClockPair::now().wall,
        pre_trigger: Duration::from_secs(20),
        origin: Origin::new("bench", "bench"),
        tags: Vec::new(),
        fsync_interval: None,
    }
}

fn wait_closed(events: &Receiver<WriterEvent>) -> anyhow::Result<crate::status::FileSummary> {
    loop {
        match events.recv_timeout(Duration::from_secs(120))? {
            WriterEvent::Closed { summary, .. } => return Ok(summary),
            WriterEvent::Failed { error, .. } => bail!("writer failed: {error}"),
            WriterEvent::Opened { .. } => {}
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
    let WriterHandle { tx, join } = spawn_writer(cam.clone(), ev_tx, 2 * slots + 256);
    let pair = ClockPair::now();
    let t0 = pair.lsl;
    let spec = open_spec(dir, id, FileKind::Recording, t0);
    tx.send(WriterMsg::Open(Box::new(spec)))?;
    cam.begin_recording(id, &tx, t0, None);
    let mut step = CaptureStep::default();
    let cap = tx.capacity().unwrap_or(1024);
    let cpu0 = process_cpu();
    let start = Instant::now();
    for n in 0..frames {
        // On one core the writer only runs when we yield: keep its queue from overflowing
        // so that the figure is the sustained rate, not the rate of dropping.
        while tx.len() > cap / 2 {
            std::thread::yield_now();
        }
        let jpeg = &set.jpegs[n as usize % set.jpegs.len()];
        step.frame(&cam, set.meta(n, t0, pair), jpeg);
    }
    cam.end_recording(id);
    tx.send(WriterMsg::Close {
        id,
        end: None,
        reason: "bench".into(),
    })?;
    let summary = wait_closed(&ev_rx)?;
    let wall = start.elapsed();
    let cpu = process_cpu() - cpu0;
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
    let WriterHandle { tx, join } = spawn_writer(cam.clone(), ev_tx, 2 * slots + 256);
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
    let (sent, _) = cam.send_buffered(&tx, trigger - Duration::from_secs(21), trigger);
    tx.send(WriterMsg::Close {
        id,
        end: Some(trigger),
        reason: "bench".into(),
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

/// `ffmpeg -c copy` on the same frames: returns frames per second, and the time ffmpeg
/// needs to start and finish on a one-frame input (its fixed cost).
fn ffmpeg_copy(set: &FrameSet, frames: u64, dir: &Path) -> anyhow::Result<(f64, Duration)> {
    let input = dir.join(format!("ffmpeg-in-{}x{}.mjpeg", set.width, set.height));
    let one = dir.join("ffmpeg-one.mjpeg");
    {
        use std::io::Write;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&input)?);
        for n in 0..frames {
            f.write_all(&set.jpegs[n as usize % set.jpegs.len()])?;
        }
        f.flush()?;
        std::fs::write(&one, &set.jpegs[0])?;
    }
    let run = |inp: &Path| -> anyhow::Result<Duration> {
        let out = dir.join("ffmpeg-out.mkv");
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
            .arg(set.fps.to_string())
            .arg("-i")
            .arg(inp)
            .args(["-c", "copy"])
            .arg(&out)
            .status()
            .context("running ffmpeg (install it, or use --no-ffmpeg)")?;
        let t = start.elapsed();
        let _ = std::fs::remove_file(&out);
        if !st.success() {
            bail!("ffmpeg failed: {st}");
        }
        Ok(t)
    };
    let fixed = run(&one)?;
    let total = run(&input)?;
    let _ = std::fs::remove_file(&input);
    let _ = std::fs::remove_file(&one);
    Ok((frames as f64 / total.as_secs_f64(), fixed))
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
    for (i, (set, frames)) in [(&sets[0], n(50_000.0)), (&sets[2], n(6_000.0))]
        .into_iter()
        .enumerate()
    {
        let (fps, cpu_us, dropped) = throughput(set, frames, dir, 1 + i as u64)?;
        print!(
            "  {}x{} ({:.1} kB/frame): {:>8.0} frames/s, {:.1} µs CPU/frame, {} dropped",
            set.width,
            set.height,
            set.mean_bytes() / 1e3,
            fps,
            cpu_us,
            dropped
        );
        if args.no_ffmpeg {
            println!();
        } else {
            let (ff_fps, ff_fixed) = ffmpeg_copy(set, frames, dir)?;
            println!(
                "; ffmpeg -c copy {:>7.0} frames/s (startup {:.0} ms); ratio {:.1}x",
                ff_fps,
                ff_fixed.as_secs_f64() * 1e3,
                fps / ff_fps
            );
        }
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
        "  {} bytes per frame beyond its JPEG bytes (frame slot), storage allocated up front",
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
