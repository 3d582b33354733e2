//! The RTSP stream end to end: the daemon binary with a test source on a private
//! dbus-daemon, and real clients on 127.0.0.1 (a free port each): `rtspsrc` pipelines
//! that decode, raw RTSP requests that check the 401, and a raw client that stops
//! reading while a recording runs. The stream's latency is measured in-process on the
//! stream module itself, with frames that carry their number.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use gst::prelude::*;
use stylized::config::{RecordingConfig, StreamConfig};
use stylized::dbus::StylizedProxyBlocking;
use stylized::stream::{Stream, StreamFeed};

const USER: &str = "viewer";
const PASSWORD: &str = "s3cret-pass";

/// The stream is off in the file: `--stream on` turns it on.
const CONFIG: &str = r#"
[source]
input = "test"
width = @WIDTH@
height = @HEIGHT@
framerate = 15

[stylize]
style = "monet"
inference_size = 128

[recording]
bitrate_kbps = @BITRATE@

[stream]
enabled = false
address = "127.0.0.1"
username = "viewer"
password = "s3cret-pass"
"#;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `stylized --stream on --stream-port PORT` with [`CONFIG`] at 160x120.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    connection: zbus::blocking::Connection,
    port: u16,
    bus_address: String,
}

impl Daemon {
    fn start(bus: &Bus) -> Daemon {
        Daemon::start_at(bus, 160, 120, 4000)
    }

    fn start_at(bus: &Bus, width: u32, height: u32, bitrate_kbps: u32) -> Daemon {
        Daemon::start_on(bus, width, height, bitrate_kbps, free_port())
    }

    fn start_on(bus: &Bus, width: u32, height: u32, bitrate_kbps: u32, port: u16) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        let text = CONFIG
            .replace("@WIDTH@", &width.to_string())
            .replace("@HEIGHT@", &height.to_string())
            .replace("@BITRATE@", &bitrate_kbps.to_string());
        std::fs::write(&config, text).unwrap();
        let child = our_binary(env!("CARGO_BIN_EXE_stylized"))
            .arg("--session")
            .arg("--config")
            .arg(&config)
            .arg("--recordings")
            .arg(dir.path().join("recordings"))
            .args(["--stream", "on", "--stream-port", &port.to_string()])
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
            child,
            dir,
            connection,
            port,
            bus_address: bus.address.clone(),
        };
        let running = wait_for(Duration::from_secs(60), || {
            daemon.proxy().state().is_ok_and(|s| s == "running")
        });
        assert!(running, "the daemon did not come up: {}", daemon.log());
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

    fn url(&self, credentials: Option<(&str, &str)>) -> String {
        let auth = credentials
            .map(|(u, p)| format!("{u}:{p}@"))
            .unwrap_or_default();
        format!("rtsp://{auth}127.0.0.1:{}/stylize", self.port)
    }

    fn frames(&self) -> u64 {
        self.proxy().frames().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An `rtspsrc ! decodebin ! fakesink` client counting decoded frames and the RTP
/// bytes it received.
struct Client {
    pipeline: gst::Pipeline,
    frames: Arc<AtomicU64>,
    rtp_bytes: Arc<AtomicU64>,
    first_frame: Arc<Mutex<Option<Instant>>>,
    started: Instant,
}

impl Client {
    fn start(url: &str, protocols: &str) -> Client {
        init();
        let pipeline = gst::parse::launch(&format!(
            "rtspsrc location=\"{url}\" latency=0 protocols={protocols} ! decodebin name=dec ! \
             fakesink name=sink sync=false"
        ))
        .unwrap()
        .downcast::<gst::Pipeline>()
        .unwrap();
        let frames = Arc::new(AtomicU64::new(0));
        let first_frame = Arc::new(Mutex::new(None));
        let (count, first) = (frames.clone(), first_frame.clone());
        pipeline
            .by_name("sink")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                first.lock().unwrap().get_or_insert_with(Instant::now);
                count.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        let rtp_bytes = Arc::new(AtomicU64::new(0));
        let bytes = rtp_bytes.clone();
        pipeline
            .by_name("dec")
            .unwrap()
            .static_pad("sink")
            .unwrap()
            .add_probe(gst::PadProbeType::BUFFER, move |_, info| {
                if let Some(buffer) = info.buffer() {
                    bytes.fetch_add(buffer.size() as u64, Ordering::Relaxed);
                }
                gst::PadProbeReturn::Ok
            });
        let started = Instant::now();
        // A refused client fails here or later on the bus; both are read by errors().
        let _ = pipeline.set_state(gst::State::Playing);
        Client {
            pipeline,
            frames,
            rtp_bytes,
            first_frame,
            started,
        }
    }

    fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Errors on the bus so far, with their debug text.
    fn errors(&self) -> Vec<String> {
        let bus = self.pipeline.bus().unwrap();
        let mut errors = Vec::new();
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                errors.push(format!("{} ({:?})", e.error(), e.debug()));
            }
        }
        errors
    }

    fn wait_frames(&self, n: u64, limit: Duration) -> bool {
        wait_for(limit, || self.frames() >= n)
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

/// A hand-written RTSP client: the requests as they go on the wire.
struct RawRtsp {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    cseq: u32,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawRtsp {
    /// Connects with a receive buffer of `receive_buffer` bytes (0: the default).
    fn connect(port: u16, receive_buffer: usize) -> RawRtsp {
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .expect("a socket");
        if receive_buffer > 0 {
            socket.set_recv_buffer_size(receive_buffer).unwrap();
        }
        socket
            .connect(&SocketAddr::from(([127, 0, 0, 1], port)).into())
            .expect("the RTSP server accepts");
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        RawRtsp {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            cseq: 0,
        }
    }

    fn request(&mut self, method: &str, url: &str, headers: &[(&str, &str)]) -> Response {
        self.cseq += 1;
        let mut text = format!("{method} {url} RTSP/1.0\r\nCSeq: {}\r\n", self.cseq);
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        self.writer.write_all(text.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not an RTSP response: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_string(), v.trim().to_string()));
            }
        }
        let mut response = Response {
            status,
            headers,
            body: String::new(),
        };
        let length: usize = response
            .header("Content-Length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        response.body = String::from_utf8_lossy(&body).into_owned();
        response
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        gst::glib::base64_encode(format!("{user}:{password}").as_bytes())
    )
}

