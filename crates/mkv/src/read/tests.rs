use super::*;
use crate::fixture::{self, Recording};
use crate::mux::{MuxerConfig, TrackKind, TrackSpec};
use std::io::Cursor;

fn config() -> MuxerConfig {
    MuxerConfig {
        timestamp_unit_ns: 100_000,
        max_cluster_ns: 100_000_000,
        tracks: vec![
            TrackSpec {
                number: 1,
                uid: 11,
                name: "cam".into(),
                kind: TrackKind::VideoMjpeg {
                    width: 8,
                    height: 8,
                },
            },
            TrackSpec {
                number: 2,
                uid: 22,
                name: "mic".into(),
                kind: TrackKind::AudioPcmLe {
                    sample_rate: 8_000.0,
                    channels: 1,
                    bit_depth: 16,
                },
            },
        ],
        tags: vec![("CAMERA".into(), "test".into())],
        writing_app: "test".into(),
        date_utc_unix_ns: Some(1_700_000_000_000_000_000),
        title: None,
    }
}

fn apply(file: &mut [u8], patches: &[Patch]) {
    Patch::apply_all(file, patches);
}

fn apply_plan_in_memory(file: &mut Vec<u8>, plan: &RepairPlan) {
    plan.apply_in_memory(file);
}

/// Position of the first top-level header element `element`.
fn header_element(file: &[u8], element: u32) -> usize {
    let mut at = 52;
    loop {
        let h = ebml::read_header(&file[at..]).unwrap();
        if h.id == element {
            return at;
        }
        at += h.len + h.size.unwrap() as usize;
    }
}

fn plan(file: &[u8]) -> Result<RepairPlan, ReadError> {
    plan_repair(&mut Cursor::new(file))
}

/// 40 video frames at ~30 fps with jitter and 20 ms audio blocks, in 14 clusters.
fn record(chapters: &[(i64, &str)]) -> Recording {
    let mut blocks = Vec::new();
    let mut audio_t = 0;
    for i in 0..40i64 {
        let t = i * 33_333_333 + (i % 3) * 1_000_000;
        while audio_t <= t {
            blocks.push((2, audio_t, vec![0; 32]));
            audio_t += 20_000_000;
        }
        blocks.push((1, t, vec![i as u8; 50 + i as usize]));
    }
    let rec = fixture::record(config(), blocks, chapters);
    assert!(!rec.live_patches.is_empty(), "the clusters were sized");
    rec
}

#[test]
fn a_finished_file_needs_nothing() {
    let rec = record(&[(500_000_000, "m")]);
    let file = rec.finished();
    assert!(!is_unfinished(&mut Cursor::new(&file)).unwrap());
    let p = plan(&file).unwrap();
    assert!(p.already_final);
    assert!(p.tail.is_empty() && p.patches.is_empty());
    assert_eq!(p.truncate_to, file.len() as u64);
    assert_eq!(
        (p.blocks, p.clusters, p.duration_ns),
        (
            rec.summary.blocks,
            rec.summary.clusters,
            rec.summary.duration_ns
        )
    );
    assert_eq!(rec.summary.clusters, 14);
}

#[test]
fn repairing_an_uncut_live_file_equals_a_clean_finish() {
    let rec = record(&[]);
    assert!(is_unfinished(&mut Cursor::new(&rec.live)).unwrap());
    let p = plan(&rec.live).unwrap();
    assert!(!p.already_final);
    assert_eq!((p.truncate_to, p.dropped_bytes), (rec.live.len() as u64, 0));
    let mut repaired = rec.live.clone();
    apply_plan_in_memory(&mut repaired, &p);
    assert_eq!(repaired, rec.finished());
    assert_eq!(p.duration_ns, rec.summary.duration_ns);
}

