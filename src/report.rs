//! A recording's quality report: one self-contained HTML page with SVG plots (drawn by
//! `plotters`), from the files alone (`crate::recordings`): per camera, the frame interval
//! over time with its gaps and the marks, the intervals' histogram, the gaps and their
//! sizes, the effective frame rate; the WAV's length against the video's; the marks.
//! `hindsight report FILE|STEM` writes it; the web page serves it for each recording.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::frame::exif::Exposure;
use crate::recordings::{self, FrameRow, RecordingInfo, StoredRecording};

/// Why a report could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0} is not a file of a hindsight recording (<root>/<YYYY_MM_DD>/video|audio/<prefix>_<date>_<time>...)")]
    NotOurs(String),
    #[error("no recording {0} under {1}")]
    NotFound(String, String),
    #[error("cannot draw a plot: {0}")]
    Plot(String),
}

/// The recording that `arg` names: any of its files, or `<folder>/<stem>`.
pub fn locate(arg: &Path) -> Result<StoredRecording, ReportError> {
    let not_ours = || ReportError::NotOurs(arg.display().to_string());
    let name = arg
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(not_ours)?;
    // `<stem>` alone (no extension) is looked up as a name of our layout.
    let as_wav = format!("{name}.wav");
    let stem = recordings::recording_stem(name)
        .or_else(|| recordings::recording_stem(&as_wav))
        .ok_or_else(not_ours)?;
    let folder = arg
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let day = folder.canonicalize().map_err(|_| not_ours())?;
    let day = match day.file_name().and_then(|n| n.to_str()) {
        Some("video" | "audio") => day.parent().map(Path::to_path_buf).ok_or_else(not_ours)?,
        _ => day,
    };
    let root = day.parent().ok_or_else(not_ours)?;
    let day_name = day
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(not_ours)?;
    recordings::scan(root)
        .into_iter()
        .find(|r| r.key == format!("{day_name}/{stem}"))
        .ok_or_else(|| ReportError::NotFound(stem.to_string(), root.display().to_string()))
}

