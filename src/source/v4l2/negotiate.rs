//! Choosing what to ask a V4L2 camera for, and checking what the driver granted. Pure
//! code: the device's answers come in as plain data, so every rule is unit-tested.
//!
//! Rules: the size must be offered exactly (hindsight never scales); MJPEG is preferred
//! (passed through untouched), then YUYV, then NV12 (both encoded with libjpeg-turbo); a
//! format is usable when it offers a frame rate at least the one asked for, and the
//! closest such rate is asked for. Whatever the driver grants is checked: a different
//! format, size or rate is refused with what was granted, never recorded silently.

use std::fmt;

/// Pixel formats hindsight can record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pixel {
    Mjpeg,
    Yuyv,
    Nv12,
    /// Planar YUV 4:2:0 (I420), as libcamera delivers it.
    Yuv420,
}

impl Pixel {
    pub fn fourcc(self) -> [u8; 4] {
        match self {
            Pixel::Mjpeg => *b"MJPG",
            Pixel::Yuyv => *b"YUYV",
            Pixel::Nv12 => *b"NV12",
            Pixel::Yuv420 => *b"YU12",
        }
    }

    pub fn from_fourcc(f: [u8; 4]) -> Option<Pixel> {
        match &f {
            b"MJPG" | b"JPEG" => Some(Pixel::Mjpeg),
            b"YUYV" => Some(Pixel::Yuyv),
            b"NV12" => Some(Pixel::Nv12),
            b"YU12" => Some(Pixel::Yuv420),
            _ => None,
        }
    }

    /// In order of preference.
    const ALL: [Pixel; 4] = [Pixel::Mjpeg, Pixel::Yuyv, Pixel::Nv12, Pixel::Yuv420];
}

/// Frame rates a size is offered at.
#[derive(Clone, Debug, PartialEq)]
pub enum Rates {
    Discrete(Vec<f64>),
    /// Any rate in `min..=max` (stepwise or continuous intervals).
    Range {
        min: f64,
        max: f64,
    },
}

impl Rates {
    fn max(&self) -> f64 {
        match self {
            Rates::Discrete(r) => r.iter().cloned().fold(0.0, f64::max),
            Rates::Range { max, .. } => *max,
        }
    }

    /// The closest offered rate at least `want` (within 0.5%, for 29.97 vs 30).
    fn at_least(&self, want: f64) -> Option<f64> {
        let ok = |r: f64| r >= want * 0.995;
        match self {
            Rates::Discrete(r) => r.iter().cloned().filter(|&r| ok(r)).reduce(f64::min),
            Rates::Range { min, max } => ok(*max).then(|| want.max(*min)),
        }
    }
}

/// One size of one format.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeCaps {
    pub width: u32,
    pub height: u32,
    pub rates: Rates,
}

/// What a camera offers in one pixel format.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatCaps {
    pub fourcc: [u8; 4],
    pub sizes: Vec<SizeCaps>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Want {
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// What to ask the driver for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Choice {
    pub pixel: Pixel,
    pub width: u32,
    pub height: u32,
    pub fps: f64,
}

/// What the driver set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Granted {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub fps: f64,
    /// Bytes per line of raw formats.
    pub stride: u32,
}

pub fn fourcc_str(f: [u8; 4]) -> String {
    String::from_utf8_lossy(&f).trim_end().to_string()
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}x{} @ {} fps",
            fourcc_str(self.pixel.fourcc()),
            self.width,
            self.height,
            self.fps
        )
    }
}

