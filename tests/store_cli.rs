//! `stylize-store`: vectors computed like the reference, safe writes, clear errors.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use stylize::store::Store;

fn store_cli(args: &[&str]) -> Output {
    our_binary(env!("CARGO_BIN_EXE_stylize-store"))
        .args(args)
        .output()
        .expect("stylize-store runs")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn reference_vector(image: &Path) -> Vec<f32> {
    let predict = model("prediction-int8");
    let out = reference(&[
        "vector",
        "--predict",
        path(&predict),
        "--image",
        path(image),
    ]);
    serde_json::from_str(out.trim()).expect("a JSON list")
}

#[test]
fn add_list_replace_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("sub/styles.json");
    let monet = shared().join("styles/monet.png");
    let out = store_cli(&[
        "add",
        "--store",
        path(&store),
        "--id",
        "m",
        "--name",
        "Monet",
        path(&monet),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = Store::load(&store).unwrap();
    assert_eq!(first.ids(), ["m"]);
    assert_eq!(first.get("m").unwrap().name, "Monet");

    // Same id again: replaced in place, not duplicated.
    let wave = shared().join("styles/great_wave.jpg");
    assert!(
        store_cli(&["add", "--store", path(&store), "--id", "m", path(&wave)])
            .status
            .success()
    );
    let second = Store::load(&store).unwrap();
    assert_eq!(second.ids(), ["m"]);
    assert_ne!(
        second.get("m").unwrap().vector,
        first.get("m").unwrap().vector
    );

    let listed = store_cli(&["list", "--store", path(&store)]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains('m'));

    let out = store_cli(&["remove", "--store", path(&store), "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known styles: m"));
    assert!(store_cli(&["remove", "--store", path(&store), "m"])
        .status
        .success());
    assert!(Store::load(&store).unwrap().styles.is_empty());
}

#[test]
fn add_a_folder_takes_ids_from_file_names() {
    let images = tempfile::tempdir().unwrap();
    for f in ["udnie.jpg", "klimt.png"] {
        std::fs::copy(shared().join("styles").join(f), images.path().join(f)).unwrap();
    }
    std::fs::write(images.path().join("notes.txt"), "not an image").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("styles.json");
    let out = store_cli(&["add", "--store", path(&store), path(images.path())]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(Store::load(&store).unwrap().ids(), ["klimt", "udnie"]);
}

/// A folder is a batch: names become slug ids, and a broken image is reported and
/// skipped while the others are added; the exit status says something was skipped.
#[test]
fn a_folder_batch_slugs_names_and_skips_a_broken_image() {
    let images = tempfile::tempdir().unwrap();
    std::fs::copy(
        shared().join("styles/udnie.jpg"),
        images.path().join("Water Lilies.jpg"),
    )
    .unwrap();
    std::fs::copy(
        shared().join("styles/klimt.png"),
        images.path().join("Der Kuss (1908).PNG"),
    )
    .unwrap();
    let bytes = std::fs::read(shared().join("styles/udnie.jpg")).unwrap();
    std::fs::write(images.path().join("broken.jpg"), &bytes[..bytes.len() / 3]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("styles.json");
    let out = store_cli(&["add", "--store", path(&store), path(images.path())]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a skipped image is a failure: {stderr}"
    );
    assert!(stderr.contains("broken.jpg"), "{stderr}");
    let saved = Store::load(&store).unwrap();
    assert_eq!(saved.ids(), ["der_kuss_1908", "water_lilies"]);
    assert_eq!(saved.get("water_lilies").unwrap().name, "Water Lilies");
}

#[test]
fn a_broken_image_names_the_file_and_leaves_the_store_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("styles.json");
    let good = shared().join("styles/udnie.jpg");
    assert!(store_cli(&["add", "--store", path(&store), path(&good)])
        .status
        .success());
    let before = std::fs::read(&store).unwrap();

    let broken = dir.path().join("broken.jpg");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&broken, &bytes[..bytes.len() / 3]).unwrap();
    let out = store_cli(&["add", "--store", path(&store), path(&broken)]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("broken.jpg"));

    let out = store_cli(&[
        "add",
        "--store",
        path(&store),
        path(&dir.path().join("absent.png")),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("absent.png"));

    assert_eq!(std::fs::read(&store).unwrap(), before, "store changed");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}

/// The shipped store's vectors match `reference.py vector` (cosine >= 0.999).
#[test]
fn default_store_vectors_match_the_reference() {
    let store = default_store();
    assert!(store.get("monet").is_some());
    for style in &store.styles {
        let source = style.source.as_deref().expect("source recorded");
        let reference = reference_vector(&shared().join("styles").join(source));
        let c = cosine(&style.vector, &reference);
        println!("cosine {:<22} {c:.6}", style.id);
        assert!(c >= 0.999, "{}: cosine {c}", style.id);
    }
}
