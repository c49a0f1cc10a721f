//! The live-cluster source against the loopback API server: kubeconfig handling, the inventory by
//! paged list calls, partial results (Istio absent, 403), the one-line failures, and port-forward.
#![allow(clippy::unwrap_used)]

mod support;

use k8s_openapi::api::core::v1::Pod;
use kubectl_infermesh::evidence::IstioPresence;
use kubectl_infermesh::evidence::inventory::Inventory;
use kubectl_infermesh::evidence::listed_pod::{ListedPod, Spec};
use kubectl_infermesh::sources::cluster::kubeconfig::read_kubeconfig_with;
use kubectl_infermesh::sources::cluster::{
    ClusterArgs, ClusterClient, ClusterError, ListScope, PodPort, PortForward, list_inventory,
    open_stream,
};
use std::path::Path;
use std::time::{Duration, Instant};
use support::apiserver::{
    ApiServer, ApiServerConfig, ForbidScope, IstioApis, NAMESPACE, generate_pods, load_fixtures,
};
use support::kubeconfig::KubeconfigFile;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VLLM_POD: &str = "vllm-7c9d5b8f6d-x2x7k";

fn args(kubeconfig: &Path, context: Option<&str>, timeout: Duration) -> ClusterArgs {
    ClusterArgs {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        context: context.map(str::to_string),
        request_timeout: timeout,
        ..ClusterArgs::default()
    }
}

/// A client for `context` of the server's kubeconfig (written into `dir`).
async fn client(
    server: &ApiServer,
    dir: &TempDir,
    context: Option<&str>,
) -> Result<ClusterClient, ClusterError> {
    let path = server.write_kubeconfig(dir.path());
    ClusterClient::connect(&args(&path, context, Duration::from_secs(20))).await
}

async fn inventory_of(
    config: ApiServerConfig,
    scope: ListScope,
) -> (ApiServer, Result<Inventory, ClusterError>) {
    let server = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    let inventory = list_inventory(&client, &scope).await;
    (server, inventory)
}

fn in_namespace() -> ListScope {
    ListScope::Namespace(NAMESPACE.to_string())
}

fn fixtures_of_kind(kind: &str) -> Vec<serde_json::Value> {
    load_fixtures()
        .into_iter()
        .filter(|object| object["kind"] == kind)
        .collect()
}

fn typed<T: serde::de::DeserializeOwned>(objects: Vec<serde_json::Value>) -> Vec<T> {
    objects
        .into_iter()
        .map(|object| serde_json::from_value(object).unwrap())
        .collect()
}

#[tokio::test]
async fn inventory_matches_the_recorded_objects() {
    let (_server, inventory) =
        inventory_of(ApiServerConfig::new().with_fixtures(), in_namespace()).await;
    let inventory = inventory.unwrap();
    assert!(inventory.gaps.is_empty(), "{:?}", inventory.gaps);
    assert_eq!(inventory.istio, Some(IstioPresence::Installed));

    // Objects come back as recorded, though list items carry no apiVersion/kind, and pods
    // without what nothing reads (volumes and the like). The one pod is the listed Deployment's
    // (through its ReplicaSet): it keeps what its own evidence reads, not its whole spec.
    let pods: Vec<ListedPod> = typed::<Pod>(fixtures_of_kind("Pod"))
        .into_iter()
        .map(|mut pod| {
            kubectl_infermesh::sources::cluster::slim::pod(&mut pod);
            ListedPod::new(pod, Spec::Compact)
        })
        .collect();
    assert_eq!(inventory.pods, pods);
    let spec = inventory.pods[0].spec.as_ref().unwrap();
    assert!(spec.whole.is_none());
    assert_eq!(
        spec.containers
            .iter()
            .map(|container| container.name.as_str())
            .collect::<Vec<_>>(),
        ["vllm", "istio-proxy"]
    );
    assert_eq!(inventory.deployments, typed(fixtures_of_kind("Deployment")));
    assert_eq!(
        inventory.replica_sets,
        typed(fixtures_of_kind("ReplicaSet"))
    );
    assert_eq!(inventory.services, typed(fixtures_of_kind("Service")));
    assert_eq!(inventory.nodes.len(), 2);
    assert_eq!(inventory.namespaces.len(), 3);
    assert!(inventory.stateful_sets.is_empty());
    assert_eq!(
        inventory.virtual_services,
        typed(fixtures_of_kind("VirtualService"))
    );
    assert_eq!(
        inventory.destination_rules,
        typed(fixtures_of_kind("DestinationRule"))
    );
    assert_eq!(
        inventory.envoy_filters,
        typed(fixtures_of_kind("EnvoyFilter"))
    );
    // The mesh-wide PeerAuthentication lives in istio-system: Istio kinds are read cluster-wide.
    assert_eq!(
        inventory.peer_authentications,
        typed(fixtures_of_kind("PeerAuthentication"))
    );

    // The live pod carries what the injector added.
    let pod = &inventory.pods[0];
    let spec = pod.spec.as_ref().unwrap();
    assert!(spec.containers.iter().any(|c| c.name == "istio-proxy"));
    assert!(spec.init_containers.iter().any(|c| c.name == "istio-init"));
    let annotations = pod.metadata.annotations.as_ref().unwrap();
    assert!(annotations.contains_key("sidecar.istio.io/status"));
    assert_eq!(
        inventory.envoy_filters[0].api_version.as_deref(),
        Some("networking.istio.io/v1alpha3")
    );
    assert_eq!(
        inventory.virtual_services[0].api_version.as_deref(),
        Some("networking.istio.io/v1")
    );
}

