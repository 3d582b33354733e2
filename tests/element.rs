//! The `stylize` element in real pipelines with the real runtime and models.

mod common;

use std::process::Command;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use gst::prelude::*;

const FORMATS: &[&str] = &[
    "RGB",
    "RGBx",
    "xRGB",
    "BGRx",
    "xBGR",
    "RGBA",
    "BGRA",
    "BGR",
    "I420",
    "YV12",
    "NV12",
    "NV21",
    "NV16",
    "Y41B",
    "Y42B",
    "Y444",
    "YUY2",
    "UYVY",
    "YVYU",
    "GRAY8",
    "GRAY16_LE",
];

/// Mean absolute difference between two buffers' bytes.
fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .sum::<f64>()
        / a.len() as f64
}

fn buffer_bytes(sample: &gst::Sample) -> Vec<u8> {
    sample
        .buffer()
        .expect("buffer")
        .map_readable()
        .expect("readable")
        .to_vec()
}

#[test]
fn every_format_and_odd_sizes_pass_through_with_the_same_caps() {
    for &format in FORMATS {
        for (w, h) in [(16, 16), (33, 17), (321, 239)] {
            let caps = format!("video/x-raw,format={format},width={w},height={h},framerate=30/1");
            let styled = run_pipeline(&format!(
                "videotestsrc num-buffers=2 pattern=smpte ! {caps} ! stylize style=monet ! appsink name=sink"
            ));
            assert!(styled.errors.is_empty(), "{caps}: {:?}", styled.errors);
            assert_eq!(styled.samples.len(), 2, "{caps}: a frame was lost");
            let plain = run_pipeline(&format!(
                "videotestsrc num-buffers=1 pattern=smpte ! {caps} ! appsink name=sink"
            ));
            for sample in &styled.samples {
                let out_caps = sample.caps().expect("caps").to_owned();
                let s = out_caps.structure(0).expect("structure");
                assert_eq!(s.get::<&str>("format").unwrap(), format, "{caps}");
                assert_eq!(s.get::<i32>("width").unwrap(), w);
                assert_eq!(s.get::<i32>("height").unwrap(), h);
            }
            let diff = mean_abs_diff(
                &buffer_bytes(&styled.samples[0]),
                &buffer_bytes(&plain.samples[0]),
            );
            assert!(
                diff > 5.0,
                "{caps}: output looks unstylized (mean diff {diff:.2})"
            );
        }
    }
}

#[test]
fn four_k_i420_is_stylized() {
    let out = run_pipeline(
        "videotestsrc num-buffers=1 ! video/x-raw,format=I420,width=3840,height=2160 ! stylize ! appsink name=sink",
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples.len(), 1);
}

/// Pushes the same frame six times; the style changes after the third output.
#[test]
fn style_switch_while_playing_applies_from_the_next_frame_without_loss() {
    let frame = Rgb::load(&shared().join("content/tiger.jpg"));
    let (pipeline, sink) =
        launch("appsrc name=src format=time ! stylize name=st style=monet ! appsink name=sink");
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    let stylizer = pipeline.by_name("st").unwrap();
    src.set_caps(Some(&rgb_caps(frame.width, frame.height, 30)));
    for i in 0..3 {
        src.push_buffer(rgb_buffer(&frame, i, 30)).unwrap();
    }
    let pushed_rest = std::cell::Cell::new(false);
    let outcome = drive(&pipeline, Some(&sink), |count| {
        if count == 3 && !pushed_rest.get() {
            stylizer.set_property("style", "great_wave");
            for i in 3..6 {
                src.push_buffer(rgb_buffer(&frame, i, 30)).unwrap();
            }
            src.end_of_stream().unwrap();
            pushed_rest.set(true);
        }
    });
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert_eq!(outcome.samples.len(), 6, "no frame may be lost");
    let frames: Vec<Rgb> = outcome.samples.iter().map(Rgb::from_sample).collect();
    assert_eq!(frames[0], frames[2], "same style, same frame, same output");
    assert_eq!(frames[3], frames[5]);
    let p = psnr(&frames[2], &frames[3]);
    assert!(
        p < 25.0,
        "the switch did not change the next frame (PSNR {p:.1})"
    );
}

