//! The failure modes: ids, numbers and titles that JSON consumers, exit codes and every stage share.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The failure modes, with the ids and numbers that JSON consumers and exit codes rely on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckId {
    SidecarOverhead,
    StreamTimeout,
    ConnectionPool,
    BufferLimit,
    ColdStart,
    EndpointPicker,
}

impl CheckId {
    /// Every failure mode, in number order. JSON consumers must expect new ids to be added.
    pub const ALL: [CheckId; 6] = [
        CheckId::SidecarOverhead,
        CheckId::StreamTimeout,
        CheckId::ConnectionPool,
        CheckId::BufferLimit,
        CheckId::ColdStart,
        CheckId::EndpointPicker,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CheckId::SidecarOverhead => "sidecar-overhead",
            CheckId::StreamTimeout => "stream-timeout",
            CheckId::ConnectionPool => "connection-pool",
            CheckId::BufferLimit => "buffer-limit",
            CheckId::ColdStart => "cold-start",
            CheckId::EndpointPicker => "endpoint-picker",
        }
    }

    pub fn number(self) -> u8 {
        match self {
            CheckId::SidecarOverhead => 1,
            CheckId::StreamTimeout => 2,
            CheckId::ConnectionPool => 3,
            CheckId::BufferLimit => 4,
            CheckId::ColdStart => 5,
            CheckId::EndpointPicker => 6,
        }
    }

    /// The failure mode's name, as a root cause is titled.
    pub fn title(self) -> &'static str {
        match self {
            CheckId::SidecarOverhead => "Sidecar overhead on GPU pods",
            CheckId::StreamTimeout => "Streaming cut early by a timeout",
            CheckId::ConnectionPool => "Connection-pool limits reject work",
            CheckId::BufferLimit => "Buffer limits on large bodies",
            CheckId::ColdStart => "Cold pod: mTLS handshake and model warm-up paid by users",
            CheckId::EndpointPicker => {
                "Inference Gateway endpoint picker (EPP) refuses or bypasses requests"
            }
        }
    }
}

impl fmt::Display for CheckId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
