//! The latency the element reports: how long a frame stays inside it, estimated from
//! the recent frames, with hysteresis.
//!
//! A live sink waits that long before showing a frame, so the figure must cover nearly
//! every frame (a frame later than it is dropped), yet not keep the one slow frame of a
//! start or a caps change for ever (every frame would then be shown that much later).
//! The estimate is a high percentile of the last [`WINDOW`] frames with some headroom.
//! It is reported again only when it leaves a band around the reported value: at once
//! when frames take clearly longer, and after a whole window of shorter frames when
//! they take clearly less, so that noise does not make the pipeline recompute its
//! latency all the time. A warm-up run at the first caps gives the first figure before
//! the first frame ([`LatencyEstimate::seed`]).

use std::collections::VecDeque;
use std::time::Duration;

/// Frames the estimate looks back on (a second at 30 fps).
pub const WINDOW: usize = 30;
/// The share of the window's frames the estimate covers.
const PERCENTILE: f64 = 0.9;
/// Margin over the percentile.
const HEADROOM: f64 = 1.25;
/// Frames taking longer than this share of the reported latency raise it.
const GROW_ABOVE: f64 = 1.0;
/// A full window under this share of the reported latency lowers it.
const SHRINK_BELOW: f64 = 0.6;

#[derive(Debug)]
pub struct LatencyEstimate {
    recent: VecDeque<Duration>,
    reported: Duration,
}

impl Default for LatencyEstimate {
    fn default() -> Self {
        LatencyEstimate {
            recent: VecDeque::with_capacity(WINDOW),
            reported: Duration::ZERO,
        }
    }
}

impl LatencyEstimate {
    /// The latency reported now (zero before the first figure).
    pub fn reported(&self) -> Duration {
        self.reported
    }

    /// Starts from a frame time measured before the first frame (a warm-up run).
    /// Returns the latency to report.
    pub fn seed(&mut self, frame_time: Duration) -> Duration {
        self.recent.clear();
        self.reported = frame_time.mul_f64(HEADROOM);
        self.reported
    }

    /// Adds the time one frame spent in the element. Returns the new latency when the
    /// reported one should change.
    pub fn observe(&mut self, in_element: Duration) -> Option<Duration> {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        self.recent.push_back(in_element);
        let percentile = self.percentile();
        let estimate = percentile.mul_f64(HEADROOM);
        let reported = self.reported.as_secs_f64();
        let grow = percentile.as_secs_f64() > reported * GROW_ABOVE;
        let shrink =
            self.recent.len() == WINDOW && estimate.as_secs_f64() < reported * SHRINK_BELOW;
        (grow || shrink).then(|| {
            self.reported = estimate;
            estimate
        })
    }

    fn percentile(&self) -> Duration {
        // On the stack: the streaming path allocates nothing per frame.
        let mut window = [Duration::ZERO; WINDOW];
        let sorted = &mut window[..self.recent.len()];
        for (slot, &time) in sorted.iter_mut().zip(&self.recent) {
            *slot = time;
        }
        sorted.sort_unstable();
        let rank = ((sorted.len() as f64 * PERCENTILE).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn a_slow_first_frame_does_not_set_the_latency_for_ever() {
        let mut l = LatencyEstimate::default();
        assert_eq!(l.observe(ms(150)), Some(ms(150).mul_f64(HEADROOM)));
        let mut changes = vec![];
        for _ in 0..2 * WINDOW {
            if let Some(v) = l.observe(ms(40)) {
                changes.push(v);
            }
        }
        assert_eq!(changes, [ms(40).mul_f64(HEADROOM)]);
        assert_eq!(l.reported(), ms(40).mul_f64(HEADROOM));
    }

    #[test]
    fn the_seed_is_the_first_figure_and_steady_frames_keep_it() {
        let mut l = LatencyEstimate::default();
        assert_eq!(l.seed(ms(40)), ms(40).mul_f64(HEADROOM));
        for i in 0..5 * WINDOW as u64 {
            // Noise of +-10% around the seed: no new latency.
            assert_eq!(l.observe(ms(36 + i % 9)), None, "frame {i}");
        }
    }

    #[test]
    fn noisy_frame_times_change_it_once_at_most() {
        let mut l = LatencyEstimate::default();
        l.seed(ms(40));
        // +-30% around the seed, as on a busy machine.
        let changes = (0..10 * WINDOW as u64)
            .filter_map(|i| l.observe(ms(28 + (i * 7) % 25)))
            .count();
        assert!(changes <= 1, "{changes} changes");
    }

    #[test]
    fn longer_frames_raise_it_at_once_but_a_lone_spike_does_not() {
        let mut l = LatencyEstimate::default();
        l.seed(ms(40));
        for _ in 0..WINDOW {
            assert_eq!(l.observe(ms(40)), None);
        }
        // One spike in a window is under the 90th percentile.
        assert_eq!(l.observe(ms(400)), None);
        assert_eq!(l.observe(ms(40)), None);
        // The load doubles: the latency follows within a few frames.
        let grew = (0..5).find_map(|_| l.observe(ms(80)));
        assert_eq!(grew, Some(ms(80).mul_f64(HEADROOM)));
    }

    #[test]
    fn shorter_frames_lower_it_only_after_a_whole_window() {
        let mut l = LatencyEstimate::default();
        l.seed(ms(100));
        for i in 0..WINDOW - 1 {
            assert_eq!(l.observe(ms(30)), None, "frame {i}");
        }
        assert_eq!(l.observe(ms(30)), Some(ms(30).mul_f64(HEADROOM)));
    }
}
