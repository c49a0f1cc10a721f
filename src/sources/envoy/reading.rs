//! What was read from one Envoy before anyone knows which service it is judged for: its full
//! effective config, its stats, `/server_info`, and what could not be read. A reading becomes
//! `EnvoyEvidence` once the vLLM host and port are known (`EnvoyReading::evidence`), so one read
//! serves every target and the service discovery of Envoy-only runs.

use super::admin::{AdminClient, ConfigDumpQuery, ServerInfo};
use super::stats::Stats;
use crate::evidence::envoy::EnvoyEvidence;
use crate::evidence::envoy::config::EffectiveConfig;
use crate::evidence::envoy::role::EnvoyRole;
use crate::evidence::{Gap, ObjectRef};
use serde::{Deserialize, Serialize};

/// Which side of the path to vLLM an Envoy pod is on, as known from where it was found (a
/// gateway pod, a `--client` pod, a vLLM pod), before its config is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvoySide {
    /// A caller: an ingress gateway or a `--client` pod; its outbound cluster carries the
    /// VirtualService and DestinationRule settings.
    Client,
    /// The vLLM pod's own sidecar (`inbound|PORT||`).
    Server,
}

impl EnvoySide {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvoySide::Client => "client",
            EnvoySide::Server => "server",
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct EnvoyReading {
    /// `admin http://127.0.0.1:15000`, `pod istio-system/gw-7d9f (port-forward)`, `file a.json`.
    pub source: String,
    pub pod: Option<ObjectRef>,
    /// The side it was read for, when known from where it was found.
    pub side: Option<EnvoySide>,
    /// The whole effective config; `None` when it could not be read.
    pub config: Option<EffectiveConfig>,
    pub stats: Option<Stats>,
    pub server_info: Option<ServerInfo>,
    pub gaps: Vec<Gap>,
}

impl EnvoyReading {
    /// Reads `/server_info` first: an address that is refused, silent or not Envoy fails there,
    /// in one gap. Then `/config_dump` and `/stats` at once. Never fails; every call is bounded
    /// by the client's timeout.
    pub async fn read(admin: &AdminClient, source: &str) -> EnvoyReading {
        let mut reading = EnvoyReading {
            source: source.to_string(),
            ..EnvoyReading::default()
        };
        match admin.server_info().await {
            Ok(info) => reading.server_info = Some(info),
            Err(error) => {
                reading
                    .gaps
                    .push(Gap::new(format!("Envoy {source}"), error.to_string()));
                return reading;
            }
        }
        let query = ConfigDumpQuery::default();
        // One after the other, so a kept-alive connection (one port-forward) carries both.
        let config = admin.config_dump(&query).await;
        let stats = admin.stats().await;
        match config {
            Ok(config) => reading.config = Some(config),
            Err(error) => reading.gaps.push(Gap::new(
                format!("Envoy /config_dump of {source}"),
                error.to_string(),
            )),
        }
        match stats {
            Ok(stats) => reading.stats = Some(stats),
            Err(error) => reading.gaps.push(Gap::new(
                format!("Envoy /stats of {source}"),
                error.to_string(),
            )),
        }
        reading
    }

    /// A reading that failed before any admin call (e.g. the port-forward was refused).
    pub fn failed(source: &str, pod: Option<ObjectRef>, gap: Gap) -> EnvoyReading {
        EnvoyReading {
            source: source.to_string(),
            pod,
            gaps: vec![gap],
            ..EnvoyReading::default()
        }
    }

    pub fn with_side(mut self, side: EnvoySide) -> Self {
        self.side = Some(side);
        self
    }

    pub fn with_pod(mut self, pod: ObjectRef, side: EnvoySide) -> Self {
        self.pod = Some(pod);
        self.side = Some(side);
        self
    }

    /// The config was read: this Envoy can be judged.
    pub fn is_readable(&self) -> bool {
        self.config.is_some()
    }

    /// Its config or at least its `/stats` was read: what the counters show can be judged.
    pub fn is_judgeable(&self) -> bool {
        self.config.is_some() || self.stats.is_some()
    }

    /// The config to tell roles by: the config_dump, else the cluster names of `/stats`.
    pub fn role_config(&self) -> Option<std::borrow::Cow<'_, EffectiveConfig>> {
        match (&self.config, &self.stats) {
            (Some(config), _) => Some(std::borrow::Cow::Borrowed(config)),
            (None, Some(stats)) => Some(std::borrow::Cow::Owned(super::stats_clusters(stats))),
            (None, None) => None,
        }
    }

    /// The node as Envoy names itself (Istio: `sidecar~10.0.0.7~vllm-7c9d.inference~inference.svc.cluster.local`).
    pub fn node(&self) -> Option<IstioNode> {
        let from_config = self
            .config
            .as_ref()
            .and_then(|config| config.node.as_ref())
            .and_then(|node| node.id.as_deref());
        let from_info = self
            .server_info
            .as_ref()
            .and_then(|info| info.node.as_ref())
            .and_then(|node| node.id.as_deref());
        from_config.or(from_info).and_then(IstioNode::parse)
    }

