//! GeoPackage (OGC 12-128r18, version 1.3) export and import, written with sqlx's SQLite.
//!
//! # Export
//! A new file (an existing one at the path is replaced) with `application_id` 'GPKG' and
//! `user_version` 10300; `gpkg_spatial_ref_sys` with the three required rows plus the export
//! CRS (its EPSG code as `srs_id`, its OGC WKT as definition); one feature table per layer,
//! named after the layer: `fid INTEGER PRIMARY KEY AUTOINCREMENT`, `geom` (GeoPackage binary:
//! the `GP` header with the envelope, then little-endian WKB), `id`, `name`, `admin_code` as
//! TEXT, then one column per property (INTEGER, REAL, BOOLEAN or TEXT; arrays/objects as JSON
//! text). Registered in `gpkg_contents` (with the layer's extent in the CRS) and
//! `gpkg_geometry_columns` (geometry type from the data: the one kind all features share,
//! else GEOMETRY). JSON columns, and properties whose name clashes with another column (SQLite
//! column names ignore case), are described in `gpkg_data_columns` (schema extension): the
//! original property name and `application/json`, which GDAL also reads. No R-tree index is
//! built (optional in the standard; GDAL and QGIS read the file without one).
//!
//! GCJ-02/BD-09 are refused: they have no SRS definition other software understands.
//!
//! # Import
//! Every `features` table in `gpkg_contents`; the CRS from the geometry column's SRS (EPSG
//! code, else its WKT, see [`crs_from_wkt`]) unless one is given; SRS 0/-1 ("undefined") is
//! no CRS. Ids from a unique `id` column, else the primary key. JSON columns (mime type
//! `application/json`) are parsed, BOOLEAN columns become booleans, BLOBs become hex text.
//! Imports stream ([`stream_geopackage`]): rows are read with a cursor and handed over in
//! batches, after a first pass over the `id` and primary-key columns that decides the ids.

use std::collections::HashMap;
use std::path::Path;

use geo::{BoundingRect, Geometry};
use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode};
use sqlx::{Connection, Row, TypeInfo, ValueRef};

use crate::formats::exchange::{
    assemble_feature, crs_from_wkt, import_result, json_f64, property_columns, value_text,
    wkt_excerpt, Column, ColumnKind, ExportError, ExportLayer, IdCheck, ImportError, ImportedLayer,
    Problems, RawFeature,
};
use crate::formats::shapefile::StreamedLayers;
use crate::formats::wkb;
use crate::geom::crs::{geometry_from_lonlat, Crs};
use crate::model::{Feature, Properties};

/// 'GPKG' as the SQLite application id.
pub const APPLICATION_ID: i64 = 0x4750_4B47;
/// GeoPackage 1.3.
pub const USER_VERSION: i64 = 10300;
const SCHEMA_EXT: &str = "http://www.geopackage.org/spec/#extension_schema";
/// Marks `gpkg_data_columns` rows that carry a yizhangtu property name.
const PROPERTY_MARK: &str = "yizhangtu property";

const CORE_SCHEMA: &str = r#"
CREATE TABLE gpkg_spatial_ref_sys (
  srs_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL PRIMARY KEY,
  organization TEXT NOT NULL,
  organization_coordsys_id INTEGER NOT NULL,
  definition TEXT NOT NULL,
  description TEXT
);
CREATE TABLE gpkg_contents (
  table_name TEXT NOT NULL PRIMARY KEY,
  data_type TEXT NOT NULL,
  identifier TEXT UNIQUE,
  description TEXT DEFAULT '',
  last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE,
  srs_id INTEGER,
  CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id)
);
CREATE TABLE gpkg_geometry_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  geometry_type_name TEXT NOT NULL,
  srs_id INTEGER NOT NULL,
  z TINYINT NOT NULL,
  m TINYINT NOT NULL,
  CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
  CONSTRAINT uk_gc_table_name UNIQUE (table_name),
  CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
  CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id)
);
CREATE TABLE gpkg_extensions (
  table_name TEXT,
  column_name TEXT,
  extension_name TEXT NOT NULL,
  definition TEXT NOT NULL,
  scope TEXT NOT NULL,
  CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name)
);
CREATE TABLE gpkg_data_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  name TEXT,
  title TEXT,
  description TEXT,
  mime_type TEXT,
  constraint_name TEXT,
  CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),
  CONSTRAINT gdc_tn UNIQUE (table_name, name)
);
CREATE TABLE gpkg_data_column_constraints (
  constraint_name TEXT NOT NULL,
  constraint_type TEXT NOT NULL,
  value TEXT,
  min NUMERIC,
  min_is_inclusive BOOLEAN,
  max NUMERIC,
  max_is_inclusive BOOLEAN,
  description TEXT,
  CONSTRAINT gdcc_ntv UNIQUE (constraint_name, constraint_type, value)
);
"#;

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn io_err(e: impl std::fmt::Display) -> ExportError {
    ExportError::Io {
        format: "GeoPackage",
        reason: e.to_string(),
    }
}

