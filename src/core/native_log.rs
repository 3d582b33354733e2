//! What LiteRT (and the Vulkan drivers and Dawn under it) print on stderr, routed into
//! `tracing` while our calls into them run, so that a CPU-only run is quiet and nothing
//! is thrown away.
//!
//! libLiteRt.so 2.3.0 writes `INFO: [environment.cc:36] …` lines, TFLite's `INFO: …`,
//! absl's `I0000 00:00:… file.cc:56] …` and Dawn's `Warning: …` straight to file
//! descriptor 2: about 11 lines per environment and model on the CPU, more on the GPU.
//! It exports no logger API (`nm -D` lists no `LiteRtSetMinLoggerSeverity`,
//! `LiteRtGetDefaultLogger`, `TfLiteLoggerSetMinimumLogSeverity`, nor absl's
//! `SetMinLogLevel`/`SetStderrThreshold`; the library is stripped, so nothing else can be
//! reached with `dlsym`) and reads no log-level variable. So the only handle is the file
//! descriptor, and [`routed`] takes it only while one of our calls that print runs
//! (environment, model and compiled-model creation and destruction, the Vulkan probe):
//!
//! - fd 2 is saved (`dup`) and replaced by a pipe; on leaving, the saved one is put back
//!   (`dup2`), also when the call panics (a guard). What fd 2 was, a terminal, a file or
//!   `/dev/null` that the program itself redirected it to, is what it is again after.
//! - A reader thread drains the pipe (so a writer never blocks on a full pipe) and cuts
//!   it into lines, joining lines split across writes. A line in one of the native
//!   formats goes to `tracing` (target `litert`); any other line, which another thread of
//!   the program wrote meanwhile, goes to the saved real stderr unchanged.
//! - `tracing` events are sent from a third thread: a subscriber that writes to stderr
//!   (GStreamer's debug log, the daemon's stderr log) writes into the pipe while it is in
//!   place, and the reader must never wait on the pipe it drains.
//! - The events go to the `tracing` dispatcher of the thread that opened the routing, or
//!   where that has none, to the one set by [`set_dispatch`] (the plugin's, which writes
//!   to the GStreamer category `stylize`): an engine may well be dropped outside the
//!   plugin's scoped subscriber.
//! - Engines start in parallel (one per worker): a process-wide lock and a count keep
//!   one pipe for all calls that overlap, put in place by the first and taken away by the
//!   last.
//!
//! Levels are lower than the library's own, because its severities describe its inner
//! workings, not our call: a LiteRT call that fails returns a status that we report as
//! an error ourselves, and its warnings are about what it could not register or tune
//! ("NPU accelerator could not be loaded" at every start of every engine), which our
//! own checks report where it matters (`auto`, the Vulkan probe). So ERROR and FATAL
//! become `warn`, WARNING and INFO `debug`, VERBOSE `trace`: `GST_DEBUG=stylize:5` or
//! `STYLIZED_LOG=debug` shows them, the daemon's default log (info) does not.
//!
//! Limits: a foreign line that starts like a native one (`INFO: …`) goes to `tracing`
//! too; a foreign line that is still unfinished when the routing ends comes out after
//! the lines written right after it; a program that moves fd 2 itself during one of our
//! calls gets the saved one back. If the process dies inside a call (the GPU accelerator
//! can abort), lines the reader had not yet read are lost: set [`KEEP_ENV`] to 1 to
//! leave stderr alone when debugging such a crash.

use std::io::Write as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tracing::Dispatch;

/// Set to 1 to leave the native libraries' stderr alone (their lines then go straight to
/// stderr, as without this module).
pub const KEEP_ENV: &str = "STYLIZE_NATIVE_STDERR";

/// How long the last caller waits for the reader to pass on what is left in the pipe.
/// A child process started meanwhile holds the pipe open for as long as it runs; the
/// reader then keeps forwarding its lines on its own.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

/// A line longer than this is passed on in pieces (a writer that never ends its line).
const MAX_LINE: usize = 64 * 1024;

/// A native library's severity, as its line states it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Verbose,
    Info,
    Warning,
    Error,
}

