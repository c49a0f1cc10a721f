//! 1 `sidecar-overhead`: a GPU pod that carries an Istio proxy with untuned resources.
//!
//! The proxy's CPU/memory requests come from, in order: the `istio-proxy` container of the live
//! pods (as injected; the newest pod when they differ); the `istio-proxy` container when the
//! spec already has it (a pre-injected pod, classic or native sidecar); the annotations
//! `sidecar.istio.io/proxyCPU`/`proxyMemory` (setting any of the four proxy resource
//! annotations drops all chart defaults, and a request left out then defaults to its limit as
//! Kubernetes does); else the injector default 100m/128Mi, named as an assumption.
//!
//! When the live pods' nodes are known, each node is cited with the CPU that sidecars of meshed
//! GPU pods request there against its allocatable CPU.
//!
//! Severity: **warning** when the proxy requests more than 50m CPU or 64Mi on a GPU pod (static
//! configuration can only show a reservation, not the latency it costs: critical is left to
//! runtime proof); **info** when tuned. Nothing for pods without GPUs or without a sidecar
//! (not injected). Ambient GPU pods get an info instead (`checks::ambient::overhead`): what
//! ztunnel requests on their nodes and any waypoint pod on a GPU node. Moving to ambient mode is
//! one of the fixes of an untuned sidecar.
//! Nothing for an Endpoint target: the proxy's resources are read from a pod spec it lacks.

use super::fixes::{patch_instruction, workload_patch};
use super::target::{app_containers, pod_metadata_path, pod_spec_path, proxy_container};
use super::{Basis, CheckId, EvidenceLine, Finding, Settings, Severity};
use crate::evidence::{
    LivePod, LiveProxy, NodeSidecarLoad, ObjectRef, SidecarMode, TargetEvidence, Workload,
};
use crate::units::quantity::{cpu_millis, display_cpu, display_memory, memory_bytes};
use k8s_openapi::api::core::v1::Container;
use serde_json::{Map, Value, json};

/// At or below these the proxy counts as tuned.
const TUNED_CPU_MILLIS: u64 = 50;
const TUNED_MEMORY_BYTES: u64 = 64 << 20;
/// Istio's injector defaults (`global.proxy.resources` in the chart's values.yaml).
const DEFAULT_CPU_MILLIS: u64 = 100;
const DEFAULT_MEMORY_BYTES: u64 = 128 << 20;

const CPU: &str = "sidecar.istio.io/proxyCPU";
const MEMORY: &str = "sidecar.istio.io/proxyMemory";
const CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
const MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";

/// What the proxy reserves, and why we think so.
struct ProxyRequests {
    cpu_millis: u64,
    memory_bytes: u64,
    evidence: Vec<EvidenceLine>,
    assumptions: Vec<String>,
}

