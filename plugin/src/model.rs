//! The parts of Confluence's REST responses the connector reads.
//!
//! Parsing is lenient where Confluence is inconsistent (ids as strings or numbers,
//! optional fields missing, unknown fields present) and strict where a wrong value
//! would silently corrupt the index (ids, versions).

use serde::{Deserialize, Deserializer};

/// `{"results": [...], "_links": {"next", "base"}}` of every v2 list endpoint.
#[derive(Debug, Deserialize)]
pub struct Listing<T> {
    /// The entries of this page.
    pub results: Vec<T>,
    /// Pagination and base links.
    #[serde(rename = "_links", default)]
    pub links: ListingLinks,
}

/// Links of a list response.
#[derive(Debug, Default, Deserialize)]
pub struct ListingLinks {
    /// Relative URL of the next page (absent on the last page).
    #[serde(default)]
    pub next: Option<String>,
    /// The site's wiki base, e.g. `https://acme.atlassian.net/wiki`.
    #[serde(default)]
    pub base: Option<String>,
}

/// A space (SpaceBulk).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Space {
    /// Numeric id, as a string.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Space key, e.g. `ENG`.
    pub key: String,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// The homepage's id.
    #[serde(default, deserialize_with = "optional_id_string")]
    pub homepage_id: Option<String>,
}

/// A page or blog post (PageBulk / BlogPostBulk).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// Content id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// `current`, `archived`, `trashed`, ...
    #[serde(default)]
    pub status: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Parent page (pages only).
    #[serde(default, deserialize_with = "optional_id_string")]
    pub parent_id: Option<String>,
    /// Version (its `number` changes on every publish).
    pub version: Version,
    /// Body, only when `body-format` was asked for.
    #[serde(default)]
    pub body: Option<Body>,
    /// Relative links.
    #[serde(rename = "_links", default)]
    pub links: ContentLinks,
}

/// Version of a page or blog post.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Increments on every publish.
    pub number: u32,
    /// Time of the last modification.
    #[serde(default)]
    pub created_at: String,
}

/// Body representations.
#[derive(Debug, Default, Deserialize)]
pub struct Body {
    /// Storage format.
    #[serde(default)]
    pub storage: Option<BodyValue>,
}

impl Body {
    /// The storage-format markup of an optional body, or empty.
    pub fn storage_of(body: &Option<Body>) -> &str {
        body.as_ref().and_then(|b| b.storage.as_ref()).map_or("", |s| s.value.as_str())
    }
}

/// One body representation.
#[derive(Debug, Deserialize)]
pub struct BodyValue {
    /// The markup.
    #[serde(default)]
    pub value: String,
}

/// Links of a page.
#[derive(Debug, Default, Deserialize)]
pub struct ContentLinks {
    /// Relative to the wiki base, e.g. `/spaces/ENG/pages/123/Title`.
    #[serde(default)]
    pub webui: Option<String>,
}

/// `GET /wiki/rest/api/user/current`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CurrentUser {
    /// `known` for an authenticated user, `anonymous` otherwise.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The user's e-mail, when their privacy settings show it.
    #[serde(default)]
    pub email: Option<String>,
    /// Display name.
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `GET /_edge/tenant_info`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfo {
    /// The site's cloud id.
    pub cloud_id: String,
}

/// A comment, as the v1 CQL search answers it (`type=comment`, expanded with `container`,
/// `version`, `history`, `extensions` and, when asked, `body.storage`). Replies are comments
/// too: their `ancestors` are the comments they answer.
#[derive(Debug, Deserialize)]
pub struct Comment {
    /// Comment id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// Version (its `number` changes on every edit).
    pub version: CommentVersion,
    /// Who wrote it, and when.
    #[serde(default)]
    pub history: Option<CommentHistory>,
    /// The page or blog post it is on.
    #[serde(default)]
    pub container: Option<Container>,
    /// Footer or inline; an inline comment's highlighted text and resolution.
    #[serde(default)]
    pub extensions: CommentExtensions,
    /// Body, only when `body.storage` was asked for.
    #[serde(default)]
    pub body: Option<Body>,
    /// The comments a reply answers.
    #[serde(default)]
    pub ancestors: Vec<Container>,
}

