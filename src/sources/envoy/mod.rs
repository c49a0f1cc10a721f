//! Envoy as a source: the admin client, the `/stats` and `config_dump` parsers, and the readings
//! that become `EnvoyEvidence` (the vocabulary in `evidence::envoy`), from admin ports or saved
//! dumps.

pub mod admin;
pub mod attach;
pub mod config_dump;
pub mod discover;
pub mod reading;
pub mod saved;
pub mod stats;

use crate::evidence::Gap;
use crate::evidence::envoy::config::EffectiveConfig;
use crate::evidence::envoy::counters::{Snapshot, Targets};
use crate::evidence::envoy::role::{self, EnvoyRole};
use crate::evidence::envoy::{ControlPlaneGuess, EnvoyEvidence};
use admin::{AdminClient, ConfigDumpQuery, ServerInfo};
use config_dump::ConfigDumpError;
use stats::{Stats, StatsError};

/// Errors reading evidence the user saved (`--envoy-dump`).
#[derive(Debug, thiserror::Error)]
pub enum SavedEvidenceError {
    #[error("{path}: {source}")]
    ConfigDump {
        path: String,
        #[source]
        source: ConfigDumpError,
    },
    #[error("{path}: {source}")]
    Stats {
        path: String,
        #[source]
        source: StatsError,
    },
}

impl EnvoyEvidence {
    /// Builds the evidence from what was read; `config` is the full effective config.
    pub fn from_parts(
        source: &str,
        host: &str,
        port: u16,
        config: &EffectiveConfig,
        stats: Option<&Stats>,
        server_info: Option<&ServerInfo>,
    ) -> EnvoyEvidence {
        let role = role::role_for(config, host, port);
        let path = config.path_to(host, port);
        let mut gaps = Vec::new();
        if role.role == EnvoyRole::Unrelated {
            gaps.push(Gap::new(
                format!("Envoy path to {host}:{port} in {source}"),
                role.reason.clone(),
            ));
        }
        let counters = stats.map(|stats| stats.snapshot(&Targets::from_config(&path)));
        let trimmed_by = stats.map(|stats| trimmed_by(config, stats));
        let stats_matcher_advice = counters
            .as_ref()
            .filter(|_| trimmed_by.as_ref().is_some_and(|why| why.istio))
            .and_then(Snapshot::stats_matcher_advice);
        if let Some(snapshot) = &counters {
            let trimmed: Vec<String> = snapshot
                .missing
                .iter()
                .filter(|stat| !stat.scope_present)
                .map(|stat| format!("{}.{}", stat.scope.root(), stat.scope_name))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            if !trimmed.is_empty()
                && let Some(why) = &trimmed_by
            {
                gaps.push(Gap::new(
                    format!("Envoy counters {} in {source}", trimmed.join(", ")),
                    why.reason,
                ));
            }
        }
        EnvoyEvidence {
            source: source.to_string(),
            pod: None,
            role,
            envoy_version: server_info
                .and_then(ServerInfo::envoy_version)
                .map(str::to_string),
            server_state: server_info.and_then(|info| info.state.clone()),
            config: path,
            delimited_stat_names: stats.is_some_and(Stats::uses_delimited_names),
            counters,
            stats_matcher_advice,
            gaps,
            control_plane: Some(ControlPlaneGuess::of(config)),
            stats_only: false,
        }
    }

    /// Evidence from `/stats` alone (no config_dump of the same Envoy): its role from the
    /// cluster names the stats carry, the counters of those clusters and of the HCMs for the
    /// port, and the configuration marked as not read. The checks judge what counters show.
    pub fn from_stats_only(source: &str, host: &str, port: u16, stats: &Stats) -> EnvoyEvidence {
        let named = stats_clusters(stats);
        let mut role = role::role_for(&named, host, port);
        if role.role != EnvoyRole::Unrelated {
            role.reason = format!(
                "{} (from its /stats cluster names: no config_dump was read)",
                role.reason
            );
        }
        let suffix = format!("_{port}");
        let targets = Targets {
            clusters: role.clusters.clone(),
            hcms: stats
                .hcm_prefixes()
                .into_iter()
                .filter(|prefix| prefix.trim_end_matches(';').ends_with(&suffix))
                .collect(),
            ..Targets::default()
        };
        let mut gaps = vec![Gap::new(
            format!("Envoy configuration of {source}"),
            "not read: only /stats was given, so settings are not judged, only what the counters show; save /config_dump beside it (gw.json and gw.stats.txt) to judge the configuration",
        )];
        if role.role == EnvoyRole::Unrelated {
            gaps.push(Gap::new(
                format!("Envoy path to {host}:{port} in {source}"),
                role.reason.clone(),
            ));
        }
        let counters = (role.role != EnvoyRole::Unrelated).then(|| stats.snapshot(&targets));
        EnvoyEvidence {
            source: source.to_string(),
            pod: None,
            role,
            envoy_version: None,
            server_state: None,
            config: EffectiveConfig::default(),
            delimited_stat_names: stats.uses_delimited_names(),
            counters,
            stats_matcher_advice: None,
            gaps,
            control_plane: Some(ControlPlaneGuess::of(&named)),
            stats_only: true,
        }
    }

