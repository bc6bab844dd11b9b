//! Threads that have nothing to do sleep: while hindsight only buffers, its control and
//! LSL threads wake no more often than the rates they serve need (the LSL status at
//! 10 Hz, with the frame samples batched at those ticks; the control loop's 100 ms tick).
//! Counted as voluntary context switches of each thread, read from /proc: a count, not a
//! timing, so a busy machine does not change it much; a polling loop that comes back, or
//! a wake per frame, multiplies it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

/// Voluntary context switches per thread name (threads of one name summed).
fn switches(pid: u32) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = entry.unwrap().path();
        let (Ok(comm), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue;
        };
        let n: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        *out.entry(comm.trim().to_string()).or_default() += n;
    }
    out
}

#[test]
fn idle_threads_wake_only_as_often_as_the_rates_they_serve() {
    let _g = serial();
    let fps = 30.0;
    let mut h = Hindsight::start(&format!(
        "buffer:\n  duration: 2\n  max_bytes: 64MiB\naudio:\n  enabled: false\ncameras:\n  - name: cam0\n    source: synthetic\n    resolution: {{width: 160, height: 120}}\n    fps: {fps}\n"
    ));
    h.wait_buffered(1.5);
    let pid = h.child.as_ref().unwrap().id();
    let secs = 4.0;
    let before = switches(pid);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let after = switches(pid);
    let rate = |name: &str| {
        (after.get(name).copied().unwrap_or(0) - before.get(name).copied().unwrap_or(0)) as f64
            / secs
    };
    let (control, lsl) = (rate("control"), rate("lsl"));
    eprintln!("wakeups/s while buffering at {fps} fps: control {control:.1}, lsl {lsl:.1}; all: {after:?}");
    // control: its 100 ms tick (10/s), with room for a few messages.
    assert!(
        control <= 15.0,
        "the control thread woke {control:.1} times a second"
    );
    // lsl: it wakes at the 10 Hz status ticks only, whatever the frame rate, and takes
    // the frame samples that came meanwhile together; liblsl's own threads, started from
    // it, carry its name and are counted with it (idle without an inlet). One wake per
    // frame (30 a second here) or a polling loop (a 2 ms timeout: 500) is above this.
    let lsl_bound = 2.0 * 10.0;
    assert!(
        lsl <= lsl_bound,
        "the LSL thread woke {lsl:.1} times a second (bound {lsl_bound})"
    );
    // The machine is alive: the capture thread did wake for its frames.
    assert!(rate("capture-cam0") >= fps * 0.5, "{after:?}");
}
