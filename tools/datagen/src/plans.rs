//! Writes seeds/: one GeoJSON file per plan with every spatial entity of the
//! catalog, plus layers.json, aliases.json, unplaced.json and README.md.

use crate::admin::Admin;
use crate::out::{is_null, is_valid, no_geometry, round_geom, write_fc, Feature};
use crate::resolve::{Gazetteer, Outcome, Resolved};
use crate::util::*;
use geo::{BooleanOps, Coord, Geometry, LineString, MultiLineString, MultiPolygon};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use yizhangtu::place;

const PLANS: &[(&str, &str, &[&str])] = &[
    ("000", "dazu_longshui_qiangzhen_daicun", &["龙水镇"]),
    ("001", "yongchuan_chengxiang_ronghe", &[]),
    ("002", "rongchang_wujia_qiangzhen_daicun", &["吴家镇"]),
    ("003", "kaizhou_xiaoxian_dacheng", &[]),
    ("004", "wulong_xiangcun_zhenxing_xianjie", &[]),
];

pub const LAYERS: &[(&str, &str, &str, &str, &str)] = &[
    ("industrial_parks", "工业园区", "Industrial parks", "industrial_park", "Industrial and logistics parks and clusters named in the plans"),
    ("vegetable_bases", "蔬菜基地", "Vegetable bases", "vegetable_base", "Vegetable bases and parks"),
    ("agricultural_bases", "农业基地", "Agricultural bases", "agricultural_base", "Other agricultural bases: tea, fruit, bamboo shoots, mulberry, livestock, fisheries, modern agricultural parks"),
    ("resettlement_sites", "安置点", "Resettlement sites", "resettlement_site", "易地扶贫搬迁集中安置点 and other relocation / resettlement housing named in the plans (see site_type)"),
    ("key_help_villages", "乡村振兴重点帮扶村（乡镇）", "Key help villages and towns", "key_help_village", "乡村振兴重点帮扶村 and 重点帮扶乡镇 (unit_level: village or town), with help group, contact leaders and lead unit"),
    ("projects", "项目", "Projects", "", "Every project and task of the plans, with annex numbers, investment, years and responsible units"),
    ("land_consolidation", "土地整治", "Land consolidation", "land_consolidation", "High-standard farmland, 全域土地综合整治 and other land consolidation areas"),
    ("tourism_sites", "旅游点", "Tourism sites", "tourism_site", "Rural tourism sites, scenic areas, tourism complexes"),
    ("public_facilities", "公共设施", "Public facilities", "public_facility", "Schools, hospitals, museums, training bases and other public facilities"),
    ("infrastructure", "基础设施", "Infrastructure", "infrastructure", "Roads, bridges, water supply, drainage, power and other infrastructure"),
    ("markets", "市场与物流", "Markets and logistics", "market", "Markets, commercial streets, trading and cold-chain logistics centres"),
    ("ecological_areas", "生态", "Ecological areas", "ecological", "Rivers, lakes, reservoirs and ecological works"),
    ("other_places", "其他地点", "Other places", "other", "Places of other kinds named in the plans: urban areas, planning sub-areas, demonstration villages, rivers and mountains used as references"),
];

fn layer_for(catalog_layer: &str) -> &'static str {
    LAYERS
        .iter()
        .find(|l| l.3 == catalog_layer)
        .map(|l| l.0)
        .unwrap_or("other_places")
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Point,
    Line,
    Polygon,
}

fn base_name(name: &str) -> String {
    let mut n = name.to_string();
    for (o, c) in [('（', '）'), ('(', ')')] {
        while let (Some(i), Some(j)) = (n.find(o), n.find(c)) {
            if j > i {
                n = format!("{}{}", &n[..i], &n[j + c.len_utf8()..]);
            } else {
                break;
            }
        }
    }
    for suf in [
        "新建项目",
        "建设项目",
        "建设工程项目",
        "建设工程",
        "新建工程",
        "改造工程",
        "项目",
        "工程",
        "建设",
    ] {
        if let Some(s) = n.strip_suffix(suf) {
            if s.chars().count() >= 2 {
                n = s.to_string();
            }
        }
    }
    n.trim().to_string()
}

fn kind_of(name: &str, attrs: &Value) -> Kind {
    let n = base_name(name);
    let ty = attrs.get("type").and_then(|v| v.as_str()).unwrap_or("");
    let point_words = [
        "医院",
        "卫生院",
        "学校",
        "小学",
        "初中",
        "中学",
        "镇中",
        "一小",
        "一校",
        "博物馆",
        "美术馆",
        "图书馆",
        "纪念馆",
        "陈列馆",
        "展览馆",
        "研究院",
        "研究所",
        "分院",
        "中心",
        "厂",
        "站",
        "广场",
        "大桥",
        "天桥",
        "安置点",
        "泵站",
        "故居",
        "旧址",
        "寺",
        "祠堂",
        "路口",
        "连接点",
        "车间",
        "直播间",
        "营地",
        "养殖场",
        "猪场",
        "扩繁场",
        "消纳场",
        "实训基地",
        "孵化基地",
        "敬老院",
        "交易城",
        "公寓",
        "综合楼",
        "体验馆",
        "驿站",
        "工坊",
        "水厂",
        "拦河坝",
        "市场",
        "研学基地",
        "赋能基地",
        "设施",
        "住房",
        "馆",
    ];
    let line_words = [
        "公路",
        "道路",
        "大道",
        "高速",
        "铁路",
        "栈道",
        "隧道",
        "连接道",
        "环线",
        "排洪沟",
        "河道",
        "延伸段",
        "马道",
        "管网通道",
        "一条街",
        "步行街",
        "古街",
        "至",
    ];
    let line_types = [
        "road",
        "river",
        "railway",
        "expressway",
        "street",
        "省道",
        "县道",
        "bypass",
        "tunnel",
    ];
    let is_street_admin = n.ends_with("街道");
    // works counted in sites (供水工程11处): points at the places they serve
    if name.contains("处（") || name.contains("处(") {
        return Kind::Point;
    }
    if ty.starts_with("place") || ty.contains("小地名") {
        return Kind::Point;
    }
    if !is_street_admin
        && (line_words.iter().any(|w| n.contains(w))
            || line_types
                .iter()
                .any(|t| ty.starts_with(t) || ty.contains(&format!("{t} ")))
            || n.starts_with('S') && n[1..].chars().all(|c| c.is_ascii_digit())
            || ["路", "街", "河", "江", "溪", "高铁"]
                .iter()
                .any(|s| n.ends_with(s)))
        && !n.contains("街区")
        && (!n.ends_with("路口") || n.contains('至'))
    {
        return Kind::Line;
    }
    let point_types = [
        "school",
        "hospital",
        "junction",
        "内涝点",
        "bridge",
        "museum",
        "memorial",
        "health",
        "factory",
        "enterprise",
        "WWTP",
        "CDC",
        "TCM",
        "maternal",
        "primary",
        "junior",
        "middle",
        "pump",
    ];
    if point_words
        .iter()
        .any(|w| n.ends_with(w) || n.contains(&format!("{w}及")) || n.contains(&format!("{w}、")))
        || point_types.iter().any(|t| ty.contains(t))
    {
        if attrs
            .get("length_km")
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0)
            >= 1.0
        {
            return Kind::Line;
        }
        return Kind::Point;
    }
    if attrs.get("length_km").is_some() || attrs.get("length_m").is_some() {
        return Kind::Line;
    }
    Kind::Polygon
}

/// Area in 亩 stated for the entity, if any: (mu, what it is).
fn stated_area_mu(attrs: &Value, metrics: &[Value]) -> Option<(f64, String)> {
    let keys = [
        "area_mu",
        "area_mu_nominal",
        "area_mu_min",
        "area_mu_approx",
        "area_mu_target_2027",
        "water_area_mu",
        "site_area_mu",
        "total_land_mu",
        "land_mu",
        "new_standard_tea_garden_mu",
        "new_machine_picked_tea_mu",
        "area_mu_target_2025",
        "new_land_mu",
        "old_ponds_renovated_mu",
        "land_acquired_mu",
    ];
    for k in keys {
        if let Some(v) = attrs.get(k).and_then(|v| v.as_f64()) {
            if v > 0.0 {
                return Some((v, format!("attribute {k}")));
            }
        }
    }
    if let Some(v) = attrs.get("area_ha").and_then(|v| v.as_f64()) {
        return Some((v * 15.0, "attribute area_ha × 15".into()));
    }
    for m in metrics {
        let unit = m["unit"].as_str().unwrap_or("");
        let what = m["what"].as_str().unwrap_or("");
        if let Some(v) = m["value"].as_f64() {
            if unit == "亩" && v > 0.0 {
                return Some((v, format!("metric {what}")));
            }
            if unit == "公顷" && v > 0.0 {
                return Some((v * 15.0, format!("metric {what} (公顷 × 15)")));
            }
        }
    }
    None
}

