//! Areas to ask questions of: a (multi)polygon prepared with an edge R-tree for fast point and
//! box tests, the share of a feature inside it, and geodesic measures in m², ha and 亩.

use geo::line_measures::Geodesic;
use geo::{
    Area, BooleanOps, BoundingRect, Coord, GeodesicArea, Geometry, Intersects, Length, Line,
    LineString, MultiLineString, MultiPolygon, Polygon, Rect,
};
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};

/// Square metres in one 亩 (mu): 10000/15.
pub const M2_PER_MU: f64 = 10_000.0 / 15.0;
/// Square metres in one hectare.
pub const M2_PER_HA: f64 = 10_000.0;

/// Geodesic area of a geometry on the WGS84 ellipsoid in m² (0 for points and lines), as PostGIS
/// `ST_Area(geography)` computes it.
///
/// ```
/// use geo::{polygon, Geometry};
/// // A 0.01° square at the equator: 1113.19 m × 1105.74 m ≈ 1.2309 km².
/// let sq = Geometry::Polygon(polygon![(x: 0., y: 0.), (x: 0.01, y: 0.), (x: 0.01, y: 0.01), (x: 0., y: 0.01), (x: 0., y: 0.)]);
/// let m2 = yizhangtu::geom::geodesic_area_m2(&sq);
/// assert!((m2 - 1_230_907.0).abs() < 5.0, "{m2}");
/// ```
///
/// Rings may be wound either way: each ring's area is taken unsigned and holes are subtracted
/// (geo's own `geodesic_area_unsigned` reads a hole wound like its exterior as the rest of the
/// planet, and GeoJSON readers must accept such input).
pub fn geodesic_area_m2(g: &Geometry<f64>) -> f64 {
    match g {
        Geometry::Polygon(p) => polygon_geodesic_area(p),
        Geometry::MultiPolygon(mp) => mp.0.iter().map(polygon_geodesic_area).sum(),
        Geometry::Rect(_) | Geometry::Triangle(_) => g.geodesic_area_unsigned(),
        Geometry::GeometryCollection(gc) => gc.0.iter().map(geodesic_area_m2).sum(),
        _ => 0.0,
    }
}

fn polygon_geodesic_area(p: &Polygon<f64>) -> f64 {
    // Signed, so a small ring is never read as its complement whichever way it is wound.
    let ring = |r: &LineString<f64>| Polygon::new(r.clone(), vec![]).geodesic_area_signed().abs();
    if p.interiors().is_empty() {
        return ring(p.exterior());
    }
    (ring(p.exterior()) - p.interiors().iter().map(ring).sum::<f64>()).max(0.0)
}

/// An upper bound (m) on how far the geodesic between two lon/lat points strays from their chord
/// in the lon/lat plane. On the sphere, a geodesic of length L at azimuth α and latitude φ has
/// φ'' = −tan φ (2φ'² + cos² φ) in λ, a sagitta of tan φ · L² · (1 + cos² α) sin α / (8R) ≤
/// 1.09 · tan φ · L² / (8R) (11 mm for 1 km at 30°N, none on a meridian); the bound takes
/// generous lengths and radius, the highest latitude, and a term of the next order.
pub(crate) fn chord_gap_bound_m(a: Coord<f64>, b: Coord<f64>) -> f64 {
    const R: f64 = GAP_R;
    let (lo, hi) = (a.y.abs().min(b.y.abs()), a.y.abs().max(b.y.abs()));
    let dx = (b.x - a.x).abs() * M_PER_DEG * lo.to_radians().cos();
    let dy = (b.y - a.y).abs() * M_PER_DEG;
    let l2 = dx * dx + dy * dy;
    1.25 * (hi.to_radians().tan() + l2.sqrt() / R) * l2 / (8.0 * R)
}

/// Metres per degree of latitude (generously: the equatorial radius's) in [`chord_gap_bound_m`].
const M_PER_DEG: f64 = 6_378_137.0 * std::f64::consts::PI / 180.0;
/// The (small, so generous) radius in [`chord_gap_bound_m`].
const GAP_R: f64 = 6_356_752.0;

/// A trigonometry-free screen for [`chord_gap_bound_m`] ≤ `limit` over edges whose endpoints
/// lie in one band of latitudes: the bound grows with tan of an edge's higher |latitude|, with
/// cos of its lower one and with its length, so at the band's extremes it is a function of the
/// edge's spans alone, and an edge with `dλ²·cos² + dφ² ≤ max_span2` surely has a bound within
/// `limit`. Edges near or over the limit are left to the exact bound, so the screen never
/// changes an answer; it saves the tangent and cosines of the many short edges of parcels.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChordGapScreen {
    /// cos² of the band's lowest |latitude|.
    cos2: f64,
    /// The threshold on the edge's squared spans (degrees², longitude scaled by `cos2`).
    max_span2: f64,
}

impl ChordGapScreen {
    /// The screen for edges whose endpoints all have |latitude| between `lo` and `hi` degrees.
    pub(crate) fn new(lo: f64, hi: f64, limit: f64) -> Self {
        const R: f64 = GAP_R;
        // A larger tangent only lowers the threshold; 1e-3 keeps it finite at the equator.
        let t = hi.to_radians().tan().max(1e-3);
        let usable = lo >= 0.0 && lo <= hi && hi < 89.0 && limit > 0.0 && t.is_finite();
        if !usable {
            return ChordGapScreen {
                cos2: 1.0,
                max_span2: 0.0,
            };
        }
        // The bound is 1.25·(t + L/R)·L²/(8R): L² ≤ l0 at most, so L/R ≤ √l0/R, and L² ≤ l2
        // then keeps the whole bound within the limit.
        let l0 = limit * 8.0 * R / (1.25 * t);
        let l2 = limit * 8.0 * R / (1.25 * (t + l0.sqrt() / R));
        let cos = lo.to_radians().cos();
        ChordGapScreen {
            cos2: cos * cos,
            // A thousandth off for rounding: edges that close go to the exact bound.
            max_span2: 0.999 * l2 / (M_PER_DEG * M_PER_DEG),
        }
    }

