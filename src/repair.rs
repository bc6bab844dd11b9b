//! `hindsight repair FILE`: finishes recordings that a crash or power cut left unfinished,
//! and finds them at start-up.
//!
//! An MKV (with its sidecars) is finished by `writer::repair`; a WAV file gets the sizes of
//! the data actually in it (`audio::wav::repair`; RF64's sizes past 4 GiB), checked with
//! an independent reader (`hound`) where it is a RIFF file.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use crate::recordings::finish::{finish_file, is_unfinished};
use crate::writer::files::being_written;

/// Recordings under `<root>/*/` that a crash left unfinished: Matroska files in `video/`
/// whose Segment was never finalized, and WAV files in `audio/` whose header's sizes do
/// not match their data. Files that a running hindsight is writing are not among them.
pub fn find_unfinished(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for (p, _) in recording_files(root) {
        if being_written(&p) {
            continue;
        }
        match is_unfinished(&p) {
            Ok(true) => found.push(p),
            Ok(false) => {}
            Err(e) => tracing::warn!("cannot read {}: {e}", p.display()),
        }
    }
    found.sort();
    found
}

/// The recordings' MKVs (`<root>/*/video/*.mkv`, true) and WAVs (`<root>/*/audio/*.wav`,
/// false), in no order.
fn recording_files(root: &Path) -> impl Iterator<Item = (PathBuf, bool)> {
    let days = fs::read_dir(root).into_iter().flatten().flatten();
    days.flat_map(|day| day_files(&day.path()))
}

/// One day folder's MKVs (`video/*.mkv`, true) and WAVs (`audio/*.wav`, false).
fn day_files(day: &Path) -> impl Iterator<Item = (PathBuf, bool)> {
    let day = day.to_path_buf();
    [("video", "mkv"), ("audio", "wav")]
        .into_iter()
        .flat_map(move |(folder, ext)| {
            let files = fs::read_dir(day.join(folder));
            files.into_iter().flatten().flatten().filter_map(move |f| {
                let p = f.path();
                p.extension()
                    .is_some_and(|e| e == ext)
                    .then_some((p, ext == "mkv"))
            })
        })
}

/// The videos and WAVs of hindsight's recordings in a folder that `repair` was given: the
/// recordings root, a day folder, or a day's `video` or `audio` folder. Sorted; other
/// files (notes, analyses) are not among them, nor files behind links.
fn in_folder(dir: &Path) -> Vec<PathBuf> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let name = dir
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let found: Vec<PathBuf> = match (name.as_str(), dir.parent()) {
        (kind @ ("video" | "audio"), Some(day)) => day_files(day)
            .filter(|(p, is_mkv)| *is_mkv == (kind == "video") && p.parent() == Some(&dir))
            .map(|(p, _)| p)
            .collect(),
        (day, _) if crate::recordings::is_day_folder(day) => {
            day_files(&dir).map(|(p, _)| p).collect()
        }
        _ => recording_files(&dir).map(|(p, _)| p).collect(),
    };
    let mut found: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| {
            fs::symlink_metadata(p).is_ok_and(|m| m.is_file())
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(crate::recordings::recording_stem)
                    .is_some()
        })
        .collect();
    found.sort();
    found
}

/// How long a claimed file may stay empty before start-up takes it for a crash's leftover:
/// another hindsight sharing the root writes its first bytes within milliseconds of its
/// claim, and systemd restarts a crashed recorder after 5 s.
pub const CLAIM_GRACE: Duration = Duration::from_secs(5);

/// Removes what a crash left of recordings that had written nothing yet, and returns the
/// paths removed. A recording claims its files (creates them empty) when it starts; a
/// camera's MKV gets its first bytes with the camera's first frame and the WAV its header
/// when its writer opens. A crash in between leaves empty files that hold nothing of the
/// recording: `repair` can do nothing with them, and the recordings list would show an
/// empty take. So, under `<root>/*/`, an empty MKV goes with its frame sidecar and its
/// events sidecar if that is empty (as a clean stop removes the MKV and frame sidecar of a
/// camera that gave no frame, keeping the events that say why), and an empty WAV goes. The
/// frame sidecar has the header at most, or the rows of a first batch whose frames never
/// followed (a batch's rows are written before its frames): rows of no frame. Left alone: files a running recorder holds, files claimed within
/// [`CLAIM_GRACE`] (or dated in the future), and anything with a byte in it.
pub fn remove_never_written(root: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let left_empty = |p: &Path| {
        fs::metadata(p).is_ok_and(|m| {
            m.is_file()
                && m.len() == 0
                && m.modified()
                    .ok()
                    .and_then(|t| SystemTime::now().duration_since(t).ok())
                    .is_some_and(|age| age >= CLAIM_GRACE)
        }) && !being_written(p)
    };
    let mut remove = |p: PathBuf| match fs::remove_file(&p) {
        Ok(()) => removed.push(p),
        Err(e) => tracing::warn!("cannot remove the empty file {}: {e}", p.display()),
    };
    for (p, is_mkv) in recording_files(root) {
        if !left_empty(&p) {
            continue;
        }
        if is_mkv {
            let rows = p.with_extension("frames.csv");
            if rows.is_file() && !being_written(&rows) {
                remove(rows);
            }
            let events = p.with_extension("events.csv");
            if fs::metadata(&events).is_ok_and(|m| m.len() == 0) && !being_written(&events) {
                remove(events);
            }
        }
        remove(p);
    }
    removed.sort();
    removed
}