fn default_area_mu(layer: &str, name: &str) -> f64 {
    let n = base_name(name);
    if layer != "industrial_parks"
        && (n.contains("小区") || n.contains("社区") || n.contains("街区") || n.contains("集聚区"))
    {
        return 150.0;
    }
    match layer {
        "industrial_parks" => 3000.0,
        "vegetable_bases" | "agricultural_bases" => 3000.0,
        "land_consolidation" => 4500.0,
        "tourism_sites" => 1500.0,
        "resettlement_sites" => 150.0,
        "markets" => 150.0,
        "public_facilities" => 100.0,
        "ecological_areas" => 1500.0,
        "projects" => 1500.0,
        _ => 1500.0,
    }
}

fn default_length_m(name: &str, attrs: &Value) -> f64 {
    if let Some(v) = attrs.get("length_km").and_then(|v| v.as_f64()) {
        return v * 1000.0;
    }
    if let Some(v) = attrs.get("length_m").and_then(|v| v.as_f64()) {
        return v;
    }
    let n = base_name(name);
    if n.contains("高速") || n.contains("铁路") || n.contains("高铁") {
        12_000.0
    } else if n.ends_with('河') || n.ends_with('江') || n.ends_with('溪') || n.contains("河道")
    {
        8_000.0
    } else if n.ends_with('街')
        || n.contains("一条街")
        || n.contains("步行街")
        || n.contains("古街")
    {
        600.0
    } else if n.contains("隧道") || n.contains("连接道") || n.contains("栈道") {
        1_000.0
    } else {
        4_000.0
    }
}

struct Doc {
    id: String,
    slug: String,
    file: String,
    title: String,
    text: String,
    district: String,
    focus: Vec<String>,
    cat: Value,
}

/// A resolved group: one located_in phrase → units.
#[derive(Clone, Debug)]
struct Group {
    text: String,
    codes: Vec<String>,
    how: &'static str,
    note: Option<String>,
}

struct Unplaced {
    status: &'static str,
    plan: String,
    name: String,
    catalog: String,
    catalog_layer: String,
    reason: String,
    quote: String,
}

pub fn write(admin: &Admin, reference: &Path, documents: &Path, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let mut gaz = Gazetteer::new(admin);
    let mut unplaced: Vec<Unplaced> = Vec::new();
    let mut layer_files: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut counts: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();

    for (id, slug, focus) in PLANS {
        let cat: Value = serde_json::from_str(
            &std::fs::read_to_string(reference.join("catalog").join(format!("{id}.json")))
                .expect("catalog"),
        )
        .unwrap();
        let file = cat["document"].as_str().unwrap().to_string();
        let text = std::fs::read_to_string(documents.join(&file))
            .unwrap_or_else(|e| panic!("{}: {e}", documents.join(&file).display()));
        let dname = cat["district"].as_str().unwrap();
        let district = admin
            .districts
            .iter()
            .find(|d| d.name == dname)
            .expect("district")
            .code
            .clone();
        let focus: Vec<String> = focus
            .iter()
            .map(|n| gaz.town_by_name(&district, n).expect("focus town"))
            .collect();
        let doc = Doc {
            id: id.to_string(),
            slug: slug.to_string(),
            file,
            title: cat["title"].as_str().unwrap().to_string(),
            text,
            district,
            focus,
            cat,
        };
        let feats = plan_features(admin, &mut gaz, &doc, &mut unplaced);
        let fname = format!("{}_{}.geojson", doc.id, doc.slug);
        for f in &feats {
            let l = f.props["layer"].as_str().unwrap();
            let l: &'static str = LAYERS.iter().find(|x| x.0 == l).unwrap().0;
            layer_files.entry(l).or_default().insert(fname.clone());
            *counts
                .entry(doc.id.clone())
                .or_default()
                .entry(l)
                .or_default() += 1;
        }
        write_fc(
            &dir.join(&fname),
            &format!("{}_{}", doc.id, doc.slug),
            &feats,
        )
        .unwrap();
        eprintln!("seeds/{fname}: {} features", feats.len());
    }

    // layers.json
    let layers: Vec<Value> = LAYERS
        .iter()
        .map(|(id, zh, en, _, desc)| {
            let gt = if *id == "key_help_villages" { "MultiPolygon" } else { "Geometry" };
            json!({"id": id, "title_zh": zh, "title_en": en, "description": desc, "geometry_type": gt,
                   "files": layer_files.get(id).map(|s| s.iter().cloned().collect::<Vec<_>>()).unwrap_or_default()})
        })
        .collect();
    std::fs::write(
        dir.join("layers.json"),
        canonical_pretty(&Value::Array(layers)),
    )
    .unwrap();

    // aliases.json: the whole alias table, plus the stems the resolver used
    for (district, variant, _, _, _) in crate::resolve::ALIASES {
        gaz.alias_only(district, variant).expect("alias resolves");
    }
    let mut aliases = Vec::new();
    for ((district, variant), (canon, codes, kind, note)) in &gaz.used {
        aliases.push(
            json!({"district_code": district, "variant": variant, "canonical": canon,
                            "codes": codes, "kind": kind, "note": note}),
        );
    }
    for (district, variant, canon, note) in ENTITY_ALIASES {
        aliases.push(
            json!({"district_code": district, "variant": variant, "canonical": canon,
                            "codes": [], "kind": "entity-name-variant", "note": note}),
        );
    }
    std::fs::write(
        dir.join("aliases.json"),
        canonical_pretty(&Value::Array(aliases)),
    )
    .unwrap();

    // unplaced.json
    let list = |status: &str| -> Vec<Value> {
        unplaced
            .iter()
            .filter(|u| u.status == status)
            .map(|u| json!({"plan": u.plan, "name": u.name, "catalog": u.catalog, "catalog_layer": u.catalog_layer,
                            "reason": u.reason, "quote": u.quote}))
            .collect()
    };
    let up = json!({
        "description": "Catalog entities of the five plans that could not be placed, or not placed as finely as the text names them. not_placed: no feature was made. district_level: tied to the district only (geometry null, listed by the district) because the text names no place inside the district that could be resolved. partially_placed: placed, but some of the places the text names could not be resolved. merged: folded into another feature (not double-counted).",
        "not_placed": list("not_placed"),
        "partially_placed": list("partially_placed"),
        "district_level": list("district_level"),
        "merged": list("merged"),
    });
    std::fs::write(dir.join("unplaced.json"), canonical_pretty(&up)).unwrap();
    eprintln!(
        "unplaced: {} not placed, {} partially, {} district level, {} merged",
        list("not_placed").len(),
        list("partially_placed").len(),
        list("district_level").len(),
        list("merged").len()
    );
    let mut table = String::new();
    for (plan, m) in &counts {
        for (l, n) in m {
            table.push_str(&format!("| {plan} | {l} | {n} |\n"));
        }
    }
    std::fs::write(
        dir.join("README.md"),
        SEEDS_README.replace("{COUNTS}", &table),
    )
    .unwrap();
}

/// (district code, variant, canonical name, note)
/// The 5 集中安置点 of 武隆 as one group: the plan gives its totals, not each site's.
fn resettlement_group() -> Value {
    json!({"name": "武隆区易地扶贫搬迁集中安置点（5个）", "sites": 5, "households": 74, "people": 270,
           "note": "totals of the group of 5 sites as the plan gives them; no per-site figures"})
}

/// (district code, variant, canonical name, note)
const ENTITY_ALIASES: &[(&str, &str, &str, &str)] = &[
    (
        "500156",
        "香障树田园综合体",
        "桐梓镇香障树田园综合体（香树村田园综合体）",
        "project 2-11 is named 香障树, its content says 香树村田园综合体",
    ),
    (
        "500156",
        "香树村田园综合体",
        "桐梓镇香障树田园综合体（香树村田园综合体）",
        "project 2-11 is named 香障树, its content says 香树村田园综合体",
    ),
    (
        "500156",
        "关桥乡村生活综合体",
        "武隆区“官桥·云村”乡村生活旅游综合体项目",
        "project 3-1 (火炉镇) is written 官桥·云村 and 关桥 in the same plan",
    ),
    (
        "500156",
        "官桥·云村",
        "武隆区“官桥·云村”乡村生活旅游综合体项目",
        "project 3-1 (火炉镇)",
    ),
    (
        "500153",
        "双流万亩蔬菜园区",
        "万亩蔬菜园区（双流村）",
        "吴家镇: also 双流万亩蔬菜基地",
    ),
    (
        "500153",
        "双流万亩蔬菜基地",
        "万亩蔬菜园区（双流村）",
        "吴家镇: also 双流万亩蔬菜园区",
    ),
    (
        "500111",
        "沿濑溪河万亩蔬菜基地",
        "濑溪河万亩蔬菜基地",
        "龙水镇",
    ),
    (
        "500153",
        "内荣现代农高区",
        "内江荣昌现代农业高新技术产业示范区",
        "吴家镇",
    ),
    (
        "500153",
        "荣昌黄桷滩现代农业产业园",
        "黄桷滩市级现代农业产业园",
        "吴家镇",
    ),
    (
        "500154",
        "刘帅纪念馆",
        "刘伯承同志纪念馆及故居",
        "开州: the text does not say they are the same",
    ),
];

// ------------------------------------------------------------------ corrections (issue 12)

