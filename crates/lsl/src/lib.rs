//! The part of liblsl's C API that hindsight uses, made safe: stream descriptions
//! ([`StreamInfo`], [`XMLElement`]), outlets, inlets, resolving, the clock.
//!
//! Why not the `lsl` crate: its one release (0.1.1) does not compile where C's `char` is
//! unsigned, which is every ARM Linux, a Raspberry Pi included (it passes `i8` buffers to
//! functions that `lsl-sys` declares with `c_char`). This crate keeps that crate's names
//! and signatures for what hindsight calls, so that `use lsl::...` reads the same, and
//! uses `c_char` wherever C does.
//!
//! Every handle is owned by exactly one value and destroyed once, in its `Drop`; an
//! [`XMLElement`] keeps the description it belongs to alive. None of the types is `Send`:
//! hindsight creates each outlet and inlet on the thread that uses it.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::raw::c_char;
use std::rc::Rc;

use lsl_sys as sys;

/// What a liblsl call can fail with.
#[derive(PartialEq, Eq, Copy, Clone, Debug)]
pub enum Error {
    /// An argument liblsl refused, or a string with a NUL byte in it.
    BadArgument,
    /// The timeout given ran out.
    Timeout,
    /// The stream is gone and will not be recovered (an inlet opened without recovery, or
    /// a stream without a source id).
    StreamLost,
    /// liblsl could not create the object (threads, sockets or memory ran out).
    ResourceCreation,
    /// An error inside liblsl.
    Internal,
    /// A failure liblsl did not say more about.
    Unknown,
}

impl Error {
    fn from_code(code: i32) -> Error {
        match code {
            sys::lsl_error_code_t_lsl_timeout_error => Error::Timeout,
            sys::lsl_error_code_t_lsl_lost_error => Error::StreamLost,
            sys::lsl_error_code_t_lsl_argument_error => Error::BadArgument,
            sys::lsl_error_code_t_lsl_internal_error => Error::Internal,
            _ => Error::Unknown,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::BadArgument => "liblsl refused an argument",
            Error::Timeout => "timed out",
            Error::StreamLost => "the stream was lost",
            Error::ResourceCreation => "liblsl could not create it",
            Error::Internal => "an internal error in liblsl",
            Error::Unknown => "an unknown liblsl error",
        })
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// `Ok` for liblsl's "no error", the error otherwise.
fn check(code: i32) -> Result<()> {
    if code == sys::lsl_error_code_t_lsl_no_error {
        Ok(())
    } else {
        Err(Error::from_code(code))
    }
}

fn c_string(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::BadArgument)
}

/// A string liblsl owns (a description's text), copied; "" for none.
///
/// # Safety
/// `p` is null or a NUL-terminated string that lives for the call.
unsafe fn copied(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// A channel's data type.
#[derive(PartialEq, Eq, Copy, Clone, Debug)]
pub enum ChannelFormat {
    Float32,
    Double64,
    String,
    Int32,
    Int16,
    Int8,
    Int64,
    Undefined,
}

impl ChannelFormat {
    fn to_native(self) -> sys::lsl_channel_format_t {
        match self {
            ChannelFormat::Float32 => sys::lsl_channel_format_t_cft_float32,
            ChannelFormat::Double64 => sys::lsl_channel_format_t_cft_double64,
            ChannelFormat::String => sys::lsl_channel_format_t_cft_string,
            ChannelFormat::Int32 => sys::lsl_channel_format_t_cft_int32,
            ChannelFormat::Int16 => sys::lsl_channel_format_t_cft_int16,
            ChannelFormat::Int8 => sys::lsl_channel_format_t_cft_int8,
            ChannelFormat::Int64 => sys::lsl_channel_format_t_cft_int64,
            ChannelFormat::Undefined => sys::lsl_channel_format_t_cft_undefined,
        }
    }

    fn from_native(f: sys::lsl_channel_format_t) -> ChannelFormat {
        match f {
            sys::lsl_channel_format_t_cft_float32 => ChannelFormat::Float32,
            sys::lsl_channel_format_t_cft_double64 => ChannelFormat::Double64,
            sys::lsl_channel_format_t_cft_string => ChannelFormat::String,
            sys::lsl_channel_format_t_cft_int32 => ChannelFormat::Int32,
            sys::lsl_channel_format_t_cft_int16 => ChannelFormat::Int16,
            sys::lsl_channel_format_t_cft_int8 => ChannelFormat::Int8,
            sys::lsl_channel_format_t_cft_int64 => ChannelFormat::Int64,
            _ => ChannelFormat::Undefined,
        }
    }
}

/// liblsl's version, as 100 × major + minor (1.16 → 116).
pub fn library_version() -> i32 {
    // SAFETY: no arguments, no state.
    unsafe { sys::lsl_library_version() }
}

/// liblsl's clock, in seconds: `CLOCK_MONOTONIC` on Linux.
pub fn local_clock() -> f64 {
    // SAFETY: no arguments, no state.
    unsafe { sys::lsl_local_clock() }
}

/// A stream description handle, destroyed once, when the last [`StreamInfo`] or
/// [`XMLElement`] that uses it goes.
#[derive(Debug)]
struct InfoHandle(sys::lsl_streaminfo);

impl Drop for InfoHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by liblsl, is not null, and is destroyed only here.
        unsafe { sys::lsl_destroy_streaminfo(self.0) }
    }
}

