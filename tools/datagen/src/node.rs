//! Noding of rounded polygons: after rounding to 7 decimals, vertices that
//! were one point before rounding may differ by a unit, and a corner of one
//! polygon lying on another's edge is no longer exactly on it. This makes the
//! shared boundaries of a partition (district -> towns -> villages) identical
//! vertex for vertex again: near-identical vertices are merged and every vertex
//! lying on an edge of another ring is inserted into that edge.

use geo::{Coord, LineString, MultiPolygon, Polygon};
use std::collections::{BTreeMap, BTreeSet};

type P = (i64, i64);

const UNIT: f64 = 1e7;
/// vertices closer than this (in 1e-7 degree units, Chebyshev) are merged
const SNAP: i64 = 2;
/// a vertex closer than this to an edge is inserted into it
const ON_EDGE: f64 = 1.5;
const CELL: i64 = 2000;

fn key(c: &Coord) -> P {
    ((c.x * UNIT).round() as i64, (c.y * UNIT).round() as i64)
}

fn coord(p: P) -> Coord {
    Coord {
        x: p.0 as f64 / UNIT,
        y: p.1 as f64 / UNIT,
    }
}

fn find(parent: &mut BTreeMap<P, P>, p: P) -> P {
    let mut r = p;
    while parent[&r] != r {
        r = parent[&r];
    }
    let mut q = p;
    while parent[&q] != r {
        let n = parent[&q];
        parent.insert(q, r);
        q = n;
    }
    r
}

/// Node all the given (already rounded) multipolygons together.
pub fn node(polys: &mut [&mut MultiPolygon]) {
    // 1. merge near-identical vertices (representative = smallest in the cluster)
    let mut all: BTreeSet<P> = BTreeSet::new();
    for mp in polys.iter() {
        for p in &mp.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                for c in &r.0 {
                    all.insert(key(c));
                }
            }
        }
    }
    let mut parent: BTreeMap<P, P> = all.iter().map(|p| (*p, *p)).collect();
    for &p in &all {
        for dx in -SNAP..=SNAP {
            for dy in -SNAP..=SNAP {
                let q = (p.0 + dx, p.1 + dy);
                if q != p && all.contains(&q) {
                    let (a, b) = (find(&mut parent, p), find(&mut parent, q));
                    if a != b {
                        let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                        parent.insert(hi, lo);
                    }
                }
            }
        }
    }
    let rep: BTreeMap<P, P> = all.iter().map(|p| (*p, find(&mut parent, *p))).collect();
    let reps: BTreeSet<P> = rep.values().copied().collect();
    // grid of representatives
    let mut grid: BTreeMap<P, Vec<P>> = BTreeMap::new();
    for &p in &reps {
        grid.entry((p.0.div_euclid(CELL), p.1.div_euclid(CELL)))
            .or_default()
            .push(p);
    }

    let fix_ring = |ls: &LineString| -> Option<LineString> {
        let mut pts: Vec<P> = ls.0.iter().map(|c| rep[&key(c)]).collect();
        pts.dedup();
        if pts.len() > 1 && pts.first() == pts.last() {
            pts.pop();
        }
        // 2. insert vertices lying on each edge
        let n = pts.len();
        let mut out: Vec<P> = Vec::with_capacity(n * 2);
        for i in 0..n {
            let a = pts[i];
            let b = pts[(i + 1) % n];
            out.push(a);
            let (ax, ay, bx, by) = (a.0 as f64, a.1 as f64, b.0 as f64, b.1 as f64);
            let (dx, dy) = (bx - ax, by - ay);
            let len2 = dx * dx + dy * dy;
            if len2 == 0.0 {
                continue;
            }
            let (x0, x1) = (a.0.min(b.0) - 2, a.0.max(b.0) + 2);
            let (y0, y1) = (a.1.min(b.1) - 2, a.1.max(b.1) + 2);
            let mut on: Vec<(f64, P)> = Vec::new();
            for cx in x0.div_euclid(CELL)..=x1.div_euclid(CELL) {
                for cy in y0.div_euclid(CELL)..=y1.div_euclid(CELL) {
                    if let Some(v) = grid.get(&(cx, cy)) {
                        for &p in v {
                            if p == a || p == b || p.0 < x0 || p.0 > x1 || p.1 < y0 || p.1 > y1 {
                                continue;
                            }
                            let t = ((p.0 as f64 - ax) * dx + (p.1 as f64 - ay) * dy) / len2;
                            if t <= 0.0 || t >= 1.0 {
                                continue;
                            }
                            let cross = (p.0 as f64 - ax) * dy - (p.1 as f64 - ay) * dx;
                            if cross.abs() / len2.sqrt() <= ON_EDGE {
                                on.push((t, p));
                            }
                        }
                    }
                }
            }
            on.sort_by(|x, y| x.0.partial_cmp(&y.0).unwrap().then(x.1.cmp(&y.1)));
            out.extend(on.into_iter().map(|(_, p)| p));
        }
        out.dedup();
        while out.len() > 1 && out.first() == out.last() {
            out.pop();
        }
        // remove spikes a-b-a
        let mut changed = true;
        while changed && out.len() >= 3 {
            changed = false;
            let n = out.len();
            for i in 0..n {
                if out[i] == out[(i + 2) % n] {
                    let j = (i + 1) % n;
                    let k = (i + 2) % n;
                    let (j, k) = if j < k { (j, k) } else { (k, j) };
                    out.remove(k);
                    out.remove(j);
                    out.dedup();
                    changed = true;
                    break;
                }
            }
        }
        if out.len() < 3 {
            return None;
        }
        let mut v: Vec<Coord> = out.into_iter().map(coord).collect();
        v.push(v[0]);
        Some(LineString(v))
    };

    for mp in polys.iter_mut() {
        let new: Vec<Polygon> =
            mp.0.iter()
                .filter_map(|p| {
                    let ext = fix_ring(p.exterior())?;
                    Some(Polygon::new(
                        ext,
                        p.interiors().iter().filter_map(fix_ring).collect(),
                    ))
                })
                .collect();
        **mp = MultiPolygon(new);
    }
}

