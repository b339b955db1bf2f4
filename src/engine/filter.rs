//! Filters: CQL2 (text or JSON, parsed by the `cql2` crate) compiled once into a typed tree that
//! is evaluated per feature with SQL's three-valued logic, plus the spatial predicates.

use geo::{BoundingRect, Geometry, Intersects, Rect, Relate};
use serde_json::Value;
use std::sync::Arc;

use crate::geom::{validate_topology, PreparedArea};
use crate::model::Feature;

/// Why a filter cannot be used, in words a user can act on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FilterError {
    #[error("CQL2 syntax error at line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("invalid CQL2 JSON: {0}")]
    Json(String),
    #[error("unknown property '{0}'; see the collection's queryables")]
    UnknownProperty(String),
    #[error("operator '{0}' is not supported")]
    Unsupported(String),
    #[error("{0}")]
    Invalid(String),
}

/// The encodings of the `filter` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterLang {
    Cql2Text,
    Cql2Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpatialOp {
    Intersects,
    Disjoint,
    /// The feature lies within the literal.
    Within,
    /// The feature contains the literal.
    Contains,
    Equals,
    Touches,
    Overlaps,
    Crosses,
}

/// A literal value in a filter.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    Str(String),
    Num(f64),
    Bool(bool),
}

/// A compiled filter.
#[derive(Clone)]
pub enum Filter {
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    Compare {
        key: String,
        op: CmpOp,
        value: Scalar,
    },
    Like {
        key: String,
        pattern: Vec<LikeToken>,
    },
    In {
        key: String,
        values: Vec<Scalar>,
    },
    Between {
        key: String,
        low: f64,
        high: f64,
    },
    IsNull {
        key: String,
    },
    Spatial {
        op: SpatialOp,
        geometry: Arc<Geometry<f64>>,
        bbox: Option<Rect<f64>>,
    },
    /// Features inside (or meeting) a prepared area, e.g. an admin unit (`within=…`).
    InArea {
        area: Arc<PreparedArea>,
        within: bool,
    },
    Const(bool),
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filter::And(v) => f.debug_tuple("And").field(v).finish(),
            Filter::Or(v) => f.debug_tuple("Or").field(v).finish(),
            Filter::Not(v) => f.debug_tuple("Not").field(v).finish(),
            Filter::Compare { key, op, value } => write!(f, "{key} {op:?} {value:?}"),
            Filter::Like { key, .. } => write!(f, "{key} LIKE …"),
            Filter::In { key, values } => write!(f, "{key} IN {values:?}"),
            Filter::Between { key, low, high } => write!(f, "{key} BETWEEN {low} AND {high}"),
            Filter::IsNull { key } => write!(f, "{key} IS NULL"),
            Filter::Spatial { op, .. } => write!(f, "{op:?}(geometry, …)"),
            Filter::InArea { within, .. } => write!(f, "InArea(within: {within})"),
            Filter::Const(b) => write!(f, "{b}"),
        }
    }
}

/// A transformation of geometry literals (e.g. from `filter-crs` to stored lon/lat).
pub type GeometryMap<'a> = dyn Fn(&Geometry<f64>) -> Result<Geometry<f64>, String> + 'a;

/// A piece of a LIKE pattern.
#[derive(Debug, Clone, PartialEq)]
pub enum LikeToken {
    Text(String),
    /// `_`
    One,
    /// `%`
    Any,
}

/// Parses `text` in the given encoding and compiles it; `known` says which property names exist.
pub fn parse(
    text: &str,
    lang: FilterLang,
    known: &dyn Fn(&str) -> bool,
) -> Result<Filter, FilterError> {
    let expr = match lang {
        FilterLang::Cql2Text => cql2::parse_text(text).map_err(syntax_error)?,
        FilterLang::Cql2Json => {
            cql2::parse_json(text).map_err(|e| FilterError::Json(e.to_string()))?
        }
    };
    compile(&expr, known)
}

