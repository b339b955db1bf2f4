//! Feature-query parameters shared by items (and later tiles and exports): bbox, CQL2 `filter`,
//! `sortby`, `properties`, property equality, and the spatial shortcuts `within`, `intersects`, `near`.

use geo::{CoordsIter, Geometry};
use serde_json::json;
use std::sync::Arc;
use wkt::TryFromWkt;

use super::error::{ApiError, ApiResult};
use super::params::Params;
use crate::engine::filter::{parse as parse_filter, FilterLang};
use crate::engine::{
    AdminLookupError, Engine, Filter, FilterError, LayerIndex, Near, PropertyFilter, Query, SortKey,
};
use crate::formats::geojson::PropertySelection;
use crate::geom::crs::{self, Crs, CrsRequest};
use crate::geom::{validate_topology, Bbox};
use crate::model::Feature;
use geo::MapCoords;

pub const DEFAULT_LIMIT: usize = 100;
/// The largest page. A larger `limit` is clamped to it (OGC API – Features allows that), not
/// refused.
pub const MAX_LIMIT: usize = 10_000;
/// Vertices the geometries of one request may have together (an `intersects` WKT, the literals of
/// a filter, a polygon posted for analysis). Lower than what one stored geometry may have
/// ([`crate::geom::MAX_GEOMETRY_VERTICES`]): a query is answered while the client waits.
pub const MAX_REQUEST_VERTICES: usize = 100_000;
/// The farthest `near` query, in metres.
pub const MAX_NEAR_METRES: f64 = 1_000_000.0;

/// A text parameter; an empty or blank value is a 400 naming it, as on every resource (the
/// OpenAPI document gives every parameter `minLength: 1`): leaving a parameter out and giving it
/// empty are different requests, and the empty one is a client's mistake.
pub fn text_param<'a>(params: &'a Params, name: &str) -> ApiResult<Option<&'a str>> {
    match params.get(name)? {
        Some(v) if v.trim().is_empty() => Err(ApiError::parameter(
            name,
            v,
            "empty; leave the parameter out or give it a value",
        )),
        other => Ok(other),
    }
}

