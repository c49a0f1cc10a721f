//! A real Envoy pair in front of the lab server, shaped like Istio's ingress path: a gateway-like
//! client Envoy, a sidecar-like server Envoy, mTLS between them.

use kubectl_infermesh::lab::envoy::bootstrap::{
    ClientBootstrap, MeshCertificates, ServerBootstrap,
};
use kubectl_infermesh::lab::envoy::launcher::{EnvoyProcess, LaunchOptions};
use kubectl_infermesh::lab::{self, RunningServer, ServerConfig};
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

/// The lab server, a server Envoy in front of it and a client Envoy in front of that, with mTLS
/// between the Envoys; `configure` turns the knobs of the failure mode.
pub async fn start_pair(
    lab_config: ServerConfig,
    configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
) -> Pair {
    let lab = lab::spawn(lab_config).await.unwrap();
    let certificates = MeshCertificates::generate().unwrap();
    let mut server_bootstrap = ServerBootstrap::new(lab.addr());
    server_bootstrap.mtls = Some(certificates.clone());
    // The upstream address is set once the server Envoy's port is known.
    let mut client_bootstrap = ClientBootstrap::new(lab.addr());
    client_bootstrap.mtls = Some(certificates);
    configure(&mut client_bootstrap, &mut server_bootstrap);
    let server = start_envoy("server", server_bootstrap.to_json()).await;
    let server_port = server
        .listener_port(&server_bootstrap.listener_name())
        .await
        .unwrap();
    client_bootstrap.upstream = SocketAddr::from(([127, 0, 0, 1], server_port));
    let client = start_envoy("client", client_bootstrap.to_json()).await;
    let client_port = client
        .listener_port(&client_bootstrap.listener_name())
        .await
        .unwrap();
    Pair {
        lab,
        server,
        client,
        entry: SocketAddr::from(([127, 0, 0, 1], client_port)),
    }
}