pub fn check(target: &TargetEvidence, _settings: &Settings) -> Vec<Finding> {
    let workload = &target.workload;
    // The proxy's reservation is read from the pod spec: unknown for an Endpoint.
    if !workload.spec_known() {
        return Vec::new();
    }
    let Some(gpu) = workload.gpu.as_ref().filter(|gpu| gpu.count > 0) else {
        return Vec::new();
    };
    let mode = target.mesh.sidecar_mode;
    if mode == SidecarMode::Ambient {
        return super::ambient::overhead(target).into_iter().collect();
    }
    if !mode.has_sidecar() {
        return Vec::new();
    }
    let proxy = proxy_requests(target);
    let (app_cpu, app_memory) = app_requests(workload);
    let tuned = proxy.cpu_millis <= TUNED_CPU_MILLIS && proxy.memory_bytes <= TUNED_MEMORY_BYTES;

    let share = |proxy: u64, app: u64| {
        if app == 0 {
            "on top of app containers that request none".to_string()
        } else {
            format!(
                "{:.1}% on top of the app containers'",
                proxy as f64 * 100.0 / app as f64
            )
        }
    };
    let object = workload.object_ref();
    let mut evidence = vec![
        EvidenceLine::new(
            object.clone(),
            format!(
                "{}/containers[*]/resources/requests/{}",
                pod_spec_path(workload),
                gpu.resource
            ),
            gpu.count.to_string(),
        )
        .with_note("GPU pod"),
        EvidenceLine::new(object.clone(), "sidecar mode", mode_name(mode))
            .with_note(target.mesh.sidecar_reason.clone()),
    ];
    evidence.extend(proxy.evidence);
    evidence.push(
        EvidenceLine::new(
            object.clone(),
            format!(
                "{}/containers[*]/resources/requests/cpu",
                pod_spec_path(workload)
            ),
            display_cpu(app_cpu),
        )
        .with_note(format!(
            "app containers' CPU request; the proxy's {} CPU is {} request",
            display_cpu(proxy.cpu_millis),
            share(proxy.cpu_millis, app_cpu)
        )),
    );
    evidence.push(
        EvidenceLine::new(
            object.clone(),
            format!(
                "{}/containers[*]/resources/requests/memory",
                pod_spec_path(workload)
            ),
            display_memory(app_memory),
        )
        .with_note(format!(
            "app containers' memory request; the proxy's {} is {} request",
            display_memory(proxy.memory_bytes),
            share(proxy.memory_bytes, app_memory)
        )),
    );
    evidence.extend(target.nodes.iter().map(node_line));

    let requests = format!(
        "{} CPU / {}",
        display_cpu(proxy.cpu_millis),
        display_memory(proxy.memory_bytes)
    );
    let mut finding = if tuned {
        Finding::new(
            CheckId::SidecarOverhead,
            Severity::Info,
            Basis::Static,
            format!(
                "GPU pods of {} carry a tuned istio-proxy ({requests})",
                workload.target_name()
            ),
        )
    } else {
        let finding = Finding::new(
            CheckId::SidecarOverhead,
            Severity::Warning,
            Basis::Static,
            format!(
                "GPU pods of {} carry an untuned istio-proxy requesting {requests} ({} CPU request)",
                workload.target_name(),
                share(proxy.cpu_millis, app_cpu)
            ),
        );
        let enforced = super::mesh_need::enforced_by_sidecar(target);
        match tuning_patch(workload) {
            Some(yaml) if !enforced.is_empty() => finding.fix(
                format!(
                    "Right-size the proxy and keep it: {} ({}), which only the pods' own sidecar enforces. Set \
                     {CPU}={TUNED_CPU_MILLIS}m and {MEMORY}=64Mi and keep explicit limits, since setting any proxy \
                     resource annotation drops the chart defaults; {}.",
                    enforced[0].0,
                    enforced[0].1.object,
                    patch_instruction(workload)
                ),
                yaml,
            ),
            Some(yaml) => finding.fix(
                format!(
                    "Either right-size the proxy (keeps mTLS and mesh routing): set {CPU}={TUNED_CPU_MILLIS}m and \
                     {MEMORY}=64Mi and keep explicit limits, since setting any proxy resource annotation drops the \
                     chart defaults; or take the GPU pods out of the mesh with the pod label \
                     sidecar.istio.io/inject: \"false\" and reach them through a gateway (they lose mTLS); {}. \
                     The patch below does the first; {}.",
                    super::ambient::move_to_ambient(target),
                    patch_instruction(workload)
                ),
                yaml,
            ),
            None => finding,
        }
    };
    for assumption in proxy.assumptions {
        finding = finding.assume(assumption);
    }
    for line in evidence {
        finding = finding.evidence(line);
    }
    vec![finding]
}

fn mode_name(mode: SidecarMode) -> &'static str {
    match mode {
        SidecarMode::None => "none",
        SidecarMode::Injected => "injected",
        SidecarMode::Classic => "classic sidecar",
        SidecarMode::Native => "native sidecar",
        SidecarMode::Ambient => "ambient",
    }
}

/// CPU millicores and memory bytes a container requests (a request left out defaults to the
/// limit, as Kubernetes does).
fn container_requests(container: &Container) -> (Option<u64>, Option<u64>) {
    let resources = container.resources.as_ref();
    let read = |name: &str| {
        let requested = resources
            .and_then(|resources| resources.requests.as_ref())
            .and_then(|requests| requests.get(name));
        let limited = resources
            .and_then(|resources| resources.limits.as_ref())
            .and_then(|limits| limits.get(name));
        requested.or(limited).map(|quantity| quantity.0.as_str())
    };
    (
        read("cpu").and_then(|text| cpu_millis(text).ok()),
        read("memory").and_then(|text| memory_bytes(text).ok()),
    )
}

