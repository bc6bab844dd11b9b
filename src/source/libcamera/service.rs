//! The thread that owns libcamera's camera manager and every camera opened from it.
//!
//! libcamera allows one camera manager per process, and the Rust objects for it and its
//! cameras may not move between threads; so they all live here. Capture threads talk to
//! this thread through [`Cmd`]: open a camera, queue a request again, close. Completed
//! requests do not pass through here: libcamera's callback sends them to the camera's
//! own channel. The thread sleeps until a command arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};
use libcamera::{
    camera::{ActiveCamera, Camera},
    camera_manager::CameraManager,
    control::ControlList,
    control_value::{ControlType, ControlValue},
    controls::ControlId,
    controls::{FrameDuration, FrameDurationLimits},
    framebuffer_allocator::{FrameBuffer, FrameBufferAllocator},
    framebuffer_map::MemoryMappedFrameBuffer,
    geometry::Size,
    pixel_format::PixelFormat,
    properties,
    request::{Request, RequestStatus, ReuseFlag},
    stream::{Stream, StreamRole},
};

use super::controls::{self as ctl, Kind, Spec, Typed};
use super::{check_rate, frame_duration_us, rate_granted, rate_range, LibcameraError};
use crate::source::v4l2::negotiate::Pixel;

/// What a capture thread asks for.
pub(super) struct Want {
    /// Index or libcamera id (or model name); `None` is the first camera.
    pub device: Option<String>,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Buffers beyond [`BUFFERS`]: one for each encoding thread after the first.
    pub extra_buffers: u32,
    /// The lab's `controls:`.
    pub controls: crate::config::Controls,
}

/// A camera opened and running.
pub(super) struct Opened {
    pub key: u64,
    pub model: String,
    pub pixel: Pixel,
    pub stride: u32,
    pub stream: Stream,
    /// Completed requests, in order, once the camera is started (`Cmd::Start`).
    pub frames: Receiver<Request>,
    pub disconnected: Arc<AtomicBool>,
    /// The controls it was started with (the lab's and the modes they need), as one line;
    /// empty when none.
    pub controls: String,
    /// What its first frames reported otherwise than asked, if anything.
    pub controls_off: Option<String>,
}

pub(super) enum Cmd {
    Open {
        want: Want,
        reply: Sender<Result<Opened, LibcameraError>>,
    },
    /// Start the camera (opened stopped) and queue its requests.
    Start {
        key: u64,
    },
    Requeue {
        key: u64,
        req: Request,
    },
    /// Stop the camera: libcamera hands back every queued request (cancelled) before
    /// `done` hears of it.
    Stop {
        key: u64,
        done: Sender<()>,
    },
    /// Stop the camera and free it; `done` hears when it is.
    Close {
        key: u64,
        done: Sender<()>,
    },
    List {
        reply: Sender<Result<Vec<String>, LibcameraError>>,
    },
    /// The model of the camera `device` names (as `Want::device`), without opening it.
    Model {
        device: Option<String>,
        reply: Sender<Result<String, LibcameraError>>,
    },
}

/// DRM fourcc codes of the two raw formats encoded here, in order of preference: planar
/// YUV 4:2:0 ("YU12") is handed to the encoder as it is, NV12 needs its chroma split.
const FORMATS: [(Pixel, PixelFormat); 2] = [
    (
        Pixel::Yuv420,
        PixelFormat::new(u32::from_le_bytes(*b"YU12"), 0),
    ),
    (
        Pixel::Nv12,
        PixelFormat::new(u32::from_le_bytes(*b"NV12"), 0),
    ),
];

/// Buffers per camera: enough that a capture thread that is a few frames late loses none.
const BUFFERS: u32 = 6;

/// The service's command channel (the thread starts on first use).
pub(super) fn commands() -> &'static Sender<Cmd> {
    static SERVICE: OnceLock<Sender<Cmd>> = OnceLock::new();
    SERVICE.get_or_init(|| {
        let (tx, rx) = unbounded();
        std::thread::Builder::new()
            .name("libcamera".into())
            .spawn(move || Service::default().run(rx))
            .expect("cannot start the libcamera thread");
        tx
    })
}

