//! What the file exports and imports (CSV, Shapefile, GeoPackage, the ministry's TXT) share:
//! the layer handed to an exporter, the errors, the imported layer, the analysis of property
//! columns, and recognising a CRS from a `.prj` / GeoPackage WKT.
//!
//! # Lossy cases, shared by every tabular format
//! - A property missing from a feature and a property that is `null` are the same thing in a
//!   table: after an import both read back as `null` (present with a null value).
//! - A property whose values mix kinds (say strings in some features, numbers in others) is
//!   written as a text column; the non-string values come back as their JSON text.
//! - A property that mixes integers and decimals is a real (double) column: the integers come
//!   back as the same numbers, but as JSON floats (`5.0`, equal to `5` by value).

use std::fmt;
use std::sync::Arc;

use geo::{Coord, Geometry, LineString, MultiPolygon, Polygon};
use serde_json::Value;

use crate::formats::geojson::{FeatureProblem, MAX_LISTED_PROBLEMS};
use crate::geom::crs::{geometry_to_lonlat, Crs};
use crate::geom::validate_geometry;
use crate::model::{Feature, Layer, Properties};

/// One layer handed to an exporter: the layer's description and the features to write
/// (stored CGCS2000 lon/lat).
#[derive(Debug, Clone)]
pub struct ExportLayer<'a> {
    pub layer: &'a Layer,
    pub features: Vec<Arc<Feature>>,
}

/// Why an export could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The requested CRS cannot be described in the file (GCJ-02/BD-09 have no WKT/EPSG code).
    #[error("{format} files cannot be written in {crs}: it has no EPSG code or WKT definition that GIS software understands; export in EPSG:4490 or a CGCS2000 Gauss-Krüger zone (EPSG:4513–4554) instead")]
    UnsupportedCrs { crs: String, format: &'static str },
    /// A parameter of the export is out of range (e.g. a Gauss-Krüger zone outside 25–45).
    #[error("{0}")]
    Parameter(String),
    /// Some features could not be written (a coordinate outside the output CRS, a geometry the
    /// format cannot hold …). Lists the first [`MAX_LISTED_PROBLEMS`].
    #[error("{problems_total} feature(s) cannot be exported: {}", list_problems(.problems, *.problems_total))]
    Features {
        problems: Vec<FeatureProblem>,
        problems_total: usize,
    },
    /// Writing the file itself failed (disk, SQLite, zip).
    #[error("writing the {format} file failed: {reason}")]
    Io {
        format: &'static str,
        reason: String,
    },
}

/// A layer read from a file: features already in stored CGCS2000 lon/lat, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedLayer {
    /// The layer's name in the file (Shapefile name, GeoPackage table); for a Shapefile that
    /// yizhangtu exported, the original layer id (mixed layers are merged back into one).
    pub name: String,
    /// `id` from the file's `id`/`fid` column when its values are present and unique,
    /// otherwise numbered from 1 in file order.
    pub features: Vec<Feature>,
}

/// Why an import was refused. Nothing is imported when any of this happens.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file does not say its CRS, and none was given with the import.
    #[error("{file} does not say which coordinate system its coordinates are in (no .prj file / no spatial reference); give the coordinate system with the import, e.g. crs=EPSG:4545 for CGCS2000 Gauss-Krüger CM 108E")]
    NoCrs { file: String },
    /// The file's CRS definition is not one yizhangtu can transform from.
    #[error("the coordinate system of {file} is not supported ({reason}); yizhangtu reads CGCS2000 or WGS 84 longitude/latitude, CGCS2000 3-degree Gauss-Krüger zones 25–45 (EPSG:4513–4554) and Web Mercator; give the coordinate system with the import if you know it. The file's definition begins: {wkt_excerpt}")]
    UnknownCrs {
        file: String,
        wkt_excerpt: String,
        reason: String,
    },
    /// Some features are unusable (geometry invalid or outside the CRS); lists the first
    /// [`MAX_LISTED_PROBLEMS`] and counts all.
    #[error("{problems_total} of {total} features cannot be imported: {}", list_problems(.problems, *.problems_total))]
    Features {
        problems: Vec<FeatureProblem>,
        total: usize,
        problems_total: usize,
    },
    /// A file belonging to a Shapefile is missing from the zip.
    #[error("{file} lacks its {part} file (a Shapefile is .shp, .shx and .dbf together, ideally with .prj and .cpg)")]
    MissingPart { file: String, part: &'static str },
    /// The upload holds no layer at all.
    #[error("{0}")]
    Empty(String),
    /// Not a file of the expected format, or damaged.
    #[error("the file cannot be read, it is damaged or not of the expected kind: {0}")]
    Corrupt(String),
    /// The upload would unpack to more than the stated limits (a zip bomb, or simply too big).
    #[error("{0}")]
    TooLarge(String),
    /// The consumer of a streamed read stopped taking features (the store failed; its error is
    /// the one to report).
    #[error("the import was stopped before the file was read")]
    Cancelled,
}

/// `feature 3 (id 17): …; feature 9: …` and `… and N more`.
pub(crate) fn list_problems(problems: &[FeatureProblem], total: usize) -> String {
    let mut s = problems
        .iter()
        .map(|p| match &p.id {
            Some(id) => format!("feature {} (id {id}): {}", p.index + 1, p.problem),
            None => format!("feature {}: {}", p.index + 1, p.problem),
        })
        .collect::<Vec<_>>()
        .join("; ");
    if total > problems.len() {
        s.push_str(&format!("; and {} more", total - problems.len()));
    }
    s
}

/// Collects feature problems, keeping the first [`MAX_LISTED_PROBLEMS`] and counting the rest.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub list: Vec<FeatureProblem>,
    pub total: usize,
}

impl Problems {
    pub fn push(&mut self, index: usize, id: Option<String>, problem: String) {
        self.total += 1;
        if self.list.len() < MAX_LISTED_PROBLEMS {
            self.list.push(FeatureProblem { index, id, problem });
        }
    }

