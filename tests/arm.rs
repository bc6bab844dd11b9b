//! The Raspberry Pis' builds, run: the aarch64 (64-bit Raspberry Pi OS) and armv7 (32-bit)
//! binaries that `scripts/cross-check.sh` builds, run on this x86_64 machine under
//! qemu-user with the liblsl each is linked with on a Pi (`scripts/get-liblsl.sh`), and
//! used as a lab uses a rig: a recording, then `start N` in the same process, an LSL inlet
//! (this machine's liblsl) on its frame stream all along, then a new process killed a
//! moment after its start and its files repaired by the ARM build itself. The files are
//! judged here by ffprobe, ffmpeg (the frame numbers in the pixels), mkvmerge and sox.
//!
//! Emulation is not a Pi: how fast it runs says nothing of a Pi's speed, so the camera is a
//! small synthetic one at 20 fps. What is tested is that the ARM code does what the x86
//! code does: 32-bit `usize` on armv7, an unsigned C `char` and another liblsl on both.
//!
//! Ignored in a plain `cargo test` (the ARM builds are made by `scripts/cross-check.sh`,
//! which `scripts/test.sh` runs after the suite, and then this test). Where an ARM build or
//! qemu-user is missing it says NOT RUN (as the cross check does) and passes.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::virtual_camera::*;
use common::*;
use serde_json::{json, Value};

const WIDTH: usize = 320;
const HEIGHT: usize = 240;

/// An ARM build of hindsight and how to run it here.
struct ArmBuild {
    arch: &'static str,
    /// `qemu-aarch64 -E LD_LIBRARY_PATH=<its liblsl> <binary>`.
    program: Vec<OsString>,
    /// The liblsl version its streams must report (`1.17`).
    liblsl: String,
    /// Built with the libcamera feature, linked with the test libcamera built for its
    /// architecture (the cross check does it for aarch64).
    libcamera: bool,
}

impl ArmBuild {
    /// The build `scripts/cross-check.sh` made for `arch`, or `None` (NOT RUN, said) when
    /// it or qemu-user is missing.
    fn find(arch: &'static str) -> Option<ArmBuild> {
        let (triple, qemu) = match arch {
            "aarch64" => ("aarch64-unknown-linux-gnu", "qemu-aarch64"),
            "armv7" => ("armv7-unknown-linux-gnueabihf", "qemu-arm"),
            _ => unreachable!(),
        };
        // scripts/cross-check.sh's target folder.
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
        let bin = cache
            .join("hindsight/cross-target")
            .join(triple)
            .join("debug/hindsight");
        let not_run = |why: String| {
            eprintln!("##########################################################################");
            eprintln!("# tests/arm.rs {arch}: NOT RUN: {why}");
            eprintln!("##########################################################################");
            None
        };
        if !bin.exists() {
            return not_run(format!(
                "no ARM build at {} (scripts/cross-check.sh makes it)",
                bin.display()
            ));
        }
        if Command::new(qemu).arg("--version").output().is_err() {
            return not_run(format!(
                "no {qemu} (qemu-user: scripts/install-deps.sh --cross)"
            ));
        }
        // The liblsl it was linked with: the one scripts/get-liblsl.sh gets for it (cached
        // by the cross check), else lsl-sys's 1.13, linked in.
        let out = Command::new("bash")
            .arg("scripts/get-liblsl.sh")
            .env("HINDSIGHT_LIBLSL_ARCH", arch)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let prefix = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .map(PathBuf::from)
            .filter(|p| out.status.success() && p.join("lib/liblsl.so.2").exists());
        let mut libs: Vec<PathBuf> = Vec::new();
        let liblsl = match &prefix {
            Some(p) => {
                libs.push(p.join("lib"));
                // Its folder is named after its version: 1.17.7-armv7.
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                let v: Vec<&str> = name.split(['.', '-']).collect();
                format!("{}.{}", v[0], v[1])
            }
            None => "1.13".to_string(),
        };
        // The libcamera it is linked with, which the cross check names beside it.
        let libcamera = std::fs::read_to_string(bin.with_file_name("libcamera-lib"))
            .ok()
            .map(|l| PathBuf::from(l.trim()));
        libs.extend(libcamera.clone());
        let mut program: Vec<OsString> = vec![qemu.into()];
        if !libs.is_empty() {
            let joined = std::env::join_paths(&libs).unwrap();
            let mut env = OsString::from("LD_LIBRARY_PATH=");
            env.push(joined);
            program.extend(["-E".into(), env]);
        }
        program.push(bin.into());
        Some(ArmBuild {
            arch,
            program,
            liblsl,
            libcamera: libcamera.is_some(),
        })
    }

