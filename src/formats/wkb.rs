//! Well-Known Binary (ISO/OGC simple features, 2D, little-endian) for the `geometry` column.
//! Hand-written because it is small, and so the stored bytes are exactly what PostGIS and GDAL read.

use geo::{
    Coord, Geometry, GeometryCollection, LineString, MultiLineString, MultiPoint, MultiPolygon,
    Point, Polygon,
};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WkbError {
    #[error("WKB ends early at byte {0}")]
    Truncated(usize),
    #[error("unsupported WKB geometry type {0}")]
    UnsupportedType(u32),
    #[error("bad WKB byte order marker {0}")]
    ByteOrder(u8),
    #[error("WKB nests too deep")]
    TooDeep,
}

/// Encodes a geometry as little-endian 2D WKB.
///
/// ```
/// use geo::{point, Geometry};
/// let bytes = yizhangtu::formats::wkb::encode(&Geometry::Point(point!(x: 105.7, y: 29.7)));
/// assert_eq!(bytes.len(), 21);
/// assert_eq!(yizhangtu::formats::wkb::decode(&bytes).unwrap(), Geometry::Point(point!(x: 105.7, y: 29.7)));
/// ```
pub fn encode(geometry: &Geometry<f64>) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_geometry(&mut out, geometry);
    out
}

fn header(out: &mut Vec<u8>, kind: u32) {
    out.push(1);
    out.extend_from_slice(&kind.to_le_bytes());
}

fn count(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

fn coord(out: &mut Vec<u8>, c: Coord<f64>) {
    out.extend_from_slice(&c.x.to_le_bytes());
    out.extend_from_slice(&c.y.to_le_bytes());
}

fn ring(out: &mut Vec<u8>, line: &LineString<f64>) {
    count(out, line.0.len());
    for c in &line.0 {
        coord(out, *c);
    }
}

fn polygon_body(out: &mut Vec<u8>, p: &Polygon<f64>) {
    if p.exterior().0.is_empty() {
        count(out, 0);
        return;
    }
    count(out, 1 + p.interiors().len());
    ring(out, p.exterior());
    for hole in p.interiors() {
        ring(out, hole);
    }
}

fn write_geometry(out: &mut Vec<u8>, g: &Geometry<f64>) {
    match g {
        Geometry::Point(p) => {
            header(out, 1);
            coord(out, p.0);
        }
        Geometry::LineString(l) => {
            header(out, 2);
            ring(out, l);
        }
        Geometry::Polygon(p) => {
            header(out, 3);
            polygon_body(out, p);
        }
        Geometry::MultiPoint(mp) => {
            header(out, 4);
            count(out, mp.0.len());
            for p in &mp.0 {
                write_geometry(out, &Geometry::Point(*p));
            }
        }
        Geometry::MultiLineString(ml) => {
            header(out, 5);
            count(out, ml.0.len());
            for l in &ml.0 {
                header(out, 2);
                ring(out, l);
            }
        }
        Geometry::MultiPolygon(mp) => {
            header(out, 6);
            count(out, mp.0.len());
            for p in &mp.0 {
                header(out, 3);
                polygon_body(out, p);
            }
        }
        Geometry::GeometryCollection(gc) => {
            header(out, 7);
            count(out, gc.0.len());
            for g in &gc.0 {
                write_geometry(out, g);
            }
        }
        Geometry::Line(l) => write_geometry(out, &Geometry::LineString(LineString::from(*l))),
        Geometry::Rect(r) => write_geometry(out, &Geometry::Polygon(r.to_polygon())),
        Geometry::Triangle(t) => write_geometry(out, &Geometry::Polygon(t.to_polygon())),
    }
}

/// Decodes 2D WKB in either byte order (Z/M/ZM and EWKB SRID flags are read and the extra
/// ordinates dropped, so files from other tools load too).
pub fn decode(bytes: &[u8]) -> Result<Geometry<f64>, WkbError> {
    let mut r = Reader { bytes, pos: 0 };
    r.geometry(0)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], WkbError> {
        let end = self.pos + N;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(WkbError::Truncated(self.pos))?;
        self.pos = end;
        Ok(slice.try_into().expect("slice has length N"))
    }

    fn u32(&mut self, le: bool) -> Result<u32, WkbError> {
        let b = self.take::<4>()?;
        Ok(if le {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn f64(&mut self, le: bool) -> Result<f64, WkbError> {
        let b = self.take::<8>()?;
        Ok(if le {
            f64::from_le_bytes(b)
        } else {
            f64::from_be_bytes(b)
        })
    }

    /// A count, bounded by what the remaining bytes could hold so corrupt input cannot allocate.
    fn len(&mut self, le: bool, min_item: usize) -> Result<usize, WkbError> {
        let n = self.u32(le)? as usize;
        if n.saturating_mul(min_item) > self.bytes.len().saturating_sub(self.pos) {
            return Err(WkbError::Truncated(self.pos));
        }
        Ok(n)
    }

    fn coords(&mut self, le: bool, dims: usize) -> Result<LineString<f64>, WkbError> {
        let n = self.len(le, 8 * dims)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.coord(le, dims)?);
        }
        Ok(LineString(v))
    }

    fn coord(&mut self, le: bool, dims: usize) -> Result<Coord<f64>, WkbError> {
        let x = self.f64(le)?;
        let y = self.f64(le)?;
        for _ in 2..dims {
            self.f64(le)?;
        }
        Ok(Coord { x, y })
    }

    fn polygon(&mut self, le: bool, dims: usize) -> Result<Polygon<f64>, WkbError> {
        let n = self.len(le, 4)?;
        if n == 0 {
            return Ok(Polygon::new(LineString(vec![]), vec![]));
        }
        let exterior = self.coords(le, dims)?;
        let mut holes = Vec::with_capacity(n - 1);
        for _ in 1..n {
            holes.push(self.coords(le, dims)?);
        }
        Ok(Polygon::new(exterior, holes))
    }

    fn geometry(&mut self, depth: usize) -> Result<Geometry<f64>, WkbError> {
        if depth > 32 {
            return Err(WkbError::TooDeep);
        }
        let (kind, le, stride) = self.header()?;
        let dims = stride / 8;
        Ok(match kind {
            Kind::Point => Geometry::Point(Point(self.coord(le, dims)?)),
            Kind::LineString => Geometry::LineString(self.coords(le, dims)?),
            Kind::Polygon => Geometry::Polygon(self.polygon(le, dims)?),
            _ => {
                let n = self.len(le, 5)?;
                let mut parts = Vec::with_capacity(n);
                for _ in 0..n {
                    parts.push(self.geometry(depth + 1)?);
                }
                match kind {
                    Kind::MultiPoint => Geometry::MultiPoint(MultiPoint(
                        parts
                            .into_iter()
                            .filter_map(|g| Point::try_from(g).ok())
                            .collect(),
                    )),
                    Kind::MultiLineString => Geometry::MultiLineString(MultiLineString(
                        parts
                            .into_iter()
                            .filter_map(|g| LineString::try_from(g).ok())
                            .collect(),
                    )),
                    Kind::MultiPolygon => Geometry::MultiPolygon(MultiPolygon(
                        parts
                            .into_iter()
                            .filter_map(|g| Polygon::try_from(g).ok())
                            .collect(),
                    )),
                    _ => Geometry::GeometryCollection(GeometryCollection(parts)),
                }
            }
        })
    }
}

/// A geometry kind, as a WKB walk ([`walk`]) reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Point,
    LineString,
    Polygon,
    MultiPoint,
    MultiLineString,
    MultiPolygon,
    GeometryCollection,
}

