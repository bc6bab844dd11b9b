//! EBML primitives shared by the Matroska muxer ([`crate::mux`]) and the repair
//! reader ([`crate::read`]).
//!
//! We write EBML ourselves instead of using a general-purpose library because the
//! recorder needs three things such libraries do not give together: a hot path that
//! only appends to a caller's `Vec<u8>` (no allocation, no I/O), byte-exact control of
//! the layout (fixed 8-byte size fields for every element patched in place later), and
//! a reader that treats its input as untrusted (a file cut by a crash) without ever
//! allocating from a size field it has not bounded.
//!
//! Only the element IDs the recorder writes or has to step over are defined.

use thiserror::Error;

/// Element IDs, with their length-marker bits, as written in the file.
pub mod id {
    // EBML header
    pub const EBML: u32 = 0x1A45_DFA3;
    pub const EBML_VERSION: u32 = 0x4286;
    pub const EBML_READ_VERSION: u32 = 0x42F7;
    pub const EBML_MAX_ID_LENGTH: u32 = 0x42F2;
    pub const EBML_MAX_SIZE_LENGTH: u32 = 0x42F3;
    pub const DOC_TYPE: u32 = 0x4282;
    pub const DOC_TYPE_VERSION: u32 = 0x4287;
    pub const DOC_TYPE_READ_VERSION: u32 = 0x4285;
    // global
    pub const VOID: u32 = 0xEC;
    pub const CRC32: u32 = 0xBF;
    // segment and meta seek
    pub const SEGMENT: u32 = 0x1853_8067;
    pub const SEEK_HEAD: u32 = 0x114D_9B74;
    pub const SEEK: u32 = 0x4DBB;
    pub const SEEK_ID: u32 = 0x53AB;
    pub const SEEK_POSITION: u32 = 0x53AC;
    // info
    pub const INFO: u32 = 0x1549_A966;
    pub const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
    pub const DURATION: u32 = 0x4489;
    pub const DATE_UTC: u32 = 0x4461;
    pub const TITLE: u32 = 0x7BA9;
    pub const MUXING_APP: u32 = 0x4D80;
    pub const WRITING_APP: u32 = 0x5741;
    // tracks
    pub const TRACKS: u32 = 0x1654_AE6B;
    pub const TRACK_ENTRY: u32 = 0xAE;
    pub const TRACK_NUMBER: u32 = 0xD7;
    pub const TRACK_UID: u32 = 0x73C5;
    pub const TRACK_TYPE: u32 = 0x83;
    pub const FLAG_LACING: u32 = 0x9C;
    pub const NAME: u32 = 0x536E;
    pub const LANGUAGE: u32 = 0x22_B59C;
    pub const CODEC_ID: u32 = 0x86;
    pub const VIDEO: u32 = 0xE0;
    pub const PIXEL_WIDTH: u32 = 0xB0;
    pub const PIXEL_HEIGHT: u32 = 0xBA;
    pub const AUDIO: u32 = 0xE1;
    pub const SAMPLING_FREQUENCY: u32 = 0xB5;
    pub const CHANNELS: u32 = 0x9F;
    pub const BIT_DEPTH: u32 = 0x6264;
    // clusters
    pub const CLUSTER: u32 = 0x1F43_B675;
    pub const TIMESTAMP: u32 = 0xE7;
    pub const POSITION: u32 = 0xA7;
    pub const PREV_SIZE: u32 = 0xAB;
    pub const SIMPLE_BLOCK: u32 = 0xA3;
    pub const BLOCK_GROUP: u32 = 0xA0;
    // cues
    pub const CUES: u32 = 0x1C53_BB6B;
    pub const CUE_POINT: u32 = 0xBB;
    pub const CUE_TIME: u32 = 0xB3;
    pub const CUE_TRACK_POSITIONS: u32 = 0xB7;
    pub const CUE_TRACK: u32 = 0xF7;
    pub const CUE_CLUSTER_POSITION: u32 = 0xF1;
    // chapters
    pub const CHAPTERS: u32 = 0x1043_A770;
    pub const EDITION_ENTRY: u32 = 0x45B9;
    pub const CHAPTER_ATOM: u32 = 0xB6;
    pub const CHAPTER_UID: u32 = 0x73C4;
    pub const CHAPTER_TIME_START: u32 = 0x91;
    pub const CHAPTER_DISPLAY: u32 = 0x80;
    pub const CHAP_STRING: u32 = 0x85;
    pub const CHAP_LANGUAGE: u32 = 0x437C;
    // tags
    pub const TAGS: u32 = 0x1254_C367;
    pub const TAG: u32 = 0x7373;
    pub const TARGETS: u32 = 0x63C0;
    pub const TARGET_TYPE_VALUE: u32 = 0x68CA;
    pub const SIMPLE_TAG: u32 = 0x67C8;
    pub const TAG_NAME: u32 = 0x45A3;
    pub const TAG_STRING: u32 = 0x4487;
    // other top-level elements a reader has to recognise as "not a cluster child"
    pub const ATTACHMENTS: u32 = 0x1941_A469;
}

