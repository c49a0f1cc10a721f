//! The streaming probe: the same generation straight to vLLM and through the mesh, timed token by
//! token (docs/facts.md "What a client sees", "vLLM").

pub mod args;
pub mod client;
pub mod envoy_counters;
pub mod live;
pub mod modes;
pub mod planned;
pub mod request;
pub mod run;
pub mod sse;
pub mod summary;
pub mod tls;
pub mod vllm_metrics;
pub mod warmup;

pub use args::{ProbeArgs, ProbeOutput};
pub use run::{run, run_in, run_with};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("give --direct-url, --mesh-url or both (http://HOST:PORT of vLLM's OpenAI server)")]
    NoPath,
    #[error("invalid URL {url:?}: {reason}; expected http://HOST:PORT or https://HOST:PORT")]
    InvalidUrl { url: String, reason: String },
    /// A certificate or handshake problem on an https URL, with what to do.
    #[error("{url}: {problem}")]
    Tls { url: String, problem: String },
    #[error(
        "--mesh-ca {path}: {reason}; give a PEM file of the CA certificates that sign the gateway's certificate"
    )]
    MeshCa { path: String, reason: String },
    #[error(
        "no CA certificates found on this system to verify https URLs; give the gateway's CA with --mesh-ca FILE, or --mesh-insecure-skip-tls-verify"
    )]
    NoTrustRoots,
    #[error("--mesh-host {host:?} cannot be a TLS server name: {reason}")]
    InvalidMeshHost { host: String, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    #[error("cannot find the served model at {url}: {reason}; pass --model NAME")]
    ModelDiscovery { url: String, reason: String },
    #[error(
        "the warm-up request that sizes --duration failed at {url}: {outcome}; retry with --max-tokens instead of --duration"
    )]
    Warmup { url: String, outcome: String },
}
