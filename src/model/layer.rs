use serde::{Deserialize, Serialize};

/// A layer's identifier, as used in URLs (`/collections/{id}`): lower-case ASCII, digits, `_` and `-`.
pub type LayerId = String;

/// The geometry type a layer declares; `Geometry` means mixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum GeometryType {
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
    #[default]
    Geometry,
}

impl GeometryType {
    pub fn as_str(self) -> &'static str {
        match self {
            GeometryType::Point => "Point",
            GeometryType::LineString => "LineString",
            GeometryType::Polygon => "Polygon",
            GeometryType::MultiPoint => "MultiPoint",
            GeometryType::MultiLineString => "MultiLineString",
            GeometryType::MultiPolygon => "MultiPolygon",
            GeometryType::Geometry => "Geometry",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "Point" => GeometryType::Point,
            "LineString" => GeometryType::LineString,
            "Polygon" => GeometryType::Polygon,
            "MultiPoint" => GeometryType::MultiPoint,
            "MultiLineString" => GeometryType::MultiLineString,
            "MultiPolygon" => GeometryType::MultiPolygon,
            "Geometry" | "GeometryCollection" => GeometryType::Geometry,
            _ => return None,
        })
    }
}

/// A layer (an OGC API "collection"): districts, towns, projects, …
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub id: LayerId,
    pub title_zh: String,
    pub title_en: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub geometry_type: GeometryType,
    /// JSON Schema of the properties (the layer's queryables); derived from the data when empty.
    #[serde(default)]
    pub property_schema: serde_json::Value,
}

impl Layer {
    /// A layer created on the fly by an import that names a new layer.
    pub fn untitled(id: &str) -> Layer {
        Layer {
            id: id.to_string(),
            title_zh: id.to_string(),
            title_en: id.to_string(),
            description: String::new(),
            geometry_type: GeometryType::Geometry,
            property_schema: serde_json::Value::Null,
        }
    }

    /// Whether `id` is usable as a layer id in URLs and table rows.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    }
}
