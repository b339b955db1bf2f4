//! Geometry checks: what every stored geometry must satisfy, full OGC validity for what users
//! send, and the size limits on any input geometry.

use geo::algorithm::validation::{
    GeometryIndex, InvalidGeometry, InvalidGeometryCollection, InvalidMultiPolygon, InvalidPolygon,
    RingRole, Validation,
};
use geo::{
    BoundingRect, CoordsIter, Geometry, HasDimensions, Intersects, Line, LineString, MultiPolygon,
    Polygon, Relate, RemoveRepeatedPoints,
};
use rstar::{primitives::GeomWithData, primitives::Rectangle, RTree, RTreeObject, AABB};

/// The most vertices one input geometry may have (a request's geometry, a posted or imported
/// feature). Validation is O(n log n), so this bounds the work one geometry causes.
pub const MAX_GEOMETRY_VERTICES: usize = 250_000;
/// The most parts one input geometry may have. A part is a member of a multi-geometry or a
/// collection (a point, a line, a polygon) or a polygon's ring.
pub const MAX_GEOMETRY_PARTS: usize = 10_000;
/// How deeply WKT text may nest parentheses (a multipolygon needs 3, a collection of them 4);
/// parsers recurse once per level.
pub const MAX_WKT_DEPTH: usize = 16;

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
    check_size(g)?;
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
/// checks, plus no self-intersections, holes inside shells, and so on: the answers of geo's
/// `Validation` ([`topology_error`]), in O(n log n).
///
/// ```
/// use geo::{polygon, Geometry};
/// use yizhangtu::geom::validate_topology;
/// let bowtie = polygon![(x: 0., y: 0.), (x: 1., y: 1.), (x: 1., y: 0.), (x: 0., y: 1.), (x: 0., y: 0.)];
/// let err = validate_topology(&Geometry::Polygon(bowtie)).unwrap_err();
/// assert!(err.problem.contains("self-intersection"), "{}", err.problem);
/// ```
pub fn validate_topology(g: &Geometry<f64>) -> Result<(), GeometryProblem> {
    validate_geometry(g)?;
    match topology_problem(g) {
        None => Ok(()),
        Some(e) => Err(problem(e, "geometry")),
    }
}

/// The largest coordinate magnitude [`topology_problem`] works with: beyond every supported CRS
/// (Gauss-Krüger eastings with the zone in front are below 5e7), and small enough that no
/// product in the intersection arithmetic overflows.
pub const MAX_COORDINATE_MAGNITUDE: f64 = 1e10;

/// [`topology_error`] as a message, for geometries in any CRS: non-finite or absurdly large
/// coordinates are refused first, and should geo's relate give up on a geometry (it panics on
/// some invalid ones: "topology position conflict"), that is reported as invalidity rather than
/// taking the request down.
pub fn topology_problem(g: &Geometry<f64>) -> Option<String> {
    if let Some((i, c)) = g.coords_iter().enumerate().find(|(_, c)| {
        !(c.x.abs() <= MAX_COORDINATE_MAGNITUDE && c.y.abs() <= MAX_COORDINATE_MAGNITUDE)
    }) {
        return Some(format!(
            "coordinate {i} ({}, {}) is not a finite number within ±{MAX_COORDINATE_MAGNITUDE:e}",
            c.x, c.y
        ));
    }
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| topology_error(g))) {
        Ok(e) => e.map(|e| e.to_string()),
        Err(_) => Some(
            "the geometry's rings or parts meet in a way that cannot be resolved (it is invalid)"
                .into(),
        ),
    }
}

/// Vertices and parts against [`MAX_GEOMETRY_VERTICES`] and [`MAX_GEOMETRY_PARTS`].
///
/// ```
/// use geo::{Geometry, LineString};
/// use yizhangtu::geom::{check_size, MAX_GEOMETRY_VERTICES};
/// let long = LineString::from(vec![(105.0, 29.0); MAX_GEOMETRY_VERTICES + 1]);
/// assert!(check_size(&Geometry::LineString(long)).is_err());
/// ```
pub fn check_size(g: &Geometry<f64>) -> Result<(), GeometryProblem> {
    let vertices = g.coords_count();
    if vertices > MAX_GEOMETRY_VERTICES {
        return Err(problem(
            format!(
                "the geometry has {vertices} vertices; at most {MAX_GEOMETRY_VERTICES} are accepted"
            ),
            "geometry",
        ));
    }
    let parts = part_count(g);
    if parts > MAX_GEOMETRY_PARTS {
        return Err(problem(
            format!("the geometry has {parts} parts; at most {MAX_GEOMETRY_PARTS} are accepted"),
            "geometry",
        ));
    }
    Ok(())
}

/// Parts as [`MAX_GEOMETRY_PARTS`] counts them; a single point, line or ring-less shape is one.
pub fn part_count(g: &Geometry<f64>) -> usize {
    let rings = |p: &Polygon<f64>| 1 + p.interiors().len();
    let mut count = 0usize;
    // Iterative, so that deeply nested collections need no stack.
    let mut todo = vec![g];
    while let Some(g) = todo.pop() {
        count += match g {
            Geometry::Polygon(p) => rings(p),
            Geometry::MultiPolygon(mp) => mp.0.iter().map(rings).sum(),
            Geometry::MultiLineString(ml) => ml.0.len(),
            Geometry::MultiPoint(mp) => mp.0.len(),
            Geometry::GeometryCollection(gc) => {
                todo.extend(gc.0.iter());
                0
            }
            _ => 1,
        };
    }
    count
}