/// An area figure the catalog takes from another number of the same sentence, corrected:
/// (plan, project no. or catalog name, the whole thing's area in 亩 if the text gives one,
/// 亩 to draw when the text gives none for the whole, why).
type AreaFix = (
    &'static str,
    &'static str,
    Option<f64>,
    Option<f64>,
    &'static str,
);
const AREA_FIXES: &[AreaFix] = &[
    ("001", "以五大山脉为重点的万亩级标准化示范茶园", None, None,
     "the text gives these gardens no area: 15万亩 is the district's whole tea scale (茶叶发展规模（全区）) by 2025"),
    ("002", "以双流万亩蔬菜园区为核心的精品蔬菜保供基地（联合内江东兴区）", None, None,
     "the text gives this base no area: 2.4万亩 is 吴家镇's whole vegetable scale in 2023 (蔬菜产业种植规模); its core, the 双流万亩蔬菜园区, is its own feature"),
    ("004", "3-11", Some(1747.0), None, "项目总占 1747 亩 (the project's whole land; 1000 亩 is the old ponds it renovates, 10000 亩 the reservoir)"),
    ("004", "3-15", Some(5900.0), None,
     "sum of the 亩 figures of its parts: 大地艺术公园 600, 蔬菜园 2000, 水稻种植园 2000, 果园 500, 茶园 500, 中药材园 200, 种植示范园 100 (600 alone is the art park)"),
    ("004", "3-16", None, None,
     "the text gives no farmland area: 1 万亩 is its soil-improvement part (土力培肥) only"),
    ("004", "6-1", None, Some(210.0),
     "the text gives no total: 5—10 bases of about 70 or 150 亩 each (70 亩 is one base) and 260 亩 for the second phase; drawn as one 70-亩 base in each named town, the smallest reading"),
];

/// The corrected area of an entity, if the table has one: (area stated, 亩 to draw, why).
fn area_fix(plan: &str, e: &Entity) -> Option<(Option<f64>, Option<f64>, &'static str)> {
    let no = e.attrs.get("id").and_then(Value::as_str).unwrap_or("");
    AREA_FIXES
        .iter()
        .find(|f| f.0 == plan && (f.1 == no || f.1 == e.name))
        .map(|f| (f.2, f.3, f.4))
}

/// The area an entity states, corrected by [`AREA_FIXES`]: (亩, what it is).
fn entity_area(plan: &str, e: &Entity) -> Option<(f64, String)> {
    if let Some((stated, _, why)) = area_fix(plan, e) {
        return stated.map(|mu| (mu, why.to_string()));
    }
    let metrics: Vec<Value> = e
        .attrs
        .get("metrics")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    stated_area_mu(&e.attrs, &metrics)
}

/// Catalog features that repeat an annex project: (plan, feature name prefix, project no., why).
/// Kept once, as the project; the feature's reference goes to its `other_references`.
const FEATURES_OF_PROJECTS: &[(&str, &str, &str, &str)] = &[(
    "004",
    "高山蔬菜产业园",
    "3-5",
    "the 20万亩 高山蔬菜产业园 is what 附件1 project 3-5 (武隆区现代农业产业园建设项目) builds: “着力打造种植面积 20 万亩高山蔬菜产业园”; drawn once, as that project",
)];

/// Named parts of larger areas: (district, part, the wholes it lies in). When the text names a
/// part and its whole, the part is where the thing is; when the entity is itself the part, its
/// own place wins over the whole it is said to lie in.
/// The names 浦里新区 goes by in the 开州 plan.
const PULI: &[&str] = &["浦里新区", "浦里片区", "浦里工业新区", "浦里高新区"];
const PARTS: &[(&str, &str, &[&str])] = &[
    ("500154", "胡桥片区", PULI),
    ("500154", "古迹片区", PULI),
    ("500154", "赵家片区", PULI),
    ("500154", "长沙组团", PULI),
    ("500154", "东华片区", &["环湖片区", "环汉丰湖片区"]),
];

/// Whether `whole` is a larger area that `part` lies in, by [`PARTS`].
fn is_whole_of(district: &str, part: &str, whole: &str) -> bool {
    PARTS
        .iter()
        .any(|(d, p, ws)| *d == district && part.contains(p) && ws.contains(&whole))
}

/// Entities placed by the places their names carry, where the text says only the town (or
/// nothing): (plan, name prefix, phrases to resolve instead, why, the text's count of units:
/// (named, total, what)).
type PlacedByName = (
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<(usize, usize, &'static str)>,
);
const PLACED_BY_NAME: &[PlacedByName] = &[
    ("002", "代兴原种土鸡保种扩繁场", &["代兴村"], "named after 代兴村 (吴家镇); the text says only 吴家镇", None),
    ("002", "代兴猪场", &["代兴村"], "named after 代兴村 (吴家镇); the text says only 吴家镇", None),
    ("004", "武隆区“官桥·云村”", &["关桥村"], "官桥 (written 关桥 in the same plan) is 火炉镇关桥村; the text says only 火炉镇", None),
    ("004", "“官桥·云村”", &["关桥村"], "官桥 (written 关桥 in the same plan) is 火炉镇关桥村; the text says only 火炉镇", None),
    ("004", "供水工程11处", &["木根", "和顺镇", "庙垭", "平桥镇", "火炉镇", "桐梓镇", "江口镇", "羊角新址", "大河沟", "河心"],
     "the works are named after the places they serve (大河沟、木根、和顺、庙垭、平桥、河心、火炉、桐梓、江口、羊角新址); each is read as the unit of that name, 大河沟 and 河心 match none",
     Some((10, 11, "处"))),
];

fn placed_by_name(plan: &str, name: &str) -> Option<&'static PlacedByName> {
    PLACED_BY_NAME
        .iter()
        .find(|p| p.0 == plan && name.starts_with(p.1))
}

/// Sizes of named water bodies the text does not give: (district, name, 亩, source).
const SITE_SIZES: &[(&str, &str, f64, &str)] = &[(
    "500154",
    "汉丰湖",
    22_500.0,
    "about 15 km² of water (the lake's known size, not given by the plan)",
)];

/// A lake, reservoir or other single named water body: one polygon, even when the text names
/// several towns round it.
fn is_water_body(name: &str) -> bool {
    let n = base_name(name);
    n.ends_with('湖') || n.ends_with("水库")
}

/// Entities the plan texts name that the catalog does not list: (plan, name, catalog layer,
/// located_in, verbatim quote, attributes).
type DocEntity = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);
const DOCUMENT_ENTITIES: &[DocEntity] = &[
    (
        "003",
        "全域土地综合整治（开州区）",
        "land_consolidation",
        &["开州区"],
        "开展全域土地综合整治,推动空间整合集聚、高效利用,加快“小田变大田”“散居变聚居”。",
        r#"{"type": "全域土地综合整治", "scope": "全区", "measures": ["小田变大田", "散居变聚居"]}"#,
    ),
    (
        "003",
        "连片撂荒耕地统一整治（开州区）",
        "land_consolidation",
        &["开州区"],
        "鼓励村集体经济组织对连片撂荒耕地进行统一整治,以“标准地”改革方式盘活利用",
        r#"{"type": "撂荒耕地整治", "mechanism": "村集体经济组织统一整治, “标准地”改革"}"#,
    ),
    (
        "003",
        "低丘缓坡地、“四荒地四旁地”开发利用",
        "land_consolidation",
        &["开州区"],
        "稳妥开发利用低丘缓坡地、“四荒地四旁地”,合理确定开发用途、规模、布局和项目用地准入门槛。",
        r#"{"type": "未利用地开发"}"#,
    ),
    (
        "003",
        "退出宅基地集体收储、地票交易",
        "land_consolidation",
        &["开州区"],
        "对农民退出的宅基地,鼓励探索集体收储、地票交易等方式处置。",
        r#"{"type": "宅基地复垦（地票）"}"#,
    ),
    (
        "004",
        "耕地修复和宜机化改造工程",
        "land_consolidation",
        &["全区"],
        "在全区开展耕地修复和宜机化改造工程，扩大农作物轮作面积，落实休耕制度。",
        r#"{"type": "耕地修复, 宜机化改造", "scope": "全区"}"#,
    ),
    (
        "004",
        "全国有机农产品示范区",
        "other",
        &["全区"],
        "到 2025 年，成功创建全国有机农产品示范区。",
        r#"{"type": "designation (创建)", "target_year": 2025}"#,
    ),
    (
        "003",
        "水上运动产业孵化园",
        "tourism_site",
        &["汉丰湖"],
        "运动员研学餐厅、水上运动产业孵化园等",
        r#"{"type": "place (a building of 附件4 #15)", "project": "附件4 #15 开州区环汉丰湖城市更新项目水上国民休闲运动中心 (one of its parts)"}"#,
    ),
];