fn syntax_error(e: cql2::Error) -> FilterError {
    let text = e.to_string();
    // pest reports " --> line:column" then a caret diagram and what it expected.
    let (mut line, mut column) = (1, 1);
    if let Some(pos) = text.find("--> ") {
        let rest = &text[pos + 4..];
        let end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ':'))
            .unwrap_or(rest.len());
        let mut parts = rest[..end].split(':');
        line = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
        column = parts.next().and_then(|p| p.parse().ok()).unwrap_or(1);
    }
    let message = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("= "))
        .unwrap_or("cannot parse")
        .to_string();
    FilterError::Syntax {
        line,
        column,
        message,
    }
}

fn property_name(e: &cql2::Expr) -> Option<&str> {
    match e {
        cql2::Expr::Property { property } => Some(property),
        _ => None,
    }
}

fn scalar(e: &cql2::Expr) -> Option<Scalar> {
    match e {
        cql2::Expr::Float(v) => Some(Scalar::Num(*v)),
        cql2::Expr::Literal(s) => Some(Scalar::Str(s.clone())),
        cql2::Expr::Bool(b) => Some(Scalar::Bool(*b)),
        cql2::Expr::Timestamp { timestamp } | cql2::Expr::Date { date: timestamp } => {
            scalar(timestamp)
        }
        _ => None,
    }
}

fn is_geometry_property(name: &str) -> bool {
    matches!(name, "geometry" | "geom" | "the_geom")
}

