//! Frame-level parallelism for the element: N workers, each with its own engine, stylize
//! alternate frames; an output thread pushes the results in input order. The streaming
//! thread only hands frames over, and waits when N frames are already in flight.
//!
//! The deflicker needs the previous frame's output, so that one step runs in input
//! order: a worker whose painting is ready waits for its turn ([`Temporal`]), blends,
//! and passes the turn on. The network runs in parallel as before; only the blend, a
//! small fraction of a frame, is serial. With `blend`, the frame's own style vector is
//! shared the same way ([`OwnVectors`]).

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use gst_video::prelude::*;

use super::own_vector::OwnVectors;
use stylize::deflicker::{Analysis, Deflicker};
use stylize::engine::{blend_vectors, Engine};
use stylize::StyleVector;

/// One frame to stylize.
pub struct Job {
    pub buffer: gst::Buffer,
    pub info: Arc<gst_video::VideoInfo>,
    pub params: FrameParams,
    pub submitted: Instant,
}

/// What a frame is painted with.
#[derive(Clone, Copy)]
pub struct FrameParams {
    pub seq: u64,
    /// The stream broke before this frame (DISCONT): the deflicker starts afresh.
    pub discont: bool,
    pub vector: StyleVector,
    pub blend: f32,
    /// With `blend`, the frame's own vector is recomputed every this many frames.
    pub blend_interval: u32,
    /// The element's `deflicker` strength, 0..1.
    pub deflicker: f32,
    /// How long the frame's own vector takes to fade to a recomputed one.
    pub own_vector_fade: Duration,
    /// For fades: None when the timestamp does not move forward.
    pub pts: Option<gst::ClockTime>,
}

/// A job as the workers get it: with the refresh of the frame's own vector it follows
/// (for `blend`), planned at hand-over so every worker agrees.
struct Planned {
    job: Job,
    own_refresh: Option<u64>,
}

enum Outcome {
    /// The frame, when it was handed over, and how long the worker took.
    Done(gst::Buffer, Instant, Duration),
    Failed(String),
}

/// Where the output thread sends frames and errors.
pub trait Sink: Send + Sync + 'static {
    fn push(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError>;
    fn fail(&self, message: &str);
    /// The time a frame spent in the element, from hand-over to push.
    fn frame_done(&self, in_element: Duration, processing: Duration);
}

struct Slots {
    results: Vec<Option<Outcome>>,
    next_out: u64,
    in_flight: usize,
    flushing: bool,
    shutdown: bool,
    flow: Result<gst::FlowSuccess, gst::FlowError>,
}

struct Shared {
    slots: Mutex<Slots>,
    changed: Condvar,
    temporal: Mutex<Temporal>,
    turn: Condvar,
    own: OwnVectors,
}

/// The state that runs in input order: whose turn it is, and the deflicker.
struct Temporal {
    next: u64,
    deflicker: Deflicker,
    shutdown: bool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits for frame `seq`'s turn in input order, runs `step` on the deflicker
    /// (`None` when the pool is shutting down) and passes the turn on. Every frame
    /// takes its turn exactly once, failed ones too, or later frames would wait for
    /// ever.
    fn in_turn<R>(&self, seq: u64, step: impl FnOnce(Option<&mut Deflicker>) -> R) -> R {
        let mut t = self.temporal.lock().unwrap_or_else(|e| e.into_inner());
        while t.next < seq && !t.shutdown {
            t = self.turn.wait(t).unwrap_or_else(|e| e.into_inner());
        }
        let r = if t.shutdown {
            step(None)
        } else {
            step(Some(&mut t.deflicker))
        };
        t.next = t.next.max(seq + 1);
        self.turn.notify_all();
        r
    }
}

/// Flushing and draining, usable from any thread without the element's state lock.
#[derive(Clone)]
pub struct PoolHandle {
    shared: Arc<Shared>,
}

pub struct Pool {
    jobs: Option<SyncSender<Planned>>,
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
    size: usize,
    next_seq: u64,
}