#[test]
fn unknown_style_is_an_error_that_lists_the_known_ids() {
    let out = run_pipeline(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! stylize style=no_such_style ! appsink name=sink",
    );
    let err = out.errors.join("\n");
    assert!(err.contains("no_such_style"), "{err}");
    assert!(
        err.contains("known styles:") && err.contains("monet"),
        "{err}"
    );
}

#[test]
fn unknown_style_set_while_playing_is_an_error_not_a_crash() {
    let (pipeline, sink) = launch(
        "videotestsrc num-buffers=30 ! video/x-raw,width=64,height=48 ! stylize name=st ! appsink name=sink",
    );
    let stylizer = pipeline.by_name("st").unwrap();
    let out = drive(&pipeline, Some(&sink), |count| {
        if count == 2 {
            stylizer.set_property("style", "nope");
        }
    });
    let err = out.errors.join("\n");
    assert!(
        err.contains("\"nope\"") && err.contains("known styles:"),
        "{err}"
    );
    assert!(out.samples.len() >= 2);
}

fn start_error(properties: &str) -> String {
    let out = run_pipeline(&format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! stylize {properties} ! appsink name=sink"
    ));
    assert!(out.samples.is_empty(), "{properties}: frames flowed");
    out.errors.join("\n")
}

#[test]
fn missing_or_corrupt_files_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.bin");
    std::fs::write(&garbage, b"this is not a model, a store or a library").unwrap();
    let missing = dir.path().join("missing");
    let (g, m) = (garbage.display(), missing.display());

    let err = start_error(&format!("accelerator=cpu model={m}.tflite"));
    assert!(
        err.contains("missing.tflite") && err.contains("stylize-models"),
        "{err}"
    );

    let err = start_error(&format!("accelerator=cpu model={g}"));
    assert!(
        err.contains("garbage.bin") && err.contains("cannot be used"),
        "{err}"
    );

    let err = start_error(&format!("store={m}.json"));
    assert!(err.contains("missing.json"), "{err}");

    let err = start_error(&format!("store={g}"));
    assert!(
        err.contains("garbage.bin") && err.contains("not valid JSON"),
        "{err}"
    );

    let err = start_error(&format!("litert-library={m}.so"));
    assert!(
        err.contains("missing.so") && err.contains("setup-litert.sh"),
        "{err}"
    );

    let err = start_error(&format!("litert-library={g}"));
    assert!(
        err.contains("garbage.bin") && err.contains("could not be loaded"),
        "{err}"
    );
}

fn stylize_once(properties: &str) -> Rgb {
    let out = run_pipeline(&format!(
        "filesrc location={} ! jpegdec ! videoconvert ! video/x-raw,format=RGB ! stylize {properties} ! appsink name=sink",
        shared().join("content/dog_and_cats.jpg").display()
    ));
    assert!(out.errors.is_empty(), "{properties}: {:?}", out.errors);
    Rgb::from_sample(&out.samples[0])
}

#[test]
fn blend_zero_and_one_differ() {
    let pure = stylize_once("style=kandinsky blend=0");
    let own = stylize_once("style=kandinsky blend=1");
    let half = stylize_once("style=kandinsky blend=0.5");
    let p = psnr(&pure, &own);
    assert!(p < 25.0, "blend 0 and 1 look alike (PSNR {p:.1})");
    assert!(
        psnr(&half, &pure) > p && psnr(&half, &own) > p,
        "blend 0.5 lies between"
    );
}