/// Decodes a recording: (frames, errors).
fn decode(path: &Path) -> (u64, Vec<String>) {
    let d = decode_file(path);
    (d.frames, d.errors)
}

#[test]
fn an_authorised_client_decodes_frames_and_the_status_shows_the_stream() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus);
    let p = d.proxy();
    let url = format!("rtsp://127.0.0.1:{}/stylize", d.port);
    assert_eq!(p.stream_url().unwrap(), url);
    assert_eq!(p.stream_clients().unwrap(), 0);

    let client = Client::start(&d.url(Some((USER, PASSWORD))), "udp+tcp");
    let ok = client.wait_frames(30, Duration::from_secs(30));
    assert!(
        ok,
        "{} frames decoded; errors {:?}; daemon log: {}",
        client.frames(),
        client.errors(),
        d.log()
    );
    assert!(client.errors().is_empty(), "{:?}", client.errors());
    let first = client
        .first_frame
        .lock()
        .unwrap()
        .map(|t| t.duration_since(client.started));
    println!("stream: first decoded frame {first:?} after the client started (connect, DESCRIBE, SETUP, PLAY, a keyframe)");
    assert!(wait_for(Duration::from_secs(5), || p
        .stream_clients()
        .unwrap()
        == 1));

    let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        .args(["--session", "--json", "status"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.bus_address)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["stream_url"], url.as_str(), "{status}");
    assert_eq!(status["stream_clients"], 1, "{status}");
    let out = our_binary(env!("CARGO_BIN_EXE_stylizectl"))
        .args(["--session", "status"])
        .env("DBUS_SESSION_BUS_ADDRESS", &d.bus_address)
        .output()
        .unwrap();
    let human = String::from_utf8_lossy(&out.stdout);
    assert!(
        human
            .lines()
            .any(|l| l.starts_with("stream_url") && l.ends_with(&url)),
        "{human}"
    );

    // A client that leaves (TEARDOWN) is no longer counted, and the next one gets a
    // new media (the last one ended with its last client).
    drop(client);
    assert!(
        wait_for(Duration::from_secs(10), || p.stream_clients().unwrap() == 0),
        "still {} clients",
        p.stream_clients().unwrap()
    );
    let again = Client::start(&d.url(Some((USER, PASSWORD))), "udp+tcp");
    assert!(
        again.wait_frames(10, Duration::from_secs(30)),
        "a client after the first left: {} frames, {:?}",
        again.frames(),
        again.errors()
    );
}

