//! `hindsight check` on this machine (no camera, no sound card): what passes, what fails
//! with which hint, and the exit code; ntfy against the real server.

mod common;

use std::process::Command;

use common::ntfy::Ntfy;
use common::*;

struct Checked {
    code: i32,
    lines: Vec<String>,
}

impl Checked {
    /// The line for `what` (e.g. "camera cam0").
    fn line(&self, what: &str) -> &str {
        self.lines
            .iter()
            .find(|l| {
                l.get(6..)
                    .is_some_and(|r| r.starts_with(&format!("{what} ")))
            })
            .unwrap_or_else(|| panic!("no `{what}` line in:\n{}", self.lines.join("\n")))
    }

    fn level(&self, what: &str) -> &str {
        &self.line(what)[..4]
    }
}

/// Runs `hindsight check` on a config of `rest`, with a recordings root in a fresh
/// folder (or `root`) and `storage:` keys of `storage_keys`.
struct Check<'a> {
    root: Option<&'a str>,
    storage_keys: &'a str,
    rest: &'a str,
    envs: &'a [(&'a str, &'a str)],
    /// The process's file size limit (`ulimit -f`), in bytes.
    file_limit: Option<u64>,
    /// More of the command line, after `--config <file>` (as `run` takes them).
    args: &'a [&'a str],
}

impl Check<'_> {
    fn run(&self) -> Checked {
        lsl_session();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.yaml");
        let root = self
            .root
            .map(str::to_string)
            .unwrap_or_else(|| dir.path().join("recordings").display().to_string());
        let config = format!(
            "storage:\n  root: {root}\n{}api:\n  listen: 127.0.0.1:{}\n{}",
            self.storage_keys,
            free_port(),
            self.rest
        );
        std::fs::write(&path, config).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["check", "--config"])
            .arg(&path)
            .args(self.args)
            .envs(self.envs.iter().copied());
        if let Some(bytes) = self.file_limit {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: bytes,
                    };
                    libc::setrlimit(libc::RLIMIT_FSIZE, &lim);
                    Ok(())
                });
            }
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        Checked {
            code: out.status.code().unwrap(),
            lines: text.lines().map(str::to_string).collect(),
        }
    }
}

fn check(rest: &str, envs: &[(&str, &str)]) -> Checked {
    Check {
        root: None,
        storage_keys: "",
        rest,
        envs,
        file_limit: None,
        args: &[],
    }
    .run()
}

/// `hindsight check` of the built-in defaults with the recordings root `root`.
fn check_in(root: &str) -> Checked {
    Check {
        root: Some(root),
        storage_keys: "",
        rest: "",
        envs: &[],
        file_limit: None,
        args: &[],
    }
    .run()
}

#[test]
fn the_synthetic_camera_passes_and_nothing_fails() {
    let c = check("", &[]);
    let all = c.lines.join("\n");
    assert_eq!(c.code, 0, "{all}");
    assert_eq!(c.level("config"), "pass", "{all}");
    let cam = c.line("camera cam0");
    assert!(cam.starts_with("pass"), "{all}");
    assert!(
        cam.contains("400x400 @ 100 fps") && cam.contains("kB a frame"),
        "{cam}"
    );
    // What the capture thread will spend on each frame, measured over a second.
    assert!(
        cam.contains(" fps, ") && cam.contains(" ms of CPU a frame"),
        "{cam}"
    );
    assert_eq!(c.level("lsl"), "pass", "{all}");
    assert_eq!(c.level("recordings root"), "pass", "{all}");
    // Which disk it is on, as util-linux's findmnt says.
    let root = c.line("recordings root");
    let dir = root
        .split(" will be created in ")
        .nth(1)
        .and_then(|r| r.split(", on the filesystem mounted at ").next())
        .unwrap_or_else(|| panic!("{root}"));
    // (The folder went with the check's temporary one: its parent, on the same disk.)
    let parent = std::path::Path::new(dir).parent().unwrap();
    let findmnt = Command::new("findmnt")
        .args(["-n", "-o", "TARGET", "-T"])
        .arg(parent)
        .output()
        .unwrap();
    let mounted_at = String::from_utf8_lossy(&findmnt.stdout).trim().to_string();
    assert!(!mounted_at.is_empty(), "{findmnt:?}");
    assert!(
        root.ends_with(&format!(", on the filesystem mounted at {mounted_at}")),
        "{root}"
    );
    // Free space is judged against what the camera really delivers.
    let disk = c.line("disk space");
    assert!(
        disk.contains("of recording at") && disk.contains("iB/s"),
        "{disk}"
    );
    assert!(c.line("ntfy").contains("disabled"), "{all}");
    assert_eq!(c.level("recorder"), "pass", "{all}");
    // One line per check, each with pass, warn or FAIL; a warning says how to fix it.
    for l in &c.lines {
        let tag = &l[..4];
        assert!(["pass", "warn", "FAIL"].contains(&tag), "{l}");
        if tag != "pass" {
            assert!(l.contains(" → "), "a warning without a hint: {l}");
        }
    }
    let time = c.line("time sync");
    assert!(time.contains("synchronized"), "{time}");
    // A 100 fps camera asks for no real-time priority by default, and is told so.
    let rt = c.line("real-time");
    assert!(
        rt.starts_with("pass") && rt.contains("normal priority"),
        "{rt}"
    );
}