    /// The screen for the edges between `coords`. A NaN latitude is left out (an edge with a NaN
    /// or infinite coordinate never passes: its spans are not finite); an infinite one leaves a
    /// screen that passes no edge.
    pub(crate) fn over(coords: impl Iterator<Item = Coord<f64>>, limit: f64) -> Self {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        // Plain comparisons, false for NaN: f64::min's NaN handling costs on every vertex.
        for c in coords {
            let y = c.y.abs();
            if y < lo {
                lo = y;
            }
            if y > hi {
                hi = y;
            }
        }
        ChordGapScreen::new(lo, hi, limit)
    }

    /// Whether edge a→b (both in the band) surely has [`chord_gap_bound_m`] within the limit.
    #[inline]
    pub(crate) fn surely_within(&self, a: Coord<f64>, b: Coord<f64>) -> bool {
        let (dx, dy) = (b.x - a.x, b.y - a.y);
        dx * dx * self.cos2 + dy * dy <= self.max_span2
    }
}

/// [`chord_gap_bound_m`] in degrees (of longitude, the larger kind, at the higher latitude).
fn chord_gap_deg(a: Coord<f64>, b: Coord<f64>) -> f64 {
    let gap = chord_gap_bound_m(a, b);
    let lat = a.y.abs().max(b.y.abs()).min(89.0).to_radians();
    let deg = gap / (110_000.0 * lat.cos());
    if deg.is_finite() {
        deg
    } else {
        0.0
    }
}

/// Geodesic length of the lines of a geometry in metres (polygon rings are not counted).
pub fn geodesic_length_m(g: &Geometry<f64>) -> f64 {
    match g {
        Geometry::LineString(l) => Geodesic.length(l),
        Geometry::Line(l) => Geodesic.length(l),
        Geometry::MultiLineString(ml) => ml.0.iter().map(|l| Geodesic.length(l)).sum(),
        Geometry::GeometryCollection(gc) => gc.0.iter().map(geodesic_length_m).sum(),
        _ => 0.0,
    }
}

/// The polygons of a geometry as one MultiPolygon (empty for points and lines).
pub fn polygons_of(g: &Geometry<f64>) -> MultiPolygon<f64> {
    match g {
        Geometry::Polygon(p) => MultiPolygon(vec![p.clone()]),
        Geometry::MultiPolygon(mp) => mp.clone(),
        Geometry::Rect(r) => MultiPolygon(vec![r.to_polygon()]),
        Geometry::Triangle(t) => MultiPolygon(vec![t.to_polygon()]),
        Geometry::GeometryCollection(gc) => {
            MultiPolygon(gc.0.iter().flat_map(|g| polygons_of(g).0).collect())
        }
        _ => MultiPolygon(vec![]),
    }
}

/// How a box lies relative to an area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoxRelation {
    Inside,
    Outside,
    /// The area's boundary may cross the box: an exact test is needed.
    Boundary,
}

/// A polygonal area prepared for many questions.
pub struct PreparedArea {
    pub shape: MultiPolygon<f64>,
    bbox: Option<Rect<f64>>,
    edges: RTree<GeomWithData<Rectangle<[f64; 2]>, Line<f64>>>,
    /// Planar area in square degrees, to turn intersections into shares cheaply.
    planar_area: f64,
    /// Cells over the bounding box known to be wholly inside or outside, so most point and box
    /// tests are one lookup.
    grid: Option<Grid>,
    /// Geodesic area in m², computed when first asked for.
    area_m2: std::sync::OnceLock<f64>,
    /// How far (degrees) the area's geodesic edges may stray from their chords.
    bow_deg: f64,
    /// [`chord_gap_deg`] for boxes within the area's band of latitudes, without trigonometry.
    box_gap: Option<BandGap>,
}

/// An upper bound on [`chord_gap_deg`] of the diagonals of boxes whose latitudes lie within one
/// band, from the band's extremes (tan of its highest |latitude|, cos of its lowest and of its
/// highest), computed once: the cheap pad of [`PreparedArea::relate_box`] for the candidates of
/// a coverage, which all lie about the area.
#[derive(Clone, Copy, Debug)]
struct BandGap {
    /// The band (signed latitudes, degrees).
    south: f64,
    north: f64,
    tan_hi: f64,
    cos_lo: f64,
    /// Degrees of longitude per metre at the band's highest latitude (capped at 89°, as
    /// [`chord_gap_deg`] does).
    deg_per_m: f64,
}

impl BandGap {
    fn new(south: f64, north: f64) -> Option<Self> {
        if !(south.is_finite() && north.is_finite() && south <= north) {
            return None;
        }
        let (lo, hi) = if south >= 0.0 {
            (south, north)
        } else if north <= 0.0 {
            (-north, -south)
        } else {
            (0.0, north.max(-south))
        };
        let tan_hi = hi.to_radians().tan();
        let deg_per_m = 1.0 / (110_000.0 * hi.min(89.0).to_radians().cos());
        (tan_hi.is_finite() && deg_per_m.is_finite()).then_some(BandGap {
            south,
            north,
            tan_hi,
            cos_lo: lo.to_radians().cos(),
            deg_per_m,
        })
    }