/// The 8-byte "unknown size" marker (all value bits set). Used for the Segment and the
/// Cluster being written, so a file cut at any byte is still a valid prefix.
pub const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

/// Largest size an 8-byte vint can express (all-ones is reserved for "unknown").
pub const MAX_SIZE: u64 = (1 << 56) - 2;

/// Problems decoding EBML from a byte slice. Offsets are relative to the slice handed
/// to the decoder; callers that know the absolute position add it.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum EbmlError {
    #[error("data ends inside an element header or body")]
    Incomplete,
    #[error("invalid element ID at +{at} (first byte {byte:#04x}; IDs are 1 to 4 bytes)")]
    InvalidId { at: usize, byte: u8 },
    #[error("invalid size at +{at} (first byte 0x00: vint longer than 8 bytes)")]
    InvalidSize { at: usize },
    #[error("element {id:#x} at +{at} has unknown size where a sized element is required")]
    UnknownSize { id: u32, at: usize },
    #[error("{len}-byte value does not fit its type")]
    BadValueLength { len: usize },
}

/// An encoded vint (1..=8 bytes), kept on the stack so the hot path does not allocate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vint {
    bytes: [u8; 8],
    len: u8,
}

impl Vint {
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// Length of the shortest vint holding `value` as a size (the all-ones pattern of each
/// length is reserved for "unknown", so `2^(7n) - 1` needs `n + 1` bytes).
pub fn vint_len(value: u64) -> usize {
    let mut n = 1;
    while n < 8 && value >= (1u64 << (7 * n)) - 1 {
        n += 1;
    }
    n
}

/// Encodes `value` as a vint of exactly `len` bytes; `None` if it does not fit (or
/// `len` is not 1..=8).
pub fn vint_fixed(value: u64, len: usize) -> Option<Vint> {
    if !(1..=8).contains(&len) || value >= (1u64 << (7 * len)) - 1 {
        return None;
    }
    let marked = value | (1u64 << (7 * len));
    let mut bytes = [0u8; 8];
    bytes[..len].copy_from_slice(&marked.to_be_bytes()[8 - len..]);
    Some(Vint {
        bytes,
        len: len as u8,
    })
}

/// Encodes `value` as the shortest vint; `None` above [`MAX_SIZE`].
pub fn vint(value: u64) -> Option<Vint> {
    vint_fixed(value, vint_len(value))
}

/// The 8-byte size field written by every element that is patched in place later
/// (Segment, Cluster, SeekHead). Values above [`MAX_SIZE`] (2^56 bytes) cannot occur
/// for files; they saturate to `MAX_SIZE` rather than corrupt neighbouring bytes.
pub fn size8(value: u64) -> [u8; 8] {
    let mut out = [0u8; 8];
    out.copy_from_slice(&(value.min(MAX_SIZE) | (1u64 << 56)).to_be_bytes());
    out
}

/// Decodes a size vint at the start of `buf`: `(value, length)`, value `None` for the
/// reserved all-ones "unknown size".
pub fn read_size(buf: &[u8]) -> Result<(Option<u64>, usize), EbmlError> {
    let first = *buf.first().ok_or(EbmlError::Incomplete)?;
    if first == 0 {
        return Err(EbmlError::InvalidSize { at: 0 });
    }
    let len = first.leading_zeros() as usize + 1;
    let bytes = buf.get(..len).ok_or(EbmlError::Incomplete)?;
    let mut value = u64::from(first) & ((1u64 << (8 - len)) - 1);
    for &b in &bytes[1..] {
        value = (value << 8) | u64::from(b);
    }
    let all_ones = (1u64 << (7 * len)) - 1;
    Ok((if value == all_ones { None } else { Some(value) }, len))
}

/// Decodes an element ID (marker bits kept) at the start of `buf`: `(id, length)`.
pub fn read_id(buf: &[u8]) -> Result<(u32, usize), EbmlError> {
    let first = *buf.first().ok_or(EbmlError::Incomplete)?;
    let len = first.leading_zeros() as usize + 1;
    if len > 4 {
        return Err(EbmlError::InvalidId { at: 0, byte: first });
    }
    let bytes = buf.get(..len).ok_or(EbmlError::Incomplete)?;
    Ok((
        bytes.iter().fold(0u32, |v, &b| (v << 8) | u32::from(b)),
        len,
    ))
}

/// An element header: ID, size (`None` = unknown) and where its parts are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub id: u32,
    pub size: Option<u64>,
    /// Bytes of the ID plus size field; the body starts this far after the element.
    pub len: usize,
    /// Bytes of the size field alone (8 for every element we patch later).
    pub size_len: usize,
}

