//! The recordings on disk, as hindsight laid them out (`design/files.md`): which files
//! make up one recording, and what a recording holds (cameras, frames, missing frames,
//! marks, whether it was finished). Retention deletes by it, the web page lists and serves
//! from it. Paths are only ever found by listing the root: no name a client sends is
//! joined into a path, and links are not followed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::frame::exif::Exposure;
use crate::writer::repair::parse_ns;
use index::SidecarIndex;

pub mod finish;
mod index;

/// One recording on disk: every file of one stem.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredRecording {
    /// `<day>/<stem>`, e.g. `2026_12_01/rec_2026-12-01_10-00-00`.
    pub key: String,
    pub files: Vec<PathBuf>,
    pub bytes: u64,
    /// Its newest file's modification time.
    pub modified: SystemTime,
}

/// The recording a file in `<root>/<day>/video|audio/` belongs to: the name up to its
/// `_<YYYY-MM-DD_HH-MM-SS>` (and a `-N` that made it unique), if it is one of ours.
pub fn recording_stem(file_name: &str) -> Option<&str> {
    const EXT: [&str; 4] = [".mkv", ".frames.csv", ".events.csv", ".wav"];
    if !EXT.iter().any(|e| file_name.ends_with(e)) {
        return None;
    }
    let b = file_name.as_bytes();
    // `_YYYY-MM-DD_HH-MM-SS`: 20 bytes after the prefix.
    let shape = b"_dddd-dd-dd_dd-dd-dd";
    (1..b.len().saturating_sub(shape.len() - 1)).find_map(|i| {
        let window = &b[i..i + shape.len()];
        let fits = window.iter().zip(shape).all(|(&c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            s => c == s,
        });
        if !fits {
            return None;
        }
        let mut end = i + shape.len();
        // A `-N` suffix (a second recording in the same second).
        if b.get(end) == Some(&b'-') {
            let digits = b[end + 1..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            if digits > 0 {
                end += 1 + digits;
            }
        }
        // Then the camera (`_name`) or the extension.
        matches!(b.get(end), Some(b'_') | Some(b'.')).then(|| &file_name[..end])
    })
}

/// hindsight's recordings under `root`, oldest first.
pub fn scan(root: &Path) -> Vec<StoredRecording> {
    let mut found: BTreeMap<String, StoredRecording> = BTreeMap::new();
    let Ok(days) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    for day in days.flatten() {
        let day_name = day.file_name().to_string_lossy().into_owned();
        // Links are not followed: a day folder or a video/audio folder that is a link
        // could lead anywhere.
        if !is_day_folder(&day_name) || !day.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        scan_day(&day.path(), &day_name, &mut found);
    }
    let mut out: Vec<StoredRecording> = found.into_values().collect();
    out.sort_by_key(|r| r.modified);
    out
}

/// The recordings' files in one day folder (`<root>/<day_name>`), added to `found`.
fn scan_day(day: &Path, day_name: &str, found: &mut BTreeMap<String, StoredRecording>) {
    for sub in ["video", "audio"] {
        let dir = day.join(sub);
        if !std::fs::symlink_metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(dir) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name().to_string_lossy().into_owned();
            let Some(stem) = recording_stem(&name) else {
                continue;
            };
            let Ok(meta) = f.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let key = format!("{day_name}/{stem}");
            let r = found.entry(key.clone()).or_insert_with(|| StoredRecording {
                key,
                files: Vec::new(),
                bytes: 0,
                modified: SystemTime::UNIX_EPOCH,
            });
            r.files.push(f.path());
            r.bytes += meta.len();
            r.modified = r.modified.max(modified);
        }
    }
}

/// `<day>/<stem>` of a file at `<root>/<day>/video|audio/<name>`.
pub fn recording_key(file: &Path) -> Option<String> {
    let name = file.file_name()?.to_str()?;
    let day = file.parent()?.parent()?.file_name()?.to_str()?;
    Some(format!("{day}/{}", recording_stem(name)?))
}

pub fn is_day_folder(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'_',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------------------------------
// What a recording holds

/// One camera's file of a recording, from its sidecars and its MKV's first bytes.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct CameraTake {
    pub camera: String,
    /// Rows of the frames sidecar: frames in the file.
    pub frames: u64,
    /// Frame numbers missing between the first and the last (drops before the writer).
    pub missing_frames: u64,
    /// The largest step between consecutive frame numbers minus one (0 = no gap).
    pub largest_gap: u64,
    pub first_frame: Option<u64>,
    pub last_frame: Option<u64>,
    pub first_lsl_time: Option<f64>,
    pub last_lsl_time: Option<f64>,
    pub duration_s: f64,
    /// The MKV was never finished (a crash; `hindsight repair` finishes it).
    pub unfinished: bool,
    /// Finished, but its events sidecar has no stop (written once the finished file is on
    /// the disk): a crash ended it, and a repair finished it if it needed it.
    pub repaired: bool,
    /// Frames the camera lost while the file was written, by cause (the stop row says
    /// them; none for a file a crash ended).
    pub lost_while_recording: Option<crate::status::DropCounts>,
    /// How many files its video is in: more than 1 where a file size limit
    /// (`storage.max_file_size`) made it go on in parts. Each part counts above.
    pub parts: u32,
    /// The spans the camera was lost while the file was open (its events sidecar's
    /// `camera_lost` and `camera_back` rows): a program's or a network camera's frame
    /// numbers are hindsight's count, so its losses show nowhere else.
    pub outages: Vec<Outage>,
}

/// A span without frames from a camera that was lost while its file was open.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Outage {
    /// LSL time of the `camera_lost` row: the camera's last frame (for a camera lost when
    /// the recording began, its last frame within the file's span, or the span's start).
    pub lost_lsl_time: f64,
    /// When it was back; or, never back, the stop's time; none when neither is in the
    /// files (a crash ended the file while the camera was lost).
    pub until_lsl_time: Option<f64>,
    pub came_back: bool,
    /// Why it was lost, as the row says.
    pub why: String,
}

impl Outage {
    /// Seconds without frames, where known.
    pub fn seconds(&self) -> Option<f64> {
        self.until_lsl_time
            .map(|u| (u - self.lost_lsl_time).max(0.0))
    }
}

/// A mark of the recording, from the events sidecar.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Mark {
    pub lsl_time: f64,
    pub unix_time: f64,
    pub text: String,
}

/// One file of a recording.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FileEntry {
    pub name: String,
    /// video | frames | events | audio
    pub kind: &'static str,
    pub bytes: u64,
}

/// A recording as the web page and `GET /api/recordings` show it.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct RecordingInfo {
    /// The stem (`<prefix>_<YYYY-MM-DD_HH-MM-SS>[-NNN]`): unique under a root.
    pub id: String,
    /// The day folder (`YYYY_MM_DD`).
    pub day: String,
    /// Local start time as in the name (`YYYY-MM-DD HH:MM:SS`).
    pub started: String,
    /// The trigger (`source: text`) from the events sidecar's start row.
    pub trigger: Option<String>,
    pub cameras: Vec<CameraTake>,
    pub files: Vec<FileEntry>,
    pub bytes: u64,
    /// The longest camera's span, first to last frame.
    pub duration_s: f64,
    pub frames: u64,
    pub missing_frames: u64,
    /// Times a camera was lost while its file was open, over all cameras.
    pub camera_losses: u64,
    /// The spans the audio input delivered nothing while the WAV was written (silence put
    /// in), from the events sidecars' `audio_lost` and `audio_back` rows.
    pub audio_outages: Vec<Outage>,
    /// The rig's under-voltage while the files were written (`under_voltage` and
    /// `power_ok` rows: `src/power.rs`); one still open ends at the stop.
    pub under_voltage: Vec<Outage>,
    /// The spans its CPU was at 80 °C or more (`cpu_hot` and `cpu_cool` rows).
    pub cpu_hot: Vec<Outage>,
    pub marks: Vec<Mark>,
    /// The LSL time of the WAV's first sample (its events row), if it has a WAV.
    pub audio_start_lsl_time: Option<f64>,
    /// A file of it (a camera's MKV, the WAV) a crash left unfinished: `hindsight repair`,
    /// or the web page's Repair, finishes it.
    pub unfinished: bool,
    pub repaired: bool,
    /// A file of it is being written now.
    pub open: bool,
}

