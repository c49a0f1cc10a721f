//! A live cluster in front of a real Envoy pair: the loopback API server holds a clean vLLM
//! workload behind an Istio ingress gateway, and its port-forwards reach the pair, as on a real
//! cluster: the vLLM pod's 8000 is the lab server (the direct path), its 15000 the server
//! Envoy's admin (the sidecar); the gateway pod's listener 8080 is the client Envoy's listener
//! (the mesh path), its 15000 the client Envoy's admin. The objects are the same for every
//! scenario: only the Envoys' knobs and the lab's behaviour differ.

use super::apiserver::rollout::roll_out;
use super::apiserver::{ApiServer, ApiServerConfig};
use super::envoy_pair::{Pair, start_pair};
use kubectl_infermesh::lab::ServerConfig;
use kubectl_infermesh::lab::envoy::bootstrap::{
    ClientBootstrap, LAB_HOST, LAB_PORT, ServerBootstrap,
};
use kubectl_infermesh::lab::envoy::launcher::EnvoyProcess;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tempfile::TempDir;

/// The namespace of the workload (the one the lab Envoys' cluster names serve).
pub const NAMESPACE: &str = "inference";
/// The vLLM Service.
const SERVICE: &str = "vllm";
/// The host the Gateway and the VirtualService route on.
pub const PUBLIC_HOST: &str = "llm.example.com";
pub const GATEWAY_POD: &str = "istio-ingressgateway-6b8f9d7c5-k4m2p";
/// The gateway pod's HTTP listener, behind the gateway Service's port 80.
const GATEWAY_LISTENER: u16 = 8080;
const ENVOY_ADMIN: u16 = 15000;
/// The longest one run of the binary may take before the test gives up.
const RUN_LIMIT: Duration = Duration::from_secs(180);

/// Where the mesh path enters the cluster: a gateway pod and the port its Envoy listens on.
#[derive(Debug, Clone, Copy)]
pub struct GatewayPod {
    pub namespace: &'static str,
    pub name: &'static str,
    pub listener: u16,
}

/// The Istio ingress gateway of [`objects`].
pub const INGRESS_GATEWAY: GatewayPod = GatewayPod {
    namespace: "istio-system",
    name: GATEWAY_POD,
    listener: GATEWAY_LISTENER,
};

/// The binary with `args`, `kubeconfig` and more environment, bounded by the run limit.
pub async fn run_binary(
    args: &[&str],
    kubeconfig: &std::path::Path,
    env: &[(&str, &str)],
) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
    command
        .args(args)
        .envs(env.iter().copied())
        .env("KUBECONFIG", kubeconfig)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("{args:?} did not finish in time"))
        .unwrap()
}

/// The name of the vLLM pod (label `app: vllm`) among `objects`.
pub fn vllm_pod_name(objects: &[Value]) -> String {
    objects
        .iter()
        .find(|object| object["kind"] == "Pod" && object["metadata"]["labels"]["app"] == "vllm")
        .and_then(|pod| pod["metadata"]["name"].as_str())
        .unwrap()
        .to_string()
}

/// The cluster and the Envoy pair behind it.
pub struct LiveMesh {
    pub pair: Pair,
    pub api: ApiServer,
    pub vllm_pod: String,
    dir: TempDir,
    kubeconfig: PathBuf,
}

/// One run of `diagnose --probe` on the cluster.
pub struct Diagnosis {
    pub code: i32,
    pub report: Value,
    pub evidence: Value,
    pub stderr: String,
}

impl Diagnosis {
    pub fn target(&self) -> &Value {
        &self.report["targets"][0]
    }

    pub fn root_cause(&self) -> &Value {
        &self.target()["rootCause"]
    }

