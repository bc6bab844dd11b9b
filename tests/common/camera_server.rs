//! A network camera on loopback that the tests can misbehave: it serves multipart MJPEG
//! (real JPEG frames made by ffmpeg) at a given rate, or a web page instead (as a camera
//! does while it reboots or shows its login page), and it can insist on exactly one
//! `Authorization` header, as strict cameras do (they answer 400 to two).

use std::io::{BufRead, BufReader, Write};

use base64::Engine as _;
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the camera serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Serve {
    Mjpeg = 0,
    /// `200 text/html` and a page, then the connection closes; open streams are cut.
    Html = 1,
    /// Two frames, then the connection closes (a stream cut after every few frames).
    TwoFrames = 2,
}

pub struct CameraServer {
    pub port: u16,
    mode: Arc<AtomicU8>,
    stop: Arc<AtomicBool>,
    /// The `Authorization` header lines of every request, in order.
    pub auth_headers: Arc<Mutex<Vec<Vec<String>>>>,
    /// Frames sent, over all connections.
    pub frames_sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

/// `count` JPEG frames of ffmpeg's test pattern at `width`x`height`.
pub fn jpeg_frames(width: u32, height: u32, count: u32) -> Vec<Vec<u8>> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc2=size={width}x{height}:rate=25"))
        .args([
            "-frames:v",
            &count.to_string(),
            "-c:v",
            "mjpeg",
            "-q:v",
            "5",
        ])
        .args(["-f", "mjpeg", "-"])
        .output()
        .expect("ffmpeg");
    assert!(out.status.success());
    let b = out.stdout;
    let mut frames = Vec::new();
    let mut i = 0;
    while let Some(s) = find(&b[i..], &[0xFF, 0xD8]).map(|p| p + i) {
        let e = find(&b[s + 2..], &[0xFF, 0xD9]).map(|p| p + s + 4).unwrap();
        frames.push(b[s..e].to_vec());
        i = e;
    }
    assert_eq!(frames.len(), count as usize);
    frames
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    h.windows(n.len()).position(|w| w == n)
}

impl CameraServer {
    /// Serves `frames` in a loop at `fps`. With `credentials` (`user:password`), a
    /// request needs exactly one `Authorization: Basic` header with them: two headers
    /// get 400, wrong or missing ones 401.
    pub fn start(frames: Vec<Vec<u8>>, fps: f64, credentials: Option<&str>) -> CameraServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(Serve::Mjpeg as u8));
        let stop = Arc::new(AtomicBool::new(false));
        let auth_headers = Arc::new(Mutex::new(Vec::new()));
        let frames_sent = Arc::new(AtomicU64::new(0));
        let expected = credentials.map(|c| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(c)
            )
        });
        let frames = Arc::new(frames);
        let thread = {
            let (mode, stop, auth, sent) = (
                mode.clone(),
                stop.clone(),
                auth_headers.clone(),
                frames_sent.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (mode, stop, auth, sent, frames, expected) = (
                                mode.clone(),
                                stop.clone(),
                                auth.clone(),
                                sent.clone(),
                                frames.clone(),
                                expected.clone(),
                            );
                            std::thread::spawn(move || {
                                let _ =
                                    serve(conn, &mode, &stop, &auth, &sent, &frames, fps, expected);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        CameraServer {
            port,
            mode,
            stop,
            auth_headers,
            frames_sent,
            thread: Some(thread),
        }
    }

    pub fn url(&self, userinfo: &str) -> String {
        format!("http://{userinfo}127.0.0.1:{}/video.mjpg", self.port)
    }

    pub fn set(&self, serve: Serve) {
        self.mode.store(serve as u8, Ordering::Relaxed);
    }
}

impl Drop for CameraServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn serve(
    conn: TcpStream,
    mode: &AtomicU8,
    stop: &AtomicBool,
    auth: &Mutex<Vec<Vec<String>>>,
    sent: &AtomicU64,
    frames: &[Vec<u8>],
    fps: f64,
    expected: Option<String>,
) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        if line.to_ascii_lowercase().starts_with("authorization:") {
            headers.push(line["authorization:".len()..].trim().to_string());
        }
    }
    auth.lock().unwrap().push(headers.clone());
    let mut out = conn;
    if let Some(want) = expected {
        if headers.len() > 1 {
            out.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
            return Ok(());
        }
        if headers.first() != Some(&want) {
            out.write_all(b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"cam\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
            return Ok(());
        }
    }
    if mode.load(Ordering::Relaxed) == Serve::Html as u8 {
        let page = "<html><body>Camera is restarting, please wait</body></html>";
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        )?;
        return Ok(());
    }
    out.write_all(
        b"HTTP/1.1 200 OK\r\nContent-Type: multipart/x-mixed-replace;boundary=frame\r\nConnection: close\r\n\r\n",
    )?;
    let period = Duration::from_secs_f64(1.0 / fps);
    let start = Instant::now();
    let mut n = 0u32;
    let two = mode.load(Ordering::Relaxed) == Serve::TwoFrames as u8;
    while !stop.load(Ordering::Relaxed)
        && (mode.load(Ordering::Relaxed) == Serve::Mjpeg as u8 || (two && n < 2))
    {
        let f = &frames[n as usize % frames.len()];
        write!(
            out,
            "--frame\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
            f.len()
        )?;
        out.write_all(f)?;
        out.write_all(b"\r\n")?;
        sent.fetch_add(1, Ordering::Relaxed);
        n += 1;
        let due = start + period * n;
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}
