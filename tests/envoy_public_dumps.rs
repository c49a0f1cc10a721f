#![allow(clippy::unwrap_used)]
//! Real Envoy output that others saved and published, and captures of Envoy 1.40
//! (tests/fixtures/envoy/public and captured, each README says where from): an Envoy Gateway
//! proxy in every form `egctl` and the admin API save it, a plain Envoy gateway, an Istio 1.18
//! sidecar with PERMISSIVE chains and null-VM Wasm, a sidecar whose inbound listener Envoy
//! refused, and the Istio docs' circuit-breaking stats.

use kubectl_infermesh::checks::proxy::{buffers, tls};
use kubectl_infermesh::evidence::envoy::config::{ClusterConfig, Origin, RejectedKind};
use kubectl_infermesh::evidence::envoy::names::{ControlPlane, control_plane};
use kubectl_infermesh::sources::envoy::reading::EnvoyReading;
use kubectl_infermesh::sources::envoy::{attach, config_dump, discover};
use serde_json::Value;
use std::time::Duration;

fn path(name: &str) -> String {
    format!("{}/tests/fixtures/envoy/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> String {
    let path = path(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

const EG_CLUSTER: &str = "default-backend-rule-0-match-0-www.example.com";

/// `diagnose --envoy-dump FILE… -o json` and its exit code.
fn diagnose(files: &[&str], extra: &[&str]) -> (i32, Value) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
    command.arg("diagnose");
    for file in files {
        command.args(["--envoy-dump", &path(file)]);
    }
    let output = command
        .args(extra)
        .args(["-o", "json"])
        .env("KUBECONFIG", "/nonexistent/infermesh-test-kubeconfig")
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let document = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output.status.code().unwrap_or(-1), document)
}

#[test]
fn envoy_gateway_proxy_reads_alike_in_every_saved_form() {
    let forms = [
        "public/eg-quickstart-config-dump.json",
        "public/eg-quickstart-egctl-all.json",
        "public/eg-quickstart-egctl-all.yaml",
    ];
    let mut configs = Vec::new();
    for form in forms {
        let config =
            config_dump::parse(&fixture(form)).unwrap_or_else(|error| panic!("{form}: {error}"));
        let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        assert!(names.contains(&EG_CLUSTER), "{form}: {names:?}");
        let cluster = config.cluster(EG_CLUSTER).unwrap();
        assert_eq!(cluster.connect_timeout.value.text, "5s", "{form}");
        assert_eq!(cluster.connect_timeout.origin, Origin::Configured, "{form}");
        assert_eq!(
            cluster.endpoints,
            vec!["10.96.159.190:3000".to_string()],
            "{form}"
        );
        // Envoy Gateway writes no route timeout unless an HTTPRoute or policy asks.
        let route = config
            .routes()
            .find(|view| view.route.target.clusters() == vec![EG_CLUSTER])
            .unwrap();
        assert_eq!(route.route.timeout.origin, Origin::EnvoyDefault, "{form}");
        assert_eq!(route.route.timeout.value.value, Duration::from_secs(15));
        assert!(!config.listeners.is_empty(), "{form}");
        assert_eq!(
            control_plane(&config).0,
            ControlPlane::EnvoyGateway,
            "{form}"
        );
        configs.push(config);
    }
    // The admin dump and egctl's JSON and YAML hold the same resources (egctl's capture also
    // has the xDS cluster's EDS endpoints).
    let names = |config: &kubectl_infermesh::evidence::envoy::config::EffectiveConfig| {
        config
            .clusters
            .iter()
            .map(|c| c.name.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&configs[0]), names(&configs[1]));
    assert_eq!(configs[0].listeners, configs[1].listeners);
    assert_eq!(configs[1], configs[2]);
    assert_eq!(configs[0].route_configs, configs[1].route_configs);

    // egctl's per-resource forms, read together, give the same clusters and routes.
    let mut merged =
        config_dump::parse(&fixture("public/eg-quickstart-egctl-cluster.json")).unwrap();
    let routes = config_dump::parse(&fixture("public/eg-quickstart-egctl-route.json")).unwrap();
    let listeners =
        config_dump::parse(&fixture("public/eg-quickstart-egctl-listener.json")).unwrap();
    merged.route_configs.extend(routes.route_configs);
    merged.listeners.extend(listeners.listeners);
    assert_eq!(names(&merged), names(&configs[1]));
    assert_eq!(merged.route_configs, configs[1].route_configs);
    assert_eq!(merged.listeners, configs[1].listeners);
}

/// The first "done when": both gateways cut streams at Envoy's 15 s default.
#[test]
fn envoy_gateway_and_plain_envoy_gateways_cut_streams_at_envoys_default() {
    for (file, service, plane) in [
        (
            "public/eg-quickstart-egctl-all.json",
            format!("{EG_CLUSTER}:3000"),
            Some("Envoy Gateway's names"),
        ),
        (
            "captured/envoy-1.40-plain-gateway.config_dump.json",
            "vllm.inference.svc.cluster.local:8000".to_string(),
            None,
        ),
    ] {
        let (code, document) = diagnose(&[file], &[]);
        assert_eq!(code, 3, "{file}: {document:#}");
        let target = &document["targets"][0];
        assert!(
            target["target"]["detectedBy"]
                .as_str()
                .unwrap()
                .contains(&service),
            "{file}: {target:#}"
        );
        let root = &target["rootCause"];
        assert_eq!(root["id"], "stream-timeout", "{file}: {root:#}");
        let explanation = root["explanation"].as_str().unwrap();
        assert!(
            explanation.contains("cuts generations at 15s (route timeout)"),
            "{explanation}"
        );
        assert!(
            explanation.contains("Envoy's default for RouteAction.timeout"),
            "{explanation}"
        );
        let envoy = &target["envoys"][0];
        assert_eq!(envoy["role"], "client", "{envoy:#}");
        match plane {
            Some(words) => assert!(
                envoy["controlPlane"].as_str().unwrap().contains(words),
                "{envoy:#}"
            ),
            None => assert!(envoy["controlPlane"].is_null(), "{envoy:#}"),
        }
        // No Istio object is suggested for a proxy Istio does not configure.
        let fix = root.to_string() + &target["findings"].to_string();
        assert!(!fix.contains("create one for"), "{file}: {fix}");
    }
    // `--service` takes the cluster's name too, with the port of its endpoints.
    let (code, document) = diagnose(
        &["public/eg-quickstart-config-dump.json"],
        &["--service", &format!("{EG_CLUSTER}:3000")],
    );
    assert_eq!(code, 3, "{document:#}");
    assert_eq!(document["targets"][0]["rootCause"]["id"], "stream-timeout");
}

#[test]
fn a_sidecar_whose_inbound_listener_envoy_refused_gives_envoys_error() {
    let config = config_dump::parse(&fixture(
        "captured/envoy-1.40-rejected-inbound-lua.config_dump.json",
    ))
    .unwrap();
    assert!(config.listener("virtualInbound").is_none());
    assert_eq!(config.rejected.len(), 1, "{:?}", config.rejected);
    assert_eq!(config.rejected[0].kind, RejectedKind::Listener);
    assert_eq!(config.rejected[0].address.as_deref(), Some("0.0.0.0:15006"));

    let (code, document) = diagnose(
        &["captured/envoy-1.40-rejected-inbound-lua.config_dump.json"],
        &[],
    );
    assert_eq!(code, 3, "{document:#}");
    let target = &document["targets"][0];
    assert_eq!(target["target"]["ref"], "endpoint/vllm", "{target:#}");
    let root = &target["rootCause"];
    assert_eq!(root["id"], "cold-start", "{root:#}");
    assert_eq!(root["basis"], "runtime", "{root:#}");
    let explanation = root["explanation"].as_str().unwrap();
    for words in [
        "rejected listener virtualInbound",
        "traffic to it fails",
        "unexpected symbol near 'end'",
    ] {
        assert!(explanation.contains(words), "{words:?}: {explanation}");
    }
}

fn sidecar_with_inbound_cluster() -> EnvoyReading {
    let mut config = config_dump::parse(&fixture(
        "public/istio-1.18-sidecar-listeners-permissive.json",
    ))
    .unwrap();
    // The istioctl test data holds listeners only; the inbound cluster makes it the server.
    config.clusters.push(ClusterConfig::named("inbound|80||"));
    EnvoyReading {
        source: "istio-1.18 sidecar".to_string(),
        config: Some(config),
        ..EnvoyReading::default()
    }
}

#[test]
fn a_raw_buffer_chain_beside_the_tls_one_reads_permissive() {
    let reading = sidecar_with_inbound_cluster();
    let choice = discover::find_service(&[&reading], Some("productpage.default:80")).unwrap();
    let target = attach::endpoint_target(&choice, std::slice::from_ref(&reading));
    let facts = tls::facts(&target).unwrap();
    assert_eq!(facts.inbound_mode, Some("PERMISSIVE"));
    let values: Vec<&str> = facts.lines.iter().map(|line| line.value.as_str()).collect();
    assert!(
        values
            .iter()
            .any(|value| value.contains("mTLS PERMISSIVE: plaintext accepted")),
        "{values:?}"
    );
    assert!(
        !values.iter().any(|value| value.contains("STRICT")),
        "{values:?}"
    );
}

#[test]
fn istios_null_vm_stats_and_metadata_exchange_do_not_buffer() {
    let reading = sidecar_with_inbound_cluster();
    let config = reading.config.as_ref().unwrap();
    // The dump has the null-VM metadata exchange on every HTTP chain …
    let null_vm = config
        .hcms()
        .flat_map(|(_, _, hcm)| hcm.http_filters.iter())
        .filter(|filter| filter.name == "istio.metadata_exchange")
        .count();
    assert!(null_vm > 2, "{null_vm}");
    // … and none of it holds bodies.
    let on_path = buffers::filters_on_path(config);
    assert!(
        on_path
            .iter()
            .all(|(_, _, filter)| !filter.name.starts_with("istio.")),
        "{:?}",
        on_path.iter().map(|(_, _, f)| &f.name).collect::<Vec<_>>()
    );
    // Each filter of one HCM is listed once, though the HCM is on a TLS and a raw_buffer chain.
    let mut keys: Vec<(String, String, String)> = on_path
        .iter()
        .map(|(listener, hcm, filter)| {
            (
                listener.name.clone(),
                hcm.stat_prefix.clone(),
                filter.name.clone(),
            )
        })
        .collect();
    let before = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), before);
}

