//! Zipped Shapefile export and import (ESRI Shapefile Technical Description, July 1998;
//! dBASE III+ tables as GDAL and ArcGIS write them).
//!
//! # Export
//! One `.shp .shx .dbf .prj .cpg` set per layer, named after the layer (`villages.shp`); a
//! layer that mixes geometry kinds gets one set per kind (`projects_point.shp`,
//! `projects_multipoint.shp`, `projects_line.shp`, `projects_polygon.shp`), because a
//! Shapefile holds one kind. Features without geometry go into the layer's first set as
//! null shapes. `.prj` is the Esri WKT of the CRS ([`Crs::wkt_esri`]), which ArcGIS, QGIS and
//! GDAL all identify; `.cpg` names the attribute encoding (`GBK` by default, what ArcGIS in
//! China expects, or `UTF-8`), and the dBASE language driver byte says the same (0x4D = 936).
//!
//! Attributes: `id`, `name`, `admin_code`, then every property. dBASE field names are at
//! most 10 bytes (in the file's encoding): longer names are cut on a character boundary,
//! characters other than letters, digits and `_` become `_`, and clashes get `_2`, `_3` …
//! `fields.csv` in the zip (UTF-8 with BOM) maps every field back to its property, with its
//! type and notes (truncated values, characters GBK cannot hold). Types: integers that fit
//! i64 → `N` with 0 decimals; other numbers → `N` with decimals (shortest exact text);
//! booleans → `L`; text, arrays/objects (as JSON) and mixed columns → `C`. A `C` value is at
//! most 254 bytes: longer values are cut on a character boundary (lossy; counted in
//! `fields.csv`).
//!
//! Polygons are written with clockwise exteriors and counter-clockwise holes, as the format
//! requires; on import they come back oriented as RFC 7946 wants.
//!
//! # Import
//! Every `.shp` in the zip (any folder) with its `.dbf`; the CRS from `.prj` (see
//! [`crs_from_wkt`]) unless one is given; the encoding from `.cpg`, else the language driver
//! byte, else UTF-8 if every text is valid UTF-8, else GBK. When the zip carries yizhangtu's
//! `fields.csv`, field names, types (JSON, id) and the split of mixed layers are undone.
//!
//! Imports stream ([`stream_shapefile_zip`]): each `.shp` and its `.dbf` are inflated side by
//! side from the zip and read one record at a time, so memory does not grow with the file
//! (16 bytes a record remain, for the check that ids are unique). The `.dbf` is read once or
//! twice more before that only when its encoding must be guessed or an `id` field checked.
//! The readers are this module's own (the `shapefile`/`dbase` crates would also read
//! sequentially): they report a damaged record as that feature's problem instead of failing
//! the file, and their limits on zip entries stop bombs while inflating.
//!
//! # Lossy cases
//! Besides those of [`crate::formats::exchange`]: an empty string reads back as null (dBASE
//! has no null); a one-part MultiLineString/MultiPolygon reads back as LineString/Polygon
//! (the format does not tell them apart); text over 254 bytes is cut.

use std::collections::HashMap;
use std::io::{Cursor, Read, Seek, Write};

use encoding_rs::Encoding;
use geo::{Coord, Geometry, LineString, MultiPoint, Point};
use serde_json::Value;

use crate::formats::csv::parse_csv;
use crate::formats::exchange::{
    assemble_feature, assemble_polygons, crs_from_wkt, float_text, import_result, json_f64,
    property_columns, typed_from_text, value_text, wkt_excerpt, Column, ColumnKind, ExportError,
    ExportLayer, IdCheck, ImportError, ImportedLayer, Problems, RawFeature,
};
use crate::geom::crs::{geometry_from_lonlat, Crs};
use crate::model::{Feature, GeometryType, Properties};

/// Name of the field-mapping file in an exported zip.
pub const MAPPING_FILE: &str = "fields.csv";
/// Longest dBASE character value, in bytes.
pub const MAX_CHAR_BYTES: usize = 254;
/// The most bytes the entries read from one uploaded zip may unpack to, together. An upload is at
/// most 64 MiB; Shapefile data compresses about 2–10:1, so honest uploads stay far below this.
pub const MAX_ZIP_UNCOMPRESSED_BYTES: u64 = 512 << 20;
/// The largest ratio of unpacked to packed size of an entry that unpacks to more than
/// [`ZIP_RATIO_FREE_BYTES`]. Deflate reaches ~1000:1 only on runs of one byte (zip bombs); even
/// a `.dbf` of blank padded text stays below this.
pub const MAX_ZIP_RATIO: u64 = 200;
/// Entries up to this size are not held to [`MAX_ZIP_RATIO`] (small files compress oddly).
pub const ZIP_RATIO_FREE_BYTES: u64 = 1 << 20;

/// Encoding of the `.dbf` attribute text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DbfEncoding {
    /// GBK (code page 936): what ArcGIS in China expects. The default.
    #[default]
    Gbk,
    Utf8,
}

impl DbfEncoding {
    /// `gbk`, `cp936`, `936` → GBK; `utf-8`, `utf8` → UTF-8 (case-insensitive).
    pub fn parse(s: &str) -> Option<DbfEncoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "gbk" | "cp936" | "936" | "gb2312" => Some(DbfEncoding::Gbk),
            "utf-8" | "utf8" => Some(DbfEncoding::Utf8),
            _ => None,
        }
    }

    /// What the `.cpg` file says.
    pub fn cpg(self) -> &'static str {
        match self {
            DbfEncoding::Gbk => "GBK",
            DbfEncoding::Utf8 => "UTF-8",
        }
    }

    fn encoding(self) -> &'static Encoding {
        match self {
            DbfEncoding::Gbk => encoding_rs::GBK,
            DbfEncoding::Utf8 => encoding_rs::UTF_8,
        }
    }

    /// dBASE language driver id: 0x4D is code page 936; UTF-8 has none (the .cpg says it).
    fn ldid(self) -> u8 {
        match self {
            DbfEncoding::Gbk => 0x4D,
            DbfEncoding::Utf8 => 0x00,
        }
    }
}