    /// The node's service cluster (`vllm.inference` for an Istio sidecar: app label and namespace).
    pub fn node_cluster(&self) -> Option<&str> {
        let from_config = self
            .config
            .as_ref()
            .and_then(|config| config.node.as_ref())
            .and_then(|node| node.cluster.as_deref());
        let from_info = self
            .server_info
            .as_ref()
            .and_then(|info| info.node.as_ref())
            .and_then(|node| node.cluster.as_deref());
        from_config.or(from_info)
    }

    /// The role of this Envoy for vLLM at `host:port` (`Unrelated` when the config is unknown).
    pub fn role(&self, host: &str, port: u16) -> EnvoyRole {
        self.role_config().map_or(EnvoyRole::Unrelated, |config| {
            crate::evidence::envoy::role::role_for(&config, host, port).role
        })
    }

    /// The evidence this Envoy gives about vLLM at `host:port`; its read gaps come first.
    ///
    /// A caller's sidecar whose own app listens on the same port as vLLM also has an
    /// `inbound|PORT||` cluster, which would make it look like the server: when it was read as a
    /// client (`side`), its inbound clusters are left out of the judgement.
    pub fn evidence(&self, host: &str, port: u16) -> EnvoyEvidence {
        if let (None, Some(stats)) = (&self.config, &self.stats) {
            let mut evidence = EnvoyEvidence::from_stats_only(&self.source, host, port, stats);
            evidence.pod = self.pod.clone();
            let mut gaps = self.gaps.clone();
            gaps.append(&mut evidence.gaps);
            evidence.gaps = gaps;
            return evidence;
        }
        let empty = EffectiveConfig::default();
        let full = self.config.as_ref().unwrap_or(&empty);
        let outbound_only;
        let config = if self.side == Some(EnvoySide::Client)
            && crate::evidence::envoy::role::role_for(full, host, port).role == EnvoyRole::Server
        {
            outbound_only = EffectiveConfig {
                clusters: full
                    .clusters
                    .iter()
                    .filter(|cluster| !cluster.name.starts_with("inbound|"))
                    .cloned()
                    .collect(),
                ..full.clone()
            };
            &outbound_only
        } else {
            full
        };
        let mut evidence = EnvoyEvidence::from_parts(
            &self.source,
            host,
            port,
            config,
            self.stats.as_ref(),
            self.server_info.as_ref(),
        );
        evidence.pod = self.pod.clone();
        if !self.is_readable() {
            // The unrelated-path gap says nothing new when nothing was read.
            evidence.gaps.clear();
        }
        let mut gaps = self.gaps.clone();
        gaps.append(&mut evidence.gaps);
        evidence.gaps = gaps;
        evidence
    }
}

/// An Istio proxy's node id taken apart: `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IstioNode {
    /// `sidecar`, `router` (gateways), `waypoint`, … .
    pub kind: String,
    pub pod: String,
    pub namespace: String,
}

impl IstioNode {
    pub fn parse(id: &str) -> Option<IstioNode> {
        let mut parts = id.split('~');
        let kind = parts.next()?;
        let _ip = parts.next()?;
        let pod_and_namespace = parts.next()?;
        let (pod, namespace) = pod_and_namespace.rsplit_once('.')?;
        if kind.is_empty() || pod.is_empty() || namespace.is_empty() {
            return None;
        }
        Some(IstioNode {
            kind: kind.to_string(),
            pod: pod.to_string(),
            namespace: namespace.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_node_ids_name_the_pod_and_namespace() {
        let node = IstioNode::parse(
            "sidecar~10.0.0.7~vllm-7c9d5b8f6d-x2x7k.inference~inference.svc.cluster.local",
        )
        .unwrap();
        assert_eq!(node.kind, "sidecar");
        assert_eq!(node.pod, "vllm-7c9d5b8f6d-x2x7k");
        assert_eq!(node.namespace, "inference");
        assert!(IstioNode::parse("envoy-1").is_none());
        assert!(IstioNode::parse("router~1.2.3.4~nodots~x").is_none());
    }

    #[test]
    fn an_unread_envoy_gives_evidence_with_only_the_read_gap() {
        let reading = EnvoyReading::failed(
            "pod inference/vllm-0 (port-forward)",
            Some(ObjectRef::new("Pod", Some("inference"), "vllm-0")),
            Gap::new(
                "Envoy admin of pod inference/vllm-0",
                "port-forward refused",
            ),
        );
        assert!(!reading.is_readable());
        let evidence = reading.evidence("vllm.inference.svc.cluster.local", 8000);
        assert_eq!(evidence.role.role, EnvoyRole::Unrelated);
        assert_eq!(evidence.gaps.len(), 1, "{:?}", evidence.gaps);
        assert_eq!(evidence.pod.unwrap().name, "vllm-0");
        assert_eq!(
            reading.role("vllm.inference.svc.cluster.local", 8000),
            EnvoyRole::Unrelated
        );
    }
}