fn kind_of(name: &str) -> &'static str {
    if name.ends_with(".mkv") {
        "video"
    } else if name.ends_with(".frames.csv") {
        "frames"
    } else if name.ends_with(".events.csv") {
        "events"
    } else {
        "audio"
    }
}

/// One row of a frames sidecar.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FrameRow {
    pub frame: u64,
    pub lsl_ns: i64,
    pub unix_ns: i64,
    /// The block's timestamp in the MKV, ns.
    pub pts_ns: i64,
    pub bytes: u64,
    pub pre_trigger: bool,
    /// What the frame was exposed with, where the sidecar has those columns (a libcamera
    /// camera's; a value the frame did not report is `None` in it).
    pub exposure: Option<Exposure>,
}

/// The rows of a frames sidecar; a partial last line (a crash) is left out. Read line by
/// line: the rows take less memory than the file's text.
pub fn read_frame_rows(path: &Path) -> std::io::Result<Vec<FrameRow>> {
    let mut out = Vec::new();
    each_frame_row(path, |row| out.push(*row))?;
    Ok(out)
}

/// Calls `each` with every row of a frames sidecar, as [`read_frame_rows`] reads them.
fn each_frame_row(path: &Path, mut each: impl FnMut(&FrameRow)) -> std::io::Result<()> {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::with_capacity(256 << 10, std::fs::File::open(path)?);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let Some(text) = line.strip_suffix('\n') else {
            break; // the end, or a line cut by a crash
        };
        if let Some(row) = parse_row(text) {
            each(&row);
        }
    }
    Ok(())
}

/// One line of a frames sidecar as a row; `None` for the header and anything else that
/// is not a row.
fn parse_row(line: &str) -> Option<FrameRow> {
    let mut f = line.split(',');
    Some(FrameRow {
        frame: f.next()?.parse().ok()?,
        lsl_ns: parse_ns(f.next()?)?,
        unix_ns: parse_ns(f.next()?)?,
        pts_ns: parse_ns(f.next()?)?,
        bytes: f.next()?.parse().ok()?,
        pre_trigger: f.next()? == "1",
        exposure: f.next().map(|time| Exposure {
            time_us: time.parse().ok(),
            analogue_gain: f.next().and_then(|g| g.parse().ok()),
            digital_gain: f.next().and_then(|g| g.parse().ok()),
        }),
    })
}

/// What an events sidecar says.
#[derive(Default)]
struct Events {
    trigger: Option<String>,
    marks: Vec<Mark>,
    stopped: bool,
    lost: Option<crate::status::DropCounts>,
    /// The LSL time of the WAV's first sample.
    audio_start: Option<f64>,
    /// `camera_lost` (true) and `camera_back` (false) rows: LSL time, lost, detail.
    camera: Vec<(f64, bool, String)>,
    /// `audio_lost` (true) and `audio_back` (false) rows, the same way.
    audio: Vec<(f64, bool, String)>,
    /// `under_voltage` (true) and `power_ok` (false) rows, the same way.
    power: Vec<(f64, bool, String)>,
    /// `cpu_hot` (true) and `cpu_cool` (false) rows, the same way.
    heat: Vec<(f64, bool, String)>,
    /// The LSL time of the stop row.
    stop_at: Option<f64>,
}

/// The spans without frames that a camera's events rows (over all its parts, in order)
/// say; one still open at `stop_at` ends there, never back.
fn outages(rows: &[(f64, bool, String)], stop_at: Option<f64>) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    for (at, lost, detail) in rows {
        let open = out.last_mut().filter(|o| o.until_lsl_time.is_none());
        match (lost, open) {
            (true, None) => out.push(Outage {
                lost_lsl_time: *at,
                until_lsl_time: None,
                came_back: false,
                why: detail.clone(),
            }),
            (false, Some(o)) => {
                o.until_lsl_time = Some(*at);
                o.came_back = true;
            }
            // A loss while lost, or a return with no loss in this file: nothing new.
            _ => {}
        }
    }
    if let Some(o) = out.last_mut().filter(|o| o.until_lsl_time.is_none()) {
        o.until_lsl_time = stop_at;
    }
    out
}

/// The counts of a stop row's `lost while recording: source_gaps 0, corrupt 0, ...`.
fn parse_lost(detail: &str) -> Option<crate::status::DropCounts> {
    let (_, list) = detail.split_once("lost while recording: ")?;
    let mut d = crate::status::DropCounts::default();
    for item in list.split(", ") {
        let (k, v) = item.trim().split_once(' ')?;
        let v: u64 = v.parse().ok()?;
        match k {
            "source_gaps" => d.source_gaps = v,
            "corrupt" => d.corrupt = v,
            "buffer_held_by_writer" => d.buffer_held_by_writer = v,
            "too_large" => d.too_large = v,
            "writer_queue_full" => d.writer_queue_full = v,
            _ => {}
        }
    }
    Some(d)
}

/// What the events sidecar says: the trigger, the marks, whether it has a stop, and what
/// the stop row says was lost.
fn read_events(path: &Path) -> Events {
    let mut ev = Events::default();
    let Ok(mut rdr) = csv::ReaderBuilder::new().flexible(true).from_path(path) else {
        return ev;
    };
    for rec in rdr.records().flatten() {
        let field = |i: usize| rec.get(i).unwrap_or("");
        let secs = |i: usize| parse_ns(field(i)).map_or(0.0, |ns| ns as f64 / 1e9);
        match field(2) {
            "start" if ev.trigger.is_none() => ev.trigger = Some(field(3).to_string()),
            "mark" => ev.marks.push(Mark {
                lsl_time: secs(0),
                unix_time: secs(1),
                text: field(4).to_string(),
            }),
            "audio_start" => ev.audio_start = Some(secs(0)),
            kind @ ("camera_lost" | "camera_back") => {
                ev.camera
                    .push((secs(0), kind == "camera_lost", field(4).to_string()))
            }
            kind @ ("audio_lost" | "audio_back") => {
                ev.audio
                    .push((secs(0), kind == "audio_lost", field(4).to_string()))
            }
            kind @ ("under_voltage" | "power_ok") => {
                ev.power
                    .push((secs(0), kind == "under_voltage", field(4).to_string()))
            }
            kind @ ("cpu_hot" | "cpu_cool") => {
                ev.heat
                    .push((secs(0), kind == "cpu_hot", field(4).to_string()))
            }
            // A part that a file size limit ended was finished as at a stop.
            "stop" | "part_end" => {
                ev.stopped = true;
                ev.lost = parse_lost(field(4));
                if field(2) == "stop" {
                    ev.stop_at = Some(secs(0));
                }
            }
            _ => {}
        }
    }
    ev
}

