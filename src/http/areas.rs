//! Planners' endpoints: an admin unit with its parents and children, what lies in it, and how much
//! of it each layer covers (m², ha, 亩), also for a drawn polygon (`POST /analysis/coverage`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use geo::{BoundingRect, Geometry, Intersects, MultiPolygon};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::sync::Arc;

use super::error::{ApiError, ApiResult};
use super::html;
use super::params::{
    base_url, etag, media_type_essence, not_modified, respond, unsupported_media_type, Format,
    Params,
};
use super::query::{check_vertices, lookup_error};
use super::view::View;
use super::AppState;
use crate::engine::coverage::{coverage_of_unit, intersect_areas, unit_of, LayerCoverage};
use crate::engine::{AdminLevel, AdminUnit, Budget, Engine, Stop};
use crate::formats::geojson::{decode_geometry, write_feature, PropertySelection};
use crate::geom::{geodesic_area_m2, validate_topology, PreparedArea, M2_PER_HA, M2_PER_MU};

/// Layers that describe the admin hierarchy itself; coverage defaults to every other layer.
pub const ADMIN_LAYERS: &[&str] = &[
    "districts",
    "towns",
    "town_seats",
    "villages",
    "village_points",
];

fn not_admin(layer: &str) -> bool {
    !ADMIN_LAYERS.contains(&layer)
}

/// Most features `/areas/{code}/features` returns in one answer.
const MAX_AREA_FEATURES: usize = 10_000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/areas/{code}", get(area))
        .route("/areas/{code}/features", get(area_features))
        .route("/areas/{code}/coverage", get(area_coverage))
        .route("/analysis/coverage", post(analysis_coverage))
}

fn unit_json(u: &AdminUnit) -> Value {
    json!({"code": u.code, "name": u.name, "level": u.level})
}

fn area_figures(m2: f64) -> Value {
    json!({"m2": round(m2, 2), "ha": round(m2 / M2_PER_HA, 4), "mu": round(m2 / M2_PER_MU, 2)})
}

fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn units_doc() -> Value {
    json!({
        "m2": "square metres, geodesic on the WGS84 ellipsoid (as PostGIS ST_Area(geography))",
        "ha": "hectares (10,000 m²)",
        "mu": "亩 (10,000/15 m² ≈ 666.67 m²)",
        "share": "fraction 0–1 of the area",
        "m": "metres, geodesic",
    })
}

fn resolve(engine: &Engine, text: &str) -> ApiResult<AdminUnit> {
    engine
        .resolve_admin(text)
        .map_err(|e| lookup_error("code", e))
}

fn prepared(engine: &Engine, u: &AdminUnit) -> ApiResult<Arc<PreparedArea>> {
    engine.admin_area(u).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "NoGeometry",
            format!("{} ({}) has no polygon", u.name, u.code),
        )
    })
}

/// Most distinct layers one request may name.
pub const MAX_LAYERS: usize = 64;

/// The `layers` parameter, each checked to exist, repeated names collapsed (first one kept, in
/// order); `default` picks the layers when it is absent.
pub(super) fn parse_layers(
    engine: &Engine,
    params: &Params,
    default: fn(&str) -> bool,
) -> ApiResult<Vec<String>> {
    let all = engine.layer_ids();
    let Some(list) = params.get("layers")? else {
        return Ok(all.into_iter().filter(|l| default(l)).collect());
    };
    let mut out: Vec<String> = Vec::new();
    for l in list.split(',').map(str::trim).filter(|l| !l.is_empty()) {
        if !all.iter().any(|a| a == l) {
            return Err(ApiError::parameter(
                "layers",
                list,
                format!("no layer '{l}'; see /collections"),
            )
            .with_details(
                json!({"parameter": "layers", "value": list, "layer": l, "layers": all}),
            ));
        }
        if !out.iter().any(|o| o == l) {
            if out.len() == MAX_LAYERS {
                return Err(too_many_layers("layers", list));
            }
            out.push(l.to_string());
        }
    }
    if out.is_empty() {
        return Err(ApiError::parameter(
            "layers",
            list,
            "name at least one layer",
        ));
    }
    Ok(out)
}