/// The Istio docs' circuit-breaking task: 12 overflows, no config_dump.
#[test]
fn stats_alone_give_connection_pool_from_runtime_counters() {
    let (code, document) = diagnose(&["public/istio-docs-circuit-breaking.stats.txt"], &[]);
    assert_eq!(code, 3, "{document:#}");
    let target = &document["targets"][0];
    assert!(
        target["target"]["detectedBy"]
            .as_str()
            .unwrap()
            .contains("httpbin.springistio.svc.cluster.local:80"),
        "{target:#}"
    );
    let root = &target["rootCause"];
    assert_eq!(root["id"], "connection-pool", "{root:#}");
    assert_eq!(root["basis"], "runtime", "{root:#}");
    assert!(
        root["explanation"]
            .as_str()
            .unwrap()
            .contains("upstream_rq_pending_overflow 12"),
        "{root:#}"
    );
    let gaps = target["gaps"].to_string() + &document["gaps"].to_string();
    assert!(gaps.contains("not read: only /stats was given"), "{gaps}");
    // A grep kept only these lines: nothing says Istio's stats matcher trimmed the rest.
    assert!(!gaps.contains("stats matcher"), "{gaps}");
}

#[test]
fn an_empty_file_says_it_is_empty() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("gw.json");
    std::fs::write(&file, "").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
        .args(["diagnose", "--envoy-dump"])
        .arg(&file)
        .env("KUBECONFIG", "/nonexistent/infermesh-test-kubeconfig")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0));
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("gw.json is empty"), "{stderr}");
}
