//! Bad configuration: the real binary must refuse to start, say what is wrong (key and
//! line), and start nothing: no recordings folder made, no API port opened.

mod common;

use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

struct Refusal {
    code: Option<i32>,
    stderr: String,
    root_created: bool,
    api_opened: bool,
}

fn run_with(config: &str, root: Option<&Path>) -> Refusal {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config).unwrap();
    let default_root = dir.path().join("recordings");
    let root = root.unwrap_or(&default_root);
    let port = free_port();
    let mut child = Command::new(BIN)
        // No libcamera camera (the test libcamera's virtual cameras are named by this).
        .env("LIBCAMERA_VIRTUAL_CONFIG", "/nonexistent/virtual.yaml")
        .args(["run", "--config"])
        .arg(&cfg)
        .arg("--root")
        .arg(root)
        .args(["--api", &format!("127.0.0.1:{port}")])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refusal is quick; a process still running after 10 s has started.
    let mut api_opened = false;
    for _ in 0..200 {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        api_opened |= TcpStream::connect(("127.0.0.1", port)).is_ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    Refusal {
        code: out.status.code(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        root_created: root.exists(),
        api_opened,
    }
}

fn assert_refused(r: &Refusal, expect: &[&str]) {
    assert_eq!(r.code, Some(2), "exit code; stderr:\n{}", r.stderr);
    for e in expect {
        assert!(r.stderr.contains(e), "stderr lacks `{e}`:\n{}", r.stderr);
    }
    assert!(!r.api_opened, "the API was opened before the refusal");
}

#[test]
fn an_unknown_key_is_named_with_its_line() {
    let r = run_with("buffer:\n  duration: 5\n  durration: 6\n", None);
    assert_refused(&r, &["buffer", "unknown field `durration`", "line 3"]);
    assert!(!r.root_created, "nothing may be created on a refused start");
}

/// A truncated or wrong file must not quietly record the test pattern with the defaults.
#[test]
fn an_empty_or_comment_only_config_is_refused() {
    for text in ["", "\n\n", "# storage:\n#   root: /data\n"] {
        let r = run_with(text, None);
        assert_refused(&r, &["holds no setting", "without --config"]);
        assert!(!r.root_created, "{text:?}: nothing may be created");
    }
}

#[test]
fn a_duplicate_key_and_a_tab_are_named_with_their_lines() {
    let r = run_with("rig: a\nbuffer:\n  duration: 5\nrig: b\n", None);
    assert_refused(&r, &["line 4", "duplicate field `rig`"]);
    let r = run_with("cameras:\n  - name: a\n    fps: 30\n    fps: 40\n", None);
    assert_refused(&r, &["line 4", "duplicate field `fps`"]);
    let r = run_with("storage:\n\troot: /tmp/x\n", None);
    assert_refused(&r, &["line 2", "tab"]);
}

/// An API token variable that is set but empty would make every request fail with 401
/// and nobody would know why: refused at start.
#[test]
fn an_empty_api_token_variable_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, "api:\n  token_env: EMPTY_TOKEN_FOR_TEST\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--no-dashboard", "--config"])
        .arg(&cfg)
        .arg("--root")
        .arg(dir.path().join("rec"))
        .args(["--api", &format!("127.0.0.1:{}", free_port())])
        .env("EMPTY_TOKEN_FOR_TEST", "")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("EMPTY_TOKEN_FOR_TEST, which is empty"),
        "{err}"
    );
}

#[test]
fn a_wrong_type_is_named_with_its_line() {
    let r = run_with("cameras:\n  - name: cam0\n    fps: fast\n", None);
    assert_refused(&r, &["cameras[0].fps", "line 3"]);
    assert!(!r.root_created);
}

#[test]
fn impossible_frame_rates_and_sizes_are_refused() {
    let r = run_with("cameras:\n  - fps: 0\n", None);
    assert_refused(&r, &["cameras[0].fps", "must be > 0"]);
    let r = run_with(
        "cameras:\n  - resolution: {width: 100000, height: 400}\n",
        None,
    );
    assert_refused(&r, &["cameras[0].resolution.width", "16384"]);
    let r = run_with("cameras:\n  - resolution: {width: 400, height: 4}\n", None);
    assert_refused(&r, &["height", "16 to 16384"]);
    assert!(!r.root_created);
}