/// Places the texts name that are not on the map, with the reason: (plan, name, catalog layer,
/// why, verbatim quote).
const NOT_ON_MAP: &[(&str, &str, &str, &str, &str)] = &[
    ("000", "外向型产业园区", "industrial_park",
     "a park to be built together with partner regions (“协同建设”, with 异地孵化、飞地经济、伙伴园区); the text names no place, and it may lie outside 大足区",
     "协同建设外向型产业园区、“研发飞地”园区"),
    ("000", "“研发飞地”园区", "industrial_park",
     "an enclave (飞地) for research built with partner regions: by its nature outside 大足区, and the text names no place",
     "协同建设外向型产业园区、“研发飞地”园区"),
    ("002", "川南渝西融合发展试验区", "other",
     "a regional platform over southern Sichuan (川南) and western Chongqing (渝西), far larger than 荣昌区; not a site",
     "川南渝西融合发展试验区等平台建设"),
    ("002", "国家畜牧科技城", "other",
     "a national platform whose reforms and policies are piloted in 吴家镇 (“在吴家镇先行先试”); the text names it as a source of policy, not as a site in 吴家镇",
     "国家畜牧科技城等重大改革、重大项目、重大政策在吴家镇先行先试"),
    ("003", "“科创飞地”", "industrial_park",
     "an enclave built in partner districts (对口协同区县): outside 开州区, and the text names no place",
     "主动争取对口协同区县建设“科创飞地”“产业飞地”"),
    ("003", "“产业飞地”", "industrial_park",
     "an enclave built in partner districts (对口协同区县): outside 开州区, and the text names no place",
     "主动争取对口协同区县建设“科创飞地”“产业飞地”"),
];

fn flat_str_list(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(|s| s.to_string()))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

struct Entity {
    catalog: &'static str,
    index: usize,
    name: String,
    catalog_layer: String,
    layer: &'static str,
    located_in: Vec<String>,
    attrs: Value,
    quote: String,
    raw: Value,
}

