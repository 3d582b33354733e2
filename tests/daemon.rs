//! `stylized` end to end: a real dbus-daemon on a private address, the daemon binary
//! with a test source, and `stylizectl`/zbus clients.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use stylized::control::ControlError;
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
enabled = false
"#;

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    connection: zbus::blocking::Connection,
}

impl Daemon {
    fn start(bus: &Bus, config: &str, extra: &[&str]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config_path = dir.path().join("config.toml");
        std::fs::write(&config_path, config).unwrap();
        let recordings = dir.path().join("recordings");
        let mut args: Vec<String> = vec![
            "--session".into(),
            "--config".into(),
            config_path.display().to_string(),
            "--recordings".into(),
            recordings.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = our_binary(env!("CARGO_BIN_EXE_stylized"))
            .args(&args)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ))
            .spawn()
            .unwrap();
        let connection = zbus::blocking::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .unwrap();
        let daemon = Daemon {
            child: Some(child),
            dir,
            connection,
        };
        let up = wait_for(Duration::from_secs(30), || daemon.proxy().state().is_ok());
        assert!(up, "the daemon did not come up: {}", daemon.log());
        daemon
    }

    /// A proxy that reads properties afresh each time: a cached one may still hold the
    /// old value when a method's reply arrives before its change signal.
    fn proxy(&self) -> StylizedProxyBlocking<'_> {
        StylizedProxyBlocking::builder(&self.connection)
            .cache_properties(zbus::proxy::CacheProperties::No)
            .build()
            .unwrap()
    }

    fn recordings(&self) -> PathBuf {
        self.dir.path().join("recordings")
    }

    fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Waits until `n` more frames came out of the element.
    fn wait_frames(&self, n: u64) {
        let start = self.proxy().frames().unwrap();
        let ok = wait_for(Duration::from_secs(30), || {
            self.proxy().frames().unwrap_or(0) >= start + n
        });
        assert!(ok, "frames did not advance: {}", self.log());
    }

    fn signal(&mut self, signal: &str) -> (std::process::ExitStatus, Duration) {
        let mut child = self.child.take().unwrap();
        let t = Instant::now();
        Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        (status, t.elapsed())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn dbus_error_name(e: &ControlError) -> String {
    match e {
        ControlError::ZBus(zbus::Error::MethodError(name, _, _)) => name.to_string(),
        ControlError::ZBus(zbus::Error::FDO(e)) => format!("fdo: {e}"),
        ControlError::ZBus(other) => format!("other: {other}"),
        named => zbus::DBusError::name(named).to_string(),
    }
}

/// Decodes a recording: (frames, media time of the last frame plus one frame, errors).
fn decode(path: &Path) -> (u64, f64, Vec<String>) {
    let d = decode_file(path);
    (d.frames, d.seconds, d.errors)
}

#[test]
fn set_style_changes_the_property_and_the_frames_and_list_matches_the_store() {
    let bus = Bus::start(None);
    // A 2 s fade is 30 frames at 15 fps: a snapshot a few frames after SetStyle is
    // surely inside it, whatever the frames in flight and the counter's 100 ms ticks.
    let config = CONFIG.replace(
        "inference_size = 128\n",
        "inference_size = 128\ntransition_ms = 2000\n",
    );
    let d = Daemon::start(&bus, &config, &[]);
    let p = d.proxy();
    let listed = p.list_styles().unwrap();
    let store = default_store();
    let expected: Vec<(String, String)> = store
        .styles
        .iter()
        .map(|s| (s.id.clone(), s.name.clone()))
        .collect();
    assert_eq!(listed, expected);
    d.wait_frames(2);
    assert!(wait_for(Duration::from_secs(5), || p.state().unwrap() == "running"));
    assert!(["cpu", "gpu"].contains(&p.accelerator().unwrap().as_str()));

    d.wait_frames(2);
    // A switch applies from the next frame into the element; frames are counted as
    // they leave it, and the snapshot comes from a queue behind it. Four frames is
    // enough for the new style to reach the snapshot.
    let shot = |name: &str| {
        d.wait_frames(4);
        let path = p.snapshot(name).unwrap();
        // Made under the test's umask (022 or 002), so group-readable like recordings.
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o040, 0o040, "snapshot mode {mode:o}");
        Rgb::load(Path::new(&path))
    };
    let monet1 = shot("m1");
    let monet2 = shot("m2");
    p.set_style("scream").unwrap();
    assert_eq!(d.proxy().style().unwrap(), "scream");
    // Eight frames on, the picture is on its way; 40 frames on, it has arrived.
    d.wait_frames(4);
    let fading = shot("s0");
    d.wait_frames(36);
    let scream = shot("s1");
    let same = psnr(&monet1, &monet2);
    let q = psnr(&monet1, &scream);
    let (from_old, to_new) = (psnr(&monet1, &fading), psnr(&fading, &scream));
    println!(
        "snapshots: same style PSNR {same:.1} dB, after SetStyle {q:.1} dB, \
         mid-fade {from_old:.1} dB from the old and {to_new:.1} dB from the new"
    );
    assert!(
        same > 45.0,
        "the test pattern is static, so frames repeat ({same:.1} dB)"
    );
    assert!(q < 25.0, "SetStyle did not change the frames (PSNR {q:.1})");
    assert!(
        from_old < 45.0 && to_new < 45.0 && to_new > q,
        "SetStyle did not fade: mid-fade snapshot {from_old:.1} dB from the old style, \
         {to_new:.1} dB from the new"
    );

    p.set_style_property("udnie").unwrap();
    assert_eq!(d.proxy().style().unwrap(), "udnie");
}

