//! OGC API – Features, Part 1 Core (+ GeoJSON, HTML, OpenAPI 3.0): landing page, conformance,
//! collections, items with bbox/limit/offset/property filters, single features, queryables.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};
use std::fmt::Write as _;

use super::auth::{change_reason, check_scope, require, role_for_layer, Caller};
use super::error::{ApiError, ApiResult};
use super::html;
use super::params::{base_url, content_type, etag, not_modified, respond, Format, Params};
use super::query::{self, FeatureQuery};
use super::AppState;
use crate::auth::Role;
use crate::engine::LayerIndex;
use crate::formats::geojson::{self, PropertySelection};
use crate::geom::crs::Crs;
use crate::model::Feature;
use crate::store::ImportMode;

pub const CONFORMANCE: &[&str] = &[
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    // Part 2: `crs`, `bbox-crs`, `Content-Crs`, `storageCrs`.
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    // Part 3: `filter`, `filter-lang`, `filter-crs`, queryables and `property=value`.
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables-query-parameters",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    // CQL2 as src/engine/filter.rs evaluates it: comparisons of a property with a literal,
    // LIKE/BETWEEN/IN, and every S_* function; no property-property, arithmetic or temporal.
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
    // Part 4 (src/http/edit.rs).
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/optimistic-locking-etags",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
];

/// Layers with more features than this are queried on a heavy slot (under the deadline).
const HEAVY_LAYER: usize = 4096;

const CRS84: &str = "http://www.opengis.net/def/crs/OGC/1.3/CRS84";
/// `Content-Crs` of an answer in CRS84.
pub(super) const CRS84_HEADER: &str = "<http://www.opengis.net/def/crs/OGC/1.3/CRS84>";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(landing))
        .route("/conformance", get(conformance))
        .route("/collections", get(collections))
        .route("/collections/{collection}", get(collection))
        .route(
            "/collections/{collection}/items",
            get(items).post(add_items),
        )
        .route("/collections/{collection}/items/{feature}", get(feature))
        .route("/collections/{collection}/queryables", get(queryables))
}

fn link(href: String, rel: &str, kind: &str, title: &str) -> Value {
    json!({"href": href, "rel": rel, "type": kind, "title": title})
}

/// `self` and `alternate` links for a resource at `path` with query `q`.
fn self_links(
    base: &str,
    path: &str,
    params: &Params,
    format: Format,
    json_type: &str,
) -> Vec<Value> {
    let url = |f: &str| {
        let q = params.with("f", Some(f));
        format!("{base}{path}?{q}")
    };
    let json_link = |rel| link(url("json"), rel, json_type, "JSON");
    let html_link = |rel| link(url("html"), rel, "text/html", "HTML");
    match format {
        Format::Html => vec![html_link("self"), json_link("alternate")],
        _ => vec![json_link("self"), html_link("alternate")],
    }
}

pub(super) fn layer_or_404(
    state: &AppState,
    id: &str,
) -> ApiResult<std::sync::Arc<parking_lot::RwLock<LayerIndex>>> {
    state.app.engine.layer(id).ok_or_else(|| {
        ApiError::not_found(format!("no collection '{id}'; see /collections"))
            .with_details(json!({"collection": id}))
    })
}

/// Renders JSON or HTML from one JSON document, with ETag handling.
fn render(
    headers: &HeaderMap,
    format: Format,
    tag: &str,
    title: &str,
    doc: impl FnOnce() -> Value,
    html_body: impl FnOnce(&Value) -> String,
) -> Response {
    if let Some(r) = not_modified(headers, tag) {
        return r;
    }
    let doc = doc();
    match format {
        Format::Html => respond(
            content_type(format, false),
            Some(tag),
            html::page(title, &html_body(&doc)),
        ),
        _ => respond(content_type(format, false), Some(tag), doc.to_string()),
    }
}

