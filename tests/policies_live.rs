#![allow(clippy::unwrap_used)]
//! Policies and scale that bear on the judgement, read live as offline: the loopback API server
//! holds an AuthorizationPolicy on the vLLM pods and a HorizontalPodAutoscaler on their
//! Deployment (`tests/fixtures/policies/`). Both diagnoses keep the sidecar (only it enforces
//! the policy) and judge the caller's pool against the autoscaler's maximum.

mod support;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::apiserver::{ApiServer, ApiServerConfig};
use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/policies")
}

fn diagnose(kubeconfig: Option<&Path>, home: &Path, args: &[&str]) -> Value {
    let mut command = cargo_bin_cmd!("kubectl-infermesh");
    command
        .args(args)
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env(
            "KUBECONFIG",
            kubeconfig.map_or_else(|| home.join("no-kubeconfig"), Path::to_path_buf),
        )
        .timeout(Duration::from_secs(120));
    let output = command.output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    serde_json::from_str(&stdout)
        .unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}\n{stderr}"))
}

fn assert_judged_with_policy_and_autoscaler(report: &Value) {
    let target = &report["targets"][0];
    assert_eq!(target["meshNeed"], "sidecar-needed", "{target:#}");
    let pool = target["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| finding["id"] == "connection-pool")
        .unwrap_or_else(|| panic!("{target:#}"));
    assert_eq!(pool["severity"], "warning", "{pool:#}");
    assert!(
        pool["title"].as_str().unwrap().contains("10 × 64 = 640"),
        "{pool:#}"
    );
}

#[test]
fn an_authorization_policy_and_an_autoscaler_are_read_live_as_offline() {
    let home = TempDir::new().unwrap();
    let folder = format!("{}/", fixtures().display());
    let offline = diagnose(
        None,
        home.path(),
        &["diagnose", "-f", &folder, "-o", "json"],
    );
    assert_judged_with_policy_and_autoscaler(&offline);

    let server = ApiServer::start_detached(
        ApiServerConfig::new().with_manifests(&fixtures(), "llm-policies"),
    );
    let kubeconfig = server.write_kubeconfig(home.path());
    let live = diagnose(
        Some(&kubeconfig),
        home.path(),
        &["diagnose", "-n", "llm-policies", "-o", "json", "--no-envoy"],
    );
    assert_judged_with_policy_and_autoscaler(&live);
    let paths: Vec<String> = server
        .requests()
        .into_iter()
        .map(|request| request.path)
        .collect();
    assert!(
        paths
            .iter()
            .any(|path| path.contains("/apis/autoscaling/v2/")
                && path.ends_with("horizontalpodautoscalers")),
        "{paths:#?}"
    );
    assert!(
        paths
            .iter()
            .any(|path| path.ends_with("/authorizationpolicies")),
        "{paths:#?}"
    );
}