    /// Reads one Envoy through its admin API. Never fails: what could not be read becomes a gap.
    pub async fn gather(admin: &AdminClient, source: &str, host: &str, port: u16) -> EnvoyEvidence {
        let query = ConfigDumpQuery::default();
        let (server_info, config, stats) = tokio::join!(
            admin.server_info(),
            admin.config_dump(&query),
            admin.stats(),
        );
        let mut gaps = Vec::new();
        let server_info = server_info
            .map_err(|error| {
                gaps.push(Gap::new(
                    format!("Envoy /server_info of {source}"),
                    error.to_string(),
                ))
            })
            .ok();
        let config = config
            .map_err(|error| {
                gaps.push(Gap::new(
                    format!("Envoy /config_dump of {source}"),
                    error.to_string(),
                ))
            })
            .unwrap_or_default();
        let stats = stats
            .map_err(|error| {
                gaps.push(Gap::new(
                    format!("Envoy /stats of {source}"),
                    error.to_string(),
                ))
            })
            .ok();
        let mut evidence = EnvoyEvidence::from_parts(
            source,
            host,
            port,
            &config,
            stats.as_ref(),
            server_info.as_ref(),
        );
        gaps.append(&mut evidence.gaps);
        evidence.gaps = gaps;
        evidence
    }

    /// Evidence from files a user saved: a `config_dump` (or `istioctl proxy-config … -o json`)
    /// and, optionally, `/stats` in text or JSON form.
    pub fn from_saved(
        source: &str,
        host: &str,
        port: u16,
        config_dump_text: &str,
        stats_text: Option<&str>,
    ) -> Result<EnvoyEvidence, SavedEvidenceError> {
        let config = config_dump::parse(config_dump_text).map_err(|source_error| {
            SavedEvidenceError::ConfigDump {
                path: source.to_string(),
                source: source_error,
            }
        })?;
        let stats = stats_text
            .map(|text| {
                if text.trim_start().starts_with('{') {
                    Stats::parse_json(text)
                } else {
                    Stats::parse_text(text)
                }
            })
            .transpose()
            .map_err(|source_error| SavedEvidenceError::Stats {
                path: source.to_string(),
                source: source_error,
            })?;
        Ok(EnvoyEvidence::from_parts(
            source,
            host,
            port,
            &config,
            stats.as_ref(),
            None,
        ))
    }
}

/// The clusters `/stats` names, as a config of names only (for roles, never judged).
pub fn stats_clusters(stats: &Stats) -> EffectiveConfig {
    EffectiveConfig {
        clusters: stats
            .cluster_names()
            .iter()
            .map(|name| crate::evidence::envoy::config::ClusterConfig::named(name))
            .collect(),
        ..EffectiveConfig::default()
    }
}

/// Why counters on the path are absent from the stats read.
struct TrimmedBy {
    istio: bool,
    reason: &'static str,
}

