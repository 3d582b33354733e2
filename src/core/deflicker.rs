//! Temporal deflicker: a motion-adaptive hold of the previous painting.
//!
//! The transfer network paints every frame on its own, and it amplifies the camera's
//! small frame-to-frame noise about 7 to 17 times, so a fixed camera's picture crawls.
//! Measured on a fixed-camera clip (see `scripts/bench-temporal.sh` and the README),
//! what works is to keep the previous output where the camera image did not change,
//! and to take the new painting where it did:
//!
//! ```text
//!     d = |blur(Y_t) - R|                    per pixel, 0..255 luma levels
//!     w = clamp((d - lo) / (hi - lo), 0, 1)  lo = 2 * strength, hi = 4 * strength
//!     O_t = w * P_t + (1 - w) * O_t-1        P_t: this frame's own painting
//!     R  <- w * blur(Y_t) + (1 - w) * R      the input the held output belongs to
//! ```
//!
//! `blur` is a box blur about 9x9 pixels of the frame wide (5x5 at the inference size
//! of a 640-wide frame): wide enough to ignore sensor noise, narrow enough that the
//! edges of small moving things are repainted, not left behind.
//!
//! `R` accumulates slow changes (light, exposure) until they pass `lo`, so nothing is
//! held for ever. A pixel is either held or repainted: unlike averaging outputs over
//! frames (which softens the brush texture), holding keeps it.
//!
//! When the camera pans or tilts, the held painting and `R` first move with it
//! ([`crate::motion`]), so `O_t-1` and `R` above are taken where the content was.
//!
//! Measured levers that lost (figures in the README): averaging with a floor on `w`
//! (texture drops to 0.82-0.88), and holding the network's instance-norm statistics
//! steady over time (only 7-15% less flicker: the shimmer is mostly local).
//!
//! Everything here works at the inference size, on packed RGB, before the output is
//! scaled back to the frame.

/// The element's and the daemon's default strength: measured best on fixed-camera
/// clips (`scripts/bench-temporal.sh`). It holds the painting where the blurred camera
/// image changed by less than 1.5 luma levels, and repaints fully from 3 levels.
pub const DEFAULT_STRENGTH: f64 = 0.75;

use crate::motion::{self, Motion};

/// Half the side of the box blur over the input luma, in frame pixels (9x9).
const BLUR_RADIUS_IN_FRAME: f32 = 4.0;
const MAX_BLUR_RADIUS: usize = 6;
/// Luma change (levels) at which, times the strength, a pixel starts to be repainted.
const LOW_PER_STRENGTH: f32 = 2.0;
/// ... and at which it is fully repainted.
const HIGH_PER_STRENGTH: f32 = 4.0;
/// A frame whose mean blurred luma change exceeds this many levels is a new scene.
const SCENE_CUT_LEVELS: f32 = 12.0;
/// The reference of canvas pixels that came in at an edge: far from any luma, so they
/// are repainted. Resampled, it stays outside `COVERED` near them.
const UNCOVERED: f32 = -1.0e4;
const COVERED: std::ops::RangeInclusive<f32> = -64.0..=320.0;
/// A style vector that moved further than this (relative L2) from the one the held
/// painting was made with is a new style.
const STYLE_STEP: f32 = 0.01;

/// What happened to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed through: deflicker off.
    Off,
    /// The frame's own painting, as a new start (first frame, new size, new style,
    /// scene cut or reset).
    Fresh,
    /// Blended with the previous output.
    Held,
}

/// The blurred luma of one frame's network input: the part of the deflicker that needs
/// no other frame, so each worker computes it in parallel before its turn.
#[derive(Default)]
pub struct Analysis {
    size: (usize, usize),
    luma: Vec<f32>,
    rows: Vec<f32>,
    blurred: Vec<f32>,
}