/// Shortens a long value for an error message.
fn excerpt(value: &str) -> String {
    const MAX: usize = 200;
    if value.len() <= MAX {
        return value.to_string();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

/// Parameters the feature query understands; anything else must be a property of the layer.
pub const QUERY_PARAMS: &[&str] = &[
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "datetime",
    "plan",
    "properties",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "within",
    "intersects",
    "near",
    "distance",
    "crs",
];

/// A CRS named by a parameter (`crs`, `bbox-crs`, `filter-crs`).
pub fn parse_crs(params: &Params, name: &str) -> ApiResult<Option<CrsRequest>> {
    match params.get(name)? {
        None => Ok(None),
        Some(v) => CrsRequest::parse(v).map(Some).map_err(|e| {
            ApiError::parameter(name, v, e).with_details(
                json!({"parameter": name, "value": v, "supported": Crs::supported_uris()}),
            )
        }),
    }
}

/// A feature with its geometry in `crs`, in that CRS's axis order (lat/lon for EPSG:4326/4490,
/// northing/easting for Gauss-Krüger), for output.
pub fn to_output_crs(f: &Feature, crs: &Crs) -> Result<Feature, String> {
    let mut out = f.clone();
    if let Some(g) = &f.geometry {
        let t = crs::geometry_from_lonlat(crs, g).map_err(|e| format!("feature {}: {e}", f.id))?;
        out.geometry = Some(if crs.axis_order_lat_first() {
            t.map_coords(|c| geo::Coord { x: c.y, y: c.x })
        } else {
            t
        });
    }
    Ok(out)
}

/// A geometry given in `crs` (its axis order) back to stored lon/lat.
pub fn from_input_crs(g: &Geometry<f64>, crs: &Crs) -> Result<Geometry<f64>, String> {
    let math = if crs.axis_order_lat_first() {
        g.map_coords(|c| geo::Coord { x: c.y, y: c.x })
    } else {
        g.clone()
    };
    crs::geometry_to_lonlat(crs, &math).map_err(|e| e.to_string())
}

/// A bbox given in `crs` (4 numbers in its axis order) as a lon/lat rectangle: the envelope of
/// its corners and edge midpoints, since projected boxes are not lon/lat boxes.
fn bbox_from_crs(text: &str, crs: &Crs) -> ApiResult<geo::Rect<f64>> {
    let nums: Vec<f64> = text
        .split(',')
        .map(|v| v.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ApiError::parameter("bbox", text, "must be 4 numbers"))?;
    let [a, b, c, d] = nums[..] else {
        return Err(ApiError::parameter(
            "bbox",
            text,
            "must be 4 numbers in the axis order of bbox-crs",
        ));
    };
    let (x0, y0) = crs.from_axis_order(a, b);
    let (x1, y1) = crs.from_axis_order(c, d);
    if x0 > x1 || y0 > y1 {
        return Err(ApiError::parameter(
            "bbox",
            text,
            "minimum is greater than maximum",
        ));
    }
    let mut pts = Vec::new();
    for fx in [0.0, 0.5, 1.0] {
        for fy in [0.0, 0.5, 1.0] {
            let (lon, lat) = crs::to_lonlat(crs, x0 + (x1 - x0) * fx, y0 + (y1 - y0) * fy)
                .map_err(|e| ApiError::parameter("bbox", text, e))?;
            pts.push(geo::Point::new(lon, lat));
        }
    }
    geo::BoundingRect::bounding_rect(&geo::MultiPoint(pts))
        .ok_or_else(|| ApiError::parameter("bbox", text, "empty"))
}

/// A parsed feature query and the properties to return.
pub struct FeatureQuery {
    pub query: Query,
    pub selection: PropertySelection,
}

/// An admin unit named by `within=` (a code, a name, or `town/village`), as a filter. Resolved
/// before the queried layer is locked, since it reads the admin layers.
pub fn resolve_within(engine: &Engine, params: &Params) -> ApiResult<Option<Filter>> {
    let Some(text) = text_param(params, "within")? else {
        return Ok(None);
    };
    let area = resolve_area(engine, "within", text)?;
    Ok(Some(Filter::InArea { area, within: true }))
}

/// An admin unit's prepared polygon, or a 404/400 that names candidates.
pub fn resolve_area(
    engine: &Engine,
    param: &str,
    text: &str,
) -> ApiResult<Arc<crate::geom::PreparedArea>> {
    let unit = engine
        .resolve_admin(text)
        .map_err(|e| lookup_error(param, e))?;
    engine.admin_area(&unit).ok_or_else(|| {
        ApiError::parameter(
            param,
            text,
            format!("{} ({}) has no polygon", unit.name, unit.code),
        )
    })
}

pub fn lookup_error(param: &str, e: AdminLookupError) -> ApiError {
    match e {
        AdminLookupError::Unknown(t) => ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "UnknownArea",
            format!(
                "parameter '{param}' = '{t}': no district, town or village has that code or name"
            ),
        )
        .with_details(json!({"parameter": param, "value": t})),
        AdminLookupError::Ambiguous(t, candidates) => {
            let list: Vec<_> = candidates
                .iter()
                .map(|(code, name, parent)| json!({"code": code, "name": name, "parent_code": parent}))
                .collect();
            ApiError::parameter(
                param,
                &t,
                format!(
                    "{} units are called '{t}'; give a code or write it as town/village",
                    candidates.len()
                ),
            )
            .with_details(json!({"parameter": param, "value": t, "candidates": list}))
        }
    }
}

fn filter_error(param: &str, value: &str, e: FilterError) -> ApiError {
    let value = &excerpt(value);
    let mut err = ApiError::parameter(param, value, &e);
    if let FilterError::Syntax { line, column, .. } = &e {
        err = err.with_details(
            json!({"parameter": param, "value": value, "line": line, "column": column}),
        );
    }
    if let FilterError::UnknownProperty(p) = &e {
        err = err.with_details(json!({"parameter": param, "value": value, "property": p}));
    }
    err
}

/// 413 for a request geometry beyond the stated limits ([`MAX_REQUEST_VERTICES`],
/// [`crate::geom::MAX_GEOMETRY_PARTS`]); names the parameter and the limit.
pub fn check_vertices(param: &str, g: &Geometry<f64>) -> ApiResult<()> {
    too_large(param, g.coords_count(), crate::geom::part_count(g))
}

fn too_large(param: &str, vertices: usize, parts: usize) -> ApiResult<()> {
    use crate::geom::MAX_GEOMETRY_PARTS;
    let why = if vertices > MAX_REQUEST_VERTICES {
        format!("geometries in requests may have at most {MAX_REQUEST_VERTICES} vertices; this one has {vertices}")
    } else if parts > MAX_GEOMETRY_PARTS {
        format!("geometries in requests may have at most {MAX_GEOMETRY_PARTS} parts; this one has {parts}")
    } else {
        return Ok(());
    };
    Err(ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        "GeometryTooLarge",
        format!("parameter '{param}': {why}"),
    )
    .with_details(json!({
        "parameter": param,
        "vertices": vertices,
        "parts": parts,
        "max_vertices": MAX_REQUEST_VERTICES,
        "max_parts": MAX_GEOMETRY_PARTS,
    })))
}

