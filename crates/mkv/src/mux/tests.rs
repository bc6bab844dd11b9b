use super::*;
use crate::ebml::Reader;

fn video_cfg(unit: u64) -> MuxerConfig {
    MuxerConfig {
        timestamp_unit_ns: unit,
        max_cluster_ns: 1_000_000_000,
        tracks: vec![TrackSpec {
            number: 1,
            uid: 7,
            name: String::new(),
            kind: TrackKind::VideoMjpeg {
                width: 2,
                height: 2,
            },
        }],
        tags: Vec::new(),
        writing_app: "t".into(),
        date_utc_unix_ns: None,
        title: None,
    }
}

fn with_audio(mut cfg: MuxerConfig) -> MuxerConfig {
    cfg.tracks.push(TrackSpec {
        number: 2,
        uid: 8,
        name: "mic".into(),
        kind: TrackKind::AudioPcmLe {
            sample_rate: 48_000.0,
            channels: 1,
            bit_depth: 16,
        },
    });
    cfg
}

fn apply(file: &mut [u8], patches: &[Patch]) {
    Patch::apply_all(file, patches);
}

/// Muxer plus the file it produced, with patches applied as the writer would.
struct Run {
    mux: MkvMuxer,
    file: Vec<u8>,
    patches: Vec<Patch>,
}

impl Run {
    fn new(cfg: MuxerConfig) -> Run {
        let mut mux = MkvMuxer::new(cfg);
        let mut file = Vec::new();
        mux.header(&mut file);
        Run {
            mux,
            file,
            patches: Vec::new(),
        }
    }
    fn block(&mut self, track: u64, t_ns: i64, key: bool) -> Result<i64, MuxError> {
        let mut out = Vec::new();
        let mut patches = Vec::new();
        let r = self
            .mux
            .write_block(track, t_ns, key, b"data", &mut out, &mut patches);
        self.file.extend_from_slice(&out);
        apply(&mut self.file, &patches);
        self.patches.extend(patches);
        r
    }
    fn finish(&mut self) -> FinishSummary {
        let mut out = Vec::new();
        let mut patches = Vec::new();
        let s = self.mux.finish(&mut out, &mut patches).unwrap();
        self.file.extend_from_slice(&out);
        apply(&mut self.file, &patches);
        self.patches.extend(patches);
        assert_eq!(self.file.len() as u64, self.mux.position());
        s
    }
    /// Cluster timestamps, in file order (the last cluster has unknown size).
    fn cluster_timestamps(&self) -> Vec<u64> {
        let mut at = self.mux.layout.segment_data_start as usize;
        let mut ts = Vec::new();
        while at < self.file.len() {
            let h = ebml::read_header(&self.file[at..]).unwrap();
            if h.id == id::CLUSTER {
                let mut r = Reader::new(&self.file[at + h.len..]);
                let (t, v) = r.next_element().unwrap().unwrap();
                assert_eq!(t.id, id::TIMESTAMP);
                ts.push(ebml::read_uint(v).unwrap());
            }
            match h.size {
                Some(size) => at += h.len + size as usize,
                None => break,
            }
        }
        ts
    }
}

