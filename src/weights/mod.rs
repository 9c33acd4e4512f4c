//! Weights: mmdetection checkpoints (safetensors, or `.pth` read natively) into the model.
//!
//! `keys` says what a model needs; `state_dict` (safetensors) and `pth` read files against it; `checkpoint` sizes
//! the model from a file and loads it (`standardize` folds gn+ws's weight standardisation); `mapping` is the one
//! place where keys meet module fields; `resolve` turns what a user has (nothing, a `.pth`) into a file to load.

mod checkpoint;
#[cfg(feature = "download")]
#[doc(hidden)]
pub mod download;
mod keys;
mod mapping;
mod pth;
mod resolve;
mod standardize;
mod state_dict;
mod values;
#[doc(hidden)]
pub mod synth;

pub use checkpoint::Checkpoint;
pub use resolve::{cache_dir, convert_pth, resolve_weights, resolve_weights_in};
pub use state_dict::{HostTensor, StateDict};
pub use values::Values;

/// The weight mapping, for the stage hooks the tests use (the crate root's `internals`).
pub(crate) mod internals {
    pub use super::keys::KeySpec;
    pub use super::mapping::{expected_keys, load_state_dict};
}
