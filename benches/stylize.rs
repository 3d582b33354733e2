//! The speed benchmark (not a test): raw engine times, element pipeline fps and per-frame
//! latency, the Python peer in the same run, peak RSS (of this process, and of a fresh
//! process per CPU pipeline with 1 and 2 engines), and the ratios between them.
//! Writes a table to stdout and JSON to `bench-out/results.json`.
//!
//!   cargo bench --bench stylize [-- --frames N --peer-frames N --out DIR --no-peer --quick
//!                                  --gpu-only]
//!
//! `--quick` (for emulation) keeps only the int8 CPU engine at 384x288 and the 640x480 CPU
//! pipeline. `--gpu-only` (for the device machine) keeps the GPU rows: raw engine at
//! 384² to 1080x1920, pipelines at 640x480, 720p and 1080p, and the start-up with a cold
//! and a warm program cache, each measured in a fresh process (`--startup DIR`).

use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use gst::prelude::*;
use serde_json::{json, Value};
use stylize::litert::{Environment, Network, Runtime};
use stylize::Accelerator;
use stylize::{models, paths, tflite};

struct Args {
    frames: usize,
    peer_frames: usize,
    out: PathBuf,
    peer: bool,
    quick: bool,
    gpu_only: bool,
    /// Set in the child process that measures one GPU start with this cache folder.
    startup: Option<PathBuf>,
    /// Set in the child process that measures one CPU pipeline's peak RSS:
    /// (width, height, parallel-frames).
    rss: Option<(usize, usize, u32)>,
}

fn args() -> Args {
    let mut a = Args {
        frames: 40,
        peer_frames: 30,
        out: paths::project_dir().join("bench-out"),
        peer: true,
        quick: false,
        gpu_only: false,
        startup: None,
        rss: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--frames" => a.frames = it.next().and_then(|v| v.parse().ok()).unwrap_or(a.frames),
            "--peer-frames" => {
                a.peer_frames = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(a.peer_frames)
            }
            "--out" => a.out = it.next().map(PathBuf::from).unwrap_or(a.out),
            "--no-peer" => a.peer = false,
            "--quick" => a.quick = true,
            "--gpu-only" => {
                a.gpu_only = true;
                a.peer = false;
            }
            "--startup" => a.startup = it.next().map(PathBuf::from),
            "--rss" => {
                let mut n = || it.next().and_then(|v| v.parse::<usize>().ok());
                if let (Some(w), Some(h), Some(p)) = (n(), n(), n()) {
                    a.rss = Some((w, h, p as u32));
                }
            }
            _ => {} // cargo bench passes --bench
        }
    }
    a
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn model_path(role: &str) -> PathBuf {
    paths::default_model_dir().join(models::file_for(role).expect("known role"))
}

/// Median ms of `LiteRtRunCompiledModel` alone, after two warm-up runs.
fn raw_engine(hardware: Accelerator, role: &str, h: usize, w: usize, runs: usize) -> Option<f64> {
    raw_engine_with(
        hardware,
        role,
        h,
        w,
        runs,
        stylize::engine::default_threads(),
    )
}

/// `engines` single-threaded engines running side by side, as the element's workers do:
/// the median ms of one run under that contention.
fn raw_engines_side_by_side(engines: usize, h: usize, w: usize, runs: usize) -> Option<f64> {
    let handles: Vec<_> = (0..engines)
        .map(|_| {
            std::thread::spawn(move || {
                raw_engine_with(Accelerator::Cpu, "transfer-int8", h, w, runs, 1)
            })
        })
        .collect();
    let times: Option<Vec<f64>> = handles
        .into_iter()
        .map(|t| t.join().ok().flatten())
        .collect();
    times.map(median)
}