    /// Runs the ARM build with `args` (not `run`), which must succeed; what it printed.
    fn run_ok(&self, args: &[&std::ffi::OsStr]) -> String {
        let out = Command::new(&self.program[0])
            .args(&self.program[1..])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} {args:?}: {}",
            self.arch,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn config(name: &str) -> String {
    format!(
        "rig: armtest\nbuffer:\n  duration: 3\n  max_bytes: 64MiB\ncameras:\n  - name: cam0\n    \
         source: synthetic\n    resolution: {{width: {WIDTH}, height: {HEIGHT}}}\n    fps: 20\n\
         audio:\n  source: synthetic\nlsl:\n  name: {name}\n"
    )
}

/// The one recording `id` of the root: its MKV (one camera).
fn mkv_of(files: &[PathBuf], status_files: &[Value], id: u64) -> PathBuf {
    let path = status_files
        .iter()
        .find(|f| f["recording_id"] == id)
        .unwrap_or_else(|| panic!("recording {id} not in {status_files:?}"))["path"]
        .as_str()
        .unwrap()
        .to_string();
    let p = PathBuf::from(path);
    assert!(files.contains(&p), "{} not among {files:?}", p.display());
    p
}

/// Which recording of its process one is.
#[derive(Clone, Copy, PartialEq)]
enum Take {
    /// The first, its buffer reaching back to the process's start.
    First,
    /// A later one, its buffer within the process's life.
    Later,
    /// The first, killed (kill -9) while recording, then repaired.
    Killed,
}

/// What a lab checks of one recording: every frame in the file as ffmpeg and mkvmerge read
/// it, each the frame its pixels say, in its sidecar, none lost; the WAV beside it as long
/// as the video. Returns the frames' rows and how far the recorder's frame numbers are
/// from the camera's (0 in the first process).
fn judge(mkv: &Path, cam: &Value, take: Take) -> (Vec<SidecarRow>, u64) {
    let rows = read_sidecar(mkv);
    assert!(rows.len() > 20, "{}: {} frames", mkv.display(), rows.len());
    assert_eq!(
        ffprobe_packet_count(mkv),
        rows.len() as u64,
        "{}",
        mkv.display()
    );
    mkvmerge_clean(mkv);
    let (w, h, codec) = ffprobe_video(mkv);
    assert_eq!(
        (w, h, codec.as_str()),
        (WIDTH as u64, HEIGHT as u64, "mjpeg")
    );
    // The synthetic camera numbers its frames from 0 in each process, the recorder's frame
    // numbers go on from the last process's: the same frames, one offset apart.
    let decoded = decoded_frame_numbers(mkv, WIDTH, HEIGHT);
    let offset = rows[0].frame_number - decoded[0].expect("a frame number in the pixels");
    let numbers: Vec<u64> = rows.iter().map(|r| r.frame_number).collect();
    assert_eq!(
        decoded,
        numbers
            .iter()
            .map(|&n| Some(n - offset))
            .collect::<Vec<_>>(),
        "{}: the frames' pixels against the sidecar",
        mkv.display()
    );
    assert_nothing_lost(&rows, cam);
    // <day>/audio/<stem>.wav beside <day>/video/<stem>_cam0.mkv.
    let stem = mkv
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .replace("_cam0", "");
    let wav = mkv
        .parent()
        .unwrap()
        .with_file_name("audio")
        .join(format!("{stem}.wav"));
    // The WAV starts at the first frame, to a sample, as its events sidecar says: in a
    // recording whose buffer reaches back to its process's start too, as the audio
    // input is opened before the cameras (after them, it began up to 155 ms late).
    let (wav_start, row) = event_row(mkv, "audio_start");
    let late = wav_start - rows[0].lsl_time;
    eprintln!(
        "{}: its WAV starts {:.1} ms after its first frame",
        mkv.display(),
        late * 1e3
    );
    let sample = 1.0 / 48000.0 + 1e-9;
    assert!(
        (-sample..=sample).contains(&late),
        "{}: the WAV starts {late:.6} s after the first frame: {row}",
        mkv.display()
    );
    // From there it lasts as long as the video. A WAV is written a few times a second:
    // one cut by kill -9 keeps what was written, up to half a second behind its video (as
    // on x86: tests/audio.rs).
    let span = rows.last().unwrap().lsl_time + 0.05 - wav_start;
    let secs = sox_seconds(&wav);
    let behind = if take == Take::Killed { 0.5 } else { 0.15 };
    assert!(
        secs - span < 0.15 && span - secs < behind,
        "{}: {secs} s of audio for {span} s of video from the WAV's start ({late:.3} s \
         after the first frame)",
        wav.display()
    );
    (rows, offset)
}

/// Once `buffered` seconds are buffered: a recording of 2 s, then `start 2` in the same
/// process, which stops by itself.
fn record_then_start_2(h: &mut Hindsight, buffered: f64) {
    h.wait_buffered(buffered);
    h.record_for(2.0);
    let (code, r) = h.post("start", json!({"seconds": 2}));
    assert_eq!(code, 200, "{r}");
    h.wait_until(
        "start 2 has stopped by itself",
        Duration::from_secs(60),
        |h| {
            let s = h.status();
            s["state"] == "buffering"
                && s["current_files"].as_array().unwrap().is_empty()
                && s["last_files"][0]["recording_id"] == 2
        },
    );
}

fn a_pi_build_records_streams_and_repairs(arch: &'static str) {
    lsl_session();
    let _g = serial();
    let Some(arm) = ArmBuild::find(arch) else {
        return;
    };
    require_tool("ffprobe");
    require_tool("mkvmerge");
    require_tool("sox");
    let name = format!("Arm_{arch}_{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let mut h = Hindsight::start_program(dir, root.clone(), &config(&name), &arm.program, |_| {});

    // Its frame stream, read by this machine's liblsl, says what it is, and which liblsl
    // the ARM build runs with (its own, not this machine's).
    let (frames, mut info) = lsl_connect(&name, false);
    assert_eq!(info.source_id(), "hindsight_armtest_cam0_frames");
    let desc = info.desc();
    assert_eq!(
        desc.child("camera").child_value_named("width"),
        WIDTH.to_string()
    );
    assert_eq!(
        desc.child("acquisition").child_value_named("liblsl"),
        arm.liblsl,
        "{arch}"
    );

    record_then_start_2(&mut h, 2.9);
    std::thread::sleep(Duration::from_millis(500));
    let samples = lsl_pull_numbers(&frames);
    drop(frames);
    let status = h.status();
    let cam = status["cameras"][0].clone();
    assert!(h.terminate().success(), "{arch}: {}", h.log_text());
    let log = h.log_text();
    assert!(!log.contains(" ERROR "), "{arch}: {log}");

    let files = mkv_files(&root);
    assert_eq!(files.len(), 2, "{files:?}");
    // last_files holds the latest recording; the first is the other file.
    let second = mkv_of(&files, status["last_files"].as_array().unwrap(), 2);
    let first = files.iter().find(|f| **f != second).unwrap().clone();
    let (one, offset) = judge(&first, &cam, Take::First);
    assert_eq!(
        offset, 0,
        "{arch}: the first process's frame numbers are its camera's"
    );
    let (two, offset) = judge(&second, &cam, Take::Later);
    assert_eq!(offset, 0, "{arch}");
    // The second's buffer reaches back into the first: a frame in both files is one frame,
    // with one time.
    assert!(two.last().unwrap().frame_number > one.last().unwrap().frame_number);
    let in_one: std::collections::HashMap<u64, f64> =
        one.iter().map(|r| (r.frame_number, r.lsl_time)).collect();
    for r in &two {
        if let Some(t) = in_one.get(&r.frame_number) {
            assert_eq!(
                *t, r.lsl_time,
                "{arch}: frame {} in both files",
                r.frame_number
            );
        }
    }
    // start 2: the 3 s buffer and 2 s live, to a frame interval and the camera's jitter.
    let span = two.last().unwrap().lsl_time - two[0].lsl_time;
    assert!((span - 5.0).abs() < 0.3, "{arch}: start 2 spans {span} s");

    // Every frame of both files on the LSL stream at its sidecar time, exactly.
    let by_number: std::collections::HashMap<u64, f64> =
        samples.iter().map(|(v, ts)| (v[0] as u64, *ts)).collect();
    for row in one.iter().chain(&two) {
        let ts = by_number
            .get(&row.frame_number)
            .unwrap_or_else(|| panic!("{arch}: frame {} not on the LSL stream", row.frame_number));
        assert_eq!(*ts, row.lsl_time, "{arch}: frame {}", row.frame_number);
    }

    // A new process, killed a moment after its start: its files are repaired by the ARM
    // build, and its frame numbers go on from the last process's.
    let dir = tempfile::tempdir().unwrap();
    let mut h = Hindsight::start_program(dir, root.clone(), &config(&name), &arm.program, |_| {});
    h.wait_buffered(2.0);
    let (code, r) = h.post("start", json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(Duration::from_millis(1500));
    let cam = h.status()["cameras"][0].clone();
    h.kill9();
    let crashed: Vec<PathBuf> = mkv_files(&root)
        .into_iter()
        .filter(|f| !files.contains(f))
        .collect();
    assert_eq!(crashed.len(), 1, "{crashed:?}");
    let said = arm.run_ok(&["repair".as_ref(), root.as_os_str()]);
    eprintln!("{arch}: hindsight repair {}: {said}", root.display());
    let (three, offset) = judge(&crashed[0], &cam, Take::Killed);
    assert!(three[0].frame_number > two.last().unwrap().frame_number);
    assert!(
        offset > two.last().unwrap().frame_number,
        "{arch}: {offset}"
    );
    // Killed 1.5 s after a start with 2 s buffered: both are in the repaired file.
    let span = three.last().unwrap().lsl_time - three[0].lsl_time;
    assert!(span > 3.0, "{arch}: the crashed recording spans {span} s");
}

/// `hindsight check --config` of the ARM build on `yaml`: whether it passed, and what it said.
fn check(arm: &ArmBuild, yaml: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, yaml).unwrap();
    let out = Command::new(&arm.program[0])
        .args(&arm.program[1..])
        .arg("check")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// Buffers a 64-bit rig takes are refused by the 32-bit build with the key, its line and
/// what to do: `buffer.max_bytes: 4GiB` (for a 1080p camera), which cut to 32 bits was a
/// buffer of 0 bytes that kept nothing, started without a word; and a microphone buffer
/// past 1 GiB (an hour at 192 kHz in stereo), allocated whole at start.
fn buffers_past_32_bits(arch: &'static str) {
    let _g = serial();
    let Some(arm) = ArmBuild::find(arch) else {
        return;
    };
    let camera = "cameras:\n  - name: cam0\n    source: synthetic\n    fps: 10\n";
    let (ok, said) = check(
        &arm,
        &format!("{camera}audio:\n  enabled: false\nbuffer:\n  max_bytes: 4GiB\n"),
    );
    let (mic_ok, mic_said) = check(
        &arm,
        &format!(
            "{camera}audio:\n  source: synthetic\n  sample_rate: 192000\n  channels: 2\n\
             buffer:\n  duration: 3600\n"
        ),
    );
    if arch == "armv7" {
        assert!(!ok, "{said}");
        assert!(
            said.contains("line 8")
                && said.contains("buffer.max_bytes")
                && said.contains("4GiB per camera")
                && said.contains("64-bit OS"),
            "{said}"
        );
        assert!(!mic_ok, "{mic_said}");
        assert!(
            mic_said.contains("line 10")
                && mic_said.contains("buffer.duration")
                && mic_said.contains("microphone's buffer would take 5280 MiB"),
            "{mic_said}"
        );
    } else {
        assert!(!said.contains("buffer.max_bytes:"), "{said}");
        assert!(said.contains("memory"), "{said}");
        assert!(!mic_said.contains("buffer.duration:"), "{mic_said}");
        assert!(mic_said.contains("the microphone's 5280 MiB"), "{mic_said}");
    }
}

#[test]
#[ignore = "needs the ARM builds of scripts/cross-check.sh: scripts/test.sh runs it after them"]
fn the_32_bit_pi_build_refuses_buffers_it_cannot_hold_and_the_64_bit_one_takes_them() {
    buffers_past_32_bits("armv7");
    buffers_past_32_bits("aarch64");
}

#[test]
#[ignore = "needs the ARM builds of scripts/cross-check.sh: scripts/test.sh runs it after them"]
fn the_64_bit_pi_build_records_streams_and_repairs() {
    a_pi_build_records_streams_and_repairs("aarch64");
}

#[test]
#[ignore = "needs the ARM builds of scripts/cross-check.sh: scripts/test.sh runs it after them"]
fn the_32_bit_pi_build_records_streams_and_repairs() {
    a_pi_build_records_streams_and_repairs("armv7");
}

/// The 64-bit Pi build's `source: libcamera` (a Pi's own cameras), on libcamera's virtual
/// camera built for aarch64 from the same Debian source as this machine's test libcamera:
/// a recording and `start 2` in one process, every frame in each file the sensor frame
/// its pixels say, at that frame's exposure time, its frame numbers one after another.
/// This is the Pi's camera path in the Pi's own code (the binding, the YUV to JPEG
/// encoding, the sensor timestamps), not a Pi's speed: a small camera at 15 fps.
#[test]
#[ignore = "needs the ARM builds of scripts/cross-check.sh: scripts/test.sh runs it after them"]
fn the_64_bit_pi_build_records_a_libcamera_camera_at_its_sensor_times() {
    let _g = serial();
    let Some(arm) = ArmBuild::find("aarch64") else {
        return;
    };
    if !arm.libcamera {
        eprintln!("##########################################################################");
        eprintln!("# tests/arm.rs aarch64 libcamera: NOT RUN: the aarch64 build has no libcamera (scripts/cross-check.sh said why)");
        eprintln!("##########################################################################");
        return;
    }
    require_tool("ffprobe");
    require_tool("mkvmerge");
    let dir = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(dir.path(), &[PI]);
    let root = dir.path().join("recordings");
    let fps = 15.0;
    let config = format!(
        "rig: armtest\nbuffer:\n  duration: 1.5\n  max_bytes: 64MiB\naudio:\n  enabled: false\n\
         lsl:\n  enabled: false\ncameras:\n  - name: pi\n    source: libcamera\n    device: \"0\"\n    \
         resolution: {{width: {}, height: {}}}\n    fps: {fps}\n    quality: 80\n",
        PI.width, PI.height
    );
    let mut h = Hindsight::start_program(
        tempfile::tempdir().unwrap(),
        root.clone(),
        &config,
        &arm.program,
        |c| {
            c.env("LIBCAMERA_VIRTUAL_CONFIG", &yaml)
                .env("LIBCAMERA_LOG_LEVELS", "*:ERROR");
        },
    );
    let cam = h.status()["cameras"][0].clone();
    assert!(
        cam["source"] == "libcamera"
            && cam["model"] == "virtual-imx708, YUV420 encoded to JPEG"
            && cam["width"] == PI.width
            && cam["height"] == PI.height,
        "{cam}"
    );
    record_then_start_2(&mut h, 1.4);
    let cam = h.status()["cameras"][0].clone();
    assert!(h.terminate().success(), "{}", h.log_text());
    let log = h.log_text();
    assert!(!log.contains(" ERROR "), "{log}");
    let files = mkv_files(&root);
    assert_eq!(files.len(), 2, "{files:?}");
    let mut last = None;
    for mkv in &files {
        assert_eq!(
            ffprobe_video(mkv),
            (
                u64::from(PI.width),
                u64::from(PI.height),
                "mjpeg".to_string()
            )
        );
        mkvmerge_clean(mkv);
        let rows = read_sidecar(mkv);
        assert_eq!(
            ffprobe_packet_count(mkv),
            rows.len() as u64,
            "{}",
            mkv.display()
        );
        // 1.5 s buffered and 2 s live: at least 3 s of frames.
        assert!(
            rows.len() as f64 > 3.0 * fps,
            "{}: {} frames",
            mkv.display(),
            rows.len()
        );
        for w in rows.windows(2) {
            assert_eq!(
                w[1].frame_number,
                w[0].frame_number + 1,
                "{}",
                mkv.display()
            );
        }
        // The recorder lost none of the sensor's frames, and each is at its exposure.
        let shown = shown(mkv, PI.width as usize, PI.height as usize);
        assert!(steps(&shown).iter().all(|&s| s == 1), "{:?}", steps(&shown));
        assert_sensor_times(&rows, &shown, period(fps));
        // Each row has its own frame's exposure (half the frame period, the camera's
        // automatic exposure) and gains, carried in the frame's JPEG by the Pi build.
        assert_exposures(&rows, &shown, 33_333);
        assert_exif(mkv, &shown, 33_333);
        // The second's buffer reaches back into the first: a frame in both has one time.
        if let Some((n, t)) = last {
            let again = rows.iter().find(|r| r.frame_number == n);
            assert!(again.is_none_or(|r| r.lsl_time == t), "frame {n}");
        }
        last = rows.last().map(|r| (r.frame_number, r.lsl_time));
    }
    assert_eq!(cam["drops"]["source_gaps"], 0, "{cam}");
}
