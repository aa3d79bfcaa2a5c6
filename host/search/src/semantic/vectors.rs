//! The page vectors of one instance in memory, scored exactly.
//!
//! Exact search over unit vectors is a dot product per page: 10,000 pages of 384
//! dimensions take about a millisecond, so no approximate index is needed at the scale
//! one instance holds (see the README's semantic figures before adding one).

use std::collections::HashMap;

/// Page vectors, contiguous for scanning, with the memory of each.
#[derive(Debug, Default)]
pub struct Vectors {
    dimensions: usize,
    data: Vec<f32>,
    keys: Vec<String>,
    memories: Vec<u32>,
    slots: HashMap<String, usize>,
    memory_ids: Vec<String>,
}

/// A page's similarity to a question.
#[derive(Debug, Clone, PartialEq)]
pub struct Similar {
    /// The memory.
    pub memory_id: String,
    /// The document.
    pub document_id: String,
    /// Cosine similarity (vectors are unit length).
    pub similarity: f32,
}

impl Vectors {
    /// No vectors yet, each of `dimensions` floats.
    pub fn new(dimensions: usize) -> Vectors {
        Vectors { dimensions, ..Vectors::default() }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `key` (`memory<US>document`) has a vector.
    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Keys of every vector.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(String::as_str)
    }

    fn memory_index(&mut self, memory_id: &str) -> u32 {
        match self.memory_ids.iter().position(|m| m == memory_id) {
            Some(i) => i as u32,
            None => {
                self.memory_ids.push(memory_id.to_string());
                (self.memory_ids.len() - 1) as u32
            }
        }
    }

    /// Adds or replaces the vector of `key`. A vector of the wrong length is ignored.
    pub fn upsert(&mut self, key: &str, vector: &[f32]) {
        if vector.len() != self.dimensions {
            return;
        }
        let memory_id = key.split(crate::KEY_SEP).next().unwrap_or_default();
        let memory = self.memory_index(memory_id);
        match self.slots.get(key) {
            Some(&slot) => {
                self.data[slot * self.dimensions..(slot + 1) * self.dimensions].copy_from_slice(vector);
                self.memories[slot] = memory;
            }
            None => {
                self.slots.insert(key.to_string(), self.keys.len());
                self.keys.push(key.to_string());
                self.memories.push(memory);
                self.data.extend_from_slice(vector);
            }
        }
    }

    /// Removes the vector of `key`, if any.
    pub fn remove(&mut self, key: &str) {
        let Some(slot) = self.slots.remove(key) else { return };
        let last = self.keys.len() - 1;
        let d = self.dimensions;
        if slot != last {
            self.data.copy_within(last * d..(last + 1) * d, slot * d);
            self.keys.swap(slot, last);
            self.memories.swap(slot, last);
            self.slots.insert(self.keys[slot].clone(), slot);
        }
        self.data.truncate(last * d);
        self.keys.pop();
        self.memories.pop();
    }

    /// Removes every vector whose key starts with `prefix`.
    pub fn remove_prefix(&mut self, prefix: &str) {
        let doomed: Vec<String> = self.keys.iter().filter(|k| k.starts_with(prefix)).cloned().collect();
        for key in doomed {
            self.remove(&key);
        }
    }

    fn in_scope(&self, memory_ids: &[String]) -> Option<Vec<bool>> {
        if memory_ids.is_empty() {
            return None;
        }
        Some(self.memory_ids.iter().map(|m| memory_ids.contains(m)).collect())
    }

    /// Whether any vector belongs to `memory_ids` (all memories when empty).
    pub fn any_in(&self, memory_ids: &[String]) -> bool {
        match self.in_scope(memory_ids) {
            None => !self.is_empty(),
            Some(scope) => self.memories.iter().any(|&m| scope[m as usize]),
        }
    }

    /// The `limit` pages most similar to `query` among `memory_ids` (all when empty),
    /// most similar first.
    pub fn nearest(&self, query: &[f32], memory_ids: &[String], limit: usize) -> Vec<Similar> {
        if query.len() != self.dimensions || limit == 0 {
            return Vec::new();
        }
        let scope = self.in_scope(memory_ids);
        let mut scored: Vec<(f32, usize)> = self
            .data
            .chunks_exact(self.dimensions)
            .enumerate()
            .filter(|(slot, _)| scope.as_ref().is_none_or(|s| s[self.memories[*slot] as usize]))
            .map(|(slot, vector)| (dot(query, vector), slot))
            .collect();
        let limit = limit.min(scored.len());
        if limit < scored.len() {
            scored.select_nth_unstable_by(limit, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(limit);
        }
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.into_iter().map(|(similarity, slot)| self.similar(slot, similarity)).collect()
    }

    /// The similarity of `key`'s page to `query`, if it has a vector.
    pub fn similarity(&self, query: &[f32], key: &str) -> Option<f32> {
        let slot = *self.slots.get(key)?;
        (query.len() == self.dimensions)
            .then(|| dot(query, &self.data[slot * self.dimensions..(slot + 1) * self.dimensions]))
    }

    fn similar(&self, slot: usize, similarity: f32) -> Similar {
        let (memory_id, document_id) = self.keys[slot].split_once(crate::KEY_SEP).unwrap_or_default();
        Similar { memory_id: memory_id.to_string(), document_id: document_id.to_string(), similarity }
    }
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent sums let the compiler vectorise the loop.
    let mut sums = [0f32; 8];
    let (a_blocks, b_blocks) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a_blocks.remainder().iter().zip(b_blocks.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a_blocks.zip(b_blocks) {
        for i in 0..8 {
            sums[i] += x[i] * y[i];
        }
    }
    sums.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(memory: &str, doc: &str) -> String {
        format!("{memory}\u{1f}{doc}")
    }

    #[test]
    fn nearest_ranks_by_similarity_within_the_memories_asked() {
        let mut v = Vectors::new(2);
        v.upsert(&key("m", "east"), &[1.0, 0.0]);
        v.upsert(&key("m", "north"), &[0.0, 1.0]);
        v.upsert(&key("n", "north-east"), &[0.7, 0.7]);
        let all = v.nearest(&[1.0, 0.0], &[], 10);
        let order: Vec<&str> = all.iter().map(|s| s.document_id.as_str()).collect();
        assert_eq!(order, ["east", "north-east", "north"]);
        let only_m = v.nearest(&[0.0, 1.0], &["m".into()], 1);
        assert_eq!(only_m[0].document_id, "north");
        assert!(!v.any_in(&["other".into()]));
    }

    #[test]
    fn replacing_and_removing_keep_the_slots_consistent() {
        let mut v = Vectors::new(2);
        for (i, doc) in ["a", "b", "c"].iter().enumerate() {
            v.upsert(&key("m", doc), &[i as f32, 1.0]);
        }
        v.remove(&key("m", "a"));
        v.upsert(&key("m", "b"), &[5.0, 0.0]);
        assert_eq!(v.len(), 2);
        assert_eq!(v.similarity(&[1.0, 0.0], &key("m", "b")), Some(5.0));
        assert_eq!(v.similarity(&[0.0, 1.0], &key("m", "c")), Some(1.0));
        assert_eq!(v.similarity(&[1.0, 0.0], &key("m", "a")), None);
        v.remove_prefix("m\u{1f}");
        assert!(v.is_empty());
    }
}
