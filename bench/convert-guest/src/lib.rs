//! The connector's storage-format converter behind a one-function world, for the
//! wasm-versus-native throughput benchmark.

#[cfg(target_arch = "wasm32")]
mod guest {
    wit_bindgen::generate!({ world: "converter", path: "wit" });

    struct Converter;

    impl Guest for Converter {
        fn convert(bodies: Vec<String>, rounds: u32) -> u64 {
            let mut produced = 0u64;
            for _ in 0..rounds {
                for body in &bodies {
                    produced += confluence_connector::storage::convert(body).plain_text().len() as u64;
                }
            }
            produced
        }
    }

    export!(Converter);
}