fn app_requests(workload: &Workload) -> (u64, u64) {
    app_containers(&workload.pod_spec)
        .map(|(_, container)| container_requests(container))
        .fold(
            (0, 0),
            |(cpu, memory), (container_cpu, container_memory)| {
                (
                    cpu + container_cpu.unwrap_or(0),
                    memory + container_memory.unwrap_or(0),
                )
            },
        )
}

fn proxy_requests(target: &TargetEvidence) -> ProxyRequests {
    if let Some(live) = live_proxy_requests(target) {
        return live;
    }
    let workload = &target.workload;
    let object = workload.object_ref();
    if let Some((path, container)) = proxy_container(&workload.pod_spec) {
        let (cpu, memory) = container_requests(container);
        let base = format!("{}/{path}/resources/requests", pod_spec_path(workload));
        return ProxyRequests {
            cpu_millis: cpu.unwrap_or(0),
            memory_bytes: memory.unwrap_or(0),
            evidence: vec![
                EvidenceLine::new(
                    object.clone(),
                    format!("{base}/cpu"),
                    cpu.map(display_cpu).unwrap_or_else(|| "<unset>".into()),
                )
                .with_note("istio-proxy CPU request"),
                EvidenceLine::new(
                    object,
                    format!("{base}/memory"),
                    memory
                        .map(display_memory)
                        .unwrap_or_else(|| "<unset>".into()),
                )
                .with_note("istio-proxy memory request"),
            ],
            assumptions: Vec::new(),
        };
    }

    let annotations = &workload.pod_annotations;
    let annotation_path = |key: &str| format!("{}/annotations/{key}", pod_metadata_path(workload));
    let present: Vec<&str> = [CPU, MEMORY, CPU_LIMIT, MEMORY_LIMIT]
        .into_iter()
        .filter(|key| annotations.contains_key(*key))
        .collect();
    if present.is_empty() {
        return ProxyRequests {
            cpu_millis: DEFAULT_CPU_MILLIS,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            evidence: vec![
                EvidenceLine::new(
                    object,
                    annotation_path("sidecar.istio.io/proxy*"),
                    "<unset>",
                )
                .with_note("no proxy resource annotation: the injector's defaults apply"),
            ],
            assumptions: vec![format!(
                "istio-proxy requests assumed {}/{} (injector default global.proxy.resources; an install may override it)",
                display_cpu(DEFAULT_CPU_MILLIS),
                display_memory(DEFAULT_MEMORY_BYTES)
            )],
        };
    }

    let mut assumptions = Vec::new();
    let mut evidence = Vec::new();
    let mut read = |request: &str, limit: &str, parse: fn(&str) -> Option<u64>| {
        for key in [request, limit] {
            if let Some(value) = annotations.get(key) {
                let line = EvidenceLine::new(object.clone(), annotation_path(key), value.clone());
                evidence.push(match parse(value) {
                    Some(_) => line,
                    None => line.with_note("not a Kubernetes quantity; ignored"),
                });
            }
        }
        let requested = annotations.get(request).and_then(|value| parse(value));
        match requested {
            Some(value) => value,
            None => match annotations.get(limit).and_then(|value| parse(value)) {
                Some(value) => {
                    assumptions.push(format!(
                        "{request} unset while {limit} is set: the request defaults to the limit"
                    ));
                    value
                }
                None => 0,
            },
        }
    };
    let cpu = read(CPU, CPU_LIMIT, |text| cpu_millis(text).ok());
    let memory = read(MEMORY, MEMORY_LIMIT, |text| memory_bytes(text).ok());
    ProxyRequests {
        cpu_millis: cpu,
        memory_bytes: memory,
        evidence,
        assumptions,
    }
}

