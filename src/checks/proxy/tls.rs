//! TLS on the path as the proxies run it: whether the client side's cluster originates (Istio)
//! mTLS and the vLLM pod's sidecar terminates it, with the handshakes and connect times the
//! counters show (`ssl.handshake`, `ssl.session_reused`, `upstream_cx_connect_ms`, which includes
//! the TLS handshake). Cold-start uses it in place of the PeerAuthentication guess.

use super::{Proxy, chain_label, cluster_path};
use crate::checks::EvidenceLine;
use crate::evidence::SidecarMode;
use crate::evidence::TargetEvidence;
use crate::evidence::envoy::config::{ClusterConfig, HBONE_CLUSTER, UpstreamTls, is_hbone_stat};
use crate::evidence::envoy::counters::StatKind;
use crate::evidence::envoy::role::EnvoyRole;

/// What the proxies show about TLS on the path.
#[derive(Debug, Clone, Default)]
pub struct TlsFacts {
    /// Some proxy on the path originates or terminates TLS.
    pub in_effect: bool,
    /// Config lines (the TLS sockets), then counter lines.
    pub lines: Vec<EvidenceLine>,
    /// Handshakes counted on the client side (new upstream connections); `None` when no
    /// proxy reported the stat (trimmed, or /stats not read).
    pub handshakes: Option<u64>,
    /// The client side's P99 connect time in ms, TLS included, when recorded.
    pub connect_p99_ms: Option<f64>,
    /// Labels of the proxies read, for titles.
    pub proxies: Vec<String>,
    /// How the vLLM pod's sidecar takes connections: `STRICT` (every chain for the port asks
    /// for a client certificate), `PERMISSIVE` (a plaintext chain beside the TLS one), or
    /// `TLS` (no client certificate asked); `None` when no server-side chain terminates TLS.
    pub inbound_mode: Option<&'static str>,
    /// The path reaches the (ambient) pods over HBONE: its handshakes are the tunnel's
    /// (`connect_originate`), one per new connection to a destination pod's ztunnel.
    pub hbone: bool,
}

/// `None` when no proxy on the path was read.
pub fn facts(target: &TargetEvidence) -> Option<TlsFacts> {
    let proxies = super::proxies(target);
    if proxies.is_empty() {
        return None;
    }
    let ambient = target.mesh.sidecar_mode == SidecarMode::Ambient;
    let mut facts = TlsFacts::default();
    for proxy in &proxies {
        facts.proxies.push(proxy.label());
        config_lines(proxy, ambient, &mut facts);
        counter_lines(proxy, ambient, &mut facts);
    }
    Some(facts)
}

fn config_lines(proxy: &Proxy, ambient: bool, facts: &mut TlsFacts) {
    let config = proxy.config();
    if proxy.role() != EnvoyRole::Server {
        for cluster in &config.clusters {
            let Some((field, value, note)) = cluster_tls(proxy.role(), cluster, ambient) else {
                continue;
            };
            facts.hbone |= ambient && cluster.hbone;
            facts.in_effect = true;
            facts.lines.push(
                proxy
                    .line(cluster_path(cluster, field), value)
                    .with_note(note),
            );
        }
    }
    for (listener, chain, _) in config.hcms() {
        if let Some(tls) = &chain.tls {
            facts.in_effect = true;
            // STRICT only when every chain for the port asks for TLS: a plaintext chain beside
            // it (Istio's `raw_buffer` match) takes what arrives without TLS.
            let plaintext_beside = listener.filter_chains.iter().any(|other| {
                other.hcm.is_some()
                    && other.tls.is_none()
                    && other.destination_port == chain.destination_port
            });
            let (value, mode) = match (tls.require_client_certificate, plaintext_beside) {
                (true, false) => ("TLS, client certificate required (mTLS STRICT)", "STRICT"),
                (true, true) => (
                    "TLS with a client certificate, or plaintext on a raw_buffer chain beside it (mTLS PERMISSIVE: plaintext accepted)",
                    "PERMISSIVE",
                ),
                (false, false) => ("TLS", "TLS"),
                (false, true) => ("TLS, or plaintext on a chain beside it", "PERMISSIVE"),
            };
            if proxy.role() == EnvoyRole::Server
                && facts.inbound_mode.is_none_or(|seen| seen == "STRICT")
            {
                facts.inbound_mode = Some(mode);
            }
            facts.lines.push(
                proxy
                    .line(
                        format!(
                            "listener {}/filter_chains[{}]/transport_socket",
                            listener.name,
                            chain_label(chain)
                        ),
                        value,
                    )
                    .with_note("terminates TLS for each new downstream connection"),
            );
        }
    }
}

