//! Plain data types of the domain: layers, features, admin codes.
//! No I/O here; everything else in the crate builds on these.

mod feature;
mod layer;

pub use feature::{Feature, FeatureId, Properties, RawFeature};
pub use layer::{GeometryType, Layer, LayerId};