/// Decodes the element header at the start of `buf`.
pub fn read_header(buf: &[u8]) -> Result<Header, EbmlError> {
    let (id, id_len) = read_id(buf)?;
    let (size, size_len) = read_size(&buf[id_len..]).map_err(|e| match e {
        EbmlError::InvalidSize { .. } => EbmlError::InvalidSize { at: id_len },
        other => other,
    })?;
    Ok(Header {
        id,
        size,
        len: id_len + size_len,
        size_len,
    })
}

/// A pull reader over the children of a master element held in memory.
///
/// Yields each child whose body lies completely inside the slice; a child that
/// overruns the slice yields [`EbmlError::Incomplete`], one of unknown size
/// [`EbmlError::UnknownSize`] (in-memory masters are always sized).
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Offset of the next child relative to the start of the slice.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next child: its header and body. `Ok(None)` at the end of the slice.
    pub fn next_element(&mut self) -> Result<Option<(Header, &'a [u8])>, EbmlError> {
        let rest = &self.buf[self.pos..];
        if rest.is_empty() {
            return Ok(None);
        }
        let at = self.pos;
        let h = read_header(rest).map_err(|e| match e {
            EbmlError::InvalidId { byte, .. } => EbmlError::InvalidId { at, byte },
            EbmlError::InvalidSize { at: rel } => EbmlError::InvalidSize { at: at + rel },
            other => other,
        })?;
        let size = h.size.ok_or(EbmlError::UnknownSize { id: h.id, at })?;
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| s.checked_add(h.len))
            .filter(|&e| e <= rest.len())
            .ok_or(EbmlError::Incomplete)?;
        self.pos += end;
        Ok(Some((h, &rest[h.len..end])))
    }
}

/// Decodes an unsigned integer body (0 to 8 bytes, big-endian).
pub fn read_uint(body: &[u8]) -> Result<u64, EbmlError> {
    if body.len() > 8 {
        return Err(EbmlError::BadValueLength { len: body.len() });
    }
    Ok(body.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b)))
}

/// Decodes a float body (0, 4 or 8 bytes).
pub fn read_float(body: &[u8]) -> Result<f64, EbmlError> {
    match *body {
        [] => Ok(0.0),
        [a, b, c, d] => Ok(f64::from(f32::from_be_bytes([a, b, c, d]))),
        [a, b, c, d, e, f, g, h] => Ok(f64::from_be_bytes([a, b, c, d, e, f, g, h])),
        _ => Err(EbmlError::BadValueLength { len: body.len() }),
    }
}

