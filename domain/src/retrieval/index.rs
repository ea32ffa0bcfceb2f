//! Segments (one per source) and the search over them.

use std::collections::HashMap;
use std::sync::Arc;

use uuid::Uuid;

use super::Analyzer;

/// Above this many vectors a segment is scored on two threads.
const PARALLEL_VECTORS: usize = 16_384;

/// What a search hit points at.
#[derive(Debug, Clone)]
pub struct ChunkMeta {
    pub id: Uuid,
    pub source_id: Uuid,
    pub doc_key: String,
    pub ordinal: i32,
    pub heading_path: String,
    pub text: String,
    pub page: Option<i32>,
    pub url: Option<String>,
    pub title: Option<String>,
}

/// The searchable chunks of one source at one generation.
pub struct Segment {
    /// The source the chunks belong to (filters apply to it).
    pub key: Uuid,
    /// Which version of the source's chunks this is.
    pub generation: i64,
    pub chunks: Vec<ChunkMeta>,
    doc_len: Vec<u32>,
    total_len: u64,
    postings: HashMap<String, Vec<(u32, u32)>>,
    /// Normalized vectors, for exact scores of the best candidates.
    vectors: Vec<f32>,
    /// The same vectors quantized to 8 bits (one scale each): a scan reads a
    /// quarter of the memory, which is what bounds it on large bots.
    codes: Vec<i8>,
    scales: Vec<f32>,
    dim: usize,
    /// About how much memory the segment holds, in bytes.
    bytes: usize,
}

impl Segment {
    /// Indexes chunks with their embeddings (normalized here, so a dot
    /// product is the cosine). Chunks whose vector has another dimension than
    /// the first one are indexed for BM25 only.
    pub fn build(key: Uuid, generation: i64, analyzer: &Analyzer, items: Vec<(ChunkMeta, Vec<f32>)>) -> Segment {
        let dim = items.first().map(|(_, v)| v.len()).unwrap_or(0);
        let mut chunks = Vec::with_capacity(items.len());
        let mut doc_len = Vec::with_capacity(items.len());
        let mut vectors = Vec::with_capacity(items.len() * dim);
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut total_len = 0u64;
        let mut counts: HashMap<String, u32> = HashMap::new();
        for (doc, (meta, mut vector)) in items.into_iter().enumerate() {
            let mut text = String::with_capacity(meta.text.len() + 128);
            for part in [meta.title.as_deref().unwrap_or(""), &meta.heading_path, &meta.text] {
                text.push_str(part);
                text.push('\n');
            }
            let terms = analyzer.terms(&text);
            doc_len.push(terms.len() as u32);
            total_len += terms.len() as u64;
            counts.clear();
            for t in terms {
                *counts.entry(t).or_default() += 1;
            }
            for (t, tf) in counts.drain() {
                postings.entry(t).or_default().push((doc as u32, tf));
            }
            if vector.len() != dim {
                vector = vec![0.0; dim];
            }
            normalize(&mut vector);
            vectors.extend_from_slice(&vector);
            chunks.push(meta);
        }
        let mut codes = Vec::with_capacity(vectors.len());
        let mut scales = Vec::with_capacity(chunks.len());
        if dim > 0 {
            for v in vectors.chunks_exact(dim) {
                let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
                let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
                codes.extend(v.iter().map(|x| (x / scale).round() as i8));
                scales.push(scale);
            }
        }
        let meta: usize = chunks
            .iter()
            .map(|c| {
                std::mem::size_of::<ChunkMeta>()
                    + c.doc_key.len()
                    + c.heading_path.len()
                    + c.text.len()
                    + c.url.as_ref().map_or(0, String::len)
                    + c.title.as_ref().map_or(0, String::len)
            })
            .sum();
        let posting: usize = postings
            .iter()
            .map(|(t, list)| t.len() + 48 + list.len() * std::mem::size_of::<(u32, u32)>())
            .sum();
        let bytes = meta + posting + doc_len.len() * 4 + vectors.len() * 4 + codes.len() + scales.len() * 4;
        Segment {
            key,
            generation,
            chunks,
            doc_len,
            total_len,
            postings,
            vectors,
            codes,
            scales,
            dim,
            bytes,
        }
    }

