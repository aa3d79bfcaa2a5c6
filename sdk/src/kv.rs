//! What every connector does with its key-value records: list a whole bucket, number new
//! records.

use crate::caps::{HostError, KeyValue};
use crate::types::ConnectorError;

/// Every key of a bucket, following the store's pages.
pub fn all_keys(kv: &dyn KeyValue, bucket: &str) -> Result<Vec<String>, HostError> {
    let mut keys = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = kv.list_keys(bucket, cursor)?;
        keys.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(keys),
        }
    }
}

/// The next id of a kind (`conn-1`, `conn-2`, ...), from a counter kept in `bucket` under
/// `counter/<kind>` as decimal text.
pub fn next_id(kv: &dyn KeyValue, bucket: &str, kind: &str) -> Result<String, ConnectorError> {
    let key = format!("counter/{kind}");
    let next = match kv.get(bucket, &key)? {
        Some(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let last: u64 = text
                .trim()
                .parse()
                .map_err(|_| ConnectorError::Host(format!("stored counter {key} is unreadable: '{text}'")))?;
            last + 1
        }
        None => 1,
    };
    kv.set(bucket, &key, next.to_string().as_bytes())?;
    Ok(format!("{kind}-{next}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemoryKeyValue;

    #[test]
    fn ids_count_up_per_kind_and_every_page_of_keys_is_listed() {
        let kv = MemoryKeyValue::default();
        assert_eq!(next_id(&kv, "b", "conn").unwrap(), "conn-1");
        assert_eq!(next_id(&kv, "b", "conn").unwrap(), "conn-2");
        assert_eq!(next_id(&kv, "b", "mem").unwrap(), "mem-1");
        let items: Vec<(String, Vec<u8>)> = (0..123).map(|i| (format!("k{i:03}"), vec![1])).collect();
        kv.set_many("many", items).unwrap();
        assert_eq!(all_keys(&kv, "many").unwrap().len(), 123);
    }
}
