//! The frame's own style vector for `blend`, shared by the workers in frame order.
//!
//! Every `blend-interval` frames one frame recomputes the vector from itself (the
//! prediction network), and a fade towards it starts at that frame's PTS from where the
//! previous fade was. Every frame uses the fade of the latest refresh at or before it,
//! decided when the frame is handed over. Workers finish in any order, so a frame whose
//! refresh is still being computed by another worker waits for it: the output is the
//! same for any number of parallel frames.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::fade::Fade;
use stylize::StyleVector;

/// Refreshes kept: a frame in flight follows one of the last (frames in flight + 1),
/// and `parallel-frames` is at most 16.
const KEPT: usize = 32;

// The slots live in a Vec whose capacity is reused; boxing the fade would allocate on
// every refresh.
#[allow(clippy::large_enum_variant)]
enum Slot {
    /// The refreshing frame is computing it.
    Pending,
    Ready(Fade),
    /// The refreshing frame failed before it got there.
    Abandoned,
}

#[derive(Default)]
struct Registry {
    /// Recent refreshes by frame number, oldest first; the capacity is reused.
    refreshes: Vec<(u64, Slot)>,
    /// The latest refresh handed over, and the frames handed over since it.
    latest: Option<u64>,
    since_latest: u32,
    /// The next frame refreshes whatever the interval says (after a flush or caps).
    refresh_next: bool,
    shutdown: bool,
}

impl Registry {
    fn slot(&self, seq: u64) -> Option<&Slot> {
        self.refreshes
            .iter()
            .find(|(s, _)| *s == seq)
            .map(|(_, slot)| slot)
    }

    /// The fade of the latest ready refresh before `seq`.
    fn ready_before(&self, seq: u64) -> Option<&Fade> {
        self.refreshes
            .iter()
            .rev()
            .filter(|(s, _)| *s < seq)
            .find_map(|(_, slot)| match slot {
                Slot::Ready(fade) => Some(fade),
                _ => None,
            })
    }

    /// Whether a refresh before `seq` is still being computed.
    fn pending_before(&self, seq: u64) -> bool {
        self.refreshes
            .iter()
            .any(|(s, slot)| *s < seq && matches!(slot, Slot::Pending))
    }
}

#[derive(Default)]
pub struct OwnVectors {
    registry: Mutex<Registry>,
    changed: Condvar,
}

impl OwnVectors {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// At hand-over of frame `seq`: the refresh whose fade the frame uses, which is
    /// `seq` itself when it refreshes (every `interval` frames, the first frame, and
    /// the first after a reset).
    pub fn plan(&self, seq: u64, interval: u32) -> u64 {
        let mut r = self.lock();
        if r.since_latest >= interval.max(1) || r.refresh_next || r.latest.is_none() {
            r.refresh_next = false;
            r.latest = Some(seq);
            r.since_latest = 0;
            if r.refreshes.len() == KEPT {
                r.refreshes.remove(0);
            }
            r.refreshes.push((seq, Slot::Pending));
        }
        r.since_latest += 1;
        r.latest.unwrap_or(seq)
    }

    /// For refreshing frame `seq`: where its fade starts at `pts`, once every earlier
    /// refresh is known; None when there is none before it.
    pub fn start(&self, seq: u64, pts: Option<gst::ClockTime>) -> Option<StyleVector> {
        let mut r = self.lock();
        while r.pending_before(seq) && !r.shutdown {
            r = self.changed.wait(r).unwrap_or_else(|e| e.into_inner());
        }
        r.ready_before(seq).map(|f| f.at(pts))
    }

    /// Publishes refreshing frame `seq`'s fade towards `fresh`, starting at `pts` from
    /// `from` (None: at once).
    pub fn publish(
        &self,
        seq: u64,
        from: Option<StyleVector>,
        fresh: StyleVector,
        pts: Option<gst::ClockTime>,
        duration: Duration,
    ) {
        let fade = match from {
            Some(from) => Fade {
                from,
                to: fresh,
                start: pts,
                duration,
            },
            None => Fade::settled(fresh),
        };
        let mut r = self.lock();
        if let Some((_, slot)) = r.refreshes.iter_mut().find(|(s, _)| *s == seq) {
            *slot = Slot::Ready(fade);
        }
        self.changed.notify_all();
    }