fn engine_tag(state: &AppState) -> String {
    state
        .app
        .engine
        .layers()
        .iter()
        .map(|l| {
            let l = l.read();
            format!("{}:{}", l.layer.id, l.revision)
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn landing(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    // A browser asking for `/` gets the map; `/?f=html` stays the HTML landing page with links.
    if format == Format::Html && params.get("f")?.is_none() {
        return Ok(super::viewer::map_page());
    }
    let base = base_url(&headers);
    let tag = etag(&["landing", &base, format.code(), &engine_tag(&state)]);
    Ok(render(
        &headers,
        format,
        &tag,
        "一张图 yizhangtu",
        || {
            let mut links = self_links(&base, "/", &params, format, "application/json");
            links.extend([
                link(
                    format!("{base}/api"),
                    "service-desc",
                    "application/vnd.oai.openapi+json;version=3.0",
                    "OpenAPI 3.0 definition",
                ),
                link(
                    format!("{base}/api?f=html"),
                    "service-doc",
                    "text/html",
                    "API documentation",
                ),
                link(
                    format!("{base}/conformance"),
                    "conformance",
                    "application/json",
                    "Conformance classes",
                ),
                link(
                    format!("{base}/collections"),
                    "data",
                    "application/json",
                    "Layers (collections)",
                ),
            ]);
            let layers: Vec<Value> = state
            .app
            .engine
            .layers()
            .iter()
            .map(|l| {
                let l = l.read();
                json!({"id": l.layer.id, "title": l.layer.title_zh, "title_en": l.layer.title_en, "count": l.len()})
            })
            .collect();
            json!({
                "title": "一张图 yizhangtu",
                "description": "Spatial plans of Chongqing districts on one map: OGC API – Features layers of districts, towns, villages and plan features.",
                "links": links,
                "layers": layers,
            })
        },
        |doc| {
            let mut body = String::from(
            "<p>Spatial plans on one map. 规划“一张图”：区县、乡镇、村及规划要素图层。 <a href=\"/map\">地图 Map</a></p><h2>图层 Layers</h2>\
             <table><tr><th>id</th><th>图层</th><th>Layer</th><th>要素数 Features</th></tr>",
        );
            for l in doc["layers"].as_array().into_iter().flatten() {
                let id = l["id"].as_str().unwrap_or("");
                let _ = write!(
                body,
                "<tr><td><a href=\"/collections/{0}/items?f=html\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td></tr>",
                html::escape(id),
                html::escape(l["title"].as_str().unwrap_or("")),
                html::escape(l["title_en"].as_str().unwrap_or("")),
                l["count"]
            );
            }
            body.push_str("</table><h2>Links</h2>");
            body.push_str(&html::links(&doc["links"]));
            body
        },
    ))
}

async fn conformance(headers: HeaderMap, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let tag = etag(&["conformance", format.code()]);
    Ok(render(
        &headers,
        format,
        &tag,
        "Conformance",
        || json!({"conformsTo": CONFORMANCE}),
        html::value,
    ))
}

fn collection_json(idx: &LayerIndex, base: &str) -> Value {
    let l = &idx.layer;
    let id = &l.id;
    let stats = idx.stats();
    let mut doc = json!({
        "id": id,
        "title": l.title_zh,
        "title_en": l.title_en,
        "description": l.description,
        "itemType": "feature",
        "geometryType": l.geometry_type.as_str(),
        "crs": Crs::supported_uris(),
        "storageCrs": "http://www.opengis.net/def/crs/EPSG/0/4490",
        "numberOfFeatures": stats.count,
        "links": [
            link(format!("{base}/collections/{id}"), "self", "application/json", &l.title_zh),
            link(format!("{base}/collections/{id}?f=html"), "alternate", "text/html", &l.title_zh),
            link(format!("{base}/collections/{id}/items"), "items", "application/geo+json", "Features as GeoJSON"),
            link(format!("{base}/collections/{id}/items?f=html"), "items", "text/html", "Features as HTML"),
            link(format!("{base}/collections/{id}/queryables"), "http://www.opengis.net/def/rel/ogc/1.0/queryables", "application/schema+json", "Queryables"),
        ],
    });
    if let Some(e) = stats.extent {
        doc["extent"] = json!({"spatial": {"bbox": [[e.min().x, e.min().y, e.max().x, e.max().y]], "crs": CRS84}});
    }
    if let Some(t) = crate::monitor::datetime::temporal_extent(idx) {
        doc["extent"]["temporal"] = t;
    }
    doc
}

async fn collections(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let base = base_url(&headers);
    let tag = etag(&["collections", &base, format.code(), &engine_tag(&state)]);
    Ok(render(
        &headers,
        format,
        &tag,
        "图层 Layers",
        || {
            let cols: Vec<Value> = state
                .app
                .engine
                .layers()
                .iter()
                .map(|l| collection_json(&l.read(), &base))
                .collect();
            json!({"links": self_links(&base, "/collections", &params, format, "application/json"), "collections": cols})
        },
        |doc| {
            let mut body = String::from("<table><tr><th>id</th><th>图层</th><th>Layer</th><th>几何 Geometry</th><th>要素数 Features</th><th>范围 Extent</th></tr>");
            for c in doc["collections"].as_array().into_iter().flatten() {
                let id = c["id"].as_str().unwrap_or("");
                let _ = write!(
                body,
                "<tr><td><a href=\"/collections/{0}?f=html\">{0}</a></td><td>{1}</td><td>{2}</td><td>{3}</td><td><a href=\"/collections/{0}/items?f=html\">{4}</a></td><td>{5}</td></tr>",
                html::escape(id),
                html::escape(c["title"].as_str().unwrap_or("")),
                html::escape(c["title_en"].as_str().unwrap_or("")),
                html::escape(c["geometryType"].as_str().unwrap_or("")),
                c["numberOfFeatures"],
                html::escape(&c["extent"]["spatial"]["bbox"][0].to_string()),
            );
            }
            body.push_str("</table>");
            body
        },
    ))
}

async fn collection(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let layer = layer_or_404(&state, &id)?;
    let idx = layer.read();
    let base = base_url(&headers);
    let tag = etag(&[
        "collection",
        &id,
        &idx.revision.to_string(),
        &base,
        format.code(),
    ]);
    let title = format!("{} {}", idx.layer.title_zh, idx.layer.title_en);
    Ok(render(
        &headers,
        format,
        &tag,
        &title,
        || collection_json(&idx, &base),
        |doc| {
            let mut body = format!(
                "<p>{}</p>",
                html::escape(doc["description"].as_str().unwrap_or(""))
            );
            body.push_str(&html::links(&doc["links"]));
            body.push_str(&html::value(&json!({
            "id": doc["id"], "geometryType": doc["geometryType"], "numberOfFeatures": doc["numberOfFeatures"],
            "extent": doc["extent"], "crs": doc["crs"], "storageCrs": doc["storageCrs"],
        })));
            body
        },
    ))
}

async fn queryables(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let layer = layer_or_404(&state, &id)?;
    let idx = layer.read();
    let base = base_url(&headers);
    let tag = etag(&[
        "queryables",
        &id,
        &idx.revision.to_string(),
        &base,
        format.code(),
    ]);
    let title = format!("{} queryables", idx.layer.title_zh);
    // Part 3: queryables are a JSON Schema document.
    let schema_type = |mut r: Response| {
        if format != Format::Html && r.status() == StatusCode::OK {
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("application/schema+json"),
            );
        }
        r
    };
    Ok(schema_type(render(
        &headers,
        format,
        &tag,
        &title,
        || {
            let mut props = serde_json::Map::new();
            props.insert(
            "geometry".into(),
            json!({"title": "geometry", "format": format!("geometry-{}", idx.layer.geometry_type.as_str().to_lowercase())}),
        );
            for (key, stats) in idx.property_stats() {
                let types: Vec<&str> = stats.types.to_vec();
                let t = if types.len() == 1 {
                    json!(types[0])
                } else {
                    json!(types)
                };
                props.insert(key.clone(), json!({"title": key, "type": t}));
            }
            json!({
                "$schema": "https://json-schema.org/draft/2019-09/schema",
                "$id": format!("{base}/collections/{id}/queryables"),
                "type": "object",
                "title": idx.layer.title_zh,
                "properties": props,
                "additionalProperties": false,
            })
        },
        |doc| html::value(&doc["properties"]),
    )))
}

async fn items(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    let layer = layer_or_404(&state, &id)?;
    // `asof=`: the layer as it stood then, rebuilt from the feature history.
    let (layer, query_params) = super::compare::as_of(&state, &id, layer, &params).await?;
    let format = Format::negotiate(&params, &headers)?;
    let within = query::resolve_within(&state.app.engine, &params)?;
    let (query, selection, tag, centre, layer_size, revision) = {
        let idx = layer.read();
        let FeatureQuery { query, selection } = query::parse(&query_params, &idx, within)?;
        let tag = etag(&[
            "items",
            &id,
            &idx.revision.to_string(),
            &base_url(&headers),
            format.code(),
            &params.canonical(),
        ]);
        let centre = idx.stats().extent.map_or(106.0, |e| e.center().x);
        (query, selection, tag, centre, idx.len(), idx.revision)
    };
    let (offset, limit) = (query.offset, query.limit);
    let out_crs = query::parse_crs(&params, "crs")?.map(|c| c.resolve(centre));
    let base = base_url(&headers);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    // Plain paging of a layer is cheap; a filter, sort or distance over a large layer is not.
    let plain = query.filter.is_none()
        && query.filters.is_empty()
        && query.near.is_none()
        && query.sort.is_empty()
        && query.bbox.is_none();
    // A plain page in GeoJSON is written from the engine's compact features (issue 15).
    let direct =
        format != Format::Html && out_crs.is_none() && matches!(selection, PropertySelection::All);
    let heavy = layer_size > HEAVY_LAYER && !plain;
    // Slots name features of one revision of the layer: kept to check them against the revision
    // the page is written from.
    let page_query = direct.then(|| query.clone());
    let slots = match (direct, heavy) {
        (false, _) => None,
        (true, true) => {
            let l = std::sync::Arc::clone(&layer);
            let q = query.clone();
            state
                .heavy
                .run(move |budget| l.read().plain_page(&q, budget))
                .await?
        }
        // (an unlimited budget never stops the page)
        (true, false) => layer
            .read()
            .plain_page(&query, &crate::engine::Budget::unlimited())
            .ok()
            .flatten(),
    };
    let result = match &slots {
        Some(_) => crate::engine::QueryResult {
            features: vec![],
            distances: None,
            matched: 0,
        },
        None if heavy => {
            let layer = std::sync::Arc::clone(&layer);
            state
                .heavy
                .run(move |budget| layer.read().query_within(&query, budget))
                .await?
        }
        None => layer.read().query(&query),
    };
    let idx = layer.read();
    // A write between taking the slots and this guard moves them: take them again under it
    // (the page then shows the newer revision, as a request that came a moment later would).
    let slots = match (slots, page_query) {
        (Some(_), Some(q)) if idx.revision != revision => idx
            .plain_page(&q, &crate::engine::Budget::unlimited())
            .ok()
            .flatten(),
        (slots, _) => slots,
    };
    let (returned, matched) = match &slots {
        Some(p) => (p.slots.len(), p.matched),
        None => (result.features.len(), result.matched),
    };
    let path = format!("/collections/{id}/items");
    let json_type = content_type(format, true);
    let page_link = |rel: &str, off: usize| {
        let q = params.with("offset", Some(&off.to_string()));
        let kind = if format == Format::Html {
            "text/html"
        } else {
            json_type
        };
        link(format!("{base}{path}?{q}"), rel, kind, rel)
    };
    let mut links = self_links(&base, &path, &params, format, "application/geo+json");
    if offset + returned < matched {
        links.push(page_link("next", offset + returned));
    }
    if offset > 0 {
        links.push(page_link("prev", offset.saturating_sub(limit)));
    }
    links.push(link(
        format!("{base}/collections/{id}"),
        "collection",
        "application/json",
        &idx.layer.title_zh,
    ));
    let stamp = crate::store::now();

    if format == Format::Html {
        let title = format!("{} {}", idx.layer.title_zh, idx.layer.title_en);
        let mut body = format!(
            "<p>{} of {} features (offset {offset}). 共 {} 个要素。</p>",
            returned, matched, matched
        );
        body.push_str(&html::links(&Value::Array(links)));
        // The name first (linked to the feature), then id, geometry and the other properties,
        // under Chinese headers (html::key_label).
        let has_name = selection_wants(&selection, "name");
        let columns: Vec<&String> = idx
            .property_stats()
            .keys()
            .filter(|k| k.as_str() != "name" && selection_wants(&selection, k))
            .take(12)
            .collect();
        body.push_str("<table><tr>");
        let head = if has_name {
            &["name", "id", "geometry"][..]
        } else {
            &["id", "geometry"][..]
        };
        for c in head
            .iter()
            .copied()
            .chain(columns.iter().map(|c| c.as_str()))
        {
            let _ = write!(body, "<th>{}</th>", html::key_label(c));
        }
        body.push_str("</tr>");
        for f in &result.features {
            let kind = f.geometry.as_ref().map(geometry_kind).unwrap_or("—");
            let href = format!(
                "/collections/{}/items/{}?f=html",
                html::escape(&id),
                percent_encoding::utf8_percent_encode(&f.id, percent_encoding::NON_ALPHANUMERIC)
            );
            body.push_str("<tr>");
            if has_name {
                let name = f.property("name").unwrap_or(Value::Null);
                let text = name
                    .as_str()
                    .map(html::escape)
                    .unwrap_or_else(|| html::escape(&f.id));
                let _ = write!(body, "<td><a href=\"{href}\">{text}</a></td>");
            }
            let _ = write!(
                body,
                "<td><a href=\"{href}\">{}</a></td><td>{kind}</td>",
                html::escape(&f.id)
            );
            for c in &columns {
                let v = f.property(c).unwrap_or(Value::Null);
                let _ = write!(body, "<td>{}</td>", html::value(&v));
            }
            body.push_str("</tr>");
        }
        body.push_str("</table>");
        return Ok(respond(
            content_type(format, true),
            Some(&tag),
            html::page(&title, &body),
        ));
    }

    let mut out = String::with_capacity(256 + returned * 512);
    let _ = write!(
        out,
        "{{\"type\":\"FeatureCollection\",\"numberMatched\":{},\"numberReturned\":{returned},\"timeStamp\":\"{stamp}\",\"links\":{},\"features\":[",
        matched,
        Value::Array(links)
    );
    let stored = slots.iter().flat_map(|p| &p.slots);
    for (i, c) in stored.filter_map(|&s| idx.compact(s)).enumerate() {
        if i > 0 {
            out.push(',');
        }
        geojson::write_stored_feature(
            &mut out,
            c.id(),
            c.name(),
            c.admin_code(),
            c.properties_json(),
            c.wkb(),
            None,
        );
    }
    for (i, f) in result.features.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let extra: Vec<(&str, Value)> = match &result.distances {
            Some(d) => vec![("distance_m", json!((d[i] * 100.0).round() / 100.0))],
            None => vec![],
        };
        match &out_crs {
            Some(c) => {
                let t = query::to_output_crs(f, c)
                    .map_err(|e| ApiError::parameter("crs", &c.uri(), e))?;
                geojson::write_feature(&mut out, &t, &selection, None, &extra);
            }
            None => geojson::write_feature(&mut out, f, &selection, None, &extra),
        }
    }
    out.push_str("]}");
    let mut r = respond(json_type, Some(&tag), out);
    content_crs(&mut r, out_crs.as_ref());
    Ok(r)
}

/// The `Content-Crs` header (OGC API – Features Part 2): CRS84 unless another was asked.
fn content_crs(r: &mut Response, crs: Option<&Crs>) {
    let Some(crs) = crs else {
        r.headers_mut().insert(
            header::HeaderName::from_static("content-crs"),
            header::HeaderValue::from_static(CRS84_HEADER),
        );
        return;
    };
    let uri = crs.uri();
    if let Ok(v) = header::HeaderValue::from_str(&format!("<{uri}>")) {
        r.headers_mut()
            .insert(header::HeaderName::from_static("content-crs"), v);
    }
}

fn selection_wants(s: &PropertySelection, key: &str) -> bool {
    match s {
        PropertySelection::All => true,
        PropertySelection::Only(keys) => keys.iter().any(|k| k == key),
    }
}

fn geometry_kind(g: &geo::Geometry<f64>) -> &'static str {
    use geo::Geometry::*;
    match g {
        Point(_) => "Point",
        LineString(_) | Line(_) => "LineString",
        Polygon(_) | Rect(_) | Triangle(_) => "Polygon",
        MultiPoint(_) => "MultiPoint",
        MultiLineString(_) => "MultiLineString",
        MultiPolygon(_) => "MultiPolygon",
        GeometryCollection(_) => "GeometryCollection",
    }
}

