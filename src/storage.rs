//! The recordings root's filesystem as numbers and words: free space, the disk guard's
//! rule, whether the root still leads to the disk it was on (`RootFs`), and sizes and
//! durations for people. Plain functions, no thread: the `disk`
//! thread (`crate::disk`) watches with them, the control thread refuses starts with
//! them, and `check` and the dashboard print with them. Nothing of hindsight is imported.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Free and total bytes of the filesystem holding `path` (free: what this user may use).
pub fn free_space(path: &Path) -> std::io::Result<(u64, u64)> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path contains a NUL byte"))?;
    // SAFETY: statvfs writes into the zeroed struct; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// The largest file the filesystem holding `path` can store, where that is less than a
/// recording may grow: FAT (`vfat`, `msdos`: USB sticks and SD cards of up to 32 GB as
/// they come) stores at most 4 GiB − 1 byte per file. `None` for every other filesystem
/// (exFAT, ext4, NTFS, tmpfs, ... hold terabytes) and when the filesystem cannot be asked.
fn filesystem_limit(path: &Path) -> Option<u64> {
    /// `MSDOS_SUPER_MAGIC` (linux/magic.h), which vfat and msdos report.
    const FAT: i64 = 0x4d44;
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statfs writes into the zeroed struct; `c` is a valid C string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    (st.f_type as i64 == FAT).then_some(u64::from(u32::MAX))
}

/// The largest file this process may write (`ulimit -f`, systemd's `LimitFSIZE=`), if it
/// has such a limit: a write past it fails with "File too large" as on FAT (hindsight
/// ignores SIGXFSZ, which would otherwise end the process).
pub fn process_limit() -> Option<u64> {
    // SAFETY: getrlimit writes into the zeroed struct.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrlimit(libc::RLIMIT_FSIZE, &mut lim) } != 0 {
        return None;
    }
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as u64)
}

/// The largest file a recording in `path` can be written as, where something limits it,
/// with what does, for people: the filesystem (FAT: 4 GiB) or this process's own limit,
/// whichever is less.
pub fn file_size_limit(path: &Path) -> Option<(u64, &'static str)> {
    let fs = filesystem_limit(path).map(|l| (l, "the recordings root's filesystem (FAT)"));
    let process = process_limit().map(|l| {
        (
            l,
            "this process's file size limit (ulimit -f, or systemd's LimitFSIZE)",
        )
    });
    match (fs, process) {
        (Some(f), Some(p)) => Some(if p.0 < f.0 { p } else { f }),
        (f, p) => f.or(p),
    }
}

/// The largest a recording's file in `dir` may grow: what the filesystem and the process
/// allow ([`file_size_limit`]), or `configured` (`storage.max_file_size`) if that is less.
pub fn max_file_bytes(configured: Option<u64>, dir: &Path) -> Option<u64> {
    let fs = file_size_limit(dir).map(|(limit, _)| limit);
    match (configured, fs) {
        (Some(c), Some(f)) => Some(c.min(f)),
        (c, f) => c.or(f),
    }
}

/// A size for people, in binary units everywhere (check, guard, dashboard, retention):
/// `67.0 GiB`, `512 MiB`, `1.5 MiB`, `977 KiB`.
pub fn size(bytes: u64) -> String {
    let b = bytes as f64;
    if bytes >= 10 << 30 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if bytes >= 10 << 20 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 20 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b / 1024.0)
    }
}

/// A duration for people: `3 days`, `20.5 h`, `45 min`, `30 s`.
pub fn duration(secs: f64) -> String {
    if secs >= 2.0 * 86_400.0 {
        format!("{:.0} days", secs / 86_400.0)
    } else if secs >= 7200.0 {
        format!("{:.1} h", secs / 3600.0)
    } else if secs >= 120.0 {
        format!("{:.0} min", secs / 60.0)
    } else {
        format!("{:.0} s", secs.max(0.0))
    }
}

/// What the guard says when free space is below `min_free`, else `None`.
pub fn below_guard(root: &Path, free: u64, min_free: u64) -> Option<String> {
    (free < min_free).then(|| {
        format!(
            "disk nearly full: {} free under {}, below storage.min_free {}",
            size(free),
            root.display(),
            size(min_free)
        )
    })
}

/// Why a new recording must not start now (the disk is below the guard), else `None`.
pub fn refusal(root: &Path, min_free: Option<u64>) -> Option<String> {
    let min_free = min_free?;
    match free_space(root) {
        Ok((free, _)) => below_guard(root, free, min_free).map(|why| {
            format!("{why}: not recording (free space first, or lower storage.min_free)")
        }),
        // Unknown free space is not a reason to lose a recording: try, and let a write
        // failure finish the file if the disk really is full.
        Err(_) => None,
    }
}

