use geo::{Geometry, Rect};

/// A feature's identifier, unique within its layer (for admin units: the NBS code).
pub type FeatureId = String;

/// Feature properties in the order they were written.
pub type Properties = serde_json::Map<String, serde_json::Value>;

/// One thing on the map: a district, a village, a vegetable base, a project …
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    pub id: FeatureId,
    pub layer: String,
    /// NBS code of the admin unit the feature is, or lies in (6, 9 or 12 digits).
    pub admin_code: Option<String>,
    pub name: Option<String>,
    /// Every other property; `name` and `admin_code` are kept out of it and merged back on output.
    pub properties: Properties,
    /// CGCS2000 longitude/latitude (EPSG:4490). `None` for features without geometry.
    pub geometry: Option<Geometry<f64>>,
    pub version: i64,
    /// RFC 3339 UTC timestamps.
    pub created_at: String,
    pub updated_at: String,
}

impl Feature {
    /// The feature's bounding box, if it has a non-empty geometry.
    pub fn bbox(&self) -> Option<Rect<f64>> {
        use geo::BoundingRect;
        self.geometry.as_ref().and_then(|g| g.bounding_rect())
    }

    /// Looks a property up by name, including `name` and `admin_code`.
    pub fn property(&self, key: &str) -> Option<serde_json::Value> {
        match key {
            "name" => self.name.clone().map(serde_json::Value::String),
            "admin_code" => self.admin_code.clone().map(serde_json::Value::String),
            _ => self.properties.get(key).cloned(),
        }
    }

    /// Builds a feature from a GeoJSON-style property map: `name` and `admin_code` are lifted out.
    pub fn from_parts(
        layer: &str,
        id: FeatureId,
        mut properties: Properties,
        geometry: Option<Geometry<f64>>,
    ) -> Feature {
        let take_str = |props: &mut Properties, key: &str| match props.shift_remove(key) {
            Some(serde_json::Value::String(s)) => Some(s),
            Some(serde_json::Value::Null) | None => None,
            Some(other) => Some(other.to_string()),
        };
        let name = take_str(&mut properties, "name");
        let admin_code = take_str(&mut properties, "admin_code");
        Feature {
            id,
            layer: layer.to_string(),
            admin_code,
            name,
            properties,
            geometry,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        }
    }
}

/// A feature as the database holds it, undecoded: what the engine keeps (compactly) at start.
#[derive(Debug, Clone, PartialEq)]
pub struct RawFeature {
    pub layer: String,
    pub id: FeatureId,
    pub admin_code: Option<String>,
    pub name: Option<String>,
    /// The properties as a JSON object's text.
    pub properties: String,
    /// Little-endian 2D WKB.
    pub geometry: Option<Vec<u8>>,
    pub version: i64,
    pub created_at: String,
    pub updated_at: String,
}