impl Analysis {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads `input`, packed RGB at `width`x`height`, the inference size of a frame
    /// `frame_width` pixels wide.
    pub fn analyze(&mut self, input: &[u8], (width, height): (usize, usize), frame_width: usize) {
        let n = width * height;
        self.size = (width, height);
        luma(&input[..(n * 3).min(input.len())], &mut self.luma);
        self.luma.resize(n, 0.0);
        let radius = (BLUR_RADIUS_IN_FRAME * width as f32 / frame_width.max(1) as f32).round();
        box_blur(
            &self.luma,
            (width, height),
            (radius as usize).clamp(1, MAX_BLUR_RADIUS),
            &mut self.rows,
            &mut self.blurred,
        );
    }
}

/// The temporal state of one stream at one inference size.
///
/// The held painting lives on a canvas that follows the camera: a pan moves it by
/// whole pixels exactly, and the sub-pixel rest (`offset`) is applied only when the
/// canvas is shown and when a repainted pixel is written back. So a held pixel is
/// resampled at most twice however long it is held, and the brush texture survives
/// a pan. With a fixed camera the offset stays zero and nothing is resampled.
#[derive(Default)]
pub struct Deflicker {
    size: (usize, usize),
    /// The held painting, packed RGB 0..255, shown at `offset`.
    canvas: Vec<f32>,
    /// The canvas rounded, while it is current: a held pixel of a still camera is a
    /// copy of it.
    canvas_bytes: Vec<u8>,
    canvas_bytes_current: bool,
    /// R: the blurred input luma the held painting belongs to, on the same canvas.
    canvas_reference: Vec<f32>,
    /// The sub-pixel part of the camera's motion since the canvas was last moved by
    /// whole pixels: the picture shows `canvas(x + offset)`.
    offset: Motion,
    /// The style vector of the last frame taken afresh: the held painting's.
    painted_with: Vec<f32>,
    /// The previous frame's style vector.
    last_vector: Vec<f32>,
    /// The previous frame's blurred luma, to find the camera's motion.
    last_blurred: Vec<f32>,
    /// Scratch space: the canvas and reference as shown, this frame's painting and
    /// luma on the canvas, and rows for the resampler.
    shown: Vec<f32>,
    shown_reference: Vec<f32>,
    painted: Vec<f32>,
    painted_luma: Vec<f32>,
    rows: Vec<f32>,
    moved: Vec<f32>,
    started: bool,
}

