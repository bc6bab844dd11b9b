//! Frame and recording numbers that never repeat, per rig and camera, across restarts and
//! crashes (`design/time.md`).
//!
//! A frame number is what ties a video frame to its LSL sample and its sidecar row; a
//! recording number names a file's recording in its tags. If either restarted with the
//! process, one LabRecorder stream would hold the same frame number twice and two files
//! would both be "recording 1". So the numbers in use are reserved ahead in a small state
//! file, `<root>/.hindsight/<rig>.numbers.json`, written crash-safely (a new file,
//! `fdatasync`, `rename` over the old one, `fsync` of the folder):
//!
//! - at start-up each counter continues from the stored reservation, and a new
//!   reservation ([`FRAME_RESERVE`] of frames, [`RECORDING_RESERVE`] recordings) is written
//!   before the first number is used;
//! - while running, a reservation half used up is extended (the control thread looks at
//!   every tick; a burst of recordings that would pass it extends it at once);
//! - on a clean exit the exact next numbers are written, so nothing is skipped.
//!
//! While running, the file is written on a thread of its own (`numbers`,
//! [`Numbers::write_in_background`]): its `fdatasync` waits behind the video's writeback
//! on the same disk, which on a slow SD card or a throttled disk is tens of seconds, and
//! the control thread, which extends the reservation, answers every command.
//!
//! After a crash the numbers skip at most what was reserved and unused; they never go
//! back. This module does no I/O of its own beyond that file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Frames reserved ahead: this long at the camera's nominal rate.
pub const FRAME_RESERVE: Duration = Duration::from_secs(60);
/// Recordings reserved ahead.
pub const RECORDING_RESERVE: u64 = 10;

/// What the state file holds: the first number not yet reserved, per counter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Stored {
    rig: String,
    next_recording: u64,
    /// Per camera name.
    next_frame: BTreeMap<String, u64>,
}

/// Why the numbers could not be read or kept.
#[derive(Debug, thiserror::Error)]
pub enum NumbersError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is damaged ({source}); move it away to start numbering afresh (numbers may then repeat those of earlier recordings)")]
    Damaged {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// One running recorder per rig and storage root: an exclusive `flock` on
/// `<root>/.hindsight/<rig>.lock`, held for the life of the process (the kernel lets it go
/// when the process ends, however it ends). A second `hindsight run` of the same rig into
/// the same root (started by hand beside the service, say) would number recordings and
/// frames alike, publish the same LSL streams, write into the same folders and take the
/// first one's open files for unfinished ones; it stops at once instead, naming the first.
#[derive(Debug)]
pub struct RigLock {
    _file: std::fs::File,
}

/// Why this process may not run the rig.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another hindsight{} is already running rig \"{rig}\" with storage.root {root}: two \
         recorders would number recordings and frames alike, publish the same LSL streams and \
         write into the same folders. Stop it first (`systemctl stop hindsight` for the \
         service), or give this one its own rig or storage.root",
        pid_text(*pid)
    )]
    Held {
        rig: String,
        root: PathBuf,
        /// The holder's pid, as its lock file says.
        pid: Option<u32>,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// " (pid N)", or nothing when the pid is not known: for messages naming a holder.
pub fn pid_text(pid: Option<u32>) -> String {
    pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
}

/// The pid a lock file holds (its holder wrote it), if it says one.
fn pid_in(file: &mut std::fs::File) -> Option<u32> {
    use std::io::Read;
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

impl RigLock {
    /// The lock file of `rig` under `root`.
    pub fn path(root: &Path, rig: &str) -> PathBuf {
        root.join(".hindsight").join(format!("{rig}.lock"))
    }

    /// Whether a recorder holds the rig's lock now, and its pid if the file says: for
    /// `hindsight check`, which changes nothing (no lock file where none was). The lock is
    /// tried and let go at once.
    pub fn holder(root: &Path, rig: &str) -> Option<Option<u32>> {
        use std::os::fd::AsRawFd;
        let mut file = std::fs::File::open(Self::path(root, rig)).ok()?;
        // SAFETY: flock on a descriptor this function owns; closing it lets the lock go.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } == 0 {
            return None;
        }
        Some(pid_in(&mut file))
    }

    /// Takes the rig's lock, or says who holds it.
    pub fn take(root: &Path, rig: &str) -> Result<RigLock, LockError> {
        use std::io::Seek;
        use std::os::fd::AsRawFd;
        let path = Self::path(root, rig);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(path.parent().unwrap_or(Path::new("."))).map_err(io)?;
        // Opened close-on-exec (std's default): a camera program started later does not
        // hold the lock past this process.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(io(e));
            }
            return Err(LockError::Held {
                rig: rig.to_string(),
                root: root.to_path_buf(),
                pid: pid_in(&mut file),
            });
        }
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        Ok(RigLock { _file: file })
    }
}

