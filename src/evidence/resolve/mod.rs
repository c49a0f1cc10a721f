//! Inventory + scope -> Evidence: pick the targets (TARGET, namespace, selector), resolve the mesh
//! around each, record their live pods (which settle the sidecar mode) and the nodes those run on,
//! carry the gaps over.

pub mod ambient;
pub mod delegation;
pub mod gateway_routes;
pub mod hosts;
pub mod mesh;
pub mod patches;
pub mod policy;
pub mod route_match;
pub mod sidecar_mode;
pub mod target_refs;
pub mod workloads;

use crate::evidence::inventory::Inventory;
use crate::evidence::nodes::{NodeSidecarLoad, node_view};
use crate::evidence::resolve::mesh::resolve;
use crate::evidence::{
    EVIDENCE_SCHEMA_VERSION, Evidence, Gap, IstioPresence, LivePod, MeshContext, SidecarMode,
    TargetEvidence, Workload,
};
use std::fmt;
use std::time::Duration;
use workloads::{LabelSelector, PodSource, SelectorError, live};

/// What the user asked to diagnose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `-n`: only this namespace. None (without `-A`) means every namespace in the inventory.
    pub namespace: Option<String>,
    /// `-A`: every namespace, whatever `namespace` says.
    pub all_namespaces: bool,
    /// `-l`: pods whose labels match count as inference, and only they are diagnosed.
    pub selector: Option<String>,
    pub target: Option<Target>,
}

impl Scope {
    fn namespace_filter(&self) -> Option<&str> {
        if self.all_namespaces {
            None
        } else {
            self.namespace.as_deref()
        }
    }

    fn describe(&self) -> String {
        match self.namespace_filter() {
            Some(namespace) => format!("namespace {namespace}"),
            None => "any namespace".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Deployment,
    StatefulSet,
    Pod,
    Service,
}

impl TargetKind {
    pub fn short(self) -> &'static str {
        match self {
            TargetKind::Deployment => "deploy",
            TargetKind::StatefulSet => "sts",
            TargetKind::Pod => "pod",
            TargetKind::Service => "svc",
        }
    }
}

/// TARGET as kubectl takes it: `deploy/vllm`, `statefulset.apps/llm`, `po/x`, `svc/vllm`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: TargetKind,
    pub name: String,
}