/// GeoPackage binary geometry: `GP`, version 0, flags (little-endian, envelope [minx, maxx,
/// miny, maxy] except for points), srs_id, then WKB.
pub fn encode_gpkg_geometry(g: &Geometry<f64>, srs_id: i32) -> Vec<u8> {
    let envelope = match g {
        Geometry::Point(_) => None,
        other => other.bounding_rect(),
    };
    let mut out = Vec::with_capacity(8 + 32 + 64);
    out.extend_from_slice(b"GP");
    out.push(0);
    let empty = envelope.is_none() && !matches!(g, Geometry::Point(_));
    let flags: u8 =
        0b1 | if envelope.is_some() { 1 << 1 } else { 0 } | if empty { 1 << 4 } else { 0 };
    out.push(flags);
    out.extend_from_slice(&srs_id.to_le_bytes());
    if let Some(r) = envelope {
        for v in [r.min().x, r.max().x, r.min().y, r.max().y] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out.extend_from_slice(&wkb::encode(g));
    out
}

/// Reads GeoPackage binary geometry; `Ok(None)` for an empty geometry.
pub fn decode_gpkg_geometry(b: &[u8]) -> Result<Option<Geometry<f64>>, String> {
    if b.len() < 8 || &b[0..2] != b"GP" {
        return Err("geometry is not GeoPackage binary (no GP header)".into());
    }
    let flags = b[3];
    if flags & (1 << 5) != 0 {
        return Err("extended GeoPackage geometry types are not supported".into());
    }
    let env_len = match (flags >> 1) & 0b111 {
        0 => 0,
        1 => 32,
        2 | 3 => 48,
        4 => 64,
        other => return Err(format!("invalid envelope indicator {other}")),
    };
    if flags & (1 << 4) != 0 {
        return Ok(None);
    }
    let start = 8 + env_len;
    let body = b.get(start..).ok_or("geometry ends inside its header")?;
    let g = wkb::decode(body).map_err(|e| format!("geometry: {e}"))?;
    // `geo` closes polygon rings silently; an unclosed ring in the file is damage to report.
    if let Some(problem) = unclosed_ring(body) {
        return Err(format!("geometry: {problem}"));
    }
    Ok(Some(g))
}

/// Finds the first polygon ring in (already successfully decoded) WKB whose last point is not
/// its first, e.g. `polygon 1, ring 2 is not closed`.
fn unclosed_ring(wkb: &[u8]) -> Option<String> {
    struct W<'a> {
        b: &'a [u8],
        pos: usize,
        polygon: usize,
    }
    impl W<'_> {
        fn u32(&mut self, le: bool) -> Option<u32> {
            let s: [u8; 4] = self.b.get(self.pos..self.pos + 4)?.try_into().ok()?;
            self.pos += 4;
            Some(if le {
                u32::from_le_bytes(s)
            } else {
                u32::from_be_bytes(s)
            })
        }
        fn f64(&mut self, le: bool) -> Option<f64> {
            let s: [u8; 8] = self.b.get(self.pos..self.pos + 8)?.try_into().ok()?;
            self.pos += 8;
            Some(if le {
                f64::from_le_bytes(s)
            } else {
                f64::from_be_bytes(s)
            })
        }
        /// Walks one geometry; `Some(Err(msg))` on an unclosed ring, `None` on bad bytes.
        fn geometry(&mut self, depth: usize) -> Option<Result<(), String>> {
            if depth > 32 {
                return None;
            }
            let le = *self.b.get(self.pos)? == 1;
            self.pos += 1;
            let raw = self.u32(le)?;
            let mut dims = 2;
            if raw & 0x8000_0000 != 0 {
                dims += 1;
            }
            if raw & 0x4000_0000 != 0 {
                dims += 1;
            }
            if raw & 0x2000_0000 != 0 {
                self.u32(le)?;
            }
            let t = raw & 0x0FFF_FFFF;
            dims += match t / 1000 {
                1 | 2 => 1,
                3 => 2,
                _ => 0,
            };
            match t % 1000 {
                1 => {
                    self.pos += 8 * dims;
                }
                2 => {
                    let n = self.u32(le)? as usize;
                    self.pos += n.checked_mul(8 * dims)?;
                }
                3 => {
                    self.polygon += 1;
                    let rings = self.u32(le)?;
                    for r in 0..rings {
                        let n = self.u32(le)? as usize;
                        let mut first = None;
                        let mut last = None;
                        for _ in 0..n {
                            let x = self.f64(le)?;
                            let y = self.f64(le)?;
                            self.pos += 8 * (dims - 2);
                            first.get_or_insert((x, y));
                            last = Some((x, y));
                        }
                        if n > 0 && first != last {
                            return Some(Err(format!(
                                "polygon {}, ring {} is not closed (its last point differs from its first)",
                                self.polygon,
                                r + 1
                            )));
                        }
                    }
                }
                4..=7 => {
                    let n = self.u32(le)?;
                    for _ in 0..n {
                        if let Err(e) = self.geometry(depth + 1)? {
                            return Some(Err(e));
                        }
                    }
                }
                _ => return None,
            }
            Some(Ok(()))
        }
    }
    let mut w = W {
        b: wkb,
        pos: 0,
        polygon: 0,
    };
    w.geometry(0)?.err()
}

fn geometry_type_name(g: &Geometry<f64>) -> &'static str {
    match g {
        Geometry::Point(_) => "POINT",
        Geometry::Line(_) | Geometry::LineString(_) => "LINESTRING",
        Geometry::Polygon(_) | Geometry::Rect(_) | Geometry::Triangle(_) => "POLYGON",
        Geometry::MultiPoint(_) => "MULTIPOINT",
        Geometry::MultiLineString(_) => "MULTILINESTRING",
        Geometry::MultiPolygon(_) => "MULTIPOLYGON",
        Geometry::GeometryCollection(_) => "GEOMETRYCOLLECTION",
    }
}

