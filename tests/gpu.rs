//! The GPU path on Mesa's software Vulkan driver (lavapipe), which LiteRT's WebGPU
//! accelerator accepts from Mesa 24 on: correctness, not speed. `scripts/test.sh`
//! installs it (`scripts/setup-test-gpu.sh`). Each test is a few frames at about 384x384,
//! since lavapipe takes one to three seconds a frame.

mod common;

use std::process::{Command, Output};

use common::*;
use gst::prelude::*;

const GPU: &str = "accelerator=gpu";

/// The machine must have lavapipe and no hardware GPU, or these tests show nothing.
fn require_lavapipe() {
    let devices = stylize::vulkan::devices().unwrap_or_else(|e| {
        panic!("no Vulkan here ({e}): run scripts/setup-test-gpu.sh to install lavapipe")
    });
    assert!(
        devices
            .iter()
            .any(|d| d.kind == stylize::vulkan::DeviceKind::Software),
        "no software Vulkan device in {devices:?}: run scripts/setup-test-gpu.sh"
    );
    assert!(
        stylize::vulkan::hardware_device().is_err(),
        "these tests expect lavapipe as the only Vulkan device, and {devices:?} has a GPU: \
         run them with VK_DRIVER_FILES=/usr/share/vulkan/icd.d/lvp_icd.json"
    );
}

/// `gst-launch-1.0 -v` with the plugin from this build and extra environment.
fn gst_launch(env: &[(&str, &str)], pipeline: &str) -> Output {
    Command::new("gst-launch-1.0")
        .arg("-v")
        .args(pipeline.split_whitespace())
        .env(
            "GST_PLUGIN_PATH",
            root().join("target").join(if cfg!(debug_assertions) {
                "debug"
            } else {
                "release"
            }),
        )
        .envs(env.iter().copied())
        .output()
        .expect("gst-launch-1.0 runs")
}

/// The value `gst-launch-1.0 -v` printed for a property of the stylize element.
fn notified(out: &Output, property: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("GstStylize:st: {property} = ");
    stdout
        .lines()
        .find_map(|l| l.split_once(&prefix).map(|(_, v)| v.trim().to_string()))
        .unwrap_or_else(|| panic!("no {property} in:\n{stdout}"))
}

#[test]
fn fp16_on_the_gpu_matches_the_reference() {
    require_lavapipe();
    let (p, warnings) = compare_with_reference(
        "tiger.jpg",
        Some((384, 384)),
        "monet",
        384,
        "transfer-fp16",
        GPU,
    );
    println!("GPU fidelity at 384x384: PSNR {p:.2} dB");
    assert!(p >= 45.0, "GPU at the inference size: PSNR {p:.2}");
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("software Vulkan device")),
        "a forced software GPU warns: {warnings:?}"
    );
    // At inference-size 384, 640x480 runs at 512x384 on the GPU (both sides at least
    // 384) and is resampled: the reference with a long side of 512 does the same.
    let p = compare_with_reference(
        "golden_gate.jpg",
        Some((640, 480)),
        "starry_night",
        512,
        "transfer-fp16",
        &format!("{GPU} inference-size=384"),
    )
    .0;
    println!("GPU fidelity at 640x480 (inference 512x384, resampled): PSNR {p:.2} dB");
    assert!(p >= 27.0, "GPU resampled: PSNR {p:.2}");
}