/// The video a sidecar (`X.frames.csv`, `X.events.csv`) belongs to (`X.mkv`).
fn video_of_sidecar(p: &Path) -> Option<PathBuf> {
    let name = p.file_name()?.to_str()?;
    let base = name
        .strip_suffix(".frames.csv")
        .or_else(|| name.strip_suffix(".events.csv"))?;
    Some(p.with_file_name(format!("{base}.mkv")))
}

pub fn run(given: &[PathBuf]) -> ExitCode {
    let mut failed = false;
    // A folder (the recordings root, a day, its video or audio folder): the recordings in it.
    let mut files = Vec::new();
    for p in given {
        if !fs::metadata(p).is_ok_and(|m| m.is_dir()) {
            files.push(p.clone());
            continue;
        }
        let found = in_folder(p);
        if found.is_empty() {
            eprintln!(
                "hindsight repair: {} holds no recording of hindsight's (<root>/<YYYY_MM_DD>/\
                 video/*.mkv and audio/*.wav): give the recordings root, a day's folder or files",
                p.display()
            );
            failed = true;
        } else {
            println!(
                "{}: a folder: its {} video and audio file(s)",
                p.display(),
                found.len()
            );
        }
        files.extend(found);
    }
    let files = &files;
    for p in files {
        // A folder's files (`repair <day>/video/*`) include the sidecars, which are
        // repaired with their video.
        if let Some(video) = video_of_sidecar(p) {
            let events = p.to_string_lossy().ends_with(".events.csv");
            if events && !video.exists() {
                // A camera that delivered no frame while it recorded: no video was made
                // (or a crash's empty one was removed at start-up), its events say why.
                println!(
                    "{}: the events of a camera that made no video in this recording (no \
                     frame came while it recorded; its rows say why): nothing to repair",
                    p.display()
                );
            } else if files.contains(&video) {
                println!(
                    "{}: a sidecar of {}, repaired with it",
                    p.display(),
                    video.display()
                );
            } else {
                eprintln!(
                    "hindsight repair: {} is a sidecar: it is repaired with its video, \
                     `hindsight repair {}`",
                    p.display(),
                    video.display()
                );
                failed = true;
            }
            continue;
        }
        match finish_file(p) {
            Ok(said) => println!("{}: {said}", p.display()),
            Err(e) => {
                eprintln!("hindsight repair: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{File, OpenOptions};

    #[test]
    fn unfinished_recordings_are_found_by_their_headers() {
        use crate::audio::wav::{Durability, WavOutput};
        let tmp = tempfile::tempdir().unwrap();
        let audio = tmp.path().join("2026_01_02").join("audio");
        fs::create_dir_all(&audio).unwrap();
        let done = audio.join("rec_a.wav");
        let cut = audio.join("rec_b.wav");
        for p in [&done, &cut] {
            let policy = Durability::for_fsync_interval(None);
            let mut w =
                WavOutput::create(p, 8000, 1, crate::audio::SampleFormat::S16, policy).unwrap();
            w.write(&[0.1; 4000]).unwrap();
            w.finish().unwrap();
        }
        // Audio after the header's last update, as a crash leaves it.
        let mut f = OpenOptions::new().append(true).open(&cut).unwrap();
        std::io::Write::write_all(&mut f, &[0u8; 1000]).unwrap();
        fs::write(audio.join("notes.txt"), b"not a recording").unwrap();
        assert_eq!(find_unfinished(tmp.path()), vec![cut]);
    }

    #[test]
    fn a_folder_given_is_the_recordings_in_it() {
        let tmp = tempfile::tempdir().unwrap();
        let day = tmp.path().join("2026_01_02");
        let (video, audio) = (day.join("video"), day.join("audio"));
        fs::create_dir_all(&video).unwrap();
        fs::create_dir_all(&audio).unwrap();
        let mkv = video.join("rec_2026-01-02_10-00-00_cam.mkv");
        let wav = audio.join("rec_2026-01-02_10-00-00.wav");
        for f in [&mkv, &wav] {
            fs::write(f, b"x").unwrap();
        }
        // Not among them: sidecars (repaired with their video), notes, a link, a file of
        // another name.
        fs::write(video.join("rec_2026-01-02_10-00-00_cam.events.csv"), b"x").unwrap();
        fs::write(video.join("notes.mkv"), b"x").unwrap();
        fs::write(audio.join("take.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(&mkv, video.join("rec_2026-01-02_10-00-01_cam.mkv")).unwrap();
        let canon = |p: &PathBuf| p.canonicalize().unwrap();
        let both = vec![canon(&wav), canon(&mkv)];
        assert_eq!(in_folder(tmp.path()), both);
        assert_eq!(in_folder(&day), both);
        assert_eq!(in_folder(&video), vec![canon(&mkv)]);
        assert_eq!(in_folder(&audio), vec![canon(&wav)]);
        assert_eq!(
            in_folder(&video.join("..")),
            both,
            "the day, by another name"
        );
        assert!(in_folder(&tmp.path().join("nothing")).is_empty());
    }

    /// Empty files dated `age` ago under `dir`, named `names`.
    fn empty_files(dir: &Path, names: &[&str], age: Duration) -> Vec<PathBuf> {
        fs::create_dir_all(dir).unwrap();
        names
            .iter()
            .map(|n| {
                let p = dir.join(n);
                let f = File::create(&p).unwrap();
                f.set_modified(SystemTime::now() - age).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn what_a_crash_left_empty_is_removed_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let day = tmp.path().join("2026_01_02");
        let (video, audio) = (day.join("video"), day.join("audio"));
        let old = Duration::from_secs(60);
        // A crash between the claim and the first write: every file empty.
        let mut gone = empty_files(
            &video,
            &[
                "rec_a_cam.mkv",
                "rec_a_cam.frames.csv",
                "rec_a_cam.events.csv",
            ],
            old,
        );
        gone.extend(empty_files(&audio, &["rec_a.wav"], old));
        // A camera that gave no frame: its frame sidecar has its header only, its events
        // say what happened, and are kept.
        gone.extend(empty_files(&video, &["rec_b_cam.mkv"], old));
        let rows = video.join("rec_b_cam.frames.csv");
        fs::write(&rows, crate::writer::sidecar::FRAMES_HEADER).unwrap();
        gone.push(rows);
        // The same of a libcamera camera, whose sidecar has the exposure columns.
        gone.extend(empty_files(&video, &["rec_b_pi.mkv"], old));
        let rows = video.join("rec_b_pi.frames.csv");
        fs::write(&rows, crate::writer::sidecar::FRAMES_HEADER_EXPOSURE).unwrap();
        gone.push(rows);
        // Killed between the first batch's rows and its frames: rows of no frame.
        gone.extend(empty_files(&video, &["rec_f_cam.mkv"], old));
        let rows = video.join("rec_f_cam.frames.csv");
        fs::write(
            &rows,
            format!(
                "{}7,1.0,2.0,0.0,100,1\n",
                crate::writer::sidecar::FRAMES_HEADER
            ),
        )
        .unwrap();
        gone.push(rows);
        let events = video.join("rec_b_cam.events.csv");
        fs::write(
            &events,
            "lsl_time,unix_time,event,source,detail\n1,2,start,api,x\n",
        )
        .unwrap();
        // Claimed a moment ago (another recorder sharing the root, about to write).
        let fresh = empty_files(&video, &["rec_c_cam.mkv"], Duration::ZERO);
        // Held by a recorder that writes it (a camera lost since the recording started).
        let held_path = video.join("rec_d_cam.mkv");
        let held = crate::writer::files::create_new(&held_path).unwrap();
        held.set_modified(SystemTime::now() - old).unwrap();
        // A file with data, and one that is not a recording.
        let kept = video.join("rec_e_cam.mkv");
        fs::write(&kept, [0x1a, 0x45, 0xdf, 0xa3]).unwrap();
        let other = empty_files(&video, &["notes.txt"], old);

        gone.sort();
        assert_eq!(remove_never_written(tmp.path()), gone);
        for p in &gone {
            assert!(!p.exists(), "{} is still there", p.display());
        }
        for p in [&events, &fresh[0], &held_path, &kept, &other[0]] {
            assert!(p.exists(), "{} was removed", p.display());
        }
        // Once its recorder lets go of it (a crash), it is a leftover like the others.
        drop(held);
        assert_eq!(remove_never_written(tmp.path()), vec![held_path]);
    }
}
