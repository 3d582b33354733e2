//! The element alone in a `gst_check::Harness`: in-place output keeps size, format and
//! timestamps for every buffer.

use gst::prelude::*;

fn init() {
    use std::sync::Once;
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        gst::init().unwrap();
        gststylize::plugin_register_static().expect("stylize registers");
    });
}

#[test]
fn keeps_timestamps_sizes_and_every_buffer() {
    init();
    let mut h = gst_check::Harness::new("stylize");
    let (w, hgt) = (40u32, 30u32);
    let caps = gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Bgrx)
        .width(w as i32)
        .height(hgt as i32)
        .framerate(gst::Fraction::new(25, 1))
        .build();
    h.set_src_caps(caps.clone());
    let frame_size = (w * hgt * 4) as usize;
    for i in 0..4u64 {
        let pattern: Vec<u8> = (0..frame_size)
            .map(|j| ((j as u64 * 7 + i * 13) % 256) as u8)
            .collect();
        let mut buffer = gst::Buffer::from_mut_slice(pattern);
        {
            let b = buffer.get_mut().unwrap();
            b.set_pts(gst::ClockTime::from_mseconds(40 * i));
            b.set_duration(gst::ClockTime::from_mseconds(40));
        }
        assert_eq!(h.push(buffer), Ok(gst::FlowSuccess::Ok));
    }
    for i in 0..4u64 {
        let out = h.pull().expect("one output per input");
        assert_eq!(out.pts(), Some(gst::ClockTime::from_mseconds(40 * i)));
        assert_eq!(out.duration(), Some(gst::ClockTime::from_mseconds(40)));
        assert_eq!(out.size(), frame_size);
    }
    let out_caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(out_caps, caps);
    let element = h.element().unwrap();
    assert!(!element.property::<String>("active-accelerator").is_empty());
    assert!(element.property::<f64>("inference-ms") > 0.0);
}