/// `hindsight report`: writes each recording's report, prints where.
pub fn run(args: &[PathBuf], out: Option<&Path>) -> std::process::ExitCode {
    let mut failed = false;
    for arg in args {
        let made = locate(arg).and_then(|r| {
            let info = recordings::describe(&r, &[]);
            let html = html(&r, &info)?;
            let path = match out {
                Some(o) if args.len() == 1 => o.to_path_buf(),
                Some(o) => o.join(format!("{}.report.html", info.id)),
                None => PathBuf::from(format!("{}.report.html", info.id)),
            };
            std::fs::write(&path, html)
                .map_err(|e| ReportError::NotOurs(format!("{}: {e}", path.display())))?;
            Ok((path, info))
        });
        match made {
            Ok((path, info)) => {
                let empty: Vec<&str> = info
                    .cameras
                    .iter()
                    .filter(|c| c.frames == 0)
                    .map(|c| c.camera.as_str())
                    .collect();
                println!(
                    "{}: {} frames, {} missing, {:.1} s{}{}{} → {}",
                    info.id,
                    info.frames,
                    info.missing_frames,
                    info.duration_s,
                    match info.camera_losses {
                        0 => String::new(),
                        1 => ", a camera lost once".to_string(),
                        n => format!(", cameras lost {n} times"),
                    },
                    match empty.is_empty() {
                        true => String::new(),
                        false => format!(", no frames from {}", empty.join(", ")),
                    },
                    match info.audio_outages.len() {
                        0 => String::new(),
                        n => format!(", audio lost {n}×"),
                    },
                    path.display()
                )
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// One camera's frames as the report needs them, from one pass over its sidecars. An hour
/// at 536 fps is 1.9 million rows: the report held each (80 bytes) and its interval twice
/// more, in the recorder's process when the web page asked for it; now each frame's
/// interval (4 bytes, for the median and the histogram) and lines thinned as they are read.
struct Timing {
    frames: usize,
    /// The first frame's LSL time, ns: the plots' time origin.
    first_lsl_ns: Option<i64>,
    /// Each interval to the previous frame, ms.
    intervals_ms: Vec<f32>,
    /// (seconds since the first frame, interval to the previous frame in ms), thinned.
    line: Vec<(f64, f64)>,
    /// Seconds from the first frame to the last.
    span_s: f64,
    /// (seconds since the first frame, frame number after the gap, frames missing, the
    /// interval over the gap in ms).
    gaps: Vec<(f64, u64, u64, f64)>,
    median_ms: f64,
    /// The longest interval (seconds since the first frame at its end, ms).
    longest: Option<(f64, f64)>,
    /// Intervals over twice the median: late frames, or none for a while, whether or not
    /// frame numbers are missing (a program's or a network camera's are counted here).
    long: usize,
    effective_fps: f64,
    pre_trigger: usize,
    /// What the frames were exposed with, where the sidecar says (a libcamera camera's).
    exposure: Option<Exposures>,
}

/// Builds a [`Timing`] from rows in order.
struct TimingOf {
    t: Timing,
    x_max: f64,
    line: Thinner,
    /// The exposure's lines: time, analogue and digital gain.
    exposure_lines: Option<[Thinner; 3]>,
    /// The previous row: frame number and LSL time.
    prev: Option<(u64, i64)>,
}

impl TimingOf {
    /// For about `rows` rows over `x_max` seconds from the first (the plots' width).
    fn new(x_max: f64, rows: usize) -> TimingOf {
        TimingOf {
            t: Timing {
                frames: 0,
                first_lsl_ns: None,
                intervals_ms: Vec::with_capacity(rows.saturating_sub(1)),
                line: Vec::new(),
                span_s: 0.0,
                gaps: Vec::new(),
                median_ms: 0.0,
                longest: None,
                long: 0,
                effective_fps: 0.0,
                pre_trigger: 0,
                exposure: None,
            },
            x_max,
            line: Thinner::new(x_max),
            exposure_lines: None,
            prev: None,
        }
    }

    fn push(&mut self, row: &FrameRow) {
        let t = &mut self.t;
        let t0 = *t.first_lsl_ns.get_or_insert(row.lsl_ns);
        let x = (row.lsl_ns - t0) as f64 / 1e9;
        t.frames += 1;
        t.pre_trigger += usize::from(row.pre_trigger);
        t.span_s = x;
        if let Some((frame, lsl_ns)) = self.prev {
            let ms = (row.lsl_ns - lsl_ns) as f64 / 1e6;
            t.intervals_ms.push(ms as f32);
            self.line.push((x, ms));
            // The last of the longest, as before.
            if t.longest.is_none_or(|(_, l)| ms >= l) {
                t.longest = Some((x, ms));
            }
            let step = row.frame.saturating_sub(frame);
            if step > 1 {
                t.gaps.push((x, row.frame, step - 1, ms));
            }
        }
        self.prev = Some((row.frame, row.lsl_ns));
        if let Some(e) = &row.exposure {
            t.exposure.get_or_insert_with(Exposures::default).add(e);
            let x_max = self.x_max;
            let lines = self
                .exposure_lines
                .get_or_insert_with(|| [0; 3].map(|_| Thinner::new(x_max)));
            let values = [
                e.time_us.map(f64::from),
                e.analogue_gain.map(f64::from),
                e.digital_gain.map(f64::from),
            ];
            for (line, v) in lines.iter_mut().zip(values) {
                if let Some(v) = v {
                    line.push((x, v));
                }
            }
        }
    }

    fn finish(self) -> Timing {
        let mut t = self.t;
        t.line = self.line.finish();
        if let (Some(e), Some(lines)) = (t.exposure.as_mut(), self.exposure_lines) {
            e.lines = lines.map(Thinner::finish);
        }
        let n = t.intervals_ms.len();
        if n > 0 {
            let (_, median, _) = t.intervals_ms.select_nth_unstable_by(n / 2, f32::total_cmp);
            t.median_ms = f64::from(*median);
        }
        let over = 2.0 * t.median_ms;
        t.long = t
            .intervals_ms
            .iter()
            .filter(|&&ms| f64::from(ms) > over)
            .count();
        if t.span_s > 0.0 {
            t.effective_fps = (t.frames - 1) as f64 / t.span_s;
        }
        t
    }
}

/// A camera's frames over all its parts (where a file size limit made it go on in
/// several), read line by line.
fn timing(r: &StoredRecording, id: &str, camera: &str) -> Timing {
    let (rows, span) = recordings::camera_span(r, id, camera);
    let x_max = span.map_or(0.0, |(first, last)| (last - first) as f64 / 1e9);
    let mut of = TimingOf::new(x_max.max(1e-3), rows);
    recordings::each_camera_row(r, id, camera, |row| of.push(row));
    of.finish()
}

/// Columns a plot's line is thinned to: more than its 760 pixels.
const COLUMNS: usize = 1000;

/// A line's points (in order of x, from 0 to `x_max`) thinned as they come to what a plot
/// can show: all of them up to 4 per column, else in each of [`COLUMNS`] columns its
/// first, lowest, highest and last, in order, so that no spike is lost. An hour at 536 fps
/// drew 1.9 million points (15 MB of SVG in each plot) into 700 pixels.
struct Thinner {
    x_max: f64,
    /// Every point, while there are no more than 4 per column on average.
    all: Vec<(f64, f64)>,
    thinning: bool,
    /// Once thinning: the columns done, and the one being filled.
    done: Vec<(f64, f64)>,
    column: Option<Column>,
}

/// A column's first, lowest, highest and last point, each with its place in the column.
struct Column {
    index: usize,
    seen: usize,
    kept: [(usize, (f64, f64)); 4],
}

impl Thinner {
    fn new(x_max: f64) -> Thinner {
        Thinner {
            x_max,
            all: Vec::new(),
            thinning: false,
            done: Vec::new(),
            column: None,
        }
    }

    fn push(&mut self, p: (f64, f64)) {
        if self.thinning {
            self.thin(p);
            return;
        }
        self.all.push(p);
        if self.all.len() > 4 * COLUMNS {
            self.thinning = true;
            for p in std::mem::take(&mut self.all) {
                self.thin(p);
            }
        }
    }

    fn thin(&mut self, p: (f64, f64)) {
        let index = ((p.0 / self.x_max * COLUMNS as f64) as usize).min(COLUMNS - 1);
        match &mut self.column {
            Some(c) if c.index == index => {
                c.seen += 1;
                let k = (c.seen, p);
                if p.1 < c.kept[1].1 .1 {
                    c.kept[1] = k;
                }
                if p.1 >= c.kept[2].1 .1 {
                    c.kept[2] = k;
                }
                c.kept[3] = k;
            }
            _ => {
                self.end_column();
                self.column = Some(Column {
                    index,
                    seen: 0,
                    kept: [(0, p); 4],
                });
            }
        }
    }

    fn end_column(&mut self) {
        if let Some(mut c) = self.column.take() {
            c.kept.sort_by_key(|&(k, _)| k);
            let mut last = None;
            for (k, p) in c.kept {
                if last != Some(k) {
                    self.done.push(p);
                }
                last = Some(k);
            }
        }
    }

    fn finish(mut self) -> Vec<(f64, f64)> {
        if !self.thinning {
            return self.all;
        }
        self.end_column();
        self.done
    }
}

/// What a camera's frames say they were exposed with (the sidecar's exposure columns, a
/// libcamera camera's): each value's range and changes, and its line for the plot.
#[derive(Default)]
struct Exposures {
    time: Spread<u32>,
    analogue: Spread<f32>,
    digital: Spread<f32>,
    /// Exposure time (µs), analogue and digital gain over seconds since the first frame,
    /// thinned.
    lines: [Vec<(f64, f64)>; 3],
}

impl Exposures {
    fn add(&mut self, e: &Exposure) {
        self.time.add(e.time_us);
        self.analogue.add(e.analogue_gain);
        self.digital.add(e.digital_gain);
    }

    /// Each value's range and how often it changed from one frame to the next.
    fn said(&self) -> String {
        [
            self.time.said("exposure", " µs"),
            self.analogue.said("analogue gain", ""),
            self.digital.said("digital gain", ""),
        ]
        .join(" · ")
    }
}

/// One value over the frames that said it: lowest, highest, changes from one to the
/// next; and the frames that did not say it.
struct Spread<T> {
    lo: Option<T>,
    hi: Option<T>,
    last: Option<T>,
    changes: usize,
    silent: usize,
}

impl<T> Default for Spread<T> {
    fn default() -> Self {
        Spread {
            lo: None,
            hi: None,
            last: None,
            changes: 0,
            silent: 0,
        }
    }
}

impl<T: PartialOrd + Copy + std::fmt::Display> Spread<T> {
    fn add(&mut self, v: Option<T>) {
        let Some(v) = v else {
            self.silent += 1;
            return;
        };
        if self.last.is_some_and(|l| l != v) {
            self.changes += 1;
        }
        if self.lo.is_none_or(|lo| v < lo) {
            self.lo = Some(v);
        }
        if self.hi.is_none_or(|hi| v > hi) {
            self.hi = Some(v);
        }
        self.last = Some(v);
    }

    /// "name lo–hi unit, changed N times", or "name v unit in every frame", over the
    /// frames that said a value; those that did not are counted.
    fn said(&self, name: &str, unit: &str) -> String {
        let (Some(lo), Some(hi)) = (self.lo, self.hi) else {
            return format!("{name} not reported");
        };
        let mut s = match self.changes {
            0 => format!("{name} {lo}{unit} in every frame"),
            1 => format!("{name} {lo}–{hi}{unit}, changed once"),
            n => format!("{name} {lo}–{hi}{unit}, changed {n} times"),
        };
        match self.silent {
            0 => {}
            1 => s.push_str(" (1 frame did not say)"),
            n => s.push_str(&format!(" ({n} frames did not say)")),
        }
        s
    }
}

fn plot_err(e: impl std::fmt::Display) -> ReportError {
    ReportError::Plot(e.to_string())
}

/// The frame interval over time: a line, gaps as red points, marks as orange lines, the
/// spans the camera was lost (`lost`, seconds since the first frame) shaded red.
fn interval_plot(t: &Timing, marks: &[f64], lost: &[(f64, f64)]) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 260)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let x_max = t.span_s.max(1e-3);
        let y_max = t
            .longest
            .map_or(0.0, |(_, ms)| ms)
            .max(t.median_ms * 2.0)
            .max(1.0)
            * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption("frame interval", ("sans-serif", 15))
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(48)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the first frame")
            .y_desc("ms")
            .draw()
            .map_err(plot_err)?;
        lost_and_marks(&mut chart, lost, marks, x_max, y_max)?;
        chart
            .draw_series(LineSeries::new(t.line.iter().copied(), &BLUE))
            .map_err(plot_err)?;
        let at_gaps = t
            .gaps
            .iter()
            .map(|&(x, _, _, ms)| Circle::new((x, ms), 4, RED.filled()));
        chart.draw_series(at_gaps).map_err(plot_err)?;
    }
    Ok(svg)
}

/// What each frame was exposed with over the recording (a libcamera camera's sidecar
/// columns): the exposure time in µs on the left axis, the analogue and digital gains on
/// the right, marks and the spans the camera was lost as on the interval plot. `None`
/// where no frame said any of them.
fn exposure_plot(
    t: &Timing,
    marks: &[f64],
    lost: &[(f64, f64)],
) -> Result<Option<String>, ReportError> {
    let Some(e) = &t.exposure else {
        return Ok(None);
    };
    let [time, analogue, digital] = &e.lines;
    if e.lines.iter().all(Vec::is_empty) {
        return Ok(None);
    }
    let top = |hi: Option<f64>, least: f64| hi.map_or(least, |h| h.max(least)) * 1.1;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let x_max = t.span_s.max(1e-3);
        let y_max = top(e.time.hi.map(f64::from), 1.0);
        let gain_max =
            top(e.analogue.hi.map(f64::from), 1.0).max(top(e.digital.hi.map(f64::from), 1.0));
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "exposure (blue, µs) and gains (analogue red, digital green)",
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .right_y_label_area_size(40)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(plot_err)?
            .set_secondary_coord(0f64..x_max, 0f64..gain_max);
        chart
            .configure_mesh()
            .x_desc("seconds since the first frame")
            .y_desc("µs")
            .y_label_formatter(&|us| format!("{us:.0}"))
            .draw()
            .map_err(plot_err)?;
        chart
            .configure_secondary_axes()
            .y_desc("gain")
            .draw()
            .map_err(plot_err)?;
        lost_and_marks(&mut chart, lost, marks, x_max, y_max)?;
        chart
            .draw_series(LineSeries::new(time.iter().copied(), &BLUE))
            .map_err(plot_err)?;
        chart
            .draw_secondary_series(LineSeries::new(analogue.iter().copied(), &RED))
            .map_err(plot_err)?;
        chart
            .draw_secondary_series(LineSeries::new(digital.iter().copied(), &GREEN))
            .map_err(plot_err)?;
    }
    Ok(Some(svg))
}