/// Without a hardware GPU (none here; lavapipe, where installed, is software) `auto`
/// takes the CPU at once, says why, warns of nothing, and never loads the GPU
/// accelerator. No test in this file forces the GPU, so the check of the process's
/// libraries holds for all of them.
#[test]
fn auto_accelerator_without_a_hardware_gpu_takes_the_cpu_quietly() {
    let (pipeline, sink) = launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! stylize name=st accelerator=auto ! appsink name=sink",
    );
    let stylizer = pipeline.by_name("st").unwrap();
    let (mut active, mut reason) = (String::new(), String::new());
    let out = drive(&pipeline, Some(&sink), |_| {
        active = stylizer.property::<String>("active-accelerator");
        reason = stylizer.property::<String>("accelerator-reason");
    });
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples.len(), 2);
    assert!(
        stylize::vulkan::hardware_device().is_err(),
        "this test expects a machine without a hardware GPU: run it with \
         VK_DRIVER_FILES=/nonexistent"
    );
    assert_eq!(active, "cpu");
    assert!(reason.starts_with("cpu: no GPU to race ("), "{reason}");
    assert!(out.warnings.is_empty(), "{:?}", out.warnings);
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(
        !maps.contains(stylize::litert::GPU_ACCELERATOR_NAME),
        "auto loaded the GPU accelerator"
    );
    // On an arm64 core without the features the accelerator was built for (Cortex-A72
    // under qemu in scripts/test-arm64.sh), loading it would abort the process.
    let missing = stylize::litert::gpu_accelerator_cpu_gap();
    if !missing.is_empty() {
        assert!(
            reason.contains("lacks features") && reason.contains(missing[0]),
            "{reason}"
        );
    }
}

/// The GPU program cache: a settable folder, never made for a CPU-only element, and one
/// that cannot be made costs the stream nothing.
#[test]
fn cache_dir_is_a_folder_setting_that_never_stops_the_stream() {
    init();
    let element = gst::ElementFactory::make("stylize").build().unwrap();
    element.set_property("cache-dir", "/var/cache/somewhere");
    assert_eq!(
        element.property::<Option<String>>("cache-dir").as_deref(),
        Some("/var/cache/somewhere")
    );
    element.set_property("cache-dir", "");
    assert_eq!(element.property::<Option<String>>("cache-dir"), None);

    let dir = tempfile::tempdir().unwrap();
    let unused = dir.path().join("unused");
    let blocker = dir.path().join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    for properties in [
        format!("accelerator=cpu cache-dir={}", unused.display()),
        format!("accelerator=auto cache-dir={}/sub", blocker.display()),
    ] {
        let out = run_pipeline(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! stylize {properties} ! appsink name=sink"
        ));
        assert!(out.errors.is_empty(), "{properties}: {:?}", out.errors);
        assert_eq!(out.samples.len(), 2, "{properties}");
    }
    assert!(
        !unused.exists(),
        "a CPU-only element made the GPU cache folder"
    );
}

#[test]
fn latency_query_reports_the_processing_time() {
    let (pipeline, sink) = launch(
        "videotestsrc is-live=true num-buffers=5 ! video/x-raw,width=64,height=48,framerate=30/1 ! stylize name=st ! appsink name=sink",
    );
    let stylizer = pipeline.by_name("st").unwrap();
    let mut reported = None;
    let out = drive(&pipeline, Some(&sink), |count| {
        if count == 3 {
            let mut q = gst::query::Latency::new();
            assert!(stylizer.static_pad("src").unwrap().query(&mut q));
            reported = Some(q.result());
        }
    });
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let (live, min, _max) = reported.expect("queried");
    assert!(live);
    let ms: f64 = stylizer.property("inference-ms");
    assert!(ms > 0.0);
    // videotestsrc reports one frame (33 ms); ours comes on top.
    assert!(min > gst::ClockTime::from_mseconds(34), "min latency {min}");
}

