//! Geometry work on `geo` types: bounding boxes, validation of what users send, and (later)
//! geodesic measures and CRS transforms. Pure functions, no I/O.

mod area;
mod bbox;
pub mod crs;
mod union;
mod validate;

pub use area::{
    geodesic_area_m2, geodesic_length_m, polygons_of, prepare, BoxRelation, PreparedArea,
    M2_PER_HA, M2_PER_MU,
};
pub use bbox::{padded, Bbox, BboxError};
/// The independent answer the union's tests check against (an overlay of geodesic-densified
/// polygons), for the coverage tests.
#[cfg(test)]
pub(crate) use union::tests::by_overlay_within as overlay_union_within_m2;
pub use union::{
    union_area_m2, union_area_m2_cancellable, union_area_within_m2, union_area_within_measuring_m2,
    PieceHint, UnionWithin,
};
pub use validate::{
    check_size, check_wkt_nesting, part_count, topology_error, topology_problem, validate_geometry,
    validate_topology, within_china, GeometryProblem, MAX_GEOMETRY_PARTS, MAX_GEOMETRY_VERTICES,
    MAX_WKT_DEPTH,
};
