//! The rig's web page and what it reads (served by the API server, under its rules).
//!
//! - `GET /` — one page (`page.html`, compiled into the binary): state, cameras' live
//!   views, buttons, the recordings by day, a frame-by-frame viewer.
//! - `GET /api/cameras/{name}/snapshot.jpg` — the newest frame in the ring.
//! - `GET /api/cameras/{name}/live.mjpeg[?fps=N]` — `multipart/x-mixed-replace` of the
//!   JPEGs already in the ring, ≤ 10 frames/s per viewer by default, at most
//!   [`MAX_VIEWERS`] viewers. Nothing is decoded or encoded: the newest frame is copied out
//!   of the ring under its lock (a few µs for 20 kB) at most once every [`SHARED_FOR`]
//!   per camera, and the viewers share that copy, so a slow viewer never holds ring
//!   memory and many viewers do not contend with capture for the lock.
//! - `GET /api/recordings` (and `/{id}`) — the recordings on disk (`crate::recordings`).
//! - `GET /api/recordings/{id}/files/{name}` — a file, with HTTP Range.
//! - `GET /api/recordings/{id}/report.html` — its quality report (`crate::report`).
//! - `DELETE /api/recordings/{id}` — every file of a recording, never one being written.
//! - `POST /api/recordings/{id}/repair` — finishes the files of a recording a crash left
//!   unfinished, as `hindsight repair` does; never one being written.
//! - `GET /api/recordings/{id}/frames/{camera}/{n}.jpg` — frame number `n` (the sidecar's
//!   `frame_number`) byte for byte as stored in the MKV; `?near=1` gives the first frame
//!   at or after `n` instead of 404, for scrubbing. Its number, LSL and wall times, and
//!   its neighbours' numbers come in `X-` headers.
//!
//! Names a client sends are only compared with names found by listing the recordings
//! root (`recordings::scan`, which follows no link); nothing a client sends is joined
//! into a path.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use tower::ServiceExt;

use super::{error, AppState};
use crate::capture::Camera;
use crate::recordings::{self, FrameError};

/// Live viewers at once, over all cameras.
pub const MAX_VIEWERS: usize = 32;
/// A live viewer's default and highest frame rates.
const LIVE_FPS: f64 = 10.0;
const LIVE_FPS_MAX: f64 = 30.0;
const BOUNDARY: &str = "hindsightframe";

const PAGE: &str = include_str!("page.html");

/// Where the login form is (the only path served without the token when one is set).
pub const LOGIN: &str = "/login";
/// The cookie the login form sets: HttpOnly (no script reads it), SameSite=Strict (no
/// other site's page sends it).
pub const TOKEN_COOKIE: &str = "hindsight_token";

/// The token as the cookie carries it (percent-encoded: a token may hold any character).
pub fn cookie_value(token: &str) -> String {
    percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC).to_string()
}

const LOGIN_PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>hindsight: log in</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 30rem; margin: 2rem auto">
<h1>hindsight</h1><p>This recorder asks for its API token (the value of the environment
variable that <code>api.token_env</code> names).</p>
<form method="post" action="/login"><input type="password" name="token" autofocus
 autocomplete="current-password" style="width: 20rem"> <button>Log in</button></form>
<p style="color: #c0262d">{why}</p></body></html>"#;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(page))
        .route(LOGIN, get(login_form).post(login))
        // Browsers ask for it on every page (the report too): no icon, and no error.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/api/cameras/{name}/snapshot.jpg", get(snapshot))
        .route("/api/cameras/{name}/live.mjpeg", get(live))
        .route("/api/recordings", get(list))
        .route("/api/recordings/{id}", get(one).delete(delete))
        .route("/api/recordings/{id}/files/{name}", get(file))
        .route("/api/recordings/{id}/report.html", get(report))
        .route("/api/recordings/{id}/repair", post(repair))
        .route("/api/recordings/{id}/frames/{camera}/{n}", get(frame))
}

