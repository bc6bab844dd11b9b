//! The local control API: HTTP on 127.0.0.1 by default (SPEC section 8a).
//!
//! `GET /api/status` returns the [`Status`](crate::status::Status) snapshot as JSON;
//! `POST /api/start` (optional `seconds`), `/api/stop`, `/api/clip` (`seconds`),
//! `/api/mark` (`text`) send commands on the bus and answer with their outcome. Parameters
//! come as a JSON body (`Content-Type: application/json`) or as query parameters, so
//! `curl -X POST 'localhost:8787/api/start?seconds=60'` works. When `api.token_env` is
//! set, every request needs `Authorization: Bearer <token>`.
//!
//! Who may ask (a web page open in a browser on the rig must not be able to):
//! - a state change (POST) with a body takes only `Content-Type: application/json`, which
//!   a cross-site form cannot send and a cross-site script cannot send without the
//!   browser asking first (CORS), which this server never allows;
//! - a request whose `Origin` is another site is refused;
//! - without a token (the loopback default), the `Host` must be a loopback name
//!   (`localhost`, `127.x.x.x`, `[::1]`): a page whose name was pointed at 127.0.0.1
//!   (DNS rebinding) is refused. With a token, the token is what keeps others out: it is
//!   compared in constant time, and an address that sends too many wrong ones is refused
//!   for a while (`guesses.rs`).
//!
//! And how much they may take: at most [`ApiLimits::connections`] connections at once
//! (the rest are told 503 and closed at once, so a request either runs now or not at
//! all), a request's headers within [`HEADER_TIMEOUT`] (also what an idle connection may
//! last), bodies of at most 64 KiB. Recording keeps its file descriptors.
//!
//! It runs a small single-threaded tokio runtime on its own thread.

pub mod client;
mod guesses;
mod web;

use std::net::TcpListener;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::bus::{BusError, CommandBus};
use crate::hub::StatusHub;
use crate::recorder::{Command, Origin, Outcome, TriggerSource};

/// The answer to a command request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CommandResponse {
    /// True when the command was carried out or was a harmless no-op.
    pub ok: bool,
    /// "done" | "no-op" | "rejected" | "failed" | "error"
    pub outcome: String,
    pub message: String,
    pub state: String,
    /// Files this command made: each has its header and first frame written.
    pub files: Vec<String>,
}

#[derive(Clone)]
struct AppState {
    bus: CommandBus,
    hub: Arc<StatusHub>,
    token: Option<Arc<str>>,
    /// The recordings root the web page lists and serves from.
    root: Arc<std::path::Path>,
    /// Live views open (at most `web::MAX_VIEWERS`).
    viewers: Arc<tokio::sync::Semaphore>,
    /// The copies of each camera's newest frame that live views share.
    live: Arc<web::LiveFrames>,
    /// Wrong tokens by client address.
    guesses: Arc<guesses::Guesses>,
    /// Recordings described, kept while their files stay as they were.
    described: Arc<crate::recordings::Described>,
}

/// How long a client may take to send a request's headers (and how long an idle
/// connection is kept).
pub const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The largest request body taken (marks are at most a few kB).
const MAX_BODY: usize = 64 << 10;

/// What the API may take of the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiLimits {
    /// Connections served at once.
    pub connections: usize,
}

impl ApiLimits {
    /// From the file descriptors this process may open: what is left once those in use
    /// and a reserve for recording (files of every camera, audio, sockets) are set aside,
    /// between 4 and 64.
    pub fn for_process(cameras: usize) -> ApiLimits {
        let (soft, _) = raise_fd_limit();
        let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count() as u64);
        let reserve = 64 + 16 * cameras as u64;
        let spare = soft.saturating_sub(open + reserve);
        ApiLimits {
            connections: spare.clamp(4, 64) as usize,
        }
    }
}

/// Raises the soft limit on open files to the hard limit (at most 65536), as services
/// should; returns (soft, hard) as they are then.
pub fn raise_fd_limit() -> (u64, u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return (1024, 1024);
    }
    let want = lim.rlim_max.min(65536);
    if lim.rlim_cur < want {
        let raised = libc::rlimit {
            rlim_cur: want,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: a valid rlimit; only the soft limit changes, within the hard one.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim.rlim_cur = want;
        }
    }
    // `rlim_t` is 32 bits on a 32-bit Raspberry Pi OS.
    #[allow(clippy::useless_conversion)]
    (u64::from(lim.rlim_cur), u64::from(lim.rlim_max))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    seconds: Option<f64>,
    text: Option<String>,
}

