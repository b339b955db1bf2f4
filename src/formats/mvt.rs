//! Mapbox Vector Tile (MVT 2.1) encoding: tile math, clipping, simplification, quantisation, protobuf.
//! Pure functions over lon/lat geometries, built (geo) or read in place from WKB; the engine
//! supplies the candidate features and [`TileWriter`] takes them one at a time (issue 15).
//!
//! Pipeline per geometry part: project lon/lat to tile units (Web Mercator, y down) → clip to the
//! tile plus [`BUFFER`] → simplify within [`SIMPLIFY_TOLERANCE`] → round to integers → drop
//! consecutive duplicates and degenerate parts → fix polygon winding → command integers.
//!
//! Choices worth knowing:
//! - A `GeometryCollection` becomes one feature of its highest dimension that survives clipping
//!   (polygons, else lines, else points); lower-dimension members are dropped. This mirrors
//!   PostGIS `ST_AsMVTGeom` and keeps the feature's id unique within its layer.
//! - Polygons are clipped per ring with Sutherland–Hodgman against the buffered square. A concave
//!   ring can leave zero-width slivers along the buffer edge; they lie outside the visible tile.
//! - Coordinates that are not finite are skipped; latitudes are clamped to ±[`MAX_LATITUDE`];
//!   nothing wraps across the antimeridian.
//! - Layers and features with no surviving geometry are left out; no surviving feature at all
//!   gives an empty `Vec` (the HTTP layer answers 204).

use std::collections::HashMap;
use std::f64::consts::PI;
use std::fmt;

use geo::{Coord, Geometry, LineString, Rect};

/// Tile units along each side of a tile, as written into every layer.
pub const EXTENT: u32 = 4096;
/// Tile units of buffer around the tile when clipping, so strokes and labels continue seamlessly.
pub const BUFFER: u32 = 64;
/// Deepest zoom accepted by [`TileId::new`].
pub const MAX_ZOOM: u8 = 24;
/// Latitude limit of Web Mercator (the square world); beyond it latitudes are clamped.
pub const MAX_LATITUDE: f64 = 85.051_128_779_806_59;
/// Simplification tolerance in tile units, applied after clipping and before rounding. Half a
/// unit removes only detail that rounding to the integer grid would blur anyway, so the output
/// stays within one tile unit of the input geometry.
pub const SIMPLIFY_TOLERANCE: f64 = 0.5;

/// Nesting depth past which geometry collections are ignored, so hostile input cannot blow
/// the stack.
const MAX_COLLECTION_DEPTH: u32 = 64;
/// Largest command count the 29-bit count field can hold.
const MAX_COMMAND_COUNT: usize = (1 << 29) - 1;

/// A tile address in the XYZ scheme of WebMercatorQuad: `y` counts down from the north.
///
/// ```
/// use yizhangtu::formats::mvt::TileId;
/// let t = TileId::new(12, 3251, 1695).unwrap();
/// assert!(t.bounds_lonlat().min().x < 105.76205 && 105.76205 < t.bounds_lonlat().max().x);
/// assert_eq!(TileId::new(3, 9, 0).unwrap_err().to_string(), "x = 9 is outside 0..=7 at zoom 3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TileId {
    pub z: u8,
    pub x: u32,
    pub y: u32,
}

/// A tile address outside the pyramid; `Display` names the parameter and its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TileError {
    #[error("z = {z} is outside 0..={MAX_ZOOM}")]
    Zoom { z: u32 },
    #[error("x = {x} is outside 0..={max} at zoom {z}")]
    X { x: u32, z: u8, max: u32 },
    #[error("y = {y} is outside 0..={max} at zoom {z}")]
    Y { y: u32, z: u8, max: u32 },
}

impl TileError {
    /// The offending parameter: `"z"`, `"x"` or `"y"`.
    pub fn parameter(&self) -> &'static str {
        match self {
            TileError::Zoom { .. } => "z",
            TileError::X { .. } => "x",
            TileError::Y { .. } => "y",
        }
    }
}

impl TileId {
    /// Validates z in `0..=24` and x, y in `0..2^z`.
    pub fn new(z: u32, x: u32, y: u32) -> Result<TileId, TileError> {
        if z > u32::from(MAX_ZOOM) {
            return Err(TileError::Zoom { z });
        }
        let z = z as u8;
        let max = (1u32 << z) - 1;
        if x > max {
            return Err(TileError::X { x, z, max });
        }
        if y > max {
            return Err(TileError::Y { y, z, max });
        }
        Ok(TileId { z, x, y })
    }

    /// The tile's extent in lon/lat degrees (south-west to north-east).
    pub fn bounds_lonlat(&self) -> Rect<f64> {
        self.bounds_at(0.0)
    }

    /// The tile's extent grown by [`BUFFER`] tile units on every side, for the R-tree lookup.
    /// Longitudes are clamped to ±180; where the buffer reaches past the Mercator limit the
    /// latitude extends to ±90, because such features are clamped onto the tile's edge.
    pub fn bounds_lonlat_buffered(&self) -> Rect<f64> {
        self.bounds_at(f64::from(BUFFER) / f64::from(EXTENT))
    }

    fn bounds_at(&self, pad: f64) -> Rect<f64> {
        let n = tiles_per_side(self.z);
        let (x, y) = (f64::from(self.x), f64::from(self.y));
        let west = tile_x_to_lon(x - pad, n).max(-180.0);
        let east = tile_x_to_lon(x + 1.0 + pad, n).min(180.0);
        let north = if y - pad < 0.0 && pad > 0.0 {
            90.0
        } else {
            tile_y_to_lat(y - pad, n)
        };
        let south = if y + 1.0 + pad > n && pad > 0.0 {
            -90.0
        } else {
            tile_y_to_lat(y + 1.0 + pad, n)
        };
        Rect::new(Coord { x: west, y: south }, Coord { x: east, y: north })
    }

    /// Tiles at zoom `z` whose encoding can change when a feature inside `rect` (lon/lat)
    /// changes: every tile whose *buffered* extent touches `rect`, edges included. Empty for
    /// `z > 24` or a non-finite rect. Lazy, row by row; a large rect at a deep zoom is many tiles.
    ///
    /// ```
    /// use geo::{coord, Rect};
    /// use yizhangtu::formats::mvt::TileId;
    /// let r = Rect::new(coord! { x: 105.760, y: 29.565 }, coord! { x: 105.761, y: 29.566 });
    /// let tiles: Vec<_> = TileId::covering(r, 12).collect();
    /// assert_eq!(tiles, vec![TileId::new(12, 3251, 1695).unwrap()]);
    /// ```
    pub fn covering(rect: Rect<f64>, z: u8) -> impl Iterator<Item = TileId> {
        let n = tiles_per_side(z.min(MAX_ZOOM));
        let pad = f64::from(BUFFER) / f64::from(EXTENT);
        let (min, max) = (rect.min(), rect.max());
        let fx0 = lon_to_tile_x(min.x, n);
        let fx1 = lon_to_tile_x(max.x, n);
        let fy0 = lat_to_tile_y(max.y, n);
        let fy1 = lat_to_tile_y(min.y, n);
        // Tile t's buffered span is [t - pad, t + 1 + pad]; it meets [f0, f1] when
        // f0 - 1 - pad <= t <= f1 + pad.
        let span = |f0: f64, f1: f64| -> Option<(u32, u32)> {
            if !(f0.is_finite() && f1.is_finite()) {
                return None;
            }
            let lo = (f0 - 1.0 - pad).ceil().max(0.0);
            let hi = (f1 + pad).floor().min(n - 1.0);
            (lo <= hi).then_some((lo as u32, hi as u32))
        };
        let ranges = if z > MAX_ZOOM {
            None
        } else {
            span(fx0, fx1).zip(span(fy0, fy1))
        };
        ranges.into_iter().flat_map(move |((x0, x1), (y0, y1))| {
            (y0..=y1).flat_map(move |y| (x0..=x1).map(move |x| TileId { z, x, y }))
        })
    }
}

impl fmt::Display for TileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.z, self.x, self.y)
    }
}

fn tiles_per_side(z: u8) -> f64 {
    2f64.powi(i32::from(z))
}

fn tile_x_to_lon(tx: f64, n: f64) -> f64 {
    tx / n * 360.0 - 180.0
}

fn tile_y_to_lat(ty: f64, n: f64) -> f64 {
    (PI * (1.0 - 2.0 * ty / n)).sinh().atan().to_degrees()
}

fn lon_to_tile_x(lon: f64, n: f64) -> f64 {
    (lon + 180.0) / 360.0 * n
}

/// Fraction of the world from the north edge (0) to the south edge (1).
fn mercator_y(lat: f64) -> f64 {
    let s = lat.clamp(-MAX_LATITUDE, MAX_LATITUDE).to_radians().sin();
    0.5 - s.atanh() / (2.0 * PI)
}

fn lat_to_tile_y(lat: f64, n: f64) -> f64 {
    mercator_y(lat) * n
}

/// A property value of a type MVT supports.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    String(String),
    Double(f64),
    Int(i64),
    Bool(bool),
}

impl Value {
    /// Maps a JSON property: `null` has no MVT value (the key is then best left out), numbers
    /// become `Int` when they fit in `i64` and `Double` otherwise, objects and arrays become
    /// their compact JSON text.
    ///
    /// ```
    /// use yizhangtu::formats::mvt::Value;
    /// assert_eq!(Value::from_json(&serde_json::json!(7)), Some(Value::Int(7)));
    /// let list = Value::from_json(&serde_json::json!([1, 2]));
    /// assert_eq!(list, Some(Value::String("[1,2]".into())));
    /// assert_eq!(Value::from_json(&serde_json::Value::Null), None);
    /// ```
    pub fn from_json(value: &serde_json::Value) -> Option<Value> {
        use serde_json::Value as J;
        Some(match value {
            J::Null => return None,
            J::Bool(b) => Value::Bool(*b),
            J::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Double(n.as_f64()?),
            },
            J::String(s) => Value::String(s.clone()),
            J::Array(_) | J::Object(_) => Value::String(value.to_string()),
        })
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::String(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::String(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Double(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// One feature to encode. `geometry` is in lon/lat degrees. If a key repeats, the first wins.
#[derive(Debug, Clone)]
pub struct TileFeature<'a> {
    pub id: Option<u64>,
    pub geometry: &'a Geometry<f64>,
    pub properties: Vec<(&'a str, Value)>,
}

/// One layer to encode. Names should be unique within a tile; they are written as given.
#[derive(Debug, Clone)]
pub struct TileLayer<'a> {
    pub name: &'a str,
    pub features: Vec<TileFeature<'a>>,
}

/// Encodes layers for a tile and returns the protobuf bytes, or an empty `Vec` when no feature
/// survives clipping and simplification (the caller answers 204).
///
/// ```
/// use geo::{point, Geometry};
/// use yizhangtu::formats::mvt::{encode_tile, TileFeature, TileId, TileLayer, Value};
/// let tile = TileId::new(12, 3251, 1695).unwrap();
/// let town = Geometry::Point(point!(x: 105.76205, y: 29.56555));
/// let layer = TileLayer {
///     name: "towns",
///     features: vec![TileFeature {
///         id: Some(1),
///         geometry: &town,
///         properties: vec![("name", Value::from("龙水镇"))],
///     }],
/// };
/// assert!(!encode_tile(tile, &[layer]).is_empty());
/// let far = Geometry::Point(point!(x: 0.0, y: 0.0));
/// let feature = TileFeature { id: None, geometry: &far, properties: vec![] };
/// let layer = TileLayer { name: "towns", features: vec![feature] };
/// assert!(encode_tile(tile, &[layer]).is_empty());
/// ```
pub fn encode_tile(tile: TileId, layers: &[TileLayer]) -> Vec<u8> {
    let mut w = TileWriter::new(tile);
    for layer in layers {
        w.begin_layer(layer.name);
        for f in &layer.features {
            w.feature(f.id, FeatureGeometry::Geo(f.geometry), |tags| {
                for (key, value) in &f.properties {
                    tags.add(key, value.as_ref());
                }
            });
        }
        w.end_layer();
    }
    w.finish()
}

/// A property value borrowed from wherever the caller keeps it (see [`Value`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    String(&'a str),
    Double(f64),
    Int(i64),
    Bool(bool),
}

impl Value {
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::String(s) => ValueRef::String(s),
            Value::Double(d) => ValueRef::Double(*d),
            Value::Int(i) => ValueRef::Int(*i),
            Value::Bool(b) => ValueRef::Bool(*b),
        }
    }
}