#[test]
fn a_recording_plays_and_lasts_as_long_as_it_ran() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    let p = d.proxy();
    d.wait_frames(3);
    let path = p.start_recording("clip").unwrap();
    let started = Instant::now();
    assert!(p.recording().unwrap());
    assert_eq!(p.recording_path().unwrap(), path);
    std::thread::sleep(Duration::from_secs(5));
    let wall = started.elapsed().as_secs_f64();
    let stopped = p.stop_recording().unwrap();
    assert_eq!(stopped, path);
    assert!(!p.recording().unwrap());
    assert!(Path::new(&path).starts_with(d.recordings()));
    let (frames, duration, errors) = decode(Path::new(&path));
    println!("recording: wall {wall:.2} s, file {duration:.2} s, {frames} frames");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(frames > 10);
    assert!(
        (duration - wall).abs() / wall <= 0.10,
        "duration {duration:.2} s vs wall clock {wall:.2} s"
    );
}

/// The core's warnings reach the daemon's own log (stderr here, journald under
/// systemd), not the GStreamer debug log.
#[test]
fn the_cores_warnings_reach_the_daemon_log() {
    let bus = Bus::start(None);
    let config = CONFIG.replace("inference_size = 128", "inference_size = 130");
    let d = Daemon::start(&bus, &config, &[]);
    d.wait_frames(2);
    let log = d.log();
    assert!(
        log.contains("inference size 130 is not a multiple of 4: the network runs at 128"),
        "{log}"
    );
}

/// A stop right after the start either saves a file that holds a frame, or says that
/// nothing was recorded and leaves no file.
#[test]
fn a_stop_right_after_the_start_never_saves_an_empty_file() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    let p = d.proxy();
    d.wait_frames(3);
    for i in 0..3 {
        let name = format!("quick{i}");
        let path = p.start_recording(&name).unwrap();
        match p.stop_recording() {
            Ok(saved) => {
                assert_eq!(saved, path);
                let (frames, _, errors) = decode(Path::new(&saved));
                assert!(errors.is_empty(), "{errors:?}");
                assert!(frames >= 1, "{saved} was saved with no frame");
            }
            Err(e) => {
                assert!(e.to_string().contains("nothing was recorded"), "{e}");
                assert!(!Path::new(&path).exists(), "an empty {path} was left");
            }
        }
    }
}