    /// The ids of `alsoContributing`, in rank order.
    pub fn also_contributing(&self) -> Vec<&str> {
        self.target()["alsoContributing"]
            .as_array()
            .map(|causes| {
                causes
                    .iter()
                    .filter_map(|cause| cause["id"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The probe runs kept in the evidence, by mode, in the order they ran.
    pub fn probe_modes(&self) -> Vec<&str> {
        self.probes()
            .iter()
            .map(|run| run["planned"]["mode"]["kind"].as_str().unwrap())
            .collect()
    }

    pub fn probes(&self) -> &Vec<Value> {
        self.evidence["targets"][0]["probes"]
            .as_array()
            .unwrap_or_else(|| panic!("no probe runs saved: {:#}", self.evidence))
    }

    /// `diagnose --from-evidence` on the saved evidence: the probe runs it holds decide again,
    /// offline.
    pub async fn replayed_offline(&self) -> Value {
        let dir = TempDir::new().unwrap();
        let saved = dir.path().join("evidence.json");
        std::fs::write(&saved, self.evidence.to_string()).unwrap();
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
        command
            .args(["diagnose", "-o", "json", "--from-evidence"])
            .arg(&saved)
            .env("KUBECONFIG", "/nonexistent/infermesh-no-cluster")
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        let output = tokio::time::timeout(RUN_LIMIT, command.output())
            .await
            .expect("diagnose --from-evidence did not finish in time")
            .unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
            panic!(
                "--from-evidence printed no JSON ({error}): {}",
                String::from_utf8_lossy(&output.stderr)
            )
        })
    }

    /// Everything, for assertion messages.
    pub fn dump(&self) -> String {
        format!(
            "exit {}\nreport: {:#}\nprobe runs: {:#}\nstderr: {}",
            self.code, self.report, self.evidence["targets"][0]["probes"], self.stderr
        )
    }
}

impl LiveMesh {
    /// The lab configured by `lab` behind an Envoy pair whose client (the gateway) has the
    /// knobs `configure` sets, and the cluster in front of both.
    pub async fn start(lab: ServerConfig, configure: impl FnOnce(&mut ClientBootstrap)) -> Self {
        Self::start_with(lab, configure, |config| config).await
    }

    /// [`LiveMesh::start`] with the API server's transport changed by `serve` (its certificate's
    /// names, its address).
    pub async fn start_with(
        lab: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap),
        serve: impl FnOnce(ApiServerConfig) -> ApiServerConfig,
    ) -> Self {
        Self::start_edited(lab, configure, serve, |_| {}).await
    }

    /// [`LiveMesh::start_with`] with the cluster's objects changed by `edit` first.
    pub async fn start_edited(
        lab: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap),
        serve: impl FnOnce(ApiServerConfig) -> ApiServerConfig,
        edit: impl FnOnce(&mut Vec<Value>),
    ) -> Self {
        let mut objects = objects();
        edit(&mut objects);
        Self::start_holding(lab, configure, serve, objects, INGRESS_GATEWAY).await
    }

    /// The pair behind a cluster holding `objects`, entered through `gateway`: its listener is
    /// the client Envoy's listener, its 15000 the client Envoy's admin.
    pub async fn start_holding(
        lab: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap),
        serve: impl FnOnce(ApiServerConfig) -> ApiServerConfig,
        objects: Vec<Value>,
        gateway: GatewayPod,
    ) -> Self {
        Self::start_both(lab, |client, _| configure(client), serve, objects, gateway).await
    }

    /// [`LiveMesh::start_holding`] with both Envoys' knobs set by `configure`.
    pub async fn start_both(
        lab: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
        serve: impl FnOnce(ApiServerConfig) -> ApiServerConfig,
        objects: Vec<Value>,
        gateway: GatewayPod,
    ) -> Self {
        let pair = start_pair(lab, configure).await;
        let vllm_pod = vllm_pod_name(&objects);
        let config = ApiServerConfig::new()
            .with_objects(objects)
            .port_forward(NAMESPACE, &vllm_pod, LAB_PORT, pair.lab.addr())
            .port_forward(NAMESPACE, &vllm_pod, ENVOY_ADMIN, admin_addr(&pair.server))
            .port_forward(
                gateway.namespace,
                gateway.name,
                gateway.listener,
                pair.entry,
            )
            .port_forward(
                gateway.namespace,
                gateway.name,
                ENVOY_ADMIN,
                admin_addr(&pair.client),
            );
        let api = ApiServer::start(serve(config)).await;
        let dir = TempDir::new().unwrap();
        let kubeconfig = api.write_kubeconfig(dir.path());
        LiveMesh {
            pair,
            api,
            vllm_pod,
            dir,
            kubeconfig,
        }
    }

