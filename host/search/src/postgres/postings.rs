//! The postings of one term in one field, packed into one value: for each chunk that holds
//! the term, in ascending id order, the id's distance from the previous one and the term's
//! frequency (both LEB128 varints), and the field's length as tantivy quantises it (one byte,
//! its fieldnorm id). A chunk costs three to five bytes instead of a row.

use tantivy::fieldnorm::FieldNormReader;

use crate::SearchError;

/// One chunk's posting: its id, the term's frequency in the field, the field's length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Posting {
    /// The chunk's id.
    pub chunk: i64,
    /// How often the term occurs in the field.
    pub tf: u32,
    /// The field's fieldnorm id (its length, quantised).
    pub norm: u8,
}

impl Posting {
    /// A posting of a field `tokens` long.
    pub fn new(chunk: i64, tf: u32, tokens: u32) -> Posting {
        Posting { chunk, tf, norm: FieldNormReader::fieldnorm_to_id(tokens) }
    }

    /// The field's length as BM25 weighs it.
    pub fn len(&self) -> f32 {
        FieldNormReader::id_to_fieldnorm(self.norm) as f32
    }
}

/// Packs postings given in ascending chunk order.
pub fn encode(postings: &[Posting]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(postings.len() * 4);
    let mut previous = 0i64;
    for posting in postings {
        debug_assert!(posting.chunk >= previous, "postings in ascending chunk order");
        varint(&mut bytes, (posting.chunk - previous) as u64);
        varint(&mut bytes, u64::from(posting.tf));
        bytes.push(posting.norm);
        previous = posting.chunk;
    }
    bytes
}

/// Unpacks postings, calling `visit` on each in ascending chunk order.
pub fn decode(bytes: &[u8], mut visit: impl FnMut(Posting)) -> Result<(), SearchError> {
    let mut at = 0;
    let mut chunk = 0i64;
    while at < bytes.len() {
        chunk += read_varint(bytes, &mut at)? as i64;
        let tf = u32::try_from(read_varint(bytes, &mut at)?).map_err(|_| damaged())?;
        let norm = *bytes.get(at).ok_or_else(damaged)?;
        at += 1;
        visit(Posting { chunk, tf, norm });
    }
    Ok(())
}

/// Merges packed postings into one, keeping the chunks `keep` accepts (the later of two
/// postings of one chunk wins, as no chunk is written twice).
pub fn merge(parts: &[Vec<u8>], keep: impl Fn(i64) -> bool) -> Result<Vec<Posting>, SearchError> {
    let mut all = Vec::new();
    for part in parts {
        decode(part, |posting| all.push(posting))?;
    }
    all.sort_by_key(|posting| posting.chunk);
    all.dedup_by_key(|posting| posting.chunk);
    all.retain(|posting| keep(posting.chunk));
    Ok(all)
}

fn damaged() -> SearchError {
    SearchError::Database("damaged postings in search_segments: rebuild the index (ingest again)".into())
}

fn varint(bytes: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        bytes.push((value as u8) | 0x80);
        value >>= 7;
    }
    bytes.push(value as u8);
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, SearchError> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or_else(damaged)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(damaged())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postings_round_trip_and_merge_in_chunk_order() {
        let first = vec![Posting::new(3, 1, 10), Posting::new(300, 7, 1_000), Posting::new(70_000, 2, 3)];
        let second = vec![Posting::new(5, 1, 200), Posting::new(1 << 40, 250, 90_000)];
        let mut decoded = Vec::new();
        decode(&encode(&first), |p| decoded.push(p)).unwrap();
        assert_eq!(decoded, first);
        assert_eq!(decoded[1].len(), FieldNormReader::id_to_fieldnorm(FieldNormReader::fieldnorm_to_id(1_000)) as f32);
        let merged = merge(&[encode(&second), encode(&first)], |chunk| chunk != 300).unwrap();
        let chunks: Vec<i64> = merged.iter().map(|p| p.chunk).collect();
        assert_eq!(chunks, [3, 5, 70_000, 1 << 40], "in order, the dropped chunk gone");
        assert!(decode(&[0x80], |_| {}).is_err(), "a cut varint is an error, not a panic");
        assert!(decode(&[1, 1], |_| {}).is_err(), "a missing length byte too");
    }
}