    /// About how much memory the segment holds, in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Chunks of this segment that contain `term`.
    pub fn df(&self, term: &str) -> usize {
        self.postings.get(term).map_or(0, Vec::len)
    }

    /// Whether chunk `chunk` contains `term` (postings are in chunk order).
    pub fn contains(&self, chunk: usize, term: &str) -> bool {
        self.postings
            .get(term)
            .is_some_and(|list| list.binary_search_by_key(&(chunk as u32), |p| p.0).is_ok())
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Approximate cosines from the 8-bit codes.
    fn vector_scores(&self, query: &[f32]) -> Vec<f32> {
        if self.dim == 0 || query.len() != self.dim {
            return vec![0.0; self.len()];
        }
        let score_range = |range: std::ops::Range<usize>| -> Vec<f32> {
            range
                .map(|i| dot_i8(&self.codes[i * self.dim..(i + 1) * self.dim], query) * self.scales[i])
                .collect()
        };
        if self.len() < PARALLEL_VECTORS {
            return score_range(0..self.len());
        }
        let mid = self.len() / 2;
        std::thread::scope(|s| {
            let upper = s.spawn(|| score_range(mid..self.len()));
            let mut scores = score_range(0..mid);
            scores.extend(upper.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            scores
        })
    }
}

fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

fn dot_i8(codes: &[i8], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (codes.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| f32::from(*x) * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += f32::from(x[i]) * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Runs `f` on every segment, on two threads when there is enough work,
/// and returns the results in segment order.
fn per_segment<R: Send>(segments: &[&Segment], f: impl Fn(usize, &Segment) -> R + Sync) -> Vec<R> {
    let total: usize = segments.iter().map(|s| s.len()).sum();
    if segments.len() < 2 || total < PARALLEL_VECTORS {
        return segments.iter().enumerate().map(|(i, s)| f(i, s)).collect();
    }
    // Split where half of the chunks are on each side.
    let mut seen = 0;
    let split = segments
        .iter()
        .position(|s| {
            seen += s.len();
            seen * 2 >= total
        })
        .map_or(segments.len(), |p| p + 1)
        .min(segments.len() - 1);
    let (left, right) = segments.split_at(split);
    std::thread::scope(|scope| {
        let f = &f;
        let upper = scope.spawn(move || {
            right
                .iter()
                .enumerate()
                .map(|(i, s)| f(split + i, s))
                .collect::<Vec<_>>()
        });
        let mut out: Vec<R> = left.iter().enumerate().map(|(i, s)| f(i, s)).collect();
        out.extend(upper.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
        out
    })
}

/// A dot product written so the compiler vectorizes it.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Hybrid,
    Bm25,
    Vector,
}

/// How the two ranked lists become one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion: the sum of `1 / (k + rank)`.
    Rrf { k: f32 },
    /// `alpha * vector + (1 - alpha) * bm25`, each min-max normalized over its
    /// candidates (a candidate missing from a list counts 0 there).
    Convex { alpha: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bm25Params {
    pub k1: f32,
    pub b: f32,
}

impl Default for Bm25Params {
    /// The values BM25 baselines (Anserini) use.
    fn default() -> Self {
        Bm25Params { k1: 0.9, b: 0.4 }
    }
}

pub struct Query<'a> {
    /// Analyzed query terms (repeats weigh more).
    pub terms: &'a [String],
    /// The query embedding, for vector and hybrid modes.
    pub vector: Option<&'a [f32]>,
    /// Only these sources (segment keys), when given.
    pub sources: Option<&'a [Uuid]>,
    /// Hits returned.
    pub limit: usize,
    /// How deep each retriever's list goes before fusion.
    pub candidates: usize,
    pub mode: Mode,
    pub fusion: Fusion,
    pub bm25: Bm25Params,
}

/// A retriever's opinion of a hit: 1-based rank and raw score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub rank: u32,
    pub score: f32,
}

#[derive(Debug, Clone)]
pub struct Hit {
    pub segment: usize,
    pub chunk: usize,
    /// The fused score (or the single retriever's score).
    pub score: f32,
    pub bm25: Option<Ranked>,
    pub vector: Option<Ranked>,
}

type Candidate = (usize, usize, f32);

/// The best `n` candidates, best first (ties by position, for stable output).
fn top(mut all: Vec<Candidate>, n: usize) -> Vec<Candidate> {
    let order = |a: &Candidate, b: &Candidate| b.2.total_cmp(&a.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1));
    if all.len() > n && n > 0 {
        all.select_nth_unstable_by(n - 1, order);
        all.truncate(n);
    }
    all.sort_by(order);
    all.truncate(n);
    all
}

fn bm25_candidates(segments: &[&Segment], q: &Query) -> Vec<Candidate> {
    let docs: u64 = segments.iter().map(|s| s.len() as u64).sum();
    if docs == 0 || q.terms.is_empty() {
        return Vec::new();
    }
    let total: u64 = segments.iter().map(|s| s.total_len).sum();
    let avgdl = (total as f32 / docs as f32).max(1.0);
    let mut weights: HashMap<&str, f32> = HashMap::new();
    for t in q.terms {
        *weights.entry(t.as_str()).or_default() += 1.0;
    }
    let Bm25Params { k1, b } = q.bm25;
    let mut out = Vec::new();
    let idf: Vec<(&str, f32)> = weights
        .iter()
        .filter_map(|(t, w)| {
            let df: usize = segments.iter().map(|s| s.postings.get(*t).map_or(0, Vec::len)).sum();
            (df > 0).then(|| {
                let df = df as f32;
                (*t, w * (1.0 + (docs as f32 - df + 0.5) / (df + 0.5)).ln())
            })
        })
        .collect();
    let per = per_segment(segments, |si, seg| {
        let mut acc = vec![0f32; seg.len()];
        let mut touched = false;
        for (t, idf) in &idf {
            let Some(list) = seg.postings.get(*t) else { continue };
            touched = true;
            for &(doc, tf) in list {
                let tf = tf as f32;
                let norm = k1 * (1.0 - b + b * seg.doc_len[doc as usize] as f32 / avgdl);
                acc[doc as usize] += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        if !touched {
            return Vec::new();
        }
        let found: Vec<Candidate> = acc
            .into_iter()
            .enumerate()
            .filter(|(_, s)| *s > 0.0)
            .map(|(i, s)| (si, i, s))
            .collect();
        top(found, q.candidates)
    });
    out.extend(per.into_iter().flatten());
    top(out, q.candidates)
}

fn vector_candidates(segments: &[&Segment], q: &Query) -> Vec<Candidate> {
    let Some(vector) = q.vector else { return Vec::new() };
    let mut query = vector.to_vec();
    normalize(&mut query);
    // Approximate scores pick twice the candidates; exact ones rank them.
    let wide = q.candidates * 2;
    let per = per_segment(segments, |si, seg| {
        let approx: Vec<Candidate> = seg
            .vector_scores(&query)
            .into_iter()
            .enumerate()
            .map(|(i, s)| (si, i, s))
            .collect();
        top(approx, wide)
    });
    let shortlist = top(per.into_iter().flatten().collect(), wide);
    let exact = shortlist
        .into_iter()
        .map(|(si, i, _)| (si, i, dot(segments[si].vector(i), &query)))
        .collect();
    top(exact, q.candidates)
}

fn min_max(list: &[Candidate]) -> impl Fn(f32) -> f32 + use<> {
    let max = list.first().map_or(0.0, |c| c.2);
    let min = list.last().map_or(0.0, |c| c.2);
    move |s| {
        if max > min { (s - min) / (max - min) } else { 1.0 }
    }
}

/// Searches `segments` (typically every live source of one bot).
pub fn search(segments: &[Arc<Segment>], q: &Query) -> Vec<Hit> {
    let chosen: Vec<(usize, &Segment)> = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| q.sources.is_none_or(|keys| keys.contains(&s.key)))
        .map(|(i, s)| (i, s.as_ref()))
        .collect();
    let segs: Vec<&Segment> = chosen.iter().map(|(_, s)| *s).collect();
    let bm25 = if q.mode == Mode::Vector {
        Vec::new()
    } else {
        bm25_candidates(&segs, q)
    };
    let vector = if q.mode == Mode::Bm25 {
        Vec::new()
    } else {
        vector_candidates(&segs, q)
    };

    let mut merged: HashMap<(usize, usize), Hit> = HashMap::new();
    let (bm25_norm, vector_norm) = (min_max(&bm25), min_max(&vector));
    for (list, is_vector) in [(&bm25, false), (&vector, true)] {
        for (rank, &(si, ci, score)) in list.iter().enumerate() {
            let hit = merged.entry((si, ci)).or_insert(Hit {
                segment: chosen[si].0,
                chunk: ci,
                score: 0.0,
                bm25: None,
                vector: None,
            });
            let ranked = Ranked {
                rank: rank as u32 + 1,
                score,
            };
            let contribution = match (q.mode, q.fusion) {
                (Mode::Hybrid, Fusion::Rrf { k }) => 1.0 / (k + ranked.rank as f32),
                (Mode::Hybrid, Fusion::Convex { alpha }) if is_vector => alpha * vector_norm(score),
                (Mode::Hybrid, Fusion::Convex { alpha }) => (1.0 - alpha) * bm25_norm(score),
                _ => score,
            };
            hit.score += contribution;
            if is_vector {
                hit.vector = Some(ranked);
            } else {
                hit.bm25 = Some(ranked);
            }
        }
    }
    let mut hits: Vec<Hit> = merged.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.segment.cmp(&b.segment))
            .then(a.chunk.cmp(&b.chunk))
    });
    hits.truncate(q.limit);
    hits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(source_id: Uuid, text: &str) -> ChunkMeta {
        ChunkMeta {
            id: Uuid::now_v7(),
            source_id,
            doc_key: text.chars().take(8).collect(),
            ordinal: 0,
            heading_path: String::new(),
            text: text.into(),
            page: None,
            url: None,
            title: None,
        }
    }