    pub fn export_result(self) -> Result<(), ExportError> {
        if self.total == 0 {
            Ok(())
        } else {
            Err(ExportError::Features {
                problems: self.list,
                problems_total: self.total,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Property columns
// ---------------------------------------------------------------------------------------------

/// The kind of a property column, decided from every value in the layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ColumnKind {
    /// Every non-null value is an integer that fits i64.
    Integer,
    /// Numbers, at least one not an i64.
    Real,
    Bool,
    Text,
    /// Arrays / objects (written as JSON text).
    Json,
    /// Values of different kinds: written as text (lossy, see the module docs).
    Mixed,
    /// Only nulls: written as text, all empty.
    Null,
}

impl ColumnKind {
    fn of(v: &Value) -> ColumnKind {
        match v {
            Value::Null => ColumnKind::Null,
            Value::Bool(_) => ColumnKind::Bool,
            Value::Number(n) if n.as_i64().is_some() => ColumnKind::Integer,
            Value::Number(_) => ColumnKind::Real,
            Value::String(_) => ColumnKind::Text,
            Value::Array(_) | Value::Object(_) => ColumnKind::Json,
        }
    }

    fn merge(self, other: ColumnKind) -> ColumnKind {
        use ColumnKind::*;
        match (self, other) {
            (Null, k) | (k, Null) => k,
            (a, b) if a == b => a,
            (Integer, Real) | (Real, Integer) => Real,
            _ => Mixed,
        }
    }

    /// Name used in the Shapefile mapping file.
    pub fn label(self) -> &'static str {
        match self {
            ColumnKind::Integer => "integer",
            ColumnKind::Real => "real",
            ColumnKind::Bool => "boolean",
            ColumnKind::Text | ColumnKind::Mixed | ColumnKind::Null => "text",
            ColumnKind::Json => "json",
        }
    }
}

/// A property key and the kind of its column.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub key: String,
    pub kind: ColumnKind,
}

/// The union of the features' property keys (first-seen order, `name`/`admin_code` excluded:
/// they are fields of [`Feature`]) with each column's kind.
pub(crate) fn property_columns<'a>(features: impl IntoIterator<Item = &'a Feature>) -> Vec<Column> {
    let mut cols: indexmap_lite::OrderedMap = Default::default();
    for f in features {
        for (k, v) in &f.properties {
            cols.merge(k, ColumnKind::of(v));
        }
    }
    cols.into_columns()
}

/// A tiny insertion-ordered map (avoids a direct indexmap dependency).
mod indexmap_lite {
    use super::{Column, ColumnKind};
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct OrderedMap {
        index: HashMap<String, usize>,
        cols: Vec<Column>,
    }

    impl OrderedMap {
        pub fn merge(&mut self, key: &str, kind: ColumnKind) {
            match self.index.get(key) {
                Some(&i) => self.cols[i].kind = self.cols[i].kind.merge(kind),
                None => {
                    self.index.insert(key.to_string(), self.cols.len());
                    self.cols.push(Column {
                        key: key.to_string(),
                        kind,
                    });
                }
            }
        }

        pub fn into_columns(self) -> Vec<Column> {
            self.cols
        }
    }
}

/// The text written for a value in a text column: strings as they are, other values as JSON;
/// `None` for null.
pub(crate) fn value_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A float as the shortest text that reads back to the same f64, without exponent where
/// that stays short (`0.0000001` rather than `1e-7`), so every reader parses it.
pub(crate) fn float_text(f: f64) -> String {
    let plain = format!("{f}");
    if plain.len() <= 32 {
        plain
    } else {
        let mut b = ryu::Buffer::new();
        b.format(f).to_string()
    }
}

/// JSON number for an f64, `null` for NaN/infinite.
pub(crate) fn json_f64(f: f64) -> Value {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

/// Property values as they come back from a typed column declared as `kind`.
pub(crate) fn typed_from_text(text: &str, kind: &str) -> Value {
    match kind {
        "json" => serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())),
        _ => Value::String(text.to_string()),
    }
}

// ---------------------------------------------------------------------------------------------
// Import: assembling features
// ---------------------------------------------------------------------------------------------

/// One record read from a file, before transformation and validation.
#[derive(Debug)]
pub(crate) struct RawFeature {
    /// Candidate id from an `id`/`fid` column.
    pub id: Option<String>,
    pub properties: Properties,
    /// Geometry in the file's CRS (math order), or why it could not be read.
    pub geometry: Result<Option<Geometry<f64>>, String>,
}

/// Transforms, validates and numbers one layer's records; problems are added to `problems`
/// (prefixed with the layer name when `label_layer`).
pub(crate) fn assemble_layer(
    name: &str,
    raw: Vec<RawFeature>,
    crs: &Crs,
    use_ids: bool,
    problems: &mut Problems,
    label_layer: bool,
) -> ImportedLayer {
    let prefix = if label_layer {
        format!("layer {name}: ")
    } else {
        String::new()
    };
    let features = raw
        .into_iter()
        .enumerate()
        .filter_map(|(index, r)| assemble_feature(name, index, r, crs, use_ids, problems, &prefix))
        .collect();
    ImportedLayer {
        name: name.to_string(),
        features,
    }
}

/// Transforms, validates and numbers record `index` (from 0) of layer `name`: the feature, or
/// `None` with the problem added to `problems` (prefixed with `prefix`). The id is the record's
/// own when `use_ids`, else `index + 1`.
pub(crate) fn assemble_feature(
    name: &str,
    index: usize,
    r: RawFeature,
    crs: &Crs,
    use_ids: bool,
    problems: &mut Problems,
    prefix: &str,
) -> Option<Feature> {
    let id = match r.id {
        Some(id) if use_ids => id,
        _ => (index + 1).to_string(),
    };
    let geometry = match r
        .geometry
        .and_then(|g| g.map(|g| to_stored(crs, &g)).transpose())
    {
        Ok(g) => g,
        Err(e) => {
            problems.push(index, Some(id), format!("{prefix}{e}"));
            return None;
        }
    };
    Some(Feature::from_parts(name, id, r.properties, geometry))
}

/// Whether the ids of a layer's records can be its features' ids, checked as records stream by
/// (see [`ids_usable`]): keeps a 128-bit hash of each id, 16 bytes a record, and nothing once an
/// id is missing or repeated.
#[derive(Debug)]
pub(crate) struct IdCheck {
    seen: std::collections::HashSet<u128>,
    usable: bool,
}