/// 400 for a list of more than [`MAX_LAYERS`] distinct layers.
pub(super) fn too_many_layers(parameter: &str, value: &str) -> ApiError {
    let shown: String = value.chars().take(200).collect();
    ApiError::parameter(
        parameter,
        &shown,
        format!("name at most {MAX_LAYERS} distinct layers"),
    )
    .with_details(json!({"parameter": parameter, "limit": "layers", "max": MAX_LAYERS}))
}

fn parse_by(params: &Params) -> ApiResult<Option<AdminLevel>> {
    Ok(match params.get("by")? {
        None => None,
        Some("town") => Some(AdminLevel::Town),
        Some("village") => Some(AdminLevel::Village),
        Some(other) => return Err(ApiError::parameter("by", other, "use town or village")),
    })
}

async fn area(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let engine = &state.app.engine;
    let u = resolve(engine, &code)?;
    let base = base_url(&headers);
    let m2 = u
        .feature
        .geometry
        .as_ref()
        .map(geodesic_area_m2)
        .unwrap_or(0.0);
    let parents: Vec<Value> = engine
        .admin_parents(&u.code)
        .iter()
        .map(unit_json)
        .collect();
    let children: Vec<Value> = engine
        .admin_children(&u.code)
        .iter()
        .map(unit_json)
        .collect();
    let layer = u.level.layer();
    let id = &u.feature.id;
    let doc = json!({
        "code": u.code, "name": u.name, "level": u.level,
        "parents": parents, "children": children,
        "area": area_figures(m2),
        "bbox": u.feature.geometry.as_ref().and_then(|g| g.bounding_rect()).map(|r| vec![r.min().x, r.min().y, r.max().x, r.max().y]),
        "approximate": u.feature.properties.get("approximate").cloned().unwrap_or(Value::Bool(false)),
        "geometry_method": u.feature.properties.get("geometry_method").cloned().unwrap_or(Value::Null),
        "units": units_doc(),
        "links": [
            {"href": format!("{base}/areas/{}", u.code), "rel": "self", "type": "application/json"},
            {"href": format!("{base}/collections/{layer}/items/{id}"), "rel": "describedby", "type": "application/geo+json", "title": "the unit as a feature"},
            {"href": format!("{base}/areas/{}/features", u.code), "rel": "related", "type": "application/geo+json", "title": "features in the unit"},
            {"href": format!("{base}/areas/{}/coverage", u.code), "rel": "related", "type": "application/json", "title": "coverage by layer"},
            {"href": format!("{base}/areas/{}/coverage?by=village", u.code), "rel": "related", "type": "application/json", "title": "coverage village by village"},
        ],
    });
    let tag = etag(&[
        "area",
        &u.code,
        &u.feature.version.to_string(),
        &base,
        format.code(),
        &children.len().to_string(),
    ]);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    if format == Format::Html {
        let mut body = format!(
            "<p>{} · <code>{}</code></p>",
            html::escape(&format!("{:?}", u.level).to_lowercase()),
            html::escape(&u.code)
        );
        body.push_str(&html::links(&doc["links"]));
        let _ = write!(
            body,
            "<h2>上级 Parents</h2>{}",
            html::value(&doc["parents"])
        );
        let _ = write!(body, "<h2>面积 Area</h2>{}", html::value(&doc["area"]));
        body.push_str("<h2>下级 Children</h2><table><tr><th>code</th><th>name</th></tr>");
        for c in engine.admin_children(&u.code) {
            let _ = write!(
                body,
                "<tr><td><a href=\"/areas/{0}?f=html\">{0}</a></td><td>{1}</td></tr>",
                html::escape(&c.code),
                html::escape(&c.name)
            );
        }
        body.push_str("</table>");
        return Ok(respond(
            "text/html; charset=utf-8",
            Some(&tag),
            html::page(&u.name, &body),
        ));
    }
    Ok(respond("application/json", Some(&tag), doc.to_string()))
}

