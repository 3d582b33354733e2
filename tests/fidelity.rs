//! The element's output against `reference.py stylize` with the same vector. The README
//! promises the same pixels at any size, so both tests ask for PSNR >= 45 dB: at the
//! inference size, and at other sizes, where a resampler other than Pillow's bilinear
//! (about 30 dB off) would fail.

mod common;

use common::*;

#[test]
fn at_the_inference_size_the_output_matches_the_reference() {
    for (content, size, style) in [
        ("tiger.jpg", (384, 256), "monet"),
        ("golden_gate.jpg", (384, 288), "starry_night"),
        ("dog_and_cats.jpg", (192, 384), "great_wave"),
    ] {
        let p = compare_with_reference(
            content,
            Some(size),
            style,
            384,
            "transfer-int8",
            "accelerator=cpu",
        )
        .0;
        println!("fidelity at inference size {content} {size:?} {style}: PSNR {p:.2} dB");
        assert!(p >= 45.0, "{content}: PSNR {p}");
    }
}

#[test]
fn at_other_sizes_the_resampling_matches_the_reference_too() {
    for (content, size, style, long) in [
        ("golden_gate.jpg", None, "monet", 384),
        ("dog_and_cats.jpg", None, "scream", 384),
        ("tiger.jpg", Some((641, 479)), "udnie", 256),
    ] {
        let p = compare_with_reference(
            content,
            size,
            style,
            long,
            "transfer-int8",
            "accelerator=cpu",
        )
        .0;
        println!("fidelity resampled {content} {size:?} {style} long side {long}: PSNR {p:.2} dB");
        assert!(p >= 45.0, "{content}: PSNR {p}");
    }
}
