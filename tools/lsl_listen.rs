//! `hindsight-lsl-listen`: shows a running hindsight's LSL streams live, to check a rig.
//!
//!     hindsight-lsl-listen                 # every stream whose source id starts with hindsight_
//!     hindsight-lsl-listen --name VideoStream --raw --seconds 10
//!
//! Events are printed as they come; frame and status streams get one line per second (the
//! frame rate, the last frame number and gaps, recording_active), or every sample with
//! `--raw`. Timestamps are on this machine's LSL clock (clock-corrected), with their age.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use lsl::Pullable;

struct Args {
    name: Option<String>,
    raw: bool,
    seconds: Option<f64>,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        name: None,
        raw: false,
        seconds: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--name" => a.name = Some(it.next().ok_or("--name needs a stream name prefix")?),
            "--raw" => a.raw = true,
            "--seconds" => {
                let v = it.next().ok_or("--seconds needs a number")?;
                a.seconds = Some(
                    v.parse()
                        .map_err(|_| format!("--seconds {v}: not a number"))?,
                );
            }
            "-h" | "--help" => {
                println!("usage: hindsight-lsl-listen [--name PREFIX] [--raw] [--seconds N]");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other} (see --help)")),
        }
    }
    Ok(a)
}

struct Stream {
    name: String,
    kind: lsl::ChannelFormat,
    inlet: lsl::StreamInlet,
    correction: f64,
    count: u64,
    last_frame: Option<f64>,
    gaps: u64,
    last: Vec<f64>,
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hindsight-lsl-listen: {e}");
            std::process::exit(2);
        }
    };
    hindsight::lsl::quiet_unless_configured();
    let found = lsl::resolve_streams(2.0).unwrap_or_default();
    let mut streams = BTreeMap::new();
    for info in found {
        let name = info.stream_name();
        let wanted = match &args.name {
            Some(prefix) => name.starts_with(prefix.as_str()),
            None => info.source_id().starts_with("hindsight_"),
        };
        if !wanted {
            continue;
        }
        let Ok(inlet) = lsl::StreamInlet::new(&info, 360, 0, true) else {
            continue;
        };
        if inlet.open_stream(5.0).is_err() {
            continue;
        }
        let mut full = inlet.info(5.0).unwrap_or(info);
        let labels = channel_labels(&mut full);
        println!(
            "{name}: type {}, {} channel(s) {labels:?}, {} Hz, source_id {}, host {}",
            full.stream_type(),
            full.channel_count(),
            full.nominal_srate(),
            full.source_id(),
            full.hostname()
        );
        let correction = inlet.time_correction(2.0).unwrap_or(0.0);
        streams.insert(
            name.clone(),
            Stream {
                name,
                kind: full.channel_format(),
                inlet,
                correction,
                count: 0,
                last_frame: None,
                gaps: 0,
                last: Vec::new(),
            },
        );
    }
    if streams.is_empty() {
        eprintln!("no hindsight LSL stream found (is hindsight running with lsl.enabled: true?)");
        std::process::exit(1);
    }
    let start = Instant::now();
    let mut next_summary = start + Duration::from_secs(1);
    while args
        .seconds
        .is_none_or(|s| start.elapsed().as_secs_f64() < s)
    {
        for s in streams.values_mut() {
            pull_all(s, args.raw);
        }
        if Instant::now() >= next_summary && !args.raw {
            for s in streams.values_mut() {
                summarize(s);
            }
            next_summary += Duration::from_secs(1);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn channel_labels(info: &mut lsl::StreamInfo) -> Vec<String> {
    let mut labels = Vec::new();
    let mut ch = info.desc().child("channels").child("channel");
    while ch.is_valid() && !ch.empty() {
        labels.push(ch.child_value_named("label"));
        ch = ch.next_sibling_named("channel");
    }
    labels
}

fn pull_all(s: &mut Stream, raw: bool) {
    loop {
        if s.kind == lsl::ChannelFormat::String {
            let r: Result<(Vec<String>, f64), _> = s.inlet.pull_sample(0.0);
            match r {
                Ok((v, ts)) if ts != 0.0 => {
                    println!("{} {:.6}: {}", s.name, ts + s.correction, v.join(" | "))
                }
                _ => return,
            }
        } else {
            let r: Result<(Vec<f64>, f64), _> = s.inlet.pull_sample(0.0);
            match r {
                Ok((v, ts)) if ts != 0.0 => {
                    s.count += 1;
                    // A frame stream's first channel is the frame number: count gaps.
                    if !s.name.ends_with("_Status") {
                        if let (Some(prev), Some(&n)) = (s.last_frame, v.first()) {
                            if n > prev + 1.0 {
                                s.gaps += (n - prev - 1.0) as u64;
                            }
                        }
                    }
                    s.last_frame = v.first().copied();
                    if raw {
                        let age = lsl::local_clock() - (ts + s.correction);
                        println!(
                            "{} {:.6} (age {age:.3} s): {v:?}",
                            s.name,
                            ts + s.correction
                        );
                    }
                    s.last = v;
                }
                _ => return,
            }
        }
    }
}

fn summarize(s: &mut Stream) {
    if s.kind == lsl::ChannelFormat::String {
        return;
    }
    if s.name.ends_with("_Status") {
        if let [status, _unix, fps, dropped, buffered, ..] = s.last[..] {
            let state = match status as i64 {
                0 => "idle",
                1 => "recording",
                2 => "buffering",
                _ => "?",
            };
            println!(
                "{}: {state}, {fps:.1} fps, {dropped} dropped, {buffered:.1} s buffered ({} samples/s)",
                s.name, s.count
            );
        }
    } else if let [frame, _unix, _key, active, ..] = s.last[..] {
        println!(
            "{}: {} samples/s, last frame {frame}, {} gaps so far, recording_active {active}",
            s.name, s.count, s.gaps
        );
    }
    s.count = 0;
}
