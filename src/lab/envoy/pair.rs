//! The lab's mesh on loopback: the vLLM-compatible server, a sidecar-like server Envoy in front
//! of it and a gateway-like client Envoy in front of that, with Istio mTLS between the Envoys.
//! Dropping the pair kills both Envoys and stops the server.

use super::bootstrap::{BootstrapError, ClientBootstrap, MeshCertificates, ServerBootstrap};
use super::launcher::{EnvoyProcess, LaunchError, LaunchOptions};
use crate::lab::{LabError, RunningServer, ServerConfig};
use std::net::SocketAddr;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("lab server: {0}")]
    Server(#[from] LabError),
    #[error(transparent)]
    Certificates(#[from] BootstrapError),
    #[error("{side} Envoy: {source}")]
    Envoy {
        side: &'static str,
        #[source]
        source: LaunchError,
    },
}

/// A running lab mesh. The server Envoy is dropped before the client Envoy and the lab server
/// last, in field order.
pub struct Pair {
    pub client: EnvoyProcess,
    pub server: EnvoyProcess,
    pub lab: RunningServer,
    /// The client Envoy's listener: the mesh path's entry.
    pub entry: SocketAddr,
}

impl Pair {
    /// Starts the lab server with `lab_config`, then the two Envoys from `envoy` (or the one
    /// `find_envoy` finds), with `configure` setting the knobs of each side.
    pub async fn start(
        envoy: Option<&Path>,
        lab_config: ServerConfig,
        configure: impl FnOnce(&mut ClientBootstrap, &mut ServerBootstrap),
    ) -> Result<Pair, PairError> {
        let lab = crate::lab::spawn(lab_config).await?;
        let certificates = MeshCertificates::generate()?;
        let mut server_bootstrap = ServerBootstrap::new(lab.addr());
        server_bootstrap.mtls = Some(certificates.clone());
        // The upstream address is set once the server Envoy's port is known.
        let mut client_bootstrap = ClientBootstrap::new(lab.addr());
        client_bootstrap.mtls = Some(certificates);
        configure(&mut client_bootstrap, &mut server_bootstrap);
        let server = launch(envoy, "server", server_bootstrap.to_json()).await?;
        let server_port = listener(&server, "server", &server_bootstrap.listener_name()).await?;
        client_bootstrap.upstream = SocketAddr::from(([127, 0, 0, 1], server_port));
        let client = launch(envoy, "client", client_bootstrap.to_json()).await?;
        let client_port = listener(&client, "client", &client_bootstrap.listener_name()).await?;
        Ok(Pair {
            client,
            server,
            lab,
            entry: SocketAddr::from(([127, 0, 0, 1], client_port)),
        })
    }

    /// `http://127.0.0.1:PORT` of the client Envoy's listener.
    pub fn mesh_url(&self) -> String {
        format!("http://{}", self.entry)
    }

    /// The process ids of both Envoys.
    pub fn envoy_pids(&self) -> [u32; 2] {
        [self.client.pid(), self.server.pid()]
    }
}

async fn launch(
    envoy: Option<&Path>,
    side: &'static str,
    bootstrap: String,
) -> Result<EnvoyProcess, PairError> {
    let options = LaunchOptions::new(side, bootstrap);
    let started = match envoy {
        Some(binary) => EnvoyProcess::start_with(binary, options).await,
        None => EnvoyProcess::start(options).await,
    };
    started.map_err(|source| PairError::Envoy { side, source })
}

async fn listener(
    process: &EnvoyProcess,
    side: &'static str,
    name: &str,
) -> Result<u16, PairError> {
    process
        .listener_port(name)
        .await
        .map_err(|source| PairError::Envoy { side, source })
}