/// A v1 version.
#[derive(Debug, Deserialize)]
pub struct CommentVersion {
    /// Increments on every edit.
    pub number: u32,
    /// Time of the last edit.
    #[serde(default)]
    pub when: String,
}

/// A v1 history.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentHistory {
    /// The author.
    #[serde(default)]
    pub created_by: Option<Person>,
    /// When it was written.
    #[serde(default)]
    pub created_date: String,
}

/// A v1 user.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    /// Display name.
    #[serde(default)]
    pub display_name: String,
}

/// The content something belongs to.
#[derive(Debug, Deserialize)]
pub struct Container {
    /// Its id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// `page`, `blogpost`, `comment`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
}

/// A comment's v1 extensions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommentExtensions {
    /// `footer` or `inline`.
    #[serde(default)]
    pub location: String,
    /// An inline comment's anchor.
    #[serde(default)]
    pub inline_properties: Option<InlineProperties>,
    /// An inline comment's resolution.
    #[serde(default)]
    pub resolution: Option<Resolution>,
}

/// An inline comment's anchor.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InlineProperties {
    /// The highlighted page text.
    #[serde(default)]
    pub original_selection: String,
}

/// An inline comment's resolution.
#[derive(Debug, Default, Deserialize)]
pub struct Resolution {
    /// `open`, `reopened`, `resolved`, `dangling`.
    #[serde(default)]
    pub status: String,
}

/// An attachment, as the v1 CQL search answers it (`type=attachment`, expanded with
/// `version`, `container` and `extensions`). Its title is its file name.
#[derive(Debug, Deserialize)]
pub struct Attachment {
    /// Attachment id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// File name.
    #[serde(default)]
    pub title: String,
    /// Version (a new upload is a new version).
    pub version: CommentVersion,
    /// The page or blog post it is attached to.
    #[serde(default)]
    pub container: Option<Container>,
    /// Media type and size.
    #[serde(default)]
    pub extensions: AttachmentExtensions,
    /// `download` (relative to the wiki base) and `webui`.
    #[serde(rename = "_links", default)]
    pub links: AttachmentLinks,
}

/// An attachment's v1 extensions.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentExtensions {
    /// e.g. `application/pdf`.
    #[serde(default)]
    pub media_type: String,
    /// Bytes.
    #[serde(default)]
    pub file_size: u64,
}

/// An attachment's links.
#[derive(Debug, Default, Deserialize)]
pub struct AttachmentLinks {
    /// The file, relative to the wiki base (`/download/attachments/...`).
    #[serde(default)]
    pub download: Option<String>,
    /// A page that shows it, relative to the wiki base.
    #[serde(default)]
    pub webui: Option<String>,
}

/// A `GET /spaces/{id}/content/labels` entry.
#[derive(Debug, Deserialize)]
pub struct Label {
    /// The label.
    pub name: String,
}

/// Content with its labels, as a CQL search expanded with `metadata.labels` answers it.
#[derive(Debug, Deserialize)]
pub struct Labelled {
    /// Content id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// `metadata.labels.results[].name`.
    #[serde(default)]
    pub metadata: LabelledMetadata,
}

/// The metadata of [`Labelled`].
#[derive(Debug, Default, Deserialize)]
pub struct LabelledMetadata {
    /// Its labels.
    #[serde(default)]
    pub labels: Option<Listing<Label>>,
}

