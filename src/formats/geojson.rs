//! GeoJSON (RFC 7946): decoding FeatureCollections for imports, and a fast writer for responses.
//! Decoding checks every feature and reports the first problems by feature, never half a file.

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};
use serde::Deserialize;
use serde_json::Value;

use crate::geom::crs::Crs;
use crate::geom::validate_geometry;
use crate::model::{Feature, Properties};

/// How many problems an import error lists before it just counts.
pub const MAX_LISTED_PROBLEMS: usize = 20;

/// One feature that could not be read, named by its position and id.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FeatureProblem {
    /// 0-based position in the `features` array.
    pub index: usize,
    pub id: Option<String>,
    pub problem: String,
}

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not GeoJSON: {0}")]
    Syntax(String),
    #[error("expected a GeoJSON FeatureCollection, got {0}")]
    NotAFeatureCollection(String),
    /// The collection's `"crs"` member cannot be used.
    #[error("{0}")]
    Crs(String),
    /// The consumer of the features stopped the decoding.
    #[error("decoding was stopped")]
    Cancelled,
    #[error("{} of {total} features are invalid; first: {}", .problems_total, first_problems(.problems))]
    Features {
        problems: Vec<FeatureProblem>,
        problems_total: usize,
        total: usize,
    },
}

fn first_problems(p: &[FeatureProblem]) -> String {
    p.iter()
        .take(3)
        .map(|p| match &p.id {
            Some(id) => format!("feature {} (id {id}): {}", p.index, p.problem),
            None => format!("feature {}: {}", p.index, p.problem),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Reads a FeatureCollection into features of `layer`. Features without an `id` get `None` ids
/// (the store numbers them). Any invalid feature fails the whole collection. (Imports use
/// [`stream_feature_collection`], which never holds the whole collection.)
pub fn decode_feature_collection(
    bytes: &[u8],
    layer: &str,
) -> Result<Vec<(Option<String>, Feature)>, DecodeError> {
    let mut out = Vec::new();
    stream_feature_collection(
        serde_json::de::SliceRead::new(bytes),
        layer,
        &StreamOptions::default(),
        &mut |f: Feature| {
            out.push(f);
            true
        },
    )?;
    Ok(out
        .into_iter()
        .map(|f| ((!f.id.is_empty()).then(|| f.id.clone()), f))
        .collect())
}

/// How [`stream_feature_collection`] reads.
#[derive(Debug, Clone, Default)]
pub struct StreamOptions {
    /// The coordinates' CRS, overriding the legacy `"crs"` member. With a CRS (given or from
    /// the member) geometries are transformed to stored lon/lat and polygons oriented as
    /// RFC 7946 wants; without, coordinates are taken as CGCS2000/WGS 84 lon/lat as they are.
    pub crs: Option<Crs>,
    /// Accept a single GeoJSON Feature as well as a FeatureCollection.
    pub allow_single_feature: bool,
    /// Leave repeated ids to the store (an import with [`crate::store::Ids::Once`]): the
    /// decoder then keeps nothing of the ids it passed on, and its memory does not grow with
    /// the number of features. Otherwise a repeated id is one of the problems it reports.
    pub store_checks_repeats: bool,
}

/// What [`stream_feature_collection`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// How many features were read (all valid, else the result is an error).
    pub total: usize,
    /// The input was a single Feature, not a collection.
    pub single: bool,
    /// The id the first feature gave, if any.
    pub first_id: Option<String>,
}

/// Decodes a FeatureCollection feature by feature as it is read, handing each valid feature of
/// `layer` to `sink` (with its id from the file, or an empty id for the store to number), so
/// that memory does not grow with the size of the input. The collection's `"crs"` member
/// counts only when it comes before `"features"` (as GDAL and QGIS write it).
///
/// All or nothing: after the first invalid feature nothing more goes to `sink`, the rest is
/// still checked, and the result is [`DecodeError::Features`] listing the first
/// [`MAX_LISTED_PROBLEMS`] problems and counting all; a caller must discard what `sink`
/// received unless the result is `Ok`. `sink` returns `false` to stop (then
/// [`DecodeError::Cancelled`]).
pub fn stream_feature_collection<'de, R: serde_json::de::Read<'de>>(
    read: R,
    layer: &str,
    options: &StreamOptions,
    sink: &mut dyn FnMut(Feature) -> bool,
) -> Result<StreamSummary, DecodeError> {
    let mut state = StreamState {
        layer,
        crs: options.crs,
        crs_given: options.crs.is_some(),
        sink,
        kind: None,
        features_seen: false,
        single: SingleFeature::default(),
        problems: Vec::new(),
        problems_total: 0,
        total: 0,
        first_id: None,
        seen: (!options.store_checks_repeats).then(std::collections::HashSet::new),
        at: None,
        failure: None,
    };
    let mut de = serde_json::Deserializer::new(read);
    let parsed = serde::de::DeserializeSeed::deserialize(RootSeed(&mut state), &mut de)
        .and_then(|()| de.end());
    if let Some(failure) = state.failure.take() {
        return Err(failure);
    }
    if let Err(e) = parsed {
        return Err(DecodeError::Syntax(match state.at {
            Some(i) => format!("feature {i}: {e}"),
            None => e.to_string(),
        }));
    }
    let single = match state.kind.as_deref() {
        Some("FeatureCollection") if state.features_seen => false,
        Some("FeatureCollection") => {
            return Err(DecodeError::NotAFeatureCollection(
                "no \"features\" array".into(),
            ))
        }
        Some("Feature") if options.allow_single_feature && !state.features_seen => {
            let one = std::mem::take(&mut state.single);
            let raw = RawFeature {
                kind: Some(Value::String("Feature".into())),
                id: one.id,
                properties: one.properties,
                geometry: one
                    .geometry
                    .map(|g| RawGeometry::deserialize(&g).unwrap_or(RawGeometry::Bad)),
            };
            state.feature(raw);
            true
        }
        Some(other) => return Err(DecodeError::NotAFeatureCollection(format!("\"{other}\""))),
        None => {
            return Err(DecodeError::NotAFeatureCollection(
                "an object without \"type\"".into(),
            ))
        }
    };
    if state.problems_total > 0 {
        return Err(DecodeError::Features {
            problems: state.problems,
            problems_total: state.problems_total,
            total: state.total,
        });
    }
    if state.failure.is_some() {
        return Err(DecodeError::Cancelled);
    }
    Ok(StreamSummary {
        total: state.total,
        single,
        first_id: state.first_id,
    })
}

/// The members of a root-level single Feature, kept until its `type` is known.
#[derive(Default)]
struct SingleFeature {
    id: Option<Value>,
    properties: Option<Value>,
    geometry: Option<Value>,
}

struct StreamState<'s, 'l> {
    layer: &'l str,
    crs: Option<Crs>,
    crs_given: bool,
    sink: &'s mut dyn FnMut(Feature) -> bool,
    kind: Option<String>,
    features_seen: bool,
    single: SingleFeature,
    problems: Vec<FeatureProblem>,
    problems_total: usize,
    total: usize,
    first_id: Option<String>,
    /// 128-bit hashes of the ids seen so far (16 bytes a feature, not the ids themselves);
    /// `None` when the store checks for repeats.
    seen: Option<std::collections::HashSet<u128>>,
    /// The index of the feature being parsed, to name it in syntax errors.
    at: Option<usize>,
    /// Set when decoding must stop with an error other than a syntax error.
    failure: Option<DecodeError>,
}

impl StreamState<'_, '_> {
    /// Checks one feature; passes it on, or notes its problem.
    fn feature(&mut self, raw: RawFeature) {
        let index = self.total;
        self.total += 1;
        let id = match &raw.id {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        if index == 0 {
            self.first_id = id.clone();
        }
        let result =
            raw.into_feature(self.layer, self.crs.as_ref())
                .and_then(|feature| match &id {
                    Some(id)
                        if self.seen.as_mut().is_some_and(|seen| {
                            !seen.insert(xxhash_rust::xxh3::xxh3_128(id.as_bytes()))
                        }) =>
                    {
                        Err(format!("id {id} appears more than once"))
                    }
                    _ => Ok(feature),
                });
        match result {
            Ok(mut feature) if self.problems_total == 0 && self.failure.is_none() => {
                feature.id = id.unwrap_or_default();
                if !(self.sink)(feature) {
                    self.failure = Some(DecodeError::Cancelled);
                }
            }
            Ok(_) => {}
            Err(problem) => {
                self.problems_total += 1;
                if self.problems.len() < MAX_LISTED_PROBLEMS {
                    self.problems.push(FeatureProblem { index, id, problem });
                }
            }
        }
    }
}

struct RootSeed<'a, 's, 'l>(&'a mut StreamState<'s, 'l>);

impl<'de> serde::de::DeserializeSeed<'de> for RootSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RootSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a GeoJSON FeatureCollection object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::{Error as _, IgnoredAny};
        let state = self.0;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => {
                    let v: Value = map.next_value()?;
                    state.kind = Some(match v {
                        Value::String(s) => s,
                        other => other.to_string(),
                    });
                }
                "crs" => {
                    let v: Value = map.next_value()?;
                    if state.crs_given {
                        continue;
                    }
                    let Some(name) = v.pointer("/properties/name").and_then(Value::as_str) else {
                        continue;
                    };
                    match Crs::parse(name) {
                        // CRS84 after the features is what they were read as anyway.
                        Ok(Crs::Crs84) if state.total > 0 && state.crs.is_none() => {}
                        Ok(crs) if state.total > 0 && state.crs != Some(crs) => {
                            state.failure = Some(DecodeError::Crs(format!(
                                "the \"crs\" member ({name}) comes after the features; put it \
                                 before \"features\" or give the coordinate system with the import"
                            )));
                            return Err(A::Error::custom("crs after features"));
                        }
                        Ok(crs) => state.crs = Some(crs),
                        Err(e) => {
                            state.failure = Some(DecodeError::Crs(format!(
                                "the \"crs\" member names {name}, which is not supported: {e}"
                            )));
                            return Err(A::Error::custom("unsupported crs"));
                        }
                    }
                }
                "features" => {
                    state.features_seen = true;
                    map.next_value_seed(FeaturesSeed(&mut *state))?;
                    if state.failure.is_some() {
                        return Err(A::Error::custom("stopped"));
                    }
                }
                "id" => state.single.id = Some(map.next_value()?),
                "properties" => state.single.properties = Some(map.next_value()?),
                "geometry" => state.single.geometry = Some(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

struct FeaturesSeed<'a, 's, 'l>(&'a mut StreamState<'s, 'l>);

impl<'de> serde::de::DeserializeSeed<'de> for FeaturesSeed<'_, '_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FeaturesSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a \"features\" array")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let state = self.0;
        loop {
            state.at = Some(state.total);
            match seq.next_element::<RawFeature>()? {
                Some(raw) => state.feature(raw),
                None => break,
            }
            if state.failure.is_some() {
                // Cancelled: skip the rest without looking.
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                break;
            }
        }
        state.at = None;
        Ok(())
    }
}

