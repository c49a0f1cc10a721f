//! The live cluster as a source: a kube client from kubeconfig, the inventory by list calls, and
//! port-forward streams to pods.

pub mod admin_failures;
pub mod admin_reads;
pub mod args;
pub mod client;
pub mod discovery;
pub mod error;
pub mod inventory;
pub mod kubeconfig;
pub mod list;
pub mod paths;
pub mod portforward;
pub mod proxy;
pub mod selected;
pub mod slim;
pub mod transport;
pub mod trust;

pub use args::ClusterArgs;
pub use client::ClusterClient;
pub use error::ClusterError;
pub use inventory::{ListScope, list_inventory};
pub use portforward::{PodPort, PodStream, PortForward, open_stream};