impl Default for IdCheck {
    fn default() -> IdCheck {
        IdCheck {
            seen: Default::default(),
            usable: true,
        }
    }
}

impl IdCheck {
    pub fn add(&mut self, id: Option<&str>) {
        if !self.usable {
            return;
        }
        match id {
            Some(s) if !s.is_empty() => {
                if !self.seen.insert(xxhash_rust::xxh3::xxh3_128(s.as_bytes())) {
                    self.spoil();
                }
            }
            _ => self.spoil(),
        }
    }

    /// Adds every id `other` saw (the records of another file of the same layer).
    pub fn merge(&mut self, other: IdCheck) {
        if !other.usable {
            self.spoil();
        }
        for h in other.seen {
            if !self.usable {
                return;
            }
            if !self.seen.insert(h) {
                self.spoil();
            }
        }
    }

    pub fn spoil(&mut self) {
        self.usable = false;
        self.seen = Default::default();
    }

    pub fn usable(&self) -> bool {
        self.usable
    }
}

/// File CRS → stored lon/lat, then the checks every stored geometry passes, then polygons
/// oriented as RFC 7946 wants (exterior counter-clockwise, holes clockwise).
pub(crate) fn to_stored(crs: &Crs, g: &Geometry<f64>) -> Result<Geometry<f64>, String> {
    // Check closure etc. on the file's own coordinates first: a transform of an unclosed ring
    // stays unclosed, but NaN must be reported as such rather than as a transform failure.
    if let Some(bad) = first_non_finite(g) {
        return Err(format!("geometry: coordinate {bad} is not a finite number"));
    }
    // Size first: no transform of a geometry that is refused anyway.
    crate::geom::check_size(g).map_err(|p| format!("geometry: {p}"))?;
    let lonlat = geometry_to_lonlat(crs, g).map_err(|e| format!("geometry: {e}"))?;
    validate_geometry(&lonlat).map_err(|p| format!("geometry: {p}"))?;
    crate::geom::within_china(&lonlat).map_err(|p| format!("geometry: {p}"))?;
    Ok(orient_rfc7946(lonlat))
}

fn first_non_finite(g: &Geometry<f64>) -> Option<usize> {
    use geo::CoordsIter;
    g.coords_iter()
        .position(|c| !c.x.is_finite() || !c.y.is_finite())
}

/// Exterior rings counter-clockwise, holes clockwise (RFC 7946 §3.1.6).
pub(crate) fn orient_rfc7946(g: Geometry<f64>) -> Geometry<f64> {
    use geo::orient::{Direction, Orient};
    match g {
        Geometry::Polygon(p) => Geometry::Polygon(p.orient(Direction::Default)),
        Geometry::MultiPolygon(mp) => Geometry::MultiPolygon(mp.orient(Direction::Default)),
        other => other,
    }
}

/// Whether a ring runs clockwise (negative shoelace area) in x/y math orientation.
pub(crate) fn ring_is_cw(ring: &[Coord<f64>]) -> bool {
    signed_area2(ring) < 0.0
}

fn signed_area2(ring: &[Coord<f64>]) -> f64 {
    if ring.len() < 3 {
        return 0.0;
    }
    let mut s = 0.0;
    for i in 0..ring.len() {
        let a = ring[i];
        let b = ring[(i + 1) % ring.len()];
        s += a.x * b.y - b.x * a.y;
    }
    s
}

/// Builds polygons from a flat list of rings (Shapefile / TXT style): clockwise rings are
/// exteriors, counter-clockwise ones holes of the smallest exterior that contains their first
/// point. A hole inside no exterior becomes an exterior itself, and so do all rings when none
/// is clockwise (files from tools that ignore the winding rule). One exterior → `Polygon`,
/// several → `MultiPolygon`.
///
/// Rings must be closed and have at least 4 points: `geo` would silently close them, but an
/// unclosed ring in a file is a damaged feature and is reported as such.
pub(crate) fn assemble_polygons(rings: Vec<Vec<Coord<f64>>>) -> Result<Geometry<f64>, String> {
    use geo::{Contains, Point};
    for (i, r) in rings.iter().enumerate() {
        if r.len() < 4 {
            return Err(format!(
                "geometry: polygon ring {} has {} points, a closed ring needs at least 4",
                i + 1,
                r.len()
            ));
        }
        if r.first() != r.last() {
            return Err(format!(
                "geometry: polygon ring {} is not closed (its last point differs from its first)",
                i + 1
            ));
        }
    }
    let any_cw = rings.iter().any(|r| ring_is_cw(r));
    let mut outers: Vec<(LineString<f64>, f64, Vec<LineString<f64>>)> = Vec::new();
    let mut holes = Vec::new();
    for r in rings {
        if !any_cw || ring_is_cw(&r) {
            let area = signed_area2(&r).abs();
            outers.push((LineString(r), area, Vec::new()));
        } else {
            holes.push(r);
        }
    }
    for h in holes {
        let probe = h.first().copied();
        let mut best: Option<usize> = None;
        if let Some(c) = probe {
            for (i, (ext, area, _)) in outers.iter().enumerate() {
                let poly = Polygon::new(ext.clone(), vec![]);
                let inside = poly.contains(&Point(c)) || poly.exterior().0.contains(&c);
                if inside && best.is_none_or(|b| *area < outers[b].1) {
                    best = Some(i);
                }
            }
        }
        match best {
            Some(i) => outers[i].2.push(LineString(h)),
            None => {
                let area = signed_area2(&h).abs();
                outers.push((LineString(h), area, Vec::new()));
            }
        }
    }
    let mut polys: Vec<Polygon<f64>> = outers
        .into_iter()
        .map(|(ext, _, holes)| Polygon::new(ext, holes))
        .collect();
    Ok(if polys.len() == 1 {
        Geometry::Polygon(polys.remove(0))
    } else {
        Geometry::MultiPolygon(MultiPolygon(polys))
    })
}

/// Picks the id column: `Some(values)` when every record has a non-empty, unique value.
pub(crate) fn ids_usable(ids: &[Option<String>]) -> bool {
    let mut seen = std::collections::HashSet::new();
    ids.iter().all(|id| match id {
        Some(s) if !s.is_empty() => seen.insert(s.as_str()),
        _ => false,
    })
}