/// A short list of what a camera offers, for error messages.
pub fn summary(caps: &[FormatCaps]) -> String {
    caps.iter()
        .map(|f| {
            let sizes: Vec<String> = f
                .sizes
                .iter()
                .take(12)
                .map(|s| format!("{}x{}@{}", s.width, s.height, s.rates.max()))
                .collect();
            let more = if f.sizes.len() > 12 { ", ..." } else { "" };
            format!("{}: {}{more}", fourcc_str(f.fourcc), sizes.join(", "))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Why a camera cannot give what the configuration asks for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum NegotiateError {
    #[error("the camera offers none of MJPG, YUYV, NV12, YU12 (it offers {offers})")]
    NoFormat { offers: String },
    #[error("the camera does not offer {width}x{height} (it offers {offers})")]
    NoSize {
        width: u32,
        height: u32,
        offers: String,
    },
    #[error(
        "the camera offers {width}x{height} only at lower frame rates than {fps} fps: {rates}"
    )]
    TooSlow {
        width: u32,
        height: u32,
        fps: f64,
        rates: String,
    },
    #[error("asked for {asked}, the driver set {set}; refusing to record something else")]
    NotGranted { asked: String, set: String },
}

/// Picks the format, size and rate to ask for, or says why the camera cannot do it.
pub fn choose(caps: &[FormatCaps], want: Want) -> Result<Choice, NegotiateError> {
    let usable: Vec<(Pixel, &FormatCaps)> = Pixel::ALL
        .iter()
        .filter_map(|&p| {
            caps.iter()
                .find(|f| Pixel::from_fourcc(f.fourcc) == Some(p))
                .map(|f| (p, f))
        })
        .collect();
    if usable.is_empty() {
        return Err(NegotiateError::NoFormat {
            offers: summary(caps),
        });
    }
    let mut too_slow = Vec::new();
    for (pixel, f) in &usable {
        let Some(size) = f
            .sizes
            .iter()
            .find(|s| s.width == want.width && s.height == want.height)
        else {
            continue;
        };
        match size.rates.at_least(want.fps) {
            Some(fps) => {
                return Ok(Choice {
                    pixel: *pixel,
                    width: want.width,
                    height: want.height,
                    fps,
                })
            }
            None => too_slow.push(format!(
                "{} at most {} fps",
                fourcc_str(f.fourcc),
                size.rates.max()
            )),
        }
    }
    if too_slow.is_empty() {
        Err(NegotiateError::NoSize {
            width: want.width,
            height: want.height,
            offers: summary(caps),
        })
    } else {
        Err(NegotiateError::TooSlow {
            width: want.width,
            height: want.height,
            fps: want.fps,
            rates: too_slow.join(", "),
        })
    }
}

/// Whether the driver set what was asked (rates within 1%).
pub fn check_granted(choice: Choice, granted: Granted) -> Result<(), NegotiateError> {
    let same = granted.fourcc == choice.pixel.fourcc()
        && granted.width == choice.width
        && granted.height == choice.height
        && (granted.fps - choice.fps).abs() <= choice.fps * 0.01;
    if same {
        Ok(())
    } else {
        Err(NegotiateError::NotGranted {
            asked: choice.to_string(),
            set: format!(
                "{} {}x{} @ {} fps",
                fourcc_str(granted.fourcc),
                granted.width,
                granted.height,
                granted.fps
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(w: u32, h: u32, rates: &[f64]) -> SizeCaps {
        SizeCaps {
            width: w,
            height: h,
            rates: Rates::Discrete(rates.to_vec()),
        }
    }

    /// A typical UVC webcam: MJPEG up to 1080p30, YUYV 640x480 at 30, 1080p only at 5.
    fn webcam() -> Vec<FormatCaps> {
        vec![
            FormatCaps {
                fourcc: *b"YUYV",
                sizes: vec![size(640, 480, &[30.0, 15.0]), size(1920, 1080, &[5.0])],
            },
            FormatCaps {
                fourcc: *b"MJPG",
                sizes: vec![
                    size(640, 480, &[30.0, 15.0]),
                    size(1280, 720, &[60.0, 30.0]),
                    size(1920, 1080, &[30.0]),
                ],
            },
        ]
    }

    fn want(w: u32, h: u32, fps: f64) -> Want {
        Want {
            width: w,
            height: h,
            fps,
        }
    }

    #[test]
    fn mjpeg_is_preferred_and_the_closest_sufficient_rate_asked_for() {
        let c = choose(&webcam(), want(1280, 720, 25.0)).unwrap();
        assert_eq!((c.pixel, c.fps), (Pixel::Mjpeg, 30.0));
        let c = choose(&webcam(), want(640, 480, 15.0)).unwrap();
        assert_eq!((c.pixel, c.fps), (Pixel::Mjpeg, 15.0));
        // 29.97 asked, 30 offered: fine.
        assert_eq!(
            choose(&webcam(), want(1920, 1080, 29.97)).unwrap().fps,
            30.0
        );
    }

    #[test]
    fn a_raw_format_is_used_when_mjpeg_cannot_do_it() {
        let caps = vec![
            FormatCaps {
                fourcc: *b"MJPG",
                sizes: vec![size(800, 600, &[10.0])],
            },
            FormatCaps {
                fourcc: *b"NV12",
                sizes: vec![SizeCaps {
                    width: 800,
                    height: 600,
                    rates: Rates::Range {
                        min: 1.0,
                        max: 90.0,
                    },
                }],
            },
        ];
        let c = choose(&caps, want(800, 600, 60.0)).unwrap();
        assert_eq!((c.pixel, c.fps), (Pixel::Nv12, 60.0));
    }

    #[test]
    fn impossible_requests_are_refused_saying_what_the_camera_offers() {
        let e = choose(&webcam(), want(1024, 768, 30.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not offer 1024x768"), "{e}");
        assert!(
            e.contains("MJPG: 640x480@30, 1280x720@60, 1920x1080@30"),
            "{e}"
        );
        let e = choose(&webcam(), want(1920, 1080, 60.0))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("only at lower frame rates than 60 fps")
                && e.contains("MJPG at most 30 fps")
                && e.contains("YUYV at most 5 fps"),
            "{e}"
        );
        let grey = vec![FormatCaps {
            fourcc: *b"GREY",
            sizes: vec![size(640, 480, &[30.0])],
        }];
        let e = choose(&grey, want(640, 480, 30.0)).unwrap_err().to_string();
        assert!(
            e.contains("none of MJPG, YUYV, NV12") && e.contains("GREY"),
            "{e}"
        );
    }

    #[test]
    fn what_the_driver_grants_is_checked() {
        let c = choose(&webcam(), want(640, 480, 30.0)).unwrap();
        let mut g = Granted {
            fourcc: *b"MJPG",
            width: 640,
            height: 480,
            fps: 30.0,
            stride: 0,
        };
        assert!(check_granted(c, g).is_ok());
        g.fps = 29.9;
        assert!(check_granted(c, g).is_ok(), "within 1%");
        g.fps = 15.0;
        let e = check_granted(c, g).unwrap_err().to_string();
        assert!(e.contains("the driver set MJPG 640x480 @ 15 fps"), "{e}");
        g.fps = 30.0;
        g.fourcc = *b"YUYV";
        assert!(check_granted(c, g).is_err());
        g.fourcc = *b"MJPG";
        g.width = 320;
        assert!(check_granted(c, g).is_err());
    }
}