/// Stops camera `key` (`close`: and frees it), waiting at most 2 s until it has. Every
/// request it had queued is then back in its channel, and libcamera's threads touch
/// none of them again: they may be dropped. And a capture thread that has ended has
/// let go of its camera, so the process may exit.
pub(super) fn stop(key: u64, close: bool) {
    let (done, stopped) = bounded(1);
    let cmd = if close {
        Cmd::Close { key, done }
    } else {
        Cmd::Stop { key, done }
    };
    if commands().send(cmd).is_ok() && stopped.recv_timeout(Duration::from_secs(2)).is_err() {
        tracing::warn!("libcamera: the camera took more than 2 s to stop");
    }
}

/// One line per libcamera camera, for `hindsight devices`.
pub fn list() -> Result<Vec<String>, LibcameraError> {
    let (reply, rx) = bounded(1);
    commands()
        .send(Cmd::List { reply })
        .map_err(|_| LibcameraError::Manager("the libcamera thread ended".into()))?;
    rx.recv()
        .map_err(|_| LibcameraError::Manager("the libcamera thread ended".into()))?
}

/// The model of the camera `device` names (index, libcamera id or model; `None`: the
/// first), e.g. `imx296`, without opening it.
pub fn model_of(device: Option<&str>) -> Result<String, LibcameraError> {
    let (reply, rx) = bounded(1);
    let gone = || LibcameraError::Manager("the libcamera thread ended".into());
    commands()
        .send(Cmd::Model {
            device: device.map(str::to_string),
            reply,
        })
        .map_err(|_| gone())?;
    rx.recv().map_err(|_| gone())?
}

struct Running {
    cam: ActiveCamera<'static>,
    /// The frame duration asked for, µs.
    frame_us: i64,
    /// The lab's controls (with their modes), given at every start.
    controls: Vec<Asked>,
    /// Requests not queued: all of them while the camera is stopped.
    idle: Vec<Request>,
    // Freed after the camera is stopped (field order: dropped after `cam`).
    _alloc: FrameBufferAllocator,
}

