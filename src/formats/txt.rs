//! The ministry's boundary-coordinate exchange text (界址点坐标交换格式), as the land
//! approval, pre-examination and land-consolidation submission systems of the Ministry of
//! Natural Resources read it (the "电子报盘" coordinate file).
//!
//! ```text
//! [属性描述]
//! 格式版本号=1.01
//! 数据产生单位=大足区规划和自然资源局
//! 数据产生日期=2024-05-01
//! 坐标系=2000国家大地坐标系
//! 几度分带=3
//! 投影类型=高斯克吕格
//! 计量单位=米
//! 带号=35
//! 精度=0.01
//! 转换参数=,,,,,,
//! [地块坐标]
//! 5,2.0000,1,地块一,面,,建设用地,,@
//! J1,1,3320000.000,35500000.000
//! J2,1,3320100.000,35500000.000
//! J3,1,3320100.000,35500200.000
//! J4,1,3320000.000,35500200.000
//! J1,1,3320000.000,35500000.000
//! ```
//!
//! Per parcel: `界址点数,地块面积(公顷),地块编号,地块名称,记录图形属性(面),图幅号,地块用途,地类编码,@`,
//! then one line per boundary point: `点号,地块圈号,X,Y` with X the northing and Y the
//! easting **with the zone number in front** (CGCS2000 3-degree Gauss-Krüger, EPSG:4513–4533).
//!
//! Choices where the published requirements leave room (documented, and what the tools that
//! produce these files commonly do):
//! - Every ring is closed by repeating its first point, under the first point's name.
//! - Point names are `J1, J2, …` numbered through the whole parcel (not restarting per ring);
//!   界址点数 counts every point line written, closing repeats included.
//! - Rings are numbered 1..n through the parcel: each polygon's exterior, then its holes, then
//!   the next polygon of a multi-polygon. Exteriors run clockwise (as boundary points are
//!   numbered in surveying), holes counter-clockwise; each ring starts at its stored first point.
//! - Area: geodesic area on the CGCS2000 ellipsoid in hectares, 4 decimals.
//! - Coordinates with 3 decimals (millimetres); 精度 is what the caller states (default 0.01).
//! - 转换参数 is left empty with its commas kept (`,,,,,,`), as the requirements say.
//! - 地块编号: property `地块编号`/`dkbh`, else the feature id; 地块名称: the name;
//!   图幅号: `图幅号`/`tfh`; 地块用途: `地块用途`/`用途`/`dkyt`/`land_use`;
//!   地类编码: `地类编码`/`dlbm`. Commas in them become `，` (the comma separates fields),
//!   line breaks become spaces.
//! - Lines end with CRLF; the text is returned as a `String`: the submission systems expect
//!   GBK, see [`crate::formats::shapefile::encode_text`].

use std::sync::Arc;

use geo::{Coord, Geometry, Polygon};

use crate::formats::exchange::{
    assemble_polygons, ring_is_cw, ExportError, ImportError, ImportedLayer, Problems, RawFeature,
};
use crate::geom::crs::{from_lonlat, Crs};
use crate::geom::{geodesic_area_m2, M2_PER_HA};
use crate::model::{Feature, Properties};

/// The `[属性描述]` values the caller decides.
#[derive(Debug, Clone, PartialEq)]
pub struct TxtMeta {
    /// 格式版本号, e.g. `1.01`.
    pub format_version: String,
    /// 数据产生单位.
    pub producer: String,
    /// 数据产生日期, `YYYY-MM-DD`.
    pub date: String,
    /// 精度 (the survey precision, in metres), e.g. `0.01`.
    pub precision: String,
    /// 转换参数: seven comma-separated values, empty by default (`,,,,,,`).
    pub transform_params: String,
}

impl TxtMeta {
    /// Defaults for everything but the producer and the date.
    pub fn new(producer: &str, date: &str) -> TxtMeta {
        TxtMeta {
            format_version: "1.01".into(),
            producer: producer.into(),
            date: date.into(),
            precision: "0.01".into(),
            transform_params: ",,,,,,".into(),
        }
    }
}

fn clean(s: &str) -> String {
    s.replace(',', "，").replace(['\r', '\n'], " ")
}