/// Column names in the table for the property columns: the key, or `key_2`, `key_3` … when
/// it clashes (ignoring case) with another column.
fn column_names(columns: &[Column]) -> Vec<String> {
    let mut taken: Vec<String> = ["fid", "geom", "id", "name", "admin_code"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    columns
        .iter()
        .map(|c| {
            let mut n = 1;
            loop {
                let cand = if n == 1 {
                    c.key.clone()
                } else {
                    format!("{}_{n}", c.key)
                };
                if !taken
                    .iter()
                    .any(|t| t.to_lowercase() == cand.to_lowercase())
                {
                    taken.push(cand.clone());
                    break cand;
                }
                n += 1;
            }
        })
        .collect()
}

enum Cell {
    Null,
    Int(i64),
    Real(f64),
    Bool(bool),
    Text(String),
}

/// Writes the layers to a new GeoPackage at `path` (see the module docs).
pub async fn write_geopackage(
    path: &Path,
    layers: &[ExportLayer<'_>],
    crs: &Crs,
) -> Result<(), ExportError> {
    let (Some(wkt), Some(code)) = (
        crs.wkt(),
        crs.epsg().or(match crs {
            Crs::Crs84 => Some(4326),
            _ => None,
        }),
    ) else {
        return Err(ExportError::UnsupportedCrs {
            crs: crs.to_string(),
            format: "GeoPackage",
        });
    };
    let srs_id = code as i32;

    // Project and check everything before touching the disk.
    let mut problems = Problems::default();
    let mut projected: Vec<Vec<Option<Geometry<f64>>>> = Vec::with_capacity(layers.len());
    for l in layers {
        let mut v = Vec::with_capacity(l.features.len());
        for (index, f) in l.features.iter().enumerate() {
            v.push(match &f.geometry {
                None => None,
                Some(g) => match geometry_from_lonlat(crs, g) {
                    Ok(p) => Some(p),
                    Err(e) => {
                        problems.push(
                            index,
                            Some(f.id.clone()),
                            format!("layer {}: {e}", l.layer.id),
                        );
                        None
                    }
                },
            });
        }
        projected.push(v);
    }
    problems.export_result()?;

    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err(format!("{}: {e}", path.display()))),
    }
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Delete)
        .foreign_keys(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(io_err)?;
    sqlx::raw_sql(&format!(
        "PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {USER_VERSION};"
    ))
    .execute(&mut conn)
    .await
    .map_err(io_err)?;

    let mut tx = conn.begin().await.map_err(io_err)?;
    sqlx::raw_sql(CORE_SCHEMA)
        .execute(&mut *tx)
        .await
        .map_err(io_err)?;
    let wgs84 = Crs::Epsg4326.wkt().expect("4326 has WKT");
    let mut srs_rows: Vec<(String, i32, String, i32, String, String)> = vec![
        (
            "Undefined cartesian SRS".into(),
            -1,
            "NONE".into(),
            -1,
            "undefined".into(),
            "undefined cartesian coordinate reference system".into(),
        ),
        (
            "Undefined geographic SRS".into(),
            0,
            "NONE".into(),
            0,
            "undefined".into(),
            "undefined geographic coordinate reference system".into(),
        ),
        (
            "WGS 84 geodetic".into(),
            4326,
            "EPSG".into(),
            4326,
            wgs84,
            "longitude/latitude coordinates in decimal degrees on the WGS 84 spheroid".into(),
        ),
    ];
    if srs_id != 4326 {
        let name = wkt.split('"').nth(1).unwrap_or("CRS").to_string();
        srs_rows.push((
            name,
            srs_id,
            "EPSG".into(),
            srs_id,
            wkt.clone(),
            String::new(),
        ));
    }
    for (name, id, org, org_id, def, desc) in srs_rows {
        sqlx::query("INSERT INTO gpkg_spatial_ref_sys (srs_name, srs_id, organization, organization_coordsys_id, definition, description) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(name).bind(id).bind(org).bind(org_id).bind(def).bind(desc)
            .execute(&mut *tx).await.map_err(io_err)?;
    }
    for t in ["gpkg_data_columns", "gpkg_data_column_constraints"] {
        sqlx::query("INSERT INTO gpkg_extensions (table_name, column_name, extension_name, definition, scope) VALUES (?, NULL, 'gpkg_schema', ?, 'read-write')")
            .bind(t).bind(SCHEMA_EXT)
            .execute(&mut *tx).await.map_err(io_err)?;
    }

    let mut used_tables: Vec<String> = Vec::new();
    for (l, geoms) in layers.iter().zip(&projected) {
        let mut table = l.layer.id.clone();
        let mut n = 1;
        while used_tables.iter().any(|t| t.eq_ignore_ascii_case(&table))
            || table.to_ascii_lowercase().starts_with("gpkg_")
            || table.to_ascii_lowercase().starts_with("sqlite_")
        {
            n += 1;
            table = format!("{}_{n}", l.layer.id);
        }
        used_tables.push(table.clone());
        let columns = property_columns(l.features.iter().map(|f| &**f));
        let names = column_names(&columns);

        let mut kinds = geoms.iter().flatten().map(geometry_type_name);
        let gtype = match kinds.next() {
            Some(first) if kinds.all(|k| k == first) => first,
            _ => "GEOMETRY",
        };
        let mut ddl = format!(
            "CREATE TABLE {} (fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, geom {gtype}, id TEXT, name TEXT, admin_code TEXT",
            quote_ident(&table)
        );
        for (c, name) in columns.iter().zip(&names) {
            let t = match c.kind {
                ColumnKind::Integer => "INTEGER",
                ColumnKind::Real => "REAL",
                ColumnKind::Bool => "BOOLEAN",
                _ => "TEXT",
            };
            ddl.push_str(&format!(", {} {t}", quote_ident(name)));
        }
        ddl.push(')');
        sqlx::raw_sql(&ddl)
            .execute(&mut *tx)
            .await
            .map_err(io_err)?;

        let mut extent: Option<geo::Rect<f64>> = None;
        for g in geoms.iter().flatten() {
            if let Some(r) = g.bounding_rect() {
                extent = Some(match extent {
                    None => r,
                    Some(e) => geo::Rect::new(
                        geo::Coord {
                            x: e.min().x.min(r.min().x),
                            y: e.min().y.min(r.min().y),
                        },
                        geo::Coord {
                            x: e.max().x.max(r.max().x),
                            y: e.max().y.max(r.max().y),
                        },
                    ),
                });
            }
        }
        sqlx::query("INSERT INTO gpkg_contents (table_name, data_type, identifier, description, min_x, min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, ?)")
            .bind(&table)
            .bind(&table)
            .bind(format!("{} / {}", l.layer.title_zh, l.layer.title_en))
            .bind(extent.map(|e| e.min().x))
            .bind(extent.map(|e| e.min().y))
            .bind(extent.map(|e| e.max().x))
            .bind(extent.map(|e| e.max().y))
            .bind(srs_id)
            .execute(&mut *tx).await.map_err(io_err)?;
        sqlx::query("INSERT INTO gpkg_geometry_columns (table_name, column_name, geometry_type_name, srs_id, z, m) VALUES (?, 'geom', ?, ?, 0, 0)")
            .bind(&table).bind(gtype).bind(srs_id)
            .execute(&mut *tx).await.map_err(io_err)?;
        for (c, name) in columns.iter().zip(&names) {
            let json = c.kind == ColumnKind::Json;
            if json || *name != c.key {
                sqlx::query("INSERT INTO gpkg_data_columns (table_name, column_name, name, title, description, mime_type) VALUES (?, ?, ?, ?, ?, ?)")
                    .bind(&table).bind(name).bind(&c.key).bind(&c.key).bind(PROPERTY_MARK)
                    .bind(json.then_some("application/json"))
                    .execute(&mut *tx).await.map_err(io_err)?;
            }
        }

        let mut insert = format!(
            "INSERT INTO {} (geom, id, name, admin_code",
            quote_ident(&table)
        );
        for name in &names {
            insert.push_str(", ");
            insert.push_str(&quote_ident(name));
        }
        insert.push_str(") VALUES (?, ?, ?, ?");
        insert.push_str(&", ?".repeat(names.len()));
        insert.push(')');
        for (f, g) in l.features.iter().zip(geoms) {
            let mut q = sqlx::query(&insert)
                .bind(g.as_ref().map(|g| encode_gpkg_geometry(g, srs_id)))
                .bind(f.id.clone())
                .bind(f.name.clone())
                .bind(f.admin_code.clone());
            for c in &columns {
                let cell = match (c.kind, f.properties.get(&c.key)) {
                    (_, None | Some(Value::Null)) => Cell::Null,
                    (ColumnKind::Integer, Some(Value::Number(n))) => {
                        n.as_i64().map(Cell::Int).unwrap_or(Cell::Null)
                    }
                    (ColumnKind::Real, Some(Value::Number(n))) => {
                        n.as_f64().map(Cell::Real).unwrap_or(Cell::Null)
                    }
                    (ColumnKind::Bool, Some(Value::Bool(b))) => Cell::Bool(*b),
                    (_, Some(v)) => value_text(v).map(Cell::Text).unwrap_or(Cell::Null),
                };
                q = match cell {
                    Cell::Null => q.bind(None::<String>),
                    Cell::Int(i) => q.bind(i),
                    Cell::Real(x) => q.bind(x),
                    Cell::Bool(b) => q.bind(b),
                    Cell::Text(s) => q.bind(s),
                };
            }
            q.execute(&mut *tx).await.map_err(io_err)?;
        }
    }
    tx.commit().await.map_err(io_err)?;
    conn.close().await.map_err(io_err)?;
    Ok(())
}

/// Reads every feature table of the GeoPackage at `path` (see the module docs), whole. Imports
/// use [`stream_geopackage`], which holds a batch at a time.
pub async fn read_geopackage(
    path: &Path,
    crs_override: Option<&Crs>,
) -> Result<Vec<ImportedLayer>, ImportError> {
    let mut features = Vec::new();
    let read = stream_geopackage(path, crs_override, 1024, |batch| {
        features.extend(batch);
        std::future::ready(true)
    })
    .await?;
    Ok(read.regroup(features))
}

/// One feature table to read: its CRS and how its columns map to a feature.
struct TablePlan {
    table: String,
    crs: Crs,
    /// (name, declared type, primary key)
    cols: Vec<(String, String, bool)>,
    /// column (lower case) → (property name, JSON?)
    described: HashMap<String, (Option<String>, bool)>,
    geom_i: Option<usize>,
    pk: Option<usize>,
    id_i: Option<usize>,
}

/// The next row of a query, read as the database hands it over.
async fn next_row<'c>(
    rows: &mut futures_core::stream::BoxStream<'c, Result<sqlx::sqlite::SqliteRow, sqlx::Error>>,
) -> Option<Result<sqlx::sqlite::SqliteRow, sqlx::Error>> {
    std::future::poll_fn(|cx| futures_core::Stream::poll_next(rows.as_mut(), cx)).await
}