/// A feature's geometry: built, or its WKB read in place (nothing is allocated per feature).
#[derive(Debug, Clone, Copy)]
pub enum FeatureGeometry<'a> {
    Geo(&'a Geometry<f64>),
    Wkb(&'a [u8]),
}

/// Writes a tile a layer and a feature at a time, so that a caller streams features from
/// wherever it keeps them (issue 15: the engine's compact form) without collecting them first.
/// [`encode_tile`] is this writer over built features; both give the same bytes.
///
/// ```
/// use geo::{point, Geometry};
/// use yizhangtu::formats::mvt::{FeatureGeometry, TileId, TileWriter, ValueRef};
/// let tile = TileId::new(12, 3251, 1695).unwrap();
/// let town = Geometry::Point(point!(x: 105.76205, y: 29.56555));
/// let mut w = TileWriter::new(tile);
/// w.begin_layer("towns");
/// w.feature(Some(1), FeatureGeometry::Geo(&town), |tags| tags.add("name", ValueRef::String("龙水镇")));
/// w.end_layer();
/// assert!(!w.finish().is_empty());
/// ```
pub struct TileWriter {
    geom: GeomEncoder,
    out: Vec<u8>,
    layer: LayerBuffers,
}

/// One layer being written: its features so far and its key and value dictionaries, each
/// entry encoded as it is first seen.
#[derive(Default)]
struct LayerBuffers {
    /// The name and the features.
    body: Vec<u8>,
    keys: Vec<u8>,
    values: Vec<u8>,
    key_index: HashMap<Box<str>, u32>,
    /// The previous feature's keys by position: features of a layer usually list the same keys
    /// in the same order, so a compare spares most hash lookups.
    key_cache: Vec<(Box<str>, u32)>,
    strings: HashMap<Box<str>, u32>,
    /// Doubles by their bits, so NaN dedupes and 0.0 ≠ -0.0.
    doubles: HashMap<u64, u32>,
    ints: HashMap<i64, u32>,
    bools: [Option<u32>; 2],
    value_count: u32,
    written: usize,
    tags: Vec<u32>,
}

impl LayerBuffers {
    fn key(&mut self, position: usize, key: &str) -> u32 {
        if let Some((cached, k)) = self.key_cache.get(position) {
            if &**cached == key {
                return *k;
            }
        }
        let next = self.key_index.len() as u32;
        let k = *self.key_index.entry(key.into()).or_insert_with(|| {
            put_bytes(&mut self.keys, 3, key.as_bytes());
            next
        });
        self.key_cache.truncate(position);
        self.key_cache.push((key.into(), k));
        k
    }

    fn value(&mut self, value: ValueRef) -> u32 {
        let next = self.value_count;
        let (index, values) = match value {
            ValueRef::String(s) => match self.strings.get(s) {
                Some(&i) => (i, None),
                None => {
                    self.strings.insert(s.into(), next);
                    (next, Some(value))
                }
            },
            ValueRef::Double(d) => {
                let i = *self.doubles.entry(d.to_bits()).or_insert(next);
                (i, (i == next).then_some(value))
            }
            ValueRef::Int(v) => {
                let i = *self.ints.entry(v).or_insert(next);
                (i, (i == next).then_some(value))
            }
            ValueRef::Bool(b) => {
                let i = *self.bools[usize::from(b)].get_or_insert(next);
                (i, (i == next).then_some(value))
            }
        };
        if let Some(v) = values {
            write_value(&mut self.values, v);
            self.value_count += 1;
        }
        index
    }
}

/// The tags of the feature being written: see [`TileWriter::feature`].
pub struct Tags<'w> {
    layer: &'w mut LayerBuffers,
    position: usize,
}

impl Tags<'_> {
    /// Adds a property; a key the feature already has is left as it was (the first wins).
    pub fn add(&mut self, key: &str, value: ValueRef) {
        let k = self.layer.key(self.position, key);
        self.position += 1;
        if self.layer.tags.chunks_exact(2).any(|kv| kv[0] == k) {
            return;
        }
        let v = self.layer.value(value);
        self.layer.tags.extend([k, v]);
    }
}

impl Tags<'_> {
    /// Adds the members of a JSON object's text that `wants` accepts, each as
    /// [`Value::from_json`] maps it, without building the object (issue 15: the engine keeps
    /// properties as text). Text that is not a JSON object adds what was read before the fault.
    pub fn add_json_object(&mut self, json: &str, wants: impl Fn(&str) -> bool) {
        let mut de = serde_json::Deserializer::from_str(json);
        let _ = serde::Deserializer::deserialize_map(
            &mut de,
            JsonMembers {
                tags: self,
                wants: &wants,
            },
        );
    }
}

/// Visits a JSON object's members straight into [`Tags`].
struct JsonMembers<'t, 'w, F> {
    tags: &'t mut Tags<'w>,
    wants: &'t F,
}

impl<'de, F: Fn(&str) -> bool> serde::de::Visitor<'de> for JsonMembers<'_, '_, F> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if (self.wants)(&key) {
                map.next_value_seed(JsonMember {
                    tags: &mut *self.tags,
                    key: &key,
                })?;
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

/// One member's value, added under its key.
struct JsonMember<'t, 'w, 'k> {
    tags: &'t mut Tags<'w>,
    key: &'k str,
}

impl<'de> serde::de::DeserializeSeed<'de> for JsonMember<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for JsonMember<'_, '_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        self.tags.add(self.key, ValueRef::Bool(v));
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.tags.add(self.key, ValueRef::Int(v));
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        let value = i64::try_from(v).map_or(ValueRef::Double(v as f64), ValueRef::Int);
        self.tags.add(self.key, value);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.tags.add(self.key, ValueRef::Double(v));
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        self.tags.add(self.key, ValueRef::String(v));
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        use serde::Deserialize;
        let v = serde_json::Value::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))?;
        self.tags.add(self.key, ValueRef::String(&v.to_string()));
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        use serde::Deserialize;
        let v = serde_json::Value::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        self.tags.add(self.key, ValueRef::String(&v.to_string()));
        Ok(())
    }
}

impl TileWriter {
    pub fn new(tile: TileId) -> TileWriter {
        TileWriter {
            geom: GeomEncoder::new(tile),
            out: Vec::new(),
            layer: LayerBuffers::default(),
        }
    }

    /// Starts a layer; names should be unique within a tile and are written as given.
    pub fn begin_layer(&mut self, name: &str) {
        self.layer = LayerBuffers::default();
        put_bytes(&mut self.layer.body, 1, name.as_bytes());
    }

    /// Adds a feature to the current layer when some of its geometry survives clipping and
    /// simplification; only then is `properties` called to add its tags. Returns whether it
    /// was written.
    pub fn feature(
        &mut self,
        id: Option<u64>,
        geometry: FeatureGeometry,
        properties: impl FnOnce(&mut Tags),
    ) -> bool {
        let kind = match geometry {
            FeatureGeometry::Geo(g) => self.geom.encode(g),
            FeatureGeometry::Wkb(b) => self.geom.encode_wkb(b),
        };
        let Some(kind) = kind else {
            return false;
        };
        self.layer.tags.clear();
        properties(&mut Tags {
            layer: &mut self.layer,
            position: 0,
        });
        let l = &mut self.layer;
        write_feature(&mut l.body, id, &l.tags, kind, &self.geom.cmds);
        l.written += 1;
        true
    }

    /// Ends the current layer; a layer without features is left out.
    pub fn end_layer(&mut self) {
        let l = std::mem::take(&mut self.layer);
        if l.written == 0 {
            return;
        }
        let mut body = l.body;
        body.extend_from_slice(&l.keys);
        body.extend_from_slice(&l.values);
        put_key(&mut body, 5, WIRE_VARINT);
        put_varint(&mut body, u64::from(EXTENT));
        put_key(&mut body, 15, WIRE_VARINT);
        put_varint(&mut body, 2);
        put_bytes(&mut self.out, 3, &body);
    }

    /// Bytes of the layers ended so far.
    pub fn len(&self) -> usize {
        self.out.len()
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_empty()
    }