/// The severity of `line` when it is in one of the native libraries' formats, else None
/// (a line of the program's own, passed on to stderr).
///
/// - LiteRT and TFLite: `INFO: [environment.cc:36] …`, `WARNING: …`, `ERROR: …`,
///   `VERBOSE: …`, when the text after the prefix names a source file in brackets or
///   is one of TFLite's own bracketless lines (it names TensorFlow Lite, XNNPack,
///   OpenCL or a delegate). gst-launch prints in the same format (`ERROR: pipeline
///   doesn't want to preroll.`), and its lines must reach stderr;
/// - the tail of such a line whose prefix another thread's line took (parallel engines
///   write prefix and text apart): `[accelerator_registry.cc:43] …`, and the empty
///   line such interleaving leaves;
/// - absl: `I0000 00:00:1795971011.517294   11930 file.cc:56] …` (I, W, E, F);
/// - Dawn: `Warning: …`, `Info: …`, `Error: …`, `Debug: …`;
/// - Mesa and the Vulkan loader: `MESA-LOADER: …`, `MESA-INTEL: warning: …`,
///   `ERROR: [Loader Message] …` (the latter through the first rule).
pub fn severity(line: &str) -> Option<Severity> {
    if line.is_empty() || names_a_source_file(line) {
        return Some(Severity::Verbose);
    }
    if let Some((severity, rest)) = tflite_prefix(line) {
        return tflite_text(rest).then_some(severity);
    }
    if let Some(severity) = absl_severity(line) {
        return Some(severity);
    }
    for (prefix, severity) in [
        ("Debug: ", Severity::Verbose),
        ("Info: ", Severity::Info),
        ("Warning: ", Severity::Warning),
        ("Error: ", Severity::Error),
    ] {
        if line.starts_with(prefix) {
            return Some(severity);
        }
    }
    if line.starts_with("MESA") {
        let (tag, rest) = line.split_once(": ")?;
        if tag.bytes().all(|b| b.is_ascii_uppercase() || b == b'-') {
            let rest = rest.to_ascii_lowercase();
            return Some(if rest.starts_with("error") {
                Severity::Error
            } else if rest.starts_with("warning") {
                Severity::Warning
            } else {
                Severity::Info
            });
        }
    }
    None
}

/// TFLite's severity prefix and the text after it (after any repeated prefixes, which
/// interleaved writes leave).
fn tflite_prefix(line: &str) -> Option<(Severity, &str)> {
    let mut found = None;
    let mut rest = line;
    'prefixes: loop {
        for (prefix, severity) in [
            ("VERBOSE: ", Severity::Verbose),
            ("INFO: ", Severity::Info),
            ("WARNING: ", Severity::Warning),
            ("ERROR: ", Severity::Error),
            ("FATAL: ", Severity::Error),
        ] {
            if let Some(after) = rest.strip_prefix(prefix) {
                found = Some(found.map_or(severity, |s: Severity| s.max(severity)));
                rest = after;
                continue 'prefixes;
            }
        }
        return found.map(|severity| (severity, rest));
    }
}

/// Whether the text after a TFLite prefix is the native library's: it names a source
/// file (`[environment.cc:36] …`, the Vulkan loader's `[Loader Message] …`) or is one of
/// TFLite's bracketless lines.
fn tflite_text(rest: &str) -> bool {
    const BRACKETLESS: &[&str] = &[
        "TensorFlow Lite",
        "XNNPack",
        "XNNPACK",
        "OpenCL",
        "delegate",
    ];
    rest.is_empty()
        || names_a_source_file(rest)
        || rest.starts_with("[Loader Message]")
        || BRACKETLESS.iter().any(|k| rest.contains(k))
}

/// `[file.cc:12] …`: native libraries name the source line that logs.
fn names_a_source_file(text: &str) -> bool {
    let Some(inner) = text
        .strip_prefix('[')
        .and_then(|t| t.split_once(']'))
        .map(|(i, _)| i)
    else {
        return false;
    };
    let Some((file, line)) = inner.rsplit_once(':') else {
        return false;
    };
    !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
        && [".cc", ".c", ".cpp", ".h"]
            .iter()
            .any(|ext| file.ends_with(ext))
}