/// The exact command from the issue, with the plugin found through GST_PLUGIN_PATH.
#[test]
fn gst_launch_line_exits_zero() {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    assert!(
        profile_dir.join("libgststylize.so").exists(),
        "{} has no libgststylize.so: build the workspace first (scripts/test.sh does)",
        profile_dir.display()
    );
    let out = Command::new("gst-launch-1.0")
        .env("GST_PLUGIN_PATH", profile_dir)
        .args(
            "videotestsrc num-buffers=60 ! video/x-raw,format=YUY2,width=640,height=480 ! stylize style=monet ! fakesink"
                .split(' '),
        )
        .output()
        .expect("gst-launch-1.0 runs");
    assert!(
        out.status.success(),
        "gst-launch failed: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Got EOS"));
}

/// The core logs with `tracing`; inside gst-launch-1.0 its warnings reach the GStreamer
/// debug log under the element's category, and stay out of it when not asked for.
#[test]
fn gst_launch_shows_engine_warnings_in_the_gstreamer_log() {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    let run = |debug: Option<&str>| {
        let mut command = Command::new("gst-launch-1.0");
        command
            .env("GST_PLUGIN_PATH", profile_dir)
            .env("GST_DEBUG_NO_COLOR", "1")
            .env_remove("GST_DEBUG")
            .args(
                "-q videotestsrc num-buffers=1 ! video/x-raw,width=64,height=48 ! stylize inference-size=66 parallel-frames=2 accelerator=cpu ! fakesink"
                    .split(' '),
            );
        if let Some(debug) = debug {
            command.env("GST_DEBUG", debug);
        }
        let out = command.output().expect("gst-launch-1.0 runs");
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let warning = "inference size 66 is not a multiple of 4: the network runs at 64";
    let log = run(Some("stylize:5"));
    // Once, although the element starts three engines (two workers and the first).
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(warning)).collect();
    assert_eq!(
        lines.len(),
        1,
        "engine warnings in the GStreamer log:\n{log}"
    );
    assert!(
        lines[0].contains("WARN") && lines[0].contains(" stylize "),
        "{}",
        lines[0]
    );
    // Debug lines of the core come the same way (the engine compiles its network).
    assert!(
        log.lines()
            .any(|l| l.contains("DEBUG") && l.contains("compiled transfer network")),
        "{log}"
    );
    assert!(!run(Some("stylize:1")).contains(warning));
}

/// An element error's headline (what gst-launch prints after "ERROR: from element")
/// states the cause, not only GStreamer's generic text for its domain.
#[test]
fn gst_launch_error_headlines_state_the_cause() {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|d| d.parent()).unwrap();
    for (properties, cause) in [
        ("style=no_such_style", "unknown style \"no_such_style\""),
        ("store=/nonexistent/styles.json", "/nonexistent/styles.json"),
        (
            "accelerator=cpu model=/nonexistent/m.tflite",
            "/nonexistent/m.tflite",
        ),
        (
            "accelerator=cpu litert-library=/nonexistent/libLiteRt.so",
            "/nonexistent/libLiteRt.so",
        ),
    ] {
        let out = Command::new("gst-launch-1.0")
            .env("GST_PLUGIN_PATH", profile_dir)
            .args(
                format!("videotestsrc num-buffers=1 ! stylize {properties} ! fakesink").split(' '),
            )
            .output()
            .expect("gst-launch-1.0 runs");
        assert!(!out.status.success(), "{properties}");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let headline = text
            .lines()
            .find(|l| l.starts_with("ERROR: from element"))
            .unwrap_or_else(|| panic!("{properties}: no error line in\n{text}"));
        assert!(headline.contains(cause), "{properties}: {headline}");
    }
}

/// Stylizes one RGB frame pushed with `caps` and the video `flags` (deflicker off, on
/// the CPU); returns the output sample.
fn stylize_one(img: &Rgb, caps: &gst::Caps, flags: gst_video::VideoBufferFlags) -> gst::Sample {
    let (pipeline, sink) = launch(
        "appsrc name=src format=time ! stylize deflicker=0 accelerator=cpu ! appsink name=sink",
    );
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(caps));
    let mut buffer = rgb_buffer(img, 0, 25);
    {
        use gst_video::prelude::*;
        buffer.get_mut().unwrap().set_video_flags(flags);
    }
    src.push_buffer(buffer).unwrap();
    src.end_of_stream().unwrap();
    let mut out = drive(&pipeline, Some(&sink), |_| {});
    assert!(out.errors.is_empty(), "{caps}: {:?}", out.errors);
    assert_eq!(out.samples.len(), 1, "{caps}");
    out.samples.remove(0)
}