/// The ETag of one feature's answer. Part 4: it starts with the feature's version, which
/// If-Match on PUT/PATCH/DELETE names.
pub(super) fn feature_etag(
    id: &str,
    fid: &str,
    version: i64,
    revision: u64,
    base: &str,
    format: Format,
    params: &Params,
) -> String {
    let (mut v, mut r) = (itoa::Buffer::new(), itoa::Buffer::new());
    let canonical = params.canonical();
    let digest = super::params::etag_digest(&[
        "feature",
        id,
        fid,
        v.format(version),
        r.format(revision),
        base,
        format.code(),
        &canonical,
    ]);
    // `W/"{version}.{digest:016x}"`.
    let mut tag = String::with_capacity(24 + 20);
    tag.push_str("W/\"");
    tag.push_str(v.format(version));
    tag.push('.');
    super::params::push_digest(&mut tag, digest);
    tag.push('"');
    tag
}

/// Appends the `self`, `alternate` and `collection` links of one feature's answer to `out` as
/// JSON text (the members in the order [`link`] gives them), each URL escaped piece by piece as
/// it is written (JSON escaping is per character, so the pieces' escapes are the whole's).
#[allow(clippy::too_many_arguments)]
fn feature_links(
    out: &mut String,
    layer_title: &str,
    id: &str,
    fid: &str,
    base: &str,
    params: &Params,
    format: Format,
) {
    let collection_url = |out: &mut String| {
        out.push('"');
        geojson::json_string_inner(out, base);
        out.push_str("/collections/");
        geojson::json_string_inner(out, id);
    };
    let item_url = |out: &mut String, f: &str| {
        collection_url(out);
        out.push_str("/items/");
        // Percent-encoded: letters, digits and `%XX` only, nothing to escape.
        for piece in percent_encoding::utf8_percent_encode(fid, percent_encoding::NON_ALPHANUMERIC)
        {
            out.push_str(piece);
        }
        out.push('?');
        if params.0.is_empty() {
            out.push_str("f=");
            out.push_str(f);
        } else {
            geojson::json_string_inner(out, &params.with("f", Some(f)));
        }
        out.push('"');
    };
    let (this, other) = match format {
        Format::Html => (
            ("html", "text/html", "HTML"),
            ("json", "application/geo+json", "JSON"),
        ),
        _ => (
            ("json", "application/geo+json", "JSON"),
            ("html", "text/html", "HTML"),
        ),
    };
    out.push('[');
    for (i, (f, kind, title)) in [this, other].into_iter().enumerate() {
        out.push_str(if i == 0 { "{\"href\":" } else { ",{\"href\":" });
        item_url(out, f);
        out.push_str(if i == 0 {
            ",\"rel\":\"self\",\"type\":"
        } else {
            ",\"rel\":\"alternate\",\"type\":"
        });
        geojson::json_string(out, kind);
        out.push_str(",\"title\":");
        geojson::json_string(out, title);
        out.push('}');
    }
    out.push_str(",{\"href\":");
    collection_url(out);
    out.push_str("\",\"rel\":\"collection\",\"type\":\"application/json\",\"title\":");
    geojson::json_string(out, layer_title);
    out.push_str("}]");
}