/// The spans the camera was lost (seconds since the first frame) shaded red, and marks
/// as orange lines, behind a plot's series.
fn lost_and_marks(
    chart: &mut ChartContext<
        '_,
        SVGBackend<'_>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    lost: &[(f64, f64)],
    marks: &[f64],
    x_max: f64,
    y_max: f64,
) -> Result<(), ReportError> {
    chart
        .draw_series(lost.iter().map(|&(a, b)| {
            Rectangle::new(
                [(a.clamp(0.0, x_max), 0.0), (b.clamp(0.0, x_max), y_max)],
                RGBColor(240, 170, 170).filled(),
            )
        }))
        .map_err(plot_err)?;
    for &m in marks {
        chart
            .draw_series(LineSeries::new(
                [(m, 0.0), (m, y_max)],
                RGBColor(230, 140, 0).stroke_width(2),
            ))
            .map_err(plot_err)?;
    }
    Ok(())
}

/// The intervals' histogram, 0.1 ms bins around the median.
fn histogram(t: &Timing) -> Result<String, ReportError> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 240)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        let hi = (t.median_ms * 3.0).max(1.0);
        let bins = 120usize;
        let width = hi / bins as f64;
        let mut counts = vec![0u32; bins + 1];
        for &ms in &t.intervals_ms {
            let k = ((f64::from(ms) / width) as usize).min(bins);
            counts[k] += 1;
        }
        let top = counts.iter().copied().max().unwrap_or(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!(
                    "frame intervals ({} of them; the last bin holds all ≥ {hi:.1} ms)",
                    t.intervals_ms.len()
                ),
                ("sans-serif", 15),
            )
            .margin(8)
            .x_label_area_size(32)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..hi + width, 0u32..top + top / 10 + 1)
            .map_err(plot_err)?;
        chart
            .configure_mesh()
            .x_desc("ms")
            .y_desc("frames")
            .draw()
            .map_err(plot_err)?;
        chart
            .draw_series(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &c)| c > 0)
                    .map(|(k, &c)| {
                        let x = k as f64 * width;
                        Rectangle::new([(x, 0), (x + width, c)], BLUE.filled())
                    }),
            )
            .map_err(plot_err)?;
    }
    Ok(svg)
}

