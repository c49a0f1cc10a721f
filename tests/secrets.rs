#![allow(clippy::unwrap_used)]
//! Secrets never leave: distinctive secrets planted in every place a credential can come from (a
//! kubeconfig token, an exec plugin's output, a client key, `--token`, `OPENAI_API_KEY` and
//! `--api-key-env`, and the pod spec's env and `--api-key` flag), then `diagnose` (with
//! `--probe`, `--save-evidence`, `-o json|yaml|markdown`, `--fix`) and `probe` at `-v`, `-vv` and
//! `-vvv`; stdout, stderr and every file written are scanned: no secret may appear. The pod
//! spec's secrets are named in the saved evidence's `redacted` list instead.
//!
//! Needs Envoy (the cluster's pods are a real Envoy pair in front of the lab server).

mod support;
use support::kubeconfig::KubeconfigFile;
use support::live_mesh::{LiveMesh, NAMESPACE};

use base64::Engine;
use kubectl_infermesh::lab::ServerConfig;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

const KUBECONFIG_TOKEN: &str = "kubeconfig-token-9f3a7c21e4";
const EXEC_TOKEN: &str = "exec-plugin-token-5b8d02aa71";
const FLAG_TOKEN: &str = "flag-token-c41e9d7f03";
const OPENAI_KEY: &str = "sk-openai-key-7d2f91c3b8";
const OTHER_KEY: &str = "sk-other-env-key-e06b4a9d15";
const POD_ENV_SECRET: &str = "hf_pod-env-secret-3c7a88e2f1";
const POD_FLAG_SECRET: &str = "sk-pod-flag-secret-0a9e3d6b74";

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name),
    )
    .unwrap()
}

/// The vLLM container gets a token in its env and an API key on its command line.
#[allow(clippy::ptr_arg)] // the shape LiveMesh::start_edited hands over
fn plant_in_the_pod_spec(objects: &mut Vec<Value>) {
    for object in objects.iter_mut() {
        let spec = match object["kind"].as_str() {
            Some("Deployment" | "ReplicaSet") => &mut object["spec"]["template"]["spec"],
            Some("Pod") => &mut object["spec"],
            _ => continue,
        };
        let Some(containers) = spec["containers"].as_array_mut() else {
            continue;
        };
        for container in containers.iter_mut().filter(|c| c["name"] == "vllm") {
            container["env"] = json!([{"name": "HF_TOKEN", "value": POD_ENV_SECRET}]);
            container["args"]
                .as_array_mut()
                .unwrap()
                .extend([json!("--api-key"), json!(POD_FLAG_SECRET)]);
        }
    }
}

/// Kubeconfigs that reach the cluster with each kind of credential, and the secrets each holds.
fn kubeconfigs(mesh: &LiveMesh, dir: &Path) -> Vec<(&'static str, PathBuf, Vec<String>)> {
    let server = &mesh.api;
    let cluster = |file: KubeconfigFile| {
        file.cluster("loopback", &server.url(), Some(server.ca_pem()))
            .current("loopback")
    };
    let token = cluster(KubeconfigFile::new().user("u", KUBECONFIG_TOKEN))
        .context("loopback", "loopback", "u", Some(NAMESPACE))
        .write(&dir.join("token.kubeconfig"));
    let plugin = dir.join("credential-plugin.sh");
    std::fs::write(
        &plugin,
        format!(
            "#!/bin/sh\necho '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"{EXEC_TOKEN}\"}}}}'\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let exec = cluster(KubeconfigFile::new().exec_user("u", plugin.to_str().unwrap(), &[]))
        .context("loopback", "loopback", "u", Some(NAMESPACE))
        .write(&dir.join("exec.kubeconfig"));
    // A client certificate: the key's PEM body is the secret.
    let key = fixture("client-ec.pkcs8.key");
    let certificate = server.client_certificate(&key, "infermesh-tester");
    let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let document = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "loopback",
        "clusters": [{"name": "loopback", "cluster": {
            "server": server.url(),
            "certificate-authority-data": encode(server.ca_pem())}}],
        "users": [{"name": "u", "user": {
            "client-certificate-data": encode(&certificate),
            "client-key-data": encode(&key)}}],
        "contexts": [{"name": "loopback", "context": {"cluster": "loopback", "user": "u", "namespace": NAMESPACE}}],
    });
    let client_key = dir.join("client-key.kubeconfig");
    std::fs::write(&client_key, serde_json::to_string(&document).unwrap()).unwrap();
    let key_lines: Vec<String> = key
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .map(str::to_string)
        .chain([encode(&key)])
        .collect();
    // A user without credentials: the token comes from --token.
    let mut bare_document = document.clone();
    bare_document["users"] = json!([{"name": "u", "user": {}}]);
    let bare = dir.join("bare.kubeconfig");
    std::fs::write(&bare, serde_json::to_string(&bare_document).unwrap()).unwrap();
    vec![
        (
            "kubeconfig token",
            token,
            vec![KUBECONFIG_TOKEN.to_string()],
        ),
        ("exec plugin", exec, vec![EXEC_TOKEN.to_string()]),
        ("client key", client_key, key_lines),
        ("--token", bare, vec![FLAG_TOKEN.to_string()]),
    ]
}