/// A stream's description: name, type, channels, rate, format, source id, and the
/// free-form XML of its `desc` element.
#[derive(Debug)]
pub struct StreamInfo {
    handle: Rc<InfoHandle>,
}

impl StreamInfo {
    /// A new description. `nominal_srate` 0 is an irregular rate; `source_id` lets inlets
    /// find the stream again after it went away.
    pub fn new(
        stream_name: &str,
        stream_type: &str,
        channel_count: u32,
        nominal_srate: f64,
        channel_format: ChannelFormat,
        source_id: &str,
    ) -> Result<StreamInfo> {
        if stream_name.is_empty() || nominal_srate.is_nan() || nominal_srate < 0.0 {
            return Err(Error::BadArgument);
        }
        let (name, kind, id) = (
            c_string(stream_name)?,
            c_string(stream_type)?,
            c_string(source_id)?,
        );
        let channels = i32::try_from(channel_count).map_err(|_| Error::BadArgument)?;
        // SAFETY: the strings live for the call; liblsl copies them.
        let handle = unsafe {
            sys::lsl_create_streaminfo(
                name.as_ptr(),
                kind.as_ptr(),
                channels,
                nominal_srate,
                channel_format.to_native(),
                id.as_ptr(),
            )
        };
        StreamInfo::owning(handle).ok_or(Error::ResourceCreation)
    }

    /// Takes ownership of a handle liblsl created (none for null).
    fn owning(handle: sys::lsl_streaminfo) -> Option<StreamInfo> {
        (!handle.is_null()).then(|| StreamInfo {
            handle: Rc::new(InfoHandle(handle)),
        })
    }

    fn raw(&self) -> sys::lsl_streaminfo {
        self.handle.0
    }

    pub fn stream_name(&self) -> String {
        // SAFETY: a live handle; the string is the description's and copied at once.
        unsafe { copied(sys::lsl_get_name(self.raw())) }
    }

    pub fn stream_type(&self) -> String {
        // SAFETY: as in `stream_name`.
        unsafe { copied(sys::lsl_get_type(self.raw())) }
    }

    pub fn channel_count(&self) -> i32 {
        // SAFETY: a live handle.
        unsafe { sys::lsl_get_channel_count(self.raw()) }
    }

    pub fn nominal_srate(&self) -> f64 {
        // SAFETY: a live handle.
        unsafe { sys::lsl_get_nominal_srate(self.raw()) }
    }

    pub fn channel_format(&self) -> ChannelFormat {
        // SAFETY: a live handle.
        ChannelFormat::from_native(unsafe { sys::lsl_get_channel_format(self.raw()) })
    }

    pub fn source_id(&self) -> String {
        // SAFETY: as in `stream_name`.
        unsafe { copied(sys::lsl_get_source_id(self.raw())) }
    }

    /// The session id the stream's machine set in its `lsl_api.cfg` (`default` unless set).
    pub fn session_id(&self) -> String {
        // SAFETY: as in `stream_name`.
        unsafe { copied(sys::lsl_get_session_id(self.raw())) }
    }

    pub fn hostname(&self) -> String {
        // SAFETY: as in `stream_name`.
        unsafe { copied(sys::lsl_get_hostname(self.raw())) }
    }