/// The WAV's runs of digital silence (every sample exactly 0 for 1 ms or more) over its
/// parts: what hindsight puts in where no audio came, so that later samples keep their
/// times. A microphone's own quiet is never exactly 0 for that long.
fn silence_said(wavs: &[&PathBuf], rate: u32) -> String {
    let min = u64::from(rate / 1000).max(1);
    let mut runs = Vec::new();
    let mut before = 0u64;
    for wav in wavs {
        match crate::audio::wav::zero_runs(wav, min) {
            Ok(r) => runs.extend(r.into_iter().map(|(from, n)| (before + from, n))),
            Err(e) => {
                return format!(
                    "<p class=\"bad\">{} cannot be read for its silence: {}</p>",
                    esc(&wav.display().to_string()),
                    esc(&e.to_string())
                )
            }
        }
        before += std::fs::File::open(wav)
            .map_err(crate::audio::wav::WavError::from)
            .and_then(|mut f| crate::audio::wav::layout(&mut f))
            .map_or(0, |l| {
                l.data_size.min(l.data_on_disk()) / u64::from(l.block_align.max(1))
            });
    }
    let secs = |frames: u64| frames as f64 / f64::from(rate.max(1));
    let Some(&(at, longest)) = runs.iter().max_by_key(|&&(_, n)| n) else {
        return "<p class=\"silence\">Digital silence (every sample exactly 0 for 1 ms or more): none.</p>"
            .to_string();
    };
    let total: u64 = runs.iter().map(|&(_, n)| n).sum();
    format!(
        "<p class=\"silence bad\">Digital silence (every sample exactly 0 for 1 ms or more): \
         {} span(s), {:.3} s in all, the longest {:.3} s from {:.3} s into the WAV. hindsight \
         puts it in where no audio came (a lost input, an overrun: the log's line for the \
         closed WAV and the LSL event <code>audio_file_closed</code> count it), so that the \
         samples after it keep their times; or the input itself sent zeros.</p>",
        runs.len(),
        secs(total),
        secs(longest),
        secs(at)
    )
}

/// `none`, or `2 times, 8.100 s without frames`.
fn outages_said(outages: &[recordings::Outage]) -> String {
    if outages.is_empty() {
        return "none".to_string();
    }
    let known: f64 = outages.iter().filter_map(recordings::Outage::seconds).sum();
    let unknown = outages.iter().any(|o| o.seconds().is_none());
    format!(
        "{} time{}, {}{known:.3} s without frames",
        outages.len(),
        if outages.len() == 1 { "" } else { "s" },
        if unknown { "at least " } else { "" }
    )
}