async fn page() -> Response {
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            // The page loads nothing from elsewhere and may not be framed by another site.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' blob: data:; style-src 'self' 'unsafe-inline'; \
                 script-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

async fn login_form() -> Response {
    Html(LOGIN_PAGE.replace("{why}", "")).into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(st): State<AppState>,
    peer: Option<axum::Extension<super::guesses::Peer>>,
    form: axum::Form<LoginForm>,
) -> Response {
    let Some(token) = &st.token else {
        // No token is set: nothing to log in to.
        return axum::response::Redirect::to("/").into_response();
    };
    if !super::guesses::same(form.token.as_bytes(), token.as_bytes()) {
        st.guesses
            .wrong(peer.map(|p| p.0 .0), form.token.as_bytes());
        tracing::warn!("the web page's login was refused: a wrong token");
        return (
            StatusCode::UNAUTHORIZED,
            Html(LOGIN_PAGE.replace("{why}", "That is not the token.")),
        )
            .into_response();
    }
    let cookie = format!(
        "{TOKEN_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/",
        cookie_value(token)
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

fn not_found(what: &str) -> Response {
    error(StatusCode::NOT_FOUND, what)
}

fn camera<'a>(st: &'a AppState, name: &str) -> Option<&'a Arc<Camera>> {
    st.hub.cameras().iter().find(|c| c.setup.name == name)
}

fn no_camera(st: &AppState, name: &str) -> Response {
    let known: Vec<&str> = st
        .hub
        .cameras()
        .iter()
        .map(|c| c.setup.name.as_str())
        .collect();
    not_found(&format!(
        "no camera `{name}` (there are: {})",
        known.join(", ")
    ))
}

/// The newest frame in a camera's ring, copied out under its lock: (frame number, LSL
/// time, JPEG).
fn newest(cam: &Camera) -> Option<(u64, f64, Arc<[u8]>)> {
    let state = cam.state.lock();
    let f = state.ring.newest()?;
    Some((
        f.meta.seq,
        f.meta.capture.as_secs_f64(),
        Arc::from(&f.data[..]),
    ))
}

/// How old a copy of a camera's newest frame may be and still be sent to a live view:
/// viewers share copies, so twenty of them at 10 frames/s take the ring's lock about 20
/// times a second, not 200.
const SHARED_FOR: Duration = Duration::from_millis(40);

/// The last copy of each camera's newest frame, shared by its live views.
#[derive(Default)]
pub(super) struct LiveFrames {
    copies: parking_lot::Mutex<std::collections::HashMap<usize, (std::time::Instant, Shared)>>,
}

type Shared = (u64, f64, Arc<[u8]>);

impl LiveFrames {
    fn newest(&self, cam: &Camera) -> Option<Shared> {
        let index = cam.setup.index;
        if let Some((at, shared)) = self.copies.lock().get(&index) {
            if at.elapsed() < SHARED_FOR {
                return Some(shared.clone());
            }
        }
        let fresh = newest(cam)?;
        self.copies
            .lock()
            .insert(index, (std::time::Instant::now(), fresh.clone()));
        Some(fresh)
    }
}

fn jpeg_response(jpeg: Vec<u8>, headers: &[(&'static str, String)]) -> Response {
    let mut r = (
        [
            (header::CONTENT_TYPE, "image/jpeg"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        jpeg,
    )
        .into_response();
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            r.headers_mut().insert(*k, v);
        }
    }
    r
}

async fn snapshot(State(st): State<AppState>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(cam) = camera(&st, &name) else {
        return no_camera(&st, &name);
    };
    match newest(cam) {
        Some((seq, lsl, jpeg)) => jpeg_response(
            jpeg.to_vec(),
            &[
                ("x-frame-number", seq.to_string()),
                ("x-lsl-time", format!("{lsl:.9}")),
            ],
        ),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("camera `{name}` has no frame yet"),
        ),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LiveParams {
    fps: Option<f64>,
}

async fn live(
    State(st): State<AppState>,
    UrlPath(name): UrlPath<String>,
    Query(p): Query<LiveParams>,
) -> Response {
    let Some(cam) = camera(&st, &name).cloned() else {
        return no_camera(&st, &name);
    };
    let fps = p.fps.unwrap_or(LIVE_FPS);
    if !(fps > 0.0 && fps <= LIVE_FPS_MAX) {
        return error(
            StatusCode::BAD_REQUEST,
            &format!("fps must be above 0 and at most {LIVE_FPS_MAX}"),
        );
    }
    let Ok(slot) = st.viewers.clone().try_acquire_owned() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{MAX_VIEWERS} live views are open already; close one and try again"),
        );
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
    let shared = st.live.clone();
    tokio::spawn(async move {
        let _slot = slot;
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last = None;
        loop {
            tick.tick().await;
            let Some((seq, lsl, jpeg)) = shared.newest(&cam) else {
                continue;
            };
            if last == Some(seq) {
                continue;
            }
            last = Some(seq);
            let mut part = format!(
                "--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\
                 X-Frame-Number: {seq}\r\nX-LSL-Time: {lsl:.9}\r\n\r\n",
                jpeg.len()
            )
            .into_bytes();
            part.extend_from_slice(&jpeg);
            part.extend_from_slice(b"\r\n");
            // A viewer that has gone (or is too slow to take one frame) ends here.
            if tx.send(Ok(part)).await.is_err() {
                break;
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    (
        [
            (
                header::CONTENT_TYPE,
                format!("multipart/x-mixed-replace; boundary={BOUNDARY}"),
            ),
            (header::CACHE_CONTROL, "no-store".to_string()),
        ],
        body,
    )
        .into_response()
}

/// The paths being written now.
fn open_files(st: &AppState) -> Vec<String> {
    st.hub.current_files()
}

async fn list(State(st): State<AppState>) -> Response {
    let root = st.root.to_path_buf();
    let open = open_files(&st);
    let described = st.described.clone();
    let listed = tokio::task::spawn_blocking(move || {
        let found = recordings::scan(&root);
        described.keep_only(found.iter().map(|r| r.key.as_str()));
        let mut all: Vec<_> = found.iter().map(|r| described.describe(r, &open)).collect();
        // Newest first, as a person looks for the last take.
        all.sort_by(|a, b| (&b.day, &b.started, &b.id).cmp(&(&a.day, &a.started, &a.id)));
        all
    })
    .await
    .unwrap_or_default();
    Json(serde_json::json!({ "recordings": listed })).into_response()
}

async fn one(State(st): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let root = st.root.to_path_buf();
    let open = open_files(&st);
    let described = st.described.clone();
    let found = tokio::task::spawn_blocking(move || {
        recordings::find(&root, &id)
            .map(|r| described.describe(&r, &open))
            .ok_or(id)
    })
    .await;
    match found {
        Ok(Ok(info)) => Json(info).into_response(),
        Ok(Err(id)) => not_found(&format!("no recording `{id}`")),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the listing failed"),
    }
}

async fn delete(State(st): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let root = st.root.to_path_buf();
    let open = open_files(&st);
    // Listing and deleting touch the disk: off the thread that serves live views.
    let done = tokio::task::spawn_blocking(move || delete_recording(&root, &id, &open)).await;
    match done {
        Ok(r) => r,
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the delete failed"),
    }
}

/// Recording `id`, if no file of it is being written, by this recorder (`open`) or by
/// another hindsight sharing the root (another rig); else why not: 404, or 409 with
/// `busy` after why.
fn idle_recording(
    root: &Path,
    id: &str,
    open: &[String],
    busy: &str,
) -> Result<recordings::StoredRecording, (StatusCode, String)> {
    let Some(rec) = recordings::find(root, id) else {
        return Err((StatusCode::NOT_FOUND, format!("no recording `{id}`")));
    };
    if rec
        .files
        .iter()
        .any(|p| open.iter().any(|o| Path::new(o) == p) || crate::writer::files::being_written(p))
    {
        return Err((
            StatusCode::CONFLICT,
            format!("recording `{id}` is being written: {busy}"),
        ));
    }
    Ok(rec)
}

/// Deletes every file of recording `id`, unless one is in `open`.
fn delete_recording(root: &Path, id: &str, open: &[String]) -> Response {
    let rec = match idle_recording(root, id, open, "stop it first") {
        Ok(rec) => rec,
        Err((code, why)) => return error(code, &why),
    };
    let mut failed = Vec::new();
    for f in &rec.files {
        if let Err(e) = std::fs::remove_file(f) {
            failed.push(format!("{}: {e}", f.display()));
        }
    }
    if !failed.is_empty() {
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("could not delete: {}", failed.join("; ")),
        );
    }
    remove_emptied_folders(root, &rec.files);
    tracing::warn!(
        "deleted recording {} ({} files) at the web page's request",
        rec.key,
        rec.files.len()
    );
    Json(serde_json::json!({"ok": true, "deleted": rec.files.len(), "id": id})).into_response()
}

async fn repair(State(st): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let root = st.root.to_path_buf();
    let open = open_files(&st);
    let hub = st.hub.clone();
    // Reads and rewrites files: off the thread that serves live views. One at a time: a
    // second Repair of the same take (a double click) would find its files held by the
    // first and be told they are being recorded.
    static ONE_AT_A_TIME: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let done = tokio::task::spawn_blocking(move || {
        let _one = ONE_AT_A_TIME.lock();
        let r = repair_recording(&root, &id, &open);
        hub.recheck_unfinished();
        r
    })
    .await;
    match done {
        Ok(r) => r,
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the repair failed"),
    }
}

/// Finishes every video (with its sidecars) and WAV of recording `id`, unless one is in
/// `open` or held by another recorder; says what each file needed.
fn repair_recording(root: &Path, id: &str, open: &[String]) -> Response {
    use crate::recordings::finish;
    let busy = "it is finished when it stops, not by a repair (nothing was changed)";
    let rec = match idle_recording(root, id, open, busy) {
        Ok(rec) => rec,
        Err((code, why)) => return error(code, &why),
    };
    let name = |p: &Path| {
        p.file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into())
    };
    let (mut said, mut failed) = (Vec::new(), Vec::new());
    // The sidecars are finished with their video.
    for p in rec
        .files
        .iter()
        .filter(|p| finish::is_wav(p) || p.extension().is_some_and(|e| e == "mkv"))
    {
        match finish::finish_file(p) {
            Ok(what) => said.push(serde_json::json!({"name": name(p), "said": what})),
            Err(why) => failed.push(why),
        }
    }
    let message = said
        .iter()
        .map(|f| {
            format!(
                "{}: {}",
                f["name"].as_str().unwrap_or(""),
                f["said"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    if !failed.is_empty() {
        let done = if message.is_empty() {
            String::new()
        } else {
            format!(" (done: {message})")
        };
        let why = format!("could not finish: {}{done}", failed.join("; "));
        tracing::error!("repair of recording {}: {why}", rec.key);
        return error(StatusCode::INTERNAL_SERVER_ERROR, &why);
    }
    if said.is_empty() {
        let message = format!(
            "recording `{id}` has no video or WAV to finish (a camera that delivered no \
             frame: its events say why)"
        );
        return Json(serde_json::json!({"ok": true, "id": id, "files": said, "message": message}))
            .into_response();
    }
    tracing::warn!(
        "repair of recording {} at the web page's request: {message}",
        rec.key
    );
    Json(serde_json::json!({"ok": true, "id": id, "files": said, "message": message}))
        .into_response()
}

/// Removes the `video`/`audio` folders the deleted `files` left empty, and then their day
/// folder if that is empty too; never today's or yesterday's (local time, as the writer
/// names them), where a recording may be creating its folders at this moment.
fn remove_emptied_folders(root: &Path, files: &[PathBuf]) {
    let now = crate::clock::WallTime::now().to_local();
    let recent = [now, now - chrono::Duration::days(1)].map(|d| d.format("%Y_%m_%d").to_string());
    let mut days: Vec<PathBuf> = Vec::new();
    for f in files {
        let Some(sub) = f.parent() else { continue };
        let Some(day) = sub.parent() else { continue };
        let name = day.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if day.parent() != Some(root) || recent.iter().any(|r| r == name) {
            continue;
        }
        // Fails unless empty: exactly what is wanted.
        let _ = std::fs::remove_dir(sub);
        if !days.iter().any(|d| d == day) {
            days.push(day.to_path_buf());
        }
    }
    for day in days {
        if std::fs::remove_dir(&day).is_ok() {
            tracing::info!("removed the emptied day folder {}", day.display());
        }
    }
}

/// The path of file `name` of recording `id`, or why there is none.
fn file_of(root: &Path, id: &str, name: &str) -> Result<PathBuf, String> {
    recordings::find(root, id)
        .ok_or_else(|| format!("no recording `{id}`"))?
        .files
        .into_iter()
        .find(|p| p.file_name().and_then(|n| n.to_str()) == Some(name))
        .ok_or_else(|| format!("recording `{id}` has no file `{name}`"))
}

async fn file(
    State(st): State<AppState>,
    UrlPath((id, name)): UrlPath<(String, String)>,
    req: Request,
) -> Response {
    let root = st.root.to_path_buf();
    let found = {
        let (id, name) = (id.clone(), name.clone());
        tokio::task::spawn_blocking(move || file_of(&root, &id, &name)).await
    };
    let path = match found {
        Ok(Ok(p)) => p,
        Ok(Err(why)) => return not_found(&why),
        Err(_) => return error(StatusCode::INTERNAL_SERVER_ERROR, "the lookup failed"),
    };
    let mime = match Path::new(&name).extension().and_then(|e| e.to_str()) {
        Some("mkv") => "video/x-matroska",
        Some("wav") => "audio/wav",
        Some("csv") => "text/csv",
        _ => "application/octet-stream",
    };
    let served = tower_http::services::ServeFile::new_with_mime(&path, &mime.parse().unwrap())
        .oneshot(req)
        .await;
    match served {
        Ok(r) => {
            let mut r = r.map(Body::new);
            if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
            }
            r
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

async fn report(State(st): State<AppState>, UrlPath(id): UrlPath<String>) -> Response {
    let root = st.root.to_path_buf();
    let open = open_files(&st);
    let described = st.described.clone();
    let made = tokio::task::spawn_blocking(move || {
        let r = recordings::find(&root, &id).ok_or_else(|| format!("no recording `{id}`"))?;
        let info = described.describe(&r, &open);
        crate::report::html(&r, &info).map_err(|e| e.to_string())
    })
    .await;
    match made {
        Ok(Ok(html)) => ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Ok(Err(why)) if why.starts_with("no recording") => not_found(&why),
        Ok(Err(why)) => error(StatusCode::INTERNAL_SERVER_ERROR, &why),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the report failed"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FrameParams {
    near: Option<u8>,
}

async fn frame(
    State(st): State<AppState>,
    UrlPath((id, camera, n)): UrlPath<(String, String, String)>,
    Query(p): Query<FrameParams>,
) -> Response {
    let root = st.root.to_path_buf();
    let Some(n) = n.strip_suffix(".jpg").and_then(|n| n.parse::<u64>().ok()) else {
        return not_found(&format!(
            "`{n}` is no frame: ask for <frame number>.jpg, e.g. 1234.jpg"
        ));
    };
    let near = p.near == Some(1);
    let found =
        tokio::task::spawn_blocking(move || recordings::frame(&root, &id, &camera, n, near)).await;
    match found {
        Ok(Ok(f)) => {
            let mut headers = vec![
                ("x-frame-number", f.row.frame.to_string()),
                ("x-lsl-time", secs(f.row.lsl_ns)),
                ("x-unix-time", secs(f.row.unix_ns)),
                ("x-pts", secs(f.row.pts_ns)),
                ("x-pre-trigger", u8::from(f.row.pre_trigger).to_string()),
                ("x-frame-position", f.position.to_string()),
                ("x-frame-count", f.count.to_string()),
                (
                    "x-prev-frame",
                    f.prev.map_or(String::new(), |v| v.to_string()),
                ),
                (
                    "x-next-frame",
                    f.next.map_or(String::new(), |v| v.to_string()),
                ),
            ];
            // What the frame was exposed with, where its sidecar says (a libcamera
            // camera's; empty for a value the frame did not report).
            if let Some(e) = f.row.exposure {
                headers.extend([
                    (
                        "x-exposure-us",
                        e.time_us.map_or(String::new(), |t| t.to_string()),
                    ),
                    (
                        "x-analogue-gain",
                        e.analogue_gain.map_or(String::new(), |g| g.to_string()),
                    ),
                    (
                        "x-digital-gain",
                        e.digital_gain.map_or(String::new(), |g| g.to_string()),
                    ),
                ]);
            }
            jpeg_response(f.jpeg, &headers)
        }
        Ok(Err(e @ FrameError::Read { .. })) => {
            error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
        Ok(Err(e @ FrameError::NotYetWritten { .. })) => {
            error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string())
        }
        Ok(Err(e)) => not_found(&e.to_string()),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "the frame lookup failed"),
    }
}

fn secs(ns: i64) -> String {
    format!(
        "{}{}.{:09}",
        if ns < 0 { "-" } else { "" },
        ns.unsigned_abs() / 1_000_000_000,
        ns.unsigned_abs() % 1_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emptied_folders_go_but_not_todays_or_yesterdays() {
        let root = tempfile::tempdir().unwrap();
        let now = crate::clock::WallTime::now().to_local();
        let days = [
            "2020_01_01".to_string(),
            now.format("%Y_%m_%d").to_string(),
            (now - chrono::Duration::days(1))
                .format("%Y_%m_%d")
                .to_string(),
        ];
        let mut files = Vec::new();
        for d in &days {
            for sub in ["video", "audio"] {
                let dir = root.path().join(d).join(sub);
                std::fs::create_dir_all(&dir).unwrap();
                // What a delete has just removed.
                files.push(dir.join("rec_x_cam0.mkv"));
            }
        }
        // A file that was not deleted keeps its folder.
        let kept = root.path().join("2020_01_02/video");
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(kept.join("other.mkv"), b"x").unwrap();
        files.push(kept.join("rec_x_cam0.mkv"));
        remove_emptied_folders(root.path(), &files);
        assert!(!root.path().join("2020_01_01").exists());
        assert!(root.path().join(&days[1]).join("video").exists());
        assert!(root.path().join(&days[2]).join("audio").exists());
        assert!(kept.join("other.mkv").exists());
    }
}
