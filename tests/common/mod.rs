//! Shared helpers for the integration tests: paths, the reference implementation,
//! pipelines with appsrc/appsink, image comparison, a private D-Bus and decoding a
//! recording.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Once;
use std::time::Duration;

use gst::glib;
use gst::prelude::*;
use gst_video::prelude::*;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shared() -> PathBuf {
    root().join("../shared")
}

pub fn model(role: &str) -> PathBuf {
    require_setup();
    stylize::paths::default_model_dir().join(stylize::models::file_for(role).expect("known role"))
}

/// Fails every test that needs the set-up with one message that says how to do it,
/// rather than with whatever breaks first without the runtime or the models.
pub fn require_setup() {
    static CHECKED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let mut missing = Vec::new();
        if let Err(e) = stylize::litert::Runtime::shared(None) {
            missing.push(format!("the LiteRT runtime ({e})"));
        }
        let dir = stylize::paths::default_model_dir();
        if let Ok(manifest) = stylize::models::manifest() {
            for entry in &manifest.models {
                if !dir.join(&entry.file).is_file() {
                    missing.push(format!("the model {}", dir.join(&entry.file).display()));
                }
            }
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    });
    if let Err(missing) = checked {
        panic!(
            "the set-up has not run: run scripts/setup.sh once (it installs the packages, \
             the LiteRT runtime and the models; scripts/test.sh runs it too), then cargo \
             test. Missing: {missing}"
        );
    }
}

pub fn default_store() -> stylize::store::Store {
    stylize::store::Store::load(&root().join("models/styles.json")).expect("default store loads")
}

/// A command for one of the project's own binaries. `STYLIZE_TEST_WRAPPER` (qemu-aarch64
/// when the tests run under emulation) is put in front, since without binfmt_misc the
/// kernel cannot start a foreign binary by itself.
pub fn our_binary(path: &str) -> Command {
    match std::env::var("STYLIZE_TEST_WRAPPER") {
        Ok(wrapper) if !wrapper.is_empty() => {
            let mut cmd = Command::new(wrapper);
            cmd.arg(path);
            cmd
        }
        _ => Command::new(path),
    }
}

/// Runs `reference.py` with the project's venv.
pub fn reference(args: &[&str]) -> String {
    let python = root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh to create the reference venv",
        python.display()
    );
    let out = Command::new(python)
        .arg(shared().join("reference/reference.py"))
        .args(args)
        .output()
        .expect("reference.py runs");
    assert!(
        out.status.success(),
        "reference.py {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub fn init() {
    static ONCE: Once = Once::new();
    require_setup();
    ONCE.call_once(|| {
        gst::init().expect("GStreamer initialises");
        gststylize::register_static().expect("stylize registers");
    });
}

/// A packed RGB image.
#[derive(Clone, Debug, PartialEq)]
pub struct Rgb {
    pub width: usize,
    pub height: usize,
    pub data: Vec<u8>,
}

impl Rgb {
    pub fn load(path: &Path) -> Rgb {
        let img = image::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .to_rgb8();
        Rgb {
            width: img.width() as usize,
            height: img.height() as usize,
            data: img.into_raw(),
        }
    }

    pub fn save_png(&self, path: &Path) {
        image::save_buffer(
            path,
            &self.data,
            self.width as u32,
            self.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .expect("png written");
    }

    /// Copies the image out of a mapped RGB video frame (stride removed).
    pub fn from_sample(sample: &gst::Sample) -> Rgb {
        let caps = sample.caps().expect("sample caps");
        let info = gst_video::VideoInfo::from_caps(caps).expect("video caps");
        assert_eq!(info.format(), gst_video::VideoFormat::Rgb);
        let buffer = sample.buffer().expect("sample buffer");
        let frame =
            gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).expect("frame maps");
        let (w, h) = (info.width() as usize, info.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let plane = frame.plane_data(0).expect("plane 0");
        let mut data = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            data.extend_from_slice(&plane[y * stride..y * stride + w * 3]);
        }
        Rgb {
            width: w,
            height: h,
            data,
        }
    }
}