/// An interlaced frame whose two fields show different pictures (as a fast pan or a
/// scene cut between fields would) must be painted as one picture, the field that
/// comes first, never as the comb of both; the output says it is progressive.
#[test]
fn interlaced_frames_are_deinterlaced_before_the_network_sees_them() {
    init();
    let (w, h) = (320, 240);
    let top = content_photo("tiger.jpg", Some((w, h)));
    let bottom = content_photo("golden_gate.jpg", Some((w, h)));
    let mut combed = top.clone();
    for y in (1..h).step_by(2) {
        combed.data[y * w * 3..(y + 1) * w * 3]
            .copy_from_slice(&bottom.data[y * w * 3..(y + 1) * w * 3]);
    }
    let progressive = rgb_caps(w, h, 25);
    let painted = |img: &Rgb| {
        Rgb::from_sample(&stylize_one(
            img,
            &progressive,
            gst_video::VideoBufferFlags::empty(),
        ))
    };
    let (top_painted, bottom_painted, comb_painted) =
        (painted(&top), painted(&bottom), painted(&combed));
    for (order, mode, first) in [
        ("top-field-first", "interleaved", &top_painted),
        ("bottom-field-first", "interleaved", &bottom_painted),
        ("top-field-first", "mixed", &top_painted),
    ] {
        let mut caps = progressive.copy();
        caps.make_mut().set("interlace-mode", mode);
        caps.make_mut().set("field-order", order);
        // In a mixed stream, the buffer says whether the frame is interlaced.
        let flags = if mode == "mixed" {
            gst_video::VideoBufferFlags::INTERLACED | gst_video::VideoBufferFlags::TFF
        } else {
            gst_video::VideoBufferFlags::empty()
        };
        let sample = stylize_one(&combed, &caps, flags);
        let out_caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
        assert_eq!(
            out_caps
                .get::<&str>("interlace-mode")
                .unwrap_or("progressive"),
            "progressive",
            "{caps}: {out_caps}"
        );
        assert!(!out_caps.has_field("field-order"), "{out_caps}");
        {
            use gst_video::prelude::*;
            let flags = sample.buffer().unwrap().video_flags();
            assert!(
                !flags.intersects(
                    gst_video::VideoBufferFlags::INTERLACED | gst_video::VideoBufferFlags::TFF
                ),
                "{caps}: {flags:?}"
            );
        }
        let out = Rgb::from_sample(&sample);
        let (to_first, to_comb) = (psnr(&out, first), psnr(&out, &comb_painted));
        eprintln!("{mode} {order}: PSNR {to_first:.1} dB to the first field's painting, {to_comb:.1} dB to the comb's");
        assert!(
            to_first > 22.0 && to_first > to_comb + 6.0,
            "{mode} {order}: {to_first:.1} dB to the first field's painting, {to_comb:.1} dB to the comb's"
        );
    }
}

/// Interlaced streams as decoders and capture cards hand them out, in a pipeline:
/// every frame comes out, progressive, for a 4:2:0 and a packed 4:2:2 format.
#[test]
fn interleaved_and_mixed_streams_pass_every_frame_progressive() {
    for format in ["I420", "YUY2", "NV12"] {
        for pattern in ["2:2", "2:3"] {
            let out = run_pipeline(&format!(
                "videotestsrc num-buffers=8 pattern=ball ! video/x-raw,format={format},width=322,height=242,framerate=30/1 \
                 ! interlace field-pattern={pattern} ! stylize ! appsink name=sink"
            ));
            assert!(
                out.errors.is_empty(),
                "{format} {pattern}: {:?}",
                out.errors
            );
            assert!(
                out.samples.len() >= 8,
                "{format} {pattern}: {} frames",
                out.samples.len()
            );
            for sample in &out.samples {
                let s = sample.caps().unwrap().structure(0).unwrap();
                assert_eq!(s.get::<&str>("interlace-mode").unwrap(), "progressive");
                assert_eq!(s.get::<&str>("format").unwrap(), format);
            }
        }
    }
}