/// A feature's GeoJSON in the layer's own CRS with all its properties, written straight from
/// the engine's compact form (issue 15): the body of the router's plain JSON answer and of the
/// lean path's (`fast.rs`).
pub(super) fn stored_feature_body(
    idx: &LayerIndex,
    id: &str,
    fid: &str,
    stored: &crate::engine::Compact,
    base: &str,
    params: &Params,
    format: Format,
) -> String {
    stored.warm();
    // Sized once, by `write_stored_feature`.
    let mut out = String::new();
    geojson::write_stored_feature(
        &mut out,
        stored.id(),
        stored.name(),
        stored.admin_code(),
        stored.properties_json(),
        stored.wkb(),
        Some(&|out: &mut String| {
            feature_links(out, &idx.layer.title_zh, id, fid, base, params, format)
        }),
    );
    out
}

/// The response for a [`stored_feature_body`]: `fast.rs` writes the same headers in
/// `Lean::write_http1`.
pub(super) fn stored_feature_response(
    content_type: &'static str,
    tag: &str,
    body: String,
) -> Response {
    let mut r = respond(content_type, Some(tag), body);
    content_crs(&mut r, None);
    r
}

async fn feature(
    State(state): State<AppState>,
    Path((id, fid)): Path<(String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f", "properties", "crs"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let layer = layer_or_404(&state, &id)?;
    let idx = layer.read();
    // The engine keeps features compact: a plain JSON answer is written from that form
    // (issue 15); other answers decode the feature.
    let stored = idx.get_compact(&fid).ok_or_else(|| {
        ApiError::not_found(format!("collection '{id}' has no feature '{fid}'"))
            .with_details(json!({"collection": id, "feature": fid}))
    })?;
    let base = base_url(&headers);
    let tag = feature_etag(
        &id,
        &fid,
        stored.version,
        idx.revision,
        &base,
        format,
        &params,
    );
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    let selection = match params.get("properties")? {
        None => PropertySelection::All,
        Some(list) => {
            PropertySelection::Only(list.split(',').map(|k| k.trim().to_string()).collect())
        }
    };
    let out_crs = query::parse_crs(&params, "crs")?.map(|c| {
        let lon = stored
            .geometry()
            .and_then(|g| geo::BoundingRect::bounding_rect(&g))
            .map_or(106.0, |b| b.center().x);
        c.resolve(lon)
    });
    if out_crs.is_none() && matches!(selection, PropertySelection::All) && format != Format::Html {
        let body = stored_feature_body(&idx, &id, &fid, stored, &base, &params, format);
        return Ok(stored_feature_response(
            content_type(format, true),
            &tag,
            body,
        ));
    }
    let mut links = String::with_capacity(512);
    feature_links(
        &mut links,
        &idx.layer.title_zh,
        &id,
        &fid,
        &base,
        &params,
        format,
    );
    let Some(f) = idx.get(&fid) else {
        return Err(ApiError::not_found(format!(
            "collection '{id}' has no feature '{fid}'"
        )));
    };
    let transformed = match &out_crs {
        Some(c) => {
            Some(query::to_output_crs(&f, c).map_err(|e| ApiError::parameter("crs", &c.uri(), e))?)
        }
        None => None,
    };
    let f = transformed.as_ref().unwrap_or(&f);
    let mut out = String::new();
    geojson::write_feature(&mut out, f, &selection, Some(&links), &[]);
    if format == Format::Html {
        let doc: Value = serde_json::from_str(&out).map_err(ApiError::internal)?;
        let title = f.name.clone().unwrap_or_else(|| fid.clone());
        let mut body = format!(
            "<p>{} · <code>{}</code></p>",
            html::escape(&idx.layer.title_zh),
            html::escape(&fid)
        );
        body.push_str(&html::links(&doc["links"]));
        body.push_str("<h2>属性 Properties</h2>");
        body.push_str(&html::value(&doc["properties"]));
        let kind = f.geometry.as_ref().map(geometry_kind).unwrap_or("none");
        let _ = write!(body, "<h2>几何 Geometry</h2><p>{kind}</p>");
        return Ok(respond(
            content_type(format, true),
            Some(&tag),
            html::page(&title, &body),
        ));
    }
    let mut r = respond(content_type(format, true), Some(&tag), out);
    content_crs(&mut r, out_crs.as_ref());
    Ok(r)
}

/// POST /collections/{id}/items: a GeoJSON Feature or FeatureCollection, all or nothing.
/// 400 for an upload with unusable features: nothing was imported; `details` lists the problems.
fn invalid_features(e: &dyn std::fmt::Display, details: Value) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "InvalidFeatures",
        format!("nothing was imported: {e}"),
    )
    .with_details(details)
}