/// absl's prefix: `Lmmdd hh:mm:ss.uuuuuu threadid file:line] `.
fn absl_severity(line: &str) -> Option<Severity> {
    let severity = match line.as_bytes().first()? {
        b'I' => Severity::Info,
        b'W' => Severity::Warning,
        b'E' | b'F' => Severity::Error,
        _ => return None,
    };
    let mut words = line[1..].split_whitespace();
    let date = words.next()?;
    let time = words.next()?;
    let thread = words.next()?;
    let place = words.next()?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let ok = date.len() == 4
        && digits(date)
        && time.len() > 9
        && time
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b':' || b == b'.')
        && digits(thread)
        && place.ends_with(']')
        && place.contains(':');
    ok.then_some(severity)
}

/// The dispatcher for native lines when the thread that opened the routing has none.
static FALLBACK: OnceLock<Dispatch> = OnceLock::new();

/// Sets where native lines go when the calling thread has no `tracing` subscriber (the
/// plugin: the GStreamer category). The first call wins.
pub fn set_dispatch(dispatch: Dispatch) {
    let _ = FALLBACK.set(dispatch);
}

/// Whether routing is on: not when [`KEEP_ENV`] is 1. Read once.
fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var(KEEP_ENV).map_or(true, |v| v != "1"))
}

/// Runs `f`, a call into a native library that may print, with what it prints on stderr
/// routed to `tracing` (see the module doc). Other threads' stderr output meanwhile
/// reaches stderr as before. When the routing cannot be set up (fd 2 is closed, no more
/// file descriptors or threads), `f` runs with stderr as it is.
pub fn routed<R>(f: impl FnOnce() -> R) -> R {
    let _guard = enabled().then(enter).flatten();
    f()
}

#[derive(Default)]
struct State {
    /// Calls inside [`routed`] now.
    depth: usize,
    session: Option<Session>,
}

fn state() -> std::sync::MutexGuard<'static, State> {
    static STATE: Mutex<State> = Mutex::new(State {
        depth: 0,
        session: None,
    });
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Leaves the routing when dropped, after a panic too.
struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        let ended = {
            let mut state = state();
            state.depth -= 1;
            if state.depth > 0 {
                return;
            }
            // Put back under the lock, so that the next enter saves the real stderr.
            state.session.take().map(Session::restore)
        };
        if let Some(done) = ended {
            let _ = done.recv_timeout(DRAIN_WAIT);
        }
    }
}

fn enter() -> Option<Guard> {
    let mut state = state();
    if state.depth == 0 {
        match Session::start() {
            Ok(session) => state.session = Some(session),
            Err(error) => {
                tracing::debug!("native stderr left as it is: {error}");
                return None;
            }
        }
    }
    state.depth += 1;
    Some(Guard)
}

/// One period with the pipe in place of fd 2.
struct Session {
    /// The real stderr, put back at the end.
    saved: OwnedFd,
    /// Sent to (or closed) when the pipe is drained and every line passed on.
    done: mpsc::Receiver<()>,
}

impl Session {
    fn start() -> std::io::Result<Session> {
        let dispatch = tracing::dispatcher::get_default(|d| d.clone());
        let dispatch = if dispatch.is::<tracing::subscriber::NoSubscriber>() {
            FALLBACK.get().cloned().unwrap_or(dispatch)
        } else {
            dispatch
        };
        let saved = dup(libc::STDERR_FILENO)?;
        let forward = std::fs::File::from(dup(saved.as_raw_fd())?);
        let (read_end, write_end) = pipe()?;
        let (lines_tx, lines_rx) = mpsc::channel::<(Severity, String)>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("litert-log".into())
            .spawn(move || {
                tracing::dispatcher::with_default(&dispatch, || {
                    // Ends when the reader has ended (and dropped the sender).
                    for (severity, line) in lines_rx {
                        emit(severity, &line);
                    }
                });
                let _ = done_tx.send(());
            })?;
        std::thread::Builder::new()
            .name("litert-stderr".into())
            .spawn(move || read_lines(std::fs::File::from(read_end), forward, lines_tx))?;
        // SAFETY: both are open descriptors; dup2 atomically makes fd 2 the pipe.
        if unsafe { libc::dup2(write_end.as_raw_fd(), libc::STDERR_FILENO) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // fd 2 now holds the write end; this copy closes here.
        drop(write_end);
        Ok(Session {
            saved,
            done: done_rx,
        })
    }

    /// Puts the real stderr back; the pipe's last write end (fd 2) closes with it, so the
    /// reader drains it and ends, and then the thread that sends the events. Returns what
    /// tells when they have.
    fn restore(self) -> mpsc::Receiver<()> {
        loop {
            // SAFETY: `saved` is open; dup2 replaces fd 2 atomically.
            let r = unsafe { libc::dup2(self.saved.as_raw_fd(), libc::STDERR_FILENO) };
            if r >= 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                break;
            }
        }
        self.done
    }
}

