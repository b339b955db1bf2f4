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
    /// Longer or deeper than the stated limits ([`MAX_FILTER_BYTES`], [`MAX_FILTER_DEPTH`],
    /// [`MAX_FILTER_OPERATORS`]).
    #[error("{0}")]
    TooLarge(String),
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

/// The longest filter accepted, in bytes: a polygon literal of some 3,000 vertices. The parser's
/// time grows with the length (about ten parser steps per byte).
pub const MAX_FILTER_BYTES: usize = 64 * 1024;
/// The most steps (rule calls) cql2's pest parser may take for one filter, set as pest's
/// process-wide call limit. Parsing is linear for most text, but pest backtracks over nested
/// `(`: a group is tried as a parenthesised expression and again as a list, so work doubles per
/// nested list (`((((1,1),1),1),1)`; 14 levels took 5.5 s in a debug build). Every filter within
/// [`MAX_FILTER_BYTES`] that parses linearly stays below this (the heaviest, an `IN` list of
/// 32,000 one-digit numbers, took 1.0 s in a debug build; test
/// `long_filters_parse_and_backtracking_stops`); at the limit a parse stops with an error
/// (after 1.9 s in a debug build, a fraction of that in a release build).
pub const MAX_PARSER_CALLS: usize = 8_000_000;
/// How deeply a filter may nest. A level is a parenthesis, a `NOT`, or an operator in a chain of
/// comparisons or arithmetic (`a = b = c`, `1 + 2 + 3` nest one level per operator); in cql2-json
/// a level is an array or object. The `cql2` crate's parser (pest) recurses through about a dozen
/// rules per level, some 36 KiB of stack per parenthesis in a debug build (measured; far less in
/// a release build), so this bound keeps the worst case within 1 MiB even there, half of what a
/// tokio worker has (see the test `worst_case_fits_a_small_stack`).
pub const MAX_FILTER_DEPTH: usize = 16;
/// How many `AND`/`OR` a filter may join. The crate builds a chain of them as a tree as deep as
/// the chain before it flattens it, recursively (~2.2 KiB of stack per link in a debug build,
/// measured), so long chains need a bound too; a long list of alternatives is `IN (…)`.
pub const MAX_FILTER_OPERATORS: usize = 128;
/// How deeply a cql2-json filter may nest arrays and objects (a condition takes two levels,
/// `{"op": …, "args": [ … ]}`, a multipolygon literal five).
pub const MAX_FILTER_JSON_DEPTH: usize = 40;

/// Checks the size and nesting of a filter before any parser sees it, in one linear pass that
/// needs no stack: the `cql2` crate, `wkt` and serde recurse once per level, so deep input would
/// overflow the thread's stack and abort the whole process.
pub fn check_bounds(text: &str, lang: FilterLang) -> Result<(), FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(FilterError::TooLarge(format!(
            "the filter is {} bytes long; at most {MAX_FILTER_BYTES} are accepted",
            text.len()
        )));
    }
    let (depth, operators) = match lang {
        FilterLang::Cql2Text => text_shape(text),
        FilterLang::Cql2Json => (json_depth(text), 0),
    };
    let limit = match lang {
        FilterLang::Cql2Text => MAX_FILTER_DEPTH,
        FilterLang::Cql2Json => MAX_FILTER_JSON_DEPTH,
    };
    if depth > limit {
        return Err(FilterError::TooLarge(format!(
            "the filter is nested deeper than {limit} levels"
        )));
    }
    if operators > MAX_FILTER_OPERATORS {
        return Err(FilterError::TooLarge(format!(
            "the filter joins {operators} conditions with AND/OR; at most {MAX_FILTER_OPERATORS} are accepted"
        )));
    }
    Ok(())
}

/// The greatest nesting of `[`/`{` outside strings in JSON text.
fn json_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// WKT keywords: inside their parentheses only numbers follow, so signs there are no operators.
const WKT_KEYWORDS: &[&str] = &[
    "point",
    "linestring",
    "polygon",
    "multipoint",
    "multilinestring",
    "multipolygon",
    "geometrycollection",
];

