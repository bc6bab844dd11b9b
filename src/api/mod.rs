//! The local control API: HTTP on 127.0.0.1 by default (SPEC section 8a).
//!
//! `GET /api/status` returns the [`Status`](crate::status::Status) snapshot as JSON;
//! `POST /api/start` (optional `seconds`), `/api/stop`, `/api/clip` (`seconds`),
//! `/api/mark` (`text`) send commands on the bus and answer with their outcome. Parameters
//! come as a JSON body or as query parameters, so `curl -X POST
//! 'localhost:8787/api/start?seconds=60'` works. When `api.token_env` is set, every request
//! needs `Authorization: Bearer <token>`.
//!
//! It runs a small single-threaded tokio runtime on its own thread.

pub mod client;

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

use crate::control::{BusError, CommandBus, StatusHub};
use crate::recorder::{Command, Origin, Outcome};

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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    seconds: Option<f64>,
    text: Option<String>,
}

/// Binds the API's address now, so that a taken port is reported before anything starts.
pub fn bind(addr: std::net::SocketAddr) -> Result<TcpListener, String> {
    let l = TcpListener::bind(addr)
        .map_err(|e| format!("cannot listen on {addr} (api.listen): {e}"))?;
    l.set_nonblocking(true)
        .map_err(|e| format!("cannot configure the API socket: {e}"))?;
    Ok(l)
}

/// Serves the API on `listener` from a thread of its own.
pub fn spawn(
    listener: TcpListener,
    bus: CommandBus,
    hub: Arc<StatusHub>,
    token: Option<String>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let state = AppState {
        bus,
        hub,
        token: token.map(Arc::from),
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
                if let Err(e) = axum::serve(listener, router(state)).await {
                    tracing::error!("the API server stopped: {e}");
                }
            });
        })
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/status", get(status))
        .route("/api/start", post(start))
        .route("/api/stop", post(stop))
        .route("/api/clip", post(clip))
        .route("/api/mark", post(mark))
        .layer(middleware::from_fn_with_state(state.clone(), auth))
        .with_state(state)
}

async fn auth(State(st): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &st.token {
        let ok = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| t == &**token);
        if !ok {
            return error(
                StatusCode::UNAUTHORIZED,
                "a valid `Authorization: Bearer` token is required",
            );
        }
    }
    next.run(req).await
}

async fn status(State(st): State<AppState>) -> Response {
    Json(st.hub.snapshot()).into_response()
}

async fn start(State(st): State<AppState>, q: Query<Params>, body: Bytes) -> Response {
    match params(q, &body) {
        Ok(p) => run(&st, Command::Start { seconds: p.seconds }).await,
        Err(r) => *r,
    }
}

async fn stop(State(st): State<AppState>, q: Query<Params>, body: Bytes) -> Response {
    match params(q, &body) {
        Ok(_) => run(&st, Command::Stop).await,
        Err(r) => *r,
    }
}

async fn clip(State(st): State<AppState>, q: Query<Params>, body: Bytes) -> Response {
    match params(q, &body) {
        Ok(Params {
            seconds: Some(seconds),
            ..
        }) => run(&st, Command::Clip { seconds }).await,
        Ok(_) => error(StatusCode::BAD_REQUEST, "clip needs `seconds`"),
        Err(r) => *r,
    }
}

async fn mark(State(st): State<AppState>, q: Query<Params>, body: Bytes) -> Response {
    match params(q, &body) {
        Ok(Params {
            text: Some(text), ..
        }) => run(&st, Command::Mark { text }).await,
        Ok(_) => error(StatusCode::BAD_REQUEST, "mark needs `text`"),
        Err(r) => *r,
    }
}

/// Query parameters, overridden by a JSON body when there is one.
fn params(Query(q): Query<Params>, body: &[u8]) -> Result<Params, Box<Response>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(q);
    }
    let b: Params = serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            &format!(
                "the body must be JSON like {{\"seconds\": 10}} or {{\"text\": \"...\"}}: {e}"
            ),
        ))
    })?;
    Ok(Params {
        seconds: b.seconds.or(q.seconds),
        text: b.text.or(q.text),
    })
}

async fn run(st: &AppState, command: Command) -> Response {
    let text = command.to_string();
    match st.bus.request(command, Origin::new("api", text)).await {
        Ok(reply) => {
            let code = match reply.outcome {
                Outcome::Rejected(_) => StatusCode::BAD_REQUEST,
                Outcome::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::OK,
            };
            let body = CommandResponse {
                ok: !matches!(reply.outcome, Outcome::Rejected(_) | Outcome::Failed(_)),
                outcome: reply.outcome.kind().into(),
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