impl Target {
    pub fn parse(text: &str) -> Result<Target, GatherError> {
        let invalid = || GatherError::InvalidTarget {
            input: text.to_string(),
        };
        let (kind, name) = text.trim().split_once('/').ok_or_else(invalid)?;
        let kind =
            match kind.to_ascii_lowercase().as_str() {
                "deploy" | "deployment" | "deployments" | "deployment.apps"
                | "deployments.apps" => TargetKind::Deployment,
                "sts" | "statefulset" | "statefulsets" | "statefulset.apps"
                | "statefulsets.apps" => TargetKind::StatefulSet,
                "po" | "pod" | "pods" => TargetKind::Pod,
                "svc" | "service" | "services" => TargetKind::Service,
                _ => return Err(invalid()),
            };
        if name.is_empty() || name.contains('/') {
            return Err(invalid());
        }
        Ok(Target {
            kind,
            name: name.to_string(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.short(), self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("invalid TARGET {input:?}: expected deploy/NAME, sts/NAME, pod/NAME or svc/NAME")]
    InvalidTarget { input: String },
    #[error(transparent)]
    Selector(#[from] SelectorError),
    #[error("a TARGET and -l/--selector cannot be combined: give one of them")]
    TargetWithSelector,
    #[error("no {target} in {scope}; inference workloads found: {found}")]
    TargetNotFound {
        target: String,
        scope: String,
        /// `deploy/vllm (inference), sts/llm (serving)`, or `none`.
        found: String,
    },
    #[error(
        "{target} in {scope} selects no Deployment, StatefulSet or Pod in the inventory; inference workloads found: {found}"
    )]
    ServiceSelectsNothing {
        target: String,
        scope: String,
        found: String,
    },
}

pub fn gather(
    inventory: &Inventory,
    scope: &Scope,
    expected_generation: Duration,
    sources: Vec<String>,
) -> Result<Evidence, GatherError> {
    let selector = scope
        .selector
        .as_deref()
        .map(LabelSelector::parse)
        .transpose()?;
    let workloads = match &scope.target {
        Some(_) if selector.is_some() => return Err(GatherError::TargetWithSelector),
        Some(target) => targeted(inventory, scope, target)?,
        None => workloads::find(inventory, selector.as_ref())
            .into_iter()
            .filter(|workload| in_scope(scope, &workload.namespace))
            .filter(|workload| {
                selector
                    .as_ref()
                    .is_none_or(|selector| selector.matches(&workload.pod_labels))
            })
            .collect(),
    };

    let mut gaps = inventory.gaps.clone();
    if workloads.is_empty() {
        let reason = match &selector {
            Some(selector) => format!(
                "no Deployment, StatefulSet or Pod in {} has pod labels matching {selector}",
                scope.describe()
            ),
            None => format!(
                "none in {}: no container runs vLLM (image vllm/vllm-openai, vllm serve, python -m vllm.entrypoints.openai.api_server); use -l to select the pods of another server",
                scope.describe()
            ),
        };
        gaps.push(Gap::new("inference workloads", reason));
    }

    let node_loads = node_view(inventory);
    let owners = workloads::Owners::new(inventory);
    let mut redacted = Vec::new();
    let targets = workloads
        .into_iter()
        .map(|mut workload| {
            let object = workload.object_ref();
            redacted.extend(
                crate::evidence::redact::pod_spec(&mut workload.pod_spec)
                    .into_iter()
                    .map(|what| format!("{object}: {what}")),
            );
            let resolution = resolve(inventory, &workload);
            let mut mesh = resolution.mesh;
            let live_pods = live_pods(&owners, &workload);
            settle_sidecar_mode(&mut mesh, &live_pods);
            if mesh.sidecar_mode != SidecarMode::Ambient {
                mesh.ambient = None;
            } else if let Some(context) = mesh.ambient.as_mut() {
                let gpu = workload.gpu.as_ref().is_some_and(|gpu| gpu.count > 0);
                context.ztunnel = ambient::ztunnel(inventory, &live_pods, gpu);
            }
            let nodes = nodes_of(&node_loads, &live_pods);
            TargetEvidence {
                workload,
                mesh,
                envoy: Vec::new(),
                gaps: resolution.gaps,
                live_pods,
                nodes,
                probes: Vec::new(),
            }
        })
        .collect();

    // ztunnel's lists matter only to ambient targets: elsewhere their gaps are noise.
    let targets: Vec<TargetEvidence> = targets;
    if !targets
        .iter()
        .any(|target| target.mesh.sidecar_mode == SidecarMode::Ambient)
    {
        gaps.retain(|gap| {
            !gap.what
                .contains(crate::evidence::ambient::ZTUNNEL_SELECTOR)
        });
    }
    Ok(Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION,
        sources,
        expected_generation,
        targets,
        gaps,
        gathered_at: None,
        redacted,
    })
}

/// The workload's pods the API server has seen, sorted by name.
fn live_pods(owners: &workloads::Owners<'_>, workload: &Workload) -> Vec<LivePod> {
    let mut pods: Vec<LivePod> = owners
        .live_pods(workload)
        .into_iter()
        .filter(|pod| live::is_live(pod))
        .map(live::live_pod)
        .collect();
    pods.sort_by(|a, b| a.name.cmp(&b.name));
    pods
}

/// Live pods say how the mesh really met the workload; without them, an injection that only
/// Istio could perform does not happen when Istio is not installed.
fn settle_sidecar_mode(mesh: &mut MeshContext, pods: &[LivePod]) {
    let predicted = (mesh.sidecar_mode, mesh.sidecar_reason.as_str());
    if let Some((mode, reason)) = live::sidecar_mode(pods, predicted, mesh.istio) {
        mesh.sidecar_mode = mode;
        mesh.sidecar_reason = reason;
    } else if mesh.istio == IstioPresence::NotInstalled
        && mesh.sidecar_mode == SidecarMode::Injected
    {
        mesh.sidecar_mode = SidecarMode::None;
        mesh.sidecar_reason = format!(
            "{} asks for injection, but Istio is not installed",
            mesh.sidecar_reason
        );
    }
}

/// The node-view entries of the nodes the pods run on.
fn nodes_of(loads: &[NodeSidecarLoad], pods: &[LivePod]) -> Vec<NodeSidecarLoad> {
    loads
        .iter()
        .filter(|load| pods.iter().any(|pod| pod.node.as_ref() == Some(&load.node)))
        .cloned()
        .collect()
}

fn in_scope(scope: &Scope, namespace: &str) -> bool {
    scope
        .namespace_filter()
        .is_none_or(|wanted| wanted == namespace)
}

/// The workloads TARGET names, recognised as inference or not (the user named them).
fn targeted(
    inventory: &Inventory,
    scope: &Scope,
    target: &Target,
) -> Result<Vec<Workload>, GatherError> {
    let named = format!("named as TARGET {target}");
    let mut found: Vec<Workload> = match target.kind {
        TargetKind::Deployment | TargetKind::StatefulSet => workloads::pod_sources(inventory)
            .iter()
            .filter(|source| {
                source.kind.short() == target.kind.short()
                    && source.name == target.name
                    && in_scope(scope, source.namespace)
            })
            .map(|source| chosen(source, &named))
            .collect(),
        TargetKind::Pod => {
            let owners = workloads::Owners::new(inventory);
            inventory
                .pods
                .iter()
                .filter(|pod| pod.metadata.name.as_deref() == Some(target.name.as_str()))
                .filter_map(|pod| workloads::named_pod_source(inventory, &owners, pod))
                .filter(|source| in_scope(scope, source.namespace))
                .map(|source| chosen(&source, &named))
                .collect()
        }
        TargetKind::Service => {
            let services: Vec<_> = inventory
                .services
                .iter()
                .filter(|svc| svc.metadata.name.as_deref() == Some(target.name.as_str()))
                .filter(|svc| {
                    in_scope(scope, svc.metadata.namespace.as_deref().unwrap_or_default())
                })
                .collect();
            if services.is_empty() {
                return Err(not_found(inventory, scope, target));
            }
            let sources = workloads::pod_sources(inventory);
            let selected_by = format!("selected by TARGET {target}");
            let selected: Vec<Workload> = services
                .iter()
                .flat_map(|svc| {
                    let namespace = svc.metadata.namespace.as_deref().unwrap_or_default();
                    let selector = svc
                        .spec
                        .as_ref()
                        .and_then(|spec| spec.selector.clone())
                        .unwrap_or_default();
                    sources
                        .iter()
                        .filter(move |source| {
                            source.namespace == namespace
                                && !selector.is_empty()
                                && selector
                                    .iter()
                                    .all(|(k, v)| source.label(k) == Some(v.as_str()))
                        })
                        .map(|source| chosen(source, &selected_by))
                        .collect::<Vec<_>>()
                })
                .collect();
            if selected.is_empty() {
                return Err(GatherError::ServiceSelectsNothing {
                    target: target.to_string(),
                    scope: scope.describe(),
                    found: found_list(inventory),
                });
            }
            selected
        }
    };
    if found.is_empty() {
        return Err(not_found(inventory, scope, target));
    }
    found.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    Ok(found)
}

/// A workload the user chose: the vLLM evidence if any, else why it was chosen.
fn chosen(source: &PodSource<'_>, reason: &str) -> Workload {
    let detected = workloads::detect(source, None).unwrap_or_else(|| reason.to_string());
    workloads::build(source, detected)
}

fn not_found(inventory: &Inventory, scope: &Scope, target: &Target) -> GatherError {
    GatherError::TargetNotFound {
        target: target.to_string(),
        scope: scope.describe(),
        found: found_list(inventory),
    }
}

/// `deploy/vllm (inference), sts/llm (serving)`: the inference workloads, in any namespace.
fn found_list(inventory: &Inventory) -> String {
    let names: Vec<String> = workloads::find(inventory, None)
        .iter()
        .map(|workload| format!("{} ({})", workload.target_name(), workload.namespace))
        .collect();
    match names.len() {
        0 => "none".to_string(),
        count if count > FOUND_LIST_LIMIT => format!(
            "{}, and {} more",
            names[..FOUND_LIST_LIMIT].join(", "),
            count - FOUND_LIST_LIMIT
        ),
        _ => names.join(", "),
    }
}

/// A not-found error stays one readable line on a big cluster.
const FOUND_LIST_LIMIT: usize = 10;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::WorkloadKind;