    /// The tile: empty when no feature survived (the caller answers 204).
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

// ---------------------------------------------------------------------------------------------
// Protobuf writing (vector_tile.proto, MVT 2.1)

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;

const GEOM_POINT: u32 = 1;
const GEOM_LINESTRING: u32 = 2;
const GEOM_POLYGON: u32 = 3;

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // One byte per started group of 7 bits; zero still takes a byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field << 3 | u32::from(wire)));
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn packed_len(values: &[u32]) -> usize {
    values.iter().map(|&v| varint_len(u64::from(v))).sum()
}

fn put_packed(out: &mut Vec<u8>, field: u32, values: &[u32], len: usize) {
    put_key(out, field, WIRE_LEN);
    put_varint(out, len as u64);
    for &v in values {
        put_varint(out, u64::from(v));
    }
}

/// Writes a Feature message straight into the layer buffer; sizes are computed first so no
/// intermediate buffer is needed.
fn write_feature(out: &mut Vec<u8>, id: Option<u64>, tags: &[u32], kind: u32, cmds: &[u32]) {
    let tags_len = packed_len(tags);
    let geom_len = packed_len(cmds);
    let mut len = 2 + 1 + varint_len(geom_len as u64) + geom_len;
    if let Some(id) = id {
        len += 1 + varint_len(id);
    }
    if !tags.is_empty() {
        len += 1 + varint_len(tags_len as u64) + tags_len;
    }
    put_key(out, 2, WIRE_LEN);
    put_varint(out, len as u64);
    if let Some(id) = id {
        put_key(out, 1, WIRE_VARINT);
        put_varint(out, id);
    }
    if !tags.is_empty() {
        put_packed(out, 2, tags, tags_len);
    }
    put_key(out, 3, WIRE_VARINT);
    put_varint(out, u64::from(kind));
    put_packed(out, 4, cmds, geom_len);
}

/// Writes a Value message. Integers go out as `uint_value` when non-negative and `sint_value`
/// otherwise (as GDAL's writer does), which keeps them short.
fn write_value(out: &mut Vec<u8>, value: ValueRef) {
    put_key(out, 4, WIRE_LEN);
    match value {
        ValueRef::String(s) => {
            put_varint(out, (1 + varint_len(s.len() as u64) + s.len()) as u64);
            put_bytes(out, 1, s.as_bytes());
        }
        ValueRef::Double(d) => {
            put_varint(out, 9);
            put_key(out, 3, WIRE_FIXED64);
            out.extend_from_slice(&d.to_le_bytes());
        }
        ValueRef::Int(i) if i >= 0 => {
            put_varint(out, 1 + varint_len(i as u64) as u64);
            put_key(out, 5, WIRE_VARINT);
            put_varint(out, i as u64);
        }
        ValueRef::Int(i) => {
            let zz = ((i << 1) ^ (i >> 63)) as u64;
            put_varint(out, 1 + varint_len(zz) as u64);
            put_key(out, 6, WIRE_VARINT);
            put_varint(out, zz);
        }
        ValueRef::Bool(b) => {
            put_varint(out, 2);
            put_key(out, 7, WIRE_VARINT);
            out.push(u8::from(b));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Geometry: projection, clipping, simplification, quantisation, commands

type P = [f64; 2];
type Q = [i32; 2];

const CLIP_MIN: f64 = -(BUFFER as f64);
const CLIP_MAX: f64 = (EXTENT + BUFFER) as f64;

/// Turns one feature geometry into command integers, reusing its buffers across features.
struct GeomEncoder {
    /// lon → tile x is affine: x = lon * kx + ox.
    kx: f64,
    ox: f64,
    lat_to_y: LatToY,
    tolerance_sq: f64,
    cmds: Vec<u32>,
    cursor: Q,
    projected: Vec<P>,
    clipped: Vec<P>,
    part_ends: Vec<usize>,
    keep: Vec<bool>,
    ints: Vec<Q>,
    points: Vec<Q>,
}

impl GeomEncoder {
    fn new(tile: TileId) -> Self {
        let world = tiles_per_side(tile.z) * f64::from(EXTENT);
        let kx = world / 360.0;
        GeomEncoder {
            kx,
            ox: 180.0 * kx - f64::from(tile.x) * f64::from(EXTENT),
            lat_to_y: LatToY::new(tile),
            tolerance_sq: SIMPLIFY_TOLERANCE * SIMPLIFY_TOLERANCE,
            cmds: Vec::new(),
            cursor: [0, 0],
            projected: Vec::new(),
            clipped: Vec::new(),
            part_ends: Vec::new(),
            keep: Vec::new(),
            ints: Vec::new(),
            points: Vec::new(),
        }
    }

    #[inline]
    fn project(&self, c: Coord<f64>) -> Option<P> {
        if !(c.x.is_finite() && c.y.is_finite()) {
            return None;
        }
        // Longitudes past ±540 are nonsense; clamping them keeps clip intersections precise.
        let lon = c.x.clamp(-540.0, 540.0);
        Some([lon * self.kx + self.ox, self.lat_to_y.y(c.y)])
    }

    /// Fills `self.cmds` and returns the MVT geometry type, or `None` when nothing survives.
    fn encode(&mut self, geometry: &Geometry<f64>) -> Option<u32> {
        let top = dimension(geometry, 0)?;
        // Only collections can fall back to a lower dimension; other geometries have one.
        let lowest = if matches!(geometry, Geometry::GeometryCollection(_)) {
            0
        } else {
            top
        };
        for dim in (lowest..=top).rev() {
            self.cmds.clear();
            self.cursor = [0, 0];
            self.points.clear();
            self.walk(geometry, dim, 0);
            if dim == 0 {
                self.emit_points();
            }
            if !self.cmds.is_empty() {
                return Some([GEOM_POINT, GEOM_LINESTRING, GEOM_POLYGON][usize::from(dim)]);
            }
        }
        None
    }

    fn walk(&mut self, geometry: &Geometry<f64>, dim: u8, depth: u32) {
        match geometry {
            Geometry::Point(p) if dim == 0 => self.add_point(p.0),
            Geometry::MultiPoint(mp) if dim == 0 => mp.iter().for_each(|p| self.add_point(p.0)),
            Geometry::Line(l) if dim == 1 => self.add_line([l.start, l.end]),
            Geometry::LineString(ls) if dim == 1 => self.add_line(ls.0.iter().copied()),
            Geometry::MultiLineString(mls) if dim == 1 => mls
                .iter()
                .for_each(|ls| self.add_line(ls.0.iter().copied())),
            Geometry::Polygon(p) if dim == 2 => self.add_polygon(&p.exterior().0, p.interiors()),
            Geometry::MultiPolygon(mp) if dim == 2 => mp
                .iter()
                .for_each(|p| self.add_polygon(&p.exterior().0, p.interiors())),
            Geometry::Rect(r) if dim == 2 => {
                let (a, b) = (r.min(), r.max());
                let ring = [a, Coord { x: b.x, y: a.y }, b, Coord { x: a.x, y: b.y }];
                self.add_polygon(&ring, &[]);
            }
            Geometry::Triangle(t) if dim == 2 => self.add_polygon(&[t.v1(), t.v2(), t.v3()], &[]),
            Geometry::GeometryCollection(gc) if depth < MAX_COLLECTION_DEPTH => {
                gc.iter().for_each(|g| self.walk(g, dim, depth + 1))
            }
            _ => {}
        }
    }

    fn add_point(&mut self, c: Coord<f64>) {
        if let Some(p) = self.project(c) {
            if (CLIP_MIN..=CLIP_MAX).contains(&p[0]) && (CLIP_MIN..=CLIP_MAX).contains(&p[1]) {
                self.points.push(quantise(p));
            }
        }
    }

    /// All points of a feature share one MoveTo, as MVT's MultiPoint encoding requires.
    fn emit_points(&mut self) {
        let n = self.points.len().min(MAX_COMMAND_COUNT);
        if n == 0 {
            return;
        }
        self.cmds.push(command(1, n));
        for i in 0..n {
            let p = self.points[i];
            self.push_delta(p);
        }
    }

    /// Projects into `self.projected`; returns false if nothing reaches the clip square.
    /// The bounding box decides whether clipping can be skipped (`inside`).
    fn project_all(&mut self, coords: impl IntoIterator<Item = Coord<f64>>) -> Option<bool> {
        self.projected.clear();
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        for c in coords {
            if let Some(p) = self.project(c) {
                for a in 0..2 {
                    lo[a] = lo[a].min(p[a]);
                    hi[a] = hi[a].max(p[a]);
                }
                self.projected.push(p);
            }
        }
        if self.projected.is_empty() || (0..2).any(|a| hi[a] < CLIP_MIN || lo[a] > CLIP_MAX) {
            return None;
        }
        Some((0..2).all(|a| lo[a] >= CLIP_MIN && hi[a] <= CLIP_MAX))
    }

    fn add_line(&mut self, coords: impl IntoIterator<Item = Coord<f64>>) {
        let Some(inside) = self.project_all(coords) else {
            return;
        };
        self.part_ends.clear();
        if inside {
            std::mem::swap(&mut self.projected, &mut self.clipped);
            self.part_ends.push(self.clipped.len());
        } else {
            clip_line(&self.projected, &mut self.clipped, &mut self.part_ends);
        }
        let mut start = 0;
        for i in 0..self.part_ends.len() {
            let end = self.part_ends[i];
            let part = &self.clipped[start..end];
            start = end;
            simplify(part, self.tolerance_sq, &mut self.keep);
            quantise_kept(part, &self.keep, &mut self.ints);
            let n = self.ints.len();
            if !(2..=MAX_COMMAND_COUNT).contains(&n) {
                continue;
            }
            let ints = std::mem::take(&mut self.ints);
            self.cmds.push(command(1, 1));
            self.push_delta(ints[0]);
            self.cmds.push(command(2, n - 1));
            ints[1..].iter().for_each(|&p| self.push_delta(p));
            self.ints = ints;
        }
    }

    fn add_polygon(&mut self, exterior: &[Coord<f64>], interiors: &[LineString<f64>]) {
        if self.add_ring(exterior.iter().copied(), true) {
            for hole in interiors {
                self.add_ring(hole.0.iter().copied(), false);
            }
        }
    }

    /// One ring of a polygon; false when it vanished. Holes only mean something after their
    /// own exterior, so the caller drops them when the exterior is lost.
    fn add_ring(&mut self, coords: impl IntoIterator<Item = Coord<f64>>, exterior: bool) -> bool {
        let kept = self.prepare_ring(coords);
        if kept {
            self.emit_ring(exterior);
        }
        kept
    }

    /// [`GeomEncoder::encode`] straight from WKB, without building the geometry (issue 15).
    /// Collections, which may fall back to a lower dimension, take the decoding path.
    fn encode_wkb(&mut self, bytes: &[u8]) -> Option<u32> {
        use crate::formats::wkb::{self, Kind};
        let dim = match wkb::kind(bytes).ok()? {
            Kind::Point | Kind::MultiPoint => 0,
            Kind::LineString | Kind::MultiLineString => 1,
            Kind::Polygon | Kind::MultiPolygon => 2,
            Kind::GeometryCollection => return self.encode(&wkb::decode(bytes).ok()?),
        };
        self.cmds.clear();
        self.cursor = [0, 0];
        self.points.clear();
        let mut walker = WkbParts {
            encoder: self,
            dim,
            part: Kind::Point,
            ring: 0,
            exterior_kept: false,
        };
        wkb::walk(bytes, &mut walker).ok()?;
        if dim == 0 {
            self.emit_points();
        }
        (!self.cmds.is_empty())
            .then(|| [GEOM_POINT, GEOM_LINESTRING, GEOM_POLYGON][usize::from(dim)])
    }

    /// Projects, clips, simplifies and rounds one ring into `self.ints` (open: the closing
    /// vertex is implied). False when it vanishes: fewer than three distinct points or no area.
    fn prepare_ring(&mut self, coords: impl IntoIterator<Item = Coord<f64>>) -> bool {
        let Some(inside) = self.project_all(coords) else {
            return false;
        };
        if !inside {
            clip_ring(&mut self.projected, &mut self.clipped);
        }
        let ring = &mut self.projected;
        if ring.len() < 3 {
            return false;
        }
        // Simplify the closed path so the closing edge is simplified too.
        if ring.first() != ring.last() {
            let first = ring[0];
            ring.push(first);
        }
        simplify(ring, self.tolerance_sq, &mut self.keep);
        quantise_kept(ring, &self.keep, &mut self.ints);
        if self.ints.len() > 1 && self.ints.first() == self.ints.last() {
            self.ints.pop();
        }
        (3..=MAX_COMMAND_COUNT).contains(&self.ints.len()) && ring_area2(&self.ints) != 0
    }

    /// MVT 2.1: exterior rings have positive area by the shoelace formula in tile coordinates
    /// (clockwise on screen, y down); interior rings negative.
    fn emit_ring(&mut self, exterior: bool) {
        let mut ints = std::mem::take(&mut self.ints);
        if (ring_area2(&ints) > 0) != exterior {
            ints.reverse();
        }
        self.cmds.push(command(1, 1));
        self.push_delta(ints[0]);
        self.cmds.push(command(2, ints.len() - 1));
        ints[1..].iter().for_each(|&p| self.push_delta(p));
        self.cmds.push(command(7, 1));
        self.ints = ints;
    }

    #[inline]
    fn push_delta(&mut self, p: Q) {
        let (dx, dy) = (p[0] - self.cursor[0], p[1] - self.cursor[1]);
        self.cmds.push(zigzag(dx));
        self.cmds.push(zigzag(dy));
        self.cursor = p;
    }
}

/// A WKB walk feeding a [`GeomEncoder`]: parts of the feature's dimension are encoded as
/// [`GeomEncoder::walk`] encodes them; members of another dimension are skipped, as decoding
/// would drop them.
struct WkbParts<'e> {
    encoder: &'e mut GeomEncoder,
    dim: u8,
    /// The point, line or polygon whose coordinates come next.
    part: crate::formats::wkb::Kind,
    /// Index of the next ring of the current polygon.
    ring: usize,
    exterior_kept: bool,
}

impl crate::formats::wkb::Visit for WkbParts<'_> {
    fn begin(&mut self, kind: crate::formats::wkb::Kind, _parts: usize) {
        self.part = kind;
        self.ring = 0;
    }

    fn coords(&mut self, coords: crate::formats::wkb::Coords<'_>) {
        use crate::formats::wkb::Kind;
        match (self.part, self.dim) {
            (Kind::Point, 0) => coords.iter().for_each(|c| self.encoder.add_point(c)),
            (Kind::LineString, 1) => self.encoder.add_line(coords.iter()),
            (Kind::Polygon, 2) => {
                if self.ring == 0 {
                    self.exterior_kept = self.encoder.add_ring(coords.iter(), true);
                } else if self.exterior_kept {
                    self.encoder.add_ring(coords.iter(), false);
                }
                self.ring += 1;
            }
            _ => {}
        }
    }
}

/// Latitude → tile y. Exact Mercator costs a `sin` and a `log1p` per vertex, a third of the
/// encode time; near the tile a degree-4 Taylor polynomial about its centre latitude agrees
/// with it to 0.001 tile units, so vertices there take the polynomial and the rest the formula.
struct LatToY {
    world: f64,
    offset: f64,
    lat0: f64,
    /// Degrees either side of `lat0` where the polynomial is used; negative disables it.
    reach: f64,
    c: [f64; 5],
}

impl LatToY {
    /// Error allowed for the polynomial, in tile units.
    const MAX_ERROR: f64 = 1e-3;

    fn new(tile: TileId) -> Self {
        let n = tiles_per_side(tile.z);
        let world = n * f64::from(EXTENT);
        let offset = -f64::from(tile.y) * f64::from(EXTENT);
        let lat0 = tile_y_to_lat(f64::from(tile.y) + 0.5, n);
        let phi = lat0.to_radians();
        // Derivatives of m(φ) = atanh(sin φ) in terms of s = sec φ, t = tan φ.
        let (s, t) = (1.0 / phi.cos(), phi.tan());
        let m = [
            phi.sin().atanh(),
            s,
            s * t,
            s * t * t + s.powi(3),
            s * t.powi(3) + 5.0 * s.powi(3) * t,
        ];
        // y = (0.5 - m / 2π) · world + offset, with h in degrees.
        let k = -world / (2.0 * PI);
        let d = PI / 180.0;
        let c = [
            (0.5 - m[0] / (2.0 * PI)) * world + offset,
            k * m[1] * d,
            k * m[2] / 2.0 * d.powi(2),
            k * m[3] / 6.0 * d.powi(3),
            k * m[4] / 24.0 * d.powi(4),
        ];
        // Lagrange remainder: |m⁽⁵⁾| h⁵ / 120 scaled by world / 2π, with |m⁽⁵⁾| bounded at the
        // far end of at most 0.1 rad; m⁽⁵⁾ = s t⁴ + 18 s³ t² + 5 s⁵ grows with |φ|. Tiles near
        // the Mercator limit keep the exact formula (and its clamp).
        let far = phi.abs() + 0.1;
        let reach = if far < 1.4 {
            let (s, t) = (1.0 / far.cos(), far.tan());
            let m5 = s * t.powi(4) + 18.0 * s.powi(3) * t * t + 5.0 * s.powi(5);
            (Self::MAX_ERROR * 120.0 / (m5 * -k))
                .powf(0.2)
                .min(0.1)
                .to_degrees()
        } else {
            -1.0
        };
        LatToY {
            world,
            offset,
            lat0,
            reach,
            c,
        }
    }

    #[inline]
    fn y(&self, lat: f64) -> f64 {
        let h = lat - self.lat0;
        if h.abs() <= self.reach {
            let c = &self.c;
            c[0] + h * (c[1] + h * (c[2] + h * (c[3] + h * c[4])))
        } else {
            mercator_y(lat) * self.world + self.offset
        }
    }
}

/// Highest dimension present (0 points, 1 lines, 2 areas), `None` for an empty collection.
fn dimension(geometry: &Geometry<f64>, depth: u32) -> Option<u8> {
    match geometry {
        Geometry::Point(_) | Geometry::MultiPoint(_) => Some(0),
        Geometry::Line(_) | Geometry::LineString(_) | Geometry::MultiLineString(_) => Some(1),
        Geometry::Polygon(_)
        | Geometry::MultiPolygon(_)
        | Geometry::Rect(_)
        | Geometry::Triangle(_) => Some(2),
        Geometry::GeometryCollection(gc) if depth < MAX_COLLECTION_DEPTH => {
            gc.iter().filter_map(|g| dimension(g, depth + 1)).max()
        }
        Geometry::GeometryCollection(_) => None,
    }
}

#[inline]
fn command(id: u32, count: usize) -> u32 {
    (id & 7) | ((count as u32) << 3)
}

#[inline]
fn zigzag(v: i32) -> u32 {
    ((v << 1) ^ (v >> 31)) as u32
}

#[inline]
fn quantise(p: P) -> Q {
    // Inputs are already clipped; the clamp only absorbs floating-point error at the edges.
    // Rounds half up by truncating a positive offset value: `f64::round` is a libm call on
    // baseline x86-64, and this runs once per vertex.
    const OFFSET: f64 = 2.0 * EXTENT as f64;
    let r = |v: f64| (v.clamp(CLIP_MIN, CLIP_MAX) + (OFFSET + 0.5)) as i32 - OFFSET as i32;
    [r(p[0]), r(p[1])]
}

/// Rounds the kept points, dropping consecutive duplicates that rounding creates and middle
/// points of straight runs (exactly collinear, no reversal), which cost bytes and carry nothing.
fn quantise_kept(points: &[P], keep: &[bool], out: &mut Vec<Q>) {
    out.clear();
    for (p, _) in points.iter().zip(keep).filter(|(_, k)| **k) {
        let q = quantise(*p);
        match *out.as_slice() {
            [.., last] if last == q => continue,
            [.., a, b] if straight(a, b, q) => *out.last_mut().unwrap_or(&mut [0, 0]) = q,
            _ => out.push(q),
        }
    }
}

/// Whether `b` lies on the segment from `a` to `c`, strictly between them.
#[inline]
fn straight(a: Q, b: Q, c: Q) -> bool {
    let (ux, uy) = (i64::from(b[0] - a[0]), i64::from(b[1] - a[1]));
    let (vx, vy) = (i64::from(c[0] - b[0]), i64::from(c[1] - b[1]));
    ux * vy == uy * vx && ux * vx + uy * vy > 0
}

/// Twice the signed area by MVT's shoelace formula; positive is clockwise on screen (y down).
fn ring_area2(ring: &[Q]) -> i64 {
    let Some(&(mut prev)) = ring.last() else {
        return 0;
    };
    let mut sum = 0i64;
    for &p in ring {
        sum += i64::from(prev[0]) * i64::from(p[1]) - i64::from(p[0]) * i64::from(prev[1]);
        prev = p;
    }
    sum
}

/// How far ahead [`simplify`] looks from its anchor: bounds the work per vertex.
const SIMPLIFY_WINDOW: usize = 16;

/// Marks in `keep` the points to retain, dropping those within `tolerance_sq` (squared) of the
/// segment that replaces them. Lang's algorithm with a bounded look-ahead: from each kept
/// anchor, extend the replacing segment while every point it skips stays within tolerance.
/// Linear in the number of points (Douglas–Peucker, n log n and branchier, took over a quarter
/// of the encode time); dense input is reduced at most 16:1, and rounding to the integer grid
/// then merges what is left. Endpoints are always kept, and every dropped point is within the
/// tolerance of the output.
fn simplify(points: &[P], tolerance_sq: f64, keep: &mut Vec<bool>) {
    let n = points.len();
    keep.clear();
    keep.resize(n, n <= 2);
    if n <= 2 {
        return;
    }
    keep[0] = true;
    let mut anchor = 0;
    while anchor < n - 1 {
        let mut end = anchor + 1;
        while end + 1 < n
            && end + 1 - anchor <= SIMPLIFY_WINDOW
            && within(&points[anchor..=end + 1], tolerance_sq)
        {
            end += 1;
        }
        keep[end] = true;
        anchor = end;
    }
}

/// Whether every interior point of `run` is within tolerance of the segment joining its ends.
#[inline]
fn within(run: &[P], tolerance_sq: f64) -> bool {
    let (a, b) = (run[0], run[run.len() - 1]);
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let len_sq = dx * dx + dy * dy;
    let inv = if len_sq > 0.0 { 1.0 / len_sq } else { 0.0 };
    run[1..run.len() - 1].iter().all(|p| {
        let (px, py) = (p[0] - a[0], p[1] - a[1]);
        let t = ((px * dx + py * dy) * inv).clamp(0.0, 1.0);
        let (ex, ey) = (px - t * dx, py - t * dy);
        ex * ex + ey * ey <= tolerance_sq
    })
}

/// Sutherland–Hodgman against the four sides of the buffered square. The ring is open or
/// closed on input; the result (in `ring`) is open. `tmp` is scratch.
fn clip_ring(ring: &mut Vec<P>, tmp: &mut Vec<P>) {
    for (axis, bound, keep_above) in [
        (0, CLIP_MIN, true),
        (0, CLIP_MAX, false),
        (1, CLIP_MIN, true),
        (1, CLIP_MAX, false),
    ] {
        clip_ring_edge(ring, tmp, axis, bound, keep_above);
        std::mem::swap(ring, tmp);
        if ring.is_empty() {
            return;
        }
    }
}

fn clip_ring_edge(input: &[P], out: &mut Vec<P>, axis: usize, bound: f64, keep_above: bool) {
    out.clear();
    let Some(&last) = input.last() else { return };
    let inside = |p: &P| {
        if keep_above {
            p[axis] >= bound
        } else {
            p[axis] <= bound
        }
    };
    let (mut prev, mut prev_in) = (last, inside(&last));
    for &cur in input {
        let cur_in = inside(&cur);
        if cur_in != prev_in {
            out.push(intersect(prev, cur, axis, bound));
        }
        if cur_in {
            out.push(cur);
        }
        prev = cur;
        prev_in = cur_in;
    }
}

/// The point where segment a→b crosses `p[axis] == bound`; only called when it does, so the
/// denominator is non-zero.
#[inline]
fn intersect(a: P, b: P, axis: usize, bound: f64) -> P {
    let other = 1 - axis;
    let t = (bound - a[axis]) / (b[axis] - a[axis]);
    let mut p = [0.0; 2];
    p[axis] = bound;
    p[other] = a[other] + t * (b[other] - a[other]);
    p
}

/// Clips a polyline to the buffered square, segment by segment (Liang–Barsky), appending each
/// surviving run to `out` and its end index to `ends`.
fn clip_line(points: &[P], out: &mut Vec<P>, ends: &mut Vec<usize>) {
    out.clear();
    ends.clear();
    let mut open = false;
    if points.len() == 1 {
        // A single-vertex line has no segments; it is dropped later as degenerate.
        return;
    }
    for seg in points.windows(2) {
        let Some((start, end, start_cut, end_cut)) = clip_segment(seg[0], seg[1]) else {
            if open {
                ends.push(out.len());
                open = false;
            }
            continue;
        };
        if !open || start_cut {
            if open {
                ends.push(out.len());
            }
            out.push(start);
            open = true;
        }
        out.push(end);
        if end_cut {
            ends.push(out.len());
            open = false;
        }
    }
    if open {
        ends.push(out.len());
    }
}

/// Liang–Barsky: the part of a→b inside the square, with flags for whether each end was cut.
fn clip_segment(a: P, b: P) -> Option<(P, P, bool, bool)> {
    let d = [b[0] - a[0], b[1] - a[1]];
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for axis in 0..2 {
        for (p, q) in [
            (-d[axis], a[axis] - CLIP_MIN),
            (d[axis], CLIP_MAX - a[axis]),
        ] {
            if p == 0.0 {
                if q < 0.0 {
                    return None;
                }
            } else {
                let r = q / p;
                if p < 0.0 {
                    if r > t1 {
                        return None;
                    }
                    t0 = t0.max(r);
                } else {
                    if r < t0 {
                        return None;
                    }
                    t1 = t1.min(r);
                }
            }
        }
    }
    let at = |t: f64| [a[0] + t * d[0], a[1] + t * d[1]];
    let (start_cut, end_cut) = (t0 > 0.0, t1 < 1.0);
    let start = if start_cut { at(t0) } else { a };
    let end = if end_cut { at(t1) } else { b };
    Some((start, end, start_cut, end_cut))
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{
        coord, line_string, point, polygon, GeometryCollection, MultiPoint, MultiPolygon, Polygon,
    };

    // -----------------------------------------------------------------------------------------
    // A small, strict decoder for what the encoder writes.

    struct Reader<'b> {
        buf: &'b [u8],
        pos: usize,
    }

    impl<'b> Reader<'b> {
        fn new(buf: &'b [u8]) -> Self {
            Reader { buf, pos: 0 }
        }
        fn done(&self) -> bool {
            self.pos >= self.buf.len()
        }
        fn varint(&mut self) -> u64 {
            let (mut v, mut shift) = (0u64, 0);
            loop {
                let b = self.buf[self.pos];
                self.pos += 1;
                v |= u64::from(b & 0x7f) << shift;
                if b < 0x80 {
                    return v;
                }
                shift += 7;
                assert!(shift < 64, "varint too long");
            }
        }
        fn key(&mut self) -> (u32, u8) {
            let k = self.varint();
            ((k >> 3) as u32, (k & 7) as u8)
        }
        fn bytes(&mut self) -> &'b [u8] {
            let len = self.varint() as usize;
            let s = &self.buf[self.pos..self.pos + len];
            self.pos += len;
            s
        }
        fn fixed64(&mut self) -> [u8; 8] {
            let s: [u8; 8] = self.buf[self.pos..self.pos + 8].try_into().unwrap();
            self.pos += 8;
            s
        }
        fn packed(&mut self) -> Vec<u32> {
            let mut r = Reader::new(self.bytes());
            let mut out = Vec::new();
            while !r.done() {
                out.push(u32::try_from(r.varint()).unwrap());
            }
            out
        }
    }

