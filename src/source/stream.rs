//! What the `command` and `http-mjpeg` sources share: bytes from a pipe or a socket,
//! split into JPEG frames, numbered, and stamped with the time their first byte arrived.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{Clocks, LslTime};
use crate::frame::FrameMeta;
use crate::source::mjpeg::{JpegSplitter, Split};
use crate::source::SourceError;

/// How long a stream may stay silent before it is taken as lost.
pub const STALL: Duration = Duration::from_secs(5);
/// How long opening waits for the first frame.
pub const FIRST_FRAME: Duration = Duration::from_secs(15);
/// How long one read may block, so that shutdown is noticed.
pub const POLL: Duration = Duration::from_millis(200);

/// One read from the byte source.
pub enum Read {
    /// `n` bytes were read.
    Bytes(usize),
    /// Nothing within [`POLL`].
    Idle,
    /// The stream ended (with why).
    End(String),
}

/// Frames out of a byte stream.
pub struct FrameStream {
    splitter: JpegSplitter,
    clocks: Arc<dyn Clocks>,
    seq: u64,
    /// The stream's frame size, from its first frame. Frames of another size are held
    /// until [`SIZE_CHANGE_FRAMES`] of them come in a row: then the stream changed size
    /// (a network camera set to another resolution), that is its size from then on, and
    /// the frames held are handed out first, in order. Fewer, followed by a frame of the
    /// stream's size (a glitch of the camera's encoder), are refused as corrupt.
    pub size: Option<(u16, u16)>,
    /// Frames of another size, in a row, while it is not yet sure: copies (rare).
    held: Vec<Held>,
    /// Frames decided on, handed out before anything is read: the held frames of a new
    /// size, or the refusals of a glitch's.
    decided: VecDeque<Decided>,
    /// The bytes of the last frame handed out of `decided`.
    out: Vec<u8>,
    last_frame: Instant,
    last_capture: Option<LslTime>,
    ended: Option<String>,
}

/// Frames of a new size in a row that make it the stream's size: one of another size
/// alone (a glitch of the camera's encoder) is refused as corrupt.
pub const SIZE_CHANGE_FRAMES: usize = 3;

/// A frame of another size than the stream's, held until it is sure whether the stream
/// changed size.
struct Held {
    data: Vec<u8>,
    size: (u16, u16),
    arrived: LslTime,
}

/// What a held frame became.
enum Decided {
    /// Handed out, in order, at the new size.
    Frame(Held),
    /// Refused, with why.
    Refused(String),
    /// The frame of the stream's size that ended a glitch: it is the splitter's
    /// `handed()`, handed out after the glitch's refusals.
    Waiting((u16, u16), LslTime),
}

/// Where a frame's bytes are until the next call.
enum Bytes {
    Splitter,
    Out,
}

/// The smallest step between two frames' capture times: the MKV timestamp unit.
const MIN_STEP_NS: i64 = crate::frame::TIMESTAMP_UNIT_NS as i64;

/// Why a stream gave no first frame.
#[derive(Debug, thiserror::Error)]
pub enum FirstFrameError {
    #[error("no JPEG frame within {} s", .0.as_secs())]
    None(Duration),
    #[error(transparent)]
    Source(SourceError),
}

impl FrameStream {
    pub fn new(max_frame: usize, clocks: Arc<dyn Clocks>) -> FrameStream {
        FrameStream {
            splitter: JpegSplitter::new(max_frame),
            clocks,
            seq: 0,
            size: None,
            held: Vec::new(),
            decided: VecDeque::new(),
            out: Vec::new(),
            last_frame: Instant::now(),
            last_capture: None,
            ended: None,
        }
    }

    /// The next frame, reading with `read` (which fills the buffer it is given) as needed.
    /// Returns [`SourceError::Idle`] after [`POLL`] without a frame even while bytes keep
    /// coming (a stream of junk), so that the capture thread can tell a camera that sends
    /// nothing usable from one that is slow.
    pub fn next_frame(
        &mut self,
        jpeg: &mut Vec<u8>,
        read: impl FnMut(&mut [u8]) -> Read,
    ) -> Result<FrameMeta, SourceError> {
        let (meta, data) = self.next_frame_ref(read)?;
        jpeg.clear();
        jpeg.extend_from_slice(data);
        Ok(meta)
    }