/// Keywords that nest what follows or chain like a comparison.
const CHAIN_KEYWORDS: &[&str] = &["like", "in", "between", "is", "div"];

/// Where the scan of cql2-text is, per open parenthesis.
#[derive(Clone, Copy, Default)]
struct Level {
    /// Depth at which this parenthesis opened.
    base: usize,
    /// `NOT`s since the last operand.
    nots: usize,
    /// Comparison and arithmetic operators since the last `AND`, `OR`, `,` or `(`.
    chain: usize,
    /// Inside a WKT literal (only numbers there).
    literal: bool,
}

/// (nesting depth, AND/OR count) of cql2-text, as [`MAX_FILTER_DEPTH`] counts levels, outside
/// quoted strings and identifiers. Over-estimates rather than under-estimates what the parser
/// builds: every `-` counts, even a sign.
fn text_shape(text: &str) -> (usize, usize) {
    let b = text.as_bytes();
    let mut stack: Vec<Level> = Vec::new();
    let mut here = Level::default();
    let (mut max, mut joins) = (0usize, 0usize);
    let mut after_wkt_keyword = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let mut operator = false;
        match c {
            b'\'' | b'"' => {
                // A quoted string or identifier; a doubled quote is an escaped one.
                i += 1;
                while i < b.len() {
                    if b[i] == c {
                        if b.get(i + 1) == Some(&c) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                here.nots = 0;
            }
            b'(' => {
                let literal = here.literal || after_wkt_keyword;
                stack.push(here);
                here = Level {
                    base: here.base + here.nots + here.chain + 1,
                    nots: 0,
                    chain: 0,
                    literal,
                };
            }
            b')' => {
                here = stack.pop().unwrap_or_default();
                here.nots = 0;
            }
            b',' => {
                here.nots = 0;
                here.chain = 0;
            }
            _ if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i + 1 < b.len()
                    && (b[i + 1].is_ascii_alphanumeric() || matches!(b[i + 1], b'_' | b'.' | b':'))
                {
                    i += 1;
                }
                let word = text[start..=i].to_ascii_lowercase();
                let word = word.as_str();
                if !here.literal {
                    match word {
                        "and" | "or" => {
                            joins += 1;
                            here.nots = 0;
                            here.chain = 0;
                        }
                        "not" => here.nots += 1,
                        w if CHAIN_KEYWORDS.contains(&w) => here.chain += 1,
                        _ => here.nots = 0,
                    }
                }
                after_wkt_keyword = WKT_KEYWORDS.contains(&word);
                max = max.max(here.base + here.nots + here.chain);
                i += 1;
                continue;
            }
            b'<' | b'>' | b'!' if matches!(b.get(i + 1), Some(b'=') | Some(b'>')) => {
                operator = true;
                i += 1;
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'=' | b'<' | b'>' | b'!' => operator = true,
            _ if c.is_ascii_digit() => {
                // A number, with its exponent sign (`1e-5`).
                while i + 1 < b.len()
                    && (b[i + 1].is_ascii_digit()
                        || b[i + 1] == b'.'
                        || (matches!(b[i + 1], b'e' | b'E')
                            && b.get(i + 2)
                                .is_some_and(|n| n.is_ascii_digit() || *n == b'-' || *n == b'+')))
                {
                    i += if matches!(b[i + 1], b'e' | b'E') {
                        2
                    } else {
                        1
                    };
                }
                here.nots = 0;
            }
            _ => {}
        }
        if operator && !here.literal {
            here.chain += 1;
        }
        if !c.is_ascii_whitespace() {
            after_wkt_keyword = false;
        }
        max = max.max(here.base + here.nots + here.chain);
        i += 1;
    }
    (max, joins)
}

/// Parses `text` in the given encoding and compiles it; `known` says which property names exist.
/// Size and nesting are checked first ([`check_bounds`]).
pub fn parse(
    text: &str,
    lang: FilterLang,
    known: &dyn Fn(&str) -> bool,
) -> Result<Filter, FilterError> {
    check_bounds(text, lang)?;
    static CALL_LIMIT: std::sync::Once = std::sync::Once::new();
    CALL_LIMIT.call_once(|| pest::set_call_limit(std::num::NonZeroUsize::new(MAX_PARSER_CALLS)));
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
    if text.contains("call limit reached") || text.contains("stack limit reached") {
        return FilterError::TooLarge(format!(
            "the filter takes more than {MAX_PARSER_CALLS} parser steps; nest fewer parentheses or lists"
        ));
    }
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
            if let Some(e) = crate::geom::topology_problem(&geometry) {
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

/// A LIKE pattern as tokens; runs of `%` collapse into one `Any`, which matches the same strings.
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
                if c == '_' {
                    out.push(LikeToken::One);
                } else if out.last() != Some(&LikeToken::Any) {
                    out.push(LikeToken::Any);
                }
            }
            c => text.push(c),
        }
    }
    if !text.is_empty() {
        out.push(LikeToken::Text(text));
    }
    out
}

