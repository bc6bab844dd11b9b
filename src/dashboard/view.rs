//! What the dashboard draws, from one status snapshot: plain functions of the snapshot
//! (and the clock), tested with ratatui's `TestBackend`.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use ratatui::Frame;

use crate::status::{CameraStatus, FileSummary, Status};
use crate::storage::{duration, size};

/// Everything one frame of the dashboard shows.
#[derive(Clone, Debug, Default)]
pub struct View {
    pub status: Option<Status>,
    /// Why there is no fresh status (attached: the service cannot be reached).
    pub error: Option<String>,
    /// The answer to the last key, shown for a few seconds.
    pub message: Option<String>,
    /// Attached to a service (`hindsight dashboard`) at this address, or in-process.
    pub attached: Option<String>,
    /// The newest log lines (in-process only: the log cannot go to the terminal).
    pub log: Vec<String>,
    /// Unix time now, for "3 min ago".
    pub now_unix: f64,
}

pub fn state_style(state: &str) -> Style {
    let color = match state {
        "recording" => Color::Red,
        "buffering" => Color::Green,
        _ => Color::Yellow,
    };
    Style::default()
        .fg(Color::Black)
        .bg(color)
        .add_modifier(Modifier::BOLD)
}

/// `[██████░░░░]`, `width` cells, for `fill` in 0..=1.
pub fn bar(fill: f64, width: usize) -> String {
    let fill = if fill.is_finite() {
        fill.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let full = (fill * width as f64).round() as usize;
    format!("[{}{}]", "█".repeat(full), "░".repeat(width - full))
}

pub fn clock(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn ago(now: f64, then: f64) -> String {
    let d = (now - then).max(0.0);
    if d < 90.0 {
        format!("{d:.0} s ago")
    } else if d < 5400.0 {
        format!("{:.0} min ago", d / 60.0)
    } else {
        format!("{:.1} h ago", d / 3600.0)
    }
}

fn local_time(unix: f64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(unix as i64, 0)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_default()
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

fn label(text: &str) -> Span<'static> {
    Span::styled(format!("{text} "), Style::default().fg(Color::DarkGray))
}

/// Draws the whole dashboard.
pub fn render(frame: &mut Frame, view: &View) {
    let area = frame.area();
    let log_height = if view.attached.is_none() { 6 } else { 0 };
    // A line more for the marker trigger, where it is on.
    let markers = view
        .status
        .as_ref()
        .is_some_and(|s| marker_trigger(s).is_some());
    let [head, cameras, rest, log, keys] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(2 + camera_rows(view.status.as_ref())),
        Constraint::Length(6 + u16::from(markers)),
        Constraint::Min(log_height),
        Constraint::Length(1),
    ])
    .areas(area);
    render_head(frame, head, view);
    render_cameras(frame, cameras, view);
    render_rest(frame, rest, view);
    if view.attached.is_none() && log.height > 2 {
        render_log(frame, log, view);
    }
    render_keys(frame, keys, view);
}

fn render_head(frame: &mut Frame, area: Rect, view: &View) {
    let title = match &view.attached {
        Some(addr) => format!(" hindsight — attached to {addr} "),
        None => " hindsight ".to_string(),
    };
    let mut lines = Vec::new();
    match &view.status {
        Some(s) => {
            let mut first = vec![
                Span::styled(
                    format!(" {} ", s.state.as_str().to_uppercase()),
                    state_style(s.state.as_str()),
                ),
                Span::raw(format!(
                    "  rig {}  up {}  v{}",
                    s.rig,
                    clock(s.uptime_s),
                    s.version
                )),
            ];
            if view.error.is_some() {
                first.push(Span::styled(
                    "  (status is stale)",
                    Style::default().fg(Color::Yellow),
                ));
            }
            lines.push(Line::from(first));
            match &s.recording {
                Some(r) => {
                    let mut l = format!(
                        "recording {}: {:.1} s, {:.1} s before the trigger, from {}",
                        r.id, r.elapsed_s, r.pre_trigger_s, r.trigger_source
                    );
                    if !r.trigger_text.is_empty() {
                        l.push_str(&format!(" \"{}\"", r.trigger_text));
                    }
                    if let Some(left) = r.remaining_s {
                        l.push_str(&format!(", stops in {left:.0} s"));
                    }
                    lines.push(Line::from(l));
                }
                None => lines.push(last_files_line(&s.last_files)),
            }
        }
        None => lines.push(Line::from(Span::styled(
            " CONNECTING ",
            state_style("idle"),
        ))),
    }
    if let Some(e) = &view.error {
        lines.push(Line::from(Span::styled(
            e.clone(),
            Style::default().fg(Color::Red),
        )));
    } else if let Some(w) = view.status.as_ref().and_then(|s| s.warnings.last()) {
        lines.push(Line::from(Span::styled(
            format!("! {w}"),
            Style::default().fg(Color::Yellow),
        )));
    }
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(title)),
        area,
    );
}