/// The proxy as injected in the live pods: the newest pod's (the current template's, during a
/// rollout), with how many other proxied pods request the same.
fn live_proxy_requests(target: &TargetEvidence) -> Option<ProxyRequests> {
    let proxied: Vec<(&LivePod, &LiveProxy)> = target
        .live_pods
        .iter()
        .filter_map(|pod| pod.proxy.as_ref().map(|proxy| (pod, proxy)))
        .collect();
    // Newest first; by name when creation times tie or are unknown.
    let (pod, proxy) = proxied
        .iter()
        .max_by(|(a, _), (b, _)| a.created.cmp(&b.created).then(b.name.cmp(&a.name)))
        .copied()?;
    let alike = proxied
        .iter()
        .filter(|(_, other)| {
            other.cpu_request == proxy.cpu_request
                && other.memory_request == proxy.memory_request
                && other.cpu_limit == proxy.cpu_limit
                && other.memory_limit == proxy.memory_limit
        })
        .count();
    let spread = if alike == proxied.len() {
        match alike {
            1 => "the only live pod with a proxy".to_string(),
            count => format!("the same in all {count} live pods with a proxy"),
        }
    } else {
        format!(
            "newest pod; {alike} of {} live pods with a proxy request the same, the others differ (a rollout in progress?)",
            proxied.len()
        )
    };
    let object = ObjectRef::new("Pod", Some(&target.workload.namespace), &pod.name);
    let base = format!("{}/resources/requests", proxy.path);
    // The API server defaults a missing request to the limit at admission; read it the same way.
    let cpu = proxy
        .cpu_request
        .as_deref()
        .or(proxy.cpu_limit.as_deref())
        .and_then(|text| cpu_millis(text).ok());
    let memory = proxy
        .memory_request
        .as_deref()
        .or(proxy.memory_limit.as_deref())
        .and_then(|text| memory_bytes(text).ok());
    let line = |resource: &str, written: &Option<String>, what: &str| {
        EvidenceLine::new(
            object.clone(),
            format!("{base}/{resource}"),
            written.clone().unwrap_or_else(|| "<unset>".into()),
        )
        .with_note(format!(
            "istio-proxy {what} request as injected in the live pod; {spread}"
        ))
    };
    Some(ProxyRequests {
        cpu_millis: cpu.unwrap_or(0),
        memory_bytes: memory.unwrap_or(0),
        evidence: vec![
            line("cpu", &proxy.cpu_request, "CPU"),
            line("memory", &proxy.memory_request, "memory"),
        ],
        assumptions: Vec::new(),
    })
}

/// `Node gpu-node-1 status/allocatable/cpu = 95690m (sidecars of 3 meshed GPU pods … request …)`.
fn node_line(node: &NodeSidecarLoad) -> EvidenceLine {
    let object = ObjectRef::new("Node", None, &node.node);
    let pods = match node.pod_count() {
        1 => "1 meshed GPU pod".to_string(),
        count => format!("{count} meshed GPU pods"),
    };
    let requested = format!(
        "sidecars of {pods} ({} GPU{}) on this node request {} CPU",
        node.gpus_requested,
        if node.gpus_requested == 1 { "" } else { "s" },
        display_cpu(node.sidecar_cpu_request_millis)
    );
    match (node.allocatable_cpu_millis, node.sidecar_cpu_share()) {
        (Some(allocatable), Some(share)) => {
            EvidenceLine::new(object, "status/allocatable/cpu", display_cpu(allocatable)).with_note(
                format!("{requested}, {:.1}% of its allocatable CPU", share * 100.0),
            )
        }
        _ => EvidenceLine::new(object, "status/allocatable/cpu", "<unknown>").with_note(format!(
            "{requested}; the node's allocatable CPU is unknown (Node not listed)"
        )),
    }
}