    /// Refreshing frame `seq` failed before publishing: frames that follow it use the
    /// refresh before.
    pub fn abandon(&self, seq: u64) {
        let mut r = self.lock();
        if let Some((_, slot)) = r.refreshes.iter_mut().find(|(s, _)| *s == seq) {
            if matches!(slot, Slot::Pending) {
                *slot = Slot::Abandoned;
            }
        }
        self.changed.notify_all();
    }

    /// The own vector of a frame at `pts` that follows refresh `refresh`, waiting while
    /// that refresh is computed; None when no refresh got through.
    pub fn at(&self, refresh: u64, pts: Option<gst::ClockTime>) -> Option<StyleVector> {
        let mut r = self.lock();
        loop {
            match r.slot(refresh) {
                Some(Slot::Pending) if !r.shutdown => {
                    r = self.changed.wait(r).unwrap_or_else(|e| e.into_inner());
                }
                Some(Slot::Ready(fade)) => return Some(fade.at(pts)),
                _ => return r.ready_before(refresh).map(|f| f.at(pts)),
            }
        }
    }

    /// The next frame handed over refreshes (after a flush or new caps).
    pub fn refresh_next(&self) {
        self.lock().refresh_next = true;
    }

    /// Wakes every waiter for good (the pool is going away).
    pub fn shutdown(&self) {
        self.lock().shutdown = true;
        self.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stylize::store::VECTOR_LEN;

    fn v(x: f32) -> StyleVector {
        [x; VECTOR_LEN]
    }

    #[test]
    fn frames_follow_the_refresh_planned_for_them_in_any_finishing_order() {
        let own = OwnVectors::default();
        assert_eq!(own.plan(0, 2), 0);
        assert_eq!(own.plan(1, 2), 0);
        assert_eq!(own.plan(2, 2), 2);
        assert_eq!(own.plan(3, 2), 2);
        // Frame 2 finishes first: it waits for frame 0's refresh to start its fade.
        let started = std::thread::scope(|s| {
            let later = s.spawn(|| own.start(2, None));
            std::thread::sleep(Duration::from_millis(20));
            assert!(!later.is_finished(), "frame 2 waits for frame 0");
            assert_eq!(own.start(0, None), None);
            own.publish(0, None, v(1.0), None, Duration::ZERO);
            later.join().unwrap()
        });
        assert_eq!(started, Some(v(1.0)));
        own.publish(2, started, v(3.0), None, Duration::ZERO);
        // Frame 1, still in flight, keeps to refresh 0 even after refresh 2.
        assert_eq!(own.at(0, None), Some(v(1.0)));
        assert_eq!(own.at(2, None), Some(v(3.0)));
    }

    #[test]
    fn a_failed_refresh_hands_on_the_one_before_and_wakes_its_waiters() {
        let own = OwnVectors::default();
        own.plan(0, 2);
        own.publish(0, None, v(1.0), None, Duration::ZERO);
        own.plan(1, 1);
        own.plan(2, 5);
        let got = std::thread::scope(|s| {
            let waiter = s.spawn(|| own.at(1, None));
            std::thread::sleep(Duration::from_millis(20));
            own.abandon(1);
            waiter.join().unwrap()
        });
        assert_eq!(got, Some(v(1.0)));
        own.refresh_next();
        assert_eq!(own.plan(3, 2), 3, "a reset makes the next frame refresh");
    }

    #[test]
    fn a_refresh_fades_from_where_the_previous_one_was() {
        let own = OwnVectors::default();
        let ms = |m| Some(gst::ClockTime::from_mseconds(m));
        own.plan(0, 2);
        own.publish(0, None, v(0.0), ms(0), Duration::from_millis(100));
        own.plan(1, 1);
        let from = own.start(1, ms(1000));
        own.publish(1, from, v(1.0), ms(1000), Duration::from_millis(100));
        assert_eq!(own.at(1, ms(1000)), Some(v(0.0)));
        assert!((own.at(1, ms(1050)).unwrap()[0] - 0.5).abs() < 1e-6);
        assert_eq!(own.at(1, ms(1100)), Some(v(1.0)));
    }
}
