//! `hindsight check`: is this machine ready to record? One line per check with
//! pass / warn / fail and a hint, and a non-zero exit code on any fail.
//!
//! This covers the configuration, the sources, the recordings folder and LSL; camera
//! formats, audio devices and ntfy reachability join them with the issues that bring them.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::ExitCode;

use crate::config::Config;
use crate::writer::files;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Pass,
    Warn,
    Fail,
}

#[derive(Clone, Debug)]
pub struct CheckLine {
    pub level: Level,
    pub what: String,
    pub detail: String,
}

impl CheckLine {
    fn new(level: Level, what: impl Into<String>, detail: impl Into<String>) -> CheckLine {
        CheckLine {
            level,
            what: what.into(),
            detail: detail.into(),
        }
    }
}

/// Runs every check on the config at `path` (built-in defaults if `None`).
pub fn checks(path: Option<&Path>) -> Vec<CheckLine> {
    let mut out = Vec::new();
    let loaded = match Config::load(path) {
        Ok(l) => {
            out.push(CheckLine::new(
                Level::Pass,
                "config",
                format!("{} is valid", l.origin),
            ));
            l
        }
        Err(e) => {
            out.push(CheckLine::new(Level::Fail, "config", e.to_string()));
            return out;
        }
    };
    let c = &loaded.config;
    for cam in &c.cameras {
        let what = format!("camera {}", cam.name);
        match crate::source::open(cam, std::sync::Arc::new(crate::clock::RealClocks)) {
            Ok(s) if s.info().kind == "synthetic" => out.push(CheckLine::new(
                Level::Warn,
                what,
                format!("{}: a test pattern, not a real camera", s.info()),
            )),
            Ok(s) => out.push(CheckLine::new(Level::Pass, what, s.info().to_string())),
            Err(e) => out.push(CheckLine::new(Level::Fail, what, e)),
        }
    }
    let root = &c.storage.root;
    // A check changes nothing: a root that does not exist yet is judged by the folder it
    // would be created in.
    let existing = root.ancestors().find(|p| p.exists()).unwrap_or(root);
    match files::check_writable(existing) {
        Ok(()) => {
            let detail = if existing == root.as_path() {
                format!("{} is writable", root.display())
            } else {
                format!(
                    "{} will be created in {}",
                    root.display(),
                    existing.display()
                )
            };
            out.push(CheckLine::new(Level::Pass, "recordings root", detail));
            match free_bytes(existing) {
                Some(free) if free < 1 << 30 => out.push(CheckLine::new(
                    Level::Warn,
                    "disk space",
                    format!("only {} MiB free under {}", free >> 20, existing.display()),
                )),
                Some(free) => out.push(CheckLine::new(
                    Level::Pass,
                    "disk space",
                    format!(
                        "{:.1} GiB free under {}",
                        free as f64 / (1u64 << 30) as f64,
                        root.display()
                    ),
                )),
                None => out.push(CheckLine::new(
                    Level::Warn,
                    "disk space",
                    "cannot read free space",
                )),
            }
        }
        Err(e) => out.push(CheckLine::new(
            Level::Fail,
            "recordings root",
            format!("{e}: set storage.root to a folder this user can write"),
        )),
    }
    let lsl_used = c.lsl.enabled || c.trigger.lsl_markers.enabled;
    match crate::lsl::self_test() {
        Ok(msg) => out.push(CheckLine::new(Level::Pass, "lsl", msg)),
        Err(e) => out.push(CheckLine::new(
            if lsl_used { Level::Fail } else { Level::Warn },
            "lsl",
            format!(
                "{e}: LSL needs multicast (or KnownPeers in lsl_api.cfg) on this machine's network"
            ),
        )),
    }
    match std::net::TcpListener::bind(c.api.listen) {
        Ok(_) => out.push(CheckLine::new(
            Level::Pass,
            "api",
            format!("{} is free", c.api.listen),
        )),
        Err(e) => out.push(CheckLine::new(
            Level::Warn,
            "api",
            format!("{}: {e} (is hindsight already running?)", c.api.listen),
        )),
    }
    out
}

pub fn run(path: Option<&Path>) -> ExitCode {
    let lines = checks(path);
    for l in &lines {
        let tag = match l.level {
            Level::Pass => "pass",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag:4}  {:16} {}", l.what, l.detail);
    }
    if lines.iter().any(|l| l.level == Level::Fail) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Bytes available to this user on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    let c = CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}