/// Text in the given encoding, e.g. for the ministry TXT file (which is usually GBK).
pub fn encode_text(text: &str, encoding: DbfEncoding) -> Vec<u8> {
    encoding.encoding().encode(text).0.into_owned()
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

/// Features of one shape kind: (index in the layer, projected geometry).
type Members = Vec<(usize, Option<Geometry<f64>>)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ShapeKind {
    Point,
    MultiPoint,
    Line,
    Polygon,
}

impl ShapeKind {
    fn of(g: &Geometry<f64>) -> Option<ShapeKind> {
        Some(match g {
            Geometry::Point(_) => ShapeKind::Point,
            Geometry::MultiPoint(_) => ShapeKind::MultiPoint,
            Geometry::Line(_) | Geometry::LineString(_) | Geometry::MultiLineString(_) => {
                ShapeKind::Line
            }
            Geometry::Polygon(_)
            | Geometry::MultiPolygon(_)
            | Geometry::Rect(_)
            | Geometry::Triangle(_) => ShapeKind::Polygon,
            Geometry::GeometryCollection(_) => return None,
        })
    }

    fn for_layer(t: GeometryType) -> ShapeKind {
        match t {
            GeometryType::Point | GeometryType::Geometry => ShapeKind::Point,
            GeometryType::MultiPoint => ShapeKind::MultiPoint,
            GeometryType::LineString | GeometryType::MultiLineString => ShapeKind::Line,
            GeometryType::Polygon | GeometryType::MultiPolygon => ShapeKind::Polygon,
        }
    }

    fn shape_type(self) -> i32 {
        match self {
            ShapeKind::Point => 1,
            ShapeKind::Line => 3,
            ShapeKind::Polygon => 5,
            ShapeKind::MultiPoint => 8,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            ShapeKind::Point => "point",
            ShapeKind::MultiPoint => "multipoint",
            ShapeKind::Line => "line",
            ShapeKind::Polygon => "polygon",
        }
    }
}

/// Writes the layers as zipped Shapefiles (see the module docs). Coordinates are in `crs`
/// (GCJ-02/BD-09 are refused: they have no `.prj`).
pub fn write_shapefile_zip(
    layers: &[ExportLayer],
    crs: &Crs,
    encoding: DbfEncoding,
) -> Result<Vec<u8>, ExportError> {
    let prj = crs.wkt_esri().ok_or_else(|| ExportError::UnsupportedCrs {
        crs: crs.to_string(),
        format: "Shapefile",
    })?;
    let io = |e: &dyn std::fmt::Display| ExportError::Io {
        format: "Shapefile",
        reason: e.to_string(),
    };
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let mut mapping = vec![vec![
        "layer".to_string(),
        "file".into(),
        "field".into(),
        "property".into(),
        "type".into(),
        "note".into(),
    ]];
    let mut problems = Problems::default();
    let mut used_names: HashMap<String, usize> = HashMap::new();

    for l in layers {
        // Project everything first; group by shape kind.
        let mut groups: Vec<(ShapeKind, Members)> = Vec::new();
        let mut nulls = Vec::new();
        let problems_before = problems.total;
        for (index, f) in l.features.iter().enumerate() {
            let Some(g) = &f.geometry else {
                nulls.push((index, None));
                continue;
            };
            let Some(kind) = ShapeKind::of(g) else {
                problems.push(
                    index,
                    Some(f.id.clone()),
                    format!(
                        "layer {}: a GeometryCollection cannot be stored in a Shapefile",
                        l.layer.id
                    ),
                );
                continue;
            };
            match geometry_from_lonlat(crs, g) {
                Ok(p) => match groups.iter_mut().find(|(k, _)| *k == kind) {
                    Some((_, v)) => v.push((index, Some(p))),
                    None => groups.push((kind, vec![(index, Some(p))])),
                },
                Err(e) => problems.push(
                    index,
                    Some(f.id.clone()),
                    format!("layer {}: {e}", l.layer.id),
                ),
            }
        }
        if problems.total > problems_before {
            // Keep checking the other layers so the error lists every problem.
            continue;
        }
        groups.sort_by_key(|(k, _)| *k);
        if groups.is_empty() {
            groups.push((ShapeKind::for_layer(l.layer.geometry_type), Vec::new()));
        }
        groups[0].1.extend(nulls);
        groups[0].1.sort_by_key(|(i, _)| *i);

        let columns = property_columns(l.features.iter().map(|f| &**f));
        let fields = plan_fields(&columns, encoding);
        let single = groups.len() == 1;
        for (kind, members) in &groups {
            let mut stem = if single {
                l.layer.id.clone()
            } else {
                format!("{}_{}", l.layer.id, kind.suffix())
            };
            // Two layers could map to the same file name only through odd ids; keep them apart.
            let n = used_names.entry(stem.to_ascii_lowercase()).or_insert(0);
            *n += 1;
            if *n > 1 {
                stem = format!("{stem}_{n}");
            }
            let mut shp = ShpWriter::new(kind.shape_type());
            let mut rows: Vec<&crate::model::Feature> = Vec::with_capacity(members.len());
            for (index, g) in members {
                shp.add(g.as_ref());
                rows.push(&l.features[*index]);
            }
            let (shp_bytes, shx_bytes) = shp.finish();
            let (dbf_bytes, notes) = write_dbf(&fields, &columns, &rows, encoding);
            for (ext, data) in [
                ("shp", shp_bytes),
                ("shx", shx_bytes),
                ("dbf", dbf_bytes),
                ("prj", prj.clone().into_bytes()),
                ("cpg", encoding.cpg().as_bytes().to_vec()),
            ] {
                zip.start_file(format!("{stem}.{ext}"), opts)
                    .map_err(|e| io(&e))?;
                zip.write_all(&data).map_err(|e| io(&e))?;
            }
            for (i, field) in fields.iter().enumerate() {
                let (property, kind) = match field.source {
                    Source::Id => ("id".to_string(), "id"),
                    Source::Name => ("name".into(), "text"),
                    Source::AdminCode => ("admin_code".into(), "text"),
                    Source::Prop(c) => (columns[c].key.clone(), columns[c].kind.label()),
                };
                let mut note = notes[i].clone();
                if let Source::Prop(c) = field.source {
                    if columns[c].kind == ColumnKind::Mixed {
                        let m = "values of different kinds, written as text";
                        note = if note.is_empty() {
                            m.into()
                        } else {
                            format!("{m}; {note}")
                        };
                    }
                }
                mapping.push(vec![
                    l.layer.id.clone(),
                    stem.clone(),
                    field.name.clone(),
                    property,
                    kind.into(),
                    note,
                ]);
            }
        }
    }
    problems.export_result()?;

    let mut text = String::from("\u{feff}");
    for row in &mapping {
        let cells: Vec<String> = row
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\r', '\n']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        text.push_str(&cells.join(","));
        text.push_str("\r\n");
    }
    zip.start_file(MAPPING_FILE, opts).map_err(|e| io(&e))?;
    zip.write_all(text.as_bytes()).map_err(|e| io(&e))?;
    let cursor = zip.finish().map_err(|e| io(&e))?;
    Ok(cursor.into_inner())
}

struct ShpWriter {
    shape_type: i32,
    shp: Vec<u8>,
    shx: Vec<u8>,
    bbox: Option<[f64; 4]>,
    count: i32,
}

impl ShpWriter {
    fn new(shape_type: i32) -> ShpWriter {
        ShpWriter {
            shape_type,
            shp: vec![0; 100],
            shx: vec![0; 100],
            bbox: None,
            count: 0,
        }
    }

    fn grow(&mut self, cs: &[Coord<f64>]) {
        for c in cs {
            let b = self.bbox.get_or_insert([c.x, c.y, c.x, c.y]);
            b[0] = b[0].min(c.x);
            b[1] = b[1].min(c.y);
            b[2] = b[2].max(c.x);
            b[3] = b[3].max(c.y);
        }
    }

    fn add(&mut self, g: Option<&Geometry<f64>>) {
        let mut content = Vec::new();
        match g.map(shape_parts) {
            None | Some(Parts::Null) => content.extend_from_slice(&0i32.to_le_bytes()),
            Some(Parts::Point(c)) => {
                self.grow(&[c]);
                content.extend_from_slice(&1i32.to_le_bytes());
                content.extend_from_slice(&c.x.to_le_bytes());
                content.extend_from_slice(&c.y.to_le_bytes());
            }
            Some(Parts::MultiPoint(cs)) => {
                self.grow(&cs);
                content.extend_from_slice(&8i32.to_le_bytes());
                put_box(&mut content, &cs);
                content.extend_from_slice(&(cs.len() as i32).to_le_bytes());
                for c in &cs {
                    content.extend_from_slice(&c.x.to_le_bytes());
                    content.extend_from_slice(&c.y.to_le_bytes());
                }
            }
            Some(Parts::Rings(t, parts)) => {
                let all: Vec<Coord<f64>> = parts.iter().flatten().copied().collect();
                self.grow(&all);
                content.extend_from_slice(&t.to_le_bytes());
                put_box(&mut content, &all);
                content.extend_from_slice(&(parts.len() as i32).to_le_bytes());
                content.extend_from_slice(&(all.len() as i32).to_le_bytes());
                let mut start = 0i32;
                for p in &parts {
                    content.extend_from_slice(&start.to_le_bytes());
                    start += p.len() as i32;
                }
                for c in &all {
                    content.extend_from_slice(&c.x.to_le_bytes());
                    content.extend_from_slice(&c.y.to_le_bytes());
                }
            }
        }
        self.count += 1;
        let offset_words = (self.shp.len() / 2) as i32;
        let len_words = (content.len() / 2) as i32;
        self.shp.extend_from_slice(&self.count.to_be_bytes());
        self.shp.extend_from_slice(&len_words.to_be_bytes());
        self.shp.extend_from_slice(&content);
        self.shx.extend_from_slice(&offset_words.to_be_bytes());
        self.shx.extend_from_slice(&len_words.to_be_bytes());
    }

    fn finish(mut self) -> (Vec<u8>, Vec<u8>) {
        let bbox = self.bbox.unwrap_or([0.0; 4]);
        let header = |buf: &mut Vec<u8>, shape_type: i32| {
            let words = (buf.len() / 2) as i32;
            buf[0..4].copy_from_slice(&9994i32.to_be_bytes());
            buf[24..28].copy_from_slice(&words.to_be_bytes());
            buf[28..32].copy_from_slice(&1000i32.to_le_bytes());
            buf[32..36].copy_from_slice(&shape_type.to_le_bytes());
            for (i, v) in bbox.iter().enumerate() {
                buf[36 + 8 * i..44 + 8 * i].copy_from_slice(&v.to_le_bytes());
            }
        };
        header(&mut self.shp, self.shape_type);
        header(&mut self.shx, self.shape_type);
        (self.shp, self.shx)
    }
}

fn put_box(out: &mut Vec<u8>, cs: &[Coord<f64>]) {
    let mut b = [
        f64::INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NEG_INFINITY,
    ];
    for c in cs {
        b[0] = b[0].min(c.x);
        b[1] = b[1].min(c.y);
        b[2] = b[2].max(c.x);
        b[3] = b[3].max(c.y);
    }
    if cs.is_empty() {
        b = [0.0; 4];
    }
    for v in b {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

enum Parts {
    Null,
    Point(Coord<f64>),
    MultiPoint(Vec<Coord<f64>>),
    /// Shape type (3 or 5) and its parts.
    Rings(i32, Vec<Vec<Coord<f64>>>),
}

fn shape_parts(g: &Geometry<f64>) -> Parts {
    use geo::orient::{Direction, Orient};
    let polygons = |polys: Vec<geo::Polygon<f64>>| {
        let mut rings = Vec::new();
        for p in polys {
            if p.exterior().0.is_empty() {
                continue;
            }
            // Shapefile: exterior clockwise, holes counter-clockwise.
            let p = p.orient(Direction::Reversed);
            rings.push(p.exterior().0.clone());
            for h in p.interiors() {
                rings.push(h.0.clone());
            }
        }
        if rings.is_empty() {
            Parts::Null
        } else {
            Parts::Rings(5, rings)
        }
    };
    match g {
        Geometry::Point(p) => Parts::Point(p.0),
        Geometry::MultiPoint(mp) if mp.0.is_empty() => Parts::Null,
        Geometry::MultiPoint(mp) => Parts::MultiPoint(mp.0.iter().map(|p| p.0).collect()),
        Geometry::Line(l) => Parts::Rings(3, vec![vec![l.start, l.end]]),
        Geometry::LineString(l) if l.0.is_empty() => Parts::Null,
        Geometry::LineString(l) => Parts::Rings(3, vec![l.0.clone()]),
        Geometry::MultiLineString(ml) => {
            let parts: Vec<_> =
                ml.0.iter()
                    .filter(|l| !l.0.is_empty())
                    .map(|l| l.0.clone())
                    .collect();
            if parts.is_empty() {
                Parts::Null
            } else {
                Parts::Rings(3, parts)
            }
        }
        Geometry::Polygon(p) => polygons(vec![p.clone()]),
        Geometry::MultiPolygon(mp) => polygons(mp.0.clone()),
        Geometry::Rect(r) => polygons(vec![r.to_polygon()]),
        Geometry::Triangle(t) => polygons(vec![t.to_polygon()]),
        Geometry::GeometryCollection(_) => Parts::Null,
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Id,
    Name,
    AdminCode,
    Prop(usize),
}

#[derive(Debug, Clone)]
struct FieldPlan {
    name: String,
    name_bytes: Vec<u8>,
    ftype: u8,
    source: Source,
}

/// dBASE field names for `id`, `name`, `admin_code` and every property column.
fn plan_fields(columns: &[Column], encoding: DbfEncoding) -> Vec<FieldPlan> {
    let enc = encoding.encoding();
    let mut taken: Vec<String> = Vec::new();
    let mut out = Vec::new();
    let fixed = [
        ("id", Source::Id),
        ("name", Source::Name),
        ("admin_code", Source::AdminCode),
    ];
    let props = columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.key.as_str(), Source::Prop(i)));
    for (key, source) in fixed.into_iter().chain(props) {
        let ftype = match source {
            Source::Prop(i) => match columns[i].kind {
                ColumnKind::Integer | ColumnKind::Real => b'N',
                ColumnKind::Bool => b'L',
                _ => b'C',
            },
            _ => b'C',
        };
        let clean: String = key
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let clean = if clean.is_empty() {
            "field".to_string()
        } else {
            clean
        };
        let mut n = 1;
        let name = loop {
            let suffix = if n == 1 {
                String::new()
            } else {
                format!("_{n}")
            };
            let base = truncate_encoded(&clean, enc, 10 - suffix.len()).0;
            let candidate = format!("{base}{suffix}");
            if !taken
                .iter()
                .any(|t| t.to_lowercase() == candidate.to_lowercase())
            {
                break candidate;
            }
            n += 1;
        };
        taken.push(name.clone());
        let name_bytes = enc.encode(&name).0.into_owned();
        out.push(FieldPlan {
            name,
            name_bytes,
            ftype,
            source,
        });
    }
    out
}

/// The longest prefix of `s` whose encoding fits `max` bytes, cut on a character boundary,
/// and whether anything was cut.
fn truncate_encoded(s: &str, enc: &'static Encoding, max: usize) -> (String, bool) {
    if enc.encode(s).0.len() <= max {
        return (s.to_string(), false);
    }
    let mut len = 0;
    let mut end = 0;
    let mut buf = [0u8; 4];
    for (i, ch) in s.char_indices() {
        let w = enc.encode(ch.encode_utf8(&mut buf)).0.len();
        if len + w > max {
            break;
        }
        len += w;
        end = i + ch.len_utf8();
    }
    (s[..end].to_string(), true)
}

/// Writes the `.dbf`; returns it and, per field, a note for the mapping file.
fn write_dbf(
    fields: &[FieldPlan],
    columns: &[Column],
    rows: &[&crate::model::Feature],
    encoding: DbfEncoding,
) -> (Vec<u8>, Vec<String>) {
    let enc = encoding.encoding();
    let mut truncated = vec![0usize; fields.len()];
    let mut unmappable = vec![0usize; fields.len()];
    // Encoded cells, per row per field; None = null.
    let mut cells: Vec<Vec<Option<Vec<u8>>>> = Vec::with_capacity(rows.len());
    let mut widths = vec![1usize; fields.len()];
    let mut decimals = vec![0usize; fields.len()];
    for f in rows {
        let mut row = Vec::with_capacity(fields.len());
        for (i, field) in fields.iter().enumerate() {
            let value: Option<Value> = match field.source {
                Source::Id => Some(Value::String(f.id.clone())),
                Source::Name => f.name.clone().map(Value::String),
                Source::AdminCode => f.admin_code.clone().map(Value::String),
                Source::Prop(c) => f.properties.get(&columns[c].key).cloned(),
            };
            let kind = match field.source {
                Source::Prop(c) => columns[c].kind,
                _ => ColumnKind::Text,
            };
            let cell = match (kind, value) {
                (_, None) | (_, Some(Value::Null)) => None,
                (ColumnKind::Integer, Some(Value::Number(n))) => Some(
                    n.as_i64()
                        .map(|i| i.to_string())
                        .unwrap_or_default()
                        .into_bytes(),
                ),
                (ColumnKind::Real, Some(Value::Number(n))) => {
                    let t = float_text(n.as_f64().unwrap_or(f64::NAN));
                    if let Some(dot) = t.find('.') {
                        decimals[i] = decimals[i].max(t.len() - dot - 1);
                    }
                    Some(t.into_bytes())
                }
                (ColumnKind::Bool, Some(Value::Bool(b))) => Some(vec![if b { b'T' } else { b'F' }]),
                (_, Some(v)) => {
                    let text = value_text(&v).unwrap_or_default();
                    let (cut, was_cut) = truncate_encoded(&text, enc, MAX_CHAR_BYTES);
                    if was_cut {
                        truncated[i] += 1;
                    }
                    let (bytes, _, had_errors) = enc.encode(&cut);
                    if had_errors {
                        unmappable[i] += 1;
                    }
                    let mut bytes = bytes.into_owned();
                    // Numeric character references can push a GBK value past the limit.
                    bytes.truncate(MAX_CHAR_BYTES);
                    Some(bytes)
                }
            };
            if let Some(c) = &cell {
                widths[i] = widths[i].max(c.len());
            }
            row.push(cell);
        }
        cells.push(row);
    }
    for (i, field) in fields.iter().enumerate() {
        match field.ftype {
            b'L' => widths[i] = 1,
            b'N' => {
                let is_real =
                    matches!(field.source, Source::Prop(c) if columns[c].kind == ColumnKind::Real);
                if is_real {
                    decimals[i] = decimals[i].clamp(1, 15);
                    widths[i] = widths[i].max(decimals[i] + 2);
                }
                widths[i] = widths[i].min(254);
            }
            _ => widths[i] = widths[i].min(MAX_CHAR_BYTES),
        }
    }

    let record_len: usize = 1 + widths.iter().sum::<usize>();
    let header_len = 32 + 32 * fields.len() + 1;
    let mut out = Vec::with_capacity(header_len + record_len * rows.len() + 1);
    let today = time::OffsetDateTime::now_utc().date();
    out.push(0x03);
    out.push((today.year() - 1900).clamp(0, 255) as u8);
    out.push(today.month() as u8);
    out.push(today.day());
    out.extend_from_slice(&(rows.len() as u32).to_le_bytes());
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(&(record_len as u16).to_le_bytes());
    out.extend_from_slice(&[0u8; 17]);
    out.push(encoding.ldid());
    out.extend_from_slice(&[0u8; 2]);
    for (i, field) in fields.iter().enumerate() {
        let mut name = [0u8; 11];
        let n = field.name_bytes.len().min(10);
        name[..n].copy_from_slice(&field.name_bytes[..n]);
        out.extend_from_slice(&name);
        out.push(field.ftype);
        out.extend_from_slice(&[0u8; 4]);
        out.push(widths[i] as u8);
        out.push(if field.ftype == b'N' {
            decimals[i] as u8
        } else {
            0
        });
        out.extend_from_slice(&[0u8; 14]);
    }
    out.push(0x0D);
    for row in &cells {
        out.push(b' ');
        for (i, cell) in row.iter().enumerate() {
            let w = widths[i];
            let field = &fields[i];
            match (cell, field.ftype) {
                (None, b'L') => out.push(b'?'),
                (None, _) => out.extend(std::iter::repeat_n(b' ', w)),
                (Some(bytes), b'N') => {
                    // Right-aligned numbers.
                    let b = &bytes[..bytes.len().min(w)];
                    out.extend(std::iter::repeat_n(b' ', w - b.len()));
                    out.extend_from_slice(b);
                }
                (Some(bytes), _) => {
                    let b = &bytes[..bytes.len().min(w)];
                    out.extend_from_slice(b);
                    out.extend(std::iter::repeat_n(b' ', w - b.len()));
                }
            }
        }
    }
    out.push(0x1A);

    let notes = (0..fields.len())
        .map(|i| {
            let mut parts = Vec::new();
            if truncated[i] > 0 {
                parts.push(format!(
                    "{} value(s) cut to {MAX_CHAR_BYTES} bytes",
                    truncated[i]
                ));
            }
            if unmappable[i] > 0 {
                parts.push(format!(
                    "{} value(s) had characters {} cannot hold (written as &#NNNN;)",
                    unmappable[i],
                    encoding.cpg()
                ));
            }
            parts.join("; ")
        })
        .collect();
    (out, notes)
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct ShapefileParts {
    /// Name as in the zip, for messages.
    display: String,
    stem: String,
    shp: Option<usize>,
    dbf: Option<usize>,
    prj: Option<usize>,
    cpg: Option<usize>,
}

/// One row of `fields.csv`.
struct MappedField {
    layer: String,
    property: String,
    kind: String,
}

/// `fields.csv` by file stem (lower case), then by field name (lower case).
type Mapping = HashMap<String, HashMap<String, MappedField>>;

/// What a streamed read went through: each layer's name and number of features, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamedLayers {
    pub layers: Vec<(String, usize)>,
}

impl StreamedLayers {
    /// Features read in all.
    pub fn total(&self) -> usize {
        self.layers.iter().map(|(_, n)| n).sum()
    }

    /// Puts features read in order back into their layers.
    pub(crate) fn regroup(&self, features: Vec<Feature>) -> Vec<ImportedLayer> {
        let mut it = features.into_iter();
        self.layers
            .iter()
            .map(|(name, n)| ImportedLayer {
                name: name.clone(),
                features: it.by_ref().take(*n).collect(),
            })
            .collect()
    }
}

/// Reads every Shapefile in a zip (see the module docs), whole. `crs_override` wins over
/// `.prj`. Imports use [`stream_shapefile_zip`], which holds one record at a time.
pub fn read_shapefile_zip(
    bytes: &[u8],
    crs_override: Option<&Crs>,
) -> Result<Vec<ImportedLayer>, ImportError> {
    let mut features = Vec::new();
    let read = stream_shapefile_zip(&|| Ok(Cursor::new(bytes)), crs_override, &mut |f| {
        features.push(f);
        true
    })?;
    Ok(read.regroup(features))
}

/// Reads every Shapefile in a zip (see the module docs) one record at a time, handing each
/// feature to `sink` (its `layer` is the layer's name in the file) as soon as it is read and
/// checked; `sink` answers false to stop the read ([`ImportError::Cancelled`]). `open` opens the
/// zip from its start; it is called twice, because a `.shp` and its `.dbf` are inflated side by
/// side. Memory is a few records and 16 bytes a record for the id check, whatever the size of
/// the zip.
///
/// All or nothing, as [`read_shapefile_zip`]: after the first unusable feature no more features
/// are handed over, but the read goes on to count and list the problems, and the result is the
/// same error; a consumer must not keep what it was given unless the result is `Ok`.
pub fn stream_shapefile_zip<R: Read + Seek>(
    open: &dyn Fn() -> std::io::Result<R>,
    crs_override: Option<&Crs>,
    sink: &mut dyn FnMut(Feature) -> bool,
) -> Result<StreamedLayers, ImportError> {
    let archive = || {
        let reader = open().map_err(|e| ImportError::Corrupt(e.to_string()))?;
        zip::ZipArchive::new(reader)
            .map_err(|e| ImportError::Corrupt(format!("not a zip archive ({e})")))
    };
    // `.dbf`, `.prj`, `.cpg` and `fields.csv` come from this one, `.shp` from the other.
    let mut zip = archive()?;
    let (sets, mapping_index) = list_sets(&mut zip)?;
    let unpack = Unpacking::default();
    let mapping = match mapping_index {
        Some(i) => read_mapping(&read_entry(&mut zip, i, MAPPING_FILE, &unpack)?),
        None => HashMap::new(),
    };
    let mut plans = Vec::with_capacity(sets.len());
    for set in &sets {
        plans.push(plan_set(&mut zip, set, &mapping, crs_override, &unpack)?);
    }
    // Layers in the order they first appear; a layer's files in zip order.
    let mut layers: Vec<(String, Vec<SetPlan>)> = Vec::new();
    for plan in plans {
        match layers.iter_mut().find(|(name, _)| *name == plan.layer) {
            Some((_, members)) => members.push(plan),
            None => layers.push((plan.layer.clone(), vec![plan])),
        }
    }
    let mut shp_zip = archive()?;
    let label = layers.len() > 1;
    let mut problems = Problems::default();
    let mut out = StreamedLayers::default();
    for (name, members) in &layers {
        let mut tables = Vec::with_capacity(members.len());
        let mut ids = IdCheck::default();
        for plan in members {
            let mut table = decide_table(&mut zip, plan, &unpack)?;
            match table.ids.take() {
                Some(set_ids) => ids.merge(set_ids),
                None => ids.spoil(),
            }
            tables.push(table);
        }
        let use_ids = ids.usable();
        drop(ids);
        let prefix = if label {
            format!("layer {name}: ")
        } else {
            String::new()
        };
        let mut index = 0usize;
        for (plan, table) in members.iter().zip(&tables) {
            let shp = open_entry(&mut shp_zip, plan.shp, &plan.file, &unpack)?;
            let mut shp = ShpReader::open(std::io::BufReader::with_capacity(1 << 16, shp))
                .map_err(|e| e.import(&plan.file))?;
            let dbf_file = format!("{}.dbf", plan.stem);
            let mut dbf = open_dbf(&mut zip, plan, &unpack)?;
            let (mut shapes, mut records) = (0usize, 0usize);
            loop {
                let shape = shp.next().map_err(|e| e.import(&plan.file))?;
                let record = dbf.next().map_err(|e| e.import(&dbf_file))?;
                let (shape, record) = match (shape, record) {
                    (None, None) => break,
                    (Some(s), Some(r)) => (s, r),
                    (s, r) => {
                        // Count the rest of the longer one for the message.
                        let (mut more_shapes, mut more_records) =
                            (usize::from(s.is_some()), usize::from(r.is_some()));
                        while shp.next().map_err(|e| e.import(&plan.file))?.is_some() {
                            more_shapes += 1;
                        }
                        while dbf.next().map_err(|e| e.import(&dbf_file))?.is_some() {
                            more_records += 1;
                        }
                        return Err(ImportError::Corrupt(format!(
                            "{} has {} shapes but its .dbf {} records",
                            plan.file,
                            shapes + more_shapes,
                            records + more_records
                        )));
                    }
                };
                shapes += 1;
                records += 1;
                if record.first() == Some(&b'*') {
                    continue; // deleted
                }
                // Once a feature is unusable nothing more is imported: the rest are only checked.
                let want_properties = problems.total == 0;
                let raw = table.record(record, shape, plan.map, want_properties);
                let feature =
                    assemble_feature(name, index, raw, &plan.crs, use_ids, &mut problems, &prefix);
                index += 1;
                if let (Some(f), 0) = (feature, problems.total) {
                    if !sink(f) {
                        return Err(ImportError::Cancelled);
                    }
                }
            }
        }
        out.layers.push((name.clone(), index));
    }
    import_result(Vec::new(), problems, out.total())?;
    Ok(out)
}

/// Zips a Shapefile on disk, given by its `.shp`, with the `.dbf`, `.prj` and `.cpg` beside it
/// (same name, any case), into `out` for [`stream_shapefile_zip`]: stored, not compressed, and
/// copied through a small buffer, never held in memory.
pub fn zip_shapefile_parts<W: Write + Seek>(shp: &std::path::Path, out: W) -> std::io::Result<W> {
    let dir = match shp.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let name = shp
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.to_lowercase();
    let mut zip = zip::ZipWriter::new(out);
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let (Some(s), Some(ext)) = (path.file_stem(), path.extension()) else {
            continue;
        };
        let ext = ext.to_string_lossy().to_lowercase();
        if s.to_string_lossy().to_lowercase() != stem
            || !matches!(ext.as_str(), "shp" | "dbf" | "prj" | "cpg")
        {
            continue;
        }
        zip.start_file(format!("{name}.{ext}"), opts)
            .map_err(std::io::Error::other)?;
        std::io::copy(&mut std::fs::File::open(&path)?, &mut zip)?;
    }
    zip.finish().map_err(std::io::Error::other)
}

/// The Shapefiles in the zip (those with a `.shp`) and the index of `fields.csv`, if any.
fn list_sets<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
) -> Result<(Vec<ShapefileParts>, Option<usize>), ImportError> {
    let mut sets: Vec<ShapefileParts> = Vec::new();
    let mut mapping_index = None;
    let mut set_of_stem: HashMap<String, usize> = HashMap::new();
    for i in 0..zip.len() {
        let entry = zip
            .by_index_raw(i)
            .map_err(|e| ImportError::Corrupt(format!("zip entry {i}: {e}")))?;
        if entry.is_dir() {
            continue;
        }
        let name = entry.name().to_string();
        if name.starts_with("__MACOSX/")
            || name.rsplit('/').next().is_some_and(|b| b.starts_with("._"))
        {
            continue;
        }
        let Some((stem_path, ext)) = name.rsplit_once('.') else {
            continue;
        };
        let ext = ext.to_ascii_lowercase();
        let base = stem_path
            .rsplit('/')
            .next()
            .unwrap_or(stem_path)
            .to_string();
        if format!("{base}.{ext}").eq_ignore_ascii_case(MAPPING_FILE) {
            mapping_index = Some(i);
            continue;
        }
        if !matches!(ext.as_str(), "shp" | "dbf" | "prj" | "cpg") {
            continue;
        }
        // A map, not a search of `sets`: a zip may list hundreds of thousands of entries.
        let key = stem_path.to_lowercase();
        let set = match set_of_stem.get(&key) {
            Some(&p) => &mut sets[p],
            None => {
                set_of_stem.insert(key, sets.len());
                sets.push(ShapefileParts {
                    stem: stem_path.to_string(),
                    display: format!("{stem_path}.shp"),
                    ..Default::default()
                });
                sets.last_mut().expect("just pushed")
            }
        };
        match ext.as_str() {
            "shp" => set.shp = Some(i),
            "dbf" => set.dbf = Some(i),
            "prj" => set.prj = Some(i),
            _ => set.cpg = Some(i),
        }
    }
    sets.retain(|s| s.shp.is_some());
    if sets.is_empty() {
        return Err(ImportError::Empty(
            "the zip holds no .shp file; a zipped Shapefile needs at least .shp, .dbf and .prj"
                .into(),
        ));
    }
    Ok((sets, mapping_index))
}