/// `near=lon,lat`: exactly two finite numbers, nothing else.
fn parse_lon_lat(p: &str) -> ApiResult<[f64; 2]> {
    let nums: Vec<Option<f64>> = p
        .split(',')
        .map(|v| v.trim().parse::<f64>().ok().filter(|v| v.is_finite()))
        .collect();
    match nums[..] {
        [Some(lon), Some(lat)] => Ok([lon, lat]),
        _ => Err(ApiError::parameter(
            "near",
            p,
            "must be two finite numbers, lon,lat (e.g. near=105.7,29.7)",
        )),
    }
}

fn parse_limit(params: &Params) -> ApiResult<usize> {
    match params.get("limit")? {
        None => Ok(DEFAULT_LIMIT),
        Some(v) => match v.trim().parse::<i64>() {
            Ok(n) if n >= 1 => Ok((n as usize).min(MAX_LIMIT)),
            Ok(_) => Err(ApiError::parameter("limit", v, "must be at least 1")),
            Err(_) => Err(ApiError::parameter(
                "limit",
                v,
                format!("must be a whole number from 1 to {MAX_LIMIT}"),
            )),
        },
    }
}

fn parse_offset(params: &Params) -> ApiResult<usize> {
    match params.get("offset")? {
        None => Ok(0),
        Some(v) => v
            .trim()
            .parse::<usize>()
            .map_err(|_| ApiError::parameter("offset", v, "must be a whole number, 0 or more")),
    }
}

fn known<'a>(idx: &'a LayerIndex) -> impl Fn(&str) -> bool + 'a {
    move |k: &str| k == "id" || idx.has_property(k)
}

