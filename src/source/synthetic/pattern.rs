//! The synthetic camera's picture, drawn straight into YUV 4:2:0 planes (the JPEG
//! encoder's native input, so no colour conversion per frame).
//!
//! Every frame shows its frame number twice:
//! * as large seven-segment digits, white on a black box, for a person scrubbing a file;
//! * as a bar-code strip across the top, for tests: [`decode_frame_number`] reads it back
//!   from the luma plane of any decoded frame (ffmpeg `-pix_fmt gray`, turbojpeg GRAY).
//!
//! Behind them a diagonal luma gradient scrolls, the chroma drifts and a yellow square
//! bounces, so motion (and any stutter) is visible when a recording is played.
//! The picture is a pure function of the frame number and the size.
//!
//! # The bar-code strip
//!
//! 64 square cells, row-major from the top-left corner, most significant bit first;
//! white (Y 255) is 1, black (Y 0) is 0. The 64-bit word is the frame number modulo
//! 2^48 in the top 48 bits and a CRC-16/CCITT-FALSE of those 48 bits (6 bytes, big-endian)
//! in the low 16. The CRC has Hamming distance 4 at this length, so any 1, 2 or 3 wrong
//! cells are always detected, and its non-zero initial value makes an all-black strip
//! invalid. The decoder also refuses a cell whose mean is within 48 of mid-grey. So a
//! damaged or missing strip yields `None`; only damage that leaves at least 4 cells
//! decisively wrong can pass, and then with probability 2^-16.
//!
//! The geometry depends only on the frame size, so the decoder recomputes it instead of
//! searching for the strip. Cells are 8, 16, 24 or 32 pixels square (larger on wider
//! frames) and start at (0, 0), so each cell covers whole 8x8 JPEG luma blocks: every
//! block in the strip is flat, JPEG codes it with its DC coefficient alone, and there is
//! no ringing between cells whatever the quality. Only frames too small to fit 8-pixel
//! cells in a quarter of their height (such as 64x48) fall back to 4-pixel cells, where
//! four cells share a block; the decoder averages the central half of each cell, which
//! still reads correctly at every quality from 1 to 100 (measured; the tests check 50 and
//! 90 at every camera size). Chroma in the strip is neutral, so 4:2:0 subsampling has
//! nothing to smear into the luma.

use turbojpeg::{Subsamp, YuvImage};

/// The frame number is drawn modulo 2^48 (at 10,000 fps that wraps after 890 years).
pub const FRAME_NUMBER_BITS: u32 = 48;

/// Smallest picture: the strip (4-pixel cells at this size) and a few digits must fit.
pub const MIN_WIDTH: u32 = 64;
pub const MIN_HEIGHT: u32 = 48;
/// Largest picture: 4096 keeps width and height in `FrameMeta`'s `u16` with room to spare
/// and the raw planes at 24 MiB.
pub const MAX_WIDTH: u32 = 4096;
pub const MAX_HEIGHT: u32 = 4096;

const CRC_BITS: u32 = 16;
const CODE_BITS: usize = (FRAME_NUMBER_BITS + CRC_BITS) as usize;
const FRAME_NUMBER_MASK: u64 = (1 << FRAME_NUMBER_BITS) - 1;

/// A cell's mean luma must be at least this far from mid-grey to count as a bit.
const DECISION_MARGIN: u32 = 48;
const MID_GREY: u8 = 128;

const BLACK: u8 = 0;
const WHITE: u8 = 255;
const NEUTRAL_CHROMA: u8 = 128;
/// BT.601 full-range yellow (what JPEG's YCbCr uses), for the bouncing square.
const YELLOW: (u8, u8, u8) = (226, 0, 149);

/// The background's luma and chroma ramps repeat every `PERIOD` pixels.
const PERIOD: usize = 512;
/// The luma gradient moves this many pixels per frame (so it repeats every 128 frames).
const SCROLL: usize = 4;

/// Whether a picture of this size can be drawn (and so decoded).
pub fn size_supported(width: u32, height: u32) -> bool {
    (MIN_WIDTH..=MAX_WIDTH).contains(&width) && (MIN_HEIGHT..=MAX_HEIGHT).contains(&height)
}

