//! What can go wrong talking to a cluster, each in one line that says what to do.
//! kube's errors are classified here so no other module inspects them.

use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no kubeconfig found: set KUBECONFIG or pass --kubeconfig")]
    NoKubeconfig,

    #[error("cannot read kubeconfig: {0}")]
    Kubeconfig(String),

    #[error("cannot read kubeconfig: no file named in KUBECONFIG exists ({paths})")]
    KubeconfigFilesMissing { paths: String },

    #[error("context {name:?} not found in kubeconfig; available contexts: {available}")]
    UnknownContext { name: String, available: String },

    #[error("kubeconfig has no current context; pass --context (available contexts: {available})")]
    NoCurrentContext { available: String },

    #[error("cluster {name:?} not found in kubeconfig; available clusters: {available}")]
    UnknownCluster { name: String, available: String },

    #[error("user {name:?} not found in kubeconfig; available users: {available}")]
    UnknownUser { name: String, available: String },

    #[error(
        "cannot reach the API server at {server}: {reason}; check that the cluster is up and the context is right"
    )]
    Unreachable { server: String, reason: String },

    #[error(
        "the API server at {server} did not answer {what} within {timeout}; check the network or raise --request-timeout"
    )]
    Timeout {
        server: String,
        what: String,
        timeout: String,
    },

    #[error(
        "the API server at {server} rejected the credentials (401 Unauthorized); log in again or refresh the kubeconfig user's token"
    )]
    Unauthorized { server: String },

    #[error(
        "TLS failure talking to {server}: {reason}; check certificate-authority in the kubeconfig"
    )]
    Tls { server: String, reason: String },

    #[error("cannot authenticate to {server}: {reason}")]
    Auth { server: String, reason: String },

    #[error("namespace {0:?} not found; list namespaces with kubectl get namespaces")]
    NamespaceNotFound(String),

    /// A Kubernetes `Status` answer other than 401 (403 and 404 become gaps where a kind may be
    /// absent or forbidden).
    #[error("{what}: {code} {reason}: {message}")]
    Api {
        what: String,
        code: u16,
        reason: String,
        message: String,
    },

    #[error("{what}: the API server's answer could not be read: {reason}")]
    Decode { what: String, reason: String },

    #[error("{what}: {reason}")]
    Other { what: String, reason: String },
}

impl ClusterError {
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ClusterError::Api { code: 403, .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, ClusterError::Api { code: 404, .. })
    }

    /// The server is busy or failing for now (429 Too Many Requests, a 5xx): worth asking again.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ClusterError::Api {
                code: 429 | 500..=599,
                ..
            }
        )
    }

    /// The short reason a gap shows: `403 Forbidden: …`.
    pub fn gap_reason(&self) -> String {
        match self {
            ClusterError::Api {
                code,
                reason,
                message,
                ..
            } => format!("{code} {reason}: {message}"),
            other => other.to_string(),
        }
    }

    /// Maps a kube error for the request `what` sent to `server`.
    pub fn from_kube(error: kube::Error, server: &str, what: &str) -> Self {
        let server = server.to_string();
        let what = what.to_string();
        match error {
            kube::Error::Api(status) => {
                if status.code == 401 {
                    return ClusterError::Unauthorized { server };
                }
                let reason = if status.reason.is_empty() {
                    status_text(status.code)
                } else {
                    status.reason.clone()
                };
                ClusterError::Api {
                    what,
                    code: status.code,
                    reason,
                    message: one_line(&status.message),
                }
            }
            kube::Error::Auth(auth) => ClusterError::Auth {
                server,
                reason: describe_auth(&auth),
            },
            kube::Error::RustlsTls(tls) => ClusterError::Tls {
                server,
                reason: one_line(&tls.to_string()),
            },
            kube::Error::SerdeError(serde) => ClusterError::Decode {
                what,
                reason: serde.to_string(),
            },
            kube::Error::HyperError(hyper) => classify_transport(&hyper, server),
            kube::Error::Service(service) => classify_transport(service.as_ref(), server),
            kube::Error::UpgradeConnection(upgrade) => ClusterError::Other {
                what,
                reason: one_line(&upgrade.to_string()),
            },
            other => ClusterError::Other {
                what,
                reason: one_line(&other.to_string()),
            },
        }
    }

    pub fn timeout(server: &str, what: &str, timeout: Duration) -> Self {
        ClusterError::Timeout {
            server: server.to_string(),
            what: what.to_string(),
            timeout: crate::units::duration::display(timeout),
        }
    }
}

