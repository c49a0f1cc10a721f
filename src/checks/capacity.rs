//! What the workload serves at once, and the one rule by which a pool limit is judged against
//! it, whether the limit is written in a DestinationRule or Sidecar or run by an Envoy cluster:
//! one replica runs `--max-num-seqs` sequences (vLLM's default 256 is assumed and named when the
//! flag is absent); a caller's outbound cluster is cluster-wide and needs replicas ×
//! max-num-seqs; each pod's inbound side needs one replica's worth.

use super::Severity;
use crate::evidence::TargetEvidence;

/// `maxRequestsPerConnection` / `max_requests_per_connection` at or below this forces frequent
/// reconnects.
pub const FEW_REQUESTS_PER_CONNECTION: u64 = 10;

/// The concurrency the workload serves.
#[derive(Debug, Clone)]
pub struct Capacity {
    pub per_replica: u64,
    pub replicas: u64,
    pub fleet: u64,
    /// What a fix raises a limit to: the fleet plus half again, for scale-out.
    pub recommended: u64,
    pub assumptions: Vec<String>,
}

impl Capacity {
    /// The target's capacity with at least `replicas` replicas (an Endpoint target counts what
    /// a proxy's cluster lists).
    pub fn of(target: &TargetEvidence, replicas: u64) -> Capacity {
        let (per_replica, assumed) = target.workload.vllm.concurrency();
        let per_replica = u64::from(per_replica);
        let mut replicas = replicas.max(1);
        let mut assumptions = Vec::new();
        if assumed {
            assumptions.push(format!(
                "--max-num-seqs not set: assumed vLLM's default {per_replica} (recent versions use 1024 on large GPUs)"
            ));
        }
        if let Some(scaler) = &target.mesh.autoscaler {
            let max = u64::try_from(scaler.max_replicas).unwrap_or_default();
            if max > replicas {
                replicas = max;
            }
            assumptions.push(format!(
                "{} scales {} between {} and {} replicas: a caller's pool is judged against the {} the autoscaler may run",
                scaler.label(),
                target.workload.target_name(),
                scaler.min_replicas,
                scaler.max_replicas,
                replicas
            ));
        }
        let fleet = per_replica * replicas;
        Capacity {
            per_replica,
            replicas,
            fleet,
            recommended: (fleet * 3).div_ceil(2),
            assumptions,
        }
    }

    pub fn fleet_text(&self) -> String {
        format!(
            "replicas × max-num-seqs = {} × {} = {}",
            self.replicas, self.per_replica, self.fleet
        )
    }
}

/// How a limit bites: its severity, the headline of a finding it leads, and the note on its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    pub severity: Severity,
    pub headline: String,
    pub note: String,
}

/// A cap on concurrent streams (`maxConnections`/`max_connections` under HTTP/1.1,
/// `http2MaxRequests`/`max_requests`) on `scope`: critical below one replica's max-num-seqs, a
/// warning below the fleet where the fleet goes through it (`fleet_applies`: an outbound cluster).
pub fn concurrency(
    value: u64,
    unit: &str,
    effect: &str,
    scope: &str,
    capacity: &Capacity,
    fleet_applies: bool,
) -> Option<Judged> {
    if value < capacity.per_replica {
        Some(Judged {
            severity: Severity::Critical,
            headline: format!(
                "caps {scope} at {value} {unit}; one replica serves {} (max-num-seqs)",
                capacity.per_replica
            ),
            note: format!(
                "below one replica's max-num-seqs ({}): {effect}",
                capacity.per_replica
            ),
        })
    } else if fleet_applies && value < capacity.fleet {
        Some(Judged {
            severity: Severity::Warning,
            headline: format!("caps {scope} at {value} {unit}; {}", capacity.fleet_text()),
            note: format!(
                "below {} for callers through {scope}: {effect}",
                capacity.fleet_text()
            ),
        })
    } else {
        None
    }
}

/// Requests allowed to wait for a connection (`http1MaxPendingRequests`/`max_pending_requests`),
/// against `needed` (`needed_text` says what that is).
pub fn pending(value: u64, scope: &str, needed: u64, needed_text: &str) -> Option<Judged> {
    (value < needed).then(|| Judged {
        severity: Severity::Warning,
        headline: format!("lets only {value} requests wait for a connection on {scope}"),
        note: format!(
            "below {needed_text}: a burst of new streams waits while connections open and overflows with 503 (UO)"
        ),
    })
}

/// Requests per connection before it is closed, when that is few enough to cost first tokens.
pub fn per_connection(value: u64, scope: &str) -> Option<Judged> {
    (value > 0 && value <= FEW_REQUESTS_PER_CONNECTION).then(|| Judged {
        severity: Severity::Warning,
        headline: format!("closes {scope} connections every {value} requests"),
        note: format!(
            "a new connection, and with mTLS a new handshake, every {value} requests: first tokens wait for it"
        ),
    })
}