/// Accepts any JSON value a GeoJSON member might wrongly hold, consuming it, so that a wrong
/// type is a problem of one feature rather than a syntax error of the whole input.
macro_rules! tolerate_other_json {
    ($bad:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($bad("a boolean".into()))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok($bad(v.to_string()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok($bad(v.to_string()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok($bad(v.to_string()))
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok($bad(Value::String(v.into()).to_string()))
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($bad("null".into()))
        }
    };
}

/// One element of a `features` array, members read but not yet checked.
#[derive(Default)]
struct RawFeature {
    kind: Option<Value>,
    id: Option<Value>,
    properties: Option<Value>,
    geometry: Option<RawGeometry>,
}

impl<'de> Deserialize<'de> for RawFeature {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawFeatureVisitor)
    }
}

struct RawFeatureVisitor;

impl<'de> serde::de::Visitor<'de> for RawFeatureVisitor {
    type Value = RawFeature;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a GeoJSON Feature")
    }

    tolerate_other_json!(|_: String| RawFeature::default());

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawFeature, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawFeature::default())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawFeature, A::Error> {
        let mut raw = RawFeature::default();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => raw.kind = Some(map.next_value()?),
                "id" => raw.id = Some(map.next_value()?),
                "properties" => raw.properties = Some(map.next_value()?),
                "geometry" => raw.geometry = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(raw)
    }
}

impl RawFeature {
    fn into_feature(self, layer: &str, crs: Option<&Crs>) -> Result<Feature, String> {
        if self.kind.as_ref().and_then(Value::as_str) != Some("Feature") {
            return Err("not a GeoJSON Feature (\"type\": \"Feature\" missing)".into());
        }
        if let Some(id) = &self.id {
            if !(id.is_string() || id.is_number() || id.is_null()) {
                return Err("id must be a string or a number".into());
            }
        }
        let properties: Properties = match self.properties {
            None | Some(Value::Null) => Properties::new(),
            Some(Value::Object(m)) => m,
            Some(_) => return Err("properties must be an object or null".into()),
        };
        let geometry = match self.geometry {
            None | Some(RawGeometry::Null) => None,
            Some(g) => {
                let geom = g.to_geo(0)?;
                Some(match crs {
                    Some(crs) => crate::formats::exchange::to_stored(crs, &geom)?,
                    None => {
                        validate_geometry(&geom).map_err(|p| format!("geometry: {p}"))?;
                        crate::geom::within_china(&geom).map_err(|p| format!("geometry: {p}"))?;
                        geom
                    }
                })
            }
        };
        Ok(Feature::from_parts(
            layer,
            String::new(),
            properties,
            geometry,
        ))
    }
}

/// A GeoJSON geometry object as read, before its coordinates are checked.
enum RawGeometry {
    Null,
    Object {
        kind: Option<Value>,
        coordinates: Option<Coords>,
        /// The members of a GeometryCollection, or `Err` when `geometries` is not an array.
        geometries: Option<Result<Vec<RawGeometry>, ()>>,
    },
    /// Not an object.
    Bad,
}