/// Connection-level failures: refused, reset, DNS, TLS handshake, connect timeout.
fn classify_transport(error: &(dyn std::error::Error + 'static), server: String) -> ClusterError {
    let mut innermost = error.to_string();
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(layer) = current {
        if let Some(tls) = layer.downcast_ref::<rustls::Error>() {
            return ClusterError::Tls {
                server,
                reason: one_line(&tls.to_string()),
            };
        }
        innermost = layer.to_string();
        current = match layer.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::TimedOut => {
                return ClusterError::Unreachable {
                    server,
                    reason: "connect timed out".to_string(),
                };
            }
            // An io::Error's `source` skips the error it wraps; connectors nest them.
            Some(io) => match io.get_ref() {
                Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
                None => layer.source(),
            },
            None => layer.source(),
        };
    }
    ClusterError::Unreachable {
        server,
        reason: one_line(&innermost),
    }
}

/// Auth failures in one line. A failed exec plugin shows its exit status and the end of its
/// stderr, never its stdout (which is where credentials go).
fn describe_auth(error: &kube::client::AuthError) -> String {
    match error {
        kube::client::AuthError::AuthExecRun { out, .. } => {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let last_line = stderr
                .lines()
                .map(str::trim)
                .rfind(|line| !line.is_empty())
                .unwrap_or("it wrote nothing on stderr");
            format!(
                "the kubeconfig user's exec credential plugin failed ({}): {}",
                out.status,
                one_line(last_line)
            )
        }
        kube::client::AuthError::AuthExecStart(io) => {
            format!("cannot start the kubeconfig user's exec credential plugin: {io}")
        }
        other => one_line(&other.to_string()),
    }
}

fn status_text(code: u16) -> String {
    http::StatusCode::from_u16(code)
        .ok()
        .and_then(|status| status.canonical_reason())
        .unwrap_or("error")
        .to_string()
}

/// Error text from servers and libraries can span lines; users get one.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `a, b, c`, or `(none)`.
pub(crate) fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.into_iter().collect();
    if names.is_empty() {
        "(none)".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn a_401_names_the_server_and_what_to_do() {
        let error = ClusterError::from_kube(
            status(401, "Unauthorized", "Unauthorized"),
            "https://k8s:6443",
            "Pod list",
        );
        assert!(matches!(error, ClusterError::Unauthorized { .. }));
        assert!(error.to_string().contains("https://k8s:6443"));
    }

    #[test]
    fn a_403_is_forbidden_with_the_server_message_on_one_line() {
        let error = ClusterError::from_kube(
            status(403, "Forbidden", "envoyfilters is forbidden:\n cannot list"),
            "https://k8s:6443",
            "EnvoyFilter list",
        );
        assert!(error.is_forbidden());
        assert!(!error.is_not_found());
        assert_eq!(
            error.gap_reason(),
            "403 Forbidden: envoyfilters is forbidden: cannot list"
        );
    }

    #[test]
    fn io_timeout_and_refusal_are_unreachable() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = classify_transport(&refused, "https://x".to_string());
        assert!(
            matches!(error, ClusterError::Unreachable { ref reason, .. } if reason == "refused")
        );
        let timed_out = std::io::Error::new(std::io::ErrorKind::TimedOut, "slow");
        let error = classify_transport(&timed_out, "https://x".to_string());
        assert!(error.to_string().contains("connect timed out"));
    }

    #[test]
    fn a_rustls_error_inside_nested_io_errors_is_tls() {
        let inner = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let io = std::io::Error::other(inner);
        let error = classify_transport(&io, "https://x".to_string());
        assert!(matches!(error, ClusterError::Tls { .. }), "{error}");
    }

    #[test]
    fn name_lists_say_none_when_empty() {
        assert_eq!(name_list([]), "(none)");
        assert_eq!(name_list(["a", "b"]), "a, b");
    }
}
