//! The two orders SAHI's merging depends on, reproduced: torch's CPU `argsort(descending=True)`, which is libstdc++'s
//! `std::sort` (introsort: not stable beyond 16 elements, so equal scores come out in its order), and the query order
//! of shapely's `STRtree` (GEOS `TemplateSTRtree`, node capacity 10, built with `std::sort`). Ported from
//! tests/fixtures/sahi_reference.py, which reproduces them exactly (docs/SAHI.md, sections 5.3 and 5.4).

/// libstdc++'s `std::sort(a, less)`.
pub(super) fn std_sort<T: Copy>(a: &mut [T], less: &impl Fn(&T, &T) -> bool) {
    let n = a.len();
    if n <= 1 {
        return;
    }
    introsort(a, 0, n, 2 * (usize::BITS - 1 - n.leading_zeros()) as usize, less);
    if n > 16 {
        insertion(a, 0, 16, less);
        for i in 16..n {
            linear_insert(a, i, less);
        }
    } else {
        insertion(a, 0, n, less);
    }
}

fn introsort<T: Copy>(a: &mut [T], first: usize, mut last: usize, mut depth: usize, less: &impl Fn(&T, &T) -> bool) {
    while last - first > 16 {
        if depth == 0 {
            heapsort(a, first, last, less);
            return;
        }
        depth -= 1;
        let mid = first + (last - first) / 2;
        let (x, y, z) = (first + 1, mid, last - 1);
        let s = if less(&a[x], &a[y]) {
            if less(&a[y], &a[z]) {
                y
            } else if less(&a[x], &a[z]) {
                z
            } else {
                x
            }
        } else if less(&a[x], &a[z]) {
            x
        } else if less(&a[y], &a[z]) {
            z
        } else {
            y
        };
        a.swap(first, s);
        let (mut lo, mut hi) = (first + 1, last);
        loop {
            while less(&a[lo], &a[first]) {
                lo += 1;
            }
            hi -= 1;
            while less(&a[first], &a[hi]) {
                hi -= 1;
            }
            if lo >= hi {
                break;
            }
            a.swap(lo, hi);
            lo += 1;
        }
        introsort(a, lo, last, depth, less);
        last = lo;
    }
}

fn linear_insert<T: Copy>(a: &mut [T], i: usize, less: &impl Fn(&T, &T) -> bool) {
    let v = a[i];
    let mut j = i;
    while less(&v, &a[j - 1]) {
        a[j] = a[j - 1];
        j -= 1;
    }
    a[j] = v;
}

fn insertion<T: Copy>(a: &mut [T], first: usize, last: usize, less: &impl Fn(&T, &T) -> bool) {
    for i in first + 1..last {
        if less(&a[i], &a[first]) {
            let v = a[i];
            a.copy_within(first..i, first + 1);
            a[first] = v;
        } else {
            linear_insert(a, i, less);
        }
    }
}

fn adjust_heap<T: Copy>(a: &mut [T], first: usize, mut hole: usize, n: usize, v: T, less: &impl Fn(&T, &T) -> bool) {
    let top = hole;
    let mut child = hole;
    while child < (n - 1) / 2 {
        child = 2 * (child + 1);
        if less(&a[first + child], &a[first + child - 1]) {
            child -= 1;
        }
        a[first + hole] = a[first + child];
        hole = child;
    }
    if n % 2 == 0 && child == (n - 2) / 2 {
        child = 2 * (child + 1);
        a[first + hole] = a[first + child - 1];
        hole = child - 1;
    }
    while hole > top {
        let parent = (hole - 1) / 2;
        if !less(&a[first + parent], &v) {
            break;
        }
        a[first + hole] = a[first + parent];
        hole = parent;
    }
    a[first + hole] = v;
}

fn heapsort<T: Copy>(a: &mut [T], first: usize, mut last: usize, less: &impl Fn(&T, &T) -> bool) {
    let n = last - first;
    if n >= 2 {
        for parent in (0..=(n - 2) / 2).rev() {
            adjust_heap(a, first, parent, n, a[first + parent], less);
        }
    }
    while last - first > 1 {
        last -= 1;
        let v = a[last];
        a[last] = a[first];
        adjust_heap(a, first, 0, last - first, v, less);
    }
}

/// torch's `argsort(keys, descending=True)` of `indices` (CPU, torch 2.1: `std::sort` with `a > b`).
pub(super) fn argsort_desc(keys: &[f32], mut indices: Vec<usize>) -> Vec<usize> {
    std_sort(&mut indices, &|&i, &j| keys[i] > keys[j]);
    indices
}

