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

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("style store {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("style store {path} is not valid JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
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
        let text = std::fs::read_to_string(path).map_err(|source| StoreError::Io {
            path: path.to_path_buf(),
            source,
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
        let store: Store = serde_json::from_str(text).map_err(|source| StoreError::Parse {
            path: path.to_path_buf(),
            source,
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
        for (i, style) in store.styles.iter().enumerate() {
            if !valid_id(&style.id) {
                return Err(bad(&style.id, "has an invalid id".into()));
            }
            if store.styles[..i].iter().any(|s| s.id == style.id) {
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
        let io = |source| StoreError::Io {
            path: path.to_path_buf(),
            source,
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
}
