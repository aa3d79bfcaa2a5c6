//! Sentence embeddings for the host's semantic retrieval.
//!
//! [`EmbeddingModel`] runs a BERT sentence encoder (the project uses `all-MiniLM-L6-v2`,
//! Apache-2.0) on the CPU with candle: WordPiece tokens from the model's own
//! `tokenizer.json`, the transformer, mean pooling over the real (unpadded) tokens and L2
//! normalisation, exactly as sentence-transformers computes it. Vectors are unit length,
//! so the dot product of two of them is their cosine similarity.
//!
//! The model is loaded from a directory an operator provides (see
//! `tools/embedding-model/install.py`); nothing is downloaded here. A missing or corrupt
//! directory is an [`EmbedError`] naming the file, never a panic.

#![warn(missing_docs)]

mod model_dir;

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::BertModel;
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams, TruncationStrategy};

pub use model_dir::ModelFiles;

/// Errors of the embedding model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbedError {
    /// A file the model needs is not in its directory.
    #[error(
        "the embedding model directory {dir} has no {file}; install the model with \
         `python3 tools/embedding-model/install.py {dir}`"
    )]
    MissingFile {
        /// The model directory.
        dir: PathBuf,
        /// The missing file's name.
        file: &'static str,
    },

    /// A model file exists but cannot be used.
    #[error("the embedding model file {path} cannot be used: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// Tokenising or running the model failed on some input.
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// A loaded sentence encoder. Loading reads ~90 MB of weights; embedding is CPU-bound and
/// runs on the calling thread plus candle's worker threads.
pub struct EmbeddingModel {
    model: BertModel,
    tokenizer: Tokenizer,
    dimensions: usize,
    max_tokens: usize,
    batch_size: usize,
    identity: String,
}

impl std::fmt::Debug for EmbeddingModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingModel")
            .field("dimensions", &self.dimensions)
            .field("max_tokens", &self.max_tokens)
            .finish_non_exhaustive()
    }
}

impl EmbeddingModel {
    /// Loads the model in `dir` (`config.json`, `tokenizer.json`, `model.safetensors`, and
    /// the optional sentence-transformers files `sentence_bert_config.json` and
    /// `1_Pooling/config.json`).
    pub fn load(dir: &Path) -> Result<Self, EmbedError> {
        let files = ModelFiles::read(dir)?;
        let device = Device::Cpu;
        let weights = files.weights_path();
        let bytes = std::fs::read(&weights).map_err(|e| corrupt(&weights, e))?;
        let vars = candle_nn::VarBuilder::from_buffered_safetensors(bytes, DType::F32, &device)
            .map_err(|e| corrupt(&weights, e))?;
        let model = BertModel::load(vars, &files.config).map_err(|e| corrupt(&weights, e))?;

        let tokenizer_path = files.tokenizer_path();
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| corrupt(&tokenizer_path, e))?;
        // The packaged tokenizer.json truncates and pads at 128 tokens; sentence-transformers
        // encodes up to the model's max_seq_length (256) and pads a batch to its longest text.
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: files.max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                ..TruncationParams::default()
            }))
            .map_err(|e| corrupt(&tokenizer_path, e))?;
        let pad = tokenizer.get_padding().cloned().unwrap_or_default();
        tokenizer.with_padding(Some(PaddingParams { strategy: PaddingStrategy::BatchLongest, ..pad }));

        Ok(EmbeddingModel {
            model,
            tokenizer,
            dimensions: files.config.hidden_size,
            max_tokens: files.max_tokens,
            batch_size: 16,
            identity: EmbeddingModel::identity(dir, files.max_tokens),
        })
    }

    /// Length of the vectors (384 for all-MiniLM-L6-v2).
    pub fn dimensions(&self) -> usize {
        self.dimensions
    }

    /// Tokens of a text the model reads; the rest is cut (256 for all-MiniLM-L6-v2).
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Embeds `texts`: one unit-length vector of [`Self::dimensions`] per text, in order.
    /// Texts are batched by length, so that short ones are not padded to long ones, and
    /// several texts are shared out over the machine's cores, a thread each (a single text,
    /// such as a question, runs on the calling thread). With [`single_threaded_products`]
    /// in force that is all the threads embedding takes.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(|t| t.to_string()).collect::<Vec<_>>(), true)
            .map_err(|e| EmbedError::Inference(e.to_string()))?;
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_attention_mask().iter().filter(|&&m| m == 1).count());
        let ids: Vec<Vec<u32>> = encodings.iter().map(|e| unpadded(e.get_ids(), e)).collect();

        // Dealt out in length order, so that every thread gets short and long texts alike.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(texts.len()).max(1);
        let shares: Vec<Vec<usize>> =
            (0..threads).map(|t| order.iter().skip(t).step_by(threads).copied().collect()).collect();
        // Each text's position and vector.
        type Embedded = Vec<(usize, Vec<f32>)>;
        let embed_share = |share: &[usize]| -> Result<Embedded, EmbedError> {
            let mut out = Vec::with_capacity(share.len());
            for batch in share.chunks(self.batch_size) {
                let batch_ids: Vec<&[u32]> = batch.iter().map(|&i| ids[i].as_slice()).collect();
                out.extend(batch.iter().copied().zip(self.embed_token_ids(&batch_ids)?));
            }
            Ok(out)
        };
        let embedded: Vec<Result<Embedded, EmbedError>> = if threads == 1 {
            vec![embed_share(&shares[0])]
        } else {
            std::thread::scope(|scope| {
                let running: Vec<_> = shares
                    .iter()
                    .map(|share| (share, std::thread::Builder::new().spawn_scoped(scope, || embed_share(share))))
                    .collect();
                running
                    .into_iter()
                    .map(|(share, thread)| match thread {
                        Ok(thread) => thread
                            .join()
                            .unwrap_or_else(|_| Err(EmbedError::Inference("an embedding thread panicked".into()))),
                        // No thread to be had: this one does the share.
                        Err(_) => embed_share(share),
                    })
                    .collect()
            })
        };
        let mut vectors = vec![Vec::new(); texts.len()];
        for share in embedded {
            for (i, vector) in share? {
                vectors[i] = vector;
            }
        }
        Ok(vectors)
    }

    /// Runs the model on one batch of token id sequences (with `[CLS]`/`[SEP]`), padding
    /// them to the longest, and mean-pools each over its own tokens.
    fn embed_token_ids(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let longest = batch.iter().map(|sequence| sequence.len()).max().unwrap_or(0).max(1);
        let mut ids = Vec::with_capacity(batch.len() * longest);
        let mut mask = Vec::with_capacity(batch.len() * longest);
        for sequence in batch {
            ids.extend(sequence.iter().copied().chain(std::iter::repeat_n(0, longest - sequence.len())));
            mask.extend(
                std::iter::repeat_n(1u32, sequence.len()).chain(std::iter::repeat_n(0, longest - sequence.len())),
            );
        }
        let run = || -> candle_core::Result<Vec<Vec<f32>>> {
            let device = Device::Cpu;
            let ids = Tensor::from_vec(ids, (batch.len(), longest), &device)?;
            let mask = Tensor::from_vec(mask, (batch.len(), longest), &device)?;
            let types = ids.zeros_like()?;
            let hidden = self.model.forward(&ids, &types, Some(&mask))?;
            let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
            let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
            let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
            let mean = summed.broadcast_div(&counts)?;
            let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
            mean.broadcast_div(&norms)?.to_vec2::<f32>()
        };
        run().map_err(|e| EmbedError::Inference(e.to_string()))
    }
}

