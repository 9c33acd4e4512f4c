//! A checkpoint tensor's f32 values: decoded into a buffer of their own, or read in place from the mapped
//! weights file.
//!
//! Read in place, the weights cost a cold process no fresh memory: the file's pages are already in the page
//! cache, and mapping them touches nothing new. Copied, 183 MB of R-50 weights were 183 MB of fresh pages,
//! which on a VM that hands freed memory back to its host cost a cold load 0.6-1.2 s (README,
//! Performance).

use std::ops::Deref;

use burn::tensor::{AllocationProperty, Bytes, DType, TensorData};

/// f32 values, row-major; compare and read them as a slice.
#[derive(Clone)]
pub struct Values(Repr);

#[derive(Clone)]
enum Repr {
    Owned(Vec<f32>),
    /// Little-endian f32s, 4-byte aligned, in a slice of a mapped file (kept mapped while referenced).
    Mapped(bytes::Bytes),
}

impl Values {
    /// `raw` (a slice of a mapped file) read in place as f32 values, where it can be: a little-endian machine
    /// and an address aligned for f32 (safetensors pads its header to 8 bytes, so f32 tensors are).
    pub(crate) fn in_place(raw: bytes::Bytes) -> Option<Self> {
        let fits = cfg!(target_endian = "little") && raw.len() % 4 == 0 && raw.as_ptr().align_offset(4) == 0;
        fits.then_some(Self(Repr::Mapped(raw)))
    }

    /// Whether the values are read in place from a mapped file.
    #[cfg(test)]
    pub(crate) fn is_in_place(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }

    /// The values as a tensor's data of `shape` (in place when they are).
    pub(crate) fn into_tensor_data(self, shape: Vec<usize>) -> TensorData {
        match self.0 {
            Repr::Owned(values) => TensorData::new(values, shape),
            Repr::Mapped(raw) => TensorData::from_bytes(Bytes::from_shared(raw, AllocationProperty::File), shape, DType::F32),
        }
    }
}

impl Deref for Values {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &self.0 {
            Repr::Owned(values) => values,
            // `in_place` checked the length and alignment, so the cast cannot fail.
            Repr::Mapped(raw) => bytemuck::cast_slice(raw),
        }
    }
}

/// Writing to mapped values copies them first (the file is never written).
impl std::ops::DerefMut for Values {
    fn deref_mut(&mut self) -> &mut [f32] {
        if let Repr::Mapped(_) = self.0 {
            self.0 = Repr::Owned(self.to_vec());
        }
        match &mut self.0 {
            Repr::Owned(values) => values,
            Repr::Mapped(_) => unreachable!("copied above"),
        }
    }
}

impl FromIterator<f32> for Values {
    fn from_iter<I: IntoIterator<Item = f32>>(values: I) -> Self {
        Self(Repr::Owned(values.into_iter().collect()))
    }
}

impl PartialEq<Vec<f32>> for Values {
    fn eq(&self, other: &Vec<f32>) -> bool {
        **self == **other
    }
}

impl From<Vec<f32>> for Values {
    fn from(values: Vec<f32>) -> Self {
        Self(Repr::Owned(values))
    }
}

impl PartialEq for Values {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Values {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1.5, -2.0, 3.25 as little-endian f32 bytes, 4-byte aligned.
    #[repr(C, align(4))]
    struct Aligned([u8; 12]);
    static RAW: Aligned = Aligned([0, 0, 192, 63, 0, 0, 0, 192, 0, 0, 80, 64]);

    #[test]
    fn read_in_place_only_when_aligned_and_whole() {
        let raw = bytes::Bytes::from_static(&RAW.0);
        let values = Values::in_place(raw.clone()).expect("aligned whole f32s");
        assert_eq!(&values[..], &[1.5, -2.0, 3.25]);
        assert_eq!(values, Values::from(vec![1.5, -2.0, 3.25]));
        assert!(Values::in_place(raw.slice(1..5)).is_none(), "misaligned");
        assert!(Values::in_place(raw.slice(0..6)).is_none(), "not whole f32s");
        let mut copy = values.clone();
        copy[1] = 0.5;
        assert_eq!(copy, vec![1.5, 0.5, 3.25], "written after a copy");
        assert_eq!(&values[..], &[1.5, -2.0, 3.25], "the mapped bytes unchanged");
        let data = values.into_tensor_data(vec![3]);
        assert_eq!(data.as_slice::<f32>().unwrap(), &[1.5, -2.0, 3.25]);
    }
}