    fn inventory(yaml: &str) -> Inventory {
        crate::sources::manifest::load_with_stdin(
            &[std::path::PathBuf::from("-")],
            "inference",
            &mut std::io::Cursor::new(yaml.to_string()),
        )
        .unwrap()
    }

    const GENERATION: Duration = Duration::from_secs(300);

    fn run(inventory: &Inventory, scope: &Scope) -> Result<Evidence, GatherError> {
        gather(inventory, scope, GENERATION, vec!["manifests".to_string()])
    }

    fn targets(evidence: &Evidence) -> Vec<String> {
        evidence
            .targets
            .iter()
            .map(|t| format!("{}/{}", t.workload.namespace, t.workload.target_name()))
            .collect()
    }

    fn target(text: &str) -> Option<Target> {
        Some(Target::parse(text).unwrap())
    }

    const CLUSTER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: inference}
spec:
  template:
    metadata: {labels: {app: vllm}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: llm, namespace: serving}
spec:
  template:
    metadata: {labels: {app: llm, tier: gpu}}
    spec: {containers: [{name: server, image: x, command: [vllm, serve, m]}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: tgi, namespace: serving}
spec:
  template:
    metadata: {labels: {app: tgi, tier: gpu}}
    spec: {containers: [{name: tgi, image: ghcr.io/huggingface/text-generation-inference}]}
---
apiVersion: v1
kind: Service
metadata: {name: vllm, namespace: inference}
spec: {selector: {app: vllm}, ports: [{port: 8000}]}
---
apiVersion: v1
kind: Service
metadata: {name: tgi, namespace: serving}
spec: {selector: {app: tgi}}
---
apiVersion: v1
kind: Service
metadata: {name: nothing, namespace: serving}
spec: {selector: {app: gone}}
"#;

    #[test]
    fn target_parsing_accepts_kubectl_aliases() {
        for (text, kind) in [
            ("deploy/vllm", TargetKind::Deployment),
            ("deployment/vllm", TargetKind::Deployment),
            ("deployments/vllm", TargetKind::Deployment),
            ("deployment.apps/vllm", TargetKind::Deployment),
            ("Deployment/vllm", TargetKind::Deployment),
            ("sts/vllm", TargetKind::StatefulSet),
            ("statefulset/vllm", TargetKind::StatefulSet),
            ("statefulset.apps/vllm", TargetKind::StatefulSet),
            ("pod/vllm", TargetKind::Pod),
            ("po/vllm", TargetKind::Pod),
            ("svc/vllm", TargetKind::Service),
            ("service/vllm", TargetKind::Service),
        ] {
            let parsed = Target::parse(text).unwrap();
            assert_eq!(parsed.kind, kind, "{text}");
            assert_eq!(parsed.name, "vllm");
        }
        assert_eq!(
            Target::parse("deployment.apps/vllm").unwrap().to_string(),
            "deploy/vllm"
        );
        for bad in ["vllm", "deploy/", "job/vllm", "deploy/a/b", "/vllm"] {
            let error = Target::parse(bad).unwrap_err();
            assert!(error.to_string().contains("deploy/NAME"), "{bad}: {error}");
        }
    }

    #[test]
    fn every_inference_workload_in_every_namespace_by_default() {
        let evidence = run(&inventory(CLUSTER), &Scope::default()).unwrap();
        assert_eq!(
            targets(&evidence),
            ["inference/deploy/vllm", "serving/sts/llm"]
        );
        assert_eq!(
            evidence.schema_version,
            crate::evidence::EVIDENCE_SCHEMA_VERSION
        );
        assert_eq!(evidence.expected_generation, GENERATION);
        assert_eq!(evidence.sources, ["manifests"]);
        let vllm = &evidence.targets[0];
        assert_eq!(vllm.mesh.services.len(), 1);
        assert_eq!(vllm.mesh.istio, IstioPresence::Unknown);
        // The namespace objects are not in the fixture: each target says so.
        assert!(vllm.gaps.iter().any(|g| g.what == "Namespace inference"));
    }

    #[test]
    fn namespace_scope_and_all_namespaces() {
        let inventory = inventory(CLUSTER);
        let scoped = Scope {
            namespace: Some("serving".into()),
            ..Scope::default()
        };
        assert_eq!(
            targets(&run(&inventory, &scoped).unwrap()),
            ["serving/sts/llm"]
        );
        let all = Scope {
            all_namespaces: true,
            ..scoped
        };
        assert_eq!(run(&inventory, &all).unwrap().targets.len(), 2);
    }

    #[test]
    fn a_selector_narrows_and_recognises() {
        let scope = Scope {
            selector: Some("tier=gpu".into()),
            ..Scope::default()
        };
        let evidence = run(&inventory(CLUSTER), &scope).unwrap();
        assert_eq!(
            targets(&evidence),
            ["serving/deploy/tgi", "serving/sts/llm"]
        );
        assert_eq!(
            evidence.targets[0].workload.detected_by,
            "selector tier=gpu"
        );
        assert_eq!(
            evidence.targets[1].workload.detected_by,
            "command vllm serve"
        );

        let bad = Scope {
            selector: Some("tier in (gpu".into()),
            ..Scope::default()
        };
        assert!(matches!(
            run(&inventory(CLUSTER), &bad),
            Err(GatherError::Selector(_))
        ));
    }

    #[test]
    fn named_targets_even_when_not_recognised_as_vllm() {
        let inventory = inventory(CLUSTER);
        let evidence = run(
            &inventory,
            &Scope {
                target: target("deploy/tgi"),
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&evidence), ["serving/deploy/tgi"]);
        assert_eq!(
            evidence.targets[0].workload.detected_by,
            "named as TARGET deploy/tgi"
        );

        let evidence = run(
            &inventory,
            &Scope {
                target: target("svc/vllm"),
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(targets(&evidence), ["inference/deploy/vllm"]);
        assert_eq!(evidence.targets[0].workload.kind, WorkloadKind::Deployment);

        let evidence = run(
            &inventory,
            &Scope {
                target: target("svc/tgi"),
                ..Scope::default()
            },
        )
        .unwrap();
        assert_eq!(
            evidence.targets[0].workload.detected_by,
            "selected by TARGET svc/tgi"
        );
    }

    #[test]
    fn a_missing_target_lists_the_inference_workloads_found() {
        let inventory = inventory(CLUSTER);
        let error = run(
            &inventory,
            &Scope {
                namespace: Some("x".into()),
                target: target("deploy/foo"),
                ..Scope::default()
            },
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "no deploy/foo in namespace x; inference workloads found: deploy/vllm (inference), sts/llm (serving)"
        );
        // The right name in the wrong namespace is not found either.
        let error = run(
            &inventory,
            &Scope {
                namespace: Some("serving".into()),
                target: target("deploy/vllm"),
                ..Scope::default()
            },
        )
        .unwrap_err();
        assert!(matches!(error, GatherError::TargetNotFound { .. }));

        let error = run(
            &inventory,
            &Scope {
                target: target("svc/nothing"),
                ..Scope::default()
            },
        )
        .unwrap_err();
        assert!(
            matches!(error, GatherError::ServiceSelectsNothing { .. }),
            "{error}"
        );

        let error = run(
            &Inventory::default(),
            &Scope {
                target: target("pod/p"),
                ..Scope::default()
            },
        )
        .unwrap_err();
        assert!(
            error
                .to_string()
                .ends_with("inference workloads found: none"),
            "{error}"
        );
    }

    #[test]
    fn the_list_of_workloads_found_is_cut_short() {
        let many: Vec<String> = (0..12)
            .map(|i| {
                format!(
                    "apiVersion: v1\nkind: Pod\nmetadata: {{name: p{i:02}}}\nspec: {{containers: [{{name: c, image: vllm/vllm-openai}}]}}\n"
                )
            })
            .collect();
        let error = run(
            &inventory(&many.join("---\n")),
            &Scope {
                target: target("deploy/x"),
                ..Scope::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("pod/p09 (inference), and 2 more"), "{error}");
        assert!(!error.contains("p10"), "{error}");
    }

    #[test]
    fn a_target_and_a_selector_do_not_combine() {
        let scope = Scope {
            selector: Some("app=x".into()),
            target: target("deploy/vllm"),
            ..Scope::default()
        };
        assert!(matches!(
            run(&inventory(CLUSTER), &scope),
            Err(GatherError::TargetWithSelector)
        ));
    }

    #[test]
    fn no_workloads_is_a_gap_not_an_error_and_inventory_gaps_carry_over() {
        let mut inventory = inventory(
            "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}}\n",
        );
        inventory
            .gaps
            .push(Gap::new("EnvoyFilter list", "403 Forbidden"));
        inventory.istio = Some(IstioPresence::Installed);
        let evidence = run(&inventory, &Scope::default()).unwrap();
        assert!(evidence.targets.is_empty());
        let whats: Vec<_> = evidence.gaps.iter().map(|g| g.what.as_str()).collect();
        assert_eq!(whats, ["EnvoyFilter list", "inference workloads"]);
        assert!(evidence.gaps[1].reason.contains("vLLM"));
    }

    #[test]
    fn istio_presence_comes_from_the_inventory() {
        let mut inventory = inventory(CLUSTER);
        inventory.istio = Some(IstioPresence::NotInstalled);
        let evidence = run(&inventory, &Scope::default()).unwrap();
        assert!(
            evidence
                .targets
                .iter()
                .all(|t| t.mesh.istio == IstioPresence::NotInstalled)
        );
    }

    /// deploy/vllm with an injection label, two live pods (one injected with 10m, one not yet),
    /// a hand-written Pod manifest, and the GPU node they run on.
    const LIVE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: inference, labels: {istio-injection: enabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: vllm, namespace: inference}
spec:
  template:
    metadata: {labels: {app: vllm}}
    spec: {containers: [{name: vllm, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: "1"}}}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-5d8f-bbbbb
  creationTimestamp: "2025-02-03T09:38:00Z"
  labels: {app: vllm, pod-template-hash: 5d8f}
  annotations: {sidecar.istio.io/status: "{}"}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-5d8f, uid: "1"}]
spec:
  nodeName: gpu-node-1
  containers:
  - {name: vllm, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: "1"}}}
  - {name: istio-proxy, image: istio/proxyv2, resources: {requests: {cpu: 10m, memory: 40Mi}}}
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  containerStatuses:
  - {name: vllm, image: x, imageID: "", ready: true, restartCount: 4}
