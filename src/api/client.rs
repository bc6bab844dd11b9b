//! `hindsight ctl`: the local API from the command line.

use std::time::Duration;

use serde_json::json;

use super::CommandResponse;
use crate::status::Status;

/// A client for a running hindsight's API.
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl ApiClient {
    /// `addr` is `host:port` or a URL.
    pub fn new(addr: &str, token: Option<String>) -> Result<ApiClient, String> {
        Self::new_with_timeout(addr, token, Duration::from_secs(15))
    }

    /// As [`ApiClient::new`], giving up on a request after `timeout`.
    pub fn new_with_timeout(
        addr: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<ApiClient, String> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(ApiClient { base, token, http })
    }

    pub fn status(&self) -> Result<Status, String> {
        let mut req = self.http.get(format!("{}/api/status", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            let code = resp.status();
            let body = resp.text().unwrap_or_default();
            return Err(format!("{code}: {body}"));
        }
        resp.json()
            .map_err(|e| format!("the API answered something that is not a status: {e}"))
    }

    /// POSTs a command; `Err` only when the API could not be asked. A rejected command is
    /// an `Ok` response with `ok: false`.
    pub fn command(&self, path: &str, body: serde_json::Value) -> Result<CommandResponse, String> {
        let mut req = self
            .http
            .post(format!("{}/api/{path}", self.base))
            .json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.unreachable(e))?;
        let code = resp.status();
        let text = resp
            .text()
            .map_err(|e| format!("reading the answer: {e}"))?;
        serde_json::from_str(&text).map_err(|_| format!("{code}: {text}"))
    }

    pub fn start(&self, seconds: Option<f64>) -> Result<CommandResponse, String> {
        self.command("start", json!({ "seconds": seconds }))
    }

    pub fn stop(&self) -> Result<CommandResponse, String> {
        self.command("stop", json!({}))
    }

    pub fn clip(&self, seconds: f64) -> Result<CommandResponse, String> {
        self.command("clip", json!({ "seconds": seconds }))
    }

    pub fn mark(&self, text: &str) -> Result<CommandResponse, String> {
        self.command("mark", json!({ "text": text }))
    }

    fn unreachable(&self, e: reqwest::Error) -> String {
        format!(
            "cannot reach hindsight at {} ({e}); is `hindsight run` running, and is --api right?",
            self.base
        )
    }
}
