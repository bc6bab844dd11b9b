//! The web page in a real browser: Debian's chromium, driven through chromedriver
//! (WebDriver, the `fantoccini` crate), against a running recorder with the synthetic
//! camera (frame numbers in the pixels). What a person does: open the page, see the live
//! view move, press Start and Stop, find the recording in the list, step through it frame
//! by frame, open its report. Frame numbers are read from the pixels the browser shows
//! (drawn into a canvas), not from what the page says. Screenshots of each step are kept
//! in `target/tmp/browser-screenshots/` (the run's output folder), not committed.

mod common;

use std::io::Write as _;
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const W: usize = 320;
const H: usize = 240;

struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    require_tool("chromedriver");
    require_tool("chromium");
    let port = free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let since = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "chromedriver does not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Driver { child, port }
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn browser(driver: &Driver, profile: &std::path::Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1800",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", format!("--user-data-dir={}", profile.display()),
            ],
        },
        "goog:loggingPrefs": { "browser": "ALL" },
    });
    let caps = caps.as_object().unwrap().clone().into_iter().collect();
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a chromium session")
}

/// A runtime for the WebDriver client, a fresh browser profile (kept while the browser
/// runs) and a browser session.
fn open_browser(driver: &Driver) -> (tokio::runtime::Runtime, tempfile::TempDir, Client) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let profile = tempfile::tempdir().unwrap();
    let c = rt.block_on(browser(driver, profile.path()));
    (rt, profile, c)
}

/// The frame number in the pixels of the `<img>` `selector` shows, read through a canvas.
async fn shown_frame(c: &Client, selector: &str) -> Option<u64> {
    let luma = c
        .execute(
            "const img = document.querySelector(arguments[0]);
             if (!img || !img.naturalWidth) return null;
             const cv = document.createElement('canvas');
             cv.width = img.naturalWidth; cv.height = img.naturalHeight;
             const g = cv.getContext('2d');
             g.drawImage(img, 0, 0);
             const d = g.getImageData(0, 0, cv.width, cv.height).data;
             const out = new Array(cv.width * cv.height);
             for (let i = 0; i < out.length; i++)
               out[i] = Math.round(0.299 * d[4*i] + 0.587 * d[4*i+1] + 0.114 * d[4*i+2]);
             return [cv.width, cv.height, out];",
            vec![json!(selector)],
        )
        .await
        .ok()?;
    let (w, h) = (luma[0].as_u64()? as usize, luma[1].as_u64()? as usize);
    let px: Vec<u8> = luma[2]
        .as_array()?
        .iter()
        .map(|v| v.as_u64().unwrap_or(0) as u8)
        .collect();
    hindsight::source::synthetic::decode_frame_number(&px, w, h)
}