fn plan_features(
    admin: &Admin,
    gaz: &mut Gazetteer,
    doc: &Doc,
    unplaced: &mut Vec<Unplaced>,
) -> Vec<Feature> {
    let mut ents: Vec<Entity> = Vec::new();
    for (i, f) in doc.cat["features"].as_array().unwrap().iter().enumerate() {
        let cl = f["layer"].as_str().unwrap().to_string();
        ents.push(Entity {
            catalog: "features",
            index: i,
            name: f["name"].as_str().unwrap().to_string(),
            layer: layer_for(&cl),
            catalog_layer: cl,
            located_in: flat_str_list(&f["located_in"]),
            attrs: f["attributes"].clone(),
            quote: f["quote"].as_str().unwrap_or("").to_string(),
            raw: f.clone(),
        });
    }
    // projects; same_as entries are folded into the annex project they repeat
    let projects = doc.cat["projects"].as_array().unwrap();
    let mut also: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in projects {
        if let Some(s) = p.get("same_as").and_then(|v| v.as_str()) {
            for id in s.split('/') {
                also.entry(id.trim().to_string()).or_default().push(json!({
                    "name": p["name"], "source": p["source"], "quote": p["quote"]}));
            }
            unplaced.push(Unplaced {
                status: "merged",
                plan: doc.id.clone(),
                name: p["name"].as_str().unwrap().to_string(),
                catalog: "projects".into(),
                catalog_layer: "project".into(),
                reason: format!("same as 附件1 project {s}; kept once, this reference is listed in that feature's other_references"),
                quote: p["quote"].as_str().unwrap_or("").to_string(),
            });
        }
    }
    for (i, p) in projects.iter().enumerate() {
        if p.get("same_as").and_then(|v| v.as_str()).is_some() {
            continue;
        }
        let mut attrs = Map::new();
        for (k, v) in p.as_object().unwrap() {
            if !["name", "located_in", "quote", "same_as"].contains(&k.as_str()) {
                attrs.insert(k.clone(), v.clone());
            }
        }
        ents.push(Entity {
            catalog: "projects",
            index: i,
            name: p["name"].as_str().unwrap().to_string(),
            catalog_layer: "project".into(),
            layer: "projects",
            located_in: flat_str_list(&p["located_in"]),
            attrs: Value::Object(attrs),
            quote: p["quote"].as_str().unwrap_or("").to_string(),
            raw: p.clone(),
        });
    }

    // entities the text names that the catalog does not list
    for (i, (plan, name, layer, located, quote, attrs)) in DOCUMENT_ENTITIES.iter().enumerate() {
        if *plan != doc.id {
            continue;
        }
        ents.push(Entity {
            catalog: "document",
            index: i,
            name: name.to_string(),
            catalog_layer: layer.to_string(),
            layer: layer_for(layer),
            located_in: located.iter().map(|s| s.to_string()).collect(),
            attrs: serde_json::from_str(attrs).expect("attributes are JSON"),
            quote: quote.to_string(),
            raw: Value::Null,
        });
    }
    for (plan, name, layer, why, quote) in NOT_ON_MAP {
        if *plan == doc.id {
            assert!(doc.text.contains(quote), "{name}: quote not in document");
            unplaced.push(Unplaced {
                status: "not_placed",
                plan: doc.id.clone(),
                name: name.to_string(),
                catalog: "document".into(),
                catalog_layer: layer.to_string(),
                reason: why.to_string(),
                quote: quote.to_string(),
            });
        }
    }
    // catalog features that are an annex project: kept once, as the project
    ents.retain(|e| {
        let Some((_, _, no, why)) = FEATURES_OF_PROJECTS
            .iter()
            .find(|m| m.0 == doc.id && e.catalog == "features" && e.name.starts_with(m.1))
        else {
            return true;
        };
        also.entry(no.to_string()).or_default().push(json!({
            "name": e.name, "source": format!("catalog/{}.json features[{}]", doc.id, e.index), "quote": e.quote}));
        unplaced.push(Unplaced {
            status: "merged",
            plan: doc.id.clone(),
            name: e.name.clone(),
            catalog: e.catalog.into(),
            catalog_layer: e.catalog_layer.clone(),
            reason: why.to_string(),
            quote: e.quote.clone(),
        });
        false
    });

    let d = admin.district(&doc.district);
    let mut out: Vec<Feature> = Vec::new();
    let mut seen_ids: BTreeSet<String> = BTreeSet::new();
    for e in &ents {
        assert!(
            doc.text.contains(&e.quote),
            "{}: quote not in document: {}",
            e.name,
            e.quote
        );
        // the 武隆 aggregate of the 5 centralised resettlement sites becomes the 5 site features
        if doc.id == "004"
            && e.catalog_layer == "resettlement_site"
            && e.name.starts_with("易地扶贫搬迁集中安置点（5个")
        {
            unplaced.push(Unplaced {
                status: "merged",
                plan: doc.id.clone(),
                name: e.name.clone(),
                catalog: e.catalog.into(),
                catalog_layer: e.catalog_layer.clone(),
                reason: "aggregate of the 5 集中安置点: made into the 2 named sites and 3 placeholders, each carrying the group's totals (74 户 / 270 人) in one `group` object, not as its own figures".into(),
                quote: e.quote.clone(),
            });
            continue;
        }
        // ---- resolve
        let mut groups: Vec<Group> = Vec::new();
        let mut unresolved: Vec<(String, String)> = Vec::new();
        let mut district_phr: Vec<String> = Vec::new();
        let mut external: Vec<String> = Vec::new();
        let mut context: Vec<String> = Vec::new();
        let by_name = placed_by_name(&doc.id, &e.name);
        let phrases: Vec<String> = match by_name {
            Some((_, _, places, _, _)) => places.iter().map(|p| p.to_string()).collect(),
            None => e.located_in.clone(),
        };
        for phrase in &phrases {
            match gaz.resolve(&doc.district, phrase, &context, &doc.focus) {
                Outcome::Units(Resolved { codes, how, note }) => {
                    for c in &codes {
                        if c.len() == 9 && !context.contains(c) {
                            context.push(c.clone());
                        }
                    }
                    groups.push(Group {
                        text: phrase.clone(),
                        codes,
                        how,
                        note,
                    });
                }
                Outcome::District(r) => district_phr.push(r),
                Outcome::External(r) => external.push(r),
                Outcome::Unknown(r) => {
                    if doc.focus.len() == 1 {
                        // a small place of a one-town plan: taken to be in that town
                        let t = admin.town(&doc.focus[0]).name.clone();
                        groups.push(Group {
                            text: phrase.clone(),
                            codes: doc.focus.clone(),
                            how: "scope",
                            note: Some(format!("“{phrase}” is not in any gazetteer; taken to be in {t}, the plan's scope")),
                        });
                    } else {
                        unresolved.push((phrase.clone(), r))
                    }
                }
            }
        }
        if let Some((_, _, _, why, _)) = by_name {
            for g in &mut groups {
                g.how = "by-name";
                g.note = Some(match &g.note {
                    Some(n) => format!("{why} ({n})"),
                    None => why.to_string(),
                });
            }
        }
        // a part named with the whole it lies in (浦里新区 + 胡桥片区): the part is the place,
        // unless the entity is the whole itself (…项目浦里片区)
        let named_parts: Vec<String> = groups.iter().map(|g| g.text.clone()).collect();
        groups.retain(|g| {
            !named_parts
                .iter()
                .any(|part| is_whole_of(&doc.district, part, &g.text))
                || e.name.ends_with(g.text.as_str())
        });
        // an entity that is itself a known area (开州城区, 港桥产业园, …)
        if let Some(r) = gaz.alias_only(&doc.district, &e.name) {
            let located: BTreeSet<&String> = groups.iter().flat_map(|g| g.codes.iter()).collect();
            let in_its_whole = !groups.is_empty()
                && groups
                    .iter()
                    .all(|g| is_whole_of(&doc.district, &e.name, &g.text));
            if groups.is_empty() || in_its_whole || r.codes.iter().all(|c| located.contains(c)) {
                groups = vec![Group {
                    text: e.name.clone(),
                    codes: r.codes,
                    how: "area",
                    note: r.note.map(|n| format!("the entity's own name: {n}")),
                }];
                district_phr.clear();
            }
        }
        // drop a group whose units all contain a unit of another group (浩口乡 + 浩口村 -> 浩口村)
        let all_groups = groups.clone();
        groups.retain(|g| {
            !all_groups.iter().any(|h| {
                !std::ptr::eq(g, h)
                    && h.codes != g.codes
                    && h.codes.iter().all(|hc| {
                        g.codes
                            .iter()
                            .any(|gc| hc.len() > gc.len() && hc.starts_with(gc.as_str()))
                    })
            })
        });
        // duplicate groups
        let mut seen = BTreeSet::new();
        groups.retain(|g| {
            seen.insert((
                g.codes.clone(),
                if g.how == "scope" {
                    g.text.clone()
                } else {
                    String::new()
                },
            ))
        });

        let quote = e.quote.clone();
        let push_unplaced = |unplaced: &mut Vec<Unplaced>, status: &'static str, reason: String| {
            unplaced.push(Unplaced {
                status,
                plan: doc.id.clone(),
                name: e.name.clone(),
                catalog: e.catalog.into(),
                catalog_layer: e.catalog_layer.clone(),
                reason,
                quote: quote.clone(),
            });
        };
        let placement: &str;
        if groups.is_empty() {
            if e.located_in.is_empty() && e.catalog == "features" {
                push_unplaced(
                    unplaced,
                    "not_placed",
                    "the text does not say where it is (located_in is empty)".into(),
                );
                continue;
            }
            if !external.is_empty() && district_phr.is_empty() && unresolved.is_empty() {
                push_unplaced(unplaced, "not_placed", external.join("; "));
                continue;
            }
            if e.located_in
                .iter()
                .any(|l| l.contains("成渝高效特色农业经济带"))
            {
                push_unplaced(unplaced, "not_placed", "part of the 成渝高效特色农业经济带, a regional belt; the text does not say it lies in 永川区".into());
                continue;
            }
            placement = "district";
            let mut why: Vec<String> = district_phr.clone();
            why.extend(unresolved.iter().map(|u| u.1.clone()));
            why.extend(external.iter().cloned());
            if e.located_in.is_empty() {
                why.push(
                    "the project list gives no location; it is one of the district's projects"
                        .into(),
                );
            }
            if !unresolved.is_empty() || !external.is_empty() {
                push_unplaced(
                    unplaced,
                    "district_level",
                    format!("placed at district level: {}", why.join("; ")),
                );
            }
        } else {
            placement = if groups.iter().any(|g| g.codes.iter().any(|c| c.len() == 12)) {
                "village"
            } else {
                "town"
            };
            if !unresolved.is_empty() || !external.is_empty() {
                let mut why: Vec<String> = unresolved.iter().map(|u| u.1.clone()).collect();
                why.extend(external.iter().cloned());
                push_unplaced(
                    unplaced,
                    "partially_placed",
                    format!(
                        "placed in the resolved units; not resolved: {}",
                        why.join("; ")
                    ),
                );
            }
        }

        // ---- geometry
        let (geom, method, declared, passes, area_info, recipe) = if e.layer == "key_help_villages"
        {
            let codes: Vec<String> = groups.iter().flat_map(|g| g.codes.clone()).collect();
            let parts: Vec<&MultiPolygon> = codes.iter().map(|c| unit_ll(admin, c)).collect();
            let mp = crate::node::dissolve(&parts);
            let lvl = if codes.iter().any(|c| c.len() == 12) {
                "village"
            } else {
                "town"
            };
            let recipe = unit_recipe(admin, doc, e, &groups);
            (Geometry::MultiPolygon(mp),
             format!("{lvl}-polygon: the (approximate) polygon of the {lvl} itself, from data/{lvl}s.geojson"),
             codes, vec![], None, Some(recipe))
        } else if placement == "district" {
            (no_geometry(),
             "no-geometry: the text ties it only to the district and names no site, so it has no geometry (null); it is listed by /areas/{district}/features and exported as attributes, never drawn and never in coverage".to_string(),
             vec![d.code.clone()], vec![], None, None)
        } else {
            build_geometry(admin, doc, e, &groups)
        };
        let geom = round_geom(&geom);
        if !is_null(&geom) && !is_valid(&geom) {
            if let Geometry::MultiPolygon(m) = &geom {
                use geo::Validation;
                panic!(
                    "invalid geometry for {} / {}: {:?}",
                    doc.id,
                    e.name,
                    m.validation_errors()
                );
            }
            panic!("invalid geometry for {} / {}", doc.id, e.name);
        }

        // ---- properties
        let mut declared = declared;
        declared.sort();
        declared.dedup();
        let admin_code = common_code(&declared, &d.code);
        let names: Vec<String> = declared.iter().map(|c| unit_name(admin, c)).collect();
        let mut p = Map::new();
        let set = |p: &mut Map<String, Value>, k: &str, v: Value| {
            p.insert(k.to_string(), v);
        };
        set(&mut p, "name", json!(e.name));
        set(&mut p, "layer", json!(e.layer));
        set(&mut p, "plan", json!(doc.id));
        set(&mut p, "plan_title", json!(doc.title));
        set(&mut p, "district_code", json!(d.code));
        set(&mut p, "district", json!(d.name));
        set(&mut p, "admin_code", json!(admin_code));
        set(&mut p, "admin_codes", json!(declared));
        set(&mut p, "admin_names", json!(names));
        set(&mut p, "placement", json!(placement));
        set(&mut p, "located_in_text", json!(e.located_in));
        if !groups.is_empty() {
            set(
                &mut p,
                "resolution",
                Value::Array(
                    groups
                        .iter()
                        .map(|g| {
                            let mut o = json!({"text": g.text, "codes": g.codes, "how": g.how});
                            if let Some(n) = &g.note {
                                o["note"] = json!(n);
                            }
                            o
                        })
                        .collect(),
                ),
            );
        }
        if !unresolved.is_empty() || !external.is_empty() {
            let mut u: Vec<Value> = unresolved
                .iter()
                .map(|(t, r)| json!({"text": t, "reason": r}))
                .collect();
            u.extend(
                external
                    .iter()
                    .map(|r| json!({"text": r, "reason": "outside the five districts"})),
            );
            set(&mut p, "unresolved_places", Value::Array(u));
        }
        if !passes.is_empty() {
            set(&mut p, "passes_through", json!(passes));
        }
        set(
            &mut p,
            "source",
            json!({
            "document": format!("{} {}", doc.file, doc.title),
            "file": doc.file, "title": doc.title, "quote": e.quote}),
        );
        set(&mut p, "approximate", json!(true));
        let mut method = method;
        // places resolved by name only (a reservoir read as the township it is named after)
        let by_name_only: Vec<String> = groups
            .iter()
            .filter(|g| {
                g.how == "by-name" || g.note.as_deref().is_some_and(|n| n.contains("by name"))
            })
            .map(|g| g.text.clone())
            .collect();
        if !by_name_only.is_empty() {
            method.push_str(&format!(
                "; coarse: {} placed by name only (the text does not say which unit)",
                by_name_only.join("、")
            ));
        }
        let counted = by_name
            .and_then(|b| b.4)
            .map(|(n, t, w)| (n, t, w.to_string()))
            .or_else(|| {
                e.located_in
                    .iter()
                    .chain(std::iter::once(&e.quote))
                    .find_map(|t| named_of_total(t))
                    .map(|(named, total, what)| {
                        // the list may come split into phrases: "A", "B", "C", "等10个乡镇"
                        let phrases = e.located_in.iter().filter(|t| !t.starts_with('等')).count();
                        (if named == 0 { phrases } else { named }, total, what)
                    })
            })
            .or_else(|| e.located_in.iter().find_map(|t| counted_only(t)));
        if let Some((named, total, what)) = counted {
            if total > named {
                set(
                    &mut p,
                    "units_unknown",
                    json!({"named": named, "total": total, "unknown": total - named, "unit": what}),
                );
                method.push_str(&format!(
                    "; the text names {named} of {total} {what}: {} are unknown and not drawn",
                    total - named
                ));
            }
        }
        set(&mut p, "geometry_method", json!(method));
        if let Some(r) = &recipe {
            set(
                &mut p,
                "placement_recipe",
                serde_json::to_value(r).expect("a recipe is JSON"),
            );
        }
        set(
            &mut p,
            "catalog",
            json!(if e.catalog == "document" {
                format!(
                    "not in catalog/{}.json: read from the document ({})",
                    doc.id, doc.file
                )
            } else {
                format!("catalog/{}.json {}[{}]", doc.id, e.catalog, e.index)
            }),
        );
        set(&mut p, "catalog_layer", json!(e.catalog_layer));
        if let Some((mu, basis)) = &area_info {
            set(&mut p, "geometry_area_mu", json!(round_n(*mu, 1)));
            set(&mut p, "geometry_area_basis", json!(basis));
        }
        normalise(&mut p, &doc.id, e, &also);
        if e.layer == "key_help_villages" {
            key_help_props(&mut p, e, &declared);
        }
        if e.layer == "resettlement_sites" {
            let st = if doc.id == "004" {
                "易地扶贫搬迁集中安置点"
            } else {
                e.attrs
                    .get("type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("安置/搬迁住房（非易地扶贫搬迁）")
            };
            set(&mut p, "site_type", json!(st));
            if doc.id == "004" {
                set(&mut p, "group", resettlement_group());
                set(&mut p, "placeholder", json!(false));
            }
        }
        let fid = match p.get("project_no").and_then(|v| v.as_str()) {
            Some(no) => format!("{}-p-{}", doc.id, no),
            None => format!(
                "{}-{}{:03}",
                doc.id,
                match e.catalog {
                    "features" => "f",
                    "document" => "d",
                    _ => "p",
                },
                e.index
            ),
        };
        assert!(seen_ids.insert(fid.clone()), "duplicate id {fid}");
        out.push(Feature {
            id: fid,
            props: Value::Object(p),
            geom,
        });
    }

    // the 3 unnamed centralised resettlement sites of 武隆
    if doc.id == "004" {
        let q = "做好 5 个集中安置点和分散安置群众各项后续帮扶工作";
        assert!(doc.text.contains(q));
        for k in 1..=3 {
            let fid = format!("004-rs-unnamed-{k}");
            out.push(Feature {
                id: fid,
                props: json!({
                    "name": format!("未点名集中安置点（{k}/3）"),
                    "layer": "resettlement_sites", "plan": doc.id, "plan_title": doc.title,
                    "district_code": d.code, "district": d.name, "admin_code": d.code,
                    "admin_codes": [d.code], "admin_names": [d.name], "placement": "district",
                    "located_in_text": ["武隆区"],
                    "placeholder": true,
                    "placeholder_note": "placeholder: the plan counts 5 集中安置点 but names only 火炉镇安置点 and 后坪乡安置点; this one is not named and its town is not known",
                    "site_type": "易地扶贫搬迁集中安置点",
                    "group": resettlement_group(),
                    "source": {"document": format!("{} {}", doc.file, doc.title), "file": doc.file, "title": doc.title, "quote": q},
                    "approximate": true,
                    "geometry_method": "no-geometry: placeholder for an unnamed site; the text gives no town, so it has no geometry (null)",
                    "catalog": "catalog/004.json features (易地扶贫搬迁集中安置点（5个，全区）)",
                    "catalog_layer": "resettlement_site",
                }),
                geom: no_geometry(),
            });
        }
    }
    out.sort_by(|a, b| {
        let la = a.props["layer"].as_str().unwrap();
        let lb = b.props["layer"].as_str().unwrap();
        la.cmp(lb).then(a.id.cmp(&b.id))
    });
    out
}

