//! The area of a union of polygons on the ellipsoid, computed without building the union.
//!
//! The boundary of a union is made of the parts of the input edges that lie inside no other input
//! polygon, and an area is a sum of per-edge terms over a boundary (Green's theorem), so the union's
//! area is the sum of those terms over the uncovered parts of every edge. The work, on every core:
//!
//! 1. file every edge under the cells of a grid (cells about the size of a typical edge);
//! 2. in each cell, sweep its edges west to east and find every crossing of two edges of
//!    different polygons, each pair once, as an event on both edges (entering or leaving the
//!    other polygon);
//! 3. walk each ring from a vertex whose depth (how many other polygons cover it) is counted
//!    directly, and add the terms of the parts of edges where the depth is zero.
//!
//! Restricted to an area ([`union_area_within_m2`]), the area's rings join in with a depth of
//! their own: a piece's edge counts where it is outside the other pieces and inside the area, an
//! area's edge where it is inside some piece. Nothing is clipped, so vertices shared by pieces
//! and the area stay bit-identical and coincide exactly.
//!
//! For 10,000 heavily overlapping parcels this is about four times faster than an overlay union
//! (i_overlay through geo) followed by its geodesic area, and never assembles a ring.
//!
//! **Exactness.** Predicates (which side of an edge a vertex lies on) are exact (`robust`).
//! Coincidences — shared edges between adjacent parcels, a vertex lying on another polygon's edge,
//! duplicated polygons — are settled by *simulation of simplicity*: polygon `k` is taken as
//! rigidly moved by `k·(ε, ε²)` for an infinitesimal ε. The moved polygons are in general
//! position, every crossing is proper, and since area depends continuously on the positions, the
//! union's area is the limit of the moved ones' union area: the exact answer, with no tolerance.
//!
//! **Geodesic edges.** Areas are those of polygons with geodesic edges, as PostGIS
//! `ST_Area(geography)` measures them, but crossings and containment are found on straight
//! lon/lat chords; a geodesic bows poleward of its chord (11 mm on a 1 km east-west edge at
//! 30°N), so a vertex a millimetre from a long edge could lie on one side of the chord and the
//! other of the geodesic. Every edge whose chord may stray more than [`CHORD_GAP_M`] from its
//! geodesic is therefore first cut by points on the geodesic, computed from the lesser endpoint
//! so that polygons sharing an edge share its points bit for bit (tilings stay exact), and the
//! chords' topology is then the geodesics' to within that gap.
//!
//! **The per-edge term.** Each uncovered part contributes the area between it and a reference
//! parallel, on the ellipsoid: in Lambert's cylindrical equal-area projection, a trapezoid under
//! the projected chord, plus its share of the geodesic's bow away from the chord. The bow of an
//! edge up to [`SHORT_DEG`] long is a closed-form series; of a longer edge, the geodesic
//! quadrilateral area `S12` (Karney 2013, as in PostGIS `ST_Area(geography)`) less the chord's.
//! The parts of an edge sum to the whole edge's term, so a polygon keeps its geodesic area
//! however other polygons cut it (an overlay, which puts a new vertex where edges cross, changes
//! a long edge's bow: hundreds of m² on a 5 km edge).
//!
//! **Rings.** The terms are chained into the result's rings (runs of boundary that meet at a
//! crossing belong to one ring), and each ring counts as PostGIS counts it: its absolute
//! geodesic area, added for an outer ring and subtracted for a hole. A sliver whose geodesic
//! edges bow across one another is wound the other way on the ellipsoid than in the plane, and
//! still adds. Against an overlay union of densified rings the result agrees to about 1e-10 on the
//! benchmark set and 1e-8 on the tests' worst cases.

use super::area::ChordGapScreen;
use geo::{Coord, Polygon};
use geographiclib_rs::Geodesic;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::RTree;
use std::borrow::Borrow;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// WGS84 semi-major axis and flattening (the ellipsoid geo's geodesic measures use).
const A: f64 = 6_378_137.0;
const F: f64 = 1.0 / 298.257_223_563;

/// Parts longer than this (in either coordinate, degrees) use the geodesic term.
pub const SHORT_DEG: f64 = 5e-4;

/// Area in m² of the union of `polygons` (lon/lat degrees), on the WGS84 ellipsoid. Overlaps count
/// once; rings may be wound either way; polygons may share edges or repeat.
pub fn union_area_m2<P: Borrow<Polygon<f64>>>(polygons: &[P]) -> f64 {
    union_area_m2_cancellable(polygons, &|| false).unwrap_or(0.0)
}

/// [`union_area_m2`], checking `cancelled` between pieces of the work (every few rows of the
/// grid, every ring): `None` as soon as it returns true, within milliseconds.
pub fn union_area_m2_cancellable<P: Borrow<Polygon<f64>>>(
    polygons: &[P],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Option<f64> {
    let all: Vec<Input<'_>> = polygons
        .iter()
        .map(|p| Input::piece(p.borrow(), PieceHint::default()))
        .collect();
    Some(run(PolygonSet::new(&all, false), cancelled)?.area_m2)
}

/// The area of a union restricted to an area, and what each piece has inside the area.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UnionWithin {
    /// Area in m² of (∪ pieces) ∩ area.
    pub area_m2: f64,
    /// For each piece (in input order), the area in m² of its own part inside the area.
    pub overlap_m2: Vec<f64>,
}

/// The area in m² of the union of `pieces` inside `area`, without clipping anything: the boundary
/// of (∪ pieces) ∩ area is made of the parts of the pieces' edges that lie inside the area and
/// outside every other piece, and of the parts of the area's edges inside some piece, so every
/// input vertex is used as it is and a piece identical to the area (or sharing its edges) adds
/// exactly the terms the area itself has. `area`'s polygons must not overlap one another.
/// `None` when `cancelled` returned true.
///
/// ```
/// use geo::{coord, Rect};
/// use yizhangtu::geom::{union_area_m2, union_area_within_m2};
/// let r = |x0: f64, y0: f64, x1: f64, y1: f64| {
///     Rect::new(coord! {x: x0, y: y0}, coord! {x: x1, y: y1}).to_polygon()
/// };
/// let area = [r(106.0, 29.0, 106.01, 29.01)];
/// // Half of the piece lies inside the area (to 1e-5: the 1 km geodesic edges of the piece and
/// // the area bow north of the half's own 500 m ones, by up to a centimetre).
/// let w = union_area_within_m2(&[r(106.005, 29.0, 106.015, 29.01)], &area, &|| false).unwrap();
/// let half = union_area_m2(&[r(106.005, 29.0, 106.01, 29.01)]);
/// assert!((w.area_m2 - half).abs() < 1e-5 * half);
/// assert!((w.overlap_m2[0] - half).abs() < 1e-5 * half);
/// ```
pub fn union_area_within_m2<P: Borrow<Polygon<f64>>>(
    pieces: &[P],
    area: &[Polygon<f64>],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Option<UnionWithin> {
    union_area_within_measuring_m2(
        pieces,
        &|_| PieceHint {
            measure: true,
            inside_area: false,
        },
        area,
        cancelled,
    )
}

/// What a caller knows of one piece of a restricted union.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PieceHint {
    /// Whether its own overlap with the area is wanted (in [`UnionWithin::overlap_m2`]).
    pub measure: bool,
    /// Whether it is known to lie in the area's interior (its bounding box does, and no edge of
    /// the area meets that box), which saves testing its rings against the area. Used only when
    /// the area is one polygon; a wrong `true` gives a wrong area.
    pub inside_area: bool,
}

/// [`union_area_within_m2`] with what the caller knows of each piece (by index): the overlap is
/// measured only for the pieces whose hint says `measure` (the others' `overlap_m2` is 0), which
/// saves the terms of their covered edges, and pieces known to lie inside the area skip the
/// point-in-area tests.
pub fn union_area_within_measuring_m2<P: Borrow<Polygon<f64>>>(
    pieces: &[P],
    hint: &dyn Fn(usize) -> PieceHint,
    area: &[Polygon<f64>],
    cancelled: &(dyn Fn() -> bool + Sync),
) -> Option<UnionWithin> {
    let one_polygon = area.len() == 1;
    let all: Vec<Input<'_>> = pieces
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let mut h = hint(k);
            h.inside_area &= one_polygon;
            Input::piece(p.borrow(), h)
        })
        .chain(area.iter().map(|p| Input {
            polygon: p,
            is_area: true,
            measure: false,
            inside_area: false,
        }))
        .collect();
    let set = PolygonSet::new(&all, true);
    let mut out = run(set, cancelled)?;
    out.overlap_m2.truncate(pieces.len());
    out.overlap_m2.resize(pieces.len(), 0.0);
    Some(out)
}

/// One polygon of a union's input.
#[derive(Clone, Copy)]
struct Input<'a> {
    polygon: &'a Polygon<f64>,
    /// A polygon of the area of a restricted union.
    is_area: bool,
    /// Its own overlap with the area is wanted.
    measure: bool,
    /// Known to lie inside the area (see [`PieceHint::inside_area`]).
    inside_area: bool,
}

impl<'a> Input<'a> {
    fn piece(polygon: &'a Polygon<f64>, hint: PieceHint) -> Self {
        Input {
            polygon,
            is_area: false,
            measure: hint.measure,
            inside_area: hint.inside_area,
        }
    }
}

