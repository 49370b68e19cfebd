//! Sparse term vectors: TF-IDF weighting with the term-frequency and IDF
//! formulas as parameters, unit length, sorted by term id; their cosine,
//! their sum and its dot product. One module for the three users, each
//! keeping the formula (and the float precision) it was tuned with:
//!
//! - sentences of one article (the extractive scorer): sublinear TF,
//!   `ln(1 + n/df)` raised to `idf_power`, in `f32`;
//! - the day's articles (ranking, story summaries): sublinear TF,
//!   `ln(1 + n/df)`, in `f32`;
//! - reports compared for grouping: raw counts, scikit-learn's smoothed
//!   `ln((n + 1) / (df + 1)) + 1`, in `f64`.

/// A unit-length sparse vector: `(term id, weight)`, sorted by term id.
pub type Sparse = Vec<(u32, f32)>;

/// How a term's count in a text becomes its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Tf {
    /// `1 + ln(count)`.
    Sublinear,
    /// The count itself.
    Raw,
}

/// How rare a term is, from `n` texts and the `df` of them it occurs in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Idf {
    /// `ln(1 + n/df)`, raised to `power` when one is given.
    Plain { power: Option<f32> },
    /// `ln((n + 1) / (df + 1)) + 1` (scikit-learn's smooth IDF).
    Smooth,
}

/// The float type the weights are computed in (before the unit vectors
/// are stored as `f32`).
pub trait Real:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::AddAssign
    + std::ops::DivAssign
    + std::iter::Sum
{
    const ZERO: Self;
    const ONE: Self;
    fn count(n: usize) -> Self;
    fn ln(self) -> Self;
    fn sqrt(self) -> Self;
    fn powf(self, p: f32) -> Self;
    fn to_f32(self) -> f32;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn count(n: usize) -> f32 {
        n as f32
    }
    fn ln(self) -> f32 {
        f32::ln(self)
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn powf(self, p: f32) -> f32 {
        f32::powf(self, p)
    }
    fn to_f32(self) -> f32 {
        self
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn count(n: usize) -> f64 {
        n as f64
    }
    fn ln(self) -> f64 {
        f64::ln(self)
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn powf(self, p: f32) -> f64 {
        f64::powf(self, f64::from(p))
    }
    fn to_f32(self) -> f32 {
        self as f32
    }
}

/// IDF weights of a vocabulary of `terms` ids over `bags` (each a text's
/// term counts; a term counts once a text).
pub fn idf<R: Real>(bags: &[Vec<(u32, R)>], terms: usize, formula: Idf) -> Vec<R> {
    let n = R::count(bags.len());
    let mut df = vec![R::ZERO; terms];
    for bag in bags {
        for &(id, _) in bag {
            df[id as usize] += R::ONE;
        }
    }
    df.into_iter().map(|d| formula.weight(n, d)).collect()
}

impl Idf {
    /// The weight of a term found in `df` of `n` texts.
    pub fn weight<R: Real>(self, n: R, df: R) -> R {
        match self {
            Idf::Plain { power } => {
                let d = if df < R::ONE { R::ONE } else { df };
                let w = (R::ONE + n / d).ln();
                match power {
                    Some(p) => w.powf(p),
                    None => w,
                }
            }
            Idf::Smooth => ((n + R::ONE) / (df + R::ONE)).ln() + R::ONE,
        }
    }
}

/// One text's term counts as a unit-length TF-IDF vector, sorted by term
/// id (an empty text, or one whose weights are all zero, is empty).
pub fn weigh<R: Real>(bag: Vec<(u32, R)>, idf: &[R], tf: Tf) -> Sparse {
    weigh_by(bag, |id| idf[id as usize], tf)
}

/// `weigh` with the IDF of each term id given by `idf`.
pub fn weigh_by<R: Real>(mut bag: Vec<(u32, R)>, idf: impl Fn(u32) -> R, tf: Tf) -> Sparse {
    bag.sort_unstable_by_key(|&(id, _)| id);
    let v: Vec<(u32, R)> = bag
        .into_iter()
        .map(|(id, count)| {
            let t = match tf {
                Tf::Sublinear => R::ONE + count.ln(),
                Tf::Raw => count,
            };
            (id, t * idf(id))
        })
        .collect();
    let norm = v.iter().map(|&(_, w)| w * w).sum::<R>().sqrt();
    if norm > R::ZERO {
        v.into_iter()
            .map(|(id, w)| (id, (w / norm).to_f32()))
            .collect()
    } else {
        Vec::new()
    }
}

/// Unit-length TF-IDF vectors of texts given as term counts (IDF over
/// these texts).
pub fn tf_idf<R: Real>(
    bags: Vec<Vec<(u32, R)>>,
    terms: usize,
    tf: Tf,
    formula: Idf,
) -> Vec<Sparse> {
    let weights = idf(&bags, terms, formula);
    bags.into_iter().map(|b| weigh(b, &weights, tf)).collect()
}

/// How many keys two lists sorted by key have in common (`key_a`, `key_b`
/// give each entry's key).
pub fn shared_count<A, B, K: Ord>(
    a: &[A],
    b: &[B],
    key_a: impl Fn(&A) -> K,
    key_b: impl Fn(&B) -> K,
) -> usize {
    let (mut i, mut j, mut shared) = (0, 0, 0usize);
    while i < a.len() && j < b.len() {
        match key_a(&a[i]).cmp(&key_b(&b[j])) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                shared += 1;
                i += 1;
                j += 1;
            }
        }
    }
    shared
}

/// The dot product of two vectors sorted by term id: their cosine, both
/// being unit length.
pub fn cosine(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut dot) = (0, 0, 0f32);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                dot += a[i].1 * b[j].1;
                i += 1;
                j += 1;
            }
        }
    }
    dot
}