/// Compiles a parsed CQL2 expression.
pub fn compile(e: &cql2::Expr, known: &dyn Fn(&str) -> bool) -> Result<Filter, FilterError> {
    use cql2::Expr as E;
    let check = |name: &str| -> Result<String, FilterError> {
        if known(name) {
            Ok(name.to_string())
        } else {
            Err(FilterError::UnknownProperty(name.to_string()))
        }
    };
    let (op, args) = match e {
        E::Bool(b) => return Ok(Filter::Const(*b)),
        E::Operation { op, args } => (op.as_str(), args),
        other => {
            return Err(FilterError::Invalid(format!(
                "a filter must be a condition, not {}",
                describe(other)
            )))
        }
    };
    let arg = |i: usize| -> Result<&E, FilterError> {
        args.get(i)
            .map(|b| b.as_ref())
            .ok_or_else(|| FilterError::Invalid(format!("'{op}' needs more arguments")))
    };
    Ok(match op {
        "and" => Filter::And(
            args.iter()
                .map(|a| compile(a, known))
                .collect::<Result<_, _>>()?,
        ),
        "or" => Filter::Or(
            args.iter()
                .map(|a| compile(a, known))
                .collect::<Result<_, _>>()?,
        ),
        "not" => Filter::Not(Box::new(compile(arg(0)?, known)?)),
        "=" | "<>" | "<" | "<=" | ">" | ">=" => {
            let mut op = match op {
                "=" => CmpOp::Eq,
                "<>" => CmpOp::Ne,
                "<" => CmpOp::Lt,
                "<=" => CmpOp::Le,
                ">" => CmpOp::Gt,
                _ => CmpOp::Ge,
            };
            let (a, b) = (arg(0)?, arg(1)?);
            let (key, value) = match (property_name(a), property_name(b)) {
                (Some(k), None) => (k, b),
                (None, Some(k)) => {
                    // `5 < x` is `x > 5`.
                    op = match op {
                        CmpOp::Lt => CmpOp::Gt,
                        CmpOp::Le => CmpOp::Ge,
                        CmpOp::Gt => CmpOp::Lt,
                        CmpOp::Ge => CmpOp::Le,
                        same => same,
                    };
                    (k, a)
                }
                _ => {
                    return Err(FilterError::Invalid(format!(
                        "'{op:?}' compares a property with a literal"
                    )))
                }
            };
            let value = scalar(value).ok_or_else(|| {
                FilterError::Invalid(format!("cannot compare '{key}' with {}", describe(value)))
            })?;
            Filter::Compare {
                key: check(key)?,
                op,
                value,
            }
        }
        "like" => {
            let key = property_name(arg(0)?)
                .ok_or_else(|| FilterError::Invalid("LIKE needs a property on the left".into()))?;
            let Some(Scalar::Str(p)) = scalar(arg(1)?) else {
                return Err(FilterError::Invalid("LIKE needs a text pattern".into()));
            };
            Filter::Like {
                key: check(key)?,
                pattern: like_pattern(&p),
            }
        }
        "in" => {
            let key = property_name(arg(0)?)
                .ok_or_else(|| FilterError::Invalid("IN needs a property on the left".into()))?;
            let E::Array(items) = arg(1)? else {
                return Err(FilterError::Invalid("IN needs a list".into()));
            };
            let values = items
                .iter()
                .map(|i| {
                    scalar(i).ok_or_else(|| {
                        FilterError::Invalid(format!("IN list holds {}", describe(i)))
                    })
                })
                .collect::<Result<_, _>>()?;
            Filter::In {
                key: check(key)?,
                values,
            }
        }
        "between" => {
            let key = property_name(arg(0)?)
                .ok_or_else(|| FilterError::Invalid("BETWEEN needs a property".into()))?;
            let num = |e: &E| match scalar(e) {
                Some(Scalar::Num(v)) => Ok(v),
                _ => Err(FilterError::Invalid("BETWEEN needs numbers".into())),
            };
            Filter::Between {
                key: check(key)?,
                low: num(arg(1)?)?,
                high: num(arg(2)?)?,
            }
        }
        "isNull" => {
            let key = property_name(arg(0)?)
                .ok_or_else(|| FilterError::Invalid("IS NULL needs a property".into()))?;
            Filter::IsNull { key: check(key)? }
        }
        "s_intersects" | "s_disjoint" | "s_within" | "s_contains" | "s_equals" | "s_touches"
        | "s_overlaps" | "s_crosses" => {
            let (a, b) = (arg(0)?, arg(1)?);
            let (prop, lit, swapped) = match (property_name(a), property_name(b)) {
                (Some(p), None) => (p, b, false),
                (None, Some(p)) => (p, a, true),
                _ => {
                    return Err(FilterError::Invalid(format!(
                        "{op} compares the geometry property with a geometry literal"
                    )))
                }
            };
            if !is_geometry_property(prop) {
                return Err(FilterError::UnknownProperty(prop.to_string()));
            }
            let geometry = Geometry::<f64>::try_from(lit.clone()).map_err(|_| {
                FilterError::Invalid(format!(
                    "{op}: {} is not a valid WKT geometry or BBOX",
                    describe(lit)
                ))
            })?;
            // Coordinates may be in another CRS (filter-crs) until the caller transforms them, so
            // only the shape is checked here; `check_literals` checks ranges afterwards.
            if let Some(e) = geo::algorithm::Validation::validation_errors(&geometry)
                .into_iter()
                .next()
            {
                return Err(FilterError::Invalid(format!("{op}: invalid geometry: {e}")));
            }
            let mut op = match op {
                "s_intersects" => SpatialOp::Intersects,
                "s_disjoint" => SpatialOp::Disjoint,
                "s_within" => SpatialOp::Within,
                "s_contains" => SpatialOp::Contains,
                "s_equals" => SpatialOp::Equals,
                "s_touches" => SpatialOp::Touches,
                "s_overlaps" => SpatialOp::Overlaps,
                _ => SpatialOp::Crosses,
            };
            if swapped {
                op = match op {
                    SpatialOp::Within => SpatialOp::Contains,
                    SpatialOp::Contains => SpatialOp::Within,
                    same => same,
                };
            }
            Filter::Spatial {
                op,
                bbox: geometry.bounding_rect(),
                geometry: Arc::new(geometry),
            }
        }
        other => return Err(FilterError::Unsupported(other.to_string())),
    })
}

fn describe(e: &cql2::Expr) -> String {
    e.to_text().unwrap_or_else(|_| format!("{e:?}"))
}

fn like_pattern(p: &str) -> Vec<LikeToken> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    text.push(n);
                }
            }
            '%' | '_' => {
                if !text.is_empty() {
                    out.push(LikeToken::Text(std::mem::take(&mut text)));
                }
                out.push(if c == '%' {
                    LikeToken::Any
                } else {
                    LikeToken::One
                });
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(LikeToken::Text(text));
    }
    out
}

