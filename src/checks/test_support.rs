//! Builders for check tests: a realistic vLLM target to start from, and Istio objects from
//! inline YAML (serde only; the manifest loader is not involved).

use super::{Finding, Settings};
use crate::evidence::{
    GpuRequest, IstioPresence, MeshContext, ServiceInfo, ServicePortInfo, SidecarMode,
    TargetEvidence, VllmServer, Workload, WorkloadKind,
};
use k8s_openapi::api::core::v1::PodSpec;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::time::Duration;

pub fn settings() -> Settings {
    Settings {
        expected_generation: Duration::from_secs(300),
    }
}

pub fn object<T: DeserializeOwned>(yaml: &str) -> T {
    serde_yaml::from_str(yaml).unwrap()
}

/// The vLLM container of [`target`], with `/health` readiness and no warm-up.
pub const POD_SPEC: &str = r#"
containers:
- name: vllm
  image: vllm/vllm-openai:v0.8.5
  args: [--model, meta-llama/Llama-3.1-8B-Instruct, --served-model-name, llama-3.1-8b, --max-num-seqs, "128", --max-model-len, "32768"]
  ports:
  - {name: http, containerPort: 8000}
  resources:
    requests: {cpu: "8", memory: 64Gi, nvidia.com/gpu: "1"}
    limits: {nvidia.com/gpu: "1"}
  readinessProbe:
    httpGet: {path: /health, port: 8000}
"#;

/// Deployment llm/vllm: 2 replicas of one GPU each, max-num-seqs 128, max-model-len 32768,
/// Service vllm:8000, sidecar injected by the namespace label, no mesh objects.
pub fn target() -> TargetEvidence {
    let labels = BTreeMap::from([("app".to_string(), "vllm".to_string())]);
    TargetEvidence {
        workload: Workload {
            kind: WorkloadKind::Deployment,
            namespace: "llm".into(),
            name: "vllm".into(),
            replicas: 2,
            pod_labels: labels,
            pod_annotations: BTreeMap::new(),
            pod_spec: pod_spec(POD_SPEC),
            vllm: VllmServer {
                container: "vllm".into(),
                image: Some("vllm/vllm-openai:v0.8.5".into()),
                port: 8000,
                max_num_seqs: Some(128),
                max_model_len: Some(32768),
                served_model_name: Some("llama-3.1-8b".into()),
                model: Some("meta-llama/Llama-3.1-8B-Instruct".into()),
            },
            gpu: Some(GpuRequest {
                resource: "nvidia.com/gpu".into(),
                count: 1,
            }),
            detected_by: "image vllm/vllm-openai".into(),
        },
        mesh: MeshContext {
            istio: IstioPresence::Installed,
            sidecar_mode: SidecarMode::Injected,
            sidecar_reason: "namespace label istio-injection=enabled".into(),
            namespace_labels: BTreeMap::from([(
                "istio-injection".to_string(),
                "enabled".to_string(),
            )]),
            services: vec![ServiceInfo {
                namespace: "llm".into(),
                name: "vllm".into(),
                ports: vec![ServicePortInfo {
                    name: Some("http".into()),
                    port: 8000,
                    target_port: Some("8000".into()),
                }],
            }],
            namespace_services: Some(1),
            virtual_services: Vec::new(),
            destination_rules: Vec::new(),
            envoy_filters: Vec::new(),
            peer_authentications: Vec::new(),
            authorization_policies: Vec::new(),
            request_authentications: Vec::new(),
            autoscaler: None,
            sidecars: Vec::new(),
            gateways: Vec::new(),
            http_routes: Vec::new(),
            kube_gateways: Vec::new(),
            inference_pools: Vec::new(),
            endpoint_pickers: Vec::new(),
            ambient: None,
        },
        envoy: Vec::new(),
        gaps: Vec::new(),
        live_pods: Vec::new(),
        nodes: Vec::new(),
        probes: Vec::new(),
    }
}

pub fn pod_spec(yaml: &str) -> PodSpec {
    object(yaml)
}

/// The paths of a finding's evidence lines, in order.
pub fn evidence_paths(finding: &Finding) -> Vec<&str> {
    finding
        .evidence
        .iter()
        .map(|line| line.path.as_str())
        .collect()
}

/// Every fix's YAML parses (as one or more documents) and every finding has evidence.
pub fn assert_well_formed(findings: &[Finding]) {
    for finding in findings {
        assert!(!finding.evidence.is_empty(), "no evidence: {finding:?}");
        assert_eq!(finding.number, finding.id.number());
        if let Some(fix) = &finding.fix {
            assert!(!fix.summary.is_empty());
            for document in serde_yaml::Deserializer::from_str(&fix.yaml) {
                serde_yaml::Value::deserialize(document).unwrap_or_else(|error| {
                    panic!("fix YAML does not parse: {error}\n{}", fix.yaml)
                });
            }
        }
    }
}

/// One Envoy of a scenario captured from a real Envoy pair by `tests/envoy_scenarios.rs`
/// (`tests/fixtures/envoy/scenarios/<scenario>/<side>.{config_dump.json,stats.txt}`), read as
/// saved evidence for the lab's service `vllm.inference.svc.cluster.local:8000`.
pub fn scenario_envoy(scenario: &str, side: &str) -> crate::evidence::envoy::EnvoyEvidence {
    use crate::lab::envoy::bootstrap::{LAB_HOST, LAB_PORT};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy/scenarios")
        .join(scenario);
    let read = |file: String| {
        std::fs::read_to_string(dir.join(&file))
            .unwrap_or_else(|error| panic!("{scenario}/{file}: {error}"))
    };
    let dump = read(format!("{side}.config_dump.json"));
    let stats = read(format!("{side}.stats.txt"));
    crate::evidence::envoy::EnvoyEvidence::from_saved(
        &format!("{scenario}/{side}"),
        LAB_HOST,
        LAB_PORT,
        &dump,
        Some(&stats),
    )
    .unwrap()
}

/// Both Envoys of a scenario: client (gateway-like) first, then the vLLM pod's sidecar.
pub fn scenario_pair(scenario: &str) -> Vec<crate::evidence::envoy::EnvoyEvidence> {
    vec![
        scenario_envoy(scenario, "client"),
        scenario_envoy(scenario, "server"),
    ]
}

/// The lab's service known only through Envoy admin: no pod spec, no mesh objects.
pub fn endpoint_target(envoy: Vec<crate::evidence::envoy::EnvoyEvidence>) -> TargetEvidence {
    let mut target = lab_target(envoy);
    target.workload.kind = WorkloadKind::Endpoint;
    target.workload.replicas = 1;
    target.workload.pod_labels = BTreeMap::new();
    target.workload.pod_spec = PodSpec::default();
    target.workload.gpu = None;
    target.workload.vllm = VllmServer {
        container: String::new(),
        image: None,
        port: 8000,
        max_num_seqs: None,
        max_model_len: None,
        served_model_name: None,
        model: None,
    };
    target.workload.detected_by = "Envoy admin".into();
    target.mesh.services = Vec::new();
    target
}

/// [`target`] moved to the lab's namespace `inference` (Service vllm:8000), with `envoy`.
pub fn lab_target(envoy: Vec<crate::evidence::envoy::EnvoyEvidence>) -> TargetEvidence {
    let mut target = target();
    target.workload.namespace = "inference".into();
    for service in &mut target.mesh.services {
        service.namespace = "inference".into();
    }
    target.envoy = envoy;
    target
}