/// Reads every feature table of the GeoPackage at `path` (see the module docs) row by row,
/// handing the features to `emit` `batch` at a time (each feature's `layer` is its table)
/// as soon as they are read and checked; `emit` answers false to stop the read
/// ([`ImportError::Cancelled`]). Memory is a batch and 16 bytes a row for the id check,
/// whatever the size of the file.
///
/// All or nothing, as [`read_geopackage`]: after the first unusable feature nothing more is
/// emitted, but the read goes on to count and list the problems, and the result is the same
/// error; a consumer must not keep what it was given unless the result is `Ok`.
pub async fn stream_geopackage<F, Fut>(
    path: &Path,
    crs_override: Option<&Crs>,
    batch: usize,
    mut emit: F,
) -> Result<StreamedLayers, ImportError>
where
    F: FnMut(Vec<Feature>) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let corrupt = |e: &dyn std::fmt::Display| ImportError::Corrupt(format!("{file}: {e}"));
    let opts = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| corrupt(&e))?;
    let tables: Vec<(String, String, i64)> = sqlx::query(
        "SELECT c.table_name, g.column_name, g.srs_id FROM gpkg_contents c JOIN gpkg_geometry_columns g ON g.table_name = c.table_name WHERE c.data_type = 'features' ORDER BY c.rowid",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(|e| corrupt(&format!("not a GeoPackage ({e})")))?
    .iter()
    .map(|r| {
        Ok((
            r.try_get::<String, _>(0)?,
            r.try_get::<String, _>(1)?,
            r.try_get::<i64, _>(2)?,
        ))
    })
    .collect::<Result<_, sqlx::Error>>()
    .map_err(|e| corrupt(&e))?;
    if tables.is_empty() {
        return Err(ImportError::Empty(format!("{file} holds no feature table")));
    }

    // Every table's CRS and columns first: a file refused as a whole is refused before any row.
    let mut plans = Vec::with_capacity(tables.len());
    for (table, geom_col, srs_id) in tables {
        let where_ = format!("{file}, table {table}");
        let crs = match crs_override {
            Some(c) => *c,
            None => srs_crs(&mut conn, srs_id, &where_).await?,
        };
        let info = sqlx::query(&format!("PRAGMA table_info({})", quote_ident(&table)))
            .fetch_all(&mut conn)
            .await
            .map_err(|e| corrupt(&e))?;
        let cols: Vec<(String, String, bool)> = info
            .iter()
            .map(|r| {
                (
                    r.try_get::<String, _>("name").unwrap_or_default(),
                    r.try_get::<String, _>("type")
                        .unwrap_or_default()
                        .to_ascii_uppercase(),
                    r.try_get::<i64, _>("pk").unwrap_or(0) > 0,
                )
            })
            .collect();
        let mut described: HashMap<String, (Option<String>, bool)> = HashMap::new();
        if let Ok(rows) = sqlx::query("SELECT column_name, name, mime_type, description FROM gpkg_data_columns WHERE table_name = ?")
            .bind(&table)
            .fetch_all(&mut conn)
            .await
        {
            for r in rows {
                let col: String = r.try_get(0).unwrap_or_default();
                let name: Option<String> = r.try_get(1).ok().flatten();
                let mime: Option<String> = r.try_get(2).ok().flatten();
                let desc: Option<String> = r.try_get(3).ok().flatten();
                let ours = desc.as_deref() == Some(PROPERTY_MARK);
                described.insert(
                    col.to_lowercase(),
                    (
                        name.filter(|_| ours),
                        mime.is_some_and(|m| m.eq_ignore_ascii_case("application/json")),
                    ),
                );
            }
        }
        let pk = cols.iter().position(|c| c.2);
        let geom_i = cols
            .iter()
            .position(|c| c.0.eq_ignore_ascii_case(&geom_col));
        let id_i = cols.iter().position(|c| {
            c.0.eq_ignore_ascii_case("id") && described.get("id").is_none_or(|d| d.0.is_none())
        });
        plans.push(TablePlan {
            table,
            crs,
            cols,
            described,
            geom_i,
            pk,
            id_i,
        });
    }

    let label = plans.len() > 1;
    let mut problems = Problems::default();
    let mut out = StreamedLayers::default();
    let mut pending: Vec<Feature> = Vec::with_capacity(batch);
    for plan in &plans {
        // Ids from a unique `id` column, else from the primary key (if its values are usable).
        let (use_id_col, use_ids) = {
            let (mut id_check, mut pk_check) = (IdCheck::default(), IdCheck::default());
            // A lone INTEGER primary key (what GeoPackage asks of a feature table) is SQLite's
            // rowid: unique and never NULL, so its values need no pass, nor memory to check.
            let pk_is_rowid = plan.pk.is_some_and(|i| plan.cols[i].1 == "INTEGER")
                && plan.cols.iter().filter(|c| c.2).count() == 1;
            let checked_pk = plan.pk.filter(|_| !pk_is_rowid);
            let cols: Vec<usize> = plan.id_i.into_iter().chain(checked_pk).collect();
            if !cols.is_empty() {
                let select = cols
                    .iter()
                    .map(|&i| quote_ident(&plan.cols[i].0))
                    .collect::<Vec<_>>()
                    .join(", ");
                let sql = format!("SELECT {select} FROM {}", quote_ident(&plan.table));
                let mut rows = sqlx::query(&sql).fetch(&mut conn);
                while let Some(row) = next_row(&mut rows).await {
                    let row = row.map_err(|e| corrupt(&e))?;
                    for (k, &i) in cols.iter().enumerate() {
                        let decl = &plan.cols[i].1;
                        let id = id_text(&sql_value(&row, k, decl).into_json(decl));
                        let check = if Some(i) == plan.id_i {
                            &mut id_check
                        } else {
                            &mut pk_check
                        };
                        check.add(id.as_deref());
                    }
                }
            }
            let use_id_col = plan.id_i.is_some() && id_check.usable();
            let use_ids = use_id_col || pk_is_rowid || (plan.pk.is_some() && pk_check.usable());
            (use_id_col, use_ids)
        };
        let prefix = if label {
            format!("layer {}: ", plan.table)
        } else {
            String::new()
        };
        let sql = format!("SELECT * FROM {}", quote_ident(&plan.table));
        let mut rows = sqlx::query(&sql).fetch(&mut conn);
        let mut index = 0usize;
        while let Some(row) = next_row(&mut rows).await {
            let row = row.map_err(|e| corrupt(&e))?;
            let raw = plan.raw_feature(&row, use_id_col);
            let feature = assemble_feature(
                &plan.table,
                index,
                raw,
                &plan.crs,
                use_ids,
                &mut problems,
                &prefix,
            );
            index += 1;
            if let (Some(f), 0) = (feature, problems.total) {
                pending.push(f);
                if pending.len() >= batch {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(batch));
                    if !emit(full).await {
                        return Err(ImportError::Cancelled);
                    }
                }
            }
        }
        out.layers.push((plan.table.clone(), index));
    }
    conn.close().await.ok();
    import_result(Vec::new(), problems, out.total())?;
    if !pending.is_empty() && !emit(pending).await {
        return Err(ImportError::Cancelled);
    }
    Ok(out)
}

