//! The per-frame work of the element's worker pool: convert a frame to RGB, paint it
//! with the worker's engine, keep the painting still where the scene is (deflicker),
//! and convert it back. [`FramePool`] is the [`OrderedPool`] of such workers.
//!
//! The deflicker needs the previous frame's output, so that one step runs in input
//! order: a worker whose painting is ready waits for its turn ([`FrameShared::in_turn`]),
//! holds or repaints, and passes the turn on. The network runs in parallel as before;
//! only that step, a small fraction of a frame, is serial. With `blend`, the frame's own
//! style vector is shared the same way ([`OwnVectors`]).

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use gst_video::prelude::*;

use super::colour::{ColourError, RgbConversion};
use super::deinterlace::{deinterlace_rgb, Field};
use super::ordered_pool::{Delivery, OrderedPool, PoolHandle, Work};
use super::own_vector::OwnVectors;
use stylize::deflicker::{Analysis, Deflicker};
use stylize::engine::{blend_vectors, Engine};
use stylize::{EngineError, StyleVector};

/// One frame to stylize.
pub struct Job {
    pub buffer: gst::Buffer,
    /// The input caps.
    pub info: Arc<gst_video::VideoInfo>,
    /// The output caps: the input's, progressive.
    pub out_info: Arc<gst_video::VideoInfo>,
    pub params: FrameParams,
}

/// What a frame is painted with.
#[derive(Clone, Copy)]
pub struct FrameParams {
    /// The frame's number in the pool, from [`OrderedPool::submit`].
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
    /// The field kept of an interlaced frame; None for a progressive one.
    pub deinterlace: Option<Field>,
}

/// A job as the workers get it: with the refresh of the frame's own vector it follows
/// (for `blend`), planned at hand-over so every worker agrees.
pub struct PlannedJob {
    job: Job,
    own_refresh: Option<u64>,
}

/// Why a frame could not be stylized.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error(transparent)]
    Colour(#[from] ColourError),
    #[error("cannot map the frame for writing")]
    Map,
    #[error("the frame's RGB plane: {0}")]
    Plane(gst::glib::BoolError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// The state that runs in input order: whose turn it is, and the deflicker.
struct Temporal {
    next: u64,
    deflicker: Deflicker,
    shutdown: bool,
}

/// What the workers share: the deflicker turn and the frame's own style vectors.
pub struct FrameShared {
    temporal: Mutex<Temporal>,
    turn: Condvar,
    own: OwnVectors,
}

impl FrameShared {
    fn new() -> Self {
        FrameShared {
            temporal: Mutex::new(Temporal {
                next: 0,
                deflicker: Deflicker::new(),
                shutdown: false,
            }),
            turn: Condvar::new(),
            own: OwnVectors::default(),
        }
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

    /// The next frame starts the deflicker and the frame's own vector afresh.
    fn reset_temporal(&self) {
        self.temporal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .deflicker
            .reset();
        self.own.refresh_next();
    }

    /// Releases every wait, so the workers finish their frames and stop.
    fn shutdown(&self) {
        {
            let mut t = self.temporal.lock().unwrap_or_else(|e| e.into_inner());
            t.shutdown = true;
            self.turn.notify_all();
        }
        self.own.shutdown();
    }
}

/// Makes sure a frame passes its turn on (and, when it was to refresh the own vector,
/// lets the frames that wait for it go on), even when it fails or panics: dropped at the
/// end of [`FrameWorker::run`], also while unwinding.
struct TurnGuard {
    shared: Arc<FrameShared>,
    seq: u64,
    own_refresh: Option<u64>,
    taken: bool,
}

impl Drop for TurnGuard {
    fn drop(&mut self) {
        if self.own_refresh == Some(self.seq) {
            self.shared.own.abandon(self.seq);
        }
        if !self.taken {
            // The next frame starts afresh.
            self.shared.in_turn(self.seq, |d| d.map(Deflicker::reset));
        }
    }
}

/// A worker: its own engine, its conversion for the current caps, its analysis buffers.
pub struct FrameWorker {
    engine: Engine,
    conversion: Option<RgbConversion>,
    shared: Arc<FrameShared>,
    analysis: Analysis,
}

impl Work for FrameWorker {
    type Job = PlannedJob;
    type Output = gst::Buffer;
    type Error = FrameError;

    fn run(&mut self, seq: u64, planned: PlannedJob) -> Result<gst::Buffer, FrameError> {
        crate::logging::scoped(|| self.stylize(seq, planned))
    }
}

impl FrameWorker {
    fn stylize(&mut self, seq: u64, planned: PlannedJob) -> Result<gst::Buffer, FrameError> {
        let PlannedJob { job, own_refresh } = planned;
        let mut guard = TurnGuard {
            shared: self.shared.clone(),
            seq,
            own_refresh,
            taken: false,
        };
        let Job {
            mut buffer,
            info,
            out_info,
            params,
        } = job;
        let needs_rgb = info.format() != gst_video::VideoFormat::Rgb;
        if needs_rgb
            && !self
                .conversion
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.info, &info))
        {
            self.conversion = Some(RgbConversion::new(&info, &out_info)?);
        }
        let mut painter = Painter {
            engine: &mut self.engine,
            params: &params,
            own_refresh,
            shared: &self.shared,
            analysis: &mut self.analysis,
            took_turn: &mut guard.taken,
        };
        let out = buffer.make_mut();
        match self.conversion.as_mut().filter(|_| needs_rgb) {
            Some(conversion) => conversion.round_trip(out, |rgb| painter.paint(rgb))?,
            None => {
                let mut frame =
                    gst_video::VideoFrameRef::from_buffer_ref_writable(&mut *out, &info)
                        .map_err(|_| FrameError::Map)?;
                painter.paint(&mut frame)?
            }
        }
        if params.deinterlace.is_some() {
            out.unset_video_flags(
                gst_video::VideoBufferFlags::INTERLACED
                    | gst_video::VideoBufferFlags::TFF
                    | gst_video::VideoBufferFlags::RFF
                    | gst_video::VideoBufferFlags::ONEFIELD,
            );
        }
        Ok(buffer)
    }
}

/// One frame's painting, and the pool state it reads and writes.
struct Painter<'a> {
    engine: &'a mut Engine,
    params: &'a FrameParams,
    own_refresh: Option<u64>,
    shared: &'a FrameShared,
    analysis: &'a mut Analysis,
    /// Set once the frame took its deflicker turn.
    took_turn: &'a mut bool,
}

