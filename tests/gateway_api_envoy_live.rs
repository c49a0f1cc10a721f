#![allow(clippy::unwrap_used)]
//! The Gateway API rows of the real-Envoy matrix by the live path: the loopback API server
//! serves the Gateway API and the Inference Extension in discovery and holds a Gateway of class
//! `istio`, its proxy pod, an HTTPRoute `inference/llama-8b` and (for the picker rows) an
//! InferencePool with its endpoint picker; the gateway pod's listener (80) is port-forwarded to
//! the client Envoy's listener and its 15000 to the client Envoy's admin, the vLLM pod's 8000 to
//! the lab server and its 15000 to the server Envoy's admin. `diagnose deploy/vllm` finds every
//! Envoy itself, from the objects it listed. `tests/envoy_scenarios.rs` runs the same rows
//! through the admin URLs alone.

mod support;

use kubectl_infermesh::lab::ServerConfig;
use kubectl_infermesh::lab::envoy::bootstrap::{ClientBootstrap, ExtProcKnobs};
use serde_json::Value;
use std::time::Duration;
use support::envoy_traffic::{completion, post, wait_for_stat};
use support::gateway_api_mesh::{Backend, GATEWAY_API_POD, HTTP_ROUTE, gateway_api_objects};
use support::live_mesh::{LiveMesh, NAMESPACE};

/// A port nothing listens on: the endpoint picker is gone.
fn closed_port() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

async fn start(
    lab: ServerConfig,
    configure: impl FnOnce(&mut ClientBootstrap),
    objects: Vec<Value>,
) -> LiveMesh {
    LiveMesh::start_holding(
        lab,
        configure,
        |config| config.gateway_api(),
        objects,
        GATEWAY_API_POD,
    )
    .await
}

/// `diagnose deploy/vllm -n inference -o json` on the cluster: exit code and report.
async fn diagnose(mesh: &LiveMesh) -> (i32, Value) {
    let output = mesh
        .run(&["diagnose", "deploy/vllm", "-n", NAMESPACE, "-o", "json"])
        .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), report)
}

/// The gateway pod was read as the client side, through a port-forward, with its counters.
fn assert_gateway_envoy_read(report: &Value) {
    let envoys = report["targets"][0]["envoys"].as_array().unwrap();
    let gateway = format!("{NAMESPACE}/{}", GATEWAY_API_POD.name);
    let read = envoys
        .iter()
        .find(|envoy| envoy["pod"] == gateway.as_str())
        .unwrap_or_else(|| panic!("the gateway pod was not read: {envoys:#?}"));
    assert_eq!(read["role"], "client", "{read:#}");
    assert!(
        read["source"].as_str().unwrap().contains("port-forward"),
        "{read:#}"
    );
    assert_eq!(read["counters"], true, "{read:#}");
    assert_eq!(read["gaps"], serde_json::json!([]), "{read:#}");
}