fn read_mapping(csv: &[u8]) -> Mapping {
    let text = String::from_utf8_lossy(csv);
    let mut m: Mapping = HashMap::new();
    for row in parse_csv(&text).into_iter().skip(1) {
        if let [layer, file, field, property, kind, ..] = row.as_slice() {
            m.entry(file.to_lowercase()).or_default().insert(
                field.to_lowercase(),
                MappedField {
                    layer: layer.clone(),
                    property: property.clone(),
                    kind: kind.clone(),
                },
            );
        }
    }
    m
}

/// One Shapefile of the zip, its small parts read: where its records go and how to read them.
struct SetPlan<'m> {
    /// `dir/name.shp`, for messages.
    file: String,
    stem: String,
    shp: usize,
    dbf: usize,
    cpg: Option<String>,
    crs: Crs,
    layer: String,
    map: Option<&'m HashMap<String, MappedField>>,
}

/// The CRS, `.cpg` and layer of a Shapefile; refuses one without `.dbf` or a usable CRS before
/// any record is read.
fn plan_set<'m, R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    set: &ShapefileParts,
    mapping: &'m Mapping,
    crs_override: Option<&Crs>,
    unpack: &Unpacking,
) -> Result<SetPlan<'m>, ImportError> {
    let file = set.display.clone();
    let crs = match crs_override {
        Some(c) => *c,
        None => {
            let Some(i) = set.prj else {
                return Err(ImportError::NoCrs { file });
            };
            let raw = read_entry(zip, i, &file, unpack)?;
            let wkt = String::from_utf8_lossy(&raw).into_owned();
            crs_from_wkt(&wkt).map_err(|e| ImportError::UnknownCrs {
                file: file.clone(),
                wkt_excerpt: wkt_excerpt(&wkt),
                reason: e.0,
            })?
        }
    };
    let Some(dbf) = set.dbf else {
        return Err(ImportError::MissingPart { file, part: ".dbf" });
    };
    let shp = set.shp.expect("sets without .shp are dropped");
    // Entries that declare more than the limits are refused before anything is inflated.
    open_entry(zip, shp, &file, unpack)?;
    open_entry(zip, dbf, &file, unpack)?;
    let cpg = match set.cpg {
        Some(i) => Some(String::from_utf8_lossy(&read_entry(zip, i, &file, unpack)?).into_owned()),
        None => None,
    };
    let base = set.stem.rsplit('/').next().unwrap_or(&set.stem).to_string();
    let map = mapping.get(&base.to_lowercase());
    let layer = map
        .and_then(|m| m.values().next())
        .map(|f| f.layer.clone())
        .unwrap_or(base);
    Ok(SetPlan {
        file,
        stem: set.stem.clone(),
        shp,
        dbf,
        cpg,
        crs,
        layer,
        map,
    })
}