#[test]
fn clients_without_or_with_wrong_credentials_get_401_and_no_frames() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus);
    let url = d.url(None);

    // On the wire: 401 with a Basic challenge and no SDP, then 200 with the right ones.
    let mut raw = RawRtsp::connect(d.port, 0);
    let accept = ("Accept", "application/sdp");
    let none = raw.request("DESCRIBE", &url, &[accept]);
    let wrong_auth = basic(USER, "wrong");
    let wrong = raw.request("DESCRIBE", &url, &[accept, ("Authorization", &wrong_auth)]);
    let other_user_auth = basic("someone", PASSWORD);
    let other_user = raw.request(
        "DESCRIBE",
        &url,
        &[accept, ("Authorization", &other_user_auth)],
    );
    for (what, r) in [
        ("no credentials", &none),
        ("a wrong password", &wrong),
        ("an unknown user", &other_user),
    ] {
        assert_eq!(r.status, 401, "{what}");
        assert!(
            r.header("WWW-Authenticate")
                .is_some_and(|h| h.starts_with("Basic")),
            "{what}: {:?}",
            r.headers
        );
        assert!(!r.body.contains("m=video"), "{what}: {}", r.body);
    }
    let right_auth = basic(USER, PASSWORD);
    let right = raw.request("DESCRIBE", &url, &[accept, ("Authorization", &right_auth)]);
    assert_eq!(right.status, 200);
    assert!(right.body.contains("m=video"), "{}", right.body);

    // rtspsrc: an error that says 401, and no frame.
    let refused = [
        Client::start(&d.url(None), "udp+tcp"),
        Client::start(&d.url(Some((USER, "wrong"))), "udp+tcp"),
    ];
    for (i, client) in refused.iter().enumerate() {
        let mut errors = Vec::new();
        assert!(
            wait_for(Duration::from_secs(15), || {
                errors.extend(client.errors());
                !errors.is_empty()
            }),
            "client {i} got no error"
        );
        let text = errors.join("; ");
        assert!(
            text.contains("401") || text.contains("Unauthorized"),
            "{text}"
        );
    }
    // While an authorised client decodes, the refused ones still get nothing.
    let good = Client::start(&d.url(Some((USER, PASSWORD))), "udp+tcp");
    assert!(good.wait_frames(10, Duration::from_secs(30)));
    for client in &refused {
        assert_eq!(client.frames(), 0);
    }
}

#[test]
fn two_clients_at_once_both_get_frames() {
    let bus = Bus::start(None);
    let d = Daemon::start(&bus);
    let url = d.url(Some((USER, PASSWORD)));
    let a = Client::start(&url, "udp+tcp");
    let b = Client::start(&url, "tcp");
    for (name, c) in [("udp", &a), ("tcp", &b)] {
        assert!(
            c.wait_frames(20, Duration::from_secs(30)),
            "{name} client: {} frames, {:?}",
            c.frames(),
            c.errors()
        );
    }
    assert!(wait_for(Duration::from_secs(5), || d
        .proxy()
        .stream_clients()
        .unwrap()
        == 2));
    println!("two clients: {} and {} frames", a.frames(), b.frames());
}

/// A client that plays over TCP (interleaved) with a 4 KiB receive buffer, then never
/// reads again.
struct Stalled {
    raw: RawRtsp,
    playing: Instant,
}

