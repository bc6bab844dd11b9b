//! libcamera's `virtual` camera as scripts/build-libcamera.sh builds it (our test patches:
//! frame n is exposed at start + n * frame duration, stamped so as its SensorTimestamp, and
//! shows image n.jpg): its configuration, images that are the synthetic camera's own JPEGs
//! (so every recorded frame says in its pixels which sensor frame it is), and what a
//! recording of it must show. For tests/libcamera.rs, and tests/arm.rs (the aarch64 build).

use std::path::{Path, PathBuf};

use super::{decoded_frame_numbers, ffprobe_exif, SidecarRow};

/// Images per virtual camera: the pixels show the sensor's frame number modulo this.
pub const IMAGES: u64 = 240;

/// One virtual camera: its libcamera id, model, the one size it offers and its frame-rate
/// range.
pub struct Virtual {
    pub id: &'static str,
    pub model: &'static str,
    pub width: u32,
    pub height: u32,
    pub rates: (u32, u32),
}

pub const PI: Virtual = Virtual {
    id: "Virtual0",
    model: "virtual-imx708",
    width: 320,
    height: 240,
    rates: (10, 60),
};

/// Writes the cameras' images (synthetic frames 0..IMAGES) and their configuration
/// under `dir`; returns the configuration's path (for LIBCAMERA_VIRTUAL_CONFIG).
pub fn virtual_cameras(dir: &Path, cams: &[Virtual]) -> PathBuf {
    virtual_cameras_showing(dir, cams, IMAGES)
}

/// [`virtual_cameras`] with `images` images each (fewer for a large size: libcamera
/// holds every one decoded).
pub fn virtual_cameras_showing(dir: &Path, cams: &[Virtual], images: u64) -> PathBuf {
    let mut yaml = String::from("%YAML 1.1\n---\n");
    for c in cams {
        let frames = dir.join(format!("frames-{}", c.id));
        std::fs::create_dir_all(&frames).unwrap();
        let mut enc =
            hindsight::source::synthetic::PatternEncoder::new(c.width, c.height, 95).unwrap();
        for n in 0..images {
            std::fs::write(frames.join(format!("{n}.jpg")), enc.encode(n).unwrap()).unwrap();
        }
        yaml.push_str(&format!(
            "\"{}\":\n  supported_formats:\n  - width: {}\n    height: {}\n    frame_rates:\n    - {}\n    - {}\n  frames:\n    path: \"{}/\"\n  model: \"{}\"\n",
            c.id,
            c.width,
            c.height,
            c.rates.0,
            c.rates.1,
            frames.display(),
            c.model
        ));
    }
    let path = dir.join("virtual.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// The gains the virtual camera reports for frame n while they are automatic (test patch
/// 06): analogue 1 + (n % 8) / 4, digital 1 + (n % 3) / 8. The pixels show n modulo
/// [`IMAGES`], a multiple of 8 and 3, so a shown number gives the same gains.
pub fn auto_gains(n: u64) -> (f32, f32) {
    (1.0 + (n % 8) as f32 / 4.0, 1.0 + (n % 3) as f32 / 8.0)
}

/// Each sidecar row's exposure columns are its own frame's (the one its pixels show):
/// `exposure_us` and the automatic gains.
pub fn assert_exposures(rows: &[SidecarRow], shown: &[u64], exposure_us: u32) {
    assert_eq!(rows.len(), shown.len());
    for (row, n) in rows.iter().zip(shown) {
        let (analogue, digital) = auto_gains(*n);
        assert_eq!(
            row.exposure,
            Some([
                exposure_us.to_string(),
                analogue.to_string(),
                digital.to_string()
            ]),
            "frame {}, showing {n}",
            row.frame_number
        );
    }
}

/// The ISO speed a frame's Exif gives for the automatic gains of sensor frame `n`: 100
/// times their product, rounded.
pub fn auto_iso(n: u64) -> u32 {
    let (analogue, digital) = auto_gains(n);
    (100.0 * f64::from(analogue) * f64::from(digital)).round() as u32
}

/// Each frame of `mkv` carries its own exposure in its JPEG's Exif, as ffprobe reads it:
/// `exposure_us` and the ISO of the automatic gains of the frame it shows (`shown`).
pub fn assert_exif(mkv: &Path, shown: &[u64], exposure_us: u32) {
    let probed = ffprobe_exif(mkv);
    assert_eq!(probed.len(), shown.len(), "{}", mkv.display());
    for (n, (time, iso)) in shown.iter().zip(&probed) {
        assert_eq!(
            *time,
            format!("{exposure_us}:1000000"),
            "the frame showing {n}"
        );
        assert_eq!(*iso, auto_iso(*n), "the frame showing {n}");
    }
}

/// CLOCK_MONOTONIC now, s: the LSL clock, read by the test itself.
pub fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The sensor frame each recorded frame shows (modulo IMAGES), as decoded from its pixels.
pub fn shown(mkv: &Path, w: usize, h: usize) -> Vec<u64> {
    decoded_frame_numbers(mkv, w, h)
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            n.unwrap_or_else(|| panic!("frame {i} of {} shows no frame number", mkv.display()))
        })
        .collect()
}

/// Steps between shown sensor frames (modulo IMAGES): 1 where none was lost.
pub fn steps(shown: &[u64]) -> Vec<u64> {
    shown
        .windows(2)
        .map(|w| (w[1] + IMAGES - w[0]) % IMAGES)
        .collect()
}

/// The frame period the camera is asked for: a whole number of µs (libcamera's unit).
pub fn period(fps: f64) -> f64 {
    (1e6 / fps).round() * 1e-6
}

/// Checks that every frame's time is its sensor frame's exposure time: frame n of the
/// sensor is exposed at start + n * period, so time - n * period is the same for all
/// (to the microsecond of the sidecar), and consecutive times differ by whole periods.
pub fn assert_sensor_times(rows: &[SidecarRow], shown: &[u64], period: f64) {
    assert_eq!(rows.len(), shown.len());
    let mut n = 0u64; // sensor frames since the first recorded one
    let t0 = rows[0].lsl_time;
    for (i, w) in shown.windows(2).enumerate() {
        n += (w[1] + IMAGES - w[0]) % IMAGES;
        let expect = t0 + n as f64 * period;
        let got = rows[i + 1].lsl_time;
        assert!(
            (got - expect).abs() < 3e-6,
            "frame {} (sensor frame +{n}) at {got:.6}, its exposure was {expect:.6}",
            rows[i + 1].frame_number
        );
    }
}