/// Pod-template annotations that right-size the proxy, keeping limits the user already set.
fn tuning_patch(workload: &Workload) -> Option<String> {
    let annotations = &workload.pod_annotations;
    let mut patch = Map::new();
    patch.insert(CPU.into(), Value::from(format!("{TUNED_CPU_MILLIS}m")));
    patch.insert(MEMORY.into(), Value::from("64Mi"));
    patch.insert(
        CPU_LIMIT.into(),
        Value::from(annotations.get(CPU_LIMIT).map_or("2", String::as_str)),
    );
    patch.insert(
        MEMORY_LIMIT.into(),
        Value::from(annotations.get(MEMORY_LIMIT).map_or("1Gi", String::as_str)),
    );
    let yaml = workload_patch(workload, json!({ "metadata": { "annotations": patch } }))?;
    Some(format!(
        "# Option 1 (below): right-size the proxy; the pods keep mTLS and mesh routing.\n\
         # Option 2: leave the mesh instead, with the pod label sidecar.istio.io/inject: \"false\".\n{yaml}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{assert_well_formed, pod_spec, settings, target};

    #[test]
    fn default_injection_on_a_gpu_pod_is_a_warning_with_the_default_named() {
        let findings = check(&target(), &settings());
        assert_well_formed(&findings);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        assert!(
            finding.title.contains("100m CPU / 128Mi"),
            "{}",
            finding.title
        );
        assert!(
            finding
                .title
                .contains("(1.2% on top of the app containers' CPU request)"),
            "{}",
            finding.title
        );
        assert!(finding.assumptions[0].contains("injector default"));
        let fix = finding.fix.as_ref().unwrap();
        assert!(fix.summary.contains("sidecar.istio.io/inject: \"false\""));
        assert!(fix.summary.contains("kubectl patch deployment/vllm -n llm"));
        let patch: serde_json::Value = serde_yaml::from_str(&fix.yaml).unwrap();
        let annotations = &patch["spec"]["template"]["metadata"]["annotations"];
        assert_eq!(annotations[CPU], "50m");
        assert_eq!(annotations[MEMORY_LIMIT], "1Gi");
    }

    #[test]
    fn tuned_annotations_are_only_info() {
        let mut target = target();
        target
            .workload
            .pod_annotations
            .insert(CPU.into(), "50m".into());
        target
            .workload
            .pod_annotations
            .insert(MEMORY.into(), "64Mi".into());
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        assert_eq!(findings[0].severity, Severity::Info);
        assert!(findings[0].assumptions.is_empty());
    }

    #[test]
    fn a_limit_annotation_alone_drops_defaults_and_the_request_follows_the_limit() {
        let mut target = target();
        target
            .workload
            .pod_annotations
            .insert(CPU_LIMIT.into(), "500m".into());
        let findings = check(&target, &settings());
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Warning);
        // CPU request = the 500m limit; memory has no request at all (defaults dropped).
        assert!(finding.title.contains("500m CPU / 0"), "{}", finding.title);
        assert!(
            finding
                .assumptions
                .iter()
                .any(|text| text.contains("defaults to the limit"))
        );
    }

    #[test]
    fn a_present_proxy_container_is_read_as_written() {
        for (mode, spec) in [
            (
                SidecarMode::Classic,
                "containers: [{name: vllm, resources: {requests: {cpu: '4'}}}, {name: istio-proxy, resources: {requests: {cpu: 10m, memory: 40Mi}}}]",
            ),
            (
                SidecarMode::Native,
                "initContainers: [{name: istio-proxy, restartPolicy: Always, resources: {requests: {cpu: 10m, memory: 40Mi}}}]\ncontainers: [{name: vllm, resources: {requests: {cpu: '4'}}}]",
            ),
        ] {
            let mut target = target();
            target.mesh.sidecar_mode = mode;
            target.workload.pod_spec = pod_spec(spec);
            // The container wins over annotations, which only matter at injection.
            target
                .workload
                .pod_annotations
                .insert(CPU.into(), "1".into());
            let findings = check(&target, &settings());
            assert_well_formed(&findings);
            assert_eq!(findings[0].severity, Severity::Info, "{mode:?}");
            assert!(
                findings[0].title.contains("10m CPU / 40Mi"),
                "{}",
                findings[0].title
            );
        }
    }

    fn live_pod(name: &str, created: &str, cpu: &str, memory: &str) -> LivePod {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "node": "gpu-node-1",
            "phase": "Running",
            "ready": true,
            "restarts": 0,
            "created": created,
            "sidecarStatus": true,
            "proxy": {
                "mode": "classic",
                "path": "spec/containers[1]",
                "cpuRequest": cpu,
                "memoryRequest": memory,
                "cpuLimit": "2",
                "memoryLimit": "1Gi",
            },
        }))
        .unwrap()
    }

    #[test]
    fn live_proxy_resources_beat_annotations_and_defaults() {
        let mut target = target();
        target.mesh.sidecar_mode = SidecarMode::Classic;
        // Annotations say 1 CPU; the pods were injected with 10m / 40Mi (e.g. a demo profile).
        target
            .workload
            .pod_annotations
            .insert(CPU.into(), "1".into());
        target.live_pods = vec![
            live_pod("vllm-a", "2025-02-03T09:38:00Z", "10m", "40Mi"),
            live_pod("vllm-b", "2025-02-03T09:39:00Z", "10m", "40Mi"),
        ];
        let findings = check(&target, &settings());
        assert_well_formed(&findings);
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Info);
        assert!(
            finding.title.contains("10m CPU / 40Mi"),
            "{}",
            finding.title
        );
        assert!(finding.assumptions.is_empty(), "{:?}", finding.assumptions);
        let cpu = finding
            .evidence
            .iter()
            .find(|line| line.path == "spec/containers[1]/resources/requests/cpu")
            .unwrap();
        assert_eq!(cpu.object.to_string(), "Pod llm/vllm-b");
        assert_eq!(cpu.value, "10m");
        assert!(
            cpu.note
                .as_deref()
                .unwrap()
                .contains("the same in all 2 live pods"),
            "{cpu:?}"
        );
        assert!(
            !finding
                .evidence
                .iter()
                .any(|line| line.path.contains("annotations")),
            "annotations are not cited once the live proxy is known"
        );
    }

    #[test]
    fn during_a_rollout_the_newest_pod_speaks() {
        let mut target = target();
        target.live_pods = vec![
            live_pod("vllm-new", "2025-02-03T10:00:00Z", "100m", "128Mi"),
            live_pod("vllm-old", "2025-02-01T10:00:00Z", "10m", "40Mi"),
        ];
        let findings = check(&target, &settings());
        assert_eq!(findings[0].severity, Severity::Warning);
        let cpu = &findings[0]
            .evidence
            .iter()
            .find(|line| line.path.ends_with("requests/cpu") && line.object.kind == "Pod")
            .unwrap();
        assert_eq!(cpu.object.name, "vllm-new");
        assert!(
            cpu.note.as_deref().unwrap().contains("1 of 2 live pods"),
            "{cpu:?}"
        );
    }

    #[test]
    fn nodes_of_the_pods_are_cited_with_the_sidecars_share() {
        let mut target = target();
        target.live_pods = vec![live_pod("vllm-a", "2025-02-03T09:38:00Z", "2", "1Gi")];
        target.nodes = vec![
            serde_json::from_value(serde_json::json!({
                "node": "gpu-node-1",
                "allocatableCpuMillis": 16000,
                "allocatableGpus": {"nvidia.com/gpu": 8},
                "meshedGpuPods": ["llm/vllm-a", "llm/other-0"],
                "gpusRequested": 2,
                "sidecarCpuRequestMillis": 4000,
            }))
            .unwrap(),
            serde_json::from_value(serde_json::json!({
                "node": "gpu-node-2",
                "meshedGpuPods": ["llm/vllm-b"],
                "gpusRequested": 1,
                "sidecarCpuRequestMillis": 100,
            }))
            .unwrap(),
        ];
        let findings = check(&target, &settings());
        let nodes: Vec<&EvidenceLine> = findings[0]
            .evidence
            .iter()
            .filter(|line| line.object.kind == "Node")
            .collect();
        assert_eq!(nodes.len(), 2);
        assert_eq!(
            crate::report::evidence_text(nodes[0]),
            "Node gpu-node-1 status/allocatable/cpu = 16 (sidecars of 2 meshed GPU pods (2 GPUs) on this node request 4 CPU, 25.0% of its allocatable CPU)"
        );
        assert_eq!(nodes[1].value, "<unknown>");
        assert!(nodes[1].note.as_deref().unwrap().contains("unknown"));
    }

    #[test]
    fn no_finding_without_a_sidecar_or_without_gpus() {
        for mode in [SidecarMode::None, SidecarMode::Ambient] {
            let mut target = target();
            target.mesh.sidecar_mode = mode;
            assert!(check(&target, &settings()).is_empty(), "{mode:?}");
        }
        let mut cpu_only = target();
        cpu_only.workload.gpu = None;
        assert!(check(&cpu_only, &settings()).is_empty());
    }
}
