//! A CPU-only run is quiet (issue 13): `gst-launch-1.0 -q … ! stylize ! …` prints at
//! most one line, LiteRT's own lines go to the GStreamer debug log instead of stderr,
//! `auto` without a GPU logs exactly one warning that says so and why, and
//! `accelerator=cpu` prints nothing. The machine without a GPU is simulated by pointing
//! the Vulkan loader at no driver.
//!
//! The test names start with `gst_launch` so that the aarch64 run under qemu skips them
//! (an x86 gst-launch-1.0 cannot load the arm64 plugin).

mod common;

use std::process::{Command, Output};

/// The pipeline of the issue, with the element's properties in `properties`.
fn pipeline(properties: &str) -> String {
    format!("videotestsrc num-buffers=2 ! stylize {properties} ! fakesink")
}

/// Runs `gst-launch-1.0 -q` on `pipeline` with the plugin built next to this test, a
/// clean logging environment and the extra variables `env`.
fn gst_launch(pipeline: &str, env: &[(&str, &str)]) -> Output {
    common::require_setup();
    let exe = std::env::current_exe().expect("the test's path");
    let profile_dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target/<profile>/deps/");
    let mut command = Command::new("gst-launch-1.0");
    command
        .env("GST_PLUGIN_PATH", profile_dir)
        .env("GST_DEBUG_NO_COLOR", "1")
        .env_remove("GST_DEBUG")
        .env_remove("VK_LOADER_DEBUG")
        .env_remove(stylize::native_log::KEEP_ENV)
        .env_remove(stylize::auto::RACE_SOFTWARE_ENV)
        .arg("-q")
        .args(pipeline.split(' '));
    for (name, value) in env {
        command.env(name, value);
    }
    let out = command.output().expect("gst-launch-1.0 runs");
    assert!(
        out.status.success(),
        "gst-launch-1.0 {pipeline} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The Vulkan loader of Debian 12 (1.3.239) reads VK_ICD_FILENAMES, newer ones
/// VK_DRIVER_FILES: both point at no driver, so Vulkan lists no device.
const NO_VULKAN: &[(&str, &str)] = &[
    ("VK_ICD_FILENAMES", "/nonexistent/icd.json"),
    ("VK_DRIVER_FILES", "/nonexistent/icd.json"),
];

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The warnings in the debug log at `GST_DEBUG=stylize:2` (warnings and errors only).
fn logged_warnings(pipeline: &str, env: &[(&str, &str)]) -> Vec<String> {
    let env: Vec<(&str, &str)> = env
        .iter()
        .copied()
        .chain([("GST_DEBUG", "stylize:2")])
        .collect();
    stderr_lines(&gst_launch(pipeline, &env))
}

#[test]
fn gst_launch_without_a_gpu_prints_one_line_at_most_and_warns_once() {
    let lines = stderr_lines(&gst_launch(&pipeline(""), NO_VULKAN));
    assert!(
        lines.len() <= 1,
        "stderr without a GPU:\n{}",
        lines.join("\n")
    );
    // The warning: exactly one, with the cause.
    let warnings = logged_warnings(&pipeline(""), NO_VULKAN);
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains(" WARN ")
            && warnings[0].contains("no GPU, running on the CPU")
            && warnings[0].contains("the Vulkan loader found no driver"),
        "{}",
        warnings[0]
    );
}

#[test]
fn gst_launch_on_the_cpu_prints_nothing() {
    for env in [NO_VULKAN, &[]] {
        let lines = stderr_lines(&gst_launch(&pipeline("accelerator=cpu"), env));
        assert!(
            lines.is_empty(),
            "stderr with accelerator=cpu:\n{}",
            lines.join("\n")
        );
        // Not even at stylize:2, where LiteRT's own warnings would show if they were
        // logged as warnings.
        let warnings = logged_warnings(&pipeline("accelerator=cpu"), env);
        assert!(warnings.is_empty(), "{warnings:?}");
    }
}

/// The real Vulkan of this machine: here Mesa's lavapipe, a software device that `auto`
/// does not race, so the run is on the CPU with the one warning that names it. With a
/// hardware GPU `auto` races it and warns of nothing.
#[test]
fn gst_launch_with_the_machines_vulkan_prints_one_line_at_most() {
    let lines = stderr_lines(&gst_launch(&pipeline(""), &[]));
    assert!(lines.len() <= 1, "stderr:\n{}", lines.join("\n"));
    let warnings = logged_warnings(&pipeline(""), &[]);
    match stylize::vulkan::hardware_device() {
        Ok(device) => assert!(warnings.is_empty(), "{device}: {warnings:?}"),
        Err(why) => {
            assert_eq!(warnings.len(), 1, "{warnings:?}");
            assert!(
                warnings[0].contains("no GPU, running on the CPU") && warnings[0].contains(&why),
                "{} (expected the cause: {why})",
                warnings[0]
            );
        }
    }
}

/// Nothing LiteRT prints is thrown away: with `GST_DEBUG=stylize:5` its lines are in the
/// debug log, under the element's category, from the environment's creation to its
/// destruction (which happens outside the element's calls into the core), and none of
/// them is on stderr as LiteRT wrote it.
#[test]
fn gst_launch_puts_litert_lines_in_the_gstreamer_debug_log() {
    let out = gst_launch(&pipeline("accelerator=cpu"), &[("GST_DEBUG", "stylize:5")]);
    let lines = stderr_lines(&out);
    let log = lines.join("\n");
    for litert in [
        "INFO: [environment.cc:36] Creating LiteRT environment with options",
        "WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded",
        "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
        "DestroyAccelerator",
    ] {
        let found: Vec<&String> = lines.iter().filter(|l| l.contains(litert)).collect();
        assert!(
            !found.is_empty(),
            "{litert:?} is not in the debug log:\n{log}"
        );
        for line in found {
            assert!(
                line.contains(" DEBUG ")
                    && line.contains(" stylize ")
                    && line.contains("native_log"),
                "not a debug-log line of the category stylize: {line}"
            );
        }
    }
    let raw: Vec<&String> = lines
        .iter()
        .filter(|l| stylize::native_log::severity(l).is_some())
        .collect();
    assert!(raw.is_empty(), "LiteRT's lines on stderr as such: {raw:?}");
}