/// Parses everything but `within` (see `resolve_within`) against the layer.
pub fn parse(params: &Params, idx: &LayerIndex, within: Option<Filter>) -> ApiResult<FeatureQuery> {
    params.reject_unknown(QUERY_PARAMS, |k| k == "f" || idx.has_property(k))?;
    params.reject_empty()?;
    let limit = parse_limit(params)?;
    let offset = parse_offset(params)?;
    let fixed = |name: &str| -> ApiResult<Option<Crs>> {
        Ok(match parse_crs(params, name)? {
            None => None,
            Some(CrsRequest::Fixed(Crs::Crs84)) => None,
            Some(CrsRequest::Fixed(c)) => Some(c),
            Some(CrsRequest::AutoGk { .. }) => {
                return Err(ApiError::parameter(
                    name,
                    "auto-gk",
                    "name a zone (e.g. EPSG:4545); auto-gk is for output",
                ))
            }
        })
    };
    let bbox_crs = fixed("bbox-crs")?;
    let filter_crs = fixed("filter-crs")?;
    let bbox = match (params.get("bbox")?, bbox_crs) {
        (Some(v), None) => Some(
            Bbox::parse(v)
                .map_err(|e| ApiError::parameter("bbox", v, e))?
                .to_rect(),
        ),
        (Some(v), Some(c)) => Some(bbox_from_crs(v, &c)?),
        (None, _) => None,
    };
    // Layers with periods (start_date, end_date) select by overlap; others match any interval.
    let datetime = match text_param(params, "datetime")? {
        Some(t) => crate::monitor::datetime::items_filter(t, &|k| idx.has_property(k))
            .map_err(|e| ApiError::parameter("datetime", t, e))?,
        None => None,
    };
    let plan = text_param(params, "plan")?
        .and_then(|p| crate::monitor::plans::plan_filter(p, &|k| idx.has_property(k)));
    let selection = match params.get("properties")? {
        None => PropertySelection::All,
        Some(list) => {
            let keys: Vec<String> = list
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect();
            if let Some(bad) = keys.iter().find(|k| !idx.has_property(k)) {
                return Err(ApiError::parameter(
                    "properties",
                    list,
                    format!("layer '{}' has no property '{bad}'", idx.layer.id),
                )
                .with_details(json!({"parameter": "properties", "value": list, "property": bad})));
            }
            PropertySelection::Only(keys)
        }
    };
    let filters: Vec<PropertyFilter> = params
        .0
        .iter()
        .filter(|(k, _)| !QUERY_PARAMS.contains(&k.as_str()) && k != "f")
        .map(|(k, v)| PropertyFilter::Equals {
            key: k.clone(),
            value: v.clone(),
        })
        .collect();

    let mut parts: Vec<Filter> = within.into_iter().chain(datetime).chain(plan).collect();
    if let Some(text) = text_param(params, "filter")? {
        let lang = match text_param(params, "filter-lang")? {
            None | Some("cql2-text") => FilterLang::Cql2Text,
            Some("cql2-json") => FilterLang::Cql2Json,
            Some(other) => {
                return Err(ApiError::parameter(
                    "filter-lang",
                    other,
                    "use cql2-text or cql2-json",
                ))
            }
        };
        let mut f =
            parse_filter(text, lang, &known(idx)).map_err(|e| filter_error("filter", text, e))?;
        if let Some(c) = &filter_crs {
            f = f.map_geometries(&|g| from_input_crs(g, c)).map_err(|e| {
                ApiError::parameter(
                    "filter-crs",
                    &c.uri(),
                    format!("cannot transform the filter's geometry: {e}"),
                )
            })?;
        }
        too_large("filter", f.vertex_count(), f.part_count())?;
        f.check_literals()
            .map_err(|e| ApiError::parameter("filter", &excerpt(text), e))?;
        parts.push(f);
    } else if let Some(lang) = text_param(params, "filter-lang")? {
        return Err(ApiError::parameter(
            "filter-lang",
            lang,
            "given without a filter",
        ));
    }
    if let Some(text) = text_param(params, "intersects")? {
        let shown = excerpt(text);
        crate::geom::check_wkt_nesting(text)
            .map_err(|e| ApiError::parameter("intersects", &shown, e))?;
        let g = Geometry::<f64>::try_from_wkt_str(text)
            .map_err(|e| ApiError::parameter("intersects", &shown, format!("not WKT: {e}")))?;
        check_vertices("intersects", &g)?;
        validate_topology(&g).map_err(|p| {
            ApiError::parameter("intersects", &shown, format!("invalid geometry: {p}"))
        })?;
        parts.push(Filter::Spatial {
            op: crate::engine::filter::SpatialOp::Intersects,
            bbox: geo::BoundingRect::bounding_rect(&g),
            geometry: Arc::new(g),
        });
    }
    let near = match (text_param(params, "near")?, params.get("distance")?) {
        (None, None) => None,
        (None, Some(d)) => {
            return Err(ApiError::parameter(
                "distance",
                d,
                "given without near=lon,lat",
            ))
        }
        (Some(p), d) => {
            let [lon, lat] = parse_lon_lat(p)?;
            if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                return Err(ApiError::parameter(
                    "near",
                    p,
                    "longitude must be within ±180 and latitude within ±90",
                ));
            }
            let Some(d) = d else {
                return Err(ApiError::parameter("near", p, "needs distance=<metres>"));
            };
            let metres = d
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|m| m.is_finite() && *m >= 0.0 && *m <= MAX_NEAR_METRES)
                .ok_or_else(|| {
                    ApiError::parameter(
                        "distance",
                        d,
                        format!("must be metres from 0 to {MAX_NEAR_METRES}"),
                    )
                })?;
            Some(Near {
                point: geo::Coord { x: lon, y: lat },
                metres,
            })
        }
    };
    let sort = match text_param(params, "sortby")? {
        None => vec![],
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                let (descending, key) = match k.as_bytes()[0] {
                    b'-' => (true, &k[1..]),
                    b'+' => (false, &k[1..]),
                    _ => (false, k),
                };
                if known(idx)(key) {
                    Ok(SortKey {
                        key: key.to_string(),
                        descending,
                    })
                } else {
                    Err(ApiError::parameter(
                        "sortby",
                        list,
                        format!("layer '{}' has no property '{key}'", idx.layer.id),
                    )
                    .with_details(json!({"parameter": "sortby", "value": list, "property": key})))
                }
            })
            .collect::<ApiResult<Vec<_>>>()?,
    };
    let filter = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Filter::And(parts)),
    };
    Ok(FeatureQuery {
        query: Query {
            bbox,
            filters,
            filter,
            near,
            sort,
            offset,
            limit,
        },
        selection,
    })
}