/// Reads the frame number from the bar-code strip of a decoded frame's luma plane
/// (`width * height` bytes, rows packed, as `ffmpeg -f rawvideo -pix_fmt gray` writes
/// them). Returns `None` when the strip is missing, damaged or the size is not one a
/// synthetic frame can have; a `Some` has passed the CRC and every cell's margin check.
pub fn decode_frame_number(luma: &[u8], width: usize, height: usize) -> Option<u64> {
    let (Ok(w), Ok(h)) = (u32::try_from(width), u32::try_from(height)) else {
        return None;
    };
    if !size_supported(w, h) || luma.len() < width * height {
        return None;
    }
    let strip = Strip::for_size(width, height);
    // Sample the central half of each cell: away from the cell's edges, where a
    // neighbouring cell of the other colour could bleed in through a shared block.
    let inset = strip.cell / 4;
    let side = strip.cell - 2 * inset;
    let mut word = 0u64;
    for i in 0..CODE_BITS {
        let (x0, y0) = strip.cell_origin(i);
        let sum: u32 = (y0 + inset..y0 + inset + side)
            .map(|y| {
                let start = y * width + x0 + inset;
                luma[start..start + side]
                    .iter()
                    .map(|&v| u32::from(v))
                    .sum::<u32>()
            })
            .sum();
        let mean = sum / (side * side) as u32;
        let bit = if mean >= u32::from(MID_GREY) + DECISION_MARGIN {
            1
        } else if mean + DECISION_MARGIN <= u32::from(MID_GREY) {
            0
        } else {
            return None;
        };
        word = (word << 1) | bit;
    }
    let number = word >> CRC_BITS;
    (number_crc(number) == (word & 0xFFFF) as u16).then_some(number)
}

/// The 64 bits the strip shows for frame `n`.
fn code_word(n: u64) -> u64 {
    let number = n & FRAME_NUMBER_MASK;
    (number << CRC_BITS) | u64::from(number_crc(number))
}

