//! `hindsight devices`: what this machine offers to record from.

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
    out.push("camera: synthetic (test pattern, any size and rate)".into());
    out.push("camera: http-mjpeg (url: a network camera's MJPEG stream), command (a program writing MJPEG to stdout)".into());
    out.extend(crate::audio::input::describe_devices());
    out.push("audio input: synthetic (440 Hz tone)".into());
    out
}