/// The reservations of one rig, and where they are kept.
#[derive(Debug)]
pub struct Numbers {
    path: PathBuf,
    stored: Stored,
    /// Frames reserved at a time, per camera.
    frame_block: BTreeMap<String, u64>,
    /// The thread that writes the file, once there is one.
    background: Option<Background>,
}

/// The `numbers` thread: writes the newest reservation it is handed; a write that failed
/// waits in `failed` for the next [`Numbers::keep_ahead`] to say it.
#[derive(Debug)]
struct Background {
    tx: crossbeam_channel::Sender<Stored>,
    failed: std::sync::Arc<parking_lot::Mutex<Option<NumbersError>>>,
    join: std::thread::JoinHandle<()>,
}

/// Where a counter starts in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Starts {
    pub recording: u64,
    /// Per camera name.
    pub frames: BTreeMap<String, u64>,
}

impl Numbers {
    /// The state file of `rig` under `root`.
    pub fn path(root: &Path, rig: &str) -> PathBuf {
        root.join(".hindsight").join(format!("{rig}.numbers.json"))
    }

    /// Reads the stored reservations of `rig` (none yet: recording 1, frame 0), reserves
    /// ahead for `cameras` (name, nominal fps) and writes that, before any number is used.
    pub fn open(
        root: &Path,
        rig: &str,
        cameras: &[(String, f64)],
    ) -> Result<(Numbers, Starts), NumbersError> {
        let path = Self::path(root, rig);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|source| NumbersError::Damaged {
                    path: path.clone(),
                    source,
                })?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored {
                rig: rig.to_string(),
                next_recording: 1,
                next_frame: BTreeMap::new(),
            },
            Err(source) => return Err(NumbersError::Read { path, source }),
        };
        let frame_block = cameras
            .iter()
            .map(|(name, fps)| {
                let block = (fps.max(1.0) * FRAME_RESERVE.as_secs_f64()).ceil() as u64;
                (name.clone(), block)
            })
            .collect();
        let starts = Starts {
            recording: stored.next_recording.max(1),
            frames: cameras
                .iter()
                .map(|(name, _)| {
                    (
                        name.clone(),
                        stored.next_frame.get(name).copied().unwrap_or(0),
                    )
                })
                .collect(),
        };
        let mut n = Numbers {
            path,
            stored,
            frame_block,
            background: None,
        };
        n.stored.rig = rig.to_string();
        n.stored.next_recording = starts.recording + RECORDING_RESERVE;
        for (name, &first) in &starts.frames {
            let block = n.frame_block[name];
            n.stored.next_frame.insert(name.clone(), first + block);
        }
        n.write()?;
        Ok((n, starts))
    }

    /// Extends what is half used up, given the next numbers about to be used, when
    /// `writable` says the file can be written now (asked only then). Returns whether the
    /// file was written.
    pub fn keep_ahead(
        &mut self,
        next_recording: u64,
        next_frames: &BTreeMap<String, u64>,
        writable: &dyn Fn() -> bool,
    ) -> Result<bool, NumbersError> {
        if let Some(e) = self
            .background
            .as_ref()
            .and_then(|b| b.failed.lock().take())
        {
            return Err(e);
        }
        let block = |name: &str| self.frame_block.get(name).copied().unwrap_or(1000);
        let due = next_recording + RECORDING_RESERVE / 2 > self.stored.next_recording
            || next_frames.iter().any(|(name, &next)| {
                next + block(name) / 2 > self.stored.next_frame.get(name).copied().unwrap_or(0)
            });
        if !due || !writable() {
            return Ok(false);
        }
        let mut changed = false;
        if next_recording + RECORDING_RESERVE / 2 > self.stored.next_recording {
            self.stored.next_recording = next_recording + RECORDING_RESERVE;
            changed = true;
        }
        for (name, &next) in next_frames {
            let block = self.frame_block.get(name).copied().unwrap_or(1000);
            let reserved = self.stored.next_frame.entry(name.clone()).or_insert(0);
            if next + block / 2 > *reserved {
                *reserved = next + block;
                changed = true;
            }
        }
        if changed {
            match &self.background {
                // The thread is there until `finish`, which takes it.
                Some(b) => {
                    let _ = b.tx.send(self.stored.clone());
                }
                None => self.write()?,
            }
        }
        Ok(changed)
    }

    /// From now on [`Numbers::keep_ahead`] hands the file to a thread of its own instead
    /// of writing it (see the module documentation); [`Numbers::finish`] waits for that
    /// thread before it writes the last numbers itself.
    pub fn write_in_background(&mut self) -> std::io::Result<()> {
        let (tx, rx) = crossbeam_channel::unbounded::<Stored>();
        let failed = std::sync::Arc::new(parking_lot::Mutex::new(None));
        let path = self.path.clone();
        let join = std::thread::Builder::new().name("numbers".into()).spawn({
            let failed = failed.clone();
            move || {
                while let Ok(mut stored) = rx.recv() {
                    // Only the newest reservation is worth writing.
                    while let Ok(newer) = rx.try_recv() {
                        stored = newer;
                    }
                    if let Err(e) = write_stored(&path, &stored) {
                        *failed.lock() = Some(e);
                    }
                }
            }
        })?;
        self.background = Some(Background { tx, failed, join });
        Ok(())
    }

    /// On a clean exit: the exact next numbers, so that the next run skips none.
    pub fn finish(
        &mut self,
        next_recording: u64,
        next_frames: &BTreeMap<String, u64>,
    ) -> Result<(), NumbersError> {
        if let Some(b) = self.background.take() {
            drop(b.tx);
            let _ = b.join.join();
        }
        self.stored.next_recording = next_recording;
        for (name, &next) in next_frames {
            self.stored.next_frame.insert(name.clone(), next);
        }
        self.write()
    }

    /// The first recording number not reserved yet.
    pub fn reserved_recordings(&self) -> u64 {
        self.stored.next_recording
    }

    fn write(&self) -> Result<(), NumbersError> {
        write_stored(&self.path, &self.stored)
    }
}