/// How a client-side cluster secures the hop: its config field, what it says, and what that
/// costs. An ambient target is reached over HBONE where the cluster sends it; a sidecar target
/// by `tlsMode-istio`, and the tunnel (there for other, ambient, destinations) is off its path.
fn cluster_tls(
    role: EnvoyRole,
    cluster: &ClusterConfig,
    ambient: bool,
) -> Option<(&'static str, &'static str, &'static str)> {
    let is_tunnel = cluster.name == HBONE_CLUSTER;
    if is_tunnel && !ambient {
        return None;
    }
    if ambient && cluster.hbone {
        // A gateway picks HBONE per endpoint by a match; a waypoint's clusters have the
        // internal upstream as their one socket.
        let field = match role {
            EnvoyRole::Waypoint => "transport_socket",
            _ => "transport_socket_matches[hbone]",
        };
        return Some((
            field,
            "HBONE, through connect_originate",
            "the ambient pods are reached through the HBONE tunnel: HTTP/2 CONNECT over mTLS to port 15008 of their ztunnel",
        ));
    }
    const NEW_CONNECTION: &str =
        "every new upstream connection pays a TLS handshake before its first request";
    Some(match &cluster.tls {
        UpstreamTls::None => return None,
        UpstreamTls::IstioMutual { .. } => (
            "transport_socket_matches[tlsMode-istio]",
            "Istio mTLS to endpoints labelled tlsMode: istio",
            NEW_CONNECTION,
        ),
        UpstreamTls::Tls { .. } if is_tunnel => (
            "transport_socket",
            "mTLS (the HBONE tunnel)",
            "every new tunnel connection to a destination pays an mTLS handshake before its first request",
        ),
        UpstreamTls::Tls { .. } => ("transport_socket", "TLS", NEW_CONNECTION),
    })
}

fn counter_lines(proxy: &Proxy, ambient: bool, facts: &mut TlsFacts) {
    let Some(snapshot) = &proxy.evidence.counters else {
        return;
    };
    for reading in snapshot.readings.values() {
        let stat = reading.stat.as_str();
        if !ambient && is_hbone_stat(stat) {
            continue;
        }
        let leaf_is = |leaf: &str| stat.ends_with(&format!(".{leaf}"));
        // The vLLM pod's sidecar connects to the app over plaintext loopback: no TLS in it.
        if reading.kind == StatKind::Histogram
            && leaf_is("upstream_cx_connect_ms")
            && proxy.role() != EnvoyRole::Server
        {
            let (Some(p50), Some(p99)) = (reading.p50, reading.p99) else {
                continue;
            };
            if proxy.role() != EnvoyRole::Server {
                facts.connect_p99_ms =
                    Some(facts.connect_p99_ms.map_or(p99, |known| known.max(p99)));
            }
            facts.lines.push(
                proxy
                    .line(stat, format!("P50 {p50} ms, P99 {p99} ms"))
                    .with_note("upstream connect time, TLS handshake included; cumulative"),
            );
        } else if leaf_is("ssl.handshake") {
            if stat.starts_with("cluster.") {
                facts.handshakes = Some(facts.handshakes.unwrap_or_default() + reading.value);
            }
            if reading.value == 0 {
                continue;
            }
            facts.lines.push(
                proxy
                    .line(stat, reading.value.to_string())
                    .with_note("TLS handshakes since the proxy started: one per new connection"),
            );
        } else if leaf_is("ssl.session_reused") && reading.value > 0 {
            facts.lines.push(
                proxy
                    .line(stat, reading.value.to_string())
                    .with_note("TLS sessions resumed (cheaper handshakes)"),
            );
        } else if (leaf_is("ssl.connection_error") || leaf_is("ssl.fail_verify_san"))
            && reading.value > 0
        {
            facts.lines.push(
                proxy.line(stat, reading.value.to_string()).with_note(
                    "TLS handshakes that failed: requests on those connections failed too",
                ),
            );
        }
    }
}