impl TablePlan {
    /// One row as read from the file; the id from the `id` column when `use_id_col`, else from
    /// the primary key (the `id` column then stays a property, as text).
    fn raw_feature(&self, row: &sqlx::sqlite::SqliteRow, use_id_col: bool) -> RawFeature {
        let mut properties = Properties::new();
        let mut geometry = Ok(None);
        let mut id_value = None;
        let mut pk_value = None;
        for (i, (name, decl, _)) in self.cols.iter().enumerate() {
            let v = sql_value(row, i, decl);
            if Some(i) == self.geom_i {
                geometry = match &v {
                    SqlValue::Blob(b) => decode_gpkg_geometry(b),
                    SqlValue::Null => Ok(None),
                    _ => Err("geometry column holds something that is not a geometry".into()),
                };
                continue;
            }
            let json_value = v.into_json(decl);
            if Some(i) == self.pk {
                pk_value = id_text(&json_value);
                continue;
            }
            if Some(i) == self.id_i {
                id_value = id_text(&json_value);
                continue;
            }
            let (key, json) = match self.described.get(&name.to_lowercase()) {
                Some((alias, json)) => (alias.clone().unwrap_or_else(|| name.clone()), *json),
                None => (name.clone(), false),
            };
            let value = match (json, json_value) {
                (true, Value::String(s)) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
                (_, v) => v,
            };
            properties.insert(key, value);
        }
        let id = if use_id_col {
            id_value
        } else {
            // Keep a non-unique id column as a property, and take ids from the primary key.
            if let (Some(i), Some(v)) = (self.id_i, id_value) {
                properties.insert(self.cols[i].0.clone(), Value::String(v));
            }
            pk_value
        };
        RawFeature {
            id,
            properties,
            geometry,
        }
    }
}