/// Turns the problems of a whole import into the error, if there are any.
pub(crate) fn import_result(
    layers: Vec<ImportedLayer>,
    problems: Problems,
    total: usize,
) -> Result<Vec<ImportedLayer>, ImportError> {
    if problems.total > 0 {
        return Err(ImportError::Features {
            problems: problems.list,
            total,
            problems_total: problems.total,
        });
    }
    Ok(layers)
}

/// Reads a GeoJSON FeatureCollection in any supported CRS: `crs_override` if given, else the
/// legacy `"crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4545"}}`
/// member (what GDAL/QGIS write for non-WGS 84 data), else RFC 7946's CRS84. Coordinates are
/// in math order (x = easting/longitude) whatever the CRS, as GeoJSON writers put them.
/// Geometries are transformed to stored lon/lat and validated; ids from the features' `id`
/// when present and unique, else numbered. (For plain lon/lat GeoJSON,
/// [`crate::formats::geojson::decode_feature_collection`] does the same without transforms.)
pub fn read_geojson(
    bytes: &[u8],
    layer: &str,
    crs_override: Option<&Crs>,
) -> Result<ImportedLayer, ImportError> {
    let root: Value = serde_json::from_slice(bytes)
        .map_err(|e| ImportError::Corrupt(format!("not GeoJSON ({e})")))?;
    if root.get("type").and_then(Value::as_str) != Some("FeatureCollection") {
        return Err(ImportError::Corrupt(
            "expected a GeoJSON FeatureCollection".into(),
        ));
    }
    let crs = match crs_override {
        Some(c) => *c,
        None => match root.pointer("/crs/properties/name").and_then(Value::as_str) {
            None => Crs::Crs84,
            Some(name) => Crs::parse(name).map_err(|e| ImportError::UnknownCrs {
                file: format!("the GeoJSON of layer {layer}"),
                wkt_excerpt: wkt_excerpt(name),
                reason: e.to_string(),
            })?,
        },
    };
    let features = root
        .get("features")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ImportError::Corrupt("the FeatureCollection has no \"features\" array".into())
        })?;
    let mut raw = Vec::with_capacity(features.len());
    let mut ids = Vec::with_capacity(features.len());
    for f in features {
        let id = match f.get("id") {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let properties = match f.get("properties") {
            Some(Value::Object(m)) => Ok(m.clone()),
            None | Some(Value::Null) => Ok(Properties::new()),
            Some(_) => Err("properties must be an object or null".to_string()),
        };
        let geometry = match (f.get("type").and_then(Value::as_str), properties.as_ref()) {
            (Some("Feature"), Ok(_)) => match f.get("geometry") {
                None | Some(Value::Null) => Ok(None),
                Some(g) => crate::formats::geojson::decode_geometry(g, 0)
                    .map(Some)
                    .map_err(|e| format!("geometry: {e}")),
            },
            (_, Err(e)) => Err(e.clone()),
            _ => Err("not a GeoJSON Feature (\"type\": \"Feature\" missing)".into()),
        };
        ids.push(id.clone());
        raw.push(RawFeature {
            id,
            properties: properties.unwrap_or_default(),
            geometry,
        });
    }
    let use_ids = ids_usable(&ids);
    let total = raw.len();
    let mut problems = Problems::default();
    let out = assemble_layer(layer, raw, &crs, use_ids, &mut problems, false);
    import_result(vec![out], problems, total).map(|mut v| v.remove(0))
}

// ---------------------------------------------------------------------------------------------
// CRS recognition from WKT
// ---------------------------------------------------------------------------------------------

/// Why a WKT did not give a CRS (becomes [`ImportError::UnknownCrs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WktUnknown(pub String);

impl fmt::Display for WktUnknown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The first 200 characters of a WKT, for error messages.
pub(crate) fn wkt_excerpt(wkt: &str) -> String {
    let t = wkt.trim();
    let mut s: String = t.chars().take(200).collect();
    if t.chars().count() > 200 {
        s.push('…');
    }
    s
}

/// Recognises the CRS a WKT (1 or 2, OGC or Esri flavour) describes.
///
/// - The CRS's own `AUTHORITY["EPSG","n"]` / `ID["EPSG",n]` decides when present;
/// - otherwise a transverse Mercator / Gauss-Krüger projection on the CGCS2000 (or GRS 80 /
///   WGS 84) ellipsoid with central meridian 3·zone (zones 25–45), scale 1, false northing 0
///   and false easting 500 000 (or zone·10⁶ + 500 000) is that CGCS2000 Gauss-Krüger CRS;
/// - a geographic CRS on those ellipsoids is lon/lat ([`Crs::Epsg4490`]; CGCS2000 and WGS 84
///   are equal for planning data);
/// - Web Mercator by its projection name.
///
/// Anything else (Xian 1980, Beijing 1954, 6-degree zones, local grids) is refused.
pub fn crs_from_wkt(wkt: &str) -> Result<Crs, WktUnknown> {
    let root =
        wkt_parse(wkt.trim()).ok_or_else(|| WktUnknown("not a valid WKT definition".into()))?;
    let kw = root.keyword.to_ascii_uppercase();
    let kind = match kw.as_str() {
        "PROJCS" | "PROJCRS" | "PROJECTEDCRS" => "proj",
        "GEOGCS" | "GEOGCRS" | "GEODCRS" | "GEOGRAPHICCRS" | "GEODETICCRS" => "geog",
        "COMPD_CS" | "COMPOUNDCRS" => {
            // The horizontal part decides.
            let first = root
                .children()
                .next()
                .ok_or_else(|| WktUnknown("empty compound CRS".into()))?;
            return crs_from_node(first);
        }
        other => {
            return Err(WktUnknown(format!(
                "{other} is not a coordinate reference system"
            )))
        }
    };
    let _ = kind;
    crs_from_node(&root)
}