    fn segment(texts: &[(&str, [f32; 2])]) -> Arc<Segment> {
        let key = Uuid::now_v7();
        let items = texts.iter().map(|(t, v)| (meta(key, t), v.to_vec())).collect();
        Arc::new(Segment::build(key, 1, &Analyzer::default(), items))
    }

    fn query<'a>(terms: &'a [String], vector: Option<&'a [f32]>, mode: Mode) -> Query<'a> {
        Query {
            terms,
            vector,
            sources: None,
            limit: 10,
            candidates: 100,
            mode,
            fusion: Fusion::Rrf { k: 60.0 },
            bm25: Bm25Params::default(),
        }
    }

    #[test]
    fn bm25_matches_the_textbook_formula() {
        let seg = segment(&[
            ("apple banana apple", [1.0, 0.0]),
            ("banana cherry", [0.0, 1.0]),
            ("cherry date elderberry fig", [0.0, 1.0]),
        ]);
        let terms = Analyzer::default().terms("apple");
        let hits = search(&[seg], &query(&terms, None, Mode::Bm25));
        assert_eq!(hits.len(), 1);
        // N=3, df=1, tf=2, dl=3, avgdl=3: idf = ln(1 + 2.5/1.5), tf part = 2*1.9/(2+0.9).
        let expected = (1.0f32 + 2.5 / 1.5).ln() * 2.0 * 1.9 / (2.0 + 0.9);
        assert!(
            (hits[0].score - expected).abs() < 1e-5,
            "{} vs {expected}",
            hits[0].score
        );
        assert_eq!(hits[0].bm25.unwrap().rank, 1);
        assert!(hits[0].vector.is_none());
    }