/// How the records of one `.dbf` are read: its fields, their encoding, which holds the id.
struct DbfTable {
    fields: Vec<DbfField>,
    encoding: &'static Encoding,
    id_field: Option<usize>,
    /// The ids of the id field, when there is one, for the layer's check.
    ids: Option<IdCheck>,
}

impl DbfTable {
    fn decode(&self, b: &[u8]) -> String {
        self.encoding.decode_without_bom_handling(b).0.into_owned()
    }

    /// The record's values, in field order (`record` without its deletion byte).
    fn values<'r>(&'r self, record: &'r [u8]) -> impl Iterator<Item = Value> + 'r {
        let mut off = 1;
        self.fields.iter().map(move |f| {
            let cell = &record[off..off + f.len];
            off += f.len;
            dbf_value(f, cell, &|b| self.decode(b))
        })
    }

    /// The id of a record (not deleted).
    fn id(&self, record: &[u8]) -> Option<String> {
        let i = self.id_field?;
        let off = 1 + self.fields[..i].iter().map(|f| f.len).sum::<usize>();
        let f = &self.fields[i];
        id_text(&dbf_value(f, &record[off..off + f.len], &|b| {
            self.decode(b)
        }))
    }

    /// One record as read from the files; properties only when `properties`.
    fn record(
        &self,
        record: &[u8],
        shape: Result<Option<Geometry<f64>>, String>,
        map: Option<&HashMap<String, MappedField>>,
        properties: bool,
    ) -> RawFeature {
        let mut props = Properties::new();
        if properties {
            for (i, (field, value)) in self.fields.iter().zip(self.values(record)).enumerate() {
                if Some(i) == self.id_field {
                    continue;
                }
                let (key, value) = match map.and_then(|m| m.get(&field.name.to_lowercase())) {
                    Some(mf) => {
                        let v = match (&value, mf.kind.as_str()) {
                            (Value::String(s), k) => typed_from_text(s, k),
                            (Value::Number(n), "real") => json_f64(n.as_f64().unwrap_or(f64::NAN)),
                            _ => value,
                        };
                        (mf.property.clone(), v)
                    }
                    None => (field.name.clone(), value),
                };
                props.insert(key, value);
            }
        }
        RawFeature {
            id: self.id(record),
            properties: props,
            geometry: shape,
        }
    }
}