fn crs_from_node(root: &WktNode) -> Result<Crs, WktUnknown> {
    let kw = root.keyword.to_ascii_uppercase();
    if let Some(code) = root.epsg_code() {
        return Crs::from_epsg(code)
            .map_err(|_| WktUnknown(format!("EPSG:{code} is not one of the supported systems")));
    }
    let name = root.text(0).unwrap_or_default();
    let ellipsoid = root
        .find_deep(&["SPHEROID", "ELLIPSOID"])
        .ok_or_else(|| WktUnknown("no ellipsoid given".into()))?;
    let a = ellipsoid.number(1).unwrap_or(f64::NAN);
    let rf = ellipsoid.number(2).unwrap_or(f64::NAN);
    let cgcs_like = (a - 6_378_137.0).abs() < 0.01
        && ((rf - 298.257_222_101).abs() < 1e-6 || (rf - 298.257_223_563).abs() < 1e-6);
    if !cgcs_like {
        return Err(WktUnknown(format!(
            "ellipsoid a={a}, 1/f={rf} is not CGCS2000/GRS 80/WGS 84 (Xian 1980 and Beijing 1954 data must be converted to CGCS2000 first)"
        )));
    }
    if kw.starts_with("GEOG") || kw.starts_with("GEOD") {
        return Ok(Crs::Epsg4490);
    }
    let method = root
        .find_deep(&["PROJECTION", "METHOD"])
        .and_then(|m| m.text(0))
        .unwrap_or_default();
    let method_n = norm(&method);
    if method_n.contains("mercatorauxiliarysphere")
        || norm(&name).contains("pseudomercator")
        || norm(&name).contains("webmercator")
    {
        return Ok(Crs::WebMercator);
    }
    if !(method_n.contains("transversemercator") || method_n.contains("gausskruger")) {
        return Err(WktUnknown(format!(
            "projection '{method}' is not Gauss-Krüger"
        )));
    }
    let param = |names: &[&str]| -> Option<f64> {
        root.children()
            .filter(|c| {
                let k = c.keyword.to_ascii_uppercase();
                k == "PARAMETER"
            })
            .find(|c| {
                let n = norm(&c.text(0).unwrap_or_default());
                names.iter().any(|w| n == *w)
            })
            .and_then(|c| c.number(1))
    };
    let cm = param(&[
        "centralmeridian",
        "longitudeofnaturalorigin",
        "longitudeoforigin",
    ])
    .ok_or_else(|| WktUnknown("no central meridian".into()))?;
    let fe = param(&["falseeasting"]).unwrap_or(0.0);
    let fnorth = param(&["falsenorthing"]).unwrap_or(0.0);
    let k = param(&["scalefactor", "scalefactoratnaturalorigin"]).unwrap_or(1.0);
    let lat0 = param(&["latitudeoforigin", "latitudeofnaturalorigin"]).unwrap_or(0.0);
    if let Some(unit) = root
        .children()
        .find(|c| c.keyword.eq_ignore_ascii_case("UNIT"))
    {
        if let Some(f) = unit.number(1) {
            if (f - 1.0).abs() > 1e-9 {
                return Err(WktUnknown(format!(
                    "unit '{}' is not the metre",
                    unit.text(0).unwrap_or_default()
                )));
            }
        }
    }
    let zone_f = cm / 3.0;
    if (zone_f - zone_f.round()).abs() > 1e-9 || !(25.0..=45.0).contains(&zone_f.round()) {
        return Err(WktUnknown(format!(
            "central meridian {cm}° is not one of the CGCS2000 3-degree zones 25–45 (75°E–135°E)"
        )));
    }
    if (k - 1.0).abs() > 1e-12 || fnorth.abs() > 1e-6 || lat0.abs() > 1e-9 {
        return Err(WktUnknown(format!(
            "scale factor {k}, false northing {fnorth}, latitude of origin {lat0} are not those of Gauss-Krüger zones (1, 0, 0)"
        )));
    }
    let zone = zone_f.round() as u8;
    let prefix = if (fe - 500_000.0).abs() < 1e-6 {
        false
    } else if (fe - (zone as f64 * 1e6 + 500_000.0)).abs() < 1e-6 {
        true
    } else {
        return Err(WktUnknown(format!(
            "false easting {fe} is neither 500000 nor {}500000",
            zone
        )));
    };
    Crs::gauss_kruger(zone, prefix).map_err(|e| WktUnknown(e.to_string()))
}