impl Labelled {
    /// The label names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> =
            self.metadata.labels.iter().flat_map(|l| l.results.iter().map(|label| label.name.clone())).collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Content as a v1 CQL search answers it when it is found by title (included pages) or by
/// type (folders, whiteboards, databases, embeds): expanded with `version` and `space`,
/// and `body.storage` or `ancestors` when asked.
#[derive(Debug, Deserialize)]
pub struct Found {
    /// Content id.
    #[serde(deserialize_with = "id_string")]
    pub id: String,
    /// `page`, `blogpost`, `folder`, `whiteboard`, `database`, `embed`, ...
    #[serde(rename = "type", default)]
    pub kind: String,
    /// Title.
    #[serde(default)]
    pub title: String,
    /// Version.
    pub version: CommentVersion,
    /// Its space.
    #[serde(default)]
    pub space: Option<SpaceKey>,
    /// Body, only when `body.storage` was asked for.
    #[serde(default)]
    pub body: Option<Body>,
    /// Its ancestors, top down, when asked for.
    #[serde(default)]
    pub ancestors: Vec<Container>,
    /// `webui`, relative to the wiki base.
    #[serde(rename = "_links", default)]
    pub links: AttachmentLinks,
}

/// A v1 space reference.
#[derive(Debug, Deserialize)]
pub struct SpaceKey {
    /// The space key.
    #[serde(default)]
    pub key: String,
}

impl Found {
    /// The storage-format body, or empty.
    pub fn storage(&self) -> &str {
        Body::storage_of(&self.body)
    }
}

impl Comment {
    /// The storage-format body, or empty.
    pub fn storage(&self) -> &str {
        Body::storage_of(&self.body)
    }

    /// An inline comment someone marked resolved: its discussion is over.
    pub fn is_resolved(&self) -> bool {
        self.extensions.resolution.as_ref().is_some_and(|r| r.status == "resolved")
    }
}

impl Content {
    /// The storage-format body, or empty.
    pub fn storage(&self) -> &str {
        Body::storage_of(&self.body)
    }
}

fn id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    match Id::deserialize(deserializer)? {
        Id::Text(text) if !text.is_empty() => Ok(text),
        Id::Text(_) => Err(serde::de::Error::custom("empty id")),
        Id::Number(number) => Ok(number.to_string()),
    }
}

fn optional_id_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Id {
        Text(String),
        Number(u64),
    }
    Ok(match Option::<Id>::deserialize(deserializer)? {
        Some(Id::Text(text)) if !text.is_empty() => Some(text),
        Some(Id::Number(number)) => Some(number.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_v2_page_listing() {
        let json = r#"{"results":[{"id":"39813121","status":"current","title":"Spike","spaceId":"39223300",
            "parentId":"39223464","parentType":"page","position":1980,"extra":{"x":1},
            "version":{"number":3,"message":"","minorEdit":false,"createdAt":"2026-07-03T15:02:11.207Z"},
            "body":{"storage":{"representation":"storage","value":"<p>hi</p>"}},
            "_links":{"webui":"/spaces/X/pages/39813121/Spike","tinyui":"/x/A"}}],
            "_links":{"next":"/wiki/api/v2/spaces/1/pages?cursor=abc","base":"https://acme.atlassian.net/wiki"}}"#;
        let listing: Listing<Content> = serde_json::from_str(json).unwrap();
        let page = &listing.results[0];
        assert_eq!((page.id.as_str(), page.version.number, page.storage()), ("39813121", 3, "<p>hi</p>"));
        assert_eq!(page.parent_id.as_deref(), Some("39223464"));
        assert_eq!(listing.links.next.as_deref(), Some("/wiki/api/v2/spaces/1/pages?cursor=abc"));
    }

    #[test]
    fn tolerates_numeric_ids_and_missing_optionals() {
        let page: Content = serde_json::from_str(r#"{"id":42,"version":{"number":1}}"#).unwrap();
        assert_eq!((page.id.as_str(), page.storage(), page.parent_id.as_deref()), ("42", "", None));
        let listing: Listing<Space> = serde_json::from_str(r#"{"results":[]}"#).unwrap();
        assert!(listing.links.next.is_none());
    }

    #[test]
    fn rejects_what_would_corrupt_the_index() {
        assert!(serde_json::from_str::<Content>(r#"{"id":"1"}"#).is_err(), "no version");
        assert!(serde_json::from_str::<Content>(r#"{"id":"","version":{"number":1}}"#).is_err());
        assert!(serde_json::from_str::<Content>(r#"{"id":"1","version":{"number":"x"}}"#).is_err());
    }
}
