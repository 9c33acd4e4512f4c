//! Region proposal network (detectron2's `proposal_generator`): P2..P6 -> objectness and deltas -> each image's
//! proposals.

mod anchors;
mod head;
mod proposals;

pub use head::{RpnHead, RpnHeadConfig};
pub use proposals::Proposals;