impl<'de> Deserialize<'de> for RawGeometry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawGeometryVisitor)
    }
}

struct RawGeometryVisitor;

impl<'de> serde::de::Visitor<'de> for RawGeometryVisitor {
    type Value = RawGeometry;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a GeoJSON geometry")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Bad)
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Bad)
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Bad)
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Bad)
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Bad)
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Null)
    }
    fn visit_none<E: serde::de::Error>(self) -> Result<RawGeometry, E> {
        Ok(RawGeometry::Null)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawGeometry, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(RawGeometry::Bad)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawGeometry, A::Error> {
        let mut kind = None;
        let mut coordinates = None;
        let mut geometries = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "type" => kind = Some(map.next_value()?),
                "coordinates" => coordinates = Some(map.next_value()?),
                "geometries" => geometries = Some(map.next_value::<Members>()?.0),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(RawGeometry::Object {
            kind,
            coordinates,
            geometries,
        })
    }
}

/// The `geometries` of a GeometryCollection.
struct Members(Result<Vec<RawGeometry>, ()>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(MembersVisitor)
    }
}

struct MembersVisitor;

impl<'de> serde::de::Visitor<'de> for MembersVisitor {
    type Value = Members;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an array of geometries")
    }

    tolerate_other_json!(|_: String| Members(Err(())));

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Members(Err(())))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Members, A::Error> {
        let mut out = Vec::new();
        while let Some(g) = seq.next_element()? {
            out.push(g);
        }
        Ok(Members(Ok(out)))
    }
}

/// Nested coordinate arrays as read: numbers, lists, or something else (as its JSON text).
enum Coords {
    Num(f64),
    List(Vec<Coords>),
    Other(String),
}

impl<'de> Deserialize<'de> for Coords {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(CoordsVisitor)
    }
}

struct CoordsVisitor;