impl Running {
    fn start(&mut self) -> Result<(), String> {
        let controls = start_controls(self.frame_us, &self.controls)?;
        self.cam
            .start(Some(&*controls))
            .map_err(|e| format!("cannot start the camera: {e}"))?;
        for mut req in self.idle.drain(..) {
            req.reuse(ReuseFlag::REUSE_BUFFERS);
            self.cam
                .queue_request(req)
                .map_err(|(_, e)| format!("cannot queue a request: {e}"))?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Service {
    // Declared before the manager: cameras are dropped first.
    open: HashMap<u64, Running>,
    mgr: Option<CameraManager>,
    next_key: u64,
}

impl Service {
    fn run(mut self, rx: Receiver<Cmd>) {
        for cmd in rx {
            match cmd {
                Cmd::Open { want, reply } => {
                    let _ = reply.send(self.open(want));
                }
                Cmd::Start { key } => {
                    if let Some(r) = self.open.get_mut(&key) {
                        if let Err(e) = r.start() {
                            tracing::error!("libcamera: {e}");
                        }
                    }
                }
                Cmd::Requeue { key, req } => {
                    if let Some(r) = self.open.get(&key) {
                        if let Err((_, e)) = r.cam.queue_request(req) {
                            tracing::warn!("libcamera: a request could not be queued again: {e}");
                        }
                    }
                }
                Cmd::Stop { key, done } => {
                    if let Some(r) = self.open.get_mut(&key) {
                        let _ = r.cam.stop();
                    }
                    let _ = done.send(());
                }
                Cmd::Close { key, done } => {
                    if let Some(mut r) = self.open.remove(&key) {
                        let _ = r.cam.stop();
                    }
                    let _ = done.send(());
                }
                Cmd::List { reply } => {
                    let _ = reply.send(self.list());
                }
                Cmd::Model { device, reply } => {
                    let _ = reply.send(self.find(device.as_deref()).map(|c| model(&c)));
                }
            }
        }
    }

    /// The cameras libcamera sees. When it sees none and none is open, the manager is
    /// made again first, so that a camera connected (or enabled) since is seen.
    fn cameras(&mut self) -> Result<Vec<Camera<'static>>, LibcameraError> {
        let list = |mgr: &CameraManager| {
            let l = mgr.cameras();
            (0..l.len()).filter_map(|i| l.get(i)).collect::<Vec<_>>()
        };
        if let Some(mgr) = &self.mgr {
            let cams = list(mgr);
            if !cams.is_empty() || !self.open.is_empty() {
                return Ok(cams);
            }
            drop(cams);
            self.mgr = None;
        }
        let built = libcamera::version::VERSION.to_string();
        let runtime = libcamera::version::runtime_version().to_string();
        if !super::same_release(&built, &runtime) {
            return Err(LibcameraError::Version { built, runtime });
        }
        let mgr = CameraManager::new().map_err(|e| match e.raw_os_error() {
            // No media device at all (no camera, or none enabled).
            Some(libc::ENODEV) => LibcameraError::NoCameras { wanted: None },
            _ => LibcameraError::Manager(e.to_string()),
        })?;
        let cams = list(&mgr);
        self.mgr = Some(mgr);
        Ok(cams)
    }

    fn list(&mut self) -> Result<Vec<String>, LibcameraError> {
        let cams = self.cameras()?;
        Ok(cams
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let (sizes, rates) = offers(c);
                let controls: Vec<Spec> = specs(c).into_iter().map(|(_, s)| s).collect();
                format!(
                    "camera: libcamera {i} `{}` ({}): {sizes}{rates} (source: libcamera, device: {i})\n  \
                     its controls (cameras[].controls): {}",
                    c.id(),
                    model(c),
                    ctl::describe(&controls)
                )
            })
            .collect())
    }

