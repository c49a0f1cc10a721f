//! A pod as listed, holding what the checks read of it. k8s-openapi's `Pod` takes 2.4 KB and
//! each of its containers 2.3 KB before they hold anything, so a 5,800-pod cluster cost about
//! 100 MB in empty fields. A pod that a listed Deployment or StatefulSet owns is judged by that
//! workload's template; of its own spec it keeps what its evidence reads (node, the containers'
//! names, images, ports and resources, which one is a native sidecar). Any other pod may be a
//! workload of its own (a bare pod, one of an owner nothing lists, `pod/NAME`) and keeps its
//! whole spec as well.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Pod, PodSpec, PodStatus, ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedPod {
    pub metadata: ObjectMeta,
    pub spec: Option<ListedPodSpec>,
    pub status: Option<ListedPodStatus>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedPodSpec {
    pub node_name: Option<String>,
    pub containers: Vec<ListedContainer>,
    pub init_containers: Vec<ListedContainer>,
    /// The whole spec, for a pod that may be a workload of its own (see the module's doc).
    pub whole: Option<Box<PodSpec>>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedContainer {
    pub name: String,
    pub image: Option<String>,
    /// `Always` on an init container makes it a native sidecar.
    pub restart_policy: Option<String>,
    pub ports: Vec<ContainerPort>,
    pub resources: Option<ResourceRequirements>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListedPodStatus {
    pub phase: Option<String>,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Restarts of every container, init containers included.
    pub restarts: u32,
    pub start_time: Option<Time>,
}

/// Whether a listed pod keeps its whole spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spec {
    Whole,
    Compact,
}

impl ListedPod {
    pub fn new(pod: Pod, keep: Spec) -> Self {
        let Pod {
            metadata,
            spec,
            status,
        } = pod;
        ListedPod {
            metadata,
            spec: spec.map(|spec| ListedPodSpec::new(spec, keep)),
            status: status.map(ListedPodStatus::new),
        }
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }

    pub fn name(&self) -> Option<&str> {
        self.metadata.name.as_deref()
    }

    pub fn node_name(&self) -> Option<&str> {
        self.spec.as_ref()?.node_name.as_deref()
    }

    pub fn phase(&self) -> Option<&str> {
        self.status.as_ref()?.phase.as_deref()
    }

    pub fn is_ready(&self) -> bool {
        self.status.as_ref().is_some_and(|status| status.ready)
    }

    /// The whole spec, when this pod kept it.
    pub fn whole_spec(&self) -> Option<&PodSpec> {
        self.spec.as_ref()?.whole.as_deref()
    }
}

impl ListedPodSpec {
    fn new(spec: PodSpec, keep: Spec) -> Self {
        let compact = |containers: &[Container]| -> Vec<ListedContainer> {
            containers.iter().map(ListedContainer::new).collect()
        };
        ListedPodSpec {
            node_name: spec.node_name.clone(),
            containers: compact(&spec.containers),
            init_containers: compact(spec.init_containers.as_deref().unwrap_or_default()),
            whole: (keep == Spec::Whole).then(|| Box::new(spec)),
        }
    }
}

impl ListedContainer {
    fn new(container: &Container) -> Self {
        ListedContainer {
            name: container.name.clone(),
            image: container.image.clone(),
            restart_policy: container.restart_policy.clone(),
            ports: container.ports.clone().unwrap_or_default(),
            resources: container.resources.clone(),
        }
    }
}

impl ListedPodStatus {
    fn new(status: PodStatus) -> Self {
        let ready = status
            .conditions
            .iter()
            .flatten()
            .any(|condition| condition.type_ == "Ready" && condition.status == "True");
        let restarts = status
            .container_statuses
            .iter()
            .flatten()
            .chain(status.init_container_statuses.iter().flatten())
            .map(|container| u32::try_from(container.restart_count).unwrap_or(0))
            .fold(0u32, u32::saturating_add);
        ListedPodStatus {
            phase: status.phase,
            ready,
            restarts,
            start_time: status.start_time,
        }
    }
}

impl From<Pod> for ListedPod {
    /// A pod with its whole spec, as manifests and selected lists give it.
    fn from(pod: Pod) -> Self {
        ListedPod::new(pod, Spec::Whole)
    }
}

/// A Pod's JSON or YAML, kept whole (tests, hand-written pods).
impl<'de> Deserialize<'de> for ListedPod {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Pod::deserialize(deserializer).map(ListedPod::from)
    }
}