fn raw_engine_with(
    hardware: Accelerator,
    role: &str,
    h: usize,
    w: usize,
    runs: usize,
    threads: usize,
) -> Option<f64> {
    let rt = Runtime::shared(None).ok()?;
    let env = match hardware {
        Accelerator::Gpu => Environment::with_accelerators(rt, None),
        Accelerator::Cpu | Accelerator::Auto => Environment::cpu_only(rt),
    }
    .ok()?;
    let bytes = std::fs::read(model_path(role)).ok()?;
    let dims = [1, h as i32, w as i32, 3];
    // The element's own graphs: static shapes and XNNPACK pads on the CPU.
    let mut net = match hardware {
        Accelerator::Cpu | Accelerator::Auto => {
            let patched = tflite::transfer_for_cpu(&bytes, h, w).ok()?;
            Network::new(env, Arc::from(patched), hardware, threads, &[])
        }
        Accelerator::Gpu => {
            let patched = tflite::transfer_for_size(&bytes, h, w).ok()?;
            let resize: &[(&str, &[i32])] = &[(stylize::engine::CONTENT_INPUT, &dims)];
            Network::new(env, Arc::from(patched), hardware, threads, resize)
        }
    }
    .ok()?;
    let content = net.input_index(stylize::engine::CONTENT_INPUT).ok()?;
    net.write_input(content, |t| {
        for (i, v) in t.iter_mut().enumerate() {
            *v = (i % 251) as f32 / 251.0;
        }
    })
    .ok()?;
    // A real style vector's range; uninitialised memory could hold NaNs or denormals.
    let style = net.input_index(stylize::engine::VECTOR_INPUT).ok()?;
    net.write_input(style, |t| {
        for (i, v) in t.iter_mut().enumerate() {
            *v = ((i % 7) as f32 - 3.0) / 3.0;
        }
    })
    .ok()?;
    let mut times = Vec::new();
    for i in 0..runs + 2 {
        let t = Instant::now();
        net.run().ok()?;
        if i >= 2 {
            times.push(t.elapsed().as_secs_f64() * 1e3);
        }
    }
    Some(median(times))
}

struct PipelineResult {
    fps: f64,
    /// Median time a worker took for one frame: conversion, resizes and the run.
    processing_ms: f64,
    latency_ms: f64,
    first_frame_ms: f64,
    inference: (usize, usize),
}

/// videotestsrc → stylize → fakesink sync=false: steady fps after the first frame, the
/// median time a buffer spends in the element, and PLAYING → first stylized buffer.
fn pipeline(
    accelerator: &str,
    width: usize,
    height: usize,
    frames: usize,
    inference: usize,
    cache_dir: Option<&std::path::Path>,
) -> Option<PipelineResult> {
    pipeline_with(accelerator, width, height, frames, inference, cache_dir, 0)
}

/// As [`pipeline`], with `parallel-frames` set (0: the element's default).
fn pipeline_with(
    accelerator: &str,
    width: usize,
    height: usize,
    frames: usize,
    inference: usize,
    cache_dir: Option<&std::path::Path>,
    parallel_frames: u32,
) -> Option<PipelineResult> {
    let pipeline = gst::parse::launch(&format!(
        "videotestsrc num-buffers={} pattern=smpte75 ! video/x-raw,format=I420,width={width},height={height} \
         ! stylize name=st accelerator={accelerator} ! fakesink name=sink sync=false",
        frames + 1
    ))
    .ok()?
    .downcast::<gst::Pipeline>()
    .ok()?;
    let st = pipeline.by_name("st")?;
    st.set_property("inference-size", inference as u32);
    st.set_property("parallel-frames", parallel_frames);
    st.set_property(
        "cache-dir",
        cache_dir
            .map(|d| d.display().to_string())
            .unwrap_or_default(),
    );
    let entered: Arc<Mutex<Vec<Instant>>> = Default::default();
    let left: Arc<Mutex<Vec<Instant>>> = Default::default();
    let e = entered.clone();
    st.static_pad("sink")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            e.lock().unwrap().push(Instant::now());
            gst::PadProbeReturn::Ok
        });
    let l = left.clone();
    let processing: Arc<Mutex<Vec<f64>>> = Default::default();
    let p = processing.clone();
    let element = st.clone();
    st.static_pad("src")?
        .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
            l.lock().unwrap().push(Instant::now());
            // Set just before the push: this frame's worker time.
            p.lock()
                .unwrap()
                .push(element.property::<f64>("inference-ms"));
            gst::PadProbeReturn::Ok
        });
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).ok()?;
    let bus = pipeline.bus()?;
    let mut ok = true;
    for msg in bus.iter_timed(gst::ClockTime::from_seconds(600)) {
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(err) => {
                eprintln!("{accelerator} {width}x{height}: {}", err.error());
                ok = false;
                break;
            }
            _ => {}
        }
    }
    let active: String = st.property("active-accelerator");
    let _ = pipeline.set_state(gst::State::Null);
    if !ok || active != accelerator {
        return None;
    }
    let entered = entered.lock().unwrap().clone();
    let left = left.lock().unwrap().clone();
    if left.len() < 2 {
        return None;
    }
    let steady = left[left.len() - 1].duration_since(left[0]).as_secs_f64();
    let latencies = entered
        .iter()
        .zip(&left)
        .skip(1)
        .map(|(a, b)| b.duration_since(*a).as_secs_f64() * 1e3)
        .collect();
    let engine_size = if accelerator == "gpu" {
        stylize::engine::gpu_inference_size(
            width,
            height,
            inference,
            stylize::engine::gpu_min_side(),
        )
    } else {
        stylize::resample::inference_size(width, height, inference)
    };
    let processing_ms = median(processing.lock().unwrap().iter().skip(2).copied().collect());
    Some(PipelineResult {
        fps: (left.len() - 1) as f64 / steady,
        processing_ms,
        latency_ms: median(latencies),
        first_frame_ms: left[0].duration_since(started).as_secs_f64() * 1e3,
        inference: engine_size,
    })
}

