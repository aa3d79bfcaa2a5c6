//! Storage format → text → chunks must never panic, and chunks never exceed the limit.
#![no_main]

use confluence_connector::chunk::{ChunkConfig, chunk};
use confluence_connector::storage::convert;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let converted = convert(&text);
    let config = ChunkConfig::default();
    for piece in chunk(&converted, &config) {
        assert!(piece.text.chars().count() <= config.max_chars);
    }
});