/// The spans the audio input was lost while the WAV was written (its events sidecars'
/// rows), in seconds from the WAV's first sample.
fn audio_outages_said(outages: &[recordings::Outage], start: Option<f64>) -> String {
    if outages.is_empty() {
        return "<p class=\"audio-lost\">Audio input lost while recording: none noted (the events \
                sidecar has an <code>audio_lost</code> row for each loss).</p>"
            .into();
    }
    let t0 = start.unwrap_or(outages[0].lost_lsl_time);
    format!(
        "<p class=\"bad audio-lost\">Audio input lost while recording: {} time(s); the WAV \
         holds silence put in for it, so that later audio keeps its time:</p>{}",
        outages.len(),
        outages_table(
            "audio-outages",
            "lost at (s of the WAV)",
            "without audio (s)",
            outages,
            t0,
            BACK
        )
    )
}

/// How a span ended, as its table says it: by itself, or at the stop still going on.
const BACK: (&str, &str) = ("back", "the stop: never back");

/// The rig's under-voltage and hot CPU while the recording was written, in seconds from
/// `t0` (the first frame).
fn rig_said(info: &RecordingInfo, t0: f64) -> String {
    if info.under_voltage.is_empty() && info.cpu_hot.is_empty() {
        return "<p class=\"rig\">Rig power and heat: no under-voltage and no CPU at 80 °C noted \
                (the events sidecar has a row for each; a machine without these sensors, \
                not a Raspberry Pi, notes none).</p>"
            .into();
    }
    let mut h = String::from(
        "<p class=\"bad rig\">Rig power and heat: a Raspberry Pi short of power or this hot \
         slows down, and its cameras and microphone may lose data then:</p>",
    );
    let ended = ("over", "the stop: still then");
    if !info.under_voltage.is_empty() {
        h.push_str(&outages_table(
            "under-voltage",
            "under-voltage from (s)",
            "for (s)",
            &info.under_voltage,
            t0,
            ended,
        ));
    }
    if !info.cpu_hot.is_empty() {
        h.push_str(&outages_table(
            "cpu-hot",
            "CPU at 80 °C from (s)",
            "for (s)",
            &info.cpu_hot,
            t0,
            ended,
        ));
    }
    h
}

