//! The GPU path: a radix select of the k-th largest logit per image (four 8-bit passes of a histogram and a bin
//! pick, all on the device), then a compaction of every anchor whose logit reaches the host's tie floor, with
//! its deltas, into a list that is the only thing read back besides a few counters.
//!
//! Logits are ordered by their IEEE total-order key (`f32::total_cmp`'s). The host chooses by the sigmoid of
//! the logit in f32, where distinct logits can round to the same score (all logits above ~16.6 give 1.0), and
//! breaks such ties by index; so the compaction keeps every logit whose host sigmoid is not below the k-th's
//! (the tie floor, found on the host by bisecting the monotone sigmoid), and the host sorts those exactly as
//! [`super::host`] does. A level with a NaN logit is chosen on the host (NaN's sigmoid sorts by its sign bit).

use std::cmp::Ordering;

use burn::backend::cubecl::dtype_to_storage_type;
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::tensor::{DType, Int, Shape, Tensor, TensorData};
use burn_cubecl::CubeBackend;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::zeros_client;

use super::host::by_score;
use super::TopAnchors;
use crate::error::Result;
use crate::ops::launch;
use crate::ops::readback::read_u32;
use crate::ops::sigmoid;

/// Words per compacted anchor: flat index, logit bits, four delta bits (f32).
const WORDS: usize = 6;
/// Per image in the select state: the k-th key's prefix, how many of it are still wanted, NaN logits.
const STATE: usize = 3;

#[backend_extension(Cube, Fusion)]
pub trait TopKOps: Backend {
    /// `logits` (`rows` images of `row_len` values, contiguous) -> `[rows * 3]` u32 per image: the total-order
    /// key of its `k`-th largest non-NaN logit, how many logits of that key are among the `k`, its NaN count.
    #[fusion(dtype = DType::U32, shape = Shape::from(vec![*rows as usize * STATE]))]
    fn kth_largest_key(logits: FloatTensor<Self>, rows: u32, k: u32) -> IntTensor<Self>;

    /// `logits [N, A, H, W]`, `deltas [N, 4A, H, W]`, `floors [N]` (f32) -> `[N, 1 + 6 A H W]` u32 per image:
    /// how many anchors have a logit at or above the image's floor (total order), then that many records of
    /// [`WORDS`] in no particular order.
    #[fusion(dtype = DType::U32, shape = Shape::from(vec![logits[0], 1 + WORDS * logits.num_elements() / logits[0].max(1)]))]
    fn compact_above(logits: FloatTensor<Self>, deltas: FloatTensor<Self>, floors: FloatTensor<Self>) -> IntTensor<Self>;
}

mod kernel {
    use cubecl::prelude::*;

    /// `f32::total_cmp`'s order as an unsigned key: negative values have every bit flipped, others the sign bit.
    #[cube]
    pub fn order_key(v: f32) -> u32 {
        let bits = u32::reinterpret(v);
        let mut key = bits ^ 0x8000_0000u32;
        if bits >= 0x8000_0000u32 {
            key = bits ^ 0xFFFF_FFFFu32;
        }
        key
    }

    /// NaN by its bits (a compiler may assume `v != v` false).
    #[cube]
    pub fn is_nan(v: f32) -> bool {
        (u32::reinterpret(v) & 0x7FFF_FFFFu32) > 0x7F80_0000u32
    }

