//! The muxer's files judged by the tools people open them with (ffprobe, ffmpeg,
//! mkvmerge, mkvinfo) and by two independent Rust demuxers (`matroska` for metadata,
//! `matroska-demuxer` for frames); crash-cut files judged the same way, before and
//! after repair.
//!
//! The external tools are required (CI installs ffmpeg and mkvtoolnix): a missing tool
//! fails the test with a message naming it, it never skips silently.

use std::io::Cursor;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use mkv::fixture::{self, Recording};
use mkv::mux::{MkvMuxer, MuxerConfig, Patch, TrackKind, TrackSpec};
use mkv::read::{apply_plan, is_unfinished, plan_repair, RepairPlan};
use proptest::prelude::*;

const UNIT_NS: i64 = 100_000;
const VIDEO: u64 = 1;
const AUDIO: u64 = 2;
const SAMPLE_RATE: u32 = 48_000;
/// 10 ms of 48 kHz mono audio per block.
const AUDIO_BLOCK_SAMPLES: u32 = 480;
const TAGS: [(&str, &str); 3] = [
    ("LSL_FIRST_FRAME_TIME", "12345.678901"),
    ("CAMERA", "cam0"),
    ("TRIGGER", "ntfy: start"),
];

// ---------------------------------------------------------------- external tools

fn run(program: &str, args: &[&str]) -> Output {
    match Command::new(program).args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "required tool `{program}` is not installed (Debian/Ubuntu: apt install ffmpeg \
             mkvtoolnix); these tests judge files with it"
        ),
        Err(e) => panic!("cannot run `{program}`: {e}"),
    }
}

/// Runs a tool that must succeed and returns its standard output.
fn stdout_of(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ffprobe(file: &Path, args: &[&str]) -> String {
    let mut all = vec!["-v", "error"];
    all.extend_from_slice(args);
    all.push(file.to_str().unwrap());
    stdout_of("ffprobe", &all)
}

fn ffprobe_video_frames(file: &Path) -> usize {
    let out = ffprobe(
        file,
        &[
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
        ],
    );
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("ffprobe frame count {out:?}"))
}

fn ffprobe_duration(file: &Path) -> Option<f64> {
    let out = ffprobe(
        file,
        &["-show_entries", "format=duration", "-of", "csv=p=0"],
    );
    out.trim().parse().ok()
}

/// mkvmerge's verdict, with whitespace removed so fields can be matched as text
/// (`"errors":[]`) without a JSON parser.
fn assert_mkvmerge_clean(file: &Path) -> String {
    let out = run("mkvmerge", &["-J", file.to_str().unwrap()]);
    let json: String = String::from_utf8_lossy(&out.stdout)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    assert!(json.contains("\"errors\":[]"), "mkvmerge errors: {json}");
    assert!(
        json.contains("\"warnings\":[]"),
        "mkvmerge warnings: {json}"
    );
    assert!(json.contains("\"recognized\":true"), "{json}");
    assert!(
        out.status.success(),
        "mkvmerge exit status {:?}",
        out.status
    );
    json
}

/// Number of CuePoints, as listed by `mkvinfo --all`.
fn mkvinfo_cue_points(file: &Path) -> usize {
    stdout_of("mkvinfo", &["--all", file.to_str().unwrap()])
        .lines()
        .filter(|l| l.trim_start_matches(['|', ' ']) == "+ Cue point")
        .count()
}

/// `ffmpeg` decodes every frame of the file without failing.
fn assert_ffmpeg_decodes(file: &Path) {
    let out = run(
        "ffmpeg",
        &[
            "-v",
            "error",
            "-i",
            file.to_str().unwrap(),
            "-f",
            "null",
            "-",
        ],
    );
    assert!(
        out.status.success(),
        "ffmpeg cannot decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- test material

/// 90 real JPEG frames from ffmpeg's test pattern, made once per test binary.
fn jpeg_frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        let out = run(
            "ffmpeg",
            &[
                "-v",
                "error",
                "-f",
                "lavfi",
                "-i",
                "testsrc2=size=320x240:rate=30",
                "-frames:v",
                "90",
                "-q:v",
                "5",
                "-f",
                "mjpeg",
                "-",
            ],
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let frames = split_jpegs(&out.stdout);
        assert_eq!(frames.len(), 90);
        frames
    })
}

