//! Envoy counters around each probe path: every admin API is read before a path runs and after
//! it, and what moved between the two is the path's runtime evidence (docs/facts.md "What a client
//! sees"). The direct path bypasses every Envoy, so on a quiet proxy only the mesh path moves it.

use crate::evidence::Gap;
use crate::evidence::envoy::counters::{Snapshot, Targets, delta};
use crate::evidence::probe::path::PathKind;
use crate::evidence::probe::report::CounterDelta;
use crate::sources::envoy::admin::{AdminClient, ConfigDumpQuery};

/// One Envoy admin API to read, named for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminEndpoint {
    /// `http://127.0.0.1:15000`, or the local end of a port-forward.
    pub url: String,
    /// What it is: the URL itself, or `pod/istio-ingressgateway-… (gateway)`.
    pub name: String,
}

impl AdminEndpoint {
    /// An endpoint the user gave by URL, named by it.
    pub fn from_url(url: &str) -> Self {
        Self {
            url: url.to_string(),
            name: url.to_string(),
        }
    }
}

#[derive(Debug)]
struct Source {
    name: String,
    admin: AdminClient,
    targets: Targets,
}

/// The Envoys whose counters are read around each path; empty when none was given.
#[derive(Debug, Default)]
pub struct EnvoyCounters {
    sources: Vec<Source>,
}

impl EnvoyCounters {
    pub fn none() -> Self {
        Self::default()
    }

    /// Reads each admin's config to know which clusters and HCMs to watch: the path to
    /// `service` (host and port) when known, else everything the Envoy has. An admin that
    /// cannot be read is left out, with the reason in `gaps`.
    pub async fn connect(
        endpoints: &[AdminEndpoint],
        service: Option<(&str, u16)>,
        gaps: &mut Vec<Gap>,
    ) -> Self {
        let mut sources = Vec::new();
        for endpoint in endpoints {
            let admin = match AdminClient::new(&endpoint.url) {
                Ok(admin) => admin,
                Err(error) => {
                    gaps.push(Gap::new(
                        format!("Envoy counters of {}", endpoint.name),
                        error.to_string(),
                    ));
                    continue;
                }
            };
            let full = match admin.config_dump(&ConfigDumpQuery::default()).await {
                Ok(config) => config,
                Err(error) => {
                    gaps.push(Gap::new(
                        format!("Envoy counters of {}", endpoint.name),
                        error.to_string(),
                    ));
                    continue;
                }
            };
            let config = match service {
                Some((host, port)) => {
                    let path = full.path_to(host, port);
                    if path.clusters.is_empty() {
                        gaps.push(Gap::new(
                            format!("Envoy counters of {}", endpoint.name),
                            format!(
                                "it has no cluster for {host}:{port}: all its clusters are watched"
                            ),
                        ));
                        full
                    } else {
                        path
                    }
                }
                None => full,
            };
            sources.push(Source {
                name: endpoint.name.clone(),
                admin,
                targets: Targets::from_config(&config),
            });
        }
        Self { sources }
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Names of the Envoys read, in order.
    pub fn names(&self) -> Vec<String> {
        self.sources
            .iter()
            .map(|source| source.name.clone())
            .collect()
    }

    /// One snapshot per Envoy, read at once; `None` (and a gap) where `/stats` failed.
    pub async fn snapshot(&self, gaps: &mut Vec<Gap>) -> Vec<Option<Snapshot>> {
        let reads = futures_util::future::join_all(
            self.sources
                .iter()
                .map(|source| async move { source.admin.stats().await }),
        )
        .await;
        reads
            .into_iter()
            .zip(&self.sources)
            .map(|(read, source)| match read {
                Ok(stats) => {
                    let snapshot = stats.snapshot(&source.targets);
                    if snapshot.has_trimmed_stats()
                        && let Some(advice) = snapshot.stats_matcher_advice()
                    {
                        gaps.push(Gap::new(
                            format!("Envoy counters of {}", source.name),
                            format!("trimmed by Istio's default stats matcher, so only istio_requests_total is compared: keep them with the pod annotation proxy.istio.io/config: '{{proxyStatsMatcher: {{inclusionPrefixes: [{}]}}}}' and restart the pod",
                            advice
                                .inclusion_prefixes
                                .iter()
                                .map(|prefix| format!("\"{prefix}\""))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    }
                    Some(snapshot)
                }
                Err(error) => {
                    gaps.push(Gap::new(format!("Envoy counters of {}", source.name), error.to_string()));
                    None
                }
            })
            .collect()
    }

    /// What moved on each Envoy between `before` and `after` (snapshots in `snapshot`'s order).
    pub fn deltas(
        &self,
        path: PathKind,
        before: &[Option<Snapshot>],
        after: &[Option<Snapshot>],
    ) -> Vec<CounterDelta> {
        self.sources
            .iter()
            .zip(before.iter().zip(after))
            .filter_map(|(source, pair)| match pair {
                (Some(before), Some(after)) => Some((source, delta(before, after))),
                _ => None,
            })
            .flat_map(|(source, moved)| {
                moved.into_iter().map(move |moved| CounterDelta {
                    path,
                    source: source.name.clone(),
                    delta: moved.change() as f64,
                    name: moved.key,
                    mode: moved.mode,
                    before: moved.before as f64,
                    after: moved.after as f64,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::CheckId;
    use crate::sources::envoy::stats::Stats;

    const CLUSTER: &str = "outbound|8000||vllm.inference.svc.cluster.local";

    fn snapshot(timeouts: u64) -> Snapshot {
        let stats = Stats::parse_text(&format!(
            "cluster.{CLUSTER}.upstream_rq_timeout: {timeouts}\ncluster.{CLUSTER}.upstream_rq_total: 9\n"
        ))
        .unwrap();
        let targets = Targets {
            clusters: vec![CLUSTER.to_string()],
            ..Targets::default()
        };
        stats.snapshot(&targets)
    }

    #[test]
    fn deltas_name_the_path_the_envoy_and_the_mode() {
        let counters = EnvoyCounters {
            sources: vec![Source {
                name: "gateway".to_string(),
                admin: AdminClient::new("http://127.0.0.1:1").unwrap(),
                targets: Targets::default(),
            }],
        };
        let moved = counters.deltas(PathKind::Mesh, &[Some(snapshot(2))], &[Some(snapshot(3))]);
        assert_eq!(moved.len(), 1, "{moved:?}");
        let timeout = &moved[0];
        assert_eq!(timeout.path, PathKind::Mesh);
        assert_eq!(timeout.source, "gateway");
        assert_eq!(
            timeout.name,
            format!("cluster.{CLUSTER}.upstream_rq_timeout")
        );
        assert_eq!(
            (timeout.before, timeout.after, timeout.delta),
            (2.0, 3.0, 1.0)
        );
        assert_eq!(timeout.mode, Some(CheckId::StreamTimeout));
        // A snapshot that could not be read gives no delta rather than a wrong one.
        assert!(
            counters
                .deltas(PathKind::Mesh, &[None], &[Some(snapshot(3))])
                .is_empty()
        );
    }

    #[tokio::test]
    async fn an_unreachable_admin_is_a_gap() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let mut gaps = Vec::new();
        let counters = EnvoyCounters::connect(
            &[
                AdminEndpoint::from_url(&url),
                AdminEndpoint::from_url("ftp://x"),
            ],
            None,
            &mut gaps,
        )
        .await;
        assert!(counters.is_empty());
        assert_eq!(gaps.len(), 2, "{gaps:?}");
        assert!(gaps[0].what.contains(&url), "{gaps:?}");
    }
}
