//! A kube client built the way kubectl builds its own: the kubeconfig and flags as kubectl reads
//! them (`kubeconfig`), the connection as kubectl makes it (`transport`: proxy, TLS trust); every
//! request bounded by `--request-timeout`.

use super::args::ClusterArgs;
use super::error::ClusterError;
use super::kubeconfig;
use super::transport;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::future::Future;
use std::time::Duration;

/// kube's own bound on connecting, used when `--request-timeout 0` asks for no request deadline.
const CONNECT_TIMEOUT_WITHOUT_DEADLINE: Duration = Duration::from_secs(30);

/// A connected client and what it was built from. Its Debug output never holds credentials.
#[derive(Clone)]
pub struct ClusterClient {
    client: kube::Client,
    context: String,
    server: String,
    default_namespace: String,
    deadline: Option<Duration>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("context", &self.context)
            .field("server", &self.server)
            .field("default_namespace", &self.default_namespace)
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// kube is built with rustls on ring; rustls needs the process-wide provider chosen once.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ClusterClient {
    /// Reads the kubeconfig the flags and `KUBECONFIG` point at and builds a client for the chosen
    /// context. Sends no request.
    pub async fn connect(args: &ClusterArgs) -> Result<Self, ClusterError> {
        Self::build(kubeconfig::resolve(args)?, args).await
    }

    /// Builds a client from an already read kubeconfig (flags other than `--kubeconfig` apply).
    pub async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        args: &ClusterArgs,
    ) -> Result<Self, ClusterError> {
        Self::build(kubeconfig::resolve_from(kubeconfig, args)?, args).await
    }

    async fn build(
        resolved: kubeconfig::Resolved,
        args: &ClusterArgs,
    ) -> Result<Self, ClusterError> {
        install_crypto_provider();
        let kubeconfig::Resolved {
            kubeconfig,
            context,
            proxy_url,
        } = resolved;
        let options = KubeConfigOptions {
            context: Some(context.clone()),
            cluster: args.cluster.clone(),
            user: args.user.clone(),
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|error| {
                ClusterError::Kubeconfig(super::error::one_line(&error.to_string()))
            })?;
        let deadline = args.request_deadline();
        // Reads stay unbounded at the socket so port-forward streams may idle; each request is
        // bounded as a whole by `call`.
        config.read_timeout = None;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let environment = |name: &str| std::env::var(name).ok();
        let client = transport::client(
            config,
            proxy_url.as_deref(),
            deadline.unwrap_or(CONNECT_TIMEOUT_WITHOUT_DEADLINE),
            &environment,
        )
        .map_err(|error| match error {
            transport::TransportError::Kube(error) => {
                ClusterError::from_kube(error, &server, "building the client")
            }
            other => ClusterError::Kubeconfig(other.to_string()),
        })?;
        Ok(Self {
            client,
            context,
            server,
            default_namespace,
            deadline,
        })
    }

    pub fn kube(&self) -> &kube::Client {
        &self.client
    }

    /// The context in use (the current one or `--context`).
    pub fn context(&self) -> &str {
        &self.context
    }

    /// The API server URL, for messages.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The context's namespace, else `default`: what `-n` falls back to.
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// The per-request deadline; `None` for `--request-timeout 0`.
    pub fn deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Runs one API request under the deadline and maps its error; `what` names it in messages.
    pub async fn call<T>(
        &self,
        what: &str,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, ClusterError> {
        let result = match self.deadline {
            Some(deadline) => tokio::time::timeout(deadline, request)
                .await
                .map_err(|_| ClusterError::timeout(&self.server, what, deadline))?,
            None => request.await,
        };
        result.map_err(|error| ClusterError::from_kube(error, &self.server, what))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::cluster::kubeconfig::choose_context;

    const KUBECONFIG: &str = r#"
apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev-cluster
  cluster: {server: "https://127.0.0.1:6443"}
- name: prod-cluster
  cluster: {server: "https://127.0.0.1:7443"}
users:
- name: alice
  user: {token: "secret-token-value"}
contexts:
- name: dev
  context: {cluster: dev-cluster, user: alice, namespace: inference}
- name: prod
  context: {cluster: prod-cluster, user: alice}
"#;

    fn kubeconfig() -> Kubeconfig {
        Kubeconfig::from_yaml(KUBECONFIG).unwrap()
    }

    #[test]
    fn current_context_is_the_default() {
        assert_eq!(
            choose_context(&kubeconfig(), &ClusterArgs::default()).unwrap(),
            "dev"
        );
    }

    #[test]
    fn unknown_context_lists_the_available_ones() {
        let args = ClusterArgs {
            context: Some("staging".into()),
            ..ClusterArgs::default()
        };
        let error = choose_context(&kubeconfig(), &args).unwrap_err();
        assert_eq!(
            error.to_string(),
            "context \"staging\" not found in kubeconfig; available contexts: dev, prod"
        );
    }

    #[test]
    fn unknown_cluster_and_user_are_errors_not_silent_defaults() {
        let args = ClusterArgs {
            cluster: Some("nope".into()),
            ..ClusterArgs::default()
        };
        let error = choose_context(&kubeconfig(), &args).unwrap_err();
        assert!(error.to_string().contains("dev-cluster, prod-cluster"));
        let args = ClusterArgs {
            user: Some("bob".into()),
            ..ClusterArgs::default()
        };
        let error = choose_context(&kubeconfig(), &args).unwrap_err();
        assert!(error.to_string().contains("available users: alice"));
    }

    #[test]
    fn no_current_context_asks_for_one() {
        let mut config = kubeconfig();
        config.current_context = None;
        let error = choose_context(&config, &ClusterArgs::default()).unwrap_err();
        assert!(error.to_string().contains("pass --context"), "{error}");
    }

    #[tokio::test]
    async fn namespace_comes_from_the_context_and_debug_hides_the_token() {
        let client = ClusterClient::from_kubeconfig(kubeconfig(), &ClusterArgs::default())
            .await
            .unwrap();
        assert_eq!(client.default_namespace(), "inference");
        assert_eq!(client.server(), "https://127.0.0.1:6443");
        let args = ClusterArgs {
            context: Some("prod".into()),
            ..ClusterArgs::default()
        };
        let prod = ClusterClient::from_kubeconfig(kubeconfig(), &args)
            .await
            .unwrap();
        assert_eq!(prod.default_namespace(), "default");
        assert_eq!(prod.server(), "https://127.0.0.1:7443");
        let debug = format!("{client:?} {prod:?}");
        assert!(!debug.contains("secret-token-value"), "{debug}");
    }

    #[tokio::test]
    async fn cluster_flag_overrides_the_contexts_cluster() {
        let args = ClusterArgs {
            cluster: Some("prod-cluster".into()),
            ..ClusterArgs::default()
        };
        let client = ClusterClient::from_kubeconfig(kubeconfig(), &args)
            .await
            .unwrap();
        assert_eq!(client.server(), "https://127.0.0.1:7443");
        assert_eq!(client.default_namespace(), "inference");
    }
}