/// Splits an MJPEG stream into images at their SOI (FFD8) and EOI (FFD9) markers.
/// ffmpeg's encoder writes no embedded thumbnails, and entropy-coded data stuffs every
/// 0xFF, so the first EOI after an SOI ends the image.
fn split_jpegs(stream: &[u8]) -> Vec<Vec<u8>> {
    let find = |hay: &[u8], needle: [u8; 2]| hay.windows(2).position(|w| w == needle);
    let mut frames = Vec::new();
    let mut rest = stream;
    while let Some(start) = find(rest, [0xFF, 0xD8]) {
        let Some(len) = find(&rest[start..], [0xFF, 0xD9]) else {
            break;
        };
        let end = start + len + 2;
        frames.push(rest[start..end].to_vec());
        rest = &rest[end..];
    }
    frames
}

/// Irregular capture times: ~30 fps with intervals of 25 to 45 ms that are not
/// multiples of the timestamp unit, starting off zero (variable frame rate, as cameras
/// deliver it).
fn capture_times(n: usize) -> Vec<i64> {
    let mut state = 0x2545_F491_4F6C_DD1D_u64;
    let mut t = 1_234_567;
    (0..n)
        .map(|_| {
            let now = t;
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            t += 25_000_000 + ((state >> 33) % 20_000_000) as i64;
            now
        })
        .collect()
}