/// The filesystem the recordings root was on when hindsight started: its device and the
/// folder it is mounted at. A recordings disk that is unmounted or unplugged leaves the
/// root's path missing (or, made again by someone, on the disk below); recording there
/// would fill the system disk, and the files would lie hidden under the disk once it is
/// mounted again. A disk the kernel turned read-only after errors on it (an SD card
/// failing) takes no recording either. [`RootFs::check`] says so, and the control thread
/// refuses to start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootFs {
    /// The root as configured (for messages).
    root: PathBuf,
    dev: u64,
    /// Where that filesystem is mounted (the root's highest folder on the same device).
    top: PathBuf,
}

impl RootFs {
    /// The filesystem `root` (which exists) is on now.
    pub fn of(root: &Path) -> std::io::Result<RootFs> {
        let (dev, top) = filesystem(&std::fs::canonicalize(root)?)?;
        Ok(RootFs {
            root: root.to_path_buf(),
            dev,
            top,
        })
    }

    /// Where the root's filesystem is mounted.
    pub fn top(&self) -> &Path {
        &self.top
    }

    /// `Ok` while the root leads to the filesystem it led to at start-up (the same device,
    /// or a disk mounted at the same place: a disk plugged in again gets a new device
    /// number) and that filesystem is writable. A root that is missing is fine where
    /// making it again puts it on that filesystem (a deleted folder); else why not to
    /// record.
    pub fn check(&self) -> Result<(), RootProblem> {
        self.check_reading(MountTable::Read)
    }

    /// [`RootFs::check`], reading the mount table (`/proc/self/mountinfo`) only when
    /// told: it is the one way to see an ext4 filesystem the kernel turned read-only after
    /// errors (`emergency_ro`), and it costs more than the rest together (the kernel
    /// writes out every mount of the system for each read), so the `disk` thread, which
    /// looks twice a second, reads it every few seconds ([`MountTable::Skip`] between);
    /// a mount read-only by its own options is seen at every look (`statvfs`).
    pub fn check_reading(&self, table: MountTable) -> Result<(), RootProblem> {
        use std::os::unix::fs::MetadataExt;
        // The common case in two system calls: the root is where it was, on its disk.
        if std::fs::metadata(&self.root).is_ok_and(|m| m.dev() == self.dev) {
            return match read_only(&self.root, table) {
                true => Err(self.turned_read_only(&self.top)),
                false => Ok(()),
            };
        }
        let abs = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        // The root itself, else the nearest folder above it that is there.
        let mut at = abs.as_path();
        let found = loop {
            match std::fs::canonicalize(at) {
                Ok(real) => break Some(real),
                Err(_) => match at.parent() {
                    Some(p) => at = p,
                    None => break None,
                },
            }
        };
        let there = at == abs.as_path();
        let now = found
            .as_ref()
            .and_then(|real| filesystem(real).ok().map(|fs| (real, fs)));
        match now {
            Some((real, (dev, top))) if dev == self.dev || top == self.top => {
                // The mount that holds the root itself: a service's own view may have the
                // rest of its disk read-only (systemd's ProtectSystem=strict, with the
                // root in ReadWritePaths=), which is no reason not to record.
                match read_only(real, MountTable::Read) {
                    true => Err(self.turned_read_only(&top)),
                    false => Ok(()),
                }
            }
            Some((_, (_, top))) if there => Err(RootProblem::Gone(format!(
                "recordings root {} is on the disk at {} now, not on the one at {} that \
                 hindsight started with (unmounted?): not recording until that disk is \
                 mounted again, or hindsight is restarted",
                self.root.display(),
                top.display(),
                self.top.display()
            ))),
            _ => Err(RootProblem::Gone(format!(
                "recordings root {} is gone with its disk ({}): not recording until that \
                 disk is mounted again (hindsight does not make the root on the disk below)",
                self.root.display(),
                self.top.display()
            ))),
        }
    }

    fn turned_read_only(&self, top: &Path) -> RootProblem {
        RootProblem::ReadOnly(format!(
            "the recordings disk at {} has turned read-only: not recording until it is \
             writable again (the kernel does that after errors on a disk, as when an SD \
             card or USB disk is failing: see `dmesg`; copy the recordings off, check the \
             disk (fsck) and mount it again)",
            top.display()
        ))
    }
}

