#![allow(clippy::unwrap_used)]
//! `diagnose -A` on a generated cluster (kept small for CI) whose Envoy admin ports all refuse,
//! as on a locked-down cluster: one port-forward per workload and per gateway at most, and the
//! refusals said once, with a count, in the report and on stderr.

mod support;
use support::apiserver::{ApiServer, ApiServerConfig};
use support::scale_cluster::{self, Shape};

use serde_json::Value;
use std::time::Duration;

const SHAPE: Shape = Shape {
    namespaces: 6,
    deployments: 4,
    replicas: 3,
    other_pods: 30,
    gateway_pods: 2,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusing_admin_ports_cost_one_forward_each_and_one_line_in_all() {
    let api =
        ApiServer::start(ApiServerConfig::new().with_objects(scale_cluster::objects(SHAPE))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
            .args(["diagnose", "-A", "-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("diagnose -A did not finish in time")
    .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("no JSON ({error}); stderr: {stderr}"));
    assert_eq!(
        report["targets"].as_array().unwrap().len(),
        SHAPE.workloads(),
        "{stderr}"
    );

    let forwards = api
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/portforward"))
        .count();
    let gateways = 1;
    assert!(forwards > 0, "no Envoy admin was tried");
    assert!(
        forwards <= SHAPE.workloads() + gateways * SHAPE.gateway_pods,
        "{forwards} port-forwards for {} workloads and one gateway",
        SHAPE.workloads()
    );

    let admin_gaps: Vec<&str> = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|gap| gap["what"] == "Envoy admin")
        .filter_map(|gap| gap["reason"].as_str())
        .collect();
    let sidecars = admin_gaps
        .iter()
        .find(|reason| reason.contains("sidecars"))
        .unwrap_or_else(|| panic!("no aggregated sidecar gap: {:#}", report["gaps"]));
    let expected = format!(
        "on {} of {} sidecars (e.g. ",
        SHAPE.workloads(),
        SHAPE.workloads()
    );
    assert!(sidecars.contains(&expected), "{sidecars}");
    assert!(
        sidecars.ends_with("): counters and effective config not read"),
        "{sidecars}"
    );
    for target in report["targets"].as_array().unwrap() {
        let per_pod = target["gaps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|gap| {
                gap["what"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("Envoy admin of pod")
            })
            .count();
        assert_eq!(per_pod, 0, "said per target too: {:#}", target["gaps"]);
    }
    // The run closes with the summary's counts (stdout is not a terminal): not a warning.
    let counts = format!("{} workloads: ", SHAPE.workloads());
    assert!(
        stderr
            .lines()
            .last()
            .is_some_and(|line| line.starts_with(&counts)),
        "no counts at the end:\n{stderr}"
    );
    let warnings = stderr
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with(&counts))
        .count();
    assert!(
        warnings <= admin_gaps.len(),
        "{warnings} warnings for {} causes:\n{stderr}",
        admin_gaps.len()
    );
}

/// Runs `diagnose -A -o json` against `api`; the report and how long it took.
async fn diagnose_all(api: &ApiServer) -> (Value, Duration, String) {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let started = std::time::Instant::now();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
            .args(["diagnose", "-A", "-o", "json"])
            .env("KUBECONFIG", &kubeconfig)
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("diagnose -A did not finish in time")
    .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let report: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("no JSON ({error}); stderr: {stderr}"));
    (report, took, stderr)
}

/// However the API server ends a refused forward (the kubelet's close, a reset right behind the
/// message, or left open), every sidecar's gap carries the kubelet's message, and the run does
/// not wait for it: well under the 3 s a single poll for the message used to cost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_forward_names_the_kubelets_message_without_waiting() {
    use support::apiserver::RefusedForward;
    for refused in [
        RefusedForward::Close,
        RefusedForward::Reset,
        RefusedForward::KeepOpen,
    ] {
        let api = ApiServer::start(
            ApiServerConfig::new()
                .with_objects(scale_cluster::objects(SHAPE))
                .refused_forwards(refused),
        )
        .await;
        let (report, took, stderr) = diagnose_all(&api).await;
        eprintln!("{refused:?}: diagnose -A took {took:?}");
        let sidecars = report["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|gap| gap["what"] == "Envoy admin")
            .filter_map(|gap| gap["reason"].as_str())
            .find(|reason| reason.contains("sidecars"))
            .unwrap_or_else(|| panic!("{refused:?}: no sidecar gap: {:#}", report["gaps"]));
        // One cause for all of them: a pod whose message was lost would be a cause of its own.
        let all = format!("on {} of {} sidecars", SHAPE.workloads(), SHAPE.workloads());
        assert!(
            sidecars.starts_with(
                "port-forward to port 15000 failed in the pod: error forwarding port 15000 to pod "
            ) && sidecars.contains("connection refused")
                && sidecars.contains(&all),
            "{refused:?}: {sidecars}\n{stderr}"
        );
        assert!(
            took < Duration::from_secs(3),
            "{refused:?}: diagnose -A took {took:?} over {} refusing sidecars",
            SHAPE.workloads()
        );
    }
}

/// 500 workloads as a table: it opens with 500 summary lines, one per workload, and details
/// only the workloads at or above --fail-on; the counts close the run on stderr.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_workload_table_opens_with_500_summary_lines_and_details_only_what_fails() {
    const WIDE: Shape = Shape {
        namespaces: 100,
        deployments: 5,
        replicas: 1,
        other_pods: 0,
        gateway_pods: 1,
    };
    let api =
        ApiServer::start(ApiServerConfig::new().with_objects(scale_cluster::objects(WIDE))).await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let table = |fail_on: &'static str| {
        let kubeconfig = kubeconfig.clone();
        async move {
            let output = tokio::time::timeout(
                Duration::from_secs(120),
                tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
                    .args(["diagnose", "-A", "--no-envoy", "--fail-on", fail_on])
                    .env("KUBECONFIG", &kubeconfig)
                    .env_remove("RUST_LOG")
                    .kill_on_drop(true)
                    .output(),
            )
            .await
            .expect("diagnose -A did not finish in time")
            .unwrap();
            (
                String::from_utf8(output.stdout).unwrap(),
                String::from_utf8(output.stderr).unwrap(),
            )
        }
    };

    let (stdout, stderr) = table("critical").await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("Expected generation"), "{stdout}");
    assert!(lines[2].starts_with("NAMESPACE   WORKLOAD"), "{}", lines[2]);
    let rows = &lines[3..3 + WIDE.workloads()];
    assert!(
        rows.iter()
            .all(|row| row.starts_with("team-") && row.contains(" deploy/llm-")),
        "{stdout}"
    );
    assert_eq!(
        lines[3 + WIDE.workloads()],
        "",
        "one line per workload:\n{stdout}"
    );
    // Every workload's worst is a warning (sidecar overhead on a GPU pod): none is detailed.
    assert!(
        stdout.contains("Details below: 0 at or above --fail-on critical; 500 not shown"),
        "{stdout}"
    );
    assert!(!stdout.contains("Root cause:"), "{stdout}");
    assert!(
        stderr
            .trim_end()
            .ends_with("500 workloads: 500 warning; sidecar-overhead 500"),
        "{stderr}"
    );

    let (stdout, _) = table("warning").await;
    assert_eq!(
        stdout.matches("\nRoot cause:").count(),
        WIDE.workloads(),
        "at or above --fail-on warning, every one is detailed"
    );
    assert!(!stdout.contains("not shown"), "{stdout}");
}
