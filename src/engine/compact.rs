//! Features as the engine keeps them: a few hundred bytes each (issue 15). The text fields and
//! the properties (JSON text) share one allocation; the geometry is its WKB, the flat
//! coordinates the database holds. A [`Feature`] is decoded from them only when asked for.

use geo::Geometry;

use crate::formats::wkb;
use crate::model::{Feature, RawFeature};

/// Marks an absent optional field in [`Compact::text`].
const ABSENT: u32 = u32::MAX;

/// One feature, compact: see the module comment.
#[derive(Debug, Clone)]
pub(crate) struct Compact {
    /// One allocation: the text fields, then the geometry's little-endian 2D WKB (none when
    /// nothing follows the text). The text fields: id, admin_code, name, created_at,
    /// updated_at (absent when equal to created_at), properties (a JSON object's text), each
    /// as a little-endian u32 length and its bytes (length [`ABSENT`] for a missing option).
    data: Box<[u8]>,
    /// Where the WKB starts in `data`.
    text_len: u32,
    pub(crate) version: i64,
}

/// Field positions in [`Compact::text`].
const ID: usize = 0;
const ADMIN_CODE: usize = 1;
const NAME: usize = 2;
const CREATED_AT: usize = 3;
const UPDATED_AT: usize = 4;
const PROPERTIES: usize = 5;

