//! The local API against what a lab network and a browser on the rig can send it: other
//! sites' pages (cross-site form posts, DNS rebinding), a flood of connections that never
//! finish their headers, and `hindsight ctl` telling apart "not carried out" from "no
//! answer". Requests are written byte for byte on real sockets; the recorder is the real
//! binary; triggers that must keep working come from the real ntfy server.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ntfy::Ntfy;
use common::*;
use serde_json::json;

/// Sends `request` as written and reads the whole answer (the request says `Connection:
/// close`); returns the status code and the body.
fn raw(api: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(api).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let code = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

fn post(path: &str, host: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// What a page on another site can make a browser send: a form (text/plain, a body that
/// is valid JSON), a form with form fields, a script's text/plain, and the same from a
/// page whose name points at 127.0.0.1 (DNS rebinding). None of them starts, stops or
/// marks anything; the API's own clients still work.
#[test]
fn requests_from_other_sites_change_nothing() {
    let _g = serial();
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(0.9);
    let api = h.api.clone();
    let port = api.rsplit(':').next().unwrap();
    let evil = "Origin: http://evil.example\r\n";
    let cases = [
        (
            "a form posting JSON as text/plain",
            post(
                "/api/start",
                &api,
                &format!("{evil}Content-Type: text/plain\r\n"),
                "{\"seconds\": 30, \"text\": \"=\"}",
            ),
            403,
        ),
        (
            "a form with fields",
            post(
                "/api/mark",
                &api,
                &format!("{evil}Content-Type: application/x-www-form-urlencoded\r\n"),
                "text=pwned",
            ),
            403,
        ),
        (
            "text/plain without an Origin",
            post("/api/start", &api, "Content-Type: text/plain\r\n", "{}"),
            415,
        ),
        (
            "a body-less post from another site",
            post("/api/start?seconds=30", &api, evil, ""),
            403,
        ),
        (
            "a sandboxed page (Origin: null)",
            post("/api/stop", &api, "Origin: null\r\n", ""),
            403,
        ),
        (
            "DNS rebinding: a start",
            post(
                "/api/start",
                &format!("evil.example:{port}"),
                &format!("Origin: http://evil.example:{port}\r\nContent-Type: application/json\r\n"),
                "{}",
            ),
            421,
        ),
        (
            "DNS rebinding: reading the status",
            format!("GET /api/status HTTP/1.1\r\nHost: evil.example:{port}\r\nConnection: close\r\n\r\n"),
            421,
        ),
    ];
    for (what, request, want) in &cases {
        let (code, body) = raw(&api, request);
        assert_eq!(code, *want, "{what}: {body}");
        assert!(body.contains("\"ok\":false"), "{what}: {body}");
    }
    let s = h.status();
    assert_eq!(s["state"], "buffering", "nothing started: {s}");
    assert!(
        s["last_command"].is_null(),
        "no command reached the recorder: {s}"
    );
    assert!(h.mkv_files().is_empty());
    assert!(h.log_text().contains("refused POST /api/start"));

    // The API's own clients: JSON from a script, its own origin, query parameters, ctl.
    let (code, body) = raw(
        &api,
        &post(
            "/api/start",
            &format!("localhost:{port}"),
            &format!("Origin: http://localhost:{port}\r\nContent-Type: application/json\r\n"),
            "{\"seconds\": 0.5}",
        ),
    );
    assert_eq!(code, 200, "{body}");
    h.wait_until("the recording ends", Duration::from_secs(10), |h| {
        h.status()["state"] == "buffering"
    });
    let (code, body) = raw(&api, &post("/api/mark?text=query", &api, "", ""));
    assert_eq!(code, 200, "{body}");
    let out = h.ctl(&["mark", "from", "ctl"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    h.wait_idle_files();
    assert_eq!(h.mkv_files().len(), 1);
    assert!(h.terminate().success());
}

/// A real browser on the rig opens another site's page that posts a form to the API (as
/// any page could): the recorder does not start.
#[test]
fn a_page_in_a_real_browser_cannot_start_a_recording() {
    let _g = serial();
    require_tool("chromium");
    let mut h = Hindsight::start(&synthetic_config(160, 120, 30.0, 1.0));
    h.wait_buffered(0.9);
    // The other site: a page on another port (another origin), served here.
    let site = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let site_addr = site.local_addr().unwrap();
    let page = format!(
        "<html><body><form id=f method=POST enctype=text/plain action=\"http://{api}/api/start\">\
         <input name='{{\"seconds\": 30, \"text\": \"' value='\"}}'></form>\
         <script>fetch('http://{api}/api/mark?text=pwned', {{method: 'POST', mode: 'no-cors'}});\
         document.getElementById('f').submit();</script></body></html>",
        api = h.api
    );
    let server = std::thread::spawn(move || {
        site.set_nonblocking(false).unwrap();
        for conn in site.incoming().take(4) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("timeout")
        .args([
            "60",
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
        ])
        .args([
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=5000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("http://{site_addr}/"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::thread::sleep(Duration::from_secs(1));
    let s = h.status();
    assert_eq!(s["state"], "buffering", "the page started a recording: {s}");
    assert!(
        s["last_command"].is_null(),
        "the page's command was carried out: {s}"
    );
    assert!(h.mkv_files().is_empty());
    let log = h.log_text();
    assert!(
        log.contains("refused POST /api/start") && log.contains("refused POST /api/mark"),
        "the browser's form and fetch reached the API and were refused:\n{log}"
    );
    drop(server);
    assert!(h.terminate().success());
}

/// Sets this process's limit on open files for the child (as `ulimit -n` does).
fn limit_files(cmd: &mut std::process::Command, n: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs in the child before exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: n,
                rlim_max: n,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// 200 connections that never finish their headers, against a recorder allowed 128 open
/// files: the API serves a few and answers the rest 503 at once (a `ctl start` among them
/// is told it was not carried out, and is not); an ntfy-triggered recording is made and
/// complete; the held connections are closed after 10 s, and the API answers again.
#[test]
fn a_flood_of_idle_connections_cannot_stop_a_recording() {
    let _g = serial();
    let server = Ntfy::start(false);
    let cfg = format!(
        "{}lsl:\n  enabled: false\ntrigger:\n  ntfy:\n    enabled: true\n    server: {}\n    topic: flood\n    keepalive_interval: 5\n",
        synthetic_config(160, 120, 30.0, 1.0),
        server.url()
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let mut h = Hindsight::start_with(dir, root, &cfg, |cmd| limit_files(cmd, 128));
    h.wait_until("ntfy is connected", Duration::from_secs(30), |h| {
        h.status()["ntfy"]["connected"] == true
    });
    h.wait_buffered(0.9);
    let partial = format!("GET /api/status HTTP/1.1\r\nHost: {}\r\n", h.api);
    let mut held = Vec::new();
    for _ in 0..200 {
        let mut s = TcpStream::connect(&h.api).unwrap();
        s.write_all(partial.as_bytes()).unwrap();
        held.push(s);
    }
    // A command now is refused plainly, not left hanging.
    let out = h.ctl(&["--timeout", "8", "start"]);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("busy") && text.contains("not carried out"),
        "{text}"
    );

    // The phone's trigger still records.
    server.publish("flood", "start 1");
    let start = Instant::now();
    while !h.log_text().contains("_cam0.mkv (") {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            h.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !h.log_text().contains("Too many open files"),
        "{}",
        h.log_text()
    );
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "{files:?}");
    mkvmerge_clean(&files[0]);
    assert!(read_sidecar(&files[0]).len() > 50);

    // The connections that never finished their headers are closed by the server.
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut buf = [0u8; 1024];
        let mut answer = Vec::new();
        loop {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("a held connection was not closed: {e}"),
            }
        }
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503") || text.starts_with("HTTP/1.1 408"),
            "{text}"
        );
    }
    drop(held);
    h.wait_until("the API answers again", Duration::from_secs(20), |h| {
        h.try_status().is_some()
    });
    // Nothing the busy API refused was carried out: one recording, from ntfy.
    assert_eq!(h.status()["last_command"]["source"], "ntfy");
    let (code, r) = h.post("stop", json!({}));
    assert_eq!(code, 200, "{r}");
    assert!(h.terminate().success());
}

/// `ctl` says what happened to a command that got no answer: nothing listening means it
/// was not carried out (exit 2); no answer in time means it may still be (exit 3).
#[test]
fn ctl_tells_not_carried_out_from_no_answer() {
    // Nothing listens (port 1: privileged and unused; a port just freed by the tests
    // could meanwhile be some other connection's local end).
    let free = "127.0.0.1:1".to_string();
    let out = std::process::Command::new(BIN)
        .args(["ctl", "--api", &free, "start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing was carried out"));
    // Something takes the connection and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let keep = std::thread::spawn(move || {
        let conn = silent.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(conn);
    });
    let out = std::process::Command::new(BIN)
        .args(["ctl", "--api", &addr, "--timeout", "1", "start"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may still be carried out"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    keep.join().unwrap();
}