    /// The id liblsl gave the outlet: unique to it (an outlet made again, with the same
    /// name and source id, has another).
    pub fn uid(&self) -> String {
        // SAFETY: as in `stream_name`.
        unsafe { copied(sys::lsl_get_uid(self.raw())) }
    }

    /// The description's `desc` element, to add to (before an outlet is made from it) or
    /// to read (from an inlet's [`StreamInlet::info`]).
    pub fn desc(&mut self) -> XMLElement {
        XMLElement {
            // SAFETY: a live handle; the element belongs to it, which the element keeps.
            ptr: unsafe { sys::lsl_get_desc(self.raw()) },
            _info: self.handle.clone(),
        }
    }

    /// The whole description as XML.
    pub fn to_xml(&self) -> Result<String> {
        // SAFETY: a live handle; liblsl allocates the string, freed below.
        let p = unsafe { sys::lsl_get_xml(self.raw()) };
        if p.is_null() {
            return Err(Error::Internal);
        }
        // SAFETY: a NUL-terminated string liblsl allocated, freed once.
        let xml = unsafe { copied(p) };
        unsafe { sys::lsl_destroy_string(p) };
        Ok(xml)
    }
}

impl Clone for StreamInfo {
    /// An independent copy (its `desc` changes apart from this one's).
    fn clone(&self) -> StreamInfo {
        // SAFETY: a live handle; the copy is a new handle owned by the clone.
        let copy = unsafe { sys::lsl_copy_streaminfo(self.raw()) };
        StreamInfo::owning(copy).expect("liblsl could not copy a stream description")
    }
}

/// An element of a description's XML, valid as long as it lives (it keeps its
/// description). Reading a child that is not there gives an empty element, whose value
/// is "".
#[derive(Clone, Debug)]
pub struct XMLElement {
    ptr: sys::lsl_xml_ptr,
    _info: Rc<InfoHandle>,
}

impl XMLElement {
    fn same_description(&self, ptr: sys::lsl_xml_ptr) -> XMLElement {
        XMLElement {
            ptr,
            _info: self._info.clone(),
        }
    }

    /// The first child named `name` (an empty element if there is none).
    pub fn child(&self, name: &str) -> XMLElement {
        let name = c_string(name).unwrap_or_default();
        // SAFETY: a live element of a live description; the name lives for the call.
        self.same_description(unsafe { sys::lsl_child(self.ptr, name.as_ptr()) })
    }

    /// The next sibling with the same parent (an empty element after the last).
    pub fn next_sibling(&self) -> XMLElement {
        // SAFETY: a live element of a live description.
        self.same_description(unsafe { sys::lsl_next_sibling(self.ptr) })
    }

    /// The next sibling named `name`.
    pub fn next_sibling_named(&self, name: &str) -> XMLElement {
        let name = c_string(name).unwrap_or_default();
        // SAFETY: as in `child`.
        self.same_description(unsafe { sys::lsl_next_sibling_n(self.ptr, name.as_ptr()) })
    }

    /// Whether liblsl gave an element at all.
    pub fn is_valid(&self) -> bool {
        !self.ptr.is_null()
    }

    /// Whether this is an empty element (a child or sibling that was not there).
    pub fn empty(&self) -> bool {
        // SAFETY: a live element of a live description.
        unsafe { sys::lsl_empty(self.ptr) != 0 }
    }

    pub fn name(&self) -> String {
        // SAFETY: a live element; the string is the description's and copied at once.
        unsafe { copied(sys::lsl_name(self.ptr)) }
    }

    /// The text of the child named `name` ("" if there is none).
    pub fn child_value_named(&self, name: &str) -> String {
        let Ok(name) = c_string(name) else {
            return String::new();
        };
        // SAFETY: as in `name`; the name lives for the call.
        unsafe { copied(sys::lsl_child_value_n(self.ptr, name.as_ptr())) }
    }

    /// Appends a child `<name>value</name>`; the child.
    pub fn append_child_value(&mut self, name: &str, value: &str) -> XMLElement {
        let (name, value) = (
            c_string(name).unwrap_or_default(),
            c_string(value).unwrap_or_default(),
        );
        // SAFETY: a live element; liblsl copies the strings.
        self.same_description(unsafe {
            sys::lsl_append_child_value(self.ptr, name.as_ptr(), value.as_ptr())
        })
    }

    /// Appends an empty child `<name/>`; the child, to add to.
    pub fn append_child(&mut self, name: &str) -> XMLElement {
        let name = c_string(name).unwrap_or_default();
        // SAFETY: as in `append_child_value`.
        self.same_description(unsafe { sys::lsl_append_child(self.ptr, name.as_ptr()) })
    }
}

