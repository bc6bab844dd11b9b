//! `hindsight bench --process`: what the whole recorder costs as users run it.
//!
//! The real `hindsight run` (this binary) records a `source: command` camera: ffmpeg
//! pacing a file of pre-encoded JPEGs at the camera's rate (so no encoder is measured),
//! with LSL on and one inlet in this process pulling the frame stream, as LabRecorder
//! does in every real session. For each phase (buffering, then recording) it prints, per
//! thread of the recorder: CPU as a share of one core, wakeups per second (voluntary
//! context switches: a thread that sleeps and wakes), and the process's resident memory.
//! Then, still recording, `ffmpeg -c copy` writes the same JPEGs, paced at the same
//! rate, to a Matroska file, and a thread of the benchmark does nothing but wake at the
//! frame rate (the floor under a capture thread on this machine); all three are measured
//! over the same windows, so that their figures come from the same moments of a shared
//! machine. Each phase is [`ROUNDS`] windows; every window's total is printed with the
//! median. The pacing ffmpeg processes are separate and not counted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use lsl::Pullable;

use super::FrameSet;
use crate::cli::Scheduling;
use crate::config::{CameraConfig, CpuCore};
use crate::source::synthetic::POOL_VARIABLE;

/// One thread's counters, from /proc/PID/task/TID.
#[derive(Clone, Debug, Default)]
pub(super) struct ThreadCounters {
    name: String,
    /// Time on a CPU, ns: the scheduler's own count (`schedstat`), not the 10 ms ticks
    /// of `stat`, which round a thread that runs 50 µs a frame to 0 or 1 tick.
    cpu_ns: u64,
    voluntary_switches: u64,
}

/// The counters of every thread of `pid`, by thread id.
pub(super) fn threads(pid: u32) -> anyhow::Result<BTreeMap<u32, ThreadCounters>> {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let entry = entry?;
        let Ok(tid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let dir = entry.path();
        // A thread may end between listing and reading: skip it.
        let (Ok(stat), Ok(status)) = (
            std::fs::read_to_string(dir.join("stat")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        let open = stat.find('(').context("bad stat")?;
        let close = stat.rfind(')').context("bad stat")?;
        let name = stat[open + 1..close].to_string();
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = f[11].parse::<u64>()? + f[12].parse::<u64>()?;
        // Kernels without schedstat: the ticks.
        let cpu_ns = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split(' ').next().and_then(|v| v.parse().ok()))
            .unwrap_or(ticks * 1_000_000_000 / hz);
        let voluntary_switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        out.insert(
            tid,
            ThreadCounters {
                name,
                cpu_ns,
                voluntary_switches,
            },
        );
    }
    Ok(out)
}

/// A `Key:  N kB` figure of a `/proc/PID/` file, KiB (0 if absent).
fn proc_kib(pid: u32, file: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    proc_kib(pid, "status", "VmRSS:")
}

/// The part of it on transparent huge pages (the pre-trigger buffer's, `ring::new_chunk`).
fn huge_kib(pid: u32) -> u64 {
    proc_kib(pid, "smaps_rollup", "AnonHugePages:")
}

/// Per thread name (threads of one name summed): CPU share of one core and wakeups per
/// second over `secs`, between two readings.
pub(super) fn rates(
    before: &BTreeMap<u32, ThreadCounters>,
    after: &BTreeMap<u32, ThreadCounters>,
    secs: f64,
) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for (tid, a) in after {
        let b = before.get(tid).cloned().unwrap_or_default();
        let cpu = (a.cpu_ns.saturating_sub(b.cpu_ns)) as f64 / 1e9 / secs * 100.0;
        let wakeups = a.voluntary_switches.saturating_sub(b.voluntary_switches) as f64 / secs;
        let e = out.entry(a.name.clone()).or_default();
        e.0 += cpu;
        e.1 += wakeups;
    }
    out
}

/// A phase's figures for one process.
struct Phase {
    threads: BTreeMap<String, (f64, f64)>,
    rss_kib: u64,
    huge_kib: u64,
}

impl Phase {
    /// The whole process: CPU share of one core, wakeups per second.
    fn total(&self) -> (f64, f64) {
        self.threads
            .values()
            .fold((0.0, 0.0), |a, v| (a.0 + v.0, a.1 + v.1))
    }

