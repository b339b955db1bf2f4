#!/usr/bin/env python3
"""Check yizhangtu's coverage answers against PostGIS as an oracle (issue 10).

    python3 tools/postgis-oracle.py http://127.0.0.1:8080 "host=127.0.0.1 port=5432 dbname=oracle user=postgres"

Needs a running yizhangtu server and a PostgreSQL database with PostGIS 3 (the script runs
`CREATE EXTENSION IF NOT EXISTS postgis` and writes its tables into the schema `yz_oracle`, which it
drops and recreates), plus `pip install "psycopg[binary]" geographiclib` (without geographiclib
the densified comparison below is skipped).

What it does:
1. Loads every layer (GET /collections/{id}/items, GeoJSON in CRS84, paged through the `next`
   links) into PostGIS tables (SRID 4326). Geometries go in as WKB built here from the parsed
   coordinates, so PostGIS sees bit-identical doubles (the server writes shortest round-trip
   decimals).
2. For every district and town (layers `districts`, `towns`) and every non-admin layer L, asks
   `GET /areas/{code}/coverage?layers=L` and compares `layers[0].covered_area.m2` with
     union-then-clip  ST_Area(ST_Intersection(ST_Union(polys of L meeting the unit), unit)::geography)
     clip-then-union  ST_Area(ST_Union(ST_Intersection(polys, unit))::geography)
   (polygons only, ST_CollectionExtract(..., 3)). Below district level, features with
   `placement = "district"` are left out, as yizhangtu does (engine/coverage.rs `district_level`);
   the answer's `district_level_features_not_counted` is checked against the number of such
   features meeting the unit.
3. The same for --drawn random star-shaped (convex-ish) polygons inside the districts' boxes, via
   `POST /analysis/coverage?layers=L` with a GeoJSON Polygon body (district-level features are
   left out there too: a drawn area has no level).
4. With --densify-m (default 100), the same two expressions once more on copies of every ring
   densified along its WGS84 geodesic (geographiclib, a point every <= 100 m). PostGIS's overlay
   is planar in lon/lat: a cut point on a long edge lies on the chord, not on the geodesic
   ST_Area(geography) measures, which moves areas by ~1e-4 relative on 10 km edges (both plain
   expressions share that bias, so their spread does not show it). On densified rings the cut
   points lie on the geodesics to ~0.1 mm, giving PostGIS's answer for geodesic edges (stable
   from 100 m down to 20 m segments).
5. Prints a summary: comparisons, how many agree to 1e-6 relative (or 0.01 m² absolute, the
   answer's rounding), how many lie within the PostGIS spread (min..max of the two expressions,
   widened by 1e-6 relative and 0.01 m²), the worst disagreements, and any share > 1 or covered
   area > the area, and how many answers lie outside the envelope of all four PostGIS figures
   (plain and densified, both orders). Exit status 1 if any answer is outside that envelope by
   more than --fail-rel of it and --fail-m2 (default 1e-5 and 1 m²: where cuts fall on long
   edges, the chord-cut and geodesic-cut pictures differ on slivers), any share exceeds 1, a
   district's answer is smaller than that of its polygon drawn, or any request failed.

6. The spatial shortcuts of `GET /collections/{id}/items`, every non-admin layer: `within=CODE` for
   every district and town against the features whose part outside the unit is at most 1e-6 of
   them (ST_Difference; ST_CoveredBy for points), as yizhangtu's `within` keeps features with a
   share inside of at least 1 - 1e-6; `intersects=WKT` for each drawn polygon against
   ST_Intersects; `near=lon,lat&distance=D` for --near random points (D log-uniform, 50 m..5 km)
   against ST_DWithin(geography) (spheroid), and each answer's `distance_m` against
   ST_Distance(geography). The same ids, except features PostGIS itself puts on the edge: outside
   share between 1e-7 and 1e-5, a point within 1e-8 degrees of the unit's boundary, a feature only
   touching the drawn polygon, or a distance within 1e-3 relative / 0.5 m of D; those are counted
   and listed. Exit status 1 on any other difference.

With --own-tables the server runs on PostgreSQL (`serve --db postgres://…`) and DSN names that
same database: PostGIS reads the server's own `features` rows (its `geom` column, SRID 4490 taken
as lon/lat on WGS84 like yizhangtu's areas) instead of features loaded over HTTP; the layers the
server lists must be the database's layers, with the same feature counts.

    --units CODE,...   only these districts/towns (--units NONE: drawn polygons only)
    --drawn N --seed S how many drawn polygons, and their random seed
    --json FILE        every comparison, for a closer look
"""

import argparse
import concurrent.futures as cf
import json
import math
import random
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import psycopg

try:
    from geographiclib.geodesic import Geodesic
except ImportError:  # the densified comparison is then off
    Geodesic = None

ADMIN_LAYERS = ["districts", "towns", "town_seats", "villages", "village_points"]
UNIT_LAYERS = ["districts", "towns"]
SCHEMA = "yz_oracle"
REL = 1e-6
ABS = 0.01  # the answer's m² are rounded to 0.01


