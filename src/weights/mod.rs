//! Weights: mmdetection checkpoints (as safetensors) into the model.

mod checkpoint;
pub mod download;
mod mapping;
mod pth;
mod state_dict;
pub mod synth;

pub use checkpoint::{convert_pth, resolve_weights, resolve_weights_in};
pub use mapping::{KeySpec, expected_keys, load_state_dict};
pub use state_dict::{HostTensor, StateDict};
