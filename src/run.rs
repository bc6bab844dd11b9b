//! `hindsight run`: wires the pipeline together and runs it until SIGTERM.
//!
//! Everything that can fail on bad input (config, recordings root, sources, API port) is
//! checked before the first thread starts: a bad start leaves nothing half-running.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};

use crate::capture::{self, Camera, CameraSetup};
use crate::clock::{Clocks, RealClocks};
use crate::config::{Config, CpuCore, Toggle, REALTIME_AUTO_ABOVE_FPS};
use crate::control::{self, Control, ControlLinks, ControlSettings};
use crate::hub::StatusHub;
use crate::lsl;
use crate::ring::{PreTriggerRing, RingLimits};
use crate::shutdown::{Shutdown, Stage};
use crate::trigger::ntfy;
use crate::writer::{self, files};
use parking_lot::Mutex;

/// Bytes for the ring when the pre-trigger buffer is disabled: room for the newest frames.
const NO_BUFFER_BYTES: usize = 16 << 20;
/// How long the cameras wait for the microphone's first opening: a driver that hangs in
/// it does not keep them from recording.
const AUDIO_OPEN_WAIT: Duration = Duration::from_secs(2);

/// How `hindsight run` was started, beyond the config.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// `--no-dashboard`.
    pub no_dashboard: bool,
}

/// Whether to show the in-process dashboard.
fn wants_dashboard(config: &Config, options: RunOptions) -> bool {
    use std::io::IsTerminal;
    if options.no_dashboard {
        return false;
    }
    match config.dashboard.enabled {
        crate::config::Toggle::On => true,
        crate::config::Toggle::Off => false,
        crate::config::Toggle::Auto => {
            std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
        }
    }
}