/// A table of spans without frames or audio (or of the rig's power and heat): when
/// (seconds from `t0`), until when (`ended`), how long, why.
fn outages_table(
    class: &str,
    at: &str,
    without: &str,
    outages: &[recordings::Outage],
    t0: f64,
    ended: (&str, &str),
) -> String {
    let mut h = format!(
        "<table class=\"{class}\"><tr><th>{at}</th><th>until (s)</th><th>{without}</th>\
         <th>why</th></tr>"
    );
    for o in outages {
        let until = match (o.until_lsl_time, o.came_back) {
            (Some(u), true) => format!("{:.3}, {}", u - t0, ended.0),
            (Some(u), false) => format!("{:.3}, {}", u - t0, ended.1),
            (None, _) => "not known: a crash ended the file".to_string(),
        };
        let _ = write!(
            h,
            "<tr><td>{:.3}</td><td>{until}</td><td>{}</td><td>{}</td></tr>",
            o.lost_lsl_time - t0,
            o.seconds().map_or("–".into(), |s| format!("{s:.3}")),
            esc(&o.why)
        );
    }
    h.push_str("</table>");
    h
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The report of one recording.
pub fn html(r: &StoredRecording, info: &RecordingInfo) -> Result<String, ReportError> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{id}: quality report</title><style>body{{font-family:system-ui,sans-serif;\
         max-width:800px;margin:1rem auto;padding:0 0.5rem}}table{{border-collapse:collapse}}\
         td,th{{border-bottom:1px solid #ccc;padding:0.2rem 0.5rem;text-align:left}}\
         .bad{{color:#c0262d;font-weight:600}}svg{{max-width:100%;height:auto}}</style></head><body>\
         <h1>{id}</h1><p>started {started} · trigger {trigger} · {frames} frames · {missing} missing · \
         {dur:.3} s{state}</p>",
        id = esc(&info.id),
        started = esc(&info.started),
        trigger = esc(info.trigger.as_deref().unwrap_or("?")),
        frames = info.frames,
        missing = info.missing_frames,
        dur = info.duration_s,
        state = if info.unfinished {
            " · <b class=\"bad\">unfinished</b> (hindsight repair finishes it)"
        } else if info.repaired {
            " · finished by a repair"
        } else {
            ""
        },
    );
    for cam in &info.cameras {
        // Over all its parts, where a file size limit made it go on in several.
        let t = timing(r, &info.id, &cam.camera);
        // Times are from its first frame; for a camera that delivered none (lost the whole
        // time), from when it was lost, the file's start.
        let t0 = match t.first_lsl_ns {
            Some(ns) => ns as f64 / 1e9,
            None => cam.outages.first().map_or(0.0, |o| o.lost_lsl_time),
        };
        let marks: Vec<f64> = info.marks.iter().map(|m| m.lsl_time - t0).collect();
        let _ = write!(
            h,
            "<h2 id=\"camera-{c}\">camera {c}</h2><table>\
             <tr><th>frames</th><td{none}>{n}</td></tr>\
             <tr><th>missing</th><td class=\"{bad}\">{missing} in {ngaps} gap(s), the largest {largest}</td></tr>\
             <tr><th>duration</th><td>{dur:.3} s, first to last frame</td></tr>\
             <tr><th>effective rate</th><td>{fps:.3} frames/s (median interval {median:.3} ms = {nominal:.2} fps)</td></tr>\
             <tr><th>longest interval</th><td class=\"{long_bad}\">{longest}</td></tr>\
             <tr><th>camera lost</th><td class=\"{out_bad} camera-lost\">{outages}</td></tr>\
             <tr><th>lost while recording</th><td class=\"{lost_bad}\">{lost}</td></tr>\
             {exposure}</table>",
            c = esc(&cam.camera),
            none = if cam.frames == 0 { " class=\"bad no-frames\"" } else { "" },
            n = match (cam.first_frame, cam.last_frame) {
                (Some(first), Some(last)) => format!(
                    "{} (numbers {first}–{last}; {} before the trigger)",
                    cam.frames, t.pre_trigger
                ),
                _ => "none: no frame came while the recording ran, so it has no video file \
                      (its events file says why)"
                    .to_string(),
            },
            bad = if cam.missing_frames > 0 { "bad" } else { "" },
            missing = cam.missing_frames,
            ngaps = t.gaps.len(),
            largest = cam.largest_gap,
            dur = cam.duration_s,
            fps = t.effective_fps,
            median = t.median_ms,
            nominal = if t.median_ms > 0.0 { 1000.0 / t.median_ms } else { 0.0 },
            long_bad = if t.long > 0 { "bad" } else { "" },
            longest = match t.longest {
                Some((at, ms)) => format!(
                    "{ms:.3} ms, ending at {at:.3} s; {} interval(s) over twice the median",
                    t.long
                ),
                None => "–".to_string(),
            },
            out_bad = if cam.outages.is_empty() { "" } else { "bad" },
            outages = outages_said(&cam.outages),
            lost_bad = if cam.lost_while_recording.as_ref().is_some_and(|d| d.total() > 0) {
                "bad"
            } else {
                ""
            },
            lost = match &cam.lost_while_recording {
                Some(d) => format!(
                    "camera or driver (frame-number gaps) {} · corrupt {} · buffer held by the writer {} · \
                     too large {} · writer queue full {}",
                    d.source_gaps, d.corrupt, d.buffer_held_by_writer, d.too_large, d.writer_queue_full
                ),
                None => "not known: the file was not stopped (a crash ended it)".to_string(),
            },
            exposure = t.exposure.as_ref().map_or(String::new(), |e| format!(
                "<tr><th>exposure</th><td class=\"exposure\">{}</td></tr>",
                esc(&e.said())
            )),
        );
        let since_first = |lsl: f64| lsl - t0;
        let lost: Vec<(f64, f64)> = cam
            .outages
            .iter()
            .map(|o| {
                let end = o
                    .until_lsl_time
                    .or(cam.last_lsl_time)
                    .unwrap_or(o.lost_lsl_time);
                (since_first(o.lost_lsl_time), since_first(end))
            })
            .collect();
        if t.frames > 1 {
            h.push_str("<figure class=\"plot interval\">");
            h.push_str(&interval_plot(&t, &marks, &lost)?);
            h.push_str("</figure><figure class=\"plot histogram\">");
            h.push_str(&histogram(&t)?);
            h.push_str("</figure>");
            if let Some(svg) = exposure_plot(&t, &marks, &lost)? {
                h.push_str("<figure class=\"plot exposure\">");
                h.push_str(&svg);
                h.push_str("</figure>");
            }
        }
        if !cam.outages.is_empty() {
            h.push_str("<h3>camera lost</h3>");
            h.push_str(&outages_table(
                "outages",
                "lost at (s)",
                "without frames (s)",
                &cam.outages,
                t0,
                BACK,
            ));
        }
        if !t.gaps.is_empty() {
            h.push_str(
                "<h3>gaps</h3><table><tr><th>at (s)</th><th>before frame</th><th>missing</th></tr>",
            );
            for (x, n, k, _) in t.gaps.iter().take(200) {
                let _ = write!(h, "<tr><td>{x:.3}</td><td>{n}</td><td>{k}</td></tr>");
            }
            h.push_str("</table>");
            if t.gaps.len() > 200 {
                let _ = write!(h, "<p>… and {} more</p>", t.gaps.len() - 200);
            }
        }
    }
    h.push_str("<p>Missing frame numbers are frames the camera or driver skipped or hindsight dropped before writing; \
        <i>lost while recording</i> counts them by cause between the file's start and stop (from the events sidecar's stop row). \
        Corrupt frames had no frame number of their own and are not among the missing. \
        <i>Camera lost</i> are the spans the camera delivered nothing (unplugged, its program exited, its stream closed) \
        while the file was open, from the events sidecar: a program's or a network camera's frame numbers are \
        hindsight's own count, so for those only the times show a loss, here and in the longest interval.</p>");
    // `<stem>.wav` first, then its parts (`<stem>.part002.wav`, ...), if a file size
    // limit made it go on in several.
    let mut wavs: Vec<&PathBuf> = r
        .files
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "wav"))
        .collect();
    wavs.sort_by_key(|p| {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let base = name.trim_end_matches(".wav");
        (crate::writer::files::split_part(base).1, name.to_string())
    });
    if let Some(wav) = wavs.first() {
        // What a player reads: the samples the header states (RIFF or RF64).
        let read = |wav: &Path| {
            std::fs::File::open(wav)
                .map_err(crate::audio::wav::WavError::from)
                .and_then(|mut f| crate::audio::wav::layout(&mut f))
        };
        match read(wav) {
            Ok(w) => {
                let frames: u64 = wavs
                    .iter()
                    .filter_map(|p| read(p).ok())
                    .map(|w| w.data_size.min(w.data_on_disk()) / u64::from(w.block_align.max(1)))
                    .sum();
                let secs = frames as f64 / f64::from(w.rate.max(1));
                let video = info.duration_s;
                let first_frame = info
                    .cameras
                    .iter()
                    .filter_map(|c| c.first_lsl_time)
                    .reduce(f64::min);
                let start = match (info.audio_start_lsl_time, first_frame) {
                    (Some(a), Some(v)) => format!(
                        "Its first sample was captured at LSL {a:.6} (the events sidecar), \
                         <b class=\"start-offset\">{:+.3} ms</b> from the first video frame",
                        (a - v) * 1e3
                    ),
                    _ => "Where its first sample lies is not in the files (a file from before \
                          hindsight noted it, or a clip whose audio thread did not answer in \
                          time); by design it is the first video frame's"
                        .to_string(),
                };
                let _ = write!(
                    h,
                    "<h2>audio</h2><p>{} Hz, {} channel(s): {secs:.3} s. {start}. The video spans \
                     {video:.3} s first to last frame, so the WAV's end is {:+.3} s from the last \
                     frame.</p>",
                    w.rate,
                    w.channels,
                    secs - video
                );
                h.push_str(&silence_said(&wavs, w.rate));
                h.push_str(&audio_outages_said(
                    &info.audio_outages,
                    info.audio_start_lsl_time,
                ));
            }
            Err(e) => {
                let _ = write!(
                    h,
                    "<h2>audio</h2><p class=\"bad\">the WAV cannot be read: {}</p>",
                    esc(&e.to_string())
                );
            }
        }
    }
    let t0 = info
        .cameras
        .iter()
        .filter_map(|c| c.first_lsl_time)
        .reduce(f64::min)
        .or_else(|| info.under_voltage.first().map(|o| o.lost_lsl_time))
        .or_else(|| info.cpu_hot.first().map(|o| o.lost_lsl_time))
        .unwrap_or(0.0);
    h.push_str("<h2>rig</h2>");
    h.push_str(&rig_said(info, t0));
    if !info.marks.is_empty() {
        h.push_str("<h2>marks</h2><table><tr><th>LSL time</th><th>text</th></tr>");
        for m in &info.marks {
            let _ = write!(
                h,
                "<tr><td>{:.6}</td><td>{}</td></tr>",
                m.lsl_time,
                esc(&m.text)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</body></html>\n");
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The timing of `rows`, as the report reads a camera's sidecars.
    fn timing_of(rows: &[FrameRow]) -> Timing {
        let span = match (rows.first(), rows.last()) {
            (Some(a), Some(b)) => (b.lsl_ns - a.lsl_ns) as f64 / 1e9,
            _ => 0.0,
        };
        let mut of = TimingOf::new(span.max(1e-3), rows.len());
        rows.iter().for_each(|r| of.push(r));
        of.finish()
    }

    /// `points` thinned as the report thins a line.
    fn thin(points: &[(f64, f64)], x_max: f64) -> Vec<(f64, f64)> {
        let mut t = Thinner::new(x_max);
        points.iter().for_each(|&p| t.push(p));
        t.finish()
    }

    fn exposure_said(rows: &[FrameRow]) -> Option<String> {
        timing_of(rows).exposure.map(|e| e.said())
    }

    fn row(frame: u64, ms: f64) -> FrameRow {
        FrameRow {
            frame,
            lsl_ns: (ms * 1e6) as i64,
            unix_ns: 0,
            pts_ns: 0,
            bytes: 1,
            pre_trigger: frame < 3,
            exposure: None,
        }
    }

    #[test]
    fn the_exposure_is_said_as_ranges_and_changes() {
        let exposed = |time_us, analogue_gain, digital_gain| FrameRow {
            exposure: Some(Exposure {
                time_us,
                analogue_gain,
                digital_gain,
            }),
            ..row(0, 0.0)
        };
        assert_eq!(exposure_said(&[row(0, 0.0), row(1, 10.0)]), None);
        let rows = [
            exposed(Some(2000), Some(1.0), None),
            exposed(Some(2000), Some(2.75), None),
            exposed(Some(2000), None, None),
            exposed(Some(2000), Some(1.0), None),
        ];
        assert_eq!(
            exposure_said(&rows).unwrap(),
            "exposure 2000 µs in every frame · analogue gain 1–2.75, changed 2 times \
             (1 frame did not say) · digital gain not reported"
        );
    }

    /// The points of the line drawn in `colour`.
    fn polyline_points(svg: &str, colour: &str) -> usize {
        svg.split("<polyline")
            .find(|l| l.contains(&format!("stroke=\"{colour}\"")))
            .and_then(|l| l.split("points=\"").nth(1)?.split('"').next())
            .map_or(0, |p| p.split_whitespace().count())
    }

    #[test]
    fn a_long_line_is_thinned_to_what_the_plot_shows_keeping_every_spike() {
        let short: Vec<(f64, f64)> = (0..4000).map(|i| (f64::from(i), 1.0)).collect();
        assert_eq!(thin(&short, 4000.0), short);
        // An hour at 536 fps: 2 ms intervals, one of 40 ms and one of 0.1 ms.
        let mut long: Vec<(f64, f64)> = (0..1_929_600)
            .map(|i| (f64::from(i) / 536.0, 1.866))
            .collect();
        long[1_000_000].1 = 40.0;
        long[1_500_000].1 = 0.1;
        let x_max = long.last().unwrap().0;
        let thinned = thin(&long, x_max);
        assert!(thinned.len() <= 4 * COLUMNS, "{}", thinned.len());
        assert_eq!(thinned.first(), long.first());
        assert_eq!(thinned.last(), long.last());
        assert!(thinned.contains(&long[1_000_000]) && thinned.contains(&long[1_500_000]));
        assert!(
            thinned.windows(2).all(|w| w[0].0 < w[1].0),
            "in order, once each"
        );
    }

    #[test]
    fn the_exposure_is_plotted_frame_by_frame_with_gains_on_their_own_axis() {
        assert!(
            exposure_plot(&timing_of(&[row(0, 0.0), row(1, 10.0)]), &[], &[])
                .unwrap()
                .is_none()
        );
        // Exposure 2000 µs then 4000 µs; analogue gain from 1 to 6 (the right axis goes
        // past 6, the left past 4000); no digital gain said.
        let rows: Vec<FrameRow> = (0..20u32)
            .map(|i| FrameRow {
                exposure: Some(Exposure {
                    time_us: Some(if i < 10 { 2000 } else { 4000 }),
                    analogue_gain: Some(1.0 + (i % 6) as f32),
                    digital_gain: None,
                }),
                ..row(u64::from(i), f64::from(i) * 10.0)
            })
            .collect();
        let svg = exposure_plot(&timing_of(&rows), &[0.05], &[(0.1, 0.12)])
            .unwrap()
            .unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("exposure (blue, µs)"));
        assert!(svg.contains("#0000FF") && svg.contains("#FF0000"), "{svg}");
        assert!(!svg.contains("#00FF00"), "no digital gain line");
        // Every frame is a point of the lines.
        assert_eq!(polyline_points(&svg, "#0000FF"), 20);
        assert_eq!(polyline_points(&svg, "#FF0000"), 20);
        assert!(svg.contains("#E68C00"), "the mark");
        assert!(svg.contains("#F0AAAA"), "the span the camera was lost");
        let labelled = |t: &str| svg.lines().any(|l| l.trim() == t);
        assert!(
            labelled("4000") && labelled("6.0") && labelled("gain"),
            "both axes' scales: {svg}"
        );
    }

    #[test]
    fn the_rigs_power_and_heat_are_timed_from_the_first_frame() {
        let mut info = RecordingInfo::default();
        let none = rig_said(&info, 100.0);
        assert!(
            none.contains("no under-voltage and no CPU at 80 °C noted"),
            "{none}"
        );
        info.under_voltage = vec![recordings::Outage {
            lost_lsl_time: 101.0,
            until_lsl_time: Some(131.0),
            came_back: true,
            why: "the power supply gives too little".into(),
        }];
        info.cpu_hot = vec![recordings::Outage {
            lost_lsl_time: 103.0,
            until_lsl_time: Some(140.0),
            came_back: false,
            why: "cpu-thermal at 81 °C".into(),
        }];
        let said = rig_said(&info, 100.0);
        assert!(
            said.contains("<td>1.000</td><td>31.000, over</td><td>30.000</td>"),
            "{said}"
        );
        assert!(
            said.contains("<td>3.000</td><td>40.000, the stop: still then</td><td>37.000</td>"),
            "{said}"
        );
    }

    #[test]
    fn audio_losses_are_timed_from_the_wavs_first_sample() {
        let none = audio_outages_said(&[], Some(100.0));
        assert!(none.contains("none noted"), "{none}");
        let o = |lost: f64, until: Option<f64>, back: bool| recordings::Outage {
            lost_lsl_time: lost,
            until_lsl_time: until,
            came_back: back,
            why: "no audio for 5 s <&>".into(),
        };
        let said = audio_outages_said(
            &[
                o(102.5, Some(106.0), true),
                o(107.0, Some(109.0), false),
                o(110.0, None, false),
            ],
            Some(100.0),
        );
        assert!(said.contains("lost while recording: 3 time(s)"), "{said}");
        assert!(said.contains("<td>2.500</td><td>6.000, back</td><td>3.500</td><td>no audio for 5 s &lt;&amp;&gt;</td>"), "{said}");
        assert!(
            said.contains("<td>7.000</td><td>9.000, the stop: never back</td><td>2.000</td>"),
            "{said}"
        );
        assert!(
            said.contains("<td>10.000</td><td>not known: a crash ended the file</td><td>–</td>"),
            "{said}"
        );
    }

    #[test]
    fn gaps_intervals_and_rates_come_from_the_rows() {
        // 10 ms frames; frames 5 and 6 missing.
        let rows: Vec<FrameRow> = [0, 1, 2, 3, 4, 7, 8]
            .iter()
            .map(|&n| row(n, n as f64 * 10.0))
            .collect();
        let t = timing_of(&rows);
        assert_eq!(t.gaps, vec![(0.07, 7, 2, 30.0)]);
        assert_eq!(t.intervals_ms.len(), 6);
        assert_eq!(t.line.len(), 6);
        assert!((t.median_ms - 10.0).abs() < 1e-9);
        // 7 frames over 80 ms: 6 intervals.
        assert!((t.effective_fps - 6.0 / 0.08).abs() < 1e-6);
        assert_eq!(t.pre_trigger, 3);
        let svg = interval_plot(&t, &[0.03], &[(0.045, 0.06)]).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("frame interval"));
        // The gap is drawn as a red point, the camera's loss as a shaded span.
        assert!(svg.contains("#FF0000"), "a red circle at the gap");
        assert!(svg.contains("#F0AAAA"), "the span the camera was lost");
        // The 30 ms interval over the gap is the longest, and the only one over twice
        // the median.
        assert_eq!(t.longest, Some((0.07, 30.0)));
        assert_eq!(t.long, 1);
        assert!(histogram(&t).unwrap().contains("<rect"));
    }
}