---
apiVersion: v1
kind: Pod
metadata:
  name: vllm-5d8f-aaaaa
  labels: {app: vllm, pod-template-hash: 5d8f}
  ownerReferences: [{apiVersion: apps/v1, kind: ReplicaSet, name: vllm-5d8f, uid: "1"}]
spec:
  nodeName: gpu-node-2
  containers: [{name: vllm, image: vllm/vllm-openai, resources: {limits: {nvidia.com/gpu: "1"}}}]
status: {phase: Pending}
---
apiVersion: v1
kind: Pod
metadata: {name: scratch, labels: {app: scratch}}
spec: {containers: [{name: vllm, image: vllm/vllm-openai}]}
---
apiVersion: v1
kind: Node
metadata: {name: gpu-node-1}
status: {allocatable: {cpu: "16", nvidia.com/gpu: "8"}}
"#;

    /// The cluster source lists a pod that a listed workload owns without its whole spec.
    #[test]
    fn a_pod_listed_without_its_spec_gives_the_same_evidence_and_pod_name_takes_its_template() {
        let whole = inventory(LIVE);
        let mut compact = whole.clone();
        for pod in &mut compact.pods {
            if pod.metadata.owner_references.is_some() {
                pod.spec.as_mut().unwrap().whole = None;
            }
        }
        let targets_json = |evidence: &Evidence| serde_json::to_value(&evidence.targets).unwrap();
        assert_eq!(
            targets_json(&run(&whole, &Scope::default()).unwrap()),
            targets_json(&run(&compact, &Scope::default()).unwrap())
        );

        let named = Scope {
            target: target("pod/vllm-5d8f-bbbbb"),
            ..Scope::default()
        };
        let from_own_spec = run(&whole, &named).unwrap();
        let from_template = run(&compact, &named).unwrap();
        assert_eq!(targets(&from_template), ["inference/pod/vllm-5d8f-bbbbb"]);
        let containers = |evidence: &Evidence| -> Vec<String> {
            let spec = &evidence.targets[0].workload.pod_spec;
            spec.containers.iter().map(|c| c.name.clone()).collect()
        };
        assert_eq!(containers(&from_own_spec), ["vllm", "istio-proxy"]);
        // The Deployment's template, as written before injection; the live pod still shows the
        // proxy it runs, and the pod's own annotations are kept.
        assert_eq!(containers(&from_template), ["vllm"]);
        let target = &from_template.targets[0];
        assert_eq!(target.live_pods.len(), 1);
        assert!(target.live_pods[0].proxy.is_some());
        assert!(
            target
                .workload
                .pod_annotations
                .contains_key("sidecar.istio.io/status")
        );
        assert_eq!(target.mesh.sidecar_mode, SidecarMode::Classic);
    }

    #[test]
    fn live_pods_nodes_and_the_mode_they_show_are_recorded() {
        let evidence = run(&inventory(LIVE), &Scope::default()).unwrap();
        assert_eq!(
            targets(&evidence),
            ["inference/deploy/vllm", "inference/pod/scratch"]
        );
        let vllm = &evidence.targets[0];
        let names: Vec<&str> = vllm.live_pods.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["vllm-5d8f-aaaaa", "vllm-5d8f-bbbbb"]);
        let injected = &vllm.live_pods[1];
        assert!(injected.ready && injected.sidecar_status);
        assert_eq!(injected.restarts, 4);
        assert_eq!(
            injected.proxy.as_ref().unwrap().cpu_request.as_deref(),
            Some("10m")
        );
        assert!(!vllm.live_pods[0].ready);
        assert_eq!(vllm.mesh.sidecar_mode, SidecarMode::Classic);
        assert!(
            vllm.mesh.sidecar_reason.contains("1 of 2 live pods"),
            "{}",
            vllm.mesh.sidecar_reason
        );
        // Only the node of an injected GPU pod is in the node view.
        assert_eq!(vllm.nodes.len(), 1);
        assert_eq!(vllm.nodes[0].node, "gpu-node-1");
        assert_eq!(vllm.nodes[0].allocatable_cpu_millis, Some(16_000));
        assert_eq!(vllm.nodes[0].sidecar_cpu_request_millis, 10);

        // A Pod written by hand has not met the API server: no live pod, the prediction stands.
        let scratch = &evidence.targets[1];
        assert!(scratch.live_pods.is_empty());
        assert_eq!(scratch.mesh.sidecar_mode, SidecarMode::Injected);
        assert!(evidence.gathered_at.is_none());
    }

    #[test]
    fn without_istio_nothing_is_injected() {
        let mut inventory = inventory(LIVE);
        inventory.istio = Some(IstioPresence::NotInstalled);
        inventory.pods.retain(|pod| {
            pod.spec
                .as_ref()
                .unwrap()
                .containers
                .iter()
                .all(|c| c.name != "istio-proxy")
        });
        let evidence = run(&inventory, &Scope::default()).unwrap();
        for target in &evidence.targets {
            assert_eq!(
                target.mesh.sidecar_mode,
                SidecarMode::None,
                "{}",
                target.workload.name
            );
            assert!(
                target
                    .mesh
                    .sidecar_reason
                    .contains("Istio is not installed"),
                "{}",
                target.mesh.sidecar_reason
            );
        }
    }

    #[test]
    fn evidence_round_trips_through_json() {
        for manifests in [CLUSTER, LIVE] {
            let mut evidence = run(&inventory(manifests), &Scope::default()).unwrap();
            evidence.gathered_at = Some(serde_json::from_str("\"2025-02-03T10:00:00Z\"").unwrap());
            let json = serde_json::to_string(&evidence).unwrap();
            let back: Evidence = serde_json::from_str(&json).unwrap();
            assert_eq!(back, evidence);
        }
        // Evidence saved before live pods existed still reads.
        let old = serde_json::json!({
            "schemaVersion": 1, "sources": ["manifests"], "expectedGeneration": "300s", "targets": [],
        });
        let old: Evidence = serde_json::from_value(old).unwrap();
        assert!(old.gathered_at.is_none());
    }
}