/// Checks that WKT `text` nests parentheses at most [`MAX_WKT_DEPTH`] deep, in one pass without
/// recursion, before a recursive parser sees it.
///
/// ```
/// use yizhangtu::geom::check_wkt_nesting;
/// assert!(check_wkt_nesting("MULTIPOLYGON(((0 0, 1 0, 1 1, 0 0)))").is_ok());
/// assert!(check_wkt_nesting(&"GEOMETRYCOLLECTION(".repeat(2000)).is_err());
/// ```
pub fn check_wkt_nesting(text: &str) -> Result<(), String> {
    let mut depth = 0usize;
    for b in text.bytes() {
        match b {
            b'(' => {
                depth += 1;
                if depth > MAX_WKT_DEPTH {
                    return Err(format!(
                        "the geometry is nested deeper than {MAX_WKT_DEPTH} levels"
                    ));
                }
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The first problem geo's `Validation` reports for `g`, the same answer, found in O(n log n):
/// geo compares every segment of a ring with every other (quadratic: 57 s for 50,000 vertices)
/// and relates every pair of polygons of a multipolygon. Here a sweep line (`sweep_segments`,
/// Shamos–Hoey with robust's exact predicates) finds whether a ring meets itself, and whether
/// rings meet each other at all; rings that do not are placed by where one vertex lies
/// (`RingIndex::encloses`). geo's relate is left for rings that touch (on pairs whose boxes
/// meet), and an R-tree of segment boxes for the rare sweep that gives up. A search of boxes
/// alone degrades on rings of long spikes (3.5 s at 100,000 vertices); the sweep does not.
/// geo's own sweep (`geo::algorithm::sweep::Intersections`) compares every pair of segments
/// whose x-ranges overlap, so it degrades the same way. One difference: a ring with a
/// non-finite coordinate is reported as such without looking for self-intersections.
pub fn topology_error(g: &Geometry<f64>) -> Option<InvalidGeometry> {
    match g {
        Geometry::Polygon(p) => polygon_error(p).map(InvalidGeometry::InvalidPolygon),
        Geometry::MultiPolygon(mp) => {
            multi_polygon_error(mp).map(InvalidGeometry::InvalidMultiPolygon)
        }
        Geometry::GeometryCollection(gc) => gc.0.iter().enumerate().find_map(|(i, m)| {
            topology_error(m).map(|e| {
                InvalidGeometry::InvalidGeometryCollection(
                    InvalidGeometryCollection::InvalidGeometry(GeometryIndex(i), Box::new(e)),
                )
            })
        }),
        // Linear already in geo: points and lines are only checked for counts and finiteness.
        other => other.validation_errors().into_iter().next(),
    }
}

type Boxed = GeomWithData<Rectangle<[f64; 2]>, usize>;

fn boxed(i: usize, a: geo::Coord<f64>, b: geo::Coord<f64>) -> Boxed {
    GeomWithData::new(Rectangle::from_corners([a.x, a.y], [b.x, b.y]), i)
}

/// Pairs of indices `(i, j)`, `i < j`, whose boxes meet (no box: empty), in ascending order of
/// `i` then `j`.
fn meeting_pairs(
    boxes: impl IntoIterator<Item = Option<geo::Rect<f64>>>,
) -> std::iter::Peekable<impl Iterator<Item = (usize, usize)>> {
    let boxes = boxes
        .into_iter()
        .enumerate()
        .filter_map(|(i, r)| r.map(|r| boxed(i, r.min(), r.max())))
        .collect();
    let tree = RTree::bulk_load(boxes);
    let mut by_index: Vec<&Boxed> = tree.iter().collect();
    by_index.sort_unstable_by_key(|b| b.data);
    let mut pairs = Vec::new();
    for b in by_index {
        let mut js: Vec<usize> = tree
            .locate_in_envelope_intersecting(&b.geom().envelope())
            .map(|o| o.data)
            .filter(|&j| j > b.data)
            .collect();
        js.sort_unstable();
        pairs.extend(js.into_iter().map(|j| (b.data, j)));
    }
    pairs.into_iter().peekable()
}

/// geo's `linestring_has_self_intersection`: two segments meet other than where one ends and the
/// other starts. A sweep decides ([`sweep_segments`]); should it give up (many segments through
/// one point), boxes propose the pairs instead.
fn ring_self_intersects(ring: &LineString<f64>) -> bool {
    let lines: Vec<Line<f64>> = ring.lines().collect();
    let crossing = |i: usize, j: usize| {
        let (a, b) = (lines[i], lines[j]);
        a.start != b.end && a.end != b.start && a.intersects(&b)
    };
    if lines.len() <= 16 {
        return (0..lines.len()).any(|i| (i + 1..lines.len()).any(|j| crossing(i, j)));
    }
    match sweep_segments(&lines, |i, j| {
        lines[i].start != lines[j].end && lines[i].end != lines[j].start
    }) {
        Sweep::Clear => false,
        Sweep::Found => true,
        Sweep::Degenerate => {
            let boxes = lines
                .iter()
                .enumerate()
                .map(|(i, l)| boxed(i, l.start, l.end))
                .collect();
            let tree = RTree::<Boxed>::bulk_load(boxes);
            lines.iter().enumerate().any(|(i, l)| {
                let env = AABB::from_corners([l.start.x, l.start.y], [l.end.x, l.end.y]);
                tree.locate_in_envelope_intersecting(&env)
                    .any(|o| o.data > i && crossing(i, o.data))
            })
        }
    }
}

/// What a sweep over segments found (see [`sweep_segments`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sweep {
    /// No two segments form a forbidden pair.
    Clear,
    /// Two segments form a forbidden pair.
    Found,
    /// More segments than the sweep looks at pass through one point (only where a ring meets
    /// itself there many times): its silence would prove nothing.
    Degenerate,
}

/// Lexicographic order of points (x, then y): the sweep's order of events. Coordinates are
/// finite here; -0 and 0 are one value, as for `==`.
fn lex(a: geo::Coord<f64>, b: geo::Coord<f64>) -> std::cmp::Ordering {
    use std::cmp::Ordering::Equal;
    (a.x.partial_cmp(&b.x).unwrap_or(Equal)).then(a.y.partial_cmp(&b.y).unwrap_or(Equal))
}

/// Which side of the line through `a` and `b` the point `c` lies on, exactly (robust's adaptive
/// predicate): positive to the left.
fn orient(a: geo::Coord<f64>, b: geo::Coord<f64>, c: geo::Coord<f64>) -> f64 {
    robust::orient2d(
        robust::Coord { x: a.x, y: a.y },
        robust::Coord { x: b.x, y: b.y },
        robust::Coord { x: c.x, y: c.y },
    )
}

/// A segment in the sweep's status, left end (lexicographically) first, or a probe: a point
/// just below (`side` -1) or just above (+1) every segment through it.
#[derive(Debug, Clone, Copy)]
struct Active {
    left: geo::Coord<f64>,
    right: geo::Coord<f64>,
    id: usize,
    side: i8,
}

impl Active {
    fn segment(id: usize, l: Line<f64>) -> Self {
        let (left, right) = if lex(l.start, l.end).is_le() {
            (l.start, l.end)
        } else {
            (l.end, l.start)
        };
        Active {
            left,
            right,
            id,
            side: 0,
        }
    }

    fn probe(p: geo::Coord<f64>, side: i8) -> Self {
        Active {
            left: p,
            right: p,
            id: usize::MAX,
            side,
        }
    }

    /// Where segment `self` lies against the probe point `p` (below it: `Less`).
    fn against_probe(&self, p: &Active) -> std::cmp::Ordering {
        use std::cmp::Ordering::{Greater, Less};
        let o = orient(self.left, self.right, p.left);
        if o > 0.0 || (o == 0.0 && p.side > 0) {
            Less
        } else {
            Greater
        }
    }
}

/// The order of the segments along the sweep line, bottom to top. Two segments in the status at
/// once never cross (the sweep stops at the first forbidden pair or overlap), so they compare
/// where the later one starts, whatever the sweep's position: the comparison is a fixed total
/// order, as a `BTreeSet` needs. Probes compare by the side of the segment their point is on.
impl Ord for Active {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (self.side, other.side) {
            (0, 0) => {}
            (0, _) => return self.against_probe(other),
            (_, 0) => return other.against_probe(self).reverse(),
            (a, b) => return a.cmp(&b),
        }
        if self.id == other.id {
            return Equal;
        }
        if lex(self.left, other.left).is_gt() {
            return other.cmp(self).reverse();
        }
        let mut o = orient(self.left, self.right, other.left);
        if o == 0.0 {
            o = orient(self.left, self.right, other.right);
        }
        if o > 0.0 {
            Less
        } else if o < 0.0 {
            Greater
        } else {
            self.id.cmp(&other.id)
        }
    }
}

impl PartialOrd for Active {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Active {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Active {}

/// Shamos–Hoey: whether any two of `lines` form a pair `forbidden(i, j)` says is one (it is
/// only asked about pairs that meet: it decides which meetings are allowed, such as those of
/// consecutive segments of a ring at their common vertex). Exact predicates; O(n log n): only
/// segments next to each other along the sweep line, or meeting at one event point, are
/// compared, which finds the leftmost forbidden meeting. Zero-length segments are points that
/// meet what passes through them. Segments overlapping on a line (allowed, as where a ring folds
/// back) are ordered by index. More than a few segments through one point make the answer
/// [`Sweep::Degenerate`].
fn sweep_segments(lines: &[Line<f64>], forbidden: impl Fn(usize, usize) -> bool) -> Sweep {
    const BLOCK: usize = 8;
    use std::collections::BTreeSet;
    use std::ops::Bound::{Excluded, Unbounded};
    // Every pair checked meets or not; a meeting is forbidden, allowed at a point, or allowed
    // along a line (degenerate).
    let check = |i: usize, j: usize| -> Option<Sweep> {
        let (a, b) = (lines[i], lines[j]);
        if !a.intersects(&b) {
            None
        } else if forbidden(i, j) {
            Some(Sweep::Found)
        } else {
            None
        }
    };
    // Events: (point, segment, starts here); zero-length segments start only.
    let mut events: Vec<(geo::Coord<f64>, usize, bool)> = Vec::with_capacity(2 * lines.len());
    for (i, l) in lines.iter().enumerate() {
        let a = Active::segment(i, *l);
        events.push((a.left, i, true));
        if a.left != a.right {
            events.push((a.right, i, false));
        }
    }
    events.sort_unstable_by(|a, b| lex(a.0, b.0));
    let mut status: BTreeSet<Active> = BTreeSet::new();
    let mut starts: Vec<usize> = Vec::new();
    let mut through: Vec<usize> = Vec::new();
    let mut k = 0;
    while k < events.len() {
        let p = events[k].0;
        starts.clear();
        through.clear();
        while k < events.len() && events[k].0 == p {
            if events[k].2 {
                starts.push(events[k].1);
            }
            k += 1;
        }
        let (low, high) = (Active::probe(p, -1), Active::probe(p, 1));
        // Segments in the status through p: ending there or passing through.
        through.extend(status.range(low..high).map(|a| a.id));
        let passing = through
            .iter()
            .any(|&i| Active::segment(i, lines[i]).right != p);
        // Every pair of segments through p meets there; zero-length ones are allowed to meet
        // those that end at p, so only those passing through need a look.
        let here: Vec<usize> = through
            .iter()
            .chain(&starts)
            .copied()
            .filter(|&i| passing || lines[i].start != lines[i].end)
            .take(BLOCK + 1)
            .collect();
        for (n, &i) in here.iter().enumerate() {
            for &j in &here[n + 1..] {
                if let Some(s) = check(i, j) {
                    return s;
                }
            }
        }
        if here.len() > BLOCK {
            // So many segments through one point hardly all meet as allowed; not looked into.
            return Sweep::Degenerate;
        }
        for &i in &through {
            status.remove(&Active::segment(i, lines[i]));
        }
        let mut inserted: Vec<Active> = starts
            .iter()
            .filter(|&&i| lines[i].start != lines[i].end)
            .map(|&i| Active::segment(i, lines[i]))
            .collect();
        for a in &inserted {
            status.insert(*a);
        }
        inserted.sort_unstable();
        let pairs = match (inserted.first(), inserted.last()) {
            (Some(lo), Some(hi)) => [
                (status.range(..lo).next_back(), Some(lo)),
                (Some(hi), status.range((Excluded(hi), Unbounded)).next()),
            ],
            _ => [
                (status.range(..low).next_back(), status.range(high..).next()),
                (None, None),
            ],
        };
        for (a, b) in pairs {
            if let (Some(a), Some(b)) = (a, b) {
                if let Some(s) = check(a.id, b.id) {
                    return s;
                }
            }
        }
    }
    Sweep::Clear
}

fn polygon_error(p: &Polygon<f64>) -> Option<InvalidPolygon> {
    if p.is_empty() {
        return None;
    }
    // One sweep over all rings usually settles both their own checks and how they meet.
    let swept = rings_simple_and_apart(p);
    for (idx, ring) in std::iter::once(p.exterior())
        .chain(p.interiors())
        .enumerate()
    {
        if swept || ring.is_empty() {
            continue;
        }
        let role = if idx == 0 {
            RingRole::Exterior
        } else {
            RingRole::Interior(idx - 1)
        };
        if ring.remove_repeated_points().0.len() < 4 {
            return Some(InvalidPolygon::TooFewPointsInRing(role));
        }
        if let Some(i) = ring
            .0
            .iter()
            .position(|c| !c.x.is_finite() || !c.y.is_finite())
        {
            return Some(InvalidPolygon::NonFiniteCoord(
                role,
                geo::algorithm::validation::CoordIndex(i),
            ));
        }
        if ring_self_intersects(ring) {
            return Some(InvalidPolygon::SelfIntersection(role));
        }
    }
    if p.interiors().iter().all(|r| r.is_empty()) {
        return None;
    }
    if let Some(answer) = rings_apart_error(p, swept) {
        return answer;
    }
    // The rest as geo does it, with pairs of holes whose boxes are apart left out: their
    // interiors and boundaries cannot meet.
    let exterior = Polygon::new(p.exterior().clone(), vec![]);
    let prepared_exterior = geo::PreparedGeometry::from(&exterior);
    let holes: Vec<Polygon<f64>> = p
        .interiors()
        .iter()
        .map(|r| Polygon::new(r.clone(), vec![]))
        .collect();
    let mut pairs = meeting_pairs(holes.iter().map(|h| h.bounding_rect()));
    for (i, hole) in holes.iter().enumerate() {
        if hole.is_empty() {
            continue;
        }
        let m = prepared_exterior.relate(&geo::PreparedGeometry::from(hole));
        if !m.is_contains() {
            return Some(InvalidPolygon::InteriorRingNotContainedInExteriorRing(
                RingRole::Interior(i),
            ));
        }
        if m.get(
            geo::coordinate_position::CoordPos::OnBoundary,
            geo::coordinate_position::CoordPos::OnBoundary,
        ) == geo::dimensions::Dimensions::OneDimensional
        {
            return Some(InvalidPolygon::IntersectingRingsOnALine(
                RingRole::Exterior,
                RingRole::Interior(i),
            ));
        }
        while let Some(&(a, j)) = pairs.peek() {
            if a != i {
                break;
            }
            pairs.next();
            let (r1, r2) = (RingRole::Interior(i), RingRole::Interior(j));
            match pair_error(&hole.relate(&holes[j])) {
                Some(PairProblem::Area) => {
                    return Some(InvalidPolygon::IntersectingRingsOnAnArea(r1, r2))
                }
                Some(PairProblem::Line) => {
                    return Some(InvalidPolygon::IntersectingRingsOnALine(r1, r2))
                }
                None => {}
            }
        }
    }
    None
}

/// Some three vertices of `ring` are not on one line: the ring encloses an area.
fn encloses_area(ring: &LineString<f64>) -> bool {
    let a = ring.0[0];
    ring.0
        .iter()
        .find(|&&b| b != a)
        .is_some_and(|&b| ring.0.iter().any(|&c| orient(a, b, c) != 0.0))
}

/// A ring's segments and an R-tree of their boxes, for [`RingIndex::encloses`].
struct RingIndex {
    lines: Vec<Line<f64>>,
    tree: RTree<Boxed>,
}

impl RingIndex {
    fn new(ring: &LineString<f64>) -> Self {
        let lines: Vec<Line<f64>> = ring.lines().collect();
        let boxes = lines
            .iter()
            .enumerate()
            .map(|(i, l)| boxed(i, l.start, l.end))
            .collect();
        RingIndex {
            lines,
            tree: RTree::bulk_load(boxes),
        }
    }

    /// Whether `q`, a point not on the ring, is inside it: the parity of the segments a ray to
    /// the east crosses (each counted for its half-open y-range, exactly). The ray's box meets
    /// the boxes of the segments across its line only, so this does not degrade with long
    /// segments as a search of boxes around `q` would.
    fn encloses(&self, q: geo::Coord<f64>) -> bool {
        let far = self.tree.root().envelope().upper()[0].max(q.x);
        let ray = AABB::from_corners([q.x, q.y], [far, q.y]);
        self.tree
            .locate_in_envelope_intersecting(&ray)
            .filter(|b| {
                let l = self.lines[b.data];
                (l.start.y > q.y) != (l.end.y > q.y) && {
                    let o = orient(l.start, l.end, q);
                    if l.start.y < l.end.y {
                        o > 0.0
                    } else {
                        o < 0.0
                    }
                }
            })
            .count()
            % 2
            == 1
    }
}

/// Whether no ring meets a ring of another owner (rings come with their owner's number), or
/// with `at_vertices`, meets one only at vertices of both, not along a line: one sweep; each
/// ring must be known not to meet itself. `false` also where a ring encloses no area (where
/// relate's answers rest on more than where vertices lie).
fn rings_apart<'a>(
    rings: impl IntoIterator<Item = (usize, &'a LineString<f64>)>,
    at_vertices: bool,
) -> bool {
    let mut lines = Vec::new();
    let mut owner = Vec::new();
    for (k, r) in rings {
        if r.is_empty() {
            continue;
        }
        if !encloses_area(r) {
            return false;
        }
        lines.extend(r.lines());
        owner.resize(lines.len(), k);
    }
    sweep_segments(&lines, |i, j| {
        owner[i] != owner[j] && !(at_vertices && at_a_vertex(lines[i], lines[j]))
    }) == Sweep::Clear
}

/// Whether a point is a vertex of rings of two or more owners (where they touch).
fn shared_vertices<'a>(
    rings: impl IntoIterator<Item = (usize, &'a LineString<f64>)>,
) -> impl Fn(geo::Coord<f64>) -> bool {
    // -0 and 0 are one value.
    let key = |c: geo::Coord<f64>| ((c.x + 0.0).to_bits(), (c.y + 0.0).to_bits());
    let mut owners: std::collections::HashMap<(u64, u64), usize> = Default::default();
    for (k, r) in rings {
        for &c in &r.0 {
            let o = owners.entry(key(c)).or_insert(k);
            if *o != k {
                *o = usize::MAX;
            }
        }
    }
    move |c| owners.get(&key(c)) == Some(&usize::MAX)
}

/// Two segments (known to meet) meet at a vertex of both and not along a line.
fn at_a_vertex(a: Line<f64>, b: Line<f64>) -> bool {
    (a.start == b.start || a.start == b.end || a.end == b.start || a.end == b.end)
        && (orient(a.start, a.end, b.start) != 0.0 || orient(a.start, a.end, b.end) != 0.0)
}

/// Every ring of `p` passes geo's checks of a ring (enough distinct points, finite, meeting
/// itself only where one segment ends and the next starts), and two rings meet at most at
/// common vertices: one sweep over all rings.
fn rings_simple_and_apart(p: &Polygon<f64>) -> bool {
    let mut lines = Vec::new();
    let mut owner = Vec::new();
    for (k, r) in std::iter::once(p.exterior())
        .chain(p.interiors())
        .enumerate()
    {
        if r.is_empty() {
            continue;
        }
        if r.remove_repeated_points().0.len() < 4
            || r.0.iter().any(|c| !c.x.is_finite() || !c.y.is_finite())
        {
            return false;
        }
        lines.extend(r.lines());
        owner.resize(lines.len(), k);
    }
    sweep_segments(&lines, |i, j| {
        let (a, b) = (lines[i], lines[j]);
        if owner[i] == owner[j] {
            a.start != b.end && a.end != b.start
        } else {
            !at_a_vertex(a, b)
        }
    }) == Sweep::Clear
}

/// One vertex of each stretch of `ring` between the `shared` vertices (those of other rings
/// too), or of the whole ring if none is shared; `None` where a segment joins two shared
/// vertices (a stretch without a vertex of its own).
fn stretch_points(
    ring: &LineString<f64>,
    shared: impl Fn(geo::Coord<f64>) -> bool,
) -> Option<Vec<geo::Coord<f64>>> {
    let on: Vec<bool> = ring.0.iter().map(|&c| shared(c)).collect();
    if !on.contains(&true) {
        return Some(vec![ring.0[0]]);
    }
    let mut points = Vec::new();
    for i in 0..ring.0.len() - 1 {
        if on[i] && on[i + 1] {
            return None;
        }
        if !on[i] && (i == 0 || on[i - 1]) {
            points.push(ring.0[i]);
        }
    }
    Some(points)
}

/// A polygon's rings indexed for [`PolygonIndex::covers`]; holes indexed when first needed.
struct PolygonIndex<'a> {
    shell: RingIndex,
    holes: Vec<(&'a LineString<f64>, geo::Rect<f64>, Option<RingIndex>)>,
}

impl<'a> PolygonIndex<'a> {
    fn new(p: &'a Polygon<f64>) -> Self {
        PolygonIndex {
            shell: RingIndex::new(p.exterior()),
            holes: p
                .interiors()
                .iter()
                .filter_map(|h| h.bounding_rect().map(|r| (h, r, None)))
                .collect(),
        }
    }

    /// Whether `q`, a point on no ring, is in the polygon's interior.
    fn covers(&mut self, q: geo::Coord<f64>) -> bool {
        self.shell.encloses(q)
            && !self.holes.iter_mut().any(|(h, r, index)| {
                let (lo, hi) = (r.min(), r.max());
                (lo.x..=hi.x).contains(&q.x)
                    && (lo.y..=hi.y).contains(&q.y)
                    && index.get_or_insert_with(|| RingIndex::new(h)).encloses(q)
            })
    }
}

/// geo's answer on how the valid elements of `mp` lie to each other, when rings of two meet at
/// most at common vertices ([`rings_apart`]): two elements overlap exactly when a stretch of
/// one's rings between such vertices lies inside the other, as one vertex of it shows. `None`
/// where that does not hold (relate decides then).
fn elements_apart_error(mp: &MultiPolygon<f64>) -> Option<Option<InvalidMultiPolygon>> {
    let rings = || {
        mp.0.iter().enumerate().flat_map(|(k, p)| {
            std::iter::once(p.exterior())
                .chain(p.interiors())
                .map(move |r| (k, r))
        })
    };
    if !rings_apart(rings(), true) {
        return None;
    }
    let shared = shared_vertices(rings());
    // Per element, a vertex of each stretch of its rings between the vertices it shares.
    let points: Vec<Vec<geo::Coord<f64>>> =
        mp.0.iter()
            .map(|p| {
                let mut points = Vec::new();
                for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                    if !r.is_empty() {
                        points.extend(stretch_points(r, &shared)?);
                    }
                }
                Some(points)
            })
            .collect::<Option<_>>()?;
    let mut indexes: Vec<Option<PolygonIndex>> = (0..mp.0.len()).map(|_| None).collect();
    let mut covers = |k: usize, q: geo::Coord<f64>| {
        indexes[k]
            .get_or_insert_with(|| PolygonIndex::new(&mp.0[k]))
            .covers(q)
    };
    for (i, j) in meeting_pairs(mp.0.iter().map(|p| p.bounding_rect())) {
        if points[i].iter().any(|&q| covers(j, q)) || points[j].iter().any(|&q| covers(i, q)) {
            return Some(Some(InvalidMultiPolygon::ElementsOverlaps(
                GeometryIndex(i),
                GeometryIndex(j),
            )));
        }
    }
    Some(None)
}

/// geo's answer on how the rings of `p` lie to each other, when two of them meet at most at
/// common vertices, not along a line (a sweep over all their segments shows it; each is known
/// not to meet itself), and each encloses an area. Each stretch of a ring between such vertices
/// then lies wholly inside or outside another ring, as one vertex of it shows: a hole is inside
/// the shell when all its stretches are, two holes overlap when a stretch of one is inside the
/// other; touching at points is allowed. `None` where that does not hold (geo's relate decides
/// then): this path stays O(n log n) for any shape, where relate, like any search of boxes,
/// slows down on rings of long spikes (1.2 s for a hole touching a 100,000-vertex spiky shell).
fn rings_apart_error(p: &Polygon<f64>, swept: bool) -> Option<Option<InvalidPolygon>> {
    let rings = || {
        std::iter::once(p.exterior())
            .chain(p.interiors())
            .enumerate()
    };
    let apart = if swept {
        rings().all(|(_, r)| r.is_empty() || encloses_area(r))
    } else {
        rings_apart(rings(), true)
    };
    if !apart {
        return None;
    }
    let shared = shared_vertices(rings());
    let holes = p.interiors();
    let points: Vec<Vec<geo::Coord<f64>>> = holes
        .iter()
        .map(|h| {
            if h.is_empty() {
                Some(vec![])
            } else {
                stretch_points(h, &shared)
            }
        })
        .collect::<Option<_>>()?;
    let shell = RingIndex::new(p.exterior());
    let mut indexes: Vec<Option<RingIndex>> = (0..holes.len()).map(|_| None).collect();
    let mut encloses = |i: usize, q: geo::Coord<f64>| {
        indexes[i]
            .get_or_insert_with(|| RingIndex::new(&holes[i]))
            .encloses(q)
    };
    let mut pairs = meeting_pairs(holes.iter().map(|h| h.bounding_rect()));
    for (i, hole) in holes.iter().enumerate() {
        if hole.is_empty() {
            continue;
        }
        if !points[i].iter().all(|&q| shell.encloses(q)) {
            return Some(Some(
                InvalidPolygon::InteriorRingNotContainedInExteriorRing(RingRole::Interior(i)),
            ));
        }
        while let Some(&(a, j)) = pairs.peek() {
            if a != i {
                break;
            }
            pairs.next();
            if points[j].iter().any(|&q| encloses(i, q))
                || points[i].iter().any(|&q| encloses(j, q))
            {
                return Some(Some(InvalidPolygon::IntersectingRingsOnAnArea(
                    RingRole::Interior(i),
                    RingRole::Interior(j),
                )));
            }
        }
    }
    Some(None)
}

enum PairProblem {
    Area,
    Line,
}

fn pair_error(m: &geo::relate::IntersectionMatrix) -> Option<PairProblem> {
    use geo::coordinate_position::CoordPos;
    use geo::dimensions::Dimensions;
    if m.get(CoordPos::Inside, CoordPos::Inside) == Dimensions::TwoDimensional {
        Some(PairProblem::Area)
    } else if m.get(CoordPos::OnBoundary, CoordPos::OnBoundary) == Dimensions::OneDimensional {
        Some(PairProblem::Line)
    } else {
        None
    }
}

fn multi_polygon_error(mp: &MultiPolygon<f64>) -> Option<InvalidMultiPolygon> {
    let errors: Vec<Option<InvalidPolygon>> = mp.0.iter().map(polygon_error).collect();
    if errors.iter().all(Option::is_none) {
        if let Some(answer) = elements_apart_error(mp) {
            return answer;
        }
    }
    let mut pairs = meeting_pairs(mp.0.iter().map(|p| p.bounding_rect()));
    for (i, (p, e)) in mp.0.iter().zip(errors).enumerate() {
        if let Some(e) = e {
            return Some(InvalidMultiPolygon::InvalidPolygon(GeometryIndex(i), e));
        }
        while let Some(&(a, b)) = pairs.peek() {
            if a != i {
                break;
            }
            pairs.next();
            let m = p.relate(&mp.0[b]);
            match pair_error(&m) {
                Some(PairProblem::Area) => {
                    return Some(InvalidMultiPolygon::ElementsOverlaps(
                        GeometryIndex(i),
                        GeometryIndex(b),
                    ))
                }
                Some(PairProblem::Line) => {
                    return Some(InvalidMultiPolygon::ElementsTouchOnALine(
                        GeometryIndex(i),
                        GeometryIndex(b),
                    ))
                }
                None => {}
            }
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{Coord, GeometryCollection};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    /// A closed ring of `n` random points on a small grid: many crossings, touches, repeated
    /// points and collinear runs, the cases where a fast check could part from geo's.
    fn ring(rng: &mut SmallRng, n: usize, x0: i32, y0: i32, size: i32) -> LineString<f64> {
        let mut pts: Vec<Coord<f64>> = (0..n)
            .map(|_| Coord {
                x: f64::from(x0 + rng.gen_range(0..=size)),
                y: f64::from(y0 + rng.gen_range(0..=size)),
            })
            .collect();
        pts.push(pts[0]);
        LineString(pts)
    }

    /// A simple ring: a star around (cx, cy) with `n` points at random radii, sorted by angle.
    fn star(rng: &mut SmallRng, n: usize, cx: f64, cy: f64, r: f64) -> LineString<f64> {
        let mut pts: Vec<Coord<f64>> = (0..n)
            .map(|i| {
                let a = i as f64 / n as f64 * std::f64::consts::TAU;
                let rr = r * rng.gen_range(0.5..1.0);
                Coord {
                    x: cx + rr * a.cos(),
                    y: cy + rr * a.sin(),
                }
            })
            .collect();
        pts.push(pts[0]);
        LineString(pts)
    }

    fn geo_answer(g: &Geometry<f64>) -> Option<InvalidGeometry> {
        g.validation_errors().into_iter().next()
    }

    #[test]
    fn same_answers_as_geo_on_random_polygons() {
        let mut rng = SmallRng::seed_from_u64(10);
        let mut invalid = 0;
        for round in 0..1600 {
            let g = match round % 4 {
                0 => {
                    let n = rng.gen_range(2..40);
                    Geometry::Polygon(Polygon::new(ring(&mut rng, n, 0, 0, 8), vec![]))
                }
                1 => {
                    let n = rng.gen_range(10..80);
                    let shell = star(&mut rng, n, 0.0, 0.0, 10.0);
                    let holes = (0..rng.gen_range(0..5))
                        .map(|_| {
                            let (cx, cy) = (rng.gen_range(-5.0..5.0), rng.gen_range(-5.0..5.0));
                            let n = rng.gen_range(3..20);
                            let r = rng.gen_range(0.5..3.0);
                            star(&mut rng, n, cx, cy, r)
                        })
                        .collect();
                    Geometry::Polygon(Polygon::new(shell, holes))
                }
                2 => {
                    let polys = (0..rng.gen_range(1..6))
                        .map(|_| {
                            let (cx, cy) = (rng.gen_range(0.0..30.0), rng.gen_range(0.0..30.0));
                            let n = rng.gen_range(3..30);
                            let r = rng.gen_range(1.0..8.0);
                            Polygon::new(star(&mut rng, n, cx, cy, r), vec![])
                        })
                        .collect();
                    Geometry::MultiPolygon(MultiPolygon(polys))
                }
                _ => {
                    // Squares on a grid that share edges or corners or overlap.
                    let polys = (0..rng.gen_range(1..6))
                        .map(|_| {
                            let (x, y) = (rng.gen_range(0..4) as f64, rng.gen_range(0..4) as f64);
                            let s = rng.gen_range(1..3) as f64;
                            geo::Rect::new(Coord { x, y }, Coord { x: x + s, y: y + s })
                                .to_polygon()
                        })
                        .collect();
                    Geometry::GeometryCollection(GeometryCollection(vec![Geometry::MultiPolygon(
                        MultiPolygon(polys),
                    )]))
                }
            };
            let expected = geo_answer(&g);
            invalid += usize::from(expected.is_some());
            assert_eq!(topology_error(&g), expected, "{g:?}");
        }
        // Both kinds of answer were exercised.
        assert!(invalid > 250 && invalid < 1550, "{invalid}");
    }

    /// geo's quadratic test, as the reference for [`ring_self_intersects`].
    fn brute_self_intersects(ring: &LineString<f64>) -> bool {
        let lines: Vec<Line<f64>> = ring.lines().collect();
        (0..lines.len()).any(|i| {
            (i + 1..lines.len()).any(|j| {
                let (a, b) = (lines[i], lines[j]);
                a.start != b.end && a.end != b.start && a.intersects(&b)
            })
        })
    }

    /// The sweep against every pair, on rings made to hit its special cases: random points on
    /// small grids (crossings at vertices, collinear runs, repeated points, vertical and
    /// horizontal segments, folds), and stars with a few vertices moved or repeated.
    #[test]
    fn sweep_agrees_with_every_pair() {
        // SWEEP_ROUNDS and SWEEP_SEED make it a longer or another search.
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        let mut rng = SmallRng::seed_from_u64(env("SWEEP_SEED", 11));
        let rounds = env("SWEEP_ROUNDS", 4000) as usize;
        let (mut found, mut clear, mut degenerate) = (0, 0, 0);
        for round in 0..rounds {
            let mut r = if round % 2 == 0 {
                let n = rng.gen_range(17..60);
                let size = rng.gen_range(2..30);
                ring(&mut rng, n, 0, 0, size)
            } else {
                let n = rng.gen_range(17..200);
                let mut r = star(&mut rng, n, 0.0, 0.0, 10.0);
                for c in &mut r.0 {
                    // Snap to a grid so that vertices fall on other segments now and then.
                    c.x = (c.x * 2.0).round() / 2.0;
                    c.y = (c.y * 2.0).round() / 2.0;
                }
                for _ in 0..rng.gen_range(0..3) {
                    let i = rng.gen_range(1..n - 1);
                    match rng.gen_range(0..3) {
                        0 => r.0[i] = r.0[i + 1],
                        1 => r.0[i] = Coord { x: 0.0, y: 0.0 },
                        _ => r.0.swap(i, rng.gen_range(1..n - 1)),
                    }
                }
                r
            };
            let last = r.0.len() - 1;
            r.0[last] = r.0[0];
            let lines: Vec<Line<f64>> = r.lines().collect();
            let expected = brute_self_intersects(&r);
            match sweep_segments(&lines, |i, j| {
                lines[i].start != lines[j].end && lines[i].end != lines[j].start
            }) {
                Sweep::Found => {
                    found += 1;
                    assert!(expected, "{r:?}")
                }
                Sweep::Clear => {
                    clear += 1;
                    assert!(!expected, "{r:?}")
                }
                Sweep::Degenerate => degenerate += 1,
            }
            assert_eq!(ring_self_intersects(&r), expected, "{r:?}");
        }
        assert!(
            found > rounds / 10 && clear > rounds / 10 && degenerate < rounds / 10,
            "{found} {clear} {degenerate}"
        );
    }

    /// Checks `p` against geo; whether it was decided without relate, and whether it is invalid.
    fn holes_as_geo_does(p: Polygon<f64>) -> (bool, bool) {
        let fast = rings_apart_error(&p, false).is_some();
        let g = Geometry::Polygon(p);
        let expected = geo_answer(&g);
        assert_eq!(topology_error(&g), expected, "{g:?}");
        (fast, expected.is_some())
    }

    /// Holes that mostly keep apart from the shell and each other (the path without relate):
    /// inside, outside, nested in another hole, or crossing; the answers are geo's.
    #[test]
    fn holes_apart_same_answers_as_geo() {
        let mut rng = SmallRng::seed_from_u64(12);
        let (mut apart, mut invalid) = (0, 0);
        for _ in 0..600 {
            let n = rng.gen_range(17..60);
            let shell = star(&mut rng, n, 0.0, 0.0, 10.0);
            let mut holes: Vec<LineString<f64>> = Vec::new();
            let mut last = (0.0, 0.0, 1.0);
            for _ in 0..rng.gen_range(1..4) {
                // Now and then a hole well inside the previous one.
                let (cx, cy, r) = if rng.gen_bool(0.2) {
                    (last.0, last.1, last.2 * 0.3)
                } else {
                    let c = (rng.gen_range(-7.0..7.0), rng.gen_range(-7.0..7.0));
                    (c.0, c.1, rng.gen_range(0.2..1.5))
                };
                last = (cx, cy, r);
                let n = rng.gen_range(3..20);
                holes.push(star(&mut rng, n, cx, cy, r));
            }
            let (fast, bad) = holes_as_geo_does(Polygon::new(shell, holes));
            apart += usize::from(fast);
            invalid += usize::from(bad);
        }
        assert!(
            apart > 200 && invalid > 100 && invalid < 500,
            "{apart} {invalid}"
        );
    }

    /// The benchmark's worst shape (issue 10): every vertex at a random radius, so that each
    /// edge is a long spike whose box meets thousands of others; with a hole. At 100,000
    /// vertices: valid, and the three ways of breaking it give the answers geo gives for the
    /// same construction at 1,500 vertices (geo's own check is quadratic).
    #[test]
    fn spiky_polygons_of_100000_vertices() {
        let build = |n: usize, broken: usize| {
            let mut rng = SmallRng::seed_from_u64(n as u64);
            let mut shell = star(&mut rng, n - 102, 105.7, 29.7, 0.2);
            let hole = match broken {
                // A hole outside the shell.
                2 => star(&mut rng, 100, 106.2, 29.7, 0.05),
                _ => star(&mut rng, 100, 105.7, 29.7, 0.05),
            };
            let mut holes = vec![hole];
            match broken {
                // Two far-apart vertices swapped: long edges across the ring.
                1 => shell.0.swap(100, n / 2),
                // A second hole inside the first.
                3 => holes.push(star(&mut rng, 50, 105.7, 29.7, 0.01)),
                _ => {}
            }
            Geometry::Polygon(Polygon::new(shell, holes))
        };
        let big = build(100_000, 0);
        assert_eq!(topology_error(&big), None);
        assert!(validate_topology(&big).is_ok());
        for broken in 1..=3 {
            let expected = geo_answer(&build(1_500, broken));
            let kind = match &expected {
                Some(InvalidGeometry::InvalidPolygon(e)) => std::mem::discriminant(e),
                e => panic!("{e:?}"),
            };
            let wanted = match broken {
                1 => InvalidPolygon::SelfIntersection(RingRole::Exterior),
                2 => InvalidPolygon::InteriorRingNotContainedInExteriorRing(RingRole::Interior(0)),
                _ => InvalidPolygon::IntersectingRingsOnAnArea(
                    RingRole::Interior(0),
                    RingRole::Interior(1),
                ),
            };
            assert_eq!(kind, std::mem::discriminant(&wanted));
            assert_eq!(topology_error(&build(1_500, broken)), expected);
            assert_eq!(
                topology_error(&build(100_000, broken)),
                expected,
                "{broken}"
            );
        }
    }

    /// Holes that touch the shell or each other at common vertices (from inside, or crossing
    /// through them), a case also decided without relate; the answers are geo's.
    #[test]
    fn holes_touching_at_vertices_same_answers_as_geo() {
        let mut rng = SmallRng::seed_from_u64(14);
        let (mut decided, mut invalid) = (0, 0);
        for _ in 0..600 {
            let n = rng.gen_range(17..40);
            let shell = star(&mut rng, n, 0.0, 0.0, 10.0);
            let mut holes: Vec<LineString<f64>> = Vec::new();
            for _ in 0..rng.gen_range(1..4) {
                // A thin wedge from a shell vertex (or a previous hole's) towards the centre,
                // past it to the other side, or outwards.
                let tip = match holes.last() {
                    Some(h) if rng.gen_bool(0.3) => h.0[1],
                    _ => shell.0[rng.gen_range(0..n)],
                };
                let (a, r) = (tip.y.atan2(tip.x), tip.x.hypot(tip.y));
                let depth = r * [0.3, 0.7, 1.6, -0.3][rng.gen_range(0..4)];
                let w = rng.gen_range(0.01..0.3);
                let at = |d: f64, da: f64| Coord {
                    x: (r - d) * (a + da).cos(),
                    y: (r - d) * (a + da).sin(),
                };
                let mut h = vec![tip, at(depth * 0.5, w), at(depth, 0.0), at(depth * 0.5, -w)];
                if rng.gen_bool(0.5) {
                    h.reverse();
                }
                h.push(h[0]);
                holes.push(LineString(h));
            }
            let (fast, bad) = holes_as_geo_does(Polygon::new(shell, holes));
            decided += usize::from(fast);
            invalid += usize::from(bad);
        }
        assert!(
            decided > 200 && invalid > 100 && invalid < 500,
            "{decided} {invalid}"
        );
    }

    /// Elements that mostly keep apart or touch at vertices (the path without relate): side by
    /// side, a wedge touching another's vertex from outside (valid) or reaching into it, one
    /// inside another's hole (valid) or inside its area (overlap), or crossing; the answers are
    /// geo's.
    #[test]
    fn elements_apart_same_answers_as_geo() {
        let mut rng = SmallRng::seed_from_u64(13);
        let (mut apart, mut overlaps) = (0, 0);
        for _ in 0..500 {
            let mut polys = Vec::new();
            for _ in 0..rng.gen_range(1..5) {
                let (cx, cy) = (rng.gen_range(0.0..30.0), rng.gen_range(0.0..30.0));
                let r = rng.gen_range(2.0..6.0);
                let n = rng.gen_range(3..30);
                let shell = star(&mut rng, n, cx, cy, r);
                let hole = star(&mut rng, 12, cx, cy, r * 0.45);
                polys.push(Polygon::new(shell, vec![hole]));
                if rng.gen_bool(0.3) {
                    // A wedge from a shell vertex, outwards (touching at that vertex) or
                    // inwards (overlapping).
                    let tip = polys
                        .last()
                        .map_or(Coord { x: cx, y: cy }, |p: &Polygon<f64>| {
                            p.exterior().0[rng.gen_range(0..n)]
                        });
                    let (dx, dy) = (tip.x - cx, tip.y - cy);
                    let f = [0.5, -0.3][rng.gen_range(0..2)];
                    let at = |g: f64, w: f64| Coord {
                        x: tip.x - g * dx - w * dy,
                        y: tip.y - g * dy + w * dx,
                    };
                    let wedge = vec![tip, at(f * 0.5, 0.1), at(f, 0.0), at(f * 0.5, -0.1), tip];
                    polys.push(Polygon::new(LineString(wedge), vec![]));
                }
                if rng.gen_bool(0.3) {
                    // An element in the hole, across it, or around the whole polygon.
                    let f = [0.2, 0.7, 2.5][rng.gen_range(0..3)];
                    polys.push(Polygon::new(star(&mut rng, 8, cx, cy, r * f), vec![]));
                }
            }
            let mp = MultiPolygon(polys);
            apart += usize::from(elements_apart_error(&mp).is_some());
            let g = Geometry::MultiPolygon(mp);
            let expected = geo_answer(&g);
            overlaps += usize::from(matches!(
                expected,
                Some(InvalidGeometry::InvalidMultiPolygon(
                    InvalidMultiPolygon::ElementsOverlaps(..)
                ))
            ));
            assert_eq!(topology_error(&g), expected, "{g:?}");
        }
        assert!(apart > 150 && overlaps > 30, "{apart} {overlaps}");
    }

    #[test]
    fn large_polygon_with_a_crossing_is_found() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut shell = star(&mut rng, 20_000, 105.0, 29.0, 0.1);
        assert_eq!(
            topology_error(&Geometry::Polygon(Polygon::new(shell.clone(), vec![]))),
            None
        );
        // Swap two far-apart vertices: two long segments now cross the ring.
        shell.0.swap(100, 10_100);
        let e = topology_error(&Geometry::Polygon(Polygon::new(shell, vec![])));
        assert_eq!(
            e,
            Some(InvalidGeometry::InvalidPolygon(
                InvalidPolygon::SelfIntersection(RingRole::Exterior)
            ))
        );
    }

    /// Found by the fuzzer: geo's relate panics ("topology position conflict") on this
    /// multipolygon; reported as invalid instead.
    #[test]
    fn relate_panics_become_answers() {
        use wkt::TryFromWkt;
        let text = "GEOMETRYCOLLECTION(POINT EMPTY, MULTIPOLYGON(((106.665 30.133, 106.012 29.078, -133.2000 -1e-7, 106.014 30.298000000000002, 105.932 30.767, 106.617 30.951, 106.989 29.281, 106.665 30.133)), ((105.457 29.339, 106.194 30.564, 105.476 29.406, 106.265 30.162, 105.731 29.048, 106.186 29.385, 58 1e308))))";
        let g = Geometry::<f64>::try_from_wkt_str(text).unwrap();
        let e = topology_problem(&g).unwrap();
        assert!(e.contains("1e10"), "{e}");
        // The same shape with the far vertex brought near: relate itself gives up.
        let near = text.replace("58 1e308", "58 1e9");
        let g = Geometry::<f64>::try_from_wkt_str(&near).unwrap();
        assert!(topology_problem(&g).is_some());
        let filter = format!("S_INTERSECTS(geometry, {})", &text[32..text.len() - 1]);
        assert!(crate::engine::filter::parse(
            &filter,
            crate::engine::filter::FilterLang::Cql2Text,
            &|_| true
        )
        .is_err());
    }

    #[test]
    fn size_limits() {
        let pt = Geometry::Point(geo::point!(x: 105.0, y: 29.0));
        assert!(check_size(&pt).is_ok());
        let many = Geometry::GeometryCollection(GeometryCollection(vec![
            pt.clone();
            MAX_GEOMETRY_PARTS + 1
        ]));
        let e = validate_geometry(&many).unwrap_err();
        assert!(
            e.problem.contains(&format!("at most {MAX_GEOMETRY_PARTS}")),
            "{e}"
        );
        let fine = Geometry::GeometryCollection(GeometryCollection(vec![pt; MAX_GEOMETRY_PARTS]));
        assert!(validate_geometry(&fine).is_ok());
        let long = Geometry::LineString(LineString::from(vec![
            (105.0, 29.0);
            MAX_GEOMETRY_VERTICES + 1
        ]));
        let e = validate_geometry(&long).unwrap_err();
        assert!(
            e.problem
                .contains(&format!("at most {MAX_GEOMETRY_VERTICES}")),
            "{e}"
        );
        assert!(check_wkt_nesting(&format!(
            "{}POINT(1 1){}",
            "GEOMETRYCOLLECTION(".repeat(MAX_WKT_DEPTH - 1),
            ")".repeat(MAX_WKT_DEPTH - 1)
        ))
        .is_ok());
        assert!(check_wkt_nesting(&"GEOMETRYCOLLECTION(".repeat(MAX_WKT_DEPTH + 1)).is_err());
    }
}