/// The check bits for a 48-bit number: its CRC as six big-endian bytes.
fn number_crc(number: u64) -> u16 {
    crc16(&number.to_be_bytes()[2..])
}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
/// XOR). Bitwise: 48 steps per frame, not worth a table.
fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for byte in bytes {
        crc ^= u16::from(*byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Where the bar-code cells are, for one frame size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Strip {
    /// Cell side in pixels.
    cell: usize,
    cols: usize,
    rows: usize,
}

impl Strip {
    /// The largest cell (multiple of 8, at most 32 and about a fortieth of the width)
    /// whose strip takes at most a quarter of the height; 4-pixel cells if none fits.
    fn for_size(width: usize, height: usize) -> Strip {
        let largest = (width / 40 / 8 * 8).clamp(8, 32);
        for cell in (8..=largest).rev().step_by(8) {
            let strip = Strip::with_cell(width, cell);
            if strip.height() <= height / 4 {
                return strip;
            }
        }
        // At the minimum size, 64x48: 16 columns, 4 rows, 16 pixels high.
        Strip::with_cell(width, 4)
    }

    fn with_cell(width: usize, cell: usize) -> Strip {
        let cols = width / cell;
        Strip {
            cell,
            cols,
            rows: CODE_BITS.div_ceil(cols),
        }
    }

    fn height(&self) -> usize {
        self.rows * self.cell
    }

    /// Top-left pixel of cell `i`.
    fn cell_origin(&self, i: usize) -> (usize, usize) {
        ((i % self.cols) * self.cell, (i / self.cols) * self.cell)
    }
}

/// One picture's planes, kept between frames. Only what moves is redrawn: the strip's
/// grey surround and neutral chroma are drawn once; each frame redraws the cells, the
/// background below the strip (one `memcpy` or fill per row from precomputed ramps), the
/// square and the digits.
pub(super) struct Canvas {
    width: usize,
    height: usize,
    /// Y, then U, then V, laid out as libjpeg-turbo's `tj3CompressFromYUV8` reads them
    /// with row alignment 1: the planes are padded to even dimensions.
    yuv: Vec<u8>,
    y_stride: usize,
    y_rows: usize,
    c_stride: usize,
    c_rows: usize,
    strip: Strip,
    /// Luma gradient: triangle wave of period `PERIOD`, long enough to copy a whole row
    /// from any phase.
    luma_ramp: Vec<u8>,
    /// Chroma (Cb) gradient, likewise, in chroma pixels.
    chroma_ramp: Vec<u8>,
}

impl Canvas {
    /// `width` x `height` must satisfy [`size_supported`].
    pub(super) fn new(width: usize, height: usize) -> Canvas {
        let layout = YuvImage {
            pixels: (),
            width,
            align: 1,
            height,
            subsamp: Subsamp::Sub2x2,
        };
        let (y_stride, y_rows) = layout.y_size();
        let (c_stride, c_rows) = layout.uv_size();
        let luma_ramp = (0..PERIOD + y_stride)
            .map(|i| (32 + triangle(i) * 3 / 4) as u8)
            .collect();
        let chroma_ramp = (0..PERIOD + c_stride)
            .map(|i| (64 + triangle(2 * i) / 2) as u8)
            .collect();
        let mut canvas = Canvas {
            width,
            height,
            yuv: vec![NEUTRAL_CHROMA; y_stride * y_rows + 2 * c_stride * c_rows],
            y_stride,
            y_rows,
            c_stride,
            c_rows,
            strip: Strip::for_size(width, height),
            luma_ramp,
            chroma_ramp,
        };
        // The strip's rows: mid-grey luma where no cell is (never sampled), neutral chroma
        // (already, from the fill above).
        let strip_rows = canvas.strip.height();
        canvas.yuv[..strip_rows * y_stride].fill(MID_GREY);
        canvas
    }

    /// The planes as the encoder takes them.
    pub(super) fn image(&self) -> YuvImage<&[u8]> {
        YuvImage {
            pixels: &self.yuv,
            width: self.width,
            align: 1,
            height: self.height,
            subsamp: Subsamp::Sub2x2,
        }
    }

    /// Draws frame `n`. The result depends on nothing but `n` and the size.
    pub(super) fn draw(&mut self, n: u64) {
        self.draw_background(n);
        self.draw_square(n);
        self.draw_digits(n);
        self.draw_strip(n);
    }

    /// First picture row below the strip (even, so chroma rows split cleanly).
    fn top(&self) -> usize {
        self.strip.height()
    }

    fn draw_background(&mut self, n: u64) {
        let top = self.top();
        let (y_plane, chroma) = self.yuv.split_at_mut(self.y_stride * self.y_rows);
        let (u_plane, v_plane) = chroma.split_at_mut(self.c_stride * self.c_rows);

        // Luma: value at (x, y) is triangle(x + y + SCROLL·n): diagonal bands moving up
        // and to the left. Each row is a slice of the ramp.
        let shift = (n % (PERIOD / SCROLL) as u64) as usize * SCROLL;
        for (y, row) in y_plane
            .chunks_exact_mut(self.y_stride)
            .enumerate()
            .skip(top)
        {
            let phase = (y + shift) % PERIOD;
            row.copy_from_slice(&self.luma_ramp[phase..phase + self.y_stride]);
        }

        // Chroma: Cb varies across and drifts right; Cr varies down and drifts up.
        let cb_phase = PERIOD - (n % PERIOD as u64) as usize;
        let cb_row = &self.chroma_ramp[cb_phase..cb_phase + self.c_stride];
        for row in u_plane.chunks_exact_mut(self.c_stride).skip(top / 2) {
            row.copy_from_slice(cb_row);
        }
        let cr_shift = (n % PERIOD as u64) as usize;
        for (y, row) in v_plane
            .chunks_exact_mut(self.c_stride)
            .enumerate()
            .skip(top / 2)
        {
            row.fill((64 + triangle(2 * (y + cr_shift)) / 2) as u8);
        }
    }

    /// A yellow square with a black border bouncing around the area below the strip, on
    /// incommensurate horizontal and vertical periods.
    fn draw_square(&mut self, n: u64) {
        let top = self.top();
        let area_h = self.height - top;
        let side = (self.width.min(area_h) / 3).max(4);
        let x = bounce(n, 5, self.width - side);
        let y = top + bounce(n, 3, area_h - side);
        let border = (side / 10).max(1);
        self.fill(x, y, side, side, (BLACK, NEUTRAL_CHROMA, NEUTRAL_CHROMA));
        self.fill(
            x + border,
            y + border,
            side - 2 * border,
            side - 2 * border,
            YELLOW,
        );
    }

    /// The frame number in seven-segment digits, white on a black box, left of centre
    /// below the strip. Digits shrink when the number is too long for the width.
    fn draw_digits(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let count = decimal_digits(n, &mut digits);
        let digits = &digits[..count];

        let top = self.top();
        let area_h = self.height - top;
        // About a quarter of the picture's height, at least 48 px where that fits...
        let by_height = (area_h * 3 / 4).min((area_h / 4).max(48));
        // ...and narrow enough for all the digits: a digit with its gap is 5/8 of its
        // height, the box's padding 1/4 in all.
        let by_width = self.width * 9 / 10 * 8 / (5 * count + 2);
        let digit_h = by_height.min(by_width).max(7);
        let digit_w = digit_h / 2;
        let stroke = (digit_h / 10).max(1);
        let gap = (digit_h / 8).max(1);
        let pad = (digit_h / 8).max(2);

        let box_w = count * digit_w + (count - 1) * gap + 2 * pad;
        let box_h = digit_h + 2 * pad;
        let box_x = (self.width / 40).max(2);
        let box_y = top + area_h.saturating_sub(box_h) / 2;
        self.fill(
            box_x,
            box_y,
            box_w,
            box_h,
            (BLACK, NEUTRAL_CHROMA, NEUTRAL_CHROMA),
        );
        for (i, &d) in digits.iter().enumerate() {
            let x = box_x + pad + i * (digit_w + gap);
            self.draw_digit(x, box_y + pad, digit_w, digit_h, stroke, d);
        }
    }

    /// Segments a–g, as on a clock: a top, b upper right, c lower right, d bottom,
    /// e lower left, f upper left, g middle. Luma only: the box's chroma is neutral.
    fn draw_digit(&mut self, x: usize, y: usize, w: usize, h: usize, t: usize, digit: u8) {
        const SEGMENTS: [u8; 10] = [
            0b011_1111, // 0: a b c d e f
            0b000_0110, // 1: b c
            0b101_1011, // 2: a b d e g
            0b100_1111, // 3: a b c d g
            0b110_0110, // 4: b c f g
            0b110_1101, // 5: a c d f g
            0b111_1101, // 6: a c d e f g
            0b000_0111, // 7: a b c
            0b111_1111, // 8: all
            0b110_1111, // 9: a b c d f g
        ];
        let half = h / 2;
        let rects: [Rect; 7] = [
            (x, y, w, t),                       // a
            (x + w - t, y, t, half + t / 2),    // b
            (x + w - t, y + half, t, h - half), // c
            (x, y + h - t, w, t),               // d
            (x, y + half, t, h - half),         // e
            (x, y, t, half + t / 2),            // f
            (x, y + half - t / 2, w, t),        // g
        ];
        let on = SEGMENTS[usize::from(digit)];
        for (segment, &(rx, ry, rw, rh)) in rects.iter().enumerate() {
            if on & (1 << segment) != 0 {
                fill_plane(
                    &mut self.yuv[..self.y_stride * self.y_rows],
                    self.y_stride,
                    (rx, ry, rw, rh),
                    WHITE,
                );
            }
        }
    }

    fn draw_strip(&mut self, n: u64) {
        let word = code_word(n);
        let cell = self.strip.cell;
        for i in 0..CODE_BITS {
            let (x, y) = self.strip.cell_origin(i);
            let bit = (word >> (CODE_BITS - 1 - i)) & 1;
            let value = if bit == 1 { WHITE } else { BLACK };
            fill_plane(
                &mut self.yuv[..self.y_stride * self.y_rows],
                self.y_stride,
                (x, y, cell, cell),
                value,
            );
        }
    }

    /// Fills a rectangle (luma pixels, clipped to the picture) in all three planes; the
    /// chroma rectangle covers every chroma sample the luma one touches.
    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, (yv, u, v): (u8, u8, u8)) {
        let (w, h) = (
            w.min(self.width - x.min(self.width)),
            h.min(self.height - y.min(self.height)),
        );
        if w == 0 || h == 0 {
            return;
        }
        let (y_plane, chroma) = self.yuv.split_at_mut(self.y_stride * self.y_rows);
        let (u_plane, v_plane) = chroma.split_at_mut(self.c_stride * self.c_rows);
        fill_plane(y_plane, self.y_stride, (x, y, w, h), yv);
        let chroma_rect = (
            x / 2,
            y / 2,
            (x + w).div_ceil(2) - x / 2,
            (y + h).div_ceil(2) - y / 2,
        );
        fill_plane(u_plane, self.c_stride, chroma_rect, u);
        fill_plane(v_plane, self.c_stride, chroma_rect, v);
    }
}

/// Fills rectangle `(x, y, w, h)` of a plane with `value`, clipped to the plane.
fn fill_plane(plane: &mut [u8], stride: usize, (x, y, w, h): Rect, value: u8) {
    let x_end = (x + w).min(stride);
    if x >= x_end {
        return;
    }
    for row in plane.chunks_exact_mut(stride).take(y + h).skip(y) {
        row[x..x_end].fill(value);
    }
}

/// `(x, y, width, height)` in pixels of the plane it is drawn on.
type Rect = (usize, usize, usize, usize);

/// 0, 1, ..., 255, 255, ..., 1, 0: a gradient without a hard edge, period `PERIOD`.
fn triangle(phase: usize) -> usize {
    let p = phase % PERIOD;
    if p < PERIOD / 2 {
        p
    } else {
        PERIOD - 1 - p
    }
}

/// Position after moving `speed` px per frame for `n` frames back and forth over `range`.
fn bounce(n: u64, speed: u64, range: usize) -> usize {
    if range == 0 {
        return 0;
    }
    let span = 2 * range as u64;
    let p = ((n % span) * speed % span) as usize;
    if p <= range {
        p
    } else {
        2 * range - p
    }
}

/// Writes the decimal digits of `n` (most significant first) and returns how many.
fn decimal_digits(mut n: u64, out: &mut [u8; 20]) -> usize {
    let mut reversed = [0u8; 20];
    let mut count = 0;
    loop {
        reversed[count] = (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for (dst, src) in out.iter_mut().zip(reversed[..count].iter().rev()) {
        *dst = *src;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_fits_every_supported_size() {
        for width in (MIN_WIDTH..=MAX_WIDTH).step_by(7) {
            for height in (MIN_HEIGHT..=MAX_HEIGHT).step_by(61) {
                let (w, h) = (width as usize, height as usize);
                let s = Strip::for_size(w, h);
                assert!(s.cols * s.rows >= CODE_BITS, "{w}x{h}: {s:?}");
                assert!(s.cols * s.cell <= w, "{w}x{h}: {s:?}");
                assert!(s.height() <= h / 3, "{w}x{h}: {s:?}");
                assert!(s.height().is_multiple_of(2), "{w}x{h}: {s:?}");
                // Block-aligned cells everywhere but in small pictures.
                if w >= 256 && h >= 128 {
                    assert!(s.cell.is_multiple_of(8), "{w}x{h}: {s:?}");
                }
            }
        }
    }

    #[test]
    fn strip_geometry_of_the_camera_modes() {
        let geometry = |w, h| {
            let s = Strip::for_size(w, h);
            (s.cell, s.cols, s.rows)
        };
        assert_eq!(geometry(64, 48), (4, 16, 4));
        assert_eq!(geometry(224, 96), (8, 28, 3));
        assert_eq!(geometry(400, 400), (8, 50, 2));
        assert_eq!(geometry(688, 136), (16, 43, 2));
        assert_eq!(geometry(1456, 96), (16, 91, 1));
        assert_eq!(geometry(1920, 1080), (32, 60, 2));
        assert_eq!(geometry(3840, 2160), (32, 120, 1));
    }

    #[test]
    fn crc_is_ccitt_false() {
        // The catalogue's check value for CRC-16/CCITT-FALSE.
        assert_eq!(crc16(b"123456789"), 0x29B1);
    }

    #[test]
    fn crc_detects_every_one_and_two_bit_error() {
        for n in [0, 1, 12345, (1 << 40) - 1, FRAME_NUMBER_MASK] {
            let word = code_word(n);
            let valid = |w: u64| number_crc(w >> CRC_BITS) == (w & 0xFFFF) as u16;
            assert!(valid(word));
            for i in 0..CODE_BITS {
                assert!(!valid(word ^ (1 << i)), "n {n} bit {i}");
                for j in 0..i {
                    assert!(!valid(word ^ (1 << i) ^ (1 << j)), "n {n} bits {i} {j}");
                }
            }
        }
        // Uniform strips are not valid words.
        assert_ne!(number_crc(0), 0);
        assert_ne!(number_crc(FRAME_NUMBER_MASK), 0xFFFF);
    }

    #[test]
    fn decimal_digits_and_bounce() {
        let mut d = [0u8; 20];
        assert_eq!(decimal_digits(0, &mut d), 1);
        assert_eq!(d[0], 0);
        let count = decimal_digits(1_099_511_627_775, &mut d);
        assert_eq!(&d[..count], &[1, 0, 9, 9, 5, 1, 1, 6, 2, 7, 7, 7, 5]);
        assert_eq!(decimal_digits(u64::MAX, &mut d), 20);

        let path: Vec<usize> = (0..8).map(|n| bounce(n, 3, 10)).collect();
        assert_eq!(path, [0, 3, 6, 9, 8, 5, 2, 1]);
        // No overflow at the largest frame numbers.
        assert!(bounce(u64::MAX, 5, 1000) <= 1000);
    }
}