impl Stalled {
    fn start(port: u16) -> Stalled {
        let url = format!("rtsp://127.0.0.1:{port}/stylize");
        let auth = basic(USER, PASSWORD);
        let auth = ("Authorization", auth.as_str());
        let mut raw = RawRtsp::connect(port, 4096);
        let describe = raw.request("DESCRIBE", &url, &[("Accept", "application/sdp"), auth]);
        assert_eq!(describe.status, 200);
        let base = describe
            .header("Content-Base")
            .unwrap_or(&url)
            .trim_end_matches('/')
            .to_string();
        let control = describe
            .body
            .lines()
            .filter_map(|l| l.trim().strip_prefix("a=control:"))
            .next_back()
            .expect("a control attribute");
        let track = if control.starts_with("rtsp://") {
            control.to_string()
        } else {
            format!("{base}/{control}")
        };
        let setup = raw.request(
            "SETUP",
            &track,
            &[("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"), auth],
        );
        assert_eq!(setup.status, 200, "{:?}", setup.headers);
        let session = setup
            .header("Session")
            .and_then(|s| s.split(';').next())
            .expect("a session")
            .to_string();
        let play = raw.request(
            "PLAY",
            &url,
            &[("Session", &session), ("Range", "npt=0-"), auth],
        );
        assert_eq!(play.status, 200);
        Stalled {
            raw,
            playing: Instant::now(),
        }
    }

    /// Reads what waits for it, and whatever comes in the next 3 s: (bytes, RTP packets,
    /// sequence numbers missing, seconds of media covered, seconds since PLAY).
    fn drain(mut self) -> (usize, u64, u64, f64, f64) {
        self.raw
            .writer
            .set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut data = Vec::new();
        let mut chunk = [0u8; 65536];
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until {
            match self.raw.reader.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&chunk[..n]),
            }
        }
        let played = self.playing.elapsed().as_secs_f64();
        let (packets, missing, span) = rtp_packets(&data);
        (data.len(), packets, missing, span, played)
    }
}

/// The daemon with a client that stalls: the camera, a recording made meanwhile and a
/// healthy client go on. (The daemon's test picture makes a light stream, which
/// gst-rtsp-server and the kernel buffer for the stalled client; the test below makes a
/// stream heavy enough that the server has to drop the client.)
#[test]
fn a_client_that_stops_reading_stalls_neither_the_camera_nor_a_recording() {
    let bus = Bus::start(None);
    let d = Daemon::start_at(&bus, 640, 480, 4000);
    let p = d.proxy();
    let stalled = Stalled::start(d.port);
    std::thread::sleep(Duration::from_secs(3));
    let healthy = Client::start(&d.url(Some((USER, PASSWORD))), "tcp");
    assert!(
        healthy.wait_frames(5, Duration::from_secs(30)),
        "{:?}",
        healthy.errors()
    );
    assert_eq!(p.stream_clients().unwrap(), 2);
    let (camera_before, healthy_before) = (d.frames(), healthy.frames());
    let path = p.start_recording("during-stall").unwrap();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(6));
    let stopped = p.stop_recording().unwrap();
    let wall = started.elapsed().as_secs_f64();
    let camera = d.frames() - camera_before;
    let watched = healthy.frames() - healthy_before;
    assert_eq!(stopped, path);
    assert_eq!(
        p.stream_clients().unwrap(),
        2,
        "the stalled client is still there"
    );

    let (recorded, errors) = decode(Path::new(&path));
    let fps = 15.0;
    let (bytes, packets, _, span, played) = stalled.drain();
    println!(
        "stalled client (daemon): over {wall:.1} s the camera gave {camera} frames, the \
         recording holds {recorded}, the healthy client decoded {watched}; {bytes} bytes \
         ({packets} RTP packets, {span:.1} s of video) waited for the stalled client after \
         {played:.1} s"
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        camera as f64 >= 0.8 * fps * wall,
        "the camera slowed down: {camera} frames in {wall:.1} s"
    );
    assert!(
        recorded as f64 >= 0.9 * camera as f64 && recorded <= camera + 2,
        "the recording holds {recorded} frames of the camera's {camera}"
    );
    assert!(
        watched as f64 >= 0.7 * fps * wall,
        "the healthy client got {watched} frames in {wall:.1} s"
    );
}