/// A new recording never touches an older one of the same name, split files included.
#[test]
fn a_name_whose_split_files_exist_is_taken_and_nothing_old_is_touched() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    let p = d.proxy();
    d.wait_frames(2);
    std::fs::create_dir_all(d.recordings()).unwrap();
    let old = d.recordings().join("garden-001.mkv");
    std::fs::write(&old, b"an older recording").unwrap();
    let e = p.start_recording("garden").unwrap_err();
    assert_eq!(
        dbus_error_name(&e),
        "io.github.stylize.Stylized1.Error.NameTaken"
    );
    assert!(e.to_string().contains("garden-001.mkv"), "{e}");
    assert_eq!(std::fs::read(&old).unwrap(), b"an older recording");
    assert!(!d.recordings().join("garden.mkv").exists());
    // Names that only share a prefix are free.
    let path = p.start_recording("garden-2").unwrap();
    p.stop_recording().unwrap();
    assert!(path.ends_with("garden-2.mkv"), "{path}");
}

/// A recording longer than `max_file_seconds` goes on in numbered files, each whole.
#[test]
fn a_long_recording_continues_in_numbered_files_that_each_play() {
    let bus = Bus::start(None);
    let config = format!("{CONFIG}\n[recording]\nmax_file_seconds = 1\n");
    let d = Daemon::start(&bus, &config, &[]);
    let p = d.proxy();
    d.wait_frames(3);
    let first = p.start_recording("long").unwrap();
    std::thread::sleep(Duration::from_millis(3500));
    let last = p.stop_recording().unwrap();
    let mut files: Vec<String> = std::fs::read_dir(d.recordings())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(files[0], "long-001.mkv");
    assert_eq!(files[files.len() - 1], "long.mkv");
    assert!(first.ends_with("/long.mkv"), "{first}");
    assert!(last.ends_with(&files[files.len() - 2]), "{last} {files:?}");
    for file in &files {
        let (frames, duration, errors) = decode(&d.recordings().join(file));
        println!("{file}: {frames} frames, {duration:.2} s");
        assert!(errors.is_empty(), "{file}: {errors:?}");
        assert!(frames > 0, "{file} is empty");
    }
}

#[test]
fn a_recording_survives_sigkill() {
    let bus = Bus::start(None);
    let mut d = Daemon::start(&bus, CONFIG, &[]);
    d.wait_frames(3);
    let path = d.proxy().start_recording("crash").unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let (status, _) = d.signal("KILL");
    assert!(!status.success());
    let (frames, duration, errors) = decode(Path::new(&path));
    println!("after SIGKILL: {frames} frames, {duration:.2} s playable");
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        frames > 10 && duration > 2.0,
        "{frames} frames, {duration} s"
    );
}

/// A crash (SIGKILL) loses at most the last half second of a recording, in either
/// container, at a camera's size and rate: bounded encoder delay, short fragments or
/// clusters, and no buffering in the file sink.
#[test]
fn sigkill_loses_at_most_half_a_second_in_either_container() {
    for container in ["matroska", "mp4"] {
        let bus = Bus::start(None);
        let config = CONFIG
            .replace("width = 160", "width = 640")
            .replace("height = 120", "height = 480")
            .replace("framerate = 15", "framerate = 30")
            + &format!("\n[recording]\ncontainer = \"{container}\"\n");
        let mut d = Daemon::start(&bus, &config, &[]);
        d.wait_frames(10);
        let path = d.proxy().start_recording("crash").unwrap();
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(8500));
        let wall = started.elapsed().as_secs_f64();
        let (status, _) = d.signal("KILL");
        assert!(!status.success());
        let (frames, duration, _errors) = decode(Path::new(&path));
        let lost = wall - duration;
        println!(
            "SIGKILL {container}: {frames} frames, {duration:.2} s playable of {wall:.2} s: \
             {lost:.2} s lost"
        );
        assert!(lost <= 0.5, "{container}: {lost:.2} s lost");
    }
}