/// Descriptions kept while a recording's files stay as they were: listing reads every
/// frames sidecar once, not on every request (a rig keeps hundreds of long takes).
/// A description is made again when any of its files is added, removed, grows, shrinks
/// or is written (its modification time), or is opened or closed for writing.
#[derive(Default)]
pub struct Described {
    by_key: parking_lot::Mutex<std::collections::HashMap<String, (Signature, RecordingInfo)>>,
    /// Descriptions made (not taken from the cache): for the tests.
    made: std::sync::atomic::AtomicU64,
}

/// What a description depends on: each file's path, length and modification time, and
/// whether any is being written.
#[derive(Clone, PartialEq)]
struct Signature {
    files: Vec<(PathBuf, u64, SystemTime)>,
    open: bool,
}

impl Described {
    /// `r` described, from the cache if its files have not changed.
    pub fn describe(&self, r: &StoredRecording, open: &[String]) -> RecordingInfo {
        let mut files: Vec<(PathBuf, u64, SystemTime)> = r
            .files
            .iter()
            .map(|p| {
                let m = std::fs::symlink_metadata(p).ok();
                (
                    p.clone(),
                    m.as_ref().map_or(0, |m| m.len()),
                    m.and_then(|m| m.modified().ok())
                        .unwrap_or(SystemTime::UNIX_EPOCH),
                )
            })
            .collect();
        files.sort();
        let sig = Signature {
            files,
            open: r
                .files
                .iter()
                .any(|p| open.iter().any(|o| Path::new(o) == p)),
        };
        if let Some((had, info)) = self.by_key.lock().get(&r.key) {
            // Open by another hindsight's hold (see `describe`) only while it holds it: one
            // killed right after the last look leaves its files as they were.
            let still = |p: &PathBuf| crate::writer::files::being_written(p);
            let held_before = info.open && !sig.open;
            if *had == sig && (!held_before || r.files.iter().any(still)) {
                return info.clone();
            }
        }
        let info = describe(r, open);
        self.made.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.by_key
            .lock()
            .insert(r.key.clone(), (sig, info.clone()));
        info
    }

    /// Forgets the recordings not in `keys` (deleted, or gone by retention).
    pub fn keep_only<'a>(&self, keys: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::HashSet<&str> = keys.into_iter().collect();
        self.by_key.lock().retain(|k, _| keep.contains(k.as_str()));
    }

    /// Descriptions made so far (not taken from the cache).
    pub fn made(&self) -> u64 {
        self.made.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The camera name of `<stem>_<camera>.<ext>`.
fn camera_of<'a>(stem: &str, name: &'a str, ext: &str) -> Option<&'a str> {
    name.strip_prefix(stem)?
        .strip_prefix('_')?
        .strip_suffix(ext)
}

/// Each camera's video files of recording `id` (the stem), parts in order: part 1 is
/// `<stem>_<camera>.mkv`, part N `<stem>_<camera>.partNNN.mkv` (`writer::files`). A name
/// that only looks like a part, with no part 1 beside it, is a camera of its own.
///
/// A camera that delivered no frame while the recording ran (lost the whole time) has no
/// video, only its events sidecar, which says why: it is here too, with the paths its
/// video would have had (they do not exist; its sidecars are found beside them).
fn camera_files(r: &StoredRecording, id: &str) -> BTreeMap<String, Vec<PathBuf>> {
    let named_as = |ext: &'static str| {
        r.files.iter().filter_map(move |p| {
            let name = p.file_name()?.to_str()?;
            Some((camera_of(id, name, ext)?, p))
        })
    };
    let mut named: Vec<(&str, PathBuf)> = named_as(".mkv").map(|(c, p)| (c, p.clone())).collect();
    let no_video: Vec<(&str, PathBuf)> = named_as(".events.csv")
        .filter(|(c, _)| {
            let base = crate::writer::files::split_part(c).0;
            !named
                .iter()
                .any(|(v, _)| crate::writer::files::split_part(v).0 == base)
        })
        .map(|(c, p)| (c, p.with_file_name(format!("{id}_{c}.mkv"))))
        .collect();
    named.extend(no_video);
    let mut by_camera: BTreeMap<String, Vec<(u32, PathBuf)>> = BTreeMap::new();
    for (name, path) in &named {
        let name = *name;
        let (camera, part) = match crate::writer::files::split_part(name) {
            (base, n) if n > 1 && named.iter().any(|(c, _)| *c == base) => (base, n),
            _ => (name, 1),
        };
        by_camera
            .entry(camera.to_string())
            .or_default()
            .push((part, path.clone()));
    }
    by_camera
        .into_iter()
        .map(|(camera, mut parts)| {
            parts.sort_by_key(|&(n, _)| n);
            (camera, parts.into_iter().map(|(_, p)| p).collect())
        })
        .collect()
}

/// The frames sidecars of `camera` in recording `id`, part after part.
fn camera_sidecars(r: &StoredRecording, id: &str, camera: &str) -> Vec<PathBuf> {
    camera_files(r, id)
        .remove(camera)
        .unwrap_or_default()
        .into_iter()
        .map(|mkv| mkv.with_extension("frames.csv"))
        .collect()
}

/// How many rows `camera`'s sidecars in recording `id` have, over all its parts, and the
/// LSL times (ns) of the first and the last: from their indexes, no row is read.
pub fn camera_span(r: &StoredRecording, id: &str, camera: &str) -> (usize, Option<(i64, i64)>) {
    let indexes: Vec<SidecarIndex> = camera_sidecars(r, id, camera)
        .iter()
        .filter_map(|p| SidecarIndex::of(p).ok())
        .filter(|i| i.rows > 0)
        .collect();
    let rows = indexes.iter().map(|i| i.rows).sum();
    let first = indexes.first().and_then(|i| i.first).map(|(_, ns)| ns);
    let last = indexes.last().and_then(|i| i.last).map(|(_, ns)| ns);
    (rows, first.zip(last))
}

/// Calls `each` with every row of `camera`'s sidecars in recording `id`, part after part
/// (where a file size limit made it go on in several), read line by line: an hour at
/// 536 fps is 1.9 million rows, and none is kept here.
pub fn each_camera_row(
    r: &StoredRecording,
    id: &str,
    camera: &str,
    mut each: impl FnMut(&FrameRow),
) {
    for p in camera_sidecars(r, id, camera) {
        let _ = each_frame_row(&p, &mut each);
    }
}

