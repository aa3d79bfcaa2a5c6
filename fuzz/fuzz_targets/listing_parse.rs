//! Confluence responses are untrusted: parsing any bytes as a listing, a space list or a
//! user must return a value or an error, never panic.
#![no_main]

use confluence_connector::client::message_of;
use confluence_connector::model::{Content, CurrentUser, Listing, Space};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Listing<Content>>(data);
    let _ = serde_json::from_slice::<Listing<Space>>(data);
    let _ = serde_json::from_slice::<CurrentUser>(data);
    let _ = message_of(data);
});