async fn area_features(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f", "layers", "relation", "asof", "plan"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let engine = Arc::clone(&state.app.engine);
    let u = resolve(&engine, &code)?;
    let area = prepared(&engine, &u)?;
    let layers = parse_layers(&engine, &params, not_admin)?;
    let view = View::parse(&params)?;
    let within = match params.get("relation")? {
        None | Some("intersects") => false,
        Some("within") => true,
        Some(other) => {
            return Err(ApiError::parameter(
                "relation",
                other,
                "use intersects or within",
            ))
        }
    };
    let base = base_url(&headers);
    let revs: String = layers
        .iter()
        .filter_map(|l| engine.layer(l))
        .map(|l| l.read().revision.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let tag = etag(&[
        "area-features",
        &u.code,
        &layers.join(","),
        &revs,
        &within.to_string(),
        format.code(),
        &base,
        &view.tag(),
    ]);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    // The layers as asked (as they stood at `asof`, one plan's features); the unit is today's.
    let engine = view.engine(&state, &layers).await?;
    let unit = u.clone();
    let (body, counts, total, truncated) = state
        .heavy
        .run(move |budget| {
            let mut out = String::new();
            let mut counts = serde_json::Map::new();
            let mut total = 0usize;
            let mut truncated = false;
            for layer_id in &layers {
                let Some(layer) = engine.layer(layer_id) else {
                    continue;
                };
                let idx = layer.read();
                let Some(window) = area.bbox() else { continue };
                let mut slots: Vec<(u32, bool)> = idx.candidates(window).collect();
                slots.sort_unstable();
                let mut n = 0usize;
                let mut found = Vec::new();
                for (i, (slot, _)) in slots.into_iter().enumerate() {
                    budget.check_every(i)?;
                    let Some(f) = idx.slot(slot) else { continue };
                    let Some(g) = f.geometry.as_ref() else {
                        continue;
                    };
                    // The unit itself is not "in" the unit; features tied only to a whole district
                    // are not in any town or village of it.
                    if layer_id == unit.level.layer() && f.id == unit.feature.id {
                        continue;
                    }
                    if (unit.level != AdminLevel::District
                        && crate::engine::coverage::district_level(&f))
                        || crate::engine::membership::unit_wide_above(&f, &unit.code)
                    {
                        continue;
                    }
                    let Some(share) = area.share_inside(g) else {
                        continue;
                    };
                    // In the unit by the membership rule (engine::membership): neighbours that
                    // touch the boundary or overlap it by a sliver are not in it.
                    let keep = if within {
                        share >= 1.0 - 1e-6
                    } else {
                        crate::engine::membership::is_member(&area, g)
                    };
                    if keep {
                        found.push((f, json!(round(share, 6))));
                    }
                }
                // Features without geometry that the plans tie to this district only: listed as
                // attributes (share_inside null), never drawn and never measured.
                if unit.level == AdminLevel::District && !within {
                    for (i, (slot, c)) in idx.compact_iter().enumerate() {
                        budget.check_every(i)?;
                        if c.wkb().is_some() {
                            continue;
                        }
                        let Some(f) = idx.slot(slot) else { continue };
                        if !crate::engine::membership::names_unit(&f, &unit.code) {
                            continue;
                        }
                        found.push((f, Value::Null));
                    }
                }
                for (f, share) in found {
                    n += 1;
                    if total >= MAX_AREA_FEATURES {
                        truncated = true;
                        continue;
                    }
                    if total > 0 {
                        out.push(',');
                    }
                    total += 1;
                    let extra = [("layer", json!(layer_id)), ("share_inside", share)];
                    write_feature(&mut out, &f, &PropertySelection::All, None, &extra);
                }
                counts.insert(layer_id.clone(), json!(n));
            }
            Ok((out, counts, total, truncated))
        })
        .await?;
    let head = json!({
        "area": unit_json(&u),
        "relation": if within { "within" } else { "intersects" },
        "counts": counts,
        "numberReturned": total,
        "truncated": truncated,
    });
    if format == Format::Html {
        let doc: Value = serde_json::from_str(&format!("[{body}]")).map_err(ApiError::internal)?;
        let mut html_body = format!("<p>{} features · relation {}</p><table><tr><th>layer</th><th>id</th><th>name</th><th>share inside</th></tr>", total, head["relation"]);
        for f in doc.as_array().into_iter().flatten() {
            let layer = f["properties"]["layer"].as_str().unwrap_or("");
            let id = f["id"].as_str().unwrap_or("");
            let _ = write!(
                html_body,
                "<tr><td>{0}</td><td><a href=\"/collections/{0}/items/{1}?f=html\">{1}</a></td><td>{2}</td><td>{3}</td></tr>",
                html::escape(layer),
                html::escape(id),
                html::escape(f["properties"]["name"].as_str().unwrap_or("")),
                f["properties"]["share_inside"]
            );
        }
        html_body.push_str("</table>");
        return Ok(respond(
            "text/html; charset=utf-8",
            Some(&tag),
            html::page(&format!("{} · features", u.name), &html_body),
        ));
    }
    let mut out = String::from("{\"type\":\"FeatureCollection\",");
    for (k, v) in head.as_object().into_iter().flatten() {
        let _ = write!(out, "{}:{},", Value::String(k.clone()), v);
    }
    out.push_str("\"features\":[");
    out.push_str(&body);
    out.push_str("]}");
    Ok(respond("application/geo+json", Some(&tag), out))
}

/// The region a coverage question is about.
struct Region {
    code: Option<String>,
    name: String,
    level: Option<AdminLevel>,
    area: Arc<PreparedArea>,
    approximate: bool,
}

fn layer_json(c: &LayerCoverage, title: &str, area_m2: f64) -> Value {
    let sums: serde_json::Map<String, Value> = c
        .sums
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                json!({"value": round(*v, 4), "unit": unit_of(k)}),
            )
        })
        .collect();
    json!({
        "layer": c.layer,
        "title": title,
        "feature_count": c.features,
        "covered_area": area_figures(c.covered_m2),
        "share_of_area": if area_m2 > 0.0 { round(c.covered_m2 / area_m2, 6) } else { 0.0 },
        "line_length_m": round(c.line_length_m, 2),
        "sums": sums,
        "approximate_inputs": c.approximate_inputs,
        "district_level_features_not_counted": c.district_level_skipped,
        "unit_wide_features_not_counted": c.unit_wide_skipped,
    })
}