/// Makes candle run each matrix product on the calling thread. By default it splits every
/// product over a pool as large as the machine (it reads `RAYON_NUM_THREADS` on every
/// product); for a question's few tokens the split saves a few milliseconds when the other
/// cores are idle and costs tens when they are not (a lexical search runs beside the
/// question, other questions arrive): on 13,857 pages, SciFact's claims through the whole
/// pipeline took p50 13.9 / p99 46.4 ms split over two threads and 17.1 / 25.2 ms on one
/// (`connector-bench --only scale`). Pages keep both cores busy anyway:
/// [`EmbeddingModel::embed`] shares them out over a thread per core. An operator's own
/// `RAYON_NUM_THREADS` wins.
///
/// The variable also sizes rayon's global pool, which others use (wasmtime compiles a
/// component's functions in parallel on it), so the pool is built first, a thread per core.
///
/// # Safety
///
/// Sets an environment variable: call it at the start of `main`, before any other thread
/// exists (one reading the environment meanwhile would be undefined behaviour).
pub unsafe fn single_threaded_products() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        // SAFETY: the caller guarantees that no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", "1") };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Fails only if the pool exists already, which then keeps its size.
        let _ = rayon::ThreadPoolBuilder::new().num_threads(cores).build_global();
    }
}

/// The token ids of an encoding without its padding.
fn unpadded(ids: &[u32], encoding: &tokenizers::Encoding) -> Vec<u32> {
    ids.iter().zip(encoding.get_attention_mask()).filter(|&(_, &m)| m == 1).map(|(&id, _)| id).collect()
}

fn corrupt(path: &Path, error: impl std::fmt::Display) -> EmbedError {
    EmbedError::Corrupt { path: path.to_path_buf(), reason: error.to_string() }
}

impl EmbeddingModel {
    /// Names this model for [`connector_search::semantic::Embedder::model_id`]: the SHA-256
    /// of its weights as recorded by the install script, or else its directory and the
    /// size of its weights, plus the tokens it reads.
    fn identity(dir: &Path, max_tokens: usize) -> String {
        let installed = std::fs::read_to_string(dir.join(".installed")).ok().map(|s| s.trim().to_string());
        let weights = installed.unwrap_or_else(|| {
            let size = std::fs::metadata(dir.join("model.safetensors")).map(|m| m.len()).unwrap_or_default();
            format!("{}:{size}", dir.display())
        });
        format!("{weights}/{max_tokens}")
    }
}

impl connector_search::semantic::Embedder for EmbeddingModel {
    fn model_id(&self) -> String {
        self.identity.clone()
    }

    fn dimensions(&self) -> usize {
        self.dimensions
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String> {
        EmbeddingModel::embed(self, texts).map_err(|e| e.to_string())
    }
}