/// Why the API's address could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen on {addr} (api.listen): {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot configure the API socket: {0}")]
    Configure(std::io::Error),
}

/// Binds the API's address now, so that a taken port is reported before anything starts.
pub fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, BindError> {
    let l = TcpListener::bind(addr).map_err(|source| BindError::Listen { addr, source })?;
    l.set_nonblocking(true).map_err(BindError::Configure)?;
    Ok(l)
}

/// Serves the API on `listener` from a thread of its own.
pub fn spawn(
    listener: TcpListener,
    bus: CommandBus,
    hub: Arc<StatusHub>,
    token: Option<String>,
    root: std::path::PathBuf,
    limits: ApiLimits,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let state = AppState {
        bus,
        hub,
        token: token.map(Arc::from),
        root: Arc::from(root.as_path()),
        viewers: Arc::new(tokio::sync::Semaphore::new(web::MAX_VIEWERS)),
        live: Arc::default(),
        guesses: Arc::default(),
        described: Arc::default(),
    };
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || {
            let _span = tracing::info_span!("api").entered();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime for the API");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("API listener");
                serve(listener, router(state), limits).await;
            });
        })
}

/// Accepts connections up to the cap; each is served by hyper with a deadline for its
/// request headers. Beyond the cap a connection is told 503 and closed at once.
async fn serve(listener: tokio::net::TcpListener, app: Router, limits: ApiLimits) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.connections));
    // Refusals in flight, so that a flood cannot make them a cost of their own.
    let refusals = Arc::new(tokio::sync::Semaphore::new(8));
    let mut accept_errors = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors, say: wait, do not spin.
                accept_errors += 1;
                if accept_errors.is_power_of_two() {
                    tracing::warn!(
                        "the API cannot accept a connection ({e}); {accept_errors} times so far"
                    );
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Never dropped unanswered: while refusals are under way, accepting waits (the
            // connections queue in the kernel, costing no descriptor).
            let Ok(refusal) = refusals.clone().acquire_owned().await else {
                return;
            };
            tokio::spawn(async move {
                let _refusal = refusal;
                refuse_busy(stream).await;
            });
            continue;
        };
        // Each request knows its client's address (for counting wrong tokens).
        let svc = hyper_util::service::TowerToHyperService::new(
            app.clone().layer(axum::Extension(guesses::Peer(peer.ip()))),
        );
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .keep_alive(true);
            if let Err(e) = http.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!("API connection ended: {e}");
            }
        });
    }
}

/// Answers 503 to a connection beyond the cap, without serving its request.
async fn refuse_busy(mut stream: tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Take what the client sent (briefly), so that closing does not reset the answer away.
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(std::time::Duration::from_millis(50), stream.read(&mut buf)).await;
    let body = r#"{"ok":false,"outcome":"error","message":"hindsight is busy: too many API connections; the request was not carried out, try again","state":"","files":[]}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_millis(500), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/start", post(start))
        .route("/api/stop", post(stop))
        .route("/api/clip", post(clip))
        .route("/api/mark", post(mark))
        .merge(web::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// The host name of a `Host` header value (`name`, `name:port`, `[v6]:port`).
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => host,
    }
}

/// Names that can only mean this machine: no other site can have them.
fn is_loopback_name(name: &str) -> bool {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    n == "localhost"
        || n.ends_with(".localhost")
        || n.parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why a request is refused before it is served, if it is (see the module documentation).
fn refusal(req: &Request, token_required: bool) -> Option<(StatusCode, &'static str)> {
    let h = req.headers();
    let host = h
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !token_required && !is_loopback_name(host_name(host)) {
        return Some((
            StatusCode::MISDIRECTED_REQUEST,
            "this API answers only to a loopback host name (localhost, 127.0.0.1, [::1]); \
             to reach it from elsewhere, set api.listen and api.token_env",
        ));
    }
    if req.method() == axum::http::Method::GET {
        return None;
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let same = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://").map(|(_, a)| a))
            .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
        if !same {
            return Some((
                StatusCode::FORBIDDEN,
                "a request from another site (its Origin is not this API) is refused",
            ));
        }
    }
    if let Some(ctype) = h.get(header::CONTENT_TYPE) {
        let json = ctype
            .to_str()
            .ok()
            .and_then(|c| c.split(';').next())
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Some((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "commands take JSON: send Content-Type: application/json (curl --json '{...}'), or no body and query parameters",
            ));
        }
    }
    None
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    let login = req.uri().path() == web::LOGIN;
    if !login {
        if let Some((code, why)) = refusal(&req, st.token.is_some()) {
            tracing::warn!(
                "refused {} {} (Host {:?}, Origin {:?}): {why}",
                req.method(),
                req.uri().path(),
                req.headers().get(header::HOST),
                req.headers().get(header::ORIGIN)
            );
            return error(code, why);
        }
    }
    if let Some(token) = &st.token {
        let peer = peer_of(&req);
        if let Some(left) = st.guesses.refused_for(peer) {
            return too_many_guesses(left);
        }
        if !login {
            match has_token(&req, token) {
                Token::Right => {}
                given => {
                    if let Token::Wrong(what) = given {
                        st.guesses.wrong(peer, what.as_bytes());
                    }
                    // A browser opening the page is shown the login form.
                    if req.method() == axum::http::Method::GET && req.uri().path() == "/" {
                        return axum::response::Redirect::to(web::LOGIN).into_response();
                    }
                    return error(
                        StatusCode::UNAUTHORIZED,
                        "a valid token is required: `Authorization: Bearer <token>`, or log in on the page",
                    );
                }
            }
        }
    }
    next.run(req).await
}

