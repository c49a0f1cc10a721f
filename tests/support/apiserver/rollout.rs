//! Turns manifests (what a user applies) into what a cluster then holds: Namespaces, the
//! Deployment's ReplicaSet, and running Pods with the Istio sidecar injected the way istiod's
//! injector writes it. End-to-end tests use this to compare a live diagnosis with the offline one.

use serde_json::{Map, Value, json};
use std::path::Path;

/// The node rolled-out pods are scheduled on (a GPU node in the fixtures).
pub const ROLLOUT_NODE: &str = "gpu-node-a";
const PROXY_IMAGE: &str = "docker.io/istio/proxyv2:1.24.2";
/// Injector defaults (Istio chart `values.yaml`): requests 100m / 128Mi, limits 2000m / 1024Mi.
const DEFAULT_PROXY_RESOURCES: (&str, &str, &str, &str) = ("100m", "128Mi", "2000m", "1024Mi");

/// When rolled-out pods were created (and started).
pub const ROLLOUT_CREATED: &str = "2025-02-03T09:38:00Z";

/// Every document of a YAML or JSON manifest file (`---`-separated, `kind: List` expanded); for a
/// folder, of its `.yaml`, `.yml` and `.json` files in name order, as `kubectl apply -f DIR` reads.
pub fn read_manifests(path: &Path) -> Vec<Value> {
    if path.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()))
            .map(|entry| entry.unwrap().path())
            .filter(|file| {
                file.extension()
                    .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
            })
            .collect();
        files.sort();
        return files.iter().flat_map(|file| read_manifests(file)).collect();
    }
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    let mut objects = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        match value["kind"].as_str() {
            Some("List") => objects.extend(value["items"].as_array().cloned().unwrap_or_default()),
            Some(_) => objects.push(value),
            None => {}
        }
    }
    objects
}

fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "Node" | "ClusterRole" | "ClusterRoleBinding"
    )
}

/// What the cluster holds after `kubectl apply -n default_namespace` of `manifests`: the objects
/// with namespaces filled in, missing Namespaces created, and for each Deployment (and
/// StatefulSet) its ReplicaSet and `replicas` running pods, injected where Istio would inject.
pub fn roll_out(manifests: Vec<Value>, default_namespace: &str) -> Vec<Value> {
    roll_out_with(manifests, default_namespace, true)
}

/// [`roll_out`] on a cluster with Istio's injector (`injector`) or without one (no pod gets a
/// sidecar, whatever its labels ask).
pub fn roll_out_with(manifests: Vec<Value>, default_namespace: &str, injector: bool) -> Vec<Value> {
    let mut objects: Vec<Value> = manifests
        .into_iter()
        .map(|mut object| {
            let kind = object["kind"].as_str().unwrap_or_default().to_string();
            if !is_cluster_scoped(&kind) && object["metadata"]["namespace"].is_null() {
                object["metadata"]["namespace"] = json!(default_namespace);
            }
            object
        })
        .collect();
    let mut namespaces: Vec<String> = objects
        .iter()
        .filter_map(|object| object["metadata"]["namespace"].as_str().map(str::to_string))
        .collect();
    namespaces.sort();
    namespaces.dedup();
    for namespace in namespaces {
        let exists = objects.iter().any(|object| {
            object["kind"] == "Namespace" && object["metadata"]["name"] == namespace.as_str()
        });
        if !exists {
            objects.push(json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": namespace, "labels": {"kubernetes.io/metadata.name": namespace}},
                "status": {"phase": "Active"},
            }));
        }
    }
    let mut created = Vec::new();
    for object in &objects {
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind != "Deployment" && kind != "StatefulSet" {
            continue;
        }
        let namespace = object["metadata"]["namespace"].as_str().unwrap_or_default();
        let namespace_labels = objects
            .iter()
            .find(|candidate| {
                candidate["kind"] == "Namespace" && candidate["metadata"]["name"] == namespace
            })
            .map(|candidate| candidate["metadata"]["labels"].clone())
            .unwrap_or(Value::Null);
        created.extend(workload_children(object, &namespace_labels, injector));
    }
    objects.extend(created);
    objects
}