/// The README's `filesrc ! decodebin ! stylize` line with an interlaced recording
/// (interlaced H.264, as from a broadcast or a camcorder).
#[test]
fn an_interlaced_h264_file_plays_through_decodebin() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("interlaced.mkv");
    init();
    let writer = gst::parse::launch(&format!(
        "videotestsrc num-buffers=10 pattern=ball ! video/x-raw,format=I420,width=320,height=240,framerate=30/1 \
         ! interlace field-pattern=2:2 ! x264enc interlaced=true speed-preset=ultrafast ! matroskamux \
         ! filesink location={}",
        file.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let made = drive(&writer, None, |_| {});
    assert!(made.errors.is_empty(), "{:?}", made.errors);
    let decoded = run_pipeline(&format!(
        "filesrc location={} ! decodebin ! appsink name=sink",
        file.display()
    ));
    let mode = decoded.samples[0]
        .caps()
        .unwrap()
        .structure(0)
        .unwrap()
        .get::<String>("interlace-mode");
    assert!(
        mode.as_deref().is_ok_and(|m| m != "progressive"),
        "the test file must decode as interlaced: {mode:?}"
    );
    let out = run_pipeline(&format!(
        "filesrc location={} ! decodebin ! stylize style=scream ! appsink name=sink",
        file.display()
    ));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples.len(), 10);
}

/// Frames much wider than tall (or taller than wide) negotiate and run: the network's
/// short side never goes below what it can take.
#[test]
fn very_wide_and_very_tall_frames_are_stylized() {
    for (w, h, size) in [
        (1920, 28, 384),
        (28, 1920, 384),
        (1280, 200, 32),
        (4096, 16, 384),
    ] {
        let out = run_pipeline(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,format=I420,width={w},height={h} ! stylize accelerator=cpu inference-size={size} ! appsink name=sink"
        ));
        assert!(out.errors.is_empty(), "{w}x{h} at {size}: {:?}", out.errors);
        assert_eq!(out.samples.len(), 2, "{w}x{h} at {size}");
    }
}

/// The latency `st` adds, from a latency query on its src pad (less what upstream
/// reports).
fn added_latency(st: &gst::Element) -> Duration {
    let src = st.static_pad("src").unwrap();
    let mut ours = gst::query::Latency::new();
    assert!(src.query(&mut ours), "latency query failed");
    let mut upstream = gst::query::Latency::new();
    assert!(st.static_pad("sink").unwrap().peer_query(&mut upstream));
    let added = ours.result().1.saturating_sub(upstream.result().1);
    Duration::from_nanos(added.nseconds())
}

/// A live sink must know the latency before the first frame reaches it, or it drops the
/// first second: the element warms its engines up at the first caps and reports what a
/// frame takes.
#[test]
fn the_latency_is_known_before_the_first_frame() {
    let (pipeline, sink) = launch(
        "videotestsrc is-live=true num-buffers=3 ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! stylize name=st accelerator=cpu ! appsink name=sink",
    );
    let st = pipeline.by_name("st").unwrap();
    let at_first_frame = Arc::new(Mutex::new(None));
    {
        let at_first_frame = at_first_frame.clone();
        let weak = st.downgrade();
        st.static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                let mut first = at_first_frame.lock().unwrap();
                if first.is_none() {
                    *first = weak.upgrade().map(|st| added_latency(&st));
                }
                gst::PadProbeReturn::Remove
            });
    }
    let out = drive(&pipeline, Some(&sink), |_| {});
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let first = at_first_frame.lock().unwrap().expect("a frame came");
    eprintln!("latency at the first frame: {first:?}");
    assert!(
        first >= Duration::from_millis(2),
        "no latency reported before the first frame: {first:?}"
    );
}