    fn find(&mut self, device: Option<&str>) -> Result<Camera<'static>, LibcameraError> {
        let pick = |cams: Vec<Camera<'static>>| -> Result<Camera<'static>, Vec<Camera<'static>>> {
            let i = match device {
                None => Some(0),
                Some(d) => match d.parse::<usize>() {
                    Ok(i) => Some(i),
                    Err(_) => cams.iter().position(|c| c.id() == d || model(c) == d),
                },
            };
            match i {
                Some(i) if i < cams.len() => Ok(cams.into_iter().nth(i).expect("checked")),
                _ => Err(cams),
            }
        };
        let cams = self.cameras()?;
        pick(cams).map_err(|cams| {
            if cams.is_empty() {
                LibcameraError::NoCameras {
                    wanted: device.map(str::to_string),
                }
            } else {
                LibcameraError::NoSuchCamera {
                    wanted: device.unwrap_or("0").to_string(),
                    available: cams
                        .iter()
                        .enumerate()
                        .map(|(i, c)| format!("{i} `{}` ({})", c.id(), model(c)))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            }
        })
    }

    fn open(&mut self, want: Want) -> Result<Opened, LibcameraError> {
        let cam = self.find(want.device.as_deref())?;
        let name = model(&cam);
        if self.open.values().any(|r| r.cam.id() == cam.id()) {
            return Err(LibcameraError::AlreadyOpen { camera: name });
        }
        let (w, h, fps) = (want.width, want.height, want.fps);
        let mut active = cam.acquire().map_err(|e| match e.raw_os_error() {
            Some(libc::EBUSY) => LibcameraError::Busy {
                camera: name.clone(),
            },
            _ => LibcameraError::failed(&name, format!("cannot acquire it: {e}")),
        })?;

        // The first raw format the camera gives at exactly this size.
        let mut chosen = None;
        for (pixel, format) in FORMATS {
            let mut cfgs = active
                .generate_configuration(&[StreamRole::VideoRecording])
                .ok_or_else(|| LibcameraError::failed(&name, "offers no video stream"))?;
            {
                let mut c = cfgs.get_mut(0).expect("one stream");
                c.set_pixel_format(format);
                c.set_size(Size {
                    width: w,
                    height: h,
                });
                c.set_buffer_count(BUFFERS + want.extra_buffers);
            }
            if cfgs.validate().is_invalid() {
                continue;
            }
            let (got, size, stride) = {
                let c = cfgs.get(0).expect("one stream");
                (c.get_pixel_format(), c.get_size(), c.get_stride())
            };
            if got == format && size.width == w && size.height == h {
                chosen = Some((pixel, stride, cfgs));
                break;
            }
        }
        let Some((pixel, stride, mut cfgs)) = chosen else {
            return Err(LibcameraError::Size {
                camera: name,
                width: w,
                height: h,
                offers: offers(&active).0,
            });
        };
        if let Some((min, max)) = duration_limits(&active) {
            check_rate(fps, min, max).map_err(|offers| LibcameraError::Rate {
                camera: name.clone(),
                width: w,
                height: h,
                fps,
                offers,
            })?;
        }
        active
            .configure(&mut cfgs)
            .map_err(|e| LibcameraError::failed(&name, format!("configure: {e}")))?;
        let stream = cfgs
            .get(0)
            .expect("one stream")
            .stream()
            .ok_or_else(|| LibcameraError::failed(&name, "configured without a stream"))?;
        let mut alloc = FrameBufferAllocator::new(&active);
        let buffers = alloc
            .alloc(&stream)
            .map_err(|e| LibcameraError::failed(&name, format!("cannot allocate buffers: {e}")))?;
        let mut reqs = Vec::new();
        for (i, buf) in buffers.into_iter().enumerate() {
            let buf = MemoryMappedFrameBuffer::new(buf)
                .map_err(|e| LibcameraError::failed(&name, format!("cannot map a buffer: {e}")))?;
            let mut req = active
                .create_request(Some(i as u64))
                .ok_or_else(|| LibcameraError::failed(&name, "cannot create a request"))?;
            req.add_buffer(&stream, buf)
                .map_err(|e| LibcameraError::failed(&name, format!("request: {e}")))?;
            reqs.push(req);
        }
        let (frames_tx, frames) = unbounded::<Request>();
        active.on_request_completed(move |req| {
            let _ = frames_tx.send(req);
        });
        let disconnected = Arc::new(AtomicBool::new(false));
        let gone = disconnected.clone();
        active.on_disconnected(move || gone.store(true, Ordering::Relaxed));

        // A fixed frame duration: the frame rate asked for, exactly; and the lab's
        // controls, checked against what the camera offers once configured (a Pi's
        // exposure limits follow its sensor mode).
        let us = frame_duration_us(fps);
        let asked = resolve_controls(&active, &name, &want.controls)?;
        let controls = start_controls(us, &asked).map_err(|e| LibcameraError::failed(&name, e))?;
        active
            .start(Some(&*controls))
            .map_err(|e| LibcameraError::failed(&name, format!("cannot start: {e}")))?;
        for req in reqs {
            active
                .queue_request(req)
                .map_err(|(_, e)| LibcameraError::failed(&name, format!("cannot queue: {e}")))?;
        }

        // What the camera runs at is what its first frame says; what it was exposed with,
        // the first frame (of up to CONTROLS_SETTLE) that reports the controls asked for.
        let wait = Duration::from_secs(2) + Duration::from_secs_f64(4.0 / fps);
        let deadline = Instant::now() + wait;
        let mut seen = 0;
        let mut off: Vec<String>;
        let first = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match frames.recv_timeout(left) {
                Ok(req) if req.status() == RequestStatus::Complete => {
                    seen += 1;
                    off = ctl::differences(&asked_pairs(&asked), &reported(&req, &asked));
                    if off.is_empty() || seen >= CONTROLS_SETTLE {
                        break req;
                    }
                    let mut req = req;
                    req.reuse(ReuseFlag::REUSE_BUFFERS);
                    let _ = active.queue_request(req);
                }
                Ok(req) => {
                    let _ = active.queue_request(req);
                }
                Err(_) => {
                    let _ = active.stop();
                    return Err(LibcameraError::failed(
                        &name,
                        format!(
                            "started, but no frame came within {:.1} s",
                            wait.as_secs_f64()
                        ),
                    ));
                }
            }
        };
        let duration = first.metadata().get::<FrameDuration>().ok();
        // Stopped until the capture thread asks for frames (`Cmd::Start`): hindsight may
        // take a moment to set up before it takes them, and the sensor would lose frames
        // that find no buffer meanwhile. Stopping hands every request back, cancelled.
        let _ = active.stop();
        let mut idle = vec![first];
        idle.extend(frames.try_iter());
        if let Some(d) = duration {
            if !rate_granted(fps, d.0) {
                return Err(LibcameraError::NotGranted {
                    camera: name,
                    asked: fps,
                    runs: format!("{:.2}", 1e6 / d.0 as f64),
                });
            }
        }
        let asked_line = asked
            .iter()
            .map(|a| format!("{}={}", a.name, a.setting))
            .collect::<Vec<_>>()
            .join(" ");
        let got = report(&asked, &reported(&idle[0], &asked));
        let controls = if got.is_empty() {
            asked_line.clone()
        } else {
            format!("{asked_line} (its frames report {})", got.join(", "))
        };
        let said = if controls.is_empty() {
            String::new()
        } else {
            format!(", controls {controls}")
        };
        if !off.is_empty() {
            tracing::warn!(
                "libcamera: {name} was asked for {asked_line} and its frames report {} \
                 after {seen} frames: the camera does not do what was asked (a mode left on \
                 Auto? a value it rounds or limits?)",
                off.join(", ")
            );
        }
        let key = self.next_key;
        self.next_key += 1;
        self.open.insert(
            key,
            Running {
                cam: active,
                frame_us: us,
                controls: asked,
                idle,
                _alloc: alloc,
            },
        );
        tracing::info!(
            "libcamera: {name} runs {w}x{h} {} at {fps} fps{said}",
            if pixel == Pixel::Nv12 {
                "NV12"
            } else {
                "YUV420"
            }
        );
        Ok(Opened {
            key,
            model: name,
            pixel,
            stride,
            stream,
            frames,
            disconnected,
            controls,
            controls_off: (!off.is_empty()).then(|| off.join(", ")),
        })
    }
}