    #[derive(Debug, Clone, PartialEq)]
    enum DValue {
        Str(String),
        Double(f64),
        UInt(u64),
        SInt(i64),
        Bool(bool),
    }

    #[derive(Debug)]
    struct DFeature {
        id: Option<u64>,
        tags: Vec<u32>,
        kind: u32,
        geometry: Vec<u32>,
    }

    #[derive(Debug)]
    struct DLayer {
        name: String,
        version: u32,
        extent: u32,
        keys: Vec<String>,
        values: Vec<DValue>,
        features: Vec<DFeature>,
    }

    impl DLayer {
        fn props(&self, f: &DFeature) -> Vec<(String, DValue)> {
            f.tags
                .chunks(2)
                .map(|kv| {
                    (
                        self.keys[kv[0] as usize].clone(),
                        self.values[kv[1] as usize].clone(),
                    )
                })
                .collect()
        }
    }

    fn decode(tile: &[u8]) -> Vec<DLayer> {
        let mut r = Reader::new(tile);
        let mut layers = Vec::new();
        while !r.done() {
            assert_eq!(r.key(), (3, 2), "Tile holds only layers");
            layers.push(decode_layer(r.bytes()));
        }
        layers
    }

    fn decode_layer(buf: &[u8]) -> DLayer {
        let mut r = Reader::new(buf);
        let mut l = DLayer {
            name: String::new(),
            version: 0,
            extent: 0,
            keys: vec![],
            values: vec![],
            features: vec![],
        };
        while !r.done() {
            match r.key() {
                (1, 2) => l.name = String::from_utf8(r.bytes().to_vec()).unwrap(),
                (2, 2) => l.features.push(decode_feature(r.bytes())),
                (3, 2) => l.keys.push(String::from_utf8(r.bytes().to_vec()).unwrap()),
                (4, 2) => l.values.push(decode_value(r.bytes())),
                (5, 0) => l.extent = r.varint() as u32,
                (15, 0) => l.version = r.varint() as u32,
                k => panic!("unexpected layer field {k:?}"),
            }
        }
        l
    }