fn unit_ll<'a>(admin: &'a Admin, code: &str) -> &'a MultiPolygon {
    match code.len() {
        6 => &admin.district(code).geom_ll,
        9 => &admin.town(code).geom_ll,
        _ => &admin.village(code).geom_ll,
    }
}

fn unit_name(admin: &Admin, code: &str) -> String {
    match code.len() {
        6 => admin.district(code).name.clone(),
        9 => admin.town(code).name.clone(),
        _ => {
            let v = admin.village(code);
            format!("{}{}", admin.town(&v.town_code).name, v.name)
        }
    }
}

/// The smallest unit containing all the declared units.
fn common_code(codes: &[String], district: &str) -> String {
    if codes.len() == 1 {
        return codes[0].clone();
    }
    let towns: BTreeSet<&str> = codes.iter().map(|c| &c[..c.len().min(9)]).collect();
    if towns.len() == 1 && codes.iter().all(|c| c.len() >= 9) {
        return towns.into_iter().next().unwrap().to_string();
    }
    district.to_string()
}

fn key_help_props(p: &mut Map<String, Value>, e: &Entity, declared: &[String]) {
    let a = &e.attrs;
    let lvl = if declared.iter().any(|c| c.len() == 12) {
        "village"
    } else {
        "town"
    };
    p.insert("unit_level".into(), json!(lvl));
    for (from, to) in [
        ("tier", "tier"),
        ("help_group", "help_group"),
        ("contact_district_leaders", "contact_district_leaders"),
        ("lead_unit", "lead_unit"),
        ("member_units", "member_units"),
    ] {
        if let Some(v) = a.get(from) {
            p.insert(to.into(), v.clone());
        }
    }
    p.insert("help_group_zh".into(), json!("帮扶集团"));
    p.insert("contact_district_leaders_zh".into(), json!("联系区领导"));
    p.insert("lead_unit_zh".into(), json!("牵头单位"));
}

/// Normalised attributes with units in the key.
fn normalise(
    p: &mut Map<String, Value>,
    plan: &str,
    e: &Entity,
    also: &BTreeMap<String, Vec<Value>>,
) {
    let a = &e.attrs;
    p.insert("attributes".into(), a.clone());
    let metrics: Vec<Value> = a
        .get("metrics")
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    if let Some((mu, basis)) = entity_area(plan, e) {
        p.insert("area_mu".into(), num(round_n(mu, 2)));
        p.insert("area_mu_basis".into(), json!(basis));
    } else if let Some((_, _, why)) = area_fix(plan, e) {
        p.insert("area_mu_note".into(), json!(why));
    }
    // people / households
    for k in [
        "households",
        "centralised_households",
        "relocated_households_total",
    ] {
        if let Some(v) = a.get(k) {
            p.insert("households".into(), v.clone());
            break;
        }
    }
    for k in ["people", "population", "centralised_population"] {
        if let Some(v) = a.get(k) {
            p.insert("people".into(), v.clone());
            break;
        }
    }
    // investment
    let mut inv: Option<f64> = a.get("investment_yuan").and_then(|v| v.as_f64());
    for m in &metrics {
        let what = m["what"].as_str().unwrap_or("");
        if inv.is_none()
            && (what.contains("总投资") || what == "投资")
            && m["unit"].as_str() == Some("元")
        {
            inv = m["value"].as_f64();
        }
    }
    if let Some(y) = inv {
        p.insert("investment_yuan".into(), num(y));
        p.insert("investment_wan_yuan".into(), num(round_n(y / 1e4, 2)));
    }
    // target year
    let mut ty: Option<i64> = a.get("target_year").and_then(|v| v.as_i64());
    if ty.is_none() {
        ty = metrics
            .iter()
            .filter_map(|m| m["target_year"].as_i64())
            .max();
    }
    if ty.is_none() {
        if let Some(per) = a.get("period") {
            ty = per.get("end").and_then(|v| v.as_i64()).or_else(|| {
                per.as_str()
                    .and_then(|s| s.rsplit(['-', '—']).next())
                    .and_then(|s| s.trim().parse().ok())
            });
        }
    }
    if let Some(y) = ty {
        p.insert("target_year".into(), json!(y));
    }
    // responsible units
    let mut resp: Vec<String> = flat_str_list(a.get("responsible").unwrap_or(&Value::Null));
    if resp.is_empty() {
        resp = flat_str_list(a.get("lead").unwrap_or(&Value::Null));
    }
    if !resp.is_empty() {
        p.insert("responsible_units".into(), json!(resp));
    }
    let lead = flat_str_list(a.get("lead").unwrap_or(&Value::Null));
    if !lead.is_empty() {
        p.insert("lead_units".into(), json!(lead));
    }
    if e.catalog == "projects" {
        p.insert(
            "category".into(),
            a.get("category").cloned().unwrap_or(Value::Null),
        );
        let src = a.get("source").and_then(|v| v.as_str()).unwrap_or("");
        p.insert("project_source".into(), json!(src));
        if let Some(id) = a.get("id").and_then(|v| v.as_str()) {
            p.insert("project_no".into(), json!(id));
            p.insert("annex".into(), json!("附件1"));
            if let Some(v) = also.get(id) {
                p.insert("other_references".into(), json!(v));
            }
        } else if let Some(n) = src.strip_prefix("附件4 重大项目清单 #") {
            p.insert("project_no".into(), json!(n));
            p.insert("annex".into(), json!("附件4"));
        }
        if let Some(o) = a.get("owner") {
            p.insert("owner".into(), o.clone());
        }
    }
    let _ = &e.raw;
}

// ------------------------------------------------------------------ geometry

/// The seeded admin units as [`place::Units`]: towns by their seat, villages by their site.
struct AdminUnits<'a>(&'a Admin);

impl place::Units for AdminUnits<'_> {
    fn unit(&self, code: &str, proj: &Proj) -> Option<place::Unit> {
        let anchor = match code.len() {
            12 => self
                .0
                .village_idx
                .get(code)
                .map(|&i| self.0.villages[i].site)?,
            9 => self.0.town_idx.get(code).map(|&i| self.0.towns[i].seat)?,
            _ => return None,
        };
        Some(place::Unit {
            geom: proj.fwd_mp(unit_ll(self.0, code)),
            anchor,
        })
    }
    fn rural(&self, code: &str, proj: &Proj) -> Option<place::Unit> {
        let (mp, site) = rural_part(self.0, code)?;
        Some(place::Unit {
            geom: proj.fwd_mp(&mp),
            anchor: site,
        })
    }
    fn dissolve(&self, codes: &[String]) -> Option<MultiPolygon> {
        let parts: Vec<&MultiPolygon> = codes.iter().map(|c| unit_ll(self.0, c)).collect();
        Some(crate::node::dissolve(&parts))
    }
}