/// The client's address, as the server accepted it (none in tests that call the router).
fn peer_of(req: &Request) -> Option<std::net::IpAddr> {
    req.extensions().get::<guesses::Peer>().map(|p| p.0)
}

/// The answer to an address that sent too many wrong tokens.
fn too_many_guesses(left: std::time::Duration) -> Response {
    let mut r = error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!(
            "too many wrong tokens from this address: refused for {} s more",
            left.as_secs() + 1
        ),
    );
    if let Ok(v) = header::HeaderValue::from_str(&(left.as_secs() + 1).to_string()) {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

/// What a request says of the token.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Right,
    /// None given (a first visit, a script without one): not a guess.
    Missing,
    /// What was given instead (the header's and the cookies' values).
    Wrong(String),
}

/// The request carries the token: as `Authorization: Bearer`, or as the cookie the login
/// form sets. Compared in constant time.
fn has_token(req: &Request, token: &str) -> Token {
    let h = req.headers();
    let bearer = h
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let cookie = web::cookie_value(token);
    let cookies: Vec<&str> = h
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .filter(|(k, _)| *k == web::TOKEN_COOKIE)
        .map(|(_, v)| v)
        .collect();
    if bearer.is_some_and(|t| guesses::same(t.as_bytes(), token.as_bytes()))
        || cookies
            .iter()
            .any(|v| guesses::same(v.as_bytes(), cookie.as_bytes()))
    {
        Token::Right
    } else if bearer.is_none() && cookies.is_empty() {
        Token::Missing
    } else {
        let mut given = bearer.unwrap_or_default().to_string();
        for c in cookies {
            given.push('\n');
            given.push_str(c);
        }
        Token::Wrong(given)
    }
}

async fn status(State(st): State<AppState>) -> Response {
    Json(st.hub.snapshot()).into_response()
}

async fn start(State(st): State<AppState>, Args(p): Args) -> Response {
    run(&st, Command::Start { seconds: p.seconds }).await
}

async fn stop(State(st): State<AppState>, Args(_): Args) -> Response {
    run(&st, Command::Stop).await
}

async fn clip(State(st): State<AppState>, Args(p): Args) -> Response {
    match p.seconds {
        Some(seconds) => run(&st, Command::Clip { seconds }).await,
        None => error(StatusCode::BAD_REQUEST, "clip needs `seconds`"),
    }
}

async fn mark(State(st): State<AppState>, Args(p): Args) -> Response {
    match p.text {
        Some(text) => run(&st, Command::Mark { text }).await,
        None => error(StatusCode::BAD_REQUEST, "mark needs `text`"),
    }
}

/// A command's arguments: query parameters, overridden by a JSON body when there is one.
/// Either one not understood is answered as every error is, in JSON.
struct Args(Params);

impl<S: Send + Sync> axum::extract::FromRequest<S> for Args {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let q = Query::<Params>::from_request_parts(&mut parts, state).await;
        let body = Bytes::from_request(Request::from_parts(parts, body), state).await;
        let body = body.map_err(|e| {
            error(
                e.status(),
                &format!(
                    "{} (a command's body is at most {} kB)",
                    e.body_text(),
                    MAX_BODY >> 10
                ),
            )
        })?;
        let Query(q) = q.map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the query must be like ?seconds=10 or ?text=...: {}",
                    e.body_text()
                        .trim_start_matches("Failed to deserialize query string: ")
                ),
            )
        })?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Args(q));
        }
        let b: Params = serde_json::from_slice(&body).map_err(|e| {
            error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "the body must be JSON like {{\"seconds\": 10}} or {{\"text\": \"...\"}}: {e}"
                ),
            )
        })?;
        Ok(Args(Params {
            seconds: b.seconds.or(q.seconds),
            text: b.text.or(q.text),
        }))
    }
}