fn config(audio: bool) -> MuxerConfig {
    let mut tracks = vec![TrackSpec {
        number: VIDEO,
        uid: 0x1234_5678_9ABC,
        name: "cam0".into(),
        kind: TrackKind::VideoMjpeg {
            width: 320,
            height: 240,
        },
    }];
    if audio {
        tracks.push(TrackSpec {
            number: AUDIO,
            uid: 0x2345_6789,
            name: "mic".into(),
            kind: TrackKind::AudioPcmLe {
                sample_rate: SAMPLE_RATE.into(),
                channels: 1,
                bit_depth: 16,
            },
        });
    }
    MuxerConfig {
        timestamp_unit_ns: UNIT_NS as u64,
        max_cluster_ns: 1_000_000_000,
        tracks,
        tags: TAGS
            .iter()
            .map(|&(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        writing_app: "hindsight-test 0.1.0".into(),
        date_utc_unix_ns: Some(1_700_000_000_123_456_789),
        title: Some("integration test".into()),
    }
}

/// A 440 Hz tone, 16-bit little-endian, starting at sample `first`.
fn tone(first: u32) -> Vec<u8> {
    (first..first + AUDIO_BLOCK_SAMPLES)
        .flat_map(|i| {
            let phase = f64::from(i) * 440.0 * std::f64::consts::TAU / f64::from(SAMPLE_RATE);
            ((phase.sin() * 8000.0) as i16).to_le_bytes()
        })
        .collect()
}

fn apply(file: &mut [u8], patches: &[Patch]) {
    Patch::apply_all(file, patches);
}

/// Repairs the unfinished file at `path` where it is, as `hindsight repair` does.
fn repair_in_place(path: &Path) -> RepairPlan {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    assert!(is_unfinished(&mut file).unwrap());
    let plan = plan_repair(&mut file).unwrap();
    assert!(!plan.already_final);
    apply_plan(&mut file, &plan).unwrap();
    plan
}

fn apply_in_memory(file: &mut Vec<u8>, plan: &RepairPlan) {
    plan.apply_in_memory(file);
}

/// The test JPEGs at jittered capture times, with 10 ms audio blocks interleaved as the
/// writer does (audio up to each frame's time) when `audio`.
fn record(audio: bool, chapters: &[(i64, &str)]) -> Recording {
    let frames = jpeg_frames();
    let times = capture_times(frames.len());
    let mut blocks = Vec::new();
    let mut samples = 0u32;
    for (frame, &t) in frames.iter().zip(&times) {
        loop {
            let audio_t = i64::from(samples) * 1_000_000_000 / i64::from(SAMPLE_RATE);
            if !audio || audio_t > t {
                break;
            }
            blocks.push((AUDIO, audio_t, tone(samples)));
            samples += AUDIO_BLOCK_SAMPLES;
        }
        blocks.push((VIDEO, t, frame.clone()));
    }
    fixture::record(config(audio), blocks, chapters)
}

/// The video-only recording most tests use, made once.
fn video_recording() -> &'static Recording {
    static REC: OnceLock<Recording> = OnceLock::new();
    REC.get_or_init(|| record(false, &[]))
}

// ---------------------------------------------------------------- clean finish

#[test]
fn clean_finish_is_a_normal_seekable_file() {
    let rec = video_recording();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clean.mkv");
    std::fs::write(&path, rec.finished()).unwrap();
    let times = capture_times(90);

    let json = assert_mkvmerge_clean(&path);
    assert!(json.contains("\"codec_id\":\"V_MJPEG\""), "{json}");
    assert!(json.contains("\"pixel_dimensions\":\"320x240\""), "{json}");
    assert!(
        json.contains("\"global_tags\":[{\"num_entries\":3}]"),
        "{json}"
    );

    assert_eq!(ffprobe_video_frames(&path), 90);
    let pts: Vec<f64> = ffprobe(
        &path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ],
    )
    .lines()
    .map(|l| l.trim().trim_end_matches(',').parse().unwrap())
    .collect();
    let ours: Vec<i64> = rec.track(VIDEO).map(|b| b.ts).collect();
    assert_eq!(pts.len(), 90);
    for ((&p, &ts), &t) in pts.iter().zip(&ours).zip(&times) {
        assert!((p - ts as f64 * 1e-4).abs() < 1e-6, "pts {p} vs {ts} units");
        assert!(
            (p - t as f64 * 1e-9).abs() <= 50e-6,
            "pts {p} vs capture time {t} ns"
        );
    }

    let duration = ffprobe_duration(&path).expect("ffprobe shows a duration");
    assert!((duration - rec.summary.duration_ns as f64 * 1e-9).abs() < 1e-4);
    let last = *ours.last().unwrap();
    let interval = last - ours[ours.len() - 2];
    assert_eq!(rec.summary.duration_ns, (last + interval) * UNIT_NS);

    let tags = ffprobe(
        &path,
        &["-show_entries", "format_tags", "-of", "default=nw=1"],
    );
    for (k, v) in TAGS {
        assert!(
            tags.lines().any(|l| l == format!("TAG:{k}={v}")),
            "{k} in {tags}"
        );
    }
    assert!(tags.contains("TAG:title=integration test"), "{tags}");
    assert!(
        tags.contains("TAG:creation_time=2023-11-14T22:13:20.123456Z"),
        "{tags}"
    );

    // The index: one CuePoint per cluster, and a player seeking to 2 s lands on the
    // keyframe that starts the cluster holding 2 s.
    assert!(rec.summary.clusters >= 3);
    assert_eq!(mkvinfo_cue_points(&path) as u64, rec.summary.clusters);
    let sought = ffprobe(
        &path,
        &[
            "-read_intervals",
            "2%+#1",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time",
            "-of",
            "csv=p=0",
        ],
    );
    let first: f64 = sought
        .lines()
        .next()
        .unwrap()
        .trim_end_matches(',')
        .parse()
        .unwrap();
    assert!(
        (1.0..=2.0).contains(&first),
        "seek to 2 s read a packet at {first}"
    );

    // `matroska`: the metadata
    let mkv = matroska::open(&path).unwrap();
    let d = mkv.info.duration.expect("duration");
    assert!((d.as_secs_f64() - duration).abs() < 1e-6);
    assert_eq!(mkv.info.title.as_deref(), Some("integration test"));
    assert_eq!(mkv.info.writing_app, "hindsight-test 0.1.0");
    assert_eq!(mkv.tracks.len(), 1);
    let track = &mkv.tracks[0];
    assert_eq!((track.number, track.uid), (VIDEO, 0x1234_5678_9ABC));
    assert_eq!(track.codec_id, "V_MJPEG");
    match &track.settings {
        matroska::Settings::Video(v) => assert_eq!((v.pixel_width, v.pixel_height), (320, 240)),
        other => panic!("video settings expected, got {other:?}"),
    }
    let simple: Vec<(String, String)> = mkv
        .tags
        .iter()
        .flat_map(|t| &t.simple)
        .map(|s| {
            let value = match &s.value {
                Some(matroska::TagValue::String(v)) => v.clone(),
                other => format!("{other:?}"),
            };
            (s.name.clone(), value)
        })
        .collect();
    let expected: Vec<(String, String)> = TAGS.iter().map(|&(k, v)| (k.into(), v.into())).collect();
    assert_eq!(simple, expected);

    // `matroska-demuxer`: every frame, its timestamp and its bytes
    let mut demux =
        matroska_demuxer::MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(demux.info().timestamp_scale().get(), UNIT_NS as u64);
    let mut frame = matroska_demuxer::Frame::default();
    let mut n = 0;
    while demux.next_frame(&mut frame).unwrap() {
        let block = rec
            .track(VIDEO)
            .nth(n)
            .expect("no more frames than written");
        assert_eq!(frame.track, VIDEO);
        assert_eq!(frame.timestamp, block.ts as u64, "frame {n}");
        assert_eq!(frame.is_keyframe, Some(true));
        assert!(frame.data == jpeg_frames()[n], "frame {n} bytes differ");
        n += 1;
    }
    assert_eq!(n, 90);

    let mut file = std::fs::File::open(&path).unwrap();
    assert!(!is_unfinished(&mut file).unwrap());
    let plan = plan_repair(&mut file).unwrap();
    assert!(plan.already_final);
    assert_eq!((plan.blocks, plan.clusters), (90, rec.summary.clusters));
}

