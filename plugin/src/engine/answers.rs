//! Answers: the best passages for a question, with citations computed at query time.

use connector_sdk::caps::IndexHit;
use connector_sdk::rank::{RankConfig, Shape};

use super::*;

impl Engine<'_> {
    /// The best passages for a question, with citations: at most `per_document` per
    /// document (0: raw passages), documents ranked as [`connector_sdk::rank`] describes;
    /// with `labels`, only documents carrying one of them (a comment carries its page's).
    pub fn retrieve(
        &self,
        question: &str,
        memory_ids: &[String],
        limit: u32,
        per_document: u32,
        labels: &[String],
    ) -> Result<Vec<Passage>, ConnectorError> {
        let question = question.trim();
        if question.is_empty() {
            return Err(ConnectorError::InvalidInput("the question is empty".into()));
        }
        let limit = if limit == 0 { 5 } else { limit.min(1000) };
        let mut memories: HashMap<String, Memory> = HashMap::new();
        for id in memory_ids {
            memories.insert(id.clone(), self.memory(id)?);
        }
        let shape = Shape { limit: limit as usize, per_document: per_document as usize };
        let rank = RankConfig::default();
        // A label filter keeps part of the pool: ask for the largest one.
        let pool = if labels.is_empty() { rank.pool(shape) } else { rank.max_pool };
        let pool = u32::try_from(pool).unwrap_or(u32::MAX);
        let hits = self.index.query(question, memory_ids, pool)?;
        // The records of the pool's documents: their chunk counts rank them, and the answer
        // cites them. A memory being removed drops out here.
        let mut records: HashMap<(String, String), Option<DocRecord>> = HashMap::new();
        for hit in &hits {
            if !memories.contains_key(&hit.memory_id)
                && let Ok(memory) = self.memory(&hit.memory_id)
            {
                memories.insert(hit.memory_id.clone(), memory);
            }
        }
        // One read per memory for the whole pool rather than one per passage: on a shared
        // database each read is a round trip.
        let pool_keys = hits.iter().map(|hit| (hit.memory_id.clone(), hit.document_id.clone()));
        self.prefetch_records(&mut records, &memories, pool_keys.collect())?;
        let mut pooled = Vec::with_capacity(hits.len());
        for hit in hits {
            if !memories.contains_key(&hit.memory_id) {
                let Ok(memory) = self.memory(&hit.memory_id) else { continue };
                memories.insert(hit.memory_id.clone(), memory);
            }
            if shape.per_document != 0 || !labels.is_empty() {
                self.doc_record(&mut records, &memories[&hit.memory_id], &hit.document_id)?;
            }
            if !labels.is_empty() {
                let memory = &memories[&hit.memory_id];
                let own = self.doc_labels(&mut records, memory, &hit.document_id)?;
                if !own.iter().any(|label| labels.iter().any(|wanted| wanted.eq_ignore_ascii_case(label))) {
                    continue;
                }
            }
            pooled.push(hit);
        }
        let chunks_of = |memory: &str, document: &str| {
            let record = records.get(&(memory.to_string(), document.to_string()))?;
            record.as_ref().map(|r| r.chunks as usize)
        };
        // A comment answers for its page: one source with it.
        let source_of = |hit: &IndexHit| {
            let record = records.get(&(hit.memory_id.clone(), hit.document_id.clone())).and_then(Option::as_ref);
            match record {
                Some(DocRecord { kind: 'c', parent: Some(page), .. }) => page.clone(),
                _ => hit.document_id.clone(),
            }
        };
        let hits = rank.answer_by(pooled, shape, chunks_of, source_of);
        let answer_keys = hits.iter().map(|hit| (hit.memory_id.clone(), hit.document_id.clone()));
        self.prefetch_ancestors(&mut records, &memories, answer_keys.collect())?;
        let mut passages = Vec::with_capacity(hits.len());
        for hit in hits {
            let memory = &memories[&hit.memory_id];
            let Some(record) = self.doc_record(&mut records, memory, &hit.document_id)? else { continue };
            let mut trail = vec![memory.space_name.clone()];
            trail.extend(self.ancestors(&mut records, memory, record.parent.as_deref())?);
            // A comment is cited as its page, opened at the comment; its heading says whose.
            let (title, url) = match (record.kind, record.parent.as_deref()) {
                ('c', Some(page)) => {
                    let page = self.doc_record(&mut records, memory, page)?;
                    let webui = page.as_ref().map_or("", |p| p.webui.as_str());
                    let joint = if webui.contains('?') { '&' } else { '?' };
                    let id = &hit.document_id;
                    let title = page.as_ref().map_or_else(|| record.title.clone(), |p| p.title.clone());
                    (title, format!("{}{webui}{joint}focusedCommentId={id}#comment-{id}", memory.wiki_base))
                }
                _ => {
                    trail.push(record.title.clone());
                    (record.title.clone(), format!("{}{}", memory.wiki_base, record.webui))
                }
            };
            if !hit.heading.is_empty() {
                trail.push(hit.heading.clone());
            }
            let labels = self.doc_labels(&mut records, memory, &hit.document_id)?;
            passages.push(Passage {
                title,
                url,
                breadcrumb: trail.join(" › "),
                text: hit.text,
                score: hit.score,
                document_id: hit.document_id,
                document_version: record.version,
                modified_at: record.modified.clone(),
                source_key: memory.space_key.clone(),
                memory_id: memory.id.clone(),
                labels,
            });
        }
        Ok(passages)
    }

    /// Reads the records of the documents `keys` (memory, document) that `cache` lacks, in
    /// one batch per memory.
    fn prefetch_records(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memories: &HashMap<String, Memory>,
        keys: Vec<(String, String)>,
    ) -> Result<(), ConnectorError> {
        let mut wanted: HashMap<String, Vec<String>> = HashMap::new();
        for (memory, id) in keys {
            if !cache.contains_key(&(memory.clone(), id.clone())) && memories.contains_key(&memory) {
                wanted.entry(memory).or_default().push(id);
            }
        }
        for (memory, mut ids) in wanted {
            ids.sort();
            ids.dedup();
            let records = self.doc_records(&memory, &ids)?;
            for (id, record) in ids.into_iter().zip(records) {
                cache.insert((memory.clone(), id), record);
            }
        }
        Ok(())
    }

    /// Reads the records the citations of `keys` need — their parents up to the space's
    /// homepage, and the pages comments are on — a level at a time, one batch per level.
    fn prefetch_ancestors(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memories: &HashMap<String, Memory>,
        keys: Vec<(String, String)>,
    ) -> Result<(), ConnectorError> {
        let mut seen: HashSet<(String, String)> = keys.iter().cloned().collect();
        let mut level = keys;
        for _ in 0..32 {
            self.prefetch_records(cache, memories, level.clone())?;
            let parents: Vec<(String, String)> = level
                .iter()
                .filter_map(|key| {
                    let parent = cache.get(key)?.as_ref()?.parent.clone()?;
                    let stop = memories.get(&key.0).is_some_and(|m| m.homepage_id.as_deref() == Some(parent.as_str()));
                    (!stop).then(|| (key.0.clone(), parent))
                })
                .filter(|key| seen.insert(key.clone()))
                .collect();
            if parents.is_empty() {
                break;
            }
            level = parents;
        }
        Ok(())
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
        let record = self.doc_records(&memory.id, &[id.to_string()])?.pop().flatten();
        cache.insert(key, record.clone());
        Ok(record)
    }

    /// A document's labels; a comment's are its page's.
    fn doc_labels(
        &self,
        cache: &mut HashMap<(String, String), Option<DocRecord>>,
        memory: &Memory,
        id: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let Some(record) = self.doc_record(cache, memory, id)? else { return Ok(Vec::new()) };
        match (record.kind, record.parent.as_deref()) {
            ('c', Some(page)) => Ok(self.doc_record(cache, memory, page)?.map(|p| p.labels).unwrap_or_default()),
            _ => Ok(record.labels),
        }
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