/// Below 384 the GPU runs the static-shape graph (`tflite::transfer_for_gpu`) at the
/// CPU's geometry when `STYLIZE_GPU_MIN_SIDE` allows it; it must agree with the reference
/// there as it does at 384.
#[test]
fn below_384_the_static_shape_graph_agrees_with_the_reference() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let content = dir.path().join("content.png");
    content_photo("dog_and_cats.jpg", Some((384, 288))).save_png(&content);
    let fp16 = model("transfer-fp16");
    let expected = reference_stylize(dir.path(), &content, "monet", "transfer-fp16", 384);
    let got = dir.path().join("gpu.png");
    let out = gst_launch(
        &[("STYLIZE_GPU_MIN_SIDE", "0")],
        &format!(
            "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGB \
             ! stylize name=st accelerator=gpu style=monet model={} ! videoconvert \
             ! pngenc ! filesink location={}",
            content.display(),
            fp16.display(),
            got.display()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(notified(&out, "active-accelerator"), "gpu");
    let p = psnr(&expected, &Rgb::load(&got));
    println!("GPU at 384x288 (static shapes, no upscale) against the reference: PSNR {p:.2} dB");
    assert!(p >= 40.0, "PSNR {p:.2}");
}

/// Two frames of monet, two of kandinsky, two of kandinsky blended half with the frame's
/// own style: each switch shows at once, and equal frames in one stage are equal.
#[test]
fn style_switch_and_blend_on_the_gpu() {
    require_lavapipe();
    let (w, h) = (384, 384);
    let frame = content_photo("golden_gate.jpg", Some((w, h)));
    let (pipeline, sink) = launch(
        "appsrc name=src format=time ! stylize name=st accelerator=gpu style=monet ! appsink name=sink",
    );
    let src = pipeline
        .by_name("src")
        .unwrap()
        .downcast::<gst_app::AppSrc>()
        .unwrap();
    src.set_caps(Some(&rgb_caps(w, h, 30)));
    let stylizer = pipeline.by_name("st").unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut outputs = Vec::new();
    for i in 0..6u64 {
        match i {
            2 => stylizer.set_property("style", "kandinsky"),
            4 => stylizer.set_property("blend", 0.5f64),
            _ => {}
        }
        src.push_buffer(rgb_buffer(&frame, i, 30)).unwrap();
        let sample = sink
            .try_pull_sample(gst::ClockTime::from_seconds(120))
            .unwrap_or_else(|| panic!("frame {i} did not come out"));
        outputs.push(Rgb::from_sample(&sample));
    }
    assert_eq!(stylizer.property::<String>("active-accelerator"), "gpu");
    pipeline.set_state(gst::State::Null).unwrap();
    for stage in outputs.chunks(2) {
        let p = psnr(&stage[0], &stage[1]);
        assert!(p >= 40.0, "equal frames in one stage differ: PSNR {p:.1}");
    }
    let monet_kandinsky = psnr(&outputs[1], &outputs[2]);
    let pure_blended = psnr(&outputs[3], &outputs[4]);
    println!("GPU: monet -> kandinsky PSNR {monet_kandinsky:.1} dB, blend 0 -> 0.5 PSNR {pure_blended:.1} dB");
    assert!(
        monet_kandinsky < 25.0,
        "the switch did not show: PSNR {monet_kandinsky:.1}"
    );
    assert!(
        pure_blended < 35.0,
        "the blend did not show: PSNR {pure_blended:.1}"
    );
}

/// The compiled-program cache: written when the element stops, read on the next start.
/// Each start is a process of its own, as the accelerator keeps one cache per process.
#[test]
fn cache_dir_is_written_and_read_back() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let file = cache.join(format!(
        "{}_mldrift_compiled_cache.bin",
        stylize::engine::GPU_CACHE_KEY
    ));
    let pipeline = format!(
        "videotestsrc num-buffers=1 ! video/x-raw,width=384,height=384 ! stylize name=st {GPU} cache-dir={} ! fakesink",
        cache.display()
    );
    let out = gst_launch(&[], &pipeline);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written =
        std::fs::metadata(&file).unwrap_or_else(|e| panic!("{} not written: {e}", file.display()));
    assert!(written.len() > 0, "{} is empty", file.display());

    let mut inotify = inotify::Inotify::init().unwrap();
    inotify
        .watches()
        .add(
            &file,
            inotify::WatchMask::OPEN | inotify::WatchMask::CLOSE_NOWRITE,
        )
        .unwrap();
    let out = gst_launch(&[], &pipeline);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut buffer = [0u8; 4096];
    let events: Vec<_> = inotify
        .read_events(&mut buffer)
        .map(|events| events.map(|e| e.mask).collect())
        .unwrap_or_default();
    println!(
        "GPU cache {} bytes; events on the second start: {events:?}",
        written.len()
    );
    // The accelerator maps the file, so its reads raise no ACCESS event: an open for
    // reading (closed without writing) is what shows.
    assert!(
        events.contains(&inotify::EventMask::OPEN)
            && events.contains(&inotify::EventMask::CLOSE_NOWRITE),
        "the second start did not open {} for reading: {events:?}",
        file.display()
    );
}