#[test]
fn audio_track_is_a_second_stream() {
    let rec = record(true, &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("av.mkv");
    std::fs::write(&path, rec.finished()).unwrap();

    let json = assert_mkvmerge_clean(&path);
    assert!(json.contains("\"codec_id\":\"A_PCM/INT/LIT\""), "{json}");
    assert!(
        json.contains("\"audio_sampling_frequency\":48000"),
        "{json}"
    );
    let streams = ffprobe(
        &path,
        &[
            "-show_entries",
            "stream=codec_name,sample_rate,channels,bits_per_sample",
            "-of",
            "csv=p=0",
        ],
    );
    let streams: Vec<&str> = streams.lines().collect();
    assert_eq!(streams, ["mjpeg", "pcm_s16le,48000,1,16"]);
    assert_eq!(ffprobe_video_frames(&path), 90);
    // clusters start on video keyframes, so every cluster still gets a cue
    assert_eq!(mkvinfo_cue_points(&path) as u64, rec.summary.clusters);
    assert_ffmpeg_decodes(&path);

    let mkv = matroska::open(&path).unwrap();
    assert_eq!(mkv.audio_tracks().count(), 1);
    match &mkv.tracks[1].settings {
        matroska::Settings::Audio(a) => {
            assert_eq!(
                (a.sample_rate, a.channels, a.bit_depth),
                (48_000.0, 1, Some(16))
            )
        }
        other => panic!("audio settings expected, got {other:?}"),
    }

    let mut demux =
        matroska_demuxer::MatroskaFile::open(std::fs::File::open(&path).unwrap()).unwrap();
    let mut frame = matroska_demuxer::Frame::default();
    let mut seen = Vec::new();
    while demux.next_frame(&mut frame).unwrap() {
        seen.push((frame.track, frame.timestamp, frame.data.clone()));
    }
    let written: Vec<(u64, u64, Vec<u8>)> = rec
        .blocks
        .iter()
        .map(|b| (b.track, b.ts as u64, b.data.clone()))
        .collect();
    assert!(
        seen == written,
        "demuxed blocks differ from the written ones"
    );
    assert!(seen.iter().filter(|b| b.0 == AUDIO).count() > 250);
}

#[test]
fn chapters_are_listed_by_players() {
    let rec = record(
        false,
        &[
            (1_500_000_000, "second mark"),
            (0, "start"),
            (2_000_000_123, "ä third"),
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chapters.mkv");
    std::fs::write(&path, rec.finished()).unwrap();

    let json = assert_mkvmerge_clean(&path);
    assert!(
        json.contains("\"chapters\":[{\"num_entries\":3}]"),
        "{json}"
    );
    let listed = ffprobe(
        &path,
        &[
            "-show_chapters",
            "-show_entries",
            "chapter=start_time:chapter_tags=title",
            "-of",
            "csv=p=0",
        ],
    );
    let listed: Vec<&str> = listed.lines().collect();
    assert_eq!(
        listed,
        ["0.000000,start", "1.500000,second mark", "2.000000,ä third"],
        "ffprobe chapters"
    );
    let mkv = matroska::open(&path).unwrap();
    let titles: Vec<(u128, &str)> = mkv.chapters[0]
        .chapters
        .iter()
        .map(|c| (c.time_start.as_nanos(), c.display[0].string.as_str()))
        .collect();
    assert_eq!(
        titles,
        [
            (0, "start"),
            (1_500_000_000, "second mark"),
            (2_000_000_123, "ä third")
        ]
    );
}

// ---------------------------------------------------------------- crash cuts

#[test]
fn a_file_cut_anywhere_plays_and_repairs() {
    let rec = record(true, &[]);
    let len = rec.live.len() as u64;
    let video_total = rec.track(VIDEO).count();

    // Every byte of the header region, and every 997th byte after it: planned in
    // memory (fast), checked against the blocks that are complete before the cut.
    let cuts = (0..rec.header_len + 64)
        .chain((rec.header_len..len).step_by(997))
        .chain([len]);
    for cut in cuts {
        let complete = rec.blocks.iter().filter(|b| b.end <= cut).count() as u64;
        match plan_repair(&mut Cursor::new(&rec.live[..cut as usize])) {
            Ok(plan) => {
                assert_eq!(plan.blocks, complete, "cut at {cut}");
                assert_eq!(plan.dropped_bytes, cut - plan.truncate_to, "cut at {cut}");
                let mut repaired = rec.live[..cut as usize].to_vec();
                apply_in_memory(&mut repaired, &plan);
                let again = plan_repair(&mut Cursor::new(&repaired)).unwrap();
                assert!(again.already_final, "cut at {cut}: the repair is final");
                assert_eq!(again.blocks, complete, "cut at {cut}");
            }
            Err(e) => {
                assert!(cut < rec.header_len, "cut at {cut}: {e}");
                let message = e.to_string();
                assert!(
                    message.contains("header is incomplete") || message.contains("empty"),
                    "cut at {cut}: {message}"
                );
            }
        }
    }

    // A few cuts judged by the tools, before and after repair: no block yet (header
    // only), inside the first cluster's header, inside the first frame, exactly at a
    // block end and one byte after it, spread points, and the uncut live file.
    let mid = &rec.blocks[rec.blocks.len() / 2];
    let mut cuts = vec![
        rec.header_len,
        rec.header_len + 6,
        rec.header_len + 300,
        mid.end,
        mid.end + 1,
        len,
    ];
    cuts.extend((1..6).map(|i| len * i / 6 + 17));
    let dir = tempfile::tempdir().unwrap();
    for (i, &cut) in cuts.iter().enumerate() {
        let path = dir.path().join(format!("cut{cut}.mkv"));
        std::fs::write(&path, &rec.live[..cut as usize]).unwrap();
        let video = rec.complete(VIDEO, cut);
        if video > 0 {
            // the cut file itself plays up to the cut (ffmpeg is slow to start: a few)
            if i % 2 == 1 || cut == len {
                assert_ffmpeg_decodes(&path);
            }
            assert_eq!(ffprobe_video_frames(&path), video, "cut file, cut at {cut}");
        }

        let plan = repair_in_place(&path);

        assert_mkvmerge_clean(&path);
        // With no complete block the repair finishes an empty Segment (the header's
        // metadata survives). ffmpeg refuses every Matroska file without a Cluster,
        // mkvmerge's own included, so only mkvmerge can judge that one.
        if plan.blocks > 0 {
            assert_eq!(ffprobe_video_frames(&path), video, "repaired, cut at {cut}");
        }
        if video > 0 {
            let d = ffprobe_duration(&path).expect("repaired file has a duration");
            assert!((d - plan.duration_ns as f64 * 1e-9).abs() < 1e-4);
            assert_eq!(
                mkvinfo_cue_points(&path) as u64,
                plan.clusters,
                "cut at {cut}"
            );
        }
        let mut file = std::fs::File::open(&path).unwrap();
        assert!(!is_unfinished(&mut file).unwrap());
        assert!(plan_repair(&mut file).unwrap().already_final);
        if cut == len {
            assert_eq!(std::fs::read(&path).unwrap(), rec.finished());
            assert_eq!(video, video_total);
        }
    }
}

#[test]
fn an_interrupted_finish_is_completed() {
    let rec = record(false, &[(1_000_000_000, "mark")]);
    let dir = tempfile::tempdir().unwrap();

    // half the index written, no patch applied: the old index is replaced, the mark
    // (in the lost half) is gone
    let path = dir.path().join("half.mkv");
    let mut bytes = rec.live.clone();
    bytes.extend_from_slice(&rec.tail[..rec.tail.len() / 2]);
    std::fs::write(&path, &bytes).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    let plan = plan_repair(&mut file).unwrap();
    assert_eq!(plan.dropped_bytes, rec.tail.len() as u64 / 2);
    apply_plan(&mut file, &plan).unwrap();
    assert_mkvmerge_clean(&path);
    assert_eq!(ffprobe_video_frames(&path), 90);
    assert!(ffprobe(&path, &["-show_chapters", "-of", "csv=p=0"])
        .trim()
        .is_empty());

    // the whole index written, every patch but the Segment size applied: the mark
    // survives
    let path = dir.path().join("almost.mkv");
    let mut bytes = rec.live.clone();
    bytes.extend_from_slice(&rec.tail);
    apply(
        &mut bytes,
        &rec.finish_patches[..rec.finish_patches.len() - 1],
    );
    std::fs::write(&path, &bytes).unwrap();
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    assert!(is_unfinished(&mut file).unwrap());
    let plan = plan_repair(&mut file).unwrap();
    apply_plan(&mut file, &plan).unwrap();
    assert_mkvmerge_clean(&path);
    let chapters = ffprobe(
        &path,
        &["-show_entries", "chapter_tags=title", "-of", "csv=p=0"],
    );
    assert_eq!(chapters.trim(), "mark");
    assert_eq!(std::fs::read(&path).unwrap(), rec.finished());
}

// ---------------------------------------------------------------- past 4 GiB

/// Payload of frame `i` in the files past 4 GiB: 1 MiB + `i` bytes (a real JPEG, then
/// zeros, which decoders ignore after the image's end), so a packet's size says which
/// frame it is.
const BIG_FRAME: usize = 1 << 20;
/// 4200 such frames make 4.4 GB, past every 32-bit offset and size.
const BIG_FRAMES: usize = 4200;

/// A folder with `bytes` free: the RAM disk if there is RAM to spare, else the
/// temporary directory.
fn room_for(bytes: u64) -> tempfile::TempDir {
    let available = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            let l = m.lines().find(|l| l.starts_with("MemAvailable:"))?;
            l.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024);
    if available > 2 * bytes && Path::new("/dev/shm").is_dir() {
        tempfile::tempdir_in("/dev/shm").unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
}

/// Writes a video file of [`BIG_FRAMES`] frames at 30 fps to `path` as the recorder does
/// (appending what the muxer hands out, patching what it asks for); finished, or cut
/// halfway through one more frame as a crash leaves it. Returns the finished file's
/// clusters.
fn mux_past_4_gib(path: &Path, finish: bool) -> Option<u64> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut file = std::fs::File::create(path).unwrap();
    let mut muxer = MkvMuxer::new(config(false));
    let (mut out, mut patches) = (Vec::new(), Vec::new());
    muxer.header(&mut out);
    let zeros = vec![0u8; BIG_FRAME + BIG_FRAMES];
    for i in 0..=BIG_FRAMES {
        let jpeg = &jpeg_frames()[i % 90];
        let len = BIG_FRAME + i;
        let at = i as i64 * 1_000_000_000 / 30;
        muxer
            .write_block_header(VIDEO, at, true, len, &mut out, &mut patches)
            .unwrap();
        file.write_all(&out).unwrap();
        out.clear();
        if i == BIG_FRAMES {
            // The crash: half of the last frame reached the file.
            file.write_all(&jpeg[..jpeg.len() / 2]).unwrap();
            break;
        }
        file.write_all(jpeg).unwrap();
        file.write_all(&zeros[..len - jpeg.len()]).unwrap();
        for p in patches.drain(..) {
            file.write_all_at(&p.bytes, p.offset).unwrap();
        }
        if finish && i + 1 == BIG_FRAMES {
            let summary = muxer.finish(&mut out, &mut patches).unwrap();
            file.write_all(&out).unwrap();
            for p in patches.drain(..) {
                file.write_all_at(&p.bytes, p.offset).unwrap();
            }
            assert_eq!(summary.frames, BIG_FRAMES as u64);
            return Some(summary.clusters);
        }
    }
    None
}

/// The file's index as mkvinfo reads it (`--all -P`: every element with its position):
/// one cue point per cluster, each at a cluster's position; the SeekHead's entry for the
/// Cues at the Cues; the Segment's size to the file's end. (ffmpeg reads on to a time
/// where an index entry is wrong, so its seeks alone would not show a bad index.)
fn assert_index_points_at_clusters(path: &Path, clusters: u64) {
    let info = stdout_of("mkvinfo", &["--all", "-P", path.to_str().unwrap()]);
    let at = |l: &str| -> u64 { l.rsplit(" at ").next().unwrap().parse().unwrap() };
    let value = |l: &str, key: &str| -> u64 {
        let v = l.split(key).nth(1).unwrap();
        v.split_whitespace().next().unwrap().parse().unwrap()
    };
    let lines: Vec<&str> = info
        .lines()
        .map(|l| l.trim_start_matches(['|', ' ']))
        .collect();
    let data = at(lines
        .iter()
        .find(|l| l.starts_with("+ Seek head at"))
        .unwrap());
    let segment = lines.iter().find(|l| l.starts_with("+ Segment:")).unwrap();
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(data + value(segment, "size "), len, "{segment}");
    let found: Vec<u64> = lines
        .iter()
        .filter(|l| l.starts_with("+ Cluster at"))
        .map(|l| at(l))
        .collect();
    let cued: Vec<u64> = lines
        .iter()
        .filter(|l| l.starts_with("+ Cue cluster position:"))
        .map(|l| data + value(l, "position: "))
        .collect();
    assert_eq!(found.len() as u64, clusters);
    assert_eq!(cued, found, "cue points against clusters");
    let cues = at(lines.iter().find(|l| l.starts_with("+ Cues at")).unwrap());
    let entry = lines
        .iter()
        .position(|l| l.contains("(KaxCues)"))
        .expect("a SeekHead entry for the Cues");
    assert_eq!(data + value(lines[entry + 1], "position: "), cues);
}

/// What a person opening a file past 4 GiB relies on: mkvmerge takes it whole, its
/// duration is stated, its index points at every cluster, and a seek to 138 s (past
/// 4 GiB) lands on the right frame by the index and decodes.
fn assert_whole_past_4_gib(path: &Path, clusters: u64) {
    assert!(std::fs::metadata(path).unwrap().len() > 1 << 32);
    assert_mkvmerge_clean(path);
    let duration = ffprobe_duration(path).expect("a duration");
    let last = (BIG_FRAMES - 1) as f64 / 30.0;
    assert!(
        (last..last + 0.1).contains(&duration),
        "duration {duration} s for frames up to {last} s"
    );
    assert_index_points_at_clusters(path, clusters);
    let packets = ffprobe(
        path,
        &[
            "-read_intervals",
            "138%+#3",
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,pos,size",
            "-of",
            "csv=p=0",
        ],
    );
    let first: Vec<&str> = packets.lines().next().unwrap_or("").split(',').collect();
    let [pts, size, pos] = first[..] else {
        panic!("no packet after a seek to 138 s: {packets:?}")
    };
    let (pts, size, pos): (f64, usize, u64) = (
        pts.parse().unwrap(),
        size.parse().unwrap(),
        pos.parse().unwrap(),
    );
    let frame = size - BIG_FRAME;
    assert!(pos > 1 << 32, "packet at byte {pos}");
    assert!(
        (137.0..=138.0).contains(&pts),
        "a seek to 138 s landed at {pts} s"
    );
    assert!(
        (pts - frame as f64 / 30.0).abs() < 0.001,
        "frame {frame} at {pts} s"
    );
    let out = run(
        "ffmpeg",
        &["-v", "error", "-ss", "138", "-i", path.to_str().unwrap()]
            .into_iter()
            .chain(["-frames:v", "1", "-f", "null", "-"])
            .collect::<Vec<_>>(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A long 1080p recording on a disk that holds large files grows past 4 GiB (in about 12
/// minutes): finished by the muxer, or cut by a crash and finished by repair, it is an
/// ordinary file past every 32-bit offset and size. Writes 4.4 GB (on the RAM disk when
/// there is RAM to spare).
#[test]
fn files_past_4_gib_are_finished_and_repaired_whole() {
    let dir = room_for(4_500_000_000);
    let path = dir.path().join("long.mkv");
    let clusters = mux_past_4_gib(&path, true).unwrap();
    assert!(clusters > 100, "{clusters} clusters");
    assert_whole_past_4_gib(&path, clusters);
    std::fs::remove_file(&path).unwrap();

    mux_past_4_gib(&path, false);
    let plan = repair_in_place(&path);
    assert_eq!(plan.frames, BIG_FRAMES as u64);
    assert_eq!(plan.clusters, clusters, "the clusters of the finished file");
    assert!(!is_unfinished(&mut std::fs::File::open(&path).unwrap()).unwrap());
    assert_whole_past_4_gib(&path, clusters);
}

// ---------------------------------------------------------------- damaged input

/// Up to 8 byte corruptions, aimed at the structure: the header (first KiB), the
/// block and cluster headers (just after a block's end), or anywhere.
fn flips() -> impl Strategy<Value = Vec<(usize, u8)>> {
    let rec = video_recording();
    let len = rec.live.len();
    let ends: Vec<usize> = rec.blocks.iter().map(|b| b.end as usize).collect();
    let near_block = (0..ends.len(), 0..24usize).prop_map(move |(i, off)| ends[i] + off);
    let at = prop_oneof![0..1024usize, near_block, 0..len];
    proptest::collection::vec((at, 1..=255u8), 0..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn repair_never_panics_on_damaged_input(
        cut in 0..1_000_000usize,
        flips in flips(),
        garbage in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let rec = video_recording();
        let mut bytes = rec.live[..cut.min(rec.live.len())].to_vec();
        for (at, x) in flips {
            if let Some(b) = bytes.get_mut(at) {
                *b ^= x;
            }
        }
        bytes.extend_from_slice(&garbage);
        // errors are fine; panics, hangs and huge allocations are not
        let _ = is_unfinished(&mut Cursor::new(&bytes));
        if let Ok(plan) = plan_repair(&mut Cursor::new(&bytes)) {
            prop_assert!(plan.truncate_to <= bytes.len() as u64);
            apply_in_memory(&mut bytes, &plan);
            let _ = plan_repair(&mut Cursor::new(&bytes));
        }
    }

    #[test]
    fn repairing_a_truncated_file_is_final_and_idempotent(cut in 0..1_000_000usize) {
        let rec = video_recording();
        let cut = cut.min(rec.live.len());
        let mut bytes = rec.live[..cut].to_vec();
        if let Ok(plan) = plan_repair(&mut Cursor::new(&bytes)) {
            let complete = rec.blocks.iter().filter(|b| b.end <= cut as u64).count() as u64;
            prop_assert_eq!(plan.blocks, complete);
            apply_in_memory(&mut bytes, &plan);
            let again = plan_repair(&mut Cursor::new(&bytes)).unwrap();
            prop_assert!(again.already_final);
            prop_assert_eq!((again.blocks, again.clusters), (plan.blocks, plan.clusters));
        } else {
            prop_assert!((cut as u64) < rec.header_len);
        }
    }
}