/// The coordinates of one point, line or ring, read in place from the WKB bytes.
#[derive(Debug, Clone, Copy)]
pub struct Coords<'a> {
    bytes: &'a [u8],
    le: bool,
    /// Bytes per coordinate (16, 24 or 32: Z and M are skipped).
    stride: usize,
}

impl<'a> Coords<'a> {
    pub fn len(&self) -> usize {
        self.bytes.len() / self.stride
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// x and y of each coordinate.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Coord<f64>> + 'a {
        let le = self.le;
        self.bytes.chunks_exact(self.stride).map(move |c| {
            let x: [u8; 8] = c[..8].try_into().expect("stride is at least 16");
            let y: [u8; 8] = c[8..16].try_into().expect("stride is at least 16");
            if le {
                Coord {
                    x: f64::from_le_bytes(x),
                    y: f64::from_le_bytes(y),
                }
            } else {
                Coord {
                    x: f64::from_be_bytes(x),
                    y: f64::from_be_bytes(y),
                }
            }
        })
    }
}

/// What a [`walk`] over WKB tells its visitor, in the order of the bytes: each geometry is
/// bracketed by `begin` (with its number of rings or members) and `end`; a point, a line and
/// each ring of a polygon (exterior first) are one `coords` call.
pub trait Visit {
    fn begin(&mut self, _kind: Kind, _parts: usize) {}
    fn coords(&mut self, coords: Coords<'_>);
    fn end(&mut self, _kind: Kind) {}
}

/// Walks WKB without building a geometry (issue 15: encoders read the engine's compact
/// features in place). Accepts what [`decode`] accepts; members of a multi-geometry are
/// reported as they are (decode drops members of the wrong type).
pub fn walk(bytes: &[u8], visitor: &mut impl Visit) -> Result<(), WkbError> {
    let mut r = Reader { bytes, pos: 0 };
    r.walk(visitor, 0)
}

/// The kind of the outermost geometry of WKB, from its header alone.
pub fn kind(bytes: &[u8]) -> Result<Kind, WkbError> {
    let mut r = Reader { bytes, pos: 0 };
    r.header().map(|(kind, _, _)| kind)
}

impl Reader<'_> {
    /// Byte order, kind and bytes per coordinate of the geometry that starts here.
    fn header(&mut self) -> Result<(Kind, bool, usize), WkbError> {
        let order = self.take::<1>()?[0];
        let le = match order {
            0 => false,
            1 => true,
            other => return Err(WkbError::ByteOrder(other)),
        };
        let raw = self.u32(le)?;
        let (mut has_z, mut has_m) = (raw & 0x8000_0000 != 0, raw & 0x4000_0000 != 0);
        // EWKB flags (PostGIS) and ISO thousands both say which extra ordinates follow.
        if raw & 0x2000_0000 != 0 {
            self.u32(le)?; // SRID
        }
        let mut code = raw & 0x0fff_ffff;
        match code / 1000 {
            1 => has_z = true,
            2 => has_m = true,
            3 => (has_z, has_m) = (true, true),
            _ => {}
        }
        code %= 1000;
        let kind = match code {
            1 => Kind::Point,
            2 => Kind::LineString,
            3 => Kind::Polygon,
            4 => Kind::MultiPoint,
            5 => Kind::MultiLineString,
            6 => Kind::MultiPolygon,
            7 => Kind::GeometryCollection,
            other => return Err(WkbError::UnsupportedType(other)),
        };
        Ok((kind, le, 8 * (2 + has_z as usize + has_m as usize)))
    }

