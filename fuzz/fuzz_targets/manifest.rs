#![no_main]
//! A manifest file (YAML, multi-document, `kind: List`, JSON): an error or an inventory.
use kubectl_infermesh::sources::manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join("input.yaml");
    if std::fs::write(&path, data).is_ok() {
        let _ = manifest::load(&[path], "default");
    }
});
