//! The OpenAPI 3.0 definition at `/api`: every endpoint and parameter, with the layer ids as an enum.

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use std::fmt::Write as _;

use super::error::ApiResult;
use super::html;
use super::params::{base_url, etag, not_modified, respond, Format, Params};
use super::query::{DEFAULT_LIMIT, MAX_LIMIT};
use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/api", get(api))
}

fn problem() -> Value {
    json!({"description": "Problem: {\"code\", \"description\"} naming the parameter or resource",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}})
}

fn ok(description: &str, types: &[&str]) -> Value {
    let mut content = serde_json::Map::new();
    for t in types {
        content.insert((*t).into(), json!({}));
    }
    json!({"description": description, "content": content})
}

fn qp(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// A non-empty string: an empty parameter value (`?filter=`) is answered 400.
fn text() -> Value {
    json!({"type": "string", "minLength": 1})
}

/// 503 from the heavy-request pool: over `--request-timeout`, or the queue is full.
fn unavailable() -> Value {
    json!({"description": "Heavy request over the time limit (--request-timeout) or too many waiting (--heavy-queue), or (for writes) another write held the database past the busy timeout; the body names the limit and Retry-After says when to come back",
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}})
}

fn unchanged() -> Value {
    json!({"description": "Not modified (If-None-Match matched the ETag)"})
}

/// Parameters of feature queries beyond Part 1 Core (Part 2 CRS, Part 3 filtering, shortcuts).
fn query_params() -> Vec<Value> {
    let s = text;
    vec![
        qp("filter", "CQL2 filter (text by default): comparisons, LIKE, IN, BETWEEN, IS NULL, AND/OR/NOT, S_INTERSECTS/S_WITHIN/S_CONTAINS/S_DISJOINT … with WKT geometry", s()),
        qp("filter-lang", "cql2-text (default) or cql2-json", json!({"type": "string", "enum": ["cql2-text", "cql2-json"]})),
        qp("filter-crs", "CRS of the filter's geometry literals (default CRS84)", s()),
        qp("sortby", "comma-separated property names, '-' in front for descending", s()),
        qp("within", "features inside an admin unit, by geometry: a 6/9/12-digit code, a name, or town/village", s()),
        qp("intersects", "features meeting a WKT geometry (lon/lat)", s()),
        qp("near", "lon,lat: features within `distance` metres (geodesic), nearest first, with distance_m", s()),
        qp("distance", "metres, with `near`", json!({"type": "number", "minimum": 0})),
        qp("plan", "only features of this plan (000 … 004, see /plans); layers without plans (admin layers) ignore it", s()),
        qp("crs", "output CRS: CRS84, EPSG:4326/4490 (lat,lon), EPSG:3857, EPSG:4513–4554 (CGCS2000 Gauss-Krüger), auto-gk, urn:yizhangtu:crs:gcj02, urn:yizhangtu:crs:bd09", s()),
    ]
}