fn norm(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

#[derive(Debug, Clone)]
enum WktItem {
    Text(String),
    Word(String),
    Node(WktNode),
}

#[derive(Debug, Clone)]
struct WktNode {
    keyword: String,
    items: Vec<WktItem>,
}

impl WktNode {
    fn children(&self) -> impl Iterator<Item = &WktNode> {
        self.items.iter().filter_map(|i| match i {
            WktItem::Node(n) => Some(n),
            _ => None,
        })
    }

    /// The `i`-th item as text (quoted string or bare word).
    fn text(&self, i: usize) -> Option<String> {
        match self.items.get(i)? {
            WktItem::Text(s) | WktItem::Word(s) => Some(s.clone()),
            WktItem::Node(_) => None,
        }
    }

    fn number(&self, i: usize) -> Option<f64> {
        self.text(i)?.trim().parse().ok()
    }

    /// This node's own EPSG code (`AUTHORITY["EPSG","n"]` or `ID["EPSG",n]` directly inside).
    fn epsg_code(&self) -> Option<u32> {
        self.children()
            .filter(|c| {
                c.keyword.eq_ignore_ascii_case("AUTHORITY") || c.keyword.eq_ignore_ascii_case("ID")
            })
            .find(|c| c.text(0).is_some_and(|a| a.eq_ignore_ascii_case("EPSG")))
            .and_then(|c| c.text(1)?.trim().parse().ok())
    }

    fn find_deep(&self, keywords: &[&str]) -> Option<&WktNode> {
        for c in self.children() {
            if keywords.iter().any(|k| c.keyword.eq_ignore_ascii_case(k)) {
                return Some(c);
            }
        }
        self.children().find_map(|c| c.find_deep(keywords))
    }
}

/// Parses WKT into a tree; `None` when it is not well formed. Accepts `[]` and `()`.
fn wkt_parse(s: &str) -> Option<WktNode> {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let node = parse_node(&chars, &mut pos, 0)?;
    skip_ws(&chars, &mut pos);
    (pos == chars.len()).then_some(node)
}

fn skip_ws(c: &[char], pos: &mut usize) {
    while *pos < c.len() && c[*pos].is_whitespace() {
        *pos += 1;
    }
}

fn parse_node(c: &[char], pos: &mut usize, depth: usize) -> Option<WktNode> {
    if depth > 32 {
        return None;
    }
    skip_ws(c, pos);
    let start = *pos;
    while *pos < c.len() && (c[*pos].is_ascii_alphanumeric() || c[*pos] == '_') {
        *pos += 1;
    }
    let keyword: String = c[start..*pos].iter().collect();
    if keyword.is_empty() {
        return None;
    }
    skip_ws(c, pos);
    let close = match c.get(*pos)? {
        '[' => ']',
        '(' => ')',
        _ => return None,
    };
    *pos += 1;
    let mut items = Vec::new();
    loop {
        skip_ws(c, pos);
        match *c.get(*pos)? {
            '"' => {
                *pos += 1;
                let mut s = String::new();
                loop {
                    let ch = *c.get(*pos)?;
                    *pos += 1;
                    if ch == '"' {
                        if c.get(*pos) == Some(&'"') {
                            s.push('"');
                            *pos += 1;
                        } else {
                            break;
                        }
                    } else {
                        s.push(ch);
                    }
                }
                items.push(WktItem::Text(s));
            }
            ch if ch.is_ascii_alphabetic() => {
                // A keyword with brackets is a node, otherwise a bare word (AXIS["E",EAST]).
                let save = *pos;
                let mut p = *pos;
                while p < c.len() && (c[p].is_ascii_alphanumeric() || c[p] == '_') {
                    p += 1;
                }
                let mut q = p;
                skip_ws(c, &mut q);
                if matches!(c.get(q), Some('[') | Some('(')) {
                    *pos = save;
                    items.push(WktItem::Node(parse_node(c, pos, depth + 1)?));
                } else {
                    items.push(WktItem::Word(c[save..p].iter().collect()));
                    *pos = p;
                }
            }
            _ => {
                let start = *pos;
                while *pos < c.len()
                    && !matches!(c[*pos], ',' | ']' | ')')
                    && !c[*pos].is_whitespace()
                {
                    *pos += 1;
                }
                if *pos == start {
                    return None;
                }
                items.push(WktItem::Word(c[start..*pos].iter().collect()));
            }
        }
        skip_ws(c, pos);
        match *c.get(*pos)? {
            ',' => *pos += 1,
            ch if ch == close => {
                *pos += 1;
                break;
            }
            _ => return None,
        }
    }
    Some(WktNode { keyword, items })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_every_wkt_we_write_and_gk_by_parameters() {
        for code in [4490u32, 4326, 3857, 4513, 4523, 4533, 4534, 4545, 4554] {
            let crs = Crs::from_epsg(code).unwrap();
            assert_eq!(crs_from_wkt(&crs.wkt().unwrap()), Ok(crs), "{code}");
            let esri = crs_from_wkt(&crs.wkt_esri().unwrap()).unwrap();
            match crs {
                Crs::Epsg4326 => assert_eq!(esri, Crs::Epsg4490),
                other => assert_eq!(esri, other, "esri {code}"),
            }
        }
        // WKT2 with an ID.
        let wkt2 = r#"PROJCRS["CGCS2000 / 3-degree Gauss-Kruger CM 108E",BASEGEOGCRS["China Geodetic Coordinate System 2000",DATUM["China 2000",ELLIPSOID["CGCS2000",6378137,298.257222101,LENGTHUNIT["metre",1]]]],CONVERSION["x",METHOD["Transverse Mercator",ID["EPSG",9807]]],CS[Cartesian,2],ID["EPSG",4545]]"#;
        assert_eq!(crs_from_wkt(wkt2), Ok(Crs::from_epsg(4545).unwrap()));
    }

    #[test]
    fn refuses_other_datums_and_garbage() {
        let xian = r#"PROJCS["Xian_1980_3_Degree_GK_CM_108E",GEOGCS["GCS_Xian_1980",DATUM["D_Xian_1980",SPHEROID["Xian_1980",6378140.0,298.257]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",108.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;
        let e = crs_from_wkt(xian).unwrap_err();
        assert!(e.0.contains("6378140"), "{e}");
        let six = r#"PROJCS["x",GEOGCS["g",DATUM["d",SPHEROID["CGCS2000",6378137,298.257222101]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["central_meridian",105],PARAMETER["false_easting",18500000],PARAMETER["scale_factor",1],PARAMETER["false_northing",0],UNIT["metre",1]]"#;
        assert!(crs_from_wkt(six).is_err()); // 105 is a 3-degree zone, but 18500000 is 6-degree zone 18
        assert!(crs_from_wkt("nonsense").is_err());
        assert!(crs_from_wkt("PROJCS[\"a\",").is_err());
        assert!(crs_from_wkt(r#"PROJCS["x",AUTHORITY["EPSG","2383"]]"#)
            .unwrap_err()
            .0
            .contains("2383"));
    }

    #[test]
    fn geojson_in_gauss_kruger_with_crs_member_or_override() {
        let gk = serde_json::json!({
            "type": "FeatureCollection",
            "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4545"}},
            "features": [
                {"type": "Feature", "id": "a", "properties": {"name": "村", "n": 1},
                 "geometry": {"type": "Point", "coordinates": [538281.3504, 3408869.1974]}},
                {"type": "Feature", "properties": null, "geometry": null}
            ]
        });
        let layer = read_geojson(gk.to_string().as_bytes(), "v", None).unwrap();
        let Some(Geometry::Point(p)) = &layer.features[0].geometry else {
            panic!()
        };
        assert!(
            (p.x() - 108.4).abs() < 1e-8 && (p.y() - 30.8).abs() < 1e-8,
            "{p:?}"
        );
        assert_eq!(layer.features[0].name.as_deref(), Some("村"));
        // Ids: one missing, so all are numbered.
        assert_eq!(layer.features[0].id, "1");
        let mut plain = gk.clone();
        plain.as_object_mut().unwrap().remove("crs");
        let e = read_geojson(plain.to_string().as_bytes(), "v", None).unwrap_err();
        assert!(
            matches!(
                e,
                ImportError::Features {
                    problems_total: 1,
                    ..
                }
            ),
            "{e}"
        );
        assert!(read_geojson(
            plain.to_string().as_bytes(),
            "v",
            Some(&Crs::from_epsg(4545).unwrap())
        )
        .is_ok());
        let mut xian = gk.clone();
        xian["crs"]["properties"]["name"] = "EPSG:2383".into();
        assert!(matches!(
            read_geojson(xian.to_string().as_bytes(), "v", None),
            Err(ImportError::UnknownCrs { .. })
        ));
        assert!(matches!(
            read_geojson(b"{]", "v", None),
            Err(ImportError::Corrupt(_))
        ));
        let open = serde_json::json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": 5, "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[108, 30], [108.1, 30], [108.1, 30.1], [108, 30.2]]]}}
        ]});
        let e = read_geojson(open.to_string().as_bytes(), "v", None).unwrap_err();
        assert!(
            e.to_string().contains("feature 1 (id 5)") && e.to_string().contains("not closed"),
            "{e}"
        );
    }

    #[test]
    fn columns_merge_kinds() {
        let f =
            |p: Value| Feature::from_parts("t", "1".into(), p.as_object().unwrap().clone(), None);
        let fs = [
            f(serde_json::json!({"a": 1, "b": "x", "c": 1, "d": null, "e": [1], "name": "n"})),
            f(serde_json::json!({"a": 2, "b": 3, "c": 1.5, "d": true, "f": null})),
        ];
        let cols = property_columns(fs.iter());
        let kinds: Vec<_> = cols.iter().map(|c| (c.key.as_str(), c.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("a", ColumnKind::Integer),
                ("b", ColumnKind::Mixed),
                ("c", ColumnKind::Real),
                ("d", ColumnKind::Bool),
                ("e", ColumnKind::Json),
                ("f", ColumnKind::Null),
            ]
        );
        assert_eq!(float_text(0.1), "0.1");
        assert_eq!(float_text(1e-7), "0.0000001");
        assert_eq!(float_text(1e300).parse::<f64>().unwrap(), 1e300);
    }

    #[test]
    fn polygons_assembled_from_rings() {
        let sq = |x0: f64, y0: f64, s: f64, cw: bool| {
            let mut v = vec![
                Coord { x: x0, y: y0 },
                Coord { x: x0 + s, y: y0 },
                Coord {
                    x: x0 + s,
                    y: y0 + s,
                },
                Coord { x: x0, y: y0 + s },
                Coord { x: x0, y: y0 },
            ];
            if cw {
                v.reverse();
            }
            v
        };
        let g = assemble_polygons(vec![
            sq(0., 0., 10., true),
            sq(2., 2., 2., false),
            sq(20., 0., 5., true),
        ])
        .unwrap();
        let Geometry::MultiPolygon(mp) = g else {
            panic!("{g:?}")
        };
        assert_eq!(mp.0.len(), 2);
        assert_eq!(mp.0[0].interiors().len(), 1);
        let g = assemble_polygons(vec![sq(0., 0., 10., false)]).unwrap();
        let mut open = sq(0., 0., 10., true);
        open.pop();
        assert!(assemble_polygons(vec![open])
            .unwrap_err()
            .contains("ring 1"));
        assert!(matches!(g, Geometry::Polygon(_)));
    }
}