    #[test]
    fn statistics_span_segments() {
        // The same three documents split over two segments score the same.
        let one = segment(&[
            ("apple banana apple", [1.0, 0.0]),
            ("banana cherry", [0.0, 1.0]),
            ("cherry date elderberry fig", [0.0, 1.0]),
        ]);
        let a = segment(&[("apple banana apple", [1.0, 0.0])]);
        let b = segment(&[
            ("banana cherry", [0.0, 1.0]),
            ("cherry date elderberry fig", [0.0, 1.0]),
        ]);
        let terms = Analyzer::default().terms("banana cherry");
        let whole = search(&[one], &query(&terms, None, Mode::Bm25));
        let split = search(&[a, b], &query(&terms, None, Mode::Bm25));
        let scores = |h: &[Hit]| h.iter().map(|h| h.score).collect::<Vec<_>>();
        assert_eq!(whole.len(), 3);
        for (x, y) in scores(&whole).iter().zip(scores(&split)) {
            assert!((x - y).abs() < 1e-6);
        }
    }

    #[test]
    fn vector_mode_ranks_by_cosine_and_hybrid_reports_both_retrievers() {
        let seg = segment(&[("alpha", [1.0, 0.0]), ("beta", [0.6, 0.8]), ("gamma", [0.0, 1.0])]);
        let q = [0.0f32, 2.0];
        let hits = search(std::slice::from_ref(&seg), &query(&[], Some(&q), Mode::Vector));
        let order: Vec<usize> = hits.iter().map(|h| h.chunk).collect();
        assert_eq!(order, vec![2, 1, 0]);
        assert!((hits[0].score - 1.0).abs() < 1e-6);

        let terms = Analyzer::default().terms("alpha");
        let hits = search(&[seg], &query(&terms, Some(&q), Mode::Hybrid));
        let alpha = hits.iter().find(|h| h.chunk == 0).unwrap();
        assert_eq!(alpha.bm25.unwrap().rank, 1);
        assert_eq!(alpha.vector.unwrap().rank, 3);
        assert!((alpha.score - (1.0 / 61.0 + 1.0 / 63.0)).abs() < 1e-6);
    }