/// Decodes a string body; EBML strings may be zero-padded, and untrusted input may
/// hold invalid UTF-8, which is replaced rather than rejected.
pub fn read_string(body: &[u8]) -> String {
    let end = body.iter().position(|&b| b == 0).unwrap_or(body.len());
    String::from_utf8_lossy(&body[..end]).into_owned()
}

/// Appends an element ID (1 to 4 bytes, as given by its value).
pub fn put_id(out: &mut Vec<u8>, id: u32) {
    let len = (4 - id.leading_zeros() as usize / 8).max(1);
    out.extend_from_slice(&id.to_be_bytes()[4 - len..]);
}

/// Appends the shortest size vint for `size`. Sizes here are lengths of in-memory
/// buffers, far below [`MAX_SIZE`]; larger values saturate instead of panicking.
pub fn put_size(out: &mut Vec<u8>, size: u64) {
    match vint(size) {
        Some(v) => out.extend_from_slice(v.as_bytes()),
        None => out.extend_from_slice(&size8(MAX_SIZE)),
    }
}

/// Unsigned integer element, shortest big-endian form (at least one byte).
pub fn put_uint(out: &mut Vec<u8>, id: u32, value: u64) {
    let len = (8 - value.leading_zeros() as usize / 8).max(1);
    put_id(out, id);
    put_size(out, len as u64);
    out.extend_from_slice(&value.to_be_bytes()[8 - len..]);
}

