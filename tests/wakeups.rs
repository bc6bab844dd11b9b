//! Threads that have nothing to do sleep: while hindsight only buffers, its control and
//! LSL threads wake no more often than the rates they serve need (the LSL thread once a
//! second while no inlet listens, with the frame samples batched; the control loop once
//! a second while every camera delivers, for the drop warnings; the disk thread twice a second,
//! reading the mount table only every few seconds; the systemd thread not at all when no
//! service manager listens);
//! while it records, the writer takes the frames of each 50 ms together; while a stop
//! waits for a slow camera's next frame, the control thread waits for that frame's event.
//! Counted as voluntary context switches of each thread, read from /proc: a count, not a
//! timing, so a busy machine does not change it much; a polling loop that comes back, or
//! a wake per frame, multiplies it.

mod common;

use std::time::Duration;

use common::*;

const LSL_OFF: &str = "lsl:\n  enabled: false\n";

/// A 160x120 synthetic camera at `fps` with `buffer_s` of buffer, no audio, and `extra`.
fn small_camera(buffer_s: f64, fps: f64, extra: &str) -> String {
    format!(
        "buffer:\n  duration: {buffer_s}\n  max_bytes: 64MiB\naudio:\n  enabled: false\n{extra}cameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: {fps}\n"
    )
}

/// How many threads of `pid` the kernel names `name`.
fn count_threads(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim() == name)
        .count()
}

/// How many read system calls the threads of `pid` named `name` have made
/// (`/proc/PID/task/TID/io`).
fn thread_reads(pid: u32, name: &str) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|e| {
            let dir = e.ok()?.path();
            let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
            let io = std::fs::read_to_string(dir.join("io")).ok()?;
            (comm.trim() == name).then(|| {
                io.lines()
                    .find_map(|l| l.strip_prefix("syscr:"))
                    .unwrap()
                    .trim()
                    .parse::<u64>()
                    .unwrap()
            })
        })
        .sum()
}

#[test]
fn idle_threads_wake_only_as_often_as_the_rates_they_serve() {
    let _g = serial();
    let fps = 30.0;
    let mut h = Hindsight::start(&small_camera(2.0, fps, ""));
    h.wait_buffered(1.5);
    let pid = h.child.as_ref().unwrap().id();
    let secs = 4.0;
    let before = thread_switches(pid);
    let disk_reads_before = thread_reads(pid, "disk");
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = thread_switches(pid);
    let disk_reads = thread_reads(pid, "disk") - disk_reads_before;
    let rate = |name: &str| woke_between(&before, &after, name) as f64 / secs;
    let (control, lsl, liblsl) = (rate("control"), rate("lsl"), rate("liblsl"));
    let (disk, systemd) = (rate("disk"), rate("systemd"));
    eprintln!("wakeups/s while buffering at {fps} fps: control {control:.1}, lsl {lsl:.1}, liblsl {liblsl:.1}, disk {disk:.1} ({disk_reads} reads in {secs} s), systemd {systemd:.1}; all: {after:?}");
    // disk: its look at free space twice a second, with room; and the mount table (the
    // kernel writes out every mount of the system for it) read once per 5 s in one or
    // two reads, not at every look (8 looks of 8 reads each in these 4 s, formerly).
    assert!(disk <= 3.0, "the disk thread woke {disk:.1} times a second");
    assert!(
        disk_reads <= 12,
        "the disk thread made {disk_reads} reads in {secs} s"
    );
    // systemd: not started by a service manager (no NOTIFY_SOCKET), it has no status
    // line to send once a second, and waits for the shutdown.
    assert!(
        systemd <= 0.5,
        "the systemd thread woke {systemd:.1} times a second with no service manager"
    );
    // control: once a second while every camera delivers, with room for a few messages;
    // its former 100 ms tick (10/s) is above this.
    assert!(
        control <= 3.0,
        "the control thread woke {control:.1} times a second"
    );
    // lsl: with no inlet connected it looks once a second (10 Hz status ticks while
    // one is: tests/lsl.rs), whatever the frame rate, and takes the frame samples that
    // came meanwhile together. Its status ticks (10 a second), one wake per frame (30)
    // or a polling loop (a 2 ms timeout: 500) is above this.
    let lsl_bound = 3.0;
    assert!(
        lsl <= lsl_bound,
        "the LSL thread woke {lsl:.1} times a second with no inlet (bound {lsl_bound})"
    );
    // liblsl's threads (started from ours, named apart from it) exist, and with no
    // inlet connected they only wait for the network (discovery queries, connections):
    // an outlet thread that polled would be above this.
    let threads = count_threads(pid, "liblsl");
    assert!(threads >= 2, "{threads} liblsl threads: {after:?}");
    assert!(
        liblsl <= 10.0,
        "liblsl's threads woke {liblsl:.1} times a second with no inlet"
    );
    // The machine is alive: the capture thread did wake for its frames.
    assert!(rate("capture-cam0") >= fps * 0.5, "{after:?}");
}

