//! Issue 14, cameras and a display without a desktop, end to end: the daemon binary on
//! a private dbus-daemon with the display on and no display at all, on a virtual X
//! display (Xvfb), and with libcamera without a camera and without its plugin. The
//! mode choice itself is unit-tested in `src/daemon/camera.rs` with real webcams' caps.
//! The harness is smaller than `tests/daemon.rs`'s because each test sets the daemon's
//! environment (DISPLAY, the plugin path) itself.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use stylized::dbus::StylizedProxyBlocking;

const CONFIG: &str = r#"
[source]
input = "test"
width = 160
height = 120
framerate = 15

[stylize]
style = "monet"
inference_size = 128

[display]
enabled = true
sink = "auto"
"#;

/// A child process killed on drop (dbus-daemon, Xvfb, the daemon).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A private dbus-daemon and the daemon on it, with `env` set and `unset` removed.
struct Daemon {
    child: Killed,
    _bus: Killed,
    address: String,
    dir: tempfile::TempDir,
    connection: zbus::blocking::Connection,
}

impl Daemon {
    fn start(config: &str, env: &[(&str, &str)], unset: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("bus");
        let address = format!("unix:path={}", socket.display());
        let bus = Killed(
            Command::new("dbus-daemon")
                .args(["--nofork", "--session", &format!("--address={address}")])
                .stdout(Stdio::null())
                .spawn()
                .expect("dbus-daemon runs (apt package dbus-daemon)"),
        );
        assert!(wait_for(Duration::from_secs(10), || socket.exists()));
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut cmd = our_binary(env!("CARGO_BIN_EXE_stylized"));
        cmd.arg("--session")
            .arg("--config")
            .arg(&config_path)
            .arg("--recordings")
            .arg(dir.path().join("recordings"))
            .env("DBUS_SESSION_BUS_ADDRESS", &address)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ));
        for name in unset {
            cmd.env_remove(name);
        }
        for (name, value) in env {
            cmd.env(name, value);
        }
        let child = Killed(cmd.spawn().unwrap());
        let connection = zbus::blocking::connection::Builder::address(address.as_str())
            .unwrap()
            .build()
            .unwrap();
        let daemon = Daemon {
            child,
            _bus: bus,
            address,
            dir,
            connection,
        };
        let up = wait_for(Duration::from_secs(60), || daemon.proxy().state().is_ok());
        assert!(up, "the daemon did not come up: {}", daemon.log());
        daemon
    }

    fn proxy(&self) -> StylizedProxyBlocking<'_> {
        StylizedProxyBlocking::builder(&self.connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn alive(&self) -> bool {
        // Not exited: a child that exited stays a zombie until reaped, and it is not.
        let pid = self.child.0.id();
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z "))
    }

    fn wait_state(&self, state: &str, limit: Duration) {
        let ok = wait_for(limit, || self.proxy().state().is_ok_and(|s| s == state));
        assert!(
            ok,
            "state is {:?}, not {state}; fault {:?}: {}",
            self.proxy().state(),
            self.proxy().fault(),
            self.log()
        );
    }

    fn wait_frames(&self, n: u64) {
        let start = self.proxy().frames().unwrap();
        let ok = wait_for(Duration::from_secs(60), || {
            self.proxy().frames().unwrap_or(0) >= start + n
        });
        assert!(ok, "frames did not advance: {}", self.log());
    }

    /// `stylizectl status` on this daemon's bus.
    fn ctl_status(&self) -> String {
        let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
            .args(["--session", "status"])
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    }
}

/// Frames decoded from a recording, and the decoder's errors.
fn decoded_frames(path: &Path) -> (u64, Vec<String>) {
    let d = decode_file(path);
    (d.frames, d.errors)
}