impl<'de> serde::de::Visitor<'de> for CoordsVisitor {
    type Value = Coords;
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("GeoJSON coordinates")
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Coords, E> {
        Ok(Coords::Other(v.to_string()))
    }
    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Coords, E> {
        Ok(Coords::Num(v as f64))
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Coords, E> {
        Ok(Coords::Num(v as f64))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Coords, E> {
        Ok(Coords::Num(v))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Coords, E> {
        Ok(Coords::Other(Value::String(v.into()).to_string()))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Coords, E> {
        Ok(Coords::Other("null".into()))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Coords, A::Error> {
        while map
            .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
            .is_some()
        {}
        Ok(Coords::Other("an object".into()))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Coords, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(c) = seq.next_element()? {
            out.push(c);
        }
        Ok(Coords::List(out))
    }
}

impl Coords {
    fn describe(&self) -> String {
        match self {
            Coords::Num(n) => n.to_string(),
            Coords::List(_) => "an array".into(),
            Coords::Other(s) => s.clone(),
        }
    }
}

fn position(v: &Coords, at: &str) -> Result<Coord<f64>, String> {
    let Coords::List(arr) = v else {
        return Err(format!("{at}: a position must be an array of numbers"));
    };
    if arr.len() < 2 {
        return Err(format!(
            "{at}: a position needs at least 2 numbers, has {}",
            arr.len()
        ));
    }
    let num = |i: usize| match &arr[i] {
        Coords::Num(n) => Ok(*n),
        other => Err(format!(
            "{at}: coordinate {i} is not a number: {}",
            other.describe()
        )),
    };
    Ok(Coord {
        x: num(0)?,
        y: num(1)?,
    })
}

fn positions(v: &Coords, at: &str) -> Result<LineString<f64>, String> {
    let Coords::List(arr) = v else {
        return Err(format!("{at}: expected an array of positions"));
    };
    arr.iter()
        .enumerate()
        .map(|(i, p)| position(p, &format!("{at}point {i}")))
        .collect::<Result<Vec<_>, _>>()
        .map(LineString)
}

fn polygon(v: &Coords, at: &str) -> Result<Polygon<f64>, String> {
    let Coords::List(rings) = v else {
        return Err(format!("{at}expected an array of rings"));
    };
    let mut rings = rings
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let ring = positions(r, &format!("{at}ring {i}, "))?;
            // Checked here, before geo's Polygon::new silently closes rings.
            if ring.0.len() < 4 {
                return Err(format!(
                    "{at}ring {i}: a polygon ring needs at least 4 positions, has {}",
                    ring.0.len()
                ));
            }
            if ring.0.first() != ring.0.last() {
                return Err(format!(
                    "{at}ring {i}: ring is not closed (first and last positions differ)"
                ));
            }
            Ok(ring)
        })
        .collect::<Result<Vec<_>, _>>()?;
    if rings.is_empty() {
        return Ok(Polygon::new(LineString(vec![]), vec![]));
    }
    let exterior = rings.remove(0);
    Ok(Polygon::new(exterior, rings))
}

/// How deep GeometryCollections may nest inside each other.
pub const MAX_COLLECTION_DEPTH: usize = 8;

impl RawGeometry {
    fn to_geo(&self, depth: usize) -> Result<Geometry<f64>, String> {
        if depth > MAX_COLLECTION_DEPTH {
            return Err(format!(
                "geometry collections nest too deep (more than {MAX_COLLECTION_DEPTH} levels)"
            ));
        }
        let RawGeometry::Object {
            kind,
            coordinates,
            geometries,
        } = self
        else {
            return Err("geometry has no \"type\"".into());
        };
        let kind = kind
            .as_ref()
            .and_then(Value::as_str)
            .ok_or("geometry has no \"type\"")?;
        if kind == "GeometryCollection" {
            let Some(Ok(members)) = geometries else {
                return Err("GeometryCollection has no \"geometries\" array".into());
            };
            return members
                .iter()
                .map(|m| m.to_geo(depth + 1))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| Geometry::GeometryCollection(geo::GeometryCollection(v)));
        }
        let c = coordinates
            .as_ref()
            .ok_or_else(|| format!("{kind} geometry has no \"coordinates\""))?;
        let list = |at: &str| match c {
            Coords::List(l) => Ok(l),
            _ => Err(format!("{at}: coordinates must be an array")),
        };
        Ok(match kind {
            "Point" => Geometry::Point(Point(position(c, "point")?)),
            "MultiPoint" => Geometry::MultiPoint(MultiPoint(
                positions(c, "")?.0.into_iter().map(Point).collect(),
            )),
            "LineString" => {
                let l = positions(c, "")?;
                if l.0.len() < 2 {
                    return Err(format!(
                        "a LineString needs at least 2 positions, has {}",
                        l.0.len()
                    ));
                }
                Geometry::LineString(l)
            }
            "MultiLineString" => Geometry::MultiLineString(MultiLineString(
                list("MultiLineString")?
                    .iter()
                    .enumerate()
                    .map(|(i, l)| positions(l, &format!("line {i}, ")))
                    .collect::<Result<_, _>>()?,
            )),
            "Polygon" => Geometry::Polygon(polygon(c, "")?),
            "MultiPolygon" => Geometry::MultiPolygon(MultiPolygon(
                list("MultiPolygon")?
                    .iter()
                    .enumerate()
                    .map(|(i, p)| polygon(p, &format!("polygon {i}, ")))
                    .collect::<Result<_, _>>()?,
            )),
            other => return Err(format!("unknown geometry type \"{other}\"")),
        })
    }
}

/// Converts a GeoJSON geometry object to a `geo` geometry, naming the place of any fault.
/// `depth` is how deep in GeometryCollections `g` already lies.
pub fn decode_geometry(g: &Value, depth: usize) -> Result<Geometry<f64>, String> {
    RawGeometry::deserialize(g)
        .map_err(|e| format!("geometry: {e}"))?
        .to_geo(depth)
}

/// Writes a number the shortest way that reads back exactly.
fn number(out: &mut String, v: f64) {
    // An integer: the cast is exact below 2⁶³ (and NaN fails the range).
    if v.abs() < 1e15 && (v as i64) as f64 == v {
        out.push_str(itoa::Buffer::new().format(v as i64));
    } else if !eight_decimals(out, v) {
        out.push_str(ryu::Buffer::new().format(v));
    }
}

/// Writes `v` when it is a decimal of at most eight places (coordinates as most sources
/// store them) with integers only, and says whether it did; see [`decimal_into`].
fn eight_decimals(out: &mut String, v: f64) -> bool {
    let mut text = [0u8; DECIMAL_BYTES];
    match decimal_into(&mut text, 0, v) {
        Some(end) => {
            out.push_str(std::str::from_utf8(&text[..end]).unwrap_or_default());
            true
        }
        None => false,
    }
}

/// "00" to "99".
const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// The most bytes [`decimal_into`] writes: a sign, six digits, the point and eight places.
const DECIMAL_BYTES: usize = 16;

/// Writes `v` at `buf[at..]` when its magnitude is within 10⁻³..10⁶ and it is a decimal of at
/// most eight places, and gives the end; `None` (nothing meant) otherwise. The text is the one
/// `ryu` (or, for an integer, `itoa`) writes: the decimal `s / 10⁸` rounds to `v`, and no other
/// decimal of eight places or fewer does (they lie 10⁻⁸ apart, far more than `v`'s spacing
/// below 10⁶), so it is the shortest. Integer arithmetic only, and no call to `round` (a libm
/// call on baseline x86-64): adding ½ and truncating rounds `a · 10⁸`, and the check that
/// `s / 10⁸` reads back as `a` rejects any other `s`. `buf` must hold [`DECIMAL_BYTES`] more.
fn decimal_into(buf: &mut [u8], at: usize, v: f64) -> Option<usize> {
    let a = v.abs();
    if !(1e-3..1e6).contains(&a) {
        return None;
    }
    // Signed conversions (one instruction each; the unsigned ones take several): s < 10¹⁴.
    let s = (a * 1e8 + 0.5) as i64;
    if s as f64 / 1e8 != a {
        return None;
    }
    let s = s as u64;
    let (whole, frac) = ((s / 100_000_000) as u32, (s % 100_000_000) as u32);
    let mut at = at;
    if v < 0.0 {
        buf[at] = b'-';
        at += 1;
    }
    let digits = match whole {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        1_000..=9_999 => 4,
        10_000..=99_999 => 5,
        _ => 6,
    };
    let mut rest = whole;
    for d in buf[at..at + digits].iter_mut().rev() {
        *d = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    at += digits;
    if frac == 0 {
        return Some(at);
    }
    buf[at] = b'.';
    // The eight places two at a time (four independent divisions, not a chain of eight),
    // gathered in one register and stored at once: read back from memory, eight byte stores
    // would stall the load until they retire (no store-to-load forwarding across them).
    let (high, low) = (frac / 10_000, frac % 10_000);
    let pair = |p: u32| {
        let p = 2 * p as usize;
        u64::from(u16::from_le_bytes([DIGIT_PAIRS[p], DIGIT_PAIRS[p + 1]]))
    };
    let places =
        pair(high / 100) | pair(high % 100) << 16 | pair(low / 100) << 32 | pair(low % 100) << 48;
    buf[at + 1..at + 9].copy_from_slice(&places.to_le_bytes());
    // Trailing '0' places dropped without a loop: XOR with "00000000" leaves a zero byte for
    // each '0', and the last place that is not (little-endian: the highest non-zero byte; one
    // exists, as `frac` is not 0) ends the text.
    let places = places ^ u64::from_le_bytes(*b"00000000");
    Some(at + 9 - (places.leading_zeros() / 8) as usize)
}

/// Writes `[x,y]` at `buf[at..]` and gives the end, when both numbers take [`decimal_into`]'s
/// way, as most coordinates do; `None` (nothing meant) otherwise. `buf` must hold
/// [`COORD_BYTES`] more.
fn coord_into(buf: &mut [u8], at: usize, c: &Coord<f64>) -> Option<usize> {
    buf[at] = b'[';
    let end = decimal_into(buf, at + 1, c.x)?;
    buf[end] = b',';
    let end = decimal_into(buf, end + 1, c.y)?;
    buf[end] = b']';
    Some(end + 1)
}

/// The most bytes [`coord_into`] writes.
const COORD_BYTES: usize = 3 + 2 * DECIMAL_BYTES;

/// Appends ASCII text made on the stack.
fn push_ascii(out: &mut String, text: &[u8]) {
    out.push_str(std::str::from_utf8(text).unwrap_or_default());
}

/// Writes `[x,y]` the slow way (any number).
fn coord_slow(out: &mut String, c: &Coord<f64>) {
    out.push('[');
    number(out, c.x);
    out.push(',');
    number(out, c.y);
    out.push(']');
}

/// Writes `[x,y]`.
fn coord(out: &mut String, c: &Coord<f64>) {
    let mut text = [0u8; COORD_BYTES];
    match coord_into(&mut text, 0, c) {
        Some(end) => push_ascii(out, &text[..end]),
        None => coord_slow(out, c),
    }
}

/// Writes `[[x,y],…]`: the coordinates assembled in a stack buffer, appended (and checked as
/// text) a few hundred bytes at a time instead of one pair at a time.
fn coords(out: &mut String, it: impl Iterator<Item = Coord<f64>>) {
    const BUF: usize = 768;
    let mut buf = [0u8; BUF];
    buf[0] = b'[';
    let mut len = 1;
    for (i, c) in it.enumerate() {
        // Room for a comma, a pair and the closing bracket.
        if len + 2 + COORD_BYTES > BUF {
            push_ascii(out, &buf[..len]);
            len = 0;
        }
        if i > 0 {
            buf[len] = b',';
            len += 1;
        }
        match coord_into(&mut buf, len, &c) {
            Some(end) => len = end,
            None => {
                push_ascii(out, &buf[..len]);
                len = 0;
                coord_slow(out, &c);
            }
        }
    }
    buf[len] = b']';
    push_ascii(out, &buf[..=len]);
}

fn polygon_coords(out: &mut String, p: &Polygon<f64>) {
    out.push('[');
    if !p.exterior().0.is_empty() {
        coords(out, p.exterior().0.iter().copied());
        for hole in p.interiors() {
            out.push(',');
            coords(out, hole.0.iter().copied());
        }
    }
    out.push(']');
}

/// Appends a geometry as a GeoJSON object.
pub fn write_geometry(out: &mut String, g: &Geometry<f64>) {
    let head = |out: &mut String, kind: &str| {
        out.push_str("{\"type\":\"");
        out.push_str(kind);
        out.push_str("\",\"coordinates\":");
    };
    match g {
        Geometry::Point(p) => {
            head(out, "Point");
            coord(out, &p.0);
        }
        Geometry::LineString(l) => {
            head(out, "LineString");
            coords(out, l.0.iter().copied());
        }
        Geometry::Polygon(p) => {
            head(out, "Polygon");
            polygon_coords(out, p);
        }
        Geometry::MultiPoint(mp) => {
            head(out, "MultiPoint");
            coords(out, mp.0.iter().map(|p| p.0));
        }
        Geometry::MultiLineString(ml) => {
            head(out, "MultiLineString");
            out.push('[');
            for (i, l) in ml.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                coords(out, l.0.iter().copied());
            }
            out.push(']');
        }
        Geometry::MultiPolygon(mp) => {
            head(out, "MultiPolygon");
            out.push('[');
            for (i, p) in mp.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                polygon_coords(out, p);
            }
            out.push(']');
        }
        Geometry::GeometryCollection(gc) => {
            out.push_str("{\"type\":\"GeometryCollection\",\"geometries\":[");
            for (i, g) in gc.0.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_geometry(out, g);
            }
            out.push(']');
        }
        Geometry::Line(l) => return write_geometry(out, &Geometry::LineString((*l).into())),
        Geometry::Rect(r) => return write_geometry(out, &Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => return write_geometry(out, &Geometry::Polygon(t.to_polygon())),
    }
    out.push('}');
}

/// Appends WKB as a GeoJSON geometry, read in place (issue 15), or `null` when it is unreadable.
/// WKB that [`write_geometry`] would write differently from the bytes' own structure (a
/// multi-geometry with members of another type, a polygon with holes but no exterior) takes
/// the decoding path, so both give the same text.
pub fn write_wkb_geometry(out: &mut String, bytes: &[u8]) {
    use crate::formats::wkb::{self, Coords, Kind, Visit};
    struct Writer<'o> {
        out: &'o mut String,
        /// Open geometries: kind and members (or rings) seen so far.
        open: Vec<(Kind, usize)>,
        odd: bool,
    }
    fn name(k: Kind) -> &'static str {
        match k {
            Kind::Point => "Point",
            Kind::LineString => "LineString",
            Kind::Polygon => "Polygon",
            Kind::MultiPoint => "MultiPoint",
            Kind::MultiLineString => "MultiLineString",
            Kind::MultiPolygon => "MultiPolygon",
            Kind::GeometryCollection => "GeometryCollection",
        }
    }
    impl Visit for Writer<'_> {
        fn begin(&mut self, kind: Kind, _parts: usize) {
            let parent = self.open.last_mut().map(|(k, n)| {
                *n += 1;
                (*k, *n)
            });
            let member = match parent {
                None => false,
                Some((Kind::GeometryCollection, n)) => {
                    if n > 1 {
                        self.out.push(',');
                    }
                    false
                }
                Some((p, n)) => {
                    let fits = matches!(
                        (p, kind),
                        (Kind::MultiPoint, Kind::Point)
                            | (Kind::MultiLineString, Kind::LineString)
                            | (Kind::MultiPolygon, Kind::Polygon)
                    );
                    self.odd |= !fits;
                    if n > 1 {
                        self.out.push(',');
                    }
                    true
                }
            };
            if !member {
                self.out.push_str("{\"type\":\"");
                self.out.push_str(name(kind));
                self.out.push_str(if kind == Kind::GeometryCollection {
                    "\",\"geometries\":"
                } else {
                    "\",\"coordinates\":"
                });
            }
            if !matches!(kind, Kind::Point | Kind::LineString) {
                self.out.push('[');
            }
            self.open.push((kind, 0));
        }

        fn coords(&mut self, c: Coords<'_>) {
            let Some((kind, rings)) = self.open.last_mut() else {
                return;
            };
            if *kind == Kind::Polygon {
                *rings += 1;
                if *rings > 1 {
                    self.out.push(',');
                }
            }
            let (kind, rings) = (*kind, *rings);
            if kind == Kind::Polygon && rings == 1 && c.is_empty() {
                // write_geometry writes a polygon without exterior as `[]`, holes and all.
                self.odd = true;
            }
            if kind == Kind::Point {
                c.iter().take(1).for_each(|c| coord(self.out, &c));
                return;
            }
            coords(self.out, c.iter());
        }

        fn end(&mut self, kind: Kind) {
            self.open.pop();
            if !matches!(kind, Kind::Point | Kind::LineString) {
                self.out.push(']');
            }
            let member = self
                .open
                .last()
                .is_some_and(|(p, _)| *p != Kind::GeometryCollection);
            if !member {
                self.out.push('}');
            }
        }
    }
    let start = out.len();
    let mut w = Writer {
        out,
        open: Vec::new(),
        odd: false,
    };
    if wkb::walk(bytes, &mut w).is_ok() && !w.odd {
        return;
    }
    out.truncate(start);
    match wkb::decode(bytes) {
        Ok(g) => write_geometry(out, &g),
        Err(_) => out.push_str("null"),
    }
}