/// Is a blob of this layer and name farmland (it lies on a town's villages, 村, not on its
/// urban communities, 社区)?
fn is_rural(layer: &str, name: &str) -> bool {
    matches!(
        layer,
        "agricultural_bases" | "vegetable_bases" | "land_consolidation"
    ) || name.contains("林")
        || name.contains("蔬菜")
        || name.contains("农业")
}

/// Built geometry: (lon/lat geometry, method, declared codes, passes_through, area info, recipe).
type Built = (
    Geometry,
    String,
    Vec<String>,
    Vec<String>,
    Option<(f64, String)>,
    Option<place::Recipe>,
);

/// The recipe that draws the entity as its units' own polygon (the other rules start from it).
fn unit_recipe(admin: &Admin, doc: &Doc, e: &Entity, groups: &[Group]) -> place::Recipe {
    let proj = admin.district(&doc.district).proj;
    place::Recipe {
        rule: place::Rule::Unit,
        seed: format!("{}:{}:{}", doc.id, e.catalog, e.name),
        proj: [proj.lon0, proj.lat0],
        groups: groups
            .iter()
            .map(|g| place::Group {
                text: g.text.clone(),
                codes: g.codes.clone(),
            })
            .collect(),
        area_m2: None,
        length_m: None,
        rural: false,
        spread: place::Spread::Equal,
        one_site: false,
    }
}

/// Build the geometry of an entity placed in town/village units.
fn build_geometry(admin: &Admin, doc: &Doc, e: &Entity, groups: &[Group]) -> Built {
    let kind = kind_of(&e.name, &e.attrs);
    let mut declared: Vec<String> = groups.iter().flat_map(|g| g.codes.clone()).collect();
    declared.sort();
    declared.dedup();
    let mut recipe = unit_recipe(admin, doc, e, groups);
    let units = AdminUnits(admin);
    let draw = |r: &place::Recipe| {
        place::place(r, &units).unwrap_or_else(|err| panic!("{}: {err}", e.name))
    };
    match kind {
        Kind::Point => {
            recipe.rule = place::Rule::Point;
            let placed = draw(&recipe);
            let method = if groups.iter().all(|g| g.codes.iter().all(|c| c.len() == 9)) {
                "point-near-town-seat: a point within 1.5 km of the seat of the town the text names (seeded by the name); the site itself is not given"
            } else {
                "point-in-unit: a point near the generated site of the village (or the seat of the town) the text names, seeded by the name; the site itself is not given"
            };
            (
                placed.geometry,
                method.to_string(),
                declared,
                vec![],
                None,
                Some(recipe),
            )
        }
        Kind::Line => {
            let len = default_length_m(&e.name, &e.attrs);
            let all_units: Vec<String> = groups.iter().flat_map(|g| g.codes.clone()).collect();
            if groups.len() >= 2 && groups.iter().all(|g| g.codes.len() == 1) {
                // a road between named places: seat to seat, through whatever lies between
                recipe.rule = place::Rule::LineBetween;
                let placed = draw(&recipe);
                let Geometry::LineString(ls) = placed.geometry else {
                    unreachable!("a line between places is a LineString")
                };
                let crossed = towns_crossed(admin, &doc.district, &ls);
                let passes: Vec<String> = crossed
                    .iter()
                    .filter(|c| {
                        !all_units
                            .iter()
                            .any(|u| u.starts_with(c.as_str()) || c.starts_with(u.as_str()))
                    })
                    .cloned()
                    .collect();
                let mut decl = declared.clone();
                decl.extend(passes.iter().cloned());
                (Geometry::LineString(ls),
                 "line-between-named-places: straight line between the seats (or village sites) of the places the text names; the route is not given; admin_codes include the towns it crosses".into(),
                 decl, passes, None, Some(recipe))
            } else {
                recipe.rule = place::Rule::LineInUnit;
                recipe.length_m = Some(len);
                let placed = draw(&recipe);
                (placed.geometry, format!("line-in-unit: a gently bent line of about {:.1} km ({}) through the named unit(s), clipped to them; the alignment is not given",
                            len / 1000.0, if e.attrs.get("length_km").is_some() || e.attrs.get("length_m").is_some() { "length from the text" } else { "default length for the kind" }),
                 declared, vec![], None, Some(recipe))
            }
        }
        Kind::Polygon => {
            let stated = entity_area(&doc.id, e);
            let fix = area_fix(&doc.id, e);
            let size = SITE_SIZES
                .iter()
                .find(|(dc, n, _, _)| *dc == doc.district && base_name(&e.name) == *n);
            let whole = e
                .attrs
                .get("coverage")
                .and_then(|v| v.as_str())
                .is_some_and(|c| c.contains("全域"))
                || e.attrs.get("scope").and_then(|v| v.as_str()) == Some("镇域")
                || e.name.contains("全域")
                || e.name.ends_with("名镇");
            let drawn = fix.and_then(|f| f.1.map(|mu| (mu, f.2.to_string())));
            if (e.catalog == "projects" && stated.is_none() && drawn.is_none()) || whole {
                // a programme or a town-wide designation: the unit(s) themselves
                let placed = draw(&recipe);
                let what = if whole {
                    "the text says it covers the whole unit"
                } else {
                    "a project or programme the text ties to the unit(s) without a site or an area"
                };
                return (
                    placed.geometry,
                    format!("unit-polygon: the polygon of the named unit(s); {what}"),
                    declared,
                    vec![],
                    None,
                    Some(recipe),
                );
            }
            let (mu, basis) = match (stated, drawn, size) {
                (Some((mu, w)), _, _) => (mu, format!("area from the text ({w})")),
                (None, Some((mu, w)), _) => (mu, format!("size drawn: {w}")),
                (None, None, Some((_, _, mu, src))) => (*mu, format!("size from reference: {src}")),
                (None, None, None) => (
                    default_area_mu(e.layer, &e.name),
                    "default size for the kind; the text gives no area".to_string(),
                ),
            };
            recipe.rule = place::Rule::Blob;
            recipe.area_m2 = Some(mu * 10000.0 / 15.0);
            recipe.rural = is_rural(e.layer, &e.name);
            let units_named = groups.iter().map(|g| g.codes.len()).sum::<usize>();
            // one named site (a lake; a 小区 or park in an area read as several units) is one
            // polygon; a thing named in several places is spread over all of them
            // (a river read as the towns it flows through is not one site: a belt along it is
            // spread over them)
            let river = |t: &str| ["江", "河", "溪", "干流"].iter().any(|w| t.ends_with(w));
            recipe.one_site = units_named > 1
                && (is_water_body(&e.name)
                    || (groups.len() == 1 && !e.name.contains("全域") && !river(&groups[0].text)));
            if units_named > 1 && !recipe.one_site {
                recipe.spread = place::Spread::ByArea;
            }
            let placed = draw(&recipe);
            let area = placed.area_m2.unwrap_or(0.0);
            let what = if placed.on_villages {
                "rural area"
            } else {
                "area"
            };
            let mut method = if recipe.one_site {
                let reached = placed.reached.clone().unwrap_or_default();
                let names: Vec<String> = reached.iter().map(|c| unit_name(admin, c)).collect();
                format!(
                    "polygon-in-unit: one polygon of the stated or default size for the one named site, centred on the border its first two units share (near the middle of their seats when they do not meet) and clipped to the {} units the text's place names cover){}{}; {}; coarse: where in them the site lies is not given, so it is declared in the units it reaches ({})",
                    units_named,
                    if placed.on_villages { ", on the towns' rural villages (村) only (5 m in from their urban communities, 社区), since the text names no 社区" } else { "" },
                    if placed.capped { " (capped at 90% of units too small for it)" } else { "" },
                    basis,
                    names.join("、")
                )
            } else {
                format!(
                    "polygon-in-unit: a blob of the stated or default size around a seeded point in each named unit, clipped to the unit{}{}; {}",
                    if placed.on_villages { ", on a town's rural villages (村) only (5 m in from its urban communities, 社区), since the text names no 社区" } else { "" },
                    if placed.capped { " (capped at 90% of a unit too small for its share)" } else { "" },
                    basis
                )
            };
            if recipe.spread == place::Spread::ByArea {
                method.push_str(&format!(
                    "; coarse: spread over the {units_named} named units in proportion to their {what} (the text does not say how it divides among them)"
                ));
            }
            let declared = match &placed.reached {
                Some(r) if !r.is_empty() => r.clone(),
                _ => declared,
            };
            (
                placed.geometry,
                method,
                declared,
                vec![],
                Some((area * 15.0 / 10000.0, basis)),
                Some(recipe),
            )
        }
    }
}

/// "20 个乡镇（街道）68 个行政村" → (0, 20, "乡镇"): a count of units with none named.
fn counted_only(text: &str) -> Option<(usize, usize, String)> {
    if text.contains('等') {
        return None;
    }
    let (total, what) = unit_count(text.trim(), "乡镇街道村社区")?;
    Some((0, total, what))
}