/// Reads a `.dbf`'s header, and its records once or twice more when needed: to guess the
/// encoding (no `.cpg`, no language driver) and to see whether an id field's values are usable.
fn decide_table<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    plan: &SetPlan,
    unpack: &Unpacking,
) -> Result<DbfTable, ImportError> {
    let file = format!("{}.dbf", plan.stem);
    let header = open_dbf(zip, plan, unpack)?.header;
    let known = plan
        .cpg
        .as_deref()
        .and_then(encoding_for_cpg)
        .or(match header.ldid {
            0x4D => Some(encoding_rs::GBK),
            0x4E => Some(encoding_rs::EUC_KR),
            0x4F => Some(encoding_rs::BIG5),
            0x7A => Some(encoding_rs::GBK),
            _ => None,
        });
    let encoding = match known {
        Some(e) => e,
        None => {
            // Guess: UTF-8 if every name and text cell is valid UTF-8, else GBK.
            let mut utf8 = header
                .fields
                .iter()
                .all(|f| std::str::from_utf8(&f.0).is_ok());
            let mut r = open_dbf(zip, plan, unpack)?;
            while utf8 {
                let Some(rec) = r.next().map_err(|e| e.import(&file))? else {
                    break;
                };
                let mut off = 1;
                utf8 = header.fields.iter().all(|f| {
                    let cell = &rec[off..off + f.2];
                    off += f.2;
                    f.1 != b'C' || std::str::from_utf8(cell).is_ok()
                });
            }
            if utf8 {
                encoding_rs::UTF_8
            } else {
                encoding_rs::GBK
            }
        }
    };
    let fields: Vec<DbfField> = header
        .fields
        .iter()
        .map(|(name, t, len, dec)| DbfField {
            name: encoding
                .decode_without_bom_handling(name)
                .0
                .trim()
                .to_string(),
            ftype: *t,
            len: *len,
            decimals: *dec,
        })
        .collect();
    // The id field yizhangtu's `fields.csv` names, else the first of `id`, `fid` whose values
    // are all present and distinct.
    let candidates: Vec<usize> = match plan.map {
        Some(m) => fields
            .iter()
            .position(|f| {
                m.get(&f.name.to_lowercase())
                    .is_some_and(|mf| mf.kind == "id")
            })
            .into_iter()
            .collect(),
        None => ["id", "fid"]
            .iter()
            .filter_map(|c| fields.iter().position(|f| f.name.eq_ignore_ascii_case(c)))
            .collect(),
    };
    let mut table = DbfTable {
        fields,
        encoding,
        id_field: None,
        ids: None,
    };
    if candidates.is_empty() {
        return Ok(table);
    }
    let mut checks: Vec<IdCheck> = candidates.iter().map(|_| IdCheck::default()).collect();
    let mut r = open_dbf(zip, plan, unpack)?;
    while let Some(rec) = r.next().map_err(|e| e.import(&file))? {
        if rec.first() == Some(&b'*') {
            continue;
        }
        for (&c, check) in candidates.iter().zip(&mut checks) {
            table.id_field = Some(c);
            check.add(table.id(rec).as_deref());
        }
    }
    // A field `fields.csv` names is the id even when its values are not usable (then the
    // features are numbered); a foreign `id`/`fid` only when they are.
    let chosen = match plan.map {
        Some(_) => Some(0),
        None => checks.iter().position(IdCheck::usable),
    };
    table.id_field = chosen.map(|i| candidates[i]);
    table.ids = chosen.map(|i| checks.swap_remove(i));
    Ok(table)
}

/// The `.dbf` of a Shapefile, opened for reading from its start.
#[allow(clippy::type_complexity)]
fn open_dbf<'a, 'u, R: Read + Seek>(
    zip: &'a mut zip::ZipArchive<R>,
    plan: &SetPlan,
    unpack: &'u Unpacking,
) -> Result<DbfReader<std::io::BufReader<LimitedEntry<'a, 'u, R>>>, ImportError> {
    let file = format!("{}.dbf", plan.stem);
    let entry = open_entry(zip, plan.dbf, &file, unpack)?;
    DbfReader::open(std::io::BufReader::with_capacity(1 << 16, entry)).map_err(|e| e.import(&file))
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// The bytes inflated from the zip so far, each entry counted once however often it is read.
#[derive(Default)]
struct Unpacking {
    total: std::cell::Cell<u64>,
    /// Bytes counted per entry.
    counted: std::cell::RefCell<HashMap<usize, u64>>,
}

/// An entry being inflated, refused as soon as it passes [`MAX_ZIP_RATIO`] or all the entries
/// read so far pass [`MAX_ZIP_UNCOMPRESSED_BYTES`]: the sizes a zip declares are used to
/// refuse early but never trusted.
struct LimitedEntry<'a, 'u, R: Read> {
    entry: zip::read::ZipFile<'a, R>,
    index: usize,
    name: String,
    packed: u64,
    by_ratio: u64,
    read: u64,
    unpack: &'u Unpacking,
}

/// Why an entry was refused, carried through `std::io::Error`.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The message for an entry that unpacks past a limit.
fn refusal(name: &str, packed: u64, size: u64, more: bool, by_ratio: bool) -> String {
    let size = format!(
        "{}{:.1} MiB",
        if more { "more than " } else { "" },
        size as f64 / f64::from(1 << 20)
    );
    if by_ratio {
        format!(
            "zip entry '{name}' unpacks to {size} from {packed} bytes, more than {MAX_ZIP_RATIO} times its packed size (the limit for entries over {} MiB); nothing was unpacked further",
            ZIP_RATIO_FREE_BYTES >> 20
        )
    } else {
        format!(
            "zip entry '{name}' unpacks to {size}: the entries of one upload may unpack to at most {} MiB together",
            MAX_ZIP_UNCOMPRESSED_BYTES >> 20
        )
    }
}

impl<R: Read> Read for LimitedEntry<'_, '_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.entry.read(buf)?;
        self.read += n as u64;
        if self.read > self.by_ratio {
            let m = refusal(&self.name, self.packed, self.by_ratio, true, true);
            return Err(std::io::Error::other(Refused(m)));
        }
        let mut counted = self.unpack.counted.borrow_mut();
        let seen = counted.entry(self.index).or_default();
        if self.read > *seen {
            let total = self.unpack.total.get() + (self.read - *seen);
            *seen = self.read;
            self.unpack.total.set(total);
            if total > MAX_ZIP_UNCOMPRESSED_BYTES {
                let m = refusal(&self.name, self.packed, self.read, true, false);
                return Err(std::io::Error::other(Refused(m)));
            }
        }
        Ok(n)
    }
}

/// Opens entry `i` for inflating under the limits; refuses it at once when its declared size
/// passes them.
fn open_entry<'a, 'u, R: Read + Seek>(
    zip: &'a mut zip::ZipArchive<R>,
    i: usize,
    file: &str,
    unpack: &'u Unpacking,
) -> Result<LimitedEntry<'a, 'u, R>, ImportError> {
    let entry = zip
        .by_index(i)
        .map_err(|e| ImportError::Corrupt(format!("{file}: {e}")))?;
    let name = entry.name().to_string();
    let packed = entry.compressed_size();
    let by_ratio = packed
        .saturating_mul(MAX_ZIP_RATIO)
        .max(ZIP_RATIO_FREE_BYTES);
    let before = unpack.counted.borrow().get(&i).copied().unwrap_or(0);
    let left = MAX_ZIP_UNCOMPRESSED_BYTES.saturating_sub(unpack.total.get()) + before;
    if entry.size() > left.min(by_ratio) {
        let m = refusal(&name, packed, entry.size(), false, by_ratio < left);
        return Err(ImportError::TooLarge(m));
    }
    Ok(LimitedEntry {
        entry,
        index: i,
        name,
        packed,
        by_ratio,
        read: 0,
        unpack,
    })
}

/// An I/O error while inflating: a refusal stays one, anything else means a damaged zip.
fn io_error(file: &str, e: std::io::Error) -> ImportError {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<Refused>())
    {
        Some(Refused(m)) => ImportError::TooLarge(m.clone()),
        None => ImportError::Corrupt(format!("{file}: {e}")),
    }
}

/// Unpacks a small entry (`.prj`, `.cpg`, `fields.csv`) whole, under the limits.
fn read_entry<R: Read + Seek>(
    zip: &mut zip::ZipArchive<R>,
    i: usize,
    file: &str,
    unpack: &Unpacking,
) -> Result<Vec<u8>, ImportError> {
    let mut entry = open_entry(zip, i, file, unpack)?;
    let mut buf = Vec::new();
    entry.read_to_end(&mut buf).map_err(|e| io_error(file, e))?;
    Ok(buf)
}