    fn decode_feature(buf: &[u8]) -> DFeature {
        let mut r = Reader::new(buf);
        let mut f = DFeature {
            id: None,
            tags: vec![],
            kind: 0,
            geometry: vec![],
        };
        while !r.done() {
            match r.key() {
                (1, 0) => f.id = Some(r.varint()),
                (2, 2) => f.tags = r.packed(),
                (3, 0) => f.kind = r.varint() as u32,
                (4, 2) => f.geometry = r.packed(),
                k => panic!("unexpected feature field {k:?}"),
            }
        }
        f
    }

    fn decode_value(buf: &[u8]) -> DValue {
        let mut r = Reader::new(buf);
        let v = match r.key() {
            (1, 2) => DValue::Str(String::from_utf8(r.bytes().to_vec()).unwrap()),
            (3, 1) => DValue::Double(f64::from_le_bytes(r.fixed64())),
            (5, 0) => DValue::UInt(r.varint()),
            (6, 0) => {
                let z = r.varint();
                DValue::SInt((z >> 1) as i64 ^ -((z & 1) as i64))
            }
            (7, 0) => DValue::Bool(r.varint() != 0),
            k => panic!("unexpected value field {k:?}"),
        };
        assert!(r.done(), "a Value holds exactly one field");
        v
    }

    /// A decoded part: its vertices and whether ClosePath ended it.
    type Part = (Vec<[i32; 2]>, bool);

    /// Decodes commands strictly per MVT 2.1 for the given geometry type.
    fn decode_geometry(kind: u32, cmds: &[u32]) -> Vec<Part> {
        let mut parts: Vec<Part> = Vec::new();
        let (mut x, mut y) = (0i32, 0i32);
        let mut i = 0;
        let unzig = |v: u32| ((v >> 1) as i32) ^ -((v & 1) as i32);
        while i < cmds.len() {
            let (id, count) = (cmds[i] & 7, (cmds[i] >> 3) as usize);
            i += 1;
            match id {
                1 | 2 => {
                    assert!(count > 0, "zero-count command");
                    if id == 1 {
                        if kind != GEOM_POINT {
                            assert_eq!(count, 1, "MoveTo count must be 1 for lines and polygons");
                        }
                        parts.push((Vec::new(), false));
                    } else {
                        assert!(
                            !parts.is_empty() && !parts.last().unwrap().1,
                            "LineTo without MoveTo"
                        );
                    }
                    for _ in 0..count {
                        x += unzig(cmds[i]);
                        y += unzig(cmds[i + 1]);
                        i += 2;
                        parts.last_mut().unwrap().0.push([x, y]);
                    }
                }
                7 => {
                    assert_eq!(
                        (kind, count),
                        (GEOM_POLYGON, 1),
                        "ClosePath only ends polygon rings"
                    );
                    parts.last_mut().expect("ClosePath without MoveTo").1 = true;
                }
                _ => panic!("unknown command {id}"),
            }
        }
        for (pts, closed) in &parts {
            match kind {
                GEOM_LINESTRING => assert!(pts.len() >= 2, "line part too short"),
                GEOM_POLYGON => assert!(*closed && pts.len() >= 3, "ring not closed or too short"),
                _ => {}
            }
            for p in pts {
                assert!(
                    p.iter()
                        .all(|&v| (-(BUFFER as i32)..=(EXTENT + BUFFER) as i32).contains(&v)),
                    "{p:?} outside buffer"
                );
            }
        }
        if kind == GEOM_POLYGON {
            assert!(ring_area2(&parts[0].0) > 0, "first ring must be exterior");
            for (pts, _) in &parts {
                assert_ne!(ring_area2(pts), 0, "zero-area ring");
            }
        }
        parts
    }

    // -----------------------------------------------------------------------------------------
    // Helpers to place input at known tile coordinates.

    /// Lon/lat of tile coordinates (tx, ty) in `tile`.
    fn ll(tile: TileId, tx: f64, ty: f64) -> Coord<f64> {
        let n = tiles_per_side(tile.z);
        let e = f64::from(EXTENT);
        let (x, y) = (f64::from(tile.x) + tx / e, f64::from(tile.y) + ty / e);
        coord! { x: tile_x_to_lon(x, n), y: tile_y_to_lat(y, n) }
    }

    fn ring(tile: TileId, pts: &[(f64, f64)]) -> LineString<f64> {
        let mut cs: Vec<_> = pts.iter().map(|&(x, y)| ll(tile, x, y)).collect();
        cs.push(cs[0]);
        LineString::new(cs)
    }

    fn encodes_nothing(tile: TileId, geometry: &Geometry<f64>) -> bool {
        encode_tile(
            tile,
            &[TileLayer {
                name: "l",
                features: vec![TileFeature {
                    id: None,
                    geometry,
                    properties: vec![],
                }],
            }],
        )
        .is_empty()
    }

    fn t12() -> TileId {
        TileId::new(12, 3251, 1695).unwrap()
    }

    fn one(geometry: &Geometry<f64>) -> (DLayer, Vec<Part>) {
        let layer = TileLayer {
            name: "l",
            features: vec![TileFeature {
                id: Some(7),
                geometry,
                properties: vec![],
            }],
        };
        let bytes = encode_tile(t12(), &[layer]);
        let mut layers = decode(&bytes);
        assert_eq!(layers.len(), 1);
        let l = layers.remove(0);
        assert_eq!(l.features.len(), 1);
        let parts = decode_geometry(l.features[0].kind, &l.features[0].geometry);
        (l, parts)
    }

    // -----------------------------------------------------------------------------------------
    // Tile math