async fn srs_crs(
    conn: &mut SqliteConnection,
    srs_id: i64,
    where_: &str,
) -> Result<Crs, ImportError> {
    if srs_id == 0 || srs_id == -1 {
        return Err(ImportError::NoCrs {
            file: where_.to_string(),
        });
    }
    let row = sqlx::query("SELECT organization, organization_coordsys_id, definition FROM gpkg_spatial_ref_sys WHERE srs_id = ?")
        .bind(srs_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| ImportError::Corrupt(format!("{where_}: {e}")))?;
    let Some(row) = row else {
        return Err(ImportError::Corrupt(format!(
            "{where_}: spatial reference {srs_id} is not defined in gpkg_spatial_ref_sys"
        )));
    };
    let org: String = row.try_get(0).unwrap_or_default();
    let code: i64 = row.try_get(1).unwrap_or(0);
    let definition: String = row.try_get(2).unwrap_or_default();
    if org.eq_ignore_ascii_case("EPSG") {
        if let Ok(crs) = Crs::from_epsg(code as u32) {
            return Ok(crs);
        }
    }
    if definition.trim().eq_ignore_ascii_case("undefined") || definition.trim().is_empty() {
        return Err(ImportError::NoCrs {
            file: where_.to_string(),
        });
    }
    crs_from_wkt(&definition).map_err(|e| ImportError::UnknownCrs {
        file: where_.to_string(),
        wkt_excerpt: wkt_excerpt(&definition),
        reason: if org.eq_ignore_ascii_case("EPSG") {
            format!("EPSG:{code}; {}", e.0)
        } else {
            e.0
        },
    })
}

enum SqlValue {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl SqlValue {
    fn into_json(self, decl: &str) -> Value {
        match self {
            SqlValue::Null => Value::Null,
            SqlValue::Int(i) if decl == "BOOLEAN" => Value::Bool(i != 0),
            SqlValue::Int(i) => Value::from(i),
            SqlValue::Real(f) => json_f64(f),
            SqlValue::Text(s) => Value::String(s),
            SqlValue::Blob(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        }
    }
}

fn sql_value(row: &sqlx::sqlite::SqliteRow, i: usize, _decl: &str) -> SqlValue {
    let Ok(raw) = row.try_get_raw(i) else {
        return SqlValue::Null;
    };
    if raw.is_null() {
        return SqlValue::Null;
    }
    let kind = raw.type_info().name().to_string();
    match kind.as_str() {
        "INTEGER" | "BOOLEAN" => row
            .try_get_unchecked::<i64, _>(i)
            .map(SqlValue::Int)
            .unwrap_or(SqlValue::Null),
        "REAL" | "NUMERIC" => row
            .try_get_unchecked::<f64, _>(i)
            .map(SqlValue::Real)
            .unwrap_or(SqlValue::Null),
        "BLOB" => row
            .try_get_unchecked::<Vec<u8>, _>(i)
            .map(SqlValue::Blob)
            .unwrap_or(SqlValue::Null),
        _ => row
            .try_get_unchecked::<String, _>(i)
            .map(SqlValue::Text)
            .unwrap_or(SqlValue::Null),
    }
}

fn id_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::exchange::tests_support::*;
    use geo::polygon;
    use std::sync::Arc;

    fn arcs(f: &[crate::model::Feature]) -> Vec<Arc<crate::model::Feature>> {
        f.iter().cloned().map(Arc::new).collect()
    }

