//! Text to BM25 terms: Unicode word segments, lower-cased, English stop words
//! dropped, Snowball-stemmed.

use rust_stemmers::{Algorithm, Stemmer};

/// The stop words of Lucene's English analyzer (the list BM25 baselines use).
const STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it", "no", "not", "of",
    "on", "or", "such", "that", "the", "their", "then", "there", "these", "they", "this", "to", "was", "will", "with",
];

/// Words of how people ask, whatever they ask about: question words,
/// pronouns, auxiliaries and requests. A knowledge base of ten FAQ entries
/// need not contain "how much" for a question about its prices to be
/// answerable, so these never count as evidence either way.
const ASKING_WORDS: &[&str] = &[
    "about", "all", "am", "any", "anyone", "can", "could", "did", "do", "does", "doing", "done", "explain", "find",
    "get", "give", "got", "had", "has", "have", "hello", "help", "hey", "hi", "how", "i", "i'm", "is", "know", "let",
    "like", "make", "many", "me", "much", "must", "my", "need", "ok", "okay", "our", "please", "possible", "should",
    "show", "so", "some", "someone", "tell", "thank", "thanks", "there", "to", "use", "using", "us", "want", "way",
    "we", "what", "what's", "whats", "when", "where", "which", "who", "why", "would", "you", "your",
];

/// Longest term kept; longer runs are hashes, base64 and similar noise.
const MAX_TERM_CHARS: usize = 40;

pub struct Analyzer {
    stemmer: Stemmer,
    /// [`ASKING_WORDS`] as terms.
    asking: Vec<String>,
}

impl Default for Analyzer {
    fn default() -> Self {
        let stemmer = Stemmer::create(Algorithm::English);
        let mut asking: Vec<String> = ASKING_WORDS.iter().map(|w| stemmer.stem(w).into_owned()).collect();
        asking.sort_unstable();
        asking.dedup();
        Analyzer { stemmer, asking }
    }
}

impl Analyzer {
    /// Whether an analyzed term is a word of asking (see [`ASKING_WORDS`]).
    pub fn is_asking(&self, term: &str) -> bool {
        self.asking.binary_search_by(|w| w.as_str().cmp(term)).is_ok()
    }

    /// The terms of `text`, in order, repeats kept.
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for word in text.split(|c: char| !c.is_alphanumeric()) {
            if word.is_empty() || word.chars().count() > MAX_TERM_CHARS {
                continue;
            }
            let lower = word.to_lowercase();
            if STOP_WORDS.binary_search(&lower.as_str()).is_ok() {
                continue;
            }
            out.push(self.stemmer.stem(&lower).into_owned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn lowercases_stems_and_drops_stop_words() {
        let a = Analyzer::default();
        assert_eq!(
            a.terms("The Pricing of Plans: running, runs!"),
            vec!["price", "plan", "run", "run"]
        );
        assert_eq!(a.terms("Größe und Maße 42"), vec!["größe", "und", "maße", "42"]);
        assert!(a.terms("to be or not to be").is_empty());
    }
}
