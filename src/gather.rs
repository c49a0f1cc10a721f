//! Inventory + scope -> Evidence: pick the targets (TARGET, namespace, selector), resolve the mesh
//! around each, carry the gaps over.

use crate::evidence::{EVIDENCE_SCHEMA_VERSION, Evidence, Gap, TargetEvidence, Workload};
use crate::inventory::Inventory;
use crate::mesh::resolve::resolve;
use crate::workloads::{self, LabelSelector, PodSource, SelectorError};
use std::fmt;
use std::time::Duration;

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

    let targets = workloads
        .into_iter()
        .map(|workload| {
            let resolution = resolve(inventory, &workload);
            TargetEvidence {
                workload,
                mesh: resolution.mesh,
                gaps: resolution.gaps,
            }
        })
        .collect();

    Ok(Evidence {
        schema_version: EVIDENCE_SCHEMA_VERSION,
        sources,
        expected_generation,
        targets,
        gaps,
    })
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
        TargetKind::Pod => inventory
            .pods
            .iter()
            .filter(|pod| pod.metadata.name.as_deref() == Some(target.name.as_str()))
            .filter_map(workloads::pod_source)
            .filter(|source| in_scope(scope, source.namespace))
            .map(|source| chosen(&source, &named))
            .collect(),
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
                                    .all(|(k, v)| source.labels().get(k) == Some(v))
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

/// `deploy/vllm (inference), sts/llm (serving)`: every inference workload, in any namespace.
fn found_list(inventory: &Inventory) -> String {
    let names: Vec<String> = workloads::find(inventory, None)
        .iter()
        .map(|workload| format!("{} ({})", workload.target_name(), workload.namespace))
        .collect();
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}
