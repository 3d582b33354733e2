//! An ordered worker pool: N workers, each with its own state (for the element, its own
//! engine), take jobs as they come; one output thread delivers the results in the order
//! the jobs were submitted. The submitting thread only hands jobs over, and waits while
//! N are already in flight.
//!
//! It knows nothing of frames or networks, so its ordering, flushing, error and drain
//! paths are tested here with a fake worker. GStreamer's flow results are its language
//! for "go on", "flushing" and "stop", because that is what the element passes upstream.

use std::fmt;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a worker does with one job. Each worker owns one value of this type.
pub trait Work: Send + 'static {
    type Job: Send + 'static;
    type Output: Send + 'static;
    type Error: fmt::Display + Send + 'static;

    /// Runs job number `seq` (0, 1, 2, ... in submission order).
    fn run(&mut self, seq: u64, job: Self::Job) -> Result<Self::Output, Self::Error>;
}

/// How long a job took: from submission until its result was ready in order (it and
/// every earlier job finished; time spent waiting for the delivery, such as a sink
/// that blocks until a frame's render time, does not count), and inside [`Work::run`].
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub in_pool: Duration,
    pub running: Duration,
}

/// Why a job produced no output.
#[derive(Debug)]
pub enum JobError<E> {
    Failed(E),
    /// [`Work::run`] panicked; the pool goes on.
    Panicked,
}

impl<E: fmt::Display> fmt::Display for JobError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobError::Failed(e) => e.fmt(f),
            JobError::Panicked => f.write_str("the worker panicked; see the log"),
        }
    }
}

/// Where the output thread hands results, in submission order. (For the element: the
/// src pad and its error messages.)
pub trait Delivery<T, E>: Send + Sync + 'static {
    /// Passes an output on; an error is returned to the next [`OrderedPool::submit`].
    fn deliver(&self, output: T, timing: Timing) -> Result<gst::FlowSuccess, gst::FlowError>;
    /// Reports a job that failed; the next submit returns `FlowError::Error`.
    fn fail(&self, error: JobError<E>);
}

/// A job's result, when it was submitted, how long it ran and when it finished.
type Outcome<W> = (
    Result<<W as Work>::Output, JobError<<W as Work>::Error>>,
    Instant,
    Duration,
    Instant,
);

struct Slots<W: Work> {
    /// Results by `seq % size`; the output thread takes them in order.
    results: Vec<Option<Outcome<W>>>,
    next_out: u64,
    in_flight: usize,
    flushing: bool,
    shutdown: bool,
    flow: Result<gst::FlowSuccess, gst::FlowError>,
}

struct Shared<W: Work> {
    slots: Mutex<Slots<W>>,
    changed: Condvar,
}

impl<W: Work> Shared<W> {
    fn lock(&self) -> MutexGuard<'_, Slots<W>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'a>(&self, guard: MutexGuard<'a, Slots<W>>) -> MutexGuard<'a, Slots<W>> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }
}

/// Flushing and draining, usable from any thread without the pool itself.
pub struct PoolHandle<W: Work> {
    shared: Arc<Shared<W>>,
}

impl<W: Work> Clone for PoolHandle<W> {
    fn clone(&self) -> Self {
        PoolHandle {
            shared: self.shared.clone(),
        }
    }
}

type Queue<W> = Arc<Mutex<Receiver<(u64, <W as Work>::Job, Instant)>>>;

pub struct OrderedPool<W: Work> {
    jobs: Option<SyncSender<(u64, W::Job, Instant)>>,
    shared: Arc<Shared<W>>,
    workers: Vec<JoinHandle<()>>,
    output: Option<JoinHandle<()>>,
    size: usize,
    next_seq: u64,
}