/// The daemon's frame path without the element, in-process: a "camera" thread hands
/// every frame to a recording and to the stream, as the camera pipeline's appsink does
/// (`pipeline.rs`). The frames are noise, so the stream is heavy (the encoder's full
/// bitrate) and a client that stops reading really falls behind: gst-rtsp-server
/// buffers some 17 s for it (about 9 MB here), then drops it. Meanwhile the camera keeps its pace, the
/// recording gets every frame and a healthy client keeps decoding.
#[test]
fn a_stalled_client_of_a_heavy_stream_is_dropped_and_never_holds_up_the_frames() {
    init();
    let (width, height, fps) = (640usize, 480usize, 15u32);
    let port = free_port();
    let config = StreamConfig {
        enabled: true,
        address: "127.0.0.1".into(),
        port,
        username: USER.into(),
        password: PASSWORD.into(),
        ..StreamConfig::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let recording = RecordingConfig {
        directory: dir.path().to_path_buf(),
        ..RecordingConfig::default()
    };
    let stream_feed = StreamFeed::default();
    let _stream = Stream::start(&config, &recording, fps, &stream_feed).expect("the stream");
    let record_feed = stylized::recording::FeedSlot::default();

    let pushed = Arc::new(AtomicU64::new(0));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let camera = {
        let (pushed, running) = (pushed.clone(), running.clone());
        let (stream_feed, record_feed) = (stream_feed.clone(), record_feed.clone());
        std::thread::spawn(move || {
            let info = gst_video::VideoInfo::builder(
                gst_video::VideoFormat::Rgb,
                width as u32,
                height as u32,
            )
            .fps(gst::Fraction::new(fps as i32, 1))
            .build()
            .unwrap();
            let caps = info.to_caps().unwrap();
            let mut state = 0x9e37_79b9_7f4a_7c15u64;
            let start = Instant::now();
            let mut n = 0u64;
            while running.load(Ordering::Relaxed) {
                let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
                {
                    let b = buffer.get_mut().unwrap();
                    b.set_pts(gst::ClockTime::from_nseconds(
                        n * 1_000_000_000 / fps as u64,
                    ));
                    let mut map = b.map_writable().unwrap();
                    for word in map.chunks_mut(8) {
                        // xorshift64: noise the encoder cannot squeeze.
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        word.copy_from_slice(&state.to_le_bytes()[..word.len()]);
                    }
                }
                let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
                if let Some(feed) = record_feed.lock().unwrap().as_mut() {
                    feed.push(&sample);
                }
                stream_feed.push(&sample);
                pushed.fetch_add(1, Ordering::Relaxed);
                n += 1;
                // The camera's own pace; a push that waited would make it fall behind.
                let next = start + Duration::from_nanos(n * 1_000_000_000 / fps as u64);
                std::thread::sleep(next.saturating_duration_since(Instant::now()));
            }
        })
    };

    let stalled = Stalled::start(port);
    let healthy = Client::start(
        &format!("rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/stylize"),
        "tcp",
    );
    assert!(
        healthy.wait_frames(5, Duration::from_secs(30)),
        "{:?}",
        healthy.errors()
    );
    // gst-rtsp-server keeps 100 messages (frames) in the connection's queue and then
    // 10 s in the transport's backlog for a client that does not read: past that, it
    // drops the client. Record while that happens.
    std::thread::sleep(Duration::from_secs(10));
    let path = dir.path().join("stall.mkv");
    let recorder = stylized::recording::Recorder::start(&recording, fps, &path, &record_feed)
        .expect("the recording starts");
    let (pushed_before, healthy_before) = (pushed.load(Ordering::Relaxed), healthy.frames());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(14));
    let pushed_during = pushed.load(Ordering::Relaxed) - pushed_before;
    let wall = started.elapsed().as_secs_f64();
    let watched = healthy.frames() - healthy_before;
    recorder
        .finish(Duration::from_secs(10))
        .expect("the recording is finalized");
    let (bytes, packets, missing, span, played) = stalled.drain();
    running.store(false, Ordering::Relaxed);
    camera.join().unwrap();
    let sent = healthy.rtp_bytes.load(Ordering::Relaxed);
    let healthy_for = healthy.started.elapsed().as_secs_f64();
    drop(healthy);

    let (recorded, errors) = decode(&path);
    println!(
        "stalled client (heavy stream, {:.0} kB/s to the healthy client): over {wall:.1} s \
         the camera pushed {pushed_during} frames, the recording holds {recorded}, the \
         healthy client decoded {watched}; the stalled one, {played:.1} s after PLAY, \
         had {bytes} bytes waiting: {packets} RTP packets ({missing} missing) covering \
         {span:.1} s of video",
        sent as f64 / 1000.0 / healthy_for
    );
    assert!(errors.is_empty(), "{errors:?}");
    assert!(
        pushed_during as f64 >= 0.9 * fps as f64 * wall,
        "the camera fell behind: {pushed_during} frames in {wall:.1} s"
    );
    assert!(
        recorded as f64 >= 0.95 * pushed_during as f64 && recorded <= pushed_during + 2,
        "the recording holds {recorded} of the {pushed_during} frames pushed"
    );
    assert!(
        watched as f64 >= 0.7 * fps as f64 * wall,
        "the healthy client got {watched} frames in {wall:.1} s"
    );
    assert!(packets > 0, "the stalled client got no RTP packet at all");
    assert!(
        span < played - 3.0,
        "the stalled client got {span:.1} s of video in {played:.1} s: it was not behind, \
         the test did not stall it"
    );
}