/// Union of noded, rounded polygons that share boundaries vertex for vertex
/// (the admin partition): shared edges cancel, the rest is chained into rings.
/// Exact, unlike a general boolean union followed by rounding.
pub fn dissolve(parts: &[&MultiPolygon]) -> MultiPolygon {
    use std::collections::BTreeMap as Map;
    let mut edges: BTreeSet<(P, P)> = BTreeSet::new();
    for mp in parts {
        for p in &mp.0 {
            for r in std::iter::once(p.exterior()).chain(p.interiors()) {
                for w in r.0.windows(2) {
                    let (a, b) = (key(&w[0]), key(&w[1]));
                    if a == b {
                        continue;
                    }
                    if !edges.remove(&(b, a)) {
                        edges.insert((a, b));
                    }
                }
            }
        }
    }
    let mut from: Map<P, Vec<P>> = Map::new();
    for (a, b) in &edges {
        from.entry(*a).or_default().push(*b);
    }
    let mut rings: Vec<Vec<P>> = Vec::new();
    while let Some((&start, _)) = from.iter().find(|(_, v)| !v.is_empty()) {
        let mut ring = vec![start];
        let mut cur = start;
        loop {
            let next = {
                let v = from.get_mut(&cur).unwrap();
                v.remove(0)
            };
            if next == start {
                break;
            }
            ring.push(next);
            cur = next;
            if from.get(&cur).is_none_or(|v| v.is_empty()) {
                break;
            }
        }
        if ring.len() >= 3 {
            rings.push(ring);
        }
    }
    let area = |r: &Vec<P>| -> f64 {
        let mut a = 0.0;
        for i in 0..r.len() {
            let (p, q) = (r[i], r[(i + 1) % r.len()]);
            a += p.0 as f64 * q.1 as f64 - q.0 as f64 * p.1 as f64;
        }
        a
    };
    let to_ls = |r: &Vec<P>| -> LineString {
        let mut v: Vec<Coord> = r.iter().map(|p| coord(*p)).collect();
        v.push(v[0]);
        LineString(v)
    };
    let mut shells: Vec<Polygon> = Vec::new();
    let mut holes: Vec<LineString> = Vec::new();
    for r in &rings {
        if area(r) > 0.0 {
            shells.push(Polygon::new(to_ls(r), vec![]));
        } else {
            holes.push(to_ls(r));
        }
    }
    use geo::Contains;
    for h in holes {
        let p = geo::Point(h.0[0]);
        if let Some(s) = shells.iter_mut().find(|s| {
            s.exterior().contains(&p)
                || geo::Polygon::new(s.exterior().clone(), vec![]).contains(&p)
        }) {
            s.interiors_push(h);
        }
    }
    MultiPolygon(shells)
}