/// Appends `s` as a JSON string, escaped as serde_json escapes it.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    json_string_inner(out, s);
    out.push('"');
}

/// Appends `s` escaped as in a JSON string, without the quotes.
pub fn json_string_inner(out: &mut String, s: &str) {
    // serde_json escapes exactly `"`, `\` and the control characters below U+0020; a string
    // without them is written as it is, with no allocation.
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push_str(s);
        return;
    }
    // serde_json's escaping is correct for every input; strings never fail to serialise.
    let quoted = serde_json::to_string(s).unwrap_or_default();
    out.push_str(&quoted[1..quoted.len() - 1]);
}

/// Which properties to write.
#[derive(Debug, Clone, Default)]
pub enum PropertySelection {
    #[default]
    All,
    Only(Vec<String>),
}

impl PropertySelection {
    fn wants(&self, key: &str) -> bool {
        match self {
            PropertySelection::All => true,
            PropertySelection::Only(keys) => keys.iter().any(|k| k == key),
        }
    }
}

/// Appends a feature as a GeoJSON Feature; `name` and `admin_code` lead the properties.
/// `links` (already JSON) is written as the feature's `links` member when given.
pub fn write_feature(
    out: &mut String,
    f: &Feature,
    selection: &PropertySelection,
    links: Option<&str>,
    extra: &[(&str, Value)],
) {
    out.push_str("{\"type\":\"Feature\",\"id\":");
    json_string(out, &f.id);
    out.push_str(",\"geometry\":");
    match &f.geometry {
        Some(g) => write_geometry(out, g),
        None => out.push_str("null"),
    }
    out.push_str(",\"properties\":{");
    let mut first = true;
    let mut key = |out: &mut String, k: &str| {
        if !first {
            out.push(',');
        }
        first = false;
        json_string(out, k);
        out.push(':');
    };
    if let (Some(name), true) = (&f.name, selection.wants("name")) {
        key(out, "name");
        json_string(out, name);
    }
    if let (Some(code), true) = (&f.admin_code, selection.wants("admin_code")) {
        key(out, "admin_code");
        json_string(out, code);
    }
    for (k, v) in &f.properties {
        if selection.wants(k) {
            key(out, k);
            out.push_str(&v.to_string());
        }
    }
    for (k, v) in extra {
        key(out, k);
        out.push_str(&v.to_string());
    }
    out.push('}');
    if let Some(links) = links {
        out.push_str(",\"links\":");
        out.push_str(links);
    }
    out.push('}');
}