/// A worker's own engine and the conversion to and from packed RGB for the current caps.
struct Worker {
    engine: Engine,
    conversion: Option<(Arc<gst_video::VideoInfo>, Conversion)>,
    shared: Arc<Shared>,
    analysis: Analysis,
}

struct Conversion {
    to_rgb: gst_video::VideoConverter,
    from_rgb: gst_video::VideoConverter,
    rgb_info: gst_video::VideoInfo,
    rgb: gst::Buffer,
}

impl Conversion {
    fn new(info: &gst_video::VideoInfo) -> Result<Conversion, String> {
        let rgb_info =
            gst_video::VideoInfo::builder(gst_video::VideoFormat::Rgb, info.width(), info.height())
                .fps(info.fps())
                .par(info.par())
                .build()
                .map_err(|e| e.to_string())?;
        let to_rgb = gst_video::VideoConverter::new(info, &rgb_info, None)
            .map_err(|e| format!("converter to RGB: {e}"))?;
        let from_rgb = gst_video::VideoConverter::new(&rgb_info, info, None)
            .map_err(|e| format!("converter from RGB: {e}"))?;
        let rgb = gst::Buffer::with_size(rgb_info.size()).map_err(|e| e.to_string())?;
        Ok(Conversion {
            to_rgb,
            from_rgb,
            rgb_info,
            rgb,
        })
    }
}

impl Worker {
    fn process(
        &mut self,
        job: Job,
        own_refresh: Option<u64>,
        took_turn: &mut bool,
    ) -> Result<gst::Buffer, String> {
        let Job {
            mut buffer,
            info,
            params,
            submitted: _,
        } = job;
        let needs_rgb = info.format() != gst_video::VideoFormat::Rgb;
        if needs_rgb && !matches!(&self.conversion, Some((i, _)) if Arc::ptr_eq(i, &info)) {
            self.conversion = Some((info.clone(), Conversion::new(&info)?));
        }
        let mut frame =
            gst_video::VideoFrameRef::from_buffer_ref_writable(buffer.make_mut(), &info)
                .map_err(|_| "cannot map the frame for writing".to_string())?;
        let style = FrameStyle {
            params: &params,
            own_refresh,
            shared: &self.shared,
            analysis: &mut self.analysis,
            took_turn,
        };
        match (needs_rgb, self.conversion.as_mut()) {
            (true, Some((_, conv))) => {
                let rgb = conv.rgb.get_mut().ok_or("RGB scratch buffer is shared")?;
                let mut rgb_frame =
                    gst_video::VideoFrameRef::from_buffer_ref_writable(rgb, &conv.rgb_info)
                        .map_err(|_| "cannot map the RGB frame".to_string())?;
                conv.to_rgb.frame_ref(&frame, &mut rgb_frame);
                stylize_frame(&mut self.engine, &mut rgb_frame, style)?;
                conv.from_rgb.frame_ref(&rgb_frame, &mut frame);
            }
            _ => stylize_frame(&mut self.engine, &mut frame, style)?,
        }
        drop(frame);
        Ok(buffer)
    }
}

/// One frame's job, and the pool state it reads and writes.
struct FrameStyle<'a> {
    params: &'a FrameParams,
    own_refresh: Option<u64>,
    shared: &'a Shared,
    analysis: &'a mut Analysis,
    /// Set once the frame took its deflicker turn.
    took_turn: &'a mut bool,
}