pub fn psnr(a: &Rgb, b: &Rgb) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height), "sizes differ");
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&x, &y)| (x as f64 - y as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

/// What a finished pipeline reported.
#[derive(Debug, Default)]
pub struct Outcome {
    pub samples: Vec<gst::Sample>,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
}

fn describe(err: &glib::Error, debug: Option<&glib::GString>) -> String {
    format!("{err} ({})", debug.map(|d| d.as_str()).unwrap_or(""))
}

/// Builds a `gst-launch`-style description whose last element is `appsink name=sink`.
pub fn launch(description: &str) -> (gst::Pipeline, gst_app::AppSink) {
    init();
    let pipeline = gst::parse::launch(description)
        .unwrap_or_else(|e| panic!("{description}: {e}"))
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline
        .by_name("sink")
        .expect("appsink named sink")
        .downcast::<gst_app::AppSink>()
        .expect("appsink");
    sink.set_property("sync", false);
    if !description.contains("inference-size") {
        shrink_inference_under_emulation(&pipeline);
    }
    (pipeline, sink)
}

/// Under emulation (`STYLIZE_TEST_INFERENCE_SIZE`, set by scripts/test-arm64.sh) the
/// stylize elements of a description that names no inference size run at the smaller
/// one, so that pipeline tests stay quick where fidelity is not the point.
fn shrink_inference_under_emulation(pipeline: &gst::Pipeline) {
    let Some(size) = std::env::var("STYLIZE_TEST_INFERENCE_SIZE")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
    else {
        return;
    };
    for element in pipeline.iterate_recurse().into_iter().flatten() {
        if element.factory().is_some_and(|f| f.name() == "stylize") {
            element.set_property("inference-size", size);
        }
    }
}

/// Runs a description from [`launch`] until EOS or error, collecting every sample.
pub fn run_pipeline(description: &str) -> Outcome {
    let (pipeline, sink) = launch(description);
    drive(&pipeline, Some(&sink), |_| {})
}

/// Plays `pipeline`, pulls samples from `sink`, calls `on_sample` with the running count,
/// and stops at EOS or the first error (errors are returned, not panicked on).
pub fn drive(
    pipeline: &gst::Pipeline,
    sink: Option<&gst_app::AppSink>,
    mut on_sample: impl FnMut(usize),
) -> Outcome {
    let mut outcome = Outcome::default();
    let bus = pipeline.bus().expect("bus");
    if pipeline.set_state(gst::State::Playing).is_err() {
        collect_messages(&bus, &mut outcome, Duration::from_millis(200));
        let _ = pipeline.set_state(gst::State::Null);
        if outcome.errors.is_empty() {
            outcome.errors.push("state change to PLAYING failed".into());
        }
        return outcome;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(sink) = sink {
            if let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_mseconds(20)) {
                outcome.samples.push(sample);
                on_sample(outcome.samples.len());
                continue;
            }
        }
        let done = collect_messages(&bus, &mut outcome, Duration::from_millis(5));
        if done || !outcome.errors.is_empty() || std::time::Instant::now() > deadline {
            break;
        }
    }
    if let Some(sink) = sink {
        while let Some(sample) = sink.try_pull_sample(gst::ClockTime::ZERO) {
            outcome.samples.push(sample);
        }
    }
    pipeline.set_state(gst::State::Null).expect("to NULL");
    outcome
}

/// Reads bus messages for up to `wait`; true at EOS.
fn collect_messages(bus: &gst::Bus, outcome: &mut Outcome, wait: Duration) -> bool {
    let mut timeout = gst::ClockTime::from_nseconds(wait.as_nanos() as u64);
    while let Some(msg) = bus.timed_pop(timeout) {
        timeout = gst::ClockTime::ZERO;
        match msg.view() {
            gst::MessageView::Eos(_) => return true,
            gst::MessageView::Error(e) => outcome
                .errors
                .push(describe(&e.error(), e.debug().as_ref())),
            gst::MessageView::Warning(w) => outcome
                .warnings
                .push(describe(&w.error(), w.debug().as_ref())),
            _ => {}
        }
    }
    false
}

/// A buffer holding `img` as RGB with GStreamer's default stride (rows padded to 4
/// bytes), with a timestamp.
pub fn rgb_buffer(img: &Rgb, index: u64, fps: u64) -> gst::Buffer {
    let row = img.width * 3;
    let stride = (row + 3) & !3;
    let mut data = vec![0u8; stride * img.height];
    for y in 0..img.height {
        data[y * stride..y * stride + row].copy_from_slice(&img.data[y * row..(y + 1) * row]);
    }
    let mut buffer = gst::Buffer::from_slice(data);
    {
        let b = buffer.get_mut().expect("new buffer is writable");
        let duration = gst::ClockTime::SECOND / fps;
        b.set_pts(duration * index);
        b.set_duration(duration);
    }
    buffer
}

pub fn rgb_caps(width: usize, height: usize, fps: i32) -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format(gst_video::VideoFormat::Rgb)
        .width(width as i32)
        .height(height as i32)
        .framerate(gst::Fraction::new(fps, 1))
        .build()
}

/// The element's per-frame output (`deflicker=0` unless `properties` says otherwise)
/// for one PNG frame as RGB.
pub fn element_output(content_png: &Path, properties: &str) -> Outcome {
    run_pipeline(&format!(
        "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGB ! stylize deflicker=0 {properties} ! appsink name=sink",
        content_png.display()
    ))
}

