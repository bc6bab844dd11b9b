//! Splits an MJPEG byte stream into JPEG frames, by the JPEG markers (sans-IO).
//!
//! Feed it bytes as they come (pipe reads, HTTP body chunks: any chunking) and take the
//! frames out. It walks the JPEG structure instead of searching for `FF D9`: marker
//! segments are skipped by their length, entropy-coded data is scanned with its stuffing
//! (`FF 00`) and restart markers, so a `FF D9` inside a segment (an EXIF thumbnail, a
//! comment) never ends a frame early. Anything between frames (multipart boundaries and
//! part headers of an HTTP stream, garbage) is skipped and counted. A frame cut short (a
//! new `FF D8` before the end, a bad marker, a frame larger than the limit) is reported
//! as corrupt and never handed out as a frame. Garbage never panics (fuzzed in the tests).

use std::collections::VecDeque;
use std::ops::Range;

use crate::clock::LslTime;

/// What the splitter found.
#[derive(Debug, PartialEq)]
pub enum Split<'a> {
    /// A whole frame: `SOI ... EOI`, with its size and when its first byte was fed.
    Frame(JpegFrame<'a>),
    /// A frame that was cut short or malformed; it was dropped.
    Corrupt(String),
}

#[derive(Debug, PartialEq)]
pub struct JpegFrame<'a> {
    pub data: &'a [u8],
    /// From the frame's SOF segment.
    pub width: u16,
    pub height: u16,
    /// When the chunk holding the frame's first byte was fed.
    pub arrived: LslTime,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum State {
    /// Looking for `FF D8`.
    Seek,
    /// At a marker position inside a frame's header (expects `FF xx`).
    Marker,
    /// Inside entropy-coded data after SOS.
    Scan,
}

#[derive(Debug)]
pub struct JpegSplitter {
    /// Bytes held are `buf[..end]`; the rest is room, zeroed once when it was first
    /// needed (not on every read: a 64 KiB `memset` per frame was a third of the
    /// splitter's cost).
    buf: Vec<u8>,
    end: usize,
    /// Bytes before this are handed out or skipped; dropped on the next call.
    consumed: usize,
    /// Where the frame handed out last lies in `buf`, until the next call.
    handed: Range<usize>,
    /// Where the scan is.
    pos: usize,
    /// Start of the current frame (its SOI).
    start: usize,
    state: State,
    size: Option<(u16, u16)>,
    /// The current frame has had its SOS.
    scanned: bool,
    /// No more bytes will come: a frame still open is truncated.
    eof: bool,
    max_frame: usize,
    /// (offset in `buf`, time) of each fed chunk still in `buf`.
    chunks: VecDeque<(usize, LslTime)>,
    /// Bytes skipped outside frames.
    pub skipped: u64,
}

impl JpegSplitter {
    pub fn new(max_frame: usize) -> JpegSplitter {
        JpegSplitter {
            buf: Vec::with_capacity(max_frame.min(4 << 20) * 2),
            end: 0,
            consumed: 0,
            handed: 0..0,
            pos: 0,
            start: 0,
            state: State::Seek,
            size: None,
            scanned: false,
            eof: false,
            max_frame,
            chunks: VecDeque::with_capacity(64),
            skipped: 0,
        }
    }

    /// Bytes that arrived at `at`.
    pub fn feed(&mut self, data: &[u8], at: LslTime) {
        let room = self.spare(data.len());
        room.copy_from_slice(data);
        self.commit(data.len(), data.len(), at);
    }

    /// Room to read into directly (avoids a copy): `buf_mut(n)` then `commit(k, at)`.
    pub fn spare(&mut self, n: usize) -> &mut [u8] {
        self.compact();
        let end = self.end;
        if self.buf.len() < end + n {
            self.buf.resize(end + n, 0);
        }
        &mut self.buf[end..end + n]
    }

    /// `k` bytes of what `spare` returned were filled, at `at`.
    pub fn commit(&mut self, n: usize, k: usize, at: LslTime) {
        debug_assert!(k <= n && self.end + n <= self.buf.len());
        if k > 0 {
            self.chunks.push_back((self.end, at));
            self.end += k;
        }
    }

