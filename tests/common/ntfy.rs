//! A real ntfy server on loopback for the tests (where `scripts/ntfy-server.sh install`
//! put it), with its own cache and, if asked, access control.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::free_port;

/// A real ntfy server on loopback.
pub struct Ntfy {
    child: Option<Child>,
    pub port: u16,
    pub dir: tempfile::TempDir,
    auth: bool,
    /// Requests an address may make at once (then one per 5 s), for every address but
    /// the tests' own (127.0.0.2, see [`Ntfy::client`]); `None`: no limit on loopback.
    burst: Option<u32>,
    /// Seconds between its keepalives.
    pub keepalive: u32,
}

impl Ntfy {
    /// Where `scripts/ntfy-server.sh install` (which scripts/test.sh runs) put it (or
    /// NTFY_BIN).
    pub fn bin() -> PathBuf {
        let env = |k: &str| std::env::var_os(k).map(PathBuf::from);
        let p = env("NTFY_BIN").unwrap_or_else(|| {
            env("NTFY_HOME")
                .or_else(|| env("XDG_CACHE_HOME").map(|c| c.join("ntfy-server")))
                .unwrap_or_else(|| env("HOME").unwrap().join(".cache/ntfy-server"))
                .join("root/usr/bin/ntfy")
        });
        assert!(
            p.exists(),
            "the ntfy server is needed: run `bash scripts/ntfy-server.sh install` (or set NTFY_BIN)"
        );
        p
    }

    pub fn start(auth: bool) -> Ntfy {
        Self::launch(auth, None, 5)
    }

    /// A server that limits requests per address as ntfy.sh does (`burst` at once, then
    /// one every 5 s) for hindsight at 127.0.0.1, and not for the tests' publishes and
    /// reads, which come from 127.0.0.2 (a phone elsewhere).
    pub fn start_rate_limited(burst: u32) -> Ntfy {
        Self::launch(false, Some(burst), 5)
    }

    /// A server that sends keepalives every `seconds` (ntfy's default: 45).
    pub fn start_with_keepalive(seconds: u32) -> Ntfy {
        Self::launch(false, None, seconds)
    }

    fn launch(auth: bool, burst: Option<u32>, keepalive: u32) -> Ntfy {
        let mut n = Ntfy {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            auth,
            burst,
            keepalive,
        };
        n.spawn();
        n
    }

    /// The tests' HTTP client: from 127.0.0.2 on a rate-limited server.
    fn client(&self) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder();
        if self.burst.is_some() {
            b = b.local_address(std::net::IpAddr::from([127, 0, 0, 2]));
        }
        b.build().unwrap()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let mut cmd = Command::new(Self::bin());
        cmd.args([
            "serve",
            "--listen-http",
            &format!("127.0.0.1:{}", self.port),
        ])
        .args(["--base-url", &self.url()])
        .arg("--cache-file")
        .arg(self.dir.path().join("cache.db"))
        // 5 s unless asked: the shortest keepalive ntfy allows.
        .args(["--keepalive-interval", &format!("{}s", self.keepalive)]);
        match self.burst {
            // Loopback publishes many messages fast in these tests: no rate limit for it.
            None => cmd.args(["--visitor-request-limit-exempt-hosts", "127.0.0.1"]),
            Some(burst) => cmd
                .args(["--visitor-request-limit-exempt-hosts", "127.0.0.2"])
                .args(["--visitor-request-limit-burst", &burst.to_string()])
                .args(["--visitor-request-limit-replenish", "5s"]),
        };
        cmd
            // Messages over 4 KiB become attachments, as on ntfy.sh.
            .arg("--attachment-cache-dir")
            .arg(self.dir.path().join("attachments"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("server.log")).unwrap());
        if self.auth {
            cmd.arg("--auth-file")
                .arg(self.dir.path().join("auth.db"))
                .args(["--auth-default-access", "deny-all"]);
        }
        self.child = Some(cmd.spawn().unwrap());
        let start = Instant::now();
        while self
            .client()
            .get(format!("{}/v1/health", self.url()))
            .send()
            .is_err()
        {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "ntfy did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.as_ref().unwrap().id() as i32, sig) };
    }

    /// Publishes `text` on `topic`; returns the message id.
    pub fn publish(&self, topic: &str, text: &str) -> String {
        self.publish_timed(topic, text).0
    }

    /// Publishes `text` on `topic`; returns the message id and the send time the server
    /// gave it (whole seconds).
    pub fn publish_timed(&self, topic: &str, text: &str) -> (String, i64) {
        let r = self
            .client()
            .post(format!("{}/{topic}", self.url()))
            .body(text.to_string())
            .send()
            .unwrap();
        assert!(r.status().is_success(), "publish: {}", r.status());
        let v: Value = r.json().unwrap();
        (
            v["id"].as_str().unwrap().to_string(),
            v["time"].as_i64().unwrap(),
        )
    }