/// The planners' endpoints, tiles and exports.
fn extra_paths(problem: &dyn Fn() -> Value) -> Value {
    let s = text;
    let f = json!({"$ref": "#/components/parameters/f"});
    let code = json!({"name": "code", "in": "path", "required": true, "description": "admin code or name", "schema": text()});
    let layers = qp(
        "layers",
        "comma-separated layer ids; a layer named twice counts once; at most 64 distinct",
        s(),
    );
    let asof = qp("asof", "RFC 3339 time: the layers as they stood then, from the feature history (admin units are today's)", s());
    let plan = qp(
        "plan",
        "only features of this plan (000 … 004, see /plans); layers without plans are unaffected",
        s(),
    );
    let get = |summary: &str, op: &str, params: Vec<Value>, types: &[&str]| {
        let mut content = serde_json::Map::new();
        for t in types {
            content.insert((*t).into(), json!({}));
        }
        json!({"get": {"summary": summary, "operationId": op, "parameters": params,
            "responses": {"200": {"description": summary, "content": content}, "400": problem(), "404": problem()}}})
    };
    // Heavy resources: computed on a bounded pool under the request deadline.
    let heavy = |summary: &str, op: &str, params: Vec<Value>, types: &[&str], etag: bool| {
        let mut doc = get(summary, op, params, types);
        let r = &mut doc["get"]["responses"];
        r["503"] = unavailable();
        if etag {
            r["304"] = unchanged();
        }
        doc
    };
    let tile_responses = || {
        json!({"200": {"description": "Mapbox Vector Tile", "content": {"application/vnd.mapbox-vector-tile": {"schema": {"type": "string", "format": "binary"}}}},
               "204": {"description": "No feature in the tile"},
               "304": unchanged(),
               "400": problem(), "404": problem(),
               "413": {"description": "The tile would exceed 16 MiB: ask for fewer layers, a higher zoom or a filter",
                       "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}},
               "503": unavailable()})
    };
    let tile_get = |summary: &str, op: &str, params: Vec<Value>| json!({"get": {"summary": summary, "operationId": op, "parameters": params, "responses": tile_responses()}});
    let zoom = |name: &str| json!({"name": name, "in": "path", "required": true, "description": "zoom level 0–24", "schema": {"type": "integer", "minimum": 0, "maximum": 24}});
    let index = |name: &str| json!({"name": name, "in": "path", "required": true, "description": "0 to 2^zoom − 1 (400 beyond)", "schema": {"type": "integer", "minimum": 0}});
    let export_types = [
        "application/geo+json",
        "application/geopackage+sqlite3",
        "application/zip",
        "text/csv",
        "text/plain",
    ];
    json!({
        "/areas/{code}": {"get": {"summary": "An admin unit: parents, children, area in m², ha and 亩", "operationId": "getArea",
            "parameters": [code.clone(), f.clone()],
            "responses": {"200": ok("the unit", &["application/json", "text/html"]), "304": unchanged(), "400": problem(), "404": problem()}}},
        "/areas/{code}/features": heavy("Features of the given layers in the unit, with the share of each inside", "getAreaFeatures",
            vec![code.clone(), layers.clone(), qp("relation", "intersects (default) or within", json!({"type": "string", "enum": ["intersects", "within"]})), asof.clone(), plan.clone(), f.clone()],
            &["application/geo+json", "text/html"], true),
        "/areas/{code}/coverage": heavy("Coverage of the unit per layer (count, union area in m²/ha/亩, share, sums), optionally per town or village; a feature counts when it is in the unit by the membership rule, and a town's unit-wide items (drawn as the whole town) count in the town, not in its villages (unit_wide_features_not_counted)", "getAreaCoverage",
            vec![code, layers.clone(), qp("by", "town or village", json!({"type": "string", "enum": ["town", "village"]})), asof.clone(), plan.clone(), f.clone()],
            &["application/json", "text/html"], true),
        "/analysis/coverage": {"post": {"summary": "Coverage of a drawn (Multi)Polygon or of {\"area\": code}", "operationId": "postCoverage",
            "parameters": [layers.clone(), qp("by", "town or village", json!({"type": "string", "enum": ["town", "village"]})), asof.clone(), plan.clone(), f.clone()],
            "requestBody": {"required": true, "description": "A GeoJSON Polygon or MultiPolygon (bare or as a Feature; valid, without self-intersections), or {\"area\": \"<code or name>\"}; `layers`, `by`, `asof` and `plan` may also be members",
                "content": {"application/geo+json": {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}}}},
            "responses": {"200": ok("coverage figures", &["application/json", "text/html"]), "400": problem(), "404": problem(), "413": problem(), "415": problem(), "503": unavailable()}}},
        "/tiles/{layers}/{z}/{x}/{y}.mvt": tile_get("Mapbox Vector Tile of one or more layers (204 when empty); a layer named twice is drawn once", "getTile",
            vec![json!({"name": "layers", "in": "path", "required": true, "description": "comma-separated layer ids, at most 64 distinct", "schema": text()}),
                 zoom("z"), index("x"), index("y"),
                 qp("filter", "CQL2 text filter", s()), qp("properties", "properties to include", s()), qp("crs", "GCJ-02/BD-09 for Chinese basemaps", s()),
                 qp("plan", "only features of this plan (000 … 004); layers without plans are unaffected", s()),
                 qp("asof", "RFC 3339 time: the layers as they stood then (not cached)", s())]),
        "/tiles/{layers}.json": get("TileJSON 3.0", "getTileJson", vec![json!({"name": "layers", "in": "path", "required": true, "schema": text()})], &["application/json"]),
        "/collections/{collectionId}/tiles/WebMercatorQuad/{tileMatrix}/{tileRow}/{tileCol}": tile_get("OGC API – Tiles form of a layer's vector tiles", "getCollectionTile",
            vec![json!({"$ref": "#/components/parameters/collectionId"}), zoom("tileMatrix"), index("tileRow"), index("tileCol")]),
        "/export": {"get": {"summary": "Download layers of an area, box or filter", "operationId": "export",
            "parameters": [layers.clone(), qp("area", "admin code or name", s()), qp("bbox", "minLon,minLat,maxLon,maxLat", s()), qp("filter", "CQL2 text", s()),
                 qp("plan", "only features of this plan (000 … 004); layers without plans are unaffected", s()), asof.clone(),
                 qp("format", "geojson (streamed), gpkg, shp (zip), csv, txt (界址点坐标交换格式)", json!({"type": "string", "enum": ["geojson", "gpkg", "shp", "csv", "txt"]})),
                 qp("crs", "output CRS (as for items; txt is always Gauss-Krüger)", s()), qp("encoding", "gbk (default) or utf-8, for Shapefiles", json!({"type": "string", "enum": ["gbk", "utf-8"]}))],
            "responses": {"200": ok("the file", &export_types), "400": problem(), "404": problem(),
                "413": {"description": "The export would need more memory than --max-export-mb (estimated before it is built); GeoJSON is streamed and not bound by it",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/exception"}}}},
                "503": unavailable()}}},
        "/export/land-consolidation": heavy("The land-consolidation bundle of an area: Shapefiles in its Gauss-Krüger zone, GeoPackage, 亩 per village CSV, TXT, README", "exportLandConsolidation",
            vec![json!({"name": "area", "in": "query", "required": true, "description": "admin code or name", "schema": text()}), layers.clone(), asof.clone(), plan.clone()],
            &["application/zip"], false),
        "/map": get("The built-in map (MapLibre GL JS)", "getMap", vec![], &["text/html"]),
        "/map/config.json": {"get": {"summary": "Settings the map page needs: {\"tianditu_key\": string|null} (--tianditu-key)", "operationId": "getMapConfig",
            "responses": {"200": ok("{\"tianditu_key\": …}", &["application/json"])}}},
        "/me": {"get": {"summary": "The signed-in user (name, role, the districts/towns they may write in); 401 without a valid bearer token", "operationId": "getMe",
            "responses": {"200": ok("{\"name\", \"role\", \"scoped\", \"scope\": [{\"code\", \"name\"}]}", &["application/json"]), "401": problem(), "429": problem()}}},
        "/healthz": {"get": {"summary": "Liveness and what the heavy-request pool is doing; never queued", "operationId": "getHealth",
            "responses": {"200": ok("{\"status\": \"ok\", \"heavy\": {…}}", &["application/json"])}}},
    })
}

pub fn document(base: &str, layer_ids: Vec<String>) -> Value {
    let f = json!({"$ref": "#/components/parameters/f"});
    let standard = |summary: &str, op: &str, params: Vec<Value>, types: &[&str]| {
        json!({"get": {
            "summary": summary, "operationId": op, "parameters": params,
            "responses": {"200": ok(summary, types), "304": unchanged(),
                          "400": problem(), "404": problem()}}})
    };
    let mut doc = json!({
        "openapi": "3.0.3",
        "info": {
            "title": "yizhangtu (一张图) API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "OGC API – Features for the spatial plans of Chongqing districts. Coordinates are CRS84 longitude/latitude (data stored in CGCS2000, EPSG:4490). An empty parameter value (`?filter=`) is a 400 naming the parameter. Heavy requests (coverage, area features, exports, tiles, filters over large layers) run on a bounded pool under a time limit: over it, or with the queue full, the answer is 503 naming the limit, with Retry-After. Errors are JSON {code, description, …}, also for 413/414/431.",
            "license": {"name": "MIT OR Apache-2.0"}
        },
        "servers": [{"url": base}],
        "paths": {
            "/": standard("Landing page", "getLandingPage", vec![f.clone()], &["application/json", "text/html"]),
            "/conformance": standard("Conformance classes", "getConformance", vec![f.clone()], &["application/json", "text/html"]),
            "/api": standard("This OpenAPI definition", "getApi", vec![f.clone()], &["application/vnd.oai.openapi+json;version=3.0", "text/html"]),
            "/collections": standard("Layers (collections)", "getCollections", vec![f.clone()], &["application/json", "text/html"]),
            "/collections/{collectionId}": standard("One layer", "describeCollection",
                vec![json!({"$ref": "#/components/parameters/collectionId"}), f.clone()], &["application/json", "text/html"]),
            "/collections/{collectionId}/queryables": standard("Properties a layer can be filtered on (JSON Schema)", "getQueryables",
                vec![json!({"$ref": "#/components/parameters/collectionId"}), f.clone()], &["application/schema+json", "text/html"]),
            "/collections/{collectionId}/items": {
                "get": {
                    "summary": "Features of a layer", "operationId": "getFeatures",
                    "description": "Any property of the layer (see its queryables) can also be given as a parameter to select features whose property equals the value, e.g. ?name=龙水镇.",
                    "parameters": [
                        {"$ref": "#/components/parameters/collectionId"},
                        {"$ref": "#/components/parameters/bbox"},
                        {"$ref": "#/components/parameters/bbox-crs"},
                        {"$ref": "#/components/parameters/limit"},
                        {"$ref": "#/components/parameters/offset"},
                        {"$ref": "#/components/parameters/datetime"},
                        {"$ref": "#/components/parameters/properties"},
                        f.clone(),
                        {"name": "propertyFilters", "in": "query", "required": false, "style": "form", "explode": true,
                         "description": "property=value equality filters",
                         "schema": {"type": "object", "additionalProperties": {"type": "string"}}}
                    ],
                    "responses": {"200": ok("A page of features, with next/prev links", &["application/geo+json", "application/json", "text/html"]),
                                  "304": unchanged(), "400": problem(), "404": problem(), "503": unavailable()}
                },
                "post": {
                    "summary": "Add or update features (a GeoJSON Feature or FeatureCollection), all or nothing",
                    "operationId": "addFeatures",
                    "parameters": [{"$ref": "#/components/parameters/collectionId"}, qp("crs", "CRS of the upload when it does not say", text())],
                    "requestBody": {"required": true, "description": "A GeoJSON Feature or FeatureCollection with valid geometry, a zipped Shapefile or a GeoPackage",
                        "content": {"application/geo+json": {"schema": {"type": "object"}}, "application/json": {"schema": {"type": "object"}},
                                    "application/zip": {"schema": {"type": "string", "format": "binary"}},
                                    "application/geopackage+sqlite3": {"schema": {"type": "string", "format": "binary"}}}},
                    "responses": {"201": ok("Counts of inserted and updated features", &["application/json"]),
                                  "400": problem(), "403": problem(), "404": problem(), "413": problem(), "415": problem(),
                                  "503": unavailable()}
                }
            },
            "/collections/{collectionId}/items/{featureId}": standard("One feature", "getFeature",
                vec![json!({"$ref": "#/components/parameters/collectionId"}), json!({"$ref": "#/components/parameters/featureId"}), f.clone()],
                &["application/geo+json", "application/json", "text/html"]),
        },
        "components": {
            "parameters": {
                "f": {"name": "f", "in": "query", "required": false, "description": "Representation: json (geojson) or html; otherwise the Accept header decides",
                      "schema": {"type": "string", "enum": ["json", "geojson", "html"]}},
                "collectionId": {"name": "collectionId", "in": "path", "required": true, "schema": {"type": "string", "enum": layer_ids}},
                "featureId": {"name": "featureId", "in": "path", "required": true, "schema": text()},
                "bbox": {"name": "bbox", "in": "query", "required": false, "style": "form", "explode": false,
                         "description": "minLon,minLat,maxLon,maxLat in CRS84 (6 numbers with heights also accepted; heights ignored)",
                         "schema": {"type": "array", "minItems": 4, "maxItems": 6, "items": {"type": "number"}}},
                "bbox-crs": {"name": "bbox-crs", "in": "query", "required": false,
                             "description": "CRS of bbox (Part 2); CRS84 is documented here, the others of /collections/{id} `crs` are accepted too",
                             "schema": {"type": "string", "format": "uri", "enum": ["http://www.opengis.net/def/crs/OGC/1.3/CRS84"]}},
                "limit": {"name": "limit", "in": "query", "required": false,
                          "description": format!("Page size, at most {MAX_LIMIT}: larger values are accepted and reduced to {MAX_LIMIT} (numberReturned says how many came)"),
                          "schema": {"type": "integer", "minimum": 1, "default": DEFAULT_LIMIT}},
                "offset": {"name": "offset", "in": "query", "required": false, "description": "Features to skip (the next/prev links set it)",
                           "schema": {"type": "integer", "minimum": 0, "default": 0}},
                "datetime": {"name": "datetime", "in": "query", "required": false,
                             "description": "RFC 3339 date, date-time or interval (open ends `..`, e.g. ../2025-12-31; a bare year means the whole year): features whose period (start_date … end_date) overlaps it, on layers with periods (see extent.temporal); other layers ignore it",
                             "schema": text()},
                "properties": {"name": "properties", "in": "query", "required": false, "style": "form", "explode": false,
                               "description": "Comma-separated property names to return", "schema": {"type": "array", "minItems": 1, "items": text()}}
            },
            "schemas": {
                "exception": {"type": "object", "required": ["code"], "properties": {"code": {"type": "string"}, "description": {"type": "string"}}}
            }
        }
    });
    if let Some(paths) = doc["paths"].as_object_mut() {
        if let Value::Object(extra) = extra_paths(&problem) {
            paths.extend(extra);
        }
        if let Value::Object(extra) = super::plans::openapi_paths() {
            paths.extend(extra);
        }
        if let Value::Object(extra) = super::ops::openapi_paths() {
            paths.extend(extra);
        }
    }
    if let Some(params) =
        doc["paths"]["/collections/{collectionId}/items"]["get"]["parameters"].as_array_mut()
    {
        params.extend(query_params());
    }
    super::edit::add_openapi(&mut doc);
    limit_errors(&mut doc);
    html_errors(&mut doc);
    doc
}

/// The limits every request is held to, on every operation: 414 for a request target over
/// `MAX_URI_BYTES`, 431 for more than `MAX_HEADER_FIELDS` header fields or `MAX_HEADER_BYTES` of
/// them, and 413 for a body over `--max-body-bytes` where there is a body. The problem names the
/// limit (`limit`, `max`); hyper's own answers for these are rewritten to the same JSON.
fn limit_errors(doc: &mut Value) {
    use super::{MAX_HEADER_BYTES, MAX_HEADER_FIELDS, MAX_URI_BYTES};
    let limited = |description: String| {
        json!({"description": description,
               "content": {"application/json": {"schema": {"allOf": [
                   {"$ref": "#/components/schemas/exception"},
                   {"type": "object", "properties": {"limit": {"type": "string"}, "max": {"type": "integer"}}}]}}}})
    };
    let uri = limited(format!(
        "Request target longer than {MAX_URI_BYTES} bytes (`limit`: uri-bytes)"
    ));
    let headers = limited(format!(
        "More than {MAX_HEADER_FIELDS} header fields (`limit`: header-count) or more than {MAX_HEADER_BYTES} bytes of them (header-bytes)"
    ));
    let body = limited(
        "Request body over --max-body-bytes (`limit`: body-bytes), or an upload that would unpack or decode past its limits".into(),
    );
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for op in paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|m| m.values_mut())
    {
        let has_body = op.get("requestBody").is_some();
        let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
            continue;
        };
        responses.insert("414".into(), uri.clone());
        responses.insert("431".into(), headers.clone());
        if has_body && !responses.contains_key("413") {
            responses.insert("413".into(), body.clone());
        }
    }
}