/// Why a `.shp` or `.dbf` stream could not be read.
enum ReadError {
    Io(std::io::Error),
    Format(String),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

impl From<String> for ReadError {
    fn from(e: String) -> ReadError {
        ReadError::Format(e)
    }
}

impl From<&str> for ReadError {
    fn from(e: &str) -> ReadError {
        ReadError::Format(e.to_string())
    }
}

impl ReadError {
    fn import(self, file: &str) -> ImportError {
        match self {
            ReadError::Io(e) => io_error(file, e),
            ReadError::Format(m) => ImportError::Corrupt(format!("{file}: {m}")),
        }
    }
}

/// Reads into `buf` until it is full or the input ends; how many bytes it got.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A `.shp` read record by record, in order (no `.shx` needed).
struct ShpReader<R> {
    r: R,
    /// Byte offset in the file, for messages.
    pos: u64,
    content: Vec<u8>,
}

impl<R: Read> ShpReader<R> {
    /// Reads and checks the 100-byte file header.
    fn open(mut r: R) -> Result<ShpReader<R>, ReadError> {
        let mut head = [0u8; 100];
        let got = read_full(&mut r, &mut head)?;
        if got < 4 {
            return Err("not a .shp file (too short)".into());
        }
        if i32::from_be_bytes(head[0..4].try_into().expect("4 bytes")) != 9994 {
            return Err("not a .shp file (file code is not 9994)".into());
        }
        if got < 100 {
            return Err(format!("ends early at byte {got}").into());
        }
        if i32::from_le_bytes(head[32..36].try_into().expect("4 bytes")) == 31 {
            return Err("MultiPatch Shapefiles are not supported".into());
        }
        Ok(ShpReader {
            r,
            pos: 100,
            content: Vec::new(),
        })
    }