#[test]
fn the_writer_wakes_per_batch_not_per_frame_while_recording() {
    let _g = serial();
    let fps = 100.0;
    let mut h = Hindsight::start(&small_camera(1.0, fps, LSL_OFF));
    h.wait_buffered(0.8);
    let (code, body) = h.post("start", serde_json::json!({}));
    assert_eq!(code, 200, "{body}");
    // The pre-trigger buffer written, the file in its steady state.
    std::thread::sleep(Duration::from_secs(1));
    let pid = h.child.as_ref().unwrap().id();
    let secs = 3.0;
    let before = thread_switches(pid);
    let frames0 = h.status()["cameras"][0]["frames_written"].as_u64().unwrap();
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = thread_switches(pid);
    let frames = h.status()["cameras"][0]["frames_written"].as_u64().unwrap() - frames0;
    let (code, body) = h.post("stop", serde_json::json!({}));
    assert_eq!(code, 200, "{body}");
    h.wait_idle_files();
    let writer = woke_between(&before, &after, "writer-cam0") as f64 / secs;
    eprintln!("writer wakeups/s while recording at {fps} fps: {writer:.1} ({frames} frames written meanwhile)");
    // It did write: the frames of those seconds reached the file.
    assert!(
        frames as f64 >= fps * secs * 0.5,
        "{frames} frames written in {secs} s"
    );
    // At most twice per 50 ms period (its own sleep, and a wait for the next frame when
    // the queue was empty): 40 a second. A wake per frame is 100.
    assert!(
        writer <= 40.0,
        "the writer woke {writer:.1} times a second at {fps} fps"
    );
    let mkv = h.mkv_files();
    assert_eq!(mkv.len(), 1);
    assert!(ffprobe_frame_count(&mkv[0]) >= frames);
}

#[test]
fn a_stop_waiting_for_a_slow_cameras_next_frame_does_not_poll() {
    let _g = serial();
    // 2 frames a second: a stop waits up to half a second for the frame that shows every
    // frame before it is in.
    let mut h = Hindsight::start(&small_camera(2.0, 2.0, LSL_OFF));
    h.wait_buffered(1.0);
    let pid = h.child.as_ref().unwrap().id();
    let (mut woke, mut waited) = (0, Duration::ZERO);
    for _ in 0..3 {
        let (code, body) = h.post("start", serde_json::json!({}));
        assert_eq!(code, 200, "{body}");
        std::thread::sleep(Duration::from_millis(700));
        // Stop just after a frame came in, so that the stop waits for the next one.
        let frame = |h: &mut Hindsight| h.status()["cameras"][0]["last_frame_number"].as_u64();
        let last = frame(&mut h);
        h.wait_until("the next frame", Duration::from_secs(5), |h| {
            frame(h) != last
        });
        let before = thread_switches(pid);
        let t = std::time::Instant::now();
        let (code, body) = h.post("stop", serde_json::json!({}));
        assert_eq!(code, 200, "{body}");
        h.wait_idle_files();
        waited += t.elapsed();
        woke += woke_between(&before, &thread_switches(pid), "control");
    }
    let secs = waited.as_secs_f64();
    eprintln!("control woke {woke} times in the {secs:.2} s of three stops at 2 fps");
    // The files are complete: every stop closed its file.
    assert_eq!(h.mkv_files().len(), 3);
    // Its once-a-second look over that time (twice, for room), and a few messages per
    // stop (the command, the frame's event, the writer's report): a 2 ms poll while the
    // stop waits is 100 or more per stop.
    let bound = 2.0 * secs + 3.0 * 12.0;
    assert!(
        woke as f64 <= bound,
        "the control thread woke {woke} times in {secs:.2} s of stops (bound {bound:.0})"
    );
}

