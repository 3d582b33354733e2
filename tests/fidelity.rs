//! The element's output against `reference.py stylize` with the same vector.
//! At the inference size the two must agree to PSNR >= 45 dB; at other sizes only
//! resampling may differ (PSNR >= 27 dB).

mod common;

use std::path::Path;

use common::*;

fn element_output(content_png: &Path, properties: &str) -> Rgb {
    let out = run_pipeline(&format!(
        "filesrc location={} ! pngdec ! videoconvert ! video/x-raw,format=RGB ! stylize {properties} ! appsink name=sink",
        content_png.display()
    ));
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.samples.len(), 1);
    Rgb::from_sample(&out.samples[0])
}

/// Writes the content as PNG at `size` (Pillow-resized) so both sides read the same
/// pixels, runs the reference, and returns (reference, element) images.
fn compare(content: &str, size: Option<(usize, usize)>, style: &str, long_side: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut img = Rgb::load(&shared().join("content").join(content));
    if let Some((w, h)) = size {
        let mut out = vec![0u8; w * h * 3];
        stylize::resample::Resizer::new((img.width, img.height), (w, h)).resize(
            &img.data,
            img.width * 3,
            &mut out,
            w * 3,
        );
        img = Rgb {
            width: w,
            height: h,
            data: out,
        };
    }
    let content_png = dir.path().join("content.png");
    img.save_png(&content_png);
    let vector = default_store().get(style).unwrap().vector.clone();
    let vector_json = dir.path().join("vector.json");
    std::fs::write(&vector_json, serde_json::to_string(&vector).unwrap()).unwrap();
    let reference_png = dir.path().join("reference.png");
    let transfer = model("transfer-int8");
    let long = long_side.to_string();
    reference(&[
        "stylize",
        "--transfer",
        transfer.to_str().unwrap(),
        "--content",
        content_png.to_str().unwrap(),
        "--vector",
        vector_json.to_str().unwrap(),
        "--long-side",
        &long,
        "--out",
        reference_png.to_str().unwrap(),
    ]);
    let expected = Rgb::load(&reference_png);
    let got = element_output(
        &content_png,
        &format!("style={style} accelerator=cpu inference-size={long_side}"),
    );
    psnr(&expected, &got)
}

#[test]
fn at_the_inference_size_the_output_matches_the_reference() {
    for (content, size, style) in [
        ("tiger.jpg", (384, 256), "monet"),
        ("golden_gate.jpg", (384, 288), "starry_night"),
        ("dog_and_cats.jpg", (192, 384), "great_wave"),
    ] {
        let p = compare(content, Some(size), style, 384);
        println!("fidelity at inference size {content} {size:?} {style}: PSNR {p:.2} dB");
        assert!(p >= 45.0, "{content}: PSNR {p}");
    }
}

#[test]
fn at_other_sizes_only_resampling_differs() {
    for (content, size, style, long) in [
        ("golden_gate.jpg", None, "monet", 384),
        ("dog_and_cats.jpg", None, "scream", 384),
        ("tiger.jpg", Some((641, 479)), "udnie", 256),
    ] {
        let p = compare(content, size, style, long);
        println!("fidelity resampled {content} {size:?} {style} long side {long}: PSNR {p:.2} dB");
        assert!(p >= 27.0, "{content}: PSNR {p}");
    }
}
