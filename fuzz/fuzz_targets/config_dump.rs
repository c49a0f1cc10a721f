#![no_main]
//! Envoy's `/config_dump`: any text is an error or a config, never a panic.
use kubectl_infermesh::sources::envoy::config_dump;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = config_dump::parse(text);
    }
});
