//! The bundled `examples/` make their own failure mode the top finding, and `healthy` has nothing
//! above info. The manifests are assembled here by a deliberately small test-only reader: every
//! Istio object in the example's namespace applies (each example is built so), Services select
//! by labels, and injection follows the namespace label. Real resolution is tested elsewhere.

use super::{CheckId, Finding, Settings, Severity, run_all};
use crate::evidence::{
    GpuRequest, IstioPresence, MeshContext, ServiceInfo, ServicePortInfo, SidecarMode,
    TargetEvidence, VllmServer, Workload, WorkloadKind,
};
use serde::Deserialize as _;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

fn documents(folder: &str) -> Vec<Value> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in {}", dir.display());
    let mut found = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for document in serde_yaml::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            if !value.is_null() {
                found.push(value);
            }
        }
    }
    found
}

fn strings(value: &Value) -> BTreeMap<String, String> {
    serde_json::from_value(value.clone()).unwrap_or_default()
}

fn flag<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter().enumerate().find_map(|(index, arg)| {
        if arg == name {
            args.get(index + 1).map(String::as_str)
        } else {
            arg.strip_prefix(name)?.strip_prefix('=')
        }
    })
}

fn assemble(folder: &str) -> TargetEvidence {
    let docs = documents(folder);
    let of_kind = |kind: &'static str| docs.iter().filter(move |doc| doc["kind"] == kind);
    let namespace = of_kind("Namespace").next().expect("a Namespace");
    let namespace_labels = strings(&namespace["metadata"]["labels"]);
    let deployment = of_kind("Deployment").next().expect("a Deployment");
    let template = &deployment["spec"]["template"];
    let pod_labels = strings(&template["metadata"]["labels"]);
    let pod_annotations = strings(&template["metadata"]["annotations"]);
    let pod_spec: k8s_openapi::api::core::v1::PodSpec =
        serde_json::from_value(template["spec"].clone()).unwrap();
    let container = pod_spec
        .containers
        .iter()
        .find(|container| {
            container
                .image
                .as_deref()
                .is_some_and(|image| image.starts_with("vllm/vllm-openai:"))
        })
        .expect("a vLLM container");
    let args: Vec<String> = container
        .command
        .iter()
        .flatten()
        .chain(container.args.iter().flatten())
        .cloned()
        .collect();
    let gpu = container
        .resources
        .as_ref()
        .and_then(|resources| resources.limits.as_ref())
        .and_then(|limits| limits.get("nvidia.com/gpu"))
        .map(|count| GpuRequest {
            resource: "nvidia.com/gpu".into(),
            count: count.0.parse().unwrap(),
        });
    let workload_namespace = deployment["metadata"]["namespace"].as_str().unwrap();
    let services = of_kind("Service")
        .filter(|service| {
            strings(&service["spec"]["selector"])
                .iter()
                .all(|(key, value)| pod_labels.get(key) == Some(value))
        })
        .map(|service| ServiceInfo {
            namespace: service["metadata"]["namespace"].as_str().unwrap().into(),
            name: service["metadata"]["name"].as_str().unwrap().into(),
            ports: service["spec"]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|port| ServicePortInfo {
                    name: port["name"].as_str().map(str::to_string),
                    port: port["port"].as_u64().unwrap() as u16,
                    target_port: match &port["targetPort"] {
                        Value::Null => None,
                        Value::String(text) => Some(text.clone()),
                        other => Some(other.to_string()),
                    },
                })
                .collect(),
        })
        .collect();
    fn typed<T: serde::de::DeserializeOwned>(docs: &[Value], kind: &str) -> Vec<T> {
        docs.iter()
            .filter(|doc| doc["kind"] == kind)
            .map(|value| serde_json::from_value(value.clone()).unwrap())
            .collect()
    }
    let injected = namespace_labels.get("istio-injection").map(String::as_str) == Some("enabled")
        && pod_labels
            .get("sidecar.istio.io/inject")
            .map(String::as_str)
            != Some("false");
    TargetEvidence {
        workload: Workload {
            kind: WorkloadKind::Deployment,
            namespace: workload_namespace.into(),
            name: deployment["metadata"]["name"].as_str().unwrap().into(),
            replicas: deployment["spec"]["replicas"].as_u64().unwrap_or(1) as u32,
            pod_labels: pod_labels.clone(),
            pod_annotations,
            vllm: VllmServer {
                container: container.name.clone(),
                image: container.image.clone(),
                port: flag(&args, "--port").map_or(8000, |port| port.parse().unwrap()),
                max_num_seqs: flag(&args, "--max-num-seqs").map(|value| value.parse().unwrap()),
                max_model_len: flag(&args, "--max-model-len").map(|value| value.parse().unwrap()),
                served_model_name: flag(&args, "--served-model-name").map(str::to_string),
            },
            pod_spec: pod_spec.clone(),
            gpu,
            detected_by: "image vllm/vllm-openai".into(),
        },
        mesh: MeshContext {
            istio: IstioPresence::Unknown,
            sidecar_mode: if injected {
                SidecarMode::Injected
            } else {
                SidecarMode::None
            },
            sidecar_reason: "namespace label istio-injection=enabled".into(),
            namespace_labels,
            services,
            virtual_services: typed(&docs, "VirtualService"),
            destination_rules: typed(&docs, "DestinationRule"),
            envoy_filters: typed(&docs, "EnvoyFilter"),
            peer_authentications: typed(&docs, "PeerAuthentication"),
            sidecars: typed(&docs, "Sidecar"),
            gateways: typed(&docs, "Gateway"),
        },
        gaps: Vec::new(),
    }
}

