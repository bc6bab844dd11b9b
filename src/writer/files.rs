//! Where recordings go and what they are called (see `design/files.md`).

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use crate::clock::WallTime;

/// The files of one camera's recording.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingPaths {
    pub dir: PathBuf,
    pub mkv: PathBuf,
    pub frames_csv: PathBuf,
    pub events_csv: PathBuf,
}

impl RecordingPaths {
    pub fn new(video_dir: &Path, stem: &str, camera: &str) -> RecordingPaths {
        let base = format!("{stem}_{camera}");
        RecordingPaths {
            dir: video_dir.to_path_buf(),
            mkv: video_dir.join(format!("{base}.mkv")),
            frames_csv: video_dir.join(format!("{base}.frames.csv")),
            events_csv: video_dir.join(format!("{base}.events.csv")),
        }
    }

    /// The files of part `n` of the same recording, from these (part 1's): part 1 is
    /// `<stem>_<camera>.mkv`, part 2 `<stem>_<camera>.part002.mkv`, and so on, with the
    /// sidecars named alike (`design/files.md`).
    pub fn part(&self, n: u32) -> RecordingPaths {
        if n <= 1 {
            return self.clone();
        }
        let with = |p: &Path, ext: &str| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let base = name.strip_suffix(ext).unwrap_or(name);
            p.with_file_name(format!("{base}{}{ext}", part_suffix(n)))
        };
        RecordingPaths {
            dir: self.dir.clone(),
            mkv: with(&self.mkv, ".mkv"),
            frames_csv: with(&self.frames_csv, ".frames.csv"),
            events_csv: with(&self.events_csv, ".events.csv"),
        }
    }

    pub fn all(&self) -> [&Path; 3] {
        [&self.mkv, &self.frames_csv, &self.events_csv]
    }
}

/// What to add to a write error, where the error alone would not say what to do:
/// - "File too large" (a file size limit hindsight did not know of: a filesystem other
///   than FAT, a process limit): how to make recordings go on in parts before it; `at`
///   is how large the file had grown;
/// - "Read-only file system" (the kernel turns a disk read-only after errors on it, as
///   when an SD card or USB disk is failing) and "Input/output error": that the disk may
///   be failing, and what to do before it loses more.
pub fn write_error_hint(e: &io::Error, at: u64) -> String {
    match e.raw_os_error() {
        Some(libc::EFBIG) => format!(
            " (this filesystem holds no larger file: set storage.max_file_size below {at} bytes, \
             and recordings go on in a next file before they get there)"
        ),
        Some(libc::EROFS) => " (the recordings disk has turned read-only: the kernel does that \
             after errors on a disk, as when an SD card or USB disk is failing (see `dmesg`); \
             copy the recordings off, check the disk (fsck) and mount it again)"
            .to_string(),
        Some(libc::EIO) => " (the disk reports an input/output error: it may be failing or \
             unplugged; see `dmesg`)"
            .to_string(),
        _ => String::new(),
    }
}

/// `.part002` for part 2 (nothing for part 1).
pub fn part_suffix(n: u32) -> String {
    match n {
        0 | 1 => String::new(),
        n => format!(".part{n:03}"),
    }
}

/// The part number of a file name's base (`x.part002` → (`x`, 2)); part 1 has no suffix.
pub fn split_part(base: &str) -> (&str, u32) {
    if let Some((head, tail)) = base.rsplit_once(".part") {
        if tail.len() >= 3 && tail.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(n) = tail.parse::<u32>() {
                if n >= 2 {
                    return (head, n);
                }
            }
        }
    }
    (base, 1)
}

/// `<root>/<YYYY_MM_DD>/audio/<stem>.wav`, beside `video_dir`.
pub fn audio_path(video_dir: &Path, stem: &str) -> PathBuf {
    video_dir
        .parent()
        .unwrap_or(video_dir)
        .join("audio")
        .join(format!("{stem}.wav"))
}

/// `<root>/<YYYY_MM_DD>/video` for a recording started at `start`.
pub fn video_dir(root: &Path, start: WallTime) -> PathBuf {
    let local = start.to_local();
    root.join(local.format("%Y_%m_%d").to_string())
        .join("video")
}

/// Picks file stems: `<prefix>_<YYYY-MM-DD_HH-MM-SS>`, with `-002`, `-003`, ... appended
/// when that name is taken on disk or was handed out earlier in this process. Zero-padded,
/// so that the recordings of one second sort in order by name (`-010` after `-002`).
///
/// A stem is claimed by creating every file of the recording, empty, with `O_EXCL`: each
/// camera's MKV and sidecars and the WAV. Another hindsight sharing the root (another rig,
/// on the same trigger, at the same second) then cannot pick the same stem between this
/// one's look and its writers' creating the files, as it could when names were only
/// looked at (one of the two recordings failed with "File exists"). The writers take
/// their claimed files with [`open_claimed`].
#[derive(Debug, Default)]
pub struct StemAllocator {
    issued: HashSet<PathBuf>,
}

