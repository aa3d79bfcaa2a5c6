//! The text of a page that is embedded: its title and its first passages.

use crate::Chunk;

/// The text embedded for a document: its title, then its passages in order, cut at
/// `max_chars` characters (the encoder reads only its first few hundred tokens anyway,
/// and one vector per page is ten times fewer than one per passage).
pub fn page_text<'a>(title: &str, passages: impl IntoIterator<Item = &'a str>, max_chars: usize) -> String {
    let mut text = String::with_capacity(max_chars.min(4096));
    let mut room = max_chars;
    let mut push = |part: &str, text: &mut String| {
        if room == 0 || part.trim().is_empty() {
            return;
        }
        if !text.is_empty() {
            text.push('\n');
        }
        let taken: String = part.trim().chars().take(room).collect();
        room -= taken.chars().count();
        text.push_str(&taken);
    };
    push(title, &mut text);
    for passage in passages {
        push(passage, &mut text);
    }
    text
}

/// [`page_text`] of a document's chunks (in ordinal order).
pub fn page_text_of_chunks(chunks: &[Chunk], max_chars: usize) -> String {
    let mut ordered: Vec<&Chunk> = chunks.iter().collect();
    ordered.sort_by_key(|c| c.ordinal);
    let title = ordered.first().map(|c| c.title.as_str()).unwrap_or_default();
    page_text(title, ordered.iter().map(|c| c.text.as_str()), max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn title_then_passages_in_order_cut_at_the_limit() {
        let chunks = [
            Chunk { ordinal: 1, title: "Keys".into(), heading: String::new(), text: "second".into() },
            Chunk { ordinal: 0, title: "Keys".into(), heading: String::new(), text: "first".into() },
        ];
        assert_eq!(page_text_of_chunks(&chunks, 100), "Keys\nfirst\nsecond");
        assert_eq!(page_text_of_chunks(&chunks, 7), "Keys\nfir");
        assert_eq!(page_text_of_chunks(&[], 100), "");
    }
}