#[test]
fn auto_with_only_lavapipe_picks_the_cpu() {
    require_lavapipe();
    let (pipeline, sink) = launch(
        "videotestsrc num-buffers=2 ! video/x-raw,width=384,height=384 ! stylize name=st accelerator=auto ! appsink name=sink",
    );
    let stylizer = pipeline.by_name("st").unwrap();
    let mut reason = String::new();
    let out = drive(&pipeline, Some(&sink), |_| {
        reason = stylizer.property::<String>("accelerator-reason");
    });
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples.len(), 2);
    assert!(
        reason.starts_with("cpu: no GPU to race") && reason.contains("software"),
        "{reason}"
    );
    assert!(
        out.warnings.is_empty(),
        "choosing the CPU is no fault: {:?}",
        out.warnings
    );
}

/// With `STYLIZE_AUTO_RACE_SOFTWARE_GPU=1` lavapipe stands in for a real GPU: the first
/// start races it against the CPU (the CPU wins by far), the second takes the kept
/// decision without a race.
#[test]
fn auto_races_once_and_keeps_the_decision() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=384,height=384 ! stylize name=st cache-dir={} ! fakesink",
        dir.path().display()
    );
    let env = [(stylize::auto::RACE_SOFTWARE_ENV, "1")];
    let first = gst_launch(&env, &pipeline);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let raced = notified(&first, "accelerator-reason");
    println!("first start: {raced}");
    assert_eq!(notified(&first, "active-accelerator"), "cpu");
    assert!(
        raced.starts_with("cpu by measurement at 384x384"),
        "{raced}"
    );
    let times = |reason: &str| -> (f64, f64) {
        let ms: Vec<f64> = reason
            .split(" ms")
            .filter_map(|part| part.rsplit(' ').next()?.parse().ok())
            .collect();
        assert_eq!(ms.len(), 2, "{reason}");
        (ms[0], ms[1])
    };
    let (cpu_ms, gpu_ms) = times(&raced);
    assert!(cpu_ms < gpu_ms, "{raced}");

    let kept = dir.path().join(stylize::auto::CHOICE_FILE);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&kept).expect("decision kept")).unwrap();
    let entries = json.as_object().unwrap();
    assert_eq!(entries.len(), 1, "{json}");
    let (key, entry) = entries.iter().next().unwrap();
    assert!(key.contains("llvmpipe") && key.contains("384x384"), "{key}");
    assert_eq!(entry["gpu"], false);

    let second = gst_launch(&env, &pipeline);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let reused = notified(&second, "accelerator-reason");
    println!("second start: {reused}");
    assert!(
        reused.starts_with("cpu by the measurement kept in"),
        "{reused}"
    );
    assert_eq!(times(&reused), (cpu_ms, gpu_ms));
}

/// A GPU accelerator that cannot be loaded (here: a file of garbage next to a copy of
/// the runtime) costs a warning and the CPU; nothing is kept, so a later start, perhaps
/// after the fault is fixed, races again.
#[test]
fn a_broken_gpu_accelerator_costs_a_warning_and_is_raced_again_later() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    std::fs::create_dir(&lib).unwrap();
    let rt = stylize::litert::Runtime::shared(None).unwrap();
    std::fs::copy(rt.path(), lib.join(stylize::litert::LIBRARY_NAME)).unwrap();
    std::fs::write(
        lib.join(stylize::litert::GPU_ACCELERATOR_NAME),
        b"not a shared library",
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let pipeline = format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=384,height=384 ! stylize name=st litert-library={} cache-dir={} ! fakesink",
        lib.display(),
        cache.display()
    );
    let env = [(stylize::auto::RACE_SOFTWARE_ENV, "1")];
    for start in ["first", "second"] {
        let out = gst_launch(&env, &pipeline);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{start}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(notified(&out, "active-accelerator"), "cpu", "{start}");
        let reason = notified(&out, "accelerator-reason");
        assert!(
            reason.starts_with("cpu: the GPU (llvmpipe"),
            "{start}: {reason}"
        );
        assert!(
            stdout.contains("failed, running on the CPU"),
            "{start}: no warning in {stdout}"
        );
        let kept = std::fs::read(cache.join(stylize::auto::CHOICE_FILE)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&kept).contains("llvmpipe"),
            "{start}: a failure was kept"
        );
    }
}