#[test]
fn sigterm_finishes_the_recording_and_exits_zero_within_5_s() {
    let bus = Bus::start(None);
    let mut d = Daemon::start(&bus, CONFIG, &[]);
    d.wait_frames(3);
    let path = d.proxy().start_recording("term").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (status, took) = d.signal("TERM");
    println!("SIGTERM: exit {status} after {took:?}");
    assert!(status.success(), "{status}: {}", d.log());
    assert!(took < Duration::from_secs(5), "{took:?}");
    let (frames, _, errors) = decode(Path::new(&path));
    assert!(errors.is_empty() && frames > 5, "{errors:?} {frames}");
    let (status, _) = {
        let mut d2 = Daemon::start(&bus, CONFIG, &[]);
        d2.signal("INT")
    };
    assert!(status.success(), "SIGINT exit {status}");
}

#[test]
fn bad_inputs_get_named_errors() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    let p = d.proxy();
    let err = |r: Result<String, ControlError>| dbus_error_name(&r.unwrap_err());
    let prefix = "io.github.stylize.Stylized1.Error.";

    let e = p.set_style("no_such_style").unwrap_err();
    assert_eq!(dbus_error_name(&e), format!("{prefix}UnknownStyle"));
    assert!(e.to_string().contains("known styles: monet"), "{e}");
    for bad in [1.5, -0.1, f64::NAN] {
        let e = p.set_blend(bad).unwrap_err();
        assert_eq!(
            dbus_error_name(&e),
            format!("{prefix}InvalidBlend"),
            "{bad}"
        );
    }
    assert!(p.set_blend(0.25).is_ok());
    assert_eq!(p.blend().unwrap(), 0.25);

    assert_eq!(err(p.stop_recording()), format!("{prefix}NotRecording"));
    for name in ["../escape", "a/b", "..", "bell\u{7}", "", ".hidden"] {
        assert_eq!(
            err(p.start_recording(name)),
            format!("{prefix}InvalidName"),
            "{name:?}"
        );
    }
    d.wait_frames(2);
    p.start_recording("one").unwrap();
    assert_eq!(
        err(p.start_recording("two")),
        format!("{prefix}AlreadyRecording")
    );
    p.stop_recording().unwrap();
    assert_eq!(err(p.start_recording("one")), format!("{prefix}NameTaken"));
    let written: Vec<String> = std::fs::read_dir(d.recordings())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, ["one.mkv"]);
    assert!(!d.dir.path().join("escape.mkv").exists());

    // The property setters refuse the same values, with the standard error.
    let e = p.set_style_property("nope").unwrap_err();
    assert!(e.to_string().contains("unknown style"), "{e}");

    // stylizectl turns a D-Bus error into a message and a non-zero exit.
    let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        .args(["--session", "set", "nope"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("UnknownStyle") && stderr.contains("unknown style"),
        "{stderr}"
    );
    let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        .args(["--session", "--json", "status"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "running");
    // The global flags also work after the command, as users type them.
    let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        .args(["status", "--json", "--session"])
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["state"], "running");
}

#[test]
fn a_bad_config_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, text).unwrap();
        let out = our_binary(env!("CARGO_BIN_EXE_stylized"))
            .args(["--session", "--config"])
            .arg(&path)
            .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{text}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run("[stylize]\nstyle = \"monet\"\nblend = 7\n");
    assert!(e.contains("line 3") && e.contains("stylize.blend"), "{e}");
    let e = run("[source]\ninput = \"test\"\nwdth = 3\n");
    assert!(e.contains("line 3") && e.contains("wdth"), "{e}");
    let e = run("[source\n");
    assert!(e.contains("line 1"), "{e}");
    let e = run("[stylize]\nstyle = \"nonexistent_style\"\n");
    assert!(
        e.contains("nonexistent_style") && e.contains("known styles"),
        "{e}"
    );
    let e = run("[recording]\ncontainer = \"avi\"\n");
    assert!(
        e.contains("recording.container") && e.contains("line 2"),
        "{e}"
    );
    let missing = our_binary(env!("CARGO_BIN_EXE_stylized"))
        .args(["--session", "--config", "/nonexistent/config.toml"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.toml"));
}

#[test]
fn a_missing_camera_is_retried_while_dbus_keeps_serving() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &["--source", "v4l2:/dev/video-missing"]);
    let p = d.proxy();
    assert!(wait_for(Duration::from_secs(10), || p.state().unwrap()
        == "recovering"));
    let fault = p.fault().unwrap();
    assert!(
        fault.starts_with("cannot open camera /dev/video-missing: "),
        "the fault names the device and why: {fault:?}"
    );
    assert!(!p.list_styles().unwrap().is_empty());
    p.set_style("scream").unwrap();
    let e = p.start_recording("x").unwrap_err();
    assert_eq!(
        dbus_error_name(&e),
        "io.github.stylize.Stylized1.Error.NotRunning"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        p.state().unwrap(),
        "recovering",
        "it keeps trying, it does not exit"
    );
}

