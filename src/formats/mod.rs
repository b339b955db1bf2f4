//! Encoders and decoders at the edges: WKB for storage, GeoJSON for the API and imports.
//! Pure byte-level work on `model` types; no HTTP, no SQL.

pub mod geojson;
pub mod mvt;
pub mod wkb;
