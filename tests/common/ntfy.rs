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
}

impl Ntfy {
    /// Where `scripts/ntfy-server.sh install` put it (or NTFY_BIN).
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
        let mut n = Ntfy {
            child: None,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            auth,
        };
        n.spawn();
        n
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
        // The shortest keepalive ntfy allows.
        .args(["--keepalive-interval", "5s"])
        // Loopback publishes many messages fast in these tests: no rate limit for it.
        .args(["--visitor-request-limit-exempt-hosts", "127.0.0.1"])
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
        while reqwest::blocking::get(format!("{}/v1/health", self.url())).is_err() {
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
        let r = reqwest::blocking::Client::new()
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

    /// Messages on `topic` so far.
    pub fn messages(&self, topic: &str, token: Option<&str>) -> Vec<String> {
        let mut req =
            reqwest::blocking::Client::new().get(format!("{}/{topic}/json?poll=1", self.url()));
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