/// The three steps of the module documentation, on every core.
fn run(mut set: PolygonSet, cancelled: &(dyn Fn() -> bool + Sync)) -> Option<UnionWithin> {
    let inputs = set.inputs;
    let mut result = UnionWithin {
        area_m2: 0.0,
        overlap_m2: vec![0.0; inputs],
    };
    if set.shapes.is_empty() || (set.restricted && !set.is_area.iter().any(|&a| a)) {
        return Some(result);
    }
    let threads = if set.coords.len() < 20_000 {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(8)
    };
    // Each thread owns a contiguous run of shapes (they are in Z-order, so a patch of ground)
    // and so a run of edges.
    let parts = set.partition(threads);
    set.index_large_shapes();
    let set = set;
    // 1. Indexes: shapes' boxes (for the depth of each ring's first vertex), and each part's
    //    edges by grid cell.
    let cells = Cells::new(&set);
    let (tree, grids) = std::thread::scope(|scope| {
        let tree = (threads > 1).then(|| scope.spawn(|| ShapeGrid::new(&set)));
        let grids = in_parallel_over(&parts, |part| {
            EdgeGrid::new(&set, cells, part.edges.clone())
        });
        (tree.map_or_else(|| ShapeGrid::new(&set), join), grids)
    });
    if cancelled() {
        return None;
    }
    // 2. Every crossing of two edges of different shapes, each pair of edges met once.
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let found = in_parallel(threads, || {
        let mut out = Found::default();
        let mut here = Vec::new();
        loop {
            let first = next.fetch_add(ROWS, Ordering::Relaxed);
            if first >= cells.ny || stop.load(Ordering::Relaxed) {
                break;
            }
            if cancelled() {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            for r in first..(first + ROWS).min(cells.ny) {
                crossings(&set, &cells, &grids, r, &mut here, &mut out);
            }
        }
        out
    });
    if stop.load(Ordering::Relaxed) {
        return None;
    }
    let long_pairs = long_pair_events(&set, &found);
    // 3. Each part gathers the events on its edges and walks its rings, keeping the terms of the
    //    parts of edges that bound the result.
    let walked = in_parallel_over(&parts, |part| {
        let events = EdgeEvents::new(part.edges.clone(), &found, &long_pairs);
        let mut out = Walked::default();
        let mut scratch = Scratch::default();
        for i in part.shapes.clone() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if cancelled() {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            set.walk(i, &tree, &events, &mut scratch, &mut out);
        }
        out
    });
    if stop.load(Ordering::Relaxed) {
        return None;
    }
    result.area_m2 = ring_by_ring(&walked);
    let mut overlap = vec![Sum::default(); set.shapes.len()];
    for w in &walked {
        for &(shape, m2) in &w.overlap {
            overlap[shape as usize].add(m2);
        }
    }
    for (shape, sum) in overlap.into_iter().enumerate() {
        if let Some(slot) = result.overlap_m2.get_mut(set.input[shape] as usize) {
            *slot = sum.value().abs();
        }
    }
    Some(result)
}

/// The area from the walked runs: runs that meet at a crossing (or close a ring) are parts of one
/// ring of the result, and each ring counts as PostGIS counts it, `|geodesic area|`, added for an
/// outer ring and subtracted for a hole (told apart by its winding in the lon/lat plane, where
/// the crossings that close it are found, as an overlay in that plane would). A thin ring whose
/// geodesic edges bow across one another has a geodesic winding opposite to its planar one, and
/// still adds its area.
fn ring_by_ring(walked: &[Walked]) -> f64 {
    let mut offsets = Vec::with_capacity(walked.len());
    let mut n = 0u32;
    for w in walked {
        offsets.push(n);
        n += w.chains.len() as u32;
    }
    let mut parent: Vec<u32> = (0..n).collect();
    fn find(parent: &mut [u32], mut x: u32) -> u32 {
        while parent[x as usize] != x {
            let up = parent[parent[x as usize] as usize];
            parent[x as usize] = up;
            x = up;
        }
        x
    }
    let unite = |parent: &mut Vec<u32>, a: u32, b: u32| {
        let (a, b) = (find(parent, a), find(parent, b));
        if a != b {
            parent[a.max(b) as usize] = a.min(b);
        }
    };
    let mut ends: Vec<(u64, u32)> = Vec::new();
    for (w, &off) in walked.iter().zip(&offsets) {
        for &(a, b) in &w.joins {
            unite(&mut parent, off + a, off + b);
        }
        ends.extend(w.ends.iter().map(|&(key, c)| (key, off + c)));
    }
    ends.sort_unstable();
    for pair in ends.windows(2) {
        if pair[0].0 == pair[1].0 {
            unite(&mut parent, pair[0].1, pair[1].1);
        }
    }
    let mut rings = vec![Chain::default(); n as usize];
    for (w, &off) in walked.iter().zip(&offsets) {
        for (k, c) in w.chains.iter().enumerate() {
            let root = find(&mut parent, off + k as u32) as usize;
            rings[root].g.add(c.g.value());
            rings[root].p.add(c.p.value());
        }
    }
    let mut total = Sum::default();
    for r in rings {
        let (g, p) = (r.g.value(), r.p.value());
        total.add(if p > 0.0 {
            g.abs()
        } else if p < 0.0 {
            -g.abs()
        } else {
            g
        });
    }
    total.value().max(0.0)
}

/// The edges of one shape by their boxes (the edge starting at each coordinate).
type EdgeIndex = RTree<GeomWithData<Rectangle<[f64; 2]>, u32>>;

/// Rows of grid cells handed to a worker at a time.
const ROWS: usize = 4;

/// The shapes' boxes filed by grid cell, to find the shapes whose box holds a point: cells about
/// the size of a typical shape, so most shapes are filed in one to four cells and a query reads
/// one cell. Shapes spanning many cells (an area around everything, a district among parcels)
/// are kept aside and checked on every query. Built in one counting pass, which costs a small
/// fraction of an R-tree's bulk load.
struct ShapeGrid {
    cells: Cells,
    /// Shapes of cell c: items[start[c]..start[c + 1]].
    start: Vec<u32>,
    items: Vec<u32>,
    big: Vec<u32>,
}

/// The cells (first and last column, first and last row) a shape's box is filed in.
fn box_span(cells: &Cells, s: &Shape) -> (usize, usize, usize, usize) {
    cells.span(
        Coord {
            x: s.min[0],
            y: s.min[1],
        },
        Coord {
            x: s.max[0],
            y: s.max[1],
        },
    )
}

impl ShapeGrid {
    /// Shapes spanning more cells than this are checked on every query instead.
    const BIG: usize = 64;

    fn new(set: &PolygonSet) -> Self {
        let n = set.shapes.len().max(1);
        let step = (n / 1000).max(1);
        let mut sample: Vec<f64> = set
            .shapes
            .iter()
            .step_by(step)
            .map(|s| (s.max[0] - s.min[0]).max(s.max[1] - s.min[1]))
            .collect();
        sample.sort_unstable_by(f64::total_cmp);
        let typical = sample.get(sample.len() / 2).copied().unwrap_or(0.0);
        let (w, h) = (set.hi[0] - set.lo[0], set.hi[1] - set.lo[1]);
        let mut cell = typical.max(w.max(h) / 4096.0).max(1e-9);
        let n_cells = |c: f64| ((w / c).floor() + 1.0) * ((h / c).floor() + 1.0);
        let limit = 2.0 * n as f64 + 16.0;
        if n_cells(cell) > limit {
            cell *= (n_cells(cell) / limit).sqrt() * 1.01;
        }
        let cells = Cells {
            x0: set.lo[0],
            y0: set.lo[1],
            inv: 1.0 / cell,
            nx: (w / cell) as usize + 1,
            ny: (h / cell) as usize + 1,
        };
        let span = |s: &Shape| box_span(&cells, s);
        let mut start = vec![0u32; cells.nx * cells.ny + 1];
        let mut big = Vec::new();
        for (i, s) in set.shapes.iter().enumerate() {
            let (c0, c1, r0, r1) = span(s);
            if (c1 - c0 + 1) * (r1 - r0 + 1) > Self::BIG {
                big.push(i as u32);
                continue;
            }
            for r in r0..=r1 {
                for c in c0..=c1 {
                    start[r * cells.nx + c + 1] += 1;
                }
            }
        }
        for c in 1..start.len() {
            start[c] += start[c - 1];
        }
        let mut items = vec![0u32; start[start.len() - 1] as usize];
        let mut fill = start.clone();
        for (i, s) in set.shapes.iter().enumerate() {
            let (c0, c1, r0, r1) = span(s);
            if (c1 - c0 + 1) * (r1 - r0 + 1) > Self::BIG {
                continue;
            }
            for r in r0..=r1 {
                for c in c0..=c1 {
                    let cell = r * cells.nx + c;
                    items[fill[cell] as usize] = i as u32;
                    fill[cell] += 1;
                }
            }
        }
        ShapeGrid {
            cells,
            start,
            items,
            big,
        }
    }

    /// Calls `f` with every shape whose (closed) box holds `p`, each once.
    fn at(&self, set: &PolygonSet, p: Coord<f64>, mut f: impl FnMut(usize)) {
        let holds = |i: u32| {
            let s = &set.shapes[i as usize];
            p.x >= s.min[0] && p.x <= s.max[0] && p.y >= s.min[1] && p.y <= s.max[1]
        };
        // The padded span of a point is one cell, or two side by side where it lies on a cell's
        // edge; a shape filed in both is reported from the first only.
        let (c0, c1, r0, r1) = self.cells.span(p, p);
        for r in r0..=r1 {
            for c in c0..=c1 {
                let cell = r * self.cells.nx + c;
                for &i in &self.items[self.start[cell] as usize..self.start[cell + 1] as usize] {
                    if !holds(i) {
                        continue;
                    }
                    // Reported already from an earlier cell of this query?
                    let (sc0, _, sr0, _) = box_span(&self.cells, &set.shapes[i as usize]);
                    if (r > r0 && sr0 < r) || (c > c0 && sc0 < c) {
                        continue;
                    }
                    f(i as usize);
                }
            }
        }
        for &i in &self.big {
            if holds(i) {
                f(i as usize);
            }
        }
    }
}

/// A run of shapes and the run of coordinates (edges by first coordinate) they own.
#[derive(Clone)]
struct Part {
    shapes: Range<usize>,
    edges: Range<usize>,
}

/// Runs `work` once per part, each on its own thread (the calling one if there is one part).
fn in_parallel_over<T: Send>(parts: &[Part], work: impl Fn(&Part) -> T + Sync) -> Vec<T> {
    if parts.len() < 2 {
        return parts.iter().map(&work).collect();
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts.iter().map(|p| scope.spawn(|| work(p))).collect();
        handles.into_iter().map(join).collect()
    })
}

/// Runs `work` on `threads` threads (the calling one if 1) and collects what each returns.
fn in_parallel<T: Send>(threads: usize, work: impl Fn() -> T + Sync) -> Vec<T> {
    if threads < 2 {
        return vec![work()];
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads).map(|_| scope.spawn(&work)).collect();
        handles.into_iter().map(join).collect()
    })
}

fn join<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// Neumaier-compensated sum: the terms are large (areas to a reference parallel) and cancel.
#[derive(Default, Clone, Copy)]
struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }
    fn value(self) -> f64 {
        self.s + self.c
    }
}

struct Shape {
    rings: Range<usize>,
    min: [f64; 2],
    max: [f64; 2],
}

/// The polygons flattened: closed rings wound with the interior on the left (exteriors
/// counter-clockwise, holes clockwise), with each vertex's projected position beside it.
struct PolygonSet {
    coords: Vec<Coord<f64>>,
    /// The shape each coordinate belongs to; the edge starting at coordinate k is (k, k+1)
    /// unless k closes its ring (`last[k]`).
    owner: Vec<u32>,
    last: Vec<bool>,
    /// Extent of all shapes.
    lo: [f64; 2],
    hi: [f64; 2],
    rings: Vec<Range<usize>>,
    shapes: Vec<Shape>,
    /// Per shape: whether it is a polygon of the area (in a restricted union), and its index in
    /// the input.
    is_area: Vec<bool>,
    input: Vec<u32>,
    /// How many polygons were given.
    inputs: usize,
    /// Whether the union is restricted to the area polygons.
    restricted: bool,
    /// Per shape: whether its own overlap with the area is wanted.
    measure: Vec<bool>,
    /// Per shape: whether it is known to lie inside the (one-polygon) area.
    inside_area: Vec<bool>,
    /// Edge indexes of shapes with many edges, for point-in-shape tests.
    large: Vec<Option<EdgeIndex>>,
    /// Reference meridian and parallel of the projection (radians / projected y, absolute).
    lon0: f64,
    /// The middle of the extent (lon/lat degrees), the origin of the planar terms.
    mid: Coord<f64>,
    y0: f64,
    e: f64,
    e2: f64,
}

/// Per-worker buffers reused from polygon to polygon.
#[derive(Default)]
struct Scratch {
    /// Crossings along the edge being walked: parameter, change in depth (see [`Event`]) and
    /// the other edge.
    events: Vec<(f64, i32, u32)>,
    /// The projected positions of the ring being walked.
    projected: Vec<[f64; 3]>,
    /// The walk's state along the ring.
    state: WalkState,
}

/// A crossing on edge `edge` at parameter `t`, with edge `other`.
/// `change` is ±1 when the edge enters or leaves a piece, ±2 an area polygon.
#[derive(Clone, Copy)]
struct Event {
    t: f64,
    edge: u32,
    change: i32,
    other: u32,
}

/// A maximal run of a ring's boundary that bounds the result: its geodesic terms and its planar
/// (lon/lat plane) terms, whose sign tells an outer ring from a hole.
#[derive(Default, Clone, Copy)]
struct Chain {
    g: Sum,
    p: Sum,
}

/// What a worker's walk produced.
#[derive(Default)]
struct Walked {
    chains: Vec<Chain>,
    /// A chain starting or ending at a crossing (the crossing's two edges as one key): two chains
    /// with the same key are parts of one ring.
    ends: Vec<(u64, u32)>,
    /// Chains that are one (a ring's last run continues into its first).
    joins: Vec<(u32, u32)>,
    /// Terms of each piece's overlap with the area: (shape, m²).
    overlap: Vec<(u32, f64)>,
}

/// Where the walk is: depth in pieces and in area polygons, whether the boundary being walked
/// bounds the result (and in which chain), and, along an area ring, which pieces cover it.
#[derive(Default)]
struct WalkState {
    pieces: i32,
    areas: i32,
    on: bool,
    chain: u32,
    cover: Vec<(u32, i32)>,
    own: Sum,
    /// The bow of the edge being walked (see `PolygonSet::term`).
    bow: f64,
    /// Whether the piece being walked wants its overlap with the area.
    measured: bool,
}

impl WalkState {
    fn cover_add(&mut self, shape: u32, n: i32) {
        match self.cover.iter_mut().find(|c| c.0 == shape) {
            Some(c) => c.1 += n,
            None => self.cover.push((shape, n)),
        }
    }
}

fn crossing_key(e: usize, f: u32) -> u64 {
    let (e, f) = (e as u64, u64::from(f));
    (e.min(f) << 32) | e.max(f)
}

/// What a worker found: events, and pairs involving a long edge (met in several cells, so tested
/// once after deduplication).
#[derive(Default)]
struct Found {
    events: Vec<Event>,
    long_pairs: Vec<(u32, u32)>,
}

/// The events of the pairs with a long edge, each pair tested once.
fn long_pair_events(set: &PolygonSet, found: &[Found]) -> Vec<Event> {
    let mut pairs: Vec<(u32, u32)> = found
        .iter()
        .flat_map(|f| f.long_pairs.iter().copied())
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut out = Vec::new();
    for (e, f) in pairs {
        let (e, f) = (e as usize, f as usize);
        set.test_pair(
            e,
            set.coords[e],
            set.coords[e + 1],
            f,
            set.coords[f],
            set.coords[f + 1],
            &mut out,
        );
    }
    out
}

/// The events on a run of edges, grouped: those of edge k are
/// `events[start[k - first]..start[k - first + 1]]`.
struct EdgeEvents {
    first: usize,
    start: Vec<u32>,
    events: Vec<(f64, i32, u32)>,
}

impl EdgeEvents {
    fn new(edges: Range<usize>, found: &[Found], more: &[Event]) -> Self {
        let all = || {
            found
                .iter()
                .flat_map(|f| f.events.iter())
                .chain(more.iter())
                .filter(|ev| edges.contains(&(ev.edge as usize)))
        };
        let mut start = vec![0u32; edges.len() + 1];
        for ev in all() {
            start[ev.edge as usize - edges.start + 1] += 1;
        }
        for k in 1..start.len() {
            start[k] += start[k - 1];
        }
        let mut fill = start.clone();
        let mut events = vec![(0.0, 0, 0); start[start.len() - 1] as usize];
        for ev in all() {
            let slot = &mut fill[ev.edge as usize - edges.start];
            events[*slot as usize] = (ev.t, ev.change, ev.other);
            *slot += 1;
        }
        EdgeEvents {
            first: edges.start,
            start,
            events,
        }
    }