/// Counters of a scope on the path are absent: Istio's default stats matcher removes them
/// (its `istio_requests_total` present, no `cluster.*` scope but xDS's), the bootstrap's
/// `stats_matcher` does, or the file just does not hold them (a `grep` may have cut them).
fn trimmed_by(config: &EffectiveConfig, stats: &Stats) -> TrimmedBy {
    let istio_set = stats.istio_requests().next().is_some()
        && stats
            .cluster_names()
            .iter()
            .all(|name| name == "xds-grpc" || name == "sds-grpc");
    let istio_node = config
        .node
        .as_ref()
        .is_some_and(|node| node.istio_version.is_some());
    if istio_set || (istio_node && config.stats_inclusion.is_some()) {
        return TrimmedBy {
            istio: true,
            reason: "trimmed by Istio's default stats matcher: add the proxyStatsMatcher annotation and restart the pod",
        };
    }
    if config.stats_inclusion.is_some() {
        return TrimmedBy {
            istio: false,
            reason: "left out by the proxy's stats matcher (bootstrap stats_config): include them in it",
        };
    }
    TrimmedBy {
        istio: false,
        reason: "not in the file: save the whole /stats output of the same Envoy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = r#"{"configs":[{"@type":"type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
        "dynamic_active_clusters":[{"cluster":{"name":"outbound|8000||vllm.ns.svc.cluster.local","connect_timeout":"10s"}},
                                   {"cluster":{"name":"outbound|9000||other.ns.svc.cluster.local"}}]}]}"#;

    #[test]
    fn saved_files_give_evidence_with_trimming_as_a_gap() {
        let stats = "reporter=.=source;.;response_code=.=504;.;response_flags=.=UT;.;istio_requests_total: 3\n\
                     cluster.outbound|8000||vllm.ns.svc.cluster.local;.upstream_rq_timeout: 1\n";
        let evidence = EnvoyEvidence::from_saved(
            "saved/gateway.json",
            "vllm.ns.svc.cluster.local",
            8000,
            DUMP,
            Some(stats),
        )
        .unwrap();
        assert_eq!(evidence.role.role, EnvoyRole::Client);
        assert_eq!(evidence.config.clusters.len(), 1);
        assert!(evidence.delimited_stat_names);
        let counters = evidence.counters.as_ref().unwrap();
        assert_eq!(
            counters.value("cluster.outbound|8000||vllm.ns.svc.cluster.local.upstream_rq_timeout"),
            Some(1)
        );
        assert_eq!(
            counters.value("istio_requests_total{response_code=\"504\",response_flags=\"UT\"}"),
            Some(3)
        );
        // The cluster scope exists (some stats kept), so nothing is reported as trimmed.
        assert!(evidence.gaps.is_empty(), "{:?}", evidence.gaps);
        let json = serde_json::to_string(&evidence).unwrap();
        let back: EnvoyEvidence = serde_json::from_str(&json).unwrap();
        assert_eq!(back, evidence);
    }

    #[test]
    fn trimmed_stats_and_unrelated_proxies_become_gaps() {
        let trimmed = EnvoyEvidence::from_saved(
            "pod/gw",
            "vllm.ns.svc.cluster.local",
            8000,
            DUMP,
            Some("server.live: 1\n"),
        )
        .unwrap();
        assert_eq!(trimmed.gaps.len(), 1, "{:?}", trimmed.gaps);
        assert!(
            trimmed.gaps[0]
                .what
                .contains("cluster.outbound|8000||vllm.ns.svc.cluster.local")
        );
        // A file without the counters, and nothing that looks like Istio's trimmed set: the
        // tool cannot know why they are absent.
        assert!(
            trimmed.gaps[0].reason.starts_with("not in the file"),
            "{:?}",
            trimmed.gaps
        );
        assert!(trimmed.stats_matcher_advice.is_none());
        // Istio's default set: istio_requests_total, and no cluster.* scope but xds-grpc.
        let istio = EnvoyEvidence::from_saved(
            "pod/gw",
            "vllm.ns.svc.cluster.local",
            8000,
            DUMP,
            Some(
                "reporter=.=source;.;response_code=.=200;.;istio_requests_total: 3\n\
                 cluster.xds-grpc.upstream_cx_total: 1\n",
            ),
        )
        .unwrap();
        assert_eq!(istio.gaps.len(), 1, "{:?}", istio.gaps);
        assert!(
            istio.gaps[0]
                .reason
                .starts_with("trimmed by Istio's default stats matcher"),
            "{:?}",
            istio.gaps
        );
        assert!(istio.stats_matcher_advice.is_some());

        let unrelated =
            EnvoyEvidence::from_saved("pod/x", "llm.other.svc.cluster.local", 8000, DUMP, None)
                .unwrap();
        assert_eq!(unrelated.role.role, EnvoyRole::Unrelated);
        assert_eq!(unrelated.gaps.len(), 1);
        assert!(unrelated.counters.is_none());

        let error = EnvoyEvidence::from_saved("dump.json", "h", 1, "nope", None).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("dump.json: config_dump is not JSON"),
            "{error}"
        );
    }
}