/// [`write_feature`] with every property, from a feature's stored parts (issue 15): the
/// properties' JSON object text is copied as it is and the geometry written from its WKB,
/// without building the feature or any `serde_json::Value`.
pub fn write_stored_feature(
    out: &mut String,
    id: &str,
    name: Option<&str>,
    admin_code: Option<&str>,
    properties_json: &str,
    wkb: Option<&[u8]>,
    links: Option<&dyn Fn(&mut String)>,
) {
    // Coordinates take up to about twice their WKB bytes as text (`[-105.84006878,-29.4],`
    // for 16): one allocation, no regrowth.
    out.reserve(
        96 + id.len()
            + name.map_or(0, str::len)
            + admin_code.map_or(0, str::len)
            + properties_json.len()
            + wkb.map_or(0, |b| b.len() * 2)
            + links.map_or(0, |_| LINKS_BYTES),
    );
    out.push_str("{\"type\":\"Feature\",\"id\":");
    json_string(out, id);
    out.push_str(",\"geometry\":");
    match wkb {
        Some(b) => write_wkb_geometry(out, b),
        None => out.push_str("null"),
    }
    out.push_str(",\"properties\":{");
    let mut first = true;
    for (key, value) in [("name", name), ("admin_code", admin_code)] {
        if let Some(v) = value {
            if !first {
                out.push(',');
            }
            first = false;
            json_string(out, key);
            out.push(':');
            json_string(out, v);
        }
    }
    // The members of the stored object, as they are.
    let inner = properties_json
        .trim()
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or("")
        .trim();
    if !inner.is_empty() {
        if !first {
            out.push(',');
        }
        out.push_str(inner);
    }
    out.push('}');
    if let Some(links) = links {
        out.push_str(",\"links\":");
        links(out);
    }
    out.push('}');
}

/// Room [`write_stored_feature`] keeps for a feature's links (three, with their titles).
const LINKS_BYTES: usize = 512;

#[cfg(test)]
mod tests {
    /// Strings are escaped as serde_json escapes them, with or without the shortcut.
    #[test]
    fn json_strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = (0u8..128).map(|b| format!("a{}b", b as char)).collect();
        samples.extend(
            [
                "",
                "地块 17",
                "\"",
                "\\",
                "tab\tline\n",
                "\u{7f}\u{2028}é",
                "😀/<>&'",
            ]
            .map(String::from),
        );
        for s in &samples {
            let mut out = String::from("x");
            json_string(&mut out, s);
            assert_eq!(out[1..], serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    /// Coordinates of up to eight decimals are written as `ryu` writes them, and read back.
    #[test]
    fn eight_decimal_numbers_are_written_as_ryu_writes_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::SmallRng::seed_from_u64(15);
        let mut fast = 0;
        for k in 0..200_000 {
            let places = k % 9;
            let scale = 10f64.powi(places);
            let whole: f64 = match k % 3 {
                0 => rng.gen_range(0.0..1.0),
                1 => rng.gen_range(0.0..400.0),
                _ => rng.gen_range(0.0..1e7),
            };
            let sign = if k % 2 == 0 { 1.0 } else { -1.0 };
            let mut values = vec![sign * (whole * scale).round() / scale];
            values.push(sign * rng.gen_range(0.0..1e6f64));
            values.push(
                sign * f64::from_bits(
                    rng.gen_range(0x3f50_0000_0000_0000..0x4130_0000_0000_0000u64),
                ),
            );
            // A coordinate pair is the two numbers, however each is written.
            for (x, y) in [
                (values[0], values[1]),
                (values[2], values[0]),
                (values[1], -0.0),
            ] {
                let mut pair = String::new();
                super::coord(&mut pair, &Coord { x, y });
                let (mut nx, mut ny) = (String::new(), String::new());
                super::number(&mut nx, x);
                super::number(&mut ny, y);
                assert_eq!(pair, format!("[{nx},{ny}]"));
            }
            for v in values {
                let mut ours = String::new();
                super::number(&mut ours, v);
                let mut alone = String::new();
                if super::eight_decimals(&mut alone, v) {
                    fast += 1;
                }
                let reference = if v.fract() == 0.0 {
                    format!("{}", v as i64)
                } else {
                    ryu::Buffer::new().format(v).to_string()
                };
                assert_eq!(ours, reference, "{v:e}");
                assert_eq!(ours.parse::<f64>().unwrap(), v);
            }
        }
        assert!(fast > 100_000, "the eight-decimal path wrote only {fast}");
    }

    use super::*;

    /// A number as `serde_json` writes it (its own `ryu`, integers without ".0").
    fn reference_number(v: f64) -> String {
        if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
            format!("{}", v as i64)
        } else {
            serde_json::to_string(&v).unwrap()
        }
    }

