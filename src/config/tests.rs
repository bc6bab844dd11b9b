use super::*;

fn err(yaml: &str) -> String {
    Config::from_yaml(yaml, "test.yaml")
        .unwrap_err()
        .to_string()
}

#[test]
fn empty_files_duplicates_and_tabs_get_clear_answers() {
    assert!(err("").contains("holds no setting"));
    assert!(err("# just a comment\n\n").contains("holds no setting"));
    let dup = err("rig: a\nstorage:\n  prefix: x\nrig: b\n");
    assert!(
        dup.starts_with("test.yaml, line 4: duplicate field `rig`"),
        "{dup}"
    );
    let nested = err("storage:\n  prefix: x\n  root: /a\n  prefix: y\n");
    assert!(nested.contains("line 4"), "{nested}");
    let tab = err("storage:\n\tprefix: x\n");
    assert!(tab.contains("line 2") && tab.contains("a tab"), "{tab}");
    // A tab where YAML allows it is fine.
    assert!(Config::from_yaml("rig: a\t# the rig\n", "t").is_ok());
}

#[test]
fn unknown_key_is_named_with_its_line() {
    let e = err("buffer:\n  duration: 5\ncameras:\n  - name: cam0\n    fpx: 100\n");
    assert!(e.contains("cameras[0]"), "{e}");
    assert!(e.contains("unknown field `fpx`"), "{e}");
    assert!(e.contains("line 5"), "{e}");
}