/// Stylizes a packed RGB frame in place.
fn stylize_frame(
    engine: &mut Engine,
    frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    style: FrameStyle,
) -> Result<(), String> {
    let FrameStyle {
        params,
        own_refresh,
        shared,
        analysis,
        took_turn,
    } = style;
    let &FrameParams {
        seq,
        discont,
        vector,
        blend,
        deflicker,
        own_vector_fade,
        pts,
        ..
    } = params;
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data_mut(0).map_err(|e| e.to_string())?;
    let own = match own_refresh {
        Some(refresh) if refresh == seq => {
            let from = shared.own.start(seq, pts);
            let fresh = engine
                .style_vector(data, stride, w, h)
                .map_err(|e| e.to_string())?;
            shared.own.publish(seq, from, fresh, pts, own_vector_fade);
            shared.own.at(seq, pts)
        }
        Some(refresh) => shared.own.at(refresh, pts),
        None => None,
    };
    let vector = match own {
        Some(own) if blend > 0.0 => blend_vectors(&vector, &own, blend),
        _ => vector,
    };
    engine
        .stylize_with(data, stride, w, h, &vector, |input, output, size| {
            if deflicker > 0.0 {
                analysis.analyze(input, size, w);
            }
            shared.in_turn(seq, |state| {
                if let Some(d) = state {
                    if discont {
                        d.reset();
                    }
                    d.apply(analysis, output, &vector, deflicker);
                }
            });
            *took_turn = true;
        })
        .map_err(|e| e.to_string())
}