    /// One unit per logit: counts the keys whose bits above `shift + 8` match the prefix found so far
    /// (`high_mask` selects them; 0 in the first pass) into bin `(key >> shift) & 255` of the image's pass
    /// histogram, and in the first pass counts NaNs instead of binning them.
    #[cube(launch)]
    pub fn histogram<F: Float>(
        logits: &Tensor<F>,
        state: &mut Tensor<Atomic<u32>>,
        hist: &mut Tensor<Atomic<u32>>,
        row_len: usize,
        shift: u32,
        high_mask: u32,
        #[define(F)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= logits.len() {
            terminate!();
        }
        let row = ABSOLUTE_POS / row_len;
        let v = f32::cast_from(logits[ABSOLUTE_POS]);
        if is_nan(v) {
            if high_mask == 0u32 {
                state[row * 3 + 2].fetch_add(1u32);
            }
        } else {
            let key = order_key(v);
            let prefix = state[row * 3].load();
            if (key & high_mask) == (prefix & high_mask) {
                let bin = ((key >> shift) & 255u32) as usize;
                hist[row * 256 + bin].fetch_add(1u32);
            }
        }
    }

    /// One unit per image: the bin (from the top) holding the wanted logit, appended to the prefix; the
    /// logits in higher bins leave the count still wanted (`k` in the first pass).
    #[cube(launch)]
    pub fn pick_bin(hist: &Tensor<u32>, state: &mut Tensor<u32>, rows: usize, shift: u32, k: u32, first: u32) {
        let row = ABSOLUTE_POS;
        if row >= rows {
            terminate!();
        }
        let mut wanted = state[row * 3 + 1];
        if first == 1u32 {
            wanted = k;
        }
        let mut above = 0u32;
        let mut bin = 0u32;
        let mut found = false;
        for j in 0..256u32 {
            let b = 255u32 - j;
            let count = hist[row * 256 + b as usize];
            if !found {
                if above + count >= wanted {
                    bin = b;
                    found = true;
                } else {
                    above += count;
                }
            }
        }
        let prefix = state[row * 3] | (bin << shift);
        state[row * 3] = prefix;
        state[row * 3 + 1] = wanted - above;
    }

    /// One unit per logit at `(a, y, x)`: if its key reaches the image's floor (or it is NaN), it takes the next
    /// record of the image's list: flat index `(y * W + x) * A + a`, the logit and its four deltas as f32 bits.
    #[cube(launch)]
    pub fn compact<F: Float>(
        logits: &Tensor<F>,
        deltas: &Tensor<F>,
        floors: &Tensor<f32>,
        out: &mut Tensor<Atomic<u32>>,
        row_len: usize,
        hw: usize,
        anchors: usize,
        #[define(F)] _dtype: ElemType,
    ) {
        if ABSOLUTE_POS >= logits.len() {
            terminate!();
        }
        let row = ABSOLUTE_POS / row_len;
        let p = ABSOLUTE_POS % row_len;
        let v = f32::cast_from(logits[ABSOLUTE_POS]);
        if is_nan(v) || order_key(v) >= order_key(floors[row]) {
            let list = row * (1 + 6 * row_len);
            let slot = out[list].fetch_add(1u32) as usize;
            let at = list + 1 + slot * 6;
            let (a, yx) = (p / hw, p % hw);
            out[at].store((yx * anchors + a) as u32);
            out[at + 1].store(u32::reinterpret(v));
            let base = row * 4 * row_len + a * 4 * hw + yx;
            for c in 0..4usize {
                out[at + 2 + c].store(u32::reinterpret(f32::cast_from(deltas[base + c * hw])));
            }
        }
    }
}

impl TopKOps for CubeBackend {
    fn kth_largest_key(logits: FloatTensor<Self>, rows: u32, k: u32) -> IntTensor<Self> {
        let logits = into_contiguous(logits);
        let (client, device) = (logits.client.clone(), logits.device.clone());
        let rows = rows as usize;
        let state = zeros_client(client.clone(), device.clone(), Shape::from(vec![rows * STATE]), DType::U32);
        let total = logits.meta.num_elements();
        if total == 0 || rows == 0 {
            return state;
        }
        let row_len = total / rows;
        let dtype = logits.dtype;
        for pass in 0..4u32 {
            let shift = 24 - 8 * pass;
            let high_mask = if pass == 0 { 0 } else { u32::MAX << (shift + 8) };
            let hist = zeros_client(client.clone(), device.clone(), Shape::from(vec![rows * 256]), DType::U32);
            let (count, dim) = launch::elementwise(&client, total);
            launch::counted();
            kernel::histogram::launch(
                &client,
                count,
                dim,
                logits.clone().into_tensor_arg(),
                state.clone().into_tensor_arg(),
                hist.clone().into_tensor_arg(),
                row_len,
                shift,
                high_mask,
                dtype_to_storage_type(dtype),
            );
            let (count, dim) = launch::elementwise(&client, rows);
            launch::counted();
            kernel::pick_bin::launch(&client, count, dim, hist.into_tensor_arg(), state.clone().into_tensor_arg(), rows, shift, k, (pass == 0) as u32);
        }
        state
    }

    fn compact_above(logits: FloatTensor<Self>, deltas: FloatTensor<Self>, floors: FloatTensor<Self>) -> IntTensor<Self> {
        let (logits, deltas, floors) = (into_contiguous(logits), into_contiguous(deltas), into_contiguous(floors));
        let shape = logits.meta.shape().clone();
        let (rows, anchors) = (shape[0], shape[1]);
        let total = shape.num_elements();
        let row_len = total / rows.max(1);
        let (client, device) = (logits.client.clone(), logits.device.clone());
        // Zeroed for the counters; the records behind them are written before they are counted as read.
        let out = zeros_client(client.clone(), device, Shape::from(vec![rows, 1 + WORDS * row_len]), DType::U32);
        if total == 0 {
            return out;
        }
        let (count, dim) = launch::elementwise(&client, total);
        let dtype = logits.dtype;
        launch::counted();
        kernel::compact::launch(
            &client,
            count,
            dim,
            logits.into_tensor_arg(),
            deltas.into_tensor_arg(),
            floors.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            row_len,
            row_len / anchors.max(1),
            anchors,
            dtype_to_storage_type(dtype),
        );
        out
    }
}

/// `f32::total_cmp`'s order as an unsigned key (the kernels' `order_key`).
fn order_key(v: f32) -> u32 {
    let bits = v.to_bits();
    if bits >> 31 == 1 { !bits } else { bits ^ 0x8000_0000 }
}

/// The value of an [`order_key`].
fn from_key(key: u32) -> f32 {
    f32::from_bits(if key >> 31 == 1 { key ^ 0x8000_0000 } else { !key })
}