impl Painter<'_> {
    /// Stylizes a packed RGB frame in place.
    fn paint(
        &mut self,
        frame: &mut gst_video::VideoFrameRef<&mut gst::BufferRef>,
    ) -> Result<(), FrameError> {
        let &FrameParams {
            seq,
            discont,
            vector,
            blend,
            deflicker,
            own_vector_fade,
            pts,
            deinterlace,
            ..
        } = self.params;
        let (w, h) = (frame.width() as usize, frame.height() as usize);
        let stride = frame.plane_stride()[0] as usize;
        let data = frame.plane_data_mut(0).map_err(FrameError::Plane)?;
        if let Some(keep) = deinterlace {
            deinterlace_rgb(data, stride, w, h, keep);
        }
        let shared = self.shared;
        let own = match self.own_refresh {
            Some(refresh) if refresh == seq => {
                let from = shared.own.start(seq, pts);
                let fresh = self.engine.style_vector(data, stride, w, h)?;
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
        let analysis = &mut *self.analysis;
        let took_turn = &mut *self.took_turn;
        self.engine
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
            })?;
        Ok(())
    }
}

/// The element's pool: one [`FrameWorker`] per engine, frames out in order.
pub struct FramePool {
    pool: OrderedPool<FrameWorker>,
    shared: Arc<FrameShared>,
}

/// Flushing, draining and temporal resets, usable from any thread.
#[derive(Clone)]
pub struct FrameHandle {
    pool: PoolHandle<FrameWorker>,
    shared: Arc<FrameShared>,
}

impl FramePool {
    pub fn start<D>(engines: Vec<Engine>, delivery: Arc<D>) -> FramePool
    where
        D: Delivery<gst::Buffer, FrameError>,
    {
        let shared = Arc::new(FrameShared::new());
        let workers = engines
            .into_iter()
            .map(|engine| FrameWorker {
                engine,
                conversion: None,
                shared: shared.clone(),
                analysis: Analysis::new(),
            })
            .collect();
        FramePool {
            pool: OrderedPool::start("stylize", workers, delivery),
            shared,
        }
    }

    /// Hands a frame over (see [`OrderedPool::submit`]); `make` gets the frame's number.
    pub fn submit(
        &mut self,
        make: impl FnOnce(u64) -> Job,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let shared = &self.shared;
        self.pool.submit(|seq| {
            let job = make(seq);
            let p = &job.params;
            let own_refresh = (p.blend > 0.0).then(|| shared.own.plan(seq, p.blend_interval));
            PlannedJob { job, own_refresh }
        })
    }

    pub fn handle(&self) -> FrameHandle {
        FrameHandle {
            pool: self.pool.handle(),
            shared: self.shared.clone(),
        }
    }
}

/// Wakes the workers that wait for a turn before the pool joins them.
impl Drop for FramePool {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl FrameHandle {
    /// Waits until every frame handed over has been pushed (or dropped while flushing).
    pub fn drain(&self) {
        self.pool.drain();
    }

    /// The next frame starts the deflicker and the frame's own vector afresh (a caps
    /// change or a new segment; a flush does this by itself).
    pub fn reset_temporal(&self) {
        self.shared.reset_temporal();
    }

    /// See [`PoolHandle::set_flushing`]. A flush also forgets the past frames (no ghost
    /// of the old position): once it ends, after [`FrameHandle::drain`], so frames still
    /// in the workers cannot leave theirs.
    pub fn set_flushing(&self, flushing: bool) {
        if !flushing {
            self.reset_temporal();
        }
        self.pool.set_flushing(flushing);
    }
}