/// Whether `s` matches the pattern, in O(|s| · |pattern|) time and constant space: the classic
/// wildcard matcher that keeps only the last `%` as its backtracking point. Retrying only from the
/// last `%` loses nothing, since the part before it matched at its leftmost place, which leaves
/// the most room for the rest; trying every split for every `%` (as a recursive matcher does)
/// takes time exponential in the number of `%`.
fn like_matches(pattern: &[LikeToken], s: &str) -> bool {
    let char_len = |at: usize| s[at..].chars().next().map_or(0, char::len_utf8);
    let (mut t, mut at) = (0usize, 0usize);
    // (token after the last `%`, where in `s` that `%`'s match currently ends)
    let mut retry: Option<(usize, usize)> = None;
    loop {
        match pattern.get(t) {
            Some(LikeToken::Any) => {
                if t + 1 == pattern.len() {
                    return true;
                }
                retry = Some((t + 1, at));
                t += 1;
                continue;
            }
            Some(LikeToken::Text(text)) if s[at..].starts_with(text.as_str()) => {
                at += text.len();
                t += 1;
                continue;
            }
            Some(LikeToken::One) if at < s.len() => {
                at += char_len(at);
                t += 1;
                continue;
            }
            None if at == s.len() => return true,
            _ => {}
        }
        // Mismatch: let the last `%` swallow one more character and try again from after it.
        match retry {
            Some((after, end)) if end < s.len() => {
                let end = end + char_len(end);
                retry = Some((after, end));
                t = after;
                at = end;
            }
            _ => return false,
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
                // geo's relate panics on some invalid geometries ("topology position conflict");
                // a stored feature that is invalid then matches nothing rather than failing the
                // request.
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| spatial(*op, g, geometry)))
                    .ok()
            }
            Filter::InArea { area, within } => {
                let g = f.geometry.as_ref()?;
                Some(if *within {
                    area.within(g)
                } else {
                    super::membership::is_member(area, g)
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

    /// Parts of the geometry literals (see [`crate::geom::MAX_GEOMETRY_PARTS`]).
    pub fn part_count(&self) -> usize {
        match self {
            Filter::And(v) | Filter::Or(v) => v.iter().map(Filter::part_count).sum(),
            Filter::Not(f) => f.part_count(),
            Filter::Spatial { geometry, .. } => crate::geom::part_count(geometry),
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

    fn run_on_small_stack<T: Send + 'static>(
        kib: usize,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        std::thread::Builder::new()
            .stack_size(kib * 1024)
            .spawn(f)
            .unwrap()
            .join()
            .unwrap()
    }

    /// Every shape the bounds let through, at the bounds, parsed, compiled, evaluated and dropped
    /// on a 1 MiB stack in a debug build (tokio's workers have 2 MiB; a release build needs a
    /// fraction of what a debug build does).
    #[test]
    fn worst_case_fits_a_small_stack() {
        let d = MAX_FILTER_DEPTH;
        let chain = |op: &str, n: usize| vec!["1"; n + 1].join(op);
        let joins = vec!["x = 1"; MAX_FILTER_OPERATORS + 1].join(" AND ");
        let cases = vec![
            format!("{}x = 1{}", "(".repeat(d - 1), ")".repeat(d - 1)),
            format!(
                "{}x = 1{}",
                "NOT (".repeat(d / 2 - 1),
                ")".repeat(d / 2 - 1)
            ),
            format!("{}x = 1", "NOT ".repeat(d - 1)),
            format!("x = {}", chain(" + ", d - 1)),
            format!("x = {}", chain(" ^ ", d - 1)),
            format!("x = {}", chain(" - ", d - 1)),
            format!("x = {}1", "- ".repeat(d - 1)),
            format!("{}x = 1", "x = ".repeat(d - 1)),
            vec!["x = 1"; MAX_FILTER_OPERATORS + 1].join(" OR "),
            format!("{}{joins}{}", "(".repeat(d - 1), ")".repeat(d - 1)),
            format!(
                "{}x = {}{}",
                "(".repeat(d / 2),
                chain(" * ", d / 2 - 1),
                ")".repeat(d / 2)
            ),
            format!(
                "S_INTERSECTS(geometry, {}POINT(1 1){})",
                "GEOMETRYCOLLECTION(".repeat(d - 2),
                ")".repeat(d - 2)
            ),
            format!("x IN ({})", vec!["1"; 10_000].join(",")),
            format!("name LIKE '{}'", "_%".repeat(10_000)),
        ];
        for q in cases {
            check_bounds(&q, FilterLang::Cql2Text).unwrap_or_else(|e| panic!("{e}: {q:.80}"));
            run_on_small_stack(1024, move || {
                let f = feature(
                    serde_json::json!({"x": 1, "name": "x"}),
                    Geometry::Point(point!(x: 1., y: 1.)),
                );
                if let Ok(filter) = parse(&q, FilterLang::Cql2Text, &|_| true) {
                    let _ = filter.eval(&f);
                    let _ = filter.check_literals();
                    let _ = filter.clone().map_geometries(&|g| Ok(g.clone()));
                }
            });
        }
        let mut json = String::from(r#"{"op":"=","args":[{"property":"x"},1]}"#);
        while json_depth(&json) + 2 <= MAX_FILTER_JSON_DEPTH {
            json = format!(r#"{{"op":"not","args":[{json}]}}"#);
        }
        check_bounds(&json, FilterLang::Cql2Json).unwrap();
        run_on_small_stack(1024, move || {
            let f = parse(&json, FilterLang::Cql2Json, &|_| true).unwrap();
            let g = Geometry::Point(point!(x: 1., y: 1.));
            let _ = f.eval(&feature(serde_json::json!({"x": 1}), g));
        });
    }

    #[test]
    fn deep_or_long_filters_are_refused_before_parsing() {
        let too_deep = [
            format!("{}name = 'x'{}", "(".repeat(400), ")".repeat(400)),
            format!("{}name = 'x'{}", "(".repeat(5810), ")".repeat(5810)),
            format!("{}name = 'x'", "NOT ".repeat(5000)),
            format!("{}name = 'x'", "NOT ".repeat(MAX_FILTER_DEPTH + 1)),
            format!(
                "S_INTERSECTS(geometry, {}POINT(1 1){})",
                "GEOMETRYCOLLECTION(".repeat(2000),
                ")".repeat(2000)
            ),
            // Unbalanced: still refused, not parsed.
            "(".repeat(60_000),
        ];
        for q in too_deep {
            let e = parse(&q, FilterLang::Cql2Text, &|_| true).unwrap_err();
            assert_eq!(
                e,
                FilterError::TooLarge(format!(
                    "the filter is nested deeper than {MAX_FILTER_DEPTH} levels"
                )),
                "{q:.60}"
            );
        }
        // Just within and just beyond the bound.
        let at = |n: usize| format!("{}x = 1{}", "(".repeat(n), ")".repeat(n));
        assert!(parse(&at(MAX_FILTER_DEPTH - 1), FilterLang::Cql2Text, &|_| true).is_ok());
        assert!(parse(&at(MAX_FILTER_DEPTH), FilterLang::Cql2Text, &|_| true).is_err());
        for ok in [
            "NOT (x = 1 AND (y <= 2 OR z <> 3)) AND NOT name LIKE 'a%'",
            "x BETWEEN -5 AND 5 AND y IS NOT NULL",
            "S_INTERSECTS(geometry, MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)), ((2 2, 3 2, 3 3, 2 2))))",
            "S_INTERSECTS(geometry, BBOX(-1, -2, 3, 4)) OR S_WITHIN(geometry, BBOX(-1e-3, -2, 3, 4))",
        ] {
            let (depth, _) = text_shape(ok);
            assert!(depth <= 6, "{ok}: {depth}");
        }
        let chain = format!("x = {}", vec!["1"; 5000].join(" + "));
        assert!(matches!(
            parse(&chain, FilterLang::Cql2Text, &|_| true),
            Err(FilterError::TooLarge(m)) if m.contains("nested deeper")
        ));
        let joins = vec!["x = 1"; MAX_FILTER_OPERATORS + 2].join(" AND ");
        assert!(matches!(
            parse(&joins, FilterLang::Cql2Text, &|_| true),
            Err(FilterError::TooLarge(m)) if m.contains("AND/OR")
        ));
        let long = format!("name = '{}'", "x".repeat(MAX_FILTER_BYTES));
        assert!(matches!(
            parse(&long, FilterLang::Cql2Text, &|_| true),
            Err(FilterError::TooLarge(m)) if m.contains("bytes")
        ));
        let mut json = String::from(r#"{"op":"=","args":[{"property":"x"},1]}"#);
        for _ in 0..30 {
            json = format!(r#"{{"op":"not","args":[{json}]}}"#);
        }
        assert!(matches!(
            parse(&json, FilterLang::Cql2Json, &|_| true),
            Err(FilterError::TooLarge(m)) if m.contains("nested deeper")
        ));
        // Brackets and parentheses inside strings do not count; minus signs in WKT are no operators.
        let quoted = format!("name = '{}'", "(".repeat(1000));
        assert!(parse(&quoted, FilterLang::Cql2Text, &|_| true).is_ok());
        let ring: Vec<String> = (0..1000)
            .map(|i| {
                let a = i as f64 / 1000.0 * std::f64::consts::TAU;
                format!("{} {}", -100.0 + a.cos(), -30.0 + a.sin())
            })
            .collect();
        let poly = format!(
            "S_INTERSECTS(geometry, POLYGON(({}, {})))",
            ring.join(", "),
            ring[0]
        );
        assert!(parse(&poly, FilterLang::Cql2Text, &|_| true).is_ok());
    }

    /// The longest filters of the shapes that take the most parser steps per byte parse within
    /// [`MAX_PARSER_CALLS`]; backtracking over nested lists is stopped.
    #[test]
    fn long_filters_parse_and_backtracking_stops() {
        let fill = |unit: &str, head: &str, tail: &str, sep: &str| {
            let n = (MAX_FILTER_BYTES - head.len() - tail.len()) / (unit.len() + sep.len());
            format!("{head}{}{tail}", vec![unit; n].join(sep))
        };
        let ring: Vec<String> = (0..4000)
            .map(|i| {
                let a = f64::from(i) / 4000.0 * std::f64::consts::TAU;
                format!("{:.6} {:.6}", 105.0 + a.cos(), 29.0 + a.sin())
            })
            .collect();
        let mut poly = String::from("S_INTERSECTS(geometry, POLYGON((");
        for c in &ring {
            if poly.len() + c.len() + 40 > MAX_FILTER_BYTES {
                break;
            }
            poly.push_str(c);
            poly.push_str(", ");
        }
        poly.push_str(&format!("{})))", ring[0]));
        let long = [
            fill("'aaaa'", "x IN (", ")", ","),
            fill("1", "x IN (", ")", ","),
            fill("x", "name = '", "'", ""),
            poly,
            fill(
                "(x = 'abc' AND y IN (1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22))",
                "",
                "",
                " OR ",
            )
            .chars()
            .take(0)
            .collect::<String>()
                + &vec!["(x = 'abc' AND y IN (1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30))"; 64].join(" OR "),
        ];
        for q in &long {
            assert!(q.len() <= MAX_FILTER_BYTES);
            if let Err(e) = parse(q, FilterLang::Cql2Text, &|_| true) {
                panic!("{e}: {:.80}… ({} bytes)", q, q.len());
            }
        }
        let mut inner = String::from("1,1");
        for _ in 0..14 {
            inner = format!("({inner}),1");
        }
        assert!(matches!(
            parse(&format!("x IN ({inner})"), FilterLang::Cql2Text, &|_| true),
            Err(FilterError::TooLarge(m)) if m.contains("parser steps")
        ));
    }

    #[test]
    fn like_is_linear_and_right() {
        // Independent reference: the textbook dynamic programme over (pattern, text) prefixes.
        fn reference(p: &[LikeToken], s: &str) -> bool {
            let mut flat = Vec::new();
            for t in p {
                match t {
                    LikeToken::Text(t) => flat.extend(t.chars().map(Some)),
                    LikeToken::One => flat.push(None),
                    LikeToken::Any => flat.push(Some('\u{0}')),
                }
            }
            let s: Vec<char> = s.chars().collect();
            let mut row = vec![false; s.len() + 1];
            row[0] = true;
            for pc in &flat {
                let mut next = vec![false; s.len() + 1];
                for j in 0..=s.len() {
                    next[j] = match pc {
                        Some('\u{0}') => row[j] || (j > 0 && next[j - 1]),
                        None => j > 0 && row[j - 1],
                        Some(c) => j > 0 && row[j - 1] && s[j - 1] == *c,
                    };
                }
                row = next;
            }
            row[s.len()]
        }
        let texts = [
            "",
            "a",
            "ab",
            "aab",
            "abab",
            "龙水镇",
            "龙水镇镇",
            "%x",
            "a_b",
            "bba",
        ];
        let patterns = [
            "", "%", "%%", "_", "a%", "%b", "%a%b%", "a_b", "_%_", "%镇", "龙%镇", "%%%#", "a%%b",
            "\\%x", "a\\_b", "%ab%ab", "_b%", "b%a",
        ];
        for p in patterns {
            let tokens = like_pattern(p);
            for t in texts {
                assert_eq!(
                    like_matches(&tokens, t),
                    reference(&tokens, t),
                    "'{t}' LIKE '{p}'"
                );
            }
        }
        // Crash 2: these took seconds to minutes and would not finish on a 10 kB string.
        let long = "a".repeat(10_000);
        for p in [
            "%%%#",
            "%%%%#",
            "%%%%%%%%%%#",
            "%a%a%a%a%a%a%a%a%a%a%#",
            "%_%_%_%_%_%#",
        ] {
            assert!(!like_matches(&like_pattern(p), &long), "{p}");
        }
        assert!(like_matches(&like_pattern("%a%a%a%a%a%a%a%a%a%a%"), &long));
        assert!(like_matches(&like_pattern("%%%%%%%%%%a"), &long));
        let f = feature(
            serde_json::json!({"name": "x".repeat(10_000)}),
            Geometry::Point(point!(x: 1., y: 1.)),
        );
        assert!(!text("name LIKE '%%%%%%%%%%#'").matches(&f));
        assert!(text("name LIKE '%%%%%%%%%%x'").matches(&f));
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