    fn of(&self, edge: usize) -> &[(f64, i32, u32)] {
        let k = edge - self.first;
        &self.events[self.start[k] as usize..self.start[k + 1] as usize]
    }
}

/// A part's edges filed under the grid cells they pass through, with their coordinates, so that
/// the edges that may cross are found cell by cell in memory read in order. Cells are about
/// twice the typical edge; a long edge is filed as a chain of pieces two cells long, so it
/// costs cells in proportion to its length.
struct EdgeGrid {
    /// Items of cell c: items[start[c]..start[c + 1]].
    start: Vec<u32>,
    items: Vec<Item>,
}

#[derive(Clone, Copy)]
struct Item {
    a: Coord<f64>,
    b: Coord<f64>,
    edge: u32,
    /// The owning shape, with [`LONG`] set for an edge filed as more than one piece.
    owner: u32,
}

const LONG: u32 = 1 << 31;

#[derive(Clone, Copy)]
struct Cells {
    x0: f64,
    y0: f64,
    inv: f64,
    nx: usize,
    ny: usize,
}

impl Cells {
    // Truncation, not `floor` (a libm call on baseline x86-64): they differ only below zero,
    // which clamps to the first cell either way.
    fn col(&self, x: f64) -> usize {
        (((x - self.x0) * self.inv) as usize).min(self.nx - 1)
    }

    fn row(&self, y: f64) -> usize {
        (((y - self.y0) * self.inv) as usize).min(self.ny - 1)
    }

    /// How many pieces segment a→b is filed as: pieces are at most two cells long.
    fn pieces(&self, a: Coord<f64>, b: Coord<f64>) -> usize {
        let span = (b.x - a.x).abs().max((b.y - a.y).abs()) * self.inv / 2.0;
        // Most edges: what the general case below gives for them, without its conversions.
        if span <= 1.0 {
            return 1;
        }
        // `as` saturates (NaN to 0), and a piece spans at most two cells.
        let whole = span.min(1e7) as usize;
        (whole + usize::from((whole as f64) < span.min(1e7))).max(1)
    }

    /// The cells (first and last column, first and last row) of the box of p→q, a hair wider
    /// so that rounding loses no cell.
    fn span(&self, p: Coord<f64>, q: Coord<f64>) -> (usize, usize, usize, usize) {
        let pad = 1e-9 / self.inv;
        (
            self.col(p.x.min(q.x) - pad),
            self.col(p.x.max(q.x) + pad),
            self.row(p.y.min(q.y) - pad),
            self.row(p.y.max(q.y) + pad),
        )
    }

    /// Calls `f` with every cell the segment a→b may touch (some more than once): the cells of
    /// each piece's box, a hair wider so that rounding in the cut points loses no cell.
    fn visit(&self, a: Coord<f64>, b: Coord<f64>, mut f: impl FnMut(usize)) {
        let pieces = self.pieces(a, b);
        let mut p = a;
        for n in 1..=pieces {
            let q = if n == pieces {
                b
            } else {
                let t = n as f64 / pieces as f64;
                Coord {
                    x: a.x + t * (b.x - a.x),
                    y: a.y + t * (b.y - a.y),
                }
            };
            let (c0, c1, r0, r1) = self.span(p, q);
            for r in r0..=r1 {
                for c in c0..=c1 {
                    f(r * self.nx + c);
                }
            }
            p = q;
        }
    }
}

impl Cells {
    /// A grid over the set's extent with cells about twice its typical edge, and no more than
    /// about four cells per edge.
    fn new(set: &PolygonSet) -> Self {
        let count = set.coords.len().max(1);
        let step = (count / 1000).max(1);
        let mut sample: Vec<f64> = (0..set.coords.len().saturating_sub(1))
            .step_by(step)
            .filter(|&k| !set.last[k])
            .map(|k| {
                let (a, b) = (set.coords[k], set.coords[k + 1]);
                (b.x - a.x).abs().max((b.y - a.y).abs())
            })
            .collect();
        sample.sort_unstable_by(f64::total_cmp);
        let typical = sample.get(sample.len() / 2).copied().unwrap_or(0.0);
        let (w, h) = (set.hi[0] - set.lo[0], set.hi[1] - set.lo[1]);
        let mut cell = (2.0 * typical).max(w.max(h) / 4096.0).max(1e-9);
        let n_cells = |c: f64| ((w / c).floor() + 1.0) * ((h / c).floor() + 1.0);
        let limit = 4.0 * count as f64 + 16.0;
        if n_cells(cell) > limit {
            cell *= (n_cells(cell) / limit).sqrt() * 1.01;
        }
        Cells {
            x0: set.lo[0],
            y0: set.lo[1],
            inv: 1.0 / cell,
            nx: (w / cell) as usize + 1,
            ny: (h / cell) as usize + 1,
        }
    }
}

impl EdgeGrid {
    fn new(set: &PolygonSet, cells: Cells, edges: Range<usize>) -> Self {
        let edges = || edges.clone().filter(|&k| !set.last[k]);
        // One-piece edges' cell spans, kept from the counting pass for the filing pass (grids
        // have at most 4097 cells a side, so they fit u16); long edges are walked again.
        const WALK: [u16; 4] = [u16::MAX; 4];
        let mut spans: Vec<[u16; 4]> = Vec::new();
        let mut start = vec![0u32; cells.nx * cells.ny + 1];
        for k in edges() {
            let (a, b) = (set.coords[k], set.coords[k + 1]);
            if cells.pieces(a, b) == 1 {
                let (c0, c1, r0, r1) = cells.span(a, b);
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        start[r * cells.nx + c + 1] += 1;
                    }
                }
                spans.push([c0 as u16, c1 as u16, r0 as u16, r1 as u16]);
            } else {
                cells.visit(a, b, |c| start[c + 1] += 1);
                spans.push(WALK);
            }
        }
        for c in 1..start.len() {
            start[c] += start[c - 1];
        }
        let blank = Item {
            a: Coord::zero(),
            b: Coord::zero(),
            edge: 0,
            owner: 0,
        };
        let mut items = vec![blank; start[start.len() - 1] as usize];
        let mut fill = start.clone();
        for (k, span) in edges().zip(&spans) {
            let (a, b) = (set.coords[k], set.coords[k + 1]);
            let long = if *span == WALK { LONG } else { 0 };
            let item = Item {
                a,
                b,
                edge: k as u32,
                owner: set.owner[k] | long,
            };
            let mut put = |c: usize| {
                items[fill[c] as usize] = item;
                fill[c] += 1;
            };
            if *span == WALK {
                cells.visit(a, b, put);
            } else {
                let [c0, c1, r0, r1] = span.map(usize::from);
                for r in r0..=r1 {
                    for c in c0..=c1 {
                        put(r * cells.nx + c);
                    }
                }
            }
        }
        EdgeGrid { start, items }
    }

    fn cell(&self, c: usize) -> &[Item] {
        &self.items[self.start[c] as usize..self.start[c + 1] as usize]
    }
}

/// An item of the cell being searched, with its box, sorted by the box's west side.
#[derive(Clone, Copy)]
struct Boxed {
    min: [f64; 2],
    max: [f64; 2],
    item: Item,
}

/// Tests the pairs of edges filed together in the cells of row `r` (of all parts' grids). Two
/// one-piece edges are tested only in the cell holding the lower-left corner of where their
/// boxes overlap, so each such pair once; pairs with a long edge are set aside to be
/// deduplicated.
fn crossings(
    set: &PolygonSet,
    cells: &Cells,
    grids: &[EdgeGrid],
    r: usize,
    here: &mut Vec<Boxed>,
    out: &mut Found,
) {
    for c in 0..cells.nx {
        let cell = r * cells.nx + c;
        here.clear();
        for g in grids {
            here.extend(g.cell(cell).iter().map(|&item| {
                let (min, max) = edge_box(item.a, item.b);
                Boxed { min, max, item }
            }));
        }
        if here.len() < 2 {
            continue;
        }
        here.sort_unstable_by(|p, q| p.min[0].total_cmp(&q.min[0]));
        for (x, e) in here.iter().enumerate() {
            // A sweep from west to east: later items start no further west.
            for f in &here[x + 1..] {
                if f.min[0] > e.max[0] {
                    break;
                }
                if (e.item.owner ^ f.item.owner) & !LONG == 0
                    || e.max[1] < f.min[1]
                    || e.min[1] > f.max[1]
                {
                    continue;
                }
                let corner = [e.min[0].max(f.min[0]), e.min[1].max(f.min[1])];
                let (e, f) = (&e.item, &f.item);
                if (e.owner | f.owner) & LONG != 0 {
                    out.long_pairs
                        .push((e.edge.min(f.edge), e.edge.max(f.edge)));
                    continue;
                }
                if cells.col(corner[0]) != c || cells.row(corner[1]) != r {
                    continue;
                }
                set.test_pair(
                    e.edge as usize,
                    e.a,
                    e.b,
                    f.edge as usize,
                    f.a,
                    f.b,
                    &mut out.events,
                );
            }
        }
    }
}

fn edge_box(c: Coord<f64>, d: Coord<f64>) -> ([f64; 2], [f64; 2]) {
    ([c.x.min(d.x), c.y.min(d.y)], [c.x.max(d.x), c.y.max(d.y)])
}