/// A content photo from `../shared/content`, Pillow-resized to `size` when given.
pub fn content_photo(name: &str, size: Option<(usize, usize)>) -> Rgb {
    let img = Rgb::load(&shared().join("content").join(name));
    let Some((w, h)) = size else {
        return img;
    };
    let mut out = vec![0u8; w * h * 3];
    stylize::resample::Resizer::new((img.width, img.height), (w, h)).resize(
        &img.data,
        img.width * 3,
        &mut out,
        w * 3,
    );
    Rgb {
        width: w,
        height: h,
        data: out,
    }
}

/// `reference.py stylize` of `content_png` with a style of the default store, the
/// transfer model of `role` and a long side, its output written into `dir`.
pub fn reference_stylize(
    dir: &Path,
    content_png: &Path,
    style: &str,
    role: &str,
    long_side: usize,
) -> Rgb {
    let vector = default_store().get(style).unwrap().vector.clone();
    let vector_json = dir.join("vector.json");
    std::fs::write(&vector_json, serde_json::to_string(&vector).unwrap()).unwrap();
    let reference_png = dir.join("reference.png");
    let transfer = model(role);
    let long = long_side.to_string();
    reference(&[
        "stylize",
        "--transfer",
        transfer.to_str().unwrap(),
        "--content",
        content_png.to_str().unwrap(),
        "--vector",
        vector_json.to_str().unwrap(),
        "--long-side",
        &long,
        "--out",
        reference_png.to_str().unwrap(),
    ]);
    Rgb::load(&reference_png)
}

/// PSNR of the element's output (with `properties`) against `reference.py stylize` with
/// the transfer model of `role`, for a content photo Pillow-resized to `size` (written as
/// PNG so both sides read the same pixels) and a style of the default store, with the
/// element's warnings.
pub fn compare_with_reference(
    content: &str,
    size: Option<(usize, usize)>,
    style: &str,
    long_side: usize,
    role: &str,
    properties: &str,
) -> (f64, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let content_png = dir.path().join("content.png");
    content_photo(content, size).save_png(&content_png);
    let expected = reference_stylize(dir.path(), &content_png, style, role, long_side);
    let out = element_output(
        &content_png,
        &format!(
            "style={style} inference-size={long_side} model={} {properties}",
            model(role).display()
        ),
    );
    assert!(out.errors.is_empty(), "{properties}: {:?}", out.errors);
    assert_eq!(out.samples.len(), 1, "{properties}");
    (
        psnr(&expected, &Rgb::from_sample(&out.samples[0])),
        out.warnings,
    )
}

/// Polls `ok` every 50 ms for up to `limit`; true once it holds.
pub fn wait_for(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let until = std::time::Instant::now() + limit;
    while std::time::Instant::now() < until {
        if ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A private dbus-daemon, killed on drop: a session bus, or one with its own config
/// (`@ADDRESS@` in it is replaced by the bus address).
pub struct Bus {
    child: std::process::Child,
    pub dir: tempfile::TempDir,
    pub address: String,
}

impl Bus {
    pub fn start(config_xml: Option<&str>) -> Bus {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let mut cmd = Command::new("dbus-daemon");
        cmd.arg("--nofork");
        match config_xml {
            Some(xml) => {
                let file = dir.path().join("bus.conf");
                std::fs::write(&file, xml.replace("@ADDRESS@", &address)).unwrap();
                cmd.arg(format!("--config-file={}", file.display()));
            }
            None => {
                cmd.args(["--session", &format!("--address={address}")]);
            }
        }
        let child = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("dbus-daemon runs (apt package dbus-daemon)");
        assert!(
            wait_for(Duration::from_secs(10), || socket.exists()),
            "dbus-daemon did not make its socket"
        );
        Bus {
            child,
            dir,
            address,
        }
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What decoding a recording gave.
pub struct Decoded {
    pub frames: u64,
    /// The end of the last frame (PTS + duration), in seconds.
    pub seconds: f64,
    pub errors: Vec<String>,
}

/// Decodes a recording with `decodebin`, counting the frames.
pub fn decode_file(path: &Path) -> Decoded {
    init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! decodebin ! fakesink name=sink sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("sink").unwrap();
    let stats = std::sync::Arc::new(std::sync::Mutex::new((0u64, 0u64)));
    let s = stats.clone();
    sink.static_pad("sink")
        .unwrap()
        .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
            if let Some(buffer) = info.buffer() {
                let mut st = s.lock().unwrap();
                st.0 += 1;
                let end = buffer.pts().map(|p| p.nseconds()).unwrap_or(0)
                    + buffer.duration().map(|d| d.nseconds()).unwrap_or(0);
                st.1 = st.1.max(end);
            }
            gst::PadProbeReturn::Ok
        });
    let out = drive(&pipeline, None, |_| {});
    let (frames, end) = *stats.lock().unwrap();
    Decoded {
        frames,
        seconds: end as f64 / 1e9,
        errors: out.errors,
    }
}
