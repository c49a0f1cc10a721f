#![no_main]
//! Envoy's `/stats` text and JSON: any bytes are an error or stats, never a panic.
use kubectl_infermesh::sources::envoy::stats::Stats;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Stats::parse_text(text);
        let _ = Stats::parse_json(text);
    }
});