#[test]
fn every_cut_after_the_tracks_is_repaired_to_its_complete_blocks() {
    let rec = record(&[]);
    let finished = rec.finished();
    // Tracks end where the Tags start: the Tags are the last header element
    let tags_at = header_element(&finished, id::TAGS);
    for cut in tags_at..=rec.live.len() {
        let file = &rec.live[..cut];
        let p = plan(file).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        let complete = rec.blocks.iter().filter(|b| b.end <= cut as u64).count();
        assert_eq!(p.blocks, complete as u64, "cut at {cut}");
        assert_eq!(p.dropped_bytes, cut as u64 - p.truncate_to);
        let mut repaired = file.to_vec();
        apply_plan_in_memory(&mut repaired, &p);
        let again = plan(&repaired).unwrap();
        assert!(again.already_final, "cut at {cut}: repaired file is final");
        assert_eq!(
            (again.blocks, again.clusters, again.duration_ns),
            (p.blocks, p.clusters, p.duration_ns),
            "cut at {cut}"
        );
        if complete == rec.blocks.len() {
            assert_eq!(repaired, finished, "cut at {cut}");
        }
    }
}

#[test]
fn a_cut_inside_the_header_is_a_clear_error() {
    let rec = record(&[]);
    let tags_at = header_element(&rec.live, id::TAGS);
    for cut in 0..tags_at {
        let err = plan(&rec.live[..cut]).unwrap_err();
        assert!(
            matches!(err, ReadError::HeaderCut { len, .. } if len == cut as u64)
                || (cut == 0 && matches!(err, ReadError::NotMatroska(_))),
            "cut at {cut}: {err}"
        );
    }
    // the Tags and everything after them are optional
    let p = plan(&rec.live[..rec.header_len as usize - 1]).unwrap();
    assert_eq!((p.blocks, p.truncate_to), (0, tags_at as u64));
    let p = plan(&rec.live[..rec.header_len as usize]).unwrap();
    assert_eq!(
        (p.blocks, p.truncate_to, p.duration_ns),
        (0, rec.header_len, 0)
    );
    assert!(p.tail.is_empty(), "no Cues for an empty Segment");
}

#[test]
fn an_interrupted_finish_is_redone_and_keeps_complete_chapters() {
    let rec = record(&[(700_000_000, "late"), (100_000_000, "early")]);
    let with_chapters = rec.finished();
    // Chapters are the last element of the tail: cut anywhere before its end, they
    // are lost, and the result is what a finish without marks writes.
    let without_chapters = record(&[]).finished();
    for tail_cut in 0..=rec.tail.len() {
        // none, the last cluster's size, all but the Segment size, and all (the disk
        // may write the Segment size before the tail)
        let all = rec.finish_patches.len();
        for patches_applied in [0, 1, all - 1, all] {
            if patches_applied == all && tail_cut == rec.tail.len() {
                continue; // that is the finished file
            }
            let mut file = rec.live.clone();
            file.extend_from_slice(&rec.tail[..tail_cut]);
            apply(&mut file, &rec.finish_patches[..patches_applied]);
            let p = plan(&file).unwrap();
            assert!(!p.already_final, "tail cut at {tail_cut}");
            assert_eq!(p.truncate_to, rec.live.len() as u64);
            assert_eq!(p.dropped_bytes, tail_cut as u64);
            apply_plan_in_memory(&mut file, &p);
            let expected = if tail_cut == rec.tail.len() {
                &with_chapters
            } else {
                &without_chapters
            };
            assert!(
                file == *expected,
                "tail cut at {tail_cut}, {patches_applied} patches"
            );
        }
    }
}

#[test]
fn clusters_whose_size_patch_was_lost_are_sized() {
    let rec = record(&[]);
    // a crash before any size patch reached the disk: every cluster unknown-size
    let mut file = rec.live.clone();
    for p in &rec.live_patches {
        let at = p.offset as usize;
        file[at..at + 8].copy_from_slice(&ebml::UNKNOWN_SIZE);
    }
    let p = plan(&file).unwrap();
    assert_eq!(p.patches.len(), rec.live_patches.len() + 1 + 3);
    assert_eq!(p.blocks, rec.blocks.len() as u64);
    apply_plan_in_memory(&mut file, &p);
    assert_eq!(file, rec.finished());
}

#[test]
fn a_torn_duration_is_rewritten() {
    let rec = record(&[]);
    let finished = rec.finished();
    let mut file = finished.clone();
    let at = file
        .windows(3)
        .position(|w| w == [0x44, 0x89, 0x88])
        .unwrap();
    file[at + 3..at + 11].fill(0xFF); // NaN
    let p = plan(&file).unwrap();
    assert!(!p.already_final);
    apply_plan_in_memory(&mut file, &p);
    assert_eq!(file, finished);
}

