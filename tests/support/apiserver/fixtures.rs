//! Recorded objects under `tests/fixtures/cluster/`, and generated pods for scale tests.

use serde_json::{Value, json};
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster")
}

/// Every `*.json` fixture, in file-name order. A file holds one object or a `List` of them.
pub fn load_fixtures() -> Vec<Value> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut objects = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        let value: Value = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        match value["kind"].as_str() {
            Some("List") => objects.extend(value["items"].as_array().cloned().unwrap_or_default()),
            _ => objects.push(value),
        }
    }
    objects
}

/// The recorded vLLM pod (as the Istio injector left it).
pub fn vllm_pod() -> Value {
    load_fixtures()
        .into_iter()
        .find(|object| object["kind"] == "Pod" && object["metadata"]["labels"]["app"] == "vllm")
        .unwrap()
}

/// `count` copies of the recorded vLLM pod in `namespace`, each with its own name, uid and IP.
pub fn generate_pods(namespace: &str, count: usize) -> Vec<Value> {
    let template = vllm_pod();
    (0..count)
        .map(|index| {
            let mut pod = template.clone();
            let metadata = &mut pod["metadata"];
            metadata["name"] = json!(format!("vllm-7c9d5b8f6d-g{index:05}"));
            metadata["namespace"] = json!(namespace);
            metadata["uid"] = json!(format!("00000000-0000-4000-8000-{index:012}"));
            let ip = format!("10.245.{}.{}", index / 250, index % 250 + 2);
            pod["status"]["podIP"] = json!(ip);
            pod["status"]["podIPs"] = json!([{ "ip": ip }]);
            pod
        })
        .collect()
}
