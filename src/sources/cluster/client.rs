//! A kube client built the way kubectl picks its target: `--kubeconfig` or `KUBECONFIG` (merged),
//! `--context`, `--cluster`, `--user`; every request bounded by `--request-timeout`.

use super::args::ClusterArgs;
use super::error::{ClusterError, name_list};
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
        let kubeconfig = read_kubeconfig(args)?;
        Self::from_kubeconfig(kubeconfig, args).await
    }

    /// Builds a client from an already read kubeconfig (flags other than `--kubeconfig` apply).
    pub async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        args: &ClusterArgs,
    ) -> Result<Self, ClusterError> {
        install_crypto_provider();
        let context = choose_context(&kubeconfig, args)?;
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
        config.connect_timeout = Some(deadline.unwrap_or(CONNECT_TIMEOUT_WITHOUT_DEADLINE));
        // Reads stay unbounded at the socket so port-forward streams may idle; each request is
        // bounded as a whole by `call`.
        config.read_timeout = None;
        let server = config.cluster_url.to_string();
        let server = server.trim_end_matches('/').to_string();
        let default_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config)
            .map_err(|error| ClusterError::from_kube(error, &server, "building the client"))?;
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

/// `--kubeconfig` alone when given (as kubectl), else `KUBECONFIG` merged, else `~/.kube/config`.
pub fn read_kubeconfig(args: &ClusterArgs) -> Result<Kubeconfig, ClusterError> {
    read_kubeconfig_with(args, std::env::var_os("KUBECONFIG").as_deref())
}

/// [`read_kubeconfig`] with the value of `KUBECONFIG` given, so it can be tested without the
/// process environment. Several paths are merged as kubectl does: the first to set a value wins.
pub fn read_kubeconfig_with(
    args: &ClusterArgs,
    kubeconfig_env: Option<&std::ffi::OsStr>,
) -> Result<Kubeconfig, ClusterError> {
    let unreadable = |error: kube::config::KubeconfigError| {
        ClusterError::Kubeconfig(super::error::one_line(&error.to_string()))
    };
    if let Some(path) = &args.kubeconfig {
        return Kubeconfig::read_from(path).map_err(unreadable);
    }
    let paths: Vec<std::path::PathBuf> = kubeconfig_env
        .map(|value| {
            std::env::split_paths(value)
                .filter(|path| !path.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    if paths.is_empty() {
        return match home_kubeconfig() {
            Some(path) if path.exists() => Kubeconfig::read_from(path).map_err(unreadable),
            _ => Err(ClusterError::NoKubeconfig),
        };
    }
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        // kubectl skips KUBECONFIG entries that do not exist.
        if !path.exists() {
            continue;
        }
        let next = Kubeconfig::read_from(path).map_err(unreadable)?;
        merged = Some(match merged {
            Some(merged) => merged.merge(next).map_err(unreadable)?,
            None => next,
        });
    }
    merged.ok_or_else(|| {
        ClusterError::Kubeconfig(format!(
            "no file named in KUBECONFIG exists ({})",
            paths
                .iter()
                .map(|path| path.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

fn home_kubeconfig() -> Option<std::path::PathBuf> {
    std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".kube").join("config"))
}

/// The context name to use, checked against the kubeconfig along with `--cluster` and `--user`.
pub fn choose_context(kubeconfig: &Kubeconfig, args: &ClusterArgs) -> Result<String, ClusterError> {
    let contexts = || name_list(kubeconfig.contexts.iter().map(|c| c.name.as_str()));
    let name = match (&args.context, &kubeconfig.current_context) {
        (Some(name), _) => name.clone(),
        (None, Some(current)) if !current.is_empty() => current.clone(),
        (None, _) => {
            return Err(ClusterError::NoCurrentContext {
                available: contexts(),
            });
        }
    };
    if !kubeconfig.contexts.iter().any(|c| c.name == name) {
        return Err(ClusterError::UnknownContext {
            name,
            available: contexts(),
        });
    }
    if let Some(cluster) = &args.cluster
        && !kubeconfig.clusters.iter().any(|c| &c.name == cluster)
    {
        return Err(ClusterError::UnknownCluster {
            name: cluster.clone(),
            available: name_list(kubeconfig.clusters.iter().map(|c| c.name.as_str())),
        });
    }
    if let Some(user) = &args.user
        && !kubeconfig.auth_infos.iter().any(|u| &u.name == user)
    {
        return Err(ClusterError::UnknownUser {
            name: user.clone(),
            available: name_list(kubeconfig.auth_infos.iter().map(|u| u.name.as_str())),
        });
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

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