    /// The next record's geometry (file CRS), or why that record cannot be read; `None` at
    /// the end. A damaged file as a whole is the outer `Err`.
    #[allow(clippy::type_complexity)]
    fn next(&mut self) -> Result<Option<Result<Option<Geometry<f64>>, String>>, ReadError> {
        let mut head = [0u8; 8];
        if read_full(&mut self.r, &mut head)? < 8 {
            return Ok(None);
        }
        let words = i32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
        if words < 0 {
            return Err(format!("negative record length at byte {}", self.pos + 4).into());
        }
        self.pos += 8;
        let len = words as u64 * 2;
        self.content.clear();
        // Grows with what arrives, not with what the header claims.
        (&mut self.r).take(len).read_to_end(&mut self.content)?;
        if (self.content.len() as u64) < len {
            return Err(format!("ends early at byte {}", self.pos).into());
        }
        self.pos += len;
        Ok(Some(read_shape(&self.content)))
    }
}

/// A bounds-checked reader over a byte slice.
struct Bytes<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).ok_or("length overflow")?;
        let s = self
            .b
            .get(self.pos..end)
            .ok_or_else(|| format!("ends early at byte {}", self.pos))?;
        self.pos = end;
        Ok(s)
    }
    fn i32_le(&mut self) -> Result<i32, String> {
        Ok(i32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn f64_le(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn count(&mut self, item: usize) -> Result<usize, String> {
        let n = self.i32_le()?;
        if n < 0 || (n as usize).saturating_mul(item) > self.b.len() - self.pos.min(self.b.len()) {
            return Err(format!("count {n} does not fit the record"));
        }
        Ok(n as usize)
    }
    fn coord(&mut self) -> Result<Coord<f64>, String> {
        Ok(Coord {
            x: self.f64_le()?,
            y: self.f64_le()?,
        })
    }
}

fn read_shape(content: &[u8]) -> Result<Option<Geometry<f64>>, String> {
    let mut r = Bytes { b: content, pos: 0 };
    let t = r.i32_le()?;
    let base = match t {
        0 => return Ok(None),
        1 | 11 | 21 => 1,
        3 | 13 | 23 => 3,
        5 | 15 | 25 => 5,
        8 | 18 | 28 => 8,
        other => return Err(format!("shape type {other} is not supported")),
    };
    match base {
        1 => Ok(Some(Geometry::Point(Point(r.coord()?)))),
        8 => {
            r.take(32)?;
            let n = r.count(16)?;
            let mut pts = Vec::with_capacity(n);
            for _ in 0..n {
                pts.push(Point(r.coord()?));
            }
            Ok(Some(Geometry::MultiPoint(MultiPoint(pts))))
        }
        _ => {
            r.take(32)?;
            let nparts = r.count(4)?;
            let npoints = r.count(16)?;
            let mut starts = Vec::with_capacity(nparts);
            for _ in 0..nparts {
                let s = r.i32_le()?;
                if s < 0 || s as usize > npoints {
                    return Err(format!("part start {s} is outside the {npoints} points"));
                }
                starts.push(s as usize);
            }
            let mut pts = Vec::with_capacity(npoints);
            for _ in 0..npoints {
                pts.push(r.coord()?);
            }
            let mut parts = Vec::with_capacity(nparts);
            for (i, &s) in starts.iter().enumerate() {
                let e = starts.get(i + 1).copied().unwrap_or(npoints);
                if e < s {
                    return Err("part starts are not in order".into());
                }
                parts.push(pts[s..e].to_vec());
            }
            if parts.is_empty() {
                return Ok(None);
            }
            if base == 3 {
                let mut lines: Vec<LineString<f64>> = parts.into_iter().map(LineString).collect();
                Ok(Some(if lines.len() == 1 {
                    Geometry::LineString(lines.remove(0))
                } else {
                    Geometry::MultiLineString(geo::MultiLineString(lines))
                }))
            } else {
                assemble_polygons(parts).map(Some)
            }
        }
    }
}

struct DbfField {
    name: String,
    ftype: u8,
    len: usize,
    decimals: u8,
}

/// The encoding a `.cpg` names.
fn encoding_for_cpg(cpg: &str) -> Option<&'static Encoding> {
    let label = cpg.trim().trim_start_matches('\u{feff}');
    let lower = label.to_ascii_lowercase();
    match lower.as_str() {
        "utf-8" | "utf8" | "65001" => Some(encoding_rs::UTF_8),
        "gbk" | "936" | "cp936" | "ansi 936" | "gb2312" | "ms936" => Some(encoding_rs::GBK),
        "gb18030" | "54936" => Some(encoding_rs::GB18030),
        "big5" | "950" | "cp950" => Some(encoding_rs::BIG5),
        "88591" | "8859_1" | "iso-8859-1" | "latin1" | "1252" | "cp1252" => {
            Some(encoding_rs::WINDOWS_1252)
        }
        _ => Encoding::for_label(label.as_bytes()),
    }
}

/// A `.dbf` header: fields as (name bytes, type, length, decimals), records, language driver.
struct DbfHeader {
    fields: Vec<(Vec<u8>, u8, usize, u8)>,
    record_len: usize,
    ldid: u8,
}

/// A `.dbf` read record by record, in order.
struct DbfReader<R> {
    r: R,
    header: DbfHeader,
    left: usize,
    record: Vec<u8>,
}

impl<R: Read> DbfReader<R> {
    /// Reads and checks the header and field descriptors.
    fn open(mut r: R) -> Result<DbfReader<R>, ReadError> {
        let mut head = vec![0u8; 32];
        if read_full(&mut r, &mut head)? < 32 {
            return Err("not a dBASE file (too short)".into());
        }
        let records = u32::from_le_bytes(head[4..8].try_into().expect("4")) as usize;
        let header_len = u16::from_le_bytes(head[8..10].try_into().expect("2")) as usize;
        let record_len = u16::from_le_bytes(head[10..12].try_into().expect("2")) as usize;
        let ldid = head[29];
        head.resize(header_len.max(32), 0);
        if header_len < 33 || read_full(&mut r, &mut head[32..])? < header_len - 32 {
            return Err(format!("header length {header_len} does not fit the file").into());
        }
        let mut fields = Vec::new();
        let mut pos = 32;
        while pos + 32 <= header_len && head[pos] != 0x0D {
            let d = &head[pos..pos + 32];
            let name_end = d[..11].iter().position(|&b| b == 0).unwrap_or(11);
            fields.push((d[..name_end].to_vec(), d[11], d[16] as usize, d[17]));
            pos += 32;
        }
        let sum: usize = fields.iter().map(|f| f.2).sum();
        if record_len < 1 + sum {
            return Err(format!(
                "record length {record_len} is shorter than its fields ({})",
                1 + sum
            )
            .into());
        }
        Ok(DbfReader {
            r,
            header: DbfHeader {
                fields,
                record_len,
                ldid,
            },
            left: records,
            record: vec![0; record_len],
        })
    }

    /// The next record, its deletion byte first (`*`: deleted); `None` after the number of
    /// records the header gives, or where the file ends (a cut last record is left out).
    fn next(&mut self) -> Result<Option<&[u8]>, ReadError> {
        if self.left == 0 {
            return Ok(None);
        }
        if read_full(&mut self.r, &mut self.record)? < self.header.record_len {
            self.left = 0;
            return Ok(None);
        }
        self.left -= 1;
        Ok(Some(&self.record))
    }
}

fn dbf_value(f: &DbfField, cell: &[u8], decode: &dyn Fn(&[u8]) -> String) -> Value {
    let ascii = || String::from_utf8_lossy(cell).trim().to_string();
    match f.ftype {
        b'N' | b'F' => {
            let t = ascii();
            if t.is_empty() || t.starts_with('*') {
                return Value::Null;
            }
            if f.decimals == 0 {
                if let Ok(i) = t.parse::<i64>() {
                    return Value::from(i);
                }
            }
            t.parse::<f64>().map(json_f64).unwrap_or(Value::Null)
        }
        b'L' => match cell.first() {
            Some(b'T' | b't' | b'Y' | b'y') => Value::Bool(true),
            Some(b'F' | b'f' | b'N' | b'n') => Value::Bool(false),
            _ => Value::Null,
        },
        b'D' => {
            let t = ascii();
            if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
                Value::String(format!("{}-{}-{}", &t[0..4], &t[4..6], &t[6..8]))
            } else if t.is_empty() {
                Value::Null
            } else {
                Value::String(t)
            }
        }
        b'I' if cell.len() == 4 => Value::from(i32::from_le_bytes(cell.try_into().expect("4"))),
        b'O' | b'B' if cell.len() == 8 => json_f64(f64::from_le_bytes(cell.try_into().expect("8"))),
        b'M' | b'G' | b'P' => Value::Null,
        _ => {
            let s = decode(cell);
            let s = s.trim_end_matches([' ', '\0']);
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::exchange::tests_support::*;
    use geo::polygon;
    use std::sync::Arc;

    fn zip_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in files {
            z.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            z.write_all(data).unwrap();
        }
        z.finish().unwrap().into_inner()
    }

    fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut z = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        (0..z.len())
            .map(|i| {
                let mut e = z.by_index(i).unwrap();
                let mut v = Vec::new();
                e.read_to_end(&mut v).unwrap();
                (e.name().to_string(), v)
            })
            .collect()
    }

    #[test]
    fn round_trip_gbk_and_utf8_in_gk_and_lonlat() {
        let (layer, features) = sample_layer("projects");
        let (plain, plain_features) = sample_polygons_layer("parcels");
        for (crs, enc) in [
            (Crs::from_epsg(4545).unwrap(), DbfEncoding::Gbk),
            (Crs::from_epsg(4524).unwrap(), DbfEncoding::Utf8),
            (Crs::Epsg4490, DbfEncoding::Gbk),
        ] {
            let bytes = write_shapefile_zip(
                &[
                    ExportLayer {
                        layer: &layer,
                        features: features.iter().cloned().map(Arc::new).collect(),
                    },
                    ExportLayer {
                        layer: &plain,
                        features: plain_features.iter().cloned().map(Arc::new).collect(),
                    },
                ],
                &crs,
                enc,
            )
            .unwrap();
            let names: Vec<String> = unzip(&bytes).into_iter().map(|(n, _)| n).collect();
            for want in [
                "projects_point.shp",
                "projects_line.shx",
                "projects_polygon.dbf",
                "projects_multipoint.prj",
                "parcels.cpg",
                "parcels.shp",
                MAPPING_FILE,
            ] {
                assert!(
                    names.iter().any(|n| n == want),
                    "{want} missing from {names:?}"
                );
            }
            let back = read_shapefile_zip(&bytes, None).unwrap();
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].name, "projects");
            assert_same_features(&features, &back[0].features, Lossy::Shapefile);
            assert_eq!(back[1].name, "parcels");
            assert_same_features(&plain_features, &back[1].features, Lossy::Shapefile);
        }
    }

    #[test]
    fn long_names_and_long_values_are_mapped_and_cut() {
        let layer = crate::model::Layer::untitled("t");
        let long = "很长的说明文字".repeat(30); // 210 chars, 630 UTF-8 bytes, 420 GBK bytes
        let f = crate::model::Feature::from_parts(
            "t",
            "1".into(),
            serde_json::json!({
                "investment_total_wan": 1, "investment_total_yuan": 2, "项目建设内容说明": long, "a b": "x"
            })
            .as_object()
            .unwrap()
            .clone(),
            Some(Geometry::Point(Point::new(106.5, 29.5))),
        );
        let bytes = write_shapefile_zip(
            &[ExportLayer {
                layer: &layer,
                features: vec![Arc::new(f)],
            }],
            &Crs::from_epsg(4523).unwrap(),
            DbfEncoding::Gbk,
        )
        .unwrap();
        let files = unzip(&bytes);
        let mapping = &files.iter().find(|(n, _)| n == MAPPING_FILE).unwrap().1;
        let text = String::from_utf8(mapping.clone()).unwrap();
        let rows = parse_csv(&text);
        let field_of = |p: &str| rows.iter().find(|r| r[3] == p).unwrap().clone();
        assert_eq!(field_of("investment_total_wan")[2], "investment");
        assert_eq!(field_of("investment_total_yuan")[2], "investme_2");
        assert_eq!(field_of("项目建设内容说明")[2], "项目建设内"); // 10 GBK bytes
        assert_eq!(field_of("a b")[2], "a_b");
        assert!(field_of("项目建设内容说明")[5].contains("1 value(s) cut to 254 bytes"));
        let back = read_shapefile_zip(&bytes, None).unwrap();
        let p = &back[0].features[0].properties;
        assert_eq!(p["investment_total_wan"], 1);
        assert_eq!(p["a b"], "x");
        let cut = p["项目建设内容说明"].as_str().unwrap();
        assert_eq!(cut.chars().count(), 127); // 254 bytes / 2 bytes per GBK character
        assert!(long.starts_with(cut));
    }

    /// A zip whose `.shp` is `mib` MiB of zeros (deflate packs them ~1000:1), with a `.dbf` and
    /// `.prj`; `lie` rewrites the declared unpacked size of the `.shp` to 1,000 bytes.
    fn zip_bomb(mib: usize, lie: bool) -> Vec<u8> {
        let mut z = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.start_file("x.prj", opts).unwrap();
        z.write_all(&prj_gk()).unwrap();
        // A valid header, then zeros: the reader takes them for empty records until stopped.
        let (header, _) = ShpWriter::new(5).finish();
        z.start_file("x.shp", opts).unwrap();
        z.write_all(&header).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..mib {
            z.write_all(&zeros).unwrap();
        }
        let (dbf, _) = write_dbf(
            &plan_fields(&[], DbfEncoding::Utf8),
            &[],
            &[],
            DbfEncoding::Utf8,
        );
        z.start_file("x.dbf", opts).unwrap();
        z.write_all(&dbf).unwrap();
        let mut bytes = z.finish().unwrap().into_inner();
        if lie {
            let size = ((mib as u32) << 20) + 100; // with the header
            for (sig, at) in [(0x04034b50u32, 22), (0x02014b50, 24)] {
                for i in 0..bytes.len().saturating_sub(30) {
                    if bytes[i..i + 4] == sig.to_le_bytes()
                        && bytes[i + at..i + at + 4] == size.to_le_bytes()
                    {
                        bytes[i + at..i + at + 4].copy_from_slice(&1000u32.to_le_bytes());
                    }
                }
            }
        }
        bytes
    }

    #[test]
    fn zip_bombs_stop_early() {
        let bomb = zip_bomb(16, false);
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        match read_shapefile_zip(&bomb, None) {
            Err(ImportError::TooLarge(m)) => {
                assert!(m.contains("'x.shp'") && m.contains("200 times"), "{m}")
            }
            other => panic!("{other:?}"),
        }
        // Declared sizes are not trusted: a bomb that claims 1,000 bytes is stopped while inflating.
        match read_shapefile_zip(&zip_bomb(16, true), None) {
            Err(ImportError::TooLarge(m)) => {
                assert!(m.contains("unpacks to more than"), "{m}")
            }
            other => panic!("{other:?}"),
        }
    }

    fn prj_gk() -> Vec<u8> {
        Crs::from_epsg(4545)
            .unwrap()
            .wkt_esri()
            .unwrap()
            .into_bytes()
    }

    fn tiny_set(with_prj: Option<Vec<u8>>, shape: Option<Geometry<f64>>) -> Vec<u8> {
        let mut shp = ShpWriter::new(5);
        shp.add(shape.as_ref());
        let (shp, shx) = shp.finish();
        let cols = vec![];
        let fields = plan_fields(&cols, DbfEncoding::Utf8);
        let f = crate::model::Feature::from_parts("x", "7".into(), Default::default(), None);
        let (dbf, _) = write_dbf(&fields, &cols, &[&f], DbfEncoding::Utf8);
        let mut files = vec![("x.shp", shp), ("x.shx", shx), ("x.dbf", dbf)];
        if let Some(p) = with_prj {
            files.push(("x.prj", p));
        }
        zip_of(&files)
    }

    #[test]
    fn bad_inputs_give_clear_errors() {
        let square = Geometry::Polygon(
            polygon![(x: 500000., y: 3300000.), (x: 500000., y: 3300100.), (x: 500100., y: 3300100.), (x: 500100., y: 3300000.), (x: 500000., y: 3300000.)],
        );
        // No .prj, no override.
        let e = read_shapefile_zip(&tiny_set(None, Some(square.clone())), None).unwrap_err();
        assert!(
            matches!(e, ImportError::NoCrs { ref file } if file == "x.shp"),
            "{e}"
        );
        assert!(e.to_string().contains("crs=EPSG:4545"));
        // … but the override works.
        let ok = read_shapefile_zip(
            &tiny_set(None, Some(square.clone())),
            Some(&Crs::from_epsg(4545).unwrap()),
        )
        .unwrap();
        assert_eq!(ok[0].features[0].id, "7");
        assert!(ok[0].features[0].geometry.is_some());
        // Unknown CRS.
        let xian = br#"PROJCS["Xian_1980_3_Degree_GK_CM_108E",GEOGCS["GCS_Xian_1980",DATUM["D_Xian_1980",SPHEROID["Xian_1980",6378140.0,298.257]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]],PROJECTION["Gauss_Kruger"],PARAMETER["False_Easting",500000.0],PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",108.0],PARAMETER["Scale_Factor",1.0],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]"#;
        let e = read_shapefile_zip(&tiny_set(Some(xian.to_vec()), Some(square.clone())), None)
            .unwrap_err();
        assert!(matches!(e, ImportError::UnknownCrs { .. }), "{e}");
        assert!(e.to_string().contains("Xian_1980"), "{e}");
        // Unclosed ring (written clockwise so it is an exterior).
        let open = Geometry::Polygon(geo::Polygon::new(
            LineString::from(vec![
                (500000., 3300000.),
                (500000., 3300100.),
                (500100., 3300100.),
                (500100., 3300000.),
            ]),
            vec![],
        ));
        // geo closes rings in Polygon::new; build the record by hand instead.
        let _ = open;
        let mut content = Vec::new();
        content.extend_from_slice(&5i32.to_le_bytes());
        content.extend_from_slice(&[0u8; 32]);
        content.extend_from_slice(&1i32.to_le_bytes());
        content.extend_from_slice(&4i32.to_le_bytes());
        content.extend_from_slice(&0i32.to_le_bytes());
        for (x, y) in [
            (500000., 3300000.),
            (500000., 3300100.),
            (500100., 3300100.),
            (500100., 3300000.),
        ] {
            content.extend_from_slice(&f64::to_le_bytes(x));
            content.extend_from_slice(&f64::to_le_bytes(y));
        }
        let err = read_shape(&content).unwrap_err();
        assert!(err.contains("not closed"), "{err}");
        // Through the whole reader, with NaN.
        let nan = Geometry::Point(Point::new(f64::NAN, 3300000.0));
        let mut shp = ShpWriter::new(1);
        shp.add(Some(&nan));
        shp.add(Some(&Geometry::Point(Point::new(500000.0, 3300000.0))));
        let (shp, shx) = shp.finish();
        let cols = vec![];
        let fields = plan_fields(&cols, DbfEncoding::Utf8);
        let f1 = crate::model::Feature::from_parts("x", "a1".into(), Default::default(), None);
        let f2 = crate::model::Feature::from_parts("x", "a2".into(), Default::default(), None);
        let (dbf, _) = write_dbf(&fields, &cols, &[&f1, &f2], DbfEncoding::Utf8);
        let z = zip_of(&[
            ("x.shp", shp),
            ("x.shx", shx),
            ("x.dbf", dbf),
            ("x.prj", prj_gk()),
        ]);
        let e = read_shapefile_zip(&z, None).unwrap_err();
        match &e {
            ImportError::Features {
                problems,
                total,
                problems_total,
            } => {
                assert_eq!((*total, *problems_total), (2, 1));
                assert_eq!(problems[0].index, 0);
                assert_eq!(problems[0].id.as_deref(), Some("a1"));
                assert!(
                    problems[0].problem.contains("not a finite number"),
                    "{}",
                    problems[0].problem
                );
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("feature 1 (id a1)"), "{e}");
        // Garbage.
        for junk in [
            &b"not a zip at all"[..],
            &[0u8; 0][..],
            &[0x50, 0x4b, 3, 4, 0, 0][..],
        ] {
            let e = read_shapefile_zip(junk, None).unwrap_err();
            assert!(matches!(e, ImportError::Corrupt(_)), "{e}");
        }
        let e = read_shapefile_zip(
            &zip_of(&[
                ("x.shp", b"garbage garbage".to_vec()),
                ("x.dbf", vec![1; 40]),
                ("x.prj", prj_gk()),
            ]),
            None,
        )
        .unwrap_err();
        assert!(matches!(e, ImportError::Corrupt(_)), "{e}");
        let e = read_shapefile_zip(&zip_of(&[("readme.txt", b"hi".to_vec())]), None).unwrap_err();
        assert!(matches!(e, ImportError::Empty(_)), "{e}");
        let e = read_shapefile_zip(&zip_of(&[("x.shp", vec![]), ("x.prj", prj_gk())]), None)
            .unwrap_err();
        assert!(matches!(e, ImportError::MissingPart { .. }), "{e}");
        // Truncated records never panic.
        let good = tiny_set(Some(prj_gk()), Some(square));
        let files = unzip(&good);
        let shp = &files.iter().find(|(n, _)| n == "x.shp").unwrap().1;
        for cut in [0, 50, 100, 104, 108, 120, shp.len() - 1] {
            let mut f = files.clone();
            f.iter_mut()
                .find(|(n, _)| n == "x.shp")
                .unwrap()
                .1
                .truncate(cut);
            let refs: Vec<(&str, Vec<u8>)> =
                f.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
            let _ = read_shapefile_zip(&zip_of(&refs), None);
        }
    }

    #[test]
    fn records_are_handed_over_as_they_are_read() {
        // Three points, the last one cut off: a reader of the whole file would only see the
        // damage; the stream hands over the first two, then reports it.
        let mut shp = ShpWriter::new(1);
        for x in [500000.0, 500001.0, 500002.0] {
            shp.add(Some(&Geometry::Point(Point::new(x, 3300000.0))));
        }
        let (mut shp, shx) = shp.finish();
        shp.truncate(shp.len() - 4);
        let cols = vec![];
        let fields = plan_fields(&cols, DbfEncoding::Utf8);
        let fs: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|id| {
                crate::model::Feature::from_parts("x", id.to_string(), Default::default(), None)
            })
            .collect();
        let (dbf, _) = write_dbf(
            &fields,
            &cols,
            &fs.iter().collect::<Vec<_>>(),
            DbfEncoding::Utf8,
        );
        let z = zip_of(&[
            ("x.shp", shp),
            ("x.shx", shx),
            ("x.dbf", dbf),
            ("x.prj", prj_gk()),
        ]);
        let open = || Ok(Cursor::new(z.as_slice()));
        let mut got = Vec::new();
        let e = stream_shapefile_zip(&open, None, &mut |f| {
            got.push(f.id);
            true
        })
        .unwrap_err();
        assert!(
            matches!(&e, ImportError::Corrupt(m) if m.contains("x.shp: ends early")),
            "{e}"
        );
        assert_eq!(got, ["a", "b"]);
        // A consumer that stops taking features stops the read at once.
        let mut taken = 0;
        let e = stream_shapefile_zip(&open, None, &mut |_| {
            taken += 1;
            false
        })
        .unwrap_err();
        assert!(matches!(e, ImportError::Cancelled), "{e}");
        assert_eq!(taken, 1);
    }

    #[test]
    fn foreign_files_use_cpg_ldid_or_guess_and_unique_id_fields() {
        // A GBK table without .cpg and without LDID: guessed as GBK (not valid UTF-8).
        let cols = vec![Column {
            key: "名称".into(),
            kind: ColumnKind::Text,
        }];
        let fields = plan_fields(&cols, DbfEncoding::Gbk);
        let f = crate::model::Feature::from_parts(
            "x",
            "0".into(),
            serde_json::json!({"名称": "大足区"})
                .as_object()
                .unwrap()
                .clone(),
            None,
        );
        let (mut dbf, _) = write_dbf(&fields, &cols, &[&f, &f], DbfEncoding::Gbk);
        dbf[29] = 0;
        let mut shp = ShpWriter::new(1);
        shp.add(Some(&Geometry::Point(Point::new(500000.0, 3300000.0))));
        shp.add(Some(&Geometry::Point(Point::new(500001.0, 3300000.0))));
        let (shp, shx) = shp.finish();
        let z = zip_of(&[
            ("d/x.shp", shp),
            ("d/x.shx", shx),
            ("d/x.dbf", dbf),
            ("d/x.prj", prj_gk()),
        ]);
        let back = read_shapefile_zip(&z, None).unwrap();
        // Both ids are "0": not unique, so features are numbered and id stays a property.
        assert_eq!(back[0].features[1].id, "2");
        assert_eq!(back[0].features[1].properties["id"], "0");
        assert_eq!(back[0].features[1].properties["名称"], "大足区");
        // The same with a .cpg naming GBK.
        let mut files = unzip(&z);
        files.push(("d/x.cpg".into(), b"GBK".to_vec()));
        let refs: Vec<(&str, Vec<u8>)> =
            files.iter().map(|(n, d)| (n.as_str(), d.clone())).collect();
        let back = read_shapefile_zip(&zip_of(&refs), None).unwrap();
        assert_eq!(back[0].features[0].properties["名称"], "大足区");
    }
}