/// Reads the pipe to its end, line by line: native lines to `lines`, the others to
/// `forward` (the real stderr) as they were written.
fn read_lines(
    mut pipe: std::fs::File,
    mut forward: std::fs::File,
    lines: mpsc::Sender<(Severity, String)>,
) {
    use std::io::Read as _;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    let mut pass_on = |line: &[u8]| {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        match severity(text) {
            Some(severity) => {
                let _ = lines.send((severity, text.to_string()));
            }
            None => {
                let _ = forward.write_all(line);
            }
        }
    };
    loop {
        let n = match pipe.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        pending.extend_from_slice(&buf[..n]);
        let mut start = 0;
        while let Some(end) = pending[start..].iter().position(|&b| b == b'\n') {
            pass_on(&pending[start..=start + end]);
            start += end + 1;
        }
        pending.drain(..start);
        if pending.len() > MAX_LINE {
            pass_on(&pending);
            pending.clear();
        }
    }
    if !pending.is_empty() {
        pass_on(&pending);
    }
}

fn emit(severity: Severity, line: &str) {
    match severity {
        Severity::Error => tracing::warn!(target: "litert", "{line}"),
        Severity::Warning | Severity::Info => tracing::debug!(target: "litert", "{line}"),
        Severity::Verbose => tracing::trace!(target: "litert", "{line}"),
    }
}

