//! The recordings root's filesystem as numbers and words: free space, the disk guard's
//! rule, and sizes and durations for people. Plain functions, no thread: the `disk`
//! thread (`crate::disk`) watches with them, the control thread refuses starts with
//! them, and `check` and the dashboard print with them. Nothing of hindsight is imported.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
