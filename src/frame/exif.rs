//! A frame's exposure as its camera reported it, carried in the frame's own JPEG: an
//! Exif block (APP1) after the start marker and the JFIF segment that follows it, where
//! JFIF and Exif readers both look (`design/files.md`, "Exposure in each frame"). The
//! encoding thread that makes the JPEG from a libcamera buffer writes it; the writer
//! reads it back for the frames sidecar's columns. So the values travel with
//! the frame through the ring (no bytes in the ring's per-frame record), stay in the
//! MKV, and show in `ffprobe -show_frames` and in any image viewer given a frame
//! extracted with `ffmpeg -c copy`.
//!
//! The block, little-endian TIFF: IFD0 holds only the Exif IFD's place; the Exif IFD
//! holds `ExposureTime` (the exposure as a fraction of a second, µs / 1000000),
//! `ISOSpeedRatings` (100 × analogue × digital gain, rounded: what viewers show) and a
//! `MakerNote` with the exact values: `hindsight\0`, a version (u16, 1), the exposure in
//! µs (u32, `u32::MAX` when not reported) and the two gains (f32, NaN when not reported).

/// What a frame was exposed with, as its camera reported it (libcamera's metadata of
/// the request that filled it). A value the camera did not report is `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Exposure {
    /// `ExposureTime`, µs.
    pub time_us: Option<u32>,
    /// `AnalogueGain`: the sensor's gain.
    pub analogue_gain: Option<f32>,
    /// `DigitalGain`: the gain applied to the pixels after the sensor.
    pub digital_gain: Option<f32>,
}

/// The maker note's first bytes: a name, its NUL and the layout's version (1).
const MAGIC: &[u8; 12] = b"hindsight\0\x01\0";
const NOTE_LEN: usize = MAGIC.len() + 12;
const EXIF_IFD_TAG: u16 = 0x8769;
const EXPOSURE_TIME_TAG: u16 = 0x829A;
const ISO_TAG: u16 = 0x8827;
const MAKER_NOTE_TAG: u16 = 0x927C;
const SHORT: u16 = 3;
const LONG: u16 = 4;
const RATIONAL: u16 = 5;
const UNDEFINED: u16 = 7;
/// Where IFD0 ends and the Exif IFD begins in the TIFF block (IFD0 has one entry).
const EXIF_IFD: usize = 8 + 2 + 12 + 4;

impl Exposure {
    /// Appends the APP1 segment (marker, length, Exif block) that carries these values.
    /// Allocates nothing once `out` has room.
    pub fn write_app1(&self, out: &mut Vec<u8>) {
        let iso = self.analogue_gain.map(|a| {
            let total = f64::from(a) * f64::from(self.digital_gain.unwrap_or(1.0));
            (total * 100.0).round().clamp(1.0, 65535.0) as u16
        });
        let entries = 1 + usize::from(self.time_us.is_some()) + usize::from(iso.is_some());
        let data = EXIF_IFD + 2 + 12 * entries + 4;
        let tiff_len = data + if self.time_us.is_some() { 8 } else { 0 } + NOTE_LEN;
        let start = out.len();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((2 + 6 + tiff_len) as u16).to_be_bytes());
        out.extend_from_slice(b"Exif\0\0II*\0");
        out.extend_from_slice(&8u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        entry(out, EXIF_IFD_TAG, LONG, 1, EXIF_IFD as u32);
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(entries as u16).to_le_bytes());
        let mut next = data;
        if self.time_us.is_some() {
            entry(out, EXPOSURE_TIME_TAG, RATIONAL, 1, next as u32);
            next += 8;
        }
        if let Some(iso) = iso {
            entry(out, ISO_TAG, SHORT, 1, u32::from(iso));
        }
        entry(out, MAKER_NOTE_TAG, UNDEFINED, NOTE_LEN as u32, next as u32);
        out.extend_from_slice(&0u32.to_le_bytes());
        if let Some(t) = self.time_us {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&1_000_000u32.to_le_bytes());
        }
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.time_us.unwrap_or(u32::MAX).to_le_bytes());
        for gain in [self.analogue_gain, self.digital_gain] {
            out.extend_from_slice(&gain.unwrap_or(f32::NAN).to_le_bytes());
        }
        debug_assert_eq!(out.len() - start, 4 + 6 + tiff_len);
    }
}