/// Requests of one inventory: 7 built-in lists, `/apis`, 5 Istio group versions, 8 Istio lists
/// (AuthorizationPolicy and RequestAuthentication among them), one page each, plus the extra
/// pages of pods.
// + 2: ztunnel's pods and DaemonSet (label app=ztunnel, all namespaces), for ambient mode.
const REQUESTS_WITHOUT_EXTRA_PAGES: usize = 7 + 1 + 5 + 8 + 2;

#[tokio::test]
async fn request_count_grows_with_pages_not_pods() {
    for extra_pods in [10usize, 2_000] {
        let config = ApiServerConfig::new()
            .with_fixtures()
            .with_objects(generate_pods(NAMESPACE, extra_pods));
        let (server, inventory) = inventory_of(config, in_namespace()).await;
        let inventory = inventory.unwrap();
        let pods = extra_pods + 1;
        assert_eq!(inventory.pods.len(), pods);
        let mut names: Vec<&str> = inventory
            .pods
            .iter()
            .map(|pod| pod.metadata.name.as_deref().unwrap())
            .collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), pods, "every pod exactly once across pages");

        let requests = server.requests();
        let pod_pages: Vec<_> = requests
            .iter()
            .filter(|request| request.path == "/api/v1/namespaces/inference/pods")
            .collect();
        let expected_pages = pods.div_ceil(500);
        assert_eq!(pod_pages.len(), expected_pages, "{extra_pods} extra pods");
        assert!(
            pod_pages
                .iter()
                .all(|page| page.query.contains("limit=500"))
        );
        assert!(
            pod_pages
                .iter()
                .skip(1)
                .all(|page| page.query.contains("continue=")),
            "later pages carry the continue token"
        );
        assert_eq!(
            requests.len(),
            REQUESTS_WITHOUT_EXTRA_PAGES + expected_pages - 1,
            "{extra_pods} extra pods: {requests:#?}"
        );
        // Never a request per pod.
        assert!(
            !requests
                .iter()
                .any(|request| request.path.contains("/pods/")),
            "{requests:#?}"
        );
    }
}

#[tokio::test]
async fn all_namespaces_lists_across_namespaces() {
    let batch_namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "batch", "labels": {"kubernetes.io/metadata.name": "batch"}},
    });
    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_objects([batch_namespace])
        .with_objects(generate_pods("batch", 3));
    let (server, inventory) = inventory_of(config, ListScope::AllNamespaces).await;
    let inventory = inventory.unwrap();
    let mut namespaces: Vec<&str> = inventory
        .pods
        .iter()
        .map(|pod| pod.metadata.namespace.as_deref().unwrap())
        .collect();
    namespaces.dedup();
    assert_eq!(namespaces, ["batch", "inference"]);
    assert_eq!(inventory.pods.len(), 4);
    assert_eq!(inventory.namespaces.len(), 4);
    let paths: Vec<String> = server.requests().into_iter().map(|r| r.path).collect();
    assert!(paths.contains(&"/api/v1/pods".to_string()), "{paths:?}");
    assert!(paths.contains(&"/apis/apps/v1/deployments".to_string()));
    assert!(
        !paths
            .iter()
            .any(|path| path.contains("/namespaces/inference/"))
    );
}

