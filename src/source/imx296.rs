//! The Raspberry Pi Global Shutter camera (Sony IMX296, 1456x1088) at high frame rates.
//!
//! The sensor reads only the rows it is told to: a smaller crop, centred on the sensor,
//! gives higher frame rates (1456x96 at 536 fps, 688x136 at 400, 224x96 at 500, 600x600
//! at 200). libcamera does not choose such crops itself; the sensor's subdevice format is
//! set with `media-ctl` before the camera is started (as the community's `GScrop` script
//! does). This module computes the crop and the exact `media-ctl` command, checked here
//! in code rather than hand-written in a shell script.

use std::process::Command;

/// The IMX296's pixel array.
pub const SENSOR_WIDTH: u32 = 1456;
pub const SENSOR_HEIGHT: u32 = 1088;
/// The smallest crop the driver accepts (`IMX296_FID0_ROIWH1_MIN`, `..._ROIWV1_MIN`).
pub const MIN_WIDTH: u32 = 80;
pub const MIN_HEIGHT: u32 = 4;
/// The driver aligns the crop's corner and size up to multiples of 4: a request that is
/// not aligned would silently give another size, so it is refused here.
pub const ALIGN: u32 = 4;

/// The fastest the whole sensor runs (60.38 fps by Sony's figures); faster needs a crop.
pub const FULL_SENSOR_FPS: f64 = 60.0;

/// `imx296_crop: auto`: whether a libcamera camera of `model` asked for `fps` gets the
/// crop: an IMX296 (colour or mono) at a rate the whole sensor cannot give. At 60 fps
/// or less the whole sensor is read and scaled to the size asked for, keeping the
/// camera's full field of view, as libcamera does for any camera.
pub fn auto_crop(model: &str, fps: f64) -> bool {
    model.starts_with("imx296") && fps > FULL_SENSOR_FPS
}

/// A crop of the sensor: its size and its top-left corner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crop {
    pub width: u32,
    pub height: u32,
    pub left: u32,
    pub top: u32,
}

/// The centred crop for `width`x`height`. Sizes must be multiples of 4 (what the driver
/// sets; a multiple of 2 keeps the Bayer order) and fit the sensor; the corner is rounded
/// down to a multiple of 4, so the crop stays centred to within 2 pixels.
pub fn crop(width: u32, height: u32) -> Result<Crop, CropError> {
    if !width.is_multiple_of(ALIGN) || !height.is_multiple_of(ALIGN) {
        return Err(CropError::Unaligned { width, height });
    }
    if !(MIN_WIDTH..=SENSOR_WIDTH).contains(&width)
        || !(MIN_HEIGHT..=SENSOR_HEIGHT).contains(&height)
    {
        return Err(CropError::OutOfRange { width, height });
    }
    let down = |v: u32| v / ALIGN * ALIGN;
    Ok(Crop {
        width,
        height,
        left: down((SENSOR_WIDTH - width) / 2),
        top: down((SENSOR_HEIGHT - height) / 2),
    })
}

/// The media bus format of the sensor's output: colour (Bayer BGGR) or mono.
pub fn bus_format(mono: bool) -> &'static str {
    if mono {
        "Y10_1X10"
    } else {
        "SBGGR10_1X10"
    }
}

/// The arguments of `media-ctl` that set `crop` on `entity` of `media_device`.
pub fn media_ctl_args(media_device: &str, entity: &str, mono: bool, c: Crop) -> Vec<String> {
    vec![
        "-d".into(),
        media_device.into(),
        "--set-v4l2".into(),
        format!(
            "'{entity}':0 [fmt:{}/{}x{} crop:({},{})/{}x{}]",
            bus_format(mono),
            c.width,
            c.height,
            c.left,
            c.top,
            c.width,
            c.height
        ),
    ]
}

/// The IMX296 entity in `media-ctl -p` output: its name (e.g. `imx296 10-001a`) and
/// whether it is the mono sensor.
pub fn find_entity(media_ctl_print: &str) -> Option<(String, bool)> {
    // "- entity 20: imx296 10-001a (1 pad, 1 link, 0 route)"
    for line in media_ctl_print.lines() {
        let line = line.trim();
        let Some(rest) = line.strip_prefix("- entity ") else {
            continue;
        };
        let Some((_, name)) = rest.split_once(": ") else {
            continue;
        };
        let name = name.split(" (").next().unwrap_or(name).trim();
        if name.starts_with("imx296") {
            let mono = media_ctl_print.contains("Y10_1X10");
            return Some((name.to_string(), mono));
        }
    }
    None
}