    fn run(&mut self, n: usize, le: bool, stride: usize) -> Result<Coords<'_>, WkbError> {
        let start = self.pos;
        let end = n
            .checked_mul(stride)
            .and_then(|len| start.checked_add(len))
            .filter(|&end| end <= self.bytes.len())
            .ok_or(WkbError::Truncated(start))?;
        self.pos = end;
        Ok(Coords {
            bytes: &self.bytes[start..end],
            le,
            stride,
        })
    }

    fn walk(&mut self, v: &mut impl Visit, depth: usize) -> Result<(), WkbError> {
        if depth > 32 {
            return Err(WkbError::TooDeep);
        }
        let (kind, le, stride) = self.header()?;
        match kind {
            Kind::Point => {
                v.begin(kind, 1);
                let c = self.run(1, le, stride)?;
                v.coords(c);
            }
            Kind::LineString => {
                let n = self.len(le, stride)?;
                v.begin(kind, 1);
                let c = self.run(n, le, stride)?;
                v.coords(c);
            }
            Kind::Polygon => {
                let rings = self.len(le, 4)?;
                v.begin(kind, rings);
                for _ in 0..rings {
                    let n = self.len(le, stride)?;
                    let c = self.run(n, le, stride)?;
                    v.coords(c);
                }
            }
            _ => {
                let n = self.len(le, 5)?;
                v.begin(kind, n);
                for _ in 0..n {
                    self.walk(v, depth + 1)?;
                }
            }
        }
        v.end(kind);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::{line_string, polygon};

    #[test]
    fn round_trips_every_type() {
        let poly = polygon![(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 0.)];
        let geoms = vec![
            Geometry::Point(Point::new(1.5, -2.25)),
            Geometry::LineString(line_string![(x: 1., y: 2.), (x: 3., y: 4.)]),
            Geometry::Polygon(poly.clone()),
            Geometry::MultiPoint(MultiPoint(vec![Point::new(1., 2.), Point::new(3., 4.)])),
            Geometry::MultiLineString(MultiLineString(vec![
                line_string![(x: 1., y: 2.), (x: 3., y: 4.)],
            ])),
            Geometry::MultiPolygon(MultiPolygon(vec![poly.clone(), poly.clone()])),
            Geometry::GeometryCollection(GeometryCollection(vec![
                Geometry::Point(Point::new(9., 9.)),
                Geometry::Polygon(poly),
            ])),
        ];
        for g in geoms {
            assert_eq!(decode(&encode(&g)).unwrap(), g);
        }
    }

    #[test]
    fn point_bytes_match_the_standard() {
        // POINT(1 2) as PostGIS writes it: ST_AsBinary('POINT(1 2)') = 0101000000000000000000F03F0000000000000040
        let bytes = encode(&Geometry::Point(Point::new(1., 2.)));
        let hex: String = bytes.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(hex, "0101000000000000000000F03F0000000000000040");
    }

    #[test]
    fn reads_big_endian_and_ewkb_z() {
        // Big-endian POINT(1 2).
        let be = [
            0u8, 0, 0, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert_eq!(decode(&be).unwrap(), Geometry::Point(Point::new(1., 2.)));
        // EWKB POINT Z with SRID 4490.
        let mut ewkb = vec![1u8];
        ewkb.extend_from_slice(&(1u32 | 0x8000_0000 | 0x2000_0000).to_le_bytes());
        ewkb.extend_from_slice(&4490u32.to_le_bytes());
        for v in [1.0f64, 2.0, 3.0] {
            ewkb.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(decode(&ewkb).unwrap(), Geometry::Point(Point::new(1., 2.)));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(decode(&[]).is_err());
        assert!(decode(&[7]).is_err());
        assert!(decode(&[1, 3, 0, 0, 0, 255, 255, 255, 255]).is_err());
        assert!(decode(&[1, 99, 0, 0, 0]).is_err());
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[1, 7, 0, 0, 0, 1, 0, 0, 0]);
        }
        assert!(decode(&deep).is_err());
    }

    /// Collects what a walk reports, as text.
    struct Trace(Vec<String>);
    impl Visit for Trace {
        fn begin(&mut self, kind: Kind, parts: usize) {
            self.0.push(format!("{kind:?}({parts})"));
        }
        fn coords(&mut self, c: Coords<'_>) {
            let cs: Vec<String> = c.iter().map(|c| format!("{} {}", c.x, c.y)).collect();
            self.0.push(cs.join(","));
        }
        fn end(&mut self, _: Kind) {
            self.0.push("end".into());
        }
    }

    #[test]
    fn walks_every_type_in_place() {
        let poly = polygon!(
            exterior: [(x: 0., y: 0.), (x: 4., y: 0.), (x: 4., y: 4.), (x: 0., y: 0.)],
            interiors: [[(x: 1., y: 1.), (x: 2., y: 1.), (x: 2., y: 2.), (x: 1., y: 1.)]],
        );
        let g = Geometry::GeometryCollection(GeometryCollection(vec![
            Geometry::Point(Point::new(9., 8.)),
            Geometry::MultiPolygon(MultiPolygon(vec![poly])),
            Geometry::LineString(line_string![(x: 1., y: 2.), (x: 3., y: 4.)]),
        ]));
        let mut t = Trace(vec![]);
        walk(&encode(&g), &mut t).unwrap();
        assert_eq!(
            t.0.join(" | "),
            "GeometryCollection(3) | Point(1) | 9 8 | end | MultiPolygon(1) | Polygon(2) \
             | 0 0,4 0,4 4,0 0 | 1 1,2 1,2 2,1 1 | end | end | LineString(1) | 1 2,3 4 | end | end"
        );
        assert_eq!(kind(&encode(&g)), Ok(Kind::GeometryCollection));
        // Big-endian and EWKB Z read as decode reads them.
        let be = [
            0u8, 0, 0, 0, 1, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut t = Trace(vec![]);
        walk(&be, &mut t).unwrap();
        assert_eq!(t.0, ["Point(1)", "1 2", "end"]);
        let mut ewkb = vec![1u8];
        ewkb.extend_from_slice(&(2u32 | 0x8000_0000 | 0x2000_0000).to_le_bytes());
        ewkb.extend_from_slice(&4490u32.to_le_bytes());
        ewkb.extend_from_slice(&2u32.to_le_bytes());
        for v in [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0] {
            ewkb.extend_from_slice(&v.to_le_bytes());
        }
        let mut t = Trace(vec![]);
        walk(&ewkb, &mut t).unwrap();
        assert_eq!(t.0, ["LineString(1)", "1 2,4 5", "end"]);
        // Whatever decode rejects, walk rejects too, without panicking.
        let mut deep = Vec::new();
        for _ in 0..100 {
            deep.extend_from_slice(&[1, 7, 0, 0, 0, 1, 0, 0, 0]);
        }
        for bad in [
            &[][..],
            &[7],
            &[1, 3, 0, 0, 0, 255, 255, 255, 255],
            &[1, 2, 0, 0, 0, 255, 255, 255, 255],
            &[1, 1, 0, 0, 0, 0, 0],
            &[1, 99, 0, 0, 0],
            &deep,
        ] {
            assert!(decode(bad).is_err());
            assert!(walk(bad, &mut Trace(vec![])).is_err(), "{bad:?}");
        }
    }
}