#[tokio::test]
async fn istio_absent_is_not_installed_and_the_rest_is_read() {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .istio(IstioApis::Absent);
    let (server, inventory) = inventory_of(config, in_namespace()).await;
    let inventory = inventory.unwrap();
    assert_eq!(inventory.istio, Some(IstioPresence::NotInstalled));
    assert!(inventory.virtual_services.is_empty());
    assert!(inventory.envoy_filters.is_empty());
    assert_eq!(inventory.pods.len(), 1);
    assert_eq!(inventory.gaps.len(), 1, "{:?}", inventory.gaps);
    assert_eq!(inventory.gaps[0].what, "Istio CRDs");
    assert!(inventory.gaps[0].reason.starts_with("not installed"));
    assert!(
        !server
            .requests()
            .iter()
            .any(|request| request.path.contains("istio.io")),
        "no Istio group is asked for once discovery says it is absent"
    );
}

#[tokio::test]
async fn older_istio_is_read_at_v1beta1() {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .istio(IstioApis::Legacy);
    let (_server, inventory) = inventory_of(config, in_namespace()).await;
    let inventory = inventory.unwrap();
    assert!(inventory.gaps.is_empty(), "{:?}", inventory.gaps);
    assert_eq!(
        inventory.virtual_services[0].api_version.as_deref(),
        Some("networking.istio.io/v1beta1")
    );
    assert_eq!(
        inventory.peer_authentications[0].api_version.as_deref(),
        Some("security.istio.io/v1beta1")
    );
    assert_eq!(
        inventory.envoy_filters[0].api_version.as_deref(),
        Some("networking.istio.io/v1alpha3")
    );
    assert_eq!(
        inventory.virtual_services[0].spec,
        typed::<kubectl_infermesh::evidence::objects::VirtualService>(fixtures_of_kind(
            "VirtualService"
        ))[0]
            .spec
    );
}

#[tokio::test]
async fn forbidden_envoy_filters_become_a_gap_and_the_rest_is_read() {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .forbid("envoyfilters", ForbidScope::Everywhere);
    let (_server, inventory) = inventory_of(config, in_namespace()).await;
    let inventory = inventory.unwrap();
    assert!(inventory.envoy_filters.is_empty());
    assert_eq!(inventory.gaps.len(), 1, "{:?}", inventory.gaps);
    let gap = &inventory.gaps[0];
    assert_eq!(gap.what, "EnvoyFilter list in namespace inference");
    assert!(
        gap.reason
            .starts_with("403 Forbidden: envoyfilters.networking.istio.io is forbidden"),
        "{}",
        gap.reason
    );
    assert_eq!(inventory.pods.len(), 1);
    assert_eq!(inventory.virtual_services.len(), 1);
    assert_eq!(inventory.destination_rules.len(), 1);
    assert_eq!(inventory.peer_authentications.len(), 1);
}

#[tokio::test]
async fn cluster_wide_403_falls_back_to_the_namespace_and_says_so() {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .forbid("envoyfilters", ForbidScope::ClusterWide)
        .forbid("peerauthentications", ForbidScope::ClusterWide);
    let (_server, inventory) = inventory_of(config, in_namespace()).await;
    let inventory = inventory.unwrap();
    assert_eq!(inventory.envoy_filters.len(), 1, "read in the namespace");
    // The mesh-wide PeerAuthentication in istio-system cannot be seen; the gap says where.
    assert!(inventory.peer_authentications.is_empty());
    let whats: Vec<&str> = inventory.gaps.iter().map(|gap| gap.what.as_str()).collect();
    assert_eq!(
        whats,
        [
            "EnvoyFilter list outside namespace inference",
            "PeerAuthentication list outside namespace inference"
        ]
    );
}