impl<W: Work> OrderedPool<W> {
    /// Starts one thread per worker (named `NAME-worker-I`) and the output thread.
    pub fn start<D>(name: &str, workers: Vec<W>, delivery: Arc<D>) -> Self
    where
        D: Delivery<W::Output, W::Error>,
    {
        let size = workers.len().max(1);
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
        });
        let (tx, rx) = sync_channel(size);
        let rx: Queue<W> = Arc::new(Mutex::new(rx));
        let workers = workers
            .into_iter()
            .enumerate()
            .map(|(i, work)| {
                let rx = rx.clone();
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("{name}-worker-{i}"))
                    .spawn(move || worker_loop(work, rx, shared))
                    .expect("worker thread starts")
            })
            .collect();
        let output = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("{name}-output"))
                .spawn(move || output_loop(shared, delivery, size))
                .expect("output thread starts")
        };
        OrderedPool {
            jobs: Some(tx),
            shared,
            workers,
            output: Some(output),
            size,
            next_seq: 0,
        }
    }

    /// Hands a job over, made by `make` from its number, waiting while all workers are
    /// busy. Returns the first delivery error seen since the last flush, so it reaches
    /// upstream; `Flushing` while flushing.
    pub fn submit(
        &mut self,
        make: impl FnOnce(u64) -> W::Job,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        {
            let mut slots = self.shared.lock();
            while slots.in_flight >= self.size && !slots.flushing && !slots.shutdown {
                slots = self.shared.wait(slots);
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
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|tx| tx.send((seq, job, Instant::now())).is_ok());
        if !sent {
            return Err(gst::FlowError::Flushing);
        }
        Ok(gst::FlowSuccess::Ok)
    }

    pub fn handle(&self) -> PoolHandle<W> {
        PoolHandle {
            shared: self.shared.clone(),
        }
    }
}

impl<W: Work> PoolHandle<W> {
    /// Waits until every job handed over has been delivered (or dropped while flushing):
    /// before EOS, caps and every other serialized event.
    pub fn drain(&self) {
        let mut slots = self.shared.lock();
        while slots.in_flight > 0 && !slots.shutdown {
            slots = self.shared.wait(slots);
        }
    }

    /// While flushing, finished outputs are dropped and submit refuses new jobs. Ending
    /// a flush also forgets the last delivery error.
    pub fn set_flushing(&self, flushing: bool) {
        let mut slots = self.shared.lock();
        slots.flushing = flushing;
        if !flushing {
            slots.flow = Ok(gst::FlowSuccess::Ok);
        }
        self.shared.changed.notify_all();
    }
}

/// Stops taking jobs; the jobs already handed over are run, then the threads end.
impl<W: Work> Drop for OrderedPool<W> {
    fn drop(&mut self) {
        self.jobs.take();
        {
            let mut slots = self.shared.lock();
            slots.shutdown = true;
            self.shared.changed.notify_all();
        }
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(o) = self.output.take() {
            let _ = o.join();
        }
    }
}

fn worker_loop<W: Work>(mut work: W, rx: Queue<W>, shared: Arc<Shared<W>>) {
    prime_channel_wait();
    loop {
        let next = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok((seq, job, submitted)) = next else {
            return;
        };
        let started = Instant::now();
        // A panic fails the job instead of leaving its output slot empty, which would
        // stall every later one.
        let result =
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work.run(seq, job))) {
                Ok(Ok(output)) => Ok(output),
                Ok(Err(e)) => Err(JobError::Failed(e)),
                Err(_) => Err(JobError::Panicked),
            };
        let mut slots = shared.lock();
        let n = slots.results.len();
        let finished = Instant::now();
        slots.results[(seq % n as u64) as usize] =
            Some((result, submitted, finished - started, finished));
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

