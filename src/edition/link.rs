//! The two halves of grouping that do not care what a pair score means:
//! each item's nearest neighbours by dot product (without an n-by-n matrix),
//! and average-link clustering over a sparse graph of scored pairs.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// Rows of the similarity matrix computed at once: memory is `BLOCK × n`
/// floats, never `n × n`.
const BLOCK: usize = 256;

/// The `k` nearest other rows of each row of `vectors` (all of one length)
/// by dot product, best first, ties by index. Time grows as n², memory as
/// n × k.
pub(crate) fn neighbours(vectors: &[Vec<f32>], k: usize) -> Vec<Vec<(usize, f32)>> {
    let n = vectors.len();
    if n == 0 || k == 0 {
        return vec![Vec::new(); n];
    }
    let dim = vectors[0].len();
    if vectors.iter().any(|v| v.len() != dim) {
        return vec![Vec::new(); n];
    }
    let flat: Vec<f32> = vectors.iter().flat_map(|v| v.iter().copied()).collect();
    let rows: Vec<usize> = (0..n).collect();
    rows.par_chunks(BLOCK)
        .flat_map_iter(|block| {
            let (first, m) = (block[0], block.len());
            // sims = block · allᵀ, one matrix product (m × n).
            let mut sims = vec![0f32; m * n];
            // SAFETY: sims is m × n, the block m × dim and all n × dim,
            // row-major; the transposed right side is read with swapped
            // strides.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    dim,
                    sims.as_mut_ptr(),
                    1,
                    n as isize,
                    false,
                    flat[first * dim..].as_ptr(),
                    1,
                    dim as isize,
                    flat.as_ptr(),
                    dim as isize,
                    1,
                    0.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
            block
                .iter()
                .enumerate()
                .map(|(r, &i)| top_k(&sims[r * n..(r + 1) * n], i, k))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `k` best entries of `sims` other than `skip`.
fn top_k(sims: &[f32], skip: usize, k: usize) -> Vec<(usize, f32)> {
    let better = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let mut best: Vec<(usize, f32)> = Vec::with_capacity(k + 1);
    for (j, &s) in sims.iter().enumerate() {
        if j == skip {
            continue;
        }
        if best.len() == k {
            let worst = best[k - 1];
            if better(&(j, s), &worst) != Ordering::Less {
                continue;
            }
            best.pop();
        }
        let at = best.partition_point(|x| better(x, &(j, s)) == Ordering::Less);
        best.insert(at, (j, s));
    }
    best
}

/// Above this many items, words shared by more than one in `COMMON` of
/// them are not used to find neighbours (they are still scored): they cost
/// quadratic time and say little about which reports are of one event.
const SPARSE_EXACT_UP_TO: usize = 2000;
const COMMON: usize = 20;

/// `neighbours` for sparse unit vectors (sorted by id): the `k` best other
/// rows by dot product that share a word, best first, ties by index.
pub(crate) fn sparse_neighbours(vectors: &[Vec<(u32, f32)>], k: usize) -> Vec<Vec<(usize, f32)>> {
    let n = vectors.len();
    let mut postings: FxHashMap<u32, Vec<(usize, f32)>> = FxHashMap::default();
    for (i, v) in vectors.iter().enumerate() {
        for &(id, w) in v {
            postings.entry(id).or_default().push((i, w));
        }
    }
    let limit = if n <= SPARSE_EXACT_UP_TO {
        usize::MAX
    } else {
        (n / COMMON).max(50)
    };
    let rows: Vec<usize> = (0..n).collect();
    rows.par_chunks(BLOCK)
        .flat_map_iter(|block| {
            let mut acc = vec![0f32; n];
            let mut touched: Vec<usize> = Vec::new();
            block
                .iter()
                .map(|&i| {
                    for &(id, w) in &vectors[i] {
                        let list = &postings[&id];
                        if list.len() > limit {
                            continue;
                        }
                        for &(j, x) in list {
                            if j != i {
                                if acc[j] == 0.0 {
                                    touched.push(j);
                                }
                                acc[j] += w * x;
                            }
                        }
                    }
                    let sims: Vec<(usize, f32)> = touched.iter().map(|&j| (j, acc[j])).collect();
                    for &j in &touched {
                        acc[j] = 0.0;
                    }
                    touched.clear();
                    best_of(sims, k)
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The `k` best of `sims` (positive only), best first, ties by index. The
/// result holds exactly what it keeps: `sims` may hold every other row, and
/// a truncated vector keeping that capacity for each of 10,000 rows held a
/// gigabyte.
fn best_of(mut sims: Vec<(usize, f32)>, k: usize) -> Vec<(usize, f32)> {
    let better = |a: &(usize, f32), b: &(usize, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    sims.retain(|&(_, s)| s > 0.0);
    if sims.len() > k {
        if k == 0 {
            return Vec::new();
        }
        sims.select_nth_unstable_by(k - 1, better);
        sims.truncate(k);
    }
    sims.sort_by(better);
    sims.shrink_to_fit();
    sims
}

/// A candidate merge in the queue: clusters `a` and `b` at `score`, valid
/// while both clusters are at the versions it was made at.
struct Candidate {
    score: f64,
    a: usize,
    b: usize,
    va: u32,
    vb: u32,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Candidate {}
impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Candidate {
    /// Highest score first; ties: the lowest cluster pair (deterministic).
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| (other.a, other.b).cmp(&(self.a, self.b)))
    }
}

/// Average-link clustering of `n` items over scored pairs `(i, j, s)`:
/// repeatedly joins the two clusters whose mean pair score (pairs without
/// an edge count as 0) is highest, while it is at least `threshold`. A
/// cluster joins another only if it is close to all of it on average, so
/// chains of pairwise-similar items do not collapse into one. Returns a
/// cluster number per item (numbered by first item).
pub(crate) fn average_link(n: usize, pairs: &[(usize, usize, f64)], threshold: f64) -> Vec<usize> {
    // Sum of pair scores between clusters, by cluster.
    let mut links: Vec<FxHashMap<usize, f64>> = vec![FxHashMap::default(); n];
    for &(i, j, s) in pairs {
        if i == j || i >= n || j >= n {
            continue;
        }
        // A pair given twice (both directions) counts once.
        links[i].insert(j, s);
        links[j].insert(i, s);
    }
    let mut size = vec![1usize; n];
    let mut version = vec![0u32; n];
    let mut alive = vec![true; n];
    let mut parent: Vec<usize> = (0..n).collect();
    let mut queue = BinaryHeap::new();
    let push = |queue: &mut BinaryHeap<Candidate>,
                a: usize,
                b: usize,
                sum: f64,
                size: &[usize],
                version: &[u32]| {
        let score = sum / (size[a] * size[b]) as f64;
        if score >= threshold {
            let (a, b) = (a.min(b), a.max(b));
            queue.push(Candidate {
                score,
                a,
                b,
                va: version[a],
                vb: version[b],
            });
        }
    };
    for (a, l) in links.iter().enumerate() {
        for (&b, &sum) in l {
            if a < b {
                push(&mut queue, a, b, sum, &size, &version);
            }
        }
    }
    while let Some(c) = queue.pop() {
        if !alive[c.a] || !alive[c.b] || version[c.a] != c.va || version[c.b] != c.vb {
            continue;
        }
        // Join b into a.
        let (a, b) = (c.a, c.b);
        let from_b = std::mem::take(&mut links[b]);
        links[a].remove(&b);
        for (other, sum) in from_b {
            if other == a {
                continue;
            }
            *links[a].entry(other).or_insert(0.0) += sum;
            let l = &mut links[other];
            l.remove(&b);
            *l.entry(a).or_insert(0.0) += sum;
        }
        alive[b] = false;
        parent[b] = a;
        size[a] += size[b];
        version[a] += 1;
        let mut next: Vec<(usize, f64)> = links[a].iter().map(|(&o, &s)| (o, s)).collect();
        next.sort_unstable_by_key(|&(o, _)| o);
        for (other, sum) in next {
            push(&mut queue, a, other, sum, &size, &version);
        }
    }
    // Each item's cluster: follow parents to the live root.
    let mut root = vec![0usize; n];
    for (i, r) in root.iter_mut().enumerate() {
        let mut x = i;
        while parent[x] != x {
            x = parent[x];
        }
        *r = x;
    }
    let mut number: FxHashMap<usize, usize> = FxHashMap::default();
    root.iter()
        .map(|r| {
            let next = number.len();
            *number.entry(*r).or_insert(next)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbours_are_the_nearest_by_dot_product() {
        let v = vec![
            vec![1.0, 0.0],
            vec![0.9, 0.1],
            vec![0.0, 1.0],
            vec![0.1, 0.9],
            vec![0.7, 0.7],
        ];
        let nn = neighbours(&v, 2);
        assert_eq!(nn[0].iter().map(|x| x.0).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(nn[2].iter().map(|x| x.0).collect::<Vec<_>>(), vec![3, 4]);
        assert!(nn
            .iter()
            .enumerate()
            .all(|(i, l)| l.iter().all(|x| x.0 != i)));
        // More rows than one block, same answer as brute force.
        let many: Vec<Vec<f32>> = (0..600)
            .map(|i| {
                let a = i as f32 * 0.01;
                vec![a.cos(), a.sin()]
            })
            .collect();
        let nn = neighbours(&many, 3);
        assert_eq!(
            nn[300].iter().map(|x| x.0).collect::<Vec<_>>()[..2],
            [299, 301]
        );
    }

    #[test]
    fn best_of_keeps_the_best_and_nothing_else() {
        // Many ties: the order is score, then index, as a full sort gives.
        let sims: Vec<(usize, f32)> = (0..5000)
            .map(|j| (j, ((j * 7919) % 13) as f32 / 4.0))
            .collect();
        for k in [0, 1, 30, 4999, 6000] {
            let mut want = sims.clone();
            want.retain(|&(_, s)| s > 0.0);
            want.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            want.truncate(k);
            let got = best_of(sims.clone(), k);
            assert_eq!(got, want, "k = {k}");
            assert_eq!(got.capacity(), got.len(), "k = {k}");
        }
    }

    #[test]
    fn average_link_does_not_chain() {
        // A chain 0-1-2-3-4-5, each neighbour pair 0.9, nothing else: single
        // link would make one cluster; average link stops where the mean
        // over all pairs drops below the threshold.
        let chain: Vec<(usize, usize, f64)> = (0..5).map(|i| (i, i + 1, 0.9)).collect();
        let c = average_link(6, &chain, 0.5);
        let clusters: std::collections::BTreeSet<usize> = c.iter().copied().collect();
        assert!(clusters.len() >= 3, "{c:?}");
        // Two tight groups with one bridge stay apart.
        let mut pairs = vec![];
        for (a, b) in [(0, 1), (0, 2), (1, 2), (3, 4), (3, 5), (4, 5)] {
            pairs.push((a, b, 0.8));
        }
        pairs.push((2, 3, 0.6));
        let c = average_link(6, &pairs, 0.5);
        assert_eq!(c, vec![0, 0, 0, 1, 1, 1]);
        // Below the threshold nothing joins.
        assert_eq!(average_link(3, &[(0, 1, 0.4)], 0.5), vec![0, 1, 2]);
    }
}