/// The number just before `before` in `line`.
fn number_before(line: &str, before: &str) -> f64 {
    let head = &line[..line
        .find(before)
        .unwrap_or_else(|| panic!("no `{before}` in {line}"))];
    let start = head.rfind(' ').map_or(0, |i| i + 1);
    head[start..]
        .parse()
        .unwrap_or_else(|_| panic!("no number before `{before}` in {line}"))
}

/// A camera this machine cannot encode at its rate is found before the experiment, not
/// in its files: its line warns and says what each frame costs the capture thread, the
/// rate this machine keeps up with and what to change. Check still succeeds (it records).
#[test]
fn a_camera_this_machine_cannot_encode_at_its_rate_is_warned_of_with_the_rate_it_can() {
    let c = check(
        "cameras:\n  - name: big\n    source: synthetic\n    resolution: {width: 1920, height: 1080}\n    fps: 2000\nbuffer:\n  duration: 1\n",
        &[],
    );
    let all = c.lines.join("\n");
    assert_eq!(c.code, 0, "{all}");
    let line = c.line("camera big");
    assert!(line.starts_with("warn"), "{line}");
    assert!(line.contains("encoding 1920x1080 frames to JPEG"), "{line}");
    assert!(line.contains("lower fps, resolution or quality"), "{line}");
    assert!(line.contains("frames will be lost"), "{line}");
    // The rate it keeps up with is what a frame's CPU time allows, well short of 2000.
    let ms = number_before(line, " ms of CPU a frame");
    let can = number_before(line, " fps of the 2000 asked for");
    assert!(can < 2000.0 * 0.8, "{line}");
    // (The line gives the milliseconds to 0.01: at 1.77 ms that is ±1.6 fps.)
    let (fast, slow) = (1000.0 / (ms - 0.005), 1000.0 / (ms + 0.005));
    assert!(
        (slow.floor() - 1.0..=fast.floor() + 1.0).contains(&can),
        "{ms} ms a frame, {can} fps: {line}"
    );
    // What it delivered in the check is about that too (it skips what it cannot take).
    let delivered = number_before(line, " fps, ");
    assert!(delivered < 2000.0 * 0.8, "{line}");
    assert!(
        number_before(line, " skipped in its numbers") > 0.0,
        "{line}"
    );
}

/// A stream slower than its `fps` (a program camera at 10 fps configured as 30) is
/// warned of with the rate it came at and what to change: its CPU is not the cause.
#[test]
fn a_camera_slower_than_its_fps_is_warned_of_with_the_rate_it_came_at() {
    require_tool("ffmpeg");
    let c = check(
        "cameras:\n  - name: slow\n    source: command\n    command: \"ffmpeg -v error -re -f lavfi -i testsrc2=size=320x240:rate=10 -c:v mjpeg -f mjpeg -\"\n    fps: 30\n",
        &[],
    );
    let line = c.line("camera slow");
    assert!(line.starts_with("warn"), "{line}");
    let came = number_before(line, " of the 30 fps asked for");
    assert!((8.0..12.0).contains(&came), "{line}");
    assert!(
        line.contains("the stream comes at that rate: set fps to it"),
        "{line}"
    );
    assert!(!line.contains("keeps up with"), "not the CPU: {line}");
}