#[tokio::test]
async fn forbidden_nodes_and_namespace_list_still_check_the_namespace() {
    let config = ApiServerConfig::new()
        .with_fixtures()
        .forbid("nodes", ForbidScope::Everywhere)
        .forbid("namespaces", ForbidScope::ClusterWide);
    let (server, inventory) = inventory_of(config, in_namespace()).await;
    let inventory = inventory.unwrap();
    assert!(inventory.nodes.is_empty());
    assert_eq!(inventory.gaps.len(), 1, "{:?}", inventory.gaps);
    assert_eq!(inventory.gaps[0].what, "Node list");
    // Listing namespaces was forbidden, so the one namespace was read on its own.
    assert_eq!(inventory.namespaces.len(), 1);
    let labels = inventory.namespaces[0].metadata.labels.as_ref().unwrap();
    assert_eq!(labels["istio-injection"], "enabled");
    assert!(
        server
            .requests()
            .iter()
            .any(|request| request.path == "/api/v1/namespaces/inference")
    );
}

#[tokio::test]
async fn a_missing_namespace_is_a_clear_error() {
    let scope = ListScope::Namespace("inferense".to_string());
    let (_server, result) =
        inventory_of(ApiServerConfig::new().with_fixtures(), scope.clone()).await;
    let error = result.unwrap_err();
    assert_eq!(
        error.to_string(),
        "namespace \"inferense\" not found; list namespaces with kubectl get namespaces"
    );
    // Also when the namespace list is forbidden and the namespace is read on its own.
    let config = ApiServerConfig::new()
        .with_fixtures()
        .forbid("namespaces", ForbidScope::ClusterWide);
    let (_server, result) = inventory_of(config, scope).await;
    assert!(
        matches!(result, Err(ClusterError::NamespaceNotFound(_))),
        "{result:?}"
    );
}

#[tokio::test]
async fn unknown_context_lists_the_available_ones() {
    let server = ApiServer::start(ApiServerConfig::new()).await;
    let dir = TempDir::new().unwrap();
    let error = client(&server, &dir, Some("prod")).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "context \"prod\" not found in kubeconfig; available contexts: loopback, loopback-no-namespace, loopback-bad-token, loopback-wrong-ca"
    );
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn namespace_defaults_to_the_contexts() {
    let server = ApiServer::start(ApiServerConfig::new()).await;
    let dir = TempDir::new().unwrap();
    let with = client(&server, &dir, Some("loopback")).await.unwrap();
    assert_eq!(with.default_namespace(), "inference");
    let without = client(&server, &dir, Some("loopback-no-namespace"))
        .await
        .unwrap();
    assert_eq!(without.default_namespace(), "default");
    assert_eq!(with.server(), server.url());
    assert_eq!(
        ListScope::from_flags(None, false, &with),
        ListScope::Namespace("inference".into())
    );
    assert_eq!(
        ListScope::from_flags(Some("batch"), false, &with),
        ListScope::Namespace("batch".into())
    );
    assert_eq!(
        ListScope::from_flags(None, false, &without),
        ListScope::Namespace("default".into())
    );
    assert_eq!(
        ListScope::from_flags(None, true, &with),
        ListScope::AllNamespaces
    );
}

#[tokio::test]
async fn kubeconfig_paths_are_merged_first_one_winning() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let first = server.write_kubeconfig(dir.path());
    let second = KubeconfigFile::new()
        .cluster("elsewhere", "https://127.0.0.1:1", None)
        .user("someone", "x")
        .context("elsewhere", "elsewhere", "someone", Some("other"))
        .current("elsewhere")
        .write(&dir.path().join("second"));
    let missing = dir.path().join("does-not-exist");
    let joined = std::env::join_paths([&first, &missing, &second]).unwrap();
    let merged = read_kubeconfig_with(&ClusterArgs::default(), Some(&joined)).unwrap();
    assert_eq!(merged.current_context.as_deref(), Some("loopback"));
    let names: Vec<&str> = merged.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names.last(), Some(&"elsewhere"));
    // The merged config connects through the first file's current context.
    let client = ClusterClient::from_kubeconfig(merged, &ClusterArgs::default())
        .await
        .unwrap();
    let inventory = list_inventory(&client, &in_namespace()).await.unwrap();
    assert_eq!(inventory.pods.len(), 1);
    // --kubeconfig wins over KUBECONFIG.
    let only_second = ClusterArgs {
        kubeconfig: Some(second),
        ..ClusterArgs::default()
    };
    let config = read_kubeconfig_with(&only_second, Some(&joined)).unwrap();
    assert_eq!(config.current_context.as_deref(), Some("elsewhere"));
}