/// The newest recording's file (one with a video, if any has one) and, in yellow, what
/// it lacks and what the recording's other cameras' files lack: a camera lost for the
/// whole take made no video, and must not hide behind the one that did.
fn last_files_line(files: &[FileSummary]) -> Line<'static> {
    let newest = files.iter().map(|f| f.recording_id).max();
    let of_newest: Vec<&FileSummary> = files
        .iter()
        .filter(|f| Some(f.recording_id) == newest)
        .collect();
    let Some(shown) = of_newest
        .iter()
        .rev()
        .find(|f| f.error.is_none())
        .or(of_newest.last())
    else {
        return Line::from("no recording yet");
    };
    let lacks = |f: &FileSummary| {
        let mut lacks = Vec::new();
        if f.missing_frames > 0 {
            lacks.push(format!("{} missing", f.missing_frames));
        }
        if f.camera_losses > 0 {
            lacks.push(format!(
                "camera lost {}×, {:.1} s",
                f.camera_losses, f.camera_lost_s
            ));
        }
        match &f.error {
            Some(_) if f.frames == 0 => lacks.push("no video file".into()),
            Some(e) => lacks.push(e.clone()),
            None => {}
        }
        lacks.join(", ")
    };
    let mut said = vec![lacks(shown)];
    for f in of_newest.iter().filter(|f| !std::ptr::eq(**f, *shown)) {
        let l = lacks(f);
        if !l.is_empty() {
            said.push(format!("{}: {l}", f.camera));
        }
    }
    said.retain(|l| !l.is_empty());
    let mut l = vec![Span::raw(format!(
        "last file: {} ({} frames, {:.1} s)",
        file_name(&shown.path),
        shown.frames,
        shown.duration_s
    ))];
    // What they lack, where a glance finds it.
    if !said.is_empty() {
        l.push(Span::styled(
            format!(" {}", said.join("; ")),
            Style::default().fg(Color::Yellow),
        ));
    }
    Line::from(l)
}