    /// As [`FrameStream::next_frame`], with the frame's bytes where they were read (no
    /// copy), until the next call.
    pub fn next_frame_ref(
        &mut self,
        read: impl FnMut(&mut [u8]) -> Read,
    ) -> Result<(FrameMeta, &[u8]), SourceError> {
        let (meta, bytes) = self.next_meta(read)?;
        Ok((
            meta,
            match bytes {
                Bytes::Splitter => self.splitter.handed(),
                Bytes::Out => &self.out,
            },
        ))
    }

    /// A frame handed out now: numbered and stamped.
    fn meta(&mut self, size: (u16, u16), arrived: LslTime) -> FrameMeta {
        // Frames that arrive in one read share its time; they were sent in order, so each
        // gets at least the file's timestamp unit more than the one before
        // (`design/time.md`).
        let capture = match self.last_capture {
            Some(p) if arrived.as_nanos() < p.as_nanos() + MIN_STEP_NS => {
                LslTime::from_nanos(p.as_nanos() + MIN_STEP_NS)
            }
            _ => arrived,
        };
        self.last_capture = Some(capture);
        let now = self.clocks.now();
        let meta = FrameMeta {
            seq: self.seq,
            capture,
            wall: now.wall_at(capture),
            width: size.0,
            height: size.1,
            keyframe: true,
        };
        self.seq += 1;
        self.last_frame = Instant::now();
        meta
    }

    /// The frames held refused: a frame of the stream's size came (or another size, or
    /// the end) before they were enough to be a new size.
    fn refuse_held(&mut self) {
        let want = self.size.unwrap_or_default();
        for h in self.held.drain(..) {
            self.decided.push_back(Decided::Refused(format!(
                "a {}x{} frame in a {}x{} stream",
                h.size.0, h.size.1, want.0, want.1
            )));
        }
    }

    /// Reads and splits until a frame is whole: its metadata, and where its bytes are.
    fn next_meta(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> Read,
    ) -> Result<(FrameMeta, Bytes), SourceError> {
        let called = Instant::now();
        loop {
            match self.decided.pop_front() {
                Some(Decided::Frame(h)) => {
                    let meta = self.meta(h.size, h.arrived);
                    self.out = h.data;
                    return Ok((meta, Bytes::Out));
                }
                Some(Decided::Refused(why)) => return Err(SourceError::Corrupt(why)),
                Some(Decided::Waiting(size, arrived)) => {
                    return Ok((self.meta(size, arrived), Bytes::Splitter))
                }
                None => {}
            }
            match self.splitter.next_split() {
                Some(Split::Frame(f)) => {
                    let (size, arrived) = ((f.width, f.height), f.arrived);
                    let want = *self.size.get_or_insert(size);
                    if want == size && self.held.is_empty() {
                        return Ok((self.meta(size, arrived), Bytes::Splitter));
                    }
                    if want == size {
                        // A glitch: the frames of another size are refused, then this one
                        // (still the splitter's) is handed out.
                        self.refuse_held();
                        self.decided.push_back(Decided::Waiting(size, arrived));
                        continue;
                    }
                    if self.held.first().is_some_and(|h| h.size != size) {
                        self.refuse_held();
                    }
                    self.held.push(Held {
                        data: self.splitter.handed().to_vec(),
                        size,
                        arrived,
                    });
                    if self.held.len() >= SIZE_CHANGE_FRAMES {
                        // The stream changed size: every frame of the new size is handed
                        // out, none lost.
                        self.size = Some(size);
                        self.decided.extend(self.held.drain(..).map(Decided::Frame));
                    }
                    continue;
                }
                Some(Split::Corrupt(why)) => return Err(SourceError::Corrupt(why)),
                None => {}
            }
            if let Some(why) = &self.ended {
                if !self.held.is_empty() {
                    self.refuse_held();
                    continue;
                }
                return Err(SourceError::Lost(why.clone()));
            }
            if called.elapsed() >= POLL {
                // Bytes, but no frame in them for a while.
                return Err(SourceError::Idle);
            }
            const CHUNK: usize = 64 * 1024;
            let buf = self.splitter.spare(CHUNK);
            match read(buf) {
                Read::Bytes(k) => {
                    let at = self.clocks.now().lsl;
                    self.splitter.commit(CHUNK, k, at);
                }
                Read::Idle => {
                    self.splitter.commit(CHUNK, 0, LslTime::from_nanos(0));
                    if self.last_frame.elapsed() >= STALL {
                        return Err(SourceError::Lost(format!(
                            "no frame for {} s",
                            STALL.as_secs()
                        )));
                    }
                    return Err(SourceError::Idle);
                }
                Read::End(why) => {
                    self.splitter.commit(CHUNK, 0, LslTime::from_nanos(0));
                    self.splitter.finish();
                    self.ended = Some(why);
                }
            }
        }
    }

