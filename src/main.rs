//! The `hindsight` command: parses the command line and hands over to the library.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use hindsight::api::client::ApiClient;
use hindsight::cli::{Cli, Cmd, ConfigArgs, CtlAction, CtlArgs};
use hindsight::config::{self, Config};
use serde_norway::Value;

fn main() -> ExitCode {
    // A write past the process's file size limit (`ulimit -f`, systemd's `LimitFSIZE=`)
    // then fails with "File too large", which the recorder, repair and check handle,
    // instead of ending the process with SIGXFSZ (PulseAudio's client sizes a shared
    // memory file of tens of MiB as the audio opens). `run` knows the limit and starts a
    // next part before it.
    // SAFETY: ignoring a signal, before any thread is started.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    // Before any thread: it sets the environment.
    hindsight::source::libcamera::quiet_unless_configured();
    let cli = Cli::parse();
    // The benchmark prints figures; routine log lines would only get in their way.
    hindsight::logging::init(if matches!(cli.command, Cmd::Bench(_)) {
        "warn"
    } else {
        "info"
    });
    // Before any liblsl call: liblsl reads its configuration once.
    hindsight::lsl::quiet_unless_configured();
    match cli.command {
        Cmd::Run(args) => match load_for_run(&args.config) {
            Ok((config, origin)) => match hindsight::run::run(
                config,
                &origin,
                hindsight::run::RunOptions {
                    no_dashboard: args.no_dashboard,
                },
            ) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("hindsight: {e:#}");
                    ExitCode::from(2)
                }
            },
            Err(e) => {
                eprintln!("hindsight: {e}");
                ExitCode::from(2)
            }
        },
        Cmd::Ctl(args) => ctl(args),
        Cmd::Config { config, key } => {
            let value = load_for_run(&config).and_then(|(c, _)| {
                c.get(key.as_deref().unwrap_or_default())
                    .map_err(|e| e.to_string())
            });
            match value {
                // A text plainly (for scripts), anything else as YAML.
                Ok(Value::String(s)) => println!("{s}"),
                Ok(v) => print!("{}", serde_norway::to_string(&v).unwrap_or_default()),
                Err(e) => {
                    eprintln!("hindsight config: {e}");
                    return ExitCode::from(2);
                }
            }
            ExitCode::SUCCESS
        }
        Cmd::Dashboard { api, token_env } => {
            let addr = api_addr(api);
            let client = match ApiClient::new_with_timeout(
                &addr,
                std::env::var(&token_env).ok(),
                std::time::Duration::from_secs(2),
            ) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("hindsight dashboard: {e}");
                    return ExitCode::from(2);
                }
            };
            let mut link = hindsight::dashboard::Attached { client };
            match hindsight::dashboard::run(&mut link, Some(addr)) {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("hindsight dashboard: cannot use this terminal: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Cmd::Check { config } => {
            let loaded = load_for_run(&config).map(|(c, origin)| match config.overrides() {
                0 => (c, origin),
                n => (
                    c,
                    format!("{origin} with {n} override(s) from the command line"),
                ),
            });
            hindsight::check::run(loaded)
        }
        Cmd::Repair { files } => hindsight::repair::run(&files),
        Cmd::Report { files, out } => hindsight::report::run(&files, out.as_deref()),
        Cmd::Devices => {
            for line in hindsight::devices::list() {
                println!("{line}");
            }
            ExitCode::SUCCESS
        }
        Cmd::Bench(args) => match hindsight::bench::run(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("hindsight bench: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `--config`, else $HINDSIGHT_CONFIG, else /etc/hindsight/config.yaml if present.
fn config_path(arg: Option<PathBuf>) -> Option<PathBuf> {
    arg.or_else(|| std::env::var_os("HINDSIGHT_CONFIG").map(PathBuf::from))
        .or_else(|| {
            let etc = Path::new("/etc/hindsight/config.yaml");
            etc.exists().then(|| etc.to_path_buf())
        })
}

/// The configuration `run` (and `check`, `config`) works with: the file, then the
/// command line's overrides; and where it came from.
fn load_for_run(args: &ConfigArgs) -> Result<(Config, String), String> {
    let loaded =
        Config::load(config_path(args.config.clone()).as_deref()).map_err(|e| e.to_string())?;
    let mut sets: Vec<(String, Value)> = Vec::new();
    if let Some(s) = &args.source {
        s.parse::<config::SourceKind>().map_err(|e| e.to_string())?;
        sets.push(("cameras.*.source".into(), Value::String(s.clone())));
    }
    if let Some(r) = &args.root {
        sets.push((
            "storage.root".into(),
            Value::String(r.display().to_string()),
        ));
    }
    if let Some(a) = &args.api {
        sets.push(("api.listen".into(), Value::String(a.clone())));
    }
    if let Some(r) = &args.rig {
        sets.push(("rig".into(), Value::String(r.clone())));
    }
    for s in &args.set {
        sets.push(config::parse_override(s).map_err(|e| e.to_string())?);
    }
    let config = loaded
        .config
        .with_overrides(&sets)
        .map_err(|e| e.to_string())?;
    Ok((config, loaded.origin))
}

/// `--api`, else $HINDSIGHT_API, else the default address.
fn api_addr(arg: Option<String>) -> String {
    arg.or_else(|| std::env::var("HINDSIGHT_API").ok())
        .unwrap_or_else(|| "127.0.0.1:8787".into())
}

fn ctl(args: CtlArgs) -> ExitCode {
    let addr = api_addr(args.api);
    let token = std::env::var(&args.token_env).ok();
    let timeout = std::time::Duration::from_secs_f64(args.timeout.clamp(0.1, 3600.0));
    let client = match ApiClient::new_with_timeout(&addr, token, timeout) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("hindsight ctl: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.action {
        CtlAction::Status { json } => {
            return match client.status() {
                Ok(s) => {
                    if json {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&s).expect("status serializes")
                        );
                    } else {
                        print_status(&s);
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("hindsight ctl: {e}");
                    ExitCode::from(2)
                }
            };
        }
        CtlAction::Start { seconds } => client.start(seconds),
        CtlAction::Stop => client.stop(),
        CtlAction::Clip { seconds } => client.clip(seconds),
        CtlAction::Mark { text } => client.mark(&text.join(" ")),
    };
    match result {
        Ok(r) => {
            println!("{} ({}): {}", r.outcome, r.state, r.message);
            for f in &r.files {
                println!("  {f}");
            }
            if r.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("hindsight ctl: {e}");
            match e {
                hindsight::api::client::CommandError::NoAnswer(_) => ExitCode::from(3),
                _ => ExitCode::from(2),
            }
        }
    }
}

fn print_status(s: &hindsight::status::Status) {
    println!("state: {} (rig {}, up {:.0} s)", s.state, s.rig, s.uptime_s);
    if let Some(r) = &s.recording {
        println!(
            "recording {}: {:.1} s, {:.1} s before trigger, from {} ({})",
            r.id, r.elapsed_s, r.pre_trigger_s, r.trigger_source, r.trigger_text
        );
    }
    for f in &s.current_files {
        println!("writing: {f}");
    }
    for c in &s.cameras {
        if c.lost {
            println!(
                "{}: {} LOST: {}",
                c.name,
                c.source,
                c.lost_why().unwrap_or("it delivers no usable frame")
            );
            continue;
        }
        println!(
            "{}: {} {}x{} {:.1}/{} fps, captured {}, written {}, dropped {}, buffer {:.1} s ({:.0}%)",
            c.name,
            c.source,
            c.width,
            c.height,
            c.fps,
            c.target_fps,
            c.frames_captured,
            c.frames_written,
            c.frames_dropped,
            c.buffered_seconds,
            c.buffer_fill * 100.0
        );
        if let Some(e) = &c.exposure {
            println!("{}: {e}", c.name);
        }
    }
    if let Some(a) = &s.audio {
        let now = if a.capturing {
            format!("{:.0} dBFS", a.level_dbfs)
        } else {
            a.state.clone()
        };
        println!(
            "audio: {} {} Hz {} ch, {now}",
            a.device, a.sample_rate, a.channels
        );
    }
    if let Some(d) = &s.disk {
        match &d.error {
            Some(e) => println!("disk: {} cannot be recorded to: {e}", d.root),
            None => println!(
                "disk: {} free of {} at {}{}",
                hindsight::storage::size(d.free_bytes),
                hindsight::storage::size(d.total_bytes),
                d.root,
                d.guard
                    .as_ref()
                    .map_or(String::new(), |g| format!(" ({g})"))
            ),
        }
    }
    if let Some(n) = &s.ntfy {
        let mut line = format!("ntfy: {}", n.state);
        if !n.connected {
            line.push_str(&format!(" ({}/{})", n.server, n.topic));
        }
        if let Some(m) = &n.last_message {
            line.push_str(&format!(", last message \"{m}\""));
        }
        line.push_str(&format!(", {} commands applied", n.commands_applied));
        println!("{line}");
    }
    if let Some(m) = s.lsl.as_ref().and_then(|l| l.marker_trigger.as_ref()) {
        println!("lsl markers: {m}");
    }
    // Each camera's last file.
    for f in &s.last_files {
        match &f.error {
            Some(e) => println!("last file: {}: {e}", f.path),
            None => println!("last file: {} ({})", f.path, f.figures()),
        }
    }
    if let Some((a, w)) = s
        .audio
        .as_ref()
        .and_then(|a| a.last_file.as_ref().map(|w| (a, w)))
    {
        let silence = hindsight::status::silence_said(w.silence_frames, a.sample_rate);
        println!("last WAV: {} ({:.3} s{silence})", w.path, w.duration_s);
    }
    if let Some(c) = &s.last_command {
        println!(
            "last command: {} from {}: {} {}",
            c.command, c.source, c.outcome, c.message
        );
    }
    for f in &s.unfinished_files {
        println!("unfinished: {f} (hindsight repair {f})");
    }
    for w in &s.warnings {
        println!("warning: {w}");
    }
}
