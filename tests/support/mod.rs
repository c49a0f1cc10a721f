//! Helpers shared by integration tests; a test file takes them with `mod support;`.
//! Not every test file uses every helper.
#![allow(dead_code, unused_imports)]

pub mod ambient_mesh;
pub mod apiserver;
pub mod envoy_pair;
pub mod envoy_traffic;
pub mod gateway_api_mesh;
pub mod kubeconfig;
pub mod kubectl_bin;
pub mod live_mesh;
pub mod local_http;
pub mod proxies;
pub mod scale_cluster;