    /// `kubectl-infermesh diagnose deploy/vllm -n inference --probe -o json --save-evidence F`,
    /// with nothing but the kubeconfig: the binary finds every path itself.
    pub async fn diagnose(&self) -> Diagnosis {
        self.diagnose_with(&self.kubeconfig).await
    }

    /// The binary with `args` and this cluster's kubeconfig, bounded by the run limit.
    pub async fn run(&self, args: &[&str]) -> std::process::Output {
        self.run_with(args, &self.kubeconfig, &[]).await
    }

    /// [`LiveMesh::run`] with another kubeconfig and more environment.
    pub async fn run_with(
        &self,
        args: &[&str],
        kubeconfig: &std::path::Path,
        env: &[(&str, &str)],
    ) -> std::process::Output {
        run_binary(args, kubeconfig, env).await
    }

    /// Where this cluster's kubeconfig is, and a scratch folder beside it.
    pub fn kubeconfig_path(&self) -> &std::path::Path {
        &self.kubeconfig
    }

    pub fn scratch(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// [`LiveMesh::diagnose`] with another kubeconfig (a proxy, other credentials).
    pub async fn diagnose_with(&self, kubeconfig: &std::path::Path) -> Diagnosis {
        let saved = self.dir.path().join("evidence.json");
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kubectl-infermesh"));
        command
            .args(["diagnose", "deploy/vllm", "-n", NAMESPACE, "--probe"])
            .args(["-o", "json", "--save-evidence"])
            .arg(&saved)
            .env("KUBECONFIG", kubeconfig)
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .kill_on_drop(true);
        let output = tokio::time::timeout(RUN_LIMIT, command.output())
            .await
            .expect("diagnose --probe did not finish in time")
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let report: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|error| panic!("not JSON ({error}):\n{stdout}\nstderr: {stderr}"));
        let evidence: Value = serde_json::from_str(
            &std::fs::read_to_string(&saved)
                .unwrap_or_else(|error| panic!("no evidence saved ({error}); stderr: {stderr}")),
        )
        .unwrap();
        Diagnosis {
            code: output.status.code().unwrap_or(-1),
            report,
            evidence,
            stderr,
        }
    }
}