/// Finds the IMX296 on /dev/media0..7 and sets the crop for `width`x`height`. Returns
/// what was done, for the log. With no /dev/media* at all, /dev/media0 is still asked,
/// so that media-ctl says what is wrong (and a stand-in can answer in tests).
pub fn apply(width: u32, height: u32) -> Result<String, CropError> {
    let c = crop(width, height)?;
    let mut devices: Vec<String> = (0..8)
        .map(|m| format!("/dev/media{m}"))
        .filter(|d| std::path::Path::new(d).exists())
        .collect();
    if devices.is_empty() {
        devices.push("/dev/media0".into());
    }
    for dev in devices {
        let out = Command::new("media-ctl")
            .args(["-d", &dev, "-p"])
            .output()
            .map_err(CropError::NoMediaCtl)?;
        let text = String::from_utf8_lossy(&out.stdout);
        let Some((entity, mono)) = find_entity(&text) else {
            continue;
        };
        let args = media_ctl_args(&dev, &entity, mono, c);
        let out = Command::new("media-ctl")
            .args(&args)
            .output()
            .map_err(CropError::NoMediaCtl)?;
        if !out.status.success() {
            return Err(CropError::Refused {
                args: args.join(" "),
                said: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        return Ok(format!("media-ctl {}", args.join(" ")));
    }
    Err(CropError::NotFound)
}

/// Why the IMX296 crop could not be set.
#[derive(Debug, thiserror::Error)]
pub enum CropError {
    #[error("IMX296 crop {width}x{height}: width and height must be multiples of {ALIGN} (the driver would change them)")]
    Unaligned { width: u32, height: u32 },
    #[error("IMX296 crop {width}x{height}: must be between {MIN_WIDTH}x{MIN_HEIGHT} and {SENSOR_WIDTH}x{SENSOR_HEIGHT}")]
    OutOfRange { width: u32, height: u32 },
    #[error("cannot run media-ctl (apt install v4l-utils): {0}")]
    NoMediaCtl(std::io::Error),
    #[error("media-ctl {args}: {said}")]
    Refused { args: String, said: String },
    #[error("no IMX296 (Global Shutter camera) found on /dev/media0..7")]
    NotFound,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_frame_rate_modes_are_centred_even_crops() {
        let table = [
            ((1456, 96), (0, 496)),
            ((688, 136), (384, 476)),
            ((224, 96), (616, 496)),
            ((600, 600), (428, 244)),
            ((1456, 1088), (0, 0)),
        ];
        for ((w, h), (left, top)) in table {
            let c = crop(w, h).unwrap();
            assert_eq!((c.left, c.top), (left, top), "{w}x{h}");
            // Centred (to the driver's alignment), inside the sensor, as the driver
            // will set it (multiples of 4).
            assert!(c.left + c.width <= SENSOR_WIDTH && c.top + c.height <= SENSOR_HEIGHT);
            assert!((SENSOR_WIDTH - c.width - 2 * c.left) <= 4);
            assert!((SENSOR_HEIGHT - c.height - 2 * c.top) <= 4);
            assert!([c.left, c.top, c.width, c.height]
                .iter()
                .all(|v| v % 4 == 0));
        }
        // A margin that is not a multiple of 4 is rounded down: (1456-1452)/2 = 2 → 0.
        let c = crop(1452, 1080).unwrap();
        assert_eq!((c.left, c.top), (0, 4));
    }

    #[test]
    fn auto_crops_an_imx296_only_above_the_rate_of_its_whole_sensor() {
        assert!(auto_crop("imx296", 536.0));
        assert!(auto_crop("imx296_mono", 200.0));
        assert!(auto_crop("imx296", 60.5));
        assert!(!auto_crop("imx296", 60.0));
        assert!(!auto_crop("imx296", 30.0));
        assert!(!auto_crop("imx708", 120.0));
        assert!(!auto_crop("virtual-imx296", 536.0));
    }

    #[test]
    fn impossible_crops_are_refused() {
        let e = |w, h| crop(w, h).unwrap_err().to_string();
        assert!(e(689, 136).contains("multiples of 4"));
        assert!(e(690, 136).contains("multiples of 4"));
        assert!(e(1460, 96).contains("between"));
        assert!(e(76, 96).contains("between"));
        assert!(crop(600, 1092).is_err());
    }

    #[test]
    fn the_media_ctl_commands() {
        let cases = [
            (
                (1456, 96),
                "'imx296 10-001a':0 [fmt:SBGGR10_1X10/1456x96 crop:(0,496)/1456x96]",
            ),
            (
                (688, 136),
                "'imx296 10-001a':0 [fmt:SBGGR10_1X10/688x136 crop:(384,476)/688x136]",
            ),
            (
                (224, 96),
                "'imx296 10-001a':0 [fmt:SBGGR10_1X10/224x96 crop:(616,496)/224x96]",
            ),
            (
                (600, 600),
                "'imx296 10-001a':0 [fmt:SBGGR10_1X10/600x600 crop:(428,244)/600x600]",
            ),
        ];
        for ((w, h), want) in cases {
            let args = media_ctl_args("/dev/media0", "imx296 10-001a", false, crop(w, h).unwrap());
            assert_eq!(args, ["-d", "/dev/media0", "--set-v4l2", want]);
        }
        let mono = media_ctl_args(
            "/dev/media3",
            "imx296 11-001a",
            true,
            crop(224, 96).unwrap(),
        );
        assert_eq!(
            mono[3],
            "'imx296 11-001a':0 [fmt:Y10_1X10/224x96 crop:(616,496)/224x96]"
        );
    }

    #[test]
    fn the_sensor_is_found_in_media_ctl_output() {
        let print = "Media controller API version 6.6.51\n\nMedia device information\n------------------------\ndriver          rp1-cfe\n\n- entity 1: rp1-cfe-csi2_ch0 (1 pad, 1 link)\n            type Node subtype V4L flags 0\n\n- entity 20: imx296 10-001a (1 pad, 1 link, 0 routes)\n             type V4L2 subdev subtype Sensor flags 0\n             device node name /dev/v4l-subdev2\n\tpad0: Source\n\t\t[stream:0 fmt:SBGGR10_1X10/1456x1088 field:none colorspace:raw xfer:none ycbcr:601 quantization:full-range\n";
        assert_eq!(find_entity(print), Some(("imx296 10-001a".into(), false)));
        assert!(find_entity(&print.replace("SBGGR10", "Y10")).unwrap().1);
        assert_eq!(find_entity("- entity 3: imx219 10-0010 (1 pad)"), None);
    }
}
