//! CSV export: one table for any number of layers, UTF-8 with a byte-order mark so that Excel
//! shows Chinese text correctly, geometry as WKT in the requested CRS.
//!
//! Columns: `layer,id,name,admin_code,<union of property keys in first-seen order>,wkt`.
//! Values: strings as they are, numbers in their shortest exact form, booleans `true`/`false`,
//! arrays/objects as JSON, null as an empty cell. Fields are quoted (RFC 4180) when they
//! contain a comma, quote, CR or LF. Lines end with CRLF (RFC 4180, and what Excel writes).
//! WKT coordinates are in math order (x = easting/longitude, y = northing/latitude), as WKT
//! always is. A property key equal to one of the fixed columns is written as `property:<key>`.

use geo::Geometry;
use serde_json::Value;
use wkt::ToWkt;

use crate::formats::exchange::{float_text, property_columns, ExportError, ExportLayer, Problems};
use crate::geom::crs::{geometry_from_lonlat, Crs};

const FIXED: [&str; 5] = ["layer", "id", "name", "admin_code", "wkt"];

/// Writes the layers' features as one CSV table (see the module docs for the layout).
///
/// Fails with [`ExportError::Features`] when a geometry cannot be transformed into `crs`
/// (e.g. beyond Web Mercator's latitude limit).
pub fn write_csv(layers: &[ExportLayer], crs: &Crs) -> Result<Vec<u8>, ExportError> {
    let columns = property_columns(layers.iter().flat_map(|l| l.features.iter().map(|f| &**f)));
    let mut out = String::with_capacity(4096);
    out.push('\u{feff}');
    let mut header: Vec<String> = FIXED[..4].iter().map(|s| s.to_string()).collect();
    for c in &columns {
        if FIXED.contains(&c.key.as_str()) {
            header.push(format!("property:{}", c.key));
        } else {
            header.push(c.key.clone());
        }
    }
    header.push("wkt".into());
    write_row(&mut out, header.iter().map(String::as_str));

    let mut problems = Problems::default();
    let mut cells: Vec<String> = Vec::with_capacity(header.len());
    for l in layers {
        for (index, f) in l.features.iter().enumerate() {
            cells.clear();
            cells.push(l.layer.id.clone());
            cells.push(f.id.clone());
            cells.push(f.name.clone().unwrap_or_default());
            cells.push(f.admin_code.clone().unwrap_or_default());
            for c in &columns {
                cells.push(cell(f.properties.get(&c.key)));
            }
            let wkt = match &f.geometry {
                None => String::new(),
                Some(g) => match geometry_from_lonlat(crs, g) {
                    Ok(p) => wkt_of(&p),
                    Err(e) => {
                        problems.push(
                            index,
                            Some(f.id.clone()),
                            format!("layer {}: {e}", l.layer.id),
                        );
                        continue;
                    }
                },
            };
            cells.push(wkt);
            write_row(&mut out, cells.iter().map(String::as_str));
        }
    }
    problems.export_result()?;
    Ok(out.into_bytes())
}

fn wkt_of(g: &Geometry<f64>) -> String {
    g.wkt_string()
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => float_text(f),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// Appends one RFC 4180 row (quoted where needed, CRLF).
pub fn write_row<'a>(out: &mut String, cells: impl Iterator<Item = &'a str>) {
    for (i, c) in cells.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if c.contains([',', '"', '\r', '\n']) {
            out.push('"');
            out.push_str(&c.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(c);
        }
    }
    out.push_str("\r\n");
}

/// Splits CSV text (RFC 4180, optional BOM) into rows of cells. Used to read the Shapefile
/// field mapping back, and by tests.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(ch) = chars.next() {
        any = true;
        if quoted {
            if ch == '"' {
                if chars.peek() == Some(&'"') {
                    cell.push('"');
                    chars.next();
                } else {
                    quoted = false;
                }
            } else {
                cell.push(ch);
            }
            continue;
        }
        match ch {
            '"' => quoted = true,
            ',' => row.push(std::mem::take(&mut cell)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            _ => cell.push(ch),
        }
    }
    if any {
        row.push(cell);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Feature, Layer};
    use geo::{point, polygon};
    use std::sync::Arc;

    #[test]
    fn csv_has_bom_header_quoting_and_projected_wkt() {
        let layer = Layer::untitled("projects");
        let props = serde_json::json!({
            "name": "火炉镇蔬菜基地, 一期",
            "admin_code": "500118105",
            "investment_wan": 1200,
            "ratio": 0.25,
            "done": true,
            "note": null,
            "tags": ["a", "b"],
            "quote": "he said \"hi\"\nnext",
            "id": "P-1"
        });
        let f1 = Feature::from_parts(
            "projects",
            "1".into(),
            props.as_object().unwrap().clone(),
            Some(Geometry::Point(point!(x: 108.0, y: 30.0))),
        );
        let f2 = Feature::from_parts(
            "projects",
            "2".into(),
            serde_json::json!({"extra": 5}).as_object().unwrap().clone(),
            Some(Geometry::Polygon(
                polygon![(x: 108.0, y: 30.0), (x: 108.001, y: 30.0), (x: 108.001, y: 30.001), (x: 108.0, y: 30.0)],
            )),
        );
        let bytes = write_csv(
            &[ExportLayer {
                layer: &layer,
                features: vec![Arc::new(f1), Arc::new(f2)],
            }],
            &Crs::from_epsg(4545).unwrap(),
        )
        .unwrap();
        assert_eq!(&bytes[..3], b"\xEF\xBB\xBF");
        let text = String::from_utf8(bytes).unwrap();
        let rows = parse_csv(&text);
        assert_eq!(
            rows[0],
            vec![
                "layer",
                "id",
                "name",
                "admin_code",
                "investment_wan",
                "ratio",
                "done",
                "note",
                "tags",
                "quote",
                "property:id",
                "extra",
                "wkt"
            ]
        );
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1][2], "火炉镇蔬菜基地, 一期");
        assert_eq!(rows[1][4], "1200");
        assert_eq!(rows[1][5], "0.25");
        assert_eq!(rows[1][6], "true");
        assert_eq!(rows[1][7], "");
        assert_eq!(rows[1][8], r#"["a","b"]"#);
        assert_eq!(rows[1][9], "he said \"hi\"\nnext");
        assert_eq!(rows[1][10], "P-1");
        // CM 108E: the point on the central meridian has easting 500000.
        assert!(
            rows[1][12].starts_with("POINT(500000 3320"),
            "{}",
            rows[1][12]
        );
        assert!(
            rows[2][12].starts_with("POLYGON((500000 3320"),
            "{}",
            rows[2][12]
        );
        assert_eq!(rows[2][11], "5");
        assert!(text.contains("\r\n"));
        // Refuses what the CRS cannot hold.
        let far = Feature::from_parts(
            "p",
            "9".into(),
            Default::default(),
            Some(Geometry::Point(point!(x: 0.0, y: 89.0))),
        );
        let err = write_csv(
            &[ExportLayer {
                layer: &layer,
                features: vec![Arc::new(far)],
            }],
            &Crs::WebMercator,
        )
        .unwrap_err();
        assert!(err.to_string().contains("id 9"), "{err}");
    }
}
