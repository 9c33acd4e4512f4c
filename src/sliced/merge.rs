//! Merging the detections of overlapping tiles as SAHI 0.11's postprocess does (`sahi/postprocess/combine.py`,
//! `utils.py`): greedy non-maximum merging (GREEDYNMM, SAHI's default), non-maximum merging (NMM) or suppression
//! (NMS), matching by intersection over the smaller box (IOS) or over the union (IOU), per class or across classes.
//!
//! The box arithmetic and both orders are SAHI's, exactly (docs/SAHI.md): detections visited in torch's sorted-score
//! order (`std::sort`), candidates in its STRtree's query order (`order`), box areas in f32 (a torch tensor there),
//! intersections and ratios in f64 (shapely), a candidate listed at `>=` the threshold when its score is no higher (on
//! an equal score, its box coordinates no larger), then each kept detection absorbing its candidates one by one while
//! they still overlap it by more than the threshold (`has_match`, `>`, against the box merged so far; one that does
//! not is dropped). Where this differs, on purpose: SAHI, for a model with masks, replaces each box by the bounds of
//! its mask's polygons and unites masks as polygons (lossy, and it aborts on a mask without a polygon); here boxes
//! stay the model's and masks are united pixel by pixel.

use super::order::{StrTree, argsort_desc};
use crate::output::Detection;
use crate::structures::BBox;

/// Which postprocess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MergeKind {
    /// SAHI's `GreedyNMMPostprocess`: each detection, by decreasing score, absorbs the unclaimed ones it matches.
    GreedyNmm,
    /// SAHI's `NMMPostprocess`: as greedy, but detections already absorbed still pass their matches on.
    Nmm,
    /// SAHI's `NMSPostprocess`: matches are dropped, not merged.
    Nms,
}

/// How two boxes' overlap is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMetric {
    /// Intersection over the smaller box's area.
    Ios,
    /// Intersection over union.
    Iou,
}

/// A postprocess and its match rule; the default is SAHI's (`GREEDYNMM`, `IOS`, 0.5, per class).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MergeConfig {
    /// Which postprocess.
    pub kind: MergeKind,
    /// The overlap measure.
    pub metric: MatchMetric,
    /// Detections overlapping at least this much are merged (or suppressed); an f64, as SAHI's Python float is.
    pub threshold: f64,
    /// Match detections of different classes too.
    pub class_agnostic: bool,
}

impl Default for MergeConfig {
    fn default() -> Self {
        Self { kind: MergeKind::GreedyNmm, metric: MatchMetric::Ios, threshold: 0.5, class_agnostic: false }
    }
}

/// The detections that remain, merged, in SAHI's order (classes by increasing label, each in its sorted-score order).
pub fn merge(dets: Vec<Detection>, config: &MergeConfig) -> Vec<Detection> {
    let groups: Vec<Vec<usize>> = if config.class_agnostic {
        vec![(0..dets.len()).collect()]
    } else {
        let mut labels: Vec<usize> = dets.iter().map(|d| d.label).collect();
        labels.sort_unstable();
        labels.dedup();
        labels.iter().map(|&l| (0..dets.len()).filter(|&i| dets[i].label == l).collect()).collect()
    };
    if config.kind == MergeKind::Nms {
        let mut keep: Vec<usize> = groups.iter().flat_map(|g| nms(&dets, g, config)).collect();
        if !config.class_agnostic {
            // SAHI's batched_nms: the kept indices, ascending, sorted by score (std::sort).
            keep.sort_unstable();
            let scores: Vec<f32> = dets.iter().map(|d| d.score).collect();
            keep = argsort_desc(&scores, keep);
        }
        return keep.into_iter().map(|k| dets[k].clone()).collect();
    }
    let plan: Vec<(usize, Vec<usize>)> = groups
        .iter()
        .flat_map(|g| if config.kind == MergeKind::GreedyNmm { greedy_nmm(&dets, g, config) } else { nmm(&dets, g, config) })
        .collect();
    // SAHI replaces `object_prediction_list[keep]` in place, so a detection merged after being kept (equal scores)
    // is merged in its merged form.
    let mut current = dets;
    let mut out = Vec::with_capacity(plan.len());
    for (keep, merges) in plan {
        for m in merges {
            // One that no longer overlaps the grown box enough is dropped, neither merged nor kept.
            if matches(&current[keep].bbox, &current[m].bbox, config, Strict::Greater) {
                let merged = merged(&current[keep], &current[m]);
                current[keep] = merged;
            }
        }
        out.push(current[keep].clone());
    }
    out
}

/// `>=` (candidate lists) or `>` (SAHI's `has_match` before each merge).
#[derive(Clone, Copy, PartialEq)]
enum Strict {
    AtLeast,
    Greater,
}

/// Whether `a` and `b` overlap by the config's measure and threshold: the candidate test (`AtLeast`, f32 areas as
/// SAHI's tensors hold them) or `has_match` (`Greater`, f64 throughout as its numpy arrays are).
fn matches(a: &BBox, b: &BBox, config: &MergeConfig, strict: Strict) -> bool {
    let f = |v: f32| v as f64;
    let (iw, ih) = (f(a[2]).min(f(b[2])) - f(a[0]).max(f(b[0])), f(a[3]).min(f(b[3])) - f(a[1]).max(f(b[1])));
    let inter = if iw > 0.0 && ih > 0.0 { iw * ih } else { 0.0 };
    let (area_a, area_b) = match strict {
        Strict::AtLeast => (f((a[2] - a[0]) * (a[3] - a[1])), f((b[2] - b[0]) * (b[3] - b[1]))),
        Strict::Greater => ((f(a[2]) - f(a[0])) * (f(a[3]) - f(a[1])), (f(b[2]) - f(b[0])) * (f(b[3]) - f(b[1]))),
    };
    let denominator = match config.metric {
        MatchMetric::Ios => area_a.min(area_b),
        MatchMetric::Iou => area_a + area_b - inter,
    };
    let threshold = config.threshold;
    match strict {
        Strict::AtLeast => (if denominator > 0.0 { inter / denominator } else { 0.0 }) >= threshold,
        // No zero guard in `has_match`: 0 / 0 is NaN, which matches nothing.
        Strict::Greater => inter / denominator > threshold,
    }
}