#[cfg(test)]
mod gdal_tests {
    use super::*;
    use crate::formats::exchange::tests_support::*;
    use std::sync::Arc;

    #[test]
    fn gdal_reads_the_zip_with_crs_counts_and_gbk_text() {
        let (layer, features) = sample_layer("projects");
        let (plain, plain_features) = sample_polygons_layer("parcels");
        let dir = tempfile::tempdir().unwrap();
        for (crs, enc, tag) in [
            (Crs::from_epsg(4545).unwrap(), DbfEncoding::Gbk, "gk"),
            (Crs::Epsg4490, DbfEncoding::Utf8, "ll"),
        ] {
            let bytes = write_shapefile_zip(
                &[
                    ExportLayer {
                        layer: &layer,
                        features: features.iter().cloned().map(Arc::new).collect(),
                    },
                    ExportLayer {
                        layer: &plain,
                        features: plain_features.iter().cloned().map(Arc::new).collect(),
                    },
                ],
                &crs,
                enc,
            )
            .unwrap();
            let zip_path = dir.path().join(format!("{tag}.zip"));
            std::fs::write(&zip_path, &bytes).unwrap();
            let unzipped = dir.path().join(tag);
            std::fs::create_dir(&unzipped).unwrap();
            let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
            z.extract(&unzipped).unwrap();

            let vsizip = format!("/vsizip/{}", zip_path.display());
            for target in [unzipped.to_str().unwrap(), vsizip.as_str()] {
                let Some(out) = ogrinfo(&["-ro", "-so", "-al", target]) else {
                    return;
                };
                assert!(!out.contains("Warning") && !out.contains("ERROR"), "{out}");
                for (name, count, geom) in [
                    ("projects_point", 2, "Point"),
                    ("projects_multipoint", 1, "Point"),
                    ("projects_line", 2, "Line String"),
                    ("projects_polygon", 2, "Polygon"),
                    ("parcels", 2, "Polygon"),
                ] {
                    let at = out
                        .find(&format!("Layer name: {name}\n"))
                        .unwrap_or_else(|| panic!("{name} not in {out}"));
                    let section = &out[at..];
                    let section = &section[..section[1..]
                        .find("Layer name:")
                        .map(|i| i + 1)
                        .unwrap_or(section.len())];
                    assert!(
                        section.contains(&format!("Feature Count: {count}\n")),
                        "{name}: {section}"
                    );
                    assert!(
                        section.contains(&format!("Geometry: {geom}"))
                            || (name == "projects_multipoint"
                                && section.contains("Geometry: Multi Point")),
                        "{name}: {section}"
                    );
                    match crs {
                        Crs::GaussKruger { .. } => {
                            assert!(
                                section.contains("CGCS2000")
                                    && section
                                        .contains("PARAMETER[\"Longitude of natural origin\",108"),
                                "{section}"
                            );
                            assert!(section.contains("ID[\"EPSG\",4545]"), "{section}");
                        }
                        _ => assert!(section.contains("ID[\"EPSG\",4490]"), "{section}"),
                    }
                }
                if target == vsizip {
                    println!(
                        "ogrinfo {target} ({tag}):\n{}",
                        out.lines().take(45).collect::<Vec<_>>().join("\n")
                    );
                }
            }
            // Attributes decode to the right Chinese (GDAL honours .cpg).
            let shp = unzipped.join("projects_point.shp");
            let Some(out) = ogrinfo(&[
                "-ro",
                "-q",
                shp.to_str().unwrap(),
                "projects_point",
                "-fid",
                "0",
            ]) else {
                return;
            };
            assert!(out.contains("name (String) = 火炉镇蔬菜基地项目"), "{out}");
            assert!(out.contains("responsibl (String) = 区农业农村委"), "{out}");
            assert!(
                out.contains("done (String) = T") || out.contains("done (Integer(Boolean)) = 1"),
                "{out}"
            );
            assert!(
                out.contains("investment (Integer) = 1200")
                    || out.contains("investment (Integer64) = 1200"),
                "{out}"
            );
            assert!(out.contains("ratio (Real) = 0.25"), "{out}");
            assert!(out.contains("POINT ("), "{out}");
            if tag == "gk" {
                println!("{out}");
            }
        }
    }
}