/// Whether [`RootFs::check_reading`] reads the mount table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountTable {
    Read,
    Skip,
}

/// Why the recordings root cannot be recorded to now ([`RootFs::check`]), in words for
/// people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootProblem {
    /// Its disk is not there (unmounted, unplugged), or another is in its place.
    Gone(String),
    /// Its disk is there, read-only.
    ReadOnly(String),
}

impl std::fmt::Display for RootProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootProblem::Gone(why) | RootProblem::ReadOnly(why) => f.write_str(why),
        }
    }
}

/// Whether the mount holding `path` is read-only now: mounted so, or its filesystem
/// turned so by the kernel after errors on it. `statvfs` says the first (and the second on
/// older kernels); the mount table says both, in the mount's options (`ro`) and its
/// superblock's (`ro`; ext4 since Linux 6.x `emergency_ro`, which leaves `statvfs`'s
/// read-only flag unset): read when `table` says so.
fn read_only(path: &Path, table: MountTable) -> bool {
    if let Ok(c) = CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: statvfs writes into the zeroed struct; `c` is a valid C string.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        if unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0 && st.f_flag & libc::ST_RDONLY != 0 {
            return true;
        }
    }
    // The table names mount points as the kernel resolves them.
    table == MountTable::Read
        && std::fs::canonicalize(path)
            .is_ok_and(|real| mount_table().is_some_and(|t| read_only_in_mount_table(&t, &real)))
}

/// `/proc/self/mountinfo`, read in one go where it fits 64 KiB (`std::fs::read` reads a
/// file that gives no size in growing pieces: eight reads for this machine's table).
fn mount_table() -> Option<String> {
    use std::io::Read;
    let mut bytes = Vec::with_capacity(64 << 10);
    std::fs::File::open("/proc/self/mountinfo")
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .ok()?;
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

/// [`read_only`] by the mount table's text (`/proc/self/mountinfo`, proc(5)): the mount
/// that holds `path` is the last one listed whose mount point is `path` or a folder above
/// it, the deepest first (a later mount at the same point covers an earlier one).
fn read_only_in_mount_table(table: &str, path: &Path) -> bool {
    let has = |options: &str, flag: &str| options.split(',').any(|o| o == flag);
    let mut holder: Option<(usize, bool)> = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|f| *f == "-") else {
            continue;
        };
        if dash < 6 {
            continue;
        }
        let point = PathBuf::from(unescape_mount_path(fields[4]));
        if !path.starts_with(&point) {
            continue;
        }
        let depth = point.components().count();
        let superblock = fields.get(dash + 3).copied().unwrap_or("");
        let ro = has(fields[5], "ro") || has(superblock, "ro") || has(superblock, "emergency_ro");
        if holder.is_none_or(|(d, _)| depth >= d) {
            holder = Some((depth, ro));
        }
    }
    holder.is_some_and(|(_, ro)| ro)
}