impl PolygonSet {
    /// The polygons, each marked whether it belongs to the area of a restricted union and
    /// whether its overlap with the area is wanted.
    fn new(polygons: &[Input<'_>], restricted: bool) -> Self {
        let e2 = F * (2.0 - F);
        // Room for the coordinates as given (cut points, rarer, may grow it once).
        let given: usize = polygons
            .iter()
            .map(|p| {
                p.polygon.exterior().0.len()
                    + p.polygon
                        .interiors()
                        .iter()
                        .map(|r| r.0.len())
                        .sum::<usize>()
            })
            .sum();
        let mut set = PolygonSet {
            coords: Vec::with_capacity(given),
            owner: Vec::new(),
            last: Vec::new(),
            lo: [0.0; 2],
            hi: [0.0; 2],
            rings: Vec::with_capacity(polygons.len()),
            shapes: Vec::with_capacity(polygons.len()),
            is_area: Vec::with_capacity(polygons.len()),
            input: Vec::with_capacity(polygons.len()),
            inputs: polygons.len(),
            restricted,
            measure: Vec::with_capacity(polygons.len()),
            inside_area: Vec::with_capacity(polygons.len()),
            large: Vec::new(),
            lon0: 0.0,
            mid: Coord::zero(),
            y0: 0.0,
            e: e2.sqrt(),
            e2,
        };
        let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
        let cut = Cuts::for_inputs(polygons);
        for (index, input) in spatial_order(polygons) {
            let p = input.polygon;
            let first_ring = set.rings.len();
            let first_coord = set.coords.len();
            let mut ok = true;
            for (k, ring) in std::iter::once(p.exterior())
                .chain(p.interiors())
                .enumerate()
            {
                let mut pts: &[Coord<f64>] = &ring.0;
                if pts.len() > 1 && pts[0] == pts[pts.len() - 1] {
                    pts = &pts[..pts.len() - 1];
                }
                if pts.iter().any(|c| !c.x.is_finite() || !c.y.is_finite()) {
                    ok = false;
                    break;
                }
                let twice = shoelace(pts);
                if pts.len() < 3 || twice == 0.0 {
                    if k == 0 {
                        ok = false;
                        break;
                    }
                    continue;
                }
                // Long edges cut by points on their geodesics (the same points for an edge
                // walked either way), then exterior counter-clockwise (positive), holes
                // clockwise, by the winding of the cut ring: a thin triangle whose apex lies
                // between its base's chord and geodesic is wound one way in lon/lat and the
                // other on the ellipsoid.
                let start = set.coords.len();
                for (i, &a) in pts.iter().enumerate() {
                    set.coords.push(a);
                    let b = if i + 1 < pts.len() {
                        pts[i + 1]
                    } else {
                        pts[0]
                    };
                    cut.densify(a, b, &mut set.coords);
                }
                // (Uncut, the ring is `pts` and its shoelace the one above.)
                let cut = if set.coords.len() - start == pts.len() {
                    twice
                } else {
                    shoelace(&set.coords[start..])
                };
                let twice = if cut == 0.0 { twice } else { cut };
                if (twice > 0.0) != (k == 0) {
                    set.coords[start..].reverse();
                }
                // Closed again, so that edges are the coordinate windows.
                set.coords.push(set.coords[start]);
                set.rings.push(start..set.coords.len());
            }
            if !ok {
                set.rings.truncate(first_ring);
                set.coords.truncate(first_coord);
                continue;
            }
            let (mut min, mut max) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
            // Plain comparisons (the coordinates are finite): f64::min's NaN handling costs.
            for c in &set.coords[first_coord..] {
                if c.x < min[0] {
                    min[0] = c.x;
                }
                if c.x > max[0] {
                    max[0] = c.x;
                }
                if c.y < min[1] {
                    min[1] = c.y;
                }
                if c.y > max[1] {
                    max[1] = c.y;
                }
            }
            lo = [lo[0].min(min[0]), lo[1].min(min[1])];
            hi = [hi[0].max(max[0]), hi[1].max(max[1])];
            set.shapes.push(Shape {
                rings: first_ring..set.rings.len(),
                min,
                max,
            });
            set.is_area.push(input.is_area);
            set.measure.push(input.measure);
            set.inside_area.push(input.inside_area);
            set.input.push(index as u32);
        }
        set.owner = vec![0; set.coords.len()];
        set.last = vec![false; set.coords.len()];
        for (k, shape) in set.shapes.iter().enumerate() {
            for r in shape.rings.clone() {
                let ring = set.rings[r].clone();
                set.owner[ring.clone()].fill(k as u32);
                set.last[ring.end - 1] = true;
            }
        }
        if !set.shapes.is_empty() {
            (set.lo, set.hi) = (lo, hi);
            set.mid = Coord {
                x: (lo[0] + hi[0]) / 2.0,
                y: (lo[1] + hi[1]) / 2.0,
            };
            set.lon0 = set.mid.x.to_radians();
            set.y0 = set.authalic_y(((lo[1] + hi[1]) / 2.0).to_radians());
        }
        set
    }

    /// Up to `n` runs of whole shapes with about equal numbers of coordinates.
    fn partition(&self, n: usize) -> Vec<Part> {
        let coord_start = |i: usize| self.rings[self.shapes[i].rings.start].start;
        let total = self.coords.len();
        let mut parts = Vec::with_capacity(n);
        let mut first = 0;
        for p in 1..=n {
            if first >= self.shapes.len() {
                break;
            }
            let mut end = first + 1;
            let target = total * p / n;
            while end < self.shapes.len() && (p == n || coord_start(end) < target) {
                end += 1;
            }
            let edges_end = if end < self.shapes.len() {
                coord_start(end)
            } else {
                total
            };
            parts.push(Part {
                shapes: first..end,
                edges: coord_start(first)..edges_end,
            });
            first = end;
        }
        parts
    }

    /// y of Lambert's cylindrical equal-area projection of the ellipsoid (x = a·λ), in metres:
    /// a·q(φ)/2, so that dx·dy is area.
    fn authalic_y(&self, phi: f64) -> f64 {
        self.authalic_y_of_sin(phi.sin())
    }

    /// The same from sin φ. ln((1 + es)/(1 − es))/2 is atanh(es), summed as its series: es is
    /// below 0.082, so nine terms reach full precision, at a fraction of a logarithm's cost.
    fn authalic_y_of_sin(&self, s: f64) -> f64 {
        let es = self.e * s;
        let x2 = es * es;
        let mut series = 1.0 / 19.0;
        for k in (0..9).rev() {
            series = series * x2 + 1.0 / (2 * k + 1) as f64;
        }
        let atanh = es * series;
        let q = (1.0 - self.e2) * (s / (1.0 - x2) + atanh / self.e);
        A * q / 2.0
    }

    /// Projected position relative to the reference meridian and parallel, and sin φ.
    fn project(&self, c: Coord<f64>) -> [f64; 3] {
        let s = c.y.to_radians().sin();
        [
            A * (c.x.to_radians() - self.lon0),
            self.authalic_y_of_sin(s) - self.y0,
            s,
        ]
    }

    /// Records the crossing of edges e and f (of different shapes) as an event on each.
    #[allow(clippy::too_many_arguments)]
    fn test_pair(
        &self,
        e: usize,
        a: Coord<f64>,
        b: Coord<f64>,
        f: usize,
        c: Coord<f64>,
        d: Coord<f64>,
        out: &mut Vec<Event>,
    ) {
        let (i, j) = (self.owner[e] as usize, self.owner[f] as usize);
        // The depth an event changes: pieces' or the area's.
        let unit = |shape: usize| if self.is_area[shape] { 2 } else { 1 };
        let (oc, od) = (orient(a, b, i, c, j), orient(a, b, i, d, j));
        if oc != od {
            let (oa, ob) = (orient(c, d, j, a, i), orient(c, d, j, b, i));
            if oa != ob {
                // Each edge enters the other's shape when it passes from the other edge's right
                // to its left (interiors lie left of their edges).
                out.push(Event {
                    t: parameter(c, d, a, b),
                    edge: e as u32,
                    change: if oa < 0.0 { unit(j) } else { -unit(j) },
                    other: f as u32,
                });
                out.push(Event {
                    t: parameter(a, b, c, d),
                    edge: f as u32,
                    change: if oc < 0.0 { unit(i) } else { -unit(i) },
                    other: e as u32,
                });
            }
        }
    }

    /// Walks shape `i`'s rings, keeping in `out` the terms of the parts of its edges that bound
    /// the result (outside every other piece; in a restricted union, inside the area, or for the
    /// area's own edges, inside some piece), chained into runs, and its overlap terms.
    fn walk(
        &self,
        i: usize,
        tree: &ShapeGrid,
        events: &EdgeEvents,
        scratch: &mut Scratch,
        out: &mut Walked,
    ) {
        let area_ring = self.is_area[i];
        let st = &mut scratch.state;
        st.own = Sum::default();
        st.measured = self.restricted && !area_ring && self.measure[i];
        for r in self.shapes[i].rings.clone() {
            let ring = self.rings[r].clone();
            let first = ring.start;
            let pts = &self.coords[ring];
            scratch.projected.clear();
            scratch
                .projected
                .extend(pts.iter().map(|c| self.project(*c)));
            // Depths at the ring's first vertex, counted directly.
            st.pieces = 0;
            st.areas = 0;
            st.cover.clear();
            tree.at(self, pts[0], |j| {
                if j == i {
                    return;
                }
                // A piece known to be inside the one area polygon is inside it.
                let known = self.is_area[j] && self.inside_area[i];
                if !known && !self.contains(j, pts[0], i) {
                    return;
                }
                if self.is_area[j] {
                    st.areas += 1;
                } else {
                    st.pieces += 1;
                    if area_ring && self.measure[j] {
                        st.cover_add(j as u32, 1);
                    }
                }
            });
            st.on = self.bounds(area_ring, st);
            if st.on {
                st.chain = new_chain(out);
            }
            let first_chain = st.on.then_some(st.chain);
            for (k, w) in pts.windows(2).enumerate() {
                let edge = first + k;
                let seg = (w[0], w[1], scratch.projected[k], scratch.projected[k + 1]);
                let on = events.of(edge);
                let mut from = 0.0;
                st.bow = f64::NAN;
                if !on.is_empty() {
                    scratch.events.clear();
                    scratch.events.extend_from_slice(on);
                    scratch.events.sort_unstable_by(|x, y| x.0.total_cmp(&y.0));
                    for &(t, change, other) in &scratch.events {
                        if t > from {
                            self.emit(seg, from, t, area_ring, st, out);
                            from = t;
                        }
                        match change {
                            1 | -1 => {
                                st.pieces += change;
                                let j = self.owner[other as usize];
                                if area_ring && self.measure[j as usize] {
                                    st.cover_add(j, change);
                                }
                            }
                            2 | -2 => st.areas += change / 2,
                            _ => continue,
                        }
                        let now = self.bounds(area_ring, st);
                        if now != st.on {
                            if now {
                                st.chain = new_chain(out);
                            }
                            out.ends.push((crossing_key(edge, other), st.chain));
                            st.on = now;
                        }
                    }
                }
                if from < 1.0 {
                    self.emit(seg, from, 1.0, area_ring, st, out);
                }
            }
            if let (true, Some(c)) = (st.on, first_chain) {
                if c != st.chain {
                    out.joins.push((st.chain, c));
                }
            }
        }
        if st.measured {
            out.overlap.push((i as u32, st.own.value()));
        }
    }

    /// Whether the boundary being walked bounds the result at the current depths.
    fn bounds(&self, area_ring: bool, st: &WalkState) -> bool {
        if !self.restricted {
            st.pieces == 0
        } else if area_ring {
            st.pieces > 0 && st.areas == 0
        } else {
            st.pieces == 0 && st.areas > 0
        }
    }

    /// Keeps the term of the part t0..t1 of an edge where it bounds the result or overlaps.
    fn emit(
        &self,
        (a, b, pa, pb): (Coord<f64>, Coord<f64>, [f64; 3], [f64; 3]),
        t0: f64,
        t1: f64,
        area_ring: bool,
        st: &mut WalkState,
        out: &mut Walked,
    ) {
        let inside = self.restricted
            && if area_ring {
                st.cover.iter().any(|c| c.1 > 0)
            } else {
                st.measured && st.areas > 0
            };
        if !st.on && !inside {
            return;
        }
        let g = self.term(a, b, pa, pb, &mut st.bow, t0, t1);
        if st.on {
            let c = &mut out.chains[st.chain as usize];
            c.g.add(g);
            c.p.add(self.planar_term(a, b, t0, t1));
        }
        if inside {
            if area_ring {
                for &(j, n) in &st.cover {
                    if n > 0 {
                        out.overlap.push((j, g));
                    }
                }
            } else {
                st.own.add(g);
            }
        }
    }

    /// The part `t0..t1` of edge a→b's term of the shoelace formula in the lon/lat plane, the
    /// plane where crossings are found: their sum over a ring is its planar area, whose sign
    /// tells an outer ring from a hole however thin the ring is. (Not the projected chords': a
    /// straight lon/lat edge is curved in the projection, by decimetres on a kilometre edge, so
    /// a centimetre-wide sliver's projected chords can wind the other way.)
    fn planar_term(&self, a: Coord<f64>, b: Coord<f64>, t0: f64, t1: f64) -> f64 {
        let (a, b) = (a - self.mid, b - self.mid);
        let lerp = |t: f64| a + (b - a) * t;
        let (p, q) = if t0 == 0.0 && t1 == 1.0 {
            (a, b)
        } else {
            (lerp(t0), lerp(t1))
        };
        -(q.x - p.x) * (p.y + q.y) / 2.0
    }

    /// The term of the part `t0..t1` of edge a→b: the signed area between it and the reference
    /// parallel, positive for westward parts (so counter-clockwise rings sum to their area).
    ///
    /// The part is the projected chord's part plus its share of the whole geodesic's bow away
    /// from the chord, shared out as a parabola's (3t² − 2t³): so the parts of an edge always sum
    /// to the whole edge's term, and a polygon's area does not change where other polygons cut
    /// its edges (a cut point moves only north or south, which adds no area to a parallel).
    /// `bow` caches the edge's bow (NaN until first needed).
    #[allow(clippy::too_many_arguments)]
    fn term(
        &self,
        a: Coord<f64>,
        b: Coord<f64>,
        pa: [f64; 3],
        pb: [f64; 3],
        bow: &mut f64,
        t0: f64,
        t1: f64,
    ) -> f64 {
        let lerp = |t: f64| [pa[0] + t * (pb[0] - pa[0]), pa[1] + t * (pb[1] - pa[1])];
        let (p, q) = (lerp(t0), lerp(t1));
        let chord = -(q[0] - p[0]) * (p[1] + q[1]) / 2.0;
        if bow.is_nan() {
            *bow = self.bow(a, b, pa, pb);
        }
        if t0 == 0.0 && t1 == 1.0 {
            return chord - *bow;
        }
        let share = |t: f64| t * t * (3.0 - 2.0 * t);
        chord - *bow * (share(t1) - share(t0))
    }

    /// The area between edge a→b's projected chord and its geodesic, signed like the terms.
    fn bow(&self, a: Coord<f64>, b: Coord<f64>, pa: [f64; 3], pb: [f64; 3]) -> f64 {
        let chord = -(pb[0] - pa[0]) * (pa[1] + pb[1]) / 2.0;
        if !is_long(a, b) {
            // The geodesic bows poleward of the projected chord: with λ, φ in radians and
            // y = sin φ on the sphere, the great circle has y'' = −sin φ (3φ'² + cos² φ), and the
            // area between a curve and its chord is −y''Δλ³/12.
            let (dl, dp) = ((b.x - a.x).to_radians(), (b.y - a.y).to_radians());
            // sin φ at the middle of the edge, interpolated (the bow is a tiny correction).
            let sin = (pa[2] + pb[2]) / 2.0;
            let cos2 = 1.0 - sin * sin;
            return A * A * sin * (3.0 * dp * dp * dl + cos2 * dl * dl * dl) / 12.0;
        }
        // −S12 is the geodesic's term measured from the equator; move its reference to the
        // projection's parallel.
        let dx = A * (b.x - a.x).to_radians();
        chord - (dx * self.y0 - geodesic_s12(a, b))
    }

    /// Whether vertex `v` of shape `owner` lies inside shape `j`, both moved as described in the
    /// module documentation (so `v` is never on `j`'s boundary).
    fn contains(&self, j: usize, v: Coord<f64>, owner: usize) -> bool {
        let s = &self.shapes[j];
        if v.x < s.min[0] || v.x > s.max[0] || v.y < s.min[1] || v.y > s.max[1] {
            return false;
        }
        // "Above" with ties broken by the vertical part of the move (index order).
        let above = |p: Coord<f64>| p.y > v.y || (p.y == v.y && j > owner);
        // Whether the horizontal ray east of v crosses edge c→d, given which ends are above.
        let crosses_above = |c: Coord<f64>, d: Coord<f64>, ca: bool, da: bool| {
            if ca == da {
                return false;
            }
            // An edge wholly west (east) of v meets v's parallel west (east) of it: v lies
            // strictly right (left) of it, so the exact sign below is known without it.
            if c.x < v.x && d.x < v.x {
                return false;
            }
            if c.x > v.x && d.x > v.x {
                return true;
            }
            let (lo, hi) = if ca { (d, c) } else { (c, d) };
            // The horizontal ray to the east crosses the edge iff v is left of lo→hi.
            orient(lo, hi, j, v, owner) > 0.0
        };
        let crosses = |k: usize| {
            let (c, d) = (self.coords[k], self.coords[k + 1]);
            crosses_above(c, d, above(c), above(d))
        };
        if let Some(Some(index)) = self.large.get(j) {
            // Only edges whose boxes reach the ray east of v can cross it.
            let ray = rstar::AABB::from_corners([v.x, v.y], [s.max[0], v.y]);
            return index
                .locate_in_envelope_intersecting(&ray)
                .filter(|e| crosses(e.data as usize))
                .count()
                % 2
                == 1;
        }
        let mut inside = false;
        for r in s.rings.clone() {
            // Each vertex's side once: it ends one edge and starts the next.
            let ring = &self.coords[self.rings[r].clone()];
            let Some((&first, rest)) = ring.split_first() else {
                continue;
            };
            let (mut c, mut ca) = (first, above(first));
            for &d in rest {
                let da = above(d);
                if crosses_above(c, d, ca, da) {
                    inside = !inside;
                }
                (c, ca) = (d, da);
            }
        }
        inside
    }

    /// Indexes the edges of shapes with many of them, so that a point-in-shape test reads only
    /// the edges near its ray.
    fn index_large_shapes(&mut self) {
        const LARGE: usize = 256;
        self.large = self
            .shapes
            .iter()
            .map(|s| {
                let rings = &self.rings[s.rings.clone()];
                let n: usize = rings.iter().map(|r| r.len()).sum();
                (n > LARGE).then(|| {
                    RTree::bulk_load(
                        rings
                            .iter()
                            .flat_map(|r| r.start..r.end - 1)
                            .map(|k| {
                                let (a, b) = (self.coords[k], self.coords[k + 1]);
                                GeomWithData::new(
                                    Rectangle::from_corners([a.x, a.y], [b.x, b.y]),
                                    k as u32,
                                )
                            })
                            .collect(),
                    )
                })
            })
            .collect();
    }
}

fn new_chain(out: &mut Walked) -> u32 {
    out.chains.push(Chain::default());
    (out.chains.len() - 1) as u32
}

/// The polygons in Z-order of their first vertex, so neighbours on the ground are neighbours in
/// memory and in the work each thread takes.
fn spatial_order<'a>(polygons: &'a [Input<'a>]) -> impl Iterator<Item = (usize, Input<'a>)> + 'a {
    let first = |p: &Polygon<f64>| p.exterior().0.first().copied();
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for c in polygons.iter().filter_map(|p| first(p.polygon)) {
        if c.x.is_finite() && c.y.is_finite() {
            lo = [lo[0].min(c.x), lo[1].min(c.y)];
            hi = [hi[0].max(c.x), hi[1].max(c.y)];
        }
    }
    let scale = |v: f64, l: f64, h: f64| {
        let s = if h > l { (v - l) / (h - l) } else { 0.0 };
        if s.is_finite() {
            (s.clamp(0.0, 1.0) * 65535.0) as u32
        } else {
            0
        }
    };
    let spread = |mut v: u32| {
        v = (v | (v << 8)) & 0x00FF_00FF;
        v = (v | (v << 4)) & 0x0F0F_0F0F;
        v = (v | (v << 2)) & 0x3333_3333;
        (v | (v << 1)) & 0x5555_5555
    };
    let mut keyed: Vec<(u32, usize)> = polygons
        .iter()
        .enumerate()
        .map(|(k, p)| {
            let c = first(p.polygon).unwrap_or_default();
            let key = spread(scale(c.x, lo[0], hi[0])) | (spread(scale(c.y, lo[1], hi[1])) << 1);
            (key, k)
        })
        .collect();
    keyed.sort_unstable();
    keyed.into_iter().map(move |(_, k)| (k, polygons[k]))
}