/// The latency follows how long frames stay in the element, in both directions: up
/// while frames take long (here 1080p frames, whose colour conversion and scaling
/// dwarf a small network), and down again once they are quick (tiny frames after a caps
/// change). (That waiting for downstream does not count is a unit test of the pool.)
#[test]
fn the_latency_comes_down_again_after_slow_frames() {
    let (pipeline, sink) = launch(
        "videotestsrc num-buffers=100 ! capsfilter name=size caps=video/x-raw,format=I420,width=1920,height=1080 \
         ! stylize name=st accelerator=cpu deflicker=0 inference-size=32 ! appsink name=sink",
    );
    let st = pipeline.by_name("st").unwrap();
    let size = pipeline.by_name("size").unwrap();
    let mut slow = Duration::ZERO;
    let mut fast = Duration::ZERO;
    let out = drive(&pipeline, Some(&sink), |count| match count {
        12 => {
            slow = added_latency(&st);
            size.set_property(
                "caps",
                gst::Caps::from_str("video/x-raw,format=I420,width=64,height=48").unwrap(),
            );
        }
        95 => fast = added_latency(&st),
        _ => {}
    });
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    eprintln!("latency with 1080p frames: {slow:?}, with tiny ones: {fast:?}");
    assert!(
        fast < slow / 2,
        "did not come down: {slow:?} with 1080p frames, {fast:?} with tiny ones"
    );
}

/// Frames that would be late are dropped (QoS), and the QoS messages count what was
/// processed and dropped.
#[test]
fn qos_messages_count_processed_and_dropped_frames() {
    init();
    let pipeline = gst::parse::launch(
        "videotestsrc is-live=true num-buffers=150 ! video/x-raw,width=640,height=480,framerate=120/1 \
         ! stylize name=st accelerator=cpu ! fakesink name=out sync=true qos=true",
    )
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let st = pipeline.by_name("st").unwrap();
    let out_count = Arc::new(std::sync::atomic::AtomicU64::new(0));
    {
        let out_count = out_count.clone();
        st.static_pad("src")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                out_count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                gst::PadProbeReturn::Ok
            });
    }
    let bus = pipeline.bus().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut stats = vec![];
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{e:?}"),
            gst::MessageView::Qos(q) if msg.src() == Some(st.upcast_ref()) => {
                let (processed, dropped) = q.stats();
                let (
                    gst::GenericFormattedValue::Buffers(Some(p)),
                    gst::GenericFormattedValue::Buffers(Some(d)),
                ) = (processed, dropped)
                else {
                    panic!("QoS stats not in buffers: {processed:?} {dropped:?}");
                };
                // Frames leave the element after they are counted as processed.
                let out_now = out_count.load(std::sync::atomic::Ordering::SeqCst);
                stats.push((*p, *d, out_now));
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    eprintln!("QoS (processed, dropped, frames out so far): {stats:?}");
    assert!(!stats.is_empty(), "no QoS message: nothing was late?");
    let &(processed, dropped, _) = stats.last().unwrap();
    assert!(processed > 0, "processed is still 0: {stats:?}");
    assert!(dropped > 0);
    assert!(processed + dropped <= 150, "{stats:?}");
    for pair in stats.windows(2) {
        assert!(
            pair[1].0 >= pair[0].0 && pair[1].1 == pair[0].1 + 1,
            "{stats:?}"
        );
    }
    for &(p, _, out_then) in &stats {
        // The counter runs at most one frame ahead of the pad (counted, then pushed).
        assert!(
            p <= out_then + 1,
            "processed {p} but only {out_then} out: {stats:?}"
        );
    }
}
