//! `hindsight ctl`: the local API from the command line.

use std::time::Duration;

use serde_json::json;

use super::CommandResponse;
use crate::status::Status;

/// A client for a running hindsight's API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
    timeout: Duration,
}

/// Why a command got no answer: whether it may still be carried out matters.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Nothing was sent (nothing listens there, or the address is wrong): not carried out.
    #[error("{0}")]
    NotSent(String),
    /// Sent, but no answer came in time: it may still be carried out.
    #[error("{0}")]
    NoAnswer(String),
    /// An answer that is not the API's.
    #[error("{0}")]
    Garbled(String),
}

/// Why the client could not be made, or the status not read.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot make an HTTP client: {0}")]
    Build(reqwest::Error),
    #[error(transparent)]
    Request(#[from] CommandError),
    /// The API refused (a wrong token: 401).
    #[error("{code}: {body}")]
    Refused {
        code: reqwest::StatusCode,
        body: String,
    },
    #[error("the API answered something that is not a status: {0}")]
    NotAStatus(reqwest::Error),
}

impl ApiClient {
    /// `addr` is `host:port` or a URL.
    pub fn new(addr: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        Self::new_with_timeout(addr, token, Duration::from_secs(15))
    }

    /// As [`ApiClient::new`], giving up on a request after `timeout`.
    pub fn new_with_timeout(
        addr: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<ApiClient, ClientError> {
        let base = if addr.starts_with("http://") || addr.starts_with("https://") {
            addr.trim_end_matches('/').to_string()
        } else {
            format!("http://{addr}")
        };
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .build()
            .map_err(ClientError::Build)?;
        Ok(ApiClient {
            base,
            token,
            http,
            timeout,
        })
    }

    pub fn status(&self) -> Result<Status, ClientError> {
        let mut req = self.http.get(format!("{}/api/status", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.failed(e))?;
        if !resp.status().is_success() {
            let code = resp.status();
            let body = resp.text().unwrap_or_default();
            return Err(ClientError::Refused { code, body });
        }
        resp.json().map_err(ClientError::NotAStatus)
    }

    /// POSTs a command; `Err` only when no answer came (and whether it may still be
    /// carried out). A rejected command is an `Ok` response with `ok: false`.
    pub fn command(
        &self,
        path: &str,
        body: serde_json::Value,
    ) -> Result<CommandResponse, CommandError> {
        let mut req = self
            .http
            .post(format!("{}/api/{path}", self.base))
            .json(&body);
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().map_err(|e| self.failed(e))?;
        let code = resp.status();
        let text = resp.text().map_err(|e| self.failed(e))?;
        serde_json::from_str(&text).map_err(|_| CommandError::Garbled(format!("{code}: {text}")))
    }

    pub fn start(&self, seconds: Option<f64>) -> Result<CommandResponse, CommandError> {
        self.command("start", json!({ "seconds": seconds }))
    }

    pub fn stop(&self) -> Result<CommandResponse, CommandError> {
        self.command("stop", json!({}))
    }

    pub fn clip(&self, seconds: f64) -> Result<CommandResponse, CommandError> {
        self.command("clip", json!({ "seconds": seconds }))
    }

    pub fn mark(&self, text: &str) -> Result<CommandResponse, CommandError> {
        self.command("mark", json!({ "text": text }))
    }

    /// What a failed request means: nothing sent (not carried out), or no answer in time
    /// (it may still be).
    fn failed(&self, e: reqwest::Error) -> CommandError {
        if e.is_connect() {
            CommandError::NotSent(format!(
                "cannot reach hindsight at {} ({e}): nothing was carried out; is `hindsight run` running, and is --api right?",
                self.base
            ))
        } else if e.is_timeout() {
            CommandError::NoAnswer(format!(
                "no answer from hindsight at {} within {:.0} s: the command may still be carried out; see `hindsight ctl status`",
                self.base,
                self.timeout.as_secs_f64()
            ))
        } else {
            CommandError::NoAnswer(format!(
                "the connection to hindsight at {} failed ({e}): the command may have been carried out; see `hindsight ctl status`",
                self.base
            ))
        }
    }
}
