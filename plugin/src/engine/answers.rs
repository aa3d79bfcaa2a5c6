//! Answers: the best passages for a question, with citations computed at query time.

use super::*;

impl Engine<'_> {
    /// The best passages for a question, with citations.
    pub fn retrieve(&self, question: &str, memory_ids: &[String], limit: u32) -> Result<Vec<Passage>, ConnectorError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(ConnectorError::InvalidInput("the question is empty".into()));
        }
        let limit = if limit == 0 { 5 } else { limit.min(1000) };
        let mut memories: HashMap<String, Memory> = HashMap::new();
        for id in memory_ids {
            memories.insert(id.clone(), self.memory(id)?);
        }
        let hits = self.index.query(question, memory_ids, limit)?;
        let mut passages = Vec::with_capacity(hits.len());
        let mut records: HashMap<(String, String), Option<DocRecord>> = HashMap::new();
        for hit in hits {
            if !memories.contains_key(&hit.memory_id) {
                match self.memory(&hit.memory_id) {
                    Ok(memory) => {
                        memories.insert(hit.memory_id.clone(), memory);
                    }
                    Err(_) => continue, // a memory being removed
                }
            }
            let memory = &memories[&hit.memory_id];
            let Some(record) = self.doc_record(&mut records, memory, &hit.document_id)? else { continue };
            let mut trail = vec![memory.space_name.clone()];
            trail.extend(self.ancestors(&mut records, memory, record.parent.as_deref())?);
            trail.push(record.title.clone());
            if !hit.heading.is_empty() {
                trail.push(hit.heading.clone());
            }
            passages.push(Passage {
                title: record.title.clone(),
                url: format!("{}{}", memory.wiki_base, record.webui),
                breadcrumb: trail.join(" › "),
                text: hit.text,
                score: hit.score,
                document_id: hit.document_id,
                document_version: record.version,
                modified_at: record.modified.clone(),
                source_key: memory.space_key.clone(),
                memory_id: memory.id.clone(),
            });
        }
        Ok(passages)
    }

    fn doc_record(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memory: &Memory,
        id: &str,
    ) -> Result<Option<DocRecord>, ConnectorError> {
        let key = (memory.id.clone(), id.to_string());
        if let Some(record) = cache.get(&key) {
            return Ok(record.clone());
        }
        let record = self.kv.get(&docs_bucket(&memory.id), id)?.and_then(|bytes| serde_json::from_slice(&bytes).ok());
        cache.insert(key, record.clone());
        Ok(record)
    }

    fn ancestors(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memory: &Memory,
        parent: Option<&str>,
    ) -> Result<Vec<String>, ConnectorError> {
        let mut titles = Vec::new();
        let mut parent = parent.map(str::to_string);
        let mut seen = HashSet::new();
        while let Some(id) = parent.take() {
            if memory.homepage_id.as_deref() == Some(id.as_str()) || !seen.insert(id.clone()) || titles.len() >= 32 {
                break;
            }
            let Some(record) = self.doc_record(cache, memory, &id)? else { break };
            titles.push(record.title);
            parent = record.parent;
        }
        titles.reverse();
        Ok(titles)
    }
}
