//! The flatbuffer patch that gives the transfer network other inference sizes.

mod common;

use common::*;
use stylize::tflite::{inspect_transfer, transfer_for_size, ModelError, ResizeConstant};

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
    assert!(matches!(
        transfer_for_size(&bytes, 290, 384),
        Err(ModelError::BadSize { .. })
    ));
    // The prediction network has no decoder resizes and a 256x256 input.
    let prediction = std::fs::read(model("prediction-int8")).unwrap();
    assert!(matches!(
        transfer_for_size(&prediction, 288, 384),
        Err(ModelError::ResizeOps(0))
    ));
    for cut in [0, 3, 16, 1000, bytes.len() / 2] {
        assert!(
            inspect_transfer(&bytes[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    let mut scrambled = bytes.clone();
    for b in scrambled.iter_mut().take(64) {
        *b = 0xff;
    }
    assert!(inspect_transfer(&scrambled).is_err());
}
