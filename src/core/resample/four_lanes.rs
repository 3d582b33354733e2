//! The fixed-tap horizontal kernel with each output pixel summed as one vector of four
//! 32-bit lanes: R, G, B and a byte of the next pixel, which is weighted and dropped.
//! A tap is then one multiply-add instead of three. The integer arithmetic is the scalar
//! kernel's, so the bytes are the same; the compiler does not find this form itself.

use super::{weighted_pixel, CHANNELS, HALF, PRECISION_BITS};

const SHIFT: i32 = PRECISION_BITS as i32;

/// Whether this CPU has the vector instructions `row` needs.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("sse4.1");
    #[cfg(target_arch = "aarch64")]
    return true;
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return false;
}

/// One row with exactly `K` taps per output pixel. `s` runs to the end of the source
/// buffer; pixels whose taps end in its last byte go through the scalar kernel.
///
/// # Safety
/// Only where [`available`] is true.
#[cfg_attr(target_arch = "x86_64", target_feature(enable = "sse4.1"))]
#[cfg_attr(target_arch = "aarch64", target_feature(enable = "neon"))]
pub unsafe fn row<const K: usize>(first: &[usize], weights: &[i32], s: &[u8], d: &mut [u8]) {
    for ((out, &f), w) in d
        .chunks_exact_mut(CHANNELS)
        .zip(first)
        .zip(weights.chunks_exact(K))
    {
        let at = f * CHANNELS;
        match s.get(at..at + K * CHANNELS + 1) {
            Some(pixels) => out.copy_from_slice(&pixel::<K>(pixels, w)[..CHANNELS]),
            None => weighted_pixel(&s[at..][..K * CHANNELS], w, out),
        }
    }
}

/// Four little-endian bytes of `pixels` from tap `k`.
#[inline(always)]
fn word(pixels: &[u8], k: usize) -> u32 {
    let b = &pixels[k * CHANNELS..k * CHANNELS + 4];
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse4.1")]
#[inline]
fn pixel<const K: usize>(pixels: &[u8], w: &[i32]) -> [u8; 4] {
    use std::arch::x86_64::*;
    let mut acc = _mm_set1_epi32(HALF);
    for (k, &wk) in w.iter().enumerate().take(K) {
        let px = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(word(pixels, k) as i32));
        acc = _mm_add_epi32(acc, _mm_mullo_epi32(px, _mm_set1_epi32(wk)));
    }
    let v = _mm_srai_epi32::<SHIFT>(acc);
    let v = _mm_min_epi32(_mm_max_epi32(v, _mm_setzero_si128()), _mm_set1_epi32(255));
    let bytes = _mm_packus_epi16(_mm_packus_epi32(v, v), v);
    (_mm_cvtsi128_si32(bytes) as u32).to_le_bytes()
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
#[inline]
fn pixel<const K: usize>(pixels: &[u8], w: &[i32]) -> [u8; 4] {
    use std::arch::aarch64::*;
    let mut acc = vdupq_n_s32(HALF);
    for (k, &wk) in w.iter().enumerate().take(K) {
        let bytes = vcreate_u8(word(pixels, k) as u64);
        let px = vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(bytes))));
        acc = vmlaq_n_s32(acc, px, wk);
    }
    let v = vshrq_n_s32::<SHIFT>(acc);
    let v = vminq_s32(vmaxq_s32(v, vdupq_n_s32(0)), vdupq_n_s32(255));
    [
        vgetq_lane_s32::<0>(v) as u8,
        vgetq_lane_s32::<1>(v) as u8,
        vgetq_lane_s32::<2>(v) as u8,
        0,
    ]
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn pixel<const K: usize>(_: &[u8], _: &[i32]) -> [u8; 4] {
    unreachable!("`available` is false here")
}