/// A file size limit too small to hold a frame and its finish, or not a size at all.
#[test]
fn a_bad_file_size_limit_is_refused() {
    let r = run_with("storage:\n  max_file_size: 64kB\n", None);
    assert_refused(&r, &["storage.max_file_size", "at least 1MiB", "line 2"]);
    let r = run_with("storage:\n  max_file_size: fat\n", None);
    assert_refused(
        &r,
        &[
            "storage.max_file_size",
            "expected `auto` or a size like 2GiB",
        ],
    );
    let r = run_with("storage:\n  max_file_size: null\n", None);
    assert_refused(
        &r,
        &[
            "storage.max_file_size",
            "expected `auto` or a size like 2GiB",
        ],
    );
    assert!(!r.root_created);
}

/// Encoding threads are for libcamera cameras; anywhere else the key would do nothing.
#[test]
fn encoders_out_of_range_or_on_a_camera_that_cannot_use_them_are_refused() {
    let r = run_with("cameras:\n  - name: a\n    encoders: 0\n", None);
    assert_refused(&r, &["cameras[0].encoders", "1 to 16 threads", "line 3"]);
    let r = run_with("cameras:\n  - name: a\n    encoders: 17\n", None);
    assert_refused(&r, &["cameras[0].encoders", "`auto` or 1 to 16 threads"]);
    let r = run_with("cameras:\n  - name: a\n    encoders: all\n", None);
    assert_refused(
        &r,
        &[
            "cameras[0].encoders",
            "`auto` or 1 to 16 threads, got `all`",
        ],
    );
    let r = run_with(
        "cameras:\n  - name: a\n    source: synthetic\n    encoders: 4\n",
        None,
    );
    assert_refused(
        &r,
        &[
            "cameras[0].encoders",
            "line 4",
            "only a libcamera camera's frames are encoded on several threads",
        ],
    );
    assert!(!r.root_created);
}

/// Camera controls: only a libcamera camera takes them, in libcamera's form, and a fixed
/// exposure must fit in a frame. (Whether the camera has them: tests/libcamera.rs.)
#[test]
fn camera_controls_that_cannot_work_are_refused_with_their_line() {
    let cam = |source: &str, fps: u32, controls: &str| {
        format!(
            "cameras:\n  - name: a\n    source: {source}\n    device: \"0\"\n    fps: {fps}\n    controls:\n{controls}"
        )
    };
    let r = run_with(&cam("synthetic", 100, "      ExposureTime: 2000\n"), None);
    assert_refused(
        &r,
        &[
            "cameras[0].controls",
            "line 6",
            "only a libcamera camera is given controls (source `synthetic`",
        ],
    );
    let r = run_with(&cam("v4l2", 100, "      ExposureTime: 2000\n"), None);
    assert_refused(&r, &["cameras[0].controls", "v4l2-ctl"]);
    // 20 ms cannot be exposed in a 10 ms frame.
    let r = run_with(&cam("libcamera", 100, "      ExposureTime: 20000\n"), None);
    assert_refused(
        &r,
        &[
            "cameras[0].controls",
            "ExposureTime 20000 µs is longer than a frame at 100 fps (10000 µs)",
            "at most 10000",
        ],
    );
    let r = run_with(&cam("libcamera", 100, "      Exposure Time: 2000\n"), None);
    assert_refused(
        &r,
        &[
            "`Exposure Time` is not a libcamera control's name",
            "line 7",
        ],
    );
    let r = run_with(&cam("libcamera", 100, "      ExposureTime: 2 ms\n"), None);
    assert_refused(
        &r,
        &["ExposureTime: takes true/false, a number", "got `2 ms`"],
    );
    let r = run_with(
        &cam(
            "libcamera",
            100,
            "      FrameDurationLimits: [10000, 10000]\n",
        ),
        None,
    );
    assert_refused(&r, &["FrameDurationLimits is hindsight's to set"]);
    assert!(!r.root_created);
}

/// Two cameras naming one V4L2 device (one by index, one by path, or the default): the
/// second could never have it, so the start is refused, naming both, instead of one of
/// them being "lost" and tried again forever.
/// A camera's name is part of its files' names; two that differ only in letter case name
/// one file on a FAT or exFAT stick (and on Windows and macOS), where the second camera's
/// file could not be made when recording starts: refused at start-up instead.
#[test]
fn two_cameras_of_one_name_in_any_letter_case_are_refused() {
    for (second, expect) in [
        ("left", "`left` is used by another camera;"),
        ("Left", "`Left` is used by another camera (as `left`);"),
    ] {
        let r = run_with(
            &format!(
                "cameras:\n  - name: left\n    source: synthetic\n  - name: {second}\n    source: synthetic\n"
            ),
            None,
        );
        assert_refused(
            &r,
            &["line 4", "cameras[1].name", expect, "more than letter case"],
        );
        assert!(!r.root_created, "nothing may be created on a refused start");
    }
}

