#![allow(clippy::unwrap_used)]
//! The Gateway API and the Inference Extension read live: the loopback API server serves their
//! groups in discovery and holds the bundled `examples/gateway-api-timeout/` and
//! `examples/inference-pool/` as a cluster holds them after `kubectl apply`. The live diagnosis
//! names the same root cause as the offline one, from objects it listed once per kind; without
//! the CRDs the objects do not exist and nothing is said of them.

mod support;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::apiserver::{ApiServer, ApiServerConfig, load_fixtures};
use tempfile::TempDir;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn example_dir(name: &str) -> PathBuf {
    root().join("examples").join(name)
}

fn nodes() -> Vec<Value> {
    load_fixtures()
        .into_iter()
        .filter(|object| object["kind"] == "Node")
        .collect()
}

fn config(name: &str) -> ApiServerConfig {
    ApiServerConfig::new()
        .with_objects(nodes())
        .with_manifests(&example_dir(name), &format!("llm-{name}"))
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}\n{}", self.stdout, self.stderr))
    }
}

fn run(kubeconfig: Option<&Path>, home: &Path, args: &[&str]) -> Run {
    let mut command = cargo_bin_cmd!("kubectl-infermesh");
    command
        .current_dir(root())
        .args(args)
        .env("HOME", home)
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .timeout(Duration::from_secs(120));
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", home.join("no-kubeconfig")),
    };
    let output = command.output().unwrap();
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    };
    assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
    run
}

/// `diagnose -n llm-NAME -o json --no-envoy` against a server started from `config`, and the
/// list paths it asked for.
fn live(name: &str, config: ApiServerConfig) -> (Run, Vec<String>) {
    let server = ApiServer::start_detached(config);
    let dir = TempDir::new().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    let namespace = format!("llm-{name}");
    let run = run(
        Some(&kubeconfig),
        dir.path(),
        &["diagnose", "-n", &namespace, "-o", "json", "--no-envoy"],
    );
    let requests = server.requests();
    assert!(
        requests.iter().all(|request| request.method == "GET"),
        "read-only: {requests:#?}"
    );
    (
        run,
        requests.into_iter().map(|request| request.path).collect(),
    )
}

fn offline(name: &str) -> Run {
    let dir = TempDir::new().unwrap();
    let folder = format!("{}/", example_dir(name).display());
    run(None, dir.path(), &["diagnose", "-f", &folder, "-o", "json"])
}

fn top(report: &Value) -> &Value {
    &report["targets"][0]["findings"][0]
}

#[test]
fn an_http_route_timeout_is_the_root_cause_live_as_offline() {
    let name = "gateway-api-timeout";
    let (live, paths) = live(name, config(name).gateway_api());
    let offline = offline(name);
    assert_eq!(live.code, offline.code, "{}", live.stderr);
    let (live_report, offline_report) = (live.json(), offline.json());
    assert_eq!(live_report["sources"][0], "cluster");
    for report in [&live_report, &offline_report] {
        let target = &report["targets"][0];
        assert_eq!(target["rootCause"]["id"], "stream-timeout", "{target:#}");
        let finding = top(report);
        assert_eq!(finding["severity"], "critical");
        let line = &finding["evidence"][0];
        assert_eq!(line["object"]["kind"], "HTTPRoute");
        assert_eq!(line["object"]["name"], "llama-3-8b");
        assert_eq!(line["path"], "spec/rules[0]/timeouts/request");
        assert_eq!(line["value"], "60s");
        let fix: serde_yaml::Value =
            serde_yaml::from_str(finding["fix"]["yaml"].as_str().unwrap()).unwrap();
        assert_eq!(fix["spec"]["rules"][0]["timeouts"]["request"], "300s");
    }
    assert!(
        live_report["gaps"].as_array().unwrap().is_empty(),
        "{live_report:#}"
    );
    // One list per Gateway API kind, in all namespaces, found by discovery.
    for plural in [
        "httproutes",
        "gateways",
        "gatewayclasses",
        "grpcroutes",
        "inferencepools",
    ] {
        let lists = paths
            .iter()
            .filter(|path| path.starts_with("/apis/") && path.ends_with(&format!("/{plural}")))
            .count();
        let expected = match plural {
            // Istio's Gateway and the Gateway API's; both inference groups' pools.
            "gateways" | "inferencepools" => 2,
            _ => 1,
        };
        assert_eq!(lists, expected, "{plural}: {paths:#?}");
    }
    assert!(
        paths
            .iter()
            .any(|path| path == "/apis/gateway.networking.k8s.io/v1/httproutes"),
        "{paths:#?}"
    );
}

#[test]
fn without_the_gateway_api_crds_the_route_does_not_exist() {
    let name = "gateway-api-timeout";
    let (live, paths) = live(name, config(name));
    assert_eq!(live.code, 0, "{}", live.stdout);
    let report = live.json();
    assert_eq!(report["targets"][0]["rootCause"], Value::Null, "{report:#}");
    // No gap for groups that are not there: the objects cannot exist.
    assert!(report["gaps"].as_array().unwrap().is_empty(), "{report:#}");
    assert!(
        !paths.iter().any(|path| path.contains("httproutes")),
        "{paths:#?}"
    );
}

#[test]
fn an_endpoint_picker_without_pods_is_the_root_cause_live() {
    let name = "inference-pool";
    let (live, _) = live(name, config(name).gateway_api());
    let offline = offline(name);
    let (live_report, offline_report) = (live.json(), offline.json());
    for (report, basis) in [(&live_report, "effective"), (&offline_report, "static")] {
        let target = &report["targets"][0];
        assert_eq!(target["rootCause"]["id"], "endpoint-picker", "{target:#}");
        let finding = top(report);
        assert_eq!(finding["number"], 6);
        assert_eq!(finding["severity"], "critical");
        assert_eq!(finding["basis"], basis, "{finding:#}");
    }
    // Live, the pods are known: none runs behind the EPP Service.
    let line = &top(&live_report)["evidence"][0];
    assert_eq!(line["object"]["kind"], "Service");
    assert_eq!(line["path"], "endpoints/ready");
    assert_eq!(line["value"], "0 of 0");
    // Offline, the manifests say it is scaled to zero.
    let line = &top(&offline_report)["evidence"][0];
    assert_eq!(line["path"], "spec/replicas");
    assert_eq!(live.code, offline.code);
}
