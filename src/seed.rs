//! The bundled dataset: `data/` (reference boundaries and codes) and `seeds/` (the plans),
//! embedded in the binary so a fresh database can be seeded from any working directory.

use include_dir::{include_dir, Dir};
use serde::Deserialize;

use crate::formats::geojson::{decode_feature_collection, DecodeError};
use crate::model::{Feature, GeometryType, Layer};

static DATA: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/data");
static SEEDS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/seeds");

/// One entry of `layers.json`.
#[derive(Debug, Deserialize)]
struct LayerEntry {
    id: String,
    title_zh: String,
    title_en: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    geometry_type: Option<String>,
    #[serde(default)]
    files: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("{dir}/layers.json: {reason}")]
    Manifest { dir: &'static str, reason: String },
    #[error("{dir}/{file}: missing from the bundle")]
    MissingFile { dir: &'static str, file: String },
    #[error("{dir}/{file}: {source}")]
    Decode {
        dir: &'static str,
        file: String,
        source: DecodeError,
    },
    #[error("{dir}/{file}: feature {index} of layer {layer} has no id")]
    MissingId {
        dir: &'static str,
        file: String,
        index: usize,
        layer: String,
    },
}

/// The report of plan entities that could not be placed (or not as finely as the text names
/// them), as the dataset builder wrote it: `seeds/unplaced.json`.
pub fn unplaced() -> Option<serde_json::Value> {
    SEEDS
        .get_file("unplaced.json")
        .and_then(|f| serde_json::from_slice(f.contents()).ok())
}

/// The bundled layers and their features, in manifest order.
pub fn bundled() -> Result<(Vec<Layer>, Vec<Feature>), SeedError> {
    let mut layers = Vec::new();
    let mut features = Vec::new();
    for (name, dir) in [("data", &DATA), ("seeds", &SEEDS)] {
        let Some(manifest) = dir.get_file("layers.json") else {
            continue;
        };
        let entries: Vec<LayerEntry> =
            serde_json::from_slice(manifest.contents()).map_err(|e| SeedError::Manifest {
                dir: name,
                reason: e.to_string(),
            })?;
        for entry in entries {
            for file in &entry.files {
                let f = dir.get_file(file).ok_or_else(|| SeedError::MissingFile {
                    dir: name,
                    file: file.clone(),
                })?;
                let decoded = decode_feature_collection(f.contents(), &entry.id).map_err(|e| {
                    SeedError::Decode {
                        dir: name,
                        file: file.clone(),
                        source: e,
                    }
                })?;
                for (index, (id, mut feature)) in decoded.into_iter().enumerate() {
                    // A plan file feeds several layers; each feature names its own.
                    match feature.properties.get("layer").and_then(|v| v.as_str()) {
                        Some(l) if l != entry.id => continue,
                        _ => {}
                    }
                    feature.properties.shift_remove("layer");
                    feature.id = id.ok_or_else(|| SeedError::MissingId {
                        dir: name,
                        file: file.clone(),
                        index,
                        layer: entry.id.clone(),
                    })?;
                    features.push(feature);
                }
            }
            layers.push(Layer {
                geometry_type: entry
                    .geometry_type
                    .as_deref()
                    .and_then(GeometryType::parse)
                    .unwrap_or_default(),
                id: entry.id,
                title_zh: entry.title_zh,
                title_en: entry.title_en,
                description: entry.description,
                property_schema: serde_json::Value::Null,
            });
        }
    }
    crate::monitor::lifecycle::annotate_bundled(&mut features);
    Ok((layers, features))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bundle_reads() {
        let (layers, features) = super::bundled().unwrap();
        assert!(layers.iter().any(|l| l.id == "districts"));
        assert_eq!(
            features.iter().filter(|f| f.layer == "districts").count(),
            5
        );
        assert_eq!(features.iter().filter(|f| f.layer == "towns").count(), 137);
    }
}