    /// Reads until the first frame, for opening: its size becomes the stream's.
    pub fn first_frame(
        &mut self,
        jpeg: &mut Vec<u8>,
        mut read: impl FnMut(&mut [u8]) -> Read,
    ) -> Result<FrameMeta, FirstFrameError> {
        let deadline = Instant::now() + FIRST_FRAME;
        self.last_frame = Instant::now();
        let mut corrupt = 0;
        loop {
            match self.next_frame(jpeg, &mut read) {
                Ok(m) => return Ok(m),
                Err(SourceError::Idle) if Instant::now() < deadline => {
                    // Slow starters (rpicam-vid takes a second or two) get the full wait,
                    // and the capture thread's heartbeat is kept meanwhile; a stop ends it.
                    self.last_frame = Instant::now();
                    if !crate::source::still_opening() {
                        return Err(FirstFrameError::Source(SourceError::Stopped));
                    }
                }
                Err(SourceError::Corrupt(_)) if corrupt < 100 => corrupt += 1,
                Err(SourceError::Idle) => return Err(FirstFrameError::None(FIRST_FRAME)),
                Err(e) => return Err(FirstFrameError::Source(e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::mjpeg::tests::jpeg;

    /// A network camera set to another resolution: one frame of another size alone is
    /// refused (a glitch); three in a row make it the stream's size, and every frame of
    /// the new size is handed out, in order, with no gap in the numbers. Frames of a new
    /// size that the stream ends on are refused.
    #[test]
    fn a_stream_that_changes_size_goes_on_at_the_new_size_losing_no_frame() {
        let sizes = [
            (160, 120),
            (160, 120),
            (320, 240),
            (160, 120),
            (320, 240),
            (320, 240),
            (320, 240),
            (320, 240),
            (640, 480),
            (320, 240),
            (640, 480),
            (64, 48),
            (64, 48),
        ];
        let mut chunks: std::collections::VecDeque<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, &(w, h))| jpeg(i as u8, w, h))
            .collect();
        let mut stream = FrameStream::new(1 << 20, Arc::new(crate::clock::RealClocks));
        let mut read = |buf: &mut [u8]| match chunks.pop_front() {
            Some(c) => {
                buf[..c.len()].copy_from_slice(&c);
                Read::Bytes(c.len())
            }
            None => Read::End("done".into()),
        };
        let mut got = Vec::new();
        let mut last: Option<LslTime> = None;
        loop {
            got.push(match stream.next_frame_ref(&mut read) {
                Ok((m, data)) => {
                    // Its own bytes, in order (each test frame's first pixel is its index).
                    let i = sizes
                        .iter()
                        .enumerate()
                        .position(|(i, &(w, h))| jpeg(i as u8, w, h) == data)
                        .expect("a frame that was sent");
                    assert!(last.is_none_or(|l| m.capture > l), "times rise");
                    last = Some(m.capture);
                    Ok((m.seq, i, m.width, m.height))
                }
                Err(SourceError::Corrupt(why)) => Err(why),
                Err(SourceError::Lost(_)) => break,
                Err(e) => panic!("{e:?}"),
            });
        }
        let refused = |w, h, sw, sh| Err(format!("a {w}x{h} frame in a {sw}x{sh} stream"));
        assert_eq!(
            got,
            vec![
                Ok((0, 0, 160, 120)),
                Ok((1, 1, 160, 120)),
                refused(320, 240, 160, 120),
                Ok((2, 3, 160, 120)),
                Ok((3, 4, 320, 240)),
                Ok((4, 5, 320, 240)),
                Ok((5, 6, 320, 240)),
                Ok((6, 7, 320, 240)),
                refused(640, 480, 320, 240),
                Ok((7, 9, 320, 240)),
                refused(640, 480, 320, 240),
                refused(64, 48, 320, 240),
                refused(64, 48, 320, 240),
            ]
        );
        assert_eq!(stream.size, Some((320, 240)));
    }
}