async fn add_items(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    if state.settings.read_only {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "ReadOnly",
            "this server was started with --read-only",
        ));
    }
    const ACCEPTED: [&str; 5] = [
        "application/geo+json",
        "application/json",
        "application/zip",
        "application/x-zip-compressed",
        "application/geopackage+sqlite3",
    ];
    let ct = super::params::media_type_essence(&headers).unwrap_or_default();
    let is_json = matches!(ct.as_str(), "application/geo+json" | "application/json");
    let is_zip = matches!(
        ct.as_str(),
        "application/zip" | "application/x-zip-compressed" | "application/x-zip"
    );
    let is_gpkg = ct == "application/geopackage+sqlite3";
    // Features may be posted by editors (stewards for reference layers); files are imports,
    // the stewards'.
    let needed = if is_zip || is_gpkg {
        Role::Steward
    } else {
        role_for_layer(&id)
    };
    let principal = require(&state, &caller, needed, "create", &id, &[]).await?;
    let actor = caller.actor(change_reason(&state, &headers, None)?);
    // Editors only create; scoped users' features are all checked before anything is written.
    let guarded = principal.role < Role::Steward || principal.scoped();
    if !(is_json || is_zip || is_gpkg) {
        return Err(super::params::unsupported_media_type(&ct, &ACCEPTED));
    }
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["crs"], |_| false)?;
    let crs = match params.get("crs")? {
        None => None,
        Some(c) => Some(Crs::parse(c).map_err(|e| ApiError::parameter("crs", c, e))?),
    };
    let layer = {
        let l = layer_or_404(&state, &id)?;
        let layer = l.read().layer.clone();
        layer
    };
    // Files are spooled to disk as they arrive (memory independent of their size); JSON is read.
    let max_body = state.settings.max_body_bytes;
    let (body, upload) = if is_json {
        (super::edit::body_bytes(body, max_body).await?, None)
    } else {
        let suffix = if is_gpkg { ".gpkg" } else { ".zip" };
        let file = super::edit::spool_upload(body, max_body, suffix).await?;
        (Bytes::new(), Some(file))
    };
    let import_error = |e: crate::formats::ImportError| {
        let details = match &e {
            crate::formats::ImportError::Features {
                problems,
                total,
                problems_total,
            } => {
                json!({"problems": problems, "problems_total": problems_total, "features_total": total})
            }
            // An upload that would unpack past the limits is too large, not malformed.
            crate::formats::ImportError::TooLarge(_) => {
                return ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "UnpackedTooLarge",
                    format!("nothing was imported: {e}"),
                )
            }
            _ => json!({}),
        };
        invalid_features(&e, details)
    };
    // How a failed import answers: bad input 400; a write that waited the whole busy timeout
    // for another writer 503 with Retry-After (nothing was written, the same request may be
    // sent again); anything else is ours, 500.
    let failed = |e: crate::app::AppError| -> Response {
        use crate::app::AppError;
        use crate::formats::geojson::DecodeError;
        use crate::store::StoreError;
        match e {
            AppError::Store(StoreError::Busy) => {
                let mut r = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Busy",
                    "another write to the database is in progress and did not finish in time; \
                     nothing was imported, send the request again shortly",
                )
                .into_response();
                r.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
                r
            }
            AppError::Import(e) => import_error(e).into_response(),
            // Found by the store as the features were written: named by id, not position.
            AppError::Store(StoreError::RepeatedId { layer, id }) => {
                let details = json!({
                    "problems": [{"id": &id, "problem": "appears more than once"}],
                    "problems_total": 1,
                });
                invalid_features(&StoreError::RepeatedId { layer, id }, details).into_response()
            }
            AppError::Decode(DecodeError::Syntax(e)) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "InvalidBody",
                format!("body is not JSON: {e}; nothing was imported"),
            )
            .into_response(),
            AppError::Decode(e) => {
                let details = match &e {
                    DecodeError::Features {
                        problems,
                        problems_total,
                        total,
                    } => {
                        json!({"problems": problems, "problems_total": problems_total, "features_total": total})
                    }
                    _ => json!({}),
                };
                invalid_features(&e, details).into_response()
            }
            other => ApiError::internal(other).into_response(),
        }
    };
    let (summaries, single, first_id) = if is_zip || is_gpkg {
        // Decoded (off the async workers) as it is written: memory independent of its size.
        let upload = upload.ok_or_else(|| ApiError::internal("upload not spooled"))?;
        let path = upload.path().to_path_buf();
        let input = if is_zip {
            crate::app::FileInput::ShapefileZip(path)
        } else {
            crate::app::FileInput::GeoPackage(path)
        };
        let done = super::edit::import_upload(
            &state, &caller, &principal, guarded, &id, input, crs, &actor,
        )
        .await;
        drop(upload);
        match done {
            Ok(s) => (s, false, None),
            Err(super::edit::UploadFailure::Refused(e)) => return Err(e),
            Err(super::edit::UploadFailure::Import(e)) => return Ok(failed(e)),
        }
    } else if guarded {
        let options = geojson::StreamOptions {
            crs,
            allow_single_feature: true,
            ..Default::default()
        };
        let mut features = Vec::new();
        let read = geojson::stream_feature_collection(
            serde_json::de::SliceRead::new(&body),
            &id,
            &options,
            &mut |f| {
                features.push(f);
                true
            },
        );
        let read = match read {
            Ok(r) => r,
            Err(e) => return Ok(failed(e.into())),
        };
        guard_posted(&state, &caller, &principal, &features).await?;
        match import_as(&state, features, &actor).await {
            Ok(s) => (s, read.single, read.first_id),
            Err(e) => return Ok(failed(e)),
        }
    } else {
        // Decoded feature by feature as it is written: no copy of the whole body as JSON values.
        let options = geojson::StreamOptions {
            crs,
            allow_single_feature: true,
            ..Default::default()
        };
        let input = crate::app::GeoJsonInput::Memory(Box::new(body));
        let done = crate::app::import_geojson_as(
            &state.app.store,
            &[],
            &id,
            input,
            options,
            ImportMode::Upsert,
            None,
            &actor,
        )
        .await;
        let done = match done {
            Ok(done) => state.app.catch_up().await.map(|_| done),
            Err(e) => Err(e),
        };
        match done {
            Ok(done) => (done.summaries, done.read.single, done.read.first_id),
            Err(e) => return Ok(failed(e)),
        }
    };
    let s = summaries.into_iter().find(|s| s.layer == layer.id);
    let (inserted, updated, revision) =
        s.map_or((0, 0, 0), |s| (s.inserted, s.updated, s.revision));
    let base = base_url(&headers);
    let mut r = (
        StatusCode::CREATED,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"collection": id, "inserted": inserted, "updated": updated, "revision": revision})
            .to_string(),
    )
        .into_response();
    if let (true, Some(fid)) = (single, first_id.filter(|f| !f.is_empty())) {
        let enc = percent_encoding::utf8_percent_encode(&fid, percent_encoding::NON_ALPHANUMERIC);
        if let Ok(v) =
            header::HeaderValue::from_str(&format!("{base}/collections/{id}/items/{enc}"))
        {
            r.headers_mut().insert(header::LOCATION, v);
        }
    }
    Ok(r)
}

