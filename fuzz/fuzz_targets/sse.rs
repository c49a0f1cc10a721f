#![no_main]
//! An SSE body as the probe reads it: split into events, each `data:` payload inspected.
use kubectl_infermesh::sources::probe::sse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sse::read_body(data);
});
