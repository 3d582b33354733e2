//! The flatbuffer patch that gives the transfer network other inference sizes.

mod common;

use common::*;
use std::sync::Arc;

use stylize::engine::{CONTENT_INPUT, VECTOR_INPUT};
use stylize::litert::{Environment, Network, Runtime};
use stylize::tflite::{
    builtin_ops, inspect_transfer, transfer_for_cpu, transfer_for_size, ModelError, ResizeConstant,
};
use stylize::Accelerator;

const MIRROR_PAD: i32 = 100;
const SLICE: i32 = 65;
const CONCATENATION: i32 = 2;

#[test]
fn finds_the_three_decoder_resize_constants_in_both_transfer_models() {
    for role in ["transfer-int8", "transfer-fp16"] {
        let bytes = std::fs::read(model(role)).unwrap();
        let graph = inspect_transfer(&bytes).unwrap();
        assert_eq!(graph.input, (384, 384), "{role}");
        let sizes: Vec<(i32, i32)> = graph.resizes.iter().map(|r| r.size).collect();
        assert_eq!(sizes, [(192, 192), (384, 384), (384, 384)], "{role}");
    }
}

#[test]
fn patch_rewrites_only_the_constants() {
    let bytes = std::fs::read(model("transfer-int8")).unwrap();
    let patched = transfer_for_size(&bytes, 288, 384).unwrap();
    assert_eq!(patched.len(), bytes.len());
    let graph = inspect_transfer(&patched).unwrap();
    let sizes: Vec<(i32, i32)> = graph.resizes.iter().map(|r| r.size).collect();
    assert_eq!(sizes, [(144, 192), (288, 384), (288, 384)]);
    let changed: Vec<usize> = (0..bytes.len())
        .filter(|&i| bytes[i] != patched[i])
        .collect();
    let offsets: Vec<usize> = graph
        .resizes
        .iter()
        .map(|r: &ResizeConstant| r.offset)
        .collect();
    assert!(changed
        .iter()
        .all(|&i| offsets.iter().any(|&o| (o..o + 8).contains(&i))));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let bytes = std::fs::read(model("transfer-int8")).unwrap();
    // The prediction network has no decoder resizes and a 256x256 input.
    let prediction = std::fs::read(model("prediction-int8")).unwrap();
    type Patch = fn(&[u8], usize, usize) -> Result<Vec<u8>, ModelError>;
    for (name, patch) in [
        ("transfer_for_size", transfer_for_size as Patch),
        ("transfer_for_cpu", transfer_for_cpu),
    ] {
        assert!(
            matches!(patch(&bytes, 290, 384), Err(ModelError::BadSize { .. })),
            "{name}"
        );
        assert!(
            matches!(patch(&prediction, 288, 384), Err(ModelError::ResizeOps(0))),
            "{name}"
        );
        for cut in [0, 3, 16, 1000, bytes.len() / 2] {
            assert!(
                patch(&bytes[..cut], 288, 384).is_err(),
                "{name}: truncated at {cut}"
            );
            assert!(
                inspect_transfer(&bytes[..cut]).is_err(),
                "truncated at {cut}"
            );
        }
    }
    let mut scrambled = bytes.clone();
    for b in scrambled.iter_mut().take(64) {
        *b = 0xff;
    }
    assert!(inspect_transfer(&scrambled).is_err());
}

/// The transfer network's output on the CPU for fixed inputs. `resize` asks LiteRT
/// for a NonStrict input resize, as the GPU path does.
fn run_on_cpu(bytes: Vec<u8>, resize: Option<(usize, usize)>) -> (Vec<i32>, Vec<f32>) {
    let env = Environment::cpu_only(Runtime::shared(None).unwrap()).unwrap();
    let dims = resize.map(|(h, w)| [1, h as i32, w as i32, 3]);
    let inputs: Vec<(&str, &[i32])> = dims.iter().map(|d| (CONTENT_INPUT, &d[..])).collect();
    let mut net = Network::new(env, Arc::from(bytes), Accelerator::Cpu, 2, &inputs).unwrap();
    let content = net.input_index(CONTENT_INPUT).unwrap();
    net.write_input(content, |t| {
        for (i, v) in t.iter_mut().enumerate() {
            *v = (i * 7 % 256) as f32 / 255.0;
        }
    })
    .unwrap();
    let vector = net.input_index(VECTOR_INPUT).unwrap();
    net.write_input(vector, |t| {
        for (i, v) in t.iter_mut().enumerate() {
            *v = ((i % 9) as f32 - 4.0) / 2.0;
        }
    })
    .unwrap();
    net.run().unwrap();
    let out = net.output_dims(0).to_vec();
    (out, net.read_output(0, |t| t.to_vec()).unwrap())
}

/// The CPU graph has no MIRROR_PAD left and computes exactly what the plain patched
/// model computes, at the native size, a smaller and a larger one.
#[test]
fn cpu_graph_replaces_the_mirror_pads_and_gives_identical_output() {
    let emulated = std::env::var_os("STYLIZE_TEST_WRAPPER").is_some_and(|w| !w.is_empty());
    let (roles, sizes): (&[&str], &[(usize, usize)]) = if emulated {
        (&["transfer-int8"], &[(96, 128)])
    } else {
        (
            &["transfer-int8", "transfer-fp16"],
            &[(384, 384), (216, 384), (480, 640)],
        )
    };
    for role in roles {
        let bytes = std::fs::read(model(role)).unwrap();
        let plain_ops = builtin_ops(&bytes).unwrap();
        assert_eq!(plain_ops.iter().filter(|&&c| c == MIRROR_PAD).count(), 16);
        for &(h, w) in sizes {
            let cpu = transfer_for_cpu(&bytes, h, w).unwrap();
            let ops = builtin_ops(&cpu).unwrap();
            assert!(!ops.contains(&MIRROR_PAD), "{role} {h}x{w}");
            assert!(ops.contains(&SLICE) && ops.contains(&CONCATENATION));
            let (plain_dims, plain) =
                run_on_cpu(transfer_for_size(&bytes, h, w).unwrap(), Some((h, w)));
            let (dims, out) = run_on_cpu(cpu, None);
            assert_eq!(dims, [1, h as i32, w as i32, 3], "{role} {h}x{w}");
            assert_eq!(plain_dims, dims);
            let differing = plain
                .iter()
                .zip(&out)
                .filter(|(a, b)| a.to_bits() != b.to_bits())
                .count();
            assert_eq!(differing, 0, "{role} {h}x{w}: {differing} values differ");
        }
    }
}