/// "exposure 2000 µs · analogue gain 2.75 · digital gain 1.125", what was reported.
impl std::fmt::Display for Exposure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::with_capacity(3);
        if let Some(t) = self.time_us {
            parts.push(format!("exposure {t} µs"));
        }
        if let Some(g) = self.analogue_gain {
            parts.push(format!("analogue gain {g}"));
        }
        if let Some(g) = self.digital_gain {
            parts.push(format!("digital gain {g}"));
        }
        if parts.is_empty() {
            return f.write_str("exposure not reported");
        }
        f.write_str(&parts.join(" · "))
    }
}

/// One IFD entry; a SHORT value sits in the entry's first two bytes.
fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: u32) {
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
}

/// Where an Exif block goes in `jpeg`: after its start marker and the JFIF segment
/// (APP0) right after it, if it has one (as libjpeg writes it).
pub fn place(jpeg: &[u8]) -> usize {
    match jpeg.get(..4) {
        Some([0xFF, 0xD8, 0xFF, 0xE0]) if jpeg.len() >= 6 => {
            (4 + usize::from(u16::from_be_bytes([jpeg[4], jpeg[5]]))).min(jpeg.len())
        }
        _ => 2.min(jpeg.len()),
    }
}

/// The exposure a JPEG carries in the block [`Exposure::write_app1`] writes (at
/// [`place`]); `None` for any other JPEG (none, another Exif block, cut short).
pub fn read(jpeg: &[u8]) -> Option<Exposure> {
    if jpeg.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let at = place(jpeg);
    if jpeg.get(at..at + 2)? != [0xFF, 0xE1] {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([*jpeg.get(at + 2)?, *jpeg.get(at + 3)?]));
    let tiff = jpeg.get(at + 4..at + 2 + len)?.strip_prefix(b"Exif\0\0")?;
    if tiff.get(..4)? != b"II*\0" {
        return None;
    }
    let exif = find(tiff, u32_at(tiff, 4)?, EXIF_IFD_TAG)?.1;
    let (count, at) = find(tiff, exif, MAKER_NOTE_TAG)?;
    let note = tiff.get(at..at.checked_add(NOTE_LEN)?)?;
    if count < NOTE_LEN || note[..MAGIC.len()] != MAGIC[..] {
        return None;
    }
    let time = u32_at(note, MAGIC.len())? as u32;
    let gain = |at: usize| Some(f32::from_bits(u32_at(note, at)? as u32)).filter(|g| !g.is_nan());
    Some(Exposure {
        time_us: (time != u32::MAX).then_some(time),
        analogue_gain: gain(MAGIC.len() + 4),
        digital_gain: gain(MAGIC.len() + 8),
    })
}

/// The count and value (or offset) of the entry `tag` of the IFD at `ifd`.
fn find(tiff: &[u8], ifd: usize, tag: u16) -> Option<(usize, usize)> {
    if ifd > tiff.len() {
        return None;
    }
    let n = usize::from(u16::from_le_bytes(tiff.get(ifd..ifd + 2)?.try_into().ok()?));
    (0..n).find_map(|i| {
        let at = ifd + 2 + 12 * i;
        let e = tiff.get(at..at + 12)?;
        if u16::from_le_bytes([e[0], e[1]]) != tag {
            return None;
        }
        Some((u32_at(e, 4)?, u32_at(e, 8)?))
    })
}

