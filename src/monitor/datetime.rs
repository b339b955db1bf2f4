//! `datetime=` (OGC API – Features): an instant or an interval, open at either end with `..`
//! or nothing, selecting features whose period (`start_date` … `end_date`) overlaps it.

use crate::engine::filter::{CmpOp, Filter, Scalar};

use super::{format_date, parse_date};

/// The feature properties that hold a period; a layer with both has a temporal extent.
pub const START: &str = "start_date";
pub const END: &str = "end_date";

/// A closed date interval, either end open (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interval {
    pub start: Option<time::Date>,
    pub end: Option<time::Date>,
}

/// One end of an interval: an RFC 3339 date or date-time (only the date counts; periods are
/// whole days), or — a convenience — a bare year for the whole year.
fn instant(text: &str, end: bool) -> Result<Option<time::Date>, String> {
    let t = text.trim();
    if t.is_empty() || t == ".." {
        return Ok(None);
    }
    if t.len() == 4 && t.bytes().all(|b| b.is_ascii_digit()) {
        let year: i32 = t.parse().map_err(|_| format!("'{t}' is not a year"))?;
        let (month, day) = if end {
            (time::Month::December, 31)
        } else {
            (time::Month::January, 1)
        };
        return time::Date::from_calendar_date(year, month, day)
            .map(Some)
            .map_err(|e| format!("'{t}': {e}"));
    }
    if t.len() > 10 {
        // A date-time: check it is one, then keep its date.
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|_| format!("'{t}' is not an RFC 3339 date or date-time"))?;
    }
    parse_date(t.get(..10).unwrap_or(t))
        .map(Some)
        .map_err(|_| format!("'{t}' is not an RFC 3339 date or date-time"))
}

/// Parses `datetime`: `2024-05-01`, `2024-05-01T08:00:00Z`, `2024-01-01/2024-12-31`,
/// `../2025-12-31`, `2024-01-01/..`, `2024`.
pub fn parse(text: &str) -> Result<Interval, String> {
    let interval = match text.split_once('/') {
        None => {
            if text.trim() == ".." {
                return Err(
                    "'..' alone is no instant; write an interval such as ../2025-12-31".into(),
                );
            }
            Interval {
                start: instant(text, false)?,
                end: instant(text, true)?,
            }
        }
        Some((a, b)) => {
            if b.contains('/') {
                return Err("an interval has one '/'".into());
            }
            Interval {
                start: instant(a, false)?,
                end: instant(b, true)?,
            }
        }
    };
    if let (Some(s), Some(e)) = (interval.start, interval.end) {
        if s > e {
            return Err("the interval's start is after its end".into());
        }
    }
    Ok(interval)
}

/// The filter for features whose period overlaps `interval`: starts on or before its end and
/// ends on or after its start (ISO dates compare as text). `None` for a fully open interval.
pub fn overlap_filter(interval: &Interval) -> Option<Filter> {
    let mut parts = Vec::new();
    if let Some(end) = interval.end {
        parts.push(Filter::Compare {
            key: START.into(),
            op: CmpOp::Le,
            value: Scalar::Str(format_date(end)),
        });
    }
    if let Some(start) = interval.start {
        parts.push(Filter::Compare {
            key: END.into(),
            op: CmpOp::Ge,
            value: Scalar::Str(format_date(start)),
        });
    }
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Filter::And(parts)),
    }
}

/// For the items query: `Ok(None)` when the layer has no period properties (then `datetime` is
/// only checked, every feature matches), else the overlap filter.
pub fn items_filter(
    text: &str,
    has_property: &dyn Fn(&str) -> bool,
) -> Result<Option<Filter>, String> {
    let interval = parse(text)?;
    if !(has_property(START) && has_property(END)) {
        return Ok(None);
    }
    Ok(overlap_filter(&interval))
}

/// A layer's temporal extent for `/collections` (OGC `extent.temporal`): the earliest start
/// and latest end of its features' periods; `None` for layers without periods.
pub fn temporal_extent(idx: &crate::engine::LayerIndex) -> Option<serde_json::Value> {
    if !(idx.has_property(START) && idx.has_property(END)) {
        return None;
    }
    let (mut first, mut last): (Option<String>, Option<String>) = (None, None);
    for (_, f) in idx.iter() {
        let text = |k: &str| f.properties.get(k).and_then(serde_json::Value::as_str);
        if let Some(s) = text(START) {
            if first.as_deref().is_none_or(|x| s < x) {
                first = Some(s.to_string());
            }
        }
        if let Some(e) = text(END) {
            if last.as_deref().is_none_or(|x| e > x) {
                last = Some(e.to_string());
            }
        }
    }
    let instant = |d: Option<String>, time: &str| d.map(|d| format!("{d}T{time}Z"));
    Some(serde_json::json!({
        "interval": [[instant(first, "00:00:00"), instant(last, "23:59:59")]],
        "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Feature;

    fn project(start: &str, end: &str) -> Feature {
        let mut p = crate::model::Properties::new();
        p.insert(START.into(), start.into());
        p.insert(END.into(), end.into());
        Feature::from_parts("projects", "p".into(), p, None)
    }

    fn selects(datetime: &str, f: &Feature) -> bool {
        match overlap_filter(&parse(datetime).unwrap()) {
            None => true,
            Some(filter) => filter.matches(f),
        }
    }

    #[test]
    fn intervals_overlap_periods() {
        let p = project("2021-01-01", "2025-12-31");
        assert!(selects("2024-01-01/2024-12-31", &p));
        assert!(selects("2025-12-31", &p));
        assert!(!selects("2026-01-01", &p));
        assert!(selects("../2021-01-01", &p));
        assert!(!selects("../2020-12-31", &p));
        assert!(selects("2025-06-01/..", &p));
        assert!(!selects("2026-01-01/..", &p));
        assert!(selects("../..", &p));
        assert!(selects("2024", &p));
        assert!(!selects("2020", &p));
        assert!(selects("2024-05-01T08:00:00Z", &p));
        assert!(selects("/2022-01-01", &p));
    }

    #[test]
    fn bad_values_say_why() {
        for bad in [
            "tomorrow",
            "2024-13-01",
            "2025-01-01/2024-01-01",
            "..",
            "a/b/c",
            "2024-01-01T99",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
