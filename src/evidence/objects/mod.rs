//! The routing and policy objects as read from the cluster or manifests (typed subsets, unjudged).
//! A new routing API is one file here beside `istio`, plus its resolution in `resolve`.

pub mod autoscaling;
pub mod gateway_api;
pub mod inference;
pub mod istio;

pub use autoscaling::Autoscaler;
pub use gateway_api::{GatewayClass, KubeGateway, KubeGrpcRoute, KubeHttpRoute};
pub use inference::{InferenceObjective, InferencePool};
pub use istio::*;
