#![allow(clippy::unwrap_used)]
//! The read-only promise: every command shape against the loopback API server, which records
//! each request, sends only GETs: lists, reads, and the websocket upgrade of `pods/portforward`
//! (a GET as well). Nothing is created, patched or deleted, `--probe` and `--fix` included.
//!
//! Needs Envoy (the cluster's pods are a real Envoy pair in front of the lab server).

mod support;
use support::live_mesh::{LiveMesh, NAMESPACE};

use kubectl_infermesh::lab::ServerConfig;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_shape_only_reads_the_cluster() {
    let lab = ServerConfig {
        tokens_per_second: 200.0,
        ..ServerConfig::default()
    };
    let mesh = LiveMesh::start(lab, |_| {}).await;
    let shapes: [&[&str]; 7] = [
        &["diagnose", "-n", NAMESPACE],
        &["diagnose", "deploy/vllm", "-n", NAMESPACE, "-o", "json"],
        &["diagnose", "-A", "-o", "yaml"],
        &["diagnose", "-A", "--no-envoy", "-o", "markdown"],
        &["diagnose", "deploy/vllm", "-n", NAMESPACE, "--fix"],
        &["diagnose", "deploy/vllm", "-n", NAMESPACE, "--probe"],
        &[
            "probe",
            "deploy/vllm",
            "-n",
            NAMESPACE,
            "--max-tokens",
            "20",
        ],
    ];
    for shape in shapes {
        let before = mesh.api.requests().len();
        let output = mesh.run(shape).await;
        let code = output.status.code();
        assert!(
            matches!(code, Some(0 | 3)),
            "{shape:?} exited {code:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let requests = mesh.api.requests();
        let sent = &requests[before..];
        assert!(!sent.is_empty(), "{shape:?} sent nothing to the API server");
        let writes: Vec<String> = sent
            .iter()
            .filter(|request| request.method != "GET")
            .map(ToString::to_string)
            .collect();
        assert!(
            writes.is_empty(),
            "{shape:?} wrote to the cluster: {writes:#?}"
        );
        let forwards = sent
            .iter()
            .filter(|request| request.path.ends_with("/portforward"))
            .count();
        if shape.contains(&"--probe") || shape[0] == "probe" {
            assert!(forwards > 0, "{shape:?} opened no port-forward");
        }
    }
}
