#![allow(clippy::unwrap_used)]
//! Ambient mode by the live path: the loopback API server holds an ambient namespace (no sidecar
//! in the vLLM pod), ztunnel's DaemonSet and its pod on the GPU node, and (with a waypoint) a
//! Gateway of class `istio-waypoint`, its pod and a mesh HTTPRoute (parent: the Service). A real
//! Envoy plays the waypoint (its cluster named `inbound-vip|8000|http|…`, its route as Istio names
//! the HTTPRoute's rule): the waypoint pod's 15000 is port-forwarded to its admin.
//! `diagnose deploy/vllm` finds the waypoint from the labels and reads it.

mod support;

use kubectl_infermesh::lab::ServerConfig;
use kubectl_infermesh::lab::envoy::bootstrap::{
    ClientBootstrap, LAB_PORT, MeshCertificates, ServerBootstrap,
};
use serde_json::Value;
use std::time::Duration;
use support::ambient_mesh::{
    INGRESS_NAMESPACE, INGRESS_POD, INGRESS_ROUTE, MESH_ROUTE, SHARED_WAYPOINT_POD, WAYPOINT,
    WAYPOINT_NAMESPACE, WAYPOINT_POD, ZTUNNEL_POD, ambient_ingress_objects, ambient_objects,
    shared_waypoint_objects,
};
use support::apiserver::{ApiServer, ApiServerConfig};
use support::envoy_pair::start_listening;
use support::envoy_traffic::{admin_addr, completion, post, wait_for_stat};
use support::live_mesh::{GatewayPod, LiveMesh, NAMESPACE, run_binary, vllm_pod_name};

/// `probe` of the vLLM Deployment, a short generation, the report as JSON.
const PROBE: [&str; 8] = [
    "probe",
    "deploy/vllm",
    "-n",
    NAMESPACE,
    "-o",
    "json",
    "--max-tokens",
    "8",
];

/// Envoy's admin port in every Istio proxy pod.
const ENVOY_ADMIN: u16 = 15000;

async fn start(waypoint: bool, timeout: Option<&str>, route_timeout: Duration) -> LiveMesh {
    start_waypoint(
        ambient_objects(waypoint, timeout),
        WAYPOINT_POD,
        route_timeout,
    )
    .await
}

/// The cluster `objects` whose waypoint pod `pod` the client Envoy plays, its route (the mesh
/// HTTPRoute's rule 0) with `route_timeout`.
async fn start_waypoint(objects: Vec<Value>, pod: GatewayPod, route_timeout: Duration) -> LiveMesh {
    LiveMesh::start_holding(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client| {
            client.knobs.route_timeout = route_timeout;
            client.http_route = Some(MESH_ROUTE.to_string());
            client.waypoint = true;
        },
        |config| config.gateway_api(),
        objects,
        pod,
    )
    .await
}

async fn diagnose(mesh: &LiveMesh) -> (i32, Value) {
    let output = mesh
        .run(&["diagnose", "deploy/vllm", "-n", NAMESPACE, "-o", "json"])
        .await;
    (output.status.code().unwrap_or(-1), json_of(&output))
}

