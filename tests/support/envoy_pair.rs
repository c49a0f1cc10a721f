//! A real Envoy pair in front of the lab server, shaped like Istio's ingress path: a gateway-like
//! client Envoy, a sidecar-like server Envoy, mTLS between them (`lab::envoy::pair`, the code
//! the `lab` command runs).

use kubectl_infermesh::lab::envoy::bootstrap::{ClientBootstrap, ServerBootstrap};
use kubectl_infermesh::lab::envoy::launcher::{EnvoyProcess, LaunchOptions};
use kubectl_infermesh::lab::envoy::pair;
use kubectl_infermesh::lab::{RunningServer, ServerConfig};
use std::net::SocketAddr;

pub struct Pair {
    pub lab: RunningServer,
    pub server: EnvoyProcess,
    pub client: EnvoyProcess,
    /// The client Envoy's listener, where test requests go.
    pub entry: SocketAddr,
}

/// Starts one Envoy; a missing Envoy fails the test with the launcher's install hint.
pub async fn start_envoy(name: &str, bootstrap: String) -> EnvoyProcess {
    EnvoyProcess::start(LaunchOptions::new(name, bootstrap))
        .await
        .unwrap_or_else(|error| panic!("{name} Envoy: {error}"))
}

/// Starts one Envoy and returns it with the loopback address of its listener `listener`.
pub async fn start_listening(
    name: &str,
    bootstrap: String,
    listener: &str,
) -> (EnvoyProcess, SocketAddr) {
    let envoy = start_envoy(name, bootstrap).await;
    let port = envoy
        .listener_port(listener)
        .await
        .unwrap_or_else(|error| panic!("{name} Envoy: {error}"));
    (envoy, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// The pair in ambient mode: the client Envoy sends to the pod over HBONE, the server Envoy
/// plays its ztunnel.
pub async fn start_hbone_pair(lab_config: ServerConfig) -> Pair {
    start_pair(lab_config, |client, server| {
        client.hbone = true;
        server.hbone = true;
    })
    .await
}

/// The lab server, a server Envoy in front of it and a client Envoy in front of that, with mTLS
/// between the Envoys; `configure` turns the knobs of the failure mode. A missing Envoy fails
/// the test with the launcher's install hint.
pub async fn start_pair(
    lab_config: ServerConfig,
    configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
) -> Pair {
    let pair::Pair {
        client,
        server,
        lab,
        entry,
    } = pair::Pair::start(None, lab_config, configure)
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    Pair {
        lab,
        server,
        client,
        entry,
    }
}