/// A path the API does not have: answered in JSON under `/api/`, in a line of text
/// elsewhere.
async fn not_found(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        error(
            StatusCode::NOT_FOUND,
            &format!(
                "no such request: {}; the commands are POST /api/start, /api/stop, /api/clip \
                 and /api/mark, and GET /api/status",
                uri.path()
            ),
        )
    } else {
        (
            StatusCode::NOT_FOUND,
            format!(
                "no such page: {}; the recorder's page is at /, its API under /api/\n",
                uri.path()
            ),
        )
            .into_response()
    }
}

/// A known path asked with a method it does not take (`GET /api/start`, say).
async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let commands = ["/api/start", "/api/stop", "/api/clip", "/api/mark"];
    let hint = if commands.contains(&uri.path()) {
        "; commands change the recorder and are sent with POST"
    } else {
        ""
    };
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        &format!("{} does not take {method}{hint}", uri.path()),
    )
}

async fn run(st: &AppState, command: Command) -> Response {
    let text = command.to_string();
    match st
        .bus
        .request(command, Origin::new(TriggerSource::Api, text))
        .await
    {
        Ok(reply) => {
            let code = match reply.outcome {
                Outcome::Rejected(_) => StatusCode::BAD_REQUEST,
                Outcome::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::OK,
            };
            let body = CommandResponse {
                ok: !matches!(reply.outcome, Outcome::Rejected(_) | Outcome::Failed(_)),
                outcome: reply.outcome.kind().as_str().into(),
                message: reply.outcome.message().into(),
                state: reply.state.as_str().into(),
                files: reply.files,
            };
            (code, Json(body)).into_response()
        }
        Err(e @ BusError::Closed) | Err(e @ BusError::Timeout(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
    }
}

fn error(code: StatusCode, message: &str) -> Response {
    let body = CommandResponse {
        ok: false,
        outcome: "error".into(),
        message: message.into(),
        state: String::new(),
        files: Vec::new(),
    };
    (code, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri("/api/start");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn cross_site_and_rebinding_requests_are_refused() {
        let local = ("host", "127.0.0.1:8787");
        let json = ("content-type", "application/json");
        assert_eq!(refusal(&req("POST", &[local, json]), false), None);
        assert_eq!(
            refusal(&req("POST", &[local]), false),
            None,
            "no body: query parameters"
        );
        assert_eq!(
            refusal(&req("GET", &[("host", "localhost:8787")]), false),
            None
        );
        assert_eq!(refusal(&req("GET", &[("host", "[::1]:8787")]), false), None);
        let same = ("origin", "http://127.0.0.1:8787");
        assert_eq!(refusal(&req("POST", &[local, json, same]), false), None);
        // A form from any page, or a script's text/plain: refused.
        let evil = ("origin", "http://evil.example");
        let plain = ("content-type", "text/plain");
        assert_eq!(
            refusal(&req("POST", &[local, plain, evil]), false)
                .unwrap()
                .0,
            403
        );
        assert_eq!(
            refusal(&req("POST", &[local, plain]), false).unwrap().0,
            415
        );
        let form = ("content-type", "application/x-www-form-urlencoded");
        assert_eq!(refusal(&req("POST", &[local, form]), false).unwrap().0, 415);
        assert_eq!(
            refusal(&req("POST", &[local, ("origin", "null")]), false)
                .unwrap()
                .0,
            403
        );
        // DNS rebinding: the page's own name in Host.
        let rebound = ("host", "evil.example:8787");
        assert_eq!(refusal(&req("GET", &[rebound]), false).unwrap().0, 421);
        // With a token, any name may be used (the token keeps others out)...
        assert_eq!(refusal(&req("GET", &[rebound]), true), None);
        // ... but not from another site's page.
        assert_eq!(
            refusal(&req("POST", &[rebound, json, evil]), true)
                .unwrap()
                .0,
            403
        );
    }

    #[test]
    fn host_names_are_taken_from_host_headers() {
        assert_eq!(host_name("127.0.0.1:8787"), "127.0.0.1");
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("localhost"), "localhost");
        assert!(is_loopback_name("LOCALHOST."));
        assert!(is_loopback_name("127.2.3.4"));
        assert!(is_loopback_name("rig.localhost"));
        assert!(!is_loopback_name("evil.example"));
        assert!(!is_loopback_name("127.0.0.1.evil.example"));
        assert!(!is_loopback_name(""));
    }
}