# ---------------------------------------------------------------- HTTP


def http_json(url, body=None, timeout=600):
    data = None
    headers = {"Accept": "application/json"}
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, headers=headers)
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 503 and attempt < 4:
                time.sleep(float(e.headers.get("Retry-After") or 1))
                continue
            try:
                return e.code, json.load(e)
            except ValueError:
                return e.code, None
    raise RuntimeError("unreachable")


def collections(base):
    _, doc = http_json(f"{base}/collections?f=json")
    return [c["id"] for c in doc["collections"]]


def all_features(base, layer):
    return all_features_at(f"{base}/collections/{urllib.parse.quote(layer)}/items?limit=10000&f=json", layer)


# ---------------------------------------------------------------- WKB (exact doubles)


def _pt(c):
    return struct.pack("<dd", float(c[0]), float(c[1]))


def _ring(r):
    return struct.pack("<I", len(r)) + b"".join(_pt(c) for c in r)


def wkb(g):
    t = g["type"]
    head = lambda code: struct.pack("<BI", 1, code)
    if t == "Point":
        if not g["coordinates"]:
            return head(1) + struct.pack("<dd", math.nan, math.nan)
        return head(1) + _pt(g["coordinates"])
    if t == "LineString":
        return head(2) + _ring(g["coordinates"])
    if t == "Polygon":
        return head(3) + struct.pack("<I", len(g["coordinates"])) + b"".join(_ring(r) for r in g["coordinates"])
    if t in ("MultiPoint", "MultiLineString", "MultiPolygon"):
        sub = {"MultiPoint": "Point", "MultiLineString": "LineString", "MultiPolygon": "Polygon"}[t]
        code = {"MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}[t]
        parts = g["coordinates"]
        return head(code) + struct.pack("<I", len(parts)) + b"".join(wkb({"type": sub, "coordinates": p}) for p in parts)
    if t == "GeometryCollection":
        gs = g["geometries"]
        return head(7) + struct.pack("<I", len(gs)) + b"".join(wkb(x) for x in gs)
    raise ValueError(f"unknown geometry type {t}")


def ewkb(g, srid=4326):
    """WKB with the SRID flag and SRID on the outer geometry."""
    raw = wkb(g)
    code = struct.unpack("<I", raw[1:5])[0]
    return raw[:1] + struct.pack("<II", code | 0x20000000, srid) + raw[5:]


# ---------------------------------------------------------------- densification


def densify(g, step_m, cache):
    """The geometry's polygons (a MultiPolygon, or None), every edge longer than `step_m` split
    by points on its WGS84 geodesic (geographiclib), so a planar overlay's cut points lie on the
    geodesic edges to within ~0.1 mm at 100 m."""
    polys = []

    def walk(x):
        t = x["type"]
        if t == "Polygon":
            polys.append(x["coordinates"])
        elif t == "MultiPolygon":
            polys.extend(x["coordinates"])
        elif t == "GeometryCollection":
            for y in x["geometries"]:
                walk(y)

    walk(g)
    if not polys:
        return None
    geod = Geodesic.WGS84
    mask = Geodesic.LATITUDE | Geodesic.LONGITUDE | Geodesic.LONG_UNROLL

    def ring(r):
        key = tuple((c[0], c[1]) for c in r)
        if key in cache:
            return cache[key]
        out = []
        for a, b in zip(r, r[1:]):
            out.append(a)
            line = geod.InverseLine(a[1], a[0], b[1], b[0], mask | Geodesic.DISTANCE_IN)
            n = math.ceil(line.s13 / step_m)
            for k in range(1, n):
                pos = line.Position(line.s13 * k / n, mask)
                out.append([pos["lon2"], pos["lat2"]])
        out.append(r[-1])
        cache[key] = out
        return out

    return {"type": "MultiPolygon", "coordinates": [[ring(r) for r in p] for p in polys]}


# ---------------------------------------------------------------- loading


def own_features(conn, layer):
    """The features of `layer` as the server's own PostgreSQL tables hold them, shaped as the
    HTTP loader's GeoJSON features (admin_code and name are columns there, properties here)."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, admin_code, name, properties, ST_AsGeoJSON(geom, 17) FROM public.features "
                    "WHERE layer = %s ORDER BY pos", (layer,))
        out = []
        for fid, code, name, props, gj in cur.fetchall():
            props = json.loads(props or "{}")
            props.update({k: v for k, v in (("admin_code", code), ("name", name)) if v is not None})
            out.append({"id": fid, "properties": props, "geometry": None if gj is None else json.loads(gj)})
        return out


def load(base, conn, layers, step_m, own=False):
    with conn.cursor() as cur:
        cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
        cur.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        cur.execute(f"CREATE SCHEMA {SCHEMA}")
        counts, loaded = {}, {}
        for layer in layers:
            feats = own_features(conn, layer) if own else all_features(base, layer)
            t = f'{SCHEMA}."{layer}"'
            cur.execute(f"CREATE TABLE {t} (fid text PRIMARY KEY, props jsonb, geom geometry(Geometry, 4326), "
                        f"geom_g geometry(MultiPolygon, 4326))")
            cache = {}  # many district-level features repeat a district's rings
            with cur.copy(f"COPY {t} (fid, props, geom, geom_g) FROM STDIN") as cp:
                for f in feats:
                    g = f.get("geometry")
                    gw = None if g is None else ewkb(g).hex()
                    if own and g is not None:
                        gw = None  # the stored geometry itself, copied below
                    dense = densify(g, step_m, cache) if (g is not None and step_m) else None
                    dw = None if dense is None else ewkb(dense).hex()
                    cp.write_row((str(f["id"]), json.dumps(f.get("properties") or {}), gw, dw))
            if own:
                cur.execute(f"UPDATE {t} o SET geom = ST_SetSRID(f.geom, 4326) FROM public.features f "
                            f"WHERE f.layer = %s AND f.id = o.fid", (layer,))
            cur.execute(f"CREATE INDEX ON {t} USING gist (geom)")
            cur.execute(f"ANALYZE {t}")
            cur.execute(f"SELECT count(*) FILTER (WHERE geom IS NOT NULL AND NOT ST_IsValid(geom)) FROM {t}")
            counts[layer] = (len(feats), cur.fetchone()[0])
            loaded[layer] = feats
    conn.commit()
    return counts, loaded


# ---------------------------------------------------------------- PostGIS figures

POSTGIS_SQL = """
WITH a AS (SELECT ST_CollectionExtract(%(unit)s::geometry, 3) AS u),
s AS (SELECT ST_CollectionExtract(f.geom, 3) AS p,
             (%(skip)s AND f.props->>'placement' = 'district') AS dl
      FROM a JOIN {table} f ON ST_Intersects(f.geom, a.u)),
agg AS (SELECT count(*) FILTER (WHERE NOT dl) AS n,
               count(*) FILTER (WHERE dl) AS ndl,
               ST_Union(p) FILTER (WHERE NOT dl) AS up,
               ST_Union(ST_CollectionExtract(ST_Intersection(p, (SELECT u FROM a)), 3)) FILTER (WHERE NOT dl) AS cu
        FROM s)
SELECT n, ndl,
       ST_Area(ST_CollectionExtract(ST_Intersection(up, a.u), 3)::geography),
       ST_Area(ST_CollectionExtract(cu, 3)::geography),
       ST_Area(a.u::geography)
FROM agg, a
"""

# The same union-then-clip and clip-then-union on rings densified along their WGS84 geodesics
# (column geom_g, see `densify`), so that the planar overlay's new vertices lie on the geodesic
# edges: PostGIS's figure for geodesic edges, free of the bow a planar cut adds on long edges.
DENSE_SQL = """
WITH a AS (SELECT %(unit)s::geometry AS u),
s AS (SELECT f.geom_g AS p
      FROM a JOIN {table} f ON ST_Intersects(f.geom_g, a.u)
      WHERE NOT (%(skip)s AND f.props->>'placement' = 'district') AND f.geom_g IS NOT NULL),
agg AS (SELECT ST_Union(p) AS up,
               ST_Union(ST_CollectionExtract(ST_Intersection(p, (SELECT u FROM a)), 3)) AS cu
        FROM s)
SELECT ST_Area(ST_CollectionExtract(ST_Intersection(up, a.u), 3)::geography),
       ST_Area(ST_CollectionExtract(cu, 3)::geography)
FROM agg, a
"""


def postgis_figures(conn, layer, unit_ewkb_hex, skip, dense_hex):
    """Features meeting the unit (`n`), district-level ones meeting it (`dl`), union-then-clip m²
    (`uc`), clip-then-union m² (`cu`), the unit's m² (`unit`) and, given the densified unit, the
    same two on densified rings (`uc_g`, `cu_g`). District-level features are counted but not unioned when
    `skip`."""
    table = f'{SCHEMA}."{layer}"'
    with conn.cursor() as cur:
        try:
            cur.execute(POSTGIS_SQL.format(table=table), {"unit": unit_ewkb_hex, "skip": skip})
            n, dl, uc, cu, ua = cur.fetchone()
            out = {"n": n, "dl": dl, "uc": uc or 0.0, "cu": cu or 0.0, "unit": ua, "uc_g": None, "cu_g": None}
            if dense_hex:
                cur.execute(DENSE_SQL.format(table=table), {"unit": dense_hex, "skip": skip})
                ucg, cug = cur.fetchone()
                out.update(uc_g=ucg or 0.0, cu_g=cug or 0.0)
            return out
        except psycopg.Error as e:
            conn.rollback()
            return {"error": str(e).splitlines()[0]}


# ---------------------------------------------------------------- drawn polygons


def drawn_polygons(rng, boxes, count):
    """Star-shaped polygons (angles sorted, radii jittered), so always simple; CCW."""
    out = []
    for _ in range(count):
        x0, y0, x1, y1 = rng.choice(boxes)
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        # Inside the box: no farther from the centre than its nearest edge.
        kx, ky = 111.32 * math.cos(math.radians(cy)), 110.57
        room_km = min((cx - x0) * kx, (x1 - cx) * kx, (cy - y0) * ky, (y1 - cy) * ky)
        radius_km = min(math.exp(rng.uniform(math.log(0.3), math.log(15.0))), room_km)
        if radius_km < 0.05:
            radius_km = 0.05
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        n = rng.randint(4, 14)
        # Jittered even angles: gaps stay under pi, so the ring is simple around the centre.
        step = 2 * math.pi / n
        start = rng.uniform(0, 2 * math.pi)
        angles = [start + (k + rng.uniform(-0.4, 0.4)) * step for k in range(n)]
        ring = []
        for a in angles:
            r = radius_km * rng.uniform(0.6, 1.0)
            dx = r * math.cos(a) / kx
            dy = r * math.sin(a) / ky
            ring.append([cx + dx, cy + dy])
        ring.append(ring[0])
        out.append({"type": "Polygon", "coordinates": [ring]})
    return out


# ---------------------------------------------------------------- items: within, intersects, near


def item_ids(base, layer, params):
    """{id: properties} of every feature `GET /collections/{layer}/items?params` answers (paged)."""
    q = urllib.parse.urlencode({**params, "limit": 10000, "f": "json"})
    return {str(f["id"]): f.get("properties") or {}
            for f in all_features_at(f"{base}/collections/{urllib.parse.quote(layer)}/items?{q}", layer)}


def all_features_at(url, layer):
    out, matched = [], None
    while url:
        status, doc = http_json(url)
        if status != 200:
            raise RuntimeError(f"{url}: HTTP {status} {str(doc)[:300]}")
        out.extend(doc["features"])
        matched = doc.get("numberMatched", matched)
        url = next((l["href"] for l in doc.get("links", []) if l.get("rel") == "next"), None)
    if matched is not None and matched != len(out):
        raise RuntimeError(f"{layer}: numberMatched {matched} but {len(out)} features read")
    return out


WITHIN_SQL = """
WITH a AS (SELECT %(unit)s::geometry AS u)
SELECT f.fid,
       CASE WHEN ST_Dimension(f.geom) = 2
                 THEN ST_Area(ST_Difference(f.geom, a.u)) / NULLIF(ST_Area(f.geom), 0)
            WHEN ST_Dimension(f.geom) = 1
                 THEN ST_Length(ST_Difference(f.geom, a.u)) / NULLIF(ST_Length(f.geom), 0)
            ELSE CASE WHEN ST_CoveredBy(f.geom, a.u) THEN 0 ELSE 1 END END,
       ST_Dimension(f.geom) = 0 AND ST_Distance(f.geom, ST_Boundary(a.u)) < 1e-8
FROM a JOIN {table} f ON ST_Intersects(f.geom, a.u)
"""

INTERSECTS_SQL = """
WITH a AS (SELECT %(unit)s::geometry AS u)
SELECT f.fid, ST_Intersects(f.geom, a.u), ST_Intersects(f.geom, a.u) AND NOT ST_Intersects(f.geom, ST_Buffer(a.u, -1e-9)),
       ST_Distance(f.geom, a.u)
FROM a JOIN {table} f ON ST_DWithin(f.geom, a.u, 1e-7)
"""

NEAR_SQL = """
WITH a AS (SELECT ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)::geography AS p)
SELECT f.fid, ST_Distance(f.geom::geography, a.p)
FROM a JOIN {table} f ON ST_DWithin(f.geom::geography, a.p, %(d)s * 1.01 + 1)
"""


def postgis_rows(conn, sql, layer, params):
    with conn.cursor() as cur:
        try:
            cur.execute(sql.format(table=f'{SCHEMA}."{layer}"'), params)
            return cur.fetchall()
        except psycopg.Error as e:
            conn.rollback()
            raise RuntimeError(f"PostGIS: {str(e).splitlines()[0]}") from e


def compare_ids(ours, expected, edge):
    """Ids ours has that PostGIS does not (`extra`), and the reverse (`missing`), leaving out
    those PostGIS puts on the edge (returned as `edge_diff`)."""
    extra = set(ours) - expected
    missing = expected - set(ours)
    edge_diff = sorted((extra | missing) & edge)
    return sorted(extra - edge), sorted(missing - edge), edge_diff


def near_points(rng, boxes, count):
    out = []
    for _ in range(count):
        x0, y0, x1, y1 = rng.choice(boxes)
        d = math.exp(rng.uniform(math.log(50.0), math.log(5000.0)))
        out.append((rng.uniform(x0, x1), rng.uniform(y0, y1), round(d, 1)))
    return out


def check_items(base, conn, units, drawn, points, layers, jobs):
    """`within`, `intersects` and `near` answers against PostGIS; returns (results, problems)."""
    def wkt(poly):
        return "POLYGON((" + ",".join(f"{c[0]!r} {c[1]!r}" for c in poly["coordinates"][0]) + "))"

    tasks = []
    for u in units:
        kind, key, label, _skip, ghex, _ = u
        for l in layers:
            if kind == "area":
                tasks.append(("within", label, l, {"within": key}, WITHIN_SQL, {"unit": ghex}))
            else:
                tasks.append(("intersects", label, l, {"intersects": wkt(drawn[key])}, INTERSECTS_SQL, {"unit": ghex}))
    for i, (x, y, d) in enumerate(points):
        for l in layers:
            tasks.append(("near", f"near#{i} {x:.5f},{y:.5f} {d} m", l, {"near": f"{x!r},{y!r}", "distance": d},
                          NEAR_SQL, {"x": x, "y": y, "d": d}))
    results, problems = [], []
    with cf.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(item_ids, base, t[2], t[3]): t for t in tasks}
        for fut in futures:
            what, label, layer, params, sql, pgp = futures[fut]
            try:
                ours = fut.result()
                rows = postgis_rows(conn, sql, layer, pgp)
            except Exception as e:  # noqa: BLE001 - report, do not stop
                problems.append(f"{what} {label} {layer}: {e}")
                continue
            rec = {"what": what, "unit": label, "layer": layer, "n_ours": len(ours)}
            if what == "within":
                expected = {fid for fid, out, _ in rows if out is not None and out <= 1e-6}
                edge = {fid for fid, out, on_edge in rows if on_edge or (out is not None and 1e-7 < out < 1e-5)}
            elif what == "intersects":
                expected = {fid for fid, hit, _, _ in rows if hit}
                edge = {fid for fid, hit, touch, dist in rows if touch or (not hit and dist < 1e-9)}
            else:
                d = params["distance"]
                dist = {fid: m for fid, m in rows}
                expected = {fid for fid, m in dist.items() if m <= d}
                edge = {fid for fid, m in dist.items() if abs(m - d) <= max(1e-3 * d, 0.5)}
                devs = [abs(float(p["distance_m"]) - dist[fid]) for fid, p in ours.items()
                        if fid in dist and p.get("distance_m") is not None]
                rec["distance_dev_m"] = max(devs, default=0.0)
                rec["distance_dev_rel"] = max((dv / max(dist[fid], 1.0) for dv, fid in
                                               zip(devs, [f for f, p in ours.items() if f in dist and p.get("distance_m") is not None])),
                                              default=0.0)
            rec["n_postgis"] = len(expected)
            rec["extra"], rec["missing"], rec["edge"] = compare_ids(ours, expected, edge)
            results.append(rec)
    return results, problems


def report_items(results, problems):
    """Prints the item comparisons; returns the failing ones."""
    failing = [r for r in results if r["extra"] or r["missing"]]
    print()
    for what in ("within", "intersects", "near"):
        rs = [r for r in results if r["what"] == what]
        if not rs:
            continue
        print(f"items?{what}: {len(rs)} comparisons, {sum(r['n_ours'] for r in rs)} ids answered, "
              f"{sum(r['n_postgis'] for r in rs)} by PostGIS; same ids {sum(not (r['extra'] or r['missing']) for r in rs)}, "
              f"different {sum(bool(r['extra'] or r['missing']) for r in rs)}; "
              f"features PostGIS puts on the edge that differ: {sum(len(r['edge']) for r in rs)}")
        if what == "near":
            print(f"  distance_m vs ST_Distance(geography): max {max(r['distance_dev_m'] for r in rs):.3g} m, "
                  f"max relative {max(r['distance_dev_rel'] for r in rs):.2g}")
    for r in failing[:20]:
        print(f"  DIFFERENT {r['what']} {r['unit']} {r['layer']}: only ours {r['extra'][:5]}, only PostGIS {r['missing'][:5]}")
    for r in [r for r in results if r["edge"]][:10]:
        print(f"  edge {r['what']} {r['unit']} {r['layer']}: {r['edge'][:5]}")
    if problems:
        print(f"items not compared ({len(problems)}):")
        for p in problems[:20]:
            print("  " + p)
    return failing


# ---------------------------------------------------------------- comparison


def classify(ours, uc, cu):
    tol = lambda ref: max(REL * abs(ref), ABS)
    agree_uc = abs(ours - uc) <= tol(uc)
    agree_cu = abs(ours - cu) <= tol(cu)
    lo, hi = min(uc, cu), max(uc, cu)
    in_spread = lo - tol(lo) <= ours <= hi + tol(hi)
    nearest = uc if abs(ours - uc) <= abs(ours - cu) else cu
    dev = ours - nearest
    return {
        "agree_uc": agree_uc,
        "agree_cu": agree_cu,
        "agree": agree_uc or agree_cu,
        "in_spread": in_spread,
        "dev": dev,
        "rel": abs(dev) / max(abs(nearest), ABS),
        "spread": hi - lo,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("server", help="yizhangtu base URL, e.g. http://127.0.0.1:8080")
    ap.add_argument("dsn", help='PostgreSQL DSN, e.g. "host=127.0.0.1 port=5432 dbname=oracle user=postgres"')
    ap.add_argument("--drawn", type=int, default=40, help="random drawn polygons (default 40)")
    ap.add_argument("--seed", type=int, default=10, help="random seed for the drawn polygons")
    ap.add_argument("--layers", help="comma-separated layers to check (default: every non-admin layer)")
    ap.add_argument("--units", help="comma-separated unit codes to check (default: every district and town)")
    ap.add_argument("--jobs", type=int, default=2, help="concurrent HTTP requests (default 2)")
    ap.add_argument("--worst", type=int, default=10, help="how many worst disagreements to list")
    ap.add_argument("--densify-m", type=float, default=100.0,
                    help="also compare with PostGIS on rings densified along geodesics to this segment "
                         "length in metres (0: off; default 100)")
    ap.add_argument("--near", type=int, default=50, help="random points for the near= comparison (default 50)")
    ap.add_argument("--no-items", action="store_true", help="leave out the within/intersects/near comparison")
    ap.add_argument("--own-tables", action="store_true",
                    help="the server runs on the PostgreSQL database DSN names: compare with its own rows")
    ap.add_argument("--json", help="write every comparison to this JSON file")
    ap.add_argument("--fail-rel", type=float, default=1e-5,
                    help="exit 1 for an answer outside PostGIS's envelope by more than this share of it (default 1e-5)")
    ap.add_argument("--fail-m2", type=float, default=1.0,
                    help="... and by more than this many m² (default 1)")
    args = ap.parse_args()
    base = args.server.rstrip("/")
    t0 = time.time()

    all_layers = collections(base)
    conn = psycopg.connect(args.dsn)
    if args.densify_m and Geodesic is None:
        print("geographiclib is not installed (pip install geographiclib): no densified comparison")
        args.densify_m = 0
    if args.own_tables:
        with conn.cursor() as cur:
            cur.execute("SELECT l.id, (SELECT count(*) FROM public.features f WHERE f.layer = l.id) "
                        "FROM public.layers l ORDER BY l.id")
            in_db = dict(cur.fetchall())
        if sorted(in_db) != sorted(all_layers):
            sys.exit(f"the server lists layers {sorted(all_layers)} but its database has {sorted(in_db)}")
    counts, loaded = load(base, conn, all_layers, args.densify_m, own=args.own_tables)
    if args.own_tables:
        served = {l: http_json(f"{base}/collections/{urllib.parse.quote(l)}/items?limit=1&f=json")[1]["numberMatched"]
                  for l in all_layers}
        if served != in_db:
            sys.exit(f"feature counts served {served} differ from the database's {in_db}")
        print(f"the server's own tables: {len(in_db)} layers, {sum(in_db.values())} features, as served")
    print(f"loaded {len(all_layers)} layers, {sum(c for c, _ in counts.values())} features "
          f"({sum(i for _, i in counts.values())} with invalid geometry: "
          f"{ {k: i for k, (c, i) in counts.items() if i} })")

    layers = args.layers.split(",") if args.layers else [l for l in all_layers if l not in ADMIN_LAYERS]

    # Units: every district and town, and the drawn polygons, each with its geometry as EWKB hex
    # and densified the same way as the layers.
    dense_of = lambda g: ewkb(densify(g, args.densify_m, {})).hex() if args.densify_m else None
    units = []  # (kind, key, label, skip, ewkb_hex, densified ewkb_hex)
    for ul in UNIT_LAYERS:
        for f in sorted(loaded[ul], key=lambda f: str(f["properties"].get("admin_code") or f["id"])):
            g = f.get("geometry")
            if g is None:
                continue
            code = str(f["properties"].get("admin_code") or f["id"])
            if args.units and code not in args.units.split(","):
                continue
            units.append(("area", code, f"{code} {f['properties'].get('name', '')}", ul != "districts",
                          ewkb(g).hex(), dense_of(g)))
    with conn.cursor() as cur:
        cur.execute(f'SELECT ST_XMin(geom), ST_YMin(geom), ST_XMax(geom), ST_YMax(geom) FROM {SCHEMA}."districts"')
        boxes = cur.fetchall()
    drawn = drawn_polygons(random.Random(args.seed), boxes, args.drawn)
    for i, poly in enumerate(drawn):
        units.append(("drawn", i, f"drawn#{i}", True, ewkb(poly).hex(), dense_of(poly)))

    def ask(unit, layer):
        kind, key = unit[0], unit[1]
        q = urllib.parse.urlencode({"layers": layer})
        if kind == "area":
            return http_json(f"{base}/areas/{urllib.parse.quote(str(key))}/coverage?{q}")
        return http_json(f"{base}/analysis/coverage?{q}", body=drawn[key])

    jobs = [(u, l) for u in units for l in layers]
    print(f"{len(units)} units ({sum(u[0] == 'area' for u in units)} districts/towns, "
          f"{sum(u[0] == 'drawn' for u in units)} drawn) x {len(layers)} layers = {len(jobs)} comparisons")
    results, problems = [], []
    with cf.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(ask, u, l): (u, l) for u, l in jobs}
        for fut in futures:  # in submission order; PostGIS work overlaps the HTTP requests
            u, l = futures[fut]
            kind, key, label, skip, ghex, dhex = u
            pg = postgis_figures(conn, l, ghex, skip, dhex)
            try:
                status, doc = fut.result()
            except Exception as e:  # noqa: BLE001 - report, do not stop
                problems.append(f"{label} {l}: request failed: {e}")
                continue
            if status != 200 or not isinstance(doc, dict):
                problems.append(f"{label} {l}: HTTP {status} {str(doc)[:200]}")
                continue
            rows = doc.get("layers") or []
            if len(rows) != 1 or rows[0].get("layer") != l:
                problems.append(f"{label} {l}: unexpected layers {[r.get('layer') for r in rows]}")
                continue
            row = rows[0]
            if "error" in pg:
                problems.append(f"{label} {l}: PostGIS error {pg['error']}")
                continue
            ours = row["covered_area"]["m2"]
            area_m2 = doc["area"]["m2"]
            rec = {
                "unit": label, "kind": kind, "layer": l, "ours": ours,
                "uc": pg["uc"], "cu": pg["cu"], "uc_g": pg["uc_g"], "cu_g": pg["cu_g"],
                "share": row["share_of_area"], "area_m2": area_m2, "pg_area_m2": pg["unit"],
                "dl_ours": row.get("district_level_features_not_counted"),
                "dl_pg": pg["dl"] if skip else 0,
            }
            rec.update(classify(ours, pg["uc"], pg["cu"]))
            if pg["uc_g"] is not None:
                g = classify(ours, pg["uc_g"], pg["cu_g"])
                rec.update(agree_g=g["agree"], in_spread_g=g["in_spread"], dev_g=g["dev"], rel_g=g["rel"])
            results.append(rec)

    # ------------------------------------------------------------ summary
    n = len(results)
    by_kind = lambda k: [r for r in results if r["kind"] == k]
    print()
    print(f"comparisons: {n} (+{len(problems)} that could not be compared)")
    for label, rs in (("all", results), ("districts/towns", by_kind("area")), ("drawn", by_kind("drawn"))):
        if not rs:
            continue
        print(f"  {label:16} {len(rs):5}: agree 1e-6/0.01 m² with union-then-clip {sum(r['agree_uc'] for r in rs)}, "
              f"with clip-then-union {sum(r['agree_cu'] for r in rs)}, with either {sum(r['agree'] for r in rs)}; "
              f"within the PostGIS spread {sum(r['in_spread'] for r in rs)}; outside {sum(not r['in_spread'] for r in rs)}")
    nonzero = [r for r in results if max(r["uc"], r["cu"]) > 0]
    print(f"  non-zero covered area (PostGIS): {len(nonzero)}; of them agree {sum(r['agree'] for r in nonzero)}, "
          f"within spread {sum(r['in_spread'] for r in nonzero)}")
    spreads = sorted(r["spread"] for r in results)
    if spreads:
        print(f"  PostGIS's own spread |uc - cu|: median {spreads[len(spreads) // 2]:.4g} m², max {spreads[-1]:.4g} m²")
    dense = [r for r in results if "agree_g" in r]
    if dense:
        print(f"  against PostGIS on rings densified to {args.densify_m:g} m along geodesics: agree {sum(r['agree_g'] for r in dense)}, "
              f"within that spread {sum(r['in_spread_g'] for r in dense)}, outside {sum(not r['in_spread_g'] for r in dense)} "
              f"(of the {sum(not r['in_spread'] for r in dense)} outside the plain spread, "
              f"{sum(r['in_spread_g'] and not r['in_spread'] for r in dense)} are within the densified one)")

    # The envelope of PostGIS's own answers: plain and densified, union-then-clip and
    # clip-then-union. The plain overlay puts cut points on the lon/lat chord and then measures
    # each cut piece as a geodesic of its own; the densified one cuts along the geodesics.
    # yizhangtu finds cuts where chords cross (as the plain overlay, and as the data were made)
    # and keeps each edge's geodesic through its cut points, so on slivers along long edges it
    # may lie between the two, or a little beyond both.
    def envelope(r):
        vals = [r["uc"], r["cu"]] + ([r["uc_g"], r["cu_g"]] if r.get("uc_g") is not None else [])
        return min(vals), max(vals)

    def outside_by(r):
        lo, hi = envelope(r)
        return r["ours"] - hi if r["ours"] > hi else (r["ours"] - lo if r["ours"] < lo else 0.0)

    env_out = [r for r in results if abs(outside_by(r)) > max(REL * abs(r["ours"]), ABS)]
    failing = [r for r in results if abs(outside_by(r)) > max(args.fail_rel * abs(r["ours"]), args.fail_m2)]
    print(f"outside the envelope of all four PostGIS answers by more than 1e-6/0.01 m²: {len(env_out)}; "
          f"by more than the failing tolerance {args.fail_rel:g}/{args.fail_m2:g} m²: {len(failing)}"
          + "".join(f"\n  {r['unit']} {r['layer']}: ours {r['ours']:.2f}, envelope {envelope(r)[0]:.2f}..{envelope(r)[1]:.2f} "
                    f"({outside_by(r):+.2f} m², {abs(outside_by(r)) / max(abs(r['ours']), ABS):.1e})" for r in env_out[:20]))

    over = [r for r in results if r["share"] > 1 or r["ours"] > r["area_m2"]]
    print(f"share > 1 or covered > area: {len(over)}"
          + "".join(f"\n  {r['unit']} {r['layer']}: share {r['share']} covered {r['ours']} area {r['area_m2']}" for r in over[:10]))
    dl_mismatch = [r for r in results if r["dl_ours"] != r["dl_pg"]]
    print(f"district_level_features_not_counted differing from PostGIS's count: {len(dl_mismatch)}"
          + "".join(f"\n  {r['unit']} {r['layer']}: ours {r['dl_ours']} PostGIS {r['dl_pg']}" for r in dl_mismatch[:10]))
    seen, area_diff = set(), []
    for r in results:
        if r["unit"] not in seen:
            seen.add(r["unit"])
            d = r["area_m2"] - r["pg_area_m2"]
            if abs(d) > max(REL * r["pg_area_m2"], ABS):
                area_diff.append((r["unit"], r["area_m2"], r["pg_area_m2"]))
    print(f"unit areas differing from PostGIS ST_Area(geography) beyond 1e-6/0.01 m²: {len(area_diff)} of {len(seen)}"
          + "".join(f"\n  {u}: ours {a:.2f} PostGIS {p:.2f}" for u, a, p in area_diff[:10]))

    # A district's answer counts every feature a drawn copy of its polygon counts, and its
    # district-level features besides: a union of more polygons is never smaller.
    shrunk = []
    for u in units:
        if u[0] != "area" or u[3]:
            continue
        g = next(f["geometry"] for f in loaded["districts"]
                 if str(f["properties"].get("admin_code") or f["id"]) == u[1])
        q = urllib.parse.urlencode({"layers": ",".join(layers)})
        s1, whole = http_json(f"{base}/areas/{urllib.parse.quote(u[1])}/coverage?{q}")
        s2, copy = http_json(f"{base}/analysis/coverage?{q}", body=g)
        if s1 != 200 or s2 != 200:
            problems.append(f"{u[2]}: monotonicity check got HTTP {s1}/{s2}")
            continue
        for a, b in zip(whole["layers"], copy["layers"]):
            if a["covered_area"]["m2"] < b["covered_area"]["m2"] - ABS:
                shrunk.append((u[2], a["layer"], a["covered_area"]["m2"], b["covered_area"]["m2"]))
    print(f"district answers smaller than the same polygon drawn (which leaves district-level features out): "
          f"{len(shrunk)}" + "".join(f"\n  {u} {l}: district {x:.2f} < drawn {y:.2f} ({x - y:+.2f})" for u, l, x, y in shrunk))

    bad = [r for r in results if not r["agree"]]
    bad.sort(key=lambda r: (not r["in_spread"], r["rel"]), reverse=True)
    print(f"\nworst {min(args.worst, len(bad))} disagreements (outside the spread first, then by relative deviation "
          f"from the nearer PostGIS value):")
    print(f"  {'unit':24} {'layer':18} {'ours m²':>14} {'union-then-clip':>16} {'clip-then-union':>16} {'dev m²':>9} "
          f"{'rel':>8} spread  {'densified u-t-c':>16} {'densified c-t-u':>16} {'dev_g m²':>9}")
    for r in bad[: args.worst]:
        dense_cols = (f"{r['uc_g']:16.2f} {r['cu_g']:16.2f} {r['dev_g']:9.2f}" if "agree_g" in r else "")
        print(f"  {r['unit'][:24]:24} {r['layer'][:18]:18} {r['ours']:14.2f} {r['uc']:16.2f} {r['cu']:16.2f} "
              f"{r['dev']:9.2f} {r['rel']:8.1e} {'in ' if r['in_spread'] else 'OUT'}     {dense_cols}")
    if problems:
        print(f"\nnot compared ({len(problems)}):")
        for p in problems[:20]:
            print("  " + p)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"results": results, "problems": problems, "drawn": drawn}, fh, ensure_ascii=False, indent=1)
    item_failing, item_problems = [], []
    if not args.no_items:
        points = near_points(random.Random(args.seed + 1), boxes, args.near)
        item_results, item_problems = check_items(base, conn, units, drawn, points, layers, args.jobs)
        item_failing = report_items(item_results, item_problems)
        if args.json:
            with open(args.json + ".items.json", "w") as fh:
                json.dump(item_results, fh, ensure_ascii=False, indent=1)
    print(f"\n{time.time() - t0:.0f} s")
    conn.close()
    sys.exit(1 if failing or over or problems or shrunk or item_failing or item_problems else 0)


if __name__ == "__main__":
    main()
