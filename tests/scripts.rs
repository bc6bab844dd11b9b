//! The rig scripts run for real: `scripts/install.sh` staged into a folder (its own user
//! database, in a user namespace: nothing on this machine changes), twice; and
//! `scripts/start-daily-recording.sh` starting hindsight with the real ntfy server, whose
//! printed commands then start and stop a recording.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::ntfy::Ntfy;
use common::*;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

fn install_into(dest: &Path, args: &[&str]) -> Output {
    Command::new("unshare")
        .args(["--user", "--map-root-user", "bash"])
        .arg(format!("{REPO}/scripts/install.sh"))
        .args(args)
        .env("DESTDIR", dest)
        .env("HINDSIGHT_BIN", BIN)
        .output()
        .unwrap()
}

#[test]
fn install_sh_installs_binary_config_user_unit_and_runs_again_keeping_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path();
    // A user database to add the service user to: this machine's, copied.
    std::fs::create_dir_all(dest.join("etc")).unwrap();
    for f in ["passwd", "group", "shadow", "gshadow"] {
        std::fs::copy(Path::new("/etc").join(f), dest.join("etc").join(f)).unwrap();
    }
    let out = install_into(dest, &["--root", "/data/recordings"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");

    let bin = dest.join("usr/local/bin/hindsight");
    let v = Command::new(&bin).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).starts_with("hindsight "));
    assert!(dest.join("usr/local/bin/hindsight-lsl-listen").exists());
    // A binary linked against a current liblsl (scripts/test.sh links the one
    // scripts/get-liblsl.sh gets) has that library installed beside it, and runs with it
    // alone; one with the bundled liblsl needs nothing installed.
    let elf = Command::new("readelf").args(["-d", BIN]).output().unwrap();
    let lib = dest.join("usr/local/lib/hindsight");
    if String::from_utf8_lossy(&elf.stdout).contains("[liblsl.so") {
        assert!(lib.join("liblsl.so.2").exists(), "{said}");
        // The library path without the folder the test build found liblsl in.
        let cache = std::env::var("HINDSIGHT_LIBLSL").unwrap_or_default();
        let others: Vec<String> = std::env::var("LD_LIBRARY_PATH")
            .unwrap_or_default()
            .split(':')
            .filter(|p| !p.is_empty() && *p != cache)
            .map(String::from)
            .collect();
        let path = std::iter::once(lib.display().to_string())
            .chain(others)
            .collect::<Vec<_>>()
            .join(":");
        let v = Command::new(&bin)
            .arg("--version")
            .env("LD_LIBRARY_PATH", path)
            .output()
            .unwrap();
        assert!(v.status.success(), "{}", text(&v));
        assert!(
            said.contains("liblsl: /usr/local/lib/hindsight/liblsl.so.2"),
            "{said}"
        );
    } else {
        assert!(!lib.exists(), "{said}");
    }
    assert!(dest
        .join("usr/local/share/doc/hindsight/README.md")
        .exists());

    // The config: the documented reference with the recordings root set, and valid.
    let config = dest.join("etc/hindsight/config.yaml");
    let root = Command::new(&bin)
        .args(["config", "--config"])
        .arg(&config)
        .arg("storage.root")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&root.stdout).trim(),
        "/data/recordings"
    );
    assert!(dest.join("data/recordings").is_dir());
    assert!(dest.join("var/lib/hindsight").is_dir());

    // The user, in the groups that open cameras and microphones.
    let passwd = std::fs::read_to_string(dest.join("etc/passwd")).unwrap();
    let user = passwd
        .lines()
        .find(|l| l.starts_with("hindsight:"))
        .unwrap_or_else(|| panic!("no user: {said}"));
    assert!(
        user.ends_with(":/var/lib/hindsight:/usr/sbin/nologin"),
        "{user}"
    );
    let group = std::fs::read_to_string(dest.join("etc/group")).unwrap();
    for g in ["video", "audio"] {
        let line = group
            .lines()
            .find(|l| l.starts_with(&format!("{g}:")))
            .unwrap();
        assert!(
            line.rsplit(':')
                .next()
                .unwrap()
                .split(',')
                .any(|m| m == "hindsight"),
            "{line}"
        );
    }
    assert!(group.lines().any(|l| l.starts_with("hindsight:")));

    // The unit, and the drop-in that lets it write the recordings root.
    let unit = std::fs::read_to_string(dest.join("etc/systemd/system/hindsight.service")).unwrap();
    assert!(unit.contains(
        "ExecStart=/usr/local/bin/hindsight run --config /etc/hindsight/config.yaml --no-dashboard"
    ));
    let dropin = std::fs::read_to_string(
        dest.join("etc/systemd/system/hindsight.service.d/recordings.conf"),
    )
    .unwrap();
    assert!(
        dropin.contains("[Service]\nReadWritePaths=/data/recordings"),
        "{dropin}"
    );
    // Not started before the disk holding the root is mounted.
    assert!(
        dropin.contains("[Unit]\nRequiresMountsFor=/data/recordings\n"),
        "{dropin}"
    );
    // systemd takes the unit with its drop-in (the binary pointed at the one just built,
    // which verify checks exists).
    require_tool("systemd-analyze");
    let check = tempfile::tempdir().unwrap();
    std::fs::write(
        check.path().join("hindsight.service"),
        unit.replace("/usr/local/bin/hindsight", BIN),
    )
    .unwrap();
    std::fs::create_dir(check.path().join("hindsight.service.d")).unwrap();
    std::fs::write(
        check.path().join("hindsight.service.d/recordings.conf"),
        &dropin,
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(check.path().join("hindsight.service"))
        .output()
        .unwrap();
    let said = text(&out);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(!said.contains("hindsight.service"), "{said}");

    // Again, after the scientist edited the config: it is kept, nothing is duplicated.
    let edited = std::fs::read_to_string(&config)
        .unwrap()
        .replace("prefix: rec", "prefix: mouse");
    std::fs::write(&config, &edited).unwrap();
    let out = install_into(dest, &["--root", "/data/recordings"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("kept your"), "{said}");
    assert_eq!(std::fs::read_to_string(&config).unwrap(), edited);
    let passwd = std::fs::read_to_string(dest.join("etc/passwd")).unwrap();
    assert_eq!(
        passwd
            .lines()
            .filter(|l| l.starts_with("hindsight:"))
            .count(),
        1
    );

    // Bad input: a relative root is refused before anything is done.
    let out = install_into(dest, &["--root", "recordings"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("absolute path"), "{}", text(&out));
}

#[test]
fn start_daily_recording_makes_todays_folders_starts_and_prints_ntfy_commands_that_work() {
    let _g = serial();
    lsl_session();
    let ntfy = Ntfy::start(false);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    // The file names one address; `hindsight run` is given another after `--`, which the
    // script must wait on and print.
    let api = format!("127.0.0.1:{}", free_port());
    let config = dir.path().join("lab.yaml");
    std::fs::write(
        &config,
        format!(
            "{}audio:\n  enabled: false\napi:\n  listen: 127.0.0.1:{}\n",
            synthetic_config(320, 240, 30.0, 2.0),
            free_port()
        ),
    )
    .unwrap();
    let script = format!("{REPO}/scripts/start-daily-recording.sh");
    let run = || {
        Command::new("bash")
            .arg(&script)
            .arg("--config")
            .arg(&config)
            .arg("--root")
            .arg(&root)
            .args([
                "--topic",
                "lab-a-daily",
                "--server",
                &ntfy.url(),
                "--background",
                "--",
                "--api",
                &api,
            ])
            .env("HINDSIGHT_BIN", BIN)
            .output()
            .unwrap()
    };
    let out = run();
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let day = chrono::Local::now().format("%Y_%m_%d").to_string();
    assert!(root.join(&day).join("video").is_dir() && root.join(&day).join("audio").is_dir());
    let pid: i32 = said
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{said}"));
    let mut h = Hindsight {
        child: None,
        api: api.clone(),
        root: root.clone(),
        dir,
        log: root.join(&day).join("hindsight.log"),
    };
    let start_line = said
        .lines()
        .find(|l| l.contains("curl -d \"Start Recording\""))
        .unwrap_or_else(|| panic!("{said}"))
        .trim()
        .to_string();
    let stop_line = said
        .lines()
        .find(|l| l.contains("curl -d \"Stop Recording\""))
        .unwrap()
        .trim()
        .to_string();
    assert_eq!(
        start_line,
        format!("curl -d \"Start Recording\" {}/lab-a-daily", ntfy.url())
    );
    assert!(said.contains(&format!("ctl --api {api} start")), "{said}");

    h.wait_until("hindsight listens to ntfy", Duration::from_secs(20), |h| {
        h.status()["ntfy"]["connected"] == true && h.status()["state"] == "buffering"
    });
    h.wait_buffered(1.9);
    // The printed commands, run as printed.
    let sh = |line: &str| {
        let o = Command::new("sh")
            .args(["-c", &format!("{line} -s -o /dev/null")])
            .output()
            .unwrap();
        assert!(o.status.success(), "{line}: {}", text(&o));
    };
    sh(&start_line);
    h.wait_until("the ntfy start records", Duration::from_secs(20), |h| {
        h.status()["state"] == "recording"
    });
    std::thread::sleep(Duration::from_secs(1));
    sh(&stop_line);
    h.wait_until("the ntfy stop stops", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();

    // Run again while it runs: nothing new starts, the commands are printed again.
    let out = run();
    let again = text(&out);
    assert!(out.status.success(), "{again}");
    assert!(again.contains("already running"), "{again}");
    assert!(again.contains("Start Recording"), "{again}");

    // SAFETY: stopping the recorder the script started.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    h.wait_until("it stops", Duration::from_secs(30), |h| {
        h.try_status().is_none()
    });
    let files = mkv_files(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    let rows = read_sidecar(&files[0]);
    assert_eq!(ffprobe_frame_count(&files[0]), rows.len() as u64);
    assert!(
        rows.len() >= 80,
        "2 s buffer and 1 s live at 30 fps: {}",
        rows.len()
    );
    mkvmerge_clean(&files[0]);
    let log = std::fs::read_to_string(&h.log).unwrap();
    assert!(
        log.contains("recording 1 started") && log.contains("source=ntfy"),
        "{log}"
    );
}

#[test]
fn install_sh_with_libcamera_says_which_libcamera_is_missing_or_unsupported_before_building() {
    let dir = tempfile::tempdir().unwrap();
    let run = |pc_dir: &Path| {
        Command::new("bash")
            .arg(format!("{REPO}/scripts/install.sh"))
            .args(["--features", "libcamera"])
            .env("DESTDIR", dir.path().join("stage"))
            .env("PKG_CONFIG_PATH", pc_dir)
            .env("PKG_CONFIG_LIBDIR", pc_dir)
            .output()
            .unwrap()
    };
    // No libcamera at all.
    let none = dir.path().join("none");
    std::fs::create_dir_all(&none).unwrap();
    let o = run(&none);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("needs libcamera's development files")
            && text(&o).contains("apt install libcamera-dev"),
        "{}",
        text(&o)
    );
    // Too old (Debian 12's 0.0.3) and too new for the libcamera crate.
    for version in ["0.0.3", "0.3.2", "0.8.0"] {
        let pc = dir.path().join(version);
        std::fs::create_dir_all(&pc).unwrap();
        std::fs::write(
            pc.join("libcamera.pc"),
            format!(
                "Name: libcamera\nDescription: x\nVersion: {version}\nLibs: -lcamera\nCflags:\n"
            ),
        )
        .unwrap();
        let o = run(&pc);
        assert!(!o.status.success());
        assert!(
            text(&o).contains(&format!("libcamera {version} is installed"))
                && text(&o).contains("builds with libcamera 0.4 to 0.7"),
            "{}",
            text(&o)
        );
    }
    // Nothing was built or staged.
    assert!(!dir.path().join("stage").exists());
}