    /// The bound for the diagonal a→b, if both lie in the band: [`chord_gap_bound_m`] with the
    /// band's tangent and cosine (each at least the edge's own), in degrees at the band's
    /// highest latitude (at most the edge's own cosine).
    fn deg(&self, a: Coord<f64>, b: Coord<f64>) -> Option<f64> {
        let inside = |y: f64| y >= self.south && y <= self.north;
        if !(inside(a.y) && inside(b.y)) {
            return None;
        }
        const R: f64 = GAP_R;
        let dx = (b.x - a.x).abs() * M_PER_DEG * self.cos_lo;
        let dy = (b.y - a.y).abs() * M_PER_DEG;
        let l2 = dx * dx + dy * dy;
        let gap = 1.25 * (self.tan_hi + l2.sqrt() / R) * l2 / (8.0 * R);
        // A hair over, so rounding never puts it under the exact figure.
        let deg = gap * self.deg_per_m * (1.0 + 1e-9);
        deg.is_finite().then_some(deg)
    }
}

const CELL_OUT: u8 = 0;
const CELL_IN: u8 = 1;
const CELL_EDGE: u8 = 2;

/// A raster of the area's bounding box: each cell wholly outside, wholly inside, or crossed by
/// the boundary (then the exact tests decide).
struct Grid {
    x0: f64,
    y0: f64,
    cw: f64,
    ch: f64,
    nx: usize,
    ny: usize,
    cells: Vec<u8>,
}

impl Grid {
    fn build(
        b: Rect<f64>,
        edges: &RTree<GeomWithData<Rectangle<[f64; 2]>, Line<f64>>>,
        n_edges: usize,
    ) -> Option<Grid> {
        let n = ((n_edges as f64).sqrt() * 2.0).clamp(8.0, 256.0) as usize;
        let (w, h) = (b.width(), b.height());
        if !(w > 0.0 && h > 0.0) {
            return None;
        }
        let (nx, ny) = (n, n);
        let (cw, ch) = (w / nx as f64, h / ny as f64);
        let (x0, y0) = (b.min().x, b.min().y);
        let mut cells = vec![CELL_OUT; nx * ny];
        let cell_x = |x: f64| (((x - x0) / cw).floor().max(0.0) as usize).min(nx - 1);
        let cell_y = |y: f64| (((y - y0) / ch).floor().max(0.0) as usize).min(ny - 1);
        for e in edges.iter() {
            let l = e.data;
            let (i0, i1) = (
                cell_x(l.start.x.min(l.end.x)),
                cell_x(l.start.x.max(l.end.x)),
            );
            let (j0, j1) = (
                cell_y(l.start.y.min(l.end.y)),
                cell_y(l.start.y.max(l.end.y)),
            );
            for j in j0..=j1 {
                for i in i0..=i1 {
                    // Only cells the segment really passes through (long diagonal edges).
                    let cell = Rect::new(
                        Coord {
                            x: x0 + i as f64 * cw,
                            y: y0 + j as f64 * ch,
                        },
                        Coord {
                            x: x0 + (i + 1) as f64 * cw,
                            y: y0 + (j + 1) as f64 * ch,
                        },
                    );
                    if (i1 == i0 && j1 == j0) || segment_meets_rect(&l, &cell) {
                        cells[j * nx + i] = CELL_EDGE;
                    }
                }
            }
        }
        // Scanline through each row's centre: cells between odd crossings are inside.
        for j in 0..ny {
            let y = y0 + (j as f64 + 0.5) * ch;
            let row = AABB::from_corners([x0 - 1.0, y], [b.max().x + 1.0, y]);
            let mut xs: Vec<f64> = edges
                .locate_in_envelope_intersecting(&row)
                .filter_map(|e| {
                    let (a, z) = (e.data.start, e.data.end);
                    ((a.y > y) != (z.y > y)).then(|| a.x + (y - a.y) * (z.x - a.x) / (z.y - a.y))
                })
                .collect();
            xs.sort_by(|a, b| a.total_cmp(b));
            for i in 0..nx {
                let k = j * nx + i;
                if cells[k] == CELL_EDGE {
                    continue;
                }
                let xc = x0 + (i as f64 + 0.5) * cw;
                let crossings = xs.partition_point(|x| *x < xc);
                cells[k] = if crossings % 2 == 1 {
                    CELL_IN
                } else {
                    CELL_OUT
                };
            }
        }
        Some(Grid {
            x0,
            y0,
            cw,
            ch,
            nx,
            ny,
            cells,
        })
    }

    /// The one state shared by every cell `r` touches, if `r` lies inside the grid.
    fn state(&self, r: Rect<f64>) -> Option<u8> {
        let fx = |x: f64| ((x - self.x0) / self.cw).floor();
        let fy = |y: f64| ((y - self.y0) / self.ch).floor();
        let (i0, i1, j0, j1) = (fx(r.min().x), fx(r.max().x), fy(r.min().y), fy(r.max().y));
        if i0 < 0.0 || j0 < 0.0 || i1 >= self.nx as f64 || j1 >= self.ny as f64 {
            return None;
        }
        let (i0, i1, j0, j1) = (i0 as usize, i1 as usize, j0 as usize, j1 as usize);
        let first = self.cells[j0 * self.nx + i0];
        if first == CELL_EDGE {
            return None;
        }
        for j in j0..=j1 {
            for i in i0..=i1 {
                if self.cells[j * self.nx + i] != first {
                    return None;
                }
            }
        }
        Some(first)
    }
}