/// The ReplicaSet (Deployments only) and pods of a workload.
fn workload_children(workload: &Value, namespace_labels: &Value, injector: bool) -> Vec<Value> {
    let kind = workload["kind"].as_str().unwrap_or_default();
    let name = workload["metadata"]["name"].as_str().unwrap_or_default();
    let namespace = workload["metadata"]["namespace"]
        .as_str()
        .unwrap_or_default();
    let replicas = workload["spec"]["replicas"].as_u64().unwrap_or(1);
    let workload_uid = format!("{:08x}-0000-4000-8000-{:012x}", name.len(), fnv(name));
    let mut children = Vec::new();
    let (owner, pod_prefix, extra_labels) = if kind == "Deployment" {
        let hash = format!(
            "{:010x}",
            fnv(&format!("{namespace}/{name}")) & 0xff_ffff_ffff
        );
        let rs_name = format!("{name}-{hash}");
        let rs_uid = format!(
            "{:08x}-1111-4000-8000-{:012x}",
            rs_name.len(),
            fnv(&rs_name)
        );
        let mut template = workload["spec"]["template"].clone();
        template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = workload["spec"]["selector"].clone();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        children.push(json!({
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name, "namespace": namespace, "uid": rs_uid,
                "labels": template["metadata"]["labels"].clone(),
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": workload_uid, "controller": true, "blockOwnerDeletion": true}],
            },
            "spec": {"replicas": replicas, "selector": selector, "template": template},
            "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas},
        }));
        let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
            "uid": rs_uid, "controller": true, "blockOwnerDeletion": true});
        (
            owner,
            format!("{rs_name}-"),
            json!({"pod-template-hash": hash}),
        )
    } else {
        let owner = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
            "uid": workload_uid, "controller": true, "blockOwnerDeletion": true});
        (owner, format!("{name}-"), json!({}))
    };
    for index in 0..replicas {
        let pod_name = if kind == "Deployment" {
            format!(
                "{pod_prefix}{:05x}",
                fnv(&format!("{pod_prefix}{index}")) & 0xfffff
            )
        } else {
            format!("{pod_prefix}{index}")
        };
        let template = &workload["spec"]["template"];
        let mut metadata = template["metadata"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        metadata.insert("name".into(), json!(pod_name));
        metadata.insert("namespace".into(), json!(namespace));
        metadata.insert(
            "uid".into(),
            json!(format!(
                "{:08x}-2222-4000-8000-{:012x}",
                index,
                fnv(&pod_name)
            )),
        );
        metadata.insert("ownerReferences".into(), json!([owner.clone()]));
        metadata.insert("creationTimestamp".into(), json!(ROLLOUT_CREATED));
        let mut labels = metadata
            .get("labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(extra) = extra_labels.as_object() {
            labels.extend(extra.clone());
        }
        metadata.insert("labels".into(), Value::Object(labels));
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": Value::Object(metadata),
            "spec": template["spec"].clone(),
        });
        pod["spec"]["nodeName"] = json!(ROLLOUT_NODE);
        if injector && injection_wanted(&pod, namespace_labels) {
            inject_sidecar(&mut pod);
        }
        pod["status"] = running_status(&pod, index);
        children.push(pod);
    }
    children
}

/// Istio's rule: the pod label (or older annotation) `sidecar.istio.io/inject` wins; else the
/// namespace label `istio-injection=enabled` or `istio.io/rev`.
pub fn injection_wanted(pod: &Value, namespace_labels: &Value) -> bool {
    let metadata = &pod["metadata"];
    let per_pod = metadata["labels"]["sidecar.istio.io/inject"]
        .as_str()
        .or_else(|| metadata["annotations"]["sidecar.istio.io/inject"].as_str());
    match per_pod {
        Some("false") => false,
        Some("true") => true,
        _ => {
            namespace_labels["istio-injection"] == "enabled"
                || namespace_labels.get("istio.io/rev").is_some()
        }
    }
}

