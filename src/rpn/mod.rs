//! Region proposal network: P2..P6 -> objectness and deltas -> proposals.

pub mod anchors;
mod head;
mod proposals;

pub use head::{RpnHead, RpnHeadConfig};
pub use proposals::{LevelCandidates, Proposals, proposals};