fn first_text(f: &Feature, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| match f.property(k) {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

/// Writes parcels (polygon features, stored lon/lat) as the ministry's coordinate text in
/// CGCS2000 3-degree Gauss-Krüger zone `zone` (see the module docs for the layout).
///
/// Errors: a zone outside 25–45 ([`ExportError::Parameter`]); features without a polygon
/// geometry or outside the zone's domain ([`ExportError::Features`]).
pub fn write_boundary_txt(
    parcels: &[Arc<Feature>],
    zone: u8,
    meta: &TxtMeta,
) -> Result<String, ExportError> {
    let crs = Crs::gauss_kruger(zone, true).map_err(|e| ExportError::Parameter(e.to_string()))?;
    let mut out = String::new();
    let mut line = |s: &str| {
        out.push_str(s);
        out.push_str("\r\n");
    };
    line("[属性描述]");
    line(&format!("格式版本号={}", clean(&meta.format_version)));
    line(&format!("数据产生单位={}", clean(&meta.producer)));
    line(&format!("数据产生日期={}", clean(&meta.date)));
    line("坐标系=2000国家大地坐标系");
    line("几度分带=3");
    line("投影类型=高斯克吕格");
    line("计量单位=米");
    line(&format!("带号={zone}"));
    line(&format!("精度={}", clean(&meta.precision)));
    line(&format!(
        "转换参数={}",
        meta.transform_params.replace(['\r', '\n'], " ")
    ));
    line("[地块坐标]");

    let mut problems = Problems::default();
    for (index, f) in parcels.iter().enumerate() {
        let polys: Vec<Polygon<f64>> = match &f.geometry {
            Some(Geometry::Polygon(p)) => vec![p.clone()],
            Some(Geometry::MultiPolygon(mp)) => mp.0.clone(),
            Some(Geometry::Rect(r)) => vec![r.to_polygon()],
            Some(Geometry::Triangle(t)) => vec![t.to_polygon()],
            Some(_) => {
                problems.push(
                    index,
                    Some(f.id.clone()),
                    "is not a polygon; the coordinate file holds parcels (面) only".into(),
                );
                continue;
            }
            None => {
                problems.push(index, Some(f.id.clone()), "has no geometry".into());
                continue;
            }
        };
        // (ring number, points in GK (easting with prefix, northing))
        let mut rings: Vec<Vec<Coord<f64>>> = Vec::new();
        let mut failed = None;
        for p in &polys {
            if p.exterior().0.is_empty() {
                continue;
            }
            for (k, ring) in std::iter::once(p.exterior())
                .chain(p.interiors())
                .enumerate()
            {
                let mut pts: Vec<Coord<f64>> = Vec::with_capacity(ring.0.len());
                for c in &ring.0 {
                    match from_lonlat(&crs, c.x, c.y) {
                        Ok((x, y)) => pts.push(Coord { x, y }),
                        Err(e) => failed = Some(e.to_string()),
                    }
                }
                if pts.len() > 1 && pts.first() == pts.last() {
                    pts.pop();
                }
                let want_cw = k == 0;
                if ring_is_cw(&pts) != want_cw && pts.len() > 2 {
                    // Reverse, keeping the starting point.
                    pts[1..].reverse();
                }
                rings.push(pts);
            }
        }
        if let Some(e) = failed {
            problems.push(index, Some(f.id.clone()), e);
            continue;
        }
        if rings.is_empty() {
            problems.push(index, Some(f.id.clone()), "has an empty polygon".into());
            continue;
        }
        let area_ha = f.geometry.as_ref().map(geodesic_area_m2).unwrap_or(0.0) / M2_PER_HA;
        let count: usize = rings.iter().map(|r| r.len() + 1).sum();
        let number = first_text(f, &["地块编号", "dkbh"]).unwrap_or_else(|| f.id.clone());
        let name = f
            .name
            .clone()
            .or_else(|| first_text(f, &["地块名称", "dkmc"]))
            .unwrap_or_default();
        let sheet = first_text(f, &["图幅号", "tfh"]).unwrap_or_default();
        let usage = first_text(f, &["地块用途", "用途", "dkyt", "land_use"]).unwrap_or_default();
        let class = first_text(f, &["地类编码", "dlbm"]).unwrap_or_default();
        line(&format!(
            "{count},{area_ha:.4},{},{},面,{},{},{},@",
            clean(&number),
            clean(&name),
            clean(&sheet),
            clean(&usage),
            clean(&class)
        ));
        let mut n = 0;
        for (ring_no, pts) in rings.iter().enumerate() {
            let first_n = n + 1;
            for p in pts {
                n += 1;
                line(&format!("J{n},{},{:.3},{:.3}", ring_no + 1, p.y, p.x));
            }
            let p = pts[0];
            line(&format!("J{first_n},{},{:.3},{:.3}", ring_no + 1, p.y, p.x));
        }
    }
    problems.export_result()?;
    Ok(out)
}

/// A parcel's rings by ring number (地块圈号), points as (easting, northing).
type Rings = Vec<(u32, Vec<Coord<f64>>)>;

/// Reads a coordinate file back (for checks and re-imports): one feature per parcel, id
/// from 地块编号, name from 地块名称, and the properties `图幅号`, `地块用途`, `地类编码`,
/// `面积_公顷` where given. The zone comes from 带号; an easting without the zone prefix is
/// read in the prefix-free CRS of that zone.
pub fn read_boundary_txt(text: &str, layer: &str) -> Result<ImportedLayer, ImportError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut zone: Option<u8> = None;
    let mut in_coords = false;
    // (header fields, rings by number)
    let mut parcels: Vec<(Vec<String>, Rings)> = Vec::new();
    for (no, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        if l.starts_with('[') {
            in_coords = l.contains("地块坐标");
            continue;
        }
        if !in_coords {
            if let Some(v) = l.strip_prefix("带号=") {
                zone = v.trim().parse().ok();
            }
            continue;
        }
        let parts: Vec<&str> = l.split(',').map(str::trim).collect();
        if parts.last() == Some(&"@") {
            parcels.push((parts.iter().map(|s| s.to_string()).collect(), Vec::new()));
            continue;
        }
        let bad = || ImportError::Corrupt(format!("line {}: '{l}' is not 点号,圈号,X,Y", no + 1));
        if parts.len() < 4 {
            return Err(bad());
        }
        let ring: u32 = parts[1].parse().map_err(|_| bad())?;
        let x: f64 = parts[2].parse().map_err(|_| bad())?;
        let y: f64 = parts[3].parse().map_err(|_| bad())?;
        let Some((_, rings)) = parcels.last_mut() else {
            return Err(bad());
        };
        match rings.iter_mut().find(|(r, _)| *r == ring) {
            Some((_, pts)) => pts.push(Coord { x: y, y: x }),
            None => rings.push((ring, vec![Coord { x: y, y: x }])),
        }
    }
    let Some(zone) = zone else {
        return Err(ImportError::NoCrs {
            file: "the coordinate file (no 带号=)".into(),
        });
    };
    let mut raw = Vec::with_capacity(parcels.len());
    let mut ids = Vec::new();
    for (head, rings) in parcels {
        let get = |i: usize| head.get(i).cloned().filter(|s| !s.is_empty());
        let mut props = Properties::new();
        if let Some(n) = get(3) {
            props.insert("name".into(), n.into());
        }
        for (i, key) in [(5, "图幅号"), (6, "地块用途"), (7, "地类编码")] {
            if let Some(v) = get(i) {
                props.insert(key.into(), v.into());
            }
        }
        if let Some(a) = get(1).and_then(|a| a.parse::<f64>().ok()) {
            props.insert("面积_公顷".into(), crate::formats::exchange::json_f64(a));
        }
        ids.push(get(2));
        let geometry = if rings.is_empty() {
            Err("parcel has no points".to_string())
        } else {
            assemble_polygons(rings.into_iter().map(|r| r.1).collect()).map(Some)
        };
        raw.push(RawFeature {
            id: get(2),
            properties: props,
            geometry,
        });
    }
    let prefixed = raw
        .iter()
        .filter_map(|r| r.geometry.as_ref().ok().cloned().flatten())
        .flat_map(|g| {
            use geo::CoordsIter;
            g.coords_iter().next()
        })
        .next()
        .is_none_or(|c| c.x >= 1e6);
    let crs = Crs::gauss_kruger(zone, prefixed).map_err(|e| ImportError::UnknownCrs {
        file: "the coordinate file".into(),
        wkt_excerpt: format!("带号={zone}"),
        reason: e.to_string(),
    })?;
    let use_ids = crate::formats::exchange::ids_usable(&ids);
    let total = raw.len();
    let mut problems = Problems::default();
    let layer =
        crate::formats::exchange::assemble_layer(layer, raw, &crs, use_ids, &mut problems, false);
    crate::formats::exchange::import_result(vec![layer], problems, total).map(|mut v| v.remove(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::exchange::tests_support::*;
    use crate::geom::crs::to_lonlat;
    use geo::{LineString, MultiPolygon};

    fn lonlat_ring(crs: &Crs, pts: &[(f64, f64)]) -> LineString<f64> {
        LineString::from(
            pts.iter()
                .map(|&(e, n)| to_lonlat(crs, e, n).unwrap())
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn hand_computed_rectangle() {
        let crs = Crs::gauss_kruger(36, true).unwrap();
        // 200 m east × 100 m north on the central meridian of zone 36 (108°E), counter-clockwise.
        let ring = lonlat_ring(
            &crs,
            &[
                (36_500_000.0, 3_320_000.0),
                (36_500_200.0, 3_320_000.0),
                (36_500_200.0, 3_320_100.0),
                (36_500_000.0, 3_320_100.0),
                (36_500_000.0, 3_320_000.0),
            ],
        );
        let f = feature(
            "A-1",
            serde_json::json!({"name": "地块一,北区", "地块用途": "建设用地", "地类编码": "0702", "图幅号": "H49G001001"}),
            Some(Geometry::Polygon(Polygon::new(ring, vec![]))),
        );
        let text = write_boundary_txt(
            &[Arc::new(f)],
            36,
            &TxtMeta::new("大足区规划和自然资源局", "2024-05-01"),
        )
        .unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines[..12],
            [
                "[属性描述]",
                "格式版本号=1.01",
                "数据产生单位=大足区规划和自然资源局",
                "数据产生日期=2024-05-01",
                "坐标系=2000国家大地坐标系",
                "几度分带=3",
                "投影类型=高斯克吕格",
                "计量单位=米",
                "带号=36",
                "精度=0.01",
                "转换参数=,,,,,,",
                "[地块坐标]",
            ]
        );
        let head: Vec<&str> = lines[12].split(',').collect();
        assert_eq!(head[0], "5");
        let area: f64 = head[1].parse().unwrap();
        assert!((area - 2.0).abs() <= 1e-4, "{area}");
        assert_eq!(head[1], "2.0000");
        assert_eq!(
            head[2..],
            [
                "A-1",
                "地块一，北区",
                "面",
                "H49G001001",
                "建设用地",
                "0702",
                "@"
            ]
        );
        assert_eq!(
            lines[13..18],
            [
                "J1,1,3320000.000,36500000.000",
                "J2,1,3320100.000,36500000.000",
                "J3,1,3320100.000,36500200.000",
                "J4,1,3320000.000,36500200.000",
                "J1,1,3320000.000,36500000.000",
            ]
        );
        assert_eq!(lines[18], "");
        assert_eq!(lines.len(), 19);
    }

    #[test]
    fn holes_and_multipolygons_round_trip() {
        let crs = Crs::gauss_kruger(35, true).unwrap();
        let sq = |e: f64, n: f64, s: f64| {
            lonlat_ring(
                &crs,
                &[(e, n), (e + s, n), (e + s, n + s), (e, n + s), (e, n)],
            )
        };
        let hole = {
            let mut r = sq(35_500_020.0, 3_300_020.0, 10.0);
            r.0.reverse();
            r
        };
        let mp = MultiPolygon(vec![
            Polygon::new(sq(35_500_000.0, 3_300_000.0, 100.0), vec![hole]),
            Polygon::new(sq(35_501_000.0, 3_300_000.0, 50.0), vec![]),
        ]);
        let f = feature(
            "7",
            serde_json::json!({"name": "整治区"}),
            Some(Geometry::MultiPolygon(mp)),
        );
        let text = write_boundary_txt(&[Arc::new(f.clone())], 35, &TxtMeta::new("x", "2024-01-01"))
            .unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let head: Vec<&str> = lines[12].split(',').collect();
        assert_eq!(head[0], "15"); // three rings of 4 points, each closed
        let area: f64 = head[1].parse().unwrap();
        assert!((area - (1.0 - 0.01 + 0.25)).abs() < 1e-3, "{area}");
        assert_eq!(lines[17], "J1,1,3300000.000,35500000.000"); // closes ring 1
        assert_eq!(lines[18], "J5,2,3300020.000,35500020.000"); // hole, counter-clockwise
        assert_eq!(lines[19], "J6,2,3300020.000,35500030.000");
        assert_eq!(lines[22], "J5,2,3300020.000,35500020.000");
        assert_eq!(lines[23], "J9,3,3300000.000,35501000.000");
        assert_eq!(lines.len(), 13 + 15);
        let back = read_boundary_txt(&text, "parcels").unwrap();
        assert_eq!(back.features[0].id, "7");
        assert_eq!(back.features[0].name.as_deref(), Some("整治区"));
        assert_same_geometry(
            f.geometry.as_ref().unwrap(),
            back.features[0].geometry.as_ref().unwrap(),
            Lossy::None,
            "7",
        );
    }

    #[test]
    fn refuses_points_and_bad_zones() {
        let p = feature(
            "p",
            serde_json::json!({}),
            Some(Geometry::Point(geo::Point::new(108.0, 30.0))),
        );
        let n = feature("n", serde_json::json!({}), None);
        let e = write_boundary_txt(
            &[Arc::new(p), Arc::new(n)],
            36,
            &TxtMeta::new("x", "2024-01-01"),
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("2 feature(s)") && msg.contains("id p") && msg.contains("id n"),
            "{msg}"
        );
        let e = write_boundary_txt(&[], 50, &TxtMeta::new("x", "2024-01-01")).unwrap_err();
        assert!(e.to_string().contains("50"), "{e}");
        assert!(read_boundary_txt("[地块坐标]\r\n3,1,a,b,面,,,,@\r\nJ1,1,x,y\r\n", "t").is_err());
    }
}