fn findings(folder: &str) -> Vec<Finding> {
    let settings = Settings {
        expected_generation: Duration::from_secs(300),
    };
    let findings = run_all(&assemble(folder), &settings);
    super::test_support::assert_well_formed(&findings);
    findings
}

/// The failure mode is the only one at the highest severity, and that severity is above info.
fn assert_top(folder: &str, expected: CheckId, severity: Severity) {
    let findings = findings(folder);
    let top = findings.iter().map(|finding| finding.severity).max();
    assert_eq!(top, Some(severity), "{folder}: {findings:#?}");
    let at_top: Vec<CheckId> = findings
        .iter()
        .filter(|finding| finding.severity == severity)
        .map(|finding| finding.id)
        .collect();
    assert!(
        at_top.iter().all(|id| *id == expected),
        "{folder}: {at_top:?} at {severity}: {findings:#?}"
    );
}

#[test]
fn sidecar_overhead_example() {
    assert_top(
        "sidecar-overhead",
        CheckId::SidecarOverhead,
        Severity::Warning,
    );
}

#[test]
fn stream_timeout_example() {
    assert_top("stream-timeout", CheckId::StreamTimeout, Severity::Critical);
}

#[test]
fn connection_pool_example() {
    assert_top(
        "connection-pool",
        CheckId::ConnectionPool,
        Severity::Critical,
    );
}

#[test]
fn buffer_limit_example() {
    assert_top("buffer-limit", CheckId::BufferLimit, Severity::Warning);
}

#[test]
fn cold_start_example() {
    assert_top("cold-start", CheckId::ColdStart, Severity::Warning);
}

#[test]
fn healthy_example_has_nothing_above_info() {
    let findings = findings("healthy");
    assert!(
        findings
            .iter()
            .all(|finding| finding.severity == Severity::Info),
        "{findings:#?}"
    );
}

/// Prints every example's findings: `cargo test --lib examples_test::show -- --ignored --nocapture`.
#[test]
#[ignore]
fn show() {
    for folder in [
        "sidecar-overhead",
        "stream-timeout",
        "connection-pool",
        "buffer-limit",
        "cold-start",
        "healthy",
    ] {
        println!("===== {folder}");
        for finding in findings(folder) {
            println!("{}", serde_yaml::to_string(&finding).unwrap());
        }
    }
}