/// A path as the mount table writes it: space, tab, newline and backslash as `\040`-style
/// octal escapes.
fn unescape_mount_path(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push(d.iter().fold(0u8, |n, c| n.wrapping_mul(8) + (c - b'0')));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The device of `path` (canonical) and the highest folder above it on that device.
fn filesystem(path: &Path) -> std::io::Result<(u64, PathBuf)> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(path)?.dev();
    let mut top = path;
    while let Some(parent) = top.parent() {
        match std::fs::metadata(parent) {
            Ok(m) if m.dev() == dev => top = parent,
            _ => break,
        }
    }
    Ok((dev, top.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_fat_limits_a_file() {
        // This machine's disk and its tmpfs hold files far past 4 GiB.
        assert_eq!(filesystem_limit(&std::env::temp_dir()), None);
        assert_eq!(filesystem_limit(Path::new("/dev/shm")), None);
        assert_eq!(filesystem_limit(Path::new("/no/such/folder")), None);
    }

    #[test]
    fn sizes_and_durations_read_the_same_everywhere() {
        assert_eq!(size(71_900_000_000), "67.0 GiB");
        assert_eq!(size(512 << 20), "512 MiB");
        assert_eq!(size(12_300_000), "11 MiB");
        assert_eq!(size(1_500_000), "1.4 MiB");
        assert_eq!(size(1_000_000), "977 KiB");
        assert_eq!(duration(20.5 * 3600.0), "20.5 h");
        assert_eq!(duration(3.0 * 86_400.0), "3 days");
        assert_eq!(duration(45.0 * 60.0), "45 min");
        assert_eq!(duration(30.0), "30 s");
    }

    #[test]
    fn the_guard_names_the_free_space_and_the_limit() {
        let root = Path::new("/data/rec");
        assert_eq!(below_guard(root, 600 << 20, 512 << 20), None);
        assert_eq!(
            below_guard(root, 100 << 20, 512 << 20).unwrap(),
            "disk nearly full: 100 MiB free under /data/rec, below storage.min_free 512 MiB"
        );
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(refusal(tmp.path(), None), None);
        assert_eq!(refusal(tmp.path(), Some(1 << 20)), None);
        let r = refusal(tmp.path(), Some(u64::MAX)).unwrap();
        assert!(r.contains("not recording"), "{r}");
    }

    #[test]
    fn the_root_must_lead_to_the_disk_it_was_on() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rec");
        std::fs::create_dir(&root).unwrap();
        let fs = RootFs::of(&root).unwrap();
        assert_eq!(fs.check(), Ok(()));
        // A deleted root is made again on the same filesystem: fine.
        std::fs::remove_dir(&root).unwrap();
        assert_eq!(fs.check(), Ok(()));
        // The same paths on another disk (as after an unmount): refused, with where.
        let other = RootFs {
            dev: fs.dev.wrapping_add(1),
            top: PathBuf::from("/mnt/usb"),
            ..fs.clone()
        };
        let why = other.check().unwrap_err().to_string();
        assert_eq!(
            why,
            format!(
                "recordings root {} is gone with its disk (/mnt/usb): not recording until \
                 that disk is mounted again (hindsight does not make the root on the disk below)",
                root.display()
            )
        );
        std::fs::create_dir(&root).unwrap();
        let why = other.check().unwrap_err().to_string();
        assert!(
            why.starts_with(&format!(
                "recordings root {} is on the disk at {} now, not on the one at /mnt/usb",
                root.display(),
                fs.top().display()
            )),
            "{why}"
        );
        // A disk mounted again at the same place (a new device number): fine.
        let replugged = RootFs {
            dev: fs.dev.wrapping_add(1),
            ..fs.clone()
        };
        assert_eq!(replugged.check(), Ok(()));
    }

    /// The mount table as the kernel writes it: ext4 turned read-only after errors
    /// (Linux 6.x: `emergency_ro` in the superblock's options, the mount still `rw`), an
    /// older kernel's `ro`, a mount made read-only, one that is fine; and a service's view
    /// under systemd's `ProtectSystem=strict`: `/` read-only, the root writable in its own
    /// bind mount of the same disk.
    #[test]
    fn a_disk_turned_read_only_is_found_in_the_mount_table() {
        let line = |at: &str, mount: &str, sb: &str| {
            format!("45 27 179:2 / {at} {mount},relatime - ext4 /dev/mmcblk0p2 {sb},errors=remount-ro\n")
        };
        let root = Path::new("/media/my disk/rec");
        let at = "/media/my\\040disk";
        let with = |l: String| format!("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n{l}");
        assert!(!read_only_in_mount_table(&with(line(at, "rw", "rw")), root));
        assert!(read_only_in_mount_table(
            &with(line(at, "rw", "rw,emergency_ro")),
            root
        ));
        assert!(read_only_in_mount_table(&with(line(at, "rw", "ro")), root));
        assert!(read_only_in_mount_table(&with(line(at, "ro", "rw")), root));
        // Another disk's trouble is not this one's.
        assert!(!read_only_in_mount_table(
            &with(line("/media/other", "ro", "ro")),
            root
        ));
        // The service's view: `/` read-only, the root's folder bound writable over it.
        let service = format!(
            "{}{}",
            line("/", "ro", "rw"),
            line("/var/lib/hindsight", "rw", "rw")
        );
        let rec = Path::new("/var/lib/hindsight/recordings");
        assert!(!read_only_in_mount_table(&service, rec));
        assert!(read_only_in_mount_table(&service, Path::new("/etc")));
        // A later mount at the same point covers the earlier.
        let again = format!(
            "{}{}",
            line(at, "rw", "rw,emergency_ro"),
            line(at, "rw", "rw")
        );
        assert!(!read_only_in_mount_table(&again, root));
        assert_eq!(unescape_mount_path("/a\\040b\\134c"), "/a b\\c");
        // This machine's own table is read whole and parses: the temporary folder's
        // disk is writable, and `/` is in it.
        let tmp = tempfile::tempdir().unwrap();
        assert!(!read_only(tmp.path(), MountTable::Read));
        let table = mount_table().unwrap();
        assert!(
            table.lines().any(|l| l.split(' ').nth(4) == Some("/")),
            "{table}"
        );
    }
}