fn push_field(out: &mut Vec<u8>, field: Option<&str>) {
    match field {
        Some(s) => {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
        None => out.extend_from_slice(&ABSENT.to_le_bytes()),
    }
}

impl Compact {
    #[allow(clippy::too_many_arguments)]
    fn from_fields(
        id: &str,
        admin_code: Option<&str>,
        name: Option<&str>,
        created_at: &str,
        updated_at: &str,
        properties: &str,
        geometry: Option<&[u8]>,
        version: i64,
    ) -> Compact {
        let mut text = Vec::with_capacity(
            24 + geometry.map_or(0, <[u8]>::len)
                + id.len()
                + admin_code.map_or(0, str::len)
                + name.map_or(0, str::len)
                + created_at.len()
                + if updated_at == created_at {
                    0
                } else {
                    updated_at.len()
                }
                + properties.len(),
        );
        for field in [
            Some(id),
            admin_code,
            name,
            Some(created_at),
            // Absent when the feature was never changed (as after an import): the same time
            // as created_at, which it then reads as.
            (updated_at != created_at).then_some(updated_at),
            Some(properties),
        ] {
            push_field(&mut text, field);
        }
        let text_len = text.len() as u32;
        text.extend_from_slice(geometry.unwrap_or_default());
        Compact {
            data: text.into_boxed_slice(),
            text_len,
            version,
        }
    }

    /// Reads a byte of each cache line the feature spans, all at once, ahead of an encoder
    /// that reads them in order: with the feature out of the cache (any random one of a large
    /// layer), the lines then arrive together instead of one miss after another, each waited
    /// on by the encoding of the line before.
    pub(crate) fn warm(&self) {
        let mut x = self.data.last().copied().unwrap_or(0);
        for b in self.data.iter().step_by(64) {
            x ^= *b;
        }
        std::hint::black_box(x);
    }

    fn text(&self) -> &[u8] {
        &self.data[..self.text_len as usize]
    }

    /// The compact form of a decoded feature.
    pub(crate) fn encode(f: &Feature) -> Compact {
        let properties = serde_json::to_string(&f.properties).unwrap_or_else(|_| "{}".into());
        Compact::from_fields(
            &f.id,
            f.admin_code.as_deref(),
            f.name.as_deref(),
            &f.created_at,
            &f.updated_at,
            &properties,
            f.geometry.as_ref().map(wkb::encode).as_deref(),
            f.version,
        )
    }

    /// The compact form of a stored row, as it is: nothing parsed (the caller validated it).
    pub(crate) fn from_raw(r: RawFeature) -> Compact {
        Compact::from_fields(
            &r.id,
            r.admin_code.as_deref(),
            r.name.as_deref(),
            &r.created_at,
            &r.updated_at,
            &r.properties,
            r.geometry.as_deref(),
            r.version,
        )
    }

    /// The parts a snapshot keeps: the text fields as stored, the WKB and the version.
    pub(crate) fn parts(&self) -> (&[u8], Option<&[u8]>) {
        (self.text(), self.wkb())
    }

    /// A feature from the parts [`Compact::parts`] gave: `data` is the text fields, then the
    /// WKB from `text_len` on (none when nothing follows). `None` when the text is not six
    /// well-formed UTF-8 fields (the geometry is not decoded: the caller checked its bytes).
    pub(crate) fn from_parts(data: Vec<u8>, text_len: usize, version: i64) -> Option<Compact> {
        let text = data.get(..text_len)?;
        let mut pos = 0usize;
        for i in 0..=PROPERTIES {
            let len = u32::from_le_bytes(text.get(pos..pos + 4)?.try_into().ok()?);
            pos += 4;
            if len == ABSENT {
                if matches!(i, ID | CREATED_AT | PROPERTIES) {
                    return None;
                }
                continue;
            }
            let end = pos.checked_add(len as usize)?;
            simdutf8::basic::from_utf8(text.get(pos..end)?).ok()?;
            pos = end;
        }
        (pos == text_len).then_some(Compact {
            data: data.into_boxed_slice(),
            text_len: u32::try_from(text_len).ok()?,
            version,
        })
    }

    fn field(&self, index: usize) -> Option<&str> {
        // Written from `&str`s only. simdutf8 pays off from a few dozen bytes on (it copies a
        // short tail into a block first); short fields (ids, codes, times) take the standard
        // library's check, whose ASCII fast path is a few instructions for them.
        let bytes = self.field_bytes(index)?;
        if bytes.len() < 64 {
            std::str::from_utf8(bytes).ok()
        } else {
            simdutf8::basic::from_utf8(bytes).ok()
        }
    }

    /// A text field's bytes, unchecked.
    fn field_bytes(&self, index: usize) -> Option<&[u8]> {
        let mut pos = 0;
        let mut i = 0;
        loop {
            let len = u32::from_le_bytes(self.data[pos..pos + 4].try_into().ok()?);
            pos += 4;
            if len == ABSENT {
                if i == index {
                    return None;
                }
            } else {
                let end = pos + len as usize;
                if i == index {
                    return self.text().get(pos..end);
                }
                pos = end;
            }
            i += 1;
        }
    }

    pub(crate) fn id(&self) -> &str {
        self.field(ID).unwrap_or_default()
    }

    /// The id's bytes, for comparing without checking them again.
    pub(crate) fn id_bytes(&self) -> &[u8] {
        self.field_bytes(ID).unwrap_or_default()
    }

    pub(crate) fn name(&self) -> Option<&str> {
        self.field(NAME)
    }

    pub(crate) fn admin_code(&self) -> Option<&str> {
        self.field(ADMIN_CODE)
    }

    /// The properties (without `name` and `admin_code`) as a JSON object's text.
    pub(crate) fn properties_json(&self) -> &str {
        self.field(PROPERTIES).unwrap_or("{}")
    }

    /// The geometry's WKB.
    pub(crate) fn wkb(&self) -> Option<&[u8]> {
        let wkb = &self.data[self.text_len as usize..];
        (!wkb.is_empty()).then_some(wkb)
    }

    /// The geometry, decoded.
    pub(crate) fn geometry(&self) -> Option<Geometry<f64>> {
        // Encoded by `wkb::encode` or checked by `validate` before it was kept.
        self.wkb().and_then(|b| wkb::decode(b).ok())
    }

    /// Whether the geometry intersects `r`: a vertex inside decides it without building the
    /// geometry (most features that reach out of a box have one); otherwise the exact test.
    pub(crate) fn intersects_rect(&self, r: geo::Rect<f64>) -> bool {
        struct AnyInside {
            r: geo::Rect<f64>,
            found: bool,
        }
        impl wkb::Visit for AnyInside {
            fn coords(&mut self, coords: wkb::Coords<'_>) {
                let (lo, hi) = (self.r.min(), self.r.max());
                self.found = self.found
                    || coords
                        .iter()
                        .any(|c| lo.x <= c.x && c.x <= hi.x && lo.y <= c.y && c.y <= hi.y);
            }
        }
        let Some(bytes) = self.wkb() else {
            return false;
        };
        let mut v = AnyInside { r, found: false };
        if wkb::walk(bytes, &mut v).is_ok() && v.found {
            return true;
        }
        self.geometry()
            .is_some_and(|g| geo::Intersects::intersects(&g, &r))
    }

    /// The whole feature of layer `layer`.
    pub(crate) fn decode(&self, layer: &str) -> Feature {
        let properties = match serde_json::from_str(self.properties_json()) {
            Ok(serde_json::Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        };
        Feature {
            id: self.id().to_string(),
            layer: layer.to_string(),
            admin_code: self.admin_code().map(str::to_string),
            name: self.name().map(str::to_string),
            properties,
            geometry: self.geometry(),
            version: self.version,
            created_at: self.field(CREATED_AT).unwrap_or_default().to_string(),
            updated_at: self
                .field(UPDATED_AT)
                .or_else(|| self.field(CREATED_AT))
                .unwrap_or_default()
                .to_string(),
        }
    }
}

/// Why a stored row cannot be kept: its properties are not a JSON object or its WKB is unreadable.
pub(crate) fn validate(r: &RawFeature) -> Result<Option<geo::Rect<f64>>, String> {
    check_properties(&r.properties)?;
    match &r.geometry {
        None => Ok(None),
        Some(b) => {
            let g = wkb::decode(b).map_err(|e| format!("geometry: {e}"))?;
            Ok(geo::BoundingRect::bounding_rect(&g))
        }
    }
}

fn check_properties(text: &str) -> Result<(), String> {
    match serde_json::from_str::<serde::de::IgnoredAny>(text) {
        Err(e) => Err(format!("properties: {e}")),
        Ok(_) if !text.trim_start().starts_with('{') => {
            Err("properties are not a JSON object".into())
        }
        Ok(_) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    #[test]
    fn round_trips_every_field() {
        let mut props = serde_json::Map::new();
        props.insert("地类编码".into(), "0101".into());
        props.insert("面积".into(), 1234.56.into());
        props.insert("n".into(), serde_json::Value::Null);
        let mut f = Feature::from_parts(
            "dltb",
            "7".into(),
            props,
            Some(Geometry::Polygon(
                polygon![(x: 105.5, y: 29.5), (x: 105.6, y: 29.5), (x: 105.5, y: 29.6)],
            )),
        );
        f.name = Some("石桥".into());
        f.version = 3;
        f.created_at = "2026-01-01T00:00:00Z".into();
        f.updated_at = "2026-01-02T00:00:00Z".into();
        let c = Compact::encode(&f);
        assert_eq!(c.decode("dltb"), f);
        assert_eq!(c.id(), "7");
        assert_eq!(c.admin_code(), None);
        f.geometry = None;
        f.id = String::new();
        assert_eq!(Compact::encode(&f).decode("dltb"), f);
    }

    #[test]
    fn rows_are_checked_before_they_are_kept() {
        let row = |props: &str, wkb: Option<Vec<u8>>| RawFeature {
            layer: "l".into(),
            id: "1".into(),
            admin_code: None,
            name: None,
            properties: props.into(),
            geometry: wkb,
            version: 1,
            created_at: String::new(),
            updated_at: String::new(),
        };
        assert!(validate(&row("[1]", None))
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(validate(&row("{", None))
            .unwrap_err()
            .contains("properties"));
        assert!(validate(&row("{}", Some(vec![1, 2])))
            .unwrap_err()
            .contains("geometry"));
        let p = wkb::encode(&Geometry::Point(geo::point!(x: 1.0, y: 2.0)));
        let r = validate(&row(" {\"a\": 1}", Some(p.clone())))
            .unwrap()
            .unwrap();
        assert_eq!((r.min().x, r.max().y), (1.0, 2.0));
        assert_eq!(
            Compact::from_raw(row("{\"a\":1}", Some(p)))
                .decode("l")
                .properties["a"],
            1
        );
    }
}
