//! The failure modes the `lab` command reproduces: for each, the lab server's behaviour and the
//! Envoy knobs that make it happen, and the root cause `diagnose --probe` should name.

use super::envoy::bootstrap::{ClientBootstrap, ServerBootstrap};
use super::{Pause, ServerConfig};
use crate::evidence::CheckId;
use std::time::Duration;

/// One reproducible state of the lab mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    Healthy,
    StreamTimeout,
    StreamIdle,
    ConnectionPool,
    BufferLimit,
    ColdStart,
}

/// The limit the buffer-limit scenario sets on the gateway's listener.
const SMALL_BUFFER_BYTES: u32 = 16 * 1024;

impl Scenario {
    pub const ALL: [Scenario; 6] = [
        Scenario::Healthy,
        Scenario::StreamTimeout,
        Scenario::StreamIdle,
        Scenario::ConnectionPool,
        Scenario::BufferLimit,
        Scenario::ColdStart,
    ];

    /// The name the command line uses.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Healthy => "healthy",
            Scenario::StreamTimeout => "stream-timeout",
            Scenario::StreamIdle => "stream-idle",
            Scenario::ConnectionPool => "connection-pool",
            Scenario::BufferLimit => "buffer-limit",
            Scenario::ColdStart => "cold-start",
        }
    }

    /// What is set up, in a line.
    pub fn describe(self) -> &'static str {
        match self {
            Scenario::Healthy => "Istio's defaults on both Envoys; vLLM streams 20 tokens/s",
            Scenario::StreamTimeout => {
                "the gateway's route has a 2s timeout (a VirtualService http[].timeout); vLLM streams 20 tokens/s"
            }
            Scenario::StreamIdle => {
                "the sidecar's stream_idle_timeout is 2s; vLLM pauses 4s after 10 tokens"
            }
            Scenario::ConnectionPool => {
                "the gateway's cluster allows 1 connection and 1 pending request (a DestinationRule connectionPool)"
            }
            Scenario::BufferLimit => {
                "the gateway buffers whole responses (a Lua filter) with a 16 KiB per-connection buffer limit"
            }
            Scenario::ColdStart => {
                "vLLM's first request waits 3s for warm-up and the mTLS connection is new"
            }
        }
    }

    /// The root cause a correct diagnosis names; `None` for a healthy mesh.
    pub fn expected_root_cause(self) -> Option<CheckId> {
        match self {
            Scenario::Healthy => None,
            Scenario::StreamTimeout | Scenario::StreamIdle => Some(CheckId::StreamTimeout),
            Scenario::ConnectionPool => Some(CheckId::ConnectionPool),
            Scenario::BufferLimit => Some(CheckId::BufferLimit),
            Scenario::ColdStart => Some(CheckId::ColdStart),
        }
    }

    /// How the vLLM-compatible server behaves.
    pub fn server_config(self) -> ServerConfig {
        let paced = ServerConfig {
            tokens_per_second: 20.0,
            ..ServerConfig::default()
        };
        match self {
            Scenario::Healthy | Scenario::StreamTimeout | Scenario::ConnectionPool => paced,
            Scenario::StreamIdle => ServerConfig {
                pause: Some(Pause {
                    after_tokens: 10,
                    duration: Duration::from_secs(4),
                }),
                ..paced
            },
            // Fast, so a body over the limit arrives within the probe's budget.
            Scenario::BufferLimit => ServerConfig {
                tokens_per_second: 2000.0,
                ..ServerConfig::default()
            },
            Scenario::ColdStart => ServerConfig {
                warmup_delay: Duration::from_secs(3),
                ..paced
            },
        }
    }

    /// Turns the Envoy knobs of this scenario; the rest stays what istiod writes.
    pub fn configure(self, client: &mut ClientBootstrap, server: &mut ServerBootstrap) {
        match self {
            Scenario::Healthy | Scenario::ColdStart => {}
            Scenario::StreamTimeout => client.knobs.route_timeout = Duration::from_secs(2),
            Scenario::StreamIdle => server.knobs.stream_idle_timeout = Duration::from_secs(2),
            Scenario::ConnectionPool => {
                client.knobs.circuit_breakers.max_connections = 1;
                client.knobs.circuit_breakers.max_pending_requests = 1;
            }
            Scenario::BufferLimit => {
                client.knobs.listener_buffer_limit_bytes = Some(SMALL_BUFFER_BYTES);
                client.knobs.lua_buffers_response = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn names_are_unique_and_only_healthy_expects_no_root_cause() {
        let mut names: Vec<&str> = Scenario::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Scenario::ALL.len());
        for scenario in Scenario::ALL {
            let expected = scenario.expected_root_cause();
            assert_eq!(expected.is_none(), scenario == Scenario::Healthy);
        }
    }

    #[test]
    fn only_the_faults_change_istios_defaults() {
        let any = SocketAddr::from(([127, 0, 0, 1], 9));
        for scenario in Scenario::ALL {
            let (mut client, mut server) = (ClientBootstrap::new(any), ServerBootstrap::new(any));
            scenario.configure(&mut client, &mut server);
            let untouched =
                client.knobs == Default::default() && server.knobs == Default::default();
            let server_plays_it = scenario.server_config().pause.is_some()
                || !scenario.server_config().warmup_delay.is_zero();
            assert_eq!(
                untouched,
                scenario == Scenario::Healthy || scenario == Scenario::ColdStart,
                "{scenario:?}"
            );
            assert_eq!(
                server_plays_it,
                matches!(scenario, Scenario::StreamIdle | Scenario::ColdStart),
                "{scenario:?}"
            );
        }
    }
}
