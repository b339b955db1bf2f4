//! Encoders and decoders at the edges: WKB for storage, GeoJSON for the API and imports.
//! Pure byte-level work on `model` types; no HTTP, no SQL.

pub mod csv;
pub mod exchange;
pub mod geojson;
pub mod gpkg;
pub mod mvt;
pub mod shapefile;
pub mod txt;
pub mod wkb;

pub use self::csv::write_csv;
pub use self::exchange::{
    crs_from_wkt, read_geojson, ExportError, ExportLayer, ImportError, ImportedLayer,
};
pub use self::gpkg::{read_geopackage, stream_geopackage, write_geopackage};
pub use self::shapefile::{
    read_shapefile_zip, stream_shapefile_zip, write_shapefile_zip, zip_shapefile_parts,
    DbfEncoding, StreamedLayers,
};
pub use self::txt::{read_boundary_txt, write_boundary_txt, TxtMeta};