/// Twice the signed planar area of a ring without its closing vertex.
fn shoelace(pts: &[Coord<f64>]) -> f64 {
    let (Some(&first), Some(&last)) = (pts.first(), pts.last()) else {
        return 0.0;
    };
    // The same terms in the same order as indexing k and (k + 1) mod n, without the division.
    let cross = |p: Coord<f64>, q: Coord<f64>| p.x * q.y - q.x * p.y;
    pts.windows(2)
        .map(|w| cross(w[0], w[1]))
        .chain(std::iter::once(cross(last, first)))
        .sum()
}

/// Sign (as ±1.0) of the orientation of point `p` (of shape `ps`) relative to the directed edge
/// a→b (of shape `es`), exact, with ties broken by moving shape k by k·(ε, ε²): positive when `p`
/// lies to the left.
fn orient(a: Coord<f64>, b: Coord<f64>, es: usize, p: Coord<f64>, ps: usize) -> f64 {
    let o = robust::orient2d(
        robust::Coord { x: a.x, y: a.y },
        robust::Coord { x: b.x, y: b.y },
        robust::Coord { x: p.x, y: p.y },
    );
    if o != 0.0 {
        return o.signum();
    }
    // p + k(ε, ε²) with k = ps − es: cross(b − a, k(ε, ε²)) = k(ux·ε² − uy·ε).
    let k = if ps > es { 1.0 } else { -1.0 };
    let (ux, uy) = (b.x - a.x, b.y - a.y);
    if uy != 0.0 {
        -k * uy.signum()
    } else {
        k * ux.signum()
    }
}

/// The parameter along a→b where it meets the line through c→d, from the unmoved (limit)
/// positions, for edges known to cross.
fn parameter(c: Coord<f64>, d: Coord<f64>, a: Coord<f64>, b: Coord<f64>) -> f64 {
    let cross = |p: Coord<f64>, q: Coord<f64>, r: Coord<f64>| {
        (q.x - p.x) * (r.y - p.y) - (q.y - p.y) * (r.x - p.x)
    };
    let (da, db) = (cross(c, d, a), cross(c, d, b));
    let denom = da - db;
    let t = if denom == 0.0 { 0.5 } else { da / denom };
    t.clamp(0.0, 1.0)
}

/// How far (m) a chord of the union may stray from its edge's geodesic: every edge whose
/// lon/lat chord may lie further from its geodesic is cut by points on that geodesic into
/// pieces short enough (see [`Cuts::densify`]). 0.03 mm, a third of what PostGIS's overlay of
/// rings densified every 100 m (the oracle's geodesic figure) leaves, and above the bound of
/// the edges of small parcels (45 m at 30°N), which are then not cut at all.
pub const CHORD_GAP_M: f64 = 3e-5;

/// Points added to one union at most: beyond, every edge is cut into proportionally fewer pieces
/// (the same for all, so neighbours still share their points), which bounds the memory and work
/// of a drawn polygon with thousands of edges across the county.
const MAX_CUTS: f64 = 2e6;

/// The WGS84 geodesic, built once (its series coefficients cost a few hundred operations).
fn wgs84() -> &'static Geodesic {
    static G: std::sync::OnceLock<Geodesic> = std::sync::OnceLock::new();
    G.get_or_init(Geodesic::wgs84)
}

/// How finely one union's long edges are cut.
struct Cuts {
    /// The square of the share of the pieces [`CHORD_GAP_M`] asks for that are made (1 unless
    /// over [`MAX_CUTS`]).
    scale2: f64,
    /// Settles without trigonometry the many edges far too short to be cut.
    screen: ChordGapScreen,
}

