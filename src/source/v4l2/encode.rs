//! JPEG encoding for cameras that deliver raw YUV: YUYV (packed 4:2:2) and NV12
//! (semi-planar 4:2:0) are de-interleaved into planes (buffers allocated once), planar
//! YUV 4:2:0 (libcamera) is used in place, and libjpeg-turbo compresses the planes,
//! without a detour through RGB.

use turbojpeg::{Compressor, Subsamp, YuvPlanesImage};

use super::negotiate::Pixel;

/// Why a raw frame could not be made a JPEG.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{width}x{height}: raw formats need even sizes")]
    OddSize { width: u32, height: u32 },
    #[error("MJPEG needs no encoder")]
    AlreadyJpeg,
    #[error("short frame: {got} of {need} bytes")]
    ShortFrame { got: usize, need: usize },
    #[error("JPEG encoder: {0}")]
    Setup(turbojpeg::Error),
    #[error("JPEG encoding: {0}")]
    Jpeg(turbojpeg::Error),
}

pub struct RawEncoder {
    pixel: Pixel,
    width: usize,
    height: usize,
    stride: usize,
    compressor: Compressor,
    u: Vec<u8>,
    v: Vec<u8>,
    /// YUYV only: the Y plane (NV12's is used in place).
    y: Vec<u8>,
    out: Vec<u8>,
}

impl RawEncoder {
    pub fn new(
        pixel: Pixel,
        width: u32,
        height: u32,
        stride: u32,
        quality: u8,
    ) -> Result<RawEncoder, EncodeError> {
        let (w, h) = (width as usize, height as usize);
        if w % 2 != 0 || h % 2 != 0 {
            return Err(EncodeError::OddSize { width, height });
        }
        let min_stride = match pixel {
            Pixel::Yuyv => 2 * w,
            Pixel::Nv12 | Pixel::Yuv420 => w,
            Pixel::Mjpeg => return Err(EncodeError::AlreadyJpeg),
        };
        let stride = (stride as usize).max(min_stride);
        let mut compressor = Compressor::new().map_err(EncodeError::Setup)?;
        compressor
            .set_quality(i32::from(quality))
            .map_err(EncodeError::Setup)?;
        let subsamp = if pixel == Pixel::Yuyv {
            Subsamp::Sub2x1
        } else {
            Subsamp::Sub2x2
        };
        compressor
            .set_subsamp(subsamp)
            .map_err(EncodeError::Setup)?;
        let chroma = if pixel == Pixel::Yuyv {
            w / 2 * h
        } else {
            w / 2 * h / 2
        };
        let out = vec![0; compressor.buf_len(w, h).map_err(EncodeError::Setup)?];
        Ok(RawEncoder {
            pixel,
            width: w,
            height: h,
            stride,
            compressor,
            u: vec![0; chroma],
            v: vec![0; chroma],
            y: if pixel == Pixel::Yuyv {
                vec![0; w * h]
            } else {
                Vec::new()
            },
            out,
        })
    }

    /// Bytes a whole frame takes.
    pub fn frame_bytes(&self) -> usize {
        match self.pixel {
            Pixel::Yuyv => self.stride * self.height,
            _ => self.stride * self.height + 2 * (self.stride / 2) * (self.height / 2),
        }
    }

    /// Encodes one raw frame, its planes back to back as V4L2 delivers them, into `jpeg`.
    pub fn encode(&mut self, raw: &[u8], jpeg: &mut Vec<u8>) -> Result<(), EncodeError> {
        if raw.len() < self.frame_bytes() {
            return Err(EncodeError::ShortFrame {
                got: raw.len(),
                need: self.frame_bytes(),
            });
        }
        let luma = self.stride * self.height;
        let chroma = (self.stride / 2) * (self.height / 2);
        match self.pixel {
            Pixel::Yuyv => self.encode_planes(&[raw], &[], jpeg),
            Pixel::Yuv420 => self.encode_planes(
                &[
                    &raw[..luma],
                    &raw[luma..luma + chroma],
                    &raw[luma + chroma..luma + 2 * chroma],
                ],
                &[],
                jpeg,
            ),
            _ => self.encode_planes(&[&raw[..luma], &raw[luma..]], &[], jpeg),
        }
    }