impl StemAllocator {
    /// Returns the video directory (created) and a stem whose files it has claimed for
    /// every camera in `cameras`, and for the WAV if `audio`.
    pub fn allocate(
        &mut self,
        root: &Path,
        prefix: &str,
        start: WallTime,
        cameras: &[&str],
        audio: bool,
    ) -> io::Result<(PathBuf, String)> {
        let dir = video_dir(root, start);
        fs::create_dir_all(&dir)?;
        if audio {
            make_dir(&dir.parent().unwrap_or(&dir).join("audio"))?;
        }
        let base = format!("{prefix}_{}", start.to_local().format("%Y-%m-%d_%H-%M-%S"));
        for n in 1u32.. {
            let stem = if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n:03}")
            };
            let key = dir.join(&stem);
            let taken = self.issued.contains(&key)
                || audio_path(&dir, &stem).exists()
                || cameras.iter().any(|cam| {
                    RecordingPaths::new(&dir, &stem, cam)
                        .all()
                        .iter()
                        .any(|p| p.exists())
                });
            if taken {
                continue;
            }
            let mut names: Vec<PathBuf> = cameras
                .iter()
                .flat_map(|cam| {
                    RecordingPaths::new(&dir, &stem, cam)
                        .all()
                        .map(Path::to_path_buf)
                })
                .collect();
            if audio {
                names.push(audio_path(&dir, &stem));
            }
            if claim(&names)? {
                self.issued.insert(key);
                return Ok((dir, stem));
            }
        }
        unreachable!("u32 stems exhausted")
    }
}

/// Creates every file in `names`, empty: `Ok(false)`, with none left, if one is there
/// already (another recorder claimed it first).
fn claim(names: &[PathBuf]) -> io::Result<bool> {
    for (i, p) in names.iter().enumerate() {
        let made = OpenOptions::new().write(true).create_new(true).open(p);
        if let Err(e) = made {
            for q in &names[..i] {
                let _ = fs::remove_file(q);
            }
            return match e.kind() {
                io::ErrorKind::AlreadyExists => Ok(false),
                _ => Err(e),
            };
        }
    }
    Ok(true)
}

/// Opens a file that [`StemAllocator::allocate`] claimed (empty) for writing, and holds it
/// (`hold`) as [`create_new`] does; a file not claimed is created. Never one with data in
/// it, nor one another recorder holds.
pub fn open_claimed(path: &Path) -> io::Result<File> {
    let file = match OpenOptions::new().write(true).open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return create_new(path),
        r => r?,
    };
    if file.metadata()?.len() > 0 || matches!(hold(&file), Ok(false)) {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "a file of another recording has this name: not overwritten",
        ));
    }
    Ok(file)
}

/// Creates a new file, refusing to overwrite an existing one, and holds it (`hold`) for as
/// long as it stays open: `hindsight repair` in another process then leaves a file that is
/// being recorded alone.
pub fn create_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().write(true).create_new(true).open(path)?;
    // A filesystem without locks (some FUSE ones) records all the same.
    let _ = hold(&file);
    Ok(file)
}

/// Whether a recorder (this one or another hindsight's) is writing `path` now: it holds
/// the file (`create_new`). Tried and let go at once.
pub fn being_written(path: &Path) -> bool {
    File::open(path).is_ok_and(|f| matches!(hold(&f), Ok(false)))
}

/// Takes an exclusive `flock` on `file`, without waiting; it lasts until every descriptor
/// of this open file is closed. `Ok(false)`: another open of the file holds it (a
/// recorder writing it, or a repair). An error: this filesystem has no such locks.
pub fn hold(file: &File) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor that `file` keeps open for this call.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
        Ok(false)
    } else {
        Err(e)
    }
}

/// Makes the folder `dir` if it is not there, and not the folders above it: a file's
/// folder is made only under a root that is there (the control thread checks it when a
/// recording starts), never with a root that has gone with its disk.
pub fn make_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// `fsync`s a directory so that a new file's name survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Why the recordings root cannot be used (a disk turned read-only says what to do).
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    #[error("cannot create recordings root {}: {source}{}", root.display(), write_error_hint(source, 0))]
    Create { root: PathBuf, source: io::Error },
    #[error("cannot write in recordings root {}: {source}{}", root.display(), write_error_hint(source, 0))]
    Write { root: PathBuf, source: io::Error },
    #[error("cannot remove test file in {}: {source}{}", root.display(), write_error_hint(source, 0))]
    Remove { root: PathBuf, source: io::Error },
}