    /// The bytes of the frame [`JpegSplitter::next_split`] handed out last, where they
    /// lie, until the next call that feeds or splits (empty before the first frame).
    pub fn handed(&self) -> &[u8] {
        &self.buf[self.handed.clone()]
    }

    /// Bytes held that belong to no frame handed out yet.
    pub fn pending(&self) -> usize {
        self.end - self.consumed
    }

    fn compact(&mut self) {
        if self.consumed == 0 {
            return;
        }
        let c = self.consumed;
        self.handed = 0..0;
        self.buf.copy_within(c..self.end, 0);
        self.end -= c;
        self.pos -= c;
        self.start = self.start.saturating_sub(c);
        self.consumed = 0;
        for ch in self.chunks.iter_mut() {
            ch.0 = ch.0.saturating_sub(c);
        }
        // Keep only the last chunk that starts at or before 0, and the ones after.
        while self.chunks.len() > 1 && self.chunks[1].0 == 0 {
            self.chunks.pop_front();
        }
    }

    fn arrival(&self, offset: usize) -> LslTime {
        self.chunks
            .iter()
            .rev()
            .find(|c| c.0 <= offset)
            .or(self.chunks.front())
            .map_or(LslTime::from_nanos(0), |c| c.1)
    }

    /// Drops the current frame and looks for the next one from just after its SOI: a
    /// damaged length may have skipped over the start of the next frame.
    fn corrupt(&mut self, why: String) -> Option<Split<'_>> {
        let resume = self.start + 2;
        self.consumed = resume;
        self.pos = resume;
        self.state = State::Seek;
        self.size = None;
        Some(Split::Corrupt(why))
    }

    /// The next frame or corrupt frame in what was fed, if complete.
    pub fn next_split(&mut self) -> Option<Split<'_>> {
        self.compact();
        loop {
            match self.state {
                State::Seek => {
                    let from = self.pos;
                    match find_soi(&self.buf[from..self.end]) {
                        Some(i) => {
                            self.skipped += i as u64;
                            self.start = from + i;
                            self.pos = self.start + 2;
                            self.consumed = self.start;
                            self.state = State::Marker;
                            self.size = None;
                            self.scanned = false;
                        }
                        None => {
                            // Keep a trailing FF: it may be the first half of an SOI.
                            let keep = usize::from(self.buf[..self.end].last() == Some(&0xFF));
                            let end = self.end - keep;
                            self.skipped += (end - from) as u64;
                            self.pos = end;
                            self.consumed = end;
                            return None;
                        }
                    }
                }
                State::Marker => {
                    if self.pos - self.start > self.max_frame {
                        return self.corrupt("frame larger than the limit".into());
                    }
                    let b = &self.buf[self.pos..self.end];
                    if b.len() < 2 {
                        return self.wait();
                    }
                    if b[0] != 0xFF {
                        return self
                            .corrupt(format!("no marker where one must be ({:#04x})", b[0]));
                    }
                    let m = b[1];
                    match m {
                        0xFF => self.pos += 1, // fill byte
                        0xD8 => {
                            return self.corrupt("a frame ended before its end marker".into());
                        }
                        0xD9 => {
                            let end = self.pos + 2;
                            let (Some((w, h)), true) = (self.size, self.scanned) else {
                                return self
                                    .corrupt("a frame without a frame header or data".into());
                            };
                            let range: Range<usize> = self.start..end;
                            self.consumed = end;
                            self.pos = end;
                            self.state = State::Seek;
                            self.size = None;
                            let arrived = self.arrival(range.start);
                            self.handed = range.clone();
                            return Some(Split::Frame(JpegFrame {
                                data: &self.buf[range],
                                width: w,
                                height: h,
                                arrived,
                            }));
                        }
                        0x01 | 0xD0..=0xD7 => self.pos += 2,
                        0x00 => {
                            return self.corrupt("bad marker FF 00 in a frame header".into());
                        }
                        _ => {
                            if b.len() < 4 {
                                return self.wait();
                            }
                            let len = usize::from(u16::from_be_bytes([b[2], b[3]]));
                            if let Err(why) = plausible(m, len, &b[4..]) {
                                return self.corrupt(why.to_string());
                            }
                            if b.len() < 2 + len {
                                if self.pos + 2 + len - self.start > self.max_frame {
                                    return self.corrupt("frame larger than the limit".into());
                                }
                                return self.wait();
                            }
                            let body = &b[4..2 + len];
                            if is_sof(m) {
                                let h = u16::from_be_bytes([body[1], body[2]]);
                                let w = u16::from_be_bytes([body[3], body[4]]);
                                self.size = Some((w, h));
                            }
                            // A length that ran into the next frame: an end marker and
                            // then a start marker inside one segment.
                            if let Some(e) = memchr::memmem::find(body, &[0xFF, 0xD9]) {
                                if find_soi(&body[e..]).is_some() {
                                    return self.corrupt(format!(
                                        "marker FF {m:02X} runs into the next frame"
                                    ));
                                }
                            }
                            self.pos += 2 + len;
                            if m == 0xDA {
                                self.state = State::Scan;
                                self.scanned = true;
                            }
                        }
                    }
                }
                State::Scan => {
                    let from = self.pos;
                    let b = &self.buf[from..self.end];
                    let mut i = 0;
                    let mut found = None;
                    while let Some(j) = memchr_ff(&b[i..]) {
                        let k = i + j;
                        if k + 1 >= b.len() {
                            break;
                        }
                        match b[k + 1] {
                            0x00 | 0xD0..=0xD7 => i = k + 2,
                            0xFF => i = k + 1,
                            _ => {
                                found = Some(k);
                                break;
                            }
                        }
                    }
                    match found {
                        Some(k) => {
                            self.pos = from + k;
                            self.state = State::Marker;
                        }
                        None => {
                            // Everything up to a trailing FF has been scanned.
                            let tail = usize::from(b.last() == Some(&0xFF));
                            self.pos = from + b.len() - tail;
                            if self.pos - self.start > self.max_frame {
                                return self.corrupt("frame larger than the limit".into());
                            }
                            return self.wait();
                        }
                    }
                }
            }
        }
    }

    /// More bytes are needed for the current frame; at the end of the stream it is
    /// truncated.
    fn wait(&mut self) -> Option<Split<'_>> {
        if self.eof {
            return self.corrupt("the stream ended inside a frame".into());
        }
        None
    }

    /// No more bytes will come: `next` reports a frame still open as truncated, and
    /// then any whole frames after its start.
    pub fn finish(&mut self) {
        self.eof = true;
    }
}