fn like_matches(pattern: &[LikeToken], s: &str) -> bool {
    match pattern.split_first() {
        None => s.is_empty(),
        Some((LikeToken::Text(t), rest)) => s
            .strip_prefix(t.as_str())
            .is_some_and(|r| like_matches(rest, r)),
        Some((LikeToken::One, rest)) => {
            let mut it = s.chars();
            it.next().is_some() && like_matches(rest, it.as_str())
        }
        Some((LikeToken::Any, rest)) => {
            if rest.is_empty() {
                return true;
            }
            s.char_indices()
                .map(|(i, _)| i)
                .chain(std::iter::once(s.len()))
                .any(|i| like_matches(rest, &s[i..]))
        }
    }
}

/// A property as a comparable value.
enum Val<'a> {
    Str(&'a str),
    Num(f64),
    Bool(bool),
}

fn lookup<'a>(f: &'a Feature, key: &str) -> Option<Val<'a>> {
    match key {
        "name" => f.name.as_deref().map(Val::Str),
        "admin_code" => f.admin_code.as_deref().map(Val::Str),
        "id" => Some(Val::Str(&f.id)),
        _ => match f.properties.get(key)? {
            Value::String(s) => Some(Val::Str(s)),
            Value::Number(n) => n.as_f64().map(Val::Num),
            Value::Bool(b) => Some(Val::Bool(*b)),
            _ => None,
        },
    }
}