    #[test]
    fn tile_id_validates_each_parameter() {
        assert_eq!(TileId::new(0, 0, 0), Ok(TileId { z: 0, x: 0, y: 0 }));
        assert!(TileId::new(24, (1 << 24) - 1, (1 << 24) - 1).is_ok());
        let e = TileId::new(25, 0, 0).unwrap_err();
        assert_eq!(
            (e.parameter(), e.to_string().as_str()),
            ("z", "z = 25 is outside 0..=24")
        );
        let e = TileId::new(3, 9, 0).unwrap_err();
        assert_eq!(
            (e.parameter(), e.to_string().as_str()),
            ("x", "x = 9 is outside 0..=7 at zoom 3")
        );
        let e = TileId::new(3, 0, 8).unwrap_err();
        assert_eq!(
            (e.parameter(), e.to_string().as_str()),
            ("y", "y = 8 is outside 0..=7 at zoom 3")
        );
        assert_eq!(
            TileId::new(0, 1, 0).unwrap_err().to_string(),
            "x = 1 is outside 0..=0 at zoom 0"
        );
        assert_eq!(
            TileId::new(u32::MAX, u32::MAX, u32::MAX)
                .unwrap_err()
                .parameter(),
            "z"
        );
        assert_eq!(t12().to_string(), "12/3251/1695");
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn bounds_of_known_tiles() {
        let b = TileId::new(0, 0, 0).unwrap().bounds_lonlat();
        assert!(close(b.min().x, -180.0) && close(b.max().x, 180.0));
        assert!(close(b.min().y, -MAX_LATITUDE) && close(b.max().y, MAX_LATITUDE));
        assert!((b.max().y - 85.0511).abs() < 1e-4);

        let b = TileId::new(1, 1, 0).unwrap().bounds_lonlat();
        assert!(
            close(b.min().x, 0.0)
                && close(b.max().x, 180.0)
                && close(b.min().y, 0.0)
                && close(b.max().y, MAX_LATITUDE)
        );

        // The buffered world tile reaches the poles and stops at the antimeridian.
        let b = TileId::new(0, 0, 0).unwrap().bounds_lonlat_buffered();
        assert_eq!(
            (b.min().x, b.min().y, b.max().x, b.max().y),
            (-180.0, -90.0, 180.0, 90.0)
        );

        // A buffer of 64/4096 of a tile on each side.
        let t = t12();
        let (b, bb) = (t.bounds_lonlat(), t.bounds_lonlat_buffered());
        let pad = (b.max().x - b.min().x) * 64.0 / 4096.0;
        assert!(close(bb.min().x, b.min().x - pad) && close(bb.max().x, b.max().x + pad));
        assert!(bb.min().y < b.min().y && bb.max().y > b.max().y);
        assert!(close(ll(t, 0.0, -64.0).y, bb.max().y) && close(ll(t, 0.0, 4160.0).y, bb.min().y));
    }

    #[test]
    fn fast_latitude_projection_matches_the_formula() {
        let mut rng = Rng(7);
        let mut fast_used = 0;
        for z in [0u8, 3, 6, 9, 12, 15, 18, 21, 24] {
            let n = 1u64 << z;
            for y in [0, n / 8, n / 3, n / 2, n * 2 / 3, n - 1] {
                let tile = TileId {
                    z,
                    x: 0,
                    y: y as u32,
                };
                let f = LatToY::new(tile);
                let exact = |lat: f64| mercator_y(lat) * f.world + f.offset;
                let b = tile.bounds_lonlat_buffered();
                for _ in 0..2000 {
                    // Around the tile, and across the polynomial's reach.
                    let lat = if rng.below(2) == 0 {
                        b.min().y + (b.max().y - b.min().y) * rng.unit()
                    } else {
                        f.lat0 + f.reach.max(0.01) * (rng.unit() * 2.4 - 1.2)
                    };
                    let lat = lat.clamp(-90.0, 90.0);
                    fast_used += usize::from((lat - f.lat0).abs() <= f.reach);
                    let (a, e) = (f.y(lat), exact(lat));
                    assert!(
                        (a - e).abs() <= LatToY::MAX_ERROR,
                        "z{z} y{y} lat {lat}: {a} vs {e}"
                    );
                }
            }
        }
        assert!(fast_used > 30_000, "{fast_used}");
    }

    #[test]
    fn longshui_town_is_in_tile_12_3251_1695() {
        // The brief said y = 1699; the Mercator formula puts 29.56555N at y = 1695.60 (and
        // 105.76205E at x = 3251.34), so the tile is 12/3251/1695.
        let n = tiles_per_side(12);
        assert_eq!(lon_to_tile_x(105.76205, n).floor(), 3251.0);
        assert_eq!(lat_to_tile_y(29.56555, n).floor(), 1695.0);
        let b = t12().bounds_lonlat();
        assert!(
            b.min().x < 105.76205
                && 105.76205 < b.max().x
                && b.min().y < 29.56555
                && 29.56555 < b.max().y
        );
        let c = coord! { x: 105.76205, y: 29.56555 };
        assert_eq!(
            TileId::covering(Rect::new(c, c), 12).collect::<Vec<_>>(),
            vec![t12()]
        );
    }

    #[test]
    fn covering_counts_every_tile_whose_buffer_touches() {
        let t = t12();
        let tiles = |a: Coord<f64>, b: Coord<f64>, z: u8| {
            TileId::covering(Rect::new(a, b), z).collect::<Vec<_>>()
        };
        let id = |x, y| TileId { z: 12, x, y };
        // Well inside: only the tile.
        assert_eq!(
            tiles(ll(t, 1000.0, 1000.0), ll(t, 3000.0, 3000.0), 12),
            vec![t]
        );
        // Across the east edge.
        assert_eq!(
            tiles(ll(t, 3000.0, 1000.0), ll(t, 4500.0, 3000.0), 12),
            vec![t, id(3252, 1695)]
        );
        // Inside the tile but within the east neighbour's buffer (which reaches 64 units in).
        assert_eq!(
            tiles(ll(t, 4050.0, 1000.0), ll(t, 4060.0, 3000.0), 12),
            vec![t, id(3252, 1695)]
        );
        // Inside the north-west corner's buffers: four tiles, row by row.
        assert_eq!(
            tiles(ll(t, 10.0, 10.0), ll(t, 20.0, 20.0), 12),
            vec![id(3250, 1694), id(3251, 1694), id(3250, 1695), t]
        );
        // Every tile whose buffer meets this tile's buffer: the 3×3 block.
        assert_eq!(TileId::covering(t.bounds_lonlat_buffered(), 12).count(), 9);
        // The world.
        let w = |z| {
            TileId::covering(
                Rect::new(coord! { x: -180.0, y: -90.0 }, coord! { x: 180.0, y: 90.0 }),
                z,
            )
            .count()
        };
        assert_eq!((w(0), w(1), w(3)), (1, 4, 64));
        // Nonsense gives nothing rather than a panic.
        assert_eq!(
            tiles(coord! { x: f64::NAN, y: 0.0 }, coord! { x: 1.0, y: 1.0 }, 5).len(),
            0
        );
        assert_eq!(
            tiles(coord! { x: 0.0, y: 0.0 }, coord! { x: 1.0, y: 1.0 }, 25).len(),
            0
        );
        assert_eq!(
            tiles(coord! { x: 500.0, y: 0.0 }, coord! { x: 600.0, y: 1.0 }, 5).len(),
            0
        );
    }

    // -----------------------------------------------------------------------------------------
    // Encoding round trips

    #[test]
    fn layer_header_and_point() {
        let g = Geometry::Point(geo::Point(ll(t12(), 100.3, 200.7)));
        let (l, parts) = one(&g);
        assert_eq!((l.name.as_str(), l.version, l.extent), ("l", 2, 4096));
        assert_eq!(l.features[0].id, Some(7));
        assert_eq!(l.features[0].kind, GEOM_POINT);
        assert_eq!(
            l.features[0].geometry,
            vec![command(1, 1), zigzag(100), zigzag(201)]
        );
        assert_eq!(parts, vec![(vec![[100, 201]], false)]);
    }

    #[test]
    fn multipoint_shares_one_moveto_and_drops_points_outside() {
        let t = t12();
        let g = Geometry::MultiPoint(MultiPoint::from(vec![
            geo::Point(ll(t, 10.0, 10.0)),
            geo::Point(ll(t, -63.0, 4159.0)), // inside the buffer
            geo::Point(ll(t, -70.0, 100.0)),  // outside the buffer
            geo::Point(coord! { x: f64::NAN, y: 29.5 }),
            geo::Point(ll(t, 4000.0, 20.0)),
        ]));
        let (l, parts) = one(&g);
        assert_eq!(l.features[0].geometry[0], command(1, 3));
        assert_eq!(
            parts,
            vec![(vec![[10, 10], [-63, 4159], [4000, 20]], false)]
        );
    }

    #[test]
    fn line_crossing_the_edge_is_clipped_into_parts() {
        let t = t12();
        let g = Geometry::LineString(LineString::new(vec![
            ll(t, 1000.0, 1000.0),
            ll(t, 5000.0, 1000.0),
        ]));
        let (l, parts) = one(&g);
        assert_eq!(l.features[0].kind, GEOM_LINESTRING);
        assert_eq!(parts, vec![(vec![[1000, 1000], [4160, 1000]], false)]);

        // Out through the east buffer edge and back in: two parts, cursor carried between them.
        let g = Geometry::LineString(LineString::new(vec![
            ll(t, 4000.0, 100.0),
            ll(t, 4500.0, 200.0),
            ll(t, 4000.0, 300.0),
            ll(t, 3000.0, 300.0),
        ]));
        let (_, parts) = one(&g);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0, vec![[4000, 100], [4160, 132]]);
        assert_eq!(parts[1].0, vec![[4160, 268], [4000, 300], [3000, 300]]);

        // Wholly outside, or collapsing to one point: nothing, so no tile.
        let away = Geometry::LineString(LineString::new(vec![
            ll(t, 5000.0, 0.0),
            ll(t, 6000.0, 0.0),
        ]));
        let dot = Geometry::LineString(LineString::new(vec![ll(t, 5.0, 5.0), ll(t, 5.2, 5.1)]));
        assert!(encodes_nothing(t, &away) && encodes_nothing(t, &dot));
    }

    #[test]
    fn polygon_with_hole_has_mvt_winding_and_closes() {
        let t = t12();
        // Exterior counter-clockwise in lon/lat (RFC 7946), hole clockwise: both must be fixed
        // or kept so that the exterior has positive and the hole negative area in tile space.
        for reverse_input in [false, true] {
            let mut ext = ring(
                t,
                &[
                    (100.0, 100.0),
                    (100.0, 900.0),
                    (900.0, 900.0),
                    (900.0, 100.0),
                ],
            );
            let mut hole = ring(
                t,
                &[
                    (300.0, 300.0),
                    (600.0, 300.0),
                    (600.0, 600.0),
                    (300.0, 600.0),
                ],
            );
            if reverse_input {
                ext.0.reverse();
                hole.0.reverse();
            }
            let (l, parts) = one(&Geometry::Polygon(Polygon::new(ext, vec![hole])));
            assert_eq!(l.features[0].kind, GEOM_POLYGON);
            assert_eq!(parts.len(), 2);
            assert!(parts.iter().all(|(_, closed)| *closed));
            assert!(ring_area2(&parts[0].0) > 0 && ring_area2(&parts[1].0) < 0);
            assert_eq!(ring_area2(&parts[0].0), 2 * 800 * 800);
            assert_eq!(ring_area2(&parts[1].0), -2 * 300 * 300);
            let mut e = parts[0].0.clone();
            e.sort();
            assert_eq!(e, vec![[100, 100], [100, 900], [900, 100], [900, 900]]);
            // Commands: MoveTo(1) LineTo(3) ClosePath(1), twice; no repeated closing vertex.
            let g = &l.features[0].geometry;
            assert_eq!(
                (g[0], g[3], g[10]),
                (command(1, 1), command(2, 3), command(7, 1))
            );
            assert_eq!(g.len(), 22);
        }
    }

