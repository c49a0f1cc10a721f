//! Which listed workload owns each pod, worked out once for the whole inventory: a pod belongs to
//! a StatefulSet it names, or to the Deployment behind the ReplicaSet it names. Looking owners up
//! per pod by scanning every ReplicaSet made a 20,000-pod cluster cost minutes.

use crate::evidence::inventory::Inventory;
use crate::evidence::listed_pod::ListedPod;
use crate::evidence::{Workload, WorkloadKind};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::{HashMap, HashSet};

/// A namespace as written (`None` in a manifest that names none) and a name.
type Key<'a> = (Option<&'a str>, &'a str);

/// The listed pods by owner, borrowed from one inventory.
pub struct Owners<'a> {
    /// Pods by the workload that owns them, in inventory order; pods no listed workload owns
    /// are absent.
    by_owner: HashMap<(WorkloadKind, Key<'a>), Vec<&'a ListedPod>>,
    /// Every pod by its own name.
    by_name: HashMap<Key<'a>, &'a ListedPod>,
    owner_of: HashMap<Key<'a>, (WorkloadKind, &'a str)>,
}

impl<'a> Owners<'a> {
    pub fn new(inventory: &'a Inventory) -> Self {
        let links = OwnerLinks::new(
            &inventory.deployments,
            &inventory.stateful_sets,
            &inventory.replica_sets,
        );
        let mut owners = Owners {
            by_owner: HashMap::new(),
            by_name: HashMap::with_capacity(inventory.pods.len()),
            owner_of: HashMap::new(),
        };
        for pod in &inventory.pods {
            let namespace = pod.metadata.namespace.as_deref();
            let Some(name) = pod.metadata.name.as_deref() else {
                continue;
            };
            owners.by_name.insert((namespace, name), pod);
            if let Some((kind, owner)) = links.owner(&pod.metadata) {
                owners.owner_of.insert((namespace, name), (kind, owner));
                owners
                    .by_owner
                    .entry((kind, (namespace, owner)))
                    .or_default()
                    .push(pod);
            }
        }
        owners
    }

    /// The listed Deployment or StatefulSet that owns `pod`, in the pod's namespace.
    pub fn owner(&self, pod: &ListedPod) -> Option<(WorkloadKind, &'a str)> {
        let name = pod.metadata.name.as_deref()?;
        self.owner_of
            .get(&(pod.metadata.namespace.as_deref(), name))
            .copied()
    }

    /// The live pods of a workload: its own Pod, or the pods its Deployment/StatefulSet owns.
    pub fn live_pods(&self, workload: &Workload) -> Vec<&'a ListedPod> {
        let key = (Some(workload.namespace.as_str()), workload.name.as_str());
        match workload.kind {
            WorkloadKind::Pod => self.by_name.get(&key).copied().into_iter().collect(),
            kind => self.by_owner.get(&(kind, key)).cloned().unwrap_or_default(),
        }
    }
}

/// The owner links the listed workloads make: StatefulSets and Deployments, and each ReplicaSet's
/// Deployment. A source uses them to know, as pods are listed, which pods a listed workload owns.
pub struct OwnerLinks<'a> {
    stateful_sets: HashSet<Key<'a>>,
    deployments: HashSet<Key<'a>>,
    /// A listed ReplicaSet and the Deployment it names, if any.
    replica_sets: HashMap<Key<'a>, Option<&'a str>>,
}

impl<'a> OwnerLinks<'a> {
    pub fn new(
        deployments: &'a [Deployment],
        stateful_sets: &'a [StatefulSet],
        replica_sets: &'a [ReplicaSet],
    ) -> Self {
        let key = |meta: &'a ObjectMeta| Some((meta.namespace.as_deref(), meta.name.as_deref()?));
        OwnerLinks {
            stateful_sets: stateful_sets
                .iter()
                .filter_map(|set| key(&set.metadata))
                .collect(),
            deployments: deployments
                .iter()
                .filter_map(|deployment| key(&deployment.metadata))
                .collect(),
            replica_sets: replica_sets
                .iter()
                .filter_map(|rs| {
                    let deployment = rs
                        .metadata
                        .owner_references
                        .iter()
                        .flatten()
                        .find(|owner| owner.kind == "Deployment")
                        .map(|owner| owner.name.as_str());
                    Some((key(&rs.metadata)?, deployment))
                })
                .collect(),
        }
    }

    /// The listed Deployment or StatefulSet that owns the pod with this metadata.
    pub fn owner(&self, pod: &'a ObjectMeta) -> Option<(WorkloadKind, &'a str)> {
        let namespace = pod.namespace.as_deref();
        for owner in pod.owner_references.iter().flatten() {
            let name = owner.name.as_str();
            match owner.kind.as_str() {
                "StatefulSet" if self.stateful_sets.contains(&(namespace, name)) => {
                    return Some((WorkloadKind::StatefulSet, name));
                }
                "ReplicaSet" => {
                    let deployment = match self.replica_sets.get(&(namespace, name)) {
                        Some(deployment) => *deployment,
                        // Not listed: a Deployment's ReplicaSet is named DEPLOYMENT-HASH, and its
                        // pods carry HASH as `pod-template-hash`.
                        None => pod
                            .labels
                            .as_ref()
                            .and_then(|labels| labels.get("pod-template-hash"))
                            .and_then(|hash| name.strip_suffix(hash.as_str())?.strip_suffix('-')),
                    };
                    if let Some(deployment) = deployment
                        && self.deployments.contains(&(namespace, deployment))
                    {
                        return Some((WorkloadKind::Deployment, deployment));
                    }
                }
                _ => {}
            }
        }
        None
    }
}