/// The complete header of a minimal file, assembled by hand from the Matroska
/// specification, to pin the byte layout.
#[test]
fn header_matches_golden_bytes() {
    let mut mux = MkvMuxer::new(video_cfg(100_000));
    let mut out = vec![0xEE]; // unrelated bytes the caller has not written yet
    mux.header(&mut out);
    let mut g: Vec<u8> = vec![0xEE];
    // EBML header: 7 children, 35 bytes
    g.extend([0x1A, 0x45, 0xDF, 0xA3, 0xA3]);
    g.extend([
        0x42, 0x86, 0x81, 1, 0x42, 0xF7, 0x81, 1, 0x42, 0xF2, 0x81, 4,
    ]);
    g.extend([0x42, 0xF3, 0x81, 8, 0x42, 0x82, 0x88]);
    g.extend(b"matroska");
    g.extend([0x42, 0x87, 0x81, 4, 0x42, 0x85, 0x81, 2]);
    // Segment, unknown size; data starts at 40 + 12 = 52
    g.extend([
        0x18, 0x53, 0x80, 0x67, 1, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    ]);
    // SeekHead: 2 entries (42 bytes), then a 63-byte Void (3 spare entries)
    g.extend([0x11, 0x4D, 0x9B, 0x74, 1, 0, 0, 0, 0, 0, 0, 42]);
    let info_rel = 117u8; // Info right after the 117-byte region
    g.extend([0x4D, 0xBB, 0x92, 0x53, 0xAB, 0x84, 0x15, 0x49, 0xA9, 0x66]);
    g.extend([0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, info_rel]);
    let tracks_rel = info_rel + 5 + 26; // Info header + body
    g.extend([0x4D, 0xBB, 0x92, 0x53, 0xAB, 0x84, 0x16, 0x54, 0xAE, 0x6B]);
    g.extend([0x53, 0xAC, 0x88, 0, 0, 0, 0, 0, 0, 0, tracks_rel]);
    g.extend([0xEC, 0xBD]);
    g.extend([0; 61]);
    // Info (26 bytes): TimestampScale 100000, Duration slot, MuxingApp, WritingApp
    g.extend([0x15, 0x49, 0xA9, 0x66, 0x9A]);
    g.extend([0x2A, 0xD7, 0xB1, 0x83, 0x01, 0x86, 0xA0]);
    g.extend([0xEC, 0x89, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    g.extend([0x4D, 0x80, 0x81, b't', 0x57, 0x41, 0x81, b't']);
    // Tracks > TrackEntry (37 bytes)
    g.extend([0x16, 0x54, 0xAE, 0x6B, 0xA7, 0xAE, 0xA5]);
    g.extend([
        0xD7, 0x81, 1, 0x73, 0xC5, 0x81, 7, 0x83, 0x81, 1, 0x9C, 0x81, 0,
    ]);
    g.extend([0x22, 0xB5, 0x9C, 0x83, b'u', b'n', b'd']);
    g.extend([0x86, 0x87]);
    g.extend(b"V_MJPEG");
    g.extend([0xE0, 0x86, 0xB0, 0x81, 2, 0xBA, 0x81, 2]);
    assert_eq!(out, g);
    assert_eq!(mux.position(), g.len() as u64 - 1);
    assert_eq!(mux.layout.segment_data_start, 52);
    assert_eq!(mux.layout.duration_slot, 52 + 117 + 5 + 7);
    assert_eq!(out[mux.layout.duration_slot as usize + 1], 0xEC);
}

#[test]
fn first_block_opens_a_cluster_with_unknown_size() {
    let mut run = Run::new(video_cfg(100_000));
    let header_len = run.file.len();
    assert_eq!(run.block(1, 123_456_789, true), Ok(1235));
    let mut expect = vec![0x1F, 0x43, 0xB6, 0x75];
    expect.extend(ebml::UNKNOWN_SIZE);
    expect.extend([0xE7, 0x82, 0x04, 0xD3]); // Timestamp 1235
    expect.extend([0xA3, 0x88, 0x81, 0, 0, 0x80]); // track 1, rel 0, keyframe
    expect.extend(b"data");
    assert_eq!(&run.file[header_len..], &expect[..]);
    assert!(run.patches.is_empty(), "the open cluster is not patched");
}

#[test]
fn header_then_payload_is_byte_identical_to_a_whole_block() {
    let frames: Vec<Vec<u8>> = (0..40).map(|i| vec![i as u8; 100 + i * 37]).collect();
    let (mut a, mut b) = (
        MkvMuxer::new(video_cfg(100_000)),
        MkvMuxer::new(video_cfg(100_000)),
    );
    let (mut out_a, mut out_b) = (Vec::new(), Vec::new());
    let (mut pa, mut pb) = (Vec::new(), Vec::new());
    a.header(&mut out_a);
    b.header(&mut out_b);
    for (i, f) in frames.iter().enumerate() {
        let t = i as i64 * 70_000_000;
        let ta = a.write_block(1, t, true, f, &mut out_a, &mut pa).unwrap();
        let tb = b
            .write_block_header(1, t, true, f.len(), &mut out_b, &mut pb)
            .unwrap();
        out_b.extend_from_slice(f);
        assert_eq!(ta, tb);
        assert_eq!(a.position(), b.position());
        assert_eq!(b.position(), out_b.len() as u64);
    }
    a.finish(&mut out_a, &mut pa).unwrap();
    b.finish(&mut out_b, &mut pb).unwrap();
    apply(&mut out_a, &pa);
    apply(&mut out_b, &pb);
    assert_eq!(out_a, out_b);
}

#[test]
fn timestamps_round_half_up_to_units() {
    let mut run = Run::new(video_cfg(100_000));
    assert_eq!(run.block(1, 0, true), Ok(0));
    assert_eq!(run.block(1, 49_999, true), Ok(0));
    assert_eq!(run.block(1, 50_000, true), Ok(1));
    assert_eq!(run.block(1, 149_999, true), Ok(1));
    assert_eq!(run.block(1, 150_000, true), Ok(2));
    let mut run = Run::new(video_cfg(1_000));
    assert_eq!(run.block(1, 1_499, true), Ok(1));
    assert_eq!(run.block(1, 1_500, true), Ok(2));
    let mut run = Run::new(video_cfg(1_000_000));
    assert_eq!(run.block(1, 2_500_000, true), Ok(3));
}

#[test]
fn clusters_split_at_max_duration_on_video_keyframes() {
    let mut run = Run::new(with_audio(video_cfg(100_000)));
    run.block(1, 0, true).unwrap();
    run.block(2, 500_000_000, true).unwrap();
    run.block(1, 999_900_000, true).unwrap();
    assert_eq!(run.cluster_timestamps(), [0]);
    // audio at the limit does not split: clusters start with a video frame
    run.block(2, 1_000_000_000, true).unwrap();
    // neither does a video block that is not a keyframe
    run.block(1, 1_010_000_000, false).unwrap();
    assert_eq!(run.cluster_timestamps(), [0]);
    run.block(1, 1_020_000_000, true).unwrap();
    assert_eq!(run.cluster_timestamps(), [0, 10_200]);
    assert_eq!(run.patches.len(), 1, "closing a cluster patches its size");
    let s = run.finish();
    // Four video frames and two audio blocks.
    assert_eq!((s.blocks, s.frames, s.clusters), (6, 4, 2));
    assert_eq!(
        run.mux
            .layout
            .cue_points
            .iter()
            .map(|c| c.time)
            .collect::<Vec<_>>(),
        [0, 10_200]
    );
}

#[test]
fn relative_timestamps_stay_in_i16_range() {
    let mut run = Run::new(with_audio(video_cfg(100_000)));
    // unit 100 µs: i16 reaches 3.2767 s, more than max_cluster, so only a
    // non-keyframe stream (here audio) reaches the limit
    run.block(2, 5_000_000_000, true).unwrap();
    run.block(2, 5_000_000_000 + 3_276_700_000, true).unwrap();
    assert_eq!(run.cluster_timestamps(), [50_000]);
    run.block(2, 5_000_000_000 + 3_276_800_000, true).unwrap();
    assert_eq!(run.cluster_timestamps(), [50_000, 82_768]);
    // back in time: at most 32768 units before the cluster start
    assert!(run.block(1, 5_000_000_000, true).is_ok());
    assert_eq!(
        run.block(1, 4_999_900_000, true),
        Err(MuxError::TooFarBack {
            time_ns: 4_999_900_000,
            behind: 32_769,
            cluster_timestamp: 82_768
        })
    );
    // with a 1 µs unit the i16 range (32.767 ms) is shorter than max_cluster
    let mut run = Run::new(video_cfg(1_000));
    for i in 0..10 {
        run.block(1, i * 10_000_000, true).unwrap();
    }
    assert_eq!(run.cluster_timestamps(), [0, 40_000, 80_000]);
}

#[test]
fn misuse_is_an_error_not_a_panic() {
    let mut mux = MkvMuxer::new(video_cfg(100_000));
    let (mut out, mut patches) = (Vec::new(), Vec::new());
    assert_eq!(
        mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
        Err(MuxError::NoHeader)
    );
    assert_eq!(mux.finish(&mut out, &mut patches), Err(MuxError::NoHeader));
    mux.header(&mut out);
    let len = out.len();
    mux.header(&mut out);
    assert_eq!(out.len(), len, "a second header() writes nothing");
    assert_eq!(
        mux.write_block(3, 0, true, b"x", &mut out, &mut patches),
        Err(MuxError::UnknownTrack(3))
    );
    assert_eq!(
        mux.write_block(1, -1, true, b"x", &mut out, &mut patches),
        Err(MuxError::NegativeTime(-1))
    );
    assert_eq!(out.len(), len, "failed calls write nothing");
    mux.finish(&mut out, &mut patches).unwrap();
    assert_eq!(
        mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
        Err(MuxError::Finished)
    );
    assert_eq!(mux.finish(&mut out, &mut patches), Err(MuxError::Finished));

    let mut cfg = with_audio(video_cfg(100_000));
    cfg.tracks[1].number = 1;
    let mut mux = MkvMuxer::new(cfg);
    let mut out = Vec::new();
    mux.header(&mut out);
    assert!(out.is_empty());
    assert!(matches!(
        mux.write_block(1, 0, true, b"x", &mut out, &mut patches),
        Err(MuxError::InvalidConfig(_))
    ));
    for bad in [
        MuxerConfig {
            tracks: vec![],
            ..video_cfg(100_000)
        },
        video_cfg(0),
    ] {
        assert!(matches!(
            MkvMuxer::new(bad).finish(&mut out, &mut patches),
            Err(MuxError::InvalidConfig(_))
        ));
    }
}

#[test]
fn finish_patches_sizes_duration_and_seekhead() {
    let mut cfg = video_cfg(100_000);
    cfg.tags = vec![("CAMERA".into(), "cam0".into())];
    let mut run = Run::new(cfg);
    for (i, t) in [0i64, 40_000_000, 1_100_000_000, 1_133_300_000]
        .iter()
        .enumerate()
    {
        run.block(1, *t, i % 2 == 0).unwrap();
    }
    run.mux.add_chapter(1_000_000_000, "b");
    run.mux.add_chapter(-5, "a");
    let s = run.finish();
    // last video block 11333 + interval 333 units
    assert_eq!(s.duration_ns, 11_666 * 100_000);
    assert_eq!((s.blocks, s.clusters), (4, 2));
    // the Segment size is the last patch, and says "up to the end of the file"
    let last = run.patches.last().unwrap();
    assert_eq!(last.offset, 44);
    assert_eq!(last.bytes, ebml::size8(run.file.len() as u64 - 52));

    let f = &run.file;
    let mut top = Reader::new(&f[52..]);
    let mut seen = Vec::new();
    let mut seek = Vec::new();
    while let Some((h, body)) = top.next_element().unwrap() {
        seen.push(h.id);
        match h.id {
            id::SEEK_HEAD => {
                assert_eq!(h.size_len, 8);
                let mut r = Reader::new(body);
                while let Some((_, s)) = r.next_element().unwrap() {
                    let mut r = Reader::new(s);
                    let (_, sid) = r.next_element().unwrap().unwrap();
                    let (_, pos) = r.next_element().unwrap().unwrap();
                    seek.push((sid.to_vec(), ebml::read_uint(pos).unwrap()));
                }
            }
            id::INFO => {
                let mut r = Reader::new(body);
                r.next_element().unwrap();
                let (d, v) = r.next_element().unwrap().unwrap();
                assert_eq!((d.id, ebml::read_float(v)), (id::DURATION, Ok(11_666.0)));
            }
            id::CLUSTER => assert_eq!(h.size_len, 8),
            _ => {}
        }
    }
    let c = [id::CLUSTER, id::CLUSTER];
    assert_eq!(
        seen,
        [
            &[id::SEEK_HEAD, id::INFO, id::TRACKS, id::TAGS][..],
            &c,
            &[id::CUES, id::CHAPTERS]
        ]
        .concat()
    );
    assert_eq!(
        seek.len(),
        5,
        "the region is full: no Void after the SeekHead"
    );
    for (sid, pos) in seek {
        let at = 52 + pos as usize;
        assert_eq!(&f[at..at + 4], &sid[..], "seek entry points at its element");
    }
    let mut tail = Vec::new();
    write_chapters(&mut tail, &run.mux.layout.chapters);
    assert!(f.ends_with(&tail));
    let at = |s: u8| tail.windows(3).position(|w| w == [0x85, 0x81, s]).unwrap();
    let (a, b) = (at(b'a'), at(b'b'));
    assert!(a < b, "chapters are written in time order");
}

#[test]
fn finishing_without_blocks_leaves_a_valid_empty_segment() {
    let mut run = Run::new(video_cfg(100_000));
    let header_len = run.file.len();
    let s = run.finish();
    assert_eq!(
        s,
        FinishSummary {
            duration_ns: 0,
            blocks: 0,
            frames: 0,
            clusters: 0
        }
    );
    assert_eq!(run.file.len(), header_len, "no Cues without clusters");
    // no Duration: the Void stays
    assert_eq!(run.file[run.mux.layout.duration_slot as usize], 0xEC);
    assert_eq!(run.patches.len(), 2, "SeekHead region and Segment size");
}

#[test]
fn duration_is_the_last_frame_plus_the_last_interval() {
    let mut layout = Layout::new(52, SEEK_REGION_LEN, Vec::new(), 0, 100_000);
    assert_eq!(layout.duration_units(), None);
    let mut cluster = layout.open_cluster(100);
    layout.record_block(&mut cluster, 1, 0, true, true);
    assert_eq!(
        layout.duration_units(),
        Some(1),
        "Duration must be positive"
    );
    layout.record_block(&mut cluster, 2, 50, false, true);
    layout.record_block(&mut cluster, 1, 40, true, true);
    assert_eq!(layout.duration_units(), Some(80), "audio does not count");
    // timestamps from a damaged file cannot overflow it
    layout.record_block(&mut cluster, 1, -32_768, true, true);
    layout.record_block(&mut cluster, 1, i64::MAX, true, true);
    assert_eq!(layout.duration_units(), Some(i64::MAX));
    assert_eq!(layout.cue_points.len(), 1, "one cue per cluster");
}

#[test]
fn finalize_refuses_a_too_small_seek_region() {
    let mut layout = Layout::new(52, 12 + 2 * 21 + 1, vec![(id::INFO, 200)], 300, 1000);
    let mut cluster = layout.open_cluster(400);
    layout.record_block(&mut cluster, 1, 0, true, true);
    let (mut out, mut patches) = (Vec::new(), Vec::new());
    assert_eq!(
        layout.finalize(500, &mut out, &mut patches),
        Err(MuxError::SeekRegionTooSmall {
            needed: 54,
            reserved: 55
        })
    );
    assert!(out.is_empty() && patches.is_empty());
    layout.seek_region_len = 54;
    layout.finalize(500, &mut out, &mut patches).unwrap();
    assert_eq!(patches[1].bytes.len(), 54);
}

#[test]
fn finish_appends_no_more_than_its_bound() {
    // Long cue times and far cluster positions (the widest values), and chapters.
    let mut run = Run::new(video_cfg(1));
    for i in 0..300i64 {
        // A cluster per block: one cue point each, at large times.
        run.block(1, (1 << 40) + i * 2_000_000_000, true).unwrap();
        if i % 100 == 0 {
            run.mux.add_chapter(i * 7, &"m".repeat(i as usize));
        }
    }
    let (before, bound) = (run.mux.position(), run.mux.finish_bound());
    assert!(
        bound > 300 * 20,
        "a bound of {bound} bytes for 300 cue points"
    );
    run.finish();
    let appended = run.mux.position() - before;
    assert!(
        appended <= bound && appended > 0,
        "finish appended {appended} bytes, bound {bound}"
    );
    // Nothing to append, nothing bounded.
    let empty = Run::new(video_cfg(1));
    assert_eq!(empty.mux.finish_bound(), 0);
}