/// Unsigned integer element with a fixed 8-byte body, for values rewritten in place
/// later without changing the layout (SeekPosition).
pub fn put_uint8(out: &mut Vec<u8>, id: u32, value: u64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Signed integer element, always 8 bytes (the only signed element we write is
/// DateUTC, whose type requires exactly 8).
pub fn put_int(out: &mut Vec<u8>, id: u32, value: i64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// Float element, always 8 bytes (f64).
pub fn put_float(out: &mut Vec<u8>, id: u32, value: f64) {
    put_id(out, id);
    put_size(out, 8);
    out.extend_from_slice(&value.to_be_bytes());
}

/// UTF-8 string element.
pub fn put_str(out: &mut Vec<u8>, id: u32, value: &str) {
    put_bytes(out, id, value.as_bytes());
}

/// Binary element.
pub fn put_bytes(out: &mut Vec<u8>, id: u32, value: &[u8]) {
    put_id(out, id);
    put_size(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// Master element of known size whose children are written by `body`.
///
/// The children are written in place after an 8-byte placeholder, then moved back
/// over the unused part of it once their length is known: no temporary buffer, and
/// the size field ends up as short as possible. Returns the offset in `out` where the
/// body finally starts, so callers can locate children they need to patch later.
pub fn put_master(out: &mut Vec<u8>, id: u32, body: impl FnOnce(&mut Vec<u8>)) -> usize {
    put_id(out, id);
    let size_at = out.len();
    out.extend_from_slice(&[0; 8]);
    let body_at = out.len();
    body(out);
    let body_len = out.len() - body_at;
    let size = vint(body_len as u64).unwrap_or(Vint {
        bytes: size8(MAX_SIZE),
        len: 8,
    });
    let size = size.as_bytes();
    out[size_at..size_at + size.len()].copy_from_slice(size);
    let final_body_at = size_at + size.len();
    out.copy_within(body_at.., final_body_at);
    out.truncate(final_body_at + body_len);
    final_body_at
}

/// Master element header with the 8-byte unknown size: the Segment and Clusters while
/// they are written. The real size is patched in later with [`size8`].
pub fn put_master_unknown(out: &mut Vec<u8>, id: u32) {
    put_id(out, id);
    out.extend_from_slice(&UNKNOWN_SIZE);
}

/// A Void element of exactly `total` bytes (ID, size and zero payload), used to
/// reserve room that is overwritten later. `total` must be at least 2 (the smallest
/// Void); smaller requests write nothing.
pub fn put_void(out: &mut Vec<u8>, total: usize) {
    // The size field's length depends on the payload and vice versa: take the first
    // length whose field can hold what is left after ID and field.
    for size_len in 1..=8 {
        let Some(payload) = total.checked_sub(1 + size_len) else {
            return;
        };
        if let Some(size) = vint_fixed(payload as u64, size_len) {
            put_id(out, id::VOID);
            out.extend_from_slice(size.as_bytes());
            out.resize(out.len() + payload, 0);
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vint_lengths_respect_reserved_all_ones() {
        assert_eq!(vint_len(0), 1);
        assert_eq!(vint_len(126), 1);
        assert_eq!(vint_len(127), 2); // 0xFF would mean "unknown"
        assert_eq!(vint_len(16_382), 2);
        assert_eq!(vint_len(16_383), 3);
        assert_eq!(vint_len(MAX_SIZE), 8);
        assert!(vint(MAX_SIZE + 1).is_none());
        assert_eq!(vint(1).unwrap().as_bytes(), &[0x81]);
        assert_eq!(vint(127).unwrap().as_bytes(), &[0x40, 0x7F]);
        assert_eq!(
            vint_fixed(5, 8).unwrap().as_bytes(),
            &[1, 0, 0, 0, 0, 0, 0, 5]
        );
        assert!(vint_fixed(127, 1).is_none());
        assert!(vint_fixed(1, 9).is_none());
        assert_eq!(size8(0x0102), [1, 0, 0, 0, 0, 0, 1, 2]);
    }

    #[test]
    fn vint_round_trips_at_every_length_boundary() {
        for n in 1..=8u32 {
            let top = (1u64 << (7 * n)) - 2;
            for v in [0, 1, top / 2, top.saturating_sub(1), top] {
                for len in vint_len(v)..=8 {
                    let enc = vint_fixed(v, len).unwrap();
                    assert_eq!(
                        read_size(enc.as_bytes()),
                        Ok((Some(v), len)),
                        "{v} in {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn unknown_and_invalid_sizes() {
        assert_eq!(read_size(&UNKNOWN_SIZE), Ok((None, 8)));
        assert_eq!(read_size(&[0xFF]), Ok((None, 1)));
        assert_eq!(read_size(&[0x00, 1]), Err(EbmlError::InvalidSize { at: 0 }));
        assert_eq!(read_size(&[0x40]), Err(EbmlError::Incomplete));
        assert_eq!(read_size(&[]), Err(EbmlError::Incomplete));
    }

    #[test]
    fn ids_round_trip() {
        for id in [
            id::VOID,
            id::SEEK,
            id::TIMESTAMP_SCALE,
            id::SEGMENT,
            id::CLUSTER,
        ] {
            let mut out = Vec::new();
            put_id(&mut out, id);
            assert_eq!(read_id(&out), Ok((id, out.len())));
        }
        assert_eq!(
            read_id(&[0x08, 0, 0, 0, 0]),
            Err(EbmlError::InvalidId { at: 0, byte: 0x08 })
        );
        assert_eq!(read_id(&[0x1A, 0x45]), Err(EbmlError::Incomplete));
    }

    #[test]
    fn element_encodings_match_hand_computed_bytes() {
        let mut out = Vec::new();
        put_uint(&mut out, id::TRACK_NUMBER, 1);
        assert_eq!(out, [0xD7, 0x81, 0x01]);
        out.clear();
        put_uint(&mut out, id::TIMESTAMP_SCALE, 100_000);
        assert_eq!(out, [0x2A, 0xD7, 0xB1, 0x83, 0x01, 0x86, 0xA0]);
        out.clear();
        put_uint(&mut out, id::TIMESTAMP, 0);
        assert_eq!(out, [0xE7, 0x81, 0x00]);
        out.clear();
        put_uint8(&mut out, id::SEEK_POSITION, 0x1234);
        assert_eq!(out, [0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0x12, 0x34]);
        out.clear();
        put_float(&mut out, id::DURATION, 1.5);
        assert_eq!(out, [0x44, 0x89, 0x88, 0x3F, 0xF8, 0, 0, 0, 0, 0, 0]);
        out.clear();
        put_int(&mut out, id::DATE_UTC, -2);
        assert_eq!(
            out,
            [0x44, 0x61, 0x88, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE]
        );
        out.clear();
        put_str(&mut out, id::CODEC_ID, "V_MJPEG");
        assert_eq!(out, b"\x86\x87V_MJPEG");
        out.clear();
        put_master_unknown(&mut out, id::CLUSTER);
        assert_eq!(
            out,
            [0x1F, 0x43, 0xB6, 0x75, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn master_gets_shortest_size_and_reports_body_offset() {
        let mut out = vec![0xAA];
        let body_at = put_master(&mut out, id::VIDEO, |b| {
            put_uint(b, id::PIXEL_WIDTH, 320);
            put_uint(b, id::PIXEL_HEIGHT, 240);
        });
        assert_eq!(
            out,
            [0xAA, 0xE0, 0x87, 0xB0, 0x82, 0x01, 0x40, 0xBA, 0x81, 0xF0]
        );
        assert_eq!(body_at, 3);
        // nested masters, and a body long enough for a 2-byte size
        let mut out = Vec::new();
        put_master(&mut out, id::TRACKS, |b| {
            put_master(b, id::TRACK_ENTRY, |b| put_bytes(b, id::NAME, &[7; 200]));
        });
        let mut r = Reader::new(&out);
        let (h, body) = r.next_element().unwrap().unwrap();
        assert_eq!((h.id, h.size, h.len), (id::TRACKS, Some(207), 6));
        let (h, body) = Reader::new(body).next_element().unwrap().unwrap();
        assert_eq!((h.id, h.size), (id::TRACK_ENTRY, Some(204)));
        let (h, body) = Reader::new(body).next_element().unwrap().unwrap();
        assert_eq!((h.id, body), (id::NAME, &[7u8; 200][..]));
        assert_eq!(r.next_element(), Ok(None));
    }

    #[test]
    fn voids_have_exact_length() {
        for total in [2usize, 3, 11, 42, 128, 129, 130, 20_000, 2_100_000] {
            let mut out = Vec::new();
            put_void(&mut out, total);
            assert_eq!(out.len(), total, "total {total}");
            let h = read_header(&out).unwrap();
            assert_eq!(h.id, id::VOID);
            assert_eq!(h.len as u64 + h.size.unwrap(), total as u64);
        }
        let mut out = Vec::new();
        put_void(&mut out, 1);
        assert!(out.is_empty());
    }

    #[test]
    fn reader_reports_overruns_and_unknown_sizes() {
        let mut r = Reader::new(&[0xD7, 0x82, 0x01]);
        assert_eq!(r.next_element(), Err(EbmlError::Incomplete));
        let mut r = Reader::new(&[0xD7, 0x81, 0x01, 0x1F, 0x43, 0xB6, 0x75, 0xFF]);
        assert!(r.next_element().unwrap().is_some());
        assert_eq!(r.position(), 3);
        assert_eq!(
            r.next_element(),
            Err(EbmlError::UnknownSize {
                id: id::CLUSTER,
                at: 3
            })
        );
        let mut r = Reader::new(&[0xD7, 0x81, 0x01, 0x00]);
        r.next_element().unwrap();
        assert_eq!(
            r.next_element(),
            Err(EbmlError::InvalidId { at: 3, byte: 0 })
        );
    }

    #[test]
    fn value_decoders() {
        assert_eq!(read_uint(&[]), Ok(0));
        assert_eq!(read_uint(&[1, 0]), Ok(256));
        assert!(read_uint(&[0; 9]).is_err());
        assert_eq!(read_float(&1.5f32.to_be_bytes()), Ok(1.5));
        assert_eq!(read_float(&2.5f64.to_be_bytes()), Ok(2.5));
        assert!(read_float(&[0; 3]).is_err());
        assert_eq!(read_string(b"und\0\0"), "und");
        assert_eq!(read_string(&[0xFF, b'a']), "\u{FFFD}a");
    }
}