/// Every secret planted anywhere: none may appear in any output.
fn every_secret(per_kubeconfig: &[(&str, PathBuf, Vec<String>)]) -> Vec<String> {
    let mut secrets: Vec<String> = [
        KUBECONFIG_TOKEN,
        EXEC_TOKEN,
        FLAG_TOKEN,
        OPENAI_KEY,
        OTHER_KEY,
        POD_ENV_SECRET,
        POD_FLAG_SECRET,
    ]
    .map(str::to_string)
    .to_vec();
    for (_, _, held) in per_kubeconfig {
        secrets.extend(held.iter().cloned());
    }
    secrets
}

fn assert_clean(what: &str, text: &str, secrets: &[String]) {
    for secret in secrets {
        let leaks: Vec<&str> = text
            .lines()
            .filter(|line| line.contains(secret.as_str()))
            .take(3)
            .collect();
        assert!(leaks.is_empty(), "{what} leaks {secret:?}:\n{leaks:#?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_or_pod_secret_appears_in_any_output_at_any_verbosity() {
    let lab = ServerConfig {
        tokens_per_second: 400.0,
        ..ServerConfig::default()
    };
    let mesh = LiveMesh::start_edited(
        lab,
        |client| client.knobs.route_timeout = std::time::Duration::from_secs(1),
        |config| {
            config
                .accept_token(KUBECONFIG_TOKEN)
                .accept_token(EXEC_TOKEN)
                .accept_token(FLAG_TOKEN)
        },
        plant_in_the_pod_spec,
    )
    .await;
    let dir = mesh.scratch().join("secrets");
    std::fs::create_dir_all(&dir).unwrap();
    let per_kubeconfig = kubeconfigs(&mesh, &dir);
    let secrets = every_secret(&per_kubeconfig);
    let env = [("OPENAI_API_KEY", OPENAI_KEY), ("OTHER_KEY", OTHER_KEY)];
    let mut runs = 0;
    for (credential, kubeconfig, _) in &per_kubeconfig {
        for verbosity in ["-v", "-vv", "-vvv"] {
            let tag = format!("{credential} {verbosity}").replace([' ', '-'], "_");
            let saved = dir.join(format!("{tag}.evidence.json"));
            let saved_arg = saved.to_str().unwrap().to_string();
            let mut shapes: Vec<Vec<String>> = vec![
                vec![
                    "diagnose",
                    "deploy/vllm",
                    "--probe",
                    "--save-evidence",
                    &saved_arg,
                ],
                vec!["diagnose", "deploy/vllm", "-o", "json"],
                vec!["diagnose", "-A", "-o", "yaml"],
                vec!["diagnose", "deploy/vllm", "-o", "markdown"],
                vec!["diagnose", "deploy/vllm", "--fix"],
                vec!["probe", "deploy/vllm", "--max-tokens", "8"],
                vec![
                    "probe",
                    "deploy/vllm",
                    "--max-tokens",
                    "8",
                    "--api-key-env",
                    "OTHER_KEY",
                    "-o",
                    "json",
                ],
            ]
            .into_iter()
            .map(|shape| shape.into_iter().map(str::to_string).collect())
            .collect();
            for shape in &mut shapes {
                shape.push(verbosity.to_string());
                if *credential == "--token" {
                    shape.extend(["--token".to_string(), FLAG_TOKEN.to_string()]);
                }
            }
            for shape in &shapes {
                let args: Vec<&str> = shape.iter().map(String::as_str).collect();
                let output = mesh.run_with(&args, kubeconfig, &env).await;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(
                    matches!(output.status.code(), Some(0 | 3)),
                    "{credential}: {args:?} exited {:?}: {stderr}",
                    output.status.code()
                );
                assert_clean(&format!("{credential}: {args:?} stdout"), &stdout, &secrets);
                assert_clean(&format!("{credential}: {args:?} stderr"), &stderr, &secrets);
                runs += 1;
            }
            let evidence = std::fs::read_to_string(&saved).unwrap();
            assert_clean(
                &format!("{credential}: saved evidence"),
                &evidence,
                &secrets,
            );
            let evidence: Value = serde_json::from_str(&evidence).unwrap();
            let redacted: Vec<&str> = evidence["redacted"]
                .as_array()
                .unwrap_or_else(|| panic!("no redacted list: {evidence:#}"))
                .iter()
                .filter_map(Value::as_str)
                .collect();
            assert!(
                redacted.iter().any(|line| line.ends_with("env HF_TOKEN"))
                    && redacted.iter().any(|line| line.ends_with("args --api-key")),
                "{redacted:#?}"
            );
        }
    }
    assert_eq!(runs, 4 * 3 * 7);
}