/// The CPUs a task may run on, from its `/proc/.../status` file (e.g. `0-1`).
fn cpus_allowed(status: &std::path::Path) -> String {
    std::fs::read_to_string(status)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_string()
}

/// Where and how a capture thread runs, as the kernel reports it: (policy, allowed
/// CPUs). Policy 0 is normal (SCHED_OTHER), 1 real-time SCHED_FIFO.
fn capture_scheduling(pid: u32, camera: &str) -> (u32, String) {
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() != format!("capture-{camera}") {
            continue;
        }
        let stat = std::fs::read_to_string(dir.join("stat")).unwrap();
        // After the name in parentheses: field 3 onwards; the policy is field 41.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let policy = fields[41 - 3].parse().unwrap();
        return (policy, cpus_allowed(&dir.join("status")));
    }
    panic!("no capture thread for {camera}");
}

/// By default a capture thread runs where the kernel likes, at normal priority up to
/// 150 fps and at real-time priority above (a driver's queue then lasts too short for a
/// busy scheduler); `cpu_core` and `realtime` still pin it and raise it when asked.
#[test]
fn capture_threads_are_unpinned_and_real_time_only_when_fast_or_asked() {
    let _g = serial();
    let camera = |name: &str, fps: u32, extra: &str| {
        format!("  - {{name: {name}, source: synthetic, resolution: {{width: 160, height: 96}}, fps: {fps}{extra}}}\n")
    };
    let config = format!(
        "buffer:\n  duration: 1\n  max_bytes: 64MiB\naudio:\n  enabled: false\n{LSL_OFF}cameras:\n{}{}{}",
        camera("slow", 100, ""),
        camera("fast", 200, ""),
        camera("asked", 30, ", cpu_core: 0, realtime: true"),
    );
    let mut h = Hindsight::start(&config);
    h.wait_until("every camera delivers", Duration::from_secs(20), |h| {
        h.status()["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["frames_captured"].as_u64().unwrap() > 10)
    });
    let pid = h.child.as_ref().unwrap().id();
    // The CPUs this test may use, as the kernel lists them.
    let all_cpus = cpus_allowed(std::path::Path::new("/proc/self/status"));
    let s = h.status();
    let status = |name: &str| {
        s["cameras"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    // 100 fps: normal priority, on any core, and the status says so.
    assert_eq!(capture_scheduling(pid, "slow"), (0, all_cpus.clone()));
    assert_eq!(status("slow")["realtime"], false);
    assert_eq!(status("slow")["cpu_core"], serde_json::Value::Null);
    let log = h.log_text();
    assert!(
        log.contains("realtime: auto: normal priority at 100 fps"),
        "{log}"
    );
    // 200 fps and asked: real-time priority where the system permits it (as root here);
    // where it does not, normal priority, said in the log.
    for name in ["fast", "asked"] {
        let (policy, _) = capture_scheduling(pid, name);
        if status(name)["realtime"] == true {
            assert_eq!(policy, 1, "{name}: SCHED_FIFO");
        } else {
            assert_eq!(policy, 0, "{name}");
            assert!(log.contains("real-time priority not permitted"), "{log}");
        }
    }
    assert_eq!(capture_scheduling(pid, "fast").1, all_cpus);
    // Pinned where asked.
    assert_eq!(capture_scheduling(pid, "asked").1, "0");
    assert_eq!(status("asked")["cpu_core"], 0);
    assert!(h.terminate().success());
}