/// Sample data and comparisons shared by the format tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use geo::{line_string, point, polygon, CoordsIter, MultiLineString, MultiPoint};

    /// What a format may legitimately change (see each module's docs).
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub enum Lossy {
        /// Exact (GeoPackage).
        None,
        /// One-part multi geometries come back single; empty strings come back null.
        Shapefile,
    }

    pub fn feature(id: &str, props: Value, g: Option<Geometry<f64>>) -> Feature {
        Feature::from_parts("x", id.into(), props.as_object().unwrap().clone(), g)
    }

    /// A mixed layer: every geometry kind, Chinese text, numbers, bools, nulls, nested JSON.
    pub fn sample_layer(id: &str) -> (Layer, Vec<Feature>) {
        let mut layer = Layer::untitled(id);
        layer.geometry_type = crate::model::GeometryType::Geometry;
        let hole_poly = polygon!(
            exterior: [(x: 108.0, y: 30.0), (x: 108.01, y: 30.0), (x: 108.01, y: 30.01), (x: 108.0, y: 30.01), (x: 108.0, y: 30.0)],
            interiors: [[(x: 108.002, y: 30.002), (x: 108.002, y: 30.004), (x: 108.004, y: 30.004), (x: 108.004, y: 30.002), (x: 108.002, y: 30.002)]],
        );
        let second = polygon![(x: 108.1, y: 30.1), (x: 108.12, y: 30.1), (x: 108.11, y: 30.12), (x: 108.1, y: 30.1)];
        let features = vec![
            feature(
                "p1",
                serde_json::json!({
                    "name": "火炉镇蔬菜基地项目", "admin_code": "500118105",
                    "investment_wan": 1200, "ratio": 0.25, "done": true, "note": null,
                    "tags": ["蔬菜", "大棚"], "meta": {"source": {"doc": "规划", "page": 12}},
                    "responsible_unit": "区农业农村委", "big": 9007199254740993i64
                }),
                Some(Geometry::Point(point!(x: 108.4, y: 30.8))),
            ),
            feature(
                "p2",
                serde_json::json!({
                    "name": "道路, 一期 \"改造\"", "investment_wan": 35, "ratio": 1.5, "done": false,
                    "responsible_unit": "交通局", "tags": []
                }),
                Some(Geometry::LineString(
                    line_string![(x: 107.9, y: 30.2), (x: 107.95, y: 30.25), (x: 108.05, y: 30.26)],
                )),
            ),
            feature(
                "p3",
                serde_json::json!({"name": "安置点", "investment_wan": null, "ratio": -0.000125, "meta": {"a": [1, 2]}}),
                Some(Geometry::Polygon(hole_poly.clone())),
            ),
            feature(
                "p4",
                serde_json::json!({"investment_wan": -7, "done": true}),
                Some(Geometry::MultiPolygon(MultiPolygon(vec![
                    hole_poly.clone(),
                    second,
                ]))),
            ),
            feature(
                "p5",
                serde_json::json!({"name": "监测点"}),
                Some(Geometry::MultiPoint(MultiPoint(vec![
                    point!(x: 108.3, y: 30.3),
                    point!(x: 108.31, y: 30.32),
                ]))),
            ),
            feature(
                "p6",
                serde_json::json!({"name": "无位置项目", "investment_wan": 1}),
                None,
            ),
            feature(
                "p7",
                serde_json::json!({"name": "渠道"}),
                Some(Geometry::MultiLineString(MultiLineString(vec![
                    line_string![(x: 108.2, y: 30.2), (x: 108.21, y: 30.21)],
                    line_string![(x: 108.22, y: 30.2), (x: 108.23, y: 30.21), (x: 108.24, y: 30.2)],
                ]))),
            ),
        ];
        (
            layer,
            features
                .into_iter()
                .map(|mut f| {
                    f.layer = id.to_string();
                    f
                })
                .collect(),
        )
    }

    /// A polygon-only layer with a long property name.
    pub fn sample_polygons_layer(id: &str) -> (Layer, Vec<Feature>) {
        let mut layer = Layer::untitled(id);
        layer.geometry_type = crate::model::GeometryType::Polygon;
        let features = vec![
            feature(
                "10",
                serde_json::json!({"name": "地块一", "land_use_classification": "0101 水田", "area_mu": 12.5}),
                Some(Geometry::Polygon(
                    polygon![(x: 107.6, y: 29.9), (x: 107.61, y: 29.9), (x: 107.61, y: 29.91), (x: 107.6, y: 29.9)],
                )),
            ),
            feature(
                "11",
                serde_json::json!({"name": "地块二", "land_use_classification": "0201 果园", "area_mu": 3}),
                Some(Geometry::Polygon(
                    polygon![(x: 107.7, y: 29.9), (x: 107.71, y: 29.9), (x: 107.71, y: 29.91), (x: 107.7, y: 29.91), (x: 107.7, y: 29.9)],
                )),
            ),
        ];
        (
            layer,
            features
                .into_iter()
                .map(|mut f| {
                    f.layer = id.to_string();
                    f
                })
                .collect(),
        )
    }

    fn normalise(g: &Geometry<f64>, lossy: Lossy) -> Geometry<f64> {
        match (g, lossy) {
            (Geometry::MultiPolygon(mp), Lossy::Shapefile) if mp.0.len() == 1 => {
                Geometry::Polygon(mp.0[0].clone())
            }
            (Geometry::MultiLineString(ml), Lossy::Shapefile) if ml.0.len() == 1 => {
                Geometry::LineString(ml.0[0].clone())
            }
            (other, _) => other.clone(),
        }
    }

    /// Geometry equal within 1 mm, compared in metres (Gauss-Krüger zone of the data).
    pub fn assert_same_geometry(a: &Geometry<f64>, b: &Geometry<f64>, lossy: Lossy, what: &str) {
        let (a, b) = (normalise(a, lossy), normalise(b, lossy));
        assert_eq!(
            std::mem::discriminant(&a),
            std::mem::discriminant(&b),
            "{what}: {a:?} vs {b:?}"
        );
        let ca: Vec<_> = a.coords_iter().collect();
        let cb: Vec<_> = b.coords_iter().collect();
        assert_eq!(ca.len(), cb.len(), "{what}: coordinate counts");
        let gk = Crs::gk_for_lon(ca[0].x, false);
        for (p, q) in ca.iter().zip(&cb) {
            let (x1, y1) = crate::geom::crs::from_lonlat(&gk, p.x, p.y).unwrap();
            let (x2, y2) = crate::geom::crs::from_lonlat(&gk, q.x, q.y).unwrap();
            let d = (x1 - x2).hypot(y1 - y2);
            assert!(d < 1e-3, "{what}: {p:?} vs {q:?} differ by {d} m");
        }
    }

    fn same_value(a: &Value, b: &Value, lossy: Lossy) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            },
            (Value::String(s), Value::Null) | (Value::Null, Value::String(s))
                if lossy == Lossy::Shapefile =>
            {
                s.is_empty()
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q, lossy))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len()
                    && x.iter()
                        .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w, lossy)))
            }
            _ => a == b,
        }
    }

    /// Same ids, names, codes, properties (missing = null) and geometry within 1 mm.
    pub fn assert_same_features(orig: &[Feature], back: &[Feature], lossy: Lossy) {
        assert_eq!(orig.len(), back.len(), "feature counts");
        for o in orig {
            let b = back
                .iter()
                .find(|b| b.id == o.id)
                .unwrap_or_else(|| panic!("id {} missing", o.id));
            assert_eq!(o.name, b.name, "name of {}", o.id);
            assert_eq!(o.admin_code, b.admin_code, "admin_code of {}", o.id);
            let keys: std::collections::BTreeSet<&String> =
                o.properties.keys().chain(b.properties.keys()).collect();
            for k in keys {
                let x = o.properties.get(k).unwrap_or(&Value::Null);
                let y = b.properties.get(k).unwrap_or(&Value::Null);
                assert!(
                    same_value(x, y, lossy),
                    "property {k} of {}: {x} vs {y}",
                    o.id
                );
            }
            match (&o.geometry, &b.geometry) {
                (None, None) => {}
                (Some(x), Some(y)) => assert_same_geometry(x, y, lossy, &o.id),
                (x, y) => panic!("geometry of {}: {x:?} vs {y:?}", o.id),
            }
        }
    }

    /// `ogrinfo` output, or None (with the reason printed) when GDAL is not installed and we
    /// are not on CI.
    pub fn ogrinfo(args: &[&str]) -> Option<String> {
        match std::process::Command::new("ogrinfo").args(args).output() {
            Ok(out) => {
                let text = String::from_utf8_lossy(&out.stdout).into_owned()
                    + &String::from_utf8_lossy(&out.stderr);
                assert!(out.status.success(), "ogrinfo {args:?} failed:\n{text}");
                Some(text)
            }
            Err(e) => {
                if std::env::var_os("CI").is_some() {
                    panic!("ogrinfo is required on CI (apt-get install gdal-bin): {e}");
                }
                eprintln!("SKIP (GDAL part): ogrinfo not found ({e})");
                None
            }
        }
    }
}