#[test]
fn a_full_disk_stops_the_recording_with_a_signal_and_the_stream_goes_on() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    std::fs::create_dir_all(d.recordings()).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(d.recordings())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(
        mounted,
        "this test needs root to mount a small tmpfs (CI runs as root)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(d.recordings());

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (path, message) = rt.block_on(async {
        use futures_util::StreamExt;
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .build()
            .await
            .unwrap();
        let proxy = stylized::dbus::StylizedProxy::new(&conn).await.unwrap();
        let mut failures = proxy.receive_recording_failed().await.unwrap();
        proxy.start_recording("big").await.unwrap();
        let signal = tokio::time::timeout(Duration::from_secs(30), failures.next())
            .await
            .expect("RecordingFailed within 30 s")
            .unwrap();
        let args = signal.args().unwrap();
        (args.path().to_string(), args.message().to_string())
    });
    println!("RecordingFailed: {path}: {message}");
    assert!(path.ends_with("big.mkv"));
    let p = d.proxy();
    assert!(!p.recording().unwrap());
    assert_eq!(p.state().unwrap(), "running");
    d.wait_frames(5);
    assert!(d.log().contains("recording failed"), "{}", d.log());
}

fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// 1000 SetStyle calls while streaming: no frame stall over 1 s, RSS flat within 10%.
#[test]
fn soak_1000_style_switches() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus, CONFIG, &[]);
    d.wait_frames(10);
    let pid = d.pid();
    // Warm every style once so each compiled path exists before measuring memory.
    let styles: Vec<String> = d
        .proxy()
        .list_styles()
        .unwrap()
        .into_iter()
        .map(|s| s.0)
        .collect();
    for s in &styles {
        d.proxy().set_style(s).unwrap();
        d.wait_frames(1);
    }
    let rss_before = rss_kib(pid);

    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let address = bus.address.clone();
        std::thread::spawn(move || {
            let conn = zbus::blocking::connection::Builder::address(address.as_str())
                .unwrap()
                .build()
                .unwrap();
            let p = StylizedProxyBlocking::builder(&conn)
                .cache_properties(zbus::proxy::CacheProperties::No)
                .build()
                .unwrap();
            let (mut last, mut since, mut worst) =
                (p.frames().unwrap(), Instant::now(), Duration::ZERO);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
                let now = p.frames().unwrap();
                if now != last {
                    worst = worst.max(since.elapsed());
                    last = now;
                    since = Instant::now();
                }
            }
            worst.max(since.elapsed())
        })
    };
    let started = Instant::now();
    let frames_before = d.proxy().frames().unwrap();
    let p = d.proxy();
    // Spread over a few seconds, so many frames stream while the style keeps changing.
    for i in 0..1000 {
        p.set_style(&styles[i % styles.len()]).unwrap();
        std::thread::sleep(Duration::from_millis(3));
    }
    let took = started.elapsed();
    d.wait_frames(5);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst_gap = watcher.join().unwrap();
    let frames = d.proxy().frames().unwrap() - frames_before;
    let rss_after = rss_kib(pid);
    let growth = (rss_after as f64 - rss_before as f64) / rss_before as f64;
    println!(
        "soak: 1000 SetStyle in {:.2} s ({:.0} calls/s), {frames} frames meanwhile, \
         longest frame gap {:.0} ms, RSS {rss_before} -> {rss_after} KiB ({:+.1}%)",
        took.as_secs_f64(),
        1000.0 / took.as_secs_f64(),
        worst_gap.as_secs_f64() * 1e3,
        growth * 100.0
    );
    assert!(
        worst_gap < Duration::from_secs(1),
        "frame stall of {worst_gap:?}"
    );
    assert!(growth.abs() <= 0.10, "RSS {rss_before} -> {rss_after} KiB");
}