#[test]
fn wrong_type_is_named_with_its_line() {
    let e = err("buffer:\n  duration: twenty\n");
    assert!(e.contains("buffer.duration"), "{e}");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn impossible_values_are_refused_with_key_and_line() {
    let e = err("cameras:\n  - name: a\n    fps: 0\n");
    assert!(
        e.contains("cameras[0].fps") && e.contains("line 3") && e.contains("> 0"),
        "{e}"
    );
    let e = err("cameras:\n  - resolution: {width: 100000, height: 10}\n");
    assert!(e.contains("width") && e.contains("16384"), "{e}");
    let e = err("buffer:\n  max_bytes: 12 parsecs\n");
    assert!(
        e.contains("buffer.max_bytes") && e.contains("parsecs"),
        "{e}"
    );
    let e = err("storage:\n  prefix: a/b\n");
    assert!(
        e.contains("storage.prefix") && e.contains("file name"),
        "{e}"
    );
    let e = err("cameras:\n  - quality: 101\n");
    assert!(
        e.contains("cameras[0].quality") && e.contains("1 to 100"),
        "{e}"
    );
}

#[test]
fn cross_key_errors_find_their_line() {
    let yaml = "cameras:\n  - name: a\n  - name: b\n    fps: 30\n  - name: a\n";
    let e = err(yaml);
    assert!(e.contains("line 5") && e.contains("cameras[2].name"), "{e}");
    let e = err("cameras:\n  - name: net\n    source: http-mjpeg\n");
    assert!(e.contains("cameras[0].url") && e.contains("line 3"), "{e}");
    let e = err("cameras:\n  - cpu_core: 4096\n");
    assert!(e.contains("core 4096 does not exist"), "{e}");
    let e = err("api:\n  listen: 0.0.0.0:8787\n");
    assert!(e.contains("api.listen") && e.contains("token"), "{e}");
}

#[test]
fn an_enabled_ntfy_trigger_needs_a_topic_of_its_own() {
    let e = err("trigger:\n  ntfy:\n    enabled: true\n");
    assert!(
        e.contains("trigger.ntfy.topic") && e.contains("of your own"),
        "{e}"
    );
    let e = err("trigger:\n  ntfy:\n    enabled: true\n    topic: a/b\n");
    assert!(
        e.contains("not an ntfy topic") && e.contains("line 4"),
        "{e}"
    );
    let e = err("trigger:\n  ntfy:\n    enabled: true\n    topic: lab\n    server: ntfy.sh\n");
    assert!(e.contains("https://"), "{e}");
    assert!(Config::from_yaml(
        "trigger:\n  ntfy:\n    enabled: true\n    topic: lab-7\n",
        "x"
    )
    .is_ok());
}

#[test]
fn byte_sizes_parse_with_units() {
    let c = Config::from_yaml("buffer:\n  max_bytes: 512MiB\n", "x").unwrap();
    assert_eq!(c.buffer.max_bytes.0, 512 << 20);
    let c = Config::from_yaml("buffer:\n  max_bytes: 2 GB\n", "x").unwrap();
    assert_eq!(c.buffer.max_bytes.0, 2_000_000_000);
    let c = Config::from_yaml("buffer:\n  max_bytes: 1048576\n", "x").unwrap();
    assert_eq!(c.buffer.max_bytes.0, 1 << 20);
    assert!(err("buffer:\n  max_bytes: 1k\n").contains("at least 1MiB"));
}

/// Unpinned by default, real-time only for cameras fast enough to need it; both can be
/// asked for, and a wrong value is refused with its key and line.
#[test]
fn capture_threads_are_unpinned_and_real_time_only_for_fast_cameras_by_default() {
    let c = Config::from_yaml("cameras:\n  - name: a\n", "x").unwrap();
    let cam = &c.cameras[0];
    assert_eq!(cam.cpu_core, CpuCore::Unpinned);
    assert_eq!(cam.realtime, Toggle::Auto);
    assert!(!cam.wants_realtime(100.0));
    assert!(!cam.wants_realtime(REALTIME_AUTO_ABOVE_FPS));
    assert!(cam.wants_realtime(200.0));
    assert!(cam.wants_realtime(536.0));
    let yaml = "cameras:\n  - name: a\n    realtime: true\n    cpu_core: auto\n  - name: b\n    realtime: false\n";
    let c = Config::from_yaml(yaml, "x").unwrap();
    assert!(c.cameras[0].wants_realtime(1.0));
    assert_eq!(c.cameras[0].cpu_core, CpuCore::Auto);
    assert!(!c.cameras[1].wants_realtime(536.0));
    let e = err("cameras:\n  - name: a\n    realtime: always\n");
    assert!(
        e.contains("line 3") && e.contains("realtime") && e.contains("auto, true or false"),
        "{e}"
    );
}

#[test]
fn overrides_change_keys_and_are_checked() {
    let base = Config::default();
    let sets: Vec<_> = [
        "buffer.duration=3",
        "cameras.0.fps=30",
        "cameras.*.resolution={width: 640, height: 480}",
    ]
    .iter()
    .map(|a| parse_override(a).unwrap())
    .collect();
    let c = base.with_overrides(&sets).unwrap();
    assert_eq!(c.buffer.duration.0, 3.0);
    assert_eq!(c.cameras[0].fps.0, 30.0);
    assert_eq!(c.cameras[0].resolution.width.0, 640);
    let e = base
        .with_overrides(&[parse_override("buffer.durashun=3").unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown key `durashun`"), "{e}");
    let e = base
        .with_overrides(&[parse_override("cameras.0.fps=-1").unwrap()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("cameras.0.fps") && e.contains("> 0"), "{e}");
    assert!(parse_override("no-equals-sign").is_err());
    // The spelling the messages use for a camera's key is taken too.
    let c = base
        .with_overrides(&[parse_override("cameras[0].fps=25").unwrap()])
        .unwrap();
    assert_eq!(c.cameras[0].fps.0, 25.0);
    assert_eq!(
        c.get("cameras[0].fps").unwrap(),
        c.get("cameras.0.fps").unwrap()
    );
}

/// The shipped config.yaml is the config reference: it must parse, and it must mention
/// every key this file knows, with the default value.
#[test]
fn shipped_config_yaml_documents_every_key_with_its_default() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.yaml"))
        .expect("config.yaml at the top level");
    let shipped = Config::from_yaml(&text, "config.yaml").expect("config.yaml parses");
    assert_eq!(
        shipped,
        Config::default(),
        "config.yaml must show the built-in defaults"
    );
    let tree = serde_norway::to_value(Config::default()).unwrap();
    let mut missing = Vec::new();
    collect_leaf_keys(&tree, &mut Vec::new(), &mut |path| {
        if line_of(&text, path).is_none() {
            missing.push(path.join("."));
        }
    });
    assert!(
        missing.is_empty(),
        "config.yaml does not document: {missing:?}"
    );
}

fn collect_leaf_keys<'a>(v: &'a Value, path: &mut Vec<&'a str>, f: &mut dyn FnMut(&[&str])) {
    match v {
        Value::Mapping(m) => {
            for (k, child) in m {
                path.push(k.as_str().unwrap());
                collect_leaf_keys(child, path, f);
                path.pop();
            }
        }
        Value::Sequence(s) if !s.is_empty() && s[0].is_mapping() => {
            path.push("0");
            collect_leaf_keys(&s[0], path, f);
            path.pop();
        }
        _ => f(path),
    }
}

#[test]
fn two_cameras_on_one_v4l2_device_are_refused_with_the_second_ones_line() {
    let e = err("cameras:\n  - name: a\n    source: v4l2\n  - name: b\n    source: v4l2\n    device: /dev/video0\n");
    assert!(
        e.contains("line 6")
            && e.contains("cameras[1].device")
            && e.contains("`/dev/video0` is camera `a`'s device too"),
        "{e}"
    );
    // Without a `device` key, the line of the camera's name.
    let e = err(
        "cameras:\n  - name: a\n    source: v4l2\n    device: 0\n  - name: b\n    source: v4l2\n",
    );
    assert!(e.contains("line 5") && e.contains("`a`"), "{e}");
    // Different devices, or a device and a camera of another kind, are fine.
    let ok = "cameras:\n  - name: a\n    source: v4l2\n  - name: b\n    source: v4l2\n    device: 1\n  - name: c\n    source: synthetic\n";
    assert!(Config::from_yaml(ok, "t").is_ok());
}

/// A buffer ceiling past what a 32-bit build can address is refused there with the key
/// and line (it became 0 bytes, a buffer that kept nothing, when it was cut to 32 bits);
/// a 64-bit build takes it.
#[test]
fn a_32_bit_build_refuses_a_buffer_it_cannot_address() {
    use crate::config::{buffer_ceiling_fits, MAX_BUFFER_BYTES_32_BIT};
    let four = 4u64 << 30;
    assert!(buffer_ceiling_fits(four, 64).is_ok());
    assert!(buffer_ceiling_fits(MAX_BUFFER_BYTES_32_BIT, 32).is_ok());
    let e = buffer_ceiling_fits(four, 32).unwrap_err();
    assert!(e.contains("4GiB per camera") && e.contains("64-bit"), "{e}");
    let e = buffer_ceiling_fits(MAX_BUFFER_BYTES_32_BIT + (1 << 20), 32).unwrap_err();
    assert!(e.contains("2049MiB"), "{e}");
    // This build: refused with the key and its line where it is 32-bit, taken elsewhere.
    let yaml = "rig: a\nbuffer:\n  max_bytes: 4GiB\n";
    let parsed = Config::from_yaml(yaml, "config.yaml");
    if usize::BITS < 64 {
        let e = parsed.unwrap_err().to_string();
        assert!(
            e.contains("line 3") && e.contains("buffer.max_bytes"),
            "{e}"
        );
    } else {
        assert_eq!(parsed.unwrap().buffer.max_bytes.0, four);
    }
    // Without a buffer, its ceiling is not used: not refused.
    let yaml = "buffer:\n  enabled: false\n  max_bytes: 4GiB\n";
    assert!(Config::from_yaml(yaml, "config.yaml").is_ok());
}

/// The microphone's buffer is allocated whole at start: one a 32-bit build cannot hold (an
/// hour at 192 kHz in stereo: 5.2 GiB) is refused with what to change; the default (20 s
/// at 48 kHz, 4.6 MiB) is not.
#[test]
fn a_32_bit_build_refuses_a_microphone_buffer_it_cannot_hold() {
    let c = Config::default();
    assert_eq!(c.audio_buffer_bytes(), 25 * 48_000 * 4);
    assert!(c.audio_buffer_fits(32).is_ok());
    let mut c = Config::default();
    c.buffer.duration = BufferSeconds(3600.0);
    (c.audio.sample_rate, c.audio.channels) = (192_000, 2);
    assert!(c.audio_buffer_fits(64).is_ok());
    let e = c.audio_buffer_fits(32).unwrap_err();
    assert!(
        e.contains("5280 MiB") && e.contains("3605 s at 192000 Hz × 2 channel(s)"),
        "{e}"
    );
    // This build: refused with the key and its line where it is 32-bit, taken elsewhere.
    let yaml = "buffer:\n  duration: 3600\naudio:\n  sample_rate: 192000\n  channels: 2\n";
    let parsed = Config::from_yaml(yaml, "x");
    if usize::BITS < 64 {
        let e = parsed.unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("buffer.duration"), "{e}");
    } else {
        assert_eq!(parsed.unwrap().audio_buffer_bytes(), c.audio_buffer_bytes());
    }
    c.audio.enabled = false;
    assert_eq!(c.audio_buffer_bytes(), 0);
}