impl Pool {
    /// Starts one worker per engine and the output thread.
    pub fn start(engines: Vec<Engine>, sink: Arc<dyn Sink>) -> Pool {
        let size = engines.len().max(1);
        let shared = Arc::new(Shared {
            slots: Mutex::new(Slots {
                results: (0..size).map(|_| None).collect(),
                next_out: 0,
                in_flight: 0,
                flushing: false,
                shutdown: false,
                flow: Ok(gst::FlowSuccess::Ok),
            }),
            changed: Condvar::new(),
            temporal: Mutex::new(Temporal {
                next: 0,
                deflicker: Deflicker::new(),
                shutdown: false,
            }),
            turn: Condvar::new(),
            own: OwnVectors::default(),
        });
        let (tx, rx) = sync_channel::<Planned>(size);
        let rx = Arc::new(Mutex::new(rx));
        let workers = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("stylize-worker-{i}"))
                    .spawn(move || worker_loop(engine, rx, shared))
                    .expect("worker thread starts")
            })
            .collect();
        let output = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("stylize-output".into())
                .spawn(move || output_loop(shared, sink, size))
                .expect("output thread starts")
        };
        Pool {
            jobs: Some(tx),
            shared,
            workers,
            output: Some(output),
            size,
            next_seq: 0,
        }
    }

    /// Hands a frame over, waiting while all workers are busy. Returns the first
    /// downstream error seen by the output thread, so it reaches upstream.
    pub fn submit(
        &mut self,
        make: impl FnOnce(u64) -> Job,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        {
            let mut slots = self.shared.lock();
            while slots.in_flight >= self.size && !slots.flushing && !slots.shutdown {
                slots = self
                    .shared
                    .changed
                    .wait(slots)
                    .unwrap_or_else(|e| e.into_inner());
            }
            if slots.flushing || slots.shutdown {
                return Err(gst::FlowError::Flushing);
            }
            slots.flow?;
            slots.in_flight += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let job = make(seq);
        let p = &job.params;
        let own_refresh = (p.blend > 0.0).then(|| self.shared.own.plan(seq, p.blend_interval));
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|tx| tx.send(Planned { job, own_refresh }).is_ok());
        if !sent {
            return Err(gst::FlowError::Flushing);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    pub fn handle(&self) -> PoolHandle {
        PoolHandle {
            shared: self.shared.clone(),
        }
    }
}

impl PoolHandle {
    /// Waits until every frame handed over has been pushed (or dropped while flushing).
    pub fn drain(&self) {
        let mut slots = self.shared.lock();
        while slots.in_flight > 0 && !slots.shutdown {
            slots = self
                .shared
                .changed
                .wait(slots)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The next frame starts the deflicker and the frame's own vector afresh (a caps
    /// change; a flush does this by itself).
    pub fn reset_temporal(&self) {
        self.shared
            .temporal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deflicker
            .reset();
        self.shared.own.refresh_next();
    }

    /// While flushing, finished frames are dropped and submit refuses new ones. A
    /// flush also forgets the past frames (no ghost of the old position): once it ends,
    /// after [`PoolHandle::drain`], so frames still in the workers cannot leave theirs.
    pub fn set_flushing(&self, flushing: bool) {
        if !flushing {
            self.reset_temporal();
        }
        let mut slots = self.shared.lock();
        slots.flushing = flushing;
        if !flushing {
            slots.flow = Ok(gst::FlowSuccess::Ok);
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        {
            let mut slots = self.shared.lock();
            slots.shutdown = true;
            self.shared.changed.notify_all();
        }
        {
            let mut t = self
                .shared
                .temporal
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            t.shutdown = true;
            self.shared.turn.notify_all();
        }
        self.shared.own.shutdown();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(o) = self.output.take() {
            let _ = o.join();
        }
    }
}

fn worker_loop(engine: Engine, rx: Arc<Mutex<Receiver<Planned>>>, shared: Arc<Shared>) {
    prime_channel_wait();
    let mut worker = Worker {
        engine,
        conversion: None,
        shared: shared.clone(),
        analysis: Analysis::new(),
    };
    loop {
        let job = {
            let rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            rx.recv()
        };
        let Ok(Planned { job, own_refresh }) = job else {
            return;
        };
        let seq = job.params.seq;
        let submitted = job.submitted;
        let started = Instant::now();
        let mut took_turn = false;
        // A panic fails the frame instead of leaving the turn and the output slot empty,
        // which would stall the stream.
        let processed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            worker.process(job, own_refresh, &mut took_turn)
        }));
        if own_refresh == Some(seq) {
            // Frames that follow this refresh must not wait for one that never comes.
            shared.own.abandon(seq);
        }
        let outcome = match processed {
            Ok(Ok(buffer)) => Outcome::Done(buffer, submitted, started.elapsed()),
            Ok(Err(e)) => Outcome::Failed(e),
            Err(_) => Outcome::Failed("the worker panicked; see the log".into()),
        };
        if !took_turn {
            // A frame that failed before its blend still passes the turn on; the next
            // one starts afresh.
            shared.in_turn(seq, |d| d.map(Deflicker::reset));
        }
        let mut slots = shared.lock();
        let n = slots.results.len();
        slots.results[(seq % n as u64) as usize] = Some(outcome);
        shared.changed.notify_all();
    }
}

/// std's channels allocate a thread's wait context the first time the thread blocks on
/// one. A worker that first waits for a job only once the stream is under way would
/// allocate then; a short timed wait on a channel of its own makes it happen now.
fn prime_channel_wait() {
    let (_keep_open, rx) = sync_channel::<()>(1);
    let _ = rx.recv_timeout(Duration::from_millis(1));
}

fn output_loop(shared: Arc<Shared>, sink: Arc<dyn Sink>, size: usize) {
    loop {
        let outcome = {
            let mut slots = shared.lock();
            loop {
                let index = (slots.next_out % size as u64) as usize;
                if let Some(outcome) = slots.results[index].take() {
                    break (outcome, slots.flushing);
                }
                if slots.shutdown {
                    return;
                }
                slots = shared
                    .changed
                    .wait(slots)
                    .unwrap_or_else(|e| e.into_inner());
            }
        };
        let flow = match outcome {
            (_, true) => Err(gst::FlowError::Flushing),
            (Outcome::Done(buffer, submitted, processing), false) => {
                sink.frame_done(submitted.elapsed(), processing);
                sink.push(buffer)
            }
            (Outcome::Failed(message), false) => {
                sink.fail(&message);
                Err(gst::FlowError::Error)
            }
        };
        let mut slots = shared.lock();
        slots.next_out += 1;
        slots.in_flight = slots.in_flight.saturating_sub(1);
        if let Err(e) = flow {
            if slots.flow.is_ok() && !slots.flushing {
                slots.flow = Err(e);
            }
        }
        shared.changed.notify_all();
    }
}