impl RootError {
    /// The disk said "Read-only file system": not a folder to choose again, a disk to check.
    pub fn read_only(&self) -> bool {
        let (RootError::Create { source, .. }
        | RootError::Write { source, .. }
        | RootError::Remove { source, .. }) = self;
        source.raw_os_error() == Some(libc::EROFS)
    }
}

/// Checks that `root` exists (creating it) and that a file can be created in it.
pub fn check_writable(root: &Path) -> Result<(), RootError> {
    let root_buf = || root.to_path_buf();
    fs::create_dir_all(root).map_err(|source| RootError::Create {
        root: root_buf(),
        source,
    })?;
    let probe = root.join(format!(".hindsight-write-test-{}", std::process::id()));
    create_new(&probe).map_err(|source| RootError::Write {
        root: root_buf(),
        source,
    })?;
    fs::remove_file(&probe).map_err(|source| RootError::Remove {
        root: root_buf(),
        source,
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_named_after_the_first_and_read_back() {
        let first =
            RecordingPaths::new(Path::new("/r/d/video"), "rec_2026-12-01_10-00-00", "top.v2");
        assert_eq!(first.part(1), first);
        let p2 = first.part(2);
        assert_eq!(
            p2.mkv,
            Path::new("/r/d/video/rec_2026-12-01_10-00-00_top.v2.part002.mkv")
        );
        assert_eq!(
            p2.frames_csv,
            Path::new("/r/d/video/rec_2026-12-01_10-00-00_top.v2.part002.frames.csv")
        );
        assert_eq!(
            p2.events_csv,
            Path::new("/r/d/video/rec_2026-12-01_10-00-00_top.v2.part002.events.csv")
        );
        assert!(first
            .part(1234)
            .mkv
            .ends_with("rec_2026-12-01_10-00-00_top.v2.part1234.mkv"));
        assert_eq!(split_part("x_top.v2.part002"), ("x_top.v2", 2));
        assert_eq!(split_part("x_top.v2.part1234"), ("x_top.v2", 1234));
        // Not a part: a camera whose name merely looks like one.
        assert_eq!(split_part("x_top.part1"), ("x_top.part1", 1));
        assert_eq!(split_part("x_top.part001"), ("x_top.part001", 1));
        assert_eq!(split_part("x_top.partial"), ("x_top.partial", 1));
        assert_eq!(split_part("x_top"), ("x_top", 1));
    }

    #[test]
    fn stems_follow_the_layout_and_never_repeat() {
        let tmp = tempfile::tempdir().unwrap();
        let start = WallTime::now();
        let mut alloc = StemAllocator::default();
        let (dir, a) = alloc
            .allocate(tmp.path(), "rec", start, &["cam0"], false)
            .unwrap();
        let local = start.to_local();
        assert_eq!(
            dir,
            tmp.path()
                .join(local.format("%Y_%m_%d").to_string())
                .join("video")
        );
        assert_eq!(a, format!("rec_{}", local.format("%Y-%m-%d_%H-%M-%S")));
        let (_, b) = alloc
            .allocate(tmp.path(), "rec", start, &["cam0"], false)
            .unwrap();
        assert_eq!(b, format!("{a}-002"));
        for n in 3..=12 {
            let (_, next) = alloc
                .allocate(tmp.path(), "rec", start, &["cam0"], false)
                .unwrap();
            assert_eq!(next, format!("{a}-{n:03}"));
        }
        assert!(
            format!("{a}-002") < format!("{a}-010"),
            "names of one second sort in order"
        );
        // Files on disk (an earlier run's, or claimed) also take the name: for a fresh
        // allocator, the twelve stems above and a thirteenth with a file of camera 1.
        let mut fresh = StemAllocator::default();
        fs::write(
            RecordingPaths::new(&dir, &format!("{a}-013"), "cam1").mkv,
            b"x",
        )
        .unwrap();
        let (_, c) = fresh
            .allocate(tmp.path(), "rec", start, &["cam0", "cam1"], false)
            .unwrap();
        assert_eq!(c, format!("{a}-014"));
    }

    /// Two recorders sharing a root (two rigs on one trigger), at the same second: each
    /// gets a stem of its own, and its writers take the files it claimed. With other
    /// camera names, the WAV (named by the stem alone) still tells them apart.
    #[test]
    fn two_recorders_on_one_root_at_one_second_get_stems_of_their_own() {
        let tmp = tempfile::tempdir().unwrap();
        let start = WallTime::now();
        let (mut a, mut b) = (StemAllocator::default(), StemAllocator::default());
        let (dir, first) = a
            .allocate(tmp.path(), "rec", start, &["cam0"], true)
            .unwrap();
        let (_, second) = b
            .allocate(tmp.path(), "rec", start, &["cam0"], true)
            .unwrap();
        assert_ne!(first, second);
        let (_, third) = b
            .allocate(tmp.path(), "rec", start, &["top"], true)
            .unwrap();
        assert!(![&first, &second].contains(&&third), "{third}");
        // Claimed: every file there, empty, until its writer takes it.
        let paths = RecordingPaths::new(&dir, &first, "cam0");
        for p in paths
            .all()
            .into_iter()
            .chain([audio_path(&dir, &first).as_path()])
        {
            assert_eq!(fs::metadata(p).unwrap().len(), 0, "{}", p.display());
        }
        let mkv = open_claimed(&paths.mkv).unwrap();
        std::io::Write::write_all(&mut &mkv, b"\x1a\x45\xdf\xa3").unwrap();
        // Held, and then with data in it: never taken a second time.
        assert_eq!(
            open_claimed(&paths.mkv).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        drop(mkv);
        assert_eq!(
            open_claimed(&paths.mkv).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert_eq!(fs::read(&paths.mkv).unwrap(), b"\x1a\x45\xdf\xa3");
        // A stem whose names are partly taken is left as it was.
        let (_, fourth) = a
            .allocate(tmp.path(), "rec", start, &["cam0", "cam1"], false)
            .unwrap();
        let left: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("_cam1.") && !n.contains(&fourth))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_files_folder_is_made_only_under_a_folder_that_is_there() {
        let tmp = tempfile::tempdir().unwrap();
        let day = tmp.path().join("rec").join("2026_12_04");
        // The root is gone: nothing is made.
        let e = make_dir(&day.join("video")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(!tmp.path().join("rec").exists());
        // Under one that is there: made, and again is fine.
        fs::create_dir_all(&day).unwrap();
        make_dir(&day.join("video")).unwrap();
        make_dir(&day.join("video")).unwrap();
        assert!(day.join("video").is_dir());
    }

    /// "File too large" (a limit hindsight did not know of) gets the way to parts, a disk
    /// turned read-only or failing what to do; a full disk nothing (it says itself).
    #[test]
    fn a_file_too_large_or_a_failing_disk_is_explained() {
        let e = io::Error::from_raw_os_error(libc::EFBIG);
        assert_eq!(
            write_error_hint(&e, 4096),
            " (this filesystem holds no larger file: set storage.max_file_size below 4096 \
             bytes, and recordings go on in a next file before they get there)"
        );
        let ro = write_error_hint(&io::Error::from_raw_os_error(libc::EROFS), 0);
        assert!(
            ro.contains("turned read-only") && ro.contains("fsck"),
            "{ro}"
        );
        let eio = write_error_hint(&io::Error::from_raw_os_error(libc::EIO), 0);
        assert!(eio.contains("failing"), "{eio}");
        let full = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(write_error_hint(&full, 4096), "");
        // A root on a disk turned read-only, as `run` and `check` say it.
        let root = RootError::Write {
            root: PathBuf::from("/media/usb/rec"),
            source: io::Error::from_raw_os_error(libc::EROFS),
        };
        assert!(root.read_only());
        assert!(
            root.to_string().starts_with(
                "cannot write in recordings root /media/usb/rec: Read-only file system \
                 (os error 30) (the recordings disk has turned read-only"
            ),
            "{root}"
        );
    }

    #[test]
    fn create_new_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.mkv");
        fs::write(&p, b"data").unwrap();
        assert!(create_new(&p).is_err());
        assert_eq!(fs::read(&p).unwrap(), b"data");
    }

    #[test]
    fn a_file_being_written_is_held_until_it_is_closed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("x.mkv");
        let writing = create_new(&p).unwrap();
        // Another open of it (a repair) finds it held, and may not take it.
        let other = File::open(&p).unwrap();
        assert!(!hold(&other).unwrap());
        drop(writing);
        assert!(hold(&other).unwrap());
        // And held by that repair now, a third open finds it held.
        assert!(!hold(&File::open(&p).unwrap()).unwrap());
    }

    #[test]
    fn an_unwritable_root_is_reported() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("not-a-dir");
        fs::write(&file, b"").unwrap();
        let e = check_writable(&file.join("recordings"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot create recordings root"), "{e}");
        assert!(check_writable(&tmp.path().join("ok")).is_ok());
    }
}