/// One group of detections (a class, or all of them) as SAHI's inner loop sees it: boxes, scores, its STRtree.
struct Group<'a> {
    /// The detections' indices in the whole list.
    ids: &'a [usize],
    boxes: Vec<BBox>,
    scores: Vec<f32>,
    tree: StrTree,
}

impl<'a> Group<'a> {
    fn new(dets: &[Detection], ids: &'a [usize]) -> Self {
        let boxes: Vec<BBox> = ids.iter().map(|&i| dets[i].bbox).collect();
        let scores = ids.iter().map(|&i| dets[i].score).collect();
        let tree = StrTree::new(&boxes);
        Self { ids, boxes, scores, tree }
    }

    /// The group's local indices in torch's sorted-score order.
    fn order(&self) -> Vec<usize> {
        argsort_desc(&self.scores, (0..self.ids.len()).collect())
    }

    /// `cur`'s matches (local indices) in STRtree order, those `skip` names left out: no higher score, no larger box
    /// coordinates on an equal score, overlapping at least the threshold.
    fn matches_of(&self, cur: usize, config: &MergeConfig, skip: impl Fn(usize) -> bool) -> Vec<usize> {
        let (b, s) = (&self.boxes, &self.scores);
        self.tree
            .query(&b[cur])
            .into_iter()
            .filter(|&c| c != cur && !skip(c) && s[c] <= s[cur])
            .filter(|&c| !(s[c] == s[cur] && b[c].map(f64::from) > b[cur].map(f64::from)))
            .filter(|&c| matches(&b[cur], &b[c], config, Strict::AtLeast))
            .collect()
    }
}

/// SAHI's `greedy_nmm`: `(kept, [merged into it])` in the order they are kept, as indices of the whole list.
fn greedy_nmm(dets: &[Detection], ids: &[usize], config: &MergeConfig) -> Vec<(usize, Vec<usize>)> {
    let group = Group::new(dets, ids);
    let mut suppressed = vec![false; ids.len()];
    let mut plan = Vec::new();
    for cur in group.order() {
        if suppressed[cur] {
            continue;
        }
        let merges = group.matches_of(cur, config, |c| suppressed[c]);
        merges.iter().for_each(|&m| suppressed[m] = true);
        plan.push((ids[cur], merges.into_iter().map(|m| ids[m]).collect()));
    }
    plan
}

/// SAHI's `nmm`: every detection, by score, finds its matches; one not yet absorbed keeps and absorbs them, one
/// already absorbed passes them on to the detection that absorbed it (merging is transitive).
fn nmm(dets: &[Detection], ids: &[usize], config: &MergeConfig) -> Vec<(usize, Vec<usize>)> {
    let group = Group::new(dets, ids);
    let mut plan: Vec<(usize, Vec<usize>)> = Vec::new();
    let mut keeper: Vec<Option<usize>> = vec![None; ids.len()];
    for cur in group.order() {
        let found = group.matches_of(cur, config, |_| false);
        match keeper[cur] {
            None => {
                let mut merges = Vec::new();
                for m in found {
                    if keeper[m].is_none() {
                        merges.push(m);
                        keeper[m] = Some(cur);
                    }
                }
                plan.push((cur, merges));
            }
            Some(keep) => {
                for m in found {
                    let listed = plan.iter().any(|(k, l)| *k == keep && l.contains(&m));
                    if !listed && keeper[m].is_none() {
                        match plan.iter_mut().find(|(k, _)| *k == keep) {
                            Some((_, l)) => l.push(m),
                            None => plan.push((keep, vec![m])),
                        }
                        keeper[m] = Some(keep);
                    }
                }
            }
        }
    }
    plan.into_iter().map(|(k, l)| (ids[k], l.into_iter().map(|m| ids[m]).collect())).collect()
}

/// SAHI's `nms`: the kept detections in processing order, as indices of the whole list.
fn nms(dets: &[Detection], ids: &[usize], config: &MergeConfig) -> Vec<usize> {
    let group = Group::new(dets, ids);
    let mut suppressed = vec![false; ids.len()];
    let mut keep = Vec::new();
    for cur in group.order() {
        if suppressed[cur] {
            continue;
        }
        keep.push(ids[cur]);
        for m in group.matches_of(cur, config, |c| suppressed[c]) {
            suppressed[m] = true;
        }
    }
    keep
}

/// SAHI's `merge_object_prediction_pair` (keep `a`, candidate `b`): the boxes' union (its top-left clipped at 0), the
/// higher score, the class of the strictly higher score (the candidate's on a tie), the masks' pixel union.
fn merged(a: &Detection, b: &Detection) -> Detection {
    let bbox = [a.bbox[0].min(b.bbox[0]).max(0.0), a.bbox[1].min(b.bbox[1]).max(0.0), a.bbox[2].max(b.bbox[2]), a.bbox[3].max(b.bbox[3])];
    let (label, class_name) = if a.score > b.score { (a.label, a.class_name.clone()) } else { (b.label, b.class_name.clone()) };
    Detection { bbox, score: a.score.max(b.score), label, class_name, mask: a.mask.union(&b.mask) }
}