    /// Encodes one raw frame given as its planes, as libcamera maps them: YUYV one plane,
    /// NV12 two (Y, interleaved UV), YUV 4:2:0 three (Y, U, V). Planes may be longer than
    /// the picture (padding); the luma plane is read in place. `app` (an Exif block, or
    /// nothing) goes in after the JPEG's start marker and JFIF segment (`exif::place`).
    pub fn encode_planes(
        &mut self,
        planes: &[&[u8]],
        app: &[u8],
        jpeg: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let (w, h, s) = (self.width, self.height, self.stride);
        let need: &[usize] = match self.pixel {
            Pixel::Yuyv => &[s * h],
            Pixel::Yuv420 => &[s * h, (s / 2) * (h / 2), (s / 2) * (h / 2)],
            _ => &[s * h, s * (h / 2)],
        };
        let got: usize = planes.iter().take(need.len()).map(|p| p.len()).sum();
        if planes.len() < need.len() || planes.iter().zip(need).any(|(p, &n)| p.len() < n) {
            return Err(EncodeError::ShortFrame {
                got,
                need: need.iter().sum(),
            });
        }
        let image = match self.pixel {
            Pixel::Yuyv => {
                let raw = planes[0];
                for row in 0..h {
                    let line = &raw[row * s..row * s + 2 * w];
                    let (y, u, v) = (
                        &mut self.y[row * w..(row + 1) * w],
                        &mut self.u[row * w / 2..(row + 1) * w / 2],
                        &mut self.v[row * w / 2..(row + 1) * w / 2],
                    );
                    for (i, px) in line.chunks_exact(4).enumerate() {
                        y[2 * i] = px[0];
                        u[i] = px[1];
                        y[2 * i + 1] = px[2];
                        v[i] = px[3];
                    }
                }
                YuvPlanesImage {
                    y_plane: &self.y[..],
                    u_plane: &self.u[..],
                    v_plane: &self.v[..],
                    width: w,
                    height: h,
                    y_stride: w,
                    u_stride: w / 2,
                    v_stride: w / 2,
                    subsamp: Subsamp::Sub2x1,
                }
            }
            Pixel::Yuv420 => {
                let (cs, ch) = (s / 2, h / 2);
                YuvPlanesImage {
                    y_plane: &planes[0][..s * h],
                    u_plane: &planes[1][..cs * ch],
                    v_plane: &planes[2][..cs * ch],
                    width: w,
                    height: h,
                    y_stride: s,
                    u_stride: cs,
                    v_stride: cs,
                    subsamp: Subsamp::Sub2x2,
                }
            }
            _ => {
                let uv = planes[1];
                for row in 0..h / 2 {
                    let line = &uv[row * s..row * s + w];
                    for (i, px) in line.chunks_exact(2).enumerate() {
                        self.u[row * w / 2 + i] = px[0];
                        self.v[row * w / 2 + i] = px[1];
                    }
                }
                YuvPlanesImage {
                    y_plane: &planes[0][..s * h],
                    u_plane: &self.u[..],
                    v_plane: &self.v[..],
                    width: w,
                    height: h,
                    y_stride: s,
                    u_stride: w / 2,
                    v_stride: w / 2,
                    subsamp: Subsamp::Sub2x2,
                }
            }
        };
        let n = self
            .compressor
            .compress_yuv_planes_to_slice(&image, &mut self.out)
            .map_err(EncodeError::Jpeg)?;
        let at = crate::frame::exif::place(&self.out[..n]);
        jpeg.clear();
        jpeg.extend_from_slice(&self.out[..at]);
        jpeg.extend_from_slice(app);
        jpeg.extend_from_slice(&self.out[at..n]);
        Ok(())
    }
}

/// The CPU time this thread takes to encode one frame of noise of `width`x`height` at
/// `quality` (NV12, whose chroma is split first: the dearer of libcamera's layouts): the
/// most a frame of that size costs here, since noise leaves the encoder no coefficient
/// to drop. A dark scene at high gain comes near it; an ordinary scene costs a third to
/// a half of it (1456x1088 at quality 80 on a 2-core VM: 7.6 ms noise, 3.2 ms a
/// gradient with mild noise, 2.1 ms a flat grey). The least of three encodes after one
/// that warms the caches, so that a moment the thread was held up does not count.
pub fn noise_frame_cost(
    width: u32,
    height: u32,
    quality: u8,
) -> Result<std::time::Duration, EncodeError> {
    let mut encoder = RawEncoder::new(Pixel::Nv12, width, height, width, quality)?;
    let noise = noise(encoder.frame_bytes());
    // The thread's CPU time (wall time where it has no CPU clock).
    let (clock, start) = (
        crate::clock::ThreadCpuClock::of_this_thread(),
        std::time::Instant::now(),
    );
    let now = || {
        clock
            .and_then(|c| c.read())
            .unwrap_or_else(|| start.elapsed())
    };
    let mut jpeg = Vec::new();
    encoder.encode(&noise, &mut jpeg)?;
    let mut least = std::time::Duration::MAX;
    for _ in 0..3 {
        let t = now();
        encoder.encode(&noise, &mut jpeg)?;
        least = least.min(now().saturating_sub(t));
    }
    Ok(least)
}

