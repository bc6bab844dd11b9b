use super::*;

#[test]
fn sensor_timestamps_from_either_clock_land_on_the_lsl_clock() {
    let mono = 5_000_000_000_000; // 5000 s since boot, awake
                                  // Never suspended: the clocks agree; the timestamp is taken as it is.
    assert_eq!(
        sensor_time(mono - 3_000_000, mono, mono + 20_000),
        (LslTime::from_nanos(mono - 3_000_000), SensorClock::Same)
    );
    // Suspended for 600 s: a BOOTTIME stamp is 600 s ahead of MONOTONIC.
    let boot = mono + 600_000_000_000;
    let (t, c) = sensor_time(boot - 3_000_000, mono, boot);
    assert_eq!(
        (t, c),
        (LslTime::from_nanos(mono - 3_000_000), SensorClock::Boottime)
    );
    // A MONOTONIC stamp on the same machine stays as it is.
    let (t, c) = sensor_time(mono - 3_000_000, mono, boot);
    assert_eq!(
        (t, c),
        (
            LslTime::from_nanos(mono - 3_000_000),
            SensorClock::Monotonic
        )
    );
    // The two clocks of this machine are readable.
    assert!(boottime_now() >= crate::clock::LslTime::now().as_nanos() - 1_000_000);
}

#[test]
fn a_rate_outside_the_cameras_frame_durations_is_refused_saying_what_it_offers() {
    // A camera whose frames last 16667 µs to 1 s: 1 to 60 fps.
    assert_eq!(check_rate(30.0, 16_667, 1_000_000), Ok(()));
    assert_eq!(check_rate(60.0, 16_667, 1_000_000), Ok(()));
    assert_eq!(
        check_rate(100.0, 16_667, 1_000_000),
        Err("1 to 60 fps".to_string())
    );
    assert_eq!(
        check_rate(0.5, 16_667, 1_000_000),
        Err("1 to 60 fps".to_string())
    );
    // The IMX296 cropped to 1456x96: 536 fps is 1866 µs.
    assert_eq!(frame_duration_us(536.0), 1866);
    assert_eq!(check_rate(536.0, 1866, 1_000_000), Ok(()));
    assert_eq!(
        check_rate(600.0, 1866, 1_000_000),
        Err("1 to 535.9 fps".to_string())
    );
    // A camera that does not say (no FrameDurationLimits): nothing to check here; the
    // first frame's FrameDuration is checked instead.
    assert_eq!(check_rate(1000.0, 0, 0), Ok(()));
}

#[test]
fn the_reported_frame_duration_must_be_the_rate_asked_for_within_one_percent() {
    assert!(rate_granted(30.0, 33_333));
    assert!(rate_granted(536.0, 1866));
    assert!(!rate_granted(100.0, 16_667));
    assert!(!rate_granted(30.0, 0));
}

#[test]
fn errors_are_one_line_a_pi_user_can_act_on() {
    let lines = [
        LibcameraError::NoCameras { wanted: None }.to_string(),
        LibcameraError::NoSuchCamera {
            wanted: "2".into(),
            available: "0 `/base/soc/i2c0mux/i2c@1/imx296@1a` (imx296)".into(),
        }
        .to_string(),
        LibcameraError::Busy {
            camera: "imx296".into(),
        }
        .to_string(),
        LibcameraError::Size {
            camera: "imx296".into(),
            width: 640,
            height: 481,
            offers: "1456x1088 (YUV420, NV12)".into(),
        }
        .to_string(),
        LibcameraError::Version {
            built: "0.5.2".into(),
            runtime: "0.7.2".into(),
        }
        .to_string(),
    ];
    for l in &lines {
        assert!(
            !l.contains('\n') && !l.contains("Os {") && !l.contains("code:"),
            "{l}"
        );
    }
    assert!(lines[0].contains("rpicam-hello --list-cameras"));
    assert!(lines[2].contains("in use by another program"));
    assert!(lines[3].contains("640x481") && lines[3].contains("1456x1088"));
}

#[test]
fn libcamera_releases_compare_by_major_and_minor() {
    assert!(same_release("0.7.2", "0.7.0+rpt20250101"));
    assert!(same_release("0.5.2", "v0.5.2+99-abcdef"));
    assert!(!same_release("0.5.2", "0.7.2"));
}