impl Cuts {
    fn for_inputs(polygons: &[Input<'_>]) -> Self {
        Cuts::within(polygons, MAX_CUTS)
    }

    /// [`Cuts::for_inputs`] with at most `max_cuts` points added in all.
    fn within(polygons: &[Input<'_>], max_cuts: f64) -> Self {
        let rings = || {
            polygons
                .iter()
                .flat_map(|p| std::iter::once(p.polygon.exterior()).chain(p.polygon.interiors()))
        };
        let screen = ChordGapScreen::over(rings().flat_map(|r| r.0.iter().copied()), CHORD_GAP_M);
        let mut wanted = 0.0;
        for ring in rings() {
            for w in ring.0.windows(2) {
                if screen.surely_within(w[0], w[1]) {
                    continue;
                }
                let gap = super::area::chord_gap_bound_m(w[0], w[1]);
                if gap > CHORD_GAP_M {
                    wanted += (gap / CHORD_GAP_M).sqrt();
                }
            }
        }
        let share = if wanted > max_cuts {
            max_cuts / wanted
        } else {
            1.0
        };
        Cuts {
            scale2: share * share,
            screen,
        }
    }

    /// Pushes the points that cut edge a→b (a and b excluded) into pieces whose chords lie
    /// within [`CHORD_GAP_M`] of the geodesic, so that the crossings and containment found on
    /// chords in the lon/lat plane are those of the geodesic edges that `ST_Area(geography)`
    /// measures (a vertex a millimetre from a long edge lies on the same side of both). The
    /// points lie on the geodesic (GeographicLib, equal arcs), so each piece's geodesic is part
    /// of the edge's and a polygon's area does not change. They are computed from the lesser
    /// endpoint whichever way the edge is walked, so two polygons sharing an edge share its
    /// points bit for bit and still tile exactly.
    fn densify(&self, a: Coord<f64>, b: Coord<f64>, out: &mut Vec<Coord<f64>>) {
        use geographiclib_rs::capability::{LATITUDE, LONGITUDE, LONG_UNROLL};
        use geographiclib_rs::{GeodesicLine, InverseGeodesic};
        if self.screen.surely_within(a, b) {
            return;
        }
        let gap = super::area::chord_gap_bound_m(a, b);
        if gap <= CHORD_GAP_M || gap.is_nan() {
            return;
        }
        let n = (gap * self.scale2 / CHORD_GAP_M).sqrt().ceil();
        if n.is_nan() || n < 2.0 {
            return;
        }
        let n = n as usize;
        let flip = a.x.total_cmp(&b.x).then(a.y.total_cmp(&b.y)) == std::cmp::Ordering::Greater;
        let (p, q) = if flip { (b, a) } else { (a, b) };
        let start = out.len();
        if short_for_normals(p, q) {
            // Points of the straight line through the ellipsoid, each put back on the surface
            // along its normal: on the geodesic to within e²L³/R² (2e-7 m at 1 km), at a
            // twentieth of GeographicLib's cost.
            let (u, v) = (ecef(p), ecef(q));
            out.extend((1..n).map(|k| {
                let t = k as f64 / n as f64;
                surface([
                    u[0] + t * (v[0] - u[0]),
                    u[1] + t * (v[1] - u[1]),
                    u[2] + t * (v[2] - u[2]),
                ])
            }));
        } else {
            let g = wgs84();
            let (_s12, azi1, _azi2, a12): (f64, f64, f64, f64) = g.inverse(p.y, p.x, q.y, q.x);
            let mask = LATITUDE | LONGITUDE | LONG_UNROLL;
            let line = GeodesicLine::new(g, p.y, p.x, azi1, Some(mask), None, None);
            out.extend((1..n).map(|k| {
                let (_, lat, lon, ..) = line._gen_position(true, a12 * k as f64 / n as f64, mask);
                Coord { x: lon, y: lat }
            }));
        }
        if flip {
            out[start..].reverse();
        }
    }
}

/// Whether an edge is short enough (under about 1 km) for [`ecef`] and [`surface`] to put
/// points on its geodesic.
fn short_for_normals(a: Coord<f64>, b: Coord<f64>) -> bool {
    const LIMIT_DEG: f64 = 0.009;
    (b.x - a.x).abs() * a.y.to_radians().cos().max(b.y.to_radians().cos()) < LIMIT_DEG
        && (b.y - a.y).abs() < LIMIT_DEG
}

/// Earth-centred Cartesian coordinates (m) of a lon/lat point on the WGS84 ellipsoid.
fn ecef(c: Coord<f64>) -> [f64; 3] {
    let e2 = F * (2.0 - F);
    let (sl, cl) = c.x.to_radians().sin_cos();
    let (sp, cp) = c.y.to_radians().sin_cos();
    let n = A / (1.0 - e2 * sp * sp).sqrt();
    [n * cp * cl, n * cp * sl, n * (1.0 - e2) * sp]
}

/// The lon/lat of the surface point whose normal passes through `x` (near the surface).
fn surface(x: [f64; 3]) -> Coord<f64> {
    let e2 = F * (2.0 - F);
    let p = x[0].hypot(x[1]);
    let mut phi = x[2].atan2(p * (1.0 - e2));
    for _ in 0..3 {
        let (sp, cp) = phi.sin_cos();
        let n = A / (1.0 - e2 * sp * sp).sqrt();
        let h = if cp.abs() > 1e-9 {
            p / cp - n
        } else {
            x[2].abs() / sp.abs() - n * (1.0 - e2)
        };
        phi = x[2].atan2(p * (1.0 - e2 * n / (n + h)));
    }
    Coord {
        x: x[1].atan2(x[0]).to_degrees(),
        y: phi.to_degrees(),
    }
}

/// Whether an edge's term is the geodesic one (see [`SHORT_DEG`]).
fn is_long(a: Coord<f64>, b: Coord<f64>) -> bool {
    (b.x - a.x).abs() > SHORT_DEG || (b.y - a.y).abs() > SHORT_DEG
}

/// Karney's S12 for the geodesic p→q (lon/lat degrees) on WGS84: the signed area between it and
/// the equator, in GeographicLib's convention (clockwise rings sum positive).
fn geodesic_s12(p: Coord<f64>, q: Coord<f64>) -> f64 {
    use geographiclib_rs::capability::AREA;
    let out = wgs84()._gen_inverse(p.y, p.x, q.y, q.x, AREA);
    out.9
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use geo::{coord, Area, BooleanOps, GeodesicArea, LineString, MultiPolygon, Rect};
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> Polygon<f64> {
        Rect::new(coord! {x: x0, y: y0}, coord! {x: x1, y: y1}).to_polygon()
    }

    /// The points one union's edges get, with at most `max_cuts` of them.
    fn cut_points(polygons: &[Polygon<f64>], max_cuts: f64) -> (f64, Vec<Coord<f64>>) {
        let inputs: Vec<Input<'_>> = polygons
            .iter()
            .map(|p| Input::piece(p, PieceHint::default()))
            .collect();
        let cuts = Cuts::within(&inputs, max_cuts);
        let mut out = Vec::new();
        for p in polygons {
            for w in p.exterior().0.windows(2) {
                cuts.densify(w[0], w[1], &mut out);
            }
        }
        (cuts.scale2, out)
    }

    /// The union's budget: past it every long edge gets proportionally fewer points, in all no
    /// more than the budget, and still on the edges' geodesics. (Run with a budget of 6,000;
    /// the union's own is 2,000,000, the same code.)
    #[test]
    fn cut_points_stay_within_the_budget() {
        // Strips 0.4° wide at 30°N: each east–west edge's chord may stray ~22 m from its
        // geodesic, so it wants ~sqrt(22 m / 0.03 mm) ≈ 850 points; the meridian edges none.
        let strips: Vec<Polygon<f64>> = (0..10)
            .map(|k| {
                let y = 30.0 + k as f64 * 0.01;
                rect(105.0, y, 105.4, y + 0.005)
            })
            .collect();
        let (scale2, free) = cut_points(&strips, f64::INFINITY);
        assert_eq!(scale2, 1.0);
        let wanted = free.len();
        assert!(
            (10_000..20_000).contains(&wanted),
            "{wanted} points without a budget"
        );
        let budget = 6_000.0;
        let (scale2, cut) = cut_points(&strips, budget);
        let share = scale2.sqrt();
        assert!(
            (share - budget / wanted as f64).abs() < 0.01,
            "share {share} of {wanted}"
        );
        // Each edge's points: ceil(share × wanted) − 1 ≤ share × wanted, so in all ≤ budget.
        assert!(
            cut.len() as f64 <= budget && cut.len() as f64 > 0.95 * budget,
            "{} points within a budget of {budget}",
            cut.len()
        );
        // Each added point lies on its edge's geodesic: its distance to the edge's ends adds
        // up to the edge's length.
        let g = wgs84();
        for p in &strips {
            for w in p.exterior().0.windows(2) {
                let mut pts = Vec::new();
                Cuts::within(&[Input::piece(p, PieceHint::default())], budget / 10.0)
                    .densify(w[0], w[1], &mut pts);
                let whole: f64 =
                    geographiclib_rs::InverseGeodesic::inverse(g, w[0].y, w[0].x, w[1].y, w[1].x);
                for q in pts {
                    let a: f64 =
                        geographiclib_rs::InverseGeodesic::inverse(g, w[0].y, w[0].x, q.y, q.x);
                    let b: f64 =
                        geographiclib_rs::InverseGeodesic::inverse(g, q.y, q.x, w[1].y, w[1].x);
                    assert!(
                        (a + b - whole).abs() < 1e-6,
                        "{q:?} off the geodesic by {} m",
                        a + b - whole
                    );
                }
            }
        }
    }

    /// The independent answer: an overlay union (i_overlay through geo), then geo's geodesic area.
    ///
    /// The union of geodesic polygons: each edge is replaced by points on its geodesic at most
    /// 1e-4° apart, so the overlay's straight edges follow the geodesics, and the result is
    /// measured densified ring by ring.
    fn by_overlay(polys: &[Polygon<f64>]) -> f64 {
        let oriented: Vec<Polygon<f64>> = polys
            .iter()
            .map(|p| geodesic_densified(&geo::Orient::orient(p, geo::orient::Direction::Default)))
            .collect();
        measured(&geo::unary_union(oriented.iter()))
    }

    /// [`by_overlay`] of the polygons' union clipped to `area`.
    pub(crate) fn by_overlay_within(polys: &[Polygon<f64>], area: &Polygon<f64>) -> f64 {
        let oriented = |p: &Polygon<f64>| {
            geodesic_densified(&geo::Orient::orient(p, geo::orient::Direction::Default))
        };
        let pieces: Vec<Polygon<f64>> = polys.iter().map(oriented).collect();
        let union = geo::unary_union(pieces.iter());
        measured(&union.intersection(&MultiPolygon(vec![oriented(area)])))
    }

    /// The polygon with points added along each geodesic edge, at most 1e-4° apart.
    fn geodesic_densified(p: &Polygon<f64>) -> Polygon<f64> {
        use geographiclib_rs::{DirectGeodesic, InverseGeodesic};
        let g = Geodesic::wgs84();
        let ring = |r: &LineString<f64>| {
            let mut out = Vec::new();
            for l in r.lines() {
                let n = ((l.dx().abs().max(l.dy().abs())) / 1e-4).ceil().max(1.0) as usize;
                let (s12, azi1, _, _): (f64, f64, f64, f64) =
                    g.inverse(l.start.y, l.start.x, l.end.y, l.end.x);
                out.push(l.start);
                out.extend((1..n).map(|k| {
                    let (lat, lon): (f64, f64) =
                        g.direct(l.start.y, l.start.x, azi1, s12 * k as f64 / n as f64);
                    coord! {x: lon, y: lat}
                }));
            }
            out.push(out[0]);
            LineString(out)
        };
        Polygon::new(ring(p.exterior()), p.interiors().iter().map(ring).collect())
    }

    fn close(a: f64, b: f64, rel: f64) {
        assert!(
            (a - b).abs() <= rel * b.abs().max(1.0),
            "{a} vs {b}: relative difference {:e}",
            (a - b).abs() / b.abs()
        );
    }

    fn star(rng: &mut SmallRng, cx: f64, cy: f64, r: f64) -> Polygon<f64> {
        let mut ring: Vec<Coord<f64>> = (0..19)
            .map(|k| {
                let a = k as f64 / 19.0 * std::f64::consts::TAU;
                let rr = r * rng.gen_range(0.6..1.0);
                coord! {x: cx + rr * a.cos(), y: cy + rr * a.sin()}
            })
            .collect();
        ring.push(ring[0]);
        Polygon::new(LineString(ring), vec![])
    }

    #[test]
    fn a_single_polygon_is_its_geodesic_area() {
        // Short edges (projection term) and long ones (geodesic term) alike.
        for p in [
            rect(106.0, 29.0, 106.0005, 29.0004),
            rect(105.0, 28.0, 107.0, 30.5),
            rect(106.0, 29.0, 106.01, 29.01),
            // Long and short edges in one ring.
            Polygon::new(
                LineString::from(vec![
                    (106.0, 29.0),
                    (106.3, 29.0),
                    (106.3005, 29.0004),
                    (106.3, 29.2),
                    (106.0002, 29.2),
                    (106.0, 29.0),
                ]),
                vec![],
            ),
        ] {
            close(
                union_area_m2(std::slice::from_ref(&p)),
                p.geodesic_area_unsigned(),
                1e-9,
            );
        }
    }

    #[test]
    fn random_overlapping_stars_agree_with_an_overlay_union() {
        let mut rng = SmallRng::seed_from_u64(11);
        for round in 0..6 {
            let n = [2, 10, 50, 300, 1000, 3000][round];
            let polys: Vec<Polygon<f64>> = (0..n)
                .map(|_| {
                    let cx = 106.5 + rng.gen_range(-0.02..0.02);
                    let cy = 29.5 + rng.gen_range(-0.02..0.02);
                    let r = rng.gen_range(0.0005..0.004);
                    let mut p = star(&mut rng, cx, cy, r);
                    if rng.gen_bool(0.3) {
                        // Clockwise input counts the same.
                        p.exterior_mut(|r| r.0.reverse());
                    }
                    p
                })
                .collect();
            close(union_area_m2(&polys), by_overlay(&polys), 1e-8);
        }
    }

    #[test]
    fn pieces_known_inside_the_area_give_the_same_answer() {
        // Stars over a rectangle's edge and well inside it: telling the union which lie inside
        // (as coverage does from their boxes) changes nothing, to the bit.
        let mut rng = SmallRng::seed_from_u64(21);
        let area = [rect(106.49, 29.49, 106.51, 29.51)];
        let polys: Vec<Polygon<f64>> = (0..2500)
            .map(|_| {
                let cx = 106.5 + rng.gen_range(-0.012..0.012);
                let cy = 29.5 + rng.gen_range(-0.012..0.012);
                let r = rng.gen_range(0.0003..0.002);
                star(&mut rng, cx, cy, r)
            })
            .collect();
        let inside: Vec<bool> = polys
            .iter()
            .map(|p| {
                let b = geo::BoundingRect::bounding_rect(p).unwrap();
                b.min().x > 106.49 && b.max().x < 106.51 && b.min().y > 29.49 && b.max().y < 29.51
            })
            .collect();
        assert!(inside.iter().filter(|&&i| i).count() > 1000);
        assert!(inside.iter().filter(|&&i| !i).count() > 300);
        let hinted = |k: usize| PieceHint {
            measure: true,
            inside_area: inside[k],
        };
        let with = union_area_within_measuring_m2(&polys, &hinted, &area, &|| false).unwrap();
        let without = union_area_within_m2(&polys, &area, &|| false).unwrap();
        assert_eq!(with, without);
        close(with.area_m2, by_overlay_within(&polys, &area[0]), 1e-8);
    }

    #[test]
    fn long_edges_across_many_parcels_in_the_threaded_path() {
        // Over 20,000 vertices (so the work is split between threads), with long geodesic
        // edges crossing hundreds of small parcels and each other.
        let mut rng = SmallRng::seed_from_u64(5);
        let mut polys: Vec<Polygon<f64>> = (0..1500)
            .map(|_| {
                let (cx, cy) = (
                    106.5 + rng.gen_range(-0.03..0.03),
                    29.5 + rng.gen_range(-0.03..0.03),
                );
                let r = rng.gen_range(0.0003..0.002);
                star(&mut rng, cx, cy, r)
            })
            .collect();
        polys.push(rect(106.48, 29.47, 106.52, 29.49));
        polys.push(Polygon::new(
            LineString::from(vec![
                (106.46, 29.46),
                (106.54, 29.5),
                (106.47, 29.53),
                (106.46, 29.46),
            ]),
            vec![],
        ));
        polys.push(rect(106.49, 29.45, 106.5, 29.55));
        // (Geodesics cross a little away from where their chords do: 4 km edges at shallow
        // angles across hundreds of parcels move about a square metre.)
        close(union_area_m2(&polys), by_overlay(&polys), 1e-7);
    }

    #[test]
    fn shared_edges_duplicates_and_touching_corners() {
        // A 4×3 tiling of 0.001° squares: shared edges and shared corners everywhere.
        let mut tiles = Vec::new();
        for i in 0..4 {
            for j in 0..3 {
                let (x, y) = (106.0 + i as f64 * 0.001, 29.0 + j as f64 * 0.001);
                tiles.push(rect(x, y, x + 0.001, y + 0.001));
            }
        }
        let whole = rect(106.0, 29.0, 106.004, 29.003).geodesic_area_unsigned();
        close(union_area_m2(&tiles), whole, 1e-9);
        // Every tile twice, in both windings.
        let mut twice = tiles.clone();
        twice.extend(tiles.iter().map(|p| {
            let mut q = p.clone();
            q.exterior_mut(|r| r.0.reverse());
            q
        }));
        close(union_area_m2(&twice), whole, 1e-9);
        // Two squares meeting at one corner, and one nested inside another.
        let a = rect(106.0, 29.0, 106.002, 29.002);
        let b = rect(106.002, 29.002, 106.004, 29.004);
        let inner = rect(106.0005, 29.0005, 106.001, 29.001);
        close(
            union_area_m2(&[a.clone(), b.clone(), inner]),
            a.geodesic_area_unsigned() + b.geodesic_area_unsigned(),
            1e-9,
        );
    }

    #[test]
    fn collinear_overlaps_and_vertices_on_edges() {
        // Rectangles sharing parts of edges, a vertex of one on another's edge, and a bow of
        // long (geodesic) edges.
        let polys = [
            rect(106.0, 29.0, 106.003, 29.002),
            rect(106.001, 29.002, 106.005, 29.003),
            rect(106.003, 29.0005, 106.004, 29.002),
            rect(106.002, 28.999, 106.0035, 29.0),
            Polygon::new(
                LineString::from(vec![
                    (106.0015, 29.001),
                    (106.0045, 29.0025),
                    (106.002, 29.004),
                    (106.0015, 29.001),
                ]),
                vec![],
            ),
            rect(105.9, 28.99, 106.0, 29.1),
        ];
        // Every subset: collinear edges of different lengths bow differently, so their
        // geodesics part where their chords overlap (rectangles 0 and 3, 1 and 2), and the
        // geodesic edges' union differs from the chords' by about 2.5e-7.
        for mask in 1u32..1 << polys.len() {
            let some: Vec<Polygon<f64>> = (0..polys.len())
                .filter(|k| mask & (1 << k) != 0)
                .map(|k| polys[k].clone())
                .collect();
            close(union_area_m2(&some), by_overlay(&some), 1e-8);
        }
    }

    #[test]
    fn a_vertex_between_a_long_edges_chord_and_its_geodesic_is_inside() {
        // A 0.05° (4.8 km) east-west edge at 29.5°N whose geodesic bows about 0.26 m north of
        // its chord, and a triangle from the north whose tip reaches 0.1 m north of the chord's
        // middle: outside the chord, inside the geodesic. As ST_Area(geography) measures the
        // edges, the two overlap (a sliver 0.16 m deep), and each alone keeps its area.
        let (x0, x1, y) = (106.0, 106.05, 29.5);
        let block = Polygon::new(
            LineString::from(vec![
                (x0, y - 0.01),
                (x1, y - 0.01),
                (x1, y),
                (x0, y),
                (x0, y - 0.01),
            ]),
            vec![],
        );
        // How far north of the chord's middle the geodesic passes (GeographicLib).
        let bow_m = {
            use geographiclib_rs::{DirectGeodesic, InverseGeodesic};
            let g = Geodesic::wgs84();
            let (s12, azi1, _, _): (f64, f64, f64, f64) = g.inverse(y, x0, y, x1);
            let (lat, _): (f64, f64) = g.direct(y, x0, azi1, s12 / 2.0);
            (lat - y) * 110_850.0
        };
        assert!((0.2..0.3).contains(&bow_m), "{bow_m}");
        let tip = 0.1 / 110_850.0;
        for (west, east) in [(106.02, 106.03), (106.0249, 106.0251)] {
            let wedge = Polygon::new(
                LineString::from(vec![
                    ((x0 + x1) / 2.0, y + tip),
                    (east, y + 0.001),
                    (west, y + 0.001),
                    ((x0 + x1) / 2.0, y + tip),
                ]),
                vec![],
            );
            // The overlap: a triangle as deep as the geodesic passes above the tip, as wide
            // there as the wedge (the geodesic is flat to 1e-7 m across it).
            let widening = (east - west) * 111_320.0 * y.to_radians().cos() / (0.001 * 110_850.0);
            let deep = bow_m - 0.1;
            let overlap = widening * deep * deep / 2.0;
            let alone = union_area_m2(std::slice::from_ref(&block))
                + union_area_m2(std::slice::from_ref(&wedge));
            let both = [block.clone(), wedge.clone()];
            let union = union_area_m2(&both);
            assert!(
                ((alone - union) - overlap).abs() < 0.03 * overlap,
                "{union} vs {alone}: overlap {} m², expected {overlap}",
                alone - union
            );
            close(union, by_overlay(&both), 1e-8);
            // (1e-8: the narrow wedge is 1,000 m², and the bows of its cut 37 m pieces are
            // summed by the spherical series, 3e-6 m² off GeographicLib in all.)
            for one in [block.clone(), wedge] {
                close(
                    union_area_m2(std::slice::from_ref(&one)),
                    geographiclib_signed(&one).abs(),
                    1e-8,
                );
            }
        }
    }

    #[test]
    fn points_put_back_on_the_surface_lie_on_the_geodesic() {
        // Random edges up to the limit of `short_for_normals`: each point the cheap way lies
        // within 1e-6 m of GeographicLib's geodesic (measured from the geodesic's point at the
        // same distance from the start, which is where the nearest lies to second order).
        use geographiclib_rs::{DirectGeodesic, InverseGeodesic};
        let g = Geodesic::wgs84();
        let mut rng = SmallRng::seed_from_u64(5);
        let mut worst: f64 = 0.0;
        for _ in 0..2_000 {
            let a = coord! {x: rng.gen_range(73.0..135.0), y: rng.gen_range(3.0..54.0)};
            let (lat2, lon2): (f64, f64) = g.direct(
                a.y,
                a.x,
                rng.gen_range(-180.0..180.0),
                rng.gen_range(10.0..1_500.0),
            );
            let b = coord! {x: lon2, y: lat2};
            if !short_for_normals(a, b) {
                continue;
            }
            let (s12, azi1, _, _): (f64, f64, f64, f64) = g.inverse(a.y, a.x, b.y, b.x);
            let (u, v) = (ecef(a), ecef(b));
            for t in [0.25, 0.5, 0.75] {
                let c = surface([
                    u[0] + t * (v[0] - u[0]),
                    u[1] + t * (v[1] - u[1]),
                    u[2] + t * (v[2] - u[2]),
                ]);
                let s: f64 = g.inverse(a.y, a.x, c.y, c.x);
                let (lat, lon): (f64, f64) = g.direct(a.y, a.x, azi1, s);
                let off: f64 = g.inverse(lat, lon, c.y, c.x);
                worst = worst.max(off);
                assert!(s > 0.0 && s < s12);
            }
        }
        assert!(worst < 1e-6, "{worst} m off the geodesic");
        // Back on the surface: a vertex goes back to itself.
        let c = coord! {x: 106.123456789, y: 29.987654321};
        let back = surface(ecef(c));
        assert!(
            (back.x - c.x).abs() < 1e-13 && (back.y - c.y).abs() < 1e-13,
            "{back:?}"
        );
    }

    #[test]
    fn neighbours_sharing_a_long_edge_tile_exactly_whichever_way_they_walk_it() {
        // A 20 km edge from 105.8°E 29.3°N to 106.0°E 29.35°N, cut along its geodesic into
        // hundreds of pieces: the same points from both sides, so no sliver opens between
        // the neighbours, alone or inside an area made of both.
        let (p, q) = (coord! {x: 105.8, y: 29.3}, coord! {x: 106.0, y: 29.35});
        let south = Polygon::new(
            LineString::from(vec![
                p,
                coord! {x: 105.8, y: 29.2},
                coord! {x: 106.0, y: 29.2},
                q,
                p,
            ]),
            vec![],
        );
        let north = Polygon::new(
            LineString::from(vec![
                q,
                coord! {x: 106.0, y: 29.45},
                coord! {x: 105.8, y: 29.45},
                p,
                q,
            ]),
            vec![],
        );
        let whole = Polygon::new(
            LineString::from(vec![
                coord! {x: 105.8, y: 29.2},
                coord! {x: 106.0, y: 29.2},
                q,
                coord! {x: 106.0, y: 29.45},
                coord! {x: 105.8, y: 29.45},
                p,
                coord! {x: 105.8, y: 29.2},
            ]),
            vec![],
        );
        let (s, n) = (
            geographiclib_signed(&south).abs(),
            geographiclib_signed(&north).abs(),
        );
        let w = geographiclib_signed(&whole).abs();
        close(s + n, w, 1e-12);
        let ours = union_area_m2(std::slice::from_ref(&whole));
        close(ours, w, 1e-9);
        close(union_area_m2(&[south.clone(), north.clone()]), ours, 1e-13);
        let within = union_area_within_m2(&[north, south], &[whole], &|| false).unwrap();
        close(within.area_m2, ours, 1e-13);
        close(within.overlap_m2[0] + within.overlap_m2[1], ours, 1e-13);
        close(within.overlap_m2[0], n, 1e-9);
        close(within.overlap_m2[1], s, 1e-9);
    }

    #[test]
    fn holes_count_unless_another_polygon_fills_them() {
        let frame = Polygon::new(
            rect(106.0, 29.0, 106.01, 29.01).exterior().clone(),
            vec![rect(106.002, 29.002, 106.008, 29.008).exterior().clone()],
        );
        close(
            union_area_m2(std::slice::from_ref(&frame)),
            crate::geom::geodesic_area_m2(&frame.clone().into()),
            1e-9,
        );
        // A plug filling half the hole, and one filling exactly the whole hole.
        let plug = rect(106.002, 29.002, 106.005, 29.008);
        // (The plug's north edge covers part of the hole's longer one: the two geodesics part by
        // a few millimetres, so the open half differs from a geodesic rectangle by about 0.5 m².)
        let left_open = rect(106.005, 29.002, 106.008, 29.008).geodesic_area_unsigned();
        close(
            union_area_m2(&[frame.clone(), plug]),
            rect(106.0, 29.0, 106.01, 29.01).geodesic_area_unsigned() - left_open,
            1e-6,
        );
        let full = rect(106.002, 29.002, 106.008, 29.008);
        close(
            union_area_m2(&[frame, full]),
            rect(106.0, 29.0, 106.01, 29.01).geodesic_area_unsigned(),
            1e-9,
        );
    }

    #[test]
    fn degenerate_and_empty_input_is_zero_not_a_panic() {
        assert_eq!(union_area_m2::<Polygon<f64>>(&[]), 0.0);
        let flat = Polygon::new(
            LineString::from(vec![(106.0, 29.0), (106.1, 29.0), (106.0, 29.0)]),
            vec![],
        );
        let nan = Polygon::new(
            LineString::from(vec![(f64::NAN, 29.0), (106.1, 29.0), (106.0, 29.1)]),
            vec![],
        );
        assert_eq!(union_area_m2(&[flat, nan]), 0.0);
        let mp = MultiPolygon(vec![rect(106.0, 29.0, 106.001, 29.001)]);
        let clipped = mp.intersection(&MultiPolygon(vec![rect(106.0005, 29.0, 106.002, 29.002)]));
        close(
            union_area_m2(&clipped.0),
            clipped.geodesic_area_unsigned(),
            1e-9,
        );
    }

    /// The independent answer for one ring: GeographicLib's polygon area (as PostGIS
    /// `ST_Area(geography)` takes it: unsigned), and its sign for the ring as given.
    fn geographiclib_signed(p: &Polygon<f64>) -> f64 {
        use geographiclib_rs::{PolygonArea, Winding};
        let g = Geodesic::wgs84();
        let mut pa = PolygonArea::new(&g, Winding::CounterClockwise);
        let pts = &p.exterior().0;
        for c in &pts[..pts.len() - 1] {
            pa.add_point(c.y, c.x);
        }
        pa.compute(true).1
    }

    /// A thin triangle: a base 0.05° (about 4.8 km) along the parallel `lat`, its apex `h`
    /// degrees north of the base's middle, wound counter-clockwise in lon/lat.
    fn sliver(lon: f64, lat: f64, h: f64) -> Polygon<f64> {
        Polygon::new(
            LineString::from(vec![
                (lon, lat),
                (lon + 0.05, lat),
                (lon + 0.025, lat + h),
                (lon, lat),
            ]),
            vec![],
        )
    }

    /// The sliver whose GeographicLib signed area is `target` m², by bisection on the apex
    /// height (the signed area grows with it).
    fn sliver_of(lon: f64, lat: f64, target: f64) -> Polygon<f64> {
        let (mut lo, mut hi) = (1e-7, 1e-5);
        for _ in 0..200 {
            let mid = (lo + hi) / 2.0;
            if geographiclib_signed(&sliver(lon, lat, mid)) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        sliver(lon, lat, (lo + hi) / 2.0)
    }

    #[test]
    fn thin_pieces_add_their_area_whichever_way_their_geodesics_bow() {
        // Issue 10, item 9: two disjoint pieces about 4.5 km apart, 22.44 m² and 1.22 m² in
        // PostGIS, 21.23 m² in all by the union. The base's geodesic bows about 0.26 m north of
        // the parallel, more than the second piece's apex rises: wound counter-clockwise in
        // lon/lat, its geodesic ring is clockwise. PostGIS (and GeographicLib) count a ring by
        // its absolute area; the union subtracted it.
        let fat = sliver_of(106.0, 29.5, 22.44);
        let thin = sliver_of(106.097, 29.5, -1.22);
        let (a, b) = (geographiclib_signed(&fat), geographiclib_signed(&thin));
        assert!(
            (a - 22.44).abs() < 0.01 && (b + 1.22).abs() < 0.01,
            "{a} {b}"
        );
        assert!(thin.signed_area() > 0.0, "counter-clockwise in lon/lat");
        for pieces in [
            vec![fat.clone(), thin.clone()],
            vec![thin.clone()],
            vec![fat.clone()],
        ] {
            let sum: f64 = pieces.iter().map(|p| geographiclib_signed(p).abs()).sum();
            let got = union_area_m2(&pieces);
            assert!((got - sum).abs() < 1e-4, "{got} vs {sum}");
        }
        // Clockwise in lon/lat, inside an area, or both: the same.
        let mut reversed = thin.clone();
        reversed.exterior_mut(|r| r.0.reverse());
        let area = [rect(105.9, 29.4, 106.2, 29.6)];
        let within = union_area_within_m2(&[fat, reversed], &area, &|| false).unwrap();
        assert!((within.area_m2 - 23.66).abs() < 0.02, "{}", within.area_m2);
        assert!(
            (within.overlap_m2[1] - 1.22).abs() < 0.01,
            "{:?}",
            within.overlap_m2
        );
    }

    /// The area `a` with its long edge p→q (0.2° north, 0.05° east) on its east side (`west`)
    /// or west side, a piece `n` crossing that edge twice so that it reaches 1 cm inside it (a
    /// sliver 0.08° long), and a square `s` elsewhere inside the area.
    fn sliver_across_a_long_edge(west: bool) -> (Polygon<f64>, Polygon<f64>, Polygon<f64>) {
        let (p, q): (Coord<f64>, Coord<f64>) =
            (coord! {x: 106.0, y: 29.0}, coord! {x: 106.05, y: 29.2});
        let len = ((q.x - p.x).powi(2) + (q.y - p.y).powi(2)).sqrt();
        // Unit normal to the left of p→q, turned towards the area's interior.
        let side = if west { 1.0 } else { -1.0 };
        let inward = coord! {x: -(q.y - p.y) / len, y: (q.x - p.x) / len} * side;
        let at = |t: f64, off: f64| p + (q - p) * t + inward * off;
        let (d, far) = (1e-7, 0.01);
        let poly = |pts: Vec<Coord<f64>>| {
            let mut pts = pts;
            pts.push(pts[0]);
            Polygon::new(LineString(pts), vec![])
        };
        let a = if west {
            poly(vec![
                p,
                q,
                coord! {x: 105.95, y: 29.2},
                coord! {x: 105.95, y: 29.0},
            ])
        } else {
            poly(vec![
                p,
                coord! {x: 106.1, y: 29.0},
                coord! {x: 106.1, y: 29.2},
                q,
            ])
        };
        let n = poly(vec![
            at(0.1, -d),
            at(0.5, d),
            at(0.9, -d),
            at(0.9, -far),
            at(0.1, -far),
        ]);
        let cx = if west { 105.97 } else { 106.08 };
        let s = rect(cx, 29.1, cx + 0.005, 29.105);
        (a, n, s)
    }

    #[test]
    fn a_thin_sliver_inside_the_area_adds_and_never_shrinks_the_union() {
        for west in [true, false] {
            let (a, n, s) = sliver_across_a_long_edge(west);
            let area = std::slice::from_ref(&a);
            let within = |pieces: &[&Polygon<f64>]| {
                union_area_within_m2(pieces, area, &|| false)
                    .expect("not cancelled")
                    .area_m2
            };
            let sliver = within(&[&n]);
            let square = within(&[&s]);
            let both = within(&[&s, &n]);
            // 1 cm across the lon/lat chord, but the long edge's geodesic bows metres north-west
            // of it, and the piece's shorter edges far less: to the west, away from the piece,
            // which then never reaches the area; to the east, past it, a sliver metres wide,
            // well under 9 km × 10 m.
            if west {
                assert_eq!(sliver, 0.0, "west: sliver {sliver} m²");
            } else {
                assert!(sliver > 1e3 && sliver < 9e4, "east: sliver {sliver} m²");
            }
            // Apart from each other, the square and the sliver add up.
            assert!(both >= square, "west {west}: {both} < {square} m²");
            close(both, square + sliver, 1e-12);
        }
    }

    #[test]
    fn a_hole_in_a_thin_piece_is_still_subtracted() {
        // A ring of two thin pieces around a hole: the result's outer ring adds, its hole
        // subtracts, whatever the geodesic windings.
        let frame = Polygon::new(
            rect(106.0, 29.0, 106.06, 29.03).exterior().clone(),
            vec![rect(106.01, 29.01, 106.05, 29.02).exterior().clone()],
        );
        close(
            union_area_m2(std::slice::from_ref(&frame)),
            crate::geom::geodesic_area_m2(&frame.clone().into()),
            1e-9,
        );
    }

    /// How long the property tests run, in ms: brief by default, longer with
    /// `YIZHANGTU_PROPERTY_MS` (see the README's testing section).
    fn property_budget() -> u64 {
        std::env::var("YIZHANGTU_PROPERTY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300)
    }

    /// A rectangle on a coarse grid (so that edges coincide and vertices meet edges often), or a
    /// random convex polygon, within 0.02° of 106.5°E 29.5°N.
    fn arbitrary_polygon(
        u: &mut arbtest::arbitrary::Unstructured,
    ) -> arbtest::arbitrary::Result<Polygon<f64>> {
        let step = 0.001;
        let at = |u: &mut arbtest::arbitrary::Unstructured| -> arbtest::arbitrary::Result<f64> {
            Ok(u.int_in_range(0..=20)? as f64 * step)
        };
        if u.ratio(2, 3)? {
            let (x0, y0) = (at(u)?, at(u)?);
            let (w, h) = (
                u.int_in_range(1..=8)? as f64 * step,
                u.int_in_range(1..=8)? as f64 * step,
            );
            return Ok(rect(106.5 + x0, 29.5 + y0, 106.5 + x0 + w, 29.5 + y0 + h));
        }
        let (cx, cy) = (106.5 + at(u)?, 29.5 + at(u)?);
        let r = u.int_in_range(1..=100)? as f64 * 1e-4;
        let n = u.int_in_range(3..=9)?;
        let mut angles: Vec<f64> = (0..n)
            .map(|_| Ok(u.int_in_range(0..=999)? as f64 / 1000.0 * std::f64::consts::TAU))
            .collect::<arbtest::arbitrary::Result<_>>()?;
        angles.sort_by(f64::total_cmp);
        angles.dedup();
        let mut ring: Vec<Coord<f64>> = angles
            .iter()
            .map(|a| coord! {x: cx + r * a.cos(), y: cy + r * a.sin()})
            .collect();
        ring.push(ring[0]);
        let mut p = Polygon::new(LineString(ring), vec![]);
        if u.arbitrary()? {
            p.exterior_mut(|r| r.0.reverse());
        }
        Ok(p)
    }

    /// Rings with vertices at most `step` degrees apart. The geodesic area of a planar region
    /// depends on where its boundary has vertices (each geodesic edge bows), and an overlay
    /// merges collinear edges; densified on both sides, the answers converge (the bows shrink
    /// with the square of the step).
    fn densified(p: &Polygon<f64>, step: f64) -> Polygon<f64> {
        let ring = |r: &LineString<f64>| {
            let mut out = Vec::new();
            for l in r.lines() {
                let n = ((l.dx().abs().max(l.dy().abs())) / step).ceil().max(1.0) as usize;
                out.extend((0..n).map(|k| {
                    let t = k as f64 / n as f64;
                    coord! {x: l.start.x + t * l.dx(), y: l.start.y + t * l.dy()}
                }));
            }
            out.push(out[0]);
            LineString(out)
        };
        Polygon::new(ring(p.exterior()), p.interiors().iter().map(ring).collect())
    }

    /// An overlay's result densified, measured ring by ring with GeographicLib.
    fn measured(m: &MultiPolygon<f64>) -> f64 {
        let d = MultiPolygon(m.0.iter().map(|p| densified(p, 1e-4)).collect());
        crate::geom::geodesic_area_m2(&d.into())
    }

    /// Within 1e-7 relative, or 100 cm² for small pieces: crossings are placed on the projected
    /// chord of an edge, which strays from the lon/lat segment by about a micrometre, and the
    /// overlay (i_overlay) snaps to its own grid, leaving slivers of a few 10 cm².
    fn near(a: f64, b: f64) {
        assert!(
            (a - b).abs() <= 1e-7 * b.abs() + 1e-2,
            "{a} vs {b}: difference {:e}",
            a - b
        );
    }

    #[test]
    fn property_union_area_agrees_with_an_overlay_union() {
        arbtest::arbtest(|u| {
            let n = u.int_in_range(1..=12)?;
            let polys = (0..n)
                .map(|_| Ok(densified(&arbitrary_polygon(u)?, 1e-4)))
                .collect::<arbtest::arbitrary::Result<Vec<_>>>()?;
            let oriented: Vec<Polygon<f64>> = polys
                .iter()
                .map(|p| geo::Orient::orient(p, geo::orient::Direction::Default))
                .collect();
            let expected = measured(&geo::unary_union(oriented.iter()));
            near(union_area_m2(&polys), expected);
            Ok(())
        })
        .budget_ms(property_budget());
    }

    #[test]
    fn property_union_within_an_area_agrees_with_an_overlay() {
        arbtest::arbtest(|u| {
            let n = u.int_in_range(1..=10)?;
            let polys = (0..n)
                .map(|_| Ok(densified(&arbitrary_polygon(u)?, 1e-4)))
                .collect::<arbtest::arbitrary::Result<Vec<_>>>()?;
            let area = densified(&arbitrary_polygon(u)?, 1e-4);
            let got = union_area_within_m2(&polys, std::slice::from_ref(&area), &|| false)
                .expect("not cancelled");
            let oriented =
                |p: &Polygon<f64>| geo::Orient::orient(p, geo::orient::Direction::Default);
            let clip = MultiPolygon(vec![oriented(&area)]);
            let union = geo::unary_union(polys.iter().map(oriented).collect::<Vec<_>>().iter());
            near(got.area_m2, measured(&union.intersection(&clip)));
            for (p, overlap) in polys.iter().zip(&got.overlap_m2) {
                let own = MultiPolygon(vec![oriented(p)]).intersection(&clip);
                near(*overlap, measured(&own));
            }
            Ok(())
        })
        .budget_ms(property_budget());
    }

    /// `p` with each vertex, at random, moved by 1e-9 to 1e-7 degrees (0.1 mm to 1 cm) each way,
    /// so that edges shared on the grid of [`arbitrary_polygon`] become near-coincident.
    fn nudged(
        u: &mut arbtest::arbitrary::Unstructured,
        p: &Polygon<f64>,
    ) -> arbtest::arbitrary::Result<Polygon<f64>> {
        let mut nudge = |v: f64| -> arbtest::arbitrary::Result<f64> {
            if u.ratio(1, 3)? {
                return Ok(v);
            }
            let size = 10f64.powf(-9.0 + 2.0 * f64::from(u.int_in_range(0..=100u8)?) / 100.0);
            Ok(if u.arbitrary()? { v + size } else { v - size })
        };
        let mut ring = Vec::with_capacity(p.exterior().0.len());
        for c in &p.exterior().0[..p.exterior().0.len() - 1] {
            ring.push(coord! {x: nudge(c.x)?, y: nudge(c.y)?});
        }
        ring.push(ring[0]);
        Ok(Polygon::new(LineString(ring), vec![]))
    }

    /// The sum over the polygons' edges of the geodesic area between each edge's geodesic and
    /// its straight line in lon/lat (densified), by GeographicLib through geo.
    fn bows(polys: &[Polygon<f64>]) -> f64 {
        let mut sum = 0.0;
        for p in polys {
            for w in p.exterior().0.windows(2) {
                let (a, b) = (w[0], w[1]);
                let mut ring = vec![a, b];
                ring.extend((1..64).map(|k| b + (a - b) * (f64::from(k) / 64.0)));
                ring.push(a);
                sum += Polygon::new(LineString(ring), vec![])
                    .geodesic_area_signed()
                    .abs();
            }
        }
        sum
    }

    #[test]
    fn property_more_pieces_never_cover_less() {
        arbtest::arbtest(|u| {
            let n = u.int_in_range(1..=8)?;
            let mut s = Vec::new();
            let mut all = Vec::new();
            for _ in 0..n {
                let p = arbitrary_polygon(u)?;
                let p = nudged(u, &p)?;
                if u.arbitrary()? {
                    s.push(p.clone());
                }
                all.push(p);
            }
            let area = arbitrary_polygon(u)?;
            let area = nudged(u, &area)?;
            let area = std::slice::from_ref(&area);
            let within = |pieces: &[Polygon<f64>]| {
                union_area_within_m2(pieces, area, &|| false)
                    .expect("not cancelled")
                    .area_m2
            };
            // A ring of the union counts as |its geodesic area|, and an edge cut where another
            // polygon crosses it is taken to bow off the chords as its share of the whole edge's
            // bow: a sliver thinner than the bows can lose up to its edges' bows. Monotone up to
            // the bows of the edges of both unions, measured independently (see `bows`).
            let slack = bows(&s) + bows(&all) + 1e-6;
            let (fewer, more) = (within(&s), within(&all));
            assert!(
                more >= fewer - slack,
                "within the area: {more} < {fewer} m²"
            );
            let (fewer, more) = (union_area_m2(&s), union_area_m2(&all));
            assert!(more >= fewer - slack, "{more} < {fewer} m²");
            Ok(())
        })
        .budget_ms(property_budget());
    }

    #[test]
    fn cancelled_work_returns_none() {
        let polys = vec![rect(106.0, 29.0, 106.01, 29.01); 3];
        assert_eq!(union_area_m2_cancellable(&polys, &|| true), None);
        assert!(union_area_within_m2(&polys, &polys[..1], &|| true).is_none());
        let calls = AtomicUsize::new(0);
        let later = || calls.fetch_add(1, Ordering::Relaxed) > 0;
        assert_eq!(union_area_m2_cancellable(&polys, &later), None);
    }
}