fn region_report(
    engine: &Engine,
    region: &Region,
    layers: &[String],
    budget: &Budget,
) -> Result<(Value, bool), Stop> {
    // The same figure coverage caps its covered area at, so shares never exceed 1.
    let area_m2 = region.area.area_m2();
    let mut approximate = region.approximate;
    let mut rows = Vec::new();
    for l in layers {
        budget.check()?;
        let Some(layer) = engine.layer(l) else {
            continue;
        };
        let idx = layer.read();
        // Below district level, features the plans tie only to a whole district say nothing.
        let skip = region.level != Some(AdminLevel::District);
        // Checked inside the union too (every few hundred features and grid rows), so a
        // deadline or a client that went away stops a large coverage within milliseconds.
        // Unit-wide items of a unit above an admin unit (a town's programmes, in one of its
        // villages) are not in it (engine::membership::unit_wide_above).
        let unit = region.level.and(region.code.as_deref());
        let c = coverage_of_unit(&idx, &region.area, unit, skip, &|| budget.check().is_err())
            .map_err(|_| budget.check().err().unwrap_or(Stop::Cancelled))?;
        approximate |= c.approximate_inputs;
        rows.push(layer_json(&c, &idx.layer.title_zh, area_m2));
    }
    Ok((
        json!({
            "code": region.code, "name": region.name, "level": region.level,
            "area": area_figures(area_m2), "approximate": region.approximate, "layers": rows,
        }),
        approximate,
    ))
}

/// Children of the region at `level`: by code for admin units, by intersection for drawn areas.
fn breakdown_regions(
    engine: &Engine,
    region: &Region,
    level: AdminLevel,
    budget: &Budget,
) -> Result<Vec<Region>, Stop> {
    let Some(layer) = engine.layer(level.layer()) else {
        return Ok(vec![]);
    };
    let units: Vec<Arc<crate::model::Feature>> = {
        let idx = layer.read();
        idx.iter().map(|(_, f)| f).collect()
    };
    let mut out = Vec::new();
    for (i, f) in units.into_iter().enumerate() {
        budget.check_every(i)?;
        let code = f.admin_code.clone().unwrap_or_else(|| f.id.clone());
        let Some(g) = f.geometry.as_ref() else {
            continue;
        };
        let approximate = f.properties.get("approximate") == Some(&Value::Bool(true));
        let area = match &region.code {
            Some(parent) => {
                if !(code.starts_with(parent.as_str()) && code.len() > parent.len()) {
                    continue;
                }
                let unit = AdminUnit {
                    code: code.clone(),
                    name: f.name.clone().unwrap_or_default(),
                    level,
                    feature: Arc::clone(&f),
                };
                match engine.admin_area(&unit) {
                    Some(a) => a,
                    None => continue,
                }
            }
            None => {
                let Some(r) = g.bounding_rect() else { continue };
                if region.area.relate_box(r) == crate::geom::BoxRelation::Outside
                    || !g.intersects(&region.area.shape)
                {
                    continue;
                }
                let polys: MultiPolygon<f64> = crate::geom::polygons_of(g);
                let cut = intersect_areas(&polys, &region.area.shape);
                if cut.shape.0.is_empty() {
                    continue;
                }
                Arc::new(cut)
            }
        };
        out.push(Region {
            code: Some(code),
            name: f.name.clone().unwrap_or_default(),
            level: Some(level),
            area,
            approximate,
        });
    }
    out.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(out)
}