/// Writes posted features on behalf of `actor` and shows them to readers.
async fn import_as(
    state: &AppState,
    features: Vec<Feature>,
    actor: &crate::store::Actor,
) -> Result<Vec<crate::store::ImportSummary>, crate::app::AppError> {
    let s = state
        .app
        .store
        .import_as(&[], features, ImportMode::Upsert, None, actor)
        .await?;
    state.app.catch_up().await?;
    Ok(s)
}

/// Before an editor's or a scoped steward's POST is written: editors may only create (409 for
/// an id that exists), and every feature, and what it replaces, must lie in the user's scope.
pub(super) async fn guard_posted(
    state: &AppState,
    caller: &Caller,
    p: &crate::auth::Principal,
    features: &[Feature],
) -> ApiResult<()> {
    for f in features.iter().filter(|f| !f.id.is_empty()) {
        let old = state
            .app
            .engine
            .layer(&f.layer)
            .and_then(|l| l.read().get(&f.id));
        let Some(old) = old else {
            continue;
        };
        if p.role < Role::Steward {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "FeatureExists",
                format!(
                    "collection '{}' already has feature '{}': change it with PUT or PATCH and If-Match; nothing was written",
                    f.layer, f.id
                ),
            )
            .with_details(json!({"collection": f.layer, "feature": f.id})));
        }
        check_scope(state, caller, p, "create", &[&old]).await?;
    }
    let all: Vec<&Feature> = features.iter().collect();
    check_scope(state, caller, p, "create", &all).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A feature's ETag is `W/"{version}.{digest}"`, the digest XXH3 of its parts in hex.
    #[test]
    fn feature_etags_name_the_version_and_the_digest() {
        for (version, revision) in [(1, 0), (-7, 42), (i64::MAX, u64::MAX)] {
            let params = Params::default();
            let tag = feature_etag(
                "parcels",
                "17",
                version,
                revision,
                "http://h",
                Format::Json,
                &params,
            );
            let digest = crate::http::params::etag_digest(&[
                "feature",
                "parcels",
                "17",
                &version.to_string(),
                &revision.to_string(),
                "http://h",
                Format::Json.code(),
                "",
            ]);
            assert_eq!(tag, format!("W/\"{version}.{digest:016x}\""));
            // Leading zeros kept: the digest is always 16 digits.
            assert_eq!(tag.len(), format!("W/\"{version}.\"").len() + 16);
        }
    }

    /// The links written as text are the JSON that `self_links` and `link` build as values.
    #[test]
    fn feature_links_text_is_the_links_values_json() {
        for (title, fid, query, format) in [
            ("地块", "17", None, Format::Json),
            (
                "Parcels \"A\"\\B\u{1}",
                "村/1 2",
                Some("f=json"),
                Format::PlainJson,
            ),
            (
                "重点帮扶村",
                "a-b_c.d~e",
                Some("properties=name&crs=x"),
                Format::Html,
            ),
        ] {
            let params = Params::parse(query);
            let base = "http://gis.example.org:8080";
            let enc =
                percent_encoding::utf8_percent_encode(fid, percent_encoding::NON_ALPHANUMERIC);
            let path = format!("/collections/parcels/items/{enc}");
            let mut values = self_links(base, &path, &params, format, "application/geo+json");
            values.push(link(
                format!("{base}/collections/parcels"),
                "collection",
                "application/json",
                title,
            ));
            let mut text = String::new();
            feature_links(&mut text, title, "parcels", fid, base, &params, format);
            assert_eq!(text, Value::Array(values).to_string());
        }
    }
}
