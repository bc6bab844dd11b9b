//! `http-mjpeg`: network cameras serving `multipart/x-mixed-replace` MJPEG over HTTP(S).
//!
//! The body is split by the JPEG markers themselves ([`super::mjpeg`]), so part headers
//! and boundaries (with or without Content-Length, which cameras get wrong often enough)
//! are skipped as what they are. Credentials in the URL (`http://user:pass@host/...`) are
//! sent as basic auth. A refused login, a closed stream or 5 s without a frame make the
//! source lost; the capture thread reconnects with backoff. A frame's capture time is
//! when its first byte arrived: the camera's clock does not reach us
//! (`design/time.md`).

use std::io::Read as _;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clocks;
use crate::frame::FrameMeta;
use crate::source::stream::{FirstFrameError, FrameStream, Read, POLL};
use crate::source::{FrameSource, SourceError, SourceInfo};

pub struct HttpMjpegSource {
    info: SourceInfo,
    response: reqwest::blocking::Response,
    stream: FrameStream,
    first: Option<(FrameMeta, Vec<u8>)>,
}

/// The URL without its password, for logs and file tags.
pub fn redacted(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// Why a network camera gave no stream; the URL is shown without its password.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {problem}")]
pub struct HttpError {
    pub url: String,
    pub problem: HttpProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum HttpProblem {
    #[error("bad URL: {0}")]
    BadUrl(String),
    #[error("{0}")]
    Client(reqwest::Error),
    #[error("{0}")]
    Connect(String),
    #[error("the camera refused the login ({0}); check the user and password in the URL")]
    Login(reqwest::StatusCode),
    #[error("HTTP {0}")]
    Status(reqwest::StatusCode),
    #[error(
        "not an MJPEG stream (Content-Type: {0}); hindsight needs multipart/x-mixed-replace JPEG"
    )]
    NotMjpeg(String),
    #[error(transparent)]
    NoFrame(FirstFrameError),
}

impl HttpMjpegSource {
    /// Connects and waits for the first frame (which fixes the frame size).
    pub fn open(
        url: &str,
        fps: f64,
        max_frame: usize,
        clocks: Arc<dyn Clocks>,
    ) -> Result<HttpMjpegSource, HttpError> {
        let shown = redacted(url);
        let err = |problem| HttpError {
            url: shown.clone(),
            problem,
        };
        let parsed =
            reqwest::Url::parse(url).map_err(|e| err(HttpProblem::BadUrl(e.to_string())))?;
        // Reads time out after POLL so that shutdown is noticed; connecting gets longer.
        let client = reqwest::blocking::Client::builder()
            .timeout(POLL)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| err(HttpProblem::Client(e)))?;
        // Credentials go in one `Authorization` header, decoded from the URL; the URL sent
        // carries none (reqwest would add a second header from it, and strict cameras
        // answer two with 400).
        let mut bare = parsed.clone();
        let _ = bare.set_username("");
        let _ = bare.set_password(None);
        let mut req = client.get(bare).timeout(Duration::from_secs(10));
        if !parsed.username().is_empty() {
            let user = percent_decode(parsed.username());
            let pass = parsed.password().map(percent_decode);
            req = req.basic_auth(user, pass);
        }
        let response = send_while_wanted(req).map_err(err)?;
        let status = response.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(err(HttpProblem::Login(status)));
        }
        if !status.is_success() {
            return Err(err(HttpProblem::Status(status)));
        }
        let ctype = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        // A web page (a login form, an error page) is not a stream. Anything else is given
        // the chance to carry JPEG frames (some servers say application/octet-stream).
        if ctype.starts_with("text/") || ctype.contains("json") {
            return Err(err(HttpProblem::NotMjpeg(ctype)));
        }
        let mut src = HttpMjpegSource {
            info: SourceInfo {
                kind: crate::config::SourceKind::HttpMjpeg,
                model: shown.clone(),
                width: 0,
                height: 0,
                fps,
                codec: crate::config::Codec::Mjpg,
                encodes: false,
                controls: String::new(),
                controls_off: None,
            },
            response,
            stream: FrameStream::new(max_frame, clocks),
            first: None,
        };
        let mut jpeg = Vec::new();
        let response = &mut src.response;
        let meta = src
            .stream
            .first_frame(&mut jpeg, |buf| read_body(response, buf))
            .map_err(|e| err(HttpProblem::NoFrame(e)))?;
        src.info.width = u32::from(meta.width);
        src.info.height = u32::from(meta.height);
        src.first = Some((meta, jpeg));
        Ok(src)
    }
}

/// Sends `req` from a thread of its own and waits for the answer while the open is still
/// wanted ([`super::still_opening`]). A camera that takes the connection and never answers
/// holds a request for up to its 10 s timeout, and a recorder told to stop does not wait for
/// that: the thread is left to end with its timeout (or the process).
fn send_while_wanted(
    req: reqwest::blocking::RequestBuilder,
) -> Result<reqwest::blocking::Response, HttpProblem> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("http-connect".into())
        .spawn(move || {
            let _ = tx.send(req.send());
        })
        .map_err(|e| HttpProblem::Connect(format!("cannot start a thread to connect: {e}")))?;
    loop {
        match rx.recv_timeout(POLL) {
            Ok(sent) => return sent.map_err(|e| HttpProblem::Connect(describe(&e))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) if !super::still_opening() => {
                return Err(HttpProblem::Connect(
                    "no answer yet; not waited for: stopping".into(),
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(HttpProblem::Connect("the connecting thread ended".into()))
            }
        }
    }
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

fn read_body(response: &mut reqwest::blocking::Response, buf: &mut [u8]) -> Read {
    match response.read(buf) {
        Ok(0) => Read::End("the camera closed the stream".into()),
        Ok(k) => Read::Bytes(k),
        Err(e) if is_timeout(&e) => Read::Idle,
        Err(e) => Read::End(format!("reading the stream: {e}")),
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    if e.kind() == std::io::ErrorKind::TimedOut {
        return true;
    }
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.get_ref().map(|r| r as _);
    while let Some(inner) = src {
        if let Some(re) = inner.downcast_ref::<reqwest::Error>() {
            if re.is_timeout() {
                return true;
            }
        }
        src = inner.source();
    }
    false
}

impl FrameSource for HttpMjpegSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame_ref<'a>(
        &'a mut self,
        scratch: &'a mut Vec<u8>,
    ) -> Result<(FrameMeta, &'a [u8]), SourceError> {
        if let Some((meta, data)) = self.first.take() {
            scratch.clear();
            scratch.extend_from_slice(&data);
            return Ok((meta, scratch.as_slice()));
        }
        let response = &mut self.response;
        let shown = &self.info.model;
        self.stream
            .next_frame_ref(|buf| read_body(response, buf))
            .map_err(|e| match e {
                SourceError::Lost(why) => SourceError::Lost(format!("{shown}: {why}")),
                other => other,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_stay_out_of_logs_and_are_decoded_for_the_login() {
        assert_eq!(
            redacted("http://admin:s%40cret@10.0.0.5/video.mjpg"),
            "http://admin:***@10.0.0.5/video.mjpg"
        );
        assert_eq!(redacted("http://10.0.0.5/v"), "http://10.0.0.5/v");
        assert_eq!(percent_decode("s%40cret%"), "s@cret%");
        assert_eq!(percent_decode("plain"), "plain");
    }
}