/// A region ready to use, or a drawn geometry still to decode and validate (on a heavy slot:
/// validating a large polygon is real work).
enum RegionSource {
    Ready(Region),
    Drawn(Value),
}

impl RegionSource {
    fn code(&self) -> Option<&str> {
        match self {
            RegionSource::Ready(r) => r.code.as_deref(),
            RegionSource::Drawn(_) => None,
        }
    }

    fn make(self) -> ApiResult<Region> {
        match self {
            RegionSource::Ready(r) => Ok(r),
            RegionSource::Drawn(geometry) => drawn_region(&geometry),
        }
    }
}

fn invalid_body(msg: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "InvalidBody", msg)
}

fn drawn_region(geometry: &Value) -> ApiResult<Region> {
    let g = decode_geometry(geometry, 0).map_err(|e| invalid_body(format!("geometry: {e}")))?;
    if !matches!(g, Geometry::Polygon(_) | Geometry::MultiPolygon(_)) {
        return Err(invalid_body(
            "geometry must be a Polygon or MultiPolygon".into(),
        ));
    }
    check_vertices("geometry", &g)?;
    validate_topology(&g).map_err(|p| invalid_body(format!("geometry is invalid: {p}")))?;
    let Some(area) = crate::geom::prepare(&g) else {
        return Err(invalid_body("geometry has no area".into()));
    };
    Ok(Region {
        code: None,
        name: "drawn area".into(),
        level: None,
        area: Arc::new(area),
        approximate: false,
    })
}

async fn coverage_response(
    state: &AppState,
    region: RegionSource,
    layers: Vec<String>,
    by: Option<AdminLevel>,
    view: &View,
    format: Format,
    tag: Option<&str>,
) -> ApiResult<Response> {
    if let (Some(level), Some(code)) = (by, region.code()) {
        let own = AdminLevel::of_code(code);
        if own == Some(level)
            || own == Some(AdminLevel::Village)
            || (own == Some(AdminLevel::Town) && level == AdminLevel::Town)
        {
            return Err(ApiError::parameter(
                "by",
                &format!("{level:?}").to_lowercase(),
                format!("{code} has no units at that level below it"),
            ));
        }
    }
    // Units (and the breakdown's towns and villages) are today's; the layers are the view's.
    let engine = Arc::clone(&state.app.engine);
    let measured = view.engine(state, &layers).await?;
    let (asof, plan) = (view.asof.clone(), view.plan.clone());
    let doc = state
        .heavy
        .run(move |budget| {
            let region = match region.make() {
                Ok(r) => r,
                Err(e) => return Ok(Err(e)),
            };
            let (mut doc, mut approximate) = region_report(&measured, &region, &layers, budget)?;
            if let Some(level) = by {
                let mut parts = Vec::new();
                for child in breakdown_regions(&engine, &region, level, budget)? {
                    let (d, a) = region_report(&measured, &child, &layers, budget)?;
                    approximate |= a;
                    parts.push(d);
                }
                doc["by"] = json!(level);
                doc["breakdown"] = Value::Array(parts);
            }
            doc["approximate_inputs"] = json!(approximate);
            doc["units"] = units_doc();
            if let Some(at) = &asof {
                doc["asof"] = json!(at);
            }
            if let Some(p) = &plan {
                doc["plan"] = json!(p);
            }
            Ok(Ok(doc))
        })
        .await??;
    if format == Format::Html {
        let mut body = format!("<p>面积 Area: {}</p>", html::value(&doc["area"]));
        let mut table = |rows: &Value, label: &str| {
            let _ = write!(body, "<h2>{}</h2><table><tr><th>layer</th><th>features</th><th>m²</th><th>ha</th><th>亩</th><th>share</th><th>sums</th></tr>", html::escape(label));
            for r in rows.as_array().into_iter().flatten() {
                let _ = write!(
                    body,
                    "<tr><td>{} {}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    html::escape(r["layer"].as_str().unwrap_or("")),
                    html::escape(r["title"].as_str().unwrap_or("")),
                    r["feature_count"], r["covered_area"]["m2"], r["covered_area"]["ha"], r["covered_area"]["mu"], r["share_of_area"],
                    html::value(&r["sums"])
                );
            }
            body.push_str("</table>");
        };
        table(&doc["layers"], "图层覆盖 Coverage by layer");
        body.push_str(&html::coverage_pivot(&doc["breakdown"]));
        let title = format!("{} · coverage", doc["name"].as_str().unwrap_or(""));
        return Ok(respond(
            "text/html; charset=utf-8",
            tag,
            html::page(&title, &body),
        ));
    }
    Ok(respond("application/json", tag, doc.to_string()))
}

