//! The fetch step: mirror copies, hash and size checks, clear failures.

mod common;

use common::*;
use stylize::models::{self, FetchError, FetchOutcome};

#[test]
fn manifest_matches_the_mirror() {
    let manifest = models::manifest().unwrap();
    assert_eq!(manifest.models.len(), 3);
    for m in &manifest.models {
        assert!(m
            .url
            .starts_with("https://storage.googleapis.com/download.tensorflow.org/models/tflite/"));
        models::verify(m, &shared().join("models").join(&m.file)).unwrap();
    }
}

#[test]
fn fetch_copies_from_a_mirror_and_refuses_bad_copies() {
    let manifest = models::manifest().unwrap();
    let entry = manifest.by_role("transfer-int8").unwrap();
    let dest = tempfile::tempdir().unwrap();
    let mirror = shared().join("models");
    assert_eq!(
        models::fetch(entry, dest.path(), Some(&mirror)).unwrap(),
        FetchOutcome::Copied
    );
    assert_eq!(
        models::fetch(entry, dest.path(), Some(&mirror)).unwrap(),
        FetchOutcome::AlreadyPresent
    );

    let bad_mirror = tempfile::tempdir().unwrap();
    let good = std::fs::read(mirror.join(&entry.file)).unwrap();
    let fresh = tempfile::tempdir().unwrap();

    std::fs::write(
        bad_mirror.path().join(&entry.file),
        &good[..good.len() - 100],
    )
    .unwrap();
    let err = models::fetch(entry, fresh.path(), Some(bad_mirror.path())).unwrap_err();
    assert!(matches!(err, FetchError::Size { .. }), "{err}");
    assert!(err.to_string().contains("truncated"), "{err}");

    let mut flipped = good.clone();
    flipped[1000] ^= 1;
    std::fs::write(bad_mirror.path().join(&entry.file), &flipped).unwrap();
    let err = models::fetch(entry, fresh.path(), Some(bad_mirror.path())).unwrap_err();
    assert!(matches!(err, FetchError::Hash { .. }), "{err}");
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    assert!(
        !fresh.path().join(&entry.file).exists(),
        "no bad file left behind"
    );

    let empty = tempfile::tempdir().unwrap();
    let err = models::fetch(entry, fresh.path(), Some(empty.path())).unwrap_err();
    assert!(matches!(err, FetchError::NotInMirror { .. }), "{err}");
}

#[test]
fn fetch_command_fails_clearly_on_a_mismatch() {
    let bad_mirror = tempfile::tempdir().unwrap();
    for m in models::manifest().unwrap().models {
        std::fs::write(bad_mirror.path().join(&m.file), b"wrong bytes").unwrap();
    }
    let dest = tempfile::tempdir().unwrap();
    let out = our_binary(env!("CARGO_BIN_EXE_stylize-models"))
        .args(["fetch", "--mirror"])
        .arg(bad_mirror.path())
        .arg("--dest")
        .arg(dest.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("truncated or wrong file"), "{stderr}");

    let out = our_binary(env!("CARGO_BIN_EXE_stylize-models"))
        .args(["fetch", "--mirror"])
        .arg(shared().join("models"))
        .arg("--dest")
        .arg(dest.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = our_binary(env!("CARGO_BIN_EXE_stylize-models"))
        .args(["verify", "--dest"])
        .arg(dest.path())
        .output()
        .unwrap();
    assert!(out.status.success());
}