/// Puts a recording's description together from its files. `open` lists the paths
/// being written now.
pub fn describe(r: &StoredRecording, open: &[String]) -> RecordingInfo {
    let (day, id) = r.key.split_once('/').unwrap_or(("", &r.key));
    let mut files: Vec<FileEntry> = r
        .files
        .iter()
        .filter_map(|p| {
            let name = p.file_name()?.to_str()?.to_string();
            let bytes = std::fs::symlink_metadata(p).map_or(0, |m| m.len());
            Some(FileEntry {
                kind: kind_of(&name),
                name,
                bytes,
            })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let mut is_open = r
        .files
        .iter()
        .any(|p| open.iter().any(|o| Path::new(o) == p));
    let mut cameras = Vec::new();
    let (mut trigger, mut marks, mut audio_start) = (None, Vec::new(), None);
    let mut audio_outages = Vec::new();
    let (mut under_voltage, mut cpu_hot) = (Vec::new(), Vec::new());
    for (camera, parts) in camera_files(r, id) {
        let mut sidecars = Vec::new();
        let mut take = CameraTake {
            camera,
            parts: parts.len() as u32,
            ..CameraTake::default()
        };
        // Each part's marks, of the first camera that has any; its audio rows too.
        let mut camera_marks = Vec::new();
        let mut audio_rows = Vec::new();
        let (mut power_rows, mut heat_rows) = (Vec::new(), Vec::new());
        let mut lost = Some(crate::status::DropCounts::default());
        let (mut camera_rows, mut stop_at) = (Vec::new(), None);
        for mkv in &parts {
            // What describes the frames (how many, gaps, first and last), from one pass
            // over the sidecar that keeps no row, and reads on where it only grew.
            if let Ok(index) = SidecarIndex::of(&mkv.with_extension("frames.csv")) {
                sidecars.push(index);
            }
            let ev = read_events(&mkv.with_extension("events.csv"));
            if trigger.is_none() {
                trigger = ev.trigger;
            }
            camera_marks.extend(ev.marks);
            camera_rows.extend(ev.camera);
            audio_rows.extend(ev.audio);
            power_rows.extend(ev.power);
            heat_rows.extend(ev.heat);
            stop_at = ev.stop_at;
            audio_start = audio_start.or(ev.audio_start);
            // None: empty, as it is between its claim and its camera's first frame, or not
            // there (its camera delivered nothing); neither unfinished nor repaired.
            let unfinished = match std::fs::File::open(mkv) {
                Ok(f) if f.metadata().is_ok_and(|m| m.len() == 0) => None,
                Ok(mut f) => Some(mkv::read::is_unfinished(&mut f).unwrap_or(false)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(_) => Some(false),
            };
            // Being written by another hindsight sharing the root (another rig).
            is_open |= unfinished != Some(false) && crate::writer::files::being_written(mkv);
            // A file being written has no size yet: that is not a crash.
            take.unfinished |= unfinished == Some(true) && !is_open;
            take.repaired |= unfinished == Some(false) && !ev.stopped && !is_open;
            // Known only if every part says it (a crash ended none of them).
            lost = match (lost, ev.lost) {
                (Some(sum), Some(part)) => Some(sum.plus(&part)),
                _ => None,
            };
        }
        take.lost_while_recording = lost;
        take.outages = outages(&camera_rows, stop_at);
        if marks.is_empty() {
            marks = camera_marks;
        }
        if audio_outages.is_empty() {
            audio_outages = outages(&audio_rows, stop_at);
        }
        // The rig's, the same in every camera's file: the first that has any.
        if under_voltage.is_empty() {
            under_voltage = outages(&power_rows, stop_at);
        }
        if cpu_hot.is_empty() {
            cpu_hot = outages(&heat_rows, stop_at);
        }
        let mut before: Option<u64> = None;
        for part in sidecars.iter().filter(|p| p.rows > 0) {
            // Frames missing between one part's last row and the next one's first too.
            let across = match (before, part.first) {
                (Some(b), Some((first, _))) => first.saturating_sub(b).saturating_sub(1),
                _ => 0,
            };
            take.frames += part.rows as u64;
            take.missing_frames += across + part.missing;
            take.largest_gap = take.largest_gap.max(across).max(part.largest_gap);
            before = part.last_frame();
        }
        let first = sidecars.iter().find_map(|p| p.first);
        let last = sidecars.iter().rev().find_map(|p| p.last);
        if let (Some((a, a_ns)), Some((b, b_ns))) = (first, last) {
            take.first_frame = Some(a);
            take.last_frame = Some(b);
            take.first_lsl_time = Some(a_ns as f64 / 1e9);
            take.last_lsl_time = Some(b_ns as f64 / 1e9);
            take.duration_s = (b_ns - a_ns) as f64 / 1e9;
        }
        cameras.push(take);
    }
    cameras.sort_by(|a, b| a.camera.cmp(&b.camera));
    // A WAV a crash left without its sizes: unfinished too, though its video may be
    // finished (repaired alone, or a camera that made none).
    let wav_unfinished = !is_open
        && r.files.iter().any(|p| {
            finish::is_wav(p)
                && finish::is_unfinished(p) == Ok(true)
                && !crate::writer::files::being_written(p)
        });
    RecordingInfo {
        id: id.to_string(),
        day: day.to_string(),
        started: started_of(id),
        trigger,
        duration_s: cameras.iter().map(|c| c.duration_s).fold(0.0, f64::max),
        frames: cameras.iter().map(|c| c.frames).sum(),
        missing_frames: cameras.iter().map(|c| c.missing_frames).sum(),
        camera_losses: cameras.iter().map(|c| c.outages.len() as u64).sum(),
        audio_outages,
        under_voltage,
        cpu_hot,
        unfinished: wav_unfinished || cameras.iter().any(|c| c.unfinished),
        repaired: cameras.iter().any(|c| c.repaired),
        cameras,
        bytes: files.iter().map(|f| f.bytes).sum(),
        files,
        marks,
        audio_start_lsl_time: audio_start,
        open: is_open,
    }
}

/// Where a stem's last `YYYY-MM-DD_HH-MM-SS` starts (a `-NNN` after it, which made a name
/// unique, is not part of it).
fn stamp_at(stem: &str) -> Option<usize> {
    let shape = b"dddd-dd-dd_dd-dd-dd";
    let b = stem.as_bytes();
    (0..b.len().saturating_sub(shape.len() - 1))
        .rev()
        .find(|&i| {
            b[i..i + shape.len()].iter().zip(shape).all(|(&c, &s)| {
                if s == b'd' {
                    c.is_ascii_digit()
                } else {
                    c == s
                }
            })
        })
}

/// `YYYY-MM-DD HH:MM:SS` from a stem's `_YYYY-MM-DD_HH-MM-SS`.
fn started_of(stem: &str) -> String {
    match stamp_at(stem) {
        Some(i) => {
            let (date, time) = stem[i..i + 19].split_at(10);
            format!("{date} {}", time[1..].replace('-', ":"))
        }
        None => stem.to_string(),
    }
}

/// The recording `id` under `root`, if there is one. Looked for in the day folder its
/// name's date gives first (where hindsight puts it): the viewer asks for every frame it
/// shows, and a year of takes is thousands of files to list (60 ms a frame for 6,000
/// takes, listing them all).
pub fn find(root: &Path, id: &str) -> Option<StoredRecording> {
    let is_it = |r: &StoredRecording| r.key.split_once('/').is_some_and(|(_, stem)| stem == id);
    if let Some(day_name) = day_of_stem(id) {
        let day = root.join(&day_name);
        if std::fs::symlink_metadata(&day).is_ok_and(|m| m.is_dir()) {
            let mut found = BTreeMap::new();
            scan_day(&day, &day_name, &mut found);
            if let Some(r) = found.into_values().find(is_it) {
                return Some(r);
            }
        }
    }
    scan(root).into_iter().find(is_it)
}

/// The day folder (`YYYY_MM_DD`) of a recording's stem (`<prefix>_YYYY-MM-DD_HH-MM-SS`,
/// perhaps with `-N`): the date of its last such part.
fn day_of_stem(stem: &str) -> Option<String> {
    stamp_at(stem).map(|i| stem[i..i + 10].replace('-', "_"))
}

/// Why a frame could not be served.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("no recording `{0}`")]
    NoRecording(String),
    #[error("recording `{id}` has no camera `{camera}`")]
    NoCamera { id: String, camera: String },
    #[error("camera `{camera}` of `{id}` has no frames: none came while it recorded (its events file says why)")]
    NoFrames { id: String, camera: String },
    #[error("camera `{camera}` of `{id}` has no frame number {n} (it has {first}..={last})")]
    NoFrame {
        id: String,
        camera: String,
        n: u64,
        first: u64,
        last: u64,
    },
    #[error("frame {n} is in the sidecar but not in the file (it was cut by a crash)")]
    NotInFile { n: u64 },
    /// The recording's disk has not taken its frame yet, 2 s after its row.
    #[error("frame {n} is not written to the file yet (the disk is slow to take it): ask again")]
    NotYetWritten { n: u64 },
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: String },
}

/// A frame found in a recording, with its bytes as stored in the MKV.
#[derive(Clone, Debug)]
pub struct FoundFrame {
    pub row: FrameRow,
    /// Its position among the file's frames (0-based) and how many there are.
    pub position: usize,
    pub count: usize,
    /// The frame numbers before and after it in the file.
    pub prev: Option<u64>,
    pub next: Option<u64>,
    pub jpeg: Vec<u8>,
}

/// The JPEG of frame number `n` of `camera` in recording `id`, byte for byte as stored;
/// with `near`, of the first frame at or after `n` (the last if none is).
pub fn frame(
    root: &Path,
    id: &str,
    camera: &str,
    n: u64,
    near: bool,
) -> Result<FoundFrame, FrameError> {
    use std::io::{Read, Seek, SeekFrom};
    let r = find(root, id).ok_or_else(|| FrameError::NoRecording(id.to_string()))?;
    let parts = camera_files(&r, id)
        .remove(camera)
        .ok_or_else(|| FrameError::NoCamera {
            id: id.to_string(),
            camera: camera.to_string(),
        })?;
    let read_err = |p: &Path, e: &dyn std::fmt::Display| FrameError::Read {
        path: p.display().to_string(),
        cause: e.to_string(),
    };
    // Every part's sidecar, in order, with where its rows are (frame numbers rise from
    // one part to the next).
    let mut indexed = Vec::new();
    for mkv in &parts {
        let sidecar = mkv.with_extension("frames.csv");
        // A camera lost the whole time has no video and no frames sidecar: no frames.
        if !mkv.exists() && !sidecar.exists() {
            continue;
        }
        let index = SidecarIndex::of(&sidecar).map_err(|e| read_err(&sidecar, &e))?;
        if index.rows > 0 {
            indexed.push((mkv.as_path(), sidecar, index));
        }
    }
    let Some(last_part) = indexed.last() else {
        return Err(FrameError::NoFrames {
            id: id.to_string(),
            camera: camera.to_string(),
        });
    };
    let rows_at = |k: usize, from: usize, to: usize| {
        let (_, sidecar, index) = &indexed[k];
        index
            .rows_at(sidecar, from, to)
            .map_err(|e| read_err(sidecar, &e))
    };
    let first = indexed[0].2.first.map_or(0, |(frame, _)| frame);
    let last = last_part.2.last_frame().unwrap_or(0);
    // The part that holds it, and its position there: the first row at or after `n`.
    let (k, local) = match indexed
        .iter()
        .position(|(_, _, i)| i.last_frame().is_some_and(|l| l >= n))
    {
        Some(k) => {
            let (_, sidecar, index) = &indexed[k];
            let at = index
                .position_of(sidecar, n)
                .map_err(|e| read_err(sidecar, &e))?;
            (k, at)
        }
        None => (indexed.len() - 1, last_part.2.rows),
    };
    let k_rows = indexed[k].2.rows;
    let local = if near { local.min(k_rows - 1) } else { local };
    let around = rows_at(k, local.saturating_sub(1), local + 2)?;
    let row = around
        .get(usize::from(local > 0))
        .copied()
        .filter(|r| near || r.frame == n)
        .ok_or(FrameError::NoFrame {
            id: id.to_string(),
            camera: camera.to_string(),
            n,
            first,
            last,
        })?;
    let position = indexed[..k].iter().map(|(_, _, i)| i.rows).sum::<usize>() + local;
    let count = indexed.iter().map(|(_, _, i)| i.rows).sum();
    let prev = match local {
        0 => k.checked_sub(1).and_then(|p| indexed[p].2.last_frame()),
        _ => Some(around[0].frame),
    };
    let next = match around.last() {
        Some(r) if local + 1 < k_rows => Some(r.frame),
        _ if k + 1 < indexed.len() => rows_at(k + 1, 0, 1)?.first().map(|r| r.frame),
        _ => None,
    };
    let mkv = indexed[k].0;
    let mut file = std::fs::File::open(mkv).map_err(|e| read_err(mkv, &e))?;
    // A batch's rows are written just before its frames: in a file being recorded the
    // newest rows' frames may be a write behind them, and a busy disk (an SD card writing
    // back) holds a write for a while. Looked for again, less and less often, for 2 s.
    let mut waits = [5, 10, 20, 40, 80, 160, 320, 640, 725].into_iter();
    let at = loop {
        let index = mkv::read::ClusterIndex::read(&mut file).map_err(|e| read_err(mkv, &e))?;
        let unit = index.timestamp_unit_ns.max(1) as i64;
        match index.video_block(&mut file, row.pts_ns / unit) {
            Ok(Some(at)) => break at,
            Ok(None) if crate::writer::files::being_written(mkv) => match waits.next() {
                Some(ms) => std::thread::sleep(std::time::Duration::from_millis(ms)),
                None => return Err(FrameError::NotYetWritten { n }),
            },
            Ok(None) => return Err(FrameError::NotInFile { n }),
            Err(e) => return Err(read_err(mkv, &e)),
        }
    };
    let mut jpeg = vec![0; at.len as usize];
    file.seek(SeekFrom::Start(at.offset))
        .and_then(|_| file.read_exact(&mut jpeg))
        .map_err(|e| read_err(mkv, &e))?;
    Ok(FoundFrame {
        row,
        position,
        count,
        prev,
        next,
        jpeg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording of one camera: its frames sidecar with `frames` rows, and a video file.
    fn one_take(root: &Path, frames: u64) -> PathBuf {
        let video = root.join("2026_12_01/video");
        std::fs::create_dir_all(&video).unwrap();
        let csv = video.join("rec_2026-12-01_10-00-00_cam0.frames.csv");
        let mut text = String::from("frame,lsl_time,unix_time,pts_s,bytes,pre_trigger\n");
        for n in 0..frames {
            text.push_str(&format!(
                "{n},{}.0,{}.0,{}.0,1000,0\n",
                100 + n,
                1_700_000_000 + n,
                n
            ));
        }
        std::fs::write(&csv, text).unwrap();
        std::fs::write(video.join("rec_2026-12-01_10-00-00_cam0.mkv"), b"x").unwrap();
        csv
    }

    /// A libcamera camera's sidecar: the exposure columns are read, an empty cell as not
    /// reported; a six-column sidecar's rows have none.
    #[test]
    fn rows_with_exposure_columns_are_read_with_them() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("x.frames.csv");
        let row = "1,1.000000000,2.000000000,0.000000000,100,1";
        std::fs::write(
            &csv,
            format!(
                "{}{row},2000,2.75,1.125\n{row},,4,\n{row},2000",
                crate::writer::sidecar::FRAMES_HEADER_EXPOSURE
            ),
        )
        .unwrap();
        let said: Vec<Option<Exposure>> = read_frame_rows(&csv)
            .unwrap()
            .iter()
            .map(|r| r.exposure)
            .collect();
        let e = |time_us, analogue_gain, digital_gain| {
            Some(Exposure {
                time_us,
                analogue_gain,
                digital_gain,
            })
        };
        // The last row, cut by a crash, is left out.
        assert_eq!(
            said,
            [
                e(Some(2000), Some(2.75), Some(1.125)),
                e(None, Some(4.0), None)
            ]
        );
        std::fs::write(
            &csv,
            format!("{}{row}\n", crate::writer::sidecar::FRAMES_HEADER),
        )
        .unwrap();
        assert_eq!(read_frame_rows(&csv).unwrap()[0].exposure, None);
    }

    #[test]
    fn outages_pair_each_loss_with_its_return() {
        let row = |at: f64, lost: bool| (at, lost, format!("{at}"));
        let o = outages(
            &[
                // A return with no loss in the file: nothing.
                row(1.0, false),
                row(2.0, true),
                // Lost again while lost: the first loss holds.
                row(2.5, true),
                row(4.0, false),
                row(6.0, true),
            ],
            Some(7.0),
        );
        let spans: Vec<(f64, Option<f64>, bool)> = o
            .iter()
            .map(|o| (o.lost_lsl_time, o.until_lsl_time, o.came_back))
            .collect();
        assert_eq!(spans, [(2.0, Some(4.0), true), (6.0, Some(7.0), false)]);
        assert_eq!(o[0].why, "2");
        assert_eq!(outages(&[row(6.0, true)], None)[0].seconds(), None);
        assert!(outages(&[], Some(1.0)).is_empty());
    }

    #[test]
    fn a_recordings_parts_are_one_camera_and_its_frames_are_found_in_them() {
        let dir = tempfile::tempdir().unwrap();
        let video = dir.path().join("2026_12_01/video");
        std::fs::create_dir_all(&video).unwrap();
        let stem = "rec_2026-12-01_10-00-00";
        let lost = |gaps: u64| {
            format!(
                "lost while recording: source_gaps {gaps}, corrupt 0, buffer_held_by_writer 0, too_large 0, writer_queue_full 0"
            )
        };
        // name, frame numbers, events rows after the header and start row
        let files = [
            ("cam0", vec![0, 1, 2, 3, 4], vec![
                format!("101.0,1.0,mark,api: mark,first\n"),
                // Lost here, back in the next part.
                format!("102.5,2.5,camera_lost,camera: cam0,`prog`: the program exited\n"),
                format!("104.0,4.0,part_end,writer: file size limit,\"5 frames; continued in x; {}\"\n", lost(1)),
            ]),
            ("cam0.part002", vec![5, 6, 8], vec![
                format!("105.0,5.0,part_start,writer: file size limit,part 2\n"),
                format!("105.5,5.5,camera_back,camera: cam0,after 3.0 s without frames\n"),
                format!("106.0,6.0,mark,api: mark,second\n"),
                // Lost again, and not back by the stop.
                format!("107.25,7.25,camera_lost,camera: cam0,the stream closed\n"),
                format!("108.0,8.0,stop,writer: stop,\"3 frames; {}\"\n", lost(2)),
            ]),
            // Looks like a part, but there is no camera `odd` beside it.
            ("odd.part002", vec![0], vec![]),
        ];
        for (camera, frames, rows) in &files {
            let base = |ext: &str| video.join(format!("{stem}_{camera}.{ext}"));
            let mut csv = String::from(crate::writer::sidecar::FRAMES_HEADER);
            for n in frames {
                csv.push_str(&format!("{n},{}.0,{}.0,{n}.0,1000,0\n", 100 + n, n));
            }
            std::fs::write(base("frames.csv"), csv).unwrap();
            let mut ev = String::from(crate::writer::sidecar::EVENTS_HEADER);
            ev.push_str("103.0,3.0,start,api: start,recording 1\n");
            ev.extend(rows.iter().cloned());
            std::fs::write(base("events.csv"), ev).unwrap();
            std::fs::write(base("mkv"), b"x").unwrap();
        }
        let r = &scan(dir.path())[0];
        let info = describe(r, &[]);
        let names: Vec<&str> = info.cameras.iter().map(|c| c.camera.as_str()).collect();
        assert_eq!(names, ["cam0", "odd.part002"]);
        let cam = &info.cameras[0];
        assert_eq!((cam.parts, cam.frames, cam.missing_frames), (2, 8, 1));
        assert_eq!((cam.first_frame, cam.last_frame), (Some(0), Some(8)));
        assert_eq!(cam.duration_s, 8.0);
        assert!(!cam.repaired && !cam.unfinished, "{cam:?}");
        assert_eq!(cam.lost_while_recording.clone().unwrap().source_gaps, 3);
        // The camera's losses over both parts: one back in the second part, one still
        // lost at the stop.
        let spans: Vec<(f64, Option<f64>, bool, &str)> = cam
            .outages
            .iter()
            .map(|o| {
                (
                    o.lost_lsl_time,
                    o.until_lsl_time,
                    o.came_back,
                    o.why.as_str(),
                )
            })
            .collect();
        assert_eq!(
            spans,
            [
                (102.5, Some(105.5), true, "`prog`: the program exited"),
                (107.25, Some(108.0), false, "the stream closed"),
            ]
        );
        assert_eq!(info.camera_losses, 2);
        // A part a crash ended: what was lost is not known for the camera.
        let last_events = video.join(format!("{stem}_cam0.part002.events.csv"));
        let text = std::fs::read_to_string(&last_events).unwrap();
        let cut: String = text
            .lines()
            .filter(|l| !l.contains(",stop,"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&last_events, cut).unwrap();
        let cam = describe(r, &[]).cameras.remove(0);
        assert_eq!(cam.lost_while_recording, None);
        // Still lost when a crash ended it: how long is not known.
        assert_eq!(cam.outages[1].until_lsl_time, None);
        assert_eq!(cam.outages[1].seconds(), None);
        assert_eq!(cam.outages[0].seconds(), Some(3.0));
        assert!(cam.repaired, "finished, but not by a stop");
        std::fs::write(&last_events, text).unwrap();
        let texts: Vec<&str> = info.marks.iter().map(|m| m.text.as_str()).collect();
        assert_eq!(texts, ["first", "second"]);
        // A frame of the second part is looked up there (its MKV is not one, so the
        // error names the part's file).
        match frame(dir.path(), stem, "cam0", 6, false) {
            Err(FrameError::Read { path, .. }) => {
                assert!(path.ends_with("_cam0.part002.mkv"), "{path}")
            }
            other => panic!("{other:?}"),
        }
        match frame(dir.path(), stem, "cam0", 7, false) {
            Err(FrameError::NoFrame { first, last, .. }) => assert_eq!((first, last), (0, 8)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_recording_is_found_in_its_days_folder_or_wherever_it_is() {
        assert_eq!(
            day_of_stem("rec_2026-12-01_10-00-00").as_deref(),
            Some("2026_12_01")
        );
        assert_eq!(
            day_of_stem("lab_2026-01-02_03-04-05_2026-12-01_10-00-00-2").as_deref(),
            Some("2026_12_01")
        );
        assert_eq!(day_of_stem("rec_2026-12-01"), None);
        let dir = tempfile::tempdir().unwrap();
        let take = |day: &str, stem: &str| {
            let video = dir.path().join(day).join("video");
            std::fs::create_dir_all(&video).unwrap();
            std::fs::write(video.join(format!("{stem}_cam0.mkv")), b"x").unwrap();
            std::fs::write(video.join(format!("{stem}_cam0.frames.csv")), b"").unwrap();
        };
        take("2026_12_01", "rec_2026-12-01_10-00-00");
        take("2026_12_01", "rec_2026-12-01_10-00-00-2");
        // Started a second before midnight by one clock, filed under the next day.
        take("2026_12_02", "rec_2026-12-01_23-59-59");
        for (id, key) in [
            (
                "rec_2026-12-01_10-00-00",
                "2026_12_01/rec_2026-12-01_10-00-00",
            ),
            (
                "rec_2026-12-01_10-00-00-2",
                "2026_12_01/rec_2026-12-01_10-00-00-2",
            ),
            (
                "rec_2026-12-01_23-59-59",
                "2026_12_02/rec_2026-12-01_23-59-59",
            ),
        ] {
            let r = find(dir.path(), id).unwrap_or_else(|| panic!("{id}"));
            assert_eq!(r.key, key);
            assert_eq!(r.files.len(), 2, "{id}: {:?}", r.files);
        }
        for id in ["rec_2026-12-01_10-00-01", "rec", "../2026_12_01", ""] {
            assert!(find(dir.path(), id).is_none(), "{id}");
        }
    }

    #[test]
    fn a_description_is_kept_until_a_file_changes_or_is_closed() {
        let dir = tempfile::tempdir().unwrap();
        let csv = one_take(dir.path(), 3);
        let cache = Described::default();
        let list = |open: &[String]| -> Vec<RecordingInfo> {
            scan(dir.path())
                .iter()
                .map(|r| cache.describe(r, open))
                .collect()
        };
        let first = list(&[]);
        assert_eq!(first.len(), 1);
        assert_eq!(cache.made(), 1);
        assert_eq!(list(&[]), first);
        assert_eq!(cache.made(), 1, "unchanged files are not read again");
        // A row more in the sidecar: described again, with it.
        let mut text = std::fs::read_to_string(&csv).unwrap();
        text.push_str("3,103.0,1700000003.0,3.0,1000,0\n");
        std::fs::write(&csv, text).unwrap();
        let second = list(&[]);
        assert_eq!(cache.made(), 2);
        assert_ne!(second, first);
        // Being written now: described again (open), and again once closed.
        let open = vec![csv.display().to_string()];
        let third = list(&open);
        assert_eq!(cache.made(), 3);
        assert_ne!(third, second);
        assert_eq!(list(&[]), second);
        assert_eq!(cache.made(), 4);
        cache.keep_only([]);
        assert!(cache.by_key.lock().is_empty());
    }

    /// Another hindsight (another rig sharing the root) writes a recording: listed open, not
    /// unfinished; killed with no write since the last look, unfinished at the next.
    #[test]
    fn a_recording_held_by_another_recorder_is_open_until_it_is_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let csv = one_take(dir.path(), 3);
        let mkv = csv.with_file_name("rec_2026-12-01_10-00-00_cam0.mkv");
        std::fs::remove_file(&mkv).unwrap();
        // An EBML header (DocType matroska) and a Segment of unknown size: a file whose
        // recording has not ended.
        let mut bytes = vec![0x1A, 0x45, 0xDF, 0xA3, 0x8B, 0x42, 0x82, 0x88];
        bytes.extend_from_slice(b"matroska");
        bytes.extend_from_slice(&[0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF]);
        bytes.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
        let writer = crate::writer::files::create_new(&mkv).unwrap();
        std::io::Write::write_all(&mut &writer, &bytes).unwrap();
        let cache = Described::default();
        let look = || cache.describe(&scan(dir.path())[0], &[]);
        let live = look();
        assert!(live.open && !live.unfinished, "{live:?}");
        assert_eq!(look(), live);
        drop(writer);
        let left = look();
        assert!(!left.open && left.unfinished, "{left:?}");
    }

    /// A camera's MKV that is still empty (claimed when its recording started, waiting
    /// for the camera's first frame): open while a recorder holds it, and never called
    /// repaired (there is no stop row) nor unfinished, which `repair` cannot help.
    #[test]
    fn an_empty_claimed_file_is_neither_repaired_nor_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let csv = one_take(dir.path(), 0);
        let mkv = csv.with_file_name("rec_2026-12-01_10-00-00_cam0.mkv");
        std::fs::remove_file(&mkv).unwrap();
        let writer = crate::writer::files::create_new(&mkv).unwrap();
        let cache = Described::default();
        let look = || cache.describe(&scan(dir.path())[0], &[]);
        let held = look();
        let cam = &held.cameras[0];
        assert!(held.open && !cam.repaired && !cam.unfinished, "{held:?}");
        drop(writer);
        let left = look();
        let cam = &left.cameras[0];
        assert!(!left.open && !cam.repaired && !cam.unfinished, "{left:?}");
    }

    /// A WAV a crash left without its sizes makes its recording unfinished, though its
    /// video was finished (`hindsight repair` given the video alone); finished, it is not.
    #[test]
    fn a_recording_whose_wav_a_crash_cut_is_unfinished_until_the_wav_is_repaired() {
        use crate::audio::wav::{Durability, WavOutput};
        let dir = tempfile::tempdir().unwrap();
        one_take(dir.path(), 3);
        let audio = dir.path().join("2026_12_01/audio");
        std::fs::create_dir_all(&audio).unwrap();
        let wav = audio.join("rec_2026-12-01_10-00-00.wav");
        let policy = Durability::for_fsync_interval(None);
        let mut w =
            WavOutput::create(&wav, 8000, 1, crate::audio::SampleFormat::S16, policy).unwrap();
        w.write(&[0.1; 4000]).unwrap();
        w.finish().unwrap();
        let cache = Described::default();
        let look = || cache.describe(&scan(dir.path())[0], &[]);
        assert!(!look().unfinished, "a finished WAV");
        // Samples after the header's last update, as a crash leaves them.
        let mut f = std::fs::OpenOptions::new().append(true).open(&wav).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 1000]).unwrap();
        drop(f);
        let cut = look();
        assert!(cut.unfinished && !cut.open, "{cut:?}");
        assert!(!cut.cameras[0].unfinished, "the video is not the one cut");
        // Being written (by this recorder): open, not unfinished.
        let live = cache.describe(&scan(dir.path())[0], &[wav.display().to_string()]);
        assert!(live.open && !live.unfinished, "{live:?}");
        let said = finish::finish_file(&wav).unwrap();
        assert!(said.starts_with("repaired: 4500 sample frames"), "{said}");
        assert!(!look().unfinished);
    }

    #[test]
    fn a_camera_lost_the_whole_take_is_listed_with_no_frames_and_why() {
        let dir = tempfile::tempdir().unwrap();
        let csv = one_take(dir.path(), 10);
        // The other camera made no video: only its events file, as the writer leaves it.
        let events = csv.with_file_name("rec_2026-12-01_10-00-00_side.events.csv");
        std::fs::write(
            &events,
            "lsl_time,unix_time,event,source,detail\n\
             102.0,1700000002.0,start,api: start,recording 1\n\
             100.0,1700000000.0,camera_lost,camera: side,lost when this recording began: unplugged\n\
             109.0,1700000009.0,stop,writer: api,\"0 frames; lost while recording: source_gaps 0, corrupt 0, buffer_held_by_writer 0, too_large 0, writer_queue_full 0\"\n",
        )
        .unwrap();
        let info = describe(&scan(dir.path())[0], &[]);
        let names: Vec<&str> = info.cameras.iter().map(|c| c.camera.as_str()).collect();
        assert_eq!(names, ["cam0", "side"], "{info:?}");
        let side = &info.cameras[1];
        assert_eq!((side.frames, side.parts), (0, 1), "{side:?}");
        assert!(!side.unfinished && !side.repaired, "{side:?}");
        assert_eq!(side.outages.len(), 1);
        assert_eq!(side.outages[0].seconds(), Some(9.0));
        assert!(!side.outages[0].came_back);
        assert!(side.outages[0].why.ends_with("unplugged"));
        assert_eq!((info.frames, info.camera_losses), (10, 1));
        assert_eq!(info.trigger.as_deref(), Some("api: start"));
        assert!(info.audio_outages.is_empty(), "{info:?}");
        // Its frames: none, said as such, not as a file that cannot be read.
        let err = frame(dir.path(), &info.id, "side", 0, true).unwrap_err();
        assert!(matches!(err, FrameError::NoFrames { .. }), "{err}");
        assert!(
            frame(dir.path(), &info.id, "cam0", 3, false).is_err(),
            "a fake mkv"
        );
        // A rig of that one camera: the recording is its events file alone, still listed.
        for f in ["cam0.frames.csv", "cam0.mkv"] {
            std::fs::remove_file(csv.with_file_name(format!("rec_2026-12-01_10-00-00_{f}")))
                .unwrap();
        }
        let alone = describe(&scan(dir.path())[0], &[]);
        assert_eq!(alone.cameras.len(), 1, "{alone:?}");
        assert_eq!(alone.cameras[0].camera, "side");
        assert_eq!((alone.frames, alone.camera_losses), (0, 1));
        assert!(!alone.unfinished && !alone.repaired, "{alone:?}");
        // Crashed while lost (no stop row): not known how long, and nothing to repair.
        std::fs::write(
            &events,
            "lsl_time,unix_time,event,source,detail\n\
             100.0,1700000000.0,camera_lost,camera: side,unplugged\n",
        )
        .unwrap();
        let crashed = describe(&scan(dir.path())[0], &[]);
        let side = &crashed.cameras[0];
        assert!(!side.unfinished && !side.repaired, "{side:?}");
        assert_eq!(side.outages[0].seconds(), None);
    }

    /// A take of 10 frames whose events file holds `rows` (after its header), described.
    fn with_events(rows: &str) -> RecordingInfo {
        let dir = tempfile::tempdir().unwrap();
        let csv = one_take(dir.path(), 10);
        std::fs::write(
            csv.with_file_name("rec_2026-12-01_10-00-00_cam0.events.csv"),
            format!("lsl_time,unix_time,event,source,detail\n{rows}"),
        )
        .unwrap();
        describe(&scan(dir.path())[0], &[])
    }

    #[test]
    fn the_audio_losses_are_read_from_the_events_rows() {
        let info = with_events(
            "100.0,1700000000.0,start,api: start,recording 1\n\
             100.0,1700000000.0,audio_start,audio: wav,rec.wav: its first sample (48000 Hz)\n\
             102.5,1700000002.5,audio_lost,audio: input,no audio for 5 s\n\
             106.0,1700000006.0,audio_back,audio: input,after 3.5 s without audio\n\
             107.0,1700000007.0,audio_lost,audio: input,audio device lost: gone\n\
             109.0,1700000009.0,stop,writer: api,0 frames\n",
        );
        let spans: Vec<(f64, Option<f64>, bool)> = info
            .audio_outages
            .iter()
            .map(|o| (o.lost_lsl_time, o.until_lsl_time, o.came_back))
            .collect();
        assert_eq!(
            spans,
            [(102.5, Some(106.0), true), (107.0, Some(109.0), false)]
        );
        assert_eq!(info.audio_outages[1].why, "audio device lost: gone");
        assert_eq!(info.camera_losses, 0, "the microphone is not a camera");
        assert_eq!(info.audio_start_lsl_time, Some(100.0));
    }

    #[test]
    fn the_rigs_power_and_heat_are_read_from_the_events_rows() {
        let info = with_events(
            "100.0,1700000000.0,start,api: start,recording 1\n\
             101.0,1700000001.0,under_voltage,power: rpi_volt,the power supply gives too little\n\
             103.0,1700000003.0,cpu_hot,power: thermal,cpu-thermal at 81 °C\n\
             131.0,1700000031.0,power_ok,power: rpi_volt,none for 30 s (seen at one look)\n\
             140.0,1700000040.0,stop,writer: api,0 frames\n",
        );
        let span = |o: &Outage| (o.lost_lsl_time, o.until_lsl_time, o.came_back);
        let uv: Vec<_> = info.under_voltage.iter().map(span).collect();
        assert_eq!(uv, [(101.0, Some(131.0), true)]);
        // Still hot at the stop.
        let hot: Vec<_> = info.cpu_hot.iter().map(span).collect();
        assert_eq!(hot, [(103.0, Some(140.0), false)]);
        assert_eq!(info.cpu_hot[0].why, "cpu-thermal at 81 °C");
        assert!(info.audio_outages.is_empty() && info.camera_losses == 0);
    }

    #[test]
    fn the_stop_row_gives_what_was_lost_by_cause() {
        let d = parse_lost(
            "802 frames; lost while recording: source_gaps 1, corrupt 2, buffer_held_by_writer 3, too_large 4, writer_queue_full 5",
        )
        .unwrap();
        assert_eq!(
            (
                d.source_gaps,
                d.corrupt,
                d.buffer_held_by_writer,
                d.too_large,
                d.writer_queue_full
            ),
            (1, 2, 3, 4, 5)
        );
        assert_eq!(
            parse_lost("802 frames"),
            None,
            "older files said only the frames"
        );
    }

    #[test]
    fn the_start_time_is_read_from_the_name() {
        assert_eq!(started_of("rec_2026-12-02_14-38-18"), "2026-12-02 14:38:18");
        assert_eq!(
            started_of("rec_2026-12-02_14-38-18-002"),
            "2026-12-02 14:38:18"
        );
        assert_eq!(
            started_of("my_lab_2026-01-31_09-05-07"),
            "2026-01-31 09:05:07"
        );
    }

    #[test]
    fn our_file_names_give_their_recording() {
        let cases = [
            (
                "rec_2026-12-01_10-00-00_top.mkv",
                Some("rec_2026-12-01_10-00-00"),
            ),
            (
                "rec_2026-12-01_10-00-00_top.frames.csv",
                Some("rec_2026-12-01_10-00-00"),
            ),
            (
                "rec_2026-12-01_10-00-00_my_cam.events.csv",
                Some("rec_2026-12-01_10-00-00"),
            ),
            (
                "rec_2026-12-01_10-00-00.wav",
                Some("rec_2026-12-01_10-00-00"),
            ),
            (
                "rec_2026-12-01_10-00-00-2_top.mkv",
                Some("rec_2026-12-01_10-00-00-2"),
            ),
            (
                "rec_2026-12-01_10-00-00-2.wav",
                Some("rec_2026-12-01_10-00-00-2"),
            ),
            (
                "my_lab_2026-12-01_10-00-00_top.mkv",
                Some("my_lab_2026-12-01_10-00-00"),
            ),
            // Not ours: other extensions, other names.
            ("rec_2026-12-01_10-00-00_top.mp4", None),
            ("notes.txt", None),
            ("analysis.csv", None),
            ("2026-12-01_10-00-00.mkv", None),
            ("rec_2026-12-01_10-00_top.mkv", None),
        ];
        for (name, want) in cases {
            assert_eq!(recording_stem(name), want, "{name}");
        }
        assert_eq!(
            recording_key(Path::new(
                "/r/2026_12_01/video/rec_2026-12-01_10-00-00_top.mkv"
            ))
            .unwrap(),
            "2026_12_01/rec_2026-12-01_10-00-00"
        );
        assert!(is_day_folder("2026_12_01"));
        assert!(!is_day_folder("2026-12-01"));
        assert!(!is_day_folder("backup"));
    }
}
