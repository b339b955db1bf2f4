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
use crate::geom::{validate_topology, Bbox};

pub const DEFAULT_LIMIT: usize = 100;
pub const MAX_LIMIT: usize = 10_000;
/// Vertices a request geometry may have: bigger ones would tie the server up.
pub const MAX_REQUEST_VERTICES: usize = 100_000;
/// The farthest `near` query, in metres.
pub const MAX_NEAR_METRES: f64 = 1_000_000.0;

const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";

/// Parameters the feature query understands; anything else must be a property of the layer.
pub const QUERY_PARAMS: &[&str] = &[
    "limit",
    "offset",
    "bbox",
    "bbox-crs",
    "datetime",
    "properties",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "within",
    "intersects",
    "near",
    "distance",
];

/// A parsed feature query and the properties to return.
pub struct FeatureQuery {
    pub query: Query,
    pub selection: PropertySelection,
}

/// An admin unit named by `within=` (a code, a name, or `town/village`), as a filter. Resolved
/// before the queried layer is locked, since it reads the admin layers.
pub fn resolve_within(engine: &Engine, params: &Params) -> ApiResult<Option<Filter>> {
    let Some(text) = params.get("within")? else {
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

/// Counts the vertices of a request geometry against the configured bound.
pub fn check_vertices(param: &str, g: &Geometry<f64>) -> ApiResult<()> {
    let n = g.coords_count();
    if n > MAX_REQUEST_VERTICES {
        return Err(ApiError::parameter(
            param,
            &format!("<geometry of {n} vertices>"),
            format!("geometries in requests may have at most {MAX_REQUEST_VERTICES} vertices"),
        ));
    }
    Ok(())
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
    let limit = parse_limit(params)?;
    let offset = parse_offset(params)?;
    let bbox = match params.get("bbox")? {
        Some(v) => Some(
            Bbox::parse(v)
                .map_err(|e| ApiError::parameter("bbox", v, e))?
                .to_rect(),
        ),
        None => None,
    };
    for crs_param in ["bbox-crs", "filter-crs"] {
        if let Some(crs) = params.get(crs_param)? {
            if crs != CRS84 {
                return Err(ApiError::parameter(
                    crs_param,
                    crs,
                    format!("only {CRS84} is supported"),
                ));
            }
        }
    }
    if let Some(dt) = params.get("datetime")? {
        // No layer has a temporal extent: every feature matches any valid interval.
        if dt.trim().is_empty() {
            return Err(ApiError::parameter(
                "datetime",
                dt,
                "must be an RFC 3339 instant or interval",
            ));
        }
    }
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

    let mut parts: Vec<Filter> = within.into_iter().collect();
    if let Some(text) = params.get("filter")? {
        let lang = match params.get("filter-lang")? {
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
        let f =
            parse_filter(text, lang, &known(idx)).map_err(|e| filter_error("filter", text, e))?;
        if f.vertex_count() > MAX_REQUEST_VERTICES {
            return Err(ApiError::parameter(
                "filter",
                "<long filter>",
                format!("geometries in requests may have at most {MAX_REQUEST_VERTICES} vertices"),
            ));
        }
        parts.push(f);
    } else if let Some(lang) = params.get("filter-lang")? {
        return Err(ApiError::parameter(
            "filter-lang",
            lang,
            "given without a filter",
        ));
    }
    if let Some(text) = params.get("intersects")? {
        let g = Geometry::<f64>::try_from_wkt_str(text)
            .map_err(|e| ApiError::parameter("intersects", text, format!("not WKT: {e}")))?;
        check_vertices("intersects", &g)?;
        validate_topology(&g).map_err(|p| {
            ApiError::parameter("intersects", text, format!("invalid geometry: {p}"))
        })?;
        parts.push(Filter::Spatial {
            op: crate::engine::filter::SpatialOp::Intersects,
            bbox: geo::BoundingRect::bounding_rect(&g),
            geometry: Arc::new(g),
        });
    }
    let near = match (params.get("near")?, params.get("distance")?) {
        (None, None) => None,
        (None, Some(d)) => {
            return Err(ApiError::parameter(
                "distance",
                d,
                "given without near=lon,lat",
            ))
        }
        (Some(p), d) => {
            let nums: Vec<f64> = p
                .split(',')
                .filter_map(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite())
                .collect();
            let [lon, lat] = nums[..] else {
                return Err(ApiError::parameter("near", p, "must be lon,lat"));
            };
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
    let sort = match params.get("sortby")? {
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
