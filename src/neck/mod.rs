//! Neck: C2..C5 -> the feature pyramid P2..P6.

mod fpn;

pub use fpn::{Fpn, FpnConfig, PyramidFeatures};