/// A GPU that takes the process down during the race (here: SIGKILL once the CPU's
/// frame is kept and the GPU's is under way) is raced once more, then left alone.
#[test]
fn a_gpu_that_dies_during_the_race_is_left_alone_after_two_starts() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join(stylize::auto::CHOICE_FILE);
    let pipeline = format!(
        "videotestsrc num-buffers=2 ! video/x-raw,width=384,height=384 ! stylize name=st cache-dir={} ! fakesink",
        dir.path().display()
    );
    let plugin = root().join("target").join(if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    });
    for start in 1..=2u64 {
        let mut child = Command::new("gst-launch-1.0")
            .args(pipeline.split_whitespace())
            .env("GST_PLUGIN_PATH", &plugin)
            .env(stylize::auto::RACE_SOFTWARE_ENV, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pending = format!("\"unfinished\": {start}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read_to_string(&kept).is_ok_and(|t| t.contains(&pending)) {
            assert!(
                std::time::Instant::now() < deadline,
                "start {start}: no pending entry"
            );
            assert!(child.try_wait().unwrap().is_none(), "start {start} ended");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let third = gst_launch(&[(stylize::auto::RACE_SOFTWARE_ENV, "1")], &pipeline);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
    assert_eq!(notified(&third, "active-accelerator"), "cpu");
    let reason = notified(&third, "accelerator-reason");
    assert!(
        reason.contains("did not finish its frame at the last 2 starts"),
        "{reason}"
    );
    assert!(
        !String::from_utf8_lossy(&third.stdout).contains("WARNING"),
        "the third start tried the GPU"
    );
}

/// Frames the GPU cannot take (beyond about 10:1 with both sides at least 384) are
/// not raced: the CPU takes them at once. A cache folder the GPU accelerator cannot use
/// costs a warning.
#[test]
fn no_race_for_frames_the_gpu_cannot_take_and_a_warning_for_an_unusable_cache_folder() {
    require_lavapipe();
    let dir = tempfile::tempdir().unwrap();
    let wide = gst_launch(
        &[(stylize::auto::RACE_SOFTWARE_ENV, "1")],
        &format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=1280,height=96 ! stylize name=st cache-dir={} ! fakesink",
            dir.path().display()
        ),
    );
    assert!(
        wide.status.success(),
        "{}",
        String::from_utf8_lossy(&wide.stderr)
    );
    let reason = notified(&wide, "accelerator-reason");
    assert_eq!(
        reason,
        "cpu: the GPU cannot take 1280x96 frames (aspect ratio)"
    );

    let quoted = dir.path().join("a\"b");
    let out = gst_launch(
        &[],
        &format!(
            "videotestsrc num-buffers=1 ! video/x-raw,width=384,height=384 ! stylize name=st {GPU} cache-dir={} ! fakesink",
            quoted.display()
        ),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("no GPU program cache: the GPU accelerator cannot take the folder"),
        "{stdout}"
    );
}

#[test]
fn forced_gpu_without_any_vulkan_device_fails_with_a_clear_headline() {
    let missing = "/nonexistent/icd.json";
    let out = gst_launch(
        &[("VK_DRIVER_FILES", missing), ("VK_ICD_FILENAMES", missing)],
        "videotestsrc num-buffers=1 ! stylize name=st accelerator=gpu ! fakesink",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let headline = stderr
        .lines()
        .find(|l| l.starts_with("ERROR: from element"))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    assert!(
        headline.contains("accelerator=gpu needs a Vulkan device and there is none")
            && headline.contains("accelerator=cpu"),
        "{headline}"
    );
}