impl Deflicker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets the past: the next frame is taken as it is (flush, seek, caps change).
    pub fn reset(&mut self) {
        self.started = false;
    }

    /// Blends `output` (this frame's painting, packed RGB at the size `input` was
    /// analyzed at) with the previous output, in place. `strength` is the element's
    /// `deflicker` (0..1; 0 leaves `output` as it is). `vector` is the style vector the
    /// frame was painted with.
    pub fn apply(
        &mut self,
        input: &Analysis,
        output: &mut [u8],
        vector: &[f32],
        strength: f32,
    ) -> Outcome {
        let (width, height) = input.size;
        let n = width * height;
        if strength <= 0.0 || input.blurred.len() != n || output.len() < n * 3 {
            self.started = false;
            return Outcome::Off;
        }
        let blurred = &input.blurred;
        let same_size = self.started && self.size == input.size;
        if same_size && self.last_blurred.len() == n {
            let motion = motion::estimate(&self.last_blurred, blurred, input.size);
            if !motion.is_still() {
                self.follow(motion);
            }
        }
        self.last_blurred.clone_from(blurred);
        let moving = !self.offset.is_still();
        if same_size && moving {
            motion::shift(
                &self.canvas_reference,
                self.size,
                1,
                self.offset,
                &mut self.rows,
                &mut self.shown_reference,
            );
        }
        let reference = if moving {
            &self.shown_reference
        } else {
            &self.canvas_reference
        };
        let fresh = !same_size
            || style_moved(&self.painted_with, vector)
            || settled_elsewhere(&self.last_vector, &self.painted_with, vector)
            || mean_abs_diff(blurred, reference) > SCENE_CUT_LEVELS;
        self.last_vector.clear();
        self.last_vector.extend_from_slice(vector);
        if fresh {
            self.painted_with.clear();
            self.painted_with.extend_from_slice(vector);
            self.size = input.size;
            self.started = true;
            self.offset = Motion::default();
            self.canvas_reference.clone_from(blurred);
            self.canvas.clear();
            self.canvas
                .extend(output[..n * 3].iter().map(|&v| v as f32));
            self.canvas_bytes.clear();
            self.canvas_bytes.extend_from_slice(&output[..n * 3]);
            self.canvas_bytes_current = true;
            return Outcome::Fresh;
        }
        if moving {
            self.prepare_moving(output, blurred);
        }
        let strength = strength.min(1.0);
        let (lo, hi) = (LOW_PER_STRENGTH * strength, HIGH_PER_STRENGTH * strength);
        if !moving {
            if !self.canvas_bytes_current {
                self.canvas_bytes.clear();
                self.canvas_bytes
                    .extend(self.canvas.iter().map(|&v| to_u8(v)));
                self.canvas_bytes_current = true;
            }
            // The canvas is the picture: blend in place.
            let pixels = self
                .canvas_reference
                .iter_mut()
                .zip(blurred)
                .zip(self.canvas.chunks_exact_mut(3))
                .zip(self.canvas_bytes.chunks_exact_mut(3))
                .zip(output.chunks_exact_mut(3));
            for ((((reference, &now), canvas), bytes), out) in pixels {
                let d = (now - *reference).abs();
                if d > lo {
                    let w = weight(d, lo, hi);
                    *reference += w * (now - *reference);
                    for ((h, b), &o) in canvas.iter_mut().zip(bytes.iter_mut()).zip(out.iter()) {
                        *h += w * (o as f32 - *h);
                        *b = to_u8(*h);
                    }
                }
                out.copy_from_slice(bytes);
            }
            return Outcome::Held;
        }
        self.canvas_bytes_current = false;
        let pixels = blurred
            .iter()
            .zip(&self.shown_reference)
            .zip(self.canvas_reference.iter_mut().zip(&self.painted_luma))
            .zip(self.shown.chunks_exact(3).zip(self.painted.chunks_exact(3)))
            .zip(
                self.canvas
                    .chunks_exact_mut(3)
                    .zip(output.chunks_exact_mut(3)),
            );
        for ((((&now, &shown_reference), (reference, &luma)), (shown, painted)), (canvas, out)) in
            pixels
        {
            let w = weight((now - shown_reference).abs(), lo, hi);
            if w > 0.0 {
                *reference += w * (luma - *reference);
                for (h, &p) in canvas.iter_mut().zip(painted) {
                    *h += w * (p - *h);
                }
            }
            for (o, &held) in out.iter_mut().zip(shown) {
                *o = to_u8(held + w * (*o as f32 - held));
            }
        }
        Outcome::Held
    }

    /// Moves the canvas with the camera: whole pixels at once, exactly; the rest is
    /// kept in `offset`.
    fn follow(&mut self, motion: Motion) {
        let total = Motion {
            dx: self.offset.dx + motion.dx,
            dy: self.offset.dy + motion.dy,
        };
        let whole = Motion {
            dx: total.dx.floor(),
            dy: total.dy.floor(),
        };
        self.offset = Motion {
            dx: total.dx - whole.dx,
            dy: total.dy - whole.dy,
        };
        if whole.is_still() {
            return;
        }
        self.canvas_bytes_current = false;
        let size = self.size;
        motion::shift(
            &self.canvas,
            size,
            3,
            whole,
            &mut self.rows,
            &mut self.moved,
        );
        std::mem::swap(&mut self.canvas, &mut self.moved);
        motion::shift(
            &self.canvas_reference,
            size,
            1,
            whole,
            &mut self.rows,
            &mut self.moved,
        );
        std::mem::swap(&mut self.canvas_reference, &mut self.moved);
        // What came in at the edges is not on the canvas: a reference no picture is
        // near makes it repainted (rather than the edge smeared across it).
        let (w, h) = size;
        let (dx, dy) = (whole.dx as isize, whole.dy as isize);
        let columns = if dx > 0 {
            w.saturating_sub(dx as usize)..w
        } else {
            0..(-dx as usize).min(w)
        };
        let rows = if dy > 0 {
            h.saturating_sub(dy as usize)..h
        } else {
            0..(-dy as usize).min(h)
        };
        for y in 0..h {
            let row = &mut self.canvas_reference[y * w..(y + 1) * w];
            if rows.contains(&y) {
                row.fill(UNCOVERED);
            } else {
                row[columns.clone()].fill(UNCOVERED);
            }
        }
    }

    /// For a canvas at a sub-pixel offset: the canvas as shown, and this frame's
    /// painting and luma moved onto the canvas.
    fn prepare_moving(&mut self, output: &[u8], blurred: &[f32]) {
        let size = self.size;
        let back = Motion {
            dx: -self.offset.dx,
            dy: -self.offset.dy,
        };
        motion::shift(
            &self.canvas,
            size,
            3,
            self.offset,
            &mut self.rows,
            &mut self.shown,
        );
        self.moved.clear();
        self.moved.extend(output.iter().map(|&v| v as f32));
        motion::shift(
            &self.moved,
            size,
            3,
            back,
            &mut self.rows,
            &mut self.painted,
        );
        motion::shift(
            blurred,
            size,
            1,
            back,
            &mut self.rows,
            &mut self.painted_luma,
        );
    }
}