#[test]
fn two_cameras_naming_one_v4l2_device_are_refused() {
    let r = run_with(
        "cameras:\n  - name: left\n    source: v4l2\n    device: 93\n  - name: right\n    source: v4l2\n    device: /dev/video93\n",
        None,
    );
    assert_refused(
        &r,
        &[
            "line 7",
            "cameras[1].device",
            "`/dev/video93` is camera `left`'s device too",
        ],
    );
    assert!(!r.root_created, "nothing may be created on a refused start");
}

#[test]
fn an_unwritable_root_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let r = run_with("audio:\n  enabled: false\n", Some(&file.join("recordings")));
    assert_refused(&r, &["recordings root", "storage.root"]);
}

// Built with libcamera (scripts/test.sh), a libcamera camera that is not there is a
// camera not there at start-up, not a config that cannot work: hindsight runs on without
// it (tests/cameras.rs, tests/libcamera.rs).
#[test]
#[cfg_attr(
    feature = "libcamera",
    ignore = "built with --features libcamera: this build has the source; a build without it (cargo test) runs this"
)]
fn a_source_this_build_lacks_is_refused_before_anything_starts() {
    let r = run_with("cameras:\n  - source: libcamera\n", None);
    assert_refused(
        &r,
        &["cam0", "built without libcamera", "--features libcamera"],
    );
}

#[test]
fn a_bad_override_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["run", "--root"])
        .arg(dir.path().join("r"))
        .args(["--set", "buffer.duration=-3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("buffer.duration") && err.contains("0 to 3600"),
        "{err}"
    );
    assert!(!dir.path().join("r").exists());
}

#[test]
fn a_taken_api_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["run", "--root"])
        .arg(dir.path().join("r"))
        .args(["--api", &addr])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("api.listen"), "{err}");
}

#[test]
fn check_reports_each_problem_with_an_exit_code() {
    // `check` runs the LSL self-test: keep it on this machine, in this run's session.
    lsl_session();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!("storage:\n  root: {}\n", dir.path().join("rec").display()),
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("pass  config"), "{text}");
    assert!(
        text.contains("pass  camera cam0") && text.contains("test pattern"),
        "{text}"
    );
    assert!(text.contains("pass  recordings root"), "{text}");
    assert!(
        text.contains("pass  lsl") && text.contains("read a sample back"),
        "{text}"
    );
    assert!(!dir.path().join("rec").exists(), "check creates nothing");

    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "cameras:\n  - fps: 0\n").unwrap();
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("FAIL  config") && text.contains("line 2"),
        "{text}"
    );
}

/// On a machine without a sound card, ALSA and JACK print dozens of lines while audio
/// devices are probed: `run`, `check` and `devices` show one clear line instead.
#[test]
fn a_machine_without_a_sound_card_gets_one_clear_line_not_library_noise() {
    let runtime = tempfile::tempdir().unwrap();
    let quiet = |args: &[&str]| {
        let out = Command::new("timeout")
            .arg("8")
            .arg(BIN)
            .args(args)
            .env("PULSE_SERVER", "unix:/nonexistent/pulse")
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HINDSIGHT_LOG", "info")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr)
    };
    let root = tempfile::tempdir().unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    for (what, text) in [
        ("devices", quiet(&["devices"])),
        ("check", quiet(&["check"])),
        (
            "run",
            quiet(&[
                "run",
                "--no-dashboard",
                "--root",
                root.path().to_str().unwrap(),
                "--api",
                &api,
            ]),
        ),
    ] {
        assert!(
            !text.contains("ALSA lib") && !text.to_lowercase().contains("jack server"),
            "{what} prints the libraries' noise:\n{text}"
        );
        assert!(
            text.contains("the audio system says"),
            "{what} says what the audio system found:\n{text}"
        );
        if what == "devices" {
            // ALSA's `null` PCM (silence) is no microphone.
            assert!(
                !text.contains("audio input `null`")
                    && text.contains("no audio input devices (the synthetic tone stands in"),
                "{text}"
            );
        }
    }
}
