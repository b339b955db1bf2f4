//! Geometry work on `geo` types: bounding boxes, validation of what users send, and (later)
//! geodesic measures and CRS transforms. Pure functions, no I/O.

mod bbox;
mod validate;

pub use bbox::{Bbox, BboxError};
pub use validate::{validate_geometry, GeometryProblem};