/// How much of this frame's painting a pixel takes, for a blurred luma change `d`.
fn weight(d: f32, lo: f32, hi: f32) -> f32 {
    ((d - lo) / (hi - lo)).clamp(0.0, 1.0)
}

fn to_u8(v: f32) -> u8 {
    v.round().clamp(0.0, 255.0) as u8
}

/// A fade in small steps has ended (the vector stopped) somewhere other than where the
/// held painting was made: paint it once more, so the end of a fade is exact.
fn settled_elsewhere(last: &[f32], painted_with: &[f32], now: &[f32]) -> bool {
    last == now && painted_with != now
}

fn style_moved(before: &[f32], now: &[f32]) -> bool {
    if before.len() != now.len() {
        return true;
    }
    let (mut diff, mut norm) = (0.0f32, 0.0f32);
    for (a, b) in before.iter().zip(now) {
        diff += (a - b) * (a - b);
        norm += b * b;
    }
    diff > STYLE_STEP * STYLE_STEP * norm.max(f32::MIN_POSITIVE)
}

/// The mean |now - reference| over the pixels the reference covers (not those that
/// came in at an edge during a pan).
fn mean_abs_diff(now: &[f32], reference: &[f32]) -> f32 {
    if now.is_empty() || now.len() != reference.len() {
        return f32::INFINITY;
    }
    let (mut sum, mut n) = (0.0f32, 0usize);
    for (x, r) in now.iter().zip(reference) {
        if COVERED.contains(r) {
            sum += (x - r).abs();
            n += 1;
        }
    }
    if n == 0 {
        f32::INFINITY
    } else {
        sum / n as f32
    }
}

/// BT.601 luma of packed RGB, 0..255.
pub fn luma(rgb: &[u8], out: &mut Vec<f32>) {
    out.clear();
    out.extend(
        rgb.chunks_exact(3)
            .map(|p| 0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32),
    );
}