fn peer_fps(frames: usize) -> Option<f64> {
    let root = paths::project_dir();
    let python = root.join(".venv/bin/python");
    let out = Command::new(python)
        .arg(root.join("../shared/reference/reference.py"))
        .args(["peer", "--transfer"])
        .arg(model_path("transfer-int8"))
        .arg("--predict")
        .arg(model_path("prediction-int8"))
        .arg("--style-image")
        .arg(root.join("../shared/styles/monet.png"))
        .args(["--frames", &frames.to_string()])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace().nth(2)?.parse().ok()
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Peak RSS (MiB) of a fresh process that runs the CPU pipeline at `width`x`height` with
/// `parallel-frames` = `engines` for 20 frames (VmHWM is per process, so each figure
/// needs its own).
fn pipeline_rss(width: usize, height: usize, engines: u32) -> Option<f64> {
    let out = Command::new(std::env::current_exe().ok()?)
        .args(["--rss", &width.to_string(), &height.to_string()])
        .arg(engines.to_string())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix("peak_rss_kib "))?
        .trim()
        .parse::<f64>()
        .ok()
        .map(|kib| kib / 1024.0)
}

/// PLAYING → first stylized buffer on the GPU at 1280x720, in a fresh process (the
/// accelerator's WebGPU state lives for the whole process), with `dir` as the program
/// cache: (ms, cache file size after the run).
fn gpu_startup(dir: &std::path::Path) -> Option<(f64, u64)> {
    let out = Command::new(std::env::current_exe().ok()?)
        .arg("--startup")
        .arg(dir)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let ms = text
        .lines()
        .find_map(|l| l.strip_prefix("first_frame_ms "))?
        .trim()
        .parse()
        .ok()?;
    let file = stylize::litert::GpuCache {
        dir: dir.to_path_buf(),
        key: stylize::engine::GPU_CACHE_KEY.to_string(),
    }
    .file();
    Some((ms, std::fs::metadata(file).map(|m| m.len()).unwrap_or(0)))
}