impl PreparedArea {
    pub fn new(shape: MultiPolygon<f64>) -> PreparedArea {
        let mut edges = Vec::new();
        for p in &shape.0 {
            for ring in std::iter::once(p.exterior()).chain(p.interiors()) {
                for l in ring.lines() {
                    edges.push(GeomWithData::new(
                        Rectangle::from_corners([l.start.x, l.start.y], [l.end.x, l.end.y]),
                        l,
                    ));
                }
            }
        }
        let n_edges = edges.len();
        let bow_deg = edges
            .iter()
            .map(|e| chord_gap_deg(e.data.start, e.data.end))
            .fold(0.0, f64::max);
        let edges = RTree::bulk_load(edges);
        let bbox = shape.bounding_rect();
        PreparedArea {
            grid: bbox.and_then(|b| Grid::build(b, &edges, n_edges)),
            bbox,
            planar_area: shape.unsigned_area(),
            shape,
            edges,
            area_m2: std::sync::OnceLock::new(),
            bow_deg,
            box_gap: bbox.and_then(|b| BandGap::new(b.min().y, b.max().y)),
        }
    }

    /// Geodesic area in m² ([`geodesic_area_m2`] of the shape), computed once.
    pub fn area_m2(&self) -> f64 {
        *self
            .area_m2
            .get_or_init(|| geodesic_area_m2(&Geometry::MultiPolygon(self.shape.clone())))
    }

    /// Geodesic length in metres of the parts of `lines` inside the area (boundary included):
    /// each segment is cut where it meets the area's edges (found in the edge index, so the
    /// cost does not grow with the area's size) and its pieces whose middle is inside are
    /// measured, as clipping and then measuring would.
    pub fn length_inside_m(&self, lines: &MultiLineString<f64>) -> f64 {
        let mut total = 0.0;
        let mut cuts: Vec<f64> = Vec::new();
        for seg in lines.0.iter().flat_map(|l| l.lines()) {
            let (a, b) = (seg.start, seg.end);
            let (ux, uy) = (b.x - a.x, b.y - a.y);
            let len2 = ux * ux + uy * uy;
            if len2.is_nan() || len2 <= 0.0 {
                continue;
            }
            let at = |c: Coord<f64>| (((c.x - a.x) * ux + (c.y - a.y) * uy) / len2).clamp(0.0, 1.0);
            cuts.clear();
            cuts.extend([0.0, 1.0]);
            let aabb = AABB::from_corners([a.x, a.y], [b.x, b.y]);
            for e in self.edges.locate_in_envelope_intersecting(&aabb) {
                match geo::line_intersection::line_intersection(seg, e.data) {
                    Some(geo::LineIntersection::SinglePoint { intersection, .. }) => {
                        cuts.push(at(intersection))
                    }
                    Some(geo::LineIntersection::Collinear { intersection }) => {
                        cuts.extend([at(intersection.start), at(intersection.end)])
                    }
                    None => {}
                }
            }
            cuts.sort_unstable_by(f64::total_cmp);
            cuts.dedup();
            let point = |t: f64| geo::Point::new(a.x + t * ux, a.y + t * uy);
            for w in cuts.windows(2) {
                let mid = point((w[0] + w[1]) / 2.0);
                if self.contains_coord(mid.0) {
                    total += geo::Distance::distance(&Geodesic, point(w[0]), point(w[1]));
                }
            }
        }
        total
    }

    pub fn bbox(&self) -> Option<Rect<f64>> {
        self.bbox
    }

    /// Point in polygon by counting crossings of a ray to the east, using the edge index.
    /// Points on the boundary count as inside.
    pub fn contains_coord(&self, c: Coord<f64>) -> bool {
        let Some(b) = self.bbox else { return false };
        if c.x < b.min().x || c.x > b.max().x || c.y < b.min().y || c.y > b.max().y {
            return false;
        }
        if let Some(state) = self.grid.as_ref().and_then(|g| g.state(Rect::new(c, c))) {
            return state == CELL_IN;
        }
        let ray = AABB::from_corners([c.x, c.y], [b.max().x, c.y]);
        let mut inside = false;
        for e in self.edges.locate_in_envelope_intersecting(&ray) {
            let (a, z) = (e.data.start, e.data.end);
            // On the boundary?
            let cross = (z.x - a.x) * (c.y - a.y) - (z.y - a.y) * (c.x - a.x);
            if cross == 0.0
                && c.x >= a.x.min(z.x)
                && c.x <= a.x.max(z.x)
                && c.y >= a.y.min(z.y)
                && c.y <= a.y.max(z.y)
            {
                return true;
            }
            // Half-open rule so a vertex on the ray is counted once.
            if (a.y > c.y) != (z.y > c.y) {
                let x = a.x + (c.y - a.y) * (z.x - a.x) / (z.y - a.y);
                if x > c.x {
                    inside = !inside;
                }
            }
        }
        inside
    }