/// A stream faster than its `fps` (a program camera at 90 fps configured as 30) is
/// warned of with its rate, and the disk estimate is at that rate: it passed as if it came
/// at 30.
#[test]
fn a_camera_faster_than_its_fps_is_warned_of_and_its_disk_use_is_at_its_rate() {
    require_tool("ffmpeg");
    let cam = |rate: u32| {
        format!(
            "cameras:\n  - name: quick\n    source: command\n    command: \"ffmpeg -v error -re -f lavfi -i testsrc2=size=320x240:rate={rate} -c:v mjpeg -q:v 5 -f mjpeg -\"\n    fps: 30\n"
        )
    };
    let c = check(&cam(90), &[]);
    let line = c.line("camera quick");
    assert!(line.starts_with("warn"), "{line}");
    let came = number_before(line, " fps, ");
    assert!((80.0..100.0).contains(&came), "{line}");
    assert!(line.contains("more than the 30 fps asked for"), "{line}");
    assert!(line.contains("set fps to it"), "{line}");
    let fast_disk = number_before(c.line("disk space"), " KiB/s");
    // The same stream at the rate asked for passes, and writes a third as much.
    let c = check(&cam(30), &[]);
    assert!(
        c.line("camera quick").starts_with("pass"),
        "{}",
        c.line("camera quick")
    );
    let disk = number_before(c.line("disk space"), " KiB/s");
    assert!(
        (2.4..3.6).contains(&(fast_disk / disk)),
        "{fast_disk} KiB/s at 90 fps, {disk} at 30"
    );
}

/// With a recorder of the rig running on the root, check says so (and names its pid):
/// `hindsight run` with that configuration would stop at once. Once it ends, it passes.
#[test]
fn a_recorder_already_running_the_rig_is_named() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 10.0, 1.0));
    let root = h.root.display().to_string();
    let pid = h.child.as_ref().unwrap().id();
    let c = check_in(&root);
    let line = c.line("recorder");
    assert!(line.starts_with("warn"), "{line}");
    assert!(line.contains(&format!("(pid {pid})")), "{line}");
    assert!(line.contains("systemctl stop hindsight"), "{line}");
    // Its disk is not raced by the speed test while it records there.
    assert!(
        c.line("disk speed")
            .contains("not measured: a recorder of this rig is writing"),
        "{}",
        c.lines.join("\n")
    );
    assert!(h.terminate().success());
    let c = check_in(&root);
    assert_eq!(c.level("recorder"), "pass", "{}", c.lines.join("\n"));
    assert!(
        c.line("disk speed").contains("through to the disk"),
        "{}",
        c.lines.join("\n")
    );
}

/// A camera that asks for real-time priority has it tested: as root (this machine) it
/// is permitted; without the right, a warning says how to grant it.
#[test]
fn real_time_priority_is_tested_when_a_camera_asks_for_it() {
    for extra in ["    realtime: true\n", "    fps: 200\n"] {
        let c = check(
            &format!("cameras:\n  - name: cam0\n    source: synthetic\n{extra}"),
            &[],
        );
        let rt = c.line("real-time");
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            assert_eq!(
                rt, "pass  real-time        capture threads can run at real-time priority",
                "{extra}"
            );
        } else {
            assert!(rt.starts_with("warn") && rt.contains("LimitRTPRIO"), "{rt}");
        }
    }
}

#[test]
fn a_camera_that_is_not_there_fails_with_a_hint() {
    let c = check(
        "cameras:\n  - name: top\n    source: v4l2\n    device: /dev/video0\n",
        &[],
    );
    let all = c.lines.join("\n");
    assert_eq!(c.code, 1, "{all}");
    let cam = c.line("camera top");
    assert!(cam.starts_with("FAIL"), "{all}");
    assert!(cam.contains("/dev/video0"), "{cam}");
    assert!(
        cam.contains("→") && cam.contains("hindsight devices"),
        "{cam}"
    );
    // The other checks still run.
    assert_eq!(c.level("lsl"), "pass", "{all}");
    assert!(c.line("disk space").contains("data rate unknown"), "{all}");
}