/// Mean over the (2r+1)x(2r+1) box around each pixel, edges clamped (repeated).
/// `rows` is scratch space.
pub fn box_blur(
    src: &[f32],
    (width, height): (usize, usize),
    r: usize,
    rows: &mut Vec<f32>,
    out: &mut Vec<f32>,
) {
    let side = (2 * r + 1) as f32;
    rows.clear();
    rows.resize(width * height, 0.0);
    for y in 0..height {
        let row = &src[y * width..(y + 1) * width];
        let at = |x: isize| row[x.clamp(0, width as isize - 1) as usize];
        let mut sum: f32 = (-(r as isize)..=r as isize).map(at).sum();
        for x in 0..width {
            rows[y * width + x] = sum / side;
            sum += at(x as isize + r as isize + 1) - at(x as isize - r as isize);
        }
    }
    out.clear();
    out.resize(width * height, 0.0);
    for x in 0..width {
        let at = |y: isize| rows[y.clamp(0, height as isize - 1) as usize * width + x];
        let mut sum: f32 = (-(r as isize)..=r as isize).map(at).sum();
        for y in 0..height {
            out[y * width + x] = sum / side;
            sum += at(y as isize + r as isize + 1) - at(y as isize - r as isize);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: usize, h: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
        let mut v = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                v.extend([f(x, y); 3]);
            }
        }
        v
    }

    #[test]
    fn box_blur_is_a_mean_with_clamped_edges() {
        let src: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let mut out = Vec::new();
        box_blur(&src, (5, 4), 1, &mut Vec::new(), &mut out);
        // Centre pixel (2,1): mean of rows 0..2, columns 1..3.
        let want = [1.0, 2.0, 3.0, 6.0, 7.0, 8.0, 11.0, 12.0, 13.0]
            .iter()
            .sum::<f32>()
            / 9.0;
        assert!((out[5 + 2] - want).abs() < 1e-4);
        // Corner (0,0): rows 0,0,1 and columns 0,0,1.
        let corner = (2.0 * (0.0 + 0.0 + 1.0) + (5.0 + 5.0 + 6.0)) / 9.0;
        assert!((out[0] - corner).abs() < 1e-4, "{}", out[0]);
    }

    /// Analyzes `input` and applies, as the pool does.
    fn step(
        d: &mut Deflicker,
        input: &[u8],
        output: &mut [u8],
        size: (usize, usize),
        vector: &[f32],
        strength: f32,
    ) -> Outcome {
        let mut a = Analysis::new();
        a.analyze(input, size, size.0);
        d.apply(&a, output, vector, strength)
    }

    #[test]
    fn holds_where_the_input_is_still_and_repaints_where_it_moved() {
        let (w, h) = (32, 16);
        let v = [0.5f32; 4];
        let mut d = Deflicker::new();
        let input = frame(w, h, |_, _| 100);
        let mut first = frame(w, h, |x, _| x as u8);
        assert_eq!(
            step(&mut d, &input, &mut first, (w, h), &v, 0.75),
            Outcome::Fresh
        );
        // Same input, a different painting: the old one is held.
        let mut second = frame(w, h, |x, _| 200 - x as u8);
        assert_eq!(
            step(&mut d, &input, &mut second, (w, h), &v, 0.75),
            Outcome::Held
        );
        assert_eq!(second, first);
        // A strip on the right changes a lot (a small part of the frame, so not a
        // scene cut): it is repainted there and held elsewhere.
        let moved = frame(w, h, |x, _| if x >= w - 6 { 140 } else { 100 });
        let mut third = frame(w, h, |_, _| 7);
        step(&mut d, &moved, &mut third, (w, h), &v, 0.75);
        let px = |f: &[u8], x: usize, y: usize| f[(y * w + x) * 3];
        assert_eq!(px(&third, 0, 8), px(&first, 0, 8));
        assert_eq!(px(&third, w - 1, 8), 7);
    }

    #[test]
    fn zero_strength_leaves_the_output_alone() {
        let (w, h) = (8, 8);
        let mut d = Deflicker::new();
        let input = frame(w, h, |_, _| 10);
        let mut out = frame(w, h, |x, y| (x * y) as u8);
        let copy = out.clone();
        assert_eq!(
            step(&mut d, &input, &mut out, (w, h), &[1.0], 0.0),
            Outcome::Off
        );
        assert_eq!(out, copy);
    }

    #[test]
    fn new_style_scene_cut_size_and_reset_start_fresh() {
        let (w, h) = (16, 16);
        let mut d = Deflicker::new();
        let input = frame(w, h, |_, _| 50);
        let paint = |v| frame(w, h, move |_, _| v);
        let a = [1.0f32, 0.0];
        step(&mut d, &input, &mut paint(1), (w, h), &a, 1.0);
        let mut out = paint(2);
        assert_eq!(
            step(&mut d, &input, &mut out, (w, h), &[0.0, 1.0], 1.0),
            Outcome::Fresh
        );
        assert_eq!(out, paint(2));
        let cut = frame(w, h, |_, _| 200);
        assert_eq!(
            step(&mut d, &cut, &mut paint(3), (w, h), &[0.0, 1.0], 1.0),
            Outcome::Fresh
        );
        d.reset();
        assert_eq!(
            step(&mut d, &cut, &mut paint(4), (w, h), &[0.0, 1.0], 1.0),
            Outcome::Fresh
        );
        let small = frame(8, 8, |_, _| 200);
        let mut out = frame(8, 8, |_, _| 5);
        assert_eq!(
            step(&mut d, &small, &mut out, (8, 8), &[0.0, 1.0], 1.0),
            Outcome::Fresh
        );
        // A tiny step of the vector (a smoothed blend) keeps the hold...
        let mut out = frame(8, 8, |_, _| 9);
        assert_eq!(
            step(&mut d, &small, &mut out, (8, 8), &[0.0, 1.001], 1.0),
            Outcome::Held
        );
        assert_eq!(out, frame(8, 8, |_, _| 5));
        // ... but once the vector stops there, that style is painted.
        let mut out = frame(8, 8, |_, _| 9);
        assert_eq!(
            step(&mut d, &small, &mut out, (8, 8), &[0.0, 1.001], 1.0),
            Outcome::Fresh
        );
    }

    #[test]
    fn a_pan_moves_the_held_painting_and_repaints_what_comes_in_at_the_edge() {
        let (w, h) = (96, 64);
        // A scene seen through a window moving right 3 px per frame: textured, then
        // flat from scene column 80 on (a wall, the sky), so what comes in at the right
        // edge looks like the column before it.
        let scene = |t: usize| {
            let mut v = Vec::with_capacity(w * h * 3);
            for y in 0..h {
                for x in 0..w {
                    let u = (x + 3 * t) as f32;
                    let texture = 60.0 * (u * 0.37).sin() * (y as f32 * 0.23).cos();
                    let l = 128.0 + if u < 80.0 { texture } else { 0.0 };
                    v.extend([l as u8; 3]);
                }
            }
            v
        };
        // Each frame's painting: a gradient along x that moves with the scene, plus
        // a different offset every frame (the network's shimmer).
        let paint = |t: usize, shimmer: u8| {
            let mut v = Vec::with_capacity(w * h * 3);
            for _ in 0..h {
                for x in 0..w {
                    v.extend([((x + 3 * t) as u8).wrapping_add(shimmer); 3]);
                }
            }
            v
        };
        let mut d = Deflicker::new();
        let v = [1.0f32];
        let mut first = paint(0, 0);
        step(&mut d, &scene(0), &mut first, (w, h), &v, 0.75);
        let mut out = paint(1, 40);
        assert_eq!(
            step(&mut d, &scene(1), &mut out, (w, h), &v, 0.75),
            Outcome::Held
        );
        let at = |f: &[u8], x: usize| f[(32 * w + x) * 3];
        // Inside, the old painting, moved with the scene (within the sub-pixel rest).
        for x in 10..80 {
            assert!(at(&out, x).abs_diff(at(&first, x + 3)) <= 2, "column {x}");
        }
        // At the right edge, where the scene came in: this frame's painting.
        assert_eq!(at(&out, w - 1), at(&paint(1, 40), w - 1));
    }

    #[test]
    fn a_slow_fade_repaints_as_it_goes_and_ends_on_the_new_style() {
        // 200 steps of 0.5% each: none is a new style by itself.
        let (w, h) = (8, 8);
        let mut d = Deflicker::new();
        let input = frame(w, h, |_, _| 50);
        let mut fresh = 0;
        let mut out = Vec::new();
        for k in 0..=200 {
            let v = [1.0 - k as f32 / 200.0, k as f32 / 200.0];
            out = frame(w, h, |_, _| k as u8);
            if step(&mut d, &input, &mut out, (w, h), &v, 1.0) == Outcome::Fresh {
                fresh += 1;
            }
        }
        assert!(
            fresh > 10,
            "the picture followed the fade ({fresh} repaints)"
        );
        // The fade is over: the next frame shows a painting made with its end.
        let end = [0.0, 1.0];
        let mut next = frame(w, h, |_, _| 250);
        step(&mut d, &input, &mut next, (w, h), &end, 1.0);
        assert!(
            next == frame(w, h, |_, _| 250) || out == frame(w, h, |_, _| 200),
            "the end of the fade is painted"
        );
    }
}