    #[tokio::test]
    async fn round_trip_and_gdal_reads_it() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, features) = sample_layer("projects");
        let (plain, plain_features) = sample_polygons_layer("parcels");
        for (crs, srs_text) in [
            (
                Crs::from_epsg(4545).unwrap(),
                r#"CGCS2000 / 3-degree Gauss-Kruger CM 108E"#,
            ),
            (
                Crs::from_epsg(4524).unwrap(),
                "CGCS2000 / 3-degree Gauss-Kruger zone 36",
            ),
            (Crs::Epsg4490, "China Geodetic Coordinate System 2000"),
        ] {
            let path = dir.path().join(format!("out-{}.gpkg", crs.epsg().unwrap()));
            write_geopackage(
                &path,
                &[
                    ExportLayer {
                        layer: &layer,
                        features: arcs(&features),
                    },
                    ExportLayer {
                        layer: &plain,
                        features: arcs(&plain_features),
                    },
                ],
                &crs,
            )
            .await
            .unwrap();
            // Written again over the old file: replaced, not appended.
            write_geopackage(
                &path,
                &[
                    ExportLayer {
                        layer: &layer,
                        features: arcs(&features),
                    },
                    ExportLayer {
                        layer: &plain,
                        features: arcs(&plain_features),
                    },
                ],
                &crs,
            )
            .await
            .unwrap();
            let head = std::fs::read(&path).unwrap();
            assert_eq!(
                &head[68..72],
                &0x4750_4B47u32.to_be_bytes(),
                "application_id"
            );
            assert_eq!(&head[60..64], &10300u32.to_be_bytes(), "user_version");
            let back = read_geopackage(&path, None).await.unwrap();
            assert_eq!(back.len(), 2);
            assert_eq!(back[0].name, "projects");
            assert_same_features(&features, &back[0].features, Lossy::None);
            assert_same_features(&plain_features, &back[1].features, Lossy::None);

            if let Some(out) = ogrinfo(&["-ro", "-so", "-al", path.to_str().unwrap()]) {
                assert!(!out.contains("Warning") && !out.contains("ERROR"), "{out}");
                assert!(out.contains("Layer name: projects"), "{out}");
                assert!(out.contains("Layer name: parcels"), "{out}");
                assert!(out.contains("Feature Count: 7"), "{out}");
                assert!(out.contains("Feature Count: 2"), "{out}");
                assert!(out.contains(srs_text), "{srs_text} not in {out}");
                let code = crs.epsg().unwrap();
                assert!(
                    out.contains(&format!("ID[\"EPSG\",{code}]"))
                        || out.contains(&format!("AUTHORITY[\"EPSG\",\"{code}\"]")),
                    "{out}"
                );
                assert!(out.contains("Geometry: Polygon"), "{out}");
                assert!(out.contains("meta: String(JSON)"), "{out}");
                println!(
                    "ogrinfo {}:\n{}",
                    path.display(),
                    out.lines().take(60).collect::<Vec<_>>().join("\n")
                );
            }
            if let Some(out) =
                ogrinfo(&["-ro", "-q", path.to_str().unwrap(), "projects", "-fid", "1"])
            {
                assert!(out.contains("火炉镇蔬菜基地项目"), "{out}");
                assert!(
                    out.contains("responsible_unit (String) = 区农业农村委"),
                    "{out}"
                );
                assert!(out.contains("done (Integer(Boolean)) = 1"), "{out}");
            }
        }
    }

    /// Without an `id` column the features take their ids from the INTEGER primary key (the
    /// table's rowid, taken as it is, with no pass over the rows to check it).
    #[tokio::test]
    async fn ids_from_the_integer_primary_key() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let (plain, plain_features) = sample_polygons_layer("parcels");
        let path = dir.path().join("fid.gpkg");
        write_geopackage(
            &path,
            &[ExportLayer {
                layer: &plain,
                features: arcs(&plain_features),
            }],
            &Crs::Epsg4490,
        )
        .await
        .unwrap();
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&path);
        let mut conn = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        let columns: Vec<(String, String, i64)> =
            sqlx::query_as("SELECT name, type, pk FROM pragma_table_info('parcels')")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        let pk: Vec<&(String, String, i64)> = columns.iter().filter(|c| c.2 > 0).collect();
        assert_eq!(pk.len(), 1, "{columns:?}");
        assert_eq!(pk[0].1.to_ascii_uppercase(), "INTEGER", "{columns:?}");
        let pk_name = pk[0].0.clone();
        if columns.iter().any(|c| c.0 == "id") {
            sqlx::query("ALTER TABLE parcels DROP COLUMN id")
                .execute(&mut conn)
                .await
                .unwrap();
        }
        // Rowids far from 1..n, so that numbering the records could not give the same ids.
        sqlx::query(&format!(
            "UPDATE parcels SET {pk_name} = {pk_name} * 1000 + 7"
        ))
        .execute(&mut conn)
        .await
        .unwrap();
        let mut want: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT CAST({pk_name} AS TEXT) FROM parcels ORDER BY rowid"
        ))
        .fetch_all(&mut conn)
        .await
        .unwrap();
        conn.close().await.unwrap();
        let back = read_geopackage(&path, None).await.unwrap();
        let mut got: Vec<String> = back[0].features.iter().map(|f| f.id.clone()).collect();
        got.sort();
        want.sort();
        assert_eq!(got.len(), plain_features.len());
        assert_eq!(got, want);
        assert!(
            got.iter().all(|id| id.ends_with('7') && id.len() >= 4),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn refuses_gcj02_and_reads_errors_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let (layer, features) = sample_layer("projects");
        let path = dir.path().join("x.gpkg");
        let e = write_geopackage(
            &path,
            &[ExportLayer {
                layer: &layer,
                features: arcs(&features),
            }],
            &Crs::Gcj02,
        )
        .await
        .unwrap_err();
        assert!(matches!(e, ExportError::UnsupportedCrs { .. }), "{e}");
        assert!(!path.exists());

        // Garbage.
        std::fs::write(&path, b"this is not sqlite at all, not even close.......").unwrap();
        let e = read_geopackage(&path, None).await.unwrap_err();
        assert!(matches!(e, ImportError::Corrupt(_)), "{e}");
        let e = read_geopackage(&dir.path().join("missing.gpkg"), None)
            .await
            .unwrap_err();
        assert!(matches!(e, ImportError::Corrupt(_)), "{e}");

        // Undefined SRS → NoCrs; override fixes it. Unknown SRS → UnknownCrs. Bad geometry → Features.
        let path = dir.path().join("y.gpkg");
        write_geopackage(
            &path,
            &[ExportLayer {
                layer: &layer,
                features: arcs(&features),
            }],
            &Crs::from_epsg(4545).unwrap(),
        )
        .await
        .unwrap();
        let opts = SqliteConnectOptions::new().filename(&path);
        let mut conn = SqliteConnection::connect_with(&opts).await.unwrap();
        sqlx::raw_sql("PRAGMA foreign_keys = OFF; UPDATE gpkg_geometry_columns SET srs_id = -1;")
            .execute(&mut conn)
            .await
            .unwrap();
        let e = read_geopackage(&path, None).await.unwrap_err();
        assert!(matches!(e, ImportError::NoCrs { .. }), "{e}");
        let ok = read_geopackage(&path, Some(&Crs::from_epsg(4545).unwrap()))
            .await
            .unwrap();
        assert_same_features(&features, &ok[0].features, Lossy::None);

        let xian = r#"PROJCS["Xian 1980 / 3-degree Gauss-Kruger CM 108E",GEOGCS["Xian 1980",DATUM["Xian_1980",SPHEROID["IAG 1975",6378140,298.257]],PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",108],PARAMETER["scale_factor",1],PARAMETER["false_easting",500000],PARAMETER["false_northing",0],UNIT["metre",1],AUTHORITY["EPSG","2383"]]"#;
        sqlx::query("INSERT INTO gpkg_spatial_ref_sys VALUES ('Xian', 2383, 'EPSG', 2383, ?, '')")
            .bind(xian)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::raw_sql("UPDATE gpkg_geometry_columns SET srs_id = 2383;")
            .execute(&mut conn)
            .await
            .unwrap();
        let e = read_geopackage(&path, None).await.unwrap_err();
        assert!(matches!(e, ImportError::UnknownCrs { .. }), "{e}");
        assert!(e.to_string().contains("2383"), "{e}");

        sqlx::raw_sql("UPDATE gpkg_geometry_columns SET srs_id = 4545;")
            .execute(&mut conn)
            .await
            .unwrap();
        // An unclosed ring in feature p3, NaN in p1.
        let open = geo::Polygon::new(
            geo::LineString::from(vec![
                (500000., 3300000.),
                (500100., 3300000.),
                (500100., 3300100.),
                (500000., 3300000.),
            ]),
            vec![],
        );
        let mut blob = encode_gpkg_geometry(&Geometry::Polygon(open), 4545);
        let n = blob.len();
        blob[n - 16..n - 8].copy_from_slice(&500001f64.to_le_bytes()); // last x ≠ first x
        sqlx::query("UPDATE projects SET geom = ? WHERE id = 'p3'")
            .bind(blob)
            .execute(&mut conn)
            .await
            .unwrap();
        let nan =
            encode_gpkg_geometry(&Geometry::Point(geo::Point::new(f64::NAN, 3300000.0)), 4545);
        sqlx::query("UPDATE projects SET geom = ? WHERE id = 'p1'")
            .bind(nan)
            .execute(&mut conn)
            .await
            .unwrap();
        sqlx::query("UPDATE projects SET geom = x'0102' WHERE id = 'p2'")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let e = read_geopackage(&path, None).await.unwrap_err();
        match &e {
            ImportError::Features {
                problems,
                total,
                problems_total,
            } => {
                assert_eq!((*total, *problems_total), (7, 3));
                let ids: Vec<_> = problems.iter().map(|p| p.id.clone().unwrap()).collect();
                assert_eq!(ids, ["p1", "p2", "p3"]);
                assert!(
                    problems[2].problem.contains("not closed"),
                    "{}",
                    problems[2].problem
                );
            }
            other => panic!("{other}"),
        }
        let msg = e.to_string();
        assert!(
            msg.starts_with("3 of 7 features cannot be imported: feature 1 (id p1)"),
            "{msg}"
        );
    }

    #[test]
    fn gpkg_geometry_header() {
        let g = Geometry::Polygon(
            polygon![(x: 1.0, y: 2.0), (x: 3.0, y: 2.0), (x: 3.0, y: 5.0), (x: 1.0, y: 2.0)],
        );
        let b = encode_gpkg_geometry(&g, 4545);
        assert_eq!(&b[..4], b"GP\x00\x03");
        assert_eq!(i32::from_le_bytes(b[4..8].try_into().unwrap()), 4545);
        assert_eq!(f64::from_le_bytes(b[8..16].try_into().unwrap()), 1.0);
        assert_eq!(f64::from_le_bytes(b[16..24].try_into().unwrap()), 3.0);
        assert_eq!(decode_gpkg_geometry(&b).unwrap(), Some(g));
        let p = encode_gpkg_geometry(&Geometry::Point(geo::Point::new(1.0, 2.0)), 4490);
        assert_eq!(p.len(), 8 + 21);
        assert!(decode_gpkg_geometry(b"GP").is_err());
        assert!(decode_gpkg_geometry(b"XX\x00\x01\x00\x00\x00\x00").is_err());
    }
}