fn camera_lines(c: &CameraStatus) -> Vec<Line<'static>> {
    let mut head = vec![
        Span::styled(
            format!("{} ", c.name),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(if c.width == 0 {
            // Not opened since start-up: its size comes with its first open.
            format!("{} (not opened yet) {}", c.source, c.codec)
        } else {
            format!("{} {}x{} {}", c.source, c.width, c.height, c.codec)
        }),
    ];
    if c.lost {
        head.push(Span::styled(
            "  LOST",
            Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
        ));
        if let Some(e) = &c.last_error {
            head.push(Span::raw(format!(" {e}")));
        }
    }
    let dropped_style = if c.frames_dropped > 0 {
        Style::default().fg(Color::Yellow)
    } else {
        Style::default()
    };
    let mut counters = vec![
        label("  fps"),
        Span::raw(format!("{:.1} / {}", c.fps, c.target_fps)),
        label("  captured"),
        Span::raw(c.frames_captured.to_string()),
        label("  written"),
        Span::raw(c.frames_written.to_string()),
        label("  dropped"),
        Span::styled(c.frames_dropped.to_string(), dropped_style),
    ];
    // The capture thread's share of a core: near 100%, it cannot take every frame.
    if let Some(cpu) = c.capture_cpu {
        let style = if cpu >= crate::capture::BUSY {
            Style::default().fg(Color::Yellow)
        } else {
            Style::default()
        };
        counters.push(label("  capture cpu"));
        counters.push(Span::styled(format!("{:.0}%", cpu * 100.0), style));
    }

    let buffer = vec![
        label("  buffer"),
        Span::styled(bar(c.buffer_fill, 20), Style::default().fg(Color::Cyan)),
        Span::raw(format!(
            " {:.0}%  {:.1} s  {} frames",
            c.buffer_fill * 100.0,
            c.buffered_seconds,
            c.buffered_frames
        )),
    ];
    let mut lines = vec![Line::from(head), Line::from(counters), Line::from(buffer)];
    // What the newest frame was exposed with (a libcamera camera's), on a line of its own.
    if let Some(e) = &c.exposure {
        lines.push(Line::from(Span::raw(format!("  {e}"))));
    }
    lines
}

/// The lines the cameras take: 3 each, and one more for a camera's exposure.
fn camera_rows(s: Option<&Status>) -> u16 {
    s.map_or(3, |s| {
        s.cameras
            .iter()
            .map(|c| 3 + u16::from(c.exposure.is_some()))
            .sum::<u16>()
            .max(3)
    })
}

fn render_cameras(frame: &mut Frame, area: Rect, view: &View) {
    let lines: Vec<Line> = view
        .status
        .iter()
        .flat_map(|s| s.cameras.iter().flat_map(camera_lines))
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP).title(" cameras ")),
        area,
    );
}

/// The marker trigger's state, where it is on.
fn marker_trigger(s: &Status) -> Option<&str> {
    s.lsl.as_ref()?.marker_trigger.as_deref()
}

