//! The files of a sentence-transformers model directory and what the host reads from them.

use std::path::{Path, PathBuf};

use candle_transformers::models::bert::Config;
use serde::Deserialize;

use crate::EmbedError;

/// Tokens read when `sentence_bert_config.json` does not say (sentence-transformers'
/// value for all-MiniLM-L6-v2).
const DEFAULT_MAX_TOKENS: usize = 256;

/// The parsed configuration of a model directory.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// The directory.
    pub dir: PathBuf,
    /// The transformer's configuration (`config.json`).
    pub config: Config,
    /// Tokens per text the model reads (`sentence_bert_config.json`, `max_seq_length`).
    pub max_tokens: usize,
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
}

impl ModelFiles {
    /// Reads and checks the configuration files of `dir`; the weights and the tokenizer
    /// must exist but are read by [`crate::EmbeddingModel::load`].
    pub fn read(dir: &Path) -> Result<Self, EmbedError> {
        if !dir.is_dir() {
            return Err(EmbedError::MissingFile { dir: dir.to_path_buf(), file: "directory" });
        }
        for file in ["config.json", "tokenizer.json", "model.safetensors"] {
            if !dir.join(file).is_file() {
                return Err(EmbedError::MissingFile { dir: dir.to_path_buf(), file });
            }
        }
        let config: Config = read_json(&dir.join("config.json"))?;
        if config.model_type.as_deref().is_some_and(|t| t != "bert") {
            return Err(EmbedError::Corrupt {
                path: dir.join("config.json"),
                reason: format!("model_type {:?} is not a BERT encoder", config.model_type),
            });
        }
        let max_tokens = match optional_json::<SentenceBertConfig>(&dir.join("sentence_bert_config.json"))? {
            Some(sbert) => sbert.max_seq_length.min(config.max_position_embeddings),
            None => DEFAULT_MAX_TOKENS.min(config.max_position_embeddings),
        };
        let pooling_path = dir.join("1_Pooling").join("config.json");
        if let Some(pooling) = optional_json::<PoolingConfig>(&pooling_path)?
            && !pooling.pooling_mode_mean_tokens
        {
            return Err(EmbedError::Corrupt { path: pooling_path, reason: "only mean pooling is supported".into() });
        }
        Ok(ModelFiles { dir: dir.to_path_buf(), config, max_tokens })
    }

    /// `model.safetensors`.
    pub fn weights_path(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// `tokenizer.json`.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join("tokenizer.json")
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EmbedError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })?;
    serde_json::from_str(&text).map_err(|e| EmbedError::Corrupt { path: path.to_path_buf(), reason: e.to_string() })
}

fn optional_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, EmbedError> {
    if path.is_file() { read_json(path).map(Some) } else { Ok(None) }
}