/// The sum of sparse vectors, dense.
pub fn sum(vectors: &[Sparse]) -> Vec<f32> {
    let len = vectors
        .iter()
        .filter_map(|v| v.last())
        .map(|&(id, _)| id as usize + 1)
        .max()
        .unwrap_or(0);
    let mut total = vec![0f32; len];
    for v in vectors {
        for &(id, w) in v {
            total[id as usize] += w;
        }
    }
    total
}

/// The dot product of a sparse vector and a dense one.
pub fn dot_dense(a: &[(u32, f32)], dense: &[f32]) -> f32 {
    a.iter()
        .map(|&(id, w)| w * dense.get(id as usize).copied().unwrap_or(0.0))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_vectors_sorted_by_id_and_their_cosine() {
        let bags: Vec<Vec<(u32, f32)>> = vec![vec![(1, 2.0), (0, 1.0)], vec![(0, 1.0), (2, 1.0)]];
        let v = tf_idf(bags, 3, Tf::Sublinear, Idf::Plain { power: None });
        assert_eq!(v[0].iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1]);
        for x in &v {
            let norm: f32 = x.iter().map(|(_, w)| w * w).sum();
            assert!((norm - 1.0).abs() < 1e-6);
        }
        assert!((cosine(&v[0], &v[0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&v[0], &v[1]) > 0.0 && cosine(&v[0], &v[1]) < 1.0);
        let smooth = idf(
            &[vec![(0u32, 1.0f64)], vec![(0, 1.0), (1, 1.0)]],
            2,
            Idf::Smooth,
        );
        assert!((smooth[0] - 1.0).abs() < 1e-12, "a term in every text");
        assert!((smooth[1] - ((3.0f64 / 2.0).ln() + 1.0)).abs() < 1e-12);
        let total = sum(&v);
        assert!((dot_dense(&v[0], &total) - 1.0 - cosine(&v[0], &v[1])).abs() < 1e-6);
    }
}
