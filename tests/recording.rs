//! Recordings play on phones, browsers and hardware decoders: whatever the format of the
//! frames (RGB from a test source, YUY2 from a webcam, I420 from a decoder), the file
//! holds 4:2:0 H.264 in the High profile or below (x264enc ultrafast gives constrained
//! baseline), never High 4:4:4.

mod common;

use std::path::Path;
use std::time::Duration;

use gst::prelude::*;
use stylized::config::RecordingConfig;
use stylized::recording::{Container, FeedSlot, Recorder};

use common::*;

/// Records `frames` frames of `format` at 160x120 into `path`.
fn record(format: gst_video::VideoFormat, container: Container, path: &Path, frames: u64) {
    init();
    let config = RecordingConfig {
        directory: path.parent().unwrap().to_path_buf(),
        container,
        ..Default::default()
    };
    let feed = FeedSlot::default();
    let recorder = Recorder::start(&config, 30, path, &feed).expect("the recording starts");
    let info = gst_video::VideoInfo::builder(format, 160, 120)
        .fps(gst::Fraction::new(30, 1))
        .build()
        .unwrap();
    let caps = info.to_caps().unwrap();
    for i in 0..frames {
        let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(i * 1000 / 30));
            let mut map = b.map_writable().unwrap();
            for (j, byte) in map.iter_mut().enumerate() {
                *byte = (j as u64 + i * 7) as u8;
            }
        }
        let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
        feed.lock()
            .unwrap()
            .as_mut()
            .expect("plugged in")
            .push(&sample);
    }
    recorder
        .finish(Duration::from_secs(10))
        .expect("the file is finalized");
}

/// The caps h264parse gives the recorded stream: (profile, chroma-format).
fn h264_caps(path: &Path) -> (String, String) {
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! parsebin ! h264parse ! fakesink name=sink",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let (result, ..) = pipeline.state(gst::ClockTime::from_seconds(10));
    result.expect("the recording prerolls");
    let sink = pipeline.by_name("sink").unwrap();
    let caps = sink
        .static_pad("sink")
        .unwrap()
        .current_caps()
        .expect("caps");
    pipeline.set_state(gst::State::Null).unwrap();
    let s = caps.structure(0).unwrap();
    let field = |name| {
        s.get::<String>(name)
            .unwrap_or_else(|_| format!("no {name} in {s}"))
    };
    (field("profile"), field("chroma-format"))
}

#[test]
fn recordings_are_4_2_0_in_a_common_profile_whatever_the_source_format() {
    let dir = tempfile::tempdir().unwrap();
    for format in [
        gst_video::VideoFormat::Rgb,
        gst_video::VideoFormat::Yuy2,
        gst_video::VideoFormat::I420,
    ] {
        for container in [Container::Matroska, Container::Mp4] {
            let path = dir
                .path()
                .join(format!("{format:?}.{}", container.extension()));
            record(format, container, &path, 30);
            let (profile, chroma) = h264_caps(&path);
            println!("{format:?} in {container:?}: profile {profile}, chroma {chroma}");
            assert_eq!(chroma, "4:2:0", "{format:?} {container:?}");
            assert!(
                ["constrained-baseline", "baseline", "main", "high"].contains(&profile.as_str()),
                "{format:?} {container:?}: profile {profile}"
            );
        }
    }
}