async fn area_coverage(
    State(state): State<AppState>,
    Path(code): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f", "layers", "by", "asof", "plan"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let view = View::parse(&params)?;
    let engine = &state.app.engine;
    let u = resolve(engine, &code)?;
    let area = prepared(engine, &u)?;
    let layers = parse_layers(engine, &params, not_admin)?;
    let by = parse_by(&params)?;
    let revs: String = engine
        .layers()
        .iter()
        .map(|l| l.read().revision.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let tag = etag(&[
        "coverage",
        &u.code,
        &layers.join(","),
        &format!("{by:?}"),
        &revs,
        format.code(),
        &view.tag(),
    ]);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    let region = Region {
        code: Some(u.code.clone()),
        name: u.name.clone(),
        level: Some(u.level),
        approximate: u.feature.properties.get("approximate") == Some(&Value::Bool(true)),
        area,
    };
    coverage_response(
        &state,
        RegionSource::Ready(region),
        layers,
        by,
        &view,
        format,
        Some(&tag),
    )
    .await
}

/// `POST /analysis/coverage`: the body is a GeoJSON Polygon/MultiPolygon (bare, or as a Feature),
/// or `{"area": "<code or name>"}`; `layers` and `by` come from the query or the body.
async fn analysis_coverage(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f", "layers", "by", "asof", "plan"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    match media_type_essence(&headers).as_deref() {
        None | Some("application/json") | Some("application/geo+json") => {}
        Some(other) => {
            return Err(unsupported_media_type(
                other,
                &["application/geo+json", "application/json"],
            ))
        }
    }
    let invalid = invalid_body;
    let doc: Value =
        serde_json::from_slice(&body).map_err(|e| invalid(format!("body is not JSON: {e}")))?;
    let engine = &state.app.engine;
    // Options may also sit in the body.
    let mut merged = params.clone();
    for key in ["layers", "by", "asof", "plan"] {
        if let (None, Some(v)) = (params.get(key)?, doc.get(key)) {
            let text = match v {
                Value::Array(items) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(","),
                Value::String(s) => s.clone(),
                other => {
                    return Err(invalid(format!(
                        "'{key}' must be a string or a list of strings, not {other}"
                    )))
                }
            };
            merged.0.push((key.to_string(), text));
        }
    }
    let layers = parse_layers(engine, &merged, not_admin)?;
    let by = parse_by(&merged)?;
    let view = View::parse(&merged)?;
    let region = if let Some(code) = doc.get("area").and_then(Value::as_str) {
        let u = engine
            .resolve_admin(code)
            .map_err(|e| lookup_error("area", e))?;
        RegionSource::Ready(Region {
            code: Some(u.code.clone()),
            name: u.name.clone(),
            level: Some(u.level),
            approximate: u.feature.properties.get("approximate") == Some(&Value::Bool(true)),
            area: prepared(engine, &u)?,
        })
    } else {
        let geometry = match doc.get("type").and_then(Value::as_str) {
            Some("Feature") => doc.get("geometry").cloned().unwrap_or(Value::Null),
            Some(_) => doc.clone(),
            None => doc.get("geometry").cloned().unwrap_or(Value::Null),
        };
        if geometry.is_null() {
            return Err(invalid("send a GeoJSON Polygon or MultiPolygon, a Feature with one, or {\"area\": \"<code>\"}".into()));
        }
        RegionSource::Drawn(geometry)
    };
    coverage_response(&state, region, layers, by, &view, format, None).await
}