/// An axis-aligned envelope `[minx, miny, maxx, maxy]`.
type Env = [f32; 4];

/// GEOS `TemplateSTRtree` over envelopes (items are their indices), node capacity 10.
pub(super) struct StrTree {
    /// `(envelope, item or child range)` of every node, leaves first; the root last.
    nodes: Vec<(Env, Node)>,
}

#[derive(Clone, Copy)]
enum Node {
    Leaf(usize),
    Branch(usize, usize),
}

const CAPACITY: usize = 10;

impl StrTree {
    /// The tree GEOS builds on the first query: levels of sort-tile-recursive packing until one node is left.
    pub(super) fn new(envs: &[Env]) -> Self {
        let mut nodes: Vec<(Env, Node)> = envs.iter().enumerate().map(|(i, e)| (*e, Node::Leaf(i))).collect();
        let mut level: Vec<usize> = (0..nodes.len()).collect();
        while level.len() > 1 {
            let n = level.len();
            let slices = (n.div_ceil(CAPACITY) as f64).sqrt().ceil() as usize;
            let per_slice = n.div_ceil(slices);
            let x = |i: &usize| nodes[*i].0[0] as f64 + nodes[*i].0[2] as f64;
            std_sort(&mut level, &|a, b| x(a) < x(b));
            let mut parents = Vec::new();
            let mut start = 0;
            for _ in 0..slices {
                let count = (n - start).min(per_slice);
                let mut slice = level[start..start + count].to_vec();
                let y = |i: &usize| nodes[*i].0[1] as f64 + nodes[*i].0[3] as f64;
                std_sort(&mut slice, &|a, b| y(a) < y(b));
                for group in slice.chunks(CAPACITY) {
                    let env = group.iter().map(|&i| nodes[i].0).fold([f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY], |u, e| {
                        [u[0].min(e[0]), u[1].min(e[1]), u[2].max(e[2]), u[3].max(e[3])]
                    });
                    // Children are stored contiguously right before their parent is pushed.
                    let first = nodes.len();
                    let children: Vec<(Env, Node)> = group.iter().map(|&i| nodes[i]).collect();
                    nodes.extend(children);
                    parents.push(nodes.len());
                    nodes.push((env, Node::Branch(first, first + group.len())));
                }
                start += count;
            }
            level = parents;
        }
        Self { nodes }
    }

    /// The items whose envelopes touch `env` (closed test), in GEOS's callback order.
    pub(super) fn query(&self, env: &Env) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(root) = self.nodes.last() {
            if touches(&root.0, env) {
                self.visit(root.1, env, &mut out);
            }
        }
        out
    }

    fn visit(&self, node: Node, env: &Env, out: &mut Vec<usize>) {
        match node {
            Node::Leaf(i) => out.push(i),
            Node::Branch(first, last) => {
                for (e, child) in &self.nodes[first..last] {
                    if touches(e, env) {
                        self.visit(*child, env, out);
                    }
                }
            }
        }
    }
}

/// GEOS's envelope intersection (touching counts).
pub(super) fn touches(a: &Env, b: &Env) -> bool {
    a[0] <= b[2] && a[2] >= b[0] && a[1] <= b[3] && a[3] >= b[1]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `std::sort` sorts (whatever the tie order), including runs long enough to reach the heapsort fallback.
    #[test]
    fn std_sort_sorts() {
        let mut state = 99u32;
        for n in [0, 1, 2, 15, 16, 17, 100, 1000] {
            let mut v: Vec<u32> = (0..n)
                .map(|_| {
                    state = state.wrapping_mul(1664525).wrapping_add(1013904223);
                    state >> 28
                })
                .collect();
            let mut want = v.clone();
            want.sort();
            std_sort(&mut v, &|a, b| a < b);
            assert_eq!(v, want);
        }
        let mut sorted: Vec<u32> = (0..300).collect();
        std_sort(&mut sorted, &|a, b| a < b);
        assert_eq!(sorted, (0..300).collect::<Vec<_>>());
    }

    #[test]
    fn the_tree_finds_every_touching_envelope() {
        let envs: Vec<Env> = (0..57).map(|i| { let (x, y) = ((i % 8) as f32 * 10.0, (i / 8) as f32 * 10.0); [x, y, x + 12.0, y + 12.0] }).collect();
        let tree = StrTree::new(&envs);
        for (i, e) in envs.iter().enumerate() {
            let mut got = tree.query(e);
            got.sort();
            let want: Vec<usize> = (0..envs.len()).filter(|&j| touches(&envs[j], e)).collect();
            assert_eq!(got, want, "envelope {i}");
        }
    }
}