/// A close-on-exec copy of `fd`.
fn dup(fd: RawFd) -> std::io::Result<OwnedFd> {
    // SAFETY: F_DUPFD_CLOEXEC on any descriptor number is safe; a closed one fails.
    let copy = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if copy < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `copy` is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(copy) })
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are new descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn native_formats_are_recognised_and_other_lines_are_not() {
        for (line, want) in [
            (
                "INFO: [environment.cc:36] Creating LiteRT environment with options",
                Some(Severity::Info),
            ),
            (
                "WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded",
                Some(Severity::Warning),
            ),
            (
                "INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
                Some(Severity::Info),
            ),
            (
                "I0000 00:00:1795971011.517294   11930 webgpu_pipeline_cache.cc:56] Loaded",
                Some(Severity::Info),
            ),
            (
                "E0101 12:00:00.000001 7 delegate_webgpu.cc:342] failed",
                Some(Severity::Error),
            ),
            (
                "Warning: maxDynamicUniformBuffersPerPipelineLayout artificially reduced",
                Some(Severity::Warning),
            ),
            (
                "MESA-INTEL: warning: Performance support disabled",
                Some(Severity::Warning),
            ),
            ("MESA-LOADER: failed to open iris", Some(Severity::Info)),
            (
                "ERROR: from element /GstPipeline:pipeline0/GstFakeSink",
                None,
            ),
            (
                "WARNING: from element /GstPipeline:pipeline0/GstStylize",
                None,
            ),
            ("0:00:00.087227528 11821 0x55 INFO stylize imp.rs:773", None),
            ("Interrupt: Stopping pipeline ...", None),
            ("I am a line of the program", None),
            ("MESSAGE: hello", None),
            // gst-launch's own lines, in TFLite's format: passed on.
            ("ERROR: pipeline doesn't want to preroll.", None),
            ("WARNING: erroneous pipeline: no element \"nope\"", None),
            ("ERROR: Pipeline doesn't want to pause.", None),
            // What parallel engines' interleaved writes leave.
            (
                "[accelerator_registry.cc:43] DestroyAccelerator: ptr=0x5, name=CpuAccelerator",
                Some(Severity::Verbose),
            ),
            (
                "INFO: INFO: [accelerator_registry.cc:43] DestroyAccelerator: ptr=0x5",
                Some(Severity::Info),
            ),
            ("INFO: ", Some(Severity::Info)),
            ("", Some(Severity::Verbose)),
            ("[not a file] hello", None),
            (
                "ERROR: XNNPack delegate failed to reshape runtime",
                Some(Severity::Error),
            ),
            (
                "ERROR: [Loader Message] vkCreateInstance: Found no drivers!",
                Some(Severity::Error),
            ),
        ] {
            assert_eq!(severity(line), want, "{line:?}");
        }
    }

    /// Everything in one test: the routing changes the process's fd 2, so tests that do
    /// so must not overlap (the test harness runs tests on threads).
    #[test]
    fn native_lines_are_routed_and_other_threads_lines_reach_the_real_stderr() {
        // The "real" stderr is a pipe of the test's own, read after the routing ended.
        let (real_read, real_write) = pipe().unwrap();
        let before = dup(libc::STDERR_FILENO).unwrap();
        // SAFETY: both are open; fd 2 becomes the test's pipe until put back below.
        unsafe { libc::dup2(real_write.as_raw_fd(), libc::STDERR_FILENO) };
        drop(real_write);

        let events = std::sync::Arc::new(Mutex::new(Vec::<String>::new()));
        let dispatch = Dispatch::new(Collect(events.clone()));
        let write2 = |bytes: &[u8]| {
            // SAFETY: writes a valid buffer to fd 2, as a C library would.
            unsafe { libc::write(libc::STDERR_FILENO, bytes.as_ptr().cast(), bytes.len()) };
        };
        tracing::dispatcher::with_default(&dispatch, || {
            let (go, ready) = mpsc::channel();
            let (wrote, written) = mpsc::channel();
            let other = std::thread::spawn(move || {
                ready.recv().unwrap();
                // Another thread's line, split across writes, while the routing is on.
                write2(b"a line from ano");
                write2(b"ther thread\n");
                wrote.send(()).unwrap();
            });
            routed(|| {
                // Two overlapping callers share one pipe.
                std::thread::scope(|s| {
                    s.spawn(|| routed(|| write2(b"INFO: [environment.cc:36] nested\n")));
                });
                write2(b"INFO: [envir");
                write2(b"onment.cc:36] Creating LiteRT environment with options\n");
                write2(b"WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded\n");
                go.send(()).unwrap();
                written.recv().unwrap();
                // Enough to fill the pipe twice over if nobody drained it.
                for i in 0..2000 {
                    write2(format!("I0000 00:00:17.5   11 f.cc:{i}] filler to drain\n").as_bytes());
                }
            });
            other.join().unwrap();
            // After the routing: straight to the real stderr again.
            write2(b"INFO: after the routing\n");
        });

        // SAFETY: `before` is open; fd 2 is the test runner's again.
        unsafe { libc::dup2(before.as_raw_fd(), libc::STDERR_FILENO) };
        let mut real = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(real_read), &mut real).unwrap();

        // Other tests of this binary may print to fd 2 meanwhile: look for ours only.
        let real: Vec<&str> = real.lines().collect();
        assert!(real.contains(&"a line from another thread"), "{real:?}");
        assert!(real.contains(&"INFO: after the routing"), "{real:?}");
        assert!(
            !real
                .iter()
                .any(|l| l.contains("environment.cc") || l.contains("f.cc:")),
            "native lines reached the real stderr: {real:?}"
        );
        // The last caller waited for the events to be sent; a slow machine may have
        // outlasted that wait.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while events.lock().unwrap().len() < 2003 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let events = events.lock().unwrap();
        assert_eq!(events.len(), 2003, "{:?}", &events[..events.len().min(5)]);
        assert!(events.contains(&"DEBUG litert INFO: [environment.cc:36] nested".to_string()));
        assert!(events.contains(
            &"DEBUG litert INFO: [environment.cc:36] Creating LiteRT environment with options"
                .to_string()
        ));
        assert!(events.contains(
            &"DEBUG litert WARNING: [npu_registry.cc:34] NPU accelerator could not be loaded"
                .to_string()
        ));
    }

    /// A subscriber that keeps each event as "LEVEL target message".
    struct Collect(std::sync::Arc<Mutex<Vec<String>>>);

    impl tracing::Subscriber for Collect {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, event: &tracing::Event<'_>) {
            struct Message(String);
            impl tracing::field::Visit for Message {
                fn record_debug(
                    &mut self,
                    field: &tracing::field::Field,
                    value: &dyn std::fmt::Debug,
                ) {
                    if field.name() == "message" {
                        self.0 = format!("{value:?}");
                    }
                }
            }
            let mut message = Message(String::new());
            event.record(&mut message);
            let m = event.metadata();
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {} {}", m.level(), m.target(), message.0));
        }
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }
}
