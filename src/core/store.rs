//! The style store: a versioned JSON document of precomputed style vectors.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const STORE_VERSION: u32 = 1;
pub const VECTOR_LEN: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Style {
    pub id: String,
    pub name: String,
    pub vector: Vec<f32>,
    /// File name of the image the vector was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Store {
    pub version: u32,
    pub styles: Vec<Style>,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            version: STORE_VERSION,
            styles: Vec::new(),
        }
    }
}

/// Why a style store cannot be used. The Display text is the whole message, cause
/// included (the element and the D-Bus errors print Display alone), so no variant also
/// gives its cause as `source()`: a chain printer (`{:#}`) would print it twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("style store {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("style store {path} is not valid JSON: {cause}")]
    Parse {
        path: PathBuf,
        cause: serde_json::Error,
    },
    #[error("style store {path} has version {found}; this build reads version {STORE_VERSION}")]
    Version { path: PathBuf, found: u32 },
    #[error("style store {path}: style {id:?} {problem}")]
    BadStyle {
        path: PathBuf,
        id: String,
        problem: String,
    },
}

/// Whether `id` is usable as a style id: non-empty ASCII letters, digits, `-`, `_`, `.`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A style id made from a name (an image's file name without its extension): lowercase
/// ASCII letters and digits, `-` kept, every other run of characters one `_`. None when
/// nothing is left ("Water Lilies (1906)" gives `water_lilies_1906`).
pub fn id_from_name(name: &str) -> Option<String> {
    let mut id = String::with_capacity(name.len());
    for c in name.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            id.push(c);
        } else if !id.ends_with('_') {
            id.push('_');
        }
    }
    let id = id.trim_matches('_');
    (!id.is_empty()).then(|| id.to_string())
}

impl Store {
    pub fn load(path: &Path) -> Result<Store, StoreError> {
        let text = std::fs::read_to_string(path).map_err(|cause| StoreError::Io {
            path: path.to_path_buf(),
            cause,
        })?;
        Self::parse(&text, path)
    }

    /// Loads `path`, or gives an empty store when the file does not exist.
    pub fn load_or_default(path: &Path) -> Result<Store, StoreError> {
        if path.exists() {
            Self::load(path)
        } else {
            Ok(Store::default())
        }
    }

    pub fn parse(text: &str, path: &Path) -> Result<Store, StoreError> {
        let store: Store = serde_json::from_str(text).map_err(|cause| StoreError::Parse {
            path: path.to_path_buf(),
            cause,
        })?;
        if store.version != STORE_VERSION {
            return Err(StoreError::Version {
                path: path.to_path_buf(),
                found: store.version,
            });
        }
        let bad = |id: &str, problem: String| StoreError::BadStyle {
            path: path.to_path_buf(),
            id: id.to_string(),
            problem,
        };
        let mut ids = std::collections::HashSet::new();
        for style in &store.styles {
            if !valid_id(&style.id) {
                return Err(bad(&style.id, "has an invalid id".into()));
            }
            if !ids.insert(style.id.as_str()) {
                return Err(bad(&style.id, "appears twice".into()));
            }
            if style.vector.len() != VECTOR_LEN {
                return Err(bad(
                    &style.id,
                    format!("has {} values, not {VECTOR_LEN}", style.vector.len()),
                ));
            }
            if style.vector.iter().any(|v| !v.is_finite()) {
                return Err(bad(&style.id, "has a non-finite value".into()));
            }
        }
        Ok(store)
    }

    /// Writes the store next to `path` and renames it into place, so a reader never sees
    /// a half-written file.
    pub fn save(&self, path: &Path) -> Result<(), StoreError> {
        let io = |cause| StoreError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".styles.")
            .suffix(".json.tmp")
            .tempfile_in(dir)
            .map_err(io)?;
        let text = serde_json::to_string_pretty(self).map_err(|e| io(e.into()))?;
        tmp.write_all(text.as_bytes()).map_err(io)?;
        tmp.write_all(b"\n").map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(path).map_err(|e| io(e.error))?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Option<&Style> {
        self.styles.iter().find(|s| s.id == id)
    }

    pub fn ids(&self) -> Vec<&str> {
        self.styles.iter().map(|s| s.id.as_str()).collect()
    }

    /// Adds `style`, replacing any style with the same id in place.
    pub fn upsert(&mut self, style: Style) {
        match self.styles.iter_mut().find(|s| s.id == style.id) {
            Some(existing) => *existing = style,
            None => self.styles.push(style),
        }
    }

