//! Weights: mmdetection checkpoints (as safetensors) into the model.

mod checkpoint;
#[cfg(feature = "download")]
#[doc(hidden)]
pub mod download;
mod mapping;
mod pth;
mod state_dict;
mod values;
#[doc(hidden)]
pub mod synth;

pub use checkpoint::{cache_dir, convert_pth, resolve_weights, resolve_weights_in};
pub use mapping::{KeySpec, expected_keys, load_state_dict};
pub use state_dict::{HostTensor, StateDict};
pub use values::Values;
