//! Registering memories: resolving space keys, rejecting duplicates, starting runs.

use super::*;

impl Engine<'_> {
    /// Registers one memory per space key; each key succeeds or fails on its own.
    pub fn ingest(&self, connection_id: &str, sources: &[String]) -> Result<Vec<IngestOutcome>, ConnectorError> {
        let connection = self.connection(connection_id)?;
        let client = self.client_for(&connection)?;
        let requested: Vec<String> =
            sources.iter().flat_map(|s| s.split(',')).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        if requested.is_empty() {
            return Err(ConnectorError::InvalidInput(
                "no space keys given: enter one or more keys, comma-separated (e.g. SD, TD)".into(),
            ));
        }
        if requested.len() > 1000 {
            return Err(ConnectorError::InvalidInput(format!(
                "{} space keys in one request; add at most 1000 at a time",
                requested.len()
            )));
        }
        // None = valid so far, to be resolved against Confluence.
        let mut checked: Vec<(String, Option<ConnectorError>)> = Vec::with_capacity(requested.len());
        let mut seen_typed = HashSet::new();
        for key in requested {
            let rejection = match check_space_key(&key) {
                Err(error) => Some(error),
                Ok(()) if !seen_typed.insert(key.to_ascii_uppercase()) => {
                    Some(ConnectorError::Duplicate(format!("space key '{key}' is listed twice in this request")))
                }
                Ok(()) => None,
            };
            checked.push((key, rejection));
        }
        let to_resolve: Vec<String> = checked.iter().filter(|(_, r)| r.is_none()).map(|(k, _)| k.clone()).collect();
        let spaces = self.resolve_spaces(&client, &to_resolve).map_err(|error| match error {
            ApiError::Unauthorized { .. } => token_rejected(&connection),
            ApiError::ScopeMismatch { url } => {
                ConnectorError::MissingScopes(vec![format!("read:space:confluence (for {url})")])
            }
            other => network(other),
        })?;
        let mut memories = self.memories()?;
        let mut outcomes = Vec::with_capacity(checked.len());
        for (key, rejection) in checked {
            let outcome = match rejection {
                Some(error) => Err(error),
                None => {
                    let resolved = spaces
                        .iter()
                        .find(|s| s.key == key)
                        .or_else(|| spaces.iter().find(|s| s.key.eq_ignore_ascii_case(&key)));
                    self.register(&connection, &key, resolved, &mut memories)
                }
            };
            outcomes.push(IngestOutcome { requested: key, outcome });
        }
        Ok(outcomes)
    }

    fn resolve_spaces(&self, client: &Client<'_>, keys: &[String]) -> Result<Vec<Space>, ApiError> {
        let mut spaces = Vec::new();
        for batch in keys.chunks(KEYS_PER_LOOKUP) {
            // Global space keys are upper case in Confluence; people type them in any case.
            let mut wanted: Vec<String> = Vec::with_capacity(batch.len() * 2);
            for key in batch {
                for variant in [key.clone(), if key.starts_with('~') { key.clone() } else { key.to_ascii_uppercase() }]
                {
                    if !wanted.contains(&variant) {
                        wanted.push(variant);
                    }
                }
            }
            let encoded: Vec<String> = wanted.iter().map(|k| url_encode(k)).collect();
            let mut link = Some(format!("/wiki/api/v2/spaces?keys={}&limit={PAGE_LIMIT}", encoded.join(",")));
            let mut visited = HashSet::new();
            while let Some(current) = link.take() {
                visited.insert(current.clone());
                let listing: Listing<Space> = fetch_listing(client, &current, |next| visited.contains(next))?;
                if listing.links.next.as_ref().is_some_and(|next| visited.contains(next)) {
                    return Err(ApiError::Looping(current));
                }
                spaces.extend(listing.results);
                link = listing.links.next;
            }
        }
        Ok(spaces)
    }

    fn register(
        &self,
        connection: &Connection,
        typed: &str,
        space: Option<&Space>,
        memories: &mut Vec<Memory>,
    ) -> Result<Memory, ConnectorError> {
        let mine = |m: &&Memory| m.connection_id == connection.id;
        if let Some(space) = space
            && let Some(existing) =
                memories.iter().filter(mine).find(|m| m.space_id.as_deref() == Some(space.id.as_str()))
        {
            if existing.run.is_some() {
                return Ok(existing.clone()); // unfinished: ingest continues it
            }
            return Err(ConnectorError::Duplicate(format!(
                "space {} is already ingested for this account as memory {}: use sync {} instead",
                space.key, existing.id, existing.id
            )));
        }
        // A key that did not resolve before keeps its memory: adding it again retries it.
        let earlier =
            memories.iter().filter(mine).find(|m| m.space_id.is_none() && m.space_key.eq_ignore_ascii_case(typed));
        let mut memory = match earlier {
            Some(existing) => existing.clone(),
            None => new_memory(self.next_id("mem")?, connection, typed),
        };
        match space {
            // Unknown or invisible key: an ERROR memory that names it.
            None => {
                memory.status = MemoryStatus::Error;
                memory.error = Some(space_not_found(typed, connection));
            }
            Some(space) => {
                memory.space_key = space.key.clone();
                memory.space_id = Some(space.id.clone());
                memory.space_name = if space.name.is_empty() { space.key.clone() } else { space.name.clone() };
                memory.homepage_id = space.homepage_id.clone();
                memory.status = MemoryStatus::InProgress;
                memory.error = None;
                memory.generation += 1;
                memory.progress = Progress { phase: Phase::Labels.label().into(), ..Progress::default() };
                memory.run = Some(Run::start(RunKind::Ingest, true));
            }
        }
        self.save_memory(&memory)?;
        match memories.iter_mut().find(|m| m.id == memory.id) {
            Some(slot) => *slot = memory.clone(),
            None => memories.push(memory.clone()),
        }
        Ok(memory)
    }

    /// Starts a sync of a memory (or continues its unfinished run).
    pub fn sync(&self, memory_id: &str, allow_mass_delete: bool) -> Result<Memory, ConnectorError> {
        let mut memory = self.memory(memory_id)?;
        let connection = self.connection(&memory.connection_id)?;
        self.client_for(&connection)?;
        if let Some(run) = memory.run.as_mut() {
            run.allow_mass_delete |= allow_mass_delete;
            self.save_memory(&memory)?;
            return Ok(memory);
        }
        if memory.space_id.is_none() {
            return Err(ConnectorError::NotFound(format!(
                "memory {} never resolved space '{}': ingest the key again once it exists and is visible to {}",
                memory.id, memory.space_key, connection.email
            )));
        }
        memory.generation += 1;
        memory.status = MemoryStatus::InProgress;
        memory.progress = Progress { phase: Phase::Labels.label().into(), ..Progress::default() };
        memory.run = Some(Run::start(RunKind::Sync, allow_mass_delete));
        self.save_memory(&memory)?;
        Ok(memory)
    }
}