/// On a machine with no display at all the daemon, told to show the stream, stays up,
/// answers D-Bus, shows why there is no display, and records a file that decodes.
#[test]
fn with_no_display_at_all_the_daemon_stays_up_shows_the_fault_and_records() {
    // `auto` without DISPLAY and WAYLAND_DISPLAY is kmssink. Where a DRM device exists
    // (not here), a connector that no card has makes kmssink fail the same way.
    let config = if Path::new("/dev/dri").exists() {
        CONFIG.replace(
            "sink = \"auto\"",
            "sink = \"auto\"\nconnector_id = 2147483000",
        )
    } else {
        CONFIG.to_string()
    };
    let d = Daemon::start(&config, &[], &["DISPLAY", "WAYLAND_DISPLAY"]);
    d.wait_frames(3);
    d.wait_state("running", Duration::from_secs(10));
    let p = d.proxy();
    let fault = p.fault().unwrap();
    assert!(
        fault.starts_with("display: cannot open kmssink: "),
        "the fault names the display and its cause: {fault:?}"
    );
    assert!(d
        .log()
        .contains("no display; the camera and the recording go on"));

    // The stream goes on: a recording made now plays.
    let path = p.start_recording("headless").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(p.stop_recording().unwrap(), path);
    let (frames, errors) = decoded_frames(Path::new(&path));
    assert!(errors.is_empty(), "{errors:?}");
    assert!(frames >= 10, "{frames} frames in 3 s at 15 fps");

    // The camera mode of the test source, over D-Bus and in stylizectl.
    let mode = p.camera_mode().unwrap();
    assert!(
        mode.starts_with("160x120 ") && mode.ends_with(" 15/1"),
        "{mode:?}"
    );
    let status = d.ctl_status();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("camera_mode") && l.ends_with(&mode)),
        "{status}"
    );

    // The display is tried again (every 30 s) without taking anything down.
    std::thread::sleep(Duration::from_secs(1));
    assert!(d.alive(), "the daemon exited: {}", d.log());
    assert_eq!(p.state().unwrap(), "running");
    d.wait_frames(3);
}