    #[test]
    fn convex_fusion_weighs_normalized_scores() {
        let seg = segment(&[("alpha", [1.0, 0.0]), ("beta", [0.0, 1.0])]);
        let terms = Analyzer::default().terms("alpha");
        let q = [0.0f32, 1.0];
        let mut query = query(&terms, Some(&q), Mode::Hybrid);
        query.fusion = Fusion::Convex { alpha: 0.7 };
        let hits = search(&[seg], &query);
        // beta: best vector (1.0 normalized), no BM25 -> 0.7; alpha: best BM25 (1.0), worst vector (0) -> 0.3.
        assert_eq!(hits[0].chunk, 1);
        assert!((hits[0].score - 0.7).abs() < 1e-6);
        assert!((hits[1].score - 0.3).abs() < 1e-6);
    }

    #[test]
    fn source_filter_and_large_segments() {
        let a = segment(&[("apple pie", [1.0, 0.0])]);
        let key = Uuid::now_v7();
        let many: Vec<(ChunkMeta, Vec<f32>)> = (0..PARALLEL_VECTORS + 5)
            .map(|i| (meta(key, &format!("apple {i}")), vec![1.0, i as f32 / 1000.0]))
            .collect();
        let b = Arc::new(Segment::build(key, 1, &Analyzer::default(), many));
        let terms = Analyzer::default().terms("apple");
        let q = [0.0f32, 1.0];
        let mut query = query(&terms, Some(&q), Mode::Hybrid);
        let only_a = [a.key];
        query.sources = Some(&only_a);
        let hits = search(&[a.clone(), b.clone()], &query);
        assert!(hits.iter().all(|h| h.segment == 0));
        query.sources = None;
        query.mode = Mode::Vector;
        let hits = search(&[a, b], &query);
        // The largest second coordinate is the last chunk, scored on the second thread.
        assert_eq!((hits[0].segment, hits[0].chunk), (1, PARALLEL_VECTORS + 4));
    }
}