fn root(report: &Value) -> (&str, &str, &str) {
    let root = &report["targets"][0]["rootCause"];
    let finding = &report["targets"][0]["findings"][0];
    (
        root["id"].as_str().unwrap_or("none"),
        root["basis"].as_str().unwrap_or("none"),
        finding["severity"].as_str().unwrap_or("none"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_route_timeout_on_the_gateway_envoy_is_the_root_cause_live() {
    let mesh = start(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client| {
            client.knobs.route_timeout = Duration::from_secs(1);
            client.http_route = Some(HTTP_ROUTE.to_string());
        },
        gateway_api_objects(Some("1s"), Backend::Service),
    )
    .await;
    // 100 tokens at 20/s take 5 s; the route Istio wrote for the rule allows 1 s.
    let reply = post(mesh.pair.entry, completion(100, true)).await;
    assert_eq!(reply.status, 200);
    assert!(!reply.completed_stream(), "cut: {}", reply.body);
    wait_for_stat(&mesh.pair.client, ".upstream_rq_timeout", 1).await;

    let (code, report) = diagnose(&mesh).await;
    assert_eq!(code, 3, "{report:#}");
    assert_gateway_envoy_read(&report);
    assert_eq!(
        root(&report),
        ("stream-timeout", "runtime", "critical"),
        "{report:#}"
    );
    let finding = &report["targets"][0]["findings"][0];
    let lines = finding["evidence"].as_array().unwrap();
    assert!(
        lines.iter().any(|line| line["path"]
            .as_str()
            .unwrap()
            .contains("routes[inference.llama-8b.0]/route/timeout")
            && line["value"] == "1s"),
        "the gateway's effective route: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["object"]["kind"] == "HTTPRoute"
                && line["object"]["name"] == HTTP_ROUTE
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
    let fix: serde_yaml::Value =
        serde_yaml::from_str(finding["fix"]["yaml"].as_str().unwrap()).unwrap();
    assert_eq!(fix["kind"], "HTTPRoute", "{fix:?}");
    assert_eq!(fix["spec"]["rules"][0]["timeouts"]["request"], "300s");
    assert!(
        mesh.api
            .requests()
            .iter()
            .all(|request| request.method == "GET"),
        "read-only"
    );
}

/// The lab behind a gateway Envoy whose ext_proc filter dials a closed port, an InferencePool
/// with `failure_mode` in front of the vLLM pods (its picker's pod Ready, as the API server says),
/// and one request through the gateway.
async fn unreachable_picker(failure_mode_allow: bool) -> (LiveMesh, support::envoy_traffic::Reply) {
    let processor = closed_port();
    let failure_mode = if failure_mode_allow {
        "FailOpen"
    } else {
        "FailClose"
    };
    let mesh = start(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |client| {
            client.knobs.ext_proc = Some(ExtProcKnobs {
                processor,
                failure_mode_allow,
            });
            client.http_route = Some(HTTP_ROUTE.to_string());
        },
        gateway_api_objects(Some("0s"), Backend::Pool { failure_mode }),
    )
    .await;
    let reply = post(mesh.pair.entry, completion(20, true)).await;
    wait_for_stat(&mesh.pair.client, ".ext_proc.streams_failed", 1).await;
    (mesh, reply)
}

/// The finding of the gateway's ext_proc filter, and its evidence lines.
fn filter_finding(report: &Value) -> &Value {
    report["targets"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|finding| {
            finding["id"] == "endpoint-picker"
                && finding["evidence"].as_array().unwrap().iter().any(|line| {
                    line["path"]
                        .as_str()
                        .unwrap()
                        .ends_with("ext_proc.streams_failed")
                })
        })
        .unwrap_or_else(|| panic!("no ext_proc finding: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_picker_that_fails_closed_is_the_root_cause_live() {
    let (mesh, reply) = unreachable_picker(false).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    assert_eq!(mesh.pair.lab.served().finished, 0, "vLLM never saw it");

    let (code, report) = diagnose(&mesh).await;
    assert_eq!(code, 3, "{report:#}");
    assert_gateway_envoy_read(&report);
    assert_eq!(
        root(&report),
        ("endpoint-picker", "runtime", "critical"),
        "{report:#}"
    );
    let finding = filter_finding(&report);
    let lines = finding["evidence"].as_array().unwrap();
    assert!(
        lines.iter().any(|line| line["path"]
            .as_str()
            .unwrap()
            .ends_with("failure_mode_allow")
            && line["value"] == "false"),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_picker_that_fails_open_is_a_warning_live() {
    let (mesh, reply) = unreachable_picker(true).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.completed_stream(), "{}", reply.body);
    wait_for_stat(&mesh.pair.client, ".ext_proc.failure_mode_allowed", 1).await;

    let (code, report) = diagnose(&mesh).await;
    assert_gateway_envoy_read(&report);
    assert_eq!(
        root(&report),
        ("endpoint-picker", "runtime", "warning"),
        "{report:#}"
    );
    assert_eq!(
        (code, &report["failOn"]),
        (0, &Value::from("critical")),
        "a warning is under the default --fail-on: {report:#}"
    );
}

/// `diagnose --probe` through a gateway whose picker is gone and fails closed: the direct path
/// (a port-forward to vLLM's port) streams, the mesh path (the gateway pod's listener) is
/// answered 500 while the filter's `streams_failed` moves, and the probe is the runtime proof
/// that names the endpoint picker; no request ran through the gateway before the probe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_proves_a_refusing_picker_while_the_direct_path_streams() {
    let processor = closed_port();
    let mesh = start(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |client| {
            client.knobs.ext_proc = Some(ExtProcKnobs {
                processor,
                failure_mode_allow: false,
            });
            client.http_route = Some(HTTP_ROUTE.to_string());
        },
        gateway_api_objects(
            Some("0s"),
            Backend::Pool {
                failure_mode: "FailClose",
            },
        ),
    )
    .await;
    let run = mesh.diagnose().await;
    assert_eq!(run.code, 3, "{}", run.dump());
    let root = run.root_cause();
    assert_eq!(
        (&root["id"], &root["basis"], &root["severity"]),
        (
            &Value::from("endpoint-picker"),
            &Value::from("runtime"),
            &Value::from("critical")
        ),
        "{}",
        run.dump()
    );
    let findings = run.target()["findings"].as_array().unwrap();
    let proof = findings
        .iter()
        .find(|finding| {
            finding["id"] == "endpoint-picker"
                && finding["evidence"][0]["object"]["kind"] == "Probe"
        })
        .unwrap_or_else(|| panic!("no probe finding: {}", run.dump()));
    let lines = proof["evidence"].as_array().unwrap();
    assert_eq!(lines[0]["path"], "mesh/stream/status", "{lines:#?}");
    assert_eq!(lines[0]["value"], "500", "{lines:#?}");
    assert!(
        lines.iter().any(|line| line["path"]
            .as_str()
            .unwrap()
            .ends_with("ext_proc.streams_failed")),
        "the counter that moved while the mesh stream ran: {lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|line| line["path"] == "direct/stream/end" && line["value"] == "done"),
        "{lines:#?}"
    );
    let title = proof["title"].as_str().unwrap();
    assert!(title.contains("answered 500"), "{title}");
    // The probe ran the mesh path through the Gateway API gateway pod.
    let stream = run
        .probes()
        .iter()
        .find(|probe| probe["planned"]["mode"]["kind"] == "stream")
        .unwrap_or_else(|| panic!("no stream run: {}", run.dump()));
    let cluster = &stream["report"]["cluster"];
    assert_eq!(
        cluster["mesh"]["pod"],
        format!("Pod {NAMESPACE}/{}", GATEWAY_API_POD.name),
        "{cluster:#}"
    );
    // The lab saw only the direct path's requests.
    assert!(mesh.pair.lab.served().finished > 0);
    // Offline, the saved probe runs decide the same.
    let replayed = run.replayed_offline().await;
    assert_eq!(
        replayed["targets"][0]["rootCause"]["id"], "endpoint-picker",
        "{replayed:#}"
    );
}
