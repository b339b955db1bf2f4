use geo::{CoordsIter, Geometry, LineString, Polygon};

/// What is wrong with a geometry, and where (a coordinate path such as `ring 0, point 3`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{problem} at {location}")]
pub struct GeometryProblem {
    pub problem: String,
    pub location: String,
}

fn problem(problem: impl Into<String>, location: impl Into<String>) -> GeometryProblem {
    GeometryProblem {
        problem: problem.into(),
        location: location.into(),
    }
}

/// Checks what every stored geometry must satisfy: finite lon/lat inside ±180/±90, lines with at
/// least 2 points, polygon rings closed with at least 4 points.
///
/// ```
/// use geo::{point, Geometry};
/// use yizhangtu::geom::validate_geometry;
/// assert!(validate_geometry(&Geometry::Point(point!(x: 105.7, y: 29.7))).is_ok());
/// assert!(validate_geometry(&Geometry::Point(point!(x: 105.7, y: 95.0))).is_err());
/// ```
pub fn validate_geometry(g: &Geometry<f64>) -> Result<(), GeometryProblem> {
    for (i, c) in g.coords_iter().enumerate() {
        if !c.x.is_finite() || !c.y.is_finite() {
            return Err(problem(
                "coordinate is not a finite number",
                format!("coordinate {i}"),
            ));
        }
        if !(-180.0..=180.0).contains(&c.x) {
            return Err(problem(
                format!("longitude {} is outside -180..180", c.x),
                format!("coordinate {i}"),
            ));
        }
        if !(-90.0..=90.0).contains(&c.y) {
            return Err(problem(
                format!("latitude {} is outside -90..90", c.y),
                format!("coordinate {i}"),
            ));
        }
    }
    check_parts(g, "")
}

fn check_line(l: &LineString<f64>, at: &str) -> Result<(), GeometryProblem> {
    if l.0.len() < 2 {
        return Err(problem(
            format!("a line needs at least 2 points, has {}", l.0.len()),
            at,
        ));
    }
    Ok(())
}

fn check_polygon(p: &Polygon<f64>, at: &str) -> Result<(), GeometryProblem> {
    for (i, ring) in std::iter::once(p.exterior())
        .chain(p.interiors())
        .enumerate()
    {
        let here = format!("{at}ring {i}");
        if ring.0.len() < 4 {
            return Err(problem(
                format!(
                    "a polygon ring needs at least 4 points (closed), has {}",
                    ring.0.len()
                ),
                here,
            ));
        }
        if ring.0.first() != ring.0.last() {
            return Err(problem("polygon ring is not closed", here));
        }
    }
    Ok(())
}

fn check_parts(g: &Geometry<f64>, at: &str) -> Result<(), GeometryProblem> {
    match g {
        Geometry::LineString(l) => check_line(l, at),
        Geometry::Polygon(p) => check_polygon(p, at),
        Geometry::MultiLineString(ml) => {
            ml.0.iter()
                .enumerate()
                .try_for_each(|(i, l)| check_line(l, &format!("{at}line {i}")))
        }
        Geometry::MultiPolygon(mp) => {
            mp.0.iter()
                .enumerate()
                .try_for_each(|(i, p)| check_polygon(p, &format!("{at}polygon {i}, ")))
        }
        Geometry::GeometryCollection(gc) => {
            gc.0.iter()
                .enumerate()
                .try_for_each(|(i, g)| check_parts(g, &format!("{at}member {i}, ")))
        }
        _ => Ok(()),
    }
}

/// Full OGC validity for geometries users send in requests: everything `validate_geometry`
/// checks, plus no self-intersections, holes inside shells, and so on (geo's `Validation`).
///
/// ```
/// use geo::{polygon, Geometry};
/// use yizhangtu::geom::validate_topology;
/// let bowtie = polygon![(x: 0., y: 0.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 1.), (x: 0., y: 0.)];
/// let err = validate_topology(&Geometry::Polygon(bowtie)).unwrap_err();
/// assert!(err.problem.contains("self-intersection"), "{}", err.problem);
/// ```
pub fn validate_topology(g: &Geometry<f64>) -> Result<(), GeometryProblem> {
    use geo::algorithm::Validation;
    validate_geometry(g)?;
    match g.validation_errors().into_iter().next() {
        None => Ok(()),
        Some(e) => Err(problem(e.to_string(), "geometry")),
    }
}

/// China's extent with a margin (73–136°E, 3–54°N). Imports outside it almost always mean a
/// wrong CRS (swapped axes, a wrong zone, GCJ-02 mistaken for another), so they are refused.
pub const CHINA: (f64, f64, f64, f64) = (73.0, 3.0, 136.0, 54.0);

/// Every coordinate inside [`CHINA`].
///
/// ```
/// use geo::{point, Geometry};
/// use yizhangtu::geom::within_china;
/// assert!(within_china(&Geometry::Point(point!(x: 105.7, y: 29.6))).is_ok());
/// assert!(within_china(&Geometry::Point(point!(x: 29.6, y: 105.7))).is_err());
/// ```
pub fn within_china(g: &Geometry<f64>) -> Result<(), GeometryProblem> {
    let (x0, y0, x1, y1) = CHINA;
    for (i, c) in g.coords_iter().enumerate() {
        if !(x0..=x1).contains(&c.x) || !(y0..=y1).contains(&c.y) {
            return Err(problem(
                format!("({}, {}) lies outside China (73–136°E, 3–54°N); is the CRS or the axis order right?", c.x, c.y),
                format!("coordinate {i}"),
            ));
        }
    }
    Ok(())
}