fn main() {
    let a = args();
    gst::init().expect("GStreamer");
    gststylize::register_static().expect("element registers");
    if let Some(dir) = &a.startup {
        if let Some(r) = pipeline("gpu", 1280, 720, 3, 384, Some(dir)) {
            println!("first_frame_ms {}", r.first_frame_ms);
        }
        return;
    }
    if let Some((w, h, engines)) = a.rss {
        if pipeline_with("cpu", w, h, 20, 384, None, engines).is_some() {
            println!("peak_rss_kib {}", peak_rss_kib());
        }
        return;
    }
    // GPU rows only on a hardware GPU: on a software Vulkan device (lavapipe) they would
    // take minutes and measure nothing of use.
    let gpu = Runtime::shared(None)
        .map(|rt| rt.gpu_accelerator_present())
        .unwrap_or(false)
        && stylize::litert::gpu_accelerator_cpu_gap().is_empty()
        && stylize::vulkan::hardware_device().is_ok()
        && !a.quick;
    let runs = if a.quick { 2 } else { 7 };

    let mut raw = Vec::new();
    println!(
        "raw engine (LiteRtRunCompiledModel, median ms/frame, {} threads)",
        stylize::engine::default_threads()
    );
    for (role, hw) in [
        ("transfer-int8", Accelerator::Cpu),
        ("transfer-fp16", Accelerator::Cpu),
        ("transfer-fp16", Accelerator::Gpu),
    ] {
        if (hw == Accelerator::Gpu && !gpu)
            || (a.quick && role != "transfer-int8")
            || (a.gpu_only && hw != Accelerator::Gpu)
        {
            continue;
        }
        // The GPU accelerator crashes below 384 on either side (engine::GPU_MIN_SIDE), and
        // is fast enough for a camera's own resolution.
        let sizes: &[(usize, usize)] = match hw {
            Accelerator::Cpu | Accelerator::Auto => &[(384, 384), (288, 384), (216, 384)],
            Accelerator::Gpu => &[(384, 384), (480, 640), (720, 1280), (1080, 1920)],
        };
        for &(h, w) in sizes {
            if a.quick && h != 288 {
                continue;
            }
            let ms = raw_engine(hw, role, h, w, runs);
            match ms {
                Some(ms) => println!("  {role:<14} {:<4} {w}x{h:<4} {ms:8.1} ms", hw.name()),
                None => println!("  {role:<14} {:<4} {w}x{h:<4}      n/a", hw.name()),
            }
            raw.push(
                json!({"model": role, "hardware": hw.name(), "width": w, "height": h, "ms": ms}),
            );
        }
    }

    let mut pipelines = Vec::new();
    println!(
        "element pipeline (videotestsrc I420 → stylize → fakesink sync=false, {} frames)",
        a.frames
    );
    // On the GPU, 720p and 1080p run both at the default inference size and at the
    // frame's own size (no down- and up-scaling).
    for (accel, w, h, inference) in [
        ("cpu", 640, 480, 384),
        ("cpu", 1280, 720, 384),
        ("gpu", 640, 480, 384),
        ("gpu", 1280, 720, 384),
        ("gpu", 1280, 720, 1280),
        ("gpu", 1920, 1080, 384),
        ("gpu", 1920, 1080, 1920),
    ] {
        let skip = (a.quick && (accel == "gpu" || w > 640))
            || (a.gpu_only && accel != "gpu")
            || (accel == "gpu" && !gpu);
        if skip {
            continue;
        }
        // No program cache here: the first frame is a cold start.
        match pipeline(accel, w, h, a.frames, inference, None) {
            Some(r) => {
                println!(
                    "  {accel} {w}x{h}: {:.2} fps, latency {:.1} ms/frame, worker {:.1} ms/frame, inference {}x{}, first frame {:.0} ms",
                    r.fps, r.latency_ms, r.processing_ms, r.inference.0, r.inference.1, r.first_frame_ms
                );
                pipelines.push(json!({
                    "accelerator": accel, "width": w, "height": h, "fps": r.fps,
                    "processing_ms": r.processing_ms,
                    "latency_ms": r.latency_ms, "first_frame_ms": r.first_frame_ms,
                    "inference_width": r.inference.0, "inference_height": r.inference.1,
                }));
            }
            None => println!("  {accel} {w}x{h}: not available here"),
        }
    }

    // Peak RSS of the element alone, each in a fresh process (the goal on a small
    // board: at most 250 MiB at 640x480 with the defaults, which run 2 engines on 2 cores).
    let mut rss_rows = Vec::new();
    if !a.gpu_only {
        println!("peak RSS of a fresh process running the CPU pipeline (20 frames)");
        for (w, h) in [(640, 480), (1280, 720)] {
            if a.quick && w > 640 {
                continue;
            }
            for engines in [1, 2] {
                let mib = pipeline_rss(w, h, engines);
                match mib {
                    Some(m) => println!("  cpu {w}x{h}, parallel-frames={engines}: {m:.1} MiB"),
                    None => println!("  cpu {w}x{h}, parallel-frames={engines}: n/a"),
                }
                rss_rows.push(
                    json!({"width": w, "height": h, "parallel_frames": engines, "peak_rss_mib": mib}),
                );
            }
        }
    }

    let mut gpu_start = Value::Null;
    if gpu {
        let dir = a.out.join("gpu-cache");
        let _ = std::fs::remove_dir_all(&dir);
        let (cold, warm) = (gpu_startup(&dir), gpu_startup(&dir));
        let show = |r: Option<(f64, u64)>| match r {
            Some((ms, bytes)) => format!("{ms:.0} ms (cache file {bytes} bytes after)"),
            None => "failed".to_string(),
        };
        println!(
            "gpu start-up at 1280x720, fresh process: cold cache {}, warm cache {}",
            show(cold),
            show(warm)
        );
        gpu_start = json!({
            "cold_first_frame_ms": cold.map(|c| c.0), "warm_first_frame_ms": warm.map(|w| w.0),
            "cache_bytes": warm.map(|w| w.1),
        });
    }

    let peer = if a.peer {
        peer_fps(a.peer_frames)
    } else {
        None
    };
    match peer {
        Some(fps) => println!(
            "python peer (reference.py peer, 640x480, 384x384 int8, 2 threads): {fps:.2} fps"
        ),
        None => println!("python peer: not run"),
    }
    let rss = peak_rss_kib();
    println!("peak RSS of this process: {:.1} MiB", rss as f64 / 1024.0);

    let find = |accel: &str, w: usize| {
        pipelines
            .iter()
            .find(|p| p["accelerator"] == accel && p["width"] == w)
            .cloned()
    };
    let raw_at = |w: usize, h: usize| {
        raw.iter()
            .find(|r| {
                r["model"] == "transfer-int8"
                    && r["hardware"] == "cpu"
                    && r["width"] == w
                    && r["height"] == h
            })
            .and_then(|r| r["ms"].as_f64())
    };
    let mut ratios = json!({});
    let workers = stylize::engine::default_threads().clamp(1, 4);
    let side_by_side = if a.gpu_only {
        None
    } else {
        raw_engines_side_by_side(workers, 288, 384, 7)
    };
    if let (Some(p), Some(raw_ms)) = (find("cpu", 640), side_by_side) {
        if let Some(worker_ms) = p["processing_ms"].as_f64() {
            let overhead = worker_ms / raw_ms - 1.0;
            ratios["element_overhead_640x480"] = json!(overhead);
            println!(
                "element overhead at 640x480: worker {worker_ms:.1} ms/frame vs {raw_ms:.1} ms for the run alone \
                 ({workers} single-threaded engines side by side): {:+.1}%",
                overhead * 100.0
            );
        }
    }
    if let Some(p) = find("cpu", 640) {
        let fps = p["fps"].as_f64().unwrap_or(0.0);
        if let Some(peer) = peer {
            ratios["element_over_peer_fps_640x480"] = json!(fps / peer);
            println!("element / peer fps at 640x480: {:.2}", fps / peer);
        }
        if let Some(raw_ms) = raw_at(384, 288) {
            let element_ms = 1e3 / fps;
            ratios["element_over_raw_time_640x480"] = json!(element_ms / raw_ms);
            println!(
                "element / raw engine time at 640x480 (384x288): {:.2} ({:.1} ms vs {:.1} ms)",
                element_ms / raw_ms,
                element_ms,
                raw_ms
            );
        }
    }

    let result = json!({
        "date": chrono_free_date(),
        "machine": machine(),
        "frames": a.frames,
        "raw_engine": raw,
        "pipelines": pipelines,
        "peer_fps": peer,
        "peak_rss_kib": rss,
        "pipeline_peak_rss": rss_rows,
        "ratios": ratios,
        "gpu_startup": gpu_start,
    });
    std::fs::create_dir_all(&a.out).expect("output folder");
    let path = a.out.join("results.json");
    std::fs::write(&path, serde_json::to_string_pretty(&result).unwrap()).expect("results written");
    println!("wrote {}", path.display());
}

fn chrono_free_date() -> Value {
    Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%dT%H:%M:%SZ")
        .output()
        .map(|o| json!(String::from_utf8_lossy(&o.stdout).trim()))
        .unwrap_or(Value::Null)
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    json!({
        "cpu": cpu,
        "cores": stylize::engine::default_threads(),
        "arch": std::env::consts::ARCH,
    })
}