    /// Whether `r` is surely inside, surely outside, or touched by the boundary. `Inside` and
    /// `Outside` hold for geodesic edges too (as the union measures them): the box is widened
    /// by how far the geodesics of the area's edges and of any edge within the box may stray
    /// from their chords.
    pub fn relate_box(&self, r: Rect<f64>) -> BoxRelation {
        let Some(b) = self.bbox else {
            return BoxRelation::Outside;
        };
        let box_gap = self.box_gap.and_then(|g| g.deg(r.min(), r.max()));
        let pad = self.bow_deg + box_gap.unwrap_or_else(|| chord_gap_deg(r.min(), r.max()));
        let r = if pad > 0.0 {
            super::bbox::padded(r, pad)
        } else {
            r
        };
        if !b.intersects(&r) {
            return BoxRelation::Outside;
        }
        match self.grid.as_ref().and_then(|g| g.state(r)) {
            Some(CELL_IN) => return BoxRelation::Inside,
            Some(CELL_OUT) => return BoxRelation::Outside,
            _ => {}
        }
        let aabb = AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]);
        let crossed = self
            .edges
            .locate_in_envelope_intersecting(&aabb)
            .any(|e| segment_meets_rect(&e.data, &r));
        if crossed {
            BoxRelation::Boundary
        } else if self.contains_coord(r.center()) {
            BoxRelation::Inside
        } else {
            BoxRelation::Outside
        }
    }

    /// The share (0..=1) of a geometry that lies inside: by area for polygons, by length for
    /// lines, by count for points. `None` for empty geometry.
    pub fn share_inside(&self, g: &Geometry<f64>) -> Option<f64> {
        let r = g.bounding_rect()?;
        match self.relate_box(r) {
            BoxRelation::Inside => return Some(1.0),
            BoxRelation::Outside => return Some(0.0),
            BoxRelation::Boundary => {}
        }
        let polys = polygons_of(g);
        if !polys.0.is_empty() {
            let whole = polys.unsigned_area();
            if whole > 0.0 {
                let inside = polys.intersection(&self.shape).unsigned_area();
                return Some((inside / whole).clamp(0.0, 1.0));
            }
        }
        let lines = lines_of(g);
        if !lines.0.is_empty() {
            let whole: f64 = lines.0.iter().map(|l| geo::Euclidean.length(l)).sum();
            if whole > 0.0 {
                let inside: f64 = self
                    .shape
                    .clip(&lines, false)
                    .0
                    .iter()
                    .map(|l| geo::Euclidean.length(l))
                    .sum();
                return Some((inside / whole).clamp(0.0, 1.0));
            }
        }
        let points: Vec<Coord<f64>> = geo::CoordsIter::coords_iter(g).collect();
        if points.is_empty() {
            return None;
        }
        let n = points.iter().filter(|c| self.contains_coord(**c)).count();
        Some(n as f64 / points.len() as f64)
    }

    /// Whether a geometry lies within the area, allowing for floating-point slivers along shared
    /// boundaries (a share inside of at least 1 − 1e-6).
    pub fn within(&self, g: &Geometry<f64>) -> bool {
        let Some(r) = g.bounding_rect() else {
            return false;
        };
        match self.relate_box(r) {
            BoxRelation::Inside => return true,
            BoxRelation::Outside => return false,
            BoxRelation::Boundary => {}
        }
        // A vertex clearly outside (not within a sliver's width of the boundary) settles it
        // without the cost of an overlay.
        let mut all_inside = true;
        for c in geo::CoordsIter::coords_iter(g) {
            if !self.contains_coord(c) {
                if !self.near_boundary(c) {
                    return false;
                }
                all_inside = false;
            }
        }
        // Every vertex inside and no edge of the area meeting an edge of the feature: within.
        if all_inside && !self.crosses_edges(g) {
            return true;
        }
        self.share_inside(g).is_some_and(|s| s >= 1.0 - 1e-6)
    }

    /// Whether any edge of the area meets any edge of `g` (touching counts).
    fn crosses_edges(&self, g: &Geometry<f64>) -> bool {
        let meets = |l: Line<f64>| {
            let aabb = AABB::from_corners([l.start.x, l.start.y], [l.end.x, l.end.y]);
            self.edges
                .locate_in_envelope_intersecting(&aabb)
                .any(|e| e.data.intersects(&l))
        };
        let polys = polygons_of(g);
        let rings = polys
            .0
            .iter()
            .flat_map(|p| std::iter::once(p.exterior()).chain(p.interiors()));
        let lines = lines_of(g);
        rings
            .chain(lines.0.iter())
            .any(|ring| ring.lines().any(meets))
    }

    /// Whether a coordinate lies within about a centimetre (1e-7°) of the boundary.
    fn near_boundary(&self, c: Coord<f64>) -> bool {
        const EPS: f64 = 1e-7;
        let r = Rect::new(
            Coord {
                x: c.x - EPS,
                y: c.y - EPS,
            },
            Coord {
                x: c.x + EPS,
                y: c.y + EPS,
            },
        );
        let aabb = AABB::from_corners([r.min().x, r.min().y], [r.max().x, r.max().y]);
        self.edges
            .locate_in_envelope_intersecting(&aabb)
            .any(|e| segment_meets_rect(&e.data, &r))
    }

    /// Whether a geometry meets the area at all (touching counts).
    pub fn intersects(&self, g: &Geometry<f64>) -> bool {
        let Some(r) = g.bounding_rect() else {
            return false;
        };
        match self.relate_box(r) {
            BoxRelation::Inside => true,
            BoxRelation::Outside => false,
            // A vertex inside, an edge meeting an edge (both through the indexes), or else the
            // area wholly inside the geometry's polygons: never an overlay of the whole area,
            // which for a drawn polygon of 50,000 vertices costs seconds per feature.
            BoxRelation::Boundary => {
                geo::CoordsIter::coords_iter(g).any(|c| self.contains_coord(c))
                    || self.crosses_edges(g)
                    || self
                        .shape
                        .0
                        .first()
                        .and_then(|p| p.exterior().0.first())
                        .is_some_and(|c| polygons_of(g).intersects(c))
            }
        }
    }

    /// The part of a feature's polygons inside the area.
    pub fn clip_polygons(&self, g: &Geometry<f64>) -> MultiPolygon<f64> {
        let polys = polygons_of(g);
        if polys.0.is_empty() {
            return polys;
        }
        match g.bounding_rect().map(|r| self.relate_box(r)) {
            Some(BoxRelation::Inside) => polys,
            Some(BoxRelation::Outside) | None => MultiPolygon(vec![]),
            Some(BoxRelation::Boundary) => polys.intersection(&self.shape),
        }
    }

    /// Planar area in square degrees (for ratios only).
    pub fn planar_area(&self) -> f64 {
        self.planar_area
    }
}