/// `len` bytes of noise, the same every time (xorshift64).
fn noise(len: usize) -> Vec<u8> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// `encoders: auto`: the share of a core that each encoding thread may need at most for
/// frames of noise (the dearest a frame of the size can be), so that an ordinary scene
/// leaves it idle half the time or more, and even noise stays under the 80% at which a
/// busy capture thread is said to lose frames (`capture::BUSY`).
pub const AUTO_SHARE: f64 = 0.75;

/// Threads for `encoders: auto`: enough that frames which take `cost` each (a frame of
/// noise, [`noise_frame_cost`]) at `fps` need at most [`AUTO_SHARE`] of a core on each,
/// and no more than the machine's `cores` (nor 16).
pub fn auto_threads(cost: std::time::Duration, fps: f64, cores: usize) -> u32 {
    let need = cost.as_secs_f64() * fps;
    let n = (need / AUTO_SHARE).ceil().clamp(1.0, 16.0) as u32;
    n.min(cores.clamp(1, 16) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A raw frame: left half dark, right half bright; red-ish chroma.
    fn raw(pixel: Pixel, w: usize, h: usize, stride: usize) -> Vec<u8> {
        match pixel {
            Pixel::Yuyv => {
                let mut v = vec![0u8; stride * h];
                for row in 0..h {
                    for x in (0..w).step_by(2) {
                        let luma = if x < w / 2 { 40 } else { 220 };
                        let o = row * stride + 2 * x;
                        v[o..o + 4].copy_from_slice(&[luma, 100, luma, 200]);
                    }
                }
                v
            }
            Pixel::Yuv420 => {
                let mut v = vec![128u8; stride * h + 2 * (stride / 2) * (h / 2)];
                for row in 0..h {
                    for x in 0..w {
                        v[row * stride + x] = if x < w / 2 { 40 } else { 220 };
                    }
                }
                v
            }
            _ => {
                let mut v = vec![0u8; stride * h * 3 / 2];
                for row in 0..h {
                    for x in 0..w {
                        v[row * stride + x] = if x < w / 2 { 40 } else { 220 };
                    }
                }
                for row in 0..h / 2 {
                    for x in (0..w).step_by(2) {
                        let o = stride * h + row * stride + x;
                        v[o] = 100;
                        v[o + 1] = 200;
                    }
                }
                v
            }
        }
    }

    fn check(pixel: Pixel, stride: usize) {
        let (w, h) = (64, 48);
        let mut enc = RawEncoder::new(pixel, w as u32, h as u32, stride as u32, 90).unwrap();
        let mut jpeg = Vec::new();
        enc.encode(&raw(pixel, w, h, stride), &mut jpeg).unwrap();
        let img = turbojpeg::decompress_to_yuv(&jpeg).unwrap();
        assert_eq!((img.width, img.height), (w, h));
        // Y plane: dark left, bright right (within JPEG's error).
        let y = |x: usize, row: usize| img.pixels[row * img.width + x] as i32;
        assert!((y(5, 10) - 40).abs() < 6, "{}", y(5, 10));
        assert!((y(60, 40) - 220).abs() < 6, "{}", y(60, 40));
        // Short buffers are refused, not encoded.
        assert!(enc
            .encode(&raw(pixel, w, h, stride)[..100], &mut jpeg)
            .is_err());
    }

    #[test]
    fn yuyv_and_nv12_frames_become_jpegs_of_the_same_picture() {
        check(Pixel::Yuyv, 128);
        check(Pixel::Yuyv, 160); // padded lines
        check(Pixel::Nv12, 64);
        check(Pixel::Nv12, 96);
        check(Pixel::Yuv420, 64);
        check(Pixel::Yuv420, 128);
    }

    #[test]
    fn planes_as_libcamera_maps_them_give_the_same_jpeg_and_short_ones_are_refused() {
        for (pixel, stride) in [(Pixel::Nv12, 64), (Pixel::Yuv420, 64), (Pixel::Yuv420, 96)] {
            let (w, h) = (64, 48);
            let frame = raw(pixel, w, h, stride);
            let mut enc = RawEncoder::new(pixel, w as u32, h as u32, stride as u32, 90).unwrap();
            let mut whole = Vec::new();
            enc.encode(&frame, &mut whole).unwrap();
            // Each plane separately, each with padding after it (as a driver may align).
            let luma = stride * h;
            let chroma = (stride / 2) * (h / 2);
            let bounds: Vec<(usize, usize)> = if pixel == Pixel::Nv12 {
                vec![(0, luma), (luma, luma + stride * (h / 2))]
            } else {
                vec![
                    (0, luma),
                    (luma, luma + chroma),
                    (luma + chroma, luma + 2 * chroma),
                ]
            };
            let padded: Vec<Vec<u8>> = bounds
                .iter()
                .map(|&(a, b)| {
                    let mut p = frame[a..b].to_vec();
                    p.extend_from_slice(&[7; 100]);
                    p
                })
                .collect();
            let planes: Vec<&[u8]> = padded.iter().map(|p| &p[..]).collect();
            let mut split = Vec::new();
            enc.encode_planes(&planes, &[], &mut split).unwrap();
            assert_eq!(split, whole, "{pixel:?} stride {stride}");
            // An Exif block goes in after the start marker and JFIF segment, the
            // picture unchanged.
            let exposure = crate::frame::exif::Exposure {
                time_us: Some(2000),
                analogue_gain: Some(4.0),
                digital_gain: Some(1.0),
            };
            let mut app = Vec::new();
            exposure.write_app1(&mut app);
            let mut with = Vec::new();
            enc.encode_planes(&planes, &app, &mut with).unwrap();
            assert_eq!(crate::frame::exif::read(&with), Some(exposure));
            let at = crate::frame::exif::place(&whole);
            assert_eq!([&whole[..at], &app, &whole[at..]].concat(), with);
            // A missing or short plane is refused, not read past its end.
            assert!(enc
                .encode_planes(&planes[..planes.len() - 1], &[], &mut split)
                .is_err());
            let short = &padded[1][..10];
            let mut bad = planes.clone();
            bad[1] = short;
            assert!(matches!(
                enc.encode_planes(&bad, &[], &mut split),
                Err(EncodeError::ShortFrame { .. })
            ));
        }
    }

    #[test]
    fn auto_encoders_keep_each_thread_under_its_share_within_the_cores() {
        let ms = |m: f64| std::time::Duration::from_secs_f64(m / 1e3);
        // A small frame at a low rate: the capture thread alone.
        assert_eq!(auto_threads(ms(0.1), 30.0, 4), 1);
        // Up to AUTO_SHARE of a core on one thread, then one more.
        assert_eq!(auto_threads(ms(7.5), 100.0, 4), 1);
        assert_eq!(auto_threads(ms(7.6), 100.0, 4), 2);
        // 1456x1088 of noise on a Pi-like 25 ms at 60 fps: 1.5 cores, on 2 threads.
        assert_eq!(auto_threads(ms(25.0), 60.0, 4), 2);
        assert_eq!(auto_threads(ms(26.0), 60.0, 4), 3);
        // Never more than the machine's cores, nor 16, nor fewer than 1.
        assert_eq!(auto_threads(ms(100.0), 100.0, 4), 4);
        assert_eq!(auto_threads(ms(100.0), 1000.0, 64), 16);
        assert_eq!(auto_threads(ms(100.0), 100.0, 0), 1);
        assert_eq!(auto_threads(std::time::Duration::ZERO, 100.0, 4), 1);
    }

    #[test]
    fn the_frame_auto_encoders_are_measured_on_leaves_the_encoder_nothing_to_drop() {
        // Noise is the dearest frame: its JPEG is a third of its raw size or more, ten
        // times that of a plain picture (two flat halves) at the same quality.
        let (w, h) = (320usize, 240usize);
        let mut enc = RawEncoder::new(Pixel::Nv12, w as u32, h as u32, w as u32, 80).unwrap();
        let mut jpeg = Vec::new();
        enc.encode(&noise(enc.frame_bytes()), &mut jpeg).unwrap();
        let noisy = jpeg.len();
        enc.encode(&raw(Pixel::Nv12, w, h, w), &mut jpeg).unwrap();
        assert!(
            noisy > enc.frame_bytes() / 3 && noisy > 10 * jpeg.len(),
            "noise: {noisy} bytes of {}; a picture: {}",
            enc.frame_bytes(),
            jpeg.len()
        );
        assert!(noise_frame_cost(w as u32, h as u32, 80).unwrap() > std::time::Duration::ZERO);
        // A size the encoder cannot take is said, as at the camera's own open.
        assert!(matches!(
            noise_frame_cost(321, 240, 80),
            Err(EncodeError::OddSize { .. })
        ));
    }
}
