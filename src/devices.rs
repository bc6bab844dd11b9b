//! `hindsight devices`: what this machine offers to record from.

/// The cameras libcamera sees (Raspberry Pi cameras), or why it sees none.
#[cfg(feature = "libcamera")]
fn libcamera_cameras() -> Vec<String> {
    match crate::source::libcamera::list() {
        Ok(l) if l.is_empty() => vec!["camera: libcamera sees no camera".into()],
        Ok(l) => l,
        Err(e) => vec![format!("camera: libcamera: {e}")],
    }
}

#[cfg(not(feature = "libcamera"))]
fn libcamera_cameras() -> Vec<String> {
    vec![
        "camera: libcamera (Raspberry Pi cameras): not in this build (cargo feature `libcamera`)"
            .into(),
    ]
}

/// One line per camera node and audio input.
pub fn list() -> Vec<String> {
    let mut out = Vec::new();
    let cameras = crate::source::v4l2::device::list();
    if cameras.is_empty() {
        out.push(
            "camera: no /dev/video* device (the synthetic camera stands in: source: synthetic)"
                .into(),
        );
    }
    out.extend(cameras);
    out.extend(libcamera_cameras());
    out.push("camera: synthetic (test pattern, any size and rate)".into());
    out.push("camera: http-mjpeg (url: a network camera's MJPEG stream), command (a program writing MJPEG to stdout)".into());
    out.extend(crate::audio::input::describe_devices());
    out.push("audio input: synthetic (440 Hz tone)".into());
    out
}