fn render_rest(frame: &mut Frame, area: Rect, view: &View) {
    let Some(s) = &view.status else {
        frame.render_widget(Block::default().borders(Borders::TOP), area);
        return;
    };
    let mut lines = Vec::new();
    // ntfy
    match &s.ntfy {
        Some(n) => {
            let (word, style) = if n.connected {
                ("connected", Style::default().fg(Color::Green))
            } else {
                (
                    "DISCONNECTED",
                    Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
                )
            };
            let mut l = vec![label("ntfy "), Span::styled(word, style)];
            l.push(Span::raw(format!(" {}/{}", n.server, n.topic)));
            if !n.connected {
                l.push(Span::raw(format!(" ({})", n.state)));
            }
            lines.push(Line::from(l));
            lines.push(Line::from(match (&n.last_message, n.last_message_time) {
                (Some(m), Some(t)) => format!(
                    "     last message \"{m}\" at {} ({})",
                    local_time(t),
                    ago(view.now_unix, t)
                ),
                (Some(m), None) => format!("     last message \"{m}\""),
                _ => "     no message yet".to_string(),
            }));
        }
        None => lines.push(Line::from(vec![label("ntfy "), Span::raw("off")])),
    }
    // The LSL marker trigger: whether it follows the experiment's stream (markers sent
    // before it does are lost).
    if let Some(state) = marker_trigger(s) {
        let style = if state.starts_with("following") {
            Style::default().fg(Color::Green)
        } else {
            Style::default()
                .fg(Color::Yellow)
                .add_modifier(Modifier::BOLD)
        };
        lines.push(Line::from(vec![
            label("lsl  "),
            Span::raw("markers: "),
            Span::styled(state.to_string(), style),
        ]));
    }
    // audio
    match &s.audio {
        Some(a) => {
            // -60 dBFS .. 0 dBFS
            let fill = ((a.level_dbfs + 60.0) / 60.0).clamp(0.0, 1.0);
            let mut l = vec![
                label("audio"),
                Span::styled(bar(fill, 20), Style::default().fg(Color::Magenta)),
                Span::raw(format!(
                    " {:.0} dBFS  {}  {} Hz {} ch",
                    a.level_dbfs.max(-99.0),
                    a.device,
                    a.sample_rate,
                    a.channels
                )),
            ];
            if a.synthetic {
                l.push(Span::styled(
                    "  SYNTHETIC TONE",
                    Style::default().fg(Color::Yellow),
                ));
            }
            if !a.capturing {
                l.push(Span::styled(
                    format!("  {}", a.state),
                    Style::default().fg(Color::Red),
                ));
            }
            lines.push(Line::from(l));
        }
        None => lines.push(Line::from(vec![label("audio"), Span::raw("off")])),
    }
    // disk and file
    if let Some(d) = s.disk.as_ref().filter(|d| d.error.is_some()) {
        lines.push(Line::from(vec![
            label("disk "),
            Span::styled(
                d.error.clone().unwrap_or_default(),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ),
        ]));
    } else if let Some(d) = &s.disk {
        let mut l = vec![
            label("disk "),
            Span::raw(format!(
                "{} free of {}",
                size(d.free_bytes),
                size(d.total_bytes)
            )),
        ];
        if let Some(left) = d.seconds_left {
            l.push(Span::raw(format!(
                ", {} left at {}/s",
                duration(left),
                size(d.write_rate_bytes_per_s as u64)
            )));
        }
        if let Some(g) = &d.guard {
            l.push(Span::styled(
                format!("  {g}"),
                Style::default().fg(Color::Red).add_modifier(Modifier::BOLD),
            ));
        }
        lines.push(Line::from(l));
    }
    let files: Vec<String> = s
        .cameras
        .iter()
        .filter_map(|c| {
            c.current_file.as_ref().map(|f| {
                format!(
                    "{} {}",
                    file_name(f),
                    size(c.current_file_bytes.unwrap_or(0))
                )
            })
        })
        .collect();
    lines.push(Line::from(vec![
        label("file "),
        Span::raw(if files.is_empty() {
            "none open".to_string()
        } else {
            files.join(", ")
        }),
    ]));
    frame.render_widget(
        Paragraph::new(lines).block(Block::default().borders(Borders::TOP)),
        area,
    );
}

fn render_log(frame: &mut Frame, area: Rect, view: &View) {
    let room = area.height.saturating_sub(1) as usize;
    let skip = view.log.len().saturating_sub(room);
    let lines: Vec<Line> = view.log[skip..]
        .iter()
        .map(|l| {
            Line::from(Span::styled(
                short_log_line(l),
                Style::default().fg(Color::DarkGray),
            ))
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::TOP).title(" log ")),
        area,
    );
}

/// A log line with its timestamp cut to the time of day (`20:02:25.614`).
pub fn short_log_line(line: &str) -> String {
    let b = line.as_bytes();
    let iso =
        b.len() > 27 && b[4] == b'-' && b[10] == b'T' && b[..4].iter().all(u8::is_ascii_digit);
    match (iso, line.find('Z')) {
        (true, Some(z)) if z > 19 => format!("{}{}", &line[11..23.min(z)], &line[z + 1..]),
        _ => line.to_string(),
    }
}

fn render_keys(frame: &mut Frame, area: Rect, view: &View) {
    let key = |k: &str| {
        Span::styled(
            format!(" {k} "),
            Style::default().fg(Color::Black).bg(Color::Gray),
        )
    };
    let quit = if view.attached.is_some() {
        " detach (the service keeps running)"
    } else {
        " quit (files are finished first)"
    };
    let mut spans = vec![
        key("S"),
        Span::raw(" start  "),
        key("X"),
        Span::raw(" stop  "),
        key("Q"),
        Span::raw(quit),
    ];
    if let Some(m) = &view.message {
        spans.push(Span::styled(
            format!("   {m}"),
            Style::default().add_modifier(Modifier::BOLD),
        ));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