    #[test]
    fn long_rings_written_in_blocks_match_pair_by_pair_text() {
        // Rings long enough to fill the stack buffer several times, with numbers off the
        // eight-decimal way (integers, tiny, huge, many places) at random spots, so that the
        // buffer is flushed before slow pairs and at its end.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for len in [0usize, 1, 2, 20, 21, 22, 23, 64, 200, 1000] {
            let ring: Vec<Coord<f64>> = (0..len)
                .map(|_| {
                    let mut value = || match next() % 10 {
                        0 => (next() % 1000) as f64,
                        1 => 1e-7 * (1 + next() % 100) as f64,
                        2 => 1e7 + (next() % 1000) as f64 * 0.5,
                        3 => -0.123_456_789_012_3 * (1 + next() % 9) as f64,
                        _ => -180.0 + (next() % 36_000_000_000) as f64 / 1e8,
                    };
                    Coord {
                        x: value(),
                        y: value(),
                    }
                })
                .collect();
            let mut got = String::new();
            coords(&mut got, ring.iter().copied());
            let want = format!(
                "[{}]",
                ring.iter()
                    .map(|c| format!("[{},{}]", reference_number(c.x), reference_number(c.y)))
                    .collect::<Vec<_>>()
                    .join(",")
            );
            assert_eq!(got, want, "{len} coordinates");
            // Read back with std's correctly rounded parser (serde_json's default is not).
            let back: Vec<f64> = got
                .split(['[', ']', ','])
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap())
                .collect();
            let sent: Vec<f64> = ring.iter().flat_map(|c| [c.x, c.y]).collect();
            assert_eq!(back, sent);
        }
    }

    #[test]
    fn wkb_in_place_writes_what_the_geometry_writes() {
        use crate::formats::wkb;
        use geo::{
            GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon, Point,
        };
        let ring = |x: f64| LineString::from(vec![(x, 0.5), (x + 1.25, 0.0), (x, 1.0), (x, 0.5)]);
        let poly = Polygon::new(ring(0.0), vec![ring(0.25)]);
        let geoms = vec![
            Geometry::Point(Point::new(105.5, -29.125)),
            Geometry::LineString(ring(3.0)),
            Geometry::LineString(LineString::new(vec![])),
            Geometry::Polygon(poly.clone()),
            Geometry::Polygon(Polygon::new(LineString::new(vec![]), vec![])),
            Geometry::MultiPoint(MultiPoint(vec![Point::new(1., 2.), Point::new(3., 4.)])),
            Geometry::MultiPoint(MultiPoint(vec![])),
            Geometry::MultiLineString(MultiLineString(vec![ring(1.0), ring(2.0)])),
            Geometry::MultiPolygon(MultiPolygon(vec![poly.clone(), poly.clone()])),
            Geometry::GeometryCollection(GeometryCollection(vec![
                Geometry::Point(Point::new(9., 9.)),
                Geometry::MultiPolygon(MultiPolygon(vec![poly.clone()])),
                Geometry::GeometryCollection(GeometryCollection(vec![])),
                Geometry::LineString(ring(7.0)),
            ])),
        ];
        for g in &geoms {
            let mut want = String::new();
            write_geometry(&mut want, g);
            let mut got = String::new();
            write_wkb_geometry(&mut got, &wkb::encode(g));
            assert_eq!(got, want);
            serde_json::from_str::<Value>(&got).unwrap();
        }
        // A member of the wrong type (decode drops it), a hole without exterior, garbage.
        let mut odd = vec![1u8, 6, 0, 0, 0, 2, 0, 0, 0];
        odd.extend(wkb::encode(&Geometry::Point(Point::new(1., 2.))));
        odd.extend(wkb::encode(&Geometry::Polygon(poly)));
        let mut no_exterior = vec![1u8, 3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0];
        no_exterior.extend([0u8; 16]);
        for bytes in [odd, no_exterior] {
            let mut want = String::new();
            write_geometry(&mut want, &wkb::decode(&bytes).unwrap());
            let mut got = String::from("x");
            write_wkb_geometry(&mut got, &bytes);
            assert_eq!(got, format!("x{want}"));
        }
        let mut got = String::new();
        write_wkb_geometry(&mut got, &[1, 3, 0, 0, 0, 9]);
        assert_eq!(got, "null");
    }

    #[test]
    fn stored_parts_write_what_the_feature_writes() {
        let mut props = serde_json::Map::new();
        props.insert("地类编码".into(), "0101".into());
        props.insert("面积".into(), 1234.5.into());
        props.insert("tags".into(), serde_json::json!(["a", {"b": null}]));
        let mut f = Feature::from_parts(
            "dltb",
            "9".into(),
            props,
            Some(geo::Geometry::Polygon(Polygon::new(
                LineString::from(vec![
                    (105.5, 29.5),
                    (105.6, 29.5),
                    (105.5, 29.6),
                    (105.5, 29.5),
                ]),
                vec![],
            ))),
        );
        f.name = Some("石\"桥".into());
        for (name, props) in [(true, true), (false, true), (true, false), (false, false)] {
            let mut f = f.clone();
            if !name {
                f.name = None;
            }
            if !props {
                f.properties.clear();
            }
            let mut a = String::new();
            write_feature(&mut a, &f, &PropertySelection::All, Some("[]"), &[]);
            let mut b = String::new();
            let wkb = f.geometry.as_ref().map(crate::formats::wkb::encode);
            write_stored_feature(
                &mut b,
                &f.id,
                f.name.as_deref(),
                f.admin_code.as_deref(),
                &serde_json::to_string(&f.properties).unwrap(),
                wkb.as_deref(),
                Some(&|o: &mut String| o.push_str("[]")),
            );
            assert_eq!(a, b);
        }
    }

    #[test]
    fn decodes_and_writes_back() {
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"a","properties":{"name":"龙水镇","admin_code":"500111108","area_mu":10000},
             "geometry":{"type":"Polygon","coordinates":[[[105,29],[106,29],[106,30],[105,29]]]}},
            {"type":"Feature","id":7,"properties":null,"geometry":{"type":"Point","coordinates":[105.5,29.25,300]}}]}"#;
        let fs = decode_feature_collection(text.as_bytes(), "towns").unwrap();
        assert_eq!(fs.len(), 2);
        assert_eq!(fs[0].0.as_deref(), Some("a"));
        assert_eq!(fs[1].0.as_deref(), Some("7"));
        let mut f = fs[0].1.clone();
        assert_eq!(f.name.as_deref(), Some("龙水镇"));
        assert_eq!(f.admin_code.as_deref(), Some("500111108"));
        f.id = "a".into();
        let mut out = String::new();
        write_feature(&mut out, &f, &PropertySelection::All, None, &[]);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["properties"]["name"], "龙水镇");
        assert_eq!(v["properties"]["area_mu"], 10000);
        assert_eq!(
            v["geometry"]["coordinates"][0][1],
            serde_json::json!([106, 29])
        );
    }

    #[test]
    fn lists_every_bad_feature() {
        let text = r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","id":"ok","properties":{},"geometry":{"type":"Point","coordinates":[105,29]}},
            {"type":"Feature","id":"lat","properties":{},"geometry":{"type":"Point","coordinates":[105,99]}},
            {"type":"Feature","id":"open","properties":{},"geometry":{"type":"Polygon","coordinates":[[[105,29],[106,29],[106,30],[105,30]]]}},
            {"type":"Feature","id":"ok","properties":{},"geometry":null}]}"#;
        match decode_feature_collection(text.as_bytes(), "x") {
            Err(DecodeError::Features {
                problems,
                problems_total,
                total,
            }) => {
                assert_eq!((problems_total, total), (3, 4));
                assert_eq!(problems[0].index, 1);
                assert!(
                    problems[0].problem.contains("latitude 99"),
                    "{}",
                    problems[0].problem
                );
                assert!(
                    problems[1].problem.contains("not closed"),
                    "{}",
                    problems[1].problem
                );
                assert!(problems[2].problem.contains("more than once"));
            }
            other => panic!("expected feature problems, got {other:?}"),
        }
        // Left to the store, the repeat goes on to the sink with the rest (the bad ones do not).
        let options = StreamOptions {
            store_checks_repeats: true,
            ..Default::default()
        };
        let mut ids = Vec::new();
        let fine = text.replace("[105,99]", "[105,29]").replace(
            "[[[105,29],[106,29],[106,30],[105,30]]]",
            "[[[105,29],[106,29],[106,30],[105,29]]]",
        );
        let read = stream_feature_collection(
            serde_json::de::SliceRead::new(fine.as_bytes()),
            "x",
            &options,
            &mut |f| {
                ids.push(f.id);
                true
            },
        );
        assert_eq!(read.map(|r| r.total).ok(), Some(4));
        assert_eq!(ids, ["ok", "lat", "open", "ok"]);
        assert!(matches!(
            decode_feature_collection(b"{\"type\":\"Feature\"}", "x"),
            Err(DecodeError::NotAFeatureCollection(_))
        ));
        assert!(matches!(
            decode_feature_collection(b"{", "x"),
            Err(DecodeError::Syntax(_))
        ));
    }

    fn nested_collection(depth: usize) -> String {
        format!(
            r#"{}{{"type":"Point","coordinates":[105.5,29.5]}}{}"#,
            r#"{"type":"GeometryCollection","geometries":["#.repeat(depth),
            "]}".repeat(depth)
        )
    }

    #[test]
    fn geometry_nesting_is_bounded_and_names_the_feature() {
        // Within the limit: read.
        let ok = format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","id":"a","properties":{{}},"geometry":{}}}]}}"#,
            nested_collection(MAX_COLLECTION_DEPTH)
        );
        assert_eq!(
            decode_feature_collection(ok.as_bytes(), "x").unwrap().len(),
            1
        );
        // Past our limit: a problem of that feature, by index and id.
        let deep = format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","id":"a","properties":{{}},"geometry":null}},{{"type":"Feature","id":"deep","properties":{{}},"geometry":{}}}]}}"#,
            nested_collection(MAX_COLLECTION_DEPTH + 1)
        );
        match decode_feature_collection(deep.as_bytes(), "x") {
            Err(DecodeError::Features { problems, .. }) => {
                assert_eq!(
                    (problems[0].index, problems[0].id.as_deref()),
                    (1, Some("deep"))
                );
                assert!(
                    problems[0].problem.contains("nest too deep"),
                    "{}",
                    problems[0].problem
                );
            }
            other => panic!("expected a feature problem, got {other:?}"),
        }
        // Far past serde_json's own recursion limit: an error naming the feature, no overflow.
        for depth in [200, 100_000] {
            let deeper = format!(
                r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{}},"geometry":null}},{{"type":"Feature","properties":{{}},"geometry":{}}}]}}"#,
                nested_collection(depth)
            );
            match decode_feature_collection(deeper.as_bytes(), "x") {
                Err(DecodeError::Syntax(e)) => {
                    assert!(e.starts_with("feature 1: recursion limit"), "{e}")
                }
                other => panic!("expected a syntax error, got {other:?}"),
            }
        }
        let arrays = format!(
            r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{}},"geometry":{{"type":"Point","coordinates":{}105{}}}}}]}}"#,
            "[".repeat(50_000),
            "]".repeat(50_000)
        );
        assert!(matches!(
            decode_feature_collection(arrays.as_bytes(), "x"),
            Err(DecodeError::Syntax(e)) if e.starts_with("feature 0: recursion limit")
        ));
    }

    #[test]
    fn streams_with_a_crs_a_single_feature_and_wrong_types() {
        let mut got = Vec::new();
        let gk = r#"{"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::4545"}},
            "features":[{"type":"Feature","id":1,"properties":{"name":"甲"},"geometry":{"type":"Point","coordinates":[500000,3300000]}}]}"#;
        let read = stream_feature_collection(
            serde_json::de::SliceRead::new(gk.as_bytes()),
            "x",
            &StreamOptions::default(),
            &mut |f| {
                got.push(f);
                true
            },
        )
        .unwrap();
        assert_eq!(
            (read.total, read.single, read.first_id.as_deref()),
            (1, false, Some("1"))
        );
        let Some(Geometry::Point(p)) = &got[0].geometry else {
            panic!("a point")
        };
        // EPSG:4545 is CGCS2000 / 3-degree Gauss-Krüger CM 108E: easting 500 km is on 108°E.
        assert!(
            (p.x() - 108.0).abs() < 1e-9 && (p.y() - 29.8).abs() < 0.1,
            "{p:?}"
        );

        // The crs member after the features cannot be honoured: refused, not misread.
        let late = r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[500000,3300000]}}],
            "crs":{"type":"name","properties":{"name":"EPSG:4545"}}}"#;
        assert!(matches!(
            decode_feature_collection(late.as_bytes(), "x"),
            Err(DecodeError::Crs(_)) | Err(DecodeError::Features { .. })
        ));

        // A single Feature, members in any order, when allowed.
        let one = r#"{"geometry":{"coordinates":[105.5,29.5],"type":"Point"},"id":"s","properties":{"a":1},"type":"Feature"}"#;
        let options = StreamOptions {
            crs: None,
            allow_single_feature: true,
            ..Default::default()
        };
        let mut got = Vec::new();
        let read = stream_feature_collection(
            serde_json::de::SliceRead::new(one.as_bytes()),
            "x",
            &options,
            &mut |f| {
                got.push(f);
                true
            },
        )
        .unwrap();
        assert!(read.single);
        assert_eq!((got.len(), got[0].id.as_str()), (1, "s"));
        assert!(matches!(
            decode_feature_collection(one.as_bytes(), "x"),
            Err(DecodeError::NotAFeatureCollection(_))
        ));

        // Wrong JSON types are problems of their feature, not syntax errors of the input.
        let wrong = r#"{"type":"FeatureCollection","features":[5,
            {"type":"Feature","properties":[],"geometry":null},
            {"type":"Feature","properties":{},"geometry":"x"},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":"x"}},
            {"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[105,"29"]}},
            {"type":"Feature","properties":{},"geometry":{"type":"GeometryCollection","geometries":{}}},
            {"type":"Feature","id":{"a":1},"properties":{},"geometry":null}]}"#;
        match decode_feature_collection(wrong.as_bytes(), "x") {
            Err(DecodeError::Features {
                problems, total, ..
            }) => {
                assert_eq!(total, 7);
                let p: Vec<&str> = problems.iter().map(|p| p.problem.as_str()).collect();
                assert!(p[0].contains("not a GeoJSON Feature"), "{p:?}");
                assert!(p[1].contains("properties must be an object"), "{p:?}");
                assert!(p[2].contains("geometry has no \"type\""), "{p:?}");
                assert!(p[3].contains("a position must be an array"), "{p:?}");
                assert!(
                    p[4].contains("coordinate 1 is not a number: \"29\""),
                    "{p:?}"
                );
                assert!(p[5].contains("no \"geometries\" array"), "{p:?}");
                assert!(p[6].contains("id must be a string or a number"), "{p:?}");
            }
            other => panic!("expected feature problems, got {other:?}"),
        }
    }
}
