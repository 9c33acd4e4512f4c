//! Reading device tensors back to the host: the one place that converts dtypes (f16 activations come back as
//! f32), turns a device failure into [`Error::Device`], and counts what crosses from a GPU to the host.

use std::cell::Cell;

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::device::DeviceProfile;
use crate::error::{Error, Result};

thread_local! {
    // Per thread, so that a caller measuring its own predictions is not counting another thread's.
    static COUNTS: Cell<ReadbackStats> = const { Cell::new(ReadbackStats { count: 0, bytes: 0 }) };
}

/// Read-backs from GPU devices made by this thread since it started (flex tensors are host memory and are not
/// counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadbackStats {
    /// Tensors read back.
    pub count: u64,
    /// Their size on the device.
    pub bytes: u64,
}

impl ReadbackStats {
    const fn plus(self, bytes: usize) -> Self {
        Self { count: self.count + 1, bytes: self.bytes + bytes as u64 }
    }

    /// What was read between `earlier` and `self` (both taken on the same thread: the counters are per thread).
    pub fn since(self, earlier: Self) -> Self {
        Self { count: self.count.saturating_sub(earlier.count), bytes: self.bytes.saturating_sub(earlier.bytes) }
    }
}

/// This thread's counters now.
pub fn stats() -> ReadbackStats {
    COUNTS.get()
}

/// Counts a read of `numel` values of `dtype` from `device` (host memory excepted).
fn count(device: &Device, numel: usize, dtype: burn::tensor::DType) {
    if !DeviceProfile::of(device).is_host() {
        COUNTS.set(COUNTS.get().plus(numel * dtype.size()));
    }
}

/// A float tensor's values as f32, whatever its dtype on the device.
pub fn read_f32<const D: usize>(t: Tensor<D>, stage: &'static str) -> Result<Vec<f32>> {
    count(&t.device(), t.shape().num_elements(), t.dtype());
    let data: TensorData = t.try_into_data().map_err(|e| Error::device(stage, e))?;
    data.convert::<f32>().try_into_vec::<f32>().map_err(|e| Error::device(stage, e))
}

/// An integer tensor's values as u32.
pub fn read_u32<const D: usize>(t: Tensor<D, Int>, stage: &'static str) -> Result<Vec<u32>> {
    count(&t.device(), t.shape().num_elements(), t.dtype());
    let data: TensorData = t.try_into_data().map_err(|e| Error::device(stage, e))?;
    data.convert::<u32>().try_into_vec::<u32>().map_err(|e| Error::device(stage, e))
}
