//! Site URL normalisation must never panic, and what it accepts is https (or loopback
//! http when allowed) with no user-info.
#![no_main]

use confluence_connector::site::{Site, SiteOptions, normalize};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for allow_loopback in [false, true] {
        let options = SiteOptions { allow_loopback, ..SiteOptions::default() };
        if let Ok(site) = normalize(&text, &options) {
            let base = site.api_base();
            assert!(!base.contains('@'), "{base}");
            if !allow_loopback {
                assert!(base.starts_with("https://"), "{base}");
            }
            if let Site::Cloud { origin } = site {
                assert!(!origin.trim_start_matches("https://").trim_start_matches("http://").contains('/'), "{origin}");
            }
        }
    }
});