pub fn run(config: Config, origin: &str, options: RunOptions) -> anyhow::Result<()> {
    tracing::info!(
        "hindsight {} starting with {origin}",
        env!("CARGO_PKG_VERSION")
    );
    let root = config.storage.root.clone();
    files::check_writable(&root).map_err(|e| anyhow!("{e} (storage.root)"))?;
    // One recorder per rig and root, before anything is opened or looked at.
    let rig = config.rig_name();
    let _rig_lock = crate::numbers::RigLock::take(&root, &rig)?;
    // The disk the root is on now: a recording never goes anywhere else.
    let root_fs = crate::storage::RootFs::of(&root)
        .map_err(|e| anyhow!("cannot read recordings root {}: {e}", root.display()))?;
    tracing::info!(
        "recordings root {} on the filesystem mounted at {}",
        root.display(),
        root_fs.top().display()
    );
    match (
        config.storage.max_file_size.bytes(),
        crate::storage::file_size_limit(&root),
    ) {
        (set, Some((limit, what))) if set.is_none_or(|s| limit < s) => tracing::info!(
            "{what} allows files of at most {}: a camera's video and the WAV go on in a next file (…part002) before they get there",
            crate::storage::size(limit)
        ),
        (Some(set), _) => tracing::info!(
            "storage.max_file_size {}: a camera's video and the WAV go on in a next file (…part002) before they grow past that",
            crate::storage::size(set)
        ),
        (None, _) => {}
    }
    let removed = crate::repair::remove_never_written(&root);
    if !removed.is_empty() {
        tracing::warn!(
            "removed {} files that a crash left before their recording's first frame: {} (claimed when it started, they held no frame, sample or event)",
            removed.len(),
            removed
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let unfinished: Vec<String> = crate::repair::find_unfinished(&root)
        .into_iter()
        .map(|p| p.display().to_string())
        .collect();
    for f in &unfinished {
        tracing::warn!(
            "unfinished recording from an earlier run: {f} (finish it with `hindsight repair {f}`)"
        );
    }

    let clocks: Arc<dyn Clocks> = Arc::new(RealClocks);
    // Threads from here on, all stopping through one handle in one order
    // (`crate::shutdown`).
    let shutdown = Shutdown::new();
    // One queue to the LSL thread, made first: the audio and capture threads send to it
    // (what they send before its outlets exist waits in it).
    let lsl_channel = config
        .lsl
        .enabled
        .then(|| crossbeam_channel::bounded(lsl::QUEUE_CAPACITY));
    // Notices for the ntfy reply topic (control's, the audio thread's, the disk thread's),
    // published with the replies to commands in the order they happened.
    let (notices_tx, notices_rx) = tokio::sync::mpsc::unbounded_channel();
    let ntfy_on = config.trigger.ntfy.enabled;
    // The microphone is opened before the cameras, so that its samples are there from
    // the first frame on: a first recording whose buffer reaches back to the start gets
    // a WAV as long as its video (opened after, its WAV began up to 0.15 s late).
    let audio_status = Arc::new(Mutex::new(crate::audio::AudioStatus::default()));
    let audio_source = config.audio.enabled.then(|| audio_source(&config));
    let audio = match &audio_source {
        Some(source) => Some(crate::audio::spawn(
            crate::audio::AudioSettings {
                source: source.clone(),
                rate: config.audio.sample_rate,
                channels: config.audio.channels,
                format: config.audio.sample_format,
                pre_trigger: config.buffer.pre_trigger(),
                fsync_interval: config
                    .storage
                    .fsync_interval
                    .map(|s| Duration::from_secs_f64(s.0)),
                max_file_size: config.storage.max_file_size.bytes(),
                notices: ntfy_on.then(|| notices_tx.clone()),
            },
            clocks.clone(),
            audio_status.clone(),
            lsl_channel.as_ref().map(|(tx, _)| tx.clone()),
            shutdown.clone(),
        )?),
        None => None,
    };
    if let Some(a) = &audio {
        if !a.wait_first_open(AUDIO_OPEN_WAIT) {
            tracing::warn!(
                "audio: the input {} is still opening after {} s; the cameras start without waiting for it",
                audio_source.as_deref().unwrap_or_default(),
                AUDIO_OPEN_WAIT.as_secs()
            );
        }
    }
    // Camera programs and network cameras, slow to give their first frame (up to 15 s),
    // are opened side by side, so that their waits do not add up; devices (V4L2,
    // libcamera, which serves them one at a time anyway) one after the other in the
    // config's order, so that of two cameras naming one device it is always the second
    // that cannot have it.
    let opened: Vec<_> = std::thread::scope(|scope| {
        use crate::config::SourceKind;
        let streams = |c: &&crate::config::CameraConfig| {
            matches!(c.source, SourceKind::Command | SourceKind::HttpMjpeg)
        };
        let open = |cam| crate::source::open(cam, clocks.clone());
        let side: Vec<_> = config
            .cameras
            .iter()
            .filter(streams)
            .map(|cam| scope.spawn(move || open(cam)))
            .collect();
        let mut devices = config
            .cameras
            .iter()
            .filter(|c| !streams(c))
            .map(open)
            .collect::<Vec<_>>()
            .into_iter();
        let mut side = side
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        config
            .cameras
            .iter()
            .map(|c| {
                if streams(&c) {
                    side.next()
                } else {
                    devices.next()
                }
                .expect("one result per camera")
            })
            .collect::<Vec<_>>()
    });
    let mut sources = Vec::new();
    for (cam, opened) in config.cameras.iter().zip(opened) {
        // A camera that cannot be opened now (unplugged, its program or URL failing)
        // does not keep the others and the audio from recording (SPEC §9): it starts
        // lost, said at once, and is opened with backoff as any lost camera. A config
        // that cannot work (a key missing, a source this build lacks) stops the start.
        let s = match opened {
            Ok(s) => s,
            Err(crate::source::OpenError::Failed { cause, .. }) => {
                Box::new(crate::source::NotOpened::new(cam, &cause))
            }
            Err(e) => return Err(e.into()),
        };
        if s.info().kind == crate::config::SourceKind::Synthetic {
            tracing::warn!(
                "camera {}: SYNTHETIC test pattern {}x{} @ {} fps, not a real camera",
                cam.name,
                cam.resolution.width.0,
                cam.resolution.height.0,
                cam.fps.0
            );
        }
        sources.push(s);
    }
    let listener = crate::api::bind(config.api.listen)?;
    let token = match &config.api.token_env {
        Some(var) => {
            let t = std::env::var(var).with_context(|| {
                format!("api.token_env names {var}, but that environment variable is not set")
            })?;
            if t.trim().is_empty() {
                return Err(anyhow!(
                    "api.token_env names {var}, which is empty: every request would be refused; \
                     put the token in it"
                ));
            }
            Some(t.trim().to_string())
        }
        None => None,
    };

    let ntfy_auth = if config.trigger.ntfy.enabled {
        ntfy::resolve_auth(&config.trigger.ntfy)?
    } else {
        None
    };

    // Frame and recording numbers continue from the last run (never repeat).
    let named_rates: Vec<(String, f64)> = config
        .cameras
        .iter()
        .zip(&sources)
        .map(|(c, s)| (c.name.0.clone(), s.info().fps))
        .collect();
    let (mut numbers, starts) = crate::numbers::Numbers::open(&root, &rig, &named_rates)
        .map_err(|e| anyhow!("{e} (frame and recording numbers)"))?;
    tracing::info!(
        "numbering continues at recording {} and frame {}",
        starts.recording,
        starts
            .frames
            .iter()
            .map(|(c, n)| format!("{n} ({c})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // From here on the file is written off the control thread, which answers commands.
    numbers
        .write_in_background()
        .map_err(|e| anyhow!("cannot start the numbers thread: {e}"))?;
    let numbers = Arc::new(Mutex::new(numbers));
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let pre_trigger = config.buffer.pre_trigger();
    let cores: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    // Capture threads report lost and recovered cameras to the control thread, and ask
    // the buffer grower for memory.
    let (camera_tx, camera_rx) = crossbeam_channel::unbounded();
    let (grow_tx, grow_rx) = crossbeam_channel::bounded(config.cameras.len());
    let mut cameras = Vec::new();
    for (i, (cfg, src)) in config.cameras.iter().zip(&sources).enumerate() {
        let max_bytes = if pre_trigger.is_zero() {
            NO_BUFFER_BYTES
        } else {
            // Fits: the configuration refuses more than a 32-bit build can hold.
            usize::try_from(config.buffer.max_bytes.0).unwrap_or(usize::MAX)
        };
        let limits = RingLimits::for_rate(pre_trigger, src.info().fps, max_bytes);
        let ring = PreTriggerRing::new(limits);
        tracing::info!(
            camera = %cfg.name,
            "pre-trigger buffer: {:.1} s, {} MiB and {} frame slots allocated now, growing with the need up to {} MiB",
            pre_trigger.as_secs_f64(),
            ring.allocated_bytes() >> 20,
            limits.max_frames,
            ring.ceiling_bytes() >> 20
        );
        let core = match cfg.cpu_core {
            CpuCore::Core(n) => Some(n),
            CpuCore::Unpinned => None,
            CpuCore::Auto if cores.is_empty() => None,
            // The last core first: core 0 takes most interrupts.
            CpuCore::Auto => Some(cores[cores.len() - 1 - i % cores.len()]),
        };
        let fps = src.info().fps;
        let realtime = cfg.wants_realtime(fps);
        if cfg.realtime == Toggle::Auto {
            tracing::info!(
                camera = %cfg.name,
                "realtime: auto: {} at {fps} fps (real-time above {REALTIME_AUTO_ABOVE_FPS} fps)",
                if realtime { "real-time priority" } else { "normal priority" }
            );
        }
        let setup = CameraSetup {
            index: i,
            name: cfg.name.0.clone(),
            info: src.info().clone(),
            source_id: format!("hindsight_{rig}_{}", cfg.name),
            cpu_core: core,
            realtime,
            lsl: lsl_channel.as_ref().map(|(tx, _)| tx.clone()),
            events: Some(camera_tx.clone()),
            grow: Some(grow_tx.clone()),
            first_frame: starts.frames.get(&cfg.name.0).copied().unwrap_or(0),
        };
        cameras.push(Arc::new(Camera::new(setup, ring)));
    }
    // Not joined: it waits for requests until the process ends.
    capture::spawn_buffer_grower(cameras.clone(), grow_rx)?;
    let lsl_status = Arc::new(Mutex::new(lsl::LslStatus::default()));
    let ntfy_status = Arc::new(Mutex::new(ntfy::NtfyStatus::default()));
    let disk_status = Arc::new(Mutex::new(crate::status::DiskStatus::default()));
    let mut hub =
        StatusHub::new(rig.clone(), cameras.clone(), unfinished).with_disk(disk_status.clone());
    if config.audio.enabled {
        hub = hub.with_audio(audio_status.clone());
    }
    if config.lsl.enabled || config.trigger.lsl_markers.enabled {
        hub = hub.with_lsl(lsl_status.clone());
    }
    if config.trigger.ntfy.enabled {
        hub = hub.with_ntfy(ntfy_status.clone());
    }
    let hub = Arc::new(hub);

    // LSL first of the rest: a refusal to create outlets stops the start.
    let lsl_thread = match lsl_channel {
        Some((tx, rx)) => {
            let streams = cameras
                .iter()
                .map(|c| lsl::CameraStreams {
                    camera: c.setup.name.clone(),
                    info: c.setup.info.clone(),
                    name: lsl::stream_name(&config.lsl.name, &c.setup.name, cameras.len()),
                    source_id: c.setup.source_id.clone(),
                })
                .collect();
            let settings = lsl::LslSettings {
                frames_type: config.lsl.frames_type.clone(),
                status_type: config.lsl.status_type.clone(),
                events_type: config.lsl.events_type.clone(),
                chunk_size: config.lsl.chunk_size.min(i32::MAX as u32) as i32,
                max_buffered: config.lsl.max_buffered.min(i32::MAX as u32) as i32,
                rig: rig.clone(),
                host: host.clone(),
                audio: audio_source.as_ref().map(|src| lsl::AudioStreams {
                    name: format!("{}_Audio", config.lsl.name),
                    source_id: format!("hindsight_{rig}_audio"),
                    rate: config.audio.sample_rate,
                    channels: config.audio.channels,
                    device: src.clone(),
                }),
            };
            let join = lsl::spawn(
                settings,
                streams,
                hub.clone(),
                lsl_status.clone(),
                rx,
                shutdown.clone(),
            )?;
            Some((tx, join))
        }
        None => None,
    };
    let (event_tx, event_rx) = crossbeam_channel::unbounded();
    let mut writers = Vec::new();
    for cam in &cameras {
        let slots = cam.state.lock().ring.limits().max_frames;
        writers.push(writer::spawn_writer(
            cam.writer_camera(),
            event_tx.clone(),
            2 * slots,
            clocks.clone(),
        ));
    }
    drop(event_tx);
    let mut captures = Vec::new();
    for ((cam, src), cfg) in cameras.iter().zip(sources).zip(&config.cameras) {
        let (cam, stop) = (cam.clone(), shutdown.clone());
        let (cfg, clocks) = (cfg.clone(), clocks.clone());
        let reopen: crate::source::Reopen =
            Box::new(move || crate::source::open(&cfg, clocks.clone()));
        captures.push(
            std::thread::Builder::new()
                .name(format!("capture-{}", cam.setup.name))
                .spawn(move || capture::run_capture(src, Some(reopen), cam, stop))?,
        );
    }
    let (bus, inbox) = crate::bus::command_bus_for(shutdown.clone());
    let settings = ControlSettings {
        root,
        prefix: config.storage.prefix.0.clone(),
        fsync_interval: config
            .storage
            .fsync_interval
            .map(|s| Duration::from_secs_f64(s.0)),
        rig: rig.clone(),
        host,
        pre_trigger,
        audio_track: (config.audio.enabled && config.audio.mux_into_video).then_some(
            crate::writer::AudioTrackSpec {
                rate: config.audio.sample_rate,
                channels: config.audio.channels,
            },
        ),
        min_free: config.storage.min_free.map(|b| b.0),
        max_file_size: config.storage.max_file_size,
        root_fs: Some(root_fs.clone()),
    };
    let notices_for_disk = notices_tx.clone();
    let control = Control::new(
        settings,
        cameras.clone(),
        writers.iter().map(|w| w.queue()).collect(),
        hub.clone(),
        clocks.clone(),
        ControlLinks {
            lsl: lsl_thread.as_ref().map(|(tx, _)| tx.clone()),
            audio: audio.as_ref().map(|a| a.tx.clone()),
            notices: ntfy_on.then_some(notices_tx),
            numbers: Some((numbers.clone(), starts.recording)),
        },
    );
    let control = std::thread::Builder::new().name("control".into()).spawn({
        let shutdown = shutdown.clone();
        move || {
            let _span = tracing::info_span!("control").entered();
            control.run(inbox, event_rx, camera_rx);
            // The files are finished: everything that feeds the pipeline ends.
            shutdown.advance(Stage::Stopping);
        }
    })?;
    let markers = if config.trigger.lsl_markers.enabled {
        Some(lsl::markers::spawn(
            config.trigger.lsl_markers.clone(),
            bus.clone(),
            lsl_status,
            shutdown.clone(),
        )?)
    } else {
        None
    };
    let ntfy_thread = if ntfy_on {
        let n = &config.trigger.ntfy;
        let settings = ntfy::NtfySettings {
            server: n.server.trim_end_matches('/').to_string(),
            topic: n.topic.clone(),
            auth: ntfy_auth,
            reply_topic: n.reply_topic.clone(),
            reply_unknown: n.reply_unknown,
            rig,
            keepalive: Duration::from_secs_f64(n.keepalive_interval.0),
            backoff_initial: Duration::from_secs_f64(n.reconnect_initial.0),
            backoff_max: Duration::from_secs_f64(n.reconnect_max.0),
        };
        Some(ntfy::spawn(
            settings,
            bus.clone(),
            ntfy_status,
            notices_rx,
            lsl_thread.as_ref().map(|(tx, _)| tx.clone()),
            shutdown.clone(),
        )?)
    } else {
        None
    };
    let disk = crate::disk::spawn(
        crate::disk::DiskSettings {
            root: config.storage.root.clone(),
            min_free: config.storage.min_free.map(|b| b.0),
            retention: config.storage.retention.clone(),
            root_fs: root_fs.clone(),
            notices: ntfy_on.then_some(notices_for_disk),
            power: crate::power::Sensors::find(&crate::power::sysfs()),
        },
        cameras.clone(),
        hub.clone(),
        bus.clone(),
        disk_status,
        clocks.clone(),
        shutdown.clone(),
    )?;
    let systemd = crate::service::spawn(
        crate::service::Service::from_env(),
        cameras.clone(),
        hub.clone(),
        shutdown.clone(),
    )?;
    let api_limits = crate::api::ApiLimits::for_process(cameras.len());
    crate::api::spawn(
        listener,
        bus.clone(),
        hub.clone(),
        token,
        config.storage.root.clone(),
        api_limits,
    )?;
    tracing::info!("control API on http://{}/api/status", config.api.listen);
    spawn_signal_thread(bus.clone())?;

    if wants_dashboard(&config, options) {
        crate::logging::hold();
        let done = shutdown.clone();
        let mut link = crate::dashboard::InProcess {
            hub: hub.clone(),
            bus: bus.clone(),
            finished: Box::new(move || done.stopping()),
        };
        let quit = crate::dashboard::run(&mut link, None);
        crate::logging::release();
        match quit {
            Ok(true) => {
                tracing::info!("dashboard: Q: stopping gracefully");
                crate::service::stopping();
                bus.shutdown();
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(
                "cannot show the dashboard on this terminal ({e}); logging here instead"
            ),
        }
    }

    // The shutdown's order (`crate::shutdown`): the control thread has finished the files
    // and moved it to Stopping; capture, triggers, disk and service end now.
    let _ = control.join();
    drop(bus);
    shutdown.advance(Stage::Stopping);
    for c in captures {
        let _ = c.join();
    }
    // Every number is used that will be: keep the exact next ones (nothing skipped).
    {
        let next_frames = control::next_frames(&cameras);
        let next_recording = hub.next_recording().unwrap_or(starts.recording);
        if let Err(e) = numbers.lock().finish(next_recording, &next_frames) {
            tracing::error!("{e}");
        }
    }
    for w in writers {
        drop(w.tx);
        let _ = w.join.join();
    }
    if let Some(m) = markers {
        let _ = m.join();
    }
    if let Some(n) = ntfy_thread {
        let _ = n.join();
    }
    let _ = disk.join();
    let _ = systemd.join();
    // Video is finished; the WAV files end with what has arrived.
    shutdown.advance(Stage::Draining);
    if let Some(a) = audio {
        let _ = a.join.join();
    }
    // Everything that sends to LSL has ended: it pushes what it still holds and closes its
    // outlets (the status hub, still shared with the API, keeps senders alive: the stage,
    // not a closed queue, tells it).
    shutdown.advance(Stage::Closing);
    if let Some((_, join)) = lsl_thread {
        let _ = join.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// First SIGTERM/SIGINT: finish files and exit. Second: exit at once (files stay
/// playable up to their last cluster; `hindsight repair` finishes them).
///
/// SIGHUP (the terminal `hindsight run` runs in closed: an SSH session that dropped, a
/// window closed) stops it as the first SIGTERM does, and never exits at once: the kernel
/// and the shell each send one. Its default action killed the process mid-recording,
/// leaving the files unfinished and no line saying why.
fn spawn_signal_thread(bus: crate::bus::CommandBus) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let _span = tracing::info_span!("signals").entered();
            let mut stopping = false;
            for sig in signals.forever() {
                if !stopping {
                    stopping = true;
                    if sig == SIGHUP {
                        tracing::warn!(
                            "signal {sig} (SIGHUP: the terminal closed): stopping gracefully; \
                             to record on without a terminal, run hindsight as the service \
                             (or in tmux)"
                        );
                    } else {
                        tracing::info!(
                            "signal {sig}: stopping gracefully (send it again to exit at once)"
                        );
                    }
                    crate::service::stopping();
                    bus.shutdown();
                } else if sig != SIGHUP {
                    // Never a panic here, even if stderr is gone (a closed pipe).
                    let _ = writeln!(std::io::stderr(), "second signal {sig}: exiting now");
                    std::process::exit(130);
                }
            }
        })?;
    Ok(())
}

/// The audio source to open: `default` becomes the synthetic tone, loudly, on a machine
/// without an input device.
fn audio_source(config: &Config) -> String {
    let a = &config.audio;
    if a.source == "default" && !crate::audio::input::default_device_available() {
        let why = crate::audio::input::why_no_default_device()
            .map(|g| format!(" (the audio system says: {g})"))
            .unwrap_or_default();
        tracing::warn!(
            "audio: NO INPUT DEVICE on this machine{why}: recording a SYNTHETIC 440 Hz TONE instead \
             (set audio.source, or audio.enabled: false)"
        );
        return "synthetic".into();
    }
    if a.source == "synthetic" {
        tracing::warn!("audio: SYNTHETIC 440 Hz tone, not a microphone");
    }
    a.source.clone()
}