/// A stream this process publishes.
#[derive(Debug)]
pub struct StreamOutlet {
    handle: sys::lsl_outlet,
    channels: usize,
}

impl StreamOutlet {
    /// Publishes `info`'s stream. `chunk_size` 0 sends samples as they are pushed (or at
    /// a push with `pushthrough`); `max_buffered` is how many seconds (or, at an irregular
    /// rate, how many hundred samples) an inlet that falls behind may have waiting.
    pub fn new(info: &StreamInfo, chunk_size: i32, max_buffered: i32) -> Result<StreamOutlet> {
        let channels = usize::try_from(info.channel_count()).map_err(|_| Error::BadArgument)?;
        // SAFETY: a live description, copied by liblsl.
        let handle = unsafe { sys::lsl_create_outlet(info.raw(), chunk_size, max_buffered) };
        if handle.is_null() {
            return Err(Error::ResourceCreation);
        }
        Ok(StreamOutlet { handle, channels })
    }

    /// Whether an inlet is connected now.
    pub fn have_consumers(&self) -> bool {
        // SAFETY: a live outlet.
        unsafe { sys::lsl_have_consumers(self.handle) != 0 }
    }

    /// Waits up to `timeout` s for an inlet to connect; whether one did.
    pub fn wait_for_consumers(&self, timeout: f64) -> bool {
        // SAFETY: a live outlet.
        unsafe { sys::lsl_wait_for_consumers(self.handle, timeout) != 0 }
    }

    fn fits(&self, len: usize) -> Result<()> {
        // liblsl reads a sample's channel count of values from the pointer it gets.
        if len == self.channels {
            Ok(())
        } else {
            Err(Error::BadArgument)
        }
    }
}

impl Drop for StreamOutlet {
    fn drop(&mut self) {
        // SAFETY: created by liblsl, not null, destroyed only here.
        unsafe { sys::lsl_destroy_outlet(self.handle) }
    }
}

/// Pushing one sample with its timestamp (`pushthrough`: send it now, not with the next
/// chunk). A sample must have the stream's channel count of values.
pub trait ExPushable<T> {
    fn push_sample_ex(&self, data: &T, timestamp: f64, pushthrough: bool) -> Result<()>;
}

impl ExPushable<Vec<f64>> for StreamOutlet {
    fn push_sample_ex(&self, data: &Vec<f64>, timestamp: f64, pushthrough: bool) -> Result<()> {
        self.fits(data.len())?;
        // SAFETY: a live outlet; `data` holds the channel count of values, read during
        // the call.
        check(unsafe {
            sys::lsl_push_sample_dtp(
                self.handle,
                data.as_ptr(),
                timestamp,
                i32::from(pushthrough),
            )
        })
    }
}

impl ExPushable<Vec<String>> for StreamOutlet {
    fn push_sample_ex(&self, data: &Vec<String>, timestamp: f64, pushthrough: bool) -> Result<()> {
        self.fits(data.len())?;
        // With their lengths: a string may hold any bytes, NUL included.
        let mut pointers: Vec<*const c_char> = data.iter().map(|s| s.as_ptr().cast()).collect();
        let lengths = data
            .iter()
            .map(|s| u32::try_from(s.len()).map_err(|_| Error::BadArgument))
            .collect::<Result<Vec<u32>>>()?;
        // SAFETY: a live outlet; both arrays hold the channel count of entries and the
        // strings their lengths of bytes; liblsl copies them during the call.
        check(unsafe {
            sys::lsl_push_sample_buftp(
                self.handle,
                pointers.as_mut_ptr(),
                lengths.as_ptr(),
                timestamp,
                i32::from(pushthrough),
            )
        })
    }
}

/// The streams a liblsl resolve call found (at most 1024), each handle owned once; its
/// negative result as the error.
fn resolved(find: impl FnOnce(*mut sys::lsl_streaminfo, u32) -> i32) -> Result<Vec<StreamInfo>> {
    let mut found: Vec<sys::lsl_streaminfo> = vec![std::ptr::null_mut(); 1024];
    let n = find(found.as_mut_ptr(), found.len() as u32);
    if n < 0 {
        return Err(Error::from_code(n));
    }
    found.truncate(n as usize);
    Ok(found.into_iter().filter_map(StreamInfo::owning).collect())
}