/// Replaces the file at `path`: a new one beside it, synced, renamed over it, the folder
/// synced.
fn write_stored(path: &Path, stored: &Stored) -> Result<(), NumbersError> {
    let err = |source| NumbersError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    // `.hindsight` if it went, not the root: a root gone with its disk is not made
    // again on the disk below.
    crate::writer::files::make_dir(dir).map_err(err)?;
    let tmp = path.with_extension("json.new");
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    let text = serde_json::to_vec_pretty(stored).expect("numbers serialize");
    f.write_all(&text).map_err(err)?;
    f.sync_data().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    crate::writer::files::sync_dir(dir).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cams() -> Vec<(String, f64)> {
        vec![("cam0".into(), 100.0), ("cam1".into(), 30.0)]
    }

    fn next(cam0: u64, cam1: u64) -> BTreeMap<String, u64> {
        [("cam0".to_string(), cam0), ("cam1".to_string(), cam1)].into()
    }

    #[test]
    fn a_rig_is_locked_once_per_root_until_its_holder_lets_go() {
        let tmp = tempfile::tempdir().unwrap();
        let held = RigLock::take(tmp.path(), "rig").unwrap();
        // A second open file description (as another process has) is refused, and told
        // who holds the lock.
        let e = RigLock::take(tmp.path(), "rig").unwrap_err().to_string();
        assert!(
            e.contains(&format!("(pid {})", std::process::id())) && e.contains("\"rig\""),
            "{e}"
        );
        // Another rig, or the same rig under another root, is not held.
        let other = RigLock::take(tmp.path(), "other").unwrap();
        let tmp2 = tempfile::tempdir().unwrap();
        let elsewhere = RigLock::take(tmp2.path(), "rig").unwrap();
        assert_eq!(
            RigLock::holder(tmp.path(), "rig"),
            Some(Some(std::process::id()))
        );
        assert_eq!(RigLock::holder(tmp.path(), "nobody"), None);
        drop(held);
        assert_eq!(RigLock::holder(tmp.path(), "rig"), None);
        let again = RigLock::take(tmp.path(), "rig").unwrap();
        drop((other, elsewhere, again));
    }

    #[test]
    fn a_fresh_rig_starts_at_recording_1_and_frame_0() {
        let tmp = tempfile::tempdir().unwrap();
        let (_, starts) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        assert_eq!(starts.recording, 1);
        assert_eq!(starts.frames, next(0, 0));
    }

    /// A root gone with its disk (unmounted: the path leads to the disk below) is not made
    /// again by the numbers file: writing it fails, and nothing appears there.
    #[test]
    fn the_numbers_file_never_makes_a_root_that_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("usb").join("rec");
        std::fs::create_dir_all(&root).unwrap();
        let (mut n, _) = Numbers::open(&root, "rig", &cams()).unwrap();
        std::fs::remove_dir_all(tmp.path().join("usb")).unwrap();
        assert!(n.keep_ahead(4, &next(3001, 10), &|| true).is_err());
        assert!(!tmp.path().join("usb").exists());
    }

    /// Whether the file can be written is asked only when a write is due (the control
    /// thread asks the disk, a few `stat` calls), and a "no" leaves it due.
    #[test]
    fn the_disk_is_asked_only_when_the_numbers_need_writing() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut n, _) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        let asked = std::cell::Cell::new(0);
        let no = || {
            asked.set(asked.get() + 1);
            false
        };
        assert!(!n.keep_ahead(1, &next(10, 10), &no).unwrap());
        assert_eq!(asked.get(), 0, "nothing due: not asked");
        assert!(!n.keep_ahead(4, &next(3001, 10), &no).unwrap());
        assert_eq!(asked.get(), 1);
        assert!(
            n.keep_ahead(4, &next(3001, 10), &|| true).unwrap(),
            "still due"
        );
    }

    /// After a crash (nothing written since start-up, or since the last extension), the
    /// numbers continue above every number that could have been used.
    #[test]
    fn after_a_crash_numbers_never_go_back() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut n, _) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        // Used up to frame 3000 of cam0 (reservation 6000: more than half used at 3001).
        assert!(n.keep_ahead(4, &next(3001, 10), &|| true).unwrap());
        assert!(
            !n.keep_ahead(4, &next(3002, 11), &|| true).unwrap(),
            "nothing to extend"
        );
        // The process dies here, having used anything below the reservations.
        let (_, starts) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        assert!(starts.frames["cam0"] >= 3000 + 6000 / 2);
        assert!(starts.frames["cam1"] >= 11);
        assert!(starts.recording >= 4 + RECORDING_RESERVE / 2);
    }

    /// Written in the background, the reservation reaches the file (as a crash finds it)
    /// without the caller writing; a write that failed is said by the next `keep_ahead`;
    /// `finish` writes the exact numbers after the thread's last write.
    #[test]
    fn the_numbers_thread_writes_the_reservation_and_says_when_it_could_not() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut n, _) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        n.write_in_background().unwrap();
        assert!(n.keep_ahead(4, &next(3001, 10), &|| true).unwrap());
        let path = Numbers::path(tmp.path(), "rig");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let stored: Stored = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            if stored.next_frame["cam0"] == 3001 + 6000 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "never written: {stored:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        // The folder goes: the thread's next write fails, and the caller hears of it.
        std::fs::remove_dir_all(tmp.path().join(".hindsight")).unwrap();
        std::fs::write(
            tmp.path().join(".hindsight"),
            b"a file where the folder was",
        )
        .unwrap();
        assert!(n.keep_ahead(4, &next(6002, 10), &|| true).unwrap());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match n.keep_ahead(4, &next(6003, 10), &|| true) {
                Err(NumbersError::Write { .. }) => break,
                r => assert!(std::time::Instant::now() < deadline, "{r:?}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::fs::remove_file(tmp.path().join(".hindsight")).unwrap();
        n.finish(7, &next(7000, 99)).unwrap();
        let (_, starts) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        assert_eq!((starts.recording, starts.frames), (7, next(7000, 99)));
    }

    #[test]
    fn after_a_clean_exit_numbers_continue_exactly() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut n, _) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        n.finish(7, &next(1234, 99)).unwrap();
        let (_, starts) = Numbers::open(tmp.path(), "rig", &cams()).unwrap();
        assert_eq!(starts.recording, 7);
        assert_eq!(starts.frames, next(1234, 99));
    }

    #[test]
    fn rigs_sharing_a_root_count_apart_and_a_damaged_file_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (mut a, _) = Numbers::open(tmp.path(), "a", &cams()).unwrap();
        a.finish(50, &next(1, 1)).unwrap();
        let (_, b) = Numbers::open(tmp.path(), "b", &cams()).unwrap();
        assert_eq!(b.recording, 1);
        std::fs::write(Numbers::path(tmp.path(), "a"), b"{ half a fi").unwrap();
        let e = Numbers::open(tmp.path(), "a", &cams())
            .unwrap_err()
            .to_string();
        assert!(e.contains("damaged") && e.contains("a.numbers.json"), "{e}");
    }
}