/// A free X display number: no socket and no lock file for it.
fn free_x_display() -> u32 {
    (90..190)
        .map(|n| n + std::process::id() % 50)
        .find(|n| {
            !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .expect("a free X display number")
}

/// An Xvfb server with a black background; killed on drop. `-noreset`: by default an
/// X server resets when its last client leaves, and a client connecting meanwhile (the
/// X sink right after xvimagesink gave up, or after `xwd`) is refused.
fn xvfb(display: &str) -> Killed {
    let server = Killed(
        Command::new("Xvfb")
            .args([
                display,
                "-screen",
                "0",
                "640x480x24",
                "-br",
                "-noreset",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb runs (apt package xvfb; scripts/setup.sh installs it)"),
    );
    let socket = PathBuf::from(format!("/tmp/.X11-unix/X{}", &display[1..]));
    assert!(
        wait_for(Duration::from_secs(10), || socket.exists()),
        "Xvfb did not start"
    );
    server
}

/// The share of non-black pixels in the top-left `w`x`h` of the screen of `display`,
/// captured with `xwd` (an XWD file: big-endian header, colour map, then ZPixmap rows).
fn lit_share(display: &str, w: usize, h: usize) -> f64 {
    let out = Command::new("xwd")
        .args(["-root", "-silent", "-display", display])
        .output()
        .expect("xwd runs (apt package x11-apps)");
    assert!(out.status.success(), "xwd: {out:?}");
    let x = out.stdout;
    let field = |i: usize| u32::from_be_bytes(x[i * 4..i * 4 + 4].try_into().unwrap()) as usize;
    let (header, format, bits, bytes_per_line, byte_order, ncolors) = (
        field(0),
        field(2),
        field(11),
        field(12),
        field(7),
        field(19),
    );
    assert_eq!((format, bits), (2, 32), "a 24-bit ZPixmap");
    let (red, green, blue) = (field(14), field(15), field(16));
    let pixels = &x[header + ncolors * 12..];
    let mut lit = 0;
    for y in 0..h {
        for px in 0..w {
            let at = y * bytes_per_line + px * 4;
            let b: [u8; 4] = pixels[at..at + 4].try_into().unwrap();
            let v = if byte_order == 0 {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            } as usize;
            if v & (red | green | blue) != 0 {
                lit += 1;
            }
        }
    }
    lit as f64 / (w * h) as f64
}

/// On a virtual X display the stylized frames reach the window: the screen, black
/// before, shows a picture where the window is.
#[test]
fn on_a_virtual_x_display_the_frames_reach_the_window() {
    let display = format!(":{}", free_x_display());
    let _server = xvfb(&display);
    let before = lit_share(&display, 160, 120);
    assert!(before < 0.01, "the screen starts black ({before:.3} lit)");

    let config = CONFIG.replace("sink = \"auto\"", "sink = \"x\"");
    let d = Daemon::start(&config, &[("DISPLAY", &display)], &["WAYLAND_DISPLAY"]);
    d.wait_frames(5);
    d.wait_state("running", Duration::from_secs(10));
    assert_eq!(d.proxy().fault().unwrap(), "", "{}", d.log());
    // Xvfb has no Xv, so xvimagesink does not open and ximagesink does.
    assert!(
        d.log().contains("display open") && d.log().contains("ximagesink"),
        "{}",
        d.log()
    );
    // Without a window manager the window is at the top left, at the video's size.
    let ok = wait_for(Duration::from_secs(20), || {
        lit_share(&display, 160, 120) > 0.5
    });
    assert!(
        ok,
        "the window stays black ({:.3} lit): {}",
        lit_share(&display, 160, 120),
        d.log()
    );
}

/// `input = "libcamera"` with the plugin but no camera: recovering, with libcamera's
/// reason, and retried like a missing V4L2 device.
#[test]
fn libcamera_without_a_camera_is_recovering_with_the_reason() {
    init();
    assert!(
        gst::ElementFactory::find("libcamerasrc").is_some(),
        "libcamerasrc is missing: run scripts/setup.sh (apt package gstreamer1.0-libcamera)"
    );
    let config = CONFIG
        .replace("input = \"test\"", "input = \"libcamera\"")
        .replace("enabled = true", "enabled = false");
    let d = Daemon::start(&config, &[], &[]);
    d.wait_state("recovering", Duration::from_secs(20));
    let fault = d.proxy().fault().unwrap();
    assert!(
        fault.contains("Could not find any supported camera"),
        "{fault:?}"
    );
    assert!(!d.proxy().list_styles().unwrap().is_empty(), "D-Bus serves");
    // Retried with backoff (1 s, then 2 s), still recovering, not exited.
    assert!(wait_for(Duration::from_secs(5), || d
        .log()
        .matches("pipeline fault")
        .count()
        >= 2));
    assert_eq!(d.proxy().state().unwrap(), "recovering");
}

/// Without the libcamera plugin (hidden from the daemon's GStreamer), the fault names
/// the package to install, and the state is `error`: retrying cannot help.
#[test]
fn libcamera_without_its_plugin_names_the_package() {
    init();
    let core = gst::Registry::get()
        .find_plugin("coreelements")
        .and_then(|p| p.filename())
        .expect("the core plugins' file");
    let system = core.parent().unwrap();
    // The system plugins, all but libcamera's, in a folder of their own, with a
    // registry of their own (the shared one is not rewritten).
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for entry in std::fs::read_dir(system).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.ends_with(".so") && !name.contains("libcamera") {
            std::os::unix::fs::symlink(&path, plugins.join(&name)).unwrap();
        }
    }
    let registry = dir.path().join("registry.bin");
    let config = CONFIG
        .replace("input = \"test\"", "input = \"libcamera:imx708\"")
        .replace("enabled = true", "enabled = false");
    let d = Daemon::start(
        &config,
        &[
            ("GST_PLUGIN_SYSTEM_PATH_1_0", plugins.to_str().unwrap()),
            ("GST_REGISTRY_1_0", registry.to_str().unwrap()),
        ],
        &[],
    );
    d.wait_state("error", Duration::from_secs(30));
    assert_eq!(
        d.proxy().fault().unwrap(),
        "libcamerasrc is not installed: install the Debian package gstreamer1.0-libcamera"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(d.proxy().state().unwrap(), "error", "not retried");
    assert!(!d.proxy().list_styles().unwrap().is_empty(), "D-Bus serves");
}