/// Every stream on the network, as found within `wait_time` s.
pub fn resolve_streams(wait_time: f64) -> Result<Vec<StreamInfo>> {
    // SAFETY: liblsl fills at most `len` entries with handles the caller owns.
    resolved(|buf, len| unsafe { sys::lsl_resolve_all(buf, len, wait_time) })
}

/// Every stream whose property `prop` (`name`, `type`, `source_id`, ...) is `value`
/// found within `timeout` s (sooner once `minimum` are found).
pub fn resolve_byprop(
    prop: &str,
    value: &str,
    minimum: i32,
    timeout: f64,
) -> Result<Vec<StreamInfo>> {
    let (prop, value) = (c_string(prop)?, c_string(value)?);
    // SAFETY: as in `resolve_streams`; the strings live for the call.
    resolved(|buf, len| unsafe {
        sys::lsl_resolve_byprop(buf, len, prop.as_ptr(), value.as_ptr(), minimum, timeout)
    })
}

/// Every stream whose description matches the XPath 1.0 predicate `pred` (as
/// `name='Markers' and type='Markers'`), found within `timeout` s (sooner once `minimum`
/// are found).
pub fn resolve_bypred(pred: &str, minimum: i32, timeout: f64) -> Result<Vec<StreamInfo>> {
    let pred = c_string(pred)?;
    // SAFETY: as in `resolve_streams`; the string lives for the call.
    resolved(|buf, len| unsafe {
        sys::lsl_resolve_bypred(buf, len, pred.as_ptr(), minimum, timeout)
    })
}

/// A connection to a stream that another program (or this one) publishes.
#[derive(Debug)]
pub struct StreamInlet {
    handle: sys::lsl_inlet,
    channels: usize,
}

impl StreamInlet {
    /// An inlet on `info`'s stream: up to `max_buflen` seconds of samples waiting,
    /// `max_chunklen` samples per chunk from the outlet (0: the outlet's), and
    /// `recover`: look the stream up again by its source id after it went away.
    pub fn new(
        info: &StreamInfo,
        max_buflen: i32,
        max_chunklen: i32,
        recover: bool,
    ) -> Result<StreamInlet> {
        let channels = usize::try_from(info.channel_count()).map_err(|_| Error::BadArgument)?;
        // SAFETY: a live description, copied by liblsl.
        let handle = unsafe {
            sys::lsl_create_inlet(info.raw(), max_buflen, max_chunklen, i32::from(recover))
        };
        if handle.is_null() {
            return Err(Error::ResourceCreation);
        }
        Ok(StreamInlet { handle, channels })
    }

    /// The stream's full description, its `desc` included, from the outlet.
    pub fn info(&self, timeout: f64) -> Result<StreamInfo> {
        let mut code = 0;
        // SAFETY: a live inlet; the description returned is the caller's.
        let info = unsafe { sys::lsl_get_fullinfo(self.handle, timeout, &mut code) };
        check(code)?;
        StreamInfo::owning(info).ok_or(Error::Internal)
    }

    /// Connects now (otherwise the first pull does).
    pub fn open_stream(&self, timeout: f64) -> Result<()> {
        let mut code = 0;
        // SAFETY: a live inlet.
        unsafe { sys::lsl_open_stream(self.handle, timeout, &mut code) };
        check(code)
    }

    /// What to add to the outlet's timestamps to have them on this machine's clock.
    pub fn time_correction(&self, timeout: f64) -> Result<f64> {
        let mut code = 0;
        // SAFETY: a live inlet.
        let offset = unsafe { sys::lsl_time_correction(self.handle, timeout, &mut code) };
        check(code)?;
        Ok(offset)
    }
}

impl Drop for StreamInlet {
    fn drop(&mut self) {
        // SAFETY: created by liblsl, not null, destroyed only here.
        unsafe { sys::lsl_destroy_inlet(self.handle) }
    }
}

/// Pulling one sample: its values and timestamp, or, when none came within `timeout`
/// s, no values and timestamp 0.
pub trait Pullable<T> {
    fn pull_sample(&self, timeout: f64) -> Result<(Vec<T>, f64)>;
}