/// The JSON report a run printed; not JSON fails the test with both streams.
fn json_of(output: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The target names the waypoint of `pod` and its Envoy was read in the waypoint role.
fn read_waypoint(report: &Value, pod: GatewayPod) -> &Value {
    let target = &report["targets"][0];
    assert_eq!(
        target["target"]["ambient"]["waypoint"],
        format!("{}/{WAYPOINT}", pod.namespace),
        "{report:#}"
    );
    let waypoint = target["envoys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|envoy| envoy["pod"] == format!("{}/{}", pod.namespace, pod.name))
        .unwrap_or_else(|| panic!("the waypoint pod was not read: {report:#}"));
    assert_eq!(waypoint["role"], "waypoint", "{waypoint:#}");
    waypoint
}

fn findings(report: &Value) -> &Vec<Value> {
    report["targets"][0]["findings"].as_array().unwrap()
}

/// No sidecar finding: check 1 says only, as an info, that the pods are ambient, citing ztunnel.
fn assert_no_sidecar_finding(report: &Value) {
    let overhead: Vec<&Value> = findings(report)
        .iter()
        .filter(|finding| finding["id"] == "sidecar-overhead")
        .collect();
    assert_eq!(overhead.len(), 1, "{report:#}");
    assert_eq!(overhead[0]["severity"], "info", "{report:#}");
    let title = overhead[0]["title"].as_str().unwrap();
    assert!(title.contains("are ambient: no sidecar"), "{title}");
    assert!(
        overhead[0]["evidence"]
            .as_array()
            .unwrap()
            .iter()
            .any(|line| line["object"]["name"] == ZTUNNEL_POD && line["value"] == "200m"),
        "ztunnel's request on the GPU node: {:#}",
        overhead[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mesh_http_route_timeout_in_the_waypoint_is_the_root_cause_live() {
    let mesh = start(true, Some("1s"), Duration::from_secs(1)).await;
    // 100 tokens at 20/s take 5 s; the route Istio wrote in the waypoint allows 1 s.
    let reply = post(mesh.pair.entry, completion(100, true)).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.completed_stream(), "cut: {}", reply.body);
    wait_for_stat(&mesh.pair.client, ".upstream_rq_timeout", 1).await;

    let (code, report) = diagnose(&mesh).await;
    assert_eq!(code, 3, "{report:#}");
    let target = &report["targets"][0];
    assert_eq!(target["target"]["sidecarMode"], "ambient", "{report:#}");
    // The waypoint pod was read, through a port-forward, in the waypoint role.
    let waypoint = read_waypoint(&report, WAYPOINT_POD);
    assert_eq!(waypoint["counters"], true, "{waypoint:#}");
    let envoys = target["envoys"].as_array().unwrap();
    // The vLLM pod has no sidecar: no admin read of it.
    assert!(
        envoys
            .iter()
            .all(|envoy| envoy["pod"] != format!("{NAMESPACE}/{}", mesh.vllm_pod)),
        "{envoys:#?}"
    );
    let root = &target["rootCause"];
    assert_eq!(root["id"], "stream-timeout", "{report:#}");
    assert_eq!(root["basis"], "runtime", "{report:#}");
    let finding = &findings(&report)[0];
    assert_eq!(finding["severity"], "critical", "{report:#}");
    let lines = finding["evidence"].as_array().unwrap();
    assert!(
        lines.iter().any(
            |line| line["path"].as_str().unwrap().contains("route/timeout")
                && line["value"] == "1s"
        ),
        "the waypoint's effective route: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["object"]["kind"] == "HTTPRoute"
                && line["object"]["name"] == MESH_ROUTE
                && line["path"] == "spec/rules[0]/timeouts/request"),
        "the HTTPRoute it came from: {lines:#?}"
    );
    assert!(
        lines.iter().any(|line| line["path"]
            .as_str()
            .unwrap()
            .ends_with("upstream_rq_timeout")),
        "the counter that moved: {lines:#?}"
    );
    assert_no_sidecar_finding(&report);
    assert!(
        mesh.api
            .requests()
            .iter()
            .all(|request| request.method == "GET"),
        "read-only"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_ambient_service_exits_0_with_no_sidecar_finding_live() {
    let mesh = start(false, None, Duration::ZERO).await;
    let (code, report) = diagnose(&mesh).await;
    assert_eq!(code, 0, "{report:#}");
    let target = &report["targets"][0];
    assert_eq!(target["target"]["sidecarMode"], "ambient", "{report:#}");
    assert!(
        target["target"]["ambient"].get("waypoint").is_none(),
        "{report:#}"
    );
    assert!(
        findings(&report)
            .iter()
            .all(|finding| finding["severity"] == "info"),
        "{report:#}"
    );
    assert_no_sidecar_finding(&report);
    // ztunnel's DaemonSet was listed by its label, in every namespace.
    assert!(
        mesh.api.requests().iter().any(|request| request
            .path
            .starts_with("/apis/apps/v1/daemonsets")
            && request.query.contains("labelSelector=app%3Dztunnel")),
        "{:#?}",
        mesh.api.requests()
    );
}

/// The ambient cluster with a Gateway API ingress in `gateways` (outside `-n inference`) in
/// front, whose Envoy reaches the vLLM pod over HBONE: the pair's server Envoy plays the pod's
/// ztunnel. The lab server takes `warmup` before its first token.
async fn start_ingress(waypoint: bool, warmup: Duration) -> LiveMesh {
    LiveMesh::start_both(
        ServerConfig {
            tokens_per_second: 20.0,
            warmup_delay: warmup,
            ..ServerConfig::default()
        },
        |client, server| {
            client.hbone = true;
            server.hbone = true;
        },
        |config| config.gateway_api(),
        ambient_ingress_objects(waypoint, false),
        INGRESS_POD,
    )
    .await
}

/// `diagnose --probe` in ambient mode: the direct path is a port-forward to the vLLM pod, the
/// mesh path enters at the ingress gateway (its pods listed in their own namespace), and the
/// first request through it opens the HBONE connection: a cold pod is proven the root cause,
/// with the tunnel's handshake among the evidence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_ambient_pod_is_proven_through_the_gateway_with_the_hbone_handshake_live() {
    let mesh = start_ingress(false, Duration::from_secs(3)).await;
    let diagnosis = mesh.diagnose().await;
    let dump = diagnosis.dump();
    assert_eq!(
        diagnosis.target()["target"]["sidecarMode"],
        "ambient",
        "{dump}"
    );
    let root = diagnosis.root_cause();
    assert_eq!(root["id"], "cold-start", "{dump}");
    assert_eq!(root["basis"], "runtime", "{dump}");
    let cold = diagnosis.probes()[0]["report"]["cold"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(cold[0]["path"], "mesh", "{dump}");
    let cluster = &diagnosis.probes()[0]["report"]["cluster"];
    assert_eq!(
        cluster["mesh"]["pod"],
        format!("Pod {INGRESS_NAMESPACE}/{}", INGRESS_POD.name),
        "{cluster:#}"
    );
    assert_eq!(
        cluster["direct"]["pod"],
        format!("Pod {NAMESPACE}/{}", mesh.vllm_pod),
        "{cluster:#}"
    );
    let proven = findings(&diagnosis.report)
        .iter()
        .find(|finding| finding["id"] == "cold-start" && finding["basis"] == "runtime")
        .unwrap();
    let lines = proven["evidence"].as_array().unwrap();
    let tunnel = lines
        .iter()
        .find(|line| line["path"] == "cluster.connect_originate.ssl.handshake")
        .unwrap_or_else(|| panic!("the HBONE handshake is evidence: {lines:#?}"));
    assert_eq!(tunnel["value"], "+1", "{tunnel:#}");
    assert!(
        tunnel["note"]
            .as_str()
            .unwrap()
            .contains("new HBONE connection"),
        "{tunnel:#}"
    );
    // The gateway pods were listed in their own namespace, by their Gateway's name.
    assert!(
        mesh.api.requests().iter().any(|request| request.path
            == format!("/api/v1/namespaces/{INGRESS_NAMESPACE}/pods")
            && request
                .query
                .contains("gateway.networking.k8s.io%2Fgateway-name%3Dpublic")),
        "{:#?}",
        mesh.api.requests()
    );
    assert!(
        mesh.api
            .requests()
            .iter()
            .all(|request| request.method == "GET" || request.path.ends_with("/portforward")),
        "read-only"
    );
}

/// With a waypoint that ingress traffic does not use (no `istio.io/ingress-use-waypoint`), the
/// probe says the path it measured goes past the waypoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_says_when_the_gateway_goes_past_the_waypoint_live() {
    let mesh = start_ingress(true, Duration::ZERO).await;
    let output = mesh.run(&PROBE).await;
    let report = json_of(&output);
    let gaps = report["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|gap| {
            let gap = gap["reason"].as_str().unwrap();
            gap.contains(&format!("past waypoint {NAMESPACE}/{WAYPOINT}"))
                && gap.contains("istio.io/ingress-use-waypoint")
        }),
        "{report:#}"
    );
    assert_eq!(
        report["cluster"]["mesh"]["pod"],
        format!("Pod {INGRESS_NAMESPACE}/{}", INGRESS_POD.name),
        "{report:#}"
    );
}

/// A waypoint shared from another namespace: `diagnose -n inference` lists its pods there by the
/// Gateway's name and reads its Envoy, whose route timeout is the root cause.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waypoint_in_another_namespace_is_found_and_read_under_n_live() {
    let mesh = start_waypoint(
        shared_waypoint_objects(Some("1s")),
        SHARED_WAYPOINT_POD,
        Duration::from_secs(1),
    )
    .await;
    let reply = post(mesh.pair.entry, completion(100, true)).await;
    assert!(!reply.completed_stream(), "cut: {}", reply.body);
    wait_for_stat(&mesh.pair.client, ".upstream_rq_timeout", 1).await;

    let (code, report) = diagnose(&mesh).await;
    assert_eq!(code, 3, "{report:#}");
    let target = &report["targets"][0];
    read_waypoint(&report, SHARED_WAYPOINT_POD);
    assert_eq!(target["rootCause"]["id"], "stream-timeout", "{report:#}");
    assert_eq!(target["rootCause"]["basis"], "runtime", "{report:#}");
    assert!(
        mesh.api.requests().iter().any(|request| request.path
            == format!("/api/v1/namespaces/{WAYPOINT_NAMESPACE}/pods")
            && request
                .query
                .contains("gateway.networking.k8s.io%2Fgateway-name%3Dwaypoint")),
        "{:#?}",
        mesh.api.requests()
    );
}

/// The whole ambient L7 path with three real Envoys, HBONE on both hops: the ingress gateway
/// tunnels to the waypoint (the Service carries `istio.io/ingress-use-waypoint: "true"`), which
/// terminates it (`connect_terminate` → `main_internal`), routes, and tunnels on to the pod's
/// ztunnel. `probe` reads both Envoys' counters: each one's tunnel opens for the mesh request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_reads_the_waypoint_when_ingress_goes_through_it_live() {
    let lab = kubectl_infermesh::lab::spawn(ServerConfig {
        tokens_per_second: 200.0,
        ..ServerConfig::default()
    })
    .await
    .unwrap();
    let certificates = MeshCertificates::generate().unwrap();
    let mut ztunnel = ServerBootstrap::new(lab.addr());
    ztunnel.mtls = Some(certificates.clone());
    ztunnel.hbone = true;
    let (_ztunnel_envoy, ztunnel_addr) =
        start_listening("ztunnel", ztunnel.to_json(), &ztunnel.listener_name()).await;
    let mut waypoint = ClientBootstrap::new(ztunnel_addr);
    waypoint.mtls = Some(certificates.clone());
    waypoint.hbone = true;
    waypoint.hbone_inbound = true;
    waypoint.waypoint = true;
    waypoint.http_route = Some(MESH_ROUTE.to_string());
    let (waypoint_envoy, waypoint_addr) =
        start_listening("waypoint", waypoint.to_json(), &waypoint.listener_name()).await;
    let mut gateway = ClientBootstrap::new(waypoint_addr);
    gateway.mtls = Some(certificates);
    gateway.hbone = true;
    gateway.http_route = Some(INGRESS_ROUTE.to_string());
    let (gateway_envoy, gateway_addr) =
        start_listening("gateway", gateway.to_json(), &gateway.listener_name()).await;

    let objects = ambient_ingress_objects(true, true);
    let vllm_pod = vllm_pod_name(&objects);
    let config = ApiServerConfig::new()
        .gateway_api()
        .with_objects(objects)
        .port_forward(NAMESPACE, &vllm_pod, LAB_PORT, lab.addr())
        .port_forward(
            INGRESS_POD.namespace,
            INGRESS_POD.name,
            INGRESS_POD.listener,
            gateway_addr,
        )
        .port_forward(
            INGRESS_POD.namespace,
            INGRESS_POD.name,
            ENVOY_ADMIN,
            admin_addr(&gateway_envoy),
        )
        .port_forward(
            WAYPOINT_POD.namespace,
            WAYPOINT_POD.name,
            ENVOY_ADMIN,
            admin_addr(&waypoint_envoy),
        );
    let api = ApiServer::start(config).await;
    let dir = tempfile::TempDir::new().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let output = run_binary(&PROBE, &kubeconfig, &[]).await;
    let report = json_of(&output);
    let sources: Vec<&str> = report["counterSources"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let waypoint_source = format!("pod/{} (waypoint)", WAYPOINT_POD.name);
    assert!(
        sources.contains(&format!("pod/{} (gateway)", INGRESS_POD.name).as_str())
            && sources.contains(&waypoint_source.as_str()),
        "{report:#}"
    );
    for source in [
        waypoint_source.clone(),
        format!("pod/{} (gateway)", INGRESS_POD.name),
    ] {
        let tunnel = report["counterDeltas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|delta| {
                delta["source"] == source.as_str()
                    && delta["name"] == "cluster.connect_originate.ssl.handshake"
            })
            .unwrap_or_else(|| {
                panic!("{source}: its tunnel opened for the mesh request: {report:#}")
            });
        assert_eq!(tunnel["path"], "mesh", "{tunnel:#}");
        assert_eq!(tunnel["delta"], 1.0, "{tunnel:#}");
    }
    assert!(
        report["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|gap| !gap["reason"].as_str().unwrap().contains("past waypoint")),
        "{report:#}"
    );
    assert_eq!(lab.served().finished, 2, "one request per path");
}