async fn text(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits (bounded) until `check` holds.
async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let since = Instant::now();
    while !check().await {
        assert!(since.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the element with id `id`, as a person does.
async fn click(c: &Client, id: &str) {
    c.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// Waits (bounded) until the text of `css` satisfies `check`.
async fn until_text(c: &Client, what: &str, css: &str, check: impl Fn(&str) -> bool) {
    until(what, Duration::from_secs(10), || async {
        check(&text(c, css).await)
    })
    .await;
}

/// The frame number the viewer says it shows (its image's `data-frame`).
async fn viewer_frame(c: &Client) -> Option<u64> {
    c.find(Locator::Id("vimg"))
        .await
        .ok()?
        .attr("data-frame")
        .await
        .ok()?
        .and_then(|f| f.parse().ok())
}

/// Waits (bounded) until the viewer says it shows frame `n` and its pixels say `n`.
async fn until_viewer_shows(c: &Client, n: u64) {
    until(
        &format!("the viewer shows frame {n}"),
        Duration::from_secs(10),
        || async { viewer_frame(c).await == Some(n) && shown_frame(c, "#vimg").await == Some(n) },
    )
    .await;
}

/// Types frame number `n` into the viewer and presses Go.
async fn go_to(c: &Client, n: u64) {
    let input = c.find(Locator::Id("vframe")).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(&n.to_string()).await.unwrap();
    click(c, "vgo").await;
}

/// Clicks Stop and waits (bounded) until the page says it is buffering again.
async fn stop(c: &Client) {
    click(c, "stop").await;
    until_text(c, "the state is buffering again", "#state", |t| {
        t == "buffering"
    })
    .await;
}

/// Opens the recording of list row `row` (a CSS selector) in the viewer.
async fn view(c: &Client, row: &str) {
    c.find(Locator::Css(&format!("{row} button.view")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

/// The id of the recording a camera's file belongs to (its name without `_<camera>.mkv`).
fn id_of(mkv: &std::path::Path, camera: &str) -> String {
    let name = mkv.file_name().unwrap().to_str().unwrap();
    name.strip_suffix(&format!("_{camera}.mkv"))
        .unwrap()
        .to_string()
}

async fn shot(c: &Client, name: &str) {
    if let Ok(png) = c.screenshot().await {
        let _ = std::fs::write(screenshots().join(format!("{name}.png")), png);
    }
}

/// The browser's console, as chromedriver kept it (level, message).
fn console(driver: &Driver, session: &str) -> Vec<(String, String)> {
    let r: Value = reqwest::blocking::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/session/{session}/se/log",
            driver.port
        ))
        .json(&json!({"type": "browser"}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    r["value"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["level"].as_str().unwrap_or("").to_string(),
                        e["message"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_person_records_and_steps_through_the_recording_in_a_real_browser() {
    let _g = serial();
    let driver = chromedriver();
    // A second camera that is not there (a V4L2 device never plugged in): the page says
    // so, and everything else works with the camera that is. The LSL marker trigger waits
    // for an experiment's stream that is not there either.
    let markers = format!("HS_no_experiment_{}", std::process::id());
    let mut h = Hindsight::start(
        &(synthetic_config(W as u32, H as u32, 30.0, 1.0)
            + "  - name: gone\n    source: v4l2\n    device: /dev/video94\n"
            + &format!(
                "trigger:\n  lsl_markers:\n    enabled: true\n    stream: {markers}\n    start: [begin_trial]\n"
            )),
    );
    h.wait_buffered(1.0);
    let (rt, _profile, c) = open_browser(&driver);
    let session = rt.block_on(c.session_id()).unwrap().expect("a session id");
    let page = format!("http://{}/", h.api);

    // The page shows the state and a live view whose pixels move on.
    rt.block_on(async {
        c.goto(&page).await.unwrap();
        until_text(&c, "the page shows the state", "#state", |t| {
            t == "buffering"
        })
        .await;
        let img = "img[data-camera='cam0']";
        let since = Instant::now();
        let first = loop {
            if let Some(n) = shown_frame(&c, img).await {
                break n;
            }
            assert!(
                since.elapsed() < Duration::from_secs(10),
                "the live view shows no frame"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        shot(&c, "1-live").await;
        until_text(
            &c,
            "the page says the marker trigger waits",
            "#overview",
            |t| {
                t.lines()
                    .any(|l| l == format!("lsl markers: looking for marker stream `{markers}`"))
            },
        )
        .await;
        until(
            "the missing camera's caption",
            Duration::from_secs(10),
            || async {
                let mut said = Vec::new();
                for cap in c.find_all(Locator::Css("figcaption")).await.unwrap() {
                    said.push(cap.text().await.unwrap_or_default());
                }
                said.iter()
                    .any(|t| t.starts_with("gone") && t.contains("not opened yet"))
                    && said
                        .iter()
                        .any(|t| t.starts_with("cam0") && t.contains(&format!("{W}×{H}")))
            },
        )
        .await;
        // The camera's facts, the capture thread's share of a core among them (measured
        // over a second: a 30 fps test pattern this small takes a few percent at most).
        until_text(&c, "the capture thread's CPU", "figcaption", |t| {
            t.split("capture cpu ")
                .nth(1)
                .and_then(|r| r.split('%').next())
                .and_then(|n| n.parse::<f64>().ok())
                .is_some_and(|pct| pct < 80.0)
        })
        .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let later = shown_frame(&c, img).await.expect("a frame");
        assert!(
            later > first + 5,
            "the live view moved on: {first} → {later}"
        );
    });

    // Start and Stop with the page's buttons.
    rt.block_on(async {
        click(&c, "start").await;
        until_text(&c, "the state is recording", "#state", |t| t == "recording").await;
        shot(&c, "2-recording").await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        // A mark with its text, typed and clicked.
        let text_box = c.find(Locator::Id("marktext")).await.unwrap();
        text_box.send_keys("stimulus on").await.unwrap();
        click(&c, "mark").await;
        until_text(&c, "the mark is acknowledged", "#message", |t| {
            t.contains("mark")
        })
        .await;
        tokio::time::sleep(Duration::from_millis(800)).await;
        stop(&c).await;
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    assert_eq!(files.len(), 1, "Start and Stop made one file");
    let rows = read_sidecar(&files[0]);
    let id = id_of(&files[0], "cam0");

    // The recording is in the list; the viewer steps through it frame by frame.
    rt.block_on(async {
        let row = format!("tr[data-id='{id}']");
        let frames = rows.len().to_string();
        until(
            "the finished recording is listed",
            Duration::from_secs(10),
            || async {
                let listed = text(&c, &row).await;
                listed.contains(&frames)
                    && !listed.contains("recording")
                    && !listed.contains("unfinished")
            },
        )
        .await;
        view(&c, &row).await;
        let first = rows[0].frame_number;
        until_viewer_shows(&c, first).await;
        // → twice: the next two frames, as the pixels say.
        for next in &rows[1..=2] {
            c.execute(
                "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))",
                vec![],
            )
            .await
            .unwrap();
            let n = next.frame_number;
            until_viewer_shows(&c, n).await;
        }
        // A frame number typed in: frame n exactly.
        let n = rows[rows.len() / 2].frame_number;
        go_to(&c, n).await;
        until_viewer_shows(&c, n).await;
        let info = text(&c, "#frameinfo").await;
        assert!(
            info.contains(&format!("frame {n}")) && info.contains("LSL"),
            "{info}"
        );
        shot(&c, "3-viewer").await;
        // The mark is in the list and on the timeline.
        assert!(text(&c, &row).await.contains("stimulus on"));
        assert_eq!(
            c.find_all(Locator::Css(".markpin")).await.unwrap().len(),
            1,
            "one mark on the viewer's timeline"
        );
        // Scrubbing to the end shows the last frame; Play from the first moves on by itself.
        let last = rows.last().unwrap().frame_number;
        c.execute(
            "const s = document.getElementById('scrub'); s.value = 1000; \
             s.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await
        .unwrap();
        until_viewer_shows(&c, last).await;
        go_to(&c, first).await;
        until_viewer_shows(&c, first).await;
        click(&c, "play").await;
        let tenth = rows[10].frame_number;
        until(
            "Play moves past ten frames",
            Duration::from_secs(10),
            || async { viewer_frame(&c).await.is_some_and(|f| f >= tenth) },
        )
        .await;
        click(&c, "play").await;

        // The report shows its plots.
        let href = c
            .find(Locator::Css(&format!("{row} a.report")))
            .await
            .unwrap()
            .attr("href")
            .await
            .unwrap()
            .unwrap();
        c.goto(&format!("http://{}{href}", h.api)).await.unwrap();
        let plots = c.find_all(Locator::Css("figure.plot svg")).await.unwrap();
        assert_eq!(plots.len(), 2, "interval and histogram plots");
        let page_text = text(&c, "body").await;
        assert!(page_text.contains("frame interval"), "{page_text}");
        shot(&c, "4-report").await;
    });

    // A recording whose camera was lost for a while (the same files under another name,
    // its events file saying the loss and the return): the list says it beside the
    // missing frames, which a program's or a network camera's numbers never show.
    let lost_id = format!("{id}-009");
    for ext in ["mkv", "frames.csv", "events.csv"] {
        let from = files[0].with_file_name(format!("{id}_cam0.{ext}"));
        std::fs::copy(&from, from.with_file_name(format!("{lost_id}_cam0.{ext}"))).unwrap();
    }
    let events = files[0].with_file_name(format!("{lost_id}_cam0.events.csv"));
    let mut ev = std::fs::OpenOptions::new()
        .append(true)
        .open(&events)
        .unwrap();
    let (a, b) = (rows[5].lsl_time, rows[8].lsl_time);
    writeln!(ev, "{a:.9},0.0,camera_lost,camera: cam0,the stream closed").unwrap();
    writeln!(
        ev,
        "{b:.9},0.0,camera_back,camera: cam0,after 0.1 s without frames"
    )
    .unwrap();
    // And the microphone, lost and back.
    writeln!(ev, "{a:.9},0.0,audio_lost,audio: input,no audio for 5 s").unwrap();
    writeln!(ev, "{b:.9},0.0,audio_back,audio: input,after 0.1 s").unwrap();
    // And the rig short of power meanwhile (`src/power.rs`).
    writeln!(
        ev,
        "{a:.9},0.0,under_voltage,power: rpi_volt,the power supply gives too little"
    )
    .unwrap();
    drop(ev);
    // And a second camera, lost the whole take: no video, only its events file.
    let (start, stop) = (rows[0].lsl_time, rows.last().unwrap().lsl_time);
    std::fs::write(
        files[0].with_file_name(format!("{lost_id}_side.events.csv")),
        format!(
            "lsl_time,unix_time,event,source,detail\n\
             {start:.9},0.0,start,api: start,recording 9\n\
             {start:.9},0.0,camera_lost,camera: side,lost when this recording began: unplugged\n\
             {stop:.9},0.0,stop,writer: api,0 frames\n"
        ),
    )
    .unwrap();
    rt.block_on(async {
        c.goto(&page).await.unwrap();
        let row = format!("tr[data-id='{lost_id}']");
        until("the losses are listed", Duration::from_secs(10), || async {
            text(&c, &row).await.contains(
                "0 · camera lost 2× · no frames from side · audio lost 1× · under-voltage 1×",
            )
        })
        .await;
        // The viewer opens on the camera that has frames, and says why the other has none.
        view(&c, &row).await;
        until_viewer_shows(&c, rows[0].frame_number).await;
        c.execute(
            "const s = document.getElementById('vcam'); s.value = 'side'; \
             s.dispatchEvent(new Event('change'));",
            vec![],
        )
        .await
        .unwrap();
        until_text(&c, "the viewer says why", "#frameinfo", |t| {
            t == "camera side has no frames in this recording: lost: lost when this \
                  recording began: unplugged"
        })
        .await;
        assert_eq!(
            text(&c, "#vcam").await,
            "cam0\nside (no frames)",
            "the cameras to choose from"
        );
        // The recording made here lost nothing of cam0; its camera that was never there
        // (`gone`) recorded nothing, and the list says that rather than look complete.
        let made_here = text(&c, &format!("tr[data-id='{id}']")).await;
        assert!(
            made_here.contains(&format!(
                " {} 0 · camera lost 1× · no frames from gone ",
                rows.len()
            )),
            "{made_here}"
        );
    });

    // No errors in the browser's console, on the page or the report.
    let errors: Vec<_> = console(&driver, &session)
        .into_iter()
        .filter(|(level, _)| level == "SEVERE")
        .collect();
    assert!(errors.is_empty(), "console errors: {errors:?}");
    rt.block_on(c.close()).unwrap();
    assert!(h.terminate().success());
}

/// The overview's line about the disk.
fn disk_line(overview: &str) -> &str {
    overview
        .lines()
        .find(|l| l.starts_with("disk: "))
        .unwrap_or("")
}

/// The web page of `h`, open in a browser once it shows the disk's free space.
fn open_page_showing_free_space(
    driver: &Driver,
    h: &Hindsight,
) -> (tokio::runtime::Runtime, tempfile::TempDir, Client) {
    let (rt, profile, c) = open_browser(driver);
    let page = format!("http://{}/", h.api);
    rt.block_on(async {
        c.goto(&page).await.unwrap();
        until_text(&c, "the page shows the free space", "#overview", |t| {
            disk_line(t).ends_with("B free")
        })
        .await;
    });
    (rt, profile, c)
}

/// The recordings disk is unmounted while the page is open (a USB disk pulled): the page
/// says so where it showed the free space, Start answers why, and nothing is recorded;
/// once the disk is back, Start records.
#[test]
fn the_page_says_when_the_recordings_disk_is_gone_and_start_answers_why() {
    let _g = serial();
    require_tool("nsenter");
    let driver = chromedriver();
    let mut h = start_on_tiny_disk(
        32,
        &(synthetic_config(160, 120, 30.0, 1.0)
            + "audio:\n  enabled: false\nstorage:\n  min_free: 1MiB\n"),
    );
    let root = h.root.display().to_string();
    let mount = h.root.parent().unwrap().display().to_string();
    h.wait_buffered(1.0);
    let (rt, _profile, c) = open_page_showing_free_space(&driver, &h);

    in_its_namespace(&h, &["umount", "--lazy", &mount]);
    let gone = format!("disk: recordings root {root} is gone with its disk ({mount})");
    rt.block_on(async {
        until_text(&c, "the page says the disk is gone", "#overview", |t| {
            disk_line(t).starts_with(&gone) && !t.contains("MB free")
        })
        .await;
        click(&c, "start").await;
        until_text(&c, "Start answers why", "#message", |t| {
            t.contains("is gone with its disk") && t.contains("not recording")
        })
        .await;
        // The recordings list says why it cannot be read, not that there are none.
        until_text(&c, "the list says the disk is gone", "#recordings", |t| {
            t.starts_with("The recordings cannot be read: recordings root ")
                && t.contains("is gone with its disk")
                && !t.contains("No recordings yet")
        })
        .await;
        shot(&c, "5-disk-gone").await;
        assert_eq!(text(&c, "#state").await, "buffering");
    });
    assert!(
        !inside(&h, &root).exists(),
        "nothing made on the disk below"
    );

    // The disk is back with its folder: Start records.
    in_its_namespace(&h, &["mount", "-t", "tmpfs", "hindsight-test", &mount]);
    in_its_namespace(&h, &["mkdir", &root]);
    rt.block_on(async {
        until_text(
            &c,
            "the page shows the free space again",
            "#overview",
            |t| disk_line(t).ends_with("B free"),
        )
        .await;
        click(&c, "start").await;
        until_text(&c, "the state is recording", "#state", |t| t == "recording").await;
        stop(&c).await;
        until(
            "the list shows the new recording again",
            Duration::from_secs(10),
            || async {
                let rows = c
                    .find_all(Locator::Css("#recordings tr[data-id]"))
                    .await
                    .map_or(0, |r| r.len());
                rows == 1 && !text(&c, "#recordings").await.contains("cannot be read")
            },
        )
        .await;
    });
    h.wait_idle_files();
    let made = mkv_files(&inside(&h, &root));
    assert_eq!(made.len(), 1, "{made:?}");
    rt.block_on(c.close()).unwrap();
    assert!(h.terminate().success());
}

/// The recordings disk turns read-only while the page is open (an SD card failing, on a
/// real ext4 disk, as root): the page says so where it showed the free space, Start
/// answers why, and the recordings list still shows what the disk holds, to be copied
/// off, rather than saying it cannot be read.
#[test]
fn the_page_says_when_the_recordings_disk_turns_read_only_and_still_lists_its_recordings() {
    let _g = serial();
    let driver = chromedriver();
    let Some((mut h, _image, device)) = start_on_ext4(
        64,
        &(synthetic_config(160, 120, 30.0, 1.0)
            + "audio:\n  enabled: false\nstorage:\n  min_free: 1MiB\n"),
    ) else {
        return;
    };
    let mount = h.root.parent().unwrap().display().to_string();
    h.wait_buffered(1.0);
    let (code, r) = h.post("start", serde_json::json!({"seconds": 0.5}));
    assert_eq!(code, 200, "{r}");
    h.wait_until("the recording ends", Duration::from_secs(20), |h| {
        h.status()["state"] == "buffering"
    });
    h.wait_idle_files();
    let (rt, _profile, c) = open_page_showing_free_space(&driver, &h);

    std::fs::write(
        format!("/sys/fs/ext4/{device}/trigger_fs_error"),
        "hindsight test: a failing disk\n",
    )
    .unwrap();
    let read_only = format!("disk: the recordings disk at {mount} has turned read-only");
    rt.block_on(async {
        until_text(
            &c,
            "the page says the disk is read-only",
            "#overview",
            |t| disk_line(t).starts_with(&read_only),
        )
        .await;
        click(&c, "start").await;
        until_text(&c, "Start answers why", "#message", |t| {
            t.contains("has turned read-only") && t.contains("fsck")
        })
        .await;
        until_text(
            &c,
            "the list says why and still lists",
            "#recordings",
            |t| {
                t.starts_with("Nothing can be recorded: the recordings disk at ")
                    && !t.contains("cannot be read")
            },
        )
        .await;
        let rows = c
            .find_all(Locator::Css("#recordings tr[data-id]"))
            .await
            .map_or(0, |r| r.len());
        assert_eq!(rows, 1, "the recording on the disk is listed");
        shot(&c, "6-disk-read-only").await;
        assert_eq!(text(&c, "#state").await, "buffering");
    });
    rt.block_on(c.close()).unwrap();
    assert!(h.terminate().success());
}

/// Two takes a crash cut, seen on the page of the recorder started after them: their
/// rows say "(unfinished)", what that means is written under the list (a phone shows no
/// tooltips), and the first's Repair button finishes it: the page says what was done, the
/// row says "(repaired)" with what that means, and has no Repair button any more. The
/// second is repaired with `hindsight repair` on the rig while the page stays open: the
/// page shows it repaired without being reloaded. The files are judged from outside
/// (mkvinfo finds the index).
#[test]
fn takes_a_crash_cut_are_repaired_from_the_page_or_by_hand_and_the_page_follows() {
    let _g = serial();
    let driver = chromedriver();
    let config = synthetic_config(W as u32, H as u32, 30.0, 1.0) + "audio:\n  enabled: false\n";
    let mut h = Hindsight::start(&config);
    let root = h.root.clone();
    let (mut cut, mut killed) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        h.wait_buffered(1.0);
        let (code, r) = h.post("start", json!({}));
        assert_eq!(code, 200, "{r}");
        std::thread::sleep(Duration::from_millis(2000));
        h.kill9();
        let mkv = mkv_files(&root)
            .into_iter()
            .find(|m| !cut.contains(m))
            .unwrap();
        assert_eq!(
            mkvinfo_cue_points(&mkv),
            0,
            "a crash left it without its index"
        );
        cut.push(mkv);
        let next = Hindsight::start_in(tempfile::tempdir().unwrap(), root.clone(), &config);
        // Kept: the first one's folder holds the recordings root.
        killed.push(std::mem::replace(&mut h, next));
    }
    let (id, by_hand) = (id_of(&cut[0], "cam0"), id_of(&cut[1], "cam0"));
    h.wait_buffered(0.5);
    let (rt, _profile, c) = open_browser(&driver);
    let row = format!("#recordings tr[data-id='{id}']");
    let other = format!("#recordings tr[data-id='{by_hand}']");
    rt.block_on(async {
        c.goto(&format!("http://{}/", h.api)).await.unwrap();
        until_text(&c, "the row says unfinished", &row, |t| {
            t.contains("(unfinished)")
        })
        .await;
        assert!(text(&c, &other).await.contains("(unfinished)"));
        let legend = text(&c, "#recordings .legend.unfinished").await;
        assert!(
            legend.starts_with("(unfinished): a crash or power cut") && legend.contains("Repair"),
            "{legend}"
        );
        assert_eq!(text(&c, "#recordings .legend.repaired").await, "");
        shot(&c, "7-unfinished").await;
        c.find(Locator::Css(&format!("{row} button.repair")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        until_text(&c, "the page says what the repair did", "#message", |t| {
            t.starts_with(&format!("repaired {id}: {id}_cam0.mkv: repaired: "))
        })
        .await;
        until_text(&c, "the row says repaired", &row, |t| {
            t.contains("(repaired)") && !t.contains("(unfinished)")
        })
        .await;
        let legend = text(&c, "#recordings .legend.repaired").await;
        assert!(
            legend.starts_with("(repaired): its events have no stop row"),
            "{legend}"
        );
        let buttons = c
            .find_all(Locator::Css(&format!("{row} button.repair")))
            .await
            .unwrap();
        assert!(buttons.is_empty(), "nothing left to repair");
        assert!(
            text(&c, &other).await.contains("(unfinished)"),
            "the other is not touched"
        );
        shot(&c, "8-repaired").await;
    });
    assert!(mkvinfo_cue_points(&cut[0]) > 0, "the video has its index");
    assert_eq!(mkvinfo_cue_points(&cut[1]), 0);

    // By hand on the rig, the page left open: it follows within its 15 s look.
    repair_ok(&cut[1]);
    rt.block_on(async {
        until(
            "the page shows the take repaired by hand",
            Duration::from_secs(30),
            || async {
                let t = text(&c, &other).await;
                t.contains("(repaired)") && !t.contains("(unfinished)")
            },
        )
        .await;
        assert_eq!(text(&c, "#recordings .legend.unfinished").await, "");
        shot(&c, "9-repaired-by-hand").await;
    });
    rt.block_on(c.close()).unwrap();
    assert!(h.terminate().success());
}

/// A libcamera camera's caption on the page says what its newest frame was exposed with,
/// and follows the camera's automatic gain as it changes from frame to frame (the
/// virtual camera's changes with every frame: test patch 06); a synthetic camera beside
/// it says nothing of exposure. The viewer says each recorded frame's own.
#[test]
#[cfg_attr(
    not(feature = "libcamera"),
    ignore = "built without --features libcamera: scripts/test.sh builds the test libcamera (scripts/build-libcamera.sh) and runs these"
)]
fn the_page_shows_what_a_libcamera_camera_exposes_its_frames_with() {
    use common::virtual_camera::{virtual_cameras, PI};
    let _g = serial();
    let driver = chromedriver();
    let images = tempfile::tempdir().unwrap();
    let yaml = virtual_cameras(images.path(), &[PI]);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("recordings");
    let config = [
        "buffer:\n  duration: 1\naudio:\n  enabled: false\ncameras:\n",
        "  - name: pi\n    source: libcamera\n    device: \"0\"\n",
        "    resolution: {width: 320, height: 240}\n    fps: 30\n",
        "    controls: {ExposureTime: 2000}\n",
        "  - name: syn\n    source: synthetic\n",
        "    resolution: {width: 64, height: 48}\n    fps: 30\n",
    ]
    .concat();
    let mut h = Hindsight::start_with(dir, root, &config, |c| {
        c.env("LIBCAMERA_VIRTUAL_CONFIG", &yaml)
            .env("LIBCAMERA_LOG_LEVELS", "*:ERROR");
    });
    h.wait_buffered(0.5);
    let (rt, _profile, c) = open_browser(&driver);
    rt.block_on(async {
        c.goto(&format!("http://{}/", h.api)).await.unwrap();
        let mut seen = std::collections::BTreeSet::new();
        let since = Instant::now();
        while seen.len() < 2 {
            assert!(
                since.elapsed() < Duration::from_secs(15),
                "the caption showed {seen:?}"
            );
            let caption = text(&c, "img[data-camera='pi'] + figcaption").await;
            if let Some(line) = caption
                .lines()
                .find(|l| l.starts_with("exposure 2000 µs · analogue gain "))
            {
                assert!(line.contains(" · digital gain "), "{caption}");
                seen.insert(line.to_string());
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shot(&c, "6-exposure").await;
        let syn = text(&c, "img[data-camera='syn'] + figcaption").await;
        assert!(syn.contains("syn") && !syn.contains("exposure"), "{syn}");
        click(&c, "start").await;
        until_text(&c, "the state is recording", "#state", |t| t == "recording").await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop(&c).await;
    });
    h.wait_idle_files();
    let files = h.mkv_files();
    let pi = files
        .iter()
        .find(|f| f.to_string_lossy().ends_with("_pi.mkv"))
        .expect("the pi camera's file");
    let rows = read_sidecar(pi);
    let id = id_of(pi, "pi");

    // Stepping through the recording, the viewer says each frame's own exposure, as its
    // sidecar row has it.
    rt.block_on(async {
        let row = format!("tr[data-id='{id}']");
        until(
            "the recording is listed",
            Duration::from_secs(10),
            || async {
                let listed = text(&c, &row).await;
                !listed.is_empty() && !listed.contains("(recording)")
            },
        )
        .await;
        view(&c, &row).await;
        for (i, r) in rows.iter().take(3).enumerate() {
            if i > 0 {
                c.execute(
                    "document.dispatchEvent(new KeyboardEvent('keydown', {key: 'ArrowRight'}))",
                    vec![],
                )
                .await
                .unwrap();
            }
            let [time, analogue, digital] = r.exposure.clone().expect("the exposure columns");
            let said =
                format!("exposure {time} µs · analogue gain {analogue} · digital gain {digital}");
            until_text(
                &c,
                "the viewer says the frame's exposure",
                "#frameinfo",
                |t| t.starts_with(&format!("frame {} ", r.frame_number)) && t.contains(&said),
            )
            .await;
        }
        shot(&c, "7-exposure-in-the-viewer").await;
    });
    rt.block_on(c.close()).unwrap();
    assert!(h.terminate().success(), "{}", h.log_text());
}