/// Walks RTSP interleaved data (`$`, channel, length, packet) and reads the RTP packets
/// of channel 0: (packets, sequence numbers missing in between, seconds of media from
/// the first timestamp to the last at 90 kHz).
fn rtp_packets(data: &[u8]) -> (u64, u64, f64) {
    let (mut packets, mut missing, mut last) = (0u64, 0u64, None::<u16>);
    let (mut first_ts, mut last_ts) = (None::<u32>, 0u32);
    let mut at = 0;
    while at + 4 <= data.len() && data[at] == b'$' {
        let channel = data[at + 1];
        let length = u16::from_be_bytes([data[at + 2], data[at + 3]]) as usize;
        let Some(packet) = data.get(at + 4..at + 4 + length) else {
            break; // cut off at the end of what was read
        };
        if channel == 0 && packet.len() >= 8 {
            let seq = u16::from_be_bytes([packet[2], packet[3]]);
            if let Some(last) = last {
                missing += u64::from(seq.wrapping_sub(last).wrapping_sub(1));
            }
            last = Some(seq);
            last_ts = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
            first_ts.get_or_insert(last_ts);
            packets += 1;
        }
        at += 4 + length;
    }
    let span = last_ts.wrapping_sub(first_ts.unwrap_or(last_ts)) as f64 / 90_000.0;
    (packets, missing, span)
}