impl Pullable<f64> for StreamInlet {
    fn pull_sample(&self, timeout: f64) -> Result<(Vec<f64>, f64)> {
        let mut values = vec![0.0; self.channels];
        let mut code = 0;
        // SAFETY: a live inlet; the buffer holds as many values as it says.
        let ts = unsafe {
            sys::lsl_pull_sample_d(
                self.handle,
                values.as_mut_ptr(),
                values.len() as i32,
                timeout,
                &mut code,
            )
        };
        check(code)?;
        if ts == 0.0 {
            values.clear();
        }
        Ok((values, ts))
    }
}

impl Pullable<String> for StreamInlet {
    fn pull_sample(&self, timeout: f64) -> Result<(Vec<String>, f64)> {
        let mut strings: Vec<*mut c_char> = vec![std::ptr::null_mut(); self.channels];
        let mut lengths = vec![0u32; self.channels];
        let mut code = 0;
        // SAFETY: a live inlet; both buffers hold as many entries as it says. For a
        // sample, liblsl puts a string it allocated in each entry, freed below.
        let ts = unsafe {
            sys::lsl_pull_sample_buf(
                self.handle,
                strings.as_mut_ptr(),
                lengths.as_mut_ptr(),
                strings.len() as i32,
                timeout,
                &mut code,
            )
        };
        let mut values = Vec::with_capacity(strings.len());
        for (&p, &len) in strings.iter().zip(&lengths) {
            if p.is_null() {
                continue;
            }
            // SAFETY: `len` bytes that liblsl allocated at `p`, freed once, here.
            let bytes = unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len as usize) };
            values.push(String::from_utf8_lossy(bytes).into_owned());
            unsafe { sys::lsl_destroy_string(p) };
        }
        check(code)?;
        if ts == 0.0 {
            values.clear();
        }
        Ok((values, ts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_description_keeps_what_it_was_given_and_its_xml() {
        let mut info = StreamInfo::new(
            "cam0_frames",
            "VideoFrames",
            3,
            100.0,
            ChannelFormat::Double64,
            "id-1",
        )
        .unwrap();
        assert_eq!(info.stream_name(), "cam0_frames");
        assert_eq!(info.stream_type(), "VideoFrames");
        assert_eq!(info.channel_count(), 3);
        assert_eq!(info.nominal_srate(), 100.0);
        assert_eq!(info.channel_format(), ChannelFormat::Double64);
        assert_eq!(info.source_id(), "id-1");
        let mut desc = info.desc();
        let mut chans = desc.append_child("channels");
        for label in ["a", "b", "c"] {
            chans
                .append_child("channel")
                .append_child_value("label", label);
        }
        desc.append_child("camera")
            .append_child_value("width", "400");
        drop((desc, chans));
        // The elements read back, in order, from a description that outlives its reader.
        let desc = info.desc();
        let mut ch = desc.child("channels").child("channel");
        let mut labels = Vec::new();
        while !ch.empty() {
            labels.push(ch.child_value_named("label"));
            ch = ch.next_sibling();
        }
        assert_eq!(labels, ["a", "b", "c"]);
        assert_eq!(desc.child("camera").child_value_named("width"), "400");
        assert_eq!(desc.child("camera").name(), "camera");
        assert_eq!(desc.child("nothing").child_value_named("width"), "");
        assert!(desc.child("nothing").empty());
        let copy = info.clone();
        drop(info);
        let xml = copy.to_xml().unwrap();
        assert!(xml.contains("<width>400</width>"), "{xml}");
        assert_eq!(
            StreamInfo::new("a\0b", "t", 1, 0.0, ChannelFormat::String, "").unwrap_err(),
            Error::BadArgument
        );
    }

    #[test]
    fn the_clock_runs_at_the_monotonic_clocks_rate() {
        // Each LSL reading between two of the monotonic clock: a thread held up between
        // them (a busy machine, an emulator) widens the bracket, not the result.
        let read = || {
            let before = std::time::Instant::now();
            let lsl = local_clock();
            (before, lsl, std::time::Instant::now())
        };
        let _ = local_clock();
        let (a0, lsl0, b0) = read();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let (a1, lsl1, b1) = read();
        let lsl = lsl1 - lsl0;
        let (least, most) = (
            a1.duration_since(b0).as_secs_f64(),
            b1.duration_since(a0).as_secs_f64(),
        );
        assert!(
            lsl > least - 0.001 && lsl < most + 0.001,
            "{lsl} s between {least} and {most} s"
        );
        assert!(library_version() >= 113, "{}", library_version());
    }
}
