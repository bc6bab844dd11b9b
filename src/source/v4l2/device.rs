//! The real V4L2 device, on the `v4l` crate: memory-mapped buffers, poll with a timeout.

use std::time::Duration;

use v4l::buffer::{Flags, Type};
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, Format, FourCC, Fraction};

use super::negotiate::{Choice, FormatCaps, Granted, Rates, SizeCaps, Want};
use super::DeviceError;
use super::{BufferMeta, CaptureDevice, DequeueError, BUFFERS};

pub struct LinuxDevice {
    path: String,
    dev: Device,
    name: String,
    stream: Option<Stream<'static>>,
}

impl LinuxDevice {
    /// A camera's `device`: a path (`/dev/video2`, `/dev/v4l/by-id/...`) or an index
    /// (`2`); none is `/dev/video0`.
    pub fn open(device: &Option<String>) -> Result<LinuxDevice, DeviceError> {
        LinuxDevice::open_path(crate::config::v4l2_device_path(device))
    }

    /// Opens the node at `path`.
    pub fn open_path(path: String) -> Result<LinuxDevice, DeviceError> {
        let dev = Device::with_path(&path).map_err(|source| DeviceError::Open {
            path: path.clone(),
            source,
        })?;
        let caps = dev.query_caps().map_err(|source| DeviceError::NotV4l2 {
            path: path.clone(),
            source,
        })?;
        if !caps
            .capabilities
            .contains(v4l::capability::Flags::VIDEO_CAPTURE)
        {
            return Err(DeviceError::NoCapture {
                path,
                card: caps.card,
            });
        }
        let name = format!("{} {} ({})", path, caps.card, caps.driver);
        Ok(LinuxDevice {
            path,
            dev,
            name,
            stream: None,
        })
    }
}

fn fps_of(f: Fraction) -> f64 {
    if f.numerator == 0 {
        0.0
    } else {
        f64::from(f.denominator) / f64::from(f.numerator)
    }
}

impl CaptureDevice for LinuxDevice {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn capabilities(&mut self, want: Want) -> Result<Vec<FormatCaps>, DeviceError> {
        let formats = self.dev.enum_formats().map_err(DeviceError::Formats)?;
        let mut out = Vec::new();
        for f in formats {
            let mut sizes = Vec::new();
            for fs in self.dev.enum_framesizes(f.fourcc).unwrap_or_default() {
                let candidates: Vec<(u32, u32)> = match fs.size {
                    FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
                    FrameSizeEnum::Stepwise(s) => {
                        let fits = |v: u32, min: u32, max: u32, step: u32| {
                            v >= min && v <= max && (step == 0 || (v - min).is_multiple_of(step))
                        };
                        let ok = fits(want.width, s.min_width, s.max_width, s.step_width)
                            && fits(want.height, s.min_height, s.max_height, s.step_height);
                        let mut v = vec![(s.max_width, s.max_height)];
                        if ok {
                            v.insert(0, (want.width, want.height));
                        }
                        v
                    }
                };
                for (w, h) in candidates {
                    let intervals = self
                        .dev
                        .enum_frameintervals(f.fourcc, w, h)
                        .unwrap_or_default();
                    let mut discrete = Vec::new();
                    let mut range = None;
                    for i in intervals {
                        match i.interval {
                            FrameIntervalEnum::Discrete(fr) => discrete.push(fps_of(fr)),
                            FrameIntervalEnum::Stepwise(st) => {
                                // The shortest interval is the highest rate.
                                range = Some((fps_of(st.max), fps_of(st.min)));
                            }
                        }
                    }
                    let rates = match range {
                        Some((min, max)) => Rates::Range { min, max },
                        None => Rates::Discrete(discrete),
                    };
                    sizes.push(SizeCaps {
                        width: w,
                        height: h,
                        rates,
                    });
                }
            }
            out.push(FormatCaps {
                fourcc: f.fourcc.repr,
                sizes,
            });
        }
        Ok(out)
    }