#[test]
fn zeros_left_by_a_power_failure_are_dropped() {
    let rec = record(&[]);
    let mut file = rec.live.clone();
    file.extend_from_slice(&[0; 4096]);
    let p = plan(&file).unwrap();
    assert_eq!(
        (p.truncate_to, p.dropped_bytes),
        (rec.live.len() as u64, 4096)
    );
    apply_plan_in_memory(&mut file, &p);
    assert_eq!(file, rec.finished());
}

#[test]
fn other_files_are_refused_with_a_reason() {
    assert!(matches!(plan(b""), Err(ReadError::NotMatroska(_))));
    assert!(matches!(
        plan(b"RIFF....WAVEfmt "),
        Err(ReadError::NotMatroska(_))
    ));
    let mut webm_like = record(&[]).live;
    let at = webm_like.windows(8).position(|w| w == b"matroska").unwrap();
    webm_like[at..at + 8].copy_from_slice(b"matrosko");
    assert!(matches!(plan(&webm_like), Err(ReadError::NotMatroska(_))));
    // a huge size in the EBML header is refused before anything is allocated
    let huge = [
        0x1A, 0x45, 0xDF, 0xA3, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
    ];
    assert!(matches!(
        plan(&huge),
        Err(ReadError::TooLarge { offset: 0, .. })
    ));
    // a Segment that does not start with our SeekHead region
    let mut foreign = record(&[]).live;
    foreign[52..56].copy_from_slice(&id::INFO.to_be_bytes());
    let err = plan(&foreign).unwrap_err();
    assert!(matches!(err, ReadError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("no SeekHead"), "{err}");
}

/// Every video frame of `file`, found through `ClusterIndex`, is byte for byte the one
/// written; audio blocks at the same timestamps are never returned.
fn assert_every_frame_found(file: &[u8], rec: &Recording, from_cues: bool, kept: usize) {
    let index = ClusterIndex::read(&mut Cursor::new(file)).unwrap();
    assert_eq!(index.from_cues, from_cues);
    let mut found = 0;
    for b in rec.track(1).filter(|b| b.end <= kept as u64) {
        let at = index
            .video_block(&mut Cursor::new(file), b.ts)
            .unwrap()
            .unwrap_or_else(|| panic!("frame at {} not found", b.ts));
        assert_eq!(at.timestamp, b.ts);
        let bytes = &file[at.offset as usize..(at.offset + at.len) as usize];
        assert_eq!(bytes, &b.data[..], "frame at {}", b.ts);
        found += 1;
    }
    assert_eq!(found, rec.complete(1, kept as u64));
    assert!(found > 30);
    // A time between frames, before the first and after the last: nothing.
    let first = rec.track(1).next().unwrap().ts;
    for t in [first + 1, -5, i64::MAX / 2] {
        assert_eq!(index.video_block(&mut Cursor::new(file), t).unwrap(), None);
    }
}

#[test]
fn frames_are_found_through_the_cues_of_a_finished_file() {
    let rec = record(&[]);
    let file = rec.finished();
    assert_every_frame_found(&file, &rec, true, file.len());
}

#[test]
fn frames_are_found_by_walking_the_clusters_of_a_live_or_cut_file() {
    let rec = record(&[]);
    // The live file: every cluster sized but the last.
    assert_every_frame_found(&rec.live, &rec, false, rec.live.len());
    // Cut in the middle of a block: the complete frames before the cut are found.
    let cut = &rec.live[..rec.live.len() - 30];
    assert_every_frame_found(cut, &rec, false, cut.len());
}

#[test]
fn frames_are_found_in_a_repaired_file() {
    let rec = record(&[]);
    let kept = rec.live.len() - 30;
    let mut file = rec.live[..kept].to_vec();
    let p = plan(&file).unwrap();
    apply_plan_in_memory(&mut file, &p);
    assert_every_frame_found(&file, &rec, true, kept);
}

#[test]
fn a_file_that_is_no_recording_is_refused_by_the_index() {
    assert!(ClusterIndex::read(&mut Cursor::new(b"RIFF....WAVE")).is_err());
}