/// Frames the camera is given to report the controls asked for when it opens.
const CONTROLS_SETTLE: u32 = 8;

/// One of the lab's controls, ready for the camera.
struct Asked {
    id: u32,
    name: String,
    setting: crate::config::Setting,
    typed: Typed,
    value: ControlValue,
}

/// What a camera starts with: its frame duration (µs) and the lab's controls.
fn start_controls(
    frame_us: i64,
    asked: &[Asked],
) -> Result<libcamera::utils::UniquePtr<ControlList>, String> {
    let mut controls = ControlList::new();
    controls
        .set(FrameDurationLimits([frame_us, frame_us]))
        .map_err(|e| format!("frame duration: {e}"))?;
    for a in asked {
        controls
            .set_raw(a.id, a.value.clone())
            .map_err(|e| format!("{}: {e}", a.name))?;
    }
    Ok(controls)
}

/// The lab's controls (with the modes their values need) as the camera takes them, or
/// why one cannot be: a control it does not have (and the ones it has), a value of the
/// wrong type or outside its range.
fn resolve_controls(
    c: &Camera<'_>,
    camera: &str,
    controls: &crate::config::Controls,
) -> Result<Vec<Asked>, LibcameraError> {
    if controls.is_empty() {
        return Ok(Vec::new());
    }
    let offered = specs(c);
    let has = |n: &str| offered.iter().any(|(_, s)| s.name == n);
    let mut out = Vec::new();
    for (name, setting) in ctl::with_modes(controls, has).0 {
        let Some((id, spec)) = offered.iter().find(|(_, s)| s.name == name) else {
            let all: Vec<Spec> = offered.iter().map(|(_, s)| s.clone()).collect();
            return Err(LibcameraError::Control(format!(
                "{camera} has no control {name}; it has: {}",
                ctl::describe(&all)
            )));
        };
        let typed = ctl::resolve(camera, spec, &setting).map_err(LibcameraError::Control)?;
        let value = match &typed {
            Typed::Bool(b) => ControlValue::from(*b),
            Typed::Byte(v) => ControlValue::Byte(v.iter().copied().collect()),
            Typed::Int32(v) => ControlValue::Int32(v.iter().copied().collect()),
            Typed::Int64(v) => ControlValue::Int64(v.iter().copied().collect()),
            Typed::Float(v) => ControlValue::Float(v.iter().copied().collect()),
            Typed::Rectangle([x, y, w, h]) => ControlValue::from(libcamera::geometry::Rectangle {
                x: *x as i32,
                y: *y as i32,
                width: *w as u32,
                height: *h as u32,
            }),
        };
        out.push(Asked {
            id: *id,
            name,
            setting,
            typed,
            value,
        });
    }
    Ok(out)
}