#[test]
fn bad_config_unwritable_root_full_disk_and_missing_microphone_fail() {
    let c = check("cameras:\n  - name: top\n    fpx: 30\n", &[]);
    assert_eq!(c.code, 1);
    assert_eq!(c.lines.len(), 1, "nothing else is checked: {:?}", c.lines);
    assert!(c.line("config").contains("fpx") && c.line("config").contains("line"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("recordings").display().to_string();
    let c = Check {
        root: Some(&root),
        storage_keys: "",
        rest: "",
        envs: &[],
        file_limit: None,
        args: &[],
    }
    .run();
    assert_eq!(c.code, 1);
    let line = c.line("recordings root");
    assert!(line.starts_with("FAIL") && line.contains("→"), "{line}");

    let c = Check {
        root: None,
        storage_keys: "  min_free: 100000GiB\n",
        rest: "",
        envs: &[],
        file_limit: None,
        args: &[],
    }
    .run();
    assert_eq!(c.code, 1);
    let disk = c.line("disk space");
    assert!(
        disk.starts_with("FAIL") && disk.contains("below storage.min_free"),
        "{disk}"
    );

    let c = check("audio:\n  source: no-such-microphone\n", &[]);
    assert_eq!(c.code, 1);
    let audio = c.line("audio");
    assert!(
        audio.starts_with("FAIL") && audio.contains("no-such-microphone"),
        "{audio}"
    );
}

/// `hindsight check` takes `run`'s options, and checks what `run` with them would use: a
/// recordings root given on the command line, a key set there, not the file's alone. A bad
/// override is the config's failure, named, and nothing else is checked.
#[test]
fn check_takes_runs_options_and_checks_what_run_would_use() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let root = file.join("recordings").display().to_string();
    // The file's root (a fresh folder) passes; the command line's lies under a file.
    let with = |args: &[&str]| {
        Check {
            root: None,
            storage_keys: "",
            rest: "buffer:\n  duration: 20\n",
            envs: &[],
            file_limit: None,
            args,
        }
        .run()
    };
    let plain = with(&[]);
    assert!(
        plain.level("recordings root") == "pass",
        "{:?}",
        plain.lines
    );
    assert!(
        plain.line("memory").contains("(20 s at"),
        "{:?}",
        plain.lines
    );
    let c = with(&["--root", &root, "--set", "buffer.duration=7"]);
    assert_eq!(c.code, 1, "{:?}", c.lines);
    assert!(
        c.line("config")
            .contains("with 2 override(s) from the command line"),
        "{:?}",
        c.lines
    );
    let line = c.line("recordings root");
    assert!(
        line.starts_with("FAIL") && line.contains("a-file"),
        "{line}"
    );
    assert!(c.line("memory").contains("(7 s at"), "{:?}", c.lines);

    let c = with(&["--set", "cameras.0.fps=fast"]);
    assert_eq!(c.code, 1);
    assert_eq!(c.lines.len(), 1, "nothing else is checked: {:?}", c.lines);
    let line = c.line("config");
    assert!(
        line.starts_with("FAIL") && line.contains("cameras.0.fps"),
        "{line}"
    );
}

#[test]
fn ntfy_reachability_and_auth_against_the_real_server() {
    let ntfy = |url: &str, extra: &str| {
        format!("trigger:\n  ntfy:\n    enabled: true\n    server: {url}\n    topic: lab4\n{extra}")
    };
    // An open server.
    let open = Ntfy::start(false);
    let c = check(&ntfy(&open.url(), ""), &[]);
    let line = c.line("ntfy");
    assert!(
        line.starts_with("pass") && line.contains("reachable"),
        "{line}"
    );

    // A protected topic: refused without a token, accepted with one.
    let protected = Ntfy::start(true);
    let token = protected.user_with_token("alice", "lab4");
    let c = check(&ntfy(&protected.url(), ""), &[]);
    assert_eq!(c.code, 1);
    let line = c.line("ntfy");
    assert!(
        line.starts_with("FAIL") && line.contains("refused"),
        "{line}"
    );
    assert!(line.contains("token"), "{line}");
    let c = check(
        &ntfy(&protected.url(), ""),
        &[("HINDSIGHT_NTFY_TOKEN", token.as_str())],
    );
    let line = c.line("ntfy");
    assert!(
        line.starts_with("pass") && line.contains("token accepted"),
        "{line}"
    );
    let c = check(
        &ntfy(&protected.url(), ""),
        &[("HINDSIGHT_NTFY_TOKEN", "tk_notavalidtokenatall00000000")],
    );
    assert!(c.line("ntfy").starts_with("FAIL"), "{:?}", c.lines);

    // Its clock two hours ahead of this machine's (a Pi before NTP set its clock): the
    // difference is said.
    let shifted = common::ntfy::ShiftedClock::start(open.port, 7200);
    let c = check(&ntfy(&shifted.url(), ""), &[]);
    let line = c.line("ntfy");
    // Whole seconds of the server's `Date`: 7200 give or take one.
    let said = |secs: i64| line.contains(&format!("clock is {secs} s behind the server's"));
    assert!(
        line.starts_with("warn")
            && line.contains("reachable")
            && (7199..=7201).any(said)
            && line.contains("NTP"),
        "{line}"
    );

    // A server that is not there.
    let url = format!("http://127.0.0.1:{}", free_port());
    let c = check(&ntfy(&url, ""), &[]);
    assert_eq!(c.code, 1);
    let line = c.line("ntfy");
    assert!(
        line.starts_with("FAIL") && line.contains("cannot reach"),
        "{line}"
    );
}

/// Under a file size limit of the process (`ulimit -f`), check names it as the largest
/// file, before which recordings go on in parts (and SIGXFSZ does not end it).
#[test]
fn a_file_size_limit_of_the_process_is_the_largest_file() {
    let c = Check {
        root: None,
        storage_keys: "",
        rest: "",
        envs: &[],
        file_limit: Some(2 << 20),
        args: &[],
    }
    .run();
    let all = c.lines.join("\n");
    assert_eq!(c.code, 0, "{all}");
    let line = c.line("largest file");
    assert!(
        line.starts_with("pass")
            && line.contains("2.0 MiB, this process's file size limit (ulimit -f")
            && line.contains("go on in a next file (…part002) before 2.0 MiB"),
        "{line}"
    );
}

/// A retention total the disk cannot hold (with what is recorded and the free space above
/// `min_free`) would never delete anything: the disk guard stops recordings first. Check
/// says so and what to set; a total that fits passes.
#[test]
fn a_retention_total_larger_than_the_disk_is_warned_of() {
    let with_total = |total: &str| {
        Check {
            root: None,
            storage_keys: &format!("  retention:\n    max_total: {total}\n"),
            rest: "",
            envs: &[],
            file_limit: None,
            args: &[],
        }
        .run()
    };
    let c = with_total("100000GiB");
    let all = c.lines.join("\n");
    let line = c.line("retention");
    assert!(
        line.starts_with("warn")
            && line.contains("more than this disk can hold")
            && line.contains("the disk guard will stop recordings")
            && line.contains("set max_total below"),
        "{all}"
    );
    let c = with_total("1MiB");
    let line = c.line("retention");
    assert!(
        line.starts_with("pass") && line.contains("more than 1.0 MiB (0 KiB now)"),
        "{line}"
    );
}

/// A recordings root on a disk mounted read-only (a real ext4 disk, as root; as the kernel
/// leaves one after errors on it): the root line fails with the disk advice, and the hint
/// is to mount it writable, not to choose another folder.
#[test]
fn a_root_on_a_read_only_disk_is_said_to_be_that() {
    let Some((dir, _image, mount, wrapper)) = ext4_disk(32, "loop,ro") else {
        return;
    };
    lsl_session();
    let config = config_file(dir.path(), &mount.join("rec"), "");
    let out = Command::new(&wrapper[0])
        .args(&wrapper[1..])
        .arg(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let c = Checked {
        code: out.status.code().unwrap(),
        lines: text.lines().map(str::to_string).collect(),
    };
    assert_eq!(c.code, 1, "{text}");
    let line = c.line("recordings root");
    assert!(
        line.starts_with("FAIL")
            && line.contains("Read-only file system")
            && line.contains("fsck")
            && line.ends_with("→ mount the disk writable (if it was not mounted read-only on purpose, check it first)"),
        "{line}"
    );
}

/// A take a crash cut, in the root at the day's start: warned of, named, with the command
/// that finishes it (the exit code stays 0: it plays as it is); once repaired, passed.
#[test]
fn a_recording_a_crash_left_unfinished_is_warned_of_with_the_command() {
    let _g = serial();
    let mut h =
        Hindsight::start(&(synthetic_config(160, 120, 30.0, 1.0) + "audio:\n  enabled: false\n"));
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", serde_json::json!({}));
    assert_eq!(code, 200, "{r}");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    h.kill9();
    let mkv = h.mkv_files().pop().unwrap();
    let name = mkv.file_name().unwrap().to_str().unwrap().to_string();
    let root = h.root.display().to_string();
    let c = check_in(&root);
    let line = c.line("unfinished");
    assert!(
        line.starts_with("warn")
            && line.contains(&format!(
                "1 file(s) a crash or power cut left unfinished under {root}: {name};"
            ))
            && line.contains(&format!("`hindsight repair {root}` finishes them")),
        "{line}"
    );
    assert_eq!(c.code, 0, "{:?}", c.lines);
    repair_ok(&h.root);
    let c = check_in(&root);
    assert_eq!(
        c.line("unfinished"),
        "pass  unfinished       no recording a crash left unfinished",
        "{:?}",
        c.lines
    );
}