/// Errors come as HTML pages to whoever asks for HTML (`f=html`, a browser's Accept; see
/// `html::html_errors`): every error response that is JSON may also be `text/html`.
fn html_errors(doc: &mut Value) {
    let Some(paths) = doc["paths"].as_object_mut() else {
        return;
    };
    for item in paths.values_mut() {
        for op in item
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let Some(responses) = op.get_mut("responses").and_then(Value::as_object_mut) else {
                continue;
            };
            for (status, r) in responses.iter_mut() {
                let error = status
                    .as_bytes()
                    .first()
                    .is_some_and(|c| *c == b'4' || *c == b'5');
                if let Some(content) = r.get_mut("content").and_then(Value::as_object_mut) {
                    if error && content.contains_key("application/json") {
                        content.insert("text/html".into(), json!({"schema": {"type": "string"}}));
                    }
                }
            }
        }
    }
}

async fn api(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let params = Params::parse(q.as_deref());
    params.reject_unknown(&["f"], |_| false)?;
    params.reject_empty()?;
    let format = Format::negotiate(&params, &headers)?;
    let base = base_url(&headers);
    let ids = state.app.engine.layer_ids();
    let tag = etag(&["api", &base, format.code(), &ids.join(",")]);
    if let Some(r) = not_modified(&headers, &tag) {
        return Ok(r);
    }
    let doc = document(&base, ids);
    if format != Format::Html {
        return Ok(respond(
            "application/vnd.oai.openapi+json;version=3.0",
            Some(&tag),
            doc.to_string(),
        ));
    }
    let mut body = String::from("<p>OpenAPI 3.0: <a href=\"/api?f=json\">/api?f=json</a></p><table><tr><th>Path</th><th>Method</th><th>Summary</th><th>Parameters</th></tr>");
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let params: Vec<String> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let name = p["$ref"]
                        .as_str()
                        .map(|r| r.rsplit('/').next().unwrap_or(r).to_string());
                    name.unwrap_or_else(|| p["name"].as_str().unwrap_or("").to_string())
                })
                .collect();
            let _ = write!(
                body,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                html::escape(path),
                method.to_uppercase(),
                html::escape(op["summary"].as_str().unwrap_or("")),
                html::escape(&params.join(", "))
            );
        }
    }
    body.push_str("</table><h2>Parameters</h2>");
    body.push_str(&html::value(&doc["components"]["parameters"]));
    Ok(respond(
        "text/html; charset=utf-8",
        Some(&tag),
        html::page("API", &body),
    ))
}