/// On a system-style bus with our policy: root owns the name and may call methods;
/// another user may read properties but not call methods.
#[test]
fn system_bus_policy_lets_only_root_and_group_stylize_call_methods() {
    if effective_uid() != 0 {
        panic!("this test runs the daemon as root and a client as nobody; run as root");
    }
    let policy = root().join("systemd/io.github.stylize.Stylized1.conf");
    let conf = format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>@ADDRESS@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
  </policy>
  <include>{}</include>
</busconfig>"#,
        policy.display()
    );
    let bus = Bus::start(Some(&conf));
    let mut perms = std::fs::metadata(bus.dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(bus.dir.path(), perms).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, CONFIG).unwrap();
    let mut daemon = our_binary(env!("CARGO_BIN_EXE_stylized"))
        .args(["--config"])
        .arg(&config)
        .arg("--recordings")
        .arg(dir.path().join("rec"))
        .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ctl = |as_nobody: bool, args: &[&str]| {
        let mut cmd = if as_nobody {
            let mut c = Command::new("setpriv");
            c.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_stylizectl"));
            c
        } else {
            our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        };
        cmd.args(args)
            .env("DBUS_SYSTEM_BUS_ADDRESS", &bus.address)
            .output()
            .unwrap()
    };
    // The policy is what the Debian system bus does: deny method calls by default.
    let up = wait_for(Duration::from_secs(30), || {
        ctl(false, &["status"]).status.success()
    });
    let root_set = ctl(false, &["set", "scream"]);
    let nobody_status = ctl(true, &["status"]);
    let nobody_set = ctl(true, &["set", "monet"]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    assert!(up, "the daemon did not come up on the system-style bus");
    assert!(
        root_set.status.success(),
        "{}",
        String::from_utf8_lossy(&root_set.stderr)
    );
    assert!(
        nobody_status.status.success(),
        "reading properties: {}",
        String::from_utf8_lossy(&nobody_status.stderr)
    );
    assert!(!nobody_set.status.success());
    let stderr = String::from_utf8_lossy(&nobody_set.stderr);
    assert!(
        stderr.contains("AccessDenied") || stderr.contains("denied"),
        "{stderr}"
    );
}

fn effective_uid() -> u32 {
    // /proc/self/status "Uid:" has real, effective, saved, fs.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(u32::MAX)
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(root().join("systemd/stylized.service")).unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("WatchdogSec="));
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = unit
        .replace("/usr/bin/stylizectl", env!("CARGO_BIN_EXE_stylizectl"))
        .replace("/usr/bin/stylized", env!("CARGO_BIN_EXE_stylized"));
    let path = dir.path().join("stylized.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("stylized.service"),
        "{stderr}"
    );
}

/// READY once D-Bus is served, then WATCHDOG pings while frames flow (sd_notify protocol
/// on a datagram socket, as systemd provides it).
#[test]
fn notifies_ready_and_pings_the_watchdog_from_pipeline_health() {
    let bus = Bus::start(None);
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, CONFIG).unwrap();
    // systemd names the watched process in WATCHDOG_PID; `exec` keeps the shell's pid.
    let mut child = Command::new("sh")
        .args(["-c", "WATCHDOG_PID=$$ exec \"$0\" \"$@\""])
        .arg(env!("CARGO_BIN_EXE_stylized"))
        .args(["--session", "--config"])
        .arg(&config)
        .arg("--recordings")
        .arg(dir.path().join("rec"))
        .env("DBUS_SESSION_BUS_ADDRESS", &bus.address)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "1500000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut messages = Vec::new();
    let mut buf = [0u8; 512];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(20) {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                messages.push(text);
                if messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3 {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        messages.first().is_some_and(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    assert!(
        messages.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 3,
        "{messages:?}"
    );
}