    #[test]
    fn polygon_is_clipped_to_the_buffered_square() {
        let t = t12();
        let sq = ring(
            t,
            &[
                (-500.0, -500.0),
                (500.0, -500.0),
                (500.0, 500.0),
                (-500.0, 500.0),
            ],
        );
        let (_, parts) = one(&Geometry::Polygon(Polygon::new(sq, vec![])));
        let mut r = parts[0].0.clone();
        r.sort();
        assert_eq!(r, vec![[-64, -64], [-64, 500], [500, -64], [500, 500]]);

        // Covering the whole tile: the buffered square; a hole wholly outside is dropped.
        let big = ring(
            t,
            &[
                (-9000.0, -9000.0),
                (9000.0, -9000.0),
                (9000.0, 9000.0),
                (-9000.0, 9000.0),
            ],
        );
        let far_hole = ring(t, &[(6000.0, 6000.0), (7000.0, 6000.0), (7000.0, 7000.0)]);
        let (_, parts) = one(&Geometry::Polygon(Polygon::new(big, vec![far_hole])));
        assert_eq!(parts.len(), 1);
        assert_eq!(ring_area2(&parts[0].0), 2 * 4224 * 4224);

        // A concave ring whose bounding box overlaps the tile but whose area does not: dropped.
        let l_shape = ring(
            t,
            &[
                (-1000.0, -1000.0),
                (5000.0, -1000.0),
                (5000.0, -500.0),
                (-500.0, -500.0),
                (-500.0, 5000.0),
                (-1000.0, 5000.0),
            ],
        );
        assert!(encodes_nothing(
            t,
            &Geometry::Polygon(Polygon::new(l_shape, vec![]))
        ));
    }

    #[test]
    fn multipolygon_is_one_feature_with_several_exteriors() {
        let t = t12();
        let a = Polygon::new(
            ring(t, &[(0.0, 0.0), (0.0, 100.0), (100.0, 100.0), (100.0, 0.0)]),
            vec![ring(
                t,
                &[(10.0, 10.0), (20.0, 10.0), (20.0, 20.0), (10.0, 20.0)],
            )],
        );
        let b = Polygon::new(
            ring(
                t,
                &[
                    (2000.0, 2000.0),
                    (2100.0, 2000.0),
                    (2100.0, 2100.0),
                    (2000.0, 2100.0),
                ],
            ),
            vec![],
        );
        let gone = Polygon::new(
            ring(t, &[(9000.0, 0.0), (9100.0, 0.0), (9100.0, 100.0)]),
            vec![],
        );
        let (l, parts) = one(&Geometry::MultiPolygon(MultiPolygon::new(vec![a, gone, b])));
        assert_eq!(l.features[0].kind, GEOM_POLYGON);
        let signs: Vec<_> = parts.iter().map(|(r, _)| ring_area2(r).signum()).collect();
        assert_eq!(signs, vec![1, -1, 1]);
        assert_eq!(parts[2].0.iter().min(), Some(&[2000, 2000]));
    }

    #[test]
    fn rect_triangle_and_line_variants_encode() {
        let t = t12();
        let rect = Geometry::Rect(Rect::new(ll(t, 10.0, 10.0), ll(t, 50.0, 90.0)));
        let (_, parts) = one(&rect);
        assert_eq!(ring_area2(&parts[0].0), 2 * 40 * 80);
        let tri = Geometry::Triangle(geo::Triangle::new(
            ll(t, 0.0, 0.0),
            ll(t, 100.0, 0.0),
            ll(t, 0.0, 100.0),
        ));
        let (_, parts) = one(&tri);
        assert_eq!(ring_area2(&parts[0].0), 100 * 100);
        let line = Geometry::Line(geo::Line::new(ll(t, 0.0, 0.0), ll(t, 100.0, 0.0)));
        let (_, parts) = one(&line);
        assert_eq!(parts, vec![(vec![[0, 0], [100, 0]], false)]);
    }

    #[test]
    fn collections_take_their_highest_surviving_dimension() {
        let t = t12();
        let poly = Geometry::Polygon(Polygon::new(
            ring(t, &[(0.0, 0.0), (0.0, 100.0), (100.0, 100.0)]),
            vec![],
        ));
        let far_poly = Geometry::Polygon(Polygon::new(
            ring(t, &[(9000.0, 0.0), (9000.0, 100.0), (9100.0, 100.0)]),
            vec![],
        ));
        let pt = Geometry::Point(geo::Point(ll(t, 5.0, 6.0)));
        let gc =
            |gs: Vec<Geometry<f64>>| Geometry::GeometryCollection(GeometryCollection::new_from(gs));
        let (l, _) = one(&gc(vec![pt.clone(), poly.clone()]));
        assert_eq!(l.features[0].kind, GEOM_POLYGON);
        let (l, parts) = one(&gc(vec![pt.clone(), gc(vec![far_poly])]));
        assert_eq!(
            (l.features[0].kind, parts),
            (GEOM_POINT, vec![(vec![[5, 6]], false)])
        );
        assert!(encodes_nothing(t, &gc(vec![])));
    }

    #[test]
    fn simplification_removes_sub_unit_detail_only() {
        let t = t12();
        // 401 points along a gently noisy line: collapses to its ends.
        let noisy: Vec<_> = (0..=400)
            .map(|i| {
                ll(
                    t,
                    100.0 + i as f64 * 5.0,
                    500.0 + if i % 2 == 0 { 0.2 } else { -0.2 },
                )
            })
            .collect();
        let (_, parts) = one(&Geometry::LineString(LineString::new(noisy)));
        assert_eq!(parts, vec![(vec![[100, 500], [2100, 500]], false)]);
        // A real bend of three units survives.
        let bent = LineString::new(vec![ll(t, 0.0, 0.0), ll(t, 50.0, 3.0), ll(t, 100.0, 0.0)]);
        let (_, parts) = one(&Geometry::LineString(bent));
        assert_eq!(parts[0].0, vec![[0, 0], [50, 3], [100, 0]]);
        // A polygon smaller than a tile unit at zoom 0 disappears: no tile.
        let tiny = polygon![(x: 105.0, y: 29.0), (x: 105.001, y: 29.0), (x: 105.001, y: 29.001)];
        assert!(encodes_nothing(
            TileId::new(0, 0, 0).unwrap(),
            &Geometry::Polygon(tiny)
        ));
    }

