//! Measures the steady-statistics lever (see src/tflite/steady_stats.rs): runs raw
//! 384x216 RGB frames through the CPU graph at a given hold and writes raw RGB outputs.
//! Usage: steady_stats_probe IN.rgb OUT.rgb HOLD FRAMES VECTOR.json
use std::sync::Arc;
use stylize::engine::{CONTENT_INPUT, VECTOR_INPUT};
use stylize::litert::{Environment, Hardware, Network, Runtime};
fn main() {
    let a: Vec<String> = std::env::args().collect();
    let (input, output, hold, frames): (&str, &str, f32, usize) =
        (&a[1], &a[2], a[3].parse().unwrap(), a[4].parse().unwrap());
    let (w, h) = (384usize, 216usize);
    let model = std::fs::read(
        "models/cache/magenta_arbitrary-image-stylization-v1-256_int8_transfer_1.tflite",
    )
    .unwrap();
    let cpu = stylize::tflite::transfer_for_cpu(&model, h, w).unwrap();
    let (steady, stats) = stylize::tflite::steady_stats(&cpu).unwrap().unwrap();
    eprintln!("{} statistics", stats.len());
    let env = Environment::cpu_only(Runtime::shared(None).unwrap()).unwrap();
    let mut net = Network::new(env, Arc::from(steady), Hardware::Cpu, 2, &[]).unwrap();
    let vector: Vec<f32> =
        serde_json::from_str::<Vec<f32>>(&std::fs::read_to_string(&a[5]).unwrap()).unwrap();
    let raw = std::fs::read(input).unwrap();
    let mut held: Vec<Vec<f32>> = stats.iter().map(|s| vec![0.0; s.channels]).collect();
    let mut out = Vec::new();
    let ci = net.input_index(CONTENT_INPUT).unwrap();
    let vi = net.input_index(VECTOR_INPUT).unwrap();
    let hi = net.input_index(stylize::tflite::HOLD_INPUT).unwrap();
    let si: Vec<usize> = stats
        .iter()
        .map(|s| net.input_index(&s.input()).unwrap())
        .collect();
    let so: Vec<usize> = stats
        .iter()
        .map(|s| net.output_index(&s.output()).unwrap())
        .collect();
    let t0 = std::time::Instant::now();
    for f in 0..frames {
        let px = &raw[f * w * h * 3..(f + 1) * w * h * 3];
        net.write_input(ci, |t| {
            for (o, &i) in t.iter_mut().zip(px) {
                *o = i as f32 / 255.0
            }
        })
        .unwrap();
        net.write_input(vi, |t| t.copy_from_slice(&vector)).unwrap();
        let k = if f == 0 { 0.0 } else { hold };
        net.write_input(hi, |t| t[0] = k).unwrap();
        for (j, &i) in si.iter().enumerate() {
            net.write_input(i, |t| t.copy_from_slice(&held[j])).unwrap();
        }
        net.run().unwrap();
        for (j, &o) in so.iter().enumerate() {
            net.read_output(o, |t| held[j].copy_from_slice(t)).unwrap();
        }
        net.read_output(0, |t| {
            out.extend(
                t.iter()
                    .map(|v| (v * 255.0).round().clamp(0.0, 255.0) as u8),
            )
        })
        .unwrap();
    }
    eprintln!(
        "{:.1} ms/frame",
        t0.elapsed().as_secs_f64() * 1000.0 / frames as f64
    );
    std::fs::write(output, out).unwrap();
}