fn u32_at(b: &[u8], at: usize) -> Option<usize> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain_jpeg() -> Vec<u8> {
        let pixels: Vec<u8> = (0..64 * 48).map(|i| (i % 251) as u8).collect();
        let image = turbojpeg::Image {
            pixels: &pixels[..],
            width: 64,
            pitch: 64,
            height: 48,
            format: turbojpeg::PixelFormat::GRAY,
        };
        turbojpeg::compress(image, 90, turbojpeg::Subsamp::Gray)
            .unwrap()
            .to_vec()
    }

    fn jpeg_with(e: &Exposure) -> Vec<u8> {
        let plain = plain_jpeg();
        let at = place(&plain);
        let mut out = plain[..at].to_vec();
        e.write_app1(&mut out);
        out.extend_from_slice(&plain[at..]);
        out
    }

    /// libjpeg's JPEGs begin with a JFIF segment: the block goes after it, where a
    /// reader that wants JFIF first finds it.
    #[test]
    fn the_block_goes_after_the_jfif_segment() {
        let plain = plain_jpeg();
        assert_eq!(&plain[6..11], b"JFIF\0");
        let with = jpeg_with(&Exposure::default());
        assert_eq!(&with[..place(&plain)], &plain[..place(&plain)]);
        assert_eq!(&with[6..11], b"JFIF\0");
        assert_eq!(&with[place(&plain)..place(&plain) + 2], &[0xFF, 0xE1]);
        // Without a JFIF segment, right after the start marker.
        let bare = [&plain[..2], &plain[place(&plain)..]].concat();
        assert_eq!(place(&bare), 2);
    }

    #[test]
    fn what_is_written_is_read_back_exactly() {
        for e in [
            Exposure {
                time_us: Some(2000),
                analogue_gain: Some(2.564_103),
                digital_gain: Some(1.125),
            },
            Exposure {
                time_us: Some(16_666),
                analogue_gain: None,
                digital_gain: None,
            },
            Exposure {
                time_us: None,
                analogue_gain: Some(4.0),
                digital_gain: None,
            },
            Exposure::default(),
        ] {
            assert_eq!(read(&jpeg_with(&e)), Some(e));
        }
    }

    #[test]
    fn it_reads_as_what_was_reported() {
        let e = Exposure {
            time_us: Some(2000),
            analogue_gain: Some(2.75),
            digital_gain: Some(1.125),
        };
        assert_eq!(
            e.to_string(),
            "exposure 2000 µs · analogue gain 2.75 · digital gain 1.125"
        );
        let gain_only = Exposure {
            analogue_gain: Some(4.0),
            ..Exposure::default()
        };
        assert_eq!(gain_only.to_string(), "analogue gain 4");
        assert_eq!(Exposure::default().to_string(), "exposure not reported");
    }

    /// The frame's picture is untouched: a JPEG decoder skips the block.
    #[test]
    fn the_picture_decodes_as_before() {
        let plain = plain_jpeg();
        let with = jpeg_with(&Exposure {
            time_us: Some(2000),
            analogue_gain: Some(4.0),
            digital_gain: Some(1.0),
        });
        let a = turbojpeg::decompress(&plain, turbojpeg::PixelFormat::GRAY).unwrap();
        let b = turbojpeg::decompress(&with, turbojpeg::PixelFormat::GRAY).unwrap();
        assert_eq!(a.pixels, b.pixels);
    }

    /// Another JPEG, or ours cut anywhere or with its note changed, reads as nothing
    /// (never a wrong value, never a panic).
    #[test]
    fn other_or_damaged_jpegs_carry_nothing() {
        let plain = plain_jpeg();
        assert_eq!(read(&plain), None);
        let with = jpeg_with(&Exposure {
            time_us: Some(2000),
            analogue_gain: Some(4.0),
            digital_gain: None,
        });
        let at = place(&with);
        let block = at + 2 + usize::from(u16::from_be_bytes([with[at + 2], with[at + 3]]));
        for cut in 0..block {
            assert_eq!(read(&with[..cut]), None, "cut at {cut}");
        }
        let mut other = with.clone();
        let magic = other.windows(9).position(|w| w == b"hindsight").unwrap();
        other[magic] = b'H';
        assert_eq!(read(&other), None);
    }
}