    fn configure(&mut self, c: Choice) -> Result<Granted, DeviceError> {
        let fmt = Format::new(c.width, c.height, FourCC::new(&c.pixel.fourcc()));
        let set = self
            .dev
            .set_format(&fmt)
            .map_err(|source| DeviceError::SetFormat {
                choice: c.to_string(),
                source,
            })?;
        // The interval as a fraction: 1000/30000 for 30 fps, 1001/30000 for 29.97.
        let denominator = (c.fps * 1000.0).round() as u32;
        let params = v4l::video::capture::Parameters::new(Fraction::new(1000, denominator));
        let granted = self
            .dev
            .set_params(&params)
            .map_err(|source| DeviceError::SetRate { fps: c.fps, source })?;
        Ok(Granted {
            fourcc: set.fourcc.repr,
            width: set.width,
            height: set.height,
            fps: fps_of(granted.interval),
            stride: set.stride,
        })
    }

    fn start(&mut self) -> Result<(), DeviceError> {
        let mut stream =
            Stream::with_buffers(&self.dev, Type::VideoCapture, BUFFERS).map_err(|source| {
                DeviceError::MapBuffers {
                    path: self.path.clone(),
                    source,
                }
            })?;
        stream.set_timeout(super::POLL);
        self.stream = Some(stream);
        Ok(())
    }

    fn dequeue(&mut self, timeout: Duration) -> Result<(&[u8], BufferMeta), DequeueError> {
        let stream = self
            .stream
            .as_mut()
            .ok_or_else(|| DequeueError::Lost("not started".into()))?;
        stream.set_timeout(timeout);
        match stream.next() {
            Ok((buf, meta)) => {
                let used = (meta.bytesused as usize).min(buf.len());
                let ts = meta.timestamp;
                // 32-bit `time_t` on a 32-bit Raspberry Pi OS: widened first.
                #[allow(clippy::useless_conversion)]
                let (sec, usec) = (i64::from(ts.sec), i64::from(ts.usec));
                let bm = BufferMeta {
                    sequence: meta.sequence,
                    timestamp_us: sec * 1_000_000 + usec,
                    monotonic: meta.flags & Flags::TIMESTAMP_MASK == Flags::TIMESTAMP_MONOTONIC,
                    error: meta.flags.contains(Flags::ERROR),
                };
                // The `v4l` stream gives this buffer back to the driver at its next `next()`.
                Ok((&buf[..used], bm))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(DequeueError::Timeout),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(DequeueError::Timeout),
            Err(e) => Err(DequeueError::Lost(e.to_string())),
        }
    }
}

/// `hindsight devices`: each capture node with its formats, sizes and rates.
pub fn list() -> Vec<String> {
    let mut nodes: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("video"))
                .collect()
        })
        .unwrap_or_default();
    nodes.sort_by_key(|n| n[5..].parse::<u32>().unwrap_or(u32::MAX));
    let mut out = Vec::new();
    for n in nodes {
        let path = format!("/dev/{n}");
        match LinuxDevice::open_path(path.clone()) {
            Ok(mut d) => {
                out.push(format!("camera: {}", d.describe()));
                let want = Want {
                    width: 0,
                    height: 0,
                    fps: 0.0,
                };
                match d.capabilities(want) {
                    Ok(caps) => {
                        for f in caps {
                            let sizes: Vec<String> = f
                                .sizes
                                .iter()
                                .map(|s| {
                                    let rates = match &s.rates {
                                        Rates::Discrete(r) => r
                                            .iter()
                                            .map(|x| {
                                                format!("{x:.4}")
                                                    .trim_end_matches('0')
                                                    .trim_end_matches('.')
                                                    .to_string()
                                            })
                                            .collect::<Vec<_>>()
                                            .join("/"),
                                        Rates::Range { min, max } => format!("{min:.1}-{max:.1}"),
                                    };
                                    format!("{}x{}@{rates}", s.width, s.height)
                                })
                                .collect();
                            out.push(format!(
                                "    {}: {}",
                                super::negotiate::fourcc_str(f.fourcc),
                                sizes.join(", ")
                            ));
                        }
                    }
                    Err(e) => out.push(format!("    (cannot list formats: {e})")),
                }
            }
            Err(e) => out.push(format!("camera: {path}: {e}")),
        }
    }
    out
}
