//! Our FFI declarations against the real `libLiteRt.so` from ai-edge-litert 2.3.0.

mod common;

use std::mem::{offset_of, size_of};
use std::sync::Arc;

use common::*;
use stylize::litert::{ffi, Environment, LiteRtError, Network, Runtime};
use stylize::Accelerator;

#[test]
fn struct_layouts_match_the_c_headers() {
    assert_eq!(size_of::<ffi::Layout>(), 68);
    assert_eq!(size_of::<ffi::RankedTensorType>(), 72);
    assert_eq!(offset_of!(ffi::RankedTensorType, layout), 4);
    assert_eq!(size_of::<ffi::EnvOption>(), 24);
    assert_eq!(offset_of!(ffi::EnvOption, value), 8);
    assert_eq!(size_of::<ffi::ParamIndex>(), size_of::<usize>());
    assert_eq!(ffi::Layout::new(&[1, 2, 3]).rank(), 3);
}

#[test]
fn the_pinned_library_exports_every_symbol_we_declare() {
    let rt = Runtime::load(None).expect("libLiteRt.so loads (run scripts/setup.sh)");
    assert!(
        rt.path().starts_with(root().join("third_party")),
        "{} is not the project's LiteRT",
        rt.path().display()
    );
    let pinned = rt.dir().unwrap().join("WHEEL_SHA256");
    assert!(pinned.exists(), "the project's LiteRT install is missing");
    let exports = std::process::Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(rt.path())
        .output()
        .expect("nm runs");
    let exports = String::from_utf8_lossy(&exports.stdout);
    for symbol in ffi::Api::SYMBOLS {
        assert!(
            exports
                .lines()
                .any(|l| l.split_whitespace().last().map(|s| s.split('@').next())
                    == Some(Some(symbol))),
            "{symbol} is not exported"
        );
    }
}

fn transfer_network(dims: Option<(usize, usize)>) -> Network {
    let rt = Runtime::shared(None).unwrap();
    let env = Environment::cpu_only(rt).unwrap();
    let bytes = std::fs::read(model("transfer-int8")).unwrap();
    match dims {
        None => Network::new(env, Arc::from(bytes), Accelerator::Cpu, 2, &[]).unwrap(),
        Some((h, w)) => {
            let patched = stylize::tflite::transfer_for_size(&bytes, h, w).unwrap();
            let d = [1, h as i32, w as i32, 3];
            Network::new(
                env,
                Arc::from(patched),
                Accelerator::Cpu,
                2,
                &[("content_image", &d)],
            )
            .unwrap()
        }
    }
}

/// Signature queries return the documented shapes, which only works when the index
/// type, the tensor type struct and the layout bit-fields are declared right.
#[test]
fn signature_calls_return_the_documented_shapes() {
    let net = transfer_network(None);
    let content = net.input_index("content_image").unwrap();
    let vector = net.input_index("mobilenet_conv/Conv/BiasAdd").unwrap();
    assert_eq!(net.input_dims(content), [1, 384, 384, 3]);
    assert_eq!(net.input_dims(vector), [1, 1, 1, 100]);
    let out = net
        .output_index("transformer/expand/conv3/conv/Sigmoid")
        .unwrap();
    assert_eq!(net.output_dims(out), [1, 384, 384, 3]);
    assert!(matches!(
        net.input_index("nope"),
        Err(LiteRtError::NoSuchTensor(_))
    ));
}

/// Resize, output layouts, buffers, lock, run: a patched 288x384 network gives a
/// 288x384 output in [0, 1].
#[test]
fn resized_network_runs_and_gives_the_new_size() {
    let mut net = transfer_network(Some((288, 384)));
    assert_eq!(net.output_dims(0), [1, 288, 384, 3]);
    let content = net.input_index("content_image").unwrap();
    let vector = net.input_index("mobilenet_conv/Conv/BiasAdd").unwrap();
    net.write_input(content, |t| {
        assert_eq!(t.len(), 288 * 384 * 3);
        for (i, v) in t.iter_mut().enumerate() {
            *v = (i % 255) as f32 / 255.0;
        }
    })
    .unwrap();
    let style = default_store().get("monet").unwrap().vector.clone();
    net.write_input(vector, |t| t.copy_from_slice(&style))
        .unwrap();
    net.run().unwrap();
    let (lo, hi) = net
        .read_output(0, |t| {
            assert_eq!(t.len(), 288 * 384 * 3);
            t.iter()
                .fold((f32::MAX, f32::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)))
        })
        .unwrap();
    assert!(lo >= 0.0 && hi <= 1.0 && hi > lo, "output range {lo}..{hi}");
}

#[test]
fn a_missing_or_broken_library_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = Runtime::load(Some(&dir.path().join("nowhere/libLiteRt.so"))).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("nowhere") && msg.contains("scripts/setup-litert.sh"),
        "{msg}"
    );

    let fake = dir.path().join("libLiteRt.so");
    std::fs::write(&fake, b"not an ELF file").unwrap();
    let msg = Runtime::load(Some(dir.path())).unwrap_err().to_string();
    assert!(
        msg.contains("could not be loaded") && msg.contains(&*fake.to_string_lossy()),
        "{msg}"
    );

    // A real shared library without the LiteRT symbols. It is copied first: under
    // qemu-user the sysroot's files can be opened but not stat'ed by their system path.
    let libm = format!("/lib/{}-linux-gnu/libm.so.6", std::env::consts::ARCH);
    let copy = dir.path().join("libm-copy.so");
    std::fs::copy(&libm, &copy).unwrap_or_else(|e| panic!("{libm}: {e}"));
    let msg = Runtime::load(Some(&copy))
        .map(|_| String::new())
        .unwrap_or_else(|e| e.to_string());
    assert!(
        msg.contains("missing symbol LiteRtCreateEnvironment"),
        "{libm}: {msg}"
    );
}