/// Latency of the stream itself, from a frame handed to the stream (as the camera's
/// appsink does) to the same frame decoded by an `rtspsrc` client: each frame carries
/// its number in black and white bars. The stylize element's own time comes on top
/// (the `InferenceMs` property, and the element's latency figure).
#[test]
fn stream_latency_from_push_to_decoded_frame() {
    init();
    const BITS: usize = 10;
    const BAR: usize = 64;
    let (width, height) = (BITS * BAR, 480);
    let port = free_port();
    let config = StreamConfig {
        enabled: true,
        address: "127.0.0.1".into(),
        port,
        username: USER.into(),
        password: PASSWORD.into(),
        ..StreamConfig::default()
    };
    let fps = 30;
    let feed = StreamFeed::default();
    let stream =
        Stream::start(&config, &RecordingConfig::default(), fps, &feed).expect("the stream starts");
    assert_eq!(stream.url(), format!("rtsp://127.0.0.1:{port}/stylize"));

    let pushed: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pusher = {
        let (pushed, running, feed) = (pushed.clone(), running.clone(), feed.clone());
        std::thread::spawn(move || {
            let info = gst_video::VideoInfo::builder(
                gst_video::VideoFormat::Rgb,
                width as u32,
                height as u32,
            )
            .fps(gst::Fraction::new(fps as i32, 1))
            .build()
            .unwrap();
            let caps = info.to_caps().unwrap();
            let stride = info.stride()[0] as usize;
            let mut n = 0usize;
            while running.load(Ordering::Relaxed) && n < (1 << BITS) {
                let mut buffer = gst::Buffer::with_size(info.size()).unwrap();
                {
                    let mut map = buffer.get_mut().unwrap().map_writable().unwrap();
                    for y in 0..height {
                        for x in 0..width {
                            let on = (n >> (x / BAR)) & 1 == 1;
                            let v = if on { 235 } else { 16 };
                            map[y * stride + x * 3..y * stride + x * 3 + 3].fill(v);
                        }
                    }
                }
                let sample = gst::Sample::builder().buffer(&buffer).caps(&caps).build();
                pushed.lock().unwrap().push(Instant::now());
                feed.push(&sample);
                n += 1;
                std::thread::sleep(Duration::from_millis(1000 / fps as u64));
            }
        })
    };

    let (pipeline, sink) = launch(&format!(
        "rtspsrc location=\"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/stylize\" latency=0 ! \
         decodebin ! videoconvert ! video/x-raw,format=RGB ! appsink name=sink"
    ));
    let decoded: Arc<Mutex<Vec<(usize, Instant)>>> = Arc::default();
    let seen = decoded.clone();
    sink.set_callbacks(
        gst_app::AppSinkCallbacks::builder()
            .new_sample(move |sink| {
                let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                let at = Instant::now();
                let rgb = Rgb::from_sample(&sample);
                let row = rgb.height / 2 * rgb.width * 3;
                let n = (0..BITS)
                    .filter(|bit| rgb.data[row + (bit * BAR + BAR / 2) * 3] > 128)
                    .fold(0, |n, bit| n | 1 << bit);
                seen.lock().unwrap().push((n, at));
                Ok(gst::FlowSuccess::Ok)
            })
            .build(),
    );
    pipeline.set_state(gst::State::Playing).unwrap();
    let enough = wait_for(Duration::from_secs(30), || {
        decoded.lock().unwrap().len() >= 150
    });
    running.store(false, Ordering::Relaxed);
    pusher.join().unwrap();
    pipeline.set_state(gst::State::Null).unwrap();
    drop(stream);

    let decoded = decoded.lock().unwrap().clone();
    let pushed = pushed.lock().unwrap().clone();
    assert!(enough, "{} frames decoded", decoded.len());
    let numbers: Vec<usize> = decoded.iter().map(|(n, _)| *n).collect();
    assert!(
        numbers.windows(2).all(|w| w[0] < w[1]) && numbers.iter().all(|&n| n < pushed.len()),
        "the decoded frames do not carry the numbers pushed, in order: {numbers:?}"
    );
    // The first frames wait for the client to connect; from the second second on, the
    // stream runs steadily.
    let mut latencies: Vec<f64> = decoded
        .iter()
        .skip(30)
        .map(|&(n, at)| at.duration_since(pushed[n]).as_secs_f64() * 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    println!(
        "stream latency, push to decoded frame ({} frames, {width}x{height} at {fps} fps, \
         x264enc zerolatency, rtspsrc latency=0 over UDP on 127.0.0.1): median {:.1} ms, \
         90th percentile {:.1} ms, max {:.1} ms; {} of {} frames pushed were decoded",
        latencies.len(),
        at(0.5),
        at(0.9),
        at(1.0),
        decoded.len(),
        pushed.len()
    );
}

#[test]
fn a_stream_that_cannot_listen_leaves_the_camera_and_dbus_running() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let bus = Bus::start(None);
    let d = Daemon::start_on(&bus, 160, 120, 4000, port);
    let p = d.proxy();
    assert_eq!(p.stream_url().unwrap(), "");
    assert_eq!(p.stream_clients().unwrap(), 0);
    let before = d.frames();
    assert!(wait_for(Duration::from_secs(10), || d.frames() >= before + 10));
    let log = d.log();
    assert!(
        log.contains("no RTSP stream") && log.contains(&format!("port {port}")),
        "{log}"
    );
}

#[test]
fn enabling_the_stream_without_credentials_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[source]\ninput = \"test\"\n").unwrap();
    let out = our_binary(env!("CARGO_BIN_EXE_stylized"))
        .arg("--session")
        .arg("--config")
        .arg(&config)
        .args(["--stream", "on"])
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`stream.username` is empty") && stderr.contains("allow_anonymous"),
        "{stderr}"
    );
}