/// "10个乡镇…" → (10, "乡镇"): a count and the unit word after it, made of `words`' characters.
fn unit_count(t: &str, words: &str) -> Option<(usize, String)> {
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let total: usize = digits.parse().ok()?;
    let rest = t[digits.len()..].trim_start().strip_prefix('个')?;
    let what: String = rest.chars().take_while(|c| words.contains(*c)).collect();
    (!what.is_empty()).then_some((total, what))
}

/// "A、B、C等10个乡镇" → (3, 10, "乡镇"): how many places a list names of how many it counts.
fn named_of_total(text: &str) -> Option<(usize, usize, String)> {
    let i = text.find('等')?;
    let (total, what) = unit_count(text[i + '等'.len_utf8()..].trim_start(), "乡镇街道村社区片")?;
    // the list before 等: from the last sentence break to 等, split by 、
    let head = &text[..i];
    let start = head
        .rfind(['，', '。', '；', '\t', '：'])
        .map(|k| k + head[k..].chars().next().unwrap().len_utf8())
        .unwrap_or(0);
    let named = head[start..]
        .split('、')
        .filter(|s| !s.trim().is_empty())
        .count();
    Some((named, total, what))
}

/// A town's rural villages (村) as one polygon (lon/lat) and the site of the village nearest the
/// seat, so a farm blob lies on farmland, not on the urban communities (社区) round the seat.
/// `None` for a village or community code and for towns without villages.
fn rural_part(admin: &Admin, code: &str) -> Option<(MultiPolygon, Coord)> {
    if code.len() != 9 {
        return None;
    }
    let seat = admin.town(code).seat;
    let vs: Vec<&crate::admin::Village> = admin
        .villages_of(code)
        .filter(|v| v.kind == "village")
        .collect();
    let nearest = vs.iter().min_by(|a, b| {
        let da = (a.site.x - seat.x).hypot(a.site.y - seat.y);
        let db = (b.site.x - seat.x).hypot(b.site.y - seat.y);
        da.partial_cmp(&db).unwrap().then(a.code.cmp(&b.code))
    })?;
    let parts: Vec<&MultiPolygon> = vs.iter().map(|v| &v.geom_ll).collect();
    Some((crate::node::dissolve(&parts), nearest.site))
}

fn towns_crossed(admin: &Admin, district: &str, ls: &LineString) -> Vec<String> {
    let mls = MultiLineString(vec![ls.clone()]);
    admin
        .towns_of(district)
        .filter(|t| !t.geom_ll.clip(&mls, false).0.iter().all(|l| l.0.len() < 2))
        .map(|t| t.code.clone())
        .collect()
}

const SEEDS_README: &str = r#"# seeds/ — planning features of the five plans

Generated; do not edit by hand. Rebuild from the repository root with

```
cargo run -p yizhangtu-datagen --release -- --reference ../shared/reference --documents ../shared/seeds --out .
```

One GeoJSON file per plan (`<nnn>_<slug>.geojson`); every feature has a `layer` property naming its
layer, and `layers.json` lists, for each layer, the plan files that hold features of it. The source
of every feature is the structured reading of the plan in `shared/reference/catalog/<nnn>.json`;
the plan texts themselves (`shared/seeds/*.txt`) are not copied here, but every `source.quote` is
checked, word for word, against them (by the generator and by `tests/dataset.rs`).

## Properties

- `name` (as written), `layer`, `plan`, `plan_title`, `district_code`, `district`
- `admin_code`: the smallest unit containing the feature as the text places it; `admin_codes`: every
  unit the text names (NBS codes; a line between two named towns also lists the towns it crosses,
  see `passes_through`); `admin_names`; `placement`: `village`, `town` or `district` — what the text
  pins it to; `located_in_text`, `resolution` (how each place name was resolved: exact, stem,
  alias, area, by-name), `unresolved_places`
- `source`: `{document, file, title, quote}` — the verbatim sentence
- `approximate: true` and `geometry_method` on every feature: no plan gives coordinates
- units in the keys: `area_mu` (亩), `investment_yuan` / `investment_wan_yuan`, `households`,
  `people`, `target_year`, `responsible_units`, `lead_units`; projects add `project_no` and `annex`
  (武隆 附件1 numbers such as `3-10`, 开州 附件4 numbers `1`–`35`), `category`, `project_source`,
  `other_references` (catalog entries that repeat the project, kept once); `attributes` holds the
  catalog's own attributes and metrics verbatim
- key_help_villages: `unit_level` (`village` or `town`), `tier`, `help_group` (帮扶集团),
  `contact_district_leaders` (联系区领导), `lead_unit` (牵头单位), `member_units`
- resettlement_sites: `site_type`; the 5 武隆 集中安置点 carry the group's figures as one object,
  `group: {"name", "sites": 5, "households": 74, "people": 270}` (the plan gives no per-site
  figures; an object, so that summing the sites never adds the group total five times); the 3 it
  does not name are `placeholder: true` features without geometry

## How the geometry is made (`geometry_method`)

- `no-geometry`: the text ties it only to the district (or to places that cannot be resolved), so
  the feature has `geometry: null` and its district's `admin_code` (it is never drawn as the
  district and never counted in coverage).
- `village-polygon` / `town-polygon`: key help villages and towns are the unit's own polygon.
- `unit-polygon`: a project or programme tied to a town or village without a site or an area
  (or a designation covering the whole unit, e.g. 全域土地综合整治): the unit's own polygon.
- `point-near-town-seat` / `point-in-unit`: facilities, sites, schools, plants: a point near the
  town seat or the village's generated site, seeded by a hash of the name.
- `line-between-named-places`: a road from A to B: straight line between their seats.
- `line-in-unit`: roads, rivers, streets inside one unit: a bent line of the stated length
  (or a default), clipped to the unit.
- `polygon-in-unit`: bases, parks, areas: a blob of the stated area (亩, 公顷) — or a default size
  for the kind — around a seeded point in each named unit, clipped to it. `geometry_area_mu` is the
  area drawn, `area_mu` the area stated (`area_mu_note` says why a figure of the sentence is not
  the thing's own, e.g. a district total). Farm, vegetable, forestry and land-consolidation blobs in
  a town lie on its rural villages (村), not its urban communities (社区), unless the text names a
  社区.
  - a thing named in several places (towns or villages, one per phrase of the text) is spread over
    all of them in proportion to their rural area (村 only for farm blobs; the unit's area
    otherwise): `placement_recipe.spread: "by-area"`;
  - one named site — a lake or reservoir, or a 小区, park or area named by one phrase that is read
    as several units (开州城区 as its five streets, 港桥组团 as two towns) — is one polygon, centred
    on the border its first two units share (so 芙蓉湖, named with 江口镇 and 石桥乡, lies across
    their border) and clipped to them; it declares (`admin_codes`) only the units it reaches by the
    membership rule: `placement_recipe.one_site: true`;
  - sizes: the text's figure; else a known size (汉丰湖: about 15 km²); else the default for the
    kind (`geometry_area_basis` says which).

### Coarse placements

Every placement coarser than the text is said so in `geometry_method` (a clause starting
`coarse:`, or `unit-polygon`, or `… are unknown and not drawn`), and `yizhangtu check` lists them
all under "coarse placements", with the features without geometry:

- `unit-polygon`: a programme drawn as its whole unit (a unit-wide item: in the town, not in
  each of its villages);
- `coarse: spread over the N named units in proportion to their (rural) area`;
- `coarse: where in them the site lies is not given, so it is declared in the units it reaches`;
- `coarse: X placed by name only`: a place read as the unit it is named after (石桥湖水库 in 石桥乡,
  代兴猪场 in 代兴村, 官桥·云村 in 关桥村), the text not saying which unit;
- `units_unknown: {named, total, unknown, unit}`: the text counts more units than it names
  (“仙女山街道、双河镇、接龙乡等10个乡镇”: 7 unknown; “20 个乡镇（街道）68 个行政村”: all 20).

### Placement recipes and rebase

Every approximate feature drawn inside named units carries `placement_recipe`: the rule (`unit`,
`point`, `line-between`, `line-in-unit`, `blob`), the units by NBS code grouped as the text names
them, the seed of its deterministic choices (`plan:catalog:name`), the local projection, the size
(`area_m2` or `length_m`) and the options above (`rural`, `spread`, `one_site`). The drawing is in
`src/place/` and is shared: `tools/datagen` draws the bundled features with it, and
`yizhangtu import towns.shp --layer towns --replace --rebase` (or `--layer villages`) redraws, in
one transaction, every approximate feature whose units changed against the official boundaries,
re-fits the approximate villages of a changed town, moves a town seat or village point that its
new unit leaves outside to a point inside (noted in `seat_moved` / `point_moved`), and reports
what moved. Features whose geometry came from a source are never redrawn.

Place names are resolved by the hierarchy (a village inside its town, a town inside the plan's
district) and the alias table `aliases.json` (庙坪乡/庙垭乡, 双河乡/双河镇, 香障树/香树村, the
ethnic townships' short names, planning areas such as 开州城区 or 港桥组团 read as towns).
`unplaced.json` lists what could not be placed, or not as finely as the text names it, with the
reason; `yizhangtu check` prints it.

## Layers and counts

| plan | layer | features |
|---|---|---|
{COUNTS}"#;