/// Whether a segment meets a rectangle (boundary included), without building polygons.
fn segment_meets_rect(l: &Line<f64>, r: &Rect<f64>) -> bool {
    let inside = |c: Coord<f64>| {
        c.x >= r.min().x && c.x <= r.max().x && c.y >= r.min().y && c.y <= r.max().y
    };
    if inside(l.start) || inside(l.end) {
        return true;
    }
    let (a, b) = (r.min(), r.max());
    let corners = [a, Coord { x: b.x, y: a.y }, b, Coord { x: a.x, y: b.y }];
    (0..4).any(|i| l.intersects(&Line::new(corners[i], corners[(i + 1) % 4])))
}

fn lines_of(g: &Geometry<f64>) -> MultiLineString<f64> {
    match g {
        Geometry::LineString(l) => MultiLineString(vec![l.clone()]),
        Geometry::Line(l) => MultiLineString(vec![LineString::from(*l)]),
        Geometry::MultiLineString(ml) => ml.clone(),
        Geometry::GeometryCollection(gc) => {
            MultiLineString(gc.0.iter().flat_map(|g| lines_of(g).0).collect())
        }
        _ => MultiLineString(vec![]),
    }
}

/// A polygon area from any polygonal geometry; `None` if it has no polygons.
pub fn prepare(g: &Geometry<f64>) -> Option<PreparedArea> {
    let mp = polygons_of(g);
    if mp.0.is_empty() {
        None
    } else {
        Some(PreparedArea::new(mp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{line_string, point, polygon};

    fn square() -> PreparedArea {
        // A 10×10 square with a 2×2 hole in the middle.
        let p = polygon!(
            exterior: [(x: 0., y: 0.), (x: 10., y: 0.), (x: 10., y: 10.), (x: 0., y: 10.), (x: 0., y: 0.)],
            interiors: [[(x: 4., y: 4.), (x: 6., y: 4.), (x: 6., y: 6.), (x: 4., y: 6.), (x: 4., y: 4.)]],
        );
        PreparedArea::new(MultiPolygon(vec![p]))
    }

    #[test]
    fn holes_count_whichever_way_rings_are_wound() {
        let ring = |x0: f64, y0: f64, s: f64| {
            LineString::from(vec![
                (x0, y0),
                (x0 + s, y0),
                (x0 + s, y0 + s),
                (x0, y0 + s),
                (x0, y0),
            ])
        };
        let rev = |mut l: LineString<f64>| {
            l.0.reverse();
            l
        };
        let outer = geodesic_area_m2(&Polygon::new(ring(106.0, 29.0, 0.01), vec![]).into());
        let hole = geodesic_area_m2(&Polygon::new(ring(106.002, 29.002, 0.004), vec![]).into());
        assert!((outer - 1_079_000.0).abs() < 2_000.0, "{outer}");
        for (ext, int) in [(false, false), (false, true), (true, false), (true, true)] {
            let e = if ext {
                rev(ring(106.0, 29.0, 0.01))
            } else {
                ring(106.0, 29.0, 0.01)
            };
            let h = if int {
                rev(ring(106.002, 29.002, 0.004))
            } else {
                ring(106.002, 29.002, 0.004)
            };
            let m2 = geodesic_area_m2(&Polygon::new(e, vec![h]).into());
            assert!((m2 - (outer - hole)).abs() < 1e-6, "{ext} {int}: {m2}");
        }
    }

    #[test]
    fn points_boxes_and_shares() {
        let a = square();
        assert!(a.contains_coord(Coord { x: 1., y: 1. }));
        assert!(!a.contains_coord(Coord { x: 5., y: 5. }), "in the hole");
        assert!(a.contains_coord(Coord { x: 0., y: 5. }), "on the boundary");
        assert!(!a.contains_coord(Coord { x: 11., y: 5. }));
        assert!(
            a.contains_coord(Coord { x: 3., y: 4. }),
            "ray through a hole vertex"
        );
        let rect = |x0: f64, y0: f64, x1: f64, y1: f64| {
            Rect::new(Coord { x: x0, y: y0 }, Coord { x: x1, y: y1 })
        };
        assert_eq!(a.relate_box(rect(1., 1., 2., 2.)), BoxRelation::Inside);
        assert_eq!(a.relate_box(rect(4.5, 4.5, 5.5, 5.5)), BoxRelation::Outside);
        assert_eq!(a.relate_box(rect(9., 9., 11., 11.)), BoxRelation::Boundary);
        // Half of a 2×2 square straddling the east edge; a quarter of one on the hole's corner.
        let half = Geometry::Polygon(rect(9., 1., 11., 3.).to_polygon());
        assert!((a.share_inside(&half).unwrap() - 0.5).abs() < 1e-12);
        let q = Geometry::Polygon(rect(5., 5., 7., 7.).to_polygon());
        assert!((a.share_inside(&q).unwrap() - 0.75).abs() < 1e-12);
        let line = Geometry::LineString(line_string![(x: 8., y: 1.), (x: 12., y: 1.)]);
        assert!((a.share_inside(&line).unwrap() - 0.5).abs() < 1e-12);
        assert_eq!(
            a.share_inside(&Geometry::Point(point!(x: 5., y: 5.))),
            Some(0.0)
        );
        assert!(
            a.within(&Geometry::Polygon(rect(0., 0., 4., 4.).to_polygon())),
            "shares two edges"
        );
        assert!(!a.within(&half));
        assert!(a.intersects(&half));
        assert!(!a.intersects(&Geometry::Point(point!(x: 5., y: 5.))));
    }

    #[test]
    fn the_grid_agrees_with_exact_tests() {
        // A spiky 400-vertex star with a hole; deterministic pseudo-random probes.
        let ring: Vec<Coord<f64>> = (0..=400)
            .map(|k| {
                let a = (k % 400) as f64 / 400.0 * std::f64::consts::TAU;
                let r = if k % 2 == 0 {
                    1.0
                } else {
                    0.55 + 0.4 * ((k * 37 % 11) as f64 / 11.0)
                };
                Coord {
                    x: r * a.cos(),
                    y: r * a.sin(),
                }
            })
            .collect();
        let hole = LineString(vec![
            Coord { x: -0.1, y: -0.1 },
            Coord { x: 0.1, y: -0.1 },
            Coord { x: 0.1, y: 0.1 },
            Coord { x: -0.1, y: 0.1 },
            Coord { x: -0.1, y: -0.1 },
        ]);
        let poly = geo::Polygon::new(LineString(ring), vec![hole]);
        let area = PreparedArea::new(MultiPolygon(vec![poly.clone()]));
        let mut seed = 12345u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.4 - 1.2
        };
        for _ in 0..20_000 {
            let c = Coord { x: rnd(), y: rnd() };
            assert_eq!(area.contains_coord(c), poly.intersects(&c), "{c:?}");
        }
        for _ in 0..5_000 {
            let (x, y) = (rnd(), rnd());
            let r = Rect::new(
                Coord { x, y },
                Coord {
                    x: x + rnd().abs() * 0.05,
                    y: y + rnd().abs() * 0.05,
                },
            );
            match area.relate_box(r) {
                BoxRelation::Inside => {
                    assert!(geo::Contains::contains(&poly, &r.to_polygon()), "{r:?}")
                }
                BoxRelation::Outside => assert!(!poly.intersects(&r.to_polygon()), "{r:?}"),
                BoxRelation::Boundary => {}
            }
        }
    }

    #[test]
    fn geodesic_area_agrees_with_the_exact_zone_formula() {
        // A 1°×1° cell 29–30°N, 105–106°E whose north and south edges follow the parallels
        // (densified: 2,000 points each, so geodesic chords hug the parallels to ~1e-10). The
        // exact ellipsoidal zone area is an independent closed-form answer.
        let n = 2000;
        let mut ring: Vec<Coord<f64>> = (0..=n)
            .map(|i| Coord {
                x: 105. + i as f64 / n as f64,
                y: 29.,
            })
            .collect();
        ring.extend((0..=n).map(|i| Coord {
            x: 106. - i as f64 / n as f64,
            y: 30.,
        }));
        ring.push(ring[0]);
        let cell = Geometry::Polygon(geo::Polygon::new(LineString(ring), vec![]));
        let m2 = geodesic_area_m2(&cell);
        let expected = zone_area(29.0, 30.0) / 360.0;
        assert!(
            ((m2 - expected) / expected).abs() < 1e-8,
            "{m2} vs {expected}"
        );
    }

    /// Deterministic pseudo-random numbers in [0, 1).
    fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn geodesics_stay_within_the_chord_gap_bound() {
        // GeographicLib's points along random geodesics (10 m to 100 km, any azimuth, 0 to
        // 60°N/S), measured from the lon/lat chord in metres: never beyond the bound, and the
        // bound not loose by more than half again for an east-west edge.
        use geographiclib_rs::{DirectGeodesic, Geodesic as Karney, InverseGeodesic};
        let g = Karney::wgs84();
        let mut rnd = uniform(99u64);
        let off_chord = |a: Coord<f64>, b: Coord<f64>| {
            let (s12, azi1, _, _): (f64, f64, f64, f64) = g.inverse(a.y, a.x, b.y, b.x);
            (1..16)
                .map(|k| {
                    let (lat, lon): (f64, f64) = g.direct(a.y, a.x, azi1, s12 * k as f64 / 16.0);
                    // Metres per degree at the point, so the chord stays straight.
                    let (mx, my) = (111_320.0 * lat.to_radians().cos(), 110_900.0);
                    let (ux, uy) = ((b.x - a.x) * mx, (b.y - a.y) * my);
                    let (px, py) = ((lon - a.x) * mx, (lat - a.y) * my);
                    (ux * py - uy * px).abs() / (ux * ux + uy * uy).sqrt()
                })
                .fold(0.0, f64::max)
        };
        for _ in 0..2_000 {
            let lat = (rnd() * 120.0 - 60.0).clamp(-60.0, 60.0);
            let a = Coord {
                x: 100.0 + rnd(),
                y: lat,
            };
            let len = 10.0 * 10f64.powf(rnd() * 4.0);
            let (lat2, lon2): (f64, f64) = g.direct(a.y, a.x, rnd() * 360.0 - 180.0, len);
            let b = Coord { x: lon2, y: lat2 };
            let (gap, bound) = (off_chord(a, b), chord_gap_bound_m(a, b));
            assert!(
                gap <= bound,
                "{a:?} {b:?}: {gap} m off the chord, bound {bound}"
            );
        }
        let (a, b) = (Coord { x: 106.0, y: 29.5 }, Coord { x: 106.05, y: 29.5 });
        let (gap, bound) = (off_chord(a, b), chord_gap_bound_m(a, b));
        assert!(gap > 0.2 && bound < 1.5 * gap, "{gap} {bound}");
    }

    #[test]
    fn the_chord_gap_screen_passes_only_edges_within_the_bound() {
        // Random edges of 1 m to 2 km in random bands of latitude (0 to 80°, either side): an
        // edge the screen passes has an exact bound within the limit; and a band of a town at
        // 29.5°N passes its parcels' 40 m edges, whatever their direction.
        let mut rnd = uniform(7u64);
        let limit = 3e-5;
        let mut passed = 0;
        for _ in 0..20_000 {
            let sign = if rnd() < 0.5 { -1.0 } else { 1.0 };
            let (lo, width) = (rnd() * 80.0, rnd() * 2.0);
            let lat = |u: f64| sign * (lo + u * width);
            let len = 10f64.powf(rnd() * 3.3) / 111_000.0;
            let a = Coord {
                x: 106.0 + rnd(),
                y: lat(rnd()),
            };
            let b = Coord {
                x: a.x + (rnd() - 0.5) * 2.0 * len,
                y: (a.y + (rnd() - 0.5) * 2.0 * len).clamp(sign.min(0.0) * 90.0, 90.0),
            };
            let screen = ChordGapScreen::over([a, b].into_iter(), limit);
            let band = ChordGapScreen::new(lo, lo + width, limit);
            for s in [screen, band] {
                if s.surely_within(a, b) && b.y.abs() >= lo && b.y.abs() <= lo + width {
                    passed += 1;
                    assert!(chord_gap_bound_m(a, b) <= limit, "{a:?} {b:?} {s:?}");
                }
            }
        }
        assert!(passed > 1_000, "{passed}");
        let town = ChordGapScreen::new(29.45, 29.55, limit);
        for k in 0..360 {
            let az = f64::from(k).to_radians();
            let a = Coord { x: 106.3, y: 29.5 };
            let b = Coord {
                x: a.x + 40.0 * az.cos() / (111_320.0 * 29.5f64.to_radians().cos()),
                y: a.y + 40.0 * az.sin() / 110_900.0,
            };
            assert!(town.surely_within(a, b), "{az}");
            assert!(!town.surely_within(a, Coord { x: 106.31, ..a }));
        }
        // Near the pole, at NaN: nothing passes but a point.
        let polar = ChordGapScreen::new(88.0, 89.5, limit);
        let p = Coord { x: 0.0, y: 89.0 };
        assert!(!polar.surely_within(p, Coord { x: 1e-6, y: 89.0 }));
        let c = |x: f64, y: f64| Coord { x, y };
        let nan = ChordGapScreen::over([c(1.0, f64::NAN)].into_iter(), limit);
        assert!(!nan.surely_within(p, c(1e-9, 89.0)));
        let inf = ChordGapScreen::over([c(1.0, 1.0), c(1.0, f64::INFINITY)].into_iter(), limit);
        assert!(!inf.surely_within(c(1.0, 1.0), c(1.0, 1.0 + 1e-9)));
        let one = ChordGapScreen::over([c(f64::NAN, 1.0)].into_iter(), limit);
        assert!(!one.surely_within(c(f64::NAN, 1.0), c(1.0, 1.0)));
    }

    #[test]
    fn the_band_gap_is_never_below_the_exact_gap() {
        // Boxes of 1 m to 20 km inside bands of 0.01° to 3° (either hemisphere or across the
        // equator): the band's pad is at least chord_gap_deg of the box's diagonal, and not
        // more than a percent over it for the town-sized band of a coverage.
        let mut rnd = uniform(11);
        for _ in 0..20_000 {
            let south = rnd() * 160.0 - 80.0;
            let north = (south + 0.01 + rnd() * 3.0).min(88.0);
            let band = BandGap::new(south, north).unwrap();
            let y0 = south + rnd() * (north - south);
            let size = 10f64.powf(rnd() * 4.3) / 111_000.0;
            let a = Coord { x: 106.0, y: y0 };
            let b = Coord {
                x: 106.0 + size * rnd(),
                y: (y0 + size * rnd()).min(north),
            };
            let (got, exact) = (band.deg(a, b).unwrap(), chord_gap_deg(a, b));
            assert!(got >= exact, "{south} {north} {a:?} {b:?}: {got} < {exact}");
        }
        let town = BandGap::new(29.45, 29.55).unwrap();
        let (a, b) = (
            Coord { x: 106.3, y: 29.5 },
            Coord {
                x: 106.302,
                y: 29.502,
            },
        );
        let (got, exact) = (town.deg(a, b).unwrap(), chord_gap_deg(a, b));
        assert!(got <= 1.01 * exact, "{got} {exact}");
        assert!(town.deg(a, Coord { x: 106.3, y: 29.6 }).is_none());
    }

    /// Exact area of the WGS84 ellipsoid between two latitudes over all longitudes.
    fn zone_area(lat1: f64, lat2: f64) -> f64 {
        let a: f64 = 6_378_137.0;
        let f: f64 = 1.0 / 298.257_223_563;
        let e2 = f * (2.0 - f);
        let e = e2.sqrt();
        let q = |phi: f64| {
            let s = phi.to_radians().sin();
            (1.0 - e2)
                * (s / (1.0 - e2 * s * s)
                    - (1.0 / (2.0 * e)) * ((1.0 - e * s) / (1.0 + e * s)).ln())
        };
        std::f64::consts::PI * a * a * (q(lat2) - q(lat1))
    }
}