#[tokio::test]
async fn a_wrong_token_is_401_in_one_line() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, Some("loopback-bad-token"))
        .await
        .unwrap();
    let error = list_inventory(&client, &in_namespace()).await.unwrap_err();
    assert!(
        matches!(error, ClusterError::Unauthorized { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.contains("401 Unauthorized") && message.contains(&server.url()),
        "{message}"
    );
    assert!(!message.contains('\n'));
    assert!(
        !message.contains("not-the-token"),
        "never print credentials"
    );
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_a_tls_failure() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, Some("loopback-wrong-ca"))
        .await
        .unwrap();
    let error = list_inventory(&client, &in_namespace()).await.unwrap_err();
    assert!(matches!(error, ClusterError::Tls { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .starts_with("TLS failure talking to https://127.0.0.1:"),
        "{error}"
    );
    assert!(
        server.requests().is_empty(),
        "no request got through the handshake"
    );
}

fn kubeconfig_for(dir: &TempDir, server: &str, ca_pem: &str) -> std::path::PathBuf {
    KubeconfigFile::new()
        .cluster("dead", server, Some(ca_pem))
        .user("tester", support::apiserver::TOKEN)
        .context("dead", "dead", "tester", Some(NAMESPACE))
        .current("dead")
        .write(&dir.path().join("kubeconfig"))
}

#[tokio::test]
async fn a_closed_port_is_unreachable_quickly() {
    let server = ApiServer::start(ApiServerConfig::new()).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let dir = TempDir::new().unwrap();
    let url = format!("https://{closed}");
    let path = kubeconfig_for(&dir, &url, server.ca_pem());
    let timeout = Duration::from_secs(5);
    let client = ClusterClient::connect(&args(&path, None, timeout))
        .await
        .unwrap();
    let started = Instant::now();
    let error = list_inventory(&client, &in_namespace()).await.unwrap_err();
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert!(
        matches!(error, ClusterError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot reach the API server at {url}")),
        "{message}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_within_the_bound() {
    let server = ApiServer::start(ApiServerConfig::new()).await;
    // Accepts connections and never says a word: the TLS handshake hangs.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = silent.local_addr().unwrap();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let dir = TempDir::new().unwrap();
    let url = format!("https://{address}");
    let path = kubeconfig_for(&dir, &url, server.ca_pem());
    let timeout = Duration::from_secs(2);
    let client = ClusterClient::connect(&args(&path, None, timeout))
        .await
        .unwrap();
    let started = Instant::now();
    let error = list_inventory(&client, &in_namespace()).await.unwrap_err();
    let elapsed = started.elapsed();
    holder.abort();
    assert!(elapsed >= timeout / 2, "gave up too early: {elapsed:?}");
    assert!(elapsed < timeout * 5, "not bounded: {elapsed:?}");
    let message = error.to_string();
    assert!(message.contains(&url), "{message}");
    assert!(
        matches!(
            error,
            ClusterError::Timeout { .. } | ClusterError::Unreachable { .. }
        ),
        "{error:?}"
    );
}

#[tokio::test]
async fn port_forward_reaches_a_local_http_server_and_sends_only_gets() {
    let pod_server = support::local_http::serve_text("hello from inside the pod").await;
    let config = ApiServerConfig::new().with_fixtures().port_forward(
        NAMESPACE,
        VLLM_POD,
        8000,
        pod_server.address,
    );
    let server = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    list_inventory(&client, &in_namespace()).await.unwrap();

    let target = PodPort {
        namespace: NAMESPACE.to_string(),
        pod: VLLM_POD.to_string(),
        port: 8000,
    };
    let forward = PortForward::start(&client, target.clone()).await.unwrap();
    assert!(forward.local_addr().ip().is_loopback());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    // Several connections at once, each over its own port-forward.
    let bodies = futures_util::future::join_all((0..3).map(|_| {
        let http = http.clone();
        let url = format!("{}/health", forward.url());
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    }))
    .await;
    assert!(
        bodies
            .iter()
            .all(|body| body == "hello from inside the pod"),
        "{bodies:?}"
    );

    // The same through a bare stream.
    let mut stream = open_stream(&client, &target).await.unwrap();
    stream
        .write_all(b"GET /v1/models HTTP/1.1\r\nHost: pod\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.ends_with("hello from inside the pod"),
        "{response}"
    );
    forward.close().await;

    let requests = server.requests();
    let forwards = requests
        .iter()
        .filter(|request| request.path.ends_with("/portforward"))
        .count();
    // One check at start, three connections, one bare stream.
    assert_eq!(forwards, 5, "{requests:#?}");
    assert!(
        requests.iter().all(|request| request.method == "GET"),
        "the tool is read-only: {requests:#?}"
    );
}

#[tokio::test]
async fn a_port_nothing_listens_on_reports_the_kubelets_error() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    let target = PodPort {
        namespace: NAMESPACE.to_string(),
        pod: VLLM_POD.to_string(),
        port: 15000,
    };
    let mut stream = open_stream(&client, &target).await.unwrap();
    let message = tokio::time::timeout(Duration::from_secs(20), stream.pod_error())
        .await
        .unwrap()
        .unwrap();
    assert!(message.contains("error forwarding port 15000"), "{message}");
    assert!(message.contains("connection refused"), "{message}");
}

#[tokio::test]
async fn port_forward_to_a_missing_pod_fails_at_start() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    let target = PodPort {
        namespace: NAMESPACE.to_string(),
        pod: "vllm-gone".to_string(),
        port: 8000,
    };
    let error = PortForward::start(&client, target).await.unwrap_err();
    assert!(error.is_not_found(), "{error:?}");
    assert_eq!(
        error.to_string(),
        "port-forward to pod inference/vllm-gone port 8000: 404 NotFound: pods \"vllm-gone\" not found"
    );
}

/// Polls until connecting to `address` is refused; false if it never is within the bound.
async fn refuses_connections(address: std::net::SocketAddr) -> bool {
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(address).await.is_err() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn port_forward_closes_on_signal_and_on_drop() {
    let pod_server = support::local_http::serve_text("ok").await;
    let config = ApiServerConfig::new().with_fixtures().port_forward(
        NAMESPACE,
        VLLM_POD,
        8000,
        pod_server.address,
    );
    let server = ApiServer::start(config).await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    let target = PodPort {
        namespace: NAMESPACE.to_string(),
        pod: VLLM_POD.to_string(),
        port: 8000,
    };

    let forward = PortForward::start(&client, target.clone()).await.unwrap();
    let address = forward.local_addr();
    let (signal, fired) = tokio::sync::oneshot::channel::<()>();
    forward.close_on(async move {
        let _ = fired.await;
    });
    assert!(tokio::net::TcpStream::connect(address).await.is_ok());
    signal.send(()).unwrap();
    assert!(
        refuses_connections(address).await,
        "still listening after the signal"
    );
    drop(forward);

    let forward = PortForward::start(&client, target).await.unwrap();
    let address = forward.local_addr();
    drop(forward);
    assert!(
        refuses_connections(address).await,
        "still listening after drop"
    );
}

#[tokio::test]
async fn the_server_answers_selectors_and_absent_groups_like_a_real_one() {
    use kube::api::{Api, ListParams};
    let server = ApiServer::start(
        ApiServerConfig::new()
            .with_fixtures()
            .istio(IstioApis::Absent),
    )
    .await;
    let dir = TempDir::new().unwrap();
    let client = client(&server, &dir, None).await.unwrap();
    let pods: Api<Pod> = Api::namespaced(client.kube().clone(), NAMESPACE);
    let count = |selector: &'static str| {
        let pods = pods.clone();
        async move {
            pods.list(&ListParams::default().labels(selector))
                .await
                .unwrap()
                .items
                .len()
        }
    };
    assert_eq!(count("app=vllm").await, 1);
    assert_eq!(count("app==vllm,security.istio.io/tlsMode").await, 1);
    assert_eq!(count("app!=vllm").await, 0);
    assert_eq!(count("!pod-template-hash").await, 0);
    let error = pods
        .list(&ListParams::default().labels("app in (vllm)"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");

    let version = client.kube().apiserver_version().await.unwrap();
    assert_eq!(version.git_version, "v1.31.4");
    let core = client.kube().list_core_api_resources("v1").await.unwrap();
    assert!(core.resources.iter().any(|r| r.name == "pods/portforward"));
    let absent = client
        .kube()
        .list_api_group_resources("networking.istio.io/v1")
        .await
        .unwrap_err();
    match absent {
        kube::Error::Api(status) => {
            assert_eq!(status.code, 404);
            assert_eq!(status.reason, "NotFound");
        }
        other => panic!("expected a 404 Status, got {other:?}"),
    }
}

/// A kubeconfig whose user gets its token from an exec plugin: `plugin.sh` prints `credential`
/// and exits with `exit_code`.
fn exec_kubeconfig(
    dir: &TempDir,
    server: &ApiServer,
    credential: &str,
    exit_code: i32,
) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let plugin = dir.path().join("plugin.sh");
    std::fs::write(
        &plugin,
        format!("#!/bin/sh\ncat <<'JSON'\n{credential}\nJSON\nexit {exit_code}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&plugin, std::fs::Permissions::from_mode(0o755)).unwrap();
    KubeconfigFile::new()
        .cluster("loopback", &server.url(), Some(server.ca_pem()))
        .exec_user("exec-user", plugin.to_str().unwrap(), &[])
        .context("exec", "loopback", "exec-user", Some(NAMESPACE))
        .current("exec")
        .write(&dir.path().join("kubeconfig-exec"))
}

#[tokio::test]
async fn exec_credential_plugins_supply_the_token() {
    let server = ApiServer::start(ApiServerConfig::new().with_fixtures()).await;
    let dir = TempDir::new().unwrap();
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": support::apiserver::TOKEN},
    });
    let path = exec_kubeconfig(&dir, &server, &credential.to_string(), 0);
    let client = ClusterClient::connect(&args(&path, None, Duration::from_secs(20)))
        .await
        .unwrap();
    let inventory = list_inventory(&client, &in_namespace()).await.unwrap();
    assert_eq!(inventory.pods.len(), 1);

    // A plugin that fails: kube runs it when the client is built. Its stdout may hold
    // credentials, so the message shows only its stderr.
    let failing = exec_kubeconfig(&dir, &server, "partial-secret-output", 1);
    std::fs::write(
        dir.path().join("plugin.sh"),
        "#!/bin/sh\necho partial-secret-output\necho 'error: token expired, run: cloud login' >&2\nexit 1\n",
    )
    .unwrap();
    let error = ClusterClient::connect(&args(&failing, None, Duration::from_secs(20)))
        .await
        .unwrap_err();
    assert!(matches!(error, ClusterError::Auth { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("cannot authenticate to {}", server.url())),
        "{message}"
    );
    assert!(
        message.ends_with("error: token expired, run: cloud login"),
        "{message}"
    );
    assert!(!message.contains("partial-secret-output"), "{message}");
    assert!(!message.contains('\n'), "{message}");
}

#[test]
fn a_detached_server_serves_callers_on_other_runtimes() {
    // As an end-to-end test runs the binary: the server keeps its own runtime.
    let server = ApiServer::start_detached(ApiServerConfig::new().with_fixtures());
    let dir = TempDir::new().unwrap();
    let path = server.write_kubeconfig(dir.path());
    let caller = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let inventory = caller.block_on(async {
        let client = ClusterClient::connect(&args(&path, None, Duration::from_secs(20)))
            .await
            .unwrap();
        list_inventory(&client, &in_namespace()).await.unwrap()
    });
    assert_eq!(inventory.pods.len(), 1);
    assert_eq!(server.requests().len(), REQUESTS_WITHOUT_EXTRA_PAGES);
}

const MANIFEST: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: serving
  labels:
    istio-injection: enabled
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: llama
spec:
  replicas: 3
  selector:
    matchLabels: {app: llama}
  template:
    metadata:
      labels: {app: llama}
      annotations:
        sidecar.istio.io/proxyCPU: "2"
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5
        args: ["--model", "meta-llama/Llama-3.1-8B-Instruct"]
        resources:
          limits: {nvidia.com/gpu: "1"}
---
apiVersion: v1
kind: Service
metadata:
  name: llama
spec:
  selector: {app: llama}
  ports:
  - {name: http, port: 8000, targetPort: 8000}
"#;

#[tokio::test]
async fn rolled_out_manifests_give_live_pods_and_a_node_view() {
    let dir = TempDir::new().unwrap();
    let manifest = dir.path().join("llama.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let config = ApiServerConfig::new()
        .with_fixtures()
        .with_manifests(&manifest, "serving");
    let server = ApiServer::start(config).await;
    let client = client(&server, &dir, None).await.unwrap();
    let scope = ListScope::Namespace("serving".to_string());
    let inventory = list_inventory(&client, &scope).await.unwrap();
    assert_eq!(inventory.pods.len(), 3);
    assert_eq!(inventory.replica_sets.len(), 1);
    assert_eq!(inventory.services.len(), 1);
    for pod in &inventory.pods {
        let proxy = pod
            .spec
            .as_ref()
            .unwrap()
            .containers
            .iter()
            .find(|container| container.name == "istio-proxy")
            .expect("injected");
        let requests = proxy.resources.as_ref().unwrap().requests.as_ref().unwrap();
        assert_eq!(requests["cpu"].0, "2");
    }

    let view = kubectl_infermesh::evidence::nodes::node_view(&inventory);
    assert_eq!(view.len(), 1);
    assert_eq!(view[0].node, "gpu-node-a");
    assert_eq!(view[0].pod_count(), 3);
    assert_eq!(view[0].gpus_requested, 3);
    assert_eq!(view[0].sidecar_cpu_request_millis, 6_000);
    assert_eq!(view[0].allocatable_cpu_millis, Some(95_690));
    assert_eq!(view[0].allocatable_gpus["nvidia.com/gpu"], 8);
}

#[tokio::test]
async fn a_busy_server_is_asked_again_and_a_failing_one_is_a_gap() {
    // 429 twice, then the pods: the list succeeds after two back-offs.
    let (server, inventory) = inventory_of(
        ApiServerConfig::new()
            .with_fixtures()
            .fail_lists("pods", 429, 2),
        in_namespace(),
    )
    .await;
    let inventory = inventory.unwrap();
    assert!(!inventory.pods.is_empty(), "{:?}", inventory.gaps);
    let pod_lists = server
        .requests()
        .iter()
        .filter(|request| request.path == format!("/api/v1/namespaces/{NAMESPACE}/pods"))
        .count();
    assert_eq!(pod_lists, 3, "two refused, one answered");

    // A 500 that does not stop: bounded tries, then the run ends with the server's words.
    let (server, inventory) = inventory_of(
        ApiServerConfig::new()
            .with_fixtures()
            .fail_lists("pods", 500, 1000),
        in_namespace(),
    )
    .await;
    let error = inventory.unwrap_err().to_string();
    assert!(error.contains("500"), "{error}");
    let pod_lists = server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/pods"))
        .count();
    assert_eq!(pod_lists, 4, "bounded tries");
}

#[tokio::test]
async fn pages_that_never_end_are_cut_off_with_a_one_line_error() {
    let (server, inventory) = inventory_of(
        ApiServerConfig::new()
            .with_fixtures()
            .endless_pages("services"),
        in_namespace(),
    )
    .await;
    let error = inventory.unwrap_err().to_string();
    assert!(error.contains("go round in a circle"), "{error}");
    let service_lists = server
        .requests()
        .iter()
        .filter(|request| request.path.ends_with("/services"))
        .count();
    assert_eq!(service_lists, 2, "stopped at the first token seen again");
}