    /// The per-thread mean of several windows of equal length.
    fn mean(rounds: &[Phase]) -> Phase {
        let mut threads: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for r in rounds {
            for (name, v) in &r.threads {
                let e = threads.entry(name.clone()).or_default();
                e.0 += v.0 / rounds.len() as f64;
                e.1 += v.1 / rounds.len() as f64;
            }
        }
        Phase {
            threads,
            rss_kib: rounds.iter().map(|r| r.rss_kib).max().unwrap_or(0),
            huge_kib: rounds.iter().map(|r| r.huge_kib).max().unwrap_or(0),
        }
    }
}

/// Windows measured one after the other in a phase: this VM's load changes from one
/// window to the next by as much as the figures themselves, so each phase prints every
/// window and their median.
pub(super) const ROUNDS: usize = 3;

/// `rounds` consecutive windows of `secs`, each measuring every process of `pids` over
/// the same interval: result\[round\]\[process\].
fn measure(pids: &[u32], secs: f64, rounds: usize) -> anyhow::Result<Vec<Vec<Phase>>> {
    let mut out = Vec::with_capacity(rounds);
    let mut before = pids
        .iter()
        .map(|&p| threads(p))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for _ in 0..rounds {
        std::thread::sleep(Duration::from_secs_f64(secs));
        let after = pids
            .iter()
            .map(|&p| threads(p))
            .collect::<anyhow::Result<Vec<_>>>()?;
        out.push(
            before
                .iter()
                .zip(&after)
                .zip(pids)
                .map(|((b, a), &pid)| Phase {
                    threads: rates(b, a, secs),
                    rss_kib: rss_kib(pid),
                    huge_kib: huge_kib(pid),
                })
                .collect(),
        );
        before = after;
    }
    Ok(out)
}