fn asked_pairs(asked: &[Asked]) -> Vec<(String, Typed)> {
    asked
        .iter()
        .map(|a| (a.name.clone(), a.typed.clone()))
        .collect()
}

/// What the camera reported of the controls asked for, in their order: numbers as they
/// came (`ExposureTime 1998`), named values only where they are not what was asked.
fn report(asked: &[Asked], got: &[(String, Typed)]) -> Vec<String> {
    asked
        .iter()
        .filter_map(|a| {
            let (_, t) = got.iter().find(|(n, _)| *n == a.name)?;
            let named = matches!(a.setting, crate::config::Setting::Name(_));
            if named && *t == a.typed {
                return None;
            }
            Some(format!("{} {}", a.name, ctl::show_typed(t)))
        })
        .collect()
}

/// What a frame's metadata says of the controls asked for (those it reports).
fn reported(req: &Request, asked: &[Asked]) -> Vec<(String, Typed)> {
    if asked.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (id, value) in req.metadata() {
        if let Some(a) = asked.iter().find(|a| a.id == id) {
            if let Some(t) = typed_of(&value) {
                out.push((a.name.clone(), t));
            }
        }
    }
    out
}

fn typed_of(v: &ControlValue) -> Option<Typed> {
    Some(match v {
        ControlValue::Bool(b) => Typed::Bool(*b.first()?),
        ControlValue::Byte(b) => Typed::Byte(b.to_vec()),
        ControlValue::Int32(b) => Typed::Int32(b.to_vec()),
        ControlValue::Int64(b) => Typed::Int64(b.to_vec()),
        ControlValue::Float(b) => Typed::Float(b.to_vec()),
        ControlValue::Rectangle(r) => {
            let r = r.first()?;
            Typed::Rectangle([r.x.into(), r.y.into(), r.width.into(), r.height.into()])
        }
        _ => return None,
    })
}