/// Adds `istio-init` and `istio-proxy` as the injector does, with resources from the
/// `sidecar.istio.io/proxy*` annotations (any one set drops all chart defaults).
pub fn inject_sidecar(pod: &mut Value) {
    let annotations = pod["metadata"]["annotations"].clone();
    let annotation = |key: &str| annotations[key].as_str().map(str::to_string);
    let custom = [
        "sidecar.istio.io/proxyCPU",
        "sidecar.istio.io/proxyMemory",
        "sidecar.istio.io/proxyCPULimit",
        "sidecar.istio.io/proxyMemoryLimit",
    ]
    .iter()
    .any(|key| annotations.get(*key).is_some());
    let resources = if custom {
        let pick = |pairs: [(&str, &str); 2]| -> Map<String, Value> {
            pairs
                .iter()
                .filter_map(|(key, name)| {
                    annotation(key).map(|value| (name.to_string(), json!(value)))
                })
                .collect()
        };
        let requests = pick([
            ("sidecar.istio.io/proxyCPU", "cpu"),
            ("sidecar.istio.io/proxyMemory", "memory"),
        ]);
        let limits = pick([
            ("sidecar.istio.io/proxyCPULimit", "cpu"),
            ("sidecar.istio.io/proxyMemoryLimit", "memory"),
        ]);
        json!({"requests": requests, "limits": limits})
    } else {
        let (cpu, memory, cpu_limit, memory_limit) = DEFAULT_PROXY_RESOURCES;
        json!({"requests": {"cpu": cpu, "memory": memory}, "limits": {"cpu": cpu_limit, "memory": memory_limit}})
    };
    let app_containers: Vec<String> = pod["spec"]["containers"]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .filter_map(|container| container["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let init = json!({
        "name": "istio-init", "image": PROXY_IMAGE,
        "args": ["istio-iptables", "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                 "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020", "--log_output_level=default:info"],
        "resources": resources.clone(),
        "securityContext": {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]}, "runAsUser": 0, "runAsNonRoot": false},
    });
    let proxy = json!({
        "name": "istio-proxy", "image": PROXY_IMAGE,
        "args": ["proxy", "sidecar", "--domain", "$(POD_NAMESPACE).svc.cluster.local",
                 "--proxyLogLevel=warning", "--proxyComponentLogLevel=misc:error", "--log_output_level=default:info"],
        "ports": [{"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
        "env": [
            {"name": "PROXY_CONFIG", "value": annotation("proxy.istio.io/config").unwrap_or_else(|| "{}\n".to_string())},
            {"name": "ISTIO_META_APP_CONTAINERS", "value": app_containers.join(",")},
            {"name": "ISTIO_META_INTERCEPTION_MODE", "value": "REDIRECT"},
        ],
        "resources": resources,
        "readinessProbe": {"httpGet": {"path": "/healthz/ready", "port": 15021, "scheme": "HTTP"}, "periodSeconds": 15, "timeoutSeconds": 3, "failureThreshold": 4},
        "securityContext": {"runAsUser": 1337, "runAsGroup": 1337, "runAsNonRoot": true, "readOnlyRootFilesystem": true},
    });
    let spec = &mut pod["spec"];
    let mut init_containers = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    init_containers.insert(0, init);
    spec["initContainers"] = json!(init_containers);
    if let Some(containers) = spec["containers"].as_array_mut() {
        containers.push(proxy);
    }
    let status = json!({
        "initContainers": ["istio-init"], "containers": ["istio-proxy"],
        "volumes": ["workload-socket", "credential-socket", "workload-certs", "istio-envoy", "istio-data", "istio-podinfo", "istio-token", "istiod-ca-cert"],
        "imagePullSecrets": null, "revision": "default",
    });
    let metadata = &mut pod["metadata"];
    metadata["annotations"]["sidecar.istio.io/status"] = json!(status.to_string());
    metadata["annotations"]["istio.io/rev"] = json!("default");
    metadata["labels"]["security.istio.io/tlsMode"] = json!("istio");
    let canonical = metadata["labels"]["app"]
        .as_str()
        .unwrap_or("workload")
        .to_string();
    metadata["labels"]["service.istio.io/canonical-name"] = json!(canonical);
    metadata["labels"]["service.istio.io/canonical-revision"] = json!("latest");
}

fn running_status(pod: &Value, index: u64) -> Value {
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .map(|containers| {
            containers
                .iter()
                .map(|container| {
                    json!({
                        "name": container["name"], "image": container["image"],
                        "ready": true, "started": true, "restartCount": 0,
                        "state": {"running": {"startedAt": "2025-02-03T09:40:00Z"}},
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "PodScheduled", "status": "True"}],
        "podIP": format!("10.244.1.{}", 100 + index % 150),
        "startTime": ROLLOUT_CREATED,
        "containerStatuses": statuses,
        "qosClass": "Burstable",
    })
}

/// A stable hash for made-up names and uids (FNV-1a).
fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(annotations: Value, pod_labels: Value) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "vllm"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "vllm"}},
                "template": {"metadata": {"labels": pod_labels, "annotations": annotations},
                    "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5"}]}}},
        })
    }

    #[test]
    fn rolls_out_injected_pods_in_an_injection_namespace() {
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "inference", "labels": {"istio-injection": "enabled"}}});
        let objects = roll_out(
            vec![
                namespace,
                deployment(
                    json!({"sidecar.istio.io/proxyCPU": "500m"}),
                    json!({"app": "vllm"}),
                ),
            ],
            "inference",
        );
        let pods: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Pod").collect();
        assert_eq!(pods.len(), 2);
        assert_eq!(
            objects.iter().filter(|o| o["kind"] == "ReplicaSet").count(),
            1
        );
        let proxy = &pods[0]["spec"]["containers"][1];
        assert_eq!(proxy["name"], "istio-proxy");
        assert_eq!(proxy["resources"]["requests"]["cpu"], "500m");
        assert!(
            proxy["resources"]["limits"].get("cpu").is_none(),
            "a custom value drops the defaults"
        );
        assert_eq!(pods[0]["metadata"]["namespace"], "inference");
        assert!(pods[0]["metadata"]["annotations"]["sidecar.istio.io/status"].is_string());
        assert_ne!(pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]);
    }

    #[test]
    fn pod_label_opt_out_wins_and_missing_namespaces_are_created() {
        let objects = roll_out(
            vec![deployment(
                json!({}),
                json!({"app": "vllm", "sidecar.istio.io/inject": "false"}),
            )],
            "plain",
        );
        assert!(
            objects
                .iter()
                .any(|o| o["kind"] == "Namespace" && o["metadata"]["name"] == "plain")
        );
        let pod = objects.iter().find(|o| o["kind"] == "Pod").unwrap();
        assert_eq!(pod["spec"]["containers"].as_array().unwrap().len(), 1);
    }
}