/// The middle value (the mean of the two middle values for an even count).
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The command that paces `file` (concatenated JPEGs) at `fps`, forever, to stdout.
fn pacer(file: &Path, fps: f64) -> String {
    format!(
        "ffmpeg -nostdin -v error -re -stream_loop -1 -framerate {fps} -f mjpeg -i {} -c copy -f mjpeg -",
        file.display()
    )
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Where the recorder's frames come from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// `source: command`, ffmpeg pacing the set's JPEGs (a separate process, not
    /// counted).
    Command,
    /// `source: synthetic`, cycling through frames it encoded at start-up
    /// ([`POOL_VARIABLE`]), so that its thread paces and hands over frames but encodes
    /// none: the capture path of a camera whose driver hands over JPEGs.
    SyntheticPool,
}

/// What a capture thread at `fps` frames a second scheduled so does: pinned to the last
/// core, at real-time priority (when permitted).
fn pinned_and_realtime(scheduling: Scheduling, fps: f64) -> (bool, bool) {
    let defaults = CameraConfig::default();
    match scheduling {
        Scheduling::Defaults => (
            defaults.cpu_core != CpuCore::Unpinned,
            defaults.wants_realtime(fps),
        ),
        Scheduling::Plain => (false, false),
        Scheduling::PinnedRealtime => (true, true),
    }
}

/// Runs the comparison for one camera size and rate; `secs` per phase.
pub(super) fn run(
    set: &FrameSet,
    dir: &Path,
    secs: f64,
    feed: Feed,
    scheduling: Scheduling,
    viewers: usize,
    audio: bool,
) -> anyhow::Result<()> {
    let file = dir.join(format!("frames-{}x{}.mjpeg", set.width, set.height));
    std::fs::write(&file, set.jpegs.concat())?;
    let rig = format!("bench{}", std::process::id());
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let api = format!("127.0.0.1:{port}");
    let root = dir.join("process-recordings");
    let config = dir.join("process.yaml");
    let source = match feed {
        Feed::Command => format!("command\n    command: \"{}\"", pacer(&file, set.fps)),
        Feed::SyntheticPool => "synthetic".to_string(),
    };
    let scheduled = match scheduling {
        Scheduling::Defaults => "",
        Scheduling::Plain => "    cpu_core: none\n    realtime: false\n",
        Scheduling::PinnedRealtime => "    cpu_core: auto\n    realtime: true\n",
    };
    std::fs::write(
        &config,
        format!(
            "rig: {rig}\nbuffer:\n  duration: 5\n  max_bytes: 256MiB\naudio:\n  enabled: {audio}\n  \
             source: default\ncameras:\n  - name: cam\n    source: {source}\n    \
             resolution: {{width: {}, height: {}}}\n    fps: {}\n{scheduled}",
            set.width, set.height, set.fps
        ),
    )?;
    let log = dir.join("process.log");
    let child = Killed(
        Command::new(std::env::current_exe()?)
            .args(["run", "--config"])
            .arg(&config)
            .arg("--root")
            .arg(&root)
            .args(["--api", &api])
            .env(POOL_VARIABLE, "16")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()?,
    );
    let pid = child.0.id();
    let client = super::wait_for_api(&api, &log)?;

    // One inlet on the frame stream, pulling as LabRecorder does.
    let stop = Arc::new(AtomicBool::new(false));
    let pulled = Arc::new(AtomicU64::new(0));
    let inlet = {
        let (stop, pulled) = (stop.clone(), pulled.clone());
        let id = format!("hindsight_{rig}_cam_frames");
        std::thread::spawn(move || -> anyhow::Result<()> {
            let found = lsl::resolve_byprop("source_id", &id, 1, 10.0)
                .map_err(|e| anyhow::anyhow!("LSL: {e:?}"))?;
            let info = found.first().context("the frame stream was not found")?;
            let inlet = lsl::StreamInlet::new(info, 360, 0, true)
                .map_err(|e| anyhow::anyhow!("LSL: {e:?}"))?;
            while !stop.load(Ordering::Relaxed) {
                let r: Result<(Vec<f64>, f64), _> = inlet.pull_sample(0.2);
                if let Ok((v, ts)) = r {
                    if !v.is_empty() && ts > 0.0 {
                        pulled.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            Ok(())
        })
    };
    // The buffer full and the inlet receiving: a steady state.
    let t = Instant::now();
    while pulled.load(Ordering::Relaxed) == 0 || t.elapsed() < Duration::from_secs(6) {
        if t.elapsed() > Duration::from_secs(30) {
            bail!(
                "no frame sample reached the inlet within 30 s; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let microphone = match client.status().map_err(|e| anyhow::anyhow!(e))?.audio {
        Some(a) if a.capturing && !a.synthetic => Some(a.device),
        _ if audio => bail!(
            "--audio: the default audio input does not capture (`hindsight devices`; on a \
             machine without a sound card: eval \"$(bash scripts/audio-loopback.sh start)\"); \
             see {}",
            log.display()
        ),
        _ => None,
    };
    let (pulled0, pulling) = (pulled.load(Ordering::Relaxed), Instant::now());
    let buffering_rounds: Vec<Phase> = measure(&[pid], secs, ROUNDS)?
        .into_iter()
        .filter_map(|mut r| r.pop())
        .collect();
    let r = client.start(None).map_err(|e| anyhow::anyhow!(e))?;
    if !r.ok {
        bail!("start refused: {}", r.message);
    }
    // Live views of the web page, open while recording, read as fast as they come.
    let watching = Arc::new(AtomicBool::new(true));
    let parts = Arc::new(AtomicU64::new(0));
    let views: Vec<_> = (0..viewers)
        .map(|_| {
            let (watching, parts, api) = (watching.clone(), parts.clone(), api.clone());
            std::thread::spawn(move || {
                use std::io::Read;
                let url = format!("http://{api}/api/cameras/cam/live.mjpeg");
                let Ok(mut r) = reqwest::blocking::Client::new().get(url).send() else {
                    return;
                };
                let mut buf = vec![0u8; 1 << 16];
                while watching.load(Ordering::Relaxed) {
                    match r.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            let seen = buf[..n].windows(15).filter(|w| w == b"X-Frame-Number:");
                            parts.fetch_add(seen.count() as u64, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    // The pre-trigger buffer written: recording, alone on the machine.
    std::thread::sleep(Duration::from_secs(1));
    let parts0 = parts.load(Ordering::Relaxed);
    let recording_rounds: Vec<Phase> = measure(&[pid], secs, ROUNDS)?
        .into_iter()
        .filter_map(|mut r| r.pop())
        .collect();
    let parts = parts.load(Ordering::Relaxed) - parts0;
    // Then `ffmpeg -c copy` on the same frames at the same rate, and a thread that only
    // wakes at the frame rate (the floor), measured over the same windows as the
    // recorder: all three see the same moments of this shared machine. With neighbours
    // that wake too, every process's wakes are a little cheaper here (the CPUs idle
    // less), so these windows are compared with each other, not with the ones above.
    let copy = FfmpegCopy::start(&file, set.fps, dir)?;
    let waking = Arc::new(AtomicBool::new(true));
    let waker = bare_waker(set.fps, scheduling, waking.clone())?;
    std::thread::sleep(Duration::from_secs(2));
    let (mut beside_rounds, mut ffmpeg_rounds, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for round in measure(&[pid, copy.pid(), std::process::id()], secs, ROUNDS)? {
        let mut round = round.into_iter();
        beside_rounds.extend(round.next());
        ffmpeg_rounds.extend(round.next());
        let ours = round.next().map(|p| p.threads).unwrap_or_default();
        bare.push(ours.get(BARE_WAKER).map_or(0.0, |v| v.0));
    }
    waking.store(false, Ordering::Relaxed);
    let _ = waker.join();
    drop(copy);
    client.stop().map_err(|e| anyhow::anyhow!(e))?;
    watching.store(false, Ordering::Relaxed);
    for v in views {
        let _ = v.join();
    }
    let pulled = pulled.load(Ordering::Relaxed) - pulled0;
    let pulling = pulling.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let status = client.status().map_err(|e| anyhow::anyhow!(e))?;
    drop(child);
    match inlet.join() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => bail!("{e}"),
        Err(_) => bail!("the inlet thread panicked"),
    }

    let camera = match feed {
        Feed::Command => format!(
            "command camera: ffmpeg pacing pre-encoded JPEGs ({:.1} kB a frame)",
            set.mean_bytes() / 1000.0
        ),
        Feed::SyntheticPool => {
            "synthetic camera cycling 16 frames encoded at start-up (no encoding measured)"
                .to_string()
        }
    };
    let microphone = microphone.map_or(String::new(), |d| format!("; audio from `{d}`"));
    println!(
        "{}x{} @ {} fps, {camera}; LSL on, one inlet pulling the frame stream ({pulled} samples in {:.0} s){microphone}",
        set.width,
        set.height,
        set.fps,
        pulling
    );
    if viewers > 0 {
        println!(
            "  while recording, {viewers} web-page live views open: {:.1} frames/s each",
            parts as f64 / (secs * ROUNDS as f64) / viewers as f64
        );
    }
    let phases = [
        Phase::mean(&buffering_rounds),
        Phase::mean(&recording_rounds),
        Phase::mean(&beside_rounds),
    ];
    println!("  mean of {ROUNDS} windows of {secs:.0} s each:");
    let heads: String = ["buffering", "recording", "recording, beside*"]
        .iter()
        .map(|h| format!("{h:>21}  "))
        .collect();
    println!("  {:<22}{}", "thread", heads.trim_end());
    println!(
        "  {:<22}{}",
        "",
        format!("{:>11} {:>9}  ", "% core", "wakeups/s")
            .repeat(3)
            .trim_end()
    );
    let names: std::collections::BTreeSet<&String> =
        phases.iter().flat_map(|p| p.threads.keys()).collect();
    let mut totals = [(0.0, 0.0); 3];
    for name in names {
        let v = phases
            .each_ref()
            .map(|p| p.threads.get(name).copied().unwrap_or_default());
        for (t, v) in totals.iter_mut().zip(&v) {
            *t = (t.0 + v.0, t.1 + v.1);
        }
        if v.iter().all(|v| v.0 < 0.005 && v.1 < 0.5) {
            continue; // asleep throughout
        }
        println!("  {name:<22}{}", columns(&v).trim_end());
    }
    println!(
        "  {:<22}{}",
        "hindsight, all threads",
        columns(&totals).trim_end()
    );
    println!(
        "  resident memory: {:.1} MiB buffering, {:.1} MiB recording ({:.1} MiB of it on huge pages)",
        phases[0].rss_kib as f64 / 1024.0,
        phases[1].rss_kib.max(phases[2].rss_kib) as f64 / 1024.0,
        phases[1].huge_kib.max(phases[2].huge_kib) as f64 / 1024.0
    );
    let cam = status.cameras.first().context("no camera in the status")?;
    let d = &cam.drops;
    let causes: Vec<String> = [
        (d.source_gaps, "gaps in the source's numbers"),
        (d.corrupt, "corrupt"),
        (d.buffer_held_by_writer, "buffer held by a writer"),
        (d.too_large, "too large"),
        (d.writer_queue_full, "writer queue full"),
    ]
    .iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, why)| format!("{n} {why}"))
    .collect();
    println!(
        "  frames: {} captured, {} dropped{}",
        cam.frames_captured,
        cam.frames_dropped,
        if causes.is_empty() {
            String::new()
        } else {
            format!(" ({})", causes.join(", "))
        }
    );
    let ffmpeg = Phase::mean(&ffmpeg_rounds);
    println!(
        "  * beside `ffmpeg -c copy` writing the same JPEGs at the same rate ({:.0} wakeups/s, \
         {:.1} MiB resident) and a thread that only wakes {:.0} times a second",
        ffmpeg.total().1,
        ffmpeg.rss_kib as f64 / 1024.0,
        set.fps
    );
    let shares = |rounds: &[Phase]| -> Vec<f64> { rounds.iter().map(|r| r.total().0).collect() };
    let list = |v: &[f64]| {
        let each: Vec<String> = v.iter().map(|x| format!("{x:5.2}")).collect();
        format!("{}   median {:.2}", each.join(" "), median(v))
    };
    let (beside, f) = (shares(&beside_rounds), shares(&ffmpeg_rounds));
    println!("  % of a core, window by window:");
    println!(
        "    hindsight buffering           {}",
        list(&shares(&buffering_rounds))
    );
    println!(
        "    hindsight recording           {}",
        list(&shares(&recording_rounds))
    );
    println!("    hindsight recording, beside*  {}", list(&beside));
    println!("    ffmpeg -c copy, same windows  {}", list(&f));
    println!("    the bare thread, same windows {}", list(&bare));
    let ratios: Vec<f64> = beside
        .iter()
        .zip(&f)
        .map(|(r, f)| r / f.max(1e-9))
        .collect();
    println!("    hindsight / ffmpeg            {}", list(&ratios));
    Ok(())
}

/// One table row's columns: % of a core and wakeups/s, per phase.
fn columns(v: &[(f64, f64)]) -> String {
    v.iter()
        .map(|(cpu, wakeups)| format!("{cpu:>11.2} {wakeups:>9.0}  "))
        .collect()
}

/// The name of [`bare_waker`]'s thread.
const BARE_WAKER: &str = "bare-waker";

/// A thread that does nothing but wait for a byte that another thread writes into a pipe
/// `fps` times a second, until `waking` is cleared: what being woken at a camera's rate
/// costs on this machine, the floor under a capture thread (on this VM a large share of
/// it). It is scheduled as the recorder's capture thread is
/// ([`pinned_and_realtime`]), and woken as a capture thread is: by another
/// thread, here unpinned at normal priority, as the camera program's writes or a driver's
/// interrupts wake it. Only this thread is counted, not the one that wakes it.
fn bare_waker(
    fps: f64,
    scheduling: Scheduling,
    waking: Arc<AtomicBool>,
) -> anyhow::Result<std::thread::JoinHandle<()>> {
    use std::io::{Read, Write};
    let period = Duration::from_secs_f64(1.0 / fps);
    let (mut rx, mut tx) = std::io::pipe()?;
    std::thread::Builder::new()
        .name("bare-pacer".into())
        .spawn(move || {
            let mut next = Instant::now() + period;
            while waking.load(Ordering::Relaxed) {
                let left = next.saturating_duration_since(Instant::now());
                if !left.is_zero() {
                    std::thread::sleep(left);
                }
                next += period;
                if tx.write_all(&[1]).is_err() {
                    return;
                }
            }
            // Dropping `tx` ends the waker's reads.
        })?;
    Ok(std::thread::Builder::new()
        .name(BARE_WAKER.into())
        .spawn(move || {
            let (pinned, realtime) = pinned_and_realtime(scheduling, fps);
            if pinned {
                if let Some(&last) = core_affinity::get_core_ids().unwrap_or_default().last() {
                    core_affinity::set_for_current(last);
                }
            }
            if realtime {
                let _ = crate::capture::try_realtime();
            }
            let mut byte = [0u8; 1];
            while matches!(rx.read(&mut byte), Ok(1)) {}
        })?)
}

/// `pacer | ffmpeg -c copy out.mkv`, running until dropped: the comparison, measured in
/// the same windows as the recorder.
struct FfmpegCopy {
    copy: Killed,
    _pace: Killed,
}

impl FfmpegCopy {
    fn start(file: &Path, fps: f64, dir: &Path) -> anyhow::Result<FfmpegCopy> {
        let mut pace = Command::new("sh")
            .args(["-c", &format!("exec {}", pacer(file, fps))])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .context("ffmpeg")?;
        let input = pace.stdout.take().context("pacer output")?;
        let pace = Killed(pace);
        let copy = Killed(
            Command::new("ffmpeg")
                .args(["-nostdin", "-v", "error", "-framerate"])
                .arg(fps.to_string())
                .args(["-f", "mjpeg", "-i", "-", "-c", "copy", "-y"])
                .arg(dir.join("ffmpeg-copy.mkv"))
                .stdin(Stdio::from(input))
                .spawn()
                .context("ffmpeg")?,
        );
        Ok(FfmpegCopy { copy, _pace: pace })
    }

    fn pid(&self) -> u32 {
        self.copy.0.id()
    }
}