/// The lowest logit whose host sigmoid is not below the sigmoid of the logit with key `kth`: every logit that
/// can tie with it or beat it is at or above it. The sigmoid is monotone in f32 (checked over every f32 by
/// `sigmoid_is_monotone` on x86-64 Linux, glibc's `expf`: `f32::exp` is the platform's libm), so a bisection
/// between -inf and the k-th finds it.
fn tie_floor(kth: u32) -> f32 {
    let target = sigmoid(from_key(kth));
    let (mut lo, mut hi) = (order_key(f32::NEG_INFINITY), kth);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if sigmoid(from_key(mid)).total_cmp(&target) == Ordering::Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    from_key(lo)
}

/// The device path of [`super::top_k_anchors`].
pub(super) fn top_k_anchors(cls: Tensor<4>, reg: Tensor<4>, k: usize) -> Result<Vec<TopAnchors>> {
    let n = cls.dims()[0];
    let row_len = cls.shape().num_elements() / n.max(1);
    let device = cls.device();
    let select = k > 0 && k < row_len;
    let floors: Vec<f32> = if select {
        let state = Tensor::<1, Int>::from_dispatch(<Dispatch as TopKOps>::kth_largest_key(cls.clone().into_dispatch(), n as u32, k as u32));
        let state = read_u32(state, "rpn")?;
        if state.chunks_exact(STATE).any(|s| s[2] > 0) {
            return super::host::top_k_anchors(cls, reg, k);
        }
        state.chunks_exact(STATE).map(|s| tie_floor(s[0])).collect()
    } else {
        vec![f32::NEG_INFINITY; n]
    };
    // f32 whatever the device's default float dtype: a rounded floor could drop anchors that tie with the k-th.
    let floors = Tensor::<1>::from_data(TensorData::new(floors, [n]), (&device, DType::F32));
    let lists = Tensor::<2, Int>::from_dispatch(<Dispatch as TopKOps>::compact_above(cls.into_dispatch(), reg.into_dispatch(), floors.into_dispatch()));
    let counts = read_u32(lists.clone().slice([0..n, 0..1]), "rpn")?;
    let longest = counts.iter().copied().max().unwrap_or(0) as usize;
    if longest == 0 {
        return Ok(vec![TopAnchors::default(); n]);
    }
    let records = read_u32(lists.slice([0..n, 1..1 + WORDS * longest]), "rpn")?;
    Ok(counts
        .iter()
        .zip(records.chunks_exact(WORDS * longest))
        .map(|(&count, records)| {
            let mut picked: Vec<(usize, f32, [f32; 4])> = records[..count as usize * WORDS]
                .chunks_exact(WORDS)
                .map(|r| (r[0] as usize, sigmoid(f32::from_bits(r[1])), std::array::from_fn(|c| f32::from_bits(r[2 + c]))))
                .collect();
            if select {
                picked.sort_unstable_by(|x, y| by_score(x.1, x.0, y.1, y.0));
                picked.truncate(k);
            } else {
                picked.sort_unstable_by_key(|x| x.0);
            }
            TopAnchors {
                index: picked.iter().map(|x| x.0).collect(),
                score: picked.iter().map(|x| x.1).collect(),
                delta: picked.iter().map(|x| x.2).collect(),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_follow_total_cmp() {
        let values = [f32::NEG_INFINITY, -3.5, -1e-40, -0.0, 0.0, 1e-40, 2.0, 17.0, f32::INFINITY];
        for w in values.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{} {}", w[0], w[1]);
            assert_eq!(from_key(order_key(w[0])).to_bits(), w[0].to_bits());
        }
    }

    #[test]
    fn tie_floor_reaches_every_logit_of_the_same_score() {
        // Every logit above ~16.6 has sigmoid 1.0: the floor of 30.0 is the lowest of them.
        let floor = tie_floor(order_key(30.0));
        assert_eq!(sigmoid(floor), 1.0);
        assert!(sigmoid(f32::from_bits(floor.to_bits() - 1)) < 1.0);
        // -0.0 and 0.0 tie (0.5), and the floor of 0.0 is below both.
        assert!(order_key(tie_floor(order_key(0.0))) <= order_key(-0.0));
        assert_eq!(sigmoid(tie_floor(order_key(0.0))), 0.5);
        // A logit whose score is its own: the floor is at most that logit.
        assert!(tie_floor(order_key(-3.0)) <= -3.0);
        assert_eq!(sigmoid(tie_floor(order_key(-3.0))), sigmoid(-3.0));
    }

    /// The bisection needs the host sigmoid monotone: checked over every non-NaN f32 (a few seconds in release).
    #[test]
    #[ignore = "4 billion sigmoids: run with --ignored in release"]
    fn sigmoid_is_monotone() {
        use rayon::prelude::*;
        let (lo, hi) = (order_key(f32::NEG_INFINITY), order_key(f32::INFINITY));
        let chunk = 1u32 << 20;
        let bad = (lo / chunk..=hi / chunk).into_par_iter().find_any(|&c| {
            let (start, end) = ((c * chunk).max(lo), (c * chunk).saturating_add(chunk).min(hi));
            (start..end).any(|key| sigmoid(from_key(key + 1)).total_cmp(&sigmoid(from_key(key))) == Ordering::Less)
        });
        assert_eq!(bad, None);
    }
}