/// A marker segment no real JPEG has.
#[derive(Debug, thiserror::Error)]
#[error("marker FF {marker:02X}: {what} (length {len})")]
struct BadMarker {
    marker: u8,
    len: usize,
    what: &'static str,
}

/// A marker segment's length (and the start of its body) that a real JPEG can have. Keeps
/// a damaged length from swallowing the frames that follow.
fn plausible(m: u8, len: usize, body: &[u8]) -> Result<(), BadMarker> {
    let bad = |what: &'static str| {
        Err(BadMarker {
            marker: m,
            len,
            what,
        })
    };
    if len < 2 {
        return bad("too short");
    }
    if is_sof(m) {
        // precision, height, width, components, 3 bytes per component
        if len < 8 {
            return bad("too short");
        }
        if let Some(&n) = body.get(5) {
            if len != 8 + 3 * usize::from(n) || n == 0 {
                return bad("frame header does not match its components");
            }
        }
    } else if m == 0xDA {
        if let Some(&n) = body.first() {
            if len != 6 + 2 * usize::from(n) || n == 0 {
                return bad("scan header does not match its components");
            }
        }
    } else if matches!(m, 0xC4 | 0xDB | 0xDD | 0xCC) && len > 2048 {
        return bad("table segment too long");
    }
    Ok(())
}

/// SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
fn is_sof(m: u8) -> bool {
    matches!(m, 0xC0..=0xCF) && !matches!(m, 0xC4 | 0xC8 | 0xCC)
}

/// The next FF byte (SIMD-accelerated: a 20 kB frame's entropy data is scanned in a few
/// hundred nanoseconds instead of byte by byte).
fn memchr_ff(b: &[u8]) -> Option<usize> {
    memchr::memchr(0xFF, b)
}

fn find_soi(b: &[u8]) -> Option<usize> {
    memchr::memmem::find(b, &[0xFF, 0xD8])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small but structurally complete JPEG: SOI, APP0 holding `FF D9`, DQT, SOF0,
    /// DHT, SOS, entropy data with stuffing and a restart marker, EOI.
    pub(crate) fn jpeg(n: u8, w: u16, h: u16) -> Vec<u8> {
        let mut v = vec![0xFF, 0xD8];
        v.extend([0xFF, 0xE0, 0x00, 0x08, b'J', b'F', 0xFF, 0xD9, 0x00, n]);
        v.extend([0xFF, 0xDB, 0x00, 0x04, 0x00, 0x01]);
        v.extend([0xFF, 0xC0, 0x00, 0x0B, 0x08]);
        v.extend(h.to_be_bytes());
        v.extend(w.to_be_bytes());
        v.extend([0x01, 0x01, 0x11, 0x00]);
        v.extend([0xFF, 0xC4, 0x00, 0x03, 0x00]);
        v.extend([0xFF, 0xDA, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3F, 0x00]);
        v.extend([n, 0xFF, 0x00, 0x12, 0xFF, 0xD3, 0x34, 0xFF, 0xFF, 0x00, n]);
        v.extend([0xFF, 0xD9]);
        v
    }

    fn t(ms: i64) -> LslTime {
        LslTime::from_nanos(ms * 1_000_000)
    }

    fn collect(s: &mut JpegSplitter) -> Vec<Result<Vec<u8>, String>> {
        let mut out = Vec::new();
        while let Some(x) = s.next_split() {
            let item = match x {
                Split::Frame(f) => Ok(f.data.to_vec()),
                Split::Corrupt(w) => Err(w),
            };
            if let Ok(data) = &item {
                // What the capture thread takes without a copy: the same bytes.
                assert_eq!(s.handed(), &data[..]);
            }
            out.push(item);
        }
        out
    }

    #[test]
    fn frames_come_out_whole_with_their_size_and_arrival() {
        let mut s = JpegSplitter::new(1 << 20);
        let (a, b) = (jpeg(1, 640, 480), jpeg(2, 640, 480));
        s.feed(b"--boundary\r\nContent-Type: image/jpeg\r\n\r\n", t(0));
        s.feed(&a, t(5));
        s.feed(b"\r\n--boundary\r\n\r\n", t(6));
        s.feed(&b[..7], t(10));
        match s.next_split() {
            Some(Split::Frame(f)) => {
                assert_eq!(f.data, &a[..]);
                assert_eq!((f.width, f.height), (640, 480));
                assert_eq!(f.arrived, t(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.next_split().is_none(), "the second frame is not complete");
        s.feed(&b[7..], t(20));
        match s.next_split() {
            Some(Split::Frame(f)) => {
                assert_eq!(f.data, &b[..]);
                assert_eq!(f.arrived, t(10), "the time its first byte came");
            }
            other => panic!("{other:?}"),
        }
        assert!(s.skipped > 40);
    }

    #[test]
    fn a_truncated_frame_is_reported_and_the_next_one_survives() {
        let mut s = JpegSplitter::new(1 << 20);
        let a = jpeg(1, 8, 8);
        let b = jpeg(2, 8, 8);
        // Cut inside the header, then inside the scan.
        s.feed(&a[..20], t(0));
        s.feed(&b, t(1));
        let cut_in_scan = &a[..a.len() - 4];
        s.feed(cut_in_scan, t(2));
        s.feed(&b, t(3));
        let out = collect(&mut s);
        assert_eq!(out.len(), 4, "{out:?}");
        assert!(out[0].is_err());
        assert_eq!(out[1], Ok(b.clone()));
        // In the scan, FF D8 is a marker: the cut frame ends there, corrupt.
        assert!(out[2].is_err(), "{:?}", out[2]);
        assert_eq!(out[3], Ok(b.clone()));
        // A stream that ends inside a frame: that frame is truncated.
        s.feed(&a[..a.len() - 1], t(4));
        assert!(collect(&mut s).is_empty());
        s.finish();
        let out = collect(&mut s);
        assert_eq!(out, [Err("the stream ended inside a frame".to_string())]);
    }

    #[test]
    fn a_frame_without_a_header_or_too_large_is_corrupt() {
        let mut s = JpegSplitter::new(1 << 20);
        s.feed(&[0xFF, 0xD8, 0xFF, 0xD9], t(0));
        assert!(matches!(s.next_split(), Some(Split::Corrupt(_))));
        let mut s = JpegSplitter::new(30);
        s.feed(&jpeg(1, 8, 8), t(0));
        s.feed(&jpeg(2, 8, 8), t(0));
        let out = collect(&mut s);
        assert!(out.iter().all(|r| r.is_err()), "{out:?}");
    }

    proptest! {
        /// Any chunking of a valid stream gives back exactly its frames.
        #[test]
        fn any_chunking_gives_back_the_same_frames(
            sizes in proptest::collection::vec(1usize..200, 1..60),
            frames in 1u8..12,
            junk in proptest::collection::vec(0u8..0xFE, 0..30),
        ) {
            let mut stream = Vec::new();
            let mut want = Vec::new();
            for n in 0..frames {
                stream.extend(&junk);
                let f = jpeg(n, 16 + u16::from(n), 8);
                stream.extend(&f);
                want.push(f);
            }
            let mut s = JpegSplitter::new(1 << 16);
            let mut got = Vec::new();
            let mut rest = &stream[..];
            let mut i = 0;
            while !rest.is_empty() {
                let n = sizes[i % sizes.len()].min(rest.len());
                if i % 2 == 0 {
                    s.feed(&rest[..n], t(i as i64));
                } else {
                    let spare = s.spare(n);
                    spare.copy_from_slice(&rest[..n]);
                    s.commit(n, n, t(i as i64));
                }
                rest = &rest[n..];
                i += 1;
                got.extend(collect(&mut s));
            }
            prop_assert_eq!(got, want.into_iter().map(Ok).collect::<Vec<_>>());
            prop_assert_eq!(s.pending(), 0);
        }

        /// Garbage never panics, and whatever comes out as a frame is SOI ... EOI.
        #[test]
        fn garbage_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..4000),
            cut in 1usize..300,
        ) {
            let mut s = JpegSplitter::new(2000);
            for c in data.chunks(cut) {
                s.feed(c, t(0));
                while let Some(x) = s.next_split() {
                    if let Split::Frame(f) = x {
                        prop_assert!(f.data.starts_with(&[0xFF, 0xD8]));
                        prop_assert!(f.data.ends_with(&[0xFF, 0xD9]));
                        prop_assert!(f.data.len() <= 2000 + 4);
                    }
                }
            }
            s.finish();
            while s.next_split().is_some() {}
        }

        /// Garbage mixed into a valid stream costs at most the frames it touches.
        #[test]
        fn frames_around_damage_survive(pos in 0usize..400, byte in any::<u8>()) {
            let frames: Vec<Vec<u8>> = (0..8).map(|n| jpeg(n, 8, 8)).collect();
            let mut stream: Vec<u8> = frames.concat();
            let pos = pos % stream.len();
            stream[pos] = byte;
            let mut s = JpegSplitter::new(1 << 16);
            s.feed(&stream, t(0));
            s.finish();
            let good = collect(&mut s).into_iter().filter_map(Result::ok).collect::<Vec<_>>();
            let intact = frames.iter().filter(|f| good.contains(f)).count();
            prop_assert!(intact >= 7, "{} of 8 intact", intact);
        }
    }
}