    /// Messages on `topic` so far, whole.
    pub fn whole_messages(&self, topic: &str, token: Option<&str>) -> Vec<String> {
        let mut req = self
            .client()
            .get(format!("{}/{topic}/json?poll=1", self.url()));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
            .unwrap()
            .text()
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["message"].as_str().map(str::to_string))
            .collect()
    }

    /// The lines of the messages on `topic` so far: hindsight publishes replies and
    /// notices that come together as the lines of one message.
    pub fn messages(&self, topic: &str, token: Option<&str>) -> Vec<String> {
        self.whole_messages(topic, token)
            .iter()
            .flat_map(|m| m.lines().map(str::to_string).collect::<Vec<_>>())
            .collect()
    }

    /// `ntfy user add` + `access` + `token add`: a user who may read and write `topic`.
    pub fn user_with_token(&self, user: &str, topic: &str) -> String {
        let run = |args: &[&str]| {
            let out = Command::new(Self::bin())
                .args(args)
                .env("NTFY_AUTH_FILE", self.dir.path().join("auth.db"))
                .env("NTFY_PASSWORD", "not-used-here-1")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ntfy {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr)
        };
        run(&["user", "add", "--role=user", user]);
        run(&["access", user, topic, "rw"]);
        let out = run(&["token", "add", user]);
        out.split_whitespace()
            .find(|w| w.starts_with("tk_"))
            .expect("a token")
            .to_string()
    }
}

impl Drop for Ntfy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback proxy in front of a real ntfy server whose clock it shows `ahead` seconds
/// ahead of this machine's (behind if negative): what a rig whose own clock runs behind
/// (or ahead of) the server's sees. Every `"time":<10 digits>` and the `Date` header the
/// server sends are moved by `ahead`, and every `since=<10 digits>` hindsight asks for
/// (in the shown clock) by as much back, so that the server answers as one with that
/// clock would. Takes at most 20 connections and stops by itself after 5 minutes or when
/// dropped.
pub struct ShiftedClock {
    pub port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl ShiftedClock {
    pub fn start(server_port: u16, ahead: i64) -> ShiftedClock {
        Self::start_on(super::free_port(), server_port, ahead)
    }

    /// On `port` (a server that hindsight could not reach until now).
    pub fn start_on(port: u16, server_port: u16, ahead: i64) -> ShiftedClock {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        std::thread::spawn(move || {
            let until = Instant::now() + Duration::from_secs(300);
            let mut taken = 0;
            while !stopping.load(Ordering::Relaxed) && Instant::now() < until && taken < 20 {
                match listener.accept() {
                    Ok((client, _)) => {
                        taken += 1;
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", server_port))
                        else {
                            continue;
                        };
                        let (mut c_in, mut s_out) =
                            (client.try_clone().unwrap(), server.try_clone().unwrap());
                        std::thread::spawn(move || {
                            rewrite(
                                &mut c_in,
                                &mut s_out,
                                &[(b"since=", 10, &|v| shift_secs(v, -ahead))],
                            );
                        });
                        let (mut s_in, mut c_out) = (server, client);
                        std::thread::spawn(move || {
                            rewrite(
                                &mut s_in,
                                &mut c_out,
                                &[
                                    (b"\"time\":", 10, &|v| shift_secs(v, ahead)),
                                    (b"\r\nDate: ", 29, &|v| shift_date(v, ahead)),
                                ],
                            )
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        ShiftedClock { port, stop }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ShiftedClock {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// `secs` (10 digits of unix time) moved by `by`, if they are that.
fn shift_secs(secs: &[u8], by: i64) -> Option<Vec<u8>> {
    let t: i64 = std::str::from_utf8(secs).ok()?.parse().ok()?;
    Some(format!("{:010}", t + by).into_bytes())
}

/// An HTTP date (`Sat, 05 Dec 2026 02:49:18 GMT`) moved by `by` seconds.
fn shift_date(date: &[u8], by: i64) -> Option<Vec<u8>> {
    let t = chrono::DateTime::parse_from_rfc2822(std::str::from_utf8(date).ok()?).ok()?;
    let moved = t.with_timezone(&chrono::Utc) + chrono::Duration::seconds(by);
    Some(
        moved
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string()
            .into_bytes(),
    )
}

/// A key, the length of the value after it, and the value it is replaced by (the same
/// length), if any.
type Rule<'a> = (&'a [u8], usize, &'a dyn Fn(&[u8]) -> Option<Vec<u8>>);

/// Copies `from` to `to`, replacing the value after each rule's key. A key and value cut
/// by a read are held until the rest comes (or for 100 ms, if what is held was not one:
/// the `\r\n` that ends the headers); nothing else is held.
fn rewrite(from: &mut std::net::TcpStream, to: &mut std::net::TcpStream, rules: &[Rule]) {
    use std::io::{ErrorKind, Read, Write};
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let held = !pending.is_empty();
        let _ = from.set_read_timeout(held.then_some(Duration::from_millis(100)));
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if held && matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if to.write_all(&pending).is_err() {
                    break;
                }
                pending.clear();
                continue;
            }
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut hold = 0;
        for (key, len, replace) in rules {
            let whole = key.len() + len;
            let mut i = 0;
            while i + whole <= pending.len() {
                if pending[i..].starts_with(key) {
                    let value = &mut pending[i + key.len()..i + whole];
                    if let Some(new) = replace(value).filter(|n| n.len() == *len) {
                        value.copy_from_slice(&new);
                    }
                    i += whole;
                } else {
                    i += 1;
                }
            }
            // A tail that may be the start of a key and value the next read completes.
            let tail = (1..whole.min(pending.len() + 1))
                .rev()
                .find(|&k| {
                    let t = &pending[pending.len() - k..];
                    t[..k.min(key.len())] == key[..k.min(key.len())]
                })
                .unwrap_or(0);
            hold = hold.max(tail);
        }
        let send = pending.len() - hold;
        if to.write_all(&pending[..send]).is_err() {
            break;
        }
        pending.drain(..send);
    }
    let _ = to.write_all(&pending);
    let _ = to.shutdown(std::net::Shutdown::Write);
}