fn compare(v: &Val, op: CmpOp, lit: &Scalar) -> Option<bool> {
    use std::cmp::Ordering;
    let ord = match (v, lit) {
        (Val::Str(a), Scalar::Str(b)) => a.cmp(&b.as_str()),
        (Val::Num(a), Scalar::Num(b)) => a.partial_cmp(b)?,
        // A number written as text in the data (e.g. "2025") still compares as a number.
        (Val::Str(a), Scalar::Num(b)) => a.parse::<f64>().ok()?.partial_cmp(b)?,
        (Val::Num(a), Scalar::Str(b)) => a.partial_cmp(&b.parse::<f64>().ok()?)?,
        (Val::Bool(a), Scalar::Bool(b)) => a.cmp(b),
        _ => return Some(op == CmpOp::Ne),
    };
    Some(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

fn spatial(op: SpatialOp, feature: &Geometry<f64>, lit: &Geometry<f64>) -> bool {
    match op {
        SpatialOp::Intersects => feature.intersects(lit),
        SpatialOp::Disjoint => !feature.intersects(lit),
        _ => {
            let m = feature.relate(lit);
            match op {
                SpatialOp::Within => m.is_within(),
                SpatialOp::Contains => m.is_contains(),
                SpatialOp::Equals => m.is_equal_topo(),
                SpatialOp::Touches => m.is_touches(),
                SpatialOp::Overlaps => m.is_overlaps(),
                _ => m.is_crosses(),
            }
        }
    }
}

impl Filter {
    /// SQL semantics: `None` is unknown (a missing property), which no feature matches.
    pub fn eval(&self, f: &Feature) -> Option<bool> {
        match self {
            Filter::Const(b) => Some(*b),
            Filter::And(parts) => {
                let mut unknown = false;
                for p in parts {
                    match p.eval(f) {
                        Some(false) => return Some(false),
                        None => unknown = true,
                        Some(true) => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(true)
                }
            }
            Filter::Or(parts) => {
                let mut unknown = false;
                for p in parts {
                    match p.eval(f) {
                        Some(true) => return Some(true),
                        None => unknown = true,
                        Some(false) => {}
                    }
                }
                if unknown {
                    None
                } else {
                    Some(false)
                }
            }
            Filter::Not(p) => p.eval(f).map(|b| !b),
            Filter::Compare { key, op, value } => compare(&lookup(f, key)?, *op, value),
            Filter::Like { key, pattern } => match lookup(f, key)? {
                Val::Str(s) => Some(like_matches(pattern, s)),
                _ => Some(false),
            },
            Filter::In { key, values } => {
                let v = lookup(f, key)?;
                Some(
                    values
                        .iter()
                        .any(|lit| compare(&v, CmpOp::Eq, lit) == Some(true)),
                )
            }
            Filter::Between { key, low, high } => match lookup(f, key)? {
                Val::Num(n) => Some(n >= *low && n <= *high),
                Val::Str(s) => s.parse::<f64>().ok().map(|n| n >= *low && n <= *high),
                Val::Bool(_) => Some(false),
            },
            Filter::IsNull { key } => Some(match key.as_str() {
                "name" => f.name.is_none(),
                "admin_code" => f.admin_code.is_none(),
                _ => f.properties.get(key).is_none_or(Value::is_null),
            }),
            Filter::Spatial { op, geometry, .. } => {
                let g = f.geometry.as_ref()?;
                Some(spatial(*op, g, geometry))
            }
            Filter::InArea { area, within } => {
                let g = f.geometry.as_ref()?;
                Some(if *within {
                    area.within(g)
                } else {
                    area.intersects(g)
                })
            }
        }
    }

    /// The same filter with every geometry literal transformed (e.g. from `filter-crs`).
    pub fn map_geometries(self, f: &GeometryMap<'_>) -> Result<Filter, String> {
        Ok(match self {
            Filter::And(v) => Filter::And(
                v.into_iter()
                    .map(|x| x.map_geometries(f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Or(v) => Filter::Or(
                v.into_iter()
                    .map(|x| x.map_geometries(f))
                    .collect::<Result<_, _>>()?,
            ),
            Filter::Not(x) => Filter::Not(Box::new(x.map_geometries(f)?)),
            Filter::Spatial { op, geometry, .. } => {
                let g = f(&geometry)?;
                Filter::Spatial {
                    op,
                    bbox: g.bounding_rect(),
                    geometry: Arc::new(g),
                }
            }
            other => other,
        })
    }

    /// Checks the geometry literals (in stored lon/lat) fully: ranges and validity.
    pub fn check_literals(&self) -> Result<(), String> {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().try_for_each(Filter::check_literals),
            Filter::Not(f) => f.check_literals(),
            Filter::Spatial { geometry, .. } => {
                validate_topology(geometry).map_err(|p| format!("invalid geometry: {p}"))
            }
            _ => Ok(()),
        }
    }

    /// Vertices of the geometry literals, to bound what one request may cost.
    pub fn vertex_count(&self) -> usize {
        use geo::CoordsIter;
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().map(Filter::vertex_count).sum(),
            Filter::Not(f) => f.vertex_count(),
            Filter::Spatial { geometry, .. } => geometry.coords_count(),
            _ => 0,
        }
    }

    pub fn matches(&self, f: &Feature) -> bool {
        self.eval(f) == Some(true)
    }

    /// A box every matching feature's geometry must meet, when the filter implies one; the engine
    /// takes R-tree candidates from it instead of scanning the layer.
    pub fn bbox_hint(&self) -> Option<Rect<f64>> {
        match self {
            Filter::Spatial { op, bbox, .. } if *op != SpatialOp::Disjoint => *bbox,
            Filter::InArea { area, .. } => area.bbox(),
            Filter::And(parts) => {
                parts.iter().filter_map(Filter::bbox_hint).reduce(|a, b| {
                    let min =
                        geo::coord! { x: a.min().x.max(b.min().x), y: a.min().y.max(b.min().y) };
                    let max =
                        geo::coord! { x: a.max().x.min(b.max().x), y: a.max().y.min(b.max().y) };
                    if min.x > max.x || min.y > max.y {
                        // Disjoint hints: nothing can match; an empty far-away box says so.
                        Rect::new(
                            geo::coord! { x: 1e9, y: 1e9 },
                            geo::coord! { x: 1e9, y: 1e9 },
                        )
                    } else {
                        Rect::new(min, max)
                    }
                })
            }
            Filter::Or(parts) => {
                let hints: Option<Vec<Rect<f64>>> = parts.iter().map(Filter::bbox_hint).collect();
                hints?.into_iter().reduce(|a, b| {
                    Rect::new(
                        geo::coord! { x: a.min().x.min(b.min().x), y: a.min().y.min(b.min().y) },
                        geo::coord! { x: a.max().x.max(b.max().x), y: a.max().y.max(b.max().y) },
                    )
                })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{point, polygon};

    fn feature(props: serde_json::Value, g: Geometry<f64>) -> Feature {
        let serde_json::Value::Object(m) = props else {
            panic!()
        };
        Feature::from_parts("t", "1".into(), m, Some(g))
    }

    fn text(f: &str) -> Filter {
        let f = parse(f, FilterLang::Cql2Text, &|k| k != "unknown").unwrap();
        f.check_literals().unwrap();
        f
    }

    #[test]
    fn operators() {
        let f = feature(
            serde_json::json!({"name": "龙水镇", "investment": 1200.5, "year": "2025", "kind": "town", "flag": true}),
            Geometry::Point(point!(x: 105.76, y: 29.56)),
        );
        let yes = [
            "name = '龙水镇'",
            "investment > 1000",
            "investment BETWEEN 1000 AND 2000",
            "year >= 2024",
            "name LIKE '龙%'",
            "name LIKE '_水镇'",
            "kind IN ('village', 'town')",
            "missing IS NULL",
            "NOT (kind = 'village')",
            "kind <> 'village' AND (investment < 10 OR flag = TRUE)",
            "1000 < investment",
            "S_INTERSECTS(geometry, POLYGON((105 29, 106 29, 106 30, 105 30, 105 29)))",
            "S_WITHIN(geometry, BBOX(105, 29, 106, 30))",
            "S_DISJOINT(geometry, POINT(100 20))",
        ];
        for q in yes {
            assert!(text(q).matches(&f), "{q} should match");
        }
        let no = [
            "name = '吴家镇'",
            "investment < 1000",
            "name LIKE '%镇x'",
            "kind IN ('village')",
            "name IS NULL",
            "missing = 3",
            "NOT (missing = 3)",
            "S_CONTAINS(geometry, POLYGON((105 29, 106 29, 106 30, 105 29)))",
            "S_INTERSECTS(geometry, POINT(100 20))",
        ];
        for q in no {
            assert!(!text(q).matches(&f), "{q} should not match");
        }
        let json = r#"{"op":"and","args":[{"op":">","args":[{"property":"investment"},1000]},{"op":"like","args":[{"property":"name"},"龙%"]}]}"#;
        assert!(parse(json, FilterLang::Cql2Json, &|_| true)
            .unwrap()
            .matches(&f));
    }

    #[test]
    fn polygon_predicates() {
        let sq = polygon![(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 4.), (x: 0., y: 0.)];
        let f = feature(serde_json::json!({}), Geometry::Polygon(sq));
        assert!(text("S_WITHIN(geometry, POLYGON((-1 -1, 5 -1, 5 5, -1 5, -1 -1)))").matches(&f));
        assert!(text("S_CONTAINS(geometry, POINT(1 1))").matches(&f));
        assert!(text("S_TOUCHES(geometry, POLYGON((4 0, 6 0, 6 4, 4 4, 4 0)))").matches(&f));
        assert!(text("S_OVERLAPS(geometry, POLYGON((2 2, 6 2, 6 6, 2 6, 2 2)))").matches(&f));
        assert!(text("S_CROSSES(geometry, LINESTRING(-1 2, 5 2))").matches(&f));
        assert!(text("S_EQUALS(geometry, POLYGON((0 0, 0 4, 4 4, 4 0, 0 0)))").matches(&f));
    }

    #[test]
    fn errors_say_where_and_what() {
        match parse("name = 'x", FilterLang::Cql2Text, &|_| true) {
            Err(FilterError::Syntax {
                line: 1, column: 8, ..
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            parse("unknown = 1", FilterLang::Cql2Text, &|k| k != "unknown").unwrap_err(),
            FilterError::UnknownProperty("unknown".into())
        );
        let e = parse(
            "S_INTERSECTS(geometry, POLYGON((0 0, 1 1, 1 0, 0 1, 0 0)))",
            FilterLang::Cql2Text,
            &|_| true,
        );
        assert!(matches!(e, Err(FilterError::Invalid(m)) if m.contains("self-intersection")));
        assert!(parse("{", FilterLang::Cql2Json, &|_| true).is_err());
    }

    #[test]
    fn hints() {
        let h = text("S_INTERSECTS(geometry, BBOX(1, 2, 3, 4)) AND name = 'x'")
            .bbox_hint()
            .unwrap();
        assert_eq!((h.min().x, h.max().y), (1.0, 4.0));
        assert!(
            text("S_INTERSECTS(geometry, BBOX(1, 2, 3, 4)) OR name = 'x'")
                .bbox_hint()
                .is_none()
        );
        assert!(text("S_DISJOINT(geometry, BBOX(1, 2, 3, 4))")
            .bbox_hint()
            .is_none());
    }
}