    #[test]
    fn keys_and_values_are_deduped_per_layer_with_types() {
        let t = t12();
        let g = Geometry::Point(geo::Point(ll(t, 1.0, 1.0)));
        let far = Geometry::Point(point!(x: 0.0, y: 0.0));
        let f = |id, geometry, properties| TileFeature {
            id,
            geometry,
            properties,
        };
        let layers = [
            TileLayer {
                name: "a",
                features: vec![
                    f(
                        Some(1),
                        &g,
                        vec![
                            ("name", "龙水镇".into()),
                            ("pop", Value::Int(52000)),
                            ("area", Value::Double(1.5)),
                        ],
                    ),
                    f(
                        Some(2),
                        &g,
                        vec![
                            ("name", "龙水镇".into()),
                            ("pop", Value::Int(-3)),
                            ("ok", Value::Bool(true)),
                            ("name", "dup".into()),
                        ],
                    ),
                    // Its geometry does not survive, so its key must not be written.
                    f(Some(3), &far, vec![("unused", Value::Bool(false))]),
                    f(
                        None,
                        &g,
                        vec![
                            ("area", Value::Double(1.5)),
                            ("flag", Value::Bool(true)),
                            ("n", Value::Int(52000)),
                        ],
                    ),
                ],
            },
            TileLayer {
                name: "empty",
                features: vec![f(None, &far, vec![])],
            },
            TileLayer {
                name: "b",
                features: vec![f(Some(9), &g, vec![("pop", Value::Int(52000))])],
            },
        ];
        let decoded = decode(&encode_tile(t, &layers));
        assert_eq!(
            decoded.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        let a = &decoded[0];
        assert_eq!(a.keys, vec!["name", "pop", "area", "ok", "flag", "n"]);
        assert_eq!(
            a.values,
            vec![
                DValue::Str("龙水镇".into()),
                DValue::UInt(52000),
                DValue::Double(1.5),
                DValue::SInt(-3),
                DValue::Bool(true)
            ]
        );
        assert_eq!(
            a.features.iter().map(|f| f.id).collect::<Vec<_>>(),
            vec![Some(1), Some(2), None]
        );
        assert_eq!(a.features[0].tags, vec![0, 0, 1, 1, 2, 2]);
        // The repeated "name" on feature 2 is dropped (first wins).
        assert_eq!(a.features[1].tags, vec![0, 0, 1, 3, 3, 4]);
        assert_eq!(
            a.props(&a.features[2]),
            vec![
                ("area".into(), DValue::Double(1.5)),
                ("flag".into(), DValue::Bool(true)),
                ("n".into(), DValue::UInt(52000)),
            ]
        );
        // Dictionaries are per layer.
        assert_eq!(
            (decoded[1].keys.clone(), decoded[1].values.clone()),
            (vec!["pop".to_string()], vec![DValue::UInt(52000)])
        );
    }

    #[test]
    fn values_from_json() {
        use serde_json::json;
        let v = |j: serde_json::Value| Value::from_json(&j);
        assert_eq!(v(json!("x")), Some(Value::String("x".into())));
        assert_eq!(v(json!(-5)), Some(Value::Int(-5)));
        assert_eq!(v(json!(2.5)), Some(Value::Double(2.5)));
        assert_eq!(v(json!(u64::MAX)), Some(Value::Double(u64::MAX as f64)));
        assert_eq!(v(json!(true)), Some(Value::Bool(true)));
        assert_eq!(
            v(json!({"b": 1, "a": [2]})),
            Some(Value::String(r#"{"b":1,"a":[2]}"#.into()))
        );
        assert_eq!(v(json!(null)), None);
    }

    #[test]
    fn json_text_gives_the_tags_its_values_give() {
        use serde_json::json;
        let props = json!({"s": "龙\"水", "i": -5, "u": u64::MAX, "f": 2.5, "b": true,
            "n": null, "a": [1, {"x": null}], "o": {"b": 1, "a": [2]}, "skip": 1, "e": 1e2});
        let serde_json::Value::Object(map) = &props else {
            unreachable!()
        };
        let wants = |k: &str| k != "skip";
        let g = Geometry::Point(geo::Point(ll(t12(), 10.0, 10.0)));
        let built: Vec<(&str, Value)> = map
            .iter()
            .filter(|(k, _)| wants(k))
            .filter_map(|(k, v)| Some((k.as_str(), Value::from_json(v)?)))
            .collect();
        let expected = encode_tile(
            t12(),
            &[TileLayer {
                name: "l",
                features: vec![TileFeature {
                    id: Some(1),
                    geometry: &g,
                    properties: built,
                }],
            }],
        );
        let mut w = TileWriter::new(t12());
        w.begin_layer("l");
        w.feature(Some(1), FeatureGeometry::Geo(&g), |t| {
            t.add_json_object(&props.to_string(), wants)
        });
        w.end_layer();
        assert_eq!(w.finish(), expected);
        assert_eq!(decode(&expected)[0].keys.len(), 8);
        // Not an object: nothing, and no panic.
        for bad in ["[1]", "{\"a\":", "", "{\"a\":1,}"] {
            let mut w = TileWriter::new(t12());
            w.begin_layer("l");
            w.feature(Some(1), FeatureGeometry::Geo(&g), |t| {
                t.add_json_object(bad, |_| true)
            });
            w.end_layer();
            assert!(!w.finish().is_empty());
        }
    }

    #[test]
    fn empty_input_gives_empty_tile() {
        assert!(encode_tile(t12(), &[]).is_empty());
        assert!(encode_tile(
            t12(),
            &[TileLayer {
                name: "l",
                features: vec![]
            }]
        )
        .is_empty());
    }

    #[test]
    fn protobuf_primitives() {
        for v in [
            0u64,
            1,
            127,
            128,
            300,
            16383,
            16384,
            u32::MAX as u64,
            u64::MAX,
        ] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "{v}");
            assert_eq!(Reader::new(&b).varint(), v);
        }
        assert_eq!(
            [zigzag(0), zigzag(-1), zigzag(1), zigzag(-2), zigzag(2)],
            [0, 1, 2, 3, 4]
        );
        assert_eq!(command(1, 1), 9);
        assert_eq!(command(7, 1), 15);
    }

    /// xorshift64*: deterministic randomness without a dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    #[test]
    fn random_and_hostile_input_never_panics_and_always_decodes() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let specials = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -1e300,
            90.0,
            -90.0,
            180.0,
            -180.0,
            0.0,
        ];
        for round in 0..300 {
            let z = rng.below(25) as u8;
            let n = 1u64 << z;
            let tile = TileId {
                z,
                x: rng.below(n) as u32,
                y: rng.below(n) as u32,
            };
            let b = tile.bounds_lonlat_buffered();
            let (w, h) = (b.max().x - b.min().x, b.max().y - b.min().y);
            let coord = |rng: &mut Rng| {
                if rng.below(50) == 0 {
                    let mut special = || specials[rng.below(10) as usize];
                    coord! { x: special(), y: special() }
                } else {
                    // Mostly around the tile, sometimes far out.
                    let s = if rng.below(4) == 0 { 5.0 } else { 1.2 };
                    let mut spread = || rng.unit() * s - (s - 1.0) / 2.0;
                    coord! { x: b.min().x + w * spread(), y: b.min().y + h * spread() }
                }
            };
            let mut geoms = Vec::new();
            for _ in 0..20 {
                let len = rng.below(30) as usize;
                let cs: Vec<_> = (0..len).map(|_| coord(&mut rng)).collect();
                geoms.push(match rng.below(5) {
                    0 => Geometry::MultiPoint(cs.into_iter().map(geo::Point).collect()),
                    1 => Geometry::LineString(LineString::new(cs)),
                    2 => Geometry::Polygon(Polygon::new(
                        LineString::new(cs.clone()),
                        vec![LineString::new(cs.into_iter().rev().collect())],
                    )),
                    3 => Geometry::MultiPolygon(MultiPolygon::new(vec![Polygon::new(
                        LineString::new(cs),
                        vec![],
                    )])),
                    _ => Geometry::GeometryCollection(GeometryCollection::new_from(vec![
                        Geometry::LineString(LineString::new(cs.clone())),
                        Geometry::Point(geo::Point(
                            cs.first().copied().unwrap_or(coord! { x: 0.0, y: 0.0 }),
                        )),
                    ])),
                });
            }
            let features = geoms
                .iter()
                .enumerate()
                .map(|(i, g)| TileFeature {
                    id: Some(i as u64),
                    geometry: g,
                    properties: vec![
                        ("k", Value::Int(i as i64 % 3)),
                        ("d", Value::Double(f64::NAN)),
                    ],
                })
                .collect();
            let bytes = encode_tile(
                tile,
                &[TileLayer {
                    name: "fuzz",
                    features,
                }],
            );
            // Read in place from WKB, the same geometries give the very same tile.
            let mut w = TileWriter::new(tile);
            w.begin_layer("fuzz");
            for (i, g) in geoms.iter().enumerate() {
                let wkb = crate::formats::wkb::encode(g);
                w.feature(Some(i as u64), FeatureGeometry::Wkb(&wkb), |t| {
                    t.add("k", ValueRef::Int(i as i64 % 3));
                    t.add("d", ValueRef::Double(f64::NAN));
                });
            }
            w.end_layer();
            assert_eq!(
                w.finish(),
                bytes,
                "round {round}: WKB and built geometry differ"
            );
            for l in decode(&bytes) {
                assert!(!l.features.is_empty(), "round {round}: empty layer written");
                for f in &l.features {
                    assert!(f
                        .tags
                        .iter()
                        .step_by(2)
                        .all(|&k| (k as usize) < l.keys.len()));
                    assert!(f
                        .tags
                        .iter()
                        .skip(1)
                        .step_by(2)
                        .all(|&v| (v as usize) < l.values.len()));
                    decode_geometry(f.kind, &f.geometry);
                }
            }
        }
        // Deeply nested collections are cut off, not recursed into without bound.
        let mut g = Geometry::Point(geo::Point(ll(t12(), 1.0, 1.0)));
        for _ in 0..10_000 {
            g = Geometry::GeometryCollection(GeometryCollection::new_from(vec![g]));
        }
        assert!(encodes_nothing(t12(), &g));
        std::mem::forget(g); // its recursive Drop would itself overflow the stack.
    }

    /// ~1,000 polygons of 20 vertices in a z12 tile, some crossing its edges.
    fn synthetic_polygons(tile: TileId, count: usize) -> Vec<Geometry<f64>> {
        let mut rng = Rng(42);
        (0..count)
            .map(|_| {
                let (cx, cy) = (rng.unit() * 4400.0 - 150.0, rng.unit() * 4400.0 - 150.0);
                let r = 20.0 + rng.unit() * 60.0;
                let cs: Vec<_> = (0..20)
                    .map(|i| {
                        let a = i as f64 / 20.0 * std::f64::consts::TAU;
                        let rr = r * (0.8 + 0.4 * rng.unit());
                        ll(tile, cx + rr * a.cos(), cy + rr * a.sin())
                    })
                    .collect();
                let mut ring = LineString::new(cs);
                ring.close();
                Geometry::Polygon(Polygon::new(ring, vec![]))
            })
            .collect()
    }

    #[test]
    fn benchmark_1000_polygons_at_z12() {
        let tile = t12();
        let geoms = synthetic_polygons(tile, 1000);
        let layer = || TileLayer {
            name: "parcels",
            features: geoms
                .iter()
                .enumerate()
                .map(|(i, g)| TileFeature {
                    id: Some(i as u64),
                    geometry: g,
                    properties: vec![
                        ("id", Value::Int(i as i64)),
                        ("kind", Value::from(["居住", "商业", "工业"][i % 3])),
                        ("area", Value::Double(i as f64 * 0.5)),
                    ],
                })
                .collect::<Vec<_>>(),
        };
        let mut times = Vec::new();
        let mut size = 0;
        for _ in 0..51 {
            let layers = [layer()];
            let start = std::time::Instant::now();
            let bytes = encode_tile(tile, &layers);
            times.push(start.elapsed());
            size = bytes.len();
            std::hint::black_box(bytes);
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let n = decode(&encode_tile(tile, &[layer()]))[0].features.len();
        let min = times[0];
        println!("encode_tile: 1000 x 20-vertex polygons at z12 -> {n} features, {size} bytes");
        println!("encode_tile: p50 {p50:?} (min {min:?})");
        assert!(n > 900);
        if !cfg!(debug_assertions) {
            assert!(p50 < std::time::Duration::from_millis(25), "p50 {p50:?}");
        }
    }

    // -----------------------------------------------------------------------------------------
    // GDAL's MVT driver as an independent decoder.

    fn web_mercator(c: Coord<f64>) -> [f64; 2] {
        const R: f64 = 6_378_137.0;
        [
            c.x.to_radians() * R,
            (std::f64::consts::FRAC_PI_4 + c.y.to_radians() / 2.0)
                .tan()
                .ln()
                * R,
        ]
    }

    /// Every number pair in a WKT line.
    fn wkt_coords(line: &str) -> Vec<[f64; 2]> {
        let nums: Vec<f64> = line
            .split(|c: char| {
                !(c.is_ascii_digit() || c == '.' || c == '-' || c == 'e' || c == 'E' || c == '+')
            })
            .filter_map(|s| s.parse().ok())
            .collect();
        nums.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
    }

    #[test]
    fn gdal_ogrinfo_reads_the_tile() {
        let have = std::process::Command::new("ogrinfo")
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "ogrinfo (gdal-bin) is required in CI"
            );
            println!("skipped: ogrinfo not found (apt-get install gdal-bin)");
            return;
        }
        let t = t12();
        let town = Geometry::Point(point!(x: 105.76205, y: 29.56555));
        let road = Geometry::LineString(
            line_string![(x: 105.735, y: 29.55), (x: 105.75, y: 29.56), (x: 105.77, y: 29.555)],
        );
        let parcel = Geometry::Polygon(polygon!(
            exterior: [
                (x: 105.74, y: 29.545), (x: 105.76, y: 29.545),
                (x: 105.76, y: 29.565), (x: 105.74, y: 29.565),
            ],
            interiors: [[
                (x: 105.745, y: 29.55), (x: 105.755, y: 29.55),
                (x: 105.755, y: 29.56), (x: 105.745, y: 29.56),
            ]],
        ));
        let layers = [
            TileLayer {
                name: "towns",
                features: vec![TileFeature {
                    id: Some(1),
                    geometry: &town,
                    properties: vec![
                        ("name", "龙水镇".into()),
                        ("pop", Value::Int(52000)),
                        ("capital", Value::Bool(false)),
                    ],
                }],
            },
            TileLayer {
                name: "plan",
                features: vec![
                    TileFeature {
                        id: Some(2),
                        geometry: &road,
                        properties: vec![("kind", "road".into()), ("width", Value::Double(12.5))],
                    },
                    TileFeature {
                        id: Some(3),
                        geometry: &parcel,
                        properties: vec![("kind", "parcel".into()), ("width", Value::Double(0.0))],
                    },
                ],
            },
        ];
        let bytes = encode_tile(t, &layers);
        let dir = std::env::temp_dir().join(format!("mvt-gdal-{}", std::process::id()));
        let path = dir.join("12/3251/1695.pbf");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &bytes).unwrap();
        let out = std::process::Command::new("ogrinfo")
            .args([
                "-ro", "-al", "-oo", "Z=12", "-oo", "X=3251", "-oo", "Y=1695",
            ])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "ogrinfo failed: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        for want in [
            "Layer name: towns",
            "Layer name: plan",
            "name (String) = 龙水镇",
            "pop (Integer) = 52000",
            "capital (Integer(Boolean)) = 0",
            "kind (String) = road",
            "kind (String) = parcel",
            "width (Real) = 12.5",
            "mvt_id (Integer64) = 3",
        ] {
            assert!(
                text.contains(want),
                "ogrinfo output lacks {want:?}:\n{text}"
            );
        }
        assert_eq!(text.matches("Feature Count: 1").count(), 1, "{text}");
        assert_eq!(text.matches("Feature Count: 2").count(), 1, "{text}");

        // Every coordinate GDAL reports lies within one tile unit of an input vertex, and every
        // input vertex is reported.
        let unit = 2.0 * PI * 6_378_137.0 / tiles_per_side(12) / f64::from(EXTENT);
        let near =
            |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() <= unit && (a[1] - b[1]).abs() <= unit;
        let mut checked = 0;
        for (prefix, geom) in [
            ("  POINT", &town),
            ("  LINESTRING", &road),
            ("  POLYGON", &parcel),
        ] {
            let line = text
                .lines()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix} in:\n{text}"));
            let got = wkt_coords(line);
            let want: Vec<[f64; 2]> = geo::CoordsIter::coords_iter(geom)
                .map(web_mercator)
                .collect();
            for g in &got {
                assert!(
                    want.iter().any(|w| near(*g, *w)),
                    "{prefix}: {g:?} is not within a unit ({unit} m) of the input"
                );
                checked += 1;
            }
            for w in &want {
                assert!(
                    got.iter().any(|g| near(*g, *w)),
                    "{prefix}: input {w:?} missing from {line}"
                );
            }
        }
        println!(
            "ogrinfo decoded both layers; {checked} coordinates within one tile unit ({unit:.3} m)"
        );
    }
}
