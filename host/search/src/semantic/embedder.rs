//! What the semantic index needs from a sentence encoder.

/// A sentence encoder: texts in, unit-length vectors out. The host implements it with
/// its model runtime; tests can implement it with anything deterministic.
pub trait Embedder: Send + Sync {
    /// Names the model and its settings. Vectors made by another model are useless, so
    /// the index re-embeds every page when this changes.
    fn model_id(&self) -> String;

    /// Length of every vector.
    fn dimensions(&self) -> usize;

    /// One vector per text, in order.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, String>;
}
