//! An [`Embedder`] that remembers what it embedded in a file, so that scoring fusion
//! variants on a dataset embeds its pages once, not once per variant and run (`tune`), and
//! so that timing fused `retrieve` at scale does not first spend half an hour embedding
//! pages it has embedded before (`quality`'s at-scale table). The quality rows and the
//! embedding throughput embed through the host, uncached.

use std::collections::HashMap;
use std::io::{BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use connector_embed::EmbeddingModel;
use connector_search::semantic::Embedder;
use connector_search::semantic::store::text_hash;

/// The model, with a file of (text hash, vector) records in front of it.
pub struct CachedEmbedder {
    model: Arc<EmbeddingModel>,
    known: Mutex<HashMap<u64, Vec<f32>>>,
    file: Mutex<BufWriter<std::fs::File>>,
    questions_uncached: bool,
}

impl CachedEmbedder {
    /// Opens (or starts) the cache file for `model`.
    pub fn open(model: Arc<EmbeddingModel>, path: &Path) -> Result<CachedEmbedder> {
        let dims = model.dimensions();
        let record = 8 + 4 * dims;
        let mut known = HashMap::new();
        if let Ok(mut file) = std::fs::File::open(path) {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            for chunk in bytes.chunks_exact(record) {
                let hash = u64::from_le_bytes(chunk[..8].try_into()?);
                let vector = chunk[8..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                known.insert(hash, vector);
            }
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(CachedEmbedder {
            model,
            known: Mutex::new(known),
            file: Mutex::new(BufWriter::new(file)),
            questions_uncached: false,
        })
    }

    /// From now on a single text (what a query embeds: the question) always goes to the
    /// model, so that a timed query pays for its question as it would in a host; batches
    /// (pages) still come from the cache.
    pub fn questions_uncached(mut self) -> CachedEmbedder {
        self.questions_uncached = true;
        self
    }
}

impl Embedder for CachedEmbedder {
    fn model_id(&self) -> String {
        self.model.model_id()
    }

    fn dimensions(&self) -> usize {
        self.model.dimensions()
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        if self.questions_uncached && texts.len() == 1 {
            return Embedder::embed(self.model.as_ref(), texts);
        }
        let hashes: Vec<u64> = texts.iter().map(|t| text_hash(t)).collect();
        let missing: Vec<&str> = {
            let known = self.known.lock().unwrap();
            texts.iter().zip(&hashes).filter(|(_, h)| !known.contains_key(h)).map(|(t, _)| *t).collect()
        };
        if !missing.is_empty() {
            let vectors = Embedder::embed(self.model.as_ref(), &missing)?;
            let mut known = self.known.lock().unwrap();
            let mut file = self.file.lock().unwrap();
            for (text, vector) in missing.iter().zip(vectors) {
                let hash = text_hash(text);
                let mut record = hash.to_le_bytes().to_vec();
                record.extend(vector.iter().flat_map(|x| x.to_le_bytes()));
                file.write_all(&record).map_err(|e| e.to_string())?;
                known.insert(hash, vector);
            }
            file.flush().map_err(|e| e.to_string())?;
        }
        let known = self.known.lock().unwrap();
        Ok(hashes.iter().map(|h| known[h].clone()).collect())
    }
}
