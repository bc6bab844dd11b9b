//! `hindsight devices`: what this machine offers to record from.

/// One line per camera node and audio input.
pub fn list() -> Vec<String> {
    let mut out = Vec::new();
    let mut nodes: Vec<String> = std::fs::read_dir("/dev")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("video"))
                .collect()
        })
        .unwrap_or_default();
    nodes.sort();
    if nodes.is_empty() {
        out.push(
            "camera: no /dev/video* device (the synthetic camera stands in: source: synthetic)"
                .into(),
        );
    }
    for n in nodes {
        out.push(format!(
            "camera: /dev/{n} (V4L2; formats are listed once the v4l2 source exists)"
        ));
    }
    out.push("camera: synthetic (test pattern, any size and rate)".into());
    out.extend(crate::audio::input::describe_devices());
    out.push("audio input: synthetic (440 Hz tone)".into());
    out
}