    pub fn remove(&mut self, id: &str) -> bool {
        let before = self.styles.len();
        self.styles.retain(|s| s.id != id);
        self.styles.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn style(id: &str, v: f32) -> Style {
        Style {
            id: id.into(),
            name: id.into(),
            vector: vec![v; VECTOR_LEN],
            source: None,
            source_sha256: None,
            model_sha256: None,
            thumbnail: None,
        }
    }

    #[test]
    fn round_trip_upsert_remove() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let mut store = Store::default();
        store.upsert(style("a", 1.0));
        store.upsert(style("b", 2.0));
        store.upsert(style("a", 3.0));
        assert_eq!(store.ids(), ["a", "b"]);
        assert_eq!(store.get("a").unwrap().vector[0], 3.0);
        store.save(&path).unwrap();
        let mut back = Store::load(&path).unwrap();
        assert_eq!(back, store);
        assert!(back.remove("a"));
        assert!(!back.remove("a"));
        assert_eq!(back.ids(), ["b"]);
    }

    #[test]
    fn rejects_bad_documents() {
        let p = Path::new("x.json");
        assert!(matches!(
            Store::parse("{", p),
            Err(StoreError::Parse { .. })
        ));
        assert!(matches!(
            Store::parse(r#"{"version":2,"styles":[]}"#, p),
            Err(StoreError::Version { found: 2, .. })
        ));
        let short = r#"{"version":1,"styles":[{"id":"a","name":"A","vector":[1,2]}]}"#;
        assert!(matches!(
            Store::parse(short, p),
            Err(StoreError::BadStyle { .. })
        ));
        assert!(!valid_id("../x"));
        assert_eq!(
            id_from_name("Water Lilies (1906)").as_deref(),
            Some("water_lilies_1906")
        );
        assert_eq!(id_from_name("  Der Kuss ").as_deref(), Some("der_kuss"));
        assert_eq!(
            id_from_name("great-wave.v2").as_deref(),
            Some("great-wave_v2")
        );
        assert_eq!(id_from_name("Café").as_deref(), Some("caf"));
        assert_eq!(id_from_name("!!!"), None);
        for name in ["a b", "Ünïcödé x", "x/../y", "tab\tname"] {
            assert!(id_from_name(name).is_none_or(|id| valid_id(&id)), "{name}");
        }
        assert!(valid_id("monet_2"));
    }

    /// An error's text carries its cause once, and `source()` does not repeat it, so
    /// `{:#}` (anyhow's chain) prints it once too.
    #[test]
    fn an_io_error_names_the_file_and_its_cause_once() {
        let e = Store::load(Path::new("/nonexistent/styles.json")).unwrap_err();
        let text = e.to_string();
        assert_eq!(
            text.matches("No such file or directory").count(),
            1,
            "{text}"
        );
        assert!(
            text.starts_with("style store /nonexistent/styles.json: "),
            "{text}"
        );
        assert!(std::error::Error::source(&e).is_none());
        let e = Store::parse("{", Path::new("s.json")).unwrap_err();
        assert!(std::error::Error::source(&e).is_none());
        assert!(e.to_string().contains("EOF while parsing"), "{e}");
    }

    /// Mutation test of the store parser: the project's own store and a two-style copy
    /// of it, with bytes flipped and replaced, JSON tokens inserted, ranges removed or
    /// repeated, and cuts. Whatever the text, `parse` gives a store that holds what a
    /// store promises, or a `StoreError` naming the file; never a panic or a huge
    /// allocation.
    mod mutations {
        use super::*;
        use crate::tflite::mutation_tests::largest_allocation;
        use proptest::prelude::*;
        use proptest::test_runner::{Config as ProptestConfig, TestRunner};
        use std::cell::Cell;
        use std::time::{Duration, Instant};

        /// 20000 take under a second on two busy cores (the count is printed).
        const CASES: u32 = 20_000;
        const MAX_CASE_TIME: Duration = Duration::from_secs(2);
        const REAL_STORE: &str = include_str!("../../models/styles.json");

        /// Pieces of JSON that change a document's shape or push a value to its limits.
        const TOKENS: &[&str] = &[
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            "\"",
            "\\",
            "\\u0000",
            "\\ud800",
            "null",
            "true",
            "-",
            "1e999",
            "-1e999",
            "NaN",
            "1e-999",
            "18446744073709551616",
            "-0",
            "\"version\":",
            "\"styles\":",
            "\"id\":",
            "\"vector\":",
            "[[[[[[[[[[[[[[[[",
            "\u{feff}",
            "\u{0}",
            "é",
            "\"\"",
            "{}",
            "[]",
        ];

        #[derive(Clone, Debug)]
        enum Mutation {
            FlipBit(usize, u8),
            SetByte(usize, u8),
            Insert(usize, usize),
            Remove(usize, u16),
            Repeat(usize, u16, u8),
            Truncate(usize),
        }

        fn mutation() -> impl Strategy<Value = Mutation> {
            prop_oneof![
                1 => (any::<usize>(), 0u8..8).prop_map(|(a, b)| Mutation::FlipBit(a, b)),
                1 => (any::<usize>(), any::<u8>()).prop_map(|(a, v)| Mutation::SetByte(a, v)),
                3 => (any::<usize>(), 0..TOKENS.len()).prop_map(|(a, t)| Mutation::Insert(a, t)),
                1 => (any::<usize>(), 1u16..200).prop_map(|(a, n)| Mutation::Remove(a, n)),
                1 => (any::<usize>(), 1u16..200, 1u8..4)
                    .prop_map(|(a, n, k)| Mutation::Repeat(a, n, k)),
                1 => any::<usize>().prop_map(Mutation::Truncate),
            ]
        }

        fn apply(text: &str, mutations: &[Mutation]) -> Vec<u8> {
            let mut b = text.as_bytes().to_vec();
            for m in mutations {
                let len = b.len();
                let at = |i: usize| i % (len + 1);
                match *m {
                    Mutation::FlipBit(i, bit) if len > 0 => b[i % len] ^= 1 << bit,
                    Mutation::SetByte(i, v) if len > 0 => b[i % len] = v,
                    Mutation::Insert(i, t) => {
                        b.splice(at(i)..at(i), TOKENS[t].bytes());
                    }
                    Mutation::Remove(i, n) => {
                        let i = at(i);
                        b.drain(i..(i + n as usize).min(len));
                    }
                    Mutation::Repeat(i, n, k) => {
                        let i = at(i);
                        let piece = b[i..(i + n as usize).min(len)].to_vec();
                        for _ in 0..k {
                            b.splice(i..i, piece.iter().copied());
                        }
                    }
                    Mutation::Truncate(n) => b.truncate(n % (len + 1)),
                    _ => {}
                }
            }
            b
        }

        /// The real store with only its first two styles, so that mutations land on the
        /// structure more often than in a hundred numbers.
        fn small_store() -> String {
            let mut store = Store::parse(REAL_STORE, Path::new("styles.json")).unwrap();
            store.styles.truncate(2);
            serde_json::to_string_pretty(&store).unwrap()
        }

        #[test]
        fn mutated_stores_give_a_valid_store_or_an_error_naming_the_file() {
            let texts = [REAL_STORE.to_string(), small_store()];
            let path = Path::new("/etc/stylize/mutated.json");
            let config = ProptestConfig {
                cases: CASES,
                failure_persistence: None,
                ..ProptestConfig::default()
            };
            let (cases, parsed) = (Cell::new(0u32), Cell::new(0u32));
            let started = Instant::now();
            let result = TestRunner::new(config).run(
                &(0..texts.len(), prop::collection::vec(mutation(), 1..6)),
                |(text, mutations)| {
                    cases.set(cases.get() + 1);
                    let bytes = apply(&texts[text], &mutations);
                    // A file that is not UTF-8 fails in `load`; the rest goes to `parse`.
                    let text = String::from_utf8_lossy(&bytes);
                    let start = Instant::now();
                    let (result, largest) = largest_allocation(|| Store::parse(&text, path));
                    prop_assert!(start.elapsed() < MAX_CASE_TIME, "{:?}", start.elapsed());
                    prop_assert!(largest <= 16 * text.len() + (1 << 20), "{largest} bytes");
                    match result {
                        Ok(store) => {
                            parsed.set(parsed.get() + 1);
                            for (i, s) in store.styles.iter().enumerate() {
                                prop_assert!(valid_id(&s.id));
                                prop_assert!(s.vector.len() == VECTOR_LEN);
                                prop_assert!(s.vector.iter().all(|v| v.is_finite()));
                                prop_assert!(store.styles[..i].iter().all(|o| o.id != s.id));
                            }
                        }
                        Err(e) => {
                            let message = e.to_string();
                            prop_assert!(
                                message.contains("/etc/stylize/mutated.json"),
                                "{message}"
                            );
                        }
                    }
                    Ok(())
                },
            );
            if let Err(e) = result {
                panic!("{e}");
            }
            eprintln!(
                "style store mutation cases: {} in {:.1?} ({} still valid stores)",
                cases.get(),
                started.elapsed(),
                parsed.get()
            );
            assert_eq!(cases.get(), CASES);
        }
    }
}
