//! People: the display names of accounts that pages mention, so that a mention is indexed
//! as the name the page shows (`@Ada Lovelace`), not as an account id.

use super::*;

/// Account ids per `user/bulk` request: the ids travel in the URL, which stays a few
/// kilobytes long.
const IDS_PER_LOOKUP: usize = 50;

/// Key of a remembered display name: per connection, since what an account may see of
/// another account's profile depends on the connection.
fn person_key(connection_id: &str, account_id: &str) -> String {
    format!("person/{connection_id}/{account_id}")
}

impl Engine<'_> {
    /// Writes the mentions of `docs` as the people's display names, looked up together.
    pub(super) fn name_mentions(
        &self,
        client: &Client<'_>,
        connection_id: &str,
        docs: &mut [Option<storage::Converted>],
    ) -> Result<(), HostError> {
        let mut mentioned: Vec<String> = docs.iter().flatten().flat_map(storage::Converted::mentions).collect();
        mentioned.sort();
        mentioned.dedup();
        if !mentioned.is_empty() {
            let names = self.display_names(client, connection_id, &mentioned)?;
            docs.iter_mut().flatten().for_each(|doc| doc.name_mentions(&names));
        }
        Ok(())
    }

    /// The display names of `account_ids`: remembered ones from key-value storage, the rest
    /// asked for in one request per [`IDS_PER_LOOKUP`] ids and remembered (an account
    /// Confluence does not return, deleted or hidden, is remembered as unnamed). When
    /// Confluence cannot answer, the mentions stay unnamed (`@user`) and are asked for
    /// again with the next page that mentions them: a name is never worth failing a step.
    pub(super) fn display_names(
        &self,
        client: &Client<'_>,
        connection_id: &str,
        account_ids: &[String],
    ) -> Result<HashMap<String, String>, HostError> {
        let keys: Vec<String> = account_ids.iter().map(|id| person_key(connection_id, id)).collect();
        let mut names = HashMap::new();
        let mut unknown = Vec::new();
        for (id, stored) in account_ids.iter().zip(self.kv.get_many(MAIN_BUCKET, &keys)?) {
            match stored.and_then(|bytes| String::from_utf8(bytes).ok()) {
                Some(name) => {
                    names.insert(id.clone(), name);
                }
                None => unknown.push(id.clone()),
            }
        }
        for batch in unknown.chunks(IDS_PER_LOOKUP) {
            let query: Vec<String> = batch.iter().map(|id| format!("accountId={}", url_encode(id))).collect();
            let link = format!("/wiki/rest/api/user/bulk?{}&limit={IDS_PER_LOOKUP}", query.join("&"));
            let Ok(found) = client.get_json::<UserBulk>(&link) else { continue };
            let mut learned: Vec<(String, Vec<u8>)> = Vec::with_capacity(batch.len());
            for id in batch {
                let name = found
                    .results
                    .iter()
                    .find(|user| &user.account_id == id)
                    .map(|user| user.display_name.trim().to_string())
                    .unwrap_or_default();
                learned.push((person_key(connection_id, id), name.clone().into_bytes()));
                names.insert(id.clone(), name);
            }
            self.kv.set_many(MAIN_BUCKET, learned)?;
        }
        Ok(names)
    }
}

/// The part of `GET /wiki/rest/api/user/bulk` the connector reads.
#[derive(serde::Deserialize)]
struct UserBulk {
    #[serde(default)]
    results: Vec<BulkUser>,
}

#[derive(serde::Deserialize)]
struct BulkUser {
    #[serde(rename = "accountId")]
    account_id: String,
    #[serde(rename = "displayName", default)]
    display_name: String,
}