fn output_loop<W: Work, D: Delivery<W::Output, W::Error>>(
    shared: Arc<Shared<W>>,
    delivery: Arc<D>,
    size: usize,
) {
    // When the previous job's result was ready: a result is ready in order once it and
    // every earlier one finished.
    let mut last_ready: Option<Instant> = None;
    loop {
        let (outcome, flushing) = {
            let mut slots = shared.lock();
            loop {
                let index = (slots.next_out % size as u64) as usize;
                if let Some(outcome) = slots.results[index].take() {
                    break (outcome, slots.flushing);
                }
                if slots.shutdown {
                    return;
                }
                slots = shared.wait(slots);
            }
        };
        let flow = match outcome {
            _ if flushing => Err(gst::FlowError::Flushing),
            (Ok(output), submitted, running, finished) => {
                let ready = last_ready.map_or(finished, |last| last.max(finished));
                last_ready = Some(ready);
                delivery.deliver(
                    output,
                    Timing {
                        in_pool: ready.saturating_duration_since(submitted),
                        running,
                    },
                )
            }
            (Err(error), _, _, _) => {
                delivery.fail(error);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sleeps for the job's milliseconds and returns its number, or fails or panics
    /// when asked; counts how many jobs run at once.
    struct Fake {
        running: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    enum Job {
        Sleep(u64),
        Fail,
        Panic,
    }

    impl Work for Fake {
        type Job = Job;
        type Output = u64;
        type Error = String;

        fn run(&mut self, seq: u64, job: Job) -> Result<u64, String> {
            let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            let result = match job {
                Job::Sleep(ms) => {
                    std::thread::sleep(Duration::from_millis(ms));
                    Ok(seq)
                }
                Job::Fail => Err(format!("job {seq} failed")),
                Job::Panic => {
                    self.running.fetch_sub(1, Ordering::SeqCst);
                    panic!("job {seq} panics");
                }
            };
            self.running.fetch_sub(1, Ordering::SeqCst);
            result
        }
    }

    #[derive(Default)]
    struct Collect {
        delivered: Mutex<Vec<u64>>,
        failures: Mutex<Vec<String>>,
        /// Delivery answers this error from this job on.
        refuse_from: Option<(u64, gst::FlowError)>,
        /// Each delivery takes this long (a sink waiting for a render time).
        deliver_ms: u64,
        timings: Mutex<Vec<Timing>>,
    }

    impl Delivery<u64, String> for Collect {
        fn deliver(&self, seq: u64, timing: Timing) -> Result<gst::FlowSuccess, gst::FlowError> {
            std::thread::sleep(Duration::from_millis(self.deliver_ms));
            self.timings.lock().unwrap().push(timing);
            self.delivered.lock().unwrap().push(seq);
            match self.refuse_from {
                Some((from, e)) if seq >= from => Err(e),
                _ => Ok(gst::FlowSuccess::Ok),
            }
        }

        fn fail(&self, error: JobError<String>) {
            self.failures.lock().unwrap().push(error.to_string());
        }
    }

    fn pool(workers: usize, delivery: Arc<Collect>) -> (OrderedPool<Fake>, Arc<AtomicUsize>) {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let fakes = (0..workers)
            .map(|_| Fake {
                running: running.clone(),
                most: most.clone(),
            })
            .collect();
        (OrderedPool::start("test", fakes, delivery), most)
    }

    #[test]
    fn delivers_in_submission_order_with_at_most_n_in_flight() {
        let out = Arc::new(Collect::default());
        let (mut p, most) = pool(3, out.clone());
        // Early jobs take longest, so they finish last.
        for i in 0..12u64 {
            p.submit(|_| Job::Sleep(30 - 2 * i)).unwrap();
        }
        p.handle().drain();
        assert_eq!(*out.delivered.lock().unwrap(), (0..12).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((2..=3).contains(&most), "{most} jobs ran at once");
    }

    #[test]
    fn drain_waits_for_every_job_as_at_end_of_stream() {
        let out = Arc::new(Collect::default());
        let (mut p, _) = pool(2, out.clone());
        for _ in 0..5 {
            p.submit(|_| Job::Sleep(20)).unwrap();
        }
        p.handle().drain();
        assert_eq!(out.delivered.lock().unwrap().len(), 5);
        // Dropping the pool after a drain loses nothing and does not hang.
        drop(p);
        assert_eq!(out.delivered.lock().unwrap().len(), 5);
    }

    #[test]
    fn a_flush_drops_finished_outputs_refuses_jobs_and_ends_cleanly() {
        let out = Arc::new(Collect::default());
        let (mut p, _) = pool(2, out.clone());
        let handle = p.handle();
        p.submit(|_| Job::Sleep(50)).unwrap();
        p.submit(|_| Job::Sleep(50)).unwrap();
        handle.set_flushing(true);
        assert_eq!(p.submit(|_| Job::Sleep(0)), Err(gst::FlowError::Flushing));
        handle.drain();
        assert!(
            out.delivered.lock().unwrap().is_empty(),
            "flushed outputs leave"
        );
        handle.set_flushing(false);
        p.submit(|_| Job::Sleep(0)).unwrap();
        handle.drain();
        // The job after the flush is number 2 (numbers never repeat) and is delivered.
        assert_eq!(*out.delivered.lock().unwrap(), [2]);
        assert!(out.failures.lock().unwrap().is_empty());
    }

    #[test]
    fn a_failed_job_is_reported_in_order_and_stops_the_stream() {
        let out = Arc::new(Collect::default());
        let (mut p, _) = pool(2, out.clone());
        p.submit(|_| Job::Sleep(30)).unwrap();
        p.submit(|_| Job::Fail).unwrap();
        p.handle().drain();
        assert_eq!(
            *out.delivered.lock().unwrap(),
            [0],
            "the job before it still goes out"
        );
        assert_eq!(*out.failures.lock().unwrap(), ["job 1 failed"]);
        assert_eq!(p.submit(|_| Job::Sleep(0)), Err(gst::FlowError::Error));
        // A flush (a seek) starts over.
        p.handle().set_flushing(true);
        p.handle().set_flushing(false);
        assert!(p.submit(|_| Job::Sleep(0)).is_ok());
    }

    #[test]
    fn a_panicking_worker_fails_its_job_without_stalling_later_ones() {
        let out = Arc::new(Collect::default());
        let (mut p, _) = pool(2, out.clone());
        p.submit(|_| Job::Panic).unwrap();
        p.submit(|_| Job::Sleep(0)).unwrap();
        p.handle().drain();
        assert_eq!(
            *out.failures.lock().unwrap(),
            ["the worker panicked; see the log"]
        );
        assert_eq!(*out.delivered.lock().unwrap(), [1]);
    }

    #[test]
    fn a_delivery_error_reaches_the_next_submit() {
        let out = Arc::new(Collect {
            refuse_from: Some((1, gst::FlowError::NotLinked)),
            ..Default::default()
        });
        let (mut p, _) = pool(1, out.clone());
        p.submit(|_| Job::Sleep(0)).unwrap();
        p.submit(|_| Job::Sleep(0)).unwrap();
        p.handle().drain();
        assert_eq!(p.submit(|_| Job::Sleep(0)), Err(gst::FlowError::NotLinked));
    }

    #[test]
    fn waiting_for_the_delivery_does_not_count_as_time_in_the_pool() {
        let out = Arc::new(Collect {
            deliver_ms: 200,
            ..Default::default()
        });
        let (mut p, _) = pool(2, out.clone());
        for _ in 0..6 {
            p.submit(|_| Job::Sleep(10)).unwrap();
        }
        p.handle().drain();
        let timings = out.timings.lock().unwrap().clone();
        assert_eq!(timings.len(), 6);
        // Each job is ready about 10 ms after it is handed over; counting the wait for
        // the delivery before it would make that about 200 ms.
        for t in &timings {
            assert!(t.in_pool < Duration::from_millis(150), "{timings:?}");
            assert!(t.in_pool >= t.running, "{timings:?}");
        }
    }

    #[test]
    fn dropping_the_pool_runs_the_jobs_handed_over_and_joins() {
        let out = Arc::new(Collect::default());
        let (mut p, _) = pool(2, out.clone());
        for _ in 0..2 {
            p.submit(|_| Job::Sleep(20)).unwrap();
        }
        drop(p);
        // The threads are joined; whatever was delivered came out in order.
        let delivered = out.delivered.lock().unwrap().clone();
        assert!(delivered.iter().copied().eq(0..delivered.len() as u64));
    }
}
