//! A stemming token filter that remembers the stems it has computed.
//!
//! Snowball stemming is about half of the indexing CPU time, while most tokens of a
//! corpus repeat a few thousand words: a per-analyzer cache turns the algorithm into a
//! hash lookup for them. The stems are exactly tantivy's [`Stemmer`]'s.

use std::collections::HashMap;

use tantivy::tokenizer::{Language, RawTokenizer, Stemmer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer};

/// Distinct words remembered per analyzer before the cache starts over (a few MB at most).
const CACHED_WORDS: usize = 50_000;

/// [`Stemmer`] with a cache of the words it has stemmed.
#[derive(Clone, Debug)]
pub struct CachedStemmer {
    language: Language,
}

impl CachedStemmer {
    /// A stemmer for `language`.
    pub fn new(language: Language) -> CachedStemmer {
        CachedStemmer { language }
    }
}

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> CachedStemmerFilter<T> {
        let stemmer = TextAnalyzer::builder(RawTokenizer::default()).filter(Stemmer::new(self.language)).build();
        CachedStemmerFilter { inner: tokenizer, stems: Stems { stemmer, cache: HashMap::new() } }
    }
}

/// The tokenizer [`CachedStemmer`] makes of the one it wraps.
#[derive(Clone)]
pub struct CachedStemmerFilter<T> {
    inner: T,
    stems: Stems,
}

#[derive(Clone)]
struct Stems {
    /// One word in, its stem out.
    stemmer: TextAnalyzer,
    cache: HashMap<String, String>,
}

impl Stems {
    fn stem_in_place(&mut self, word: &mut String) {
        if let Some(stem) = self.cache.get(word.as_str()) {
            word.clear();
            word.push_str(stem);
            return;
        }
        let mut stream = self.stemmer.token_stream(word);
        let stem = if stream.advance() { stream.token().text.clone() } else { word.clone() };
        drop(stream);
        if self.cache.len() >= CACHED_WORDS {
            self.cache.clear();
        }
        self.cache.insert(std::mem::replace(word, stem.clone()), stem);
    }
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerTokenStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerTokenStream { tail: self.inner.token_stream(text), stems: &mut self.stems }
    }
}

/// The token stream of a [`CachedStemmerFilter`].
pub struct CachedStemmerTokenStream<'a, T> {
    tail: T,
    stems: &'a mut Stems,
}

impl<T: TokenStream> TokenStream for CachedStemmerTokenStream<'_, T> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        self.stems.stem_in_place(&mut self.tail.token_mut().text);
        true
    }

    fn token(&self) -> &Token {
        self.tail.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::tokenizer::{LowerCaser, SimpleTokenizer};

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while stream.advance() {
            out.push(stream.token().text.clone());
        }
        out
    }

    #[test]
    fn stems_like_tantivys_stemmer_on_first_sight_and_from_the_cache() {
        let text = "Rotating keys rotates the keys; running runners ran generously and generously";
        let mut plain =
            TextAnalyzer::builder(SimpleTokenizer::default()).filter(LowerCaser).filter(Stemmer::default()).build();
        let mut cached = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(LowerCaser)
            .filter(CachedStemmer::new(Language::English))
            .build();
        let expected = tokens(&mut plain, text);
        assert_eq!(expected[0], "rotat", "the algorithm did run");
        assert_eq!(tokens(&mut cached, text), expected);
        assert_eq!(tokens(&mut cached, text), expected, "the second pass is served from the cache");
    }
}