/// The controls the camera offers, each described for [`ctl::resolve`], with its id.
fn specs(c: &Camera<'_>) -> Vec<(u32, Spec)> {
    let number = |v: ControlValue| match v {
        ControlValue::Bool(v) => v.first().map(|&b| f64::from(u8::from(b))),
        ControlValue::Byte(v) => v.first().map(|&x| x.into()),
        ControlValue::Int32(v) => v.first().map(|&x| x.into()),
        ControlValue::Int64(v) => v.first().map(|&x| x as f64),
        ControlValue::Float(v) => v.first().map(|&x| x.into()),
        _ => None,
    };
    c.controls()
        .into_iter()
        .filter_map(|(id, info)| {
            let cid = ControlId::from_id(id)?;
            let kind = match cid.control_type() {
                ControlType::Bool => Kind::Bool,
                ControlType::Byte => Kind::Byte,
                ControlType::Int32 => Kind::Int32,
                ControlType::Int64 => Kind::Int64,
                ControlType::Float => Kind::Float,
                ControlType::Rectangle => Kind::Rectangle,
                _ => Kind::Other,
            };
            // A dynamic array's size is `std::dynamic_extent` (any length).
            let size = match (cid.is_array(), cid.size()) {
                (false, _) => 1,
                (true, n) if n > 4096 => 0,
                (true, n) => n,
            };
            let names = cid.enumerators_map();
            let values: Vec<i64> = info
                .values()
                .into_iter()
                .filter_map(number)
                .map(|v| v as i64)
                .collect();
            let full: Vec<String> = values
                .iter()
                .filter_map(|v| i32::try_from(*v).ok().and_then(|i| names.get(&i).cloned()))
                .collect();
            // Short names only when every value has one.
            let (prefix, short) = if full.len() == values.len() {
                ctl::short_names(&full)
            } else {
                (String::new(), Vec::new())
            };
            let values = values
                .iter()
                .enumerate()
                .map(|(i, &v)| (v, short.get(i).cloned()))
                .collect();
            Some((
                id,
                Spec {
                    name: cid.name(),
                    kind,
                    size,
                    min: number(info.min()),
                    max: number(info.max()),
                    values,
                    prefix,
                },
            ))
        })
        .collect()
}

fn model(c: &Camera<'_>) -> String {
    c.properties()
        .get::<properties::Model>()
        .map(|m| (*m).clone())
        .unwrap_or_else(|_| c.id().to_string())
}

/// The camera's `FrameDurationLimits` (µs), if it says.
fn duration_limits(c: &Camera<'_>) -> Option<(i64, i64)> {
    use libcamera::control::ControlEntry;
    let info = c.controls().find(FrameDurationLimits::ID).ok()?;
    let v = |x: ControlValue| match x {
        ControlValue::Int64(v) => v.first().copied(),
        ControlValue::Int32(v) => v.first().map(|&x| i64::from(x)),
        _ => None,
    };
    Some((v(info.min())?, v(info.max())?))
}

/// What the camera offers: its sizes (with formats) and its frame rates.
fn offers(c: &Camera<'_>) -> (String, String) {
    let mut sizes = Vec::new();
    if let Some(cfgs) = c.generate_configuration(&[StreamRole::VideoRecording]) {
        if let Some(s) = cfgs.get(0) {
            let formats = s.formats();
            for (pixel, format) in FORMATS {
                let name = if pixel == Pixel::Nv12 {
                    "NV12"
                } else {
                    "YUV420"
                };
                let listed = formats.sizes(format);
                if !listed.is_empty() {
                    let l: Vec<String> = listed
                        .iter()
                        .map(|z| format!("{}x{}", z.width, z.height))
                        .collect();
                    sizes.push(format!("{} {name}", l.join(", ")));
                } else {
                    let r = formats.range(format);
                    if r.max.width > 0 {
                        sizes.push(format!(
                            "{}x{} to {}x{} {name}",
                            r.min.width, r.min.height, r.max.width, r.max.height
                        ));
                    }
                }
            }
        }
    }
    let sizes = if sizes.is_empty() {
        "no YUV420 or NV12 size".to_string()
    } else {
        sizes.join("; ")
    };
    let rates = match duration_limits(c) {
        Some((min, max)) if min > 0 && max >= min => format!(", {}", rate_range(min, max)),
        _ => String::new(),
    };
    (sizes, rates)
}

// The buffer type the requests carry (for `Request::buffer`).
pub(super) type Mapped = MemoryMappedFrameBuffer<FrameBuffer>;