fn admin_addr(envoy: &EnvoyProcess) -> SocketAddr {
    envoy
        .admin_url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

/// What the cluster holds: the `inference` namespace (injection on) with the vLLM Deployment
/// rolled out (its ReplicaSet and one ready, sidecar-injected pod) and its Service; an ingress
/// gateway in `istio-system` (a Gateway for `llm.example.com`, its Service 80 -> 8080 and one
/// ready gateway pod) and a VirtualService without a timeout binding the host to the Service.
/// The workload is statically sound: a tuned proxy, the model warmed before Ready and the app
/// held until the proxy starts, so whatever is wrong comes from the Envoys and the probe runs.
pub fn objects() -> Vec<Value> {
    assert_eq!(
        LAB_HOST,
        format!("{SERVICE}.{NAMESPACE}.svc.cluster.local"),
        "the lab Envoys name the Service's cluster"
    );
    let warm_up = format!(
        "python3 -c \"import urllib.request as r; r.urlopen(r.Request('http://127.0.0.1:{LAB_PORT}/v1/completions', data=b'{{\\\"model\\\":\\\"lab-model\\\",\\\"prompt\\\":\\\"hi\\\",\\\"max_tokens\\\":1}}', headers={{'Content-Type':'application/json'}}), timeout=60)\""
    );
    let workload = vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {
                "kubernetes.io/metadata.name": NAMESPACE, "istio-injection": "enabled"}},
            "status": {"phase": "Active"},
        }),
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "vllm", "namespace": NAMESPACE, "generation": 1,
                "labels": {"app": "vllm"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "vllm"}},
                "template": {
                    "metadata": {
                        "labels": {"app": "vllm"},
                        "annotations": {
                            "proxy.istio.io/config": "holdApplicationUntilProxyStarts: true\n",
                            "sidecar.istio.io/proxyCPU": "50m",
                            "sidecar.istio.io/proxyMemory": "64Mi",
                            "sidecar.istio.io/proxyCPULimit": "1",
                            "sidecar.istio.io/proxyMemoryLimit": "256Mi",
                        },
                    },
                    "spec": {"containers": [{
                        "name": "vllm",
                        "image": "vllm/vllm-openai:v0.8.5",
                        "args": ["--model", "lab/lab-model", "--served-model-name", "lab-model",
                                 "--port", LAB_PORT.to_string()],
                        "ports": [{"name": "http", "containerPort": LAB_PORT, "protocol": "TCP"}],
                        "resources": {
                            "requests": {"cpu": "4", "memory": "32Gi", "nvidia.com/gpu": "1"},
                            "limits": {"memory": "48Gi", "nvidia.com/gpu": "1"},
                        },
                        "startupProbe": {"exec": {"command": ["sh", "-c", warm_up]},
                            "periodSeconds": 10, "timeoutSeconds": 60, "failureThreshold": 60},
                        "readinessProbe": {"httpGet": {"path": "/health", "port": LAB_PORT},
                            "periodSeconds": 10},
                    }]},
                },
            },
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                "readyReplicas": 1, "availableReplicas": 1},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": {"app": "vllm"}},
            "spec": {"selector": {"app": "vllm"},
                "ports": [{"name": "http", "port": LAB_PORT, "targetPort": LAB_PORT, "protocol": "TCP"}]},
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "vllm-public", "namespace": NAMESPACE},
            "spec": {
                "hosts": [PUBLIC_HOST],
                "gateways": ["istio-system/llm-gateway"],
                "http": [{"route": [{"destination": {"host": LAB_HOST, "port": {"number": LAB_PORT}}}]}],
            },
        }),
    ];
    let mut objects = roll_out(workload, NAMESPACE);
    objects.extend(gateway_objects());
    objects
}

/// The ingress gateway: its namespace, the Gateway, the Service (80 -> 8080) and one ready pod.
fn gateway_objects() -> Vec<Value> {
    vec![
        json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "istio-system", "labels": {"kubernetes.io/metadata.name": "istio-system"}},
            "status": {"phase": "Active"},
        }),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "Gateway",
            "metadata": {"name": "llm-gateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "servers": [{"port": {"number": 80, "name": "http", "protocol": "HTTP"},
                             "hosts": [PUBLIC_HOST]}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "istio-ingressgateway", "namespace": "istio-system"},
            "spec": {"selector": {"istio": "ingressgateway"},
                "ports": [{"name": "http2", "port": 80, "targetPort": GATEWAY_LISTENER, "protocol": "TCP"}]},
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": GATEWAY_POD, "namespace": "istio-system",
                "labels": {"istio": "ingressgateway", "app": "istio-ingressgateway"},
                "creationTimestamp": "2025-02-01T08:00:00Z",
            },
            "spec": {"containers": [{
                "name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.24.2",
                "args": ["proxy", "router"],
                "ports": [{"name": "http2", "containerPort": GATEWAY_LISTENER, "protocol": "TCP"},
                          {"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"}],
            }]},
            "status": {
                "phase": "Running",
                "startTime": "2025-02-01T08:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }),
    ]
}
